"""Reads stream through the proxy (issue 9, "Stream, never whole"): Gen1's answer goes back to the reader
as Gen1 sends it, through a bounded buffer per request, never whole in memory or on disk.

What a reader relies on, checked through real processes (Gen1 emulator, Gen2 emulator, proxy):
- a file larger than any buffer comes back byte for byte (SHA-256) with Gen1's Content-Length, while
  the proxy's peak RSS (VmHWM) grows by far less than the file;
- a slow reader gets intact data without the proxy buffering the file, and a pause longer than
  gen1.timeout_ms is not mistaken for a silent Gen1 (the paused transfer is not timed);
- a reader that goes away mid-file cancels the Gen1 transfer (nothing left in flight on either side)
  and the proxy keeps serving;
- a Gen1 body that breaks off mid-answer breaks the reader's connection: never a short body that
  looks complete;
- OPEN with offset/length, and a 40,000-entry directory listed whole and in pages, equal Gen1's answers;
- against a Gen1 that sends slowly (a scripted server): the head and the first bytes reach the reader
  while Gen1 holds the rest, the proxy uses next to no CPU while it waits (no polling), and a chunked
  answer is relayed chunked, whole, or cut off when Gen1 breaks it.
Both Gen1 dialects (hadoop: the namenode's 307 is followed inside the proxy, the datanode's answer
streams). The heavy versions (3 GiB, 200,000 entries) are in test_proxy_stream_scale.py.
"""
import hashlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse

import emulib
import proxylib

MiB = 1024 * 1024
PIECE = 1 * MiB          # reader's read size


def sanitized_build():
    """True when the proxy under test is an AddressSanitizer build: its allocator keeps freed memory in a
    quarantine (libcurl frees a buffer at every resume), so its RSS grows with the work done, up to the
    quarantine's size, whatever the proxy itself holds."""
    with open(proxylib.DUALPIPE_BIN, "rb") as f:
        return b"__asan_init" in f.read()


ASAN_SLACK_MIB = 64 if sanitized_build() else 0


def vm_hwm_kib(pid):
    """Peak resident set of a process (VmHWM, KiB)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % pid)


def reset_hwm(pid):
    """Start a new peak (writing 5 to clear_refs resets VmHWM to the current RSS). False when refused."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def put_file(stack, path, size, chunk=4 * MiB):
    """Write size bytes to Gen1 (straight to the emulator, not through the proxy) in appends of chunk
    bytes; every chunk differs (its index in front of one random block). Returns the SHA-256 hex."""
    base = os.urandom(chunk)
    h = hashlib.sha256()
    off = 0
    i = 0
    while off < size:
        n = min(chunk, size - off)
        piece = (i.to_bytes(8, "big") + base[8:])[:n]
        h.update(piece)
        if off == 0:
            r = stack.g1("PUT", path, "CREATE", body=piece, write="true", overwrite="true")
            assert r.status == 201, r
        else:
            r = stack.g1("POST", path, "APPEND", body=piece, append="true")
            assert r.status == 200, r
        off += n
        i += 1
    return h.hexdigest()


def open_target(path, **params):
    return proxylib.wh_target(path, "OPEN", read="true", **params)


def stream_get(base, target, on_piece=None, timeout=120):
    """GET target from base ('http://127.0.0.1:P'), hashing the body piece by piece. on_piece(total) runs
    after every piece (a slow reader sleeps there). Returns (status, headers dict lower-case, byte count,
    sha256 hex, seconds). A body that ends early raises (http.client.IncompleteRead or a socket error)."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        t0 = time.monotonic()
        conn.request("GET", target)
        r = conn.getresponse()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        h = hashlib.sha256()
        total = 0
        while True:
            piece = r.read(PIECE)
            if not piece:
                break
            h.update(piece)
            total += len(piece)
            if on_piece:
                on_piece(total)
        if r.length not in (None, 0):
            raise http.client.IncompleteRead(b"", r.length)
        return r.status, hdrs, total, h.hexdigest(), time.monotonic() - t0
    finally:
        conn.close()


def make_entries(gen1, directory, n, threads=8):
    """n empty files f000000.. in directory on the Gen1 emulator, created over keep-alive connections
    from several threads (a few seconds per 20,000)."""
    host, port = urllib.parse.urlsplit(gen1.url).hostname, urllib.parse.urlsplit(gen1.url).port
    r = gen1.webhdfs("PUT", directory, "MKDIRS")
    assert r.status == 200, r
    errors = []

    def work(k):
        c = http.client.HTTPConnection(host, port, timeout=60)
        try:
            for i in range(k, n, threads):
                # hadoop dialect: an empty CREATE with data=true goes to the datanode; without a body the
                # namenode creates the file itself when asked noredirect-free with write=true (adls) --
                # both emulator dialects take the one-step form for an empty file.
                c.request("PUT", "/webhdfs/v1%s/f%06d?op=CREATE&write=true" % (directory, i), body=b"",
                          headers={"Content-Length": "0"})
                resp = c.getresponse()
                resp.read()
                if resp.status == 307:  # hadoop: follow to the datanode with the (empty) body
                    loc = urllib.parse.urlsplit(resp.getheader("Location"))
                    d = http.client.HTTPConnection(loc.hostname, loc.port, timeout=60)
                    d.request("PUT", loc.path + "?" + loc.query, body=b"", headers={"Content-Length": "0"})
                    dr = d.getresponse()
                    dr.read()
                    d.close()
                    if dr.status != 201:
                        raise AssertionError("CREATE f%06d at the datanode: %d" % (i, dr.status))
                elif resp.status != 201:
                    raise AssertionError("CREATE f%06d: %d" % (i, resp.status))
        except Exception as e:  # noqa: BLE001 -- reported by the caller
            errors.append(e)
        finally:
            c.close()

    ths = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errors:
        raise errors[0]


def timed_get(base, target, timeout=300):
    """(Response, seconds) of one GET on a fresh connection."""
    t0 = time.monotonic()
    r = emulib.http_request(base, "GET", target, timeout=timeout)
    return r, time.monotonic() - t0


def names_of(listing):
    return [e["pathSuffix"] for e in listing["FileStatuses"]["FileStatus"]]


class Stream(emulib.unittest.TestCase):
    """The checks, on the adls dialect; subclasses change the dialect or the sizes."""
    DIALECT = "adls"
    ROOT = "/stream"
    FILE_SIZE = 128 * MiB + 12345
    RSS_BOUND_MIB = 32          # the peak RSS may grow by this much during a read of FILE_SIZE (plus
                                # ASAN_SLACK_MIB); a proxy that buffers grows by about the file's size
    ENTRIES = 40000             # about 10 MiB of JSON: over the 8 MiB the proxy once refused with a 502
    STREAM_BUFFER = 65536       # small: many pause/resume rounds per file
    GEN1_TIMEOUT_MS = 3000      # shorter than the slow reader's pause: a paused transfer is not "silent"

    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack(dialect=cls.DIALECT, gen1_kw={"extra_args": ["--max-body", str(64 * MiB)]},
                               config={"limits": {"stream_buffer_bytes": cls.STREAM_BUFFER},
                                       "gen1": {"timeout_ms": cls.GEN1_TIMEOUT_MS}})
        cls.p = cls.s.proxy
        cls.big = cls.ROOT + "/big.bin"
        cls.big_sha = put_file(cls.s, cls.big, cls.FILE_SIZE, chunk=min(64 * MiB, cls.FILE_SIZE))

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def pid(self):
        return self.p.proc.pid

    def assert_idle(self, timeout=20):
        """Nothing left in flight: the proxy relays no read and the Gen1 emulator has no request open."""
        deadline = time.monotonic() + timeout
        while True:
            streaming = self.p.metrics().get("dualpipe_front_reads_streaming", -1)
            in_flight = self.s.gen1.counters().get("in_flight", -1)
            if streaming == 0 and in_flight == 0:
                return
            if time.monotonic() > deadline:
                self.fail("still in flight after %ds: proxy streaming=%s, Gen1 in_flight=%s"
                          % (timeout, streaming, in_flight))
            time.sleep(0.05)

    def read_bounded(self, what, on_piece=None, **params):
        """OPEN the big file through the proxy; assert intact data and the RSS bound. Returns seconds."""
        reset_hwm(self.pid())
        before = vm_hwm_kib(self.pid())
        status, hdrs, n, sha, secs = stream_get(self.p.url, open_target(self.big, **params), on_piece)
        grew_mib = (vm_hwm_kib(self.pid()) - before) / 1024.0 - ASAN_SLACK_MIB
        self.assertEqual(status, 200, what)
        self.assertEqual(n, self.FILE_SIZE, what)
        self.assertEqual(sha, self.big_sha, what)
        self.assertEqual(hdrs.get("content-length"), str(self.FILE_SIZE), what + ": Gen1's length is relayed")
        self.assertLess(grew_mib, self.RSS_BOUND_MIB,
                        "%s: the proxy's peak RSS grew by %.1f MiB reading a %.0f MiB file"
                        % (what, grew_mib, self.FILE_SIZE / MiB))
        print("%s: %.0f MiB in %.2f s (%.0f MiB/s), proxy peak RSS +%.1f MiB"
              % (what, n / MiB, secs, n / MiB / secs, grew_mib + ASAN_SLACK_MIB))
        return secs

    # ---- tests ----

    def test_open_streams_bounded(self):
        self.read_bounded("OPEN through the proxy (%s)" % self.DIALECT)
        self.assert_idle()

    def test_slow_reader(self):
        # The first pieces slowly (the proxy's buffer fills and Gen1's transfer pauses), then one pause
        # longer than gen1.timeout_ms, then full speed: intact data, bounded RSS, no timeout.
        t_end = time.monotonic() + 2.0
        state = {"paused": False}

        def slow(total):
            if time.monotonic() < t_end:
                time.sleep(0.1)
            elif not state["paused"]:
                state["paused"] = True
                time.sleep(self.GEN1_TIMEOUT_MS / 1000.0 + 2.0)

        self.read_bounded("slow reader (%s)" % self.DIALECT, on_piece=slow)
        self.assertTrue(state["paused"])
        self.assert_idle()

    def test_reader_goes_away(self):
        u = urllib.parse.urlsplit(self.p.url)
        for _ in range(3):
            s = socket.create_connection((u.hostname, u.port), timeout=30)
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % open_target(self.big)).encode())
            got = 0
            while got < 4 * MiB:
                chunk = s.recv(256 * 1024)
                self.assertTrue(chunk, "the proxy closed before 4 MiB")
                got += len(chunk)
            s.close()
        self.assert_idle()
        # still serving: a small read, and the whole file again
        v = self.p.webhdfs("GET", self.big, "GETFILESTATUS")
        self.assertEqual(v.status, 200, v)
        self.assertEqual(v.json()["FileStatus"]["length"], self.FILE_SIZE)
        status, _, n, sha, _ = stream_get(self.p.url, open_target(self.big))
        self.assertEqual((status, n, sha), (200, self.FILE_SIZE, self.big_sha))

    def test_gen1_breaks_mid_body(self):
        cut = 32 * MiB + 7
        # hadoop: the rule also matches the namenode's GET (its short 307 is not cut), so it fires twice
        fires = 2 if self.DIALECT == "hadoop" else 1
        self.s.gen1.admin("DELETE", "/counters")
        self.s.gen1.fault("method=GET,op=OPEN,action=reset,after_bytes=%d,count=%d" % (cut, fires))
        got = {"n": 0}

        def count(total):
            got["n"] = total

        with self.assertRaises((http.client.IncompleteRead, ConnectionError, socket.timeout)):
            stream_get(self.p.url, open_target(self.big), count)
        # The reader had most of what Gen1 sent before it broke off (streamed, not copied whole first:
        # a whole copy would have ended in a 502 without a byte), and never more. The reset discards
        # what was still in the sockets' buffers, hence the margin.
        self.assertGreaterEqual(got["n"], 8 * MiB)
        self.assertLessEqual(got["n"], cut, "the reader got more than Gen1 sent")
        self.assertEqual(self.s.gen1.counters()["faults"]["reset"], fires)
        self.assert_idle()
        # a listing that breaks off (a JSON answer, not OPEN data) breaks the reader's connection too
        self.s.gen1.fault("method=GET,op=LISTSTATUS,action=reset,after_bytes=100,count=1")
        with self.assertRaises((http.client.IncompleteRead, ConnectionError, socket.timeout)):
            stream_get(self.p.url, proxylib.wh_target(self.ROOT, "LISTSTATUS"))
        self.assert_idle()
        status, _, n, sha, _ = stream_get(self.p.url, open_target(self.big))
        self.assertEqual((status, n, sha), (200, self.FILE_SIZE, self.big_sha))

    def test_open_ranges(self):
        size = self.FILE_SIZE
        for off, ln in ((0, 1), (3, 10 * MiB + 5), (size - 20 * MiB - 1, 20 * MiB), (size - 1, 100),
                        (size - 9 * MiB, 64 * MiB)):
            d = self.s.g1("GET", self.big, "OPEN", read="true", offset=off, length=ln)
            self.assertEqual(d.status, 200, d)
            status, hdrs, n, sha, _ = stream_get(self.p.url, open_target(self.big, offset=off, length=ln))
            self.assertEqual(status, 200)
            self.assertEqual(n, len(d.body), (off, ln))
            self.assertEqual(sha, hashlib.sha256(d.body).hexdigest(), (off, ln))
        # past the end: Gen1's error, relayed as it is
        v = self.p.webhdfs("GET", self.big, "OPEN", read="true", offset=size + 1)
        self.assertEqual(v.status, 400, v)
        self.assertEqual(v.json()["RemoteException"]["exception"], "BadOffsetException")

    def test_large_listing(self):
        d = self.ROOT + "/many"
        make_entries(self.s.gen1, d, self.ENTRIES)
        target = proxylib.wh_target(d, "LISTSTATUS")
        # three rounds each way, alternating, so neither side gets a warm-up advantage; the median is printed
        t_direct, t_via = [], []
        for _ in range(3):
            direct, t = timed_get(self.s.gen1.url, target)
            t_direct.append(t)
            via, t = timed_get(self.p.url, target)
            t_via.append(t)
            self.assertEqual(direct.status, 200, direct)
            self.assertEqual(via.status, 200, via)
            self.assertEqual(via.json(), direct.json())
        self.assertEqual(len(names_of(via.json())), self.ENTRIES)
        print("LISTSTATUS of %d entries (%s, %.1f MiB): direct %.3f s, through the proxy %.3f s (median of 3)"
              % (self.ENTRIES, self.DIALECT, len(via.body) / MiB, sorted(t_direct)[1], sorted(t_via)[1]))
        # paged (listSize/listAfter, the ADLS form): the pages add up to the whole listing
        names, after = [], ""
        while True:
            params = {"listSize": 4000}
            if after:
                params["listAfter"] = after
            page = self.p.webhdfs("GET", d, "LISTSTATUS", **params)
            self.assertEqual(page.status, 200, page)
            js = page.json()
            names += names_of(js)
            after = js["FileStatuses"].get("continuationToken", "")
            if not after:
                break
        self.assertEqual(names, names_of(direct.json()))
        # paged the Hadoop way (LISTSTATUS_BATCH + startAfter, pages of the NameNode's size): hadoop only;
        # ADLS Gen1 does not know the op, and its refusal comes back unchanged
        batch = self.p.webhdfs("GET", d, "LISTSTATUS_BATCH")
        if self.DIALECT != "hadoop":
            self.assertEqual(batch.status, 400, batch)
            self.assertEqual(batch.json(), self.s.g1("GET", d, "LISTSTATUS_BATCH").json())
        else:
            names, pages = [], 0
            while True:
                self.assertEqual(batch.status, 200, batch)
                dl = batch.json()["DirectoryListing"]
                names += names_of(dl["partialListing"])
                pages += 1
                if dl["remainingEntries"] == 0:
                    break
                batch = self.p.webhdfs("GET", d, "LISTSTATUS_BATCH", startAfter=names[-1])
            self.assertEqual(names, names_of(direct.json()))
            self.assertGreater(pages, 1)
        self.assert_idle()


class ScriptedGen1:
    """An HTTP server playing Gen1: an OPEN gets head + first, then rest once release() was called (and,
    for chunked, the last chunk unless broken); anything else (the proxy's own probes) a 404."""

    def __init__(self, first, rest, chunked=False, broken=False):
        self.first, self.rest, self.chunked, self.broken = first, rest, chunked, broken
        self.gate = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _chunk(self, data):
        return b"%x\r\n%s\r\n" % (len(data), data)

    def _serve(self, c):
        with c:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            if b"op=OPEN" not in buf.split(b"\r\n", 1)[0]:
                body = b'{"RemoteException":{"exception":"FileNotFoundException","message":"no"}}'
                c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nConnection: close\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                return
            if self.chunked:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" + self._chunk(self.first))
            else:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                          % (len(self.first) + len(self.rest)) + self.first)
            self.gate.wait(30)
            if self.chunked:
                c.sendall(self._chunk(self.rest) + (b"" if self.broken else b"0\r\n\r\n"))
            else:
                c.sendall(self.rest)
            if not self.broken:
                c.recv(1)  # keep the connection until the proxy is done with it

    def release(self):
        self.gate.set()

    def close(self):
        self.gate.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (close alone does not)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)


def cpu_seconds(pid):
    """utime + stime of a process, seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SlowGen1(emulib.unittest.TestCase):
    """The proxy in front of a scripted Gen1 that holds the rest of its answer until told."""

    def stack_for(self, gen1):
        s = proxylib.Stack(config={"gen1": {"endpoint": gen1.url}})
        self.addCleanup(s.close)
        return s

    def test_head_and_first_bytes_before_the_rest_without_polling(self):
        first, rest = os.urandom(100000), os.urandom(3 * MiB)
        g = ScriptedGen1(first, rest)
        self.addCleanup(g.close)
        s = self.stack_for(g)
        u = urllib.parse.urlsplit(s.proxy.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
        self.addCleanup(conn.close)
        conn.request("GET", open_target("/f"))
        r = conn.getresponse()  # Gen1 holds the rest: the head must come anyway
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Length"), str(len(first) + len(rest)))
        got = r.read(len(first))
        self.assertEqual(got, first)
        # waiting for Gen1 costs no CPU: the reader's connection is suspended, not polled
        cpu0 = cpu_seconds(s.proxy.proc.pid)
        time.sleep(1.0)
        spent = cpu_seconds(s.proxy.proc.pid) - cpu0
        self.assertLess(spent, 0.2, "the proxy used %.2f s of CPU in 1 s of waiting for Gen1" % spent)
        g.release()
        self.assertEqual(r.read(), rest)

    def test_chunked_answer_relayed_chunked(self):
        first, rest = os.urandom(5000), os.urandom(MiB + 3)
        g = ScriptedGen1(first, rest, chunked=True)
        self.addCleanup(g.close)
        g.release()
        s = self.stack_for(g)
        v = s.proxy.request("GET", open_target("/f"))
        self.assertEqual(v.status, 200, v)
        self.assertIsNone(v.header("content-length"))
        self.assertEqual(v.header("transfer-encoding"), "chunked")
        self.assertEqual(v.body, first + rest)

    def test_broken_chunked_answer_breaks_the_reader(self):
        first, rest = os.urandom(5000), os.urandom(MiB + 3)
        g = ScriptedGen1(first, rest, chunked=True, broken=True)
        self.addCleanup(g.close)
        g.release()
        s = self.stack_for(g)
        with self.assertRaises((http.client.IncompleteRead, ConnectionError, socket.timeout)):
            stream_get(s.proxy.url, open_target("/f"))


class StreamHadoop(Stream):
    """The dialect changes how the proxy reaches Gen1's answer (the namenode's 307 is followed inside the
    proxy), not how the answer is relayed: the reader-side checks (slow reader, reader going away, ranges)
    run once, in Stream."""
    DIALECT = "hadoop"
    test_slow_reader = test_reader_goes_away = test_open_ranges = None


if __name__ == "__main__":
    emulib.main()
