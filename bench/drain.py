#!/usr/bin/env python3
"""drain: how soon and how fast the proxy catches Gen2 up after a Gen2 outage (issue 14's "backlog drain" row).
A benchmark, not a test: it prints numbers.

  bench/drain.py [--before S] [--outage S] [--after S] [--concurrency N] [--size SIZE] [--ref S]
                 [--config JSON] [--runs N] [--json FILE] [--cpu] [--perf FILE]

1. Reference, before each run: a fresh Gen2 emulator alone, written by dualpipe-bench --api dfs (4 MiB
   appends x16, --ref seconds): its own ingest rate in MB/s.
2. The proxy between a Gen1 and a Gen2 emulator, the same writers through the proxy (ack durable). After
   --before seconds Gen2 goes down (POST /down: connections refused) for --outage seconds, then comes back
   (POST /up: the moment Gen2 answers again). The writers go on for --after seconds more (0: they stop when
   Gen2 comes back, and the drain is the backlog alone).
3. From Gen2's return, sampled every 20 ms (every 200 ms once it moves): (a) the first record applied (the journal's "applied" count
   moving, GET /admin/journal) and the first bytes stored on Gen2 (the emulator's GET /stats), (b) the drain
   rate: Gen2 bytes stored per second from the return until the journal owes Gen2 nothing, over the
   reference rate.
The writers do not read their files back (--no-verify: that read of every byte through the proxy would run
during the drain and take its CPU); at the end, once the journal owes nothing, both stores are compared under
the writers' prefix instead (an APPEND applied twice would show as a longer Gen2 file). --cpu: CPU seconds of
the proxy's threads and of both emulators during the drain; --perf FILE: `perf record -g` of the proxy over
the drain.
Everything runs on 127.0.0.1 under temporary directories that are removed at the end.
Binaries: build-bench/bin, else build/bin (env DUALPIPE, DUALPIPE_EMU, DUALPIPE_BENCH override).
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(ROOT, "build-bench/bin")
if not os.path.exists(os.path.join(BIN, "dualpipe")):
    BIN = os.path.join(ROOT, "build/bin")
os.environ.setdefault("DUALPIPE", os.path.join(BIN, "dualpipe"))
os.environ.setdefault("DUALPIPE_EMU", os.path.join(BIN, "dualpipe-emu"))
BENCH = os.environ.get("DUALPIPE_BENCH", os.path.join(BIN, "dualpipe-bench"))
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
import emulib  # noqa: E402
import proxylib  # noqa: E402


def sas(account, key):
    now = datetime.datetime.now(datetime.timezone.utc)
    f = "%Y-%m-%dT%H:%M:%SZ"
    return emulib.service_sas(account, key, "lake", "", "racwdl", "c",
                              (now - datetime.timedelta(minutes=5)).strftime(f),
                              (now + datetime.timedelta(hours=6)).strftime(f))


def bench_cmd(url, a, seconds, extra=()):
    return [BENCH, "--url", url, "--workload", "ingest", "--size", a.size, "--appends", "4",
            "--concurrency", str(a.concurrency), "--duration", str(seconds)] + list(extra)


def gen2_reference(a, tmp):
    """MB/s of the Gen2 emulator alone (dualpipe-bench --api dfs)."""
    g2 = emulib.Emu("gen2", extra_args=["--log-level", "warn"])
    try:
        r = g2.gen2("PUT", "/%s/lake?resource=filesystem" % emulib.DEV_ACCOUNT)
        assert r.status == 201, r
        jp = os.path.join(tmp, "ref.json")
        cmd = bench_cmd("%s/%s/lake" % (g2.url, emulib.DEV_ACCOUNT), a, a.ref,
                        ["--warmup", "1", "--api", "dfs", "--json", jp, "--no-verify"])
        subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, DPBENCH_SAS=sas(
            emulib.DEV_ACCOUNT, emulib.DEV_KEY)))
        with open(jp) as f:
            doc = json.load(f)
        os.unlink(jp)
        return doc["mb_per_s"], " ".join(cmd)
    finally:
        g2.close()


def thread_cpu(pid):
    """{"name/tid": CPU seconds} of every thread of pid."""
    out = {}
    tck = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
        except OSError:
            continue
        name = "%s/%s" % (st[st.index("(") + 1:st.rindex(")")], tid)
        rest = st.rsplit(")", 1)[1].split()
        out[name] = (int(rest[11]) + int(rest[12])) / tck
    return out


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(st):
    return {"proxy": thread_cpu(st.proxy.proc.pid), "gen1_emu": proc_cpu(st.gen1.proc.pid),
            "gen2_emu": proc_cpu(st.gen2.proc.pid), "wall": time.time()}


def cpu_delta(c0, c1):
    secs = c1["wall"] - c0["wall"]
    th = {k: round(v - c0["proxy"].get(k, 0), 2) for k, v in c1["proxy"].items() if v - c0["proxy"].get(k, 0) >= 0.05}
    return {"seconds": round(secs, 2), "proxy_threads": dict(sorted(th.items(), key=lambda kv: -kv[1])[:8]),
            "proxy": round(sum(th.values()), 2), "gen1_emu": round(c1["gen1_emu"] - c0["gen1_emu"], 2),
            "gen2_emu": round(c1["gen2_emu"] - c0["gen2_emu"], 2)}


def journal_counts(proxy):
    j = proxy.journal().get("journal", {})
    return int(j.get("applied", 0)), int(j.get("pending", 0)) + int(j.get("awaiting_primary", 0))


def one_run(a, tmp):
    over = {"log": {"level": "warn"}, "ack": "durable"}
    if a.config:
        over = proxylib.deep_merge(over, json.loads(a.config))
    st = proxylib.Stack(config=over, gen1_kw=dict(extra_args=["--log-level", "warn"]),
                        gen2_kw=dict(extra_args=["--log-level", "warn"]))
    res = {}
    try:
        jp = os.path.join(tmp, "writers.json")
        cmd = bench_cmd(st.proxy.url, a, a.before + a.outage + a.after,
                        ["--json", jp, "--prefix", "/drain", "--no-verify"])
        t_launch = time.time()
        w = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(max(0.0, t_launch + a.before - time.time()))
        assert st.gen2.admin("POST", "/down").status == 200
        time.sleep(max(0.0, t_launch + a.before + a.outage - time.time() - 0.5))
        applied0, pend0 = journal_counts(st.proxy)
        bytes0 = int(st.gen2.admin("GET", "/stats").json()["bytes"])
        time.sleep(max(0.0, t_launch + a.before + a.outage - time.time()))
        assert st.gen2.admin("POST", "/up").status == 200
        t_up = time.time()
        cpu0 = cpu_snapshot(st)
        perf = None
        if a.perf:
            perf = subprocess.Popen(["perf", "record", "-q", "-F", "499", "-g", "-p", str(st.proxy.proc.pid),
                                     "-o", a.perf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res.update(backlog_writes=pend0, gen2_bytes_at_up=bytes0)
        first_applied = first_bytes = None
        drained = None
        samples = []
        while time.time() < t_up + a.timeout:
            now = time.time() - t_up
            applied, pend = journal_counts(st.proxy)
            g2b = int(st.gen2.admin("GET", "/stats").json()["bytes"])
            samples.append((round(now, 3), applied - applied0, pend, g2b - bytes0))
            if first_applied is None and applied > applied0:
                first_applied = now
            if first_bytes is None and g2b > bytes0:
                first_bytes = now
            if pend == 0 and (a.after == 0 or now > 0.5):
                drained = now
                res["gen2_bytes_drained"] = g2b - bytes0
                res["cpu_during_drain"] = cpu_delta(cpu0, cpu_snapshot(st))
                break
            # every 20 ms until the first record is applied, then every 200 ms (GET /admin/journal costs the
            # proxy's admin thread CPU that the drain would otherwise have)
            time.sleep(0.02 if first_applied is None or first_bytes is None else 0.2)
        if perf is not None:
            perf.send_signal(2)
            perf.wait(timeout=60)
        _, err = w.communicate(timeout=a.before + a.outage + a.after + 120)
        with open(jp) as f:
            wdoc = json.load(f)
        os.unlink(jp)
        res.update(first_applied_s=first_applied, first_gen2_bytes_s=first_bytes, drain_s=drained,
                   writers_ok=bool(wdoc.get("ok")) and w.returncode == 0, writers_mb_per_s=wdoc.get("mb_per_s"),
                   writers_errors=wdoc.get("errors"), command=" ".join(cmd))
        if drained:
            res["drain_mb_per_s"] = res["gen2_bytes_drained"] / drained / 1e6
        res["samples"] = samples[:400]
        st.proxy.wait_drained(timeout=300)
        diffs = st.compare("/drain")
        res["stores_equal"] = not diffs
        if diffs:
            res["diffs"] = diffs[:10]
        res["resynced"] = st.proxy.status().get("resynced")
    finally:
        st.close()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=float, default=10, help="seconds of writing before Gen2 goes down")
    ap.add_argument("--outage", type=float, default=30)
    ap.add_argument("--after", type=float, default=30, help="seconds the writers go on after Gen2 is back")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--size", default="4M")
    ap.add_argument("--ref", type=float, default=10, help="seconds of the Gen2-alone reference run (0: none)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for the drain")
    ap.add_argument("--config", default=None, help="JSON deep-merged into the proxy's config")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--perf", default=None, help="perf record the proxy from Gen2's return to the end of the "
                    "drain into this file")
    ap.add_argument("--cpu", action="store_true", help="print the CPU seconds of each proxy thread and of "
                    "the emulators during the drain")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dp-drain-")
    out = {"args": vars(a), "runs": []}
    try:
        for i in range(a.runs):
            ref = None
            if a.ref > 0:  # the reference right before each run: the machine's load changes
                ref, out["gen2_direct_command"] = gen2_reference(a, tmp)
                print("gen2 direct: %.1f MB/s" % ref, flush=True)
            r = one_run(a, tmp)
            r["gen2_direct_mb_per_s"] = ref
            r["loadavg_1m"] = os.getloadavg()[0]
            out["runs"].append(r)
            ratio = ""
            if r.get("drain_mb_per_s") and ref:
                r["drain_vs_gen2"] = r["drain_mb_per_s"] / ref
                ratio = " = %.2f x gen2 direct" % r["drain_vs_gen2"]
            fmt = lambda v: "never" if v is None else "%.2f s" % v  # noqa: E731
            print("run %d: backlog %d writes; first record applied %s after Gen2 up (first Gen2 bytes %s); "
                  "drained in %s: %s MB/s%s; writers %.1f MB/s ok=%s; stores equal %s, resynced %s"
                  % (i + 1, r["backlog_writes"], fmt(r["first_applied_s"]), fmt(r["first_gen2_bytes_s"]),
                     fmt(r["drain_s"]), "%.1f" % r["drain_mb_per_s"] if r.get("drain_mb_per_s") else "-", ratio,
                     r["writers_mb_per_s"] or 0, r["writers_ok"], r["stores_equal"], r["resynced"]), flush=True)
            if a.cpu and r.get("cpu_during_drain"):
                print("  CPU seconds during the drain: %s" % json.dumps(r["cpu_during_drain"]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
