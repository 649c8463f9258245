-- luahost.response: the `res` object a route handler fills in.
--
--   res.status    200 unless set
--   res.headers   header name -> value (a list of values repeats the header)
--   res.body      string, or nil for an empty body
--   res.stream    "monitor": the body is the monitor's server-sent events
--                 (luahost.monitoring's /monitor/stream)
--   res.ratelimit { limit, remaining, reset (seconds), window } of the
--                 tightest rate limit: the server sends X-RateLimit-Limit,
--                 -Remaining, -Reset and RateLimit-Policy, RateLimit
--   res:json(value[, status])     body = luahost.json's encoding, application/json
--   res:html(string[, status])    text/html; charset=utf-8
--   res:text(string[, status])    text/plain; charset=utf-8
--   res:redirect(url[, status])   Location: url, status 302 unless given
-- Each helper returns res.
local json = require "luahost.json"

local encode, setmetatable, type = json.encode, setmetatable, type

local M = {}
local methods = {}
local response_mt = { __index = methods }

-- Not a tail call from the helpers, so that level 3 is the handler's line.
local function set_body(res, body, content_type, status)
    if type(body) ~= "string" then
        error("body must be a string, got " .. type(body), 3)
    end
    res.body = body
    res.headers["Content-Type"] = content_type
    if status ~= nil then
        res.status = status
    end
end

function methods:json(value, status)
    set_body(self, encode(value), "application/json", status)
    return self
end

function methods:html(body, status)
    set_body(self, body, "text/html; charset=utf-8", status)
    return self
end

function methods:text(body, status)
    set_body(self, body, "text/plain; charset=utf-8", status)
    return self
end

function methods:redirect(url, status)
    if type(url) ~= "string" then
        error("redirect needs a URL string", 2)
    end
    self.status = status or 302
    self.headers["Location"] = url
    self.body = nil
    return self
end

function M.new()
    return setmetatable({ status = 200, headers = {} }, response_mt)
end

return M
