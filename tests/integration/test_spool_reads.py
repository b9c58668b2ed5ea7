"""test_spool_reads: reads never use the spool and never fail because writes filled it (issue 11 item 8).

Before issue 9 an OPEN answer was buffered in a spool.dir file that spool.max_bytes did not count: two
readers that never read filled the file system while the proxy reported the spool half empty, and an OPEN
while the spool was full got 500. OPEN now streams (limits.stream_buffer_bytes in memory per read). With
spool.max_bytes at its 1 MiB minimum, policy reject and Gen2 down (so write bodies stay spooled):
- two readers of a 4 MiB file that stop reading after the headers hold no disk at all: the space of the
  proxy's open files under spool.dir does not grow, and a write still gets through;
- writes then fill the spool until one gets 503; an OPEN of the 4 MiB file still gets 200 with every
  byte, and so do the stalled readers once they read on;
- Gen2 returns: the backlog drains and both stores are equal.
Runs on both journal I/O backends (spool_reads, spool_reads_threads).
"""
import os
import time
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402
import unittest  # noqa: E402

MiB = 1024 * 1024
CAP = 1 * MiB
BODY = 200 * 1024
BIG = 4 * MiB
APPLIER = {"backoff_base_ms": 100, "backoff_cap_ms": 1000, "breaker_probe_ms": 300}


def spool_fd_bytes(stack):
    """Bytes allocated on disk by the files under spool.dir the proxy holds open (deleted ones too)."""
    spool = os.path.realpath(stack.config["spool"]["dir"])
    fddir = "/proc/%d/fd" % stack.proxy.proc.pid
    total = 0
    for fd in os.listdir(fddir):
        try:
            target = os.readlink(os.path.join(fddir, fd))
            if target.startswith(spool + "/"):
                total += os.stat(os.path.join(fddir, fd)).st_blocks * 512
        except OSError:
            pass
    return total


def stalled_reader(port, path):
    """GET OPEN of path; read only the status line and headers, then stop reading. Returns (sock, head, rest)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("GET /webhdfs/v1%s?op=OPEN&read=true HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    s.settimeout(10)
    got = b""
    while b"\r\n\r\n" not in got:
        b = s.recv(1024)
        if not b:
            break
        got += b
    head, _, rest = got.partition(b"\r\n\r\n")
    return s, head, rest


def read_rest(s, rest, n):
    s.settimeout(30)
    while len(rest) < n:
        b = s.recv(1 << 16)
        if not b:
            break
        rest += b
    s.close()
    return rest


class SpoolReads(unittest.TestCase):
    def test_reads_do_not_use_the_spool(self):
        s = proxylib.Stack(config={"spool": {"max_bytes": CAP, "policy": "reject"}, "applier": APPLIER})
        self.addCleanup(s.close)
        port = int(s.proxy.listen.rsplit(":", 1)[1])
        self.assertEqual(s.proxy.webhdfs("PUT", "/rd", "MKDIRS").status, 200)
        big = os.urandom(BIG)
        # straight to Gen1 (outside /rd, which is compared at the end): no spool involved
        r = s.g1("PUT", "/src/big", "CREATE", body=big, write="true")
        self.assertEqual(r.status, 201, r)
        s.wait_applied()
        self.assertEqual(s.gen2.admin("POST", "/down?ms=0").status, 200)

        before = spool_fd_bytes(s)
        readers = [stalled_reader(port, "/src/big") for _ in range(2)]
        for _, head, _ in readers:
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        grown = spool_fd_bytes(s) - before
        self.assertLess(grown, 64 * 1024, "two stalled reads took %d bytes of disk under spool.dir" % grown)
        r = s.proxy.webhdfs("PUT", "/rd/small", "CREATE", body=b"x" * 1000, write="true")
        self.assertEqual(r.status, 201, "a write while two reads stall: %r" % r)

        written, refused = {"/rd/small": b"x" * 1000}, None
        for i in range(3 * CAP // BODY):
            data = os.urandom(BODY)
            r = s.proxy.webhdfs("PUT", "/rd/f%02d" % i, "CREATE", body=data, write="true")
            if r.status == 201:
                written["/rd/f%02d" % i] = data
                continue
            refused = r
            break
        self.assertIsNotNone(refused, "the spool cap never refused a write")
        self.assertEqual(refused.status, 503, refused)

        r = s.proxy.webhdfs("GET", "/src/big", "OPEN", read="true")
        self.assertEqual(r.status, 200, "an OPEN with the spool full: %r" % r)
        self.assertEqual(r.body, big)
        for sock, _, rest in readers:
            self.assertEqual(read_rest(sock, rest, BIG), big)

        self.assertEqual(s.gen2.admin("POST", "/up").status, 200)
        s.wait_drained(timeout=60)
        self.assertEqual(s.compare("/rd"), [])
        for p, d in written.items():
            self.assertEqual(s.g2_read(p), d, p)


if __name__ == "__main__":
    unittest.main(verbosity=2)
