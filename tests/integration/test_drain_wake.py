"""After an outage the backlog goes out as soon as the breaker's probe goes through, not when each
write's own backoff runs out (issue 14, "backlog drain").

The backoff is made absurdly long (applier.backoff_base_ms = backoff_cap_ms = 10 minutes, full jitter) and
the breaker opens on the first failure, so any write that waited out its own backoff would stay behind for
minutes; the probe runs every 200 ms. A few paths are written while the side the proxy mirrors to is down
(connections refused), then it comes back:

- gen1-primary, Gen2 down: every path reaches Gen2 within a few seconds of Gen2's return (a generous bound,
  far below the backoff), the stores compare equal, and the Gen2 emulator saw each file created and each
  APPEND's bytes accepted once.
- gen2-primary, Gen1 down: the same for the mirror toward Gen1 (its workers back off in their own threads).
- While Gen2 keeps failing (503 to everything) with a short backoff, the held writes do not hammer it: one
  probe per breaker_probe_ms, counted on the emulator; once it answers again everything goes.
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

LONG = {"backoff_base_ms": 600000, "backoff_cap_ms": 600000, "breaker_failures": 1, "breaker_probe_ms": 200}
PATHS = 4
DOWN_S = 3.0     # the outage, long enough for several failed probes
PROMPT_S = 6.0   # after the return: 30 probe intervals, 1 % of the backoff


class DrainWake(unittest.TestCase):
    def stack(self, phase):
        cfg = {"phase": phase, "applier": LONG, "log": {"level": "info"}, "shutdown": {"drain_ms": 300}}
        s = proxylib.Stack(config=cfg)
        self.addCleanup(s.close)
        return s

    def write_while_down(self, s, down, root):
        """Take down (an Emu) down, write PATHS files of two APPENDs each through the proxy, wait out the
        outage, bring it back. Returns the time it answered again."""
        if s.proxy.config.get("phase") == "gen2-primary":
            r = s.proxy.webhdfs("PUT", root, "MKDIRS", permission="755")
            self.assertEqual(r.status, 200, r)
            s.wait_drained(30)
        self.assertEqual(down.admin("POST", "/down").status, 200)
        t0 = time.time()
        for i in range(PATHS):
            p = "%s/f%d" % (root, i)
            r = proxylib.write_data(s.proxy, "PUT", p, "CREATE", b"c%d" % i, write="true", overwrite="true")
            self.assertEqual(r.status, 201, r)
            for k in range(2):
                r = proxylib.write_data(s.proxy, "POST", p, "APPEND", (b"%d-%d;" % (i, k)) * 1000, append="true")
                self.assertEqual(r.status, 200, r)
        time.sleep(max(0.0, t0 + DOWN_S - time.time()))
        owed = s.proxy.journal()["journal"]
        self.assertGreater(int(owed.get("pending", 0)) + int(owed.get("awaiting_primary", 0)), 0, owed)
        self.assertEqual(down.admin("POST", "/up").status, 200)
        return time.time()

    def assert_prompt(self, s, t_up, what):
        deadline = t_up + PROMPT_S
        while True:
            j = s.proxy.journal()["journal"]
            if int(j.get("pending", 0)) == 0 and int(j.get("awaiting_primary", 0)) == 0:
                break
            if time.time() > deadline:
                self.fail("%s: still owed %.1f s after it came back (backoff %d s, probe every %d ms): %s\n%s"
                          % (what, time.time() - t_up, LONG["backoff_cap_ms"] // 1000, LONG["breaker_probe_ms"],
                             json.dumps(j)[:1500], s.proxy.log_since_start()[-3000:]))
            time.sleep(0.05)

    def test_gen2_back_every_path_goes_at_once(self):
        s = self.stack("gen1-primary")
        c0 = s.g2_counters()
        t_up = self.write_while_down(s, s.gen2, "/dw")
        self.assert_prompt(s, t_up, "Gen2")
        self.assertEqual(s.compare("/dw"), [])
        st = s.proxy.status()
        self.assertEqual((st["resynced"], st["parked"]), (0, 0), st)
        c1 = s.g2_counters()
        # each file created once and each APPEND's bytes accepted once (a replay would be a second one)
        d = {k: c1.get(k, 0) - c0.get(k, 0) for k in c1}
        self.assertEqual(d.get("PUT create-file", 0), PATHS, d)
        self.assertEqual(d.get("PATCH append", 0), 2 * PATHS, d)

    def test_still_down_one_probe_at_a_time(self):
        fast = {"backoff_base_ms": 10, "backoff_cap_ms": 50, "breaker_failures": 1, "breaker_probe_ms": 500}
        cfg = {"applier": fast, "log": {"level": "info"}, "shutdown": {"drain_ms": 300}}
        s = proxylib.Stack(config=cfg)
        self.addCleanup(s.close)
        s.gen2.fault("action=fail,status=503")
        for i in range(PATHS):
            r = proxylib.write_data(s.proxy, "PUT", "/sp/f%d" % i, "CREATE", b"x%d" % i, write="true")
            self.assertEqual(r.status, 201, r)
        time.sleep(1.0)  # the breaker is open by now
        n0 = sum(s.g2_counters().values())
        time.sleep(2.0)
        n = sum(s.g2_counters().values()) - n0
        # four probes in 2 s (one at a time, every 500 ms); held writes retrying on their own 10-50 ms
        # backoff would have sent hundreds
        self.assertLessEqual(n, 2000 // fast["breaker_probe_ms"] + 2, s.g2_counters())
        self.assertGreaterEqual(n, 1, s.g2_counters())
        self.assertEqual(s.gen2.admin("DELETE", "/faults").status, 200)
        s.wait_drained(30)
        self.assertEqual(s.compare("/sp"), [])

    def test_gen1_back_the_mirror_goes_at_once(self):
        s = self.stack("gen2-primary")
        t_up = self.write_while_down(s, s.gen1, "/mw")
        self.assert_prompt(s, t_up, "Gen1 (mirror)")
        diffs = [x for x in s.compare("/mw") if ": owner " not in x and ": group " not in x]
        self.assertEqual(diffs, [])
        st = s.proxy.status().get("mirror", {})
        self.assertEqual((st.get("resynced"), st.get("parked")), (0, 0), st)


if __name__ == "__main__":
    unittest.main()
