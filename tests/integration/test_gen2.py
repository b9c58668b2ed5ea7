"""Gen2 (DFS) emulator over real HTTP: filesystems in both the DFS and the Blob form, path create with
conditions, append/flush position rules and ETag stability, reads with ranges, HEAD variants, list
paths (JSON shape and pagination), rename (all three source/target spellings), delete, leases,
properties and expiry. Signed with emulib's independent Shared Key implementation."""
import http.client
import itertools
import json
import re
import time
import urllib.parse

import emulib

A = "/" + emulib.DEV_ACCOUNT
_seq = itertools.count(1)


def new_fs(e, prefix="fs"):
    name = "%s%d" % (prefix, next(_seq))
    r = e.gen2("PUT", "%s/%s?resource=filesystem" % (A, name))
    assert r.status == 201, r
    return name


def err_code(r):
    return r.header("x-ms-error-code")


class Gen2Base(emulib.EmuTestCase):
    EMUS = {"g": dict(service="gen2")}

    @property
    def e(self):
        return self.emus["g"]

    def create(self, fs, path, kind="file", headers=None, **kw):
        return self.e.gen2("PUT", "%s/%s/%s?resource=%s" % (A, fs, path, kind), headers=headers, **kw)

    def append(self, fs, path, pos, data, headers=None, extra=""):
        return self.e.gen2("PATCH", "%s/%s/%s?action=append&position=%d%s" % (A, fs, path, pos, extra), data,
                           headers=headers)

    def flush(self, fs, path, pos, extra="", headers=None):
        return self.e.gen2("PATCH", "%s/%s/%s?action=flush&position=%d%s" % (A, fs, path, pos, extra),
                           headers=headers)

    def write(self, fs, path, data):
        self.assertEqual(self.create(fs, path).status, 201)
        if data:
            self.assertEqual(self.append(fs, path, 0, data).status, 202)
        r = self.flush(fs, path, len(data))
        self.assertEqual(r.status, 200, r)
        return r

    def read(self, fs, path, headers=None):
        return self.e.gen2("GET", "%s/%s/%s" % (A, fs, path), headers=headers)

    def head(self, fs, path, query=""):
        return self.e.gen2("HEAD", "%s/%s/%s%s" % (A, fs, path, query))

    def list_paths(self, fs, query):
        return self.e.gen2("GET", "%s/%s?resource=filesystem&%s" % (A, fs, query))


class FilesystemTests(Gen2Base):
    def test_dfs_create_head_patch_delete(self):
        e = self.e
        r = e.gen2("PUT", A + "/lake1?resource=filesystem", headers={"x-ms-properties": "k=dmFs"})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.header("x-ms-namespace-enabled"), "true")
        self.assertRegex(r.header("etag"), r'^"0x[0-9A-F]+"$')
        r = e.gen2("PUT", A + "/lake1?resource=filesystem")
        self.assertEqual((r.status, err_code(r)), (409, "FilesystemAlreadyExists"))
        self.assertEqual(r.json()["error"]["code"], "FilesystemAlreadyExists")
        self.assertRegex(r.json()["error"]["message"], r"\nRequestId:[0-9a-f-]{36}\nTime:\d{4}-\d\d-\d\dT")
        r = e.gen2("HEAD", A + "/lake1?resource=filesystem")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("x-ms-namespace-enabled"), "true")
        self.assertEqual(r.header("x-ms-properties"), "k=dmFs")
        etag = r.header("etag")
        r = e.gen2("PATCH", A + "/lake1?resource=filesystem", headers={"x-ms-properties": "k=bmV3"})
        self.assertEqual(r.status, 200)
        r = e.gen2("HEAD", A + "/lake1?resource=filesystem")
        self.assertEqual(r.header("x-ms-properties"), "k=bmV3")
        self.assertNotEqual(r.header("etag"), etag)
        r = e.gen2("DELETE", A + "/lake1?resource=filesystem")
        self.assertEqual(r.status, 202)
        r = e.gen2("HEAD", A + "/lake1?resource=filesystem")
        self.assertEqual((r.status, err_code(r), r.body), (404, "FilesystemNotFound", b""))
        r = e.gen2("PUT", A + "/lake1/x?resource=file")
        self.assertEqual((r.status, err_code(r)), (404, "FilesystemNotFound"))

    def test_blob_form(self):
        e = self.e
        r = e.gen2("PUT", A + "/blobform?restype=container")
        self.assertEqual(r.status, 201)
        r = e.gen2("PUT", A + "/blobform?restype=container")
        self.assertEqual((r.status, err_code(r)), (409, "ContainerAlreadyExists"))
        self.assertIn(b"<Code>ContainerAlreadyExists</Code>", r.body)
        r = e.gen2("GET", A + "/blobform?restype=container")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("x-ms-lease-state"), "available")
        r = e.gen2("GET", A + "/nosuchcontainer?restype=container")
        self.assertEqual((r.status, err_code(r)), (404, "ContainerNotFound"))
        self.assertIn(b"<Error><Code>ContainerNotFound</Code>", r.body)
        # the DFS form sees the same filesystem
        self.assertEqual(e.gen2("HEAD", A + "/blobform?resource=filesystem").status, 200)
        r = e.gen2("DELETE", A + "/blobform?restype=container")
        self.assertEqual(r.status, 202)
        self.assertEqual(e.gen2("HEAD", A + "/blobform?restype=container").status, 404)

    def test_invalid_names(self):
        for bad in ["ab", "Upper", "a--b", "-ab", "ab-", "a_b", "x" * 64]:
            r = self.e.gen2("PUT", "%s/%s?resource=filesystem" % (A, bad))
            self.assertEqual((r.status, err_code(r)), (400, "InvalidResourceName"), bad)
        self.assertEqual(self.e.gen2("PUT", A + "/a1-b2?resource=filesystem").status, 201)

    def test_list_filesystems_json_and_xml(self):
        e = self.e
        names = ["lst-a", "lst-b", "lst-c"]
        for n in names:
            self.assertEqual(e.gen2("PUT", "%s/%s?resource=filesystem" % (A, n)).status, 201)
        r = e.gen2("GET", A + "?resource=account&prefix=lst-")
        self.assertEqual(r.status, 200)
        got = [f["name"] for f in r.json()["filesystems"]]
        self.assertEqual(got, names)
        self.assertTrue(all(re.match(r"^0x[0-9A-F]+$", f["etag"]) for f in r.json()["filesystems"]))
        r = e.gen2("GET", A + "?resource=account&prefix=lst-&maxResults=2")
        self.assertEqual([f["name"] for f in r.json()["filesystems"]], names[:2])
        tok = r.header("x-ms-continuation")
        self.assertTrue(tok)
        r = e.gen2("GET", A + "?resource=account&prefix=lst-&continuation=" + urllib.parse.quote(tok))
        self.assertEqual([f["name"] for f in r.json()["filesystems"]], names[2:])
        self.assertIsNone(r.header("x-ms-continuation"))
        # Blob form, as the JS SDK's listFileSystems and the Python SDK send it
        r = e.gen2("GET", A + "/?comp=list&prefix=lst-&include=", keep_empty=True)
        self.assertEqual(r.status, 200)
        self.assertEqual(re.findall(rb"<Name>([^<]+)</Name>", r.body), [n.encode() for n in names])
        self.assertIn(b"<EnumerationResults", r.body)
        r = e.gen2("GET", A + "/?comp=list&prefix=lst-&maxresults=1")
        self.assertIn(b"<NextMarker>lst-b</NextMarker>", r.body)
        r = e.gen2("GET", A + "/?comp=list&prefix=lst-&marker=lst-b")
        self.assertEqual(re.findall(rb"<Name>([^<]+)</Name>", r.body), [b"lst-b", b"lst-c"])

    def test_wrong_account_segment(self):
        r = self.e.gen2("GET", "/otheraccount/fs?resource=filesystem&recursive=true")
        self.assertEqual((r.status, err_code(r)), (400, "InvalidUri"))


class CreateTests(Gen2Base):
    def test_create_file_dir_and_implicit_parents(self):
        fs = new_fs(self.e)
        r = self.create(fs, "a/b/c.txt")
        self.assertEqual(r.status, 201)
        self.assertRegex(r.header("etag"), r'^"0x[0-9A-F]+"$')
        h = self.head(fs, "a/b")
        self.assertEqual(h.status, 200)
        self.assertEqual(h.header("x-ms-resource-type"), "directory")
        self.assertEqual(h.header("x-ms-permissions"), "rwxr-x---")  # 0777 & ~0027
        h = self.head(fs, "a/b/c.txt")
        self.assertEqual(h.header("x-ms-resource-type"), "file")
        self.assertEqual(h.header("x-ms-permissions"), "rw-r-----")  # 0666 & ~0027
        self.assertEqual(h.header("x-ms-owner"), "$superuser")
        self.assertEqual(h.header("x-ms-group"), "$superuser")
        self.assertEqual(h.header("content-length"), "0")
        # Python SDK: %2F inside one segment is a separator
        r = self.e.gen2("PUT", "%s/%s/x%%2Fy%%2Fz?resource=directory" % (A, fs))
        self.assertEqual(r.status, 201)
        self.assertEqual(self.head(fs, "x/y/z").header("x-ms-resource-type"), "directory")

    def test_permissions_and_umask(self):
        fs = new_fs(self.e)
        cases = [({"x-ms-permissions": "0777", "x-ms-umask": "0000"}, "rwxrwxrwx"),
                 ({"x-ms-permissions": "rwxrwxrwx"}, "rwxr-x---"),
                 ({"x-ms-permissions": "0640", "x-ms-umask": "0022"}, "rw-r-----"),
                 ({"x-ms-permissions": "1777", "x-ms-umask": "0000"}, "rwxrwxrwt"),
                 ({"x-ms-umask": "0077"}, "rw-------")]
        for i, (h, want) in enumerate(cases):
            self.assertEqual(self.create(fs, "p%d" % i, headers=h).status, 201, h)
            self.assertEqual(self.head(fs, "p%d" % i).header("x-ms-permissions"), want, h)

    def test_owner_group_acl_at_create(self):
        fs = new_fs(self.e)
        r = self.create(fs, "d", "directory", headers={"x-ms-owner": "alice", "x-ms-group": "staff",
                                                       "x-ms-acl": "user::rwx,user:bob:r-x,group::r-x,mask::r-x,"
                                                                   "other::---,default:user::rwx,default:group::r-x,"
                                                                   "default:other::---"})
        self.assertEqual(r.status, 201, r)
        h = self.head(fs, "d", "?action=getAccessControl")
        self.assertEqual(h.header("x-ms-owner"), "alice")
        self.assertEqual(h.header("x-ms-group"), "staff")
        self.assertIn("user:bob:r-x", h.header("x-ms-acl"))
        self.assertIn("default:user::rwx", h.header("x-ms-acl"))
        self.assertTrue(h.header("x-ms-permissions").endswith("+"))
        # a child inherits the default ACL and the parent's group
        self.assertEqual(self.create(fs, "d/f").status, 201)
        h = self.head(fs, "d/f", "?action=getAccessControl")
        self.assertEqual(h.header("x-ms-group"), "staff")
        self.assertEqual(h.header("x-ms-owner"), "$superuser")

    def test_permissions_with_acl_rejected_and_nothing_created(self):
        fs = new_fs(self.e)
        r = self.create(fs, "new/f", headers={"x-ms-permissions": "0644", "x-ms-acl": "user::rwx,group::r-x,other::---"})
        self.assertEqual(r.status, 400)
        for bad in [{"x-ms-permissions": "0999"}, {"x-ms-permissions": "rwxrwxrw"}, {"x-ms-umask": "27"},
                    {"x-ms-acl": "user:bob:rwz"}, {"x-ms-acl": "bogus::rwx"}, {"x-ms-properties": "novalue"},
                    {"x-ms-properties": "k=not base64!"}]:
            r = self.create(fs, "new/f", headers=bad)
            self.assertEqual((r.status, err_code(r)), (400, "InvalidHeaderValue"), bad)
        self.assertEqual(self.head(fs, "new").status, 404)
        r = self.list_paths(fs, "recursive=true")
        self.assertEqual(r.json()["paths"], [])

    def test_conditions(self):
        fs = new_fs(self.e)
        etag = self.write(fs, "f", b"abc").header("etag")
        r = self.create(fs, "f", headers={"If-None-Match": "*"})
        self.assertEqual((r.status, err_code(r)), (409, "PathAlreadyExists"))
        self.assertEqual(r.header("x-ms-existing-resource-type"), "file")
        r = self.create(fs, "f", headers={"If-Match": '"0x1"'})
        self.assertEqual((r.status, err_code(r)), (412, "ConditionNotMet"))
        r = self.create(fs, "nothere", headers={"If-Match": etag})
        self.assertEqual((r.status, err_code(r)), (412, "ConditionNotMet"))
        r = self.create(fs, "f", headers={"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
        self.assertEqual(r.status, 412)
        r = self.create(fs, "f", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT", "If-Match": etag})
        self.assertEqual(r.status, 201)  # conditional overwrite (ABFS) truncates
        self.assertEqual(self.head(fs, "f").header("content-length"), "0")
        self.assertNotEqual(r.header("etag"), etag)
        # mkdir on an existing directory with If-None-Match: * (ABFS treats this 409 as success)
        self.assertEqual(self.create(fs, "d", "directory").status, 201)
        r = self.create(fs, "d", "directory", headers={"If-None-Match": "*"})
        self.assertEqual((r.status, err_code(r)), (409, "PathAlreadyExists"))
        self.assertEqual(r.header("x-ms-existing-resource-type"), "directory")
        # unconditional create of an existing directory leaves it alone
        self.assertEqual(self.create(fs, "d/inner").status, 201)
        self.assertEqual(self.create(fs, "d", "directory").status, 201)
        self.assertEqual(self.head(fs, "d/inner").status, 200)

    def test_type_conflicts(self):
        fs = new_fs(self.e)
        self.assertEqual(self.create(fs, "d", "directory").status, 201)
        r = self.create(fs, "d")
        self.assertEqual((r.status, err_code(r)), (409, "PathConflict"))
        self.write(fs, "f", b"x")
        r = self.create(fs, "f", "directory")
        self.assertEqual((r.status, err_code(r)), (409, "PathConflict"))
        r = self.create(fs, "f/child")
        self.assertEqual((r.status, err_code(r)), (409, "PathConflict"))

    def test_overwrite_truncates_and_drops_staged(self):
        fs = new_fs(self.e)
        etag = self.write(fs, "f", b"0123456789").header("etag")
        self.assertEqual(self.append(fs, "f", 10, b"staged").status, 202)
        r = self.create(fs, "f")
        self.assertEqual(r.status, 201)
        self.assertNotEqual(r.header("etag"), etag)
        self.assertEqual(self.read(fs, "f").body, b"")
        # the staged bytes were dropped: a flush to 6 has nothing to commit
        r = self.flush(fs, "f", 6)
        self.assertEqual((r.status, err_code(r)), (400, "InvalidFlushPosition"))


class AppendFlushTests(Gen2Base):
    def test_sequence_and_etag_rules(self):
        fs = new_fs(self.e)
        c = self.create(fs, "f")
        etag0 = c.header("etag")
        r = self.append(fs, "f", 0, b"Hello ")
        self.assertEqual(r.status, 202)
        self.assertEqual(r.header("x-ms-request-server-encrypted"), "true")
        r = self.append(fs, "f", 6, b"World")
        self.assertEqual(r.status, 202)
        h = self.head(fs, "f")
        self.assertEqual(h.header("content-length"), "0")  # uncommitted data is invisible
        self.assertEqual(h.header("etag"), etag0)  # appends do not change the ETag
        self.assertEqual(self.read(fs, "f").body, b"")
        # the Python SDK flushes with If-Match: <ETag of the create>
        r = self.flush(fs, "f", 11, "&retainUncommittedData=false&close=true", headers={"If-Match": etag0})
        self.assertEqual(r.status, 200, r)
        etag1 = r.header("etag")
        self.assertNotEqual(etag1, etag0)
        self.assertEqual(self.read(fs, "f").body, b"Hello World")
        # flush at the existing length with nothing staged: success, ETag unchanged
        r = self.flush(fs, "f", 11)
        self.assertEqual((r.status, r.header("etag")), (200, etag1))
        r = self.flush(fs, "f", 11, headers={"If-Match": etag0})
        self.assertEqual((r.status, err_code(r)), (412, "ConditionNotMet"))

    def test_invalid_flush_positions(self):
        fs = new_fs(self.e)
        self.write(fs, "f", b"abcd")
        msg = ("The uploaded data is not contiguous or the position query parameter value is not equal to the "
               "length of the file after appending the uploaded data.")
        for pos in (3, 5, 100):  # below the length, beyond staged data
            r = self.flush(fs, "f", pos)
            self.assertEqual((r.status, err_code(r)), (400, "InvalidFlushPosition"), pos)
            self.assertTrue(r.json()["error"]["message"].startswith(msg + "\nRequestId:"))
        # a gap: staged [6, 8) but nothing at [4, 6)
        self.assertEqual(self.append(fs, "f", 6, b"gh").status, 202)
        r = self.flush(fs, "f", 8)
        self.assertEqual(err_code(r), "InvalidFlushPosition")
        self.assertEqual(self.append(fs, "f", 4, b"ef").status, 202)
        self.assertEqual(self.flush(fs, "f", 8).status, 200)
        self.assertEqual(self.read(fs, "f").body, b"abcdefgh")
        # an append below the committed length is refused at once (documented choice)
        r = self.append(fs, "f", 2, b"zz")
        self.assertEqual((r.status, err_code(r)), (400, "InvalidFlushPosition"))
        self.assertEqual(self.read(fs, "f").body, b"abcdefgh")

    def test_retry_same_position_is_idempotent(self):
        fs = new_fs(self.e)
        self.create(fs, "f")
        for _ in range(3):
            self.assertEqual(self.append(fs, "f", 0, b"same").status, 202)
        self.assertEqual(self.flush(fs, "f", 4).status, 200)
        self.assertEqual(self.flush(fs, "f", 4).status, 200)
        self.assertEqual(self.read(fs, "f").body, b"same")

    def test_retain_uncommitted_data(self):
        fs = new_fs(self.e)
        self.create(fs, "f")
        self.assertEqual(self.append(fs, "f", 0, b"aaaa").status, 202)
        self.assertEqual(self.append(fs, "f", 4, b"bbbb").status, 202)
        r = self.flush(fs, "f", 4, "&retainUncommittedData=true")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.read(fs, "f").body, b"aaaa")
        self.assertEqual(self.flush(fs, "f", 8).status, 200)  # the retained bytes commit later
        self.assertEqual(self.read(fs, "f").body, b"aaaabbbb")
        # without retain, data staged beyond the flush position is dropped
        self.assertEqual(self.append(fs, "f", 8, b"cccc").status, 202)
        self.assertEqual(self.append(fs, "f", 12, b"dddd").status, 202)
        self.assertEqual(self.flush(fs, "f", 12, "&retainUncommittedData=false").status, 200)
        self.assertEqual(err_code(self.flush(fs, "f", 16)), "InvalidFlushPosition")
        self.assertEqual(self.read(fs, "f").body, b"aaaabbbbcccc")

    def test_append_with_flush_true(self):
        fs = new_fs(self.e)
        self.create(fs, "f")
        c0 = self.e.counters()["requests"]
        etag0 = self.read(fs, "f").header("etag")
        r = self.append(fs, "f", 0, b"one", extra="&flush=true")
        self.assertEqual(r.status, 202)
        self.assertTrue(r.header("etag"))
        self.assertNotEqual(r.header("etag"), etag0)  # committed: the ETag changes as after a flush
        self.assertTrue(r.header("last-modified"))
        self.assertEqual(self.read(fs, "f").body, b"one")
        r = self.append(fs, "f", 3, b"two", extra="&flush=true&close=true")
        self.assertEqual(r.status, 202)
        self.assertEqual(self.read(fs, "f").body, b"onetwo")
        # the same checks as a flush: staged data must reach the position contiguously
        self.assertEqual(self.append(fs, "f", 6, b"gap?").status, 202)       # staged at 6..10, not committed
        r = self.append(fs, "f", 12, b"after a gap", extra="&flush=true")
        self.assertEqual((r.status, err_code(r)), (400, "InvalidFlushPosition"))
        r = self.append(fs, "f", 3, b"behind", extra="&flush=true")           # below the committed length
        self.assertEqual((r.status, err_code(r)), (400, "InvalidFlushPosition"))
        self.assertEqual(self.read(fs, "f").body, b"onetwo")
        # retainUncommittedData as on a flush: data staged beyond the new end is kept, then committed
        self.assertEqual(self.append(fs, "f", 10, b"later", extra="").status, 202)
        r = self.append(fs, "f", 6, b"six!", extra="&flush=true&retainUncommittedData=true")
        self.assertEqual(r.status, 202)
        self.assertEqual(self.read(fs, "f").body, b"onetwosix!")
        self.assertEqual(self.flush(fs, "f", 15).status, 200)
        self.assertEqual(self.read(fs, "f").body, b"onetwosix!later")
        r = self.append(fs, "f", 15, b"x", extra="&flush=maybe")
        self.assertEqual((r.status, err_code(r)), (400, "InvalidQueryParameterValue"))
        c = self.e.counters()["requests"]
        self.assertEqual(c.get("PATCH append-flush", 0) - c0.get("PATCH append-flush", 0), 5, c)
        self.assertEqual(c.get("PATCH append", 0) - c0.get("PATCH append", 0), 8, c)

    def test_appends_with_flush_true_in_flight_together(self):
        """Two appends with flush=true to one file whose bodies are on their way at the same time (two proxies
        draining the same file) both get an answer: neither waits for the other's flush to end."""
        fs = new_fs(self.e)
        self.create(fs, "f")
        u = urllib.parse.urlsplit(self.e.url)
        sent = []
        for pos, data in ((0, b"aaaa"), (4, b"bbbb")):
            target = "%s/%s/f?action=append&position=%d&flush=true" % (A, fs, pos)
            hdrs = {"x-ms-version": emulib.X_MS_VERSION, "Content-Length": str(len(data)),
                    "x-ms-date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())}
            hdrs["Authorization"] = emulib.shared_key_auth(self.e.account, self.e.key, "PATCH", target, hdrs,
                                                           len(data))
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
            self.addCleanup(c.close)
            c.putrequest("PATCH", target, skip_accept_encoding=True)
            for k, v in hdrs.items():
                c.putheader(k, v)
            c.endheaders()
            c.send(data[:2])   # the emulator pins the file for this append and waits for the rest
            sent.append((c, data))
        time.sleep(0.3)
        for c, data in sent:
            c.send(data[2:])
        got = []
        for c, _ in sent:
            r = c.getresponse()    # before the fix: both waited for each other, no answer
            r.read()
            got.append((r.status, r.getheader("x-ms-error-code")))
        # Either may commit first. Position 4 committing before position 0 has arrived is refused (a gap), and
        # the later commit may find the file already past its own position (a flush below the length).
        self.assertIn((202, None), got)
        for g in got:
            self.assertIn(g, ((202, None), (400, "InvalidFlushPosition")))
        self.assertEqual(self.read(fs, "f").body, b"aaaabbbb" if got[1] == (202, None) else b"aaaa")

    def test_flush_body_and_bad_params(self):
        fs = new_fs(self.e)
        self.create(fs, "f")
        r = self.e.gen2("PATCH", "%s/%s/f?action=flush&position=0" % (A, fs), b"x")
        self.assertEqual(r.status, 400)
        r = self.e.gen2("PATCH", "%s/%s/f?action=flush" % (A, fs))
        self.assertEqual((r.status, err_code(r)), (400, "MissingRequiredQueryParameter"))
        r = self.e.gen2("PATCH", "%s/%s/f?action=append&position=-1" % (A, fs), b"x")
        self.assertEqual((r.status, err_code(r)), (400, "InvalidQueryParameterValue"))
        r = self.e.gen2("PATCH", "%s/%s/f?action=append&position=abc" % (A, fs), b"x")
        self.assertEqual(r.status, 400)
        r = self.e.gen2("PATCH", "%s/%s/f?action=frobnicate" % (A, fs))
        self.assertEqual((r.status, err_code(r)), (400, "InvalidQueryParameterValue"))
        r = self.append(fs, "missing", 0, b"x")
        self.assertEqual((r.status, err_code(r)), (404, "PathNotFound"))
        self.create(fs, "d", "directory")
        self.assertEqual(self.append(fs, "d", 0, b"x").status, 409)

    def test_content_md5(self):
        import base64
        import hashlib
        fs = new_fs(self.e)
        self.create(fs, "f")
        good = base64.b64encode(hashlib.md5(b"payload").digest()).decode()
        r = self.append(fs, "f", 0, b"payload", headers={"Content-MD5": good})
        self.assertEqual(r.status, 202)
        self.assertEqual(r.header("content-md5"), good)
        bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
        r = self.append(fs, "f", 7, b"payload", headers={"Content-MD5": bad})
        self.assertEqual((r.status, err_code(r)), (400, "Md5Mismatch"))
        # nothing was staged by the failed append
        self.assertEqual(err_code(self.flush(fs, "f", 14)), "InvalidFlushPosition")
        self.assertEqual(self.flush(fs, "f", 7).status, 200)

    def test_x_http_method_override(self):
        fs = new_fs(self.e)
        self.create(fs, "f")
        r = self.e.gen2("PUT", "%s/%s/f?action=append&position=0" % (A, fs), b"abfs",
                        headers={"X-HTTP-Method-Override": "PATCH"})
        self.assertEqual(r.status, 202)
        r = self.e.gen2("PUT", "%s/%s/f?action=flush&position=4" % (A, fs),
                        headers={"X-HTTP-Method-Override": "PATCH"})
        self.assertEqual(r.status, 200)
        self.assertEqual(self.read(fs, "f").body, b"abfs")

    def test_large_append(self):
        fs = new_fs(self.e)
        self.create(fs, "big")
        data = bytes(range(256)) * 4096 * 4  # 4 MiB
        self.assertEqual(self.append(fs, "big", 0, data).status, 202)
        self.assertEqual(self.append(fs, "big", len(data), data).status, 202)
        self.assertEqual(self.flush(fs, "big", 2 * len(data)).status, 200)
        self.assertEqual(self.read(fs, "big").body, data + data)


class ReadTests(Gen2Base):
    def test_ranges(self):
        fs = new_fs(self.e)
        self.write(fs, "f", b"0123456789")
        r = self.read(fs, "f", headers={"Range": "bytes=2-5"})
        self.assertEqual((r.status, r.body, r.header("content-range")), (206, b"2345", "bytes 2-5/10"))
        r = self.read(fs, "f", headers={"x-ms-range": "bytes=7-"})
        self.assertEqual((r.status, r.body), (206, b"789"))
        r = self.read(fs, "f", headers={"x-ms-range": "bytes=8-100"})
        self.assertEqual((r.status, r.body, r.header("content-range")), (206, b"89", "bytes 8-9/10"))
        r = self.read(fs, "f", headers={"Range": "bytes=10-"})
        self.assertEqual((r.status, err_code(r)), (416, "InvalidRange"))
        r = self.read(fs, "f")
        self.assertEqual((r.status, r.body), (200, b"0123456789"))
        self.assertEqual(r.header("x-ms-resource-type"), "file")
        r = self.read(fs, "nothere")
        self.assertEqual((r.status, err_code(r)), (404, "PathNotFound"))

    def test_conditional_read(self):
        fs = new_fs(self.e)
        etag = self.write(fs, "f", b"abc").header("etag")
        self.assertEqual(self.read(fs, "f", headers={"If-Match": etag}).status, 200)
        r = self.read(fs, "f", headers={"If-Match": '"0x8DB0000DEADBEEF"'})
        self.assertEqual((r.status, err_code(r)), (412, "ConditionNotMet"))
        self.assertEqual(self.read(fs, "f", headers={"If-None-Match": etag}).status, 304)

    def test_head_variants(self):
        fs = new_fs(self.e)
        self.write(fs, "f", b"hello")
        self.e.gen2("PATCH", "%s/%s/f?action=setProperties" % (A, fs), headers={"x-ms-properties": "a=Yg=="})
        h = self.head(fs, "f")
        self.assertEqual((h.status, h.body), (200, b""))
        self.assertEqual(h.header("content-length"), "5")
        self.assertEqual(h.header("x-ms-properties"), "a=Yg==")
        self.assertRegex(h.header("last-modified"), r"^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$")
        self.assertEqual(h.header("x-ms-lease-state"), "available")
        self.assertEqual(h.header("x-ms-lease-status"), "unlocked")
        s = self.head(fs, "f", "?action=getStatus")
        self.assertEqual(s.status, 200)
        self.assertEqual(s.header("content-length"), "5")
        self.assertIsNone(s.header("x-ms-properties"))
        self.assertEqual(s.header("x-ms-permissions"), "rw-r-----")
        a = self.head(fs, "f", "?action=getAccessControl&upn=false")
        self.assertEqual(a.header("x-ms-acl"), "user::rw-,group::r--,other::---")
        self.assertEqual(a.header("x-ms-owner"), "$superuser")
        # HEAD errors have no body
        r = self.head(fs, "nothere", "?action=getStatus")
        self.assertEqual((r.status, r.body, err_code(r)), (404, b"", "PathNotFound"))
        r = self.head(fs, "", "?action=getAccessControl")  # the filesystem root directory
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("x-ms-resource-type"), "directory")
        self.assertEqual(self.head(fs, "f", "?action=checkAccess&fsAction=r-x").status, 200)


class ListPathsTests(Gen2Base):
    def test_shape_and_order(self):
        fs = new_fs(self.e)
        self.write(fs, "dir/sub/file1", b"12345")
        self.create(fs, "dir/a-b", "directory")
        self.write(fs, "top", b"")
        r = self.list_paths(fs, "recursive=true")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("content-type").startswith("application/json"))
        paths = r.json()["paths"]
        self.assertEqual([p["name"] for p in paths], ["dir", "dir/a-b", "dir/sub", "dir/sub/file1", "top"])
        f = paths[3]
        self.assertEqual(set(f), {"contentLength", "creationTime", "etag", "expiryTime", "group", "lastModified",
                                  "name", "owner", "permissions"})
        self.assertEqual(f["contentLength"], "5")
        self.assertIsInstance(f["contentLength"], str)
        self.assertNotIn("isDirectory", f)
        self.assertRegex(f["etag"], r"^0x[0-9A-F]+$")
        self.assertEqual(f["expiryTime"], "0")
        self.assertRegex(f["creationTime"], r"^\d{18}$")
        self.assertRegex(f["lastModified"], r"^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$")
        self.assertEqual((f["owner"], f["group"], f["permissions"]), ("$superuser", "$superuser", "rw-r-----"))
        self.assertEqual(paths[0]["isDirectory"], "true")
        self.assertEqual(paths[0]["contentLength"], "0")
        # the raw body uses the live service's spelling
        self.assertIn(b'"isDirectory":"true"', r.body)
        self.assertIn(b'"contentLength":"5"', r.body)
        r = self.list_paths(fs, "recursive=false")
        self.assertEqual([p["name"] for p in r.json()["paths"]], ["dir", "top"])
        r = self.list_paths(fs, "recursive=false&directory=dir")
        self.assertEqual([p["name"] for p in r.json()["paths"]], ["dir/a-b", "dir/sub"])
        r = self.list_paths(fs, "recursive=true&directory=%2Fdir%2Fsub")
        self.assertEqual([p["name"] for p in r.json()["paths"]], ["dir/sub/file1"])

    def test_errors(self):
        fs = new_fs(self.e)
        r = self.list_paths(fs, "directory=x")
        self.assertEqual((r.status, err_code(r)), (400, "MissingRequiredQueryParameter"))
        r = self.list_paths(fs, "recursive=maybe")
        self.assertEqual((r.status, err_code(r)), (400, "InvalidQueryParameterValue"))
        r = self.list_paths(fs, "recursive=true&directory=nothere")
        self.assertEqual((r.status, err_code(r)), (404, "PathNotFound"))
        r = self.list_paths(fs, "recursive=true&maxResults=0")
        self.assertEqual(r.status, 400)
        r = self.list_paths(fs, "recursive=true&continuation=garbage%21")
        self.assertEqual((r.status, err_code(r)), (400, "InvalidQueryParameterValue"))
        r = self.list_paths("nosuchfs", "recursive=true")
        self.assertEqual((r.status, err_code(r)), (404, "FilesystemNotFound"))

    def test_pagination(self):
        fs = new_fs(self.e)
        want = []
        for d in range(3):
            self.create(fs, "d%d" % d, "directory")
            want.append("d%d" % d)
            for f in range(4):
                self.create(fs, "d%d/f%d" % (d, f))
                want.append("d%d/f%d" % (d, f))
        for page in (1, 2, 5, 7, 15, 5000):
            got, tok, calls = [], None, 0
            while True:
                q = "recursive=true&maxResults=%d" % page
                if tok:
                    q += "&continuation=" + urllib.parse.quote(tok, safe="")
                r = self.list_paths(fs, q)
                self.assertEqual(r.status, 200)
                names = [p["name"] for p in r.json()["paths"]]
                self.assertLessEqual(len(names), page)
                got += names
                calls += 1
                tok = r.header("x-ms-continuation")
                if not tok:
                    break
                self.assertLess(calls, 100)
            self.assertEqual(got, want, page)
        # a continuation survives the deletion of the entry it points after
        r = self.list_paths(fs, "recursive=true&maxResults=2")
        tok = r.header("x-ms-continuation")
        self.assertEqual([p["name"] for p in r.json()["paths"]], ["d0", "d0/f0"])
        self.assertEqual(self.e.gen2("DELETE", "%s/%s/d0/f0" % (A, fs)).status, 200)
        r = self.list_paths(fs, "recursive=true&maxResults=2&continuation=" + urllib.parse.quote(tok, safe=""))
        self.assertEqual([p["name"] for p in r.json()["paths"]], ["d0/f1", "d0/f2"])


class RenameTests(Gen2Base):
    def rename(self, fs, dst, src, headers=None, target=None, query="?mode=legacy"):
        h = {"x-ms-rename-source": src}
        h.update(headers or {})
        return self.e.gen2("PUT", target or "%s/%s/%s%s" % (A, fs, dst, query), headers=h)

    def test_rename_forms(self):
        fs = new_fs(self.e)
        self.write(fs, "a", b"A")
        etag = self.head(fs, "a").header("etag")
        # source with the account segment (JS SDK), percent-encoded
        r = self.rename(fs, "b", "%s/%s/a" % (A, fs))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.head(fs, "a").status, 404)
        self.assertEqual(self.read(fs, "b").body, b"A")
        self.assertEqual(self.head(fs, "b").header("etag"), etag)  # HNS keeps the ETag across rename
        # source without the account segment (Python SDK) plus an empty x-ms-source-lease-id
        r = self.rename(fs, "c", "/%s/b" % fs, headers={"x-ms-source-lease-id": ""}, query="")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.read(fs, "c").body, b"A")
        # JS SDK bug: the request path lacks the account segment
        r = self.rename(fs, None, "%s/%s/c" % (A, fs), target="/%s/d?mode=legacy" % fs)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.read(fs, "d").body, b"A")
        # encoded names
        self.write(fs, "sp%20ace", b"S")
        r = self.rename(fs, "new%20name", "/%s/sp%%20ace" % fs)
        self.assertEqual(r.status, 201)
        self.assertEqual(self.read(fs, "new%20name").body, b"S")
        # accepts a continuation parameter and never returns one
        self.write(fs, "e", b"E")
        r = self.rename(fs, "e2", "/%s/e" % fs, query="?continuation=abc&mode=posix")
        self.assertEqual(r.status, 201)
        self.assertIsNone(r.header("x-ms-continuation"))

    def test_rename_directory_tree(self):
        fs = new_fs(self.e)
        self.write(fs, "src/x/y", b"Y")
        r = self.rename(fs, "dst", "/%s/src" % fs)
        self.assertEqual(r.status, 201)
        self.assertEqual(self.read(fs, "dst/x/y").body, b"Y")
        r = self.list_paths(fs, "recursive=true")
        self.assertEqual([p["name"] for p in r.json()["paths"]], ["dst", "dst/x", "dst/x/y"])

    def test_rename_errors(self):
        fs = new_fs(self.e)
        self.write(fs, "a", b"A")
        self.write(fs, "b", b"B")
        r = self.rename(fs, "b", "/%s/a" % fs, headers={"If-None-Match": "*"})
        self.assertEqual((r.status, err_code(r)), (409, "PathAlreadyExists"))
        r = self.rename(fs, "z", "/%s/missing" % fs)
        self.assertEqual((r.status, err_code(r)), (404, "SourcePathNotFound"))
        r = self.rename(fs, "no/parent/z", "/%s/a" % fs)
        self.assertEqual((r.status, err_code(r)), (404, "RenameDestinationParentPathNotFound"))
        self.create(fs, "dir", "directory")
        r = self.rename(fs, "dir/inner", "/%s/dir" % fs)
        self.assertEqual((r.status, err_code(r)), (409, "InvalidRenameSourcePath"))
        r = self.rename(fs, "z", "/%s/a" % fs, headers={"x-ms-source-if-match": '"0x1"'})
        self.assertEqual((r.status, err_code(r)), (412, "SourceConditionNotMet"))
        r = self.rename(fs, "z", "/%s/a" % fs, query="?mode=weird")
        self.assertEqual(r.status, 400)
        r = self.rename(fs, "dir", "/%s/a" % fs)
        self.assertEqual((r.status, err_code(r)), (409, "InvalidSourceOrDestinationResourceType"))
        # default: the destination is overwritten
        r = self.rename(fs, "b", "/%s/a" % fs)
        self.assertEqual(r.status, 201)
        self.assertEqual(self.read(fs, "b").body, b"A")


class DeleteTests(Gen2Base):
    def test_delete_rules(self):
        fs = new_fs(self.e)
        self.write(fs, "d/f", b"x")
        r = self.e.gen2("DELETE", "%s/%s/d?recursive=false" % (A, fs))
        self.assertEqual((r.status, err_code(r)), (409, "DirectoryNotEmpty"))
        r = self.e.gen2("DELETE", "%s/%s/d/f?paginated=false" % (A, fs))  # JS SDK file delete
        self.assertEqual(r.status, 200)
        r = self.e.gen2("DELETE", "%s/%s/d/f" % (A, fs))
        self.assertEqual((r.status, err_code(r)), (404, "PathNotFound"))
        self.write(fs, "d/g/h", b"x")
        r = self.e.gen2("DELETE", "%s/%s/d?recursive=true&paginated=true" % (A, fs))
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("x-ms-continuation"))
        self.assertEqual(self.head(fs, "d").status, 404)
        self.assertEqual(self.list_paths(fs, "recursive=true").json()["paths"], [])
        r = self.e.gen2("DELETE", "%s/%s?recursive=true" % (A, fs))
        self.assertEqual(r.status, 400)  # the root of a filesystem cannot be deleted this way
        self.assertEqual(self.e.gen2("HEAD", "%s/%s?resource=filesystem" % (A, fs)).status, 200)
        etag = self.write(fs, "c", b"x").header("etag")
        r = self.e.gen2("DELETE", "%s/%s/c" % (A, fs), headers={"If-Match": '"0x1"'})
        self.assertEqual(r.status, 412)
        self.assertEqual(self.e.gen2("DELETE", "%s/%s/c" % (A, fs), headers={"If-Match": etag}).status, 200)


class LeaseTests(Gen2Base):
    def lease(self, fs, path, action, **h):
        hdrs = {"x-ms-lease-action": action}
        hdrs.update({k.replace("_", "-"): v for k, v in h.items()})
        return self.e.gen2("POST", "%s/%s/%s" % (A, fs, path), headers=hdrs)

    def test_lease_cycle(self):
        fs = new_fs(self.e)
        self.write(fs, "f", b"abc")
        lid = "11111111-2222-3333-4444-555555555555"
        r = self.lease(fs, "f", "acquire", x_ms_lease_duration="-1", x_ms_proposed_lease_id=lid)
        self.assertEqual((r.status, r.header("x-ms-lease-id")), (201, lid))
        h = self.head(fs, "f")
        self.assertEqual((h.header("x-ms-lease-state"), h.header("x-ms-lease-status"),
                          h.header("x-ms-lease-duration")), ("leased", "locked", "infinite"))
        r = self.lease(fs, "f", "acquire", x_ms_lease_duration="15")
        self.assertEqual((r.status, err_code(r)), (409, "LeaseAlreadyPresent"))
        # writes need the lease id
        r = self.append(fs, "f", 3, b"d")
        self.assertEqual((r.status, err_code(r)), (412, "LeaseIdMissing"))
        r = self.append(fs, "f", 3, b"d", headers={"x-ms-lease-id": "99999999-2222-3333-4444-555555555555"})
        self.assertEqual((r.status, err_code(r)), (412, "LeaseIdMismatch"))
        self.assertEqual(self.append(fs, "f", 3, b"d", headers={"x-ms-lease-id": lid}).status, 202)
        self.assertEqual(err_code(self.flush(fs, "f", 4)), "LeaseIdMissing")
        self.assertEqual(self.flush(fs, "f", 4, headers={"x-ms-lease-id": lid}).status, 200)
        self.assertEqual(self.e.gen2("DELETE", "%s/%s/f" % (A, fs)).status, 412)
        r = self.e.gen2("PATCH", "%s/%s/f?action=setAccessControl" % (A, fs), headers={"x-ms-permissions": "0600"})
        self.assertEqual((r.status, err_code(r)), (412, "LeaseIdMissing"))
        self.assertEqual(self.read(fs, "f").body, b"abcd")  # reads need no lease
        # renew, change, release
        self.assertEqual(self.lease(fs, "f", "renew", x_ms_lease_id=lid).status, 200)
        lid2 = "aaaaaaaa-2222-3333-4444-555555555555"
        r = self.lease(fs, "f", "change", x_ms_lease_id=lid, x_ms_proposed_lease_id=lid2)
        self.assertEqual((r.status, r.header("x-ms-lease-id")), (200, lid2))
        r = self.lease(fs, "f", "release", x_ms_lease_id=lid)
        self.assertEqual((r.status, err_code(r)), (409, "LeaseIdMismatchWithLeaseOperation"))
        self.assertEqual(self.lease(fs, "f", "release", x_ms_lease_id=lid2).status, 200)
        self.assertEqual(self.head(fs, "f").header("x-ms-lease-state"), "available")
        self.assertEqual(self.e.gen2("DELETE", "%s/%s/f" % (A, fs)).status, 200)

    def test_break_and_durations(self):
        fs = new_fs(self.e)
        self.write(fs, "f", b"abc")
        for bad in ("10", "61", "abc"):
            r = self.lease(fs, "f", "acquire", x_ms_lease_duration=bad)
            self.assertEqual((r.status, err_code(r)), (400, "InvalidHeaderValue"), bad)
        r = self.lease(fs, "f", "break")
        self.assertEqual((r.status, err_code(r)), (409, "LeaseNotPresentWithLeaseOperation"))
        r = self.lease(fs, "f", "acquire", x_ms_lease_duration="60")
        self.assertEqual(r.status, 201)
        lid = r.header("x-ms-lease-id")
        self.assertRegex(lid, r"^[0-9a-f-]{36}$")
        r = self.lease(fs, "f", "break", x_ms_lease_break_period="0")
        self.assertEqual((r.status, r.header("x-ms-lease-time")), (202, "0"))
        self.assertEqual(self.head(fs, "f").header("x-ms-lease-state"), "broken")
        r = self.lease(fs, "f", "renew", x_ms_lease_id=lid)
        self.assertEqual((r.status, err_code(r)), (409, "LeaseIsBrokenAndCannotBeRenewed"))
        # a broken lease no longer blocks writes, and a new lease can be taken
        self.assertEqual(self.e.gen2("PATCH", "%s/%s/f?action=setProperties" % (A, fs)).status, 200)
        self.assertEqual(self.lease(fs, "f", "acquire", x_ms_lease_duration="15").status, 201)
        r = self.lease(fs, "f", "break", x_ms_lease_break_period="30")
        self.assertEqual(r.status, 202)
        self.assertIn(int(r.header("x-ms-lease-time")), range(14, 16))
        self.assertEqual(self.head(fs, "f").header("x-ms-lease-state"), "breaking")
        r = self.lease(fs, "f", "frob")
        self.assertEqual(r.status, 400)
        r = self.e.gen2("POST", "%s/%s/f" % (A, fs))
        self.assertEqual((r.status, err_code(r)), (400, "MissingRequiredHeader"))

    def lease_headers(self, fs, path):
        h = self.head(fs, path)
        return h.header("x-ms-lease-state"), h.header("x-ms-lease-status"), h.header("x-ms-lease-duration")

    def test_renew_keeps_the_acquired_duration(self):
        fs = new_fs(self.e)
        for f in ("inf", "plain", "renewed"):
            self.write(fs, f, b"x")
        r = self.lease(fs, "inf", "acquire", x_ms_lease_duration="-1")
        self.assertEqual(r.status, 201)
        inf = r.header("x-ms-lease-id")
        self.assertEqual(self.lease_headers(fs, "inf"), ("leased", "locked", "infinite"))
        self.assertEqual(self.lease(fs, "plain", "acquire", x_ms_lease_duration="15").status, 201)
        r = self.lease(fs, "renewed", "acquire", x_ms_lease_duration="15")
        self.assertEqual(r.status, 201)
        lid = r.header("x-ms-lease-id")
        self.assertEqual(self.lease_headers(fs, "renewed"), ("leased", "locked", "fixed"))
        time.sleep(1.1)
        r = self.lease(fs, "renewed", "renew", x_ms_lease_id=lid)
        self.assertEqual((r.status, r.header("x-ms-lease-id")), (200, lid))
        self.assertEqual(self.lease_headers(fs, "renewed"), ("leased", "locked", "fixed"))
        self.assertEqual(self.lease(fs, "inf", "renew", x_ms_lease_id=inf).status, 200)
        self.assertEqual(self.lease_headers(fs, "inf"), ("leased", "locked", "infinite"))
        # A break without a period ends when the lease would have, and x-ms-lease-time says when: the
        # renewed lease has its full 15 s again (not some other duration), the other one has lost the
        # time slept, and an infinite lease breaks at once.
        r = self.lease(fs, "renewed", "break")
        self.assertEqual((r.status, r.header("x-ms-lease-time")), (202, "15"))
        self.assertEqual(self.lease_headers(fs, "renewed"), ("breaking", "locked", None))
        r = self.lease(fs, "plain", "break")
        self.assertEqual(r.status, 202)
        self.assertIn(int(r.header("x-ms-lease-time")), range(1, 15))
        r = self.lease(fs, "inf", "break")
        self.assertEqual((r.status, r.header("x-ms-lease-time")), (202, "0"))
        self.assertEqual(self.lease_headers(fs, "inf"), ("broken", "unlocked", None))
        # a new lease on the broken file takes the duration it is acquired with
        r = self.lease(fs, "inf", "acquire", x_ms_lease_duration="15")
        self.assertEqual(r.status, 201)
        self.assertEqual(self.lease_headers(fs, "inf"), ("leased", "locked", "fixed"))
        self.assertEqual(self.lease(fs, "inf", "release", x_ms_lease_id=r.header("x-ms-lease-id")).status, 200)
        self.assertEqual(self.lease_headers(fs, "inf"), ("available", "unlocked", None))

    def test_blob_form_lease(self):
        # the SDKs' lease clients use the Blob API: PUT ?comp=lease
        fs = new_fs(self.e)
        self.write(fs, "f", b"abc")
        r = self.e.gen2("PUT", "%s/%s/f?comp=lease" % (A, fs),
                        headers={"x-ms-lease-action": "acquire", "x-ms-lease-duration": "15"})
        self.assertEqual(r.status, 201)
        lid = r.header("x-ms-lease-id")
        self.assertEqual(self.e.gen2("DELETE", "%s/%s/f" % (A, fs)).status, 412)
        r = self.e.gen2("PUT", "%s/%s/f?comp=lease" % (A, fs),
                        headers={"x-ms-lease-action": "acquire", "x-ms-lease-duration": "15"})
        self.assertEqual((r.status, err_code(r)), (409, "LeaseAlreadyPresent"))
        self.assertIn(b"<Code>LeaseAlreadyPresent</Code>", r.body)
        r = self.e.gen2("PUT", "%s/%s/f?comp=lease" % (A, fs),
                        headers={"x-ms-lease-action": "release", "x-ms-lease-id": lid})
        self.assertEqual(r.status, 200)
        self.assertEqual(self.e.gen2("DELETE", "%s/%s/f" % (A, fs)).status, 200)

    def test_fixed_lease_expires(self):
        fs = new_fs(self.e)
        self.write(fs, "f", b"abc")
        # a 15 s lease would slow the suite; break with a 1 s period instead and watch it end
        self.assertEqual(self.lease(fs, "f", "acquire", x_ms_lease_duration="15").status, 201)
        self.assertEqual(self.lease(fs, "f", "break", x_ms_lease_break_period="1").status, 202)
        self.assertEqual(self.e.gen2("PATCH", "%s/%s/f?action=setProperties" % (A, fs)).status, 412)
        time.sleep(1.2)
        self.assertEqual(self.e.gen2("PATCH", "%s/%s/f?action=setProperties" % (A, fs)).status, 200)


class PropertiesAndExpiryTests(Gen2Base):
    def test_set_properties(self):
        fs = new_fs(self.e)
        etag = self.write(fs, "f", b"abc").header("etag")
        r = self.e.gen2("PATCH", "%s/%s/f?action=setProperties" % (A, fs), headers={"x-ms-properties": "k=dg=="})
        self.assertEqual(r.status, 200)
        self.assertNotEqual(r.header("etag"), etag)
        self.assertEqual(self.head(fs, "f").header("x-ms-properties"), "k=dg==")
        r = self.e.gen2("PATCH", "%s/%s/f?action=setProperties" % (A, fs), headers={"x-ms-properties": "bad"})
        self.assertEqual((r.status, err_code(r)), (400, "InvalidHeaderValue"))
        self.assertEqual(self.head(fs, "f").header("x-ms-properties"), "k=dg==")

    def test_expiry(self):
        fs = new_fs(self.e)
        self.write(fs, "f", b"abc")
        self.write(fs, "g", b"abc")
        r = self.e.gen2("PUT", "%s/%s/f?comp=expiry" % (A, fs),
                        headers={"x-ms-expiry-option": "RelativeToNow", "x-ms-expiry-time": "800"})
        self.assertEqual(r.status, 200)
        self.assertTrue(self.head(fs, "f").header("x-ms-expiry-time"))
        listing = self.list_paths(fs, "recursive=true").json()["paths"]
        self.assertNotEqual([p["expiryTime"] for p in listing if p["name"] == "f"], ["0"])
        r = self.e.gen2("PUT", "%s/%s/g?comp=expiry" % (A, fs), headers={"x-ms-expiry-option": "NeverExpire"})
        self.assertEqual(r.status, 200)
        time.sleep(1.0)
        self.assertEqual(self.head(fs, "f").status, 404)
        self.assertEqual([p["name"] for p in self.list_paths(fs, "recursive=true").json()["paths"]], ["g"])
        self.assertEqual(self.read(fs, "g").body, b"abc")
        for h in ({"x-ms-expiry-option": "Sometime"}, {"x-ms-expiry-option": "RelativeToNow"},
                  {"x-ms-expiry-option": "Absolute", "x-ms-expiry-time": "tomorrow"}):
            r = self.e.gen2("PUT", "%s/%s/g?comp=expiry" % (A, fs), headers=h)
            self.assertEqual(r.status, 400, h)
        self.create(fs, "d", "directory")
        r = self.e.gen2("PUT", "%s/%s/d?comp=expiry" % (A, fs),
                        headers={"x-ms-expiry-option": "RelativeToNow", "x-ms-expiry-time": "1000"})
        self.assertEqual(r.status, 400)


class CommonHeaderTests(Gen2Base):
    def test_keep_alive(self):
        # SDKs and the proxy reuse connections: answers must not close them
        import http.client
        fs = new_fs(self.e)
        u = urllib.parse.urlsplit(self.e.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            steps = [("PUT", "/%s/f?resource=file" % fs, None, 201), ("PATCH", "/%s/f?action=append&position=0" % fs,
                     b"abc", 202), ("PATCH", "/%s/f?action=flush&position=3" % fs, None, 200),
                     ("HEAD", "/%s/f" % fs, None, 200), ("GET", "/%s/f" % fs, None, 200),
                     ("GET", "/%s/nothere" % fs, None, 404), ("GET", "/%s?resource=filesystem&recursive=true" % fs,
                     None, 200)]
            for method, path, body, want in steps:
                target = A + path
                hdrs = {"x-ms-version": emulib.X_MS_VERSION,
                        "x-ms-date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())}
                n = len(body) if body else 0
                hdrs["Content-Length"] = str(n)
                hdrs["Authorization"] = emulib.shared_key_auth(self.e.account, self.e.key, method, target, hdrs, n)
                conn.request(method, target, body=body, headers=hdrs)
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, want, (method, path))
                self.assertFalse(r.will_close, (method, path))
        finally:
            conn.close()


    def test_echo_headers(self):
        fs = new_fs(self.e)
        r = self.e.gen2("PUT", "%s/%s/f?resource=file" % (A, fs),
                        headers={"x-ms-client-request-id": "my-id-123", "x-ms-version": "2020-02-10"})
        self.assertEqual(r.header("x-ms-client-request-id"), "my-id-123")
        self.assertEqual(r.header("x-ms-version"), "2020-02-10")
        self.assertRegex(r.header("x-ms-request-id"), r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertTrue(r.header("date").endswith("GMT"))
        r2 = self.e.gen2("HEAD", "%s/%s/f" % (A, fs))
        self.assertNotEqual(r.header("x-ms-request-id"), r2.header("x-ms-request-id"))
        r = self.e.gen2("HEAD", "%s/%s/f" % (A, fs), headers={"x-ms-client-request-id": "x" * 1025})
        self.assertEqual((r.status, err_code(r)), (400, "InvalidHeaderValue"))


if __name__ == "__main__":
    emulib.main()
