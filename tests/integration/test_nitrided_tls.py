#!/usr/bin/python3
"""nitrided over HTTPS: kept connections, with full verification.

attestd and provd serve TLS (a throw-away CA, a server certificate for
127.0.0.1).  The nitrided daemon is asked for flows directly on its socket
(the NITRIDED_PROVISION frame vhsmd would send).  Checked:
  - a flow succeeds over HTTPS and yields a JWE that decrypts with the
    transfer key;
  - the second flow reuses the connections (nitrided logs 0 new ones) and
    starts with the nonce nitrided fetched after answering the first;
  - after provd restarts (same port) the next flow reconnects and succeeds;
  - a nitrided whose CA bundle did not sign the services' certificate is
    refused at the TLS handshake, and so is one verifying a certificate made
    for another address; a kept connection is never used across CA bundles.

Usage: test_nitrided_tls.py SNPSIMD ATTESTD PROVD NITRIDED NITRIDE
"""
import base64
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import services  # noqa: E402
from simtest import Snpsimd, recv_frame, stop, tlvs  # noqa: E402

try:
    from jwcrypto import jwe, jwk
except ImportError:
    print("SKIP: python3-jwcrypto is not installed (run with /usr/bin/python3)")
    sys.exit(77)

SNPSIMD, ATTESTD, PROVD, NITRIDED, NITRIDE = sys.argv[1:6]
ISSUER = "https://attestd.tls.test"
OP_PROVISION, T_NAME, T_STATUS, T_MESSAGE, T_TEE, T_JWE = 19, 1, 14, 15, 21, 22
failures = []


def check(cond, msg):
    print(("ok " if cond else "FAIL: ") + msg)
    if not cond:
        failures.append(msg)


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=60)


def make_ca(tmp, tag, san, signer=None):
    """A CA (or `signer`, a (ca, cakey) pair) and a P-256 server certificate for `san` it signed."""
    d = os.path.join(tmp, tag)
    os.mkdir(d)
    ca, cakey, crt, key, csr, ext = (os.path.join(d, n) for n in
                                     ("ca.pem", "ca.key", "tls.crt", "tls.key", "tls.csr", "san.ext"))
    if signer:
        ca, cakey = signer
    else:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "1", "-subj", f"/CN={tag} CA", "-keyout", cakey, "-out", ca)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr)
    with open(ext, "w") as f:
        f.write(f"subjectAltName = {san}\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial", "-days", "1",
            "-extfile", ext, "-out", crt)
    return ca, crt, key


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ask(sock, name, tee_pub, rid):
    """One NITRIDED_PROVISION exchange; (status, message, jwe)."""
    body = b"".join(struct.pack("<HI", t, len(v)) + v
                    for t, v in ((T_NAME, name.encode()), (T_TEE, tee_pub.encode())))
    hdr = b"VHSM" + bytes([1, OP_PROVISION, 0, 0]) + struct.pack("<II", rid, len(body))
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(sock)
    s.sendall(hdr + body)
    ans = recv_frame(s)
    s.close()
    items = dict((t, v) for t, v in tlvs(ans[16:])) if ans else {}
    status = struct.unpack("<I", items[T_STATUS])[0] if T_STATUS in items else None
    return status, items.get(T_MESSAGE, b"").decode(), items.get(T_JWE, b"").decode()


def done_lines(log, name):
    with open(log) as f:
        return [ln for ln in f if f"provision {name}: done" in ln]


def new_connections(log, name):
    lines = done_lines(log, name)
    m = re.search(r"\((\d+) requests, (\d+) new connections", lines[-1]) if lines else None
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


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
    boot = ["--boot-ovmf", ovmf, "--boot-kernel", kernel, "--boot-initrd", initrd,
            "--boot-vcpus", "2", "--boot-append", append]
    tmp = tempfile.mkdtemp(prefix="nitrided-tls-")
    procs = {}
    try:
        measurement = subprocess.run(
            [NITRIDE, "measure", "--mode", "snp", "--vcpus", "2", "--vcpu-type", "EPYC-v4",
             "--ovmf", ovmf, "--kernel", kernel, "--initrd", initrd, "--append", append],
            capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        state, roots = os.path.join(tmp, "chip"), os.path.join(tmp, "roots")
        subprocess.run([SNPSIMD, "--state-dir", state, "--export-roots", roots], check=True,
                       capture_output=True, timeout=120)
        ca, crt, key = make_ca(tmp, "good", "IP:127.0.0.1")
        other_ca, _, _ = make_ca(tmp, "other", "IP:127.0.0.1")
        # Signed by the right CA, but for another address.
        _, wrong_crt, wrong_key = make_ca(tmp, "wrongname", "IP:127.0.0.2",
                                          signer=(ca, os.path.join(tmp, "good", "ca.key")))

        tls = (ca, crt, key)
        procs["attestd"], aurl, _ = services.start_attestd(ATTESTD, tmp, roots, measurement,
                                                           ISSUER, tls)
        pport = free_port()  # fixed: provd is restarted below at the same URL
        procs["provd"], purl, adm = services.start_provd(PROVD, tmp, ISSUER, tls, port=pport)
        pcfg = os.path.join(tmp, "provd.ini")
        secret = os.urandom(32)
        vfile = os.path.join(tmp, "value")
        with open(vfile, "wb") as f:
            f.write(secret)
        why = services.put_secret(NITRIDE, adm, tmp, "tls-secret", "opaque", vfile,
                                  services.release_policy(measurement))
        check(why is None, f"tls-secret put with its release policy: {why}")

        with Snpsimd(SNPSIMD, boot, state_dir=state) as vm:
            def nitrided(tag, bundle, provd_url=purl):
                sock = os.path.join(tmp, f"nitrided-{tag}.sock")
                log = os.path.join(tmp, f"nitrided-{tag}.log")
                cfg = os.path.join(tmp, f"nitrided-{tag}.ini")
                with open(cfg, "w") as f:
                    f.write(f"[nitrided]\nattempts = 2\nbackoff_ms = 50\ntimeout_ms = 10000\n"
                            f"ca_bundle = {bundle}\n")
                with open(log, "w") as lf:
                    p = subprocess.Popen([NITRIDED, "--config", cfg, "--listen", sock,
                                          "--vhsmd-uid", str(os.getuid()), "--attestd", aurl,
                                          "--provd", provd_url, "--snp", "sim:" + vm.socket],
                                         stdout=subprocess.DEVNULL, stderr=lf)
                procs[f"nitrided-{tag}"] = p
                services.wait_path(sock, p, "nitrided")
                return sock, log

            sock, log = nitrided("good", ca)
            key1 = jwk.JWK.generate(kty="EC", crv="P-256")
            st, msg, token = ask(sock, "tls-secret", key1.export_public(), 1)
            ok = False
            if st == 0 and token:
                o = jwe.JWE()
                o.deserialize(token, key=key1)
                ok = base64.b64decode(json.loads(o.payload)["value"]) == secret
            check(ok, f"flow over HTTPS: a JWE that opens with the transfer key ({st}, {msg})")
            req, new = new_connections(log, "tls-secret")
            check(req == 3 and new == 2, f"first flow: 3 requests, 2 new connections ({req}, {new})")
            # nitrided's nonce thread fetched one for the next flow meanwhile
            # (attestd counts the first flow's challenge and that one).
            tls_ctx = ssl.create_default_context(cafile=ca)
            for _ in range(100):
                text = urllib.request.urlopen(aurl + "/metrics", timeout=10,
                                              context=tls_ctx).read().decode()
                if "attestd_challenges_total 2\n" in text:
                    break
                time.sleep(0.05)
            check("attestd_challenges_total 2\n" in text, "a nonce fetched ahead by nitrided")
            st, msg, _ = ask(sock, "tls-secret", jwk.JWK.generate(kty="EC", crv="P-256").export_public(), 2)
            req, new = new_connections(log, "tls-secret")
            # Its nonce was fetched ahead: two requests (attest, release), and
            # the log says so; the nonce thread's own connection is not the
            # flows'.
            ahead = "(nonce fetched ahead)" in done_lines(log, "tls-secret")[-1]
            check(st == 0 and req == 2 and new == 0 and ahead,
                  f"second flow reuses both connections, with a nonce fetched ahead ({st} {msg}; "
                  f"{req} requests, {new} new, ahead {ahead})")

            # provd restarts on the same port: the kept connection is dead.
            stop(procs.pop("provd"))
            procs["provd"], purl2 = services.start_daemon([PROVD, "--config", pcfg],
                                                          "provd: listening")
            check(purl2 == purl, f"provd back on {purl}")
            st, msg, _ = ask(sock, "tls-secret", jwk.JWK.generate(kty="EC", crv="P-256").export_public(), 3)
            req, new = new_connections(log, "tls-secret")
            check(st == 0 and new is not None and new >= 1,
                  f"after provd restarted: reconnected and released ({st} {msg}; {new} new)")

            # Wrong trust: the CA bundle did not sign the certificate.
            sock2, log2 = nitrided("otherca", other_ca)
            st, msg, _ = ask(sock2, "tls-secret", jwk.JWK.generate(kty="EC", crv="P-256").export_public(), 4)
            check(st not in (0, None) and "attestation service unreachable" in msg and
                  ("certificate" in msg.lower() or "ssl" in msg.lower()),
                  f"another CA: refused at the handshake ({st}: {msg})")
            check(not done_lines(log2, "tls-secret"), "another CA: no flow done")

            # The right CA, but the certificate names another address.
            wcfg = os.path.join(tmp, "provd-wrong.ini")
            with open(wcfg, "w") as f:
                f.write(f"[provd]\nlisten = 127.0.0.1:0\ntls_cert = {wrong_crt}\ntls_key = {wrong_key}\n"
                        f"state_dir = {tmp}/provd-wrong\nas_jwks = {tmp}/as.jwks\nissuer = {ISSUER}\n"
                        f"admin_tokens = {tmp}/tokens\nworkers = 1\n")
            procs["provd-wrong"], wurl = services.start_daemon([PROVD, "--config", wcfg],
                                                               "provd: listening")
            sock3, log3 = nitrided("wrongname", ca, provd_url=wurl)
            st, msg, _ = ask(sock3, "tls-secret", jwk.JWK.generate(kty="EC", crv="P-256").export_public(), 5)
            check(st not in (0, None) and "provisioning service unreachable" in msg and
                  "local issuer" not in msg,
                  f"certificate for another address: refused ({st}: {msg})")
            # The same daemon's attestd connection was fine and is kept; the refusal repeats.
            st, msg, _ = ask(sock3, "tls-secret", jwk.JWK.generate(kty="EC", crv="P-256").export_public(), 6)
            check(st not in (0, None) and "provisioning service unreachable" in msg,
                  f"certificate for another address: refused again, nothing kept from before ({st})")
    finally:
        for p in procs.values():
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
