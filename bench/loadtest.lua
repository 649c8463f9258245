#!/usr/bin/env luajit
-- bench/loadtest.lua: load tests of luahost with wrk, checked against the
-- thresholds of bench/thresholds.lua. See bench/README.md, "Load tests".
--
-- The stack comes from the integration harness (spec/integration/support):
-- luahost processes on free loopback ports, private redis-servers, accounts
-- made with `luahost user add`; MariaDB and the shared Redis from
-- scripts/services.sh.
local USAGE = [[
usage: bench/loadtest.sh [options] [scenario ...]

Starts the stack on loopback (MariaDB and Redis through scripts/services.sh,
luahost on bench/app and twice on the gallery, each gallery with a private
redis-server), measures the baseline route (/hello) before and after the
scenarios, runs the scenarios (default: all), checks the thresholds and
writes bench/results/loadtest-<time>/ (report.md, latency.svg,
throughput.svg, wrk's output).

  --smoke            every scenario for 3 s with the relative `smoke` thresholds (CI)
  --duration S       seconds per run (default 10; 3 with --smoke)
  --connections N    wrk connections for every scenario (default: per scenario)
  --rate R           constant-rate mode: R requests/s in every scenario
                     (default: closed loop, except the login and bot storms)
  --out DIR          where the report goes (relative: to the current folder)
  --thresholds FILE  the thresholds (default bench/thresholds.lua)
  --help

scenarios: hello secure cached gallery stampede ratelimit_storm login_storm bot_storm
exit status: 0 every threshold met, 1 a threshold failed, 2 a setup error or an interruption
]]

local posix_signal = require "posix.signal"
local stdlib = require "posix.stdlib"
local unistd = require "posix.unistd"

local ROOT = assert(stdlib.realpath((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/.."))
local CALLER_DIR = assert(unistd.getcwd()) -- --out is relative to it
assert(unistd.chdir(ROOT))
package.path = ROOT .. "/spec/?.lua;" .. package.path

local S = require "integration.support.server"
local G = require "integration.support.gallery"
local cjson = require "cjson"

local floor, max, min, log10 = math.floor, math.max, math.min, math.log10
local fmt = string.format

local PASSWORD = "loadtest-password" -- of the loadtest-* accounts
local THREADS = 2                    -- wrk threads: the machine's cores

-- -- Command line ---------------------------------------------------------------

local function usage_error(msg)
    io.stderr:write("loadtest: ", msg, "\n\n", USAGE)
    os.exit(2)
end

-- The most each option takes: a day of load; more connections than a
-- process has descriptors; more requests a second than wrk can pace.
local MOST = { ["--duration"] = 86400, ["--connections"] = 60000, ["--rate"] = 10000000 }

local function parse_args(argv)
    local o = { names = {} }
    local i = 1
    local function number(name)
        i = i + 1
        local v = tostring(argv[i]):find("^%d+$") and tonumber(argv[i])
        if not v or v < 1 or v > MOST[name] then
            usage_error(("%s needs a whole number from 1 to %d, not %s"):format(name, MOST[name],
                tostring(argv[i])))
        end
        return v
    end
    -- A path given relative to the folder the runner was started in.
    local function path(name, what)
        i = i + 1
        local given = argv[i] or usage_error(name .. " needs " .. what)
        return given:sub(1, 1) == "/" and given or CALLER_DIR .. "/" .. given
    end
    while i <= #argv do
        local a = argv[i]
        if a == "--help" or a == "-h" then
            io.write(USAGE)
            os.exit(0)
        elseif a == "--smoke" then
            o.smoke = true
        elseif a == "--duration" then
            o.duration = number(a)
        elseif a == "--connections" then
            o.connections = number(a)
        elseif a == "--rate" then
            o.rate = number(a)
        elseif a == "--out" then
            o.out = path(a, "a directory")
        elseif a == "--thresholds" then
            o.thresholds = path(a, "a file")
        elseif a:sub(1, 1) == "-" then
            usage_error("unknown option " .. a)
        else
            o.names[#o.names + 1] = a
        end
        i = i + 1
    end
    o.duration = o.duration or (o.smoke and 3 or 10)
    o.thresholds = o.thresholds or "bench/thresholds.lua"
    return o
end

-- -- The stack ------------------------------------------------------------------

-- Runs a shell command; true when it exits 0 (LuaJIT's os.execute returns the
-- status, Lua 5.2's true).
local function sh(cmd)
    local ok = os.execute(cmd)
    return ok == 0 or ok == true
end

local function sh_output(cmd)
    local f = assert(io.popen(cmd))
    local out = f:read("*a")
    f:close()
    return out
end

-- An expected failure (a folder that cannot be made, wrk missing): told by
-- its message alone, without a traceback.
local function refuse(msg)
    error({ refusal = msg })
end

local stack = { servers = {}, crash_logs = {} }

function stack.interruption_point()
    if stack.interrupted then
        error(fmt("interrupted by signal %d", stack.interrupted), 0)
    end
end

-- MariaDB and the shared Redis; stopped at the end only if this run started them.
function stack.services()
    local status = sh_output("scripts/services.sh status")
    stack.started_services = not (status:find("mariadb up", 1, true) and status:find("redis up", 1, true))
    if not sh("scripts/services.sh start >/dev/null") then
        refuse("scripts/services.sh start failed (its message is above)")
    end
    -- Their database 1 whatever LUAHOST_REDIS_URL says (scripts/test.sh sets
    -- it to database 0): the bench routes' counters stay out of the gallery's.
    local env = sh_output("scripts/services.sh env bench")
    stack.redis_url = env:match("LUAHOST_REDIS_URL=(%S+)")
    -- The gallery's test database on the MariaDB just started, wherever
    -- LUAHOST_MARIADB_PORT put it, unless LUAHOST_TEST_DB_URL names one.
    if not os.getenv("LUAHOST_TEST_DB_URL") then
        G.DB_URL = env:match("LUAHOST_DB_URL=(%S+)"):gsub("/[^/]*$", "/luahost_test")
    end
end

-- The luahost instances, started on first use:
--   bench    bench/app and bench/policy (the anchors' routes), the shared Redis;
--   gallery  lua/app with bench/loadtest-policy (load generator exempt from
--            the limits), 127.0.0.1 a trusted proxy, a private Redis;
--   storm    lua/app with its real lua/policy, a private Redis.
-- A private Redis gives every run fresh rate-limit counters (the storms'
-- predictions need them) without touching anybody's shared Redis.
-- Every instance waits up to 1 s for Redis, not 100 ms: with both cores
-- saturated, Redis waits over 100 ms for a CPU now and then, and luahost
-- then (rightly) limits in its own process for a second with fresh
-- counters, which the storms' predictions do not model.
local REDIS_TIMEOUT_MS = "1000"

function stack.server(kind)
    local srv = stack.servers[kind]
    if srv and srv:running() then
        return srv
    elseif srv then -- crashed in an earlier scenario: its log is kept, a new one serves
        stack.crash_logs[kind] = (stack.crash_logs[kind] or "") .. srv:error_log()
            .. "\n--- the server above exited; a new one was started ---\n"
        if srv.redis then
            srv.redis:stop()
        end
    end
    if kind == "bench" then
        srv = S.start({ app = "bench/app", args = { "--redis-url", stack.redis_url,
            "--redis-timeout", REDIS_TIMEOUT_MS, "--access-log", "off" } })
    else
        local redis = S.redis()
        local args = { "--redis-url", redis.url, "--redis-timeout", REDIS_TIMEOUT_MS,
            "--access-log", "off" }
        if kind == "gallery" then
            for _, a in ipairs({ "--policy-dir", ROOT .. "/bench/loadtest-policy",
                "--trusted-proxies", "127.0.0.1/32" }) do
                args[#args + 1] = a
            end
        end
        srv = G.start(args)
        srv.redis = redis
    end
    stack.servers[kind] = srv
    return srv
end

-- GET /metrics from 127.0.0.2: an address of its own, whose per-address
-- limit the storms from 127.0.0.1 leave untouched.
local function scrape(srv)
    local c = assert(S.client(srv.port, 10, "127.0.0.2"))
    local res = assert(c:request("GET", "/metrics"))
    c:close()
    return res
end

-- Sum of a metric's samples in /metrics whose labels do not match `skip`.
local function metric(srv, name, skip)
    local res = scrape(srv)
    assert(res.status == 200, "GET /metrics: " .. res.status)
    local total = 0
    for l in res.body:gmatch("[^\n]+") do
        if l:sub(1, #name) == name then
            local labels, value = l:match("^(%b{})%s+(%S+)", #name + 1)
            value = value or l:match("^%s+(%S+)", #name + 1)
            if value and not (skip and labels and labels:find(skip, 1, true)) then
                total = total + tonumber(value)
            end
        end
    end
    return total
end

-- The server's request-duration histograms: { ["METHOD route"] = { [le] = cumulative count } }.
local function duration_histograms(srv)
    local res = scrape(srv)
    assert(res.status == 200, "GET /metrics: " .. res.status)
    local h = {}
    for route, method, le, count in res.body:gmatch(
        'luahost_http_request_duration_seconds_bucket{route="([^"]*)",method="(%u+)",le="([^"]+)"} (%d+)') do
        local key = method .. " " .. route
        h[key] = h[key] or {}
        h[key][le == "+Inf" and math.huge or tonumber(le)] = tonumber(count)
    end
    return h
end

-- The bucket bound under which a share q of a route's requests between two
-- snapshots fell: the server's own timing, from the request read to the
-- answer queued, which wrk's coordinated-omission correction does not touch.
local function bucket_quantile(before, after, q)
    local bounds = {}
    for le in pairs(after) do
        bounds[#bounds + 1] = le
    end
    table.sort(bounds)
    local function delta(le)
        return after[le] - (before and before[le] or 0)
    end
    if not after[math.huge] then
        return nil, 0 -- no request of this kind yet
    end
    local total = delta(math.huge)
    for _, le in ipairs(bounds) do
        if delta(le) >= q * total then
            return le, total
        end
    end
end

-- Requests answered so far, the scrapes of /metrics left out.
local function requests_total(srv)
    return metric(srv, "luahost_http_requests_total", 'route="/metrics"')
end

-- Accounts for the gallery mix (sign-ins take them in turn: each allows 10
-- sign-ins per 15 minutes) and an uploader's session. `luahost user add`
-- creates or updates, so the same names serve every run.
local function gallery_accounts(srv, duration)
    if stack.accounts then
        return stack.accounts
    end
    local users = {}
    -- Enough for 30 sign-ins a second; PBKDF2 holds this 2-core machine to about 20.
    for i = 1, 2 + math.ceil(duration * 3) do
        users[i] = "loadtest-" .. i
    end
    users[#users + 1] = "loadtest-uploader"
    for _, name in ipairs(users) do
        stack.interruption_point() -- each takes a PBKDF2 hash: a Ctrl-C must not wait for all
        assert(G.add_user(name, PASSWORD), "luahost user add " .. name .. " failed")
    end
    local uploader = table.remove(users)
    stack.accounts = { users = users, session = G.session_headers(srv, uploader, PASSWORD) }
    return stack.accounts
end

local SMALL_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><circle r="4"/></svg>'

-- Deletes images through the API as their uploader; returns how many failed.
local function delete_images(srv, ids)
    local failed = 0
    for id in ids:gmatch("%d+") do
        local res = srv:request("DELETE", "/api/svg/" .. id, stack.accounts.session)
        if not res or res.status ~= 200 then
            failed = failed + 1
        end
    end
    return failed
end

-- Deletes every image of the uploader: this run's, and any that an
-- interrupted run left behind. Returns how many were left (nil: the list failed).
local function delete_uploads(srv)
    for _ = 1, 100 do
        local res = srv:request("GET", "/api/svg/list?mine=1&per_page=100", stack.accounts.session)
        if not res or res.status ~= 200 then
            return nil
        end
        local body, ids = G.json(res), {}
        for _, item in ipairs(body.items) do
            ids[#ids + 1] = item.id
        end
        if #ids == 0 then
            return 0
        end
        local failed = delete_images(srv, table.concat(ids, ","))
        if failed > 0 then -- gone for good, or the server is: what is left
            return body.total_items - #ids + failed
        end
    end
    return nil
end

-- The ids of the public images (at most 500), for image views.
local function public_ids(srv)
    local ids, page = {}, 1
    repeat
        local res = assert(srv:request("GET", ("/api/svg/list?page=%d&per_page=100"):format(page)))
        assert(res.status == 200, "GET /api/svg/list: " .. res.status)
        local body = G.json(res)
        for _, item in ipairs(body.items) do
            ids[#ids + 1] = item.id
        end
        page = page + 1
    until page > body.total_pages or page > 5
    assert(#ids > 0, "the gallery has no public images (seeds not applied?)")
    return table.concat(ids, ",")
end

-- -- Predictions of the storms ---------------------------------------------------

-- What a limit string ("10000 per day; 2000 per hour") lets through in a
-- run of `seconds` on fresh counters: the smallest count of its rules (2000),
-- or nil and why when a rule's window is shorter than the run, whose count
-- then depends on how the run falls on the windows.
local ratelimit
local function allowed_by(spec, seconds)
    if not ratelimit then -- the binding built next to the binary under test
        package.cpath = (S.bin:match("^(.*)/") or ".") .. "/?.so;" .. package.cpath
        ratelimit = require "luahost.ratelimit"
    end
    local rules = assert(ratelimit.parse(spec))
    local smallest = math.huge
    for _, rule in ipairs(rules) do
        if rule.window < seconds then
            return nil, fmt("no prediction: %d per %d s is shorter than the run", rule.limit, rule.window)
        end
        smallest = min(smallest, rule.limit)
    end
    return smallest
end

local function gallery_limits()
    return dofile("lua/policy/limits.lua"), dofile("lua/policy/bot.lua")
end

-- Sign-in attempts allowed by lua/app/accounts.lua's LOGIN_LIMITS: slot 1
-- per address and minute, slot 2 per account and 15 minutes.
local function login_limit(slot)
    local text = S.read_file("lua/app/accounts.lua") or ""
    return tonumber(text:match("slot%s*=%s*" .. slot .. "%s*,%s*limit%s*=%s*(%d+)"))
        or error("lua/app/accounts.lua: no LOGIN_LIMITS slot " .. slot .. " found")
end

-- Requests of run r answered by wall-clock time t, interpolated between the
-- server's samples (scaled to wrk's count of responses).
local function requests_by(r, t)
    local prev_t, prev_n, last = 0, 0, r.samples[#r.samples]
    t = t - r.t0
    for _, s in ipairs(r.samples) do
        if t <= s.t then
            local n = prev_n + (s.n - prev_n) * max(0, t - prev_t) / (s.t - prev_t)
            return n * r.responses / last.n
        end
        prev_t, prev_n = s.t, s.n
    end
    return r.responses
end

-- Wall-clock time by which run r had answered n requests: requests_by's
-- inverse, interpolated the same way.
local function time_of(r, n)
    local last = r.samples[#r.samples]
    local m, prev_t, prev_n = n * last.n / max(1, r.responses), 0, 0
    for _, s in ipairs(r.samples) do
        if m <= s.n and s.n > prev_n then
            return r.t0 + prev_t + (s.t - prev_t) * (m - prev_n) / (s.n - prev_n)
        end
        prev_t, prev_n = s.t, s.n
    end
    return r.t0 + last.t
end

-- Requests of run r that pass the bot check and the rate limits (`cap`
-- requests granted in all, on fresh counters). The bot check counts every
-- request in fixed windows of `window` seconds; the one that takes a
-- window past `limit` is refused and holds the fingerprint for `hold`
-- seconds, during which every request is refused and counted nowhere (a
-- longer hold than the window outlasts it; when it ends, counting goes on
-- in the window of that moment). A request that reaches the limits takes one
-- of the `cap` grants, the one refused for starting a hold included, since
-- the limits and the bot counter are one atomic check.
local function bot_allowed(r, limit, window, hold, cap)
    local allowed, granted, seen, in_window, window_index = 0, 0, 0, 0, nil
    local t, t_end = r.t0, r.t0 + r.samples[#r.samples].t
    while t < t_end do
        local w = floor(t / window)
        if w ~= window_index then
            window_index, in_window = w, 0
        end
        local n = requests_by(r, min(t_end, (w + 1) * window)) - seen
        local pass = max(0, limit - in_window)
        if n <= pass then
            allowed = allowed + max(0, min(n, cap - granted))
            granted, in_window, seen = granted + n, in_window + n, seen + n
            t = (w + 1) * window
        else -- request seen + pass + 1 starts a hold
            allowed = allowed + max(0, min(pass, cap - granted))
            granted, in_window, seen = granted + pass + 1, in_window + pass + 1, seen + pass + 1
            t = time_of(r, seen) + hold
            seen = max(seen, requests_by(r, min(t_end, t)))
        end
    end
    return allowed
end

-- Sets what a storm's limits predict: the answers let through and the share
-- of 429s, or the note why there is no prediction.
local function predict(r, allowed, why)
    if not allowed then
        r.notes[#r.notes + 1] = why
        r.unpredictable = true
        return
    end
    r.predicted_passed = min(allowed, r.responses)
    r.predicted_429 = r.responses > 0 and (r.responses - r.predicted_passed) / r.responses or 0
end

-- -- Scenarios --------------------------------------------------------------------
-- server: the instance it runs on; connections, rate: defaults (--connections
-- and --rate override them); min_duration: seconds it runs at least;
-- prepare(srv, o) -> environment for the script;
-- measure(srv, r, o): figures after the run (r.predicted_429, r.computations...).

-- The gallery mix's kinds of request, by route, with their names in the report.
local GALLERY_ROUTES = {
    { "GET /api/svg/list", "list" }, { "GET /api/svg/:id", "image" }, { "GET /svg/:id.svg", "SVG" },
    { "POST /api/login", "sign-in" }, { "POST /api/svg", "upload" },
}

-- A histogram bound in seconds as milliseconds.
local function ms_bound(seconds)
    return seconds == math.huge and "∞" or fmt("%g", seconds * 1000)
end

local SCENARIOS = {
    { name = "hello", server = "bench", connections = 32 },
    { name = "secure", server = "bench", connections = 32 },
    { name = "cached", server = "bench", connections = 32 },
    {
        name = "gallery", server = "gallery", connections = 16,
        prepare = function(srv, o)
            local acc = gallery_accounts(srv, o.duration)
            delete_uploads(srv) -- any that an earlier run could not delete
            local ids = public_ids(srv)
            srv.histograms = duration_histograms(srv) -- after the set-up's own requests
            return {
                IMAGE_IDS = ids,
                LOGIN_USERS = table.concat(acc.users, ","),
                LOGIN_PER_ACCOUNT = login_limit(2),
                LOGIN_PASSWORD = PASSWORD,
                SESSION_COOKIE = acc.session.Cookie:match("sid=(%x+)"),
                CSRF_TOKEN = acc.session["X-CSRF-Token"],
            }
        end,
        measure = function(srv, r)
            -- Each kind of request on its own, as the server timed it: the
            -- p90 and p99 of the row are the sign-ins' (see bench/README.md).
            local after, parts, mix, all = duration_histograms(srv), {}, {}, 0
            for _, kind in ipairs(GALLERY_ROUTES) do
                local p50, n = bucket_quantile(srv.histograms[kind[1]], after[kind[1]] or {}, 0.5)
                if p50 and n > 0 then
                    local p99 = bucket_quantile(srv.histograms[kind[1]], after[kind[1]], 0.99)
                    parts[#parts + 1] = fmt("%s ≤%s / ≤%s", kind[2], ms_bound(p50), ms_bound(p99))
                end
                mix[#mix + 1], all = { kind[2], n }, all + n
            end
            r.notes[#r.notes + 1] = "server p50 / p99 ms: " .. table.concat(parts, ", ")
            for i, m in ipairs(mix) do
                mix[i] = fmt("%s %.1f %%", m[1], 100 * m[2] / max(1, all))
            end
            r.notes[#r.notes + 1] = "mix: " .. table.concat(mix, ", ")
            -- The uploads go again, so that runs do not grow the test database.
            local ids = r.uploaded or ""
            r.notes[#r.notes + 1] = fmt("%d uploads", select(2, ids:gsub("%d+", "")))
            local left = delete_uploads(srv)
            if left ~= 0 then
                r.notes[#r.notes + 1] = (left or "some") .. " uploads not deleted"
            end
        end,
    },
    {
        name = "stampede", server = "gallery", connections = 64,
        prepare = function(srv, o)
            local acc = gallery_accounts(srv, o.duration)
            -- A page size the gallery mix never asks for, so that no request
            -- left over from an earlier scenario computes it meanwhile: cached
            -- first, so that it is there to be invalidated.
            local path = "/api/svg/list?page=1&per_page=11"
            assert(assert(srv:request("GET", path)).status == 200, "stampede: " .. path)
            -- An upload and its delete: the list pages are invalidated (svg_list:*,
            -- L1 and Redis) and the database is as before.
            local res = G.upload(srv, acc.session, { filename = "loadtest-stampede.svg", svg = SMALL_SVG })
            assert(res.status == 201, "stampede upload: " .. res.status .. " " .. res.body)
            assert(delete_images(srv, tostring(G.json(res).id)) == 0, "stampede: delete failed")
            srv.computations = metric(srv, "luahost_cache_computations_total")
            return { STAMPEDE_PATH = path }
        end,
        measure = function(srv, r)
            r.computations = metric(srv, "luahost_cache_computations_total") - srv.computations
            r.notes[#r.notes + 1] = fmt("page computed %d×", r.computations)
        end,
    },
    {
        name = "ratelimit_storm", server = "storm", connections = 16,
        measure = function(_, r)
            local limits = gallery_limits()
            local allowed, why = allowed_by(limits.per_ip, r.planned_s)
            r.limit_note = "per_ip " .. (allowed or "–")
            predict(r, allowed, why)
        end,
    },
    {
        -- At least 6 s: the 20 attempts it lets through cost a PBKDF2 each
        -- (about 0.2 s of CPU), and the run should go well past them.
        name = "login_storm", server = "storm", connections = 4, rate = 100, min_duration = 6,
        measure = function(_, r)
            local limit = login_limit(1)
            r.limit_note = "sign-ins " .. limit .. "/min"
            -- Sliding over a minute: a longer run lets more through.
            predict(r, r.planned_s <= 60 and limit or nil,
                "no prediction: the sign-in limit's minute is shorter than the run")
        end,
    },
    {
        name = "bot_storm", server = "storm", connections = 4, rate = 200,
        measure = function(_, r)
            local limits, bot = gallery_limits()
            local by_default, why = allowed_by(limits.default, r.planned_s)
            local by_ip, why_ip = allowed_by(limits.per_ip, r.planned_s)
            local cap = by_default and by_ip and min(by_default, by_ip)
            local hold = bot.retry_after or 60
            r.limit_note = fmt("bot %d/%d s held %d s, %s", bot.threshold, bot.window, hold, cap or "–")
            predict(r, cap and bot_allowed(r, bot.threshold, bot.window, hold, cap), why or why_ip)
            r.notes[#r.notes + 1] = fmt("%d of the 429s for bot behavior", r.bot429 or 0)
        end,
    },
}

-- The baseline route, run between the scenarios (see run()).
local BASELINE = { name = "baseline", script = "hello", server = "bench", connections = 32 }

local BY_NAME = {}
for _, sc in ipairs(SCENARIOS) do
    BY_NAME[sc.name] = sc
    -- The storms start from fresh counters: their private Redis is emptied.
    if sc.server == "storm" then
        sc.prepare = function(srv)
            assert(srv.redis:command("FLUSHALL"))
            return {}
        end
    end
end

-- -- Running wrk ----------------------------------------------------------------

local RESULT_NUMBERS = { "target_rps", "requests", "duration_us", "rps", "p50_us", "p90_us",
    "p99_us", "max_us", "s2xx", "s3xx", "s4xx", "s429", "s5xx", "bad", "errors", "bot429",
    "late_slots", "late_ms_max" }

local function parse_result(line)
    local r = {}
    for k, v in line:gmatch("(%S+)=(%S*)") do
        r[k] = v
    end
    for _, k in ipairs(RESULT_NUMBERS) do
        r[k] = tonumber(r[k])
    end
    return r
end

-- Runs scenario file `script` against srv for `duration` seconds, sampling
-- the server's request counter every second. Returns the parsed RESULT line
-- plus t0 (wall clock), samples ({t since t0, rps over the last second, n
-- requests since t0}...), mode, connections.
-- Waits for the running wrk, sampling the server's request count about once
-- a second into samples; returns wrk's exit code.
local function watch_wrk(srv, duration, t0, n0, samples)
    local last_t, last_n = 0, n0
    while true do
        local code = S.wait_pid(stack.wrk, max(0, t0 + #samples + 1 - S.now()))
        -- The count as the server read it, so timed when its answer came:
        -- a scrape that waits (a busy server) must not date it early.
        local n = requests_total(srv)
        local t = S.now() - t0
        if t - last_t > 0.5 then -- the rate over the last second (or the last part of one)
            samples[#samples + 1] = { t = t, rps = (n - last_n) / (t - last_t), n = n - n0 }
            last_t, last_n = t, n
        end
        if code ~= nil then
            return code
        end
        stack.interruption_point()
        if t > duration + 30 then
            error("wrk did not finish")
        end
    end
end

local function run_wrk(label, script, srv, conns, rate, duration, env, o)
    local threads = min(THREADS, conns)
    env.THREADS = threads
    env.RATE = rate and tostring(rate) or ""
    env.RUN_ID = stack.run_id
    local out = fmt("%s/%s.wrk.txt", o.out, label)
    local argv = { "wrk", "-t" .. threads, "-c" .. conns, "-d" .. duration .. "s", "--timeout", "5s",
        "-s", "bench/scenarios/" .. script .. ".lua", fmt("http://127.0.0.1:%d/", srv.port) }
    local n0 = requests_total(srv)
    local samples = {}
    local t0 = S.now()
    stack.wrk = S.spawn(argv, { stdout = out, stderr = out, env = env })
    local ok, code = pcall(watch_wrk, srv, duration, t0, n0, samples)
    if not ok then -- wrk must not outlive its scenario (it would load the next one)
        S.kill(stack.wrk, "KILL")
        S.wait_pid(stack.wrk, 2)
        stack.wrk = nil
        error(srv:running() and code or "the server under test has exited", 0)
    end
    stack.wrk = nil
    -- wrk is gone, but the server may still work on requests it left behind
    -- (a sign-in's PBKDF2 runs to its end): the next run starts when it is idle.
    local quiet_by = S.now() + 10
    while metric(srv, "luahost_http_requests_in_flight") > 1 and S.now() < quiet_by do
        S.sleep(0.05)
    end
    local text = S.read_file(out) or ""
    local line = text:match("RESULT [^\n]*")
    if code ~= 0 or not line then
        error(fmt("wrk exited with %s without a RESULT line:\n%s", tostring(code), text))
    end
    local r = parse_result(line)
    r.t0, r.samples, r.connections, r.mode = t0, samples, conns, rate and "rate" or "closed"
    r.planned_s = duration
    r.responses = r.s2xx + r.s3xx + r.s4xx + r.s429 + r.s5xx
    r.error_rate = (r.errors + r.bad) / max(1, r.responses + r.errors)
    r.share_429 = r.s429 / max(1, r.responses)
    for _, k in ipairs({ "p50", "p90", "p99", "max" }) do
        r[k .. "_ms"] = r[k .. "_us"] / 1000
    end
    r.notes = {}
    if (r.late_slots or 0) > 0 then
        r.notes[#r.notes + 1] = fmt("%d requests left 10 ms or more after their time, up to %d ms "
            .. "(their latency counts from the actual send)", r.late_slots, r.late_ms_max)
    end
    return r
end

local LOCAL_DECISIONS = "luahost_ratelimit_local_decisions_total"

local function run_scenario(sc, o, label)
    local srv = stack.server(sc.server)
    local conns = o.connections or sc.connections
    local rate = o.rate or sc.rate
    local duration = max(o.duration, sc.min_duration or 0)
    local env = sc.prepare and sc.prepare(srv, o) or {}
    local local0 = metric(srv, LOCAL_DECISIONS)
    local r = run_wrk(label or sc.name, sc.script or sc.name, srv, conns, rate, duration, env, o)
    r.name = sc.name
    -- Checks decided in-process (Redis too slow even for REDIS_TIMEOUT_MS)
    -- start from fresh counters, so no share of 429s can be predicted.
    r.local_decisions = metric(srv, LOCAL_DECISIONS) - local0
    if sc.measure then
        sc.measure(srv, r, o)
    end
    if r.local_decisions > 0 then
        r.notes[#r.notes + 1] = fmt("Redis did not answer in time: %d rate-limit checks decided "
            .. "in-process%s", r.local_decisions, r.predicted_429 and ", let-through count not checked" or "")
    end
    assert(srv:running(), "the server under test has exited")
    return r
end

-- -- Thresholds -----------------------------------------------------------------

-- Each check: the threshold's key, what it measures, the measured value (nil:
-- does not apply to this run; false: should have been measured and was not),
-- whether a higher value is good, and for a table-valued threshold its bound.
local CHECKS = {
    { "max_error_rate", "error rate", function(r) return r.error_rate end },
    { "max_p50_ms", "p50 ms", function(r) return r.p50_ms end },
    { "max_p99_ms", "p99 ms", function(r) return r.p99_ms end },
    { "min_rps_ratio", "req/s ÷ baseline", function(r)
        return r.mode == "closed" and r.rps_ratio or nil
    end, higher = true },
    { "min_rate_achieved", "responses ÷ scheduled", function(r)
        return r.mode == "rate" and r.requests / (r.target_rps * r.planned_s) or nil
    end, higher = true },
    -- Storms: the answers let through (not 429) against the count the limits
    -- predict, within a share of that count (at least one request).
    { "passed_as_predicted", "|let through − predicted|", function(r)
        if (r.local_decisions or 0) > 0 or r.unpredictable then
            return nil -- said in the run's notes
        end
        return r.predicted_passed and math.abs(r.responses - r.s429 - r.predicted_passed) or false
    end, bound = function(t, r) return max(1, t.tolerance * r.predicted_passed) end },
    { "min_computations", "page computations", function(r) return r.computations or false end,
        higher = true },
    { "max_computations", "page computations", function(r) return r.computations or false end },
}

local CHECK_KEYS = {}
for _, c in ipairs(CHECKS) do
    CHECK_KEYS[c[1]] = c
end

-- The thresholds file (bench/thresholds.lua), checked before anything runs: a typo must not pass
-- silently after minutes of load. Returns the table, or nil and the reason.
local function load_thresholds(path, scenario_names)
    local ok, all = pcall(dofile, path)
    if not ok then
        return nil, tostring(all)
    elseif type(all) ~= "table" then
        return nil, path .. ": must return a table"
    end
    -- A number a comparison can fail against: NaN passes every one.
    local function finite(x)
        return type(x) == "number" and x == x and x > -math.huge and x < math.huge
    end
    local function layer(where, t)
        if type(t) ~= "table" then
            return fmt("%s: %s must be a table", path, where)
        end
        for k, v in pairs(t) do
            local c = CHECK_KEYS[k]
            if not c then
                return fmt("%s: %s: unknown threshold %s", path, where, tostring(k))
            elseif v ~= false and (c.bound and (type(v) ~= "table" or not finite(v.tolerance))
                    or not c.bound and not finite(v)) then
                return fmt("%s: %s.%s must be %s or false", path, where, k,
                    c.bound and "{ tolerance = <finite number> }" or "a finite number")
            end
            for sub in pairs(c.bound and v or {}) do
                if sub ~= "tolerance" then
                    return fmt("%s: %s.%s: unknown key %s (only tolerance)", path, where, k, tostring(sub))
                end
            end
        end
    end
    local function layers(where, t, allow_smoke)
        for name, v in pairs(t) do
            local err
            if name == "smoke" and allow_smoke and type(v) ~= "table" then
                err = fmt("%s: smoke must be a table", path)
            elseif name == "smoke" and allow_smoke then
                err = layers("smoke", v, false)
            elseif name == "default" or scenario_names[name] then
                err = layer(where and where .. "." .. name or name, v)
            else
                err = fmt("%s: unknown scenario %s%s", path, where and where .. "." or "", tostring(name))
            end
            if err then
                return err
            end
        end
    end
    local err = layers(nil, all, true)
    if err then
        return nil, err
    end
    return all
end

local function thresholds_for(all, name, smoke)
    local t = {}
    local layers = { all.default, all[name] }
    if smoke and all.smoke then
        layers[3], layers[4] = all.smoke.default, all.smoke[name]
    end
    for i = 1, 4 do
        for k, v in pairs(layers[i] or {}) do
            t[k] = v -- false removes an inherited threshold
        end
    end
    return t
end

-- Fills r.checks ({text, ok}...) and r.ok.
local function evaluate(r, thresholds, smoke)
    local t = thresholds_for(thresholds, r.name, smoke)
    r.checks, r.ok = {}, r.responses > 0
    if r.responses == 0 then
        r.checks[1] = { text = "no responses", ok = false }
    end
    for _, c in ipairs(CHECKS) do
        local key, what, value, higher = c[1], c[2], c[3], c.higher
        local v
        if t[key] then
            v = value(r)
        end
        if v == false then
            r.checks[#r.checks + 1] = { text = what .. " not measured", ok = false }
            r.ok = false
        elseif v then
            local bound = c.bound and c.bound(t[key], r) or t[key]
            local ok = higher and v >= bound or not higher and v <= bound
            r.checks[#r.checks + 1] = {
                text = fmt("%s %.4g %s %.4g", what, v, higher and "≥" or "≤", bound),
                ok = ok,
            }
            r.ok = r.ok and ok
        end
    end
end

-- -- Report: Markdown -------------------------------------------------------------

local function grouped(n)
    local s = fmt("%.0f", n)
    return (s:reverse():gsub("(%d%d%d)", "%1 "):reverse():gsub("^ ", ""))
end

local function ms(v)
    return v >= 100 and fmt("%.0f", v) or v >= 10 and fmt("%.1f", v) or fmt("%.2f", v)
end

local function mode_text(r)
    if r.mode == "rate" then
        return fmt("rate %s/s, c%d", grouped(r.target_rps), r.connections)
    end
    return fmt("closed, c%d", r.connections)
end

local function markdown_table(runs)
    local lines = {
        "| scenario | mode | requests | req/s | ÷ baseline | p50 ms | p90 ms | p99 ms | max ms "
            .. "| error rate | 429 share (predicted) | notes | result |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    }
    for _, r in ipairs(runs) do
        local share = r.predicted_429 and fmt("%.3f (%.3f, %s)", r.share_429, r.predicted_429,
            r.limit_note) or (r.s429 > 0 and fmt("%.3f", r.share_429) or "–")
        -- At a constant rate the ratio says nothing about capacity: not shown.
        local ratio = r.mode == "closed" and fmt("%.3f", r.rps_ratio) or "–"
        lines[#lines + 1] = fmt("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f %% | %s | %s | %s |",
            r.name, mode_text(r), grouped(r.requests), grouped(r.rps), ratio, ms(r.p50_ms),
            ms(r.p90_ms), ms(r.p99_ms), ms(r.max_ms), 100 * r.error_rate, share,
            table.concat(r.notes, ", "), r.ok and "pass" or "**FAIL**")
    end
    return table.concat(lines, "\n") .. "\n"
end

-- One line per failed check; with all = true, one line per scenario with
-- every check, marked pass or FAIL.
local function checks_text(runs, all)
    local out = {}
    for _, r in ipairs(runs) do
        local marked = {}
        for _, c in ipairs(r.checks) do
            if all then
                marked[#marked + 1] = (c.ok and "pass: " or "**FAIL**: ") .. c.text
            elseif not c.ok then
                out[#out + 1] = fmt("- %s: %s", r.name, c.text)
            end
        end
        if all then
            out[#out + 1] = fmt("- %s: %s", r.name, #marked > 0 and table.concat(marked, "; ") or "–")
        end
    end
    return table.concat(out, "\n")
end

-- -- Report: SVG charts -------------------------------------------------------------

local function esc(s)
    return (tostring(s):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"))
end

local function svg_doc(w, h, body)
    return fmt('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
        .. 'font-family="sans-serif" font-size="11">\n<rect width="%d" height="%d" fill="white"/>\n%s</svg>\n',
        w, h, w, h, w, h, table.concat(body, "\n"))
end

local function text(x, y, s, attrs)
    return fmt('<text x="%.1f" y="%.1f"%s>%s</text>', x, y, attrs and " " .. attrs or "", esc(s))
end

local function line(x1, y1, x2, y2, attrs)
    return fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>', x1, y1, x2, y2,
        attrs or 'stroke="#999"')
end

-- A round number at least v (1, 2 or 5 times a power of ten).
local function nice(v)
    if v <= 0 then
        return 1
    end
    local p = 10 ^ floor(log10(v))
    for _, m in ipairs({ 1, 2, 5, 10 }) do
        if m * p >= v then
            return m * p
        end
    end
end

local COLORS = { "#8ecae6", "#219ebc", "#023047" }

-- Grouped bars of p50/p90/p99 per run, on a logarithmic axis.
local function latency_chart(runs)
    local lo, hi = math.huge, 0
    for _, r in ipairs(runs) do
        lo, hi = min(lo, max(r.p50_ms, 0.001)), max(hi, r.p99_ms)
    end
    local dlo, dhi = floor(log10(lo)), math.ceil(log10(max(hi, lo * 10)))
    local left, top, group, plot_h = 70, 40, 64, 260
    -- At least as wide as the title, and the legend clear of the axis.
    local w, h = max(left + group * #runs + 20, 640), top + plot_h + 110
    local function y(v)
        return top + plot_h * (1 - (log10(max(v, 10 ^ dlo)) - dlo) / (dhi - dlo))
    end
    local b = { text(left, 20, "Latency percentiles per scenario, ms (log scale); wrk measures from each "
        .. "request's send", 'font-size="13"') }
    for d = dlo, dhi do
        b[#b + 1] = line(left, y(10 ^ d), w - 20, y(10 ^ d), 'stroke="#ddd"')
        b[#b + 1] = text(left - 6, y(10 ^ d) + 4, ms(10 ^ d), 'text-anchor="end"')
    end
    b[#b + 1] = line(left, top, left, top + plot_h)
    b[#b + 1] = line(left, top + plot_h, w - 20, top + plot_h)
    for i, r in ipairs(runs) do
        local x0 = left + (i - 1) * group + 8
        for j, k in ipairs({ "p50_ms", "p90_ms", "p99_ms" }) do
            local yv = y(r[k])
            b[#b + 1] = fmt('<rect x="%.1f" y="%.1f" width="15" height="%.1f" fill="%s"><title>%s %s %s ms</title></rect>',
                x0 + (j - 1) * 16, yv, top + plot_h - yv, COLORS[j], esc(r.name), k:sub(1, 3), ms(r[k]))
        end
        local cx, cy = x0 + 24, top + plot_h + 12
        b[#b + 1] = text(cx, cy, r.name, fmt('text-anchor="end" transform="rotate(-35 %.1f %.1f)"', cx, cy))
        b[#b + 1] = text(cx, cy + 12, mode_text(r), fmt(
            'text-anchor="end" font-size="9" fill="#555" transform="rotate(-35 %.1f %.1f)"', cx, cy + 12))
    end
    for j, k in ipairs({ "p50", "p90", "p99" }) do
        local x = w - 200 + (j - 1) * 60
        b[#b + 1] = fmt('<rect x="%d" y="28" width="10" height="10" fill="%s"/>', x, COLORS[j])
        b[#b + 1] = text(x + 14, 37, k)
    end
    return svg_doc(w, h, b)
end

-- Requests per second over time, from /metrics sampled every second: one
-- panel per run, two columns, each with its own scale.
local function throughput_chart(runs)
    local pw, ph, left, top = 440, 150, 60, 28
    local cols = 2
    local rows = math.ceil(#runs / cols)
    local w, h = cols * pw + 10, rows * ph + 40
    local b = { text(10, 20, "Throughput over time, requests/s (server's luahost_http_requests_total, "
        .. "sampled every second)", 'font-size="13"') }
    for i, r in ipairs(runs) do
        local ox, oy = ((i - 1) % cols) * pw + 10, 30 + floor((i - 1) / cols) * ph
        local x0, y0, iw, ih = ox + left, oy + top, pw - left - 20, ph - top - 30
        local peak = r.target_rps > 0 and r.target_rps or 0
        for _, s in ipairs(r.samples) do
            peak = max(peak, s.rps)
        end
        local last = r.samples[#r.samples]
        local ymax, xmax = nice(peak * 1.05), max(r.duration_us / 1e6, last and last.t or 1)
        local function px(t) return x0 + iw * t / xmax end
        local function py(v) return y0 + ih * (1 - v / ymax) end
        b[#b + 1] = text(ox + 4, oy + 16, fmt("%s (%s): wrk mean %s req/s", r.name, mode_text(r),
            grouped(r.rps)), 'font-weight="bold"')
        for k = 0, 2 do
            local v = ymax * k / 2
            b[#b + 1] = line(x0, py(v), x0 + iw, py(v), 'stroke="#ddd"')
            b[#b + 1] = text(x0 - 5, py(v) + 4, grouped(v), 'text-anchor="end"')
        end
        b[#b + 1] = line(x0, y0, x0, y0 + ih)
        b[#b + 1] = line(x0, y0 + ih, x0 + iw, y0 + ih)
        local step = max(1, nice(xmax / 6))
        for t = 0, floor(xmax), step do
            b[#b + 1] = text(px(t), y0 + ih + 13, t .. " s", 'text-anchor="middle"')
        end
        if r.target_rps > 0 then
            b[#b + 1] = line(x0, py(r.target_rps), x0 + iw, py(r.target_rps),
                'stroke="#e76f51" stroke-dasharray="4 3"')
            b[#b + 1] = text(x0 + iw, py(r.target_rps) - 3, "target", 'text-anchor="end" fill="#e76f51"')
        end
        local pts = {}
        for _, s in ipairs(r.samples) do
            pts[#pts + 1] = fmt("%.1f,%.1f", px(s.t), py(s.rps))
            b[#b + 1] = fmt('<circle cx="%.1f" cy="%.1f" r="2.5" fill="#219ebc"/>', px(s.t), py(s.rps))
        end
        b[#b + 1] = fmt('<polyline points="%s" fill="none" stroke="#219ebc" stroke-width="2"/>',
            table.concat(pts, " "))
    end
    return svg_doc(w, h, b)
end

local function write_report(runs, failed, o, verdict)
    local md = {
        fmt("# Load test %s\n\n`luajit bench/loadtest.lua %s`\n", stack.run_id, table.concat(arg, " ")),
        fmt("%s run, %d s per scenario, wrk %d threads; %d cores. Latencies are wrk's, measured from "
            .. "each request's actual send and corrected by wrk for coordinated omission (see "
            .. "bench/README.md): in `closed` mode each connection sends its next request when the "
            .. "previous one is answered, and wrk adds the samples of the requests a stall held "
            .. "back, at the mean interval, so a mix with slow requests (the gallery's sign-ins) "
            .. "shows their latency from p90 up; in `rate` mode requests leave on a fixed schedule, "
            .. "and the achieved rate must be read next to the target.\n",
            o.smoke and "Smoke" or "Full", o.duration, THREADS,
            tonumber(sh_output("nproc")) or 0),
        fmt("The baseline, `GET /hello` on bench/app (closed, c%d), runs before the first scenario "
            .. "and after each one; a scenario's `÷ baseline` divides its req/s by the mean of the "
            .. "two baseline runs around it. The baseline panel of the throughput chart shows each "
            .. "of its runs over the test's time.\n", runs[1].connections),
        markdown_table(runs),
        #failed > 0 and "Scenarios that did not run to the end:\n\n" .. table.concat(failed, "\n") .. "\n" or "",
        verdict == 0 and "All thresholds met.\n"
            or checks_text(runs) ~= "" and "Failed thresholds:\n\n" .. checks_text(runs) .. "\n" or "",
        "Checks (" .. o.thresholds .. (o.smoke and ", smoke overrides" or "") .. "):\n",
        checks_text(runs, true) .. "\n",
        "\n![latency percentiles](latency.svg)\n\n![throughput over time](throughput.svg)\n",
    }
    S.write_file(o.out .. "/report.md", table.concat(md, "\n"))
    S.write_file(o.out .. "/latency.svg", latency_chart(runs))
    S.write_file(o.out .. "/throughput.svg", throughput_chart(runs))
end

-- -- Main --------------------------------------------------------------------------

-- The baseline runs as one row: their mean req/s, the medians of their
-- percentiles; for the chart, each run's req/s at its time in the test.
local function baseline_summary(list)
    local b = { name = "baseline", mode = "closed", connections = list[1].connections,
        target_rps = 0, duration_us = 0, max_ms = 0, samples = {} }
    local counts = { "requests", "responses", "errors", "bad", "s2xx", "s3xx", "s4xx", "s429", "s5xx" }
    local lo, hi, total = math.huge, 0, 0
    for _, r in ipairs(list) do
        for _, k in ipairs(counts) do
            b[k] = (b[k] or 0) + r[k]
        end
        total, lo, hi = total + r.rps, min(lo, r.rps), max(hi, r.rps)
        b.max_ms = max(b.max_ms, r.max_ms)
        b.samples[#b.samples + 1] = { t = r.at, rps = r.rps }
    end
    for _, k in ipairs({ "p50_ms", "p90_ms", "p99_ms" }) do
        local v = {}
        for i, r in ipairs(list) do
            v[i] = r[k]
        end
        table.sort(v)
        b[k] = v[floor((#v + 1) / 2)]
    end
    b.rps, b.baseline_rps = total / #list, total / #list
    b.error_rate = (b.errors + b.bad) / max(1, b.responses + b.errors)
    b.share_429 = b.s429 / max(1, b.responses)
    b.notes = { fmt("%d runs of %.0f s, %s–%s req/s, percentiles: medians", #list,
        list[1].duration_us / 1e6, grouped(lo), grouped(hi)) }
    return b
end

local function run(o, thresholds)
    local wanted, chosen = {}, {}
    for _, name in ipairs(o.names) do
        wanted[name] = true
    end
    for _, sc in ipairs(SCENARIOS) do
        if #o.names == 0 or wanted[sc.name] then
            chosen[#chosen + 1] = sc
        end
    end
    stack.run_id = os.date("!%Y%m%d-%H%M%S")
    o.out = o.out or "bench/results/loadtest-" .. stack.run_id
    if not sh("mkdir -p " .. S.shell_quote(o.out) .. " 2>/dev/null") then
        refuse("cannot create the report folder " .. o.out)
    elseif not sh("command -v wrk >/dev/null") then
        refuse("wrk not found (scripts/deps.sh installs it)")
    elseif not os.getenv("LUAHOST_BIN") and not unistd.access(S.bin, "x") and not sh("scripts/build.sh") then
        refuse("build failed")
    end
    stack.services()

    -- The baseline, GET /hello on bench/app, closed loop, runs before the
    -- first scenario and after every scenario; each scenario's req/s is
    -- divided by the mean of the two baseline runs around it, so that a
    -- machine busier or quieter than usual moves both sides of the ratio.
    local test_t0 = S.now()
    local baseline_o = { duration = max(1, min(3, floor(o.duration / 3))), out = o.out,
        connections = o.connections }
    local baselines = {}
    local function baseline_run()
        local label = "baseline-" .. #baselines + 1
        local ok, r = pcall(run_scenario, BASELINE, baseline_o, label)
        if not ok then -- the scenario before crashed bench/app: once more, on a new one
            stack.interruption_point()
            io.stderr:write(fmt("loadtest: %s: %s; again on a new server\n", label, tostring(r)))
            r = run_scenario(BASELINE, baseline_o, label)
        end
        r.at = r.t0 - test_t0 + r.duration_us / 2e6 -- its middle, in the test's time
        baselines[#baselines + 1] = r
        return r
    end
    run_wrk("warm-up", "hello", stack.server("bench"), baseline_o.connections or 32, nil, 1, {}, o)
    local runs = {}
    local before = baseline_run()
    for _, sc in ipairs(chosen) do
        io.stderr:write(fmt("loadtest: %s\n", sc.name))
        stack.interruption_point()
        local ok, r = pcall(run_scenario, sc, o)
        stack.interruption_point()
        if not ok then -- a crash or a broken run is a failed scenario, not a setup error
            r = { name = sc.name, failed = tostring(r) }
            io.stderr:write("loadtest: ", sc.name, ": ", r.failed, "\n")
        end
        local after = baseline_run()
        r.baseline_rps = (before.rps + after.rps) / 2
        runs[#runs + 1] = r
        before = after
    end
    table.insert(runs, 1, baseline_summary(baselines))

    -- Servers' error logs, for a look after a failure.
    for kind, srv in pairs(stack.servers) do
        S.write_file(fmt("%s/%s-error.log", o.out, kind), (stack.crash_logs[kind] or "") .. srv:error_log())
    end

    local verdict, measured, failed = 0, {}, {}
    for _, r in ipairs(runs) do
        if r.failed then
            verdict = 1
            failed[#failed + 1] = fmt("- %s: %s", r.name, r.failed:gsub("%s+", " "):sub(1, 600))
            io.stderr:write(fmt("FAIL %s: %s\n", r.name, r.failed))
        else
            r.rps_ratio = r.rps / r.baseline_rps
            evaluate(r, thresholds, o.smoke)
            verdict = r.ok and verdict or 1
            measured[#measured + 1] = r
        end
    end
    write_report(measured, failed, o, verdict)
    io.write(markdown_table(measured), "\n")
    if verdict ~= 0 then
        io.write("Failed:\n", checks_text(measured), "\n", table.concat(failed, "\n"), "\n")
    end
    io.write(fmt("%s; report in %s/report.md\n", verdict == 0 and "PASS" or "FAIL", o.out))
    return verdict
end

local function cleanup()
    if stack.wrk then
        S.kill(stack.wrk, "KILL")
        S.wait_pid(stack.wrk, 2)
    end
    -- A run that ended early has not deleted its uploads yet.
    local gallery = stack.servers.gallery
    if stack.accounts and gallery and gallery:running() then
        pcall(delete_uploads, gallery)
    end
    S.stop_all()
    if stack.started_services then
        sh("scripts/services.sh stop >/dev/null")
    end
end

-- SIGINT, SIGTERM and SIGHUP (the terminal closed) end the run through the
-- same cleanup as an error: the handler only takes note (luaposix swallows
-- errors raised in handlers), and interruption_point() raises at the next
-- safe place.
for _, sig in ipairs({ posix_signal.SIGINT, posix_signal.SIGTERM, posix_signal.SIGHUP }) do
    posix_signal.signal(sig, function(n)
        stack.interrupted = n
    end)
end

local o = parse_args(arg)
for _, name in ipairs(o.names) do
    if not BY_NAME[name] then
        usage_error("unknown scenario " .. name)
    end
end
local known = { baseline = true }
for name in pairs(BY_NAME) do
    known[name] = true
end
local thresholds, terr = load_thresholds(o.thresholds, known)
if not thresholds then
    io.stderr:write("loadtest: ", terr, "\n")
    os.exit(2)
end
local ok, verdict = xpcall(run, function(err)
    if type(err) == "table" and err.refusal then
        return err.refusal
    end
    return stack.interrupted and err or debug.traceback(err)
end, o, thresholds)
local cleaned, cerr = pcall(cleanup)
if not cleaned then
    io.stderr:write("loadtest: cleanup: ", tostring(cerr), "\n")
end
if not ok then
    io.stderr:write("loadtest: ", tostring(verdict), "\n")
    os.exit(2)
end
os.exit(verdict)
