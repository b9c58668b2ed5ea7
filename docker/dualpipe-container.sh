#!/usr/bin/env bash
# Stands in for the dualpipe binary in the integration and client tests (proxylib runs
# `$DUALPIPE --config FILE`): runs the proxy of the image $DP_CTR_IMAGE instead, in a container that
# shares the host's network (the emulators and the tests are on its loopback, as a sidecar shares its
# pod's), as the image's non-root user, under the seccomp profile $DP_CTR_SECCOMP (a file, or
# "default" for podman's). The config's directory and spool.dir (journal.dir) are mounted at the same
# paths and handed to the image's user. stdout/stderr and the exit status are the proxy's; SIGTERM
# and SIGHUP reach it through podman (--sig-proxy). Used by docker/ci-container.sh.
set -euo pipefail
[ "${1:-}" = "--config" ] && [ $# -eq 2 ] || { echo "usage: $0 --config FILE" >&2; exit 2; }
cfg=$(readlink -f "$2")
IMAGE=${DP_CTR_IMAGE:?DP_CTR_IMAGE names the image to run}
SECCOMP=${DP_CTR_SECCOMP:-default}
mapfile -t dirs < <(/usr/bin/python3 - "$cfg" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[1]))
base = os.path.dirname(sys.argv[1])
def absdir(p):
    return os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p))
spool = absdir(c.get("spool", {}).get("dir", "/var/lib/dualpipe/spool"))
print("rw " + base)
print("rw " + spool)
j = c.get("journal", {}).get("dir")
if j:
    print("rw " + absdir(j))
# Files the config names (TLS certificates and keys, secrets, identity map): their directories, read-only.
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if isinstance(v, str) and v and (k.endswith("_file") or k in ("ca_path", "identity_map")):
                print("ro " + absdir(v))
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(c)
PY
)
mounts=()
declare -A seen=()
tmp=$(readlink -f "${TMPDIR:-/tmp}")
for entry in "${dirs[@]}"; do
  mode=${entry%% *} path=${entry#* }
  if [ "$mode" = rw ]; then
    mkdir -p "$path"
    chown -R 10001:10001 "$path"
    d=$path
  else
    d=$(dirname "$path")
    [ -d "$path" ] && d=$path
    # A test's own files (keys are 0600, their directory 0700): hand them to the image's user. Files
    # elsewhere are only mounted; they must already be readable by uid 10001.
    case "$d/" in
      "$tmp"/*) chown 10001:10001 "$d"; chown -R 10001:10001 "$path" ;;
    esac
  fi
  [ -n "${seen[$d]:-}" ] && continue
  seen[$d]=1
  if [ "$mode" = rw ]; then mounts+=(-v "$d:$d"); else mounts+=(-v "$d:$d:ro"); fi
done
sec=()
[ "$SECCOMP" = default ] || sec=(--security-opt "seccomp=$SECCOMP")
exec podman run --rm --pull=never --network host --no-healthcheck "${sec[@]}" "${mounts[@]}" \
  "$IMAGE" --config "$cfg"
