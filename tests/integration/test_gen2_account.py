"""test_gen2_account: account-level Gen2 problems through the real proxy (Gen1 emulator, Gen2 emulator,
dualpipe). A filesystem that does not exist, a wrong account key, a role that does not allow writing
(the emulator's code= fault rule answers 403 AuthorizationPermissionMismatch) and a Gen2 host name
that does not resolve: each holds the writes pending (nothing parked, no resync, no request per held
record), /readyz answers 503 naming the problem and its fix, dualpipe_gen2_account_problem is 1 for
it, the log says so once; once it is fixed (the filesystem created, the fault lifted, the proxy
restarted with the right key or endpoint) the backlog drains by itself, both stores are equal and no
write reached Gen2 twice. gen2.create_filesystems creates a missing filesystem at start; a second
mapping whose filesystem exists keeps draining while the first one's is missing.
"""
import concurrent.futures
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402
import proxylib  # noqa: E402

A = "/" + emulib.DEV_ACCOUNT
WRONG_KEY = "A" * 86 + "=="
START = "gen2 account problem: writes to gen2 held pending"
CLEAR = "gen2 account problem cleared: held writes resume"
FAST = {"applier": {"breaker_probe_ms": 300}}


def problem_metric(stack, kind, fs=proxylib.FS):
    return stack.proxy.metrics().get(
        'dualpipe_gen2_account_problem{kind="%s",filesystem="%s"}' % (kind, fs))


class AccountProblems(unittest.TestCase):
    def setUp(self):
        self.s = None

    def tearDown(self):
        if self.s:
            self.s.close()

    def stack(self, **kw):
        cfg = proxylib.deep_merge(FAST, kw.pop("config", None))
        self.s = proxylib.Stack(config=cfg, **kw)
        return self.s

    def write_many(self, root, n, workers=8):
        """n small CREATEs under root from several writers at once; all must succeed (Gen1 is primary)."""
        def one(i):
            r = self.s.proxy.webhdfs("PUT", "%s/d%d/f%d" % (root, i % 5, i), "CREATE",
                                     body=b"body %d" % i, write="true")
            return r.status
        with concurrent.futures.ThreadPoolExecutor(workers) as ex:
            statuses = list(ex.map(one, range(n)))
        self.assertEqual(statuses, [201] * n)

    def wait_held(self, n, timeout=20):
        """Wait until the applier holds n operations (pending, none finished); returns the status."""
        deadline = time.time() + timeout
        while True:
            st = self.s.proxy.status()
            if int(st["pending"]) >= n and st.get("gen2_problems"):
                return st
            if time.time() > deadline:
                self.fail("writes not held: %s" % str(st)[:2000])
            time.sleep(0.1)

    def readyz(self):
        r = self.s.proxy.admin("GET", "/readyz")
        return r.status, r.body.decode()

    def wait_readyz(self, status, timeout=20):
        deadline = time.time() + timeout
        while True:
            got = self.readyz()
            if got[0] == status or time.time() > deadline:
                return got
            time.sleep(0.1)

    def assert_held(self, kind, words, fs=proxylib.FS, n=None):
        """The problem is reported everywhere, and nothing was parked or resynced for it."""
        st = self.s.proxy.status()
        self.assertEqual((st["parked"], st["resynced"], st["applied"]), (0, 0, 0), str(st)[:2000])
        if n is not None:
            self.assertEqual(st["pending"], n, str(st)[:2000])
        self.assertIn(kind, [p["kind"] for p in st["gen2_problems"]], st["gen2_problems"])
        self.assertEqual(int(self.s.proxy.journal()["journal"]["parked"]), 0)
        code, body = self.wait_readyz(503)
        self.assertEqual(code, 503, body)
        for w in words:
            self.assertIn(w, body)
        self.assertEqual(problem_metric(self.s, kind, fs), 1.0)
        self.assertEqual(self.s.proxy.log_since_start().count(START), 1, "one log line when it starts")

    def assert_drained(self, root, fs=proxylib.FS, gen2_dir=None):
        self.s.wait_drained(60)
        st = self.s.proxy.status()
        self.assertEqual((st["parked"], st["resynced"], st["gen2_problems"]), (0, 0, []), str(st)[:2000])
        # A mapping to a filesystem's root: Gen1's directory is the filesystem itself, not a node in it.
        self.assertEqual(proxylib.compare(self.s, root, fs=fs, gen2_dir=gen2_dir,
                                          include_root=False if gen2_dir == "" else None), [])
        code, body = self.wait_readyz(200)
        self.assertEqual(code, 200, body)

    def test_missing_filesystem_holds_then_drains_when_created(self):
        s = self.stack(filesystems=())
        n = 300
        self.write_many("/a", n)
        self.wait_held(n)
        before = s.g2_counters()
        time.sleep(1.5)  # a few probe periods: only the probe goes out, not one request per record
        during = proxylib.counter_delta(before, s.g2_counters())
        self.assertLessEqual(sum(during.values()), 12, during)
        self.assert_held("filesystem_not_found", ["'lake' not found", "gen2.create_filesystems"], n=n)
        self.assertIn('filesystem="lake"', s.proxy.log_since_start())
        snap = s.g2_counters()
        self.assertEqual(s.gen2.gen2("PUT", "%s/lake?resource=filesystem" % A).status, 201)
        self.assert_drained("/a")
        # Each file was created once after the fix (the probe in flight at that moment may have been
        # counted before it): nothing was applied twice.
        created = proxylib.counter_delta(snap, s.g2_counters()).get("PUT create-file", 0)
        self.assertIn(created, (n - 1, n))
        self.assertEqual(problem_metric(s, "filesystem_not_found"), 0.0)
        self.assertEqual(s.proxy.log_since_start().count(CLEAR), 1)

    def test_wrong_key_holds_then_drains_after_restart_with_the_right_key(self):
        s = self.stack(config={"gen2": {"auth": {"account_key": WRONG_KEY}}})
        self.write_many("/k", 40)
        self.wait_held(40)
        self.assert_held("authentication", ["rejects the proxy's credential", "gen2.auth"], n=40)
        self.assertNotIn(WRONG_KEY, self.readyz()[1] + s.proxy.read_log())
        s.proxy.stop()
        s.proxy.config["gen2"]["auth"]["account_key"] = emulib.DEV_KEY
        s.proxy.start()
        self.assert_drained("/k")

    def test_missing_role_holds_then_drains_when_granted(self):
        s = self.stack()
        s.gen2.fault("method=*,op=*,action=fail,status=403,code=AuthorizationPermissionMismatch")
        self.write_many("/r", 40)
        self.wait_held(40)
        self.assert_held("authorization", ["may not write to filesystem 'lake'", "Storage Blob Data Contributor"],
                         n=40)
        r = s.gen2.admin("DELETE", "/faults")  # the role is granted
        self.assertIn(r.status, (200, 204), r)
        self.assert_drained("/r")

    def test_unresolvable_host_holds_not_parks(self):
        s = self.stack(config={"gen2": {"endpoint": "http://dualpipe-no-such-account.invalid:10004",
                                        "path_style": True}})
        self.write_many("/u", 20)
        self.wait_held(20)
        self.assert_held("unreachable", ["does not resolve", "gen2.endpoint"], n=20)
        s.proxy.stop()
        s.proxy.config["gen2"]["endpoint"] = s.gen2.url
        s.proxy.start()
        self.assert_drained("/u")

    def test_create_filesystems_creates_the_missing_one_at_start(self):
        s = self.stack(filesystems=(), config={"gen2": {"create_filesystems": True}})
        self.write_many("/c", 20)
        self.assert_drained("/c")
        log = s.proxy.log_since_start()
        self.assertIn("gen2 filesystem created (gen2.create_filesystems)", log)
        self.assertEqual(s.gen2.gen2("HEAD", "%s/lake?resource=filesystem" % A).status, 200)
        self.assertEqual(int(s.proxy.journal()["journal"]["parked"]), 0)

    def test_other_filesystem_keeps_draining(self):
        s = self.stack(config={"gen2": {"mappings": [
            {"gen1_prefix": "/", "filesystem": "lake", "prefix": ""},
            {"gen1_prefix": "/other", "filesystem": "other", "prefix": ""}]}})
        self.write_many("/other", 30)
        self.write_many("/main", 60)
        # /main drains while /other's 30 stay held.
        deadline = time.time() + 30
        while int(s.proxy.status()["pending"]) > 30 and time.time() < deadline:
            time.sleep(0.1)
        st = s.proxy.status()
        self.assertEqual((st["pending"], st["applied"], st["parked"]), (30, 60, 0), str(st)[:2000])
        self.assertEqual(s.compare("/main"), [])
        self.assertEqual([(p["kind"], p["filesystem"]) for p in st["gen2_problems"]],
                         [("filesystem_not_found", "other")])
        self.assertIn("'other' not found", self.wait_readyz(503)[1])
        self.assertEqual(problem_metric(s, "filesystem_not_found", "other"), 1.0)
        self.assertEqual(problem_metric(s, "filesystem_not_found", "lake"), 0.0)
        # A stop while writes wait on the filesystem's breaker is clean (exit 0, no sanitizer report), and
        # they are still owed after the restart.
        self.assertEqual(s.proxy.stop(), 0, s.proxy.read_log()[-3000:])
        self.assertFalse(any(m in s.proxy.read_log() for m in proxylib.SANITIZER_MARKS))
        s.proxy.start()
        self.assertEqual(int(s.proxy.journal()["journal"]["pending"]), 30)
        self.assertEqual(int(s.proxy.journal()["journal"]["parked"]), 0)
        self.assertEqual(s.gen2.gen2("PUT", "%s/other?resource=filesystem" % A).status, 201)
        self.assert_drained("/other", fs="other", gen2_dir="")


if __name__ == "__main__":
    emulib.main()
