-- Who sees and manages an image. A public image is everyone's; a private one
-- is its owner's and the administrators', and to everyone else it is not
-- there at all (404, never 403: its existence is not told).
--
--   images.finder(columns[, public_lookup]) -> find   columns: a constant list, with is_public
--       find(req, id) -> row | nil | nil, err, kind
--       public_lookup(sql, id) -> row | nil | nil, err, kind: runs the public
--           image's query (default db.query_one; the SVG's goes through the cache)
--   images.manages(session, image) -> boolean    may delete it
--   images.PRIVATE: the Cache-Control of a private image's answers
local accounts = require "accounts"
local db = require "luahost.db"

local M = {}

-- Kept by no cache, shared or the browser's (sw.js stores nothing no-store).
M.PRIVATE = "private, no-store"

-- The public image is one query, as for every visitor; only when there is
-- none and the request has a session is the image looked up as its own,
-- never through public_lookup: what a shared cache keeps must be public.
function M.finder(columns, public_lookup)
    public_lookup = public_lookup or db.query_one
    local public = ("SELECT %s FROM svg_image WHERE id = ? AND is_public = 1"):format(columns)
    local own = ("SELECT %s FROM svg_image WHERE id = ? AND is_public = 0"
        .. " AND (user_id = ? OR ? = 1)"):format(columns)
    return function(req, id)
        local image, err, kind = public_lookup(public, id)
        if image or err then
            return image, err, kind
        end
        local session, session_err, session_kind = accounts.session(req)
        if not session then
            -- A failed lookup is the request's failure (503), not "not found".
            return nil, session_err, session_kind
        end
        return db.query_one(own, id, session.user_id, session.is_admin)
    end
end

function M.manages(session, image)
    return session ~= nil and (image.user_id == session.user_id or session.is_admin == 1)
end

return M
