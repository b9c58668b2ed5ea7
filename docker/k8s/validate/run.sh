#!/usr/bin/env bash
# Validates docker/k8s/*.yaml (validate.mjs) with the pinned npm packages of package-lock.json,
# installed by `npm ci` into PREFIX (a build directory; a second run with the same lock does nothing).
# Usage: run.sh PREFIX [MANIFEST_DIR [DUALPIPE]]   (ctest k8s_manifests passes <build>/npm-k8s, the
#        manifest directory and the dualpipe binary, which checks the configs they carry)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 PREFIX [MANIFEST_DIR]" >&2; exit 2; }
src="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$1"
prefix="$(cd "$1" && pwd)"
dir="${2:-$src/..}"
stamp="$prefix/node_modules/.dualpipe-lock-installed"
if ! { [ -f "$stamp" ] && cmp -s "$stamp" "$src/package-lock.json"; }; then
  cp "$src/package.json" "$src/package-lock.json" "$prefix/"
  (cd "$prefix" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$src/package-lock.json" "$stamp"
fi
cp "$src/validate.mjs" "$prefix/validate.mjs"
node "$prefix/validate.mjs" "$dir" ${3:+"$3"}
