-- struct lh_host (include/luahost/worker.h) for the specs that hand a Lua
-- state the server's objects, as src/worker.c does: the same fields in the
-- same order, all pointers, so that a binding reading any of them sees NULL
-- unless the spec set it. Keep in step with worker.h.
--   require "support.host"     then ffi.new("struct spec_host", { ratelimit = rl })
local ffi = require "ffi"

ffi.cdef [[
struct spec_host {
    void *fingerprint, *trusted_proxies, *ratelimit, *db, *cache, *redis, *metrics, *monitor,
         *monitor_allow, *statics;
};
]]

return true
