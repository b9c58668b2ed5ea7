"""Real-client test: Debian's python3-azure-datalake-store (azure.datalake.store 0.0.52, the Python
ADLS Gen1 client) against the Gen1 emulator in the adls dialect.

The client is used through its public API the way an application uses it (AzureDLFileSystem, open,
ls, mv, rm, ACL calls, chmod/chown, du, ADLUploader) after pointing it at loopback as clients.md says.
What it sends is the awkward part of Gen1: upper-case OP=, paths with '//' and a destination without
a leading slash, CREATE with an empty body then 4 MiB APPENDs with offset/syncFlag/leaseid,
LISTSTATUS paging through continuationToken, MSGETACLSTATUS, and MSCONCAT of upload segments. Each
test checks the client's own results, and some also cross-check through the emulator's request
counters that the client really made the calls the test is about.

Run with /usr/bin/python3 (Debian's, where the package is installed); DUALPIPE_EMU names the binary.
"""
import atexit
import hashlib
import os
import shutil
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import emulib  # noqa: E402

# The client creates ~/.config/azure-datalake-store when imported and ADLUploader saves transfer
# state there: give it a throwaway HOME so the test leaves nothing in the real one.
_HOME = tempfile.mkdtemp(prefix="dp-adls-home-")
os.environ["HOME"] = _HOME
# Removed at exit too: a module that imports this one (test_proxy_clients.py) may run none of its tests.
atexit.register(shutil.rmtree, _HOME, True)
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from azure.datalake.store import core, lib, multithread  # noqa: E402
from azure.datalake.store.exceptions import DatalakeRESTException  # noqa: E402
from azure.datalake.store.retry import NoRetryPolicy  # noqa: E402

MiB = 1024 * 1024


def op_count(counters, op):
    """Requests the emulator counted for op (labels are 'METHOD OP'; compared case-insensitively)."""
    n = 0
    for label, count in counters.get("requests", {}).items():
        if label.split(" ")[-1].upper() == op.upper():
            n += count
    return n


class PythonAdlsClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = emulib.Emu("gen1", dialect="adls")
        token = lib.DataLakeCredential({"tokenType": "Bearer", "access": "x", "time": time.time(),
                                        "expiresIn": 10 ** 9})
        cls.adl = core.AzureDLFileSystem(token=token, store_name="emu")
        cls.adl.azure.url = cls.emu.url + "/"
        cls.local = tempfile.mkdtemp(prefix="dp-adls-local-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.local, ignore_errors=True)
        shutil.rmtree(_HOME, ignore_errors=True)
        cls.emu.close()

    def counters(self):
        return self.emu.counters()

    # ---- writing and reading ----
    def test_small_write_read(self):
        data = b"hello, azure.datalake.store\n" * 37
        with self.adl.open("/py/small/a.txt", "wb") as f:
            self.assertEqual(f.write(data), len(data))
        with self.adl.open("/py/small/a.txt", "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(self.adl.cat("/py/small/a.txt"), data)
        self.assertEqual(self.adl.head("/py/small/a.txt", 10), data[:10])
        self.assertEqual(self.adl.tail("/py/small/a.txt", 10), data[-10:])
        info = self.adl.info("/py/small/a.txt")
        self.assertEqual(info["type"], "FILE")
        self.assertEqual(info["length"], len(data))
        self.assertTrue(self.adl.exists("/py/small/a.txt"))

    def test_large_write_uses_several_appends(self):
        data = os.urandom(9 * MiB + 12345)
        before = op_count(self.counters(), "APPEND")
        with self.adl.open("/py/large/big.bin", "wb") as f:
            f.write(data)
        appends = op_count(self.counters(), "APPEND") - before
        self.assertGreaterEqual(appends, 3, "a 9 MiB file should take three 4 MiB appends")
        self.assertEqual(self.adl.info("/py/large/big.bin")["length"], len(data))
        with self.adl.open("/py/large/big.bin", "rb", blocksize=2 * MiB) as f:
            back = f.read()
        self.assertEqual(hashlib.sha256(back).hexdigest(), hashlib.sha256(data).hexdigest())
        # Random access read in the middle of the file.
        with self.adl.open("/py/large/big.bin", "rb", blocksize=MiB) as f:
            f.seek(5 * MiB + 3)
            self.assertEqual(f.read(1000), data[5 * MiB + 3:5 * MiB + 1003])

    def test_append_mode_and_overwrite(self):
        with self.adl.open("/py/ab/f", "wb") as f:
            f.write(b"first,")
        with self.adl.open("/py/ab/f", "ab") as f:
            f.write(b"second")
        self.assertEqual(self.adl.cat("/py/ab/f"), b"first,second")
        with self.adl.open("/py/ab/f", "wb") as f:
            f.write(b"new")
        self.assertEqual(self.adl.cat("/py/ab/f"), b"new")
        self.adl.touch("/py/ab/empty")
        self.assertEqual(self.adl.info("/py/ab/empty")["length"], 0)
        self.assertEqual(self.adl.cat("/py/ab/empty"), b"")

    def test_lease_keeps_a_second_writer_out(self):
        """open('wb') holds a lease (leaseid=filesessionid=uuid) until close; a CREATE with another
        leaseid is refused meanwhile, and the first writer's data is what the file ends with. The
        second CREATE goes through the client's REST layer without retries (the client's default
        policy retries a refused CREATE for about five minutes before giving up)."""
        first = os.urandom(5 * MiB)
        writer = self.adl.open("/py/lease/f", "wb")
        try:
            writer.write(first)  # one full 4 MiB block goes out with syncFlag=DATA; the file stays open
            with self.assertRaises(DatalakeRESTException):
                self.adl.azure.call("CREATE", "/py/lease/f", overwrite="true", write="true", syncFlag="DATA",
                                    leaseid="0f0f0f0f-0000-0000-0000-000000000000",
                                    filesessionid="0f0f0f0f-0000-0000-0000-000000000000",
                                    retry_policy=NoRetryPolicy())
        finally:
            writer.close()
        self.assertEqual(self.adl.info("/py/lease/f")["length"], len(first))
        self.assertEqual(hashlib.sha256(self.adl.cat("/py/lease/f")).hexdigest(), hashlib.sha256(first).hexdigest())
        # Once closed, the lease is released and a new writer may replace the file.
        with self.adl.open("/py/lease/f", "wb") as f:
            f.write(b"replaced")
        self.assertEqual(self.adl.cat("/py/lease/f"), b"replaced")

    # ---- listing ----
    def test_ls_and_paging(self):
        names = ["f%02d" % i for i in range(7)]
        self.adl.mkdir("/py/ls/sub")
        for n in names:
            with self.adl.open("/py/ls/" + n, "wb") as f:
                f.write(n.encode())
        listed = self.adl.ls("/py/ls")
        self.assertEqual(sorted(listed), sorted(["py/ls/" + n for n in names] + ["py/ls/sub"]))
        detail = {e["name"]: e for e in self.adl.ls("/py/ls", detail=True)}
        self.assertEqual(detail["py/ls/f03"]["length"], 3)
        self.assertEqual(detail["py/ls/f03"]["type"], "FILE")
        self.assertEqual(detail["py/ls/sub"]["type"], "DIRECTORY")
        self.assertEqual(self.adl.ls("/py/ls/sub"), [])
        # The client's own paging loop: listSize=3 pages joined through continuationToken/listAfter.
        before = op_count(self.counters(), "LISTSTATUS")
        paged = self.adl._ls_batched("/py/ls", batch_size=3)
        calls = op_count(self.counters(), "LISTSTATUS") - before
        self.assertEqual(sorted(e["pathSuffix"] for e in paged), sorted(names + ["sub"]))
        self.assertEqual(len(paged), len(names) + 1, "an entry was listed twice across pages")
        self.assertGreaterEqual(calls, 3, "8 entries in pages of 3 need at least 3 LISTSTATUS calls")
        with self.assertRaises(FileNotFoundError):
            self.adl.ls("/py/ls/no-such-dir")

    # ---- namespace ----
    def test_mkdir_mv_rm(self):
        self.adl.mkdir("/py/ns/a/b")
        self.assertEqual(self.adl.info("/py/ns/a/b")["type"], "DIRECTORY")
        with self.adl.open("/py/ns/a/file", "wb") as f:
            f.write(b"move me")
        # mv sends destination without a leading slash (py/ns/a/b/moved).
        self.adl.mv("/py/ns/a/file", "/py/ns/a/b/moved")
        self.assertFalse(self.adl.exists("/py/ns/a/file"))
        self.assertEqual(self.adl.cat("/py/ns/a/b/moved"), b"move me")
        # Renaming a directory moves its content.
        self.adl.mv("/py/ns/a/b", "/py/ns/c")
        self.assertEqual(self.adl.cat("/py/ns/c/moved"), b"move me")
        self.assertFalse(self.adl.exists("/py/ns/a/b"))
        self.adl.rm("/py/ns/c/moved")
        self.assertFalse(self.adl.exists("/py/ns/c/moved"))
        self.adl.rmdir("/py/ns/c")
        self.assertFalse(self.adl.exists("/py/ns/c"))
        with self.adl.open("/py/ns/a/x/y", "wb") as f:
            f.write(b"deep")
        self.adl.rm("/py/ns/a", recursive=True)
        self.assertFalse(self.adl.exists("/py/ns/a"))
        self.assertFalse(self.adl.exists("/py/ns/a/x/y"))
        with self.assertRaises(FileNotFoundError):
            self.adl.rm("/py/ns/never")
        with self.assertRaises(FileNotFoundError):
            self.adl.info("/py/ns/never")
        with self.assertRaises(FileNotFoundError):
            self.adl.open("/py/ns/never", "rb")

    def test_chmod_chown(self):
        with self.adl.open("/py/perm/f", "wb") as f:
            f.write(b"x")
        self.adl.chmod("/py/perm/f", "640")
        self.assertEqual(self.adl.info("/py/perm/f")["permission"], "640")
        self.adl.mkdir("/py/perm/d")
        self.adl.chmod("/py/perm/d", "1750")
        self.assertEqual(self.adl.info("/py/perm/d")["permission"], "1750")
        owner = "0a0a0a0a-1111-2222-3333-444444444444"
        group = "0b0b0b0b-1111-2222-3333-444444444444"
        self.adl.chown("/py/perm/f", owner=owner, group=group)
        info = self.adl.info("/py/perm/f")
        self.assertEqual(info["owner"], owner)
        self.assertEqual(info["group"], group)
        self.adl.chown("/py/perm/f", owner="someone-else")
        info = self.adl.info("/py/perm/f")
        self.assertEqual(info["owner"], "someone-else")
        self.assertEqual(info["group"], group, "chown of the owner alone changed the group")

    def test_acls(self):
        with self.adl.open("/py/acl/f", "wb") as f:
            f.write(b"acl")
        u1 = "aaaaaaaa-0000-0000-0000-000000000001"
        u2 = "aaaaaaaa-0000-0000-0000-000000000002"
        before = op_count(self.counters(), "MSGETACLSTATUS")
        self.adl.modify_acl_entries("/py/acl/f", "user:%s:r-x" % u1)
        st = self.adl.get_acl_status("/py/acl/f")
        self.assertGreater(op_count(self.counters(), "MSGETACLSTATUS"), before)
        self.assertIn("user:%s:r-x" % u1, st["entries"])
        self.adl.modify_acl_entries("/py/acl/f", "user:%s:rw-,user:%s:r--" % (u2, u1))
        st = self.adl.get_acl_status("/py/acl/f")
        self.assertIn("user:%s:rw-" % u2, st["entries"])
        self.assertIn("user:%s:r--" % u1, st["entries"])
        self.adl.remove_acl_entries("/py/acl/f", "user:%s" % u1)
        st = self.adl.get_acl_status("/py/acl/f")
        self.assertFalse(any(e.startswith("user:%s:" % u1) for e in st["entries"]), st)
        self.assertIn("user:%s:rw-" % u2, st["entries"])
        self.adl.set_acl("/py/acl/f", "user::rwx,group::r--,other::---,user:%s:r--,mask::r--" % u1)
        st = self.adl.get_acl_status("/py/acl/f")
        self.assertIn("user:%s:r--" % u1, st["entries"])
        self.assertFalse(any(e.startswith("user:%s:" % u2) for e in st["entries"]), st)
        self.adl.remove_acl("/py/acl/f")
        st = self.adl.get_acl_status("/py/acl/f")
        self.assertFalse(any(e.startswith("user:%s:" % u1) for e in st["entries"]), st)
        # Default ACL on a directory: inherited by a new file, removable with remove_default_acl.
        self.adl.mkdir("/py/acl/d")
        self.adl.modify_acl_entries("/py/acl/d", "default:user::rwx,default:group::r-x,default:other::---,"
                                    "default:user:%s:rwx,default:mask::rwx" % u2)
        with self.adl.open("/py/acl/d/child", "wb") as f:
            f.write(b"c")
        child = self.adl.get_acl_status("/py/acl/d/child")
        self.assertTrue(any(e.startswith("user:%s:" % u2) for e in child["entries"]), child)
        self.adl.remove_default_acl("/py/acl/d")
        st = self.adl.get_acl_status("/py/acl/d")
        self.assertFalse(any(e.startswith("default:") for e in st["entries"]), st)

    def test_du_info(self):
        for name, size in (("a", 10), ("b", 2000), ("c", 0)):
            with self.adl.open("/py/du/" + name, "wb") as f:
                f.write(b"z" * size)
        self.assertEqual(self.adl.du("/py/du"), {"py/du/a": 10, "py/du/b": 2000, "py/du/c": 0})
        self.assertEqual(self.adl.du("/py/du", total=True), 2010)
        self.assertEqual(self.adl.info("/py/du")["type"], "DIRECTORY")

    # ---- multi-chunk upload: parallel segment files, then MSCONCAT ----
    def test_uploader_msconcat(self):
        data = os.urandom(3 * MiB + 4321)
        lpath = os.path.join(self.local, "upload.bin")
        with open(lpath, "wb") as f:
            f.write(data)
        self.adl.mkdir("/py/up")
        before = op_count(self.counters(), "MSCONCAT")
        up = multithread.ADLUploader(self.adl, "/py/up/upload.bin", lpath, nthreads=4, chunksize=MiB,
                                     buffersize=256 * 1024, blocksize=256 * 1024, overwrite=True)
        self.assertTrue(up.successful(), "ADLUploader reported failure")
        self.assertEqual(op_count(self.counters(), "MSCONCAT") - before, 1, "expected one MSCONCAT")
        self.assertEqual(self.adl.info("/py/up/upload.bin")["length"], len(data))
        self.assertEqual(hashlib.sha256(self.adl.cat("/py/up/upload.bin")).hexdigest(),
                         hashlib.sha256(data).hexdigest())
        # deleteSourceDirectory=true removed the segment directory.
        self.assertEqual(self.adl.ls("/py/up"), ["py/up/upload.bin"])

    def test_concat_keeps_order(self):
        for i in range(3):
            with self.adl.open("/py/cat/part%d" % i, "wb") as f:
                f.write(("part-%d;" % i).encode())
        self.adl.concat("/py/cat/all", ["/py/cat/part2", "/py/cat/part0", "/py/cat/part1"])
        self.assertEqual(self.adl.cat("/py/cat/all"), b"part-2;part-0;part-1;")
        self.assertFalse(self.adl.exists("/py/cat/part0"), "MSCONCAT sources remain")


if __name__ == "__main__":
    unittest.main(verbosity=2)
