-- lua/policy/headers.lua and lua/policy/csp.lua: the shipped header and CSP
-- policies compile through luahost.headers and say what OWASP recommends.
local headers = require "luahost.headers"

local H = dofile("lua/policy/headers.lua")
local C = dofile("lua/policy/csp.lua")

-- Compiles header policy name with CSP policy name, as the server does.
local function compile(name)
    return headers.compile {
        headers = H[name].headers,
        hsts = H[name].hsts,
        csp = C[name],
        report_uri = C.report_uri,
    }
end

local function find(list, name)
    for _, pair in ipairs(list) do
        if pair[1] == name then
            return pair[2]
        end
    end
end

-- Walks t and calls fn(value, path) for every value that is not a table.
local function walk(t, path, fn)
    for k, v in pairs(t) do
        local p = path .. "." .. tostring(k)
        if type(v) == "table" then
            walk(v, p, fn)
        else
            fn(v, p)
        end
    end
end

describe("policy.headers and policy.csp", function()
    it("are data only: strings and tables, no functions", function()
        local function check(v, path)
            assert(type(v) == "string", path .. " is a " .. type(v))
        end
        walk(H, "headers", check)
        walk(C, "csp", check)
    end)

    for _, name in ipairs { "default", "svg", "svg_private" } do
        describe(name, function()
            local set, err = compile(name)

            it("compiles", function()
                assert.is_nil(err)
                assert.is_userdata(set)
                assert.is_true(set:uses_nonce() == (name == "default"))
            end)

            it("sends X-XSS-Protection: 0 (the reference's 1; mode=block is obsolete)", function()
                local list = set:emit(headers.nonce(), true)
                assert.equal("0", find(list, "X-XSS-Protection"))
            end)

            it("sends OWASP's recommended headers", function()
                local list = set:emit(headers.nonce(), false)
                assert.equal("nosniff", find(list, "X-Content-Type-Options"))
                assert.equal("DENY", find(list, "X-Frame-Options"))
                assert.equal("strict-origin-when-cross-origin", find(list, "Referrer-Policy"))
                assert.equal("accelerometer=(), camera=(), geolocation=(), gyroscope=(), "
                    .. "magnetometer=(), microphone=(), payment=(), usb=()",
                    find(list, "Permissions-Policy"))
                assert.equal("same-origin", find(list, "Cross-Origin-Opener-Policy"))
                assert.equal("require-corp", find(list, "Cross-Origin-Embedder-Policy"))
                assert.equal("same-origin", find(list, "Cross-Origin-Resource-Policy"))
            end)

            it("sends HSTS on HTTPS only, last, without preload", function()
                assert.is_nil(find(set:emit(headers.nonce(), false), "Strict-Transport-Security"))
                local list = set:emit(headers.nonce(), true)
                assert.equal("Strict-Transport-Security", list[#list][1])
                assert.equal("max-age=31536000; includeSubDomains", list[#list][2])
            end)

            it("sends a CSP with report-uri and no third-party host", function()
                local csp = find(set:emit(headers.nonce(), true), "Content-Security-Policy")
                assert.is_string(csp)
                assert.matches("; report%-uri /csp%-report$", csp)
                for directive in csp:gmatch("[^;]+") do
                    local sources = directive:match("^%s*[a-z-]+%s*(.*)$")
                    for src in sources:gmatch("%S+") do
                        -- a quoted keyword, the data: scheme, or our own path
                        if not (src:match("^'.*'$") or src == "data:" or src:match("^/")) then
                            error("third-party source " .. src .. " in " .. directive)
                        end
                    end
                end
                assert.is_nil(csp:find("http", 1, true))
                assert.is_nil(csp:find("unsafe-eval", 1, true))
            end)
        end)
    end

    it("default's CSP allows our scripts and styles with the response's nonce", function()
        local nonce = headers.nonce()
        local csp = find(compile("default"):emit(nonce), "Content-Security-Policy")
        assert.matches("script-src 'self' 'nonce-", csp, 1, true)
        assert.matches("script-src 'self' 'nonce-" .. nonce .. "'", csp, 1, true)
        assert.matches("style-src 'self' 'nonce-" .. nonce .. "'", csp, 1, true)
        assert.matches("^default%-src 'self'; ", csp)
        assert.matches("object-src 'none'", csp, 1, true)
        assert.matches("frame-ancestors 'none'", csp, 1, true)
        assert.matches("base-uri 'self'", csp, 1, true)
        assert.matches("upgrade-insecure-requests", csp, 1, true)
        assert.is_nil(csp:find("unsafe-inline", 1, true))
    end)

    for name, caching in pairs { svg = "public, max-age=300", svg_private = "private, no-store" } do
        it(name .. "'s CSP starts with default-src 'none' and runs no script", function()
            local csp = find(compile(name):emit(), "Content-Security-Policy")
            assert.equal("default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; "
                .. "report-uri /csp-report", csp)
            assert.is_nil(csp:find("script-src", 1, true))
        end)

        it(name .. " sends every default header, in the same order, plus Cache-Control", function()
            local n = #H.default.headers
            assert.equal(n + 1, #H[name].headers)
            for i = 1, n do
                assert.same(H.default.headers[i], H[name].headers[i])
            end
            assert.same({ "Cache-Control", caching }, H[name].headers[n + 1])
            assert.equal(H.default.hsts, H[name].hsts)
        end)
    end
end)
