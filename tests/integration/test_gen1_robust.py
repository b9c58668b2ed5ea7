#!/usr/bin/python3
"""Gen1 emulator: permissions for non-superusers, durability across restarts (SIGTERM and SIGKILL),
fault injection and counters, and the bad-input list of issue 2 §4 (each answered with the right
error, never a crash, nothing on disk changed)."""
import http.client
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulib import Emu, EmuTestCase, http_request, main  # noqa: E402
from emulib import raw_http  # noqa: E402
from test_gen1 import Gen1Mixin, chunked  # noqa: E402


def disk_snapshot(data_dir):
    """{relative path: size} of every file under the data dir."""
    out = {}
    for root, _, files in os.walk(data_dir):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, data_dir)] = os.path.getsize(p)
    return out


def as_user(name):
    return {"user.name": name}


class Gen1Permissions(Gen1Mixin, EmuTestCase):
    EMUS = {"e": dict(service="gen1", dialect="hadoop")}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.e = cls.emus["e"]

    def create(self, path, data=b"", user="hdfs", **params):
        """Two-step CREATE (hadoop dialect) as user; returns the final response."""
        params.update(as_user(user))
        r = self.call("PUT", path, "CREATE", b"", **params)
        if r.status != 307:
            return r
        u = urllib.parse.urlsplit(r.header("location"))
        return http_request("http://" + u.netloc, "PUT", u.path + "?" + u.query, data)

    def test_owner_group_and_write_permission(self):
        self.mkdirs("/perm")
        r = self.create("/perm/a", b"x", user="alice")
        self.assertRemote(r, 403, "AccessControlException", "user=alice")
        self.assertIsNone(self.stat("/perm/a"))
        self.assertEqual(self.call("PUT", "/perm", "SETOWNER", owner="alice").status, 200)
        self.assertEqual(self.create("/perm/a", b"alice data", user="alice").status, 201)
        st = self.stat("/perm/a")
        self.assertEqual((st["owner"], st["group"], st["permission"]), ("alice", "supergroup", "644"))
        # bob may read (644) but not append, delete (parent 755 owned by alice) or chmod
        r = self.call("POST", "/perm/a", "APPEND", b"", **as_user("bob"))
        if r.status == 307:
            u = urllib.parse.urlsplit(r.header("location"))
            r = http_request("http://" + u.netloc, "POST", u.path + "?" + u.query, b"bob")
        self.assertRemote(r, 403, "AccessControlException")
        self.assertRemote(self.call("DELETE", "/perm/a", "DELETE", **as_user("bob")), 403, "AccessControlException")
        self.assertRemote(self.call("PUT", "/perm/a", "SETPERMISSION", permission="777", **as_user("bob")), 403,
                          "AccessControlException")
        self.assertRemote(self.call("PUT", "/perm/a", "RENAME", destination="/perm/b", **as_user("bob")), 403,
                          "AccessControlException")
        self.assertEqual(self.call("GET", "/perm/a", "CHECKACCESS", fsaction="r--", **as_user("bob")).status, 200)
        self.assertEqual(self.call("PUT", "/perm/a", "SETPERMISSION", permission="600", **as_user("alice")).status,
                         200)
        self.assertRemote(self.call("GET", "/perm/a", "CHECKACCESS", fsaction="r--", **as_user("bob")), 403,
                          "AccessControlException")
        # owner changes: only the superuser gives files away; a user may only pick its own group
        self.assertRemote(self.call("PUT", "/perm/a", "SETOWNER", owner="bob", **as_user("alice")), 403,
                          "AccessControlException")
        self.assertRemote(self.call("PUT", "/perm/a", "SETOWNER", group="staff", **as_user("alice")), 403,
                          "AccessControlException")
        self.assertEqual(self.call("PUT", "/perm/a", "SETOWNER", group="alice", **as_user("alice")).status, 200)
        self.assertRemote(self.call("PUT", "/perm/a", "SETTIMES", modificationtime=5, **as_user("bob")), 403,
                          "AccessControlException")
        self.assertRemote(self.call("PUT", "/perm/a", "SETACL", aclspec="user::rwx,group::---,other::---",
                                    **as_user("bob")), 403, "AccessControlException")
        st = self.stat("/perm/a")
        self.assertEqual((st["owner"], st["group"], st["permission"]), ("alice", "alice", "600"))
        # doas wins over user.name
        r = self.call("DELETE", "/perm/a", "DELETE", **{"user.name": "alice", "doas": "bob"})
        self.assertRemote(r, 403, "AccessControlException", "user=bob")
        self.assertEqual(self.call("DELETE", "/perm/a", "DELETE", **as_user("alice")).json(), {"boolean": True})

    def test_traverse_needs_execute(self):
        self.mkdirs("/private", permission="700")
        self.assertEqual(self.create("/private/f", b"secret").status, 201)
        self.assertRemote(self.call("GET", "/private/f", "GETFILESTATUS", **as_user("alice")), 403,
                          "AccessControlException")
        self.assertRemote(self.call("GET", "/private", "LISTSTATUS", **as_user("alice")), 403,
                          "AccessControlException")
        self.assertRemote(self.call("GET", "/private/none", "GETFILESTATUS", **as_user("alice")), 403,
                          "AccessControlException")
        self.assertEqual(self.call("GET", "/private", "GETFILESTATUS", **as_user("alice")).status, 200)

    def test_sticky_directory(self):
        self.mkdirs("/tmpx", permission="1777")
        self.assertEqual(self.create("/tmpx/af", b"a", user="alice").status, 201)
        self.assertRemote(self.call("DELETE", "/tmpx/af", "DELETE", **as_user("bob")), 403, "AccessControlException")
        self.assertRemote(self.call("PUT", "/tmpx/af", "RENAME", destination="/tmpx/bf", **as_user("bob")), 403,
                          "AccessControlException")
        self.assertEqual(self.call("PUT", "/tmpx/af", "RENAME", destination="/tmpx/af2", **as_user("alice")).json(),
                         {"boolean": True})
        self.assertEqual(self.call("DELETE", "/tmpx/af2", "DELETE", **as_user("alice")).json(), {"boolean": True})

    def test_acl_grants_access(self):
        self.mkdirs("/shared", permission="750")
        self.assertRemote(self.call("PUT", "/shared/b", "MKDIRS", **as_user("bob")), 403, "AccessControlException")
        self.assertEqual(self.call("PUT", "/shared", "MODIFYACLENTRIES", aclspec="user:bob:rwx").status, 200)
        self.assertEqual(self.call("PUT", "/shared/b", "MKDIRS", **as_user("bob")).json(), {"boolean": True})
        self.assertEqual(self.stat("/shared/b")["owner"], "bob")
        self.assertRemote(self.call("PUT", "/shared/c", "MKDIRS", **as_user("carol")), 403, "AccessControlException")

    def test_recursive_delete_checks_subtree(self):
        self.mkdirs("/rd")
        self.assertEqual(self.call("PUT", "/rd", "SETOWNER", owner="alice").status, 200)
        self.mkdirs("/rd/locked/inner")
        self.assertEqual(self.call("PUT", "/rd/locked", "SETPERMISSION", permission="755").status, 200)
        r = self.call("DELETE", "/rd/locked", "DELETE", recursive="true", **as_user("alice"))
        self.assertRemote(r, 403, "AccessControlException")
        self.assertEqual(self.stat("/rd/locked/inner")["type"], "DIRECTORY")


class Gen1Restart(Gen1Mixin, unittest.TestCase):
    def setUp(self):
        self.e = Emu("gen1", dialect="adls")

    def tearDown(self):
        self.e.close()

    def populate(self):
        self.mkdirs("/keep/dir", permission="750")
        self.put("/keep/dir/f", b"persisted bytes")
        self.assertEqual(self.append("/keep/dir/f", b" + appended", offset=15).status, 200)
        self.assertEqual(self.call("PUT", "/keep/dir/f", "SETOWNER", owner="alice", group="staff").status, 200)
        self.assertEqual(self.call("PUT", "/keep/dir/f", "SETACL",
                                   aclspec="user::rw-,user:bob:r--,group::r--,mask::r--,other::---").status, 200)
        self.assertEqual(self.call("PUT", "/keep/dir/f", "SETTIMES", modificationtime=1234567, accesstime=7654321).status,
                         200)
        self.assertEqual(self.call("PUT", "/keep/dir", "SETACL",
                                   aclspec="user::rwx,group::r-x,other::---,default:user:bob:rwx,default:user::rwx,"
                                           "default:group::r-x,default:other::---").status, 200)
        self.put("/keep/open", b"", syncFlag="DATA", leaseid="L1")
        self.assertEqual(self.append("/keep/open", b"abc", offset=0, syncFlag="DATA", leaseid="L1").status, 200)
        self.assertEqual(self.ext("POST", "/keep/ca", "CONCURRENTAPPEND", b"c1", appendMode="autocreate").status, 200)
        self.assertEqual(self.ext("PUT", "/keep/dir/f", "SETEXPIRY", expiryOption="Absolute",
                                  expireTime=4102444800000).status, 200)
        self.assertEqual(self.call("PUT", "/keep/gone", "MKDIRS").status, 200)
        self.assertEqual(self.call("DELETE", "/keep/gone", "DELETE").json(), {"boolean": True})
        self.assertEqual(self.call("PUT", "/keep/ca", "RENAME", destination="/keep/ca2").json(), {"boolean": True})

    def check(self, tree, acl_f, acl_d, st_f):
        self.assertEqual(self.tree("/"), tree)
        self.assertEqual(self.call("GET", "/keep/dir/f", "GETACLSTATUS").json(), acl_f)
        self.assertEqual(self.call("GET", "/keep/dir", "GETACLSTATUS").json(), acl_d)
        self.assertEqual(self.stat("/keep/dir/f"), st_f)
        self.assertEqual(self.read("/keep/dir/f"), b"persisted bytes + appended")
        self.assertEqual(self.read("/keep/open"), b"abc")
        self.assertEqual(self.stat("/keep/open")["length"], 0)       # DATA only: not published
        r = self.append("/keep/open", b"x", offset=3, leaseid="other")  # the lease survives
        self.assertEqual(r.status, 500, r)
        self.assertEqual(self.append("/keep/open", b"d", offset=3, syncFlag="CLOSE", leaseid="L1").status, 200)
        self.assertEqual(self.stat("/keep/open")["length"], 4)
        self.assertRemote(self.append("/keep/ca2", b"serial"), 400, "IllegalArgumentException")  # still concurrent
        self.assertIsNone(self.stat("/keep/gone"))

    def snapshot(self):
        return (self.tree("/"), self.call("GET", "/keep/dir/f", "GETACLSTATUS").json(),
                self.call("GET", "/keep/dir", "GETACLSTATUS").json(), self.stat("/keep/dir/f"))

    def test_restart_sigterm(self):
        self.populate()
        snap = self.snapshot()
        self.e.restart()
        self.check(*snap)

    def test_restart_sigkill(self):
        self.populate()
        snap = self.snapshot()
        self.e.restart(signal.SIGKILL)
        self.check(*snap)

    def test_interrupted_create_leaves_nothing_after_restart(self):
        self.put("/half/f", b"old")
        # a CREATE body cut off by a crash: send half the body, kill the emulator
        s = socket.create_connection(("127.0.0.1", int(self.e.url.rsplit(":", 1)[1])), timeout=5)
        s.sendall(b"PUT /webhdfs/v1/half/f?op=CREATE&write=true&overwrite=true HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 100\r\n\r\n" + b"n" * 50)
        time.sleep(0.3)
        self.e.restart(signal.SIGKILL)
        s.close()
        self.assertEqual(self.read("/half/f"), b"old")
        self.assertEqual(self.names("/"), ["half"])
        self.put("/half/g", b"new")
        self.assertEqual(self.names("/half"), ["f", "g"])


class Gen1Faults(Gen1Mixin, EmuTestCase):
    EMUS = {"e": dict(service="gen1", dialect="adls")}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.e = cls.emus["e"]

    def tearDown(self):
        self.e.admin("DELETE", "/faults")

    def test_fail_next_n_with_retry_after(self):
        self.put("/f1/f", b"abc")
        self.e.fault("method=POST,op=APPEND,action=fail,status=503,count=2,retry_after=1")
        for _ in range(2):
            r = self.append("/f1/f", b"def", offset=3)
            self.assertRemote(r, 503, "RetriableException")
            self.assertEqual(r.header("retry-after"), "1")
        self.assertEqual(self.read("/f1/f"), b"abc")
        self.assertEqual(self.append("/f1/f", b"def", offset=3).status, 200)
        self.assertEqual(self.read("/f1/f"), b"abcdef")

    def test_throttle_and_other_ops_unaffected(self):
        self.e.fault("method=PUT,op=CREATE,action=fail,status=429,count=1")
        self.assertEqual(self.call("PUT", "/f2", "MKDIRS").status, 200)
        r = self.call("PUT", "/f2/f", "CREATE", b"x", write="true")
        self.assertRemote(r, 429, "ThrottledException")
        self.assertIsNone(r.header("retry-after"))
        self.assertIsNone(self.stat("/f2/f"))
        self.put("/f2/f", b"x")

    def test_reset(self):
        self.e.fault("method=PUT,op=CREATE,action=reset,count=1")
        with self.assertRaises((OSError, http.client.HTTPException)):
            self.call("PUT", "/f3/f", "CREATE", b"x", write="true")
        self.assertIsNone(self.stat("/f3/f"))
        self.put("/f3/f", b"x")

    def test_counters(self):
        self.e.admin("DELETE", "/counters")
        for i in range(3):
            self.call("PUT", "/f4/%d" % i, "MKDIRS")
        self.stat("/f4/0")
        self.e.request("GET", "/webhdfs/v1/f4?op=NOPE")
        self.e.fault("method=*,op=DELETE,action=fail,status=500,count=1")
        self.assertRemote(self.call("DELETE", "/f4/0", "DELETE"), 500, "RuntimeException")
        c = self.e.counters()
        self.assertEqual(c["requests"].get("PUT MKDIRS"), 3, c)
        self.assertEqual(c["requests"].get("GET GETFILESTATUS"), 1, c)
        self.assertEqual(c["requests"].get("GET UNKNOWN"), 1, c)
        self.assertEqual(c["requests"].get("DELETE DELETE"), 1, c)
        self.assertEqual(c["faults"]["fail"], 1, c)
        self.assertEqual(self.stat("/f4/0")["type"], "DIRECTORY")


class Gen1BadInput(Gen1Mixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The data dir sits alone in a private directory, so "nothing escaped" can be checked on
        # its parent without noise from other processes' temporary files.
        cls.jail = tempfile.mkdtemp(prefix="dp-gen1-jail-")
        cls.e = Emu("gen1", dialect="adls", extra_args=["--max-body", "1024"],
                    data_dir=os.path.join(cls.jail, "data"))

    @classmethod
    def tearDownClass(cls):
        cls.e.close()
        shutil.rmtree(cls.jail, ignore_errors=True)

    def setUp(self):
        if self.stat("/base") is None:
            self.put("/base/file", b"0123456789")
            self.put("/base/seg/1", b"1")
            self.put("/base/seg/2", b"2")
            self.assertEqual(self.ext("POST", "/base/ca", "CONCURRENTAPPEND", b"ca", appendMode="autocreate").status,
                             200)
        self.before_tree = self.tree("/")
        self.before_disk = disk_snapshot(self.e.data_dir)
        self.before_parent = sorted(os.listdir(self.jail))

    def assertUnchanged(self, disk=True):
        self.assertEqual(self.tree("/"), self.before_tree)
        self.assertEqual(self.read("/base/file"), b"0123456789")
        if disk:
            self.assertEqual(disk_snapshot(self.e.data_dir), self.before_disk)
        else:  # the namespace log may have grown, but no object appeared or changed
            after = {k: v for k, v in disk_snapshot(self.e.data_dir).items() if k.startswith("objects")}
            self.assertEqual(after, {k: v for k, v in self.before_disk.items() if k.startswith("objects")})
        self.assertEqual(sorted(os.listdir(self.jail)), self.before_parent)
        self.assertIsNone(self.e.proc.poll(), "emulator died")

    def test_unknown_op(self):
        for t in ("/webhdfs/v1/base?op=SELFDESTRUCT", "/webhdfs/v1/base?op=", "/webhdfs/v1/base?opx=MKDIRS"):
            self.assertRemote(self.e.request("PUT", t), 400, "IllegalArgumentException")
        self.assertUnchanged()

    def test_malformed_query_and_path(self):
        for m, t in (("PUT", "/webhdfs/v1/base/x?op=MKDIRS&permission=%G1"),
                     ("PUT", "/webhdfs/v1/base/x%G1?op=MKDIRS"),
                     ("PUT", "/webhdfs/v1/base/x%?op=MKDIRS"),
                     ("PUT", "/webhdfs/v1/base/x?op=MKDIRS&permission=7%0a55"),
                     ("PUT", "/webhdfs/v1/base/x%00y?op=MKDIRS"),
                     ("PUT", "/webhdfs/v1/base/x?op=MK%DIRS"),
                     ("GET", "/webhdfs/v1/base?op=LISTSTATUS&listSize=-3"),
                     ("GET", "/webhdfs/v1/base/file?op=OPEN&read=true&offset=1e3"),
                     ("POST", "/webhdfs/v1/base/file?op=APPEND&append=maybe"),
                     ("DELETE", "/webhdfs/v1/base?op=DELETE&recursive=yes")):
            r = self.e.request(m, t)
            self.assertRemote(r, 400, "IllegalArgumentException")
        self.assertUnchanged()

    def test_dotdot_never_escapes(self):
        for m, t in (("PUT", "/webhdfs/v1/../../escape?op=MKDIRS"),
                     ("PUT", "/webhdfs/v1/base/../../escape?op=CREATE&write=true"),
                     ("PUT", "/webhdfs/v1/%2E%2E/%2E%2E/escape?op=MKDIRS"),
                     ("PUT", "/webhdfs/v1/base%2F..%2F..%2Fescape?op=MKDIRS"),
                     ("PUT", "/webhdfs/v1/base/%2e%2e?op=MKDIRS"),
                     ("PUT", "/webhdfs/v1/base/.?op=MKDIRS"),
                     ("PUT", "/webhdfs/v1/base/file?op=RENAME&destination=/../../escape"),
                     ("PUT", "/webhdfs/v1/base/file?op=RENAME&destination=%2E%2E%2Fescape"),
                     ("POST", "/webhdfs/v1/base/t?op=CONCAT&sources=/base/../base/file")):
            r = self.e.request(m, t, b"" if m in ("PUT", "POST") else None)
            self.assertRemote(r, 400, "IllegalArgumentException")
        r = self.e.request("POST", "/webhdfs/v1/base/t?op=MSCONCAT", '{"sources":["/base/seg/../file"]}')
        self.assertRemote(r, 400, "IllegalArgumentException")
        self.assertUnchanged()
        self.assertEqual(sorted(os.listdir(self.jail)), ["data"])

    def test_oversized_headers(self):
        req = (b"GET /webhdfs/v1/base?op=LISTSTATUS HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 +
               b"\r\nConnection: close\r\n\r\n")
        try:
            status, _, _ = raw_http(self.e.url, req)
            self.assertIn(status, (0, 400, 413, 431))
        except (ConnectionError, OSError):
            pass  # the server may also just close the connection
        self.assertUnchanged()

    def test_declared_body_over_limit(self):
        r = self.e.request("PUT", "/webhdfs/v1/base/big?op=CREATE&write=true", b"z" * 2000)
        self.assertRemote(r, 413, "IllegalArgumentException")
        r = self.e.request("POST", "/webhdfs/v1/base/file?op=APPEND&append=true&offset=10", b"z" * 1025)
        self.assertRemote(r, 413, "IllegalArgumentException")
        r = self.e.request("POST", "/WebHdfsExt/base/ca?op=CONCURRENTAPPEND", b"z" * 1025)
        self.assertRemote(r, 413, "IllegalArgumentException")
        self.assertUnchanged()
        # exactly at the limit is fine
        self.assertEqual(self.append("/base/file", b"z" * 1024, offset=10).status, 200)
        self.assertEqual(self.stat("/base/file")["length"], 1034)
        self.put("/base/file", b"0123456789", overwrite="true")

    def send_chunked(self, method, target, body):
        req = (method.encode() + b" " + target.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + chunked(body, 300))
        return raw_http(self.e.url, req)

    def test_streamed_body_over_limit(self):
        status, hdrs, body = self.send_chunked("POST", "/webhdfs/v1/base/file?op=APPEND&append=true&offset=10",
                                               b"s" * 3000)
        self.assertEqual(status, 413, body)
        self.assertIn(b"IllegalArgumentException", body)
        status, _, _ = self.send_chunked("PUT", "/webhdfs/v1/base/file?op=CREATE&write=true&overwrite=true",
                                         b"s" * 3000)
        self.assertEqual(status, 413)
        status, _, _ = self.send_chunked("PUT", "/webhdfs/v1/base/new?op=CREATE&write=true", b"s" * 3000)
        self.assertEqual(status, 413)
        status, _, _ = self.send_chunked("POST", "/WebHdfsExt/base/newca?op=CONCURRENTAPPEND&appendMode=autocreate",
                                         b"s" * 3000)
        self.assertEqual(status, 413)
        status, _, _ = self.send_chunked("POST", "/WebHdfsExt/base/ca?op=CONCURRENTAPPEND", b"s" * 3000)
        self.assertEqual(status, 413)
        status, _, _ = self.send_chunked("POST", "/webhdfs/v1/base/t?op=MSCONCAT",
                                         b'{"sources":["/base/seg/1",' + b' ' * 3000 + b'"/base/seg/2"]}')
        self.assertEqual(status, 413)
        time.sleep(0.2)  # done() runs after the answer
        self.assertUnchanged(disk=False)
        # the file is not left busy
        self.assertEqual(self.append("/base/file", b"ok", offset=10).status, 200)
        self.assertEqual(self.read("/base/file"), b"0123456789ok")
        self.put("/base/file", b"0123456789", overwrite="true")

    def test_client_disconnect_mid_body(self):
        for target in ("/webhdfs/v1/base/file?op=APPEND&append=true&offset=10",
                       "/webhdfs/v1/base/file?op=CREATE&write=true&overwrite=true",
                       "/WebHdfsExt/base/dc?op=CONCURRENTAPPEND&appendMode=autocreate"):
            s = socket.create_connection(("127.0.0.1", int(self.e.url.rsplit(":", 1)[1])), timeout=5)
            s.sendall(b"POST " if "APPEND" in target else b"PUT ")
            s.sendall(target.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n" + b"d" * 200)
            time.sleep(0.2)
            s.close()
        deadline = time.time() + 5
        while time.time() < deadline:
            if self.append("/base/file", b"", offset=10).status == 200:
                break
            time.sleep(0.1)
        time.sleep(0.2)
        self.assertUnchanged(disk=False)
        self.assertEqual(self.append("/base/file", b"!", offset=10).status, 200)
        self.put("/base/file", b"0123456789", overwrite="true")

    def test_malformed_msconcat_and_aclspec_and_permission(self):
        for body in ('{"sources":', '{"sources":{"a":1}}', '{}', 'sources=', '\x00\x01'):
            r = self.e.request("POST", "/webhdfs/v1/base/t?op=MSCONCAT", body, {"Content-Type": "application/json"})
            self.assertRemote(r, 400, "IllegalArgumentException")
        for spec in ("user:bob:rwxx", "user:bob:", "group:g:r-x,oops", "default:mask:x:rwx", ",,", "user::rwx,"
                     "user:" + "n" * 400 + ":r--"):
            r = self.call("PUT", "/base/file", "SETACL", aclspec=spec)
            self.assertRemote(r, 400, "IllegalArgumentException")
            r = self.call("PUT", "/base/file", "MODIFYACLENTRIES", aclspec=spec)
            self.assertRemote(r, 400, "IllegalArgumentException")
        for perm in ("0x1ff", "rwxr-xr-x", "12345", "8", " 755"):
            r = self.call("PUT", "/base/file", "SETPERMISSION", permission=perm)
            self.assertRemote(r, 400, "IllegalArgumentException")
        self.assertUnchanged()

    def test_busy_file_serialises_writers(self):
        """A second APPEND waits while the first streams its body, then lands after it."""
        self.put("/base/busy", b"0")
        port = int(self.e.url.rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"POST /webhdfs/v1/base/busy?op=APPEND&append=true&offset=1 HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 6\r\nConnection: close\r\n\r\nAAA")
        time.sleep(0.3)
        results = {}

        def second():
            results["b"] = self.append("/base/busy", b"BB")          # no offset: at the end
            results["c"] = self.append("/base/busy", b"CC", offset=1)  # stale offset

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        self.assertNotIn("b", results)  # still waiting for the first writer
        self.assertEqual(self.stat("/base/busy")["length"], 1)
        s.sendall(b"AAA")
        resp = s.recv(4096)
        s.close()
        self.assertTrue(resp.startswith(b"HTTP/1.1 200"), resp)
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertEqual(results["b"].status, 200)
        self.assertRemote(results["c"], 400, "BadOffsetException")
        self.assertEqual(self.read("/base/busy"), b"0AAAAAABB")
        self.call("DELETE", "/base/busy", "DELETE")

    def start_append(self, path, offset, total, first):
        port = int(self.e.url.rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"POST /webhdfs/v1" + path.encode() + b"?op=APPEND&append=true&offset=%d HTTP/1.1\r\n" % offset +
                  b"Host: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % total + first)
        time.sleep(0.3)
        return s

    def test_rename_and_delete_while_writing(self):
        self.put("/base/mv", b"m")
        s = self.start_append("/base/mv", 1, 4, b"12")
        self.assertEqual(self.call("PUT", "/base/mv", "RENAME", destination="/base/mv2").json(), {"boolean": True})
        s.sendall(b"34")
        resp = s.recv(4096)
        s.close()
        self.assertTrue(resp.startswith(b"HTTP/1.1 200"), resp)
        self.assertEqual(self.read("/base/mv2"), b"m1234")  # the data follows the file
        s = self.start_append("/base/mv2", 5, 2, b"5")
        self.assertEqual(self.call("DELETE", "/base/mv2", "DELETE").json(), {"boolean": True})
        s.sendall(b"6")
        resp = s.recv(4096)
        s.close()
        self.assertTrue(resp.startswith(b"HTTP/1.1 404"), resp)
        self.assertIn(b"FileNotFoundException", resp)
        self.assertIsNone(self.stat("/base/mv2"))


class Gen1Concurrency(Gen1Mixin, EmuTestCase):
    EMUS = {"e": dict(service="gen1", dialect="adls")}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.e = cls.emus["e"]

    def run_threads(self, fns):
        errors = []

        def wrap(fn):
            try:
                fn()
            except Exception as ex:  # reported below, in the test's thread
                errors.append(ex)

        ts = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
            self.assertFalse(t.is_alive())
        self.assertEqual(errors, [])

    def test_parallel_concurrentappend(self):
        """Many writers, server-chosen offsets: every record lands whole, none lost."""
        def writer(w):
            def run():
                for i in range(20):
                    rec = ("<%02d:%02d>" % (w, i)).encode() * 10
                    r = self.ext("POST", "/cc/log", "CONCURRENTAPPEND", rec, appendMode="autocreate")
                    self.assertEqual(r.status, 200, r)
            return run

        self.run_threads([writer(w) for w in range(8)])
        data = self.read("/cc/log")
        self.assertEqual(len(data), 8 * 20 * 70)
        self.assertEqual(self.stat("/cc/log")["length"], len(data))
        recs = sorted(data[i:i + 70] for i in range(0, len(data), 70))
        self.assertEqual(recs, sorted(("<%02d:%02d>" % (w, i)).encode() * 10 for w in range(8) for i in range(20)))

    def test_parallel_segments_then_msconcat(self):
        """ADLUploader pattern: parallel CREATE+APPEND of segments, then MSCONCAT."""
        seg = "/up/out.bin.segments.beef"
        parts = [bytes([65 + i]) * (1000 + i) for i in range(6)]
        offsets = [sum(len(p) for p in parts[:i]) for i in range(6)]

        def upload(i):
            def run():
                path = "%s/out.bin_%d" % (seg, offsets[i])
                r = self.call("PUT", path, "CREATE", b"", write="true", overwrite="true", syncFlag="DATA",
                              leaseid="l%d" % i)
                self.assertEqual(r.status, 201, r)
                half = len(parts[i]) // 2
                r = self.append(path, parts[i][:half], offset=0, syncFlag="DATA", leaseid="l%d" % i)
                self.assertEqual(r.status, 200, r)
                r = self.append(path, parts[i][half:], offset=half, syncFlag="CLOSE", leaseid="l%d" % i)
                self.assertEqual(r.status, 200, r)
            return run

        self.run_threads([upload(i) for i in range(6)])
        srcs = ["%s/out.bin_%d" % (seg, o) for o in offsets]
        r = self.e.request("POST", "/webhdfs/v1/up/out.bin?OP=MSCONCAT&deleteSourceDirectory=true",
                           '{"sources": %s}' % str(srcs).replace("'", '"'), {"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.read("/up/out.bin"), b"".join(parts))
        self.assertEqual(self.names("/up"), ["out.bin"])


class Gen1StaleLease(Gen1Mixin, EmuTestCase):
    """--lease-ms: a lease not renewed for that long goes stale and another writer may take the file
    over (a crashed writer must not lock its file forever); until then it is refused."""
    LEASE_S = 1.0  # long enough that a request sent right after another one always lands inside it
    EMUS = {"e": dict(service="gen1", dialect="adls", extra_args=["--lease-ms", str(int(LEASE_S * 1000))])}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.e = cls.emus["e"]

    def assertLeaseConflict(self, r):
        ex = self.assertRemote(r, 500, "RuntimeException")
        self.assertIn("83090a16", ex["message"])

    def sleep_until(self, t):
        time.sleep(max(0.0, t - time.monotonic()))

    def test_stale_lease_lets_another_writer_in(self):
        a, b = "lease-a", "lease-b"
        self.put("/stale/f", b"", syncFlag="DATA", leaseid=a)
        # The server set the expiry while handling the request, so before this point.
        set_at = time.monotonic()
        self.assertLeaseConflict(self.append("/stale/f", b"bbb", offset=0, syncFlag="DATA", leaseid=b))
        # A renews its lease by writing (syncFlag=DATA keeps the file open under A's lease).
        self.sleep_until(set_at + self.LEASE_S * 0.6)
        renew_sent = time.monotonic()
        self.assertEqual(self.append("/stale/f", b"aaa", offset=0, syncFlag="DATA", leaseid=a).status, 200)
        renewed_at = time.monotonic()
        # Past the first expiry but inside the renewed one: still A's.
        self.sleep_until(max(set_at + self.LEASE_S * 1.2, renewed_at + 0.05))
        self.assertLess(time.monotonic(), renew_sent + self.LEASE_S - 0.1, "the machine is too slow for this test")
        self.assertLeaseConflict(self.append("/stale/f", b"bbb", offset=3, syncFlag="DATA", leaseid=b))
        # A stops writing: once the lease is stale, B's APPEND is accepted and B holds the lease.
        self.sleep_until(renewed_at + self.LEASE_S * 1.2)
        self.assertEqual(self.append("/stale/f", b"bbb", offset=3, syncFlag="DATA", leaseid=b).status, 200)
        self.assertLeaseConflict(self.append("/stale/f", b"aaa", offset=6, syncFlag="DATA", leaseid=a))
        self.assertEqual(self.append("/stale/f", b"", offset=6, syncFlag="CLOSE", leaseid=b).status, 200)
        self.assertEqual(self.read("/stale/f"), b"aaabbb")
        self.assertEqual(self.stat("/stale/f")["length"], 6)


if __name__ == "__main__":
    main()
