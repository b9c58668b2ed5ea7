#!/usr/bin/env python3
"""One Gen2 request per small APPEND (issue 14): with an x-ms-version that has Path - Update's append
flush=true (2021-06-08 on, the proxy's default), the applier and the gen2-primary write path send a small
APPEND as one append request that also flushes, and a CREATE with a small body as create + that one
request; with an older gen2.version they keep append + flush. Counted on the Gen2 emulator, which counts an
append with flush=true also as "PATCH append-flush". Both stores end equal, nothing applied twice."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402
from test_digest import crc32c, props_of  # noqa: E402

FAST = {"backoff_base_ms": 50, "backoff_cap_ms": 1000, "breaker_failures": 3, "breaker_probe_ms": 300}
COALESCED = "dualpipe_applier_coalesced_total"
N = 24


class Base(unittest.TestCase):
    version = None  # gen2.version (None: the proxy's default)
    phase = None

    def setUp(self):
        cfg = {"applier": FAST, "log": {"level": "info"}}
        if self.version:
            cfg["gen2"] = {"version": self.version}
        if self.phase:
            cfg["phase"] = self.phase
        self.s = proxylib.Stack(config=cfg)
        self.addCleanup(self.s.close)
        r = self.s.proxy.webhdfs("PUT", "/af", "MKDIRS", permission="755")
        self.assertEqual(r.status, 200, r)
        self.s.wait_drained(30)

    def write(self, method, path, op, data, **params):
        r = proxylib.write_data(self.s.proxy, method, path, op, data, False, **params)
        self.assertEqual(r.status, 201 if op == "CREATE" else 200, r)

    def appends(self, path, body=b""):
        """N small APPENDs with offsets (DATA, METADATA and the default CLOSE mixed), then a zero-length
        CLOSE; returns the Gen2 request counts they caused and the applier's coalesced count."""
        c0, m0 = self.s.g2_counters(), self.s.proxy.metrics()
        for i in range(N):
            piece = b"%03d small append %s\n" % (i, b"x" * (i % 7))
            flag = ("DATA", "METADATA", "CLOSE")[i % 3]
            self.write("POST", path, "APPEND", piece, offset=str(len(body)), syncFlag=flag)
            body += piece
        self.write("POST", path, "APPEND", b"", offset=str(len(body)), syncFlag="CLOSE")
        self.s.wait_drained(60)
        self.assertEqual(self.s.g2_read(path), body)
        self.s.assert_same(self, "/af")
        st = self.s.proxy.status()
        self.assertEqual((st["resynced"], st["parked"], st["failure_count"]), (0, 0, 0), st)
        d = proxylib.counter_delta(c0, self.s.g2_counters())
        coalesced = int(self.s.proxy.metrics().get(COALESCED, 0) - m0.get(COALESCED, 0))
        return d, coalesced


class OneRequest(Base):
    """The default x-ms-version (2021-06-08): each data step is one append that flushes."""

    def test_small_appends_are_one_request_each(self):
        self.write("PUT", "/af/log", "CREATE", b"", overwrite="true")
        self.s.wait_drained(30)
        d, coalesced = self.appends("/af/log")
        # every append request flushed; no flush request but the zero-length CLOSE's (it has no bytes)
        self.assertEqual(d.get("PATCH append", 0), d.get("PATCH append-flush", 0), d)
        self.assertEqual(d.get("PATCH append", 0) + coalesced, N, (d, coalesced))
        self.assertLessEqual(d.get("PATCH flush", 0), 1, d)

    def test_create_with_a_small_body_is_create_plus_one(self):
        c0 = self.s.g2_counters()
        self.write("PUT", "/af/c", "CREATE", b"a small file\n", overwrite="true")
        self.s.wait_drained(30)
        d = proxylib.counter_delta(c0, self.s.g2_counters())
        self.assertEqual((d.get("PUT create-file", 0), d.get("PATCH append-flush", 0), d.get("PATCH flush", 0)),
                         (1, 1, 0), d)
        self.assertEqual(self.s.g2_read("/af/c"), b"a small file\n")
        self.s.assert_same(self, "/af")


class LostAnswers(Base):
    """An append with flush=true that landed but whose answer was lost is sent again (libcurl's own re-send
    on a fresh connection, or the applier's retry) and then refused (its position is behind the end): the
    file's length shows it landed, and nothing is written twice."""

    def lost(self):
        r = self.s.gen2.admin("POST", "/faults", "method=PATCH,op=append,action=lose,count=1")
        self.assertEqual(r.status, 200, r)

    def test_lost_answer_of_an_append_without_offset(self):
        self.write("PUT", "/af/l", "CREATE", b"start\n", overwrite="true")
        self.s.wait_drained(30)
        self.lost()
        self.write("POST", "/af/l", "APPEND", b"no offset, lost answer\n")
        self.s.wait_drained(30)
        self.lost()
        self.write("PUT", "/af/c", "CREATE", b"a create whose append answer was lost\n", overwrite="true")
        self.s.wait_drained(30)
        c = self.s.gen2.counters()
        self.assertEqual(c["faults"].get("lost"), 2, c)
        self.assertEqual(self.s.g2_read("/af/l"), b"start\nno offset, lost answer\n")
        self.assertEqual(self.s.g2_read("/af/c"), b"a create whose append answer was lost\n")
        st = self.s.proxy.status()
        self.assertEqual((st["resynced"], st["parked"], st["failure_count"]), (0, 0, 0), st)
        self.s.assert_same(self, "/af")
        # the digest counts the bytes of the send that landed, once
        for path in ("/af/l", "/af/c"):
            data = self.s.g2_read(path)
            r = self.s.g2("HEAD", path)
            self.assertEqual(props_of(r).get("dualpipe_crc32c"), "crc32c=%08x,len=%d" % (crc32c(data), len(data)),
                             (path, r))


class OlderVersion(Base):
    """An x-ms-version before 2021-06-08: append, then flush, as two requests."""
    version = "2021-04-10"

    def test_appends_keep_the_two_request_form(self):
        self.write("PUT", "/af/log", "CREATE", b"first\n", overwrite="true")
        self.s.wait_drained(30)
        d, coalesced = self.appends("/af/log", b"first\n")
        self.assertEqual(d.get("PATCH append-flush", 0), 0, d)
        self.assertEqual(d.get("PATCH append", 0) + coalesced, N, (d, coalesced))
        # one flush per append request, and the zero-length CLOSE's
        self.assertEqual(d.get("PATCH flush", 0), d.get("PATCH append", 0) + 1, d)


class RefuseOnce:
    """A service that refuses append's flush=true (400 UnsupportedQueryParameter, as for a parameter an
    account does not take): the proxy says so once and sends appends and flushes as two requests from then on,
    in the applier and in gen2-primary's write path; nothing is lost or applied twice."""

    def refuse_once(self):
        r = self.s.gen2.admin("POST", "/faults",
                              "method=PATCH,op=append,action=fail,status=400,code=UnsupportedQueryParameter,count=1")
        self.assertEqual(r.status, 200, r)


class ParameterRefused(RefuseOnce, Base):
    def test_applier_falls_back_to_two_requests(self):
        self.write("PUT", "/af/r", "CREATE", b"", overwrite="true")
        self.s.wait_drained(30)
        self.refuse_once()
        body = b""
        for i in range(N):
            piece = b"%03d refused\n" % i
            self.write("POST", "/af/r", "APPEND", piece, offset=str(len(body)))
            body += piece
            if i == 0:
                self.s.wait_drained(30)  # the refused one first, alone
        c0 = self.s.g2_counters()
        self.write("POST", "/af/r", "APPEND", b"tail\n", offset=str(len(body)))
        body += b"tail\n"
        self.s.wait_drained(60)
        self.assertEqual(self.s.g2_read("/af/r"), body)
        self.s.assert_same(self, "/af")
        d = proxylib.counter_delta(c0, self.s.g2_counters())
        self.assertEqual(d.get("PATCH append-flush", 0), 0, d)   # the one-request form is off now
        self.assertGreaterEqual(d.get("PATCH flush", 0), 1, d)
        self.assertIn("Gen2 refused append with flush=true", self.s.proxy.log_since_start())

class ParameterRefusedGen2Primary(RefuseOnce, Base):
    phase = "gen2-primary"

    def test_gen2_primary_write_falls_back_within_the_request(self):
        self.write("PUT", "/af/q", "CREATE", b"head\n", overwrite="true")
        self.refuse_once()
        self.write("POST", "/af/q", "APPEND", b"one\n", offset="5")     # refused, then sent again as two
        self.write("POST", "/af/q", "APPEND", b"two\n", offset="9")
        self.assertEqual(self.s.g2_read("/af/q"), b"head\none\ntwo\n")
        self.s.wait_drained(30)
        self.assertEqual(self.s.g1_read("/af/q"), b"head\none\ntwo\n")
        self.assertIn("Gen2 refused append with flush=true", self.s.proxy.log_since_start())


class Gen2PrimaryOneRequest(Base):
    """gen2-primary: the proxy writes Gen2 itself (g2serve), each small APPEND as one request."""
    phase = "gen2-primary"

    def test_gen2_primary_appends_are_one_request_each(self):
        self.write("PUT", "/af/p", "CREATE", b"head\n", overwrite="true")
        c0 = self.s.g2_counters()
        body = b"head\n"
        for i in range(N):
            piece = b"%03d primary\n" % i
            self.write("POST", "/af/p", "APPEND", piece, offset=str(len(body)), syncFlag=("DATA", "CLOSE")[i % 2])
            body += piece
        d = proxylib.counter_delta(c0, self.s.g2_counters())
        self.assertEqual((d.get("PATCH append", 0), d.get("PATCH append-flush", 0), d.get("PATCH flush", 0)),
                         (N, N, 0), d)
        self.assertEqual(self.s.g2_read("/af/p"), body)
        # an append whose answer is lost: libcurl sends it again on a fresh connection, Gen2 refuses that
        # one (the bytes are there already), and the writer is answered from the file's length
        r = self.s.gen2.admin("POST", "/faults", "method=PATCH,op=append,action=lose,count=1")
        self.assertEqual(r.status, 200, r)
        piece = b"lost answer\n"
        self.write("POST", "/af/p", "APPEND", piece, offset=str(len(body)))
        body += piece
        self.assertEqual(self.s.gen2.counters()["faults"].get("lost"), 1)
        self.assertEqual(self.s.g2_read("/af/p"), body)
        self.s.wait_drained(60)
        self.assertEqual(self.s.g1_read("/af/p"), body)


if __name__ == "__main__":
    unittest.main()
