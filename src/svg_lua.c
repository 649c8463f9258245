/* src/svg_lua.c: require "luahost.svg". Check, call, convert.
 *
 *   svg.check(text) -> true | nil, why
 *       why is short and lowercase ("script element", "event handler
 *       attribute onload", "larger than 256 KiB"); see include/luahost/svg.h
 *       for what passes. Raises when text is not a string or memory runs out.
 */
#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/svg.h"

/* svg.check(text) -> true | nil, why */
static int l_check(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    char why[LH_SVG_WHY_LEN];
    enum lh_status st = lh_svg_check(text, len, why, sizeof(why));

    if (st == LH_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (st != LH_ERR_INVALID)
        return luaL_error(L, "svg: %s", lh_status_str(st));
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
}

static const luaL_Reg functions[] = {{"check", l_check}, {NULL, NULL}};

int luaopen_luahost_svg(lua_State *L)
{
    luaL_newlib(L, functions);
    return 1;
}
