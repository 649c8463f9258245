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
        assert.are.equal(401, assert(srv:request("GET", "/monitor")).status)
        assert.are.equal(401, assert(srv:request("GET", "/monitor/stream")).status)
        assert.are.equal(401, assert(srv:request("GET", "/api/monitor/alerts")).status)
        local visitor = G.session_headers(srv, user, secret)
        assert.are.equal(403, assert(srv:request("GET", "/monitor", visitor)).status)
        local res = assert(srv:request("GET", "/monitor", G.session_headers(srv, admin, secret)))
        assert.are.equal(200, res.status)
        assert.are.equal("text/html; charset=utf-8", res.headers["content-type"])
        -- /metrics: loopback is in metrics_allow by default
        assert.are.equal(200, assert(srv:request("GET", "/metrics")).status)
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
