"""dualpipe-bench smoke (issue 5, "CI"): every workload for a few operations against the Gen1 emulator in
both writer flows (adls one-step against the adls-dialect emulator, hadoop two-step against the
hadoop-dialect emulator, following its 307 to the datanode), one ingest run with verification through the
proxy stack, and the checks that make the numbers trustworthy: verification fails (exit 1) when a file was
changed behind the bench's back, and request errors show up by status and fail the run. Also what the
comparison run (bench/compare.py) reads: the per-second timeline, phases, CDF points and label in the JSON,
the Gen2 DFS mode (--api dfs with a SAS, verified against the Gen2 emulator), and compare.py itself in its
smoke profile (every part for a moment; nginx and gnuplot, absent in CI, are skipped with a note).

Sizes are tiny: this proves the harness works, it measures nothing."""
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import emulib
import proxylib

BENCH = os.environ.get("DUALPIPE_BENCH", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "../../build/bin/dualpipe-bench"))
LAT_KEYS = {"count", "mean_us", "min_us", "p50_us", "p90_us", "p99_us", "p99.9_us", "max_us"}


def bench(url, *args, timeout=120):
    """Runs dualpipe-bench; returns (exit code, JSON report or None, stdout, stderr)."""
    fd, path = tempfile.mkstemp(prefix="dp-bench-", suffix=".json")
    os.close(fd)
    os.unlink(path)
    try:
        p = subprocess.run([BENCH, "--url", url, "--json", path] + [str(a) for a in args],
                           capture_output=True, timeout=timeout, text=True)
        doc = None
        if os.path.exists(path):
            with open(path) as f:
                doc = json.load(f)
        return p.returncode, doc, p.stdout, p.stderr
    finally:
        if os.path.exists(path):
            os.unlink(path)


class BenchCase(emulib.EmuTestCase):
    def ok_run(self, url, *args):
        rc, doc, out, err = bench(url, *args)
        self.assertEqual(rc, 0, "bench %r exited %d\nstdout:\n%s\nstderr:\n%s" % (args, rc, out, err))
        self.assertIsNotNone(doc, "no JSON report")
        self.assertTrue(doc["ok"], doc)
        self.assertEqual(doc["errors"], 0, doc)
        self.assertEqual(doc["errors_by_status"], {}, doc)
        self.assertGreater(doc["ops"], 0, doc)
        self.assertGreater(doc["ops_per_s"], 0, doc)
        self.assertEqual(set(doc["latency"]), LAT_KEYS)
        self.assertEqual(doc["latency"]["count"], doc["ops"])
        lat = doc["latency"]
        self.assertTrue(0 < lat["p50_us"] <= lat["p90_us"] <= lat["p99_us"] <= lat["p99.9_us"] <= lat["max_us"], lat)
        self.assertEqual(sum(v["count"] for v in doc["by_op"].values()), doc["ops"], doc["by_op"])
        self.assertIn("result: OK", out)
        return doc


class WorkloadsTest(BenchCase):
    EMUS = {"adls": dict(service="gen1", dialect="adls"), "hadoop": dict(service="gen1", dialect="hadoop")}

    WRITES = {  # workload -> (appends, size) small enough for CI
        "ingest": (2, 3000),
        "small": (3, 4096),
        "large": (2, 1 << 20),
    }

    def write_workloads(self, flow):
        e = self.emus[flow]
        for wl, (k, size) in self.WRITES.items():
            with self.subTest(workload=wl, flow=flow):
                prefix = "/smoke-%s-%s" % (flow, wl)
                e.admin("DELETE", "/counters")
                doc = self.ok_run(e.url, "--workload", wl, "--flow", flow, "--concurrency", 2, "--files", 3,
                                  "--appends", k, "--size", size, "--prefix", prefix)
                self.assertEqual((doc["workload"], doc["flow"], doc["files"]), (wl, flow, 3))
                self.assertEqual({op: v["count"] for op, v in doc["by_op"].items()},
                                 {"create": 3, "append": 3 * k, "close": 3})
                self.assertEqual(doc["bytes"], 3 * k * size)
                self.assertEqual(doc["verify"], {"enabled": True, "files": 3, "skipped": 0,
                                                 "bytes": 3 * k * size, "mismatches": 0})
                # one request per operation in the adls flow; namenode 307 + datanode step in the hadoop flow
                steps = 2 if flow == "hadoop" else 1
                req = e.counters()["requests"]
                self.assertEqual((req.get("PUT CREATE"), req.get("POST APPEND")), (3 * steps, (3 * k + 3) * steps), req)
                # the bytes really are on the emulator, at the length the bench acknowledged
                for f in range(3):
                    r = e.webhdfs("GET", "%s/f%06d" % (prefix, f), "GETFILESTATUS")
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(r.json()["FileStatus"]["length"], k * size)

    def test_write_workloads_adls(self):
        self.write_workloads("adls")

    def test_write_workloads_hadoop(self):
        self.write_workloads("hadoop")

    def test_read_and_meta_both_flows(self):
        for flow in ("adls", "hadoop"):
            e = self.emus[flow]
            with self.subTest(workload="read", flow=flow):
                doc = self.ok_run(e.url, "--workload", "read", "--flow", flow, "--concurrency", 2, "--files", 2,
                                  "--appends", 2, "--size", 5000, "--ops", 6, "--prefix", "/smoke-read-" + flow)
                self.assertEqual(list(doc["by_op"]), ["open"])
                self.assertGreaterEqual(doc["ops"], 6)
                self.assertEqual(doc["bytes"], doc["ops"] * 10000)
                self.assertEqual(doc["read_mismatches"], 0)
                self.assertEqual(doc["verify"]["files"], 2)
            with self.subTest(workload="meta", flow=flow):
                doc = self.ok_run(e.url, "--workload", "meta", "--flow", flow, "--concurrency", 2, "--ops", 10,
                                  "--prefix", "/smoke-meta-" + flow)
                self.assertEqual(set(doc["by_op"]), {"mkdirs", "setacl", "rename", "liststatus"})
                self.assertFalse(doc["verify"]["enabled"])
                # each cycle renamed its directory into wN/r: they are there. 10 operations over 2 workers
                # give one of them at least 5, more than the 4 that reach the first rename (which worker
                # gets more depends on timing, so count over both)
                r = e.webhdfs("GET", "/smoke-meta-" + flow + "/meta", "LISTSTATUS")
                run = r.json()["FileStatuses"]["FileStatus"][0]["pathSuffix"]
                renamed = 0
                for w in (0, 1):
                    r = e.webhdfs("GET", "/smoke-meta-%s/meta/%s/w%d/r" % (flow, run, w), "LISTSTATUS")
                    self.assertEqual(r.status, 200, r)
                    renamed += len(r.json()["FileStatuses"]["FileStatus"])
                self.assertGreaterEqual(renamed, 1)

    def test_duration_and_warmup(self):
        e = self.emus["adls"]
        doc = self.ok_run(e.url, "--duration", 1, "--warmup", 0.3, "--concurrency", 4, "--appends", 3,
                          "--size", "2K", "--prefix", "/smoke-duration")
        self.assertGreaterEqual(doc["elapsed_s"], 0.9)
        self.assertLess(doc["elapsed_s"], 5)
        self.assertGreater(doc["verify"]["files"], 0)
        self.assertEqual(doc["verify"]["mismatches"], 0)

    def test_tampered_file_fails_verification(self):
        e = self.emus["adls"]
        args = ["--prefix", "/tamper", "--files", 3, "--appends", 2, "--size", 1000, "--concurrency", 2]
        self.ok_run(e.url, *args)
        rc, doc, out, err = bench(e.url, "--workload", "verify", *args)
        self.assertEqual(rc, 0, err)
        self.assertEqual(doc["verify"]["mismatches"], 0)
        # behind the bench's back: one file gets 3 extra bytes, another same-length different bytes
        self.assertEqual(e.webhdfs("POST", "/tamper/f000001", "APPEND", body=b"xyz", append="true").status, 200)
        self.assertEqual(e.webhdfs("PUT", "/tamper/f000002", "CREATE", body=bytes(2000), write="true",
                                   overwrite="true").status, 201)
        rc, doc, out, err = bench(e.url, "--workload", "verify", *args)
        self.assertEqual(rc, 1, out + err)
        self.assertFalse(doc["ok"])
        self.assertEqual(doc["verify"]["files"], 3)
        self.assertEqual(doc["verify"]["mismatches"], 2, err)
        self.assertIn("/tamper/f000001: length 2003, expected 2000", err)
        self.assertIn("/tamper/f000002: SHA-256", err)
        self.assertNotIn("f000000", err)
        # a different seed expects different bytes: everything mismatches
        rc, doc, out, err = bench(e.url, "--workload", "verify", "--seed", 2, *args)
        self.assertEqual((rc, doc["verify"]["mismatches"]), (1, 3), err)

    def test_request_errors_are_counted_and_fail_the_run(self):
        e = self.emus["adls"]
        e.fault("method=POST,op=APPEND,status=503,count=1")
        try:
            rc, doc, out, err = bench(e.url, "--prefix", "/faulty", "--files", 2, "--appends", 2, "--size", 100,
                                      "--concurrency", 1)
        finally:
            e.admin("DELETE", "/faults")
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(doc["errors"], 1)
        self.assertEqual(doc["errors_by_status"], {"503": 1})
        # the broken file is not verified (its state is unknown); the other one is, and passes
        self.assertEqual((doc["verify"]["files"], doc["verify"]["skipped"], doc["verify"]["mismatches"]), (1, 1, 0))
        self.assertIn("errors by status: 503=1", out)

    def test_usage_errors(self):
        for args in (["--workload", "nope"], ["--size", "12Q"], ["--concurrency", "0"], ["--prefix", "rel"],
                     ["--ops", "-3"], ["--flow", "x"]):
            with self.subTest(args=args):
                p = subprocess.run([BENCH, "--url", self.emus["adls"].url] + args, capture_output=True, text=True)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("usage:", p.stderr)
        p = subprocess.run([BENCH, "--workload", "ingest"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)


class ComparisonInputsTest(BenchCase):
    """The JSON keys compare.py builds its tables and plots from, and the Gen2 (DFS) mode."""
    EMUS = {"adls": dict(service="gen1", dialect="adls"), "gen2": dict(service="gen2")}

    def test_timeline_phases_cdf_label(self):
        e = self.emus["adls"]
        doc = self.ok_run(e.url, "--duration", 2.2, "--concurrency", 2, "--appends", 3, "--size", "8K",
                          "--phases", "1,2", "--label", "smoke-label", "--prefix", "/smoke-timeline")
        self.assertEqual((doc["label"], doc["api"]), ("smoke-label", "webhdfs"))
        # one entry per second of the window, their operations and bytes add up to the run's
        tl = doc["timeline"]
        self.assertEqual([s["t"] for s in tl], list(range(len(tl))))
        self.assertGreaterEqual(len(tl), 3)
        self.assertTrue(doc["timeline_complete"])
        self.assertEqual(sum(s["ops"] for s in tl), doc["ops"])
        self.assertEqual(sum(s["bytes"] for s in tl), doc["bytes"])
        for s in tl[:2]:
            self.assertGreater(s["ops"], 0, tl)
            self.assertTrue(0 < s["p50_us"] <= s["p99_us"] <= s["max_us"] <= doc["latency"]["max_us"], s)
        # three phases split at 1 s and 2 s, adding up as well
        ph = doc["phases"]
        self.assertEqual([(p["from_s"], p["to_s"]) for p in ph[:2]], [(0, 1), (1, 2)])
        self.assertIsNone(ph[2]["to_s"])
        self.assertEqual(sum(p["ops"] for p in ph), doc["ops"])
        self.assertEqual(sum(p["latency"]["count"] for p in ph), doc["ops"])
        self.assertEqual(sum(p["bytes"] for p in ph), doc["bytes"])
        # CDF points: increasing latency and fraction, ending at (max, 1); one per operation kind and "all"
        self.assertEqual(set(doc["cdf"]), {"all", "create", "append", "close"})
        pts = doc["cdf"]["all"]
        self.assertEqual([a for a, _ in pts], sorted(a for a, _ in pts))
        self.assertEqual([f for _, f in pts], sorted(f for _, f in pts))
        self.assertAlmostEqual(pts[-1][1], 1.0)
        self.assertAlmostEqual(pts[-1][0], doc["latency"]["max_us"], places=2)
        self.assertGreaterEqual(doc["acked_total"], doc["ops"])
        self.assertGreaterEqual(doc["acked_bytes"], doc["bytes"])

    def sas(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        return emulib.service_sas(emulib.DEV_ACCOUNT, emulib.DEV_KEY, "benchfs", "", "racwdl", "c",
                                  (now - datetime.timedelta(minutes=5)).strftime(fmt),
                                  (now + datetime.timedelta(hours=1)).strftime(fmt))

    def test_dfs_api_against_gen2(self):
        g2 = self.emus["gen2"]
        r = g2.gen2("PUT", "/%s/benchfs?resource=filesystem" % emulib.DEV_ACCOUNT)
        self.assertIn(r.status, (201, 409), r)
        url = "%s/%s/benchfs" % (g2.url, emulib.DEV_ACCOUNT)
        args = ["--api", "dfs", "--sas", self.sas(), "--concurrency", 2, "--files", 3, "--appends", 3,
                "--size", 5000, "--prefix", "/smoke-dfs"]
        doc = self.ok_run(url, *args)
        self.assertEqual(doc["api"], "dfs")
        self.assertEqual({op: v["count"] for op, v in doc["by_op"].items()}, {"create": 3, "append": 9, "close": 3})
        self.assertEqual(doc["verify"], {"enabled": True, "files": 3, "skipped": 0, "bytes": 45000, "mismatches": 0})
        # the bytes are on Gen2, flushed: a signed read (not the bench's) gets the full length
        r = g2.gen2("HEAD", "/%s/benchfs/smoke-dfs/f000002" % emulib.DEV_ACCOUNT)
        self.assertEqual((r.status, r.header("content-length")), (200, "15000"), r)
        # verify mode reads them back; a different seed does not match
        rc, doc, out, err = bench(url, "--workload", "verify", *args)
        self.assertEqual((rc, doc["verify"]["mismatches"]), (0, 0), err)
        rc, doc, out, err = bench(url, "--workload", "verify", "--seed", 9, *args)
        self.assertEqual((rc, doc["verify"]["mismatches"]), (1, 3), err)
        # without the SAS, Gen2 refuses and the run fails with the status counted
        rc, doc, out, err = bench(url, "--api", "dfs", "--files", 1, "--appends", 1, "--size", 10,
                                  "--prefix", "/smoke-dfs-nosas")
        self.assertEqual(rc, 1)
        self.assertEqual(list(doc["errors_by_status"]), ["401"], doc["errors_by_status"])
        # DFS has one flow and no read/meta workloads here
        for extra in (["--flow", "hadoop"], ["--workload", "meta"]):
            p = subprocess.run([BENCH, "--url", url, "--api", "dfs"] + extra, capture_output=True, text=True)
            self.assertEqual(p.returncode, 2, p.stderr)


COMPARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../bench/compare.py")


def t_cpu(res):
    return res["targets"]["small_cpu_per_op"]


class CompareSmokeTest(unittest.TestCase):
    """bench/compare.py --profile smoke: every part runs for a moment against the real processes."""

    def test_compare_smoke_profile(self):
        bindir = os.path.dirname(os.path.abspath(BENCH))
        emu = os.environ.get("DUALPIPE_EMU", os.path.join(bindir, "dualpipe-emu"))
        proxy = os.environ.get("DUALPIPE", os.path.join(bindir, "dualpipe"))
        jrnlbench = os.environ.get("DUALPIPE_JRNLBENCH", os.path.join(bindir, "dualpipe-jrnlbench"))
        work = tempfile.mkdtemp(prefix="dp-compare-smoke-")
        try:
            # compare.py looks for the bench and the emulator in one directory
            for name, src in (("dualpipe-bench", BENCH), ("dualpipe-emu", emu)):
                os.symlink(os.path.abspath(src), os.path.join(work, name))
            out = os.path.join(work, "out")
            p = subprocess.run([sys.executable, COMPARE, "--profile", "smoke", "--bin", work, "--dualpipe", proxy,
                                "--jrnlbench", jrnlbench, "--out", out,
                                "--drain-timeout", "60"],
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(p.returncode, 0, p.stdout[-4000:] + p.stderr[-4000:])
            with open(os.path.join(out, "results.json")) as f:
                res = json.load(f)
            notes = res["notes"]
            dp = res["main_dualpipe"]
            self.assertTrue(dp.startswith("dualpipe"), res.keys())
            runs = res["runs"]
            # every workload ran against the direct target and the proxy, verified
            for tag in ("big", "small", "sweep-4096", "sweep-1048576"):
                for name in ("direct", dp):
                    self.assertTrue(runs[tag][name]["ok"], (tag, name, runs[tag][name]))
            self.assertTrue(runs["big"]["gen2-direct"]["ok"], runs["big"]["gen2-direct"])
            self.assertEqual(runs["big"]["gen2-direct"]["verify"]["mismatches"], 0)
            # the proxy's resources were measured from /proc
            resources = runs["big"][dp]["resources"]
            self.assertGreater(resources["vmhwm_kib"], 1000)
            self.assertGreater(resources["cpu_s"], 0)
            # CPU per acknowledged append, and its target row, from the same counters: the CPU spent inside the
            # bench's measured window over the operations it counted there (not the warm-up, not the read-back)
            small = runs["small"][dp]
            sr = small["resources"]
            self.assertEqual(sr["cpu_scope"], "measured window", sr)
            self.assertGreater(sr["cpu_s_window"], 0)
            self.assertLessEqual(sr["cpu_s_window"], sr["cpu_s"] + 0.02)  # a part of the whole run's CPU
            self.assertAlmostEqual(sr["cpu_ms_per_op"], sr["cpu_s_window"] * 1000.0 / small["ops"], places=9)
            self.assertAlmostEqual(t_cpu(res)["value"], small["resources"]["cpu_ms_per_op"], places=9)
            # the outage really happened (Gen2 taken down through its admin listener) and was split out
            o = runs["outage"][dp]
            self.assertTrue(o["outage"]["down_ok"], o["outage"])
            self.assertEqual(len(o["phases"]), 3)
            self.assertIn("drain_s", o["outage"], o["outage"])  # the backlog drained within the timeout
            # ratios are the plain quotient of the runs' numbers
            t = res["targets"]
            self.assertAlmostEqual(t["big_vs_direct"]["value"],
                                   runs["big"][dp]["mb_per_s"] / runs["big"]["direct"]["mb_per_s"], places=6)
            self.assertFalse(t["rss_256"]["measured"])  # the smoke profile runs 16 uploads, not 256
            # absent tools are skipped with a note, never a failure; present ones run
            if shutil.which("nginx") is None and not os.access("/usr/sbin/nginx", os.X_OK):
                self.assertIn("nginx is not installed", notes["nginx-mirror"])
                self.assertFalse(t["big_vs_nginx"]["measured"])
            else:
                self.assertTrue(runs["big"]["nginx-mirror"]["ok"], runs["big"]["nginx-mirror"])
                # nginx is charged its master and its worker(s), like the proxy its one process
                ngx = runs["big"]["nginx-mirror"]["resources"]
                self.assertGreaterEqual(ngx["cpu_pids"], 2, ngx)
                self.assertGreater(ngx["cpu_s"], 0, ngx)
                self.assertTrue(t["big_cpu_vs_nginx"]["measured"], t["big_cpu_vs_nginx"])
            if shutil.which("gnuplot") is None:
                self.assertIn("gnuplot is not installed", notes["plots"])
                self.assertEqual(res["plots"], [])
            else:
                for png in res["plots"]:
                    self.assertGreater(os.path.getsize(os.path.join(out, png)), 1000)
            self.assertIn("Targets (issue 5)", p.stdout)
        finally:
            shutil.rmtree(work, ignore_errors=True)


class ProxyTest(BenchCase):
    def test_ingest_through_proxy_verified_and_dual_written(self):
        s = proxylib.Stack(dialect="adls")
        try:
            doc = self.ok_run(s.proxy.url, "--workload", "ingest", "--concurrency", 3, "--files", 4,
                              "--appends", 3, "--size", "20K", "--prefix", "/bench-proxy")
            self.assertEqual(doc["verify"], {"enabled": True, "files": 4, "skipped": 0,
                                             "bytes": 4 * 3 * 20480, "mismatches": 0})
            self.assertEqual(s.g1_status("/bench-proxy/f000003")["length"], 3 * 20480)
            s.assert_same(self, "/bench-proxy")
        finally:
            s.close()


if __name__ == "__main__":
    emulib.main()
