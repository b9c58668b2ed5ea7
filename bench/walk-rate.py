#!/usr/bin/env python3
"""The tree walker's listing rate on a large Gen1 tree (dualpipe assess over the Gen1 emulator).

Builds DIRS directories of FILES empty files each on a Gen1 emulator (default 200 x 1000: 200,200
entries), then runs `dualpipe assess / --no-journal` against it with each --threads value given and
prints entries/s (from the report's walk section) and the command's peak RSS (ru_maxrss of the child).

  DUALPIPE=build/bin/dualpipe DUALPIPE_EMU=build/bin/dualpipe-emu python3 bench/walk-rate.py \\
      [--dialect adls|hadoop] [--dirs 200] [--files 1000] [--threads 1,4,8] [--page-size 1000]

Everything runs on loopback in a scratch directory that is removed at the end.
"""
import argparse
import http.client
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import emulib  # noqa: E402

DUALPIPE = os.environ.get("DUALPIPE", "build/bin/dualpipe")


def populate(gen1, dirs, files, threads=8):
    u = urllib.parse.urlsplit(gen1.url)
    for d in range(dirs):
        r = gen1.webhdfs("PUT", "/lake/d%04d" % d, "MKDIRS")
        assert r.status == 200, r
    errors = []

    def work(k):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        try:
            for n in range(k, dirs * files, threads):
                d, i = divmod(n, files)
                c.request("PUT", "/webhdfs/v1/lake/d%04d/f%06d?op=CREATE&write=true" % (d, i), body=b"",
                          headers={"Content-Length": "0"})
                resp = c.getresponse()
                resp.read()
                if resp.status == 307:  # hadoop: the (empty) data step at the datanode
                    loc = urllib.parse.urlsplit(resp.getheader("Location"))
                    dn = http.client.HTTPConnection(loc.hostname, loc.port, timeout=60)
                    dn.request("PUT", loc.path + "?" + loc.query, body=b"", headers={"Content-Length": "0"})
                    dr = dn.getresponse()
                    dr.read()
                    dn.close()
                    if dr.status != 201:
                        errors.append(dr.status)
                elif resp.status != 201:
                    errors.append(resp.status)
        finally:
            c.close()

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError("creating entries: %d failures (first %r)" % (len(errors), errors[0]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dialect", default="adls", choices=("adls", "hadoop"))
    ap.add_argument("--dirs", type=int, default=200)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--threads", default="1,4,8")
    ap.add_argument("--page-size", type=int, default=1000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dp-walk-bench-")
    extra = ["--ls-limit", str(a.page_size)] if a.dialect == "hadoop" else []
    gen1 = emulib.Emu("gen1", dialect=a.dialect, extra_args=extra)
    try:
        t0 = time.monotonic()
        populate(gen1, a.dirs, a.files)
        entries = a.dirs * a.files + a.dirs + 0
        print("tree: %d entries (%d directories of %d files) built in %.1f s" %
              (entries, a.dirs, a.files, time.monotonic() - t0))
        cfg = {"listen": "127.0.0.1:0", "admin": {"listen": "127.0.0.1:0"}, "spool": {"dir": tmp},
               "gen1": {"endpoint": gen1.url, "dialect": a.dialect},
               "gen2": {"endpoint": "http://127.0.0.1:9", "account": emulib.DEV_ACCOUNT,
                        "auth": {"mode": "shared_key", "account_key": emulib.DEV_KEY},
                        "mappings": [{"gen1_prefix": "/lake", "filesystem": "bench", "prefix": ""}]}}
        cpath = os.path.join(tmp, "dualpipe.json")
        with open(cpath, "w") as f:
            json.dump(cfg, f)
        out = os.path.join(tmp, "report.json")
        for th in [int(x) for x in a.threads.split(",")]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t = time.monotonic()
            p = subprocess.run([DUALPIPE, "assess", "/lake", "--no-journal", "--threads", str(th), "--page-size",
                                str(a.page_size), "--config", cpath, "--json", out], capture_output=True, text=True)
            wall = time.monotonic() - t
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            if p.returncode not in (0, 3):
                raise RuntimeError("assess failed (%d): %s" % (p.returncode, p.stderr))
            with open(out) as f:
                rep = json.load(f)
            w = rep["walk"]
            assert w["entries"] == a.dirs * a.files + a.dirs, w
            print("%s threads=%d: %d entries in %.2f s walk (%.2f s wall): %.0f entries/s, %d requests; "
                  "peak RSS %s" % (a.dialect, th, w["entries"], w["seconds"], wall, w["entries_per_s"], w["requests"],
                                   "%.1f MiB" % (rss / 1024) if rss > before else "<= %.1f MiB (an earlier run's peak)"
                                   % (rss / 1024)))
    finally:
        gen1.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
