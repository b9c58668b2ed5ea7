#!/usr/bin/env python3
"""backlog: the proxy's memory with a large backlog while Gen2 is down, and its drain rate once Gen2
is back (issue 9, "Bounded memory"). A benchmark, not a test: it prints numbers.

  bench/backlog.py [--records N] [--body-every K] [--settle S] [--drain S] [--io auto|io_uring|threads]
                   [--max-in-memory W] [--json FILE]

1. dualpipe-backlogfill writes N pending records (Gen1 accepted them, Gen2 owes them) into a fresh
   spool/journal, offline, through the journal library (mix: see bench/backlogfill.c).
2. The Gen1 and Gen2 emulators start (the directories /bench/dNNN exist on Gen1, so the applier can
   copy their metadata); Gen2 is switched down (POST /down on its admin port).
3. The proxy starts on that journal: recovery time, then VmRSS/VmHWM from /proc right after "ready"
   and again after --settle seconds (the applier retrying against the dead Gen2 meanwhile).
4. Gen2 comes back (POST /up): records applied per second over the --drain seconds that follow.
Everything runs on 127.0.0.1 under temporary directories that are removed at the end.
Binaries: build/bin (env DUALPIPE, DUALPIPE_EMU and DUALPIPE_BACKLOGFILL override).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../tests/integration"))
os.environ.setdefault("DUALPIPE", os.path.join(HERE, "../build/bin/dualpipe"))
os.environ.setdefault("DUALPIPE_EMU", os.path.join(HERE, "../build/bin/dualpipe-emu"))
import proxylib  # noqa: E402

FILL = os.environ.get("DUALPIPE_BACKLOGFILL", os.path.join(HERE, "../build/bin/dualpipe-backlogfill"))


def vm(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def mib(n):
    return n / (1 << 20)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--dirs", type=int, default=1000)
    ap.add_argument("--body-every", type=int, default=20)
    ap.add_argument("--settle", type=float, default=20)
    ap.add_argument("--drain", type=float, default=30)
    ap.add_argument("--io", default=None)
    ap.add_argument("--max-in-memory", type=int, default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    over = {"log": {"level": "info"}, "journal": {"verify_bodies": False}}
    if a.io:
        over["journal"]["io"] = a.io
    if a.max_in_memory:
        over["applier"] = {"max_in_memory": a.max_in_memory}
    st = proxylib.Stack(config=over, start_proxy=False)
    res = {"records": a.records}
    try:
        t0 = time.time()
        fill = subprocess.run([FILL, "--spool", st.spool, "--records", str(a.records), "--dirs", str(a.dirs),
                               "--body-every", str(a.body_every)] + (["--io", a.io] if a.io else []),
                              check=True, capture_output=True, text=True)
        res["fill"] = json.loads(fill.stdout)
        print("filled %d records in %.1f s" % (a.records, time.time() - t0), flush=True)
        for d in range(a.dirs):
            r = st.gen1.webhdfs("PUT", "/bench/d%03d" % d, "MKDIRS")
            assert r.status == 200, r
        assert st.gen2.admin("POST", "/down").status == 200
        p = proxylib.Proxy(st.config, start=False)
        st.proxy = p
        t0 = time.time()
        p.start(timeout=3600)
        res["start_seconds"] = round(time.time() - t0, 2)
        rec = p.journal().get("recovery", {})
        res["recovery"] = {k: rec.get(k) for k in ("records", "live", "scan_seconds", "seconds", "records_per_s")}
        pid = p.proc.pid
        res["after_recovery"] = vm(pid)
        time.sleep(a.settle)
        res["after_settle"] = vm(pid)
        j0 = p.journal()["journal"]
        res["pending_while_down"] = j0["pending"]
        assert st.gen2.admin("POST", "/up").status == 200
        time.sleep(5)  # breaker probe and ramp-up
        a0, t0 = p.journal()["journal"]["applied"], time.time()
        time.sleep(a.drain)
        j1 = p.journal()["journal"]
        res["drain"] = {"seconds": round(time.time() - t0, 1), "applied": j1["applied"] - a0,
                        "records_per_s": round((j1["applied"] - a0) / (time.time() - t0), 1),
                        "pending_after": j1["pending"], "parked": j1["parked"]}
        res["after_drain"] = vm(pid)
        res["backend"] = p.journal().get("io_backend")
    finally:
        st.close()
    print("records %d, backend %s" % (a.records, res.get("backend")))
    print("recovery: %.2f s scan, %.2f s total, start to ready %.1f s"
          % (res["recovery"]["scan_seconds"], res["recovery"]["seconds"], res["start_seconds"]))
    for k in ("after_recovery", "after_settle", "after_drain"):
        print("%-15s VmRSS %8.1f MiB  VmHWM %8.1f MiB" % (k, mib(res[k]["VmRSS"]), mib(res[k]["VmHWM"])))
    print("bytes of RSS per pending record (after settle): %.1f" % (res["after_settle"]["VmRSS"] / a.records))
    d = res["drain"]
    print("drain: %d records applied in %.1f s = %.0f records/s (pending after: %d, parked: %d)"
          % (d["applied"], d["seconds"], d["records_per_s"], d["pending_after"], d["parked"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
