-- luahost.app: app.load(dir) turns dir/routes.lua into dispatch(method, path, id, client); app.start in a child process.
local app = require "luahost.app"
local cjson = require "cjson"

local function make_dir()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    return dir
end

local function write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
end

-- The error app.load(dir) raises, as a string.
local function load_error(dir)
    local ok, err = pcall(app.load, dir)
    assert.is_false(ok, "app.load should have raised")
    return tostring(err)
end

describe("luahost.app", function()
    local dir, routes_file

    before_each(function()
        dir = make_dir()
        routes_file = dir .. "/routes.lua"
    end)

    after_each(function()
        os.execute("rm -rf '" .. dir .. "'")
    end)

    local function routes(text)
        write(routes_file, text)
    end

    describe("load", function()
        it("returns a dispatch function", function()
            routes([[return { ["GET /"] = function(req, res) end }]])
            assert.is_function(app.load(dir))
        end)

        it("loads a routes.lua that returns no routes", function()
            routes([[return {}]])
            local dispatch = app.load(dir)
            assert.equal(404, (dispatch("GET", "/", "rid", "c")))
        end)
    end)

    describe("dispatch", function()
        local dispatch

        before_each(function()
            routes([[
local cjson = require "cjson"
return {
    ["GET /x/:id"] = function(req, res)
        res:json({ id = req.params.id, rid = req.id, client = req.client,
                   method = req.method, path = req.path })
    end,
    ["POST /x/:id"] = function(req, res)
        res.headers["X-Made"] = "yes"
        res:text("made " .. req.params.id, 201)
    end,
    ["GET /empty"] = function(req, res) end,
    ["GET /go"] = function(req, res) res:redirect("/x/1") end,
    ["GET /params"] = function(req, res)
        res:text(tostring(next(req.params)) .. " " .. tostring(pcall(function() req.params.a = 1 end)))
    end,
    ["* /any"] = function(req, res) res:text(req.method) end,
    ["GET /boom"] = function(req, res)
        error("handler boom")
    end,
    ["GET /boom-table"] = function(req, res)
        error({ code = 42 })
    end,
}
]])
            dispatch = app.load(dir)
        end)

        it("returns the handler's status, body and headers", function()
            local status, body, headers = dispatch("POST", "/x/3", "rid", "10.0.0.1")
            assert.equal(201, status)
            assert.equal("made 3", body)
            assert.equal("yes", headers["X-Made"])
            assert.equal("text/plain; charset=utf-8", headers["Content-Type"])
        end)

        it("gives the handler a req with params, id, client, method and path", function()
            local status, body, headers, _, _, _, _, value = dispatch("GET", "/x/7", "rid", "127.0.0.1")
            assert.equal(200, status)
            assert.equal("application/json", headers["Content-Type"])
            -- res:json's value comes back unencoded: the core encodes it.
            assert.is_nil(body)
            assert.same({ id = "7", rid = "rid", client = "127.0.0.1", method = "GET", path = "/x/7" },
                value)
        end)

        it("returns 200, no body and no headers when the handler sets nothing", function()
            local status, body, headers = dispatch("GET", "/empty", "rid", "c")
            assert.equal(200, status)
            assert.is_nil(body)
            assert.same({}, headers)
        end)

        it("returns a redirect", function()
            local status, body, headers = dispatch("GET", "/go", "rid", "c")
            assert.equal(302, status)
            assert.is_nil(body)
            assert.equal("/x/1", headers.Location)
        end)

        it("gives a route without parameters empty, read-only params", function()
            local _, body = dispatch("GET", "/params", "rid", "c")
            assert.equal("nil false", body)
        end)

        it("serves any method for a '*' route", function()
            assert.equal("BREW", select(2, dispatch("BREW", "/any", "rid", "c")))
        end)

        it("serves HEAD with the GET route", function()
            local status, _, _, _, _, _, _, value = dispatch("HEAD", "/x/9", "rid", "c")
            assert.equal(200, status)
            assert.same({ id = "9", rid = "rid", client = "c", method = "HEAD", path = "/x/9" }, value)
        end)

        it("returns 404 with a JSON message for an unknown path", function()
            local status, body, headers = dispatch("GET", "/nope", "rid", "c")
            assert.equal(404, status)
            assert.same({ success = false, message = "Not found" }, cjson.decode(body))
            assert.same({ ["Content-Type"] = "application/json" }, headers)
        end)

        -- The methods of an Allow header, sorted: routes.lua is a table, so
        -- the order of GET and POST is not defined.
        local function sorted_allow(headers)
            local allowed = {}
            for method in headers.Allow:gmatch("[^, ]+") do
                allowed[#allowed + 1] = method
            end
            table.sort(allowed)
            return allowed
        end

        it("returns 405 with a JSON message and an Allow header for a wrong method", function()
            local status, body, headers = dispatch("DELETE", "/x/7", "rid", "c")
            assert.equal(405, status)
            assert.same({ success = false, message = "Method not allowed" }, cjson.decode(body))
            assert.equal("application/json", headers["Content-Type"])
            assert.same({ "GET", "HEAD", "OPTIONS", "POST" }, sorted_allow(headers))
        end)

        it("answers OPTIONS on a known path 204 with the path's methods, no body", function()
            local status, body, headers = dispatch("OPTIONS", "/x/7", "rid", "c")
            assert.equal(204, status)
            assert.is_nil(body)
            assert.is_nil(headers["Content-Type"])
            assert.same({ "GET", "HEAD", "OPTIONS", "POST" }, sorted_allow(headers))
        end)

        it("raises the handler's error", function()
            local ok, err = pcall(dispatch, "GET", "/boom", "rid", "c")
            assert.is_false(ok)
            assert.matches("handler boom", err, 1, true)
            assert.equal(1, err:find(routes_file .. ":18:", 1, true), err)
        end)

        it("raises a handler's non-string error value unchanged", function()
            local ok, err = pcall(dispatch, "GET", "/boom-table", "rid", "c")
            assert.is_false(ok)
            assert.same({ code = 42 }, err)
        end)

        it("keeps serving after a handler error", function()
            pcall(dispatch, "GET", "/boom", "rid", "c")
            assert.equal(200, (dispatch("GET", "/x/1", "rid2", "c")))
        end)
    end)

    describe("with a bad application", function()
        it("raises 'file:line:' for a syntax error in routes.lua", function()
            routes("return {\n    [\"GET /\"] = function(req, res) end,\n}\n}\n")
            local err = load_error(dir)
            assert.equal(1, err:find(routes_file .. ":4:", 1, true), err)
        end)

        it("raises 'file:line:' for an error while routes.lua runs", function()
            routes("local x = nil\nreturn x.field\n")
            local err = load_error(dir)
            assert.equal(1, err:find(routes_file .. ":2:", 1, true), err)
        end)

        it("raises naming routes.lua when it is missing", function()
            local err = load_error(dir)
            assert.matches(routes_file, err, 1, true)
        end)

        it("raises naming the file when routes.lua returns a non-table", function()
            routes("return 5\n")
            local err = load_error(dir)
            assert.equal(routes_file .. ": must return a table of routes, returned number", err)
        end)

        it("raises naming the file when routes.lua returns nothing", function()
            routes("local routes = {}\n")
            local err = load_error(dir)
            assert.equal(routes_file .. ": must return a table of routes, returned nil", err)
        end)

        it("raises with the file and the handler's line for a key without a path", function()
            routes("return {\n    [\"FETCH\"] = function(req, res) end,\n}\n")
            local err = load_error(dir)
            assert.equal(routes_file .. ':2: route "FETCH": key must read "METHOD /path"', err)
        end)

        it("raises with the file and a line for a path that does not start with /", function()
            routes("return {\n\n    [\"GET nopath\"] = function(req, res) end,\n}\n")
            local err = load_error(dir)
            assert.equal(1, err:find(routes_file .. ":3:", 1, true), err)
            assert.matches('route "GET nopath"', err, 1, true)
        end)

        it("raises with the file and a line for a lower-case method", function()
            routes("return {\n    [\"get /a\"] = function(req, res) end,\n}\n")
            local err = load_error(dir)
            assert.equal(1, err:find(routes_file .. ":2:", 1, true), err)
        end)

        it("raises with the file and a line for a list entry without a key", function()
            routes("return {\n    function(req, res) end,\n}\n")
            local err = load_error(dir)
            assert.equal(1, err:find(routes_file .. ":2:", 1, true), err)
        end)

        it("raises naming routes.lua for a bad key whose handler is a C function", function()
            routes("return {\n    [\"FETCH\"] = print,\n}\n")
            local err = load_error(dir)
            assert.matches(routes_file, err, 1, true)
        end)

        it("raises with the key's line for a handler that is not a function", function()
            routes("return {\n    [\"GET /a\"] = \"not a function\",\n}\n")
            local err = load_error(dir)
            assert.equal(routes_file .. ':2: route "GET /a": handler must be a function, got string', err)
        end)

        it("raises naming the file for a handler that is not a function under a computed key", function()
            routes("local m = 'GET'\nreturn {\n    [m .. ' /a'] = 42,\n}\n")
            local err = load_error(dir)
            assert.equal(routes_file .. ': route "GET /a": handler must be a function, got number', err)
        end)

        it("raises with the router's reason for a bad pattern", function()
            routes("return {\n    [\"GET /a/:\"] = function(req, res) end,\n}\n")
            local err = load_error(dir)
            assert.equal(routes_file .. ':2: route "GET /a/:": parameter without a name', err)
        end)

        it("raises with the router's reason for a bad method", function()
            routes("return {\n    [\"G*T /a\"] = function(req, res) end,\n}\n")
            local err = load_error(dir)
            assert.equal(1, err:find(routes_file .. ":2:", 1, true), err)
            assert.matches("bad method 'G*T'", err, 1, true)
        end)

        it("raises 'duplicate route' naming both routes of the same shape", function()
            routes("return {\n    [\"GET /u/:id\"] = function(req, res) end,\n"
                .. "    [\"GET /u/:name\"] = function(req, res) end,\n}\n")
            local err = load_error(dir)
            -- pairs decides which of the two is added second.
            local second = err:find(":3:", 1, true) and { 3, "name", 2, "id" } or { 2, "id", 3, "name" }
            assert.equal(('%s:%d: route "GET /u/:%s": duplicate route of "GET /u/:%s" (%s:%d)'):format(
                routes_file, second[1], second[2], second[4], routes_file, second[3]), err)
        end)

        it("names both routes of a duplicate with a suffix and a catch-all", function()
            routes("return {\n    [\"GET /svg/:id.svg\"] = function(req, res) end,\n"
                .. "    [\"GET /svg/:name.svg\"] = function(req, res) end,\n"
                .. "    [\"GET /f/*a\"] = function(req, res) end,\n"
                .. "    [\"GET /f/*b\"] = function(req, res) end,\n}\n")
            local err = load_error(dir)
            assert.is_truthy(err:find('duplicate route of "GET /svg/:%a+.svg"')
                or err:find('duplicate route of "GET /f/%*%a"'), err)
        end)
    end)

    describe("warnings, with report", function()
        local log = require "luahost.log"
        local warnings, warn_line

        before_each(function()
            warnings, warn_line = {}, log.warn
            log.warn = function(line)
                warnings[#warnings + 1] = line
            end
        end)

        after_each(function()
            log.warn = warn_line
        end)

        it("warns once about a method that is not a standard one, naming the route and its line", function()
            routes("return {\n    [\"GET /html\"] = function(req, res) end,\n"
                .. "    [\"GTE /html\"] = function(req, res) end,\n"
                .. "    [\"PROPFIND /dav\"] = function(req, res) end,\n"
                .. "    [\"* /any\"] = function(req, res) end,\n}\n")
            app.load(dir, nil, nil, true)
            table.sort(warnings)
            local standard = " is not a standard HTTP method (GET, HEAD, POST, PUT, DELETE, PATCH, "
                .. "OPTIONS, TRACE, CONNECT, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK); "
                .. "only requests with that exact method reach it"
            -- WebDAV's PROPFIND is standard: no warning for it.
            assert.same({ routes_file .. ':3: route "GTE /html": GTE' .. standard }, warnings)
        end)

        it("loads a route with an unusual method, and warns only with report", function()
            routes("return {\n    [\"GTE /html\"] = function(req, res) res:text('ok') end,\n}\n")
            local dispatch = app.load(dir)
            assert.same({}, warnings)
            assert.equal(200, (dispatch("GTE", "/html", "rid", "c")))
        end)

        it("refuses a NaN or infinite slow_request_ms or slow route, naming alerts.lua", function()
            for _, policy in ipairs {
                "return { slow_request_ms = 0/0 }",
                "return { slow_request_ms = 1/0 }",
                'return { slow_routes = { ["GET /sleep"] = 0/0 } }',
            } do
                write(dir .. "/alerts.lua", policy)
                local ok, err = pcall(require("luahost.monitoring").load, dir)
                assert.is_false(ok, policy)
                assert.matches(dir .. "/alerts.lua: slow_", err, 1, true)
            end
        end)

        it("warns about a route of alerts.lua's slow_routes the app lacks, as of limits.lua's", function()
            routes("return {\n    [\"GET /sleep\"] = function(req, res) end,\n}\n")
            local policy = require("luahost.security").none()
            policy.route_keys = { ["GET /sleep"] = "p/limits.lua", ["GET /slep"] = "p/limits.lua" }
            write(dir .. "/alerts.lua", 'return { slow_routes = { ["GET /sleep"] = 11000, '
                .. '["GET /slepe"] = 11000 } }')
            app.load(dir, policy, require("luahost.monitoring").load(dir), true)
            table.sort(warnings)
            assert.same({
                dir .. '/alerts.lua: "GET /slepe" is not a route of ' .. routes_file
                    .. "; its setting applies to nothing",
                'p/limits.lua: "GET /slep" is not a route of ' .. routes_file
                    .. "; its setting applies to nothing",
            }, warnings)
        end)
    end)

    describe("start, in a child process", function()
        -- app.start locks the globals of the process it runs in, so it runs
        -- in a separate luajit; returns that process's output.
        local function run_child(source)
            local script = dir .. "/child.lua"
            write(script, ("package.path = %q\npackage.cpath = %q\nlocal dir = %q\n"):format(
                package.path, package.cpath, dir) .. source)
            local p = assert(io.popen("luajit '" .. script .. "' 2>&1"))
            local out = p:read("*a")
            p:close()
            return out
        end

        before_each(function()
            write(dir .. "/helper.lua", "return { greeting = 'hello from helper' }\n")
            routes([[
local helper = require "helper"
return {
    ["GET /read"] = function(req, res) res:text(tostring(undeclared_name)) end,
    ["GET /write"] = function(req, res) new_global = 1 end,
    ["GET /helper"] = function(req, res) res:text(helper.greeting) end,
    ["GET /std"] = function(req, res) res:text(string.upper(type(print))) end,
}
]])
        end)

        it("raises 'undeclared global' when a handler reads an undeclared global", function()
            local out = run_child([[
local dispatch = require("luahost.app").start(dir)
local ok, err = pcall(dispatch, "GET", "/read", "rid", "c")
io.write(tostring(ok), "|", tostring(err))
]])
            assert.matches("^false|.*undeclared global 'undeclared_name'", out)
            assert.matches("routes.lua:3:", out, 1, true)
        end)

        it("raises 'undeclared global' when a handler assigns an undeclared global", function()
            local out = run_child([[
local dispatch = require("luahost.app").start(dir)
local ok, err = pcall(dispatch, "GET", "/write", "rid", "c")
io.write(tostring(ok), "|", tostring(err))
]])
            assert.matches("^false|.*assignment to undeclared global 'new_global'", out)
        end)

        it("leaves the standard globals readable", function()
            local out = run_child([[
local dispatch = require("luahost.app").start(dir)
local status, body = dispatch("GET", "/std", "rid", "c")
io.write(status, "|", body)
]])
            assert.equal("200|FUNCTION", out)
        end)

        it("lets routes.lua require modules from the application directory", function()
            local out = run_child([[
local dispatch = require("luahost.app").start(dir)
local status, body = dispatch("GET", "/helper", "rid", "c")
io.write(status, "|", body)
]])
            assert.equal("200|hello from helper", out)
        end)

        it("searches the given lua_path too", function()
            local lib = dir .. "/lib"
            assert(os.execute("mkdir -p '" .. lib .. "'"))
            write(lib .. "/extra.lua", "return 'extra'\n")
            local out = run_child([[
require("luahost.app").start(dir, dir .. "/lib/?.lua")
io.write(require("extra"))
]])
            assert.equal("extra", out)
        end)
    end)
end)
