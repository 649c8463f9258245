/* src/log_lua.c: require "luahost.log". Check, call, convert.
 *
 *   log.debug(...), log.info(...), log.warn(...), log.error(...)
 *       Writes the arguments, joined by spaces, to the error log, tagged with
 *       the id of the request being handled.
 *   log.print(...)
 *       What the global print does in luahost: the arguments, tostring'd and
 *       joined by tabs as Lua's print joins them, to the error log at info
 *       level. Lua's own print would write to stdout, where the access log
 *       may go.
 *   log.enabled(level) -> boolean
 *   log.quote(value) -> string
 *       tostring(value) in double quotes, with ", \, control bytes and
 *       bytes past ASCII escaped: a value from a client, made safe to put
 *       in a log line.
 */
#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/log.h"
#include "luahost/worker.h"

static int write_level(lua_State *L, enum lh_log_level level, char separator)
{
    const struct lh_request *req;
    int n = lua_gettop(L);

    if (!lh_log_enabled(level))
        return 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, separator); /* before the push: the buffer may use the stack */
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    req = lh_worker_current_request();
    lh_log(level, req ? req->id : NULL, "%s", lua_tostring(L, -1));
    return 0;
}

static int l_debug(lua_State *L)
{
    return write_level(L, LH_LOG_DEBUG, ' ');
}

static int l_info(lua_State *L)
{
    return write_level(L, LH_LOG_INFO, ' ');
}

static int l_warn(lua_State *L)
{
    return write_level(L, LH_LOG_WARN, ' ');
}

static int l_error(lua_State *L)
{
    return write_level(L, LH_LOG_ERROR, ' ');
}

static int l_print(lua_State *L)
{
    return write_level(L, LH_LOG_INFO, '\t');
}

/* log.enabled(level) -> boolean */
static int l_enabled(lua_State *L)
{
    enum lh_log_level level;
    const char *name = luaL_checkstring(L, 1);

    luaL_argcheck(L, lh_log_level_parse(name, &level) == LH_OK, 1,
                  "want debug, info, warn or error");
    lua_pushboolean(L, lh_log_enabled(level));
    return 1;
}

/* log.quote(value) -> string */
static int l_quote(lua_State *L)
{
    /* Each input byte takes at most 4 output bytes. */
    enum { CHUNK = (LUAL_BUFFERSIZE - 1) / 4 };
    size_t len;
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    const char *s = lua_tolstring(L, -1, &len);
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    luaL_addchar(&b, '"');
    for (size_t at = 0; at < len; at += CHUNK) {
        size_t take = len - at < CHUNK ? len - at : CHUNK;
        char *out = luaL_prepbuffer(&b);
        luaL_addsize(&b, lh_log_escape(out, LUAL_BUFFERSIZE, s + at, take));
    }
    luaL_addchar(&b, '"');
    luaL_pushresult(&b);
    return 1;
}

static const luaL_Reg functions[] = {{"debug", l_debug},     {"info", l_info},   {"warn", l_warn},
                                     {"error", l_error},     {"print", l_print}, {"enabled", l_enabled},
                                     {"quote", l_quote},     {NULL, NULL}};

int luaopen_luahost_log(lua_State *L)
{
    luaL_newlib(L, functions);
    return 1;
}
