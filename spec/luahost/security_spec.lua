-- luahost.security: security.load compiles a policy directory (and says which
-- file is wrong), the compiled policy's before, header_set and routes, and
-- security.none. Outside a server there is no host limiter, so before lets
-- everything through; "with the server's limiter" runs the policy in a second
-- Lua state given host objects, as src/worker.c does.
local security = require "luahost.security"
local headers = require "luahost.headers"
local request = require "luahost.request"
local response = require "luahost.response"
local cjson = require "cjson"
local ffi = require "ffi"
local host_objects = require "support.host"
local lfs = require "lfs"

local POLICY = "lua/policy"
local CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    .. "Chrome/124.0.0.0 Safari/537.36"

ffi.cdef [[
struct lh_fingerprint;
struct lh_fingerprint *lh_fingerprint_new(const void *key, size_t len, const char **err);
void lh_fingerprint_free(struct lh_fingerprint *fp);
struct lh_ratelimit;
struct lh_ratelimit *lh_ratelimit_new(const void *o, const char **err);
void lh_ratelimit_free(struct lh_ratelimit *rl);
struct security_spec_options { /* include/luahost/ratelimit.h's lh_ratelimit_options, field for field */
    const char *redis_host;
    int redis_port;
    int redis_db;
    const char *redis_user;
    const char *redis_password;
    double timeout;
    size_t local_max_keys;
};
]]

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

-- A policy directory: the shipped files, with those named in files replaced
-- by the given source text (false: left out). Removed by remove_dirs().
local made = {}
local function policy_dir(files)
    local dir = os.tmpname()
    os.remove(dir)
    assert(lfs.mkdir(dir))
    made[#made + 1] = dir
    for _, name in ipairs { "limits", "bot", "headers", "csp" } do
        local source = files[name]
        if source == nil then
            source = read(POLICY .. "/" .. name .. ".lua")
        end
        if source then
            local f = assert(io.open(dir .. "/" .. name .. ".lua", "wb"))
            f:write(source)
            f:close()
        end
    end
    return dir
end

local function remove_dirs()
    for _, dir in ipairs(made) do
        for name in lfs.dir(dir) do
            if name ~= "." and name ~= ".." then
                os.remove(dir .. "/" .. name)
            end
        end
        lfs.rmdir(dir)
    end
    made = {}
end

-- The message security.load(dir) raises.
local function load_error(dir)
    local ok, err = pcall(security.load, dir)
    assert.is_false(ok, "security.load(" .. dir .. ") did not raise")
    return tostring(err)
end

-- The emitted headers of a compiled set, by name.
local function emitted(set)
    local t = {}
    for _, pair in ipairs(set:emit(headers.nonce(), true)) do
        t[pair[1]] = pair[2]
    end
    return t
end

local function req_for(method, path, client, body)
    return request.new(method, path, "rid-security", client or "192.0.2.1", nil,
        { headers = { ["User-Agent"] = CHROME }, body = body })
end

-- A window (seconds) whose current period has at least two minutes left.
local function quiet_window(from)
    local now = os.time()
    for w = from, from / 2, -1 do
        if w - now % w >= 120 then
            return w
        end
    end
end

describe("luahost.security", function()
    after_each(remove_dirs)

    describe("load", function()
        it("compiles the shipped policies", function()
            local policy = security.load(POLICY)
            assert.is_function(policy.before)
            assert.is_function(policy.header_set)
            assert.is_table(policy.routes)
        end)

        it("compiles the benchmark and test policies: each key of theirs is known", function()
            for _, dir in ipairs { "bench/policy", "bench/loadtest-policy", "spec/integration/secure/policy",
                "spec/integration/monitorapp/policy" } do
                assert.is_function(security.load(dir).before, dir)
            end
        end)

        it("raises naming limits.lua and the bad limit string", function()
            local dir = policy_dir { limits = 'return { default = "500 per hour; 5 per fortnight" }' }
            local err = load_error(dir)
            assert.matches(dir .. "/limits.lua: default: ", err, 1, true)
            assert.matches("bad limit ' 5 per fortnight'", err, 1, true)
        end)

        it("raises naming limits.lua and per_ip", function()
            local dir = policy_dir { limits = 'return { per_ip = "lots" }' }
            assert.matches(dir .. "/limits.lua: per_ip: bad limit 'lots'", load_error(dir), 1, true)
        end)

        it("raises naming limits.lua and the route of a bad route limit", function()
            local dir = policy_dir { limits = 'return { routes = { ["POST /login"] = "1 per eon" } }' }
            assert.matches(dir .. "/limits.lua: routes[\"POST /login\"]: bad limit '1 per eon'",
                load_error(dir), 1, true)
        end)

        it("raises for a route entry that is neither a limit string nor false", function()
            local dir = policy_dir { limits = 'return { routes = { ["GET /x"] = true } }' }
            assert.matches(dir .. '/limits.lua: routes["GET /x"] must be a limit string, "per_ip" or false',
                load_error(dir), 1, true)
        end)

        it("raises naming limits.lua, not its own code, for entries of the wrong type", function()
            local cases = {
                { 'return { routes = "x" }', "/limits.lua: routes must be a table" },
                { 'return { exempt = "10.0.0.0/8" }', "/limits.lua: exempt must be a list of CIDRs" },
                { 'return { exempt = { 10 } }', "/limits.lua: exempt[1] must be a CIDR string" },
                { 'return { default = 500 }', "/limits.lua: default must be a limit string" },
                { 'return { routes = { [1] = "5 per minute" } }', "/limits.lua: routes[\"1\"]: route keys are strings" },
            }
            for _, case in ipairs(cases) do
                local dir = policy_dir { limits = case[1] }
                assert.matches(dir .. case[2], load_error(dir), 1, true)
            end
        end)

        it("raises naming the limits that make more rules than a check takes", function()
            local dir = policy_dir { limits = 'return { default = "1/second;10/minute;100/hour;1000/day",'
                .. ' per_ip = "5/second;50/minute;500/hour;5000/day" }' }
            assert.matches(dir .. "/limits.lua: default and per_ip make 9 limits with the bot counter; at most 8",
                load_error(dir), 1, true)
        end)

        it("takes a limit of its own for a long route key", function()
            local long = "GET /api/v1/organisations/:organisation/projects/:project/images/:id"
            local dir = policy_dir { limits = ('return { routes = { [%q] = "5 per minute" } }'):format(long) }
            local policy = security.load(dir)
            assert.are.equal(dir .. "/limits.lua", policy.route_keys[long])
        end)

        it("raises naming limits.lua for a bad exempt address", function()
            local dir = policy_dir { limits = 'return { exempt = { "10.0.0.0/33" } }' }
            assert.matches(dir .. "/limits.lua: exempt: ", load_error(dir), 1, true)
        end)

        it("raises naming limits.lua for a limit above what the limiter takes", function()
            -- Parses, but ratelimit.ruleset takes at most 1000000000 requests.
            local dir = policy_dir { limits = 'return { default = "2000000000 per day" }' }
            assert.matches(dir .. "/limits.lua", load_error(dir), 1, true)
        end)

        it("raises with file and line for a syntax error", function()
            local dir = policy_dir { limits = "return {\n  default = 500 per hour\n}" }
            assert.matches(dir .. "/limits.lua:2:", load_error(dir), 1, true)
        end)

        it("raises when a file does not return a table", function()
            local dir = policy_dir { limits = 'return "2000 per day"' }
            assert.matches(dir .. "/limits.lua: must return a table, returned string",
                load_error(dir), 1, true)
        end)

        it("raises naming a missing file", function()
            local dir = policy_dir { csp = false }
            assert.matches(dir .. "/csp.lua", load_error(dir), 1, true)
        end)

        it("raises naming bot.lua when is_bot is missing", function()
            local dir = policy_dir { bot = "return { window = 10, threshold = 50 }" }
            assert.matches(dir .. "/bot.lua: needs threshold, window and is_bot", load_error(dir), 1, true)
        end)

        it("raises naming bot.lua when the threshold is missing", function()
            local dir = policy_dir { bot = "return { window = 10, is_bot = function() return false end }" }
            assert.matches(dir .. "/bot.lua: needs threshold, window and is_bot", load_error(dir), 1, true)
        end)

        it("raises naming headers.lua without a default policy", function()
            local dir = policy_dir { headers = 'return { svg = { headers = { { "X-A", "1" } } } }' }
            assert.matches(dir .. "/headers.lua: needs a `default` policy", load_error(dir), 1, true)
        end)

        -- A misspelt key must not silently drop its setting.
        it("raises naming limits.lua, the unknown key and the known keys", function()
            local dir = policy_dir { limits = 'return { defualt = "5 per minute", per_ip = "9/minute" }' }
            assert.are.equal(dir .. "/limits.lua: unknown key defualt (default, exempt, per_ip, "
                .. "per_network, routes)", load_error(dir))
        end)

        it("raises naming limits.lua and what is wrong with per_network", function()
            local cases = {
                { 'per_network = "40000 per day"', "/limits.lua: per_network must be a table, got string" },
                { 'per_network = { limt = "5/minute" }',
                    "/limits.lua: per_network: unknown key limt (ipv6_prefix, limit)" },
                { "per_network = { ipv6_prefix = 48 }",
                    '/limits.lua: per_network needs a limit such as "40000 per day"' },
                { 'per_network = { limit = "5 per eon" }',
                    "/limits.lua: per_network.limit: bad limit '5 per eon'" },
                { "per_network = { limit = 5 }", "/limits.lua: per_network.limit must be a limit string" },
                { 'per_network = { ipv6_prefix = "48", limit = "5/minute" }',
                    "/limits.lua: per_network: ipv6_prefix must be a number, got string" },
            }
            for _, bits in ipairs { 31, 65, 48.5, 0 } do
                cases[#cases + 1] = {
                    ('per_network = { ipv6_prefix = %s, limit = "5/minute" }'):format(bits),
                    "/limits.lua: per_network: ipv6_prefix must be a whole number from 32 to 64, got "
                        .. bits,
                }
            end
            for _, case in ipairs(cases) do
                local dir = policy_dir { limits = "return { " .. case[1] .. " }" }
                assert.matches(dir .. case[2], load_error(dir), 1, true)
            end
        end)

        it("takes per_network with the default prefix, and with one of 32 to 64", function()
            for _, spec in ipairs { '{ limit = "5/minute" }', '{ ipv6_prefix = 32, limit = "5/minute" }',
                '{ ipv6_prefix = 64, limit = "5/minute" }' } do
                local dir = policy_dir { limits = "return { per_network = " .. spec .. " }" }
                assert.is_function(security.load(dir).before, spec)
            end
        end)

        it("counts per_network among a check's limits, for IPv6 clients", function()
            -- 7 for an IPv4 client, 9 for an IPv6 one.
            local dir = policy_dir { limits = 'return { default = "1/second;10/minute;100/hour;1000/day",'
                .. ' per_ip = "5/second;50/minute", per_network = { limit = "500/hour;5000/day" } }' }
            assert.matches(dir .. "/limits.lua: default, per_ip and per_network make 9 limits with the "
                .. "bot counter; at most 8", load_error(dir), 1, true)
        end)

        it("raises naming bot.lua and an unknown setting, but takes functions of its own", function()
            local shipped = read(POLICY .. "/bot.lua")
            local dir = policy_dir { bot = shipped:gsub("retry_after = 60", "retry_afer = 60", 1) }
            assert.are.equal(dir .. "/bot.lua: unknown key retry_afer (is_bot, log_per_minute, "
                .. "retry_after, suspicious, suspicious_agents, threshold, window; or a function of "
                .. "your own: keep other data in locals)", load_error(dir))

            dir = policy_dir { bot = shipped:gsub("\nreturn M",
                "\nfunction M.headless(req) return false end\nreturn M", 1) }
            assert.is_function(security.load(dir).before)
        end)

        it("raises naming bot.lua for a retry_after that is not a whole number of seconds", function()
            for _, retry in ipairs { 0, -5, 1.5, 86401 } do
                local dir = policy_dir { bot = read(POLICY .. "/bot.lua"):gsub("retry_after = 60",
                    "retry_after = " .. retry, 1) }
                assert.are.equal(dir .. "/bot.lua: retry_after must be a whole number of seconds from 1 "
                    .. "to 86400, got " .. retry, load_error(dir))
            end
        end)

        it("raises naming bot.lua for a threshold, window or log_per_minute out of range, NaN included", function()
            local cases = {
                { "threshold = 50", "threshold = 0/0", "threshold must be a whole number from 1 to 1000000000, got nan" },
                { "threshold = 50", "threshold = 1.5", "threshold must be a whole number from 1 to 1000000000, got 1.5" },
                { "threshold = 50", "threshold = 0", "threshold must be a whole number from 1 to 1000000000, got 0" },
                { "window = 10", "window = -5", "window must be a whole number of seconds from 1 to 31622400, got -5" },
                { "window = 10", "window = 1e12", "window must be a whole number of seconds from 1 to 31622400" },
                { "log_per_minute = 60", "log_per_minute = 0/0", "log_per_minute must be a whole number from 0 to" },
                { "log_per_minute = 60", "log_per_minute = -3", "log_per_minute must be a whole number from 0 to" },
            }
            for _, case in ipairs(cases) do
                local source, n = read(POLICY .. "/bot.lua"):gsub(case[1], case[2], 1)
                assert.are.equal(1, n, case[1])
                local dir = policy_dir { bot = source }
                local err = load_error(dir)
                assert.is_truthy(err:find(dir .. "/bot.lua: " .. case[3], 1, true), err)
            end
        end)

        it("raises naming bot.lua for a setting of the wrong type", function()
            local dir = policy_dir { bot = read(POLICY .. "/bot.lua"):gsub("log_per_minute = 60",
                'log_per_minute = "60"', 1) }
            assert.are.equal(dir .. "/bot.lua: log_per_minute must be a number, got string", load_error(dir))
        end)

        it("raises naming headers.lua, the policy and a misspelt key", function()
            local dir = policy_dir { headers = read(POLICY .. "/headers.lua"):gsub(
                "hsts = HSTS,\n    },", "hedaers = {},\n        hsts = HSTS,\n    },", 1) }
            assert.are.equal(dir .. '/headers.lua: policy "svg": unknown key hedaers (csp, headers, hsts)',
                load_error(dir))
        end)

        it("raises naming headers.lua and a policy without headers", function()
            local dir = policy_dir { headers = 'return { default = { headers = {} }, svg = { hsts = "max-age=1" } }' }
            assert.are.equal(dir .. '/headers.lua: policy "svg": needs headers = { {name, value}, ... }',
                load_error(dir))
            dir = policy_dir { headers = 'return { default = { headers = {} }, svg = "strict" }' }
            assert.matches(dir .. '/headers.lua: policy "svg" must be a table', load_error(dir), 1, true)
        end)

        it("says what is wrong with a default policy with a misspelt key, not that it is missing", function()
            local dir = policy_dir { headers = 'return { default = { header = {} } }' }
            assert.are.equal(dir .. '/headers.lua: policy "default": unknown key header (csp, headers, hsts)',
                load_error(dir))
        end)

        it("raises naming headers.lua and a route's policy that does not exist", function()
            local dir = policy_dir { headers = read(POLICY .. "/headers.lua"):gsub("\nreturn {",
                '\nreturn {\n    routes = { ["GET /logo.svg"] = "svgg" },', 1) }
            assert.are.equal(dir .. '/headers.lua: routes["GET /logo.svg"]: no policy "svgg" here '
                .. "(default, svg, svg_private)", load_error(dir))
        end)

        it("raises naming csp.lua and a directive that is not a CSP directive", function()
            for _, name in ipairs { "meida-src", "MEIDA-SRC" } do
                local dir = policy_dir { csp = read(POLICY .. "/csp.lua"):gsub('"font%-src"', '"' .. name .. '"', 1) }
                assert.are.equal(dir .. '/csp.lua: policy "default": csp[5] (' .. name .. "): not a CSP directive",
                    load_error(dir))
            end
        end)

        it("takes every CSP directive", function()
            local names = { "default-src", "script-src", "style-src", "img-src", "font-src",
                "connect-src", "media-src", "object-src", "frame-src", "child-src", "worker-src",
                "manifest-src", "prefetch-src", "fenced-frame-src", "script-src-elem",
                "script-src-attr", "style-src-elem", "style-src-attr", "base-uri", "form-action",
                "frame-ancestors", "navigate-to", "report-to", "webrtc", "trusted-types",
                "require-trusted-types-for", "sandbox", "block-all-mixed-content",
                "upgrade-insecure-requests", "report-uri" }
            local list = {}
            for _, name in ipairs(names) do
                list[#list + 1] = ("{ %q, { %q } }"):format(name, name == "sandbox" and "allow-forms"
                    or name == "require-trusted-types-for" and "'script'" or name == "webrtc"
                    and "'block'" or "'self'")
            end
            local dir = policy_dir { csp = "return { default = { " .. table.concat(list, ", ") .. " } }" }
            assert.is_function(security.load(dir).before)
        end)

        it("names csp.lua, not headers.lua, for a malformed directive", function()
            local dir = policy_dir { csp = read(POLICY .. "/csp.lua"):gsub('{ "font%-src", { "\'self\'" } }',
                '{ "font-src", "\'self\'" }', 1) }
            assert.are.equal(dir .. '/csp.lua: policy "default": csp[5] (font-src): sources must be a table',
                load_error(dir))
        end)

        -- One csp.lua may serve several apps, each with a headers.lua of its own.
        it("warns naming csp.lua, the policy and headers.lua's about a policy headers.lua lacks", function()
            local dir = policy_dir { csp = read(POLICY .. "/csp.lua"):gsub("svg_private = SVG,",
                "svg_privat = SVG,", 1) }
            local policy = security.load(dir)
            assert.same({ dir .. '/csp.lua: policy "svg_privat" is not a policy of ' .. dir
                .. "/headers.lua (default, svg, svg_private); it applies to nothing" }, policy.warnings)
            assert.same({}, security.load(POLICY).warnings)
        end)

        it("still checks the directives of a csp.lua policy headers.lua does not have", function()
            local dir = policy_dir { csp = read(POLICY .. "/csp.lua"):gsub("svg_private = SVG,",
                'other = { { "meida-src", { "\'self\'" } } },', 1) }
            assert.are.equal(dir .. '/csp.lua: policy "other": csp[1] (meida-src): not a CSP directive',
                load_error(dir))
        end)

        it("raises naming csp.lua when a header policy would get no CSP", function()
            local dir = policy_dir { csp = 'return { svg = { { "default-src", { "\'none\'" } } } }' }
            assert.matches(dir .. "/csp.lua: needs a `default` policy: " .. dir .. "/headers.lua's "
                .. '"default" has none of its own here (csp = false there sends no CSP)', load_error(dir), 1, true)
        end)
    end)

    describe("a shipped policy outside a server", function()
        local policy = security.load(POLICY)

        it("lets every request through: there is no host limiter", function()
            assert.is_nil((require "luahost.ratelimit").host())
            for _, route in ipairs { "GET /", "GET /health", "POST /login" } do
                local res = response.new()
                assert.is_true(policy.before(route, req_for("GET", "/"), res))
                assert.equal(200, res.status)
                assert.is_nil(next(res.headers))
            end
        end)

        it("picks the svg header set when res.security is svg", function()
            local set = policy.header_set("GET /", { security = "svg" })
            assert.is_userdata(set)
            assert.equal("public, max-age=300", emitted(set)["Cache-Control"])
            assert.matches("default-src 'none'", emitted(set)["Content-Security-Policy"], 1, true)
        end)

        it("logs a res.security naming no policy once per name, and sends the default set", function()
            local log = require "luahost.log"
            local lines, error_line = {}, log.error
            log.error = function(line)
                lines[#lines + 1] = line
            end
            finally(function()
                log.error = error_line
            end)
            local fresh = security.load(POLICY)
            local default = fresh.header_set("GET /", {})
            for _ = 1, 3 do
                assert.equal(default, fresh.header_set("GET /page", { security = "nope" }))
            end
            fresh.header_set("GET /page", { security = "svgg" })
            assert.same({
                'route "GET /page": res.security = "nope" is not a policy of lua/policy/headers.lua '
                    .. '(default, svg, svg_private); sent "default"',
                'route "GET /page": res.security = "svgg" is not a policy of lua/policy/headers.lua '
                    .. '(default, svg, svg_private); sent "default"',
            }, lines)
        end)

        it("picks the default header set otherwise", function()
            local default = policy.header_set("GET /", {})
            assert.is_userdata(default)
            local h = emitted(default)
            assert.is_nil(h["Cache-Control"])
            assert.equal("nosniff", h["X-Content-Type-Options"])
            assert.matches("default-src 'self'", h["Content-Security-Policy"], 1, true)
            assert.matches("report-uri /csp-report", h["Content-Security-Policy"], 1, true)
            assert.equal(default, policy.header_set("POST /login", {}))
            assert.equal(default, policy.header_set("GET /", { security = "no-such-policy" }))
        end)

        it("serves POST /csp-report", function()
            assert.is_function(policy.routes["POST /csp-report"])
        end)

        describe("POST /csp-report", function()
            local handler = policy.routes["POST /csp-report"]

            local function post(body)
                local res = response.new()
                handler(req_for("POST", "/csp-report", "192.0.2.9", body), res)
                return res
            end

            it("accepts a report with 204", function()
                local res = post(cjson.encode { ["csp-report"] = {
                    ["violated-directive"] = "script-src", ["blocked-uri"] = "https://evil.example",
                    ["document-uri"] = "https://app.example/" } })
                assert.equal(204, res.status)
            end)

            it("accepts a Reporting API report with 204", function()
                local res = post(cjson.encode { { type = "csp-violation", body = {
                    effectiveDirective = "img-src", blockedURL = "data:", documentURL = "/" } } })
                assert.equal(204, res.status)
            end)

            it("refuses what is not a CSP report with 400", function()
                for _, body in ipairs { "", "not json", "[]", '{"x":1}', '{"csp-report":"x"}' } do
                    local res = post(body)
                    assert.equal(400, res.status, body)
                    assert.same({ success = false, message = "Not a CSP report" }, cjson.decode(res.body))
                end
            end)

            it("refuses a body over 8 KiB with 413", function()
                local res = post(('{"csp-report":{"a":"%s"}}'):format(("x"):rep(8192)))
                assert.equal(413, res.status)
            end)
        end)
    end)

    describe("a policy with a route header set", function()
        it("picks the route's set, unless res.security names another", function()
            local dir = policy_dir {
                headers = read(POLICY .. "/headers.lua"):gsub("\nreturn {",
                    '\nreturn {\n    routes = { ["GET /logo.svg"] = "svg" },', 1),
            }
            local policy = security.load(dir)
            local svg = policy.header_set("GET /logo.svg", {})
            assert.equal("public, max-age=300", emitted(svg)["Cache-Control"])
            assert.is_nil(emitted(policy.header_set("GET /", {}))["Cache-Control"])
            assert.is_nil(emitted(policy.header_set("GET /logo.svg", { security = "default" }))["Cache-Control"])
        end)
    end)

    describe("none", function()
        it("lets everything through with no security headers and no routes", function()
            local policy = security.none()
            local res = response.new()
            assert.is_true(policy.before("GET /", req_for("GET", "/"), res))
            assert.equal(200, res.status)
            assert.is_nil(next(res.headers))
            assert.is_nil(policy.header_set("GET /", { security = "svg" }))
            assert.same({}, policy.routes)
        end)
    end)

    describe("a policy with the server's limiter", function()
        local lib, fp, rl, host, window

        before_each(function()
            lib = ffi.load(assert(package.searchpath("luahost", package.cpath)))
            fp = lib.lh_fingerprint_new("security-spec-secret", 20, nil)
            rl = lib.lh_ratelimit_new(ffi.cast("const void *", ffi.new("struct security_spec_options")), nil)
            assert.is_not_nil(fp)
            assert.is_not_nil(rl)
            host = host_objects.new({ fingerprint = fp, ratelimit = rl })
            window = quiet_window(3600)
        end)

        after_each(function()
            lib.lh_ratelimit_free(rl)
            lib.lh_fingerprint_free(fp)
        end)

        -- Loads a policy from dir in a state with host objects, runs each of hits
        -- ({route, client[, method]}) through policy.before, and returns the
        -- results: { ok, status, headers, body }, and the lines it logged as
        -- warnings.
        local function run(dir, hits)
            local code = ([[
                package.path = "./lua/?.lua;" .. package.path
                local cjson = require "cjson"
                local log = require "luahost.log"
                local request = require "luahost.request"
                local response = require "luahost.response"
                local warned = {}
                log.warn = function(line)
                    warned[#warned + 1] = line
                end
                local policy = require("luahost.security").load(%q)
                local out = {}
                for _, hit in ipairs(cjson.decode(%q)) do
                    local req = request.new(hit[3] or "GET", "/", "rid", hit[2], nil,
                        { headers = { ["User-Agent"] = %q } })
                    local res = response.new()
                    local ok = policy.before(hit[1], req, res)
                    out[#out + 1] = { ok = ok, status = res.status, headers = res.headers,
                        ratelimit = res.ratelimit or cjson.null,
                        body = res.body and cjson.decode(res.body) or cjson.null }
                end
                return cjson.encode({ out = out, warned = warned })
            ]]):format(dir, cjson.encode(hits), CHROME)
            local result = cjson.decode(host_objects.run(host, code))
            return result.out, result.warned
        end

        -- Limits of 3 requests per window for a client, bots above 5 a window.
        local function small_policy()
            return policy_dir {
                limits = ([[return {
                    default = "3 per %d seconds",
                    per_ip = "100 per %d seconds",
                    routes = { ["GET /health"] = false, ["POST /login"] = "1 per %d seconds" },
                    exempt = { "198.51.100.0/24" },
                }]]):format(window, window, window),
                bot = ([[local M = dofile("%s/bot.lua")
                    M.threshold, M.window = 5, %d
                    return M]]):format(POLICY, window),
            }
        end

        local function hits(n, route, client, method)
            local t = {}
            for i = 1, n do
                t[i] = { route, client, method }
            end
            return t
        end

        it("allows the limit, with the rate-limit state for the headers, then answers 429", function()
            local out = run(small_policy(), hits(4, "GET /", "192.0.2.10"))
            for i = 1, 3 do
                local rl = out[i].ratelimit
                assert.is_true(out[i].ok, "request " .. i)
                assert.equal(200, out[i].status)
                assert.equal(3, rl.limit)
                assert.equal(3 - i, rl.remaining)
                assert.equal(window, rl.window)
                assert.is_true(rl.reset > 0 and rl.reset <= window)
            end
            local refused = out[4]
            assert.is_false(refused.ok)
            assert.equal(429, refused.status)
            assert.equal(0, refused.ratelimit.remaining)
            local retry = tonumber(refused.headers["Retry-After"])
            assert.is_true(retry > 0 and retry <= window)
            assert.same({ success = false, error = "Too many requests", retry_after = retry }, refused.body)
        end)

        it("describes the full limit in the 429's headers", function()
            -- As the shipped "2000 per day; 500 per hour" once the hour is full.
            local long = quiet_window(7200)
            local dir = policy_dir {
                limits = ('return { default = "10 per %d seconds; 3 per %d seconds" }'):format(long, window),
            }
            local refused = run(dir, hits(4, "GET /", "192.0.2.16"))[4]
            assert.equal(429, refused.status)
            assert.equal(3, refused.ratelimit.limit)
            assert.equal(window, refused.ratelimit.window)
        end)

        it("counts each client on its own", function()
            local out = run(small_policy(), {
                { "GET /", "192.0.2.11" }, { "GET /", "192.0.2.11" }, { "GET /", "192.0.2.12" },
            })
            assert.equal(1, out[2].ratelimit.remaining)
            assert.equal(2, out[3].ratelimit.remaining)
        end)

        it("never limits GET /health", function()
            for _, r in ipairs(run(small_policy(), hits(10, "GET /health", "192.0.2.13"))) do
                assert.is_true(r.ok)
                assert.equal(cjson.null, r.ratelimit)
            end
        end)

        it("never limits an exempt address", function()
            for _, r in ipairs(run(small_policy(), hits(10, "GET /", "198.51.100.7"))) do
                assert.is_true(r.ok)
                assert.equal(cjson.null, r.ratelimit)
            end
        end)

        it("limits a route with its own limit apart from the default", function()
            local out = run(small_policy(), {
                { "POST /login", "192.0.2.14", "POST" }, { "POST /login", "192.0.2.14", "POST" },
                { "GET /", "192.0.2.14" },
            })
            assert.is_true(out[1].ok)
            assert.equal(1, out[1].ratelimit.limit)
            assert.is_false(out[2].ok)
            assert.equal(429, out[2].status)
            assert.is_true(out[3].ok)
            assert.equal(2, out[3].ratelimit.remaining)
        end)

        it("holds a bot: each later request refused with the hold's seconds left, logged once", function()
            local out, warned = run(small_policy(), hits(9, "GET /", "192.0.2.17"))
            assert.same({ success = false, error = "Too many requests - bot behavior detected",
                retry_after = 60 }, out[6].body)
            for i = 7, 9 do
                local retry = tonumber(out[i].headers["Retry-After"])
                assert.is_true(retry >= 1 and retry <= 60, "request " .. i .. ": Retry-After " .. retry)
                assert.same({ success = false, error = "Too many requests - bot behavior detected",
                    retry_after = retry }, out[i].body)
            end
            local bot_lines = {}
            for _, line in ipairs(warned) do
                if line:find("bot behavior", 1, true) then
                    bot_lines[#bot_lines + 1] = line
                end
            end
            assert.same({ "security: bot behavior: 6 requests in " .. window .. " s; held 60 s from "
                .. "192.0.2.17 (GET \"/\", User-Agent \"" .. CHROME .. "\")" }, bot_lines)
        end)

        -- Limits of 100 a window, and 4 for an IPv6 /48.
        local function network_policy()
            return policy_dir {
                limits = ([[return {
                    default = "100 per %d seconds",
                    per_ip = "100 per %d seconds",
                    per_network = { ipv6_prefix = 48, limit = "4 per %d seconds" },
                    routes = { ["GET /health"] = false, ["GET /img"] = "per_ip" },
                }]]):format(window, window, window),
            }
        end

        it("counts every /64 of an IPv6 /48 in one per_network bucket, on per_ip routes too", function()
            local h = {}
            for i = 1, 3 do -- three /64s of 2001:db8:7::/48
                h[#h + 1] = { "GET /", ("2001:db8:7:%x::1"):format(i) }
            end
            h[#h + 1] = { "GET /img", "2001:db8:7:ffff:1:2:3:4" }
            h[#h + 1] = { "GET /", "2001:db8:7:abcd::1" }  -- the 5th of the /48
            h[#h + 1] = { "GET /img", "2001:db8:7:1::2" }
            h[#h + 1] = { "GET /", "2001:db8:8::1" }       -- another /48
            h[#h + 1] = { "GET /health", "2001:db8:7::9" } -- exempt
            local out = run(network_policy(), h)
            for i = 1, 4 do
                assert.is_true(out[i].ok, "request " .. i)
            end
            assert.equal(0, out[4].ratelimit.remaining) -- the /48's 4 are the tightest
            for i = 5, 6 do
                assert.is_false(out[i].ok, "request " .. i)
                assert.equal("Too many requests", out[i].body.error)
                assert.equal(4, out[i].ratelimit.limit)
            end
            assert.is_true(out[7].ok)
            assert.is_true(out[8].ok)
        end)

        it("leaves IPv4 clients to per_ip", function()
            local h = {}
            for i = 1, 6 do
                h[i] = { "GET /", "192.0.2." .. (20 + i) }
            end
            h[7] = { "GET /", "::ffff:192.0.2.30" }
            for i, r in ipairs(run(network_policy(), h)) do
                assert.is_true(r.ok, "request " .. i)
                assert.equal(100, r.ratelimit.limit)
            end
        end)

        it("refuses a bot above the threshold, refused requests included", function()
            local out = run(small_policy(), hits(7, "GET /", "192.0.2.15"))
            for i = 4, 5 do
                assert.equal("Too many requests", out[i].body.error)
            end
            for i = 6, 7 do
                assert.is_false(out[i].ok)
                assert.equal(429, out[i].status)
                assert.equal("60", out[i].headers["Retry-After"])
                assert.same({ success = false, error = "Too many requests - bot behavior detected",
                    retry_after = 60 }, out[i].body)
            end
        end)
    end)
end)
