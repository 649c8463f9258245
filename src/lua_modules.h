/* src/lua_modules.h: every module a worker's Lua state can require. */
#ifndef LUAHOST_LUA_MODULES_H
#define LUAHOST_LUA_MODULES_H
#include <stddef.h>

struct lua_State;

/* Files compiled in (see cmake/embed_lua.cmake): the Lua modules of
 * lua/luahost/ ("luahost.app") and the assets of lua/luahost/monitor/
 * ("dashboard.js"). Each table ends with a NULL name. */
struct lh_embedded_file {
    const char *name;
    const char *source;
    size_t len;
};
extern const struct lh_embedded_file lh_embedded_lua[];
extern const struct lh_embedded_file lh_embedded_assets[];

/* Creates the metatable mt (once per state) with methods, indexing itself. */
struct luaL_Reg;
void lh_lua_class(struct lua_State *L, const char *mt, const struct luaL_Reg *methods);

/* Pushes a table of functions, each with object as upvalue 1 (the C object
 * the module works on, lua_touserdata(L, lua_upvalueindex(1))). */
void lh_lua_library(struct lua_State *L, const struct luaL_Reg *functions, void *object);

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
/* A lua_CFunction for the core, not for Lua code: (buffer, value) encodes
 * value into buffer (a light userdata, struct lh_json_buf *, reset first) as
 * json.encode would, raising its errors; returns nothing. */
int lh_json_lua_encode_into(struct lua_State *L);
int luaopen_luahost_password(struct lua_State *L);
int luaopen_luahost_svg(struct lua_State *L);
int luaopen_luahost_cache_core(struct lua_State *L);
int luaopen_luahost_redis(struct lua_State *L);
int luaopen_luahost_metrics(struct lua_State *L);
int luaopen_luahost_monitor(struct lua_State *L);
int luaopen_luahost_static(struct lua_State *L);
int luaopen_luahost_cookie(struct lua_State *L);

#endif
