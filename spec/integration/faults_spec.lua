-- Faults under a steady load on the gallery (wrk, support/faults_mix.lua):
-- Redis killed and started again, MariaDB killed and started again, a reload
-- with a broken script and then a fixed one. Throughout: no crash, no hang,
-- every request answered, errors only 503 JSON and only on routes that need
-- the missing service, recovery within 2 s of the service's return, and file
-- descriptors, pool connections and memory back to their level afterwards.
--
-- It stops and starts the MariaDB of scripts/services.sh (the suite's own,
-- nobody else uses it meanwhile) and a private redis-server.
local S = require "integration.support.server"
local G = require "integration.support.gallery"
local cjson = require "cjson"

local POLICY = "spec/integration/monitorapp/policy" -- the gallery's, loopback exempt
local LOAD_SECONDS = 26
-- Past what a request can take here while MariaDB answers at all: 1 s for a
-- database connection (waiting for one, or connecting one), 2 s a statement.
local WRK_TIMEOUT = "10s"

-- scripts/services.sh with the suite's settings (S.spawn drops LUAHOST_*
-- variables, so that servers read only their own).
local function services(action, which)
    local env = {}
    for _, name in ipairs({ "LUAHOST_SERVICES_DIR", "LUAHOST_MARIADB_PORT", "LUAHOST_REDIS_PORT" }) do
        env[name] = os.getenv(name) or false
    end
    local code, out, err = S.run({ "scripts/services.sh", action, which }, { timeout = 60, env = env })
    assert(code == 0, ("services.sh %s %s: %s%s"):format(action, which, out, err))
end

local function scrape(srv)
    local res = assert(srv:request("GET", "/metrics"))
    local m = {}
    for key, value in res.body:gmatch("\n([%w_]+[^\n ]*) ([^\n]+)") do
        m[key] = tonumber(value)
    end
    return m
end

-- Seconds until probe() holds, polling every 50 ms, at most limit.
local function time_until(probe, limit)
    local t0 = S.now()
    while S.now() - t0 < limit do
        if probe() then
            return S.now() - t0
        end
        S.sleep(0.05)
    end
    return math.huge
end

describe("faults under load #integration", function()
    teardown(function()
        S.stop_all()
        S.redis_stop_all()
        services("start", "mariadb") -- whatever happened, leave the suite's database up
    end)

    it("survives Redis, MariaDB and a broken reload, answering everything", function()
        local r = S.redis()
        local app = S.copy_app("lua/app")
        local srv = S.start({
            app = app,
            args = { "--db-url", G.DB_URL, "--env", "development", "--redis-url", r.url,
                     "--policy-dir", POLICY, "--db-timeout", "1", "--db-statement-timeout", "2",
                     "--redis-timeout", "50" },
            env = { FINGERPRINT_SECRET = "spec-secret-0123456789-abcdefghij-KLMNOP" },
            timeout = 20,
        })
        local list = G.json(assert(srv:request("GET", "/api/svg/list?per_page=50")))
        local ids = {}
        for _, item in ipairs(list.items) do
            ids[#ids + 1] = item.id
        end
        local image_ok = function()
            local res = srv:request("GET", "/api/svg/" .. ids[1], nil, nil, 1)
            return res and res.status == 200
        end

        -- Steady load for the whole sequence.
        local out = S.tmpdir() .. "/wrk.out"
        local wrk = S.spawn({ "env", "IMAGE_IDS=" .. table.concat(ids, ","), "THREADS=2",
            "wrk", "-t2", "-c8", "-d" .. LOAD_SECONDS .. "s", "--timeout", WRK_TIMEOUT,
            "-s", "spec/integration/support/faults_mix.lua", "http://127.0.0.1:" .. srv.port },
            { stdout = out, stderr = out .. ".err" })
        finally(function() -- a failed assertion must not leave the load running
            S.kill(wrk, "TERM")
            S.wait_pid(wrk, 5)
        end)
        S.sleep(2)
        local before = { fds = S.fd_count(srv.pid), rss = S.rss_kb(srv.pid) }

        -- Redis.
        r:stop()
        S.sleep(2)
        assert.is_true(srv:running())
        r:start()
        local redis_back = time_until(function() return scrape(srv).luahost_redis_up == 1 end, 5)
        assert.is_true(redis_back <= 2, ("Redis use resumed %.2f s after its return"):format(redis_back))

        -- MariaDB.
        services("stop", "mariadb")
        S.sleep(2)
        local down = assert(srv:request("GET", "/api/svg/" .. ids[1]))
        assert.are.equal(503, down.status)
        assert.are.same({ success = false, message = "Service unavailable" }, cjson.decode(down.body))
        assert.are.equal(200, assert(srv:request("GET", "/health")).status)
        services("start", "mariadb")
        local db_back = time_until(image_ok, 5)
        assert.is_true(db_back <= 2, ("the database served again %.2f s after its return"):format(db_back))

        -- A broken reload, then a fixed one.
        local routes = S.read_file(app .. "/routes.lua")
        S.write_file(app .. "/routes.lua", routes .. "\nthis is not lua\n")
        assert.is_true(srv:signal("HUP") == 0)
        assert.is_truthy(srv:error_log("reload failed", 5, true))
        S.sleep(1)
        S.write_file(app .. "/routes.lua", routes)
        assert.is_true(srv:signal("HUP") == 0)
        assert.is_truthy(srv:error_log("reloaded ", 5, true))

        -- The load ends: every request had an answer, 200 or 503.
        assert.is_truthy(S.wait_pid(wrk, LOAD_SECONDS + 15), "wrk did not finish")
        local result = S.read_file(out):match("RESULT [^\n]+")
        assert.is_truthy(result, S.read_file(out) .. (S.read_file(out .. ".err") or ""))
        local n = {}
        for k, v in result:gmatch("(%w+)=(%d+)") do
            n[k] = tonumber(v)
        end
        assert.is_true(n.requests > 1000, result)
        if n.errors > 0 then
            local slow = {}
            for line in srv:access_log():gmatch("[^\n]+") do
                local ms = tonumber(line:match(" ([%d.]+)ms$"))
                if ms and ms >= 1000 and #slow < 20 then
                    slow[#slow + 1] = line
                end
            end
            error(("requests without an answer within wrk's %s: %s\nanswers slower than 1 s:\n%s\n"
                .. "the server's log:\n%s"):format(WRK_TIMEOUT, result, table.concat(slow, "\n"),
                srv:error_log()))
        end
        assert.are.equal(0, n.bad, "statuses other than 200 and 503: " .. result)

        -- 5xx only as 503, only on routes that need the database.
        local unavailable = 0
        for path, status in srv:access_log():gmatch('"GET ([^"]+)" (%d+)') do
            if status:sub(1, 1) == "5" then
                unavailable = unavailable + 1
                assert.are.equal("503", status, path)
                assert.is_truthy(path:match("^/api/svg/") or path:match("^/svg/"), path)
            end
        end
        assert.is_true(unavailable > 0, "the outage was seen")

        -- Nothing leaked: descriptors, pool connections, memory.
        S.sleep(2)
        local after = { fds = S.fd_count(srv.pid), rss = S.rss_kb(srv.pid) }
        local m = scrape(srv)
        assert.is_true(after.fds <= before.fds + 4, ("fds %d -> %d"):format(before.fds, after.fds))
        assert.is_true(m['luahost_db_pool_connections{state="open"}'] <= m.luahost_db_pool_size)
        assert.are.equal(0, m['luahost_db_pool_connections{state="active"}'])
        if not os.getenv("LUAHOST_SANITIZED") then -- a sanitizer's quarantine only grows
            assert.is_true(after.rss <= before.rss * 1.3 + 4096,
                ("RSS %d kB -> %d kB"):format(before.rss, after.rss))
        end
        assert.is_true(srv:running())
    end)

    -- The database and Redis have a prober thread each: a database that
    -- takes its whole timeout to answer must not leave Redis unwatched.
    it("keeps watching Redis while the database hangs", function()
        local r = S.redis()
        local srv = S.start({
            app = "lua/app",
            args = { "--db-url", G.DB_URL, "--redis-url", r.url, "--policy-dir", POLICY,
                     "--db-timeout", "20" },
            env = { FINGERPRINT_SECRET = "spec-secret-0123456789-abcdefghij-KLMNOP" },
            timeout = 20,
        })
        local redis_up = function(want)
            return function() return scrape(srv).luahost_redis_up == want end
        end
        assert.is_true(time_until(redis_up(1), 5) < 5, "Redis up at start")
        local dir = os.getenv("LUAHOST_SERVICES_DIR") or "var/services"
        local mariadb = assert(tonumber(S.read_file(dir .. "/mysql.pid.saved")), "the suite's MariaDB pid")
        S.kill(mariadb, "STOP") -- connections are accepted, nothing answers
        finally(function() S.kill(mariadb, "CONT") end)
        S.sleep(2) -- the database's probe is now waiting on it

        r:stop()
        local seen_down = time_until(redis_up(0), 5)
        assert.is_true(seen_down <= 2, ("Redis seen down %.2f s after it stopped"):format(seen_down))
        r:start()
        local seen_up = time_until(redis_up(1), 5)
        assert.is_true(seen_up <= 2, ("Redis seen up %.2f s after its return"):format(seen_up))
        S.kill(mariadb, "CONT")
        assert.is_true(srv:running())
    end)
end)
