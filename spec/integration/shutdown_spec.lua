-- SIGTERM/SIGINT stop gracefully: no new connections, in-flight requests
-- finish (within --shutdown-timeout), exit code 0. A second signal, or a
-- stop still not over 5 s after the deadline, exits 1 at once.
local S = require "integration.support.server"
local cjson = require "cjson"

-- The test database of scripts/services.sh, unless LUAHOST_TEST_DB_URL says otherwise.
local DB_URL = os.getenv("LUAHOST_TEST_DB_URL")
    or (os.getenv("LUAHOST_DB_URL") or "mysql://luahost:luahost-dev@127.0.0.1:13306/luahost")
        :gsub("/[^/]*$", "/luahost_test")

-- spec/integration/dbapp, whose GET /slow?seconds= waits in SELECT SLEEP.
local function start_dbapp(args)
    local argv = { "--db-url", DB_URL, "--env", "development" }
    for _, a in ipairs(args) do
        argv[#argv + 1] = a
    end
    return S.start({ app = "spec/integration/dbapp", workers = 2, args = argv, timeout = 20 })
end

-- Polls until nothing accepts connections on port; seconds it took, or nil.
local function refused_within(port, timeout)
    local t0 = S.now()
    repeat
        if not S.accepts(port) then
            return S.now() - t0
        end
        S.sleep(0.01)
    until S.now() - t0 > timeout
end

-- Sends GET path on a connection of its own, closed when the test ends,
-- and gives the request `settle` seconds to start; returns the connection.
local function parked(srv, path, settle)
    local c = S.send_only(srv.port, "GET", path)
    finally(function()
        c:close()
    end)
    S.sleep(settle)
    return c
end

-- Polls the file at path until it holds text, up to timeout seconds.
local function file_gets(path, text, timeout)
    local t0 = S.now()
    repeat
        if (S.read_file(path) or ""):find(text, 1, true) then
            return true
        end
        S.sleep(0.05)
    until S.now() - t0 > timeout
    return false
end

describe("shutdown #integration", function()
    after_each(function()
        S.stop_all()
    end)

    it("on SIGTERM refuses new connections, finishes the request in flight and exits 0", function()
        local srv = S.start({ workers = 2 })
        local sleeper = parked(srv, "/sleep?seconds=1", 0.2) -- parked in worker.sleep
        local t0 = S.now()
        srv:signal("TERM")

        -- While the request is still sleeping, the port is closed.
        local refused = refused_within(srv.port, 2)
        assert.is_truthy(refused, "new connections still accepted 2 s after SIGTERM")
        assert.is_true(S.now() - t0 < 0.75, "the listening socket closed only after the request finished")

        local res, err = sleeper:read_response("GET")
        assert.is_truthy(res, "the in-flight request got no answer: " .. tostring(err))
        assert.are.equal(200, res.status)
        assert.are.same({ success = true, slept = 1 }, cjson.decode(res.body))
        assert.are.equal("close", res.headers["connection"], "the answer does not say the connection closes")

        local code, how = srv:wait_exit(5)
        assert.are.equal(0, code, "exit: " .. tostring(how) .. "\n" .. srv:error_log())
        assert.is_true(S.now() - t0 < 4)
        assert.is_truthy(srv:error_log():find("stopping", 1, true))
        -- The access log was flushed at exit, the request included.
        local line = srv:access_log():match('[^\n]*"GET /sleep" 200 [^\n]*')
        assert.is_truthy(line, "no access line for the in-flight request:\n" .. srv:access_log())
    end)

    it("exits 1 a few seconds after the deadline when a handler never returns", function()
        local app = S.copy_app("spec/integration/app")
        local routes = S.read_file(app .. "/routes.lua")
        local spinning, n = routes:gsub("\nreturn {", '\nreturn {\n    ["GET /spin"] = function() while true do end end,', 1)
        assert.are.equal(1, n)
        S.write_file(app .. "/routes.lua", spinning)
        local srv = S.start({ app = app, workers = 2, args = { "--shutdown-timeout", "1" } })
        parked(srv, "/spin", 0.3)
        local t0 = S.now()
        srv:signal("TERM")
        local code = srv:wait_exit(15)
        assert.are.equal(1, code, srv:error_log())
        assert.is_true(S.now() - t0 < 12, ("exit took %.1f s"):format(S.now() - t0))
        assert.is_truthy(srv:error_log():find("still not stopped 5 s after the shutdown deadline, "
            .. "1 request(s) still in flight", 1, true), srv:error_log())
    end)

    it("reopens its log files on SIGUSR1, after a rotation moved them", function()
        local dir = S.tmpdir()
        local access, errors = dir .. "/access.log", dir .. "/error.log"
        local srv = S.start({ workers = 1, args = { "--access-log", access, "--error-log", errors } })
        assert.are.equal(200, assert(srv:request("GET", "/hello")).status)
        S.sleep(0.3) -- the access log is written every 100 ms
        assert(os.rename(access, access .. ".1"))
        assert(os.rename(errors, errors .. ".1"))
        srv:signal("USR1")
        assert.is_true(file_gets(errors, "log files reopened", 5), "no reopened error log")
        assert.are.equal(404, assert(srv:request("GET", "/after-rotation")).status)
        assert.is_true(file_gets(access, "/after-rotation", 5), "no new access log")
        local old = S.read_file(access .. ".1")
        assert.is_truthy(old:find('"GET /hello"', 1, true), old)
        assert.is_falsy(old:find("/after-rotation", 1, true), old)
        assert.is_true(srv:running())
    end)

    it("exits 0 on SIGINT when idle", function()
        local srv = S.start({ workers = 2 })
        assert.are.equal(200, assert(srv:request("GET", "/hello")).status)
        local t0 = S.now()
        srv:signal("INT")
        local code, how = srv:wait_exit(3)
        assert.are.equal(0, code, "exit: " .. tostring(how) .. "\n" .. srv:error_log())
        assert.is_true(S.now() - t0 < 2)
        assert.is_false(S.accepts(srv.port))
    end)

    it("exits 0 within the --shutdown-timeout when a request sleeps longer", function()
        local srv = S.start({ workers = 2, args = { "--shutdown-timeout", "1" } })
        local sleeper = parked(srv, "/sleep?seconds=5", 0.2)
        local t0 = S.now()
        srv:signal("TERM")
        local code, how = srv:wait_exit(5)
        local took = S.now() - t0
        assert.are.equal(0, code, "exit: " .. tostring(how) .. "\n" .. srv:error_log())
        assert.is_true(took < 3, ("exit took %.2f s"):format(took))

        -- An error answer or a closed connection, not a 200 after 5 s.
        sleeper:settimeout(2)
        local res = sleeper:read_response("GET")
        if res then
            assert.are_not.equal(200, res.status)
        end
    end)

    it("stops at once, exiting 1, on a second SIGTERM", function()
        local srv = S.start({ workers = 2, args = { "--shutdown-timeout", "30" } })
        parked(srv, "/sleep?seconds=10", 0.2)
        local t0 = S.now()
        srv:signal("TERM")
        assert.is_truthy(refused_within(srv.port, 2))
        srv:signal("TERM")
        local code, how = srv:wait_exit(5)
        assert.are.equal(1, code, "exit: " .. tostring(how) .. "\n" .. srv:error_log())
        assert.is_true(S.now() - t0 < 3)
        assert.is_truthy(srv:error_log():find("second SIGTERM while stopping: exiting at once", 1, true),
            srv:error_log())
    end)

    it("stops at once on a second SIGINT while a request waits on the database", function()
        local srv = start_dbapp({ "--shutdown-timeout", "30" })
        parked(srv, "/slow?seconds=20", 0.5)
        srv:signal("TERM")
        assert.is_truthy(refused_within(srv.port, 2))
        srv:signal("INT")
        local code, how = srv:wait_exit(5)
        assert.are.equal(1, code, "exit: " .. tostring(how) .. "\n" .. srv:error_log())
        assert.is_truthy(srv:error_log():find("second SIGINT while stopping: exiting at once, 1 request(s) cut",
            1, true), srv:error_log())
    end)

    it("exits 1, 5 s after the deadline, while a request waits on the database", function()
        local srv = start_dbapp({ "--shutdown-timeout", "1" })
        parked(srv, "/slow?seconds=20", 0.5)
        srv:signal("TERM")
        -- The query would answer after 20 s; the stop must not wait for it.
        local code, how = srv:wait_exit(12)
        assert.are.equal(1, code, "exit: " .. tostring(how) .. "\n" .. srv:error_log())
        local log = srv:error_log()
        assert.is_truthy(log:find("still not stopped 5 s after the shutdown deadline, 1 request(s) still in flight",
            1, true), log)
    end)
end)
