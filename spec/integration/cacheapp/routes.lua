-- Routes that drive luahost.cache for spec/integration/cache_spec.lua. Each
-- computation counts itself in Redis (test:computations:<key>), so that the
-- count is exact across instances.
local cache = require "luahost.cache"
local core = require "luahost.cache_core"
local redis = require "luahost.redis"
local worker = require "luahost.worker"

local tonumber = tonumber

local function count_computation(key)
    local n, err = redis.command("INCR", "test:computations:" .. key)
    return n or err
end

return {
    -- The L1 entry alone, without going to L2: what this instance holds.
    ["GET /l1/:key"] = function(req, res)
        local text = core.get(req.params.key, false)
        res:json({ found = text ~= nil, text = text })
    end,

    ["PUT /cache/:key"] = function(req, res)
        local ok, err = cache.set(req.params.key, { value = req.body }, tonumber(req.query.ttl) or 60)
        res:json({ ok = ok == true, err = err })
    end,

    ["GET /cache/:key"] = function(req, res)
        local value, found = cache.get(req.params.key)
        res:json({ found = found, value = value })
    end,

    ["DELETE /cache/:key"] = function(req, res)
        res:json({ ok = cache.delete(req.params.key) })
    end,

    ["POST /invalidate"] = function(req, res)
        res:json({ ok = cache.invalidate_pattern(req.query.pattern) })
    end,

    -- get_or_compute with a computation of ?delay seconds; ?fail=raise or
    -- ?fail=return makes it fail.
    ["GET /compute/:key"] = function(req, res)
        local key, q = req.params.key, req.query
        local value, err = cache.get_or_compute(key, tonumber(q.ttl) or 60, function()
            local n = count_computation(key)
            worker.sleep(tonumber(q.delay) or 0)
            if q.fail == "raise" then
                error("computation raised")
            elseif q.fail == "return" then
                return nil, "computation failed"
            end
            return { key = key, computation = n, pid = q.pid }
        end, { lock_wait = tonumber(q.lock_wait), stale = tonumber(q.stale),
               l1_ttl = tonumber(q.l1_ttl) })
        if value == nil then
            return res:json({ success = false, error = err }, 503)
        end
        res:json({ success = true, value = value })
    end,

    ["GET /stats"] = function(_, res)
        res:json(cache.stats())
    end,
}
