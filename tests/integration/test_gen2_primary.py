"""Phase gen2-primary: writers answered by Gen2 (as WebHDFS answers), every write journaled and mirrored
to Gen1 for a rollback, reads served by Gen2.

- Every write op through the proxy, in both Gen1 dialects (the writer's two-step flow on hadoop): the
  answers are WebHDFS answers, Gen2 holds the data, Gen1 converges to the same tree (sizes, bytes,
  permissions, ACLs; owners differ by design: Gen1's copy is made by the proxy's identity), and Gen1's
  counters show each accepted write applied once and nothing Gen2 refused.
- Gen1 down for a while: writes keep succeeding, the mirror catches up once it is back.
- An append whose Gen2 answer is lost: the writer gets a 5xx saying the outcome is unknown, and Gen1 is
  made equal to what Gen2 holds (a resync of the path).
- kill -9 mid-load, restart: the journal's records reach Gen1 (APPENDs at the offsets Gen2 gave them,
  kept in the journal), both sides equal, no record twice on either side.
- Racing appenders on one file: Gen2 and Gen1 hold the same bytes, each append once.
- A journal holding gen2-primary records refuses a start in gen1-primary (with the reason), and the
  next start in gen2-primary drains it.
"""
import json
import os
import random
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

FAST = {"backoff_base_ms": 50, "backoff_cap_ms": 400, "breaker_probe_ms": 200}


def make_stack(tc, dialect="adls", **over):
    cfg = {"phase": "gen2-primary", "applier": FAST, "log": {"level": "info"}, "shutdown": {"drain_ms": 300}}
    cfg = proxylib.deep_merge(cfg, over.pop("config", {}))
    s = proxylib.Stack(dialect=dialect, config=cfg, **over)
    tc.addCleanup(s.close)
    return s


def same(tc, s, root):
    """Both sides equal under root once the journal owes Gen1 nothing (owners and groups aside: what the
    mirror creates on Gen1 belongs to the proxy's identity, README "gen2-primary")."""
    s.wait_drained(45)
    diffs = [d for d in s.compare(root) if ": owner " not in d and ": group " not in d]
    if diffs:
        tc.fail("Gen1 and Gen2 differ under %s:\n  %s\n---- status ----\n%s\n---- log ----\n%s"
                % (root, "\n  ".join(diffs), json.dumps(s.proxy.status())[:3000], s.proxy.log_since_start()[-3000:]))


def mkroot(tc, s, path):
    """A test's root directory, made explicitly: a directory Gen2 makes implicitly (a CREATE's missing
    parent) has Gen2's permissions and Gen1's copy Gen1's default (README "gen2-primary", limits)."""
    r = s.proxy.webhdfs("PUT", path, "MKDIRS", permission="755")
    tc.assertEqual(r.status, 200, r)


def write(s, method, path, op, data, two_step=False, **params):
    return proxylib.write_data(s.proxy, method, path, op, data, two_step, **params)


def record(wid, n, size):
    head = struct.pack(">HII", wid, n, size)
    return head + bytes((wid * 7 + n + i) & 0xFF for i in range(size)) + b"\n"


def parse(data):
    out, pos = [], 0
    while pos < len(data):
        wid, n, size = struct.unpack(">HII", data[pos:pos + 10])
        end = pos + 10 + size + 1
        if end > len(data) or data[end - 1:end] != b"\n":
            raise ValueError("torn record at %d" % pos)
        out.append((wid, n))
        pos = end
    return out


class Ops(unittest.TestCase):
    def run_ops(self, dialect):
        s = make_stack(self, dialect)
        two = dialect == "hadoop"
        c1 = s.g1_counters()
        p = s.proxy
        ok = lambda r, st=200: self.assertEqual(r.status, st, r)  # noqa: E731
        ok(p.webhdfs("PUT", "/g", "MKDIRS", permission="755"))
        r = p.webhdfs("PUT", "/g/a", "MKDIRS", permission="750")
        ok(r)
        self.assertEqual(r.json(), {"boolean": True})
        ok(write(s, "PUT", "/g/a/f1", "CREATE", b"hello", two, overwrite="false", permission="640"), 201)
        ok(write(s, "POST", "/g/a/f1", "APPEND", b" world", two, offset="5"))
        # a writer's own "dualpipe.*" parameter is not journaled: the mirror uses Gen2's offset
        ok(write(s, "POST", "/g/a/f1", "APPEND", b"!", two, **{"dualpipe.offset": "0"}))
        # refused by Gen2: never reaches Gen1
        r = write(s, "POST", "/g/a/f1", "APPEND", b"zz", two, offset="3")
        self.assertEqual((r.status, r.json()["RemoteException"]["exception"]), (400, "BadOffsetException"))
        r = write(s, "PUT", "/g/a/f1", "CREATE", b"no", two, overwrite="false")
        self.assertEqual((r.status, r.json()["RemoteException"]["exception"]), (403, "FileAlreadyExistsException"))
        r = write(s, "POST", "/g/a/none", "APPEND", b"x", two)
        self.assertEqual(r.status, 404, r)
        ok(write(s, "PUT", "/g/a/s1", "CREATE", b"AAA", two, overwrite="true"), 201)
        ok(write(s, "PUT", "/g/a/s2", "CREATE", b"BBBB", two, overwrite="true"), 201)
        ok(write(s, "PUT", "/g/a/f2", "CREATE", b"t:", two, overwrite="true"), 201)
        ok(write(s, "PUT", "/g/a/m", "CREATE", b"kept as created", two, overwrite="true"), 201)
        ok(p.webhdfs("POST", "/g/a/f2", "CONCAT", sources="/g/a/s1,/g/a/s2"))
        ok(p.webhdfs("PUT", "/g/a/f2", "SETPERMISSION", permission="600"))
        ok(p.webhdfs("PUT", "/g/a/f2", "MODIFYACLENTRIES", aclspec="user:alice:rw-"))
        ok(p.webhdfs("PUT", "/g/a/f1", "SETTIMES", modificationtime="1700000000000", accesstime="1700000000000"))
        r = p.webhdfs("PUT", "/g/a/f1", "RENAME", destination="/g/a/f3")
        ok(r)
        self.assertEqual(r.json(), {"boolean": True})
        r = p.webhdfs("PUT", "/g/a/missing", "RENAME", destination="/g/a/x")
        self.assertEqual(r.json(), {"boolean": False})
        ok(p.webhdfs("PUT", "/g/b/c", "MKDIRS"))
        ok(write(s, "PUT", "/g/b/c/f", "CREATE", b"gone soon", two, overwrite="true"), 201)
        r = p.webhdfs("DELETE", "/g/b", "DELETE", recursive="true")
        self.assertEqual(r.json(), {"boolean": True})
        self.assertEqual(p.webhdfs("DELETE", "/g/nothing", "DELETE").json(), {"boolean": False})
        # reads come from Gen2
        r = p.webhdfs("GET", "/g/a/f3", "OPEN", read="true")
        self.assertEqual((r.status, r.body), (200, b"hello world!"))
        self.assertEqual(s.g2_read("/g/a/f3"), b"hello world!")
        self.assertEqual(s.g2_read("/g/a/f2"), b"t:AAABBBB")
        st = p.webhdfs("GET", "/g/a", "LISTSTATUS").json()["FileStatuses"]["FileStatus"]
        self.assertEqual(sorted(e["pathSuffix"] for e in st), ["f2", "f3", "m"])
        same(self, s, "/g")
        self.assertEqual(s.g1_read("/g/a/f3"), b"hello world!")
        self.assertEqual(s.g1_read("/g/a/f2"), b"t:AAABBBB")
        # Gen1 saw each accepted write once, and none of the refused ones
        d = proxylib.counter_delta(c1, s.g1_counters())
        appends = sum(v for k, v in d.items() if k.startswith("POST APPEND"))
        creates = sum(v for k, v in d.items() if k.startswith("PUT CREATE"))
        if two:  # the hadoop dialect counts the namenode's 307 and the datanode's write
            appends, creates = appends // 2, creates // 2
        self.assertEqual(appends, 2, d)
        self.assertEqual(creates, 6, d)
        # a CREATE's time on Gen1 is the one Gen2 shows (carried in the journal as dualpipe.mtime)
        g2t = p.webhdfs("GET", "/g/a/m", "GETFILESTATUS").json()["FileStatus"]["modificationTime"]
        self.assertEqual(s.g1_status("/g/a/m")["modificationTime"], g2t)
        self.assertEqual(d.get("PUT RENAME", 0), 1, d)
        self.assertEqual(d.get("DELETE DELETE", 0), 1, d)
        self.assertEqual(d.get("POST CONCAT", 0), 1, d)
        # the mirror's counts, in /admin/status and /admin/journal
        mr = p.status()["mirror"]
        self.assertEqual((mr["parked"], mr["resynced"], mr["pending"]), (0, 0, 0), mr)
        self.assertGreaterEqual(mr["applied"], 16, mr)
        self.assertEqual(p.journal()["phase"], "gen2-primary")
        m = p.metrics()
        self.assertTrue(any(k.startswith("dualpipe_mirror_operations_total") for k in m), sorted(m)[:20])
        # `dualpipe journal status` prints the mirror's lines
        cli = subprocess.run([proxylib.DUALPIPE_BIN, "journal", "status", "--config", p.config_path, "--admin",
                              p.admin_url.split("//", 1)[1]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=30)
        out = cli.stdout.decode()
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertIn("gen2-primary (mirror to gen1)", out)
        self.assertRegex(out, r"applied to gen1 +%d\b" % mr["applied"])

    def test_ops_adls(self):
        self.run_ops("adls")

    def test_ops_hadoop(self):
        self.run_ops("hadoop")


class Faults(unittest.TestCase):
    def test_gen1_down_writes_go_on_and_the_mirror_catches_up(self):
        s = make_stack(self)
        mkroot(self, s, "/dn")
        s.wait_drained(20)
        self.assertEqual(s.gen1.admin("POST", "/down?ms=2500").status, 200)
        t0 = time.time()
        for i in range(5):
            self.assertEqual(write(s, "PUT", "/dn/f%d" % i, "CREATE", b"x" * (100 + i), overwrite="true").status, 201)
            self.assertEqual(write(s, "POST", "/dn/f%d" % i, "APPEND", b"tail", offset=str(100 + i)).status, 200)
        self.assertLess(time.time() - t0, 2.0, "writers waited for Gen1")
        self.assertGreater(int(s.proxy.journal()["journal"]["pending"]), 0, "nothing waited for Gen1")
        same(self, s, "/dn")
        self.assertEqual(s.g1_read("/dn/f3"), b"x" * 103 + b"tail")
        self.assertEqual(s.proxy.status()["mirror"]["parked"], 0)

    def test_append_offsets_survive_a_crash(self):
        """Appends Gen2 accepted while Gen1 is down, then kill -9: after the restart the mirror replays
        each one at the offset Gen2 gave it (kept in the journal), without a resync."""
        s = make_stack(self)
        mkroot(self, s, "/off")
        s.wait_drained(20)
        self.assertEqual(s.gen1.admin("POST", "/down?ms=600000").status, 200)
        self.assertEqual(write(s, "PUT", "/off/f", "CREATE", b"0123", overwrite="true").status, 201)
        for i in range(4):
            self.assertEqual(write(s, "POST", "/off/f", "APPEND", b"<%d>" % i).status, 200)
        recs = [r for r in s.proxy.admin("GET", "/admin/journal/records").json()["records"] if r["op"] == "APPEND"]
        self.assertEqual([r["detail"] for r in sorted(recs, key=lambda r: r["seq"])],
                         ["landed on the primary at dualpipe.offset=%d" % (4 + 3 * i) for i in range(4)])
        c1 = s.g1_counters()
        # the answers' states are lazy (journal.lazy_commit_ms, 100 ms): a state not yet on disk at the kill
        # would make its APPEND a resync (correct, not what is tested here)
        time.sleep(0.6)
        s.proxy.restart(kill=True)
        self.assertEqual(s.gen1.admin("POST", "/up").status, 200)
        same(self, s, "/off")
        self.assertEqual(s.g1_read("/off/f"), b"0123<0><1><2><3>")
        d = proxylib.counter_delta(c1, s.g1_counters())
        self.assertEqual(d.get("POST APPEND", 0), 4, d)
        self.assertEqual(s.proxy.status()["mirror"]["resynced"], 0)

    def test_lost_gen2_answer_is_unknown_and_resynced(self):
        s = make_stack(self)
        mkroot(self, s, "/lost")
        self.assertEqual(write(s, "PUT", "/lost/f", "CREATE", b"base", overwrite="true").status, 201)
        s.wait_drained(20)
        # reset twice: libcurl sends again once on a fresh connection, the second reset is the answer lost
        s.gen2.fault("method=PATCH,op=flush,action=reset,count=2")
        r = write(s, "POST", "/lost/f", "APPEND", b"more")
        self.assertEqual(r.status, 502, r)
        self.assertIn("unknown", r.json()["RemoteException"]["message"])
        same(self, s, "/lost")
        self.assertEqual(s.g1_read("/lost/f"), s.g2_read("/lost/f"))
        self.assertGreaterEqual(s.proxy.status()["mirror"]["resynced"], 1)
        # the path goes on as usual afterwards
        self.assertEqual(write(s, "POST", "/lost/f", "APPEND", b"+end").status, 200)
        same(self, s, "/lost")
        self.assertEqual(s.g1_read("/lost/f"), s.g2_read("/lost/f"))
        self.assertTrue(s.g2_read("/lost/f").endswith(b"+end"))

    def test_racing_appenders_one_file(self):
        s = make_stack(self)
        mkroot(self, s, "/race")
        self.assertEqual(write(s, "PUT", "/race/f", "CREATE", b"", overwrite="true").status, 201)
        errors = []

        def appender(wid):
            for n in range(8):
                r = write(s, "POST", "/race/f", "APPEND", record(wid, n, 50 + wid))
                if r.status != 200:
                    errors.append(r)

        ts = [threading.Thread(target=appender, args=(w,)) for w in range(5)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(errors, [])
        recs = parse(s.g2_read("/race/f"))
        self.assertEqual(sorted(recs), sorted((w, n) for w in range(5) for n in range(8)))
        same(self, s, "/race")
        self.assertEqual(s.g1_read("/race/f"), s.g2_read("/race/f"))
        self.assertEqual(s.g1_counters().get("POST APPEND", 0), 40)  # each append once on Gen1

    def test_kill9_mid_load_then_restart(self):
        s = make_stack(self, "hadoop")
        mkroot(self, s, "/k9")
        stop = threading.Event()
        acked = {}
        lock = threading.Lock()

        def writer(wid):
            rng = random.Random(wid)
            path = "/k9/w%d" % wid
            n = 0
            created = False
            while not stop.is_set():
                n += 1
                data = record(wid, n, rng.randint(20, 3000))
                try:
                    if not created:
                        r = write(s, "PUT", path, "CREATE", data, wid % 2 == 1, overwrite="false")
                    else:
                        r = write(s, "POST", path, "APPEND", data, wid % 2 == 1)
                except Exception:  # noqa: BLE001 - the proxy is down: not acknowledged
                    time.sleep(0.05)
                    continue
                if r.status in (200, 201):
                    created = True
                    with lock:
                        acked.setdefault(wid, []).append(n)

        ts = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(4)]
        for t in ts:
            t.start()
        time.sleep(1.2)
        s.proxy.restart(kill=True)
        time.sleep(0.8)
        stop.set()
        for t in ts:
            t.join(30)
        same(self, s, "/k9")
        for wid in range(4):
            got = parse(s.g2_read("/k9/w%d" % wid))
            ns = [n for (_, n) in got]
            self.assertEqual(len(ns), len(set(ns)), "a record twice on Gen2 (w%d)" % wid)
            self.assertTrue(set(acked.get(wid, [])) <= set(ns), "an acknowledged write is missing (w%d)" % wid)
            self.assertEqual(s.g1_read("/k9/w%d" % wid), s.g2_read("/k9/w%d" % wid))


class Phases(unittest.TestCase):
    def test_other_phase_refuses_a_journal_with_live_records(self):
        s = make_stack(self)
        mkroot(self, s, "/ph")
        s.wait_drained(20)
        self.assertEqual(s.gen1.admin("POST", "/down?ms=600000").status, 200)
        for i in range(3):
            self.assertEqual(write(s, "PUT", "/ph/f%d" % i, "CREATE", b"data%d" % i, overwrite="true").status, 201)
        self.assertEqual(s.proxy.stop(), 0)
        s.proxy.config["phase"] = "gen1-primary"
        with self.assertRaises(RuntimeError) as cm:
            s.proxy.start(timeout=10)
        msg = str(cm.exception)
        self.assertIn("journaled in phase gen2-primary", msg)
        self.assertIn("this start is in phase gen1-primary", msg)
        self.assertEqual(s.gen1.admin("POST", "/up").status, 200)
        s.proxy.config["phase"] = "gen2-primary"
        s.proxy.write_config()
        # an offline resync (no daemon) in gen2-primary is a record for Gen1 too: the next start takes it
        cli = subprocess.run([proxylib.DUALPIPE_BIN, "journal", "resync", "/ph", "--config", s.proxy.config_path],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(cli.returncode, 0, cli.stderr)
        s.proxy.start()
        same(self, s, "/ph")
        self.assertEqual(s.g1_read("/ph/f2"), b"data2")
        # an operator's resync in gen2-primary copies Gen2 -> Gen1
        self.assertEqual(s.g1("DELETE", "/ph/f1", "DELETE").status, 200)
        r = s.proxy.admin("POST", "/admin/journal/resync?path=/ph")
        self.assertEqual(r.status, 200, r)
        same(self, s, "/ph")
        self.assertEqual(s.g1_read("/ph/f1"), b"data1")
        # backfill copies Gen1 to Gen2: refused while Gen2 is the primary
        r = s.proxy.admin("POST", "/admin/backfill/begin")
        self.assertEqual(r.status, 409, r)
        self.assertIn("gen2-primary", r.body.decode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
