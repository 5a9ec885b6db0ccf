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
import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from simtest import Snpsimd, closed_port, stop  # noqa: E402

BENCH, SNPSIMD, ATTESTD, PROVD, NITRIDED, NITRIDE, VHSMD, VHSM = sys.argv[1:9]
ARGS = sys.argv[9:]
FLOWS = int(ARGS[ARGS.index("--flows") + 1]) if "--flows" in ARGS else 24
WARMUP = int(ARGS[ARGS.index("--warmup") + 1]) if "--warmup" in ARGS else 4
ISSUER = "https://attestd.bench.test"
PREFIX = "cb-bench-"


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=60)


def tls_files(tmp):
    """A CA and a server certificate for IP 127.0.0.1 signed by it (as scripts/demo.sh)."""
    ca, cakey = os.path.join(tmp, "ca.pem"), os.path.join(tmp, "ca.key")
    crt, key, csr = (os.path.join(tmp, n) for n in ("tls.crt", "tls.key", "tls.csr"))
    ext = os.path.join(tmp, "san.ext")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "1", "-subj", "/CN=bench CA", "-keyout", cakey, "-out", ca)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr)
    with open(ext, "w") as f:
        f.write("subjectAltName = IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial", "-days", "1",
            "-extfile", ext, "-out", crt)
    return ca, crt, key


def start(argv, prefix, log=None):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.startswith(prefix):
        p.kill()
        p.wait()
        raise RuntimeError(f"{argv[0]} did not start: {line!r}")
    return p, line.split()[2]


def wait_path(path, proc, what):
    for _ in range(400):
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode})")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not create {path}")


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
        ca, crt, key = tls_files(tmp)

        pol = os.path.join(tmp, "attest-policy.json")
        with open(pol, "w") as f:
            json.dump({"measurements": [measurement], "vmpls": [0], "signing_keys": ["vcek"],
                       "products": ["genoa"], "guest_policy": {"allow_debug": False}}, f)
        acfg = os.path.join(tmp, "attestd.ini")
        with open(acfg, "w") as f:
            f.write(f"[attestd]\nlisten = 127.0.0.1:0\ntls_cert = {crt}\ntls_key = {key}\n"
                    f"state_dir = {tmp}/attestd\npolicy = {pol}\nextra_roots_dir = {roots}\n"
                    f"kds_url = http://127.0.0.1:{closed_port()}\nkds_retries = 1\nkds_timeout = 5\n"
                    f"issuer = {ISSUER}\nworkers = 2\n")
        attestd, aurl = start([ATTESTD, "--config", acfg], "attestd: listening")
        procs.append(attestd)
        ctx = ssl.create_default_context(cafile=ca)
        with open(os.path.join(tmp, "as.jwks"), "wb") as f:
            f.write(urllib.request.urlopen(aurl + "/v1/jwks", timeout=10, context=ctx).read())

        admin = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        h = subprocess.run([PROVD, "--hash-token"], input=admin, capture_output=True, text=True,
                           check=True, timeout=30).stdout.strip()
        with open(os.path.join(tmp, "tokens"), "w") as f:
            f.write(f"admin {h} bench\n")
        with open(os.path.join(tmp, "admin.token"), "w") as f:
            f.write(admin + "\n")
        pcfg = os.path.join(tmp, "provd.ini")
        with open(pcfg, "w") as f:
            f.write(f"[provd]\nlisten = 127.0.0.1:0\ntls_cert = {crt}\ntls_key = {key}\n"
                    f"state_dir = {tmp}/provd\nas_jwks = {tmp}/as.jwks\nissuer = {ISSUER}\n"
                    f"admin_tokens = {tmp}/tokens\nworkers = 2\n")
        provd, purl = start([PROVD, "--config", pcfg], "provd: listening")
        procs.append(provd)

        pem, pub = os.path.join(tmp, "sign.pem"), os.path.join(tmp, "sign.pub.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", pem)
        openssl("pkey", "-in", pem, "-pubout", "-out", pub)
        release = os.path.join(tmp, "release.json")
        with open(release, "w") as f:
            json.dump({"all": [{"measurement": [measurement]}], "ear_status": ["affirming"]}, f)
        adm = ["--url", purl, "--token-file", os.path.join(tmp, "admin.token"), "--cacert", ca]
        for i in range(WARMUP + 3 * FLOWS):
            name = f"{PREFIX}{i}"
            for argv in ([NITRIDE, "secret", "put", name, "--type", "p256", "--value-file", pem],
                         [NITRIDE, "policy", "set", name, release]):
                r = subprocess.run(argv + adm, capture_output=True, text=True, timeout=60)
                if r.returncode != 0:
                    raise RuntimeError(f"{' '.join(argv[1:3])} {name}: {r.stderr.strip()}")

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
            wait_path(nsock, nd, "nitrided")
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
            wait_path(vsock, vd, "vhsmd")
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
