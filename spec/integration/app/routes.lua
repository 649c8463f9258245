-- The integration suite's test application: one route per behaviour that
-- spec/integration/*_spec.lua checks over real HTTP.
local worker = require "luahost.worker"

-- Headers the echo route reports back, looked up with mixed-case names on
-- purpose: req.headers is case-insensitive.
local function echo(req, res)
    local headers = req.headers
    res:json({
        success = true,
        method = req.method,
        path = req.path,
        params = req.params,
        query = req.query,
        body = req.body,
        body_length = #req.body,
        x_test = headers["X-Test"],
        x_test_lower = headers["x-test"],
        x_test_upper = headers["X-TEST"],
        content_type = headers["Content-Type"],
        client = req.client,
        id = req.id,
    })
end

return {
    ["GET /hello"] = function(req, res)
        res:json({ success = true, message = "hello" })
    end,

    ["POST /echo"] = echo,
    ["GET /echo"] = echo,

    ["GET /users/:id"] = function(req, res)
        res:json({ success = true, id = req.params.id, q = req.query.q, path = req.path })
    end,

    ["GET /files/*rest"] = function(req, res)
        res:json({ success = true, rest = req.params.rest })
    end,

    ["GET /boom-table"] = function()
        error({ code = 42 })
    end,

    -- Headers in other spellings than the server's, and an empty one.
    ["GET /respelt"] = function(_, res)
        res:json({ success = true })
        res.headers["content-type"] = "application/vnd.spec+json"
        res.headers["x-request-id"] = "mine"
        res.headers["date"] = "Thu, 01 Jan 1970 00:00:00 GMT"
        res.headers["X-Empty"] = ""
    end,

    ["GET /type-before"] = function(_, res)
        res.headers["content-type"] = "application/problem+json"
        res:json({ success = false }, 404)
    end,

    ["GET /redirect-over"] = function(_, res)
        res.headers["location"] = "/old"
        res:redirect("/new")
    end,

    ["GET /header-twice"] = function(_, res)
        res.headers["X-Dup"] = "upper"
        res.headers["x-dup"] = "lower"
        res:text("never sent")
    end,

    ["GET /boom-tostring"] = function()
        error(setmetatable({}, { __tostring = function() return "a table that says why" end }))
    end,

    -- Raises with its path segment in the message, as a careless handler would.
    ["GET /boom-with/*what"] = function(req)
        error("no such thing: " .. req.params.what)
    end,

    ["GET /boom"] = function()
        error("kaboom")
    end,

    ["GET /bad-status"] = function(_, res)
        res.status = 999
        res.body = "never sent"
    end,

    ["GET /typo-field"] = function(_, res)
        res.stauts = 404
        res.body = "never sent"
    end,

    ["GET /exit"] = function()
        os.exit(0)
    end,

    ["GET /print"] = function(_, res)
        print("printed", 42, nil)
        res:text("done")
    end,

    ["GET /interim-status"] = function(_, res)
        res:text("not final", 101)
    end,

    ["GET /bad-header-name"] = function(_, res)
        res.headers["X-Fine"] = "1"
        res.headers["Bad Name"] = "v"
    end,

    -- res:json's value is encoded after the handler returns.
    ["GET /json-later"] = function(_, res)
        local value = { success = true, step = 1 }
        res:json(value, 201)
        value.step = 2
    end,

    ["GET /bad-json"] = function(_, res)
        res:json({ success = true, callback = print })
    end,

    ["GET /bad-header"] = function(_, res)
        res.headers["X-Injected"] = "evil\r\nSet-Cookie: pwned=1"
        res:text("never sent")
    end,

    -- Blocks this request only (the thread serves other connections).
    ["GET /sleep"] = function(req, res)
        local seconds = tonumber(req.query.seconds) or 1
        local ok, err = worker.sleep(seconds)
        if not ok then
            return res:json({ success = false, message = err }, 503)
        end
        res:json({ success = true, slept = seconds })
    end,

    ["GET /redirect"] = function(_, res)
        res:redirect("/hello")
    end,

    ["GET /html"] = function(_, res)
        res:html("<h1>hi</h1>")
    end,

    ["GET /text"] = function(_, res)
        res:text("plain text")
    end,

    -- A handler's own Date replaces the server's.
    ["GET /dated"] = function(_, res)
        res.headers["Date"] = "Thu, 01 Jan 1970 00:00:00 GMT"
        res:text("old")
    end,

    ["GET /big-header"] = function(req, res)
        res.headers["X-Big"] = string.rep("h", tonumber(req.query.size))
        res:text("ok")
    end,

    ["GET /big-header-raw"] = function(req, res)
        res.headers["X-Big"] = string.rep("h", tonumber(req.query.size))
        res.body = "ok"
    end,

    ["GET /request-cookies"] = function(req, res)
        res:json({ cookies = req.cookies, multi = req.headers["x-multi"] })
    end,

    ["GET /cookies"] = function(_, res)
        res.headers["Set-Cookie"] = { "a=1", "b=2" }
        res:json({ success = true })
    end,

    -- Header values given as numbers (converted to text by the server).
    ["GET /numeric-headers"] = function(_, res)
        for i = 1, 40 do
            res.headers["X-N" .. i] = i * 1000 + 0.5
        end
        res:json({ success = true })
    end,

    ["GET /version"] = function(_, res)
        res:json({ success = true, version = 1 })
    end,
}
