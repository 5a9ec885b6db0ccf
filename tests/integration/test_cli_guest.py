#!/usr/bin/python3
"""The guest-side CLI against snpsimd: report get, report verify with the
simulator's roots pinned explicitly, key derive and doctor.

Usage: test_cli_guest.py SNPSIMD NITRIDE
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simtest import Snpsimd  # noqa: E402

failures = []


def check(cond, msg):
    print(("ok " if cond else "FAIL: ") + msg)
    if not cond:
        failures.append(msg)


def run(cli, args, env=None):
    e = dict(os.environ)
    e.pop("NITRIDE_SNP", None)
    if env:
        e.update(env)
    p = subprocess.run([cli] + args, capture_output=True, text=True, timeout=120, env=e)
    return p.returncode, p.stdout, p.stderr


def main():
    snpsimd, cli = sys.argv[1], sys.argv[2]
    vec = os.environ.get("NITRIDE_VECTORS") or os.environ.get("NITRIDE_VECTORS_DEFAULT", "")
    with tempfile.TemporaryDirectory(prefix="cli-guest-") as tmp, Snpsimd(snpsimd) as sim:
        spec = "sim:" + sim.socket
        roots = sim.export_roots(os.path.join(tmp, "roots"))
        data = "".join("%02x" % i for i in range(64))
        rep = os.path.join(tmp, "report.bin")
        code, out, err = run(cli, ["report", "get", "--snp", spec, "--data", data, "--vmpl", "1",
                                   "--ext", "-o", rep])
        check(code == 0, f"report get --ext (exit {code}: {err.strip()})")
        check(os.path.getsize(rep) > 1184, "extended report file holds the certificate table")
        code, out, err = run(cli, ["report", "show", "--json", rep])
        fields = json.loads(out) if code == 0 else {}
        check(fields.get("report_data") == data, "REPORT_DATA echoed")
        check(fields.get("vmpl") == 1, "VMPL echoed")

        # Trusted only when pinned explicitly.
        code, out, err = run(cli, ["report", "verify", "--json", "--report", rep,
                                   "--roots", roots, "--pin-roots"])
        v = json.loads(out) if out.strip() else {}
        check(code == 0 and v.get("verified") is True,
              f"simulated report verifies with --pin-roots ({v.get('detail')})")
        code, out, err = run(cli, ["report", "verify", "--json", "--report", rep, "--roots", roots])
        v = json.loads(out) if out.strip() else {}
        check(code == 2 or (code == 1 and v.get("reason") == "chain"),
              f"without --pin-roots the simulator's roots are refused (exit {code}, {v.get('reason')})")
        if os.path.isdir(os.path.join(vec, "amd")):
            code, out, err = run(cli, ["report", "verify", "--json", "--report", rep,
                                       "--roots", os.path.join(vec, "amd")])
            v = json.loads(out) if out.strip() else {}
            check(code == 1 and v.get("reason") == "chain",
                  f"against AMD's roots: rejected (chain), got exit {code} {v.get('reason')}")
        code, out, err = run(cli, ["report", "verify", "--report", rep, "--pin-roots"])
        check(code == 2 and "--roots" in err, "--pin-roots without --roots is a usage error")

        # Table to its own file.
        rep2, tab = os.path.join(tmp, "r2.bin"), os.path.join(tmp, "certs.bin")
        code, out, err = run(cli, ["report", "get", "--snp", spec, "--ext", "-o", rep2,
                                   "--certs-out", tab])
        check(code == 0 and os.path.getsize(rep2) == 1184 and os.path.getsize(tab) > 0,
              "report get --certs-out splits report and table")
        code, out, err = run(cli, ["report", "verify", "--report", rep2, "--certs", tab,
                                   "--roots", roots, "--pin-roots"])
        check(code == 0, f"report + --certs verifies ({err.strip()})")

        # Derived keys: deterministic, field-sensitive.
        def derive(*extra):
            c, o, e = run(cli, ["key", "derive", "--snp", spec] + list(extra))
            return c, o.strip(), e
        c1, k1, _ = derive("--fields", "measurement,policy")
        c2, k2, _ = derive("--fields", "measurement,policy")
        c3, k3, _ = derive("--fields", "measurement")
        c4, k4, _ = derive("--fields", "measurement", "--root", "vmrk")
        check(c1 == 0 and len(k1) == 64 and k1 == k2, "key derive is deterministic")
        check(c3 == 0 and k3 != k1, "different field selection, different key")
        check(c4 == 0 and k4 != k3, "different root key, different key")
        c, o, e = derive("--fields", "bogus")
        check(c == 2 and "bogus" in e, "unknown field is a usage error")
        c, o, e = derive("--svn", "4294967295", "--fields", "guest_svn")
        check(c == 1 and e.strip() != "", f"SVN above the launch SVN is refused by the firmware ({e.strip()})")

        # Backend selection and doctor.
        c, o, e = run(cli, ["doctor", "--snp", spec])
        check(c == 0 and "usable: yes" in o, "doctor with the simulator: usable")
        c, o, e = run(cli, ["doctor", "--json"], env={"NITRIDE_SNP": spec})
        d = json.loads(o) if o.strip() else {}
        check(c == 0 and d.get("usable") is True and d.get("backend") == spec,
              "doctor honours $NITRIDE_SNP")
        c, o, e = run(cli, ["doctor", "--snp", "tsm:" + os.path.join(tmp, "no-such-root")])
        check(c == 1 and "usable: no" in o, "doctor with a missing configfs root: not usable")
        c, o, e = run(cli, ["report", "get", "--snp", "sim:" + os.path.join(tmp, "nosock"),
                            "-o", os.path.join(tmp, "x.bin")])
        check(c != 0 and e.strip() != "" and not os.path.exists(os.path.join(tmp, "x.bin")),
              "unreachable simulator: clear error, no file written")
    check_measured_boot(snpsimd, cli, vec)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


def check_measured_boot(snpsimd, cli, vec):
    """snpsimd computes its MEASUREMENT from the boot images exactly as
    `nitride measure` does; a changed command line changes it."""
    m = os.path.join(vec, "measure")
    if not os.path.isdir(m):
        print("SKIP measured boot: no measurement vectors")
        return
    ovmf = os.path.join(m, "fixtures", "ovmf_AmdSev_suffix.bin")
    kernel = os.path.join(m, "inputs", "kernel.bin")
    initrd = os.path.join(m, "inputs", "initrd.bin")
    for append in ("console=ttyS0", "console=ttyS0 init=/bin/sh"):
        code, expected, err = run(cli, ["measure", "--mode", "snp", "--vcpus", "2",
                                        "--vcpu-type", "EPYC-v4", "--ovmf", ovmf,
                                        "--kernel", kernel, "--initrd", initrd,
                                        "--append", append])
        check(code == 0 and len(expected.strip()) == 96, f"nitride measure ({err.strip()})")
        boot = ["--boot-ovmf", ovmf, "--boot-kernel", kernel, "--boot-initrd", initrd,
                "--boot-append", append, "--boot-vcpus", "2"]
        with tempfile.TemporaryDirectory(prefix="cli-boot-") as tmp, Snpsimd(snpsimd, boot) as sim:
            rep = os.path.join(tmp, "r.bin")
            code, out, err = run(cli, ["report", "get", "--snp", "sim:" + sim.socket, "-o", rep])
            code2, out2, err2 = run(cli, ["report", "show", "--json", rep])
            got = json.loads(out2).get("measurement") if code == 0 and code2 == 0 else None
            check(got == expected.strip(),
                  f"measured boot with append {append!r}: report {got} == nitride measure")
    for bad, why in ((["--boot-ovmf", ovmf, "--measurement", "00" * 48], "measurement"),
                     (["--boot-kernel", kernel], "boot_ovmf"),
                     (["--boot-ovmf", os.path.join(m, "nonexistent.fd")], "boot_ovmf")):
        p = subprocess.run([snpsimd, "--check-config"] + bad, capture_output=True, text=True,
                           timeout=60)
        check(p.returncode != 0 and why in p.stderr,
              f"snpsimd refuses {' '.join(a for a in bad if a.startswith('--'))}: {p.stderr.strip()}")


if __name__ == "__main__":
    sys.exit(main())
