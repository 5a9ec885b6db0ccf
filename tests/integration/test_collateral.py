#!/usr/bin/python3
"""nitride collateral export|import: an air-gapped attestd appraises evidence
with nothing but an imported bundle, and bad bundles import nothing.

Usage: test_collateral.py SNPSIMD ATTESTD NITRIDE
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simtest import Snpsimd  # noqa: E402

SNPSIMD, ATTESTD, NITRIDE = sys.argv[1:4]
ADMIN = "collateral-test-admin-token"
failures = []


def check(cond, msg):
    print(("ok " if cond else "FAIL: ") + msg)
    if not cond:
        failures.append(msg)


def start_attestd(tmp, name, roots, policy, kds, cache, offline):
    cfg = os.path.join(tmp, name + ".ini")
    with open(cfg, "w") as f:
        f.write(f"[attestd]\nlisten = 127.0.0.1:0\nplain_http = yes\nstate_dir = {tmp}/{name}\n"
                f"policy = {policy}\nextra_roots_dir = {roots}\nkds_url = {kds}\n"
                f"kds_offline = {'yes' if offline else 'no'}\nkds_retries = 0\nkds_timeout = 5\n"
                f"cache_dir = {cache}\nadmin_token = {ADMIN}\nworkers = 1\n")
    p = subprocess.Popen([ATTESTD, "--config", cfg], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("attestd: listening"):
        p.kill()
        raise RuntimeError("attestd did not start: " + p.stderr.read())
    return p, line.split()[2]


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def appraise(url, report):
    body = json.dumps({"report": base64.b64encode(report).decode()}).encode()
    req = urllib.request.Request(url + "/v1/appraise", data=body, method="POST",
                                 headers={"Authorization": "Bearer " + ADMIN,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def files_under(d):
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            out[os.path.relpath(p, d)] = open(p, "rb").read()
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="collateral-")
    procs = []
    try:
        with Snpsimd(SNPSIMD) as sim:
            roots = sim.export_roots(os.path.join(tmp, "roots"))
            rep = os.path.join(tmp, "plain.bin")
            r = subprocess.run([NITRIDE, "report", "get", "--snp", "sim:" + sim.socket, "-o", rep],
                               capture_output=True, text=True, timeout=60)
            check(r.returncode == 0 and os.path.getsize(rep) == 1184,
                  "a plain report (no certificate table): " + r.stderr.strip())
            report = open(rep, "rb").read()
            policy = os.path.join(tmp, "policy.json")
            with open(policy, "w") as f:
                json.dump({"measurements": ["00" * 48], "vmpls": [0]}, f)

            # Online verifier: the VCEK and the chain come from the KDS into its cache.
            cache_a = os.path.join(tmp, "cache-a")
            a, aurl = start_attestd(tmp, "online", roots, policy, sim.kds, cache_a, False)
            procs.append(a)
            st, doc = appraise(aurl, report)
            check(st == 200 and doc.get("status") == "affirming",
                  f"online appraisal fetches collateral: {st} {doc.get('status')}")
            stop(a)

        bundle = os.path.join(tmp, "bundle.json")
        r = subprocess.run([NITRIDE, "collateral", "export", "--cache-dir", cache_a, "-o", bundle],
                           capture_output=True, text=True, timeout=60)
        doc = json.load(open(bundle)) if r.returncode == 0 else {}
        entries = doc.get("entries", [])
        # The simulator's ASK/ARK come from extra_roots_dir here, so the cache
        # holds the VCEK the online verifier fetched.
        check(r.returncode == 0 and any(e["path"].startswith("vcek/") for e in entries),
              f"export: {r.stdout.strip()} ({[e['path'].split('/')[0] for e in entries]})")
        cache_b = os.path.join(tmp, "cache-b")
        r = subprocess.run([NITRIDE, "collateral", "import", bundle, "--cache-dir", cache_b],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "import: " + r.stdout.strip() + r.stderr.strip())
        want = {k: v for k, v in files_under(cache_a).items()
                if k.startswith(("vcek/", "chain/", "crl/"))}
        check(files_under(cache_b) == want, "the imported cache equals the exported one")
        check(os.stat(cache_b).st_mode & 0o777 == 0o700, "imported cache directory 0700")

        # Air-gapped verifier: no KDS at all (the simulator is stopped), the bundle only.
        b, burl = start_attestd(tmp, "offline", roots, policy, "http://127.0.0.1:9", cache_b, True)
        procs.append(b)
        st, doc = appraise(burl, report)
        check(st == 200 and doc.get("status") == "affirming",
              f"offline appraisal from the imported bundle: {st} {doc.get('status')}")
        stop(b)
        c, curl = start_attestd(tmp, "empty", roots, policy, "http://127.0.0.1:9",
                                os.path.join(tmp, "cache-empty"), True)
        procs.append(c)
        st, doc = appraise(curl, report)
        check(st == 503, f"offline with no collateral: 503 ({st})")
        stop(c)

        # Bad bundles import nothing.
        for name, mutate in (
                ("path escaping the cache", lambda d: d["entries"][0].update(path="../escape.der")),
                ("absolute path", lambda d: d["entries"][0].update(path="/tmp/x.der")),
                ("unknown product", lambda d: d["entries"][0].update(
                    path=d["entries"][0]["path"].replace("genoa", "rome"))),
                ("content not a certificate", lambda d: d["entries"][0].update(
                    data=base64.b64encode(b"not a certificate").decode())),
                ("bad base64", lambda d: d["entries"][-1].update(data="!!!!")),
                ("wrong format", lambda d: d.update(format="something-else/1"))):
            d = json.load(open(bundle))
            mutate(d)
            bad = os.path.join(tmp, "bad.json")
            with open(bad, "w") as f:
                json.dump(d, f)
            target = os.path.join(tmp, "cache-bad")
            r = subprocess.run([NITRIDE, "collateral", "import", bad, "--cache-dir", target],
                               capture_output=True, text=True, timeout=60)
            check(r.returncode == 1 and not os.path.exists(target) and r.stderr.strip() != "",
                  f"{name}: refused, nothing written ({r.stderr.strip()})")
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
