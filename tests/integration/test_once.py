"""test_once: issue 11 items 1-3 — a write reaches Gen1 at most once, a lost answer is settled by asking
Gen1, and concurrent APPENDs of one file land in the same order on both stores.

Real processes on loopback: the Gen1 and Gen2 emulators and dualpipe (proxylib Stack), with dp_relay
(tests/tools) between the proxy and Gen1 (namenode and, in the hadoop dialect, datanode: the proxy's
gen1.datanode_rewrite points the data step at a second relay). The relay keeps the proxy's connections
alive across requests, so the faulted request travels on a reused keep-alive connection, the case in
which libcurl used to send it again. Faults, each for one request:

  reset   the relay forwards the write, reads Gen1's whole answer, then resets the proxy's connection
  cut     ... sends half of Gen1's answer, then resets
  late    the relay holds the write past gen1.timeout_ms, then forwards it (Gen1 applies it late)
  slow    Gen1 applies at once, the relay holds its answer past gen1.timeout_ms
  lost    the relay resets the connection without forwarding (Gen1 never sees the write)
  kill -9 the proxy dies while the relay holds its APPEND; Gen1 applies it after the restart, and the
          recovered record's resync waits gen1.settle_ms, so Gen2 gets the late bytes too

For APPEND, CREATE, RENAME, DELETE, MKDIRS and SETPERMISSION each case checks what the writer got
(Gen1's answer when the check shows the write applied, 503 "not applied" or 502/504 "unknown"
otherwise), that the Gen1 emulator applied the op exactly as often as the relay forwarded it (once,
never twice), that Gen2 got no more appends than writes it owed, and that both stores are equal after
the applier drained. A write held by a settle keeps the path's next write waiting (the late APPEND is
followed by a second writer's APPEND at the next offset, which must land after it on both stores).
The last test sends 8 writers x 20 concurrent APPENDs (no offset) to one file: both stores must hold
the same bytes in the same order.

Runs on the journal.io backend given by DP_JOURNAL_IO (CMake registers it twice: default and threads;
the threads variant leaves out the hadoop dialect's cases, which do not depend on the I/O backend).
"""
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import dp_relay  # noqa: E402
import proxylib  # noqa: E402

TIMEOUT_MS = 800
SETTLE_MS = 1500  # Gen1 applies a late write 0.4 s past the timeout: well inside the settle time
LATE_MS = TIMEOUT_MS + 400
FAST_APPLIER = {"applier": {"backoff_base_ms": 100, "backoff_cap_ms": 1000, "breaker_probe_ms": 300}}


def delta(before, after):
    return proxylib.counter_delta(before, after)


class OnceBase:
    """The cases, run once per Gen1 dialect (OnceAdls, OnceHadoop)."""
    dialect = "adls"

    @classmethod
    def setUpClass(cls):
        cls.nn = cls.dn = None

        def config(st):
            cls.nn = dp_relay.Relay(st.gen1.url)
            over = {"gen1": {"endpoint": cls.nn.url, "timeout_ms": TIMEOUT_MS, "settle_ms": SETTLE_MS}}
            if st.gen1.datanode_url:
                cls.dn = dp_relay.Relay(st.gen1.datanode_url)
                dn = st.gen1.datanode_url.split("//", 1)[1]
                over["gen1"]["datanode_rewrite"] = {dn: cls.dn.addr}
            return proxylib.deep_merge(over, FAST_APPLIER)

        try:
            cls.s = proxylib.Stack(dialect=cls.dialect, config=config)
        except BaseException:
            for r in (cls.nn, cls.dn):
                if r:
                    r.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.s.close()
        finally:
            for r in (cls.nn, cls.dn):
                if r:
                    r.close()

    # ---- helpers ----
    def data_relay(self):
        """The relay the data step of CREATE/APPEND goes through."""
        return self.dn or self.nn

    def call(self, method, path, op, body=None, **params):
        if op in ("CREATE", "APPEND"):
            return proxylib.write_data(self.s.proxy, method, path, op, body or b"", two_step=False, **params)
        return self.s.proxy.webhdfs(method, path, op, body, **params)

    def create(self, path, data):
        r = self.call("PUT", path, "CREATE", data, overwrite="true")
        self.assertEqual(r.status, 201, r)

    def faulted(self, relay, action, method, op, fn, **kw):
        """Run fn with one fault on relay; (response, Gen1 emulator counter delta, relay forwards of op)."""
        key = "%s %s" % (method, op)
        relays = [x for x in (self.nn, self.dn) if x]
        g1 = self.s.g1_counters()
        fwd = relay.count("forwarded", key)
        total = sum(x.count("forwarded", key) for x in relays)
        relay.add(action, method=method, op=op, **kw)
        try:
            r = fn()
        finally:
            relay.clear()
        g1d = delta(g1, self.s.g1_counters())
        # what Gen1 got of this op is exactly what the proxy sent through the relays (a hadoop data op
        # counts its namenode step too): nothing reached Gen1 by another way
        self.assertEqual(g1d.get(key, 0), sum(x.count("forwarded", key) for x in relays) - total, g1d)
        return r, g1d, relay.count("forwarded", key) - fwd

    def settled(self, verdict):
        return self.s.proxy.metrics().get('dualpipe_gen1_unknown_outcomes_total{verdict="%s"}' % verdict, 0)

    def assert_once(self, g1d, forwarded, key, times=1):
        """The proxy sent the write (its data step) to Gen1 `times` times: never twice."""
        self.assertEqual(forwarded, times, "relay forwarded %s %d times (Gen1 counters %r)" % (key, forwarded, g1d))

    def assert_same(self, root):
        self.s.wait_drained(timeout=30)
        self.assertEqual(self.s.compare(root), [])

    # ---- item 1: a reset after Gen1 answered ----
    def test_append_reset_after_answer(self):
        p = "/once/%s/append-reset" % self.dialect
        self.create(p, b"A" * 4096)
        self.s.wait_drained(timeout=30)
        self.call("GET", p, "GETFILESTATUS")  # the connection is in the pool: the APPEND reuses it
        g2 = self.s.g2_counters()
        extra = {"offset": 4096} if self.dialect == "adls" else {}
        r, g1d, fwd = self.faulted(self.data_relay(), "reset_after_answer", "POST", "APPEND",
                                   lambda: self.call("POST", p, "APPEND", b"B" * 4096, **extra))
        self.assert_once(g1d, fwd, "POST APPEND")
        self.assertEqual(self.s.g1_read(p), b"A" * 4096 + b"B" * 4096)
        if extra:
            self.assertEqual(r.status, 200, r)  # the offset tells: applied, Gen1's answer
        else:
            self.assertEqual(r.status, 502, r)  # no offset: it cannot be told, the writer is told so
            self.assertIn(b"unknown", r.body)
        self.assert_same(p)
        self.assertEqual(self.s.g2_read(p.lstrip("/")), b"A" * 4096 + b"B" * 4096)
        self.assertLessEqual(delta(g2, self.s.g2_counters()).get("PATCH append", 0), 1)

    def test_append_cut_mid_answer(self):
        p = "/once/%s/append-cut" % self.dialect
        self.create(p, b"a" * 100)
        extra = {"offset": 100} if self.dialect == "adls" else {}
        r, g1d, fwd = self.faulted(self.data_relay(), "cut", "POST", "APPEND",
                                   lambda: self.call("POST", p, "APPEND", b"b" * 50, **extra))
        self.assert_once(g1d, fwd, "POST APPEND")
        self.assertIn(r.status, (200,) if extra else (502,), r)
        self.assert_same(p)

    def test_create_reset_after_answer(self):
        p = "/once/%s/create-reset" % self.dialect
        r, g1d, fwd = self.faulted(self.data_relay(), "reset_after_answer", "PUT", "CREATE",
                                   lambda: self.call("PUT", p, "CREATE", b"C" * 3000, overwrite="true"))
        self.assert_once(g1d, fwd, "PUT CREATE")
        self.assertEqual(r.status, 201, r)
        self.assert_same(p)

    def test_rename_reset_after_answer(self):
        d = "/once/%s/rn" % self.dialect
        self.create(d + "/src", b"R" * 10)
        before = self.settled("applied")
        r, g1d, fwd = self.faulted(self.nn, "reset_after_answer", "PUT", "RENAME",
                                   lambda: self.call("PUT", d + "/src", "RENAME", destination=d + "/dst"))
        self.assert_once(g1d, fwd, "PUT RENAME")
        self.assertEqual((r.status, r.json()), (200, {"boolean": True}), r)  # never {"boolean": false}
        self.assertGreaterEqual(self.settled("applied"), before + 1)
        self.assert_same(d)
        self.assertIsNone(self.s.g1_status(d + "/src"))

    def test_delete_reset_after_answer(self):
        d = "/once/%s/del" % self.dialect
        self.create(d + "/f", b"D")
        r, g1d, fwd = self.faulted(self.nn, "reset_after_answer", "DELETE", "DELETE",
                                   lambda: self.call("DELETE", d + "/f", "DELETE"))
        self.assert_once(g1d, fwd, "DELETE DELETE")
        self.assertEqual((r.status, r.json()), (200, {"boolean": True}), r)
        self.assert_same(d)

    def test_mkdirs_reset_after_answer(self):
        d = "/once/%s/mk/a/b" % self.dialect
        r, g1d, fwd = self.faulted(self.nn, "reset_after_answer", "PUT", "MKDIRS",
                                   lambda: self.call("PUT", d, "MKDIRS", permission="750"))
        self.assert_once(g1d, fwd, "PUT MKDIRS")
        self.assertEqual((r.status, r.json()), (200, {"boolean": True}), r)
        self.assert_same("/once/%s/mk" % self.dialect)

    def test_setpermission_reset_after_answer(self):
        p = "/once/%s/perm" % self.dialect
        self.create(p, b"P")
        r, g1d, fwd = self.faulted(self.nn, "reset_after_answer", "PUT", "SETPERMISSION",
                                   lambda: self.call("PUT", p, "SETPERMISSION", permission="600"))
        self.assert_once(g1d, fwd, "PUT SETPERMISSION")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.s.g1_status(p)["permission"], "600")
        self.assert_same(p)

    def test_delete_answer_late(self):
        # Gen1 applies at once and answers after gen1.timeout_ms: the first look already shows it done
        d = "/once/%s/dlate" % self.dialect
        self.create(d + "/f", b"L")
        r, g1d, fwd = self.faulted(self.nn, "delay_after", "DELETE", "DELETE",
                                   lambda: self.call("DELETE", d + "/f", "DELETE"), delay_ms=TIMEOUT_MS + 500)
        self.assert_once(g1d, fwd, "DELETE DELETE")
        self.assertEqual((r.status, r.json()), (200, {"boolean": True}), r)
        self.assertEqual(self.s.proxy.status()["order"]["settling"], 0)
        self.assert_same(d)

    # ---- item 1, the other side: the write never reached Gen1 ----
    def test_rename_lost_before_gen1(self):
        d = "/once/%s/rnlost" % self.dialect
        self.create(d + "/src", b"L")
        t0 = time.time()
        r, g1d, fwd = self.faulted(self.nn, "reset_before", "PUT", "RENAME",
                                   lambda: self.call("PUT", d + "/src", "RENAME", destination=d + "/dst"))
        self.assert_once(g1d, fwd, "PUT RENAME", times=0)
        self.assertEqual(r.status, 503, r)  # asked after the settle time: not applied, retry
        self.assertIn(b"not applied", r.body)
        self.assertGreaterEqual(time.time() - t0, SETTLE_MS / 1000.0 * 0.9)
        self.assertIsNotNone(self.s.g1_status(d + "/src"))
        self.assert_same(d)

    # ---- item 2: Gen1 applies the write after gen1.timeout_ms ----
    def test_append_applied_late_holds_the_path(self):
        p = "/once/%s/late-append" % self.dialect
        self.create(p, b"x" * 1000)
        extra1 = {"offset": 1000} if self.dialect == "adls" else {}
        extra2 = {"offset": 1500} if self.dialect == "adls" else {}
        out = {}

        def second():
            time.sleep(0.3)  # the first is out at Gen1 (held by the relay) by now
            out["second"] = self.call("POST", p, "APPEND", b"z" * 20, **extra2)

        t = threading.Thread(target=second)
        relay = self.data_relay()
        fwd0 = relay.count("forwarded", "POST APPEND")
        relay.add("delay_before", method="POST", op="APPEND", delay_ms=LATE_MS)
        try:
            t.start()
            r = self.call("POST", p, "APPEND", b"y" * 500, **extra1)
        finally:
            t.join(30)
            relay.clear()
        if extra1:
            self.assertEqual(r.status, 200, r)  # applied late: the check after the settle time saw it
        else:
            # no offset: growth since the first look tells (200), unless that look came after the late
            # write landed (a slow machine): then it cannot be told (504), and the path is resynced
            self.assertIn(r.status, (200, 504), r)
        self.assertEqual(out["second"].status, 200, out["second"])
        # the second APPEND waited for the first to be settled: it landed after it, at its offset
        self.assertEqual(self.s.g1_read(p), b"x" * 1000 + b"y" * 500 + b"z" * 20)
        self.assertEqual(relay.count("forwarded", "POST APPEND") - fwd0, 2)  # each sent once
        self.assert_same(p)
        self.assertEqual(self.s.g2_read(p.lstrip("/")), b"x" * 1000 + b"y" * 500 + b"z" * 20)

    def test_create_applied_late(self):
        p = "/once/%s/late-create" % self.dialect
        r, g1d, fwd = self.faulted(self.data_relay(), "delay_before", "PUT", "CREATE",
                                   lambda: self.call("PUT", p, "CREATE", b"late" * 100, overwrite="true"),
                                   delay_ms=LATE_MS)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(fwd, 1)
        self.assert_same(p)
        self.assertEqual(self.s.g2_read(p.lstrip("/")), b"late" * 100)


class OnceAdls(OnceBase, unittest.TestCase):
    dialect = "adls"

    def test_kill9_while_gen1_holds_the_write(self):
        # The proxy dies while its APPEND is still on its way to Gen1, which applies it after the
        # restart. Recovery resyncs the in-doubt record, but only gen1.settle_ms after the start, so the
        # copy sees the late bytes (copied at once, Gen2 would keep the old length for good).
        p = "/once/adls/kill9"
        self.create(p, b"k" * 1000)
        self.s.wait_drained(timeout=30)
        relay = self.data_relay()
        fwd0 = relay.count("forwarded", "POST APPEND")
        relay.add("delay_before", method="POST", op="APPEND", delay_ms=1200)
        box = {}

        def append():
            try:
                box["r"] = self.call("POST", p, "APPEND", b"l" * 300, offset=1000)
            except Exception as e:  # noqa: BLE001 - the proxy dies under the writer
                box["r"] = e

        t = threading.Thread(target=append)
        t.start()
        time.sleep(0.3)
        t0 = time.time()
        self.s.proxy.restart(kill=True)
        t.join(30)
        relay.clear()
        self.assertLess(time.time() - t0, 1.2, "the restart took longer than the relay holds the write")
        deadline = time.time() + 10
        while relay.count("forwarded", "POST APPEND") == fwd0 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(relay.count("forwarded", "POST APPEND") - fwd0, 1)
        self.assertEqual(self.s.g1_read(p), b"k" * 1000 + b"l" * 300)
        self.assert_same(p)
        self.assertEqual(self.s.g2_read(p.lstrip("/")), b"k" * 1000 + b"l" * 300)


@unittest.skipIf(proxylib.JOURNAL_IO == "threads",
                 "the thread-pool variant runs the adls cases only: the dialect is above the I/O backend, and "
                 "the default variant runs both dialects (CI time)")
class OnceHadoop(OnceBase, unittest.TestCase):
    dialect = "hadoop"


class ConcurrentAppends(unittest.TestCase):
    """Item 3: 8 writers x 20 APPENDs (no offset) to one file at once: same bytes, same order."""

    def test_eight_writers_twenty_appends(self):
        s = proxylib.Stack(dialect="adls", config=FAST_APPLIER)
        try:
            p = "/once/concurrent"
            r = proxylib.write_data(s.proxy, "PUT", p, "CREATE", b"", overwrite="true")
            self.assertEqual(r.status, 201, r)
            s.wait_drained(timeout=30)
            # Gen1 answers some appends late, as a busy service does: without the per-path fence the
            # writes overtake each other at Gen1 and land in another order than the journal's
            s.gen1.fault("method=POST,op=APPEND,action=latency,latency_ms=15,fraction=0.3")
            before = proxylib.snapshot_counters(s)
            errors = []
            barrier = threading.Barrier(8)

            def writer(w):
                barrier.wait()
                for i in range(20):
                    body = ("w%d-%02d|" % (w, i)).encode() * 8
                    rr = proxylib.write_data(s.proxy, "POST", p, "APPEND", body)
                    if rr.status != 200:
                        errors.append((w, i, rr.status))

            ts = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            self.assertEqual(errors, [])
            s.wait_drained(timeout=30)
            g1 = s.g1_read(p)
            self.assertEqual(len(g1), 8 * 20 * 48)
            self.assertEqual(s.g2_read(p.lstrip("/")), g1)  # same order, not only the same bytes
            self.assertEqual(s.compare("/once"), [])
            g1d = proxylib.counter_delta(before["gen1"], s.g1_counters())
            g2d = proxylib.counter_delta(before["gen2"], s.g2_counters())
            self.assertEqual(g1d.get("POST APPEND", 0), 160, g1d)
            self.assertLessEqual(g2d.get("PATCH append", 0), 160, g2d)  # none twice (some coalesced)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
