#!/usr/bin/env bash
# Every test suite: installs missing packages, builds, starts the local
# MariaDB and Redis if they are not up (and stops them again afterwards),
# then runs ctest: the cmocka tests, the busted unit specs and the
# integration specs against the real server. Extra arguments go to ctest.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/deps.sh
scripts/build.sh

started=
if ! scripts/services.sh status | grep -q "mariadb up" || ! scripts/services.sh status | grep -q "redis up"; then
    started=1
fi
scripts/services.sh start
[ -z "$started" ] || trap '"$ROOT/scripts/services.sh" stop >/dev/null' EXIT
while IFS= read -r line; do export "${line?}"; done < <(scripts/services.sh env)

cd "${LUAHOST_BUILD_DIR:-build}"
ctest --output-on-failure "$@"
