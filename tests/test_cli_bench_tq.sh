#!/usr/bin/env bash
# `mlxn bench tq` on small sizes (no timing is checked): the timing table,
# the --quality tables, and exit codes for bad usage.
#   bash tests/test_cli_bench_tq.sh PATH_TO_MLXN BUILD_DIR
set -u
mlxn=${1:?usage: test_cli_bench_tq.sh PATH_TO_MLXN BUILD_DIR}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_bench_tq_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli_helpers.sh
. "$(dirname "$0")/cli_helpers.sh"

run help 0 bench tq --help
has help 'bench tq' "$out"
run time 0 bench tq --ctx 200,300 --head-dim 64 --q-heads 4 --kv-heads 2 --reps 2 --warmup 0 --mem-mib 0
has time '^machine: ' "$out"
has time '^ +200 +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+x' "$out"
has time '^ +300 ' "$out"
run one-thread 0 bench tq --ctx 128 --head-dim 128 --q-heads 2 --kv-heads 1 --k-bits 3 --v-bits 8 --reps 1 \
  --warmup 0 --mem-mib 0 -t 1
has one-thread 'cpu x' "$out"
run quality 0 bench tq --quality --ctx 64 --head-dim 64 --q-heads 2 --kv-heads 1 --vectors 100
has quality '^ +4 +0\.0' "$out"
has quality 'Lloyd-Max' "$out"
has quality '^ +64 +0\.[0-9]+ \(' "$out"
run bad-heads 2 bench tq --q-heads 5 --kv-heads 2
run bad-dim 2 bench tq --head-dim 96
run bad-bits 2 bench tq --k-bits 9
run bad-ctx 2 bench tq --ctx 12,x
run bad-what 2 bench nothing
finish test_cli_bench_tq
