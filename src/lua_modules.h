/* src/lua_modules.h: every module a worker's Lua state can require. */
#ifndef LUAHOST_LUA_MODULES_H
#define LUAHOST_LUA_MODULES_H
#include <stddef.h>

struct lua_State;

/* The Lua files of lua/luahost/, compiled in (see cmake/embed_lua.cmake). */
struct lh_embedded_lua {
    const char *name; /* "luahost.app" */
    const char *source;
    size_t len;
};
extern const struct lh_embedded_lua lh_embedded_lua[]; /* ends with a NULL name */

/* Creates the metatable mt (once per state) with methods, indexing itself. */
struct luaL_Reg;
void lh_lua_class(struct lua_State *L, const char *mt, const struct luaL_Reg *methods);

/* Puts the C bindings and the embedded Lua modules into package.preload. */
void lh_lua_modules_preload(struct lua_State *L);

int luaopen_luahost_router(struct lua_State *L);
int luaopen_luahost_worker(struct lua_State *L);
int luaopen_luahost_log(struct lua_State *L);
int luaopen_luahost_fingerprint(struct lua_State *L);
int luaopen_luahost_netaddr(struct lua_State *L);
int luaopen_luahost_headers(struct lua_State *L);
int luaopen_luahost_ratelimit(struct lua_State *L);
int luaopen_luahost_db(struct lua_State *L);
int luaopen_luahost_json(struct lua_State *L);
int luaopen_luahost_password(struct lua_State *L);
int luaopen_luahost_svg(struct lua_State *L);
int luaopen_luahost_cache_core(struct lua_State *L);
int luaopen_luahost_redis(struct lua_State *L);

#endif
