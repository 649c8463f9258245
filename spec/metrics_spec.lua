-- luahost.metrics from Lua: what an app's metric methods take and refuse.
local metrics = require "luahost.metrics"

describe("luahost.metrics", function()
    it("counts up only, by 1 or by a number >= 0", function()
        local c = metrics.counter("spec_metrics_things_total", "Things.")
        local before = c:value()
        c:inc()
        c:inc(2.5)
        assert.are.equal(before + 3.5, c:value())
        for _, bad in ipairs({ -1, 0 / 0, "3", true }) do
            assert.has_error(function() c:inc(bad) end, nil, tostring(bad))
        end
        assert.are.equal(before + 3.5, c:value())
    end)

    it("moves a gauge both ways, and wants the amount", function()
        local g = metrics.gauge("spec_metrics_depth", "Depth.")
        g:set(5)
        g:add(-2)
        assert.are.equal(3, g:value())
        assert.has_error(function() g:add() end)
    end)
end)
