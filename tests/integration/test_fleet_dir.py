#!/usr/bin/env python3
"""The fleet's directory on Gen2 (/.dualpipe at a mapped filesystem's root, common/base/reserved.h) is
dualpipe's own: users never see or touch it. Real daemon and emulators on loopback.

gen1-primary, with the directory planted on Gen2 (the phase record and a member's report):
- dualpipe verify / says equal (never "extra on Gen2"), dualpipe verify --repair leaves it, dualpipe backfill /
  copies what Gen1 has and leaves it;
- a resync of the mapping's root (its sweep removes what Gen1 lacks: a planted stray file goes) leaves it;
- a Gen1 path that would land on it is reported by verify as a name Gen2 cannot hold, and never copied onto it.
gen2-primary: the same refusals, nothing journaled for Gen1 from them.
gen2-only:
- LISTSTATUS, LISTSTATUS_BATCH (paged too) and GETCONTENTSUMMARY of / do not show or count it;
- every op on it or inside it (read, create, mkdirs, delete, rename into it) is 403 AccessControlException
  saying it is reserved, and Gen2 still holds exactly what was planted.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402
import proxylib  # noqa: E402

DUALPIPE = proxylib.DUALPIPE_BIN
FS = proxylib.FS
A = emulib.DEV_ACCOUNT


def plant(g2):
    """The fleet's directory as fleet.c lays it out: DIR/phase and DIR/members/ID. g2(method, path, query)."""
    for path, q in ((".dualpipe", "resource=directory"), (".dualpipe/phase", "resource=file"),
                    (".dualpipe/members", "resource=directory"), (".dualpipe/members/m1", "resource=file")):
        r = g2("PUT", path, q)
        assert r.status == 201, (path, r)


class Gen1Primary(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dp-fleetdir-")
        self.s = proxylib.Stack()

    def tearDown(self):
        try:
            self.s.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run_dp(self, *args, timeout=120):
        cfg = os.path.join(self.tmp, "dualpipe.json")
        with open(cfg, "w") as f:
            json.dump(self.s.config, f)
        admin = self.s.proxy.admin_url.replace("http://", "")
        return subprocess.run([DUALPIPE, *args, "--config", cfg, "--admin", admin], capture_output=True, text=True,
                              timeout=timeout)

    def fleet_intact(self):
        s = self.s
        for p in (".dualpipe", ".dualpipe/phase", ".dualpipe/members/m1"):
            self.assertEqual(s.g2("HEAD", p).status, 200, p)

    def test_walkers_and_root_resync_leave_it(self):
        s = self.s
        for i in range(3):
            r = proxylib.write_data(s.proxy, "PUT", "/d/f%d" % i, "CREATE", b"y" * (10 * i), overwrite="true")
            self.assertLess(r.status, 300, r)
        s.wait_drained()
        plant(s.g2)

        out = os.path.join(self.tmp, "verify.json")
        p = self.run_dp("verify", "/", "--json", out, "--no-progress")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("/: EQUAL", p.stdout)
        self.assertNotIn(".dualpipe", p.stdout)
        # the walk counted Gen1's entries only (d and its 3 files)
        with open(out) as f:
            rep = json.load(f)
        c = rep["result"]["counts"]
        self.assertEqual((c["compared"], c["dirs"], c["files"]), (4, 1, 3), c)
        p = self.run_dp("verify", "/", "--repair", "--no-progress")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.fleet_intact()

        # backfill copies what Gen1 has that Gen2 lacks, and leaves the fleet's directory
        self.assertEqual(s.g1("PUT", "/e/new", "CREATE", body=b"before the proxy", write="true").status, 201)
        p = self.run_dp("backfill", "/", "--no-progress")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        s.wait_drained()
        self.assertEqual(s.g2_read("e/new"), b"before the proxy")
        self.fleet_intact()

        # a resync of the mapping's root sweeps what Gen1 lacks (the stray file goes), never the fleet's directory
        self.assertEqual(s.g2("PUT", "stray", "resource=file").status, 201)
        r = s.proxy.admin("POST", "/admin/journal/resync?path=/")
        self.assertEqual(r.status, 200, r)
        s.wait_drained()
        self.assertEqual(s.g2("HEAD", "stray").status, 404)
        self.fleet_intact()
        s.assert_same(self, "/d")

    def test_gen1_path_on_it_is_refused(self):
        s = self.s
        plant(s.g2)
        # Gen1 has a /.dualpipe of its own (written behind the proxy): Gen2 cannot hold it for the data
        self.assertEqual(s.g1("PUT", "/.dualpipe/phase", "CREATE", body=b"user data", write="true").status, 201)
        p = self.run_dp("verify", "/", "--no-progress", "--settle-timeout", "5")
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn("reserved for dualpipe's phase record", p.stdout)
        r = s.proxy.admin("POST", "/admin/journal/resync?path=/.dualpipe")
        self.assertEqual(r.status, 200, r)
        r = s.proxy.admin("POST", "/admin/journal/resync?path=/")
        self.assertEqual(r.status, 200, r)
        s.wait_drained()
        self.fleet_intact()
        self.assertEqual(s.g2_read(".dualpipe/phase"), b"")


class Gen2Primary(unittest.TestCase):
    """gen2-primary serves on Gen2 with g2serve too: refused writes are journaled as refused, never mirrored."""

    def test_refused_and_not_mirrored(self):
        s = proxylib.Stack(config={"phase": "gen2-primary", "applier": {"backoff_base_ms": 50,
                                                                        "breaker_probe_ms": 200}})
        try:
            plant(s.g2)
            r = proxylib.write_data(s.proxy, "PUT", "/.dualpipe/x", "CREATE", b"abc", overwrite="true")
            self.assertEqual(r.status, 403, r)
            self.assertIn("reserved for dualpipe's phase record", r.json()["RemoteException"]["message"])
            r = s.proxy.webhdfs("DELETE", "/.dualpipe", "DELETE", recursive="true")
            self.assertEqual(r.status, 403, r)
            self.assertEqual(s.proxy.webhdfs("PUT", "/d", "MKDIRS").status, 200)
            names = [e["pathSuffix"] for e in s.proxy.webhdfs("GET", "/", "LISTSTATUS").json()["FileStatuses"]["FileStatus"]]
            self.assertEqual(names, ["d"])
            s.wait_drained(timeout=30)
            self.assertEqual(s.proxy.journal()["journal"]["live"], 0)
            self.assertEqual(s.g1("GET", "/.dualpipe", "GETFILESTATUS").status, 404)   # nothing mirrored to Gen1
            self.assertEqual(s.g1("GET", "/d", "GETFILESTATUS").status, 200)
            self.assertEqual(s.g2("HEAD", ".dualpipe/members/m1").status, 200)
            self.assertEqual(s.g2("HEAD", ".dualpipe/x").status, 404)
        finally:
            s.close()


def closed_port():
    so = socket.socket()
    so.bind(("127.0.0.1", 0))
    port = so.getsockname()[1]
    so.close()
    return port


class Gen2Only(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gen2 = emulib.Emu("gen2")
        cls.spool = tempfile.mkdtemp(prefix="dp-spool-")
        cls.proxy = None
        try:
            r = cls.gen2.gen2("PUT", "%s/%s?resource=filesystem" % (A, FS))
            assert r.status == 201, r
            cfg = proxylib.base_config("http://127.0.0.1:%d" % closed_port(), "adls", cls.gen2.url, cls.spool)
            cfg["phase"] = "gen2-only"
            cls.proxy = proxylib.Proxy(cfg)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.proxy:
                cls.proxy.close()
            cls.gen2.close()
        finally:
            shutil.rmtree(cls.spool, ignore_errors=True)

    def g2(self, method, path, query="", body=None):
        t = "%s/%s/%s" % (A, FS, path)
        return self.gen2.gen2(method, t + ("?" + query if query else ""), body)

    def wh(self, method, path, op, body=None, **params):
        return self.proxy.webhdfs(method, path, op, body, **params)

    def test_hidden_and_refused(self):
        plant(self.g2)
        self.assertEqual(self.wh("PUT", "/d", "MKDIRS").status, 200)
        self.assertEqual(self.wh("PUT", "/-a", "MKDIRS").status, 200)   # sorts before ".dualpipe"
        r = self.wh("PUT", "/d/f", "CREATE", b"12345", write="true")
        self.assertEqual(r.status, 201, r)

        r = self.wh("GET", "/", "LISTSTATUS")
        self.assertEqual(r.status, 200, r)
        names = [e["pathSuffix"] for e in r.json()["FileStatuses"]["FileStatus"]]
        self.assertEqual(names, ["-a", "d"])
        # paged one entry at a time: the hidden entry never shows, nothing is skipped
        seen, after = [], None
        for _ in range(10):
            kw = {"listSize": 1}
            if after:
                kw["listAfter"] = after
            doc = self.wh("GET", "/", "LISTSTATUS", **kw).json()["FileStatuses"]
            seen += [e["pathSuffix"] for e in doc["FileStatus"]]
            after = doc["continuationToken"]
            if not after:
                break
        self.assertEqual(seen, ["-a", "d"])
        r = self.wh("GET", "/", "LISTSTATUS_BATCH")
        self.assertEqual(r.status, 200, r)
        batch = r.json()["DirectoryListing"]["partialListing"]["FileStatuses"]["FileStatus"]
        self.assertEqual([e["pathSuffix"] for e in batch], ["-a", "d"])
        r = self.wh("GET", "/", "GETCONTENTSUMMARY")
        cs = r.json()["ContentSummary"]
        self.assertEqual((cs["directoryCount"], cs["fileCount"], cs["length"]), (3, 1, 5), cs)

        for method, path, op, params in (
                ("GET", "/.dualpipe", "GETFILESTATUS", {}),
                ("GET", "/.dualpipe", "LISTSTATUS", {}),
                ("GET", "/.dualpipe/phase", "OPEN", {"read": "true"}),
                ("PUT", "/.dualpipe/x", "CREATE", {"write": "true"}),
                ("PUT", "/.dualpipe/members/m2", "MKDIRS", {}),
                ("PUT", "/.dualpipe/phase", "SETPERMISSION", {"permission": "777"}),
                ("DELETE", "/.dualpipe", "DELETE", {"recursive": "true"}),
                ("PUT", "/d/f", "RENAME", {"destination": "/.dualpipe/f"}),
                ("PUT", "/.dualpipe/phase", "RENAME", {"destination": "/d/p"})):
            r = self.wh(method, path, op, b"x" if op == "CREATE" else None, **params)
            self.assertEqual(r.status, 403, (op, path, r))
            exc = r.json()["RemoteException"]
            self.assertEqual(exc["exception"], "AccessControlException", exc)
            self.assertIn("reserved for dualpipe's phase record", exc["message"])
        # Gen2 holds what was planted and nothing more
        self.assertEqual(self.g2("HEAD", ".dualpipe/phase").status, 200)
        self.assertEqual(self.g2("HEAD", ".dualpipe/members/m1").status, 200)
        for p in (".dualpipe/x", ".dualpipe/members/m2", ".dualpipe/f"):
            self.assertEqual(self.g2("HEAD", p).status, 404, p)
        self.assertEqual(self.wh("GET", "/d/f", "GETFILESTATUS").status, 200)


if __name__ == "__main__":
    unittest.main()
