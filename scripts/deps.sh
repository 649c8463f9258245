#!/usr/bin/env bash
# Installs the Debian packages luahost needs to build, run and test, if any is
# missing. Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config
    luajit libluajit-5.1-dev libmicrohttpd-dev libmariadb-dev libhiredis-dev libssl-dev
    lua-cjson
    mariadb-server mariadb-client redis-server redis-tools
    # tests and benchmarks
    libcmocka-dev lua-busted lua-socket lua-posix wrk curl procps bc
    # fuzzing (libFuzzer comes with clang)
    clang
    # the monitoring dashboard's browser test (tests/browser/), promtool
    chromium nodejs prometheus
)
# npm: Debian's package, unless the nodejs installed already brings its own
# (NodeSource's does, and conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The node packages of package-lock.json (playwright-core, uplot) in node_modules/.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$ROOT/node_modules/playwright-core" ]; then
    echo "deps: npm ci"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
fi
