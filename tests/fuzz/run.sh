#!/bin/sh
# run.sh BUILD_DIR VECTORS_DIR SECONDS
#
# Fuzz every libFuzzer target of a -Dfuzzing=true build for SECONDS each:
#   - builds the targets (ninja) and the seed corpora (make-corpus.sh) into
#     BUILD_DIR/fuzz-seeds/<name>/;
#   - gives each target a fresh, writable corpus BUILD_DIR/fuzz-corpus/<name>/
#     (first directory: libFuzzer adds what it finds there) and the seeds as a
#     second directory, which libFuzzer only reads;
#   - keeps crash/timeout/oom inputs in BUILD_DIR/fuzz-artifacts/ and each log in
#     BUILD_DIR/fuzz-logs/<name>.log.
# Prints "fuzz <name>: PASS|FAIL" per target; exits 1 if any failed.
set -u

if [ $# -ne 3 ]; then
	echo "usage: $0 BUILD_DIR VECTORS_DIR SECONDS" >&2
	exit 2
fi
build=$1
vectors=$2
seconds=$3
here=$(cd "$(dirname "$0")" && pwd -P)
# The targets are whatever tests/fuzz/meson.build built: fuzz_<name>.
targets_in() {
	for f in "$1"/tests/fuzz/fuzz_*; do
		[ -f "$f" ] && [ -x "$f" ] && basename "$f" | sed 's/^fuzz_//'
	done
}

case "$seconds" in
'' | *[!0-9]*)
	echo "$0: SECONDS must be a whole number" >&2
	exit 2
	;;
esac

if ! ninja -C "$build" >"$build/fuzz-build.log" 2>&1; then
	echo "$0: build failed, see $build/fuzz-build.log" >&2
	tail -n 20 "$build/fuzz-build.log" >&2
	echo "fuzz build: FAIL"
	exit 1
fi
targets=$(targets_in "$build")
if [ -z "$targets" ]; then
	echo "fuzz none: FAIL (no fuzz_* executables in $build/tests/fuzz)"
	exit 1
fi
"$here/make-corpus.sh" "$vectors" "$build/fuzz-seeds" >/dev/null || exit 1
mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"

failed=0
for name in $targets; do
	exe=$build/tests/fuzz/fuzz_$name
	corpus=$build/fuzz-corpus/$name
	log=$build/fuzz-logs/$name.log
	if [ ! -x "$exe" ]; then
		echo "fuzz $name: FAIL (no executable $exe)"
		failed=1
		continue
	fi
	rm -rf "$corpus"
	mkdir -p "$corpus"
	# Targets without vectors to start from (attest_json) begin from nothing.
	seeds=""
	[ -d "$build/fuzz-seeds/$name" ] && seeds="$build/fuzz-seeds/$name"
	if "$exe" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
		-artifact_prefix="$build/fuzz-artifacts/$name-" \
		"$corpus" $seeds >"$log" 2>&1; then
		echo "fuzz $name: PASS"
	else
		echo "fuzz $name: FAIL (log $log)"
		failed=1
	fi
done
exit $failed
