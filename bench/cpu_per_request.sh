#!/usr/bin/env bash
# Server CPU time per request, luahost against the anchors' nginx + lua, in
# alternating rounds. Steadier than req/s on a machine where wrk shares the
# cores: both servers do the same work per request whatever the scheduler
# gives them.
#
#   bench/cpu_per_request.sh [route] [threads:connections] [rounds] [seconds]
#
# PIN=1: one worker each, pinned to core 1, and wrk pinned to core 0 (the
# load is then 1:<connections>): repeats within about 0.05 µs, for telling
# small changes apart; the default measures the servers as deployed.
#
# Defaults: /secure, 2:100, 3 rounds of 5 s. Needs nginx and its Lua module
# as ../shared/anchors/run.sh extracts them (run `bench/run.sh --anchors`
# once). Redis for luahost's limits as in bench/run.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=$ROOT/../shared/anchors
DEPS=$ANCHORS/.work/deps
ROUTE=${1:-/secure}
LOAD=${2:-2:100}
ROUNDS=${3:-3}
SECONDS_PER_RUN=${4:-5}
NGINX_PORT=18080 # fixed in the anchors' nginx.conf
PORT=${PORT:-18089}

[ -x "$DEPS/usr/sbin/nginx" ] || {
    echo "cpu_per_request: no nginx in $DEPS; run bench/run.sh --anchors once" >&2
    exit 1
}
[ -x "$ROOT/build/luahost" ] || "$ROOT/scripts/build.sh"
if [ -z "${LUAHOST_REDIS_URL:-}" ]; then
    "$ROOT/scripts/services.sh" start >/dev/null
    while IFS= read -r line; do export "${line?}"; done < <("$ROOT/scripts/services.sh" env bench)
fi

mkdir -p "$ANCHORS/.work/run/nginx-tmp" "$ROOT/bench/results"
NGINX_CONF=$ANCHORS/nginx/nginx.conf
SERVER_CPU=() WRK_CPU=() WORKERS=()
if [ -n "${PIN:-}" ]; then
    NGINX_CONF=$ROOT/bench/results/nginx-one-worker.conf
    sed 's/^worker_processes .*/worker_processes 1;/' "$ANCHORS/nginx/nginx.conf" >"$NGINX_CONF"
    SERVER_CPU=(taskset -c 1) WRK_CPU=(taskset -c 0) WORKERS=(--workers 1)
    LOAD=1:${LOAD##*:}
fi
(cd "$ANCHORS" && FINGERPRINT_SECRET=anchor-bench-secret LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu" \
    exec "${SERVER_CPU[@]}" "$DEPS/usr/sbin/nginx" -p "$ANCHORS/" -c "$NGINX_CONF" >/dev/null 2>&1) &
NGINX=$!
"${SERVER_CPU[@]}" "$ROOT/build/luahost" --app "$ROOT/bench/app" --port "$PORT" --access-log off \
    "${WORKERS[@]}" --error-log "$ROOT/bench/results/cpu_per_request.log" &
LUAHOST=$!
trap 'kill -QUIT $NGINX 2>/dev/null; kill -TERM $LUAHOST 2>/dev/null; wait 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:$PORT/hello" >/dev/null && curl -sf "http://127.0.0.1:$NGINX_PORT/hello" >/dev/null && break
    sleep 0.1
done

# Clock ticks (user + system) of the given processes.
ticks() {
    local sum=0
    for pid in "$@"; do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
    echo "$sum"
}

hz=$(getconf CLK_TCK)
printf "| round | server | req/s | CPU µs per request |\n|---:|---|---:|---:|\n"
for round in $(seq 1 "$ROUNDS"); do
    for server in nginx luahost; do
        if [ "$server" = nginx ]; then
            url=http://127.0.0.1:$NGINX_PORT$ROUTE
            pids=$(pgrep -P "$NGINX" | tr '\n' ' ')
        else
            url=http://127.0.0.1:$PORT$ROUTE
            pids=$LUAHOST
        fi
        "${WRK_CPU[@]}" wrk -t"${LOAD%%:*}" -c"${LOAD##*:}" -d1s "$url" >/dev/null # warm-up
        # shellcheck disable=SC2086
        before=$(ticks $pids)
        rps=$("${WRK_CPU[@]}" wrk -t"${LOAD%%:*}" -c"${LOAD##*:}" -d"${SECONDS_PER_RUN}s" "$url" |
            awk '/Requests\/sec/{print $2}')
        # shellcheck disable=SC2086
        after=$(ticks $pids)
        printf "| %d | %s | %.0f | %.2f |\n" "$round" "$server" "$rps" \
            "$(echo "($after - $before) * 1000000 / $hz / ($rps * $SECONDS_PER_RUN)" | bc -l)"
    done
done
