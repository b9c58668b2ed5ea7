#!/usr/bin/env bash
# The issue 5 comparison in one command: dualpipe vs the Gen1 emulator directly vs nginx's mirror module,
# same workloads side by side, targets table, JSON and PNG plots (bench/compare.py does the runs).
#   bash bench/compare.sh [--quick] [--out DIR] [--no-install] [--dualpipe BIN] [compare.py options...]
# 1. installs what is missing (docker/install-deps.sh --bench: nginx, gnuplot-nox, wrk), unless --no-install;
# 2. builds dualpipe-bench, dualpipe-emu, dualpipe and dualpipe-jrnlbench (CMake Release, build-bench/);
#    the bench and the emulator are required, the proxy and dualpipe-jrnlbench are measured when they build;
# 3. runs bench/compare.py: results in OUT (default build-bench/compare): results.json, runs/, *.png.
# --quick: seconds per run (about 5 minutes in all) instead of tens of seconds (about 20 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD="$ROOT/build-bench"
OUT="$BUILD/compare"
INSTALL=1
DUALPIPE=""
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) PASS+=(--quick) ;;
    --out) OUT=$2; shift ;;
    --no-install) INSTALL=0 ;;
    --dualpipe) DUALPIPE=$2; shift ;;
    -h|--help) sed -n '2,10p' "$0"; /usr/bin/python3 bench/compare.py --help | tail -n +2; exit 0 ;;
    *) PASS+=("$1") ;;
  esac
  shift
done

if [ "$INSTALL" -eq 1 ]; then
  bash docker/install-deps.sh --bench ||
    echo "compare.sh: installing the extra packages failed; parts that need them are skipped (see above)" >&2
fi

mkdir -p "$BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDP_CLIENT_TESTS=OFF >"$BUILD/cmake.log" 2>&1 ||
  { cat "$BUILD/cmake.log" >&2; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target dualpipe-bench dualpipe-emu >"$BUILD/build-bench.log" 2>&1 ||
  { tail -n 40 "$BUILD/build-bench.log" >&2; echo "compare.sh: dualpipe-bench/dualpipe-emu do not build" >&2; exit 1; }
for t in dualpipe dualpipe-jrnlbench; do
  if ! cmake --build "$BUILD" -j"$(nproc)" --target "$t" >"$BUILD/build-$t.log" 2>&1; then
    rm -f "$BUILD/bin/$t"   # never measure a stale binary from an earlier build
    echo "compare.sh: $t does not build in this tree (log: $BUILD/build-$t.log);" \
         "its parts are reported as not measured${DUALPIPE:+ (the proxy: using $DUALPIPE)}" >&2
  fi
done
if [ -n "$DUALPIPE" ]; then
  PASS+=(--dualpipe "$DUALPIPE")
fi
exec /usr/bin/python3 bench/compare.py --bin "$BUILD/bin" --out "$OUT" "${PASS[@]}"
