-- lua/policy/limits.lua (and bench/policy/limits.lua): the shipped limits are
-- data the limiter accepts: every limit string parses, the defaults are the
-- reference's, and /health is exempt.
local netaddr = require "luahost.netaddr"
local ratelimit = require "luahost.ratelimit"

-- Calls fn(spec, where) for every limit string of limits.
local function each_limit(limits, fn)
    if limits.default then
        fn(limits.default, "default")
    end
    if limits.per_ip then
        fn(limits.per_ip, "per_ip")
    end
    if limits.per_network then
        fn(limits.per_network.limit, "per_network.limit")
    end
    for route, spec in pairs(limits.routes or {}) do
        if spec ~= false and spec ~= "per_ip" then -- "per_ip": only the ceiling above
            fn(spec, "routes[" .. route .. "]")
        end
    end
end

-- The limit of rates for window seconds, or nil.
local function limit_for(rates, window)
    for _, r in ipairs(rates) do
        if r.window == window then
            return r.limit
        end
    end
end

describe("policy.limits", function()
    local L = dofile("lua/policy/limits.lua")

    it("returns a table of strings, route entries and CIDRs", function()
        assert.is_table(L)
        assert.is_string(L.default)
        assert.is_string(L.per_ip)
        assert.is_table(L.routes)
        assert.is_table(L.exempt)
    end)

    it("defaults to 2000 per day; 500 per hour", function()
        assert.equal("2000 per day; 500 per hour", L.default)
        assert.same({ { limit = 2000, window = 86400 }, { limit = 500, window = 3600 } },
            ratelimit.parse(L.default))
    end)

    it("has limit strings that all parse", function()
        local n = 0
        each_limit(L, function(spec, where)
            local rates, err = ratelimit.parse(spec)
            assert(rates, where .. ": " .. tostring(err))
            n = n + 1
        end)
        assert.is_true(n >= 2)
    end)

    it("has limits the limiter accepts in a ruleset", function()
        each_limit(L, function(spec)
            local rules = {}
            for _, r in ipairs(assert(ratelimit.parse(spec))) do
                rules[#rules + 1] = { slot = 1, limit = r.limit, window = r.window }
            end
            assert.is_userdata(ratelimit.ruleset(rules))
        end)
    end)

    it("exempts GET /health", function()
        assert.is_false(L.routes["GET /health"])
    end)

    it("keeps the per-address ceiling on the monitoring routes that look up sessions", function()
        assert.are.equal("per_ip", L.routes["GET /metrics"])
        assert.are.equal("per_ip", L.routes["GET /monitor/stream"])
    end)

    it("gives routes only a limit string or false", function()
        for route, spec in pairs(L.routes) do
            assert(spec == false or type(spec) == "string", route)
            assert.matches("^%u+ /", route)
        end
    end)

    it("puts the per-address limit above the per-client default in every window", function()
        local default, per_ip = ratelimit.parse(L.default), ratelimit.parse(L.per_ip)
        for _, r in ipairs(default) do
            local above = limit_for(per_ip, r.window)
            assert(above, "per_ip has no limit for a window of " .. r.window .. " s")
            assert.is_true(above >= r.limit)
        end
    end)

    it("counts an IPv6 /48 together, above the per-address limit in every window", function()
        assert.equal(48, L.per_network.ipv6_prefix)
        local per_ip, per_network = ratelimit.parse(L.per_ip), ratelimit.parse(L.per_network.limit)
        for _, r in ipairs(per_ip) do
            local above = limit_for(per_network, r.window)
            assert(above, "per_network has no limit for a window of " .. r.window .. " s")
            assert.is_true(above > r.limit)
        end
    end)

    it("has exempt entries that form a CIDR set", function()
        assert.is_userdata(assert(netaddr.cidr_set(table.concat(L.exempt, ","))))
    end)
end)

describe("bench policy.limits", function()
    local L = dofile("bench/policy/limits.lua")

    it("has limit strings that all parse", function()
        each_limit(L, function(spec, where)
            assert(ratelimit.parse(spec), where)
        end)
    end)

    it("limits GET /secure and leaves GET /hello alone", function()
        assert.is_string(L.routes["GET /secure"])
        assert.is_false(L.routes["GET /hello"])
    end)
end)
