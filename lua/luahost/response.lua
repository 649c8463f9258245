-- luahost.response: the `res` object a route handler fills in.
--
--   res.status    200 unless set
--   res.headers   header name -> value (a list of values repeats the header)
--   res.body      string, or nil for an empty body
--   res.json_value   the value given to res:json, until it is encoded
--   res.stream    "monitor": the body is the monitor's server-sent events
--                 (luahost.monitoring's /monitor/stream)
--   res.ratelimit { limit, remaining, reset (seconds), window } of the
--                 tightest rate limit: the server sends X-RateLimit-Limit,
--                 -Remaining, -Reset and RateLimit-Policy, RateLimit
--   res:json(value[, status])     body = luahost.json's encoding of value, application/json
--   res:html(string[, status])    text/html; charset=utf-8
--   res:text(string[, status])    text/plain; charset=utf-8
--   res:redirect(url[, status])   Location: url, status 302 unless given
-- Each helper returns res. Setting any other field raises.
--
-- res:json keeps the value and the server encodes it once the handler has
-- returned: calling a C function from a handler costs LuaJIT a trace exit,
-- the largest part of a small JSON answer. Reading res.body encodes it at
-- once. So changes to the value before the handler returns are sent, and a
-- value that cannot be encoded (a function, a cycle) answers 500, logged
-- with the encoder's message. Setting res.body after res:json replaces it.
local json = require "luahost.json"

local encode, null, rawget, rawset, setmetatable, type =
    json.encode, json.null, rawget, rawset, setmetatable, type

local M = {}
local methods = {}

-- The fields a handler or a policy may set. Any other name is a mistake
-- (res.stauts = 404) that would otherwise be sent as a silent 200.
local FIELDS = { status = true, body = true, headers = true, security = true, stream = true,
                 ratelimit = true, json_value = true }

local response_mt = {
    __newindex = function(res, key, value)
        if not FIELDS[key] then
            error(("res.%s: not a response field (status, body, headers, security, stream, "
                .. "ratelimit)"):format(tostring(key)), 2)
        end
        rawset(res, key, value)
    end,
    __index = function(res, key)
        if key ~= "body" then
            return methods[key]
        end
        local value = rawget(res, "json_value")
        if value == nil then
            return nil
        end
        local body = encode(value)
        rawset(res, "json_value", nil)
        rawset(res, "body", body)
        return body
    end,
}

-- Sets a header the helpers own, removing the usual other spellings of its
-- name that an earlier line of the handler may have set: the helper's call
-- is the later one, so it wins. (Constant keys, not a loop over the table:
-- this runs in every res:json.)
local function set_owned(headers, name, lower, upper, value)
    headers[lower], headers[upper] = nil, nil
    headers[name] = value
end

local function set_type(res, content_type, status)
    set_owned(res.headers, "Content-Type", "content-type", "CONTENT-TYPE", content_type)
    if status ~= nil then
        res.status = status
    end
end

-- Not a tail call from the helpers, so that level 3 is the handler's line.
local function set_body(res, body, content_type, status)
    if type(body) ~= "string" then
        error("body must be a string, got " .. type(body), 3)
    end
    res.json_value = nil
    res.body = body
    set_type(res, content_type, status)
end

function methods:json(value, status)
    self.body = nil
    -- json.null, so that a nil value is still an answer: null.
    self.json_value = value == nil and null or value
    set_type(self, "application/json", status)
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
    set_owned(self.headers, "Location", "location", "LOCATION", url)
    self.json_value = nil
    self.body = nil
    return self
end

function M.new()
    return setmetatable({ status = 200, headers = {} }, response_mt)
end

return M
