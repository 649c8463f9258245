-- Rate limits shared through Redis, over real HTTP: each spec starts its own
-- redis-server on a free port (S.redis) and luahost with --redis-url.
-- Exact counting in Redis, one limit shared by two luahost instances (an IPv6
-- network's and a bot's hold included), and the in-process fallback when
-- Redis stops or stops answering (no 5xx, no hang, logged once) and the
-- return to Redis when it answers again.
--
-- The server runs spec/integration/secure/app with its sibling policy
-- directory spec/integration/secure/policy (default 5 per minute per
-- fingerprint, 20 per minute per address).
local S = require "integration.support.server"
local cjson = require "cjson"
local stdlib = require "posix.stdlib"

local APP = "spec/integration/secure/app"
local POLICY = "spec/integration/secure/policy"
local SECRET = "spec-secret-0123456789-abcdefghij-KLMNOP" -- 40 bytes

-- Starts the secure app on Redis r with the test FINGERPRINT_SECRET.
local function start(r, args)
    local argv = { "--redis-url", r.url }
    for _, a in ipairs(args or {}) do
        argv[#argv + 1] = a
    end
    return S.start({ app = APP, args = argv, env = { FINGERPRINT_SECRET = SECRET } })
end

local fresh_window, fresh_ua = S.fresh_window, S.fresh_ua

-- A policy directory of the test policy's files, each table t changed by
-- the Lua statements edits[name] (such as 't.per_ip = "9/minute"').
local function policy_with(edits)
    local dir = S.tmpdir()
    local src = assert(stdlib.realpath(POLICY))
    for _, name in ipairs({ "limits", "bot", "csp", "headers" }) do
        S.write_file(("%s/%s.lua"):format(dir, name), ("local t = dofile(%q)\n%s\nreturn t\n"):format(
            ("%s/%s.lua"):format(src, name), edits[name] or ""))
    end
    return dir
end

-- GET path on keep-alive client c: the response and how long it took.
local function timed_get(c, path, headers)
    local t0 = S.now()
    local res, err = c:request("GET", path, headers)
    local took = S.now() - t0
    assert(res, "no response to GET " .. path .. " after " .. took .. " s: " .. tostring(err))
    return res, took
end

local function assert_too_many(res, what)
    assert.are.equal(429, res.status, what .. ": " .. res.body)
    local ra = tonumber(res.headers["Retry-After"])
    assert.is_truthy(ra and ra > 0, what .. ": Retry-After")
    assert.are.same({ success = false, error = "Too many requests", retry_after = ra },
        cjson.decode(res.body), what)
end

-- Sum of the per-address counters in Redis ("rl:ip:<address>:<window>:<index>").
local function ip_count(r)
    local total = 0
    for _, key in ipairs(r:keys("rl:ip:127.0.0.1:*")) do
        total = total + (tonumber(r:command("GET", key)) or 0)
    end
    return total
end

-- The "unavailable (<reason>)" line must say why, in words: hiredis's message
-- ("Server closed the connection", "Resource temporarily unavailable", ...).
local function assert_reason(line)
    local reason = line:match("unavailable %((.-)%); limiting")
    assert.is_truthy(reason and reason:match("^%w[%w%p ]+$"),
        "no readable reason in the 'unavailable' line: " .. line)
end

-- With bot.lua's threshold at 3 and retry_after 30: three requests of ua
-- pass on c, the fourth starts the 30 s hold.
local function trip_bot(c, ua)
    for i = 1, 3 do
        assert.are.equal(200, timed_get(c, "/counted", ua).status, "request " .. i)
    end
    local res = timed_get(c, "/counted", ua)
    assert.are.equal(429, res.status, res.body)
    assert.are.equal("30", res.headers["Retry-After"])
end

-- luahost_ratelimit_local_decisions_total, from /metrics.
local function local_decisions(srv)
    local res = assert(srv:request("GET", "/metrics"))
    assert.are.equal(200, res.status, res.body)
    return tonumber(res.body:match("\nluahost_ratelimit_local_decisions_total (%S+)"))
end

-- The request budget each request keeps to, in seconds: a Redis that is gone
-- or frozen must never hold a request near this.
local BUDGET = 1.0

describe("rate limits in Redis #integration", function()
    after_each(function()
        S.stop_all()
    end)

    it("counts in Redis: 5 allowed with Remaining 4..0, the 6th 429, keys rl:* in Redis", function()
        local r = S.redis()
        local srv = start(r)
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        local ua = fresh_ua("exact")
        fresh_window(60, 4)
        for i = 1, 5 do
            local res = timed_get(c, "/hello", { ["User-Agent"] = ua })
            assert.are.equal(200, res.status)
            assert.are.equal("5", res.headers["X-RateLimit-Limit"])
            assert.are.equal(tostring(5 - i), res.headers["X-RateLimit-Remaining"])
            assert.is_truthy(res.headers["RateLimit-Policy"])
            assert.is_truthy(res.headers["RateLimit"])
        end
        assert_too_many(timed_get(c, "/hello", { ["User-Agent"] = ua }), "6th request")

        -- The counts live in Redis: fingerprint, address and bot counter keys.
        local keys = r:keys("rl:*")
        assert.is_truthy(#keys >= 2, "keys: " .. table.concat(keys, " "))
        assert.are.equal(5, ip_count(r)) -- the refused request is not counted
        assert.is_truthy(#r:keys("pattern:*") >= 1, table.concat(r:keys("*"), " ")) -- bot counter
        assert.is_nil(srv:error_log():find("unavailable", 1, true), srv:error_log())
    end)

    it("shares one limit between two luahost instances on one Redis", function()
        local r = S.redis()
        local a, b = start(r), start(r)
        local ca, cb = assert(a:client()), assert(b:client())
        finally(function()
            ca:close()
            cb:close()
        end)
        local ua = fresh_ua("shared")
        fresh_window(60, 4)
        local allowed, remaining = 0, {}
        for i = 1, 12 do
            local res = timed_get(i % 2 == 1 and ca or cb, "/hello", { ["User-Agent"] = ua })
            if res.status == 200 then
                allowed = allowed + 1
                remaining[#remaining + 1] = res.headers["X-RateLimit-Remaining"]
            else
                assert_too_many(res, "request " .. i)
            end
        end
        assert.are.equal(5, allowed)
        assert.are.same({ "4", "3", "2", "1", "0" }, remaining)
        assert.is_truthy(a:access_log('"GET /hello" 429', 5, true), a:access_log())
        assert.is_truthy(b:access_log('"GET /hello" 429', 5, true), b:access_log())
        assert.are.equal(5, ip_count(r))
    end)

    it("counts an IPv6 network and holds a bot in Redis, for every instance", function()
        local r = S.redis()
        local policy = policy_with({
            limits = 't.per_ip = "1000 per minute"\n'
                .. 't.per_network = { ipv6_prefix = 48, limit = "6 per minute" }',
            bot = "t.threshold, t.retry_after = 3, 30",
        })
        local args = { "--policy-dir", policy, "--trusted-proxies", "127.0.0.1/32" }
        local a, b = start(r, args), start(r, args)
        local ca, cb = assert(a:client()), assert(b:client())
        finally(function()
            ca:close()
            cb:close()
        end)
        fresh_window(60, 5)
        -- Seven /64s of 2001:db8:9::/48, on either instance: one bucket.
        local statuses = {}
        for i = 1, 7 do
            local res = timed_get(i % 2 == 1 and ca or cb, "/hello", {
                ["User-Agent"] = fresh_ua("net"), ["X-Forwarded-For"] = ("2001:db8:9:%x::1"):format(i),
            })
            statuses[i] = res.status
        end
        assert.are.same({ 200, 200, 200, 200, 200, 200, 429 }, statuses)
        local counted = 0
        for _, key in ipairs(r:keys("rl:net:2001:db8:9::/48:*")) do
            counted = counted + tonumber(r:command("GET", key))
        end
        assert.are.equal(6, counted)

        -- A bot past 3 requests in 10 s, held on both instances.
        local ua = { ["User-Agent"] = fresh_ua("bot") }
        fresh_window(10, 3)
        trip_bot(ca, ua)
        local res = timed_get(cb, "/counted", ua)
        assert.are.equal(429, res.status, res.body)
        assert.is_truthy(cjson.decode(res.body).error:find("bot behavior", 1, true), res.body)
        local blocks = r:keys("pattern:*:block")
        assert.are.equal(1, #blocks, table.concat(blocks, " "))
        local ttl = r:command("PTTL", blocks[1])
        assert.is_truthy(ttl > 0 and ttl <= 30000, "PTTL " .. tostring(ttl))
        assert.is_truthy(a:error_log("held 30 s", 5, true), a:error_log())
        assert.is_nil(b:error_log():find("bot behavior", 1, true), b:error_log())
    end)

    it("limits in-process while Redis is stopped, logs it once, and shares again when it is back", function()
        local r = S.redis()
        local srv = start(r)
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        fresh_window(60, 6)
        for i = 1, 2 do
            assert.are.equal(200, timed_get(c, "/hello", { ["User-Agent"] = fresh_ua("before") }).status,
                "request " .. i)
        end
        assert.are.equal(2, ip_count(r))
        assert.are.equal(0, local_decisions(srv))

        r:stop()
        -- Answered by the local limiter: 5 allowed, then 429; never 5xx, never slow.
        local ua = fresh_ua("outage")
        for i = 1, 5 do
            local res, took = timed_get(c, "/hello", { ["User-Agent"] = ua })
            assert.are.equal(200, res.status, "request " .. i .. " during the outage: " .. res.body)
            assert.are.equal(tostring(5 - i), res.headers["X-RateLimit-Remaining"])
            assert.is_truthy(took < BUDGET, "request " .. i .. " took " .. took .. " s")
        end
        local res, took = timed_get(c, "/hello", { ["User-Agent"] = ua })
        assert_too_many(res, "6th request during the outage")
        assert.is_truthy(took < BUDGET, "took " .. took .. " s")
        local line = srv:error_log("rate limit: redis 127.0.0.1:" .. r.port .. " unavailable", 5, true)
        assert.is_truthy(line, "no 'unavailable' line:\n" .. srv:error_log())
        assert.is_truthy(line:find("limiting in this process", 1, true), line)
        -- Operators see it in /metrics too: the six checks of the outage,
        -- and the scrape's own (/metrics is limited like any route).
        assert.are.equal(7, local_decisions(srv))

        -- Retried at most once a second, still down: not logged again.
        S.sleep(1.2)
        for _ = 1, 3 do
            res, took = timed_get(c, "/hello", { ["User-Agent"] = fresh_ua("outage") })
            assert.are.equal(200, res.status)
            assert.is_truthy(took < BUDGET, "took " .. took .. " s")
        end
        assert.are.equal(1, S.count(srv:error_log(), "limiting in this process"), srv:error_log())

        -- Redis again (empty): the next retry finds it.
        r:start()
        local back
        local deadline = S.now() + 5
        repeat
            res, took = timed_get(c, "/hello", { ["User-Agent"] = fresh_ua("after") })
            assert.is_truthy(res.status == 200 or res.status == 429, res.status)
            assert.is_truthy(took < BUDGET, "took " .. took .. " s")
            back = srv:error_log():find("is back", 1, true)
            if not back then
                S.sleep(0.2)
            end
        until back or S.now() > deadline
        assert.is_truthy(back, "no 'is back' line:\n" .. srv:error_log())
        assert.is_truthy(srv:error_log("redis 127.0.0.1:" .. r.port .. " is back; limits are shared again",
            1, true), srv:error_log())

        -- Counted in Redis again.
        assert.is_truthy(#r:keys("rl:*") > 0)
        local n = ip_count(r)
        assert.are.equal(200, timed_get(c, "/hello", { ["User-Agent"] = fresh_ua("after") }).status)
        assert.are.equal(n + 1, ip_count(r))
        assert.are.equal(1, S.count(srv:error_log(), "limiting in this process"))
        assert.are.equal(1, S.count(srv:error_log(), "is back"))
        assert.is_nil(srv:access_log():find('" 5%d%d '), srv:access_log())
    end)

    it("limits in-process, without hanging, while Redis does not answer (SIGSTOP)", function()
        local r = S.redis()
        local srv = start(r, { "--redis-timeout", "150" })
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        fresh_window(60, 6)
        assert.are.equal(200, timed_get(c, "/hello", { ["User-Agent"] = fresh_ua("before") }).status)
        assert.are.equal(1, ip_count(r))

        r:pause()
        local ua = fresh_ua("frozen")
        local statuses = {}
        for i = 1, 6 do
            local res, took = timed_get(c, "/hello", { ["User-Agent"] = ua })
            statuses[i] = res.status
            assert.is_truthy(took < BUDGET, "request " .. i .. " took " .. took .. " s")
            if i == 6 then
                assert_too_many(res, "6th request")
            end
        end
        assert.are.same({ 200, 200, 200, 200, 200, 429 }, statuses)
        assert.is_truthy(srv:error_log("unavailable", 5, true), srv:error_log())
        -- A retry a second later meets the frozen Redis again: still fast.
        S.sleep(1.1)
        local res, took = timed_get(c, "/hello", { ["User-Agent"] = fresh_ua("frozen") })
        assert.are.equal(200, res.status)
        assert.is_truthy(took < BUDGET, "took " .. took .. " s")

        r:resume()
        local deadline = S.now() + 5
        local back
        repeat
            res, took = timed_get(c, "/hello", { ["User-Agent"] = fresh_ua("thawed") })
            assert.is_truthy(took < BUDGET, "took " .. took .. " s")
            back = srv:error_log():find("is back", 1, true)
            if not back then
                S.sleep(0.2)
            end
        until back or S.now() > deadline
        assert.is_truthy(back, "no 'is back' line:\n" .. srv:error_log())
        assert.are.equal(1, S.count(srv:error_log(), "limiting in this process"), srv:error_log())
        local n = ip_count(r)
        assert.are.equal(200, timed_get(c, "/hello", { ["User-Agent"] = fresh_ua("thawed") }).status)
        assert.are.equal(n + 1, ip_count(r))
    end)

    it("keeps a bot held in-process while Redis was down held once Redis is back, on every instance", function()
        local r = S.redis()
        local policy = policy_with({ bot = "t.threshold, t.retry_after = 3, 30" })
        local srv = start(r, { "--policy-dir", policy, "--redis-timeout", "150" })
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        local ua = { ["User-Agent"] = fresh_ua("held-offline") }
        fresh_window(10, 4)
        r:pause()
        trip_bot(c, ua)
        r:resume()
        local deadline = S.now() + 5
        repeat
            S.sleep(0.2)
            timed_get(c, "/hello", { ["User-Agent"] = fresh_ua("thawed") })
        until srv:error_log():find("is back", 1, true) or S.now() > deadline
        assert.is_truthy(srv:error_log():find("is back", 1, true), srv:error_log())
        -- Redis never heard of the hold: still held, past the threshold
        -- again, counted against no limit, and no second hold starts.
        local res
        local counted = ip_count(r)
        local last = 30
        for i = 1, 8 do
            res = timed_get(c, "/counted", ua)
            assert.are.equal(429, res.status, "after Redis came back, request " .. i .. ": " .. res.body)
            assert.is_truthy(cjson.decode(res.body).error:find("bot behavior", 1, true), res.body)
            local left = tonumber(res.headers["Retry-After"])
            assert.is_truthy(left > 20 and left <= last, "Retry-After " .. tostring(left))
            last = left
        end
        assert.are.equal(counted, ip_count(r))
        assert.are.equal(1, S.count(srv:error_log(), "bot behavior"), srv:error_log())
        -- Handed to Redis with the time it has left: every instance holds it.
        local blocks = r:keys("pattern:*:block")
        assert.are.equal(1, #blocks, table.concat(blocks, " "))
        local ttl = r:command("PTTL", blocks[1])
        assert.is_truthy(ttl > 15000 and ttl <= last * 1000, "PTTL " .. tostring(ttl))
        local other = start(r, { "--policy-dir", policy })
        res = assert(other:request("GET", "/counted", ua))
        assert.are.equal(429, res.status, res.body)
        assert.is_truthy(cjson.decode(res.body).error:find("bot behavior", 1, true), res.body)
        assert.are.equal(200, timed_get(c, "/counted", { ["User-Agent"] = fresh_ua("other") }).status)
    end)

    it("says why Redis is unavailable, for a stopped and for a frozen Redis", function()
        -- The reason is hiredis's errstr, read from the context redis_drop has
        -- just freed (src/ratelimit.c): an ASan build reports a heap
        -- use-after-free there and dies; a plain build logs "unavailable ()".
        for _, how in ipairs({ "stop", "pause" }) do
            local r = S.redis()
            local srv = start(r)
            local c = assert(srv:client())
            assert.are.equal(200, timed_get(c, "/health").status)
            assert.are.equal(200, timed_get(c, "/hello", { ["User-Agent"] = fresh_ua(how) }).status)
            r[how](r)
            local res = c:request("GET", "/hello", { ["User-Agent"] = fresh_ua(how) })
            c:close()
            assert.is_truthy(res and res.status == 200, how .. ": the server did not answer:\n"
                .. srv:error_log())
            local line = srv:error_log("unavailable", 5, true)
            assert.is_truthy(line, srv:error_log())
            assert_reason(line)
            if how == "pause" then -- README's wording, not errno's "Resource temporarily unavailable"
                assert.is_truthy(line:find("(no answer within redis_timeout (", 1, true), line)
            end
        end
    end)
end)
