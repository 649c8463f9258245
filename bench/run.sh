#!/usr/bin/env bash
# Benchmarks luahost serving bench/app (the anchors' routes) with wrk.
#
#   bench/run.sh [route ...]      luahost alone: req/s, p50/p99, RSS per route and load
#   bench/run.sh --anchors        side by side with nginx + lua-nginx-module and Flask,
#                                 through ../shared/anchors/run.sh (needs that folder)
#   bench/run.sh --anchors-rate   luahost and nginx + lua-nginx-module at fixed request
#                                 rates below saturation (wrk paced by bench/scenarios),
#                                 interleaved: latency at equal load, not peak req/s
#
# Knobs: DURATION (10 s), LOADS ("1:50 2:100" = wrk threads:connections),
# PORT (18088), WORKERS (luahost --workers, default: one per core),
# for --anchors-rate RATES ("20000 40000" req/s) and ROUNDS (3),
# ACCESS_LOG (off). Redis comes from LUAHOST_REDIS_URL, else the local services'
# database 1 (scripts/services.sh env bench), away from the gallery's limits.
# The access log is off by default, as in the anchors; ACCESS_LOG=file turns it on.
set -euo pipefail
case "${1:-}" in
-h | --help)
    sed -n '2,/^$/{/^#/s/^# \{0,1\}//p}' "$0"
    exit 0
    ;;
--anchors | --anchors-rate | /* | "") ;;
*)
    echo "bench: unknown argument '$1' (routes start with /; see --help)" >&2
    exit 2
    ;;
esac
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
    while IFS= read -r line; do export "${line?}"; done < <("$ROOT/scripts/services.sh" env bench)
fi

"$ROOT/build/luahost" --app "$ROOT/bench/app" --port "$PORT" ${WORKERS:+--workers "$WORKERS"} \
    --access-log "${ACCESS_LOG:-off}" --error-log "$OUT/error.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/hello" >/dev/null && break; sleep 0.1; done

ANCHORS=$ROOT/../shared/anchors
if [[ "${1:-}" == --anchors* ]] && [ ! -x "$ANCHORS/run.sh" ]; then
    echo "bench: $ANCHORS/run.sh not found" >&2
    exit 1
fi
if [ "${1:-}" = "--anchors" ]; then
    C_PID=$PID "$ANCHORS/run.sh" "http://127.0.0.1:$PORT"
    exit
fi

# Sets r_<name> for each name=value of a wrk script's "RESULT ..." line.
read_result() {
    eval "$(echo "${1#RESULT }" | tr ' ' '\n' | grep -E '^[a-z0-9_]+=[0-9.]+$' | sed 's/^/r_/')"
}

# One paced wrk run: prints "rps p50_us p99_us errors" from the scenario's RESULT line.
paced() { # rate threads connections route url
    local line
    line=$(RATE=$1 THREADS=$2 wrk -t"$2" -c"$3" -d"${DURATION}s" -s "$ROOT/bench/scenarios/$4.lua" "$5" |
        grep '^RESULT') || { echo "bench: no result from wrk against $5" >&2; return 1; }
    read_result "$line"
    echo "$r_rps $r_p50_us $r_p99_us $((r_bad + r_errors))"
}

if [ "${1:-}" = "--anchors-rate" ]; then
    "$ANCHORS/run.sh" start >/dev/null
    trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null || true; "$ANCHORS/run.sh" stop >/dev/null' EXIT
    raw=$OUT/anchors-rate-$(date -u +%Y%m%d-%H%M%S).tsv
    for round in $(seq 1 "${ROUNDS:-3}"); do
        for rate in ${RATES:-20000 40000}; do
            for load in $LOADS; do
                for route in hello secure cached; do
                    for server in A:18080 C:$PORT; do
                        result=$(paced "$rate" "${load%%:*}" "${load##*:}" "$route" "http://127.0.0.1:${server#*:}")
                        echo "$rate	$load	$route	${server%%:*}	$result" >>"$raw"
                    done
                done
            done
        done
        echo "bench: round $round of ${ROUNDS:-3} done" >&2
    done
    echo "Fixed-rate runs, medians of ${ROUNDS:-3} rounds of ${DURATION} s; A = nginx + lua, C = luahost; raw: $raw"
    printf "| rate | load | route | achieved A / C | p50 ms A / C | p99 ms A / C | errors A / C |\n"
    printf "|---:|---|---|---:|---:|---:|---:|\n"
    awk -F'	' '
        function median(list,  a, n, i, j, x) { # insertion sort: a few values, and mawk has no asort
            n = split(list, a, " ")
            for (i = 2; i <= n; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
            return a[int((n + 1) / 2)] }
        { key = $1 "|" $2 "|" $3; split($5, v, " ")
          if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
          for (i = 1; i <= 4; i++) col[key, $4, i] = col[key, $4, i] " " v[i] }
        END { for (k = 1; k <= keys; k++) { split(order[k], f, "|")
            printf "| %s | -t%s -c%s | /%s | %.0f / %.0f | %.2f / %.2f | %.2f / %.2f | %d / %d |\n",
              f[1], substr(f[2], 1, index(f[2], ":") - 1), substr(f[2], index(f[2], ":") + 1), f[3],
              median(col[order[k], "A", 1]), median(col[order[k], "C", 1]),
              median(col[order[k], "A", 2]) / 1000, median(col[order[k], "C", 2]) / 1000,
              median(col[order[k], "A", 3]) / 1000, median(col[order[k], "C", 3]) / 1000,
              median(col[order[k], "A", 4]), median(col[order[k], "C", 4]) } }' "$raw"
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
        read_result "$line"
        printf "| -t%s -c%s | %s | %.0f | %.2f | %.2f | %d | %.1f |\n" "${load%%:*}" "${load##*:}" \
            "$route" "$r_rps" "$(echo "$r_p50_us / 1000" | bc -l)" "$(echo "$r_p99_us / 1000" | bc -l)" \
            $((r_connect + r_read + r_write + r_status + r_timeout)) "$(echo "$(cat "$OUT/rss") / 1024" | bc -l)"
    done
done
