#!/usr/bin/env bash
# Installs the Debian 12 packages that building, testing and running dualpipe locally need.
# Idempotent: packages already present are skipped, and apt-get runs only when something is missing.
# Used by README's two commands, by .ci/run (through tests/run-all.sh) and by docker/Dockerfile.
set -euo pipefail

# Build: compiler, CMake, pkg-config and the five libraries fixed by the design card.
BUILD_PKGS="build-essential cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev libssl-dev
            liburing-dev libjansson-dev"
# Tests: clang + its runtimes for the libFuzzer targets and sanitizer runs, Python for the HTTP
# integration tests, the Debian ADLS Gen1 client, curl for the shell scripts.
TEST_PKGS="clang libclang-rt-14-dev python3 python3-azure-datalake-store curl ca-certificates"

missing=()
for p in $BUILD_PKGS $TEST_PKGS; do
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
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
