#!/usr/bin/python3
"""Integration tests for vhsmd's TLS listener (docs/vhsm.md, "TLS listener").

usage: test_vhsmd_tls.py VHSMD VHSM

Certificates are made here with the openssl CLI (two CAs for clients and
servers, and a stranger CA); vhsmd listens on a free loopback port and on a
Unix socket in a temporary directory; every daemon is stopped in a finally
block.  Must run as root (one check drops to 'nobody' with setpriv).
"""
import hashlib
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simtest import closed_port, recv_frame, stop, tlvs  # noqa: E402

VHSMD, VHSM = (os.path.abspath(p) for p in sys.argv[1:3])
del sys.argv[1:3]

NOBODY = 65534
APP_SUBJECT = "CN=app,O=Example\\, Inc."  # RFC 2253: the comma in O is escaped
T_STATUS, T_DATA, T_NAME, T_SIGNATURE = 14, 6, 1, 8


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, timeout=60, **kw)


def frame(op, rid, body=b""):
    return b"VHSM" + struct.pack("<BBHII", 1, op, 0, rid, len(body)) + body


def tlv(tag, value):
    return struct.pack("<HI", tag, len(value)) + value


class Pki:
    """CAs and certificates in dir, by the openssl CLI."""

    def __init__(self, d):
        self.d = d

    def path(self, name):
        return os.path.join(self.d, name)

    def key(self, name):
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", self.path(name + ".key"))
        return self.path(name + ".key")

    def ca(self, name, subj):
        self.key(name)
        run("openssl", "req", "-x509", "-new", "-key", self.path(name + ".key"), "-subj", subj,
            "-days", "2", "-out", self.path(name + ".pem"),
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return self.path(name + ".pem")

    def leaf(self, name, subj, ca, ext):
        self.key(name)
        extfile = self.path(name + ".ext")
        with open(extfile, "w") as f:
            f.write(ext)
        run("openssl", "req", "-new", "-key", self.path(name + ".key"), "-subj", subj,
            "-out", self.path(name + ".csr"))
        run("openssl", "x509", "-req", "-in", self.path(name + ".csr"), "-CA", self.path(ca + ".pem"),
            "-CAkey", self.path(ca + ".key"), "-CAcreateserial", "-days", "2",
            "-extfile", extfile, "-out", self.path(name + ".pem"))
        return self.path(name + ".pem")

    def subject(self, name):
        out = run("openssl", "x509", "-in", self.path(name + ".pem"), "-noout", "-subject",
                  "-nameopt", "RFC2253").stdout.decode().strip()
        assert out.startswith("subject="), out
        return out[len("subject="):]

    def sha256(self, name):
        der = run("openssl", "x509", "-in", self.path(name + ".pem"), "-outform", "DER").stdout
        return hashlib.sha256(der).hexdigest()

    def openssl_fingerprint(self, name):
        out = run("openssl", "x509", "-in", self.path(name + ".pem"), "-noout", "-fingerprint",
                  "-sha256").stdout.decode().strip()
        return out.split("=", 1)[1]


CLIENT_EXT = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
SERVER_EXT = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
              "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n")


class Env:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vhsmd-tls-")
        os.chmod(self.dir, 0o755)
        self.pki = Pki(self.dir)
        p = self.pki
        p.ca("clientca", "/CN=vhsm client CA")
        p.ca("serverca", "/CN=vhsm server CA")
        p.ca("strangerca", "/CN=stranger CA")
        p.leaf("server", "/CN=vhsmd", "serverca", SERVER_EXT)
        p.leaf("server-other", "/CN=vhsmd", "serverca", SERVER_EXT.replace(
            "IP:127.0.0.1,IP:::1,DNS:localhost", "DNS:vhsmd.example"))
        p.leaf("app", "/O=Example, Inc./CN=app", "clientca", CLIENT_EXT)
        p.leaf("app2", "/CN=app2", "clientca", CLIENT_EXT)
        p.leaf("nobodycert", "/CN=nobody-in-particular", "clientca", CLIENT_EXT)
        # Signed by a CA vhsmd does not take client certificates from:
        p.leaf("foreign", "/O=Example, Inc./CN=app", "strangerca", CLIENT_EXT)
        p.leaf("servercasigned", "/O=Example, Inc./CN=app", "serverca", CLIENT_EXT)
        # From the right CA but for servers only (extendedKeyUsage serverAuth):
        p.leaf("serveronly", "/O=Example, Inc./CN=app", "clientca",
               CLIENT_EXT.replace("clientAuth", "serverAuth"))
        self.sock = os.path.join(self.dir, "vhsmd.sock")
        self.policy = os.path.join(self.dir, "policy.json")
        self.config = os.path.join(self.dir, "vhsmd.ini")
        self.port = closed_port()
        self.addr = f"127.0.0.1:{self.port}"
        with open(self.policy, "w") as f:
            json.dump({"version": 1, "rules": [
                {"principal": {"uid": 0}, "keys": ["*"], "operations": ["*"]},
                {"principal": {}, "keys": ["open/*"], "operations": ["sign", "get_public"]},
                {"principal": {"tls_subject": p.subject("app")}, "keys": ["tls/*"],
                 "operations": ["generate", "sign", "get_public", "encrypt", "decrypt", "list"]},
                {"principal": {"tls_sha256": p.openssl_fingerprint("app2")}, "keys": ["fp/*"],
                 "operations": ["generate", "sign"]},
            ]}, f)
        self.write_config()
        self.daemon = None
        self.errlog = None

    def write_config(self, tls_extra="", server="server"):
        with open(self.config, "w") as f:
            f.write(f"""[vhsmd]
socket = {self.sock}
socket_mode = 0666
policy = {self.policy}
state_dir = {self.dir}/state
secure_heap_size = 1048576
[sealing]
store = none
[tls]
listen = {self.addr}
certificate = {self.pki.path(server + '.pem')}
private_key = {self.pki.path(server + '.key')}
client_ca = {self.pki.path('clientca.pem')}
{tls_extra}""")

    def start(self):
        self.stop()
        self.errlog = open(os.path.join(self.dir, "vhsmd.log"), "a+")
        seen = len(self.log())
        self.daemon = subprocess.Popen([VHSMD, "--config", self.config], stderr=self.errlog)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise AssertionError("vhsmd exited: " + self.log())
            if "ready:" in self.log()[seen:]:
                return
            time.sleep(0.05)
        raise AssertionError("vhsmd did not become ready: " + self.log())

    def stop(self):
        if self.daemon is not None:
            stop(self.daemon)
            self.daemon = None
        if self.errlog is not None:
            self.errlog.close()
            self.errlog = None

    def log(self):
        try:
            with open(os.path.join(self.dir, "vhsmd.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.daemon is not None and self.daemon.poll() is None

    def tls_cli(self, cert, *args, addr=None, ca="serverca", input=None, env=None):
        pki = self.pki
        cmd = [VHSM, "--connect", addr or self.addr, "--cert", pki.path(cert + ".pem"),
               "--key", pki.path(cert + ".key"), "--ca", pki.path(ca + ".pem"), *args]
        return subprocess.run(cmd, input=input, capture_output=True, timeout=120, cwd=self.dir,
                              env=env)

    def unix_cli(self, *args, as_nobody=False):
        cmd = [VHSM, "--socket", self.sock, *args]
        if as_nobody:
            cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
        return subprocess.run(cmd, capture_output=True, timeout=120, cwd=self.dir)

    def ssl_context(self, cert="app"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.pki.path("serverca.pem"))
        if cert is not None:
            ctx.load_cert_chain(self.pki.path(cert + ".pem"), self.pki.path(cert + ".key"))
        return ctx

    def tls_socket(self, cert="app"):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        return self.ssl_context(cert).wrap_socket(raw, server_hostname="127.0.0.1")

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def closed_by_peer(s):
    """True if the peer closes s (TLS alert or EOF) before answering anything."""
    try:
        return s.recv(100) == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (drops to nobody with setpriv)")
        cls.env = Env()
        try:
            cls.env.start()
        except Exception:
            cls.env.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.cleanup()

    def setUp(self):
        if not self.env.alive():
            self.env.start()

    def assert_ping(self):
        self.assertTrue(self.env.alive(), self.env.log())
        p = self.env.tls_cli("app", "ping")
        self.assertEqual(p.returncode, 0, p.stderr)

    # -- allowed callers ------------------------------------------------------------

    def test_subject_is_rfc2253_as_openssl_prints_it(self):
        self.assertEqual(self.env.pki.subject("app"), APP_SUBJECT)

    def test_allowed_subject_signs_verified_by_openssl(self):
        e = self.env
        msg, sig, pub = (os.path.join(e.dir, n) for n in ("m.bin", "m.sig", "pub.pem"))
        with open(msg, "wb") as f:
            f.write(b"signed over TLS")
        p = e.tls_cli("app", "generate", "tls/sign", "--type", "p256")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = e.tls_cli("app", "sign", "tls/sign", "--in", msg, "--out", sig)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = e.tls_cli("app", "info", "tls/sign", "--pubout", pub, "--pem")
        self.assertEqual(p.returncode, 0, p.stderr)
        v = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", sig, msg],
                           capture_output=True, timeout=60)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        # The audit line names the certificate, not a uid.
        log = e.log()
        line = [ln for ln in log.splitlines() if "create key=tls/sign" in ln][0]
        self.assertIn(f"tls_sha256={e.pki.sha256('app')}", line)
        self.assertIn(f'tls_subject="{APP_SUBJECT}"', line)
        self.assertNotIn("uid=", line)

    def test_server_name_checked_by_dns_name_and_env_vars(self):
        e = self.env
        env = dict(os.environ, VHSM_CONNECT=f"localhost:{e.port}",
                   VHSM_TLS_CERT=e.pki.path("app.pem"), VHSM_TLS_KEY=e.pki.path("app.key"),
                   VHSM_TLS_CA=e.pki.path("serverca.pem"))
        p = subprocess.run([VHSM, "ping"], env=env, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        # A server certificate from a CA the client does not trust is refused too.
        p = e.tls_cli("app", "ping", ca="clientca")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"TLS handshake", p.stderr)
        self.assertIn(b"certificate", p.stderr)

    def test_server_certificate_must_name_the_address(self):
        e = self.env
        e.write_config(server="server-other")  # only DNS:vhsmd.example
        e.start()
        try:
            for host in ("127.0.0.1", "localhost"):
                p = e.tls_cli("app", "ping", addr=f"{host}:{e.port}")
                self.assertEqual(p.returncode, 2, host)
                self.assertIn(b"mismatch", p.stderr, host)
        finally:
            e.write_config()
            e.start()
        self.assert_ping()

    def test_fingerprint_rule(self):
        e = self.env
        p = e.tls_cli("app2", "generate", "fp/k", "--type", "ed25519")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = e.tls_cli("app2", "sign", "fp/k", input=b"x")
        self.assertEqual(p.returncode, 0, p.stderr)
        # app2's rule is by fingerprint only; app (another certificate) gets nothing from it
        p = e.tls_cli("app", "sign", "fp/k", input=b"x")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"permission denied", p.stderr)

    def test_large_frames_and_pipelining_over_tls(self):
        e = self.env
        self.assertEqual(e.tls_cli("app", "generate", "tls/aes", "--type", "aes256").returncode, 0)
        plain = os.urandom(900 * 1024)  # many TLS records each way
        src, enc, dec = (os.path.join(e.dir, n) for n in ("big.bin", "big.enc", "big.dec"))
        with open(src, "wb") as f:
            f.write(plain)
        p = e.tls_cli("app", "encrypt", "tls/aes", "--in", src, "--out", enc)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = e.tls_cli("app", "decrypt", "tls/aes", "--in", enc, "--out", dec)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(dec, "rb") as f:
            self.assertEqual(f.read(), plain)
        # Several frames in one write: every answer comes back, matched by id.
        with e.tls_socket() as s:
            s.sendall(frame(1, 11) + frame(1, 12) + frame(7, 13, tlv(T_NAME, b"tls/aes") + tlv(T_DATA, b"m"))
                      + frame(1, 14))
            ids = {}
            for _ in range(4):
                f = recv_frame(s)
                self.assertIsNotNone(f)
                ids[struct.unpack("<I", f[8:12])[0]] = dict(tlvs(f[16:]))
        self.assertEqual(sorted(ids), [11, 12, 13, 14])
        self.assertEqual(ids[11][T_STATUS], b"\0\0\0\0")
        # sign with an AES key: a usage error, answered, connection kept
        self.assertNotEqual(ids[13][T_STATUS], b"\0\0\0\0")

    # -- refusals -------------------------------------------------------------------

    def test_certificate_from_another_ca_refused_at_handshake(self):
        e = self.env
        for cert in ("foreign", "servercasigned", "serveronly"):  # same subject as the allowed one
            p = e.tls_cli(cert, "ping")
            self.assertEqual(p.returncode, 2, p.stderr)
            # the server's alert ("unknown ca"), unless a reset overtook it
            self.assertIn(b"connection to vhsmd failed: TLS: ", p.stderr)
            with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                with e.tls_socket(cert) as s:
                    # TLS 1.3: the client may finish first; the server's alert comes on read
                    s.sendall(frame(1, 1))
                    if s.recv(100) == b"":
                        raise ConnectionResetError("closed")
        refused = [ln for ln in e.log().splitlines() if "TLS handshake with 127.0.0.1:" in ln]
        self.assertTrue(any("unable to get local issuer certificate" in ln for ln in refused), refused)
        self.assertTrue(any("unsuitable certificate purpose" in ln for ln in refused), refused)
        for cert in ("foreign", "servercasigned", "serveronly"):  # never admitted as a caller
            self.assertNotIn(e.pki.sha256(cert), e.log())
        self.assert_ping()

    def test_client_without_certificate_refused(self):
        e = self.env
        with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with e.tls_socket(cert=None) as s:
                s.sendall(frame(1, 1))
                if s.recv(100) == b"":
                    raise ConnectionResetError("closed")
        self.assert_ping()

    def test_unlisted_certificate_gets_policy_denial(self):
        e = self.env
        p = e.tls_cli("nobodycert", "generate", "tls/x", "--type", "p256")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"permission denied", p.stderr)
        self.assertIn(e.pki.sha256("nobodycert").encode(), p.stderr)
        deny = [ln for ln in e.log().splitlines() if "deny op=generate key=tls/x" in ln]
        self.assertEqual(len(deny), 1, e.log())
        self.assertIn(f"tls_sha256={e.pki.sha256('nobodycert')}", deny[0])
        self.assertIn('tls_subject="CN=nobody-in-particular"', deny[0])
        self.assert_ping()

    def test_local_rules_do_not_grant_tls_and_tls_rules_not_local(self):
        e = self.env
        p = e.unix_cli("generate", "open/k", "--type", "p256")
        self.assertEqual(p.returncode, 0, p.stderr)
        # uid 0 has "*" and {} grants every local caller open/*: neither is a TLS grant.
        for key in ("open/k", "tls/sign-root"):
            p = e.tls_cli("nobodycert", "sign", key, input=b"x")
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b"permission denied", p.stderr)
        # ... while a local caller does get open/* from {}:
        p = e.unix_cli("sign", "open/k", "--in", "/dev/null", as_nobody=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        # The TLS rule for tls/* is no grant to a local caller (nobody has no local rule on it).
        e.unix_cli("generate", "tls/local", "--type", "p256")
        p = e.unix_cli("sign", "tls/local", "--in", "/dev/null", as_nobody=True)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"permission denied", p.stderr)

    def test_malformed_frames_over_tls_close_connection(self):
        e = self.env
        bad = [b"GET / HTTP/1.0\r\n\r\n", b"VHSN" + frame(1, 1)[4:],
               b"VHSM" + struct.pack("<BBHII", 1, 7, 0, 1, 1024 * 1024 + 1),
               frame(7, 1, struct.pack("<HI", 1, 100) + b"abc")]
        for data in bad:
            with e.tls_socket() as s:
                s.sendall(data)
                self.assertTrue(closed_by_peer(s), data)
        self.assertIn("malformed frame", e.log())
        self.assert_ping()

    # -- a silent peer ----------------------------------------------------------------

    def test_silent_peers_do_not_block_and_are_dropped(self):
        e = self.env
        e.write_config("handshake_timeout_ms = 300\nmax_connections = 2\n")
        e.start()
        try:
            silent = [socket.create_connection(("127.0.0.1", e.port), timeout=30) for _ in range(2)]
            half = socket.create_connection(("127.0.0.1", e.port), timeout=30)
            half.sendall(b"\x16\x03\x01\x02\x00")  # the start of a ClientHello, then nothing
            try:
                # Both TLS slots are taken; local callers have their own and are served.
                p = e.unix_cli("ping")
                self.assertEqual(p.returncode, 0, p.stderr)
                # The daemon drops handshakes that do not finish in time ...
                for s in silent:
                    self.assertEqual(s.recv(10), b"")
                # ... and serves TLS callers again.
                deadline = time.monotonic() + 30
                while True:
                    p = e.tls_cli("app", "ping")
                    if p.returncode == 0 or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn("TLS handshake with 127.0.0.1:", e.log())
                self.assertIn("timed out", e.log())
            finally:
                for s in silent + [half]:
                    s.close()
        finally:
            e.write_config()
            e.start()

    def test_established_idle_connection_does_not_block_others(self):
        e = self.env
        with e.tls_socket() as idle:
            idle.sendall(frame(1, 5)[:10])  # half a frame, then silence
            p = e.tls_cli("app", "ping")
            self.assertEqual(p.returncode, 0, p.stderr)
            p = e.unix_cli("ping")
            self.assertEqual(p.returncode, 0, p.stderr)

    # -- configuration ----------------------------------------------------------------

    def check(self, text):
        path = os.path.join(self.env.dir, "check.ini")
        with open(path, "w") as f:
            f.write(f"[vhsmd]\npolicy = {self.env.policy}\n" + text)
        return subprocess.run([VHSMD, "--config", path, "--check-config"], capture_output=True,
                              timeout=30)

    def test_config_checked(self):
        pki = self.env.pki
        good = (f"[tls]\nlisten = [::1]:7443\ncertificate = {pki.path('server.pem')}\n"
                f"private_key = {pki.path('server.key')}\nclient_ca = {pki.path('clientca.pem')}\n")
        p = self.check(good)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.check(good + "min_protocol = TLSv1.3\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        cases = [
            (good + "min_protocol = TLSv1.1\n", b"key 'min_protocol': invalid value"),
            (good.replace("[::1]:7443", "localhost:7443"), b"key 'listen': invalid value"),
            (good.replace("[::1]:7443", "127.0.0.1:0"), b"key 'listen': invalid value"),
            (good + "verify = none\n", b"unknown key 'verify' in [tls]"),
            (good.replace(f"client_ca = {pki.path('clientca.pem')}\n", ""), b"'client_ca' is required"),
            ("[tls]\ncertificate = /x.pem\n", b"'listen' is required"),
            (good.replace(pki.path("server.key"), pki.path("app.key")), b"does not belong to certificate"),
            (good.replace(pki.path("server.pem"), "/nonexistent.pem"), b"certificate /nonexistent.pem"),
            (good.replace(pki.path("clientca.pem"), pki.path("server.key")), b"client_ca"),
            (good + "handshake_timeout_ms = 5\n", b"handshake_timeout_ms"),
        ]
        for text, want in cases:
            p = self.check(text)
            self.assertEqual(p.returncode, 2, text)
            self.assertIn(want, p.stderr, text)

    def test_policy_checks_tls_fields(self):
        pol = os.path.join(self.env.dir, "bad-policy.json")
        cases = [
            ({"tls_sha256": "00"}, b"tls_sha256: expected 64 hex digits"),
            ({"tls_subject": "CN=x", "uid": 0}, b"cannot be combined"),
            ({"tls_subject": ""}, b"tls_subject"),
        ]
        for prin, want in cases:
            with open(pol, "w") as f:
                json.dump({"rules": [{"principal": prin, "keys": ["*"], "operations": ["sign"]}]}, f)
            path = os.path.join(self.env.dir, "check-policy.ini")
            with open(path, "w") as f:
                f.write(f"[vhsmd]\npolicy = {pol}\n")
            p = subprocess.run([VHSMD, "--config", path, "--check-config"], capture_output=True,
                               timeout=30)
            self.assertEqual(p.returncode, 2, prin)
            self.assertIn(want, p.stderr, prin)


class Ipv6Test(unittest.TestCase):
    def test_ipv6_listener(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root")
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
                port = s.getsockname()[1]
        except OSError:
            raise unittest.SkipTest("no IPv6 loopback")
        e = Env()
        try:
            e.addr = f"[::1]:{port}"
            e.write_config()
            e.start()
            p = e.tls_cli("app", "ping")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("TLS connection from [::1]:", e.log())
        finally:
            e.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
