-- A route beside the static files of spec/integration/static_spec.lua:
-- static.url gives the versioned link.
local static = require "luahost.static"

return {
    ["GET /link"] = function(_, res)
        res:text(static.url("css/site.css"))
    end,
}
