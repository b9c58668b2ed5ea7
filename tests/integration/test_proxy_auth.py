"""Each Gen2 auth mode of the proxy against the Gen2 emulator (issue 3, "Tests"): Shared Key (key from
an environment variable), SAS (a service SAS for the filesystem, sr=c, every permission, from a file),
OAuth2 client credentials (the emulator's token endpoint as authority, secret from an environment
variable), managed identity (the emulator's IMDS endpoint), and a token refresh during a run (tokens
living 3 s, writes spread over several seconds all land). A wrong client secret must not hurt the
writer (Gen1 answers) and shows up as failures in /admin/status. Secrets never appear in the proxy's
log. After the writes, Gen1 and Gen2 must be equal.
"""
import datetime
import json
import os
import tempfile
import time
import urllib.parse

import emulib
import proxylib

CLIENT_ID = "33333333-bbbb-4ccc-8ddd-444444444444"
CLIENT_SECRET = "proxy-t3st-secret~value.xyz"


def iso(delta_s):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta_s)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def op_count(counters, label):
    return sum(n for k, n in counters.items() if k.split(" ")[-1] == label)


class AuthBase(emulib.unittest.TestCase):
    def run_writes(self, s, root, n=3, pause=0.0):
        p = s.proxy
        self.assertEqual(p.webhdfs("PUT", root, "MKDIRS", permission="750").status, 200)
        for i in range(n):
            f = "%s/f%d" % (root, i)
            r = p.webhdfs("PUT", f, "CREATE", body=("file %d " % i).encode() * 50, write="true", permission="640")
            self.assertEqual(r.status, 201, r)
            self.assertEqual(p.webhdfs("POST", f, "APPEND", body=b"+tail", append="true").status, 200)
            if pause:
                time.sleep(pause)
        self.assertEqual(p.webhdfs("PUT", root + "/f0", "SETACL",
                                   aclspec="user::rw-,user:bob:r--,group::r--,mask::r--,other::---").status, 200)
        self.assertEqual(p.webhdfs("PUT", root + "/f1", "RENAME", destination=root + "/renamed").status, 200)
        self.assertEqual(p.webhdfs("DELETE", root + "/f2", "DELETE").status, 200)
        st = s.wait_applied(60)
        self.assertEqual(st.get("failures", []), [], st)
        s.assert_same(self, root)

    def assert_secret_not_logged(self, s, *secrets):
        log = s.proxy.read_log()
        for sec in secrets:
            self.assertNotIn(sec, log, "a secret reached the proxy's log")
        r = s.proxy.admin("GET", "/admin/status")
        for sec in secrets:
            self.assertNotIn(sec.encode(), r.body)


class SharedKey(AuthBase):
    def test_shared_key_from_env(self):
        s = proxylib.Stack(config={"gen2": {"auth": {"mode": "shared_key", "account_key": None,
                                                     "account_key_env": "DP_TEST_GEN2_KEY"}}},
                           proxy_env={"DP_TEST_GEN2_KEY": emulib.DEV_KEY})
        try:
            self.run_writes(s, "/sk")
            c = s.g2_counters()
            self.assertGreater(op_count(c, "create-file"), 0, c)
            self.assertEqual(op_count(c, "token") + op_count(c, "imds"), 0, c)
            self.assert_secret_not_logged(s, emulib.DEV_KEY)
        finally:
            s.close()


class Sas(AuthBase):
    def test_service_sas_from_file(self):
        sas = emulib.service_sas(emulib.DEV_ACCOUNT, emulib.DEV_KEY, proxylib.FS, "", "racwdxyltmeop", "c",
                                 iso(-300), iso(3600))
        fd, path = tempfile.mkstemp(prefix="dp-sas-")
        with os.fdopen(fd, "w") as f:
            f.write(sas + "\n")
        s = None
        try:
            s = proxylib.Stack(config={"gen2": {"auth": {"mode": "sas", "account_key": None, "sas_file": path}}})
            self.run_writes(s, "/sas")
            sig = dict(x.split("=", 1) for x in sas.split("&"))["sig"]
            self.assert_secret_not_logged(s, sig, urllib.parse.unquote(sig))
        finally:
            if s:
                s.close()
            os.unlink(path)


def oauth_stack(extra_gen2_args=(), auth=None, env_secret=CLIENT_SECRET, config=None):
    def cfg(stack):
        a = {"mode": "client_credentials", "account_key": None, "authority": stack.gen2.url,
             "tenant_id": "contoso.onmicrosoft.com", "client_id": CLIENT_ID,
             "client_secret_env": "DP_TEST_CLIENT_SECRET"}
        a.update(auth or {})
        return proxylib.deep_merge({"gen2": {"auth": a}}, config or {})
    return proxylib.Stack(config=cfg, proxy_env={"DP_TEST_CLIENT_SECRET": env_secret},
                          gen2_kw={"extra_args": ["--oauth-client-id", CLIENT_ID] + list(extra_gen2_args),
                                   "env": {"DUALPIPE_EMU_CLIENT_SECRET": CLIENT_SECRET}})


class OAuth(AuthBase):
    def test_client_credentials(self):
        s = oauth_stack()
        try:
            self.run_writes(s, "/oauth")
            c = s.g2_counters()
            self.assertGreaterEqual(op_count(c, "token"), 1, c)
            self.assertLessEqual(op_count(c, "token"), 3, "the token must be cached, not fetched per call: %r" % c)
            self.assert_secret_not_logged(s, CLIENT_SECRET)
        finally:
            s.close()

    def test_wrong_secret_does_not_hurt_the_writer(self):
        s = oauth_stack(env_secret="not-the-secret")
        try:
            p = s.proxy
            r = p.webhdfs("PUT", "/badsecret/f", "CREATE", body=b"still written to Gen1", write="true")
            self.assertEqual(r.status, 201, r)
            self.assertEqual(s.g1_read("/badsecret/f"), b"still written to Gen1")
            deadline = time.time() + 20
            while not p.status()["gen2_problems"] and time.time() < deadline:
                time.sleep(0.05)
            st = p.status()
            self.assertEqual([x["kind"] for x in st["gen2_problems"]], ["authentication"],
                             "a Gen2 auth failure must be reported: %s" % json.dumps(st))
            self.assertEqual((st["pending"], st["parked"]), (1, 0), "held for the fix, not parked: %s" % st)
            self.assertEqual(s.g2("HEAD", "/badsecret/f").status, 404)
            self.assert_secret_not_logged(s, "not-the-secret", CLIENT_SECRET)
        finally:
            s.close()

    def test_one_retry_after_a_401(self):
        """Gen2 refuses a cached token once (as after a key rotation): the proxy fetches a new token and
        retries, and the write lands."""
        s = oauth_stack()
        try:
            self.assertEqual(s.proxy.webhdfs("PUT", "/retry401/a", "CREATE", body=b"a", write="true").status, 201)
            s.wait_applied()
            tokens = op_count(s.g2_counters(), "token")
            s.gen2.fault("method=PUT,op=create-file,status=401,count=1")
            self.assertEqual(s.proxy.webhdfs("PUT", "/retry401/b", "CREATE", body=b"b", write="true").status, 201)
            st = s.wait_applied(60)
            self.assertEqual(st.get("failures"), [], json.dumps(st)[:2000])
            self.assertEqual(s.g2_read("/retry401/b"), b"b")
            self.assertGreater(op_count(s.g2_counters(), "token"), tokens, "a 401 must make the proxy fetch a new token")
            s.assert_same(self, "/retry401")
        finally:
            s.close()

    def test_token_refresh_during_a_run(self):
        s = oauth_stack(extra_gen2_args=["--token-ttl", "3"], auth={"refresh_margin_s": 1})
        try:
            t0 = time.time()
            self.run_writes(s, "/refresh", n=8, pause=1.0)
            self.assertGreater(time.time() - t0, 7)
            c = s.g2_counters()
            self.assertGreaterEqual(op_count(c, "token"), 3, "tokens living 3 s over 8 s of writes: %r" % c)
        finally:
            s.close()


class ManagedIdentity(AuthBase):
    def test_imds(self):
        def cfg(stack):
            return {"gen2": {"auth": {"mode": "managed_identity", "account_key": None,
                                      "imds_endpoint": stack.gen2.url + "/metadata/identity/oauth2/token"}}}
        s = proxylib.Stack(config=cfg)
        try:
            self.run_writes(s, "/mi")
            c = s.g2_counters()
            self.assertGreaterEqual(op_count(c, "imds"), 1, c)
            self.assertEqual(op_count(c, "token"), 0, c)
        finally:
            s.close()

    def test_imds_refresh(self):
        def cfg(stack):
            return {"gen2": {"auth": {"mode": "managed_identity", "account_key": None, "refresh_margin_s": 1,
                                      "imds_endpoint": stack.gen2.url + "/metadata/identity/oauth2/token"}}}
        s = proxylib.Stack(config=cfg, gen2_kw={"extra_args": ["--token-ttl", "3"]})
        try:
            self.run_writes(s, "/mi-refresh", n=6, pause=1.0)
            self.assertGreaterEqual(op_count(s.g2_counters(), "imds"), 2)
        finally:
            s.close()


if __name__ == "__main__":
    emulib.main()
