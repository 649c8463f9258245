#!/usr/bin/env bash
# Local MariaDB and Redis for development and tests, on loopback, with their
# data under var/services/ (ignored by git). No systemd needed.
#
#   scripts/services.sh start [mariadb|redis]   start both, or one (nothing for one already up)
#   scripts/services.sh stop [mariadb|redis]    stop both, or one, by the pids they recorded
#   scripts/services.sh status   say what runs
#   scripts/services.sh env      print LUAHOST_DB_URL and LUAHOST_REDIS_URL
#   scripts/services.sh env bench   the same with Redis database 1: benchmarks
#                                send millions of requests from 127.0.0.1,
#                                which in database 0 would use up the
#                                gallery's per-address limits for an hour
#
# Ports: LUAHOST_MARIADB_PORT (13306), LUAHOST_REDIS_PORT (16380).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${LUAHOST_SERVICES_DIR:-$ROOT/var/services}
MARIADB_PORT=${LUAHOST_MARIADB_PORT:-13306}
REDIS_PORT=${LUAHOST_REDIS_PORT:-16380}
DB_NAME=luahost
DB_USER=luahost
DB_PASSWORD=luahost-dev
SOCK=$DIR/mysql.sock

log() { echo "services: $*"; }
die() { echo "services: $*" >&2; exit 1; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
pid_of() { [ -f "$1" ] && cat "$1" || true; }

mariadb_up() { mariadb-admin --no-defaults --socket="$SOCK" -uroot ping >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

start_mariadb() {
    if mariadb_up; then log "mariadb already up on 127.0.0.1:$MARIADB_PORT"; return; fi
    mkdir -p "$DIR"
    if [ ! -d "$DIR/mysql/mysql" ]; then
        mariadb-install-db --no-defaults --user=root --datadir="$DIR/mysql" \
            --auth-root-authentication-method=normal --skip-test-db >"$DIR/mysql-install.log" 2>&1 ||
            { cat "$DIR/mysql-install.log"; die "mariadb-install-db failed"; }
    fi
    mariadbd --no-defaults --user=root --datadir="$DIR/mysql" --socket="$SOCK" \
        --pid-file="$DIR/mysql.pid" --port="$MARIADB_PORT" --bind-address=127.0.0.1 \
        --skip-name-resolve --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        --log-error="$DIR/mysql.err" </dev/null >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 300); do
        mariadb_up && break
        alive "$pid" || { tail -20 "$DIR/mysql.err"; die "mariadbd exited"; }
        sleep 0.1
    done
    mariadb_up || die "mariadbd did not answer within 30 s (see $DIR/mysql.err)"
    echo "$pid" >"$DIR/mysql.pid.saved"
    mariadb --no-defaults --socket="$SOCK" -uroot -e "
        CREATE DATABASE IF NOT EXISTS $DB_NAME CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
        CREATE DATABASE IF NOT EXISTS ${DB_NAME}_test CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
        CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
        GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
        GRANT ALL ON ${DB_NAME}_test.* TO '$DB_USER'@'127.0.0.1';"
    log "mariadb up on 127.0.0.1:$MARIADB_PORT (pid $pid, data in ${DIR#"$ROOT"/})"
}

start_redis() {
    if redis_up; then log "redis already up on 127.0.0.1:$REDIS_PORT"; return; fi
    mkdir -p "$DIR/redis"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
        --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR/redis" >/dev/null
    for _ in $(seq 1 100); do redis_up && break; sleep 0.05; done
    redis_up || die "redis did not answer (see $DIR/redis.log)"
    # Redis removes its pidfile on shutdown: keep a copy to stop it by pid.
    cp "$DIR/redis.pid" "$DIR/redis.pid.saved"
    log "redis up on 127.0.0.1:$REDIS_PORT (pid $(cat "$DIR/redis.pid.saved"))"
}

stop_by_pid() { # name pidfile
    local pid; pid=$(pid_of "$2")
    if ! alive "$pid"; then rm -f "$2"; log "$1 not running"; return; fi
    kill -TERM "$pid"
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid"
    rm -f "$2"
    log "$1 stopped (pid $pid)"
}

which=${2:-both}
if [ "${1:-}" = env ]; then
    case "$which" in both) redis_db=0 ;; bench) redis_db=1 ;; *) die "unknown env '$which': env prints database 0's URLs, env bench database 1's" ;; esac
else
    case "$which" in both|mariadb|redis) ;; *) die "unknown service $which: mariadb or redis" ;; esac
fi
case "${1:-}" in
start)
    [ "$which" = redis ] || start_mariadb
    [ "$which" = mariadb ] || start_redis ;;
stop)
    [ "$which" = mariadb ] || stop_by_pid redis "$DIR/redis.pid.saved"
    [ "$which" = redis ] || stop_by_pid mariadb "$DIR/mysql.pid.saved" ;;
status)
    if mariadb_up; then log "mariadb up on 127.0.0.1:$MARIADB_PORT"; else log "mariadb down"; fi
    if redis_up; then log "redis up on 127.0.0.1:$REDIS_PORT"; else log "redis down"; fi ;;
env)
    echo "LUAHOST_DB_URL=mysql://$DB_USER:$DB_PASSWORD@127.0.0.1:$MARIADB_PORT/$DB_NAME"
    echo "LUAHOST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/$redis_db" ;;
*) sed -n '2,/^$/{/^#/s/^# \{0,1\}//p}' "$0"; exit 2 ;;
esac
