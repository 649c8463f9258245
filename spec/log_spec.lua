-- luahost.log (C binding): debug/info/warn/error take any values; enabled(level) checks the level.
local log = require "luahost.log"

-- Runs a Lua script in a child luajit with this process's module paths and
-- returns what it wrote to stdout and stderr.
local function run_child(source)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(("package.path = %q\npackage.cpath = %q\n"):format(package.path, package.cpath))
    f:write(source)
    f:close()
    local p = assert(io.popen("luajit " .. script .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    os.remove(script)
    return out
end

describe("luahost.log", function()
    it("has debug, info, warn, error and enabled functions", function()
        for _, name in ipairs({ "debug", "info", "warn", "error", "enabled", "quote" }) do
            assert.is_function(log[name], name)
        end
    end)

    it("accepts several values of any type, and none", function()
        -- debug is below the default level (info): nothing is written here.
        assert.has_no_error(function()
            log.debug("text", 1, 2.5, true, false, nil, {}, function() end, coroutine.create(print))
            log.debug()
            log.debug(setmetatable({}, { __tostring = function() return "custom" end }))
        end)
    end)

    it("returns nothing", function()
        assert.equal(0, select("#", log.debug("x")))
    end)

    describe("enabled", function()
        it("returns a boolean for each level", function()
            for _, level in ipairs({ "debug", "info", "warn", "error" }) do
                assert.is_boolean(log.enabled(level))
            end
        end)

        it("raises for an unknown level", function()
            assert.has_error(function() log.enabled("bogus") end)
            assert.has_error(function() log.enabled("INFO") end)
            assert.has_error(function() log.enabled() end)
        end)

        it("names the levels when it raises", function()
            local ok, err = pcall(log.enabled, "bogus")
            assert.is_false(ok)
            assert.matches("want debug, info, warn or error", err, 1, true)
        end)
    end)

    describe("in a process whose log is not opened", function()
        it("is at level info", function()
            local out = run_child([[
                local log = require "luahost.log"
                io.write(tostring(log.enabled("debug")), " ", tostring(log.enabled("info")), " ",
                    tostring(log.enabled("warn")), " ", tostring(log.enabled("error")))
            ]])
            assert.equal("false true true true", out)
        end)

        it("writes the values joined by spaces, one line per call, tagged with the level", function()
            local out = run_child([[
                local log = require "luahost.log"
                local t = setmetatable({}, { __tostring = function() return "custom" end })
                log.info("a", 1, nil, true, t)
                log.warn("careful")
                log.error("bad", 2.5)
                log.debug("hidden")
            ]])
            local lines = {}
            for line in out:gmatch("[^\n]+") do
                lines[#lines + 1] = line
            end
            assert.equal(3, #lines, out)
            assert.matches("%[info%] a 1 nil true custom$", lines[1])
            assert.matches("%[warn%] careful$", lines[2])
            assert.matches("%[error%] bad 2.5$", lines[3])
            assert.is_nil(out:find("hidden", 1, true))
        end)

        it("writes values of every type through tostring", function()
            local out = run_child([[
                require("luahost.log").warn("s", 1, nil, false, {}, print, coroutine.create(print))
            ]])
            assert.matches("%[warn%] s 1 nil false table: [^ ]+ function: [^ ]+ thread: %S+\n$", out)
        end)

        it("writes an empty message for no values", function()
            local out = run_child([[require("luahost.log").info()]])
            assert.matches("%[info%] \n$", out)
        end)

        it("quote() makes a client's text one safe token: quotes, escapes, any length", function()
            assert.are.equal('"a\\"b\\\\c\\x0ad\\x1b\\x00e"', log.quote('a"b\\c\nd\27\0e'))
            assert.are.equal('"\\xc3\\xa9\\xe2\\x80\\xa8"', log.quote("\195\169\226\128\168")) -- é, U+2028
            assert.are.equal('"nil"', log.quote(nil))
            assert.are.equal('"42"', log.quote(42))
            local long = ("\n"):rep(5000) .. "end"
            assert.are.equal('"' .. ("\\x0a"):rep(5000) .. 'end"', log.quote(long))
        end)

        it("writes a message longer than its line buffer as one line", function()
            local out = run_child([[require("luahost.log").info(("x"):rep(20000), "end")]])
            assert.matches("^[^\n]*%[info%] xxx[^\n]*\n$", out)
        end)
    end)
end)
