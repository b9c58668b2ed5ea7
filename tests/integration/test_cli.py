"""Command-line conventions of dualpipe and dualpipe-emu (what a new user meets first): every command
and subcommand answers --help on stdout with exit status 0; a usage error says what was wrong on
stderr, then shows the usage, and exits 2."""
import os
import re
import subprocess
import unittest

import emulib
import proxylib


def run(*argv):
    p = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Cli(unittest.TestCase):
    def test_help_everywhere(self):
        d = proxylib.DUALPIPE_BIN
        for argv in ([d, "--help"], [d, "-h"], [d, "journal", "--help"], [d, "journal", "status", "--help"],
                     [d, "journal", "list", "--help"], [d, "journal", "retry", "--help"], [d, "journal", "drop", "-h"],
                     [d, "journal", "resync", "--help"], [emulib.EMU_BIN, "--help"], [emulib.EMU_BIN, "gen1", "--help"],
                     [emulib.EMU_BIN, "gen2", "--help"]):
            rc, out, err = run(*argv)
            self.assertEqual(rc, 0, (argv, err))
            self.assertIn("usage", out, argv)
            self.assertEqual(err, "", argv)

    def test_usage_errors_say_what_was_wrong(self):
        d = proxylib.DUALPIPE_BIN
        for argv, says in (([d], "a command is required"), ([d, "--bogus"], "unknown option --bogus"),
                           ([d, "frobnicate"], "unknown command frobnicate"),
                           ([d, "--config"], "--config takes exactly one FILE"),
                           ([d, "journal"], "a command is required"),
                           ([d, "journal", "bogus"], "unknown command bogus"),
                           ([d, "journal", "status", "--bogus"], "unknown option --bogus"),
                           ([emulib.EMU_BIN], "a service is required"),
                           ([emulib.EMU_BIN, "gen3"], "service must be gen1 or gen2"),
                           ([emulib.EMU_BIN, "gen1", "--bogus", "x"], "unknown option --bogus")):
            rc, out, err = run(*argv)
            self.assertEqual(rc, 2, (argv, err))
            first = err.splitlines()[0] if err else ""
            self.assertIn(says, first, (argv, err))
            self.assertIn("usage", err, argv)
            self.assertEqual(out, "", argv)

    def test_emulator_refuses_a_busy_port(self):
        e = emulib.Emu("gen1")
        try:
            port = e.url.rsplit(":", 1)[1]
            data = os.path.join(e.data_dir, "second")
            rc, out, err = run(emulib.EMU_BIN, "gen1", "--listen", "127.0.0.1:" + port, "--data", data)
            self.assertEqual(rc, 1, err)
            self.assertIn("the port is in use", err)
            self.assertNotIn("ready", out)
            # the first one still answers every request (no second listener shares the port)
            for _ in range(20):
                self.assertEqual(emulib.http_request(e.url, "GET", "/webhdfs/v1/?op=GETFILESTATUS").status, 200)
        finally:
            e.close()

    def test_gen2_tool_shows_what_reached_gen2(self):
        """docker/gen2.py (the local stack's way to look at Gen2) lists and reads a write made through the proxy."""
        s = proxylib.Stack()
        try:
            r = proxylib.write_data(s.proxy, "PUT", "/seen/a.txt", "CREATE", b"visible on gen2", overwrite="true")
            self.assertEqual(r.status, 201, r)
            s.wait_applied()
            tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docker", "gen2.py")
            rc, out, err = run("/usr/bin/python3", tool, "--config", s.proxy.config_path, "ls", "/seen")
            self.assertEqual(rc, 0, err)
            self.assertIn("lake/seen/a.txt", out)
            rc, out, err = run("/usr/bin/python3", tool, "--config", s.proxy.config_path, "cat", "/seen/a.txt")
            self.assertEqual((rc, out), (0, "visible on gen2"), err)
            rc, out, err = run("/usr/bin/python3", tool, "--config", s.proxy.config_path, "cat", "/seen/missing")
            self.assertEqual(rc, 1)
        finally:
            s.close()

    def test_counts_agree_after_an_operator_resync(self):
        """One operator resync: the journal, /admin/status and `journal status` give the same counts, and
        the resync is not listed as a failure."""
        s = proxylib.Stack()
        try:
            p = s.proxy
            for i in range(3):
                self.assertEqual(proxylib.write_data(p, "PUT", "/cnt/f%d" % i, "CREATE", b"x", overwrite="true").status, 201)
            s.wait_applied()
            s.wait_drained()
            rc, out, err = run(proxylib.DUALPIPE_BIN, "journal", "resync", "/cnt/f1", "--config", p.config_path,
                               "--admin", p.admin_url.split("//", 1)[1])
            self.assertEqual(rc, 0, err)
            s.wait_drained()
            s.wait_applied()
            js, st = p.journal(), p.status()
            self.assertEqual(js["journal"]["resyncs"], 1, js["journal"])
            self.assertEqual(st["resynced"], 1, st)
            self.assertEqual((st["failure_count"], st["failures"]), (0, []), st)
            self.assertEqual(st["applied"], 3, st)
            self.assertEqual(js["journal"]["applied"], st["applied"] + st["skipped"] + st["divergence_count"]
                             + st["resynced"], (js["journal"], st))
            rc, out, err = run(proxylib.DUALPIPE_BIN, "journal", "status", "--config", p.config_path,
                               "--admin", p.admin_url.split("//", 1)[1])
            self.assertEqual(rc, 0, err)
            lines = {}
            for ln in out.splitlines():   # the first of a label: the applier's lines come before the mirror's
                if re.search(r"\S\s{2,}\S", ln):
                    k, v = re.split(r"\s{2,}", ln.strip(), maxsplit=1)
                    lines.setdefault(k, v)
            self.assertEqual(lines.get("done on gen2 (total)"), "4", out)
            self.assertEqual(lines.get("applied"), "3", out)
            self.assertEqual(lines.get("resynced"), "1", out)
            self.assertEqual(lines.get("resyncs (since start)"), "1", out)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
