"""test_backlog_window: the applier's bounded window (issue 9, "Bounded memory, no head-of-line
blocking") through the real proxy (proxylib Stack).

One Gen2 path keeps failing (a path= fault rule on the Gen2 emulator: 503 for /lake/stuck/...) while
eight writers send a backlog of thousands of records many times larger than applier.max_in_memory
(32): 1 CREATE + 600 SETPERMISSIONs of /stuck/f (more than the old scheduler's 512-operation scan),
sent first and alone for twice the window, then 100 files elsewhere with 50 records each. Asserted:
  - every other path drains while the stuck path waits (the journal's pending count falls to exactly
    the stuck path's records): one failing path holds nothing else back;
  - the applier never holds more operations than the window (sampled from /admin/status throughout),
    and the proxy's RSS grows by far less than holding every record as an applier operation would take;
  - once the fault is gone everything drains, nothing is parked, both stores compare equal, and Gen2
    wrote each file's bytes exactly once (emulator counters).
Runs on the default I/O backend and on the thread pool (backlog_window_threads). Under sanitizers
(DP_SANITIZED=1) the RSS bound is not checked: shadow memory and the quarantine dominate it.
"""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

WINDOW = 32
PER_PATH = 4
STUCK_OPS = 600
FILES = 100
PER_FILE = 50
WRITERS = 8
AOP_BYTES = 3700  # an applier operation with its request (issue 9's measurement)


def vm_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class BacklogWindow(unittest.TestCase):
    def test_stuck_path_does_not_block_and_memory_stays_bounded(self):
        cfg = {"applier": {"max_in_memory": WINDOW, "max_per_path": PER_PATH, "concurrency": 16,
                           "backoff_base_ms": 20, "backoff_cap_ms": 200, "breaker_failures": 1000},
               "log": {"level": "info"}}
        s = proxylib.Stack(config=cfg)
        try:
            p = s.proxy
            s.gen2.fault("path=/lake/stuck/,status=503")
            rss0 = vm_rss(p.proc.pid)
            peak = {"pending": 0, "rss": rss0}
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    st = p.status()
                    peak["pending"] = max(peak["pending"], int(st.get("pending", 0)))
                    peak["rss"] = max(peak["rss"], vm_rss(p.proc.pid))
                    time.sleep(0.02)

            errors = []
            # The stuck path's burst starts alone: while nothing else waits, its fresh writes could go
            # straight into the window; the others start once it has sent twice the window.
            stuck_ahead = threading.Event()

            def writer(w):
                try:
                    if w == 0:
                        r = p.webhdfs("PUT", "/stuck/f", "CREATE", body=b"stuck", write="true", overwrite="true")
                        assert r.status == 201, r
                        for i in range(STUCK_OPS):
                            if i == 2 * WINDOW:
                                stuck_ahead.set()
                            r = p.webhdfs("PUT", "/stuck/f", "SETPERMISSION", permission="%o" % (0o600 + i % 64))
                            assert r.status == 200, r
                    else:
                        stuck_ahead.wait(60)
                    for f in range(w, FILES, WRITERS):
                        path = "/ok/d%d/f%d" % (f % 10, f)
                        r = p.webhdfs("PUT", path, "CREATE", body=b"file %d" % f, write="true", overwrite="true")
                        assert r.status == 201, r
                        for i in range(PER_FILE - 1):
                            r = p.webhdfs("PUT", path, "SETPERMISSION", permission="%o" % (0o640 + i % 8))
                            assert r.status == 200, r
                except BaseException as e:  # reported by the main thread
                    errors.append(e)
                    stuck_ahead.set()

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            ws = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
            for t in ws:
                t.start()
            for t in ws:
                t.join(120)
            self.assertEqual(errors, [])
            stuck = 1 + STUCK_OPS
            total = stuck + FILES * PER_FILE
            # Everything but the stuck path drains while it keeps failing.
            deadline = time.time() + 90
            while True:
                j = p.journal()["journal"]
                if int(j["pending"]) == stuck:
                    break
                self.assertGreater(int(j["pending"]), stuck - 1, j)
                if time.time() > deadline:
                    self.fail("other paths did not drain past the stuck one: %s\n---- status ----\n%s\n"
                              "---- proxy log ----\n%s" % (j, p.status(), p.log_since_start()[-6000:]))
                time.sleep(0.2)
            self.assertEqual(int(j["parked"]), 0, j)
            self.assertGreaterEqual(int(j["applied"]), total - stuck, j)
            self.assertEqual(s.g2_read("/ok/d3/f93"), b"file 93")
            # The stuck path recovers: the rest follows in order.
            self.assertEqual(s.gen2.admin("DELETE", "/faults").status, 200)
            s.wait_drained(90)
            stop.set()
            sampler.join(5)
            self.assertLessEqual(peak["pending"], WINDOW, peak)
            self.assertGreater(peak["pending"], 0, peak)
            grown = peak["rss"] - rss0
            if os.environ.get("DP_SANITIZED", "0") not in ("1", "ON", "TRUE"):
                self.assertLess(grown, total * AOP_BYTES // 2,
                                "RSS grew by %d bytes for %d records" % (grown, total))
            s.assert_same(self, "/")  # the stuck file's permission is the last of its 600 changes
            c = s.gen2.counters()["requests"]
            # each file's bytes went to Gen2 once (the stuck file's failed creates were retries, not applies)
            self.assertEqual(c.get("PATCH append", 0), FILES + 1, c)
            # (each append also flushed: flush=true with the default x-ms-version)
            self.assertEqual(c.get("PATCH flush", 0) + c.get("PATCH append-flush", 0), FILES + 1, c)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main()
