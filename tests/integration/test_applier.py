"""test_applier: the Gen2 applier's own behaviour through the real proxy (proxylib Stack: Gen1 emulator,
Gen2 emulator, dualpipe): retries of transient Gen2 errors (503 with Retry-After, a connection reset
mid-append), a non-retryable refusal reported with path, op and Gen2 status, the ACL read-modify-write
redone after a 412, metadata copied after a create that Gen1 already renamed, unmapped paths and names
Gen2 would reject counted as skipped, a rename across filesystems recorded as a divergence, and a
clean stop (exit 0, no sanitizer report) while Gen2 requests are still in flight.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402


class Applier(unittest.TestCase):
    def setUp(self):
        self.s = proxylib.Stack()
        self.p = self.s.proxy

    def tearDown(self):
        self.s.close()

    def ok(self, r, status):
        self.assertEqual(r.status, status, r)
        return r

    def create(self, path, data, **kw):
        return self.ok(self.p.webhdfs("PUT", path, "CREATE", body=data, write="true", **kw), 201)

    def test_transient_errors_are_retried(self):
        g2 = self.s.gen2
        g2.fault("method=PATCH,op=flush,action=fail,status=503,retry_after=1,count=2")
        g2.fault("method=PATCH,op=append,action=reset,count=1")
        self.create("/r/file", b"retried bytes", permission="640")
        st = self.s.wait_applied(60)
        self.assertEqual(st["failure_count"], 0, st)
        self.assertEqual(self.s.g2_read("/r/file"), b"retried bytes")
        c = g2.counters()
        self.assertEqual(c["faults"]["fail"], 2, c)     # both 503s were met, and retried past
        self.assertEqual(c["faults"]["reset"], 1, c)
        self.assertGreaterEqual(c["requests"].get("PATCH flush", 0), 3, c)
        self.s.assert_same(self, "/r")

    def test_non_retryable_refusal_is_reported(self):
        self.s.gen2.fault("method=PUT,op=create-file,action=fail,status=501,count=1")
        self.create("/nr/f", b"on Gen1 only")
        st = self.s.wait_applied(30)
        self.assertEqual(st["failure_count"], 1, st)
        f = st["failures"][0]
        self.assertEqual((f["op"], f["path"]), ("CREATE", "/nr/f"), f)
        self.assertIn("501", f["detail"])
        self.assertEqual(self.s.g1_read("/nr/f"), b"on Gen1 only")
        self.assertEqual(self.s.g2("HEAD", "/nr/f").status, 404)

    def test_acl_write_redone_after_precondition_failed(self):
        self.ok(self.p.webhdfs("PUT", "/acl", "MKDIRS", permission="750"), 200)
        self.s.wait_applied()
        self.s.gen2.fault("method=PATCH,op=set-acl,action=fail,status=412,count=1")
        self.ok(self.p.webhdfs("PUT", "/acl", "MODIFYACLENTRIES", aclspec="user:alice:rwx,default:user:bob:r-x"), 200)
        st = self.s.wait_applied()
        self.assertEqual(st["failure_count"], 0, st)
        self.s.assert_same(self, "/acl")

    def test_metadata_follows_a_quick_rename(self):
        # Gen1 has moved the nodes before the applier copies their metadata: the rename finishes it.
        self.create("/quick/d/s/f", b"x", permission="600")
        self.ok(self.p.webhdfs("PUT", "/quick/d", "SETOWNER", owner="alice", group="eng"), 200)
        self.ok(self.p.webhdfs("PUT", "/quick/d", "RENAME", destination="/quick/e"), 200)
        self.ok(self.p.webhdfs("PUT", "/quick/e/s", "RENAME", destination="/quick/t"), 200)
        self.s.wait_applied()
        self.s.assert_same(self, "/quick")

    def test_concurrentappends_are_copied_together(self):
        g2 = self.s.gen2
        g2.fault("method=*,op=*,action=latency,latency_ms=300,count=1000")
        parts = [b"part-%02d;" % i for i in range(10)]
        for part in parts:
            r = self.p.webhdfs("POST", "/ca/log", "CONCURRENTAPPEND", body=part, prefix="/WebHdfsExt",
                               appendMode="autocreate")
            self.assertEqual(r.status, 200, r)
        st = self.s.wait_applied(60)
        self.assertEqual(st["failure_count"], 0, st)
        self.assertEqual(self.s.g2_read("/ca/log"), b"".join(parts))
        creates = g2.counters()["requests"].get("PUT create-file", 0)
        self.assertLess(creates, 5, g2.counters())  # not one full copy per append

    def test_settimes_divergence_is_listed(self):
        self.create("/t/f", b"x")
        self.ok(self.p.webhdfs("PUT", "/t/f", "SETTIMES", modificationtime="1000", accesstime="-1"), 200)
        st = self.s.wait_applied()
        self.assertEqual(st["divergence_count"], 1, st)
        d = st["divergences"][0]
        self.assertEqual((d["op"], d["path"]), ("SETTIMES", "/t/f"), d)


class Mappings(unittest.TestCase):
    def setUp(self):
        self.s = proxylib.Stack(filesystems=("lake", "other"), config={"gen2": {"mappings": [
            {"gen1_prefix": "/m", "filesystem": "lake", "prefix": "in"},
            {"gen1_prefix": "/o", "filesystem": "other", "prefix": ""}]}})
        self.p = self.s.proxy

    def tearDown(self):
        self.s.close()

    def test_skips_and_cross_filesystem_rename(self):
        p = self.p
        self.assertEqual(p.webhdfs("PUT", "/elsewhere/f", "CREATE", body=b"1", write="true").status, 201)
        self.assertEqual(p.webhdfs("PUT", "/m/bad.", "CREATE", body=b"2", write="true").status, 201)
        self.assertEqual(p.webhdfs("PUT", "/m/good", "CREATE", body=b"3", write="true").status, 201)
        self.assertEqual(p.webhdfs("PUT", "/o", "MKDIRS").status, 200)
        r = p.webhdfs("PUT", "/m/good", "RENAME", destination="/o/good")
        self.assertEqual(r.json(), {"boolean": True}, r)
        st = self.s.wait_applied()
        self.assertEqual(st["skipped_unmapped"], 1, st)
        self.assertEqual(st["skipped_invalid_name"], 1, st)
        self.assertEqual(st["divergence_count"], 1, st)
        self.assertEqual(st["divergences"][0]["op"], "RENAME")
        self.assertIn("filesystem", st["divergences"][0]["detail"])
        self.assertEqual(st["failure_count"], 0, st)
        self.assertEqual(self.s.g2_read("/in/good", fs="lake"), b"3")  # the mapping's prefix is applied


class Stopping(unittest.TestCase):
    def test_stop_with_requests_in_flight(self):
        s = proxylib.Stack()
        try:
            s.gen2.fault("method=*,op=*,action=latency,latency_ms=9000,count=100")
            for i in range(3):
                r = s.proxy.webhdfs("PUT", "/slow/f%d" % i, "CREATE", body=b"x", write="true")
                self.assertEqual(r.status, 201, r)
            time.sleep(0.3)
            self.assertGreater(int(s.proxy.status()["pending"]), 0)
            t0 = time.time()
            rc = s.proxy.stop()
            self.assertEqual(rc, 0)
            self.assertLess(time.time() - t0, 14)
            self.assertEqual(s.g1_read("/slow/f0"), b"x")
        finally:
            s.close()  # fails on a sanitizer report in the proxy's log


if __name__ == "__main__":
    unittest.main()
