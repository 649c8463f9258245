#!/usr/bin/env bash
# Every test suite: installs missing packages, builds, starts the local
# MariaDB and Redis if they are not up (and stops them again afterwards),
# then runs ctest: the cmocka tests, the busted unit specs, the integration
# specs against the real server, the browser tests and a load-test smoke run.
# Then the same suites in an ASan + UBSan build, the thread-heavy ones in a
# ThreadSanitizer build, and every fuzzer for LUAHOST_FUZZ_SECONDS (5) each.
#
# Extra arguments go to the first ctest and skip the sanitizer and fuzzing
# stages, as does LUAHOST_QUICK=1 (a development loop).
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

(cd "${LUAHOST_BUILD_DIR:-build}" && ctest --output-on-failure "$@")
[ -z "${LUAHOST_QUICK:-}" ] && [ $# -eq 0 ] || exit 0

echo "test: AddressSanitizer + UndefinedBehaviorSanitizer build"
LUAHOST_BUILD_DIR=build-asan CMAKE_BUILD_TYPE=Debug scripts/build.sh -DLUAHOST_SANITIZE=ON >/dev/null
(cd build-asan && ctest --output-on-failure -E '^loadtest_smoke$')

echo "test: ThreadSanitizer build (thread pool, database pool, cache, metrics, reload, monitor)"
LUAHOST_BUILD_DIR=build-tsan CMAKE_BUILD_TYPE=Debug scripts/build.sh -DLUAHOST_TSAN=ON >/dev/null
(cd build-tsan && ctest --output-on-failure -R '^(task|db|cache|metrics|ratelimit|lua_threads)$')

echo "test: fuzzing each parser for ${LUAHOST_FUZZ_SECONDS:-5} s"
scripts/fuzz.sh "${LUAHOST_FUZZ_SECONDS:-5}"
