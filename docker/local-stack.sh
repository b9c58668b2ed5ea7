#!/usr/bin/env bash
# The local stack: installs what is missing, builds, and runs the emulators on loopback as
# config/local.json describes them (Gen1 WebHDFS, ADLS dialect; Gen2 DFS with filesystem "lake").
# Serves until Ctrl-C, then stops everything it started.
#   bash docker/local-stack.sh [CONFIG]        (default config/local.json)
# State lives in build/local-stack/ (kept across runs; delete it for a clean lake).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-config/local.json}

bash docker/install-deps.sh
cmake -S . -B build -DDP_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)" --target dualpipe-emu

# Read the endpoints, account, key and filesystem from the config (python3 is installed by install-deps).
eval "$(/usr/bin/python3 - "$CONFIG" <<'PY'
import json, sys, urllib.parse, shlex
c = json.load(open(sys.argv[1]))
g1 = urllib.parse.urlsplit(c["gen1"]["endpoint"]); g2 = urllib.parse.urlsplit(c["gen2"]["endpoint"])
out = {"GEN1_LISTEN": "%s:%d" % (g1.hostname, g1.port), "GEN1_DIALECT": c["gen1"].get("dialect", "adls"),
       "GEN2_LISTEN": "%s:%d" % (g2.hostname, g2.port), "GEN2_ACCOUNT": c["gen2"]["account"],
       "GEN2_KEY": c["gen2"]["auth"]["account_key"], "GEN2_FS": c["gen2"]["mappings"][0]["filesystem"]}
for k, v in out.items(): print("%s=%s" % (k, shlex.quote(v)))
PY
)"

STATE=build/local-stack
mkdir -p "$STATE/gen1" "$STATE/gen2"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

start() { # name, args...: start an emulator and wait for its ready line
  local name=$1; shift
  local fifo="$STATE/$name.ready"
  rm -f "$fifo"; mkfifo "$fifo"
  build/bin/dualpipe-emu "$@" >"$fifo" 2>>"$STATE/$name.log" &
  pids+=($!)
  local line
  if ! read -r -t 15 line <"$fifo"; then echo "local-stack: $name did not start; see $STATE/$name.log" >&2; exit 1; fi
  echo "$name: $line"
  rm -f "$fifo"
}

start gen1 gen1 --listen "$GEN1_LISTEN" --admin 127.0.0.1:0 --data "$STATE/gen1" --dialect "$GEN1_DIALECT"
DUALPIPE_EMU_KEY="$GEN2_KEY" start gen2 gen2 --listen "$GEN2_LISTEN" --admin 127.0.0.1:0 --data "$STATE/gen2" \
  --account "$GEN2_ACCOUNT"

# Create the Gen2 filesystem (idempotent: 409 when it exists) and show both sides answer.
GEN2_URL="http://$GEN2_LISTEN" GEN2_ACCOUNT="$GEN2_ACCOUNT" GEN2_KEY="$GEN2_KEY" GEN2_FS="$GEN2_FS" \
/usr/bin/python3 - <<'PY'
import os, sys
sys.path.insert(0, "tests/integration")
from emulib import http_request, shared_key_auth, X_MS_VERSION
import datetime
url, acct, key, fs = (os.environ[k] for k in ("GEN2_URL", "GEN2_ACCOUNT", "GEN2_KEY", "GEN2_FS"))
def call(method, target):
    h = {"x-ms-version": X_MS_VERSION,
         "x-ms-date": datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")}
    h["Authorization"] = shared_key_auth(acct, key, method, target, h, 0)
    return http_request(url, method, target, None, h)
r = call("PUT", "/%s/%s?resource=filesystem" % (acct, fs))
print("gen2: filesystem %s %s" % (fs, "created" if r.status == 201 else "exists" if r.status == 409 else r.status))
PY
echo "gen1: $(curl -s "http://$GEN1_LISTEN/webhdfs/v1/?op=GETFILESTATUS")"
cat <<EOF_INFO

Local stack is up (Ctrl-C stops it):
  Gen1 WebHDFS ($GEN1_DIALECT)  http://$GEN1_LISTEN/webhdfs/v1/
  Gen2 DFS                  http://$GEN2_LISTEN/$GEN2_ACCOUNT/$GEN2_FS  (Shared Key, account $GEN2_ACCOUNT)
  logs and data             $STATE/
EOF_INFO
wait
