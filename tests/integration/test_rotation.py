#!/usr/bin/python3
"""Case B rotation: vhsmd ([caseb] rotate_interval) re-provisions its
provisioned keys through nitrided on an interval; a new version on provd
reaches the running vHSM, older versions stay usable for verify, and a
retired version is never injected.

  provd: rot-sign v1, v2 (retired at once) -> application's first sign gets v1
  -> checks keep v1 (v2 is retired, nothing older than current is installed)
  -> `nitride secret put` v3 -> within a bounded wait vhsmd has version 3:
     signatures verify with v3's public key, v1 signatures still verify,
     version 2 never existed in the vHSM.

Usage: test_rotation.py SNPSIMD ATTESTD PROVD NITRIDED NITRIDE VHSMD VHSM
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import services  # noqa: E402
from simtest import Snpsimd  # noqa: E402

try:
    import jwcrypto  # noqa: F401  (the case B test's dependency; same skip rule)
except ImportError:
    print("SKIP: python3-jwcrypto is not installed (run with /usr/bin/python3)")
    sys.exit(77)

import test_caseb_vhsm as cb  # noqa: E402

SNPSIMD, ATTESTD, PROVD, NITRIDED, NITRIDE, VHSMD, VHSM = sys.argv[1:8]
cb.SNPSIMD, cb.ATTESTD, cb.PROVD, cb.NITRIDED, cb.NITRIDE, cb.VHSMD, cb.VHSM = sys.argv[1:8]
check = cb.check
INTERVAL = 1  # seconds between rotation checks


def start_vhsmd(tmp, nsock):
    sock = os.path.join(tmp, "vhsmd-rot.sock")
    pol = os.path.join(tmp, "vhsm-policy.json")
    with open(pol, "w") as f:
        json.dump({"version": 1, "rules": [
            {"principal": {"uid": os.getuid()}, "keys": ["*"], "operations": ["*"]}]}, f)
    cfg = os.path.join(tmp, "vhsmd-rot.ini")
    with open(cfg, "w") as f:
        f.write(f"[vhsmd]\nsocket = {sock}\npolicy = {pol}\nstate_dir = {tmp}/vhsmd-rot\n"
                f"allow_insecure_memory = yes\n[sealing]\nstore = none\n"
                f"[caseb]\nnitrided_socket = {nsock}\nhold_timeout_ms = 20000\n"
                f"provision = rot-*\nrotate_interval = {INTERVAL}\n")
    log = open(os.path.join(tmp, "vhsmd.log"), "w")
    p = subprocess.Popen([VHSMD, "--config", cfg], stdout=subprocess.DEVNULL, stderr=log)
    services.wait_path(sock, p, "vhsmd")
    return p, sock


def keypair(tmp, tag):
    pem = os.path.join(tmp, f"{tag}.pem")
    pub = os.path.join(tmp, f"{tag}.pub.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", pem], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", pem, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    return pem, pub


def info(sock, name):
    r = cb.vhsm(sock, "--json", "info", name)
    return json.loads(r.stdout).get("key", {}) if r.returncode == 0 else {}


def sign_verifies(sock, tmp, pub, label):
    msg = os.path.join(tmp, "msg.bin")
    sig = os.path.join(tmp, f"{label}.sig")
    with open(msg, "wb") as f:
        f.write(b"rotation reaches running VMs\n")
    r = cb.vhsm(sock, "sign", "rot-sign", "--in", msg, "--out", sig)
    if r.returncode != 0:
        return False, sig, r.stderr.decode().strip()
    r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", sig, msg],
                       capture_output=True, text=True)
    return r.returncode == 0 and "Verified OK" in r.stdout, sig, r.stdout.strip()


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
    tmp = tempfile.mkdtemp(prefix="rotation-")
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
            ATTESTD, PROVD, NITRIDE, tmp, roots, measurement, cb.ISSUER)
        procs += [attestd, provd]
        good = services.release_policy(measurement)

        pem1, pub1 = keypair(tmp, "v1")
        pem2, pub2 = keypair(tmp, "v2")
        pem3, pub3 = keypair(tmp, "v3")
        admin = cb.put_secret(tmp, purl, "rot-sign", "p256", pem1, good)

        def put(pem):
            return subprocess.run([NITRIDE, "secret", "put", "rot-sign", "--type", "p256",
                                   "--value-file", pem] + admin,
                                  capture_output=True, text=True, timeout=60)

        r = put(pem2)
        check(r.returncode == 0, "secret put rot-sign v2: " + r.stderr.strip())
        r = subprocess.run([NITRIDE, "secret", "rm", "rot-sign", "--version", "2"] + admin,
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "retire rot-sign v2: " + r.stderr.strip())

        ncfg = os.path.join(tmp, "nitrided.ini")
        with open(ncfg, "w") as f:
            f.write("[nitrided]\nattempts = 2\nbackoff_ms = 50\ntimeout_ms = 5000\n")
        with Snpsimd(SNPSIMD, boot, state_dir=state) as vm:
            nd, nsock = cb.start_nitrided(tmp, "rot", vm, aurl, purl, ncfg)
            procs.append(nd)
            vd, vsock = start_vhsmd(tmp, nsock)
            procs.append(vd)

            # 1. First use provisions provd's latest non-retired version: 1.
            ok, sig1, why = sign_verifies(vsock, tmp, pub1, "v1")
            check(ok, "first sign provisions v1; the signature verifies with v1's key: " + why)
            check(info(vsock, "rot-sign").get("version") == 1, "vhsm info: version 1")

            # 2. Several checks later: the retired v2 was never injected.
            time.sleep(3 * INTERVAL + 1)
            i = info(vsock, "rot-sign")
            check(i.get("version") == 1 and i.get("versions") == 1,
                  f"retired v2 is not injected by the rotation checks: {i}")

            # 3. A new version on provd reaches the running vHSM.
            r = put(pem3)
            check(r.returncode == 0, "secret put rot-sign v3: " + r.stderr.strip())
            t0, deadline = time.time(), time.time() + 20
            while time.time() < deadline and info(vsock, "rot-sign").get("version") != 3:
                time.sleep(0.2)
            i = info(vsock, "rot-sign")
            check(i.get("version") == 3 and i.get("versions") == 2,
                  f"vhsm info shows version 3 (1 kept) within 20 s "
                  f"({time.time() - t0:.1f} s): {i}")
            ok, sig3, why = sign_verifies(vsock, tmp, pub3, "v3")
            check(ok, "after rotation the signature verifies with v3's public key: " + why)
            ok, _, _ = sign_verifies(vsock, tmp, pub1, "v1again")
            check(not ok, "after rotation signatures no longer verify with v1's key")
            msg = os.path.join(tmp, "msg.bin")
            r = cb.vhsm(vsock, "verify", "rot-sign", "--in", msg, "--sig", sig1,
                        "--version", "1")
            check(r.returncode == 0, "v1 stays usable for verify: "
                  + (r.stdout + r.stderr).decode().strip())
            r = cb.vhsm(vsock, "verify", "rot-sign", "--in", msg, "--sig", sig1,
                        "--version", "2")
            check(r.returncode != 0, "version 2 (retired on provd) never existed in the vHSM: "
                  + r.stderr.decode().strip())

            # 4. Unchanged on provd: later checks add nothing.
            time.sleep(2 * INTERVAL + 1)
            i = info(vsock, "rot-sign")
            check(i.get("version") == 3 and i.get("versions") == 2,
                  f"no new version without a new release: {i}")
            with open(os.path.join(tmp, "vhsmd.log")) as f:
                log = f.read()
            check("rotate key=rot-sign version=3" in log and "version=2" not in log,
                  "vhsmd audited the rotation to v3 and nothing for v2")
    finally:
        for p in procs:
            cb.stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(cb.failures)} failure(s)")
    return 1 if cb.failures else 0


if __name__ == "__main__":
    sys.exit(main())
