-- luahost.request: the req object (fields, params, preset data, case-insensitive headers, lazy fields outside a server).
local request = require "luahost.request"

describe("luahost.request", function()
    describe("new", function()
        it("sets method, path, id, client and params", function()
            local params = { id = "7" }
            local req = request.new("GET", "/x/7", "rid-1", "127.0.0.1", params)
            assert.equal("GET", req.method)
            assert.equal("/x/7", req.path)
            assert.equal("rid-1", req.id)
            assert.equal("127.0.0.1", req.client)
            assert.equal(params, req.params)
            assert.equal("7", req.params.id)
        end)

        it("keys per-address limits by the address, or an IPv6 address's /64", function()
            assert.equal("192.0.2.7", request.new("GET", "/", "rid", "192.0.2.7").client_key)
            assert.equal("2001:db8:1:2::/64", request.new("GET", "/", "rid", "2001:db8:1:2:a:b:c:d").client_key)
        end)

        it("returns nil for fields it does not know", function()
            local req = request.new("GET", "/", "rid", "c")
            assert.is_nil(req.anything)
        end)

        it("parses the Cookie header into req.cookies", function()
            local req = request.new("GET", "/", "rid", "c", nil,
                { headers = { Cookie = 'sid=abc; theme="dark" ; sid=later; bad; =x' } })
            assert.are.same({ sid = "abc", theme = "dark" }, req.cookies)
            assert.are.same({}, request.new("GET", "/", "rid", "c", nil, { headers = {} }).cookies)
        end)

        it("lets a handler add its own fields", function()
            local req = request.new("GET", "/", "rid", "c")
            req.user = "ann"
            assert.equal("ann", req.user)
        end)
    end)

    describe("params", function()
        it("is an empty table when none are given", function()
            local req = request.new("GET", "/", "rid", "c")
            assert.is_table(req.params)
            assert.is_nil(next(req.params))
            assert.is_nil(req.params.id)
        end)

        it("is read-only when none are given", function()
            local req = request.new("GET", "/", "rid", "c")
            assert.has_error(function() req.params.id = "1" end)
        end)

        it("says why an assignment fails", function()
            local req = request.new("GET", "/", "rid", "c")
            local ok, err = pcall(function() req.params.id = "1" end)
            assert.is_false(ok)
            assert.matches("req.params is read-only", err, 1, true)
            assert.matches("request_spec%.lua:%d+:", err)
        end)

        it("stays empty for later requests after a failed assignment", function()
            pcall(function() request.new("GET", "/", "a", "c").params.x = 1 end)
            assert.is_nil(request.new("GET", "/", "b", "c").params.x)
        end)

        it("is writable when given", function()
            local req = request.new("GET", "/", "rid", "c", { id = "1" })
            req.params.id = "2"
            assert.equal("2", req.params.id)
        end)
    end)

    describe("with preset data", function()
        local req

        before_each(function()
            req = request.new("POST", "/form", "rid", "c", nil, {
                headers = { ["User-Agent"] = "spec/1.0", ["content-type"] = "text/plain" },
                query = { page = "2" },
                body = "hello",
            })
        end)

        it("has the preset headers, query and body", function()
            assert.equal("spec/1.0", req.headers["user-agent"])
            assert.equal("text/plain", req.headers["content-type"])
            assert.same({ page = "2" }, req.query)
            assert.equal("hello", req.body)
        end)

        it("looks headers up case-insensitively", function()
            assert.equal(req.headers["user-agent"], req.headers["User-Agent"])
            assert.equal("spec/1.0", req.headers["USER-AGENT"])
            assert.equal("text/plain", req.headers["Content-Type"])
        end)

        it("returns nil for a missing header, in any case", function()
            assert.is_nil(req.headers["X-Missing"])
            assert.is_nil(req.headers["x-missing"])
        end)

        it("returns nil for a non-string header key", function()
            assert.is_nil(req.headers[1])
        end)

        it("defaults missing parts to no headers, no query and an empty body", function()
            local bare = request.new("GET", "/", "rid", "c", nil, {})
            assert.is_nil(next(bare.headers))
            assert.is_nil(bare.headers["Host"])
            assert.same({}, bare.query)
            assert.equal("", bare.body)
        end)
    end)

    describe("outside a server", function()
        local req

        before_each(function()
            req = request.new("GET", "/", "rid", "c")
        end)

        for _, field in ipairs({ "headers", "query", "body" }) do
            it("raises 'request is not in progress' when req." .. field .. " is read", function()
                local ok, err = pcall(function() return req[field] end)
                assert.is_false(ok)
                assert.matches("req." .. field .. ": request is not in progress", err, 1, true)
            end)

            it("blames the line that reads req." .. field, function()
                local line
                local function handler()
                    line = debug.getinfo(1, "l").currentline; local value = req[field]
                    return value
                end
                local ok, err = pcall(function() handler() end)
                assert.is_false(ok)
                assert.matches("^[^:]*request_spec%.lua:" .. line .. ": req%." .. field, err)
            end)
        end
    end)
end)
