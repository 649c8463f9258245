-- Thresholds of the load tests (bench/loadtest.lua), per scenario; `default`
-- applies to every scenario, `smoke` (merged over the rest with --smoke)
-- relaxes them for CI. false removes an inherited threshold.
--
--   max_error_rate      (socket errors + unexpected statuses) / responses; 5xx are always unexpected
--   max_p50_ms, max_p99_ms   wrk's latency percentiles
--   min_rps_ratio       closed loop: req/s ÷ the baseline's (GET /hello, runs just before and after)
--   min_rate_achieved   constant rate: responses ÷ the requests the schedule called for
--                       (target rate × the set duration: a server that cannot keep up answers
--                       fewer; wrk's own run overruns the duration only when wrk is stalled)
--   passed_as_predicted  storms: { tolerance = t }: the answers let through (not 429) differ
--                       from the count the limits predict by at most t × that count (at least 1)
--   min_computations, max_computations   stampede: computations of the invalidated page
--                       (luahost_cache_computations_total): at least one, else it was not invalidated
--
-- A key or scenario name the runner does not know is refused before anything runs.
--
-- The machine is 2 shared cores with wrk on them: the baseline alone moves by
-- ±30 % from one second to the next, so ratios have wide margins; they still
-- catch a route becoming several times slower, and every 5xx, socket error,
-- wrong count let through by a storm, or a page computed
-- never or twice fails.
return {
    default = { max_error_rate = 0.001, min_rate_achieved = 0.8 },

    baseline = {},
    hello = { max_p50_ms = 5, max_p99_ms = 50, min_rps_ratio = 0.5 },
    secure = { max_p50_ms = 10, max_p99_ms = 80, min_rps_ratio = 0.12 },
    cached = { max_p50_ms = 5, max_p99_ms = 80, min_rps_ratio = 0.4 },
    -- Sign-ins (PBKDF2) take most of the CPU of the mix: about 0.002 of /hello.
    gallery = { max_p50_ms = 200, max_p99_ms = 3000, min_rps_ratio = 0.0005 },
    stampede = { max_p50_ms = 20, max_p99_ms = 200, min_rps_ratio = 0.2, min_computations = 1,
        max_computations = 2 },
    ratelimit_storm = { max_p50_ms = 10, max_p99_ms = 200, min_rps_ratio = 0.04,
        passed_as_predicted = { tolerance = 0.02 } },
    login_storm = { max_p50_ms = 20, max_p99_ms = 3000,
        passed_as_predicted = { tolerance = 0.05 } },
    -- A bot is held for retry_after (60 s) from its 51st request in a window:
    -- what passes no longer depends on where the run falls in the windows.
    bot_storm = { max_p50_ms = 10, max_p99_ms = 200, passed_as_predicted = { tolerance = 0.05 } },

    -- CI (--smoke: 3 s per scenario, 1 s baselines): relative thresholds
    -- only, no absolute latencies, and a little more room for the ratios.
    smoke = {
        default = { max_p50_ms = false, max_p99_ms = false },
        hello = { min_rps_ratio = 0.4 },
        secure = { min_rps_ratio = 0.1 },
        cached = { min_rps_ratio = 0.3 },
        stampede = { min_rps_ratio = 0.15 },
        ratelimit_storm = { min_rps_ratio = 0.03 },
    },
}
