-- The anchors' benchmark routes (see bench/README.md). Rate limits, the bot
-- check and the security headers of /secure come from bench/policy/.
local cache = require "luahost.cache"
local ffi = require "ffi"

-- time() through the FFI: LuaJIT compiles the call into the handler's trace,
-- where os.time would end the trace (as ngx.now, through the FFI, does not).
ffi.cdef "long time(void *);"
local C = ffi.C
local function unix_time()
    return tonumber(C.time(nil))
end

-- The anchors' list: 20 small objects, built on a miss.
local function build_list()
    local items = {}
    for i = 1, 20 do
        items[i] = { id = i, title = "Image " .. i, author = "user" .. (i % 5),
                     views = i * 10, format = "svg" }
    end
    return items
end

-- As in the anchors, each worker keeps the list as a Lua value for an hour
-- and encodes it on every request. A worker's miss goes through the shared
-- cache (the process's L1, then Redis), which hands the list back decoded.
local LIST_TTL = 3600
local list, list_expires = nil, 0

local function cached_list()
    local now = unix_time()
    if now >= list_expires then
        local value, err = cache.get_or_compute("gallery:list", LIST_TTL, build_list)
        if value == nil then
            return nil, err
        end
        list, list_expires = value, now + LIST_TTL
    end
    return list
end

return {
    ["GET /hello"] = function(_, res)
        res:json({ success = true, message = "hello" })
    end,

    ["GET /secure"] = function(_, res)
        res:json({ success = true, message = "hello" })
    end,

    ["GET /cached"] = function(_, res)
        res:json(assert(cached_list()))
    end,
}
