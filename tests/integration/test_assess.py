#!/usr/bin/env python3
"""`dualpipe assess` against the emulators (both Gen1 dialects), with real processes on loopback.

- every kind of problem planted on Gen1 is found, with its path: names Gen2 refuses, an ACL over
  Gen2's 32 entries, identities the identity map cannot map (owner, group, ACL entry), a default ACL,
  a file with an expiry, and CONCAT / SETTIMES / SETEXPIRY waiting in the journal (Gen2 down), read
  through the running daemon's admin port and offline after it stopped;
- counts, bytes and the size histogram are exact for a known tree, over several listing pages;
- kill -9 in the middle of a walk, then the same command resumes from the cursor with exact results;
- bad input: a path outside every mapping, an unusable cursor, Gen1 failing mid-walk (retries, then a
  resumable failure; the rerun completes);
- the HTML report opened in headless chromium: the script drew the charts and the problem tables,
  and the browser made no network request.
"""
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402
import proxylib  # noqa: E402

DUALPIPE = proxylib.DUALPIPE_BIN
GUID_ALICE = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
GUID_HADOOP = "9a7c6d2e-1b3f-4c5d-8e9f-0a1b2c3d4e5f"
SIZES = [0, 100, 5000, 70000, 2 << 20]   # one file in each of the first five histogram buckets


def guid(i):
    return "00000000-0000-0000-0000-%012d" % i


class AssessBase(unittest.TestCase):
    dialect = "adls"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dp-assess-")
        idmap = os.path.join(self.tmp, "idmap.txt")
        with open(idmap, "w") as f:
            f.write("user alice %s\ngroup hadoop %s\n" % (GUID_ALICE, GUID_HADOOP))
        over = {"gen2": {"identity_map": idmap, "mappings": [{"gen1_prefix": "/data", "filesystem": proxylib.FS,
                                                              "prefix": ""}]}}
        gen1_kw = {"extra_args": ["--ls-limit", "3"]} if self.dialect == "hadoop" else {}
        self.s = proxylib.Stack(dialect=self.dialect, config=over, gen1_kw=gen1_kw)

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

    def put(self, path, data, owner="alice", group="hadoop"):
        self.g1("PUT", path, "CREATE", data, overwrite="true", write="true")
        self.g1("PUT", path, "SETOWNER", owner=owner, group=group)

    def mkdir(self, path, owner="alice", group="hadoop"):
        self.g1("PUT", path, "MKDIRS")
        self.g1("PUT", path, "SETOWNER", owner=owner, group=group)

    def config_file(self):
        p = os.path.join(self.tmp, "dualpipe.json")
        with open(p, "w") as f:
            json.dump(self.s.config, f)
        return p

    def assess(self, *args, timeout=60):
        out = os.path.join(self.tmp, "report.json")
        if os.path.exists(out):
            os.unlink(out)
        p = subprocess.run([DUALPIPE, "assess", *args, "--config", self.config_file(), "--json", out],
                           capture_output=True, text=True, timeout=timeout)
        rep = None
        if os.path.exists(out):
            with open(out) as f:
                rep = json.load(f)
        return p, rep

    def plant_known_tree(self):
        """/data/t: 4 directories, 5 files of SIZES each (20 files), so pages split on both dialects."""
        self.mkdir("/data")
        self.mkdir("/data/t")
        for d in range(4):
            self.mkdir("/data/t/d%d" % d)
            for i, n in enumerate(SIZES):
                self.put("/data/t/d%d/f%d" % (d, i), b"x" * n)

    def check_known_tree(self, m, extra_empty=0, extra_small=0):
        self.assertEqual(m["hist"][:5], [4 + extra_empty, 4 + extra_small, 4, 4, 4])
        self.assertEqual(m["hist"][5:], [0, 0, 0])


class AssessProblems(AssessBase):
    def test_every_problem_kind_and_exact_counts(self):
        s = self.s
        self.plant_known_tree()
        # names Gen2 refuses
        self.mkdir("/data/odd.")                      # a segment ending in '.' (directory and its file)
        self.put("/data/odd./f", b"")
        self.put("/data/back\\slash", b"")            # a backslash
        # identities the map cannot map: an owner, a group, an ACL entry
        self.put("/data/bob-owned", b"", owner="bob")
        self.put("/data/staff-group", b"", group="staff")
        self.put("/data/carol-acl", b"")
        self.g1("PUT", "/data/carol-acl", "MODIFYACLENTRIES", aclspec="user:carol:r--")
        # a default ACL on a directory
        self.mkdir("/data/dflt")
        self.g1("PUT", "/data/dflt", "MODIFYACLENTRIES", aclspec="default:user:alice:r-x")
        # a file with an expiry
        self.put("/data/exp", b"e")
        self.g1("PUT", "/data/exp", "SETEXPIRY", expiryOption="RelativeToNow", expireTime="3600000")
        # ops Gen2 cannot express, waiting in the journal: Gen2 is down while they go through the proxy
        self.put("/data/c1", b"a")
        self.put("/data/c2", b"b")
        s.gen2.stop()
        for op, path, params in (("SETTIMES", "/data/exp", {"modificationtime": "1000"}),
                                 ("CONCAT", "/data/c1", {"sources": "/data/c2"}),
                                 ("SETEXPIRY", "/data/c1", {"expiryOption": "NeverExpire"})):
            r = s.proxy.webhdfs("POST" if op == "CONCAT" else "PUT", path, op, **params)
            self.assertEqual(r.status, 200, (op, r))
        # online: the daemon holds the journal, its admin port answers
        admin = s.proxy.admin_url.replace("http://", "")
        p, rep = self.assess("/data", "--admin", admin, "--page-size", "4")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("through the running daemon's admin port", rep["journal"])
        self.check_report(rep, p.stdout)
        # offline: the daemon stopped, the journal read with the same config
        s.proxy.stop()
        p, rep = self.assess("/data", "--page-size", "4")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("read offline", rep["journal"])
        self.check_report(rep, p.stdout)
        # the HTML report in a real browser
        self.check_html()

    def check_report(self, rep, text):
        self.assertEqual(len(rep["mappings"]), 1)
        m = rep["mappings"][0]
        # 20 known files + odd./f, back\slash, bob-owned, staff-group, carol-acl, exp, c1 (c2 concatenated)
        self.assertEqual(m["files"], 27)
        self.assertEqual(m["dirs"], 1 + 4 + 1 + 1)    # t, d0-d3, odd., dflt
        self.assertEqual(m["bytes"], 4 * sum(SIZES) + 1 + 2)
        self.check_known_tree(m, extra_empty=5, extra_small=2)  # 5 empty files planted besides; exp, c1
        self.assertEqual(m["small_files"], 27 - 4)   # all but the 2 MiB files
        self.assertEqual(m["max_depth"], 3)          # /data/t/d0/f0 is three levels below /data
        self.assertEqual(m["largest_dirs"][0]["entries"], 9)  # /data itself
        self.assertEqual(m["largest_dirs"][0]["path"], "/data")

        def paths(kind):
            return {p["path"]: p["rule"] for p in m["problems"][kind]}
        names = paths("name")
        self.assertIn("/data/odd.", names)
        self.assertIn("/data/odd./f", names)
        self.assertIn("/data/back\\slash", names)
        # acl_over_limit is not planted: Gen1 (the emulator as HDFS) refuses an ACL over 32 entries per scope,
        # the same limit as Gen2's, so only a Gen1 that allows more could show one (xlate's count: test_xlate)
        self.assertEqual(m["problem_counts"]["acl_over_limit"], 0)
        ids = paths("unmapped_identity")
        self.assertIn("user bob", ids["/data/bob-owned"])
        self.assertIn("group staff", ids["/data/staff-group"])
        self.assertIn("user carol", ids["/data/carol-acl"])
        self.assertEqual(set(ids), {"/data/bob-owned", "/data/staff-group", "/data/carol-acl"})
        self.assertEqual(set(paths("default_acl")), {"/data/dflt"})
        self.assertEqual(set(paths("expiry")), {"/data/exp"})
        jops = [(p["path"], p["rule"].split(":")[0]) for p in m["problems"]["journal_op"]]
        self.assertEqual(sorted(jops), [("/data/c1", "CONCAT"), ("/data/c1", "SETEXPIRY"),
                                        ("/data/exp", "SETTIMES")])
        self.assertEqual(m["problem_counts"]["journal_op"], 3)
        self.assertGreater(rep["estimate"]["backfill_seconds"], 0)
        self.assertGreater(rep["estimate"]["gen1_read_bytes_per_s"], 0)   # one OPEN of the largest file (2 MiB)
        self.assertIn("files 27", text)
        self.assertIn("problem unmapped_identity", text)

    def check_html(self):
        chromium = shutil.which("chromium")
        if not chromium:
            self.fail("chromium is not installed (docker/install-deps.sh installs it)")
        html = os.path.join(self.tmp, "report.html")
        p = subprocess.run([DUALPIPE, "assess", "/data", "--no-journal", "--config", self.config_file(),
                            "--html", html], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 3, p.stderr)
        netlog = os.path.join(self.tmp, "netlog.json")
        prof = os.path.join(self.tmp, "chromium-profile")
        b = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-default-apps", "--disable-sync", "--user-data-dir=" + prof,
                            "--host-resolver-rules=MAP * ~NOTFOUND",
                            "--log-net-log=" + netlog, "--dump-dom", "file://" + html],
                           capture_output=True, text=True, timeout=60)
        dom = b.stdout
        self.assertIn('data-rendered="1"', dom, b.stderr[-2000:])
        for chart in ("chart-hist-0", "chart-dirs-0", "chart-problems-0"):
            self.assertIn('id="%s"' % chart, dom)
        self.assertGreaterEqual(dom.count("<rect"), 8)
        for kind in ("name", "unmapped_identity", "default_acl", "expiry"):
            self.assertIn('class="problem" data-kind="%s"' % kind, dom)
        # no network: no request the page started (initiator: the file's origin, "null") in the net log;
        # the browser's own background fetches (initiator "not an origin") are not the report's doing
        with open(netlog) as f:
            log = json.load(f)
        start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        page = [e["params"]["url"] for e in log["events"]
                if e["type"] == start and "url" in e.get("params", {})
                and e["params"].get("initiator") != "not an origin" and not e["params"]["url"].startswith("file:")]
        self.assertEqual(page, [])


class AssessProblemsHadoop(AssessProblems):
    dialect = "hadoop"


class AssessResume(AssessBase):
    dialect = "hadoop"

    def test_kill9_resume_and_bad_input(self):
        s = self.s
        self.mkdir("/data")
        for d in range(30):
            self.mkdir("/data/r%02d" % d)
            for i in range(4):
                self.put("/data/r%02d/f%d" % (d, i), b"y" * (d + i))
        files, total = 120, sum(d + i for d in range(30) for i in range(4))
        cursor = os.path.join(self.tmp, "cursor")
        # kill -9 mid-walk: 31 listings at 8 requests/s take ~4 s; the cursor is written every 2 s
        proc = subprocess.Popen([DUALPIPE, "assess", "/data", "--no-journal", "--ops-per-sec", "8", "--cursor",
                                 cursor, "--config", self.config_file()],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline and not self.checkpointed(cursor):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertTrue(self.checkpointed(cursor), "no checkpoint with progress in the cursor")
        before = s.gen1.counters()
        p, rep = self.assess("/data", "--no-journal", "--cursor", cursor)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(rep["walk"]["resumed"])
        m = rep["mappings"][0]
        self.assertEqual((m["files"], m["dirs"], m["bytes"]), (files, 30, total))
        self.assertFalse(os.path.exists(cursor))      # a finished walk removes its cursor
        self.assertEqual(os.listdir(self.tmp).count("cursor.spill"), 0)
        del before
        # the progress line: on a terminal only (a pty as stderr), never when stderr is a pipe
        p, rep = self.assess("/data", "--no-journal", "--ops-per-sec", "25")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        master, slave = pty.openpty()
        try:
            q = subprocess.run([DUALPIPE, "assess", "/data", "--no-journal", "--ops-per-sec", "25", "--config",
                                self.config_file()], stdout=subprocess.DEVNULL, stderr=slave, timeout=60)
            os.close(slave)
            slave = None
            tty = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                tty += chunk
        finally:
            os.close(master)
            if slave is not None:
                os.close(slave)
        self.assertEqual(q.returncode, 0)
        self.assertIn(b" entries  ", tty)
        self.assertIn(b"entries/s", tty)
        self.assertIn(b"ETA", tty)                  # Gen1's GETCONTENTSUMMARY gave the total
        # --help and usage errors as everywhere else (test_cli's conventions)
        for argv in (["--help"], ["-h"]):
            p = subprocess.run([DUALPIPE, "assess", *argv], capture_output=True, text=True, timeout=30)
            self.assertEqual((p.returncode, p.stderr), (0, ""))
            self.assertIn("usage: dualpipe assess", p.stdout)
        for argv, says in ((["--bogus"], "unknown option --bogus"), (["--config"], "--config needs a value"),
                           (["/data"], "--config FILE is required"),
                           (["/a/../b", "--config", self.config_file()], "PATH must be an absolute path"),
                           (["--threads", "0", "--config", "x"], "--threads: must be 1 to 64")):
            p = subprocess.run([DUALPIPE, "assess", *argv], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, (argv, p.stderr))
            self.assertIn(says, p.stderr.splitlines()[0])
            self.assertIn("usage: dualpipe assess", p.stderr)
            self.assertEqual(p.stdout, "")
        # before the proxy ever ran with this config there is no journal: said so, not an error
        cfg = dict(s.config, journal={"dir": os.path.join(self.tmp, "no-journal-yet")})
        cpath = os.path.join(self.tmp, "fresh.json")
        with open(cpath, "w") as f:
            json.dump(cfg, f)
        out = os.path.join(self.tmp, "fresh-report.json")
        p = subprocess.run([DUALPIPE, "assess", "/data", "--config", cpath, "--json", out], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        with open(out) as f:
            self.assertIn("the proxy has not run with this config", json.load(f)["journal"])
                # bad input: a path outside every mapping
        p, _ = self.assess("/elsewhere", "--no-journal")
        self.assertEqual(p.returncode, 1)
        self.assertIn("outside every mapping", p.stderr)
        # an unusable cursor: not a cursor, a cursor of another root, a directory
        with open(cursor, "w") as f:
            f.write("garbage\n")
        p, _ = self.assess("/data", "--no-journal", "--cursor", cursor)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a dualpipe walk cursor", p.stderr)
        with open(cursor, "w") as f:
            f.write('{"walk_cursor":1,"root":"/data/r01","stats":{},"state":null}\n')
        p, _ = self.assess("/data", "--no-journal", "--cursor", cursor)
        self.assertEqual(p.returncode, 1)
        self.assertIn("belongs to a walk of /data/r01", p.stderr)
        os.unlink(cursor)
        os.mkdir(cursor)
        p, _ = self.assess("/data", "--no-journal", "--cursor", cursor)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot read the cursor file", p.stderr)
        os.rmdir(cursor)
        # Gen1 fails mid-walk: listings answer 503 after the first few; retried, then a resumable failure
        s.gen1.fault("method=GET,op=LISTSTATUS_BATCH,action=fail,status=503,path=/data/r1")
        p, rep = self.assess("/data", "--no-journal", "--cursor", cursor, "--retries", "2")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("503", p.stderr)
        self.assertIn("resume", p.stderr)
        self.assertTrue(os.path.exists(cursor))
        s.gen1.admin("DELETE", "/faults")
        p, rep = self.assess("/data", "--no-journal", "--cursor", cursor)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(rep["walk"]["resumed"])
        self.assertGreater(rep["walk"]["retries"], 0)
        m = rep["mappings"][0]
        self.assertEqual((m["files"], m["dirs"], m["bytes"]), (files, 30, total))
        # Gen1 down from the start: a clear error, exit 1
        s.gen1.stop()
        p, _ = self.assess("/data", "--no-journal", "--retries", "1")
        self.assertEqual(p.returncode, 1)
        self.assertIn("Gen1 did not answer", p.stderr)

    @staticmethod
    def checkpointed(cursor):
        """The cursor holds a checkpoint taken after some directories were listed."""
        try:
            with open(cursor) as f:
                head = json.loads(f.readline())
            return head["stats"].get("requests", 0) >= 3
        except (OSError, ValueError, KeyError):
            return False


if __name__ == "__main__":
    unittest.main()
