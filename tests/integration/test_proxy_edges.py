"""Edges of the proxy a user meets in practice (issue 3): names with special characters (encoded once
on the way in, re-encoded for Gen2), names Gen2 would refuse (the Gen1 write succeeds, the Gen2 side is
counted as skipped), several path mappings (longest prefix wins, prefix inside the filesystem, unmapped
paths skipped or refused), Gen1 refusing with 503/429 (Retry-After relayed), Gen1 down, Gen2 down (the
writer is not held up), Gen1 protected by a bearer token (the writer's Authorization passes through and
the applier uses it to copy CONCAT results from Gen1), non-superuser writers (owner/group copied to
Gen2), slow or idle clients (closed by limits.idle_timeout_s without reaching Gen1), and a Gen2 that
deletes a large directory in rounds (x-ms-continuation, followed by the applier until none comes back).
"""
import json
import socket
import time
import urllib.parse

import emulib
import proxylib


class Names(emulib.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack()
        cls.p = cls.s.proxy

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def test_special_characters(self):
        root = "/names"
        names = ["a b", "plus+sign", "per%cent", "ünï-cödé ✓", "semi;colon", "eq=and&amp", "hash#tag",
                 "quote'q", "paren(1)", "comma,c", "star*", "at@x", "tilde~", "dollar$", "brack[1]", "col:on",
                 "dq\"x", "lt<gt>", "pipe|x", "q?mark", "🙂emoji"]
        self.assertEqual(self.p.webhdfs("PUT", root, "MKDIRS").status, 200)
        for i, n in enumerate(names):
            r = self.p.webhdfs("PUT", "%s/%s/%s.txt" % (root, n, n), "CREATE", body=n.encode(), write="true")
            self.assertEqual(r.status, 201, (n, r))
            self.assertEqual(self.p.webhdfs("POST", "%s/%s/%s.txt" % (root, n, n), "APPEND", body=b"!",
                                            append="true").status, 200, n)
        r = self.p.webhdfs("PUT", "%s/%s" % (root, names[0]), "RENAME", destination="%s/%s-renamed" % (root, names[3]))
        self.assertEqual(r.json(), {"boolean": True})
        # a literal '+' in the path is a plus (the Java SDK leaves it unencoded), not a space
        r = self.p.request("PUT", "/webhdfs/v1/names/raw+plus?op=CREATE&write=true", b"raw plus")
        self.assertEqual(r.status, 201, r)
        self.assertIsNotNone(self.s.g1_status(root + "/raw+plus"))
        # the Node ADLS SDK's form: the whole path as one segment with %2F
        r = self.p.request("PUT", "/webhdfs/v1/%2Fnames%2Fone%20segment%2Ff?op=CREATE&write=true", b"one")
        self.assertEqual(r.status, 201, r)
        self.s.assert_same(self, root)
        self.assertEqual(self.s.g2_read(root + "/raw+plus"), b"raw plus")
        self.assertEqual(self.s.g2_read(root + "/one segment/f"), b"one")

    def test_names_gen2_refuses(self):
        before = self.p.status()
        c0 = self.s.g2_counters()
        long_path = "/refusednames" + "/" + "/".join(["d" * 200] * 6)   # > 1024 characters on Gen2
        for path in ("/refusednames/trailing./f", "/refusednames/back\\slash", long_path + "/f"):
            r = self.p.webhdfs("PUT", path, "CREATE", body=b"gen1 only", write="true")
            self.assertEqual(r.status, 201, (path, r))
            self.assertEqual(self.s.g1_read(path), b"gen1 only")
        st = self.s.wait_applied()
        self.assertGreaterEqual(int(st.get("skipped_invalid_name", 0)) - int(before.get("skipped_invalid_name", 0)),
                                3, json.dumps(st)[:2000])
        created = proxylib.counter_delta(c0, self.s.g2_counters())
        self.assertNotIn("PUT create-file", created, "a name Gen2 refuses must not be sent: %r" % created)
        # writes with good names keep flowing
        self.assertEqual(self.p.webhdfs("PUT", "/refusednames/fine", "CREATE", body=b"ok", write="true").status, 201)
        self.s.wait_applied()
        self.assertEqual(self.s.g2_read("/refusednames/fine"), b"ok")


class Mappings(emulib.unittest.TestCase):
    MAPS = [{"gen1_prefix": "/", "filesystem": "lake", "prefix": ""},
            {"gen1_prefix": "/data/raw", "filesystem": "raw", "prefix": "landing"},
            {"gen1_prefix": "/data/raw/special", "filesystem": "lake", "prefix": "special-area/x"}]

    def test_longest_prefix_wins(self):
        s = proxylib.Stack(config={"gen2": {"mappings": self.MAPS}}, filesystems=("lake", "raw"))
        try:
            p = s.proxy
            for path, body in (("/data/raw/day1/a.csv", b"raw a"), ("/data/raw/special/s.csv", b"special"),
                               ("/data/rawish/r.csv", b"not raw"), ("/other/o.csv", b"other")):
                self.assertEqual(p.webhdfs("PUT", path, "CREATE", body=body, write="true").status, 201, path)
            self.assertEqual(p.webhdfs("PUT", "/data/raw/day1/a.csv", "SETPERMISSION", permission="600").status, 200)
            self.assertEqual(p.webhdfs("PUT", "/data/raw/day1/a.csv", "RENAME",
                                       destination="/data/raw/day1/b.csv").status, 200)
            s.wait_applied()
            self.assertEqual(s.g2_read("landing/day1/b.csv", fs="raw"), b"raw a")
            self.assertEqual(s.g2_read("special-area/x/s.csv", fs="lake"), b"special")
            self.assertEqual(s.g2_read("data/rawish/r.csv", fs="lake"), b"not raw")
            self.assertEqual(s.g2_read("other/o.csv", fs="lake"), b"other")
            self.assertEqual(s.compare("/data/raw/day1", fs="raw", gen2_dir="landing/day1"), [])
            self.assertEqual(s.compare("/data/raw/special", fs="lake", gen2_dir="special-area/x"), [])
            self.assertEqual(s.compare("/other"), [])
            # the raw mapping's files are not duplicated into lake
            self.assertEqual(s.g2("HEAD", "data/raw/day1/b.csv", fs="lake").status, 404)
        finally:
            s.close()

    def test_rename_across_mappings(self):
        """Gen2 cannot rename between filesystems; whatever the proxy does, both sides end up equal."""
        s = proxylib.Stack(config={"gen2": {"mappings": self.MAPS}}, filesystems=("lake", "raw"))
        try:
            p = s.proxy
            self.assertEqual(p.webhdfs("PUT", "/data/raw/x/f", "CREATE", body=b"moving", write="true").status, 201)
            self.assertEqual(p.webhdfs("PUT", "/archive", "MKDIRS").status, 200)
            self.assertEqual(p.webhdfs("PUT", "/data/raw/x/d/g", "CREATE", body=b"in a dir", write="true").status, 201)
            r = p.webhdfs("PUT", "/data/raw/x/d", "RENAME", destination="/archive/d")
            self.assertEqual(r.json(), {"boolean": True})
            r = p.webhdfs("PUT", "/data/raw/x/f", "RENAME", destination="/archive/f")
            self.assertEqual(r.json(), {"boolean": True})
            st = s.wait_applied()
            self.assertEqual(s.compare("/data/raw/x", fs="raw", gen2_dir="landing/x"), [], json.dumps(st)[:2000])
            self.assertEqual(s.compare("/archive"), [], json.dumps(st)[:2000])
        finally:
            s.close()

    def test_unmapped_skip(self):
        s = proxylib.Stack(config={"gen2": {"mappings": [{"gen1_prefix": "/mapped", "filesystem": "lake",
                                                          "prefix": ""}], "unmapped": "skip"}})
        try:
            p = s.proxy
            c0 = s.g2_counters()
            self.assertEqual(p.webhdfs("PUT", "/elsewhere/f", "CREATE", body=b"gen1 only", write="true").status, 201)
            st = s.wait_applied()
            self.assertGreaterEqual(int(st.get("skipped_unmapped", 0)), 1, st)
            self.assertEqual(proxylib.counter_delta(c0, s.g2_counters()), {})
            self.assertEqual(s.g1_read("/elsewhere/f"), b"gen1 only")
            self.assertEqual(p.webhdfs("PUT", "/mapped/g", "CREATE", body=b"both", write="true").status, 201)
            s.wait_applied()
            self.assertEqual(s.g2_read("g"), b"both")
        finally:
            s.close()

    def test_unmapped_reject(self):
        s = proxylib.Stack(config={"gen2": {"mappings": [{"gen1_prefix": "/mapped", "filesystem": "lake",
                                                          "prefix": ""}], "unmapped": "reject"}})
        try:
            p = s.proxy
            c1, t0 = s.g1_counters(), time.time()
            r = p.webhdfs("PUT", "/elsewhere/f", "CREATE", body=b"refused", write="true")
            self.assertTrue(400 <= r.status < 500, r)
            self.assertIn("RemoteException", r.json(), r)
            self.assertEqual(proxylib.gen1_delta(c1, s.g1_counters(), time.time() - t0), {},
                             "an unmapped write refused by the proxy must not reach Gen1")
            self.assertIsNone(s.g1_status("/elsewhere/f"))
            # reads of unmapped paths still work (they only touch Gen1)
            self.assertEqual(p.webhdfs("GET", "/", "LISTSTATUS").status, 200)
        finally:
            s.close()


class UpstreamTrouble(emulib.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack(config={"gen1": {"connect_timeout_ms": 1000, "timeout_ms": 5000},
                                       "gen2": {"connect_timeout_ms": 1000, "timeout_ms": 5000}})
        cls.p = cls.s.proxy

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def test_gen1_503_and_429_relayed(self):
        s = self.s
        s.gen1.fault("method=PUT,op=CREATE,status=503,retry_after=2,count=1")
        c2 = s.g2_counters()
        r = self.p.webhdfs("PUT", "/trouble/f", "CREATE", body=b"x", write="true")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.header("retry-after"), "2", r)
        self.assertEqual(r.json()["RemoteException"]["exception"], "RetriableException")
        time.sleep(0.3)
        self.assertEqual(proxylib.counter_delta(c2, s.g2_counters()), {})
        s.gen1.fault("method=POST,op=APPEND,status=429,retry_after=1,count=1")
        self.assertEqual(self.p.webhdfs("PUT", "/trouble/f", "CREATE", body=b"x", write="true").status, 201)
        s.wait_applied()
        c2 = s.g2_counters()
        r = self.p.webhdfs("POST", "/trouble/f", "APPEND", body=b"y", append="true")
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.header("retry-after"), "1", r)
        time.sleep(0.3)
        s.wait_applied()
        self.assertEqual(proxylib.counter_delta(c2, s.g2_counters()), {})
        s.assert_same(self, "/trouble")

    def test_gen1_down(self):
        s = self.s
        c2 = s.g2_counters()
        self.assertEqual(s.gen1.admin("POST", "/down?ms=20000").status, 200)
        try:
            t0 = time.time()
            r = self.p.webhdfs("PUT", "/down1/f", "CREATE", body=b"x", write="true")
            self.assertLess(time.time() - t0, 15)
            self.assertTrue(500 <= r.status < 600, r)
            self.assertIn("RemoteException", r.json(), r)
        finally:
            s.gen1.admin("POST", "/up")
        s.wait_applied()
        self.assertEqual(proxylib.counter_delta(c2, s.g2_counters()), {})
        self.assertEqual(self.p.webhdfs("PUT", "/down1/f", "CREATE", body=b"x", write="true").status, 201)
        s.assert_same(self, "/down1")

    def test_gen2_down_does_not_hold_the_writer(self):
        s = self.s
        self.assertEqual(s.gen2.admin("POST", "/down?ms=4000").status, 200)
        t0 = time.time()
        r = self.p.webhdfs("PUT", "/down2/f", "CREATE", body=b"while gen2 is down", write="true")
        self.assertEqual(r.status, 201, r)
        self.assertLess(time.time() - t0, 2.0, "the writer must not wait for Gen2")
        st = s.wait_applied(60)
        landed = s.g2("HEAD", "/down2/f").status == 200
        reported = "/down2/f" in json.dumps(st.get("failures", []))
        self.assertTrue(landed or reported, "the write neither reached Gen2 nor was reported: %s" % json.dumps(st))
        time.sleep(max(0.0, 4.5 - (time.time() - t0)))
        self.assertEqual(self.p.webhdfs("PUT", "/down2/g", "CREATE", body=b"after", write="true").status, 201)
        s.wait_applied()
        self.assertEqual(s.g2_read("/down2/g"), b"after")


class Identity(emulib.unittest.TestCase):
    TOKEN = "writer-token-7f3a9c"

    def test_bearer_token_passes_through(self):
        s = proxylib.Stack(gen1_kw={"token": self.TOKEN})
        try:
            p = s.proxy
            auth = {"Authorization": "Bearer " + self.TOKEN}
            c2 = s.g2_counters()
            r = p.webhdfs("PUT", "/tok/f", "CREATE", body=b"x", write="true")
            self.assertEqual(r.status, 401, r)
            self.assertEqual(r.header("www-authenticate"), "Bearer", r)
            self.assertEqual(r.json()["RemoteException"]["exception"], "SecurityException")
            r = p.webhdfs("PUT", "/tok/f", "CREATE", body=b"x", write="true",
                          headers={"Authorization": "Bearer wrong"})
            self.assertEqual(r.status, 401, r)
            time.sleep(0.3)
            self.assertEqual(proxylib.counter_delta(c2, s.g2_counters()), {})
            # with the token: writes, and the ops the applier completes by reading Gen1 on the writer's behalf
            for i in range(3):
                self.assertEqual(p.webhdfs("PUT", "/tok/p%d" % i, "CREATE", body=b"part%d;" % i, write="true",
                                           headers=auth).status, 201)
            self.assertEqual(p.webhdfs("PUT", "/tok/t", "CREATE", body=b"T;", write="true", headers=auth).status, 201)
            self.assertEqual(p.webhdfs("POST", "/tok/t", "CONCAT", sources="/tok/p0,/tok/p1", headers=auth).status, 200)
            self.assertEqual(p.webhdfs("POST", "/tok/ca", "CONCURRENTAPPEND", body=b"c1", prefix="/WebHdfsExt",
                                       appendMode="autocreate", headers=auth).status, 200)
            self.assertEqual(p.webhdfs("POST", "/tok/m", "MSCONCAT", body=json.dumps({"sources": ["/tok/p2"]}),
                                       headers=dict(auth, **{"Content-Type": "application/json"})).status, 200)
            self.assertEqual(p.webhdfs("GET", "/tok/t", "OPEN", read="true", headers=auth).body, b"T;part0;part1;")
            st = s.wait_applied()
            self.assertEqual(st.get("failures"), [], json.dumps(st)[:3000])
            s.assert_same(self, "/tok")
            self.assertNotIn(self.TOKEN, s.proxy.read_log(), "the writer's token reached the proxy's log")
        finally:
            s.close()

    def test_owner_is_the_writer(self):
        s = proxylib.Stack()
        try:
            p = s.proxy
            self.assertEqual(p.webhdfs("PUT", "/pub", "MKDIRS", permission="777").status, 200)
            self.assertEqual(p.webhdfs("PUT", "/pub/alice.txt", "CREATE", body=b"a", write="true",
                                       **{"user.name": "alice"}).status, 201)
            self.assertEqual(p.webhdfs("PUT", "/pub/bobdir", "MKDIRS", **{"user.name": "bob"}).status, 200)
            self.assertEqual(p.webhdfs("PUT", "/pub/bobdir/f", "CREATE", body=b"b", write="true", permission="600",
                                       **{"user.name": "bob"}).status, 201)
            self.assertEqual(p.webhdfs("PUT", "/pub/carol.txt", "CREATE", body=b"c", write="true",
                                       **{"user.name": "hdfs", "doas": "carol"}).status, 201)
            self.assertEqual(s.g1_status("/pub/alice.txt")["owner"], "alice")
            self.assertEqual(s.g1_status("/pub/carol.txt")["owner"], "carol")
            s.assert_same(self, "/pub")
            self.assertEqual(s.g2("HEAD", "/pub/alice.txt", "action=getAccessControl").header("x-ms-owner"), "alice")
        finally:
            s.close()


class SlowClients(emulib.unittest.TestCase):
    def test_idle_client_is_closed(self):
        s = proxylib.Stack(config={"limits": {"idle_timeout_s": 1}})
        try:
            c1, t0 = s.g1_counters(), time.time()
            u = urllib.parse.urlsplit(s.proxy.url)
            with socket.create_connection((u.hostname, u.port), timeout=10) as c:
                c.sendall(b"PUT /webhdfs/v1/slow?op=MKDIRS HTTP/1.1\r\nHost: x\r\n")   # headers never finish
                t = time.time()
                try:
                    data = c.recv(4096)
                except (ConnectionResetError, socket.timeout):
                    data = b""
                self.assertLess(time.time() - t, 8, "an idle client must be closed after limits.idle_timeout_s")
                self.assertFalse(data.startswith(b"HTTP/1.1 2"), data)
            # a body that stops half way
            with socket.create_connection((u.hostname, u.port), timeout=10) as c:
                c.sendall(b"PUT /webhdfs/v1/slow2?op=CREATE&write=true HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 1000\r\n\r\n" + b"x" * 10)
                t = time.time()
                try:
                    c.recv(4096)
                except (ConnectionResetError, socket.timeout):
                    pass
                self.assertLess(time.time() - t, 8)
            self.assertEqual(proxylib.gen1_delta(c1, s.g1_counters(), time.time() - t0), {})
            self.assertIsNone(s.g1_status("/slow2"))
            self.assertEqual(s.proxy.webhdfs("PUT", "/fast", "MKDIRS").status, 200)
        finally:
            s.close()


class PagedDelete(emulib.unittest.TestCase):
    def test_recursive_delete_in_rounds(self):
        # this Gen2 removes at most 3 entries per DELETE and answers x-ms-continuation until done
        s = proxylib.Stack(gen2_kw={"extra_args": ["--delete-page", "3"]})
        try:
            p = s.proxy
            files = ["/pagedel/tree/f%02d" % i for i in range(8)] + \
                    ["/pagedel/tree/sub/g%d" % i for i in range(3)] + ["/pagedel/tree/sub/deep/h"]
            for f in files + ["/pagedel/keep/k"]:
                self.assertEqual(p.webhdfs("PUT", f, "CREATE", body=f.encode(), write="true").status, 201, f)
            s.assert_same(self, "/pagedel")
            self.assertEqual(s.g2_read("/pagedel/tree/sub/deep/h"), b"/pagedel/tree/sub/deep/h")
            c2 = s.g2_counters()
            # the first round is held back while a 503 is armed for the next DELETE: a continued round
            # fails once and is re-sent with the same token
            s.gen2.fault("method=DELETE,op=delete,action=latency,latency_ms=800,count=1")
            r = p.webhdfs("DELETE", "/pagedel/tree", "DELETE", recursive="true")
            self.assertEqual(r.json(), {"boolean": True})
            time.sleep(0.3)
            s.gen2.fault("method=DELETE,op=delete,status=503,count=1")
            st = s.wait_applied()
            self.assertEqual(st.get("failures"), [], json.dumps(st)[:3000])
            s.assert_same(self, "/pagedel")
            self.assertEqual(s.g2("HEAD", "/pagedel/tree").status, 404)
            self.assertEqual(s.g2_read("/pagedel/keep/k"), b"/pagedel/keep/k")
            # 14 entries under tree, 3 per round: 5 rounds, plus the one re-sent after the 503
            deletes = proxylib.counter_delta(c2, s.g2_counters()).get("DELETE delete", 0)
            self.assertGreater(deletes, 1)
            self.assertEqual(deletes, 6)
        finally:
            s.close()


if __name__ == "__main__":
    emulib.main()
