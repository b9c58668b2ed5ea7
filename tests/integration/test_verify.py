#!/usr/bin/env python3
"""`dualpipe verify` against the emulators (both Gen1 dialects), with real processes on loopback.

- a tree written through the proxy verifies equal; with --deep every file's content is read and
  verified (none size-only); without --deep they are reported size-only, never verified;
- every kind of difference planted behind the proxy's back is found at its path (a changed byte,
  found by --deep; a missing file, an extra file, a type mismatch, a changed ACL, a changed owner, a
  changed permission, a changed modification time), the exit status says "not equal", and --repair
  journals resyncs through the daemon's admin port and ends equal (checked by the independent
  compare tool of proxylib too);
- verify while a writer keeps writing through the proxy reports no difference (in-flight paths are
  rechecked once they settle);
- Gen2 failing mid-run: a clear, resumable failure; the rerun resumes from the cursor and completes.
"""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

DUALPIPE = proxylib.DUALPIPE_BIN
GUID_ALICE = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
GUID_HADOOP = "9a7c6d2e-1b3f-4c5d-8e9f-0a1b2c3d4e5f"
GUID_BOB = "5b2d1c3e-0000-4000-8000-00000000b0b0"
GUID_HDFS = "00000000-0000-4000-8000-000000000001"
GUID_SUPER = "00000000-0000-4000-8000-000000000002"


class VerifyBase(unittest.TestCase):
    dialect = "adls"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dp-verify-")
        idmap = os.path.join(self.tmp, "idmap.txt")
        with open(idmap, "w") as f:
            f.write("user alice %s\nuser bob %s\ngroup hadoop %s\nuser hdfs %s\ngroup supergroup %s\n"
                    % (GUID_ALICE, GUID_BOB, GUID_HADOOP, GUID_HDFS, GUID_SUPER))
        over = {"gen2": {"identity_map": idmap}}
        gen1_kw = {"extra_args": ["--ls-limit", "3"]} if self.dialect == "hadoop" else {}
        self.s = proxylib.Stack(dialect=self.dialect, config=over, gen1_kw=gen1_kw)

    def tearDown(self):
        try:
            self.s.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- through the proxy ----
    def wp(self, method, path, op, body=None, **params):
        r = self.s.proxy.webhdfs(method, path, op, body, **params)
        self.assertLess(r.status, 300, (op, path, r))
        return r

    def put(self, path, data):
        r = proxylib.write_data(self.s.proxy, "PUT", path, "CREATE", data, overwrite="true")
        self.assertLess(r.status, 300, (path, r))

    def tree(self):
        """/t: nested directories, files of several sizes (one of several MiB), an ACL, owners, times."""
        self.wp("PUT", "/t/a/b", "MKDIRS")
        self.wp("PUT", "/t/c", "MKDIRS")
        for i, n in enumerate([0, 10, 5000, 70000]):
            self.put("/t/a/f%d" % i, bytes((i + k) % 251 for k in range(n)))
            self.put("/t/c/g%d" % i, b"g" * n)
        self.put("/t/a/b/big", os.urandom(3 << 20))        # 6 MiB: two --deep chunks
        r = proxylib.write_data(self.s.proxy, "POST", "/t/a/b/big", "APPEND", os.urandom(3 << 20))
        self.assertLess(r.status, 300, r)
        self.put("/t/a/b/odd name %", b"odd")
        self.wp("PUT", "/t/a", "SETOWNER", owner="alice", group="hadoop")
        self.wp("PUT", "/t/a/f1", "SETOWNER", owner="alice", group="hadoop")
        self.wp("PUT", "/t/a/f2", "MODIFYACLENTRIES", aclspec="user:alice:rw-")
        self.wp("PUT", "/t/c/g1", "SETTIMES", modificationtime="1600000000000")
        self.wp("PUT", "/t/c/g2", "SETTIMES", modificationtime="1600000001000")
        self.s.wait_drained()

    def old_digest(self, g2path, data):
        """Gen2's properties of g2path as a version before journal format 1.1 left a CREATE's: the SHA-256 of
        the body (dualpipe_sha256) and no dualpipe_crc32c. Returns the properties written."""
        s = self.s
        kept = [kv for kv in s.g2("HEAD", g2path).header("x-ms-properties").split(",")
                if kv.split("=", 1)[0] not in ("dualpipe_crc32c", "dualpipe_sha256")]
        val = "sha256=%s,len=%d" % (hashlib.sha256(data).hexdigest(), len(data))
        props = ",".join(kept + ["dualpipe_sha256=" + base64.b64encode(val.encode()).decode()])
        self.assertEqual(s.g2("PATCH", g2path, "action=setProperties", headers={"x-ms-properties": props}).status, 200)
        return props

    # ---- the command ----
    def config_file(self):
        p = os.path.join(self.tmp, "dualpipe.json")
        with open(p, "w") as f:
            json.dump(self.s.config, f)
        return p

    def verify(self, *args, timeout=120, settle=20):
        out = os.path.join(self.tmp, "report.json")
        if os.path.exists(out):
            os.unlink(out)
        admin = self.s.proxy.admin_url.replace("http://", "")
        p = subprocess.run([DUALPIPE, "verify", *args, "--config", self.config_file(), "--admin", admin,
                            "--json", out, "--settle-timeout", str(settle)],
                           capture_output=True, text=True, timeout=timeout)
        rep = None
        if os.path.exists(out):
            with open(out) as f:
                rep = json.load(f)
        return p, rep

    def kinds(self, rep, section="result"):
        return {(d["path"], d["kind"]) for d in rep[section]["differences"]}


class VerifyEqual(VerifyBase):
    def test_equal_tree_deep_and_size_only(self):
        self.tree()
        files = 10
        # one file as an older version recorded it: a SHA-256 only (verify reads it as before)
        self.old_digest("t/a/f2", bytes((2 + k) % 251 for k in range(5000)))
        p, rep = self.verify("/t", "--deep", "--page-size", "2")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        c = rep["result"]["counts"]
        self.assertTrue(rep["equal"])
        self.assertEqual(c["files"], files)
        self.assertEqual(c["content_verified"], files)
        self.assertEqual(c["size_only"], 0)
        self.assertEqual(c["mtime_verified"] + c["mtime_not_recorded"], files)
        self.assertGreaterEqual(c["mtime_verified"], 2)     # the two SETTIMES at least
        self.assertGreaterEqual(c["acl_compared"], 1)
        self.assertGreaterEqual(c["bytes_read"], 2 * (6 << 20))
        self.assertIn("EQUAL", p.stdout)
        self.assertEqual(c["digest_verified"], files)  # every file matched its digest, the appended one too
        # --digest: Gen2 read only, checked against the digests the proxy recorded: the CRC-32C of each
        # CREATE and the one that followed the APPEND of /t/a/b/big (dualpipe_crc32c), the SHA-256 of f2
        p, rep = self.verify("/t", "--digest")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        c = rep["result"]["counts"]
        self.assertEqual((c["digest_recorded"], c["digest_verified"], c["size_only"], c["content_verified"]),
                         (files, files, 0, 0))
        self.assertEqual(c["bytes_read"], 2 * (0 + 10 + 5000 + 70000) + 3 + (6 << 20))
        # neither: nothing read, every file size-only (never "verified")
        p, rep = self.verify("/t")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        c = rep["result"]["counts"]
        self.assertEqual((c["content_verified"], c["digest_verified"], c["size_only"], c["bytes_read"]),
                         (0, 0, files, 0))
        self.assertIn("size-only %d" % files, p.stdout)

    def test_usage_and_bad_input(self):
        p = subprocess.run([DUALPIPE, "verify", "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--deep", p.stdout)
        p = subprocess.run([DUALPIPE, "verify", "/t"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([DUALPIPE, "verify", "--config", self.config_file(), "--threads", "0"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--threads", p.stderr)
        # an unusable cursor: refused with the walker's message, exit 1
        self.wp("PUT", "/t", "MKDIRS")
        self.s.wait_drained()
        cursor = os.path.join(self.tmp, "cursor")
        with open(cursor, "w") as f:
            f.write("garbage\n")
        p, _ = self.verify("/t", "--cursor", cursor)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a dualpipe walk cursor", p.stderr)
        os.unlink(cursor)
        # not absolute: a usage error
        p, _ = self.verify("t")
        self.assertEqual(p.returncode, 2)


class VerifyDifferences(VerifyBase):
    def test_every_difference_found_and_repaired(self):
        s = self.s
        self.tree()
        # behind the proxy's back
        g1len = len(s.g1_read("/t/c/g3"))
        data = bytearray(s.g2_read("t/c/g3"))
        data[777] ^= 0xFF                                  # a changed byte on Gen2 (same length, same properties)
        props = s.g2("HEAD", "t/c/g3").header("x-ms-properties")
        self.assertIn("dualpipe_crc32c=", props)           # the digest the proxy recorded at the CREATE,
        self.assertNotIn("dualpipe_sha256=", props)        # a CRC-32C only since journal format 1.1
        # a file whose digest an older version recorded (SHA-256 only), changed on Gen2 the same way
        old = s.g2_read("t/a/f2")
        oprops = self.old_digest("t/a/f2", old)
        changed = bytearray(old)
        changed[1234] ^= 0xFF
        self.assertEqual(s.g2("PUT", "t/a/f2", "resource=file").status, 201)
        self.assertEqual(s.g2("PATCH", "t/a/f2", "action=append&position=0", bytes(changed)).status, 202)
        self.assertEqual(s.g2("PATCH", "t/a/f2", "action=flush&position=%d" % len(old)).status, 200)
        self.assertEqual(s.g2("PATCH", "t/a/f2", "action=setProperties",
                              headers={"x-ms-properties": oprops}).status, 200)
        self.assertEqual(s.g2("PUT", "t/c/g3", "resource=file").status, 201)
        self.assertEqual(s.g2("PATCH", "t/c/g3", "action=append&position=0", bytes(data)).status, 202)
        self.assertEqual(s.g2("PATCH", "t/c/g3", "action=flush&position=%d" % g1len).status, 200)
        self.assertEqual(s.g2("PATCH", "t/c/g3", "action=setProperties",
                              headers={"x-ms-properties": props}).status, 200)
        s.g1("PUT", "/t/c/g1", "CREATE", b"h" * 10, overwrite="true", write="true")  # a changed byte on Gen1
        self.assertEqual(s.g2("DELETE", "t/a/f0").status, 200)                      # missing on Gen2
        self.assertEqual(s.g2("PUT", "t/a/extra", "resource=file").status, 201)      # extra on Gen2
        self.assertEqual(s.g2("DELETE", "t/a/b", "recursive=true").status, 200)      # a type mismatch:
        self.assertEqual(s.g2("PUT", "t/a/b", "resource=file").status, 201)          # Gen1 dir, Gen2 file
        s.g1("PUT", "/t/c/g0", "MODIFYACLENTRIES", aclspec="user:bob:r--")           # ACL changed on Gen1
        s.g1("PUT", "/t/a/f1", "SETOWNER", owner="bob")                              # owner changed on Gen1
        self.assertEqual(s.g2("PATCH", "t/a/f3", "action=setAccessControl",
                              headers={"x-ms-permissions": "0600"}).status, 200)      # permission on Gen2
        s.g1("PUT", "/t/c/g2", "SETTIMES", modificationtime="1700000000000")         # mtime changed on Gen1
        want = {("/t/c/g3", "content"), ("/t/a/f2", "content"), ("/t/a/f0", "missing"), ("/t/a/extra", "extra"), ("/t/a/b", "type"),
                ("/t/c/g0", "acl"), ("/t/a/f1", "owner"), ("/t/a/f3", "permission"), ("/t/c/g2", "mtime")}
        p, rep = self.verify("/t", "--deep", "--page-size", "2")
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertFalse(rep["equal"])
        found = self.kinds(rep)
        self.assertTrue(want | {("/t/c/g1", "content")} <= found, "missing %s in %s" % (want - found, found))
        self.assertIn("NOT EQUAL", p.stdout)
        detail = {(d["path"], d["kind"]): d["detail"] for d in rep["result"]["differences"]}
        self.assertIn("Gen1 holds what the proxy wrote, Gen2 does not", detail[("/t/c/g3", "content")])
        self.assertIn("Gen1 holds what the proxy wrote, Gen2 does not", detail[("/t/a/f2", "content")])
        self.assertIn("Gen2 holds what the proxy wrote, Gen1 does not", detail[("/t/c/g1", "content")])
        # --digest finds Gen2's changed byte reading Gen2 only; Gen1's shows as its changed time
        p, rep = self.verify("/t", "--digest")
        self.assertEqual(p.returncode, 3)
        found = self.kinds(rep)
        self.assertTrue({("/t/c/g3", "content"), ("/t/a/f2", "content"), ("/t/c/g1", "mtime")} <= found, found)
        detail = {(d["path"], d["kind"]): d["detail"] for d in rep["result"]["differences"]}
        self.assertIn("SHA-256", detail[("/t/a/f2", "content")])   # found by the SHA-256 an older version recorded
        self.assertNotIn(("/t/c/g1", "content"), found)
        # neither: the same-length changes cannot be seen; those files are size-only
        p, rep = self.verify("/t")
        self.assertEqual(p.returncode, 3)
        self.assertNotIn(("/t/c/g3", "content"), self.kinds(rep))
        # --repair: a journaled resync of each, then equal
        p, rep = self.verify("/t", "--deep", "--repair")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(rep["equal"])
        self.assertTrue(want <= self.kinds(rep, "before_repair"))
        self.assertGreaterEqual(rep["resyncs_queued"], 7)
        s.assert_same(self, "/t")
        p, rep = self.verify("/t", "--deep")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


    def test_directory_metadata_repaired_without_copying_its_tree(self):
        """A permission or owner that differs on a directory is repaired on that directory alone: no file
        under it is copied again (a top directory's permission must not re-copy the tree)."""
        s = self.s
        self.tree()
        self.assertEqual(s.g2("PATCH", "t/c", "action=setAccessControl",
                              headers={"x-ms-permissions": "0700"}).status, 200)   # permission on Gen2
        s.g1("PUT", "/t/a", "SETOWNER", owner="bob")                                # owner on Gen1
        p, rep = self.verify("/t")
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertEqual(self.kinds(rep), {("/t/c", "permission"), ("/t/a", "owner")})
        before = s.g2_counters()
        p, rep = self.verify("/t", "--repair")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(rep["resyncs_queued"], 2)
        after = s.g2_counters()
        for k in ("PUT create-file", "PATCH append", "PATCH flush"):
            self.assertEqual(after.get(k, 0), before.get(k, 0), (k, before, after))
        s.assert_same(self, "/t")
        # the journal command that repair used, by hand, with a bad combination refused
        cfg = self.config_file()
        admin = s.proxy.admin_url.replace("http://", "")
        p = subprocess.run([DUALPIPE, "journal", "list", "--node", "--config", cfg, "--admin", admin],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--node goes with resync", p.stderr)


class VerifyLive(VerifyBase):
    def test_writers_keep_writing(self):
        self.tree()
        stop = threading.Event()
        errors = []
        done = [0, 0]

        def writer(k):
            i = 0
            while not stop.is_set() and i < 3000:
                try:
                    path = "/t/live%d/f%d" % (k, i % 20)
                    r = proxylib.write_data(self.s.proxy, "PUT", path, "CREATE", b"w" * (i % 7 * 100),
                                            overwrite="true")
                    if r.status >= 300:
                        errors.append(r)
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
                i += 1
                done[k] += 1

        ts = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
        for t in ts:
            t.start()
        try:
            time.sleep(0.3)
            before = sum(done)
            p, rep = self.verify("/t", "--page-size", "2", "--deep")
            during = sum(done) - before
        finally:
            stop.set()
            for t in ts:
                t.join(60)
        self.assertEqual(errors, [])
        self.assertGreater(during, 0)     # the writers did write while verify ran
        self.assertIn(p.returncode, (0, 3), p.stderr)
        # nothing the writers did is a difference: at most in flight
        self.assertEqual(rep["result"]["differences"], [], p.stdout)
        self.s.wait_drained()
        p, rep = self.verify("/t")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_pending_path_reported_in_flight(self):
        s = self.s
        self.tree()
        # Gen2 refuses to create one file for now: its CREATE stays pending in the journal
        s.gen2.fault("method=PUT,action=fail,status=503,path=/t/c/stuck")
        self.put("/t/c/stuck", b"pending")
        p, rep = self.verify("/t", settle=2)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertEqual(rep["result"]["differences"], [])
        self.assertEqual([d["path"] for d in rep["result"]["in_flight"]], ["/t/c/stuck"])
        self.assertIn("in-flight", p.stdout)
        s.gen2.admin("DELETE", "/faults")
        s.wait_drained()
        p, rep = self.verify("/t")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


class VerifyResume(VerifyBase):
    def test_gen2_down_mid_run_resumes(self):
        s = self.s
        for d in range(6):
            for i in range(3):
                self.put("/r/d%d/f%d" % (d, i), b"x" * (d + i))
        s.wait_drained()
        cursor = os.path.join(self.tmp, "cursor")
        # Gen2 fails mid-walk: every request about /r/d3 answers 503 (retried, then a resumable failure)
        s.gen2.fault("method=HEAD,action=fail,status=503,path=/r/d3")
        p, rep = self.verify("/r", "--cursor", cursor, "--retries", "1", "--page-size", "2", "--threads", "1")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("503", p.stderr)
        self.assertIn("resume", p.stderr)
        self.assertTrue(os.path.exists(cursor))
        s.gen2.admin("DELETE", "/faults")
        p, rep = self.verify("/r", "--cursor", cursor)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(rep["result"]["walk"]["resumed"])
        self.assertEqual(rep["result"]["counts"]["files"], 18)
        self.assertFalse(os.path.exists(cursor))


class VerifyHadoop(VerifyDifferences):
    dialect = "hadoop"


class VerifyHadoopEqual(VerifyEqual):
    dialect = "hadoop"


if __name__ == "__main__":
    unittest.main()
