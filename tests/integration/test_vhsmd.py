#!/usr/bin/python3
"""Integration tests for vhsmd, the vhsm CLI and sealing with snpsimd.

usage: test_vhsmd.py VHSMD VHSM SNPSIMD

Everything runs in a fresh temporary directory on local Unix sockets only;
every daemon is killed in a finally block.  Must run as root (it drops to
'nobody' with setpriv to test access control from another uid).
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

VHSMD, VHSM, SNPSIMD = (os.path.abspath(p) for p in sys.argv[1:4])
del sys.argv[1:4]

NOBODY = 65534
OTHER_MEASUREMENT = "ab" * 48


def frame(op, rid, body=b"", version=1, magic=b"VHSM", reserved=0):
    return magic + struct.pack("<BBHII", version, op, reserved, rid, len(body)) + body


def tlv(tag, value):
    return struct.pack("<HI", tag, len(value)) + value


def recv_frame(s):
    hdr = b""
    while len(hdr) < 16:
        chunk = s.recv(16 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    (blen,) = struct.unpack("<I", hdr[12:16])
    body = b""
    while len(body) < blen:
        chunk = s.recv(blen - len(body))
        if not chunk:
            return None
        body += chunk
    return hdr, body


def parse_tlvs(body):
    out, off = {}, 0
    while off < len(body):
        tag, ln = struct.unpack("<HI", body[off:off + 6])
        out[tag] = body[off + 6:off + 6 + ln]
        off += 6 + ln
    return out


class Env:
    """A temp dir with snpsimd and a vhsmd configuration."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vhsmd-test-")
        os.chmod(self.dir, 0o755)  # nobody must reach the socket
        self.sim = None
        self.daemon = None
        self.sim_dir = os.path.join(self.dir, "sim")
        self.state = os.path.join(self.dir, "state")
        self.sock = os.path.join(self.dir, "vhsmd.sock")
        self.policy = os.path.join(self.dir, "policy.json")
        self.config = os.path.join(self.dir, "vhsmd.ini")
        self.exe_copy = os.path.join(self.dir, "other-vhsm")
        shutil.copy(VHSM, self.exe_copy)
        with open(self.policy, "w") as f:
            json.dump({"version": 1, "rules": [
                {"principal": {"uid": 0}, "keys": ["*"], "operations": ["*"]},
                {"principal": {"uid": NOBODY}, "keys": ["nobody/*"],
                 "operations": ["generate", "sign", "get_public", "list"]},
                {"principal": {"uid": NOBODY}, "keys": ["shared/*"], "operations": ["verify"]},
                {"principal": {"uid": NOBODY, "exe": VHSM}, "keys": ["exeonly/*"],
                 "operations": ["generate", "sign"]},
            ]}, f)
        with open(self.config, "w") as f:
            f.write(f"""[vhsmd]
socket = {self.sock}
socket_mode = 0666
policy = {self.policy}
state_dir = {self.state}
secure_heap_size = 1048576
[sealing]
store = keys.db
snp = sim:{self.sim_dir}/snpsim.sock
fields = measurement,policy
""")

    def start_sim(self, *extra):
        self.stop_sim()
        self.sim = subprocess.Popen([SNPSIMD, "--state-dir", self.sim_dir, *extra],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 120  # the first start makes RSA-4096 roots
        while time.time() < deadline:
            line = self.sim.stdout.readline()
            if line.startswith("snpsimd: socket"):
                return
            if line == "" and self.sim.poll() is not None:
                break
        raise AssertionError("snpsimd did not start")

    def stop_sim(self):
        if self.sim is not None:
            self.sim.kill()
            self.sim.wait(timeout=10)
            self.sim.stdout.close()
            self.sim = None

    def start(self, expect_ready=True):
        self.stop(sig=signal.SIGTERM)
        errlog = open(os.path.join(self.dir, "vhsmd.log"), "a+")
        self.daemon = subprocess.Popen([VHSMD, "--config", self.config], stderr=errlog)
        self.errlog = errlog
        if not expect_ready:
            return self.daemon.wait(timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.daemon.poll() is not None:
                raise AssertionError("vhsmd exited: " + self.log())
            if os.path.exists(self.sock):
                with socket.socket(socket.AF_UNIX) as s:
                    try:
                        s.connect(self.sock)
                        return None
                    except OSError:
                        pass
            time.sleep(0.05)
        raise AssertionError("vhsmd did not become ready")

    def log(self):
        with open(os.path.join(self.dir, "vhsmd.log")) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.daemon is not None:
            if self.daemon.poll() is None:
                self.daemon.send_signal(sig)
                try:
                    self.daemon.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.daemon.kill()
                    self.daemon.wait(timeout=10)
            self.daemon = None
            self.errlog.close()

    def alive(self):
        return self.daemon is not None and self.daemon.poll() is None

    def cli(self, *args, as_nobody=False, exe=None, input=None, check=None):
        cmd = [exe or VHSM, "--socket", self.sock, *args]
        env = dict(os.environ)
        if exe is not None:
            env["LD_LIBRARY_PATH"] = os.path.join(os.path.dirname(os.path.dirname(VHSM)), "src", "vhsm")
        if as_nobody:
            cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
        p = subprocess.run(cmd, input=input, capture_output=True, timeout=120, env=env, cwd=self.dir)
        if check is not None and p.returncode != check:
            raise AssertionError(f"{args}: rc {p.returncode} (wanted {check}): {p.stderr.decode()}")
        return p

    def jcli(self, *args, **kw):
        p = self.cli("--json", *args, **kw)
        return p.returncode, json.loads(p.stdout)

    def path(self, name):
        return os.path.join(self.dir, name)

    def cleanup(self):
        self.stop(sig=signal.SIGKILL)
        self.stop_sim()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def openssl_verify(pub, msg, sig, *opts):
    p = subprocess.run(["openssl", "dgst", *opts, "-verify", pub, "-signature", sig, msg],
                       capture_output=True, timeout=60)
    return p.returncode == 0


class VhsmdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (drops to nobody with setpriv)")
        cls.env = Env()
        cls.env.start_sim()
        cls.env.start()

    @classmethod
    def tearDownClass(cls):
        cls.env.cleanup()

    def setUp(self):
        if not self.env.alive():
            self.env.start()

    # -- operations through the CLI, checked with the openssl CLI ---------------

    def test_sign_every_type_verified_by_openssl(self):
        e = self.env
        msg = e.path("msg.bin")
        with open(msg, "wb") as f:
            f.write(os.urandom(1000))
        cases = [("p256", "ecdsa-der", "sha256", ["-sha256"]),
                 ("p384", "ecdsa-der", "sha384", ["-sha384"]),
                 ("rsa2048", "rsa-pss", "sha256",
                  ["-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]),
                 ("rsa3072", "rsa-pkcs1", "sha384", ["-sha384"])]
        for typ, alg, h, opts in cases:
            name = f"it/{typ}-{alg}"
            e.cli("generate", name, "--type", typ, check=0)
            e.cli("info", name, "--pubout", e.path(name.replace("/", "_") + ".pem"), "--pem", check=0)
            sig = e.path(name.replace("/", "_") + ".sig")
            e.cli("sign", name, "--in", msg, "--out", sig, "--alg", alg, "--hash", h, check=0)
            self.assertTrue(openssl_verify(e.path(name.replace("/", "_") + ".pem"), msg, sig, *opts),
                            f"openssl rejects the {typ}/{alg} signature")
            e.cli("verify", name, "--in", msg, "--sig", sig, "--alg", alg, "--hash", h, check=0)
            with open(sig, "rb") as f:
                bad = bytearray(f.read())
            bad[-1] ^= 1
            with open(sig, "wb") as f:
                f.write(bad)
            rc, j = e.jcli("verify", name, "--in", msg, "--sig", sig, "--alg", alg, "--hash", h)
            self.assertEqual(rc, 1)
            self.assertEqual(j["valid"], False)
        # Ed25519: openssl pkeyutl -rawin
        e.cli("generate", "it/ed", "--type", "ed25519", check=0)
        e.cli("info", "it/ed", "--pubout", e.path("ed.pem"), "--pem", check=0)
        e.cli("sign", "it/ed", "--in", msg, "--out", e.path("ed.sig"), check=0)
        p = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", e.path("ed.pem"),
                            "-rawin", "-in", msg, "-sigfile", e.path("ed.sig")],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_aes_gcm_hmac_random_read(self):
        e = self.env
        e.cli("generate", "it/aes", "--type", "aes256", check=0)
        pt = os.urandom(4096)
        with open(e.path("aad"), "wb") as f:
            f.write(b"tenant-42")
        p = e.cli("encrypt", "it/aes", "--aad", e.path("aad"), "--out", e.path("ct"), input=pt, check=0)
        self.assertEqual(os.path.getsize(e.path("ct")), 4096 + 32)
        p = e.cli("decrypt", "it/aes", "--aad", e.path("aad"), "--in", e.path("ct"),
                  "--out", e.path("pt"), check=0)
        with open(e.path("pt"), "rb") as f:
            self.assertEqual(f.read(), pt)
        with open(e.path("aad"), "wb") as f:
            f.write(b"tenant-43")
        p = e.cli("decrypt", "it/aes", "--aad", e.path("aad"), "--in", e.path("ct"), "--out", e.path("pt2"))
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"decryption failed", p.stderr)
        # HMAC of an imported key equals Python's hmac.
        import hmac
        key = os.urandom(32)
        e.cli("import", "it/mac", "--type", "hmac-sha256", input=key, check=0)
        rc, j = e.jcli("hmac", "it/mac", input=b"data")
        self.assertEqual(rc, 0)
        import base64
        self.assertEqual(base64.b64decode(j["data"]), hmac.new(key, b"data", "sha256").digest())
        rc, j = e.jcli("random", "48")
        self.assertEqual(len(base64.b64decode(j["data"])), 48)
        e.cli("import", "it/pass", "--type", "opaque", "--exportable", input=b"correct horse", check=0)
        e.cli("read", "it/pass", "--out", e.path("pass"), check=0)
        with open(e.path("pass"), "rb") as f:
            self.assertEqual(f.read(), b"correct horse")
        p = e.cli("read", "it/aes", "--out", e.path("x"))
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"never exportable", p.stderr)

    # -- access control -----------------------------------------------------------

    def test_other_uid_denied_and_list_filtered(self):
        e = self.env
        e.cli("generate", "root/secret", "--type", "p256", check=0)
        e.cli("generate", "shared/verify-me", "--type", "p256", check=0)
        # nobody may not use root's key, and cannot tell it from a missing one.
        p1 = e.cli("sign", "root/secret", "--out", "/dev/null", input=b"x", as_nobody=True)
        p2 = e.cli("sign", "root/missing", "--out", "/dev/null", input=b"x", as_nobody=True)
        self.assertEqual(p1.returncode, 1)
        self.assertEqual(p2.returncode, 1)
        self.assertIn(b"permission denied", p1.stderr)
        self.assertEqual(p1.stderr.replace(b"secret", b"X"), p2.stderr.replace(b"missing", b"X"))
        # a disallowed operation on a visible key
        p = e.cli("delete", "shared/verify-me", as_nobody=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"permission denied", p.stderr)
        # nobody's own namespace works
        e.cli("generate", "nobody/k", "--type", "p256", as_nobody=True, check=0)
        e.cli("sign", "nobody/k", "--out", "/dev/null", input=b"x", as_nobody=True, check=0)
        rc, j = e.jcli("list", as_nobody=True)
        names = sorted(k["name"] for k in j["keys"])
        self.assertIn("nobody/k", names)
        self.assertIn("shared/verify-me", names)
        self.assertNotIn("root/secret", names)
        self.assertIn("deny op=sign key=root/secret uid=65534", e.log())

    def test_other_executable_denied(self):
        e = self.env
        e.cli("generate", "exeonly/k", "--type", "p256", as_nobody=True, check=0)
        e.cli("sign", "exeonly/k", "--out", "/dev/null", input=b"x", as_nobody=True, check=0)
        p = e.cli("sign", "exeonly/k", "--out", "/dev/null", input=b"x", as_nobody=True, exe=e.exe_copy)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"permission denied", p.stderr)

    # -- malformed input ----------------------------------------------------------

    def raw(self, data, expect_closed=True):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(self.env.sock)
        s.sendall(data)
        if expect_closed:
            self.assertEqual(s.recv(100), b"", "connection should be closed without an answer")
        s.close()

    def test_malformed_frames_close_connection_daemon_alive(self):
        e = self.env
        ping = frame(1, 1)
        self.raw(b"GET / HTTP/1.0\r\n\r\n")
        self.raw(frame(1, 1, magic=b"VHSN"))
        self.raw(frame(1, 1, version=2))
        self.raw(frame(1, 1, reserved=1))
        self.raw(frame(99, 1))
        # oversized: the header alone is refused, no body is sent
        self.raw(b"VHSM" + struct.pack("<BBHII", 1, 7, 0, 1, 1024 * 1024 + 1))
        # TLV overrun inside a well-sized body
        self.raw(frame(7, 1, struct.pack("<HI", 1, 100) + b"abc"))
        # repeated tag
        self.raw(frame(7, 1, tlv(1, b"a") + tlv(1, b"b")))
        # truncated: half a frame, then hang up
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(e.sock)
            s.sendall(ping[:9])
        time.sleep(0.1)
        self.assertTrue(e.alive())
        e.cli("ping", check=0)

    def test_pipelined_requests_matched_by_id(self):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(self.env.sock)
        self.env.cli("generate", "it/pipe", "--type", "ed25519", check=0)
        body = tlv(1, b"it/pipe") + tlv(6, b"m")
        s.sendall(frame(7, 1001, body) + frame(15, 1002, tlv(13, struct.pack("<I", 8))) + frame(1, 1003))
        got = {}
        for _ in range(3):
            hdr, b = recv_frame(s)
            rid = struct.unpack("<I", hdr[8:12])[0]
            got[rid] = (hdr[5], parse_tlvs(b))
        s.close()
        self.assertEqual(sorted(got), [1001, 1002, 1003])
        self.assertEqual(got[1001][0], 0x87)
        self.assertEqual(len(got[1001][1][8]), 64)  # Ed25519 signature
        self.assertEqual(len(got[1002][1][6]), 8)
        self.assertEqual(got[1003][1][14], b"\0\0\0\0")

    # -- configuration --------------------------------------------------------------

    def test_config_errors_name_file_line_key(self):
        d = self.env.dir
        bad = os.path.join(d, "bad.ini")
        with open(bad, "w") as f:
            f.write("[vhsmd]\nsocket = /tmp/x.sock\n\nsocket_mode = 999\n")
        p = subprocess.run([VHSMD, "--config", bad, "--check-config"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"bad.ini:4: key 'socket_mode': invalid value '999'", p.stderr)
        pol = os.path.join(d, "bad-policy.json")
        with open(pol, "w") as f:
            json.dump({"rules": [{"principal": {"uid": 0}, "keys": ["*"], "operations": ["sing"]}]}, f)
        with open(bad, "w") as f:
            f.write(f"[vhsmd]\npolicy = {pol}\n")
        p = subprocess.run([VHSMD, "--config", bad, "--check-config"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"rules[0].operations[0]: unknown operation", p.stderr)
        p = subprocess.run([VHSMD, "--config", self.env.config, "--check-config"], capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_sighup_reloads_policy(self):
        e = self.env
        p = e.cli("generate", "hup/k", "--type", "aes256", as_nobody=True)
        self.assertEqual(p.returncode, 1)
        with open(e.policy) as f:
            original = f.read()
        pol = json.loads(original)
        pol["rules"].append({"principal": {"uid": NOBODY}, "keys": ["hup/*"], "operations": ["generate"]})
        try:
            with open(e.policy, "w") as f:
                json.dump(pol, f)
            e.daemon.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while "policy reloaded" not in e.log() and time.time() < deadline:
                time.sleep(0.05)
            e.cli("generate", "hup/k", "--type", "aes256", as_nobody=True, check=0)
            # A broken policy is refused and the previous one stays.
            with open(e.policy, "w") as f:
                f.write("{")
            e.daemon.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while "policy reload failed" not in e.log() and time.time() < deadline:
                time.sleep(0.05)
            self.assertIn("policy reload failed", e.log())
            e.cli("generate", "hup/k2", "--type", "aes256", as_nobody=True, check=0)
        finally:
            with open(e.policy, "w") as f:
                f.write(original)
            e.daemon.send_signal(signal.SIGHUP)
            time.sleep(0.2)

    # -- process protection -------------------------------------------------------

    def test_not_dumpable_no_core(self):
        pid = self.env.daemon.pid
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        if "Dumpable:" in status:
            self.assertIn("Dumpable:\t0", status)
        with open(f"/proc/{pid}/limits") as f:
            core = [line for line in f if line.startswith("Max core file size")][0]
        self.assertEqual(core.split()[4:6], ["0", "0"])
        # This kernel has no Dumpable: line; PR_SET_DUMPABLE 0 shows as /proc/PID owned by
        # root even for a process of another uid: run one as nobody and look.
        d = self.env.dir
        cfg = os.path.join(d, "nobody.ini")
        sock = os.path.join(d, "nobody-state", "nobody.sock")
        with open(cfg, "w") as f:
            f.write(f"[vhsmd]\nsocket = {sock}\npolicy = {self.env.policy}\n"
                    f"state_dir = {d}/nobody-state\nsecure_heap_size = 65536\n[sealing]\nstore = none\n")
        os.makedirs(f"{d}/nobody-state", exist_ok=True)
        os.chown(f"{d}/nobody-state", NOBODY, NOBODY)
        os.chmod(self.env.policy, 0o644)
        p = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                              VHSMD, "--config", cfg], stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 20
            while not os.path.exists(sock) and time.time() < deadline and p.poll() is None:
                time.sleep(0.05)
            self.assertIsNone(p.poll(), "vhsmd as nobody exited: %r" % (p.poll() is not None and p.stderr.read()))
            st = os.stat(f"/proc/{p.pid}/status")
            self.assertEqual(st.st_uid, 0, "a non-dumpable process's /proc entries belong to root")
            with open(f"/proc/{p.pid}/status") as f:
                self.assertIn(f"Uid:\t{NOBODY}", f.read())
        finally:
            p.kill()
            p.wait(timeout=10)
            p.stderr.close()

    def test_refuses_without_secure_heap(self):
        d = self.env.dir
        cfg = os.path.join(d, "noheap.ini")
        with open(cfg, "w") as f:
            f.write(f"[vhsmd]\nsocket = {d}/noheap.sock\npolicy = {self.env.policy}\n"
                    f"state_dir = {d}/noheap\nsecure_heap_size = 1073741824\n[sealing]\nstore = none\n")
        # 1 GiB of locked memory is more than RLIMIT_MEMLOCK allows an unprivileged user.
        p = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            "prlimit", "--memlock=65536", VHSMD, "--config", cfg],
                           capture_output=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"secure heap", p.stderr)
        with open(cfg) as f:
            text = f.read().replace("[sealing]", "allow_insecure_memory = yes\n[sealing]")
        with open(cfg, "w") as f:
            f.write(text)
        p = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            "prlimit", "--memlock=65536", VHSMD, "--config", cfg, "--check-config"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)


class SealingTest(unittest.TestCase):
    """Sealed restart, another measurement, and SIGKILL during writes."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        self.env = Env()
        self.env.start_sim()
        self.env.start()

    def tearDown(self):
        self.env.cleanup()

    def test_sealed_restart_and_other_measurement(self):
        e = self.env
        e.cli("generate", "seal/sig", "--type", "p384", "--persistent", check=0)
        e.cli("generate", "seal/aes", "--type", "aes256", "--persistent", check=0)
        e.cli("generate", "seal/vol", "--type", "p256", check=0)
        e.cli("generate", "seal/gone", "--type", "hmac-sha384", "--persistent", check=0)
        e.cli("delete", "seal/gone", check=0)
        e.cli("encrypt", "seal/aes", "--out", e.path("ct-v1"), input=b"old", check=0)
        e.cli("rotate", "seal/aes", check=0)
        e.cli("rotate", "seal/aes", check=0)
        e.cli("retire", "seal/aes", "--version", "1", check=0)
        e.cli("info", "seal/sig", "--pubout", e.path("sig1.der"), check=0)
        e.cli("encrypt", "seal/aes", "--out", e.path("ct"), input=b"survives", check=0)
        e.start()  # SIGTERM + start
        rc, j = e.jcli("list")
        names = {k["name"]: k for k in j["keys"]}
        self.assertIn("seal/sig", names)
        self.assertIn("seal/aes", names)
        self.assertNotIn("seal/vol", names, "a volatile key must not survive a restart")
        self.assertNotIn("seal/gone", names, "a deleted key must stay deleted")
        self.assertEqual(names["seal/aes"]["version"], 3)
        self.assertEqual(names["seal/aes"]["versions"], 2, "the retirement of v1 must persist")
        p = e.cli("decrypt", "seal/aes", "--in", e.path("ct-v1"), "--out", e.path("x"))
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"retired", p.stderr)
        e.cli("info", "seal/sig", "--pubout", e.path("sig2.der"), check=0)
        self.assertEqual(read_bytes(e.path("sig1.der")), read_bytes(e.path("sig2.der")))
        p = e.cli("decrypt", "seal/aes", "--in", e.path("ct"), "--out", e.path("pt"), check=0)
        self.assertEqual(read_bytes(e.path("pt")), b"survives")
        # The store's records are ciphertext: no key bytes, names in the clear only.
        e.stop()
        db = os.path.join(e.state, "keys.db")
        before = hashlib.sha256(read_bytes(db)).hexdigest()
        # Another launch measurement: refused, said so, file untouched.
        e.start_sim("--measurement", OTHER_MEASUREMENT)
        rc = e.start(expect_ready=False)
        self.assertEqual(rc, 1)
        self.assertIn("sealed store cannot be opened", e.log())
        self.assertIn("launch measurement", e.log())
        self.assertEqual(hashlib.sha256(read_bytes(db)).hexdigest(), before)
        # Back to the original measurement: everything is there.
        e.start_sim()
        e.start()
        rc, j = e.jcli("list")
        self.assertEqual(sorted(k["name"] for k in j["keys"]), ["seal/aes", "seal/sig"])

    def test_records_encrypted_and_bound_to_attributes(self):
        e = self.env
        marker = b"VERY-SECRET-MARKER-0123456789"
        e.cli("import", "seal/tok", "--type", "opaque", "--persistent", input=marker, check=0)
        e.cli("generate", "seal/ro", "--type", "p256", "--usage", "verify", "--persistent", check=0)
        e.stop()
        db = os.path.join(e.state, "keys.db")
        for f in os.listdir(e.state):
            self.assertNotIn(marker, read_bytes(os.path.join(e.state, f)), f)
        # Widen seal/ro's usages in the file: the record no longer authenticates.
        con = sqlite3.connect(db)
        (attrs,) = con.execute("SELECT attrs FROM keys WHERE name = 'seal/ro'").fetchone()
        attrs = bytearray(attrs)
        attrs[4] = 0xFF  # usages, u32le at offset 4
        con.execute("UPDATE keys SET attrs = ? WHERE name = 'seal/ro'", (bytes(attrs),))
        con.commit()
        con.close()
        rc = e.start(expect_ready=False)
        self.assertEqual(rc, 1)
        self.assertIn("record seal/ro v1 does not authenticate", e.log())

    def test_sigkill_during_writes_loses_nothing_acknowledged(self):
        e = self.env
        db = os.path.join(e.state, "keys.db")
        acked = []
        for rnd in range(3):
            stop = threading.Event()

            def writer():
                i = 0
                while not stop.is_set() and i < 20000:
                    name = f"crash/r{rnd}-{i}"
                    p = e.cli("generate", name, "--type", "p256" if i % 2 else "aes256", "--persistent")
                    if p.returncode == 0:
                        acked.append(name)
                    else:
                        break
                    i += 1

            t = threading.Thread(target=writer)
            t.start()
            time.sleep(0.3 + 0.2 * rnd)
            e.daemon.send_signal(signal.SIGKILL)
            e.daemon.wait(timeout=10)
            stop.set()
            t.join(timeout=120)
            self.assertFalse(t.is_alive())
            # The file is a consistent SQLite database ...
            con = sqlite3.connect(db)
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            con.close()
            # ... and every acknowledged key is back after a restart.
            e.start()
            rc, j = e.jcli("list")
            self.assertEqual(rc, 0, f"{j} {e.log()}")
            names = {k["name"] for k in j["keys"]}
            missing = [n for n in acked if n not in names]
            self.assertEqual(missing, [], f"round {rnd}: lost acknowledged keys")
        self.assertGreater(len(acked), 3, "the write loop made no progress")


if __name__ == "__main__":
    unittest.main(verbosity=2)
