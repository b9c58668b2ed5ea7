#!/usr/bin/env python3
"""The CRC-32C digest the proxy records as it writes (dualpipe_crc32c), against the emulators.

- files created and appended to through the proxy (several appends, with and without offsets, bursts
  that queue up behind a slow Gen2, two writers racing appends on one file, appends whose Gen2 apply
  is retried after an injected fault: a refused append, a reset mid-body, a refused flush) each carry
  a current digest equal to the CRC-32C of Gen2's bytes, and `dualpipe verify --digest` counts every
  one of them digest_verified (both stores compared too);
- a byte changed on Gen2 behind the proxy's back is found by `verify --digest` through the digest
  alone: Gen1 is not read (its OPEN counters do not move);
- a file copied by a resync (written on Gen1 behind the proxy's back, one of them in several parts) gets a digest, and appends
  after it extend that one; so does the target of a CONCAT (re-copied from Gen1); a renamed file keeps
  its digest and appends at the new path extend it; an overwriting CREATE starts a new one;
- a stream of APPENDs with syncFlag=METADATA leaves the digest in memory (the property is written at most once
  per applier.digest_interval_ms): not current on Gen2 until the CLOSE, which writes it;
- a digest that cannot be written (Gen2 refuses setProperties) is never wrong: the file is size-only.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

DUALPIPE = proxylib.DUALPIPE_BIN
FAST = {"applier": {"backoff_base_ms": 20, "backoff_cap_ms": 200, "breaker_probe_ms": 200}}
DIGEST = 'dualpipe_applier_digest_total{result="%s"}'


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def props_of(resp):
    out = {}
    for kv in (resp.header("x-ms-properties") or "").split(","):
        if "=" in kv:
            k, v = kv.split("=", 1)
            out[k] = base64.b64decode(v).decode()
    return out


class DigestBase(unittest.TestCase):
    config = FAST
    cached = True  # applier.digest_cache_entries > 0: bursts defer their write to their last APPEND

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dp-digest-")
        self.s = proxylib.Stack(config=self.config)

    def tearDown(self):
        try:
            self.s.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def create(self, path, data):
        r = proxylib.write_data(self.s.proxy, "PUT", path, "CREATE", data, overwrite="true")
        self.assertLess(r.status, 300, (path, r))

    def append(self, path, data, **params):
        r = proxylib.write_data(self.s.proxy, "POST", path, "APPEND", data, **params)
        self.assertLess(r.status, 300, (path, r))

    def digest_of(self, path):
        """(crc, len) of the dualpipe_crc32c property on Gen2, or None."""
        r = self.s.g2("HEAD", path)
        self.assertEqual(r.status, 200, (path, r))
        v = props_of(r).get("dualpipe_crc32c")
        if v is None:
            return None
        crc, ln = v.split(",")
        self.assertTrue(crc.startswith("crc32c=") and ln.startswith("len="), v)
        return int(crc[7:], 16), int(ln[4:])

    def assert_digest_current(self, path):
        data = self.s.g2_read(path)
        self.assertEqual(self.digest_of(path), (crc32c(data), len(data)), path)
        return data

    def verify(self, *args):
        cfg = os.path.join(self.tmp, "dualpipe.json")
        with open(cfg, "w") as f:
            json.dump(self.s.config, f)
        out = os.path.join(self.tmp, "report.json")
        if os.path.exists(out):
            os.unlink(out)
        admin = self.s.proxy.admin_url.replace("http://", "")
        p = subprocess.run([DUALPIPE, "verify", *args, "--config", cfg, "--admin", admin, "--json", out,
                            "--settle-timeout", "20"], capture_output=True, text=True, timeout=120)
        with open(out) as f:
            return p, json.load(f)


class DigestFollowsAppends(DigestBase):
    def test_appends_bursts_races_and_retries(self):
        s = self.s
        want = {}
        # several appends, one at a time (each burst ends alone: one setProperties each)
        body = b"created " * 100
        self.create("/d/seq", body)
        for i in range(5):
            piece = os.urandom(1000 + i * 777)
            self.append("/d/seq", piece)
            body += piece
        want["/d/seq"] = body
        # appends with offsets and every syncFlag, and an empty file grown from nothing
        self.create("/d/offs", b"")
        body = b""
        for i, flag in enumerate(["DATA", "METADATA", "CLOSE", "DATA", "CLOSE"]):
            piece = b"<%d>" % i * (3 + i)
            self.append("/d/offs", piece, offset=str(len(body)), syncFlag=flag)
            body += piece
        want["/d/offs"] = body
        s.wait_drained(30)
        for p in want:
            self.assert_digest_current(p)
        m0 = s.proxy.metrics()
        # bursts: a slow Gen2 flush (the append that also flushes) lets appends queue up behind each other;
        # the digest is written after the burst, not after each append
        s.gen2.fault("method=PATCH,op=append,action=latency,latency_ms=150,count=1000")
        body = b""
        self.create("/d/burst", b"")
        s.wait_drained(30)
        for i in range(30):
            piece = b"line %02d of a log written in a burst\n" % i
            self.append("/d/burst", piece)
            body += piece
        want["/d/burst"] = body
        # two writers racing appends on one file (the proxy orders them as Gen1 applied them)
        self.create("/d/race", b"start\n")

        def writer(tag):
            for i in range(15):
                self.append("/d/race", b"%s %02d\n" % (tag, i))

        ts = [threading.Thread(target=writer, args=(t,)) for t in (b"left", b"right")]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        s.wait_drained(60)
        s.gen2.admin("DELETE", "/faults")
        want["/d/race"] = s.g1_read("/d/race")
        self.assertEqual(len(want["/d/race"]), 6 + 30 * len(b"left 00\n") + 15)
        m1 = s.proxy.metrics()
        deferred = m1.get(DIGEST % "deferred", 0) - m0.get(DIGEST % "deferred", 0)
        if self.cached:
            self.assertGreater(deferred, 0, m1)
        else:
            self.assertEqual(deferred, 0, m1)
        self.assertGreater(m1.get(DIGEST % "written", 0) - m0.get(DIGEST % "written", 0), 0, m1)
        self.assertEqual(m1.get(DIGEST % "unknown", 0), 0, m1)
        self.assertEqual(m1.get(DIGEST % "failed", 0), 0, m1)
        # appends whose Gen2 apply is retried: a refused append, a connection reset mid-body, a refused
        # append again (each is an append that also flushes: the flush is refused with it)
        self.create("/d/retry", b"0123456789")
        s.wait_drained(30)
        body = b"0123456789"
        for rule in ("method=PATCH,op=append,status=503,count=1",
                     "method=PATCH,op=append,action=reset,after_bytes=100,count=1",
                     "method=PATCH,op=append,status=500,count=1"):
            s.gen2.fault(rule)
            piece = os.urandom(5000)
            self.append("/d/retry", piece)
            body += piece
            s.wait_drained(30)
        faults = s.gen2.counters()["faults"]
        self.assertEqual((faults.get("fail"), faults.get("reset")), (2, 1), faults)
        want["/d/retry"] = body
        st = s.proxy.status()
        self.assertEqual((st["resynced"], st["parked"]), (0, 0), st)
        for p, data in want.items():
            self.assertEqual(self.assert_digest_current(p), data, p)  # nothing applied twice
        s.assert_same(self, "/d")
        p, rep = self.verify("/d", "--digest")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        c = rep["result"]["counts"]
        self.assertEqual((c["files"], c["digest_recorded"], c["digest_verified"], c["size_only"]),
                         (len(want), len(want), len(want), 0), c)
        self.assertEqual(c["mtime_verified"], len(want), c)  # the burst's write kept Gen1's times too


class DigestFindsChanges(DigestBase):
    def test_changed_byte_found_by_digest_only(self):
        s = self.s
        self.create("/e/f", os.urandom(3000))
        self.append("/e/f", os.urandom(2000))
        self.append("/e/f", os.urandom(1000))
        self.create("/e/g", b"untouched")
        self.append("/e/g", b" and appended")
        s.wait_drained(30)
        data = bytearray(self.assert_digest_current("/e/f"))
        props = s.g2("HEAD", "/e/f").header("x-ms-properties")
        data[4321] ^= 0x01  # a changed byte on Gen2, same length, same properties
        self.assertEqual(s.g2("PUT", "/e/f", "resource=file").status, 201)
        self.assertEqual(s.g2("PATCH", "/e/f", "action=append&position=0", bytes(data)).status, 202)
        self.assertEqual(s.g2("PATCH", "/e/f", "action=flush&position=%d" % len(data)).status, 200)
        self.assertEqual(s.g2("PATCH", "/e/f", "action=setProperties", headers={"x-ms-properties": props}).status, 200)
        before = s.g1_counters()
        p, rep = self.verify("/e", "--digest")
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        opens = {k: v - before.get(k, 0) for k, v in s.g1_counters().items() if "OPEN" in k}
        self.assertEqual(sum(opens.values()), 0, opens)  # Gen1's bytes were not read
        diffs = {(d["path"], d["kind"]): d["detail"] for d in rep["result"]["differences"]}
        # (rewriting the file on Gen2 also reset its owner and permission there)
        self.assertEqual({k for k in diffs if k[1] == "content"}, {("/e/f", "content")}, diffs)
        self.assertEqual({k[0] for k in diffs}, {"/e/f"}, diffs)
        self.assertIn("not the ones the proxy wrote", diffs[("/e/f", "content")])
        self.assertEqual(rep["result"]["counts"]["digest_verified"], 1)  # /e/g
        # --deep says which side holds what the proxy wrote
        p, rep = self.verify("/e", "--deep")
        self.assertEqual(p.returncode, 3)
        detail = [d["detail"] for d in rep["result"]["differences"] if d["path"] == "/e/f" and d["kind"] == "content"][0]
        self.assertIn("Gen1 holds what the proxy wrote, Gen2 does not", detail)

    def test_refused_digest_write_leaves_no_wrong_digest(self):
        s = self.s
        self.create("/n/f", b"first")
        s.wait_drained(30)
        self.assertEqual(self.digest_of("/n/f"), (crc32c(b"first"), 5))
        s.gen2.fault("method=PATCH,op=set-properties,status=400,count=1000")
        self.append("/n/f", b" second")
        s.wait_drained(30)
        s.gen2.admin("DELETE", "/faults")
        self.append("/n/f", b" third")  # the chain is broken: no digest is made up for it
        s.wait_drained(30)
        self.assertEqual(self.digest_of("/n/f"), (crc32c(b"first"), 5))  # stale (len 5), not wrong
        self.assertGreater(s.proxy.metrics().get(DIGEST % "failed", 0), 0)
        p, rep = self.verify("/n", "--digest")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        c = rep["result"]["counts"]
        self.assertEqual((c["digest_recorded"], c["digest_verified"], c["size_only"]), (0, 0, 1), c)


class DigestStream(DigestBase):
    config = proxylib.deep_merge(FAST, {"applier": {"digest_interval_ms": 600000}})

    def test_stream_written_at_close(self):
        s = self.s
        self.create("/st/f", b"")
        s.wait_drained(30)
        body = b""
        for i in range(6):
            piece = b"record %d;" % i
            self.append("/st/f", piece, offset=str(len(body)), syncFlag="METADATA")
            body += piece
        s.wait_drained(30)
        self.assertEqual(s.g2_read("/st/f"), body)
        self.assertEqual(self.digest_of("/st/f"), (crc32c(b""), 0))  # the CREATE's: not current, not wrong
        p, rep = self.verify("/st", "--digest")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(rep["result"]["counts"]["size_only"], 1)
        self.append("/st/f", b"", offset=str(len(body)), syncFlag="CLOSE")  # how the ADLS SDK closes
        s.wait_drained(30)
        self.assert_digest_current("/st/f")
        p, rep = self.verify("/st", "--digest")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(rep["result"]["counts"]["digest_verified"], 1)


class DigestAfterResync(DigestBase):
    # parts of 1 MiB (the least): a copy of several parts, each one's CRC taken as it arrived from Gen1
    config = proxylib.deep_merge(FAST, {"applier": {"copy_part_bytes": 1 << 20}})

    def test_resynced_file_gets_a_digest_and_appends_extend_it(self):
        s = self.s
        self.create("/r/keep", b"kept")
        s.wait_drained(30)
        data = os.urandom(70000)
        big = os.urandom((2 << 20) + 12345)  # three parts, the last one short
        for path, d in (("/r/behind", data), ("/r/parts", big)):  # behind the proxy's back
            r = s.g1("PUT", path, "CREATE", d, overwrite="true", write="true")
            self.assertLess(r.status, 300, r)
        r = s.proxy.admin("POST", "/admin/journal/resync?path=/r")
        self.assertEqual(r.status, 200, r)
        s.wait_drained(30)
        self.assertEqual(self.assert_digest_current("/r/behind"), data)
        self.assertEqual(self.assert_digest_current("/r/parts"), big)
        self.append("/r/behind", b"appended after the resync")
        self.append("/r/behind", b", twice")
        s.wait_drained(30)
        self.assertEqual(self.assert_digest_current("/r/behind"), data + b"appended after the resync, twice")
        p, rep = self.verify("/r", "--digest")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        c = rep["result"]["counts"]
        self.assertEqual((c["files"], c["digest_verified"], c["size_only"]), (3, 3, 0), c)


    def test_concat_rename_overwrite(self):
        s = self.s
        parts = [os.urandom(1000 + 100 * i) for i in range(3)]
        self.create("/c/target", b"T:")
        for i, d in enumerate(parts):
            self.create("/c/p%d" % i, d)
        body = json.dumps({"sources": ["/c/p%d" % i for i in range(3)]})
        r = s.proxy.webhdfs("POST", "/c/target", "MSCONCAT", body.encode(), headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        s.wait_drained(30)
        self.assert_digest_current("/c/target")
        self.append("/c/target", b"+appended")
        s.wait_drained(30)
        self.assertEqual(self.assert_digest_current("/c/target"), b"T:" + b"".join(parts) + b"+appended")
        r = s.proxy.webhdfs("PUT", "/c/target", "RENAME", destination="/c/moved")
        self.assertEqual(r.status, 200, r)
        self.append("/c/moved", b"+after the rename")
        self.create("/c/over", b"first version, longer than the second")
        self.append("/c/over", b"+1")
        self.create("/c/over", b"second")  # overwrite=true
        self.append("/c/over", b"+2")
        s.wait_drained(30)
        self.assert_digest_current("/c/moved")
        self.assertEqual(self.assert_digest_current("/c/over"), b"second+2")
        s.assert_same(self, "/c")
        p, rep = self.verify("/c", "--digest")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        c = rep["result"]["counts"]
        self.assertEqual((c["files"], c["digest_verified"], c["size_only"]), (2, 2, 0), c)


class DigestAcrossPhases(DigestBase):
    """A file rewritten on Gen2 while gen2-primary ran (g2serve writes it, not the applier) and appended to
    after a rollback to gen1-primary: the digest on Gen2 is the CRC of Gen2's bytes, or absent, never
    one combined from the state the applier kept before the switch."""
    config = proxylib.deep_merge(FAST, {"applier": {"digest_interval_ms": 100}, "phase": {"poll_ms": 100}})

    def phase(self, to):
        admin = self.s.proxy.admin_url.replace("http://", "")
        p = subprocess.run([DUALPIPE, "phase", "set", to, "--config", self.s.proxy.config_path, "--admin", admin],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_rollback_after_a_rewrite_on_gen2(self):
        r = self.s.proxy.webhdfs("PUT", "/pd", "MKDIRS")
        self.assertEqual(r.status, 200, r)
        self.create("/pd/f", b"A" * 100)
        self.append("/pd/f", b"a" * 10)   # the applier now keeps (crc, 110) for /pd/f
        self.s.wait_drained(30)
        self.assert_digest_current("/pd/f")
        self.phase("gen2-primary")
        self.create("/pd/f", b"B" * 110)  # same length, other bytes, written by g2serve
        self.s.wait_drained(30)
        self.phase("gen1-primary")
        self.append("/pd/f", b"C" * 10)
        self.s.wait_drained(30)
        deadline = time.time() + 3        # a digest is written at most digest_interval_ms after the APPEND
        while self.digest_of("/pd/f") is None and time.time() < deadline:
            time.sleep(0.05)
        data = self.s.g2_read("/pd/f")
        self.assertEqual(data, b"B" * 110 + b"C" * 10)
        d = self.digest_of("/pd/f")
        self.assertIn(d, (None, (crc32c(data), len(data))), "a digest Gen2's bytes do not have")


class DigestNoCache(DigestFollowsAppends):
    """applier.digest_cache_entries 0: every burst end reads the property back with a HEAD."""
    config = proxylib.deep_merge(FAST, {"applier": {"digest_cache_entries": 0}})
    cached = False


if __name__ == "__main__":
    unittest.main()
