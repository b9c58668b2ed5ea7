#!/usr/bin/env python3
"""`dualpipe verify` rates against the emulators: namespace entries/s and --deep MB/s.

Namespace: builds DIRS directories of FILES empty files each, the same on a Gen1 emulator (WebHDFS) and a
Gen2 emulator (Shared Key; owner, group and permissions as Gen1 gives them), then runs
`dualpipe verify /lake` (no --deep) with each --threads value and prints entries/s (the report's walk
section) and the command's peak RSS. Every entry costs one Gen2 HEAD (the dualpipe_times property) besides
the two listings.

Deep: builds LARGE files of LARGE_MB MiB each on both sides, runs `dualpipe verify /big --deep` and prints
the MB/s read (both sides' bytes / walk seconds), next to the emulators' own read rate measured by reading
the same files once from each side with this script's HTTP client (sequential, one connection).

  DUALPIPE=build/bin/dualpipe DUALPIPE_EMU=build/bin/dualpipe-emu python3 bench/verify-rate.py \\
      [--dialect adls|hadoop] [--dirs 100] [--files 1000] [--threads 4,8] [--large 8] [--large-mb 64]

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
FS = "bench"
SU = "$superuser"
HADOOP = False


def g1_put(c, path, body):
    """CREATE with the first 4 MiB (the emulator's body limit, as ADLS's), APPEND the rest."""
    step = 4 << 20
    st = g1_send(c, "PUT", "%s?op=CREATE&write=true&overwrite=true" % urllib.parse.quote(path), body[:step])
    for off in range(step, len(body), step):
        if st not in (200, 201):
            break
        st = g1_send(c, "POST", "%s?op=APPEND&append=true" % urllib.parse.quote(path), body[off:off + step])
        st = 201 if st == 200 else st
    return st


def g1_send(c, method, target, body):
    first = b"" if HADOOP else body  # hadoop: the namenode step carries no body (it answers 307)
    c.request(method, "/webhdfs/v1%s&user.name=%s" % (target, urllib.parse.quote(SU)), body=first,
              headers={"Content-Length": str(len(first))})
    r = c.getresponse()
    r.read()
    if r.status == 307:  # hadoop: the data step at the datanode
        loc = urllib.parse.urlsplit(r.getheader("Location"))
        dn = http.client.HTTPConnection(loc.hostname, loc.port, timeout=120)
        dn.request(method, loc.path + "?" + loc.query, body=body, headers={"Content-Length": str(len(body))})
        dr = dn.getresponse()
        dr.read()
        dn.close()
        return dr.status
    return r.status


def g2_call(gen2, method, path, query, body=None, headers=None):
    r = gen2.gen2(method, "/%s/%s/%s?%s" % (emulib.DEV_ACCOUNT, FS, urllib.parse.quote(path), query), body, headers)
    if r.status >= 300:
        raise RuntimeError("Gen2 %s %s?%s: %r" % (method, path, query, r))
    return r


def g2_kept(conn, gen2, method, path, query, body=None, headers=None):
    """g2_call on a kept-alive connection: a tree of a million entries made one connection per request
    runs the loopback out of ephemeral ports (TIME_WAIT)."""
    target = "/%s/%s/%s?%s" % (emulib.DEV_ACCOUNT, FS, urllib.parse.quote(path), query)
    hdrs = {"x-ms-version": emulib.X_MS_VERSION,
            "x-ms-date": emulib.datetime.datetime.now(emulib.datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")}
    hdrs.update(headers or {})
    n = 0 if body is None else len(body)
    hdrs["Content-Length"] = str(n)
    hdrs["Authorization"] = emulib.shared_key_auth(gen2.account, gen2.key, method, target, hdrs, n)
    conn.request(method, target, body=body, headers=hdrs)
    r = conn.getresponse()
    r.read()
    if r.status >= 300:
        raise RuntimeError("Gen2 %s %s?%s: %d" % (method, path, query, r.status))


def g2_file(gen2, path, body, conn=None):
    if conn is None:
        u = urllib.parse.urlsplit(gen2.url)
        with_conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        try:
            return g2_file(gen2, path, body, with_conn)
        finally:
            with_conn.close()
    g2_kept(conn, gen2, "PUT", path, "resource=file", headers={"x-ms-permissions": "0644", "x-ms-umask": "0000"})
    step = 4 << 20
    for off in range(0, len(body), step):
        g2_kept(conn, gen2, "PATCH", path, "action=append&position=%d" % off, body[off:off + step])
    if body:
        g2_kept(conn, gen2, "PATCH", path, "action=flush&position=%d" % len(body))


def mkdirs(gen1, gen2, d):
    r = gen1.webhdfs("PUT", d, "MKDIRS")
    assert r.status == 200, r
    r = gen1.webhdfs("PUT", d, "SETOWNER", owner=SU, group=SU)
    assert r.status == 200, r
    g2_call(gen2, "PUT", d.lstrip("/"), "resource=directory", headers={"x-ms-permissions": "0755", "x-ms-umask": "0000"})


def populate(gen1, gen2, paths, body, threads=8):
    u = urllib.parse.urlsplit(gen1.url)
    errors = []

    def work(k):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        u2 = urllib.parse.urlsplit(gen2.url)
        c2 = http.client.HTTPConnection(u2.hostname, u2.port, timeout=120)
        try:
            for n in range(k, len(paths), threads):
                st = g1_put(c, paths[n], body)
                if st != 201:
                    errors.append(st)
                g2_file(gen2, paths[n].lstrip("/"), body, c2)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            c.close()
            c2.close()

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError("creating entries: %d failures (first %r)" % (len(errors), errors[0]))


def run_verify(cpath, tmp, root, threads, deep):
    out = os.path.join(tmp, "report.json")
    args = [DUALPIPE, "verify", root, "--threads", str(threads), "--config", cpath, "--json", out,
            "--no-progress"] + (["--deep"] if deep else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.monotonic()
    p = subprocess.run(args, capture_output=True, text=True)
    wall = time.monotonic() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if p.returncode != 0:
        raise RuntimeError("verify not equal or failed (%d): %s%s" % (p.returncode, p.stdout[-2000:], p.stderr))
    with open(out) as f:
        rep = json.load(f)
    rss_s = "%.1f MiB" % (rss / 1024) if rss > before else "<= %.1f MiB (an earlier run's peak)" % (rss / 1024)
    return rep["result"], wall, rss_s


def read_rate(gen1, gen2, paths):
    """Bytes/s of reading each file once from each emulator (sequential)."""
    total, t = 0, time.monotonic()
    for p in paths:
        r = gen1.webhdfs("GET", p, "OPEN", read="true")
        if r.status == 307:
            loc = urllib.parse.urlsplit(r.header("location"))
            r = emulib.http_request("%s://%s" % (loc.scheme, loc.netloc), "GET", loc.path + "?" + loc.query)
        total += len(r.body)
        total += len(g2_call(gen2, "GET", p.lstrip("/"), "").body)
    return total / (time.monotonic() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dialect", default="adls", choices=("adls", "hadoop"))
    ap.add_argument("--dirs", type=int, default=100)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--threads", default="4,8")
    ap.add_argument("--large", type=int, default=8)
    ap.add_argument("--large-mb", type=int, default=64)
    a = ap.parse_args()
    global HADOOP
    HADOOP = a.dialect == "hadoop"
    tmp = tempfile.mkdtemp(prefix="dp-verify-bench-")
    gen1 = emulib.Emu("gen1", dialect=a.dialect)
    gen2 = emulib.Emu("gen2")
    try:
        r = gen2.gen2("PUT", "/%s/%s?resource=filesystem" % (emulib.DEV_ACCOUNT, FS))
        assert r.status == 201, r
        cfg = {"listen": "127.0.0.1:0", "admin": {"listen": "127.0.0.1:0"}, "spool": {"dir": tmp},
               "gen1": {"endpoint": gen1.url, "dialect": a.dialect},
               "gen2": {"endpoint": gen2.url, "account": emulib.DEV_ACCOUNT,
                        "auth": {"mode": "shared_key", "account_key": emulib.DEV_KEY},
                        "mappings": [{"gen1_prefix": "/", "filesystem": FS, "prefix": ""}]}}
        cpath = os.path.join(tmp, "dualpipe.json")
        with open(cpath, "w") as f:
            json.dump(cfg, f)
        if a.dirs and a.files:
            t0 = time.monotonic()
            mkdirs(gen1, gen2, "/lake")
            for d in range(a.dirs):
                mkdirs(gen1, gen2, "/lake/d%04d" % d)
            populate(gen1, gen2, ["/lake/d%04d/f%06d" % (d, i) for d in range(a.dirs) for i in range(a.files)], b"")
            entries = a.dirs * a.files + a.dirs
            print("tree: %d entries (%d directories of %d empty files) on both sides, built in %.1f s"
                  % (entries, a.dirs, a.files, time.monotonic() - t0))
            for th in [int(x) for x in a.threads.split(",")]:
                res, wall, rss = run_verify(cpath, tmp, "/lake", th, False)
                w = res["walk"]
                assert w["entries"] == entries, w
                print("%s namespace threads=%d: %d entries in %.2f s walk (%.2f s wall): %.0f entries/s; peak RSS %s"
                      % (a.dialect, th, w["entries"], w["seconds"], wall, w["entries_per_s"], rss))
        if a.large:
            mkdirs(gen1, gen2, "/big")
            body = os.urandom(a.large_mb << 20)
            paths = ["/big/f%03d" % i for i in range(a.large)]
            populate(gen1, gen2, paths, body, threads=2)
            rr = read_rate(gen1, gen2, paths)
            for th in [int(x) for x in a.threads.split(",")]:
                res, wall, rss = run_verify(cpath, tmp, "/big", th, True)
                c, w = res["counts"], res["walk"]
                assert c["content_verified"] == a.large, c
                rate = c["bytes_read"] / w["seconds"] if w["seconds"] > 0 else 0
                print("%s --deep threads=%d: %d files of %d MiB, %.1f MiB read in %.2f s: %.1f MiB/s "
                      "(emulators' read rate, one client: %.1f MiB/s; ratio %.2f); peak RSS %s"
                      % (a.dialect, th, a.large, a.large_mb, c["bytes_read"] / 1048576, w["seconds"],
                         rate / 1048576, rr / 1048576, rate / rr if rr else 0, rss))
    finally:
        gen1.close()
        gen2.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
