-- luahost.ratelimit (C binding): ratelimit.parse, ratelimit.ruleset, limiter:check
-- with a local limiter, with the Redis of scripts/services.sh (LUAHOST_REDIS_URL,
-- by default redis://127.0.0.1:16380/0) and with Redis down, limiter:redis_up,
-- limiter:close and ratelimit.host.
local ratelimit = require "luahost.ratelimit"
local ffi = require "ffi"
local host_objects = require "support.host"

local DEFAULT_REDIS_URL = "redis://127.0.0.1:16380/0"
local START_HINT = "start it with scripts/services.sh start"

ffi.cdef [[
struct lh_ratelimit;
struct ratelimit_spec_options { /* include/luahost/ratelimit.h's lh_ratelimit_options, field for field */
    const char *redis_host;
    int redis_port;
    int redis_db;
    const char *redis_user;
    const char *redis_password;
    double timeout;
    size_t local_max_keys;
};
struct lh_ratelimit *lh_ratelimit_new(const void *o, const char **err);
void lh_ratelimit_free(struct lh_ratelimit *rl);
]]

-- Keys unique to this run, so that runs sharing a Redis never collide.
local function unique_prefix()
    local f = assert(io.open("/dev/urandom", "rb"))
    local bytes = f:read(8)
    f:close()
    return "lhspec:" .. bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end) .. ":"
end

-- A window (seconds) whose current period has at least two minutes left: no
-- window ends during a test (the limiter reads the clock itself).
local function quiet_window(from)
    local now = os.time()
    for w = from, from / 2, -1 do
        if w - now % w >= 120 then
            return w
        end
    end
end

-- Limiter options for LUAHOST_REDIS_URL, and whether it was set.
local function redis_options()
    local url = os.getenv("LUAHOST_REDIS_URL")
    local from_env = url ~= nil and url ~= ""
    if not from_env then
        url = DEFAULT_REDIS_URL
    end
    local rest = assert(url:match("^redis://(.+)$"), "LUAHOST_REDIS_URL must be redis://...")
    local password
    local at = rest:find("@", 1, true)
    if at then
        password = rest:sub(1, at - 1):gsub("^[^:]*:", "")
        rest = rest:sub(at + 1)
    end
    local host, port, db = rest:match("^([^:/]+):?(%d*)/?(%d*)$")
    return {
        redis_host = host,
        redis_port = tonumber(port) or 6379,
        redis_db = tonumber(db) or 0,
        redis_password = password,
        timeout = 2,
    }, from_env
end

local function redis_reachable(o)
    local socket = require "socket"
    local tcp = socket.tcp()
    tcp:settimeout(2)
    local ok, err = tcp:connect(o.redis_host, o.redis_port)
    tcp:close()
    return ok ~= nil, err
end

-- The values of one check, by name.
local function check(limiter, rs, ...)
    local allowed, retry_after, limit, remaining, reset, window, count, is_local, held, hold_started =
        limiter:check(rs, ...)
    return {
        allowed = allowed, retry_after = retry_after, limit = limit, remaining = remaining,
        reset = reset, window = window, count = count, is_local = is_local, held = held,
        hold_started = hold_started,
    }
end

-- A counter of 2 per window holding for 600 s: the 3rd check starts the
-- hold, the 4th is held and not counted.
local function assert_hold(limiter, prefix, window)
    local rs = ratelimit.ruleset { { slot = 1, limit = 2, window = window, counter = true, hold = 600 } }
    for i = 1, 2 do
        local r = check(limiter, rs, prefix .. "bot")
        assert.same({ i, 0, false }, { r.count, r.held, r.hold_started }, "check " .. i)
    end
    local r = check(limiter, rs, prefix .. "bot")
    assert.same({ 3, 600, true }, { r.count, r.held, r.hold_started }, "3rd check")
    r = check(limiter, rs, prefix .. "bot")
    assert.same({ 0, false }, { r.count, r.hold_started }, "4th check")
    assert.is_true(r.held > 0 and r.held <= 600, "held " .. r.held)
    -- Another key is not held.
    assert.same({ 1, 0 }, { check(limiter, rs, prefix .. "human").count, 0 })
end

-- limit checks are allowed with remaining limit-1 .. 0, then refused; is_local as given.
local function assert_exact_limit(limiter, prefix, window, is_local)
    local rs = ratelimit.ruleset { { slot = 1, limit = 3, window = window } }
    for i = 1, 3 do
        local r = check(limiter, rs, prefix .. "exact")
        assert.is_true(r.allowed, "request " .. i)
        assert.equal(0, r.retry_after)
        assert.equal(3, r.limit)
        assert.equal(3 - i, r.remaining)
        assert.equal(window, r.window)
        assert.is_true(r.reset > 0 and r.reset <= window, "reset " .. r.reset)
        assert.equal(0, r.count)
        assert.equal(is_local, r.is_local)
    end
    for _ = 1, 2 do
        local r = check(limiter, rs, prefix .. "exact")
        assert.is_false(r.allowed)
        assert.is_true(r.retry_after > 0 and r.retry_after <= window, "retry_after " .. r.retry_after)
        assert.equal(3, r.limit)
        assert.equal(0, r.remaining)
        assert.equal(is_local, r.is_local)
    end
end

describe("luahost.ratelimit", function()
    describe("parse", function()
        it("returns the limits in order with their windows in seconds", function()
            assert.same({ { limit = 2000, window = 86400 }, { limit = 500, window = 3600 } },
                ratelimit.parse("2000 per day; 500 per hour"))
        end)

        it("accepts N/unit, N per M units, plurals and any case", function()
            assert.same({ { limit = 10, window = 60 } }, ratelimit.parse("10/minute"))
            assert.same({ { limit = 5, window = 30 } }, ratelimit.parse("5 per 30 seconds"))
            assert.same({ { limit = 1, window = 7200 } }, ratelimit.parse("1 per 2 hours"))
            assert.same({ { limit = 4, window = 1 } }, ratelimit.parse("4 PER Second"))
            assert.same({ { limit = 4, window = 172800 } }, ratelimit.parse("4 per 2 Days"))
        end)

        it("returns nil, err naming the bad part", function()
            local rates, err = ratelimit.parse("10/minute; 5 per fortnight")
            assert.is_nil(rates)
            assert.matches("bad limit ' 5 per fortnight'", err, 1, true)
        end)

        it("returns nil, err for empty, unknown, zero and negative limits", function()
            for _, bad in ipairs { "", "abc", "0 per hour", "-1/minute", "5 per fortnight",
                "10 per", "1 per 367 days" } do
                local rates, err = ratelimit.parse(bad)
                assert.is_nil(rates, bad)
                assert.matches("'" .. bad .. "'", err, 1, true)
            end
        end)

        it("returns nil, err for more than 8 limits", function()
            local rates, err = ratelimit.parse(("1/minute;"):rep(8) .. "1/minute")
            assert.is_nil(rates)
            assert.matches("more than 8 limits", err, 1, true)
        end)

        it("raises when the spec is not a string", function()
            assert.has_error(function() ratelimit.parse() end)
            assert.has_error(function() ratelimit.parse({}) end)
        end)
    end)

    describe("ruleset", function()
        local function rule(t)
            local r = { slot = 1, limit = 10, window = 60 }
            for k, v in pairs(t) do
                r[k] = v
            end
            return r
        end

        it("returns a ruleset for good rules", function()
            local rs = ratelimit.ruleset {
                rule {},
                rule { slot = 4, suffix = ":GET /x", limit = 1000000000, window = 366 * 86400 },
                rule { slot = 3, counter = true },
            }
            assert.is_userdata(rs)
        end)

        it("raises unless given 1 to 8 rules", function()
            assert.has_error(function() ratelimit.ruleset() end)
            assert.has_error(function() ratelimit.ruleset "x" end)
            assert.has_error(function() ratelimit.ruleset {} end, "bad argument #1 to 'ruleset' (want 1 to 8 rules)")
            local nine = {}
            for i = 1, 9 do
                nine[i] = rule {}
            end
            assert.has_error(function() ratelimit.ruleset(nine) end)
        end)

        it("raises when a rule is not a table", function()
            assert.has_error(function() ratelimit.ruleset { rule {}, "x" } end, "rule 2: want a table")
        end)

        -- Asserts that fn raises a message containing text.
        local function raises(text, fn)
            local ok, err = pcall(fn)
            assert.is_false(ok)
            assert.matches(text, tostring(err), 1, true)
        end

        it("raises on a bad slot", function()
            for _, slot in ipairs { 0, 5, -1, "1x" } do
                raises("rule 1: slot must be a whole number from 1 to ", function()
                    ratelimit.ruleset { rule { slot = slot } }
                end)
            end
            raises("rule 1: slot must be a whole number", function()
                ratelimit.ruleset { { limit = 1, window = 1 } }
            end)
        end)

        it("raises on a bad limit", function()
            for _, limit in ipairs { 0, -5, 1000000001, 0 / 0, 2.5 } do
                raises("rule 2: limit must be a whole number from 1 to ", function()
                    ratelimit.ruleset { rule {}, rule { limit = limit } }
                end)
            end
            raises("rule 1: limit must be a whole number", function()
                ratelimit.ruleset { { slot = 1, window = 60 } }
            end)
        end)

        it("raises on a bad window", function()
            for _, window in ipairs { 0, -1, 366 * 86400 + 1, 0 / 0 } do
                raises("rule 1: window must be a whole number from 1 to ", function()
                    ratelimit.ruleset { rule { window = window } }
                end)
            end
        end)

        it("names the allowed range in the message", function()
            assert.has_error(function() ratelimit.ruleset { rule { slot = 5 } } end,
                "rule 1: slot must be a whole number from 1 to 4")
            assert.has_error(function() ratelimit.ruleset { rule { limit = 0 } } end,
                "rule 1: limit must be a whole number from 1 to 1000000000")
            assert.has_error(function() ratelimit.ruleset { rule { window = 0 } } end,
                "rule 1: window must be a whole number from 1 to 31622400")
        end)

        it("takes a hold on a counter rule only, of 1 s to 366 days", function()
            assert.is_userdata(ratelimit.ruleset { rule { counter = true, hold = 60 } })
            assert.has_error(function() ratelimit.ruleset { rule { hold = 60 } } end,
                "rule 1: hold is for counter rules")
            for _, hold in ipairs { 0, -1, 366 * 86400 + 1, "60" } do
                raises("rule 1: hold must be a whole number from 1 to 31622400", function()
                    ratelimit.ruleset { rule { counter = true, hold = hold } }
                end)
            end
        end)

        it("raises on a prefix or suffix that is not a short string", function()
            local why = "rule 1: prefix and suffix must be short strings"
            assert.has_error(function() ratelimit.ruleset { rule { suffix = ("x"):rep(64) } } end, why)
            assert.has_error(function() ratelimit.ruleset { rule { suffix = {} } } end, why)
            assert.has_error(function() ratelimit.ruleset { rule { prefix = {} } } end, why)
            -- Together they share the room: 32 + 32 bytes is too long.
            assert.has_error(function()
                ratelimit.ruleset { rule { prefix = ("p"):rep(32), suffix = ("s"):rep(32) } }
            end, why)
        end)
    end)

    describe("a local limiter", function()
        local limiter, prefix, window

        before_each(function()
            limiter = assert(ratelimit.new())
            prefix = unique_prefix()
            window = quiet_window(3600)
        end)

        after_each(function()
            limiter:close()
        end)

        it("is not connected to Redis", function()
            assert.is_false(limiter:redis_up())
            assert.is_false(assert(ratelimit.new({})):redis_up())
        end)

        it("allows limit requests, then refuses with a retry_after, deciding locally", function()
            assert_exact_limit(limiter, prefix, window, true)
        end)

        it("limits each key on its own", function()
            local rs = ratelimit.ruleset { { slot = 1, limit = 1, window = window } }
            assert.is_true((limiter:check(rs, prefix .. "a")))
            assert.is_false((limiter:check(rs, prefix .. "a")))
            assert.is_true((limiter:check(rs, prefix .. "b")))
        end)

        it("builds a rule's key from its slot and suffix", function()
            local by_route = ratelimit.ruleset { { slot = 2, suffix = ":GET /x", limit = 1, window = window } }
            local plain = ratelimit.ruleset { { slot = 1, limit = 1, window = window } }
            assert.is_true((limiter:check(by_route, "unused", prefix .. "k")))
            assert.is_false((limiter:check(by_route, "other", prefix .. "k")))
            -- "<key>" and "<key>:GET /x" are different counts.
            assert.is_true((limiter:check(plain, prefix .. "k")))
            assert.is_false((limiter:check(plain, prefix .. "k:GET /x")))
        end)

        it("puts a rule's prefix before the slot's key", function()
            local prefixed = ratelimit.ruleset { { slot = 1, prefix = prefix .. "p:", limit = 1, window = window } }
            local plain = ratelimit.ruleset { { slot = 1, limit = 1, window = window } }
            assert.is_true((limiter:check(prefixed, "k")))
            assert.is_false((limiter:check(prefixed, "k")))
            -- The same count as the whole key given without a prefix.
            assert.is_false((limiter:check(plain, prefix .. "p:k")))
        end)

        it("reports the tightest limit rule (fewest remaining)", function()
            local long = quiet_window(7200)
            local rs = ratelimit.ruleset {
                { slot = 1, limit = 10, window = long },
                { slot = 1, suffix = ":short", limit = 3, window = window },
            }
            for i = 1, 3 do
                local r = check(limiter, rs, prefix .. "t")
                assert.is_true(r.allowed)
                assert.equal(3, r.limit)
                assert.equal(3 - i, r.remaining)
                assert.equal(window, r.window)
                assert.is_true(r.reset > 0 and r.reset <= window)
            end
            local r = check(limiter, rs, prefix .. "t")
            assert.is_false(r.allowed)
            assert.is_true(r.retry_after > 0 and r.retry_after <= window)
            -- The refused request was not counted against the long rule either.
            local long_only = ratelimit.ruleset { { slot = 1, limit = 10, window = long } }
            r = check(limiter, long_only, prefix .. "t")
            assert.equal(10, r.limit)
            assert.equal(10 - 3 - 1, r.remaining)
            assert.equal(long, r.window)
        end)

        it("describes the full rule when it refuses, not another one", function()
            -- As with the default "2000 per day; 500 per hour": the hour is full.
            local long = quiet_window(7200)
            local rs = ratelimit.ruleset {
                { slot = 1, limit = 10, window = long },
                { slot = 1, suffix = ":short", limit = 1, window = window },
            }
            assert.is_true(check(limiter, rs, prefix .. "full").allowed)
            local r = check(limiter, rs, prefix .. "full")
            assert.is_false(r.allowed)
            assert.equal(0, r.remaining)
            assert.same({ limit = 1, window = window }, { limit = r.limit, window = r.window })
        end)

        it("counts every request in a counter rule and never refuses for it", function()
            local rs = ratelimit.ruleset {
                { slot = 1, limit = 2, window = window },
                { slot = 2, limit = 50, window = window, counter = true },
            }
            for i = 1, 5 do
                local r = check(limiter, rs, prefix .. "fp", prefix .. "pattern")
                assert.equal(i <= 2, r.allowed)
                assert.equal(i, r.count)
                assert.equal(2, r.limit)
                assert.is_true(r.is_local)
            end
            local counter_only = ratelimit.ruleset { { slot = 1, limit = 3, window = window, counter = true } }
            for i = 1, 5 do
                local r = check(limiter, counter_only, prefix .. "only")
                assert.is_true(r.allowed)
                assert.equal(i, r.count)
                assert.equal(0, r.retry_after)
                -- No limit rule: nothing to describe.
                assert.equal(0, r.limit)
                assert.equal(0, r.window)
            end
        end)

        it("holds a key whose count passes a counter rule's limit, and says when it started", function()
            assert_hold(limiter, prefix, window)
        end)

        it("reports no hold for rules without one", function()
            local rs = ratelimit.ruleset { { slot = 1, limit = 1, window = window, counter = true } }
            for i = 1, 3 do
                local r = check(limiter, rs, prefix .. "unheld")
                assert.same({ i, 0, false }, { r.count, r.held, r.hold_started })
            end
        end)

        it("reports the highest count of several counter rules", function()
            local rs = ratelimit.ruleset {
                { slot = 1, limit = 50, window = window, counter = true },
                { slot = 2, limit = 50, window = window, counter = true },
            }
            check(limiter, rs, prefix .. "c1", prefix .. "c2")
            check(limiter, rs, prefix .. "c3", prefix .. "c2")
            assert.equal(3, check(limiter, rs, prefix .. "c4", prefix .. "c2").count)
            assert.equal(2, check(limiter, rs, prefix .. "c1", prefix .. "c5").count)
        end)

        it("raises when a key the ruleset needs is missing or too long", function()
            local rs = ratelimit.ruleset { { slot = 2, limit = 1, window = window } }
            assert.has_error(function() limiter:check(rs, "a") end, "key 2 is missing or too long")
            assert.has_error(function() limiter:check(rs, "a", ("k"):rep(128)) end,
                "key 2 is missing or too long")
        end)

        it("raises when the ruleset is not one", function()
            assert.has_error(function() limiter:check({}, "a") end)
            assert.has_error(function() limiter:check(nil, "a") end)
        end)

        it("raises once closed, and close can be called twice", function()
            local l = assert(ratelimit.new())
            l:close()
            l:close()
            local rs = ratelimit.ruleset { { slot = 1, limit = 1, window = window } }
            assert.has_error(function() l:check(rs, "a") end)
            assert.has_error(function() l:redis_up() end)
        end)
    end)

    describe("a limiter whose Redis is down", function()
        it("decides locally and still enforces the limits", function()
            local limiter = assert(ratelimit.new { redis_host = "127.0.0.1", redis_port = 1, timeout = 0.5 })
            assert_exact_limit(limiter, unique_prefix(), quiet_window(3600), true)
            assert.is_false(limiter:redis_up())
            limiter:close()
        end)
    end)

    local options, from_env = redis_options()
    local reachable, why = redis_reachable(options)
    if not reachable and not from_env then
        pending(("a Redis limiter: no Redis at %s (%s): %s"):format(DEFAULT_REDIS_URL, why, START_HINT))
    else
        describe("a Redis limiter", function()
            local limiter, prefix, window

            before_each(function()
                assert(reachable, ("Redis at %s:%d does not answer (%s): %s"):format(
                    options.redis_host, options.redis_port, tostring(why), START_HINT))
                limiter = assert(ratelimit.new(options))
                prefix = unique_prefix()
                window = quiet_window(3600)
            end)

            after_each(function()
                if limiter then
                    limiter:close()
                end
            end)

            it("decides in Redis (is_local false) and then says redis_up", function()
                assert_exact_limit(limiter, prefix, window, false)
                assert.is_true(limiter:redis_up())
            end)

            it("shares the limit with another limiter on the same Redis", function()
                local other = assert(ratelimit.new(options))
                local rs = ratelimit.ruleset { { slot = 1, limit = 4, window = window } }
                local allowed = 0
                for i = 1, 8 do
                    local r = check(i % 2 == 1 and limiter or other, rs, prefix .. "shared")
                    assert.is_false(r.is_local)
                    if r.allowed then
                        allowed = allowed + 1
                        assert.equal(4 - i, r.remaining)
                    end
                end
                assert.equal(4, allowed)
                other:close()
            end)

            it("holds a key in Redis, for every limiter on it", function()
                assert_hold(limiter, prefix, window)
                local other = assert(ratelimit.new(options))
                local rs = ratelimit.ruleset {
                    { slot = 1, limit = 2, window = window, counter = true, hold = 600 },
                }
                local r = check(other, rs, prefix .. "bot")
                assert.is_false(r.is_local)
                assert.is_true(r.held > 0)
                other:close()
            end)

            it("counts a counter rule in Redis", function()
                local rs = ratelimit.ruleset { { slot = 3, limit = 50, window = window, counter = true } }
                for i = 1, 3 do
                    local r = check(limiter, rs, "unused", "unused", prefix .. "pattern")
                    assert.is_true(r.allowed)
                    assert.equal(i, r.count)
                    assert.is_false(r.is_local)
                end
            end)
        end)
    end

    describe("host", function()
        it("returns nil, err outside a server", function()
            local limiter, err = ratelimit.host()
            assert.is_nil(limiter)
            assert.equal("no host rate limiter", err)
        end)

        it("wraps the server's limiter and never frees it", function()
            local lib = ffi.load(assert(package.searchpath("luahost", package.cpath)))
            local opts = ffi.new("struct ratelimit_spec_options")
            local rl = lib.lh_ratelimit_new(ffi.cast("const void *", opts), nil)
            assert.is_not_nil(rl)
            local host = host_objects.new({ ratelimit = rl })
            local code = [[
                local ratelimit = require "luahost.ratelimit"
                local rs = ratelimit.ruleset { { slot = 1, limit = 2, window = %d } }
                local a = assert(ratelimit.host())
                local first = a:check(rs, %q)
                a:close() -- detaches only
                ratelimit.host():check(rs, %q) -- dropped; collected with the state
                collectgarbage()
                local third = ratelimit.host():check(rs, %q)
                return tostring(first) .. " " .. tostring(third)
            ]]
            local key = unique_prefix() .. "host"
            local window = quiet_window(3600)
            assert.equal("true false", host_objects.run(host, code:format(window, key, key, key)))
            -- Still alive, with its counts, after every wrapper was closed and collected.
            assert.equal("false false", host_objects.run(host, code:format(window, key, key, key)))
            lib.lh_ratelimit_free(rl)
        end)
    end)
end)
