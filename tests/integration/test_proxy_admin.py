"""The proxy's admin listener as an operator uses it (README "Admin endpoints"): /healthz, /readyz
(200 while Gen1 answers, 503 once it is down, 200 again when it is back), /metrics (Prometheus text
that moves when writes go through) and /admin/status (pending, applied, divergences, failures).
"""
import time

import emulib
import proxylib


class Admin(emulib.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack()
        cls.p = cls.s.proxy

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def test_health_and_status(self):
        r = self.p.admin("GET", "/healthz")
        self.assertEqual((r.status, r.body.strip()), (200, b"ok"))
        # ready once the first probe of Gen1 (sent at start) has come back
        deadline, status = time.time() + 10, None
        while time.time() < deadline:
            status = self.p.admin("GET", "/readyz").status
            if status == 200:
                break
            time.sleep(0.1)
        self.assertEqual(status, 200)
        self.assertTrue(self.p.admin_url.startswith("http://127.0.0.1:"))
        self.assertEqual(self.p.admin("GET", "/no-such-thing").status, 404)
        before = self.p.status()
        for k in ("pending", "applied"):
            self.assertIn(k, before)
        self.assertEqual(self.p.webhdfs("PUT", "/adm/f", "CREATE", body=b"abc", write="true").status, 201)
        self.assertEqual(self.p.webhdfs("PUT", "/adm/f", "SETPERMISSION", permission="600").status, 200)
        after = self.s.wait_applied()
        self.assertGreaterEqual(int(after["applied"]) - int(before["applied"]), 2, after)

    def test_metrics(self):
        r = self.p.admin("GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("content-type", "").startswith("text/plain"), r)
        text = r.body.decode()
        self.assertIn("# TYPE", text)
        self.assertEqual(self.p.webhdfs("PUT", "/met/f", "CREATE", body=b"m", write="true").status, 201)
        self.s.wait_applied()
        text2 = self.p.admin("GET", "/metrics").body.decode()
        self.assertNotEqual(text, text2, "a write through the proxy must move some metric")

    def test_readyz_follows_gen1(self):
        self.assertEqual(self.s.gen1.admin("POST", "/down?ms=30000").status, 200)
        try:
            deadline, status = time.time() + 20, None
            while time.time() < deadline:
                status = self.p.admin("GET", "/readyz").status
                if status == 503:
                    break
                time.sleep(0.2)
            self.assertEqual(status, 503, "readyz must turn 503 while Gen1 is down")
            self.assertEqual(self.p.admin("GET", "/healthz").status, 200, "healthz is liveness only")
        finally:
            self.assertEqual(self.s.gen1.admin("POST", "/up").status, 200)
        deadline, status = time.time() + 20, None
        while time.time() < deadline:
            status = self.p.admin("GET", "/readyz").status
            if status == 200:
                break
            time.sleep(0.2)
        self.assertEqual(status, 200)


if __name__ == "__main__":
    emulib.main()
