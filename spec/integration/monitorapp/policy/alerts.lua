-- Short windows so that the spec sees an alert fire and resolve.
return {
    rules = {
        { name = "slow_p95", metric = "p95_ms", above = 200, for_seconds = 1,
          severity = "warning", description = "p95 above 200 ms for 1 s" },
        { name = "sparse_errors", metric = "error_rate", above = 0.5, for_seconds = 3,
          severity = "critical", description = "most requests fail for 3 s" },
    },
    slow_request_ms = 100,
    slow_routes = { ["GET /ok"] = 5000 },
}
