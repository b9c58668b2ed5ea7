"""Bad input through the proxy (issue 3, "Tests"): every malformed request gets a WebHDFS
RemoteException with the right status; CR/LF and other control characters in the path or in
parameter values (percent-encoded, or raw on the wire) and "." / ".." segments are refused before
anything reaches Gen1 (the Gen1 emulator's request counters do not move) or Gen2; the proxy keeps
serving afterwards.
"""

import emulib
import proxylib


class BadInput(emulib.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack(config={"limits": {"max_body_bytes": 1024 * 1024}})
        cls.p = cls.s.proxy
        assert cls.p.webhdfs("PUT", "/ok/file", "CREATE", body=b"x", write="true").status == 201
        cls.s.wait_applied()

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def setUp(self):
        self.s.wait_applied()
        self.before = proxylib.snapshot_counters(self.s)

    def nothing_upstream(self, what):
        after = proxylib.snapshot_counters(self.s)
        self.assertEqual(proxylib.gen1_delta(self.before["gen1"], after["gen1"], after["time"] - self.before["time"]),
                         {}, what + " reached Gen1")
        self.assertEqual(proxylib.counter_delta(self.before["gen2"], after["gen2"]), {}, what + " reached Gen2")

    def remote_exception(self, r, status, exception=None, what=""):
        self.assertEqual(r.status, status, "%s: %r" % (what, r))
        self.assertTrue((r.header("content-type") or "").startswith("application/json"), "%s: %r" % (what, r))
        rex = r.json()["RemoteException"]
        self.assertIsInstance(rex.get("message"), str)
        self.assertTrue(rex.get("javaClassName"), r)
        if exception:
            self.assertEqual(rex["exception"], exception, "%s: %r" % (what, r))
        return rex

    def still_serving(self):
        self.assertEqual(self.p.webhdfs("GET", "/ok/file", "GETFILESTATUS").status, 200)
        self.assertEqual(self.p.admin("GET", "/healthz").status, 200)

    def test_malformed_requests(self):
        cases = [
            ("PUT", "/webhdfs/v1/a", 400, "IllegalArgumentException"),                    # no op
            ("PUT", "/webhdfs/v1/a?op=", 400, "IllegalArgumentException"),
            ("PUT", "/webhdfs/v1/a?op=NOSUCHOP", 400, "IllegalArgumentException"),
            ("GET", "/webhdfs/v1/a?op=MKDIRS", 400, "IllegalArgumentException"),          # wrong method
            ("DELETE", "/webhdfs/v1/a?op=CREATE", 400, "IllegalArgumentException"),
            ("GET", "/somewhere/else?op=GETFILESTATUS", 404, "FileNotFoundException"),     # not WebHDFS
            ("GET", "/webhdfsv1/a?op=GETFILESTATUS", 404, "FileNotFoundException"),
            ("PUT", "/webhdfs/v1/a%zz?op=MKDIRS", 400, "IllegalArgumentException"),        # bad escape
            ("PUT", "/webhdfs/v1/%FF%FE?op=MKDIRS", 400, "IllegalArgumentException"),      # invalid UTF-8
            ("PUT", "/webhdfs/v1/" + "a" * 1100 + "?op=MKDIRS", 400, "IllegalArgumentException"),
            ("PUT", "/webhdfs/v1" + "/abcdefgh" * 600 + "?op=MKDIRS", 400, "IllegalArgumentException"),
        ]
        for method, target, status, exc in cases:
            r = self.p.request(method, target)
            self.remote_exception(r, status, exc, "%s %s" % (method, target[:80]))
        self.nothing_upstream("a malformed request")
        self.still_serving()

    def test_bad_parameter_values_do_not_reach_gen2(self):
        # refused by the proxy or by Gen1: either way a 400 RemoteException, and nothing on Gen2
        for target, method in (("/webhdfs/v1/ok/p?op=MKDIRS&permission=999", "PUT"),
                               ("/webhdfs/v1/ok/p?op=MKDIRS&permission=rwx", "PUT"),
                               ("/webhdfs/v1/ok/file?op=CREATE&write=true&overwrite=maybe", "PUT"),
                               ("/webhdfs/v1/ok/file?op=APPEND&append=true&offset=abc", "POST"),
                               ("/webhdfs/v1/ok/file?op=APPEND&append=true&syncFlag=SOMETIMES", "POST"),
                               ("/webhdfs/v1/ok/file?op=SETACL&aclspec=user:bob:rwz", "PUT"),
                               ("/WebHdfsExt/ok/file?op=SETEXPIRY&expiryOption=Tomorrow", "PUT")):
            r = self.p.request(method, target, b"")
            self.remote_exception(r, 400, None, target)
        self.s.wait_applied()
        self.assertEqual(proxylib.counter_delta(self.before["gen2"], self.s.g2_counters()), {})

    def test_crlf_and_control_characters_encoded(self):
        targets = [
            ("PUT", "/webhdfs/v1/ok/a%0D%0AX-Injected:%20yes/b?op=MKDIRS"),
            ("PUT", "/webhdfs/v1/ok/a%0Ab?op=MKDIRS"),
            ("PUT", "/webhdfs/v1/ok/a%0Db?op=MKDIRS"),
            ("PUT", "/webhdfs/v1/ok/a%00b?op=MKDIRS"),
            ("PUT", "/webhdfs/v1/ok/a%1Bb?op=MKDIRS"),
            ("PUT", "/webhdfs/v1/ok/a%7Fb?op=MKDIRS"),
            ("PUT", "/webhdfs/v1/ok/d?op=MKDIRS&permission=755%0D%0AX-Evil:%201"),
            ("PUT", "/webhdfs/v1/ok/d?op=MKDIRS&user.name=bob%0D%0AAuthorization:%20Bearer%20x"),
            ("PUT", "/webhdfs/v1/ok/d?op=MKDIRS&doas=x%0Ay"),
            ("PUT", "/webhdfs/v1/ok/d?op=MKDIRS&x%0D%0Ay=1"),
            ("PUT", "/webhdfs/v1/ok/file?op=RENAME&destination=/ok/z%0D%0AHost:%20evil"),
            ("POST", "/webhdfs/v1/ok/t?op=CONCAT&sources=/ok/file%0D%0A,/ok/x"),
            ("PUT", "/webhdfs/v1/ok/d?op=MKDIRS&permission=755%09"),
        ]
        for method, target in targets:
            r = self.p.request(method, target, b"")
            self.remote_exception(r, 400, "IllegalArgumentException", target)
        self.nothing_upstream("an encoded control character")
        self.still_serving()

    def test_raw_control_characters_on_the_wire(self):
        # bytes an HTTP client library would refuse to send; the proxy must refuse them too
        for target in (b"/webhdfs/v1/ok/a\x01b?op=MKDIRS", b"/webhdfs/v1/ok/a\x7fb?op=MKDIRS",
                       b"/webhdfs/v1/ok/d?op=MKDIRS&permission=7\x0b55"):
            status, _, _ = emulib.raw_http(self.p.url, b"PUT " + target + b" HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            self.assertEqual(status, 400, target)
        # a bare LF inside the request line splits it: never a second request upstream
        status, _, _ = emulib.raw_http(self.p.url, b"PUT /webhdfs/v1/ok/a\nX: y?op=MKDIRS HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        self.assertGreaterEqual(status, 400)
        self.nothing_upstream("a raw control character")
        self.still_serving()

    def test_dot_segments_refused(self):
        targets = [
            ("PUT", "/webhdfs/v1/ok/../etc?op=MKDIRS"),
            ("PUT", "/webhdfs/v1/ok/%2E%2E/etc?op=MKDIRS"),
            ("PUT", "/webhdfs/v1/ok/%2e%2E%2Fetc?op=MKDIRS"),
            ("PUT", "/webhdfs/v1/../ok?op=MKDIRS"),
            ("PUT", "/webhdfs/v1/ok/./x?op=MKDIRS"),
            ("GET", "/webhdfs/v1/ok/..?op=GETFILESTATUS"),
            ("PUT", "/webhdfs/v1/ok/file?op=RENAME&destination=/ok/../../x"),
            ("PUT", "/webhdfs/v1/ok/file?op=RENAME&destination=..%2Fx"),
            ("POST", "/webhdfs/v1/ok/t?op=CONCAT&sources=/ok/../file"),
        ]
        for method, target in targets:
            r = self.p.request(method, target, b"")
            self.remote_exception(r, 400, "IllegalArgumentException", target)
        # MSCONCAT sources arrive in the JSON body
        r = self.p.request("POST", "/webhdfs/v1/ok/t?op=MSCONCAT", b'{"sources":["/ok/../file"]}',
                           {"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        self.nothing_upstream("a dot segment")
        self.still_serving()

    def test_body_over_the_limit(self):
        big = b"z" * (1024 * 1024 + 1)
        r = self.p.webhdfs("PUT", "/ok/big", "CREATE", body=big, write="true")
        self.remote_exception(r, 413, None, "CREATE over limits.max_body_bytes")
        self.nothing_upstream("an oversized body")
        self.assertIsNone(self.s.g1_status("/ok/big"))
        self.still_serving()

    def test_oversized_headers(self):
        r = self.p.request("GET", "/webhdfs/v1/ok/file?op=GETFILESTATUS", None, {"X-Big": "h" * 100000})
        self.assertGreaterEqual(r.status, 400, r)
        self.assertLess(r.status, 500, r)
        self.nothing_upstream("an oversized header")
        self.still_serving()


if __name__ == "__main__":
    emulib.main()
