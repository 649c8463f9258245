/* src/static_lua.c: require "luahost.static". Check, call, convert.
 *
 *   static.url(path) -> "/static/<path>?v=<version>"
 *       For links to the application's static files: the version changes
 *       with the file, so the answer may be cached for a year (the core
 *       sends "immutable" when v matches). Raises when the file does not
 *       exist, or when the server has no static folder.
 */
#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/static.h"
#include "luahost/worker.h"

static int l_url(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const struct lh_host *host = lua_touserdata(L, lua_upvalueindex(1));
    char version[LH_STATIC_TAG_MAX];

    if (host == NULL || host->statics == NULL)
        return luaL_error(L, "static.url: the server has no static folder");
    if (path[0] == '/')
        path++;
    if (lh_static_version(host->statics, path, version) != LH_OK)
        return luaL_error(L, "static.url: no static file %s", path);
    lua_pushfstring(L, "/static/%s?v=%s", path, version);
    return 1;
}

static const luaL_Reg functions[] = {{"url", l_url}, {NULL, NULL}};

int luaopen_luahost_static(lua_State *L)
{
    lh_lua_library(L, functions, (void *)lh_worker_host(L));
    return 1;
}
