#!/usr/bin/env bash
# Configures and builds luahost into build/ (or $LUAHOST_BUILD_DIR).
# Extra arguments go to cmake's configure step, e.g. -DLUAHOST_SANITIZE=ON.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${LUAHOST_BUILD_DIR:-$ROOT/build}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
