-- The anchors' benchmark routes (see bench/README.md). Rate limits, the bot
-- check and the security headers of /secure come from bench/policy/.
return {
    ["GET /hello"] = function(_, res)
        res:json({ success = true, message = "hello" })
    end,

    ["GET /secure"] = function(_, res)
        res:json({ success = true, message = "hello" })
    end,
}
