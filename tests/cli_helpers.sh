# The helpers every CLI shell test uses (sourced, not run): a pass/fail
# count, a runner for mlxn, line matchers and the closing summary.
#   needs: $mlxn (the binary) and $tmp (a scratch directory) set by the caller
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
# run NAME EXPECTED_RC ARGS...: runs mlxn with no stdin; stdout/stderr in
# $out/$err (and $tmp/out, $tmp/err), the exit status in $rc
run() {
  local name=$1 want=$2
  shift 2
  "$mlxn" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  rc=$?
  out=$(cat "$tmp/out") err=$(cat "$tmp/err")
  if [ "$rc" -eq "$want" ]; then ok; else bad "$name: exit $rc, want $want; stderr: $err"; fi
}
# has NAME REGEX TEXT: TEXT has a line matching the extended REGEX; hasnt: none does
has() { if grep -Eq -- "$2" <<<"$3"; then ok; else bad "$1: no line matching /$2/ in:"$'\n'"$3"; fi; }
hasnt() { if grep -Eq -- "$2" <<<"$3"; then bad "$1: unexpected /$2/ in:"$'\n'"$3"; else ok; fi; }
# finish NAME: the summary line; succeeds when nothing failed
finish() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
