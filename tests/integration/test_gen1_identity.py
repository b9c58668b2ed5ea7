"""test_gen1_identity: the proxy's own Gen1 identity (gen1.auth) for the work no writer waits on.

A protected Gen1 emulator tells identities apart (named bearer tokens, its own OAuth2 token endpoint,
or the Hadoop user.name/doas) and counts requests per identity in /counters. Writers carry their own
identity W; the proxy is configured with its own identity P. Each test writes through the proxy
(the writer's requests carry W, never P), then forces writer-less work and checks on the counters
that it carried P and that it succeeded: nothing parked, and Gen1 and Gen2 compare equal.

 - bearer (adls dialect, token from a file): the readiness probe, an operator resync, a CONCAT re-copy, kill -9 with
   writes in flight then restart (recovery checks the in-doubt records), `journal retry` of a parked
   record, and the token file rotated while the proxy runs (the emulator then accepts only the new
   token; the proxy uses it without a restart), and again with a SIGHUP (the token is a key taken live);
 - hadoop dialect: writers send user.name=alice, the proxy user.name=dpproxy&doas=hdfs;
 - client_credentials against the emulator's token endpoint (v2, scope) with a 3 s token lifetime:
   the token is refreshed and the work after the first token's expiry still carries P;
 - client_credentials with the authority answering 503: the work waits (never parked), /admin/status says
   why, and drains by itself once the authority is back;
 - client_credentials with a wrong client secret: the resync stays pending (never parked), the log
   says why once without the secret, and after a restart with the right secret the backlog drains.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import emulib
import proxylib

WTOK = "writer-token-W-0123456789"
PTOK1 = "proxy-token-P-first"
PTOK2 = "proxy-token-P-second"
FAST = {"applier": {"backoff_base_ms": 50, "backoff_cap_ms": 400, "breaker_probe_ms": 200, "resync_attempts": 1}}


def jcli(proxy, *args):
    cmd = [proxylib.DUALPIPE_BIN, "journal"] + list(args) + ["--config", proxy.config_path,
                                                            "--admin", proxy.admin_url[len("http://"):]]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def idents(stack):
    return stack.gen1.counters().get("identities", {})


def ops_of(stack, name):
    return idents(stack).get(name, {}).get("ops", {})


def count(stack, name, key=None):
    if key is None:
        return idents(stack).get(name, {}).get("total", 0)
    return ops_of(stack, name).get(key, 0)


def wput(proxy, path, body, tok=WTOK, timeout=30):
    """A writer's one-step CREATE (overwrite) through the proxy, with its own bearer token."""
    return proxy.request("PUT", proxylib.wh_target(path, "CREATE", write="true", overwrite="true"), body,
                         headers={"Authorization": "Bearer " + tok}, timeout=timeout)


def write_file(path, text):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # how a sidecar rotates a token: a new file renamed over the old one


class Bearer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="dp-ident-")
        cls.emu_tokens = os.path.join(cls.tmp, "emu-tokens")
        cls.proxy_token = os.path.join(cls.tmp, "proxy-token")
        write_file(cls.emu_tokens, "W %s\nP %s\n" % (WTOK, PTOK1))
        write_file(cls.proxy_token, PTOK1 + "\n")
        over = proxylib.deep_merge(FAST, {"gen1": {"auth": {"mode": "bearer", "token_file": cls.proxy_token}}})
        cls.s = proxylib.Stack(config=over, gen1_kw={"extra_args": ["--token-file", cls.emu_tokens]})
        cls.s.gen1.token = WTOK  # the test's own direct Gen1 calls (compare) are a writer's
        cls.p = cls.s.proxy

    @classmethod
    def tearDownClass(cls):
        try:
            cls.s.close()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        self.s.gen1.admin("DELETE", "/faults")

    def put(self, path, body, tok=WTOK):
        r = wput(self.p, path, body, tok)
        self.assertEqual(r.status, 201, r)

    def converged(self, root):
        self.s.wait_drained(timeout=30)
        diffs = self.s.compare(root)
        self.assertEqual(diffs, [], "\n".join(diffs))

    def test_0_readiness_probe_carries_the_proxys_identity(self):
        deadline = time.time() + 10
        while time.time() < deadline and count(self.s, "P", "GET GETFILESTATUS") == 0:
            time.sleep(0.1)
        self.assertGreaterEqual(count(self.s, "P", "GET GETFILESTATUS"), 1, idents(self.s))
        self.assertEqual(count(self.s, "(refused)"), 0, idents(self.s))
        self.assertEqual(self.p.admin("GET", "/readyz").status, 200)

    def test_1_writers_keep_their_identity_resync_uses_the_proxys(self):
        s = self.s
        for i in range(5):
            self.put("/w/f%d" % i, b"writer %d" % i)
        s.wait_drained(timeout=30)
        self.assertGreaterEqual(count(s, "W", "PUT CREATE"), 5, idents(s))
        self.assertEqual(count(s, "P", "PUT CREATE"), 0, idents(s))
        # a path only Gen1 has: the operator's resync copies it with the proxy's identity
        self.assertEqual(s.g1("PUT", "/w/side", "CREATE", body=b"gen1 only", write="true").status, 201)
        before = count(s, "P")
        rc, out, err = jcli(self.p, "resync", "/w/side")
        self.assertEqual(rc, 0, out + err)
        self.converged("/w")
        self.assertEqual(s.g2_read("w/side"), b"gen1 only")
        self.assertGreater(count(s, "P"), before, idents(s))
        self.assertGreaterEqual(count(s, "P", "GET OPEN"), 1, idents(s))
        self.assertEqual(count(s, "(refused)"), 0, idents(s))

    def test_2_concat_recopy_carries_the_proxys_identity(self):
        s = self.s
        self.put("/c/a", b"A" * 1000)
        self.put("/c/b", b"B" * 500)
        s.wait_drained(timeout=30)
        opens = count(s, "P", "GET OPEN")
        r = self.p.webhdfs("POST", "/c/a", "CONCAT", headers={"Authorization": "Bearer " + WTOK}, sources="/c/b")
        self.assertEqual(r.status, 200, r)
        self.converged("/c")
        self.assertEqual(s.g2_read("c/a"), b"A" * 1000 + b"B" * 500)
        self.assertGreater(count(s, "P", "GET OPEN"), opens, idents(s))
        self.assertGreaterEqual(count(s, "W", "POST CONCAT"), 1, idents(s))

    def test_3_kill9_with_writes_in_flight_then_recovery(self):
        s = self.s
        s.gen1.fault("op=CREATE,action=latency,latency_ms=1500")
        results = []

        def writer(i):
            try:
                results.append(wput(self.p, "/k/f%d" % i, b"in flight %d" % i, timeout=10).status)
            except Exception as e:  # the proxy dies under the writer: that is the point
                results.append(repr(e))

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.6)
        before = count(s, "P", "GET GETFILESTATUS")
        self.p.restart(kill=True)
        for t in threads:
            t.join(15)
        s.gen1.admin("DELETE", "/faults")
        self.converged("/k")
        # the in-doubt writes were settled by asking Gen1, as the proxy
        self.assertGreater(count(s, "P", "GET GETFILESTATUS"), before, (idents(s), results))

    def test_4_retry_of_a_parked_record(self):
        s = self.s
        self.assertEqual(s.g1("PUT", "/r/x", "CREATE", body=b"parked then retried", write="true").status, 201)
        s.gen1.fault("op=GETFILESTATUS,status=403")
        rc, out, err = jcli(self.p, "resync", "/r/x")
        self.assertEqual(rc, 0, out + err)
        seq = out.split()[-1]
        deadline = time.time() + 20
        while time.time() < deadline and int(self.p.journal()["journal"].get("parked", 0)) == 0:
            time.sleep(0.1)
        self.assertGreaterEqual(int(self.p.journal()["journal"].get("parked", 0)), 1)
        s.gen1.admin("DELETE", "/faults")
        before = count(s, "P", "GET OPEN")
        rc, out, err = jcli(self.p, "retry", seq)
        self.assertEqual(rc, 0, out + err)
        self.converged("/r")
        self.assertEqual(s.g2_read("r/x"), b"parked then retried")
        self.assertGreater(count(s, "P", "GET OPEN"), before, idents(s))

    def test_5_token_file_rotated_while_running(self):
        s = self.s
        write_file(self.emu_tokens, "W %s\nP %s\n" % (WTOK, PTOK2))  # Gen1 now knows only the new P token
        write_file(self.proxy_token, PTOK2 + "\n")
        self.assertEqual(s.g1("PUT", "/rot/x", "CREATE", body=b"after rotation", write="true").status, 201)
        before = count(s, "P")
        refused = count(s, "(refused)")
        rc, out, err = jcli(self.p, "resync", "/rot/x")
        self.assertEqual(rc, 0, out + err)
        self.converged("/rot")
        self.assertEqual(s.g2_read("rot/x"), b"after rotation")
        self.assertGreater(count(s, "P"), before, idents(s))
        self.assertEqual(count(s, "(refused)"), refused, "the proxy still sent the old token: %s" % idents(s))
        # the old token really is refused now
        r = s.gen1.request("GET", "/webhdfs/v1/?op=GETFILESTATUS", headers={"Authorization": "Bearer " + PTOK1})
        self.assertEqual(r.status, 401, r)

    def test_6_sighup_takes_the_rotated_token(self):
        """SIGHUP after a rotation: the token is a key applied live (never "needs a restart"), and the
        writer-less work that follows carries the new token."""
        s = self.s
        ptok3 = "proxy-token-P-third"
        write_file(self.emu_tokens, "W %s\nP %s\n" % (WTOK, ptok3))
        write_file(self.proxy_token, ptok3 + "\n")
        mark = len(self.p.log_since_start())
        self.p.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        tail = ""
        while time.time() < deadline and "msg=\"configuration reloaded\"" not in tail:
            time.sleep(0.05)
            tail = self.p.log_since_start()[mark:]
        self.assertIn("msg=\"reload: key changed\" key=gen1.auth.token", tail)
        self.assertNotIn("needs a restart\" key=gen1.auth", tail)
        self.assertNotIn(ptok3, tail)
        self.assertEqual(s.g1("PUT", "/hup/x", "CREATE", body=b"after sighup", write="true").status, 201)
        refused = count(s, "(refused)")
        rc, out, err = jcli(self.p, "resync", "/hup/x")
        self.assertEqual(rc, 0, out + err)
        self.converged("/hup")
        self.assertEqual(s.g2_read("hup/x"), b"after sighup")
        self.assertEqual(count(s, "(refused)"), refused, idents(s))


class Hadoop(unittest.TestCase):
    def test_user_name_and_doas(self):
        over = proxylib.deep_merge(FAST, {"gen1": {"auth": {"mode": "hadoop", "user": "dpproxy", "doas": "hdfs"}}})
        s = proxylib.Stack(dialect="hadoop", config=over)
        try:
            # alice may write under /h only (the root is hdfs's, 755)
            self.assertEqual(s.g1("PUT", "/h", "MKDIRS", permission="777").status, 200)
            for i in range(3):
                r = proxylib.write_data(s.proxy, "PUT", "/h/f%d" % i, "CREATE", b"hadoop %d" % i, two_step=True,
                                        **{"user.name": "alice"})
                self.assertEqual(r.status, 201, r)
            self.assertEqual(s.g1("PUT", "/h/side", "CREATE", body=b"side", **{"user.name": "alice"}).status, 201)
            rc, out, err = jcli(s.proxy, "resync", "/h/side")
            self.assertEqual(rc, 0, out + err)
            s.wait_drained(timeout=30)
            self.assertEqual(s.compare("/h"), [])
            self.assertGreaterEqual(count(s, "alice", "PUT CREATE"), 3, idents(s))
            self.assertGreaterEqual(count(s, "dpproxy as hdfs", "GET OPEN"), 1, idents(s))
            # the writer's user.name never went out with the proxy's look-ups
            self.assertEqual(count(s, "alice", "GET OPEN"), 0, idents(s))
        finally:
            s.close()


def oauth_stack(secret, ttl=3600, extra=None):
    tmp = tempfile.mkdtemp(prefix="dp-ident-")
    sfile = os.path.join(tmp, "secret")
    write_file(sfile, secret + "\n")

    def cfg(stack):
        return proxylib.deep_merge(FAST, {"gen1": {"auth": {
            "mode": "client_credentials", "authority": stack.gen1.url, "tenant_id": "contoso", "client_id": "dp-app",
            "client_secret_file": sfile, "token_api": "v2", "refresh_margin_s": 1}}})

    s = proxylib.Stack(config=cfg, gen1_kw={
        "extra_args": ["--identity", "W=" + WTOK, "--oauth-client-id", "dp-app", "--token-ttl", str(ttl)] + (extra or []),
        "env": {"DUALPIPE_EMU_CLIENT_SECRET": "right-secret"}})
    s.gen1.token = WTOK
    return s, tmp, sfile


class ClientCredentials(unittest.TestCase):
    def test_tokens_are_fetched_and_refreshed(self):
        s, tmp, _ = oauth_stack("right-secret", ttl=3)
        try:
            r = wput(s.proxy, "/o/a", b"one")
            self.assertEqual(r.status, 201, r)
            self.assertEqual(s.g1("PUT", "/o/side1", "CREATE", body=b"s1", write="true").status, 201)
            self.assertEqual(jcli(s.proxy, "resync", "/o/side1")[0], 0)
            s.wait_drained(timeout=30)
            first = count(s, "oauth")
            self.assertGreater(first, 0, idents(s))
            time.sleep(4)  # past the first token's lifetime
            self.assertEqual(s.g1("PUT", "/o/side2", "CREATE", body=b"s2", write="true").status, 201)
            self.assertEqual(jcli(s.proxy, "resync", "/o/side2")[0], 0)
            s.wait_drained(timeout=30)
            self.assertEqual(s.compare("/o"), [])
            self.assertGreater(count(s, "oauth"), first, idents(s))
            self.assertEqual(count(s, "(refused)"), 0, idents(s))
            self.assertGreaterEqual(s.gen1.counters()["requests"].get("POST TOKEN", 0), 2, s.gen1.counters())
        finally:
            s.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_authority_down_then_back(self):
        s, tmp, _ = oauth_stack("right-secret", extra=["--fault", "method=POST,op=TOKEN,status=503"])
        try:
            self.assertEqual(s.g1("PUT", "/d/side", "CREATE", body=b"owed", write="true").status, 201)
            self.assertEqual(jcli(s.proxy, "resync", "/d/side")[0], 0)
            # the token service is retried with backoff (4 attempts) before the work is told it must wait
            deadline = time.time() + 15
            while time.time() < deadline and not s.proxy.status().get("gen1_identity_error"):
                time.sleep(0.2)
            self.assertIn("HTTP 503", s.proxy.status().get("gen1_identity_error", ""))
            j = s.proxy.journal()["journal"]
            self.assertEqual(int(j.get("parked", 0)), 0, j)
            self.assertGreaterEqual(int(j.get("pending", 0)), 1, j)
            self.assertEqual(count(s, "oauth"), 0, idents(s))
            s.gen1.admin("DELETE", "/faults")  # the authority is back: the token comes, the backlog drains
            s.wait_drained(timeout=45)
            self.assertEqual(s.g2_read("d/side"), b"owed")
            self.assertGreater(count(s, "oauth"), 0, idents(s))
            self.assertIn("Gen1 identity works again", s.proxy.read_log())
        finally:
            s.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_bad_secret_waits_then_drains_after_the_fix(self):
        bad = "wrong-secret-XYZZY"
        s, tmp, sfile = oauth_stack(bad)
        try:
            r = wput(s.proxy, "/b/a", b"writer ok")
            self.assertEqual(r.status, 201, r)
            self.assertEqual(s.g1("PUT", "/b/side", "CREATE", body=b"owed", write="true").status, 201)
            self.assertEqual(jcli(s.proxy, "resync", "/b/side")[0], 0)
            time.sleep(2)
            j = s.proxy.journal()["journal"]
            self.assertEqual(int(j.get("parked", 0)), 0, j)
            self.assertGreaterEqual(int(j.get("pending", 0)), 1, j)
            log = s.proxy.read_log()
            self.assertIn("Gen1 identity cannot be had", log)
            self.assertIn("invalid_client", log)
            self.assertNotIn(bad, log)
            self.assertEqual(log.count("Gen1 identity cannot be had"), 1, log[-3000:])
            err = s.proxy.status().get("gen1_identity_error", "")
            self.assertIn("invalid_client", err)
            self.assertNotIn(bad, err)
            write_file(sfile, "right-secret\n")
            s.proxy.restart()
            s.wait_drained(timeout=30)
            self.assertEqual(s.compare("/b"), [])
            self.assertEqual(s.g2_read("b/side"), b"owed")
            self.assertEqual(s.proxy.status().get("gen1_identity_error"), "")
        finally:
            s.close()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
