#!/usr/bin/env bash
# `mlxn generate --sampler device|host` on the demo model: the sampling op
# (here the CPU backend's; on a GPU the same op keeps the logits there)
# picks exactly the tokens the host sampler picks for the same seed, for
# greedy and for each filter, also with the fixed KV layout (where each
# token's read overlaps the next step) and over a chat whose answers end at
# the stop token; --sampler device refuses penalties and logit
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
    # the fixed layout: each token's read overlaps the next step (mlxn_session_forward_next)
    # shellcheck disable=SC2086
    run "device fixed $dev $flags" 0 generate -m "$model" --device "$dev" -t 1 -n "$n" --ignore-eos $flags \
      --sampler device --kv-layout fixed -c 256 -p "$prompt"
    if cmp -s "$tmp/out" "$tmp/host"; then ok; else
      bad "$dev $flags: --sampler device --kv-layout fixed wrote"$'\n'"$(cat "$tmp/out")"$'\n'"--sampler host wrote"$'\n'"$(cat "$tmp/host")"
    fi
  done
done
# A chat whose answers end at the stop token: the overlapped loop has already run the step after it
# (the token stays in the cache, so the next prompt reuses one more token), and the transcript is the
# host sampler's.
turns=$'Hi!\nName three colors.\nAnd three animals?\n'
for which in host device; do
  flags="--sampler host"
  [ $which = device ] && flags="--sampler device --kv-layout fixed -c 1024"
  # shellcheck disable=SC2086
  printf '%s' "$turns" | "$mlxn" chat -m "$model" -t 1 -n 300 --temp 0.7 --seed 4 --stats $flags \
    > "$tmp/chat_out" 2> "$tmp/chat_err"
  rc=$?
  if [ $rc = 0 ]; then ok; else bad "chat $flags: exit $rc"$'\n'"$(cat "$tmp/chat_err")"; fi
  cp "$tmp/chat_out" "$tmp/chat_$which"
  grep -o '[0-9]* from the cache' "$tmp/chat_err" | cut -d' ' -f1 | tr '\n' ' ' > "$tmp/reused_$which"
  [ "$(grep -c 'stop: eos' "$tmp/chat_err")" = 3 ] && ok || bad "chat $flags: not every answer ended at the stop token"$'\n'"$(cat "$tmp/chat_err")"
done
if cmp -s "$tmp/chat_host" "$tmp/chat_device"; then ok; else
  bad "chat: the overlapped device loop wrote"$'\n'"$(cat "$tmp/chat_device")"$'\n'"the host sampler wrote"$'\n'"$(cat "$tmp/chat_host")"
fi
read -r -a rh < "$tmp/reused_host"
read -r -a rd < "$tmp/reused_device"
if [ "${#rh[@]}" = 3 ] && [ "${rd[0]}" = 0 ] && [ "${rd[1]}" = $(( rh[1] + 1 )) ] && [ "${rd[2]}" = $(( rh[2] + 1 )) ]; then ok; else
  bad "chat: cache reuse per turn: host ${rh[*]}, overlapped device ${rd[*]} (want one more token after each stop)"
fi
run "device with a penalty" 2 generate -m "$model" -t 1 -n 2 --sampler device --repetition-penalty 1.3 -p hi
has "device with a penalty" 'penalties or --logit-bias' "$err"
run "device with a bias" 2 generate -m "$model" -t 1 -n 2 --sampler device --logit-bias 5=1 -p hi
run "bad sampler" 2 generate -m "$model" -t 1 -n 2 --sampler gpu -p hi
run "auto with a penalty" 0 generate -m "$model" -t 1 -n 2 --sampler auto --repetition-penalty 1.3 -p hi

finish test_cli_sampler
