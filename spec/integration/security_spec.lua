-- The security features over real HTTP, with the in-process limiter (no
-- Redis; spec/integration/security_redis_spec.lua has the Redis ones):
-- security headers and CSP nonces, the CSP report endpoint, exact rate-limit
-- semantics and headers, the per-address ceiling against User-Agent rotation,
-- X-Forwarded-For / X-Forwarded-Proto from untrusted and trusted peers, the
-- per-network ceiling of IPv6 clients, bot detection and its hold, policy
-- reload, and the FINGERPRINT_SECRET rules.
--
-- The server runs spec/integration/secure/app with its sibling policy
-- directory spec/integration/secure/policy (default 5 per minute per
-- fingerprint, 20 per minute per address, the shipped bot threshold of 50
-- requests in 10 s and the shipped headers and CSP).
local S = require "integration.support.server"
local G = require "integration.support.gallery"
local cjson = require "cjson"
local stdlib = require "posix.stdlib"

local APP = "spec/integration/secure/app"
local POLICY = "spec/integration/secure/policy"
local SECRET = "spec-secret-0123456789-abcdefghij-KLMNOP" -- 40 bytes
assert(#SECRET == 40)

-- Starts the secure app with the test FINGERPRINT_SECRET (opts as S.start).
local function start(opts)
    opts = opts or {}
    opts.app = opts.app or APP
    local env = { FINGERPRINT_SECRET = SECRET }
    for k, v in pairs(opts.env or {}) do
        env[k] = v
    end
    opts.env = env
    return S.start(opts)
end

-- A copy of the test policy directory in a temporary directory; edit(text)
-- may change limits.lua's text. headers.lua, csp.lua and bot.lua load the
-- originals (they find lua/policy relative to their own path).
local function policy_copy(edit)
    local dir = S.tmpdir()
    local src = assert(stdlib.realpath(POLICY))
    for _, name in ipairs({ "bot", "csp", "headers" }) do
        S.write_file(dir .. "/" .. name .. ".lua",
            ("return dofile(%q)\n"):format(src .. "/" .. name .. ".lua"))
    end
    local limits = assert(S.read_file(src .. "/limits.lua"))
    S.write_file(dir .. "/limits.lua", edit and edit(limits) or limits)
    return dir
end

-- Replaces the value of `field = "..."` in a limits.lua text.
local function set_limit(text, field, value)
    local out, n = text:gsub(field .. ' = "[^"]*"', field .. ' = "' .. value .. '"', 1)
    assert(n == 1, "limits.lua has no " .. field)
    return out
end

-- A policy_copy whose bot.lua is the shipped one with the given settings
-- (bot.lua text such as "bot.window = 2").
local function with_bot(policy, settings)
    local src = assert(stdlib.realpath(POLICY))
    S.write_file(policy .. "/bot.lua", ("local bot = dofile(%q)\n%s\nreturn bot\n"):format(
        src .. "/bot.lua", settings))
    return policy
end

local fresh_window, fresh_ua = S.fresh_window, S.fresh_ua

-- One request on a keep-alive client; the response (raises if none).
local function get(c, path, headers)
    local res, err = c:request("GET", path, headers)
    assert(res, "no response to GET " .. path .. ": " .. tostring(err))
    return res
end

local function nonce_of(res)
    local csp = res.headers["Content-Security-Policy"]
    return csp and csp:match("'nonce%-([^']*)'")
end

local DEFAULT_HEADERS = {
    ["X-Content-Type-Options"] = "nosniff",
    ["X-Frame-Options"] = "DENY",
    ["X-XSS-Protection"] = "0",
    ["Referrer-Policy"] = "strict-origin-when-cross-origin",
    ["Permissions-Policy"] = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), "
        .. "magnetometer=(), microphone=(), payment=(), usb=()",
    ["Cross-Origin-Opener-Policy"] = "same-origin",
    ["Cross-Origin-Embedder-Policy"] = "require-corp",
    ["Cross-Origin-Resource-Policy"] = "same-origin",
}

local function assert_security_headers(res, what)
    for name, value in pairs(DEFAULT_HEADERS) do
        assert.are.equal(value, res.headers[name], what .. ": " .. name)
        assert.are.equal(1, #S.header_values(res, name), what .. ": one " .. name)
    end
    local csp = res.headers["Content-Security-Policy"]
    assert.is_truthy(csp, what .. ": no Content-Security-Policy")
    assert.is_truthy(csp:find("^default%-src 'self'; script%-src 'self' 'nonce%-"), what .. ": " .. csp)
    assert.is_truthy(csp:find("frame-ancestors 'none'", 1, true), what .. ": " .. csp)
    assert.is_truthy(csp:find("report-uri /csp-report", 1, true), what .. ": " .. csp)
    local nonce = nonce_of(res)
    assert.is_truthy(nonce and nonce:match("^[A-Za-z0-9_%-]+$") and #nonce == 22,
        what .. ": bad nonce in " .. csp)
    -- The same nonce for scripts and styles.
    for n in csp:gmatch("'nonce%-([^']*)'") do
        assert.are.equal(nonce, n, what .. ": two nonces in " .. csp)
    end
    assert.is_nil(res.headers["Strict-Transport-Security"], what .. ": HSTS over plain HTTP")
end

local TOO_MANY = "Too many requests"
local BOT = "Too many requests - bot behavior detected"

-- The 429's JSON body, checked against the exact shape and Retry-After.
local function assert_429(res, message, what)
    assert.are.equal(429, res.status, what .. ": " .. res.body)
    assert.are.equal("application/json", res.headers["Content-Type"])
    local ra = tonumber(res.headers["Retry-After"])
    assert.is_truthy(ra and ra > 0, what .. ": Retry-After " .. tostring(res.headers["Retry-After"]))
    assert.are.same({ success = false, error = message, retry_after = ra }, cjson.decode(res.body),
        what .. ": body " .. res.body)
    return ra
end

describe("security headers #integration", function()
    local srv

    before_each(function()
        srv = start()
    end)

    after_each(function()
        S.stop_all()
    end)

    it("sends the OWASP headers and a CSP with a nonce on 200 and 404 answers, no HSTS over HTTP", function()
        local res = assert(srv:request("GET", "/hello", { ["User-Agent"] = fresh_ua("headers") }))
        assert.are.equal(200, res.status)
        assert_security_headers(res, "GET /hello")
        res = assert(srv:request("GET", "/health"))
        assert_security_headers(res, "GET /health (exempt from limits)")
        res = assert(srv:request("GET", "/no/such/path"))
        assert.are.equal(404, res.status)
        assert_security_headers(res, "404")
    end)

    it("sends the default headers on the server's own error answers too (500, 413, 431)", function()
        -- lua/policy/headers.lua: the `default` policy is for "every response".
        S.stop_all()
        srv = start({ args = { "--max-body-bytes", "1k", "--max-header-bytes", "2k" } })
        local res = assert(srv:request("GET", "/boom"))
        assert.are.equal(500, res.status)
        local answers = { ["500 (a handler raised)"] = res }
        res = assert(srv:request("POST", "/csp-report", { ["Content-Type"] = "application/json" },
            ("x"):rep(4096)))
        assert.are.equal(413, res.status)
        answers["413 (body over max_body_bytes)"] = res
        res = assert(srv:request("GET", "/hello", { ["X-Big"] = ("a"):rep(2500) }))
        assert.are.equal(431, res.status)
        answers["431 (headers over max_header_bytes)"] = res
        local missing = {}
        for what, r in pairs(answers) do
            for name in pairs(DEFAULT_HEADERS) do
                if r.headers[name] == nil then
                    missing[#missing + 1] = what .. ": " .. name
                end
            end
            if r.headers["Content-Security-Policy"] == nil then
                missing[#missing + 1] = what .. ": Content-Security-Policy"
            end
        end
        table.sort(missing)
        assert.are.same({}, missing)
    end)

    it("sends the svg policy's CSP for res.security = \"svg\" and for a route mapped to it", function()
        for _, path in ipairs({ "/svg", "/svg-route" }) do
            local res = assert(srv:request("GET", path))
            assert.are.equal(200, res.status)
            local csp = res.headers["Content-Security-Policy"]
            assert.is_truthy(csp, path)
            assert.is_truthy(csp:find("^default%-src 'none'"), path .. ": " .. csp)
            assert.is_truthy(csp:find("style-src 'unsafe-inline'", 1, true), csp)
            assert.is_nil(csp:find("script-src", 1, true), csp)
            assert.are.equal("public, max-age=300", res.headers["Cache-Control"], path)
            assert.are.equal("nosniff", res.headers["X-Content-Type-Options"], path)
            assert.are.equal("DENY", res.headers["X-Frame-Options"], path)
            assert.are.equal(1, #S.header_values(res, "Content-Security-Policy"), path)
        end
    end)

    it("gives a handler reading req.csp_nonce the nonce of the response's header", function()
        local seen = {}
        for i = 1, 5 do
            local res = assert(srv:request("GET", "/nonce"))
            assert.are.equal(200, res.status)
            local body = cjson.decode(res.body)
            assert.are.equal(22, #body.nonce)
            assert.are.equal(body.nonce, nonce_of(res), "request " .. i)
            assert.is_nil(seen[body.nonce], "nonce repeated")
            seen[body.nonce] = true
        end
    end)

    it("sends 1,000 distinct 22-character base64url nonces over keep-alive connections", function()
        local clients = {}
        for i = 1, 4 do
            clients[i] = assert(srv:client())
        end
        finally(function()
            for _, c in ipairs(clients) do
                c:close()
            end
        end)
        local seen, n = {}, 0
        for i = 1, 1000 do
            local res = get(clients[i % 4 + 1], "/health")
            assert.are.equal(200, res.status)
            local nonce = nonce_of(res)
            assert.is_truthy(nonce, "no nonce in answer " .. i)
            assert.is_truthy(#nonce == 22 and nonce:match("^[A-Za-z0-9_%-]+$"), "bad nonce " .. nonce)
            if not seen[nonce] then
                n = n + 1
            end
            seen[nonce] = true
        end
        assert.are.equal(1000, n)
    end)

    it("takes CSP reports on POST /csp-report: 204 and a log line; 413 past 8 KiB; 400 for junk", function()
        local ua = fresh_ua("csp")
        local report = cjson.encode({
            ["csp-report"] = {
                ["document-uri"] = "http://127.0.0.1/gallery",
                ["violated-directive"] = "script-src-elem",
                ["blocked-uri"] = "https://evil.example/x.js",
            },
        })
        local res = assert(srv:request("POST", "/csp-report",
            { ["Content-Type"] = "application/csp-report", ["User-Agent"] = ua }, report))
        assert.are.equal(204, res.status)
        assert.are.equal("", res.body)
        local line = srv:error_log("CSP violation", 5, true)
        assert.is_truthy(line, "no CSP violation line:\n" .. srv:error_log())
        assert.is_truthy(line:find('security: CSP violation: "script-src-elem" blocked '
            .. '"https://evil.example/x.js" on "http://127.0.0.1/gallery"', 1, true), line)

        -- The Reporting API's format is taken too.
        local modern = cjson.encode({ {
            type = "csp-violation",
            body = { documentURL = "http://127.0.0.1/modern", effectiveDirective = "style-src",
                blockedURL = "inline" },
        } })
        res = assert(srv:request("POST", "/csp-report",
            { ["Content-Type"] = "application/reports+json", ["User-Agent"] = ua }, modern))
        assert.are.equal(204, res.status)
        assert.is_truthy(srv:error_log('blocked "inline" on "http://127.0.0.1/modern"', 5, true),
            srv:error_log())

        local big = cjson.encode({ ["csp-report"] = { ["document-uri"] = ("x"):rep(20 * 1024) } })
        res = assert(srv:request("POST", "/csp-report",
            { ["Content-Type"] = "application/csp-report", ["User-Agent"] = ua }, big))
        assert.are.equal(413, res.status, res.body)

        res = assert(srv:request("POST", "/csp-report",
            { ["Content-Type"] = "application/csp-report", ["User-Agent"] = ua }, "}{ not json"))
        assert.are.equal(400, res.status, res.body)
        res = assert(srv:request("POST", "/csp-report",
            { ["Content-Type"] = "application/json", ["User-Agent"] = fresh_ua("csp") }, '{"a":1}'))
        assert.are.equal(400, res.status, res.body)
        for _, junk in ipairs({ "[5]", "[true]", "[null]", '["x"]', '{"csp-report":3}', "7",
            '{"csp-report":[1,2]}', '{"csp-report":{}}', '{"csp-report":{"blocked-uri":5}}' }) do
            res = assert(srv:request("POST", "/csp-report",
                { ["Content-Type"] = "application/csp-report", ["User-Agent"] = fresh_ua("csp") }, junk))
            assert.are.equal(400, res.status, junk .. ": " .. res.body)
        end
        assert.is_true(srv:running())
    end)

    it("keeps a budget of security-log lines for CSP reports apart from the bot lines", function()
        local policy = with_bot(policy_copy(), "bot.log_per_minute = 3")
        local srv = start({ args = { "--policy-dir", policy, "--workers", "1" } })
        fresh_window(60, 5)
        for i = 1, 10 do
            local report = cjson.encode({ ["csp-report"] = { ["document-uri"] = "http://x/" .. i,
                ["violated-directive"] = "script-src", ["blocked-uri"] = "inline" } })
            local res = assert(srv:request("POST", "/csp-report",
                { ["Content-Type"] = "application/csp-report", ["User-Agent"] = fresh_ua("flood") }, report))
            assert.are.equal(204, res.status, res.body)
        end
        local res = assert(srv:request("GET", "/counted", { ["User-Agent"] = "sqlmap/1.7" }))
        assert.are.equal(200, res.status, res.body)
        assert.is_truthy(srv:error_log("security: User-Agent contains sqlmap", 5, true), srv:error_log())
        assert.are.equal(3, S.count(srv:error_log(), "CSP violation"))
    end)

    -- A report is the client's text: it must not end its log line or forge
    -- the next one (a newline, a terminal escape).
    it("logs a CSP report's newlines, escapes and quotes escaped, on its own line", function()
        local forged = "2026-01-01T00:00:00.000Z [error] forged line"
        local report = cjson.encode({
            ["csp-report"] = {
                ["document-uri"] = "http://127.0.0.1/x\n" .. forged .. "\226\128\168",
                ["violated-directive"] = "script-src\27[2J",
                ["blocked-uri"] = 'say "hi" \\ bye',
            },
        })
        local res = assert(srv:request("POST", "/csp-report",
            { ["Content-Type"] = "application/csp-report", ["User-Agent"] = fresh_ua("forge") }, report))
        assert.are.equal(204, res.status)
        local line = srv:error_log('blocked "say', 5, true)
        assert.is_truthy(line, srv:error_log())
        assert.is_truthy(line:find('"script-src\\x1b[2J" blocked "say \\"hi\\" \\\\ bye" on '
            .. '"http://127.0.0.1/x\\x0a' .. forged .. '\\xe2\\x80\\xa8"', 1, true), line)
        for l in srv:error_log():gmatch("[^\n]+") do
            assert.are_not.equal(forged, l:sub(1, #forged), "a forged line was written: " .. l)
            assert.is_falsy(l:find("\27", 1, true), "a raw escape was written: " .. l)
        end
    end)
end)

describe("rate limits #integration", function()
    after_each(function()
        S.stop_all()
    end)

    it("allows 5 a minute, then answers 429 with the exact body, Retry-After and counting headers", function()
        local srv = start()
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        local ua = fresh_ua("exact")
        fresh_window(60, 4)
        for i = 1, 5 do
            local before = os.time()
            local res = get(c, "/hello", { ["User-Agent"] = ua })
            assert.are.equal(200, res.status, "request " .. i .. ": " .. res.body)
            assert.are.equal("5", res.headers["X-RateLimit-Limit"], "request " .. i)
            assert.are.equal(tostring(5 - i), res.headers["X-RateLimit-Remaining"], "request " .. i)
            local reset = tonumber(res.headers["X-RateLimit-Reset"])
            assert.is_truthy(reset and reset > before and reset <= os.time() + 60,
                "X-RateLimit-Reset " .. tostring(res.headers["X-RateLimit-Reset"]) .. " at " .. before)
            assert.are.equal('"w60";q=5;w=60', res.headers["RateLimit-Policy"], "request " .. i)
            local r, t = (res.headers["RateLimit"] or ""):match('^"w60";r=(%d+);t=(%d+)$')
            assert.is_truthy(r, "RateLimit: " .. tostring(res.headers["RateLimit"]))
            assert.are.equal(5 - i, tonumber(r))
            assert.is_truthy(tonumber(t) >= 1 and tonumber(t) <= 60, "t=" .. t)
            assert.is_nil(res.headers["Retry-After"])
        end
        local before = os.time()
        local res = get(c, "/hello", { ["User-Agent"] = ua })
        local ra = assert_429(res, TOO_MANY, "6th request")
        assert.is_truthy(ra <= 60, "Retry-After " .. ra)
        -- The window slides: once it is spent, Reset and t say when a request
        -- fits again, as Retry-After does, not when the fixed window ends.
        assert.is_truthy(math.abs(before + ra - tonumber(res.headers["X-RateLimit-Reset"])) <= 1,
            ("Retry-After %d at %d, X-RateLimit-Reset %s"):format(ra, before, res.headers["X-RateLimit-Reset"]))
        assert.are.equal(('"w60";r=0;t=%d'):format(ra), res.headers["RateLimit"])
        assert.are.equal("5", res.headers["X-RateLimit-Limit"])
        assert.are.equal("0", res.headers["X-RateLimit-Remaining"])
        assert.is_truthy(res.headers["RateLimit-Policy"])
        assert.is_truthy(res.headers["RateLimit"])
        assert_security_headers(res, "429")
        assert_429(get(c, "/hello", { ["User-Agent"] = ua }), TOO_MANY, "7th request")

        -- The limit is per fingerprint: another User-Agent has its own 5.
        res = get(c, "/hello", { ["User-Agent"] = fresh_ua("exact-other") })
        assert.are.equal(200, res.status)
        assert.are.equal("4", res.headers["X-RateLimit-Remaining"])
    end)

    it("limits, counts and logs requests for unknown paths and methods like any other", function()
        local srv = start()
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        local ua = fresh_ua("prober")
        fresh_window(60, 4)
        local res = get(c, "/wp-admin/setup.php", { ["User-Agent"] = ua })
        assert.are.equal(404, res.status)
        assert.are.equal("4", res.headers["X-RateLimit-Remaining"])
        res = assert(c:request("DELETE", "/hello", { ["User-Agent"] = ua }))
        assert.are.equal(405, res.status)
        assert.are.equal("GET, HEAD, OPTIONS", res.headers["Allow"])
        assert.are.equal("3", res.headers["X-RateLimit-Remaining"])
        for _ = 1, 3 do
            assert.are.equal(200, get(c, "/hello", { ["User-Agent"] = ua }).status)
        end
        assert_429(get(c, "/no/such/path", { ["User-Agent"] = ua }), TOO_MANY, "unknown path")
        assert_429(assert(c:request("POST", "/hello", { ["User-Agent"] = ua })), TOO_MANY, "wrong method")

        res = get(c, "/.env", { ["User-Agent"] = "Nikto/2.5 " .. ua })
        assert.are.equal(404, res.status)
        assert.is_truthy(srv:error_log("security: User-Agent contains nikto", 5, true), srv:error_log())
    end)

    it("counts a route override on its own and does not limit an exempt route", function()
        local srv = start()
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        local ua = fresh_ua("override")
        fresh_window(60, 3)
        for i = 1, 2 do
            local res = get(c, "/strict", { ["User-Agent"] = ua })
            assert.are.equal(200, res.status)
            assert.are.equal("2", res.headers["X-RateLimit-Limit"])
            assert.are.equal(tostring(2 - i), res.headers["X-RateLimit-Remaining"])
        end
        assert_429(get(c, "/strict", { ["User-Agent"] = ua }), TOO_MANY, "3rd /strict")
        -- /strict's count is its own: the default bucket is untouched.
        local res = get(c, "/hello", { ["User-Agent"] = ua })
        assert.are.equal(200, res.status)
        assert.are.equal("5", res.headers["X-RateLimit-Limit"])
        assert.are.equal("4", res.headers["X-RateLimit-Remaining"])
        -- Exempt: no limit headers, never refused.
        for _ = 1, 30 do
            res = get(c, "/health", { ["User-Agent"] = ua })
            assert.are.equal(200, res.status)
            assert.is_nil(res.headers["X-RateLimit-Limit"])
            assert.is_nil(res.headers["RateLimit"])
        end
    end)

    it("does not limit a client address listed in exempt", function()
        local policy = policy_copy(function(text)
            local out, n = text:gsub("exempt = {}", 'exempt = { "10.0.0.0/8", "127.0.0.1/32" }')
            assert(n == 1)
            return out
        end)
        local srv = start({ args = { "--policy-dir", policy } })
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        local ua = fresh_ua("exempt")
        for i = 1, 30 do
            local res = get(c, "/hello", { ["User-Agent"] = ua })
            assert.are.equal(200, res.status, "request " .. i)
            assert.is_nil(res.headers["X-RateLimit-Limit"])
            assert.are.equal("nosniff", res.headers["X-Content-Type-Options"])
        end
    end)

    it("caps 200 User-Agents rotated from one address at the per-address limit (20)", function()
        local srv = start()
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        fresh_window(60, 5)
        local ok, refused = 0, 0
        for i = 1, 200 do
            local res = get(c, "/hello", { ["User-Agent"] = "Rotating/" .. i .. " (" .. S.now() .. ")" })
            if res.status == 200 then
                ok = ok + 1
            else
                assert_429(res, TOO_MANY, "request " .. i)
                refused = refused + 1
            end
        end
        assert.are.equal(20, ok)
        assert.are.equal(180, refused)
    end)

    it("leaves a \"per_ip\" route only the per-address limit (20), past default and bot counting", function()
        local srv = start()
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        fresh_window(60, 5)
        local ua = { ["User-Agent"] = fresh_ua("per-ip") }
        for i = 1, 20 do -- one fingerprint, four times its default of 5
            local res = get(c, "/per-ip", ua)
            assert.are.equal(200, res.status, "request " .. i)
            assert.are.equal("20", res.headers["X-RateLimit-Limit"])
        end
        assert_429(get(c, "/per-ip", ua), TOO_MANY, "21st")
        -- Not counted as bot behaviour: the fingerprint's default is untouched.
        local res = get(c, "/hello", { ["User-Agent"] = fresh_ua("per-ip-other") })
        assert_429(res, TOO_MANY, "the address's ceiling holds on other routes too")
        assert.is_falsy(srv:error_log():find("bot behavior", 1, true))
    end)

    it("describes the exhausted per-address limit in the headers of a 429 it caused", function()
        -- README: limited responses carry X-RateLimit-* and RateLimit-* "for the
        -- tightest limit". A fresh fingerprint refused because its address
        -- used up per_ip (20 a minute) has used 0 of its own 5.
        local srv = start()
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        fresh_window(60, 3)
        for i = 1, 20 do
            local res = get(c, "/hello", { ["User-Agent"] = fresh_ua("fill") })
            assert.are.equal(200, res.status, "request " .. i)
        end
        local res = get(c, "/hello", { ["User-Agent"] = fresh_ua("fresh") })
        assert_429(res, TOO_MANY, "21st address request")
        assert.are.same({
            limit = "20", remaining = "0", policy = '"w60";q=20;w=60',
        }, {
            limit = res.headers["X-RateLimit-Limit"], remaining = res.headers["X-RateLimit-Remaining"],
            policy = res.headers["RateLimit-Policy"],
        })
    end)

    it("ignores X-Forwarded-For and X-Forwarded-Proto from a peer that is not a trusted proxy", function()
        local srv = start()
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        fresh_window(60, 5)
        local ok, ids = 0, {}
        for i = 1, 40 do
            local res = get(c, "/whoami", {
                ["User-Agent"] = "spec-spoof", ["X-Forwarded-For"] = "198.51.100." .. i,
                ["X-Forwarded-Proto"] = "https",
            })
            ids[i] = assert(res.headers["X-Request-Id"], "answer without a request id")
            if res.status == 200 then
                ok = ok + 1
                local body = cjson.decode(res.body)
                assert.are.equal("127.0.0.1", body.client)
                assert.is_false(body.https)
            else
                assert_429(res, TOO_MANY, "spoofed request " .. i)
            end
            assert.is_nil(res.headers["Strict-Transport-Security"])
        end
        -- One per-address bucket for all of them.
        assert.are.equal(20, ok)
        local res = assert(srv:request("GET", "/health", { ["X-Forwarded-Proto"] = "https" }))
        assert.is_nil(res.headers["Strict-Transport-Security"])

        -- A request is logged once its answer is sent, so the lines may lag the answers.
        for _, id in ipairs(ids) do
            assert.is_truthy(srv:access_log(id, 5, true), srv:access_log())
        end
        local lines = 0
        for line in srv:access_log():gmatch("[^\n]+") do
            if line:find('"GET /whoami"', 1, true) then
                lines = lines + 1
                assert.is_truthy(line:find(" 127.0.0.1 ", 1, true), line)
            end
            assert.is_nil(line:find("198.51.100.", 1, true), line)
        end
        assert.are.equal(40, lines)
    end)

    it("believes only the header the trusted proxies set (--proxy-header)", function()
        local function client_of(srv, headers)
            local res = assert(srv:request("GET", "/whoami", headers))
            assert.are.equal(200, res.status, res.body)
            return cjson.decode(res.body).client
        end
        -- Both headers: a client's own X-Forwarded-For passed through a proxy
        -- that sets Forwarded, and the other way round.
        local both = { ["Forwarded"] = "for=198.51.100.7", ["X-Forwarded-For"] = "203.0.113.9" }
        local srv = start({ args = { "--trusted-proxies", "127.0.0.1/32" } })
        assert.are.equal("203.0.113.9", client_of(srv, both))
        assert.are.equal("127.0.0.1", client_of(srv, { ["Forwarded"] = "for=198.51.100.7" }))
        srv:stop()
        srv = start({ args = { "--trusted-proxies", "127.0.0.1/32", "--proxy-header", "forwarded" } })
        assert.are.equal("198.51.100.7", client_of(srv, both))
        assert.are.equal("127.0.0.1", client_of(srv, { ["X-Forwarded-For"] = "203.0.113.9" }))
    end)

    it("reads every line of the proxy header, the proxy's own appended last", function()
        -- HAProxy's forwardfor adds its line after the client's: the client's
        -- line is the left of one list (RFC 9110 5.3), not the client.
        local srv = start({ args = { "--trusted-proxies", "127.0.0.1/32" } })
        local function whoami(headers)
            local res = assert(srv:request("GET", "/whoami", headers))
            assert.are.equal(200, res.status, res.body)
            return cjson.decode(res.body)
        end
        local me = whoami({ { "X-Forwarded-For", "127.0.0.5" }, { "X-Forwarded-For", "198.51.100.77" },
            { "X-Forwarded-Proto", "https" }, { "X-Forwarded-Proto", "http" } })
        assert.are.equal("198.51.100.77", me.client)
        assert.is_false(me.https)
        -- /metrics is open to loopback: a spoofed first line must not open it.
        local res = assert(srv:request("GET", "/metrics",
            { { "X-Forwarded-For", "127.0.0.5" }, { "X-Forwarded-For", "203.0.113.50" } }))
        assert.are.equal(403, res.status, res.body)
        assert.is_truthy(srv:access_log(' 203.0.113.50 "GET /metrics" 403 ', 5, true), srv:access_log())
        srv:stop()

        srv = start({ args = { "--trusted-proxies", "127.0.0.1/32", "--proxy-header", "forwarded" } })
        assert.are.equal("203.0.113.9",
            whoami({ { "Forwarded", "for=10.0.0.1" }, { "Forwarded", "for=203.0.113.9" } }).client)
    end)

    it("believes a trusted proxy: a bucket per forwarded address, that address in the log, "
        .. "HSTS on https", function()
        local srv = start({ args = { "--trusted-proxies", "127.0.0.1/32,::1" } })
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        fresh_window(60, 5)
        -- 30 forwarded addresses: each has its own per-address bucket.
        for i = 1, 30 do
            local res = get(c, "/whoami", {
                ["User-Agent"] = "spec-proxied", ["X-Forwarded-For"] = "198.51.100." .. i,
            })
            assert.are.equal(200, res.status, "forwarded address " .. i)
            local body = cjson.decode(res.body)
            assert.are.equal("198.51.100." .. i, body.client)
            assert.is_false(body.https)
            assert.is_nil(res.headers["Strict-Transport-Security"])
        end
        -- One forwarded address rotating User-Agents still meets its ceiling.
        local ok = 0
        for i = 1, 25 do
            local res = get(c, "/whoami", {
                ["User-Agent"] = "spec-rotating/" .. i, ["X-Forwarded-For"] = "203.0.113.50",
            })
            if res.status == 200 then
                ok = ok + 1
            else
                assert_429(res, TOO_MANY, "request " .. i .. " from 203.0.113.50")
            end
        end
        assert.are.equal(20, ok)
        -- An IPv6 client walking through its /64 is one client to the ceiling;
        -- the next /64 is another.
        ok = 0
        for i = 1, 25 do
            local res = get(c, "/whoami", {
                ["User-Agent"] = "spec-v6/" .. i, ["X-Forwarded-For"] = ("2001:db8:5:6::%x"):format(i),
            })
            ok = ok + (res.status == 200 and 1 or 0)
        end
        assert.are.equal(20, ok)
        assert.are.equal(200, get(c, "/whoami", { ["X-Forwarded-For"] = "2001:db8:5:7::1" }).status)
        -- The rightmost address that is not a trusted proxy.
        local res = get(c, "/whoami", {
            ["User-Agent"] = "spec-chain", ["X-Forwarded-For"] = "192.0.2.1, 198.51.100.77, 127.0.0.1",
        })
        assert.are.equal("198.51.100.77", cjson.decode(res.body).client)

        -- X-Forwarded-Proto: https from the trusted proxy: HSTS and req.https.
        res = get(c, "/whoami", {
            ["User-Agent"] = "spec-https", ["X-Forwarded-For"] = "198.51.100.200",
            ["X-Forwarded-Proto"] = "https",
        })
        assert.are.equal(200, res.status)
        assert.is_true(cjson.decode(res.body).https)
        assert.are.equal("max-age=31536000; includeSubDomains", res.headers["Strict-Transport-Security"])
        assert.are.equal(1, #S.header_values(res, "Strict-Transport-Security"))
        res = get(c, "/health", { ["X-Forwarded-Proto"] = "https" })
        assert.are.equal("max-age=31536000; includeSubDomains", res.headers["Strict-Transport-Security"])
        res = get(c, "/health", { ["X-Forwarded-Proto"] = "http" })
        assert.is_nil(res.headers["Strict-Transport-Security"])
        res = get(c, "/health")
        assert.is_nil(res.headers["Strict-Transport-Security"])

        local line = srv:access_log(' 198.51.100.7 "GET /whoami" 200 ', 5, true)
        assert.is_truthy(line, "no access-log line with the forwarded address:\n" .. srv:access_log())
        assert.is_truthy(srv:access_log(' 198.51.100.77 "GET /whoami" 200 ', 5, true), srv:access_log())
        assert.is_truthy(srv:access_log(' 203.0.113.50 "GET /whoami" 429 ', 5, true), srv:access_log())
    end)

    it("counts every /64 of an IPv6 /48 against per_network, and leaves IPv4 to per_ip", function()
        local policy = policy_copy(function(text)
            local out, n = text:gsub('\n    per_ip = "20 per minute",\n', '\n    per_ip = "20 per minute",\n'
                .. '    per_network = { ipv6_prefix = 48, limit = "8 per minute" },\n', 1)
            assert(n == 1, "limits.lua has no per_ip line")
            return out
        end)
        local srv = start({ args = { "--policy-dir", policy, "--trusted-proxies", "127.0.0.1/32" } })
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        fresh_window(60, 5)
        -- Ten /64s of 2001:db8:9::/48, each well under its per_ip of 20.
        local ok = 0
        for i = 1, 10 do
            local res = get(c, "/hello", {
                ["User-Agent"] = fresh_ua("net"), ["X-Forwarded-For"] = ("2001:db8:9:%x::1"):format(i),
            })
            if res.status == 200 then
                ok = ok + 1
            else
                assert_429(res, TOO_MANY, "request " .. i)
                assert.are.equal("8", res.headers["X-RateLimit-Limit"])
            end
        end
        assert.are.equal(8, ok)
        -- A "per_ip" route keeps the address ceilings, the network's included.
        assert_429(get(c, "/per-ip", { ["X-Forwarded-For"] = "2001:db8:9:ff::1" }), TOO_MANY, "/per-ip")
        assert.are.equal(200, get(c, "/hello", { ["X-Forwarded-For"] = "2001:db8:a::1" }).status)
        for i = 1, 10 do
            assert.are.equal(200, get(c, "/hello", {
                ["User-Agent"] = fresh_ua("v4"), ["X-Forwarded-For"] = "198.51.100." .. i,
            }).status, "IPv4 client " .. i)
        end
    end)

    it("gives an IPv6 client one fingerprint for its /64", function()
        -- Through a proxy that sends Forwarded: X-Forwarded-For is part of the
        -- fingerprint as it comes (the reference's format), address and all.
        local srv = start({ args = { "--trusted-proxies", "127.0.0.1/32", "--proxy-header", "forwarded" } })
        local ua = fresh_ua("v6")
        local function fingerprint_of(address)
            local res = assert(srv:request("GET", "/whoami", {
                ["User-Agent"] = ua, ["Forwarded"] = ('for="[%s]"'):format(address),
            }))
            assert.are.equal(200, res.status, res.body)
            local body = cjson.decode(res.body)
            assert.are.equal(address, body.client)
            return body.fingerprint
        end
        local first = fingerprint_of("2001:db8:5:6::1")
        assert.are.equal(first, fingerprint_of("2001:db8:5:6:ffff::2"))
        assert.are_not.equal(first, fingerprint_of("2001:db8:5:7::1"))
    end)

    it("computes req.fingerprint from the address and the headers on the connection, "
        .. "repeated headers joined as req.headers joins them", function()
        local fp = assert(require("luahost.fingerprint").new(SECRET))
        local srv = start()
        local function whoami(header_lines)
            local _, res = srv:raw("GET /whoami HTTP/1.1\r\nHost: spec\r\n" .. header_lines
                .. "Connection: close\r\n\r\n")
            assert.is_truthy(res, "no response")
            assert.are.equal(200, res.status, res.body)
            return cjson.decode(res.body).fingerprint
        end
        local ua = fresh_ua("fp")
        assert.are.equal(fp:compute("127.0.0.1", ua, "de-CH", "203.0.113.9"),
            whoami("User-Agent: " .. ua .. "\r\nAccept-Language: de-CH\r\n"
                .. "X-Forwarded-For: 203.0.113.9\r\n"))
        -- Missing headers take the reference's defaults.
        assert.are.equal(fp:compute("127.0.0.1", nil, nil, nil), whoami(""))
        assert.are.equal(fp:compute("127.0.0.1", ua, nil, "192.0.2.1, 192.0.2.2"),
            whoami("user-agent: " .. ua .. "\r\nX-Forwarded-For: 192.0.2.1\r\n"
                .. "x-forwarded-for: 192.0.2.2\r\n"))
    end)

    it("refuses a fingerprint's 51st request within 10 s as a bot, with retry_after 60", function()
        -- per_ip raised so that only the bot check can refuse /counted.
        local policy = policy_copy(function(text)
            return set_limit(text, "per_ip", "1000 per minute")
        end)
        local srv = start({ args = { "--policy-dir", policy } })
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        local ua = fresh_ua("bot")
        fresh_window(10, 2) -- the bot counter's window is fixed: 10 s from a multiple of 10
        local t0 = S.now()
        for i = 1, 50 do
            local res = get(c, "/counted", { ["User-Agent"] = ua })
            assert.are.equal(200, res.status, "request " .. i .. ": " .. res.body)
        end
        local res = get(c, "/counted", { ["User-Agent"] = ua })
        assert.is_true(S.now() - t0 < 10)
        local ra = assert_429(res, BOT, "51st request")
        assert.are.equal(60, ra)
        assert.are.equal("60", res.headers["Retry-After"])
        -- With rate-limit headers, as every 429: the bot rule's, spent until
        -- the hold ends, in agreement with Retry-After.
        local function assert_bot_headers(r, what)
            local wait = r.headers["Retry-After"]
            assert.are.equal("50", r.headers["X-RateLimit-Limit"], what)
            assert.are.equal("0", r.headers["X-RateLimit-Remaining"], what)
            assert.are.equal('"w10";r=0;t=' .. wait, r.headers["RateLimit"], what)
            assert.are.equal('"w10";q=50;w=10', r.headers["RateLimit-Policy"], what)
            local reset = tonumber(r.headers["X-RateLimit-Reset"]) - os.time()
            assert.is_truthy(math.abs(reset - tonumber(wait)) <= 2, what .. ": reset in " .. reset)
        end
        assert_bot_headers(res, "51st request")
        S.sleep(1.1)
        res = get(c, "/counted", { ["User-Agent"] = ua })
        assert_429(res, BOT, "52nd request")
        assert_bot_headers(res, "52nd request")
        local line = srv:error_log("security: bot behavior", 5, true)
        assert.is_truthy(line, "no security line:\n" .. srv:error_log())
        assert.is_truthy(line:find("[warn]", 1, true), line)
        -- Another fingerprint from the same address is not a bot.
        res = get(c, "/counted", { ["User-Agent"] = fresh_ua("human") })
        assert.are.equal(200, res.status)
    end)

    it("holds a bot for retry_after past the counter's window, logged and counted once", function()
        -- More than 5 in 2 s: held 30 s. per_ip raised so that only the bot
        -- check can refuse /counted.
        local policy = with_bot(policy_copy(function(text)
            return set_limit(text, "per_ip", "1000 per minute")
        end), "bot.window, bot.threshold, bot.retry_after = 2, 5, 30")
        local srv = start({ args = { "--policy-dir", policy } })
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        local ua = fresh_ua("held")
        fresh_window(2, 1)
        for i = 1, 5 do
            assert.are.equal(200, get(c, "/counted", { ["User-Agent"] = ua }).status, "request " .. i)
        end
        assert.are.equal(30, assert_429(get(c, "/counted", { ["User-Agent"] = ua }), BOT, "6th request"))
        -- In the counter's next window the fingerprint is still held.
        fresh_window(2, 2)
        local ra = assert_429(get(c, "/counted", { ["User-Agent"] = ua }), BOT, "next window")
        assert.is_truthy(ra <= 30, "Retry-After " .. ra)
        assert.are.equal(200, get(c, "/counted", { ["User-Agent"] = fresh_ua("human") }).status)
        assert.is_truthy(srv:error_log("held 30 s", 5, true), srv:error_log())
        assert.are.equal(1, S.count(srv:error_log(), "security: bot behavior"), srv:error_log())
        local metrics = assert(srv:request("GET", "/metrics"))
        assert.are.equal("1", metrics.body:match("\nluahost_bot_detections_total (%S+)"), metrics.body)
        -- Each held request is a rejection: a bot's flood shows.
        assert.are.equal("2", metrics.body:match("\nluahost_ratelimit_rejections_total (%S+)"), metrics.body)
    end)
end)

describe("policy reload #integration", function()
    local policy, srv

    before_each(function()
        policy = policy_copy()
        srv = start({ args = { "--policy-dir", policy } })
    end)

    after_each(function()
        S.stop_all()
    end)

    -- Requests /hello with a fresh User-Agent until refused; returns how many
    -- were allowed and the X-RateLimit-Limit they carried.
    local function allowed_for_fresh_client()
        local c = assert(srv:client())
        local ua, ok, limit = fresh_ua("reload"), 0, nil
        for _ = 1, 10 do
            local res = get(c, "/hello", { ["User-Agent"] = ua })
            if res.status ~= 200 then
                assert_429(res, TOO_MANY, "after " .. ok)
                break
            end
            ok = ok + 1
            limit = limit or res.headers["X-RateLimit-Limit"]
        end
        c:close()
        return ok, limit
    end

    it("warns once per load about a policy route the app does not have", function()
        S.write_file(policy .. "/limits.lua", assert(S.read_file(policy .. "/limits.lua"))
            :gsub('%["GET /strict"%]', '["GET /strikt"]', 1))
        srv:signal("HUP")
        assert.is_truthy(srv:error_log("[info] reloaded", 5, true), srv:error_log())
        local log = srv:error_log()
        local _, n = log:gsub('limits.lua: "GET /strikt" is not a route of [^\n]*routes.lua; '
            .. "its setting applies to nothing", "")
        assert.are.equal(1, n, log) -- from one worker of the two, not each
        assert.is_nil(log:find('"GET /counted" is not a route', 1, true), log)
    end)

    it("applies edited limits after SIGHUP", function()
        fresh_window(60, 5)
        local ok, limit = allowed_for_fresh_client()
        assert.are.same({ 5, "5" }, { ok, limit })
        S.write_file(policy .. "/limits.lua",
            set_limit(assert(S.read_file(policy .. "/limits.lua")), "default", "2 per minute"))
        srv:signal("HUP")
        assert.is_truthy(srv:error_log("[info] reloaded", 5, true), srv:error_log())
        ok, limit = allowed_for_fresh_client()
        assert.are.same({ 2, "2" }, { ok, limit })
    end)

    it("keeps the old limits when limits.lua is broken, and logs limits.lua:<line>:", function()
        fresh_window(60, 5)
        S.write_file(policy .. "/limits.lua",
            'return {\n    default = "2 per minute",\n    per_ip = = "x",\n}\n')
        srv:signal("HUP")
        local line = srv:error_log("reload failed", 5, true)
        assert.is_truthy(line, "no 'reload failed' line:\n" .. srv:error_log())
        assert.is_truthy(line:find("[error]", 1, true), line)
        assert.is_truthy(line:find("limits.lua:3:", 1, true), line)
        assert.is_true(srv:running())
        local ok, limit = allowed_for_fresh_client()
        assert.are.same({ 5, "5" }, { ok, limit })

        -- A limit string that does not parse: named too, old limits kept.
        S.write_file(policy .. "/limits.lua", 'return { default = "5 per fortnight" }\n')
        srv:signal("HUP")
        assert.is_truthy(srv:wait_log("error", "limits.lua: default: bad limit", 5, true),
            srv:error_log())
        local res = assert(srv:request("GET", "/hello", { ["User-Agent"] = fresh_ua("reload") }))
        assert.are.equal(200, res.status)
        assert.are.equal("5", res.headers["X-RateLimit-Limit"])
        assert.are.equal(2, S.count(srv:error_log(), "reload failed"))
    end)
end)

describe("FINGERPRINT_SECRET #integration", function()
    after_each(function()
        S.stop_all()
    end)

    local function production(secret, how)
        local args = { "--app", APP, "--port", tostring(S.free_port()), "--workers", "1" }
        local env = { FINGERPRINT_SECRET = secret == nil and false or secret }
        if how == "env" then
            env.LUAHOST_ENV = "production"
        else
            args[#args + 1] = "--env"
            args[#args + 1] = "production"
        end
        return S.run_luahost(args, { env = env, timeout = 5 })
    end

    it("production refuses an unset, a short, a placeholder and the reference's default secret, saying why", function()
        local cases = {
            { nil, "FINGERPRINT_SECRET is not set", "flag" },
            { nil, "FINGERPRINT_SECRET is not set", "env" },
            { "", "at least 32 bytes", "flag" },
            { "too-short-secret-31-bytes-long!", "at least 32 bytes", "flag" },
            { "change-me-in-production", "change-me-in-production", "env" },
            { ("x"):rep(40), "fewer than 8 different characters", "flag" },
        }
        for _, case in ipairs(cases) do
            local secret, why, how = case[1], case[2], case[3]
            local what = ("secret %q via %s"):format(tostring(secret), how)
            local code, out, err = production(secret, how)
            assert.are_not.equal(0, code, what)
            assert.is_truthy(err:find("refusing to start in production", 1, true), what .. ": " .. err)
            assert.is_truthy(err:find(why, 1, true), what .. ": " .. err)
            assert.is_nil((out .. err):find("serving", 1, true), what)
        end
        -- --check says so too.
        local code, _, err = S.run_luahost({ "--check", "--app", APP, "--env", "production" },
            { env = { FINGERPRINT_SECRET = "change-me-in-production" } })
        assert.are_not.equal(0, code)
        assert.is_truthy(err:find("change-me-in-production", 1, true), err)
    end)

    it("production refuses the development database's password, at start and in --check", function()
        -- The test database, reached with the password scripts/services.sh gives it.
        local dev_url = G.DB_URL:gsub("^(mysql://[^:]+:)[^@]*@", "%1luahost-dev@")
        for _, check in ipairs({ false, true }) do
            local args = { "--app", APP, "--env", "production", "--db-url", dev_url,
                "--port", tostring(S.free_port()), "--workers", "1" }
            if check then
                args[#args + 1] = "--check"
            end
            local code, out, err = S.run_luahost(args, { env = { FINGERPRINT_SECRET = SECRET }, timeout = 30 })
            assert.are_not.equal(0, code, err)
            assert.is_truthy(err:find("db_url has the development database's password", 1, true), err)
            assert.is_nil((out .. err):find("serving", 1, true))
            assert.is_nil((out .. err):find("luahost-dev", 1, true), "the password is not repeated: " .. err)
        end
    end)

    it("production starts with a good secret, and does not log it", function()
        local srv = start({ args = { "--env", "production" } })
        local res = assert(srv:request("GET", "/hello", { ["User-Agent"] = fresh_ua("prod") }))
        assert.are.equal(200, res.status)
        assert.is_truthy(srv:error_log("production", 5, true))
        assert.is_nil(srv:error_log():find("FINGERPRINT_SECRET", 1, true), srv:error_log())
        assert.is_nil(srv:error_log():find(SECRET, 1, true))
        assert.are.equal(0, srv:stop())
    end)

    it("development without a secret starts, warns once, and keeps a stable fingerprint", function()
        local srv = S.start({ app = APP, env = { FINGERPRINT_SECRET = false } })
        local c = assert(srv:client())
        finally(function()
            c:close()
        end)
        local ua = fresh_ua("dev")
        local first = cjson.decode(get(c, "/whoami", { ["User-Agent"] = ua }).body).fingerprint
        assert.is_truthy(first:match("^%x+$") and #first == 16, first)
        for _ = 1, 3 do
            local res = assert(srv:request("GET", "/whoami", { ["User-Agent"] = ua }))
            assert.are.equal(first, cjson.decode(res.body).fingerprint) -- on either worker
        end
        srv:signal("HUP")
        assert.is_truthy(srv:error_log("[info] reloaded", 5, true), srv:error_log())
        assert.are.equal(200, assert(srv:request("GET", "/health")).status)
        local log = srv:error_log()
        assert.are.equal(1, S.count(log, "FINGERPRINT_SECRET is not set"), log)
        assert.is_truthy(log:find("[warn]", 1, true), log)
    end)

    it("development with a weak secret starts and warns that production would refuse it", function()
        local srv = S.start({ app = APP, env = { FINGERPRINT_SECRET = "change-me-in-production" } })
        assert.are.equal(200, assert(srv:request("GET", "/health")).status)
        assert.is_truthy(srv:error_log("refused in production", 5, true), srv:error_log())
        assert.are.equal(1, S.count(srv:error_log(), "refused in production"))
    end)
end)
