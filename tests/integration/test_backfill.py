#!/usr/bin/env python3
"""`dualpipe backfill` against the emulators, with real processes on loopback.

- a tree planted on Gen1 behind the proxy's back (ACLs, odd names, empty files, a multi-MiB file copied
  in parts, a directory Gen2 lacks, a directory Gen2 has with files it lacks, files already equal)
  backfilled while writers create, append, overwrite, rename and delete under it through the proxy;
  then both stores are equal, the writers' data reached Gen1 once each, and no write was lost on Gen2
  (both dialects);
- a write through the proxy landing between the copy's read of Gen1 and its write to Gen2: the copy is
  made again from the newest state (the append neither lost nor doubled);
- an incremental second run copies nothing (every file skipped as equal, no Gen2 write);
- a directory Gen2 lacks, with many entries copied right after it: all copied, a rerun finds all equal;
- kill -9 of a backfill, then the same command resumes from its cursor (its lease taken back at once)
  without copying finished files again;
- bad input: a path outside every mapping, an unreadable cursor, a second backfill of an overlapping tree while one runs
  (refused), Gen2 failing mid-run and Gen1 failing mid-run (the run stops with a cursor; the rerun
  completes and both stores are equal).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

DUALPIPE = proxylib.DUALPIPE_BIN
GUID_ALICE = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
GUID_HADOOP = "9a7c6d2e-1b3f-4c5d-8e9f-0a1b2c3d4e5f"
GUID_HDFS = "11111111-2222-3333-4444-555555555555"
GUID_SUPER = "11111111-2222-3333-4444-666666666666"
GUID_HDFSG = "11111111-2222-3333-4444-777777777777"
ODD = ["with space", "per%cent", "plus+sign", "hash#mark", "ünïcødé", "semi;colon", "quote'mark"]


class BackfillBase(unittest.TestCase):
    dialect = "adls"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dp-backfill-")
        idmap = os.path.join(self.tmp, "idmap.txt")
        with open(idmap, "w") as f:
            f.write("user alice %s\ngroup hadoop %s\n" % (GUID_ALICE, GUID_HADOOP))
            # the writers through the proxy (the emulator's default user and groups)
            f.write("user hdfs %s\ngroup supergroup %s\ngroup hdfs %s\n" % (GUID_HDFS, GUID_SUPER, GUID_HDFSG))
        over = {"gen2": {"identity_map": idmap}, "applier": {"copy_part_bytes": 1 << 20}}
        try:
            self.s = proxylib.Stack(dialect=self.dialect, config=over)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)   # tearDown does not run after a failed setUp
            raise

    def tearDown(self):
        try:
            self.s.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- Gen1, behind the proxy's back ----
    def g1(self, method, path, op, body=None, **params):
        r = self.s.g1(method, path, op, body, **params)
        self.assertLess(r.status, 300, (op, path, r))
        return r

    def put(self, path, data):
        self.g1("PUT", path, "CREATE", data, overwrite="true", write="true")
        self.g1("PUT", path, "SETOWNER", owner="alice", group="hadoop")

    def mkdir(self, path):
        self.g1("PUT", path, "MKDIRS")
        self.g1("PUT", path, "SETOWNER", owner="alice", group="hadoop")

    # ---- through the proxy ----
    def pw(self, method, path, op, data=None, **params):
        r = proxylib.write_data(self.s.proxy, method, path, op, data, **params) if data is not None else \
            self.s.proxy.webhdfs(method, path, op, **params)
        self.assertLess(r.status, 300, (op, path, r))
        return r

    def config_file(self):
        p = os.path.join(self.tmp, "dualpipe.json")
        with open(p, "w") as f:
            json.dump(self.s.config, f)
        return p

    def cmd(self, *args, json_out=True):
        admin = self.s.proxy.admin_url.replace("http://", "")
        argv = [DUALPIPE, "backfill", *args, "--config", self.config_file(), "--admin", admin]
        if json_out:
            argv += ["--json", os.path.join(self.tmp, "report.json")]
        return argv

    def backfill(self, *args, timeout=120):
        out = os.path.join(self.tmp, "report.json")
        if os.path.exists(out):
            os.unlink(out)
        p = subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout)
        rep = None
        if os.path.exists(out):
            with open(out) as f:
                rep = json.load(f)
        return p, rep

    def plant(self):
        """/data: 'new' only on Gen1 (made node by node), 'half' on Gen2 with files only on Gen1, 'live' equal."""
        self.mkdir("/data")
        self.mkdir("/data/new")
        self.mkdir("/data/new/sub")
        self.mkdir("/data/new/empty-dir")
        big = bytes(range(256)) * (6 * 4096 + 7)    # 6 MiB + 1792 B: 7 parts of 1 MiB (copy_part_bytes)
        self.put("/data/new/big", big[:3 << 20])    # Gen1 takes at most 4 MiB per request
        self.g1("POST", "/data/new/big", "APPEND", big[3 << 20:], append="true")
        self.put("/data/new/empty", b"")
        for i, n in enumerate(ODD):
            self.put("/data/new/sub/" + n, n.encode() * (i + 1))
        self.g1("PUT", "/data/new/sub", "MODIFYACLENTRIES", aclspec="user:alice:r-x,default:user:alice:rwx")
        self.g1("PUT", "/data/new/big", "MODIFYACLENTRIES", aclspec="user:alice:rw-,group:hadoop:r--")
        # 'half': the directory exists on Gen2 (made through the proxy), its files were written behind it
        self.pw("PUT", "/data/half", "MKDIRS")
        self.pw("PUT", "/data/half", "SETOWNER", owner="alice", group="hadoop")
        for i in range(12):
            self.put("/data/half/f%02d" % i, b"h" * (i * 1000))
        self.g1("PUT", "/data/half/f03", "MODIFYACLENTRIES", aclspec="user:alice:r--")
        # 'live': written through the proxy, equal on both sides already
        self.pw("PUT", "/data/live", "MKDIRS")
        for i in range(5):
            self.pw("PUT", "/data/live/l%d" % i, "CREATE", b"l" * (100 * i), overwrite="true")
        self.s.wait_drained()


class Backfill(BackfillBase):
    def writers(self, stop, done):
        """Writes through the proxy under the tree being backfilled, until stop is set (at least 40 ops)."""
        n = 0
        try:
            while not stop.is_set() or n < 40:
                k = n % 8
                if k == 0:
                    self.pw("PUT", "/data/half/w%d" % n, "CREATE", b"w" * 300, overwrite="true")
                elif k == 1:
                    self.pw("POST", "/data/half/f%02d" % ((n // 8) % 6), "APPEND", b"+append")
                elif k == 2:
                    self.pw("PUT", "/data/new/sub/" + ODD[n % len(ODD)], "CREATE", b"overwritten", overwrite="true")
                elif k == 3:
                    self.pw("POST", "/data/new/big", "APPEND", b"tail-%d" % n)
                elif k == 4:
                    self.pw("PUT", "/data/half/w%d" % (n - 4), "RENAME", destination="/data/new/moved%d" % n)
                elif k == 5:
                    self.pw("DELETE", "/data/half/f%02d" % (6 + (n // 8) % 6), "DELETE")
                elif k == 6:
                    self.pw("PUT", "/data/new/sub2/x%d" % n, "CREATE", b"x", overwrite="true")
                else:
                    self.pw("PUT", "/data/half/f%02d" % ((n // 8 + 3) % 6), "SETPERMISSION", permission="640")
                n += 1
                time.sleep(0.01)
        except Exception as e:  # noqa: BLE001 - reported by the test
            done.append(e)
        done.append(n)

    def test_backfill_beside_live_writes_then_incremental(self):
        s = self.s
        self.plant()
        s.gen1.admin("DELETE", "/counters")
        s.gen2.admin("DELETE", "/counters")
        stop, done = threading.Event(), []
        t = threading.Thread(target=self.writers, args=(stop, done))
        t.start()
        try:
            # a low max-pending stretches the run so the writers overlap it
            p, rep = self.backfill("/data", "--max-pending", "1", "--page-size", "3", "--bytes-per-sec", "4000000")
        finally:
            stop.set()
            t.join(60)
        self.assertFalse(t.is_alive())
        self.assertEqual(len(done), 1, done)
        nops = done[-1]
        # The documented limit (README "Backfill"): a file Gen1 keeps appending to faster than its copy can
        # read it (here /data/new/big, appended to every few ms, on a slow sanitizer build) is parked after
        # applier.resync_attempts, whether the copy was the backfill's or a live APPEND's resync; once the
        # writes stopped, `journal retry --all` copies it. Nothing else may fail or park.
        s.wait_drained(timeout=120, allow_parked=True)
        parked = s.proxy.admin("GET", "/admin/journal/records?parked=1").json()["records"]
        # (the copy sees the change itself, or the journal's gate sees the path's newer writes after it)
        growing = re.compile(r"changed on Gen1 during its copy|was overtaken by new writes")
        for rec in parked:
            self.assertRegex(rec["detail"], growing, parked)
        if p.returncode == 3:
            for it in rep["failed"]["items"]:
                self.assertRegex(it["reason"], growing, rep)
        else:
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr + json.dumps(rep) + "\n" + json.dumps(parked))
            self.assertEqual(rep["failed"]["count"], 0, rep)
        if parked:
            admin = s.proxy.admin_url.replace("http://", "")
            q = subprocess.run([DUALPIPE, "journal", "retry", "--all", "--config", self.config_file(), "--admin",
                                admin], capture_output=True, text=True, timeout=60)
            self.assertEqual(q.returncode, 0, q.stdout + q.stderr)
        # what the writers touched first reached Gen2 through their own records (skipped-equal or -newer,
        # or a directory Gen2 now has), the rest was copied; 'live' (l0-l4, never touched) was equal
        self.assertGreaterEqual(rep["copies_requested"], 1, rep)
        self.assertGreaterEqual(rep["skipped_equal"]["files"], 5, rep)
        listed = rep["copied"]["files"] + rep["skipped_equal"]["files"] + rep["skipped_newer"]["files"]
        self.assertGreaterEqual(listed, 5 + 12 - 6, rep)   # at most f06-f11 deleted before the walk
        self.assertIn("skipped-equal", p.stdout)
        s.wait_drained(timeout=120)
        s.assert_same(self, "/data")
        # each writer op went to Gen1 once (the proxy sends every write once; a copy never writes Gen1)
        g1 = s.g1_counters()
        creates = sum(v for k, v in g1.items() if k.startswith("PUT CREATE"))
        appends = sum(v for k, v in g1.items() if k.startswith("POST APPEND"))
        n_create = sum(1 for i in range(nops) if i % 8 in (0, 2, 6))
        n_append = sum(1 for i in range(nops) if i % 8 in (1, 3))
        if self.dialect == "hadoop":  # namenode step + datanode step
            n_create *= 2
            n_append *= 2
        self.assertEqual(creates, n_create, g1)
        self.assertEqual(appends, n_append, g1)

        # incremental: nothing changed since, so nothing is copied and Gen2 gets no write
        s.gen2.admin("DELETE", "/counters")
        p, rep = self.backfill("/data")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(rep["copied"]["files"], 0, rep)
        self.assertEqual(rep["copied"]["dirs"], 0, rep)
        self.assertEqual(rep["copies_requested"], 0, rep)
        self.assertEqual(rep["failed"]["count"], 0, rep)
        g2 = s.g2_counters()
        writes = {k: v for k, v in g2.items() if not k.startswith(("HEAD", "GET"))}
        self.assertEqual(writes, {}, g2)


class BackfillHadoop(Backfill):
    dialect = "hadoop"


class BackfillNewDirectory(BackfillBase):
    def test_ops_per_sec_paces_the_gen2_look_ups_too(self):
        """An incremental run over an unchanged tree is all Gen2 look-ups (one getProperties per entry) and
        a single Gen1 listing: --ops-per-sec must pace those too, or it would not protect Gen2's writers."""
        self.pw("PUT", "/p", "MKDIRS")
        for i in range(24):
            self.pw("PUT", "/p/f%02d" % i, "CREATE", b"x" * i, overwrite="true")
        self.s.wait_drained()
        p, rep = self.backfill("/p")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        heads = lambda: sum(n for k, n in self.s.g2_counters().items() if k.startswith("HEAD"))  # noqa: E731
        h0 = heads()
        t0 = time.monotonic()
        p, rep = self.backfill("/p", "--ops-per-sec", "20")
        took = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(rep["skipped_equal"]["files"], 24)
        looked = heads() - h0
        self.assertGreaterEqual(looked, 24)
        # 24+ look-ups at 20 per second: not under 1.1 s (a lower bound only: a slow machine cannot fail it)
        self.assertGreaterEqual(took, (looked - 1) / 20.0 - 0.05, (looked, took))

    def test_many_entries_in_a_directory_gen2_lacks(self):
        """The directory's node-only copy and its entries' copies are journaled close together: the
        entries are still copied (the directory's copy covers none of them), and a rerun finds all equal."""
        s = self.s
        self.mkdir("/data")
        self.mkdir("/data/fresh")
        for i in range(40):
            self.put("/data/fresh/f%02d" % i, b"n" * (i * 10))
        self.mkdir("/data/fresh/inner")
        self.put("/data/fresh/inner/x", b"x")
        p, rep = self.backfill("/data", "--max-pending", "256")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(rep["copied"]["files"], 41, rep)
        self.assertEqual(rep["copied"]["dirs"], 3, rep)     # /data, fresh, inner
        s.wait_drained()
        s.assert_same(self, "/data")
        p, rep = self.backfill("/data")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(rep["copies_requested"], 0, rep)
        self.assertEqual(rep["skipped_equal"]["files"], 41, rep)


class BackfillRace(BackfillBase):
    def test_live_append_during_the_copy_wins(self):
        """A write through the proxy lands on Gen1 after the backfill's copy read the file and before it
        reached Gen2 (Gen2 holds the copy's create back): the copy is made again from Gen1's newest
        state, and the append is neither lost nor applied twice."""
        s = self.s
        self.pw("PUT", "/data/r", "MKDIRS")
        old = b"old-" * 1000
        self.put("/data/r/x", old)
        s.wait_drained()
        s.gen2.fault("method=PUT,op=create-file,action=latency,latency_ms=1500,path=/data/r/,count=1")
        p = subprocess.Popen(self.cmd("/data/r", json_out=False), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                c = s.gen2.counters()
                if c.get("requests", {}).get("PUT create-file", 0) >= 1 and c.get("in_flight", 0) >= 1:
                    break
                time.sleep(0.02)
            else:
                self.fail("the copy never reached Gen2's create: %r" % s.gen2.counters())
            self.pw("POST", "/data/r/x", "APPEND", b"+live")
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 0, out + err)
        s.wait_drained()
        s.assert_same(self, "/data")
        self.assertEqual(s.g2_read("data/r/x"), old + b"+live")
        self.assertIn("resync copied again: a write came in meanwhile", s.proxy.read_log())


class BackfillResume(BackfillBase):
    def test_kill9_resume_no_recopy(self):
        s = self.s
        self.pw("PUT", "/data/many", "MKDIRS")
        N = 120
        for i in range(N):
            self.put("/data/many/f%03d" % i, b"m" * 2000)
        s.gen2.admin("DELETE", "/counters")
        cursor = os.path.join(self.tmp, "bf.cursor")
        # slow enough to be killed in the middle: 120 files of 2000 B at 50 kB/s (4.8 s)
        argv = self.cmd("/data", "--cursor", cursor, "--bytes-per-sec", "50000", "--max-pending", "2",
                        "--page-size", "10", json_out=False)
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while time.time() < deadline and not os.path.exists(cursor):
            time.sleep(0.05)
        time.sleep(2.6)   # past the checkpoint at 2 s (the cursor is first written as the walk starts)
        self.assertIsNone(p.poll(), "finished before the kill")
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        p.stderr.close()
        self.assertTrue(os.path.exists(cursor))
        # resumed at once: the lease belongs to the run the cursor names
        p2, rep = self.backfill("/data", "--cursor", cursor)
        self.assertEqual(p2.returncode, 0, p2.stdout + p2.stderr)
        self.assertTrue(rep["walk"]["resumed"], rep)
        self.assertGreaterEqual(rep["seconds"], 1.9, rep)   # the killed run's time (to its 2 s checkpoint) counts
        self.assertFalse(os.path.exists(cursor))
        s.wait_drained(timeout=60)
        s.assert_same(self, "/data")
        total = rep["copied"]["files"] + rep["skipped_equal"]["files"]
        self.assertGreaterEqual(total, N, rep)
        # finished files were not copied again: at most the copies in flight at the kill and the
        # pages after the last checkpoint come twice
        creates = s.g2_counters().get("PUT create-file", 0)
        self.assertLessEqual(creates, N + 2 + 2 * 10, s.g2_counters())


class BackfillBadInput(BackfillBase):
    def test_outside_mappings_and_usage(self):
        s = self.s
        s.config["gen2"]["mappings"] = [{"gen1_prefix": "/data", "filesystem": proxylib.FS, "prefix": "data"}]
        p, _ = self.backfill("/elsewhere")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("outside every mapping", p.stderr)
        p, _ = self.backfill("relative/path")
        self.assertEqual(p.returncode, 2, p.stderr)
        p = subprocess.run([DUALPIPE, "backfill", "--bogus"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([DUALPIPE, "backfill", "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--max-pending", p.stdout)

    def test_unreadable_cursor(self):
        self.mkdir("/data")
        cursor = os.path.join(self.tmp, "bad.cursor")
        with open(cursor, "w") as f:
            f.write("this is not a cursor\n")
        p, _ = self.backfill("/data", "--cursor", cursor)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("not a dualpipe walk cursor", p.stderr)
        self.assertNotIn("resumes from the cursor", p.stderr)
        self.assertTrue(os.path.exists(cursor))      # left for the operator to look at

    def test_second_backfill_refused_then_gen2_and_gen1_failing(self):
        s = self.s
        self.pw("PUT", "/data/a", "MKDIRS")
        for i in range(60):
            self.put("/data/a/f%02d" % i, b"a" * 1000)
        self.mkdir("/data/b")
        self.put("/data/b/x", b"x")
        cursor = os.path.join(self.tmp, "bf.cursor")
        # one thread: /data/a is walked (slowly) before /data/b
        argv = self.cmd("/data", "--cursor", cursor, "--bytes-per-sec", "10000", "--max-pending", "1",
                        "--threads", "1", json_out=False)
        first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 30
            while time.time() < deadline and not os.path.exists(cursor):
                time.sleep(0.05)
            # an overlapping tree (below it) and the same tree: refused while the first runs
            for root in ("/data/a", "/data"):
                p, _ = self.backfill(root)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("another backfill", p.stderr)
            # Gen2 fails every look-up now: the first run gives up after its retries, with its cursor
            s.gen2.fault("op=get-properties,action=fail,status=503,count=100000")
            rc = first.wait(60)
            err = first.stderr.read()
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
            first.stderr.close()
        self.assertEqual(rc, 1, err)
        self.assertIn("resumes from the cursor", err)
        self.assertTrue(os.path.exists(cursor))
        s.gen2.admin("DELETE", "/faults")
        # then Gen1 fails the listing of /data/b (still to walk: /data/a goes first): again resumable
        s.gen1.fault("method=GET,op=%s,action=fail,status=503,path=/data/b" %
                     ("LISTSTATUS_BATCH" if self.dialect == "hadoop" else "LISTSTATUS"))
        p, _ = self.backfill("/data", "--cursor", cursor, "--retries", "1")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("resumes from the cursor", p.stderr)
        s.gen1.admin("DELETE", "/faults")
        p, rep = self.backfill("/data", "--cursor", cursor)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        s.wait_drained(timeout=60)
        s.assert_same(self, "/data")


if __name__ == "__main__":
    unittest.main()
