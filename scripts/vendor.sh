#!/usr/bin/env bash
# Copies the front-end libraries the monitoring dashboard uses from
# node_modules/ (npm ci) into lua/luahost/monitor/, which the server embeds
# and serves at /monitor/assets/<file>. The copies are committed, so a build
# needs neither npm nor node_modules/; run this again after changing the uPlot
# version in package.json. Runs `npm ci` first when uplot is not installed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ -f node_modules/uplot/package.json ] || npm ci --no-audit --no-fund --loglevel=error
SRC=node_modules/uplot
DST=lua/luahost/monitor
mkdir -p "$DST"
install -m 0644 "$SRC/dist/uPlot.iife.min.js" "$DST/uPlot.iife.min.js"
install -m 0644 "$SRC/dist/uPlot.min.css" "$DST/uPlot.min.css"
install -m 0644 "$SRC/LICENSE" "$DST/uPlot.LICENSE"
echo "vendor: uPlot $(node -p "require('./$SRC/package.json').version") -> $DST"
