"""Switching phases at run time (`dualpipe phase`), under write load.

- gen1-primary -> gen2-primary -> gen1-primary (rollback) -> gen2-primary while writers append to their
  own files and race on a shared one: no writer gets an error (held writes wait, they are not refused),
  every acknowledged record is on both sides exactly once and in each writer's order, both stores are
  equal after each switch's drain, and each store applied each append once (emulator counters).
  The writer-visible pause of each switch is printed (the number issue 14 reports, not asserted).
- A switch whose drain cannot finish (Gen2 down) aborts at phase.switch_timeout_ms: nothing changed,
  held writes ran in the old phase, and the backlog drains once Gen2 is back.
- kill -9 in the middle of a switch: the restarted proxy lands in the old phase (the switch never
  completed), takes writes again, and both stores converge.
- The README's cutover walked: gen2-primary, `dualpipe verify /` equal, gen2-only without --force, Gen1
  stopped, writers and readers still served.
- Bad inputs: an unknown phase, gen2-only straight from gen1-primary, gen2-only without a clean verify
  (refused with the reason; --force enters it), a second switch while one runs (409), leaving gen2-only.
- Three proxies of one fleet (phase.fleet) on one pair of stores, each with writers: a switch asked of
  one moves all three, a rollback asked of another moves them back, and the stores end equal; a proxy
  that cannot read the fleet's record refuses writes with 503 and the reason.
"""
import json
import os
import random
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402
import test_gen2_primary  # noqa: E402

FAST = {"backoff_base_ms": 50, "backoff_cap_ms": 400, "breaker_probe_ms": 200}


def cfg(phase="gen1-primary", **phase_over):
    ph = {"initial": phase, "switch_timeout_ms": 20000, "poll_ms": 100}
    ph.update(phase_over)
    return {"phase": ph, "applier": FAST, "log": {"level": "info"}, "shutdown": {"drain_ms": 300}}


def make_stack(tc, dialect="adls", phase="gen1-primary", config=None, **phase_over):
    c = proxylib.deep_merge(cfg(phase, **phase_over), config or {})
    s = proxylib.Stack(dialect=dialect, config=c)
    tc.addCleanup(s.close)
    return s


def cli(proxy, *args, timeout=90):
    admin = proxy.admin_url[len("http://"):]
    r = subprocess.run([proxylib.DUALPIPE_BIN, "phase", *args, "--config", proxy.config_path, "--admin", admin],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def status(proxy):
    r = proxy.admin("GET", "/admin/phase")
    assert r.status == 200, r
    return r.json()


# the records writers append, and their parser (one file holds each record whole or not at all)
record, parse = test_gen2_primary.record, test_gen2_primary.parse


def same(tc, s, root, proxy=None):
    """Both stores equal under root once the journal owes nothing either way (owners aside: what the
    mirror creates on Gen1 in gen2-primary belongs to the proxy's identity)."""
    (proxy or s.proxy).wait_drained(60)
    diffs = [d for d in s.compare(root) if ": owner " not in d and ": group " not in d]
    if diffs:
        tc.fail("Gen1 and Gen2 differ under %s:\n  %s\n---- log ----\n%s"
                % (root, "\n  ".join(diffs), (proxy or s.proxy).log_since_start()[-3000:]))


class Load:
    """Writers through proxies: writer w appends records to /ROOT/w<w> (its own file) and, for the
    racing ones, to /ROOT/shared. Every answer is kept: status and latency."""

    def __init__(self, s, root, proxies, nwriters=4, nracers=2, headers=None):
        self.s, self.root, self.proxies = s, root, proxies
        self.headers = headers   # sent with every write (a writer's own Authorization toward a protected Gen1)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}          # file -> [(wid, n)] in acknowledgement order
        self.errors = []
        self.lat = []            # (start time, seconds)
        self.threads = [threading.Thread(target=self.own, args=(w,), daemon=True) for w in range(nwriters)]
        self.threads += [threading.Thread(target=self.racer, args=(100 + w,), daemon=True) for w in range(nracers)]

    def proxy(self, wid):
        # the racers on the shared file go through one proxy: racing appends to one file through different
        # proxies of a fleet are a known open problem (README "Switching phases", limits)
        return self.proxies[0] if wid >= 100 else self.proxies[wid % len(self.proxies)]

    def send(self, wid, method, path, op, data, **params):
        t0 = time.time()
        r = proxylib.write_data(self.proxy(wid), method, path, op, data, False, timeout=60, headers=self.headers,
                                **params)
        with self.lock:
            self.lat.append((t0, time.time() - t0))
        return r

    def own(self, wid):
        rng = random.Random(wid)
        path = "%s/w%d" % (self.root, wid)
        n = 0
        while not self.stop.is_set():
            n += 1
            data = record(wid, n, rng.randint(16, 4096))
            try:
                r = self.send(wid, "PUT", path, "CREATE", data, overwrite="false") if n == 1 else \
                    self.send(wid, "POST", path, "APPEND", data)
            except Exception as e:  # noqa: BLE001
                with self.lock:
                    self.errors.append("w%d #%d: %r" % (wid, n, e))
                return
            if r.status not in (200, 201):
                with self.lock:
                    self.errors.append("w%d #%d: %d %s" % (wid, n, r.status, r.body[:300]))
                return
            with self.lock:
                self.acked.setdefault(path, []).append((wid, n))

    def racer(self, wid):
        rng = random.Random(wid)
        path = "%s/shared" % self.root
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                r = self.send(wid, "POST", path, "APPEND", record(wid, n, rng.randint(16, 2048)))
            except Exception as e:  # noqa: BLE001
                with self.lock:
                    self.errors.append("racer %d #%d: %r" % (wid, n, e))
                return
            if r.status != 200:
                with self.lock:
                    self.errors.append("racer %d #%d: %d %s" % (wid, n, r.status, r.body[:300]))
                return
            with self.lock:
                self.acked.setdefault(path, []).append((wid, n))

    def start(self):
        r = proxylib.write_data(self.proxies[0], "PUT", self.root + "/shared", "CREATE", b"", False,
                                headers=self.headers, overwrite="false")
        assert r.status == 201, r
        for t in self.threads:
            t.start()

    def finish(self, tc):
        self.stop.set()
        for t in self.threads:
            t.join(90)
        tc.assertEqual(self.errors, [], "writers got errors across the switches")

    def appends(self):
        return sum(len(v) for k, v in self.acked.items()) - sum(1 for k in self.acked if not k.endswith("shared"))

    def check_files(self, tc):
        """Each file holds each acknowledged record once; a writer's own file holds exactly its records,
        in order (an unacknowledged one cannot exist: no writer saw an error)."""
        for path, acked in self.acked.items():
            for side, data in (("gen2", self.s.g2_read(path)), ("gen1", self.s.g1_read(path))):
                got = parse(data)
                tc.assertEqual(len(got), len(set(got)), "a record twice on %s in %s" % (side, path))
                if path.endswith("shared"):
                    tc.assertEqual(sorted(got), sorted(acked), "%s on %s" % (path, side))
                    for w in {x[0] for x in got}:
                        mine = [n for (ww, n) in got if ww == w]
                        tc.assertEqual(mine, sorted(mine), "racer %d's records out of order on %s" % (w, side))
                else:
                    tc.assertEqual(got, acked, "%s on %s" % (path, side))

    def pause_during(self, t0, t1):
        """The longest answer time of a write sent between t0 and t1 (seconds)."""
        with self.lock:
            xs = [d for (t, d) in self.lat if t0 <= t <= t1]
        return max(xs) if xs else 0.0


def follows(tc, proxies, phase, timeout=20.0):
    """Every fleet member enters the phase the switch recorded. A switch is done once every member has
    drained toward the new primary; each member then enters the new phase at its next look at the record
    (poll_ms apart under load), and until then it must hold writes: none may write with the old primary."""
    for p in proxies:
        deadline = time.monotonic() + timeout
        while True:
            st = status(p)
            if st["phase"] == phase and not st["holding"]:
                break
            if st["phase"] != phase:
                tc.assertTrue(st["holding"] or st["fenced"], st)
            tc.assertLess(time.monotonic(), deadline, st)
            time.sleep(0.05)


def switch(tc, proxy, to, expect=0, *extra):
    rc, out, err = cli(proxy, "set", to, *extra)
    tc.assertEqual(rc, expect, "phase set %s: rc %d\nstdout: %s\nstderr: %s\n---- log ----\n%s"
                   % (to, rc, out, err, proxy.log_since_start()[-3000:]))
    return out, err


class Switching(unittest.TestCase):
    def test_round_trip_under_load(self):
        s = make_stack(self)
        self.assertEqual(s.proxy.webhdfs("PUT", "/rt", "MKDIRS", permission="755").status, 200)
        load = Load(s, "/rt", [s.proxy])
        g1_before, g2_before = s.g1_counters(), s.g2_counters()
        load.start()
        pauses = []
        for to in ("gen2-primary", "gen1-primary", "gen2-primary"):
            time.sleep(1.0)
            t0 = time.time()
            out, _ = switch(self, s.proxy, to)
            pauses.append((to, out.strip(), load.pause_during(t0, time.time())))
            st = status(s.proxy)
            self.assertEqual(st["phase"], to, st)
            self.assertEqual(st["switch"]["state"], "done", st)
        time.sleep(1.0)
        load.finish(self)
        same(self, s, "/rt")
        load.check_files(self)
        # each append once on each store: Gen1's writer-facing or mirrored APPENDs, Gen2's flushes of
        # the applier or of g2serve (one per append: no append was retried, none was resynced)
        g1, g2 = s.g1_counters(), s.g2_counters()
        n = load.appends()
        self.assertEqual(g1.get("POST APPEND", 0) - g1_before.get("POST APPEND", 0), n, g1)
        m = s.proxy.metrics()
        # the applier sends consecutive APPENDs of one file as one append + flush (coalesced)
        coalesced = int(m.get("dualpipe_applier_coalesced_total", 0))
        flushes = sum(g2.get(k, 0) - g2_before.get(k, 0) for k in ("PATCH flush", "PATCH append-flush"))
        self.assertEqual(flushes + coalesced, n + len(load.acked) - 1, (g2, coalesced, n))
        self.assertGreater(m.get("dualpipe_phase_hold_seconds_count", 0), 0)
        for to, out, worst in pauses:
            print("switch to %-13s %s; slowest write sent meanwhile %.0f ms" % (to, out, worst * 1000))

    def test_abort_when_the_drain_cannot_finish(self):
        s = make_stack(self, switch_timeout_ms=1500)
        self.assertEqual(s.proxy.webhdfs("PUT", "/ab", "MKDIRS", permission="755").status, 200)
        s.wait_drained(20)
        self.assertEqual(s.gen2.admin("POST", "/down?ms=600000").status, 200)
        r = proxylib.write_data(s.proxy, "PUT", "/ab/a", "CREATE", b"before", overwrite="true")
        self.assertEqual(r.status, 201, r)
        box = {}

        def late_write():
            time.sleep(0.5)
            t0 = time.time()
            box["r"] = proxylib.write_data(s.proxy, "PUT", "/ab/b", "CREATE", b"held", overwrite="true", timeout=30)
            box["t"] = time.time() - t0

        t = threading.Thread(target=late_write)
        t.start()
        _, err = switch(self, s.proxy, "gen2-primary", 1)
        t.join(30)
        self.assertIn("aborted", err)
        self.assertIn("timed out", err)
        self.assertEqual(box["r"].status, 201, box)          # held, then run in the old phase
        self.assertEqual(status(s.proxy)["phase"], "gen1-primary")
        self.assertEqual(s.g1_read("/ab/b"), b"held")
        self.assertEqual(s.gen2.admin("POST", "/up").status, 200)
        same(self, s, "/ab")

    def test_kill9_mid_switch(self):
        s = make_stack(self, switch_timeout_ms=2000)
        self.assertEqual(s.proxy.webhdfs("PUT", "/k", "MKDIRS", permission="755").status, 200)
        s.wait_drained(20)
        self.assertEqual(s.gen2.admin("POST", "/down?ms=600000").status, 200)
        for i in range(5):
            r = proxylib.write_data(s.proxy, "PUT", "/k/f%d" % i, "CREATE", b"x%d" % i, overwrite="true")
            self.assertEqual(r.status, 201, r)
        r = s.proxy.admin("POST", "/admin/phase/set?to=gen2-primary")
        self.assertEqual(r.status, 202, r)
        time.sleep(0.5)
        self.assertEqual(status(s.proxy)["record"]["state"], "switching")
        s.proxy.restart(kill=True)
        # the switch never completed: the restarted proxy ends it at its deadline and stays gen1-primary
        t0 = time.time()
        r = proxylib.write_data(s.proxy, "PUT", "/k/after", "CREATE", b"after", overwrite="true", timeout=30)
        self.assertEqual(r.status, 201, r)
        print("first write after the restart answered in %.1f s" % (time.time() - t0))
        st = status(s.proxy)
        self.assertEqual(st["phase"], "gen1-primary", st)
        self.assertEqual(st["record"]["state"], "stable", st)
        self.assertEqual(s.gen2.admin("POST", "/up").status, 200)
        same(self, s, "/k")
        g1 = s.g1_counters()
        self.assertEqual(g1.get("PUT CREATE", 0), 6, g1)       # each create once on Gen1

    def test_bad_inputs(self):
        s = make_stack(self)
        rc, _, err = cli(s.proxy, "set", "gen3-primary")
        self.assertEqual(rc, 2)
        self.assertIn("gen1-primary, gen2-primary or gen2-only", err)
        _, err = switch(self, s.proxy, "gen2-only", 1)
        self.assertIn("refused", err)
        self.assertIn("gen2-primary", err)
        switch(self, s.proxy, "gen2-primary")
        out, _ = switch(self, s.proxy, "gen2-primary")
        self.assertIn("noop", out)
        _, err = switch(self, s.proxy, "gen2-only", 1)
        self.assertIn("verify", err)
        # a second switch while one runs: 409 (Gen1 slow, so the drain of one record takes a while)
        self.assertEqual(s.gen1.admin("POST", "/down?ms=600000").status, 200)
        r = proxylib.write_data(s.proxy, "PUT", "/bi", "CREATE", b"x", overwrite="true")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(s.proxy.admin("POST", "/admin/phase/set?to=gen1-primary").status, 202)
        r = s.proxy.admin("POST", "/admin/phase/set?to=gen1-primary")
        self.assertEqual(r.status, 409, r)
        self.assertEqual(s.gen1.admin("POST", "/up").status, 200)
        deadline = time.time() + 60
        while status(s.proxy)["switch"]["state"] == "running" and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(status(s.proxy)["phase"], "gen1-primary")
        switch(self, s.proxy, "gen2-primary")
        s.wait_drained(30)
        out, _ = switch(self, s.proxy, "gen2-only", 0, "--force")
        self.assertIn("done", out)
        before = s.g1_counters()
        r = proxylib.write_data(s.proxy, "PUT", "/bi2", "CREATE", b"only", overwrite="true")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(s.g2_read("/bi2"), b"only")
        self.assertEqual(s.g1_counters(), before)            # Gen1 is not asked in gen2-only
        _, err = switch(self, s.proxy, "gen1-primary", 1)
        self.assertIn("refused", err)
        r = s.proxy.admin("GET", "/admin/phase/set?to=gen1-primary")
        self.assertEqual(r.status, 405)

    def test_walk_to_gen2_only_after_a_clean_verify(self):
        """The README's cutover: dual writes, gen2-primary, verify of / equal, gen2-only without --force,
        then Gen1 stopped for good and the writers still served."""
        s = make_stack(self)
        for i in range(3):
            r = proxylib.write_data(s.proxy, "PUT", "/wk/f%d" % i, "CREATE", b"one%d" % i, overwrite="true")
            self.assertEqual(r.status, 201, r)
        switch(self, s.proxy, "gen2-primary")
        r = proxylib.write_data(s.proxy, "POST", "/wk/f0", "APPEND", b"+two")
        self.assertEqual(r.status, 200, r)
        s.wait_drained(30)
        admin = s.proxy.admin_url[len("http://"):]
        v = subprocess.run([proxylib.DUALPIPE_BIN, "verify", "/", "--config", s.proxy.config_path, "--admin", admin],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(v.returncode, 0, v.stdout.decode() + v.stderr.decode())
        out, _ = switch(self, s.proxy, "gen2-only")
        self.assertIn("done", out)
        s.gen1.stop()
        r = proxylib.write_data(s.proxy, "POST", "/wk/f0", "APPEND", b"+three")
        self.assertEqual(r.status, 200, r)
        r = s.proxy.webhdfs("GET", "/wk/f0", "OPEN")
        if r.status == 307:  # the two-step dialect: the proxy sends the reader back to itself
            loc = r.header("Location")
            r = s.proxy.request("GET", loc[loc.index("/webhdfs/"):])
        self.assertEqual((r.status, r.body), (200, b"one0+two+three"))
        self.assertEqual(s.g2_read("/wk/f0"), b"one0+two+three")
        self.assertEqual(status(s.proxy)["phase"], "gen2-only")

    def test_phase_survives_a_restart(self):
        s = make_stack(self)
        switch(self, s.proxy, "gen2-primary")
        s.proxy.restart()
        self.assertEqual(status(s.proxy)["phase"], "gen2-primary")
        r = proxylib.write_data(s.proxy, "PUT", "/rs", "CREATE", b"after", overwrite="true")
        self.assertEqual(r.status, 201, r)
        same(self, s, "/rs")


class Fleet(unittest.TestCase):
    def test_three_proxies_switch_under_load(self):
        s = make_stack(self, fleet=True)
        others = []
        for i in range(2):
            c = json.loads(json.dumps(s.config))
            c["spool"]["dir"] = os.path.join(s.spool, "p%d" % i)
            c.get("journal", {}).pop("dir", None)
            p = proxylib.Proxy(c)
            self.addCleanup(p.close)
            others.append(p)
        proxies = [s.proxy] + others
        ids = {status(p)["member"] for p in proxies}
        self.assertEqual(len(ids), 3)
        self.assertEqual(s.proxy.webhdfs("PUT", "/fl", "MKDIRS", permission="755").status, 200)
        load = Load(s, "/fl", proxies, nwriters=6, nracers=3)
        load.start()
        time.sleep(1.0)
        switch(self, proxies[0], "gen2-primary")
        follows(self, proxies, "gen2-primary")
        time.sleep(1.0)
        switch(self, proxies[1], "gen1-primary")
        follows(self, proxies, "gen1-primary")
        time.sleep(0.5)
        load.finish(self)
        for p in proxies:
            p.wait_drained(60)
        same(self, s, "/fl")
        # no record twice on either side (racing appenders through three proxies make some appends copies
        # instead, so the emulators' counts are not one per append here)
        try:
            load.check_files(self)
        except AssertionError as e:
            logs = "\n".join("---- %s ----\n%s" % (status(p)["member"], "\n".join(
                ln for ln in p.log_since_start().splitlines() if "/fl/shared" in ln or "phase" in ln)[-6000:])
                for p in proxies)
            raise AssertionError("%s\n%s" % (e, logs)) from None

    def test_unreadable_record_fences_writes(self):
        s = make_stack(self, fleet=True, fleet_filesystem="nosuchfs")
        r = proxylib.write_data(s.proxy, "PUT", "/fe", "CREATE", b"x", overwrite="true")
        self.assertEqual(r.status, 503, r)
        self.assertIn("RetriableException", r.body.decode())
        self.assertIn("fleet", r.body.decode())
        self.assertEqual(s.gen1.counters().get("requests", {}).get("PUT CREATE", 0), 0)
        st = status(s.proxy)
        self.assertTrue(st["fenced"], st)


if __name__ == "__main__":
    unittest.main()
