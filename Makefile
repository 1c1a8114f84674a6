# mlx-native: the commands a newcomer runs.
#   make demo    the main job (until the model runner lands: the CPU quantized mat-vec benchmark)
#   make check   install build dependencies (as root), build, run every test, then again under ASan+UBSan
# Others: make build, make install [PREFIX=...], make fuzz [FUZZ_SECONDS=600], make goldens, make clean.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 600
# Debian packages the build needs (the CUDA toolkit is optional: used when nvcc is on PATH).
DEB_PACKAGES := build-essential cmake pkg-config libjansson-dev libpcre2-dev libutf8proc-dev
FUZZ_PACKAGES := clang libclang-rt-14-dev

.PHONY: all build check test asan deps demo install fuzz goldens clean

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing (run: sudo apt-get install$$missing)"; exit 1; fi; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The sanitizer pass leaves CUDA out: nvcc objects are not instrumented and
# the GPU has its own checker (compute-sanitizer).
asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMLXN_SANITIZE=ON -DMLXN_CUDA=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

check: test asan

demo: build
	$(BUILD)/mlxn bench qmv --bits 4 --group-size 64 --rows 4096 --cols 14336 --n 1

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

fuzz:
	@missing=""; for p in $(FUZZ_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing"; exit 1; fi; fi
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMLXN_FUZZ=ON -DMLXN_CUDA=OFF -DMLXN_BUILD_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	bash fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Regenerate tests/golden/ with real MLX (needs PyPI; not part of check).
goldens:
	python3 -m venv $(BUILD)/venv
	$(BUILD)/venv/bin/pip install -q -r tests/golden/requirements.txt
	for s in tests/golden/gen_*.py; do $(BUILD)/venv/bin/python $$s || exit 1; done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
