#!/usr/bin/env bash
# tools/demo.sh (what `make demo` runs after building), on a private cache
# that holds the fetched GGUF (a link to the one in the real cache): the
# first run converts it with `mlxn convert` and answers; the second reuses
# the converted model; an unwritable cache and a missing binary are clear
# errors.
#   bash tests/test_cli_demo.sh PATH_TO_MLXN BUILD_DIR
set -u
mlxn=${1:?usage: test_cli_demo.sh PATH_TO_MLXN BUILD_DIR}
build=${2:-.}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_demo_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli_model.sh
. "$(dirname "$0")/cli_model.sh"
demo=$(cd "$(dirname "$0")/.." && pwd)/tools/demo.sh
bin=$(dirname "$mlxn")

mkdir -p "$tmp/cache/mlx-native"
ln -s "$gguf" "$tmp/cache/mlx-native/SmolLM2-135M-Instruct.Q4_1.gguf"
n=$(cat "$golden/capital.short.n")
for pass in first second; do
  XDG_CACHE_HOME=$tmp/cache DEMO_MAX_TOKENS=$n sh "$demo" "$bin" "What is the capital of France?" \
    >"$tmp/$pass.out" 2>"$tmp/$pass.err"
  rc=$?
  [ "$rc" -eq 0 ] && ok || bad "demo ($pass run): exit $rc: $(cat "$tmp/$pass.err")"
  same_file "demo ($pass run) answer" "$tmp/$pass.out" "$golden/capital.short.out"
done
has "first run converts" 'converting it to MLX 4-bit' "$(cat "$tmp/first.err")"
hasnt "second run reuses" 'converting|fetching' "$(cat "$tmp/second.err")"
[ -f "$tmp/cache/mlx-native/SmolLM2-135M-Instruct-mlx-4bit/config.json" ] && ok || bad "no converted model in the cache"

: >"$tmp/file"
XDG_CACHE_HOME=$tmp/file/cache sh "$demo" "$bin" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] && ok || bad "unwritable cache: exit $rc"
has "unwritable cache" 'cannot write the model cache .*XDG_CACHE_HOME' "$(cat "$tmp/err")"
sh "$demo" "$tmp/nobuild" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] && ok || bad "no binary: exit $rc"
has "no binary" 'build first' "$(cat "$tmp/err")"

finish test_cli_demo
