#!/usr/bin/env bash
# The local stack: installs what is missing, builds, then runs on loopback everything config/local.json
# describes: the Gen1 emulator (WebHDFS), the Gen2 emulator (DFS, filesystem created) and the dualpipe
# proxy in front of Gen1. It writes a sample file through the proxy with curl (Hadoop-style two-step
# CREATE: 307, then the data to the Location), shows the file on Gen1 and on Gen2, and keeps serving
# until Ctrl-C, then stops everything it started.
#   bash docker/local-stack.sh [CONFIG]        (default config/local.json)
# State (emulator data, logs) lives in build/local-stack/ (kept across runs; delete it for a clean lake);
# the spool is wherever the config's spool.dir says. DP_BUILD_DIR picks another build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-config/local.json}
BUILD=${DP_BUILD_DIR:-build}

bash docker/install-deps.sh
cmake -S . -B "$BUILD" -DDP_WERROR=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target dualpipe dualpipe-emu

# Read endpoints, account, key, filesystem and spool directory from the config.
eval "$(/usr/bin/python3 - "$CONFIG" <<'PY'
import json, os, shlex, sys, urllib.parse
path = sys.argv[1]
c = json.load(open(path))
g1 = urllib.parse.urlsplit(c["gen1"]["endpoint"]); g2 = urllib.parse.urlsplit(c["gen2"]["endpoint"])
auth = c["gen2"].get("auth", {})
if auth.get("mode", "shared_key") != "shared_key" or "account_key" not in auth:
    sys.exit("local-stack: %s must use gen2.auth.mode shared_key with an inline account_key "
             "(the emulator's public key)" % path)
spool = c.get("spool", {}).get("dir", "/var/lib/dualpipe/spool")
if not os.path.isabs(spool):
    spool = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), spool))
out = {"GEN1_LISTEN": "%s:%d" % (g1.hostname, g1.port), "GEN1_DIALECT": c["gen1"].get("dialect", "adls"),
       "GEN2_LISTEN": "%s:%d" % (g2.hostname, g2.port), "GEN2_ACCOUNT": c["gen2"]["account"],
       "GEN2_KEY": auth["account_key"], "GEN2_FS": c["gen2"]["mappings"][0]["filesystem"],
       "GEN2_PREFIX": c["gen2"]["mappings"][0].get("prefix", ""),
       "PROXY_LISTEN": c.get("listen", "127.0.0.1:14000"),
       "ADMIN_LISTEN": c.get("admin", {}).get("listen", "127.0.0.1:14080"), "SPOOL": spool}
for k, v in out.items(): print("%s=%s" % (k, shlex.quote(v)))
PY
)"

STATE=$BUILD/local-stack
mkdir -p "$STATE/gen1" "$STATE/gen2" "$SPOOL"
# One stack per state directory: a second run would truncate the running one's logs and find its ports busy.
exec 9>>"$STATE/lock"
if ! flock -n 9; then
  echo "local-stack: a stack is already running from $STATE (pid $(cat "$STATE/pid" 2>/dev/null || echo unknown));" \
       "stop it first (Ctrl-C in its terminal, or kill that pid)" >&2
  exit 1
fi
echo $$ >"$STATE/pid"
pids=()
cleanup() {
  rm -f "$STATE/pid"
  trap - EXIT INT TERM
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'echo; echo "local-stack: stopping"; exit 0' INT TERM

start() { # name, ready-prefix, command...: start a process and wait (15 s) for its ready line
  local name=$1 prefix=$2; shift 2
  local out="$STATE/$name.out"
  : >"$out"
  "$@" >>"$out" 2>>"$STATE/$name.log" &
  pids+=($!)
  local line="" i
  for i in $(seq 150); do
    line=$(grep -m1 "^$prefix" "$out" || true)
    [ -n "$line" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$line" ]; then
    echo "local-stack: $name did not start; last lines of $STATE/$name.log:" >&2
    tail -n 20 "$STATE/$name.log" >&2 || true
    exit 1
  fi
  echo "$name: $line"
}

start gen1 "dualpipe-emu ready" "$BUILD/bin/dualpipe-emu" gen1 --listen "$GEN1_LISTEN" --admin 127.0.0.1:0 \
  --data "$STATE/gen1" --dialect "$GEN1_DIALECT"
DUALPIPE_EMU_KEY="$GEN2_KEY" start gen2 "dualpipe-emu ready" "$BUILD/bin/dualpipe-emu" gen2 --listen "$GEN2_LISTEN" \
  --admin 127.0.0.1:0 --data "$STATE/gen2" --account "$GEN2_ACCOUNT"

# The Gen2 side, signed with the config's Shared Key by docker/gen2.py (also for users: ls, cat, stat).
gen2() { /usr/bin/python3 docker/gen2.py --config "$CONFIG" "$@"; }
gen2 mkfs

start dualpipe "dualpipe ready" "$BUILD/bin/dualpipe" --config "$CONFIG"

# Write a sample file through the proxy the way a Hadoop WebHDFS client does: a body-less CREATE gets a
# 307 whose Location points back at the proxy; the data goes to that Location.
SAMPLE=/sample/hello.txt
PROXY="http://$PROXY_LISTEN/webhdfs/v1"
printf 'hello from dualpipe, written %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$STATE/hello.txt"
LOCATION=$(curl -sS -o /dev/null -w '%{redirect_url}' -X PUT "$PROXY$SAMPLE?op=CREATE&overwrite=true&permission=644")
[ -n "$LOCATION" ] || { echo "local-stack: the proxy did not redirect the CREATE" >&2; exit 1; }
echo "proxy: PUT $PROXY$SAMPLE?op=CREATE -> 307 Location: $LOCATION"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -T "$STATE/hello.txt" "$LOCATION")
echo "proxy: PUT (data) -> $code"
[ "$code" = 201 ] || { echo "local-stack: CREATE through the proxy failed ($code)" >&2; exit 1; }

# The writer is answered once Gen1 has the data; Gen2 follows: wait (up to 15 s) until nothing is pending.
for _ in $(seq 150); do
  pending=$(curl -sS "http://$ADMIN_LISTEN/admin/status" |
            /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("pending", -1))' || echo -1)
  [ "$pending" = 0 ] && break
  sleep 0.1
done
echo "gen1: GET http://$GEN1_LISTEN/webhdfs/v1$SAMPLE?op=GETFILESTATUS"
echo "      $(curl -sS "http://$GEN1_LISTEN/webhdfs/v1$SAMPLE?op=GETFILESTATUS")"
gen2 stat "$SAMPLE"
echo "gen2: $(gen2 cat "$SAMPLE")"

cat <<EOF_INFO

Local stack is up (Ctrl-C stops it):
  dualpipe WebHDFS front    http://$PROXY_LISTEN/webhdfs/v1/   <- point writers here
  dualpipe admin            http://$ADMIN_LISTEN/  (/healthz /readyz /metrics /admin/status)
  Gen1 WebHDFS ($GEN1_DIALECT)  http://$GEN1_LISTEN/webhdfs/v1/
  Gen2 DFS                  http://$GEN2_LISTEN/$GEN2_ACCOUNT/$GEN2_FS  (Shared Key, account $GEN2_ACCOUNT)
  logs and data             $STATE/
Try:
  curl -i -X PUT -T README.md "http://$PROXY_LISTEN/webhdfs/v1/demo/readme.md?op=CREATE&write=true&overwrite=true"
  curl -s "http://$PROXY_LISTEN/webhdfs/v1/demo?op=LISTSTATUS"
  curl -s "http://$ADMIN_LISTEN/admin/status"
See your writes on Gen2 (Shared Key signing done for you):
  python3 docker/gen2.py --config $CONFIG ls /demo
  python3 docker/gen2.py --config $CONFIG cat /demo/readme.md
  python3 docker/gen2.py --config $CONFIG stat /demo/readme.md
EOF_INFO
wait
