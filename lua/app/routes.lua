-- The gallery application's routes: "METHOD /pattern" -> function(req, res).
-- The gallery API itself arrives with the data issue; for now the app
-- answers a greeting and a health check.
local worker = require "luahost.worker"

return {
    ["GET /"] = function(req, res)
        res:json({ success = true, message = "luahost gallery", request_id = req.id })
    end,

    ["GET /hello"] = function(_, res)
        res:json({ success = true, message = "hello" })
    end,

    ["GET /health"] = function(_, res)
        res:json({ success = true, status = "ok" })
    end,

    -- Blocks this request (not the server) for ?seconds=N, at most 10.
    ["GET /sleep"] = function(req, res)
        local seconds = tonumber(req.query.seconds) or 1
        if seconds < 0 or seconds > 10 then
            return res:json({ success = false, message = "seconds must be from 0 to 10" }, 400)
        end
        worker.sleep(seconds)
        res:json({ success = true, slept = seconds })
    end,
}
