#!/usr/bin/env bash
# Thin wrapper: bench/loadtest.sh [--smoke] [--duration S] [--connections N]
# [--rate R] [scenario ...] runs bench/loadtest.lua under LuaJIT (see --help).
exec luajit "$(dirname "$0")/loadtest.lua" "$@"
