"""test_applier_journal: the applier driven by the journal (issue 4), through the real proxy (proxylib
Stack: Gen1 emulator, Gen2 emulator, dualpipe with its spool and journal).

- A Gen2 503/429 storm (with Retry-After) is retried past: every write lands, none is resynced or
  parked, and the retries are counted.
- A Gen2 outage opens the circuit breaker (status "breaker":"open", dualpipe_applier_breaker_open=1,
  a trip counted); while it is open the proxy neither spins nor hammers Gen2 (a handful of probes,
  little CPU), and once Gen2 is back the breaker closes and the backlog drains.
- A write Gen2 refuses for good (an injected 400 on the create; an APPEND whose offset contradicts
  what Gen2 holds) ends resynced from Gen1, listed under "failures" with the reason; when the resync
  keeps failing too (applier.resync_attempts copies) the record is parked, and an operator retry
  (POST /admin/journal/retry) resyncs it once Gen2 accepts again.
- Many small APPENDs to one file while Gen2 is slow are coalesced: fewer flushes than appends,
  dualpipe_applier_coalesced_total > 0, the bytes exact (with and without offsets).
- An operator resync (POST /admin/journal/resync) copies the subtree from Gen1 and covers the writes
  queued behind it that the copy already includes: they finish "covered by resync" without being
  sent to Gen2.
Each test ends with the compare tool finding Gen1 and Gen2 equal.
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

FAST = {"applier": {"backoff_base_ms": 50, "backoff_cap_ms": 1000, "breaker_failures": 3,
                    "breaker_probe_ms": 500, "resync_attempts": 2}}
BRK_OPEN = 'dualpipe_applier_breaker_open{upstream="gen2"}'
BRK_TRIPS = 'dualpipe_applier_breaker_trips_total{upstream="gen2"}'
G2_NONE = 'dualpipe_applier_upstream_answers_total{upstream="gen2",code="none"}'
COALESCED = "dualpipe_applier_coalesced_total"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Base(unittest.TestCase):
    def setUp(self):
        self.s = None

    def tearDown(self):
        if self.s:
            self.s.close()  # fails on a sanitizer report in the proxy's log

    def ok(self, r, status=(200, 201)):
        self.assertIn(r.status, status if isinstance(status, tuple) else (status,), r)
        return r

    def create(self, path, data, **kw):
        return self.ok(proxylib.write_data(self.s.proxy, "PUT", path, "CREATE", data, **kw), 201)

    def append(self, path, data, **kw):
        return self.ok(proxylib.write_data(self.s.proxy, "POST", path, "APPEND", data, **kw), 200)

    def equal(self, root):
        diffs = self.s.compare(root)
        self.assertEqual(diffs[:20], [], "Gen1 and Gen2 differ: %s" % json.dumps(self.s.proxy.status())[:2000])


class Storm(Base):
    def test_503_and_429_storm_is_retried_past(self):
        self.s = s = proxylib.Stack(config=FAST)
        s.gen2.fault("method=*,op=*,action=fail,status=503,retry_after=1,count=25")
        s.gen2.fault("method=PATCH,op=*,action=fail,status=429,retry_after=1,count=10")
        files = {}
        for i in range(6):
            path = "/storm/f%d" % i
            files[path] = b"first-%d;" % i
            self.create(path, files[path], permission="640")
        for i in range(6):
            path = "/storm/f%d" % i
            more = b"more-%d" % i * (i + 1)
            self.append(path, more)
            files[path] += more
        s.wait_drained(60)
        st = s.proxy.status()
        self.assertEqual((st["resynced"], st["parked"]), (0, 0), st)
        c = s.gen2.counters()["faults"]
        self.assertEqual(c.get("fail"), 35, c)  # every injected failure was met, and retried past
        m = s.proxy.metrics()
        self.assertGreaterEqual(m.get('dualpipe_applier_retries_total{upstream="gen2"}', 0), 35, m)
        for path, data in files.items():
            self.assertEqual(s.g2_read(path), data, path)
        self.equal("/storm")


class Breaker(Base):
    def test_outage_opens_the_breaker_without_hammering(self):
        self.s = s = proxylib.Stack(config=FAST)
        p = s.proxy
        self.create("/brk/warm", b"before the outage")
        s.wait_drained(30)
        self.assertEqual(p.status()["breaker"], "closed")
        self.assertEqual(s.gen2.admin("POST", "/down?ms=0").status, 200)
        try:
            t0 = time.time()
            expect = {}
            for i in range(300):
                path = "/brk/d%d/f%d" % (i % 10, i)
                expect[path] = b"x%d" % i
                self.create(path, expect[path])
            for i in range(200):
                self.append("/brk/warm", b"+%d" % i)
            self.assertLess(time.time() - t0, 60, "writers must not wait for Gen2")
            deadline = time.time() + 20
            while p.status()["breaker"] != "open" and time.time() < deadline:
                time.sleep(0.1)
            st = p.status()
            self.assertEqual(st["breaker"], "open", st)
            self.assertGreater(int(st["pending"]), 100, st)
            m0 = p.metrics()
            self.assertEqual(m0.get(BRK_OPEN), 1, m0)
            self.assertGreaterEqual(m0.get(BRK_TRIPS, 0), 1, m0)
            # While open: a probe every breaker_probe_ms (500 ms), nothing else, and no busy loop.
            cpu0, t1 = cpu_seconds(p.proc.pid), time.time()
            time.sleep(5)
            window = time.time() - t1
            cpu = cpu_seconds(p.proc.pid) - cpu0
            m1 = p.metrics()
            sends = m1.get(G2_NONE, 0) - m0.get(G2_NONE, 0)
            self.assertLessEqual(sends, window / 0.5 + 4, "Gen2 was hammered while the breaker was open")
            self.assertGreaterEqual(sends, 3, "the breaker must keep probing")
            self.assertLess(cpu, 0.4 * window, "the proxy burns CPU while Gen2 is down (%.2f s)" % cpu)
            self.assertEqual(p.status()["breaker"], "open")
        finally:
            self.assertEqual(s.gen2.admin("POST", "/up").status, 200)
        s.wait_drained(60)
        st = p.status()
        self.assertEqual((st["breaker"], st["resynced"], st["parked"]), ("closed", 0, 0), st)
        self.assertEqual(p.metrics().get(BRK_OPEN), 0)
        for path in list(expect)[:20]:
            self.assertEqual(s.g2_read(path), expect[path], path)
        self.assertEqual(s.g2_read("/brk/warm"), b"before the outage" + b"".join(b"+%d" % i for i in range(200)))
        self.equal("/brk")


class Refused(Base):
    def test_create_refused_for_good_is_resynced(self):
        self.s = s = proxylib.Stack(config=FAST)
        s.gen2.fault("method=PUT,op=create-file,action=fail,status=400,count=1")
        self.create("/ref/f", b"Gen2 said 400 to this create", permission="600")
        js = s.wait_drained(30)
        st = s.proxy.status()
        self.assertEqual((st["resynced"], st["parked"]), (1, 0), st)
        f = st["failures"][0]
        self.assertEqual((f["op"], f["path"]), ("CREATE", "/ref/f"), f)
        self.assertIn("400", f["detail"])
        self.assertIn("resynced", f["detail"])
        self.assertEqual(int(js["journal"]["parked"]), 0, js)
        self.assertEqual(s.g2_read("/ref/f"), b"Gen2 said 400 to this create")
        self.equal("/ref")

    def test_append_contradicting_gen2_is_resynced(self):
        self.s = s = proxylib.Stack(config=FAST)
        self.create("/ref2/f", b"abc")
        s.wait_drained(30)
        # Gen2 drifts behind the proxy's back: 4 bytes more than Gen1 has.
        self.assertEqual(s.g2("PATCH", "/ref2/f", "action=append&position=3", body=b"XYZW").status, 202)
        self.assertEqual(s.g2("PATCH", "/ref2/f", "action=flush&position=7").status, 200)
        self.append("/ref2/f", b"def", offset=3)
        s.wait_drained(30)
        st = s.proxy.status()
        self.assertEqual((st["resynced"], st["parked"]), (1, 0), st)
        self.assertIn("Gen2 holds 7 bytes but Gen1 appended at offset 3", st["failures"][0]["detail"])
        self.assertEqual(s.g2_read("/ref2/f"), b"abcdef")
        # the file keeps mirroring normally afterwards
        self.append("/ref2/f", b"ghi", offset=6)
        s.wait_drained(30)
        self.assertEqual(s.g2_read("/ref2/f"), b"abcdefghi")
        self.assertEqual(s.proxy.status()["resynced"], 1)
        self.equal("/ref2")

    def test_resync_that_keeps_failing_is_parked_then_retried(self):
        self.s = s = proxylib.Stack(config=FAST)
        s.gen2.fault("method=PUT,op=create-file,action=fail,status=400,count=3")  # the create + 2 copies
        self.create("/park/f", b"parked for a while")
        js = s.wait_drained(30, allow_parked=True)
        self.assertEqual(int(js["journal"]["parked"]), 1, js)
        st = s.proxy.status()
        self.assertEqual((st["resynced"], st["parked"]), (0, 1), st)
        self.assertIn("resync failed", st["failures"][0]["detail"])
        self.assertEqual(s.g2("HEAD", "/park/f").status, 404)
        self.assertEqual(s.gen2.counters()["faults"]["fail"], 3)
        r = s.proxy.admin("POST", "/admin/journal/retry?all=1")
        self.assertEqual(r.status, 200, r)
        js = s.wait_drained(30)
        self.assertEqual(int(js["journal"]["parked"]), 0, js)
        self.assertEqual(s.proxy.status()["resynced"], 1)
        self.assertEqual(s.g2_read("/park/f"), b"parked for a while")
        self.equal("/park")


class Coalescing(Base):
    def test_small_appends_to_one_file_share_flushes(self):
        self.s = s = proxylib.Stack(config=FAST)
        self.create("/co/plain", b"")
        self.create("/co/offs", b"")
        s.wait_drained(30)
        commits = lambda c: c.get("PATCH flush", 0) + c.get("PATCH append-flush", 0)  # noqa: E731
        flushes0 = commits(s.gen2.counters()["requests"])
        s.gen2.fault("method=*,op=*,action=latency,latency_ms=200,count=100000")
        plain, offs = b"", b""
        n = 120
        for i in range(n):
            piece = b"line %03d of the plain log\n" % i
            self.append("/co/plain", piece)
            plain += piece
            piece = b"<%d>" % i * (1 + i % 5)
            self.append("/co/offs", piece, offset=len(offs), syncFlag="DATA" if i % 3 else "METADATA")
            offs += piece
        self.append("/co/offs", b"", offset=len(offs), syncFlag="CLOSE")
        s.wait_drained(120)
        s.gen2.admin("DELETE", "/faults")
        st = s.proxy.status()
        self.assertEqual((st["resynced"], st["parked"]), (0, 0), st)
        m = s.proxy.metrics()
        self.assertGreater(m.get(COALESCED, 0), 0, m)
        flushes = commits(s.gen2.counters()["requests"]) - flushes0
        self.assertLess(flushes, 2 * n, "appends were not coalesced (%d flushes for %d appends)" % (flushes, 2 * n + 1))
        self.assertEqual(s.g2_read("/co/plain"), plain)
        self.assertEqual(s.g2_read("/co/offs"), offs)
        self.equal("/co")


class Covers(Base):
    def test_resync_covers_the_writes_queued_behind_it(self):
        self.s = s = proxylib.Stack(config=FAST)
        p = s.proxy
        self.assertEqual(s.gen2.admin("POST", "/down?ms=0").status, 200)
        try:
            self.create("/cov/f", b"created")
            r = p.admin("POST", "/admin/journal/resync?path=/cov")
            self.assertEqual(r.status, 200, r)
            self.append("/cov/f", b"+appended")
            self.ok(p.webhdfs("PUT", "/cov/d", "MKDIRS", permission="750"), 200)
            self.ok(p.webhdfs("PUT", "/cov/f", "SETPERMISSION", permission="604"), 200)
            time.sleep(1)
        finally:
            self.assertEqual(s.gen2.admin("POST", "/up").status, 200)
        s.wait_drained(60)
        log = p.log_since_start()
        covered = log.count("covered by resync of /cov")
        self.assertEqual(covered, 3, "the APPEND, MKDIRS and SETPERMISSION behind the resync are covered")
        st = p.status()
        self.assertEqual(st["parked"], 0, st)
        self.assertEqual(s.g2_read("/cov/f"), b"created+appended")
        self.equal("/cov")


if __name__ == "__main__":
    unittest.main(verbosity=2)
