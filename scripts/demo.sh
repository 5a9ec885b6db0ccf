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
echo
echo "demo: done"
