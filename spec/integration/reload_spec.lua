-- SIGHUP reloads the application's scripts: new and changed routes are seen
-- on connections opened before the reload, a broken routes.lua is reported
-- (file:line) and the old routes keep serving, and a request in flight
-- during the reload completes.
local S = require "integration.support.server"
local cjson = require "cjson"

-- routes.lua of the test app with GET /version answering `version` and,
-- when `added`, a new route GET /added.
local function edited_routes(app, version, added)
    local text = assert(S.read_file(S.app .. "/routes.lua"))
    local n
    text, n = text:gsub("version = 1 ", "version = " .. version .. " ")
    assert(n == 1, "the test app's /version route changed shape")
    if added then
        text, n = text:gsub("}%s*$", '    ["GET /added"] = function(_, res)\n'
            .. '        res:json({ success = true, added = true })\n    end,\n}\n')
        assert(n == 1)
    end
    S.write_file(app .. "/routes.lua", text)
end

local BROKEN = [[
return {
    ["GET /version"] = function(_, res)
        local x = = 1
    end,
}
]]
local BROKEN_LINE = 3

-- Polls fn() every 20 ms for up to timeout seconds until it returns a truthy
-- value; returns that value (or nil).
local function eventually(fn, timeout)
    local deadline = S.now() + (timeout or 5)
    repeat
        local v = fn()
        if v then
            return v
        end
        S.sleep(0.02)
    until S.now() > deadline
end

local function version_on(c)
    local res, err = c:request("GET", "/version")
    assert.is_truthy(res, "the connection broke: " .. tostring(err))
    assert.are.equal(200, res.status)
    return cjson.decode(res.body).version
end

describe("reload #integration", function()
    local app, srv

    before_each(function()
        app = S.copy_app()
        srv = S.start({ app = app, workers = 2 })
    end)

    after_each(function()
        S.stop_all()
    end)

    it("serves new and changed routes after SIGHUP, on a connection opened before it", function()
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        assert.are.equal(1, version_on(c))
        local res = assert(c:request("GET", "/added"))
        assert.are.equal(404, res.status)

        edited_routes(app, 2, true)
        srv:signal("HUP")

        local seen = eventually(function()
            return version_on(c) == 2
        end, 5)
        assert.is_true(seen, "version 2 not served within 5 s:\n" .. srv:error_log())
        res = assert(c:request("GET", "/added"), "the kept-alive connection broke")
        assert.are.equal(200, res.status)
        assert.are.same({ success = true, added = true }, cjson.decode(res.body))
        assert.is_truthy(srv:wait_log("error", "[info] reloaded", 5, true), srv:error_log())

        -- New connections, on either worker thread, see the new scripts too.
        for _ = 1, 6 do
            res = assert(srv:request("GET", "/version"))
            assert.are.equal(2, cjson.decode(res.body).version)
            res = assert(srv:request("GET", "/added"))
            assert.are.equal(200, res.status)
        end
        -- And the kept-alive connection still works.
        assert.are.equal(2, version_on(c))
    end)

    it("keeps serving the old routes when the new routes.lua has a syntax error", function()
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        assert.are.equal(1, version_on(c))

        S.write_file(app .. "/routes.lua", BROKEN)
        srv:signal("HUP")
        local line = srv:wait_log("error", "reload failed", 5, true)
        assert.is_truthy(line, "no 'reload failed' line:\n" .. srv:error_log())
        assert.is_truthy(line:find("routes.lua:" .. BROKEN_LINE .. ":", 1, true),
            "no routes.lua:" .. BROKEN_LINE .. ": in: " .. line)
        assert.is_truthy(line:find("[error]", 1, true), line)

        assert.is_true(srv:running())
        assert.are.equal(1, version_on(c))
        for _ = 1, 4 do
            local res = assert(srv:request("GET", "/version"))
            assert.are.equal(1, cjson.decode(res.body).version)
        end
        local res = assert(srv:request("GET", "/hello"))
        assert.are.equal(200, res.status)

        -- A fixed routes.lua is picked up by the next SIGHUP.
        edited_routes(app, 3, false)
        srv:signal("HUP")
        assert.is_true(eventually(function()
            return version_on(c) == 3
        end, 5), "version 3 not served after the fix:\n" .. srv:error_log())
    end)

    it("lets a request in flight during the reload complete with 200", function()
        local sleeper = S.send_only(srv.port, "GET", "/sleep?seconds=1")
        finally(function()
            sleeper:close()
        end)
        S.sleep(0.2) -- the request is now parked in worker.sleep
        local t0 = S.now()
        edited_routes(app, 2, true)
        srv:signal("HUP")
        assert.is_truthy(srv:wait_log("error", "[info] reloaded", 5, true), srv:error_log())

        local res, err = sleeper:read_response("GET")
        assert.is_truthy(res, "the in-flight request failed: " .. tostring(err))
        assert.are.equal(200, res.status)
        assert.are.same({ success = true, slept = 1 }, cjson.decode(res.body))
        assert.is_true(S.now() - t0 < 3)

        -- The same connection then gets the new scripts.
        assert.are.equal(2, version_on(sleeper))
        res = assert(srv:request("GET", "/added"))
        assert.are.equal(200, res.status)
        assert.is_true(srv:running())
    end)
end)
