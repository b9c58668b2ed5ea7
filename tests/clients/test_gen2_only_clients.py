"""Real clients through the proxy in phase gen2-only, with no Gen1 running (issue 13): the published
clients, unchanged, pointed at the proxy, which serves the WebHDFS API on the Gen2 emulator alone.

  npm webhdfs 1.2.0 (two-step 307)        -> proxy (gen2-only) -> Gen2 emulator
  npm azure-arm-datalake-store 0.4.2      -> proxy (gen2-only) -> Gen2 emulator
  Debian python3-azure-datalake-store     -> proxy (gen2-only) -> Gen2 emulator
                                             (the whole test_python_adls.py suite, unchanged; its request
                                             counts come from the proxy's dualpipe_requests_total)

The proxy's configuration has no gen1 section at all. Each client script asserts what its user relies on;
afterwards Gen2, read directly and through Microsoft's @azure/storage-file-datalake SDK
(gen2_check_client.js), holds exactly what the clients wrote.

Environment: as test_proxy_clients.py. Run one class: python3 test_gen2_only_clients.py G2OnlyWebhdfs
"""
import atexit
import hashlib
import os
import shutil
import sys
import tempfile
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import emulib  # noqa: E402
import proxylib  # noqa: E402
from test_proxy_clients import run_node, sdk_view  # noqa: E402


class G2OnlyStack:
    """Gen2 emulator (filesystem created) + the proxy in gen2-only; no Gen1, not even in the configuration."""

    def __init__(self):
        self.gen2 = self.proxy = None
        self.spool = tempfile.mkdtemp(prefix="dp-spool-")
        try:
            self.gen2 = emulib.Emu("gen2")
            r = self.gen2.gen2("PUT", "%s/%s?resource=filesystem" % (proxylib.A, proxylib.FS))
            if r.status != 201:
                raise RuntimeError("creating the filesystem: %r" % r)
            cfg = proxylib.base_config("", "adls", self.gen2.url, self.spool)
            cfg["phase"] = "gen2-only"
            del cfg["gen1"]  # no Gen1 in the configuration at all
            self.proxy = proxylib.Proxy(cfg)
        except BaseException:
            self.close()
            raise

    def g2_read(self, path):
        r = self.gen2.gen2("GET", "%s/%s/%s" % (proxylib.A, proxylib.FS, urllib.parse.quote(path.lstrip("/"))))
        return r.body if r.status == 200 else None

    def requests_by_op(self):
        """{"requests": {"- OP": n}}: the proxy's dualpipe_requests_total, shaped like the emulator's counters."""
        out = {}
        for k, v in self.proxy.metrics().items():
            if k.startswith("dualpipe_requests_total{"):
                op = k.split('op="', 1)[1].split('"', 1)[0]
                out["- " + op] = out.get("- " + op, 0) + int(v)
        return {"requests": out}

    def close(self):
        errors = []
        for part in (self.proxy, self.gen2):
            if part is None:
                continue
            try:
                part.close()
            except AssertionError as e:
                errors.append(str(e))
        shutil.rmtree(self.spool, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))


def check_gen2(tc, stack, root, expect):
    """The SDK's view of Gen2 under root holds each file of expect {rel path: bytes} with those bytes."""
    view = sdk_view(tc, stack, root.strip("/"))
    for rel, data in expect.items():
        name = (root.strip("/") + "/" + rel).strip("/")
        tc.assertIn(name, view, sorted(view)[:20])
        tc.assertEqual(view[name].get("sha256"), hashlib.sha256(data).hexdigest(), name)
        tc.assertEqual(stack.g2_read(name), data)


class G2OnlyWebhdfs(unittest.TestCase):
    """npm webhdfs (Hadoop two-step: 307 back to the proxy, then the data) in gen2-only."""

    def test_webhdfs_client(self):
        s = G2OnlyStack()
        try:
            host, port = s.proxy.listen.rsplit(":", 1)
            run_node(self, "webhdfs_client.js", {"DP_GEN1_HOST": host, "DP_GEN1_PORT": port,
                                                 "DP_GEN1_DIALECT": "gen2-only"})
            seen = s.requests_by_op()["requests"]
            for op in ("CREATE", "APPEND", "RENAME", "SETPERMISSION", "SETOWNER", "DELETE", "OPEN"):
                self.assertIn("- " + op, seen)
            check_gen2(self, s, "/wh-gen2-only", {"final.txt": b"webhdfs-gen2-only-final"})
        finally:
            s.close()


class G2OnlyArmDatalakeStore(unittest.TestCase):
    """npm azure-arm-datalake-store (ADLS one-step, CONCURRENTAPPEND, MSLISTSTATUS, ACLs) in gen2-only."""

    def test_arm_client(self):
        s = G2OnlyStack()
        try:
            run_node(self, "arm_datalake_store_client.js", {"DP_GEN1_URL": s.proxy.url})
            seen = s.requests_by_op()["requests"]
            for op in ("CREATE", "APPEND", "CONCURRENTAPPEND", "MSLISTSTATUS", "RENAME", "SETACL"):
                self.assertIn("- " + op, seen)
            check_gen2(self, s, "/", {"arm-final.txt": b"arm-final"})
        finally:
            s.close()


def g2primary_stack(tc):
    """Gen1 emulator + Gen2 emulator + the proxy in phase gen2-primary (writers answered by Gen2, writes
    mirrored to Gen1)."""
    s = proxylib.Stack(config={"phase": "gen2-primary",
                               "applier": {"backoff_base_ms": 50, "backoff_cap_ms": 400, "breaker_probe_ms": 200}})
    tc.addCleanup(s.close)
    return s


def g2primary_same(tc, s, root):
    """Gen1 (the mirror's copy) equals Gen2 under root, owners and groups aside (README "gen2-primary")."""
    s.wait_drained(60)
    diffs = [d for d in s.compare(root) if ": owner " not in d and ": group " not in d]
    tc.assertEqual(diffs, [])


class G2PrimaryArmDatalakeStore(unittest.TestCase):
    """npm azure-arm-datalake-store (ADLS one-step, CONCURRENTAPPEND, MSLISTSTATUS, ACLs) in gen2-primary:
    answered by Gen2, Gen1 converges."""

    def test_arm_client(self):
        s = g2primary_stack(self)
        r = s.proxy.webhdfs("PUT", "/arm", "MKDIRS", permission="755")  # made explicitly: README, limits
        self.assertEqual(r.status, 200, r)
        run_node(self, "arm_datalake_store_client.js", {"DP_GEN1_URL": s.proxy.url})
        check_gen2(self, s, "/", {"arm-final.txt": b"arm-final"})
        g2primary_same(self, s, "/arm")
        self.assertEqual(s.g1_read("/arm-final.txt"), b"arm-final")


class G2PrimaryWebhdfs(unittest.TestCase):
    """npm webhdfs (Hadoop two-step: 307 back to the proxy, then the data) in gen2-primary."""

    def test_webhdfs_client(self):
        s = g2primary_stack(self)
        r = s.proxy.webhdfs("PUT", "/wh-gen2-primary", "MKDIRS", permission="755")
        self.assertEqual(r.status, 200, r)
        host, port = s.proxy.listen.rsplit(":", 1)
        run_node(self, "webhdfs_client.js", {"DP_GEN1_HOST": host, "DP_GEN1_PORT": port,
                                             "DP_GEN1_DIALECT": "gen2-primary"})
        g2primary_same(self, s, "/wh-gen2-primary")


import test_python_adls as tpa  # noqa: E402  (sets a throwaway HOME for the client first)

atexit.register(shutil.rmtree, tpa._HOME, True)


class G2OnlyPythonAdls(tpa.PythonAdlsClient):
    """The whole Debian python3-azure-datalake-store suite against the proxy in gen2-only."""

    @classmethod
    def setUpClass(cls):
        cls.stack = G2OnlyStack()
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

    def counters(self):
        return self.stack.requests_by_op()

    def test_zz_gen2_holds_what_the_client_sees(self):
        """Runs last: every file the client lists under /py reads the same from Gen2 directly."""
        names = [p for p in self.adl.walk("/py")]
        self.assertTrue(names)
        for p in names:
            with self.adl.open(p, "rb") as f:
                data = f.read()
            self.assertEqual(self.stack.g2_read(p), data, p)


if __name__ == "__main__":
    unittest.main(verbosity=2)
