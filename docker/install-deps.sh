#!/usr/bin/env bash
# Installs the Debian 12 packages that building, testing and running dualpipe locally need.
# Idempotent: packages already present are skipped, and apt-get runs only when something is missing.
# Used by README's two commands and by .ci/run (through tests/run-all.sh); docker/Dockerfile installs
# its own (a build stage and a runtime stage).
#   docker/install-deps.sh          build + test packages (the default)
#   docker/install-deps.sh --container  also podman, buildah, runc and debootstrap: docker/ci-container.sh
#                                   builds and tests docker/Dockerfile with them (no Docker engine needed)
#   docker/install-deps.sh --bench  also the comparison run's extras (bench/compare.sh): nginx (its mirror
#                                   module is the do-it-yourself dual write), gnuplot-nox (the plots), wrk
#                                   (bench/emu-speed.sh). Services are never started: bench/ runs its own
#                                   nginx as the invoking user, on loopback, from a scratch directory.
set -euo pipefail

BENCH=0
CONTAINER=0
for a in "$@"; do
  case "$a" in
    --bench) BENCH=1 ;;
    --container) CONTAINER=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown option $a" >&2; echo "usage: $0 [--container] [--bench]" >&2; exit 2 ;;
  esac
done

# Build: compiler, CMake, pkg-config and the five libraries fixed by the design card.
BUILD_PKGS="build-essential cmake pkg-config libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev libssl-dev
            liburing-dev libjansson-dev"
# Tests: clang + its runtimes for the libFuzzer targets and sanitizer runs, Python for the HTTP
# integration tests, the Debian ADLS Gen1 client, curl for the shell scripts, chromium (headless: the
# assess HTML report is opened in a real browser by tests/integration/test_assess.py).
TEST_PKGS="clang libclang-rt-14-dev python3 python3-azure-datalake-store curl ca-certificates openssl chromium"

BENCH_PKGS=""
[ "$BENCH" -eq 0 ] || BENCH_PKGS="nginx gnuplot-nox wrk"
# The container stage: podman 4.3 with runc (crun refuses hosts whose cgroups are in hybrid mode) and
# debootstrap for a base image made from the Debian mirror when no container registry is reachable.
CONTAINER_PKGS=""
[ "$CONTAINER" -eq 0 ] || CONTAINER_PKGS="podman buildah runc debootstrap"

missing=()
for p in $BUILD_PKGS $TEST_PKGS $BENCH_PKGS $CONTAINER_PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# Node.js and npm run the npm clients (webhdfs, @azure/storage-file-datalake, ...). A machine that
# already has a node/npm (for example from another Debian source) keeps it: installing Debian's npm
# on top of a different nodejs package would conflict.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update
# A package's maintainer scripts must not start a system nginx: with no policy-rc.d in place (Docker
# images ship one), deny service starts for the duration of the install only.
POLICY=/usr/sbin/policy-rc.d
if [ "$BENCH" -eq 1 ] && [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
