"""Real clients writing through the dualpipe proxy (issue 3): the published clients, unchanged, are
pointed at the proxy instead of Gen1, exactly as README "Using the proxy" tells users to do:

  npm webhdfs 1.2.0 (two-step 307)        -> proxy -> Gen1 emulator in the adls and in the hadoop dialect
  npm azure-arm-datalake-store 0.4.2      -> proxy -> Gen1 emulator (adls); client.baseUri = proxy
  Debian python3-azure-datalake-store     -> proxy -> Gen1 emulator (adls); adl.azure.url = proxy
                                                        (the whole test_python_adls.py suite, unchanged)

Each client script asserts what its user relies on (it is the same script the emulator tests run).
Afterwards both sides must hold the same thing, checked twice: by proxylib's compare tool (raw
WebHDFS on Gen1 vs signed DFS calls on Gen2) and by Microsoft's @azure/storage-file-datalake SDK
(gen2_check_client.js lists and reads Gen2, compared with Gen1 as read directly).

Environment: DUALPIPE, DUALPIPE_EMU (binaries), DP_NODE (node), DP_NPM_PREFIX (the npm prefix that
clients_npm_install filled). Run one class: python3 test_proxy_clients.py ProxyWebhdfsAdls
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import proxylib  # noqa: E402

NODE = os.environ.get("DP_NODE") or shutil.which("node") or "node"
NPM_PREFIX = os.environ.get("DP_NPM_PREFIX", "")
CLIENT_TIMEOUT_S = 240


def node_env():
    env = dict(os.environ)
    env["NODE_PATH"] = os.path.join(NPM_PREFIX, "node_modules")
    env["NO_PROXY"] = "127.0.0.1,localhost"
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        env.pop(var, None)
    return env


def run_node(tc, script, env_extra):
    if not os.path.isdir(os.path.join(NPM_PREFIX, "node_modules")):
        tc.fail("DP_NPM_PREFIX/node_modules missing (%r): the clients_npm_install test fills it" % NPM_PREFIX)
    env = node_env()
    env.update(env_extra)
    try:
        r = subprocess.run([NODE, os.path.join(HERE, script)], env=env, cwd=NPM_PREFIX, capture_output=True,
                           timeout=CLIENT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        tc.fail("%s timed out after %d s" % (script, CLIENT_TIMEOUT_S))
    sys.stdout.write(r.stderr.decode("utf-8", "replace")[-4000:] if r.returncode else "")
    tc.assertEqual(r.returncode, 0, "%s failed:\n%s\n%s" % (script, r.stdout.decode("utf-8", "replace")[-4000:],
                                                            r.stderr.decode("utf-8", "replace")[-4000:]))
    return r.stdout.decode("utf-8", "replace")


def sdk_view(tc, stack, directory=""):
    """What Microsoft's Gen2 SDK sees in the filesystem: {name: {...}} (see gen2_check_client.js)."""
    out = run_node(tc, "gen2_check_client.js", {
        "DP_GEN2_URL": stack.gen2.url, "DP_GEN2_ACCOUNT": stack.gen2.account, "DP_GEN2_KEY": stack.gen2.key,
        "DP_GEN2_FS": proxylib.FS, "DP_GEN2_DIR": directory})
    return json.loads(out.strip().splitlines()[-1])["paths"]


def check_both_sides(tc, stack, root="/"):
    """wait_applied; compare tool; then the SDK's view of Gen2 against Gen1 read directly."""
    stack.assert_same(tc, root)
    g1 = proxylib.walk_gen1(stack, root)
    g1.pop("", None)
    rel_root = root.strip("/")
    view = sdk_view(tc, stack, rel_root)
    sdk = {(name[len(rel_root):].lstrip("/") if rel_root else name): v for name, v in view.items()}
    diffs = []
    for rel in sorted(set(g1) | set(sdk)):
        a, b = g1.get(rel), sdk.get(rel)
        if a is None or b is None:
            diffs.append("%s: only on %s" % (rel, "Gen2 (SDK)" if a is None else "Gen1"))
            continue
        want = {"type": a.kind, "sha256": a.sha, "permission": "%04o" % a.perm, "owner": a.owner,
                "group": a.group, "acl": a.acl}
        got = {k: b.get(k) for k in want}
        if a.kind == "FILE":
            want["length"], got["length"] = a.length, b.get("length")
        for k in want:
            if want[k] != got[k]:
                diffs.append("%s: %s Gen1=%r Gen2(SDK)=%r" % (rel, k, want[k], got[k]))
    tc.assertEqual(diffs, [], "Gen2 as Microsoft's SDK sees it differs from Gen1")
    tc.assertTrue(g1, "nothing was written under %s" % root)


class ProxyWebhdfsAdls(unittest.TestCase):
    """npm webhdfs through the proxy; the proxy's upstream is Gen1 in the adls dialect."""
    DIALECT = "adls"

    def test_webhdfs_client(self):
        s = proxylib.Stack(dialect=self.DIALECT)
        try:
            host, port = s.proxy.listen.rsplit(":", 1)
            before = s.g1_counters()
            run_node(self, "webhdfs_client.js", {"DP_GEN1_HOST": host, "DP_GEN1_PORT": port,
                                                 "DP_GEN1_DIALECT": self.DIALECT})
            # the client really went through the proxy to Gen1
            delta = proxylib.counter_delta(before, s.g1_counters())
            for op in ("CREATE", "APPEND", "RENAME", "SETPERMISSION", "SETOWNER", "DELETE"):
                self.assertTrue(any(k.split(" ")[-1] == op for k in delta), (op, delta))
            final = "/wh-%s/final.txt" % self.DIALECT
            self.assertEqual(s.g1_read(final), ("webhdfs-%s-final" % self.DIALECT).encode())
            check_both_sides(self, s, "/wh-" + self.DIALECT)
            self.assertEqual(s.g2_read(final), ("webhdfs-%s-final" % self.DIALECT).encode())
        finally:
            s.close()


class ProxyWebhdfsHttps(unittest.TestCase):
    """npm webhdfs over HTTPS (its protocol option) through the proxy's TLS front, Gen1 and Gen2 emulators
    behind TLS too, all certificates from a CA made for the test (Node trusts it via NODE_EXTRA_CA_CERTS)."""

    def test_webhdfs_client_over_tls(self):
        import tempfile
        import emulib
        import tlslib
        d = tempfile.mkdtemp(prefix="dp-webhdfs-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        ca = tlslib.Pki(d)
        front, emu = ca.issue("proxy"), ca.issue("emulator")
        emulib.SSL_CONTEXT = ca.context()
        self.addCleanup(setattr, emulib, "SSL_CONTEXT", None)
        tls_args = {"extra_args": ["--tls-cert", emu[0], "--tls-key", emu[1]]}
        s = proxylib.Stack(dialect="adls", gen1_kw=tls_args, gen2_kw=tls_args,
                           config={"tls": {"cert_file": front[0], "key_file": front[1]},
                                   "gen1": {"tls": {"ca_file": ca.cert}}, "gen2": {"tls": {"ca_file": ca.cert}}})
        try:
            self.assertTrue(s.proxy.url.startswith("https://"))
            host, port = s.proxy.listen.rsplit(":", 1)
            before = s.g1_counters()
            run_node(self, "webhdfs_client.js", {"DP_GEN1_HOST": host, "DP_GEN1_PORT": port, "DP_GEN1_DIALECT": "adls",
                                                 "DP_GEN1_PROTOCOL": "https", "NODE_EXTRA_CA_CERTS": ca.cert})
            delta = proxylib.counter_delta(before, s.g1_counters())
            for op in ("CREATE", "APPEND", "RENAME", "DELETE"):
                self.assertTrue(any(k.split(" ")[-1] == op for k in delta), (op, delta))
            s.wait_applied()
            s.assert_same(self, "/wh-adls")
            self.assertEqual(s.g2_read("/wh-adls/final.txt"), b"webhdfs-adls-final")
        finally:
            s.close()


class ProxyWebhdfsHadoop(ProxyWebhdfsAdls):
    """npm webhdfs through the proxy; the proxy's upstream is Gen1 in the hadoop dialect."""
    DIALECT = "hadoop"


class ProxyArmDatalakeStore(unittest.TestCase):
    """npm azure-arm-datalake-store through the proxy (client.baseUri = the proxy's URL)."""

    def test_arm_client(self):
        s = proxylib.Stack(dialect="adls")
        try:
            before = s.g1_counters()
            run_node(self, "arm_datalake_store_client.js", {"DP_GEN1_URL": s.proxy.url})
            delta = proxylib.counter_delta(before, s.g1_counters())
            for op in ("CREATE", "APPEND", "CONCURRENTAPPEND", "MSLISTSTATUS", "RENAME", "SETACL",
                       "MODIFYACLENTRIES", "REMOVEACLENTRIES"):
                self.assertTrue(any(k.split(" ")[-1] == op for k in delta), (op, delta))
            self.assertEqual(s.g1_read("/arm-final.txt"), b"arm-final")
            check_both_sides(self, s, "/")
            self.assertEqual(s.g2_read("/arm-final.txt"), b"arm-final")
        finally:
            s.close()


import test_python_adls as tpa  # noqa: E402  (sets a throwaway HOME for the client first)

atexit.register(shutil.rmtree, tpa._HOME, True)   # whichever classes ran


class ProxyPythonAdls(tpa.PythonAdlsClient):
    """The whole Debian python3-azure-datalake-store suite, with adl.azure.url pointing at the proxy.
    The suite's op-count checks read the Gen1 emulator's counters, so they prove the calls went
    through the proxy to Gen1; the last test compares both sides."""

    @classmethod
    def setUpClass(cls):
        cls.stack = proxylib.Stack(dialect="adls")
        cls.emu = cls.stack.gen1
        token = tpa.lib.DataLakeCredential({"tokenType": "Bearer", "access": "x", "time": tpa.time.time(),
                                            "expiresIn": 10 ** 9})
        cls.adl = tpa.core.AzureDLFileSystem(token=token, store_name="proxy")
        cls.adl.azure.url = cls.stack.proxy.url + "/"
        cls.local = tpa.tempfile.mkdtemp(prefix="dp-adls-local-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.local, ignore_errors=True)
        shutil.rmtree(tpa._HOME, ignore_errors=True)
        cls.stack.close()

    def test_zz_both_sides_equal(self):
        """Runs last (unittest sorts by name): everything the suite left behind is equal on Gen2."""
        check_both_sides(self, self.stack, "/py")


if __name__ == "__main__":
    unittest.main(verbosity=2)
