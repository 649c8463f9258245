-- The gallery's API against the real MariaDB (the test database): migrations
-- and seeds at start, the list's shape and bounds, views counted atomically,
-- the SVG under its own policy, the database health check, parameters bound;
-- private images for their owners and administrators only; public SVGs
-- cached on every instance sharing Redis, revalidated with their ETag, gone
-- at once after a delete.
local S = require "integration.support.server"

local G = require "integration.support.gallery"

local start, json = G.start, G.json

-- Signs a fresh account in on srv: the headers of its requests.
local function account(srv, prefix, is_admin)
    local name = G.unique_name(prefix)
    local secret = "correct horse battery"
    assert.is_true(G.add_user(name, secret, is_admin))
    return G.session_headers(srv, name, secret)
end

describe("gallery #integration", function()
    local srv

    setup(function()
        srv = start()
    end)

    teardown(function()
        S.stop_all()
    end)

    it("applies the migrations and seeds at start in development", function()
        assert.is_truthy(srv:error_log("migrate: ", 5, true), srv:error_log())
        local res = assert(srv:request("GET", "/api/svg/list?per_page=1"))
        assert.are.equal(200, res.status, res.body)
        assert.is_true(json(res).total_items >= 270) -- 300 seeded, every tenth private
    end)

    it("lists public images in the reference's shape, with totals", function()
        local res = assert(srv:request("GET", "/api/svg/list?page=2&per_page=5"))
        assert.are.equal(200, res.status, res.body)
        local body = json(res)
        assert.is_true(body.success)
        assert.are.equal(2, body.page)
        assert.are.equal(5, body.per_page)
        assert.are.equal(5, #body.items)
        assert.are.equal(math.ceil(body.total_items / 5), body.total_pages)
        for _, item in ipairs(body.items) do
            for _, field in ipairs({ "id", "filename", "created_at", "description", "is_public",
                "view_count" }) do
                assert.is_not_nil(item[field], field)
            end
            assert.are.equal(1, item.is_public)
            assert.are.equal("number", type(item.id))
        end
        assert.is_true(body.items[1].created_at >= body.items[5].created_at)
    end)

    it("answers 400 JSON for out-of-range or malformed pagination", function()
        for _, q in ipairs({ "page=0", "page=-1", "page=abc", "per_page=0", "per_page=101",
            "per_page=2.5", "page=1%20OR%201=1", "page=0x1", "page=1e0", "per_page=nan", "page=01",
            "per_page=012" }) do
            local res = assert(srv:request("GET", "/api/svg/list?" .. q))
            assert.are.equal(400, res.status, q .. ": " .. res.body)
            assert.is_false(json(res).success)
        end
    end)

    it("answers 400 JSON for a /sleep duration that is not a decimal from 0 to 10", function()
        local ua = { ["User-Agent"] = S.fresh_ua("sleep") } -- a fingerprint of its own, under the bot threshold
        for _, q in ipairs({ "nan", "inf", "-1", "11", "0x1", "1e0", "" }) do
            local res = assert(srv:request("GET", "/sleep?seconds=" .. q, ua))
            assert.are.equal(400, res.status, q .. ": " .. res.body)
            assert.is_false(json(res).success)
        end
        local res = assert(srv:request("GET", "/sleep?seconds=0.01", ua))
        assert.are.equal(200, res.status)
        assert.are.equal(0.01, json(res).slept)
    end)

    it("leaves /sleep out in production, and warns of a Redis without a password", function()
        local redis = S.redis()
        -- No database: production refuses the test database's development password.
        local prod = S.start({ app = "lua/app", args = { "--env", "production", "--db-url", "",
            "--redis-url", redis.url }, env = { FINGERPRINT_SECRET = "spec-secret-0123456789-abcdefghij-KLMNOP" } })
        local ua = { ["User-Agent"] = S.fresh_ua("prod-sleep") }
        local res = assert(prod:request("GET", "/sleep?seconds=0.01", ua))
        assert.are.equal(404, res.status, res.body)
        assert.are.equal(200, assert(prod:request("GET", "/health", ua)).status)
        assert.is_truthy(prod:error_log("[warn] production: redis_url has no password", 5, true), prod:error_log())
        -- Nor does the policy name a route the app lacks.
        assert.is_nil(prod:error_log():find("is not a route of", 1, true), prod:error_log())
        prod:stop()
        -- --check warns too, and passes.
        local code, out, err = S.run_luahost({ "--check", "--app", "lua/app", "--env", "production",
            "--db-url", "", "--redis-url", redis.url },
            { env = { FINGERPRINT_SECRET = "spec-secret-0123456789-abcdefghij-KLMNOP" } })
        assert.are.equal(0, code, err)
        assert.is_truthy(out:find("warning: production: redis_url has no password", 1, true), out)
        -- Development keeps it (the test above), and does not warn.
        assert.is_nil(srv:error_log():find("has no password", 1, true), srv:error_log())
    end)

    it("keeps database routes answering while more requests sleep than there are blocking threads", function()
        local own = start({ "--blocking-threads", "2" })
        local ua = { ["User-Agent"] = S.fresh_ua("sleepers") }
        local sleepers = {}
        for i = 1, 6 do
            sleepers[i] = S.send_only(own.port, "GET", "/sleep?seconds=3", ua)
        end
        S.sleep(0.3)
        local t0 = S.now()
        local res = assert(own:request("GET", "/api/svg/1"))
        local took = S.now() - t0
        assert.are.equal(200, res.status, res.body)
        assert.is_true(took < 1.5, ("a database route waited %.2f s behind the sleepers"):format(took))
        for _, c in ipairs(sleepers) do
            local done = assert(c:read_response())
            assert.are.equal(200, done.status, done.body)
            assert.are.equal(3, json(done).slept)
            c:close()
        end
        own:stop()
    end)

    it("counts a GET of an image as a view, and a HEAD not", function()
        local before = json(assert(srv:request("GET", "/api/svg/1"))).item.view_count
        for _, path in ipairs({ "/api/svg/1", "/image/1" }) do
            local head = assert(srv:request("HEAD", path))
            assert.are.equal(200, head.status, path)
        end
        local after = json(assert(srv:request("GET", "/api/svg/1"))).item.view_count
        assert.are.equal(before + 1, after) -- this GET only
    end)

    it("counts each view of an image atomically", function()
        local first = json(assert(srv:request("GET", "/api/svg/1"))).item
        local done = 0
        local clients = {}
        for i = 1, 4 do
            clients[i] = assert(srv:client())
        end
        for _ = 1, 5 do
            for _, c in ipairs(clients) do
                assert.are.equal(200, c:request("GET", "/api/svg/1").status)
                done = done + 1
            end
        end
        local last = json(assert(srv:request("GET", "/api/svg/1"))).item
        assert.are.equal(first.view_count + done + 1, last.view_count)
    end)

    it("answers 404 for a private, missing or malformed image id", function()
        for _, path in ipairs({ "/api/svg/10", "/api/svg/999999", "/api/svg/1%20OR%201=1",
            "/api/svg/0", "/svg/10.svg", "/svg/abc.svg", "/api/svg/0x1", "/api/svg/1e0", "/svg/0x1.svg", "/api/svg/1.0", "/api/svg/1.",
            "/api/svg/01", "/svg/01.svg", "/image/01" }) do
            local res = assert(srv:request("GET", path, { ["User-Agent"] = S.fresh_ua("ids") }))
            assert.are.equal(404, res.status, path .. ": " .. res.body)
        end
    end)

    it("serves the SVG as image/svg+xml under the locked-down policy", function()
        local res = assert(srv:request("GET", "/svg/1.svg"))
        assert.are.equal(200, res.status)
        assert.are.equal("image/svg+xml; charset=utf-8", res.headers["content-type"])
        assert.is_truthy(res.body:find("^<svg"))
        assert.is_truthy(res.headers["content-security-policy"]:find("^default%-src 'none'"))
        assert.are.equal("nosniff", res.headers["x-content-type-options"])
        assert.are.equal("public, max-age=300", res.headers["cache-control"])
        -- A cache miss is a database query: the per-address ceiling (the
        -- shipped policy's 2000 per hour) applies, the per-client limit not.
        assert.are.equal("2000", res.headers["x-ratelimit-limit"])
    end)

    it("reports the database healthy with the pool's stats", function()
        local res = assert(srv:request("GET", "/health/database"))
        assert.are.equal(200, res.status, res.body)
        local body = json(res)
        assert.is_true(body.healthy)
        assert.are.equal("default", body.stats.name)
        assert.are.equal(10, body.stats.size)
        assert.is_true(body.stats.served > 0)
    end)
end)

describe("gallery private images #integration", function()
    local srv, owner, other, admin
    local DRAWING = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>'

    -- Uploads as the owner; the new image's id.
    local function upload(is_public)
        local res = G.upload(srv, owner, { filename = "mine.svg", svg = DRAWING, is_public = is_public })
        assert.are.equal(201, res.status, res.body)
        return json(res).id
    end

    setup(function()
        srv = start()
        owner, other, admin = account(srv, "owner"), account(srv, "other"), account(srv, "admin", true)
    end)

    teardown(function()
        S.stop_all()
    end)

    it("shows a private image to its owner and administrators, kept by no cache, to nobody else", function()
        local id = upload(false)
        local paths = { "/api/svg/" .. id, "/svg/" .. id .. ".svg", "/image/" .. id }
        for who, headers in pairs({ owner = owner, admin = admin }) do
            for _, path in ipairs(paths) do
                local res = assert(srv:request("GET", path, headers))
                assert.are.equal(200, res.status, who .. " " .. path .. ": " .. res.body)
                -- Exactly this one: not besides the public SVG policy's max-age.
                assert.are.equal("private, no-store", res.headers["cache-control"], who .. " " .. path)
            end
            assert.are.equal(0, json(assert(srv:request("GET", paths[1], headers))).item.is_public)
            local image = assert(srv:request("GET", paths[2], headers))
            assert.is_truthy(image.body:find("^<svg"))
            -- Still the locked-down SVG policy.
            assert.is_truthy(image.headers["content-security-policy"]:find("^default%-src 'none'"))
        end
        -- Anyone else: not there at all, exactly like a missing image.
        for who, headers in pairs({ other = other, anonymous = {} }) do
            for _, path in ipairs(paths) do
                local res = assert(srv:request("GET", path, headers))
                assert.are.equal(404, res.status, who .. " " .. path .. ": " .. res.body)
            end
        end
        -- Its views are not counted (neither the owner's nor an administrator's).
        assert.are.equal(0, json(assert(srv:request("GET", paths[1], owner))).item.view_count)
        -- A public image's answers are as before, signed in or not.
        local public = upload(true)
        for _, headers in ipairs({ owner, {} }) do
            local meta = assert(srv:request("GET", "/api/svg/" .. public, headers))
            assert.are.equal(200, meta.status)
            assert.is_nil(meta.headers["cache-control"])
            local image = assert(srv:request("GET", "/svg/" .. public .. ".svg", headers))
            assert.are.same({ "public, max-age=300" }, S.header_values(image, "Cache-Control"))
            local page = assert(srv:request("GET", "/image/" .. public, headers))
            assert.are.equal("private, no-cache", page.headers["cache-control"])
        end
        for _, each in ipairs({ id, public }) do
            assert.are.equal(200, srv:request("DELETE", "/api/svg/" .. each, owner).status)
        end
    end)

    it("lists a private image to its owner with ?mine=1, never in the public list", function()
        local id = upload(false)
        local function ids_of(res)
            assert.are.equal(200, res.status, res.body)
            local found = {}
            for _, item in ipairs(json(res).items) do
                found[item.id] = item
            end
            return found
        end
        -- Newest first: it would be on the first page.
        assert.is_nil(ids_of(assert(srv:request("GET", "/api/svg/list?per_page=100", owner)))[id])
        local mine = assert(srv:request("GET", "/api/svg/list?mine=1&per_page=100", owner))
        assert.are.equal("private, no-store", mine.headers["cache-control"])
        local own = ids_of(mine)
        assert.are.equal(0, own[id].is_public)
        for _, item in pairs(own) do
            assert.are.equal(own[id].user_id, item.user_id)
        end
        assert.is_nil(ids_of(assert(srv:request("GET", "/api/svg/list?mine=1", other)))[id])
        assert.are.equal(401, assert(srv:request("GET", "/api/svg/list?mine=1")).status)
        assert.are.equal(400, assert(srv:request("GET", "/api/svg/list?mine=2", owner)).status)
        assert.are.equal(200, srv:request("DELETE", "/api/svg/" .. id, owner).status)
    end)
end)

describe("gallery SVG cache #integration", function()
    local r, a, b, owner, other
    local uploaded = {}

    -- A drawing no other image has: its title.
    local function drawing(title)
        return ('<svg xmlns="http://www.w3.org/2000/svg"><title>%s</title>'
            .. '<rect width="3" height="3"/></svg>'):format(G.unique_name(title))
    end

    -- Uploads svg as the owner through srv; the new image's id.
    local function upload(srv, svg, is_public)
        local res = G.upload(srv, owner, { filename = "cached.svg", svg = svg, is_public = is_public })
        assert.are.equal(201, res.status, res.body)
        local id = json(res).id
        uploaded[#uploaded + 1] = id
        return id
    end

    local function get(srv, id, headers)
        return assert(srv:request("GET", "/svg/" .. id .. ".svg", headers))
    end

    -- The answer once it has the status, or the last one after 2 s: another
    -- instance drops its L1 entry when the invalidation message reaches it.
    local function settled(srv, id, status)
        local res = get(srv, id)
        local deadline = S.now() + 2
        while res.status ~= status and S.now() < deadline do
            S.sleep(0.02)
            res = get(srv, id)
        end
        return res
    end

    setup(function()
        r = S.redis()
        a = start({ "--redis-url", r.url })
        b = start({ "--redis-url", r.url })
        owner, other = account(a, "svgowner"), account(a, "svgother")
    end)

    teardown(function()
        S.stop_all()
        if #uploaded > 0 then
            G.mariadb("DELETE FROM svg_image WHERE id IN (" .. table.concat(uploaded, ",") .. ")")
        end
    end)

    it("serves public SVGs from the cache, and an upload or a delete on one instance on every one", function()
        local original = drawing("kept")
        local id = upload(a, original, true)
        -- The next id (the suite uploads one image at a time), asked for
        -- before it exists: "none" is cached on both.
        for _, srv in ipairs({ a, b }) do
            assert.are.equal(404, get(srv, id + 1).status)
        end
        assert.are.equal(id + 1, upload(b, drawing("next"), true))
        assert.are.equal(200, get(b, id + 1).status)
        assert.are.equal(200, settled(a, id + 1, 200).status)

        for _, srv in ipairs({ a, b }) do
            assert.are.equal(original, get(srv, id).body)
        end
        -- Changed behind the servers' back: both still send their cached copy.
        G.mariadb(("UPDATE svg_image SET svg_content = '%s' WHERE id = %d"):format(drawing("changed"), id))
        for _, srv in ipairs({ a, b }) do
            assert.are.equal(original, get(srv, id).body)
        end

        assert.are.equal(200, assert(b:request("DELETE", "/api/svg/" .. id, owner)).status)
        assert.are.equal(404, get(b, id).status) -- the instance that deleted it: at once
        assert.are.equal(404, settled(a, id, 404).status)
    end)

    it("revalidates a public SVG with its ETag: 304 without a body, not for other content or after a delete",
        function()
        local id = upload(a, drawing("tagged"), true)
        local res = get(a, id)
        local etag = res.headers["etag"]
        assert.is_truthy(etag and etag:find('^"[^"]+"$'), "a strong ETag: " .. tostring(etag))
        for _, condition in ipairs({ etag, "W/" .. etag, '"other", ' .. etag, "*" }) do
            for _, method in ipairs({ "GET", "HEAD" }) do
                local again = assert(a:request(method, "/svg/" .. id .. ".svg",
                    { ["If-None-Match"] = condition }))
                assert.are.equal(304, again.status, method .. " " .. condition)
                assert.are.equal("", again.body)
                assert.are.equal(etag, again.headers["etag"])
                assert.are.equal("public, max-age=300", again.headers["cache-control"])
            end
        end
        -- The same content from the other instance: the same tag.
        assert.are.equal(etag, get(b, id).headers["etag"])

        local other_content = drawing("untagged")
        local changed = get(a, upload(a, other_content, true), { ["If-None-Match"] = etag })
        assert.are.equal(200, changed.status)
        assert.are.equal(other_content, changed.body)
        assert.are_not.equal(etag, changed.headers["etag"])

        assert.are.equal(200, assert(a:request("DELETE", "/api/svg/" .. id, owner)).status)
        assert.are.equal(404, get(a, id, { ["If-None-Match"] = etag }).status)
    end)

    it("keeps private images out of the shared cache, for their owner alone and never revalidated", function()
        local public, private = drawing("shared"), drawing("secret")
        local public_id, private_id = upload(a, public, true), upload(a, private, false)
        assert.are.equal(200, get(a, public_id).status)
        for _, srv in ipairs({ a, b }) do
            local own = get(srv, private_id, owner)
            assert.are.equal(200, own.status)
            assert.are.equal(private, own.body)
            assert.are.equal("private, no-store", own.headers["cache-control"])
            assert.is_nil(own.headers["etag"])
            local conditional = { Cookie = owner.Cookie, ["If-None-Match"] = "*" }
            assert.are.equal(200, get(srv, private_id, conditional).status)
            for _, headers in ipairs({ {}, other }) do
                assert.are.equal(404, get(srv, private_id, headers).status)
            end
        end
        -- What L2 holds: the public drawing, and never the private one.
        local held = {}
        for _, key in ipairs(r:keys("cache:*")) do
            held[#held + 1] = r:command("GET", key) or ""
        end
        held = table.concat(held, "\n")
        assert.is_truthy(held:find(public:match("<title>(.-)</title>"), 1, true))
        assert.is_nil(held:find(private:match("<title>(.-)</title>"), 1, true))
    end)
end)

describe("gallery without its database #integration", function()
    after_each(function()
        S.stop_all()
    end)

    it("refuses to start when the database never answers, saying where it tried", function()
        local code, _, err = S.run_luahost({ "--app", "lua/app", "--db-url",
            "mysql://luahost:secret-password@127.0.0.1:1/luahost", "--port", tostring(S.free_port()) },
            { timeout = 30 })
        assert.are_not.equal(0, code)
        assert.is_truthy(err:find("127.0.0.1:1", 1, true), err)
        assert.is_nil(err:find("secret-password", 1, true), "the password leaked: " .. err)
    end)
end)

describe("gallery during a database outage #integration", function()
    -- A private MariaDB (scripts/services.sh in a temporary folder), stopped
    -- under the server: the suite's own database stays up for the others.
    local dir, port, saved_url, srv
    local function mariadb(action)
        local code, out, err = S.run({ "scripts/services.sh", action, "mariadb" }, { timeout = 60,
            env = { LUAHOST_SERVICES_DIR = dir, LUAHOST_MARIADB_PORT = port } })
        assert(code == 0, ("services.sh %s mariadb: %s%s"):format(action, out, err))
    end

    setup(function()
        dir, port, saved_url = S.tmpdir(), S.free_port(), G.DB_URL
        mariadb("start")
        G.DB_URL = ("mysql://luahost:luahost-dev@127.0.0.1:%d/luahost"):format(port)
        srv = start({ "--workers", "2" })
    end)

    teardown(function()
        mariadb("stop") -- before stop_all removes its folder
        G.DB_URL = saved_url
        S.stop_all()
    end)

    it("answers a signed-in user 503, not \"sign in\", and serves anonymous pages", function()
        local h = account(srv, "outage", true)
        local signed_in = { Cookie = h.Cookie }
        assert.are.equal(200, assert(srv:request("GET", "/api/me", signed_in)).status)
        -- "No public image 999999" is cached: then only the session lookup,
        -- for the asker's own private image, needs the database.
        assert.are.equal(404, assert(srv:request("GET", "/svg/999999.svg")).status)
        mariadb("stop")
        local logged_before = #srv:error_log()
        local res = assert(srv:request("GET", "/svg/999999.svg", signed_in))
        assert.are.equal(503, res.status, res.body)

        -- The alerts need no session from metrics_allow (loopback): the outage's own shows.
        assert.are.equal(200, assert(srv:request("GET", "/api/monitor/alerts", signed_in)).status)
        for _, path in ipairs({ "/api/me", "/api/svg/list?mine=1" }) do
            local res = assert(srv:request("GET", path, signed_in))
            assert.are.equal(503, res.status, path .. ": " .. res.body)
            assert.are.same({ success = false, message = "Service unavailable" }, json(res))
        end
        for _, path in ipairs({ "/upload", "/signin", "/" }) do
            local res = assert(srv:request("GET", path, signed_in))
            assert.are.equal(503, res.status, path .. ": " .. res.body)
            assert.is_truthy(res.headers["content-type"]:find("text/html", 1, true))
            assert.is_nil(res.headers["location"])
            assert.is_truthy(res.body:find("cannot serve this page right now", 1, true), res.body)
        end

        -- Sign-in says the same of the same outage.
        res = assert(srv:request("POST", "/api/login", { ["Content-Type"] = "application/json" },
            '{"username":"outage","password":"whatever-it-is"}'))
        assert.are.equal(503, res.status, res.body)
        assert.are.same({ success = false, message = "Service unavailable" }, json(res))

        -- A dozen requests failed for the outage: one line in each worker
        -- at most, not one per request.
        local outage_log = srv:error_log():sub(logged_before + 1)
        assert.is_true(S.count(outage_log, "[error]") <= 2, outage_log)
        assert.is_truthy(outage_log:find("session lookup: ", 1, true), outage_log)

        -- No cookie, no lookup: what needs no database still works.
        assert.are.equal(200, assert(srv:request("GET", "/")).status)
        assert.are.equal(200, assert(srv:request("GET", "/signin")).status)
        local upload = assert(srv:request("GET", "/upload"))
        assert.are.equal(302, upload.status)
        assert.are.equal("/signin?next=/upload", upload.headers["location"])
        assert.are.equal(401, assert(srv:request("GET", "/api/me")).status)
    end)
end)
