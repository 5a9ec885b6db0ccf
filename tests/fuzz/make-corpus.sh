#!/bin/sh
# make-corpus.sh VECTORS_DIR OUT_DIR
#
# Build the fuzzers' seed corpora from the test vectors:
#   OUT_DIR/report/     snp/reports/*.bin and the synthetic report+table
#   OUT_DIR/cert/       snp/certs/*.der and amd/*.pem
#   OUT_DIR/certtable/  snp/synthetic/*.certtable.bin
#   OUT_DIR/ovmf/       measure/fixtures/*.bin (OVMF firmware tails)
#   OUT_DIR/jwe/        protocol/secret*.jwe and a protected header
# OUT_DIR must be a build directory: the script refuses to write into the
# source tree.  Missing vectors give empty seed directories (the fuzzers then
# start from nothing), never an error.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 VECTORS_DIR OUT_DIR" >&2
	exit 2
fi
vectors=$1
out=$2

src_root=$(cd "$(dirname "$0")/../.." && pwd -P)
mkdir -p "$out"
out_abs=$(cd "$out" && pwd -P)
case "$out_abs/" in
"$src_root"/*)
	# A build directory may live inside the source tree only if it is a meson
	# build directory (it has meson-private/ somewhere above OUT_DIR).
	d=$out_abs
	while [ "$d" != "$src_root" ] && [ ! -d "$d/meson-private" ]; do
		d=$(dirname "$d")
	done
	if [ "$d" = "$src_root" ]; then
		echo "$0: refusing to write seeds into the source tree ($out_abs)" >&2
		exit 2
	fi
	;;
esac

for sub in report cert certtable ovmf; do
	rm -rf "${out_abs:?}/${sub:?}"
	mkdir -p "$out_abs/$sub"
done

copy() { # copy DEST FILE...: each existing regular file
	dest=$1
	shift
	for f in "$@"; do
		[ -f "$f" ] && cp "$f" "$out_abs/$dest/"
	done
	return 0
}

copy report "$vectors"/snp/reports/*.bin "$vectors"/snp/synthetic/*report+certtable.bin
copy cert "$vectors"/snp/certs/*.der "$vectors"/snp/certs/*.pem "$vectors"/amd/*.der \
	"$vectors"/amd/*.pem
copy certtable "$vectors"/snp/synthetic/*.certtable.bin
copy ovmf "$vectors"/measure/fixtures/*.bin

# vhsm_frame: hand-made frames (docs/vhsm-protocol.md), not from the vectors.
rm -rf "${out_abs:?}/vhsm_frame"
mkdir -p "$out_abs/vhsm_frame"
printf 'VHSM\001\001\000\000\001\000\000\000\000\000\000\000' >"$out_abs/vhsm_frame/ping.bin"
printf 'VHSM\001\007\000\000\002\000\000\000\033\000\000\000\001\000\003\000\000\000app\006\000\002\000\000\000hi\011\000\004\000\000\000\002\000\000\000' \
	>"$out_abs/vhsm_frame/sign.bin"
printf 'VHSM\001\207\000\000\002\000\000\000\012\000\000\000\016\000\004\000\000\000\002\000\000\000' \
	>"$out_abs/vhsm_frame/denied.bin"
echo "seeds vhsm_frame: $(find "$out_abs/vhsm_frame" -type f | wc -l) files"

# jwe: the protocol vectors' JWEs, and one protected header alone (the
# target wraps an input starting with '{' into a compact JWE).
rm -rf "${out_abs:?}/jwe"
mkdir -p "$out_abs/jwe"
for f in "$vectors"/protocol/secret.jwe "$vectors"/protocol/secret.tampered-tag.jwe; do
	[ -f "$f" ] && tr -d '\n' <"$f" >"$out_abs/jwe/$(basename "$f")"
done
printf '{"alg":"ECDH-ES","enc":"A256GCM","apu":"QQ","epk":{"kty":"EC","crv":"P-256","x":"g8MMElYJEOgXsaggM3TqYL-ldI-YDW4q7E5SptbJlwI","y":"d4u-Jfy-dXoMqKcgp4LQ764nM2i1_rODPUnpp-uORx8"}}' \
	>"$out_abs/jwe/header.json"
echo "seeds jwe: $(find "$out_abs/jwe" -type f | wc -l) files"

for sub in report cert certtable ovmf; do
	n=$(find "$out_abs/$sub" -type f | wc -l)
	echo "seeds $sub: $n files"
done
