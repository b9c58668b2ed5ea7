#!/usr/bin/python3
"""Gen1 emulator: the two dialects' redirect flows (ADLS 307 + flag, Hadoop namenode -> datanode),
noredirect, the quirks real clients send (clients.md), and the optional bearer check."""
import os
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulib import EmuTestCase, http_request, main  # noqa: E402
from emulib import raw_http  # noqa: E402
from test_gen1 import Gen1Mixin, chunked  # noqa: E402


def split(url):
    u = urllib.parse.urlsplit(url)
    return "%s://%s" % (u.scheme, u.netloc), u.path + ("?" + u.query if u.query else "")


class Gen1AdlsRedirects(Gen1Mixin, EmuTestCase):
    EMUS = {"e": dict(service="gen1", dialect="adls")}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.e = cls.emus["e"]

    def test_create_without_write_flag_redirects_to_same_url_plus_flag(self):
        target = "/webhdfs/v1/rd/f?op=CREATE&overwrite=true&api-version=2016-11-01"
        r = self.e.request("PUT", target, b"")
        self.assertEqual(r.status, 307, r)
        self.assertEqual(r.header("location"), self.e.url + target + "&write=true")
        self.assertIsNone(self.stat("/rd/f"))
        base, tgt = split(r.header("location"))
        self.assertEqual(base, self.e.url)
        r = self.e.request("PUT", tgt, b"after redirect")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.read("/rd/f"), b"after redirect")

    def test_redirect_regardless_of_body(self):
        r = self.e.request("PUT", "/webhdfs/v1/rd/g?op=CREATE", b"has a body")
        self.assertEqual(r.status, 307, r)
        self.assertTrue(r.header("location").endswith("/webhdfs/v1/rd/g?op=CREATE&write=true"))
        self.assertIsNone(self.stat("/rd/g"))

    def test_append_and_open_flags(self):
        self.put("/rd/h", b"abc")
        r = self.e.request("POST", "/webhdfs/v1/rd/h?op=APPEND&offset=3", b"")
        self.assertEqual(r.status, 307, r)
        self.assertTrue(r.header("location").endswith("?op=APPEND&offset=3&append=true"), r)
        r = self.e.request("POST", split(r.header("location"))[1], b"def")
        self.assertEqual(r.status, 200, r)
        r = self.e.request("GET", "/webhdfs/v1/rd/h?op=OPEN&offset=1")
        self.assertEqual(r.status, 307, r)
        self.assertTrue(r.header("location").endswith("?op=OPEN&offset=1&read=true"), r)
        r = self.e.request("GET", split(r.header("location"))[1])
        self.assertEqual((r.status, r.body), (200, b"bcdef"))
        # write=true is not the APPEND flag (clients.md): still a redirect
        r = self.e.request("POST", "/webhdfs/v1/rd/h?op=APPEND&write=true", b"")
        self.assertEqual(r.status, 307, r)

    def test_noredirect(self):
        r = self.e.request("PUT", "/webhdfs/v1/rd/n?op=CREATE&noredirect=true", b"")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"Location": self.e.url + "/webhdfs/v1/rd/n?op=CREATE&noredirect=true&write=true"})

    def test_concurrentappend_needs_no_flag(self):
        r = self.e.request("POST", "/WebHdfsExt/%2Frd%2Fca?appendMode=autocreate&op=CONCURRENTAPPEND", b"x")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.read("/rd/ca"), b"x")

    # ---- clients.md quirks ----
    def test_node_adls_encoded_path_and_chunked_with_content_length(self):
        """azure-arm-datalake-store: one %2F-encoded segment, both Transfer-Encoding: chunked and
        Content-Length on the upload (chunked wins, RFC 7230)."""
        body = b"chunked wins over content-length"
        target = "/webhdfs/v1/%2Fq1%2Fnode%20file.txt?overwrite=true&op=CREATE&write=true&api-version=2015-10-01-preview"
        req = (b"PUT " + target.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + chunked(body))
        status, _, _ = raw_http(self.e.url, req)
        self.assertEqual(status, 201)
        self.assertEqual(self.read("/q1/node file.txt"), body)
        more = b"+more"
        target = "/webhdfs/v1/%2Fq1%2Fnode%20file.txt?offset=" + str(len(body)) + "&op=APPEND&append=true"
        req = (b"POST " + target.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Length: 999\r\nConnection: close\r\n\r\n" + chunked(more))
        status, _, _ = raw_http(self.e.url, req)
        self.assertEqual(status, 200)
        self.assertEqual(self.read("/q1/node file.txt"), body + more)
        r = self.e.request("GET", "/webhdfs/v1/%2Fq1?op=MSLISTSTATUS",
                           headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual([s["pathSuffix"] for s in r.json()["FileStatuses"]["FileStatus"]], ["node file.txt"])

    def test_python_adls_quirks(self):
        """azure.datalake.store: upper-case OP=, '//' after the prefix, destination without '/',
        recursive=True, aclSpec=."""
        r = self.e.request("PUT", "/webhdfs/v1//q2/dir?OP=MKDIRS")
        self.assertEqual(r.json(), {"boolean": True})
        r = self.e.request("PUT", "/webhdfs/v1//q2/dir/f?OP=CREATE&overwrite=true&write=true", b"py")
        self.assertEqual(r.status, 201, r)
        r = self.e.request("PUT", "/webhdfs/v1//q2/dir/f?OP=RENAME&destination=q2/dir/g")
        self.assertEqual(r.json(), {"boolean": True})
        self.assertEqual(self.read("/q2/dir/g"), b"py")
        r = self.e.request("PUT", "/webhdfs/v1//q2/dir/g?OP=SETACL&aclSpec=user::rw-,group::r--,other::---,user:x:r--")
        self.assertEqual(r.status, 200, r)
        r = self.e.request("GET", "/webhdfs/v1//q2/dir/g?OP=MSGETACLSTATUS")
        self.assertIn("user:x:r--", r.json()["AclStatus"]["entries"])
        r = self.e.request("GET", "/webhdfs/v1//q2/dir?OP=LISTSTATUS&listSize=4000")
        self.assertEqual(r.json()["FileStatuses"]["continuationToken"], "")
        r = self.e.request("DELETE", "/webhdfs/v1//q2/dir?OP=DELETE&recursive=False")
        self.assertRemote(r, 403, "PathIsNotEmptyDirectoryException")
        r = self.e.request("DELETE", "/webhdfs/v1//q2/dir?OP=DELETE&recursive=True")
        self.assertEqual(r.json(), {"boolean": True})
        self.assertIsNone(self.stat("/q2/dir"))

    def test_form_encoded_values(self):
        self.put("/q3/a b", b"x")
        r = self.e.request("PUT", "/webhdfs/v1/q3/a%20b?op=RENAME&destination=%2Fq3%2Fc+d")
        self.assertEqual(r.json(), {"boolean": True})
        self.assertEqual(self.read("/q3/c d"), b"x")
        # '+' in the path stays '+'
        r = self.e.request("PUT", "/webhdfs/v1/q3/x+y?op=CREATE&write=true", b"p")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.read("/q3/x+y"), b"p")


class Gen1Hadoop(Gen1Mixin, EmuTestCase):
    EMUS = {"e": dict(service="gen1", dialect="hadoop")}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.e = cls.emus["e"]

    def test_datanode_listener_announced(self):
        self.assertTrue(self.e.datanode_url)
        self.assertNotEqual(self.e.datanode_url, self.e.url)

    def test_two_step_create_with_chunked_upload(self):
        """npm webhdfs: empty PUT with Content-Length: 0 -> 307 to the datanode, then a chunked PUT."""
        target = "/webhdfs/v1/h1/f?op=create&overwrite=true&permission=0755&user.name=hdfs"
        r = self.e.request("PUT", target, b"", {"Content-Length": "0"})
        self.assertEqual(r.status, 307, r)
        loc = r.header("location")
        self.assertTrue(loc.startswith(self.e.datanode_url + target), loc)
        self.assertIn("namenoderpcaddress=" + self.e.url[len("http://"):], loc)
        self.assertIsNone(self.stat("/h1/f"))
        base, tgt = split(loc)
        body = b"x" * 100000 + b"end"
        req = (b"PUT " + tgt.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + chunked(body, 8192))
        status, hdrs, rbody = raw_http(base, req)
        self.assertEqual(status, 201)
        self.assertEqual(rbody, b"")
        self.assertEqual(hdrs.get("location"), "webhdfs://" + self.e.url[len("http://"):] + "/h1/f")
        self.assertEqual(self.read_hadoop("/h1/f"), body)
        st = self.stat("/h1/f")
        self.assertEqual((st["permission"], st["length"]), ("755", len(body)))
        self.assertIn("childrenNum", st)
        self.assertIn("fileId", st)

    def read_hadoop(self, path, **params):
        r = self.call("GET", path, "OPEN", **params)
        self.assertEqual(r.status, 307, r)
        base, tgt = split(r.header("location"))
        self.assertEqual(base, self.e.datanode_url)
        r = http_request(base, "GET", tgt)
        self.assertEqual(r.status, 200, r)
        return r.body

    def test_two_step_append_and_open(self):
        r = self.call("PUT", "/h2/f", "CREATE", b"")
        r = http_request(split(r.header("location"))[0], "PUT", split(r.header("location"))[1], b"abc")
        self.assertEqual(r.status, 201, r)
        r = self.e.request("POST", "/webhdfs/v1/h2/f?op=append&overwrite=true&permission=0755", b"",
                           {"Content-Length": "0"})
        self.assertEqual(r.status, 307, r)
        base, tgt = split(r.header("location"))
        self.assertEqual(base, self.e.datanode_url)
        req = (b"POST " + tgt.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + chunked(b"defgh"))
        status, _, _ = raw_http(base, req)
        self.assertEqual(status, 200)
        self.assertEqual(self.read_hadoop("/h2/f"), b"abcdefgh")
        self.assertEqual(self.read_hadoop("/h2/f", offset=2, length=3), b"cde")
        # namenode step of OPEN/APPEND checks existence
        self.assertRemote(self.call("GET", "/h2/none", "OPEN"), 404, "FileNotFoundException")
        self.assertRemote(self.call("POST", "/h2/none", "APPEND", b""), 404, "FileNotFoundException")

    def test_noredirect(self):
        r = self.e.request("PUT", "/webhdfs/v1/h3/f?op=CREATE&noredirect=true", b"")
        self.assertEqual(r.status, 200, r)
        loc = r.json()["Location"]
        self.assertTrue(loc.startswith(self.e.datanode_url + "/webhdfs/v1/h3/f?op=CREATE&noredirect=true"), loc)
        base, tgt = split(loc)
        r = http_request(base, "PUT", tgt, b"nr")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.read_hadoop("/h3/f"), b"nr")

    def test_other_ops_on_datanode_refused(self):
        r = http_request(self.e.datanode_url, "PUT", "/webhdfs/v1/h4?op=MKDIRS")
        self.assertRemote(r, 400, "IllegalArgumentException")
        self.assertIsNone(self.stat("/h4"))

    def test_lowercase_ops_and_user_name(self):
        r = self.e.request("PUT", "/webhdfs/v1/h5/d?op=mkdirs&permission=0755&user.name=hdfs")
        self.assertEqual(r.json(), {"boolean": True})
        r = self.e.request("PUT", "/webhdfs/v1/h5/d?op=setpermission&permission=640&user.name=hdfs")
        self.assertEqual(r.status, 200, r)
        r = self.e.request("GET", "/webhdfs/v1/h5?op=liststatus&user.name=hdfs")
        fs = r.json()["FileStatuses"]["FileStatus"]
        self.assertEqual([(s["pathSuffix"], s["permission"], s["childrenNum"]) for s in fs], [("d", "640", 0)])
        self.assertEqual(fs[0]["blockSize"], 0)

    def test_rename2_answers_empty(self):
        r = self.call("PUT", "/h6/a", "CREATE", b"")
        http_request(split(r.header("location"))[0], "PUT", split(r.header("location"))[1], b"A")
        r = self.call("PUT", "/h6/a", "RENAME", destination="/h6/b", renameoptions="OVERWRITE")
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertEqual(self.read_hadoop("/h6/b"), b"A")
        r = self.call("PUT", "/h6/b", "RENAME", destination="/h6/c")
        self.assertEqual(r.json(), {"boolean": True})


class Gen1Bearer(Gen1Mixin, EmuTestCase):
    EMUS = {"e": dict(service="gen1", dialect="adls", token="sekrit-token")}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.e = cls.emus["e"]

    def test_missing_and_wrong_token(self):
        r = http_request(self.e.url, "PUT", "/webhdfs/v1/b1?op=MKDIRS")
        self.assertRemote(r, 401, "SecurityException")
        r = http_request(self.e.url, "PUT", "/webhdfs/v1/b1?op=MKDIRS", headers={"Authorization": "Bearer nope"})
        self.assertRemote(r, 401, "SecurityException")
        r = http_request(self.e.url, "PUT", "/webhdfs/v1/b1?op=MKDIRS", headers={"Authorization": "Basic eDp5"})
        self.assertRemote(r, 401, "SecurityException")
        self.assertIsNone(self.stat("/b1"))
        r = http_request(self.e.url, "PUT", "/webhdfs/v1/b1?op=MKDIRS",
                         headers={"Authorization": "Bearer sekrit-token"})
        self.assertEqual(r.json(), {"boolean": True})

    def test_token_checked_before_redirect(self):
        r = http_request(self.e.url, "PUT", "/webhdfs/v1/b2?op=CREATE", b"")
        self.assertRemote(r, 401, "SecurityException")
        self.assertEqual(self.e.request("PUT", "/webhdfs/v1/b2?op=CREATE", b"").status, 307)


if __name__ == "__main__":
    main()
