#!/usr/bin/python3
"""`nitride measure` against the reference's vectors (virtee/sev-snp-measure).

1. Every row of measure/cases.tsv: the arguments (in the reference tool's
   syntax) through `nitride measure`, run in a scratch directory that has
   fixtures/ and inputs/ from the vectors, so the relative paths resolve and
   --dump-vmsa writes there.  The exit code must match; on success stdout is
   the expected digest; on failure stdout is empty and stderr carries the
   reference's message.  --dump-vmsa rows must also write vmsa0.bin and
   vmsa1.bin equal, byte for byte, to measure/vmsa/<case>_{bsp,ap}.bin.
2. The upstream unit-test vectors of PROVENANCE.md section 2 (test_guest.py,
   with /dev/null kernels, SEV and SEV-ES modes) as extra rows.
3. --json gives a reference-value entry whose measurement equals the hex
   output.

Rows that name a file this machine does not have (PROVENANCE.md: firmware
under /usr/share, synth/ images, the SVSM fixtures) are skipped with the
reason printed.  Usage: test_measure.py NITRIDE_BINARY.  Exits 77 (skip) when
the vectors are absent.
"""
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile

failures = []
passed = 0
skipped = []

SUF = "fixtures/ovmf_AmdSev_suffix.bin"
X64 = "fixtures/ovmf_OvmfX64_suffix.bin"
K_NULL = ["--kernel", "/dev/null", "--initrd", "/dev/null"]
APPEND = ["--append", "console=ttyS0 loglevel=7"]
OVMF_HASH = ("086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa"
             "16aff8c374c2a55c467a50da6d466b74")
SNP1 = ["--mode", "snp", "--vcpus", "1", "--vcpu-type", "EPYC-v4"]
SNP4 = ["--mode", "snp", "--vcpus", "4", "--vcpu-type", "EPYC-v4"]

# PROVENANCE.md section 2 (upstream tests/test_guest.py at 8f2b337), as CLI rows:
# (name, exit, args, expected stdout or the stderr message for exit 1).
UPSTREAM = [
    ("test_snp_default", 0, SNP1 + ["--ovmf", SUF] + K_NULL + APPEND + ["--guest-features", "0x21"],
     "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977"),
    ("test_snp_guest_feature_snp_only", 0, SNP1 + ["--ovmf", SUF] + K_NULL + APPEND + ["--guest-features", "0x1"],
     "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa"),
    ("test_snp_without_kernel_default", 0, SNP1 + ["--ovmf", SUF, "--guest-features", "0x21"],
     "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b"),
    ("test_snp_with_multiple_vcpus_default", 0, SNP4 + ["--ovmf", SUF] + K_NULL + ["--append", "", "--guest-features", "0x21"],
     "4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942"),
    ("test_snp_with_multiple_vcpus_feature_snp_only", 0, SNP4 + ["--ovmf", SUF] + K_NULL + ["--guest-features", "0x1"],
     "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"),
    ("test_snp_ovmf_hash_full_default", 0,
     SNP1 + ["--ovmf", SUF] + K_NULL + APPEND + ["--guest-features", "0x21", "--snp-ovmf-hash", OVMF_HASH],
     "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977"),
    ("test_snp_ovmf_hash_gen_default", 0,
     SNP1 + ["--ovmf", SUF] + K_NULL + ["--guest-features", "0x21", "--snp-ovmf-hash", OVMF_HASH],
     "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198"),
    ("test_snp_ovmf_hash_gen_feature_snp_only", 0,
     SNP1 + ["--ovmf", SUF] + K_NULL + ["--guest-features", "0x1", "--snp-ovmf-hash", OVMF_HASH],
     "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5"),
    ("test_snp_ec2_default", 0, SNP1 + ["--vmm-type", "ec2", "--ovmf", SUF] + K_NULL + ["--guest-features", "0x21"],
     "0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb"),
    ("test_snp_ec2_feature_snp_only", 0, SNP1 + ["--vmm-type", "ec2", "--ovmf", SUF] + K_NULL,
     "0883bd0eeb716e65b7b977a321c278d1e51b33b5c655fab985443bbcc65c086b9c15e8a0bd8811050dec7e24964e5056"),
    ("test_snp_gce_default", 0, ["--mode", "snp", "--vcpus", "1", "--vmm-type", "gce", "--ovmf", SUF] + K_NULL,
     "5da7106cf14cf46b1725ebab123eb9e53bd46a1e9f400cd0c08e7827b04b688ea8b4e403c8404efed4397ea5d5d0722e"),
    ("test_snp_gce_with_multiple_vcpus_default", 0,
     ["--mode", "snp", "--vcpus", "4", "--vmm-type", "gce", "--ovmf", SUF] + K_NULL,
     "5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d"),
    ("test_snp_with_ovmfx64_without_default", 0, SNP1 + ["--ovmf", X64, "--guest-features", "0x21"],
     "28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385"),
    ("test_snp_with_ovmfx64_and_kernel_should_fail", 1, SNP1 + ["--ovmf", X64] + K_NULL + ["--guest-features", "0x21"],
     "Error: Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section"),
    ("test_seves", 0, ["--mode", "seves", "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--ovmf", SUF] + K_NULL,
     "13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c"),
    ("test_seves_with_multiple_vcpus", 0,
     ["--mode", "seves", "--vcpus", "4", "--vcpu-type", "EPYC-v4", "--ovmf", SUF] + K_NULL,
     "0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91"),
    ("test_seves_with_ovmfx64_and_kernel_should_fail", 1,
     ["--mode", "seves", "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--ovmf", X64] + K_NULL,
     "Error: Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement"),
    ("test_sev", 0, ["--mode", "sev", "--ovmf", SUF] + K_NULL + APPEND,
     "82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff"),
    ("test_sev_with_kernel_without_initrd_and_append", 0, ["--mode", "sev", "--ovmf", SUF, "--kernel", "/dev/null"],
     "77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898"),
    ("test_sev_with_ovmfx64_without_kernel", 0, ["--mode", "sev", "--ovmf", X64],
     "b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da"),
    ("test_sev_with_ovmfx64_and_kernel_should_fail", 1, ["--mode", "sev", "--ovmf", X64] + K_NULL,
     "Error: Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement"),
]

PATH_OPTS = ("--ovmf", "--kernel", "--initrd", "--svsm", "--vars-file")


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def ok(msg):
    global passed
    passed += 1
    print("ok", msg)


def skip(name, why):
    skipped.append(name)
    print(f"SKIP {name}: {why}")


def missing_input(args, workdir):
    """The first path argument that does not exist here, or None."""
    for i, a in enumerate(args[:-1]):
        if a in PATH_OPTS:
            p = args[i + 1]
            if p and not os.path.exists(os.path.join(workdir, p)):
                return p
    return None


def run(cli, args, cwd):
    p = subprocess.run([cli, "measure"] + args, capture_output=True, text=True,
                       timeout=120, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def expected_error_text(expected):
    # "(argparse usage on stderr) sev-snp-measure: error: MSG" -> "MSG";
    # "Error: MSG" -> "MSG".
    for marker in ("error: ", "Error: "):
        if marker in expected:
            return expected.split(marker, 1)[1].strip()
    return expected.strip()


def check_row(cli, vec, workdir, name, code_want, args, want):
    gone = missing_input(args, workdir)
    if gone is not None:
        skip(name, f"input {gone} is not available here (PROVENANCE.md: not shipped with the vectors)")
        return
    for f in os.listdir(workdir):
        if f.startswith("vmsa") and f.endswith(".bin"):
            os.unlink(os.path.join(workdir, f))
    code, out, err = run(cli, args, workdir)
    if code != code_want:
        fail(f"{name}: exit {code}, expected {code_want}; stderr: {err.strip()}")
        return
    if code_want == 0:
        if out.strip() != want.strip():
            fail(f"{name}: got {out.strip()!r}, expected {want.strip()!r}")
            return
    else:
        if out.strip() != "":
            fail(f"{name}: printed {out.strip()!r} on failure")
            return
        text = expected_error_text(want)
        if text not in err:
            fail(f"{name}: stderr {err.strip()!r} lacks {text!r}")
            return
    if "--dump-vmsa" in args:
        base = name[len("dump_"):].rsplit("_", 1)[0]   # dump_ec2_f1_2vcpu -> ec2_f1
        for i, role in ((0, "bsp"), (1, "ap")):
            with open(os.path.join(vec, "measure", "vmsa", f"{base}_{role}.bin"), "rb") as f:
                expect = f.read()
            path = os.path.join(workdir, f"vmsa{i}.bin")
            if not os.path.exists(path):
                fail(f"{name}: vmsa{i}.bin was not written")
                return
            with open(path, "rb") as f:
                got = f.read()
            if got != expect:
                diff = next((j for j in range(min(len(got), len(expect))) if got[j] != expect[j]),
                            min(len(got), len(expect)))
                fail(f"{name}: vmsa{i}.bin differs from {base}_{role}.bin at byte 0x{diff:x}")
                return
    ok(f"{name}: exit {code}" + (f" {out.strip()[:16]}…" if code == 0 else ""))


def check_json(cli, workdir):
    args = SNP1 + ["--ovmf", SUF, "--kernel", "inputs/kernel.bin", "--initrd", "inputs/initrd.bin"] + APPEND
    code, out, err = run(cli, args + ["--json"], workdir)
    if code != 0:
        fail(f"--json: exit {code}: {err.strip()}")
        return
    try:
        entry = json.loads(out)
    except ValueError:
        fail(f"--json: not JSON: {out!r}")
        return
    want = "b9574f7caf01974ddee50edb618eae329d55fcd90d3fff2f1d95f7ee275d27ad6587532d77deda43292f2acc5a1d49ec"
    inputs = entry.get("inputs", {})
    if entry.get("measurement") != want or entry.get("mode") != "snp":
        fail(f"--json: measurement/mode {entry.get('measurement')}/{entry.get('mode')}")
    elif inputs.get("kernel_sha256") != "1720d41b2585edd83d1ba06f0f2e18921abee329f0406c38fd561e7729203fb7" \
            or inputs.get("initrd_sha256") != "c78bc06abd1f3d30ef3893476b6c6678ba3ee86f92d01b7920fce5c4849f3e30" \
            or inputs.get("cmdline_sha256") != "321c8eec6a77bad179511397f913a083067ad8cb737bb260aacbfe8df70fc50a" \
            or inputs.get("vcpus") != 1 or inputs.get("vcpu_sig") != "0x800f12" \
            or inputs.get("vmm_type") != "QEMU" or inputs.get("guest_features") != "0x1":
        fail(f"--json: inputs {inputs}")
    else:
        ok("--json: reference-value entry with the measurement and its inputs")


def check_usage_errors(cli, workdir):
    cases = [
        ("initrd without kernel", SNP1 + ["--ovmf", SUF, "--initrd", "inputs/initrd.bin"], 2,
         "--kernel required when using --initrd"),
        ("append without kernel", SNP1 + ["--ovmf", SUF, "--append", "x"], 2,
         "--kernel required when using --append"),
        ("no --vcpus", ["--mode", "snp", "--vcpu-type", "EPYC-v4", "--ovmf", SUF], 2,
         "missing --vcpus N in guest mode 'snp'"),
        ("bad --vcpu-type", ["--mode", "snp", "--vcpus", "1", "--vcpu-type", "EPYC-v9", "--ovmf", SUF], 2,
         "EPYC-v9"),
        ("bad --vmm-type", SNP1 + ["--vmm-type", "xen", "--ovmf", SUF], 2, "unknown VMM type 'xen'"),
        ("bad --guest-features", SNP1 + ["--ovmf", SUF, "--guest-features", "0xZZ"], 2, "0xZZ"),
        ("missing firmware", SNP1 + ["--ovmf", "fixtures/does-not-exist.bin"], 2,
         "fixtures/does-not-exist.bin"),
        ("--dump-vmsa in sev mode", ["--mode", "sev", "--ovmf", SUF, "--dump-vmsa"], 2, "--dump-vmsa"),
        ("short --snp-ovmf-hash", SNP1 + ["--ovmf", SUF, "--snp-ovmf-hash", "abcd"], 2, "--snp-ovmf-hash"),
        ("no --mode", ["--ovmf", SUF], 2, "--mode"),
        ("family without model", ["--mode", "snp", "--vcpus", "1", "--vcpu-family", "25", "--ovmf", SUF], 2,
         "--vcpu-model"),
    ]
    for name, args, want, text in cases:
        code, out, err = run(cli, args, workdir)
        if code != want or out != "" or text not in err:
            fail(f"{name}: exit {code} (expected {want}), stdout {out!r}, stderr {err.strip()!r}")
        else:
            ok(f"{name}: exit {code}: {err.strip().splitlines()[-1]}")


def main():
    if len(sys.argv) != 2:
        print("usage: test_measure.py NITRIDE_BINARY", file=sys.stderr)
        return 2
    cli = os.path.abspath(sys.argv[1])
    vec = os.environ.get("NITRIDE_VECTORS") or os.environ.get("NITRIDE_VECTORS_DEFAULT", "")
    cases = os.path.join(vec, "measure", "cases.tsv")
    if not os.path.isfile(cases):
        print(f"SKIP: no measurement vectors at {cases}")
        return 77
    probe = subprocess.run([cli, "measure", "--help"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0 or "--snp-ovmf-hash" not in probe.stdout:
        print(f"FAIL: {cli} has no 'measure' command (cmd_measure is not in the dispatcher): "
              f"{probe.stderr.strip()[:200]}")
        return 1
    with open(cases, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader)  # header
        rows = [r for r in reader if r and not r[0].startswith("#")]
    if len(rows) < 20:
        fail(f"cases.tsv has only {len(rows)} rows")
    with tempfile.TemporaryDirectory(prefix="nitride-measure-") as workdir:
        for sub in ("fixtures", "inputs"):
            os.symlink(os.path.join(os.path.abspath(vec), "measure", sub), os.path.join(workdir, sub))
        for row in rows:
            if len(row) != 4:
                fail(f"cases.tsv row {row[:1]}: {len(row)} columns")
                continue
            name, code, args, want = row
            check_row(cli, vec, workdir, name, int(code), shlex.split(args), want)
        for name, code, args, want in UPSTREAM:
            check_row(cli, vec, workdir, "upstream:" + name, code, args, want)
        check_json(cli, workdir)
        check_usage_errors(cli, workdir)
    print(f"{passed} passed, {len(failures)} failed, {len(skipped)} skipped"
          + (f" ({', '.join(skipped)})" if skipped else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
