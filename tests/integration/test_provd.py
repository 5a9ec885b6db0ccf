#!/usr/bin/python3
"""provd (the Provisioning Service) end to end on loopback: admin CLI, release
with the protocol vectors' EAR tokens, JWE interoperability with jwcrypto, every
rejection, and the audit chain.

usage: test_provd.py PROVD NITRIDE
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from jwcrypto import jwe, jwk, jwt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simtest import tls_reply_records  # noqa: E402

PROVD, NITRIDE = sys.argv[1], sys.argv[2]
VEC = os.path.join(os.environ.get("NITRIDE_VECTORS")
                   or os.environ.get("NITRIDE_VECTORS_DEFAULT", "../shared/vectors"), "protocol")
if not os.path.isfile(os.path.join(VEC, "as.jwks.json")):
    print("SKIP: protocol vectors not found in", VEC)
    sys.exit(77)

ISSUER = "https://attestd.example"
ZERO_M = "0" * 96
FAILS = []
CHECKS = 0


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, flush=True)


def vec(name):
    with open(os.path.join(VEC, name)) as f:
        return f.read().strip()


BINDING = json.loads(vec("binding.json"))
TEE_PRIV = jwk.JWK(**BINDING["tee_private_jwk"])


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def http(url, method="GET", token=None, body=None, headers=None):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def decrypt(body, what):
    """The JWE payload decrypted with the transfer key, or None (a failed check)."""
    try:
        e = jwe.JWE()
        e.deserialize(body.decode(), key=TEE_PRIV)
        return e
    except Exception as ex:  # noqa: BLE001 - any failure is the finding
        check(False, "%s: JWE does not decrypt: %r body %r" % (what, ex, body[:300]))
        return None


def problem(body):
    try:
        return json.loads(body)
    except ValueError:
        return {}


def start_provd(cfg):
    p = subprocess.Popen([PROVD, "--config", cfg], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("provd: listening "):
        p.kill()
        raise RuntimeError("provd did not start: %r %s" % (line, p.stderr.read()))
    return p, line.split()[2]


def cli(*args, token_file, url, check_rc=None):
    r = subprocess.run([NITRIDE, *args, "--url", url, "--token-file", token_file],
                       capture_output=True, text=True, timeout=60)
    return r


def main():
    tmp = tempfile.mkdtemp(prefix="provd-test-")
    procs = []
    try:
        run(tmp, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d checks, %d failed" % (CHECKS, len(FAILS)))
    return 1 if FAILS else 0


def run(tmp, procs):
    # --- admin tokens, stored as hashes
    tok = {"admin": b64u(os.urandom(24)), "auditor": b64u(os.urandom(24))}
    lines = []
    for role, t in tok.items():
        h = subprocess.run([PROVD, "--hash-token"], input=t, capture_output=True, text=True,
                           check=True).stdout.strip()
        check(len(h) == 64 and t not in h, "--hash-token prints a SHA-256")
        lines.append("%s %s %s-test" % (role, h, role))
        with open(os.path.join(tmp, role + ".token"), "w") as f:
            f.write(t + "\n")
    with open(os.path.join(tmp, "tokens"), "w") as f:
        f.write("# role sha256 label\n" + "\n".join(lines) + "\n")
    admin_tf = os.path.join(tmp, "admin.token")
    auditor_tf = os.path.join(tmp, "auditor.token")

    # --- a trusted key set: the vectors' AS key plus a test key we can sign with
    test_key = jwk.JWK.generate(kty="EC", crv="P-256", kid="test-1")
    keys = json.loads(vec("as.jwks.json"))
    keys["keys"].append(json.loads(test_key.export_public()))
    jwks_path = os.path.join(tmp, "jwks.json")
    with open(jwks_path, "w") as f:
        json.dump(keys, f)

    state = os.path.join(tmp, "state")
    cfg = os.path.join(tmp, "provd.ini")
    with open(cfg, "w") as f:
        f.write("[provd]\nlisten = 127.0.0.1:0\nplain_http = yes\nstate_dir = %s\n"
                "as_jwks = %s\nissuer = %s\nadmin_tokens = %s\nmax_body = 4096\n"
                "workers = 3\nclock_skew = 30\n"
                % (state, jwks_path, ISSUER, os.path.join(tmp, "tokens")))

    # --- configuration checks
    r = subprocess.run([PROVD, "--config", cfg, "--check-config"], capture_output=True, text=True)
    check(r.returncode == 0, "--check-config accepts a good file: " + r.stderr)
    bad = os.path.join(tmp, "bad.ini")
    with open(bad, "w") as f:
        f.write("[provd]\nstate_dir = /x\nlisten_port = 9\n")
    r = subprocess.run([PROVD, "--config", bad, "--check-config"], capture_output=True, text=True)
    check(r.returncode == 2 and "bad.ini:3" in r.stderr and "listen_port" in r.stderr,
          "--check-config names file, line and key: " + r.stderr)
    with open(bad, "w") as f:
        f.write("listen = 0.0.0.0:1\nplain_http = yes\nstate_dir = /x\nas_jwks = %s\n"
                "issuer = i\nadmin_tokens = /x\n" % jwks_path)
    r = subprocess.run([PROVD, "--config", bad, "--check-config"], capture_output=True, text=True)
    check(r.returncode == 2 and "plain_http" in r.stderr, "plain_http refused off loopback")

    p, url = start_provd(cfg)
    procs.append(p)
    check(url.startswith("http://127.0.0.1:"), "bound address printed")
    st = os.stat(state)
    check(st.st_mode & 0o777 == 0o700, "state dir 0700")
    check(os.stat(os.path.join(state, "master.key")).st_mode & 0o777 == 0o600, "master key 0600")

    s, _, b = http(url + "/healthz")
    check(s == 200 and json.loads(b)["status"] == "ok", "/healthz")

    # --- secrets and policies through the CLI
    value = bytes(range(32))
    vf = os.path.join(tmp, "db.key")
    with open(vf, "wb") as f:
        f.write(value)
    r = cli("secret", "put", "db-key", "--type", "aes256", "--value-file", vf,
            "--usages", "encrypt,decrypt", token_file=admin_tf, url=url)
    check(r.returncode == 0 and "version 1" in r.stdout, "secret put: %s %s" % (r.stdout, r.stderr))
    pol = {"all": [{"measurement": [ZERO_M]}, {"product": ["genoa", "milan"]}],
           "ear_status": ["affirming"]}
    pf = os.path.join(tmp, "policy.json")
    with open(pf, "w") as f:
        json.dump(pol, f)
    r = cli("policy", "set", "db-key", pf, token_file=admin_tf, url=url)
    check(r.returncode == 0, "policy set: " + r.stderr)
    r = cli("policy", "show", "db-key", "--json", token_file=auditor_tf, url=url)
    check(r.returncode == 0 and json.loads(r.stdout)["policy"]["ear_status"] == ["affirming"],
          "policy show (auditor)")
    badpol = os.path.join(tmp, "badpolicy.json")
    with open(badpol, "w") as f:
        json.dump({"all": [{"measurement": ["12"]}]}, f)
    r = cli("policy", "set", "db-key", badpol, token_file=admin_tf, url=url)
    check(r.returncode == 2 and "all[0].measurement[0]" in r.stderr,
          "invalid policy refused with its path: " + r.stderr)

    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                           "provd", "policy.example.json")
    r = cli("secret", "put", "example", "--type", "p256", "--generate",
            token_file=admin_tf, url=url)
    check(r.returncode == 0, "p256 generated: " + r.stderr)
    r = cli("policy", "set", "example", example, token_file=admin_tf, url=url)
    check(r.returncode == 0, "deploy/provd/policy.example.json is a valid policy: " + r.stderr)
    s, _, b = http(url + "/v1/secrets/example", token=vec("token.valid-until-2099.jwt"))
    check(s == 403 and problem(b).get("condition") == "all[2].signing_key",
          "example policy: the vector token lacks signing_key: %r" % b[:200])

    # --- release with the valid token; decrypt with jwcrypto (interoperability)
    valid = vec("token.valid-until-2099.jwt")
    s, h, b = http(url + "/v1/secrets/db-key", token=valid)
    check(s == 200 and h.get("Content-Type") == "application/jose", "release: 200 JWE")
    e = decrypt(b, "release")
    if e is None:
        return
    hdr = json.loads(e.objects["protected"]) if isinstance(e.objects.get("protected"), str) \
        else e.jose_header
    check(hdr.get("alg") == "ECDH-ES" and hdr.get("enc") == "A256GCM", "JWE alg/enc")
    pl = json.loads(e.payload)
    check(pl["name"] == "db-key" and pl["version"] == 1 and pl["type"] == "aes256",
          "payload names the secret")
    check(pl["key"] == b64u(value) and pl["jwk"]["k"] == b64u(value), "payload carries the key")
    check(pl["usages"] == ["encrypt", "decrypt"] and pl["exportable"] is False
          and pl["persist"] is True and pl["require_attestation"] == 0, "payload attributes")

    # private keys: the JWK in the payload is the key that was put
    for typ, gen in [("p384", dict(kty="EC", crv="P-384")), ("rsa2048", dict(kty="RSA", size=2048))]:
        k = jwk.JWK.generate(**gen)
        kf = os.path.join(tmp, typ + ".pem")
        with open(kf, "wb") as f:
            f.write(k.export_to_pem(private_key=True, password=None))
        r = cli("secret", "put", "k-" + typ, "--type", typ, "--value-file", kf,
                token_file=admin_tf, url=url)
        check(r.returncode == 0, "put %s from PEM: %s" % (typ, r.stderr))
        r = cli("policy", "set", "k-" + typ, pf, token_file=admin_tf, url=url)
        s, _, b = http(url + "/v1/secrets/k-" + typ, token=valid)
        e3 = decrypt(b, "release " + typ)
        if e3 is not None:
            got = json.loads(e3.payload)
            want = json.loads(k.export_private())
            check(all(got["jwk"][m] == want[m] for m in want if m != "kid"),
                  "%s: released JWK equals the key put" % typ)
            check(jwk.JWK(**got["jwk"]).thumbprint() == k.thumbprint(),
                  "%s: jwcrypto imports the released JWK" % typ)
    r = cli("secret", "put", "k-bad", "--type", "p256", "--value-file",
            os.path.join(tmp, "p384.pem"), token_file=admin_tf, url=url)
    check(r.returncode == 2 and "not of type p256" in r.stderr, "a P-384 key is not a p256")

    # other-cnf: a valid token whose cnf is another key: released to THAT key,
    # so the vHSM's transfer key cannot read it.
    s, _, b = http(url + "/v1/secrets/db-key", token=vec("token.other-cnf.jwt"))
    check(s == 200, "other-cnf token is a valid token")
    try:
        e2 = jwe.JWE()
        e2.deserialize(b.decode(), key=TEE_PRIV)
        check(False, "JWE for another cnf must not decrypt with the transfer key")
    except Exception:
        check(True, "other-cnf JWE not readable with the transfer key")

    # --- token rejections
    for name, why in [("expired", "expired"), ("other-key", "signature invalid"),
                      ("alg-none", "alg none"), ("hs256-confusion", "alg HS256")]:
        s, h, b = http(url + "/v1/secrets/db-key", token=vec("token.%s.jwt" % name))
        pb = problem(b)
        check(s == 401 and why in pb.get("detail", "") and
              h.get("Content-Type") == "application/problem+json",
              "token %s rejected (%s): %s %s" % (name, why, s, b[:200]))
        check(b"AAECAwQF" not in b, "no material in a rejection")
    s, _, b = http(url + "/v1/secrets/db-key")
    check(s == 401, "no token: 401")

    claims = json.loads(base64.urlsafe_b64decode(valid.split(".")[1] + "=="))

    def mint(**over):
        c = dict(claims)
        c.update(over)
        t = jwt.JWT(header={"alg": "ES256", "kid": "test-1", "typ": "JWT"}, claims=c)
        t.make_signed_token(test_key)
        return t.serialize()

    s, _, b = http(url + "/v1/secrets/db-key", token=mint(iss="https://evil.example"))
    check(s == 401 and "issuer" in problem(b).get("detail", ""), "wrong issuer rejected")
    s, _, b = http(url + "/v1/secrets/db-key", token=mint(nbf=int(time.time()) + 3600))
    check(s == 401 and "not valid before" in problem(b).get("detail", ""), "nbf in the future")
    nocnf = dict(claims)
    del nocnf["cnf"]
    t = jwt.JWT(header={"alg": "ES256", "kid": "test-1"}, claims=nocnf)
    t.make_signed_token(test_key)
    s, _, b = http(url + "/v1/secrets/db-key", token=t.serialize())
    check(s == 401 and "cnf" in problem(b).get("detail", ""), "token without cnf.jwk")
    s, _, b = http(url + "/v1/secrets/db-key", token=mint())
    check(s == 200, "a token from the second trusted key is accepted")

    contra = json.loads(json.dumps(claims))
    contra["submods"]["cpu0"]["ear.status"] = "contraindicated"
    s, _, b = http(url + "/v1/secrets/db-key", token=mint(submods=contra["submods"]))
    pb = problem(b)
    check(s == 403 and pb.get("condition") == "ear_status", "contraindicated never released")

    # --- policy mismatch: another measurement required
    r = cli("secret", "put", "other-app", "--type", "opaque", "--generate",
            token_file=admin_tf, url=url)
    check(r.returncode == 0, "opaque generated: " + r.stderr)
    with open(pf, "w") as f:
        json.dump({"measurement": ["ab" * 48]}, f)
    r = cli("policy", "set", "other-app", pf, token_file=admin_tf, url=url)
    check(r.returncode == 0, "policy set other-app")
    s, h, b = http(url + "/v1/secrets/other-app", token=valid)
    pb = problem(b)
    check(s == 403 and pb.get("condition") == "measurement" and
          pb["failed"][0]["actual"] == ZERO_M and
          h.get("Content-Type") == "application/problem+json",
          "policy mismatch: 403 naming measurement: %s" % b[:300])
    # a secret without a policy is never released
    r = cli("secret", "put", "nopolicy", "--type", "opaque", "--generate",
            token_file=admin_tf, url=url)
    s, _, b = http(url + "/v1/secrets/nopolicy", token=valid)
    check(s == 403 and problem(b).get("condition") == "policy", "no policy: nothing released")
    s, _, b = http(url + "/v1/secrets/no-such-secret", token=valid)
    check(s == 404, "unknown secret: 404")

    # --- versions and retirement
    r = cli("secret", "put", "db-key", "--type", "aes256", "--generate",
            token_file=admin_tf, url=url)
    check(r.returncode == 0 and "version 2" in r.stdout, "second version")
    r = cli("secret", "put", "db-key", "--type", "opaque", "--generate",
            token_file=admin_tf, url=url)
    check(r.returncode == 1, "a version of another type is a conflict")
    r = cli("secret", "rm", "db-key", "--version", "1", token_file=admin_tf, url=url)
    check(r.returncode == 0, "retire v1: " + r.stderr)
    s, _, b = http(url + "/v1/secrets/db-key?version=1", token=valid)
    check(s == 404 and "retired" in problem(b).get("detail", ""), "retired version: 404")
    s, _, b = http(url + "/v1/secrets/db-key", token=valid)
    e = decrypt(b, "latest")
    check(s == 200 and e is not None and json.loads(e.payload)["version"] == 2,
          "latest is version 2")
    s, _, b = http(url + "/v1/secrets/db-key?version=abc", token=valid)
    check(s == 400, "malformed version query: 400")
    r = cli("secret", "versions", "db-key", "--json", token_file=auditor_tf, url=url)
    vs = json.loads(r.stdout)["versions"] if r.returncode == 0 else []
    check([v["retired"] for v in vs] == [True, False], "versions lists retired state")
    r = cli("secret", "rm", "nopolicy", token_file=admin_tf, url=url)
    check(r.returncode == 0, "delete")
    r = cli("secret", "put", "nopolicy", "--type", "opaque", "--generate",
            token_file=admin_tf, url=url)
    check("version 2" in r.stdout, "numbers are never reused after delete: " + r.stdout)
    r = cli("secret", "list", "--json", token_file=auditor_tf, url=url)
    listing = r.stdout
    check(r.returncode == 0 and "db-key" in listing and b64u(value) not in listing
          and "value" not in listing, "list without values")

    # --- admin authentication and roles
    s, _, _ = http(url + "/v1/admin/secrets")
    check(s == 401, "admin without token: 401")
    s, _, _ = http(url + "/v1/admin/secrets", token="not-a-token")
    check(s == 401, "admin with unknown token: 401")
    r = cli("secret", "rm", "db-key", token_file=auditor_tf, url=url)
    check(r.returncode == 1 and "403" in r.stderr, "auditor cannot delete")
    s, _, _ = http(url + "/v1/admin/secrets/x", method="POST", token=tok["auditor"],
                   body='{"type":"opaque","generate":true}')
    check(s == 403, "auditor cannot create")
    s, _, _ = http(url + "/v1/admin/secrets/db-key/policy", method="PUT", token=tok["auditor"],
                   body='{"measurement":["%s"]}' % ZERO_M)
    check(s == 403, "auditor cannot set a policy")

    # --- malformed and oversized requests
    s, _, b = http(url + "/v1/admin/secrets/big", method="POST", token=tok["admin"],
                   body="{" + " " * 8192 + "}")
    check(s == 413, "oversized body: 413 (got %d)" % s)
    s, _, b = http(url + "/v1/admin/secrets/bad", method="POST", token=tok["admin"],
                   body="{not json")
    check(s == 400 and problem(b).get("status") == 400, "malformed JSON: 400 problem")
    s, _, b = http(url + "/v1/admin/secrets/bad", method="POST", token=tok["admin"],
                   body='{"type":"aes256","value":"AAAA"}')
    check(s == 400 and "32 bytes" in problem(b).get("detail", ""), "short aes256 value")
    s, _, b = http(url + "/v1/admin/secrets/bad%2Fname", method="POST", token=tok["admin"],
                   body='{"type":"opaque","generate":true}')
    check(s == 400, "bad secret name: 400")
    s, _, b = http(url + "/v1/secrets/db-key", token="x" * 20000)
    check(s in (400, 401, 413, 431), "oversized token refused (got %d)" % s)

    # several workers: concurrent releases all succeed and the chain stays whole
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        codes = list(ex.map(lambda _: http(url + "/v1/secrets/db-key", token=valid)[0],
                            range(40)))
    check(codes == [200] * 40, "40 concurrent releases: %r" % sorted(set(codes)))

    s, _, b = http(url + "/metrics")
    check(s == 200 and b'provd_releases_total{outcome="released"}' in b, "/metrics")

    # --- at rest: the database never holds the plaintext
    for fn in os.listdir(state):
        if fn.startswith("provd.db"):
            with open(os.path.join(state, fn), "rb") as f:
                data = f.read()
            check(value not in data and b64u(value).encode() not in data,
                  "plaintext not in " + fn)

    # --- audit
    r = cli("audit", "verify", token_file=auditor_tf, url=url)
    check(r.returncode == 0 and "audit log ok" in r.stdout, "remote audit verify: " + r.stdout)
    r = cli("audit", "show", token_file=auditor_tf, url=url)
    recs = [json.loads(l) for l in r.stdout.splitlines()]
    rel = [x for x in recs if x.get("event") == "release"]
    check(any(x["decision"] == "allow" and x["jti"] == "4f1c0b3a-demo" and
              len(x["transfer_key_thumbprint"]) == 43 for x in rel), "audit: allowed release")
    check(any(x["decision"] == "deny" and "measurement" in x["failed"] for x in rel),
          "audit: denial with its failed condition")
    check(valid not in r.stdout and tok["admin"] not in r.stdout, "audit holds no token")

    alog = os.path.join(state, "audit.log")
    with open(alog) as f:
        good = f.read().splitlines(keepends=True)
    copy = os.path.join(tmp, "audit.copy")

    def verify(lines, *extra):
        with open(copy, "w") as f:
            f.write("".join(lines))
        return subprocess.run([NITRIDE, "audit", "verify", copy, *extra],
                              capture_output=True, text=True)

    r = verify(good)
    check(r.returncode == 0, "local audit verify of an intact copy: " + r.stdout)
    head = r.stdout.split()[-1]
    edited = list(good)
    edited[2] = edited[2].replace('"deny"', '"allow"') if '"deny"' in edited[2] else \
        edited[2].replace('"127.0.0.1"', '"127.0.0.2"')
    r = verify(edited)
    check(r.returncode == 1 and "BROKEN" in r.stdout, "edited record detected")
    r = verify(good[:3] + good[4:])
    check(r.returncode == 1, "removed record detected")
    sw = list(good)
    sw[3], sw[4] = sw[4], sw[3]
    r = verify(sw)
    check(r.returncode == 1, "reordered records detected")
    r = verify(good[:-1], "--head", head)
    check(r.returncode == 1, "truncated tail detected against the head")
    r = verify(good, "--head", head)
    check(r.returncode == 0, "intact log matches its head")

    # --- restart: data survive, the master key is reused, the chain continues
    p.send_signal(signal.SIGTERM)
    check(p.wait(timeout=10) == 0, "SIGTERM stops provd cleanly")
    p, url = start_provd(cfg)
    procs.append(p)
    s, _, b = http(url + "/v1/secrets/db-key", token=valid)
    check(s == 200, "secrets survive a restart")
    r = cli("audit", "verify", token_file=auditor_tf, url=url)
    check(r.returncode == 0, "chain continues after restart: " + r.stdout)

    # SIGHUP reloads the admin tokens: a new token works without a restart
    new_tok = b64u(os.urandom(24))
    h = subprocess.run([PROVD, "--hash-token"], input=new_tok, capture_output=True, text=True,
                       check=True).stdout.strip()
    s, _, _ = http(url + "/v1/admin/secrets", token=new_tok)
    check(s == 401, "a token not yet listed is refused")
    with open(os.path.join(tmp, "tokens"), "a") as f:
        f.write("auditor %s carol\n" % h)
    p.send_signal(signal.SIGHUP)
    for _ in range(50):
        s, _, _ = http(url + "/v1/admin/secrets", token=new_tok)
        if s == 200:
            break
        time.sleep(0.1)
    check(s == 200, "SIGHUP reloads admin_tokens")

    # a tampered log refuses to start
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
    with open(alog, "w") as f:
        f.write("".join(edited))
    r = subprocess.run([PROVD, "--config", cfg], capture_output=True, text=True, timeout=20)
    check(r.returncode == 2 and "chain broken" in r.stderr, "broken audit log refuses start")

    # --- TLS (a self-signed certificate made with the openssl tool)
    if shutil.which("openssl"):
        crt, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        state2 = os.path.join(tmp, "state2")
        cfg2 = os.path.join(tmp, "tls.ini")
        with open(cfg2, "w") as f:
            f.write("listen = 127.0.0.1:0\ntls_cert = %s\ntls_key = %s\nstate_dir = %s\n"
                    "as_jwks = %s\nissuer = %s\nadmin_tokens = %s\n"
                    % (crt, key, state2, jwks_path, ISSUER, os.path.join(tmp, "tokens")))
        p2, url2 = start_provd(cfg2)
        procs.append(p2)
        check(url2.startswith("https://"), "TLS listener")
        r = subprocess.run([NITRIDE, "secret", "list", "--url", url2, "--token-file", admin_tf,
                            "--cacert", crt], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "CLI over HTTPS with --cacert: " + r.stderr)
        r = subprocess.run([NITRIDE, "secret", "list", "--url", url2, "--token-file", admin_tf],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 2, "HTTPS without the CA is refused")
        n, reply = tls_reply_records(url2, crt, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        check(n == 1 and reply.startswith(b"HTTP/1.1 200"),
              "headers and body leave in one TLS record (%d records)" % n)

        # admin client certificates: role from the subject's OU, CA from admin_client_ca
        def ossl(*a):
            subprocess.run(["openssl", *a], check=True, capture_output=True)

        ca_key, ca_crt = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.crt")
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=admin CA")
        certs = {}
        for who, ou, signer in [("alice", "admin", ca_crt), ("bob", "auditor", ca_crt),
                                ("mallory", "admin", None)]:
            k, csr, c = (os.path.join(tmp, who + x) for x in (".key", ".csr", ".crt"))
            ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", k, "-out", csr, "-subj", "/OU=%s/CN=%s" % (ou, who))
            if signer:
                ossl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
                     "-CAcreateserial", "-out", c, "-days", "2")
            else:  # self-signed: not from the admin CA
                ossl("x509", "-req", "-in", csr, "-signkey", k, "-out", c, "-days", "2")
            certs[who] = (c, k)
        state3 = os.path.join(tmp, "state3")
        cfg3 = os.path.join(tmp, "mtls.ini")
        with open(cfg3, "w") as f:
            f.write("listen = 127.0.0.1:0\ntls_cert = %s\ntls_key = %s\nstate_dir = %s\n"
                    "as_jwks = %s\nissuer = %s\nadmin_client_ca = %s\n"
                    % (crt, key, state3, jwks_path, ISSUER, ca_crt))
        p3, url3 = start_provd(cfg3)
        procs.append(p3)

        def cert_cli(who, *args):
            c, k = certs[who]
            return subprocess.run([NITRIDE, *args, "--url", url3, "--cacert", crt, "--cert", c,
                                   "--key", k], capture_output=True, text=True, timeout=60)

        r = cert_cli("alice", "secret", "put", "m", "--type", "opaque", "--generate")
        check(r.returncode == 0, "admin certificate may create: " + r.stderr)
        r = cert_cli("bob", "secret", "list")
        check(r.returncode == 0 and "m " in r.stdout, "auditor certificate may list")
        r = cert_cli("bob", "secret", "rm", "m")
        check(r.returncode == 1 and "403" in r.stderr, "auditor certificate may not delete")
        r = cert_cli("mallory", "secret", "list")
        check(r.returncode == 2, "a certificate from another CA is refused")
        r = subprocess.run([NITRIDE, "secret", "list", "--url", url3, "--cacert", crt,
                            "--token-file", admin_tf], capture_output=True, text=True, timeout=60)
        check(r.returncode == 1 and "401" in r.stderr, "no certificate, no token: 401")
        # release callers need no certificate
        ctx = __import__("ssl").create_default_context(cafile=crt)
        req = urllib.request.Request(url3 + "/healthz")
        with urllib.request.urlopen(req, timeout=20, context=ctx) as resp:
            check(resp.status == 200, "TLS without a client certificate still served")


if __name__ == "__main__":
    sys.exit(main())
