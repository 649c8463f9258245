/* src/lua_modules.c: package.preload for each worker state. */
#include "lua_modules.h"

#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>

static const luaL_Reg bindings[] = {
    {"luahost.router", luaopen_luahost_router},
    {"luahost.worker", luaopen_luahost_worker},
    {"luahost.log", luaopen_luahost_log},
    {"luahost.fingerprint", luaopen_luahost_fingerprint},
    {"luahost.netaddr", luaopen_luahost_netaddr},
    {"luahost.headers", luaopen_luahost_headers},
    {"luahost.ratelimit", luaopen_luahost_ratelimit},
    {"luahost.db", luaopen_luahost_db},
    {"luahost.json", luaopen_luahost_json},
    {"luahost.password", luaopen_luahost_password},
    {"luahost.svg", luaopen_luahost_svg},
    {"luahost.cache_core", luaopen_luahost_cache_core},
    {"luahost.redis", luaopen_luahost_redis},
    {"luahost.metrics", luaopen_luahost_metrics},
    {"luahost.monitor", luaopen_luahost_monitor},
    {"luahost.static", luaopen_luahost_static},
    {"luahost.cookie", luaopen_luahost_cookie},
    {NULL, NULL},
};

/* package.preload loader for an embedded module; upvalue 1: its index. */
static int load_embedded(lua_State *L)
{
    const struct lh_embedded_file *m = &lh_embedded_lua[lua_tointeger(L, lua_upvalueindex(1))];
    char chunkname[128];

    /* "@lua/luahost/app.lua" makes tracebacks point at the source file. */
    snprintf(chunkname, sizeof(chunkname), "@lua/luahost/%s.lua", m->name + sizeof("luahost"));
    if (luaL_loadbuffer(L, m->source, m->len, chunkname) != 0)
        return lua_error(L);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

void lh_lua_class(lua_State *L, const char *mt, const luaL_Reg *methods)
{
    if (luaL_newmetatable(L, mt)) {
        luaL_setfuncs(L, methods, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

void lh_lua_library(lua_State *L, const luaL_Reg *functions, void *object)
{
    lua_newtable(L);
    for (const luaL_Reg *f = functions; f->name; f++) {
        lua_pushlightuserdata(L, object);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
}

void lh_lua_modules_preload(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    for (const luaL_Reg *b = bindings; b->name; b++) {
        lua_pushcfunction(L, b->func);
        lua_setfield(L, -2, b->name);
    }
    for (int i = 0; lh_embedded_lua[i].name; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, lh_embedded_lua[i].name);
    }
    lua_pop(L, 2);
}
