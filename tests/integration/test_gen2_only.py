"""Phase gen2-only: the WebHDFS (Gen1) API served on Gen2 alone, with no Gen1 running.

The proxy's gen1.endpoint names a closed loopback port: nothing may need it. One script of WebHDFS
calls runs twice, against the Gen1 emulator directly (the reference) and through the proxy in
gen2-only, and the answers are compared: status codes, JSON shapes (keys and value types), the
RemoteException names, and the values a client relies on (lengths, types, permissions, booleans, bytes
read, ACL entries, times set with SETTIMES). Then what only Gen2 can show: paging of a directory of a
few thousand entries (LISTSTATUS listSize/listAfter and LISTSTATUS_BATCH), a 100 MiB file read with
offsets, a missing Gen2 filesystem, Gen2 down (503 RetriableException with Retry-After), racing
appenders serialised, and Gen2 holding exactly what the writers wrote.
"""
import hashlib
import json
import os
import sys
import threading
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402
import proxylib  # noqa: E402

A = proxylib.A
FS = proxylib.FS


def shape(v):
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    return type(v).__name__


def closed_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Gen2Only(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = emulib.Emu("gen1", dialect="adls")
        cls.gen2 = emulib.Emu("gen2")
        r = cls.gen2.gen2("PUT", "%s/%s?resource=filesystem" % (A, FS))
        assert r.status == 201, r
        import tempfile
        cls.spool = tempfile.mkdtemp(prefix="dp-spool-")
        cfg = proxylib.base_config("http://127.0.0.1:%d" % closed_port(), "adls", cls.gen2.url, cls.spool)
        cfg["phase"] = "gen2-only"
        cfg["gen2"]["mappings"].append({"gen1_prefix": "/nofs", "filesystem": "absent", "prefix": ""})
        cfg["limits"] = {"max_body_bytes": 8 << 20}
        cls.proxy = proxylib.Proxy(cfg)

    @classmethod
    def tearDownClass(cls):
        import shutil
        errors = []
        for p in (cls.proxy, cls.ref, cls.gen2):
            try:
                p.close()
            except AssertionError as e:
                errors.append(str(e))
        shutil.rmtree(cls.spool, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))

    # ---- helpers ----
    def via(self, base, method, path, op, body=None, prefix="/webhdfs/v1", headers=None, **params):
        return emulib.http_request(base, method, proxylib.wh_target(path, op, prefix, **params), body, headers)

    def g2get(self, path):
        r = self.gen2.gen2("GET", "%s/%s/%s" % (A, FS, urllib.parse.quote(path.lstrip("/"))))
        self.assertEqual(r.status, 200, r)
        return r.body

    def script(self, base, root):
        """The op sequence; returns [(step, status, shape or exception, values)]."""
        out = []

        def step(name, method, path, op, body=None, prefix="/webhdfs/v1", values=None, headers=None, **params):
            r = self.via(base, method, root + path, op, body, prefix, headers, **params)
            rec = {"status": r.status}
            ctype = r.header("content-type") or ""
            if r.body and "json" in ctype:
                doc = r.json()
                if "RemoteException" in doc:
                    rec["exception"] = doc["RemoteException"]["exception"]
                    rec["shape"] = sorted(doc["RemoteException"].keys())
                else:
                    rec["shape"] = shape(doc)
                    if values:
                        rec["values"] = values(doc)
            elif op.upper() == "OPEN" and r.status == 200:
                rec["bytes"] = r.body
            out.append((name, rec))
            return r

        fs_vals = lambda d: {k: d["FileStatus"][k] for k in ("length", "type", "permission", "pathSuffix")}
        step("mkdirs", "PUT", "/d", "MKDIRS", permission="750", values=lambda d: d)
        step("create", "PUT", "/d/f1", "CREATE", b"hello", write="true", overwrite="false")
        step("create-exists", "PUT", "/d/f1", "CREATE", b"x", write="true", overwrite="false")
        step("create-over-dir", "PUT", "/d", "CREATE", b"x", write="true", overwrite="true")
        step("append-at", "POST", "/d/f1", "APPEND", b" world", append="true", offset="5")
        step("append-bad-offset", "POST", "/d/f1", "APPEND", b"zz", append="true", offset="3")
        step("append-end", "POST", "/d/f1", "APPEND", b"!", append="true")
        step("append-missing", "POST", "/d/none", "APPEND", b"!", append="true")
        step("open-range", "GET", "/d/f1", "OPEN", read="true", offset="6", length="5")
        step("open-all", "GET", "/d/f1", "OPEN", read="true")
        step("open-past-end", "GET", "/d/f1", "OPEN", read="true", offset="100")
        step("open-dir", "GET", "/d", "OPEN", read="true")
        step("stat-file", "GET", "/d/f1", "GETFILESTATUS", values=fs_vals)
        step("stat-dir", "GET", "/d", "GETFILESTATUS", values=fs_vals)
        step("stat-missing", "GET", "/d/none", "GETFILESTATUS")
        step("list", "GET", "/d", "LISTSTATUS",
             values=lambda d: [(e["pathSuffix"], e["type"], e["length"]) for e in d["FileStatuses"]["FileStatus"]])
        step("list-file", "GET", "/d/f1", "LISTSTATUS",
             values=lambda d: [(e["pathSuffix"], e["type"]) for e in d["FileStatuses"]["FileStatus"]])
        step("summary", "GET", "", "GETCONTENTSUMMARY", values=lambda d: d)
        step("chmod", "PUT", "/d/f1", "SETPERMISSION", permission="640")
        step("stat-chmod", "GET", "/d/f1", "GETFILESTATUS", values=fs_vals)
        step("setacl", "PUT", "/d/f1", "SETACL", aclspec="user::rw-,group::r--,other::---,user:alice:r--")
        step("modacl", "PUT", "/d/f1", "MODIFYACLENTRIES", aclspec="user:bob:rw-")
        step("aclstatus", "GET", "/d/f1", "GETACLSTATUS",
             values=lambda d: (sorted(d["AclStatus"]["entries"]), d["AclStatus"]["permission"]))
        step("rmaclentries", "PUT", "/d/f1", "REMOVEACLENTRIES", aclspec="user:bob")
        step("defacl", "PUT", "/d", "MODIFYACLENTRIES", aclspec="default:user:carol:r-x")
        step("aclstatus-dir", "GET", "/d", "GETACLSTATUS", values=lambda d: sorted(d["AclStatus"]["entries"]))
        step("rmdefacl", "PUT", "/d", "REMOVEDEFAULTACL")
        step("rmacl", "PUT", "/d/f1", "REMOVEACL")
        step("aclstatus-after", "GET", "/d/f1", "GETACLSTATUS", values=lambda d: sorted(d["AclStatus"]["entries"]))
        step("setacl-missing", "PUT", "/d/none", "SETACL", aclspec="user::rw-,group::r--,other::---")
        step("settimes", "PUT", "/d/f1", "SETTIMES", modificationtime="1600000000000", accesstime="1600000001000")
        step("stat-times", "GET", "/d/f1", "GETFILESTATUS",
             values=lambda d: (d["FileStatus"]["modificationTime"], d["FileStatus"]["accessTime"]))
        step("checkaccess", "GET", "/d/f1", "CHECKACCESS", fsaction="r--")
        step("checkaccess-bad", "GET", "/d/f1", "CHECKACCESS", fsaction="rwz")
        step("checksum", "GET", "/d/f1", "GETFILECHECKSUM")
        step("rename", "PUT", "/d/f1", "RENAME", destination=root + "/d/f2", values=lambda d: d)
        step("rename-missing", "PUT", "/d/f1", "RENAME", destination=root + "/d/f3", values=lambda d: d)
        step("create-f3", "PUT", "/d/f3", "CREATE", b"3", write="true")
        step("rename-onto-file", "PUT", "/d/f2", "RENAME", destination=root + "/d/f3", values=lambda d: d)
        step("rename2-exists", "PUT", "/d/f2", "RENAME", destination=root + "/d/f3", renameoptions="NONE")
        step("rename2-overwrite", "PUT", "/d/f2", "RENAME", destination=root + "/d/f3", renameoptions="OVERWRITE",
             values=lambda d: d)
        step("mkdirs-e", "PUT", "/e", "MKDIRS", values=lambda d: d)
        step("rename-into-dir", "PUT", "/d/f3", "RENAME", destination=root + "/e", values=lambda d: d)
        step("list-e", "GET", "/e", "LISTSTATUS",
             values=lambda d: [e["pathSuffix"] for e in d["FileStatuses"]["FileStatus"]])
        step("mkdirs-over-file", "PUT", "/e/f3", "MKDIRS")
        step("capp1", "POST", "/c", "CONCURRENTAPPEND", b"ab", prefix="/WebHdfsExt", appendMode="autocreate")
        step("capp2", "POST", "/c", "CONCURRENTAPPEND", b"cd", prefix="/WebHdfsExt", appendMode="autocreate")
        step("capp-read", "GET", "/c", "OPEN", read="true")
        step("capp-noauto", "POST", "/c2", "CONCURRENTAPPEND", b"x", prefix="/WebHdfsExt")
        step("seg-a", "PUT", "/s/a", "CREATE", b"AAA", write="true")
        step("seg-b", "PUT", "/s/b", "CREATE", b"BB", write="true")
        step("msconcat", "POST", "/m", "MSCONCAT", json.dumps({"sources": [root + "/s/a", root + "/s/b"]}).encode(),
             headers={"Content-Type": "application/json"}, deleteSourceDirectory="true")
        step("msconcat-read", "GET", "/m", "OPEN", read="true")
        step("msconcat-srcdir", "GET", "/s", "GETFILESTATUS")
        step("seg-c", "PUT", "/e/c1", "CREATE", b"C1", write="true")
        step("concat", "POST", "/m", "CONCAT", sources=root + "/e/c1")
        step("concat-read", "GET", "/m", "OPEN", read="true")
        step("concat-missing", "POST", "/m", "CONCAT", sources=root + "/e/none")
        step("expiry", "PUT", "/m", "SETEXPIRY", prefix="/WebHdfsExt", expiryOption="RelativeToNow",
             expireTime="3600000")
        step("expiry-dir", "PUT", "/e", "SETEXPIRY", prefix="/WebHdfsExt", expiryOption="RelativeToNow",
             expireTime="3600000")
        step("stat-expiry", "GET", "/m", "GETFILESTATUS", values=lambda d: d["FileStatus"]["msExpirationTime"] > 0)
        step("delete-missing", "DELETE", "/nothing", "DELETE", values=lambda d: d)
        step("delete-nonempty", "DELETE", "/e", "DELETE", recursive="false")
        step("delete-recursive", "DELETE", "/e", "DELETE", recursive="true", values=lambda d: d)
        step("stat-deleted", "GET", "/e", "GETFILESTATUS")
        step("delete-file", "DELETE", "/m", "DELETE", values=lambda d: d)
        step("homedir", "GET", "", "GETHOMEDIRECTORY")
        return out

    # ---- tests ----
    def test_01_ready_without_gen1(self):
        # Gen1 is never probed; the only problem /readyz reports is the mapped filesystem that is missing
        r = self.proxy.admin("GET", "/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertIn(b"'absent'", r.body)
        self.assertNotIn(b"Gen1", r.body)
        self.assertNotIn("Gen1 unreachable", self.proxy.read_log())

    def test_02_same_answers_as_gen1(self):
        ref = self.script(self.ref.url, "/cmp")
        got = self.script(self.proxy.url, "/cmp")
        self.assertEqual([n for n, _ in ref], [n for n, _ in got])
        diffs = []
        for (name, a), (_, b) in zip(ref, got):
            if a != b:
                diffs.append("%s:\n  gen1 %r\n  ours %r" % (name, a, b))
        self.assertEqual(diffs, [], "\n".join(diffs))
        # Gen2 holds what was written
        self.assertEqual(self.g2get("/cmp/c"), b"abcd")

    def test_03_two_step_create(self):
        r = proxylib.write_data(self.proxy, "PUT", "/two/step", "CREATE", b"two-step", two_step=True,
                                overwrite="true")
        self.assertEqual(r.status, 201, r)
        r = proxylib.write_data(self.proxy, "POST", "/two/step", "APPEND", b"+more", two_step=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.g2get("/two/step"), b"two-step+more")

    def test_04_paging(self):
        n = 2500
        for i in range(n):
            r = self.gen2.gen2("PUT", "%s/%s/big/f%05d?resource=file" % (A, FS, i))
            self.assertEqual(r.status, 201, r)
        names, after, pages = [], "", 0
        while True:
            params = {"listSize": "1000"}
            if after:
                params["listAfter"] = after
            r = self.proxy.webhdfs("GET", "/big", "LISTSTATUS", **params)
            self.assertEqual(r.status, 200, r)
            fs = r.json()["FileStatuses"]
            names += [e["pathSuffix"] for e in fs["FileStatus"]]
            pages += 1
            after = fs["continuationToken"]
            if not after:
                break
        self.assertEqual(names, ["f%05d" % i for i in range(n)])
        self.assertEqual(pages, 3)
        # a name the proxy never handed out works too (walks Gen2 from the start)
        r = self.proxy.webhdfs("GET", "/big", "LISTSTATUS", listSize="3", listAfter="f01234")
        self.assertEqual([e["pathSuffix"] for e in r.json()["FileStatuses"]["FileStatus"]],
                         ["f01235", "f01236", "f01237"])
        # Hadoop's batched listing
        names, after = [], ""
        while True:
            params = {"startAfter": after} if after else {}
            r = self.proxy.webhdfs("GET", "/big", "LISTSTATUS_BATCH", **params)
            self.assertEqual(r.status, 200, r)
            dl = r.json()["DirectoryListing"]
            batch = [e["pathSuffix"] for e in dl["partialListing"]["FileStatuses"]["FileStatus"]]
            names += batch
            if dl["remainingEntries"] == 0:
                break
            after = batch[-1]
        self.assertEqual(names, ["f%05d" % i for i in range(n)])
        r = self.proxy.webhdfs("GET", "/big", "GETCONTENTSUMMARY")
        self.assertEqual(r.json()["ContentSummary"]["fileCount"], n)

    def test_05_large_read_with_offsets(self):
        size = 100 << 20
        block = hashlib.sha256(b"seed").digest() * 4096  # 128 KiB
        data = (block * (size // len(block) + 1))[:size]
        p = "%s/%s/large/blob" % (A, FS)
        self.assertEqual(self.gen2.gen2("PUT", p + "?resource=file").status, 201)
        step = 32 << 20
        for off in range(0, size, step):
            r = self.gen2.gen2("PATCH", "%s?action=append&position=%d" % (p, off), data[off:off + step])
            self.assertEqual(r.status, 202, r)
        self.assertEqual(self.gen2.gen2("PATCH", "%s?action=flush&position=%d" % (p, size)).status, 200)
        r = self.proxy.webhdfs("GET", "/large/blob", "OPEN", read="true")
        self.assertEqual(r.status, 200)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(data).hexdigest())
        off, ln = 50 * (1 << 20) + 123, 10 << 20
        r = self.proxy.webhdfs("GET", "/large/blob", "OPEN", read="true", offset=str(off), length=str(ln))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, data[off:off + ln])
        r = self.proxy.webhdfs("GET", "/large/blob", "OPEN", read="true", offset=str(size - 7))
        self.assertEqual(r.body, data[-7:])

    def test_06_missing_filesystem(self):
        r = self.proxy.webhdfs("PUT", "/nofs/x", "CREATE", b"data", write="true")
        self.assertEqual(r.status, 503, r)
        exc = r.json()["RemoteException"]
        self.assertEqual(exc["exception"], "RetriableException")
        self.assertIn("absent", exc["message"])
        self.assertIn("does not exist", exc["message"])

    def test_07_racing_appenders(self):
        r = self.proxy.webhdfs("PUT", "/race/f", "CREATE", b"", write="true")
        self.assertEqual(r.status, 201, r)
        blobs = {}
        errors = []

        def writer(w):
            for i in range(15):
                b = (b"%02d-%02d|" % (w, i)) * 128  # 768 bytes, unique
                blobs[(w, i)] = b
                rr = self.proxy.webhdfs("POST", "/race/f", "APPEND", b, append="true")
                if rr.status != 200:
                    errors.append(rr)
                ra = self.proxy.webhdfs("POST", "/race/ca", "CONCURRENTAPPEND", b, prefix="/WebHdfsExt",
                                        appendMode="autocreate")
                if ra.status != 200:
                    errors.append(ra)

        ts = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertEqual(errors, [])
        for path in ("/race/f", "/race/ca"):
            got = self.g2get(path)
            self.assertEqual(len(got), sum(len(b) for b in blobs.values()))
            pieces = sorted(got[i:i + 768] for i in range(0, len(got), 768))
            self.assertEqual(pieces, sorted(blobs.values()))
        m = self.proxy.metrics()
        self.assertGreater(m.get("dualpipe_gen2_only_path_waits_total", 0), 0)
        # offsets that raced: one of two appends at the same offset is refused with BadOffsetException
        length = len(self.g2get("/race/f"))
        res = []

        def at_offset():
            res.append(self.proxy.webhdfs("POST", "/race/f", "APPEND", b"X", append="true", offset=str(length)))

        ts = [threading.Thread(target=at_offset) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        self.assertEqual(sorted(r.status for r in res), [200, 400])
        bad = [r for r in res if r.status == 400][0]
        self.assertEqual(bad.json()["RemoteException"]["exception"], "BadOffsetException")
        self.assertEqual(len(self.g2get("/race/f")), length + 1)

    def test_08_metrics_by_op(self):
        m = self.proxy.metrics()
        self.assertGreater(m.get('dualpipe_requests_total{op="GETFILESTATUS",code="2xx"}', 0), 0)
        self.assertGreater(m.get('dualpipe_requests_total{op="GETFILESTATUS",code="4xx"}', 0), 0)

    def test_99_gen2_down(self):
        self.gen2.stop()
        try:
            r = self.proxy.webhdfs("GET", "/cmp/d", "GETFILESTATUS")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json()["RemoteException"]["exception"], "RetriableException")
            self.assertTrue(r.header("retry-after"))
            r = self.proxy.webhdfs("PUT", "/cmp/down", "CREATE", b"x", write="true")
            self.assertEqual(r.status, 503, r)
        finally:
            self.gen2.start()


if __name__ == "__main__":
    unittest.main(verbosity=2)
