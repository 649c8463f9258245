-- Credential stuffing: sign-ins with made-up account names from one address,
-- against the real gallery (lua/app/accounts.lua allows 20 attempts a minute
-- per address). The first 20 are checked (401, after a full PBKDF2), every
-- later one is a 429 (the sign-in limit, then the bot check): the runner
-- compares the share of 429s with (N - 20) / N.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/common.lua")

common.scenario{
    expect = { 401, 429 },
    request = common.numbered(function(run, thread, n)
        return common.post_json("/api/login", ('{"username":"nobody-%s-%d-%d","password":"guess-%d"}')
            :format(run, thread, n, n))
    end),
}
