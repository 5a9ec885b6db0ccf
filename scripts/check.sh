#!/bin/sh
# make check: every gate CI applies, in order, with one closing tally.
#   1. banned-function check over the sources
#   2. -Werror build (gcc, hardened) and all tests
#   3. the same tests built with ASan + UBSan (gcc)
#   4. each libFuzzer target for FUZZ_CHECK_SECONDS (clang, ASan + UBSan)
# Prints "N passed, N failed" last; exits non-zero if anything failed.
set -u
cd "$(dirname "$0")/.." || exit 2

BUILD=${BUILD:-build}
ASAN_BUILD=${ASAN_BUILD:-build-asan}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_CHECK_SECONDS=${FUZZ_CHECK_SECONDS:-20}
NITRIDE_VECTORS=${NITRIDE_VECTORS:-$(cd .. && pwd)/shared/vectors}
export NITRIDE_VECTORS

if [ ! -f "$NITRIDE_VECTORS/snp/cases.tsv" ]; then
	echo "check: WARNING: no SEV-SNP vectors at $NITRIDE_VECTORS; the tests that need them will be skipped" >&2
fi

passed=0
failed=0
failures=""

tally() { # name status
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures="$failures $1"
	fi
}

# Count meson's test results from its JSON log (one object per line).
tally_meson() { # label builddir
	log="$2/meson-logs/testlog.json"
	if [ ! -f "$log" ]; then
		tally "$1:no-tests-ran" 1
		return
	fi
	p=$(grep -c '"result": "OK"' "$log")
	s=$(grep -c '"result": "SKIP"' "$log")
	f=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log")
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" -eq 0 ] || failures="$failures $1:$(grep -E '"result": "(FAIL|TIMEOUT|ERROR)"' "$log" | sed 's/.*"name": "\([^"]*\)".*/\1/' | tr '\n' ',')"
	if [ "$s" -ne 0 ]; then
		echo "check: $s $1 test(s) skipped" >&2
	fi
}

echo "== banned functions"
./scripts/check-banned.sh
tally banned $?

echo "== build (-Werror, hardened)"
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" --werror >/dev/null
fi
if ninja -C "$BUILD"; then
	echo "== tests"
	rm -f "$BUILD/meson-logs/testlog.json"
	meson test -C "$BUILD" --print-errorlogs --num-processes 2 >/dev/null 2>&1 ||
		meson test -C "$BUILD" --print-errorlogs --num-processes 1 --no-rebuild |
		grep -E 'FAIL|ERROR|TIMEOUT' | head -40
	tally_meson tests "$BUILD"
else
	tally build 1
fi

echo "== build with ASan + UBSan"
if [ ! -f "$ASAN_BUILD/build.ninja" ]; then
	meson setup "$ASAN_BUILD" --werror -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debug >/dev/null
fi
if ninja -C "$ASAN_BUILD"; then
	echo "== tests under ASan + UBSan"
	rm -f "$ASAN_BUILD/meson-logs/testlog.json"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	meson test -C "$ASAN_BUILD" --print-errorlogs --num-processes 2 --timeout-multiplier 3 \
		>/dev/null 2>&1 || grep -E '"result": "(FAIL|ERROR|TIMEOUT)"' \
		"$ASAN_BUILD/meson-logs/testlog.json" | cut -c1-300 | head -20
	tally_meson asan "$ASAN_BUILD"
else
	tally asan-build 1
fi

echo "== fuzz (${FUZZ_CHECK_SECONDS}s per target)"
if [ ! -f "$FUZZ_BUILD/build.ninja" ]; then
	CC=clang meson setup "$FUZZ_BUILD" -Dfuzzing=true -Db_sanitize=address,undefined \
		-Db_lundef=false >/dev/null
fi
if ninja -C "$FUZZ_BUILD"; then
	out=$(./tests/fuzz/run.sh "$FUZZ_BUILD" "$NITRIDE_VECTORS" "$FUZZ_CHECK_SECONDS" 2>&1)
	echo "$out" | grep -E '^fuzz '
	p=$(echo "$out" | grep -c -E '^fuzz .*: PASS')
	f=$(echo "$out" | grep -c -E '^fuzz .*: FAIL')
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" -eq 0 ] || failures="$failures fuzz"
	[ "$p" -gt 0 ] || tally fuzz-none-ran 1
else
	tally fuzz-build 1
fi

[ -z "$failures" ] || echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
