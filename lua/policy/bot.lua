-- Bot detection. Every request of a fingerprint is counted in a fixed window
-- (in the same Redis round trip as the rate limits); `is_bot` decides.
local M = {
    window = 10,      -- seconds
    threshold = 50,   -- more requests than this in one window: a bot
    retry_after = 60, -- seconds, sent with the 429

    -- User-Agent substrings (lower case) worth a line in the security log.
    suspicious_agents = { "curl", "wget", "python-requests", "scrapy", "spider", "crawler",
        "headless", "phantomjs", "httpclient", "go-http-client", "sqlmap", "nikto" },

    -- At most this many security-log lines per minute and worker thread, so
    -- that an attack cannot fill the disk (and as many again for CSP reports).
    log_per_minute = 60,
}

-- req: the request; count: its fingerprint's requests in the window.
-- Returns true to refuse it as a bot.
function M.is_bot(req, count)
    return count > M.threshold
end

-- Returns a reason to log the request as suspicious, or nil.
function M.suspicious(req)
    local agent = req.headers["user-agent"]
    if agent == nil or agent == "" then
        return "no User-Agent"
    end
    local lower = agent:lower()
    for _, s in ipairs(M.suspicious_agents) do
        if lower:find(s, 1, true) then
            return "User-Agent contains " .. s
        end
    end
end

return M
