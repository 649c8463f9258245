-- Bot detection. Every request of a fingerprint is counted in a fixed window
-- (in the same Redis round trip as the rate limits). Past the threshold the
-- fingerprint is held: every request of it is refused (429, Retry-After: the
-- seconds the hold has left, uncounted) for retry_after seconds, however the
-- window turns; the hold is kept with the counts (Redis key
-- "pattern:<fingerprint>:block"), so every instance refuses it.
local M = {
    window = 10,      -- seconds
    threshold = 50,   -- more requests than this in one window: a bot
    retry_after = 60, -- seconds a bot is held (1 to 86400)

    -- User-Agent substrings (lower case) worth a line in the security log.
    suspicious_agents = { "curl", "wget", "python-requests", "scrapy", "spider", "crawler",
        "headless", "phantomjs", "httpclient", "go-http-client", "sqlmap", "nikto" },

    -- At most this many security-log lines per minute and worker thread, so
    -- that an attack cannot fill the disk (and as many again for CSP reports).
    log_per_minute = 60,
}

-- req: a request that is not held; count: its fingerprint's requests in the
-- window. Returns true to refuse it as a bot. The limiter holds a count past
-- the threshold itself; a heuristic of your own that says true earlier
-- refuses that request only (with retry_after), without a hold.
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
