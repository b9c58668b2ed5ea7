"""The emulator's admin listener and fault machinery, as tests of the proxy will use them:
outages (down/up on the same port), rules from flags and from the admin API, seeded determinism."""
import socket
import time
import unittest
import urllib.parse

import emulib
from emulib import Emu


def refused(url):
    u = urllib.parse.urlsplit(url)
    try:
        socket.create_connection((u.hostname, u.port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


class AdminTest(emulib.EmuTestCase):
    EMUS = {"g1": dict(service="gen1", dialect="hadoop")}

    def setUp(self):
        self.e = self.emus["g1"]
        self.e.admin("DELETE", "/faults")
        self.e.admin("DELETE", "/counters")

    def test_down_for_ms_then_back_on_same_ports(self):
        self.assertEqual(self.e.webhdfs("PUT", "/keep", "MKDIRS").status, 200)
        r = self.e.admin("POST", "/down?ms=700")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(refused(self.e.url), "namenode listener still accepts connections while down")
        self.assertTrue(refused(self.e.datanode_url), "datanode listener still accepts connections while down")
        deadline = time.time() + 10
        while refused(self.e.url) and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse(refused(self.e.url), "listener did not come back within 10 s")
        r = self.e.webhdfs("GET", "/keep", "GETFILESTATUS")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["FileStatus"]["type"], "DIRECTORY")

    def test_down_until_up(self):
        self.assertEqual(self.e.admin("POST", "/down").status, 200)
        time.sleep(0.3)
        self.assertTrue(refused(self.e.url))
        self.assertEqual(self.e.admin("POST", "/up").status, 200)
        self.assertEqual(self.e.webhdfs("GET", "/", "GETFILESTATUS").status, 200)

    def test_bad_rules_and_endpoints(self):
        r = self.e.admin("POST", "/faults", "status=999")
        self.assertEqual(r.status, 400)
        self.assertIn("status", r.json()["error"])
        r = self.e.admin("POST", "/faults", "colour=red")
        self.assertEqual(r.status, 400)
        self.assertIn("colour", r.json()["error"])
        self.assertEqual(self.e.admin("POST", "/faults", "").status, 400)
        self.assertEqual(self.e.admin("POST", "/down?ms=abc").status, 400)
        self.assertEqual(self.e.admin("GET", "/nope").status, 404)
        self.assertEqual(self.e.admin("GET", "/faults").json()["rules"], [])

    def test_rules_listed_and_cleared(self):
        self.e.fault("op=MKDIRS,status=500,count=2\nop=OPEN,action=latency,latency_ms=5")
        rules = self.e.admin("GET", "/faults").json()["rules"]
        self.assertEqual([(x["op"], x["action"], x["remaining"]) for x in rules],
                         [("MKDIRS", "fail", 2), ("OPEN", "latency", -1)])
        self.assertEqual(self.e.webhdfs("PUT", "/x", "MKDIRS").status, 500)
        self.assertEqual(self.e.admin("GET", "/faults").json()["rules"][0]["remaining"], 1)
        self.e.admin("DELETE", "/faults")
        self.assertEqual(self.e.webhdfs("PUT", "/x", "MKDIRS").status, 200)
        stats = self.e.admin("GET", "/stats").json()
        self.assertGreaterEqual(stats["nodes"], 2)


class FlagsAndSeedTest(unittest.TestCase):
    def pattern(self, seed):
        e = Emu("gen1", extra_args=["--seed", str(seed), "--fault", "op=GETFILESTATUS,fraction=0.5,status=503"])
        try:
            return "".join("x" if e.webhdfs("GET", "/", "GETFILESTATUS").status == 503 else "."
                           for _ in range(60))
        finally:
            e.close()

    def test_fraction_rules_repeat_with_the_same_seed(self):
        a, b, c = self.pattern(11), self.pattern(11), self.pattern(12)
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        self.assertTrue(10 < a.count("x") < 50, a)

    def test_bad_fault_flag_is_refused_at_start(self):
        with self.assertRaises(RuntimeError) as ctx:
            Emu("gen1", extra_args=["--fault", "op=APPEND,count=zero"])
        self.assertIn("count", str(ctx.exception))


if __name__ == "__main__":
    emulib.main()
