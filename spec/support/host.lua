-- The server's host objects for unit specs: a Lua state given them as
-- src/worker.c does (the registry's "luahost.host"), to test what the
-- bindings do inside a server.
--
--   local host = require "support.host"
--   host.new{ ratelimit = rl } -> struct spec_host     (unset fields NULL)
--   host.run(h, code) -> the string code returns, run in a fresh state
--       with h as its host and this process's package.cpath; raises with
--       the state's error
local ffi = require "ffi"

-- struct spec_host: struct lh_host (include/luahost/worker.h), the same
-- fields in the same order, all pointers. Keep in step with worker.h.
ffi.cdef [[
struct spec_host {
    void *fingerprint, *trusted_proxies, *ratelimit, *db, *cache, *redis, *metrics, *monitor,
         *monitor_allow, *statics;
};
typedef struct lua_State lua_State;
lua_State *luaL_newstate(void);
void luaL_openlibs(lua_State *L);
int luaL_loadstring(lua_State *L, const char *s);
int lua_pcall(lua_State *L, int nargs, int nresults, int errfunc);
const char *lua_tolstring(lua_State *L, int idx, size_t *len);
void lua_pushlightuserdata(lua_State *L, void *p);
void lua_setfield(lua_State *L, int idx, const char *k);
void lua_close(lua_State *L);
]]

local LUA_REGISTRYINDEX = -10000

local M = {}

function M.new(fields)
    return ffi.new("struct spec_host", fields or {})
end

function M.run(h, code)
    local L = ffi.C.luaL_newstate()
    ffi.C.luaL_openlibs(L)
    ffi.C.lua_pushlightuserdata(L, h)
    ffi.C.lua_setfield(L, LUA_REGISTRYINDEX, "luahost.host")
    local chunk = ("package.cpath = %q\n%s"):format(package.cpath, code)
    assert(ffi.C.luaL_loadstring(L, chunk) == 0, "chunk does not compile")
    local rc = ffi.C.lua_pcall(L, 0, 1, 0)
    local result = ffi.string(ffi.C.lua_tolstring(L, -1, nil))
    ffi.C.lua_close(L) -- collects every wrapper the code made
    assert(rc == 0, result)
    return result
end

return M
