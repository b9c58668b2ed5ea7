"""The local stack as containers (docker/compose.yaml's three services, run with plain podman): both
emulators from the image's emulator stage, the proxy from the runtime image, sharing the host's
network as the containers of a pod share theirs. Checks what a user of the image relies on:
  - the image's HEALTHCHECK (`podman healthcheck run`) turns healthy once the proxy serves /healthz;
  - a two-step WebHDFS write through the containerised proxy reaches the Gen1 emulator, and the
    applier copies it to the Gen2 emulator (filesystem created by gen2.create_filesystems);
  - the proxy runs as the image's non-root user and keeps its journal on the state volume;
  - SIGTERM drains: an upload that Gen1 is still working on when the signal comes (the emulator adds
    2.5 s to that CREATE) completes with 201, the container exits 0, and the write is on both emulators.
Usage (root, after `source docker/podman-env.sh`):
  python3 docker/container_smoke.py IMAGE EMU_IMAGE [SECCOMP_FILE|default]
"""
import json
import re
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import emulib  # noqa: E402

TAG = "dpsmoke-%d" % os.getpid()


def podman(*args, check=True, timeout=120):
    p = subprocess.run(["podman"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("podman %s: exit %d\n%s" % (" ".join(args), p.returncode, p.stderr.decode()))
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, fn, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if fn():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


class Gen2:
    """What emulib.Emu.gen2 needs to sign requests to the containerised Gen2 emulator."""

    def __init__(self, url):
        self.url, self.account, self.key = url, emulib.DEV_ACCOUNT, emulib.DEV_KEY

    def get(self, path):
        return emulib.Emu.gen2(self, "GET", "/%s/lake/%s" % (self.account, path))


def main():
    image, emu_image = sys.argv[1], sys.argv[2]
    seccomp = sys.argv[3] if len(sys.argv) > 3 else "default"
    tmp = tempfile.mkdtemp(prefix="dp-ctr-smoke-")
    names = []
    try:
        p1, p2, a1, a2, front, admin = (free_port() for _ in range(6))
        slow = ["--fault", "method=PUT,op=CREATE,action=latency,latency_ms=2500,path=/ctr/drain.bin"]
        for svc, port, adm, extra in (("gen1", p1, a1, ["--dialect", "adls"] + slow),
                                      ("gen2", p2, a2, ["--account", emulib.DEV_ACCOUNT])):
            name = "%s-%s" % (TAG, svc)
            names.append(name)
            podman("run", "-d", "--pull=never", "--name", name, "--network", "host",
                   "-e", "DUALPIPE_EMU_KEY=" + emulib.DEV_KEY, emu_image, svc,
                   "--listen", "127.0.0.1:%d" % port, "--admin", "127.0.0.1:%d" % adm,
                   "--data", "/var/lib/dualpipe/" + svc, *extra)
        g1 = "http://127.0.0.1:%d" % p1
        g2 = Gen2("http://127.0.0.1:%d" % p2)
        wait_for("the emulators", lambda: emulib.http_request(g1, "GET", "/webhdfs/v1/?op=GETFILESTATUS").status == 200
                 and emulib.http_request(g2.url, "GET", "/").status > 0)
        cfg = {"listen": "127.0.0.1:%d" % front, "admin": {"listen": "127.0.0.1:%d" % admin},
               "shutdown": {"drain_ms": 8000},
               "gen1": {"endpoint": g1, "dialect": "adls"},
               "gen2": {"endpoint": g2.url, "account": emulib.DEV_ACCOUNT, "create_filesystems": True,
                        "auth": {"mode": "shared_key", "account_key": emulib.DEV_KEY},
                        "mappings": [{"gen1_prefix": "/", "filesystem": "lake", "prefix": ""}]}}
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        os.chmod(tmp, 0o755)
        os.chmod(cfg_path, 0o644)
        proxy = TAG + "-proxy"
        names.append(proxy)
        sec = [] if seccomp == "default" else ["--security-opt", "seccomp=" + seccomp]
        podman("run", "-d", "--pull=never", "--name", proxy, "--network", "host", "--health-interval=disable",
               "-e", "DP_ADMIN=127.0.0.1:%d" % admin, "-v", "%s:/etc/dualpipe/config.json:ro" % cfg_path,
               "-v", "%s-state:/var/lib/dualpipe" % TAG, *sec, image)
        # The image's HEALTHCHECK, run by podman as a scheduler would.
        wait_for("the HEALTHCHECK to pass", lambda: podman("healthcheck", "run", proxy, check=False).returncode == 0)
        health = podman("inspect", "--format", "{{.State.Health.Status}}", proxy).stdout.decode().strip()
        assert health == "healthy", health
        user = podman("exec", proxy, "id", "-u").stdout.decode().strip()
        assert user == "10001", "the proxy runs as uid %s" % user
        base = "http://127.0.0.1:%d" % front
        # A two-step write (Hadoop style): 307 back at the proxy, then the data.
        r = emulib.http_request(base, "PUT", "/webhdfs/v1/ctr/first.txt?op=CREATE&overwrite=true")
        assert r.status == 307, r
        loc = urllib.parse.urlsplit(r.header("location"))
        r = emulib.http_request(base, "PUT", loc.path + "?" + loc.query, b"through the container")
        assert r.status == 201, r
        wait_for("Gen2 to have the first write", lambda: g2.get("ctr/first.txt").body == b"through the container")
        r = emulib.http_request(g1, "GET", "/webhdfs/v1/ctr/first.txt?op=OPEN&read=true")
        assert r.body == b"through the container", r
        journal = podman("exec", proxy, "ls", "/var/lib/dualpipe/spool/journal").stdout.decode()
        assert "LOCK" in journal, journal

        # SIGTERM while Gen1 works on an upload: the upload completes, then the proxy exits 0.
        body = os.urandom(1 << 20)
        result = {}

        def upload():
            r = emulib.http_request(base, "PUT", "/webhdfs/v1/ctr/drain.bin?op=CREATE&overwrite=true&write=true", body,
                                    {"Content-Type": "application/octet-stream"})
            result["status"] = r.status

        t = threading.Thread(target=upload)
        t.start()
        time.sleep(1.0)  # the body is in and Gen1 is holding the CREATE
        podman("kill", "--signal", "TERM", proxy)
        t.join(30)
        assert result.get("status") == 201, "the upload in flight at SIGTERM got %r" % result
        rc = podman("wait", proxy, timeout=60).stdout.decode().strip()
        logs = podman("logs", proxy).stderr.decode() + podman("logs", proxy).stdout.decode()
        assert rc == "0", "the proxy exited %s after SIGTERM\n%s" % (rc, logs[-3000:])
        m = re.search(r"phase=front waited_ms=(\d+)", logs)
        assert m and int(m.group(1)) > 0, "the front did not wait for the upload at Gen1\n" + logs[-3000:]
        if os.environ.get("DP_SMOKE_VERBOSE"):
            print("\n".join(ln for ln in logs.splitlines() if "drain" in ln or "backend" in ln))
        backend = "io_uring" if seccomp != "default" else "threads"
        assert ("backend=%s" % backend) in logs, logs[-3000:]
        wait_for("Gen1 to have the drained write", lambda: emulib.http_request(
            g1, "GET", "/webhdfs/v1/ctr/drain.bin?op=OPEN&read=true").body == body)
        # The drained write reached Gen2 before the exit, or waits in the journal on the volume.
        if g2.get("ctr/drain.bin").body != body:
            podman("start", proxy)
            wait_for("Gen2 to have the drained write after a restart", lambda: g2.get("ctr/drain.bin").body == body, 60)
        print("container smoke: healthcheck, write to both emulators, SIGTERM drain: ok (%s seccomp profile)" % seccomp)
        return 0
    finally:
        for n in reversed(names):
            podman("rm", "-f", "-t", "2", n, check=False)
        podman("volume", "rm", "-f", TAG + "-state", check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
