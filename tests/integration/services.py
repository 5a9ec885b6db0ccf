"""The Case B services as the integration tests and bench_caseb run them.

attestd and provd on 127.0.0.1 (plain HTTP, or HTTPS with a throw-away CA
from tls_files), each started from a configuration written here; the
secrets provd holds, put through the nitride CLI; and the waits every test
needs.  Each test keeps its own checks: these helpers raise on anything that
is set-up rather than behaviour under test.
"""
import base64
import json
import os
import ssl
import subprocess
import time
import urllib.request

from simtest import closed_port


def start_daemon(argv, prefix, stderr=subprocess.DEVNULL):
    """Start a daemon that announces "<name>: listening URL" on stdout;
    returns (process, URL)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True)
    line = p.stdout.readline()
    if not line.startswith(prefix):
        p.kill()
        p.wait()
        why = p.stderr.read() if stderr == subprocess.PIPE else ""
        raise RuntimeError(f"{argv[0]} did not start: {line!r} {why}")
    return p, line.split()[2]


def wait_path(path, proc, what, tries=400):
    """Wait (bounded: tries x 50 ms) for a daemon to create path."""
    for _ in range(tries):
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            why = proc.stderr.read() if proc.stderr is not None else ""
            raise RuntimeError(f"{what} exited ({proc.returncode}) {why}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not create {path}")


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=60)


def tls_files(tmp):
    """A CA and a P-256 server certificate for IP 127.0.0.1 signed by it (as
    scripts/demo.sh); returns the paths (ca, cert, key)."""
    ca, cakey = os.path.join(tmp, "ca.pem"), os.path.join(tmp, "ca.key")
    crt, key, csr = (os.path.join(tmp, n) for n in ("tls.crt", "tls.key", "tls.csr"))
    ext = os.path.join(tmp, "san.ext")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", "1", "-subj", "/CN=test CA", "-keyout", cakey, "-out", ca)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr)
    with open(ext, "w") as f:
        f.write("subjectAltName = IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial", "-days",
             "1", "-extfile", ext, "-out", crt)
    return ca, crt, key


def _listen_lines(tls, port=0):
    """The listen/transport lines of a service's configuration."""
    if tls is None:
        return f"listen = 127.0.0.1:{port}\nplain_http = yes\n"
    _, crt, key = tls
    return f"listen = 127.0.0.1:{port}\ntls_cert = {crt}\ntls_key = {key}\n"


def start_attestd(exe, tmp, roots, measurement, issuer, tls=None, stderr=subprocess.DEVNULL):
    """attestd allowing exactly `measurement` (genoa, VMPL 0, VCEK, no debug).
    The simulator's ARK is pinned (extra_roots_dir = roots); the certificates
    come with the extended reports, and the KDS, a closed port, is never
    needed.  Its JWKS is written to tmp/as.jwks.  Returns (process, URL,
    JWKS as parsed JSON)."""
    pol = os.path.join(tmp, "attest-policy.json")
    with open(pol, "w") as f:
        json.dump({"measurements": [measurement], "vmpls": [0], "signing_keys": ["vcek"],
                   "products": ["genoa"], "guest_policy": {"allow_debug": False}}, f)
    cfg = os.path.join(tmp, "attestd.ini")
    with open(cfg, "w") as f:
        f.write("[attestd]\n" + _listen_lines(tls) +
                f"state_dir = {tmp}/attestd\npolicy = {pol}\nextra_roots_dir = {roots}\n"
                f"kds_url = http://127.0.0.1:{closed_port()}\nkds_retries = 1\nkds_timeout = 5\n"
                f"issuer = {issuer}\nworkers = 2\n")
    proc, url = start_daemon([exe, "--config", cfg], "attestd: listening", stderr)
    try:
        jwks = _get(url + "/v1/jwks", tls)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    with open(os.path.join(tmp, "as.jwks"), "wb") as f:
        f.write(jwks)
    return proc, url, json.loads(jwks)


def _get(url, tls):
    ctx = ssl.create_default_context(cafile=tls[0]) if tls is not None else None
    with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
        return r.read()


def start_provd(exe, tmp, issuer, tls=None, stderr=subprocess.DEVNULL, port=0):
    """provd trusting tmp/as.jwks (start_attestd writes it) for `issuer`, with
    one admin bearer token (its hash in tmp/tokens, the token in
    tmp/admin.token), on `port` (0: any; a fixed one lets a test restart it
    from tmp/provd.ini at the same URL).  Returns (process, URL, the nitride
    CLI's arguments to administer it)."""
    admin = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
    h = subprocess.run([exe, "--hash-token"], input=admin, capture_output=True, text=True,
                       check=True, timeout=30).stdout.strip()
    with open(os.path.join(tmp, "tokens"), "w") as f:
        f.write(f"admin {h} test\n")
    token_file = os.path.join(tmp, "admin.token")
    with open(token_file, "w") as f:
        f.write(admin + "\n")
    cfg = os.path.join(tmp, "provd.ini")
    with open(cfg, "w") as f:
        f.write("[provd]\n" + _listen_lines(tls, port) +
                f"state_dir = {tmp}/provd\nas_jwks = {tmp}/as.jwks\nissuer = {issuer}\n"
                f"admin_tokens = {tmp}/tokens\nworkers = 2\n")
    proc, url = start_daemon([exe, "--config", cfg], "provd: listening", stderr)
    admin_args = ["--url", url, "--token-file", token_file]
    if tls is not None:
        admin_args += ["--cacert", tls[0]]
    return proc, url, admin_args


def put_secret(nitride, admin_args, tmp, name, typ, value_file, policy, extra=()):
    """provd holds `name` (a value from value_file, or generated when it is
    None) released under `policy`; returns None, or what the CLI said."""
    args = [nitride, "secret", "put", name, "--type", typ] + list(extra)
    args += ["--value-file", value_file] if value_file else ["--generate"]
    r = subprocess.run(args + admin_args, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return f"secret put {name}: {r.stderr.strip()}"
    rp = os.path.join(tmp, f"release-{name}.json")
    with open(rp, "w") as f:
        json.dump(policy, f)
    r = subprocess.run([nitride, "policy", "set", name, rp] + admin_args,
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return f"policy set {name}: {r.stderr.strip()}"
    return None


def release_policy(measurement):
    """The release policy of the tests' secrets: that measurement, affirmed."""
    return {"all": [{"measurement": [measurement]}], "ear_status": ["affirming"]}


def start_caseb(attestd_exe, provd_exe, nitride_exe, tmp, roots, measurement, issuer):
    """attestd allowing exactly `measurement`, and provd holding root-disk
    (32 random bytes, tmp/disk.pass) under release_policy(measurement), both
    over plain HTTP with their stderr kept (PIPE).  Returns (attestd, its
    URL, provd, its URL, the secret)."""
    attestd, aurl, _ = start_attestd(attestd_exe, tmp, roots, measurement, issuer,
                                     stderr=subprocess.PIPE)
    try:
        provd, purl, admin_args = start_provd(provd_exe, tmp, issuer, stderr=subprocess.PIPE)
    except Exception:
        attestd.kill()
        attestd.wait()
        raise
    secret = os.urandom(32)
    path = os.path.join(tmp, "disk.pass")
    with open(path, "wb") as f:
        f.write(secret)
    why = put_secret(nitride_exe, admin_args, tmp, "root-disk", "opaque", path,
                     release_policy(measurement))
    if why is not None:
        for p in (attestd, provd):
            p.kill()
            p.wait()
        raise RuntimeError(why)
    return attestd, aurl, provd, purl, secret
