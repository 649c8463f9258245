-- luahost.security: the policies every request passes through (rate limits,
-- bot detection, security headers), compiled from a policy directory once per
-- load: limits.lua, bot.lua, headers.lua and csp.lua.
--
--   security.load(dir) -> policy          raises "file:line: message", or
--       "file: what: why" for a value of the wrong kind, an unknown key (a
--       misspelt one would silently drop its setting) or a name that
--       applies to nothing (a CSP directive, a header policy). A csp.lua
--       policy no header policy uses is only warned about: one csp.lua may
--       serve several apps with smaller headers.lua files.
--   security.none() -> policy             no limits, no security headers
--   policy.before(route, req, res) -> true | false
--       false: res holds the 429. route is the routes.lua key.
--   policy.header_set(route, res) -> set | nil
--       the compiled headers for the response (res.security names a policy
--       of headers.lua, e.g. "svg"; else the route's, else "default"). A
--       res.security naming no policy gets "default", and an error line the
--       first time the worker meets that name.
--   policy.routes -> { ["POST /csp-report"] = handler }
--       routes the policies serve themselves (the CSP report endpoint).
--   policy.route_keys -> { ["GET /path"] = "dir/limits.lua" }
--       the routes the policy files name, with the file (for app.load to
--       warn about the ones the app does not have).
--   policy.warnings -> { "dir/csp.lua: ...", ... }
--       what the load found worth a warning, for app.load to log once.
local cjson_safe = require "cjson.safe"
local fingerprint = require "luahost.fingerprint"
local headers = require "luahost.headers"
local log = require "luahost.log"
local metrics = require "luahost.metrics"
local netaddr = require "luahost.netaddr"
local ratelimit = require "luahost.ratelimit"

local find, floor, time = string.find, math.floor, os.time
local ipv6_network = netaddr.ipv6_network

local M = {}

local function by_text(a, b)
    return tostring(a) < tostring(b)
end

-- The keys of t, sorted as text: messages then do not depend on the order
-- of pairs.
local function sorted_keys(t)
    local keys = {}
    for key in pairs(t) do
        keys[#keys + 1] = key
    end
    table.sort(keys, by_text)
    return keys
end

-- The keys of t, sorted and joined by ", ": the known names in a message.
local function listing(t)
    local names = sorted_keys(t)
    for i, key in ipairs(names) do
        names[i] = tostring(key)
    end
    return table.concat(names, ", ")
end

-- The keys a policy table may have: name -> the type of its value ("any":
-- checked where it is read). note ends the list of known keys in messages.
local function keyset(types, note)
    return { types = types, listing = listing(types) .. (note or "") }
end

-- Raises "where: unknown key k (known keys)" for a key of t that keys lacks,
-- unless other(value) admits it, and "where: k must be a T, got U": a
-- misspelt key must not silently drop its setting.
local function check_keys(t, keys, where, other)
    for key, value in pairs(t) do
        local want = keys.types[key]
        if want == nil and not (other and other(value)) then
            error(("%s: unknown key %s (%s)"):format(where, tostring(key), keys.listing), 0)
        elseif want and want ~= "any" and type(value) ~= want then
            error(("%s: %s must be a %s, got %s"):format(where, key, want, type(value)), 0)
        end
    end
end

local LIMITS_KEYS = keyset { default = "any", per_ip = "any", per_network = "table", routes = "any",
    exempt = "any" }
local NETWORK_KEYS = keyset { limit = "any", ipv6_prefix = "number" }
-- bot.lua's own heuristics may use helper functions of any name.
local BOT_KEYS = keyset({ threshold = "number", window = "number", is_bot = "function",
    retry_after = "number", log_per_minute = "number", suspicious = "function",
    suspicious_agents = "table" }, "; or a function of your own: keep other data in locals")
local HEADER_POLICY_KEYS = keyset { headers = "table", hsts = "string", csp = "boolean" }

local function is_function(value)
    return type(value) == "function"
end

-- The directives of CSP Level 3 (with those of Level 2, and deprecated ones
-- browsers still read); csp.lua's names are checked against them, so that a
-- misspelt one is refused rather than sent and ignored by every browser.
local CSP_DIRECTIVES = {}
for name in ([[default-src script-src style-src img-src font-src connect-src media-src
        object-src frame-src child-src worker-src manifest-src prefetch-src fenced-frame-src
        script-src-elem script-src-attr style-src-elem style-src-attr base-uri form-action
        frame-ancestors navigate-to sandbox report-uri report-to upgrade-insecure-requests
        block-all-mixed-content require-trusted-types-for trusted-types webrtc plugin-types
        require-sri-for]]):gmatch("%S+") do
    CSP_DIRECTIVES[name] = true
end

local function load_file(dir, name)
    local file = dir .. "/" .. name .. ".lua"
    local chunk, err = loadfile(file)
    if not chunk then
        error(err, 0)
    end
    local value = chunk()
    if type(value) ~= "table" then
        error(file .. ": must return a table, returned " .. type(value), 0)
    end
    return value, file
end

local function parse_limits(spec, file, what)
    if type(spec) ~= "string" then
        error(("%s: %s must be a limit string such as \"500 per hour\", got %s"):format(file, what,
            type(spec)), 0)
    end
    local rates, err = ratelimit.parse(spec)
    if not rates then
        error(("%s: %s: %s"):format(file, what, err), 0)
    end
    return rates
end

-- Slots of the keys given to limiter:check.
local FINGERPRINT, ADDRESS, NETWORK = 1, 2, 3
local MAX_RULES = 8       -- a check's rules, the bot counter included (luahost.ratelimit)
local MAX_SUFFIX = 40     -- a route's key suffix; a longer route is named by a digest
local NETWORK_PREFIX = 48 -- per_network's ipv6_prefix when it has none
local BOT_RETRY = 60      -- bot.lua's retry_after when it has none, in seconds
local MAX_BOT_RETRY = 86400 -- the longest retry_after (and hold), in seconds
local MAX_LIMIT = 1000000000 -- the limiter's largest limit and window (366 days)
local MAX_WINDOW = 366 * 86400
local BOT_MESSAGE = "Too many requests - bot behavior detected"

-- The Redis key suffix of a route's own limit: the route itself, or for a
-- long one a digest of it (stable across instances and reloads).
local function route_suffix(route)
    if #route + 1 <= MAX_SUFFIX then
        return ":" .. route
    end
    return ":" .. fingerprint.hmac_sha256("luahost route", route):sub(1, 32)
end

-- value, which limits.lua must give as a table; else an error naming the file.
local function table_of(value, file, what)
    if type(value) ~= "table" then
        error(("%s: %s, got %s"):format(file, what, type(value)), 0)
    end
    return value
end

-- limits.lua's per_network: { prefix = bits, rates = ... }, or nil without one.
local function parse_per_network(spec, file)
    if spec == nil then
        return nil
    end
    check_keys(spec, NETWORK_KEYS, file .. ": per_network")
    local prefix = spec.ipv6_prefix or NETWORK_PREFIX
    -- Wider than a /32 is a whole provider; a /64 is per_ip's own key.
    if prefix % 1 ~= 0 or prefix < 32 or prefix > 64 then
        error(("%s: per_network: ipv6_prefix must be a whole number from 32 to 64, got %s"):format(
            file, tostring(prefix)), 0)
    end
    if spec.limit == nil then
        error(file .. ': per_network needs a limit such as "40000 per day"', 0)
    end
    return { prefix = prefix, rates = parse_limits(spec.limit, file, "per_network.limit") }
end

-- Returns ruleset_of(route) -> { v4 = ruleset, v6 = ruleset } | nil (either
-- ruleset may be nil: nothing to check for that client), the exempt set and
-- per_network's prefix (nil without per_network). bot_retry: how long a bot
-- is held.
local function compile_limits(limits, bot, bot_retry, file)
    check_keys(limits, LIMITS_KEYS, file)
    local per_ip = limits.per_ip and parse_limits(limits.per_ip, file, "per_ip") or {}
    local per_network = parse_per_network(limits.per_network, file)
    local default = limits.default and parse_limits(limits.default, file, "default") or {}
    local rulesets = {}

    -- rates per fingerprint (nil: none, and no bot counting), then the
    -- address ceilings: per_ip, and with network (an IPv6 client's check)
    -- per_network. nil when that makes no rule.
    local function ruleset(rates, suffix, what, network)
        local rules = {}
        local function add(list, slot, prefix, key_suffix)
            for _, r in ipairs(list) do
                rules[#rules + 1] = { slot = slot, prefix = prefix, suffix = key_suffix,
                                      limit = r.limit, window = r.window }
            end
        end
        add(rates or {}, FINGERPRINT, "rl:", suffix)
        add(per_ip, ADDRESS, "rl:ip:")
        if network then
            add(per_network.rates, NETWORK, "rl:net:")
        end
        if rates then
            -- Past the threshold the limiter holds the fingerprint for
            -- retry_after, beyond the counter's window.
            rules[#rules + 1] = { slot = FINGERPRINT, prefix = "pattern:", limit = bot.threshold,
                                  window = bot.window, counter = true, hold = bot_retry }
        end
        if #rules > MAX_RULES then
            local ceilings = network and ", per_ip and per_network" or " and per_ip"
            error(("%s: %s%s make %d limits with the bot counter; at most %d"):format(file, what,
                ceilings, #rules, MAX_RULES), 0)
        end
        return #rules > 0 and ratelimit.ruleset(rules) or nil
    end

    -- A route's rulesets for IPv4 and IPv6 clients (the latter with
    -- per_network); false when neither has a rule.
    local function checks(rates, suffix, what)
        local v4 = ruleset(rates, suffix, what, false)
        local v6 = per_network and ruleset(rates, suffix, what, true) or v4
        return (v4 or v6) and { v4 = v4, v6 = v6 } or false
    end

    local default_set = checks(default, "", "default")
    local routes = table_of(limits.routes or {}, file, 'routes must be a table of "METHOD /path" = limit')
    for route, spec in pairs(routes) do
        local what = ("routes[%q]"):format(tostring(route))
        if type(route) ~= "string" then
            error(("%s: %s: route keys are strings such as \"GET /path\""):format(file, what), 0)
        elseif spec == false then
            rulesets[route] = false
        elseif spec == "per_ip" then
            rulesets[route] = checks(nil, "", what)
        elseif type(spec) == "string" then
            rulesets[route] = checks(parse_limits(spec, file, what), route_suffix(route), what)
        else
            error(("%s: %s must be a limit string, \"per_ip\" or false"):format(file, what), 0)
        end
    end
    local exempt_list = table_of(limits.exempt or {}, file,
        'exempt must be a list of CIDRs such as { "10.0.0.0/8" }')
    for i, cidr in ipairs(exempt_list) do
        if type(cidr) ~= "string" then
            error(("%s: exempt[%d] must be a CIDR string, got %s"):format(file, i, type(cidr)), 0)
        end
    end
    local exempt, err = netaddr.cidr_set(table.concat(exempt_list, ","))
    if not exempt then
        error(file .. ": exempt: " .. err, 0)
    end
    return function(route)
        local rs = rulesets[route]
        if rs == nil then
            return default_set
        end
        return rs or nil
    end, exempt, per_network and per_network.prefix
end

-- headers.lua's policies, checked: each a table of known keys, with headers.
-- Returns the set of their names.
local function check_header_policies(policies, file)
    local names = {}
    for name, p in pairs(policies) do
        if name ~= "routes" then
            local what = ("%s: policy %q"):format(file, tostring(name))
            table_of(p, file, ("policy %q must be a table { headers = ..., hsts = ... }"):format(
                tostring(name)))
            check_keys(p, HEADER_POLICY_KEYS, what)
            if p.headers == nil then
                error(what .. ": needs headers = { {name, value}, ... }", 0)
            end
            names[name] = true
        end
    end
    if policies.default == nil then
        error(file .. ": needs a `default` policy", 0)
    end
    return names
end

-- csp.lua's policies, checked: every directive name is a CSP directive. One
-- that names no policy of headers.lua applies to nothing: a warning, added
-- to warnings, since one csp.lua may serve apps with smaller headers.lua.
local function check_csp(csp, file, names, headers_file, warnings)
    for name, directives in pairs(csp) do
        local what = ("%s: policy %q"):format(file, tostring(name))
        if name == "report_uri" then
            if type(directives) ~= "string" then
                error(("%s: report_uri must be a path such as \"/csp-report\", got %s"):format(file,
                    type(directives)), 0)
            end
        else
            if not names[name] then
                warnings[#warnings + 1] = ("%s is not a policy of %s (%s); it applies to nothing")
                    :format(what, headers_file, listing(names))
            end
            table_of(directives, file, ("policy %q must be a list of { directive, { sources... } }")
                :format(tostring(name)))
            for i, d in ipairs(directives) do
                local directive = type(d) == "table" and d[1]
                if type(directive) == "string" and not CSP_DIRECTIVES[directive:lower()] then
                    error(("%s: csp[%d] (%s): not a CSP directive"):format(what, i, directive), 0)
                end
            end
        end
    end
end

-- The compiled header set of each policy of headers.lua, with its CSP from
-- csp.lua (the policy of the same name, else `default`). An error names the
-- file it comes from: headers.compile's messages start with the field.
local function compile_headers(policies, csp, headers_file, csp_file, warnings)
    check_csp(csp, csp_file, check_header_policies(policies, headers_file), headers_file, warnings)
    local sets = {}
    for _, name in ipairs(sorted_keys(policies)) do
        local p = policies[name]
        if name ~= "routes" then
            local csp_name = csp[name] and name or "default"
            -- csp = false in a header policy: no Content-Security-Policy at all.
            local directives = p.csp ~= false and csp[csp_name] or nil
            if p.csp ~= false and not directives then
                error(("%s: needs a `default` policy: %s's %q has none of its own here (csp = "
                    .. "false there sends no CSP)"):format(csp_file, headers_file, name), 0)
            end
            local set, err = headers.compile({
                headers = p.headers,
                hsts = p.hsts,
                csp = directives,
                report_uri = directives and csp.report_uri or nil,
            })
            if not set then
                if err:find("^csp") or err:find("^report_uri") then
                    error(("%s: policy %q: %s"):format(csp_file, csp_name, err), 0)
                end
                error(("%s: policy %q: %s"):format(headers_file, name, err), 0)
            end
            sets[name] = set
        end
    end
    return sets
end

-- headers.lua's routes: route key -> the name of one of its policies.
local function route_policies(policies, sets, file)
    local routes = table_of(policies.routes or {}, file,
        'routes must be a table of "METHOD /path" = policy name')
    for route, name in pairs(routes) do
        local what = ("%s: routes[%q]"):format(file, tostring(route))
        if type(route) ~= "string" then
            error(what .. ': route keys are strings such as "GET /path"', 0)
        elseif sets[name] == nil then
            error(("%s: no policy %s here (%s)"):format(what, log.quote(name), listing(sets)), 0)
        end
    end
    return routes
end

-- What header_set does with a res.security that names no policy: the default
-- set, and an error line the first time the worker meets the name.
local function unknown_policy(sets, file)
    local seen = {}
    return function(name, route)
        if not seen[name] then
            seen[name] = true
            log.error(("route %s: res.security = %s is not a policy of %s (%s); sent \"default\""):format(
                log.quote(route), log.quote(name), file, listing(sets)))
        end
        return sets.default
    end
end

local function check_bot(bot, file)
    check_keys(bot, BOT_KEYS, file, is_function)
    if bot.threshold == nil or bot.window == nil or bot.is_bot == nil then
        error(file .. ": needs threshold, window and is_bot", 0)
    end
    -- Written so that NaN (0/0) fails too: it would refuse every client.
    local function whole(key, low, high, unit)
        local v = bot[key]
        if v ~= nil and not (v >= low and v <= high and v % 1 == 0) then
            error(("%s: %s must be a whole number%s from %d to %d, got %s"):format(
                file, key, unit, low, high, tostring(v)), 0)
        end
    end
    whole("threshold", 1, MAX_LIMIT, "")
    whole("window", 1, MAX_WINDOW, " of seconds")
    whole("retry_after", 1, MAX_BOT_RETRY, " of seconds")
    whole("log_per_minute", 0, MAX_LIMIT, "")
end

-- The security log: suspicious requests, at most per_minute lines a minute.
local function security_logger(per_minute)
    local minute, lines, dropped = 0, 0, 0
    return function(req, why)
        local now = floor(time() / 60)
        if now ~= minute then
            if dropped > 0 then
                log.warn("security: " .. dropped .. " more suspicious requests not logged")
            end
            minute, lines, dropped = now, 0, 0
        end
        if lines >= per_minute then
            dropped = dropped + 1
            return
        end
        lines = lines + 1
        log.warn(("security: %s from %s (%s %s, User-Agent %s)"):format(why, req.client,
            req.method, log.quote(req.path), log.quote(req.headers["user-agent"])))
    end
end

local function too_many(res, message, retry_after)
    res.status = 429
    res.headers["Retry-After"] = tostring(retry_after)
    res:json({ success = false, error = message, retry_after = retry_after })
end

-- Largest CSP report body accepted, in bytes; browsers send about 1 KiB.
local MAX_REPORT = 8192

local function report_handler(security_log)
    return function(req, res)
        local body = req.body
        if #body > MAX_REPORT then
            return res:json({ success = false, message = "Report too large" }, 413)
        end
        local report = cjson_safe.decode(body)
        local r = type(report) == "table" and report["csp-report"]
        if r == nil and type(report) == "table" and type(report[1]) == "table" then
            r = report[1].body -- the Reporting API's array of reports
        end
        local function text(a, b)
            local v = type(r) == "table" and (r[a] or r[b])
            return type(v) == "string" and v or nil
        end
        -- An object with at least one of a report's fields: not [1, 2].
        if not (text("violated-directive", "effectiveDirective") or text("blocked-uri", "blockedURL")
                or text("document-uri", "documentURL")) then
            return res:json({ success = false, message = "Not a CSP report" }, 400)
        end
        local function field(a, b)
            local v = text(a, b)
            return log.quote(v and v:sub(1, 200) or "?")
        end
        security_log(req, ("CSP violation: %s blocked %s on %s"):format(
            field("violated-directive", "effectiveDirective"), field("blocked-uri", "blockedURL"),
            field("document-uri", "documentURL")))
        res.status = 204
    end
end

function M.load(dir)
    local limits, limits_file = load_file(dir, "limits")
    local bot, bot_file = load_file(dir, "bot")
    local header_policies, headers_file = load_file(dir, "headers")
    local csp, csp_file = load_file(dir, "csp")
    check_bot(bot, bot_file)
    local bot_retry = bot.retry_after or BOT_RETRY
    local ruleset_of, exempt, network_prefix = compile_limits(limits, bot, bot_retry, limits_file)
    local warnings = {}
    local sets = compile_headers(header_policies, csp, headers_file, csp_file, warnings)
    local route_sets = route_policies(header_policies, sets, headers_file)
    local unknown_set = unknown_policy(sets, headers_file)
    local limiter = ratelimit.host()
    local security_log = security_logger(bot.log_per_minute or 60)
    local rejections = metrics.core("ratelimit_rejections_total")
    local bot_detections = metrics.core("bot_detections_total")
    local local_decisions = metrics.core("ratelimit_local_decisions_total")

    local policy = {}

    -- A bot's 429: its rate-limit headers describe the bot rule, spent until
    -- the refusal ends, so that they agree with Retry-After (the limits' own
    -- figures would promise requests left, or a wait of hours).
    local function refuse_bot(res, retry_after)
        res.ratelimit = { limit = bot.threshold, remaining = 0, reset = retry_after, window = bot.window }
        too_many(res, BOT_MESSAGE, retry_after)
    end

    function policy.before(route, req, res)
        local set = ruleset_of(route)
        if set == nil or limiter == nil or exempt:contains(req.client) then
            return true
        end
        local client = req.client
        -- An IPv6 client's network, for per_network; nil for IPv4.
        local network = network_prefix and find(client, ":", 1, true)
            and ipv6_network(client, network_prefix)
        local rs = network and set.v6 or set.v4
        if rs == nil then
            return true
        end
        local why = bot.suspicious and bot.suspicious(req)
        if why then
            security_log(req, why)
        end
        local allowed, retry, limit, remaining, reset, window, count, is_local, held, hold_started =
            limiter:check(rs, req.fingerprint, req.client_key, network)
        if is_local then
            local_decisions:inc()
        end
        if limit > 0 then
            -- The server turns it into the X-RateLimit-* and RateLimit headers.
            res.ratelimit = { limit = limit, remaining = remaining, reset = reset, window = window }
        end
        if held > 0 then
            -- Past the threshold: refused until the hold ends, however the
            -- counter's window turns; logged and detected once, as it
            -- starts, and each refusal a rejection (a flood shows).
            rejections:inc()
            if hold_started then
                security_log(req, "bot behavior: " .. count .. " requests in " .. bot.window
                    .. " s; held " .. held .. " s")
                bot_detections:inc()
            end
            refuse_bot(res, held)
            return false
        end
        if bot.is_bot(req, count) then
            -- A heuristic of bot.lua's own, under the threshold: this request only.
            security_log(req, "bot behavior: " .. count .. " requests in " .. bot.window .. " s")
            bot_detections:inc()
            refuse_bot(res, bot_retry)
            return false
        end
        if not allowed then
            rejections:inc()
            too_many(res, "Too many requests", retry > 0 and retry or 1)
            return false
        end
        return true
    end

    function policy.header_set(route, res)
        local name = res.security or route_sets[route] or "default"
        return sets[name] or unknown_set(name, route)
    end

    policy.routes = {}
    policy.route_keys = {}
    policy.warnings = warnings
    for route in pairs(limits.routes or {}) do
        policy.route_keys[route] = limits_file
    end
    for route in pairs(route_sets) do
        policy.route_keys[route] = headers_file
    end
    if csp.report_uri then
        -- A budget of its own: a flood of reports, which anyone can send,
        -- must not silence the lines about bots and suspicious requests.
        policy.routes["POST " .. csp.report_uri] = report_handler(security_logger(bot.log_per_minute or 60))
    end

    return policy
end

function M.none()
    return {
        before = function()
            return true
        end,
        header_set = function()
            return nil
        end,
        routes = {},
        warnings = {},
    }
end

return M
