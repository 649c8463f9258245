-- A scraper rotating its User-Agent on every request, from one address,
-- against the real gallery limits (lua/policy/limits.lua): every request has
-- a fresh fingerprint, so neither `default` nor the bot counter ever trips,
-- but the per-address ceiling (`per_ip`, 2000 per hour) does. With fresh
-- counters the first 2000 pass and every later one is a 429: the runner
-- compares the share of 429s with (N - 2000) / N.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/common.lua")

common.scenario{
    expect = { 200, 429 },
    request = common.numbered(function(run, thread, n)
        return common.get("/api/svg/list?page=1&per_page=12",
            { ["User-Agent"] = ("loadtest-scraper/%s.%d.%d"):format(run, thread, n) })
    end),
}
