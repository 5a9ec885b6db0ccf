#!/usr/bin/python3
"""attestd on the shared real SEV-SNP vectors.

POST /v1/appraise on every row of snp/cases.tsv (report + its certificate as an
extended-report certificate table; AMD's ARK/ASK/ASVK from vectors/amd checked
against the built-in pins; KDS disabled) under a permissive policy that lists
the vectors' measurements: "ok" rows must be affirming, "fail:A|B" rows
contraindicated with the failing evidence check evidence.A or evidence.B.

Usage: test_attestd_vectors.py ATTESTD NITRIDE   (vectors from $NITRIDE_VECTORS)
Exits 77 (skip) when the vectors are absent.
"""
import base64
import csv
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

ATTESTD, NITRIDE = sys.argv[1:3]
VEC = os.environ.get("NITRIDE_VECTORS") or os.environ.get("NITRIDE_VECTORS_DEFAULT", "")
GUID = {"vcek": "63da758d-e664-4564-adc5-f4b93be8accd",
        "vlek": "a8074bc2-a25a-483e-aae6-39c045a0b8a1"}


def certtable(kind, der):
    g = bytes.fromhex(GUID[kind].replace("-", ""))
    off = 24 * 2
    return g + struct.pack("<II", off, len(der)) + bytes(24) + der


def appraise(url, token, body):
    req = urllib.request.Request(url + "/v1/appraise", data=json.dumps(body).encode(),
                                 method="POST",
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def main():
    if not VEC or not os.path.isfile(os.path.join(VEC, "snp", "cases.tsv")):
        print("SKIP: vectors absent (set NITRIDE_VECTORS)")
        return 77
    with open(os.path.join(VEC, "snp", "cases.tsv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    meas = set()
    for row in rows:
        p = subprocess.run([NITRIDE, "report", "show", "--json", os.path.join(VEC, "snp", row["report"])],
                           capture_output=True, text=True, timeout=60)
        if p.returncode == 0:
            meas.add(json.loads(p.stdout)["measurement"])
    tmp = tempfile.mkdtemp(prefix="attestd-vec-", dir=os.environ.get("NITRIDE_TEST_TMP"))
    os.chmod(tmp, 0o700)
    token = os.urandom(12).hex()
    pol = {"measurements": sorted(meas), "vmpls": [0, 1, 2, 3], "signing_keys": ["vcek", "vlek"],
           "guest_policy": {"allow_debug": True, "allow_migration_agent": True}}
    with open(os.path.join(tmp, "policy.json"), "w") as f:
        json.dump(pol, f)
    with open(os.path.join(tmp, "a.ini"), "w") as f:
        f.write(f"listen = 127.0.0.1:0\nplain_http = yes\nstate_dir = {tmp}/state\n"
                f"policy = {tmp}/policy.json\nroots_dir = {VEC}/amd\nkds_offline = yes\n"
                f"admin_token = {token}\nworkers = 2\n")
    d = subprocess.Popen([ATTESTD, "--config", os.path.join(tmp, "a.ini")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    failures = 0
    try:
        line = d.stdout.readline()
        if not line.startswith("attestd: listening"):
            print("FAIL: attestd did not start:", line, d.stderr.read() if d.poll() is not None else "")
            return 1
        url = line.split()[2]
        for row in rows:
            rep = open(os.path.join(VEC, "snp", row["report"]), "rb").read()
            der = open(os.path.join(VEC, "snp", row["cert"]), "rb").read()
            body = {"report": base64.b64encode(rep).decode(),
                    "certs": base64.b64encode(certtable(row["key"], der)).decode(),
                    "product": row["product"]}
            if row["at"] != "now":
                body["at"] = row["at"]
            st, j = appraise(url, token, body)
            exp = row["expect"]
            failed = j.get("failed", [])
            if exp == "ok":
                good = st == 200 and j.get("status") == "affirming" and not failed
            else:
                classes = ["evidence." + c for c in exp[len("fail:"):].split("|")]
                good = (st == 200 and j.get("status") == "contraindicated" and failed
                        and failed[0] in classes)
            if good:
                print(f"ok {row['name']}: {j.get('status')} {failed[:1]}")
            else:
                failures += 1
                print(f"FAIL {row['name']}: expected {exp}, got {st} {json.dumps(j)[:500]}")
    finally:
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(10)
            except subprocess.TimeoutExpired:
                d.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(rows) - failures}/{len(rows)} cases as cases.tsv says")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
