#!/usr/bin/env python3
"""Memory of one dualpipe-emu holding a large tree: RSS per node and the create rate.

Starts one emulator (gen1 ADLS dialect, or gen2 with Shared Key), creates DIRS directories of FILES empty
files each over kept-alive connections (one connection per request runs the loopback out of ephemeral
ports), and prints the emulator's RSS (VmRSS from /proc) before, at every tenth of the tree and at the end,
with the bytes per node and the creates/s. Then it restarts the emulator on the same data directory and
prints the time the meta.log replay took and the RSS after it.

  DUALPIPE_EMU=build/bin/dualpipe-emu python3 bench/emu-memory.py [--service gen1|gen2] \\
      [--dirs 1000] [--files 1000] [--threads 4] [--no-reopen]

Everything runs on loopback in a scratch directory that is removed at the end.
"""
import argparse
import http.client
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import emulib  # noqa: E402

FS = "mem"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Client:
    """One kept-alive connection to the emulator."""

    def __init__(self, emu):
        self.emu = emu
        u = urllib.parse.urlsplit(emu.url)
        self.c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)

    def close(self):
        self.c.close()

    def _send(self, method, target, headers):
        self.c.request(method, target, body=b"", headers=headers)
        r = self.c.getresponse()
        r.read()
        return r.status

    def gen1(self, method, path, op):
        st = self._send(method, "/webhdfs/v1%s?op=%s&user.name=hdfs" % (urllib.parse.quote(path), op),
                        {"Content-Length": "0"})
        if st not in (200, 201):
            raise RuntimeError("Gen1 %s %s: %d" % (op, path, st))

    def gen2(self, method, path, query):
        target = "/%s/%s%s?%s" % (emulib.DEV_ACCOUNT, FS, urllib.parse.quote(path), query)
        hdrs = {"x-ms-version": emulib.X_MS_VERSION, "Content-Length": "0",
                "x-ms-date": emulib.datetime.datetime.now(emulib.datetime.timezone.utc)
                .strftime("%a, %d %b %Y %H:%M:%S GMT")}
        hdrs["Authorization"] = emulib.shared_key_auth(self.emu.account, self.emu.key, method, target, hdrs, 0)
        st = self._send(method, target, hdrs)
        if st >= 300:
            raise RuntimeError("Gen2 %s %s?%s: %d" % (method, path, query, st))

    def mkdir(self, path):
        if self.emu.service == "gen1":
            self.gen1("PUT", path, "MKDIRS")
        else:
            self.gen2("PUT", path, "resource=directory")

    def mkfile(self, path):
        if self.emu.service == "gen1":
            self.gen1("PUT", path, "CREATE&write=true&overwrite=true")
        else:
            self.gen2("PUT", path, "resource=file")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--service", default="gen1", choices=("gen1", "gen2"))
    ap.add_argument("--dirs", type=int, default=1000)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--no-reopen", action="store_true")
    a = ap.parse_args()
    emu = emulib.Emu(a.service)
    try:
        if a.service == "gen2":
            r = emu.gen2("PUT", "/%s/%s?resource=filesystem" % (emulib.DEV_ACCOUNT, FS))
            assert r.status == 201, r
        pid = emu.proc.pid
        base = rss_kib(pid)
        print("%s emulator, %d directories of %d empty files, %d client threads; RSS at start %.1f MiB"
              % (a.service, a.dirs, a.files, a.threads, base / 1024))
        c = Client(emu)
        t0 = time.monotonic()
        c.mkdir("/lake")
        for d in range(a.dirs):
            c.mkdir("/lake/d%04d" % d)
        c.close()
        total = a.dirs * a.files
        done = [0]
        lock = threading.Lock()
        errors = []

        def work(k):
            cl = Client(emu)
            try:
                for n in range(k, total, a.threads):
                    cl.mkfile("/lake/d%04d/f%06d" % (n // a.files, n % a.files))
                    with lock:
                        done[0] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(e)
            finally:
                cl.close()

        ts = [threading.Thread(target=work, args=(k,)) for k in range(a.threads)]
        for t in ts:
            t.start()
        step, mark = max(total // 10, 1), 0
        while any(t.is_alive() for t in ts):
            time.sleep(0.5)
            with lock:
                n = done[0]
            if n >= mark + step:
                mark = n - n % step
                el = time.monotonic() - t0
                print("  %8d files  %7.1f s  %7.0f creates/s  RSS %8.1f MiB" % (n, el, n / el, rss_kib(pid) / 1024),
                      flush=True)
        for t in ts:
            t.join()
        if errors:
            raise RuntimeError("creating files: %d failures (first %r)" % (len(errors), errors[0]))
        el = time.monotonic() - t0
        nodes = total + a.dirs + 1
        rss = rss_kib(pid)
        print("built %d nodes in %.1f s (%.0f creates/s); RSS %.1f MiB: %.0f bytes per node above the start"
              % (nodes, el, nodes / el, rss / 1024, (rss - base) * 1024 / nodes))
        if not a.no_reopen:
            emu.stop()
            t1 = time.monotonic()
            emu.start(timeout=600)
            print("restart: meta.log (%.1f MiB) replayed in %.1f s; RSS after %.1f MiB"
                  % (os.path.getsize(os.path.join(emu.data_dir, "meta.log")) / 1048576, time.monotonic() - t1,
                     rss_kib(emu.proc.pid) / 1024))
    finally:
        emu.close()


if __name__ == "__main__":
    main()
