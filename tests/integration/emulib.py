"""emulib: start dualpipe-emu processes for tests and talk to them over real HTTP on loopback.

Every emulator runs in its own temporary data directory, on ports it picks itself (port 0), and is
stopped when the test ends; readiness is the "dualpipe-emu ready" line the emulator prints on stdout.
The Gen2 helpers sign requests with Shared Key using an implementation written independently of the
C one (Python's hmac), so a bug in common/upstream/skey.c cannot hide behind the same bug here.
"""
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

EMU_BIN = os.environ.get("DUALPIPE_EMU", os.path.join(os.path.dirname(__file__), "../../build/bin/dualpipe-emu"))
# The well-known public storage emulator account key (not a secret; Azurite and the Azure docs publish it).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
X_MS_VERSION = "2021-06-08"


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return "Response(%d, %r, %r)" % (self.status, self.headers, self.body[:300])


# ssl.SSLContext used for https:// bases (a test with a CA of its own sets it; None = the system's).
SSL_CONTEXT = None


def http_request(base, method, target, body=None, headers=None, timeout=30):
    """One request on a fresh connection. base is 'http(s)://127.0.0.1:PORT'; target is sent verbatim."""
    u = urllib.parse.urlsplit(base)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=SSL_CONTEXT)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if body is not None and isinstance(body, str):
            body = body.encode("utf-8")
        conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        if body is not None and not any(k.lower() == "content-length" for k in hdrs) \
                and not any(k.lower() == "transfer-encoding" for k in hdrs):
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body is not None:
            conn.send(body)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.getheaders(), data)
    finally:
        conn.close()


def raw_http(base, data, timeout=10):
    """Send raw bytes to base ('http://127.0.0.1:P' or 'host:port') exactly as given (no client-side
    validation) and read one response: until the server closes, the read times out, or one full answer
    (headers + Content-Length bytes) arrived. Returns (status, headers dict lower-case, body bytes);
    status is 0 when nothing HTTP-shaped came back."""
    if "://" not in base:
        base = "http://" + base
    u = urllib.parse.urlsplit(base)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except socket.timeout:
            pass
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0") or 0)
        try:
            while len(rest) < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
        except socket.timeout:
            pass
        return status, hdrs, rest[:n]
    finally:
        s.close()


class Emu:
    """A running dualpipe-emu. service: 'gen1' or 'gen2'."""

    def __init__(self, service, dialect="adls", token=None, account=DEV_ACCOUNT, key=DEV_KEY,
                 extra_args=None, data_dir=None, env=None):
        self.service = service
        self.dialect = dialect
        self.token = token
        self.account = account
        self.key = key
        self.extra_args = list(extra_args or [])
        self.env = env
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="dp-emu-")
        self.proc = None
        self.log_path = os.path.join(tempfile.gettempdir(), "dp-emu-%d-%s.log" % (os.getpid(), id(self)))
        try:
            self.start()
        except BaseException:
            # A failed start leaves nothing behind: no log (its tail is in the error), no data directory.
            self._remove_files()
            raise

    def _remove_files(self):
        try:
            os.unlink(self.log_path)
        except OSError:
            pass
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def args(self):
        a = [EMU_BIN, self.service, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data", self.data_dir]
        if self.service == "gen1":
            a += ["--dialect", self.dialect]
            if self.token:
                a += ["--token", self.token]
        else:
            a += ["--account", self.account, "--key", self.key]
        return a + self.extra_args

    def start(self, timeout=15):
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.PIPE, stderr=self.log, env=env)
        deadline = time.time() + timeout
        line = b""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith(b"dualpipe-emu ready"):
                break
        if not line.startswith(b"dualpipe-emu ready"):
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            self.log.close()
            raise RuntimeError("emulator did not start: %r\n%s" % (line, self.read_log()))
        fields = dict(kv.split("=", 1) for kv in line.decode().split()[2:])
        self.url = ("https://" if "--tls-cert" in self.extra_args else "http://") + fields["listen"]
        self.admin_url = "http://" + fields["admin"]
        self.datanode_url = ("http://" + fields["datanode"]) if "datanode" in fields else None
        # Keep draining stdout so the emulator never blocks on a full pipe.
        self._drainer = threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True)
        self._drainer.start()

    @staticmethod
    def _drain(f):
        for _ in iter(f.readline, b""):
            pass

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        if self.proc:
            self._drainer.join(5)  # the pipe reaches EOF once the process is gone
            self.proc.stdout.close()
        self.proc = None
        if self.log:
            self.log.close()
            self.log = None
        return rc

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        self.start()

    def close(self):
        self.stop()
        log = self.read_log()
        if any(m in log for m in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer", "ThreadSanitizer")):
            raise AssertionError("sanitizer report in emulator log:\n" + log[-4000:])
        self._remove_files()

    # ---- plain requests ----
    def request(self, method, target, body=None, headers=None, base=None):
        hdrs = dict(headers or {})
        if self.service == "gen1" and self.token and not any(k.lower() == "authorization" for k in hdrs):
            hdrs["Authorization"] = "Bearer " + self.token
        return http_request(base or self.url, method, target, body, hdrs)

    def admin(self, method, path, body=None):
        return http_request(self.admin_url, method, path, body)

    def counters(self):
        return self.admin("GET", "/counters").json()

    def fault(self, rule):
        r = self.admin("POST", "/faults", rule)
        assert r.status == 200, r
        return r

    # ---- Gen1 helpers ----
    def webhdfs(self, method, path, op, body=None, headers=None, **params):
        """One-step WebHDFS call: path is the decoded absolute path, params are added form-encoded."""
        q = [("op", op)] + [(k, ("true" if v is True else "false" if v is False else str(v)))
                            for k, v in params.items()]
        target = "/webhdfs/v1" + urllib.parse.quote(path) + "?" + urllib.parse.urlencode(q)
        return self.request(method, target, body, headers)

    # ---- Gen2 helpers ----
    def gen2(self, method, target, body=None, headers=None, auth="sharedkey", keep_empty=False):
        """Gen2 call on a path-style target ('/ACCOUNT/fs/path?query'). auth: 'sharedkey', 'none',
        'bearer:<token>', 'key:<other base64 key>'."""
        hdrs = {"x-ms-version": X_MS_VERSION,
                "x-ms-date": datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")}
        hdrs.update(headers or {})
        if body is not None and isinstance(body, str):
            body = body.encode("utf-8")
        if auth == "sharedkey" or auth.startswith("key:"):
            key = self.key if auth == "sharedkey" else auth[4:]
            hdrs["Authorization"] = shared_key_auth(self.account, key, method, target, hdrs,
                                                    0 if body is None else len(body), keep_empty)
        elif auth.startswith("bearer:"):
            hdrs["Authorization"] = "Bearer " + auth[7:]
        return http_request(self.url, method, target, body, hdrs)


def shared_key_string_to_sign(account, method, target, headers, content_length, keep_empty=False):
    h = {k.lower(): v for k, v in headers.items()}
    path, _, query = target.partition("?")
    std = ["content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
           "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range"]
    vals = []
    for name in std:
        if name == "content-length":
            v = h.get(name, str(content_length) if content_length else "")
            vals.append("" if v == "0" else v)
        elif name == "date":
            vals.append("" if "x-ms-date" in h else h.get("date", ""))
        else:
            vals.append(h.get(name, ""))
    xms = sorted((k, v) for k, v in h.items() if k.startswith("x-ms-"))
    canon_headers = "\n".join("%s:%s" % (k, v.lstrip()) for k, v in xms)
    res = "/" + account + path
    params = {}
    for piece in query.split("&") if query else []:
        if not piece:
            continue
        n, _, v = piece.partition("=")
        n = urllib.parse.unquote(n).lower()
        v = urllib.parse.unquote(v)
        if v == "" and not keep_empty:
            continue
        params.setdefault(n, []).append(v)
    for n in sorted(params):
        res += "\n%s:%s" % (n, ",".join(sorted(params[n])))
    return "\n".join([method] + vals + [canon_headers, res])


def shared_key_auth(account, key, method, target, headers, content_length, keep_empty=False):
    sts = shared_key_string_to_sign(account, method, target, headers, content_length, keep_empty)
    sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode("utf-8"), hashlib.sha256).digest())
    return "SharedKey %s:%s" % (account, sig.decode())


def service_sas(account, key, filesystem, path, sp, sr, start, expiry, sv="2020-02-10"):
    """Query string of a service SAS (protocols.md §3.2 layout) for /filesystem[/path]."""
    canon = "/blob/%s/%s%s" % (account, filesystem, ("/" + path.lstrip("/")) if path else "")
    fields = [sp, start, expiry, canon, "", "", "", sv, sr, "", "", "", "", "", ""]
    sig = base64.b64encode(hmac.new(base64.b64decode(key), "\n".join(fields).encode(), hashlib.sha256).digest())
    return urllib.parse.urlencode([("sv", sv), ("sr", sr), ("sp", sp), ("st", start), ("se", expiry),
                                   ("sig", sig.decode())])


class EmuTestCase(unittest.TestCase):
    """Base class: subclasses list emulators to start in EMUS = {'name': dict(kwargs for Emu)}."""
    EMUS = {}

    @classmethod
    def setUpClass(cls):
        cls.emus = {}
        for name, kw in cls.EMUS.items():
            cls.emus[name] = Emu(**kw)

    @classmethod
    def tearDownClass(cls):
        for e in cls.emus.values():
            e.close()


def main():
    unittest.main(verbosity=2)
