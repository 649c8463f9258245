-- Alert rules, evaluated once a second on the monitor's latest sample. A
-- rule fires when its metric stays above (or below) the threshold for
-- for_seconds, and resolves when it no longer does; both are logged, and the
-- firing ones are listed at GET /api/monitor/alerts and on the dashboard.
--
-- Metrics: rps, p50_ms, p95_ms, p99_ms, error_rate (0..1), inflight,
-- pool_waiting, pool_active, db_healthy (1/0), redis_up (1/0),
-- cache_l1_hit_rate (0..1, of the last second's lookups),
-- ratelimit_rejections_per_s, bot_detections_per_s, rss_mb. A metric the
-- server does not have (no database, no Redis) never fires.
return {
    rules = {
        { name = "p95_latency", metric = "p95_ms", above = 500, for_seconds = 30,
          severity = "warning", description = "p95 latency above 500 ms for 30 s" },
        { name = "error_rate", metric = "error_rate", above = 0.01, for_seconds = 30,
          severity = "critical", description = "more than 1 % of answers are 5xx" },
        { name = "pool_waiters", metric = "pool_waiting", above = 0, for_seconds = 10,
          severity = "warning", description = "requests waiting for a database connection for 10 s" },
        { name = "redis_down", metric = "redis_up", below = 1, for_seconds = 5,
          severity = "critical", description = "Redis unreachable: limits and cache are local" },
        { name = "database_down", metric = "db_healthy", below = 1, for_seconds = 5,
          severity = "critical", description = "the database health check fails" },
    },

    -- Requests slower than this are logged with their id and duration.
    slow_request_ms = 500,
    -- Per route, by its key in routes.lua, where slowness is expected:
    -- e.g. ["GET /api/export"] = 5000.
    slow_routes = {},
}
