"""dp_relay: an HTTP/1.1 relay for fault tests, put between the proxy and the Gen1 emulator.

It listens on 127.0.0.1 (a free port), keeps each client connection alive across requests (so the
proxy's libcurl reuses it, as it would a real Gen1 connection) and forwards every request, on its own
upstream connection, to the upstream given at start (Host rewritten to the upstream's). Rules decide
what happens to requests that match them (method, WebHDFS op, a path substring), for the next `count`
matches:

  reset_after_answer  forward the request, read Gen1's whole answer, then reset the client's
                      connection (RST) without sending any of it: Gen1 applied the write, the proxy
                      never learns it.
  delay_before        hold the request delay_ms, then forward it (Gen1 applies it late) and relay the
                      answer (the client has usually given up by then).
  delay_after         forward at once, hold Gen1's answer delay_ms, then relay it.
  cut                 forward, read the whole answer, send its head and half its body (half the head
                      when it has no body), then reset.
  reset_before        reset the client's connection without forwarding anything (nothing applied).

Counters: `seen` counts every request received per "METHOD OP", `forwarded` what went upstream.
Python stdlib only; used in-process by the integration tests (a thread per connection).
"""
import socket
import struct
import threading
import time
import urllib.parse


class Rule:
    def __init__(self, action, method=None, op=None, path=None, count=1, delay_ms=0):
        self.action, self.method, self.op, self.path = action, method, op, path
        self.count, self.delay_ms = count, delay_ms

    def matches(self, method, op, path):
        return ((self.method is None or self.method == method) and
                (self.op is None or self.op.upper() == op) and
                (self.path is None or self.path in path))


def _read_head(sock, buf):
    """(head bytes, rest) once b'\\r\\n\\r\\n' arrived; (None, buf) on EOF."""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            return None, buf
        buf += d
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i], buf[i:]


def _headers(head):
    lines = head.decode("latin-1").split("\r\n")
    out = []
    for ln in lines[1:]:
        if ln and ":" in ln:
            k, v = ln.split(":", 1)
            out.append((k.strip(), v.strip()))
    return lines[0], out


def _read_exact(sock, buf, n):
    while len(buf) < n:
        d = sock.recv(max(65536, n - len(buf)))
        if not d:
            raise ConnectionError("short body")
        buf += d
    return buf[:n], buf[n:]


def _read_chunked(sock, buf):
    """The raw bytes of a chunked body up to and including its last chunk; (raw, rest)."""
    raw = b""
    while True:
        while b"\r\n" not in buf:
            d = sock.recv(65536)
            if not d:
                raise ConnectionError("short chunked body")
            buf += d
        i = buf.index(b"\r\n")
        size = int(buf[:i].split(b";")[0], 16)
        raw += buf[:i + 2]
        buf = buf[i + 2:]
        if size == 0:
            head, buf = _read_head_trailer(sock, buf)
            return raw + head, buf
        part, buf = _read_exact(sock, buf, size + 2)
        raw += part


def _read_head_trailer(sock, buf):
    while b"\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("short trailer")
        buf += d
    if buf.startswith(b"\r\n"):
        return b"\r\n", buf[2:]
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i], buf[i:]


def _read_message(sock, buf, is_response, method=None):
    """One HTTP message: (start line, headers, head bytes, body bytes, rest) or None on EOF."""
    head, buf = _read_head(sock, buf)
    if head is None:
        return None
    start, hdrs = _headers(head)
    hmap = {k.lower(): v for k, v in hdrs}
    body = b""
    status = int(start.split()[1]) if is_response else 0
    no_body = is_response and (method == "HEAD" or status in (204, 304) or 100 <= status < 200)
    if not no_body:
        if "chunked" in hmap.get("transfer-encoding", "").lower():
            body, buf = _read_chunked(sock, buf)
        elif "content-length" in hmap:
            body, buf = _read_exact(sock, buf, int(hmap["content-length"]))
        elif is_response:
            while True:
                d = sock.recv(65536)
                if not d:
                    break
                buf += d
            body, buf = buf, b""
    return start, hdrs, head, body, buf


def _reset(sock):
    """Close with RST (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Relay:
    def __init__(self, upstream_url):
        u = urllib.parse.urlsplit(upstream_url)
        self.up = (u.hostname, u.port)
        self.rules = []
        self.mu = threading.Lock()
        self.seen = {}
        self.forwarded = {}
        self.fired = []
        self.conns = 0
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.addr = "127.0.0.1:%d" % self.port
        self.stopping = False
        self.socks = set()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def add(self, action, **kw):
        with self.mu:
            self.rules.append(Rule(action, **kw))

    def clear(self):
        with self.mu:
            self.rules = []

    def count(self, table, key):
        with self.mu:
            return getattr(self, table).get(key, 0)

    def close(self):
        self.stopping = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        except OSError:
            pass
        self.thread.join(5)
        self.lsock.close()
        with self.mu:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.mu:
                self.conns += 1
                self.socks.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _rule(self, method, op, path):
        with self.mu:
            for r in self.rules:
                if r.count > 0 and r.matches(method, op, path):
                    r.count -= 1
                    self.fired.append((r.action, method, op, path))
                    return r
        return None

    def _exchange(self, start, hdrs, body):
        """Send one request upstream on a fresh connection; (head bytes, body bytes) of the answer."""
        method = start.split()[0]
        up = socket.create_connection(self.up, timeout=60)
        try:
            lines = [start]
            for k, v in hdrs:
                if k.lower() == "host":
                    v = "%s:%d" % self.up
                if k.lower() == "connection":
                    continue
                lines.append("%s: %s" % (k, v))
            lines.append("Connection: close")
            up.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            msg = _read_message(up, b"", True, method)
            if msg is None:
                raise ConnectionError("upstream closed without an answer")
            _, rh, _, rbody, _ = msg
            status_line = msg[0]
            # re-frame with Content-Length for the client (keep-alive)
            out = [status_line]
            for k, v in rh:
                if k.lower() in ("connection", "transfer-encoding", "content-length"):
                    continue
                out.append("%s: %s" % (k, v))
            if "chunked" in {k.lower(): v for k, v in rh}.get("transfer-encoding", "").lower():
                rbody = _dechunk(rbody)
            out.append("Content-Length: %d" % len(rbody))
            return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1"), rbody
        finally:
            up.close()

    def _serve(self, c):
        buf = b""
        try:
            while not self.stopping:
                msg = _read_message(c, buf, False)
                if msg is None:
                    return
                start, hdrs, _, body, buf = msg
                method, target = start.split()[0], start.split()[1]
                u = urllib.parse.urlsplit(target)
                q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
                op = next((v for k, v in q.items() if k.lower() == "op"), "").upper()
                key = "%s %s" % (method, op)
                with self.mu:
                    self.seen[key] = self.seen.get(key, 0) + 1
                rule = self._rule(method, op, u.path)
                action = rule.action if rule else "pass"
                if action == "reset_before":
                    _reset(c)
                    return
                if action == "delay_before":
                    time.sleep(rule.delay_ms / 1000.0)
                with self.mu:
                    self.forwarded[key] = self.forwarded.get(key, 0) + 1
                head, rbody = self._exchange(start, hdrs, body)
                if action == "reset_after_answer":
                    _reset(c)
                    return
                if action == "cut":
                    # mid-answer: half the body, or half the head when there is no body
                    c.sendall(head + rbody[:len(rbody) // 2] if rbody else head[:len(head) // 2])
                    time.sleep(0.05)
                    _reset(c)
                    return
                if action == "delay_after":
                    time.sleep(rule.delay_ms / 1000.0)
                c.sendall(head + rbody)
        except (OSError, ConnectionError, ValueError, IndexError):
            pass
        finally:
            with self.mu:
                self.socks.discard(c)
            try:
                c.close()
            except OSError:
                pass


def _dechunk(raw):
    out = b""
    while raw:
        i = raw.index(b"\r\n")
        size = int(raw[:i].split(b";")[0], 16)
        if size == 0:
            break
        out += raw[i + 2:i + 2 + size]
        raw = raw[i + 2 + size + 2:]
    return out
