-- luahost.cache in one process without Redis (the L1 alone): values through
-- JSON, negative results, errors not cached, raw text, stats, argument
-- checks. The Redis and multi-instance behaviour is in
-- spec/integration/cache_spec.lua.
local cache = require "luahost.cache"
local json = require "luahost.json"

local n = 0
local function key(what)
    n = n + 1
    return ("unit:%s:%d"):format(what, n)
end

describe("luahost.cache without redis", function()
    it("returns what set stored, as a copy", function()
        local k = key("set")
        local value = { a = 1, list = { 1, 2, 3 }, s = "x" }
        assert.is_true(cache.set(k, value, 30))
        local got, found = cache.get(k)
        assert.is_true(found)
        assert.are.same(value, got)
        got.a = 2
        assert.are.equal(1, cache.get(k).a)
        assert.are.same({ nil, false }, { cache.get(key("absent")) })
    end)

    it("computes once, then serves the stored value", function()
        local k, calls = key("compute"), 0
        local function fn()
            calls = calls + 1
            return { calls = calls }
        end
        assert.are.same({ calls = 1 }, cache.get_or_compute(k, 30, fn))
        assert.are.same({ calls = 1 }, cache.get_or_compute(k, 30, fn))
        assert.are.equal(1, calls)
    end)

    it("returns the JSON text with raw, for res:json to embed", function()
        local k = key("raw")
        local v = cache.get_or_compute(k, 30, function() return { 1, 2 } end, { raw = true })
        assert.is_true(json.is_raw(v))
        assert.are.equal('{"data":[1,2]}', json.encode({ data = v }))
    end)

    it("does not cache an error, returned or raised, and passes it on", function()
        local k, calls = key("error"), 0
        local v, err = cache.get_or_compute(k, 30, function()
            calls = calls + 1
            return nil, "database down"
        end)
        assert.is_nil(v)
        assert.are.equal("database down", err)
        assert.has_error(function()
            cache.get_or_compute(k, 30, function() error("boom", 0) end)
        end, "boom")
        assert.are.same({ ok = true }, cache.get_or_compute(k, 30, function() return { ok = true } end))
        assert.are.equal(1, calls)
    end)

    it("caches a nil result only with negative_ttl", function()
        local k, calls = key("negative"), 0
        local function fn()
            calls = calls + 1
            return nil
        end
        cache.get_or_compute(k, 30, fn)
        cache.get_or_compute(k, 30, fn)
        assert.are.equal(2, calls)
        local k2 = key("negative")
        assert.is_nil(cache.get_or_compute(k2, 30, fn, { negative_ttl = 5 }))
        assert.is_nil(cache.get_or_compute(k2, 30, fn, { negative_ttl = 5 }))
        assert.are.equal(3, calls)
        assert.are.same({ nil, true }, { cache.get(k2) })
    end)

    it("deletes keys and patterns", function()
        local a, b = key("pat:a"), key("other")
        cache.set(a, 1, 30)
        cache.set(b, 2, 30)
        cache.invalidate_pattern("unit:pat:a:*")
        assert.is_false(select(2, cache.get(a)))
        assert.is_true(select(2, cache.get(b)))
        cache.delete(b)
        assert.is_false(select(2, cache.get(b)))
    end)

    it("counts hits and misses per level", function()
        local before = cache.stats()
        local k = key("stats")
        cache.get(k)
        cache.set(k, 1, 30)
        cache.get(k)
        local after = cache.stats()
        assert.are.equal(before.l1.hits + 1, after.l1.hits)
        assert.are.equal(before.l1.misses + 1, after.l1.misses)
        assert.is_true(after.l1.hit_rate > 0 and after.l1.hit_rate <= 1)
        assert.is_false(after.l2.available)
        assert.are.equal(1000, after.l1.max_entries)
    end)

    it("refuses bad arguments", function()
        assert.has_error(function() cache.get("") end)
        assert.has_error(function() cache.set("k", 1, 0) end)
        assert.has_error(function() cache.set("k", 1, 10, -1) end)
        assert.has_error(function() cache.get_or_compute("k", 10, "not a function") end)
        assert.has_error(function() cache.set("k", function() end, 10) end)
    end)

    it("refuses unknown and ill-typed options before computing anything", function()
        local calls = 0
        local function fn()
            calls = calls + 1
            return 1
        end
        for _, opts in ipairs({ { l1ttl = 5 }, { stale = "x" }, { lock_ttl = -1 }, { raw = 1 },
            { negative_ttl = 0 / 0 } }) do
            local ok, err = pcall(cache.get_or_compute, key("opts"), 30, fn, opts)
            assert.is_false(ok)
            assert.matches("cache.get_or_compute: ", err, 1, true)
        end
        assert.are.equal(0, calls)
        assert.are.equal(1, cache.get_or_compute(key("opts"), 30, fn, { stale = 0, raw = false }))
    end)

    it("raises when a computation asks for its own key, instead of waiting for itself", function()
        local k = key("nested")
        local co = coroutine.create(function()
            return cache.get_or_compute(k, 30, function()
                return cache.get_or_compute(k, 30, function() return "inner" end)
            end)
        end)
        local ok, err = coroutine.resume(co)
        assert.is_false(ok)
        assert.matches("asks for", err, 1, true)
        -- The key is not left blocked: the next call computes it.
        assert.are.equal("fresh", cache.get_or_compute(k, 30, function() return "fresh" end))
    end)
end)
