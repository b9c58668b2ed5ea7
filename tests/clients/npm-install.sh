#!/usr/bin/env bash
# Installs the pinned npm clients of the real-client tests (package.json + package-lock.json beside
# this script) into a build-local prefix, never into the source tree: the two files are copied to
# PREFIX and `npm ci` runs there, so PREFIX/node_modules holds exactly the locked versions. A second
# run with an unchanged lock and a complete install does nothing.
# Usage: npm-install.sh PREFIX   (the client tests pass <build dir>/npm)
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 PREFIX" >&2
  exit 2
fi
src="$(cd "$(dirname "$0")" && pwd)"
prefix="$1"
stamp="$prefix/node_modules/.dualpipe-lock-installed"

command -v npm >/dev/null 2>&1 || { echo "npm-install: npm not found (run docker/install-deps.sh)" >&2; exit 1; }
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
stamp="$prefix/node_modules/.dualpipe-lock-installed"

# Up to date: the lock that was installed (the stamp is a copy of it, written only after a
# successful `npm ci`) equals the lock in the source tree, and so does package.json.
if [ -f "$stamp" ] && cmp -s "$stamp" "$src/package-lock.json" \
    && cmp -s "$prefix/package.json" "$src/package.json"; then
  echo "npm-install: $prefix/node_modules is up to date"
  exit 0
fi

cp "$src/package.json" "$src/package-lock.json" "$prefix/"
cd "$prefix"
# engine-strict off: @azure/storage-file-datalake 12.31.0 declares node >= 22 but runs on the
# machine's node 20; npm only warns about it, and must not be made to refuse by a user config.
npm ci --no-audit --no-fund --engine-strict=false
cp "$src/package-lock.json" "$stamp"
echo "npm-install: installed pinned clients into $prefix/node_modules"
