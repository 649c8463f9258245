-- Shared part of the load-test scenarios (bench/scenarios/<name>.lua), which
-- are plain wrk scripts:
--
--   local common = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/common.lua")
--   common.scenario{
--       expect = { 200 },                      -- statuses that are not errors
--       request = common.static_get("/hello"),     -- or any function returning wrk.format(...)
--       response = function(status, body, extra) end, -- optional: extra.name = n | "text"
--   }
--
-- common.scenario defines wrk's hooks: request() asks the scenario, response()
-- counts statuses per thread, done() adds the threads' counts and prints one
-- line that bench/loadtest.lua reads:
--
--   RESULT mode=closed target_rps=0 requests=N duration_us=N rps=X p50_us=N p90_us=N
--          p99_us=N max_us=N s2xx=N s3xx=N s4xx=N s429=N s5xx=N bad=N errors=N
--          econnect=N eread=N ewrite=N etimeout=N [extra=...]
--
-- bad: responses whose status is not in `expect` (5xx always are); errors:
-- socket errors and timeouts, then each kind (a malformed response counts
-- as a read error). With RATE set (requests per second for the
-- whole run, THREADS = wrk's -t), delay() paces each thread to RATE/THREADS
-- requests a second: the constant-rate mode (see bench/README.md, "Load tests").
local M = {}

local env = os.getenv

function M.env(name, default)
    local v = env(name)
    if v == nil or v == "" then
        return default
    end
    return v
end

-- The comma-separated values of an environment variable, as a list.
function M.list(name)
    local out = {}
    for v in (M.env(name, "")):gmatch("[^,]+") do
        out[#out + 1] = v
    end
    return out
end

-- A request's bytes: wrk.headers (User-Agent, Host...) overridden by headers.
-- (wrk.format itself drops wrk.headers when given a headers table.)
function M.format(method, path, headers, body)
    local h = {}
    for k, v in pairs(wrk.headers) do
        h[k] = v
    end
    for k, v in pairs(headers or {}) do
        h[k] = v
    end
    return wrk.format(method, path, h, body)
end

function M.get(path, headers)
    return M.format("GET", path, headers)
end

function M.post_json(path, body, headers)
    local h = { ["Content-Type"] = "application/json" }
    for k, v in pairs(headers or {}) do
        h[k] = v
    end
    return M.format("POST", path, h, body)
end

-- A request() that sends the same GET every time (formatted once, after
-- wrk.init has set the Host header).
function M.static_get(path)
    local bytes
    return function()
        bytes = bytes or M.get(path)
        return bytes
    end
end

-- A request() that numbers its requests: fn(run_id, thread_id, n) returns
-- the bytes of the n-th (RUN_ID keeps runs apart).
function M.numbered(fn)
    local run, n = M.env("RUN_ID", "0"), 0
    return function()
        n = n + 1
        return fn(run, thread_id, n)
    end
end

-- Picks one of `choices` ({weight, fn}, ...) in proportion to the weights.
function M.weighted(choices)
    local total = 0
    for _, c in ipairs(choices) do
        total = total + c[1]
    end
    return function()
        local r = math.random() * total
        for _, c in ipairs(choices) do
            r = r - c[1]
            if r < 0 then
                return c[2]()
            end
        end
        return choices[#choices][2]()
    end
end

-- A monotonic clock in milliseconds (wrk's Lua is LuaJIT: ffi is there).
local function monotonic_ms()
    local ffi = require "ffi"
    ffi.cdef [[
        typedef struct { long tv_sec; long tv_nsec; } loadtest_timespec;
        int clock_gettime(int clock, loadtest_timespec *ts);
    ]]
    local ts = ffi.new("loadtest_timespec")
    return function()
        ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
        return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    end
end

local CLASSES = { "s2xx", "s3xx", "s4xx", "s429", "s5xx", "bad" }
local LATE_MS = 10 -- a slot sent this much after its time counts as late

function M.scenario(spec)
    local expected = {}
    for _, s in ipairs(spec.expect or { 200 }) do
        expected[s] = true
    end
    local rate = tonumber(M.env("RATE", "0"))
    local threads_n = tonumber(M.env("THREADS", "1"))
    local threads = {} -- main state only: the threads, for done()

    -- Client headers, as bench/wrk/report.lua (they feed the fingerprint),
    -- unless the scenario set its own.
    wrk.headers["User-Agent"] = wrk.headers["User-Agent"] or "luahost-loadtest/1.0 (wrk)"
    wrk.headers["Accept-Language"] = wrk.headers["Accept-Language"] or "en-US,en;q=0.9"

    -- Per thread (every thread has its own Lua state): counts and extras,
    -- globals so that done() reads them with thread:get.
    counts = { s2xx = 0, s3xx = 0, s4xx = 0, s429 = 0, s5xx = 0, bad = 0 }
    extra = {}
    thread_id = 0

    function setup(thread)
        threads[#threads + 1] = thread
        thread:set("thread_id", #threads)
    end

    function init()
        math.randomseed(os.time() * 1000 + thread_id * 7919)
        if spec.init then
            spec.init(thread_id)
        end
    end

    request = spec.request

    if rate and rate > 0 then
        -- Each call claims the thread's next send slot: requests leave on a
        -- fixed schedule whatever the latency of earlier ones, as long as a
        -- connection is free. A late slot is sent at once and the schedule
        -- is kept, not restarted, so a stall is followed by a catch-up burst;
        -- how late the slots left is counted, since wrk times each request
        -- from its actual send.
        local now = monotonic_ms()
        local interval = 1000 * threads_n / rate
        local next_slot
        extra.late_slots, extra.late_ms_max = 0, 0
        function delay()
            local t = now()
            next_slot = next_slot or t
            local wait = next_slot - t
            next_slot = next_slot + interval
            if wait <= -LATE_MS then
                extra.late_slots = extra.late_slots + 1
                extra.late_ms_max = math.max(extra.late_ms_max, math.floor(-wait))
            end
            return math.max(0, math.floor(wait + 0.5))
        end
    end

    function response(status, _, body)
        local class
        if status == 429 then
            class = "s429"
        elseif status >= 200 and status < 600 then
            class = "s" .. math.floor(status / 100) .. "xx"
        end
        if class then
            counts[class] = counts[class] + 1
        end
        if not expected[status] then
            counts.bad = counts.bad + 1
        end
        if spec.response then
            spec.response(status, body, extra)
        end
    end

    function done(summary, latency)
        local total = { s2xx = 0, s3xx = 0, s4xx = 0, s429 = 0, s5xx = 0, bad = 0 }
        local extras, names = {}, {}
        for _, t in ipairs(threads) do
            local c = t:get("counts")
            for _, k in ipairs(CLASSES) do
                total[k] = total[k] + (c[k] or 0)
            end
            for k, v in pairs(t:get("extra") or {}) do
                if extras[k] == nil then
                    names[#names + 1] = k
                end
                if type(v) == "number" and k:match("_max$") then
                    extras[k] = math.max(extras[k] or 0, v)
                elseif type(v) == "number" then
                    extras[k] = (extras[k] or 0) + v
                elseif v ~= "" then
                    extras[k] = extras[k] and extras[k] .. "," .. v or v
                end
            end
        end
        local e = summary.errors
        local out = {
            ("RESULT mode=%s target_rps=%d requests=%d duration_us=%d rps=%.1f"):format(
                rate > 0 and "rate" or "closed", rate, summary.requests, summary.duration,
                summary.requests / (summary.duration / 1e6)),
            ("p50_us=%d p90_us=%d p99_us=%d max_us=%d"):format(latency:percentile(50),
                latency:percentile(90), latency:percentile(99), latency.max),
        }
        for _, k in ipairs(CLASSES) do
            out[#out + 1] = k .. "=" .. total[k]
        end
        out[#out + 1] = ("errors=%d econnect=%d eread=%d ewrite=%d etimeout=%d"):format(
            e.connect + e.read + e.write + e.timeout, e.connect, e.read, e.write, e.timeout)
        table.sort(names)
        for _, k in ipairs(names) do
            out[#out + 1] = k .. "=" .. tostring(extras[k] or "")
        end
        io.write(table.concat(out, " "), "\n")
    end
end

return M
