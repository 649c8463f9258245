-- luahost.worker (C binding) outside a request: sleep blocks inline, request_data has no request.
local worker = require "luahost.worker"
local socket = require "socket"

describe("luahost.worker", function()
    describe("sleep", function()
        it("blocks for the given time outside a request and returns true", function()
            local start = socket.gettime()
            local ok = worker.sleep(0.05)
            local elapsed = socket.gettime() - start
            assert.is_true(ok)
            assert.is_true(elapsed >= 0.04, "slept only " .. elapsed .. " s")
        end)

        it("returns true at once for 0 seconds", function()
            assert.is_true(worker.sleep(0))
        end)

        it("raises for a negative time", function()
            assert.has_error(function() worker.sleep(-1) end)
        end)

        it("says the allowed range when it raises", function()
            local ok, err = pcall(worker.sleep, -1)
            assert.is_false(ok)
            assert.matches("must be from 0 to 86400 seconds", err, 1, true)
        end)

        it("raises for more than a day", function()
            assert.has_error(function() worker.sleep(86401) end)
        end)

        it("raises for NaN", function()
            assert.has_error(function() worker.sleep(0 / 0) end)
        end)

        it("raises for a non-number", function()
            assert.has_error(function() worker.sleep("x") end)
            assert.has_error(function() worker.sleep() end)
            assert.has_error(function() worker.sleep({}) end)
        end)
    end)

    describe("request_data", function()
        it("returns nil, err outside a request", function()
            for _, part in ipairs({ "headers", "query", "body" }) do
                local value, err = worker.request_data("id", part)
                assert.is_nil(value)
                assert.equal("request is not in progress", err)
            end
        end)

        it("raises for an unknown part", function()
            assert.has_error(function() worker.request_data("id", "cookies") end)
            assert.has_error(function() worker.request_data("id") end)
        end)

        it("raises when the request id is not a string", function()
            assert.has_error(function() worker.request_data(nil, "headers") end)
            assert.has_error(function() worker.request_data({}, "headers") end)
        end)
    end)
end)
