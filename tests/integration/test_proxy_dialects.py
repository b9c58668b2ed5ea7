"""Both WebHDFS writer dialects through the proxy, against both Gen1 upstream dialects.

Writers: one-step (write=true / append=true / read=true on the first request, as the ADLS SDKs send),
Hadoop two-step (a body-less CREATE/APPEND/OPEN without the flag gets a 307 whose absolute Location
points back at the proxy; the data goes to that Location, chunked or with a length), and
noredirect=true (200 + {"Location": ...}). Upstreams: the Gen1 emulator in the adls dialect and in the
hadoop dialect (where the proxy itself follows Gen1's 307 to the datanode). After the writes, Gen1 and
Gen2 must be equal (proxylib.compare).
"""
import http.client
import os
import time
import urllib.parse

import emulib
import proxylib


def chunked(data, size=7000):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def split_location(loc):
    u = urllib.parse.urlsplit(loc)
    return "%s://%s" % (u.scheme, u.netloc), u.path + ("?" + u.query if u.query else ""), u


class WriterDialects(emulib.unittest.TestCase):
    DIALECT = "adls"

    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack(dialect=cls.DIALECT)
        cls.p = cls.s.proxy

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def location_of(self, r, flag):
        """The 307 (or noredirect 200) answer's Location: absolute, at the proxy, carrying flag=true."""
        loc = r.header("location") if r.status == 307 else r.json()["Location"]
        base, target, u = split_location(loc)
        self.assertIn(u.scheme, ("http",), loc)
        self.assertEqual(u.netloc, self.p.listen, "Location must point back at the proxy: " + loc)
        q = dict(urllib.parse.parse_qsl(u.query))
        self.assertEqual({k.lower(): v for k, v in q.items()}.get(flag), "true", loc)
        self.assertTrue(u.path.startswith("/webhdfs/v1/"), loc)
        return base, target

    def test_one_step(self):
        root = "/one-step"
        self.assertEqual(self.p.webhdfs("PUT", root, "MKDIRS").status, 200)
        data = os.urandom(200000)
        r = self.p.webhdfs("PUT", root + "/f", "CREATE", body=data, write="true", overwrite="true")
        self.assertEqual(r.status, 201, r)
        r = self.p.webhdfs("POST", root + "/f", "APPEND", body=b"more", append="true")
        self.assertEqual(r.status, 200, r)
        r = self.p.webhdfs("GET", root + "/f", "OPEN", read="true")
        self.assertEqual((r.status, r.body), (200, data + b"more"))
        # chunked one-step upload (what azure-arm-datalake-store sends, with a Content-Length as well)
        body = os.urandom(50000)
        r = self.p.request("PUT", proxylib.wh_target(root + "/chunked", "CREATE", write="true", overwrite="true"),
                           chunked(body), {"Transfer-Encoding": "chunked", "Content-Length": str(len(body))})
        self.assertEqual(r.status, 201, r)
        self.s.assert_same(self, root)
        self.assertEqual(self.s.g2_read(root + "/chunked"), body)

    def test_two_step_307(self):
        root = "/two-step"
        self.assertEqual(self.p.webhdfs("PUT", root, "MKDIRS").status, 200)
        g1_before, t0 = self.s.g1_counters(), time.time()
        r = self.p.webhdfs("PUT", root + "/f", "CREATE", body=b"", overwrite="true", permission="0644")
        self.assertEqual(r.status, 307, r)
        base, target = self.location_of(r, "write")
        self.assertEqual(proxylib.gen1_delta(g1_before, self.s.g1_counters(), time.time() - t0), {},
                         "the redirect step must not reach Gen1")
        self.assertIsNone(self.s.g1_status(root + "/f"))
        data = os.urandom(1536 * 1024 + 7)
        # the npm webhdfs client sends the data chunked, without Content-Length
        r = emulib.http_request(base, "PUT", target, chunked(data, 65536), {"Transfer-Encoding": "chunked"})
        self.assertEqual(r.status, 201, r)
        # APPEND: 307 with append=true, then the data with a Content-Length
        r = self.p.webhdfs("POST", root + "/f", "APPEND", body=b"")
        self.assertEqual(r.status, 307, r)
        base, target = self.location_of(r, "append")
        r = emulib.http_request(base, "POST", target, b"appended")
        self.assertEqual(r.status, 200, r)
        # OPEN: 307 with read=true, then the bytes
        r = self.p.webhdfs("GET", root + "/f", "OPEN", offset=10, length=100)
        self.assertEqual(r.status, 307, r)
        base, target = self.location_of(r, "read")
        r = emulib.http_request(base, "GET", target)
        self.assertEqual((r.status, r.body), (200, (data + b"appended")[10:110]))
        self.s.assert_same(self, root)
        self.assertEqual(self.s.g2_read(root + "/f"), data + b"appended")

    def test_noredirect(self):
        root = "/noredirect"
        self.assertEqual(self.p.webhdfs("PUT", root, "MKDIRS").status, 200)
        r = self.p.webhdfs("PUT", root + "/f", "CREATE", body=b"", overwrite="true", noredirect="true")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("content-type", "").startswith("application/json"), r)
        base, target = self.location_of(r, "write")
        r = emulib.http_request(base, "PUT", target, b"via noredirect")
        self.assertEqual(r.status, 201, r)
        r = self.p.webhdfs("POST", root + "/f", "APPEND", body=b"", noredirect="true")
        self.assertEqual(r.status, 200, r)
        base, target = self.location_of(r, "append")
        self.assertEqual(emulib.http_request(base, "POST", target, b"+1").status, 200)
        r = self.p.webhdfs("GET", root + "/f", "OPEN", noredirect="true")
        self.assertEqual(r.status, 200, r)
        base, target = self.location_of(r, "read")
        r = emulib.http_request(base, "GET", target)
        self.assertEqual((r.status, r.body), (200, b"via noredirect+1"))
        self.s.assert_same(self, root)

    def test_location_follows_the_host_header(self):
        """Without public_url, the Location is built from the Host the writer used."""
        port = self.p.listen.rsplit(":", 1)[1]
        for host in ("localhost:" + port, "dualpipe.example:8080"):
            conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
            try:
                conn.putrequest("PUT", proxylib.wh_target("/hosthdr/f", "CREATE"), skip_host=True)
                conn.putheader("Host", host)
                conn.putheader("Content-Length", "0")
                conn.endheaders()
                r = conn.getresponse()
                r.read()
            finally:
                conn.close()
            self.assertEqual(r.status, 307, host)
            u = urllib.parse.urlsplit(r.getheader("location"))
            self.assertEqual(u.netloc, host, r.getheader("location"))

    def test_mixed_writers_one_file(self):
        """A file created two-step, appended one-step, then noredirect: one file, both sides equal."""
        root = "/mixed"
        r = self.p.webhdfs("PUT", root + "/m", "CREATE", body=b"", overwrite="true")
        base, target = self.location_of(r, "write")
        self.assertEqual(emulib.http_request(base, "PUT", target, b"A").status, 201)
        self.assertEqual(self.p.webhdfs("POST", root + "/m", "APPEND", body=b"B", append="true").status, 200)
        r = self.p.webhdfs("POST", root + "/m", "APPEND", body=b"", noredirect="true")
        base, target = self.location_of(r, "append")
        self.assertEqual(emulib.http_request(base, "POST", target, b"C").status, 200)
        self.s.assert_same(self, root)
        self.assertEqual(self.s.g2_read(root + "/m"), b"ABC")


class WriterDialectsHadoopUpstream(WriterDialects):
    DIALECT = "hadoop"


class PublicUrl(emulib.unittest.TestCase):
    """public_url set: every Location starts with it, whatever Host the writer sent."""

    def test_public_url(self):
        s = proxylib.Stack(config={"public_url": "http://dualpipe.example:14000"})
        try:
            r = s.proxy.webhdfs("PUT", "/pub/f", "CREATE", body=b"")
            self.assertEqual(r.status, 307, r)
            self.assertTrue(r.header("location").startswith("http://dualpipe.example:14000/webhdfs/v1/pub/f?"),
                            r.header("location"))
            r = s.proxy.webhdfs("PUT", "/pub/f", "CREATE", body=b"", noredirect="true")
            self.assertTrue(r.json()["Location"].startswith("http://dualpipe.example:14000/webhdfs/v1/pub/f?"), r)
        finally:
            s.close()


if __name__ == "__main__":
    emulib.main()
