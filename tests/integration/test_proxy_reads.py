"""Reads through the proxy equal the direct Gen1 answers (issue 3: "reads go to the primary and stream
back"), for both Gen1 upstream dialects: OPEN with offset/length (including a multi-MiB body and a bad
offset), GETFILESTATUS, LISTSTATUS and MSLISTSTATUS with paging, GETCONTENTSUMMARY, GETACLSTATUS,
MSGETACLSTATUS and CHECKACCESS (granted and denied), errors for missing paths. The answer the writer
gets must be Gen1's: same status, same body, same Content-Type. Reads never reach Gen2.
"""
import json
import os

import emulib
import proxylib

MiB = 1024 * 1024


class Reads(emulib.unittest.TestCase):
    DIALECT = "adls"
    ROOT = "/reads"

    @classmethod
    def setUpClass(cls):
        cls.s = s = proxylib.Stack(dialect=cls.DIALECT)
        cls.p = s.proxy
        cls.data = os.urandom(5 * MiB + 123)
        r = cls.ROOT
        # the fixture is written straight into Gen1 (reads do not depend on the applier)
        assert s.g1("PUT", r + "/dir", "MKDIRS", permission="750").status == 200
        assert s.g1("PUT", r + "/private", "MKDIRS", permission="700").status == 200
        assert s.g1("PUT", r + "/big.bin", "CREATE", body=cls.data[:4 * MiB], write="true").status == 201
        assert s.g1("POST", r + "/big.bin", "APPEND", body=cls.data[4 * MiB:], append="true").status == 200
        for i in range(7):
            assert s.g1("PUT", "%s/dir/f%d" % (r, i), "CREATE", body=b"x" * (i * 10), write="true").status == 201
        assert s.g1("PUT", r + "/dir", "SETACL", aclspec="user::rwx,user:bob:r-x,group::r-x,mask::r-x,other::---,"
                    "default:user::rwx,default:group::r-x,default:other::---").status == 200

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def both(self, method, path, op, **params):
        """The same read straight to Gen1, then through the proxy (one-step flags included)."""
        direct = self.s.g1(method, path, op, **params)
        via = self.p.webhdfs(method, path, op, **params)
        return direct, via

    def assert_same_answer(self, direct, via, what):
        self.assertEqual(via.status, direct.status, "%s: %r vs direct %r" % (what, via, direct))
        ct_d = (direct.header("content-type") or "").replace(" ", "").lower()
        ct_v = (via.header("content-type") or "").replace(" ", "").lower()
        if direct.body:
            self.assertEqual(ct_v, ct_d, what)
        if ct_d.startswith("application/json") and direct.body:
            self.assertEqual(json.loads(via.body), json.loads(direct.body), what)
        else:
            self.assertEqual(via.body, direct.body, what)

    def check(self, method, path, op, **params):
        d, v = self.both(method, path, op, **params)
        self.assert_same_answer(d, v, "%s %s %r" % (op, path, params))
        return v

    def test_open(self):
        r = self.ROOT + "/big.bin"
        v = self.check("GET", r, "OPEN", read="true")
        self.assertEqual(len(v.body), len(self.data))
        self.assertEqual(v.body, self.data)
        for off, ln in ((0, 10), (5, 1000), (4 * MiB - 3, 10), (len(self.data) - 1, 100), (3, 2 * MiB)):
            v = self.check("GET", r, "OPEN", read="true", offset=off, length=ln)
            self.assertEqual(v.body, self.data[off:off + ln])
        # past the end: Gen1's error, relayed
        v = self.check("GET", r, "OPEN", read="true", offset=len(self.data) + 10)
        self.assertEqual(v.status, 400)
        self.assertEqual(v.json()["RemoteException"]["exception"], "BadOffsetException")
        v = self.check("GET", self.ROOT + "/missing", "OPEN", read="true")
        self.assertEqual(v.status, 404)

    def test_status_and_listing(self):
        for path in (self.ROOT, self.ROOT + "/dir", self.ROOT + "/dir/f3", self.ROOT + "/nothere"):
            self.check("GET", path, "GETFILESTATUS")
            self.check("GET", path, "MSGETFILESTATUS")
        v = self.check("GET", self.ROOT + "/dir", "LISTSTATUS")
        self.assertEqual(len(v.json()["FileStatuses"]["FileStatus"]), 7)
        self.check("GET", self.ROOT + "/nothere", "LISTSTATUS")
        # paging: the proxy relays continuation tokens untouched
        for op in ("LISTSTATUS", "MSLISTSTATUS"):
            names, after = [], None
            for _ in range(10):
                params = {"listSize": 3}
                if after:
                    params["listAfter"] = after
                v = self.check("GET", self.ROOT + "/dir", op, **params)
                fss = v.json()["FileStatuses"]
                names += [f["pathSuffix"] for f in fss["FileStatus"]]
                after = fss.get("continuationToken")
                if not after:
                    break
            self.assertEqual(names, ["f%d" % i for i in range(7)], op)

    def test_summary_acl_access(self):
        self.check("GET", self.ROOT, "GETCONTENTSUMMARY")
        v = self.check("GET", self.ROOT + "/dir", "GETCONTENTSUMMARY")
        self.assertEqual(v.json()["ContentSummary"]["fileCount"], 7)
        for op in ("GETACLSTATUS", "MSGETACLSTATUS"):
            v = self.check("GET", self.ROOT + "/dir", op)
            self.check("GET", self.ROOT + "/big.bin", op)
        self.assertIn("user:bob:r-x", v.json()["AclStatus"]["entries"])
        v = self.check("GET", self.ROOT + "/dir", "CHECKACCESS", fsaction="r-x")
        self.assertEqual(v.status, 200)
        # the writer's identity passes through: a non-owner is refused by Gen1, and the proxy relays it
        v = self.check("GET", self.ROOT + "/private", "CHECKACCESS", fsaction="r--", **{"user.name": "mallory"})
        self.assertEqual(v.status, 403)
        v = self.check("GET", self.ROOT + "/private", "LISTSTATUS", **{"user.name": "mallory"})
        self.assertEqual(v.status, 403)

    def test_reads_never_reach_gen2(self):
        before = self.s.g2_counters()
        self.p.webhdfs("GET", self.ROOT + "/big.bin", "OPEN", read="true")
        self.p.webhdfs("GET", self.ROOT + "/dir", "LISTSTATUS")
        self.p.webhdfs("GET", self.ROOT + "/dir", "GETACLSTATUS")
        self.p.webhdfs("GET", self.ROOT, "GETCONTENTSUMMARY")
        self.assertEqual(int(self.p.status().get("pending", -1)), 0)
        self.assertEqual(proxylib.counter_delta(before, self.s.g2_counters()), {})


class ReadsHadoopUpstream(Reads):
    DIALECT = "hadoop"


if __name__ == "__main__":
    emulib.main()
