#!/usr/bin/env bash
# `mlxn bench qmv|qmm` on small sizes (and `bench sdpa` argument errors) (no timing is checked): text and JSON
# output for each mode and both transposes, and exit codes for bad usage.
#   bash tests/test_cli_bench.sh PATH_TO_MLXN BUILD_DIR
set -u
mlxn=${1:?usage: test_cli_bench.sh PATH_TO_MLXN BUILD_DIR}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_bench_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli_helpers.sh
. "$(dirname "$0")/cli_helpers.sh"

small=(--rows 128 --cols 256 --reps 3 --warmup 1 --mem-mib 4)
run help 0 bench --help
has help '^usage: mlxn bench' "$out"
run text 0 bench qmv "${small[@]}"
has text '^time: median [0-9.]+ us' "$out"
has text 'GB/s effective' "$out"
has text '^cpu: ' "$out"
# --json prints the JSON object and nothing else on stdout (on a GPU it once printed the weights' layout
# first, which bench/device.sh's tables then could not parse)
run "qmv json" 0 bench qmv "${small[@]}" --json
has "qmv json" '^\{.*"median_us": ?[0-9.e+-]+.*\}$' "$out"
hasnt "qmv json: nothing but JSON" '^[^{]' "$out"
for args in "--mode affine --bits 3 --group-size 32" "--mode mxfp4" "--mode mxfp8" "--mode nvfp4"; do
  for t in 0 1; do
    # shellcheck disable=SC2086
    run "json $args t=$t" 0 bench qmm --n 3 --transpose $t $args "${small[@]}" --json
    has "json $args t=$t" '^\{.*"median_us": ?[0-9.e+-]+.*"gb_s": ?[0-9.e+-]+.*\}$' "$out"
  done
done
# --scale-dtype: the affine scales' dtype, named in the text and the JSON (f32: GGUF Q4_K / Q5_K imports)
for sd in f16 f32; do
  run "scale dtype $sd" 0 bench qmv --bits 4 --group-size 32 --scale-dtype $sd "${small[@]}"
  has "scale dtype $sd" "^qmv: affine 4-bit group 32 scales $sd," "$out"
  run "scale dtype $sd json" 0 bench qmv --bits 5 --group-size 32 --scale-dtype $sd "${small[@]}" --json
  has "scale dtype $sd json" "^\{.*\"scale_dtype\": ?\"$sd\".*\"median_us\"" "$out"
done
run "bad scale dtype" 2 bench qmv --scale-dtype f64 "${small[@]}"
run "scale dtype of fp4" 2 bench qmv --mode mxfp4 --scale-dtype f16 "${small[@]}"
has "scale dtype of fp4" 'is for affine weights' "$err"
run "bad mode" 2 bench qmv --mode q4_0
run "bad option" 2 bench qmv --frobnicate 1
run "bad group" 2 bench qmv --group-size 48 "${small[@]}"
run "unknown kernel" 2 bench gemm
# transpose 0 quantizes along --rows, which must then be a multiple of the group
run "t=0 rows not a multiple of the group" 2 bench qmv --transpose 0 --rows 40 --cols 256 --reps 1 --mem-mib 4
# bench sdpa times a GPU only: its arguments are checked before any device is opened
run "sdpa help" 0 bench sdpa --help
has "sdpa help" 'head-dim' "$out"
run "sdpa on the cpu" 2 bench sdpa --device cpu
run "sdpa heads" 2 bench sdpa --q-heads 5 --kv-heads 2
run "sdpa kv dtype" 2 bench sdpa --kv-dtype f32

finish test_cli_bench
