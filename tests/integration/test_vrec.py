#!/usr/bin/env python3
"""The verify record (proxy/vrec.c): what `dualpipe verify` found, kept by the daemon in journal.dir, and the
gen2-only cutover's gate built on it (GET /admin/verify "cutover"), with a real daemon and both emulators.

- no verify recorded: refused, saying to run dualpipe verify /;
- a verify of a subtree is recorded but does not count (said so); a verify of / that finds both sides equal
  allows the cutover (and the metrics say so);
- a difference planted on Gen2: the verify of / fails and the cutover is refused with the count and the
  advice to --repair; verify --repair ends equal and allows it again;
- a record owed to Gen2, journaled after that verify began, parked and dropped by the operator: refused
  (Gen2 lacks that write), also after a restart (the record is durable); a new verify --repair clears it;
- writes through the proxy after a verify do not spoil it (they are journaled and applied to both);
- offline: with the daemon stopped, verify records into the same file with the journal's seq, and the
  started daemon counts it; `dualpipe verify --last` shows the record;
- a damaged record file: the daemon still starts, the cutover is refused with the reason, and the next
  verify replaces the file.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

DUALPIPE = proxylib.DUALPIPE_BIN
FAST = {"applier": {"backoff_base_ms": 50, "backoff_cap_ms": 500, "breaker_probe_ms": 200, "resync_attempts": 1}}


class VerifyRecord(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dp-vrec-")
        self.s = proxylib.Stack(config=FAST)

    def tearDown(self):
        try:
            self.s.gen1.admin("DELETE", "/faults")
            self.s.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def config_file(self):
        p = os.path.join(self.tmp, "dualpipe.json")
        with open(p, "w") as f:
            json.dump(self.s.config, f)
        return p

    def run_dp(self, *args, online=True, timeout=120):
        cmd = [DUALPIPE, *args, "--config", self.config_file()]
        if online:
            cmd += ["--admin", self.s.proxy.admin_url.replace("http://", "")]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def verify(self, *args, online=True, expect=0):
        p = self.run_dp("verify", *args, "--settle-timeout", "20", "--no-progress", online=online)
        self.assertEqual(p.returncode, expect, p.stdout + p.stderr)
        return p

    def record(self):
        r = self.s.proxy.admin("GET", "/admin/verify")
        self.assertEqual(r.status, 200, r)
        return r.json()

    def assert_cutover(self, ok, *words):
        rec = self.record()
        c = rec["cutover"]
        self.assertEqual(c["ok"], ok, c)
        for w in words:
            self.assertIn(w, c["why"])
        return rec

    def put(self, path, data):
        r = proxylib.write_data(self.s.proxy, "PUT", path, "CREATE", data, overwrite="true")
        self.assertLess(r.status, 300, (path, r))

    def tree(self):
        self.assertLess(self.s.proxy.webhdfs("PUT", "/v/d", "MKDIRS").status, 300)
        for i in range(4):
            self.put("/v/d/f%d" % i, b"x" * (100 * i))
        self.put("/w/g", b"other tree")
        self.put("/x/h", b"a third tree")
        self.s.wait_drained()

    def park_and_drop(self, path):
        """A record owed to Gen2 that parks (Gen1 refuses its resync's read), then dropped by the operator."""
        s = self.s
        self.assertEqual(s.g1("PUT", path, "CREATE", body=b"gen1 only", write="true").status, 201)
        s.gen1.fault("op=GETFILESTATUS,status=403")
        r = s.proxy.admin("POST", "/admin/journal/resync?path=" + path)
        self.assertEqual(r.status, 200, r)
        seq = r.json()["seq"]
        deadline = time.time() + 30
        while time.time() < deadline:
            recs = s.proxy.admin("GET", "/admin/journal/records?parked=1").json()["records"]
            if seq in [int(x["seq"]) for x in recs]:
                break
            time.sleep(0.2)
        else:
            self.fail("record %d never parked" % seq)
        s.gen1.admin("DELETE", "/faults")
        r = s.proxy.admin("POST", "/admin/journal/drop?seq=%d&confirm=yes" % seq)
        self.assertEqual(r.status, 200, r)
        return seq

    def test_cutover_gate(self):
        s = self.s
        self.assert_cutover(False, "no verify of the whole namespace recorded", "dualpipe verify /")
        m = s.proxy.metrics()
        self.assertEqual(m.get("dualpipe_verify_last_equal"), -1, m)
        self.tree()

        # a subtree: recorded, does not count
        self.verify("/v")
        rec = self.assert_cutover(False, "only a subtree of / was verified", "/v", "does not count")
        self.assertEqual(rec["last"]["root"], "/v")
        self.assertTrue(rec["last"]["equal"])
        self.assertTrue(rec["last"]["online"])

        # the whole namespace, equal
        p = self.verify("/")
        self.assertIn("allows a cutover", p.stdout)
        rec = self.assert_cutover(True)
        last = rec["last"]
        self.assertEqual((last["root"], last["equal"], last["differences"], last["in_flight"], last["mode"]),
                         ("/", True, 0, 0, "size"))
        self.assertEqual(last["begin_seq"], s.proxy.journal()["journal"]["max_seq"])
        self.assertGreater(last["size_only"], 0)
        m = s.proxy.metrics()
        self.assertEqual(m.get("dualpipe_verify_last_equal"), 1, m)
        self.assertEqual(m.get("dualpipe_verify_cutover_ok"), 1, m)
        self.assertAlmostEqual(m.get("dualpipe_verify_last_end_seconds"), time.time(), delta=120)

        # writes after the verify do not spoil it: journaled and applied to both sides
        self.put("/v/d/later", b"written after the verify")
        s.wait_drained()
        self.assert_cutover(True)

        # a difference behind the proxy's back: refused with the count and the advice
        self.assertEqual(s.g2("DELETE", "v/d/f1").status, 200)
        self.assertEqual(s.g2("PUT", "w/extra", "resource=file").status, 201)
        p = self.verify("/", expect=3)
        self.assertIn("refused", p.stdout)
        rec = self.assert_cutover(False, "found 2 differences", "missing 1", "extra 1", "dualpipe verify / --repair")
        self.assertEqual(rec["last"]["by_kind"].get("missing"), 1, rec)
        self.assertEqual(s.proxy.metrics().get("dualpipe_verify_cutover_ok"), 0)

        # a later verify of a subtree that is clean does not hide the whole one's differences
        self.verify("/x")
        self.assert_cutover(False, "found 2 differences")

        # repaired and verified again: allowed
        self.verify("/", "--repair")
        self.assert_cutover(True)
        self.assertEqual(s.g2_read("v/d/f1"), b"x" * 100)

        # a record owed to Gen2, journaled after the verify began, given up by the operator: refused
        seq = self.park_and_drop("/v/parked")
        rec = self.assert_cutover(False, "record %d" % seq, "given up", "Gen2 may lack that write",
                                  "dualpipe verify / --repair")
        self.assertEqual(rec["dropped_to_gen2"]["max_seq"], seq)

        # durable: a restart keeps the results and the drop
        s.proxy.restart()
        rec = self.assert_cutover(False, "record %d" % seq, "given up")
        self.assertEqual(rec["last"]["root"], "/")
        p = self.run_dp("verify", "--last")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("refused", p.stdout)
        self.assertIn("record %d" % seq, p.stdout)

        # the dropped write is a difference now; --repair copies it and the new verify counts
        self.verify("/", "--repair")
        self.assert_cutover(True)
        self.assertEqual(s.g2_read("v/parked"), b"gen1 only")

    def test_offline_and_damaged(self):
        s = self.s
        self.tree()
        jdir = s.journal_dir
        seq = s.proxy.journal()["journal"]["max_seq"]
        s.proxy.stop()
        # offline: the daemon is down; the record goes into the same file with the journal's seq
        p = self.verify("/", online=False)
        self.assertIn("allows a cutover", p.stdout)
        with open(os.path.join(jdir, "verify-last.json")) as f:
            disk = json.load(f)
        r = disk["results"][-1]
        self.assertEqual((r["root"], r["online"], r["seq_known"], r["begin_seq"]), ("/", False, True, seq))
        p = self.run_dp("verify", "--last", "--json", "-", online=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(json.loads(p.stdout)["cutover"]["ok"])
        s.proxy.start()
        rec = self.assert_cutover(True)
        self.assertFalse(rec["last"]["online"])

        # a damaged file: the daemon starts, the cutover is refused with the reason
        s.proxy.stop()
        with open(os.path.join(jdir, "verify-last.json"), "w") as f:
            f.write('{"version":1,"results":[{"root":')
        s.proxy.start()
        rec = self.assert_cutover(False, "cannot be read", "not JSON", "dualpipe verify /")
        self.assertIn("not JSON", rec["damaged"])
        self.assertIn("verify record cannot be read", s.proxy.log_since_start())
        self.verify("/")
        rec = self.assert_cutover(True)
        self.assertIsNone(rec["damaged"])

    def test_bad_requests(self):
        a = self.s.proxy.admin
        self.assertEqual(a("POST", "/admin/verify").status, 405)
        self.assertEqual(a("GET", "/admin/verify/begin?root=/").status, 405)
        self.assertEqual(a("POST", "/admin/verify/begin").status, 400)
        r = a("POST", "/admin/verify/end?token=%s&equal=1&mode=size" % ("0" * 32))
        self.assertEqual(r.status, 409, r)
        self.assertIn("no verify with that token", r.json()["error"])
        tok = a("POST", "/admin/verify/begin?root=/").json()["token"]
        self.assertEqual(a("POST", "/admin/verify/end?token=%s&equal=1&mode=fast" % tok).status, 400)
        self.assertEqual(a("POST", "/admin/verify/end?token=%s&equal=1&mode=size&kinds=x" % tok).status, 400)
        self.assertEqual(a("POST", "/admin/verify/nope").status, 404)
        # an end without differences but with paths in flight is not equal
        r = a("POST", "/admin/verify/end?token=%s&equal=1&mode=deep&in_flight=2" % tok)
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.json()["cutover"]["ok"])
        self.assertIn("left 2 paths in flight", r.json()["cutover"]["why"])


if __name__ == "__main__":
    unittest.main()
