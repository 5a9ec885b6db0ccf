#!/bin/sh
# make bench: run the benchmarks against a build directory.
#   bench/run.sh BUILD_DIR [bench_verify options, e.g. --json]
# BENCH_SECONDS (default 2) is the time per mode, thread count and round;
# NITRIDE_VECTORS (default ../shared/vectors next to the source) the vectors.
set -eu
if [ $# -lt 1 ]; then
	echo "usage: $0 BUILD_DIR [bench_verify options]" >&2
	exit 2
fi
build=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
NITRIDE_VECTORS=${NITRIDE_VECTORS:-$(cd "$root/.." && pwd)/shared/vectors}
export NITRIDE_VECTORS
exe=$build/bench/bench_verify
if [ ! -x "$exe" ]; then
	echo "$0: $exe not built (ninja -C $build)" >&2
	exit 2
fi
"$exe" --seconds "${BENCH_SECONDS:-2}" "$@"
# The other benchmarks, each with its own baseline (docs/bench.md).
if [ $# -eq 0 ]; then
	meson test -C "$build" --benchmark --verbose --no-rebuild measure attestd vhsm caseb
fi
