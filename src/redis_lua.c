/* src/redis_lua.c: require "luahost.redis". Check, call, convert.
 *
 *   redis.command(name, arg...) -> reply | nil, err
 *       Runs one command on the server's Redis pool (redis_url); inside a
 *       request the thread serves other connections meanwhile. Arguments
 *       are strings or numbers. Replies: strings and status replies as
 *       strings, integers as numbers, arrays as tables, a nil reply as
 *       json.null; an error reply, a timeout, Redis marked down or not
 *       configured: nil, err.
 *   redis.available() -> boolean    configured and not marked down
 *   redis.configured() -> boolean
 */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/redis.h"
#include "luahost/worker.h"

#define MAX_ARGS 64
#define ERR_MAX 256

struct command_op {
    struct lh_async a; /* first: the callbacks cast back */
    struct lh_redis *redis;
    int argc;
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    redisReply *reply;
    enum lh_status st;
    char err[ERR_MAX];
    char text[]; /* the arguments' bytes */
};

static struct lh_redis *host_redis(lua_State *L)
{
    const struct lh_host *host = lh_worker_host(L);
    return host ? host->redis : NULL;
}

static void command_run(struct lh_task *t)
{
    struct command_op *op = (struct command_op *)t;
    op->st = lh_redis_command(op->redis, op->argc, op->argv, op->lens, &op->reply, op->err,
                              sizeof(op->err));
}

static void push_reply(lua_State *L, const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        lua_pushlstring(L, r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        lua_pushnumber(L, (lua_Number)r->integer);
        break;
    case REDIS_REPLY_ARRAY:
        luaL_checkstack(L, 4, "redis: reply nested too deeply");
        lua_createtable(L, (int)r->elements, 0);
        for (size_t i = 0; i < r->elements; i++) {
            push_reply(L, r->element[i]);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    default: /* nil */
        lua_pushlightuserdata(L, NULL);
    }
}

static int command_push(struct lh_async *a, lua_State *L)
{
    struct command_op *op = (struct command_op *)a;

    if (a->task.cancelled) {
        lua_pushnil(L);
        lua_pushliteral(L, "server shutting down");
        return 2;
    }
    if (op->st != LH_OK || op->reply->type == REDIS_REPLY_ERROR) {
        lua_pushnil(L);
        lua_pushstring(L, op->st != LH_OK ? op->err : op->reply->str);
        return 2;
    }
    push_reply(L, op->reply);
    return 1;
}

static void command_free(struct lh_async *a)
{
    struct command_op *op = (struct command_op *)a;
    freeReplyObject(op->reply);
    free(op);
}

/* redis.command(name, arg...) -> reply | nil, err */
static int l_command(lua_State *L)
{
    int argc = lua_gettop(L);
    size_t total = 0;
    struct lh_redis *redis = host_redis(L);

    luaL_argcheck(L, argc >= 1 && argc <= MAX_ARGS, 1, "one command name and up to 63 arguments");
    for (int i = 1; i <= argc; i++) {
        int t = lua_type(L, i);
        luaL_argcheck(L, t == LUA_TSTRING || t == LUA_TNUMBER, i, "string or number expected");
        size_t len;
        lua_tolstring(L, i, &len); /* numbers become their text in place */
        total += len;
    }
    if (redis == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "redis is not configured (redis_url)");
        return 2;
    }
    struct command_op *op = calloc(1, sizeof(*op) + total);
    if (op == NULL)
        return luaL_error(L, "out of memory");
    char *p = op->text;
    for (int i = 1; i <= argc; i++) {
        size_t len;
        const char *s = lua_tolstring(L, i, &len);
        memcpy(p, s, len);
        op->argv[i - 1] = p;
        op->lens[i - 1] = len;
        p += len;
    }
    op->argc = argc;
    op->redis = redis;
    op->a.task.run = command_run;
    op->a.push = command_push;
    op->a.free = command_free;
    return lh_worker_await(L, &op->a);
}

static int l_available(lua_State *L)
{
    struct lh_redis *redis = host_redis(L);
    lua_pushboolean(L, redis != NULL && lh_redis_up(redis));
    return 1;
}

static int l_configured(lua_State *L)
{
    lua_pushboolean(L, host_redis(L) != NULL);
    return 1;
}

static const luaL_Reg functions[] = {
    {"command", l_command}, {"available", l_available}, {"configured", l_configured}, {NULL, NULL}};

int luaopen_luahost_redis(lua_State *L)
{
    luaL_newlib(L, functions);
    return 1;
}
