-- luahost.app: turns an application directory into a dispatch function.
--
--   app.load(dir[, policy[, watch[, report]]]) -> dispatch
--       Runs dir/routes.lua, which returns { ["METHOD /pattern"] = handler },
--       and adds the monitoring routes (luahost.monitoring) it does not define.
--       Raises "file:line: message" when a script or a route is bad. policy
--       (from luahost.security) runs before each handler; none by default.
--       watch (from luahost.monitoring.load) gives each route's slow-request
--       threshold; 500 ms by default. report: log the load's warnings (a
--       policy naming a route the app does not have, a route whose method is
--       not a standard one); one worker does.
--   app.start(dir, lua_path, policy_dir, report) -> dispatch, default header set
--       What a worker runs at start and on reload: sets package.path, makes
--       undeclared globals an error, loads the policies of policy_dir ("" for
--       none), then app.load. The header set (or nil) is for the answers the
--       server makes itself (500, 413, 431).
--   dispatch(method, path, id, client, https)
--       -> status, body, headers, security header set, CSP nonce, stream
--          ("monitor" or nil), rate limit (res.ratelimit), JSON value
--          (res:json's, not yet encoded: the core encodes it when body is
--          nil); the matched route's metrics id goes to the core first
--          (worker.set_route), so that a failing handler's 500 is counted on
--          its route
local json = require "luahost.json"
local log = require "luahost.log"
local metrics = require "luahost.metrics"
local monitoring = require "luahost.monitoring"
local router = require "luahost.router"
local request = require "luahost.request"
local response = require "luahost.response"
local security = require "luahost.security"
local worker = require "luahost.worker"

local M = {}

local JSON = "application/json"
local NOT_FOUND = json.encode({ success = false, message = "Not found" })
local NOT_ALLOWED = json.encode({ success = false, message = "Method not allowed" })

-- "file:line" of the line of file that reads ["key"] =, or just file.
local function key_where(file, key)
    local f = io.open(file)
    if not f then
        return file
    end
    local n, found = 0, nil
    for line in f:lines() do
        n = n + 1
        local at = line:find(key, 1, true)
        if at and line:sub(1, at - 1):find("%[%s*[\"']$")
            and line:sub(at + #key):find("^[\"']%s*%]%s*=") then
            found = file .. ":" .. n
            break
        end
    end
    f:close()
    return found or file
end

-- "file:line" of a route: where its Lua handler is defined, else the line
-- of the routes file naming its key, else just the routes file.
local function where(handler, file, key)
    local info = type(handler) == "function" and debug.getinfo(handler, "S")
    if not info or info.what == "C" then
        return key_where(file, tostring(key))
    end
    return info.short_src .. ":" .. info.linedefined
end

-- The methods of RFC 9110, PATCH and WebDAV's (RFC 4918; and "*", any
-- method); others are legitimate but more often a typo ("GTE"), which no
-- client sends: a warning, not an error.
local STANDARD_METHODS = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
    "CONNECT", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK" }
local STANDARD_LIST = table.concat(STANDARD_METHODS, ", ")
local STANDARD = { ["*"] = true }
for _, method in ipairs(STANDARD_METHODS) do
    STANDARD[method] = true
end

-- The router's identity of a pattern: its parameter names left out, so that
-- /users/:id and /users/:name read the same.
local function shape(method, pattern)
    return method .. " " .. pattern:gsub("([:*])[%w_]+", "%1")
end

-- Warns about each key of route_keys (route -> the policy file naming it)
-- that routes lacks: its setting applies to nothing.
local function warn_missing(routes, route_keys, file, warn)
    for key, source in pairs(route_keys or {}) do
        if routes[key] == nil then
            warn(("%s: %q is not a route of %s; its setting applies to nothing"):format(
                source, key, file))
        end
    end
end

-- Adds the routes of extra that routes does not define.
local function add_missing(routes, extra)
    for key, handler in pairs(extra) do
        if routes[key] == nil then
            routes[key] = handler
        end
    end
end

function M.load(dir, policy, watch, report)
    policy = policy or security.none()
    watch = watch or monitoring.none()
    local file = dir .. "/routes.lua"
    local chunk, err = loadfile(file)
    if not chunk then
        error(err, 0)
    end
    local routes = chunk()
    if type(routes) ~= "table" then
        error(file .. ": must return a table of routes, returned " .. type(routes), 0)
    end

    -- The policies' own routes (the CSP report endpoint) and the monitoring
    -- routes, unless the app has them.
    add_missing(routes, policy.routes)
    add_missing(routes, monitoring.routes)
    -- The load's warnings, from one worker; a misspelt key in limits.lua,
    -- headers.lua or alerts.lua would apply to nothing.
    local warn = report and log.warn or function() end
    warn_missing(routes, policy.route_keys, file, warn)
    warn_missing(routes, watch.route_keys, file, warn)
    for _, line in ipairs(policy.warnings or {}) do
        warn(line)
    end
    local r = router.new()
    local handlers, keys, ids, shapes = {}, {}, {}, {}
    for key, handler in pairs(routes) do
        if type(handler) ~= "function" then
            error(("%s: route %q: handler must be a function, got %s"):format(
                where(handler, file, key), tostring(key), type(handler)), 0)
        end
        local method, pattern = tostring(key):match("^([%u*]+)%s+(/%S*)$")
        if not method then
            error(("%s: route %q: key must read \"METHOD /path\""):format(where(handler, file, key),
                tostring(key)), 0)
        end
        handlers[#handlers + 1] = handler
        keys[#handlers] = key
        ids[#handlers] = metrics.route_id(key)
        metrics.set_slow(ids[#handlers], watch.slow_seconds(key))
        local ok, why = r:add(method, pattern, #handlers)
        local route_shape = shape(method, pattern)
        if not ok then
            local same = shapes[route_shape]
            if same then -- name both: the order of pairs decides which is second
                why = ("%s of %q (%s)"):format(why, same, where(routes[same], file, same))
            end
            error(("%s: route %q: %s"):format(where(handler, file, key), key, why), 0)
        end
        shapes[route_shape] = key
        if report and not STANDARD[method] then
            warn(("%s: route %q: %s is not a standard HTTP method (%s); only requests with that "
                .. "exact method reach it"):format(where(handler, file, key), key, method, STANDARD_LIST))
        end
    end

    local match, new_request, new_response = r.match, request.new, response.new
    local set_route = worker.set_route
    local before, header_set = policy.before, policy.header_set

    -- The answer of req and res, as dispatch returns it.
    local function answer(route, req, res)
        -- rawget: reading res.body would encode res:json's value here, in Lua.
        return res.status, rawget(res, "body"), res.headers, header_set(route, res),
            rawget(req, "csp_nonce"), res.stream, res.ratelimit, rawget(res, "json_value")
    end

    -- Unknown paths and methods (allow: the methods the path has) pass the
    -- policies too, with the default limits: scanners and probes are
    -- counted, limited and logged. OPTIONS on a known path, unless a route
    -- takes it, is answered with its methods (RFC 9110 section 9.3.7).
    local function unmatched(method, path, id, client, https, allow)
        local req, res = new_request(method, path, id, client, nil, nil, https), new_response()
        if before(nil, req, res) then
            if allow and method == "OPTIONS" then
                res.status, res.headers.Allow = 204, allow .. ", OPTIONS"
                return answer(nil, req, res)
            end
            res.headers["Content-Type"] = JSON
            if allow then
                res.status, res.body, res.headers.Allow = 405, NOT_ALLOWED, allow .. ", OPTIONS"
            else
                res.status, res.body = 404, NOT_FOUND
            end
        end
        return answer(nil, req, res)
    end

    return function(method, path, id, client, https)
        local index, params = match(r, method, path)
        if not index then
            return unmatched(method, path, id, client, https, params)
        end
        local route = keys[index]
        set_route(ids[index])
        local req = new_request(method, path, id, client, params, nil, https)
        local res = new_response()
        if before(route, req, res) then
            handlers[index](req, res)
        end
        return answer(route, req, res)
    end
end

local function lock_globals()
    setmetatable(_G, {
        __newindex = function(_, name)
            error("assignment to undeclared global '" .. tostring(name) .. "'", 2)
        end,
        __index = function(_, name)
            error("undeclared global '" .. tostring(name) .. "'", 2)
        end,
    })
end

function M.start(dir, lua_path, policy_dir, report)
    local paths = { dir .. "/?.lua", dir .. "/?/init.lua" }
    if lua_path and lua_path ~= "" then
        paths[#paths + 1] = lua_path
    end
    paths[#paths + 1] = package.path
    package.path = table.concat(paths, ";")
    -- To the error log: stdout may carry the access log.
    print = log.print
    -- It would end every worker at once, with requests in flight and no
    -- graceful shutdown: an error in the calling handler instead.
    os.exit = function()
        error("os.exit would end the whole server; stop it with SIGTERM", 2)
    end
    lock_globals()
    local has_policies = policy_dir and policy_dir ~= ""
    local policy = has_policies and security.load(policy_dir) or security.none()
    local watch = has_policies and monitoring.load(policy_dir) or monitoring.none()
    return M.load(dir, policy, watch, report), policy.header_set(nil, {})
end

return M
