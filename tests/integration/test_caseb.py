#!/usr/bin/python3
"""Case B end to end, as far as the services go: a measured (simulated) VM
gets its secret, a VM whose kernel command line changed does not.

  snpsimd (measured boot) -> nitrided: challenge -> report -> attestd: token
  -> provd: release -> JWE for the transfer key (decrypted here with jwcrypto,
  an independent JOSE implementation, standing in for the vHSM)

Usage: test_caseb.py SNPSIMD ATTESTD PROVD NITRIDED NITRIDE
"""
import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import services  # noqa: E402
from simtest import Snpsimd, closed_port, stop  # noqa: E402

try:
    from jwcrypto import jwe, jwk
except ImportError:
    print("SKIP: python3-jwcrypto is not installed (run with /usr/bin/python3)")
    sys.exit(77)

SNPSIMD, ATTESTD, PROVD, NITRIDED, NITRIDE = sys.argv[1:6]
ISSUER = "https://attestd.caseb.test"
failures = []


def check(cond, msg):
    print(("ok " if cond else "FAIL: ") + msg)
    if not cond:
        failures.append(msg)


def fresh_nonce():
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


class FakeAS(http.server.BaseHTTPRequestHandler):
    """A scripted attestation service: answer(path) gives (status, content
    type, body), or None to hang up; every path asked is recorded in the
    subclass's `paths`."""
    paths = []

    def answer(self, path):
        raise NotImplementedError

    def do_POST(self):
        type(self).paths.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        got = self.answer(self.path)
        if got is None:  # hang up without an answer
            self.close_connection = True
            return
        status, ctype, body = got
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


class BadNonceAS(FakeAS):
    """Its challenge carries a nonce of the right length with a quote in it
    (it would break out of the attest request's JSON)."""
    paths = []

    def answer(self, path):
        return 200, "application/json", {"nonce": 'A",' + "A" * 40}


class ListAS(FakeAS):
    """Its challenge answers a request for one nonce with a list of two (more
    than asked for)."""
    paths = []

    def answer(self, path):
        two = [fresh_nonce(), fresh_nonce()]
        return 200, "application/json", {"nonce": two[0], "nonces": two}


class BusyAS(FakeAS):
    """It gives nonces but answers every attest 503."""
    paths = []

    def answer(self, path):
        if path == "/v1/challenge":
            return 200, "application/json", {"nonce": fresh_nonce()}
        return 503, "application/problem+json", {
            "type": "about:blank", "title": "Busy", "status": 503,
            "detail": "busy-for-the-test", "check": "unavailable"}


class HangUpAS(FakeAS):
    """It gives nonces but hangs up on every attest (a transport failure)."""
    paths = []

    def answer(self, path):
        if path == "/v1/challenge":
            return 200, "application/json", {"nonce": fresh_nonce()}
        return None


def provision(vm, pub, out, aurl, purl, extra=()):
    return subprocess.run([NITRIDED, "--once", "--provision", "root-disk", "--tee-pubkey", pub,
                           "--out", out, "--attestd", aurl, "--provd", purl,
                           "--snp", "sim:" + vm.socket] + list(extra),
                          capture_output=True, text=True, timeout=120)


def main():
    vec = os.environ.get("NITRIDE_VECTORS") or os.environ.get("NITRIDE_VECTORS_DEFAULT", "")
    m = os.path.join(vec, "measure")
    if not os.path.isdir(m):
        print(f"SKIP: measurement vectors not found at {vec!r}")
        return 77
    ovmf = os.path.join(m, "fixtures", "ovmf_AmdSev_suffix.bin")
    kernel = os.path.join(m, "inputs", "kernel.bin")
    initrd = os.path.join(m, "inputs", "initrd.bin")
    good_append = "console=ttyS0 root=/dev/vda1"
    boot = ["--boot-ovmf", ovmf, "--boot-kernel", kernel, "--boot-initrd", initrd,
            "--boot-vcpus", "2"]
    tmp = tempfile.mkdtemp(prefix="caseb-")
    procs = []
    try:
        # The operator computes the expected measurement from the images.
        r = subprocess.run([NITRIDE, "measure", "--mode", "snp", "--vcpus", "2", "--vcpu-type",
                            "EPYC-v4", "--ovmf", ovmf, "--kernel", kernel, "--initrd", initrd,
                            "--append", good_append], capture_output=True, text=True, timeout=60)
        measurement = r.stdout.strip()
        check(r.returncode == 0 and len(measurement) == 96, "nitride measure: " + measurement)

        # One simulated chip (one state directory), booted twice below.
        state = os.path.join(tmp, "chip")
        roots = os.path.join(tmp, "roots")
        subprocess.run([SNPSIMD, "--state-dir", state, "--export-roots", roots], check=True,
                       capture_output=True, timeout=120)
        attestd, aurl, provd, purl, secret = services.start_caseb(
            ATTESTD, PROVD, NITRIDE, tmp, roots, measurement, ISSUER)
        procs += [attestd, provd]

        # The vHSM's transfer key: only its public half leaves.
        tkey = jwk.JWK.generate(kty="EC", crv="P-256")
        pub = os.path.join(tmp, "transfer.pub.jwk")
        with open(pub, "w") as f:
            f.write(tkey.export_public())
        out = os.path.join(tmp, "root-disk.jwe")
        out2 = os.path.join(tmp, "refused.jwe")
        cfg = os.path.join(tmp, "nitrided.ini")
        with open(cfg, "w") as f:
            f.write("[nitrided]\nattempts = 2\nbackoff_ms = 50\ntimeout_ms = 2000\n")

        with Snpsimd(SNPSIMD, boot + ["--boot-append", good_append], state_dir=state) as vm:
            r = provision(vm, pub, out, aurl, purl)
            check(r.returncode == 0, "measured VM provisioned: " + r.stderr.strip())
            if r.returncode == 0:
                check(os.stat(out).st_mode & 0o777 == 0o600, "JWE written 0600")
                text = open(out).read()
                token = jwe.JWE()
                token.deserialize(text, key=tkey)
                payload = json.loads(token.payload)
                got = base64.b64decode(payload["value"]) if "value" in payload else \
                    base64.urlsafe_b64decode(payload["key"] + "==")
                check(got == secret, "the transfer key's holder decrypts the secret")
                try:
                    jwe.JWE().deserialize(text, key=jwk.JWK.generate(kty="EC", crv="P-256"))
                    check(False, "another key must not decrypt the JWE")
                except Exception:
                    check(True, "another key cannot decrypt the JWE")
            # The Provisioning Service down: bounded retries, then a clear error.
            r = provision(vm, pub, out2, aurl, f"http://127.0.0.1:{closed_port()}",
                          ["--config", cfg])
            check(r.returncode == 1 and "provisioning service unreachable" in r.stderr
                  and not os.path.exists(out2), "provd down: " + r.stderr.strip())
            # A transfer key with its private half is refused before any request.
            priv = os.path.join(tmp, "transfer.priv.jwk")
            with open(priv, "w") as f:
                f.write(tkey.export_private())
            r = provision(vm, priv, out2, aurl, purl)
            check(r.returncode == 2 and "public" in r.stderr, "private transfer key refused")
            # A nonce that is not base64url is refused at the challenge: no
            # report is asked for it and no attest request is built with it.
            def against(fake):
                """nitrided --once with `fake` as its attestation service."""
                srv = http.server.HTTPServer(("127.0.0.1", 0), fake)
                threading.Thread(target=srv.serve_forever, daemon=True).start()
                try:
                    return provision(vm, pub, out2, f"http://127.0.0.1:{srv.server_address[1]}",
                                     purl, ["--config", cfg])
                finally:
                    srv.shutdown()

            r = against(BadNonceAS)
            check(r.returncode == 1 and "no challenge" in r.stderr and not os.path.exists(out2)
                  and BadNonceAS.paths == ["/v1/challenge"],
                  f"nonce outside base64url refused: {r.stderr.strip()} {BadNonceAS.paths}")
            # More nonces than asked for: refused at the challenge.
            r = against(ListAS)
            check(r.returncode == 1 and "no challenge" in r.stderr and "nonces" in r.stderr
                  and not os.path.exists(out2) and ListAS.paths == ["/v1/challenge"],
                  f"a challenge with more nonces than asked for refused: {r.stderr.strip()}")
            # attestd spends the nonce on every answer: a 503 to an attest is
            # not repeated with the same body, the flow runs again from a new
            # challenge (attempts = 2), and the last reason is reported.
            want = ["/v1/challenge", "/v1/attest"] * 2
            r = against(BusyAS)
            check(r.returncode == 1 and "busy-for-the-test" in r.stderr
                  and not os.path.exists(out2) and BusyAS.paths == want,
                  f"attest 503: a new challenge per attempt: {r.stderr.strip()} {BusyAS.paths}")
            # The same after a transport failure: no answer at all to the attest.
            r = against(HangUpAS)
            check(r.returncode == 1 and "unreachable" in r.stderr
                  and not os.path.exists(out2) and HangUpAS.paths == want,
                  f"attest hung up: a new challenge per attempt: {r.stderr.strip()} "
                  f"{HangUpAS.paths}")

        with Snpsimd(SNPSIMD, boot + ["--boot-append", good_append + " init=/bin/sh"],
                     state_dir=state) as vm:
            r = provision(vm, pub, out2, aurl, purl)
            check(r.returncode == 1 and "measurement not allowed" in r.stderr and not os.path.exists(out2),
                  "changed kernel command line refused: " + r.stderr.strip())

        r = subprocess.run([NITRIDED, "--config", cfg, "--check-config"], capture_output=True,
                           text=True, timeout=30)
        check(r.returncode == 0, "nitrided --check-config")
        # cert_table takes exactly its two values.
        for value, good_value in (("always", True), ("until-accepted", True),
                                  ("sometimes", False), ("", False)):
            tcfg = os.path.join(tmp, "table.ini")
            with open(tcfg, "w") as f:
                f.write(f"[nitrided]\ncert_table = {value}\n")
            r = subprocess.run([NITRIDED, "--config", tcfg, "--check-config"],
                               capture_output=True, text=True, timeout=30)
            check((r.returncode == 0) == good_value and
                  (good_value or ("cert_table" in r.stderr and "table.ini:2" in r.stderr)),
                  f"cert_table = {value!r}: exit {r.returncode} {r.stderr.strip()}")
        with open(cfg, "a") as f:
            f.write("retries = 3\n")
        r = subprocess.run([NITRIDED, "--config", cfg, "--check-config"], capture_output=True,
                           text=True, timeout=30)
        check(r.returncode != 0 and "nitrided.ini:5" in r.stderr and "retries" in r.stderr,
              "unknown key named with file and line: " + r.stderr.strip())
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
