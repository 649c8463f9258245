-- luahost.request: the `req` object a route handler receives.
--
--   req.method    "GET", "POST", ...
--   req.path      decoded path, without the query string
--   req.params    values of the pattern's :name and *name segments
--   req.id        request id, also sent back as X-Request-Id
--   req.client    client address
--   req.headers   header values by name, case-insensitive   (read on first use)
--   req.query     decoded query arguments; the first of a repeated name wins
--   req.body      request body as a string, "" when there is none
--
--   request.new(method, path, id, client, params, data) -> req
--       data (optional) presets headers, query and body, for tests.
local worker = require "luahost.worker"

local lower, rawget, rawset, setmetatable, type = string.lower, rawget, rawset, setmetatable, type
local request_data = worker.request_data

local M = {}

local header_mt = {
    __index = function(headers, name)
        if type(name) == "string" then
            return rawget(headers, lower(name))
        end
    end,
}

local function headers_of(t)
    local lowered = {}
    for k, v in pairs(t) do
        lowered[lower(k)] = v
    end
    return setmetatable(lowered, header_mt)
end

local lazy = { headers = true, query = true, body = true }

local request_mt = {
    __index = function(req, part)
        if not lazy[part] then
            return nil
        end
        local value, err = request_data(req.id, part)
        if value == nil then
            error("req." .. part .. ": " .. err, 2)
        end
        if part == "headers" then
            setmetatable(value, header_mt)
        end
        rawset(req, part, value)
        return value
    end,
}

local no_params = setmetatable({}, {
    __newindex = function()
        error("req.params is read-only for a route without parameters", 2)
    end,
})

function M.new(method, path, id, client, params, data)
    local req = setmetatable({
        method = method,
        path = path,
        id = id,
        client = client,
        params = params or no_params,
    }, request_mt)
    if data then
        req.headers = headers_of(data.headers or {})
        req.query = data.query or {}
        req.body = data.body or ""
    end
    return req
end

return M
