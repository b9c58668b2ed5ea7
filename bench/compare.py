#!/usr/bin/python3
"""The issue 5 comparison run: the same dualpipe-bench workloads, side by side in one run, against

  direct        the Gen1 emulator, no proxy;
  gen2-direct   the Gen2 emulator through its DFS API (4 MiB appends only: the reference for the drain rate);
  dualpipe-*    dualpipe between a Gen1 and a Gen2 emulator, one column per (ack, journal.io) variant the
                proxy accepts (a proxy that rejects the keys gets one column with its defaults);
  nginx-mirror  nginx's mirror module in front of two Gen1 emulators (bench/nginx-mirror.conf.in).

Workloads: 4 MiB appends x16, 4 KiB appends x64, a body-size sweep, a Gen2 outage (Gen2, or nginx's second
upstream, down for a while mid-run through the emulator's admin listener) with the backlog drain after it,
256 concurrent 4 MiB uploads for the proxy's RSS, and dualpipe-jrnlbench for the journal recovery rate.
Every run starts fresh emulators (and proxy, and nginx) in a scratch directory and removes them after.

Writes OUT/results.json (summaries, targets, environment), OUT/runs/*.json (each bench report), OUT/plots/
(gnuplot data and scripts) and OUT/*.png when gnuplot is installed; prints the targets table. Anything
that cannot run here (no nginx, no gnuplot, a proxy that rejects a key, no dualpipe-jrnlbench) is skipped
with a message saying so and reported as not measured, never as a number.

Started by bench/compare.sh (which installs and builds first); see README "Performance".
Python 3 stdlib only; reuses tests/integration/emulib.py and proxylib.py to run the processes."""
import argparse
import datetime
import grp
import json
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

MiB = 1 << 20
KiB = 1 << 10

PROFILES = {
    "full": dict(dur=20, warm=2, sweep_dur=6, sweep_sizes=[4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB],
                 outage=(30, 30, 30), rss_dur=10, rss_conc=256, jrnl_records=1000000),
    "quick": dict(dur=3, warm=0.5, sweep_dur=1.5, sweep_sizes=[4 * KiB, 64 * KiB, MiB, 4 * MiB],
                  outage=(4, 4, 4), rss_dur=3, rss_conc=256, jrnl_records=200000),
    # the CI smoke (tests/integration/test_bench_smoke.py): every part for a moment, proves the plumbing only
    # (the main proxy variant only, and no waiting for the page cache to drain: CI runs other tests beside it)
    "smoke": dict(dur=0.5, warm=0, sweep_dur=0.3, sweep_sizes=[4 * KiB, MiB], outage=(1, 1, 1), rss_dur=0.5,
                  rss_conc=16, jrnl_records=20000, variants=1, settle=False),
}

# (name, config overrides) of the proxy variants the issue asks for; probed with --check-config.
VARIANTS = [
    ("dualpipe-durable-uring", {"ack": "durable", "journal": {"io": "io_uring"}}),
    ("dualpipe-durable-threads", {"ack": "durable", "journal": {"io": "threads"}}),
    ("dualpipe-both-uring", {"ack": "both", "journal": {"io": "io_uring"}}),
    ("dualpipe-both-threads", {"ack": "both", "journal": {"io": "threads"}}),
]
PLAIN = ("dualpipe", {})  # the proxy's defaults, when it takes none of the keys above
# Diagnostic variants, run only when --systems names them: the main variant with its spool and journal on a
# tmpfs (/dev/shm), where fdatasync costs nothing. Not a setting to run with (a crash of the machine loses what
# the writers were told is durable); it shows how much of the gap to direct is the disk's share of the ack.
DIAG_VARIANTS = [
    ("dualpipe-durable-uring-tmpfs", {"ack": "durable", "journal": {"io": "io_uring"}, "_tmpfs": True}),
]

TARGETS = [
    ("big_vs_direct", "4 MiB appends, 16 concurrent, ack durable: throughput / direct", ">= 0.8"),
    ("big_vs_nginx", "4 MiB appends, 16 concurrent, ack durable: throughput / nginx mirror", ">= 1.0"),
    ("small_ops_vs_direct", "4 KiB appends, 64 concurrent, ack durable: ops/s / direct", ">= 0.5"),
    ("small_p99_delta", "4 KiB appends, 64 concurrent: append p99 - direct p99 (ms)", "<= 2 ms"),
    ("fdatasync_per_ack", "fdatasyncs per acknowledged 4 KiB append, 64 concurrent", "<= 0.1"),
    ("big_cpu_vs_nginx", "4 MiB appends, 16 concurrent: proxy CPU-s per GB / nginx mirror's (master + workers)",
     "<= 1.0"),
    ("small_cpu_per_op", "4 KiB appends, 64 concurrent: proxy CPU per acknowledged append (ms)", "<= 0.1"),
    ("outage_p99_ratio", "writer p99 while Gen2 is down / p99 with Gen2 up", "<= 1.2"),
    ("rss_256", "proxy RSS (VmHWM), 256 concurrent 4 MiB uploads (MiB)", "<= 64 MiB"),
    ("recovery_rate", "journal recovery scan (records/s)", ">= 1,000,000"),
    ("drain_vs_gen2", "backlog drain after the outage / Gen2 emulator's direct ingest rate", ">= 0.8"),
]


def log(msg):
    print("compare: " + msg, flush=True)


# ---------------------------------------------------------------- processes

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu_s(pid):
    """utime + stime of pid in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def settle_disk(limit_kib=64 * 1024, timeout_s=60):
    """Write back what earlier runs left dirty in the page cache (sync, then wait until Dirty + Writeback in
    /proc/meminfo is under limit_kib), so that no run pays for the previous run's writes."""
    os.sync()
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        kib = {}
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    k, v = line.split(":", 1)
                    if k in ("Dirty", "Writeback"):
                        kib[k] = int(v.split()[0])
        except (OSError, ValueError):
            return
        if sum(kib.values()) < limit_kib:
            return
        time.sleep(0.2)


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            try:
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
            except ValueError:
                pass
    return out


def metric_sum(metrics, name):
    """Sum of every series of metric name (any labels); None when the proxy has no such metric."""
    vals = [v for k, v in metrics.items() if k == name or k.startswith(name + "{")]
    return sum(vals) if vals else None


class System:
    """A running target: url for the bench, extra bench args, and the parts a run measures."""
    name = "?"
    bench_args = ()
    pid = None            # the proxy's pid (resources are measured on it)

    def pids(self):
        """The processes whose CPU a run is charged: the proxy (nginx: its master and workers)."""
        return [self.pid] if self.pid is not None else []

    def outage(self, ms):
        """Takes the second upstream down for ms; returns False when this system has none."""
        return False

    def close(self):
        pass


class Direct(System):
    def __init__(self, emulib):
        self.name = "direct"
        self.g1 = emulib.Emu("gen1", dialect="adls", extra_args=["--log-level", "warn"])
        self.url = self.g1.url

    def close(self):
        self.g1.close()


def sas_for(emulib):
    now = datetime.datetime.now(datetime.timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return emulib.service_sas(emulib.DEV_ACCOUNT, emulib.DEV_KEY, "lake", "", "racwdl", "c",
                              (now - datetime.timedelta(minutes=5)).strftime(fmt),
                              (now + datetime.timedelta(hours=6)).strftime(fmt))


class Gen2Direct(System):
    def __init__(self, emulib):
        self.name = "gen2-direct"
        self.g2 = emulib.Emu("gen2", extra_args=["--log-level", "warn"])
        r = self.g2.gen2("PUT", "/%s/lake?resource=filesystem" % emulib.DEV_ACCOUNT)
        if r.status != 201:
            self.g2.close()
            raise RuntimeError("creating the Gen2 filesystem: %r" % r)
        self.url = "%s/%s/lake" % (self.g2.url, emulib.DEV_ACCOUNT)
        self.bench_args = ("--api", "dfs", "--sas", sas_for(emulib))

    def close(self):
        self.g2.close()


class Dualpipe(System):
    def __init__(self, proxylib, name, overrides):
        self.name = name
        self.shm = None
        overrides = dict(overrides)
        if overrides.pop("_tmpfs", False):
            self.shm = tempfile.mkdtemp(prefix="dp-compare-spool-", dir="/dev/shm")
            overrides["spool"] = {"dir": self.shm}
        over = proxylib.deep_merge({"log": {"level": "warn"}}, overrides)
        self.stack = proxylib.Stack(dialect="adls", config=over, gen1_kw=dict(extra_args=["--log-level", "warn"]),
                                    gen2_kw=dict(extra_args=["--log-level", "warn"]))
        self.url = self.stack.proxy.url
        self.pid = self.stack.proxy.proc.pid

    def metrics(self):
        r = self.stack.proxy.admin("GET", "/metrics")
        return parse_metrics(r.body.decode("utf-8", "replace")) if r.status == 200 else {}

    def backlog(self):
        """(pending writes, pending body bytes or None, source) from /admin/journal, else /admin/status."""
        r = self.stack.proxy.admin("GET", "/admin/journal")
        if r.status == 200:
            j = r.json().get("journal", r.json())
            pend = int(j.get("pending", 0)) + int(j.get("awaiting_primary", 0))
            b = j.get("bytes_pending")
            return pend, (int(b) if b is not None else None), "journal"
        r = self.stack.proxy.admin("GET", "/admin/status")
        return int(r.json().get("pending", 0)), None, "status"

    def gen2_bytes(self):
        return int(self.stack.gen2.admin("GET", "/stats").json()["bytes"])

    def outage(self, ms):
        r = self.stack.gen2.admin("POST", "/down?ms=%d" % ms)
        return r.status == 200

    def close(self):
        try:
            self.stack.close()
        finally:
            if self.shm:
                shutil.rmtree(self.shm, ignore_errors=True)


class NginxMirror(System):
    def __init__(self, emulib, nginx, scratch):
        self.name = "nginx-mirror"
        self.g1 = emulib.Emu("gen1", dialect="adls", extra_args=["--log-level", "warn"])
        self.g1b = None
        self.proc = None
        try:
            self.g1b = emulib.Emu("gen1", dialect="adls", extra_args=["--log-level", "warn"])
            self.dir = tempfile.mkdtemp(prefix="nginx-", dir=scratch)
            for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
                os.mkdir(os.path.join(self.dir, d))
            with open(os.path.join(HERE, "nginx-mirror.conf.in")) as f:
                tmpl = f.read()
            for attempt in range(3):
                port = free_port()
                conf = (tmpl.replace("@SCRATCH@", self.dir).replace("@LISTEN@", "127.0.0.1:%d" % port)
                        .replace("@PRIMARY@", self.g1.url[7:]).replace("@SECONDARY@", self.g1b.url[7:])
                        .replace("@USER@", pwd.getpwuid(os.geteuid()).pw_name)
                        .replace("@GROUP@", grp.getgrgid(os.getegid()).gr_name))
                path = os.path.join(self.dir, "nginx.conf")
                with open(path, "w") as f:
                    f.write(conf)
                errlog = open(os.path.join(self.dir, "stderr.log"), "ab")
                self.proc = subprocess.Popen([nginx, "-p", self.dir, "-c", path, "-e", os.path.join(self.dir, "error.log")],
                                             stdout=errlog, stderr=errlog)
                errlog.close()
                if self._wait_ready(port):
                    self.url = "http://127.0.0.1:%d" % port
                    return
                self._stop()
            raise RuntimeError("nginx did not start:\n" + self._logs())
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, port, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def _logs(self):
        out = ""
        for n in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.dir, n)) as f:
                    out += f.read()[-2000:]
            except OSError:
                pass
        return out

    def _stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the master waits for its worker
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None

    def outage(self, ms):
        return self.g1b.admin("POST", "/down?ms=%d" % ms).status == 200

    def pids(self):
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        return [self.proc.pid] + kids

    def close(self):
        self._stop()
        for e in (self.g1, self.g1b):
            if e is not None:
                e.close()


# ---------------------------------------------------------------- one measured run

class Sampler(threading.Thread):
    """Peak VmRSS of rss_pid, and the CPU seconds of pids with the time, sampled every 0.1 s (VmHWM is read at
    the end as well). The CPU samples give the CPU spent inside the bench's measured window (cpu_between)."""

    def __init__(self, rss_pid, pids):
        super().__init__(daemon=True)
        self.pid = rss_pid
        self.pids = list(pids)
        self.peak_kib = 0
        self.cpu = []  # (unix time, CPU seconds of pids)
        self.stop_ev = threading.Event()

    def sample_cpu(self):
        try:
            self.cpu.append((time.time(), sum(proc_cpu_s(x) for x in self.pids)))
        except OSError:
            pass

    def run(self):
        while not self.stop_ev.is_set():
            self.sample_cpu()
            if self.pid is not None:
                try:
                    self.peak_kib = max(self.peak_kib, proc_status_kib(self.pid, "VmRSS") or 0)
                except OSError:
                    return
            self.stop_ev.wait(0.1)

    def cpu_at(self, t):
        """CPU seconds at unix time t, interpolated between the samples around it (None outside them)."""
        c = self.cpu
        for (t0, v0), (t1, v1) in zip(c, c[1:]):
            if t0 <= t <= t1:
                return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        return None

    def cpu_between(self, t0, t1):
        a, b = self.cpu_at(t0), self.cpu_at(t1)
        return None if a is None or b is None else b - a


class Runner:
    def __init__(self, args, bins, out):
        self.args = args
        self.bins = bins
        self.out = out
        self.runs_dir = os.path.join(out, "runs")
        os.makedirs(self.runs_dir, exist_ok=True)

    def _perf_start(self, system, tag):
        """perf record of the proxy for the run (--perf): call graphs at 499 Hz into runs/TAG.SYSTEM.perf.data."""
        path = os.path.join(self.runs_dir, "%s.%s.perf.data" % (tag, system.name))
        try:
            p = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(system.pid), "-o", path],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as e:
            log("perf record not started: %s" % e)
            return None
        return (p, path)

    def _perf_stop(self, perf):
        if perf is None:
            return None
        p, path = perf
        p.send_signal(signal.SIGINT)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        return path if os.path.exists(path) else None

    def bench(self, system, tag, bench_args, outage=None):
        """Runs dualpipe-bench against system. outage = (at_s, len_s): the system's second upstream goes
        down at_s into the run for len_s; for dualpipe the backlog drain after it is measured.
        Returns the bench's JSON report with "resources" (proxy only), "outage" and "drain" added."""
        jpath = os.path.join(self.runs_dir, "%s.%s.json" % (tag, system.name))
        lpath = os.path.join(self.runs_dir, "%s.%s.log" % (tag, system.name))
        cmd = [self.bins["bench"], "--url", system.url, "--json", jpath, "--label", system.name,
               "--prefix", "/cmp/" + tag] + list(system.bench_args) + [str(a) for a in bench_args]
        res = {}
        sampler = None
        m0 = None
        cpu0 = None
        pids = system.pids()
        if pids:
            cpu0 = sum(proc_cpu_s(x) for x in pids)
        perf = None
        if system.pid is not None:
            m0 = system.metrics()
            if self.args.perf:
                perf = self._perf_start(system, tag)
        if pids:
            sampler = Sampler(system.pid, pids)
            sampler.start()
        ev = {}
        load_before = os.getloadavg()[0]
        t_launch = time.time()
        with open(lpath, "w") as logf:
            logf.write("$ " + " ".join(c if not c.startswith("sv=") else "'<sas>'" for c in cmd) + "\n")
            logf.flush()
            p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
            drain_thread = None
            if outage is not None:
                drain_thread = threading.Thread(target=self._outage, args=(system, t_launch, outage, ev), daemon=True)
                drain_thread.start()
            try:
                rc = p.wait(timeout=self.args.timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                rc = "timeout"
            if drain_thread is not None:
                drain_thread.join(outage[0] + outage[1] + 600)
        if cpu0 is not None:
            res = {"cpu_s": sum(proc_cpu_s(x) for x in pids) - cpu0, "cpu_pids": len(pids)}
        if perf is not None:
            res["perf_data"] = self._perf_stop(perf)
        if sampler is not None:
            sampler.stop_ev.set()
            sampler.join()
            sampler.sample_cpu()
        if sampler is not None and system.pid is not None:
            hwm = proc_status_kib(system.pid, "VmHWM")
            m1 = system.metrics()
            res.update({"vmhwm_kib": hwm, "rss_peak_sampled_kib": sampler.peak_kib})
            f0, f1 = metric_sum(m0, "dualpipe_journal_fdatasync_total"), metric_sum(m1, "dualpipe_journal_fdatasync_total")
            res["fdatasync"] = None if f0 is None or f1 is None else f1 - f0
        try:
            with open(jpath) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            doc = {"ok": False, "missing_report": True}
        doc["exit"] = rc
        # the machine's load around the run: other work on the same cores skews every number
        doc["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        doc["command"] = " ".join(c if not c.startswith("sv=") else "'<sas>'" for c in cmd)
        if res:
            # CPU per GB and per operation: the CPU spent inside the bench's measured window over what it
            # acknowledged there, so neither the warm-up nor the read-back of every file after the run (which
            # goes through the proxy, or nginx, as reads) is charged to the writes. Without the window's
            # samples: the whole run over everything acknowledged, reads included (cpu_scope says which).
            t0, el = doc.get("start_unix"), doc.get("elapsed_s")
            win = sampler.cpu_between(t0, t0 + el) if sampler is not None and t0 and el else None
            if win is not None:
                res.update({"cpu_s_window": win, "cpu_scope": "measured window"})
                gb, ops = doc.get("bytes", 0) / 1e9, doc.get("ops", 0)
                res["cpu_s_per_gb"] = win / gb if gb > 0 else None
                res["cpu_ms_per_op"] = win * 1000.0 / ops if ops else None
            else:
                res["cpu_scope"] = "whole run, read-back included"
                gb = doc.get("acked_bytes", 0) / 1e9
                res["cpu_s_per_gb"] = res["cpu_s"] / gb if gb > 0 else None
                acks = doc.get("acked_total", 0)
                res["cpu_ms_per_op"] = res["cpu_s"] * 1000.0 / acks if acks else None
            acks = doc.get("acked_total", 0)
            res["fdatasync_per_ack"] = (res["fdatasync"] / acks) if res.get("fdatasync") is not None and acks else None
            doc["resources"] = res
        if ev:
            doc["outage"] = ev
        with open(jpath, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        status = "ok" if rc == 0 and doc.get("ok") else "FAILED (exit %s; see %s)" % (rc, lpath)
        log("  %-26s %-8s %9.1f MB/s %9.0f ops/s  p99 %8.2f ms  %s" % (
            system.name, tag, doc.get("mb_per_s", 0), doc.get("ops_per_s", 0),
            doc.get("latency", {}).get("p99_us", 0) / 1e3, status))
        return doc

    def _outage(self, system, t_launch, outage, ev):
        at, length = outage
        time.sleep(max(0.0, t_launch + at - time.time()))
        ev["down_unix"] = time.time()
        ev["down_ok"] = system.outage(int(length * 1000))
        ev["up_unix"] = ev["down_unix"] + length
        if not isinstance(system, Dualpipe) or not ev["down_ok"]:
            return
        # The backlog: how much the proxy owes Gen2 when it comes back, and how long until it owes nothing.
        time.sleep(max(0.0, ev["up_unix"] - time.time() - 0.3))
        try:
            pend, pbytes, src = system.backlog()
            g2b = system.gen2_bytes()
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            ev["drain_error"] = str(e)
            return
        ev.update(backlog_writes=pend, backlog_bytes=pbytes, backlog_source=src, gen2_bytes_at_up=g2b)
        time.sleep(max(0.0, ev["up_unix"] - time.time()))
        deadline = ev["up_unix"] + self.args.drain_timeout
        samples = []
        while time.time() < deadline:
            try:
                pend, pbytes, _ = system.backlog()
            except Exception:  # noqa: BLE001 - a slow admin answer under load; try again
                time.sleep(0.2)
                continue
            samples.append((round(time.time() - ev["up_unix"], 3), pend, pbytes))
            if pend == 0:
                ev["drained_unix"] = time.time()
                ev["gen2_bytes_at_drained"] = system.gen2_bytes()
                break
            time.sleep(0.2)
        ev["drain_samples"] = samples[-400:]
        if "drained_unix" in ev:
            secs = ev["drained_unix"] - ev["up_unix"]
            moved = ev["gen2_bytes_at_drained"] - ev["gen2_bytes_at_up"]
            ev["drain_s"] = secs
            ev["drain_gen2_bytes"] = moved
            ev["drain_mb_per_s"] = moved / secs / 1e6 if secs > 0 else None


# ---------------------------------------------------------------- the comparison

def probe_variants(dualpipe, scratch):
    """Which of VARIANTS the proxy accepts (dualpipe --check-config); returns ([(name, over)], notes)."""
    import proxylib
    ok, notes = [], {}
    for name, over in VARIANTS:
        cfg = proxylib.deep_merge(proxylib.base_config("http://127.0.0.1:1", "adls", "http://127.0.0.1:2",
                                                       os.path.join(scratch, "probe-spool")), over)
        path = os.path.join(scratch, "probe.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        p = subprocess.run([dualpipe, "--check-config", path], capture_output=True, text=True, timeout=30)
        if p.returncode == 0:
            ok.append((name, over))
        else:
            notes[name] = (p.stderr or p.stdout).strip().splitlines()[-1] if (p.stderr or p.stdout).strip() else \
                "--check-config exited %d" % p.returncode
    return ok, notes


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def main():
    ap = argparse.ArgumentParser(description="dualpipe vs direct vs nginx mirror (issue 5)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-bench", "bin"), help="dir with dualpipe-bench, dualpipe-emu")
    ap.add_argument("--dualpipe", help="proxy binary (default BIN/dualpipe); 'none' skips the proxy")
    ap.add_argument("--jrnlbench", help="dualpipe-jrnlbench binary (default BIN/dualpipe-jrnlbench)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build-bench", "compare"))
    ap.add_argument("--quick", action="store_true", help="seconds per run instead of tens of seconds")
    ap.add_argument("--profile", choices=sorted(PROFILES), help="full (default), quick (= --quick), smoke (CI)")
    ap.add_argument("--perf", action="store_true",
                    help="record `perf record -g` of the proxy during each run (runs/TAG.SYSTEM.perf.data)")
    ap.add_argument("--only", help="comma-separated parts: big,small,sweep,outage,rss,recovery (default all)")
    ap.add_argument("--systems", help="comma-separated systems to run (default all available; %s run only when "
                    "named: the main variant with its spool and journal on /dev/shm, to show the disk's share)"
                    % ", ".join(n for n, _ in DIAG_VARIANTS))
    ap.add_argument("--outage-s", metavar="UP,DOWN,AFTER",
                    help="the outage run's seconds with Gen2 up, down, then up again (default the profile's: 30,30,30 "
                         "in full); shorter keeps its writes on a smaller disk")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one bench run may take")
    ap.add_argument("--drain-timeout", type=float, default=300, help="seconds to wait for the backlog to drain")
    args = ap.parse_args()

    args.profile = args.profile or ("quick" if args.quick else "full")
    prof = dict(PROFILES[args.profile])
    if args.outage_s:
        try:
            o = tuple(int(x) for x in args.outage_s.split(","))
        except ValueError:
            o = ()
        if len(o) != 3 or min(o) < 1:
            ap.error("--outage-s wants three whole numbers of seconds of at least 1: UP,DOWN,AFTER (got %r)"
                     % args.outage_s)
        prof["outage"] = o
    parts = set((args.only or "big,small,sweep,outage,rss,recovery").split(","))
    bins = {"bench": os.path.join(args.bin, "dualpipe-bench"), "emu": os.path.join(args.bin, "dualpipe-emu")}
    for k in ("bench", "emu"):
        if not os.access(bins[k], os.X_OK):
            sys.exit("compare: %s not found (build it: cmake --build build-bench --target dualpipe-bench dualpipe-emu)" % bins[k])
    dualpipe = args.dualpipe or os.path.join(args.bin, "dualpipe")
    jrnlbench = args.jrnlbench or os.path.join(args.bin, "dualpipe-jrnlbench")
    os.environ["DUALPIPE_EMU"] = bins["emu"]
    os.environ["DUALPIPE"] = dualpipe
    os.environ.pop("DP_JOURNAL_IO", None)
    os.environ.pop("DP_NO_URING", None)
    os.makedirs(args.out, exist_ok=True)
    out = os.path.abspath(args.out)
    scratch = tempfile.mkdtemp(prefix="dp-compare-")
    tempfile.tempdir = scratch  # emulators, spools and nginx all live here, removed at the end
    import emulib  # noqa: E402 - after DUALPIPE_EMU is set
    import proxylib  # noqa: E402

    notes = {}
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    gnuplot = shutil.which("gnuplot")
    if nginx is None:
        notes["nginx-mirror"] = "skipped: nginx is not installed (docker/install-deps.sh --bench installs it)"
        log(notes["nginx-mirror"])
    variants = []
    if args.dualpipe == "none" or not os.access(dualpipe, os.X_OK):
        notes["dualpipe"] = "skipped: no proxy binary at %s" % dualpipe
        log(notes["dualpipe"])
    else:
        variants, rejected = probe_variants(dualpipe, scratch)
        for name, why in rejected.items():
            notes[name] = "not run: this proxy build rejects the config (%s)" % why
            log("%s %s" % (name, notes[name]))
        if not variants:
            variants = [PLAIN]
            log("running the proxy with its defaults as 'dualpipe' (none of the ack/journal.io keys are accepted)")
    if prof.get("variants"):
        variants = variants[:prof["variants"]]
    main_dp = variants[0][0] if variants else None  # ack durable, io_uring when accepted

    def want(name):
        return args.systems is None or name in args.systems.split(",")

    factories = [("direct", lambda: Direct(emulib))]
    factories += [(n, (lambda n=n, o=o: Dualpipe(proxylib, n, o))) for n, o in variants]
    if variants and variants[0][0] == "dualpipe-durable-uring" and os.path.isdir("/dev/shm"):
        factories += [(n, (lambda n=n, o=o: Dualpipe(proxylib, n, o))) for n, o in DIAG_VARIANTS
                      if args.systems and n in args.systems.split(",")]
    if nginx:
        factories.append(("nginx-mirror", lambda: NginxMirror(emulib, nginx, scratch)))
    factories = [(n, f) for n, f in factories if want(n)]
    runner = Runner(args, bins, out)
    results = {"runs": {}, "notes": notes}
    started = time.time()

    def run(tag, name, factory, bench_args, outage=None):
        if prof.get("settle", True):
            settle_disk()
        try:
            system = factory()
        except Exception as e:  # noqa: BLE001 - one system failing to start must not stop the comparison
            notes["%s/%s" % (name, tag)] = "did not start: %s" % str(e).splitlines()[0][:300]
            log("%s %s: %s" % (name, tag, notes["%s/%s" % (name, tag)]))
            return None
        try:
            doc = runner.bench(system, tag, bench_args, outage)
        finally:
            try:
                system.close()
            except AssertionError as e:
                notes["%s/%s/close" % (name, tag)] = str(e)[:500]
        results["runs"].setdefault(tag, {})[name] = summarize(doc)
        return doc

    dur, warm = prof["dur"], prof["warm"]
    base = ["--duration", dur, "--warmup", warm]
    if "big" in parts:
        log("4 MiB appends, 16 concurrent, %s s" % dur)
        for n, f in factories + ([("gen2-direct", lambda: Gen2Direct(emulib))] if want("gen2-direct") else []):
            run("big", n, f, ["--workload", "ingest", "--size", "4M", "--appends", 4, "--concurrency", 16] + base)
    if "small" in parts:
        log("4 KiB appends, 64 concurrent, %s s" % dur)
        for n, f in factories:
            run("small", n, f, ["--workload", "small", "--size", "4K", "--appends", 256, "--concurrency", 64] + base)
    if "sweep" in parts:
        for size in prof["sweep_sizes"]:
            log("sweep: %d-byte appends, 16 concurrent, %s s" % (size, prof["sweep_dur"]))
            appends = max(4, min(256, (16 * MiB) // size))
            for n, f in factories:
                run("sweep-%d" % size, n, f, ["--workload", "ingest", "--size", size, "--appends", appends,
                                              "--concurrency", 16, "--duration", prof["sweep_dur"], "--no-verify"])
    if "outage" in parts:
        up, down, after = prof["outage"]
        log("outage: 4 MiB appends x16; second upstream down from %d s to %d s, run ends at %d s"
            % (up, up + down, up + down + after))
        for n, f in factories:
            if n == "direct" or (n.startswith("dualpipe") and n != main_dp):
                continue
            # Every byte the writers send stays on disk until the run ends: in both stores (nginx: both Gen1
            # emulators; the proxy: Gen1, Gen2 and up to spool.max_bytes of spool). A run that would fill the
            # disk is skipped with a note, estimated from the same system's 4 MiB rate in this comparison.
            big = results["runs"].get("big", {}).get(n, {})
            if big.get("mb_per_s"):
                need = big["mb_per_s"] * 1e6 * (up + down + after) * 2 + (8 << 30 if n.startswith("dualpipe") else 0)
                free = shutil.disk_usage(scratch).free
                if need > free * 0.9:
                    notes["%s/outage" % n] = ("skipped: about %.0f GB would be written (%.0f MB/s for %d s, twice%s), "
                                              "%.0f GB free under %s" % (need / 1e9, big["mb_per_s"], up + down + after,
                                                                         " plus the spool" if n.startswith("dualpipe")
                                                                         else "", free / 1e9, scratch))
                    log(notes["%s/outage" % n])
                    continue
            # --no-verify: the writers' read-back of every file would compete with the drain measured here
            # (bench/drain.py found it took as much CPU as the drain); the other runs check the bytes
            run("outage", n, f, ["--workload", "ingest", "--size", "4M", "--appends", 4, "--concurrency", 16,
                                 "--duration", up + down + after, "--phases", "%d,%d" % (up, up + down),
                                 "--no-verify"],
                outage=(up, down))
    if "rss" in parts:
        log("proxy RSS: %d concurrent 4 MiB uploads, %s s" % (prof["rss_conc"], prof["rss_dur"]))
        for n, f in factories:
            if n.startswith("dualpipe"):
                run("rss256", n, f, ["--workload", "ingest", "--size", "4M", "--appends", 2,
                                     "--concurrency", prof["rss_conc"], "--duration", prof["rss_dur"]])
    if "recovery" in parts:
        results["recovery"] = run_jrnlbench(jrnlbench, scratch, prof["jrnl_records"])
        log("journal recovery: %s" % (results["recovery"].get("records_per_s") or results["recovery"].get("note")))

    results["targets"] = targets(results, main_dp)
    results["env"] = environment(args, dualpipe, nginx, gnuplot, started)
    results["main_dualpipe"] = main_dp
    plots = draw_plots(results, out, gnuplot, runner.runs_dir, main_dp)
    results["plots"] = plots
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    print_tables(results, main_dp)
    log("results: %s/results.json; bench reports and logs: %s; plots: %s"
        % (out, runner.runs_dir, ", ".join(plots) if plots else "none (%s)" % notes.get("plots", "")))
    shutil.rmtree(scratch, ignore_errors=True)


def summarize(doc):
    """The numbers the tables and plots need from one bench report (the full report stays in runs/)."""
    keep = ("label", "workload", "concurrency", "size", "elapsed_s", "ops", "bytes", "ops_per_s", "mb_per_s",
            "errors", "errors_by_status", "latency", "verify", "ok", "exit", "command", "resources", "outage",
            "phases", "acked_total", "acked_bytes", "loadavg_1m")
    s = {k: doc[k] for k in keep if k in doc}
    if "append" in doc.get("by_op", {}):
        s["append_latency"] = doc["by_op"]["append"]
    return s


def run_jrnlbench(path, scratch, records):
    """dualpipe-jrnlbench --json: the journal's recovery scan rate (scan_records_per_s)."""
    if not os.access(path, os.X_OK):
        return {"note": "not available: %s is not built" % path}
    d = os.path.join(tempfile.mkdtemp(prefix="jrnlbench-", dir=scratch), "j")
    cmd = [path, "--dir", d, "--records", str(records), "--json"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return {"note": "dualpipe-jrnlbench timed out", "command": " ".join(cmd)}
    outp = p.stdout + p.stderr
    res = {"command": " ".join(cmd), "exit": p.returncode, "output": outp[-4000:]}
    rate = None
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            res["report"] = doc
            rate = doc.get("scan_records_per_s") or (doc.get("recovery") or {}).get("scan_records_per_s")
    if rate is None:  # the table form: "recovery: scan records/s   N"
        m = re.search(r"scan records/s\s+([0-9.]+)", outp)
        rate = float(m.group(1)) if m else None
    if p.returncode != 0 or not rate:
        res["note"] = "not available: dualpipe-jrnlbench exited %d without a scan rate" % p.returncode
    else:
        res["records_per_s"] = float(rate)
    return res


def targets(results, dp):
    runs = results["runs"]
    g = lambda tag, name: runs.get(tag, {}).get(name)  # noqa: E731
    t = {}

    def val(key, value, how, detail=""):
        t[key] = {"value": value, "measured": value is not None, "how": how, "detail": detail}

    big_dp, big_d, big_n = g("big", dp), g("big", "direct"), g("big", "nginx-mirror")
    mb = lambda r: r["mb_per_s"] if r and r.get("ok") else None  # noqa: E731
    val("big_vs_direct", ratio(mb(big_dp), mb(big_d)), "MB/s %s / MB/s direct" % dp,
        "%s vs %s MB/s" % (fmt(mb(big_dp)), fmt(mb(big_d))))
    val("big_vs_nginx", ratio(mb(big_dp), mb(big_n)), "MB/s %s / MB/s nginx-mirror" % dp,
        "%s vs %s MB/s" % (fmt(mb(big_dp)), fmt(mb(big_n))))
    s_dp, s_d = g("small", dp), g("small", "direct")
    ops = lambda r: r["ops_per_s"] if r and r.get("ok") else None  # noqa: E731
    p99 = lambda r: r["append_latency"]["p99_us"] / 1e3 if r and r.get("ok") and "append_latency" in r else None  # noqa: E731
    val("small_ops_vs_direct", ratio(ops(s_dp), ops(s_d)), "ops/s %s / ops/s direct" % dp,
        "%s vs %s ops/s" % (fmt(ops(s_dp)), fmt(ops(s_d))))
    val("small_p99_delta", p99(s_dp) - p99(s_d) if p99(s_dp) is not None and p99(s_d) is not None else None,
        "append p99 %s - append p99 direct, ms" % dp, "%s vs %s ms" % (fmt(p99(s_dp)), fmt(p99(s_d))))
    fpa = (s_dp or {}).get("resources", {}).get("fdatasync_per_ack")
    val("fdatasync_per_ack", fpa, "delta dualpipe_journal_fdatasync_total / acknowledged writes (4 KiB run)",
        "" if fpa is not None else "the proxy has no dualpipe_journal_fdatasync_total metric")
    cpu = lambda r, k: (r or {}).get("resources", {}).get(k) if r and r.get("ok") else None  # noqa: E731
    val("big_cpu_vs_nginx", ratio(cpu(big_dp, "cpu_s_per_gb"), cpu(big_n, "cpu_s_per_gb")),
        "CPU-s/GB %s / CPU-s/GB nginx-mirror" % dp,
        "%s vs %s CPU-s/GB" % (fmt(cpu(big_dp, "cpu_s_per_gb")), fmt(cpu(big_n, "cpu_s_per_gb"))))
    val("small_cpu_per_op", cpu(s_dp, "cpu_ms_per_op"), "proxy utime+stime / acknowledged appends (4 KiB run), ms",
        "nginx-mirror %s ms" % fmt(cpu(g("small", "nginx-mirror"), "cpu_ms_per_op"), 3))
    for name in (dp, "nginx-mirror"):
        o = g("outage", name)
        r = None
        detail = ""
        if o and o.get("phases") and len(o["phases"]) == 3:
            up_p99 = o["phases"][0]["latency"]["p99_us"] / 1e3
            dn_p99 = o["phases"][1]["latency"]["p99_us"] / 1e3
            r = ratio(dn_p99, up_p99)
            detail = "p99 %s ms down vs %s ms up; errors during outage %d" % (fmt(dn_p99), fmt(up_p99),
                                                                              o["phases"][1]["errors"])
        val("outage_p99_ratio" + ("" if name == dp else "_nginx"), r, "writer p99 while down / p99 before", detail)
    r256 = g("rss256", dp) or {}
    rss = r256.get("resources", {}).get("vmhwm_kib")
    if r256 and r256.get("concurrency") != 256:
        val("rss_256", None, "VmHWM of the proxy after the 256 x 4 MiB run, MiB",
            "this profile ran %s concurrent uploads (peak %s MiB), not 256" % (r256.get("concurrency"),
                                                                            fmt(rss / 1024 if rss else None)))
    else:
        val("rss_256", rss / 1024 if rss else None, "VmHWM of the proxy after the 256 x 4 MiB run, MiB")
    rec = results.get("recovery", {})
    val("recovery_rate", rec.get("records_per_s"), "dualpipe-jrnlbench", rec.get("note", ""))
    o = g("outage", dp) or {}
    ev = o.get("outage", {})
    g2 = mb(g("big", "gen2-direct"))
    drain = ev.get("drain_mb_per_s")
    val("drain_vs_gen2", ratio(drain, g2), "Gen2 bytes stored per s from Gen2 up to nothing pending / gen2-direct MB/s",
        "drain %s MB/s over %s s (%s writes, %s body bytes owed at up); gen2-direct %s MB/s%s" % (
            fmt(drain), fmt(ev.get("drain_s")), ev.get("backlog_writes"), ev.get("backlog_bytes"), fmt(g2),
            "" if "drained_unix" in ev or not ev else "; NOT drained within the timeout"))
    return t


def fmt(v, nd=2):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return ("%.*f" % (nd, v)) if abs(v) < 1e5 else "{:,.0f}".format(v)
    return str(v)


def verdict(key, v):
    if v is None:
        return "not measured"
    ok = {"big_vs_direct": v >= 0.8, "big_vs_nginx": v >= 1.0, "small_ops_vs_direct": v >= 0.5,
          "small_p99_delta": v <= 2.0, "fdatasync_per_ack": v <= 0.1, "big_cpu_vs_nginx": v <= 1.0,
          "small_cpu_per_op": v <= 0.1, "outage_p99_ratio": v <= 1.2,
          "rss_256": v <= 64, "recovery_rate": v >= 1e6, "drain_vs_gen2": v >= 0.8}.get(key)
    return "—" if ok is None else ("met" if ok else "MISSED")


def print_tables(results, dp):
    runs = results["runs"]
    print()
    print("Side by side (MB/s, ops/s, latency of all operations p50/p99 ms; append p99 ms)")
    for tag in sorted(runs, key=lambda t: (t.startswith("sweep"), int(t.split("-")[1]) if t.startswith("sweep") else 0, t)):
        print("  %s" % tag)
        for name, r in runs[tag].items():
            lat = r.get("latency", {})
            ap = r.get("append_latency", {})
            extra = ""
            res = r.get("resources")
            if res and "vmhwm_kib" in res:
                extra = "  RSS peak %s MiB, CPU %s s/GB %s ms/op, fdatasync/ack %s" % (
                    fmt((res.get("vmhwm_kib") or 0) / 1024, 1), fmt(res.get("cpu_s_per_gb")),
                    fmt(res.get("cpu_ms_per_op"), 3), fmt(res.get("fdatasync_per_ack"), 3))
            elif res:
                extra = "  CPU %s s/GB %s ms/op (%d processes)" % (fmt(res.get("cpu_s_per_gb")),
                                                                  fmt(res.get("cpu_ms_per_op"), 3), res.get("cpu_pids", 0))
            print("    %-26s %8.1f MB/s %9.0f ops/s  p50 %7.2f  p99 %8.2f  append p99 %8.2f  %s%s" % (
                name, r.get("mb_per_s", 0), r.get("ops_per_s", 0), lat.get("p50_us", 0) / 1e3,
                lat.get("p99_us", 0) / 1e3, ap.get("p99_us", 0) / 1e3,
                "ok" if r.get("ok") else "FAILED", extra))
        base = runs[tag].get("direct")
        ngx = runs[tag].get("nginx-mirror")
        for name, r in runs[tag].items():
            if name.startswith("dualpipe") and base:
                print("    ratio %-20s /direct %s  /nginx-mirror %s" % (
                    name, fmt(ratio(r.get("mb_per_s"), base.get("mb_per_s"))),
                    fmt(ratio(r.get("mb_per_s"), (ngx or {}).get("mb_per_s")))))
    print()
    print("Targets (issue 5), dualpipe = %s" % dp)
    t = results["targets"]
    for key, what, target in TARGETS:
        e = t.get(key, {})
        print("  %-78s %-12s %-12s %-12s %s" % (what, target, fmt(e.get("value"), 3), verdict(key, e.get("value")),
                                                e.get("detail", "")))
        if key == "outage_p99_ratio" and "outage_p99_ratio_nginx" in t:
            e2 = t["outage_p99_ratio_nginx"]
            print("  %-78s %-12s %-12s %-12s %s" % ("  (nginx mirror beside it)", "", fmt(e2.get("value"), 3), "",
                                                    e2.get("detail", "")))
    for k, v in results["notes"].items():
        print("  note: %s: %s" % (k, v))


def environment(args, dualpipe, nginx, gnuplot, started):
    def cmd_out(c):
        try:
            return subprocess.run(c, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    mem = proc_meminfo_gib()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "profile": args.profile,
        "machine": "%d cores (%s), %.1f GiB RAM, kernel %s" % (os.cpu_count() or 0, cpu, mem, platform.release()),
        "fs": cmd_out(["df", "--output=fstype", tempfile.gettempdir()]).splitlines()[-1:],
        "git": cmd_out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
        "dualpipe": dualpipe,
        "nginx": nginx_version(nginx) if nginx else None,
        "gnuplot": cmd_out([gnuplot, "--version"]) if gnuplot else None,
        "seconds": round(time.time() - started, 1),
    }


def nginx_version(nginx):
    try:
        p = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10)
        return (p.stderr + p.stdout).strip()
    except (OSError, subprocess.TimeoutExpired):
        return None


def proc_meminfo_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1048576
    except OSError:
        pass
    return 0.0


# ---------------------------------------------------------------- plots

def size_label(n):
    for unit, mul in (("M", MiB), ("K", KiB)):
        if n >= mul and n % mul == 0:
            return "%d%s" % (n // mul, unit)
    return str(n)


def draw_plots(results, out, gnuplot, runs_dir, dp):
    pdir = os.path.join(out, "plots")
    os.makedirs(pdir, exist_ok=True)
    runs = results["runs"]
    scripts = []
    systems = []
    for tag in runs:
        for n in runs[tag]:
            if n not in systems and n != "gen2-direct":
                systems.append(n)
    # 1. throughput by body size
    sweep = sorted((int(t.split("-")[1]), t) for t in runs if t.startswith("sweep-"))
    if sweep:
        path = os.path.join(pdir, "throughput_by_size.dat")
        with open(path, "w") as f:
            f.write("# size_bytes " + " ".join(systems) + "   (MB/s; ? = not run)\n")
            for size, tag in sweep:
                f.write("%d %s\n" % (size, " ".join("%.2f" % runs[tag][n]["mb_per_s"] if n in runs[tag] and runs[tag][n].get("ok")
                                                     else "?" for n in systems)))
        plots = ", ".join("'%s' using 1:%d with linespoints lw 2 lc %d title '%s'" % (path, i + 2, i + 1, n)
                          for i, n in enumerate(systems))
        tics = ", ".join("'%s' %d" % (size_label(size), size) for size, _ in sweep)
        scripts.append(("throughput_by_size.png", """
set title 'Throughput by append size (16 concurrent writers; MB = 10^6 bytes)'
set xlabel 'append body size'; set ylabel 'MB/s'; set logscale x 2; set key left top; set grid
set xtics (%s); set datafile missing '?'
plot %s
""" % (tics, plots)))
    # 2. latency CDF: append latency of the 4 KiB x64 and 4 MiB x16 runs
    for tag, title in (("small", "4 KiB appends, 64 concurrent"), ("big", "4 MiB appends, 16 concurrent")):
        lines = []
        for n in systems:
            jpath = os.path.join(runs_dir, "%s.%s.json" % (tag, n))
            try:
                with open(jpath) as f:
                    pts = json.load(f)["cdf"]["append"]
            except (OSError, ValueError, KeyError):
                continue
            dpath = os.path.join(pdir, "cdf_%s.%s.dat" % (tag, n))
            with open(dpath, "w") as f:
                f.write("# append latency ms, cumulative fraction\n")
                for us, frac in pts:
                    f.write("%.4f %.6f\n" % (us / 1e3, frac))
            lines.append("'%s' using 1:2 with lines lw 2 lc %d title '%s'" % (dpath, systems.index(n) + 1, n))
        if lines:
            scripts.append(("latency_cdf_%s.png" % tag, """
set title 'Append latency CDF: %s'
set xlabel 'latency (ms)'; set ylabel 'fraction of appends <= x'; set logscale x; set key right bottom
set yrange [0:1]; set grid
plot %s
""" % (title, ", ".join(lines))))
    # 3. writer latency over time during the outage
    lines = []
    window = None
    for i, n in enumerate((dp, "nginx-mirror")):
        jpath = os.path.join(runs_dir, "outage.%s.json" % n)
        try:
            with open(jpath) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        ev = doc.get("outage", {})
        if ev.get("down_unix") and doc.get("start_unix"):
            window = (ev["down_unix"] - doc["start_unix"], ev["up_unix"] - doc["start_unix"])
        dpath = os.path.join(pdir, "outage.%s.dat" % n)
        with open(dpath, "w") as f:
            f.write("# second, ops, MB/s, p50 ms, p99 ms, max ms, errors\n")
            for s in doc.get("timeline", []):
                if s["t"] + 1 > doc.get("elapsed_s", 0) + 1e-3:
                    continue  # the last, partial second
                if s["ops"] == 0:  # nothing completed in that second: no latency to draw (not 0 ms)
                    f.write("%d 0 0 ? ? ? %d\n" % (s["t"], s["errors"]))
                    continue
                f.write("%d %d %.2f %.3f %.3f %.3f %d\n" % (s["t"], s["ops"], s["mb_per_s"], s["p50_us"] / 1e3,
                                                             s["p99_us"] / 1e3, s["max_us"] / 1e3, s["errors"]))
        lines.append("'%s' using ($1+0.5):5 with linespoints lw 2 lc %d title '%s p99'" % (dpath, i + 1, n))
        lines.append("'%s' using ($1+0.5):4 with lines dt 2 lc %d title '%s p50'" % (dpath, i + 1, n))
    if lines:
        shade = ""
        if window:
            shade = "set object 1 rect from %.2f, graph 0 to %.2f, graph 1 fc rgb '#ffdddd' fs solid 0.5 behind\n" % window
            shade += "set label 1 'second upstream down' at %.2f, graph 0.95\n" % (window[0] + 0.5)
        scripts.append(("outage_latency.png", """
set title 'Writer latency per second, 4 MiB appends x16, second upstream down (shaded)'
set xlabel 'time into the run (s)'; set ylabel 'latency (ms)'; set key left top; set grid
set datafile missing '?'
%s
plot %s
""" % (shade, ", ".join(lines))))
    made = []
    if gnuplot is None:
        results["notes"]["plots"] = "skipped: gnuplot is not installed (docker/install-deps.sh --bench installs it)"
        log(results["notes"]["plots"])
        return made
    for png, body in scripts:
        gp = os.path.join(pdir, png.replace(".png", ".gp"))
        with open(gp, "w") as f:
            f.write("set terminal pngcairo size 900,540 font 'sans,10'\nset output '%s'\n%s" % (os.path.join(out, png), body))
        p = subprocess.run([gnuplot, gp], capture_output=True, text=True)
        if p.returncode == 0:
            made.append(png)
        else:
            results["notes"]["plot " + png] = "gnuplot failed: " + p.stderr.strip()[-300:]
    return made


if __name__ == "__main__":
    main()
