"""Driver of one npm real-client test: start a dualpipe-emu (emulib.Emu, free ports, temp data dir),
run the client script with node against it, then check the result independently of the client.

The client script asserts each step itself and exits non-zero on failure. Afterwards the driver
checks, over plain HTTP with emulib's own request code, the known file the script leaves behind, and
that the emulator counted the operations the script is meant to exercise (so a client that silently
took another path, e.g. LISTSTATUS instead of MSLISTSTATUS, is caught).

usage: run_node_client.py --node NODE --npm-prefix DIR --script FILE.js --service gen1|gen2
                          [--dialect adls|hadoop] [--expect-ops OP,OP,...]
                          [--final-path PATH --final-content TEXT]
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import emulib  # noqa: E402

CLIENT_TIMEOUT_S = 240


def op_counts(counters):
    """{'OP': n} from the emulator's {'requests': {'METHOD OP': n}}, op upper-cased."""
    out = {}
    for label, n in counters.get("requests", {}).items():
        op = label.split(" ")[-1].upper()
        out[op] = out.get(op, 0) + n
    return out


def check_final(emu, args):
    """Read the script's final file over raw HTTP (not through the client) and compare."""
    if emu.service == "gen1":
        r = emu.webhdfs("GET", args.final_path, "OPEN", read="true")
        if r.status == 307:  # hadoop dialect: the data step is on the datanode listener
            loc = r.header("location")
            u = loc.split("/", 3)
            r = emulib.http_request("/".join(u[:3]), "GET", "/" + u[3])
    else:
        r = emu.gen2("GET", "/%s/%s" % (emu.account, args.final_path.lstrip("/")))
    if r.status != 200 or r.body != args.final_content.encode():
        raise AssertionError("final file %s: expected 200 %r, got %r" % (args.final_path, args.final_content, r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--node", required=True)
    ap.add_argument("--npm-prefix", required=True)
    ap.add_argument("--script", required=True)
    ap.add_argument("--service", choices=("gen1", "gen2"), required=True)
    ap.add_argument("--dialect", choices=("adls", "hadoop"), default="adls")
    ap.add_argument("--expect-ops", default="")
    ap.add_argument("--final-path")
    ap.add_argument("--final-content")
    args = ap.parse_args()
    args.script = os.path.abspath(args.script)  # node runs with cwd = the npm prefix
    args.npm_prefix = os.path.abspath(args.npm_prefix)

    modules = os.path.join(args.npm_prefix, "node_modules")
    if not os.path.isdir(modules):
        print("run_node_client: %s missing (the clients_npm_install test installs it)" % modules)
        return 1

    emu = emulib.Emu(args.service, dialect=args.dialect)
    rc = 1
    try:
        rc = run_client(emu, args, modules)
    finally:
        if rc != 0:
            log = emu.read_log()
            if log:
                print("---- emulator log (tail) ----\n" + log[-4000:])
        try:
            emu.close()
        except AssertionError as e:  # a sanitizer report in the emulator's log
            print(e)
            rc = 1
    return rc


def run_client(emu, args, modules):
    env = dict(os.environ)
    # CommonJS require() from a script outside the prefix finds the pinned modules here.
    env["NODE_PATH"] = modules
    env["NO_PROXY"] = "127.0.0.1,localhost"
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        env.pop(var, None)
    host, port = emu.url[len("http://"):].rsplit(":", 1)
    if args.service == "gen1":
        env.update(DP_GEN1_URL=emu.url, DP_GEN1_HOST=host, DP_GEN1_PORT=port, DP_GEN1_DIALECT=args.dialect)
    else:
        env.update(DP_GEN2_URL=emu.url, DP_GEN2_ACCOUNT=emu.account, DP_GEN2_KEY=emu.key)
    print("run_node_client: %s against %s %s at %s" % (os.path.basename(args.script), args.service,
                                                        args.dialect if args.service == "gen1" else "",
                                                        emu.url), flush=True)
    try:
        rc = subprocess.run([args.node, args.script], env=env, cwd=args.npm_prefix,
                            timeout=CLIENT_TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        print("run_node_client: client script timed out after %d s" % CLIENT_TIMEOUT_S)
        return 1
    if rc != 0:
        print("run_node_client: client script failed (exit %d)" % rc)
        return 1

    counts = op_counts(emu.counters())
    print("run_node_client: emulator op counts: %s" % dict(sorted(counts.items())))
    missing = [op for op in filter(None, args.expect_ops.split(",")) if counts.get(op.upper(), 0) == 0]
    if missing:
        print("run_node_client: the client never sent: %s" % ", ".join(missing))
        return 1
    if args.final_path:
        check_final(emu, args)
    print("run_node_client: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
