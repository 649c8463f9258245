#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to the gallery on
# http://127.0.0.1:8080: installs missing packages, builds, starts the local
# MariaDB and Redis (data under var/), then runs luahost in the foreground.
# Extra arguments go to luahost (see build/luahost --help).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/deps.sh
scripts/build.sh
scripts/services.sh start
while IFS= read -r line; do export "${line?}"; done < <(scripts/services.sh env)
echo "luahost: serving lua/app on http://127.0.0.1:${LUAHOST_PORT:-8080} (Ctrl-C stops; scripts/services.sh stop stops the databases)"
exec build/luahost --app lua/app "$@"
