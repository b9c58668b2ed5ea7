"""tlslib: throwaway certificate authorities for the TLS tests, made with the openssl command line.

Pki(dir) makes a CA (name, key, self-signed certificate) in dir; pki.issue(name) signs a server (or
client) certificate for 127.0.0.1 and localhost, valid now or, with expired=True, valid only in 2020
(`openssl ca` with explicit start and end dates, the one way openssl 3.0's command line backdates).
Keys are written 0600. Everything lives under the directory the caller owns and removes.
"""
import os
import ssl
import subprocess

OPENSSL = "openssl"

CA_CONF = """
[ ca ]
default_ca = dp
[ dp ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[ any ]
commonName = supplied
"""


def run(*args, cwd=None):
    p = subprocess.run([OPENSSL] + list(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p.stdout


class Pki:
    def __init__(self, directory, name="dualpipe test CA"):
        self.dir = directory
        os.makedirs(os.path.join(directory, "newcerts"), exist_ok=True)
        open(os.path.join(directory, "index.txt"), "w").close()
        with open(os.path.join(directory, "serial"), "w") as f:
            f.write("1000\n")
        self.conf = os.path.join(directory, "ca.cnf")
        with open(self.conf, "w") as f:
            f.write(CA_CONF.format(dir=directory))
        self.key = os.path.join(directory, "ca.key")
        self.cert = os.path.join(directory, "ca.pem")
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key,
            "-out", self.cert, "-days", "2", "-subj", "/CN=" + name,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        os.chmod(self.key, 0o600)

    def issue(self, name, expired=False, client=False):
        """(cert_path, key_path) of a new certificate signed by this CA."""
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        usage = "clientAuth" if client else "serverAuth"
        run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-out", csr, "-subj", "/CN=" + name,
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-addext", "extendedKeyUsage=" + usage)
        os.chmod(key, 0o600)
        dates = ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"] if expired else ["-days", "2"]
        run("ca", "-batch", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key, "-in", csr, "-out", cert,
            "-notext", *dates)
        os.unlink(csr)
        return cert, key

    def context(self, client_cert=None):
        """An ssl client context trusting only this CA (optionally presenting a client certificate)."""
        ctx = ssl.create_default_context(cafile=self.cert)
        if client_cert:
            ctx.load_cert_chain(*client_cert)
        return ctx
