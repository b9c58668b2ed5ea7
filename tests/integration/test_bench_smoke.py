"""dualpipe-bench smoke (issue 5, "CI"): every workload for a few operations against the Gen1 emulator in
both writer flows (adls one-step against the adls-dialect emulator, hadoop two-step against the
hadoop-dialect emulator, following its 307 to the datanode), one ingest run with verification through the
proxy stack, and the checks that make the numbers trustworthy: verification fails (exit 1) when a file was
changed behind the bench's back, and request errors show up by status and fail the run.

Sizes are tiny: this proves the harness works, it measures nothing."""
import json
import os
import subprocess
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
                # each cycle renamed its directory into w0/r: they are there
                r = e.webhdfs("GET", "/smoke-meta-" + flow + "/meta", "LISTSTATUS")
                run = r.json()["FileStatuses"]["FileStatus"][0]["pathSuffix"]
                r = e.webhdfs("GET", "/smoke-meta-%s/meta/%s/w0/r" % (flow, run), "LISTSTATUS")
                self.assertEqual(r.status, 200, r)
                self.assertGreaterEqual(len(r.json()["FileStatuses"]["FileStatus"]), 1)

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
