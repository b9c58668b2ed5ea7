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
- Records of one direction left live by a stop drain after a start in the other phase (gen2-primary
  records to Gen1 under gen1-primary, and the reverse), each applied once; a journal holding records for
  Gen1 refuses a start without a Gen1 (with the reason).
- What each side is owed (status, metric, offline) equals the live records per side as the journal
  lists them, through parked, dropped and retried records on both sides, a phase change and kill -9.
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
        # (of the append that also flushes: one request with the default x-ms-version)
        s.gen2.fault("method=PATCH,op=append,action=reset,count=2")
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


def wait_for(tc, what, fn, timeout=30, s=None):
    """Poll fn() until it returns a true value (returned); fail naming what after timeout."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            tc.fail("timed out waiting for %s%s" % (what, "\n---- log ----\n" + s.proxy.log_since_start()[-3000:]
                                                       if s else ""))
        time.sleep(0.05)


def owed(p):
    o = p.journal()["owed"]
    return o["gen1"], o["gen2"]


def listed_per_side(p):
    """Live records per side as the journal lists them (GET /admin/journal/records, every page)."""
    n = {"gen1": 0, "gen2": 0}
    after = 0
    while True:
        r = p.admin("GET", "/admin/journal/records?after=%d&limit=1000" % after).json()
        for rec in r["records"]:
            n[rec["to"]] += 1
            after = rec["seq"]
        if not r["more"]:
            return n["gen1"], n["gen2"]


def cli(p, *args):
    r = subprocess.run([proxylib.DUALPIPE_BIN, "journal"] + list(args) + ["--config", p.config_path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def set_phase_offline(p, phase):
    """Start p next in phase: the config's phase, with the phase this proxy recorded forgotten (a stopped
    proxy keeps its phase in journal.dir/phase.json and journal.dir/fleet/; a start takes the config's
    phase only without them). How a switch runs while writers write is test_phase_switch's part; this
    puts records of the other side in the journal at a start."""
    import shutil
    jdir = p.config.get("journal", {}).get("dir") or os.path.join(p.config["spool"]["dir"], "journal")
    shutil.rmtree(os.path.join(jdir, "fleet"), ignore_errors=True)
    try:
        os.unlink(os.path.join(jdir, "phase.json"))
    except FileNotFoundError:
        pass
    p.config["phase"] = phase


class Phases(unittest.TestCase):
    def test_gen1_primary_start_drains_gen2_primary_records(self):
        """Records journaled in gen2-primary (for Gen1) left live by a stop: a start in gen1-primary takes
        them and the mirror applies each to Gen1 once, while new writes go Gen1 -> Gen2."""
        s = make_stack(self)
        p = s.proxy
        mkroot(self, s, "/ph")
        s.wait_drained(20)
        self.assertEqual(s.gen1.admin("POST", "/down?ms=600000").status, 200)
        for i in range(3):
            self.assertEqual(write(s, "PUT", "/ph/f%d" % i, "CREATE", b"data%d" % i, overwrite="true").status, 201)
        self.assertEqual(write(s, "POST", "/ph/f0", "APPEND", b"+more").status, 200)
        self.assertEqual(owed(p), (4, 0))
        c1 = s.g1_counters()
        self.assertEqual(p.stop(), 0)
        set_phase_offline(p, "gen1-primary")
        p.start()
        self.assertIn("recovered records queued for their engines", p.log_since_start())
        self.assertEqual(owed(p), (4, 0))
        self.assertEqual(p.journal()["phase"], "gen1-primary")
        self.assertEqual(s.gen1.admin("POST", "/up").status, 200)
        # a new write in gen1-primary: answered by Gen1, applied to Gen2 by the applier
        self.assertEqual(write(s, "PUT", "/ph/new", "CREATE", b"from gen1", overwrite="true").status, 201)
        wait_for(self, "nothing owed", lambda: owed(p) == (0, 0), 45, s)
        same(self, s, "/ph")
        self.assertEqual(s.g1_read("/ph/f0"), b"data0+more")
        self.assertEqual(s.g1_read("/ph/f2"), b"data2")
        self.assertEqual(s.g2_read("/ph/new"), b"from gen1")
        # Gen1 got each mirrored write once (plus the new write from the writer)
        d = proxylib.counter_delta(c1, s.g1_counters())
        self.assertEqual(d.get("PUT CREATE", 0), 4, d)
        self.assertEqual(d.get("POST APPEND", 0), 1, d)
        self.assertEqual(p.status()["mirror"]["parked"], 0)
        # operator resyncs follow the phase: in gen1-primary they copy Gen1 -> Gen2
        self.assertEqual(s.g2("DELETE", "/ph/f1").status, 200)
        r = p.admin("POST", "/admin/journal/resync?path=/ph")
        self.assertEqual(r.status, 200, r)
        same(self, s, "/ph")
        self.assertEqual(s.g2_read("/ph/f1"), b"data1")

    def test_gen2_primary_start_drains_gen1_primary_records(self):
        """The reverse: records journaled in gen1-primary (for Gen2) while Gen2 was down reach Gen2, once
        each, after a start in gen2-primary, beside the new writes mirrored to Gen1."""
        s = make_stack(self, config={"phase": "gen1-primary"})
        p = s.proxy
        mkroot(self, s, "/rv")
        s.wait_drained(20)
        self.assertEqual(s.gen2.admin("POST", "/down?ms=600000").status, 200)
        for i in range(3):
            self.assertEqual(write(s, "PUT", "/rv/f%d" % i, "CREATE", b"data%d" % i, overwrite="true").status, 201)
        # an explicit offset: a recovered APPEND with one is replayed (without, the first is resynced)
        self.assertEqual(write(s, "POST", "/rv/f0", "APPEND", b"+more", offset="5").status, 200)
        self.assertEqual(owed(p), (0, 4))
        self.assertEqual(p.stop(), 0)
        self.assertEqual(s.gen2.admin("POST", "/up").status, 200)
        c2 = s.g2_counters()
        set_phase_offline(p, "gen2-primary")
        p.start()
        self.assertEqual(p.journal()["phase"], "gen2-primary")
        self.assertEqual(write(s, "PUT", "/rv/new", "CREATE", b"from gen2", overwrite="true").status, 201)
        wait_for(self, "nothing owed", lambda: owed(p) == (0, 0), 45, s)
        same(self, s, "/rv")
        self.assertEqual(s.g2_read("/rv/f0"), b"data0+more")
        self.assertEqual(s.g1_read("/rv/new"), b"from gen2")
        # Gen2 got each recovered write once (plus the new write from the writer): 4 files, 5 appends of data
        d = proxylib.counter_delta(c2, s.g2_counters())
        self.assertEqual(d.get("PUT create-file", 0), 4, d)
        self.assertEqual(d.get("PATCH append", 0), 5, d)
        st = p.status()
        self.assertEqual((st["parked"], st["resynced"]), (0, 0), st)
        # an offline resync follows the configured phase: in gen2-primary a record for Gen1
        self.assertEqual(s.g1("DELETE", "/rv/f1", "DELETE").status, 200)
        self.assertEqual(p.stop(), 0)
        rc, out, err = cli(p, "resync", "/rv")
        self.assertEqual(rc, 0, err)
        rc, out, err = cli(p, "list", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual([r["to"] for r in json.loads(out)["records"]], ["gen1"])
        p.start()
        same(self, s, "/rv")
        self.assertEqual(s.g1_read("/rv/f1"), b"data1")
        # backfill copies Gen1 to Gen2: refused while Gen2 is the primary
        r = p.admin("POST", "/admin/backfill/begin")
        self.assertEqual(r.status, 409, r)
        self.assertIn("gen2-primary", r.body.decode())

    def test_records_for_gen1_without_gen1_refuse_the_start(self):
        """gen2-only without a Gen1: live records for Gen1 cannot be applied, so the start refuses, naming
        journal.dir and what to do; the journal is left as it was."""
        s = make_stack(self)
        p = s.proxy
        mkroot(self, s, "/ng")
        s.wait_drained(20)
        self.assertEqual(s.gen1.admin("POST", "/down?ms=600000").status, 200)
        self.assertEqual(write(s, "PUT", "/ng/f", "CREATE", b"kept", overwrite="true").status, 201)
        self.assertEqual(p.stop(), 0)
        set_phase_offline(p, "gen2-only")
        saved = p.config["gen1"]
        p.config["gen1"] = {}
        with self.assertRaises(RuntimeError) as cm:
            p.start(timeout=10)
        msg = str(cm.exception)
        self.assertIn("journal.dir", msg)
        self.assertIn("1 live record(s) to be applied to Gen1", msg)
        self.assertIn("gen1.endpoint", msg)
        p.config["gen1"] = saved
        set_phase_offline(p, "gen2-primary")
        self.assertEqual(s.gen1.admin("POST", "/up").status, 200)
        p.start()
        same(self, s, "/ng")
        self.assertEqual(s.g1_read("/ng/f"), b"kept")


class ResyncRace(unittest.TestCase):
    def test_file_changed_on_gen2_during_its_copy_is_copied_again(self):
        """A resync copies a file Gen2 -> Gen1 while Gen2's file changes under it (in a fleet: a write through
        another proxy, which this proxy's gate does not hold back): the copy is made again from the new file,
        so Gen1 never keeps the older bytes."""
        s = make_stack(self)
        mkroot(self, s, "/rc")
        self.assertEqual(write(s, "PUT", "/rc/f", "CREATE", b"A" * 1000, overwrite="true").status, 201)
        s.wait_drained(20)
        # the copy's read of Gen2 waits 800 ms; meanwhile the file grows on Gen2 behind the proxy
        s.gen2.fault("method=GET,op=read,action=latency,latency_ms=800,count=1")
        r = s.proxy.admin("POST", "/admin/journal/resync?path=/rc/f")
        self.assertEqual(r.status, 200, r)
        time.sleep(0.3)
        self.assertEqual(s.g2("PATCH", "/rc/f", "action=append&position=1000", body=b"extra").status, 202)
        self.assertEqual(s.g2("PATCH", "/rc/f", "action=flush&position=1005").status, 200)
        s.wait_drained(30)
        self.assertEqual(s.g2_read("/rc/f"), b"A" * 1000 + b"extra")
        self.assertEqual(s.g1_read("/rc/f"), b"A" * 1000 + b"extra")
        self.assertIn("file changed on gen2 during its copy to gen1: copied again", s.proxy.log_since_start())


class Owed(unittest.TestCase):
    def test_owed_is_the_live_records_per_side(self):
        """pipe_owed (GET /admin/journal "owed", dualpipe_journal_owed) equals the live records per side as
        the journal lists them, after writes in both directions, records parked, dropped and retried on
        each side, a switch of phase by restart and a kill -9; offline too. Then everything drains."""
        s = make_stack(self, config={"applier": {"resync_attempts": 1}, "journal": {"lazy_commit_ms": 20}})
        p = s.proxy

        def check(where):
            # a record whose end is queued is owed no more but listed until that state is on disk (lazy
            # commit): equal once the journal has written what was queued
            deadline = time.time() + 5
            while True:
                o, lst = owed(p), listed_per_side(p)
                if o == lst or time.time() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(o, lst, "%s: owed %s, listed %s" % (where, o, lst))
            m = p.metrics()
            self.assertEqual((m['dualpipe_journal_owed{to="gen1"}'], m['dualpipe_journal_owed{to="gen2"}']), o)
            return o

        mkroot(self, s, "/ow")
        s.wait_drained(20)
        self.assertEqual(check("start"), (0, 0))
        # gen2-primary: two records for Gen1 park (Gen1 refuses their path for good); drop one, retry the other
        s.gen1.fault("path=/ow/p1,action=fail,status=403,count=100000")
        for i in range(2):
            self.assertEqual(write(s, "PUT", "/ow/p1/f%d" % i, "CREATE", b"p1-%d" % i, overwrite="true").status, 201)
        wait_for(self, "two parked", lambda: p.journal()["journal"]["parked"] == 2, 30, s)
        parked = [r["seq"] for r in p.admin("GET", "/admin/journal/records?parked=1").json()["records"]]
        self.assertEqual(p.admin("POST", "/admin/journal/drop?seq=%d&confirm=yes" % parked[0]).status, 200)
        self.assertEqual(p.admin("POST", "/admin/journal/retry?seq=%d" % parked[1]).status, 200)
        wait_for(self, "parked again", lambda: p.journal()["journal"]["parked"] == 1 and
                 p.status()["mirror"]["pending"] == 0, 30, s)
        # three more for Gen1 that keep failing (transient): pending
        s.gen1.fault("path=/ow/q,action=fail,status=503,count=100000")
        for i in range(3):
            self.assertEqual(write(s, "PUT", "/ow/q/f%d" % i, "CREATE", b"q-%d" % i, overwrite="true").status, 201)
        self.assertEqual(check("gen2-primary"), (4, 0))
        # restart in gen1-primary: the records for Gen1 stay owed beside new ones for Gen2
        self.assertEqual(p.stop(), 0)
        set_phase_offline(p, "gen1-primary")
        p.start()
        self.assertEqual(check("restart in gen1-primary"), (4, 0))
        s.gen2.fault("path=/ow/p2,action=fail,status=400,count=100000")
        for i in range(2):
            self.assertEqual(write(s, "PUT", "/ow/p2/g%d" % i, "CREATE", b"p2-%d" % i, overwrite="true").status, 201)
        wait_for(self, "two more parked", lambda: p.journal()["journal"]["parked"] == 3, 30, s)
        parked2 = [r["seq"] for r in p.admin("GET", "/admin/journal/records?parked=1").json()["records"]
                   if r["to"] == "gen2"]
        self.assertEqual(len(parked2), 2)
        self.assertEqual(p.admin("POST", "/admin/journal/drop?seq=%d&confirm=yes" % parked2[0]).status, 200)
        s.gen2.fault("path=/ow/r,action=fail,status=503,count=100000")
        for i in range(3):
            self.assertEqual(write(s, "PUT", "/ow/r/g%d" % i, "CREATE", b"r-%d" % i, overwrite="true").status, 201)
        # a write Gen1 refuses is owed to nobody
        self.assertEqual(write(s, "PUT", "/ow/r/g0", "CREATE", b"no", overwrite="false").status, 403)
        wait_for(self, "settled counts", lambda: owed(p) == listed_per_side(p) == (4, 4), 20, s)
        check("both sides live")
        # kill -9 (the states above are on disk: lazy_commit_ms 20) and a restart in the same phase
        time.sleep(0.3)
        p.restart(kill=True)
        self.assertEqual(check("after kill -9"), (4, 4))
        # offline: the command line counts the same from the journal itself
        self.assertEqual(p.stop(), 0)
        rc, out, err = cli(p, "status", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["owed"], {"gen1": 4, "gen2": 4})
        rc, out, err = cli(p, "list", "--json")
        self.assertEqual(rc, 0, err)
        tos = [r["to"] for r in json.loads(out)["records"]]
        self.assertEqual((tos.count("gen1"), tos.count("gen2")), (4, 4))
        rc, out, err = cli(p, "status")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"owed to gen1 +4\b")
        self.assertRegex(out, r"owed to gen2 +4\b")
        # the faults end: retried, everything drains to both sides, which then hold the same tree
        self.assertEqual(s.gen1.admin("DELETE", "/faults").status, 200)
        self.assertEqual(s.gen2.admin("DELETE", "/faults").status, 200)
        p.start()
        rc, out, err = cli(p, "retry", "--all", "--admin", p.admin_url.split("//", 1)[1])
        self.assertEqual(rc, 0, err)
        wait_for(self, "nothing owed", lambda: owed(p) == (0, 0), 60, s)
        self.assertEqual(check("drained"), (0, 0))
        # the two dropped records never reached their side: an operator's resync (gen1-primary: Gen1 -> Gen2)
        self.assertEqual(p.admin("POST", "/admin/journal/resync?path=/ow").status, 200)
        same(self, s, "/ow")
        self.assertEqual(s.g2_read("/ow/q/f2"), b"q-2")
        self.assertEqual(s.g1_read("/ow/q/f2"), b"q-2")
        self.assertEqual(s.g2_read("/ow/r/g2"), b"r-2")
        self.assertEqual(s.g1_read("/ow/p1/f1"), b"p1-1")
        self.assertEqual(s.g2_read("/ow/p2/g0"), b"p2-0")


if __name__ == "__main__":
    unittest.main(verbosity=2)
