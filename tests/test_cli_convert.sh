#!/usr/bin/env bash
# `mlxn convert` and `mlxn eval` from the command line: usage errors, a
# GGUF and a random preset converted, evaluated, the .npy logits file
# (numpy's format 1.0 header, [n_tokens, vocab] f32), greedy output, and
# a failed convert leaving nothing behind.
#   bash tests/test_cli_convert.sh PATH_TO_MLXN BUILD_DIR
set -u
mlxn=${1:?usage: test_cli_convert.sh PATH_TO_MLXN BUILD_DIR}
golden=$(cd "$(dirname "$0")" && pwd)/golden/convert
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_convert_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli_helpers.sh
. "$(dirname "$0")/cli_helpers.sh"


run "convert help" 0 convert --help
has "convert help" '^usage: mlxn convert' "$out"
has "convert help" 'tiny-llama' "$out"
has "convert help" '^ +--group-size N +Weights per scale' "$out"
has "convert help" '^ +-q, --quantize ' "$out"
run "convert no args" 2 convert
has "convert no args" 'no output given: add -o DIR' "$err"
run "convert no source" 2 convert -o "$tmp/x"
has "convert no source" 'no source given' "$err"
run "convert both inputs" 2 convert -i "$golden/tiny.gguf" --random tiny-llama -o "$tmp/x"
has "convert both inputs" 'not both' "$err"
run "convert bad mode" 2 convert --random tiny-llama -o "$tmp/x" --mode int3
has "convert bad mode" "--mode must be one of affine\|mxfp4\|mxfp8\|nvfp4, got 'int3'" "$err"
run "convert bad dtype" 2 convert --random tiny-llama -o "$tmp/x" --dtype f8
has "convert bad dtype" "--dtype must be one of .*got 'f8'" "$err"
run "convert unknown flag" 2 convert --random tiny-llama -o "$tmp/x" --frobnicate
has "convert unknown flag" "^mlxn convert: unknown option '--frobnicate'" "$err"
has "convert unknown flag" 'mlxn convert --help' "$err"
run "convert typo flag" 2 convert --random tiny-llama -o "$tmp/x" --group 32
has "convert typo flag" "unknown option '--group'" "$err"
run "convert missing value" 2 convert --random tiny-llama -o
has "convert missing value" '-o needs a value \(DIR\)' "$err"
run "convert bad bits" 2 convert --random tiny-llama -o "$tmp/x" -q --bits four
has "convert bad bits" "--bits wants a whole number >= 0, got 'four'" "$err"
run "convert bad seed" 2 convert --random tiny-llama -o "$tmp/x" --seed -3
has "convert bad seed" "--seed wants a non-negative whole number, got '-3'" "$err"
run "convert positional" 2 convert --random tiny-llama -o "$tmp/x" extra
has "convert positional" "unexpected argument 'extra'" "$err"
if [ -e "$tmp/x" ]; then bad "a refused convert wrote $tmp/x"; else ok; fi
run "eval help" 0 eval --help
has "eval help" '^usage: mlxn eval' "$out"
has "eval help" '^ +--tokens-file FILE +Read the token ids' "$out"
run "eval no model" 2 eval --tokens "1 2"
has "eval no model" 'no model given: add -m PATH' "$err"
run "eval no tokens" 2 eval -m "$golden/tiny.gguf"
has "eval no tokens" 'no tokens given' "$err"
run "eval both tokens" 2 eval -m "$golden/tiny.gguf" --tokens "1" --tokens-file "$tmp/ids"
has "eval both tokens" 'not both' "$err"
run "eval bad tokens" 2 eval -m "$golden/tiny.gguf" --tokens "1 x 3"
run "eval unknown flag" 2 eval -m "$golden/tiny.gguf" --tokens "1" --frobnicate
has "eval unknown flag" "^mlxn eval: unknown option '--frobnicate'" "$err"
has "eval unknown flag" 'mlxn eval --help' "$err"
run "eval typo flag" 2 eval -m "$golden/tiny.gguf" --tokens "1" --greed 2
has "eval typo flag" "unknown option '--greed' \(did you mean --greedy\?\)" "$err"
run "eval missing value" 2 eval -m "$golden/tiny.gguf" --tokens
has "eval missing value" '--tokens needs a value' "$err"
run "eval bad greedy" 2 eval -m "$golden/tiny.gguf" --tokens "1" --greedy -1
has "eval bad greedy" "--greedy wants a whole number >= 0, got '-1'" "$err"
run "eval last and logits" 2 eval -m "$golden/tiny.gguf" --tokens "1" --last --logits-out "$tmp/l.npy"
has "eval last and logits" '--last computes one row' "$err"

# GGUF -> directory; eval both; the logits file
run "convert gguf" 0 convert -i "$golden/tiny.gguf" -o "$tmp/tiny"
for f in config.json model.safetensors model.safetensors.index.json tokenizer.json tokenizer_config.json; do
  if [ -f "$tmp/tiny/$f" ]; then ok; else bad "convert gguf: no $f"; fi
done
run "eval dir" 0 eval -m "$tmp/tiny" --tokens "3 71 200 5" --logits-out "$tmp/a.npy" --greedy 4
has "eval dir" '^top1:( [0-9]+){4}$' "$out"
has "eval dir" '^greedy:( [0-9]+){4}$' "$out"
run "eval gguf" 0 eval -m "$golden/tiny.gguf" --tokens "3,71,200,5" --logits-out "$tmp/b.npy" --quiet
if cmp -s "$tmp/a.npy" "$tmp/b.npy"; then ok; else bad "GGUF and converted directory logits differ"; fi
magic=$(head -c 8 "$tmp/a.npy" | od -An -c | tr -s ' ')
has "npy magic" '^ 223 N U M P Y 001 \\0$' "$magic"
hdr=$(head -c 128 "$tmp/a.npy" | tail -c +11 | head -c 117)
has "npy header" "\{'descr': '<f4', 'fortran_order': False, 'shape': \(4, 262\), \}" "$hdr"
size=$(wc -c <"$tmp/a.npy")
if [ "$size" -eq $((128 + 4 * 262 * 4)) ]; then ok; else bad "npy size $size"; fi

# a random preset, sharded
run "convert random" 0 convert --random tiny-qwen3 -q --seed 5 --max-shard-mb 0.01 -o "$tmp/r"
n=$(ls "$tmp/r" | grep -c '^model-0000[0-9]-of-0000[0-9]\.safetensors$')
if [ "$n" -ge 2 ]; then ok; else bad "expected shards, got $n"; fi
run "eval random" 0 eval -m "$tmp/r" --tokens "1 2 3"
# --last: one top-1 id, the same as the last of the full run's
full=$(grep '^top1:' <<<"$out" | awk '{print $NF}')
printf '1,2,3\n' >"$tmp/ids"
run "eval last" 0 eval -m "$tmp/r" --tokens-file "$tmp/ids" --last --threads 1 --chunk 2
has "eval last" "^top1: $full\$" "$out"
# mlx_lm.convert's spellings: --quant-predicate for --recipe, float16 for f16
run "convert recipe" 0 convert --random tiny-qwen3 --recipe mixed_4_6 --group-size 32 --seed 2 -o "$tmp/rr"
run "convert predicate" 0 convert --random=tiny-qwen3 --quant-predicate mixed_4_6 --group-size=32 --seed 2 -o "$tmp/rp"
if cmp -s "$tmp/rr/model.safetensors" "$tmp/rp/model.safetensors"; then ok; else bad "--quant-predicate differs from --recipe"; fi
run "convert float16" 0 convert --random tiny-llama --dtype float16 -o "$tmp/f16"
run "info float16" 0 info -m "$tmp/f16"
has "info float16" '^  model\.embed_tokens\.weight +f16 ' "$out"

# failures: named, nothing left
run "convert exists" 1 convert --random tiny-llama -o "$tmp/r"
has "convert exists" 'already exists' "$err"
run "convert bad gguf" 1 convert -i "$golden/mini_missing.gguf" -o "$tmp/bad"
has "convert bad gguf" 'missing tensor blk.0.ffn_up.weight' "$err"
if [ -e "$tmp/bad" ] || ls "$tmp" | grep -q '\.tmp-'; then bad "a failed convert left files"; else ok; fi
run "eval bad model" 1 eval -m "$golden/mini_shape.gguf" --tokens "1"
has "eval bad model" 'blk.0.attn_k.weight' "$err"

finish test_cli_convert
