"""once-cost: what sending writes to Gen1 at most once costs (issue 11 item 1).

Writes are never re-sent by the transport (httpc_req.once: libcurl's retry of a dead reused connection
is refused in its pre-request callback) instead of forbidding connection reuse for writes. This sends N
sequential 4 KiB APPENDs through the proxy, with tests/tools/dp_relay between proxy and the Gen1
emulator to count the Gen1 connections opened, and prints the time per APPEND and the connections:
one connection for all of them (a fresh connection per write would open N).

    DUALPIPE=build/bin/dualpipe DUALPIPE_EMU=build/bin/dualpipe-emu python3 bench/once-cost.py [N]
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tools"))
import dp_relay  # noqa: E402
import proxylib  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    relay = {}

    def cfg(st):
        relay["r"] = dp_relay.Relay(st.gen1.url)
        return {"gen1": {"endpoint": relay["r"].url}}

    s = proxylib.Stack(dialect="adls", config=cfg)
    try:
        p = "/once-cost/f"
        r = proxylib.write_data(s.proxy, "PUT", p, "CREATE", b"", overwrite="true")
        assert r.status == 201, r
        c0 = relay["r"].conns
        t0 = time.time()
        for _ in range(n):
            r = proxylib.write_data(s.proxy, "POST", p, "APPEND", b"x" * 4096)
            assert r.status == 200, r
        dt = time.time() - t0
        print("appends=%d seconds=%.2f per_append_ms=%.2f new_gen1_connections=%d"
              % (n, dt, dt / n * 1000, relay["r"].conns - c0))
    finally:
        s.close()
        if "r" in relay:
            relay["r"].close()


if __name__ == "__main__":
    main()
