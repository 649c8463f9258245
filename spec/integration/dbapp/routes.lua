-- The test application of spec/integration/db_spec.lua: one route per
-- behaviour of require "luahost.db" that the spec checks over real HTTP
-- against a real MariaDB. Its table, db_spec_items, comes from
-- migrations/001_db_spec_items.sql (applied at start in development) and
-- POST /reset creates it too. Failures answer JSON with the call's err and
-- kind (this is a test app: the details are the point): 503 for "timeout" and
-- "io", 500 for "sql".
local cjson = require "cjson"
local db = require "luahost.db"
local worker = require "luahost.worker"

local floor, tonumber, type = math.floor, tonumber, type

local TABLE_SQL = [[
CREATE TABLE IF NOT EXISTS db_spec_items (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    v VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    n BIGINT NULL,
    tag VARCHAR(64) NOT NULL DEFAULT '',
    created DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY ix_db_spec_items_tag (tag)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci]]

local INSERT = "INSERT INTO db_spec_items (v, n, tag) VALUES (?, ?, ?)"

local function failed(res, what, err, kind, extra)
    local body = { success = false, what = what, err = tostring(err), kind = kind }
    for k, v in pairs(extra or {}) do
        body[k] = v
    end
    local status = (kind == "timeout" or kind == "io") and 503 or 500
    return res:json(body, status)
end

local function body_json(req)
    local ok, value = pcall(cjson.decode, req.body)
    if not ok or type(value) ~= "table" then
        return nil
    end
    return value
end

-- The row's values with the Lua type of each, so that the spec sees what
-- the binding returned, not only what JSON made of it.
local function describe(row)
    local types = {}
    for k, v in pairs(row) do
        types[k] = v == db.null and "null" or type(v)
    end
    return types
end

return {
    ["GET /stats"] = function(_, res)
        res:json({ success = true, stats = db.stats() })
    end,

    ["GET /health/database"] = function(_, res)
        local healthy, err = db.health()
        res:json({ healthy = healthy == true, err = err and tostring(err) or nil,
            stats = db.stats() or {} }, healthy and 200 or 503)
    end,

    -- The table, empty (rows of the given tag only, when one is given).
    ["POST /reset"] = function(req, res)
        local ok, err, kind = db.execute(TABLE_SQL)
        if not ok then
            return failed(res, "create", err, kind)
        end
        local tag = req.query.tag
        if tag then
            ok, err, kind = db.execute("DELETE FROM db_spec_items WHERE tag = ?", tag)
        else
            ok, err, kind = db.execute("DELETE FROM db_spec_items")
        end
        if not ok then
            return failed(res, "delete", err, kind)
        end
        res:json({ success = true, deleted = ok })
    end,

    ["GET /table"] = function(_, res)
        local row, err, kind = db.query_one([[
            SELECT COUNT(*) AS tables FROM information_schema.TABLES
            WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'db_spec_items']])
        if not row then
            return failed(res, "table", err, kind)
        end
        local count
        count, err, kind = db.query_one("SELECT COUNT(*) AS c FROM db_spec_items")
        if not count then
            return failed(res, "count", err, kind)
        end
        res:json({ success = true, exists = row.tables == 1, rows = count.c })
    end,

    -- {v, n, tag}: n may be null (JSON null is cjson.null, that is db.null).
    ["POST /items"] = function(req, res)
        local b = body_json(req)
        if not b then
            return res:json({ success = false, message = "want a JSON object" }, 400)
        end
        local affected, insert_id, kind = db.execute(INSERT, b.v, b.n, b.tag or "")
        if not affected then
            return failed(res, "insert", insert_id, kind)
        end
        res:json({ success = true, affected = affected, insert_id = insert_id,
            affected_type = type(affected), insert_id_type = type(insert_id) })
    end,

    ["GET /items/:id"] = function(req, res)
        local row, err, kind = db.query_one([[
            SELECT id, v, n, tag, created, HEX(v) AS hex, LENGTH(v) AS bytes,
                   CHAR_LENGTH(v) AS chars
            FROM db_spec_items WHERE id = ?]], tonumber(req.params.id))
        if err then
            return failed(res, "get", err, kind)
        end
        if row == nil then
            return res:json({ success = false, message = "Not found", is_nil = row == nil }, 404)
        end
        res:json({ success = true, item = row, types = describe(row),
            n_is_db_null = row.n == db.null, db_null_is_cjson_null = db.null == cjson.null })
    end,

    -- Rows of ?tag=, in insertion order.
    ["GET /items"] = function(req, res)
        local rows, err, kind = db.query(
            "SELECT id, v, n, tag FROM db_spec_items WHERE tag = ? ORDER BY id",
            req.query.tag or "")
        if not rows then
            return failed(res, "list", err, kind)
        end
        res:json({ success = true, count = #rows, items = rows })
    end,

    -- {v, tag}: the rows whose v equals v (a bound parameter in the WHERE).
    ["POST /items/find"] = function(req, res)
        local b = body_json(req) or {}
        local rows, err, kind = db.query(
            "SELECT id, v FROM db_spec_items WHERE tag = ? AND v = ? ORDER BY id", b.tag or "", b.v)
        if not rows then
            return failed(res, "find", err, kind)
        end
        res:json({ success = true, count = #rows, items = rows })
    end,

    -- {tag, rows: [[v, n], ...]}: one execute_many (one transaction).
    ["POST /items/many"] = function(req, res)
        local b = body_json(req) or {}
        local sets = {}
        for i, r in ipairs(b.rows or {}) do
            sets[i] = { r[1], r[2], b.tag or "" }
        end
        local affected, err, kind = db.execute_many(INSERT, sets)
        if not affected then
            return failed(res, "execute_many", err, kind)
        end
        res:json({ success = true, affected = affected })
    end,

    -- Two inserts in a transaction that returns: committed, results returned.
    ["POST /tx/commit"] = function(req, res)
        local tag = req.query.tag or ""
        local a, b, c = db.transaction(function(tx)
            local _, id1 = assert(tx:execute(INSERT, "first", 1, tag))
            local _, id2 = assert(tx:execute(INSERT, "second", 2, tag))
            local seen = assert(tx:query_one(
                "SELECT COUNT(*) AS c FROM db_spec_items WHERE tag = ?", tag))
            return id1, id2, seen.c
        end)
        if not a then
            return failed(res, "transaction", b, c)
        end
        res:json({ success = true, ids = { a, b }, seen_inside = c })
    end,

    -- An insert, then a Lua error: rolled back, raised again, so the request
    -- answers the server's 500 and the traceback goes to the log.
    ["POST /tx/boom"] = function(req, res)
        local tag = req.query.tag or ""
        db.transaction(function(tx)
            assert(tx:execute(INSERT, "doomed", 1, tag))
            error("boom")
        end)
        res:json({ success = true, message = "not reached" })
    end,

    -- assert(tx:execute(...)) on a failing statement (NULL into NOT NULL v):
    -- the error is caught here to report it.
    ["POST /tx/assert"] = function(req, res)
        local tag = req.query.tag or ""
        local ok, err = pcall(db.transaction, function(tx)
            assert(tx:execute(INSERT, "kept only if committed", 1, tag))
            assert(tx:execute(INSERT, nil, 2, tag))
            return true
        end)
        res:json({ success = false, raised = not ok, err = tostring(err) }, ok and 200 or 500)
    end,

    ["GET /query_one/none"] = function(_, res)
        local row, err, kind = db.query_one("SELECT id FROM db_spec_items WHERE id = ?", -1)
        res:json({ success = err == nil, is_nil = row == nil, err = err, kind = kind })
    end,

    -- Parameter count mismatches, both ways, in query and execute.
    ["GET /mismatch"] = function(_, res)
        local out = {}
        local r, err, kind = db.query("SELECT ? + ? AS s", 1)
        out.too_few = { is_nil = r == nil, err = err, kind = kind }
        r, err, kind = db.query_one("SELECT ? AS s", 1, 2)
        out.too_many = { is_nil = r == nil, err = err, kind = kind }
        r, err, kind = db.execute(INSERT, "only v")
        out.execute = { is_nil = r == nil, err = err, kind = kind }
        r, err, kind = db.query("SELEC nonsense")
        out.syntax = { is_nil = r == nil, err = err, kind = kind }
        res:json({ success = true, results = out })
    end,

    -- Holds a connection for ?seconds= inside an open transaction.
    ["GET /hold"] = function(req, res)
        local seconds = tonumber(req.query.seconds) or 2
        local id, err, kind = db.transaction(function(tx)
            local row = assert(tx:query_one("SELECT CONNECTION_ID() AS id"))
            assert(worker.sleep(seconds))
            return row.id
        end)
        if not id then
            return failed(res, "hold", err, kind)
        end
        res:json({ success = true, connection = id, held = seconds, request_id = req.id })
    end,

    ["GET /one"] = function(_, res)
        local row, err, kind = db.query_one("SELECT 1 AS one, CONNECTION_ID() AS connection")
        if not row then
            return failed(res, "one", err, kind)
        end
        res:json({ success = true, one = row.one, connection = row.connection })
    end,

    -- SELECT SLEEP(?seconds=), with ?secret= as a second parameter: cut off
    -- by the statement time limit, or logged as slow (without parameters).
    ["GET /slow"] = function(req, res)
        local row, err, kind = db.query_one("SELECT SLEEP(?) AS s, ? AS secret",
            tonumber(req.query.seconds) or 5, req.query.secret or "")
        if not row then
            return failed(res, "slow", err, kind)
        end
        res:json({ success = true, s = row.s })
    end,

    -- A text value of ?bytes= bytes (REPEAT of a 7-byte pattern), compared
    -- with the same string built in Lua: past the binding's 1 MiB buffer.
    ["GET /bigtext"] = function(req, res)
        local bytes = tonumber(req.query.bytes) or 1000
        local unit = "ab\0\226\130\172" -- 'ab', NUL, the euro sign: 6 bytes
        local count = floor(bytes / #unit)
        local row, err, kind = db.query_one("SELECT REPEAT(?, ?) AS s, LENGTH(REPEAT(?, ?)) AS n",
            unit, count, unit, count)
        if not row then
            return failed(res, "bigtext", err, kind)
        end
        res:json({ success = true, length = #row.s, server_length = row.n,
            equal = row.s == unit:rep(count) })
    end,

    -- Several statements, each result checked: 500 on any wrong answer.
    ["GET /calc"] = function(req, res)
        local n = floor(tonumber(req.query.n) or 1)
        for i = 1, 4 do
            local rows, err, kind = db.query("SELECT ? + 1 AS v", n + i)
            if not rows then
                return failed(res, "calc", err, kind)
            end
            if #rows ~= 1 or rows[1].v ~= n + i + 1 then
                return res:json({ success = false, message = "wrong result",
                    got = rows[1] and rows[1].v, want = n + i + 1 }, 500)
            end
        end
        local row, err, kind = db.query_one("SELECT ? * 2 AS v, ? AS s", n, "n=" .. n)
        if not row then
            return failed(res, "calc", err, kind)
        end
        if row.v ~= n * 2 or row.s ~= "n=" .. n then
            return res:json({ success = false, message = "wrong result" }, 500)
        end
        res:json({ success = true, n = n })
    end,

    -- The server's sessions of ?user= on ?db= (default: this connection's),
    -- through the pool itself (so the checker is one of the pool's).
    ["GET /processlist"] = function(req, res)
        local rows, err, kind = db.query([[
            SELECT ID AS id, HOST AS host FROM information_schema.PROCESSLIST
            WHERE USER = COALESCE(?, SUBSTRING_INDEX(CURRENT_USER(), '@', 1))
              AND DB = COALESCE(?, DATABASE())
            ORDER BY ID]], req.query.user, req.query.db)
        if not rows then
            return failed(res, "processlist", err, kind)
        end
        res:json({ success = true, count = #rows, sessions = rows })
    end,

    -- Literal values of several SQL types, as the binding returns them.
    ["GET /types"] = function(_, res)
        local row, err, kind = db.query_one([[
            SELECT 42 AS i, -7 AS neg, CAST(NULL AS SIGNED) AS nul, ? AS s,
                   CAST(2.5 AS DOUBLE) AS dbl, CAST(? AS SIGNED) AS big,
                   CAST('2026-01-02 03:04:05' AS DATETIME) AS dt, ? AS param_null,
                   ? AS param_true]], "h\195\169llo", 4503599627370497, db.null, true)
        if not row then
            return failed(res, "types", err, kind)
        end
        res:json({ success = true, row = row, types = describe(row),
            big_exact = row.big == 4503599627370497 })
    end,
}
