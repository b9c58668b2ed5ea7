"""proxylib: run the dualpipe proxy between a Gen1 and a Gen2 emulator, and compare the two stores.

A Stack is three real processes on loopback: a Gen1 emulator (WebHDFS, dialect adls or hadoop), a
Gen2 emulator (DFS) with the filesystem "lake" created, and `dualpipe --config <generated file>`
(binary from env DUALPIPE) in front of the Gen1 emulator. Every process binds 127.0.0.1 on a port it
picks itself, runs in its own temporary directory, and is stopped at the end. The proxy is ready when
it prints `dualpipe ready listen=H:P admin=H:P`.

wait_applied() polls the proxy's `GET /admin/status` until no write is pending on the Gen2 side;
wait_drained() polls `GET /admin/journal` until the journal owes Gen2 nothing (issue 4).

Durable spool + journal (issue 4): the environment variable DP_JOURNAL_IO (auto|io_uring|threads)
sets journal.io in every Stack's config (unset: the proxy's default), so the whole suite can be
re-run with the thread-pool backend; DP_NO_URING=1 runs the proxy under tests/tools'
`dualpipe-no-uring` (io_uring refused by seccomp, as in Docker), to exercise the automatic fallback.
A Proxy can be killed (SIGKILL) and started again on the same spool and journal directories; the
new ready line gives the new ports.

compare() is the independent check that both stores hold the same thing: it walks Gen1 directly on
the Gen1 emulator (WebHDFS LISTSTATUS with paging, GETACLSTATUS, OPEN) and Gen2 directly on the Gen2
emulator (recursive List Paths with continuations, HEAD getAccessControl, GET, signed by emulib's own
Shared Key code) and returns the differences: tree, types, bytes (sha256), permission bits (Gen2's
symbolic form turned into octal), owner/group and the full ACL (Gen1's AclStatus expanded to the
base entries Gen2 shows). With gen2.identity_map in the stack's config, Gen1's owner, group and ACL
entry names are first mapped through that file (read here with its own parser, so compare stays an
independent check); names the file lacks are compared as they are. check_times also compares Gen1's
modificationTime/accessTime with the Gen2 property dualpipe_times of each file whose length it
recorded is still the file's length (a later APPEND leaves the property behind by design).
"""
import copy
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse

import emulib

DUALPIPE_BIN = os.environ.get("DUALPIPE", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "../../build/bin/dualpipe"))
A = "/" + emulib.DEV_ACCOUNT
FS = "lake"
NO_URING_BIN = os.environ.get("DUALPIPE_NO_URING",
                              os.path.join(os.path.dirname(os.path.abspath(DUALPIPE_BIN)), "dualpipe-no-uring"))
JOURNAL_IO = os.environ.get("DP_JOURNAL_IO") or None     # auto|io_uring|threads; None = the proxy's default
NO_URING = os.environ.get("DP_NO_URING", "") not in ("", "0")
# The backend every proxy of the run must report in dualpipe_io_backend (docker/ci-container.sh runs the
# proxy in a container under podman's default seccomp profile, "threads", or the io_uring one).
EXPECT_BACKEND = os.environ.get("DP_EXPECT_IO_BACKEND") or None
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer", "ThreadSanitizer")


def deep_merge(base, over):
    """base updated recursively with over (dicts merge, anything else replaces); returns a new dict.
    A value of None in over deletes the key."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def base_config(gen1_url, gen1_dialect, gen2_url, spool_dir, filesystem=FS):
    """The minimal proxy config of proxy-arch.md, with every port 0 and Shared Key toward Gen2."""
    return {
        "listen": "127.0.0.1:0",
        "admin": {"listen": "127.0.0.1:0"},
        "spool": {"dir": spool_dir},
        # settle_ms: a lost Gen1 answer (and an in-doubt record after a restart) is settled this long
        # after the fact; the emulators apply at once, so the tests need not wait the 10 s default
        "gen1": {"endpoint": gen1_url, "dialect": gen1_dialect, "settle_ms": 1000},
        "gen2": {"endpoint": gen2_url, "account": emulib.DEV_ACCOUNT,
                 "auth": {"mode": "shared_key", "account_key": emulib.DEV_KEY},
                 "mappings": [{"gen1_prefix": "/", "filesystem": filesystem, "prefix": ""}]},
        "log": {"level": "debug"},
    }


class Proxy:
    """A running `dualpipe --config FILE`. config is the dict written to FILE."""

    def __init__(self, config, env=None, start=True, no_uring=None):
        self.config = config
        self.env = env
        self.no_uring = NO_URING if no_uring is None else no_uring
        self.log_mark = 0  # size of the log when the current process started (log_since_start)
        self.dir = tempfile.mkdtemp(prefix="dp-proxy-")
        self.config_path = os.path.join(self.dir, "config.json")
        self.log_path = os.path.join(self.dir, "dualpipe.log")
        self.proc = None
        self.log = None
        self.returncode = None
        if start:
            try:
                self.start()
            except BaseException:
                shutil.rmtree(self.dir, ignore_errors=True)  # the error already carries the log's tail
                raise

    def write_config(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=1)

    def argv(self):
        # DP_PROXY_CMD: a command standing in for the binary (docker/dualpipe-container.sh runs the image's
        # proxy in a container); ctest's DUALPIPE setting does not override it.
        cmd = [os.environ.get("DP_PROXY_CMD") or DUALPIPE_BIN, "--config", self.config_path]
        return ([NO_URING_BIN] + cmd) if self.no_uring else cmd

    def start(self, timeout=20):
        """Start (or start again, on the same config, spool and journal) and wait for the ready line."""
        self.write_config()
        self.log = open(self.log_path, "ab")
        self.log_mark = self.log.tell()
        self.returncode = None
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, stderr=self.log, env=env)
        # The ready line is read on a thread so a silent, hung proxy cannot block the test past timeout.
        box = {}

        def read_ready():
            while True:
                line = self.proc.stdout.readline()
                if not line or line.startswith(b"dualpipe ready"):
                    box["line"] = line
                    return

        t = threading.Thread(target=read_ready, daemon=True)
        t.start()
        t.join(timeout)
        line = box.get("line", b"")
        if not line.startswith(b"dualpipe ready"):
            rc = self.proc.poll()
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
            self.log.close()
            self.log = None
            raise RuntimeError("dualpipe did not start (%r, exit status %s)\ncommand: %s\nconfig: %s\n---- log ----\n%s"
                               % (line, "none yet" if rc is None else rc, " ".join(self.argv()),
                                  json.dumps(self.config), self.read_log()[-4000:]))
        fields = dict(kv.split("=", 1) for kv in line.decode().split()[2:])
        self.listen = fields["listen"]
        https = bool(self.config.get("tls", {}).get("cert_file"))
        self.url = ("https://" if https else "http://") + fields["listen"]
        self.admin_url = "http://" + fields["admin"]
        self._drainer = threading.Thread(target=emulib.Emu._drain, args=(self.proc.stdout,), daemon=True)
        self._drainer.start()
        # The proxy checks each mapped Gen2 filesystem as it starts (one request each, logged): let that
        # end first, so that faults a test injects next meet only the test's own requests.
        if EXPECT_BACKEND:
            got = self.metrics().get('dualpipe_io_backend{backend="%s"}' % EXPECT_BACKEND)
            if got != 1:
                seen = {k: v for k, v in self.metrics().items() if "io_backend" in k}
                self.stop()
                raise AssertionError("dualpipe_io_backend is not %s: %r" % (
                    EXPECT_BACKEND, seen))
        nfs = len({m["filesystem"] for m in self.config.get("gen2", {}).get("mappings", [])})
        deadline = time.time() + 5
        while (self.log_since_start().count("gen2 filesystem check") < nfs and time.time() < deadline
               and self.proc.poll() is None):
            time.sleep(0.02)

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_since_start(self):
        """The log written by the current (or last) process only."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_mark)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self):
        """kill -9: no drain, no clean close; the spool and journal stay as the crash left them.
        A deliberate kill does not count as an unclean exit in close()."""
        rc = self.stop(signal.SIGKILL)
        self.returncode = None
        return rc

    def restart(self, kill=False, timeout=20):
        """Stop (SIGTERM, or SIGKILL when kill) and start again on the same directories; returns the
        exit status of the stopped process. The ports change: use self.url / self.admin_url after."""
        rc = self.kill() if kill else self.stop()
        if not kill and rc not in (0, None):
            raise AssertionError("dualpipe exited with %r on SIGTERM\n%s" % (rc, self.read_log()[-4000:]))
        self.start(timeout)
        return rc

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stop the proxy (it drains for up to 5 s); returns its exit status."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        self._drainer.join(5)
        self.proc.stdout.close()
        self.proc = None
        self.log.close()
        self.log = None
        return self.returncode

    def close(self):
        """Stop, then fail on a sanitizer report or an unclean exit; removes the temp directory."""
        rc = self.stop()
        log = self.read_log()
        shutil.rmtree(self.dir, ignore_errors=True)
        if any(m in log for m in SANITIZER_MARKS):
            raise AssertionError("sanitizer report in the dualpipe log:\n" + log[-6000:])
        if rc not in (0, None):
            raise AssertionError("dualpipe exited with %r on SIGTERM\n%s" % (rc, log[-4000:]))

    # ---- requests ----
    def request(self, method, target, body=None, headers=None, timeout=30):
        return emulib.http_request(self.url, method, target, body, headers, timeout=timeout)

    def webhdfs(self, method, path, op, body=None, headers=None, prefix="/webhdfs/v1", **params):
        """WebHDFS call through the proxy; path is decoded and absolute, params are form-encoded as given
        (True/False become true/false). No one-step flag is added: callers say write/append/read."""
        return self.request(method, wh_target(path, op, prefix, **params), body, headers)

    def admin(self, method, path, body=None):
        return emulib.http_request(self.admin_url, method, path, body)

    def status(self):
        r = self.admin("GET", "/admin/status")
        if r.status != 200:
            raise AssertionError("GET /admin/status: %r" % r)
        return r.json()

    def journal(self):
        """GET /admin/journal: {"journal":{"pending":..,"parked":..,...},"spool":..,"recovery":..}."""
        r = self.admin("GET", "/admin/journal")
        if r.status != 200:
            raise AssertionError("GET /admin/journal: %r" % r)
        return r.json()

    def metrics(self):
        """GET /metrics as {"name{labels}": float}."""
        out = {}
        for line in self.admin("GET", "/metrics").body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def io_backend(self):
        """The journal's I/O backend as GET /admin/journal reports it ("io_uring" or "threads")."""
        js = self.journal()
        return js.get("io_backend") or js.get("journal", {}).get("backend")

    def expected_backend(self):
        """The backend this run must use: "threads" when forced (journal.io threads, or io_uring
        refused under dualpipe-no-uring), "io_uring" when forced, None when either may be right."""
        io = self.config.get("journal", {}).get("io")
        if io == "threads" or (self.no_uring and io in (None, "auto")):
            return "threads"
        return "io_uring" if io == "io_uring" else None

    def wait_drained(self, timeout=60, allow_parked=False):
        """Wait until the journal owes Gen2 nothing: pending 0 and nothing awaiting the primary (and
        no parked record unless allow_parked), and the applier's own queue (GET /admin/status) is
        empty. Returns the last /admin/journal JSON."""
        deadline = time.time() + timeout
        js = None
        while True:
            js = self.journal()
            j = js.get("journal", {})
            done = int(j.get("pending", -1)) == 0 and int(j.get("awaiting_primary", 0)) == 0
            if done and not allow_parked and int(j.get("parked", 0)) != 0:
                raise AssertionError("journal has parked records: %s\n%s"
                                     % (json.dumps(js)[:2000], self.admin("GET", "/admin/journal/records?parked=1")))
            if done:
                r = self.admin("GET", "/admin/status")
                if r.status != 200 or int(r.json().get("pending", 0)) == 0:
                    return js
            if time.time() > deadline:
                break
            time.sleep(0.1)
        raise AssertionError("journal still pending after %.0f s: %s\n---- proxy log ----\n%s"
                             % (timeout, json.dumps(js)[:2000], self.log_since_start()[-4000:]))

    def wait_applied(self, timeout=30):
        """Wait until the applier has nothing pending; returns the last status JSON."""
        deadline = time.time() + timeout
        st = None
        while time.time() < deadline:
            st = self.status()
            if int(st.get("pending", -1)) == 0:
                return st
            time.sleep(0.05)
        raise AssertionError("applier still pending after %.0f s: %s\n---- proxy log ----\n%s"
                             % (timeout, json.dumps(st)[:2000], self.read_log()[-4000:]))


def write_data(proxy, method, path, op, data, two_step=False, timeout=30, headers=None, **params):
    """CREATE (PUT) or APPEND (POST) of data through proxy in one of the two writer dialects: one-step
    (write=true / append=true with the body, as the ADLS SDKs send) or Hadoop two-step (a body-less
    request, the proxy's 307 back to itself, then the data to that Location), with headers on each step (a
    writer's Authorization). proxy.url is read at
    call time, so a writer follows a restarted proxy. Returns the last Response; transport errors
    (refused, reset, timeout) are raised."""
    if not two_step:
        params.setdefault("write" if op.upper() == "CREATE" else "append", "true")
        return proxy.request(method, wh_target(path, op, **params), data, headers=headers, timeout=timeout)
    r = proxy.request(method, wh_target(path, op, **params), b"", headers=headers, timeout=timeout)
    if r.status != 307:
        return r
    loc = urllib.parse.urlsplit(r.header("location"))
    target = loc.path + ("?" + loc.query if loc.query else "")
    return emulib.http_request("%s://%s" % (loc.scheme, loc.netloc), method, target, data, headers,
                               timeout=timeout)


def wh_target(path, op, prefix="/webhdfs/v1", **params):
    q = [("op", op)] + [(k, ("true" if v is True else "false" if v is False else str(v))) for k, v in params.items()]
    return prefix + urllib.parse.quote(path) + "?" + urllib.parse.urlencode(q)


class Stack:
    """Gen1 emulator + Gen2 emulator (filesystem created) + the proxy between them.

    dialect: the Gen1 emulator's dialect (and the proxy's gen1.dialect). config: overrides deep-merged
    into base_config (a function of the stack may be passed: it gets the stack and returns overrides,
    for values that need the emulators' ports). gen1_kw / gen2_kw: extra emulib.Emu arguments."""

    def __init__(self, dialect="adls", config=None, proxy_env=None, gen1_kw=None, gen2_kw=None,
                 filesystems=(FS,), start_proxy=True, no_uring=None):
        self.dialect = dialect
        self.gen1 = self.gen2 = self.proxy = None
        try:
            self.gen1 = emulib.Emu("gen1", dialect=dialect, **(gen1_kw or {}))
            self.gen2 = emulib.Emu("gen2", **(gen2_kw or {}))
            for fs in filesystems:
                r = self.gen2.gen2("PUT", "%s/%s?resource=filesystem" % (A, fs))
                if r.status != 201:
                    raise RuntimeError("creating filesystem %s: %r" % (fs, r))
            self.spool = tempfile.mkdtemp(prefix="dp-spool-")
            over = config(self) if callable(config) else config
            base = base_config(self.gen1.url, dialect, self.gen2.url, self.spool)
            if JOURNAL_IO:
                base["journal"] = {"io": JOURNAL_IO}
            self.config = deep_merge(base, over)
            self.proxy_env = proxy_env
            self.no_uring = no_uring
            if start_proxy:
                self.proxy = Proxy(self.config, env=proxy_env, no_uring=no_uring)
        except BaseException:
            self.close()
            raise

    @property
    def journal_dir(self):
        return self.config.get("journal", {}).get("dir") or os.path.join(self.config["spool"]["dir"], "journal")

    def close(self):
        errors = []
        for part in (self.proxy, self.gen1, self.gen2):
            if part is None:
                continue
            try:
                part.close()
            except AssertionError as e:
                errors.append(str(e))
        if getattr(self, "spool", None):
            shutil.rmtree(self.spool, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))

    # ---- direct access to each store ----
    def g1(self, method, path, op, body=None, headers=None, prefix="/webhdfs/v1", **params):
        """WebHDFS call straight to the Gen1 emulator (data steps follow the hadoop datanode 307)."""
        target = wh_target(path, op, prefix, **params)
        two_step = self.dialect == "hadoop" and op.upper() in ("CREATE", "APPEND")
        # hadoop dialect: the namenode step carries no body (it answers 307 without reading one)
        r = self.gen1.request(method, target, b"" if two_step else body, headers)
        if r.status == 307 and op.upper() in ("OPEN", "CREATE", "APPEND"):
            loc = urllib.parse.urlsplit(r.header("location"))
            base = "%s://%s" % (loc.scheme, loc.netloc)
            t = loc.path + ("?" + loc.query if loc.query else "")
            r = emulib.http_request(base, method, t, body, headers)
        return r

    def g1_read(self, path):
        r = self.g1("GET", path, "OPEN", read="true")
        if r.status != 200:
            raise AssertionError("Gen1 OPEN %s: %r" % (path, r))
        return r.body

    def g1_status(self, path):
        r = self.g1("GET", path, "GETFILESTATUS")
        return r.json()["FileStatus"] if r.status == 200 else None

    def g2(self, method, path, query="", body=None, headers=None, fs=FS):
        """Gen2 call on lake-relative path ('' = the filesystem root), signed with Shared Key."""
        target = "%s/%s/%s" % (A, fs, urllib.parse.quote(path.strip("/")))
        if not path.strip("/"):
            target = "%s/%s" % (A, fs)
        if query:
            target += "?" + query
        return self.gen2.gen2(method, target, body, headers)

    def g2_read(self, path, fs=FS):
        r = self.g2("GET", path, fs=fs)
        if r.status != 200:
            raise AssertionError("Gen2 GET %s: %r" % (path, r))
        return r.body

    def g2_props(self, path, fs=FS):
        """HEAD getAccessControl merged with HEAD properties, or None when missing."""
        r = self.g2("HEAD", path, "action=getAccessControl", fs=fs)
        return r if r.status == 200 else None

    def g2_counters(self):
        return self.gen2.counters().get("requests", {})

    def g1_counters(self):
        return self.gen1.counters().get("requests", {})

    def wait_applied(self, timeout=30):
        return self.proxy.wait_applied(timeout)

    def wait_drained(self, timeout=60, allow_parked=False):
        return self.proxy.wait_drained(timeout, allow_parked)

    def compare(self, root="/", fs=FS, gen2_dir=None, check_bytes=True, check_times=False):
        return compare(self, root, fs, gen2_dir, check_bytes, check_times=check_times)

    def assert_same(self, tc, root="/", **kw):
        """wait_applied, then compare; fails the unittest.TestCase tc with every difference."""
        self.wait_applied()
        diffs = self.compare(root, **kw)
        if diffs:
            tc.fail("Gen1 and Gen2 differ under %s:\n  %s\n---- proxy status ----\n%s"
                    % (root, "\n  ".join(diffs), json.dumps(self.proxy.status())[:3000]))


# ---------------------------------------------------------------- compare tool

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def load_identity_map(path):
    """{"user": {name: id}, "group": {name: id}} from a gen2.identity_map file (lines "user|group NAME ID";
    '#' comments and blank lines skipped). Written apart from the C parser on purpose."""
    m = {"user": {}, "group": {}}
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            kind, name, ident = words
            m[kind][name] = ident
    return m


def map_identity(idmap, kind, name):
    """Gen1 name -> what Gen2 should hold: fixed names and GUIDs pass, unknown names stay as they are."""
    if idmap is None or not name or name == "$superuser" or GUID_RE.match(name):
        return name
    return idmap[kind].get(name, name)


def map_acl(idmap, entries):
    out = []
    for e in entries:
        parts = e.split(":")
        i = 1 if parts[0] == "default" else 0
        if parts[i] in ("user", "group") and parts[i + 1]:
            parts[i + 1] = map_identity(idmap, parts[i], parts[i + 1])
        out.append(":".join(parts))
    return sorted(out)


def gen2_times(stack, path, fs=FS):
    """The dualpipe_times property of a Gen2 path as {"mtime","atime","len"} (ints), or None."""
    r = stack.g2("HEAD", path, fs=fs)
    if r.status != 200:
        raise AssertionError("Gen2 HEAD %s: %r" % (path, r))
    for item in (r.header("x-ms-properties") or "").split(","):
        if item.startswith("dualpipe_times="):
            v = base64.b64decode(item[len("dualpipe_times="):]).decode()
            return {k: int(x) for k, x in (f.split("=") for f in v.split(","))}
    return None


def perm_bits(p):
    return ("r" if p & 4 else "-") + ("w" if p & 2 else "-") + ("x" if p & 1 else "-")


def symbolic_to_octal(s):
    """Gen2 'rwxr-x---' (+ optional '+'; sticky as t/T in the last place) -> int like 0o1750."""
    s = s.rstrip("+")
    if len(s) != 9:
        raise ValueError("bad symbolic permission %r" % s)
    v = 0
    for i, ch in enumerate(s):
        bit = 1 << (8 - i)
        if i == 8 and ch in "tT":
            v |= 0o1000 | (bit if ch == "t" else 0)
        elif ch in "rwxs":
            v |= bit
        elif ch not in "-S":
            raise ValueError("bad symbolic permission %r" % s)
    return v


def gen1_full_acl(acl_status):
    """Gen1 AclStatus (entries exclude the base user/other and, without extended entries, group) ->
    the sorted full list of entries the way Gen2's x-ms-acl shows them."""
    perm = int(acl_status.get("permission", "0"), 8)
    entries = list(acl_status.get("entries", []))
    access = [e for e in entries if not e.startswith("default:")]
    default = [e for e in entries if e.startswith("default:")]
    full = ["user::" + perm_bits(perm >> 6)]
    if access:
        full += [e for e in access if not e.startswith("mask:")]
        if not any(e.startswith("group::") for e in access):
            full.append("group::" + perm_bits(perm >> 3))
        full.append("mask::" + perm_bits(perm >> 3))
    else:
        full.append("group::" + perm_bits(perm >> 3))
    full.append("other::" + perm_bits(perm))
    return sorted(full + default)


def gen2_full_acl(x_ms_acl):
    return sorted(e for e in (x_ms_acl or "").split(",") if e)


class Node:
    __slots__ = ("kind", "length", "perm", "owner", "group", "acl", "sha", "extra")

    def __init__(self):
        self.kind = self.length = self.perm = self.owner = self.group = self.acl = self.sha = None
        self.extra = {}

    def fields(self):
        return {"type": self.kind, "length": self.length, "permission": self.perm, "owner": self.owner,
                "group": self.group, "acl": self.acl, "sha256": self.sha}


def walk_gen1(stack, root, check_bytes=True, page=500):
    """{relative path: Node} of everything under root on the Gen1 emulator ('' = root itself)."""
    out = {}
    st = stack.g1_status(root)
    if st is None:
        return out

    def add(rel, abs_path, s):
        n = Node()
        n.kind = s["type"]
        n.length = int(s.get("length", 0))
        n.owner, n.group = s.get("owner"), s.get("group")
        r = stack.g1("GET", abs_path, "GETACLSTATUS")
        if r.status != 200:
            raise AssertionError("Gen1 GETACLSTATUS %s: %r" % (abs_path, r))
        acl = r.json()["AclStatus"]
        n.perm = int(acl.get("permission", s.get("permission", "0")), 8)
        if bool(acl.get("stickyBit")):
            n.perm |= 0o1000
        n.acl = gen1_full_acl(acl)
        n.extra["times"] = {"mtime": s.get("modificationTime"), "atime": s.get("accessTime")}
        if n.kind == "FILE" and check_bytes:
            data = stack.g1_read(abs_path)
            n.sha = hashlib.sha256(data).hexdigest()
            # The readable length, not the metadata one: after syncFlag=DATA appends Gen1 serves the
            # bytes but reports the old length until METADATA/CLOSE (protocols.md §1.4).
            n.extra["meta_length"] = n.length
            n.length = len(data)
        out[rel] = n

    add("", root, st)
    todo = [(root, "")] if st["type"] == "DIRECTORY" else []
    while todo:
        d, rel = todo.pop()
        after = None
        for _ in range(100000):
            params = {"listSize": page}
            if after:
                params["listAfter"] = after
            r = stack.g1("GET", d, "LISTSTATUS", **params)
            if r.status != 200:
                raise AssertionError("Gen1 LISTSTATUS %s: %r" % (d, r))
            fss = r.json()["FileStatuses"]
            items = fss.get("FileStatus", [])
            for s in items:
                name = s["pathSuffix"]
                child = (d.rstrip("/") + "/" + name)
                crel = (rel + "/" + name).lstrip("/")
                add(crel, child, s)
                if s["type"] == "DIRECTORY":
                    todo.append((child, crel))
            after = fss.get("continuationToken") or None
            if not after or not items:
                break
    return out


def walk_gen2(stack, gen2_dir, fs=FS, check_bytes=True, page=500):
    """{relative path: Node} of everything under directory gen2_dir ('' = the root) of filesystem fs."""
    out = {}
    base = gen2_dir.strip("/")

    def add(rel, full, listed):
        r = stack.g2("HEAD", full, "action=getAccessControl", fs=fs)
        if r.status != 200:
            raise AssertionError("Gen2 getAccessControl %s: %r" % (full, r))
        n = Node()
        if listed is not None:
            n.kind = "DIRECTORY" if listed.get("isDirectory") in ("true", True) else "FILE"
            n.length = int(listed.get("contentLength", "0"))
        else:
            h = stack.g2("HEAD", full, fs=fs)
            n.kind = "DIRECTORY" if h.header("x-ms-resource-type") == "directory" else "FILE"
            n.length = int(h.header("content-length", "0")) if n.kind == "FILE" else 0
        n.perm = symbolic_to_octal(r.header("x-ms-permissions"))
        n.owner, n.group = r.header("x-ms-owner"), r.header("x-ms-group")
        n.acl = gen2_full_acl(r.header("x-ms-acl"))
        if n.kind == "FILE" and check_bytes:
            data = stack.g2_read(full, fs=fs) if n.length else b""
            n.sha = hashlib.sha256(data).hexdigest()
            n.extra["bytes"] = len(data)
        out[rel] = n

    if base:
        h = stack.g2("HEAD", base, fs=fs)
        if h.status == 404:
            return out
        if h.status != 200:
            raise AssertionError("Gen2 HEAD %s: %r" % (base, h))
        add("", base, None)
        if h.header("x-ms-resource-type") != "directory":
            return out
    cont = None
    for _ in range(100000):
        q = "resource=filesystem&recursive=true&maxResults=%d" % page
        if base:
            q += "&directory=" + urllib.parse.quote(base, safe="")
        if cont:
            q += "&continuation=" + urllib.parse.quote(cont, safe="")
        r = stack.gen2.gen2("GET", "%s/%s?%s" % (A, fs, q))
        if r.status != 200:
            raise AssertionError("Gen2 list %s: %r" % (base, r))
        for p in r.json().get("paths", []):
            name = p["name"]
            rel = name[len(base):].lstrip("/") if base else name
            add(rel, name, p)
        cont = r.header("x-ms-continuation")
        if not cont:
            break
    return out


def compare(stack, root="/", fs=FS, gen2_dir=None, check_bytes=True, include_root=None, check_times=False):
    """Differences between Gen1 (under root) and Gen2 (filesystem fs, under gen2_dir: by default the
    same path as root, as the mapping "/" -> fs root gives) as a list of
    strings, empty when both hold the same tree. The root itself is compared unless it is '/' (the
    two stores' roots are not written through the proxy)."""
    if include_root is None:
        include_root = root.strip("/") != ""
    g1 = walk_gen1(stack, root, check_bytes)
    g2 = walk_gen2(stack, root.strip("/") if gen2_dir is None else gen2_dir, fs, check_bytes)
    map_file = stack.config.get("gen2", {}).get("identity_map")
    idmap = load_identity_map(map_file) if map_file else None
    for n in g1.values():
        n.owner = map_identity(idmap, "user", n.owner)
        n.group = map_identity(idmap, "group", n.group)
        n.acl = map_acl(idmap, n.acl)
    if not include_root:
        g1.pop("", None)
        g2.pop("", None)
    diffs = []
    for rel in sorted(set(g1) | set(g2)):
        show = "/" + "/".join(p for p in (root.strip("/"), rel) if p)
        a, b = g1.get(rel), g2.get(rel)
        if a is None:
            diffs.append("%s: only on Gen2 (%s)" % (show, b.kind))
            continue
        if b is None:
            diffs.append("%s: only on Gen1 (%s)" % (show, a.kind))
            continue
        fa, fb = a.fields(), b.fields()
        if a.kind != "FILE":
            fa.pop("length")
            fb.pop("length")
        elif check_times:
            full = "/".join(p for p in ((root.strip("/") if gen2_dir is None else gen2_dir.strip("/")), rel) if p)
            t = gen2_times(stack, full, fs) or {}
            if t.get("len", b.length) == b.length:  # recorded for this length: must match Gen1
                fa["times"] = a.extra["times"]
                fb["times"] = {"mtime": t.get("mtime"), "atime": t.get("atime")}
        for k in fa:
            if fa[k] != fb[k]:
                va, vb = fa[k], fb[k]
                if k == "permission":
                    va, vb = "%04o" % va, "%04o" % vb
                diffs.append("%s: %s Gen1=%r Gen2=%r" % (show, k, va, vb))
    return diffs


def gen1_delta(before, after, elapsed_s):
    """counter_delta for the Gen1 emulator, minus the proxy's readiness probe: admin.c sends one
    GETFILESTATUS of "/" every 10 s, so up to elapsed/10 + 1 of those are not the test's doing."""
    d = counter_delta(before, after)
    probes = int(elapsed_s / 10) + 1
    if 0 < d.get("GET GETFILESTATUS", 0) <= probes:
        del d["GET GETFILESTATUS"]
    return d


def snapshot_counters(stack):
    return {"gen1": stack.g1_counters(), "gen2": stack.g2_counters(), "time": time.time()}


def counter_delta(before, after):
    """{label: increase} between two emulator 'requests' counter dicts (only what changed)."""
    out = {}
    for k in set(before) | set(after):
        d = after.get(k, 0) - before.get(k, 0)
        if d:
            out[k] = d
    return out
