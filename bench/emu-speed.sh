#!/usr/bin/env bash
# Measures dualpipe-emu's own speed (Gen1, ADLS dialect) so later benchmarks know the emulator is not
# their bottleneck: 4 MiB appends (MB/s) and 4 KiB appends (ops/s), each on C connections over F files.
#   bash bench/emu-speed.sh [SECONDS] [CONNECTIONS]
# Needs wrk (Debian package, installed here if missing) and a built build/bin/dualpipe-emu.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${2:-16}
command -v wrk >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk; }
[ -x build/bin/dualpipe-emu ] || { cmake -S . -B build >/dev/null && cmake --build build -j"$(nproc)" --target dualpipe-emu; }

DATA=$(mktemp -d /tmp/dp-emu-speed.XXXXXX)
OUT=$(mktemp)
build/bin/dualpipe-emu gen1 --listen 127.0.0.1:0 --admin 127.0.0.1:0 --data "$DATA" --log-level warn >"$OUT" 2>"$DATA.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA" "$DATA.log" "$OUT"' EXIT
for _ in $(seq 50); do grep -q ready "$OUT" && break; sleep 0.1; done
URL=http://$(sed -n 's/.* listen=\([^ ]*\).*/\1/p' "$OUT")

for i in $(seq 0 $((CONN - 1))); do
  curl -sf -X PUT -H 'Content-Length: 0' "$URL/webhdfs/v1/bench/f$i?op=CREATE&write=true&overwrite=true" >/dev/null
done
echo "machine: $(nproc) cores, $(uname -r); emulator data dir on $(df --output=fstype "$DATA" | tail -1)"
for size in 4194304 4096; do
  echo "--- appends of $size bytes, $CONN connections, ${DUR}s"
  wrk -t2 -c"$CONN" -d"${DUR}s" --latency -s bench/emu-append.lua "$URL" -- "$size" "$CONN" |
    awk -v size="$size" '/Requests\/sec/ {printf "ops/s %.0f  MB/s %.1f\n", $2, $2*size/1e6} /Non-2xx|Socket errors|Latency|99%/ {print}'
done
