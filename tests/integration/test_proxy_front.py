"""Smoke test of the proxy's front end and admin port (proxy/front*.c, proxy/admin.c, proxy/main.c).

Real processes on loopback (proxylib.Stack: Gen1 emulator, Gen2 emulator, dualpipe). What a writer
and an operator rely on from the front itself, in both writer dialects: the two-step 307 whose
absolute Location points back at the proxy, noredirect, one-step writes and reads, keep-alive across
answers (including refusals), the body-size limit (declared and streamed), the spool cap (503 with
Retry-After), Host header validation, many concurrent connections without a thread each, Gen1's own
answers relayed (Retry-After), Gen1 being down (502, no internal detail) or resetting a write (settled: 503 not applied), SIGTERM letting
requests already at Gen1 finish, gen2.unmapped = reject, and the admin endpoints (/healthz, /readyz,
/metrics, /admin/status). Whether Gen2 ends up equal is the business of the other test_proxy_* suites.
"""
import http.client
import json
import os
import threading
import time
import urllib.parse

import emulib
import proxylib

MAX_BODY = 64 * 1024


class Front(emulib.unittest.TestCase):
    DIALECT = "adls"

    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack(dialect=cls.DIALECT,
                               config={"limits": {"max_body_bytes": MAX_BODY, "threads": 2},
                                       "log": {"level": "info"}})
        cls.p = cls.s.proxy

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def assertRemoteException(self, r, status, exception):
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.header("content-type", "").startswith("application/json"), r)
        self.assertEqual(r.json()["RemoteException"]["exception"], exception, r)

    def test_two_step_create_append_open(self):
        d = "/two-step-%s" % self.DIALECT
        self.assertEqual(self.p.webhdfs("PUT", d, "MKDIRS").status, 200)
        r = self.p.webhdfs("PUT", d + "/f", "CREATE", overwrite="true", permission="640")
        self.assertEqual(r.status, 307, r)
        u = urllib.parse.urlsplit(r.header("location"))
        self.assertEqual(u.netloc, self.p.listen)
        q = urllib.parse.parse_qs(u.query)
        self.assertEqual(q.get("write"), ["true"])
        self.assertEqual(q.get("overwrite"), ["true"])
        data = os.urandom(20000)
        r = emulib.http_request("http://" + u.netloc, "PUT", u.path + "?" + u.query, data)
        self.assertEqual(r.status, 201, r)
        r = self.p.webhdfs("POST", d + "/f", "APPEND")
        self.assertEqual(r.status, 307, r)
        u = urllib.parse.urlsplit(r.header("location"))
        self.assertEqual(urllib.parse.parse_qs(u.query).get("append"), ["true"])
        r = emulib.http_request("http://" + u.netloc, "POST", u.path + "?" + u.query, b"tail")
        self.assertEqual(r.status, 200, r)
        r = self.p.webhdfs("GET", d + "/f", "OPEN", noredirect="true")
        self.assertEqual(r.status, 200, r)
        u = urllib.parse.urlsplit(r.json()["Location"])
        self.assertNotIn("noredirect", u.query.lower())
        r = emulib.http_request("http://" + u.netloc, "GET", u.path + "?" + u.query)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, data + b"tail")
        self.assertEqual(self.s.g1_read(d + "/f"), data + b"tail")

    def test_one_step_and_zero_length_create(self):
        d = "/one-step-%s" % self.DIALECT
        r = self.p.webhdfs("PUT", d + "/empty", "CREATE", body=b"", write="true", overwrite="true")
        self.assertEqual(r.status, 201, r)  # empty body + flag: a real zero-length create, no redirect
        st = self.s.g1_status(d + "/empty")
        self.assertEqual((st["type"], st["length"]), ("FILE", 0))
        r = self.p.webhdfs("PUT", d + "/f", "CREATE", body=b"abc", write="true")
        self.assertEqual(r.status, 201, r)
        r = self.p.webhdfs("PUT", d + "/f", "CREATE", body=b"again", write="true")  # overwrite=false
        self.assertRemoteException(r, 403, "FileAlreadyExistsException")
        r = self.p.webhdfs("GET", d + "/f", "OPEN", read="true", offset=1, length=1)
        self.assertEqual((r.status, r.body), (200, b"b"))
        r = self.p.webhdfs("GET", d + "/f", "GETFILESTATUS")
        self.assertEqual(r.json()["FileStatus"]["length"], 3)
        self.assertRemoteException(self.p.webhdfs("GET", d + "/missing", "GETFILESTATUS"), 404,
                                   "FileNotFoundException")

    def test_keep_alive_across_answers(self):
        host, port = self.p.listen.rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            socks = []
            for method, target, body, want in [
                    ("GET", "/webhdfs/v1/x?op=NOSUCHOP", None, 400),
                    ("PUT", "/webhdfs/v1/ka/f?op=CREATE&write=true&overwrite=true", b"x" * 5000, 201),
                    ("PUT", "/webhdfs/v1/ka/g?op=CREATE", b"", 307),
                    ("PUT", "/webhdfs/v1/ka/h?op=MKDIRS&permission=999", b"", 400),
                    ("PUT", "/webhdfs/v1/ka/h?op=NOSUCHOP", b"y" * 70000, 400),  # refused body: dropped
                    ("PUT", "/webhdfs/v1/ka/big?op=CREATE&write=true", b"y" * (MAX_BODY + 10), 413),
                    ("GET", "/webhdfs/v1/ka/f?op=OPEN&read=true", None, 200)]:
                c.request(method, target, body=body)
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, want, (method, target))
                socks.append(c.sock)
            self.assertTrue(all(s is socks[0] for s in socks), "the proxy closed a keep-alive connection")
        finally:
            c.close()

    def test_body_limits(self):
        # declared over the limit, client waiting for 100-continue: 413 before any body is sent
        req = ("PUT /webhdfs/v1/big?op=CREATE&write=true HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n")
        status, hdrs, body = emulib.raw_http(self.p.listen, (req % (self.p.listen, MAX_BODY + 1,
                                                                 "Expect: 100-continue\r\n")).encode())
        self.assertEqual(status, 413)
        self.assertEqual(json.loads(body)["RemoteException"]["exception"], "IllegalArgumentException")
        # declared far over the limit: 413 at once, the body is never read
        status, _, body = emulib.raw_http(self.p.listen, (req % (self.p.listen, 10 << 30, "")).encode())
        self.assertEqual(status, 413)
        # a little over, body sent without waiting: read and dropped, then 413 (no reset)
        r = self.p.webhdfs("PUT", "/big1", "CREATE", body=os.urandom(MAX_BODY + 1), write="true")
        self.assertRemoteException(r, 413, "IllegalArgumentException")
        self.assertIsNone(self.s.g1_status("/big1"))
        # streamed (chunked) over the limit: 413 too, and nothing created on Gen1
        data = os.urandom(MAX_BODY + 5000)
        r = self.p.request("PUT", "/webhdfs/v1/big2?op=CREATE&write=true", body=_chunked(data),
                           headers={"Transfer-Encoding": "chunked"})
        self.assertRemoteException(r, 413, "IllegalArgumentException")
        self.assertIsNone(self.s.g1_status("/big2"))
        # at the limit: fine, chunked
        data = os.urandom(MAX_BODY)
        r = self.p.request("PUT", "/webhdfs/v1/big3?op=CREATE&write=true", body=_chunked(data),
                           headers={"Transfer-Encoding": "chunked"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.s.g1_read("/big3"), data)

    def test_header_limit(self):
        # limits.max_header_bytes (32768 by default) holds although the connection's buffer
        # (limits.read_buffer_bytes, 65536) is larger: 431 as a RemoteException, Gen1 never asked
        before = self.s.g1_counters().get("PUT CREATE", 0)
        big = "a" * 40000
        r = self.p.request("PUT", "/webhdfs/v1/hdr?op=CREATE&write=true", body=b"x", headers={"X-Big": big})
        self.assertRemoteException(r, 431, "IllegalArgumentException")
        self.assertIn("limits.max_header_bytes", r.json()["RemoteException"]["message"])
        self.assertEqual(self.s.g1_counters().get("PUT CREATE", 0), before)
        self.assertIsNone(self.s.g1_status("/hdr"))
        # just under the limit: served
        r = self.p.request("PUT", "/webhdfs/v1/hdr?op=CREATE&write=true", body=b"x", headers={"X-Big": "a" * 30000})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.s.g1_read("/hdr"), b"x")

    def test_host_header_checked_for_redirects(self):
        req = "PUT /webhdfs/v1/h?op=CREATE HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n"
        status, hdrs, _ = emulib.raw_http(self.p.listen, (req % self.p.listen).encode())
        self.assertEqual(status, 307)
        self.assertEqual(hdrs["location"], "http://%s/webhdfs/v1/h?op=CREATE&write=true" % self.p.listen)
        for bad in ("evil.example/x", "a\"b", "x" * 300, "%s\r\nHost: evil.example" % self.p.listen):
            status, _, body = emulib.raw_http(self.p.listen, (req % bad).encode())
            self.assertEqual(status, 400, bad)
            self.assertEqual(json.loads(body)["RemoteException"]["exception"], "IllegalArgumentException")

    def test_many_concurrent_connections(self):
        errors = []

        def worker(i):
            try:
                for j in range(4):
                    data = os.urandom(3000 + i * 17 + j)
                    path = "/conc/%d/%d" % (i, j)
                    r = self.p.webhdfs("PUT", path, "CREATE", body=data, write="true", overwrite="true")
                    if r.status != 201:
                        errors.append((path, r))
                        return
                    r = self.p.webhdfs("GET", path, "OPEN", read="true")
                    if r.status != 200 or r.body != data:
                        errors.append((path, r))
                        return
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((i, repr(e)))

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(errors, [])

    def test_admin_endpoints(self):
        self.assertEqual(self.p.webhdfs("PUT", "/adm/f", "CREATE", body=b"x", write="true").status, 201)
        r = self.p.admin("GET", "/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        # ready once the first Gen1 probe (sent at start) came back
        deadline = time.time() + 10
        while self.p.admin("GET", "/readyz").status != 200 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.p.admin("GET", "/readyz").status, 200)
        r = self.p.admin("GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("content-type").startswith("text/plain; version=0.0.4"))
        text = r.body.decode()
        self.assertIn("# TYPE dualpipe_requests_total counter", text)
        created = [ln for ln in text.splitlines()
                   if ln.startswith('dualpipe_requests_total{op="CREATE",code="2xx"}')]
        self.assertEqual(len(created), 1, text)
        self.assertGreaterEqual(int(created[0].split()[-1]), 1)
        self.assertIn("dualpipe_upstream_seconds_bucket{upstream=\"gen1\",le=\"+Inf\"}", text)
        self.assertIn("dualpipe_applier_pending", text)
        st = self.p.status()
        self.assertIn("pending", st)
        self.assertEqual(self.p.admin("GET", "/nothing").status, 404)
        self.assertEqual(self.p.admin("POST", "/healthz", b"").status, 405)


class FrontHadoopUpstream(Front):
    DIALECT = "hadoop"


class GenOneDown(emulib.unittest.TestCase):
    def test_gen1_unreachable_is_502_without_detail(self):
        s = proxylib.Stack(dialect="adls", config={"log": {"level": "info"}})
        try:
            self.assertEqual(s.proxy.webhdfs("PUT", "/d", "MKDIRS").status, 200)
            s.gen1.stop()
            r = s.proxy.webhdfs("GET", "/d", "GETFILESTATUS")
            self.assertEqual(r.status, 502, r)
            ex = r.json()["RemoteException"]
            self.assertEqual(ex["exception"], "IOException")
            self.assertIn("Gen1", ex["message"])
            self.assertNotIn("127.0.0.1", ex["message"])
            self.assertNotIn(s.spool, ex["message"])
            r = s.proxy.webhdfs("PUT", "/d/f", "CREATE", body=b"data", write="true")
            self.assertEqual(r.status, 502, r)
            self.assertEqual(s.proxy.admin("GET", "/healthz").status, 200)
        finally:
            s.close()


class GenOneSlow(emulib.unittest.TestCase):
    def test_gen1_timeout_is_504_and_the_next_request_works(self):
        s = proxylib.Stack(dialect="adls", config={"gen1": {"timeout_ms": 400}})
        try:
            s.gen1.fault("method=GET,op=LISTSTATUS,action=latency,latency_ms=1500,count=1")
            t0 = time.time()
            r = s.proxy.webhdfs("GET", "/", "LISTSTATUS")
            self.assertEqual(r.status, 504, r)
            self.assertLess(time.time() - t0, 1.4, "the proxy waited for Gen1 past gen1.timeout_ms")
            ex = r.json()["RemoteException"]
            self.assertEqual(ex["exception"], "IOException")
            self.assertNotIn("127.0.0.1", ex["message"])
            self.assertEqual(s.proxy.webhdfs("GET", "/", "LISTSTATUS").status, 200)
        finally:
            s.close()


class Relay(emulib.unittest.TestCase):
    """Gen1's own answers relayed as they are; shutdown lets requests already at Gen1 finish."""

    def setUp(self):
        self.s = proxylib.Stack(dialect="adls", config={"log": {"level": "info"}, "gen1": {"settle_ms": 300}})
        self.p = self.s.proxy

    def tearDown(self):
        self.s.close()

    def test_gen1_throttling_relayed_with_retry_after(self):
        # (LISTSTATUS: the readiness probe sends GETFILESTATUS and could take the fault)
        self.s.gen1.fault("method=GET,op=LISTSTATUS,action=fail,status=503,count=1,retry_after=7")
        r = self.p.webhdfs("GET", "/", "LISTSTATUS")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.header("retry-after"), "7")
        self.assertIn("RemoteException", r.json())
        self.assertEqual(self.p.webhdfs("GET", "/", "LISTSTATUS").status, 200)

    def test_gen1_connection_reset_is_settled(self):
        # Gen1 resets the write: never sent again; asked after gen1.settle_ms (300 here), Gen1 does not
        # hold the directory, so the writer learns the write was not applied (issue 11)
        self.s.gen1.fault("method=PUT,op=MKDIRS,action=reset,count=100")
        r = self.p.webhdfs("PUT", "/reset", "MKDIRS")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["RemoteException"]["exception"], "IOException")
        self.assertIn("not applied", r.json()["RemoteException"]["message"])
        self.assertEqual(self.s.g1_counters().get("PUT MKDIRS", 0), 1)

    def test_sigterm_drains_requests_at_gen1(self):
        self.s.gen1.fault("method=PUT,op=CREATE,action=latency,latency_ms=1500,count=1")
        box = {}

        def slow_create():
            box["r"] = self.p.webhdfs("PUT", "/slow", "CREATE", body=b"late but whole", write="true")

        t = threading.Thread(target=slow_create)
        t.start()
        deadline = time.time() + 5
        while self.s.g1_counters().get("PUT CREATE", 0) < 1 and time.time() < deadline:
            time.sleep(0.02)
        self.p.proc.send_signal(15)
        t.join(10)
        self.assertEqual(box["r"].status, 201, box["r"])
        self.assertEqual(self.p.stop(), 0)
        self.assertEqual(self.s.g1_read("/slow"), b"late but whole")


class SpoolFull(emulib.unittest.TestCase):
    def test_body_over_the_spool_cap_is_503_with_retry_after(self):
        s = proxylib.Stack(dialect="adls", config={"spool": {"max_bytes": 1 << 20},
                                                   "limits": {"max_body_bytes": 4 << 20},
                                                   "log": {"level": "info"}})
        try:
            r = s.proxy.webhdfs("PUT", "/sp/big", "CREATE", body=os.urandom(2 << 20), write="true")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json()["RemoteException"]["exception"], "IOException")
            self.assertTrue(r.header("retry-after", "").isdigit(), r)
            self.assertIsNone(s.g1_status("/sp/big"))
            # the space is given back once the request is over
            r = s.proxy.webhdfs("PUT", "/sp/small", "CREATE", body=os.urandom(512 << 10), write="true")
            self.assertEqual(r.status, 201, r)
        finally:
            s.close()


class PublicUrl(emulib.unittest.TestCase):
    def test_location_uses_public_url_whatever_the_host(self):
        s = proxylib.Stack(dialect="adls", config={"public_url": "https://ingest.example:8443/",
                                                   "log": {"level": "info"}})
        try:
            r = s.proxy.webhdfs("PUT", "/pub/f", "CREATE", headers={"Content-Length": "0"}, overwrite="true")
            self.assertEqual(r.status, 307, r)
            self.assertEqual(r.header("location"),
                             "https://ingest.example:8443/webhdfs/v1/pub/f?op=CREATE&overwrite=true&write=true")
        finally:
            s.close()


class UnmappedReject(emulib.unittest.TestCase):
    def test_writes_outside_the_mappings_are_refused_before_gen1(self):
        s = proxylib.Stack(dialect="adls", config={
            "gen2": {"unmapped": "reject",
                     "mappings": [{"gen1_prefix": "/data", "filesystem": proxylib.FS, "prefix": ""}]},
            "log": {"level": "info"}})
        try:
            p = s.proxy
            self.assertEqual(p.webhdfs("PUT", "/data/in", "MKDIRS").status, 200)
            before = s.g1_counters()
            for method, path, op, params in (("PUT", "/elsewhere/f", "CREATE", {"write": "true"}),
                                             ("PUT", "/database", "MKDIRS", {}),
                                             ("PUT", "/data/in", "RENAME", {"destination": "/out"})):
                r = p.webhdfs(method, path, op, body=b"x" if op == "CREATE" else None, **params)
                self.assertEqual(r.status, 403, r)
                self.assertEqual(r.json()["RemoteException"]["exception"], "AccessControlException")
            after = s.g1_counters()
            self.assertEqual({k: v for k, v in after.items() if before.get(k) != v and k != "GET GETFILESTATUS"},
                             {})
            # reads outside the mappings still go to Gen1
            self.assertEqual(p.webhdfs("GET", "/elsewhere", "GETFILESTATUS").status, 404)
            self.assertEqual(p.webhdfs("PUT", "/data/in/f", "CREATE", body=b"ok", write="true").status, 201)
        finally:
            s.close()


def _chunked(data, size=7000):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


if __name__ == "__main__":
    emulib.unittest.main()
