"""test_durability: issue 4 "Tests" 1 and 3 — Gen2 outages and Gen2 misbehaviour never reach writers
and never cost a byte.

Real processes on loopback (proxylib Stack: Gen1 emulator, Gen2 emulator, dualpipe with its spool and
journal). Writer threads write through the proxy in both writer dialects (one-step write=true /
append=true, and Hadoop's two-step 307 flow) a mix of MKDIRS, CREATE with data, APPENDs,
SETPERMISSION, SETOWNER, SETACL, RENAME and DELETE, each in its own directory, and keep a model of
what every file must hold. Checks:

1. Gen2 down for exactly 30 s (the emulator's listener closed, connections refused) while the
   writers write: every writer request gets its 2xx answer promptly (zero errors, no request waits
   on Gen2); the journal holds the backlog during the outage; once Gen2 is back the backlog drains,
   and the compare tool finds Gen1 and Gen2 equal (tree, bytes, permissions, owner, ACLs), with every
   file's bytes exactly what the writer wrote (nothing lost, nothing applied twice).
2. Gen2 storms: 503 and 429 with Retry-After on a fraction of requests, latency spikes, connections
   reset in the middle of an append body — the same checks, with the faults still on while draining.

The applier's backoff cap and breaker probe interval are lowered (applier.backoff_cap_ms,
applier.breaker_probe_ms) so the drain after the outage fits the test's time bound; the outage itself
is the issue's 30 s. DP_JOURNAL_IO=threads (CMake *_threads) runs the same with the thread-pool backend.
"""
import json
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

ACL = "user::rw-,user:alice:r--,group::r--,mask::r--,other::---"
FAST_APPLIER = {"applier": {"backoff_base_ms": 100, "backoff_cap_ms": 2000, "breaker_probe_ms": 500}}


class Writer(threading.Thread):
    """One writer: its own directory, a fixed dialect, a model {path: bytes or None (directory)}."""

    def __init__(self, proxy, root, two_step, seed, stop, pause=0.02, max_body=64 * 1024):
        super().__init__(daemon=True)
        self.p = proxy
        self.root = root
        self.two_step = two_step
        self.rng = random.Random(seed)
        self.stop_ev = stop
        self.pause = pause
        self.max_body = max_body
        self.files = {}        # path -> expected bytes
        self.dirs = set()
        self.errors = []
        self.latencies = []
        self.ops = 0

    def call(self, what, fn, want=(200, 201)):
        t0 = time.time()
        try:
            r = fn()
        except Exception as e:  # noqa: BLE001 - any transport error is a writer-visible error
            self.errors.append("%s: %s: %r" % (self.root, what, e))
            return None
        self.latencies.append(time.time() - t0)
        self.ops += 1
        if r.status not in want:
            self.errors.append("%s: %s -> %d %r" % (self.root, what, r.status, r.body[:300]))
            return None
        if r.body[:1] == b"{" and b"boolean" in r.body and r.json().get("boolean") is not True:
            self.errors.append("%s: %s -> %r" % (self.root, what, r.body[:300]))
            return None
        time.sleep(self.pause)
        return r

    def meta(self, path, op, **params):
        return self.call("%s %s %r" % (op, path, params), lambda: self.p.webhdfs("PUT", path, op, **params))

    def data(self, path, op, body, **params):
        method = "PUT" if op == "CREATE" else "POST"
        return self.call("%s %s (%d bytes)" % (op, path, len(body)),
                         lambda: proxylib.write_data(self.p, method, path, op, body, self.two_step, **params))

    def body(self, lo=1, hi=None):
        n = self.rng.randint(lo, hi or self.max_body)
        return self.rng.randbytes(n) if hasattr(self.rng, "randbytes") else os.urandom(n)

    def run(self):
        if self.meta(self.root, "MKDIRS", permission="755"):
            self.dirs.add(self.root)
        k = 0
        while not self.stop_ev.is_set():
            f = "%s/f%04d" % (self.root, k)
            b = self.body()
            if self.data(f, "CREATE", b, overwrite="true", permission="640"):
                self.files[f] = b
            for _ in range(self.rng.randint(1, 3)):
                b = self.body(1, 8192)
                if self.data(f, "APPEND", b):
                    self.files[f] = self.files.get(f, b"") + b
            self.meta(f, "SETPERMISSION", permission=self.rng.choice(["600", "644", "604"]))
            if k % 3 == 0:
                self.meta(f, "SETACL", aclspec=ACL)
            if k % 5 == 1:
                self.meta(f, "SETOWNER", owner="alice", group="eng")
            if k % 4 == 2:
                d = "%s/d%04d" % (self.root, k)
                if self.meta(d, "MKDIRS", permission="750"):
                    self.dirs.add(d)
                g = d + "/g"
                if self.meta(f, "RENAME", destination=g) and f in self.files:
                    self.files[g] = self.files.pop(f)
                    f = g
            if k % 7 == 6 and k >= 7:
                victim = "%s/f%04d" % (self.root, k - 6)
                if victim in self.files and self.call("DELETE " + victim,
                                                      lambda v=victim: self.p.webhdfs("DELETE", v, "DELETE")):
                    del self.files[victim]
            k += 1


def run_writers(stack, prefix, n, stop, seed, **kw):
    ws = [Writer(stack.proxy, "%s/w%d" % (prefix, i), two_step=(i % 2 == 1), seed=seed * 100 + i, stop=stop, **kw)
          for i in range(n)]
    for w in ws:
        w.start()
    return ws


class DurabilityBase(unittest.TestCase):
    def check_writers(self, ws):
        errors = [e for w in ws for e in w.errors]
        self.assertEqual(errors[:20], [], "writers saw %d errors" % len(errors))
        self.assertGreater(min(w.ops for w in ws), 10, "writers made too little progress")

    def check_model(self, s, ws):
        """Every file holds exactly what its writer wrote, on both sides (no lost or doubled bytes)."""
        bad = []
        for w in ws:
            for path, want in sorted(w.files.items()):
                for side, read in (("Gen1", s.g1_read), ("Gen2", s.g2_read)):
                    try:
                        got = read(path)
                    except AssertionError as e:
                        bad.append("%s %s: %s" % (side, path, str(e)[:200]))
                        continue
                    if got != want:
                        bad.append("%s %s: %d bytes, the writer wrote %d%s" % (
                            side, path, len(got), len(want),
                            " (doubled bytes)" if len(got) > len(want) else ""))
        self.assertEqual(bad[:20], [], "%d files differ from what was written" % len(bad))

    def check_equal(self, s, root):
        diffs = s.compare(root)
        self.assertEqual(diffs[:30], [], "Gen1 and Gen2 differ in %d places; journal: %s"
                         % (len(diffs), json.dumps(s.proxy.journal())[:2000]))


class Gen2Outage(DurabilityBase):
    OUTAGE_S = 30.0

    def test_gen2_down_30s_while_writing(self):
        t_start = time.time()
        seed = int(os.environ.get("DP_TEST_SEED", "0")) or random.randrange(1, 1 << 30)
        print("seed=%d (DP_TEST_SEED to repeat)" % seed, file=sys.stderr)
        s = proxylib.Stack(config=FAST_APPLIER)
        try:
            want = s.proxy.expected_backend()
            if want:
                self.assertEqual(s.proxy.io_backend(), want, s.proxy.journal())
            stop = threading.Event()
            r = s.gen2.admin("POST", "/down?ms=0")
            self.assertEqual(r.status, 200, r)
            t_down = time.time()
            ws = run_writers(s, "/outage", 4, stop, seed, pause=0.03)
            time.sleep(max(0.0, self.OUTAGE_S - 1.0 - (time.time() - t_down)))
            # the writes went into the journal, not to Gen2
            j = s.proxy.journal()["journal"]
            self.assertGreater(int(j["pending"]), 0, j)
            self.assertGreater(int(j["bytes_pending"]), 0, j)
            time.sleep(max(0.0, self.OUTAGE_S - (time.time() - t_down)))
            r = s.gen2.admin("POST", "/up")
            self.assertEqual(r.status, 200, r)
            outage = time.time() - t_down
            time.sleep(2)  # keep writing while the backlog drains
            stop.set()
            for w in ws:
                w.join(30)
            self.check_writers(ws)
            lat = sorted(x for w in ws for x in w.latencies)
            print("outage %.1f s, %d writer requests, latency p50 %.1f ms p99 %.1f ms max %.1f ms"
                  % (outage, len(lat), 1e3 * lat[len(lat) // 2], 1e3 * lat[int(len(lat) * 0.99)], 1e3 * lat[-1]),
                  file=sys.stderr)
            self.assertLess(lat[-1], 5.0, "a writer waited %.1f s during the Gen2 outage" % lat[-1])
            t0 = time.time()
            s.wait_drained(timeout=40)
            print("backlog drained %.1f s after Gen2 returned" % (time.time() - t0 + 2), file=sys.stderr)
            self.check_equal(s, "/outage")
            self.check_model(s, ws)
            self.assertLess(time.time() - t_start, 90, "the outage test must stay bounded")
        finally:
            s.close()


class Gen2Storms(DurabilityBase):
    def test_503_429_latency_and_resets(self):
        seed = int(os.environ.get("DP_TEST_SEED", "0")) or random.randrange(1, 1 << 30)
        print("seed=%d (DP_TEST_SEED to repeat)" % seed, file=sys.stderr)
        s = proxylib.Stack(config=FAST_APPLIER, gen2_kw={"extra_args": ["--seed", str(seed)]})
        try:
            for rule in ("method=*,op=*,action=fail,status=503,retry_after=1,fraction=0.15",
                         "method=*,op=*,action=fail,status=429,retry_after=1,fraction=0.1",
                         "method=*,op=*,action=latency,latency_ms=400,fraction=0.05",
                         "method=PATCH,op=append,action=reset,after_bytes=2048,fraction=0.2"):
                s.gen2.fault(rule)
            stop = threading.Event()
            ws = run_writers(s, "/storm", 4, stop, seed, pause=0.02)
            time.sleep(8)
            stop.set()
            for w in ws:
                w.join(30)
            self.check_writers(ws)
            s.wait_drained(timeout=60)  # with the faults still on
            c = s.gen2.counters()["faults"]
            self.assertGreater(c.get("fail", 0), 5, c)
            self.assertGreater(c.get("reset", 0), 0, c)
            self.assertGreater(c.get("latency", 0), 0, c)
            m = s.proxy.metrics()
            retries = sum(v for k, v in m.items() if k.startswith("dualpipe_applier_retries_total"))
            self.assertGreater(retries, 0, "the storm was met and retried past")
            s.gen2.admin("DELETE", "/faults")  # the compare reads Gen2 directly
            self.check_equal(s, "/storm")
            self.check_model(s, ws)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
