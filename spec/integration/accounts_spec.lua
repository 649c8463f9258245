-- Accounts against the real MariaDB: `luahost user add`, sign-in and its
-- cookie, /api/me, logout revoking the session, CSRF on logout, session
-- fixation, and the login limit (per name as the database compares names).
local S = require "integration.support.server"
local G = require "integration.support.gallery"
local cjson = require "cjson"

local DB_URL, json, add_user, login, sid_of = G.DB_URL, G.json, G.add_user, G.login, G.sid_of
local start_gallery = G.start

local mariadb = G.mariadb

-- Inserts an image (public unless is_public is 0); returns its id.
local function insert_image(owner_name, is_public)
    local out = mariadb(("INSERT INTO svg_image (filename, svg_content, user_id, is_public) SELECT 'mine.svg', "
        .. "'<svg xmlns=\"http://www.w3.org/2000/svg\"/>', id, %d FROM users WHERE username = '%s'; "
        .. "SELECT LAST_INSERT_ID();"):format(is_public or 1, owner_name))
    return assert(tonumber(out:match("(%d+)%s*$")), "insert failed: " .. out)
end

describe("accounts #integration", function()
    local srv
    local name = ("user%d"):format(os.time() % 100000 * 100 + math.random(99))
    local secret = "correct horse battery"

    setup(function()
        assert.is_true(add_user(name, secret, false), "luahost user add failed")
        srv = start_gallery()
    end)

    teardown(function()
        S.stop_all()
    end)

    it("keeps the answers that carry a session's token out of every cache", function()
        local res = login(srv, name, secret)
        assert.are.equal(200, res.status, res.body)
        assert.are.equal("no-store", res.headers["cache-control"])
        local h = { Cookie = "sid=" .. sid_of(res), ["X-CSRF-Token"] = json(res).csrf_token }
        local mine = assert(srv:request("GET", "/api/me", h))
        assert.are.equal(200, mine.status)
        assert.are.equal("no-store", mine.headers["cache-control"])
        assert.are.equal("no-store", assert(srv:request("GET", "/api/me")).headers["cache-control"])
    end)

    it("answers a stored hash it cannot read as a wrong password, and logs it", function()
        local broken = G.unique_name("broken")
        assert.is_true(add_user(broken, secret, false), "luahost user add failed")
        mariadb(("UPDATE users SET password_hash = 'pbkdf2-sha256$x$y$z' WHERE username = '%s'")
            :format(broken))
        local res = login(srv, broken, secret)
        assert.are.equal(401, res.status, res.body)
        assert.are.same(json(login(srv, broken .. "x", secret)), json(res))
        assert.is_truthy(srv:error_log("login: password of \"" .. broken .. "\" not checked", 5, true))
    end)

    it("refuses a wrong password and an unknown account with the same 401", function()
        local wrong = login(srv, name, "wrong password")
        local unknown = login(srv, name .. "x", secret)
        assert.are.equal(401, wrong.status)
        assert.are.equal(401, unknown.status)
        assert.are.same(json(wrong), json(unknown))
        assert.is_nil(sid_of(wrong))
    end)

    it("signs in with an HttpOnly, SameSite=Lax session cookie; /api/me knows the user", function()
        local res = login(srv, name, secret)
        assert.are.equal(200, res.status, res.body)
        local sid, cookie = sid_of(res)
        assert.are.equal(64, #sid)
        assert.is_truthy(cookie:find("HttpOnly", 1, true))
        assert.is_truthy(cookie:find("SameSite=Lax", 1, true))
        assert.is_nil(cookie:find("Secure", 1, true)) -- plain HTTP
        local me = assert(srv:request("GET", "/api/me", { Cookie = "sid=" .. sid }))
        assert.are.equal(200, me.status)
        assert.are.equal(name, json(me).user.username)
        assert.is_false(json(me).user.is_admin)
        assert.are.equal(401, assert(srv:request("GET", "/api/me")).status)
    end)

    it("removes expired sessions as users sign in", function()
        local expired = ("%064x"):format(os.time())
        mariadb(("INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) SELECT '%s', id, "
            .. "'%s', NOW() - INTERVAL 1 DAY FROM users WHERE username = '%s'"):format(expired, expired, name))
        local count = "SELECT COUNT(*) FROM sessions WHERE token_hash = '" .. expired .. "'"
        assert.are.equal("1\n", mariadb(count))
        assert.are.equal(200, login(srv, name, secret).status)
        assert.are.equal("0\n", mariadb(count))
    end)

    it("needs the CSRF token to log out, and logging out revokes the session", function()
        local res = login(srv, name, secret)
        local sid = sid_of(res)
        local csrf = json(res).csrf_token
        local cookie = { Cookie = "sid=" .. sid }
        assert.are.equal(403, assert(srv:request("POST", "/api/logout", cookie)).status)
        assert.are.equal(403, assert(srv:request("POST", "/api/logout",
            { Cookie = "sid=" .. sid, ["X-CSRF-Token"] = ("0"):rep(64) })).status)
        assert.are.equal(200, assert(srv:request("GET", "/api/me", cookie)).status)
        local out = assert(srv:request("POST", "/api/logout",
            { Cookie = "sid=" .. sid, ["X-CSRF-Token"] = csrf }))
        assert.are.equal(200, out.status)
        assert.are.equal(401, assert(srv:request("GET", "/api/me", cookie)).status)
    end)

    -- Login CSRF: a cross-site form can send text/plain that reads as JSON.
    it("answers 415 to a sign-in that is not application/json, setting no cookie", function()
        local body = cjson.encode({ username = name, password = secret })
        for _, ctype in ipairs({ "text/plain", "application/x-www-form-urlencoded", "application/jsonp" }) do
            local res = assert(srv:request("POST", "/api/login", { ["Content-Type"] = ctype }, body))
            assert.are.equal(415, res.status, ctype)
            assert.is_nil(res.headers["set-cookie"], ctype)
        end
        local res = assert(srv:request("POST", "/api/login", {}, body))
        assert.are.equal(415, res.status)
        res = login(srv, name, secret, { ["Content-Type"] = "application/json; charset=utf-8" })
        assert.are.equal(200, res.status, res.body)
    end)

    it("never promotes a session id planted before sign-in (fixation)", function()
        local planted = ("ab"):rep(32)
        local res = login(srv, name, secret, { Cookie = "sid=" .. planted })
        assert.are.equal(200, res.status)
        local sid = sid_of(res)
        assert.are_not.equal(planted, sid)
        assert.are.equal(401, assert(srv:request("GET", "/api/me", { Cookie = "sid=" .. planted })).status)
    end)

    -- Every spelling MariaDB takes for the same name (case, accents, trailing
    -- spaces) counts against one limit.
    it("limits sign-in attempts per account, however the name is spelt: the 11th in 15 minutes is refused", function()
        local target = name .. "-limited"
        local spellings = { target, target:upper(), target .. "  ", "\195\185" .. target:sub(2) } -- ù for u
        -- The 12 attempts (each a deliberately slow password check) inside one
        -- 15-minute window: across a boundary the sliding estimate would
        -- rightly let an earlier attempt count for less than one.
        S.fresh_window(900, 60)
        local statuses = {}
        for i = 1, 11 do
            statuses[i] = login(srv, spellings[i % #spellings + 1], "guess " .. i).status
        end
        assert.are.equal("401,401,401,401,401,401,401,401,401,401,429", table.concat(statuses, ","))
        local rejected = srv:request("GET", "/metrics")
        local before = tonumber(rejected.body:match("\nluahost_ratelimit_rejections_total (%d+)"))
        local res = login(srv, target, "again")
        assert.are.equal(429, res.status)
        local body = json(res)
        assert.are.same({ success = false, error = "Too many sign-in attempts", retry_after = body.retry_after }, body)
        assert.is_true(body.retry_after > 0)
        assert.are.equal(tostring(body.retry_after), res.headers["retry-after"])
        assert.are.equal("10", res.headers["x-ratelimit-limit"]) -- the account's limit, not the route's
        assert.are.equal("0", res.headers["x-ratelimit-remaining"])
        local after = srv:request("GET", "/metrics").body:match("\nluahost_ratelimit_rejections_total (%d+)")
        assert.are.equal(before + 1, tonumber(after))
    end)
end)

describe("deleting images #integration", function()
    local srv
    local stamp = os.time() % 100000 * 100 + math.random(99)
    local owner, other, admin = "owner" .. stamp, "other" .. stamp, "admin" .. stamp
    local secret = "correct horse battery"

    setup(function()
        assert.is_true(add_user(owner, secret, false))
        assert.is_true(add_user(other, secret, false))
        assert.is_true(add_user(admin, secret, true))
        srv = start_gallery()
    end)

    teardown(function()
        S.stop_all()
    end)

    local function session_of(name)
        local res = login(srv, name, secret)
        assert.are.equal(200, res.status, res.body)
        return { Cookie = "sid=" .. sid_of(res), ["X-CSRF-Token"] = json(res).csrf_token }
    end

    it("answers 401 without a session and 403 without the CSRF token", function()
        assert.are.equal(401, assert(srv:request("DELETE", "/api/svg/2")).status)
        local h = session_of(other)
        assert.are.equal(403, assert(srv:request("DELETE", "/api/svg/2", { Cookie = h.Cookie })).status)
    end)

    it("answers 404, not 403, for someone else's private image", function()
        local private = insert_image(owner, 0)
        local res = assert(srv:request("DELETE", "/api/svg/" .. private, session_of(other)))
        assert.are.equal(404, res.status, res.body)
        assert.are.equal(200, assert(srv:request("DELETE", "/api/svg/" .. private, session_of(owner))).status)
    end)

    it("lets the owner or an administrator delete an image, and nobody else", function()
        local mine = insert_image(owner)
        assert.are.equal(403, assert(srv:request("DELETE", "/api/svg/" .. mine, session_of(other))).status)
        local res = assert(srv:request("DELETE", "/api/svg/" .. mine, session_of(owner)))
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(404, assert(srv:request("GET", "/api/svg/" .. mine)).status)

        local theirs = insert_image(owner)
        res = assert(srv:request("DELETE", "/api/svg/" .. theirs, session_of(admin)))
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(404, assert(srv:request("DELETE", "/api/svg/" .. theirs, session_of(admin))).status)
    end)

    it("answers 200 to one of two deletes racing for an image, 404 to the other", function()
        local h = session_of(owner)
        for _ = 1, 10 do
            local id = insert_image(owner)
            local a, b = assert(srv:client()), assert(srv:client())
            local bytes = S.format_request("DELETE", "/api/svg/" .. id, h)
            assert(a:send(bytes))
            assert(b:send(bytes))
            local ra, rb = assert(a:read_response("DELETE")), assert(b:read_response("DELETE"))
            a:close()
            b:close()
            local statuses = { ra.status, rb.status }
            table.sort(statuses)
            assert.are.same({ 200, 404 }, statuses, ra.body .. " / " .. rb.body)
        end
    end)
end)

describe("uploading images #integration", function()
    local srv
    local uploader = "up" .. (os.time() % 100000 * 100 + math.random(99))
    local secret = "correct horse battery"

    setup(function()
        assert.is_true(add_user(uploader, secret, false))
        srv = start_gallery()
    end)

    teardown(function()
        S.stop_all()
    end)

    local function upload(headers, value)
        return G.upload(srv, headers, value)
    end

    it("stores a clean SVG for a signed-in user and refuses an unsafe one with the reason", function()
        local signin = login(srv, uploader, secret)
        local h = { Cookie = "sid=" .. sid_of(signin), ["X-CSRF-Token"] = json(signin).csrf_token }
        local clean = '<svg xmlns="http://www.w3.org/2000/svg"><circle cx="5" cy="5" r="4"/></svg>'

        assert.are.equal(401, upload(nil, { filename = "a.svg", svg = clean }).status)
        assert.are.equal(403, upload({ Cookie = h.Cookie }, { filename = "a.svg", svg = clean }).status)

        -- A body not declared JSON, as sign-in answers it.
        local res = upload({ Cookie = h.Cookie, ["X-CSRF-Token"] = h["X-CSRF-Token"],
            ["Content-Type"] = "text/plain" }, { filename = "a.svg", svg = clean })
        assert.are.equal(415, res.status, res.body)

        res = upload(h, { filename = "a.svg", svg = clean, description = "a circle" })
        assert.are.equal(201, res.status, res.body)
        local id = json(res).id
        local got = assert(srv:request("GET", "/svg/" .. id .. ".svg"))
        assert.are.equal(clean, got.body)

        res = upload(h, { filename = "b.svg",
            svg = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>' })
        assert.are.equal(400, res.status)
        assert.is_truthy(json(res).message:find("onload", 1, true), res.body)
        res = upload(h, { filename = "c.svg", svg = '<svg><script>alert(1)</script></svg>' })
        assert.are.equal(400, res.status)
        assert.are.equal(200, assert(srv:request("DELETE", "/api/svg/" .. id, h)).status)
    end)

    -- What the columns cannot hold is the client's mistake (400 with the
    -- reason), never the database's (500).
    it("refuses fields the columns cannot hold with 400, counting the filename in characters", function()
        local signin = login(srv, uploader, secret)
        local h = { Cookie = "sid=" .. sid_of(signin), ["X-CSRF-Token"] = json(signin).csrf_token }
        local clean = '<svg xmlns="http://www.w3.org/2000/svg"/>'
        local e = "\195\169" -- é: two bytes, one character
        local res = upload(h, { filename = e:rep(255), svg = clean, is_public = false })
        assert.are.equal(201, res.status, res.body)
        local id = json(res).id
        assert.are.equal(404, assert(srv:request("GET", "/api/svg/" .. id)).status) -- private
        assert.are.equal(200, assert(srv:request("DELETE", "/api/svg/" .. id, h)).status)
        -- null for an optional field counts as left out; 65 535 bytes of description fit.
        for _, fields in ipairs({
            { filename = "n.svg", svg = clean, description = cjson.null, is_public = cjson.null },
            { filename = "d.svg", svg = clean, description = ("d"):rep(65535), is_public = false },
            { filename = "l.svg", svg = clean, description = "two\r\nlines\tand a tab", is_public = false },
        }) do
            res = upload(h, fields)
            assert.are.equal(201, res.status, res.body)
            assert.are.equal(200, assert(srv:request("DELETE", "/api/svg/" .. json(res).id, h)).status)
        end
        for what, fields in pairs({
            ["256 characters"] = { filename = e:rep(256), svg = clean },
            ["no UTF-8"] = { filename = "\255.svg", svg = clean },
            ["an overlong form"] = { filename = "\224\128\128.svg", svg = clean },
            ["a surrogate"] = { filename = "\237\160\128.svg", svg = clean },
            ["past U+10FFFF"] = { filename = "p.svg", svg = clean, description = "\244\144\128\128" },
            ["description over 65 535 bytes"] = { filename = "d.svg", svg = clean, description = ("d"):rep(65536) },
            ['is_public "no"'] = { filename = "p.svg", svg = clean, is_public = "no" },
            ["a NUL in the filename"] = { filename = "a\0.html", svg = clean },
            ["a newline in the filename"] = { filename = "a\n.svg", svg = clean },
            ["a NUL in the description"] = { filename = "n.svg", svg = clean, description = "a\0b" },
            ["a C1 control (U+0085) in the filename"] = { filename = "a\194\133b.svg", svg = clean },
            ["an escape in the description"] = { filename = "e.svg", svg = clean, description = "\27[31m" },
        }) do
            res = upload(h, fields)
            assert.are.equal(400, res.status, what .. ": " .. res.body)
            assert.is_false(json(res).success, what)
        end
    end)
end)

describe("user add #integration", function()
    local fcntl, poll = require "posix.fcntl", require "posix.poll"
    local stdlib, unistd = require "posix.stdlib", require "posix.unistd"

    -- Reads the terminal's output until `want` appears or the command ends
    -- (the read fails once no process holds the terminal), or timeout.
    local function read_until(master, want, timeout)
        local out, deadline = "", S.now() + timeout
        while S.now() < deadline and not (want and out:find(want, 1, true)) do
            if poll.rpoll(master, 100) == 1 then
                local data = unistd.read(master, 4096)
                if not data or #data == 0 then
                    break
                end
                out = out .. data
            end
        end
        return out
    end

    -- Runs user add NAME on a new terminal, typing first and then second
    -- at its two prompts: the exit status and all the terminal showed.
    local function add_at_terminal(name, first, second)
        local master = assert(stdlib.openpt(bit.bor(fcntl.O_RDWR, fcntl.O_NOCTTY)))
        finally(function()
            unistd.close(master)
        end)
        assert(stdlib.grantpt(master))
        assert(stdlib.unlockpt(master))
        local tty = assert(stdlib.ptsname(master))
        local pid = S.spawn({ S.bin, "user", "add", name, "--app", "lua/app", "--db-url", DB_URL,
            "--error-log", "/dev/stderr" }, { stdin = tty, stdout = tty, stderr = tty })
        local shown = read_until(master, "Password for " .. name .. ": ", 30)
        assert.is_truthy(shown:find("Password for " .. name .. ": ", 1, true), shown)
        assert(unistd.write(master, first .. "\n"))
        shown = shown .. read_until(master, "The same password again: ", 10)
        assert.is_truthy(shown:find("The same password again: ", 1, true), shown)
        assert(unistd.write(master, second .. "\n"))
        local code = S.wait_pid(pid, 30)
        return code, shown .. read_until(master, nil, 1)
    end

    it("asks for the password twice on a terminal and does not echo it", function()
        local name, secret = G.unique_name("tty"), "typed at a terminal"
        local code, shown = add_at_terminal(name, secret, secret)
        assert.are.equal(0, code, shown)
        assert.is_falsy(shown:find(secret, 1, true), "the password was echoed")

        local srv = G.start()
        assert.are.equal(200, G.login(srv, name, secret).status)
        srv:stop()
    end)

    it("changes nothing when the password typed again differs", function()
        local name = G.unique_name("typo")
        local code, shown = add_at_terminal(name, "typed at a terminal", "typed at a terminla")
        assert.are.equal(2, code, shown)
        assert.is_truthy(shown:find("the two passwords differ", 1, true), shown)
        assert.are.equal("", mariadb(("SELECT username FROM users WHERE username = '%s'"):format(name)))
    end)

    it("sets a new password and ends the account's sessions, keeping its rights unless told", function()
        local name = G.unique_name("reset")
        assert.is_true(add_user(name, "first password", true))
        local srv = G.start()
        local cookie = { Cookie = "sid=" .. sid_of(login(srv, name, "first password")) }
        assert.is_true(json(assert(srv:request("GET", "/api/me", cookie))).user.is_admin)

        assert.is_true(add_user(name, "second password"))
        assert.are.equal(401, assert(srv:request("GET", "/api/me", cookie)).status)
        assert.are.equal(401, login(srv, name, "first password").status)
        local again = login(srv, name, "second password")
        assert.are.equal(200, again.status)
        cookie.Cookie = "sid=" .. sid_of(again)
        assert.is_true(json(assert(srv:request("GET", "/api/me", cookie))).user.is_admin)

        assert.is_true(add_user(name, "third password", false))
        cookie.Cookie = "sid=" .. sid_of(login(srv, name, "third password"))
        assert.is_false(json(assert(srv:request("GET", "/api/me", cookie))).user.is_admin)
        srv:stop()
    end)

    it("refuses a name that finds an account spelt otherwise, leaving that account as it was", function()
        local name = G.unique_name("spelt")
        assert.is_true(add_user(name, "the real password", false))
        local ok, code = add_user(name:upper(), "an attacker's password", true)
        assert.is_false(ok)
        assert.are.equal(2, code)
        assert.are.equal(name .. "\t0\n",
            mariadb(("SELECT username, is_admin FROM users WHERE username = '%s'"):format(name)))
        local srv = G.start()
        assert.are.equal(200, login(srv, name, "the real password").status)
        srv:stop()
    end)

    -- Runs `luahost user add` with args and a password on stdin: exit code, stderr.
    local function user_add(args)
        local dir = S.tmpdir()
        S.write_file(dir .. "/password", "long enough password\n")
        local argv = { S.bin, "user", "add" }
        for _, a in ipairs(args) do
            argv[#argv + 1] = a
        end
        local code = S.wait_pid(S.spawn(argv, { stdin = dir .. "/password", stderr = dir .. "/stderr" }), 30)
        return code, S.read_file(dir .. "/stderr") or ""
    end

    local function account(name)
        return mariadb(("SELECT username FROM users WHERE username = '%s'"):format(name))
    end

    it("says NAME is missing rather than taking an option for it", function()
        mariadb("DELETE FROM users WHERE username = '--admin'")
        local code, err = user_add({ "--admin", "--app", "lua/app", "--db-url", DB_URL })
        assert.are.equal(2, code, err)
        assert.is_truthy(err:find("user add: NAME missing", 1, true), err)
        assert.are.equal("", account("--admin"))

        code, err = user_add({ "--app", "lua/app", "--db-url", DB_URL })
        assert.are.equal(2, code, err)
        assert.is_truthy(err:find("user add: NAME missing", 1, true), err)
    end)

    it("refuses a bad name before it reaches the database", function()
        -- No database URL at all: the name's rule answers first.
        for _, name in ipairs { " bob", "bob ", "a\tb", ("x"):rep(65), "bob\u{200B}", "\u{FEFF}bob",
            "b\u{00AD}ob", "bob\u{E0041}" } do
            local code, err = user_add({ name, "--app", "lua/app", "--db-url", "" })
            assert.are.equal(2, code, err)
            assert.is_truthy(err:find("user add: the name must be 1 to 64 bytes", 1, true), err)
        end
    end)

    it("takes the admin flag before NAME too, and refuses --check", function()
        local name = G.unique_name("flagfirst")
        local code, err = user_add({ "--admin", name, "--app", "lua/app", "--db-url", DB_URL })
        assert.are.equal(0, code, err)
        assert.are.equal(name .. "\n", account(name))
        assert.are.equal("1\n", mariadb(("SELECT is_admin FROM users WHERE username = '%s'"):format(name)))

        local other = G.unique_name("check")
        code, err = user_add({ other, "--no-admin", "--check", "--app", "lua/app", "--db-url", DB_URL })
        assert.are.equal(2, code, err)
        assert.is_truthy(err:find("run it without `user add`", 1, true), err)
        assert.are.equal("", account(other))
    end)

    it("tells apart names that differ only in characters outside the BMP", function()
        local base = G.unique_name("emoji")
        for _, name in ipairs { base .. "\u{1F600}", base .. "\u{1F525}" } do
            local code, err = user_add({ name, "--app", "lua/app", "--db-url", DB_URL })
            assert.are.equal(0, code, err)
            assert.is_truthy(err:find("user " .. name .. " created", 1, true), err)
        end
        local srv = G.start()
        local res = login(srv, base .. "\u{1F525}", "long enough password")
        assert.are.equal(200, res.status, res.body)
        local me = assert(srv:request("GET", "/api/me", { Cookie = "sid=" .. sid_of(res) }))
        assert.are.equal(base .. "\u{1F525}", json(me).user.username)
        assert.are.equal(401, login(srv, base .. "\u{1F4A9}", "long enough password").status)
        srv:stop()
    end)

    it("creates an account once when several runs add it at once, and none fails", function()
        -- InnoDB fails one of two transactions creating the same row with a
        -- deadlock or the unique key: that run starts again and finds it.
        for round = 1, 3 do
            local name = G.unique_name("race" .. round)
            local dir = S.tmpdir()
            S.write_file(dir .. "/password", "long enough password\n")
            local pids = {}
            for i = 1, 4 do
                pids[i] = S.spawn({ S.bin, "user", "add", name, "--app", "lua/app", "--db-url", DB_URL },
                    { stdin = dir .. "/password", stderr = dir .. "/stderr" .. i })
            end
            local created = 0
            for i = 1, 4 do
                local code = S.wait_pid(pids[i], 60)
                local err = S.read_file(dir .. "/stderr" .. i) or ""
                assert.are.equal(0, code, err)
                created = created + (err:find("user " .. name .. " created", 1, true) and 1 or 0)
            end
            assert.are.equal(1, created)
            assert.are.equal(name .. "\n", account(name))
        end
    end)

    it("refuses --admin with --no-admin", function()
        local name = G.unique_name("both")
        local code, err = user_add({ name, "--admin", "--app", "lua/app", "--no-admin", "--db-url", DB_URL })
        assert.are.equal(2, code, err)
        assert.is_truthy(err:find("--admin and --no-admin conflict", 1, true), err)
        assert.are.equal("", account(name))
    end)

    -- A copy of the gallery with one more migration, not applied yet.
    local function app_with_pending_migration()
        local app = S.copy_app("lua/app")
        local file = ("999_user_add_%s.sql"):format(G.unique_name("m"))
        S.write_file(app .. "/migrations/" .. file, "SELECT 1;\n")
        local function applied()
            return mariadb(("SELECT name FROM luahost_migrations WHERE name = '%s'"):format(file)) ~= ""
        end
        return app, file, applied
    end

    local PRODUCTION_SECRET = "accounts-spec-production-secret-0123456789"

    it("in production, refuses to run on pending migrations instead of applying them", function()
        local app, file, applied = app_with_pending_migration()
        local name = G.unique_name("prod")
        local code, err = user_add({ name, "--env", "production", "--app", app, "--db-url", DB_URL })
        assert.are.equal(2, code, err)
        assert.is_truthy(err:find(file .. " is not applied: run `luahost migrate` first", 1, true), err)
        assert.is_false(applied())
        assert.are.equal("", account(name))

        -- Nor does a start serve on it.
        local scode, _, serr = S.run_luahost({ "--env", "production", "--app", app, "--db-url", DB_URL,
            "--port", tostring(S.free_port()) }, { timeout = 30, env = { FINGERPRINT_SECRET = PRODUCTION_SECRET } })
        assert.are_not.equal(0, scode)
        assert.is_truthy(serr:find("start: migration .*" .. file:gsub("%p", "%%%0")
            .. " is not applied: run `luahost migrate` first"), serr)
        assert.is_false(applied())

        local mcode, _, merr = S.run_luahost({ "migrate", "--env", "production", "--app", app, "--db-url", DB_URL },
            { timeout = 30 })
        assert.are.equal(0, mcode, merr)
        code, err = user_add({ name, "--env", "production", "--app", app, "--db-url", DB_URL })
        assert.are.equal(0, code, err)
        assert.are.equal(name .. "\n", account(name))
    end)

    it("in development, applies pending migrations first", function()
        local app, _, applied = app_with_pending_migration()
        local name = G.unique_name("dev")
        local code, err = user_add({ name, "--env", "development", "--app", app, "--db-url", DB_URL })
        assert.are.equal(0, code, err)
        assert.is_true(applied())
        assert.are.equal(name .. "\n", account(name))
    end)

    it("starts in development migrating only once the scripts have loaded", function()
        local app, _, applied = app_with_pending_migration()
        S.write_file(app .. "/templates/broken.html", "<p>{{ unclosed </p>\n")
        local code, out, err = S.run_luahost({ "--env", "development", "--app", app, "--db-url", DB_URL,
            "--port", tostring(S.free_port()) }, { timeout = 30 })
        assert.are.equal(1, code, out .. err)
        assert.is_truthy(err:find("broken.html:1:", 1, true), err)
        assert.is_false(applied())
    end)

    it("refuses names with control characters or edge spaces, and passwords with a NUL byte", function()
        for _, bad in ipairs({ "qz\nx", "tab\tname", "   ", " lead", "trail ", "", "qz\255x", "qz\194\133x" }) do
            -- Exit status 2: refused by its rules, before the database.
            local ok, code = add_user(bad, "long enough password", false)
            assert.is_false(ok, ("%q"):format(bad))
            assert.are.equal(2, code, ("%q"):format(bad))
        end
        local name = G.unique_name("nul")
        local cmd = ("printf 'pw1pw1pw1\\000zz\\n' | %s user add %s --app lua/app --db-url %s"
            .. " --error-log /dev/null"):format(S.bin, name, S.shell_quote(DB_URL))
        local ok = os.execute(cmd)
        assert.is_false(ok == true or ok == 0, "a password with a NUL byte was taken")
        assert.are.equal("", mariadb(("SELECT id FROM users WHERE username = '%s'"):format(name)))
    end)
end)
