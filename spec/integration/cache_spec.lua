-- luahost.cache over real HTTP with a private redis-server: one computation
-- for 200 concurrent misses (one instance, and two sharing Redis), errors
-- reaching callers without being cached, the lock left alone by non-owners,
-- stale serving, invalidation reaching the other instance's L1 within
-- 100 ms, and Redis stopping without routes failing. Then the gallery: list
-- pages cached and invalidated by uploads on every instance, and the
-- admin-only stats endpoint.
--
-- The cache routes are spec/integration/cacheapp; each computation counts
-- itself in Redis under test:computations:<key>.
local S = require "integration.support.server"
local G = require "integration.support.gallery"
local cjson = require "cjson"

local APP = "spec/integration/cacheapp"
local json = G.json

local function start(r, extra)
    local args = { "--redis-url", r.url }
    for _, a in ipairs(extra or {}) do
        args[#args + 1] = a
    end
    return S.start({ app = APP, args = args })
end

local function get(srv, path)
    local res = assert(srv:request("GET", path))
    return res, res.status == 200 and json(res) or nil
end

local function computations(r, key)
    return tonumber(r:command("GET", "test:computations:" .. key)) or 0
end

-- Sends every request before reading any answer, so that they all reach
-- the servers at once; returns the decoded bodies and statuses.
local function concurrent(targets)
    local clients = {}
    for i, t in ipairs(targets) do
        clients[i] = assert(S.client(t.srv.port, 10))
        assert(clients[i]:send(S.format_request("GET", t.path)))
    end
    local bodies, statuses = {}, {}
    for i, c in ipairs(clients) do
        local res = assert(c:read_response("GET"))
        statuses[i] = res.status
        bodies[i] = res.body
        c:close()
    end
    return bodies, statuses
end

local function key(what)
    return ("%s%d%d"):format(what, os.time() % 100000, math.random(1e6))
end

describe("cache #integration", function()
    local r, a, b

    setup(function()
        r = S.redis()
        a = start(r)
        b = start(r)
    end)

    teardown(function()
        S.stop_all()
        S.redis_stop_all()
    end)

    -- 200 requests at once for a cold key computed in 300 ms, spread over
    -- servers in turn: every answer is the first computation's, and Redis
    -- counted exactly one.
    local function assert_one_computation(k, servers)
        local targets = {}
        for i = 1, 200 do
            targets[i] = { srv = servers[i % #servers + 1], path = "/compute/" .. k .. "?delay=0.3" }
        end
        local bodies, statuses = concurrent(targets)
        for i = 1, 200 do
            assert.are.equal(200, statuses[i], bodies[i])
            assert.are.equal(1, cjson.decode(bodies[i]).value.computation)
        end
        assert.are.equal(1, computations(r, k))
    end

    it("computes a cold key once for 200 concurrent requests", function()
        local k = key("cold")
        assert_one_computation(k, { a })
        local _, stats = get(a, "/stats")
        assert.is_true(stats.flight_waits >= 199, cjson.encode(stats))
        assert.is_nil(r:command("GET", "cache-lock:" .. k), "the lock was released")
    end)

    it("computes a cold key once for 200 requests split over two instances", function()
        assert_one_computation(key("shared"), { a, b })
    end)

    it("gives every waiter the computation's error and caches nothing", function()
        local k = key("failing")
        local targets = {}
        for i = 1, 20 do
            targets[i] = { srv = a, path = "/compute/" .. k .. "?delay=0.3&fail=return" }
        end
        local bodies, statuses = concurrent(targets)
        for i = 1, 20 do
            assert.are.equal(503, statuses[i], bodies[i])
            assert.are.equal("computation failed", cjson.decode(bodies[i]).error)
        end
        assert.are.equal(1, computations(r, k))
        assert.is_nil(r:command("GET", "cache-lock:" .. k), "the lock was released")

        local res, body = get(a, "/compute/" .. k)
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(2, body.value.computation) -- not cached: computed again
    end)

    it("answers 500 for a computation that raises, releasing the lock", function()
        local k = key("raising")
        local res = get(a, "/compute/" .. k .. "?fail=raise")
        assert.are.equal(500, res.status)
        assert.is_nil(res.body:find("computation raised", 1, true), "no error text to the client")
        assert.is_truthy(a:error_log("computation raised", 2, true))
        assert.is_nil(r:command("GET", "cache-lock:" .. k))
        local ok, body = get(a, "/compute/" .. k)
        assert.are.equal(200, ok.status, ok.body)
        assert.are.equal(2, body.value.computation)
    end)

    it("never releases a lock it does not own", function()
        local k = key("foreign")
        assert.is_truthy(r:command("SET", "cache-lock:" .. k, "another-owner", "PX", "5000"))
        local t0 = S.now()
        local res, body = get(a, "/compute/" .. k .. "?lock_wait=0.3")
        assert.are.equal(200, res.status, res.body)
        assert.is_true(S.now() - t0 >= 0.3, "waited for the owner first")
        assert.are.equal(1, body.value.computation) -- then computed rather than failed
        assert.are.equal("another-owner", r:command("GET", "cache-lock:" .. k))
        local _, stats = get(a, "/stats")
        assert.is_true(stats.lock_waits >= 1)
    end)

    it("waits for the value another instance is computing", function()
        local k = key("other")
        -- b computes for 0.5 s; a, asked meanwhile, finds b's lock and waits for its value.
        local cb = assert(S.client(b.port, 5))
        assert(cb:send(S.format_request("GET", "/compute/" .. k .. "?delay=0.5")))
        S.sleep(0.15)
        local res, body = get(a, "/compute/" .. k)
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(1, body.value.computation)
        assert.are.equal(200, assert(cb:read_response("GET")).status)
        assert.are.equal(1, computations(r, k))
    end)

    it("takes the lock over at once when the other instance's computation stores nothing", function()
        local k = key("takeover")
        -- b computes for 0.5 s and fails; a, waiting on b's lock, computes itself right after.
        local cb = assert(S.client(b.port, 5))
        assert(cb:send(S.format_request("GET", "/compute/" .. k .. "?delay=0.5&fail=return")))
        S.sleep(0.15)
        local t0 = S.now()
        local res, body = get(a, "/compute/" .. k)
        local waited = S.now() - t0
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(2, body.value.computation)
        assert.is_true(waited < 2, ("a waited %.2f s, the whole lock wait"):format(waited))
        assert.are.equal(503, assert(cb:read_response("GET")).status)
        assert.is_nil(a:error_log():find("no value for " .. k, 1, true), a:error_log())
        assert.is_nil(r:command("GET", "cache-lock:" .. k), "the lock was released")
    end)

    it("serves a stale value while exactly one caller refreshes it", function()
        local k = key("stale")
        local _, first = get(a, "/compute/" .. k .. "?ttl=1&stale=10")
        assert.are.equal(1, first.value.computation)
        S.sleep(1.2)
        local targets = {}
        for i = 1, 10 do
            targets[i] = { srv = a, path = "/compute/" .. k .. "?ttl=1&stale=10&delay=0.3" }
        end
        local bodies = concurrent(targets)
        local fresh, stale = 0, 0
        for i = 1, 10 do
            local n = cjson.decode(bodies[i]).value.computation
            if n == 2 then
                fresh = fresh + 1
            elseif n == 1 then
                stale = stale + 1
            end
        end
        assert.are.equal(1, fresh)
        assert.are.equal(9, stale)
        assert.are.equal(2, computations(r, k))
    end)

    it("drops a deleted key from the other instance's L1 within 100 ms", function()
        local k = key("shared-entry")
        assert.are.equal(200, assert(a:request("PUT", "/cache/" .. k, {}, "v1")).status)
        local _, seen = get(b, "/cache/" .. k) -- an L2 hit, promoted into b's L1
        assert.are.same({ value = "v1" }, seen.value)
        assert.is_true(select(2, get(b, "/l1/" .. k)).found)

        assert.are.equal(200, assert(a:request("DELETE", "/cache/" .. k)).status)
        local t0 = S.now()
        local gone
        repeat
            gone = not select(2, get(b, "/l1/" .. k)).found
        until gone or S.now() - t0 > 1
        assert.is_true(gone)
        -- 100 ms, or a second in a sanitizer build, whose every step is slower.
        local limit = os.getenv("LUAHOST_SANITIZED") and 1 or 0.1
        assert.is_true(S.now() - t0 < limit, ("took %.3f s"):format(S.now() - t0))
        assert.is_false(select(2, get(b, "/cache/" .. k)).found)
    end)

    it("invalidates a pattern in L2 and in every L1", function()
        local p = key("page")
        for i = 1, 3 do
            assert(a:request("PUT", "/cache/" .. p .. ":" .. i, {}, "x"))
            get(b, "/cache/" .. p .. ":" .. i)
        end
        assert(a:request("PUT", "/cache/other" .. p, {}, "kept"))
        assert.are.equal(200, assert(b:request("POST", "/invalidate?pattern=" .. p .. ":*")).status)
        S.sleep(0.1)
        for i = 1, 3 do
            assert.is_false(select(2, get(a, "/l1/" .. p .. ":" .. i)).found)
            assert.is_false(select(2, get(a, "/cache/" .. p .. ":" .. i)).found)
            assert.is_nil(r:command("GET", "cache:" .. p .. ":" .. i))
            assert.is_nil(r:command("ZSCORE", "cache-index", p .. ":" .. i))
        end
        -- Found through the index of the cache's keys, not a SCAN of Redis.
        assert.is_truthy(r:command("ZSCORE", "cache-index", "other" .. p))
        assert.is_true(select(2, get(a, "/cache/other" .. p)).found)
        assert.is_true(select(2, get(b, "/stats")).invalidations_received >= 1 or
            select(2, get(a, "/stats")).invalidations_received >= 1)
    end)

    it("invalidates a pattern over an index of many pages", function()
        -- Past 128 members Redis stores the index as a hash table, which
        -- ZSCAN reads a page at a time.
        local p, expiry = key("many"), os.time() + 600
        for i = 1, 1500 do
            local k = (i % 3 == 0 and "kept" or "") .. p .. ":" .. i
            r:command("SET", "cache:" .. k, '"x"', "EX", 600)
            r:command("ZADD", "cache-index", expiry, k)
        end
        local res = assert(a:request("POST", "/invalidate?pattern=" .. p .. ":*"))
        assert.are.equal(200, res.status, a:error_log())
        for i = 1, 1500 do
            local k = (i % 3 == 0 and "kept" or "") .. p .. ":" .. i
            local kept = i % 3 == 0
            assert.are.equal(kept, r:command("GET", "cache:" .. k) ~= nil, k)
            assert.are.equal(kept, r:command("ZSCORE", "cache-index", k) ~= nil, k)
        end
    end)

    it("leaves the L1 of an instance on another Redis database alone", function()
        -- Pub/sub spans the server's databases; their keys do not.
        local other = start({ url = r.url:gsub("/0$", "/1") })
        local k = key("per-database")
        assert.are.equal(200, assert(other:request("PUT", "/cache/" .. k, {}, "db1")).status)
        assert.are.equal(200, assert(a:request("PUT", "/cache/" .. k, {}, "db0")).status)
        get(b, "/cache/" .. k)
        assert.are.equal(200, assert(a:request("DELETE", "/cache/" .. k)).status)
        local t0 = S.now()
        repeat
            S.sleep(0.02)
        until not select(2, get(b, "/l1/" .. k)).found or S.now() - t0 > 1
        assert.is_false(select(2, get(b, "/l1/" .. k)).found)
        assert.is_true(select(2, get(other, "/l1/" .. k)).found)
        assert.are.same({ value = "db1" }, select(2, get(other, "/cache/" .. k)).value)
        other:stop()
    end)
end)

describe("cache without Redis #integration", function()
    local r, srv

    setup(function()
        r = S.redis()
        srv = start(r, { "--redis-timeout", "50" })
    end)

    teardown(function()
        S.stop_all()
        S.redis_stop_all()
    end)

    it("keeps answering from L1 and computations, counts the errors, and comes back", function()
        local k = key("survivor")
        local _, before = get(srv, "/compute/" .. k)
        assert.are.equal(1, before.value.computation)

        r:stop()
        local res, body = get(srv, "/compute/" .. k)
        assert.are.equal(200, res.status, res.body)
        assert.are.same(before.value, body.value) -- from L1
        local k2 = key("computed-without-redis")
        res, body = get(srv, "/compute/" .. k2)
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(k2, body.value.key)
        local _, stats = get(srv, "/stats")
        assert.is_true(stats.l2.errors >= 1)
        assert.is_false(stats.l2.available)
        assert.is_truthy(srv:error_log("redis 127%.0%.0%.1:%d+ unavailable", 2))

        r:start()
        local back
        local deadline = S.now() + 5
        repeat
            S.sleep(0.2)
            get(srv, "/compute/" .. key("probe"))
            back = select(2, get(srv, "/stats")).l2.available
        until back or S.now() > deadline
        assert.is_true(back)
        assert.is_truthy(srv:error_log("answers again", 2, true))
    end)
end)

describe("cache removals while Redis does not answer #integration", function()
    local r, srv

    setup(function()
        r = S.redis()
        srv = start(r, { "--redis-timeout", "50", "--workers", "2", "--cache-bytes", "1m" })
    end)

    teardown(function()
        S.stop_all()
        S.redis_stop_all()
    end)

    it("sends a removal that missed Redis from the next L1 hit, and the other instances drop their copy", function()
        local one = start(r, { "--redis-timeout", "50", "--workers", "1" }) -- the removal waits in its only worker
        local k, other = key("missed-removal"), key("l1-only")
        assert.are.equal(200, assert(one:request("PUT", "/cache/" .. k, {}, "old")).status)
        assert.are.equal(200, assert(one:request("PUT", "/cache/" .. other, {}, "kept")).status)
        assert.is_true(select(2, get(srv, "/cache/" .. k)).found) -- promoted into srv's L1s
        r:pause()
        assert.are.equal(200, assert(one:request("DELETE", "/cache/" .. k)).status)
        r:resume()
        S.sleep(1.1)
        -- An L1 hit, with no reason of its own to reach Redis.
        assert.are.same({ value = "kept" }, select(2, get(one, "/cache/" .. other)).value)
        local deadline = S.now() + 2
        repeat
            S.sleep(0.05)
        until r:command("GET", "cache:" .. k) == nil or S.now() > deadline
        assert.is_nil(r:command("GET", "cache:" .. k))
        -- Both of srv's workers, each on a connection of its own.
        for _ = 1, 4 do
            assert.is_false(select(2, get(srv, "/l1/" .. k)).found)
        end
        one:stop()
    end)

    it("does not bring a deleted key or pattern back from L2 once Redis answers again", function()
        local k, p = key("frozen-delete"), key("frozen-page")
        assert.are.equal(200, assert(srv:request("PUT", "/cache/" .. k, {}, "deleted")).status)
        assert.are.equal(200, assert(srv:request("PUT", "/cache/" .. p .. ":1", {}, "old page")).status)
        r:pause()
        assert.are.equal(200, assert(srv:request("DELETE", "/cache/" .. k)).status)
        assert.are.equal(200, assert(srv:request("POST", "/invalidate?pattern=" .. p .. ":*")).status)
        r:resume()
        -- Each request on a connection of its own: whichever worker takes it.
        local deadline = S.now() + 5
        repeat
            assert.is_false(select(2, get(srv, "/cache/" .. k)).found)
            assert.is_false(select(2, get(srv, "/cache/" .. p .. ":1")).found)
        until (r:command("GET", "cache:" .. k) == nil and r:command("GET", "cache:" .. p .. ":1") == nil)
            or S.now() > deadline
        assert.is_nil(r:command("GET", "cache:" .. k))
        assert.is_nil(r:command("GET", "cache:" .. p .. ":1"))
        assert.is_truthy(srv:error_log("cache: removal of key", 2, true), srv:error_log())
    end)

    it("keeps a value too big for L1 (a shard's share of cache_bytes) in L2", function()
        local k, big = key("big"), ("b"):rep(200 * 1024)
        local res = assert(srv:request("PUT", "/cache/" .. k, {}, big))
        local body = json(res)
        assert.is_true(body.ok, res.body)
        assert.is_false(select(2, get(srv, "/l1/" .. k)).found)
        assert.is_true(#(r:command("GET", "cache:" .. k) or "") > #big)
        local _, got = get(srv, "/cache/" .. k)
        assert.is_true(got.found)
        assert.are.equal(#big, #got.value.value)
    end)
end)

describe("gallery cache #integration", function()
    local r, a, b
    local owner = G.unique_name("cacher")
    local admin = G.unique_name("cacheadmin")
    local secret = "correct horse battery"
    local circle = '<svg xmlns="http://www.w3.org/2000/svg"><circle cx="5" cy="5" r="4"/></svg>'

    setup(function()
        assert.is_true(G.add_user(owner, secret, false))
        assert.is_true(G.add_user(admin, secret, true))
        r = S.redis()
        a = G.start({ "--redis-url", r.url })
        b = G.start({ "--redis-url", r.url })
    end)

    teardown(function()
        S.stop_all()
        S.redis_stop_all()
    end)

    local function first_page(srv)
        local res = assert(srv:request("GET", "/api/svg/list?page=1&per_page=5"))
        assert.are.equal(200, res.status, res.body)
        return json(res)
    end

    it("caches list pages and shows a new upload on every instance's next request", function()
        local before_a, before_b = first_page(a), first_page(b)
        assert.are.same(before_a, before_b)
        assert.is_truthy(r:command("GET", "cache:svg_list:1:5"), "the page is in L2")

        local h = G.session_headers(a, owner, secret)
        local up = G.upload(a, h, { filename = "fresh.svg", svg = circle })
        assert.are.equal(201, up.status, up.body)
        local id = json(up).id
        S.sleep(0.1) -- the invalidation message reaches b
        for _, srv in ipairs({ a, b }) do
            local page = first_page(srv)
            assert.are.equal(id, page.items[1].id)
            assert.are.equal(before_a.total_items + 1, page.total_items)
        end

        local del = assert(b:request("DELETE", "/api/svg/" .. id, h))
        assert.are.equal(200, del.status, del.body)
        S.sleep(0.1)
        for _, srv in ipairs({ a, b }) do
            assert.are_not.equal(id, first_page(srv).items[1].id)
        end
    end)

    it("never brings a deleted image back with a list read racing the delete", function()
        -- User-Agents of their own: the bot counter would stop 200 requests of one
        -- client, and the later tests' requests with the default one.
        local h = G.session_headers(a, owner, secret)
        h["User-Agent"] = "cache-race-writer"
        local list = "/api/svg/list?page=1&per_page=5"
        for round = 1, 20 do
            local reader = { ["User-Agent"] = "cache-race-" .. round }
            local up = G.upload(a, h, { filename = "racing.svg", svg = circle })
            assert.are.equal(201, up.status, up.body)
            local id = json(up).id
            -- Six readers of the cold first page on both instances, sent with the delete.
            local readers = {}
            for i = 1, 6 do
                local c = assert((i % 2 == 0 and a or b):client())
                assert(c:send(S.format_request("GET", list, reader)))
                readers[i] = c
            end
            local deleter = assert(b:client())
            assert(deleter:send(S.format_request("DELETE", "/api/svg/" .. id, h)))
            for _, c in ipairs(readers) do
                local res = assert(c:read_response("GET"))
                assert.are.equal(200, res.status, res.body)
                c:close()
            end
            local del = assert(deleter:read_response("DELETE"))
            deleter:close()
            assert.are.equal(200, del.status, del.body)
            S.sleep(0.1) -- the invalidation message reaches the other instance
            for _, srv in ipairs({ a, b }) do
                local res = assert(srv:request("GET", list, reader))
                assert.are.equal(200, res.status, res.body)
                for _, item in ipairs(json(res).items) do
                    assert.are_not.equal(id, item.id, ("round %d: deleted image %d listed"):format(round, id))
                end
            end
        end
    end)

    it("answers 404 for a deleted image right after the delete, whatever reads raced it", function()
        -- Readers on the deleting instance's other worker could read the old
        -- value from L2 between its L1 drop and the removal from L2, and
        -- keep it in L1 for a minute.
        local h = G.session_headers(a, owner, secret)
        h["User-Agent"] = "svg-race-writer"
        -- 6 rounds of 160 reads: the per-address limit allows 2000 an hour.
        for round = 1, 6 do
            local up = G.upload(a, h, { filename = "racing.svg", svg = circle })
            assert.are.equal(201, up.status, up.body)
            local path = "/svg/" .. json(up).id .. ".svg"
            local reader = { ["User-Agent"] = "svg-race-" .. round }
            -- Reads that keep coming while the delete runs: 8 connections
            -- of 20 pipelined requests each.
            local readers, burst = {}, S.format_request("GET", path, reader):rep(20)
            for i = 1, 8 do
                readers[i] = assert(a:client())
                assert(readers[i]:send(burst))
            end
            local del = assert(a:request("DELETE", "/api/svg/" .. json(up).id, h))
            assert.are.equal(200, del.status, del.body)
            for _, c in ipairs(readers) do
                for _ = 1, 20 do
                    assert(c:read_response("GET"))
                end
                c:close()
            end
            for _ = 1, 4 do -- new connections, on either worker
                local res = assert(a:request("GET", path, reader))
                assert.are.equal(404, res.status, ("round %d: %s served after its delete"):format(round, path))
            end
        end
    end)

    it("keeps serving list pages from L1 and the database while Redis is down", function()
        first_page(a)
        r:stop()
        assert.are.equal(5, #first_page(a).items) -- L1
        local res = assert(a:request("GET", "/api/svg/list?page=3&per_page=7")) -- the database
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(7, #json(res).items)
        r:start()
    end)

    it("shows the cache stats to administrators only", function()
        assert.are.equal(401, assert(a:request("GET", "/api/cache/stats")).status)
        local user = G.session_headers(a, owner, secret)
        assert.are.equal(403, assert(a:request("GET", "/api/cache/stats", user)).status)
        local res = assert(a:request("GET", "/api/cache/stats", G.session_headers(a, admin, secret)))
        assert.are.equal(200, res.status, res.body)
        local stats = json(res).stats
        assert.is_true(stats.l1.hits >= 1)
        assert.is_true(stats.l1.max_entries == 1000)
        assert.is_number(stats.l2.hit_rate)
        assert.is_number(stats.computations)
    end)
end)
