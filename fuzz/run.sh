#!/usr/bin/env bash
# Run every libFuzzer target built in BUILD_DIR/fuzz for SECONDS each.
#   bash fuzz/run.sh BUILD_DIR SECONDS
# Seeds: the golden files named like the target (fuzz_gguf: tests/golden/**/*.gguf). The growing
# corpus is kept in BUILD_DIR/fuzz/corpus/<target>, crashes go to
# BUILD_DIR/fuzz/crashes/. Exits non-zero when a target finds a crash.
set -euo pipefail
build=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS}
seconds=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
status=0
shopt -s nullglob
targets=("$build"/fuzz/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then echo "no fuzz targets in $build/fuzz (configure with -DMLXN_FUZZ=ON)" >&2; exit 1; fi
for bin in "${targets[@]}"; do
  [ -x "$bin" ] && [ -f "$bin" ] || continue
  name=$(basename "$bin")
  corpus="$build/fuzz/corpus/$name"
  crashes="$build/fuzz/crashes"
  mkdir -p "$corpus" "$crashes"
  seeds="$build/fuzz/seeds/$name"
  mkdir -p "$seeds"
  find "$root/tests/golden" -name "*.${name#fuzz_}" -size -64k -exec cp {} "$seeds/" \;
  dict=()
  base=${name#fuzz_}
  [ -f "$here/$base.dict" ] && dict=(-dict="$here/$base.dict")
  echo "== $name for ${seconds}s (corpus $corpus)"
  log="$build/fuzz/$name.log"
  if ! "$bin" "${dict[@]}" -max_total_time="$seconds" -max_len=16384 -print_final_stats=1 \
       -artifact_prefix="$crashes/" "$corpus" "$seeds" 2>&1 | tee "$log" | grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)'; then
    :
  fi
  if grep -qE '==[0-9]+==ERROR|^SUMMARY|deadly signal' "$log"; then
    echo "$name: FOUND A CRASH (see $log and $crashes)" >&2
    status=1
  fi
done
exit $status
