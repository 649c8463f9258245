-- luahost.json: exact integers, arrays and objects, null, and refusals.
local json = require "luahost.json"
local cjson = require "cjson"

describe("luahost.json", function()
    it("encodes integers up to 2^53 exactly, where cjson keeps 14 digits", function()
        assert.are.equal("[123456789012345,9007199254740991,-7,0]",
            json.encode({ 123456789012345, 9007199254740991, -7, 0 }))
    end)

    it("encodes what cjson decodes back to the same value", function()
        local value = { success = true, items = { { id = 1, title = "a \"q\" / b\n", views = 2.5 } },
            none = json.null, unicode = "h\195\169llo \240\159\152\128" }
        assert.are.same(value, cjson.decode(json.encode(value)))
    end)

    it("encodes nil, json.null, cjson.null as null", function()
        assert.are.equal("null", json.encode(nil))
        assert.are.equal("[null,null]", json.encode({ json.null, cjson.null }))
    end)

    it("encodes an empty table as {} like cjson", function()
        assert.are.equal("{}", json.encode({}))
    end)

    it("encodes a table with holes or other keys as an object", function()
        local decoded = cjson.decode(json.encode({ [1] = "a", [3] = "c" }))
        assert.are.same({ ["1"] = "a", ["3"] = "c" }, decoded)
    end)

    it("raises for functions, NaN, infinity, odd keys and cycles", function()
        assert.has_error(function() json.encode({ f = print }) end)
        assert.has_error(function() json.encode(0 / 0) end)
        assert.has_error(function() json.encode(math.huge) end)
        assert.has_error(function() json.encode({ [true] = 1 }) end)
        local t = {}
        t.self = t
        assert.has_error(function() json.encode(t) end)
    end)
end)
