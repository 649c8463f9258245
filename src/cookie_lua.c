/* src/cookie_lua.c: require "luahost.cookie". Check, call, convert.
 *
 *   cookie.parse(header) -> { name = value, ... }
 *       The first of repeated names wins (the most specific path, as
 *       browsers send them). nil gives an empty table.
 */
#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/cookie.h"

static int add_pair(void *arg, const char *name, size_t name_len, const char *value,
                    size_t value_len)
{
    lua_State *L = arg;
    lua_pushlstring(L, name, name_len);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, value, value_len);
        lua_rawset(L, -3);
    } else {
        lua_pop(L, 2);
    }
    return 0;
}

static int l_parse(lua_State *L)
{
    size_t len = 0;
    const char *header = luaL_optlstring(L, 1, NULL, &len);
    lua_newtable(L);
    if (header != NULL) {
        luaL_checkstack(L, 4, "cookie: no stack");
        lh_cookie_each(header, len, add_pair, L);
    }
    return 1;
}

static const luaL_Reg functions[] = {{"parse", l_parse}, {NULL, NULL}};

int luaopen_luahost_cookie(lua_State *L)
{
    luaL_newlib(L, functions);
    return 1;
}
