-- The database layer (require "luahost.db") over real HTTP on loopback,
-- against the real MariaDB: typed values through JSON, bound parameters,
-- execute / execute_many / transactions, errors and their kinds, the pool
-- under exhaustion and under 64 concurrent clients, the statement time limit,
-- and a MariaDB restart (of a private mariadbd, never the shared one) without
-- restarting luahost. The application is spec/integration/dbapp.
local S = require "integration.support.server"
local cjson = require "cjson"
local unistd = require "posix.unistd"

-- The test database of scripts/services.sh, unless LUAHOST_TEST_DB_URL says otherwise.
local DB_URL = os.getenv("LUAHOST_TEST_DB_URL")
    or (os.getenv("LUAHOST_DB_URL") or "mysql://luahost:luahost-dev@127.0.0.1:13306/luahost")
        :gsub("/[^/]*$", "/luahost_test")
local DB_USER = DB_URL:match("^mysql://([^:@/]+)")
local DB_NAME = DB_URL:match("/([^/?]+)$")
local DB_PORT = tonumber(DB_URL:match("@[^:/]+:(%d+)/")) or 3306

local APP = "spec/integration/dbapp"
local JSON_HEADERS = { ["Content-Type"] = "application/json" }

local function start(args, db_url)
    local argv = { "--db-url", db_url or DB_URL, "--env", "development" }
    for _, a in ipairs(args or {}) do
        argv[#argv + 1] = a
    end
    return S.start({
        app = APP,
        args = argv,
        env = { FINGERPRINT_SECRET = "spec-secret-0123456789-abcdefghij-KLMNOP" },
        timeout = 20,
    })
end

local function json(res)
    local ok, value = pcall(cjson.decode, res.body)
    assert(ok, "not JSON: " .. tostring(res.body))
    return value
end

local function get(srv, path, timeout)
    return assert(srv:request("GET", path, nil, nil, timeout))
end

-- value: a table (encoded here) or JSON text as it is.
local function post(srv, path, value, timeout)
    local body = type(value) == "string" and value or value ~= nil and cjson.encode(value) or ""
    return assert(srv:request("POST", path, JSON_HEADERS, body, timeout))
end

-- res and the seconds it took.
local function timed(fn, ...)
    local t = S.now()
    local res = fn(...)
    return res, S.now() - t
end

local function stats(srv)
    local res = get(srv, "/stats")
    assert.are.equal(200, res.status, res.body)
    return json(res).stats
end

-- Polls until pred(stats) holds (bounded); the last stats.
local function wait_stats(srv, pred, timeout)
    local deadline = S.now() + (timeout or 5)
    local s
    repeat
        s = stats(srv)
        if pred(s) then
            return s
        end
        S.sleep(0.05)
    until S.now() > deadline
    return s
end

local function hex(s)
    return (s:gsub(".", function(c)
        return ("%02X"):format(c:byte())
    end))
end

local function utf8_chars(s)
    local _, n = s:gsub("[^\128-\191]", "")
    return n
end

local tag_seq = 0
local function new_tag(what)
    tag_seq = tag_seq + 1
    return ("%s-%d-%d"):format(what, unistd.getpid(), tag_seq)
end

-- Local ports of the TCP connections that process pid holds to port
-- (from /proc/<pid>/fd and /proc/net/tcp{,6}): which PROCESSLIST rows are its.
local function client_ports(pid, port)
    local inodes = {}
    -- (ls, not posix.unistd.readlink: that refuses /proc links, which report size 64)
    local ls = assert(io.popen("ls -l /proc/" .. tonumber(pid) .. "/fd 2>/dev/null"))
    for inode in ls:read("*a"):gmatch("socket:%[(%d+)%]") do
        inodes[inode] = true
    end
    ls:close()
    local ports, n = {}, 0
    for _, file in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
        for line in (S.read_file(file) or ""):gmatch("[^\n]+") do
            local lport, rport, st, inode = line:match(
                "^%s*%d+:%s+%x+:(%x+)%s+%x+:(%x+)%s+(%x+)%s+%S+%s+%S+%s+%S+%s+%d+%s+%d+%s+(%d+)")
            if lport and tonumber(rport, 16) == port and st == "01" and inodes[inode] then
                ports[tonumber(lport, 16)] = true
                n = n + 1
            end
        end
    end
    return ports, n
end

-- -- A private mariadbd (scripts/services.sh, STACK.md section 9) ------------

local privates = {}

local function mariadb_private()
    local dir = S.tmpdir()
    local m = {
        dir = dir,
        datadir = dir .. "/data",
        sock = dir .. "/m.sock",
        port = S.free_port(),
        log = dir .. "/mysql.err",
    }
    privates[#privates + 1] = m
    local code, _, err = S.run({ "mariadb-install-db", "--no-defaults", "--user=root",
        "--datadir=" .. m.datadir, "--auth-root-authentication-method=normal", "--skip-test-db" },
        { timeout = 60 })
    assert(code == 0, "mariadb-install-db failed: " .. err)

    function m:ping()
        return S.run({ "mariadb-admin", "--no-defaults", "--socket=" .. self.sock, "-uroot",
            "ping" }, { timeout = 5 }) == 0
    end

    function m:start()
        assert(self.pid == nil, "mariadbd is already running")
        self.pid = S.spawn({ "mariadbd", "--no-defaults", "--user=root",
            "--datadir=" .. self.datadir, "--socket=" .. self.sock,
            "--pid-file=" .. self.dir .. "/mysql.pid", "--port=" .. self.port,
            "--bind-address=127.0.0.1", "--skip-name-resolve", "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci", "--log-error=" .. self.log })
        local deadline = S.now() + 30
        while not self:ping() do
            if S.wait_pid(self.pid, 0) ~= nil then
                self.pid = nil
                error("mariadbd exited:\n" .. (S.read_file(self.log) or ""))
            end
            assert(S.now() < deadline, "mariadbd did not answer within 30 s")
            S.sleep(0.1)
        end
        return self
    end

    function m:sql(text)
        local c, out, e = S.run({ "mariadb", "--no-defaults", "--socket=" .. self.sock, "-uroot",
            "-e", text }, { timeout = 10 })
        assert(c == 0, "mariadb: " .. e)
        return out
    end

    -- A clean shutdown (mariadb-admin), reaped; SIGKILL if it lingers.
    function m:shutdown()
        if self.pid == nil then
            return
        end
        S.run({ "mariadb-admin", "--no-defaults", "--socket=" .. self.sock, "-uroot", "shutdown" },
            { timeout = 20 })
        if S.wait_pid(self.pid, 15) == nil then
            S.kill(self.pid, "KILL")
            S.wait_pid(self.pid, 5)
        end
        self.pid = nil
    end

    function m:kill()
        if self.pid ~= nil then
            S.kill(self.pid, "KILL")
            S.wait_pid(self.pid, 5)
            self.pid = nil
        end
    end

    return m
end

local function stop_privates()
    for i = #privates, 1, -1 do
        privates[i]:kill()
        privates[i] = nil
    end
end

-- -- Values, parameters, statements, transactions --------------------------

describe("luahost.db against MariaDB #integration", function()
    local srv

    setup(function()
        srv = start()
        local res = post(srv, "/reset")
        assert.are.equal(200, res.status, res.body)
    end)

    teardown(function()
        S.stop_all()
    end)

    local function insert(v, n, tag)
        local res = post(srv, "/items", { v = v, n = n == nil and cjson.null or n, tag = tag })
        assert.are.equal(200, res.status, res.body)
        return json(res)
    end

    local function item(id)
        local res = get(srv, "/items/" .. id)
        assert.are.equal(200, res.status, res.body)
        return json(res)
    end

    local function list(tag)
        local res = get(srv, "/items?tag=" .. tag)
        assert.are.equal(200, res.status, res.body)
        return json(res)
    end

    local function table_exists()
        local res = get(srv, "/table")
        assert.are.equal(200, res.status, res.body)
        return json(res).exists
    end

    it("returns integers as numbers, NULL as JSON null (db.null is cjson.null)", function()
        local tag = new_tag("types")
        local r = insert("plain", 42, tag)
        local got = item(r.insert_id)
        assert.are.equal(r.insert_id, got.item.id)
        assert.are.equal("number", got.types.id)
        assert.are.equal("number", got.types.n)
        assert.are.equal(42, got.item.n)
        assert.are.equal("plain", got.item.v)
        assert.is_truthy(got.item.created:match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$"),
            got.item.created)

        local null = item(insert("no n", nil, tag).insert_id)
        assert.are.equal(cjson.null, null.item.n) -- the key is present, as JSON null
        assert.are.equal("null", null.types.n)
        assert.is_true(null.n_is_db_null)
        assert.is_true(null.db_null_is_cjson_null)

        local neg = item(insert("negative", -123456789, tag).insert_id)
        assert.are.equal(-123456789, neg.item.n)

        local res = get(srv, "/types")
        assert.are.equal(200, res.status, res.body)
        local t = json(res)
        assert.are.same({ i = "number", neg = "number", nul = "null", s = "string", dbl = "number",
            big = "number", dt = "string", param_null = "null", param_true = "number" }, t.types)
        assert.are.equal(42, t.row.i)
        assert.are.equal(-7, t.row.neg)
        assert.are.equal(cjson.null, t.row.nul)
        assert.are.equal(cjson.null, t.row.param_null)
        assert.are.equal(1, t.row.param_true)
        assert.are.equal(2.5, t.row.dbl)
        assert.are.equal("h\195\169llo", t.row.s)
        assert.are.equal("2026-01-02 03:04:05", t.row.dt)
        assert.is_true(t.big_exact) -- exact in Lua
    end)

    it("keeps integers above 10^14 exact through res:json", function()
        -- The binding hands Lua the exact integer (big_exact above); the JSON
        -- answer carries it exactly too (luahost.json, not cjson's 14 digits).
        local tag = new_tag("bigint")
        for _, n in ipairs({ 123456789012345, 4503599627370497, 9007199254740991 }) do
            -- cjson would send only 14 digits: write the request body by hand.
            local res = post(srv, "/items",
                ('{"v":"big","n":%d,"tag":"%s"}'):format(n, tag))
            assert.are.equal(200, res.status, res.body)
            local raw = get(srv, "/items/" .. json(res).insert_id).body
            assert.is_truthy(raw:find('"n":' .. ("%d"):format(n), 1, true),
                ("n = %d comes back as: %s"):format(n, raw))
        end
    end)

    it("round-trips utf8mb4 text (emoji, 4-byte characters) byte for byte", function()
        local tag = new_tag("utf8")
        local s = "emoji \240\159\152\128\240\159\142\137 \226\128\148 "
            .. "\195\188n\195\175c\195\182d\195\169 \240\157\132\158 \228\184\173\230\150\135"
        local got = item(insert(s, 1, tag).insert_id)
        assert.are.equal(s, got.item.v)
        assert.are.equal(hex(s), got.item.hex)
        assert.are.equal(#s, got.item.bytes)
        assert.are.equal(utf8_chars(s), got.item.chars)
        local found = json(post(srv, "/items/find", { tag = tag, v = s }))
        assert.are.equal(1, found.count)
    end)

    it("stores SQL-injection strings, quotes, backslashes and NUL bytes literally", function()
        local tag = new_tag("inject")
        local nasty = {
            "x'); DROP TABLE db_spec_items; --",
            "1 OR 1=1",
            "' OR '1'='1",
            "\" OR \"\"=\"",
            "'; DELETE FROM db_spec_items WHERE '1'='1",
            "back\\slash \\' \\\" \\\\",
            "a\0b",
            "\0",
            "line\nbreak\r\ttab",
            "%_ LIKE wildcards",
            "?",
            "`; SELECT SLEEP(10); --",
        }
        local ids = {}
        for i, s in ipairs(nasty) do
            local r = insert(s, i, tag)
            assert.are.equal(1, r.affected)
            ids[i] = r.insert_id
        end
        for i, s in ipairs(nasty) do
            local got = item(ids[i])
            assert.are.equal(s, got.item.v, "value " .. i)
            assert.are.equal(hex(s), got.item.hex, "value " .. i)
            assert.are.equal(#s, got.item.bytes, "value " .. i)
            -- and as a bound parameter in a WHERE: exactly its own row
            local found = json(post(srv, "/items/find", { tag = tag, v = s }))
            assert.are.equal(1, found.count, "find " .. i .. ": " .. cjson.encode(found))
            assert.are.equal(ids[i], found.items[1].id)
        end
        assert.is_true(table_exists())
        assert.are.equal(#nasty, list(tag).count)
        -- an injection string as the id of a route that binds it: no row, no error
        local res = get(srv, "/items/1%20OR%201=1")
        assert.are.equal(404, res.status, res.body)
        assert.is_true(table_exists())
    end)

    it("db.execute returns the affected rows and the insert id", function()
        local tag = new_tag("execute")
        local a = insert("one", 1, tag)
        local b = insert("two", 2, tag)
        assert.are.equal(1, a.affected)
        assert.are.equal("number", a.insert_id_type)
        assert.are.equal("number", a.affected_type)
        assert.is_true(a.insert_id > 0)
        assert.is_true(b.insert_id > a.insert_id)
        assert.are.equal("two", item(b.insert_id).item.v)
        local res = post(srv, "/reset?tag=" .. tag)
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(2, json(res).deleted) -- DELETE's affected rows
        assert.are.equal(0, list(tag).count)
    end)

    it("db.execute_many inserts a batch in one transaction; one bad row inserts nothing", function()
        local tag = new_tag("many")
        local rows = {}
        for i = 1, 25 do
            rows[i] = { "row " .. i, i }
        end
        local res = post(srv, "/items/many", { tag = tag, rows = rows })
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(25, json(res).affected)
        local l = list(tag)
        assert.are.equal(25, l.count)
        assert.are.equal("row 1", l.items[1].v)
        assert.are.equal(25, l.items[25].n)

        local bad_tag = new_tag("many-bad")
        local bad = { { "ok 1", 1 }, { "ok 2", 2 }, { cjson.null, 3 }, { "ok 4", 4 } }
        res = post(srv, "/items/many", { tag = bad_tag, rows = bad })
        assert.are.equal(500, res.status, res.body)
        local body = json(res)
        assert.are.equal("sql", body.kind)
        assert.is_truthy(body.err:find("cannot be null", 1, true), body.err)
        assert.are.equal(0, list(bad_tag).count)
        assert.are.equal(0, wait_stats(srv, function(s) return s.active == 0 end).active)
    end)

    it("db.transaction commits when the function returns, and returns its results", function()
        local tag = new_tag("tx-commit")
        local res = post(srv, "/tx/commit?tag=" .. tag)
        assert.are.equal(200, res.status, res.body)
        local body = json(res)
        assert.are.equal(2, body.seen_inside)
        local l = list(tag)
        assert.are.equal(2, l.count)
        assert.are.same(body.ids, { l.items[1].id, l.items[2].id })
    end)

    it("db.transaction rolls back on a Lua error: 500 JSON, traceback only in the log", function()
        local tag = new_tag("tx-boom")
        local res = post(srv, "/tx/boom?tag=" .. tag)
        assert.are.equal(500, res.status, res.body)
        assert.is_truthy(res.headers["content-type"]:find("application/json", 1, true))
        local body = json(res)
        assert.is_false(body.success)
        assert.is_nil(res.body:find("boom", 1, true), res.body)
        assert.is_nil(res.body:find("traceback", 1, true), res.body)
        assert.is_nil(res.body:find("routes.lua", 1, true), res.body)
        local line = srv:error_log("boom", 5, true)
        assert.is_truthy(line, srv:error_log())
        assert.is_truthy(srv:error_log("stack traceback", 5, true), srv:error_log())
        assert.are.equal(0, list(tag).count)
        local s = wait_stats(srv, function(st) return st.active == 0 end)
        assert.are.equal(0, s.active)
    end)

    it("db.transaction with assert(tx:execute(...)) on a failing statement rolls back", function()
        local tag = new_tag("tx-assert")
        local res = post(srv, "/tx/assert?tag=" .. tag)
        assert.are.equal(500, res.status, res.body)
        local body = json(res)
        assert.is_true(body.raised)
        assert.is_truthy(body.err:find("cannot be null", 1, true), body.err)
        assert.are.equal(0, list(tag).count) -- the first insert is gone too
        assert.are.equal(0, wait_stats(srv, function(s) return s.active == 0 end).active)
    end)

    it("db.query_one returns nil for no row", function()
        local res = get(srv, "/query_one/none")
        assert.are.equal(200, res.status, res.body)
        local body = json(res)
        assert.is_true(body.success)
        assert.is_true(body.is_nil)
        assert.is_nil(body.err)
    end)

    it("a parameter count mismatch or bad SQL gives nil, err, \"sql\"", function()
        local res = get(srv, "/mismatch")
        assert.are.equal(200, res.status, res.body)
        local r = json(res).results
        for _, case in ipairs({ "too_few", "too_many", "execute", "syntax" }) do
            assert.is_true(r[case].is_nil, case)
            assert.are.equal("sql", r[case].kind, case)
            assert.are.equal("string", type(r[case].err), case)
        end
        assert.is_truthy(r.too_few.err:find("wants 2 parameters, got 1", 1, true), r.too_few.err)
        assert.is_truthy(r.too_many.err:find("wants 1 parameter, got 2", 1, true), r.too_many.err)
        -- the connections survive SQL errors
        assert.are.equal(200, get(srv, "/one").status)
    end)

    it("returns text longer than the binding's 1 MiB buffer whole", function()
        for _, bytes in ipairs({ 70000, 3 * 1024 * 1024 }) do
            local res = get(srv, "/bigtext?bytes=" .. bytes)
            assert.are.equal(200, res.status, res.body)
            local body = json(res)
            assert.are.equal(body.server_length, body.length)
            assert.is_true(body.length > bytes - 6)
            assert.is_true(body.equal)
        end
    end)

    it("logs slow statements without parameters, long holds with the request id", function()
        -- over leak_after (5 s) by more than the monitor's 1 s period
        local holder = S.send_only(srv.port, "GET", "/hold?seconds=6.3")
        local secret = "secret-param-" .. unistd.getpid()
        local res = get(srv, "/slow?seconds=1.2&secret=" .. secret)
        assert.are.equal(200, res.status, res.body)
        local line = srv:error_log("slow statement", 5, true)
        assert.is_truthy(line, srv:error_log())
        assert.is_truthy(line:find("SELECT SLEEP(?) AS s, ? AS secret", 1, true), line)
        holder:settimeout(10)
        local h = assert(holder:read_response())
        holder:close()
        assert.are.equal(200, h.status, h.body)
        local id = json(h).request_id
        local held = srv:error_log("connection held for", 5, true)
        assert.is_truthy(held, srv:error_log())
        assert.is_truthy(held:find(id, 1, true), held .. " does not name " .. id)
        assert.is_truthy(held:find("GET /hold", 1, true), held .. " does not name the route")
        assert.is_nil(srv:error_log():find(secret, 1, true), "a parameter reached the log")
        local s = stats(srv)
        assert.is_true(s.slow >= 1, cjson.encode(s))
        assert.is_true(s.long_running >= 1, cjson.encode(s))
    end)

    it("reports the database healthy with the pool's stats", function()
        local res = get(srv, "/health/database")
        assert.are.equal(200, res.status, res.body)
        local body = json(res)
        assert.is_true(body.healthy)
        local s = body.stats
        assert.are.equal("default", s.name)
        assert.are.equal(10, s.size)
        for _, f in ipairs({ "active", "idle", "open", "served", "waits", "timeouts", "errors",
            "long_running", "slow" }) do
            assert.are.equal("number", type(s[f]), f)
        end
        assert.is_true(s.served > 0)
        assert.is_true(s.open >= 1 and s.open <= s.size)
        assert.is_true(s.errors >= 1) -- the SQL errors above count
    end)
end)

-- -- The pool ------------------------------------------------------------------

describe("luahost.db pool limits #integration", function()
    after_each(function()
        S.stop_all()
    end)

    it("answers 503 timeout after --db-timeout when the pool is exhausted", function()
        local srv = start({ "--db-pool-size", "2", "--db-timeout", "1" })
        local HOLD = 2
        assert.are.equal(200, get(srv, "/one").status)
        local holders = {}
        for i = 1, 2 do
            holders[i] = S.send_only(srv.port, "GET", "/hold?seconds=" .. HOLD)
        end
        local held_at = S.now()
        local s = wait_stats(srv, function(st) return st.active == 2 end, 3)
        assert.are.equal(2, s.active)

        local res, took = timed(get, srv, "/one", 5)
        assert.are.equal(503, res.status, res.body)
        local body = json(res)
        assert.are.equal("timeout", body.kind)
        assert.is_truthy(body.err:find("pool exhausted", 1, true), body.err)
        assert.is_true(took >= 0.8, ("answered in %.2fs, before --db-timeout"):format(took))
        assert.is_true(took < HOLD,
            ("answered in %.2fs, not before the holders let go"):format(took))
        assert.is_true(S.now() - held_at < HOLD, "the holders were still holding")

        for i = 1, 2 do
            holders[i]:settimeout(5)
            local h = assert(holders[i]:read_response())
            holders[i]:close()
            assert.are.equal(200, h.status, h.body)
        end
        s = wait_stats(srv, function(st) return st.active == 0 end, 3)
        assert.are.equal(0, s.active)
        assert.is_true(s.timeouts >= 1, cjson.encode(s))
        assert.is_true(s.waits >= 1, cjson.encode(s))
        assert.are.equal(200, get(srv, "/one").status)
    end)

    it("cuts a statement off at --db-statement-timeout (kind timeout), pool usable", function()
        local srv = start({ "--db-pool-size", "1", "--db-statement-timeout", "1" })
        local before = get(srv, "/one")
        assert.are.equal(200, before.status, before.body)
        local res, took = timed(get, srv, "/slow?seconds=5", 10)
        assert.are.equal("timeout", json(res).kind, res.body)
        assert.are.equal(503, res.status, res.body)
        assert.is_true(took < 4.5, ("SELECT SLEEP(5) answered after %.2fs"):format(took))
        local after = get(srv, "/one")
        assert.are.equal(200, after.status, after.body)
        -- one connection in the pool: the same session served the next query
        assert.are.equal(json(before).connection, json(after).connection)
        local s = stats(srv)
        assert.are.equal(0, s.active)
        assert.is_true(s.errors >= 1)
    end)

    it("serves 64 concurrent clients with several queries each, no leaks", function()
        local POOL = 8
        local srv = start({ "--db-pool-size", tostring(POOL) })
        local CLIENTS, ROUNDS = 64, 4
        local clients = {}
        for i = 1, CLIENTS do
            clients[i] = assert(srv:client(10))
        end
        local ok = 0
        for round = 1, ROUNDS do
            for i, c in ipairs(clients) do -- all 64 in flight at once
                assert(c:send(S.format_request("GET", ("/calc?n=%d"):format(round * 1000 + i))))
            end
            for i, c in ipairs(clients) do
                local res, err = c:read_response()
                assert.is_truthy(res, err)
                assert.are.equal(200, res.status, res.body)
                assert.are.equal(round * 1000 + i, json(res).n)
                ok = ok + 1
            end
        end
        for _, c in ipairs(clients) do
            c:close()
        end
        assert.are.equal(CLIENTS * ROUNDS, ok)

        local wrk = io.popen("command -v wrk")
        local have_wrk = wrk:read("*a") ~= ""
        wrk:close()
        if have_wrk then
            local code, out, err = S.run({ "wrk", "-t2", "-c64", "-d3s", "--timeout", "5s",
                ("http://127.0.0.1:%d/calc?n=7"):format(srv.port) }, { timeout = 20 })
            assert.are.equal(0, code, err)
            local requests = tonumber(out:match("(%d+) requests in"))
            assert.is_truthy(requests and requests > 64, out)
            assert.is_nil(out:find("Non%-2xx"), out)
            assert.is_nil(out:find("Socket errors"), out)
        end

        local s = wait_stats(srv, function(st) return st.active == 0 end, 3)
        assert.are.equal(0, s.active)
        assert.is_true(s.open <= POOL, cjson.encode(s))
        assert.are.equal(0, s.timeouts)

        -- the server's view: sessions of our user on our database, through the pool
        local res = get(srv, ("/processlist?user=%s&db=%s"):format(DB_USER, DB_NAME))
        assert.are.equal(200, res.status, res.body)
        local pl = json(res)
        local ours, nsockets = client_ports(srv.pid, DB_PORT)
        local mine = 0
        for _, row in ipairs(pl.sessions) do
            local port = tonumber(tostring(row.host):match(":(%d+)$"))
            if port and ours[port] then
                mine = mine + 1
            end
        end
        -- the pool's, and the health check's own (the monitor pings every second)
        assert.is_true(mine >= 1, "the checker's own session is not listed: " .. res.body)
        assert.is_true(mine <= POOL + 1, ("%d sessions of this luahost (pool %d): %s"):format(mine,
            POOL, res.body))
        assert.is_true(nsockets <= POOL + 1, ("luahost holds %d sockets to MariaDB"):format(nsockets))
    end)
end)

-- -- A restart of MariaDB -------------------------------------------------------

describe("luahost.db across a MariaDB restart #integration", function()
    after_each(function()
        stop_privates()
        S.stop_all()
    end)

    it("answers 503 while the database is down and recovers without a luahost restart", function()
        local m = mariadb_private()
        m:start()
        m:sql([[
            CREATE DATABASE spec CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
            CREATE USER 'u'@'127.0.0.1' IDENTIFIED BY 'pw';
            GRANT ALL ON spec.* TO 'u'@'127.0.0.1';]])
        local srv = start({ "--db-pool-size", "2", "--db-timeout", "1" },
            ("mysql://u:pw@127.0.0.1:%d/spec"):format(m.port))
        local pid = srv.pid
        assert.are.equal(200, get(srv, "/health/database").status)
        assert.are.equal(200, get(srv, "/one").status)
        assert.are.equal(200, get(srv, "/calc?n=3").status)

        m:shutdown()

        for i = 1, 4 do
            local res, took = timed(get, srv, "/one", 15)
            assert.are.equal(503, res.status, "request " .. i .. ": " .. res.body)
            assert.are.equal("io", json(res).kind, res.body)
            assert.is_true(took < 3, ("request %d took %.2fs"):format(i, took))
        end
        local res, took = timed(get, srv, "/health/database", 15)
        assert.are.equal(503, res.status, res.body)
        assert.is_false(json(res).healthy)
        assert.is_true(took < 3, ("health took %.2fs"):format(took))
        assert.is_true(srv:running(), srv:error_log())

        m:start() -- same datadir, same port
        local deadline = S.now() + 10
        repeat
            res = get(srv, "/health/database", 15)
            if res.status == 200 then
                break
            end
            S.sleep(0.1)
        until S.now() > deadline
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(200, get(srv, "/one").status)
        for n = 1, 5 do
            local r = get(srv, "/calc?n=" .. n)
            assert.are.equal(200, r.status, r.body)
        end
        assert.is_true(srv:running())
        assert.are.equal(pid, srv.pid)
        assert.is_truthy(srv:error_log("reconnected", 2, true), srv:error_log())
        assert.are.equal(0, wait_stats(srv, function(s) return s.active == 0 end).active)
    end)
end)

-- -- The health check and the database_down alert ----------------------------

-- The gallery's policies, loopback exempt from the limits, with the
-- gallery's database_down as the only alert rule, for a shorter time.
local function database_down_policy()
    local dir = S.tmpdir()
    S.copy_dir("lua/policy", dir)
    S.write_file(dir .. "/limits.lua", ([[
        local limits = dofile(%q)
        limits.exempt = { "127.0.0.0/8", "::1/128" }
        return limits]]):format(unistd.getcwd() .. "/lua/policy/limits.lua"))
    S.write_file(dir .. "/alerts.lua", [[return { rules = {
        { name = "database_down", metric = "db_healthy", below = 1, for_seconds = 2,
          severity = "critical", description = "the database health check fails" },
    } }]])
    return dir
end

local function firing(srv)
    local res = get(srv, "/api/monitor/alerts")
    assert.are.equal(200, res.status, res.body)
    local names = {}
    for _, a in ipairs(json(res).alerts) do
        names[a.name] = true
    end
    return names
end

describe("the database health check #integration", function()
    after_each(function()
        stop_privates()
        S.stop_all()
    end)

    it("stays healthy, and database_down silent, while requests hold every connection", function()
        local srv = start({ "--db-pool-size", "2", "--db-timeout", "1",
            "--policy-dir", database_down_policy() })
        local holders = {}
        for i = 1, 2 do
            holders[i] = S.send_only(srv.port, "GET", "/hold?seconds=5")
        end
        assert.are.equal(2, wait_stats(srv, function(s) return s.active == 2 end).active)
        local busy = get(srv, "/one", 10)
        assert.are.equal(503, busy.status, busy.body) -- the pool is exhausted indeed
        local res = get(srv, "/health/database", 10)
        assert.are.equal(200, res.status, res.body)
        assert.is_true(json(res).healthy)
        for i = 1, 2 do
            holders[i]:settimeout(15)
            local h = assert(holders[i]:read_response())
            holders[i]:close()
            assert.are.equal(200, h.status, h.body)
        end
        -- The holds outlasted for_seconds and the one-second samples.
        assert.is_nil(firing(srv).database_down)
        assert.is_falsy(srv:error_log():find("alert database_down", 1, true), srv:error_log())
    end)

    it("answers 503 and fires database_down while the database is frozen, then recovers", function()
        local m = mariadb_private()
        m:start()
        m:sql([[
            CREATE DATABASE spec CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
            CREATE USER 'u'@'127.0.0.1' IDENTIFIED BY 'pw';
            GRANT ALL ON spec.* TO 'u'@'127.0.0.1';]])
        -- No statement time limit: a client read without a timeout of its
        -- own would wait for the frozen server for ever.
        local srv = start({ "--db-timeout", "2", "--db-statement-timeout", "0",
            "--policy-dir", database_down_policy() },
            ("mysql://u:pw@127.0.0.1:%d/spec"):format(m.port))
        assert.are.equal(200, get(srv, "/health/database").status)
        assert.are.equal(200, get(srv, "/one").status)

        assert.are.equal(0, S.kill(m.pid, "STOP"))
        finally(function() S.kill(m.pid, "CONT") end)
        -- The client's timeout is far past db_timeout: the check must answer.
        local res = get(srv, "/health/database", 30)
        assert.are.equal(503, res.status, res.body)
        assert.is_false(json(res).healthy)
        assert.is_truthy(srv:error_log("alert database_down firing", 30, true), srv:error_log())
        assert.is_true(firing(srv).database_down)

        assert.are.equal(0, S.kill(m.pid, "CONT"))
        assert.is_truthy(srv:error_log("alert database_down resolved", 30, true), srv:error_log())
        assert.is_nil(firing(srv).database_down)
        assert.are.equal(200, get(srv, "/health/database").status)
    end)
end)
