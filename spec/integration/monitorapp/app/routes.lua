-- Routes for spec/integration/monitor_spec.lua: fast, failing, slow and
-- custom-metric routes whose counts the spec checks exactly.
local cache = require "luahost.cache"
local metrics = require "luahost.metrics"
local worker = require "luahost.worker"

local uploads = metrics.counter("gallery_test_uploads_total", "Uploads seen by the test app.")
local sizes = metrics.histogram("gallery_test_size_bytes", "Sizes seen.", { 100, 1000, 10000 })
local queue = metrics.gauge("gallery_test_queue_depth", "A gauge the test sets.")
-- Names /metrics already has (the core's, the histogram's _count): refused,
-- or the exposition would repeat a family. GET /refused says what each got.
local refused = {}
for _, try in ipairs({ { "counter", "luahost_http_requests_total" },
                       { "counter", "process_cpu_seconds_total" },
                       { "gauge", "gallery_test_size_bytes_count" } }) do
    local ok, err = pcall(metrics[try[1]], try[2], "Taken.")
    refused[try[2]] = not ok and err or "accepted"
end

return {
    ["GET /ok"] = function(_, res)
        res:json({ success = true })
    end,

    -- A cache lookup: a miss stores the key, so that the next one hits.
    ["GET /cache/:key"] = function(req, res)
        local _, found = cache.get(req.params.key)
        if not found then
            cache.set(req.params.key, true, 60)
        end
        res:json({ found = found })
    end,

    ["POST /ok"] = function(_, res)
        res:json({ success = true }, 201)
    end,

    ["GET /boom"] = function()
        error("boom on purpose")
    end,

    ["GET /missing"] = function(_, res)
        res:json({ success = false }, 404)
    end,

    -- ?ms=N: answers after N ms.
    ["GET /slow"] = function(req, res)
        worker.sleep((tonumber(req.query.ms) or 0) / 1000)
        res:json({ success = true })
    end,

    ["GET /refused"] = function(_, res)
        res:json(refused)
    end,

    ["POST /custom"] = function(req, res)
        uploads:inc()
        sizes:observe(#req.body)
        queue:set(tonumber(req.query.depth) or 0)
        res:json({ success = true })
    end,
}
