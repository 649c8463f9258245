-- luahost.response: the res object (defaults, json/html/text/redirect helpers, chaining, errors).
local cjson = require "cjson"
local response = require "luahost.response"

describe("luahost.response", function()
    local res

    before_each(function()
        res = response.new()
    end)

    describe("new", function()
        it("starts with status 200, no headers and no body", function()
            assert.equal(200, res.status)
            assert.same({}, res.headers)
            assert.is_nil(res.body)
        end)

        it("returns a fresh object each time", function()
            local other = response.new()
            res.headers["X-A"] = "1"
            res.status = 500
            assert.same({}, other.headers)
            assert.equal(200, other.status)
        end)
    end)

    describe("json", function()
        it("sets the body to the cjson encoding and the Content-Type", function()
            local value = { success = true, items = { 1, 2, 3 }, name = "x" }
            res:json(value)
            assert.equal(cjson.encode(value), res.body)
            assert.same(value, cjson.decode(res.body))
            assert.equal("application/json", res.headers["Content-Type"])
            assert.equal(200, res.status)
        end)

        it("sets the status when given", function()
            res:json({ success = false }, 400)
            assert.equal(400, res.status)
        end)

        it("keeps a status set before when none is given", function()
            res.status = 201
            res:json({})
            assert.equal(201, res.status)
        end)

        it("encodes strings, numbers and booleans too", function()
            assert.equal('"hi"', res:json("hi").body)
            assert.equal("true", res:json(true).body)
        end)

        it("keeps other headers", function()
            res.headers["X-Trace"] = "1"
            res:json({})
            assert.equal("1", res.headers["X-Trace"])
        end)

        it("keeps the value until res.body is read, then raises for one it cannot encode", function()
            res:json({ f = print })
            assert.is_nil(rawget(res, "body"))
            assert.has_error(function() return res.body end)
        end)

        it("encodes the value as it is when read, and only once", function()
            local value = { n = 1 }
            res:json(value)
            value.n = 2
            assert.equal('{"n":2}', res.body)
            assert.is_nil(res.json_value)
            value.n = 3
            assert.equal('{"n":2}', res.body)
        end)

        it("encodes nil as null", function()
            assert.equal("null", res:json(nil).body)
        end)

        it("gives way to a later text or redirect", function()
            res:json({ a = 1 }):text("plain")
            assert.equal("plain", res.body)
            assert.is_nil(res.json_value)
            res:json({ a = 1 }):redirect("/next")
            assert.is_nil(res.body)
        end)

        it("returns res", function()
            assert.equal(res, res:json({}))
        end)
    end)

    describe("html", function()
        it("sets the body and a text/html Content-Type with charset", function()
            res:html("<p>hi</p>")
            assert.equal("<p>hi</p>", res.body)
            assert.equal("text/html; charset=utf-8", res.headers["Content-Type"])
            assert.equal(200, res.status)
        end)

        it("sets the status when given", function()
            assert.equal(404, res:html("<p>gone</p>", 404).status)
        end)

        it("returns res", function()
            assert.equal(res, res:html(""))
        end)
    end)

    describe("text", function()
        it("sets the body and a text/plain Content-Type with charset", function()
            res:text("hello")
            assert.equal("hello", res.body)
            assert.equal("text/plain; charset=utf-8", res.headers["Content-Type"])
        end)

        it("sets the status when given", function()
            assert.equal(503, res:text("busy", 503).status)
        end)

        it("returns res", function()
            assert.equal(res, res:text("x"))
        end)
    end)

    describe("redirect", function()
        it("sets Location and status 302", function()
            res:redirect("/login")
            assert.equal(302, res.status)
            assert.equal("/login", res.headers["Location"])
        end)

        it("uses the status when given", function()
            res:redirect("https://example.com/", 301)
            assert.equal(301, res.status)
            assert.equal("https://example.com/", res.headers["Location"])
        end)

        it("clears a body set before", function()
            res:text("old"):redirect("/new")
            assert.is_nil(res.body)
        end)

        it("raises when the URL is not a string", function()
            assert.has_error(function() res:redirect() end)
            assert.has_error(function() res:redirect(42) end)
        end)

        it("blames the line that calls res:redirect", function()
            local line
            local function handler()
                line = debug.getinfo(1, "l").currentline; res:redirect(42)
            end
            local ok, err = pcall(function() handler() end)
            assert.is_false(ok)
            assert.matches("response_spec%.lua:" .. line .. ": redirect needs a URL string", err)
        end)

        it("returns res", function()
            assert.equal(res, res:redirect("/"))
        end)
    end)

    it("lets helpers chain, the last one winning", function()
        local out = res:text("a"):json({ ok = true }, 201)
        assert.equal(res, out)
        assert.equal(201, res.status)
        assert.equal("application/json", res.headers["Content-Type"])
        assert.equal('{"ok":true}', res.body)
    end)

    describe("with a body that is not a string", function()
        it("raises in html and text", function()
            assert.has_error(function() res:html(nil) end)
            assert.has_error(function() res:html({}) end)
            assert.has_error(function() res:text(42) end)
        end)

        it("says what it got", function()
            local ok, err = pcall(res.text, res, 42)
            assert.is_false(ok)
            assert.matches("body must be a string, got number", err, 1, true)
        end)

        for _, helper in ipairs({ "html", "text" }) do
            it("blames the line that calls res:" .. helper, function()
                local line
                local function handler()
                    line = debug.getinfo(1, "l").currentline; res[helper](res, {})
                end
                local ok, err = pcall(function() handler() end)
                assert.is_false(ok)
                assert.matches("response_spec%.lua:" .. line .. ": body must be a string", err)
            end)
        end

        it("leaves res unchanged", function()
            pcall(res.text, res, 42)
            assert.is_nil(res.body)
            assert.same({}, res.headers)
        end)
    end)
end)
