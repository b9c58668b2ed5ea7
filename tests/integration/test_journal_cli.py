"""test_journal_cli: `dualpipe journal` (proxy/jcli.c) and the admin journal endpoints (proxy/admin.c), as
an operator uses them (README "Operator commands").

Offline (no daemon holds the journal's LOCK): a proxy that stopped with writes still owed to Gen2 (Gen2
down while they were written, then SIGTERM) leaves a journal that `status` and `list` read directly;
`resync PATH` journals a resync that the next start carries out (the path converges on Gen2); `retry`
of an unknown record fails with exit status 1.

Online (the daemon runs): the same commands go to its admin port, found from admin.listen in the config
(or --admin). A record is parked by a resync that fails for good (Gen1 refuses GETFILESTATUS with 403 and
applier.resync_attempts is 1); `retry ID` makes it converge once Gen1 answers again; `drop ID --yes`
gives another one up (the path is never copied); `drop` without --yes is refused with exit status 2 and
changes nothing. The admin endpoints answer bad requests with JSON errors: 400 (drop without
confirm=yes, a bad limit, a relative or un-normalised path), 404 (unknown record or endpoint), 405
(wrong method) and 409 (drop of a record that is not parked).
"""
import json
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

FAST = {"applier": {"backoff_base_ms": 50, "backoff_cap_ms": 500, "breaker_probe_ms": 200, "resync_attempts": 1}}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def jcli(config_path, *args, admin=None, timeout=60):
    """Run `dualpipe journal ARGS --config FILE [--admin H:P]`: (exit status, stdout, stderr)."""
    cmd = [proxylib.DUALPIPE_BIN, "journal"] + list(args) + ["--config", config_path]
    if admin:
        cmd += ["--admin", admin]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def records(config_path, *extra, admin=None):
    rc, out, err = jcli(config_path, "list", "--json", "--limit", "10000", *extra, admin=admin)
    if rc != 0:
        raise AssertionError("journal list --json: %d\n%s%s" % (rc, out, err))
    return json.loads(out)["records"]


class Offline(unittest.TestCase):
    """A stopped proxy's journal, read and changed by the CLI on its own."""

    def setUp(self):
        self.s = proxylib.Stack(config=FAST)
        self.p = self.s.proxy

    def tearDown(self):
        try:
            self.s.gen2.admin("POST", "/up")
        finally:
            self.s.close()

    def test_offline_status_list_resync_then_converge(self):
        s, p = self.s, self.p
        self.assertEqual(s.gen2.admin("POST", "/down?ms=120000").status, 200)
        paths = ["/off/a%d" % i for i in range(3)]
        for i, path in enumerate(paths):
            r = p.webhdfs("PUT", path, "CREATE", body=b"offline-%d" % i, write="true")
            self.assertEqual(r.status, 201, r)
        p.stop()  # SIGTERM: the applier drains for a while, Gen2 is still down, the records stay
        cfg = p.config_path

        rc, out, err = jcli(cfg, "status")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("offline", out)
        pending = [ln for ln in out.splitlines() if ln.startswith("pending records")]
        self.assertEqual(len(pending), 1, out)
        self.assertGreaterEqual(int(pending[0].split()[-1]), len(paths), out)
        rc, out, err = jcli(cfg, "status", "--json")
        self.assertEqual(rc, 0, out + err)
        st = json.loads(out)
        self.assertGreaterEqual(int(st["journal"]["pending"]), len(paths), st)

        recs = records(cfg)
        listed = {r["path"] for r in recs}
        for path in paths:
            self.assertIn(path, listed, recs)
        rc, out, err = jcli(cfg, "list")
        self.assertEqual(rc, 0, out + err)
        self.assertTrue(out.startswith("SEQ"), out)
        for path in paths:
            self.assertIn(path, out)
        # paging: --limit 1 shows one record and says how to go on
        rc, out, err = jcli(cfg, "list", "--limit", "1")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("--after", out)
        first = min(int(r["seq"]) for r in recs)
        later = records(cfg, "--after", str(first))
        self.assertNotIn(first, [int(r["seq"]) for r in later])
        self.assertEqual(len(later), len(recs) - 1)

        # A path only Gen1 has (written around the proxy): resync it offline.
        self.assertEqual(s.g1("PUT", "/off/side", "CREATE", body=b"written around the proxy", write="true").status,
                         201)
        rc, out, err = jcli(cfg, "resync", "//off//side/")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("journaled as record", out)
        seq = int(out.split()[-1])
        mine = [r for r in records(cfg) if int(r["seq"]) == seq]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["path"], "/off/side")  # normalised

        # nothing parked: retry of an unknown record fails, and changes nothing
        rc, out, err = jcli(cfg, "retry", "999999")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("no live record 999999", err)
        rc, out, err = jcli(cfg, "resync", "relative/path")
        self.assertEqual(rc, 1, out + err)

        # Gen2 back, the proxy back: everything converges, the offline resync included.
        self.assertEqual(s.gen2.admin("POST", "/up").status, 200)
        p.start()
        s.wait_drained(timeout=60)
        self.assertEqual(s.g2_read("off/side"), b"written around the proxy")
        s.assert_same(self, "/off")

    def test_drop_without_yes_refuses(self):
        self.p.stop()
        rc, out, err = jcli(self.p.config_path, "drop", "1")
        self.assertEqual(rc, 2, out + err)
        self.assertIn("--yes", err)
        rc, out, err = jcli(self.p.config_path, "frobnicate")
        self.assertEqual(rc, 2, out + err)
        rc, out, err = jcli(self.p.config_path, "retry")
        self.assertEqual(rc, 2, out + err)


class Online(unittest.TestCase):
    """A running proxy, reached through its admin port."""

    @classmethod
    def setUpClass(cls):
        cls.admin_port = free_port()
        cls.s = proxylib.Stack(config=proxylib.deep_merge(FAST, {"admin": {"listen": "127.0.0.1:%d" % cls.admin_port}}))
        cls.p = cls.s.proxy
        cls.cfg = cls.p.config_path

    @classmethod
    def tearDownClass(cls):
        try:
            cls.s.gen1.admin("DELETE", "/faults")
            cls.s.gen2.admin("POST", "/up")
        finally:
            cls.s.close()

    def tearDown(self):
        self.s.gen1.admin("DELETE", "/faults")

    def wait_parked(self, seq, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if seq in [int(r["seq"]) for r in records(self.cfg, "--parked")]:
                return
            time.sleep(0.2)
        self.fail("record %d was not parked in %ds: %s" % (seq, timeout, records(self.cfg)))

    def park(self, path, body):
        """Write path on Gen1 only, make Gen1 refuse GETFILESTATUS, resync it: the record parks."""
        self.assertEqual(self.s.g1("PUT", path, "CREATE", body=body, write="true").status, 201)
        self.s.gen1.fault("op=GETFILESTATUS,status=403")
        rc, out, err = jcli(self.cfg, "resync", path)
        self.assertEqual(rc, 0, out + err)
        seq = int(out.split()[-1])
        self.wait_parked(seq)
        return seq

    def test_status_and_list(self):
        rc, out, err = jcli(self.cfg, "status")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("daemon running", out)
        self.assertIn("io backend", out)
        rc, out, err = jcli(self.cfg, "status", "--json")
        self.assertEqual(rc, 0, out + err)
        # --json prints the admin API's document as it is
        self.assertEqual(sorted(json.loads(out)), sorted(self.p.journal()))
        # --admin names the port explicitly (needed when admin.listen says port 0)
        rc, out2, err = jcli(self.cfg, "status", "--json", admin="127.0.0.1:%d" % self.admin_port)
        self.assertEqual(rc, 0, out2 + err)
        self.assertIn("journal", json.loads(out2))
        rc, out, err = jcli(self.cfg, "list")
        self.assertEqual(rc, 0, out + err)
        rc, out, err = jcli(self.cfg, "status", admin="127.0.0.1:1")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("does not answer", err)

    def test_resync_online(self):
        s = self.s
        self.assertEqual(s.g1("PUT", "/on/x", "CREATE", body=b"gen1 only", write="true").status, 201)
        rc, out, err = jcli(self.cfg, "resync", "/on//x/")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("journaled as record", out)
        s.wait_drained(timeout=30)
        self.assertEqual(s.g2_read("on/x"), b"gen1 only")
        rc, out, err = jcli(self.cfg, "resync", "/on/../x")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("normalised path", err)

    def test_park_retry_drop(self):
        s = self.s
        seq = self.park("/park/a", b"parked then retried")
        rc, out, err = jcli(self.cfg, "list", "--parked")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("/park/a", out)
        self.assertIn("PARKED", out.upper())
        st = json.loads(jcli(self.cfg, "status", "--json")[1])
        self.assertGreaterEqual(int(st["journal"]["parked"]), 1, st)
        m = self.p.metrics()
        self.assertGreaterEqual(m.get('dualpipe_journal_records{state="parked"}', 0), 1, m)

        # drop without --yes: refused, still parked
        rc, out, err = jcli(self.cfg, "drop", str(seq))
        self.assertEqual(rc, 2, out + err)
        self.assertIn("--yes", err)
        self.assertIn(seq, [int(r["seq"]) for r in records(self.cfg, "--parked")])

        # Gen1 answers again: retry, and the path converges
        s.gen1.admin("DELETE", "/faults")
        rc, out, err = jcli(self.cfg, "retry", str(seq))
        self.assertEqual(rc, 0, out + err)
        s.wait_drained(timeout=30)
        self.assertEqual(s.g2_read("park/a"), b"parked then retried")
        rc, out, err = jcli(self.cfg, "retry", str(seq))
        self.assertEqual(rc, 1, out + err)  # no longer live

        # another one parks, and is dropped: gone from the journal, never copied
        seq2 = self.park("/park/b", b"dropped")
        rc, out, err = jcli(self.cfg, "drop", str(seq2), "--yes")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("dropped", out)
        s.gen1.admin("DELETE", "/faults")
        deadline = time.time() + 10
        while time.time() < deadline and seq2 in [int(r["seq"]) for r in records(self.cfg)]:
            time.sleep(0.1)
        self.assertNotIn(seq2, [int(r["seq"]) for r in records(self.cfg)])
        self.assertEqual(s.g2("HEAD", "park/b").status, 404)
        rc, out, err = jcli(self.cfg, "drop", str(seq2), "--yes")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("no live record", err)

        # retry --all with nothing parked
        rc, out, err = jcli(self.cfg, "retry", "--all")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("0 parked record", out)

    def test_admin_endpoint_errors(self):
        p = self.p

        def err(r, status, part):
            self.assertEqual(r.status, status, r)
            self.assertIn(part, r.json()["error"])

        err(p.admin("POST", "/admin/journal/drop?seq=5", b""), 400, "confirm=yes")
        err(p.admin("POST", "/admin/journal/drop?seq=999999&confirm=yes", b""), 404, "no live record 999999")
        err(p.admin("GET", "/admin/journal/records?limit=0"), 400, "limit")
        err(p.admin("GET", "/admin/journal/records?limit=10001"), 400, "limit")
        err(p.admin("GET", "/admin/journal/records?after=-1"), 400, "after")
        err(p.admin("GET", "/admin/journal/retry"), 405, "method")
        err(p.admin("POST", "/admin/journal", b""), 405, "method")
        err(p.admin("GET", "/admin/journal/nope"), 404, "no such")
        err(p.admin("POST", "/admin/journal/retry", b""), 400, "seq=N")
        err(p.admin("POST", "/admin/journal/resync?path=a/b", b""), 400, "absolute")
        err(p.admin("POST", "/admin/journal/resync?path=/a/%2E%2E/b", b""), 400, "path")
        err(p.admin("POST", "/admin/journal/resync?path=/a%00b", b""), 400, "path")
        r = p.admin("GET", "/admin/journal/records?parked=0&limit=5")
        self.assertEqual(r.status, 200, r)
        self.assertIn("records", r.json())
        # a live record that is not parked: Gen2 down holds a write in the journal
        self.assertEqual(self.s.gen2.admin("POST", "/down?ms=60000").status, 200)
        try:
            self.assertEqual(p.webhdfs("PUT", "/held/f", "CREATE", body=b"h", write="true").status, 201)
            held = [r for r in records(self.cfg) if r["path"] == "/held/f"]
            self.assertEqual(len(held), 1, records(self.cfg))
            err(p.admin("POST", "/admin/journal/drop?seq=%d&confirm=yes" % int(held[0]["seq"]), b""), 409,
                "is not parked")
            rc, out, e = jcli(self.cfg, "drop", str(held[0]["seq"]), "--yes")
            self.assertEqual(rc, 1, out + e)
            self.assertIn("is not parked", e)
        finally:
            self.assertEqual(self.s.gen2.admin("POST", "/up").status, 200)
        self.s.wait_drained(timeout=60)


if __name__ == "__main__":
    unittest.main()
