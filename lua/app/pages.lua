-- The gallery's HTML pages, a progressive web app: each page is a template of
-- lua/app/templates rendered into layout.html. They run under the app's
-- default security headers (the strict CSP); their scripts carry the
-- response's nonce. The gallery lists its images in JavaScript from
-- /api/svg/list, so that the service worker (static/sw.js) can serve the list
-- offline. Returns a table of routes for routes.lua.
local accounts = require "accounts"
local db = require "luahost.db"
local failures = require "failures"
local ids = require "ids"
local images = require "images"
local static = require "luahost.static"
local template = require "luahost.template"

-- The app directory is this file's: templates sit beside it.
local APP_DIR = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local views = template.load(APP_DIR .. "/templates",
    { "layout", "gallery", "image", "signin", "upload", "offline", "message" })

-- Renders templates/<name>.html (data: its variables) into the layout.
local function page(req, res, name, title, data, status)
    local user, failed
    -- The offline page is saved once for every visitor: no account in it.
    if name ~= "offline" then
        user, failed = accounts.session(req)
    end
    -- Whether the visitor is signed in is unknown: a page that says "Sign in"
    -- or sends to /signin would be wrong, so it is the database's 503.
    if failed then
        name, title, status = "message", "Unavailable", 503
        data = { heading = title, text = "The gallery cannot serve this page right now." }
    end
    local html = views.render("layout", {
        title = title,
        page = name,
        nonce = req.csp_nonce,
        user = user,
        content = views.render(name, data),
        -- Versioned URLs: the core lets browsers keep these for a year.
        assets = {
            css = static.url("app.css"),
            js = static.url("app.js"),
            icon = static.url("icon-32.png"),
            touch_icon = static.url("icon-192.png"),
        },
    })
    -- The navigation names the signed-in user: no shared cache may keep it.
    res.headers["Cache-Control"] = "private, no-cache"
    res:html(html, status)
end

local function message(req, res, status, heading, text)
    page(req, res, "message", heading, { heading = heading, text = text }, status)
end

local function not_found(req, res)
    message(req, res, 404, "Not found", "There is no such image, or it is private.")
end

local find_image = images.finder("id, filename, description, created_at, view_count, user_id, is_public")

-- One image, like GET /api/svg/:id: a public one's view counted, a private
-- one shown to its owner and the administrators only. Its owner and the
-- administrators get a Delete button.
local function image_page(req, res)
    local id = ids.image(req.params.id)
    if id == nil then
        return not_found(req, res)
    end
    local counted, err, kind = true, nil, nil
    if req.method == "GET" then -- a HEAD is no view
        counted, err, kind = db.execute(
            "UPDATE svg_image SET view_count = view_count + 1 WHERE id = ? AND is_public = 1", id)
    end
    local image
    if counted then
        image, err, kind = find_image(req, id)
    end
    if err then
        failures.log_database("image page", err, kind)
        return message(req, res, 503, "Unavailable", "The gallery cannot show this image right now.")
    end
    if not image then
        return not_found(req, res)
    end
    if image.description == db.null or image.description == "" then
        image.description = nil
    end
    -- The name a download is saved under ends in .svg, whatever the
    -- uploader called it: "gallery.html" would open as a page.
    image.download_name = image.filename:lower():find("%.svg$") and image.filename
        or image.filename .. ".svg"
    local private = image.is_public ~= 1
    page(req, res, "image", image.filename, { image = image, private = private,
        manages = images.manages(accounts.session(req), image) })
    if private then
        res.headers["Cache-Control"] = images.PRIVATE
    end
end

return {
    ["GET /"] = function(req, res)
        page(req, res, "gallery", "Gallery")
    end,

    ["GET /image/:id"] = image_page,

    ["GET /signin"] = function(req, res)
        if accounts.session(req) then
            return res:redirect("/")
        end
        page(req, res, "signin", "Sign in")
    end,

    ["GET /upload"] = function(req, res)
        local session, failed = accounts.session(req)
        if not (session or failed) then -- a failed lookup: page() answers 503
            return res:redirect("/signin?next=/upload")
        end
        page(req, res, "upload", "Upload")
    end,

    -- Precached by the service worker, shown for pages never saved.
    ["GET /offline"] = function(req, res)
        page(req, res, "offline", "Offline")
    end,
}
