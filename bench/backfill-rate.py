#!/usr/bin/env python3
"""`dualpipe backfill` rates against the emulators: files/s for small files and MB/s for large ones.

Starts a Gen1 and a Gen2 emulator and the proxy (tests/integration/proxylib.Stack, log level info),
plants files on Gen1 behind the proxy's back and times `dualpipe backfill` (wall time of the command,
which returns once the daemon has finished every copy it asked for):

  small/per-file  --small N files of --small-size bytes in a directory Gen2 already has: one
                  journaled resync per file (the path a partly copied tree takes)
  small/new-dir   the same in a directory Gen2 lacks (a node-only resync of it first)
  large           --large N files of --large-mib MiB in a directory Gen2 already has

  DUALPIPE=build/bin/dualpipe DUALPIPE_EMU=build/bin/dualpipe-emu python3 bench/backfill-rate.py \\
      [--dialect adls|hadoop] [--small 2000] [--small-size 4096] [--large 4] [--large-mib 64] [--max-pending 64]

Everything runs on loopback in scratch directories that are removed at the end.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import proxylib  # noqa: E402

DUALPIPE = proxylib.DUALPIPE_BIN
CHUNK = 4 << 20      # Gen1 takes at most 4 MiB per request


def put_files(stack, paths, size, threads=8):
    """Create each path on Gen1 with size bytes (CREATE then APPENDs of 4 MiB), in parallel."""
    data = (bytes(range(256)) * (CHUNK // 256 + 1))[:CHUNK]
    errors = []

    def one(path):
        first = min(size, CHUNK)
        r = stack.g1("PUT", path, "CREATE", data[:first], overwrite="true", write="true")
        if r.status != 201:
            errors.append((path, r.status))
            return
        off = first
        while off < size:
            n = min(CHUNK, size - off)
            r = stack.g1("POST", path, "APPEND", data[:n], append="true")
            if r.status != 200:
                errors.append((path, r.status))
                return
            off += n

    def work(k):
        for i in range(k, len(paths), threads):
            one(paths[i])

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError("planting files: %d failures (first %r)" % (len(errors), errors[0]))


def run(stack, cfg_path, root, max_pending, tmp):
    out = os.path.join(tmp, "report.json")
    admin = stack.proxy.admin_url.replace("http://", "")
    t = time.monotonic()
    p = subprocess.run([DUALPIPE, "backfill", root, "--config", cfg_path, "--admin", admin, "--json", out,
                        "--max-pending", str(max_pending), "--no-progress"], capture_output=True, text=True)
    wall = time.monotonic() - t
    if p.returncode != 0:
        raise RuntimeError("backfill failed (%d): %s%s" % (p.returncode, p.stdout, p.stderr))
    with open(out) as f:
        return json.load(f), wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dialect", default="adls", choices=("adls", "hadoop"))
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--small-size", type=int, default=4096)
    ap.add_argument("--large", type=int, default=4)
    ap.add_argument("--large-mib", type=int, default=64)
    ap.add_argument("--max-pending", type=int, default=64)
    a = ap.parse_args()
    over = {"log": {"level": "info"}}
    s = proxylib.Stack(dialect=a.dialect, config=over)
    tmp = s.spool
    try:
        cfg_path = os.path.join(tmp, "bench-config.json")
        with open(cfg_path, "w") as f:
            json.dump(s.config, f)
        # small files, per file: the directory exists on Gen2 (made through the proxy)
        r = s.proxy.webhdfs("PUT", "/perfile", "MKDIRS")
        assert r.status == 200, r
        s.wait_drained()
        put_files(s, ["/perfile/f%06d" % i for i in range(a.small)], a.small_size)
        rep, wall = run(s, cfg_path, "/perfile", a.max_pending, tmp)
        assert rep["copied"]["files"] == a.small, rep
        print("%s small/per-file: %d files of %d B in %.2f s: %.0f files/s (%.2f MB/s)" %
              (a.dialect, a.small, a.small_size, wall, a.small / wall, a.small * a.small_size / wall / 1e6))
        # small files in a directory Gen2 lacks
        put_files(s, ["/newdir/f%06d" % i for i in range(a.small)], a.small_size)
        rep, wall = run(s, cfg_path, "/newdir", a.max_pending, tmp)
        assert rep["copied"]["files"] == a.small and rep["copied"]["dirs"] == 1, rep
        print("%s small/new-dir: %d files of %d B in %.2f s: %.0f files/s" %
              (a.dialect, a.small, a.small_size, wall, a.small / wall))
        # large files
        r = s.proxy.webhdfs("PUT", "/large", "MKDIRS")
        assert r.status == 200, r
        s.wait_drained()
        size = a.large_mib << 20
        put_files(s, ["/large/f%02d" % i for i in range(a.large)], size, threads=2)
        rep, wall = run(s, cfg_path, "/large", a.max_pending, tmp)
        assert rep["copied"]["files"] == a.large, rep
        print("%s large: %d files of %d MiB in %.2f s: %.1f MB/s" %
              (a.dialect, a.large, a.large_mib, wall, a.large * size / wall / 1e6))
        # an incremental rerun of everything: nothing to copy
        rep, wall = run(s, cfg_path, "/", a.max_pending, tmp)
        assert rep["copies_requested"] == 0, rep
        n = rep["skipped_equal"]["files"]
        print("%s incremental rerun (unchanged): %d files skipped-equal in %.2f s: %.0f files/s" %
              (a.dialect, n, wall, n / wall))
    finally:
        s.close()


if __name__ == "__main__":
    main()
