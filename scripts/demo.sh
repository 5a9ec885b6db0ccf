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
# Confidential boot and Case B through the services (loopback, plain HTTP).
MV="$V/measure"
OVMF="$MV/fixtures/ovmf_AmdSev_suffix.bin"
KERNEL="$MV/inputs/kernel.bin"
INITRD="$MV/inputs/initrd.bin"
APPEND="console=ttyS0 root=/dev/vda1"
PIDS=""
cleanup() {
	for p in $SIMPID $PIDS; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$SIMDIR"
}
kill "$SIMPID" 2>/dev/null; wait "$SIMPID" 2>/dev/null || true
SIMPID=""

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
		if [ $i -gt 300 ]; then
			echo "demo: $name did not start" >&2
			cat "$SIMDIR/$name.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	DAEMON_ADDR=$(sed -n "s/^$prefix \([^ ]*\).*/\1/p" "$SIMDIR/$name.out" | head -n 1)
}

step "The operator computes the measurement the VM must have (OVMF + kernel + initrd + command line)"
MEAS=$("$NITRIDE" measure --mode snp --vcpus 2 --vcpu-type EPYC-v4 --ovmf "$OVMF" \
	--kernel "$KERNEL" --initrd "$INITRD" --append "$APPEND")
echo "expected MEASUREMENT $MEAS"

step "Attestation Service (policy: exactly that measurement) and Provisioning Service (a disk passphrase)"
"$BUILD/bin/snpsimd" --state-dir "$SIMDIR/chip" --export-roots "$SIMDIR/chip-roots" >/dev/null 2>&1
cat >"$SIMDIR/attest-policy.json" <<JSON
{"measurements": ["$MEAS"], "vmpls": [0], "signing_keys": ["vcek"], "products": ["genoa"],
 "guest_policy": {"allow_debug": false}}
JSON
cat >"$SIMDIR/attestd.ini" <<INI
[attestd]
listen = 127.0.0.1:0
plain_http = yes
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
ADMIN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$ADMIN" >"$SIMDIR/admin.token"
echo "admin $(printf '%s' "$ADMIN" | "$BUILD/bin/provd" --hash-token) demo" >"$SIMDIR/admin-tokens"
curl -sf "$AURL/v1/jwks" >"$SIMDIR/as.jwks" 2>/dev/null ||
	/usr/bin/python3 -c "import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())" "$AURL/v1/jwks" >"$SIMDIR/as.jwks"
cat >"$SIMDIR/provd.ini" <<INI
[provd]
listen = 127.0.0.1:0
plain_http = yes
state_dir = $SIMDIR/provd
as_jwks = $SIMDIR/as.jwks
issuer = https://attestd.demo
admin_tokens = $SIMDIR/admin-tokens
INI
start_daemon provd "provd: listening" "$BUILD/bin/provd" --config "$SIMDIR/provd.ini"
PURL=$DAEMON_ADDR
PIDS="$PIDS $DAEMON_PID"
echo "provd at $PURL"
head -c 32 /dev/urandom >"$SIMDIR/disk.pass"
"$NITRIDE" secret put root-disk --type opaque --value-file "$SIMDIR/disk.pass" \
	--url "$PURL" --token-file "$SIMDIR/admin.token"
printf '{"all": [{"measurement": ["%s"]}], "ear_status": ["affirming"]}\n' "$MEAS" >"$SIMDIR/release.json"
"$NITRIDE" policy set root-disk "$SIMDIR/release.json" --url "$PURL" --token-file "$SIMDIR/admin.token"

# The transfer key stands for the vHSM's: only its public half leaves it.
/usr/bin/python3 - "$SIMDIR" <<'PY'
import sys
from jwcrypto import jwk
k = jwk.JWK.generate(kty="EC", crv="P-256")
open(sys.argv[1] + "/transfer.priv.jwk", "w").write(k.export_private())
open(sys.argv[1] + "/transfer.pub.jwk", "w").write(k.export_public())
PY

for CASE in measured changed; do
	if [ "$CASE" = measured ]; then
		step "The VM boots the measured images: nitrided attests and fetches the secret"
		BOOT_APPEND=$APPEND
	else
		step "The same VM with a changed kernel command line (init=/bin/sh): refused"
		BOOT_APPEND="$APPEND init=/bin/sh"
	fi
	start_daemon vm "snpsimd: socket" "$BUILD/bin/snpsimd" --state-dir "$SIMDIR/chip" \
		--boot-ovmf "$OVMF" --boot-kernel "$KERNEL" --boot-initrd "$INITRD" \
		--boot-append "$BOOT_APPEND" --boot-vcpus 2
	SOCK=$DAEMON_ADDR
	SIMPID=$DAEMON_PID
	if [ "$CASE" = measured ]; then
		echo "-- one attestation by hand: challenge, report binding nonce and key, token"
		/usr/bin/python3 - "$AURL" "$NITRIDE" "$SOCK" "$SIMDIR" <<'PY'
import base64, hashlib, json, subprocess, sys, urllib.request
aurl, nitride, sock, d = sys.argv[1:5]
def post(path, body):
    req = urllib.request.Request(aurl + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())
nonce = post("/v1/challenge", {})["nonce"]
pub = json.loads(open(d + "/transfer.pub.jwk").read())
# RFC 8785 canonical JSON of {"nonce", "tee-pubkey"} (ASCII members: sorted keys, no spaces).
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
print("token: ES256 JWT from", claims["iss"], "valid", claims["exp"] - claims["iat"], "s;",
      "ear.status", cpu["ear.status"], "; cnf.jwk = the transfer key:",
      claims["cnf"]["jwk"]["x"] == pub["x"])
ev = cpu.get("ear.veraison.annotated-evidence", {})
print("appraised evidence in the token: product", ev.get("product"), "measurement",
      ev.get("measurement", "")[:32] + "…")
PY
	fi
	T0=$(date +%s%N)
	if "$BUILD/bin/nitrided" --once --provision root-disk --tee-pubkey "$SIMDIR/transfer.pub.jwk" \
		--out "$SIMDIR/root-disk.jwe" --attestd "$AURL" --provd "$PURL" --snp "sim:$SOCK"; then
		echo "flow took $(( ($(date +%s%N) - T0) / 1000000 )) ms; nitrided holds only a JWE:"
		cut -c1-72 "$SIMDIR/root-disk.jwe"; echo "..."
		/usr/bin/python3 - "$SIMDIR" <<'PY'
import base64, json, sys
from jwcrypto import jwe, jwk
d = sys.argv[1]
t = jwe.JWE()
t.deserialize(open(d + "/root-disk.jwe").read(), key=jwk.JWK.from_json(open(d + "/transfer.priv.jwk").read()))
got = base64.b64decode(json.loads(t.payload)["value"])
ok = got == open(d + "/disk.pass", "rb").read()
print("the transfer key's holder decrypts it:", "the passphrase matches" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
PY
		[ "$CASE" = measured ] || { echo "demo: the changed image got the secret" >&2; exit 1; }
	else
		[ "$CASE" = changed ] || { echo "demo: the measured image was refused" >&2; exit 1; }
	fi
	kill "$SIMPID" 2>/dev/null; wait "$SIMPID" 2>/dev/null || true
	SIMPID=""
done
echo
echo "demo: done"
