-- luahost.request: the `req` object a route handler receives.
--
--   req.method    "GET", "POST", ...
--   req.path      decoded path, without the query string
--   req.params    values of the pattern's :name and *name segments
--   req.id        request id, also sent back as X-Request-Id
--   req.client    client address
--   req.client_key    what per-address limits count it under: the address,
--                     or for IPv6 its /64 ("2001:db8:1:2::/64")
--   req.headers   header values by name, case-insensitive   (read on first use)
--   req.cookies   the Cookie header's values by name (luahost.cookie)
--   req.query     decoded query arguments; the first of a repeated name wins
--   req.body      request body as a string, "" when there is none
--   req.https     true when a trusted proxy says the client used HTTPS
--   req.fingerprint   the client fingerprint (16 hex), computed once; over
--                     the client key (luahost.fingerprint takes an IPv6
--                     address as its /64) and the headers
--   req.csp_nonce     this response's CSP nonce, for inline scripts and styles
--
--   request.new(method, path, id, client, params, data, https) -> req
--       data (optional) presets headers, query and body, for tests.
local cookie = require "luahost.cookie"
local fingerprint = require "luahost.fingerprint"
local headers = require "luahost.headers"
local netaddr = require "luahost.netaddr"
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

local from_connection = { headers = true, query = true, body = true }
local find = string.find

local host_fingerprint
local computed = {
    csp_nonce = function()
        return headers.nonce()
    end,
    cookies = function(req)
        return cookie.parse(req.headers["cookie"])
    end,
    -- One IPv6 subscriber holds a whole /64: counted as one client.
    client_key = function(req)
        local client = req.client
        return find(client, ":", 1, true) and netaddr.client_key(client) or client
    end,
    fingerprint = function(req)
        host_fingerprint = host_fingerprint or assert(fingerprint.host())
        if rawget(req, "headers") == nil then
            local fp = host_fingerprint:of_request(req.id)
            if fp then
                return fp
            end
        end
        local h = req.headers
        return host_fingerprint:compute(req.client, h["user-agent"], h["accept-language"],
            h["x-forwarded-for"])
    end,
}

local request_mt = {
    __index = function(req, field)
        local value
        if from_connection[field] then
            local err
            value, err = request_data(req.id, field)
            if value == nil then
                error("req." .. field .. ": " .. err, 2)
            end
            if field == "headers" then
                setmetatable(value, header_mt)
            end
        elseif computed[field] then
            value = computed[field](req)
        else
            return nil
        end
        rawset(req, field, value)
        return value
    end,
}

local no_params = setmetatable({}, {
    __newindex = function()
        error("req.params is read-only for a route without parameters", 2)
    end,
})

function M.new(method, path, id, client, params, data, https)
    local req = setmetatable({
        method = method,
        path = path,
        id = id,
        client = client,
        params = params or no_params,
        https = https == true,
    }, request_mt)
    if data then
        req.headers = headers_of(data.headers or {})
        req.query = data.query or {}
        req.body = data.body or ""
    end
    return req
end

return M
