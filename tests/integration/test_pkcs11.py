#!/usr/bin/python3
"""libvhsm-pkcs11 with real PKCS#11 clients nobody here wrote.

usage: test_pkcs11.py VHSMD VHSM SNPSIMD MODULE

vhsmd runs in a fresh temporary directory with a store sealed by snpsimd
(token objects are persistent keys); every daemon is killed in a finally
block.  The same pkcs11-tool runs go against SoftHSM2 (a throw-away token
directory) to show both tokens behave alike.  A test whose client is not
installed is skipped and names it; if every test is skipped the exit status
is 77.  `scripts/setup-deps.sh` installs all of them.
"""
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

VHSMD, VHSM, SNPSIMD, MODULE = (os.path.abspath(p) for p in sys.argv[1:5])
del sys.argv[1:5]

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
ENGINE = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"


def need(*tools):
    missing = [t for t in tools if shutil.which(t) is None and not os.path.exists(t)]
    if missing:
        raise unittest.SkipTest("not installed: " + ", ".join(missing))


class Env:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="p11-test-")
        self.sim = self.daemon = None
        self.sock = self.path("vhsmd.sock")
        with open(self.path("policy.json"), "w") as f:
            f.write('{"version":1,"rules":[{"principal":{"uid":%d},"keys":["*"],"operations":["*"]}]}'
                    % os.getuid())
        with open(self.path("vhsmd.ini"), "w") as f:
            f.write(f"""[vhsmd]
socket = {self.sock}
socket_mode = 0666
policy = {self.path("policy.json")}
state_dir = {self.path("state")}
secure_heap_size = 1048576
[sealing]
store = keys.db
snp = sim:{self.path("sim")}/snpsim.sock
fields = measurement,policy
""")
        self.sim = subprocess.Popen([SNPSIMD, "--state-dir", self.path("sim")],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.sim.stdout.readline()
            if line.startswith("snpsimd: socket"):
                break
            if line == "" and self.sim.poll() is not None:
                raise AssertionError("snpsimd did not start")
        self.log = open(self.path("vhsmd.log"), "a+")
        self.daemon = subprocess.Popen([VHSMD, "--config", self.path("vhsmd.ini")], stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.daemon.poll() is not None:
                raise AssertionError("vhsmd exited")
            if os.path.exists(self.sock):
                with socket.socket(socket.AF_UNIX) as s:
                    try:
                        s.connect(self.sock)
                        break
                    except OSError:
                        pass
            time.sleep(0.05)
        # SoftHSM2 with a throw-away token directory
        os.mkdir(self.path("softhsm"))
        with open(self.path("softhsm2.conf"), "w") as f:
            f.write(f"directories.tokendir = {self.path('softhsm')}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
        self.env = dict(os.environ, NITRIDE_VHSM_SOCKET=self.sock,
                        SOFTHSM2_CONF=self.path("softhsm2.conf"))
        # An ASan/UBSan build of the module loads only into a process that has
        # the runtimes first: preload them into the (uninstrumented) clients.
        # Their own leaks are not ours to report (tests/unit/test_pkcs11.c runs
        # the module under the leak checker).
        ldd = subprocess.run(["ldd", MODULE], capture_output=True, text=True).stdout
        rt = [ln.split("=>")[1].split()[0] for ln in ldd.splitlines()
              if ("libasan" in ln or "libubsan" in ln) and "=>" in ln]
        if rt:
            self.env["LD_PRELOAD"] = " ".join(rt)
            # pkcs11-tool 0.23 has a use-after-free of its own (--read-object of
            # an EC public key): report and continue; run() fails on any report
            # whose stack passes through this module.
            self.env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=0"
        if shutil.which("softhsm2-util"):
            self.run(["softhsm2-util", "--init-token", "--free", "--label", "soft",
                      "--so-pin", "12345678", "--pin", "1234"])

    def path(self, name):
        return os.path.join(self.dir, name)

    def run(self, cmd, check=True, input=None):
        p = subprocess.run(cmd, capture_output=True, env=self.env, cwd=self.dir, timeout=300,
                           input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd}: rc {p.returncode}\n{p.stdout.decode()}\n{p.stderr.decode()}")
        err = p.stderr.decode(errors="replace")
        for report in err.split("==ERROR: ")[1:]:  # ASan: the stack up to the first blank line
            if "libvhsm-pkcs11" in report.split("\n\n")[0] or "src/pkcs11/" in report.split("\n\n")[0]:
                raise AssertionError(f"{cmd}: ASan report in the module:\n{report[:3000]}")
        for line in err.splitlines():  # UBSan: FILE:LINE:COL: runtime error: …
            if "runtime error:" in line and "src/pkcs11/" in line:
                raise AssertionError(f"{cmd}: UBSan report in the module: {line}")
        return p

    def cleanup(self):
        for proc in (self.daemon, self.sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
        if self.sim is not None:
            self.sim.stdout.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


E = None
TOKENS = {"vhsm": (MODULE, []), "softhsm": (SOFTHSM, ["--login", "--pin", "1234"])}


def p11(module, *args):
    mod, login = TOKENS[module]
    return ["pkcs11-tool", "--module", mod, *login, *args]


class Pkcs11Tool(unittest.TestCase):
    """pkcs11-tool: the same runs against the vHSM and SoftHSM2."""

    def setUp(self):
        need("pkcs11-tool", "softhsm2-util", SOFTHSM, "openssl")

    def test_0_selftest(self):
        # before any key exists (unittest runs tests in name order)
        for tok in TOKENS:
            p = E.run(p11(tok, "--test"))
            out = p.stdout.decode() + p.stderr.decode()
            self.assertIn("No errors", out, tok)

    def test_z_selftest_with_keys(self):
        # vHSM only: SoftHSM2 2.6 fails here on its own RSA key (OAEP with SHA-256 unsupported)
        p = E.run(p11("vhsm", "--test"))
        out = p.stdout.decode() + p.stderr.decode()
        self.assertIn("No errors", out)
        self.assertIn("SHA256-RSA-PKCS: OK", out)

    def test_ec_sign_verify(self):
        msg = E.path("msg")
        data = b"a message signed by two tokens\n" * 10
        with open(msg, "wb") as f:
            f.write(data)
        with open(E.path("msg.sha256"), "wb") as f:
            f.write(hashlib.sha256(data).digest())
        SIGN_EC = {"vhsm": ["-m", "ECDSA-SHA256", "-i", msg],
                   "softhsm": ["-m", "ECDSA", "-i", E.path("msg.sha256")]}
        for tok in TOKENS:
            label = "ec-" + tok
            E.run(p11(tok, "--keypairgen", "--key-type", "EC:prime256v1", "--label", label, "--id", "0a01",
                      "--usage-sign"))
            # The vHSM hashes what it signs (CKM_ECDSA_SHA256 over the message);
            # SoftHSM2 2.6 has only CKM_ECDSA (over the digest).  Same signature.
            sig = E.path(f"{tok}.sig")
            E.run(p11(tok, "--sign", *SIGN_EC[tok], "--id", "0a01", "-o", sig,
                      "--signature-format", "openssl"))
            pub = E.path(f"{tok}.pub.der")
            E.run(p11(tok, "--read-object", "--type", "pubkey", "--id", "0a01", "-o", pub))
            # plain OpenSSL verifies with the exported public key
            E.run(["openssl", "dgst", "-sha256", "-keyform", "DER", "-verify", pub, "-signature", sig, msg])
            # and a wrong message fails
            with open(E.path("other"), "wb") as f:
                f.write(b"something else")
            p = E.run(["openssl", "dgst", "-sha256", "-keyform", "DER", "-verify", pub, "-signature", sig,
                       E.path("other")], check=False)
            self.assertNotEqual(p.returncode, 0)
            # the token verifies its own signature (raw r||s form)
            raw = E.path(f"{tok}.rawsig")
            E.run(p11(tok, "--sign", *SIGN_EC[tok], "--id", "0a01", "-o", raw))
            p = E.run(p11(tok, "--verify", *SIGN_EC[tok], "--id", "0a01", "--signature-file", raw))
            self.assertIn("Signature is valid", p.stdout.decode())

    def test_rsa_pss_and_oaep(self):
        # OAEP digests: the vHSM has SHA-256/384/512, SoftHSM2 2.6 only SHA-1.
        OAEP = {"vhsm": "sha256", "softhsm": "sha1"}
        P11HASH = {"sha256": "SHA256", "sha1": "SHA-1"}
        msg = E.path("rmsg")
        with open(msg, "wb") as f:
            f.write(b"short secret")
        for tok in TOKENS:
            label = "rsa-" + tok
            E.run(p11(tok, "--keypairgen", "--key-type", "rsa:2048", "--label", label, "--id", "0b01",
                      "--usage-sign", "--usage-decrypt"))
            pub = E.path(f"{tok}.rsapub.der")
            E.run(p11(tok, "--read-object", "--type", "pubkey", "--id", "0b01", "-o", pub))
            sig = E.path(f"{tok}.pss")
            E.run(p11(tok, "--sign", "-m", "SHA256-RSA-PKCS-PSS", "--mgf", "MGF1-SHA256",
                      "--salt-len", "32", "--id", "0b01", "-i", msg, "-o", sig))
            E.run(["openssl", "dgst", "-sha256", "-keyform", "DER", "-verify", pub, "-sigopt",
                   "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32", "-signature", sig, msg])
            # OAEP: OpenSSL encrypts with the public key, the token decrypts
            ct = E.path(f"{tok}.oaep")
            E.run(["openssl", "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", pub,
                   "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:" + OAEP[tok],
                   "-pkeyopt", "rsa_mgf1_md:" + OAEP[tok], "-in", msg, "-out", ct])
            out = E.path(f"{tok}.dec")
            E.run(p11(tok, "--decrypt", "-m", "RSA-PKCS-OAEP", "--hash-algorithm", P11HASH[OAEP[tok]],
                      "--mgf", "MGF1-" + OAEP[tok].upper(), "--id", "0b01", "-i", ct, "-o", out))
            with open(out, "rb") as f:
                self.assertEqual(f.read(), b"short secret", tok)

    def test_aes_keygen_and_objects(self):
        for tok in TOKENS:
            label = "aes-" + tok
            E.run(p11(tok, "--keygen", "--key-type", "AES:32", "--label", label))
            p = E.run(p11(tok, "--list-objects", "--type", "secrkey"))
            out = p.stdout.decode()
            self.assertIn(label, out)
            self.assertIn("never extractable", out)
            # the key value is not readable from either token
            p = E.run(p11(tok, "--read-object", "--type", "secrkey", "--label", label, "-o", E.path("k")),
                      check=False)
            self.assertNotEqual(p.returncode, 0)


class VhsmClients(unittest.TestCase):
    """GnuTLS, OpenSSH and OpenSSL (libp11) against the vHSM token."""

    @classmethod
    def setUpClass(cls):
        if shutil.which("pkcs11-tool"):
            E.run(p11("vhsm", "--keypairgen", "--key-type", "EC:prime256v1", "--label", "web",
                      "--id", "77", "--usage-sign"))
            E.run(p11("vhsm", "--keypairgen", "--key-type", "rsa:2048", "--label", "webrsa",
                      "--id", "78", "--usage-sign"))

    def test_p11tool_lists_and_exports(self):
        need("p11tool", "pkcs11-tool", "openssl")
        p = E.run(["p11tool", "--provider", MODULE, "--list-all", "pkcs11:token=vhsm0"])
        out = p.stdout.decode()
        self.assertIn("Label: web", out)
        self.assertIn("Type: Private key (EC/ECDSA-SECP256R1)", out)
        p = E.run(["p11tool", "--provider", MODULE, "--export-pubkey", "pkcs11:token=vhsm0;object=web;type=public"])
        with open(E.path("web.p11tool.pem"), "wb") as f:
            f.write(p.stdout)
        E.run(p11("vhsm", "--read-object", "--type", "pubkey", "--label", "web", "-o", E.path("web.der")))
        a = E.run(["openssl", "pkey", "-pubin", "-in", E.path("web.p11tool.pem"), "-outform", "DER"]).stdout
        with open(E.path("web.der"), "rb") as f:
            self.assertEqual(a, f.read())

    def test_p11kit_lists_module(self):
        need("p11-kit")
        home = E.path("home")
        os.makedirs(os.path.join(home, ".config", "pkcs11", "modules"), exist_ok=True)
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "pkcs11",
                           "vhsm.module")
        with open(src) as f:
            text = "".join(ln if not ln.startswith("module:") else f"module: {MODULE}\n" for ln in f)
        with open(os.path.join(home, ".config", "pkcs11", "modules", "vhsm.module"), "w") as f:
            f.write(text)
        env = dict(E.env, HOME=home)
        cmd = ["p11-kit", "list-modules"]
        if os.getuid() == 0:  # p11-kit reads no user configuration as root
            need("setpriv")
            for d in (E.dir, home, os.path.join(home, ".config"), os.path.join(home, ".config", "pkcs11"),
                      os.path.join(home, ".config", "pkcs11", "modules")):
                os.chmod(d, 0o755)
            os.chmod(os.path.join(home, ".config", "pkcs11", "modules", "vhsm.module"), 0o644)
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        p = subprocess.run(cmd, capture_output=True, env=env, timeout=60)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("vhsm:", out)
        self.assertIn("library-description: Nitride vHSM PKCS#11", out)
        self.assertIn("token: vhsm0", out)  # reached vhsmd as another user

    def test_ssh_keygen_lists_key(self):
        need("ssh-keygen", "pkcs11-tool")
        p = E.run(["ssh-keygen", "-D", MODULE])
        lines = [ln for ln in p.stdout.decode().splitlines() if ln.startswith("ecdsa-sha2-nistp256 ")]
        self.assertTrue(lines, p.stdout.decode() + p.stderr.decode())
        E.run(p11("vhsm", "--read-object", "--type", "pubkey", "--label", "web", "-o", E.path("web2.der")))
        E.run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", E.path("web2.der"),
               "-out", E.path("web2.pem")])
        ref = E.run(["ssh-keygen", "-i", "-m", "PKCS8", "-f", E.path("web2.pem")]).stdout.decode().split()[1]
        self.assertIn(ref, [ln.split()[1] for ln in lines])

    def test_openssl_engine_loads_public_key(self):
        need("openssl", ENGINE, "pkcs11-tool")
        env_conf = E.path("openssl.cnf")
        with open(env_conf, "w") as f:
            f.write(f"""openssl_conf = conf
[conf]
engines = engines
[engines]
pkcs11 = pkcs11
[pkcs11]
engine_id = pkcs11
dynamic_path = {ENGINE}
MODULE_PATH = {MODULE}
init = 0
""")
        E.env["OPENSSL_CONF"] = env_conf
        try:
            p = E.run(["openssl", "pkey", "-engine", "pkcs11", "-inform", "engine", "-pubin",
                       "-in", "pkcs11:token=vhsm0;object=web;type=public", "-pubout", "-outform", "DER"])
        finally:
            del E.env["OPENSSL_CONF"]
        E.run(p11("vhsm", "--read-object", "--type", "pubkey", "--label", "web", "-o", E.path("web3.der")))
        with open(E.path("web3.der"), "rb") as f:
            self.assertEqual(p.stdout, f.read())

    def engine_conf(self):
        conf = E.path("openssl-sign.cnf")
        with open(conf, "w") as f:
            f.write(f"""openssl_conf = conf
[conf]
engines = engines
[engines]
pkcs11 = pkcs11
[pkcs11]
engine_id = pkcs11
dynamic_path = {ENGINE}
MODULE_PATH = {MODULE}
init = 0
[req]
distinguished_name = dn
[dn]
""")
        return conf

    def engine_run(self, cmd, check=True):
        E.env["OPENSSL_CONF"] = self.engine_conf()
        try:
            return E.run(cmd, check=check)
        finally:
            del E.env["OPENSSL_CONF"]

    def pubkey(self, label):
        der = E.path(label + ".sign.pub.der")
        E.run(p11("vhsm", "--read-object", "--type", "pubkey", "--label", label, "-o", der))
        return der

    def test_openssl_engine_signs_ecdsa_digest(self):
        # libp11 signs a caller's digest with CKM_ECDSA (vhsmd's prehashed sign);
        # plain OpenSSL verifies with the exported public key.
        need("openssl", ENGINE, "pkcs11-tool")
        data = b"signed through libp11 by the vHSM\n"
        with open(E.path("e.msg"), "wb") as f:
            f.write(data)
        with open(E.path("e.dgst"), "wb") as f:
            f.write(hashlib.sha256(data).digest())
        self.engine_run(["openssl", "pkeyutl", "-engine", "pkcs11", "-keyform", "engine", "-inkey",
                         "pkcs11:token=vhsm0;object=web;type=private", "-sign", "-in", E.path("e.dgst"),
                         "-out", E.path("e.sig")])
        pub = self.pubkey("web")
        p = E.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", pub,
                   "-in", E.path("e.dgst"), "-sigfile", E.path("e.sig")])
        self.assertIn(b"Signature Verified Successfully", p.stdout)
        E.run(["openssl", "dgst", "-sha256", "-keyform", "DER", "-verify", pub, "-signature",
               E.path("e.sig"), E.path("e.msg")])
        with open(E.path("e.dgst2"), "wb") as f:
            f.write(hashlib.sha256(data + b"x").digest())
        p = E.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", pub,
                   "-in", E.path("e.dgst2"), "-sigfile", E.path("e.sig")], check=False)
        self.assertNotEqual(p.returncode, 0)
        # a SHA-1-sized digest is refused, not signed
        with open(E.path("e.short"), "wb") as f:
            f.write(hashlib.sha1(data).digest())
        p = self.engine_run(["openssl", "pkeyutl", "-engine", "pkcs11", "-keyform", "engine", "-inkey",
                             "pkcs11:token=vhsm0;object=web;type=private", "-sign", "-in",
                             E.path("e.short"), "-out", E.path("e.short.sig")], check=False)
        self.assertNotEqual(p.returncode, 0)

    def test_openssl_engine_signs_rsa(self):
        # PKCS#1 v1.5 (CKM_RSA_PKCS over the DigestInfo OpenSSL builds) and PSS
        # (CKM_RSA_PKCS_PSS over the digest), verified by plain OpenSSL.
        need("openssl", ENGINE, "pkcs11-tool")
        data = b"an RSA signature from the vHSM\n"
        with open(E.path("r.msg"), "wb") as f:
            f.write(data)
        with open(E.path("r.dgst"), "wb") as f:
            f.write(hashlib.sha256(data).digest())
        pub = self.pubkey("webrsa")
        key = "pkcs11:token=vhsm0;object=webrsa;type=private"
        self.engine_run(["openssl", "pkeyutl", "-engine", "pkcs11", "-keyform", "engine", "-inkey", key,
                         "-sign", "-pkeyopt", "digest:sha256", "-in", E.path("r.dgst"),
                         "-out", E.path("r.sig")])
        E.run(["openssl", "dgst", "-sha256", "-keyform", "DER", "-verify", pub, "-signature",
               E.path("r.sig"), E.path("r.msg")])
        with open(E.path("r.other"), "wb") as f:
            f.write(data + b"x")
        p = E.run(["openssl", "dgst", "-sha256", "-keyform", "DER", "-verify", pub, "-signature",
                   E.path("r.sig"), E.path("r.other")], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.engine_run(["openssl", "pkeyutl", "-engine", "pkcs11", "-keyform", "engine", "-inkey", key,
                         "-sign", "-pkeyopt", "digest:sha256", "-pkeyopt", "rsa_padding_mode:pss",
                         "-pkeyopt", "rsa_pss_saltlen:32", "-in", E.path("r.dgst"),
                         "-out", E.path("r.pss")])
        E.run(["openssl", "dgst", "-sha256", "-keyform", "DER", "-verify", pub, "-sigopt",
               "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32", "-signature", E.path("r.pss"),
               E.path("r.msg")])

    def test_p11tool_test_sign(self):
        # GnuTLS signs test data with the private key (CKM_ECDSA / CKM_RSA_PKCS /
        # CKM_RSA_PKCS_PSS) and verifies with the public key.
        need("p11tool", "pkcs11-tool")
        for obj in ("web", "webrsa"):
            p = E.run(["p11tool", "--provider", MODULE, "--test-sign",
                       f"pkcs11:token=vhsm0;object={obj};type=private"])
            out = p.stdout.decode() + p.stderr.decode()
            self.assertIn("Verifying against public key in the token... ok", out)
            self.assertNotIn("failed", out.lower())

    def test_nginx_tls_with_vhsm_key(self):
        # nginx (Debian 12: 1.22 on OpenSSL 3.0) loads its private key through
        # libp11's engine; curl completes a TLS handshake against the
        # self-signed certificate of the vHSM key.
        need("nginx", "curl", "openssl", ENGINE, "pkcs11-tool")
        if "LD_PRELOAD" in E.env:
            # A sanitizer build of the module inside nginx (which is not ours)
            # with the runtimes preloaded does not answer the handshake; the
            # regular build runs this test, the unit test runs the module under
            # the sanitizers.
            self.skipTest("nginx is not run with a sanitizer build of the module")
        key = "pkcs11:token=vhsm0;object=web;type=private"
        cert = E.path("nginx.crt")
        self.engine_run(["openssl", "req", "-new", "-x509", "-engine", "pkcs11", "-keyform", "engine",
                         "-key", key, "-sha256", "-days", "2", "-subj", "/CN=localhost",
                         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-out", cert])
        # the certificate holds the vHSM key
        a = E.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"]).stdout
        b = E.run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", self.pubkey("web")]).stdout
        self.assertEqual(a, b)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        root = E.path("nginx")
        os.makedirs(os.path.join(root, "html"), exist_ok=True)
        with open(os.path.join(root, "html", "index.html"), "w") as f:
            f.write("served with a vHSM key\n")
        conf = os.path.join(root, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
ssl_engine pkcs11;
env NITRIDE_VHSM_SOCKET;
env OPENSSL_CONF;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;  # 1.22's default has no TLSv1.3
        ssl_certificate {cert};
        ssl_certificate_key "engine:pkcs11:{key}";
        root {root}/html;
    }}
}}
""")
        env = dict(E.env, OPENSSL_CONF=self.engine_conf())
        ng = subprocess.Popen(["nginx", "-p", root, "-c", conf], env=env, cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 20
            while time.time() < deadline and ng.poll() is None:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            self.assertIsNone(ng.poll(), "nginx exited: " + ng.stderr.read().decode(errors="replace"))
            for tls in ("--tlsv1.3", "--tlsv1.2"):
                p = E.run(["curl", "-sS", "--max-time", "20", tls, "--cacert", cert,
                           f"https://127.0.0.1:{port}/"], check=False)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                self.assertEqual(p.stdout, b"served with a vHSM key\n")
            # a client that does not trust the certificate fails the handshake
            p = E.run(["curl", "-sS", "--max-time", "20", f"https://127.0.0.1:{port}/"], check=False)
            self.assertNotEqual(p.returncode, 0)
        finally:
            ng.send_signal(signal.SIGKILL)
            ng.wait(timeout=10)
            ng.stderr.close()

    def test_keys_persist_across_restart(self):
        need("pkcs11-tool")
        before = E.run(p11("vhsm", "--list-objects", "--type", "privkey")).stdout.decode()
        self.assertIn("label:      web", before)
        E.daemon.send_signal(signal.SIGTERM)
        E.daemon.wait(timeout=10)
        E.daemon = subprocess.Popen([VHSMD, "--config", E.path("vhsmd.ini")], stderr=E.log)
        for _ in range(300):
            if os.path.exists(E.sock):
                break
            time.sleep(0.05)
        time.sleep(0.2)
        after = E.run(p11("vhsm", "--list-objects", "--type", "privkey")).stdout.decode()
        # same labels and IDs (functions of the key name) after the restart
        self.assertEqual(sorted(before.splitlines()), sorted(after.splitlines()))



def restart_vhsmd():
    E.daemon.send_signal(signal.SIGTERM)
    E.daemon.wait(timeout=10)
    E.daemon = subprocess.Popen([VHSMD, "--config", E.path("vhsmd.ini")], stderr=E.log)
    for _ in range(300):
        if os.path.exists(E.sock):
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(E.sock)
                    return
                except OSError:
                    pass
        time.sleep(0.05)
    raise AssertionError("vhsmd did not come back")


# A PKCS#11 client through ctypes, run as its own process (so an ASan build of
# the module loads behind the preloaded runtimes): finds the private key by
# label, signs a digest with CKM_ECDSA, prints the signature, then waits for a
# line on stdin and signs again in the same session.
CTYPES_CLIENT = r"""
import ctypes as C, sys
lib = C.CDLL(sys.argv[1])
fl = C.POINTER(C.c_void_p)()
assert lib.C_GetFunctionList(C.byref(fl)) == 0
def fn(i, *args):
    return C.CFUNCTYPE(C.c_ulong, *args)(C.cast(fl, C.POINTER(C.c_void_p))[1 + i])
UL = C.c_ulong
class Attr(C.Structure):
    _fields_ = [("type", UL), ("p", C.c_void_p), ("len", UL)]
class Mech(C.Structure):
    _fields_ = [("m", UL), ("p", C.c_void_p), ("len", UL)]
assert fn(0, C.c_void_p)(None) == 0
h = UL()
assert fn(12, UL, UL, C.c_void_p, C.c_void_p, C.POINTER(UL))(0, 6, None, None, C.byref(h)) == 0
cls, label = UL(3), C.create_string_buffer(sys.argv[2].encode(), len(sys.argv[2]))
t = (Attr * 2)(Attr(0, C.cast(C.byref(cls), C.c_void_p), 8), Attr(3, C.cast(label, C.c_void_p), len(sys.argv[2])))
assert fn(26, UL, C.c_void_p, UL)(h, t, 2) == 0
key, n = UL(), UL()
assert fn(27, UL, C.POINTER(UL), UL, C.POINTER(UL))(h, C.byref(key), 1, C.byref(n)) == 0 and n.value == 1
fn(28, UL)(h)
digest = bytes.fromhex(sys.argv[3])
for round in range(2):
    m = Mech(0x1041, None, 0)
    sig, sl = C.create_string_buffer(64), UL(64)
    rv = fn(42, UL, C.POINTER(Mech), UL)(h, C.byref(m), key)
    if rv == 0:
        rv = fn(43, UL, C.c_char_p, UL, C.c_char_p, C.POINTER(UL))(h, digest, len(digest), sig, C.byref(sl))
    print("%d %s" % (rv, sig.raw[:sl.value].hex() if rv == 0 else ""), flush=True)
    if round == 0:
        sys.stdin.readline()
fn(1, C.c_void_p)(None)
"""


class VhsmObjects(unittest.TestCase):
    """Certificates beside keys, unwrapping, derivation and a vhsmd restart under a client."""

    @classmethod
    def setUpClass(cls):
        if shutil.which("pkcs11-tool"):
            E.run(p11("vhsm", "--keypairgen", "--key-type", "EC:prime256v1", "--label", "site",
                      "--id", "5a", "--usage-sign", "--usage-derive"))

    def test_certificate_beside_key(self):
        need("pkcs11-tool", "p11tool", "openssl")
        E.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-keyout", E.path("other.key"), "-subj", "/CN=site.example", "-days", "1",
               "-outform", "DER", "-out", E.path("site.der")])
        with open(E.path("site.der"), "rb") as f:
            der = f.read()
        # pkcs11-tool sends CKA_SUBJECT, CKA_ISSUER and CKA_SERIAL_NUMBER too: they must match
        E.run(p11("vhsm", "--write-object", E.path("site.der"), "--type", "cert", "--label", "site", "--id", "5a"))
        out = E.run(p11("vhsm", "--list-objects")).stdout.decode()
        self.assertIn("Certificate Object", out)
        self.assertIn("subject:    DN: CN=site.example", out)
        # GnuTLS finds the key and the certificate by label (and both by the one ID)
        out = E.run(["p11tool", "--provider", MODULE, "--list-all-certs", "pkcs11:token=vhsm0"]).stdout.decode()
        self.assertIn("Label: site", out)
        self.assertIn("ID: 5a", out)
        out = E.run(["p11tool", "--provider", MODULE, "--list-all",
                     "pkcs11:token=vhsm0;object=site"]).stdout.decode()
        for kind in ("Type: X.509 Certificate", "Type: Private key", "Type: Public key"):
            self.assertIn(kind, out)
        pem = E.run(["p11tool", "--provider", MODULE, "--export",
                     "pkcs11:token=vhsm0;object=site;type=cert"]).stdout
        got = E.run(["openssl", "x509", "-outform", "DER"], input=pem).stdout
        self.assertEqual(got, der)
        # a token object: sealed, so it is back after vhsmd restarts
        restart_vhsmd()
        out = E.run(["p11tool", "--provider", MODULE, "--list-all-certs", "pkcs11:token=vhsm0"]).stdout.decode()
        self.assertIn("Label: site", out)
        # deleted with the token's delete
        E.run(p11("vhsm", "--delete-object", "--type", "cert", "--label", "site"))
        p = E.run(["p11tool", "--provider", MODULE, "--list-all-certs", "pkcs11:token=vhsm0"], check=False)
        self.assertNotIn("Label: site", p.stdout.decode())
        self.assertIn("Type: Private key", E.run(["p11tool", "--provider", MODULE, "--list-all",
                                                  "pkcs11:token=vhsm0;object=site"]).stdout.decode())

    def test_unwrap_with_pkcs11_tool(self):
        need("pkcs11-tool")
        from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        kek, secret = os.urandom(32), os.urandom(32)
        with open(E.path("kek.bin"), "wb") as f:
            f.write(kek)
        E.run([VHSM, "--socket", E.sock, "import", "kek+id0c01", "--type", "aes256", "--in", E.path("kek.bin")])
        with open(E.path("wrapped.bin"), "wb") as f:
            f.write(aes_key_wrap_with_padding(kek, secret))  # RFC 5649, made outside the vHSM
        # pkcs11-tool 0.23 has no name for CKM_AES_KEY_WRAP_PAD: its number
        p = E.run(p11("vhsm", "--unwrap", "--mechanism", "0x210a", "--id", "0c01",
                      "--input-file", E.path("wrapped.bin"), "--key-type", "AES:32", "--label", "unwrapped"))
        self.assertIn("Key unwrapped", p.stdout.decode() + p.stderr.decode())
        # vhsmd made a new key of the blob (audit: origin 2, provisioned)
        E.log.flush()
        with open(E.path("vhsmd.log")) as f:
            made = re.findall(r"create key=(\S+) type=aes256 origin=2 persistent=1", f.read())
        self.assertEqual(len(made), 1, made)
        # it is the secret: what vhsmd encrypts with it, the secret decrypts
        with open(E.path("m.txt"), "wb") as f:
            f.write(b"unwrapped in the vHSM")
        E.run([VHSM, "--socket", E.sock, "encrypt", made[0], "--in", E.path("m.txt"), "--out", E.path("m.enc")])
        with open(E.path("m.enc"), "rb") as f:
            blob = f.read()
        self.assertEqual(AESGCM(secret).decrypt(blob[4:16], blob[16:], None), b"unwrapped in the vHSM")
        # a tampered blob is refused
        bad = bytearray(aes_key_wrap_with_padding(kek, secret))
        bad[9] ^= 1
        with open(E.path("bad.bin"), "wb") as f:
            f.write(bad)
        p = E.run(p11("vhsm", "--unwrap", "--mechanism", "0x210a", "--id", "0c01",
                      "--input-file", E.path("bad.bin"), "--key-type", "AES:32"), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("CKR_WRAPPED_KEY_INVALID", p.stderr.decode() + p.stdout.decode())
        # wrapping a vHSM key out is refused: it is not extractable
        p = E.run(p11("vhsm", "--wrap", "--mechanism", "0x210a", "--id", "0c01",
                      "--application-id", "0c01", "-o", E.path("out.bin")), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("CKR_KEY_UNEXTRACTABLE", p.stderr.decode() + p.stdout.decode())

    def test_pkcs11_tool_derive_is_refused(self):
        # pkcs11-tool --derive asks for an extractable, non-sensitive key and reads
        # CKA_VALUE: the vHSM never returns a derived secret.
        need("pkcs11-tool", "openssl")
        E.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-out", E.path("peer.pem")])
        E.run(["openssl", "pkey", "-in", E.path("peer.pem"), "-pubout", "-outform", "DER",
               "-out", E.path("peer.der")])
        p = E.run(p11("vhsm", "--derive", "-m", "ECDH1-DERIVE", "--id", "5a", "--input-file", E.path("peer.der"),
                      "--output-file", E.path("derived.bin")), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("CKR_ATTRIBUTE_VALUE_INVALID", p.stderr.decode() + p.stdout.decode())
        self.assertFalse(os.path.exists(E.path("derived.bin")) and os.path.getsize(E.path("derived.bin")) > 0)

    def test_token_key_survives_vhsmd_restart_in_one_process(self):
        need("pkcs11-tool")
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, utils
        E.run(p11("vhsm", "--read-object", "--type", "pubkey", "--label", "site", "-o", E.path("site.pub")))
        with open(E.path("site.pub"), "rb") as f:
            pub = serialization.load_der_public_key(f.read())
        digest = hashlib.sha256(b"signed across a restart").digest()
        cl = subprocess.Popen(["/usr/bin/python3", "-c", CTYPES_CLIENT, MODULE, "site", digest.hex()],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=E.env, text=True)
        try:
            sigs = [cl.stdout.readline().split()]
            restart_vhsmd()
            cl.stdin.write("go\n")
            cl.stdin.flush()
            sigs.append(cl.stdout.readline().split())
            cl.stdin.close()
            self.assertEqual(cl.wait(timeout=60), 0, cl.stderr.read())
        finally:
            if cl.poll() is None:
                cl.kill()
                cl.wait()
            cl.stdout.close()
            cl.stderr.close()
        for rv_sig in sigs:
            # CKR_OK both times: the module reconnected by itself
            self.assertEqual(rv_sig[0], "0", sigs)
            raw = bytes.fromhex(rv_sig[1])
            r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            pub.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def main():
    global E
    E = Env()
    try:
        result = unittest.main(exit=False, verbosity=2).result
    finally:
        E.cleanup()
    ran = result.testsRun - len(result.skipped)
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if ran == 0 else 0)


if __name__ == "__main__":
    main()
