#!/usr/bin/python3
"""See what reached Gen2: list, read and inspect paths of the Gen2 side of a dualpipe config (the local stack's
Gen2 emulator by default), signing each request with the config's Shared Key, so nobody has to sign by hand.

  python3 docker/gen2.py [--config FILE] ls [PATH]      recursive listing under PATH (default /)
  python3 docker/gen2.py [--config FILE] cat PATH       the file's bytes on stdout
  python3 docker/gen2.py [--config FILE] stat PATH      owner, group, permissions, ACL, length
  python3 docker/gen2.py [--config FILE] mkfs           create the mapped filesystem (exists: fine)

PATH is the Gen1 path a writer used (/demo/readme.md); the config's first mapping turns it into the Gen2
filesystem and prefix. FILE defaults to config/local.json; the account key is read from gen2.auth.account_key
(inline, _env or _file). Only gen2.auth.mode shared_key is supported here.
"""
import argparse
import datetime
import json
import os
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from emulib import X_MS_VERSION, http_request, shared_key_auth  # noqa: E402


def load(path):
    c = json.load(open(path))
    g2 = c["gen2"]
    auth = g2.get("auth", {})
    if auth.get("mode", "shared_key") != "shared_key":
        sys.exit("gen2.py: %s: only gen2.auth.mode shared_key is supported" % path)
    key = auth.get("account_key")
    if key is None and "account_key_env" in auth:
        key = os.environ.get(auth["account_key_env"])
    if key is None and "account_key_file" in auth:
        f = auth["account_key_file"]
        f = f if os.path.isabs(f) else os.path.join(os.path.dirname(os.path.abspath(path)), f)
        key = open(f).readline().strip()
    if not key:
        sys.exit("gen2.py: %s: no gen2.auth.account_key" % path)
    u = urllib.parse.urlsplit(g2["endpoint"])
    host = u.hostname or ""
    path_style = g2.get("path_style", host in ("localhost",) or host.replace(".", "").isdigit() or ":" in host)
    m = g2["mappings"][0]
    return {"url": "%s://%s" % (u.scheme, u.netloc), "account": g2["account"], "key": key,
            "path_style": path_style, "fs": m["filesystem"], "prefix": m.get("prefix", "").strip("/"),
            "gen1_prefix": m.get("gen1_prefix", "/").rstrip("/")}


def call(cfg, method, rel_target):
    target = ("/" + cfg["account"] if cfg["path_style"] else "") + rel_target
    h = {"x-ms-version": X_MS_VERSION,
         "x-ms-date": datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")}
    h["Authorization"] = shared_key_auth(cfg["account"], cfg["key"], method, target, h, 0)
    return http_request(cfg["url"], method, target, None, h)


def gen2_path(cfg, gen1_path):
    p = "/" + gen1_path.strip("/")
    gp = cfg["gen1_prefix"]
    if gp and p != gp and not p.startswith(gp + "/"):
        sys.exit("gen2.py: %s is outside the first mapping's gen1_prefix %s" % (p, gp))
    rest = p[len(gp):].strip("/")
    return "/".join(x for x in (cfg["prefix"], rest) if x)


def main():
    ap = argparse.ArgumentParser(description="List and read the Gen2 side of a dualpipe config.")
    ap.add_argument("--config", default=os.path.join(HERE, "..", "config", "local.json"))
    ap.add_argument("command", choices=["ls", "cat", "stat", "mkfs"])
    ap.add_argument("path", nargs="?", default="/")
    a = ap.parse_args()
    cfg = load(a.config)
    fs = cfg["fs"]
    if a.command == "mkfs":
        r = call(cfg, "PUT", "/%s?resource=filesystem" % fs)
        print("gen2: filesystem %s %s" % (fs, "created" if r.status == 201 else "exists" if r.status == 409
                                          else "-> %d %s" % (r.status, r.body[:200])))
        return 0 if r.status in (201, 409) else 1
    rel = gen2_path(cfg, a.path)
    if a.command == "ls":
        cont, n = None, 0
        while True:
            q = {"resource": "filesystem", "recursive": "true"}
            if rel:
                q["directory"] = rel
            if cont:
                q["continuation"] = cont
            r = call(cfg, "GET", "/%s?%s" % (fs, urllib.parse.urlencode(q)))
            if r.status != 200:
                print("gen2: ls %s -> %d %s" % (a.path, r.status, r.body[:300].decode("utf-8", "replace")))
                return 1
            for e in r.json().get("paths", []):
                n += 1
                kind = "d" if str(e.get("isDirectory", "false")).lower() == "true" else "-"
                print("%s %-10s %-10s %12s  %s/%s" % (kind, e.get("owner", ""), e.get("group", ""),
                                                      e.get("contentLength", "0"), fs, e["name"]))
            cont = r.header("x-ms-continuation")
            if not cont:
                break
        print("gen2: %d entries under %s/%s" % (n, fs, rel))
        return 0
    target = "/%s/%s" % (fs, urllib.parse.quote(rel))
    if a.command == "cat":
        r = call(cfg, "GET", target)
        if r.status != 200:
            print("gen2: cat %s -> %d" % (a.path, r.status), file=sys.stderr)
            return 1
        sys.stdout.buffer.write(r.body)
        return 0
    h = call(cfg, "HEAD", target + "?action=getAccessControl")
    p = call(cfg, "HEAD", target)
    if h.status != 200:
        print("gen2: stat %s -> %d" % (a.path, h.status))
        return 1
    print("gen2: %s/%s  owner=%s group=%s permissions=%s length=%s\n      acl=%s" % (
        fs, rel, h.header("x-ms-owner"), h.header("x-ms-group"), h.header("x-ms-permissions"),
        p.header("content-length"), h.header("x-ms-acl")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
