#!/usr/bin/python3
"""Gated keys (require_attestation) through vhsmd's Case B attest hand-off.

A key generated with `vhsm generate ... --require-attestation S` is usable
only while vhsmd holds a fresh attestation of the VM: the first use makes
vhsmd ask nitrided (through this test's proxy) for an EAR token bound to a
fresh transfer key; uses within S seconds do not re-attest; after S seconds
the next use re-attests.  Then each refusal, with its reason, and the key
stays unusable until a valid attestation:

  - the VM's measurement changed (attestd: "measurement not allowed");
  - a real token whose cnf.jwk is another key (substituted by the proxy);
  - a token signed by a key that is not in as_jwks;
  - an expired token (signed by a key the test adds to as_jwks);
  - a token whose status is contraindicated (same key).

  vhsm sign -> vhsmd (held) -> proxy (this test) -> nitrided -> attestd

Usage: test_gated.py SNPSIMD ATTESTD PROVD NITRIDED NITRIDE VHSMD VHSM
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import services  # noqa: E402
from simtest import Snpsimd, pack, recv_frame, stop, tlvs  # noqa: E402

try:
    from jwcrypto import jwk, jwt
except ImportError:
    print("SKIP: python3-jwcrypto is not installed (run with /usr/bin/python3)")
    sys.exit(77)

SNPSIMD, ATTESTD, PROVD, NITRIDED, NITRIDE, VHSMD, VHSM = sys.argv[1:8]
ISSUER = "https://attestd.gated.test"
FORGER_KID = "test-forger"
AGE = 4  # require_attestation of the gated keys, seconds
failures = []
T_NAME, T_STATUS, T_MESSAGE, T_TEE, T_TOKEN = 1, 14, 15, 21, 23


def check(cond, msg):
    print(("ok " if cond else "FAIL: ") + msg)
    if not cond:
        failures.append(msg)


def attestations(aurl):
    """attestd's attestation count, all verdicts."""
    text = urllib.request.urlopen(aurl + "/metrics", timeout=10).read().decode()
    return sum(int(float(v)) for v in
               re.findall(r'^attestd_attestations_total\{[^}]*\} (\S+)$', text, re.M))


def forge(signer, kid, tee_json, status="affirming", exp_in=300):
    """An EAR-shaped token for the transfer key tee_json, signed by signer."""
    now = int(time.time())
    tee = json.loads(tee_json)
    claims = {"iss": ISSUER, "iat": now, "nbf": now - 1, "exp": now + exp_in,
              "eat_profile": "tag:github.com,2023:veraison/ear",
              "cnf": {"jwk": {k: tee[k] for k in ("kty", "crv", "x", "y")}},
              "submods": {"cpu0": {"ear.status": status}}}
    t = jwt.JWT(header={"alg": "ES256", "kid": kid, "typ": "JWT"}, claims=claims)
    t.make_signed_token(signer)
    return t.serialize().encode()


class Proxy:
    """Listens where vhsmd expects nitrided; forwards to a real nitrided,
    optionally substituting the token in the answer (mode)."""

    def __init__(self, path, forger):
        self.path, self.mode, self.backend, self.forger = path, "pass", None, forger
        self.stranger = jwk.JWK.generate(kty="EC", crv="P-256", kid=FORGER_KID)
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(path)
        self.srv.listen(8)
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        try:
            req = recv_frame(c)
            items = tlvs(req[16:])
            tee = next(v for t, v in items if t == T_TEE).decode()
            if self.mode == "othercnf":  # a real token, for another transfer key
                other = jwk.JWK.generate(kty="EC", crv="P-256").export_public()
                items = [[t, other.encode() if t == T_TEE else v] for t, v in items]
                req = pack(req, items)
            b = socket.socket(socket.AF_UNIX)
            b.connect(self.backend)
            b.sendall(req)
            ans = recv_frame(b)
            b.close()
            tok = None
            if self.mode == "stranger":
                tok = forge(self.stranger, FORGER_KID, tee)
            elif self.mode == "expired":
                tok = forge(self.forger, FORGER_KID, tee, exp_in=-120)
            elif self.mode == "contraindicated":
                tok = forge(self.forger, FORGER_KID, tee, status="contraindicated")
            elif self.mode == "forged-good":
                tok = forge(self.forger, FORGER_KID, tee)
            if tok is not None:
                items = tlvs(ans[16:])
                check(any(t == T_TOKEN for t, _ in items), f"proxy: nitrided answered a token ({self.mode})")
                ans = pack(ans, [[t, tok if t == T_TOKEN else v] for t, v in items])
            c.sendall(ans)
        except Exception as e:  # noqa: BLE001
            print("proxy:", e)
        finally:
            c.close()


def start_vhsmd(tmp, nsock, jwks_path, log):
    sock = os.path.join(tmp, "vhsmd.sock")
    pol = os.path.join(tmp, "vhsm-policy.json")
    with open(pol, "w") as f:
        json.dump({"version": 1, "rules": [
            {"principal": {"uid": os.getuid()}, "keys": ["*"], "operations": ["*"]}]}, f)
    cfg = os.path.join(tmp, "vhsmd.ini")
    with open(cfg, "w") as f:
        f.write(f"[vhsmd]\nsocket = {sock}\npolicy = {pol}\nstate_dir = {tmp}/vhsmd\n"
                f"allow_insecure_memory = yes\n[sealing]\nstore = none\n"
                f"[caseb]\nnitrided_socket = {nsock}\nhold_timeout_ms = 20000\n"
                f"as_jwks = {jwks_path}\nas_issuer = {ISSUER}\n")
    p = subprocess.Popen([VHSMD, "--config", cfg], stdout=subprocess.DEVNULL, stderr=log)
    services.wait_path(sock, p, "vhsmd")
    return p, sock


def start_nitrided(tmp, tag, vm, aurl, purl, cfg):
    sock = os.path.join(tmp, f"nitrided-{tag}.sock")
    p = subprocess.Popen([NITRIDED, "--config", cfg, "--listen", sock, "--vhsmd-uid",
                          str(os.getuid()), "--attestd", aurl, "--provd", purl,
                          "--snp", "sim:" + vm.socket],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    services.wait_path(sock, p, "nitrided")
    return p, sock


def vhsm(sock, *args):
    return subprocess.run([VHSM, "--socket", sock] + list(args), capture_output=True, timeout=120)


class Gated:
    """Uses of gated keys, counted against attestd's attestations."""

    def __init__(self, sock, aurl, msg):
        self.sock, self.aurl, self.msg = sock, aurl, msg

    def use(self, name):
        before = attestations(self.aurl)
        r = vhsm(self.sock, "sign", name, "--in", self.msg)
        return r, attestations(self.aurl) - before

    def usable(self, name, attests, label):
        r, n = self.use(name)
        check(r.returncode == 0, f"{label}: signs ({r.stderr.decode(errors='replace').strip()})")
        check(n == attests, f"{label}: {n} attestation(s), expected {attests}")

    def refused(self, name, want, label):
        """Refused with the reason; a second use is held again (a new hand-off,
        refused again): nothing marked the key attested."""
        for i in (1, 2):
            r, n = self.use(name)
            err = r.stderr.decode(errors="replace").strip()
            check(r.returncode == 1 and f"key {name} unavailable" in err and want in err,
                  f"{label} (use {i}): {err}")
            check(n == 1, f"{label} (use {i}): a new attestation was attempted ({n})")


def main():
    vec = os.environ.get("NITRIDE_VECTORS") or os.environ.get("NITRIDE_VECTORS_DEFAULT", "")
    m = os.path.join(vec, "measure")
    if not os.path.isdir(m):
        print(f"SKIP: measurement vectors not found at {vec!r}")
        return 77
    ovmf = os.path.join(m, "fixtures", "ovmf_AmdSev_suffix.bin")
    kernel = os.path.join(m, "inputs", "kernel.bin")
    initrd = os.path.join(m, "inputs", "initrd.bin")
    append = "console=ttyS0 root=/dev/vda1"

    def boot(app):
        return ["--boot-ovmf", ovmf, "--boot-kernel", kernel, "--boot-initrd", initrd,
                "--boot-vcpus", "2", "--boot-append", app]

    tmp = tempfile.mkdtemp(prefix="gated-")
    procs = []
    log = open(os.path.join(tmp, "vhsmd.log"), "w+")
    try:
        r = subprocess.run([NITRIDE, "measure", "--mode", "snp", "--vcpus", "2", "--vcpu-type",
                            "EPYC-v4", "--ovmf", ovmf, "--kernel", kernel, "--initrd", initrd,
                            "--append", append], capture_output=True, text=True, timeout=60)
        measurement = r.stdout.strip()
        check(r.returncode == 0 and len(measurement) == 96, "nitride measure")
        state = os.path.join(tmp, "chip")
        roots = os.path.join(tmp, "roots")
        subprocess.run([SNPSIMD, "--state-dir", state, "--export-roots", roots], check=True,
                       capture_output=True, timeout=120)
        attestd, aurl, jwks = services.start_attestd(ATTESTD, tmp, roots, measurement, ISSUER)
        procs.append(attestd)  # it wrote its JWKS to tmp/as.jwks, which provd reads
        # provd is not asked for anything by an attest hand-off; nitrided wants its URL.
        provd, purl, _ = services.start_provd(PROVD, tmp, ISSUER)
        procs.append(provd)
        # vhsmd trusts attestd's keys and one the test holds (to make tokens
        # that only differ from a good one by the claim under test).
        forger = jwk.JWK.generate(kty="EC", crv="P-256", kid=FORGER_KID)
        vjwks = os.path.join(tmp, "vhsmd-as.jwks")
        with open(vjwks, "w") as f:
            json.dump({"keys": jwks["keys"] + [json.loads(forger.export_public())]}, f)

        ncfg = os.path.join(tmp, "nitrided.ini")
        with open(ncfg, "w") as f:
            f.write("[nitrided]\nattempts = 2\nbackoff_ms = 50\ntimeout_ms = 2000\n")
        msg = os.path.join(tmp, "msg.bin")
        with open(msg, "wb") as f:
            f.write(b"a gated key\n")
        proxy = Proxy(os.path.join(tmp, "proxy.sock"), forger)
        vd, vsock = start_vhsmd(tmp, proxy.path, vjwks, log)
        procs.append(vd)
        g = Gated(vsock, aurl, msg)
        names = ["gated", "gated-othercnf", "gated-stranger", "gated-expired",
                 "gated-contra", "gated-forged", "gated-meas"]
        for n in names:
            r = vhsm(vsock, "generate", n, "--type", "p256", "--require-attestation", str(AGE))
            check(r.returncode == 0, f"generate {n} --require-attestation {AGE}: "
                  + r.stderr.decode(errors="replace").strip())
        r = vhsm(vsock, "--json", "info", "gated")
        check(r.returncode == 0 and json.loads(r.stdout).get("key", {}).get("require_attestation") == AGE,
              "info shows require_attestation: " + r.stdout.decode(errors="replace").strip())

        with Snpsimd(SNPSIMD, boot(append), state_dir=state) as vm:
            nd, nsock = start_nitrided(tmp, "a", vm, aurl, purl, ncfg)
            procs.append(nd)
            proxy.backend = nsock

            # 1. First use attests, uses within the age do not, the next after it does.
            g.usable("gated", 1, "first use of a gated key attests through nitrided")
            t0 = time.time()
            for i in range(3):
                g.usable("gated", 0, f"use {i + 2} within the maximum age")
            check(time.time() - t0 < AGE - 0.5, "those uses were within the age (timing)")
            time.sleep(AGE + 0.5)
            g.usable("gated", 1, "after the maximum age the next use re-attests")
            g.usable("gated", 0, "and the one after that does not")
            log.flush()
            log.seek(0)
            check(len(re.findall(r"attested key=gated until=", log.read())) == 2,
                  "vhsmd logged two attestations of the key")

            # 2. Token substitutions, each refused with its reason; the key
            # stays unusable until a valid attestation.
            proxy.mode = "forged-good"
            g.usable("gated-forged", 1, "control: a good token from the test's trusted key")
            for mode, name, want in (
                    ("othercnf", "gated-othercnf", "cnf.jwk is not this hand-off's transfer key"),
                    ("stranger", "gated-stranger", "token signature invalid"),
                    ("expired", "gated-expired", "attestation token expired"),
                    ("contraindicated", "gated-contra", "attestation status is contraindicated")):
                proxy.mode = mode
                g.refused(name, want, f"token: {mode}")
                proxy.mode = "pass"
                g.usable(name, 1, f"after {mode}: a valid attestation makes the key usable")
                g.usable(name, 0, f"after {mode}: and it stays attested")
            r = vhsm(vsock, "ping")
            check(r.returncode == 0, "vhsmd still serves")

        # 3. The VM is booted with another command line: its measurement
        # is not the allowed one.
        with Snpsimd(SNPSIMD, boot(append + " init=/bin/sh"), state_dir=state) as vm2:
            nd2, nsock2 = start_nitrided(tmp, "b", vm2, aurl, purl, ncfg)
            procs.append(nd2)
            proxy.backend = nsock2
            g.refused("gated-meas", "measurement not allowed", "changed measurement")
            time.sleep(AGE + 0.5)
            g.refused("gated", "measurement not allowed",
                      "changed measurement, a key attested before (age run out)")
            stop(nd2)
        with Snpsimd(SNPSIMD, boot(append), state_dir=state) as vm3:
            nd3, nsock3 = start_nitrided(tmp, "c", vm3, aurl, purl, ncfg)
            procs.append(nd3)
            proxy.backend = nsock3
            g.usable("gated-meas", 1, "the allowed measurement again: the key is usable")
            g.usable("gated", 1, "the allowed measurement again: the older key too")
            stop(nd3)
        check(vd.poll() is None, "vhsmd is alive at the end")
    finally:
        for p in procs:
            stop(p)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
