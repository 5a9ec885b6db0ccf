#!/bin/sh
# libvhsm-pkcs11 against SoftHSM2 with ../shared/tools/p11bench, in the same run.
#   bench/run_p11bench.sh BUILD_DIR
# ITERS (per thread, default 20000), THREADS (default 1,2,8), TESTS (default
# ecdsa-p256-sign,aes-256-gcm-encrypt-4k,aes-256-gcm-decrypt-4k).
# Starts a volatile vhsmd (keys are session objects, as p11bench makes them)
# and a throw-away SoftHSM2 token, runs both, prints p11bench's lines and one
# "ratio" line per test and thread count: vHSM ops/s ÷ SoftHSM2 ops/s.
# A benchmark, not a test: only a failed self-check or error fails it.
set -eu
if [ $# -lt 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
src=${P11BENCH_SRC:-$(cd "$root/.." && pwd)/shared/tools/p11bench}
softhsm=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
module=$build/src/pkcs11/libvhsm-pkcs11.so
ITERS=${ITERS:-20000}
THREADS=${THREADS:-1,2,8}
TESTS=${TESTS:-ecdsa-p256-sign,aes-256-gcm-encrypt-4k,aes-256-gcm-decrypt-4k}
for f in "$module" "$build/bin/vhsmd" "$softhsm" "$src/p11bench.c"; do
	[ -e "$f" ] || { echo "$0: missing $f" >&2; exit 2; }
done

work=$(mktemp -d /tmp/p11bench-XXXXXX)
pid=
cleanup() {
	[ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# shellcheck disable=SC2046
cc -O2 -std=c11 $(pkg-config --cflags p11-kit-1) -o "$work/p11bench" "$src/p11bench.c" -ldl -pthread

printf '{"version":1,"rules":[{"principal":{"uid":%s},"keys":["*"],"operations":["*"]}]}\n' \
	"$(id -u)" >"$work/policy.json"
cat >"$work/vhsmd.ini" <<INI
[vhsmd]
socket = $work/vhsmd.sock
policy = $work/policy.json
state_dir = $work/state
secure_heap_size = 1048576
[sealing]
store = none
INI
"$build/bin/vhsmd" --config "$work/vhsmd.ini" 2>"$work/vhsmd.log" &
pid=$!
i=0
while [ ! -S "$work/vhsmd.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done

mkdir -p "$work/softhsm"
printf 'directories.tokendir = %s/softhsm\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
	"$work" >"$work/softhsm2.conf"

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) CPUs, iters/thread=$ITERS threads=$THREADS"
rc=0
NITRIDE_VHSM_SOCKET=$work/vhsmd.sock "$work/p11bench" -m "$module" -p 1234 -n "$ITERS" \
	-t "$THREADS" -T "$TESTS" | sed 's/^/vhsm /' | tee "$work/vhsm.out" || rc=1
SOFTHSM2_CONF=$work/softhsm2.conf "$work/p11bench" -m "$softhsm" -I 12345678 -p 1234 -l p11bench \
	-n "$ITERS" -t "$THREADS" -T "$TESTS" | sed 's/^/softhsm /' | tee "$work/softhsm.out" || rc=1

# ratio lines: test, threads, vhsm/softhsm ops/s
awk '
	{ t = ""; th = ""; ops = ""; st = ""
	  for (i = 2; i <= NF; i++) { split($i, kv, "=")
	    if (kv[1] == "test") t = kv[2]; else if (kv[1] == "threads") th = kv[2]
	    else if (kv[1] == "ops_per_s") ops = kv[2]; else if (kv[1] == "status") st = kv[2] }
	  key = t " " th
	  if (th == "") { key = t " *" }
	  if (!(key in seen)) { seen[key] = 1; order[n++] = key }
	  if (st == "ok") val[$1, key] = ops; else val[$1, key] = st }
	END { for (i = 0; i < n; i++) { k = order[i]; split(k, p, " ")
	    if (p[2] == "*") continue
	    v = (("vhsm", k) in val) ? val["vhsm", k] : val["vhsm", p[1] " *"]
	    s = (("softhsm", k) in val) ? val["softhsm", k] : val["softhsm", p[1] " *"]
	    if (v + 0 > 0 && s + 0 > 0) r = sprintf("%.2f", v / s); else r = "n/a"
	    printf "ratio test=%s threads=%s vhsm_ops_per_s=%s softhsm_ops_per_s=%s vhsm/softhsm=%s\n", p[1], p[2], v, s, r } }
' "$work/vhsm.out" "$work/softhsm.out"
exit $rc
