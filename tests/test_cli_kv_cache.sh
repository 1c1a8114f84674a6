#!/usr/bin/env bash
# --kv-cache in `mlxn generate`, `eval`, `bench model` (chat shares
# generate's table): TurboQuant runs and prints its KV bytes per token
# (computed here from the format: codes of K and V plus two f32 norms per
# kv head and layer), eval --compare-dense prints its measurement line, and
# bad values are clear errors: unknown kinds and widths (exit 2, the forms
# listed), --kv-dtype disagreeing (exit 2), a model whose head_dim the
# cache does not take (exit 1, naming it). Needs the SmolLM2 GGUF, as the
# other real-model CLI tests: without it the test fails, saying so.
#   bash tests/test_cli_kv_cache.sh PATH_TO_MLXN BUILD_DIR
set -u
mlxn=${1:?usage: test_cli_kv_cache.sh PATH_TO_MLXN BUILD_DIR}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_kv_cache_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli_helpers.sh
. "$(dirname "$0")/cli_helpers.sh"
gguf="${XDG_CACHE_HOME:-$HOME/.cache}/mlx-native/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$gguf" ]; then
  echo "FAIL: the test model $gguf is absent (sh tests/golden/fetch_smollm2.sh fetches it)" >&2
  exit 1
fi
golden=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/golden
T=(-t 1)

# SmolLM2: 30 layers x 3 kv heads x (32 + 32 + 8) = 6480 B = 6.3 KiB (tq4); 4 + 2 tokens held
run "generate tq4" 0 generate -m "$gguf" "${T[@]}" -n 2 --ignore-eos --kv-cache tq4 -p "The sky is"
has "generate tq4 stats" 'KV cache 6\.3 KiB per token \(tq4\)' "$err"
# k4v8: 30 x 3 x (32 + 64 + 8) = 9360 B = 9.1 KiB
run "generate k4v8" 0 generate -m "$gguf" "${T[@]}" -n 1 --kv-cache k4v8 -p "The sky is"
has "generate k4v8 stats" 'KV cache 9\.1 KiB per token \(k4v8\)' "$err"
# --kv-dtype keeps working, and agrees with --kv-cache when both are given
run "kv-dtype bf16" 0 generate -m "$gguf" "${T[@]}" -n 1 --kv-dtype bf16 --kv-cache bf16 -p "The sky is"
has "kv-dtype bf16 stats" 'KV cache 22\.5 KiB per token \(bf16\)' "$err"

run "eval compare" 0 eval -m "$gguf" --threads 1 --tokens "1 504 3287 314 253 2040 28 198 504 3287" --kv-cache tq8 --compare-dense
has "eval compare line" '^kv-cache tq8: ppl [0-9.]+, dense f32 ppl [0-9.]+ \([-+][0-9.]+%\), mean KL [0-9.]+, top-1 agreement [0-9.]+% over 10 positions, 12240 KV bytes per token \(f32 46080\)$' "$out"

# bench model on a random model of head_dim 64: 2 layers x 2 kv heads x (32 + 64 + 8) = 416 B
run "convert d64" 0 convert --random tiny-llama-d64 -o "$tmp/d64" --seed 3
run "bench k4v8" 0 bench model -m "$tmp/d64" -p 4 -n 2 -r 1 --warmup 0 -t 1 --kv-cache k4v8
has "bench k4v8 line" 'KV cache k4v8 \(416 bytes per token\)' "$out"
run "bench json" 0 bench model -m "$tmp/d64" -p 0 -n 2 -r 1 --warmup 0 -t 1 --kv-cache tq3 --json
has "bench json bytes" '"kv_bytes_per_token": 224' "$out"

# errors
for k in tq9 tq1 tq k4v9 k1v4 bogus "" F32; do
  [ "$k" = tq ] && continue
  run "bad --kv-cache '$k'" 2 generate -m "$gguf" --kv-cache "$k" -p hi
  has "bad --kv-cache '$k' message" 'kv-cache.*(tq2\.\.tq8|2\.\.8 bits)' "$err"
  run "eval bad --kv-cache '$k'" 2 eval -m "$gguf" --tokens "1 2" --kv-cache "$k"
done
run "disagree" 2 generate -m "$gguf" --kv-dtype bf16 --kv-cache tq4 -p hi
has "disagree message" 'disagree' "$err"
run "compare with last" 2 eval -m "$gguf" --tokens "1 2" --compare-dense --last
run "head_dim 16" 1 bench model -m "$golden/models/llama_f32" -p 4 -n 1 -r 1 --warmup 0 -t 1 --kv-cache tq4
has "head_dim 16 message" "head_dim is 16" "$err"

finish test_cli_kv_cache
