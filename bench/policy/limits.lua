-- Benchmark limits: /secure checks the limits on every request, as the
-- anchors do, with numbers a benchmark never reaches; /hello and /cached are
-- not limited, as in the anchors; nor is /metrics, which the load tests
-- scrape every second and which must not wait for Redis.
return {
    -- No `default`: only the routes below and the per-address ceiling.
    per_ip = "1000000000 per hour",
    routes = {
        ["GET /hello"] = false,
        ["GET /cached"] = false,
        ["GET /metrics"] = false,
        ["GET /secure"] = "1000000000 per hour",
    },
}
