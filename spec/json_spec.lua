-- luahost.json: exact integers, arrays and objects, null, and refusals; decoding;
-- raw JSON values.
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

    it("decides arrays as cjson does: holes as null, a sparse table or other keys an object", function()
        for _, t in ipairs({ { 1, nil, 3 }, { [1] = "a", [3] = "c" }, { [10] = true },
            { [2] = 1, [4] = 2, [6] = 3 }, { 1, 2, n = 2 }, { [1.5] = 1 } }) do
            assert.are.equal(cjson.encode(t), json.encode(t))
        end
        -- cjson refuses an excessively sparse array; it is an object here.
        assert.are.same({ ["1"] = 1, ["20"] = 2 }, cjson.decode(json.encode({ [1] = 1, [20] = 2 })))
    end)

    it("nests as deep as cjson: 1000 levels", function()
        local deep = {}
        for _ = 1, 999 do
            deep = { deep }
        end
        assert.are.equal(cjson.encode(deep), json.encode(deep))
        assert.has_error(function() json.encode({ deep }) end)
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

    describe("decode", function()
        it("decodes objects, arrays, strings, numbers, booleans and null", function()
            local value = json.decode(' {"a": [1, -2.5e3, "x"], "b": {"c": true, "d": false},'
                .. ' "e": null} ')
            assert.are.same({ a = { 1, -2500, "x" }, b = { c = true, d = false }, e = json.null },
                value)
            assert.are.equal(json.null, value.e)
            assert.are.equal("top", json.decode('"top"'))
            assert.are.equal(0, json.decode("0"))
        end)

        it("decodes escapes and surrogate pairs to UTF-8 bytes", function()
            assert.are.equal("\"\\/\b\f\n\r\t \195\169 \240\159\152\128 a\0b",
                json.decode([["\"\\\/\b\f\n\r\t \u00e9 \ud83d\ude00 a\u0000b"]]))
        end)

        it("reads numbers as doubles: 2^53 + 1 becomes 2^53", function()
            assert.are.equal(9007199254740992, json.decode("9007199254740993"))
        end)

        it("round-trips what encode produces", function()
            local value = { success = true, big = 9007199254740991, none = json.null,
                items = { { id = 1, title = "a \"q\" / b\n", views = 2.5 } },
                unicode = "h\195\169llo \240\159\152\128" }
            assert.are.same(value, json.decode(json.encode(value)))
        end)

        it("gives empty arrays json.array_mt so that they encode as [] again", function()
            local value = json.decode('{"list": [], "map": {}}')
            assert.are.equal(json.array_mt, getmetatable(value.list))
            assert.is_nil(getmetatable(value.map))
            assert.are.equal("[]", json.encode(json.decode("[]")))
            assert.are.equal('{"list":[]}', json.encode(json.decode('{"list":[]}')))
            assert.are.equal("[]", json.encode(setmetatable({}, json.array_mt)))
            assert.is_nil(getmetatable(json.decode("[1]")))
        end)

        it("returns nil, err with the byte offset for invalid JSON", function()
            local cases = {
                ["[1,]"] = "json: unexpected character ']' at byte 3",
                ['{"a":1} x'] = "json: unexpected character 'x' at byte 8",
                ["01"] = "json: leading zero in number at byte 0",
                ["NaN"] = "json: unexpected character 'N' at byte 0",
                ["[1] // c"] = "json: unexpected character '/' at byte 4",
                ['"a\nb"'] = "json: raw control character 0x0a in string at byte 2",
                ['"\\ud800"'] = "json: lone surrogate \\ud800 at byte 1",
                [""] = "json: unexpected end of input at byte 0",
                [string.rep("[", 1001) .. string.rep("]", 1001)] =
                    "json: nested deeper than 1000 at byte 1000",
            }
            for text, want in pairs(cases) do
                local value, err = json.decode(text)
                assert.is_nil(value)
                assert.are.equal(want, err)
            end
        end)

        it("decodes 100 levels of nesting", function()
            local value = json.decode(string.rep("[", 100) .. string.rep("]", 100))
            for _ = 1, 99 do
                value = value[1]
            end
            assert.are.same({}, value)
        end)

        it("raises for an argument that is not a string", function()
            assert.has_error(function() json.decode(5) end)
            assert.has_error(function() json.decode() end)
        end)
    end)

    describe("raw", function()
        it("embeds the text as it is, at the top or nested", function()
            assert.are.equal("[1,2]", json.encode(json.raw("[1,2]")))
            assert.are.same({ data = { 1, 2 }, ok = true },
                cjson.decode(json.encode({ data = json.raw("[1,2]"), ok = true })))
            assert.are.equal('[{"a":1},2]', json.encode({ json.raw('{"a":1}'), 2 }))
        end)

        it("embeds a cached encode result", function()
            local cached = json.raw(json.encode({ n = 1 }))
            assert.are.equal('{"page":{"n":1}}', json.encode({ page = cached }))
        end)

        it("tells raw values apart and returns their text", function()
            local raw = json.raw("true")
            assert.is_true(json.is_raw(raw))
            assert.is_false(json.is_raw({ "true" }))
            assert.is_false(json.is_raw("true"))
            assert.is_false(json.is_raw(nil))
            assert.are.equal("true", json.raw_text(raw))
            assert.is_nil(json.raw_text({ "true" }))
            assert.is_nil(json.raw_text("true"))
        end)

        it("raises for text that is not a string", function()
            assert.has_error(function() json.raw(1) end)
            assert.has_error(function() json.raw({}) end)
        end)
    end)
end)
