-- The anchors' benchmark routes (see bench/README.md). This issue serves
-- /hello; /secure and /cached arrive with the security and cache modules.
local cjson = require "cjson"

local encode = cjson.encode

return {
    ["GET /hello"] = function(_, res)
        res:json({ success = true, message = "hello" })
    end,
}
