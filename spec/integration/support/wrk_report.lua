-- wrk script (wrk -s): counts non-2xx answers per thread and prints one
-- parseable line at the end:
--   WRK_RESULT requests=N p50_ms=X p99_ms=X max_ms=X non2xx=N connect=N read=N write=N timeout=N status=N
-- Used by spec/integration/hol_spec.lua. Not a busted spec (no _spec suffix).
local threads = {}

function setup(thread)
    threads[#threads + 1] = thread
end

non2xx = 0

function response(status, headers, body)
    if status < 200 or status > 299 then
        non2xx = non2xx + 1
    end
end

function done(summary, latency, requests)
    local bad = 0
    for _, t in ipairs(threads) do
        bad = bad + (tonumber(t:get("non2xx")) or 0)
    end
    local e = summary.errors
    io.write(("WRK_RESULT requests=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d "
        .. "connect=%d read=%d write=%d timeout=%d status=%d\n"):format(summary.requests,
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, bad,
        e.connect, e.read, e.write, e.timeout, e.status))
end
