#!/usr/bin/env bash
# docs/cli.md is what `mlxn --markdown-help` writes from the option tables
# the commands parse with: fails when a table changed and the reference was
# not regenerated (`make docs`). Also checks that every option a table
# documents is accepted by its parser, and that the reference names every
# command.
#   bash tests/test_cli_docs.sh PATH_TO_MLXN BUILD_DIR
set -u
mlxn=${1:?usage: test_cli_docs.sh PATH_TO_MLXN BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_docs_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli_helpers.sh
. "$(dirname "$0")/cli_helpers.sh"

if "$mlxn" --markdown-help >"$tmp/cli.md"; then ok; else bad "mlxn --markdown-help failed"; fi
if diff -u "$root/docs/cli.md" "$tmp/cli.md" >"$tmp/diff"; then ok; else
  bad "docs/cli.md is out of date: run \`make docs\` (or: mlxn --markdown-help > docs/cli.md)"$'\n'"$(head -40 "$tmp/diff")"
fi
for c in generate chat tokenize bench "bench model" "bench qmv" "bench qmm" "bench sdpa" info convert eval; do
  if grep -q "^## mlxn $c\$" "$tmp/cli.md"; then ok; else bad "no section for mlxn $c"; fi
done
# every documented long option of the commands reaches its parser: with
# --help after it, a known option gives the help (exit 0), an unknown one
# exit 2 naming it
for c in generate chat tokenize info convert eval; do
  opts=$(sed -n "/^## mlxn $c\$/,/^## /p" "$tmp/cli.md" | grep -o '^| \(`-[a-z]`, \)\?`--[a-z0-9-]*`' | grep -o -- '--[a-z0-9-]*')
  [ -n "$opts" ] && ok || bad "no options found for $c"
  for o in $opts; do
    "$mlxn" $c "$o" x --help >/dev/null 2>"$tmp/err"
    rc=$?
    # a flag takes no value: "x" is then a positional, refused where none is taken (exit 2, but no "unknown option")
    if [ "$rc" -eq 0 ] || ! grep -q "unknown option" "$tmp/err"; then ok; else bad "$c $o: $(cat "$tmp/err")"; fi
  done
done

finish test_cli_docs
