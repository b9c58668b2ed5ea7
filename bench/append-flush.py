#!/usr/bin/env python3
"""append-flush.py: compare.py's "small" workload (4 KiB appends, 64 concurrent, ack durable, io_uring) run
directly against the Gen1 emulator and through the proxy with two gen2.version values: one that lets a small
APPEND reach Gen2 as one request (append with flush=true, 2021-06-08 on) and one that keeps append + flush
(2021-04-10). Per run: ops/s, p99 of the appends, proxy CPU per acknowledged write (/proc/PID/stat utime+stime
over the run, warm-up included, as compare.py counts it), the Gen2 requests per acknowledged APPEND (from the
Gen2 emulator's counters, once the journal is drained) and how long the applier took to drain after the bench
ended. With --drain-s S, each proxy run also builds a backlog: Gen2 down (the emulator's POST /down), the same
workload for S seconds, Gen2 back; then the time until the journal owes Gen2 nothing, the APPENDs drained per
second and the Gen2 requests per drained APPEND. Runs alternate between the systems, --repeat times, so a busy
shared machine skews them alike. With --proxies A=PATH,B=PATH the proxy systems are those binaries instead (all
at gen2.version 2021-06-08): an A/B of two builds on the same workload.

    python3 bench/append-flush.py [--bin build-bench/bin] [--duration 10] [--warmup 1] [--repeat 3]
                                  [--drain-s 0] [--proxies A=PATH,B=PATH] [--json FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

VERSIONS = [("one-request", "2021-06-08"), ("two-requests", "2021-04-10")]


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def run_bench(bins, url, label, args, scratch, duration=None, warmup=None):
    jpath = os.path.join(scratch, "%s.json" % label)
    duration = args.duration if duration is None else duration
    warmup = args.warmup if warmup is None else warmup
    cmd = [bins["bench"], "--url", url, "--json", jpath, "--label", label, "--prefix", "/af/%s" % label,
           "--workload", "small", "--size", "4K", "--appends", "256", "--concurrency", "64",
           "--duration", str(duration), "--warmup", str(warmup), "--no-verify"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 300)
    with open(jpath) as f:
        doc = json.load(f)
    doc["exit"] = p.returncode
    doc["command"] = " ".join(cmd)
    return doc


def summary(doc):
    kinds = doc.get("by_op") or {}
    app = kinds.get("append", {}) if isinstance(kinds, dict) else {}
    return {"ops_per_s": doc.get("ops_per_s"), "p99_ms": doc.get("latency", {}).get("p99_us", 0) / 1e3,
            "append_p99_ms": (app.get("p99_us") or 0) / 1e3 if app else None, "errors": doc.get("errors"),
            "acked": doc.get("acked_total"), "exit": doc["exit"]}


def drain_run(bins, s, label, args, scratch):
    """Gen2 down, args.drain_s seconds of the workload, Gen2 up: how the applier drains the backlog."""
    keys = ("PATCH append", "PATCH append-flush", "PATCH flush")
    APPLIED = 'dualpipe_applier_operations_total{op="APPEND",outcome="applied"}'
    down_ms = int((args.drain_s + 600) * 1000)
    r = s.gen2.admin("POST", "/down?ms=%d" % down_ms)
    if r.status != 200:
        return {"error": "the Gen2 emulator did not go down: %r" % r}
    doc = run_bench(bins, s.proxy.url, label, args, scratch, duration=args.drain_s, warmup=0)
    c0 = s.gen2.counters()["requests"]
    a0 = s.proxy.metrics().get(APPLIED, 0)
    pend = int(s.proxy.journal().get("journal", {}).get("pending", 0))
    s.gen2.admin("POST", "/up")
    t0 = time.time()
    s.wait_drained(900)
    secs = time.time() - t0
    c1 = s.gen2.counters()["requests"]
    applied = s.proxy.metrics().get(APPLIED, 0) - a0
    dlt = {k: c1.get(k, 0) - c0.get(k, 0) for k in keys}
    return {"backlog_writes": pend, "written_while_down": doc.get("acked_total"), "drain_s": round(secs, 2),
            "appends_drained": applied, "appends_per_s": round(applied / secs, 1) if secs > 0 else None,
            "gen2": dlt, "gen2_patch_per_append": round((dlt["PATCH append"] + dlt["PATCH flush"]) / applied, 3)
            if applied else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-bench", "bin"))
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--drain-s", type=float, default=0, help="seconds of writes while Gen2 is down (0: no drain run)")
    ap.add_argument("--proxies", help="NAME=PATH,...: compare these proxy binaries (gen2.version 2021-06-08) "
                    "instead of the two gen2.version values")
    ap.add_argument("--json", help="write every run's figures here")
    args = ap.parse_args()
    variants = [(name, ver, None) for name, ver in VERSIONS]
    if args.proxies:
        variants = []
        for item in args.proxies.split(","):
            name, sep, path = item.partition("=")
            if not sep or not name or not os.access(path, os.X_OK):
                ap.error("--proxies: NAME=PATH with an executable PATH, got %r" % item)
            variants.append((name, VERSIONS[0][1], os.path.abspath(path)))
    bins = {k: os.path.join(args.bin, n) for k, n in
            (("bench", "dualpipe-bench"), ("emu", "dualpipe-emu"), ("dualpipe", "dualpipe"))}
    os.environ["DUALPIPE_EMU"] = bins["emu"]
    os.environ["DUALPIPE"] = bins["dualpipe"]
    scratch = tempfile.mkdtemp(prefix="dp-appendflush-")
    tempfile.tempdir = scratch
    import emulib  # noqa: E402 - after DUALPIPE_EMU is set
    import proxylib  # noqa: E402
    runs = []
    try:
        for rep in range(args.repeat):
            g1 = emulib.Emu("gen1", dialect="adls", extra_args=["--log-level", "warn"])
            try:
                d = summary(run_bench(bins, g1.url, "direct-%d" % rep, args, scratch))
            finally:
                g1.close()
            d.update(system="direct", rep=rep)
            runs.append(d)
            print(json.dumps(d), flush=True)
            for name, ver, binary in variants:
                os.environ["DP_PROXY_CMD"] = binary or bins["dualpipe"]  # read at each start (proxylib)
                cfg = {"ack": "durable", "journal": {"io": "io_uring"}, "log": {"level": "warn"},
                       "gen2": {"version": ver}}
                s = proxylib.Stack(dialect="adls", config=cfg, gen1_kw=dict(extra_args=["--log-level", "warn"]),
                                   gen2_kw=dict(extra_args=["--log-level", "warn"]))
                try:
                    pid = s.proxy.proc.pid
                    c0 = s.gen2.counters()["requests"]
                    cpu0 = proc_cpu_s(pid)
                    doc = run_bench(bins, s.proxy.url, "%s-%d" % (name, rep), args, scratch)
                    cpu_bench = proc_cpu_s(pid) - cpu0
                    t_end = time.time()
                    s.wait_drained(600)
                    drain_s = time.time() - t_end
                    cpu_all = proc_cpu_s(pid) - cpu0
                    c1 = s.gen2.counters()["requests"]
                    dlt = {k: c1.get(k, 0) - c0.get(k, 0) for k in ("PATCH append", "PATCH append-flush", "PATCH flush",
                                                                   "PUT create-file", "PATCH set-properties")}
                    m = s.proxy.metrics()
                    applied = m.get('dualpipe_applier_operations_total{op="APPEND",outcome="applied"}', 0)
                    if args.drain_s > 0:
                        drain = drain_run(bins, s, "%s-drain-%d" % (name, rep), args, scratch)
                    d = summary(doc)
                    if args.drain_s > 0:
                        d["drain"] = drain
                    acked = d["acked"] or 1
                    d.update(system="dualpipe-" + name, version=ver, rep=rep, cpu_s=round(cpu_bench, 2),
                             cpu_ms_per_write=round(cpu_bench * 1000 / acked, 3),
                             cpu_ms_per_write_incl_drain=round(cpu_all * 1000 / acked, 3),
                             drain_after_bench_s=round(drain_s, 2), gen2=dlt, appends_applied=applied,
                             gen2_patch_per_append=round((dlt["PATCH append"] + dlt["PATCH flush"]) / applied, 3)
                             if applied else None)
                finally:
                    s.close()
                runs.append(d)
                print(json.dumps(d), flush=True)
    finally:
        subprocess.run(["rm", "-rf", scratch])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
