#!/usr/bin/python3
"""Gen1 emulator (ADLS dialect), every WebHDFS op over real HTTP: success and error cases, with the
JSON bodies and RemoteException errors clients depend on (protocols.md §1, clients.md).

The helpers (Gen1Mixin, raw_http) are shared with the other test_gen1_*.py files."""
import json
import os
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulib import EmuTestCase, main, raw_http  # noqa: E402


def chunked(body, size=7):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


class Gen1Mixin:
    """Convenience calls on self.e (an Emu running gen1)."""

    def call(self, method, path, op, body=None, headers=None, **params):
        return self.e.webhdfs(method, path, op, body, headers, **params)

    def ext(self, method, path, op, body=None, **params):
        q = [("op", op)] + [(k, str(v)) for k, v in params.items()]
        return self.e.request(method, "/WebHdfsExt" + urllib.parse.quote(path) + "?" + urllib.parse.urlencode(q),
                              body)

    def stat(self, path, **params):
        r = self.call("GET", path, "GETFILESTATUS", **params)
        if r.status == 404:
            return None
        self.assertEqual(r.status, 200, r)
        return r.json()["FileStatus"]

    def put(self, path, data=b"", **params):
        params.setdefault("write", "true")
        r = self.call("PUT", path, "CREATE", data, **params)
        self.assertEqual(r.status, 201, r)
        return r

    def append(self, path, data, **params):
        params.setdefault("append", "true")
        return self.call("POST", path, "APPEND", data, **params)

    def read(self, path, **params):
        r = self.call("GET", path, "OPEN", read="true", **params)
        self.assertEqual(r.status, 200, r)
        return r.body

    def mkdirs(self, path, **params):
        r = self.call("PUT", path, "MKDIRS", **params)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"boolean": True})

    def names(self, path, **params):
        r = self.call("GET", path, "LISTSTATUS", **params)
        self.assertEqual(r.status, 200, r)
        return [s["pathSuffix"] for s in r.json()["FileStatuses"]["FileStatus"]]

    def assertRemote(self, r, status, exception, contains=None):
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.header("content-type", "").startswith("application/json"), r)
        ex = r.json()["RemoteException"]
        self.assertEqual(ex["exception"], exception, r)
        self.assertIn("message", ex)
        if contains:
            self.assertIn(contains, ex["message"])
        return ex

    def tree(self, path="/"):
        """The namespace under path as {path: (type, length, permission, owner, group)} (recursive)."""
        out = {}
        r = self.call("GET", path, "LISTSTATUS")
        self.assertEqual(r.status, 200, r)
        for s in r.json()["FileStatuses"]["FileStatus"]:
            p = path.rstrip("/") + "/" + s["pathSuffix"]
            out[p] = (s["type"], s["length"], s["permission"], s["owner"], s["group"], s["aclBit"])
            if s["type"] == "DIRECTORY":
                out.update(self.tree(p))
        return out


class Gen1AdlsOps(Gen1Mixin, EmuTestCase):
    EMUS = {"e": dict(service="gen1", dialect="adls")}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.e = cls.emus["e"]

    # ---- CREATE / OPEN / GETFILESTATUS ----
    def test_create_read_status(self):
        r = self.put("/c1/dir/file.txt", b"hello world")
        self.assertEqual(r.body, b"")
        self.assertEqual(self.read("/c1/dir/file.txt"), b"hello world")
        st = self.stat("/c1/dir/file.txt")
        self.assertEqual(st["type"], "FILE")
        self.assertEqual(st["length"], 11)
        self.assertEqual(st["pathSuffix"], "")
        self.assertEqual(st["permission"], "644")
        self.assertEqual(st["owner"], "hdfs")
        self.assertEqual(st["group"], "supergroup")
        self.assertIs(st["aclBit"], False)
        self.assertEqual(st["msExpirationTime"], 0)
        self.assertEqual(st["blockSize"], 268435456)
        self.assertEqual(st["replication"], 1)
        self.assertTrue(st["fileContextID"])
        self.assertLessEqual(abs(st["modificationTime"] / 1000.0 - time.time()), 60)
        d = self.stat("/c1/dir")
        self.assertEqual(d["type"], "DIRECTORY")
        self.assertEqual(d["length"], 0)
        self.assertEqual(d["permission"], "755")
        self.assertNotIn("fileContextID", d)

    def test_getfilestatus_missing_is_remote_404(self):
        r = self.call("GET", "/nope/none", "GETFILESTATUS")
        self.assertRemote(r, 404, "FileNotFoundException", "/nope/none")
        r = self.call("GET", "/nope/none", "MSGETFILESTATUS")
        self.assertRemote(r, 404, "FileNotFoundException")

    def test_create_permission_and_overwrite(self):
        self.put("/c2/f", b"one", permission="0640")
        self.assertEqual(self.stat("/c2/f")["permission"], "640")
        r = self.call("PUT", "/c2/f", "CREATE", b"two", write="true")
        self.assertRemote(r, 403, "FileAlreadyExistsException")
        r = self.call("PUT", "/c2/f", "CREATE", b"two", write="true", overwrite="false")
        self.assertRemote(r, 403, "FileAlreadyExistsException")
        self.assertEqual(self.read("/c2/f"), b"one")
        ctx1 = self.stat("/c2/f")["fileContextID"]
        self.put("/c2/f", b"second", overwrite="true")
        self.assertEqual(self.read("/c2/f"), b"second")
        st = self.stat("/c2/f")
        self.assertEqual(st["permission"], "644")
        self.assertNotEqual(st["fileContextID"], ctx1)
        r = self.call("PUT", "/c2", "CREATE", b"x", write="true", overwrite="true")
        self.assertRemote(r, 403, "FileAlreadyExistsException")
        self.assertEqual(self.stat("/c2")["type"], "DIRECTORY")

    def test_create_parent(self):
        r = self.call("PUT", "/c3/missing/f", "CREATE", b"x", write="true", CreateParent="false")
        self.assertRemote(r, 404, "FileNotFoundException")
        self.assertIsNone(self.stat("/c3"))
        self.put("/c3/made/deep/f", b"x")
        self.assertEqual(self.stat("/c3/made/deep")["type"], "DIRECTORY")
        self.put("/c3/made/g", b"y", CreateParent="false")
        r = self.call("PUT", "/c3/made/g/sub", "CREATE", b"z", write="true")
        self.assertRemote(r, 403, "ParentNotDirectoryException")

    def test_invalid_permission_changes_nothing(self):
        for bad in ("999", "abc", "77777", "-1"):
            r = self.call("PUT", "/c4/f", "CREATE", b"x", write="true", permission=bad)
            self.assertRemote(r, 400, "IllegalArgumentException")
        self.assertIsNone(self.stat("/c4"))
        r = self.call("PUT", "/c4d", "MKDIRS", permission="8")
        self.assertRemote(r, 400, "IllegalArgumentException")
        self.assertIsNone(self.stat("/c4d"))

    # ---- APPEND, offsets, syncFlag, leases ----
    def test_append_offsets(self):
        self.put("/a1/f", b"abc")
        self.assertEqual(self.append("/a1/f", b"def", offset=3).status, 200)
        r = self.append("/a1/f", b"XXX", offset=2)
        self.assertRemote(r, 400, "BadOffsetException")
        r = self.append("/a1/f", b"XXX", offset=100)
        self.assertRemote(r, 400, "BadOffsetException")
        self.assertEqual(self.read("/a1/f"), b"abcdef")
        self.assertEqual(self.append("/a1/f", b"ghi").status, 200)  # no offset: at the end
        self.assertEqual(self.read("/a1/f"), b"abcdefghi")
        self.assertEqual(self.stat("/a1/f")["length"], 9)
        r = self.append("/a1/missing", b"x")
        self.assertRemote(r, 404, "FileNotFoundException")
        r = self.append("/a1", b"x")
        self.assertRemote(r, 404, "FileNotFoundException")

    def test_python_client_write_sequence(self):
        """azure.datalake.store open('wb'): 404 probe, empty CREATE with DATA + lease, APPEND CLOSE."""
        self.assertIsNone(self.stat("/py/out.bin"))
        lease = "5b0bd2a6-7c1f-4c50-9e26-4b0b0c7c0f11"
        r = self.e.request("PUT", "/webhdfs/v1/py/out.bin?OP=CREATE&overwrite=true&write=true&syncFlag=DATA"
                           "&leaseid=%s&filesessionid=%s" % (lease, lease), b"")
        self.assertEqual(r.status, 201, r)
        r = self.e.request("POST", "/webhdfs/v1/py/out.bin?OP=APPEND&append=true&offset=0&syncFlag=CLOSE"
                           "&leaseid=%s&filesessionid=%s" % (lease, lease), b"payload")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.read("/py/out.bin"), b"payload")
        self.assertEqual(self.stat("/py/out.bin")["length"], 7)

    def test_syncflag_visibility(self):
        self.put("/s1/f", b"", syncFlag="DATA")
        self.assertEqual(self.append("/s1/f", b"12345", offset=0, syncFlag="DATA").status, 200)
        self.assertEqual(self.stat("/s1/f")["length"], 0)        # metadata not published yet
        self.assertEqual(self.read("/s1/f"), b"12345")            # but the data is there
        self.assertRemote(self.append("/s1/f", b"x", offset=0), 400, "BadOffsetException")  # true length is 5
        self.assertEqual(self.append("/s1/f", b"678", offset=5, syncFlag="METADATA").status, 200)
        self.assertEqual(self.stat("/s1/f")["length"], 8)
        self.assertEqual(self.append("/s1/f", b"9", offset=8, syncFlag="DATA").status, 200)
        self.assertEqual(self.stat("/s1/f")["length"], 8)
        self.assertEqual(self.append("/s1/f", b"", offset=9, syncFlag="CLOSE").status, 200)  # SDK close
        self.assertEqual(self.stat("/s1/f")["length"], 9)
        r = self.append("/s1/f", b"", syncFlag="BOGUS")
        self.assertRemote(r, 400, "IllegalArgumentException")

    def test_lease(self):
        a, b = "lease-aaaa", "lease-bbbb"
        self.put("/l1/f", b"", syncFlag="DATA", leaseid=a)
        r = self.append("/l1/f", b"intruder", offset=0, leaseid=b, syncFlag="DATA")
        ex = self.assertRemote(r, 500, "RuntimeException")
        self.assertIn("83090a16", ex["message"])
        r = self.append("/l1/f", b"intruder", offset=0, syncFlag="DATA")  # no lease at all
        self.assertEqual(r.status, 500, r)
        r = self.call("PUT", "/l1/f", "CREATE", b"over", write="true", overwrite="true", leaseid=b)
        self.assertEqual(r.status, 500, r)
        self.assertEqual(self.read("/l1/f"), b"")
        self.assertEqual(self.append("/l1/f", b"mine", offset=0, leaseid=a, syncFlag="DATA").status, 200)
        self.assertEqual(self.append("/l1/f", b"", offset=4, leaseid=a, syncFlag="CLOSE").status, 200)
        # released by CLOSE: another writer may append now
        self.assertEqual(self.append("/l1/f", b"+b", offset=4, leaseid=b).status, 200)
        self.assertEqual(self.read("/l1/f"), b"mine+b")

    def test_zero_length_append_without_offset(self):
        """getAppendStream: zero-length APPEND DATA then METADATA, both at the server's offset."""
        self.put("/a2/f", b"base")
        self.assertEqual(self.append("/a2/f", b"", syncFlag="DATA").status, 200)
        self.assertEqual(self.append("/a2/f", b"", syncFlag="METADATA").status, 200)
        self.assertEqual(self.stat("/a2/f")["length"], 4)

    # ---- CONCURRENTAPPEND ----
    def test_concurrentappend(self):
        r = self.ext("POST", "/ca/log", "CONCURRENTAPPEND", b"x")
        self.assertRemote(r, 404, "FileNotFoundException")
        r = self.ext("POST", "/ca/log", "CONCURRENTAPPEND", b"one,", appendMode="autocreate")
        self.assertEqual(r.status, 200, r)
        r = self.ext("POST", "/ca/log", "CONCURRENTAPPEND", b"two", appendMode="autocreate", syncFlag="DATA")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.read("/ca/log"), b"one,two")
        self.assertEqual(self.stat("/ca/log")["length"], 7)
        r = self.append("/ca/log", b"serial")
        self.assertRemote(r, 400, "IllegalArgumentException")
        self.put("/ca/serial", b"content")
        r = self.ext("POST", "/ca/serial", "CONCURRENTAPPEND", b"x")
        self.assertRemote(r, 400, "IllegalArgumentException")
        self.assertEqual(self.read("/ca/serial"), b"content")
        r = self.ext("POST", "/ca/x", "CONCURRENTAPPEND", b"x", appendMode="sometimes")
        self.assertRemote(r, 400, "IllegalArgumentException")

    # ---- OPEN ----
    def test_open_ranges(self):
        self.put("/o1/f", b"0123456789")
        self.assertEqual(self.read("/o1/f", offset=3), b"3456789")
        self.assertEqual(self.read("/o1/f", offset=3, length=4), b"3456")
        self.assertEqual(self.read("/o1/f", offset=8, length=100), b"89")
        self.assertEqual(self.read("/o1/f", offset=10), b"")
        r = self.call("GET", "/o1/f", "OPEN", read="true", offset=11)
        self.assertRemote(r, 400, "BadOffsetException")
        r = self.call("GET", "/o1/f", "OPEN", read="true", offset="abc")
        self.assertRemote(r, 400, "IllegalArgumentException")
        r = self.call("GET", "/o1", "OPEN", read="true")
        self.assertRemote(r, 404, "FileNotFoundException")
        r = self.call("GET", "/o1/none", "OPEN", read="true")
        self.assertRemote(r, 404, "FileNotFoundException")
        self.assertEqual(r.header("content-type").split(";")[0], "application/json")

    # ---- MKDIRS ----
    def test_mkdirs(self):
        self.mkdirs("/m1/a/b", permission="750")
        self.assertEqual(self.stat("/m1/a/b")["permission"], "750")
        self.mkdirs("/m1/a/b")  # exists: true
        self.put("/m1/file", b"x")
        self.assertRemote(self.call("PUT", "/m1/file", "MKDIRS"), 403, "FileAlreadyExistsException")
        r = self.call("PUT", "/m1/file/sub", "MKDIRS")
        self.assertEqual(r.status, 403, r)
        self.mkdirs("/m1/sticky", permission="1777")
        self.assertEqual(self.stat("/m1/sticky")["permission"], "1777")

    def test_directory_mtime_follows_entries(self):
        self.mkdirs("/mt/a")
        self.mkdirs("/mt/b")
        for d in ("/mt/a", "/mt/b"):
            self.assertEqual(self.call("PUT", d, "SETTIMES", modificationtime=1000).status, 200)
        self.put("/mt/a/f", b"x")
        self.assertGreater(self.stat("/mt/a")["modificationTime"], 1000)
        self.assertEqual(self.stat("/mt/b")["modificationTime"], 1000)
        self.assertEqual(self.call("PUT", "/mt/a", "SETTIMES", modificationtime=1000).status, 200)
        self.assertEqual(self.call("PUT", "/mt/a/f", "RENAME", destination="/mt/b/f").json(), {"boolean": True})
        self.assertGreater(self.stat("/mt/a")["modificationTime"], 1000)
        self.assertGreater(self.stat("/mt/b")["modificationTime"], 1000)
        self.assertEqual(self.call("PUT", "/mt/b", "SETTIMES", modificationtime=1000).status, 200)
        self.assertEqual(self.call("DELETE", "/mt/b/f", "DELETE").json(), {"boolean": True})
        self.assertGreater(self.stat("/mt/b")["modificationTime"], 1000)

    # ---- RENAME ----
    def test_rename_basic_and_false_cases(self):
        self.put("/r1/src", b"data")
        r = self.call("PUT", "/r1/src", "RENAME", destination="/r1/dst")
        self.assertEqual(r.json(), {"boolean": True})
        self.assertIsNone(self.stat("/r1/src"))
        self.assertEqual(self.read("/r1/dst"), b"data")
        # missing source, existing file destination, missing destination parent: false
        self.assertEqual(self.call("PUT", "/r1/none", "RENAME", destination="/r1/x").json(), {"boolean": False})
        self.put("/r1/other", b"o")
        self.assertEqual(self.call("PUT", "/r1/dst", "RENAME", destination="/r1/other").json(), {"boolean": False})
        self.assertEqual(self.read("/r1/other"), b"o")
        self.assertEqual(self.call("PUT", "/r1/dst", "RENAME", destination="/r1/no/such/x").json(),
                         {"boolean": False})
        self.assertEqual(self.read("/r1/dst"), b"data")
        # a file onto itself is true, a directory onto itself false
        self.assertEqual(self.call("PUT", "/r1/dst", "RENAME", destination="/r1/dst").json(), {"boolean": True})
        self.assertEqual(self.call("PUT", "/r1", "RENAME", destination="/r1").json(), {"boolean": False})
        # root: false
        self.assertEqual(self.call("PUT", "/", "RENAME", destination="/r1root").json(), {"boolean": False})
        r = self.call("PUT", "/r1/dst", "RENAME")
        self.assertRemote(r, 400, "IllegalArgumentException")

    def test_rename_into_directory(self):
        self.put("/r2/f", b"f")
        self.mkdirs("/r2/d")
        self.assertEqual(self.call("PUT", "/r2/f", "RENAME", destination="/r2/d").json(), {"boolean": True})
        self.assertEqual(self.read("/r2/d/f"), b"f")
        self.put("/r2/f", b"again")
        self.assertEqual(self.call("PUT", "/r2/f", "RENAME", destination="/r2/d").json(), {"boolean": False})
        self.assertEqual(self.read("/r2/d/f"), b"f")
        self.mkdirs("/r2/tree/sub")
        r = self.call("PUT", "/r2/tree", "RENAME", destination="/r2/tree/sub")
        self.assertRemote(r, 403, "IOException")
        self.assertEqual(self.stat("/r2/tree/sub")["type"], "DIRECTORY")
        # a whole directory moves with its content
        self.put("/r2/tree/sub/leaf", b"L")
        self.assertEqual(self.call("PUT", "/r2/tree", "RENAME", destination="/r2/moved").json(), {"boolean": True})
        self.assertEqual(self.read("/r2/moved/sub/leaf"), b"L")

    def test_rename_destination_without_slash(self):
        self.put("/r3/f", b"x")
        r = self.e.request("PUT", "/webhdfs/v1/r3/f?op=RENAME&destination=r3%2Fg")
        self.assertEqual(r.json(), {"boolean": True})
        self.assertEqual(self.read("/r3/g"), b"x")

    def test_rename_overwrite(self):
        self.put("/r4/a", b"A")
        self.put("/r4/b", b"B")
        r = self.call("PUT", "/r4/a", "RENAME", destination="/r4/b", renameoptions="OVERWRITE")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"boolean": True})
        self.assertEqual(self.read("/r4/b"), b"A")
        self.assertIsNone(self.stat("/r4/a"))
        r = self.call("PUT", "/r4/missing", "RENAME", destination="/r4/b", renameoptions="OVERWRITE")
        self.assertRemote(r, 404, "FileNotFoundException")
        self.put("/r4/c", b"C")
        r = self.call("PUT", "/r4/c", "RENAME", destination="/r4/b", renameoptions="NONE")
        self.assertRemote(r, 403, "FileAlreadyExistsException")
        r = self.call("PUT", "/r4/c", "RENAME", destination="/r4/nodir/x", renameoptions="OVERWRITE")
        self.assertRemote(r, 404, "FileNotFoundException")
        self.mkdirs("/r4/full/x")
        self.mkdirs("/r4/empty")
        self.mkdirs("/r4/srcdir/y")
        r = self.call("PUT", "/r4/srcdir", "RENAME", destination="/r4/full", renameoptions="OVERWRITE")
        self.assertRemote(r, 403, "IOException")
        r = self.call("PUT", "/r4/c", "RENAME", destination="/r4/empty", renameoptions="OVERWRITE")
        self.assertRemote(r, 403, "IOException")
        r = self.call("PUT", "/r4/srcdir", "RENAME", destination="/r4/empty", renameoptions="OVERWRITE")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.stat("/r4/empty/y")["type"], "DIRECTORY")
        self.assertEqual(self.read("/r4/c"), b"C")
        r = self.call("PUT", "/r4/c", "RENAME", destination="/r4/b", renameoptions="SIDEWAYS")
        self.assertRemote(r, 400, "IllegalArgumentException")

    # ---- DELETE ----
    def test_delete(self):
        self.assertEqual(self.call("DELETE", "/d1/none", "DELETE").json(), {"boolean": False})
        self.put("/d1/dir/f", b"x")
        r = self.call("DELETE", "/d1/dir", "DELETE", recursive="false")
        self.assertRemote(r, 403, "PathIsNotEmptyDirectoryException")
        self.assertEqual(self.read("/d1/dir/f"), b"x")
        r = self.e.request("DELETE", "/webhdfs/v1/d1/dir?op=DELETE&recursive=True")
        self.assertEqual(r.json(), {"boolean": True})
        self.assertIsNone(self.stat("/d1/dir"))
        self.mkdirs("/d1/empty")
        self.assertEqual(self.call("DELETE", "/d1/empty", "DELETE").json(), {"boolean": True})
        self.assertEqual(self.call("DELETE", "/", "DELETE", recursive="true").json(), {"boolean": False})
        self.assertEqual(self.stat("/d1")["type"], "DIRECTORY")

    def test_conditional_delete(self):
        """ADLS conditional create: GETFILESTATUS -> CHECKACCESS -> DELETE fileContextId -> CREATE."""
        self.put("/d2/f", b"old")
        ctx = self.stat("/d2/f")["fileContextID"]
        self.assertEqual(self.call("GET", "/d2/f", "CHECKACCESS", fsaction="-w-").status, 200)
        r = self.call("DELETE", "/d2/f", "DELETE", fileContextId="00000000deadbeef")
        ex = self.assertRemote(r, 500, "RuntimeException")
        self.assertIn("StreamID mismatch", ex["message"])
        self.assertEqual(self.read("/d2/f"), b"old")
        self.assertEqual(self.call("DELETE", "/d2/f", "DELETE", fileContextId=ctx).json(), {"boolean": True})
        self.put("/d2/f", b"new", overwrite="false")
        self.assertEqual(self.read("/d2/f"), b"new")

    # ---- CONCAT / MSCONCAT ----
    def test_concat(self):
        self.put("/k1/t", b"T-")
        self.put("/k1/a", b"aa")
        self.put("/k1/b", b"bbb")
        r = self.call("POST", "/k1/t", "CONCAT", sources="/k1/a,/k1/b")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.read("/k1/t"), b"T-aabbb")
        self.assertEqual(self.stat("/k1/t")["length"], 7)
        self.assertIsNone(self.stat("/k1/a"))
        self.assertIsNone(self.stat("/k1/b"))
        r = self.call("POST", "/k1/t", "CONCAT", sources="/k1/none")
        self.assertRemote(r, 404, "FileNotFoundException")
        r = self.call("POST", "/k1/missing", "CONCAT", sources="/k1/t")
        self.assertRemote(r, 404, "FileNotFoundException")
        self.put("/k1/c", b"c")
        r = self.call("POST", "/k1/t", "CONCAT", sources="/k1/c,/k1/c")
        self.assertRemote(r, 400, "IllegalArgumentException")
        r = self.call("POST", "/k1/t", "CONCAT", sources="/k1/t")
        self.assertRemote(r, 400, "IllegalArgumentException")
        r = self.call("POST", "/k1/t", "CONCAT")
        self.assertRemote(r, 400, "IllegalArgumentException")
        self.assertEqual(self.read("/k1/t"), b"T-aabbb")
        self.assertEqual(self.read("/k1/c"), b"c")

    def test_msconcat_json_delete_source_directory(self):
        seg = "/k2/big.bin.segments.1a2b"
        self.put(seg + "/big.bin_0", b"first;")
        self.put(seg + "/big.bin_6", b"second;")
        self.put(seg + "/big.bin_13", b"third")
        body = json.dumps({"sources": [seg + "/big.bin_0", seg + "/big.bin_6", seg + "/big.bin_13"]})
        r = self.e.request("POST", "/webhdfs/v1/k2/big.bin?OP=MSCONCAT&deleteSourceDirectory=true", body,
                           {"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.read("/k2/big.bin"), b"first;second;third")
        self.assertIsNone(self.stat(seg))
        self.assertEqual(self.names("/k2"), ["big.bin"])

    def test_msconcat_text_form_and_existing_target(self):
        self.put("/k3/t", b"<")
        self.put("/k3/s/1", b"1")
        self.put("/k3/s/2", b"2")
        r = self.e.request("POST", "/webhdfs/v1/k3/t?op=MSCONCAT", "sources=/k3/s/1,/k3/s/2")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.read("/k3/t"), b"<12")
        self.assertEqual(self.names("/k3/s"), [])  # sources removed, folder kept

    def test_msconcat_malformed_json_changes_nothing(self):
        self.put("/k4/s/1", b"1")
        self.put("/k4/s/2", b"2")
        before = self.tree("/k4")
        for body in ('{"sources": ["/k4/s/1", ', '{"sources": "x"}', '{"src": ["/k4/s/1"]}', '[1,2]',
                     '{"sources": [1]}', '{"sources": []}', 'garbage'):
            r = self.e.request("POST", "/webhdfs/v1/k4/t?op=MSCONCAT", body, {"Content-Type": "application/json"})
            self.assertRemote(r, 400, "IllegalArgumentException")
        r = self.e.request("POST", "/webhdfs/v1/k4/t?op=MSCONCAT", json.dumps({"sources": ["/k4/s/1", "/k4/nope"]}))
        self.assertRemote(r, 404, "FileNotFoundException")
        self.assertEqual(self.tree("/k4"), before)
        self.assertIsNone(self.stat("/k4/t"))

    # ---- permissions, owner, ACLs ----
    def test_setpermission_setowner(self):
        self.put("/p1/f", b"x")
        self.assertEqual(self.call("PUT", "/p1/f", "SETPERMISSION", permission="600").status, 200)
        self.assertEqual(self.stat("/p1/f")["permission"], "600")
        for bad in ("", "rwx", "2000", "9"):
            r = self.call("PUT", "/p1/f", "SETPERMISSION", permission=bad)
            self.assertRemote(r, 400, "IllegalArgumentException")
        self.assertEqual(self.stat("/p1/f")["permission"], "600")
        self.assertEqual(self.call("PUT", "/p1/f", "SETOWNER", owner="alice", group="staff").status, 200)
        st = self.stat("/p1/f")
        self.assertEqual((st["owner"], st["group"]), ("alice", "staff"))
        self.assertEqual(self.call("PUT", "/p1/f", "SETOWNER", group="ops").status, 200)
        self.assertEqual(self.stat("/p1/f")["owner"], "alice")
        self.assertRemote(self.call("PUT", "/p1/f", "SETOWNER"), 400, "IllegalArgumentException")
        self.assertRemote(self.call("PUT", "/p1/none", "SETOWNER", owner="x"), 404, "FileNotFoundException")
        self.assertRemote(self.call("PUT", "/p1/none", "SETPERMISSION", permission="700"), 404,
                          "FileNotFoundException")

    def test_acl_ops(self):
        self.put("/acl1/f", b"x")
        r = self.call("PUT", "/acl1/f", "SETACL", aclspec="user::rw-,user:bob:r--,group::r--,other::---")
        self.assertEqual(r.status, 200, r)
        for op in ("GETACLSTATUS", "MSGETACLSTATUS"):
            a = self.call("GET", "/acl1/f", op).json()["AclStatus"]
            self.assertIn("user:bob:r--", a["entries"])
            self.assertEqual(a["owner"], "hdfs")
            self.assertEqual(a["group"], "supergroup")
            self.assertIs(a["stickyBit"], False)
            self.assertIn("permission", a)
        self.assertIs(self.stat("/acl1/f")["aclBit"], True)
        r = self.e.request("PUT", "/webhdfs/v1/acl1/f?op=MODIFYACLENTRIES&aclSpec=user%3Acarol%3Arw-")
        self.assertEqual(r.status, 200, r)
        ents = self.call("GET", "/acl1/f", "GETACLSTATUS").json()["AclStatus"]["entries"]
        self.assertIn("user:carol:rw-", ents)
        self.assertIn("user:bob:r--", ents)
        self.assertEqual(self.call("PUT", "/acl1/f", "REMOVEACLENTRIES", aclspec="user:bob").status, 200)
        ents = self.call("GET", "/acl1/f", "GETACLSTATUS").json()["AclStatus"]["entries"]
        self.assertNotIn("user:bob:r--", ents)
        self.assertIn("user:carol:rw-", ents)
        self.assertEqual(self.call("PUT", "/acl1/f", "REMOVEACL").status, 200)
        self.assertEqual(self.call("GET", "/acl1/f", "GETACLSTATUS").json()["AclStatus"]["entries"], [])
        self.assertIs(self.stat("/acl1/f")["aclBit"], False)

    def test_invalid_aclspec_changes_nothing(self):
        self.put("/acl2/f", b"x")
        self.assertEqual(self.call("PUT", "/acl2/f", "MODIFYACLENTRIES", aclspec="user:bob:r-x").status, 200)
        before = self.call("GET", "/acl2/f", "GETACLSTATUS").json()
        st_before = self.stat("/acl2/f")
        for op, spec in (("SETACL", "user:bob:rwz"), ("SETACL", "bogus::rwx"), ("MODIFYACLENTRIES", "mask:x:rwx"),
                         ("MODIFYACLENTRIES", "user:bob"), ("SETACL", "user:bob:rwx"), ("SETACL", ""),
                         ("REMOVEACLENTRIES", "what:ever"), ("MODIFYACLENTRIES", "default:user:bob:rwx")):
            r = self.call("PUT", "/acl2/f", op, aclspec=spec)
            self.assertRemote(r, 400, "IllegalArgumentException")
        self.assertEqual(self.call("GET", "/acl2/f", "GETACLSTATUS").json(), before)
        self.assertEqual(self.stat("/acl2/f"), st_before)

    def test_default_acl_inheritance(self):
        self.mkdirs("/acl3/d")
        r = self.call("PUT", "/acl3/d", "SETACL",
                      aclspec="user::rwx,group::r-x,other::---,default:user::rwx,default:user:bob:rwx,"
                              "default:group::r-x,default:mask::rwx,default:other::---")
        self.assertEqual(r.status, 200, r)
        self.put("/acl3/d/f", b"x")
        ents = self.call("GET", "/acl3/d/f", "GETACLSTATUS").json()["AclStatus"]["entries"]
        self.assertTrue(any(e.startswith("user:bob:") for e in ents), ents)
        self.assertFalse(any(e.startswith("default:") for e in ents), ents)
        self.mkdirs("/acl3/d/sub")
        ents = self.call("GET", "/acl3/d/sub", "GETACLSTATUS").json()["AclStatus"]["entries"]
        self.assertIn("default:user:bob:rwx", ents)
        self.assertEqual(self.call("PUT", "/acl3/d", "REMOVEDEFAULTACL").status, 200)
        ents = self.call("GET", "/acl3/d", "GETACLSTATUS").json()["AclStatus"]["entries"]
        self.assertFalse(any(e.startswith("default:") for e in ents), ents)

    # ---- SETTIMES / SETEXPIRY / CHECKACCESS ----
    def test_settimes(self):
        self.put("/t1/f", b"x")
        self.assertEqual(self.call("PUT", "/t1/f", "SETTIMES", modificationtime=1000000, accesstime=2000000).status,
                         200)
        st = self.stat("/t1/f")
        self.assertEqual((st["modificationTime"], st["accessTime"]), (1000000, 2000000))
        self.assertEqual(self.call("PUT", "/t1/f", "SETTIMES", modificationtime=-1, accesstime=3000000).status, 200)
        st = self.stat("/t1/f")
        self.assertEqual((st["modificationTime"], st["accessTime"]), (1000000, 3000000))
        self.assertRemote(self.call("PUT", "/t1/f", "SETTIMES", modificationtime="soon"), 400,
                          "IllegalArgumentException")

    def test_setexpiry(self):
        self.put("/e1/soon", b"x")
        self.put("/e1/past", b"x")
        self.put("/e1/never", b"x")
        self.assertEqual(self.ext("PUT", "/e1/soon", "SETEXPIRY", expiryOption="RelativeToNow", expireTime=700).status,
                         200)
        st = self.stat("/e1/soon")
        self.assertGreater(st["msExpirationTime"], int(time.time() * 1000))
        self.assertEqual(self.ext("PUT", "/e1/past", "SETEXPIRY", expiryOption="Absolute", expireTime=1000).status,
                         200)
        self.assertIsNone(self.stat("/e1/past"))
        self.assertEqual(self.ext("PUT", "/e1/never", "SETEXPIRY", expiryOption="RelativeToCreationDate",
                                  expireTime=3600000).status, 200)
        self.assertEqual(self.ext("PUT", "/e1/never", "SETEXPIRY", expiryOption="NeverExpire").status, 200)
        self.assertEqual(self.stat("/e1/never")["msExpirationTime"], 0)
        r = self.ext("PUT", "/e1/never", "SETEXPIRY", expiryOption="Tomorrow", expireTime=1)
        self.assertRemote(r, 400, "IllegalArgumentException")
        r = self.ext("PUT", "/e1", "SETEXPIRY", expiryOption="RelativeToNow", expireTime=1)
        self.assertRemote(r, 400, "IllegalArgumentException")
        time.sleep(1.0)
        self.assertIsNone(self.stat("/e1/soon"))
        self.assertEqual(self.names("/e1"), ["never"])
        self.assertRemote(self.call("GET", "/e1/soon", "OPEN", read="true"), 404, "FileNotFoundException")
        self.put("/e1/soon", b"reborn", overwrite="false")  # the expired file is gone
        self.assertEqual(self.read("/e1/soon"), b"reborn")

    def test_checkaccess(self):
        self.put("/ck/f", b"x", permission="600")
        self.assertEqual(self.call("GET", "/ck/f", "CHECKACCESS", fsaction="rwx").status, 200)  # superuser
        r = self.call("GET", "/ck/f", "CHECKACCESS", fsaction="r--", **{"user.name": "alice"})
        self.assertRemote(r, 403, "AccessControlException")
        self.assertEqual(self.call("PUT", "/ck/f", "SETPERMISSION", permission="604").status, 200)
        r = self.call("GET", "/ck/f", "CHECKACCESS", fsaction="r--", **{"user.name": "alice"})
        self.assertEqual(r.status, 200, r)
        r = self.call("GET", "/ck/f", "CHECKACCESS", fsaction="rw-", **{"user.name": "alice"})
        self.assertRemote(r, 403, "AccessControlException")
        self.assertRemote(self.call("GET", "/ck/f", "CHECKACCESS", fsaction="rwq"), 400, "IllegalArgumentException")
        self.assertRemote(self.call("GET", "/ck/none", "CHECKACCESS", fsaction="r--"), 404, "FileNotFoundException")

    # ---- listings and summaries ----
    def test_liststatus_paging(self):
        for n in ("e", "a", "c", "b", "d"):
            self.put("/ls/" + n, n.encode())
        self.mkdirs("/ls/zdir")
        r = self.call("GET", "/ls", "LISTSTATUS")
        fs = r.json()["FileStatuses"]
        self.assertEqual([s["pathSuffix"] for s in fs["FileStatus"]], ["a", "b", "c", "d", "e", "zdir"])
        self.assertEqual(fs["continuationToken"], "")
        self.assertEqual(fs["FileStatus"][5]["type"], "DIRECTORY")
        self.assertEqual(fs["FileStatus"][0]["length"], 1)
        seen, token, pages = [], None, 0
        while True:
            params = {"listSize": 2}
            if token:
                params["listAfter"] = token
            page = self.call("GET", "/ls", "MSLISTSTATUS", **params).json()["FileStatuses"]
            seen += [s["pathSuffix"] for s in page["FileStatus"]]
            token = page["continuationToken"]
            pages += 1
            self.assertLessEqual(pages, 4)
            if not token:
                break
        self.assertEqual(seen, ["a", "b", "c", "d", "e", "zdir"])
        self.assertEqual(pages, 3)
        self.assertEqual(self.names("/ls", listAfter="c"), ["d", "e", "zdir"])
        r = self.call("GET", "/ls/a", "LISTSTATUS")
        fs = r.json()["FileStatuses"]
        self.assertEqual(len(fs["FileStatus"]), 1)
        self.assertEqual(fs["FileStatus"][0]["pathSuffix"], "")
        self.assertEqual(fs["continuationToken"], "")
        self.assertRemote(self.call("GET", "/ls/none", "LISTSTATUS"), 404, "FileNotFoundException")
        self.assertRemote(self.call("GET", "/ls", "LISTSTATUS", listSize="many"), 400, "IllegalArgumentException")
        self.assertNotIn("\x01gen1-staging", "".join(self.names("/")))

    def test_contentsummary(self):
        self.put("/cs/a", b"12345")
        self.put("/cs/d/b", b"123")
        self.mkdirs("/cs/d/e")
        s = self.call("GET", "/cs", "GETCONTENTSUMMARY").json()["ContentSummary"]
        self.assertEqual((s["directoryCount"], s["fileCount"], s["length"], s["spaceConsumed"]), (3, 2, 8, 8))
        s = self.call("GET", "/cs/a", "GETCONTENTSUMMARY").json()["ContentSummary"]
        self.assertEqual((s["directoryCount"], s["fileCount"], s["length"]), (0, 1, 5))
        self.assertRemote(self.call("GET", "/cs/none", "GETCONTENTSUMMARY"), 404, "FileNotFoundException")

    def test_homedirectory(self):
        r = self.call("GET", "/", "GETHOMEDIRECTORY", **{"user.name": "alice"})
        self.assertEqual(r.json(), {"Path": "/user/alice"})
        self.assertEqual(self.call("GET", "/", "GETHOMEDIRECTORY").json(), {"Path": "/user/hdfs"})

    def test_unknown_and_wrong_method(self):
        self.assertRemote(self.e.request("GET", "/webhdfs/v1/x?op=FROBNICATE"), 400, "IllegalArgumentException")
        self.assertRemote(self.e.request("GET", "/webhdfs/v1/x"), 400, "IllegalArgumentException")
        self.assertRemote(self.e.request("DELETE", "/webhdfs/v1/x?op=MKDIRS"), 400, "IllegalArgumentException")
        self.assertRemote(self.e.request("GET", "/elsewhere/x?op=LISTSTATUS"), 404, "FileNotFoundException")
        self.assertIsNone(self.stat("/x"))


if __name__ == "__main__":
    main()
