#!/usr/bin/env bash
# The cost of metrics on /hello: two luahost processes serve bench/app, one
# with --metrics on, one with --metrics off, and wrk measures them in
# interleaved rounds, so that the machine's drift hits both alike.
#
#   bench/metrics_overhead.sh        ROUNDS (5), DURATION (5 s), LOAD ("1:50")
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
LOAD=${LOAD:-"1:50"}
ON_PORT=18091
OFF_PORT=18092

[ -x "$ROOT/build/luahost" ] || "$ROOT/scripts/build.sh"
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true' EXIT
for mode in on off; do
    port=$ON_PORT
    [ $mode = off ] && port=$OFF_PORT
    "$ROOT/build/luahost" --app "$ROOT/bench/app" --port $port --metrics $mode \
        --access-log off --error-log /dev/null &
    pids+=($!)
done
for port in $ON_PORT $OFF_PORT; do
    for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/hello" >/dev/null && break; sleep 0.1; done
done

rps() {
    wrk -t"${LOAD%%:*}" -c"${LOAD##*:}" -d"${DURATION}s" "http://127.0.0.1:$1/hello" |
        awk '/^Requests\/sec/{print $2}'
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

on=() off=()
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then on+=("$(rps $ON_PORT)"); off+=("$(rps $OFF_PORT)")
    else off+=("$(rps $OFF_PORT)"); on+=("$(rps $ON_PORT)"); fi
    echo "round $r: metrics on ${on[-1]} req/s, off ${off[-1]} req/s" >&2
done
m_on=$(printf '%s\n' "${on[@]}" | median)
m_off=$(printf '%s\n' "${off[@]}" | median)
printf "| /hello wrk -t%s -c%s | metrics on | metrics off | on/off |\n|---|---:|---:|---:|\n" \
    "${LOAD%%:*}" "${LOAD##*:}"
printf "| median of %d × %d s | %.0f | %.0f | %.3f |\n" "$ROUNDS" "$DURATION" "$m_on" "$m_off" \
    "$(echo "$m_on / $m_off" | bc -l)"
