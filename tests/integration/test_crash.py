"""test_crash: issue 4 "Tests" 2 — kill -9 of the proxy at random moments under load, restarted each
time on the same spool and journal: every write the proxy acknowledged is on both sides, nothing is
duplicated, nothing is lost, and Gen1 and Gen2 are equal.

Writer threads (both writer dialects) each own a few files and write self-describing records: every
CREATE and APPEND carries exactly one record "[wWW.fFF.nNNNNNNN.LLLLLL|<filler>]\n" whose filler is a
function of (writer, file, n, length), with n unique per writer and increasing. A writer never
re-sends a record it got no answer for (it goes on with the next n), so a file must read as: the
record of its last acknowledged CREATE, then records in increasing n, each at most once, each one the
writer sent to this file, and every acknowledged APPEND among them. Unacknowledged writes may or may
not be there (the proxy may have died after Gen1 took them) but must then be on both sides alike.

The proxy is killed (SIGKILL) at seeded random moments (the seed is printed; DP_TEST_SEED repeats a
run) at least 10 times while the writers write and Gen2 is slow (so the journal holds a backlog when
it dies), and restarted each time on the same directories; then one clean stop (SIGTERM, exit 0)
and start under the same load. After the last restart the backlog
drains; then the records are checked on both sides and the compare tool runs.

A second, deterministic case kills the proxy inside one multi-request apply (a CREATE whose parent
directories Gen2 lacks, killed while the metadata calls are in flight): the replay must leave the
parents as Gen1 has them. DP_JOURNAL_IO=threads
and DP_NO_URING=1 (CMake variants) run the same on the thread-pool backend / the automatic fallback.
"""
import hashlib
import os
import random
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxylib  # noqa: E402

CYCLES = 12
FILES_PER_WRITER = 3
REC_RE = re.compile(rb"\[w(\d\d)\.f(\d\d)\.n(\d{7})\.L(\d{6})\|")


def record(w, f, n, length):
    head = b"[w%02d.f%02d.n%07d.L%06d|" % (w, f, n, length)
    fill_len = length - len(head) - 2
    seed = hashlib.sha256(head).digest()
    filler = (seed.hex().encode() * (fill_len // 64 + 1))[:fill_len]
    return head + filler + b"]\n"


def parse(data):
    """[(w, f, n)] of the records in data, or raises ValueError naming the offset of anything else."""
    out, pos = [], 0
    while pos < len(data):
        m = REC_RE.match(data, pos)
        if not m:
            raise ValueError("garbage at offset %d: %r" % (pos, data[pos:pos + 40]))
        w, f, n, length = (int(x) for x in m.groups())
        if data[pos:pos + length] != record(w, f, n, length):
            raise ValueError("damaged record n=%d at offset %d" % (n, pos))
        out.append((w, f, n))
        pos += length
    return out


class CrashWriter(threading.Thread):
    def __init__(self, stack, wid, seed, stop):
        super().__init__(daemon=True)
        self.s = stack
        self.wid = wid
        self.two_step = wid % 2 == 1
        self.rng = random.Random(seed)
        self.stop_ev = stop
        self.n = 0
        # per file: n of the acknowledged CREATE (None until one), acked APPEND ns, every n sent
        self.created = [None] * FILES_PER_WRITER
        self.acked = [[] for _ in range(FILES_PER_WRITER)]
        self.sent = [set() for _ in range(FILES_PER_WRITER)]
        self.unacked = 0
        self.refusals = []   # 4xx answers: a writer-visible error no crash explains

    def path(self, f):
        return "/crash/w%02d/f%02d" % (self.wid, f)

    def run(self):
        f = 0
        while not self.stop_ev.is_set():
            f = (f + 1) % FILES_PER_WRITER
            self.n += 1
            n = self.n
            data = record(self.wid, f, n, self.rng.randint(40, 6000))
            create = self.created[f] is None
            self.sent[f].add(n)
            try:
                if create:
                    r = proxylib.write_data(self.s.proxy, "PUT", self.path(f), "CREATE", data, self.two_step,
                                            timeout=10, overwrite="true", permission="640")
                else:
                    r = proxylib.write_data(self.s.proxy, "POST", self.path(f), "APPEND", data, self.two_step,
                                            timeout=10)
            except Exception:  # noqa: BLE001 - refused/reset while the proxy is down: not acknowledged
                self.unacked += 1
                time.sleep(0.02)
                continue
            if 200 <= r.status < 300:
                if create:
                    self.created[f] = n
                else:
                    self.acked[f].append(n)
                if n % 17 == 0:  # metadata in the mix (its outcome is checked by the compare)
                    try:
                        self.s.proxy.webhdfs("PUT", self.path(f), "SETPERMISSION",
                                             permission=self.rng.choice(["600", "640", "644"]))
                    except Exception:  # noqa: BLE001
                        pass
                time.sleep(0.01)
            else:
                self.unacked += 1
                if 400 <= r.status < 500:
                    self.refusals.append("%s n=%d: %d %r" % (self.path(f), n, r.status, r.body[:200]))
                time.sleep(0.02)


class Crash(unittest.TestCase):
    def check_file(self, w, f, data, side):
        """Problems (strings) of one file's bytes against writer w's record of file f."""
        try:
            recs = parse(data)
        except ValueError as e:
            return ["%s %s: %s" % (side, w.path(f), e)]
        probs = []
        ns = [n for (ww, ff, n) in recs]
        if any((ww, ff) != (w.wid, f) for (ww, ff, _) in recs):
            probs.append("%s %s: a record of another file" % (side, w.path(f)))
        if len(set(ns)) != len(ns):
            dup = sorted(n for n in set(ns) if ns.count(n) > 1)
            probs.append("%s %s: records written twice: %s" % (side, w.path(f), dup[:10]))
        if ns != sorted(ns):
            probs.append("%s %s: records out of order" % (side, w.path(f)))
        if not ns or ns[0] != w.created[f]:
            probs.append("%s %s: starts with %s, not the acknowledged CREATE n=%d"
                         % (side, w.path(f), ns[:1], w.created[f]))
        stray = [n for n in ns if n not in w.sent[f]]
        if stray:
            probs.append("%s %s: records never sent to this file: %s" % (side, w.path(f), stray[:10]))
        lost = sorted(set(w.acked[f]) - set(ns))
        if lost:
            probs.append("%s %s: %d acknowledged appends missing, e.g. n=%s"
                         % (side, w.path(f), len(lost), lost[:10]))
        return probs

    def test_kill9_under_load(self):
        seed = int(os.environ.get("DP_TEST_SEED", "0")) or random.randrange(1, 1 << 30)
        print("seed=%d (DP_TEST_SEED to repeat)" % seed, file=sys.stderr)
        rng = random.Random(seed)
        s = proxylib.Stack(config={"applier": {"backoff_base_ms": 100, "backoff_cap_ms": 1000,
                                               "breaker_probe_ms": 300}},
                           gen2_kw={"extra_args": ["--seed", str(seed)]})
        try:
            want = s.proxy.expected_backend()
            if want:
                self.assertEqual(s.proxy.io_backend(), want, s.proxy.journal())
            if s.proxy.no_uring:
                log = s.proxy.log_since_start()
                self.assertTrue("io_uring" in log and "threads" in log, "the fallback is not logged:\n" + log[-3000:])
            # Gen2 is slow, so every kill leaves acknowledged writes that Gen2 does not have yet.
            s.gen2.fault("method=*,op=*,action=latency,latency_ms=30,fraction=0.3")
            stop = threading.Event()
            ws = [CrashWriter(s, i, seed * 10 + i, stop) for i in range(4)]
            for w in ws:
                w.start()
            pending_at_kill = []
            t0 = time.time()
            for cycle in range(CYCLES):
                time.sleep(rng.uniform(0.05, 1.5))  # some kills land during recovery work
                try:
                    pending_at_kill.append(int(s.proxy.journal()["journal"]["pending"]))
                except Exception as e:  # noqa: BLE001
                    self.fail("cycle %d: GET /admin/journal before the kill: %r" % (cycle, e))
                time.sleep(rng.uniform(0.0, 0.2))
                t1 = time.time()
                s.proxy.restart(kill=True)
                print("cycle %2d: killed with %d pending, back in %.2f s" % (cycle, pending_at_kill[-1],
                                                                             time.time() - t1), file=sys.stderr)
            # and one clean stop (SIGTERM: exit 0) under the same load: what Gen2 still owes stays in
            # the journal for the next start
            time.sleep(rng.uniform(0.3, 1.0))
            t1 = time.time()
            s.proxy.restart()
            print("clean stop and start in %.2f s" % (time.time() - t1), file=sys.stderr)
            time.sleep(0.5)
            stop.set()
            for w in ws:
                w.join(20)
            print("%d cycles in %.1f s; writers: %d records sent, %d acknowledged appends, %d unacknowledged"
                  % (CYCLES, time.time() - t0, sum(w.n for w in ws), sum(len(a) for w in ws for a in w.acked),
                     sum(w.unacked for w in ws)), file=sys.stderr)
            self.assertGreater(sum(pending_at_kill), 0, "no kill found a backlog: the test proves nothing")
            self.assertEqual([r for w in ws for r in w.refusals][:10], [])
            s.gen2.admin("DELETE", "/faults")
            s.wait_drained(timeout=60)
            probs = []
            for w in ws:
                for f in range(FILES_PER_WRITER):
                    if w.created[f] is None:
                        continue
                    self.assertGreater(len(w.acked[f]), 0, "writer %d file %d: no acknowledged append" % (w.wid, f))
                    probs += self.check_file(w, f, s.g1_read(w.path(f)), "Gen1")
                    try:
                        probs += self.check_file(w, f, s.g2_read(w.path(f)), "Gen2")
                    except AssertionError as e:
                        probs.append("Gen2 %s: %s" % (w.path(f), str(e)[:200]))
            self.assertEqual(probs[:20], [], "%d problems" % len(probs))
            diffs = s.compare("/crash")
            self.assertEqual(diffs[:30], [], "Gen1 and Gen2 differ in %d places" % len(diffs))
        finally:
            s.close()

    def test_kill9_inside_one_apply(self):
        """A CREATE whose parents Gen2 lacks takes several Gen2 requests: create-file (Gen2 makes the
        missing parents with its own defaults), data, then the file's and the parents' metadata from
        Gen1. A kill between them: the replay after the restart must still leave the parents as Gen1
        has them (permission, owner, group, ACL), not with Gen2's defaults."""
        s = proxylib.Stack()
        try:
            # the metadata calls hang long enough to kill the proxy while they are in flight
            s.gen2.fault("method=PATCH,op=set-acl,action=latency,latency_ms=3000,count=100")
            r = proxylib.write_data(s.proxy, "PUT", "/inside/d/f", "CREATE", b"x" * 100, overwrite="true",
                                    permission="640")
            self.assertEqual(r.status, 201, r)
            deadline = time.time() + 10
            while s.g2_counters().get("PATCH set-acl", 0) == 0 and time.time() < deadline:
                time.sleep(0.05)
            self.assertEqual(s.g2("HEAD", "/inside/d/f").status, 200, "the file is on Gen2 before the kill")
            s.proxy.restart(kill=True)
            s.gen2.admin("DELETE", "/faults")
            s.wait_drained(timeout=30)
            self.assertEqual(s.compare("/inside"), [])
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
