-- The anchors' benchmark routes (see bench/README.md). Rate limits, the bot
-- check and the security headers of /secure come from bench/policy/.
local cache = require "luahost.cache"

-- The anchors' list: 20 small objects, built on a miss.
local function build_list()
    local items = {}
    for i = 1, 20 do
        items[i] = { id = i, title = "Image " .. i, author = "user" .. (i % 5),
                     views = i * 10, format = "svg" }
    end
    return items
end

local LIST_OPTS = { raw = true } -- sent as stored, as JSON text

return {
    ["GET /hello"] = function(_, res)
        res:json({ success = true, message = "hello" })
    end,

    ["GET /secure"] = function(_, res)
        res:json({ success = true, message = "hello" })
    end,

    ["GET /cached"] = function(_, res)
        res:json(cache.get_or_compute("gallery:list", 3600, build_list, LIST_OPTS))
    end,
}
