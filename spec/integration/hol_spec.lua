-- Head-of-line acceptance: with 2 worker threads, 8 requests parked in
-- worker.sleep must not delay anybody else. wrk hammers /hello meanwhile and
-- reports p99 latency and errors through support/wrk_report.lua. And sign-ins
-- hashing passwords must not hold up the gallery's database calls, their
-- queue showing in /metrics.
local S = require "integration.support.server"
local G = require "integration.support.gallery"
local cjson = require "cjson"
local socket = require "socket"

local SLEEPERS = 8
local ROUNDS = 4 -- each sleeper asks 4 times in a row: 8 requests blocked during all of wrk's 3 s
-- A request stuck behind a sleeper would wait up to the sleeper's 1 s, so a
-- p99 far below that shows there is no head-of-line blocking. Not tighter:
-- on a shared 2-core machine, wrk and the server alone see p99 spikes past
-- 20 ms now and then; latency figures belong to bench/.
local P99_LIMIT_MS = 250

local function parse_wrk(out)
    local line = out:match("WRK_RESULT[^\n]*")
    assert.is_truthy(line, "no WRK_RESULT line in wrk's output:\n" .. out)
    local r = {}
    for k, v in line:gmatch("([%w_]+)=([%d.]+)") do
        r[k] = tonumber(v)
    end
    r.line = line
    return r
end

-- Sends n sign-ins at once, each on its own connection, without reading the
-- answers: unknown accounts from distinct addresses, so that the login
-- limits stay out of it.
local function send_signins(srv, n)
    local signins = {}
    for i = 1, n do
        local c = assert(S.client(srv.port))
        local body = cjson.encode({ username = G.unique_name("nobody" .. i), password = "wrong" })
        assert(c:send(S.format_request("POST", "/api/login", {
            ["Content-Type"] = "application/json",
            ["X-Forwarded-For"] = ("10.9.%d.%d"):format(math.random(0, 255), i),
        }, body)))
        signins[i] = c
    end
    return signins
end

-- The gallery with args (loopback a trusted proxy), and n sign-ins sent to
-- it at once; their connections are closed when the test ends.
local function gallery_with_signins(args, n)
    args[#args + 1] = "--trusted-proxies"
    args[#args + 1] = "127.0.0.1/32"
    local srv = G.start(args)
    local signins = send_signins(srv, n)
    finally(function()
        for _, c in ipairs(signins) do
            c:close()
        end
    end)
    return srv, signins
end

describe("head-of-line #integration", function()
    after_each(function()
        S.stop_all()
    end)

    it("keeps /hello p99 far below the sleeps (250 ms) with no errors while 8 requests sleep 1 s", function()
        if S.sanitized() then
            pending("latencies are not meaningful under a sanitizer")
            return
        end
        local srv = S.start({ workers = 2 })
        local url = "http://127.0.0.1:" .. srv.port
        local dir = S.tmpdir()

        local sleepers = {}
        finally(function()
            for _, s in ipairs(sleepers) do
                if not s.code then
                    S.kill(s.pid, "KILL")
                    S.wait_pid(s.pid, 2)
                end
            end
        end)
        for i = 1, SLEEPERS do
            local out = dir .. "/sleeper" .. i
            local argv = { "curl", "-sS", "--max-time", "15" }
            for _ = 1, ROUNDS do
                for _, a in ipairs({ "-o", "/dev/null", "-w", "%{http_code} %{time_total}\n",
                    url .. "/sleep?seconds=1" }) do
                    argv[#argv + 1] = a
                end
            end
            sleepers[i] = { out = out, pid = S.spawn(argv, { stdout = out }) }
        end
        S.sleep(0.1) -- the sleepers are connected and parked

        local code, out, err = S.run({ "wrk", "-t1", "-c50", "-d3s", "--latency", "-s",
            "spec/integration/support/wrk_report.lua", url .. "/hello" }, { timeout = 20 })
        assert.are.equal(0, code, "wrk failed: " .. err)
        local r = parse_wrk(out)
        io.stderr:write("\n[hol] " .. r.line .. "\n")

        assert.is_true(r.requests > 0, r.line)
        assert.is_true(r.p99_ms < P99_LIMIT_MS, ("p99 %.3f ms >= %d ms: %s"):format(r.p99_ms, P99_LIMIT_MS, r.line))
        assert.are.equal(0, r.non2xx, r.line)
        assert.are.equal(0, r.connect + r.read + r.write + r.timeout, r.line)
        assert.are.equal(0, r.status, r.line)

        for i, s in ipairs(sleepers) do
            s.code = S.wait_pid(s.pid, 15)
            assert.are.equal(0, s.code, "curl " .. i .. " failed")
            local answers = 0
            for status, seconds in (S.read_file(s.out) or ""):gmatch("(%d+) ([%d.]+)") do
                answers = answers + 1
                assert.are.equal("200", status, "sleeper " .. i .. ": " .. S.read_file(s.out))
                assert.is_true(tonumber(seconds) >= 0.95, ("sleeper %d took only %s s"):format(i, seconds))
            end
            assert.are.equal(ROUNDS, answers, "sleeper " .. i .. ": " .. tostring(S.read_file(s.out)))
        end
        assert.is_true(srv:running())
    end)

    it("answers a database request while more sign-ins hash passwords than there are blocking threads", function()
        -- 2 blocking threads, 1 CPU thread: 4 sign-ins queue on the CPU
        -- thread (each PBKDF2 takes 0.1 s or more) while the list page's
        -- query goes to a free blocking thread.
        local srv, signins = gallery_with_signins({ "--blocking-threads", "2", "--cpu-threads", "1" }, 4)
        S.sleep(0.05) -- the sign-ins have reached the CPU thread (a hash takes longer)

        local list = assert(srv:request("GET", "/api/svg/list?page=3&per_page=7"))
        assert.are.equal(200, list.status, list.body)
        local socks = {}
        for i, c in ipairs(signins) do
            socks[i] = c.sock
        end
        local ready = socket.select(socks, nil, 0)
        -- One shared pool would have answered the query only after the two
        -- hashes ahead of it: two sign-ins done. Here at most the first one
        -- can be, on a CPU fast enough to hash in under 50 ms.
        assert.is_true(#ready <= 1, #ready .. " sign-ins finished before the list page's query")
        -- /metrics shows the queue: one hash running, the others waiting.
        local metrics = assert(srv:request("GET", "/metrics")).body
        assert.are.equal("1", metrics:match('luahost_task_pool_busy{pool="cpu"} (%d+)'), metrics)
        assert.is_true(tonumber(metrics:match('luahost_task_pool_queued{pool="cpu"} (%d+)')) >= 2)
        assert.are.equal("2", metrics:match('luahost_task_pool_threads{pool="blocking"} (%d+)'))

        for i, c in ipairs(signins) do
            local res = assert(c:read_response("POST"))
            assert.are.equal(401, res.status, "sign-in " .. i .. ": " .. res.body)
        end
        assert.is_true(srv:running())
    end)

    it("answers 503 with Retry-After to the sign-ins beyond cpu_queue, and checks the others", function()
        -- 1 CPU thread and room for 1 waiting: of 6 sign-ins at once, one
        -- hashes, one waits, the others are turned away without a hash (all
        -- 4 if they arrive within the first hash, as they do here; fewer on
        -- a machine slow to look the accounts up).
        local srv, signins = gallery_with_signins({ "--cpu-threads", "1", "--cpu-queue", "1" }, 6)
        local count = { [401] = 0, [503] = 0 }
        for i, c in ipairs(signins) do
            local res = assert(c:read_response("POST"))
            assert.is_truthy(count[res.status], "sign-in " .. i .. ": " .. res.status .. " " .. res.body)
            count[res.status] = count[res.status] + 1
            if res.status == 503 then
                assert.are.equal("1", res.headers["retry-after"])
                assert.is_false(cjson.decode(res.body).success)
            end
        end
        assert.is_true(count[401] >= 2, count[401] .. " sign-ins checked")
        assert.is_true(count[503] >= 1, "no sign-in turned away")
        assert.is_true(srv:running())
    end)
end)
