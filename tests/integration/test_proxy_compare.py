"""The compare tool of proxylib, checked without the proxy: the same tree written straight into both
emulators compares equal, and each kind of difference (missing path, type, bytes, permission, sticky
bit, owner, group, access ACL, default ACL, extra path on Gen2) is reported. Every proxy test trusts
this tool to say "both sides equal", so it has to be able to say "they differ"."""
import emulib
import proxylib

A = proxylib.A


class CompareToolTests(emulib.unittest.TestCase):
    DIALECT = "adls"

    @classmethod
    def setUpClass(cls):
        cls.s = proxylib.Stack(dialect=cls.DIALECT, start_proxy=False)

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def both_mkdir(self, path, perm="755"):
        s = self.s
        self.assertEqual(s.g1("PUT", path, "MKDIRS", permission=perm).status, 200)
        r = s.g2("PUT", path, "resource=directory", headers={"x-ms-permissions": "0" + perm[-3:] if len(perm) == 3
                                                             else perm, "x-ms-umask": "0000"})
        self.assertEqual(r.status, 201, r)
        self.same_owner(path)

    def both_file(self, path, data, perm="644"):
        s = self.s
        self.assertEqual(s.g1("PUT", path, "CREATE", body=data, write="true", overwrite="true",
                              permission=perm).status, 201)
        r = s.g2("PUT", path, "resource=file", headers={"x-ms-permissions": "0" + perm, "x-ms-umask": "0000"})
        self.assertEqual(r.status, 201, r)
        if data:
            self.assertEqual(s.g2("PATCH", path, "action=append&position=0", body=data).status, 202)
            self.assertEqual(s.g2("PATCH", path, "action=flush&position=%d" % len(data)).status, 200)
        self.same_owner(path)

    def same_owner(self, path):
        st = self.s.g1_status(path)
        r = self.s.g2("PATCH", path, "action=setAccessControl",
                      headers={"x-ms-owner": st["owner"], "x-ms-group": st["group"]})
        self.assertEqual(r.status, 200, r)

    def build(self, root):
        self.both_mkdir(root)
        self.both_mkdir(root + "/d", "750")
        self.both_file(root + "/d/a.txt", b"alpha")
        self.both_file(root + "/d/empty", b"")
        self.both_file(root + "/b.bin", bytes(range(256)) * 40, "600")

    def test_equal_trees(self):
        root = "/same"
        self.build(root)
        # the same ACLs on both sides: a named access entry on a file, default entries on a directory
        s = self.s
        spec = "user::rw-,user:bob:r--,group::r--,mask::r--,other::---"
        self.assertEqual(s.g1("PUT", root + "/d/a.txt", "SETACL", aclspec=spec).status, 200)
        self.assertEqual(s.g2("PATCH", root + "/d/a.txt", "action=setAccessControl",
                              headers={"x-ms-acl": spec}).status, 200)
        dspec = "user::rwx,group::r-x,other::---,default:user::rwx,default:user:carl:r-x,default:group::r-x," \
                "default:mask::r-x,default:other::---"
        self.assertEqual(s.g1("PUT", root + "/d", "SETACL", aclspec=dspec).status, 200)
        self.assertEqual(s.g2("PATCH", root + "/d", "action=setAccessControl",
                              headers={"x-ms-acl": dspec}).status, 200)
        self.assertEqual(s.compare(root), [])
        # sticky bit on both
        self.assertEqual(s.g1("PUT", root + "/d", "SETPERMISSION", permission="1777").status, 200)
        self.assertEqual(s.g2("PATCH", root + "/d", "action=setAccessControl",
                              headers={"x-ms-permissions": "1777"}).status, 200)
        self.assertEqual(s.compare(root), [])

    def test_each_difference_is_reported(self):
        s = self.s
        root = "/diff"
        self.build(root)
        self.assertEqual(s.compare(root), [])
        # bytes
        self.assertEqual(s.g1("POST", root + "/d/a.txt", "APPEND", body=b"!", append="true").status, 200)
        diffs = s.compare(root)
        self.assertTrue(any(d.startswith(root + "/d/a.txt: sha256") for d in diffs), diffs)
        self.assertTrue(any(d.startswith(root + "/d/a.txt: length") for d in diffs), diffs)
        # permission and sticky bit
        self.assertEqual(s.g1("PUT", root + "/b.bin", "SETPERMISSION", permission="640").status, 200)
        self.assertEqual(s.g1("PUT", root + "/d", "SETPERMISSION", permission="1750").status, 200)
        diffs = s.compare(root)
        self.assertIn(root + "/b.bin: permission Gen1='0640' Gen2='0600'", diffs)
        self.assertIn(root + "/d: permission Gen1='1750' Gen2='0750'", diffs)
        # owner and group
        self.assertEqual(s.g1("PUT", root + "/d/empty", "SETOWNER", owner="alice", group="staff").status, 200)
        diffs = s.compare(root)
        self.assertTrue(any(d.startswith(root + "/d/empty: owner Gen1='alice'") for d in diffs), diffs)
        self.assertTrue(any(d.startswith(root + "/d/empty: group Gen1='staff'") for d in diffs), diffs)
        # ACLs: access on a file, default on a directory
        self.assertEqual(s.g1("PUT", root + "/b.bin", "MODIFYACLENTRIES", aclspec="user:eve:r--").status, 200)
        self.assertEqual(s.g1("PUT", root + "/d", "MODIFYACLENTRIES", aclspec="default:user:eve:r-x").status, 200)
        diffs = s.compare(root)
        self.assertTrue(any(d.startswith(root + "/b.bin: acl") and "user:eve:r--" in d for d in diffs), diffs)
        self.assertTrue(any(d.startswith(root + "/d: acl") and "default:user:eve:r-x" in d for d in diffs), diffs)
        # a path on one side only, and a type difference
        self.assertEqual(s.g1("PUT", root + "/only1", "MKDIRS").status, 200)
        self.assertEqual(s.g2("PUT", root + "/only2", "resource=file").status, 201)
        self.assertEqual(s.g1("PUT", root + "/kind", "MKDIRS").status, 200)
        self.assertEqual(s.g2("PUT", root + "/kind", "resource=file").status, 201)
        diffs = s.compare(root)
        self.assertIn(root + "/only1: only on Gen1 (DIRECTORY)", diffs)
        self.assertIn(root + "/only2: only on Gen2 (FILE)", diffs)
        self.assertIn(root + "/kind: type Gen1='DIRECTORY' Gen2='FILE'", diffs)

    def test_missing_root_and_paging(self):
        s = self.s
        self.assertEqual(s.compare("/nothing-here"), [])
        self.assertEqual(s.g1("PUT", "/gone1", "MKDIRS").status, 200)
        self.assertEqual(s.compare("/gone1"), ["/gone1: only on Gen1 (DIRECTORY)"])
        # more entries than one listing page on each side (page=3 forces continuations)
        root = "/many"
        self.both_mkdir(root)
        for i in range(8):
            self.both_file("%s/f%02d" % (root, i), b"x" * i)
        g1 = proxylib.walk_gen1(s, root, page=3)
        g2 = proxylib.walk_gen2(s, root, page=3)
        self.assertEqual(sorted(g1), [""] + ["f%02d" % i for i in range(8)])
        self.assertEqual(sorted(g1), sorted(g2))
        self.assertEqual(s.compare(root), [])


class CompareToolHadoopTests(CompareToolTests):
    """The same with the Gen1 emulator in the hadoop dialect (OPEN and CREATE through the datanode 307)."""
    DIALECT = "hadoop"


if __name__ == "__main__":
    emulib.main()
