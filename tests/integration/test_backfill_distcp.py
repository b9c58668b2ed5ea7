#!/usr/bin/env python3
"""`dualpipe backfill --plan distcp` / `--settle FENCE` against the emulators, real processes on loopback.

The bulk copy DistCp would make on a Hadoop cluster is made here by a plain copier in this file: it
reads the plan's list and copies each listed entry, whole, from the Gen1 emulator to the Gen2 emulator
directly (owner, group and permission kept, as `distcp -pugp` does; nothing else), slowly, while writers
create, append, overwrite, rename, delete and make directories under the tree through the proxy. It
even copies an old version of a file after the proxy has put the newer one on Gen2. Then:

- the daemon is killed (kill -9) and started again: the paths written since the fence survive;
- `--settle FENCE` resyncs them: both stores are equal (an independent walk of both emulators) and
  `dualpipe verify` exits 0; every writer's write reached Gen1 once;
- settling again is a no-op (no Gen2 write);
- a malformed FENCE, a fence of another daemon (another journal), a dropped fence, a damaged fence file
  (the daemon still starts), a plan of a path outside every mapping: each refused with a clear message.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

DUALPIPE = proxylib.DUALPIPE_BIN


class PlainCopier:
    """What `hadoop distcp -pugp -i -f LIST TARGET` does with the plan's list, on the emulators: each
    listed source (a file or a whole directory) goes to TARGET/<its name>; a source gone meanwhile is
    skipped, and so is a file whose copy fails (-i). before_write(path) runs between the read of a file on Gen1 and its write to Gen2."""

    def __init__(self, stack, list_file, prefix, target_dir, delay=0.02, before_write=None):
        self.s, self.prefix, self.target_dir = stack, prefix, target_dir.strip("/")
        with open(list_file) as f:
            self.sources = [ln.rstrip("\n") for ln in f if ln.strip()]
        self.delay, self.before_write = delay, before_write
        self.files = self.dirs = self.skipped = self.failed = 0

    def set_meta(self, g2path, st):
        perm = "0%s" % st["permission"]
        r = self.s.g2("PATCH", g2path, "action=setAccessControl",
                      headers={"x-ms-owner": st["owner"], "x-ms-group": st["group"], "x-ms-permissions": perm})
        return r.status == 200

    def copy_file(self, g1path, g2path):
        r = self.s.g1("GET", g1path, "OPEN", read="true")
        st = self.s.g1_status(g1path)
        if r.status == 404 or st is None:
            self.skipped += 1
            return
        data = r.body
        if self.before_write:
            self.before_write(g1path)
        time.sleep(self.delay)
        # the applier may write the same file meanwhile: a step that fails is that file's failure (-i)
        ok = self.s.g2("PUT", g2path, "resource=file").status == 201
        if ok and data:
            ok = self.s.g2("PATCH", g2path, "action=append&position=0", data).status == 202
        ok = ok and self.s.g2("PATCH", g2path, "action=flush&position=%d" % len(data)).status == 200
        ok = ok and self.set_meta(g2path, st)
        if ok:
            self.files += 1
        else:
            self.failed += 1

    def copy_tree(self, g1path, g2path):
        st = self.s.g1_status(g1path)
        if st is None:
            self.skipped += 1
            return
        if st["type"] == "FILE":
            return self.copy_file(g1path, g2path)
        if self.s.g2("PUT", g2path, "resource=directory").status == 201 and self.set_meta(g2path, st):
            self.dirs += 1
        else:
            self.failed += 1
        r = self.s.g1("GET", g1path, "LISTSTATUS")
        if r.status == 404:
            return
        for e in r.json()["FileStatuses"]["FileStatus"]:
            self.copy_tree(g1path + "/" + e["pathSuffix"], g2path + "/" + e["pathSuffix"])

    def run(self):
        for src in self.sources:
            assert src.startswith(self.prefix + "/"), (src, self.prefix)
            g1path = src[len(self.prefix):]
            self.copy_tree(g1path, self.target_dir + "/" + g1path.rsplit("/", 1)[1])


class DistcpPlanSettle(unittest.TestCase):
    dialect = "adls"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dp-distcp-")
        try:
            self.s = proxylib.Stack(dialect=self.dialect)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.other = None

    def tearDown(self):
        try:
            if self.other:
                self.other.close()
            self.s.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def config_file(self, config=None):
        p = os.path.join(self.tmp, "dualpipe.json")
        with open(p, "w") as f:
            json.dump(config or self.s.config, f)
        return p

    def backfill(self, *args, proxy=None, timeout=60):
        proxy = proxy or self.s.proxy
        admin = proxy.admin_url.replace("http://", "")
        argv = [DUALPIPE, "backfill", *args, "--config", self.config_file(), "--admin", admin]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def g1(self, method, path, op, body=None, **params):
        r = self.s.g1(method, path, op, body, **params)
        self.assertLess(r.status, 300, (op, path, r))

    def pw(self, method, path, op, data=None, **params):
        p = self.s.proxy
        r = proxylib.write_data(p, method, path, op, data, **params) if data is not None else \
            p.webhdfs(method, path, op, **params)
        self.assertLess(r.status, 300, (op, path, r))

    def plant(self):
        """The tree before the proxy: written on Gen1 behind its back."""
        for d in ("/data", "/data/a", "/data/a/sub", "/data/b", "/data/empty-dir", "/data/gone-dir"):
            self.g1("PUT", d, "MKDIRS")
        self.g1("PUT", "/data/a", "SETPERMISSION", permission="750")
        for i in range(12):
            self.g1("PUT", "/data/a/f%02d" % i, "CREATE", b"a%d" % i * (i * 50), overwrite="true", write="true")
        for i in range(6):
            self.g1("PUT", "/data/a/sub/s%d" % i, "CREATE", b"s" * (i * 300), overwrite="true", write="true")
        for i in range(8):
            self.g1("PUT", "/data/b/g%d" % i, "CREATE", b"b" * (i * 77), overwrite="true", write="true")
        self.g1("PUT", "/data/gone-dir/x", "CREATE", b"x", overwrite="true", write="true")
        self.g1("PUT", "/data/top", "CREATE", b"top-level file", overwrite="true", write="true")
        self.g1("PUT", "/data/stale", "CREATE", b"old version " * 100, overwrite="true", write="true")

    def writers(self, stop, done):
        """Through the proxy, under /data, until stop (at least 32 ops): every kind of write."""
        n = 0
        try:
            while not stop.is_set() or n < 32:
                k = n % 8
                if k == 0:
                    self.pw("PUT", "/data/b/new%d" % n, "CREATE", b"n" * 200, overwrite="true")
                elif k == 1:
                    self.pw("POST", "/data/a/f%02d" % ((n // 8) % 6), "APPEND", b"+append%d" % n)
                elif k == 2:
                    self.pw("PUT", "/data/a/sub/s%d" % ((n // 8) % 6), "CREATE", b"over%d" % n, overwrite="true")
                elif k == 3:
                    self.pw("PUT", "/data/b/new%d" % (n - 3), "RENAME", destination="/data/a/moved%d" % n)
                elif k == 4:
                    self.pw("DELETE", "/data/a/moved%d" % (n - 1), "DELETE")
                elif k == 5:
                    self.pw("PUT", "/data/mk/p%d/q/r" % n, "MKDIRS")     # parents made on the way
                elif k == 6:
                    self.pw("PUT", "/data/b/g%d" % ((n // 8) % 8), "SETPERMISSION", permission="600")
                else:
                    self.pw("PUT", "/data/new-top%d" % n, "CREATE", b"t", overwrite="true", write="true")
                n += 1
                time.sleep(0.01)
        except Exception as e:  # noqa: BLE001 - reported by the test
            done.append(e)
        done.append(n)

    def test_plan_copy_settle_verify(self):
        s = self.s
        self.plant()
        list_file = os.path.join(self.tmp, "distcp.list")
        p = self.backfill("/data", "--plan", "distcp", "--plan-file", list_file)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(list_file + ".json") as f:
            plan = json.load(f)
        fence = plan["fence"]
        self.assertIn(fence, p.stdout)
        self.assertIn("hadoop distcp -pugp -i -f", p.stdout)
        self.assertIn("--settle " + fence, p.stdout)
        gen1_host = urllib.parse.urlsplit(s.gen1.url).netloc
        self.assertEqual(plan["source_prefix"], "webhdfs://" + gen1_host)
        self.assertTrue(plan["target"].startswith("abfss://%s@" % proxylib.FS), plan)
        self.assertTrue(plan["target"].endswith("/data"), plan)
        # PATH's own entries, directories (the empty one too) and files: DistCp copies each whole
        with open(list_file) as f:
            names = sorted(ln.strip().rsplit("/", 1)[1] for ln in f)
        self.assertEqual(names, ["a", "b", "empty-dir", "gone-dir", "stale", "top"])
        self.assertEqual((plan["entries"], plan["files"], plan["dirs"]), (6, 12 + 6 + 8 + 3, 5), plan)
        # the target directory exists on Gen2 (made through the daemon), so each source goes under it
        self.assertIsNotNone(s.g2_props("data"))
        self.assertEqual(s.proxy.metrics().get('dualpipe_fences{state="open"}'), 1.0)

        s.wait_drained()
        s.gen1.admin("DELETE", "/counters")
        # the copier reads 'stale', the proxy then overwrites it and the new version reaches Gen2, then
        # the copier writes the old version over it: only the settle can repair that
        # and it reads gone-dir/x, the proxy deletes gone-dir on both sides, then the copier brings x back
        def until(cond, what):
            deadline = time.time() + 20
            while not cond():
                self.assertLess(time.time(), deadline, what)
                time.sleep(0.02)

        def before_write(path):
            if path == "/data/stale":
                self.pw("PUT", "/data/stale", "CREATE", b"new version", overwrite="true", write="true")
                until(lambda: s.g2("GET", "data/stale").body == b"new version", "the overwrite never reached Gen2")
            elif path == "/data/gone-dir/x":
                self.pw("DELETE", "/data/gone-dir", "DELETE", recursive="true")
                until(lambda: s.g2_props("data/gone-dir") is None, "the delete never reached Gen2")
        copier = PlainCopier(s, list_file, plan["source_prefix"], "data", before_write=before_write)
        stop, done = threading.Event(), []
        t = threading.Thread(target=self.writers, args=(stop, done))
        t.start()
        try:
            copier.run()
        finally:
            stop.set()
            t.join(60)
        self.assertFalse(t.is_alive())
        self.assertEqual(len(done), 1, done)
        nops = done[0]
        s.wait_drained()
        self.assertEqual(s.g2_read("data/stale"), b"old version " * 100)     # the copier's damage
        self.assertEqual(s.g2_read("data/gone-dir/x"), b"x")
        self.assertNotEqual(s.compare("/data"), [])

        # kill -9 between plan and settle: what the daemon recorded since the fence survives
        s.proxy.restart(kill=True)
        p = self.backfill("--settle", fence, "--json", os.path.join(self.tmp, "settle.json"))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(os.path.join(self.tmp, "settle.json")) as f:
            rep = json.load(f)
        self.assertEqual(rep["failed"]["count"], 0, rep)
        self.assertGreaterEqual(rep["paths"], nops // 4, rep)
        self.assertGreaterEqual(rep["parents"], 1, rep)                       # /data/mk, /data/mk/pN, ...
        self.assertEqual(rep["fence_state"]["state"], "settled", rep)
        self.assertIn("Settled", p.stdout)
        m = s.proxy.metrics()
        self.assertEqual((m['dualpipe_fences{state="open"}'], m["dualpipe_fence_log_bytes"]), (0.0, 0.0), m)
        s.wait_drained()
        s.assert_same(self, "/data")
        self.assertEqual(s.g2_read("data/stale"), b"new version")
        self.assertIsNone(s.g2_props("data/gone-dir"))
        admin = s.proxy.admin_url.replace("http://", "")
        v = subprocess.run([DUALPIPE, "verify", "/data", "--config", self.config_file(), "--admin", admin],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        # every writer's write reached Gen1 once (a settle never writes Gen1)
        g1 = s.g1_counters()
        creates = sum(c for k, c in g1.items() if k.startswith("PUT CREATE"))
        appends = sum(c for k, c in g1.items() if k.startswith("POST APPEND"))
        steps = 2 if self.dialect == "hadoop" else 1     # namenode step + datanode step
        self.assertEqual(creates, steps * (1 + sum(1 for i in range(nops) if i % 8 in (0, 2, 7))), g1)
        self.assertEqual(appends, steps * sum(1 for i in range(nops) if i % 8 == 1), g1)

        # settling again: a no-op, no Gen2 write
        s.gen2.admin("DELETE", "/counters")
        p = self.backfill("--settle", fence)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("already", p.stdout)
        s.wait_drained()
        writes = {k: c for k, c in s.g2_counters().items() if not k.startswith(("HEAD", "GET"))}
        self.assertEqual(writes, {})

    def test_refusals(self):
        s = self.s
        self.g1("PUT", "/data/x", "MKDIRS")
        self.g1("PUT", "/data/x/f", "CREATE", b"f", overwrite="true", write="true")
        lst = os.path.join(self.tmp, "l")
        # a malformed token: a usage error, the daemon is not even asked
        p = self.backfill("--settle", "not-a-fence")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("not a fence token", p.stderr)
        # a well-formed token this daemon never issued
        p = self.backfill("--settle", "dpf1-%s-1-5" % ("0" * 24))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("another dualpipe", p.stderr)
        # a fence taken by another daemon (its own journal) on the same stores: refused here
        cfg = json.loads(json.dumps(s.config))
        cfg["spool"]["dir"] = os.path.join(self.tmp, "other-spool")
        self.other = proxylib.Proxy(cfg)
        p = self.backfill("/data", "--plan", "distcp", "--plan-file", lst, proxy=self.other)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(lst + ".json") as f:
            other_fence = json.load(f)["fence"]
        p = self.backfill("--settle", other_fence)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("taken by another dualpipe", p.stderr)
        # a fence dropped (an abandoned plan) is gone
        p = self.backfill("--drop-fence", other_fence, proxy=self.other)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = self.backfill("--settle", other_fence, proxy=self.other)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("not known", p.stderr)
        # a damaged fence file: the daemon still starts and serves writes, fences are refused saying why
        with open(os.path.join(cfg["spool"]["dir"], "journal", "fence.json"), "w") as f:
            f.write("{damaged")
        self.other.restart()
        r = proxylib.write_data(self.other, "PUT", "/data/x/g", "CREATE", b"g", overwrite="true")
        self.assertLess(r.status, 300, r)
        p = self.backfill("/data", "--plan", "distcp", "--plan-file", lst, proxy=self.other)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("fence file cannot be read", p.stderr)
        # PATH other than the fence's
        p = self.backfill("/data", "--plan", "distcp", "--plan-file", lst)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(lst + ".json") as f:
            fence = json.load(f)["fence"]
        p = self.backfill("/data/x", "--settle", fence)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("was taken on /data", p.stderr)
        # usage
        p = self.backfill("/data", "--plan", "distcp")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--plan-file", p.stderr)
        p = self.backfill("/data", "--plan", "rsync", "--plan-file", lst)
        self.assertEqual(p.returncode, 2, p.stderr)
        # a plan of a path outside every mapping
        s.config["gen2"]["mappings"] = [{"gen1_prefix": "/data", "filesystem": proxylib.FS, "prefix": "data"}]
        p = self.backfill("/elsewhere", "--plan", "distcp", "--plan-file", lst)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("outside every mapping", p.stderr)
        p = subprocess.run([DUALPIPE, "backfill", "--help"], capture_output=True, text=True, timeout=10)
        self.assertIn("--settle FENCE", p.stdout)


class DistcpPlanSettleHadoop(DistcpPlanSettle):
    """The same flow against a Hadoop namenode (LISTSTATUS_BATCH walk, two-step writes)."""
    dialect = "hadoop"
    test_refusals = None


if __name__ == "__main__":
    unittest.main()
