"""phase-pause: the pause writers see while the phase switches under a 4 KiB append load (issue 14's target:
p99 <= 500 ms).

Starts the Gen1 and Gen2 emulators and the proxy (gen1-primary), runs --writers threads that each append
--size bytes to their own file as fast as the proxy answers, and switches gen1-primary -> gen2-primary ->
gen1-primary ... --switches times with `dualpipe phase set` (--gap seconds apart). For each switch it takes
every write that was sent while the switch ran (from the command's start to its end) and prints its slowest
answer (the writer-visible pause), then over all switches: p50, p99 and max of those, the write latency p99
outside the switches for comparison, the proxy's own `dualpipe_phase_hold_seconds` (how long held writes
waited) and what each `phase set` printed. Every write must succeed: a held write waits, it is not refused.

    DUALPIPE=build/bin/dualpipe DUALPIPE_EMU=build/bin/dualpipe-emu \\
        python3 bench/phase-pause.py [--writers 16] [--size 4K] [--switches 10] [--gap 1.0] [--io auto|threads]
"""
import argparse
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import proxylib  # noqa: E402


def size_arg(s):
    s = s.strip().upper()
    mult = {"K": 1024, "M": 1 << 20}.get(s[-1:], 1)
    return int(s[:-1] if s[-1:] in "KM" else s) * mult


def pct(xs, p):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--size", type=size_arg, default=4096)
    ap.add_argument("--switches", type=int, default=10)
    ap.add_argument("--gap", type=float, default=1.0, help="seconds of load between switches")
    ap.add_argument("--io", default=None, help="journal.io (default: the proxy's)")
    a = ap.parse_args()

    cfg = {"phase": {"initial": "gen1-primary", "poll_ms": 100, "switch_timeout_ms": 20000},
           "log": {"level": "warn"}}
    if a.io:
        cfg["journal"] = {"io": a.io}
    s = proxylib.Stack(config=cfg)
    stop = threading.Event()
    lock = threading.Lock()
    lat = []       # (sent, seconds)
    errors = []
    body = b"x" * a.size

    def writer(w):
        path = "/pp/w%d" % w
        r = proxylib.write_data(s.proxy, "PUT", path, "CREATE", b"", overwrite="true")
        if r.status != 201:
            errors.append("create %s: %d" % (path, r.status))
            return
        while not stop.is_set():
            t0 = time.time()
            r = proxylib.write_data(s.proxy, "POST", path, "APPEND", body, timeout=60)
            d = time.time() - t0
            with lock:
                lat.append((t0, d))
                if r.status != 200:
                    errors.append("append %s: %d %s" % (path, r.status, r.body[:200]))

    try:
        r = s.proxy.webhdfs("PUT", "/pp", "MKDIRS")
        assert r.status == 200, r
        ts = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(a.writers)]
        for t in ts:
            t.start()
        time.sleep(a.gap)
        admin = s.proxy.admin_url[len("http://"):]
        windows, said = [], []
        to = "gen2-primary"
        for _ in range(a.switches):
            t0 = time.time()
            p = subprocess.run([proxylib.DUALPIPE_BIN, "phase", "set", to, "--config", s.proxy.config_path,
                                "--admin", admin], capture_output=True, text=True, timeout=120)
            t1 = time.time()
            if p.returncode != 0:
                raise SystemExit("phase set %s failed: %s" % (to, p.stderr))
            windows.append((t0, t1))
            said.append("%s: %s" % (to, p.stdout.strip()))
            to = "gen1-primary" if to == "gen2-primary" else "gen2-primary"
            time.sleep(a.gap)
        stop.set()
        for t in ts:
            t.join(60)
        m = s.proxy.metrics()
        with lock:
            all_lat = list(lat)
        pauses, outside = [], []
        for t, d in all_lat:
            if not any(w0 <= t <= w1 for w0, w1 in windows):
                outside.append(d)
        for w0, w1 in windows:
            xs = [d for t, d in all_lat if w0 <= t <= w1]
            pauses.append(max(xs) if xs else 0.0)
        hold_n = m.get("dualpipe_phase_hold_seconds_count", 0)
        hold_sum = m.get("dualpipe_phase_hold_seconds_sum", 0.0)
        print("writers %d, %d-byte appends, %d switches, %d writes (%.0f/s), %d errors"
              % (a.writers, a.size, a.switches, len(all_lat), len(all_lat) / max(1e-9, all_lat[-1][0] - all_lat[0][0]),
                 len(errors)))
        for line in said:
            print("  phase set " + line)
        print("slowest write sent during a switch, per switch (ms): %s"
              % ", ".join("%.0f" % (x * 1000) for x in pauses))
        print("writer-visible pause: p50 %.0f ms, p99 %.0f ms, max %.0f ms"
              % (pct(pauses, 50) * 1000, pct(pauses, 99) * 1000, max(pauses) * 1000))
        print("write latency outside switches: p50 %.1f ms, p99 %.1f ms"
              % (pct(outside, 50) * 1000, pct(outside, 99) * 1000))
        print("held writes (dualpipe_phase_hold_seconds): %d, mean wait %.0f ms"
              % (hold_n, (hold_sum / hold_n * 1000) if hold_n else 0.0))
        if errors:
            print("errors:\n  " + "\n  ".join(errors[:10]))
            return 1
        return 0
    finally:
        stop.set()
        s.close()


if __name__ == "__main__":
    sys.exit(main())
