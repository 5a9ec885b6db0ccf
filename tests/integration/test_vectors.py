#!/usr/bin/python3
"""The shared SEV-SNP vectors through the `nitride` CLI.

1. Every row of snp/cases.tsv: `nitride report verify ... --json` gives the
   expected verdict, one of the expected reason classes, and the matching
   exit status (0 verified, 1 rejected).
2. Every case of snp/fields.json equals `nitride report show --json`.
3. The synthetic report+certificate table verifies from the table alone.

Usage: test_vectors.py NITRIDE_BINARY   (vectors from $NITRIDE_VECTORS)
Exits 77 (skip) when the vectors are absent.
"""
import csv
import json
import os
import subprocess
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def run(cli, args):
    p = subprocess.run([cli] + args, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def check_cases(cli, vec):
    with open(os.path.join(vec, "snp", "cases.tsv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if len(rows) < 10:
        fail(f"cases.tsv has only {len(rows)} rows")
    for row in rows:
        args = ["report", "verify", "--json",
                "--report", os.path.join(vec, "snp", row["report"]),
                "--cert", os.path.join(vec, "snp", row["cert"]),
                "--roots", os.path.join(vec, "amd"),
                "--product", row["product"]]
        if row["at"] != "now":
            args += ["--at", row["at"]]
        code, out, err = run(cli, args)
        try:
            verdict = json.loads(out)
        except ValueError:
            fail(f"{row['name']}: no JSON verdict (exit {code}): {err.strip()}")
            continue
        expect = row["expect"]
        if expect == "ok":
            if code != 0 or verdict.get("verified") is not True or verdict.get("reason") is not None:
                fail(f"{row['name']}: expected ok, got exit {code} {verdict}")
            elif verdict.get("signing_key") != row["key"] or verdict.get("product") != row["product"]:
                fail(f"{row['name']}: signing_key/product {verdict.get('signing_key')}/"
                     f"{verdict.get('product')}, expected {row['key']}/{row['product']}")
            else:
                print(f"ok {row['name']}: verified")
        else:
            classes = expect.split(":", 1)[1].split("|")
            if code != 1 or verdict.get("verified") is not False:
                fail(f"{row['name']}: expected rejection {classes}, got exit {code} {verdict}")
            elif verdict.get("reason") not in classes:
                fail(f"{row['name']}: reason {verdict.get('reason')!r} not in {classes}: "
                     f"{verdict.get('detail')}")
            elif not verdict.get("detail"):
                fail(f"{row['name']}: rejection without detail")
            else:
                print(f"ok {row['name']}: rejected ({verdict['reason']}): {verdict['detail']}")


def tcb_equal(ours, theirs):
    # fields.json writes raw as the 8 bytes in memory order; we print the
    # little-endian integer, as for every other u64 field.
    raw = int.from_bytes(bytes.fromhex(theirs["raw"]), "little")
    if int(ours["raw"], 16) != raw:
        return False
    for k, v in theirs.items():
        if k != "raw" and ours.get(k) != v:
            return False
    return set(ours) == set(theirs)


def check_fields(cli, vec):
    with open(os.path.join(vec, "snp", "fields.json")) as f:
        fields = json.load(f)
    with open(os.path.join(vec, "snp", "cases.tsv"), newline="") as f:
        reports = {r["name"]: r["report"] for r in csv.DictReader(f, delimiter="\t")}
    for name, want in sorted(fields.items()):
        code, out, err = run(cli, ["report", "show", "--json",
                                   os.path.join(vec, "snp", reports[name])])
        if code != 0:
            fail(f"{name}: report show exit {code}: {err.strip()}")
            continue
        got = json.loads(out)
        bad = []
        for key, value in want.items():
            if key.endswith("_tcb"):
                if not tcb_equal(got.get(key, {}), value):
                    bad.append(f"{key}: {got.get(key)} != {value}")
            elif key == "cpuid":
                mine = [got["cpuid_fam_id"], got["cpuid_mod_id"], got["cpuid_step"]]
                if mine != [int(x, 16) for x in value]:
                    bad.append(f"cpuid: {mine} != {value}")
            elif key == "plat_info":
                if int(got["platform_info"], 16) != int(value, 16):
                    bad.append(f"platform_info: {got['platform_info']} != {value}")
            elif key == "policy":
                if got["policy"] != value:
                    bad.append(f"policy: {got['policy']} != {value}")
            elif got.get(key) != value:
                bad.append(f"{key}: {got.get(key)!r} != {value!r}")
        if bad:
            fail(f"{name}: " + "; ".join(bad))
        else:
            print(f"ok {name}: {len(want)} fields equal")


def check_ext_report(cli, vec):
    ext = os.path.join(vec, "snp", "synthetic", "gosevguest-milan.report+certtable.bin")
    table = os.path.join(vec, "snp", "synthetic", "gosevguest-milan.certtable.bin")
    report = os.path.join(vec, "snp", "reports", "milan-v2-gosevguest.bin")
    for label, args in (("report+table", ["--report", ext]),
                        ("--certs", ["--report", report, "--certs", table])):
        # No --roots: the ARK and ASK come from the table and are trusted only
        # because the ARK's key is pinned.
        code, out, err = run(cli, ["report", "verify", "--json", "--product", "milan"] + args)
        if code != 0:
            fail(f"extended report ({label}): exit {code} {out} {err}")
        else:
            print(f"ok extended report ({label}): verified")


def check_usage(cli, vec):
    report = os.path.join(vec, "snp", "reports", "milan-v2-gosevguest.bin")
    for args, want in ((["report", "verify"], 2),
                       (["report", "verify", "--report", "/nonexistent", "--cert", report], 2),
                       (["report", "verify", "--report", report, "--at", "yesterday"], 2),
                       (["report", "show"], 2),
                       (["report", "show", "--help"], 0),
                       (["report", "verify", "--help"], 0),
                       (["--help"], 0),
                       (["bogus"], 2)):
        code, out, err = run(cli, args)
        if code != want:
            fail(f"nitride {' '.join(args)}: exit {code}, expected {want}")
        elif want == 2 and not err.strip():
            fail(f"nitride {' '.join(args)}: no message on stderr")
    print("ok usage and I/O errors")


def main():
    cli = sys.argv[1]
    vec = os.environ.get("NITRIDE_VECTORS") or os.environ.get("NITRIDE_VECTORS_DEFAULT", "")
    if not os.path.isfile(os.path.join(vec, "snp", "cases.tsv")):
        print(f"SKIP: SEV-SNP vectors not found at {vec!r} (set NITRIDE_VECTORS)")
        return 77
    check_cases(cli, vec)
    check_fields(cli, vec)
    check_ext_report(cli, vec)
    check_usage(cli, vec)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
