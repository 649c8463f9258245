-- SIGTERM/SIGINT stop gracefully: no new connections, in-flight requests
-- finish (within --shutdown-timeout), exit code 0.
local S = require "integration.support.server"
local cjson = require "cjson"

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

describe("shutdown #integration", function()
    after_each(function()
        S.stop_all()
    end)

    it("on SIGTERM refuses new connections, finishes the request in flight and exits 0", function()
        local srv = S.start({ workers = 2 })
        local sleeper = S.send_only(srv.port, "GET", "/sleep?seconds=1")
        finally(function()
            sleeper:close()
        end)
        S.sleep(0.2) -- parked in worker.sleep
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

        local code, how = srv:wait_exit(5)
        assert.are.equal(0, code, "exit: " .. tostring(how) .. "\n" .. srv:error_log())
        assert.is_true(S.now() - t0 < 4)
        assert.is_truthy(srv:error_log():find("stopping", 1, true))
        -- The access log was flushed at exit, the request included.
        local line = srv:access_log():match('[^\n]*"GET /sleep" 200 [^\n]*')
        assert.is_truthy(line, "no access line for the in-flight request:\n" .. srv:access_log())
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
        local sleeper = S.send_only(srv.port, "GET", "/sleep?seconds=5")
        finally(function()
            sleeper:close()
        end)
        S.sleep(0.2)
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

    it("stops at once on a second SIGTERM", function()
        local srv = S.start({ workers = 2, args = { "--shutdown-timeout", "30" } })
        local sleeper = S.send_only(srv.port, "GET", "/sleep?seconds=10")
        finally(function()
            sleeper:close()
        end)
        S.sleep(0.2)
        local t0 = S.now()
        srv:signal("TERM")
        assert.is_truthy(refused_within(srv.port, 2))
        srv:signal("TERM")
        local code, how = srv:wait_exit(5)
        assert.are.equal(0, code, "exit: " .. tostring(how) .. "\n" .. srv:error_log())
        assert.is_true(S.now() - t0 < 3)
    end)
end)
