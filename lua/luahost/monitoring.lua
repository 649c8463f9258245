-- luahost.monitoring: the monitoring routes every application gets (unless
-- it defines the same keys), and the alerts policy.
--
--   GET /metrics               Prometheus text        } addresses in metrics_allow,
--   GET /api/monitor/alerts    the firing alerts      } or requests the app's
--                              (JSON)                 } authorizer lets through
--   GET /monitor               the live dashboard         } the authorizer's;
--   GET /monitor/stream        its server-sent events     } without one, metrics_allow
--   (the last three answer 503 with metrics off: no sampler, no alerts)
--   GET /monitor/assets/:name  the dashboard's scripts and styles (public)
--
--   monitoring.authorize(fn)   fn(req, res) -> true | false, having answered
--       (401/403) in res when false. The application decides who watches,
--       e.g. its administrators (lua/app/routes.lua).
--   monitoring.load(dir) -> policy    alerts.lua of the policy directory:
--       { rules = { {name, metric, above|below, for_seconds, severity,
--       description}, ... }, slow_request_ms = 500, slow_routes =
--       { ["GET /path"] = ms } }. Sets the rules; raises "file: message".
--   monitoring.none() -> policy       no rules, 500 ms for every route
--   policy.slow_seconds(route_key) -> seconds
--   policy.route_keys -> { ["GET /path"] = "dir/alerts.lua" }   the routes of
--       slow_routes (for app.load to warn about the ones the app does not have)
--   monitoring.routes                 { ["GET /metrics"] = handler, ... }
local metrics = require "luahost.metrics"
local monitor = require "luahost.monitor"

local DEFAULT_SLOW_MS = 500
local FORBIDDEN = '{"success":false,"message":"Forbidden"}'
local MONITORING_OFF = { success = false, message = "Monitoring is off (metrics = off)" }

local M = {}

local authorizer

function M.authorize(fn)
    if type(fn) ~= "function" then
        error("monitoring.authorize wants a function", 2)
    end
    authorizer = fn
end

-- /metrics: the allowed addresses, or whoever the authorizer admits.
local function may_read_metrics(req, res)
    if monitor.allowed(req.client) then
        return true
    end
    if authorizer then
        return authorizer(req, res)
    end
    res.headers["Content-Type"] = "application/json"
    res.status, res.body = 403, FORBIDDEN
    return false
end

-- The dashboard: the authorizer decides; without one, the allowed addresses.
local function may_watch(req, res)
    if authorizer then
        return authorizer(req, res)
    end
    return may_read_metrics(req, res)
end

local function dashboard_html(nonce)
    local template = assert(monitor.asset("dashboard.html"), "dashboard.html is compiled in")
    return (template:gsub("{{nonce}}", nonce))
end

M.routes = {
    ["GET /metrics"] = function(req, res)
        if may_read_metrics(req, res) then
            res.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            res.body = metrics.render()
        end
    end,

    ["GET /monitor"] = function(req, res)
        if not monitor.available() then
            return res:json(MONITORING_OFF, 503)
        end
        if may_watch(req, res) then
            res.headers["Cache-Control"] = "no-store"
            res:html(dashboard_html(req.csp_nonce))
        end
    end,

    ["GET /monitor/stream"] = function(req, res)
        if not monitor.available() then
            return res:json(MONITORING_OFF, 503)
        end
        if may_watch(req, res) then
            res.headers["Content-Type"] = "text/event-stream"
            res.headers["Cache-Control"] = "no-store"
            res.stream = "monitor"
        end
    end,

    ["GET /monitor/assets/:name"] = function(req, res)
        local body, content_type = monitor.asset(req.params.name)
        if not body or req.params.name == "dashboard.html" then
            return res:json({ success = false, message = "Not found" }, 404)
        end
        res.headers["Content-Type"] = content_type
        res.headers["Cache-Control"] = "public, max-age=3600"
        res.body = body
    end,

    -- Read as /metrics is: from the allowed addresses it needs no sign-in,
    -- so that an outage of the database the authorizer asks does not hide
    -- the alert that reports it.
    ["GET /api/monitor/alerts"] = function(req, res)
        if not monitor.available() then
            return res:json(MONITORING_OFF, 503)
        end
        if may_read_metrics(req, res) then
            res.headers["Content-Type"] = "application/json"
            res.body = '{"success":true,"alerts":' .. monitor.alerts() .. "}"
        end
    end,
}

-- file: alerts.lua, which names the routes of slow_routes.
local function slow_policy(default_ms, routes, file)
    local route_keys = {}
    for key in pairs(routes) do
        route_keys[key] = file
    end
    return {
        slow_seconds = function(key)
            return (routes[key] or default_ms) / 1000
        end,
        route_keys = route_keys,
    }
end

function M.none()
    return slow_policy(DEFAULT_SLOW_MS, {})
end

function M.load(dir)
    local file = dir .. "/alerts.lua"
    local chunk, err = loadfile(file)
    if not chunk then
        if err:find("cannot open", 1, true) then
            return M.none() -- a policy directory without alerts.lua
        end
        error(err, 0)
    end
    local policy = chunk()
    if type(policy) ~= "table" then
        error(file .. ": must return a table", 0)
    end
    for key in pairs(policy) do -- a misspelt key would silently drop its rules
        if key ~= "rules" and key ~= "slow_request_ms" and key ~= "slow_routes" then
            error(("%s: unknown key %s (rules, slow_request_ms, slow_routes)"):format(file,
                tostring(key)), 0)
        end
    end
    local ok, why = pcall(monitor.set_rules, policy.rules or {})
    if not ok then
        error(file .. ": " .. tostring(why), 0)
    end
    local default_ms = policy.slow_request_ms or DEFAULT_SLOW_MS
    local routes = policy.slow_routes or {}
    -- Written so that NaN (0/0) and infinity fail too.
    local function positive(ms)
        return type(ms) == "number" and ms > 0 and ms < math.huge
    end
    if not positive(default_ms) or type(routes) ~= "table" then
        error(file .. ": slow_request_ms must be a positive number and slow_routes a table", 0)
    end
    for key, ms in pairs(routes) do
        if not positive(ms) then
            error(("%s: slow_routes[%q] must be a positive number of ms"):format(file,
                tostring(key)), 0)
        end
    end
    return slow_policy(default_ms, routes, file)
end

return M
