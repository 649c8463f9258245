-- luahost.headers (C binding): headers.nonce, headers.csp, headers.compile and
-- the set's uses_nonce, emit and close; their errors.
local headers = require "luahost.headers"

local NONCE = "AAECAwQFBgcICQoLDA0ODw"

-- The value of header name in an emit() result, and how often it appears.
local function find(list, name)
    local value, count = nil, 0
    for _, pair in ipairs(list) do
        if pair[1] == name then
            value, count = pair[2], count + 1
        end
    end
    return value, count
end

local function names(list)
    local out = {}
    for i, pair in ipairs(list) do
        out[i] = pair[1]
    end
    return out
end

describe("luahost.headers", function()
    describe("nonce", function()
        it("returns 22 characters of base64url", function()
            for _ = 1, 100 do
                local n = headers.nonce()
                assert.equal(22, #n)
                assert.matches("^[A-Za-z0-9_-]+$", n)
            end
        end)

        it("returns a different nonce each call", function()
            local seen = {}
            for _ = 1, 1000 do
                local n = headers.nonce()
                assert.is_nil(seen[n])
                seen[n] = true
            end
        end)
    end)

    describe("csp", function()
        it("joins directives in order, with the nonce placeholder", function()
            local policy = headers.csp {
                { "default-src", { "'self'" } },
                { "script-src", { "'self'", "'nonce'" } },
                { "upgrade-insecure-requests", {} },
            }
            assert.equal("default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
                .. "upgrade-insecure-requests", policy)
        end)

        it("returns nil, err naming the directive for a bad source", function()
            local policy, err = headers.csp {
                { "default-src", { "'self'" } },
                { "script-src", { "'self'", "evil.org; img-src *" } },
            }
            assert.is_nil(policy)
            assert.matches("script-src: ';' in source", err, 1, true)
        end)

        it("returns nil, err for an unquoted keyword", function()
            local _, err = headers.csp { { "base-uri", { "self" } } }
            assert.matches([[base-uri: source "self" must be quoted: "'self'"]], err, 1, true)
        end)

        it("returns nil, err for a bad directive name", function()
            local _, err = headers.csp { { "Script-Src", { "'self'" } } }
            assert.matches('bad directive name "Script-Src"', err, 1, true)
        end)

        it("returns nil, err for a malformed table", function()
            local _, err = headers.csp { "default-src 'self'" }
            assert.matches("csp[1]: expected {name, {sources...}}", err, 1, true)
            _, err = headers.csp { { "default-src", "'self'" } }
            assert.matches("csp[1] (default-src): sources must be a table", err, 1, true)
            _, err = headers.csp { { "img-src", { "'self'", 42 } } }
            assert.matches("csp[1] (img-src): source 2 must be a string", err, 1, true)
            _, err = headers.csp { { 1, {} } }
            assert.matches("csp[1]: directive name must be a string", err, 1, true)
        end)

        it("returns nil, err for an empty table", function()
            local policy, err = headers.csp {}
            assert.is_nil(policy)
            assert.equal("no directives", err)
        end)

        it("returns nil, err when the policy is too long", function()
            local sources = {}
            for i = 1, 400 do
                sources[i] = "host" .. i .. ".example.org"
            end
            local policy, err = headers.csp { { "img-src", sources } }
            assert.is_nil(policy)
            assert.equal("policy too long", err)
        end)

        it("raises when directives is not a table", function()
            assert.has_error(function() headers.csp("default-src 'self'") end)
        end)
    end)

    describe("compile", function()
        it("returns a set emitting the headers in order", function()
            local set = assert(headers.compile {
                headers = {
                    { "X-Content-Type-Options", "nosniff" },
                    { "X-Frame-Options", "DENY" },
                    { "X-XSS-Protection", "0" },
                },
            })
            assert.equal("luahost.headers.set", tostring(set):match("^[%w.]+"))
            assert.is_false(set:uses_nonce())
            assert.same({
                { "X-Content-Type-Options", "nosniff" },
                { "X-Frame-Options", "DENY" },
                { "X-XSS-Protection", "0" },
            }, set:emit())
        end)

        it("adds the CSP last and replaces {nonce} by the nonce given", function()
            local set = assert(headers.compile {
                headers = { { "X-Frame-Options", "DENY" } },
                csp = {
                    { "default-src", { "'self'" } },
                    { "script-src", { "'self'", "'nonce'" } },
                    { "style-src", { "'self'", "'nonce'" } },
                },
            })
            assert.is_true(set:uses_nonce())
            local list = set:emit(NONCE)
            assert.same({ "X-Frame-Options", "Content-Security-Policy" }, names(list))
            assert.equal("default-src 'self'; script-src 'self' 'nonce-" .. NONCE .. "'; "
                .. "style-src 'self' 'nonce-" .. NONCE .. "'", list[2][2])
        end)

        it("emits a fresh nonce with a fresh call", function()
            local set = assert(headers.compile { csp = { { "script-src", { "'nonce'" } } } })
            local a, b = headers.nonce(), headers.nonce()
            assert.equal("script-src 'nonce-" .. a .. "'", set:emit(a)[1][2])
            assert.equal("script-src 'nonce-" .. b .. "'", set:emit(b)[1][2])
        end)

        it("appends report-uri and uses the report-only header when asked", function()
            local set = assert(headers.compile {
                csp = { { "default-src", { "'none'" } } },
                csp_report_only = true,
                report_uri = "/csp-report",
            })
            local list = set:emit()
            local value, count = find(list, "Content-Security-Policy-Report-Only")
            assert.equal("default-src 'none'; report-uri /csp-report", value)
            assert.equal(1, count)
            assert.is_nil(find(list, "Content-Security-Policy"))
        end)

        it("sends HSTS only on HTTPS, and last", function()
            local set = assert(headers.compile {
                headers = { { "X-Frame-Options", "DENY" }, { "X-Content-Type-Options", "nosniff" } },
                hsts = "max-age=31536000; includeSubDomains",
            })
            assert.is_nil(find(set:emit(nil, false), "Strict-Transport-Security"))
            assert.is_nil(find(set:emit(), "Strict-Transport-Security"))
            local list = set:emit(nil, true)
            assert.same({ "X-Frame-Options", "X-Content-Type-Options", "Strict-Transport-Security" },
                names(list))
            assert.equal("max-age=31536000; includeSubDomains", list[3][2])
        end)

        it("keeps one header per name, the last value in the first place", function()
            local set = assert(headers.compile {
                headers = {
                    { "X-Frame-Options", "DENY" },
                    { "Referrer-Policy", "no-referrer" },
                    { "x-frame-options", "SAMEORIGIN" },
                },
            })
            assert.same({ { "x-frame-options", "SAMEORIGIN" }, { "Referrer-Policy", "no-referrer" } },
                set:emit())
        end)

        it("returns an empty list for an empty policy", function()
            local set = assert(headers.compile {})
            assert.same({}, set:emit(nil, true))
        end)

        it("returns nil, err saying where the policy is wrong", function()
            local cases = {
                { { headers = { { "X Frame", "DENY" } } }, 'headers[1]: bad header name "X Frame"' },
                { { headers = { { "X-A", "ok" }, { "X-B", "a\r\nSet-Cookie: x=1" } } },
                    "headers[2]: X-B: control character in value" },
                { { headers = { { "X-A", "" } } }, "headers[1]: X-A: empty value" },
                { { headers = { { "X-A", 1 } } }, "headers[1]: name and value must be strings" },
                { { headers = { "X-A: b" } }, "headers[1]: expected {name, value}" },
                { { headers = "X-A: b" }, "headers: expected an array of {name, value} pairs" },
                { { headers = { { "Strict-Transport-Security", "max-age=1" } } },
                    "set it as hsts" },
                { { hsts = "max-age=1\n" }, "hsts: Strict-Transport-Security: control character" },
                { { hsts = 1 }, "hsts: expected a string" },
                { { csp = { { "script-src", { "self" } } } }, "csp: script-src: source \"self\" must be quoted" },
                { { csp = { { "script-src", "'self'" } } }, "csp[1] (script-src): sources must be a table" },
                { { csp = "default-src 'self'" }, "csp: expected an array" },
                { { csp = {} }, "csp: no directives" },
                { { csp = { { "default-src", { "'self'" } } }, report_uri = "/a b" },
                    "csp: report-uri: whitespace in source" },
                { { csp = { { "report-uri", { "/a" } } }, report_uri = "/b" },
                    "csp: report-uri: repeated directive" },
                { { report_uri = "/csp-report" }, "report_uri: needs a csp" },
                { { csp = { { "default-src", { "'self'" } } }, report_uri = true },
                    "report_uri: expected a string" },
            }
            for _, case in ipairs(cases) do
                local set, err = headers.compile(case[1])
                assert.is_nil(set)
                assert.is_string(err)
                if not err:find(case[2], 1, true) then
                    error(("expected %q in %q"):format(case[2], err))
                end
            end
        end)

        it("raises when the policy is not a table", function()
            assert.has_error(function() headers.compile("DENY") end)
        end)
    end)

    describe("set:emit", function()
        local set

        before_each(function()
            set = assert(headers.compile { headers = { { "X-Nonce", "n={nonce}" } } })
        end)

        it("raises for a nonce that is not 22 base64url characters", function()
            assert.has_error(function() set:emit("short") end)
            assert.has_error(function() set:emit(NONCE .. "\r\nX-Injected: 1") end)
            assert.has_error(function() set:emit(NONCE:sub(1, 21) .. "=") end)
        end)

        it("raises without a nonce when the set uses one", function()
            local ok, err = pcall(set.emit, set)
            assert.is_false(ok)
            assert.matches("nonce expected", err, 1, true)
            assert.same({ { "X-Nonce", "n=" .. NONCE } }, set:emit(NONCE))
        end)
    end)

    describe("set:close", function()
        it("closes the set; later calls raise, closing twice is fine", function()
            local set = assert(headers.compile { headers = { { "X-A", "b" } } })
            set:close()
            set:close()
            assert.has_error(function() set:emit() end)
            assert.has_error(function() set:uses_nonce() end)
            assert.matches("closed", tostring(set), 1, true)
        end)
    end)
end)
