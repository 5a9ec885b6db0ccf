#!/usr/bin/python3
"""Case B through vhsmd: an application asks vhsmd to sign with a key it does
not have; vhsmd makes a transfer key and asks nitrided, which attests the
(simulated, measured) VM to attestd and gets the key from provd as a JWE that
only vhsmd can open.  The application gets its signature, never the key.
Then each refusal, with its reason and nothing installed.

  vhsm sign -> vhsmd (held) -> proxy (this test; can tamper) -> nitrided
  -> attestd -> provd -> JWE -> vhsmd installs -> signature

Usage: test_caseb_vhsm.py SNPSIMD ATTESTD PROVD NITRIDED NITRIDE VHSMD VHSM
"""
import base64
import json
import os
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
from simtest import Snpsimd, closed_port, pack, recv_frame, stop, tlvs  # noqa: E402

try:
    from jwcrypto import jwe, jwk
except ImportError:
    print("SKIP: python3-jwcrypto is not installed (run with /usr/bin/python3)")
    sys.exit(77)

SNPSIMD, ATTESTD, PROVD, NITRIDED, NITRIDE, VHSMD, VHSM = sys.argv[1:8]
ISSUER = "https://attestd.caseb.test"
failures = []
T_NAME, T_STATUS, T_MESSAGE, T_TEE, T_JWE = 1, 14, 15, 21, 22


def check(cond, msg):
    print(("ok " if cond else "FAIL: ") + msg)
    if not cond:
        failures.append(msg)


class Proxy:
    """Listens where vhsmd expects nitrided; forwards to a real nitrided,
    optionally changing the request or the answer (mode)."""

    def __init__(self, path):
        self.path, self.mode, self.backend = path, "pass", None
        self.payload = None  # what the "jwcrypto*" modes encrypt instead of provd's JWE
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
            tee = next((v for t, v in items if t == T_TEE), None)
            if self.mode == "wrongkey":  # a JWE for another key
                other = jwk.JWK.generate(kty="EC", crv="P-256").export_public()
                items = [[t, other.encode() if t == T_TEE else v] for t, v in items]
                req = pack(req, items)
            b = socket.socket(socket.AF_UNIX)
            b.connect(self.backend)
            b.sendall(req)
            ans = recv_frame(b)
            b.close()
            if self.mode == "tamper":
                items = tlvs(ans[16:])
                for it in items:
                    if it[0] == T_JWE:
                        parts = it[1].split(b".")
                        ct = bytearray(base64.urlsafe_b64decode(parts[3] + b"=="))
                        ct[0] ^= 1
                        parts[3] = base64.urlsafe_b64encode(bytes(ct)).rstrip(b"=")
                        it[1] = b".".join(parts)
                ans = pack(ans, items)
            if self.mode.startswith("jwcrypto"):
                # provd's answer frame, its JWE replaced by one jwcrypto made
                # to the same transfer key (with apu/apv, which enter the KDF)
                items = tlvs(ans[16:])
                for it in items:
                    if it[0] == T_JWE:
                        it[1] = self.jwcrypto_jwe(tee).encode()
                ans = pack(ans, items)
            c.sendall(ans)
        except Exception as e:  # noqa: BLE001
            print("proxy:", e)
        finally:
            c.close()


    def jwcrypto_jwe(self, tee):
        b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
        hdr = {"alg": "ECDH-ES", "enc": "A256GCM", "cty": "application/json",
               "apu": b64(b"nitrided"), "apv": b64(b"vhsmd")}
        if self.mode == "jwcrypto-zip":
            hdr["zip"] = "DEF"
        e = jwe.JWE(json.dumps(self.payload).encode(), protected=json.dumps(hdr))
        e.add_recipient(jwk.JWK.from_json(tee))
        return e.serialize(compact=True)


def start_vhsmd(tmp, tag, nsock, hold_ms, policy=None):
    sock = os.path.join(tmp, f"vhsmd-{tag}.sock")
    pol = policy or os.path.join(tmp, "vhsm-policy.json")
    if policy is None:
        with open(pol, "w") as f:
            json.dump({"version": 1, "rules": [
                {"principal": {"uid": os.getuid()}, "keys": ["*"], "operations": ["*"]}]}, f)
    cfg = os.path.join(tmp, f"vhsmd-{tag}.ini")
    with open(cfg, "w") as f:
        f.write(f"[vhsmd]\nsocket = {sock}\npolicy = {pol}\nstate_dir = {tmp}/vhsmd-{tag}\n"
                f"allow_insecure_memory = yes\n[sealing]\nstore = none\n"
                f"[caseb]\nnitrided_socket = {nsock}\nhold_timeout_ms = {hold_ms}\n"
                f"provision = cb-* caseb-*\n")
    p = subprocess.Popen([VHSMD, "--config", cfg], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    services.wait_path(sock, p, "vhsmd")
    return p, sock


def start_nitrided(tmp, tag, vm, aurl, purl, cfg):
    sock = os.path.join(tmp, f"nitrided-{tag}.sock")
    p = subprocess.Popen([NITRIDED, "--config", cfg, "--listen", sock, "--vhsmd-uid",
                          str(os.getuid()), "--attestd", aurl, "--provd", purl,
                          "--snp", "sim:" + vm.socket],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    services.wait_path(sock, p, "nitrided")
    return p, sock


def vhsm(sock, *args, inp=None):
    return subprocess.run([VHSM, "--socket", sock] + list(args), input=inp,
                          capture_output=True, timeout=120)


def listed(sock):
    r = vhsm(sock, "--json", "list")
    return [k["name"] for k in json.loads(r.stdout).get("keys", [])] if r.returncode == 0 else None


def put_secret(tmp, purl, name, typ, valfile, policy, extra=()):
    admin = ["--url", purl, "--token-file", os.path.join(tmp, "admin.token")]
    why = services.put_secret(NITRIDE, admin, tmp, name, typ, valfile, policy, extra)
    check(why is None, f"{name} put with its release policy: {why}")
    return admin


def refused(sock, name, want, label):
    r = vhsm(sock, "sign", name, "--in", "/dev/null")
    err = r.stderr.decode(errors="replace").strip()
    check(r.returncode == 1 and f"key {name} unavailable" in err and want in err,
          f"{label}: {err}")
    names = listed(sock)
    check(names is not None and name not in names, f"{label}: nothing installed")


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
    tmp = tempfile.mkdtemp(prefix="caseb-vhsm-")
    procs = []
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
        attestd, aurl, provd, purl, _ = services.start_caseb(
            ATTESTD, PROVD, NITRIDE, tmp, roots, measurement, ISSUER)
        procs += [attestd, provd]
        good = services.release_policy(measurement)

        # The released key: an EC P-256 key whose public half the test keeps.
        pem = os.path.join(tmp, "sign.pem")
        pub = os.path.join(tmp, "sign.pub.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", pem], check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", pem, "-pubout", "-out", pub], check=True,
                       capture_output=True)
        admin = put_secret(tmp, purl, "caseb-sign", "p256", pem, good)
        for n in ("caseb-tamper", "caseb-wrongkey", "caseb-asdown", "caseb-absent"):
            put_secret(tmp, purl, n, "p256", pem, good)
        for n in ("caseb-jwcrypto", "caseb-zip"):
            put_secret(tmp, purl, n, "p256", pem, good)
        put_secret(tmp, purl, "caseb-denied", "p256", pem,
                   {"all": [{"measurement": ["00" * 48]}]})
        put_secret(tmp, purl, "caseb-retired", "p256", pem, good)
        passphrase = base64.b64encode(os.urandom(24))  # printable, as a LUKS passphrase
        passfile = os.path.join(tmp, "luks.pass")
        with open(passfile, "wb") as f:
            f.write(passphrase)
        put_secret(tmp, purl, "caseb-luks", "opaque", passfile, good, ["--exportable"])
        r = subprocess.run([NITRIDE, "secret", "rm", "caseb-retired", "--version", "1"] + admin,
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "retire caseb-retired v1: " + r.stderr.strip())

        ncfg = os.path.join(tmp, "nitrided.ini")
        with open(ncfg, "w") as f:
            f.write("[nitrided]\nattempts = 2\nbackoff_ms = 50\ntimeout_ms = 2000\n")
        with Snpsimd(SNPSIMD, boot, state_dir=state) as vm:
            nd, nsock = start_nitrided(tmp, "a", vm, aurl, purl, ncfg)
            procs.append(nd)
            nd2, nsock2 = start_nitrided(tmp, "down", vm, f"http://127.0.0.1:{closed_port()}",
                                         purl, ncfg)
            procs.append(nd2)
            proxy = Proxy(os.path.join(tmp, "proxy.sock"))
            proxy.backend = nsock
            vd, vsock = start_vhsmd(tmp, "a", proxy.path, 20000)
            procs.append(vd)

            # 1. The application signs with a key vhsmd does not have yet.
            check("caseb-sign" not in listed(vsock), "caseb-sign absent at first")
            msg = os.path.join(tmp, "msg.bin")
            sig = os.path.join(tmp, "msg.sig")
            with open(msg, "wb") as f:
                f.write(b"case B through the vHSM\n")
            t0 = time.time()
            r = vhsm(vsock, "sign", "caseb-sign", "--in", msg, "--out", sig)
            check(r.returncode == 0, "sign with a provisioned key: " + r.stderr.decode().strip())
            print(f"   provision + sign took {time.time() - t0:.2f} s")
            r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", sig,
                                msg], capture_output=True, text=True)
            check(r.returncode == 0 and "Verified OK" in r.stdout,
                  "the signature verifies with the released key's public half")
            r = vhsm(vsock, "--json", "info", "caseb-sign")
            info = json.loads(r.stdout) if r.returncode == 0 else {}
            check(info.get("origin") in ("provisioned", 2) or "provisioned" in r.stdout.decode(),
                  "installed as provisioned: " + r.stdout.decode().strip())
            r = vhsm(vsock, "secret", "get", "caseb-sign")
            check(r.returncode == 1 and b"never exportable" in r.stderr,
                  "the application cannot read the key: " + r.stderr.decode().strip())
            r = vhsm(vsock, "sign", "caseb-sign", "--in", msg, "--out", sig)
            check(r.returncode == 0, "second sign uses the installed key")

            # 1b. Boot use: a LUKS passphrase provisioned, then read by the authorised caller.
            r = vhsm(vsock, "provision", "caseb-luks")
            check(r.returncode == 0, "vhsm provision caseb-luks: " + r.stderr.decode().strip())
            r = vhsm(vsock, "secret", "get", "caseb-luks")
            check(r.returncode == 0 and r.stdout == passphrase,
                  "vhsm secret get prints the raw passphrase for a pipe")
            if shutil.which("cryptsetup"):
                img = os.path.join(tmp, "disk.img")
                with open(img, "wb") as f:
                    f.truncate(32 << 20)
                r = subprocess.run(["cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2",
                                    "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
                                    "--key-file=-", img], input=passphrase, capture_output=True,
                                   timeout=120)
                check(r.returncode == 0, "cryptsetup luksFormat with the provisioned passphrase: "
                      + r.stderr.decode().strip())
                got = vhsm(vsock, "secret", "get", "caseb-luks").stdout
                r = subprocess.run(["cryptsetup", "open", "--test-passphrase", "--key-file=-", img],
                                   input=got, capture_output=True, timeout=120)
                check(r.returncode == 0, "vhsm secret get | cryptsetup open --test-passphrase")
                r = subprocess.run(["cryptsetup", "open", "--test-passphrase", "--key-file=-", img],
                                   input=b"not the passphrase", capture_output=True, timeout=120)
                check(r.returncode != 0, "a wrong passphrase does not open the image")
            else:
                check(False, "cryptsetup is not installed (scripts/setup-deps.sh installs cryptsetup-bin)")

            # 2. Refusals, each with its reason, nothing installed.
            refused(vsock, "caseb-denied", "release refused", "policy mismatch (measurement)")
            proxy.mode = "tamper"
            refused(vsock, "caseb-tamper", "does not decrypt", "tampered JWE")
            proxy.mode = "wrongkey"
            refused(vsock, "caseb-wrongkey", "does not decrypt", "JWE for another key")
            # vhsmd opens what another JOSE implementation made (jwcrypto, with
            # apu/apv), and refuses a compressed one
            value = os.urandom(20)
            proxy.payload = {"name": "caseb-jwcrypto", "version": 1, "type": "opaque",
                             "key": base64.urlsafe_b64encode(value).rstrip(b"=").decode(),
                             "usages": [], "exportable": True, "persist": False,
                             "access": None, "require_attestation": 0}
            proxy.mode = "jwcrypto"
            r = vhsm(vsock, "provision", "caseb-jwcrypto")
            check(r.returncode == 0, "a jwcrypto JWE with apu/apv: " + r.stderr.decode().strip())
            r = vhsm(vsock, "secret", "get", "caseb-jwcrypto")
            check(r.returncode == 0 and r.stdout == value,
                  "what vhsmd installed is jwcrypto's plaintext")
            proxy.payload["name"] = "caseb-zip"
            proxy.mode = "jwcrypto-zip"
            refused(vsock, "caseb-zip", "not ECDH-ES/A256GCM", "a JWE with zip")
            proxy.mode = "pass"
            proxy.backend = nsock2
            t0 = time.time()
            refused(vsock, "caseb-asdown", "attestation service unreachable", "AS down")
            proxy.backend = nsock
            refused(vsock, "caseb-retired", "release refused", "retired secret version")
            refused(vsock, "cb-unknown", "release refused", "unknown secret")
            r = vhsm(vsock, "sign", "other-key", "--in", msg)
            check(r.returncode == 1 and b"no key named" in r.stderr,
                  "a name that is not provisionable is simply not found")

            # 3. nitrided absent: vhsmd times out with a clear error.
            vd2, vsock2 = start_vhsmd(tmp, "b", os.path.join(tmp, "nobody-here.sock"), 1500)
            procs.append(vd2)
            t0 = time.time()
            refused(vsock2, "caseb-absent", "did not answer within 1500 ms", "nitrided absent")
            check(time.time() - t0 < 10, "the timeout is the configured one")
            r = vhsm(vsock2, "ping")
            check(r.returncode == 0, "vhsmd still serves after the timeout")

            # 4. Boot use: nitrided --once --provision NAME --vhsmd SOCKET.
            stop(vd2)
            vd3, vsock3 = start_vhsmd(tmp, "c", os.path.join(tmp, "once.sock"), 20000)
            procs.append(vd3)
            r = subprocess.run([NITRIDED, "--config", ncfg, "--once", "--provision", "caseb-sign",
                                "--vhsmd", vsock3, "--listen", os.path.join(tmp, "once.sock"),
                                "--vhsmd-uid", str(os.getuid()), "--attestd", aurl,
                                "--provd", purl, "--snp", "sim:" + vm.socket],
                               capture_output=True, text=True, timeout=120)
            check(r.returncode == 0, "nitrided --once --vhsmd: " + r.stderr.strip())
            check("caseb-sign" in (listed(vsock3) or []), "--once installed the key in vhsmd")
            check(not os.path.exists(os.path.join(tmp, "once.sock")), "--once removed its socket")

            # 5. vhsmd keeps its connection to nitrided across hand-offs; the
            # right to inject is still checked on each one, and a connection
            # that nitrided closed (restart) is replaced by a new one.
            for n in ("caseb-keep-1", "caseb-keep-2", "caseb-keep-3"):
                put_secret(tmp, purl, n, "p256", pem, good)
            ndk, nsockk = start_nitrided(tmp, "k", vm, aurl, purl, ncfg)
            procs.append(ndk)
            kpol = os.path.join(tmp, "vhsm-policy-k.json")
            with open(kpol, "w") as f:
                json.dump({"version": 1, "rules": [
                    {"principal": {"uid": os.getuid()}, "keys": ["*"],
                     "operations": ["sign", "list", "ping"]},
                    {"principal": {"uid": os.getuid()}, "keys": ["caseb-keep-1", "caseb-keep-3"],
                     "operations": ["inject"]}]}, f)
            vdk, vsockk = start_vhsmd(tmp, "k", nsockk, 20000, policy=kpol)
            procs.append(vdk)
            vlog = []
            threading.Thread(target=lambda: vlog.extend(vdk.stderr), daemon=True).start()

            def connects(want):
                """Connections vhsmd logged, once the reader has caught up with `want`."""
                for _ in range(100):
                    n = sum("connected to nitrided" in line for line in list(vlog))
                    if n >= want:
                        return n
                    time.sleep(0.05)
                return n

            r = vhsm(vsockk, "sign", "caseb-keep-1", "--in", msg)
            check(r.returncode == 0, "kept: first hand-off: " + r.stderr.decode().strip())
            refused(vsockk, "caseb-keep-2", "not allowed to inject",
                    "kept: the inject right is checked on a kept connection too")
            n = connects(1)
            check(n == 1, f"kept: two hand-offs, one connection ({n})")
            stop(ndk)
            ndk, _ = start_nitrided(tmp, "k", vm, aurl, purl, ncfg)
            procs.append(ndk)
            r = vhsm(vsockk, "sign", "caseb-keep-3", "--in", msg)
            check(r.returncode == 0, "kept: a hand-off after nitrided restarted: "
                  + r.stderr.decode().strip())
            n = connects(2)
            check(n == 2, f"kept: a new connection after the restart ({n})")

            # 6. nitrided keeps a stock of nonces and refills it with batched
            # challenges: ten flows make at most three challenge requests
            # (one per flow before).  attestd then restarts (same port) and
            # forgets the stock: the flow that takes a stale nonce is refused
            # ("nonce") and run again with a fresh challenge, so the
            # application still gets its key, and the stock is dropped, so
            # the next flow is not refused again.
            batch = [f"caseb-batch-{i}" for i in range(10)]
            for n in ["caseb-ahead-2", "caseb-ahead-3"] + batch:
                put_secret(tmp, purl, n, "p256", pem, good)

            def metric(name):
                text = urllib.request.urlopen(aurl + "/metrics", timeout=10).read().decode()
                for line in text.splitlines():
                    if line.startswith(name + " "):
                        return int(line.split()[1])
                return None

            def settled(name):
                """The metric once it stopped moving (the refill runs after the answer)."""
                last = metric(name)
                for _ in range(40):
                    time.sleep(0.05)
                    now = metric(name)
                    if now == last:
                        return now
                    last = now
                return last

            CH = "attestd_challenges_total"
            c0 = settled(CH)
            for n in batch:
                r = vhsm(vsock, "sign", n, "--in", msg)
                check(r.returncode == 0, f"batch: flow {n}: " + r.stderr.decode().strip())
            c1 = settled(CH)
            check(1 <= c1 - c0 <= 3, f"batch: ten flows, {c1 - c0} challenge requests (at most 3)")
            stop(attestd)
            procs.remove(attestd)
            # attestd also wrote the VCEK it verified to its disk cache; without
            # that file the restarted attestd must ask for the table.
            vdir = os.path.join(tmp, "attestd", "cache", "vcek")
            check(os.path.isdir(vdir), "table: attestd cached the VCEK it verified from a table")
            shutil.rmtree(vdir, ignore_errors=True)
            port = aurl.rsplit(":", 1)[1]
            acfg = os.path.join(tmp, "attestd.ini")
            with open(acfg) as f:
                text = f.read().replace("listen = 127.0.0.1:0", f"listen = 127.0.0.1:{port}")
            with open(acfg, "w") as f:
                f.write(text)
            attestd, aurl2 = services.start_daemon([ATTESTD, "--config", acfg],
                                                   "attestd: listening", subprocess.PIPE)
            procs.append(attestd)
            check(aurl2 == aurl, f"attestd back on {aurl} ({aurl2})")
            r = vhsm(vsock, "sign", "caseb-ahead-2", "--in", msg)
            check(r.returncode == 0, "ahead: a nonce attestd forgot costs a retry, not the flow: "
                  + r.stderr.decode().strip())
            bad = metric('attestd_attestations_total{status="bad_nonce"}')
            good_n = metric('attestd_attestations_total{status="affirming"}')
            unavail = metric('attestd_attestations_total{status="unavailable"}')
            check(bad == 1 and good_n == 1,
                  f"ahead: the stale nonce refused once, then affirmed ({bad}, {good_n})")
            # nitrided stopped sending the certificate table once attestd had
            # accepted one.  The restarted attestd does not know the VCEK and
            # its KDS is out of reach: it asked for the table once (503
            # "collateral"), and the flow ran again with it.
            check(unavail == 1, f"table: the report without its table was answered 503 once, "
                  f"then sent with it ({unavail})")
            r = vhsm(vsock, "sign", "caseb-ahead-3", "--in", msg)
            check(r.returncode == 0, "table: the next flow: " + r.stderr.decode().strip())
            unavail = metric('attestd_attestations_total{status="unavailable"}')
            good_n = metric('attestd_attestations_total{status="affirming"}')
            check(unavail == 1 and good_n == 2,
                  f"table: attestd now knows the VCEK; no new 503 ({unavail}, {good_n})")
            bad = metric('attestd_attestations_total{status="bad_nonce"}')
            check(bad == 1, f"ahead: the stale stock was dropped; no second refusal ({bad})")
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
