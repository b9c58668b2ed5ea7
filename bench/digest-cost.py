"""digest-cost: what keeping the CRC-32C digest current through APPENDs costs (issue 12, dualpipe_crc32c).

Runs `dualpipe-bench --workload small` (4 KiB appends with offsets, per file one after the other) through the
proxy between the Gen1 and Gen2 emulators, then waits until the journal owes Gen2 nothing, and prints: the
writers' ops/s and p99 (ack as given), the time from the start until Gen2 holds everything (the applier's drain),
the proxy's CPU seconds, and the upstream requests the applier sent per APPEND (Gen2 append, flush, HEAD,
setProperties; Gen1 GETFILESTATUS). Run it with the binary before and after the change to compare.

    DUALPIPE=build-bench/bin/dualpipe DUALPIPE_EMU=build-bench/bin/dualpipe-emu \\
        python3 bench/digest-cost.py --bench build-bench/bin/dualpipe-bench [--concurrency 8] [--files 32]
        [--appends 128] [--size 4K] [--ack durable|both] [--config '{"applier": {"digest_interval_ms": 0}}']
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import proxylib  # noqa: E402


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--files", type=int, default=32)
    ap.add_argument("--appends", type=int, default=128)
    ap.add_argument("--size", default="4K", help="bytes per APPEND (dualpipe-bench --size)")
    ap.add_argument("--ack", default="durable")
    ap.add_argument("--config", default="{}", help="JSON merged into the proxy's config")
    a = ap.parse_args()
    s = proxylib.Stack(dialect="adls", config=proxylib.deep_merge({"ack": a.ack}, json.loads(a.config)))
    try:
        pid = s.proxy.proc.pid
        g1_0, g2_0 = s.g1_counters(), s.g2_counters()
        cpu0 = cpu_seconds(pid)
        t0 = time.time()
        out = tempfile.mktemp(prefix="dp-digest-cost-", suffix=".json")
        p = subprocess.run([a.bench, "--url", s.proxy.url, "--workload", "small", "--concurrency", str(a.concurrency),
                            "--files", str(a.files), "--appends", str(a.appends), "--size", a.size, "--json", out, "--no-verify"],
                           capture_output=True, text=True, timeout=600)
        t_writers = time.time() - t0
        s.wait_drained(600)
        t_drained = time.time() - t0
        cpu = cpu_seconds(pid) - cpu0
        with open(out) as f:
            rep = json.load(f)
        os.unlink(out)
        if p.returncode != 0:
            print(p.stdout, p.stderr)
        g1 = {k: v - g1_0.get(k, 0) for k, v in s.g1_counters().items()}
        g2 = {k: v - g2_0.get(k, 0) for k, v in s.g2_counters().items()}
        appends = a.files * a.appends
        app = rep.get("by_op", {}).get("append", {})
        per = {k: round(v / appends, 3) for k, v in sorted(g2.items()) if v}
        per.update({"gen1 " + k: round(v / appends, 3) for k, v in sorted(g1.items())
                    if "GETFILESTATUS" in k and v})
        print(json.dumps({"appends": appends, "writer_ops_per_s": round(rep.get("ops_per_s", 0), 1),
                          "append_p99_ms": round(app.get("p99_us", 0) / 1000, 2),
                          "writers_s": round(t_writers, 2), "drained_s": round(t_drained, 2),
                          "proxy_cpu_s": round(cpu, 2), "requests_per_append": per}, indent=1))
    finally:
        s.close()


if __name__ == "__main__":
    main()
