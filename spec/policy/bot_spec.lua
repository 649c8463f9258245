-- lua/policy/bot.lua: a fingerprint with more than `threshold` requests in a
-- window is a bot; missing or scripted User-Agents are flagged as suspicious.
local ratelimit = require "luahost.ratelimit"
local request = require "luahost.request"

local function req_with(headers)
    return request.new("GET", "/", "rid-bot", "192.0.2.7", nil, { headers = headers })
end

local CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    .. "Chrome/124.0.0.0 Safari/537.36"
local FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"

describe("policy.bot", function()
    local bot = dofile("lua/policy/bot.lua")

    it("counts in windows of 10 s, above 50 requests, and asks bots to wait 60 s", function()
        assert.equal(10, bot.window)
        assert.equal(50, bot.threshold)
        assert.equal(60, bot.retry_after)
        assert.is_function(bot.is_bot)
        assert.is_function(bot.suspicious)
    end)

    it("has a threshold, window and hold the limiter accepts as a counter rule", function()
        assert.is_userdata(ratelimit.ruleset {
            { slot = 3, limit = bot.threshold, window = bot.window, counter = true, hold = bot.retry_after },
        })
    end)

    describe("is_bot", function()
        local req = req_with { ["User-Agent"] = CHROME }

        it("is false up to the threshold", function()
            assert.is_false(bot.is_bot(req, 0))
            assert.is_false(bot.is_bot(req, 1))
            assert.is_false(bot.is_bot(req, 50))
        end)

        it("is true above the threshold", function()
            assert.is_true(bot.is_bot(req, 51))
            assert.is_true(bot.is_bot(req, 1000))
        end)
    end)

    describe("suspicious", function()
        it("flags a request without User-Agent", function()
            assert.equal("no User-Agent", bot.suspicious(req_with {}))
        end)

        it("flags an empty User-Agent", function()
            assert.equal("no User-Agent", bot.suspicious(req_with { ["User-Agent"] = "" }))
        end)

        it("flags curl and python-requests", function()
            assert.equal("User-Agent contains curl",
                bot.suspicious(req_with { ["User-Agent"] = "curl/8.5.0" }))
            assert.equal("User-Agent contains python-requests",
                bot.suspicious(req_with { ["User-Agent"] = "python-requests/2.31.0" }))
        end)

        it("flags scripted agents whatever their case", function()
            assert.equal("User-Agent contains wget",
                bot.suspicious(req_with { ["User-Agent"] = "Wget/1.21.4" }))
            assert.equal("User-Agent contains headless",
                bot.suspicious(req_with { ["user-agent"] = CHROME:gsub("Chrome", "HeadlessChrome") }))
            assert.equal("User-Agent contains go-http-client",
                bot.suspicious(req_with { ["USER-AGENT"] = "Go-http-client/1.1" }))
        end)

        it("passes a normal browser", function()
            assert.is_nil(bot.suspicious(req_with { ["User-Agent"] = CHROME }))
            assert.is_nil(bot.suspicious(req_with { ["User-Agent"] = FIREFOX }))
        end)

        it("lists its agents in lower case", function()
            for _, s in ipairs(bot.suspicious_agents) do
                assert.equal(s:lower(), s)
            end
        end)
    end)
end)

describe("bench policy.bot", function()
    local bot = dofile("bench/policy/bot.lua")

    it("never calls a benchmark client a bot", function()
        assert.is_false(bot.is_bot(nil, 1000000))
        assert.is_true(bot.is_bot(nil, bot.threshold + 1))
    end)

    it("has no suspicious check", function()
        assert.is_nil(bot.suspicious)
    end)
end)
