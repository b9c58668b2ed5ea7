"""test_ops: issue 9 item 8 — operating the proxy: SIGHUP reload, the drain key, request ids end to
end, file modes and no writer secret on disk.

- SIGHUP: a lowered limits.max_body_bytes turns a body that was accepted into 413, a new log.level
  shows at once, a changed key that needs a restart is named in the log (and does not change), a
  re-read account_key_file is used for the next Gen2 request (a wrong key makes Gen2 refuse it, the
  right one again lets the backlog drain), and a file with an error changes nothing and names the key.
- shutdown.drain_ms: with Gen2 down and a write pending, SIGTERM waits about drain_ms (not the old
  fixed 5 s) and says the drain ran out; with nothing pending it says the drain ended early.
- Request ids: the writer's well-formed x-ms-client-request-id is kept, a malformed one is replaced
  by a UUID, a missing one generated; each comes back to the writer, reaches Gen1 and every Gen2
  request for the record (the emulators' GET /client-request-ids), is in the journal's WRITE record
  and in the proxy's log lines with the journal seq — also when the record is replayed after kill -9.
- Files: after writes that carry a bearer token and a delegation parameter, no byte of either is in
  any file under spool.dir (journal included), every file is 0600 and every directory 0700; loose
  modes left by hand are tightened at the next start.
"""
import glob
import os
import re
import signal
import stat
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulib  # noqa: E402
import proxylib  # noqa: E402
import test_torn_journal as tj  # noqa: E402  (the independent reader of JOURNAL.md)

FAST = {"backoff_base_ms": 50, "backoff_cap_ms": 300, "breaker_probe_ms": 200, "resync_attempts": 1}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
WRONG_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # valid base64, not the emulator's key


def write_params(frame):
    """{name: value} of a WRITE frame's key/value list (JOURNAL.md section 4)."""
    p = frame.payload
    plen, nparams = struct.unpack_from("<HH", p, 88)
    off, out = 92 + plen, {}
    for _ in range(nparams):
        kl, vl = struct.unpack_from("<HH", p, off)
        off += 4
        out[p[off:off + kl].decode()] = p[off + kl:off + kl + vl].decode()
        off += kl + vl
    return out


def journal_writes(stack):
    """Every WRITE frame in every segment: [(seq, path, params)]."""
    out = []
    for seg in sorted(glob.glob(os.path.join(stack.journal_dir, "jrnl-*.seg"))):
        frames, _ = tj.read_segment(seg)
        out += [(f.seq, f.path, write_params(f)) for f in frames if f.type == 1]
    return out


def crids(emu):
    return [e["id"] for e in emu.admin("GET", "/client-request-ids").json()["client_request_ids"]]


def wait_log(proxy, pattern, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(pattern, proxy.log_since_start())
        if m:
            return m
        time.sleep(0.05)
    raise AssertionError("no log line matching %r\n---- log ----\n%s" % (pattern, proxy.log_since_start()[-3000:]))


def create(proxy, path, data, headers=None, **params):
    return proxy.webhdfs("PUT", path, "CREATE", data, headers=headers, overwrite="true", **params)


class Ops(unittest.TestCase):
    def stack(self, config=None, **kw):
        if callable(config):
            over = lambda st: proxylib.deep_merge({"applier": FAST}, config(st))  # noqa: E731
        else:
            over = proxylib.deep_merge({"applier": FAST}, config)
        s = proxylib.Stack(config=over, **kw)
        self.addCleanup(s.close)
        return s

    # ---------------------------------------------------------------- request ids
    def test_request_ids_end_to_end_and_after_a_crash(self):
        st = self.stack()
        p = st.proxy
        st.gen2.admin("POST", "/down")  # records stay in the journal: the replay after kill -9 sends them
        mine = "9b2e4c1a-0f3d-4e5b-8a7c-1d2e3f405162.0"  # the Java ADLS SDK's "<uuid>.<retry>"
        r1 = create(p, "/rid/kept", b"one", headers={"x-ms-client-request-id": mine})
        r2 = create(p, "/rid/replaced", b"two", headers={"x-ms-client-request-id": "has spaces; and \"quotes\""})
        r3 = create(p, "/rid/generated", b"three")
        for r in (r1, r2, r3):
            self.assertEqual(r.status, 201, r)
        self.assertEqual(r1.header("x-ms-client-request-id"), mine)
        # Gen1's own request id (ADLS sends one with every answer) still comes back untouched.
        self.assertRegex(r1.header("x-ms-request-id") or "", UUID)
        self.assertNotEqual(r1.header("x-ms-request-id"), r3.header("x-ms-request-id"))
        replaced, generated = r2.header("x-ms-client-request-id"), r3.header("x-ms-client-request-id")
        self.assertRegex(replaced or "", UUID)
        self.assertRegex(generated or "", UUID)
        ids = {"/rid/kept": mine, "/rid/replaced": replaced, "/rid/generated": generated}
        # Reads get one too (a trace of a failing read starts there as well).
        rd = p.webhdfs("GET", "/rid/kept", "GETFILESTATUS")
        self.assertRegex(rd.header("x-ms-client-request-id") or "", UUID)

        # Gen1 saw each id on its write.
        seen1 = crids(st.gen1)
        for rid in ids.values():
            self.assertIn(rid, seen1)
        self.assertNotIn("has spaces; and \"quotes\"", " ".join(seen1))
        # The journal holds the id with the record (the reserved key), and the log ties id and seq.
        recs = {path: (seq, prm) for seq, path, prm in journal_writes(st)}
        for path, rid in ids.items():
            seq, prm = recs[path]
            self.assertEqual(prm.get("X-Request-Id"), rid, prm)
            wait_log(p, r"msg=request req=\d+ rid=%s seq=%d method=PUT op=CREATE" % (re.escape(rid), seq))

        # kill -9 with all three pending, Gen2 back, start again: the replay carries the same ids.
        p.kill()
        st.gen2.admin("POST", "/up")
        st.gen2.admin("DELETE", "/counters")
        p.start()
        st.wait_drained(timeout=30)
        seen2 = crids(st.gen2)
        for path, rid in ids.items():
            self.assertIn(rid, seen2, "Gen2 requests after the replay: %s" % seen2)
            # applied, or resynced when the crash came before Gen1's answer was journaled
            wait_log(p, r"msg=(applied|\"resynced from gen1\") seq=%d rid=%s op=CREATE path=\"%s\""
                     % (recs[path][0], re.escape(rid), path))
        st.assert_same(self, "/rid")

    def test_gen2_requests_of_a_live_write_carry_its_id(self):
        st = self.stack()
        rid = "job-42.task_7:attempt-1"
        r = st.proxy.webhdfs("PUT", "/live/f", "CREATE", b"x" * 1000, headers={"x-ms-client-request-id": rid})
        self.assertEqual(r.status, 201, r)
        r = st.proxy.webhdfs("POST", "/live/f", "APPEND", b"y" * 10, headers={"x-ms-client-request-id": rid + "b"})
        self.assertEqual(r.status, 200, r)
        st.wait_drained()
        seen = st.gen2.admin("GET", "/client-request-ids").json()["client_request_ids"]
        create_ids = {e["id"] for e in seen if e["request"].startswith("PUT")}
        self.assertIn(rid, create_ids, seen)
        self.assertIn(rid + "b", {e["id"] for e in seen}, seen)
        st.assert_same(self, "/live")

    # ---------------------------------------------------------------- files and secrets
    def test_no_writer_secret_on_disk_and_private_modes(self):
        st = self.stack()
        p = st.proxy
        st.gen2.admin("POST", "/down")  # the records (and their params) stay live in the journal
        bearer, deleg = "Bearer s3cretB3arerTok3n-do-not-store", "D3legationT0ken-do-not-store"
        auth = {"Authorization": bearer}
        self.assertEqual(create(p, "/sec/a", b"body-a", headers=auth, delegation=deleg).status, 201)
        r = p.webhdfs("POST", "/sec/a", "APPEND", b"more", headers=auth, delegation=deleg)
        self.assertEqual(r.status, 200, r)
        r = p.webhdfs("PUT", "/sec/a", "RENAME", headers=auth, delegation=deleg, destination="/sec/b")
        self.assertEqual(r.status, 200, r)
        r = p.webhdfs("PUT", "/sec/dir", "MKDIRS", headers=auth, delegation=deleg, permission="750")
        self.assertEqual(r.status, 200, r)
        writes = journal_writes(st)
        self.assertGreaterEqual(len(writes), 4)
        for _seq, _path, prm in writes:
            self.assertNotIn("delegation", prm)
        self.assertIn("destination", [k for _s, _p, prm in writes for k in prm])  # what a replay needs stays
        self.assert_private(st, [bearer.split()[1], deleg])
        # Secrets still go where they belong: Gen1 got the delegation token with each write.
        counters = st.g1_counters()
        self.assertGreaterEqual(counters.get("PUT CREATE", 0), 1, counters)

        # Loose modes left behind (an older version, a hand-made copy) are tightened at the next start.
        p.stop()
        seg = sorted(glob.glob(os.path.join(st.journal_dir, "jrnl-*.seg")))[0]
        os.chmod(seg, 0o644)
        os.chmod(st.journal_dir, 0o755)
        p.start()
        wait_log(p, r"msg=\"tightened permissions: group/other could read writers' data\" dir=\"%s\" entries=\d"
                 % re.escape(st.journal_dir))
        st.gen2.admin("POST", "/up")
        st.wait_drained(timeout=30)
        self.assert_private(st, [bearer.split()[1], deleg])
        st.assert_same(self, "/sec")

    def assert_private(self, st, secrets):
        root = st.config["spool"]["dir"]
        names = []
        for d, dirs, files in os.walk(root):
            self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700, d)
            for name in files:
                path = os.path.join(d, name)
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, path)
                with open(path, "rb") as f:
                    data = f.read()
                for s in secrets:
                    self.assertNotIn(s.encode(), data, "%s holds a writer secret" % path)
                names.append(name)
        self.assertIn("LOCK", names)
        self.assertTrue([n for n in names if n.startswith("jrnl-")], names)

    # ---------------------------------------------------------------- SIGHUP
    def hup(self, proxy, config):
        proxy.config = config
        proxy.write_config()
        mark = len(proxy.log_since_start())
        proxy.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            tail = proxy.log_since_start()[mark:]
            if "msg=\"configuration reloaded\"" in tail or "msg=\"reload refused" in tail:
                return tail
            time.sleep(0.05)
        raise AssertionError("no reload outcome in the log:\n" + proxy.log_since_start()[-3000:])

    def test_sighup_reload(self):
        st = self.stack(config=lambda s: {"limits": {"max_body_bytes": "1 MiB"}, "log": {"level": "info"},
                                          "gen2": {"auth": {"account_key": None,
                                                            "account_key_file": os.path.join(s.spool, "gen2.key")}}},
                        start_proxy=False)
        keyfile = os.path.join(st.spool, "gen2.key")
        with open(keyfile, "w") as f:
            f.write(emulib.DEV_KEY + "\n")
        st.proxy = proxylib.Proxy(st.config)
        p = st.proxy
        body = b"z" * (200 * 1024)
        self.assertEqual(create(p, "/hup/big1", body).status, 201)
        self.assertNotIn("msg=request ", p.log_since_start())  # info: no per-request lines yet

        # Lower the limit, raise the log level, change a key that needs a restart.
        cfg = proxylib.deep_merge(p.config, {"limits": {"max_body_bytes": "64 KiB"}, "log": {"level": "debug"},
                                             "journal": {"commit_batch": 64}})
        tail = self.hup(p, cfg)
        self.assertIn("msg=\"reload: key changed\" key=limits.max_body_bytes", tail)
        self.assertIn("msg=\"reload: key changed\" key=log.level", tail)
        self.assertIn("msg=\"reload: key not changed, it needs a restart\" key=journal.commit_batch", tail)
        self.assertNotIn("key=gen2.auth.account_key", tail)  # same file, same key: nothing to say
        r = create(p, "/hup/big2", body)
        self.assertEqual(r.status, 413, r)
        self.assertIn("65536", r.body.decode())
        self.assertEqual(create(p, "/hup/small", b"s" * 1000).status, 201)
        wait_log(p, r"msg=request req=\d+ rid=\S+ seq=\d+ method=PUT op=CREATE path=\"/hup/small\"")

        # A file with an error changes nothing: the limit stays, the level stays, the key is named.
        bad = proxylib.deep_merge(cfg, {"limits": {"max_body_bytes": "lots"}, "log": {"level": "error"}})
        tail = self.hup(p, bad)
        self.assertRegex(tail, r"msg=\"reload refused: the file has an error, nothing changed\" "
                               r"key=limits.max_body_bytes error=\"must be a byte count")
        self.assertEqual(create(p, "/hup/big3", body).status, 413)
        wait_log(p, r"op=CREATE path=\"/hup/big3\" status=413")  # still at debug

        # The account key file is re-read: a wrong key makes Gen2 refuse the next write's requests...
        st.wait_drained()
        with open(keyfile, "w") as f:
            f.write(WRONG_KEY + "\n")
        tail = self.hup(p, cfg)
        self.assertIn("msg=\"reload: key changed\" key=gen2.auth.account_key", tail)
        self.assertNotIn(WRONG_KEY, p.read_log())
        self.assertEqual(create(p, "/hup/after-wrong-key", b"w").status, 201)
        wait_log(p, r"AuthenticationFailed|status=403", timeout=20)
        # ... and the right one again lets it through (an operator retries what was parked meanwhile).
        with open(keyfile, "w") as f:
            f.write(emulib.DEV_KEY + "\n")
        self.hup(p, cfg)
        deadline = time.time() + 20
        while True:
            p.admin("POST", "/admin/journal/retry?all=1")
            js = p.journal()["journal"]
            if int(js.get("parked", 0)) == 0 and int(js.get("pending", 0)) == 0:
                break
            self.assertLess(time.time(), deadline, js)
            time.sleep(0.2)
        st.wait_drained()
        st.assert_same(self, "/hup")

    # ---------------------------------------------------------------- drain
    def test_drain_key(self):
        st = self.stack(config={"shutdown": {"drain_ms": 1500}})
        p = st.proxy
        # Nothing pending: both drains end early.
        self.assertEqual(create(p, "/drain/a", b"a").status, 201)
        st.wait_drained()
        p.restart()
        log = p.read_log()
        self.assertRegex(log, r"msg=\"drain ended early: nothing left to wait for\" phase=front waited_ms=\d+ "
                              r"drain_ms=1500")
        self.assertRegex(log, r"msg=\"drain ended early: nothing left to wait for\" phase=applier")
        # Gen2 down, a write pending: the applier's drain runs out after drain_ms (not the old 5 s).
        st.gen2.admin("POST", "/down")
        self.assertEqual(create(p, "/drain/b", b"b").status, 201)
        self.assertEqual(p.stop(), 0)
        log = p.read_log()
        m = re.search(r"msg=\"drain ran out: shutdown.drain_ms reached\" phase=applier waited_ms=(\d+) "
                      r"drain_ms=1500", log)
        self.assertIsNotNone(m, log[-3000:])
        # The proxy's own measure: at least drain_ms, and short of the 5 s it used to wait regardless.
        self.assertGreaterEqual(int(m.group(1)), 1500)
        self.assertLess(int(m.group(1)), 5000)
        st.gen2.admin("POST", "/up")
        p.start()
        st.wait_drained(timeout=30)
        st.assert_same(self, "/drain")


if __name__ == "__main__":
    unittest.main()
