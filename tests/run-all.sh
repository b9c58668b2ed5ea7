#!/usr/bin/env bash
# Runs every dualpipe test: installs what is missing (docker/install-deps.sh), then
#   1. build/       -Werror build of the whole tree; all tests (unit, integration, real  ctest -LE scale
#                   clients)
#      then, one at a time, the scale tests (a 5 GiB re-copy under faults, a 3 GiB OPEN  ctest -L ^scale$
#      and a 200,000-entry listing through the proxy)
#      then the container stage (docker/ci-container.sh): docker/Dockerfile built with podman, the
#      real-client tests through the containerised proxy on both I/O backends, a stack of containers
#      (healthcheck, SIGTERM drain); about 100 s on a machine that never built it, 25-55 s after.
#      DP_CONTAINER_STAGE=0 skips it.
#   2. build-asan/  ASan+UBSan build, leak checks on; unit + integration tests (but two long
#                   thread-pool repeats)                                             ctest -L
#   3. build-tsan/  ThreadSanitizer build; journal, spool, iox, applier, pipeline,     ctest -L tsan
#                   the per-path fence, one durability variant and the operations test
#   4. build-fuzz/  clang libFuzzer targets, a bounded run over the seed corpus        ctest -L fuzz
# Stages 2-4 build only what their tests run: the targets dp_asan_tests, dp_tsan_tests and dp_fuzz_tests
# (tests/CMakeLists.txt) depend on the programs of the tests their labels select (each test's own program and
# the $<TARGET_FILE:...> of its environment), so the fuzz stage builds the fuzz targets alone, the TSan stage
# the daemon, the emulator and the tsan-labelled unit tests; only stage 1 builds everything (the benchmarks'
# other tools too). Change a stage's ctest -L here and its dp_stage_target line there together.
# Usage: bash tests/run-all.sh        (from anywhere; run as root or with sudo available)
# Exit status is non-zero if any stage fails; each stage prints ctest's summary.
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
status=0

stage() { printf '\n===== %s =====\n' "$*"; }

stage "dependencies"
CONTAINER_STAGE=${DP_CONTAINER_STAGE:-1}
if [ "$CONTAINER_STAGE" != 0 ]; then bash docker/install-deps.sh --container || exit 1
else bash docker/install-deps.sh || exit 1; fi

stage "build (warnings are errors)"
cmake -S . -B build -DDP_WERROR=ON -DDP_REQUIRE_CLIENT_TESTS=ON >/dev/null && cmake --build build -j"$JOBS" || exit 1
stage "tests: unit, integration, real clients"
ctest --test-dir build -j"$JOBS" -LE scale --output-on-failure --timeout 600 || status=1
stage "tests at scale (one at a time: each fills the disk and both cores)"
# recopy_scale_dir (label scale_long, a 200,000-entry resync, ~4 min) runs by hand, see tests/integration.
ctest --test-dir build -L '^scale$' --output-on-failure || status=1

stage "container image: build, real clients through the containerised proxy, stack smoke"
if [ "$CONTAINER_STAGE" != 0 ]; then
  bash docker/ci-container.sh || status=1
else
  echo "skipped (DP_CONTAINER_STAGE=0)"
fi

stage "build with AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DDP_WERROR=ON -DDP_SANITIZE=ON -DDP_CLIENT_TESTS=OFF >/dev/null &&
  cmake --build build-asan -j"$JOBS" --target dp_asan_tests || exit 1
stage "tests under ASan+UBSan (leak checks on)"
# durability_threads and crash_threads repeat durability and crash on the thread-pool I/O backend (about 75 s
# under ASan): that backend runs under ASan in test_iox, test_journal*, the other *_threads tests and under
# TSan (durability_threads), so the two long repeats are left to stage 1 and keep the run under 25 minutes.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -j"$JOBS" -L 'unit|integration' -E '^(durability_threads|crash_threads)$' \
  --output-on-failure --timeout 900 || status=1

stage "build with ThreadSanitizer"
cmake -S . -B build-tsan -DDP_WERROR=ON -DDP_TSAN=ON -DDP_CLIENT_TESTS=OFF >/dev/null &&
  cmake --build build-tsan -j"$JOBS" --target dp_tsan_tests || exit 1
stage "tests under ThreadSanitizer (label tsan)"
# A report fails the test: unit tests exit 66, proxylib/emulib find "ThreadSanitizer" in the logs.
# tests/tsan.supp silences third-party internals only (libcurl, libmicrohttpd), never our frames.
TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp:halt_on_error=0:second_deadlock_stack=1" \
  ctest --test-dir build-tsan -j"$JOBS" -L tsan --output-on-failure --timeout 900 || status=1

stage "fuzz targets (clang, libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DDP_FUZZ=ON -DDP_CLIENT_TESTS=OFF >/dev/null &&
  cmake --build build-fuzz -j"$JOBS" --target dp_fuzz_tests || exit 1
ctest --test-dir build-fuzz -L fuzz --output-on-failure || status=1

stage "result"
if [ $status -eq 0 ]; then echo "all test stages passed"; else echo "SOME TEST STAGES FAILED"; fi
exit $status
