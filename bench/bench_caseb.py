#!/usr/bin/python3
"""Case B flows per second and latency against the flow's crypto floor.

Starts the real daemons on loopback with HTTPS between nitrided and the
services (a throw-away CA and a P-256 server certificate for 127.0.0.1):
snpsimd, attestd, provd, nitrided, vhsmd.  Then bench_caseb (C, libvhsm)
drives the flows and measures the floor in process (docs/bench.md).  One flow
= an application's first sign on a key name vhsmd does not have: vhsmd holds
it, makes a transfer key, nitrided attests (challenge, report, attest) and
fetches the release from provd, vhsmd decrypts and installs it, and signs.
Every flow uses a new name (provd holds cb-bench-0 … cb-bench-N, all the same
P-256 key, whose public half checks every signature).

Usage: bench_caseb.py BENCH_CASEB SNPSIMD ATTESTD PROVD NITRIDED NITRIDE VHSMD VHSM
                      [--flows N] [--warmup W]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import services  # noqa: E402
from simtest import Snpsimd, stop  # noqa: E402

BENCH, SNPSIMD, ATTESTD, PROVD, NITRIDED, NITRIDE, VHSMD, VHSM = sys.argv[1:9]
ARGS = sys.argv[9:]
FLOWS = int(ARGS[ARGS.index("--flows") + 1]) if "--flows" in ARGS else 24
WARMUP = int(ARGS[ARGS.index("--warmup") + 1]) if "--warmup" in ARGS else 4
ISSUER = "https://attestd.bench.test"
PREFIX = "cb-bench-"


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
    tmp = tempfile.mkdtemp(prefix="bench-caseb-")
    procs = []
    try:
        measurement = subprocess.run(
            [NITRIDE, "measure", "--mode", "snp", "--vcpus", "2", "--vcpu-type", "EPYC-v4",
             "--ovmf", ovmf, "--kernel", kernel, "--initrd", initrd, "--append", append],
            capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        state, roots = os.path.join(tmp, "chip"), os.path.join(tmp, "roots")
        subprocess.run([SNPSIMD, "--state-dir", state, "--export-roots", roots], check=True,
                       capture_output=True, timeout=120)
        tls = services.tls_files(tmp)
        ca, crt, key = tls
        attestd, aurl, _ = services.start_attestd(ATTESTD, tmp, roots, measurement, ISSUER, tls)
        procs.append(attestd)
        provd, purl, adm = services.start_provd(PROVD, tmp, ISSUER, tls)
        procs.append(provd)

        pem, pub = os.path.join(tmp, "sign.pem"), os.path.join(tmp, "sign.pub.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", pem], check=True, capture_output=True,
                       timeout=60)
        subprocess.run(["openssl", "pkey", "-in", pem, "-pubout", "-out", pub], check=True,
                       capture_output=True, timeout=60)
        release = services.release_policy(measurement)
        for i in range(WARMUP + 3 * FLOWS):
            why = services.put_secret(NITRIDE, adm, tmp, f"{PREFIX}{i}", "p256", pem, release)
            if why is not None:
                raise RuntimeError(why)

        nlog_path = os.path.join(tmp, "nitrided.log")
        # --quiet: no line per request on stderr, which a Python thread of this
        # script would read (and wake for) during the timed flows.
        with Snpsimd(SNPSIMD, boot + ["--quiet"], state_dir=state) as vm, \
                open(nlog_path, "w") as nlog:
            ncfg = os.path.join(tmp, "nitrided.ini")
            nsock = os.path.join(tmp, "nitrided.sock")
            # CB_NITRIDED_EXTRA: more nitrided.ini lines, for A/B runs of one
            # setting (e.g. "cert_table = always").
            with open(ncfg, "w") as f:
                f.write(f"[nitrided]\nattempts = 2\nbackoff_ms = 50\ntimeout_ms = 5000\n"
                        f"ca_bundle = {ca}\n" + os.environ.get("CB_NITRIDED_EXTRA", ""))
            nd = subprocess.Popen([NITRIDED, "--config", ncfg, "--listen", nsock, "--vhsmd-uid",
                                   str(os.getuid()), "--attestd", aurl, "--provd", purl,
                                   "--snp", "sim:" + vm.socket],
                                  stdout=subprocess.DEVNULL, stderr=nlog)
            procs.append(nd)
            services.wait_path(nsock, nd, "nitrided")
            vsock = os.path.join(tmp, "vhsmd.sock")
            vpol = os.path.join(tmp, "vhsm-policy.json")
            with open(vpol, "w") as f:
                json.dump({"version": 1, "rules": [
                    {"principal": {"uid": os.getuid()}, "keys": ["*"], "operations": ["*"]}]}, f)
            vcfg = os.path.join(tmp, "vhsmd.ini")
            with open(vcfg, "w") as f:
                f.write(f"[vhsmd]\nsocket = {vsock}\npolicy = {vpol}\nstate_dir = {tmp}/vhsmd\n"
                        f"allow_insecure_memory = yes\n[sealing]\nstore = none\n"
                        f"[caseb]\nnitrided_socket = {nsock}\nhold_timeout_ms = 20000\n"
                        f"provision = {PREFIX}*\n")
            vd = subprocess.Popen([VHSMD, "--config", vcfg], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
            procs.append(vd)
            services.wait_path(vsock, vd, "vhsmd")
            r = subprocess.run([BENCH, "--socket", vsock, "--prefix", PREFIX, "--warmup", str(WARMUP),
                                "--flows", str(FLOWS), "--pubkey", pub, "--tls-cert", crt,
                                "--tls-key", key, "--tls-ca", ca, "--nitrided-log", nlog_path],
                               timeout=500)
            if r.returncode != 0:
                nlog.flush()
                with open(nlog_path) as f:
                    sys.stderr.write("nitrided log (tail):\n" + "".join(f.readlines()[-10:]))
            return r.returncode
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
