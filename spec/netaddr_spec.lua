-- luahost.netaddr (C binding): netaddr.cidr_set, set:contains, set:count, set:close,
-- netaddr.client_ip and netaddr.host_trusted.
local netaddr = require "luahost.netaddr"
local ffi = require "ffi"
local host_objects = require "support.host"

-- A real lh_cidr_set made through the FFI, for a state's host objects.
ffi.cdef [[
struct lh_cidr_set;
struct lh_cidr_set *lh_cidr_set_new(void);
void lh_cidr_set_free(struct lh_cidr_set *s);
int lh_cidr_set_add_list(struct lh_cidr_set *s, const char *list, char *err, size_t errlen);
int lh_cidr_set_contains(const struct lh_cidr_set *s, const char *ip);
]]


describe("luahost.netaddr", function()
    describe("cidr_set", function()
        it("builds a set from a list separated by commas and blanks", function()
            local s = assert(netaddr.cidr_set("127.0.0.1, 10.0.0.0/8 ::1\t2001:db8::/32"))
            assert.equal(4, s:count())
            assert.equal("luahost.netaddr.set (4 entries)", tostring(s))
            s:close()
        end)

        it("builds a set from a table of entries", function()
            local s = assert(netaddr.cidr_set({ "127.0.0.1", "10.0.0.0/8, 192.168.0.0/16" }))
            assert.equal(3, s:count())
            assert.is_true(s:contains("192.168.4.4"))
        end)

        it("accepts an empty list", function()
            assert.equal(0, assert(netaddr.cidr_set("")):count())
            assert.equal(0, assert(netaddr.cidr_set({})):count())
        end)

        it("returns nil, err naming the bad entry", function()
            for _, bad in ipairs({ "1.2.3.4/33", "/8", "1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/08x", "junk" }) do
                local s, err = netaddr.cidr_set("10.0.0.0/8, " .. bad)
                assert.is_nil(s)
                assert.matches("'" .. bad .. "'", err, 1, true)
            end
            local s, err = netaddr.cidr_set({ "10.0.0.0/8", "::1/129" })
            assert.is_nil(s)
            assert.matches("'::1/129'", err, 1, true)
        end)

        it("raises for a list that is neither a string nor a table of strings", function()
            assert.has_error(function() netaddr.cidr_set() end)
            assert.has_error(function() netaddr.cidr_set(true) end)
            assert.has_error(function() netaddr.cidr_set({ "10.0.0.0/8", 8 }) end)
        end)
    end)

    describe("contains", function()
        local s

        before_each(function()
            s = assert(netaddr.cidr_set("127.0.0.1, 10.0.0.0/8, 2001:db8::/32"))
        end)

        it("matches addresses inside an entry's prefix", function()
            assert.is_true(s:contains("127.0.0.1"))
            assert.is_true(s:contains("10.200.3.4"))
            assert.is_true(s:contains("2001:db8:1::1"))
        end)

        it("does not match addresses outside every prefix", function()
            assert.is_false(s:contains("127.0.0.2"))
            assert.is_false(s:contains("11.0.0.1"))
            assert.is_false(s:contains("2001:db9::1"))
        end)

        it("treats an IPv4-mapped IPv6 address as IPv4", function()
            assert.is_true(s:contains("::ffff:10.1.2.3"))
            assert.is_false(s:contains("::ffff:11.1.2.3"))
        end)

        it("returns false for text that is not an address", function()
            assert.is_false(s:contains("junk"))
            assert.is_false(s:contains("10.0.0.1/8"))
            assert.is_false(s:contains(""))
        end)

        it("raises for a non-string address", function()
            assert.has_error(function() s:contains() end)
            assert.has_error(function() s:contains({}) end)
        end)

        it("raises once the set is closed", function()
            s:close()
            s:close()
            local ok, err = pcall(s.contains, s, "127.0.0.1")
            assert.is_false(ok)
            assert.matches("set is closed", err, 1, true)
            assert.equal("luahost.netaddr.set (closed)", tostring(s))
        end)
    end)

    describe("client_ip", function()
        local trusted

        before_each(function()
            trusted = assert(netaddr.cidr_set("127.0.0.1, 10.0.0.0/8"))
        end)

        it("ignores X-Forwarded-For from an untrusted peer", function()
            assert.equal("203.0.113.9", netaddr.client_ip(trusted, "203.0.113.9", "1.2.3.4"))
        end)

        it("ignores the headers when there is no trusted set", function()
            assert.equal("127.0.0.1", netaddr.client_ip(nil, "127.0.0.1", "1.2.3.4", "for=1.2.3.4"))
        end)

        it("returns the rightmost untrusted hop behind trusted proxies", function()
            assert.equal("198.51.100.7",
                netaddr.client_ip(trusted, "127.0.0.1", "198.51.100.7, 10.0.0.2"))
        end)

        it("ignores a spoofed leftmost hop", function()
            assert.equal("198.51.100.7",
                netaddr.client_ip(trusted, "127.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.2"))
        end)

        it("returns the leftmost hop when every hop is trusted", function()
            assert.equal("10.0.0.5", netaddr.client_ip(trusted, "127.0.0.1", "10.0.0.5, 10.0.0.2"))
        end)

        it("stops at an entry that is not an address", function()
            assert.equal("10.0.0.2", netaddr.client_ip(trusted, "127.0.0.1", "junk, 10.0.0.2"))
        end)

        it("strips ports and brackets", function()
            assert.equal("2001:db8::5",
                netaddr.client_ip(trusted, "127.0.0.1", "[2001:db8::5]:8080, 10.0.0.2:443"))
            assert.equal("198.51.100.7", netaddr.client_ip(trusted, "127.0.0.1", "198.51.100.7:5555"))
        end)

        it("uses Forwarded for= when there is no X-Forwarded-For", function()
            assert.equal("192.0.2.60", netaddr.client_ip(trusted, "127.0.0.1", nil,
                "for=192.0.2.60;proto=http;by=203.0.113.43"))
            assert.equal("2001:db8:cafe::17", netaddr.client_ip(trusted, "127.0.0.1", nil,
                'for="[2001:db8:cafe::17]:4711"'))
        end)

        it("treats Forwarded's unknown and obfuscated nodes as the end of the walk", function()
            assert.equal("127.0.0.1", netaddr.client_ip(trusted, "127.0.0.1", nil,
                "for=198.51.100.7, for=unknown"))
            assert.equal("10.0.0.2", netaddr.client_ip(trusted, "127.0.0.1", nil,
                "for=_hidden, for=10.0.0.2"))
        end)

        it("returns the trusted peer when there are no proxy headers", function()
            assert.equal("127.0.0.1", netaddr.client_ip(trusted, "127.0.0.1"))
        end)

        it("works with an IPv6 trusted peer", function()
            local v6 = assert(netaddr.cidr_set("::1/128"))
            assert.equal("2001:db8::9", netaddr.client_ip(v6, "::1", "2001:db8::9"))
        end)

        it("writes addresses in normal form", function()
            assert.equal("203.0.113.9", netaddr.client_ip(nil, "::ffff:203.0.113.9"))
            assert.equal("2001:db8::1", netaddr.client_ip(trusted, "127.0.0.1", "2001:DB8:0:0::1"))
        end)

        it("returns nil, err when the peer is not an address", function()
            local ip, err = netaddr.client_ip(trusted, "junk", "1.2.3.4")
            assert.is_nil(ip)
            assert.equal("bad peer address", err)
        end)

        it("raises for a first argument that is not a set", function()
            assert.has_error(function() netaddr.client_ip({}, "127.0.0.1") end)
            assert.has_error(function() netaddr.client_ip(trusted) end)
        end)
    end)

    describe("host_trusted", function()
        it("returns nil outside a server", function()
            assert.is_nil(netaddr.host_trusted())
        end)

        it("wraps the server's set and never frees it", function()
            local lib = ffi.load(assert(package.searchpath("luahost", package.cpath)))
            local set = lib.lh_cidr_set_new()
            local err = ffi.new("char[128]")
            assert.equal(0, lib.lh_cidr_set_add_list(set, "127.0.0.1, 10.0.0.0/8", err, 128))
            local host = host_objects.new({ trusted_proxies = set })
            local result = host_objects.run(host, [[
                local netaddr = require "luahost.netaddr"
                local s = netaddr.host_trusted()
                local r = tostring(s) .. " " .. netaddr.client_ip(s, "127.0.0.1", "198.51.100.7")
                s:close() -- detaches only
                netaddr.host_trusted():count() -- dropped; collected with the state
                collectgarbage()
                return r .. " " .. tostring(netaddr.host_trusted():contains("10.1.1.1"))
            ]])
            assert.equal("luahost.netaddr.set (2 entries, host) 198.51.100.7 true", result)
            -- Still alive after every wrapper was closed and collected.
            assert.equal(1, lib.lh_cidr_set_contains(set, "10.9.9.9"))
            lib.lh_cidr_set_free(set)
        end)
    end)
end)
