#!/usr/bin/env bash
# Benchmarks luahost serving bench/app (the anchors' routes) with wrk.
#
#   bench/run.sh [route ...]      luahost alone: req/s, p50/p99, RSS per route and load
#   bench/run.sh --anchors        side by side with nginx + lua-nginx-module and Flask,
#                                 through ../shared/anchors/run.sh (needs that folder)
#
# Knobs: DURATION (10 s), LOADS ("1:50 2:100" = wrk threads:connections),
# PORT (18088), WORKERS (luahost --workers, default: one per core),
# ACCESS_LOG (off). Redis comes from LUAHOST_REDIS_URL, else the local services.
# The access log is off by default, as in the anchors; ACCESS_LOG=file turns it on.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
LOADS=${LOADS:-"1:50 2:100"}
PORT=${PORT:-18088}
OUT=$ROOT/bench/results
mkdir -p "$OUT"

[ -x "$ROOT/build/luahost" ] || "$ROOT/scripts/build.sh"
command -v wrk >/dev/null || "$ROOT/scripts/deps.sh"
# /secure shares its limits through Redis, as in production.
if [ -z "${LUAHOST_REDIS_URL:-}" ]; then
    "$ROOT/scripts/services.sh" start >/dev/null
    while IFS= read -r line; do export "${line?}"; done < <("$ROOT/scripts/services.sh" env)
fi

"$ROOT/build/luahost" --app "$ROOT/bench/app" --port "$PORT" ${WORKERS:+--workers "$WORKERS"} \
    --access-log "${ACCESS_LOG:-off}" --error-log "$OUT/error.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/hello" >/dev/null && break; sleep 0.1; done

if [ "${1:-}" = "--anchors" ]; then
    ANCHORS=$ROOT/../shared/anchors
    [ -x "$ANCHORS/run.sh" ] || { echo "bench: $ANCHORS/run.sh not found" >&2; exit 1; }
    C_PID=$PID "$ANCHORS/run.sh" "http://127.0.0.1:$PORT"
    exit
fi

routes=("$@")
[ ${#routes[@]} -gt 0 ] || routes=(/hello)
printf "| load | route | req/s | p50 ms | p99 ms | errors | RSS MiB |\n|---|---|---:|---:|---:|---:|---:|\n"
for load in $LOADS; do
    for route in "${routes[@]}"; do
        wrk -t"${load%%:*}" -c"${load##*:}" -d1s "http://127.0.0.1:$PORT$route" >/dev/null # warm-up
        (sleep $((DURATION / 2)); awk '/VmRSS/{print $2}' /proc/$PID/status >"$OUT/rss") &
        sampler=$!
        line=$(wrk -t"${load%%:*}" -c"${load##*:}" -d"${DURATION}s" -s "$ROOT/bench/wrk/report.lua" \
            "http://127.0.0.1:$PORT$route" | grep '^RESULT')
        wait $sampler
        eval "$(echo "${line#RESULT }" | tr ' ' '\n' | sed 's/^/r_/')"
        printf "| -t%s -c%s | %s | %.0f | %.2f | %.2f | %d | %.1f |\n" "${load%%:*}" "${load##*:}" \
            "$route" "$r_rps" "$(echo "$r_p50_us / 1000" | bc -l)" "$(echo "$r_p99_us / 1000" | bc -l)" \
            $((r_connect + r_read + r_write + r_status + r_timeout)) "$(echo "$(cat "$OUT/rss") / 1024" | bc -l)"
    done
done
