"""Gen2 emulator access control: HEAD getAccessControl, PATCH setAccessControl (owner, group,
permissions, full-replace x-ms-acl, If-Match read-modify-write as ABFS does it), default-ACL
inheritance on create, and setAccessControlRecursive (set/modify/remove, maxRecords + continuation,
forceFlag, the JSON result)."""
import itertools
import urllib.parse

import emulib

A = "/" + emulib.DEV_ACCOUNT
_seq = itertools.count(1)


def err(r):
    return r.header("x-ms-error-code")


class AclTests(emulib.EmuTestCase):
    EMUS = {"g": dict(service="gen2")}

    @property
    def e(self):
        return self.emus["g"]

    def fs(self):
        name = "acl%d" % next(_seq)
        assert self.e.gen2("PUT", "%s/%s?resource=filesystem" % (A, name)).status == 201
        return name

    def mk(self, fs, path, kind="file", headers=None):
        r = self.e.gen2("PUT", "%s/%s/%s?resource=%s" % (A, fs, path, kind), headers=headers)
        self.assertEqual(r.status, 201, r)
        return r

    def get_acl(self, fs, path):
        r = self.e.gen2("HEAD", "%s/%s/%s?action=getAccessControl&upn=false" % (A, fs, path))
        self.assertEqual(r.status, 200, r)
        return r

    def set_acl(self, fs, path, headers):
        return self.e.gen2("PATCH", "%s/%s/%s?action=setAccessControl" % (A, fs, path), headers=headers)

    def rec(self, fs, path, mode, acl, extra=""):
        return self.e.gen2("PATCH", "%s/%s/%s?action=setAccessControlRecursive&mode=%s%s" % (A, fs, path, mode, extra),
                           headers={"x-ms-acl": acl})

    def test_set_permissions_owner_group(self):
        fs = self.fs()
        etag = self.mk(fs, "f").header("etag")
        r = self.set_acl(fs, "f", {"x-ms-permissions": "0754"})
        self.assertEqual(r.status, 200)
        self.assertNotEqual(r.header("etag"), etag)  # ACL changes change the ETag (ABFS relies on If-Match)
        self.assertEqual(self.get_acl(fs, "f").header("x-ms-permissions"), "rwxr-xr--")
        self.assertEqual(self.set_acl(fs, "f", {"x-ms-permissions": "rw-------"}).status, 200)
        self.assertEqual(self.get_acl(fs, "f").header("x-ms-acl"), "user::rw-,group::---,other::---")
        r = self.set_acl(fs, "f", {"x-ms-owner": "oid-owner", "x-ms-group": "oid-group"})
        self.assertEqual(r.status, 200)
        h = self.get_acl(fs, "f")
        self.assertEqual((h.header("x-ms-owner"), h.header("x-ms-group")), ("oid-owner", "oid-group"))
        # sticky bit on a directory
        self.mk(fs, "d", "directory")
        self.assertEqual(self.set_acl(fs, "d", {"x-ms-permissions": "1777"}).status, 200)
        self.assertEqual(self.get_acl(fs, "d").header("x-ms-permissions"), "rwxrwxrwt")

    def test_acl_replace_and_rmw(self):
        fs = self.fs()
        self.mk(fs, "d", "directory")
        spec = "user::rwx,user:u1:r-x,group::r-x,mask::r-x,other::---,default:user::rwx,default:group::r-x," \
               "default:other::---"
        self.assertEqual(self.set_acl(fs, "d", {"x-ms-acl": spec}).status, 200)
        h = self.get_acl(fs, "d")
        acl = h.header("x-ms-acl")
        self.assertIn("user:u1:r-x", acl)
        self.assertIn("default:user::rwx", acl)
        self.assertEqual(h.header("x-ms-permissions"), "rwxr-x---+")
        # x-ms-acl replaces the whole ACL: no default entries given -> none left (ABFS merges client-side)
        self.assertEqual(self.set_acl(fs, "d", {"x-ms-acl": "user::rwx,group::r-x,other::--x"}).status, 200)
        h = self.get_acl(fs, "d")
        self.assertEqual(h.header("x-ms-acl"), "user::rwx,group::r-x,other::--x")
        self.assertEqual(h.header("x-ms-permissions"), "rwxr-x--x")
        # ABFS read-modify-write with If-Match
        etag = h.header("etag")
        self.assertEqual(self.set_acl(fs, "d", {"x-ms-acl": "user::rwx,user:u2:rwx,group::r-x,mask::rwx,other::---",
                                                "If-Match": etag}).status, 200)
        r = self.set_acl(fs, "d", {"x-ms-acl": "user::rwx,group::---,other::---", "If-Match": etag})
        self.assertEqual((r.status, err(r)), (412, "ConditionNotMet"))
        self.assertIn("user:u2:rwx", self.get_acl(fs, "d").header("x-ms-acl"))

    def test_invalid_input_changes_nothing(self):
        fs = self.fs()
        self.mk(fs, "f")
        before = self.get_acl(fs, "f")
        cases = [({"x-ms-permissions": "0644", "x-ms-acl": "user::rwx,group::r-x,other::---"}, "InvalidInput"),
                 ({"x-ms-permissions": "0888"}, "InvalidHeaderValue"),
                 ({"x-ms-permissions": "rwxr-x"}, "InvalidHeaderValue"),
                 ({"x-ms-acl": "user::rwx,group::r-x,other::---,user::r--"}, "InvalidHeaderValue"),
                 ({"x-ms-acl": "user:bob:rwq"}, "InvalidHeaderValue"),
                 ({"x-ms-acl": "default:user::rwx,user::rwx,group::r-x,other::---"}, "InvalidInput"),
                 ({}, "MissingRequiredHeader")]
        for h, code in cases:
            r = self.set_acl(fs, "f", h)
            self.assertEqual((r.status, err(r)), (400, code), h)
        after = self.get_acl(fs, "f")
        for k in ("etag", "x-ms-acl", "x-ms-permissions", "x-ms-owner"):
            self.assertEqual(before.header(k), after.header(k))
        r = self.set_acl(fs, "missing", {"x-ms-permissions": "0600"})
        self.assertEqual((r.status, err(r)), (404, "PathNotFound"))

    def test_default_acl_inheritance(self):
        fs = self.fs()
        self.mk(fs, "d", "directory", headers={
            "x-ms-acl": "user::rwx,group::r-x,other::---,default:user::rwx,default:user:u1:rwx,"
                        "default:group::r-x,default:mask::rwx,default:other::r--"})
        self.mk(fs, "d/f", headers={"x-ms-permissions": "0640", "x-ms-umask": "0077"})
        acl = self.get_acl(fs, "d/f").header("x-ms-acl")
        self.assertIn("user:u1:rwx", acl)       # inherited as an access entry
        self.assertNotIn("default:", acl)       # files get no default ACL
        self.assertIn("other::---", acl)        # masked by the requested mode 0640
        self.mk(fs, "d/sub", "directory")
        acl = self.get_acl(fs, "d/sub").header("x-ms-acl")
        self.assertIn("default:user:u1:rwx", acl)  # directories also inherit it as their default ACL
        self.assertIn("user:u1:rwx", acl)

    def test_root_directory_acl(self):
        fs = self.fs()
        h = self.e.gen2("HEAD", "%s/%s/?action=getAccessControl" % (A, fs))
        self.assertEqual(h.status, 200)
        self.assertEqual(h.header("x-ms-permissions"), "rwxr-x---")
        r = self.e.gen2("PATCH", "%s/%s/?action=setAccessControl" % (A, fs), headers={"x-ms-permissions": "0770"})
        self.assertEqual(r.status, 200)
        h = self.e.gen2("HEAD", "%s/%s/?action=getAccessControl" % (A, fs))
        self.assertEqual(h.header("x-ms-permissions"), "rwxrwx---")

    def tree(self, fs):
        self.mk(fs, "t/a", "directory")
        self.mk(fs, "t/a/f1")
        self.mk(fs, "t/a/f2")
        self.mk(fs, "t/b", "directory")
        self.mk(fs, "t/b/f3")
        return ["t", "t/a", "t/a/f1", "t/a/f2", "t/b", "t/b/f3"]

    def test_recursive_set_modify_remove(self):
        fs = self.fs()
        names = self.tree(fs)
        r = self.rec(fs, "t", "modify", "user:u9:r-x,default:user:u9:r-x")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"directoriesSuccessful": 3, "filesSuccessful": 3, "failureCount": 0,
                                    "failedEntries": []})
        self.assertIsNone(r.header("x-ms-continuation"))
        for n in names:
            acl = self.get_acl(fs, n).header("x-ms-acl")
            self.assertIn("user:u9:r-x", acl, n)
            self.assertEqual("default:user:u9:r-x" in acl, "f" not in n.split("/")[-1], n)
        r = self.rec(fs, "t", "remove", "user:u9,default:user:u9")
        self.assertEqual(r.status, 200, r)
        for n in names:
            self.assertNotIn("u9", self.get_acl(fs, n).header("x-ms-acl"), n)
        r = self.rec(fs, "t", "set", "user::rwx,group::r--,other::---")
        self.assertEqual(r.json()["filesSuccessful"], 3)
        for n in names:
            self.assertEqual(self.get_acl(fs, n).header("x-ms-acl"), "user::rwx,group::r--,other::---")

    def test_recursive_paging(self):
        fs = self.fs()
        self.tree(fs)
        totals, calls, tok = [0, 0], 0, None
        while True:
            extra = "&maxRecords=2"
            if tok:
                extra += "&continuation=" + urllib.parse.quote(tok, safe="")
            r = self.rec(fs, "t", "modify", "user:pg:rwx", extra)
            self.assertEqual(r.status, 200, r)
            j = r.json()
            self.assertLessEqual(j["directoriesSuccessful"] + j["filesSuccessful"], 2)
            totals[0] += j["directoriesSuccessful"]
            totals[1] += j["filesSuccessful"]
            calls += 1
            tok = r.header("x-ms-continuation")
            if not tok:
                break
            self.assertLess(calls, 10)
        self.assertEqual((totals, calls), ([3, 3], 3))

    def test_recursive_errors(self):
        fs = self.fs()
        self.tree(fs)
        r = self.rec(fs, "t", "sideways", "user:x:rwx")
        self.assertEqual((r.status, err(r)), (400, "InvalidQueryParameterValue"))
        r = self.e.gen2("PATCH", "%s/%s/t?action=setAccessControlRecursive" % (A, fs), headers={"x-ms-acl": "user:x:rwx"})
        self.assertEqual((r.status, err(r)), (400, "MissingRequiredQueryParameter"))
        r = self.e.gen2("PATCH", "%s/%s/t?action=setAccessControlRecursive&mode=set" % (A, fs))
        self.assertEqual((r.status, err(r)), (400, "MissingRequiredHeader"))
        r = self.rec(fs, "t", "modify", "user:x:rwz")
        self.assertEqual((r.status, err(r)), (400, "InvalidHeaderValue"))
        r = self.rec(fs, "t", "modify", "user:x:rwx", "&continuation=notatoken")
        self.assertEqual(r.status, 400)
        r = self.rec(fs, "nothere", "modify", "user:x:rwx")
        self.assertEqual((r.status, err(r)), (404, "PathNotFound"))
        # set without the base entries fails per entry; forceFlag decides whether it goes on
        r = self.rec(fs, "t", "set", "user:x:rwx")
        self.assertEqual(r.status, 200)
        j = r.json()
        self.assertEqual((j["failureCount"], j["directoriesSuccessful"]), (1, 0))
        self.assertEqual(set(j["failedEntries"][0]), {"errorMessage", "name", "type"})
        self.assertEqual((j["failedEntries"][0]["name"], j["failedEntries"][0]["type"]), ("t", "DIRECTORY"))
        r = self.rec(fs, "t", "set", "user:x:rwx", "&forceFlag=true")
        self.assertEqual(r.json()["failureCount"], 6)
        self.assertIsNone(r.header("x-ms-continuation"))


if __name__ == "__main__":
    emulib.main()
