-- The gallery application's routes: "METHOD /pattern" -> function(req, res).
-- Data lives in MariaDB (lua/app/migrations); every query binds its
-- parameters. A database that cannot serve (pool exhausted, unreachable)
-- answers 503, any other database failure 500 {"success":false,"message":
-- "Server error"}; the details go to the log with the request id, never to
-- the client.
local accounts = require "accounts"
local cache = require "luahost.cache"
local db = require "luahost.db"
local failures = require "failures"
local json = require "luahost.json"
local cjson_safe = require "cjson.safe"
local monitoring = require "luahost.monitoring"
local password = require "luahost.password"
local svg = require "luahost.svg"
local worker = require "luahost.worker"
local ids = require "ids"
local images = require "images"

local ceil, tonumber = math.ceil, tonumber

local MAX_PER_PAGE = 100 -- items per page, at most
local MAX_PAGE = 100000  -- keeps OFFSET bounded
local LIST_TTL = 300     -- seconds a list page stays cached; uploads and deletes invalidate it
local SVG_TTL = 3600     -- seconds a public image's SVG stays cached; its delete invalidates it
local MISSING_TTL = 60   -- seconds "no public image of this id" stays cached; an upload invalidates it

local function bad_request(res, message)
    return res:json({ success = false, message = message }, 400)
end

-- The number a string of decimal digits (with at most one point) spells;
-- nil for anything else tonumber would take: "0x1", "1e1", "nan", " 1".
local function decimal(value)
    if type(value) ~= "string" or not value:find("%d") or not value:find("^%d*%.?%d*$") then
        return nil
    end
    return tonumber(value)
end


local function image_id(req)
    return ids.image(req.params.id)
end

-- Characters of a UTF-8 string (what a VARCHAR counts); nil when it is not
-- well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
-- past U+10FFFF), which MariaDB's utf8mb4 would refuse.
local function utf8_length(s)
    local n, i, len = 0, 1, #s
    while i <= len do
        local c = s:byte(i)
        local extra, lo, hi = 0, 0x80, 0xBF -- the second byte's range
        if c >= 0xC2 and c <= 0xDF then
            extra = 1
        elseif c >= 0xE0 and c <= 0xEF then
            extra = 2
            lo = c == 0xE0 and 0xA0 or 0x80
            hi = c == 0xED and 0x9F or 0xBF
        elseif c >= 0xF0 and c <= 0xF4 then
            extra = 3
            lo = c == 0xF0 and 0x90 or 0x80
            hi = c == 0xF4 and 0x8F or 0xBF
        elseif c >= 0x80 then
            return nil
        end
        if i + extra > len then
            return nil
        end
        for k = i + 1, i + extra do
            local b = s:byte(k)
            if b < lo or b > hi then
                return nil
            end
            lo, hi = 0x80, 0xBF
        end
        n, i = n + 1, i + extra + 1
    end
    return n
end

-- Whether UTF-8 text holds a control character: C0, DEL or C1 (U+0080 to
-- U+009F, bytes C2 80 to C2 9F).
local function has_control(text)
    return text:find("[%z\1-\31\127]") ~= nil or text:find("\194[\128-\159]") ~= nil
end

-- Why an upload's fields do not fit the svg_image columns, or nil.
local MAX_DESCRIPTION = 65535 -- bytes of a TEXT column
local function upload_problem(body)
    if type(body) ~= "table" or type(body.svg) ~= "string" or type(body.filename) ~= "string"
        or (body.description ~= nil and type(body.description) ~= "string")
        or (body.is_public ~= nil and type(body.is_public) ~= "boolean") then
        return "want JSON {filename, svg, description?, is_public? (true or false)}"
    end
    local chars = utf8_length(body.filename)
    if chars == nil or chars == 0 or chars > 255 or has_control(body.filename) then
        return "filename must be 1 to 255 characters of UTF-8, without control characters"
    end
    -- Lines and tabs, but no other control character: a NUL or an escape
    -- would reach the image page as it is.
    if body.description and (#body.description > MAX_DESCRIPTION or not utf8_length(body.description)
            or has_control((body.description:gsub("[\t\r\n]", "")))) then
        return "description must be UTF-8 of at most " .. MAX_DESCRIPTION
            .. " bytes, without control characters other than tabs and line breaks"
    end
    return nil
end

-- Which images a list shows: the public ones (value 1), or one user's own
-- (value: the user's id), private ones included.
local PUBLIC, OWN = "is_public = ?", "user_id = ?"

-- One page of a list, newest first: the reference's shape plus total_pages.
-- Returns the page | nil, err, kind.
local function list_page(page, per_page, filter, value)
    local items, err, kind = db.query([[
        SELECT id, filename, created_at, user_id, description, is_public, view_count
        FROM svg_image WHERE ]] .. filter .. [[
        ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?]], value, per_page, (page - 1) * per_page)
    if not items then
        return nil, err, kind
    end
    setmetatable(items, json.array_mt) -- [] past the last page, not {}
    local total
    total, err, kind = db.query_one("SELECT COUNT(*) AS total FROM svg_image WHERE " .. filter, value)
    if not total then
        return nil, err, kind
    end
    return {
        success = true,
        items = items,
        page = page,
        per_page = per_page,
        total_items = total.total,
        total_pages = ceil(total.total / per_page),
    }
end

local find_metadata = images.finder(
    "id, filename, created_at, user_id, description, is_public, view_count")

-- The cache key of an id's public SVG, or of there being none (cached
-- MISSING_TTL): an upload and a delete of the id invalidate it.
local function svg_key(id)
    return "svg:" .. id
end

-- A public image's SVG, with its strong ETag (the content's hash, computed
-- once per fill), from the cache; a private one from the database, never
-- cached (images.finder).
local find_content = images.finder("svg_content, is_public", function(sql, id)
    return cache.get_or_compute(svg_key(id), SVG_TTL, function()
        local image, err, kind = db.query_one(sql, id)
        if image then
            image.etag = '"' .. password.sha256_hex(image.svg_content):sub(1, 32) .. '"'
        end
        return image, err, kind
    end, { negative_ttl = MISSING_TTL })
end)

-- Whether an If-None-Match header holds etag ("*", or a list of entity
-- tags compared weakly, W/ ignored: RFC 9110 13.1.2).
local function none_match(header, etag)
    if header == nil then
        return false
    end
    if header:find("^%s*%*%s*$") then
        return true
    end
    for tag in header:gmatch('"[^"]*"') do
        if tag == etag then
            return true
        end
    end
    return false
end

-- The dashboard, the alerts and /metrics (beyond metrics_allow addresses)
-- are for administrators. The dashboard is a page: a browser not signed in
-- is sent to sign in, and comes back.
monitoring.authorize(function(req, res)
    if req.path == "/monitor" then
        local session, failed = accounts.session(req)
        if not (session or failed) then
            res:redirect("/signin?next=/monitor")
            return false
        end
    end
    return accounts.require_admin(req, res) ~= nil
end)

local routes = {
    ["GET /hello"] = function(_, res)
        res:json({ success = true, message = "hello" })
    end,

    -- Liveness: the process answers.
    ["GET /health"] = function(_, res)
        res:json({ success = true, status = "ok" })
    end,

    -- The reference's database health check: 200 or 503, with the pool stats.
    ["GET /health/database"] = function(_, res)
        local healthy, err = db.health()
        if not healthy then
            failures.log_database("database health", err, "io")
        end
        res:json({ healthy = healthy == true, stats = db.stats() or {} }, healthy and 200 or 503)
    end,

    -- Public images, newest first, cached for every instance until an upload
    -- or a delete invalidates the pages. ?mine=1: the signed-in user's own,
    -- private ones included, never cached.
    ["GET /api/svg/list"] = function(req, res)
        local page = ids.whole(req.query.page, 1, 1, MAX_PAGE)
        local per_page = ids.whole(req.query.per_page, 20, 1, MAX_PER_PAGE)
        local mine = ids.whole(req.query.mine, 0, 0, 1)
        if not page then
            return bad_request(res, "page must be a whole number from 1 to " .. MAX_PAGE)
        end
        if not per_page then
            return bad_request(res, "per_page must be a whole number from 1 to " .. MAX_PER_PAGE)
        end
        if not mine then
            return bad_request(res, "mine must be 0 or 1")
        end
        local list, err, kind
        if mine == 1 then
            local session = accounts.require_user(req, res)
            if not session then
                return
            end
            list, err, kind = list_page(page, per_page, OWN, session.user_id)
            res.headers["Cache-Control"] = images.PRIVATE
        else
            list, err, kind = cache.get_or_compute(("svg_list:%d:%d"):format(page, per_page),
                LIST_TTL, function() return list_page(page, per_page, PUBLIC, 1) end, { raw = true })
        end
        if not list then
            return failures.answer_database(res, "svg list", err, kind)
        end
        res:json(list)
    end,

    -- One image's metadata; counts the view atomically. A private image:
    -- its owner's or an administrator's, uncounted, kept by no cache.
    ["GET /api/svg/:id"] = function(req, res)
        local id = image_id(req)
        if not id then
            return res:json({ success = false, message = "Not found" }, 404)
        end
        if req.method == "GET" then -- a HEAD is no view
            local counted, err, kind = db.execute(
                "UPDATE svg_image SET view_count = view_count + 1 WHERE id = ? AND is_public = 1", id)
            if not counted then
                return failures.answer_database(res, "svg view count", err, kind)
            end
        end
        local image, err, kind = find_metadata(req, id)
        if err then
            return failures.answer_database(res, "svg get", err, kind)
        end
        if not image then
            return res:json({ success = false, message = "Not found" }, 404)
        end
        if image.is_public ~= 1 then
            res.headers["Cache-Control"] = images.PRIVATE
        end
        res:json({ success = true, item = image })
    end,

    -- The image itself, under the locked-down "svg" header policy. A public
    -- one is cached here, and browsers revalidate it (ETag, 304) once its
    -- few minutes of max-age are over, so a delete soon reaches them too.
    ["GET /svg/:id.svg"] = function(req, res)
        local id = image_id(req)
        if not id then
            return res:json({ success = false, message = "Not found" }, 404)
        end
        local image, err, kind = find_content(req, id)
        if err then
            return failures.answer_database(res, "svg content", err, kind)
        end
        if not image then
            return res:json({ success = false, message = "Not found" }, 404)
        end
        if image.is_public ~= 1 then
            res.security = "svg_private"
        else
            res.security = "svg"
            res.headers["ETag"] = image.etag
            if none_match(req.headers["If-None-Match"], image.etag) then
                res.status = 304
                return
            end
        end
        res.headers["Content-Type"] = "image/svg+xml; charset=utf-8" -- the checker admits UTF-8 only
        res.body = image.svg_content
    end,

    -- Uploads an image (signed-in users): JSON {filename, svg, description?,
    -- is_public?}. The SVG is refused, with the reason, unless it passes
    -- luahost.svg's checks (no scripts, handlers, external references...).
    ["POST /api/svg"] = function(req, res)
        local session = accounts.require_user(req, res)
        if not session or not accounts.check_csrf(req, res, session) or not accounts.json_body(req, res) then
            return
        end
        local body = cjson_safe.decode(req.body)
        if type(body) == "table" then -- null for an optional field: left out
            for _, key in ipairs({ "description", "is_public" }) do
                if body[key] == cjson_safe.null then
                    body[key] = nil
                end
            end
        end
        local problem = upload_problem(body)
        if problem then
            return bad_request(res, problem)
        end
        local safe, why = svg.check(body.svg)
        if not safe then
            return bad_request(res, "SVG refused: " .. why)
        end
        local inserted, id, kind = db.execute([[
            INSERT INTO svg_image (filename, description, svg_content, user_id, is_public)
            VALUES (?, ?, ?, ?, ?)]], body.filename, body.description, body.svg, session.user_id,
            body.is_public == false and 0 or 1)
        if not inserted then
            return failures.answer_database(res, "svg upload", id, kind) -- id holds the error here
        end
        cache.delete(svg_key(id)) -- "none" may be cached for an id asked for before
        cache.invalidate_pattern("svg_list:*")
        res:json({ success = true, id = id }, 201)
    end,

    -- Deletes an image: its owner or an administrator.
    ["DELETE /api/svg/:id"] = function(req, res)
        local session = accounts.require_user(req, res)
        if not session or not accounts.check_csrf(req, res, session) then
            return
        end
        local id = image_id(req)
        if not id then
            return res:json({ success = false, message = "Not found" }, 404)
        end
        local image, err, kind = db.query_one("SELECT user_id, is_public FROM svg_image WHERE id = ?", id)
        if err then
            return failures.answer_database(res, "svg delete", err, kind)
        end
        local mine = image and images.manages(session, image)
        -- Someone else's private image is not there for this user at all.
        if not image or (not mine and image.is_public ~= 1) then
            return res:json({ success = false, message = "Not found" }, 404)
        end
        if not mine then
            return res:json({ success = false, message = "Only the owner or an administrator" }, 403)
        end
        local deleted
        deleted, err, kind = db.execute("DELETE FROM svg_image WHERE id = ?", id)
        if not deleted then
            return failures.answer_database(res, "svg delete", err, kind)
        end
        if deleted == 0 then -- a concurrent delete was first
            return res:json({ success = false, message = "Not found" }, 404)
        end
        cache.delete(svg_key(id))
        cache.invalidate_pattern("svg_list:*")
        res:json({ success = true, deleted = id })
    end,

    -- The cache's statistics per level, for administrators.
    ["GET /api/cache/stats"] = function(req, res)
        if accounts.require_admin(req, res) then
            res:json({ success = true, stats = cache.stats() })
        end
    end,
}

-- Blocks this request (not the server) for ?seconds=N, at most 10: a
-- demonstration of worker.sleep, in development only, since in production
-- anyone could hold connections open with it.
if worker.env == "development" then
    routes["GET /sleep"] = function(req, res)
        local seconds = req.query.seconds == nil and 1 or decimal(req.query.seconds)
        if seconds == nil or seconds > 10 then
            return bad_request(res, "seconds must be from 0 to 10")
        end
        local ok = worker.sleep(seconds)
        if not ok then -- the server is stopping: the sleep was cut short
            return res:json({ success = false, message = "Service unavailable" }, 503)
        end
        res:json({ success = true, slept = seconds })
    end
end

for key, handler in pairs(accounts.routes) do
    routes[key] = handler
end

-- The web pages (lua/app/pages.lua); a route defined twice is a mistake.
for key, handler in pairs(require("pages")) do
    assert(routes[key] == nil, "pages.lua: duplicate route " .. key)
    routes[key] = handler
end

return routes
