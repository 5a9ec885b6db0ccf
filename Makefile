# Nitride — a thin wrapper around meson/ninja.  See README.md.
#
#   make          install missing Debian packages, build into build/
#   make check    -Werror build, all tests, again under ASan+UBSan, fuzz briefly
#   make demo     show and verify a real SEV-SNP report
#   make bench    benchmarks (not tests)
#   make fuzz     longer fuzzing runs (FUZZ_SECONDS, default 300)

BUILD        ?= build
ASAN_BUILD   ?= build-asan
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 300
NITRIDE_VECTORS ?= $(abspath ../shared/vectors)
export NITRIDE_VECTORS

.PHONY: all setup build check demo bench fuzz clean

all: build

setup:
	@./scripts/setup-deps.sh

$(BUILD)/build.ninja: | setup
	meson setup $(BUILD) --werror

build: setup $(BUILD)/build.ninja
	ninja -C $(BUILD)

check: setup
	./scripts/check.sh

demo: build
	./scripts/demo.sh $(BUILD)

bench: build
	./bench/run.sh $(BUILD)

fuzz: setup
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false 2>/dev/null || true
	ninja -C $(FUZZ_BUILD)
	./tests/fuzz/run.sh $(FUZZ_BUILD) $(NITRIDE_VECTORS) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
