"""TLS on both sides of the proxy (proxy/front_tls.c, httpc's TLS options, the emulators' --tls-cert).

A throwaway CA made with the openssl command line (tlslib) signs the certificates of both emulators
and of the proxy's front; the whole stack then runs over HTTPS on loopback:
  - writers over HTTPS: curl (two-step CREATE whose 307 Location is https, APPEND) and Python's
    http.client; the writes reach Gen1, the applier copies them to Gen2 (over TLS, verified against
    gen2.tls.ca_file) and both stores end up equal; TLS 1.1 is refused;
  - a wrong CA toward Gen2 (gen2.tls.ca_file of another CA) and an expired Gen1 certificate are
    refused, with libcurl's reason in the log and in what the writer or operator sees;
  - tls.client_ca_file: a request without a client certificate is refused with a 403 RemoteException,
    one with a certificate of the CA goes through;
  - SIGHUP swaps in a new certificate (signed by another CA) while an upload is in flight on a
    connection opened before: that upload completes, new connections get the new certificate;
  - a key file other users can read stops the start with an error naming tls.key_file.
"""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import unittest.mock
import urllib.parse

import emulib
import proxylib
import tlslib

CURL = shutil.which("curl")


class MtlsGateway:
    """A TLS gateway in front of a plain-HTTP emulator that, like a Knox or HttpFS gateway set up for client
    certificates, refuses any client that does not present a certificate of its CA: it accepts TLS on a
    loopback port of its own (server certificate of `server`), requires the client's certificate, then
    relays bytes both ways to `upstream` (host, port). Counts the handshakes it accepted and refused."""

    def __init__(self, server, client_ca, upstream):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*server)
        self.ctx.load_verify_locations(client_ca)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.upstream = upstream
        self.accepted = self.refused = 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                raw, _ = self.lsock.accept()
            except OSError:
                return
            try:
                conn = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                self.refused += 1
                raw.close()
                continue

            self.accepted += 1
            up = socket.create_connection(self.upstream)
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self.stop = True
        self.lsock.close()


def emu_tls(cert_key):
    return {"extra_args": ["--tls-cert", cert_key[0], "--tls-key", cert_key[1]]}


class TlsStack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dp-tls-")
        cls.ca = tlslib.Pki(os.path.join(cls.dir, "ca"))
        cls.other = tlslib.Pki(os.path.join(cls.dir, "other"), name="some other CA")
        cls.emu_cert = cls.ca.issue("emulator")
        cls.front_cert = cls.ca.issue("proxy")
        emulib.SSL_CONTEXT = cls.ca.context()

    @classmethod
    def tearDownClass(cls):
        emulib.SSL_CONTEXT = None
        shutil.rmtree(cls.dir, ignore_errors=True)

    def stack(self, front=True, gen1_ca=None, gen2_ca=None, gen1_cert=None, extra=None):
        tls = {}
        if front:
            tls = {"tls": {"cert_file": self.front_cert[0], "key_file": self.front_cert[1]}}
        over = proxylib.deep_merge(tls, {"gen1": {"tls": {"ca_file": gen1_ca or self.ca.cert}},
                                         "gen2": {"tls": {"ca_file": gen2_ca or self.ca.cert}}})
        s = proxylib.Stack(config=proxylib.deep_merge(over, extra or {}),
                           gen1_kw=emu_tls(gen1_cert or self.emu_cert), gen2_kw=emu_tls(self.emu_cert))
        self.addCleanup(s.close)
        return s

    def curl(self, *args, cacert=None):
        p = subprocess.run([CURL, "-sS", "--cacert", cacert or self.ca.cert] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    @unittest.skipUnless(CURL, "curl is not installed")
    def test_writes_over_https_reach_both_stores(self):
        s = self.stack()
        p = s.proxy
        self.assertTrue(p.url.startswith("https://"), p.url)
        self.assertIn("tls=on", p.read_log())
        data = os.urandom(100000)
        src = os.path.join(self.dir, "body")
        with open(src, "wb") as f:
            f.write(data)
        # curl: two-step CREATE; the 307 points back at the proxy over https, curl follows it with the body.
        base = p.url + "/webhdfs/v1/tls/a.bin"
        rc, out, err = self.curl("-D", "-", "-o", "/dev/null", "-X", "PUT", base + "?op=CREATE&overwrite=true")
        self.assertEqual(rc, 0, err)
        loc = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.lower().startswith("location:")]
        self.assertTrue(loc and loc[0].startswith("https://" + p.listen + "/"), out)
        rc, out, err = self.curl("-w", "%{http_code}", "-o", "/dev/null", "-L", "-X", "PUT", "-T", src,
                                 base + "?op=CREATE&overwrite=true")
        self.assertEqual((rc, out), (0, "201"), err)
        rc, out, err = self.curl("-w", "%{http_code}", "-o", "/dev/null", "-X", "POST", "--data-binary", "@" + src,
                                 "-H", "Content-Type: application/octet-stream",
                                 base + "?op=APPEND&append=true")
        self.assertEqual((rc, out), (0, "200"), err)
        # Python's http.client over TLS (emulib with the test CA).
        r = proxylib.write_data(p, "PUT", "/tls/b.txt", "CREATE", b"hello over tls", overwrite="true")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(p.webhdfs("PUT", "/tls/dir", "MKDIRS").status, 200)
        s.wait_applied()
        s.assert_same(self)
        self.assertEqual(s.g2_read("tls/a.bin"), data + data)
        self.assertEqual(s.g2_read("tls/b.txt"), b"hello over tls")
        # Only TLS 1.2 and newer.
        rc, out, err = self.curl("--tls-max", "1.1", "-o", "/dev/null", p.url + "/webhdfs/v1/?op=GETFILESTATUS")
        self.assertNotEqual(rc, 0, "TLS 1.1 was accepted")
        # A client that does not trust the proxy's CA refuses it (curl's own check).
        rc, out, err = self.curl("-o", "/dev/null", p.url + "/webhdfs/v1/?op=GETFILESTATUS", cacert=self.other.cert)
        self.assertEqual(rc, 60, err)

    def test_adls_sdk_speaks_https_to_the_proxy(self):
        """Debian's python3-azure-datalake-store builds https://STORE.SUFFIX/webhdfs/v1 itself: pointed at
        the proxy by host and port only, trusting the test CA (REQUESTS_CA_BUNDLE), it writes through."""
        # The SDK makes ~/.config/azure-datalake-store when imported: HOME is the test's directory.
        env = unittest.mock.patch.dict(os.environ, {"HOME": self.dir, "REQUESTS_CA_BUNDLE": self.ca.cert,
                                                    "NO_PROXY": "127.0.0.1,localhost"})
        env.start()
        self.addCleanup(env.stop)
        try:
            from azure.datalake.store import core, lib
        except ImportError:
            self.skipTest("python3-azure-datalake-store is not installed")
        s = self.stack()
        host, port = s.proxy.listen.rsplit(":", 1)
        token = lib.DataLakeCredential({"tokenType": "Bearer", "access": "x", "time": time.time(),
                                        "expiresIn": 10 ** 9})
        # store_name "127.0.0" + url_suffix "1:PORT" = https://127.0.0.1:PORT/ : no URL given, only host and port
        adl = core.AzureDLFileSystem(token=token, store_name=host.rsplit(".", 1)[0],
                                     url_suffix=host.rsplit(".", 1)[1] + ":" + port)
        self.assertTrue(adl.azure.url.startswith("https://127.0.0.1:%s/" % port), adl.azure.url)
        data = os.urandom(300000)
        with adl.open("/sdk/tls.bin", "wb") as f:
            f.write(data)
        with adl.open("/sdk/tls.bin", "rb") as f:
            self.assertEqual(f.read(), data)
        adl.mkdir("/sdk/dir")
        s.wait_applied()
        s.assert_same(self)
        self.assertEqual(s.g2_read("sdk/tls.bin"), data)

    def test_gen1_client_certificate(self):
        """gen1.tls.cert_file/key_file: a Gen1 gateway that requires client certificates lets the proxy
        through with one, and refuses it (clear reason in the writer's answer and the log) without."""
        gen1_client = self.ca.issue("proxy-client", client=True)
        for with_cert in (True, False):
            gw = {}

            def over(s, with_cert=with_cert):
                u = urllib.parse.urlsplit(s.gen1.url)
                gw["gw"] = MtlsGateway(self.emu_cert, self.ca.cert, (u.hostname, u.port))
                tls = {"ca_file": self.ca.cert}
                if with_cert:
                    tls.update(cert_file=gen1_client[0], key_file=gen1_client[1])
                return {"gen1": {"endpoint": "https://127.0.0.1:%d" % gw["gw"].port, "tls": tls},
                        "gen2": {"tls": {"ca_file": self.ca.cert}}}

            s = proxylib.Stack(config=over, gen2_kw=emu_tls(self.emu_cert))
            self.addCleanup(s.close)
            self.addCleanup(gw["gw"].close)
            r = proxylib.write_data(s.proxy, "PUT", "/mtls.txt", "CREATE", b"client cert", overwrite="true")
            if with_cert:
                self.assertEqual(r.status, 201, r)
                s.wait_applied()
                self.assertEqual(s.g2_read("mtls.txt"), b"client cert")
                self.assertGreaterEqual(gw["gw"].accepted, 1)
            else:
                self.assertGreaterEqual(r.status, 500, r)
                self.assertEqual(gw["gw"].accepted, 0)
                self.assertGreaterEqual(gw["gw"].refused, 1)
                self.assertEqual(s.g1_counters().get("requests", {}), {}, "nothing may reach Gen1")

    def test_wrong_ca_toward_gen2_is_refused_clearly(self):
        s = self.stack(gen2_ca=self.other.cert)
        r = proxylib.write_data(s.proxy, "PUT", "/wrongca.txt", "CREATE", b"x", overwrite="true")
        self.assertEqual(r.status, 201, r)  # Gen1 (right CA) has it; Gen2 refuses the handshake
        deadline = time.time() + 20
        while time.time() < deadline and "certificate" not in s.proxy.read_log():
            time.sleep(0.2)
        log = s.proxy.read_log()
        self.assertRegex(log, r"(?i)SSL certificate problem|certificate verify failed", log[-3000:])
        self.assertEqual(s.g2("GET", "wrongca.txt").status, 404)
        self.assertNotIn("wrongca.txt", json.dumps(s.g2_counters()))

    def test_expired_gen1_certificate_is_refused(self):
        expired = self.ca.issue("expired", expired=True)
        s = self.stack(gen1_cert=expired)
        r = s.proxy.webhdfs("GET", "/", "GETFILESTATUS")
        self.assertGreaterEqual(r.status, 500, r)
        self.assertEqual(r.json()["RemoteException"]["exception"], "IOException", r)
        log = s.proxy.read_log()
        self.assertRegex(log, r"(?i)expired", log[-3000:])

    def test_client_certificate_required(self):
        client = self.ca.issue("writer", client=True)
        stranger = self.other.issue("stranger", client=True)
        s = self.stack(extra={"tls": {"client_ca_file": self.ca.cert}})
        p = s.proxy
        r = p.webhdfs("GET", "/", "GETFILESTATUS")
        self.assertEqual(r.status, 403, r)
        self.assertEqual(r.json()["RemoteException"]["exception"], "AccessControlException", r)
        self.assertIn("client certificate", r.json()["RemoteException"]["message"])
        u = urllib.parse.urlsplit(p.url)
        for cert, want in ((stranger, 403), (client, 200)):
            ctx = self.ca.context(client_cert=cert)
            conn = emulib.http.client.HTTPSConnection(u.hostname, u.port, timeout=10, context=ctx)
            try:
                conn.request("GET", "/webhdfs/v1/?op=GETFILESTATUS")
                self.assertEqual(conn.getresponse().status, want, cert)
            except (ssl.SSLError, ConnectionResetError):
                self.assertEqual(want, 403, "the handshake with a valid client certificate failed")
            finally:
                conn.close()

    def test_sighup_reloads_the_certificate_without_dropping_uploads(self):
        s = self.stack()
        p = s.proxy
        u = urllib.parse.urlsplit(p.url)
        # An upload in flight on a connection opened with the first certificate.
        body = os.urandom(200000)
        conn = emulib.http.client.HTTPSConnection(u.hostname, u.port, timeout=20, context=self.ca.context())
        conn.putrequest("PUT", proxylib.wh_target("/reload.bin", "CREATE", overwrite="true", write="true"))
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("Content-Type", "application/octet-stream")
        conn.endheaders()
        conn.send(body[:50000])
        # New certificate from the other CA, same paths, then SIGHUP.
        new_cert, new_key = self.other.issue("proxy2")
        shutil.copyfile(new_cert, self.front_cert[0])
        shutil.copyfile(new_key, self.front_cert[1])
        os.chmod(self.front_cert[1], 0o600)
        p.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and "front TLS files reloaded" not in p.read_log():
            time.sleep(0.05)
        self.assertIn("front TLS files reloaded", p.read_log())
        conn.send(body[50000:])
        r = conn.getresponse()
        self.assertEqual(r.status, 201, r.read())
        conn.close()
        # New connections get the new certificate: the old CA no longer verifies it, the new one does.
        with self.assertRaises(ssl.SSLCertVerificationError):
            with socket.create_connection((u.hostname, u.port), timeout=10) as raw:
                self.ca.context().wrap_socket(raw, server_hostname="127.0.0.1")
        emulib.SSL_CONTEXT = self.other.context()
        try:
            self.assertEqual(p.webhdfs("GET", "/reload.bin", "GETFILESTATUS").status, 200)
        finally:
            emulib.SSL_CONTEXT = self.ca.context()
        # A broken file on the next SIGHUP changes nothing: the running certificate stays.
        with open(self.front_cert[1], "w") as f:
            f.write("not a key\n")
        p.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and "tls.key_file" not in p.read_log():
            time.sleep(0.05)
        self.assertIn("tls.key_file", p.read_log())
        emulib.SSL_CONTEXT = self.other.context()
        try:
            self.assertEqual(p.webhdfs("GET", "/reload.bin", "GETFILESTATUS").status, 200)
        finally:
            emulib.SSL_CONTEXT = self.ca.context()
        # Restore the original pair for the other tests of the class.
        TlsStack.front_cert = self.ca.issue("proxy")
        s.wait_applied()
        s.assert_same(self)

    def test_key_readable_by_others_stops_the_start(self):
        cert, key = self.ca.issue("loose")
        os.chmod(key, 0o644)
        cfg = os.path.join(self.dir, "loose.json")
        conf = proxylib.base_config("https://127.0.0.1:1", "adls", "https://127.0.0.1:2", os.path.join(self.dir, "sp"))
        conf["tls"] = {"cert_file": cert, "key_file": key}
        with open(cfg, "w") as f:
            json.dump(conf, f)
        r = subprocess.run([proxylib.DUALPIPE_BIN, "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        self.assertNotEqual(r.returncode, 0)
        err = r.stderr.decode()
        self.assertIn("tls.key_file", err)
        self.assertIn("0644", err)
        # cert without key: a configuration error naming the missing key.
        conf["tls"] = {"cert_file": cert}
        with open(cfg, "w") as f:
            json.dump(conf, f)
        r = subprocess.run([proxylib.DUALPIPE_BIN, "--check-config", cfg], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("tls.key_file", r.stderr.decode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
