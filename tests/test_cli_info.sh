#!/usr/bin/env bash
# `mlxn info` on the golden files written by MLX (tests/golden/gen_safetensors.py)
# and on broken input: output lines, totals, quantization, JSON, exit codes.
#   bash tests/test_cli_info.sh PATH_TO_MLXN BUILD_DIR
set -u
mlxn=${1:?usage: test_cli_info.sh PATH_TO_MLXN BUILD_DIR}
golden=$(cd "$(dirname "$0")" && pwd)/golden/safetensors
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_info_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli_helpers.sh
. "$(dirname "$0")/cli_helpers.sh"

run help 0 info --help
has help '^usage: mlxn info' "$out"
has help '^ +--json +Print one JSON object' "$out"
has help '^ +-m, --model PATH' "$out"
run "no args" 2 info
has "no args" 'no file given: add -m PATH' "$err"
run "bad option" 2 info -m "$golden/dtypes.safetensors" --frobnicate
has "bad option" "^mlxn info: unknown option '--frobnicate'" "$err"
has "bad option" 'mlxn info --help' "$err"
run "typo option" 2 info -m "$golden/dtypes.safetensors" --jsn
has "typo option" "unknown option '--jsn' \(did you mean --json\?\)" "$err"
run "missing value" 2 info -m
has "missing value" '-m needs a value \(PATH\)' "$err"
run "path twice" 2 info -m "$golden/dtypes.safetensors" "$golden/nometa.safetensors"
has "path twice" 'the path is given twice' "$err"
run "two paths" 2 info "$golden/dtypes.safetensors" "$golden/nometa.safetensors"
has "two paths" "unexpected argument" "$err"
run "path=" 0 info --model="$golden/dtypes.safetensors"
has "path=" '^  t_bf16 +bf16 +\[7, 5\]$' "$out"

# every dtype MLX writes, odd shapes, 0-d and empty tensors
run dtypes 0 info -m "$golden/dtypes.safetensors"
has dtypes '^  format: mlx$' "$out"
has dtypes '^  mlx_version: [0-9]+\.' "$out"
has dtypes '^  t_bf16 +bf16 +\[7, 5\]$' "$out"
has dtypes '^  t_f32 +f32 +\[3, 1, 5, 1\]$' "$out"
has dtypes '^  t_c64 +c64 +\[4\]$' "$out"
has dtypes '^  t_bool +bool +\[3, 5, 7\]$' "$out"
has dtypes '^  scalar_i32 +i32 +\[\]$' "$out"
has dtypes '^  empty_bf16 +bf16 +\[2, 0, 3\]$' "$out"
# 938 = the end of MLX's data section; 469 = the sum of the element counts
has dtypes '^total: 18 tensors, 938 bytes, 469 parameters$' "$out"
[ "$(grep -c '^  [a-z]' <<<"$out")" -ge 18 ] && ok || bad "dtypes: fewer than 18 tensor lines"

run nometa 0 info "$golden/nometa.safetensors"
has nometa '^metadata: \(none\)$' "$out"

# a sharded directory
run sharded 0 info -m "$golden/sharded"
has sharded '^files: 2$' "$out"
has sharded '^  lm_head.weight +bf16 +\[5, 7\]$' "$out"
has sharded '^total: 4 tensors, 212 bytes, 94 parameters$' "$out"

# quantization from config.json, with per-layer overrides
run quantized 0 info -m "$golden/quantized"
has quantized 'up_proj\.weight +u32 +\[16, 16\] +affine 4-bit g64 \(16 x 128\)$' "$out"
has quantized 'down_proj\.weight +u32 +\[16, 32\] +affine 8-bit g32 \(16 x 128\)$' "$out"
has quantized 'gate_proj\.weight +u32 +\[16, 16\] +mxfp4 4-bit g32 \(16 x 128\)$' "$out"
hasnt quantized 'DISAGREES' "$out"
# 128 (norm) + 3 x 16 x 128 (unpacked weights); scales and biases are not parameters
has quantized '^total: 9 tensors, 4800 bytes, 6272 parameters$' "$out"

# the same file without its config: affine bits are ambiguous, mxfp4 is not
run "quantized file" 0 info -m "$golden/quantized/model.safetensors"
has "quantized file" 'up_proj\.weight .*affine \?-bit \(bits x group = 256' "$out"
has "quantized file" 'gate_proj\.weight .*mxfp4 4-bit g32 \(16 x 128\) inferred from shapes$' "$out"

# a config that contradicts the shapes is called out
mkdir "$tmp/liar"
cp "$golden/quantized/model.safetensors" "$tmp/liar/"
printf '{"quantization": {"group_size": 64, "bits": 3}}\n' >"$tmp/liar/config.json"
run liar 0 info -m "$tmp/liar"
has liar 'up_proj\.weight .*affine 3-bit g64 .*CONFIG DISAGREES WITH SHAPES' "$out"

# JSON
run json 0 info --json -m "$golden/quantized"
has json '"name": "model.layers.0.mlp.up_proj.weight"' "$out"
has json '"mode": "affine"' "$out"
has json '"bits": 4' "$out"
has json '"group_size": 64' "$out"
has json '"mlx_version": "[0-9]' "$out"
has json '"parameters": 6272' "$out"
[ "${out:0:1}" = "{" ] && [ "${out: -1}" = "}" ] && ok || bad "json: output is not one object"

# broken input: exit 1, the library's message on stderr, nothing on stdout
head -c 500 "$golden/dtypes.safetensors" >"$tmp/cut.safetensors"
run truncated 1 info -m "$tmp/cut.safetensors"
has truncated 'cut\.safetensors: ' "$err"
[ -z "$out" ] && ok || bad "truncated: printed to stdout: $out"
printf '\x04\x00\x00\x00\x00\x00\x00\x00[1] ' >"$tmp/array.safetensors"
run "array header" 1 info --json -m "$tmp/array.safetensors"
has "array header" 'array\.safetensors: header is not a JSON object' "$err"
run missing 1 info -m "$tmp/missing.safetensors"
has missing 'missing\.safetensors' "$err"
mkdir "$tmp/empty"
run "empty dir" 1 info -m "$tmp/empty"
has "empty dir" 'no model\*\.safetensors' "$err"

finish test_cli_info
