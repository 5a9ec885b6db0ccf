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
