#!/usr/bin/python3
"""Case B flows per second and latency against the flow's crypto floor.

Starts the real daemons on loopback (as tests/integration/test_caseb_vhsm.py):
snpsimd, attestd, provd, nitrided, vhsmd.  One flow = an application's first
`vhsm sign` on a key name vhsmd does not have: vhsmd holds it, makes a
transfer key, nitrided attests (challenge, report, attest) and fetches the
release from provd, vhsmd decrypts and installs it, and signs.  Every flow
uses a new name (provd holds bench-0 … bench-N).

Floor (same run, in-process loops, python3-cryptography = OpenSSL 3.0): the
sum of one P-384 ECDSA verify (the report), ES256 sign + verify (the token),
ECDH P-256 + AES-256-GCM of 200 bytes (the JWE), one TLS 1.3 handshake
(ECDHE P-256 + ECDSA P-256 certificate; the bench itself runs plain HTTP on
loopback, so this is counted but not spent), and an RSA-4096 PSS verify that
is *not* counted (attestd caches the verified VCEK chain).
Reports p50/floor (goal <= 2) and throughput / (2 cores / floor) (goal >= 0.5).

Usage: bench_caseb.py SNPSIMD ATTESTD PROVD NITRIDED NITRIDE VHSMD VHSM [--flows N]
"""
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    import test_caseb_vhsm as cb  # noqa: E402
    from simtest import Snpsimd  # noqa: E402
except (ImportError, SystemExit):
    print("SKIP: needs /usr/bin/python3 with python3-cryptography and python3-jwcrypto")
    sys.exit(77)

cb.SNPSIMD, cb.ATTESTD, cb.PROVD, cb.NITRIDED, cb.NITRIDE, cb.VHSMD, cb.VHSM = sys.argv[1:8]
FLOWS = int(sys.argv[sys.argv.index("--flows") + 1]) if "--flows" in sys.argv else 24


def per_op(fn, seconds=0.3):
    """Seconds per call of fn, openssl-speed style (loop for a fixed time)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def tls_handshake_cost(tmp):
    key = os.path.join(tmp, "tls.key")
    crt = os.path.join(tmp, "tls.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                    "-subj", "/CN=localhost", "-days", "1"], check=True, capture_output=True)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.minimum_version = ssl.TLSVersion.TLSv1_3
    sctx.load_cert_chain(crt, key)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.minimum_version = ssl.TLSVersion.TLSv1_3
    cctx.load_verify_locations(crt)

    def one():
        cin, cout, sin, sout = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
        c = cctx.wrap_bio(cin, cout, server_hostname="localhost")
        s = sctx.wrap_bio(sin, sout, server_side=True)
        done_c = done_s = False
        while not (done_c and done_s):
            for obj, is_c in ((c, True), (s, False)):
                try:
                    obj.do_handshake()
                    if is_c:
                        done_c = True
                    else:
                        done_s = True
                except ssl.SSLWantReadError:
                    pass
            sin.write(cout.read())
            cin.write(sout.read())
    return per_op(one)


def floor(tmp):
    msg = os.urandom(1200)
    k384 = ec.generate_private_key(ec.SECP384R1())
    s384 = k384.sign(msg, ec.ECDSA(hashes.SHA384()))
    p384 = k384.public_key()
    k256 = ec.generate_private_key(ec.SECP256R1())
    p256 = k256.public_key()
    s256 = k256.sign(msg, ec.ECDSA(hashes.SHA256()))
    aes = AESGCM(os.urandom(32))
    peer = ec.generate_private_key(ec.SECP256R1()).public_key()
    rk = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
    rsig = rk.sign(msg, pss, hashes.SHA384())
    rpub = rk.public_key()
    c = {
        "P-384 verify": per_op(lambda: p384.verify(s384, msg, ec.ECDSA(hashes.SHA384()))),
        "ES256 sign": per_op(lambda: k256.sign(msg, ec.ECDSA(hashes.SHA256()))),
        "ES256 verify": per_op(lambda: p256.verify(s256, msg, ec.ECDSA(hashes.SHA256()))),
        "ECDH P-256 + AES-GCM": per_op(
            lambda: aes.encrypt(ec.generate_private_key(ec.SECP256R1()).exchange(ec.ECDH(), peer)[:12],
                                msg[:200], None)),
        "TLS 1.3 handshake": tls_handshake_cost(tmp),
    }
    rsa_cost = per_op(lambda: rpub.verify(rsig, msg, pss, hashes.SHA384()))
    return c, rsa_cost


def run(vsock, names, par, tmp):
    lat, lock, errs = [], threading.Lock(), []
    it = iter(names)

    def worker():
        while True:
            with lock:
                name = next(it, None)
            if name is None:
                return
            t0 = time.perf_counter()
            r = cb.vhsm(vsock, "sign", name, "--in", "/dev/null", "--out", os.devnull)
            dt = time.perf_counter() - t0
            with lock:
                (lat if r.returncode == 0 else errs).append(dt if r.returncode == 0 else r.stderr)
    t0 = time.perf_counter()
    th = [threading.Thread(target=worker) for _ in range(par)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    wall = time.perf_counter() - t0
    if errs:
        raise RuntimeError(f"{len(errs)} flow(s) failed: {errs[0]!r}")
    lat.sort()
    return len(lat) / wall, lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


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
        r = subprocess.run([cb.NITRIDE, "measure", "--mode", "snp", "--vcpus", "2", "--vcpu-type",
                            "EPYC-v4", "--ovmf", ovmf, "--kernel", kernel, "--initrd", initrd,
                            "--append", append], capture_output=True, text=True, timeout=60,
                           check=True)
        measurement = r.stdout.strip()
        state, roots = os.path.join(tmp, "chip"), os.path.join(tmp, "roots")
        subprocess.run([cb.SNPSIMD, "--state-dir", state, "--export-roots", roots], check=True,
                       capture_output=True, timeout=120)
        attestd, aurl, provd, purl, _ = cb.setup_services(tmp, roots, measurement)
        procs += [attestd, provd]
        good = {"all": [{"measurement": [measurement]}], "ear_status": ["affirming"]}
        pem = os.path.join(tmp, "sign.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", pem], check=True, capture_output=True)
        names = [f"cb-bench-{i}" for i in range(2 + 2 * FLOWS)]
        for n in names:
            cb.put_secret(tmp, purl, n, "p256", pem, good)
        if cb.failures:
            raise RuntimeError("setup failed: " + "; ".join(cb.failures))
        ncfg = os.path.join(tmp, "nitrided.ini")
        with open(ncfg, "w") as f:
            f.write("[nitrided]\nattempts = 2\nbackoff_ms = 50\ntimeout_ms = 5000\n")
        with Snpsimd(cb.SNPSIMD, boot, state_dir=state) as vm:
            nd, nsock = cb.start_nitrided(tmp, "b", vm, aurl, purl, ncfg)
            procs.append(nd)
            vd, vsock = cb.start_vhsmd(tmp, "b", nsock, 20000)
            procs.append(vd)
            run(vsock, names[:2], 1, tmp)  # warm-up (attestd's chain cache, connections)
            r1 = run(vsock, names[2:2 + FLOWS], 1, tmp)
            r4 = run(vsock, names[2 + FLOWS:], 4, tmp)
            # Not Case B: the same `vhsm sign` on an installed key (process start,
            # connect, sign) — the part of each flow's latency that is the client's.
            base_p50 = run(vsock, [names[2]] * 20, 1, tmp)[1]
        costs, rsa_cost = floor(tmp)
    finally:
        for p in procs:
            cb.stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    fl = sum(costs.values())
    bound = 2.0 / fl
    for k, v in costs.items():
        print(f"floor  {k:22s} {v * 1e3:8.3f} ms")
    print(f"floor  {'RSA-4096 PSS verify':22s} {rsa_cost * 1e3:8.3f} ms (not counted: the chain is cached)")
    print(f"floor  total                  {fl * 1e3:8.3f} ms -> 2-core crypto bound {bound:.0f} flows/s")
    print(f"client `vhsm sign` on an installed key (CLI start + connect + sign): p50 {base_p50 * 1e3:.1f} ms"
          " (part of every flow's latency, not crypto)")
    for label, (tput, p50, p99) in (("1 client ", r1), ("4 clients", r4)):
        print(f"caseb  {label}: {tput:6.1f} flows/s  p50 {p50 * 1e3:7.1f} ms  p99 {p99 * 1e3:7.1f} ms  "
              f"p50/floor {p50 / fl:5.1f}x (goal <= 2)  throughput/bound {tput / bound:.3f} (goal >= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
