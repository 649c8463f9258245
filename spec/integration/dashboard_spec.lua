-- The gallery's monitoring dashboard: administrators only, and in a real
-- browser (tests/browser/monitor.mjs: playwright-core driving Debian's
-- chromium) it renders with no console errors and no CSP violations, and its
-- charts change as samples arrive. Screenshots go to build/artifacts/.
local S = require "integration.support.server"
local G = require "integration.support.gallery"

local ARTIFACTS = "build/artifacts"

describe("monitoring dashboard #integration", function()
    local srv
    local admin = G.unique_name("watcher")
    local user = G.unique_name("visitor")
    local secret = "correct horse battery"

    setup(function()
        assert.is_true(G.add_user(admin, secret, true))
        assert.is_true(G.add_user(user, secret, false))
        srv = G.start()
    end)

    teardown(function()
        S.stop_all()
    end)

    it("is for administrators only", function()
        -- The page sends a browser to sign in; the rest answers JSON.
        local page = assert(srv:request("GET", "/monitor"))
        assert.are.equal(302, page.status)
        assert.are.equal("/signin?next=/monitor", page.headers["location"])
        assert.are.equal(401, assert(srv:request("GET", "/monitor/stream")).status)
        local visitor = G.session_headers(srv, user, secret)
        assert.are.equal(403, assert(srv:request("GET", "/monitor", visitor)).status)
        local res = assert(srv:request("GET", "/monitor", G.session_headers(srv, admin, secret)))
        assert.are.equal(200, res.status)
        assert.are.equal("text/html; charset=utf-8", res.headers["content-type"])
        -- /metrics and the alerts: loopback is in metrics_allow by default
        assert.are.equal(200, assert(srv:request("GET", "/metrics")).status)
        assert.are.equal(200, assert(srv:request("GET", "/api/monitor/alerts")).status)
        -- From elsewhere, the alerts are the administrators'.
        local elsewhere = G.start({ "--metrics-allow", "10.0.0.0/8" })
        assert.are.equal(401, assert(elsewhere:request("GET", "/api/monitor/alerts")).status)
        assert.are.equal(403, assert(elsewhere:request("GET", "/api/monitor/alerts", visitor)).status)
        assert.are.equal(200, assert(elsewhere:request("GET", "/api/monitor/alerts",
            G.session_headers(elsewhere, admin, secret))).status)
        elsewhere:stop()
    end)

    it("ends a stream after --monitor-stream-seconds, and a signed-out session opens no other", function()
        local own = G.start({ "--monitor-stream-seconds", "2" })
        local headers = G.session_headers(own, admin, secret)
        local c = assert(S.client(own.port, 5))
        finally(function()
            c:close()
        end)
        assert(c:send(S.format_request("GET", "/monitor/stream", headers)))
        c:settimeout(0.2)
        local t0, text, ended = S.now(), "", false
        while S.now() - t0 < 10 and not ended do
            local data, err, partial = c.sock:receive(4096)
            text = text .. (data or partial or "")
            ended = err == "closed" or text:find("\r\n0\r\n\r\n", 1, true) ~= nil
        end
        local took = S.now() - t0
        assert.is_true(ended, "the stream did not end within 10 s")
        assert.is_true(took >= 1.5, ("the stream ended after %.1f s"):format(took))
        assert.is_truthy(text:find("event: sample", 1, true), text)

        local out = assert(own:request("POST", "/api/logout", headers))
        assert.are.equal(200, out.status, out.body)
        assert.are.equal(401, assert(own:request("GET", "/monitor/stream", headers)).status)
        own:stop()
    end)

    it("renders in Chromium without errors or CSP violations, its charts moving", function()
        if S.sanitized() then
            pending("the browser tests run in the plain build")
            return
        end
        local cookie = G.session_headers(srv, admin, secret).Cookie
        os.execute("mkdir -p " .. ARTIFACTS)
        -- Traffic for the charts to show while the browser watches.
        local code, out, err = S.run({ "env",
            "MONITOR_URL=http://127.0.0.1:" .. srv.port .. "/monitor",
            "MONITOR_COOKIE=" .. cookie,
            "ARTIFACTS_DIR=" .. ARTIFACTS,
            "sh", "-c", ("(for i in $(seq 1 200); do curl -s -o /dev/null "
                .. "http://127.0.0.1:%d/api/svg/list; sleep 0.03; done) & "
                .. "node tests/browser/monitor.mjs; rc=$?; wait; exit $rc"):format(srv.port),
        }, { timeout = 60 })
        assert.are.equal(0, code, out .. err)
        assert.is_truthy(out:find('"ok":true', 1, true), out)
        assert.is_truthy(S.read_file(ARTIFACTS .. "/monitor-1.png"))
        assert.is_truthy(S.read_file(ARTIFACTS .. "/monitor-2.png"))
    end)
end)
