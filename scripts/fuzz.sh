#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang, ASan + UBSan, in build-fuzz/)
# and runs each: first on every input kept in fuzz/regressions/<target>/
# (crashes found before, now fixed), then fuzzing from the seed corpus for
# SECONDS seconds (CI: 10). New inputs go to a scratch corpus, not the repo.
#
#   scripts/fuzz.sh [SECONDS] [target ...]      e.g. scripts/fuzz.sh 600 json svg
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${1:-10}
shift || true
BUILD=${LUAHOST_FUZZ_BUILD:-$ROOT/build-fuzz}

command -v clang >/dev/null || "$ROOT/scripts/deps.sh"
CC=clang cmake -S "$ROOT" -B "$BUILD" -DLUAHOST_FUZZ=ON -DLUAHOST_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fuzzers >/dev/null

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$ROOT"/fuzz/fuzz_*.c; do t=${f##*/fuzz_}; targets+=("${t%.c}"); done
fi
scratch=$(mktemp -d /tmp/luahost-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    bin=$BUILD/fuzz/fuzz_$t
    if compgen -G "$ROOT/fuzz/regressions/$t/*" >/dev/null; then
        "$bin" "$ROOT"/fuzz/regressions/"$t"/* 2>"$scratch/$t.regressions.log" ||
            { cat "$scratch/$t.regressions.log"; echo "fuzz: $t: a regression input fails" >&2; exit 1; }
    fi
    mkdir -p "$scratch/$t"
    if ! "$bin" -max_total_time="$SECONDS_EACH" -timeout=5 -rss_limit_mb=1024 \
        -artifact_prefix="$scratch/$t-" "$scratch/$t" "$ROOT/fuzz/corpus/$t" 2>"$scratch/$t.log"; then
        tail -40 "$scratch/$t.log"
        mkdir -p "$ROOT/fuzz/regressions/$t"
        cp "$scratch/$t"-* "$ROOT/fuzz/regressions/$t/" 2>/dev/null || true
        echo "fuzz: $t found a crash; its input is now in fuzz/regressions/$t/" >&2
        exit 1
    fi
    echo "fuzz: $t: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$scratch/$t.log" | tail -1)"
done
