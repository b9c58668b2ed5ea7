"""test_applier: the Gen2 applier's own behaviour through the real proxy (proxylib Stack: Gen1 emulator,
Gen2 emulator, dualpipe): retries of transient Gen2 errors (503 with Retry-After, a connection reset
mid-append), a non-retryable refusal reported with path, op and Gen2 status, a Gen2 token that cannot
be had holding the write (no retries, no parking), the ACL read-modify-write redone after a 412, metadata copied
after a create that Gen1 already renamed, unmapped paths and names Gen2 would reject counted as
skipped, renames Gen2 cannot do as renames (across filesystems, into and out of the mapped paths)
mirrored by copying the subtree from Gen1 (a tree with nested files and ACLs; a directory larger than
one LISTSTATUS page) and deleting the source on Gen2, and a clean stop (exit 0, no sanitizer report)
while Gen2 requests are still in flight.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

CLIENT_ID = "33333333-bbbb-4ccc-8ddd-444444444444"
CLIENT_SECRET = "applier-t3st-secret~value"


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
        # the default x-ms-version: the body goes as one append that also flushes (flush=true)
        g2 = self.s.gen2
        g2.fault("method=PATCH,op=append,action=fail,status=503,retry_after=1,count=2")
        g2.fault("method=PATCH,op=append,action=reset,count=1")
        self.create("/r/file", b"retried bytes", permission="640")
        st = self.s.wait_applied(60)
        self.assertEqual(st["failure_count"], 0, st)
        self.assertEqual(self.s.g2_read("/r/file"), b"retried bytes")
        c = g2.counters()
        self.assertEqual(c["faults"]["fail"], 2, c)     # both 503s were met, and retried past
        self.assertEqual(c["faults"]["reset"], 1, c)
        self.assertGreaterEqual(c["requests"].get("PATCH append-flush", 0), 4, c)
        self.assertEqual(c["requests"].get("PATCH flush", 0), 0, c)
        self.s.assert_same(self, "/r")

    def test_transient_errors_are_retried_two_requests(self):
        # an x-ms-version without append flush=true: append, then flush, each retried on its own
        self.s.close()
        self.s = proxylib.Stack(config={"gen2": {"version": "2021-04-10"}})
        self.p = self.s.proxy
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
        self.assertEqual(c["requests"].get("PATCH append-flush", 0), 0, c)
        self.s.assert_same(self, "/r")

    def test_non_retryable_refusal_is_resynced(self):
        # A Gen2 refusal that retrying cannot fix does not leave Gen2 behind: the path is copied from Gen1
        # (a resync), and the refusal stays visible to operators in the failures list.
        self.s.gen2.fault("method=PUT,op=create-file,action=fail,status=501,count=1")
        self.create("/nr/f", b"on Gen1 first")
        st = self.s.wait_applied(30)
        self.assertEqual(st["resynced"], 1, st)
        self.assertEqual(st["parked"], 0, st)
        f = st["failures"][0]
        self.assertEqual((f["op"], f["path"]), ("CREATE", "/nr/f"), f)
        self.assertIn("501", f["detail"])
        self.assertIn("resync", f["detail"])
        self.assertEqual(self.s.g1_read("/nr/f"), b"on Gen1 first")
        self.assertEqual(self.s.g2_read("/nr/f"), b"on Gen1 first")
        self.s.assert_same(self, "/nr")

    def test_no_token_holds_without_retries(self):
        self.s.close()
        self.s = proxylib.Stack(
            config=lambda stack: {"gen2": {"auth": {
                "mode": "client_credentials", "account_key": None, "authority": stack.gen2.url,
                "tenant_id": "contoso.onmicrosoft.com", "client_id": CLIENT_ID,
                "client_secret_env": "DP_TEST_CLIENT_SECRET"}},
                "applier": {"resync_attempts": 1, "breaker_probe_ms": 500}},
            proxy_env={"DP_TEST_CLIENT_SECRET": "not-the-secret"},
            gen2_kw={"extra_args": ["--oauth-client-id", CLIENT_ID],
                     "env": {"DUALPIPE_EMU_CLIENT_SECRET": CLIENT_SECRET}})
        self.p = self.s.proxy
        self.create("/noauth/f", b"Gen1 only")
        # Refused credentials are an account-level problem: the write is held (pending, not parked, not
        # resynced) and reported, and only the breaker's probe asks for a token again, not every record.
        deadline = time.time() + 20
        while not self.p.status()["gen2_problems"] and time.time() < deadline:
            time.sleep(0.05)
        st = self.p.status()
        self.assertEqual((st["pending"], st["parked"], st["resynced"], st["failure_count"]), (1, 0, 0, 0), st)
        pb = st["gen2_problems"][0]
        self.assertEqual(pb["kind"], "authentication", pb)
        self.assertIn("invalid_client", pb["detail"])
        self.assertNotIn("not-the-secret", str(st))
        tokens = sum(n for k, n in self.s.g2_counters().items() if k.endswith(" token"))
        time.sleep(2)
        asked = sum(n for k, n in self.s.g2_counters().items() if k.endswith(" token")) - tokens
        self.assertLessEqual(asked, 8, "the token service is asked by the probe only (every 0.5 s)")
        r = self.p.admin("GET", "/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertIn("rejects the proxy's credential", r.body.decode())

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

    def test_metrics(self):
        self.s.gen2.fault("method=PATCH,op=append,action=fail,status=503,count=1")
        self.create("/mx/a", b"a")
        self.create("/mx/b", b"b")
        self.ok(self.p.webhdfs("PUT", "/mx/a", "SETTIMES", modificationtime="1000", accesstime="-1"), 200)
        self.s.wait_applied(60)
        m = {}
        for line in self.p.admin("GET", "/metrics").body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                m[name] = float(value)
        self.assertEqual(m.get('dualpipe_applier_operations_total{op="CREATE",outcome="applied"}'), 2, m)
        self.assertEqual(m.get('dualpipe_applier_operations_total{op="SETTIMES",outcome="applied"}'), 1, m)
        self.assertEqual(m.get('dualpipe_applier_retries_total{upstream="gen2"}'), 1, m)
        self.assertEqual(m.get('dualpipe_applier_upstream_answers_total{upstream="gen2",code="5xx"}'), 1, m)
        self.assertGreaterEqual(m.get('dualpipe_applier_upstream_answers_total{upstream="gen2",code="2xx"}'), 6, m)
        self.assertGreaterEqual(m.get('dualpipe_applier_upstream_answers_total{upstream="gen1",code="2xx"}'), 2, m)
        self.assertEqual(m.get("dualpipe_applier_lag_seconds_count"), 3, m)
        self.assertEqual(m.get("dualpipe_applier_in_flight"), 0, m)

    def test_settimes_kept_as_property(self):
        self.create("/t/f", b"x")
        self.ok(self.p.webhdfs("PUT", "/t/f", "SETTIMES", modificationtime="1000", accesstime="-1"), 200)
        st = self.s.wait_applied()
        self.assertEqual(st["divergence_count"], 0, st)
        g1 = self.s.g1_status("/t/f")
        self.assertEqual(proxylib.gen2_times(self.s, "t/f"),
                         {"mtime": 1000, "atime": g1["accessTime"], "len": 1})


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
        self.assertEqual(p.webhdfs("PUT", "/m/good", "CREATE", body=b"3", write="true", permission="604").status, 201)
        self.assertEqual(p.webhdfs("PUT", "/o", "MKDIRS").status, 200)
        r = p.webhdfs("PUT", "/m/good", "RENAME", destination="/o/good")
        self.assertEqual(r.json(), {"boolean": True}, r)
        st = self.s.wait_applied()
        self.assertEqual(st["skipped_unmapped"], 1, st)
        self.assertEqual(st["skipped_invalid_name"], 1, st)
        self.assertEqual(st["divergence_count"], 0, st)
        self.assertEqual(st["failure_count"], 0, st)
        self.assertEqual(self.s.g2_read("good", fs="other"), b"3")           # copied from Gen1 ...
        self.assertEqual(self.s.g2("HEAD", "in/good", fs="lake").status, 404)  # ... and gone at the source
        self.assertEqual(proxylib.compare(self.s, "/o", fs="other", gen2_dir="", include_root=False), [])

    def test_tree_renamed_across_filesystems(self):
        p, s = self.p, self.s
        files = {"/m/t/a/f1": b"one", "/m/t/a/b/f2": b"two" * 1000, "/m/t/a/b/c/f3": b"", "/m/t/top": b"top"}
        for path, data in files.items():
            self.assertEqual(p.webhdfs("PUT", path, "CREATE", body=data, write="true", permission="640").status, 201)
        self.assertEqual(p.webhdfs("PUT", "/m/t/empty", "MKDIRS", permission="700").status, 200)
        self.assertEqual(p.webhdfs("PUT", "/m/t/a", "SETACL", aclspec="user::rwx,user:alice:r-x,group::r-x,mask::r-x,"
                                   "other::---,default:user::rwx,default:user:bob:rwx,default:group::r-x,"
                                   "default:mask::rwx,default:other::---").status, 200)
        self.assertEqual(p.webhdfs("PUT", "/m/t/a/b/f2", "MODIFYACLENTRIES", aclspec="user:carol:rw-").status, 200)
        self.assertEqual(p.webhdfs("PUT", "/m/t/a/b", "SETOWNER", owner="dave", group="ops").status, 200)
        self.assertEqual(p.webhdfs("PUT", "/m/t/a/b", "SETPERMISSION", permission="1750").status, 200)
        self.assertEqual(p.webhdfs("PUT", "/o/dst", "MKDIRS").status, 200)
        s.wait_applied()
        # /o/dst exists: HDFS moves the tree into it, as /o/dst/t
        r = p.webhdfs("PUT", "/m/t", "RENAME", destination="/o/dst")
        self.assertEqual(r.json(), {"boolean": True}, r)
        st = s.wait_applied()
        self.assertEqual((st["failure_count"], st["divergence_count"]), (0, 0), st)
        self.assertEqual(s.compare("/o/dst", fs="other", gen2_dir="dst"), [])
        self.assertEqual(s.compare("/m", fs="lake", gen2_dir="in"), [])
        self.assertEqual(s.g2("HEAD", "in/t", fs="lake").status, 404)
        self.assertEqual(s.g2_read("dst/t/a/b/f2", fs="other"), b"two" * 1000)
        # and back again, into a path that does not exist yet
        r = p.webhdfs("PUT", "/o/dst/t/a", "RENAME", destination="/m/back")
        self.assertEqual(r.json(), {"boolean": True}, r)
        st = s.wait_applied()
        self.assertEqual((st["failure_count"], st["divergence_count"]), (0, 0), st)
        self.assertEqual(s.compare("/m", fs="lake", gen2_dir="in"), [])
        self.assertEqual(s.compare("/o/dst", fs="other", gen2_dir="dst"), [])

    def test_renames_into_and_out_of_the_mapped_paths(self):
        p, s = self.p, self.s
        # A directory larger than one LISTSTATUS page of the copy, written on Gen1 only (unmapped).
        n = 300
        self.assertEqual(s.g1("PUT", "/elsewhere/big/sub", "MKDIRS", permission="750").status, 200)
        for i in range(n):
            r = s.g1("PUT", "/elsewhere/big/f%03d" % i, "CREATE", body=b"%d" % i, write="true", permission="644")
            self.assertEqual(r.status, 201, r)
        self.assertEqual(s.g1("PUT", "/elsewhere/big/sub/g", "CREATE", body=b"g", write="true").status, 201)
        self.assertEqual(s.g1("PUT", "/elsewhere/big/sub", "SETACL",
                              aclspec="user::rwx,user:erin:r-x,group::r-x,mask::r-x,other::---").status, 200)
        self.assertEqual(p.webhdfs("PUT", "/m", "MKDIRS").status, 200)
        lists0 = s.g1_counters().get("GET LISTSTATUS", 0)
        r = p.webhdfs("PUT", "/elsewhere/big", "RENAME", destination="/m/big")
        self.assertEqual(r.json(), {"boolean": True}, r)
        st = s.wait_applied(120)
        self.assertEqual((st["failure_count"], st["divergence_count"]), (0, 0), st)
        self.assertEqual(s.compare("/m/big", fs="lake", gen2_dir="in/big"), [])
        self.assertGreaterEqual(s.g1_counters().get("GET LISTSTATUS", 0) - lists0, 3)  # 2 pages + sub
        # Out of the mapped paths: Gen2 no longer holds it.
        r = p.webhdfs("PUT", "/m/big/sub", "RENAME", destination="/elsewhere/sub")
        self.assertEqual(r.json(), {"boolean": True}, r)
        st = s.wait_applied()
        self.assertEqual((st["failure_count"], st["divergence_count"]), (0, 0), st)
        self.assertEqual(s.g2("HEAD", "in/big/sub", fs="lake").status, 404)
        self.assertEqual(s.compare("/m/big", fs="lake", gen2_dir="in/big"), [])


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

    def test_stop_during_a_subtree_copy(self):
        s = proxylib.Stack(filesystems=("lake", "other"), config={"gen2": {"mappings": [
            {"gen1_prefix": "/m", "filesystem": "lake", "prefix": ""},
            {"gen1_prefix": "/o", "filesystem": "other", "prefix": ""}]}})
        try:
            for i in range(20):
                r = s.g1("PUT", "/m/t/d%d/f%d" % (i % 4, i), "CREATE", body=b"x" * i, write="true")
                self.assertEqual(r.status, 201, r)
            self.assertEqual(s.proxy.webhdfs("PUT", "/o", "MKDIRS").status, 200)
            s.wait_applied()
            s.gen2.fault("method=*,op=*,action=latency,latency_ms=1000,count=1000")
            r = s.proxy.webhdfs("PUT", "/m/t", "RENAME", destination="/o/t")
            self.assertEqual(r.json(), {"boolean": True}, r)
            time.sleep(4)  # the copy is under way: pieces in flight and queued
            self.assertEqual(int(s.proxy.status()["pending"]), 1)
            t0 = time.time()
            self.assertEqual(s.proxy.stop(), 0)
            self.assertLess(time.time() - t0, 14)
        finally:
            s.close()  # fails on a sanitizer report in the proxy's log


if __name__ == "__main__":
    unittest.main()
