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
echo
echo "demo: done"
