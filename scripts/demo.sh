#!/bin/sh
# make demo: show a real SEV-SNP report and verify it against AMD's chain.
# Grows with each part of Nitride.
set -eu
BUILD=${1:-build}
V=${NITRIDE_VECTORS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/vectors}
NITRIDE="$BUILD/bin/nitride"

if [ ! -f "$V/snp/cases.tsv" ]; then
	echo "demo: the SEV-SNP vectors are not at $V (set NITRIDE_VECTORS)" >&2
	exit 2
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "A real Genoa report (version 5, from a public project's test data)"
"$NITRIDE" report show "$V/snp/reports/genoa-v5-routex.bin"

step "Verify it: VCEK -> ASK -> ARK (pinned), signature, TCB and CHIP_ID binding"
"$NITRIDE" report verify --report "$V/snp/reports/genoa-v5-routex.bin" \
	--cert "$V/snp/certs/genoa-v5-routex.der" --roots "$V/amd"

step "The same for Turin, as JSON"
"$NITRIDE" report verify --report "$V/snp/reports/turin-v5-oak.bin" \
	--cert "$V/snp/certs/turin-v5-oak.der" --roots "$V/amd" --json

step "An extended report: the chain comes from its certificate table, trusted via the pinned ARK key"
"$NITRIDE" report verify --report "$V/snp/synthetic/gosevguest-milan.report+certtable.bin" --product milan

step "A tampered report is rejected (exit status 1)"
if "$NITRIDE" report verify --report "$V/snp/reports/neg-milan-signature-byte42.bin" \
	--cert "$V/snp/certs/neg-milan-signature-byte42.der" --roots "$V/amd"; then
	echo "demo: the tampered report verified" >&2
	exit 1
fi

step "A VLEK report, valid in 2025-06, whose VLEK has since expired"
"$NITRIDE" report verify --report "$V/snp/reports/milan-v3-vlek-trustee.bin" \
	--cert "$V/snp/certs/milan-v3-vlek-trustee.der" --roots "$V/amd" --at 2025-06-01T00:00:00Z
"$NITRIDE" report verify --report "$V/snp/reports/milan-v3-vlek-trustee.bin" \
	--cert "$V/snp/certs/milan-v3-vlek-trustee.der" --roots "$V/amd" || true

step "No SEV-SNP hardware here: start the simulator (its own ARK, never trusted by default)"
SIMDIR=$(mktemp -d)
SIMPID=""
cleanup() {
	[ -n "$SIMPID" ] && kill "$SIMPID" 2>/dev/null && wait "$SIMPID" 2>/dev/null
	rm -rf "$SIMDIR"
}
trap cleanup EXIT INT TERM
"$BUILD/bin/snpsimd" --state-dir "$SIMDIR/state" >"$SIMDIR/announce" 2>"$SIMDIR/log" &
SIMPID=$!
i=0
until grep -q '^snpsimd: socket' "$SIMDIR/announce" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 300 ] || ! kill -0 "$SIMPID" 2>/dev/null; then
		echo "demo: snpsimd did not start" >&2
		cat "$SIMDIR/log" >&2
		exit 1
	fi
	sleep 0.1
done
cat "$SIMDIR/announce"
"$BUILD/bin/snpsimd" --state-dir "$SIMDIR/state" --export-roots "$SIMDIR/roots" 2>/dev/null
export NITRIDE_SNP="sim:$SIMDIR/state/snpsim.sock"
"$NITRIDE" doctor

step "Get an extended report bound to a fresh nonce, through the same code path as on a real guest"
NONCE=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
"$NITRIDE" report get --data "$NONCE" --ext -o "$SIMDIR/evidence.bin"
"$NITRIDE" report show --json "$SIMDIR/evidence.bin" | grep -E '"(version|report_data|measurement|product|signing_key)"'

step "Verify it, trusting the simulator's roots explicitly (--pin-roots)"
"$NITRIDE" report verify --report "$SIMDIR/evidence.bin" --roots "$SIMDIR/roots" --pin-roots

step "The same evidence against AMD's genuine roots is rejected"
if "$NITRIDE" report verify --report "$SIMDIR/evidence.bin" --roots "$V/amd"; then
	echo "demo: simulated evidence passed as genuine" >&2
	exit 1
fi

step "A sealing key derived from the chip and the launch measurement (diagnostic output)"
"$NITRIDE" key derive --fields measurement,policy

# ---------------------------------------------------------------------------
# ---------------------------------------------------------------------------
# The whole system on loopback, with TLS (dev certificates made here):
# snpsimd (measured boot), attestd, provd (SQLite), vhsmd and nitrided.
MV="$V/measure"
OVMF="$MV/fixtures/ovmf_AmdSev_suffix.bin"
KERNEL="$MV/inputs/kernel.bin"
INITRD="$MV/inputs/initrd.bin"
APPEND="console=ttyS0 root=/dev/vda1"
PIDS=""
cleanup() {
	for p in $SIMPID $PIDS; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$SIMDIR"
}
kill "$SIMPID" 2>/dev/null || true
wait "$SIMPID" 2>/dev/null || true
SIMPID=""
ms() { date +%s%N | cut -c1-13; }

# start_daemon NAME PREFIX CMD...: run CMD in the background (a child of this
# shell, so that cleanup can wait for it), wait for its "PREFIX ADDR" line, and
# set DAEMON_ADDR and DAEMON_PID.
start_daemon() {
	name=$1 prefix=$2
	shift 2
	rm -f "$SIMDIR/$name.out"
	"$@" >"$SIMDIR/$name.out" 2>"$SIMDIR/$name.log" &
	DAEMON_PID=$!
	i=0
	until grep -q "^$prefix" "$SIMDIR/$name.out" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			echo "demo: $name did not start" >&2
			cat "$SIMDIR/$name.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	DAEMON_ADDR=$(sed -n "s/^$prefix \([^ ]*\).*/\1/p" "$SIMDIR/$name.out" | head -n 1)
}

# start_socket_daemon NAME SOCKET CMD...: as above, for daemons that announce
# themselves by creating their Unix socket.
start_socket_daemon() {
	name=$1 sock=$2
	shift 2
	"$@" >"$SIMDIR/$name.out" 2>"$SIMDIR/$name.log" &
	DAEMON_PID=$!
	i=0
	until [ -S "$sock" ]; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			echo "demo: $name did not start" >&2
			cat "$SIMDIR/$name.log" >&2
			exit 1
		fi
		sleep 0.1
	done
}

step "Dev TLS certificates for the services on 127.0.0.1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-subj "/CN=Nitride demo CA" -keyout "$SIMDIR/ca.key" -out "$SIMDIR/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
	-keyout "$SIMDIR/tls.key" -out "$SIMDIR/tls.csr" 2>/dev/null
printf 'subjectAltName = IP:127.0.0.1\n' >"$SIMDIR/san.ext"
openssl x509 -req -in "$SIMDIR/tls.csr" -CA "$SIMDIR/ca.pem" -CAkey "$SIMDIR/ca.key" \
	-CAcreateserial -days 1 -extfile "$SIMDIR/san.ext" -out "$SIMDIR/tls.crt" 2>/dev/null
echo "CA $SIMDIR/ca.pem, server certificate for IP 127.0.0.1"

step "The operator computes the measurement the VM must have (OVMF + kernel + initrd + command line)"
MEAS=$("$NITRIDE" measure --mode snp --vcpus 2 --vcpu-type EPYC-v4 --ovmf "$OVMF" \
	--kernel "$KERNEL" --initrd "$INITRD" --append "$APPEND")
echo "expected MEASUREMENT $MEAS"

step "Attestation Service (policy: exactly that measurement) and Provisioning Service, over HTTPS"
"$BUILD/bin/snpsimd" --state-dir "$SIMDIR/chip" --export-roots "$SIMDIR/chip-roots" >/dev/null 2>&1
cat >"$SIMDIR/attest-policy.json" <<JSON
{"measurements": ["$MEAS"], "vmpls": [0], "signing_keys": ["vcek"], "products": ["genoa"],
 "guest_policy": {"allow_debug": false}}
JSON
cat >"$SIMDIR/attestd.ini" <<INI
[attestd]
listen = 127.0.0.1:0
tls_cert = $SIMDIR/tls.crt
tls_key = $SIMDIR/tls.key
state_dir = $SIMDIR/attestd
policy = $SIMDIR/attest-policy.json
extra_roots_dir = $SIMDIR/chip-roots
kds_offline = yes
issuer = https://attestd.demo
INI
start_daemon attestd "attestd: listening" "$BUILD/bin/attestd" --config "$SIMDIR/attestd.ini"
AURL=$DAEMON_ADDR
PIDS="$PIDS $DAEMON_PID"
echo "attestd at $AURL"
/usr/bin/python3 - "$AURL/v1/jwks" "$SIMDIR/ca.pem" >"$SIMDIR/as.jwks" <<'PY'
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
sys.stdout.write(urllib.request.urlopen(sys.argv[1], context=ctx, timeout=30).read().decode())
PY
ADMIN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$ADMIN" >"$SIMDIR/admin.token"
echo "admin $(printf '%s' "$ADMIN" | "$BUILD/bin/provd" --hash-token) demo" >"$SIMDIR/admin-tokens"
cat >"$SIMDIR/provd.ini" <<INI
[provd]
listen = 127.0.0.1:0
tls_cert = $SIMDIR/tls.crt
tls_key = $SIMDIR/tls.key
state_dir = $SIMDIR/provd
as_jwks = $SIMDIR/as.jwks
issuer = https://attestd.demo
admin_tokens = $SIMDIR/admin-tokens
INI
start_daemon provd "provd: listening" "$BUILD/bin/provd" --config "$SIMDIR/provd.ini"
PURL=$DAEMON_ADDR
PIDS="$PIDS $DAEMON_PID"
echo "provd at $PURL"
ADM="--url $PURL --token-file $SIMDIR/admin.token --cacert $SIMDIR/ca.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$SIMDIR/app.pem" 2>/dev/null
openssl pkey -in "$SIMDIR/app.pem" -pubout -out "$SIMDIR/app.pub.pem"
printf '{"all": [{"measurement": ["%s"]}], "ear_status": ["affirming"]}\n' "$MEAS" >"$SIMDIR/release.json"
for NAME in app-signing app-other; do
	# shellcheck disable=SC2086
	"$NITRIDE" secret put "$NAME" --type p256 --value-file "$SIMDIR/app.pem" --usages sign $ADM
	# shellcheck disable=SC2086
	"$NITRIDE" policy set "$NAME" "$SIMDIR/release.json" $ADM
done

step "The VM boots the measured images; nitrided and vhsmd start inside it"
start_daemon vm "snpsimd: socket" "$BUILD/bin/snpsimd" --state-dir "$SIMDIR/chip" \
	--boot-ovmf "$OVMF" --boot-kernel "$KERNEL" --boot-initrd "$INITRD" \
	--boot-append "$APPEND" --boot-vcpus 2
SIMPID=$DAEMON_PID
SOCK=$DAEMON_ADDR
cat >"$SIMDIR/nitrided.ini" <<INI
[nitrided]
attestd_url = $AURL
provd_url = $PURL
ca_bundle = $SIMDIR/ca.pem
snp = sim:$SOCK
listen_socket = $SIMDIR/nitrided.sock
vhsmd_uid = $(id -u)
attempts = 2
backoff_ms = 100
INI
start_socket_daemon nitrided "$SIMDIR/nitrided.sock" "$BUILD/bin/nitrided" --config "$SIMDIR/nitrided.ini"
NITRIDED_PID=$DAEMON_PID
# vhsmd's socket must be reachable by other users for the refusal below to be
# vhsmd's policy, not a directory permission.
chmod 711 "$SIMDIR"
mkdir -m 711 "$SIMDIR/run"
cat >"$SIMDIR/vhsm-policy.json" <<JSON
{"version": 1, "rules": [
  {"comment": "the application (root here) uses keys; nitrided (same uid) may inject them",
   "principal": {"uid": $(id -u)}, "keys": ["*"], "operations": ["*"]}]}
JSON
cat >"$SIMDIR/vhsmd.ini" <<INI
[vhsmd]
socket = $SIMDIR/run/vhsmd.sock
socket_mode = 0666
policy = $SIMDIR/vhsm-policy.json
state_dir = $SIMDIR/vhsmd
[sealing]
store = none
[caseb]
nitrided_socket = $SIMDIR/nitrided.sock
hold_timeout_ms = 20000
provision = app-*
INI
start_socket_daemon vhsmd "$SIMDIR/run/vhsmd.sock" "$BUILD/bin/vhsmd" --config "$SIMDIR/vhsmd.ini"
PIDS="$PIDS $NITRIDED_PID $DAEMON_PID"
VHSM="$BUILD/bin/vhsm --socket $SIMDIR/run/vhsmd.sock"
grep -E '^(Dumpable|VmLck)' "/proc/$DAEMON_PID/status" 2>/dev/null || true

step "Case A: an application signs with a key generated inside the vHSM"
printf 'hello from an application\n' >"$SIMDIR/msg"
T0=$(ms)
$VHSM generate local-key --type p256 --usage sign,verify >/dev/null
$VHSM sign local-key --in "$SIMDIR/msg" --out "$SIMDIR/msg.sig"
$VHSM info local-key --pubout "$SIMDIR/local.pub.pem" --pem >/dev/null
echo "generate + sign: $(($(ms) - T0)) ms"
openssl dgst -sha256 -verify "$SIMDIR/local.pub.pem" -signature "$SIMDIR/msg.sig" "$SIMDIR/msg"
if $VHSM read local-key >/dev/null 2>&1; then
	echo "demo: the private key was readable" >&2
	exit 1
fi
echo "the key itself cannot be read: private keys are never exportable"
echo "another principal (uid nobody) asks to sign with it:"
if setpriv --reuid=65534 --regid=65534 --clear-groups $VHSM sign local-key --in "$SIMDIR/msg" \
	--out "$SIMDIR/nobody.sig"; then
	echo "demo: nobody could sign" >&2
	exit 1
fi

/usr/bin/python3 - "$AURL" "$NITRIDE" "$SOCK" "$SIMDIR" <<'PY'
# One attestation by hand, to show the token attestd issues.
import base64, hashlib, json, ssl, subprocess, sys, urllib.request
aurl, nitride, sock, d = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=d + "/ca.pem")
def post(path, body):
    req = urllib.request.Request(aurl + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, context=ctx, timeout=30).read())
print("\n\033[1m== An attestation by hand: challenge, report binding nonce and key, token\033[0m")
nonce = post("/v1/challenge", {})["nonce"]
pub = {"kty": "EC", "crv": "P-256", "x": "g8MMElYJEOgXsaggM3TqYL-ldI-YDW4q7E5SptbJlwI",
       "y": "d4u-Jfy-dXoMqKcgp4LQ764nM2i1_rODPUnpp-uORx8"}
jcs = json.dumps({"nonce": nonce, "tee-pubkey": pub}, sort_keys=True, separators=(",", ":"))
rd = hashlib.sha384(jcs.encode()).hexdigest() + "00" * 16
subprocess.run([nitride, "report", "get", "--snp", "sim:" + sock, "--data", rd, "--ext",
                "-o", d + "/ev.bin", "--certs-out", d + "/ev.certs"], check=True,
               capture_output=True)
tok = post("/v1/attest", {"nonce": nonce, "tee_pubkey": pub,
                          "report": base64.b64encode(open(d + "/ev.bin", "rb").read()).decode(),
                          "certs": base64.b64encode(open(d + "/ev.certs", "rb").read()).decode()})["token"]
claims = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
cpu = claims["submods"]["cpu0"]
ev = cpu.get("ear.veraison.annotated-evidence", {})
print("token: ES256 JWT from", claims["iss"], "valid", claims["exp"] - claims["iat"], "s;",
      "ear.status", cpu["ear.status"] + "; cnf.jwk is the transfer key:",
      claims["cnf"]["jwk"]["x"] == pub["x"])
print("appraised:", ev.get("product"), "measurement", ev.get("measurement", "")[:32] + "…")
PY

step "Case B: the application asks for a key the vHSM does not have"
echo "vhsmd holds the request, makes a transfer key, asks nitrided; nitrided attests"
echo "(attestd), fetches the key as a JWE (provd) and vhsmd installs it:"
T0=$(ms)
$VHSM sign app-signing --in "$SIMDIR/msg" --out "$SIMDIR/app.sig"
echo "attestation + release + injection + sign: $(($(ms) - T0)) ms"
openssl dgst -sha256 -verify "$SIMDIR/app.pub.pem" -signature "$SIMDIR/app.sig" "$SIMDIR/msg"
T0=$(ms)
$VHSM sign app-signing --in "$SIMDIR/msg" --out "$SIMDIR/app.sig"
echo "the second signature uses the installed key: $(($(ms) - T0)) ms"
if $VHSM read app-signing >/dev/null 2>&1; then
	echo "demo: the application read the provisioned key" >&2
	exit 1
fi
echo "and the application never gets the key itself"

step "A refusal: the VM rebooted with a changed kernel command line (init=/bin/sh)"
kill "$NITRIDED_PID" "$SIMPID" 2>/dev/null || true
wait "$NITRIDED_PID" "$SIMPID" 2>/dev/null || true
rm -f "$SIMDIR/nitrided.sock"
start_daemon vm "snpsimd: socket" "$BUILD/bin/snpsimd" --state-dir "$SIMDIR/chip" \
	--boot-ovmf "$OVMF" --boot-kernel "$KERNEL" --boot-initrd "$INITRD" \
	--boot-append "$APPEND init=/bin/sh" --boot-vcpus 2
SIMPID=$DAEMON_PID
sed -i "s|^snp = .*|snp = sim:$DAEMON_ADDR|" "$SIMDIR/nitrided.ini"
start_socket_daemon nitrided "$SIMDIR/nitrided.sock" "$BUILD/bin/nitrided" --config "$SIMDIR/nitrided.ini"
PIDS="$PIDS $DAEMON_PID"
if $VHSM sign app-other --in "$SIMDIR/msg" --out "$SIMDIR/other.sig"; then
	echo "demo: the changed image got its key" >&2
	exit 1
fi
echo
echo "demo: done"
