"""HTTP framing as RFC 9112 says (issue 11 items 4, 5 and 6), over raw sockets against the real proxy.

Every request below carries a second, smuggled request after its first body (a MKDIRS of /smuggled). Each
must be refused (400, 501 or 431) with Connection: close, the connection must be closed after that one
answer, the smuggled request must never run, and nothing may reach Gen1 or Gen2 (the emulators' request
counters do not move). Refusals the front makes are WebHDFS RemoteExceptions. Cases: Content-Length beside
a transfer coding other than chunked or in HTTP/1.0, two different Content-Lengths, a malformed
Content-Length, obs-fold (of
Transfer-Encoding and of another field), whitespace before the colon, HTTP/1.1 without Host (and two
Hosts), a transfer coding other than chunked (501) or chunked not last, Transfer-Encoding in HTTP/1.0,
CR, NUL and other control bytes in header values (Authorization, x-ms-client-request-id), too many header
fields; then too many query parameters: 1,024 requests of ~990 parameters each get 400 and the proxy's
RSS does not keep growing (the leak of issue 11 item 4; under ASan the proxy's exit reports no leak).
Content-Length beside "Transfer-Encoding: chunked" (which the Azure Node SDK sends) is served by the chunked
body alone and the connection closed after the answer, as RFC 9112 6.3 allows: the smuggled request never
runs either. Well-formed keep-alive requests (Content-Length and chunked, pipelined) still work: the checks
are not just refusing everything. Runs on both journal I/O backends (ctest proxy_framing, proxy_framing_threads).
"""
import re
import socket
import threading
import time

import emulib
import proxylib

SMUGGLED = b"PUT /webhdfs/v1/smuggled?op=MKDIRS HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
CREATE = b"PUT /webhdfs/v1/fr/f?op=CREATE&write=true&overwrite=true HTTP/1.1\r\n"


def exchange(port, data, wait=3.0, source=None):
    """Send data on a fresh connection; read until the proxy closes it or wait seconds pass.
    Returns (bytes received, closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if source:
            s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.settimeout(wait)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out, closed = b"", False
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not b:
                closed = True
                break
            out += b
        return out, closed
    finally:
        s.close()


def responses(raw):
    """Split a byte stream of HTTP/1.1 responses (Content-Length framed) into (status, headers, body)."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            out.append((None, {}, raw))
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        raw = rest[n:]
    return out


class Framing(emulib.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack(config={"limits": {"max_body_bytes": 1024 * 1024, "threads": 2},
                                       "log": {"level": "info"}})
        cls.p = cls.s.proxy
        cls.port = int(cls.p.listen.rsplit(":", 1)[1])
        assert cls.p.webhdfs("PUT", "/fr", "MKDIRS").status == 200
        cls.s.wait_applied()

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def refused(self, data, status, what, remote_exception=True):
        self.s.wait_applied()
        before = proxylib.snapshot_counters(self.s)
        raw, closed = exchange(self.port, data)
        rs = responses(raw)
        if not remote_exception:
            # libmicrohttpd 0.9.75 writes its own status line and headers twice in this answer; what
            # matters is that nothing but that one 400 comes back.
            self.assertEqual(set(re.findall(rb"HTTP/1\.1 (\d+) ", raw)), {b"%d" % status}, "%s: %r" % (what, raw[:600]))
            rs = rs[:1]
        self.assertEqual(len(rs), 1, "%s: expected exactly one answer, got %r" % (what, raw[:600]))
        st, headers, body = rs[0]
        self.assertEqual(st, status, "%s: %r" % (what, raw[:600]))
        self.assertEqual(headers.get("connection", "").lower(), "close", "%s: %r" % (what, raw[:400]))
        self.assertTrue(closed, "%s: the connection stayed open" % what)
        if remote_exception:
            self.assertTrue(headers.get("content-type", "").startswith("application/json"), what)
            rex = emulib.json.loads(body)["RemoteException"]
            self.assertTrue(rex.get("exception") and rex.get("message"), rex)
        self.s.wait_applied()
        after = proxylib.snapshot_counters(self.s)
        self.assertEqual(proxylib.gen1_delta(before["gen1"], after["gen1"], after["time"] - before["time"]), {},
                         what + " reached Gen1")
        self.assertEqual(proxylib.counter_delta(before["gen2"], after["gen2"]), {}, what + " reached Gen2")
        self.assertIsNone(self.s.g1_status("/smuggled"), what + ": the smuggled request ran")

    def test_well_formed_requests_keep_the_connection(self):
        # Content-Length, then chunked, then a body-less request, pipelined on one connection.
        data = (CREATE + b"Host: x\r\nContent-Length: 5\r\n\r\nhello" +
                b"POST /webhdfs/v1/fr/f?op=APPEND&append=true HTTP/1.1\r\nHost: x\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n3\r\n, w\r\n3;ext=1\r\norl\r\n1\r\nd\r\n0\r\n\r\n" +
                b"GET /webhdfs/v1/fr/f?op=GETFILESTATUS HTTP/1.1\r\nHost: x\r\nX-Tab:\ta\tb\r\n\r\n")
        raw, closed = exchange(self.port, data, wait=2.0)
        rs = responses(raw)
        self.assertEqual([r[0] for r in rs], [201, 200, 200], raw[:800])
        self.assertFalse(closed, "a well-formed keep-alive connection was closed")
        self.assertEqual(self.s.g1_read("/fr/f"), b"hello, world")
        self.s.wait_applied()
        self.assertEqual(self.s.g2_read("/fr/f"), b"hello, world")

    def test_smuggling_vectors(self):
        cases = [
            ("CL+TE gzip", CREATE + b"Host: x\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                           b"0\r\n\r\n", 501),
            ("CL+TE in HTTP/1.0", CREATE.replace(b"HTTP/1.1", b"HTTP/1.0") +
                                  b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
            ("two Content-Length", CREATE + b"Host: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello", 400),
            ("obs-fold TE", CREATE + b"Host: x\r\nX-A: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400),
            ("obs-fold value", CREATE + b"Host: x\r\nContent-Length: 0\r\nX-A: a\r\n\tb\r\n\r\n", 400),
            ("space before colon", CREATE + b"Host: x\r\nContent-Length : 5\r\n\r\nhello", 400),
            ("tab before colon", CREATE + b"Host: x\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400),
            ("no Host", CREATE + b"Content-Length: 0\r\n\r\n", 400),
            ("two Hosts", CREATE + b"Host: x\r\nHost: y\r\nContent-Length: 0\r\n\r\n", 400),
            ("gzip, chunked", CREATE + b"Host: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
            ("chunked, gzip", CREATE + b"Host: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
            ("TE twice", CREATE + b"Host: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"0\r\n\r\n", 400),
            ("TE in HTTP/1.0", CREATE.replace(b"HTTP/1.1", b"HTTP/1.0") +
                               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
            ("CR in Authorization", CREATE + b"Host: x\r\nAuthorization: Bearer a\rb\r\nContent-Length: 0\r\n\r\n", 400),
            ("NUL in request id", CREATE + b"Host: x\r\nx-ms-client-request-id: a\x00b\r\nContent-Length: 0\r\n\r\n",
             400),
            ("NUL in the last field", CREATE + b"Host: x\r\nContent-Length: 0\r\nAuthorization: a\x00X: b\r\n\r\n", 400),
            ("SOH in Authorization", CREATE + b"Host: x\r\nAuthorization: a\x01b\r\nContent-Length: 0\r\n\r\n", 400),
            ("DEL in a value", CREATE + b"Host: x\r\nX-Y: a\x7fb\r\nContent-Length: 0\r\n\r\n", 400),
            ("control byte in a name", CREATE + b"Host: x\r\nX\x01Y: a\r\nContent-Length: 0\r\n\r\n", 400),
            ("200 header fields", CREATE + b"Host: x\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(200)) +
                                  b"Content-Length: 0\r\n\r\n", 431),
        ]
        for what, data, status in cases:
            with self.subTest(what):
                self.refused(data + SMUGGLED, status, what)
        self.assertIsNone(self.s.g1_status("/fr/f-never"))

    def test_length_beside_chunked_is_served_by_chunked_then_closed(self):
        # RFC 9112 6.3 lets a server serve this by the transfer coding alone if it closes the connection
        # afterwards (the Azure Node SDK sends both on every upload): one answer, then the close, and the
        # bytes after the chunked body never run as a request.
        for what, cl, chunks, want in (
                ("CL+TE", b"5", b"0\r\n\r\n", b""),
                ("CL+TE, length past the chunks", b"3", b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
                ("CL+TE, length short of the chunks", b"200", b"2\r\nhi\r\n0\r\n\r\n", b"hi")):
            with self.subTest(what):
                path = b"/fr/clte-%d" % len(want)
                data = (CREATE.replace(b"/fr/f?", path + b"?") + b"Host: x\r\nContent-Length: " + cl +
                        b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + SMUGGLED)
                raw, closed = exchange(self.port, data)
                rs = responses(raw)
                self.assertEqual([r[0] for r in rs], [201], "%s: %r" % (what, raw[:600]))
                self.assertEqual(rs[0][1].get("connection", "").lower(), "close", what)
                self.assertTrue(closed, what + ": the connection stayed open")
                self.assertEqual(self.s.g1_read(path.decode()), want)
                self.assertIsNone(self.s.g1_status("/smuggled"), what + ": the smuggled request ran")
        self.s.wait_applied()
        self.assertEqual(self.s.compare("/fr"), [])

    def test_refused_by_the_http_library(self):
        # libmicrohttpd itself refuses these before the front sees the request: still 400 + close and
        # nothing upstream, but its answer is its own HTML page, not a RemoteException.
        for what, data in (("malformed Content-Length", CREATE + b"Host: x\r\nContent-Length: 5x\r\n\r\nhello"),
                           ("Content-Length list", CREATE + b"Host: x\r\nContent-Length: 5, 5\r\n\r\nhello"),
                           ("signed Content-Length", CREATE + b"Host: x\r\nContent-Length: +5\r\n\r\nhello"),
                           ("line without a colon", CREATE + b"Host: x\r\nno colon here\r\n\r\n")):
            with self.subTest(what):
                self.refused(data + SMUGGLED, 400, what, remote_exception=False)
        # So many fields that MHD's connection pool runs out before the front sees them: its own 431.
        many = CREATE + b"Host: x\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(3000)) + b"\r\n"
        self.refused(many + SMUGGLED, 431, "3000 header fields", remote_exception=False)

    def test_too_many_query_parameters_are_answered_and_freed(self):
        def rss_kib():
            with open("/proc/%d/status" % self.p.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
            return 0

        query = "&".join("p%d=%d" % (i, i) for i in range(990))
        req = ("GET /webhdfs/v1/fr?op=GETFILESTATUS&%s HTTP/1.1\r\nHost: x\r\n\r\n" % query).encode()
        answers, lock = [], threading.Lock()

        def worker(n):
            for _ in range(n):
                raw, closed = exchange(self.port, req, wait=10.0)
                rs = responses(raw)
                with lock:
                    answers.append((rs[0][0] if rs else None, closed))

        def batch(total, conc=16):
            ts = [threading.Thread(target=worker, args=(total // conc,)) for _ in range(conc)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()

        before_g1 = proxylib.snapshot_counters(self.s)
        batch(128)  # warm up: pools and arenas reach their working size
        rss0 = rss_kib()
        batch(1024)
        rss1 = rss_kib()
        self.assertEqual(len(answers), 128 + 1024)
        tally = {}
        for a in answers:
            tally[a] = tally.get(a, 0) + 1
        self.assertEqual(tally, {(400, True): len(answers)}, "every request answered 400 and closed")
        after = proxylib.snapshot_counters(self.s)
        self.assertEqual(proxylib.gen1_delta(before_g1["gen1"], after["gen1"], after["time"] - before_g1["time"]),
                         {}, "a refused request reached Gen1")
        # The leak kept ~30 KiB per request (1,024 requests: +31 MiB); allow 8 MiB of noise. Under a
        # sanitizer freed memory sits in quarantine, so RSS says nothing there: LeakSanitizer's report at
        # the proxy's exit (checked by proxylib on close) does the job instead.
        print("RSS %d KiB -> %d KiB over 1024 requests of 990 parameters" % (rss0, rss1))
        with open("/proc/%d/maps" % self.p.proc.pid) as f:
            sanitized = any(n in f.read() for n in ("libasan", "libtsan"))
        if not sanitized:
            self.assertLess(rss1 - rss0, 8 * 1024, "RSS grew from %d to %d KiB" % (rss0, rss1))
        self.assertEqual(self.p.webhdfs("GET", "/fr", "GETFILESTATUS").status, 200)
        # 65 parameters is over WhReq's limit but parses fine in MHD: the handler's own 400.
        r = self.p.request("GET", "/webhdfs/v1/fr?op=GETFILESTATUS&" + "&".join("q%d=1" % i for i in range(65)))
        self.assertEqual(r.status, 400, r)
        self.assertIn("RemoteException", r.json())


if __name__ == "__main__":
    emulib.main()
