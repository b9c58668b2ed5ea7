"""test_spool_cap: issue 4 "Tests" 4 — the spool cap (spool.max_bytes) reached while Gen2 is down,
under each policy, and convergence once Gen2 is back.

spool.max_bytes is its smallest value (1 MiB) and the bodies are 200 KiB, so a handful of writes
fill the spool while Gen2 is down (nothing can be applied, so nothing is freed):

- policy "reject": once the cap is reached a write with a body gets 503 with a Retry-After header
  and a WebHDFS RemoteException body, before anything reaches Gen1 (Gen1 counts no request for it
  and the file does not exist there); disk use stays near the cap. After Gen2 returns and the
  backlog drains, the same write succeeds and both sides are equal.
- policy "degrade": every write succeeds (the writers never notice); the spool's disk use stays
  near the cap (over-cap bodies are freed once Gen1 has them); after Gen2 returns, the over-cap
  paths are resynced from Gen1, both sides are equal with every byte the writer wrote, and the
  degraded-writes metric counts them.
"""
import glob
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

MiB = 1024 * 1024
CAP = 1 * MiB
BODY = 200 * 1024
APPLIER = {"backoff_base_ms": 100, "backoff_cap_ms": 1000, "breaker_probe_ms": 300}


def spool_allocated(stack):
    """Bytes the spool's segment files occupy on disk (sparse files: allocated blocks)."""
    total = 0
    for f in glob.glob(os.path.join(stack.config["spool"]["dir"], "data", "spool-*.seg")):
        try:
            total += os.stat(f).st_blocks * 512
        except FileNotFoundError:
            pass
    return total


class SpoolCap(unittest.TestCase):
    def stack(self, policy):
        s = proxylib.Stack(config={"spool": {"max_bytes": CAP, "policy": policy}, "applier": APPLIER})
        self.addCleanup(s.close)
        r = s.gen2.admin("POST", "/down?ms=0")
        self.assertEqual(r.status, 200, r)
        return s

    def create(self, s, path, data, two_step=False):
        return proxylib.write_data(s.proxy, "PUT", path, "CREATE", data, two_step, overwrite="true", permission="640")

    def test_reject(self):
        s = self.stack("reject")
        self.assertEqual(s.proxy.webhdfs("PUT", "/rej", "MKDIRS", permission="750").status, 200)
        accepted, rejected = {}, None
        for i in range(3 * CAP // BODY):
            path, data = "/rej/f%02d" % i, os.urandom(BODY)
            before = s.g1_counters().get("PUT CREATE", 0)
            r = self.create(s, path, data, two_step=(i % 2 == 1))
            if r.status == 201:
                accepted[path] = data
                continue
            rejected = (path, data, r)
            self.assertEqual(s.g1_counters().get("PUT CREATE", 0), before, "a rejected write reached Gen1")
            break
        self.assertIsNotNone(rejected, "the spool cap never refused a write (%d accepted)" % len(accepted))
        path, data, r = rejected
        print("%d writes of %d bytes fit under the %d-byte cap; then %d %s" % (
            len(accepted), BODY, CAP, r.status, r.body[:200]), file=sys.stderr)
        self.assertGreater(len(accepted), 0, "the first writes fit under the cap")
        self.assertEqual(r.status, 503, r)
        ra = r.header("retry-after")
        self.assertIsNotNone(ra, "503 without Retry-After: %r" % r)
        self.assertTrue(ra.strip().isdigit() and int(ra) > 0, ra)
        body = r.json()
        self.assertIn("RemoteException", body, body)
        self.assertTrue({"exception", "message"} <= set(body["RemoteException"]), body)
        self.assertIsNone(s.g1_status(path), "the rejected file exists on Gen1")
        # a body-less write op is not held back by the spool cap
        self.assertEqual(s.proxy.webhdfs("PUT", "/rej", "SETPERMISSION", permission="755").status, 200)
        self.assertLessEqual(spool_allocated(s), CAP + BODY, "the spool grew past its cap")
        # Gen2 returns: the backlog drains and frees the spool; the same write now goes through.
        self.assertEqual(s.gen2.admin("POST", "/up").status, 200)
        s.wait_drained(timeout=60)
        r = self.create(s, path, data)
        self.assertEqual(r.status, 201, r)
        accepted[path] = data
        s.wait_drained(timeout=60)
        self.assertEqual(s.compare("/rej"), [])
        for p, d in accepted.items():
            self.assertEqual(s.g2_read(p), d, p)

    def test_degrade(self):
        s = self.stack("degrade")
        self.assertEqual(s.proxy.webhdfs("PUT", "/deg", "MKDIRS", permission="750").status, 200)
        written = {}
        for i in range(12):   # 2.4 MiB of bodies against a 1 MiB cap
            path, data = "/deg/f%02d" % i, os.urandom(BODY)
            r = self.create(s, path, data, two_step=(i % 2 == 1))
            self.assertEqual(r.status, 201, "write %d over the cap: %r" % (i, r))
            written[path] = data
        # appends to a file created over the cap, in both dialects
        for i, two_step in enumerate((False, True, False)):
            extra = os.urandom(BODY // 2)
            r = proxylib.write_data(s.proxy, "POST", "/deg/f11", "APPEND", extra, two_step)
            self.assertEqual(r.status, 200, "append %d: %r" % (i, r))
            written["/deg/f11"] += extra
        self.assertEqual(s.proxy.webhdfs("PUT", "/deg/f10", "SETACL",
                                         aclspec="user::rw-,user:alice:r--,group::r--,mask::r--,other::---").status, 200)
        st = s.proxy.journal()
        self.assertGreater(int(st["journal"]["pending"]), 0, st)
        # the over-cap bodies were let go once Gen1 had them (durable dirty marks instead)
        time.sleep(1.0)
        alloc = spool_allocated(s)
        self.assertLessEqual(alloc, CAP + BODY, "spool uses %d bytes on disk with a %d-byte cap" % (alloc, CAP))
        self.assertEqual(s.gen2.admin("POST", "/up").status, 200)
        js = s.wait_drained(timeout=60)
        diffs = s.compare("/deg")
        self.assertEqual(diffs, [], json.dumps(js)[:2000])
        for p, d in written.items():
            self.assertEqual(s.g2_read(p), d, p)
        m = s.proxy.metrics()
        degraded = {k: v for k, v in m.items() if "degrad" in k}
        self.assertTrue(degraded, "no degraded-writes metric in /metrics (names: %s)"
                        % sorted({k.split("{")[0] for k in m}))
        print("degraded metrics: %s" % degraded, file=sys.stderr)
        self.assertGreater(sum(degraded.values()), 0, degraded)
        self.assertGreater(int(js["journal"].get("resyncs", 0)), 0, "the over-cap paths were resynced: %s" % js)


if __name__ == "__main__":
    unittest.main(verbosity=2)
