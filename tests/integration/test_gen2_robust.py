"""Gen2 emulator robustness: fault injection (fail with the service's error shape and Retry-After,
reset, latency) and per-op counters, persistence across SIGTERM and SIGKILL restarts, bad input
(`..` plain and encoded, control characters, malformed escapes, oversized bodies) that must be refused
without changing anything on disk, clients that vanish mid-append, concurrent appends, and recursive deletes
paged with x-ms-continuation (--delete-page)."""
import datetime
import os
import signal
import socket
import threading
import time
import urllib.parse

import emulib

A = "/" + emulib.DEV_ACCOUNT


def err(r):
    return r.header("x-ms-error-code")


def snapshot(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, d)] = os.path.getsize(p)
    return out


def signed_headers(e, method, target, length, extra=None):
    h = {"x-ms-version": emulib.X_MS_VERSION,
         "x-ms-date": datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT"),
         "Content-Length": str(length)}
    h.update(extra or {})
    h["Authorization"] = emulib.shared_key_auth(e.account, e.key, method, target, h, length)
    return h


def raw_request_start(e, method, target, length):
    """Open a socket and send the headers of a signed request announcing length body bytes."""
    u = urllib.parse.urlsplit(e.url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    h = signed_headers(e, method, target, length)
    head = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, u.netloc)
    head += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    s.sendall(head.encode())
    return s


def read_status(s):
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]) if data else None


class RobustTests(emulib.EmuTestCase):
    EMUS = {"g": dict(service="gen2"),
            "small": dict(service="gen2", extra_args=["--max-body", "1024"]),
            "paged": dict(service="gen2", extra_args=["--delete-page", "3"])}

    @property
    def e(self):
        return self.emus["g"]

    def setUp(self):
        self.e.admin("DELETE", "/faults")

    def mkfs(self, e, name):
        r = e.gen2("PUT", "%s/%s?resource=filesystem" % (A, name))
        self.assertIn(r.status, (201, 409))

    def write(self, e, fs, path, data):
        self.assertEqual(e.gen2("PUT", "%s/%s/%s?resource=file" % (A, fs, path)).status, 201)
        if data:
            self.assertEqual(e.gen2("PATCH", "%s/%s/%s?action=append&position=0" % (A, fs, path), data).status, 202)
        r = e.gen2("PATCH", "%s/%s/%s?action=flush&position=%d" % (A, fs, path, len(data)))
        self.assertEqual(r.status, 200)

    # ---- faults and counters ----
    def test_fail_rules(self):
        self.mkfs(self.e, "faultfs")
        self.e.fault("method=PUT,op=create-file,action=fail,status=503,retry_after=2,count=2")
        for _ in range(2):
            r = self.e.gen2("PUT", A + "/faultfs/f?resource=file")
            self.assertEqual((r.status, err(r), r.header("retry-after")), (503, "ServerBusy", "2"))
            self.assertEqual(r.json()["error"]["code"], "ServerBusy")
            self.assertRegex(r.json()["error"]["message"], r"\nRequestId:[0-9a-f-]{36}\nTime:")
            self.assertTrue(r.header("x-ms-request-id"))
        self.assertEqual(self.e.gen2("PUT", A + "/faultfs/f?resource=file").status, 201)
        self.e.fault("method=HEAD,op=get-status,action=fail,status=500,count=1")
        r = self.e.gen2("HEAD", A + "/faultfs/f?action=getStatus")
        self.assertEqual((r.status, err(r), r.body), (500, "InternalError", b""))
        self.assertEqual(self.e.gen2("HEAD", A + "/faultfs/f?action=getStatus").status, 200)
        # a faulted append stages nothing
        self.e.fault("op=append,action=fail,status=503,count=1")
        r = self.e.gen2("PATCH", A + "/faultfs/f?action=append&position=0", b"data")
        self.assertEqual(r.status, 503)
        self.assertEqual(err(self.e.gen2("PATCH", A + "/faultfs/f?action=flush&position=4")), "InvalidFlushPosition")
        # token endpoint faults answer in AAD's shape
        self.e.fault("op=token,action=fail,status=503,count=1")
        r = emulib.http_request(self.e.url, "POST", "/t/oauth2/token", "grant_type=client_credentials",
                                {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((r.status, r.json()["error"]), (503, "temporarily_unavailable"))

    def test_reset_and_latency(self):
        self.mkfs(self.e, "resetfs")
        self.write(self.e, "resetfs", "f", b"abc")
        self.e.fault("op=read,action=reset,count=1")
        with self.assertRaises((ConnectionError, OSError, Exception)):
            self.e.gen2("GET", A + "/resetfs/f")
        self.assertEqual(self.e.gen2("GET", A + "/resetfs/f").body, b"abc")
        self.e.fault("op=get-properties,action=latency,latency_ms=300,count=1")
        t0 = time.time()
        self.assertEqual(self.e.gen2("HEAD", A + "/resetfs/f").status, 200)
        self.assertGreaterEqual(time.time() - t0, 0.28)
        # reset in the middle of an append body: nothing is staged
        self.e.fault("op=append,action=reset,after_bytes=1000,count=1")
        with self.assertRaises(Exception):
            self.e.gen2("PATCH", A + "/resetfs/f?action=append&position=3", b"x" * 200000)
        self.assertEqual(err(self.e.gen2("PATCH", A + "/resetfs/f?action=flush&position=200003")),
                         "InvalidFlushPosition")
        self.assertEqual(self.e.gen2("GET", A + "/resetfs/f").body, b"abc")

    def test_counters(self):
        e = self.e
        e.admin("DELETE", "/counters")
        self.mkfs(e, "cntfs")
        e.gen2("HEAD", A + "/cntfs?resource=filesystem")
        e.gen2("PUT", A + "/cntfs/d?resource=directory")
        e.gen2("PUT", A + "/cntfs/f?resource=file")
        e.gen2("PATCH", A + "/cntfs/f?action=append&position=0", b"x")
        e.gen2("PATCH", A + "/cntfs/f?action=flush&position=1")
        e.gen2("GET", A + "/cntfs/f")
        e.gen2("HEAD", A + "/cntfs/f")
        e.gen2("HEAD", A + "/cntfs/f?action=getStatus")
        e.gen2("HEAD", A + "/cntfs/f?action=getAccessControl")
        e.gen2("PATCH", A + "/cntfs/f?action=setAccessControl", headers={"x-ms-permissions": "0600"})
        e.gen2("PATCH", A + "/cntfs/d?action=setAccessControlRecursive&mode=modify", headers={"x-ms-acl": "user:u:r--"})
        e.gen2("PATCH", A + "/cntfs/f?action=setProperties")
        e.gen2("POST", A + "/cntfs/f", headers={"x-ms-lease-action": "acquire", "x-ms-lease-duration": "-1"})
        e.gen2("PUT", A + "/cntfs/f?comp=expiry", headers={"x-ms-expiry-option": "NeverExpire"})
        e.gen2("PUT", A + "/cntfs/d2", headers={"x-ms-rename-source": "/cntfs/d"})
        e.gen2("GET", A + "/cntfs?resource=filesystem&recursive=true")
        e.gen2("GET", A + "?resource=account")
        e.gen2("DELETE", A + "/cntfs/d2?recursive=true")
        e.gen2("DELETE", A + "/cntfs?resource=filesystem")
        c = e.counters()["requests"]
        for key in ["PUT filesystem-create", "HEAD filesystem-properties", "PUT create-directory", "PUT create-file",
                    "PATCH append", "PATCH flush", "GET read", "HEAD get-properties", "HEAD get-status",
                    "HEAD get-acl", "PATCH set-acl", "PATCH set-acl-recursive", "PATCH set-properties",
                    "POST lease", "PUT set-expiry", "PUT rename", "GET list-paths", "GET list-filesystems",
                    "DELETE delete", "DELETE filesystem-delete"]:
            self.assertEqual(c.get(key), 1, (key, c))

    # ---- persistence ----
    def test_restart_persistence(self):
        d = emulib.Emu("gen2")
        try:
            self.mkfs(d, "persist")
            self.write(d, "persist", "dir/f", b"durable bytes")
            d.gen2("PATCH", A + "/persist/dir/f?action=setProperties", headers={"x-ms-properties": "k=dg=="})
            d.gen2("PATCH", A + "/persist/dir?action=setAccessControl",
                   headers={"x-ms-acl": "user::rwx,user:u1:r-x,group::r-x,mask::r-x,other::---"})
            lid = "12345678-1234-4234-8234-123456789012"
            d.gen2("POST", A + "/persist/dir/f", headers={"x-ms-lease-action": "acquire", "x-ms-lease-duration": "-1",
                                                          "x-ms-proposed-lease-id": lid})
            d.gen2("PATCH", A + "/persist/dir/f?action=append&position=13", b" + staged",
                   headers={"x-ms-lease-id": lid})
            before = d.gen2("HEAD", A + "/persist/dir/f")
            acl = d.gen2("HEAD", A + "/persist/dir?action=getAccessControl").header("x-ms-acl")
            for sig in (signal.SIGTERM, signal.SIGKILL):
                d.restart(sig)
                h = d.gen2("HEAD", A + "/persist/dir/f")
                for k in ("etag", "content-length", "x-ms-properties", "x-ms-lease-state", "last-modified"):
                    self.assertEqual(h.header(k), before.header(k), (sig, k))
                self.assertEqual(d.gen2("GET", A + "/persist/dir/f").body, b"durable bytes")
                self.assertEqual(d.gen2("HEAD", A + "/persist/dir?action=getAccessControl").header("x-ms-acl"), acl)
            # staged data survived too and can be committed
            r = d.gen2("PATCH", A + "/persist/dir/f?action=flush&position=22", headers={"x-ms-lease-id": lid})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(d.gen2("GET", A + "/persist/dir/f").body, b"durable bytes + staged")
        finally:
            d.close()

    def test_lease_duration_survives_restart(self):
        d = emulib.Emu("gen2")
        try:
            self.mkfs(d, "leases")
            self.write(d, "leases", "f", b"x")
            r = d.gen2("POST", A + "/leases/f", headers={"x-ms-lease-action": "acquire", "x-ms-lease-duration": "15"})
            self.assertEqual(r.status, 201, r)
            lid = r.header("x-ms-lease-id")
            d.restart(signal.SIGKILL)
            h = d.gen2("HEAD", A + "/leases/f")
            self.assertEqual((h.header("x-ms-lease-state"), h.header("x-ms-lease-duration")), ("leased", "fixed"))
            r = d.gen2("POST", A + "/leases/f", headers={"x-ms-lease-action": "renew", "x-ms-lease-id": lid})
            self.assertEqual(r.status, 200, r)
            # the renewal ran for the 15 s recorded before the restart: a break without a period
            # ends when the lease would
            r = d.gen2("POST", A + "/leases/f", headers={"x-ms-lease-action": "break"})
            self.assertEqual((r.status, r.header("x-ms-lease-time")), (202, "15"))
        finally:
            d.close()

    # ---- bad input ----
    def test_bad_paths_change_nothing(self):
        e = self.e
        self.mkfs(e, "badfs")
        self.write(e, "badfs", "keep", b"k")
        before = snapshot(e.data_dir)
        targets = [
            A + "/badfs/../escape?resource=file",
            A + "/badfs/%2e%2e/escape?resource=file",
            A + "/badfs/%2E%2E%2F%2E%2E%2Fescape?resource=file",
            A + "/badfs/a/./b?resource=file",
            A + "/badfs/x%2F..%2Fy?resource=file",
            A + "/badfs/ctl%0Aname?resource=file",
            A + "/badfs/nul%00name?resource=file",
            A + "/badfs/del%7Fname?resource=file",
            A + "/badfs/bad%G1escape?resource=file",
            A + "/badfs/trailing%?resource=file",
            A + "/badfs/" + "n" * 1100 + "?resource=file",
            A + "/badfs/q?resource=file&x=%00",
        ]
        for t in targets:
            r = e.gen2("PUT", t)
            self.assertEqual(r.status, 400, t)
            self.assertIn(err(r), ("InvalidUri", "InvalidResourceName", "InvalidQueryParameterValue"), t)
        r = e.gen2("PUT", A + "/badfs/dst", headers={"x-ms-rename-source": "/badfs/../../etc/passwd"})
        self.assertEqual(r.status, 400)
        r = e.gen2("PUT", A + "/badfs/dst", headers={"x-ms-rename-source": "/badfs/%2e%2e/keep"})
        self.assertEqual(r.status, 400)
        r = e.gen2("GET", A + "/badfs?resource=filesystem&recursive=true&directory=..%2F..")
        self.assertEqual(r.status, 400)
        r = e.gen2("PUT", A + "/badfs/f?resource=file", headers={"x-ms-permissions": "rwxrwxrwx+"})
        self.assertEqual(r.status, 400)
        r = e.gen2("PUT", A + "/badfs/f?resource=file", headers={"x-ms-acl": "user::rwx,,other::---"})
        self.assertEqual(r.status, 400)
        r = e.gen2("PATCH", A + "/badfs/keep?action=setAccessControl", headers={"x-ms-acl": "mask:x:rwx"})
        self.assertEqual(r.status, 400)
        self.assertEqual(snapshot(e.data_dir), before)
        parent = os.path.dirname(e.data_dir)
        self.assertFalse(any(n == "escape" for n in os.listdir(parent)))
        r = e.gen2("GET", A + "/badfs?resource=filesystem&recursive=true")
        self.assertEqual([p["name"] for p in r.json()["paths"]], ["keep"])

    def test_oversized_body(self):
        s = self.emus["small"]
        self.mkfs(s, "smallfs")
        self.assertEqual(s.gen2("PUT", A + "/smallfs/f?resource=file").status, 201)
        before = snapshot(s.data_dir)
        r = s.gen2("PATCH", A + "/smallfs/f?action=append&position=0", b"x" * 2048)
        self.assertEqual((r.status, err(r)), (413, "RequestBodyTooLarge"))
        self.assertEqual(r.json()["error"]["code"], "RequestBodyTooLarge")
        self.assertEqual(snapshot(s.data_dir), before)
        self.assertEqual(err(s.gen2("PATCH", A + "/smallfs/f?action=flush&position=2048")), "InvalidFlushPosition")
        self.assertEqual(s.gen2("PATCH", A + "/smallfs/f?action=append&position=0", b"y" * 1024).status, 202)
        self.assertEqual(s.gen2("PATCH", A + "/smallfs/f?action=flush&position=1024").status, 200)

    def test_client_vanishes_mid_append(self):
        e = self.e
        self.mkfs(e, "gonefs")
        self.write(e, "gonefs", "f", b"head")
        target = A + "/gonefs/f?action=append&position=4"
        sock = raw_request_start(e, "PATCH", target, 100000)
        sock.sendall(b"z" * 5000)
        time.sleep(0.2)
        sock.close()
        time.sleep(0.3)
        for pos in (100004, 5004):
            self.assertEqual(err(e.gen2("PATCH", A + "/gonefs/f?action=flush&position=%d" % pos)),
                             "InvalidFlushPosition")
        # the file is not left busy: new appends and flushes work
        self.assertEqual(e.gen2("PATCH", target, b"tail").status, 202)
        self.assertEqual(e.gen2("PATCH", A + "/gonefs/f?action=flush&position=8").status, 200)
        self.assertEqual(e.gen2("GET", A + "/gonefs/f").body, b"headtail")

    def test_flush_waits_for_append_in_flight(self):
        e = self.e
        self.mkfs(e, "waitfs")
        self.assertEqual(e.gen2("PUT", A + "/waitfs/f?resource=file").status, 201)
        appends_before = e.counters()["requests"].get("PATCH append", 0)
        sock = raw_request_start(e, "PATCH", A + "/waitfs/f?action=append&position=0", 8)
        sock.sendall(b"1234")
        result = {}

        def flush():
            result["r"] = e.gen2("PATCH", A + "/waitfs/f?action=flush&position=8")

        t = threading.Thread(target=flush)
        # Start the flush only once the emulator has taken the append (it counts a request when its
        # headers are in, just before marking the file busy), so a loaded machine cannot reorder them.
        deadline = time.time() + 10
        while e.counters()["requests"].get("PATCH append", 0) <= appends_before and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        t.start()
        time.sleep(0.3)
        self.assertNotIn("r", result)  # the flush waits for the append
        sock.sendall(b"5678")
        self.assertEqual(read_status(sock), 202)
        sock.close()
        t.join(10)
        self.assertEqual(result["r"].status, 200, result["r"])
        self.assertEqual(e.gen2("GET", A + "/waitfs/f").body, b"12345678")

    def test_parallel_appends(self):
        e = self.e
        self.mkfs(e, "parfs")
        self.assertEqual(e.gen2("PUT", A + "/parfs/f?resource=file").status, 201)
        chunk = 64 * 1024
        parts = [bytes([65 + i]) * chunk for i in range(8)]
        codes = []

        def put(i):
            codes.append(e.gen2("PATCH", A + "/parfs/f?action=append&position=%d" % (i * chunk), parts[i]).status)

        threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(codes, [202] * 8)
        self.assertEqual(e.gen2("PATCH", A + "/parfs/f?action=flush&position=%d&close=true" % (8 * chunk)).status, 200)
        self.assertEqual(e.gen2("GET", A + "/parfs/f").body, b"".join(parts))


    # ---- paged recursive delete (--delete-page) ----
    def paths_under(self, e, fs, d):
        r = e.gen2("GET", "%s/%s?resource=filesystem&recursive=true&directory=%s" % (A, fs, d))
        if r.status == 404:
            return None
        self.assertEqual(r.status, 200, r)
        return {(p["name"], p.get("isDirectory") in (True, "true")) for p in r.json()["paths"]}

    def test_delete_paged(self):
        e = self.emus["paged"]
        self.mkfs(e, "delfs")
        # tree of 10 entries under t: a/{f1,f2,b/{g1,g2}}, c/h, top1, top2
        for d in ("t/a/b", "t/c"):
            self.assertEqual(e.gen2("PUT", "%s/delfs/%s?resource=directory" % (A, d)).status, 201)
        files = ["t/a/f1", "t/a/f2", "t/a/b/g1", "t/a/b/g2", "t/c/h", "t/top1", "t/top2"]
        for f in files:
            self.write(e, "delfs", f, f.encode())
        self.write(e, "delfs", "keep", b"keep")
        self.assertEqual(len(self.paths_under(e, "delfs", "t")), 10)
        # a small directory or a file goes in one call, without a continuation
        self.assertEqual(e.gen2("PUT", A + "/delfs/small/x/y?resource=directory").status, 201)
        r = e.gen2("DELETE", A + "/delfs/small?recursive=true")
        self.assertEqual((r.status, r.header("x-ms-continuation")), (200, None))
        self.assertEqual(e.gen2("HEAD", A + "/delfs/small").status, 404)
        e.admin("DELETE", "/counters")
        base = A + "/delfs/t?recursive=true&paginated=true"
        target, rounds, seen = base, 0, []
        remaining = self.paths_under(e, "delfs", "t")
        while True:
            r = e.gen2("DELETE", target)
            self.assertEqual(r.status, 200, r)
            rounds += 1
            tok = r.header("x-ms-continuation")
            if not tok:
                break
            seen.append(tok)
            # intermediate state: t still there, at most 3 entries gone, every survivor's parent survives
            self.assertEqual(e.gen2("HEAD", A + "/delfs/t").status, 200)
            now = self.paths_under(e, "delfs", "t")
            self.assertTrue(now < remaining and len(remaining) - len(now) <= 3, (remaining, now))
            names = {n for n, _ in now}
            for n, _ in now:
                parent = n.rsplit("/", 1)[0]
                self.assertTrue(parent == "t" or parent in names, (n, names))
            remaining = now
            # a garbled or foreign token is refused and changes nothing
            for bad in ("garbled", tok[:-4] + "AAAA"):
                r = e.gen2("DELETE", base + "&continuation=" + urllib.parse.quote(bad, safe=""))
                self.assertEqual((r.status, err(r)), (400, "InvalidQueryParameterValue"), bad)
            self.assertEqual(self.paths_under(e, "delfs", "t"), remaining)
            target = base + "&continuation=" + urllib.parse.quote(tok, safe="")
            self.assertLess(rounds, 10)
        # 10 entries under t, 3 per round: 3 rounds leave 1, the 4th removes it and t itself
        self.assertEqual(rounds, 4)
        self.assertEqual(e.gen2("HEAD", A + "/delfs/t").status, 404)
        self.assertEqual(e.counters()["requests"].get("DELETE delete"), 4 + 2 * 3)
        self.assertEqual(e.gen2("GET", A + "/delfs/keep").body, b"keep")
        # the state is the tree: after a restart the same token still continues a delete of that path
        for d in ("t/a/b", "t/c", "t/d"):
            self.assertEqual(e.gen2("PUT", "%s/delfs/%s?resource=directory" % (A, d)).status, 201)
        e.restart()
        r = e.gen2("DELETE", A + "/delfs/t?recursive=true&continuation=" + urllib.parse.quote(seen[0], safe=""))
        self.assertEqual((r.status, bool(r.header("x-ms-continuation"))), (200, True))
        r = e.gen2("DELETE", A + "/delfs/t?recursive=true&continuation=" + urllib.parse.quote(seen[0], safe=""))
        self.assertEqual((r.status, r.header("x-ms-continuation")), (200, None))
        self.assertEqual(e.gen2("HEAD", A + "/delfs/t").status, 404)
        # a token for another path is refused
        self.assertEqual(e.gen2("PUT", A + "/delfs/u?resource=directory").status, 201)
        r = e.gen2("DELETE", A + "/delfs/u?recursive=true&continuation=" + urllib.parse.quote(seen[0], safe=""))
        self.assertEqual((r.status, err(r)), (400, "InvalidQueryParameterValue"))


if __name__ == "__main__":
    emulib.main()
