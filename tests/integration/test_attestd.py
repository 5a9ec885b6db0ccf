#!/usr/bin/python3
"""attestd end to end with snpsimd (docs/attestd.md, docs/api-attestd.md).

challenge -> report from the simulator with REPORT_DATA = SHA-384(JCS binding)
-> attest -> EAR token verified by python3-jwcrypto against /v1/jwks; then the
negative matrix, each a named rejection; KDS outage with and without a cache;
oversized and malformed bodies; a slow client that must not block others;
policy reload on SIGHUP; the audit log.

Usage: test_attestd.py ATTESTD SNPSIMD NITRIDE
Only 127.0.0.1; every loop is bounded; the daemons are killed in `finally`.
"""
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from jwcrypto import jwk, jwt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simtest import tls_reply_records  # noqa: E402

ATTESTD, SNPSIMD, NITRIDE = sys.argv[1:4]
MEAS = "ab" * 48
OTHER_MEAS = "cd" * 48
ADMIN = "admin-" + os.urandom(8).hex()
failures = []
procs = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, flush=True)


def ok(msg):
    print("ok", msg, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(argv, prefix, timeout=60):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    deadline = time.time() + timeout
    line = ""
    while time.time() < deadline:
        line = p.stdout.readline()
        if line.startswith(prefix) or not line:
            break
    if not line.startswith(prefix):
        err = p.stderr.read() if p.poll() is not None else ""
        raise RuntimeError(f"{argv[0]} did not start: {line!r} {err}")
    return p, line.split()


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def http(method, url, body=None, headers=None, raw=None, timeout=30):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def jcs(obj):
    # RFC 8785 for objects of ASCII strings (all this test builds).
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def binding(nonce, pub):
    return hashlib.sha384(jcs({"nonce": nonce, "tee-pubkey": pub})).digest() + bytes(16)


class Env:
    pass


def get_report(env, report_data, vmpl=0, ext=True, sock=None):
    out = os.path.join(env.tmp, "r.bin")
    certs = os.path.join(env.tmp, "c.bin")
    args = [NITRIDE, "report", "get", "--snp", "sim:" + (sock or env.sock), "--data",
            report_data.hex(), "--vmpl", str(vmpl), "-o", out]
    if ext:
        args += ["--ext", "--certs-out", certs]
    if os.path.exists(certs):
        os.unlink(certs)
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("nitride report get: " + p.stderr)
    rep = open(out, "rb").read()
    tab = open(certs, "rb").read() if ext and os.path.exists(certs) else None
    return rep, tab


def challenge(env):
    st, ct, b = http("POST", env.url + "/v1/challenge", raw=b"")
    assert st == 200, (st, b)
    return json.loads(b)["nonce"]


def attest(env, nonce, rep, tab, pub):
    body = {"nonce": nonce, "report": base64.b64encode(rep).decode(), "tee_pubkey": pub}
    if tab is not None:
        body["certs"] = base64.b64encode(tab).decode()
    st, ct, b = http("POST", env.url + "/v1/attest", body)
    try:
        j = json.loads(b)
    except ValueError:
        j = {"raw": b[:200]}
    return st, ct, j


def flow(env, pub, vmpl=0, ext=True, nonce_for_binding=None, key_for_binding=None, mutate=None,
         sock=None, certs_override=None):
    nonce = challenge(env)
    rd = binding(nonce_for_binding or nonce, key_for_binding or pub)
    rep, tab = get_report(env, rd, vmpl=vmpl, ext=ext, sock=sock)
    if mutate:
        rep = mutate(rep)
    if certs_override is not None:
        tab = certs_override
    return attest(env, nonce, rep, tab, pub)


def expect_reject(env, name, check, st_ct_j, status=403):
    st, ct, j = st_ct_j
    if st != status or "application/problem+json" not in ct or j.get("check") != check:
        fail(f"{name}: expected {status} check {check}, got {st} {ct} {json.dumps(j)[:400]}")
        return None
    if status == 403 and not (j.get("expected") is not None and j.get("actual") is not None):
        fail(f"{name}: problem lacks expected/actual: {j}")
        return None
    ok(f"{name}: {st} {check} (expected {j.get('expected')!r}, actual {j.get('actual')!r})")
    return j


def write_policy(env, **kw):
    pol = {"measurements": [MEAS],
           "min_tcb": {"genoa": {"bootloader": 10, "tee": 0, "snp": 27, "microcode": 88}}}
    pol.update(kw)
    with open(env.policy + ".tmp", "w") as f:
        json.dump(pol, f)
    os.replace(env.policy + ".tmp", env.policy)


def metric(env, name):
    st, ct, b = http("GET", env.url + "/metrics")
    for line in b.decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return None


def reload_policy(env, **kw):
    write_policy(env, **kw)
    before = metric(env, 'attestd_policy_reloads_total{result="ok"}')
    env.attestd.send_signal(signal.SIGHUP)
    for _ in range(100):
        if metric(env, 'attestd_policy_reloads_total{result="ok"}') != before:
            return
        time.sleep(0.05)
    fail("policy reload not observed")


def start_sim(env, *flags, product=None):
    if getattr(env, "sim", None) is not None:
        stop(env.sim)
    argv = [SNPSIMD, "--state-dir", env.simdir, "--measurement", MEAS,
            "--kds-listen", f"127.0.0.1:{env.kds_port}"] + list(flags)
    if product:
        argv += ["--product", product]
    env.sim, words = start(argv, "snpsimd: socket")
    env.sock = words[2]


def sim_requests(env):
    st, ct, b = http("GET", env.kds + "/_sim/requests")
    return json.loads(b)["requests"]


def main():
    env = Env()
    env.tmp = tempfile.mkdtemp(prefix="attestd-it-", dir=os.environ.get("NITRIDE_TEST_TMP"))
    os.chmod(env.tmp, 0o700)
    env.simdir = os.path.join(env.tmp, "sim")
    env.roots = os.path.join(env.tmp, "roots")
    env.policy = os.path.join(env.tmp, "policy.json")
    env.state = os.path.join(env.tmp, "state")
    env.kds_port = free_port()
    env.kds = f"http://127.0.0.1:{env.kds_port}"
    env.sim = None
    try:
        for prod in ("genoa", "milan"):
            p = subprocess.run([SNPSIMD, "--state-dir", env.simdir, "--product", prod,
                                "--export-roots", env.roots], capture_output=True, text=True,
                               timeout=120)
            if p.returncode != 0:
                raise RuntimeError("export-roots: " + p.stderr)
        start_sim(env)
        write_policy(env)
        cfg = os.path.join(env.tmp, "attestd.ini")
        with open(cfg, "w") as f:
            f.write(f"""[attestd]
listen = 127.0.0.1:0
plain_http = yes
state_dir = {env.state}
policy = {env.policy}
extra_roots_dir = {env.roots}
kds_url = {env.kds}
kds_retries = 1
kds_timeout = 5
admin_token = {ADMIN}
nonce_ttl = 3
workers = 4
max_body = 65536
issuer = https://attestd.test
""")
        p = subprocess.run([ATTESTD, "--config", cfg, "--check-config"], capture_output=True,
                           text=True, timeout=30)
        if p.returncode != 0:
            fail("--check-config: " + p.stderr)
        bad = os.path.join(env.tmp, "bad.ini")
        with open(bad, "w") as f:
            f.write("state_dir = /x\npolicy = /p\nplain_http = yes\nlisten = 0.0.0.0:1\n")
        p = subprocess.run([ATTESTD, "--config", bad, "--check-config"], capture_output=True,
                           text=True, timeout=30)
        if p.returncode != 2 or "plain_http" not in p.stderr or "bad.ini" not in p.stderr:
            fail(f"plain_http on 0.0.0.0 accepted: {p.returncode} {p.stderr}")
        else:
            ok("plain HTTP refused off loopback: " + p.stderr.strip())

        env.attestd, words = start([ATTESTD, "--config", cfg], "attestd: listening")
        env.url = words[2]
        if not env.url.startswith("http://127.0.0.1:"):
            fail("bound address " + env.url)
        st_mode = os.stat(env.state).st_mode & 0o777
        key_mode = os.stat(os.path.join(env.state, "signing-key.jwk")).st_mode & 0o777
        if st_mode != 0o700 or key_mode != 0o600:
            fail(f"state dir {oct(st_mode)} key {oct(key_mode)}")

        tee = jwk.JWK.generate(kty="EC", crv="P-256")
        pub = json.loads(tee.export_public())
        other = json.loads(jwk.JWK.generate(kty="EC", crv="P-256").export_public())

        # ---- the full flow, token checked by jwcrypto
        st, ct, j = flow(env, pub)
        if st != 200 or "token" not in j:
            fail(f"attest: {st} {j}")
            raise SystemExit(1)
        st2, ct2, jb = http("GET", env.url + "/v1/jwks")
        keyset = jwk.JWKSet.from_json(jb.decode())
        tok = jwt.JWT(jwt=j["token"], key=keyset, algs=["ES256"])
        claims = json.loads(tok.claims)
        hdr = json.loads(tok.header)
        cpu0 = claims["submods"]["cpu0"]
        ev = cpu0["ear.veraison.annotated-evidence"]
        checks = [
            (hdr.get("alg") == "ES256" and hdr.get("kid") == json.loads(jb)["keys"][0]["kid"],
             "header alg/kid"),
            (claims["iss"] == "https://attestd.test", "iss"),
            (claims["exp"] - claims["iat"] == 300, "exp = iat + 300"),
            (abs(claims["iat"] - time.time()) < 60, "iat is now"),
            (claims["eat_profile"] == "tag:github.com,2023:veraison/ear", "eat_profile"),
            (len(claims["jti"]) == 32, "jti"),
            (claims["cnf"]["jwk"] == pub, "cnf.jwk is the transfer key"),
            (cpu0["ear.status"] == "affirming", "ear.status"),
            (cpu0["ear.appraisal-policy-id"].startswith("sha256:"), "policy digest"),
            (ev["measurement"] == MEAS, "measurement claim"),
            (ev["product"] == "genoa" and ev["signing_key"] == "vcek", "product/signing key"),
            (ev["vmpl"] == 0, "vmpl"),
            (ev["report_data"] == binding(claims["eat_nonce"], pub).hex(), "report_data claim"),
            (ev["reported_tcb"]["snp"] == 27, "reported_tcb"),
            ("ear.verifier-id" in claims, "verifier-id"),
        ]
        for cond, what in checks:
            if not cond:
                fail("token claim: " + what + " " + json.dumps(claims)[:600])
        ok(f"token verified by jwcrypto; claims {sorted(claims)}")
        jti = claims["jti"]

        # ---- nonce: unknown, reused, expired
        nonce = challenge(env)
        rep, tab = get_report(env, binding(nonce, pub))
        st, ct, j = attest(env, nonce, rep, tab, pub)
        if st != 200:
            fail(f"second attest {st} {j}")
        expect_reject(env, "reused nonce", "nonce", attest(env, nonce, rep, tab, pub))
        unknown = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        expect_reject(env, "unknown nonce", "nonce", attest(env, unknown, rep, tab, pub))
        nonce = challenge(env)
        rep, tab = get_report(env, binding(nonce, pub))
        time.sleep(3.5)
        j = expect_reject(env, "expired nonce", "nonce", attest(env, nonce, rep, tab, pub))
        if j and j.get("actual") != "expired":
            fail(f"expired nonce named {j.get('actual')}")
        # the nonce is consumed even when the rest is bad
        nonce = challenge(env)
        st, ct, j = attest(env, nonce, b"x" * 10, None, pub)
        expect_reject(env, "nonce consumed by a malformed attempt", "nonce",
                      attest(env, nonce, rep, tab, pub))

        # ---- batched challenges: up to 16 nonces per request, each single-use
        st, ct, b = http("POST", env.url + "/v1/challenge", {"count": 5})
        batch = json.loads(b) if st == 200 else {}
        got = batch.get("nonces", [])
        if (st != 200 or len(got) != 5 or len(set(got)) != 5 or batch.get("nonce") != got[0]
                or any(len(n) != 43 for n in got) or batch.get("ttl") != 3):
            fail(f"challenge count 5: {st} {b[:300]}")
        else:
            ok("challenge count 5: five distinct nonces, \"nonce\" is the first")
            for i in (0, 4):  # the first and the last are both live, once each
                rep_b, tab_b = get_report(env, binding(got[i], pub))
                st, ct, j = attest(env, got[i], rep_b, tab_b, pub)
                if st != 200:
                    fail(f"batched nonce {i}: {st} {j}")
                expect_reject(env, f"batched nonce {i} reused", "nonce",
                              attest(env, got[i], rep_b, tab_b, pub))
        bad = 0
        for body in ({}, {"count": 1}):
            st, ct, b = http("POST", env.url + "/v1/challenge", body)
            j = json.loads(b) if st == 200 else {}
            if st != 200 or len(j.get("nonce", "")) != 43 or "nonces" in j:
                fail(f"challenge {body}: {st} {b[:200]}")
                bad += 1
        if not bad:
            ok("challenge {} and count 1: one nonce, no list")
        for name, raw in (("count 0", b'{"count":0}'), ("count 17", b'{"count":17}'),
                          ("count a string", b'{"count":"3"}'), ("count 2.5", b'{"count":2.5}'),
                          ("count negative", b'{"count":-1}'), ("body a list", b"[]"),
                          ("body not JSON", b"count=3")):
            st, ct, b = http("POST", env.url + "/v1/challenge", raw=raw)
            if st != 400 or "problem+json" not in ct:
                fail(f"challenge {name}: {st} {ct} {b[:200]}")
                bad += 1
            elif name.startswith("count") and json.loads(b).get("check") != "count":
                fail(f"challenge {name}: not named: {b[:200]}")
                bad += 1
        if not bad:
            ok("challenge: a bad count or body is 400 and names count")
        # A store with room for three: a batch of five gives three, then 503.
        capcfg = os.path.join(env.tmp, "attestd-cap.ini")
        with open(cfg) as f, open(capcfg, "w") as g:
            g.write(f.read().replace(f"state_dir = {env.state}\n",
                                     f"state_dir = {env.state}-cap\nnonce_cap = 3\n"))
        capd, words = start([ATTESTD, "--config", capcfg], "attestd: listening")
        st, ct, b = http("POST", words[2] + "/v1/challenge", {"count": 5})
        st2, ct2, b2 = http("POST", words[2] + "/v1/challenge", {"count": 2})
        stop(capd)
        if st != 200 or len(json.loads(b).get("nonces", [])) != 3 or st2 != 503 \
                or json.loads(b2).get("check") != "nonce_store":
            fail(f"batch into a nearly full store: {st} {b[:200]} then {st2} {b2[:200]}")
        else:
            ok("a batch into a store with room for 3 gives 3; the next is 503 nonce_store")

        # ---- binding
        j = expect_reject(env, "REPORT_DATA not binding the nonce", "binding.report_data",
                          flow(env, pub, nonce_for_binding=unknown))
        expect_reject(env, "REPORT_DATA not binding the key", "binding.report_data",
                      flow(env, pub, key_for_binding=other))

        # ---- tampered report
        def tamper(r):
            b = bytearray(r)
            b[0x90] ^= 1
            return bytes(b)
        expect_reject(env, "tampered report", "evidence.signature", flow(env, pub, mutate=tamper))

        # ---- VMPL
        expect_reject(env, "VMPL not allowed", "vmpl", flow(env, pub, vmpl=1))

        # ---- policy changes through SIGHUP: measurement, each TCB component, product
        reload_policy(env, measurements=[OTHER_MEAS])
        expect_reject(env, "measurement not allowed", "measurement", flow(env, pub))
        for comp, val in (("bootloader", 11), ("tee", 1), ("snp", 28), ("microcode", 89)):
            mins = {"bootloader": 10, "tee": 0, "snp": 27, "microcode": 88}
            mins[comp] = val
            reload_policy(env, min_tcb={"genoa": mins}, tcb_apply=["reported"])
            expect_reject(env, f"TCB {comp} below minimum", f"tcb.reported.{comp}", flow(env, pub))
        reload_policy(env, products=["milan"])
        expect_reject(env, "wrong product (policy)", "product", flow(env, pub))
        # a broken policy keeps the old one
        with open(env.policy, "w") as f:
            f.write("{\"measurements\": [\"zz\"]}")
        env.attestd.send_signal(signal.SIGHUP)
        for _ in range(100):
            if metric(env, 'attestd_policy_reloads_total{result="error"}'):
                break
            time.sleep(0.05)
        expect_reject(env, "bad policy reload keeps the old policy", "product", flow(env, pub))
        reload_policy(env)
        st, ct, j = flow(env, pub)
        if st != 200:
            fail(f"restored policy: {st} {j}")

        # ---- collateral: no table -> KDS; outage without cache = 503; warm cache = fine
        # An appraisal that needs the KDS leaves the event loop for the pool
        # (the loop never waits for the network); one with everything cached
        # stays in the loop that read it.
        RUN_LOOP, RUN_POOL = ('attestd_attest_runs_total{thread="loop"}',
                              'attestd_attest_runs_total{thread="pool"}')
        # A VCEK that came in a certificate table and verified a report is
        # remembered by chip and TCB: a report without its table needs no KDS.
        n0 = sim_requests(env)
        http("POST", env.kds + "/_sim/faults?status=503&count=50", raw=b"")
        st, ct, j = flow(env, pub, ext=False)
        if st != 200 or sim_requests(env) != n0:
            fail(f"VCEK verified from a table, then no table, KDS down: {st} {j} "
                 f"requests {n0}->{sim_requests(env)}")
        else:
            ok("a VCEK verified from a certificate table serves later reports without it")
        # It was also written to the disk cache, where a KDS fetch would have
        # put it: a restarted attestd still needs neither table nor KDS.
        stop(env.attestd)
        env.attestd, words = start([ATTESTD, "--config", cfg], "attestd: listening")
        env.url = words[2]
        vdir = os.path.join(env.state, "cache", "vcek")
        st, ct, j = flow(env, pub, ext=False)
        if st != 200 or sim_requests(env) != n0 or not os.path.isdir(vdir):
            fail(f"restarted, VCEK cached from a verified table, KDS down: {st} {j}")
        else:
            ok("a VCEK verified from a table is cached on disk for the next start")
        # Without that file, a restarted attestd knows no VCEK.
        stop(env.attestd)
        shutil.rmtree(vdir)
        env.attestd, words = start([ATTESTD, "--config", cfg], "attestd: listening")
        env.url = words[2]
        loop0, pool0 = metric(env, RUN_LOOP), metric(env, RUN_POOL)
        st, ct, j = flow(env, pub, ext=False)
        if st != 503 or j.get("check") != "collateral":
            fail(f"KDS down, no cache: {st} {j}")
        else:
            ok(f"KDS down without cache: 503 ({j.get('detail')})")
        if loop0 is None or metric(env, RUN_POOL) != pool0 + 1 or metric(env, RUN_LOOP) != loop0:
            fail(f"a KDS fetch must run in the pool: loop {loop0}->{metric(env, RUN_LOOP)}, "
                 f"pool {pool0}->{metric(env, RUN_POOL)}")
        else:
            ok("an appraisal that needs the KDS ran in the pool, not in the event loop")
        http("POST", env.kds + "/_sim/faults?count=0&status=503", raw=b"")
        st, ct, j = flow(env, pub, ext=False)
        if st != 200:
            fail(f"KDS up, VCEK fetched: {st} {j}")
        else:
            ok("VCEK fetched from the KDS")
        n0 = sim_requests(env)
        http("POST", env.kds + "/_sim/faults?status=503&count=50", raw=b"")
        loop0, pool0 = metric(env, RUN_LOOP), metric(env, RUN_POOL)
        st, ct, j = flow(env, pub, ext=False)
        if st != 200 or sim_requests(env) != n0:
            fail(f"KDS down, warm cache: {st} {j} requests {n0}->{sim_requests(env)}")
        else:
            ok("KDS down with a warm cache: 200, no KDS request")
        if metric(env, RUN_LOOP) != loop0 + 1 or metric(env, RUN_POOL) != pool0:
            fail(f"a warm-cache appraisal should stay in its loop: loop {loop0}->"
                 f"{metric(env, RUN_LOOP)}, pool {pool0}->{metric(env, RUN_POOL)}")
        else:
            ok("a warm-cache appraisal ran in the event loop that read it")
        # A burst from parallel clients over the 4 loops (connections
        # accepted in turn, the queue drained by whichever loop is free):
        # every one answered, all in the loops.  The evidence is made first
        # (the report helper is not thread-safe); the attests run together.
        loop0, pool0 = metric(env, RUN_LOOP), metric(env, RUN_POOL)
        evidence = []
        for _ in range(12):
            nonce = challenge(env)
            rep, tab = get_report(env, binding(nonce, pub))
            evidence.append((nonce, rep, tab))
        results = []
        burst = [threading.Thread(target=lambda e=e: results.append(attest(env, *e, pub)))
                 for e in evidence]
        for t in burst:
            t.start()
        for t in burst:
            t.join(60)
        codes = [r[0] for r in results]
        if codes.count(200) != 12 or metric(env, RUN_LOOP) != loop0 + 12 or \
                metric(env, RUN_POOL) != pool0:
            fail(f"parallel burst: {[(r[0], r[2].get('check')) for r in results]}, loop "
                 f"{loop0}->{metric(env, RUN_LOOP)}, pool {pool0}->{metric(env, RUN_POOL)}")
        else:
            ok("12 parallel attestations: all 200, all appraised in the event loops")
        http("POST", env.kds + "/_sim/faults?count=0&status=503", raw=b"")
        # require_crl: the CRL is fetched once, cached on disk, reused until nextUpdate
        reload_policy(env, require_crl=True)
        n0 = sim_requests(env)
        st, ct, j = flow(env, pub, ext=False)
        n1 = sim_requests(env)
        st2, ct2, j2 = flow(env, pub, ext=False)
        crl_file = os.path.join(env.state, "cache", "crl", "genoa.crl")
        if st != 200 or st2 != 200 or n1 != n0 + 1 or sim_requests(env) != n1 \
                or not os.path.isfile(crl_file):
            fail(f"require_crl: {st} {st2} requests {n0}->{n1}->{sim_requests(env)} "
                 f"cached {os.path.isfile(crl_file)} {j}")
        else:
            ok("require_crl: CRL fetched once from the KDS, cached on disk")
        reload_policy(env)
        # 429 with Retry-After is retried (kds_retries = 1): a new chip TCB is needed -> new VCEK
        start_sim(env, "--current_tcb_snp", "28")
        reload_policy(env)
        http("POST", env.kds + "/_sim/faults?status=429&count=1&retry_after=1", raw=b"")
        t0 = time.time()
        st, ct, j = flow(env, pub, ext=False)
        if st != 200 or time.time() - t0 < 0.9:
            fail(f"429 + Retry-After then success: {st} {j} after {time.time() - t0:.2f}s")
        else:
            ok(f"429 with Retry-After honoured ({time.time() - t0:.2f}s) then 200")

        # ---- debug policy, VLEK not allowed, report from another product
        start_sim(env, "--policy", "0xB0000")
        expect_reject(env, "debug policy", "policy.debug", flow(env, pub))
        start_sim(env, "--signing_key", "vlek")
        expect_reject(env, "VLEK not allowed", "signing_key", flow(env, pub))
        reload_policy(env, signing_keys=["vcek", "vlek"])
        st, ct, j = flow(env, pub)
        if st != 200:
            fail(f"VLEK allowed: {st} {j}")
        reload_policy(env)
        reload_policy(env, products=["genoa"])
        start_sim(env, product="milan")
        milan_nonce = challenge(env)
        rep_m, tab_m = get_report(env, binding(milan_nonce, pub))
        st, ct, j = attest(env, milan_nonce, rep_m, tab_m, pub)
        expect_reject(env, "wrong product (Milan report, Genoa-only policy)", "product",
                      (st, ct, j))
        # a Genoa report with the Milan certificate table: chain from another product
        start_sim(env)
        st, ct, j = flow(env, pub, certs_override=tab_m)
        if st != 403 or not str(j.get("check", "")).startswith("evidence."):
            fail(f"certificate chain from another product: {st} {j}")
        else:
            ok(f"certificate chain from another product: 403 {j['check']} ({j.get('actual')})")

        # ---- malformed and oversized bodies: 400/413, never 500
        cases = [
            ("not JSON", b"{nope", 400),
            ("JSON array", b"[]", 400),
            ("no nonce", json.dumps({"report": "AAAA"}).encode(), 400),
            ("nonce not a string", json.dumps({"nonce": 5}).encode(), 400),
            ("malformed nonce", json.dumps({"nonce": "abc"}).encode(), 400),
            ("empty body", b"", 400),
            ("oversized body", b"{\"nonce\":\"" + b"A" * 70000 + b"\"}", 413),
        ]
        st, ct, b = http("POST", env.url + "/v1/attest", raw=b"x" * 300000)
        if st != 413:
            fail(f"very large body: {st}")
        else:
            ok("very large body: 413 (libevent stops reading)")
        for name, raw, want in cases:
            st, ct, b = http("POST", env.url + "/v1/attest", raw=raw)
            if st != want or "problem+json" not in ct:
                fail(f"{name}: {st} {ct} {b[:200]}")
            else:
                ok(f"{name}: {st}")
        for name, body in (("report not base64", {"report": "!!!!"}),
                           ("report wrong size", {"report": base64.b64encode(b"x" * 100).decode()}),
                           ("tee_pubkey private", {"tee_pubkey": json.loads(tee.export_private())}),
                           ("tee_pubkey RSA", {"tee_pubkey": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}})):
            nonce = challenge(env)
            rep, tab = get_report(env, binding(nonce, pub))
            b = {"nonce": nonce, "report": base64.b64encode(rep).decode(), "tee_pubkey": pub}
            b.update(body)
            st, ct, j = http("POST", env.url + "/v1/attest", b)
            jj = json.loads(j)
            if name == "report wrong size":
                if st not in (400, 403):
                    fail(f"{name}: {st} {jj}")
                else:
                    ok(f"{name}: {st} {jj.get('check')}")
            elif st != 400:
                fail(f"{name}: {st} {jj}")
            else:
                ok(f"{name}: 400 {jj.get('check')}")
        for meth in ("GET", "PUT", "DELETE"):
            st, ct, b = http(meth, env.url + "/v1/attest")
            if st != 405 or "problem+json" not in ct:
                fail(f"{meth} /v1/attest: {st} {ct}")
        st, ct, b = http("GET", env.url + "/nope")
        if st != 404:
            fail(f"GET /nope: {st}")

        # ---- slow clients do not block others
        slow = []
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", int(env.url.rsplit(":", 1)[1])), timeout=5)
            s.sendall(b"POST /v1/attest HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"no")
            slow.append(s)
        t0 = time.time()
        st, ct, j = flow(env, pub)
        dt = time.time() - t0
        for s in slow:
            s.close()
        if st != 200 or dt > 5:
            fail(f"with 8 slow clients: {st} in {dt:.2f}s")
        else:
            ok(f"8 slow clients held open: attestation still took {dt:.2f}s")

        # ---- admin dry run
        rep, tab = get_report(env, bytes(64))
        body = {"report": base64.b64encode(rep).decode(), "certs": base64.b64encode(tab).decode()}
        st, ct, b = http("POST", env.url + "/v1/appraise", body)
        if st != 401:
            fail(f"appraise without token: {st}")
        st, ct, b = http("POST", env.url + "/v1/appraise", body,
                         headers={"Authorization": "Bearer wrong-" + ADMIN})
        if st != 401:
            fail(f"appraise with a wrong token: {st}")
        st, ct, b = http("POST", env.url + "/v1/appraise", body,
                         headers={"Authorization": "Bearer " + ADMIN})
        j = json.loads(b)
        if st != 200 or j.get("status") != "affirming" or len(j.get("checks", [])) < 10:
            fail(f"appraise: {st} {j}")
        else:
            ok(f"appraise dry run: {j['status']}, {len(j['checks'])} checks explained")

        # ---- metrics and audit
        st, ct, b = http("GET", env.url + "/metrics")
        text = b.decode()
        if st != 200 or 'attestd_attestations_total{status="affirming"}' not in text:
            fail("metrics: " + text[:300])
        audit = [json.loads(l) for l in open(os.path.join(env.state, "audit.log"))]
        if not audit or not any(a.get("jti") == jti for a in audit):
            fail("audit log lacks the first token's jti")
        for a in audit:
            for k in ("time", "client", "evidence_digest", "policy_digest", "verdict", "failed"):
                if k not in a:
                    fail(f"audit line lacks {k}: {a}")
                    break
        raw = open(os.path.join(env.state, "audit.log")).read()
        if "eyJ" in raw:
            fail("a token leaked into the audit log")
        else:
            ok(f"audit log: {len(audit)} lines, no token")
        # ---- HTTPS (TLS 1.2+ through OpenSSL bufferevents)
        tls_state = os.path.join(env.tmp, "tls-state")
        key = os.path.join(env.tmp, "tls.key")
        crt = os.path.join(env.tmp, "tls.crt")
        p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1",
                            "-keyout", key, "-out", crt], capture_output=True, timeout=60)
        if p.returncode != 0:
            fail("openssl req: " + p.stderr.decode())
        else:
            tcfg = os.path.join(env.tmp, "tls.ini")
            with open(tcfg, "w") as f:
                f.write(f"listen = 127.0.0.1:0\ntls_cert = {crt}\ntls_key = {key}\n"
                        f"state_dir = {tls_state}\npolicy = {env.policy}\n"
                        f"extra_roots_dir = {env.roots}\nkds_offline = yes\nworkers = 2\n")
            tproc, words = start([ATTESTD, "--config", tcfg], "attestd: listening")
            turl = words[2]
            import ssl
            ctx = ssl.create_default_context(cafile=crt)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if not turl.startswith("https://127.0.0.1:"):
                fail("TLS bound address " + turl)
            try:
                with urllib.request.urlopen(urllib.request.Request(turl + "/v1/challenge", data=b"",
                                                                   method="POST"),
                                            context=ctx, timeout=10) as r:
                    ch = json.loads(r.read())
                with urllib.request.urlopen(turl + "/v1/jwks", context=ctx, timeout=10) as r:
                    ks = json.loads(r.read())
                if len(ch.get("nonce", "")) != 43 or not ks.get("keys"):
                    fail(f"HTTPS answers: {ch} {ks}")
                else:
                    ok("HTTPS: challenge and JWKS over TLS")
                # headers and body leave in one TLS record (common/httpreply)
                for path in ("/v1/challenge", "/v1/jwks"):
                    method = "POST" if path == "/v1/challenge" else "GET"
                    n, reply = tls_reply_records(
                        turl, crt, f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Length: 0\r\n\r\n".encode())
                    if n == 1 and reply.startswith(b"HTTP/1.1 200"):
                        ok(f"HTTPS {path}: the reply is one TLS record")
                    else:
                        fail(f"HTTPS {path}: reply in {n} TLS records: {reply[:80]!r}")
            except Exception as e:  # noqa: BLE001
                fail(f"HTTPS request failed: {e}")
            # plain HTTP to the TLS port gets no HTTP answer
            try:
                st, ct, b = http("GET", "http://" + turl[len("https://"):] + "/healthz", timeout=5)
                fail(f"plain HTTP on the TLS port answered {st}")
            except Exception:
                ok("plain HTTP on the TLS port: no answer")
            stop(tproc)
    finally:
        for p in procs:
            stop(p)
        for p in procs:
            try:
                err = p.stderr.read()
            except Exception:
                err = ""
            if failures and err:
                print(f"--- stderr of {p.args[0]}:\n{err[-3000:]}")
        shutil.rmtree(env.tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all attestd integration checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
