-- The gallery's traffic mix (lua/app), on a gallery started by
-- bench/loadtest.lua with bench/loadtest-policy/ (loopback and 10.0.0.0/8
-- exempt from the limits) and 127.0.0.1 as a trusted proxy:
--
--   55 %  GET  /api/svg/list?page=1..20&per_page=12   list pages (cached)
--   25 %  GET  /api/svg/:id                            image metadata (counts a view)
--   15 %  GET  /svg/:id.svg                            SVG downloads (cached)
--    4 %  POST /api/login                              sign-ins (PBKDF2, 600,000 iterations)
--    1 %  POST /api/svg                                uploads (a small clean SVG, signed in)
--
-- Every request comes from a random address of 10.0.0.0/8 in X-Forwarded-For,
-- as many clients behind a proxy: the sign-in limit of 20 a minute per address
-- (lua/app/accounts.lua) is not what this scenario measures. Sign-ins take
-- the accounts of LOGIN_USERS in turn (each allows 10 per 15 minutes); a
-- machine fast enough to use them all up gets list pages instead of further
-- sign-ins (the runner reports the mix as served).
--
-- Environment: IMAGE_IDS (public image ids, comma-separated), LOGIN_USERS,
-- LOGIN_PER_ACCOUNT (sign-ins an account allows), LOGIN_PASSWORD, SESSION_COOKIE and CSRF_TOKEN (an uploader's session),
-- THREADS. Prints uploaded=<ids> for the runner to delete afterwards.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/common.lua")

local ids = common.list("IMAGE_IDS")
local users = common.list("LOGIN_USERS")
local password = common.env("LOGIN_PASSWORD", "")
local threads = tonumber(common.env("THREADS", "1"))
-- Each thread's share of the sign-ins the accounts allow.
local signin_budget = math.floor(#users * tonumber(common.env("LOGIN_PER_ACCOUNT", "10")) / threads)
local upload_headers = {
    Cookie = "sid=" .. common.env("SESSION_COOKIE", ""),
    ["X-CSRF-Token"] = common.env("CSRF_TOKEN", ""),
}
local SVG_BODY = '{"filename":"loadtest.svg","description":"load test upload","svg":'
    .. '"<svg xmlns=\\"http://www.w3.org/2000/svg\\" width=\\"16\\" height=\\"16\\">'
    .. '<rect width=\\"16\\" height=\\"16\\" fill=\\"#4a7\\"/></svg>"}'

local random = math.random
local signins = 0

local function client()
    return { ["X-Forwarded-For"] = ("10.%d.%d.%d"):format(random(0, 255), random(0, 255),
        random(1, 254)) }
end

local function image()
    return ids[random(#ids)]
end

local function list_page()
    return common.get(("/api/svg/list?page=%d&per_page=12"):format(random(20)), client())
end

local mix = common.weighted{
    { 55, list_page },
    { 25, function()
        return common.get("/api/svg/" .. image(), client())
    end },
    { 15, function()
        return common.get("/svg/" .. image() .. ".svg", client())
    end },
    { 4, function()
        if signins >= signin_budget then
            return list_page()
        end
        -- Round robin over the accounts, interleaved between threads.
        local user = users[(thread_id - 1 + signins * threads) % #users + 1]
        signins = signins + 1
        return common.post_json("/api/login",
            ('{"username":"%s","password":"%s"}'):format(user, password), client())
    end },
    { 1, function()
        local h = client()
        for k, v in pairs(upload_headers) do
            h[k] = v
        end
        return common.post_json("/api/svg", SVG_BODY, h)
    end },
}

common.scenario{
    expect = { 200, 201 },
    request = mix,
    response = function(status, body, extra)
        if status == 201 then -- an upload: remember its id
            local id = body:match('"id":(%d+)')
            if id then
                extra.uploaded = extra.uploaded and extra.uploaded .. "," .. id or id
            end
        end
    end,
}
