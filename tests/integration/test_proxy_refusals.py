"""Writes Gen1 refuses are relayed unchanged and nothing reaches Gen2 (issue 3; proxy/ARCHITECTURE.md write path,
promise 3: "the secondary never sees a write the primary refused").

Cases: APPEND at a wrong offset (400 BadOffsetException), permission denied through the emulator's
HDFS checks for a non-owner user.name (403 AccessControlException), a lease held by another writer
(the emulator's 500 RuntimeException carrying 0x83090a16), CREATE overwrite=false on an existing file
(403 FileAlreadyExistsException), APPEND to a missing file (404), a non-recursive DELETE of a
non-empty directory, SETOWNER by a non-superuser. For each: the proxy's answer equals the answer Gen1
gives the same request directly (status, Content-Type, body), the Gen2 emulator's request counters do
not move, nothing is pending in the applier, and Gen2 still holds the earlier state.
"""
import time

import emulib
import proxylib

LEASE_A = "aaaaaaaa-0000-4000-8000-000000000001"
LEASE_B = "bbbbbbbb-0000-4000-8000-000000000002"


class Refusals(emulib.unittest.TestCase):
    DIALECT = "adls"
    ROOT = "/refused"

    @classmethod
    def setUpClass(cls):
        cls.s = s = proxylib.Stack(dialect=cls.DIALECT)
        cls.p = p = s.proxy
        r = cls.ROOT

        def ok(resp, want):
            assert resp.status == want, resp

        # the fixture goes through the proxy, so Gen2 holds it too
        ok(p.webhdfs("PUT", r, "MKDIRS", permission="755"), 200)
        ok(p.webhdfs("PUT", r + "/file", "CREATE", body=b"0123456789", write="true", permission="644"), 201)
        ok(p.webhdfs("PUT", r + "/private", "MKDIRS", permission="700"), 200)
        ok(p.webhdfs("PUT", r + "/full/child", "CREATE", body=b"c", write="true"), 201)
        ok(p.webhdfs("PUT", r + "/leased", "CREATE", body=b"held", write="true", syncFlag="DATA",
                     leaseid=LEASE_A), 201)
        s.wait_applied()
        cls.gen2_file = s.g2_read(r + "/file")

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def refused(self, method, path, op, want_status, want_exception, body=None, prefix="/webhdfs/v1", **params):
        s = self.s
        s.wait_applied()
        before = s.g2_counters()
        via = self.p.webhdfs(method, path, op, body=body, prefix=prefix, **params)
        self.assertEqual(via.status, want_status, via)
        self.assertEqual(via.json()["RemoteException"]["exception"], want_exception, via)
        # the same request straight to Gen1 (it changes nothing, being refused) gives the same answer
        direct = s.g1(method, path, op, body=body, prefix=prefix, **params)
        self.assertEqual(via.status, direct.status)
        self.assertEqual(via.json(), direct.json(), "the proxy must relay Gen1's body unchanged")
        self.assertEqual((via.header("content-type") or "").replace(" ", "").lower(),
                         (direct.header("content-type") or "").replace(" ", "").lower())
        # give a wrongly queued Gen2 write time to show up, then check that none did
        time.sleep(0.3)
        st = self.p.status()
        self.assertEqual(int(st["pending"]), 0, st)
        self.assertEqual(proxylib.counter_delta(before, s.g2_counters()), {},
                         "a refused %s reached Gen2" % op)
        return via

    def test_bad_offset(self):
        f = self.ROOT + "/file"
        self.refused("POST", f, "APPEND", 400, "BadOffsetException", body=b"late", append="true", offset=3)
        self.refused("POST", f, "APPEND", 400, "BadOffsetException", body=b"gap", append="true", offset=11)
        self.assertEqual(self.s.g2_read(f), self.gen2_file)

    def test_permission_denied(self):
        mallory = {"user.name": "mallory"}
        self.refused("PUT", self.ROOT + "/private/x", "CREATE", 403, "AccessControlException", body=b"no",
                     write="true", **mallory)
        self.refused("PUT", self.ROOT + "/private/sub", "MKDIRS", 403, "AccessControlException", **mallory)
        self.refused("POST", self.ROOT + "/file", "APPEND", 403, "AccessControlException", body=b"no",
                     append="true", **mallory)
        self.refused("PUT", self.ROOT + "/file", "SETPERMISSION", 403, "AccessControlException",
                     permission="777", **mallory)
        self.refused("DELETE", self.ROOT + "/file", "DELETE", 403, "AccessControlException", **mallory)
        self.refused("PUT", self.ROOT + "/file", "SETOWNER", 403, "AccessControlException", owner="mallory",
                     **mallory)
        self.assertEqual(self.s.g2("HEAD", self.ROOT + "/private/x").status, 404)
        self.s.assert_same(self, self.ROOT)

    def test_lease_conflict(self):
        via = self.refused("POST", self.ROOT + "/leased", "APPEND", 500, "RuntimeException", body=b"intruder",
                           append="true", leaseid=LEASE_B, syncFlag="DATA")
        self.assertIn("0x83090a16", via.json()["RemoteException"]["message"])
        self.refused("PUT", self.ROOT + "/leased", "CREATE", 500, "RuntimeException", body=b"intruder",
                     write="true", overwrite="true", leaseid=LEASE_B)

    def test_existing_file_without_overwrite(self):
        self.refused("PUT", self.ROOT + "/file", "CREATE", 403, "FileAlreadyExistsException", body=b"new",
                     write="true", overwrite="false")
        self.assertEqual(self.s.g2_read(self.ROOT + "/file"), self.gen2_file)

    def test_missing_and_not_empty(self):
        self.refused("POST", self.ROOT + "/missing", "APPEND", 404, "FileNotFoundException", body=b"x",
                     append="true")
        self.refused("DELETE", self.ROOT + "/full", "DELETE", 403, "PathIsNotEmptyDirectoryException",
                     recursive="false")
        self.s.assert_same(self, self.ROOT)


class RefusalsHadoopUpstream(Refusals):
    DIALECT = "hadoop"


if __name__ == "__main__":
    emulib.main()
