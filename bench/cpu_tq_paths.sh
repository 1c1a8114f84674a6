#!/usr/bin/env bash
# CPU TurboQuant decode attention: every path this CPU can run, timed in
# alternating rounds so a noisy machine shows its spread.
#   bash bench/cpu_tq_paths.sh OUTDIR [MLXN]
# For each shape (SmolLM2's 9 q / 3 kv heads at head dim 64, 32 / 8 at 128,
# 32 / 2 at 256) and context, it runs `mlxn bench tq` with:
#   auto     the library's choice for this CPU;
#   avx2     --isa avx2: on an AVX-512 CPU, the AVX2 kernels, with 4-bit keys
#            and values in 16-bit integers in decode;
#   avx2-f32 --isa avx2 --float-activations: the AVX2 f32 paths;
#   avx512-f32 --isa avx512 --float-activations (AVX-512 CPUs only).
# Each line of the final table is one (shape, ctx, path): the median over
# rounds of the bench's tq time and of its speedup against the dense f32
# cache (timed in the same process). MLXN is the mlxn binary (default: a
# Release CPU build made here in build-cpu-tq). Environment: ROUNDS (3),
# THREADS (2, the CI-class machine's cores), CTX ("4096 16384"), REPS (30).
set -u
OUT=${1:?usage: bench/cpu_tq_paths.sh OUTDIR [MLXN]}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CTX=${CTX:-"4096 16384"}
REPS=${REPS:-30}
M=${2:-}
if [ -z "$M" ]; then
  B=$ROOT/build-cpu-tq
  if ! { cmake -S "$ROOT" -B "$B" -DMLXN_CUDA=OFF -DCMAKE_BUILD_TYPE=Release &&
         cmake --build "$B" -j "$(nproc)" --target mlxn; } > "$OUT/build.log" 2>&1; then
    tail -30 "$OUT/build.log"; echo "build failed"; exit 1
  fi
  M=$B/mlxn
fi
{ grep -m1 'model name' /proc/cpuinfo; nproc; grep -m1 -o -w -E 'avx512f|avx512_vnni|avx512bw' /proc/cpuinfo | sort -u | tr '\n' ' '; echo; } > "$OUT/cpu.txt"
cat "$OUT/cpu.txt"
paths="auto avx2 avx2-f32"
grep -q -w avx512f /proc/cpuinfo && paths="$paths avx512-f32"
flags() {
  case $1 in
    auto) echo "" ;;
    avx2) echo "--isa avx2" ;;
    avx2-f32) echo "--isa avx2 --float-activations" ;;
    avx512-f32) echo "--isa avx512 --float-activations" ;;
  esac
}
res=$OUT/results.txt
: > "$res"
for r in $(seq 1 "$ROUNDS"); do
  for shape in "64 9 3" "128 32 8" "256 32 2"; do
    set -- $shape
    for c in $CTX; do
      for p in $paths; do
        line=$("$M" bench tq --ctx "$c" --head-dim "$1" --q-heads "$2" --kv-heads "$3" --reps "$REPS" \
                 --mem-mib 0 -t "$THREADS" $(flags "$p") 2>>"$OUT/bench.err" | awk -v c="$c" '$1 == c')
        # ctx tq_us GB/s f32_us GB/s speedup ...
        echo "$1/$2/$3 $c $p $r $(echo "$line" | awk '{print $2, $4, $6}')" | tee -a "$res"
      done
    done
  done
done
echo
echo "CPU TurboQuant decode, $(head -1 "$OUT/cpu.txt" | sed 's/.*: //'), $THREADS threads, medians of $ROUNDS rounds"
printf '%-10s %6s %-11s %9s %9s %8s\n' "D/q/kv" ctx path "tq us" "f32 us" speedup
sort -k1,1 -k2,2n -k3,3 "$res" | awk '
  function med(s,   n, a, i, j, t) { n = split(s, a, " ");
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  { k = $1 " " $2 " " $3; if (!(k in tq)) order[++nk] = k;
    tq[k] = tq[k] " " $5; f32[k] = f32[k] " " $6; sp[k] = sp[k] " " $7 + 0 }
  END { for (i = 1; i <= nk; i++) { k = order[i]; split(k, p, " ");
    printf "%-10s %6s %-11s %9.1f %9.1f %7.2fx\n", p[1], p[2], p[3], med(tq[k]), med(f32[k]), med(sp[k]) } }'
