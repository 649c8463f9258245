-- The security suite's test application (spec/integration/security*_spec.lua).
-- Its policies are the sibling directory ../policy (luahost's default
-- policy_dir for this app): small limits the specs reach in a few requests.
--
--   GET /hello     limited by `default` (5 per minute) and `per_ip`
--   GET /whoami    the same limits; tells what the server believes of the client
--   GET /strict    a route override: 2 per minute, counted for this route alone
--   GET /counted   a route override with a high limit: only per_ip and the bot
--                  check can refuse it
--   GET /health    exempt from limits (no limiter call at all)
--   GET /nonce     exempt; returns the CSP nonce the handler sees
--   GET /svg       exempt; an SVG answer with res.security = "svg"
--   GET /svg-route exempt; mapped to the "svg" policy by headers.lua's routes
--   GET /boom      exempt; raises (a 500)
local function whoami(req, res)
    res:json({
        success = true,
        client = req.client,
        https = req.https,
        fingerprint = req.fingerprint,
    })
end

local SVG = "<svg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/>"

return {
    ["GET /hello"] = function(_, res)
        res:json({ success = true, message = "hello" })
    end,

    ["GET /whoami"] = whoami,

    ["GET /strict"] = function(_, res)
        res:json({ success = true, route = "strict" })
    end,

    ["GET /counted"] = function(_, res)
        res:json({ success = true, route = "counted" })
    end,

    ["GET /health"] = function(_, res)
        res:json({ success = true, status = "ok" })
    end,

    ["GET /per-ip"] = function(_, res)
        res:json({ success = true, route = "per-ip" })
    end,

    ["GET /nonce"] = function(req, res)
        res:json({ success = true, nonce = req.csp_nonce })
    end,

    ["GET /svg"] = function(_, res)
        res.security = "svg"
        res.headers["Content-Type"] = "image/svg+xml"
        res.body = SVG
    end,

    ["GET /svg-route"] = function(_, res)
        res.headers["Content-Type"] = "image/svg+xml"
        res.body = SVG
    end,

    ["GET /boom"] = function()
        error("kaboom")
    end,
}
