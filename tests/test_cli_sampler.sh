#!/usr/bin/env bash
# `mlxn generate --sampler device|host` on the demo model: the sampling op
# (here the CPU backend's; on a GPU the same op keeps the logits there)
# picks exactly the tokens the host sampler picks for the same seed, for
# greedy and for each filter; --sampler device refuses penalties and logit
# bias (host-only), and a bad value is a usage error. On a CUDA machine
# the same comparison runs with --device cuda.
#   bash tests/test_cli_sampler.sh PATH_TO_MLXN BUILD_DIR
set -u
mlxn=${1:?usage: test_cli_sampler.sh PATH_TO_MLXN BUILD_DIR}
build=${2:-.}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_sampler_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli_model.sh
. "$(dirname "$0")/cli_model.sh"
n=24
[ "$short" = 1 ] && n=6
prompt="Write a short poem about the sea."
devices=(cpu)
"$mlxn" bench sample --device cuda --vocab 8 --reps 1 --warmup 0 > /dev/null 2>&1 && devices+=(cuda)
for dev in "${devices[@]}"; do
  for flags in "--temp 0" "--temp 1.0 --seed 7" "--temp 0.8 --top-p 0.9 --seed 11" \
               "--temp 1.2 --top-k 20 --seed 5" "--temp 0.7 --min-p 0.1 --min-tokens-to-keep 3 --seed 9" \
               "--temp 1.5 --top-p 0.95 --top-k 50 --min-p 0.02 --seed 123"; do
    # shellcheck disable=SC2086
    run "host $dev $flags" 0 generate -m "$model" --device "$dev" -t 1 -n "$n" --ignore-eos $flags \
      --sampler host -p "$prompt"
    cp "$tmp/out" "$tmp/host"
    # shellcheck disable=SC2086
    run "device $dev $flags" 0 generate -m "$model" --device "$dev" -t 1 -n "$n" --ignore-eos $flags \
      --sampler device -p "$prompt"
    if cmp -s "$tmp/out" "$tmp/host"; then ok; else
      bad "$dev $flags: --sampler device wrote"$'\n'"$(cat "$tmp/out")"$'\n'"--sampler host wrote"$'\n'"$(cat "$tmp/host")"
    fi
  done
done
run "device with a penalty" 2 generate -m "$model" -t 1 -n 2 --sampler device --repetition-penalty 1.3 -p hi
has "device with a penalty" 'penalties or --logit-bias' "$err"
run "device with a bias" 2 generate -m "$model" -t 1 -n 2 --sampler device --logit-bias 5=1 -p hi
run "bad sampler" 2 generate -m "$model" -t 1 -n 2 --sampler gpu -p hi
run "auto with a penalty" 0 generate -m "$model" -t 1 -n 2 --sampler auto --repetition-penalty 1.3 -p hi

finish test_cli_sampler
