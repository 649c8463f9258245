/* src/router_lua.c: require "luahost.router". Check, call, convert.
 *
 *   router.new() -> r
 *   r:add(method, pattern, handler) -> true | nil, err
 *   r:match(method, path) -> handler, params | nil, allow | nil
 */
#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/router.h"

#define MT "luahost.router"

static struct lh_router *check(lua_State *L)
{
    struct lh_router **ud = luaL_checkudata(L, 1, MT);
    luaL_argcheck(L, *ud != NULL, 1, "router is closed");
    return *ud;
}

/* router.new() -> r */
static int l_new(lua_State *L)
{
    struct lh_router **ud = lua_newuserdata(L, sizeof(*ud));

    *ud = NULL;
    luaL_getmetatable(L, MT);
    lua_setmetatable(L, -2);
    *ud = lh_router_new();
    if (*ud == NULL)
        return luaL_error(L, "out of memory");
    return 1;
}

/* r:add(method, pattern, handler) -> true | nil, err */
static int l_add(lua_State *L)
{
    struct lh_router *r = check(L);
    const char *method = luaL_checkstring(L, 2);
    const char *pattern = luaL_checkstring(L, 3);
    int handler = (int)luaL_checkinteger(L, 4);
    char err[160];

    if (lh_router_add(r, method, pattern, handler, err, sizeof(err)) != LH_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* r:match(method, path) -> handler, params | nil, allow | nil */
static int l_match(lua_State *L)
{
    struct lh_router *r = check(L);
    const char *method = luaL_checkstring(L, 2);
    size_t len;
    const char *path = luaL_checklstring(L, 3, &len);
    struct lh_router_match m;

    switch (lh_router_match(r, method, path, len, &m)) {
    case LH_ROUTER_FOUND:
        lua_pushinteger(L, m.handler);
        if (m.nparams == 0)
            return 1;
        lua_createtable(L, 0, (int)m.nparams);
        for (size_t i = 0; i < m.nparams; i++) {
            lua_pushlstring(L, m.params[i].name, m.params[i].name_len);
            lua_pushlstring(L, m.params[i].value, m.params[i].value_len);
            lua_rawset(L, -3);
        }
        return 2;
    case LH_ROUTER_METHOD_NOT_ALLOWED:
        lua_pushnil(L);
        lua_pushstring(L, m.allow);
        return 2;
    case LH_ROUTER_NOT_FOUND:
        break;
    }
    lua_pushnil(L);
    return 1;
}

static int l_close(lua_State *L)
{
    struct lh_router **ud = luaL_checkudata(L, 1, MT);
    lh_router_free(*ud);
    *ud = NULL;
    return 0;
}

static const luaL_Reg methods[] = {
    {"add", l_add}, {"match", l_match}, {"close", l_close}, {"__gc", l_close}, {NULL, NULL}};
static const luaL_Reg functions[] = {{"new", l_new}, {NULL, NULL}};

int luaopen_luahost_router(lua_State *L)
{
    lh_lua_class(L, MT, methods);
    luaL_newlib(L, functions);
    return 1;
}
