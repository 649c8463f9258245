/* src/headers_lua.c: placeholder, being written. */
#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"

int luaopen_luahost_headers(lua_State *L)
{
    lua_newtable(L);
    return 1;
}
