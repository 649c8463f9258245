-- Accounts: sign-in with server-side sessions, CSRF protection and login
-- limits.
--
--   accounts.session(req) -> session | nil | nil, err, kind      (cached on req)
--       session: { user_id, username, is_admin, csrf_token }; err, kind: the
--       lookup failed (db's kinds), so whether there is a session is unknown
--   accounts.require_user(req, res) -> session | nil     nil: res holds the 401,
--       or the 503 (500 for a "sql" kind) of a failed lookup
--   accounts.require_admin(req, res) -> session | nil    those, or 403 for non-admins
--   accounts.check_csrf(req, res, session) -> true | false   false: res holds the 403
--   accounts.json_body(req, res) -> true | false   false: res holds the 415
--       (the body is not declared application/json)
--   accounts.routes: POST /api/login, POST /api/logout, GET /api/me
local cjson_safe = require "cjson.safe"
local db = require "luahost.db"
local failures = require "failures"
local fingerprint = require "luahost.fingerprint"
local log = require "luahost.log"
local metrics = require "luahost.metrics"
local password = require "luahost.password"
local ratelimit = require "luahost.ratelimit"

local sha256_hex = password.sha256_hex

local M = {}

local COOKIE = "sid"
local SESSION_SECONDS = 7 * 86400
-- Login attempts, counted whether they succeed or not: 20 a minute per
-- client address (slot 1), 10 per 15 minutes per account name (slot 2).
local LOGIN_LIMITS = ratelimit.ruleset({
    { slot = 1, limit = 20, window = 60 },
    { slot = 2, limit = 10, window = 900 },
})
-- Verified when the account does not exist, so that a wrong name costs the
-- same time as a wrong password (no account enumeration by timing).
local DUMMY_HASH = "pbkdf2-sha256$600000$+s0wMkg0F2Gq0yXCdMA6YQ==$M89uGuCIjjeY7njtClqHFjIUxRIaWoYqiy2KwGdw6rI="

local function fail(res, status, message, extra)
    local body = { success = false, message = message }
    for k, v in pairs(extra or {}) do
        body[k] = v
    end
    return res:json(body, status)
end


local function set_cookie(req, res, value, max_age)
    res.headers["Set-Cookie"] = ("%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%d%s"):format(
        COOKIE, value, max_age, req.https and "; Secure" or "")
end

function M.session(req)
    local cached = rawget(req, "session")
    if cached ~= nil then
        local failed = rawget(req, "session_failure")
        if failed then
            return nil, failed.err, failed.kind
        end
        return cached or nil
    end
    local token = req.cookies[COOKIE]
    local session = false
    if token and #token == 64 and not token:find("[^0-9a-f]") then
        local row, err, kind = db.query_one([[
            SELECT s.user_id, s.csrf_token, u.username, u.is_admin
            FROM sessions s JOIN users u ON u.id = s.user_id
            WHERE s.token_hash = ? AND s.expires_at > NOW()]], sha256_hex(token))
        if err then -- kept for the request's later calls: one lookup, logged once
            failures.log_database("session lookup", err, kind)
            rawset(req, "session_failure", { err = err, kind = kind })
        end
        session = row or false
    end
    rawset(req, "session", session)
    return M.session(req)
end

function M.require_user(req, res)
    local session, err, kind = M.session(req)
    if err then
        -- Not "sign in": the session may well be valid, the database is what
        -- fails, as it would for the request's own queries.
        failures.database_answer(res, kind) -- logged by the lookup
    elseif not session then
        fail(res, 401, "Sign in first")
    end
    return session
end

function M.require_admin(req, res)
    local session = M.require_user(req, res)
    if session and session.is_admin ~= 1 then
        fail(res, 403, "Administrators only")
        return nil
    end
    return session
end

-- A cookie alone must not change anything: the request also carries the
-- session's CSRF token, which other sites cannot read.
function M.check_csrf(req, res, session)
    local given = req.headers["x-csrf-token"]
    -- Comparing digests keeps the comparison's timing independent of the token.
    if type(given) ~= "string" or sha256_hex(given) ~= sha256_hex(session.csrf_token) then
        fail(res, 403, "Missing or wrong X-CSRF-Token")
        return false
    end
    return true
end

-- No capacity to check a password now: a retry soon may find some.
local function busy(res)
    res.headers["Retry-After"] = "1"
    return fail(res, 503, "Server busy, try again")
end

local rejections = metrics.core("ratelimit_rejections_total")

-- Whether req's body is declared JSON; if not, res holds the 415.
function M.json_body(req, res)
    local media_type = (req.headers["content-type"] or ""):lower():match("^%s*([^;%s]+)")
    if media_type ~= "application/json" then
        fail(res, 415, "Want Content-Type: application/json")
        return false
    end
    return true
end

local function login(req, res)
    -- A page elsewhere can post a form (even one whose text/plain body reads
    -- as JSON) but not an application/json body without CORS's consent: so a
    -- site cannot sign its visitors in to an account of its choosing.
    if not M.json_body(req, res) then
        return
    end
    local body = cjson_safe.decode(req.body)
    local name = type(body) == "table" and body.username
    local secret = type(body) == "table" and body.password
    if type(name) ~= "string" or type(secret) ~= "string" or #name == 0 or #name > 64
        or #secret == 0 or #secret > 1024 then
        return fail(res, 400, "Want JSON {\"username\": ..., \"password\": ...}")
    end
    -- Said before the limits count the attempt: a refused check is no attempt.
    if password.busy() then
        return busy(res)
    end
    -- The account limit counts per name as the database compares names
    -- (case, accents and trailing spaces aside: "Admin " and "ädmin" find
    -- "admin"), so a variant spelling is no fresh set of attempts; the key is
    -- the same whether the account exists or not.
    local user, err, kind = db.query_one([[
        SELECT SHA2(WEIGHT_STRING(RTRIM(?) COLLATE utf8mb4_unicode_520_ci), 256) AS name_key,
               u.id, u.username, u.password_hash, u.is_admin
        FROM (SELECT 1) AS one LEFT JOIN users u ON u.username = ?]], name, name)
    if err then
        return failures.answer_database(res, "login", err, kind)
    end
    local limiter = ratelimit.host()
    if limiter then
        local allowed, retry, limit, remaining, reset, window = limiter:check(LOGIN_LIMITS,
            "login:ip:" .. req.client_key, "login:user:" .. user.name_key)
        if not allowed then
            -- The same 429 as every other limit's: its body, its count in the
            -- metrics, and headers that describe the limit that refused.
            rejections:inc()
            res.ratelimit = { limit = limit, remaining = remaining, reset = reset, window = window }
            res.headers["Retry-After"] = tostring(retry)
            return res:json({ success = false, error = "Too many sign-in attempts",
                              retry_after = retry }, 429)
        end
    end
    if user.id == db.null then -- no such account
        user = nil
    end
    local ok, verr = password.verify(secret, user and user.password_hash or DUMMY_HASH)
    if ok == nil then
        if verr:find("^busy:") or verr == "server shutting down" then
            log.warn("login: password not checked: " .. verr)
            return busy(res)
        end
        -- A stored hash that cannot be read: the operator's to fix. The client
        -- gets what a wrong password gets, so accounts cannot be told apart.
        log.error(("login: password of %s not checked: %s"):format(log.quote(name), verr))
    end
    if not (user and ok) then
        return fail(res, 401, "Invalid username or password")
    end
    -- A fresh session every time: a token planted before sign-in is dropped,
    -- never promoted (session fixation).
    local old = req.cookies[COOKIE]
    if old then
        db.execute("DELETE FROM sessions WHERE token_hash = ?", sha256_hex(old))
    end
    -- Expired sessions go a few at a time, as sign-ins come, so that the
    -- table does not grow for ever (the index on expires_at finds them).
    db.execute("DELETE FROM sessions WHERE expires_at < NOW() LIMIT 100")
    local token, csrf = fingerprint.random_hex(32), fingerprint.random_hex(32)
    local created, kind
    created, err, kind = db.execute([[
        INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at)
        VALUES (?, ?, ?, NOW() + INTERVAL ? SECOND)]], sha256_hex(token), user.id, csrf,
        SESSION_SECONDS)
    if not created then
        return failures.answer_database(res, "login", err, kind)
    end
    set_cookie(req, res, token, SESSION_SECONDS)
    res:json({ success = true, csrf_token = csrf,
        user = { id = user.id, username = user.username, is_admin = user.is_admin == 1 } })
end

local function logout(req, res)
    local session = M.require_user(req, res)
    if not session or not M.check_csrf(req, res, session) then
        return
    end
    local done, err, kind = db.execute("DELETE FROM sessions WHERE token_hash = ?",
        sha256_hex(req.cookies[COOKIE]))
    if not done then
        return failures.answer_database(res, "logout", err, kind)
    end
    set_cookie(req, res, "", 0)
    res:json({ success = true })
end

local function me(req, res)
    local session = M.require_user(req, res)
    if not session then
        return
    end
    res:json({ success = true, csrf_token = session.csrf_token,
        user = { id = session.user_id, username = session.username,
            is_admin = session.is_admin == 1 } })
end

-- Their answers carry a session's CSRF token or cookie: no cache, private
-- or shared, may keep them.
local function uncached(handler)
    return function(req, res)
        res.headers["Cache-Control"] = "no-store"
        return handler(req, res)
    end
end

M.routes = {
    ["POST /api/login"] = uncached(login),
    ["POST /api/logout"] = uncached(logout),
    ["GET /api/me"] = uncached(me),
}

return M
