"""Every WebHDFS write op through the dualpipe proxy (issue 3, "Tests"), against the Gen1 emulator in
both upstream dialects (adls: one-step; hadoop: the proxy follows the 307 to the datanode). Each test
writes under its own directory through the proxy, checks that the writer got Gen1's answer, then
waits until the applier has nothing pending and compares Gen1 and Gen2 with proxylib's compare tool
(tree, types, bytes, permissions, owner/group, ACLs).

Writers here use the one-step form (write=true / append=true); the two-step and noredirect forms are
in test_proxy_dialects.py.
"""
import calendar
import email.utils
import http.client
import json
import os
import threading
import time
import urllib.parse

import emulib
import proxylib

MiB = 1024 * 1024


class WritesBase(emulib.unittest.TestCase):
    DIALECT = "adls"

    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack(dialect=cls.DIALECT)
        cls.p = cls.s.proxy

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def call(self, method, path, op, want, body=None, headers=None, prefix="/webhdfs/v1", **params):
        r = self.p.webhdfs(method, path, op, body=body, headers=headers, prefix=prefix, **params)
        self.assertEqual(r.status, want, "%s %s %s %r -> %r" % (method, op, path, params, r))
        return r

    def mkdir(self, path, perm=None):
        kw = {"permission": perm} if perm else {}
        r = self.call("PUT", path, "MKDIRS", 200, **kw)
        self.assertEqual(r.json(), {"boolean": True})

    def create(self, path, data=b"", want=201, **params):
        params.setdefault("write", "true")
        params.setdefault("overwrite", "true")
        return self.call("PUT", path, "CREATE", want, body=data, **params)

    def append(self, path, data, want=200, **params):
        params.setdefault("append", "true")
        return self.call("POST", path, "APPEND", want, body=data, **params)

    def same(self, root):
        self.s.assert_same(self, root)

    def test_create_with_and_without_data(self):
        root = "/w-create"
        self.mkdir(root, "755")
        data = os.urandom(100 * 1024 + 3)
        r = self.create(root + "/data.bin", data, overwrite="false", permission="640")
        self.assertEqual(r.body, b"", "CREATE answers 201 with an empty body")
        self.create(root + "/empty", b"", permission="600")
        self.create(root + "/noperm.txt", b"no permission given")
        self.create(root + "/sub/dir/deep.txt", b"missing parents are created")
        self.create(root + "/big.bin", os.urandom(4 * MiB))  # the largest body ADLS accepts
        self.same(root)
        self.assertEqual(self.s.g2_read(root + "/data.bin"), data)

    def test_overwrite(self):
        root = "/w-overwrite"
        self.mkdir(root)
        self.create(root + "/f", b"first version, long " * 100, permission="644")
        self.create(root + "/f", b"second", overwrite="true", permission="600")
        self.same(root)
        self.assertEqual(self.s.g2_read(root + "/f"), b"second")
        # overwrite with an empty file
        self.create(root + "/f", b"", overwrite="true")
        self.same(root)
        # overwrite of a file that carries an ACL and another owner
        self.call("PUT", root + "/f", "SETACL", 200, aclspec="user::rw-,user:bob:rw-,group::r--,mask::rw-,other::---")
        self.call("PUT", root + "/f", "SETOWNER", 200, owner="alice", group="staff")
        self.create(root + "/f", b"third", overwrite="true", permission="640")
        self.same(root)

    def test_append_offsets_and_syncflags(self):
        root = "/w-append"
        self.mkdir(root)
        f = root + "/log"
        lease = "11111111-2222-4333-8444-555555555555"
        # the Python ADLS client's shape: empty CREATE with DATA and a lease, then offset appends
        self.create(f, b"", syncFlag="DATA", leaseid=lease, filesessionid=lease)
        chunks = [os.urandom(n) for n in (1000, 1, 70000, 3 * MiB + 5)]
        off = 0
        for i, c in enumerate(chunks):
            flag = ("DATA", "METADATA", "DATA", "DATA")[i]
            self.append(f, c, offset=off, syncFlag=flag, leaseid=lease, filesessionid=lease)
            off += len(c)
        # the Java SDK's close: a zero-length APPEND with CLOSE at the final offset
        self.append(f, b"", offset=off, syncFlag="CLOSE", leaseid=lease, filesessionid=lease)
        self.same(root)
        self.assertEqual(self.s.g2_read(f), b"".join(chunks))
        # appends without an offset (at the end) and without syncFlag (default CLOSE)
        self.append(f, b"tail-1")
        self.append(f, b"tail-2", syncFlag="CLOSE")
        # CREATE with data and METADATA, then an append that closes
        self.create(root + "/g", b"head", syncFlag="METADATA", leaseid=lease)
        self.append(root + "/g", b"+more", offset=4, syncFlag="CLOSE", leaseid=lease)
        self.same(root)
        self.assertEqual(self.s.g2_read(f), b"".join(chunks) + b"tail-1tail-2")
        self.assertEqual(self.s.g2_read(root + "/g"), b"head+more")

    def test_concurrentappend(self):
        root = "/w-concurrent"
        self.mkdir(root)
        f = root + "/events"
        for i in range(5):
            self.call("POST", f, "CONCURRENTAPPEND", 200, body=("event %d\n" % i).encode(),
                      prefix="/WebHdfsExt", appendMode="autocreate", syncFlag="DATA")
        self.call("POST", f, "CONCURRENTAPPEND", 200, body=b"last\n", prefix="/WebHdfsExt", syncFlag="CLOSE")
        self.same(root)
        self.assertEqual(self.s.g2_read(f), self.s.g1_read(f))

    def test_mkdirs(self):
        root = "/w-mkdirs"
        self.mkdir(root, "750")
        self.mkdir(root + "/a", "700")
        self.mkdir(root + "/a", "700")   # existing: still true
        self.mkdir(root + "/b/c/d", "711")  # missing parents
        self.mkdir(root + "/e")            # no permission: the server's default
        self.same(root)

    def test_rename(self):
        root = "/w-rename"
        self.mkdir(root)
        self.mkdir(root + "/dir")
        self.create(root + "/a", b"file a", permission="640")
        r = self.call("PUT", root + "/a", "RENAME", 200, destination=root + "/b")
        self.assertEqual(r.json(), {"boolean": True})
        # into an existing directory: HDFS moves the source inside it
        r = self.call("PUT", root + "/b", "RENAME", 200, destination=root + "/dir")
        self.assertEqual(r.json(), {"boolean": True})
        self.assertIsNotNone(self.s.g1_status(root + "/dir/b"))
        # onto an existing file: refused without OVERWRITE, replaces it with renameoptions=OVERWRITE
        self.create(root + "/x", b"x content")
        self.create(root + "/y", b"y content that will be replaced")
        r = self.call("PUT", root + "/x", "RENAME", 200, destination=root + "/y")
        self.assertEqual(r.json(), {"boolean": False})
        r = self.call("PUT", root + "/x", "RENAME", 200, destination=root + "/y", renameoptions="OVERWRITE")
        # Hadoop's rename-with-options answers 200 with no body; ADLS answers {"boolean":true}
        self.assertEqual(r.body, b"" if self.DIALECT == "hadoop" else b'{"boolean":true}')
        # a directory with content, and a missing source (false, nothing changes)
        self.create(root + "/tree/s1/f1", b"1")
        self.create(root + "/tree/s2/f2", b"22")
        r = self.call("PUT", root + "/tree", "RENAME", 200, destination=root + "/moved")
        self.assertEqual(r.json(), {"boolean": True})
        r = self.call("PUT", root + "/nothere", "RENAME", 200, destination=root + "/z")
        self.assertEqual(r.json(), {"boolean": False})
        # a destination whose parent is missing: Gen1 says false, so nothing may appear on Gen2 (which
        # would create the parents)
        r = self.call("PUT", root + "/y", "RENAME", 200, destination=root + "/no/such/parent/y")
        self.assertEqual(r.json(), {"boolean": False})
        self.same(root)
        self.assertEqual(self.s.g2_read(root + "/y"), b"x content")
        self.assertEqual(self.s.g2_read(root + "/moved/s2/f2"), b"22")

    def test_delete(self):
        root = "/w-delete"
        self.mkdir(root)
        self.create(root + "/f", b"f")
        self.create(root + "/d/e/g", b"g")
        self.create(root + "/keep/h", b"h")
        r = self.call("DELETE", root + "/f", "DELETE", 200)
        self.assertEqual(r.json(), {"boolean": True})
        # non-recursive delete of a non-empty directory: Gen1 refuses, nothing changes
        r = self.p.webhdfs("DELETE", root + "/d", "DELETE", recursive="false")
        self.assertNotEqual(r.status, 200, r)
        self.assertIn(b"RemoteException", r.body)
        r = self.call("DELETE", root + "/d", "DELETE", 200, recursive="true")
        self.assertEqual(r.json(), {"boolean": True})
        r = self.call("DELETE", root + "/nothere", "DELETE", 200, recursive="true")
        self.assertEqual(r.json(), {"boolean": False})
        self.same(root)
        self.assertEqual(self.s.g2("HEAD", root + "/d").status, 404)

    def test_concat(self):
        root = "/w-concat"
        self.mkdir(root)
        parts = [os.urandom(n) for n in (10, 20000, 3)]
        self.create(root + "/target", b"T:")
        for i, d in enumerate(parts):
            self.create(root + "/p%d" % i, d)
        self.call("POST", root + "/target", "CONCAT", 200, sources=",".join(root + "/p%d" % i for i in range(3)))
        self.same(root)
        self.assertEqual(self.s.g2_read(root + "/target"), b"T:" + b"".join(parts))

    def test_appends_right_behind_a_concat(self):
        """APPENDs without an offset sent right after a CONCAT (and an MSCONCAT): the concat reaches Gen2 as
        a copy of Gen1's newest target, which may already hold those appends; they must not land twice."""
        root = "/w-concat-append"
        self.mkdir(root)
        want = {}
        for k in range(8):
            t = "%s/t%d" % (root, k)
            parts = [os.urandom(500 + 37 * i) for i in range(3)]
            self.create(t, b"T:")
            for i, d in enumerate(parts):
                self.create("%s.p%d" % (t, i), d)
            srcs = ["%s.p%d" % (t, i) for i in range(3)]
            if k % 2:
                self.call("POST", t, "MSCONCAT", 200, body=json.dumps({"sources": srcs}).encode(),
                          headers={"Content-Type": "application/json"})
            else:
                self.call("POST", t, "CONCAT", 200, sources=",".join(srcs))
            tail = b""
            for a in range(3):
                chunk = ("+%d.%d" % (k, a)).encode()
                self.append(t, chunk)
                tail += chunk
            want[t] = b"T:" + b"".join(parts) + tail
        self.same(root)
        for t, data in want.items():
            self.assertEqual(self.s.g2_read(t), data, t)

    def test_msconcat(self):
        root = "/w-msconcat"
        self.mkdir(root)
        seg = root + "/out.bin.segments.ab12"
        parts = [os.urandom(n) for n in (4096, 1, 65536 + 7)]
        for i, d in enumerate(parts):
            self.create("%s/out.bin_%d" % (seg, i), d)
        self.create(seg + "/unrelated", b"deleteSourceDirectory removes this too")
        body = json.dumps({"sources": ["%s/out.bin_%d" % (seg, i) for i in range(3)]})
        self.call("POST", root + "/out.bin", "MSCONCAT", 200, body=body,
                  headers={"Content-Type": "application/json"}, deleteSourceDirectory="true")
        self.assertIsNone(self.s.g1_status(seg))
        # without deleteSourceDirectory: only the sources go
        seg2 = root + "/two"
        self.create(seg2 + "/a", b"A")
        self.create(seg2 + "/b", b"B")
        self.create(seg2 + "/stays", b"S")
        self.call("POST", root + "/ab", "MSCONCAT", 200, body=json.dumps({"sources": [seg2 + "/a", seg2 + "/b"]}),
                  headers={"Content-Type": "application/json"})
        self.same(root)
        self.assertEqual(self.s.g2_read(root + "/out.bin"), b"".join(parts))
        self.assertEqual(self.s.g2_read(root + "/ab"), b"AB")

    def test_setpermission_setowner(self):
        root = "/w-perm"
        self.mkdir(root)
        self.create(root + "/f", b"f", permission="644")
        self.mkdir(root + "/d", "755")
        self.call("PUT", root + "/f", "SETPERMISSION", 200, permission="600")
        self.call("PUT", root + "/d", "SETPERMISSION", 200, permission="1777")
        self.call("PUT", root + "/f", "SETOWNER", 200, owner="alice", group="staff")
        self.call("PUT", root + "/d", "SETOWNER", 200, owner="bob")
        self.call("PUT", root + "/d", "SETOWNER", 200, group="analysts")
        self.same(root)
        self.assertEqual(self.s.g1_status(root + "/d")["permission"], "1777")

    def test_acl_ops(self):
        root = "/w-acl"
        self.mkdir(root)
        f, d = root + "/f", root + "/d"
        self.create(f, b"acl", permission="640")
        self.mkdir(d, "750")
        self.call("PUT", f, "SETACL", 200, aclspec="user::rw-,user:bob:r--,group::r--,mask::r--,other::---")
        self.same(root)
        self.call("PUT", f, "MODIFYACLENTRIES", 200, aclspec="user:carl:rw-,group:eng:r--")
        self.same(root)
        self.call("PUT", f, "REMOVEACLENTRIES", 200, aclspec="user:bob")
        self.same(root)
        self.call("PUT", d, "SETACL", 200, aclspec="user::rwx,group::r-x,other::---,default:user::rwx,"
                  "default:user:bob:r-x,default:group::r-x,default:mask::r-x,default:other::---")
        self.same(root)
        self.call("PUT", d, "MODIFYACLENTRIES", 200, aclspec="user:dave:rwx,default:user:erin:r--")
        self.same(root)
        # a file created in a directory with a default ACL inherits it on both sides
        self.create(d + "/inherits", b"i")
        self.mkdir(d + "/subdir")
        self.same(root)
        self.call("PUT", d, "REMOVEDEFAULTACL", 200)
        self.same(root)
        self.call("PUT", d, "REMOVEACL", 200)
        self.call("PUT", f, "REMOVEACL", 200)
        self.same(root)

    def test_settimes_kept_in_the_times_property(self):
        root = "/w-times"
        self.mkdir(root)
        self.create(root + "/f", b"t")
        self.call("PUT", root + "/f", "SETTIMES", 200, modificationtime=1000000000000, accesstime=-1)
        self.assertEqual(self.s.g1_status(root + "/f")["modificationTime"], 1000000000000)
        st = self.s.wait_applied()
        # The stack is shared by the class's tests: other tests' divergences (a rapid rename that moved
        # a path before its ACL was read) are theirs. SETTIMES of this file is none any more.
        mine = [d for d in st["divergences"] if d["path"].startswith(root)]
        self.assertEqual(mine, [], st)
        self.assertEqual(proxylib.gen2_times(self.s, root + "/f")["mtime"], 1000000000000)
        self.assertEqual(self.s.compare(root, check_times=True), [])  # times included

    def test_setexpiry(self):
        root = "/w-expiry"
        self.mkdir(root)
        for n in ("rel", "abs", "never"):
            self.create(root + "/" + n, n.encode())
        hour = 3600 * 1000
        self.call("PUT", root + "/rel", "SETEXPIRY", 200, prefix="/WebHdfsExt", expiryOption="RelativeToNow",
                  expireTime=hour)
        when = (int(time.time()) + 86400) * 1000
        self.call("PUT", root + "/abs", "SETEXPIRY", 200, prefix="/WebHdfsExt", expiryOption="Absolute",
                  expireTime=when)
        self.call("PUT", root + "/never", "SETEXPIRY", 200, prefix="/WebHdfsExt", expiryOption="RelativeToNow",
                  expireTime=hour)
        self.call("PUT", root + "/never", "SETEXPIRY", 200, prefix="/WebHdfsExt", expiryOption="NeverExpire")
        self.same(root)
        for n in ("rel", "abs", "never"):
            g1 = self.s.g1_status(root + "/" + n)["msExpirationTime"]
            h = self.s.g2("HEAD", root + "/" + n)
            self.assertEqual(h.status, 200)
            exp = h.header("x-ms-expiry-time")
            g2 = calendar.timegm(email.utils.parsedate(exp)) * 1000 if exp else 0
            if n == "never":
                self.assertEqual((g1, g2), (0, 0), exp)
            else:
                self.assertGreater(g1, 0)
                self.assertLessEqual(abs(g1 - g2), 3000, (n, g1, exp))
        self.assertAlmostEqual(self.s.g1_status(root + "/abs")["msExpirationTime"], when, delta=1000)

    def test_parallel_writers_keep_per_path_order(self):
        """Eight writers at once, each creating, appending to and renaming its own file: every path's
        operations must reach Gen2 in the order Gen1 accepted them."""
        root = "/w-parallel"
        self.mkdir(root)
        errors = []

        def writer(i):
            try:
                f = "%s/f%d" % (root, i)
                self.create(f, b"", syncFlag="DATA")
                off = 0
                for k in range(12):
                    chunk = ("%d:%d;" % (i, k)).encode() * (k + 1)
                    self.append(f, chunk, offset=off, syncFlag="DATA" if k < 11 else "CLOSE")
                    off += len(chunk)
                self.call("PUT", f, "RENAME", 200, destination="%s/done%d" % (root, i))
                self.call("PUT", "%s/done%d" % (root, i), "SETPERMISSION", 200, permission="600")
            except BaseException as e:  # surfaced below
                errors.append(e)

        ts = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertEqual(errors, [])
        self.same(root)

    def test_keep_alive_connection(self):
        """One client connection for a whole session, as SDKs do: answers of every kind (201, 200 with and
        without a body, 307, errors) must leave the connection usable."""
        root = "/w-keepalive"
        u = urllib.parse.urlsplit(self.p.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        try:
            steps = [("PUT", root, "MKDIRS", None, {}, 200),
                     ("PUT", root + "/f", "CREATE", b"abc", {"write": "true"}, 201),
                     ("POST", root + "/f", "APPEND", b"def", {"append": "true"}, 200),
                     ("PUT", root + "/g", "CREATE", b"", {}, 307),
                     ("POST", root + "/f", "APPEND", b"x", {"append": "true", "offset": 1}, 400),
                     ("GET", root + "/f", "OPEN", None, {"read": "true"}, 200),
                     ("GET", root + "/missing", "GETFILESTATUS", None, {}, 404),
                     ("PUT", root + "/f", "SETPERMISSION", None, {"permission": "600"}, 200),
                     ("GET", root, "LISTSTATUS", None, {}, 200),
                     ("PUT", "/w-keepalive/../x", "MKDIRS", None, {}, 400),
                     ("PUT", root + "/f", "RENAME", None, {"destination": root + "/h"}, 200)]
            for method, path, op, body, params, want in steps:
                target = proxylib.wh_target(path, op, **params) if ".." not in path else \
                    "/webhdfs/v1" + path + "?op=" + op
                conn.request(method, target, body=body if body is not None else b"",
                             headers={"Content-Length": str(len(body or b""))})
                r = conn.getresponse()
                data = r.read()
                self.assertEqual(r.status, want, (method, op, path, data[:200]))
                if op == "OPEN":
                    self.assertEqual(data, b"abcdef")
        finally:
            conn.close()
        self.same(root)

    def test_many_connections_at_once(self):
        """64 writers at once, each on its own connection: no thread per connection, nothing lost."""
        root = "/w-many"
        self.mkdir(root)
        errors = []

        def writer(i):
            try:
                for k in range(4):
                    self.create("%s/c%02d/f%d" % (root, i, k), ("%d/%d" % (i, k)).encode() * 100)
            except BaseException as e:
                errors.append(e)

        ts = [threading.Thread(target=writer, args=(i,)) for i in range(64)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertEqual(errors, [])
        self.same(root)

    def test_rapid_namespace_sequences(self):
        """Without waiting for Gen2: writes into a directory, the directory renamed, more writes under the new
        name, a delete and a re-create, the directory renamed back, in four trees at once. Gen2 must end
        as Gen1 did: operations under a renamed or deleted directory keep their order."""
        errors = []

        def seq(i):
            try:
                a, b = "/w-rapid%d/a" % i, "/w-rapid%d/b" % i
                self.create(a + "/f", b"one;")
                self.append(a + "/f", b"two;")
                self.create(a + "/sub/g", b"g")
                self.call("PUT", a, "RENAME", 200, destination=b)
                self.append(b + "/f", b"three;")
                self.call("PUT", b + "/f", "SETPERMISSION", 200, permission="600")
                self.call("PUT", b, "SETACL", 200, aclspec="user::rwx,user:bob:r-x,group::r-x,mask::r-x,other::---")
                self.call("DELETE", b + "/sub", "DELETE", 200, recursive="true")
                self.create(b + "/sub/g", b"new g")
                self.call("PUT", b, "RENAME", 200, destination=a)
                self.create(b + "/again", b"b again")
                self.call("DELETE", a + "/f", "DELETE", 200)
                self.create(a + "/f", b"recreated")
            except BaseException as e:
                errors.append(e)

        ts = [threading.Thread(target=seq, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertEqual(errors, [])
        for i in range(4):
            self.same("/w-rapid%d" % i)
            self.assertEqual(self.s.g2_read("/w-rapid%d/a/f" % i), b"recreated")

    def test_concurrent_appenders(self):
        """CONCURRENTAPPEND from eight writers at once; Gen2 gets the file as Gen1 ended up with it."""
        root = "/w-concurrent-many"
        self.mkdir(root)
        f = root + "/log"
        errors = []

        def writer(i):
            try:
                for k in range(5):
                    self.call("POST", f, "CONCURRENTAPPEND", 200, body=("w%d-%d\n" % (i, k)).encode() * 20,
                              prefix="/WebHdfsExt", appendMode="autocreate")
            except BaseException as e:
                errors.append(e)

        ts = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertEqual(errors, [])
        self.same(root)
        want = sum(len(("w%d-%d\n" % (i, k)).encode()) * 20 for i in range(8) for k in range(5))
        self.assertEqual(len(self.s.g2_read(f)), want)


class WritesHadoopUpstream(WritesBase):
    """The same writes with the Gen1 upstream in the hadoop dialect (proxy follows the datanode 307)."""
    DIALECT = "hadoop"


if __name__ == "__main__":
    emulib.main()
