"""Phase switches as real migrations meet them (issue 13), beside test_phase_switch.py:

- A protected Gen1 (named bearer tokens: writers carry W; the proxy its own identity P through gen1.auth, or no
  identity of its own, mode none): gen1-primary -> gen2-primary -> gen1-primary under write load. No writer gets an
  error, Gen1 refuses no request of the switches, the drains or the mirror, each append is applied once on Gen1 (by
  W's or P's requests), and both stores end equal.
- A big file (64 MiB in 1 MiB appends) appended through both switches, beside a directory of 2,000 entries that
  grows during the switch to gen2-primary: listed through the proxy in gen2-primary (LISTSTATUS pages and
  LISTSTATUS_BATCH) it holds the entries Gen1 lists, with the same type, length and permission; the big file ends
  byte-equal on both sides with each of its appends applied once on Gen1.
- A Gen2 answer lost in the middle of the drain toward Gen2 while a switch to gen2-primary waits for it: an append
  Gen2 carried out and then dropped the connection instead of answering, and one Gen2 answered only after the
  proxy's gen2.timeout_ms. The switch ends done (or aborted within switch_timeout_ms, and done when asked again),
  both stores end equal, no record is twice in any file and nothing was parked.
"""
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402
import test_phase_switch as tps  # noqa: E402

MIB = 1 << 20
WTOK = "writer-token-W-migration"
PTOK = "proxy-token-P-migration"


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def delta(before, after):
    return proxylib.counter_delta(before, after)


class ProtectedGen1(unittest.TestCase):
    """Gen1 accepts only the tokens W (the writers) and P (the proxy's own identity)."""

    def stack(self, proxy_auth):
        tmp = tempfile.mkdtemp(prefix="dp-phprot-")
        self.addCleanup(shutil.rmtree, tmp, True)
        tokens = os.path.join(tmp, "emu-tokens")
        write_file(tokens, "W %s\nP %s\n" % (WTOK, PTOK))
        over = {}
        if proxy_auth:
            ptok = os.path.join(tmp, "proxy-token")
            write_file(ptok, PTOK + "\n")
            over = {"gen1": {"auth": {"mode": "bearer", "token_file": ptok}}}
        s = proxylib.Stack(config=proxylib.deep_merge(tps.cfg(), over),
                           gen1_kw={"extra_args": ["--token-file", tokens]})
        self.addCleanup(s.close)
        s.gen1.token = WTOK  # the test's own direct Gen1 calls (compare) are a writer's
        return s

    def round_trip(self, proxy_auth):
        s = self.stack(proxy_auth)
        auth = {"Authorization": "Bearer " + WTOK}
        # the protection is real: a writer without a token is refused by Gen1 (relayed in gen1-primary)
        r = proxylib.write_data(s.proxy, "PUT", "/pg-none", "CREATE", b"x", overwrite="true")
        self.assertEqual(r.status, 401, r)
        r = s.proxy.webhdfs("PUT", "/pg", "MKDIRS", headers=auth, permission="755")
        self.assertEqual(r.status, 200, r)
        s.wait_drained(30)
        before = s.gen1.counters()
        load = tps.Load(s, "/pg", [s.proxy], nwriters=3, nracers=2, headers=auth)
        load.start()
        for to in ("gen2-primary", "gen1-primary"):
            time.sleep(1.0)
            out, _ = tps.switch(self, s.proxy, to)
            self.assertIn("done", out)
        time.sleep(0.5)
        load.finish(self)
        tps.same(self, s, "/pg")
        load.check_files(self)
        after = s.gen1.counters()
        ids0, ids1 = before.get("identities", {}), after.get("identities", {})

        def ops(name):
            return delta(ids0.get(name, {}).get("ops", {}), ids1.get(name, {}).get("ops", {}))

        self.assertEqual(ops("(refused)"), {}, "Gen1 refused requests of the switches or the mirror")
        w, p = ops("W"), ops("P")
        n = load.appends()
        # each append once on Gen1: the writers' own in gen1-primary, the mirror's in gen2-primary
        self.assertEqual(w.get("POST APPEND", 0) + p.get("POST APPEND", 0), n, (w, p, n))
        self.assertGreater(w.get("POST APPEND", 0), 0, w)
        if proxy_auth:
            self.assertGreater(p.get("POST APPEND", 0), 0, p)   # the mirror writes as P
        else:
            self.assertEqual(p, {}, p)                           # no identity of its own: never P
        st = s.proxy.status()
        self.assertEqual(st.get("mirror", {}).get("parked", 0), 0, st.get("mirror"))

    def test_proxy_identity_bearer(self):
        self.round_trip(True)

    def test_no_proxy_identity_writers_tokens(self):
        self.round_trip(False)


def list_pages(call, path, page):
    """Every entry of path through LISTSTATUS pages of page entries (listSize / listAfter)."""
    out, after = [], None
    for _ in range(10000):
        params = {"listSize": page}
        if after:
            params["listAfter"] = after
        r = call("GET", path, "LISTSTATUS", **params)
        assert r.status == 200, r
        fss = r.json()["FileStatuses"]
        items = fss.get("FileStatus", [])
        out += items
        after = fss.get("continuationToken") or None
        if not after or not items:
            return out
    raise AssertionError("LISTSTATUS of %s never ended" % path)


def list_batches(proxy, path):
    """Every entry of path through LISTSTATUS_BATCH (startAfter), as a Hadoop client lists."""
    out, after = [], None
    for _ in range(10000):
        params = {"startAfter": after} if after else {}
        r = proxy.webhdfs("GET", path, "LISTSTATUS_BATCH", **params)
        assert r.status == 200, r
        dl = r.json()["DirectoryListing"]
        batch = dl["partialListing"]["FileStatuses"]["FileStatus"]
        out += batch
        if dl["remainingEntries"] == 0 or not batch:
            return out
        after = batch[-1]["pathSuffix"]
    raise AssertionError("LISTSTATUS_BATCH of %s never ended" % path)


def entry(st):
    return (st["pathSuffix"], st["type"], int(st.get("length", 0)), st.get("permission"))


class BigAndWide(unittest.TestCase):
    ENTRIES = 2000
    BIG_MIB = 64

    def test_big_append_and_wide_listing_across_switches(self):
        s = tps.make_stack(self)
        p = s.proxy
        for d in ("/bw", "/bw/wide"):
            self.assertEqual(p.webhdfs("PUT", d, "MKDIRS", permission="755").status, 200)
        errors = []
        lock = threading.Lock()
        todo = iter(range(self.ENTRIES))
        made = []

        def create(i):
            r = proxylib.write_data(p, "PUT", "/bw/wide/e%05d" % i, "CREATE", b"%d" % i if i % 10 == 0 else b"",
                                    timeout=60, overwrite="false")
            with lock:
                (made if r.status == 201 else errors).append(i if r.status == 201 else (i, r.status, r.body[:200]))

        def creator():
            while not errors:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                create(i)

        t0 = time.time()
        threads = [threading.Thread(target=creator) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual(errors, [])
        print("%d entries created through the proxy in %.1f s" % (self.ENTRIES, time.time() - t0), flush=True)

        # the big file: BIG_MIB appends of 1 MiB, let go in steps so that some are sent before, during and after
        # each switch
        box = {"chunks": 0, "allowed": 8, "sha": hashlib.sha256(), "err": None}
        gate = threading.Condition()
        block = hashlib.sha256(b"big").digest() * (MIB // 32)

        def appender():
            r = proxylib.write_data(p, "PUT", "/bw/big", "CREATE", b"", overwrite="false")
            if r.status != 201:
                box["err"] = ("CREATE", r.status, r.body[:200])
                return
            while box["chunks"] < self.BIG_MIB:
                with gate:
                    gate.wait_for(lambda: box["chunks"] < box["allowed"], 120)
                body = box["chunks"].to_bytes(8, "big") + block[8:]
                r = proxylib.write_data(p, "POST", "/bw/big", "APPEND", body, timeout=120)
                if r.status != 200:
                    box["err"] = ("APPEND", box["chunks"], r.status, r.body[:200])
                    return
                box["sha"].update(body)
                box["chunks"] += 1

        def allow(n):
            with gate:
                box["allowed"] = n
                gate.notify_all()

        def wait_chunks(n):
            deadline = time.time() + 120
            while box["chunks"] < n and box["err"] is None and time.time() < deadline:
                time.sleep(0.02)
            self.assertIsNone(box["err"])

        g1_before = s.g1_counters()
        t0 = time.time()
        ta = threading.Thread(target=appender)
        ta.start()
        # more entries made while the switch holds, drains and flips (some in each phase)
        more = iter(range(self.ENTRIES, self.ENTRIES + 200))

        def late_creator():
            while not errors:
                with lock:
                    i = next(more, None)
                if i is None:
                    return
                create(i)
                time.sleep(0.01)

        try:
            wait_chunks(8)
            allow(40)
            late = [threading.Thread(target=late_creator) for _ in range(2)]
            for t in late:
                t.start()
            out, _ = tps.switch(self, p, "gen2-primary")
            self.assertIn("done", out)
            for t in late:
                t.join(120)
            self.assertEqual(errors, [])
            print("switch to gen2-primary done at chunk %d, %.1f s" % (box["chunks"], time.time() - t0), flush=True)
            # in gen2-primary the proxy lists Gen2: the same entries as Gen1 once the mirror caught up (the big
            # file's appends go on meanwhile, so the journal as a whole is not drained here)
            deadline = time.time() + 60
            while True:
                g1 = [entry(x) for x in list_pages(s.g1, "/bw/wide", 500)]
                if len(g1) == self.ENTRIES + 200 or time.time() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual(len(g1), self.ENTRIES + 200)
            self.assertEqual([x[0] for x in g1], sorted("e%05d" % i for i in made))
            got = [entry(x) for x in list_pages(p.webhdfs, "/bw/wide", 1000)]
            self.assertEqual(got, g1, "LISTSTATUS through the proxy in gen2-primary differs from Gen1's")
            got = [entry(x) for x in list_batches(p, "/bw/wide")]
            self.assertEqual(got, g1, "LISTSTATUS_BATCH through the proxy in gen2-primary differs from Gen1's")
            r = p.webhdfs("GET", "/bw/wide", "GETCONTENTSUMMARY")
            self.assertEqual(r.json()["ContentSummary"]["fileCount"], self.ENTRIES + 200, r)
            wait_chunks(40)
            print("listings compared at chunk %d, %.1f s" % (box["chunks"], time.time() - t0), flush=True)
            allow(self.BIG_MIB)
            out, _ = tps.switch(self, p, "gen1-primary")
            self.assertIn("done", out)
            print("rollback done at chunk %d, %.1f s" % (box["chunks"], time.time() - t0), flush=True)
        finally:
            allow(self.BIG_MIB)
            ta.join(300)
        self.assertIsNone(box["err"])
        self.assertFalse(ta.is_alive())
        p.wait_drained(120)
        n = box["chunks"]
        self.assertEqual(n, self.BIG_MIB)
        want = box["sha"].hexdigest()
        for side, data in (("gen1", s.g1_read("/bw/big")), ("gen2", s.g2_read("/bw/big"))):
            self.assertEqual(len(data), n * MIB, side)
            self.assertEqual(hashlib.sha256(data).hexdigest(), want, side)
        d = delta(g1_before, s.g1_counters())
        self.assertEqual(d.get("POST APPEND", 0), n, d)  # each append once on Gen1 (writer's or mirror's)
        self.assertEqual(s.compare("/bw/big"), [])


class LostGen2Answer(unittest.TestCase):
    """The drain toward Gen2 meets an append whose answer is lost while a switch waits for it."""

    def run_case(self, rule, gen2_timeout_ms=None):
        over = {"gen2": {"timeout_ms": gen2_timeout_ms}} if gen2_timeout_ms else {}
        s = tps.make_stack(self, config=over, switch_timeout_ms=15000)
        p = s.proxy
        self.assertEqual(p.webhdfs("PUT", "/lg", "MKDIRS", permission="755").status, 200)
        files = ["/lg/f%d" % i for i in range(4)]
        for f in files:
            r = proxylib.write_data(p, "PUT", f, "CREATE", tps.record(9, 0, 64), overwrite="false")
            self.assertEqual(r.status, 201, r)
        s.wait_drained(30)
        g1_before = s.g1_counters()
        # Gen2 away for a moment: appends pile up in the journal, owed to Gen2
        self.assertEqual(s.gen2.admin("POST", "/down?ms=600000").status, 200)
        acked = {f: [(9, 0)] for f in files}
        for n in range(1, 6):
            for w, f in enumerate(files):
                r = proxylib.write_data(p, "POST", f, "APPEND", tps.record(w, n, 200 + 50 * n))
                self.assertEqual(r.status, 200, r)
                acked[f].append((w, n))
        self.assertGreater(p.journal()["journal"]["pending"], 0)
        r = p.admin("POST", "/admin/phase/set?to=gen2-primary")
        self.assertEqual(r.status, 202, r)
        held = {}

        def writer():   # arrives while the switch holds writes: answered in the phase the switch ends in
            held["r"] = proxylib.write_data(p, "POST", files[0], "APPEND", tps.record(0, 6, 99), timeout=60)

        t = threading.Thread(target=writer)
        time.sleep(0.2)
        t.start()
        # the drain toward Gen2 starts once Gen2 is back, and its first append meets the fault
        s.gen2.fault(rule)
        self.assertEqual(s.gen2.admin("POST", "/up").status, 200)
        deadline = time.time() + 40
        while tps.status(p)["switch"]["state"] == "running":
            self.assertLess(time.time(), deadline, tps.status(p))
            time.sleep(0.05)
        sw = tps.status(p)["switch"]
        t.join(60)
        self.assertIn(sw["state"], ("done", "aborted"), sw)
        if sw["state"] == "aborted":   # within switch_timeout_ms, nothing changed; asked again it completes
            self.assertEqual(tps.status(p)["phase"], "gen1-primary")
            print("switch aborted (%s); asked again" % sw["reason"], flush=True)
            tps.switch(self, p, "gen2-primary")
        self.assertEqual(tps.status(p)["phase"], "gen2-primary")
        self.assertEqual(held["r"].status, 200, held["r"])
        acked[files[0]].append((0, 6))
        r = proxylib.write_data(p, "POST", files[1], "APPEND", tps.record(1, 6, 99))   # Gen2 answers now
        self.assertEqual(r.status, 200, r)
        acked[files[1]].append((1, 6))
        deadline = time.time() + 20   # the late answer's request has ended on Gen2 (landed or refused)
        while s.gen2.counters().get("in_flight", 0) and time.time() < deadline:
            time.sleep(0.05)
        tps.same(self, s, "/lg")
        for f in files:
            for side, data in (("gen1", s.g1_read(f)), ("gen2", s.g2_read(f))):
                self.assertEqual(tps.parse(data), acked[f], "%s on %s" % (f, side))
        # each append once on Gen1 (the writers' in gen1-primary, the mirror's after); on Gen2 the lost one was
        # sent again, and the files above hold it once
        n = sum(len(v) - 1 for v in acked.values())
        self.assertEqual(delta(g1_before, s.g1_counters()).get("POST APPEND", 0), n)
        fired = [x["fired"] for x in s.gen2.admin("GET", "/faults").json()["rules"]]
        self.assertEqual(fired, [1], "the fault met the drain once")
        self.assertEqual(p.journal()["journal"].get("parked", 0), 0)
        st = p.status()
        print("%s: switch %s after %d ms; resynced %s" % (rule, sw["state"], sw["ended_ms"] - sw["started_ms"],
                                                           st.get("resynced")), flush=True)

    def test_append_carried_out_answer_lost(self):
        self.run_case("method=PATCH,op=append,action=lose,count=1")

    def test_append_answered_after_the_proxys_timeout(self):
        self.run_case("method=PATCH,op=append,action=latency,latency_ms=2500,count=1", gen2_timeout_ms=1000)


if __name__ == "__main__":
    unittest.main()
