/* src/worker_lua.c: require "luahost.worker". Check, call, convert.
 *
 *   worker.sleep(seconds) -> true | nil, err
 *       Inside a request the thread serves other connections meanwhile.
 *   worker.set_route(id)
 *       luahost.app, before a handler: the metrics route id of the request.
 *   worker.request_data(request_id, part) -> value | nil, err
 *       part: "headers" (lower-case names), "query" or "body"; used by
 *       luahost.request to fill req.headers, req.query and req.body lazily.
 *   worker.list_dir(dir) -> names | nil, "dir: why"
 *       The entries of a folder but . and .., sorted (Lua cannot list one);
 *       luahost.template finds its templates with it.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/worker.h"

#define MAX_SLEEP_SECONDS (24 * 3600.0)

/* A wait: no thread is held while it lasts (see lh_async.delay). */
static int sleep_push(struct lh_async *a, lua_State *L)
{
    if (a->task.cancelled) {
        lua_pushnil(L);
        lua_pushliteral(L, "server shutting down");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static void sleep_free(struct lh_async *a)
{
    free(a);
}

/* worker.sleep(seconds) -> true | nil, err */
static int l_sleep(lua_State *L)
{
    double seconds = luaL_checknumber(L, 1);
    luaL_argcheck(L, seconds >= 0 && seconds <= MAX_SLEEP_SECONDS, 1,
                  "must be from 0 to 86400 seconds");
    struct lh_async *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return luaL_error(L, "out of memory");
    a->delay = seconds;
    a->push = sleep_push;
    a->free = sleep_free;
    return lh_worker_await(L, a);
}

struct fill {
    lua_State *L;
    int lower_keys; /* headers: names lower-cased, values trimmed */
};

static void add_pair(void *arg, const char *key, const char *value)
{
    struct fill *f = arg;
    lua_State *L = f->L;
    size_t len = strlen(key);

    if (value == NULL)
        value = "";
    size_t vlen = strlen(value);
    /* libmicrohttpd drops the spaces before a field value, not those after;
     * they are no part of it either (RFC 9110 section 5.5). */
    while (f->lower_keys && vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
        vlen--;
    if (f->lower_keys) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t i = 0; i < len; i++)
            luaL_addchar(&b, (char)tolower((unsigned char)key[i]));
        luaL_pushresult(&b);
    } else {
        lua_pushlstring(L, key, len);
    }
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, value, vlen);
        lua_rawset(L, -3);
    } else if (f->lower_keys) {
        /* A repeated header: joined, as RFC 9110 5.3 allows, except Cookie,
         * whose pairs are separated by "; " (RFC 9113 8.2.3): a ", " would
         * end up inside the first cookie's value. */
        if (len == 6 && strcasecmp(key, "Cookie") == 0)
            lua_pushliteral(L, "; ");
        else
            lua_pushliteral(L, ", ");
        lua_pushlstring(L, value, vlen);
        lua_concat(L, 3);
        lua_rawset(L, -3);
    } else { /* a repeated query argument: the first one wins */
        lua_pop(L, 2);
    }
}

/* worker.request_data(request_id, part) -> value | nil, err */
static int l_request_data(lua_State *L)
{
    const char *id = luaL_checkstring(L, 1);
    static const char *const parts[] = {"headers", "query", "body", NULL};
    int part = luaL_checkoption(L, 2, NULL, parts);
    const struct lh_request *req = lh_worker_current_request();

    if (req == NULL || strcmp(req->id, id) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "request is not in progress");
        return 2;
    }
    if (part == 2) {
        lua_pushlstring(L, req->body ? req->body : "", req->body_len);
        return 1;
    }
    struct fill f = {L, part == 0};
    lua_newtable(L);
    req->each(req, part == 0 ? LH_REQUEST_HEADERS : LH_REQUEST_QUERY, add_pair, &f);
    return 1;
}

static int l_set_route(lua_State *L)
{
    lh_worker_set_route((int)luaL_checkinteger(L, 1));
    return 0;
}

/* worker.list_dir(dir) -> names | nil, err */
static int l_list_dir(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    DIR *d = opendir(dir);
    if (d == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", dir, strerror(errno));
        return 2;
    }
    lua_newtable(L);
    int n = 0;
    struct dirent *e;
    errno = 0; /* readdir's end and its failure both return NULL */
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            lua_pushstring(L, e->d_name);
            lua_rawseti(L, -2, ++n);
        }
        errno = 0;
    }
    int failed = errno;
    closedir(d);
    if (failed != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", dir, strerror(failed));
        return 2;
    }
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    return 1;
}

static const luaL_Reg functions[] = {{"sleep", l_sleep},
                                     {"request_data", l_request_data},
                                     {"set_route", l_set_route},
                                     {"list_dir", l_list_dir},
                                     {NULL, NULL}};

int luaopen_luahost_worker(lua_State *L)
{
    const struct lh_host *host = lh_worker_host(L);
    luaL_newlib(L, functions);
    lua_pushstring(L, host != NULL && host->production ? "production" : "development");
    lua_setfield(L, -2, "env");
    return 1;
}
