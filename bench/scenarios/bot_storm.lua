-- One client (one fingerprint) far above the bot threshold of the real
-- gallery policy (lua/policy/bot.lua: more than 50 requests in a fixed window
-- of 10 s): in each window the first 50 pass, the rest get 429 "bot behavior
-- detected" (counted as bot429). Requests refused as a bot still use up the
-- fingerprint's `default` limit (500 per hour, lua/policy/limits.lua): past
-- 500 requests the first 50 of a window get a plain 429 instead. The runner
-- predicts the share of 429s from the windows the run spans.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/common.lua")

wrk.headers["User-Agent"] = "loadtest-bot/" .. common.env("RUN_ID", "0")

common.scenario{
    expect = { 200, 429 },
    request = common.static_get("/api/svg/list?page=2&per_page=12"),
    init = function()
        extra.bot429 = 0
    end,
    response = function(status, body, extra)
        if status == 429 and body:find("bot behavior", 1, true) then
            extra.bot429 = extra.bot429 + 1
        end
    end,
}
