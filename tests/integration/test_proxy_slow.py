"""Slow clients and connection limits on the front (issue 11 item 7), against the real proxy.

limits.request_timeout_s is 2 (30 for the connection caps, so that no connection there ends by it),
limits.max_connections 16 and limits.max_connections_per_client 8:
- a client trickling its request line and headers, or its body, one byte at a time gets 408 (or just the
  close) within request_timeout_s plus slack, and the half-sent write never reaches Gen1;
- 16 slow clients from one address (127.0.0.1) hold at most 8 connections (the others are refused at
  once), and a normal writer from another address (127.0.0.2) gets every one of its 14 requests through
  while they trickle;
- connections over max_connections (from several addresses, under the per-address cap) are refused
  promptly (closed at accept, not left waiting in the backlog), and counted in
  dualpipe_front_connections_refused_total; once some close, new ones are served again.
"""
import http.client
import select
import socket
import threading
import time

import emulib
import proxylib

TIMEOUT_S = 2
SLACK_S = 2.5


def connect(port, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def refused_promptly(s, within=1.0):
    """True when the proxy closes s (EOF or reset) within `within` seconds without answering."""
    s.settimeout(within)
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class Trickler(threading.Thread):
    """Sends data one byte every `gap` seconds until the proxy closes the connection; records what came
    back and when the connection ended."""

    def __init__(self, port, data, gap=0.2, source="127.0.0.1", head=0):
        super().__init__(daemon=True)
        self.sock = connect(port, source)
        self.t0 = time.monotonic()
        self.data, self.gap, self.head = data, gap, head
        self.got, self.ended = b"", None
        self.stop = threading.Event()

    def run(self):
        self.sock.setblocking(False)
        i = 0
        try:
            if self.head:
                self.sock.sendall(self.data[:self.head])
                i = self.head
            while not self.stop.is_set() and time.monotonic() - self.t0 < 30:
                if i < len(self.data):
                    try:
                        self.sock.send(self.data[i:i + 1])
                        i += 1
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        break
                r, _, _ = select.select([self.sock], [], [], self.gap)
                if r:
                    try:
                        b = self.sock.recv(65536)
                    except OSError:
                        break
                    if not b:
                        break
                    self.got += b
        finally:
            self.ended = time.monotonic() - self.t0
            self.sock.close()


class Slow(emulib.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack(config={"limits": {"request_timeout_s": TIMEOUT_S, "idle_timeout_s": 60,
                                                  "max_connections": 16, "max_connections_per_client": 8,
                                                  "threads": 2},
                                       "log": {"level": "info"}})
        cls.p = cls.s.proxy
        cls.port = int(cls.p.listen.rsplit(":", 1)[1])
        assert cls.p.webhdfs("PUT", "/slow", "MKDIRS").status == 200

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def quiet(self):
        """Wait until earlier clients' connections are closed on the proxy's side too (they count)."""
        deadline = time.monotonic() + 5
        while self.p.metrics().get("dualpipe_front_connections", 0) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)

    def ended_by_timeout(self, t, what):
        t.join(TIMEOUT_S + SLACK_S + 5)
        self.assertIsNotNone(t.ended, what + ": still connected")
        self.assertLessEqual(t.ended, TIMEOUT_S + SLACK_S, "%s: ended after %.1f s" % (what, t.ended))
        self.assertGreaterEqual(t.ended, TIMEOUT_S - 0.5, "%s: ended after %.1f s" % (what, t.ended))
        if t.got:
            self.assertTrue(t.got.startswith(b"HTTP/1.1 408 "), "%s: %r" % (what, t.got[:200]))
            self.assertIn(b"RemoteException", t.got)

    def test_trickling_headers_get_408(self):
        before = self.s.g1_counters()
        t = Trickler(self.port, b"PUT /webhdfs/v1/slow/h?op=MKDIRS HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200)
        t.start()
        self.ended_by_timeout(t, "trickling headers")
        self.assertEqual(self.s.g1_counters().get("PUT MKDIRS", 0), before.get("PUT MKDIRS", 0))

    def test_trickling_body_gets_408_and_nothing_reaches_gen1(self):
        before = self.s.g1_counters()
        head = b"PUT /webhdfs/v1/slow/b?op=CREATE&write=true HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n"
        t = Trickler(self.port, head + b"x" * 500, head=len(head) + 10)
        t.start()
        self.ended_by_timeout(t, "trickling body")
        self.assertEqual(t.got[:13], b"HTTP/1.1 408 ", t.got[:200])
        self.assertEqual(self.s.g1_counters().get("PUT CREATE", 0), before.get("PUT CREATE", 0))
        self.assertIsNone(self.s.g1_status("/slow/b"))


class Limits(emulib.unittest.TestCase):
    """The connection caps, with a request timeout long enough (30 s) that no connection here ends by it."""

    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack(config={"limits": {"request_timeout_s": 30, "idle_timeout_s": 60,
                                                  "max_connections": 16, "max_connections_per_client": 8,
                                                  "threads": 2},
                                       "log": {"level": "info"}})
        cls.p = cls.s.proxy
        cls.port = int(cls.p.listen.rsplit(":", 1)[1])
        assert cls.p.webhdfs("PUT", "/slow", "MKDIRS").status == 200

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    quiet = Slow.quiet

    def test_slow_host_does_not_starve_another(self):
        self.quiet()
        slow = [Trickler(self.port, b"GET /webhdfs/v1/slow?op=LISTSTATUS HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100,
                         gap=0.1) for _ in range(16)]
        for t in slow:
            t.start()
        deadline = time.monotonic() + 3
        while sum(t.ended is not None for t in slow) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        cut = [t for t in slow if t.ended is not None]
        self.assertEqual(len(cut), 8, "16 slow connections from one address at a cap of 8: %d were cut" % len(cut))
        self.assertTrue(all(t.ended < 1.5 and not t.got for t in cut),
                        "over-cap connections refused at once: %s" % [round(t.ended, 2) for t in cut])
        ok = 0
        for i in range(14):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5, source_address=("127.0.0.2", 0))
            try:
                if i % 2 == 0:
                    c.request("PUT", "/webhdfs/v1/slow/w%d?op=CREATE&write=true&overwrite=true" % i, body=b"d%d" % i)
                    ok += c.getresponse().status == 201
                else:
                    c.request("GET", "/webhdfs/v1/slow/w%d?op=GETFILESTATUS" % (i - 1))
                    ok += c.getresponse().status == 200
            finally:
                c.close()
        alive = [t for t in slow if t.ended is None]
        self.assertEqual(ok, 14, "the other address's writer got %d of 14 requests through" % ok)
        self.assertEqual(len(alive), 8, "the slow host's connections were still held during the writes")
        for t in slow:
            t.stop.set()
        for t in slow:
            t.join(5)
        self.s.wait_applied()
        self.assertEqual(self.s.g2_read("/slow/w0"), b"d0")

    def test_over_max_connections_refused_promptly(self):
        m0 = self.p.metrics().get("dualpipe_front_connections_refused_total", 0)
        self.quiet()
        held = [connect(self.port, "127.0.0.%d" % (2 + i // 4)) for i in range(16)]
        try:
            time.sleep(0.2)
            r, _, _ = select.select(held, [], [], 0.3)
            self.assertEqual(r, [], "a connection under the limit was closed")
            t0 = time.monotonic()
            extra = connect(self.port, "127.0.0.9")
            self.assertTrue(refused_promptly(extra), "the 17th connection was not refused within 1 s")
            self.assertLess(time.monotonic() - t0, 1.0)
            extra.close()
        finally:
            for h in held:
                h.close()
        self.assertGreater(self.p.metrics().get("dualpipe_front_connections_refused_total", 0), m0)
        deadline = time.monotonic() + 5
        while True:
            try:
                r = self.p.webhdfs("GET", "/slow", "GETFILESTATUS")
                if r.status == 200:
                    break
            except (ConnectionError, http.client.HTTPException):
                pass
            self.assertLess(time.monotonic(), deadline, "no connection served after the held ones closed")
            time.sleep(0.1)


if __name__ == "__main__":
    emulib.main()
