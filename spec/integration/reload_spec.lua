-- SIGHUP reloads the application's scripts: new and changed routes are seen
-- on connections opened before the reload, a broken routes.lua or template
-- is reported (file:line) and the old routes keep serving, and a request in
-- flight during the reload completes.
local S = require "integration.support.server"
local cjson = require "cjson"
local stat = require "posix.sys.stat"

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

    it("keeps serving the old templates when a template the app names nowhere is broken", function()
        -- The test app with GET /page/:name, rendering templates/<name>.html.
        local templates = app .. "/templates"
        assert(stat.mkdir(templates))
        S.write_file(templates .. "/page.html", "<p>{{ version }}</p>\n")
        local text, n = assert(S.read_file(app .. "/routes.lua")):gsub("}%s*$", '    ["GET /page/:name"] = '
            .. "function(req, res) res:html(views.render(req.params.name, { version = 1 })) end,\n}\n")
        assert(n == 1)
        S.write_file(app .. "/routes.lua", ("local views = require('luahost.template').load(%q)\n"):format(templates)
            .. text)
        local paged = S.start({ app = app, workers = 2 })
        local function page()
            local res = assert(paged:request("GET", "/page/page"))
            assert.are.equal(200, res.status)
            return res.body
        end
        assert.are.equal("<p>1</p>\n", page())
        -- A name that is no template: a 500, the file it looked for in the log.
        local res = assert(paged:request("GET", "/page/nope"))
        assert.are.equal(500, res.status)
        assert.are.equal('{"success":false,"message":"Server error"}', res.body)
        assert.is_truthy(paged:wait_log("error", templates .. "/nope.html: no such template", 5, true),
            paged:error_log())

        S.write_file(templates .. "/page.html", "<p>v{{ version }}</p>\n")
        S.write_file(templates .. "/other.html", "<p>\n\n{% if then %}\n</p>\n")
        paged:signal("HUP")
        local line = paged:wait_log("error", "reload failed", 5, true)
        assert.is_truthy(line, "no 'reload failed' line:\n" .. paged:error_log())
        assert.is_truthy(line:find(templates .. "/other.html:3: unexpected symbol near 'then'", 1, true), line)
        -- The old scripts serve the page as compiled at start, not as edited.
        for _ = 1, 4 do
            assert.are.equal("<p>1</p>\n", page())
        end

        os.remove(templates .. "/other.html")
        paged:signal("HUP")
        assert.is_truthy(eventually(function()
            return page() == "<p>v1</p>\n"
        end, 5), "the edited page not served after the fix:\n" .. paged:error_log())
    end)

    it("gives up on a routes.lua still loading after load_timeout, and stays reloadable and stoppable", function()
        local looping = S.start({ app = app, workers = 2, args = { "--load-timeout", "1" } })
        S.write_file(app .. "/routes.lua", "local n = 0\nwhile true do\n    n = n + 1\nend\n")
        looping:signal("HUP")
        local line = looping:wait_log("error", "reload failed", 5, true)
        assert.is_truthy(line, "no 'reload failed' line:\n" .. looping:error_log())
        assert.is_truthy(line:find("still serving the old scripts: " .. app:gsub("%p", "%%%0")
            .. "/routes.lua:[23]: still loading after 1 s %(load_timeout%)"), line)
        assert.are.equal(1, cjson.decode(assert(looping:request("GET", "/version")).body).version)

        edited_routes(app, 4, false)
        looping:signal("HUP")
        assert.is_true(eventually(function()
            return cjson.decode(assert(looping:request("GET", "/version")).body).version == 4
        end, 5), "version 4 not served after the fix:\n" .. looping:error_log())
        looping:signal("TERM")
        assert.are.equal(0, S.wait_pid(looping.pid, 10))
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

-- Policies and routes with typos: a misspelt key, policy or directive fails
-- the reload naming file and key (the old policies keep serving); what may be
-- legitimate (an unusual method, a route the app lacks) is a warning, logged
-- once per load; an unknown res.security is logged once per worker.
describe("reload with typos #integration", function()
    local app, policy, srv

    -- Replaces the first match of pattern in dir/name (plain text) with repl.
    local function edit(dir, name, pattern, repl)
        local text = assert(S.read_file(dir .. "/" .. name))
        local at, stop = text:find(pattern, 1, true)
        assert(at, name .. " has no " .. pattern)
        S.write_file(dir .. "/" .. name, text:sub(1, at - 1) .. repl .. text:sub(stop + 1))
        return text
    end

    -- Adds routes (Lua source of table fields) to the app's routes.lua.
    local function add_routes(fields)
        local text = assert(S.read_file(app .. "/routes.lua"))
        local n
        text, n = text:gsub("}%s*$", fields .. "}\n")
        assert(n == 1)
        S.write_file(app .. "/routes.lua", text)
    end

    local function reloaded(times)
        assert.is_truthy(eventually(function()
            return S.count(srv:error_log(), "[info] reloaded") >= times
        end, 5), srv:error_log())
    end

    before_each(function()
        app, policy = S.copy_app(), S.tmpdir()
        S.copy_dir("lua/policy", policy)
        srv = S.start({ app = app, workers = 2, args = { "--policy-dir", policy } })
    end)

    after_each(function()
        S.stop_all()
    end)

    it("refuses a misspelt key, header policy or CSP directive, naming the file, and keeps the old policies", function()
        local before = assert(srv:request("GET", "/hello"))
        local limit = before.headers["X-RateLimit-Limit"]
        assert.is_truthy(limit, "no rate limit on /hello")
        local cases = {
            { "limits.lua", 'default = "', 'defualt = "',
                "/limits.lua: unknown key defualt (default, exempt, per_ip, per_network, routes)" },
            { "headers.lua", "\nreturn {", '\nreturn {\n    routes = { ["GET /hello"] = "svgg" },',
                '/headers.lua: routes["GET /hello"]: no policy "svgg" here (default, svg, svg_private)' },
            { "headers.lua", "svg = {\n        -- ", "svg = {\n        hedaers = {},\n        -- ",
                '/headers.lua: policy "svg": unknown key hedaers (csp, headers, hsts)' },
            { "csp.lua", '{ "font-src",', '{ "meida-src",',
                '/csp.lua: policy "default": csp[5] (meida-src): not a CSP directive' },
        }
        for i, case in ipairs(cases) do
            local original = edit(policy, case[1], case[2], case[3])
            srv:signal("HUP")
            local line = srv:wait_log("error", policy .. case[4], 5, true)
            assert.is_truthy(line, "no " .. case[4] .. " in:\n" .. srv:error_log())
            assert.is_truthy(line:find("reload failed", 1, true), line)
            assert.are.equal(i, S.count(srv:error_log(), "reload failed"))
            S.write_file(policy .. "/" .. case[1], original)

            local res = assert(srv:request("GET", "/hello"))
            assert.are.equal(200, res.status)
            assert.are.equal(limit, res.headers["X-RateLimit-Limit"])
            assert.are.equal(before.headers["Content-Security-Policy"]:gsub("'nonce%-[^']*'", ""),
                (res.headers["Content-Security-Policy"]:gsub("'nonce%-[^']*'", "")))
        end
        assert.is_true(srv:running())
    end)

    it("warns once per load about an unusual method and a slow_routes route the app lacks", function()
        add_routes('    ["GTE /html"] = function(_, res) res:text("gte") end,\n')
        edit(policy, "alerts.lua", "slow_routes = {}", 'slow_routes = { ["GET /sleep"] = 11000, ["GET /slepe"] = 100 }')
        srv:signal("HUP")
        reloaded(1)
        local method = ' route "GTE /html": GTE is not a standard HTTP method (GET, HEAD, POST, PUT, '
            .. "DELETE, PATCH, OPTIONS, TRACE, CONNECT, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, "
            .. "UNLOCK); only requests with that exact method reach it"
        local slow = '/alerts.lua: "GET /slepe" is not a route of ' .. srv.app .. "/routes.lua; "
            .. "its setting applies to nothing"
        -- From one worker of the two, not each; naming where the route is.
        local log = srv:error_log()
        assert.are.equal(1, S.count(log, method), log)
        local function literal(text)
            return (text:gsub("%p", "%%%0"))
        end
        assert.is_truthy(log:find(literal(srv.app .. "/routes.lua") .. ":%d+:" .. literal(method)), log)
        assert.are.equal(1, S.count(log, slow), log)
        assert.is_nil(log:find('"GET /sleep" is not a route', 1, true), log)
        -- A warning, not a refusal: the route serves.
        local res = assert(srv:request("GTE", "/html"))
        assert.are.equal(200, res.status)
        assert.are.equal("gte", res.body)

        -- Once per load.
        srv:signal("HUP")
        reloaded(2)
        log = srv:error_log()
        assert.are.equal(2, S.count(log, method), log)
        assert.are.equal(2, S.count(log, slow), log)
    end)

    it("logs a res.security naming no policy once per worker, and sends the default headers", function()
        add_routes('    ["GET /nope"] = function(_, res) res.security = "nope"; res:text("nope") end,\n')
        srv:signal("HUP")
        reloaded(1)
        local default = assert(srv:request("GET", "/hello"))
        for _ = 1, 20 do -- new connections: both workers serve some
            local res = assert(srv:request("GET", "/nope"))
            assert.are.equal(200, res.status)
            assert.are.equal("nosniff", res.headers["X-Content-Type-Options"])
            assert.are.equal(default.headers["Content-Security-Policy"]:gsub("'nonce%-[^']*'", ""),
                (res.headers["Content-Security-Policy"]:gsub("'nonce%-[^']*'", "")))
        end
        local line = 'route "GET /nope": res.security = "nope" is not a policy of ' .. policy
            .. '/headers.lua (default, svg, svg_private); sent "default"'
        assert.is_truthy(srv:wait_log("error", line, 5, true), srv:error_log())
        local n = S.count(srv:error_log(), line)
        assert.is_true(n >= 1 and n <= 2, srv:error_log())
        assert.is_truthy(srv:error_log():find("[error]", 1, true))
    end)
end)
