-- luahost.fingerprint (C binding): fingerprint.new, fp:compute, fp:key, fp:close,
-- fingerprint.host, hmac_sha256, check_secret and random_hex.
local fingerprint = require "luahost.fingerprint"
local ffi = require "ffi"
local host_objects = require "support.host"

local SECRET = "anchor-bench-secret"
local WRK_UA, WRK_LANG = "anchor-bench/1.0 (wrk)", "en-US,en;q=0.9"

-- A real lh_fingerprint made through the FFI, for a state's host objects.
ffi.cdef [[
struct lh_fingerprint;
struct lh_fingerprint *lh_fingerprint_new(const void *key, size_t len, const char **err);
void lh_fingerprint_free(struct lh_fingerprint *fp);
int lh_fingerprint_compute(const struct lh_fingerprint *fp, const char *ip, const char *ua,
                           const char *lang, const char *xff, char *out);
]]


describe("luahost.fingerprint", function()
    local fp

    before_each(function()
        fp = assert(fingerprint.new(SECRET))
    end)

    after_each(function()
        fp:close()
    end)

    describe("new", function()
        it("returns an object with compute, key and close methods", function()
            assert.is_function(fp.compute)
            assert.is_function(fp.key)
            assert.is_function(fp.close)
            assert.equal("luahost.fingerprint (open)", tostring(fp))
        end)

        it("returns nil, err for an empty secret", function()
            local f, err = fingerprint.new("")
            assert.is_nil(f)
            assert.equal("empty key", err)
        end)

        it("raises for a secret that is not a string", function()
            assert.has_error(function() fingerprint.new({}) end)
            assert.has_error(function() fingerprint.new() end)
        end)

        it("accepts a short secret (check_secret is the production rule)", function()
            local f = assert(fingerprint.new("k"))
            assert.equal(16, #f:compute("1.2.3.4"))
            f:close()
        end)
    end)

    describe("compute", function()
        it("matches the reference for 127.0.0.1:x:unknown:", function()
            assert.equal("b292482bc73b767f", fp:compute("127.0.0.1", "x", nil, nil))
        end)

        it("matches the reference for the wrk benchmark's headers", function()
            assert.equal("de4b526256256535", fp:compute("127.0.0.1", WRK_UA, WRK_LANG))
        end)

        it("gives missing arguments the reference's defaults", function()
            local explicit = fp:compute("127.0.0.1", "unknown", "unknown", "")
            assert.equal(explicit, fp:compute())
            assert.equal(explicit, fp:compute(nil, nil, nil, nil))
        end)

        it("keeps an empty header empty rather than unknown", function()
            assert.are_not.equal(fp:compute("127.0.0.1", "unknown"), fp:compute("127.0.0.1", ""))
        end)

        it("returns 16 lowercase hex characters", function()
            assert.matches("^[0-9a-f]+$", fp:compute("2001:db8::1", "Mozilla/5.0", "de", "1.2.3.4"))
            assert.equal(16, #fp:compute("2001:db8::1"))
        end)

        it("equals the first 16 hex characters of hmac_sha256 of the joined fields", function()
            local msg = "10.0.0.1:curl/8.0:fr-FR:198.51.100.7, 10.0.0.2"
            local full = fingerprint.hmac_sha256(SECRET, msg)
            assert.equal(full:sub(1, 16),
                fp:compute("10.0.0.1", "curl/8.0", "fr-FR", "198.51.100.7, 10.0.0.2"))
        end)

        it("takes an IPv6 address by its /64, as the per-address limits count it", function()
            local first = fp:compute("2001:db8:1:2::1", "Mozilla/5.0", "de")
            assert.equal(first, fp:compute("2001:db8:1:2:a:b:c:d", "Mozilla/5.0", "de"))
            assert.equal(fingerprint.hmac_sha256(SECRET, "2001:db8:1:2::/64:Mozilla/5.0:de:"):sub(1, 16),
                first)
            assert.are_not.equal(first, fp:compute("2001:db8:1:3::1", "Mozilla/5.0", "de"))
            assert.are_not.equal(fp:compute("192.0.2.1"), fp:compute("192.0.2.2"))
        end)

        it("gives each object its own key when calls interleave", function()
            local other = assert(fingerprint.new("another secret"))
            for _ = 1, 5 do
                assert.equal("b292482bc73b767f", fp:compute("127.0.0.1", "x"))
                assert.are_not.equal("b292482bc73b767f", other:compute("127.0.0.1", "x"))
            end
            assert.equal(fingerprint.hmac_sha256("another secret", "127.0.0.1:x:unknown:"):sub(1, 16),
                other:compute("127.0.0.1", "x"))
            other:close()
        end)

        it("raises for an argument that is not a string", function()
            assert.has_error(function() fp:compute({}) end)
            assert.has_error(function() fp:compute("1.2.3.4", true) end)
        end)

        it("raises once the object is closed", function()
            fp:close()
            local ok, err = pcall(fp.compute, fp, "1.2.3.4")
            assert.is_false(ok)
            assert.matches("fingerprint is closed", err, 1, true)
        end)
    end)

    describe("key", function()
        it("returns the reference's rate-limit key", function()
            assert.equal("rl:b292482bc73b767f", fp:key("127.0.0.1", "x"))
            assert.equal("rl:de4b526256256535", fp:key("127.0.0.1", WRK_UA, WRK_LANG, nil))
        end)
    end)

    describe("close", function()
        it("may be called twice", function()
            fp:close()
            fp:close()
            assert.equal("luahost.fingerprint (closed)", tostring(fp))
        end)
    end)

    describe("host", function()
        it("returns nil, err outside a server", function()
            local f, err = fingerprint.host()
            assert.is_nil(f)
            assert.equal("no host fingerprint", err)
        end)

        it("wraps the server's fingerprint and never frees it", function()
            local lib = ffi.load(assert(package.searchpath("luahost", package.cpath)))
            local obj = lib.lh_fingerprint_new(SECRET, #SECRET, nil)
            assert.is_not_nil(obj)
            local host = host_objects.new({ fingerprint = obj })
            local result = host_objects.run(host, [[
                local fingerprint = require "luahost.fingerprint"
                local a = fingerprint.host()
                local r = tostring(a) .. " " .. a:key("127.0.0.1", "x")
                a:close() -- detaches only
                fingerprint.host():compute() -- dropped; collected with the state
                collectgarbage()
                return r .. " " .. fingerprint.host():compute("127.0.0.1", "x")
            ]])
            assert.equal("luahost.fingerprint (open, host) rl:b292482bc73b767f b292482bc73b767f",
                result)
            -- Still alive after every wrapper was closed and collected.
            local out = ffi.new("char[17]")
            assert.equal(0, lib.lh_fingerprint_compute(obj, "127.0.0.1", "x", nil, nil, out))
            assert.equal("b292482bc73b767f", ffi.string(out))
            lib.lh_fingerprint_free(obj)
        end)
    end)

    describe("hmac_sha256", function()
        it("matches RFC 4231 test case 1", function()
            assert.equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                fingerprint.hmac_sha256(("\11"):rep(20), "Hi There"))
        end)

        it("matches RFC 4231 test case 2", function()
            assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                fingerprint.hmac_sha256("Jefe", "what do ya want for nothing?"))
        end)

        it("matches RFC 4231 test case 6 (a key longer than a block)", function()
            assert.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                fingerprint.hmac_sha256(("\170"):rep(131),
                    "Test Using Larger Than Block-Size Key - Hash Key First"))
        end)

        it("accepts an empty key and message, and bytes with NUL", function()
            assert.equal("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
                fingerprint.hmac_sha256("", ""))
            assert.are_not.equal(fingerprint.hmac_sha256("k", "a\0b"), fingerprint.hmac_sha256("k", "a"))
        end)

        it("raises for a missing argument", function()
            assert.has_error(function() fingerprint.hmac_sha256("key") end)
            assert.has_error(function() fingerprint.hmac_sha256(nil, "msg") end)
        end)
    end)

    describe("check_secret", function()
        it("returns nil, why when the secret is not set", function()
            local ok, why = fingerprint.check_secret(nil)
            assert.is_nil(ok)
            assert.equal("FINGERPRINT_SECRET is not set", why)
        end)

        it("returns nil, why for a secret under 32 bytes", function()
            local ok, why = fingerprint.check_secret(("a"):rep(31))
            assert.is_nil(ok)
            assert.matches("at least 32 bytes", why, 1, true)
        end)

        it("returns nil, why for the reference's default", function()
            local ok, why = fingerprint.check_secret("change-me-in-production")
            assert.is_nil(ok)
            assert.matches("reference's default", why, 1, true)
        end)

        it("returns nil, why for a placeholder of few different characters", function()
            local ok, why = fingerprint.check_secret(("a"):rep(40))
            assert.is_nil(ok)
            assert.matches("fewer than 8 different characters", why, 1, true)
        end)

        it("returns true for a random 32-byte secret", function()
            assert.is_true(fingerprint.check_secret(("abcdefgh"):rep(4)))
            assert.is_true(fingerprint.check_secret(fingerprint.random_hex(32)))
        end)
    end)

    describe("random_hex", function()
        it("returns 2 lowercase hex characters per byte", function()
            local h = fingerprint.random_hex(16)
            assert.equal(32, #h)
            assert.matches("^[0-9a-f]+$", h)
            assert.equal(2, #fingerprint.random_hex(1))
            assert.equal(2048, #fingerprint.random_hex(1024))
        end)

        it("returns a different value each time", function()
            assert.are_not.equal(fingerprint.random_hex(16), fingerprint.random_hex(16))
        end)

        it("raises for a count outside 1..1024", function()
            local ok, err = pcall(fingerprint.random_hex, 0)
            assert.is_false(ok)
            assert.matches("must be 1..1024", err, 1, true)
            assert.has_error(function() fingerprint.random_hex(1025) end)
            assert.has_error(function() fingerprint.random_hex("many") end)
        end)
    end)
end)
