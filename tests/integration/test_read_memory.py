"""Memory of many concurrent reads through the proxy (issue 14, "RSS at 256 concurrent uploads").

Every read's answer goes through a buffer of its own (proxy/rdbuf.h): 16 KiB to start with, growing
to limits.stream_buffer_bytes only while all reads' buffers together stay within limits.stream_memory_bytes.
When each read had its full 1 MiB, the read-back of the 256-upload benchmark took the proxy from 45 to over
300 MiB. Checked here through real processes (Gen1 and Gen2 emulators, the proxy, readers that stop reading):
- many readers that stall mid-file hold no more than stream_memory_bytes plus 16 KiB each (the proxy's
  gauge dualpipe_front_read_buffer_bytes) and the proxy's peak RSS grows by far less than 1 MiB per read;
- one stalled reader alone still gets its whole stream_buffer_bytes (the bound does not starve a lone read);
- every stalled reader, once it reads again, gets the whole file intact (SHA-256), and the buffers are
  given back when the reads end (the gauge returns to 0).
No timing is asserted. Skipped under AddressSanitizer (its allocator's quarantine makes RSS meaningless).
"""
import hashlib
import http.client
import time
import urllib.parse

import emulib
import proxylib
import test_proxy_stream as tps

MiB = 1024 * 1024
KiB = 1024


class ReadMemory(emulib.unittest.TestCase):
    READERS = 24                     # under the proxy's Gen1 connections per host (32)
    FILE_SIZE = 8 * MiB
    STREAM_MEMORY = 2 * MiB          # limits.stream_memory_bytes
    STREAM_BUFFER = 1 * MiB          # limits.stream_buffer_bytes (its default)
    FLOOR_BOUND = 16 * KiB           # what a read holds before it may grow (rdbuf.h)
    RSS_BOUND_MIB = 16               # 24 stalled reads at 1 MiB each grew the peak RSS by over 24 MiB

    @classmethod
    def setUpClass(cls):
        if tps.sanitized_build():
            raise emulib.unittest.SkipTest("RSS under AddressSanitizer counts its quarantine")
        cls.s = proxylib.Stack(dialect="adls", gen1_kw={"extra_args": ["--max-body", str(16 * MiB)]},
                               config={"limits": {"stream_memory_bytes": cls.STREAM_MEMORY,
                                                  "stream_buffer_bytes": cls.STREAM_BUFFER}})
        cls.p = cls.s.proxy
        cls.path = "/readmem/big.bin"
        cls.sha = tps.put_file(cls.s, cls.path, cls.FILE_SIZE)

    @classmethod
    def tearDownClass(cls):
        if hasattr(cls, "s"):
            cls.s.close()

    def gauge(self, name):
        return self.p.metrics().get(name, -1)

    def open_stalled(self):
        """A GET of the file whose reader takes the head and one byte, then stops reading: past what the
        sockets hold, the rest waits in the proxy's buffer or at Gen1. Returns (conn, response, byte)."""
        u = urllib.parse.urlsplit(self.p.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.request("GET", tps.open_target(self.path))
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        first = r.read(1)
        self.assertEqual(len(first), 1)
        return conn, r, first

    def settle(self, name, timeout=30):
        """Wait until gauge name stops changing (every stalled transfer paused); its last value."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            v = self.gauge(name)
            if v != last:
                last, since = v, time.monotonic()
            elif time.monotonic() - since > 1.0:
                return v
            time.sleep(0.1)
        return last

    def finish(self, conn, r, first):
        h = hashlib.sha256(first)
        n = len(first)
        while True:
            piece = r.read(MiB)
            if not piece:
                break
            h.update(piece)
            n += len(piece)
        conn.close()
        return n, h.hexdigest()

    def wait_released(self, timeout=20):
        deadline = time.monotonic() + timeout
        while self.gauge("dualpipe_front_read_buffer_bytes") != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.gauge("dualpipe_front_read_buffer_bytes"), 0, "read buffers given back")

    def test_lone_reader_gets_its_whole_buffer(self):
        conn, r, first = self.open_stalled()
        held = self.settle("dualpipe_front_read_buffer_bytes")
        self.assertGreaterEqual(held, self.STREAM_BUFFER, "a lone stalled read grows to stream_buffer_bytes")
        self.assertLessEqual(held, self.STREAM_BUFFER + self.FLOOR_BOUND)
        self.assertEqual(self.finish(conn, r, first), (self.FILE_SIZE, self.sha))
        self.wait_released()

    def test_many_stalled_readers_bounded(self):
        pid = self.p.proc.pid
        if not tps.reset_hwm(pid):
            self.skipTest("cannot reset VmHWM (/proc/PID/clear_refs)")
        before = tps.vm_hwm_kib(pid)
        readers = [self.open_stalled() for _ in range(self.READERS)]
        try:
            self.assertEqual(self.gauge("dualpipe_front_reads_streaming"), self.READERS)
            held = self.settle("dualpipe_front_read_buffer_bytes")
            grew_mib = (tps.vm_hwm_kib(pid) - before) / 1024.0
            print("%d stalled reads: buffers %.1f MiB, proxy peak RSS +%.1f MiB"
                  % (self.READERS, held / MiB, grew_mib))
            self.assertLessEqual(held, self.STREAM_MEMORY + self.READERS * self.FLOOR_BOUND,
                                 "the buffers of all reads stay within stream_memory_bytes + 16 KiB each")
            self.assertLess(grew_mib, self.RSS_BOUND_MIB,
                            "%d stalled reads grew the proxy's peak RSS by %.1f MiB" % (self.READERS, grew_mib))
            for i, (conn, r, first) in enumerate(readers):
                self.assertEqual(self.finish(conn, r, first), (self.FILE_SIZE, self.sha), "reader %d" % i)
        finally:
            for conn, _, _ in readers:
                conn.close()
        self.wait_released()


if __name__ == "__main__":
    emulib.unittest.main()
