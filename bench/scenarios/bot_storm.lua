-- One client (one fingerprint) far above the bot threshold of the real
-- gallery policy (lua/policy/bot.lua: more than 50 requests in a fixed window
-- of 10 s): the first 50 pass, the 51st gets 429 "bot behavior detected" and
-- holds the fingerprint for retry_after (60 s), during which every request
-- gets that 429 (counted as bot429) and is counted nowhere; then counting
-- starts again. The request that starts a hold still uses up the
-- fingerprint's `default` limit (500 per hour, lua/policy/limits.lua). The
-- runner predicts the share of 429s from the windows and holds the run spans.
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
