#!/usr/bin/env bash
# One run on a GPU machine: build with nvcc for sm_90a (Hopper), run the
# whole test suite (the CUDA op tests among it), compute-sanitizer
# (memcheck, then racecheck) over tests/test_backend_ops and
# tests/test_backend_attn, the sm_80 build's PTX and its CUDA tests (the
# code older and newer cards run), the CUDA quantized mat-vec and mat-mat benchmarks
# with PyTorch's dense bf16 matmul of the same shape (bench/peer_torch_mm.py),
# the attention benchmarks (mlxn bench sdpa beside PyTorch's SDPA on the same
# shapes, bench/peer_torch_sdpa.py), then end-to-end model benchmarks: random
# 4-bit models of real shapes (`mlxn convert --random PRESET -q`) timed by
# `mlxn bench model --device cuda` (and its tg with --overlap-reads, as
# `mlxn generate` decodes: "mlxn-ovl"; pp4096 with a tq4 cache beside the
# bf16 cache's) beside the same shapes in PyTorch
# (bench/peer_torch_model.py, bf16, torch.compile + CUDA graphs) when
# python3 has torch; full logs go to OUTDIR and a short table is printed last.
#   bash bench/device.sh OUTDIR
# The kernel stage also times a kernel boundary (bench/handoff.cu) and
# TurboQuant decode with an sm_89 card's limits (MLXN_CUDA_LIKE=89), and the
# one-row products of the other formats (2..8 bits, 4- and 8-bit g32, mxfp4,
# nvfp4) against the f32 kernels (MLXN_CUDA_QMV_BITS=0).
# Environment: MLXN_BUILD_DIR (default build-device), MLXN_JOBS (16),
# MLXN_BUILD_TARGETS (build only these, e.g. "mlxn test_backend_ops"),
# MLXN_BENCH_REPS (200), MLXN_SKIP_CTEST=1 / MLXN_SKIP_OLDER=1 (the sm_80 PTX build's tests) /
# MLXN_SKIP_SANITIZER=1 /
# MLXN_SKIP_KERNELS=1 (qmv/qmm and sampling benchmarks; MLXN_SAMPLE_BENCH=1
# keeps the sampling one) / MLXN_SKIP_SDPA=1 / MLXN_SKIP_NCU=1 /
# MLXN_SKIP_MODELS=1 to skip a stage; MLXN_QMM_SWEEP=1 to time the mat-mat
# against the mat-vec path at n = 1 .. 512 for every mode (the crossover);
# MLXN_MODELS (presets, default "llama-3.2-1b llama-3-8b gemma-3-4b"),
# MLXN_MODEL_TIMEOUT (seconds per command of the model stage, default 240),
# MLXN_MODELS_BUDGET (seconds for the whole model stage; presets not started
# by then are skipped, default 900), MLXN_MODEL_REPS (5). Needs cmake, nvcc, a C compiler, pkg-config and
# jansson (PKG_CONFIG_PATH may point at a jansson installed elsewhere).
set -u
OUT=${1:?usage: bench/device.sh OUTDIR}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${MLXN_BUILD_DIR:-$ROOT/build-device}
JOBS=${MLXN_JOBS:-16}
REPS=${MLXN_BENCH_REPS:-200}
summary=()
note() { summary+=("$1"); echo "== $1"; }

nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,clocks.mem,driver_version --format=csv \
  > "$OUT/gpu.txt" 2>&1
note "gpu: $(tail -n +2 "$OUT/gpu.txt" | head -1)"

t0=$(date +%s)
if ! { cmake -S "$ROOT" -B "$B" -DMLXN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_BUILD_TYPE=Release &&
       cmake --build "$B" -j "$JOBS" ${MLXN_BUILD_TARGETS:+--target $MLXN_BUILD_TARGETS}; } > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  echo "build failed (log: $OUT/build.log)"
  exit 1
fi
note "build: ok in $(($(date +%s) - t0)) s"

# the CUDA op tests first, verbose (their output names any op not built yet)
if [ -x "$B/tests/test_backend_ops" ]; then
  "$B/tests/test_backend_ops" > "$OUT/test_backend_ops.log" 2>&1
  rc=$?
  note "test_backend_ops: exit $rc, $(tail -1 "$OUT/test_backend_ops.log")"
  grep -E "not built yet|FAIL" "$OUT/test_backend_ops.log" | head -20
fi
# TurboQuant on CUDA vs the CPU reference (each failure names its shape)
if [ -x "$B/tests/test_backend_tq" ]; then
  "$B/tests/test_backend_tq" > "$OUT/test_backend_tq.log" 2>&1
  rc=$?
  note "test_backend_tq: exit $rc, $(tail -1 "$OUT/test_backend_tq.log")"
  grep -E "FAIL" "$OUT/test_backend_tq.log" | head -20
fi
if [ -x "$B/tests/test_backend_attn" ]; then
  "$B/tests/test_backend_attn" > "$OUT/test_backend_attn.log" 2>&1
  rc=$?
  note "test_backend_attn: exit $rc, $(tail -1 "$OUT/test_backend_attn.log")"
  grep -E "FAIL" "$OUT/test_backend_attn.log" | head -20
  # again with the split merge kernel where short caches merge inside a cluster by default
  MLXN_CUDA_FA_CLUSTER=0 "$B/tests/test_backend_attn" > "$OUT/test_backend_attn_combine.log" 2>&1
  rc=$?
  note "test_backend_attn, MLXN_CUDA_FA_CLUSTER=0: exit $rc, $(tail -1 "$OUT/test_backend_attn_combine.log")"
  grep -E "FAIL" "$OUT/test_backend_attn_combine.log" | head -20
fi

if [ "${MLXN_SKIP_CTEST:-0}" != 1 ]; then
  t0=$(date +%s)
  ctest --test-dir "$B" -j "$JOBS" --timeout 600 --output-on-failure > "$OUT/ctest.log" 2>&1
  note "ctest: exit $? in $(($(date +%s) - t0)) s, $(grep -E 'tests passed' "$OUT/ctest.log")"
  grep -E "\*\*\*|Failed|Not Run" "$OUT/ctest.log" | head -20
fi

# older cards: the sm_80 build's PTX alone, compiled by the driver for this card, is the code an
# A100 or an sm_86 / sm_89 card runs (as SASS) and what a Blackwell card runs; its CUDA test programs
# here as they stand (this card's limits: the newer card's case) and with an sm_86 card's limits
# (MLXN_CUDA_LIKE=86: 99 KB of shared memory a block). ctest's test_cuda_older_cards covers the
# sm_90a build with those limits.
if [ "${MLXN_SKIP_OLDER:-0}" != 1 ]; then
  t0=$(date +%s)
  B80=$B-sm80
  progs="test_backend_ops test_backend_attn test_backend_tq test_session_tq_fixed test_session_fixed test_models_cuda test_sample"
  if { cmake -S "$ROOT" -B "$B80" -DMLXN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=80-virtual -DCMAKE_BUILD_TYPE=Release &&
       cmake --build "$B80" -j "$JOBS" --target $progs; } > "$OUT/build_sm80.log" 2>&1; then
    for like in none 86; do
      pass=0; failed=""
      for p in $progs; do
        if [ $like = none ]; then "$B80/tests/$p" > "$OUT/sm80_${like}_$p.log" 2>&1
        else MLXN_CUDA_LIKE=$like "$B80/tests/$p" > "$OUT/sm80_${like}_$p.log" 2>&1; fi
        if [ $? = 0 ]; then pass=$((pass + 1)); else failed="$failed $p"; fi
      done
      note "sm_80 PTX build, MLXN_CUDA_LIKE=$like: $pass programs passed${failed:+, failed:$failed}"
    done
    note "older cards stage: $(($(date +%s) - t0)) s"
  else
    tail -20 "$OUT/build_sm80.log"
    note "sm_80 PTX build failed (log: $OUT/build_sm80.log)"
  fi
fi

if [ "${MLXN_SKIP_SANITIZER:-0}" != 1 ]; then
  for tool in memcheck racecheck; do
    t0=$(date +%s)
    compute-sanitizer --tool "$tool" --error-exitcode 3 "$B/tests/test_backend_ops" > "$OUT/sanitizer_$tool.log" 2>&1
    rc=$?
    note "compute-sanitizer $tool: exit $rc in $(($(date +%s) - t0)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -1)"
    if [ -x "$B/tests/test_backend_attn" ]; then
      t0=$(date +%s)
      compute-sanitizer --tool "$tool" --error-exitcode 3 "$B/tests/test_backend_attn" > "$OUT/sanitizer_attn_$tool.log" 2>&1
      rc=$?
      note "compute-sanitizer $tool (attn): exit $rc in $(($(date +%s) - t0)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_attn_$tool.log" | tail -1)"
    fi
  done
  if [ -x "$B/tests/test_backend_tq" ]; then
    t0=$(date +%s)
    compute-sanitizer --tool memcheck --error-exitcode 3 "$B/tests/test_backend_tq" > "$OUT/sanitizer_tq.log" 2>&1
    note "compute-sanitizer memcheck test_backend_tq: exit $? in $(($(date +%s) - t0)) s, $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer_tq.log" | tail -1)"
  fi
fi

# quantized mat-vec (out = x @ W^T): W 4096 x 14336 in every mode the kernels cover,
# then the decode shapes of Llama-3.2-1B (attention, K/V, MLP up/gate, MLP down, vocabulary);
# the SM/memory clocks are sampled meanwhile (clocks.log)
: > "$OUT/bench.jsonl"
if [ "${MLXN_SKIP_KERNELS:-0}" != 1 ]; then
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv -lms 200 \
  > "$OUT/clocks.log" 2>&1 &
smi_pid=$!
# (the mat-vec kernels at every n: from 16 rows the op itself would take the mat-mat path)
bench() { MLXN_CUDA_QMM_MIN_ROWS=1000000000 "$B/mlxn" bench qmv --device cuda --reps "$REPS" --warmup 10 --json "$@"; }
W="--rows 4096 --cols 14336"
for args in "$W --bits 4 --group-size 64 --n 1" "$W --bits 4 --group-size 64 --n 8" "$W --bits 4 --group-size 32 --n 1" \
            "$W --bits 4 --group-size 128 --n 1" "$W --bits 2 --group-size 64 --n 1" "$W --bits 3 --group-size 64 --n 1" \
            "$W --bits 5 --group-size 64 --n 1" "$W --bits 6 --group-size 64 --n 1" "$W --bits 8 --group-size 64 --n 1" \
            "$W --mode mxfp4 --n 1" "$W --mode nvfp4 --n 1" "$W --mode mxfp8 --n 1" \
            "--rows 2048 --cols 2048 --bits 4 --group-size 64 --n 1" "--rows 512 --cols 2048 --bits 4 --group-size 64 --n 1" \
            "--rows 8192 --cols 2048 --bits 4 --group-size 64 --n 1" "--rows 2048 --cols 8192 --bits 4 --group-size 64 --n 1" \
            "--rows 128256 --cols 2048 --bits 4 --group-size 64 --n 1" "--rows 128256 --cols 2048 --bits 8 --group-size 64 --n 1"; do
  # shellcheck disable=SC2086
  bench $args >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err" || echo "bench $args failed: $(tail -1 "$OUT/bench.err")"
done
# quantized mat-mat (prefill), same W, x [n, 14336]: 4-bit g64 and 8-bit g64
for args in "--bits 4 --group-size 64 --n 16" "--bits 4 --group-size 64 --n 64" "--bits 4 --group-size 64 --n 512" \
            "--bits 8 --group-size 64 --n 512"; do
  # shellcheck disable=SC2086
  "$B/mlxn" bench qmm --device cuda --rows 4096 --cols 14336 --reps "$REPS" --warmup 10 --json $args \
    >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err" || echo "bench qmm $args failed: $(tail -1 "$OUT/bench.err")"
done
# the peer: PyTorch's dense bf16 matmul of the same shape, in the same run
if python3 -c 'import torch; assert torch.cuda.is_available()' > /dev/null 2>&1; then
  python3 "$ROOT/bench/peer_torch_mm.py" --n 16 64 512 > "$OUT/peer.jsonl" 2>> "$OUT/bench.err" ||
    echo "peer_torch_mm failed: $(tail -1 "$OUT/bench.err")"
fi
# MLXN_QMM_SWEEP=1: where the mat-mat path overtakes the mat-vec kernels, every mode
# (each n timed on both paths: MLXN_CUDA_QMM_MIN_ROWS=1 forces the mat-mat, a huge one the mat-vec)
if [ "${MLXN_QMM_SWEEP:-0}" = 1 ]; then
  : > "$OUT/sweep.jsonl"
  for kind in "--bits 4 --group-size 64" "--bits 4 --group-size 32" "--bits 4 --group-size 128" \
              "--bits 2 --group-size 64" "--bits 3 --group-size 64" "--bits 5 --group-size 64" \
              "--bits 6 --group-size 64" "--bits 8 --group-size 64" "--mode mxfp4" "--mode nvfp4" "--mode mxfp8"; do
    for t in 1 0; do
      [ $t = 0 ] && [ "$kind" != "--bits 4 --group-size 64" ] && continue
      for n in 1 2 4 8 16 32 64 128 512; do
        [ $t = 1 ] && [ $n -lt 4 ] && continue
        for path in mm mv; do
          [ $path = mv ] && [ $n -gt 64 ] && continue
          min=1; [ $path = mv ] && min=1000000000
          # shellcheck disable=SC2086
          MLXN_CUDA_QMM_MIN_ROWS=$min "$B/mlxn" bench qmm --device cuda --rows 4096 --cols 14336 --reps 50 --warmup 5 \
            --json --transpose $t --n $n $kind 2>> "$OUT/bench.err" | sed "s/^{/{\"path\": \"$path\", /" >> "$OUT/sweep.jsonl"
        done
      done
    done
  done
  # the dequantized block size (weights per block; 4-bit g64, W [N, K])
  : > "$OUT/sweep_slab.jsonl"
  for slab in 2097152 4194304 8388608 16777216 67108864; do
    for n in 16 64 512; do
      MLXN_CUDA_QMM_SLAB_ELEMS=$slab "$B/mlxn" bench qmm --device cuda --rows 4096 --cols 14336 --reps 100 --warmup 5 \
        --json --n $n 2>> "$OUT/bench.err" | sed "s/^{/{\"slab\": $slab, /" >> "$OUT/sweep_slab.jsonl"
    done
  done
fi
# TurboQuant decode attention, the issue's shape: head dim 256, 32 q / 2 kv heads, 4-bit K and V, 20000 tokens
"$B/mlxn" bench tq --device cuda --head-dim 256 --q-heads 32 --kv-heads 2 --k-bits 4 --v-bits 4 --ctx 20000 \
  --reps "$REPS" --warmup 10 > "$OUT/bench_tq.log" 2>&1 || echo "bench tq failed: $(tail -1 "$OUT/bench_tq.log")"
# ... and with an sm_86 / sm_89 card's limits (99 KB a block), the tensor-core kernels' smaller layouts against the
# f32 kernel (MLXN_CUDA_TQ_SIMPLE=1) those cards ran before: Llama-3-8B's heads and Gemma-3-4B's, tq4, b2b us
for shape in "128 32 8" "256 8 4"; do
  read -r d hq hkv <<<"$shape"
  line="tq4 D$d $hq/$hkv at 4096 keys under MLXN_CUDA_LIKE=89, b2b us:"
  for simple in 0 1; do
    log="$OUT/bench_tq_like89_${d}_$simple.log"
    MLXN_CUDA_LIKE=89 MLXN_CUDA_TQ_SIMPLE=$simple "$B/mlxn" bench tq --device cuda --head-dim "$d" --q-heads "$hq" \
      --kv-heads "$hkv" --ctx 4096 --reps "$REPS" --warmup 10 > "$log" 2>&1
    line="$line $([ $simple = 1 ] && echo "f32 kernel" || echo "tensor cores") $(awk '$1 == 4096 {print $4}' "$log")"
  done
  note "$line"
done
# one-row products of the formats but 4-bit g64 / g128 on the tensor cores against the f32
# kernels they ran before (MLXN_CUDA_QMV_BITS=0), same binary, b2b us
line="one-row 4096 x 14336 b2b us, tensor cores / f32 kernels:"
for fmt in "2-bit:--bits 2" "3-bit:--bits 3" "5-bit:--bits 5" "6-bit:--bits 6" "8-bit:--bits 8" \
           "4-bit g32:--bits 4 --group-size 32" "8-bit g32:--bits 8 --group-size 32" \
           "4-bit g32 f32 scales:--bits 4 --group-size 32 --scale-dtype f32" "mxfp4:--mode mxfp4" "nvfp4:--mode nvfp4"; do
  name=${fmt%%:*} tag=$(echo "${fmt%%:*}" | tr -d ' -')
  for on in 1 0; do
    # shellcheck disable=SC2086
    MLXN_CUDA_QMV_BITS=$on "$B/mlxn" bench qmv --device cuda --rows 4096 --cols 14336 ${fmt#*:} --reps "$REPS" \
      --warmup 10 --mem-mib 0 > "$OUT/bench_qmv_bits_${tag}_$on.log" 2>&1
  done
  line="$line $name $(sed -nE 's/^back to back: ([0-9.]+) us.*/\1/p' "$OUT/bench_qmv_bits_${tag}_1.log") / $(sed -nE \
    's/^back to back: ([0-9.]+) us.*/\1/p' "$OUT/bench_qmv_bits_${tag}_0.log");"
done
note "$line"
# what a kernel boundary costs in a captured graph (bench/handoff.cu, built on its own)
if nvcc -O3 -arch=sm_90a -o "$B/handoff" "$ROOT/bench/handoff.cu" > "$OUT/handoff_build.log" 2>&1; then
  "$B/handoff" > "$OUT/handoff.log" 2>&1
  note "kernel boundary (us per kernel, none / 1 MB each, 264 blocks: plain pdl flags): $(awk '$3 == 264 && ($1 == 0 || $1 == 1) {printf "%s MB %s %s %s; ", $1, $4, $5, $6}' "$OUT/handoff.log")"
else
  note "bench/handoff.cu: build failed ($(tail -1 "$OUT/handoff_build.log"))"
fi
kill "$smi_pid" 2>/dev/null
note "sm clock while benchmarking (MHz): $(awk -F', ' 'NR > 1 {print $2}' "$OUT/clocks.log" | sort -n | uniq -c | sort -rn | head -3 | tr '\n' ' ')"
fi

# hardware counters of the 4-bit kernel (n = 1 and 8), clocks left as they are
if command -v ncu > /dev/null && [ "${MLXN_SKIP_NCU:-0}" != 1 ]; then
  for n in 1 8; do
    MLXN_CUDA_QMM_MIN_ROWS=1000000000 ncu --clock-control none --kernel-name regex:qmv --launch-skip 100 --launch-count 1 \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,sm__cycles_elapsed.avg.per_second,smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio,smsp__issue_active.avg.pct_of_peak_sustained_active \
      "$B/mlxn" bench qmv --device cuda --rows 4096 --cols 14336 --n "$n" --reps 5 --warmup 150 > "$OUT/ncu_n$n.log" 2>&1
    note "ncu n=$n: $(grep -E 'gpu__time_duration.sum|dram__throughput|issue_active|warps_active' "$OUT/ncu_n$n.log" | awk '{print $1"="$(NF)}' | tr '\n' ' ')"
  done
fi

# where the mat-mat time goes (n = 512, 4-bit g64): each kernel of one call
if command -v ncu > /dev/null && [ "${MLXN_SKIP_NCU:-0}" != 1 ]; then
  ncu --clock-control none --launch-skip 300 --launch-count 6 \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
    "$B/mlxn" bench qmm --device cuda --rows 4096 --cols 14336 --n 512 --reps 5 --warmup 150 > "$OUT/ncu_qmm.log" 2>&1
  note "ncu qmm n=512: $(awk '/^  [a-zA-Z_]/ && !/Section|----/ {k=$1} /gpu__time_duration.sum/ {printf "%s %s %s; ", substr(k,1,40), $NF, $(NF-1)}' "$OUT/ncu_qmm.log")"
fi

# picking a token: the sampling op on the GPU (4 bytes back) vs the logits read back to the host sampler
: > "$OUT/sample.jsonl"
if [ "${MLXN_SKIP_KERNELS:-0}" != 1 ] || [ "${MLXN_SAMPLE_BENCH:-0}" = 1 ]; then
  for args in "--vocab 128256 --temp 0" "--vocab 128256 --temp 0.7 --top-p 0.9" \
              "--vocab 128256 --temp 0.7 --top-k 40 --min-p 0.05" "--vocab 262208 --temp 0.7 --top-p 0.9"; do
    # shellcheck disable=SC2086
    "$B/mlxn" bench sample --device cuda $args --reps 200 --json >> "$OUT/sample.jsonl" 2>> "$OUT/sample.err" ||
      echo "bench sample $args failed: $(tail -1 "$OUT/sample.err")"
  done
fi

# attention: the decode shape of the goal (head dim 256, 32 query / 2 kv heads,
# 20000 cached tokens, bf16 K/V, one query) and prefill shapes (T = 512, causal),
# the tensor-core kernel (also with a device-side kv_len), the simple kernel
# (MLXN_CUDA_SDPA_SIMPLE=1) and PyTorch's SDPA on the same shapes
: > "$OUT/sdpa.jsonl"
: > "$OUT/peer_sdpa.jsonl"
if [ "${MLXN_SKIP_SDPA:-0}" != 1 ] && [ -x "$B/mlxn" ]; then
  sdpa_shapes=("256 32 2 1 20000" "128 32 8 1 20000" "128 32 8 512 512" "256 16 8 512 512" "64 32 8 512 512")
  for sh in "${sdpa_shapes[@]}"; do
    read -r d hq hkv tq tk <<<"$sh"
    args=(--head-dim "$d" --q-heads "$hq" --kv-heads "$hkv" --tq "$tq" --tk "$tk" --reps "$REPS" --json)
    "$B/mlxn" bench sdpa "${args[@]}" >> "$OUT/sdpa.jsonl" 2>> "$OUT/sdpa.err" || echo "bench sdpa $sh failed: $(tail -1 "$OUT/sdpa.err")"
    if [ "$tq" = 1 ]; then
      "$B/mlxn" bench sdpa "${args[@]}" --kv-len 1 >> "$OUT/sdpa.jsonl" 2>> "$OUT/sdpa.err" || echo "bench sdpa $sh kv-len failed"
    fi
    MLXN_CUDA_SDPA_SIMPLE=1 "$B/mlxn" bench sdpa "${args[@]}" --reps 20 >> "$OUT/sdpa.jsonl" 2>> "$OUT/sdpa.err" ||
      echo "bench sdpa $sh simple failed"
  done
  if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    peer=()
    for sh in "${sdpa_shapes[@]}"; do peer+=(--shape "$(tr ' ' , <<<"$sh")"); done
    python3 "$ROOT/bench/peer_torch_sdpa.py" "${peer[@]}" --reps "$REPS" > "$OUT/peer_sdpa.jsonl" 2> "$OUT/peer_sdpa.err"
    note "peer torch sdpa: exit $?"
  else
    note "peer torch sdpa: torch with CUDA not importable, skipped"
  fi
  # hardware counters of the attention kernels (decode goal shape, one prefill shape)
  if command -v ncu > /dev/null && [ "${MLXN_SKIP_NCU:-0}" != 1 ]; then
    for sh in "256 32 2 1 20000" "128 32 8 512 512"; do
      read -r d hq hkv tq tk <<<"$sh"
      ncu --clock-control none --kernel-name regex:fa_ --launch-skip 40 --launch-count 2 \
        --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,launch__grid_size \
        "$B/mlxn" bench sdpa --head-dim "$d" --q-heads "$hq" --kv-heads "$hkv" --tq "$tq" --tk "$tk" --reps 5 \
        > "$OUT/ncu_sdpa_${d}_${tq}.log" 2>&1
      note "ncu sdpa D=$d Tq=$tq: $(grep -E '^  [a-z_]+|gpu__time|dram__thr|issue_active|warps_active|hmma|grid_size' "$OUT/ncu_sdpa_${d}_${tq}.log" | awk '{print $1"="$(NF)}' | tr '\n' ' ')"
    done
  fi
fi

# end to end: random 4-bit models, ours (bf16 KV cache) beside PyTorch bf16 on the same shapes;
# every command bounded by MLXN_MODEL_TIMEOUT, the converted models deleted afterwards
: > "$OUT/models.jsonl"
if [ "${MLXN_SKIP_MODELS:-0}" != 1 ]; then
  MT=${MLXN_MODEL_TIMEOUT:-240}
  MREPS=${MLXN_MODEL_REPS:-5}
  MD=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_models_XXXXXX")
  have_torch=0
  python3 -c 'import torch, transformers; assert torch.cuda.is_available()' 2> /dev/null && have_torch=1
  stage0=$(date +%s)
  for preset in ${MLXN_MODELS:-llama-3.2-1b llama-3-8b gemma-3-4b}; do
    if [ $(($(date +%s) - stage0)) -ge "${MLXN_MODELS_BUDGET:-900}" ]; then
      note "model $preset: skipped (the model stage's budget of ${MLXN_MODELS_BUDGET:-900} s is spent)"
      continue
    fi
    t0=$(date +%s)
    if ! timeout "$MT" "$B/mlxn" convert --random "$preset" -q -o "$MD/$preset" > "$OUT/convert_$preset.log" 2>&1; then
      note "model $preset: convert failed: $(tail -1 "$OUT/convert_$preset.log")"
      continue
    fi
    note "model $preset: converted in $(($(date +%s) - t0)) s ($(du -sh "$MD/$preset" | cut -f1))"
    t0=$(date +%s)
    if timeout "$MT" "$B/mlxn" bench model -m "$MD/$preset" --device cuda --kv-dtype bf16 -p 512 -n 128 \
         -r "$MREPS" --warmup 1 --json > "$OUT/model_$preset.json" 2> "$OUT/model_$preset.err"; then
      python3 -c 'import json, sys
for r in json.load(open(sys.argv[1])): r["peer"] = "mlxn"; r["preset"] = sys.argv[2]; print(json.dumps(r))' \
        "$OUT/model_$preset.json" "$preset" >> "$OUT/models.jsonl"
      note "model $preset: mlxn bench model ok in $(($(date +%s) - t0)) s"
    else
      note "model $preset: mlxn bench model failed (exit $?): $(tail -1 "$OUT/model_$preset.err")"
    fi
    # prefill with a TurboQuant cache (the dense flash kernel over the decoded cache) beside the bf16 cache's
    line="model $preset: pp4096 tok/s:"
    for kv in bf16 tq4; do
      line="$line $kv $(timeout "$MT" "$B/mlxn" bench model -m "$MD/$preset" --device cuda --kv-cache $kv -p 4096 \
        -c 4096 -n 0 -r 2 2>> "$OUT/model_$preset.err" | awk -F'|' '$2 ~ /pp4096/ {gsub(/ /, "", $3); print $3}')"
    done
    note "$line"
    # generation as `mlxn generate` runs it on a GPU: each token's read overlapping the next step
    if timeout "$MT" "$B/mlxn" bench model -m "$MD/$preset" --device cuda --kv-dtype bf16 -p 0 -n 128 \
         -r "$MREPS" --warmup 1 --overlap-reads --json > "$OUT/model_${preset}_overlap.json" 2>> "$OUT/model_$preset.err"; then
      python3 -c 'import json, sys
for r in json.load(open(sys.argv[1])): r["peer"] = "mlxn-ovl"; r["preset"] = sys.argv[2]; print(json.dumps(r))' \
        "$OUT/model_${preset}_overlap.json" "$preset" >> "$OUT/models.jsonl"
    else
      note "model $preset: mlxn bench model --overlap-reads failed (exit $?): $(tail -1 "$OUT/model_$preset.err")"
    fi
    if [ "$have_torch" = 1 ]; then
      t0=$(date +%s)
      if timeout "$MT" python3 "$ROOT/bench/peer_torch_model.py" --config "$MD/$preset" --name "$preset" -p 512 \
           -n 128 -r "$MREPS" --json > "$OUT/peer_$preset.jsonl" 2> "$OUT/peer_$preset.err"; then
        python3 -c 'import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l); r["preset"] = sys.argv[2]; print(json.dumps(r))' "$OUT/peer_$preset.jsonl" "$preset" \
          >> "$OUT/models.jsonl"
        note "model $preset: PyTorch peer ok in $(($(date +%s) - t0)) s"
      else
        note "model $preset: PyTorch peer failed (exit $?): $(grep -v Warning "$OUT/peer_$preset.err" | tail -1)"
      fi
    fi
    rm -rf "${MD:?}/$preset"
  done
  [ "$have_torch" = 1 ] || note "models: python3 has no CUDA torch + transformers: no PyTorch rows"
  rm -rf "$MD"
fi

echo
for line in "${summary[@]}"; do echo "$line"; done
python3 - "$OUT/bench.jsonl" "$OUT/peer.jsonl" "$OUT/sweep.jsonl" "$OUT/sweep_slab.jsonl" <<'PY'
import json, os, sys
def load(p):
    return [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
rows, peer, sweep = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
slabs = load(sys.argv[4])
tf = lambda r: 2.0 * r['n'] * r['rows'] * r['cols'] / (r['median_us'] * 1e6)
if rows:
    print(f"qmv/qmm on {rows[0]['device']}, copy {rows[0]['copy_gb_s']:.0f} GB/s, {rows[0]['weight_sets']} weight copies")
    print(f"{'bench':5} {'rows':>6} {'cols':>5} {'mode':7} {'bits':>4} {'group':>5} {'n':>3} {'median us':>10} {'min us':>8} {'GB/s':>7} {'% copy':>7} {'TFLOP/s':>8}")
for r in rows:
    print(f"{r['bench']:5} {r.get('rows', 0):6d} {r.get('cols', 0):5d} {r['mode']:7} {r['bits']:4d} {r['group_size']:5d} {r['n']:3d} {r['median_us']:10.2f} {r['min_us']:8.2f} "
          f"{r['gb_s']:7.0f} {r['pct_of_copy']:6.0f}% {tf(r):8.1f}")
for r in peer:
    print(f"peer {r['bench']} (torch {r['torch']}, CUDA {r['cuda']}) n={r['n']}: median {r['median_us']:.2f} us, "
          f"{r['tflop_s']:.1f} TFLOP/s")
if sweep:
    print("sweep: median us, mat-mat (mm) vs mat-vec (mv)")
    cell = {}
    for r in sweep:
        cell[(r['mode'], r['bits'], r['group_size'], r['transpose'], r['n'], r['path'])] = r['median_us']
    kinds = sorted({k[:4] for k in cell})
    ns = sorted({k[4] for k in cell})
    print(f"{'kind':22} " + " ".join(f"{n:>15}" for n in ns))
    for k in kinds:
        cells = []
        for n in ns:
            mm, mv = cell.get(k + (n, 'mm')), cell.get(k + (n, 'mv'))
            cells.append(f"{(f'{mm:.0f}' if mm else '-'):>7}/{(f'{mv:.0f}' if mv else '-'):<7}")
        print(f"{k[0]+' '+str(k[1])+'b g'+str(k[2])+' t'+str(k[3]):22} " + " ".join(cells))
for r in slabs:
    print(f"block {r['slab']:>9} weights, n={r['n']:3d}: median {r['median_us']:.2f} us, {tf(r):.1f} TFLOP/s")
PY
python3 - "$OUT/sample.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if rows:
    print(f"sampling one token on {rows[0]['device']}: op on the device + 4-byte read vs logits read + host sampler")
    print(f"{'vocab':>7} {'temp':>4} {'top_p':>5} {'top_k':>5} {'min_p':>5} {'device us':>9} {'host us':>9}")
for r in rows:
    print(f"{r['vocab']:7d} {r['temp']:4.1f} {r['top_p']:5.2f} {r['top_k']:5d} {r['min_p']:5.2f} "
          f"{r['device_median_us']:9.1f} {r['host_median_us']:9.1f}")
PY
python3 - "$OUT/models.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if rows:
    print(f"end to end on {rows[0]['device']}: mlxn 4-bit (bf16 KV) vs PyTorch bf16 (mode per row in models.jsonl)")
    print(f"{'model':13} {'test':6} {'who':8} {'tok/s':>9} {'ms/tok':>7} {'GB/s':>7} {'% copy':>7} {'copy GB/s':>9}")
for r in rows:
    gb = f"{r['gb_s']:7.0f}" if r.get("gb_s") else " " * 7
    pc = f"{r['pct_of_copy']:6.0f}%" if r.get("pct_of_copy") else " " * 7
    cp = f"{r['copy_gb_s']:9.0f}" if r.get("copy_gb_s") else " " * 9
    print(f"{r['preset']:13} {r['test']:6} {r['peer']:8} {r['median_ts']:9.1f} {r['ms_per_token']:7.3f} {gb} {pc} {cp}")
PY
if [ -s "$OUT/bench_tq.log" ]; then
  echo
  grep -E "^(device:| *ctx| *[0-9]+ )" "$OUT/bench_tq.log" | sed 's/^/tq decode: /'
fi
python3 - "$OUT/sdpa.jsonl" "$OUT/peer_sdpa.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peer = {}
for l in open(sys.argv[2]):
    if l.strip():
        p = json.loads(l)
        if "median_us" in p:
            peer[(p["head_dim"], p["q_heads"], p["kv_heads"], p["tq"], p["tk"])] = p
if rows:
    print(f"sdpa on {rows[0]['device']}, copy {rows[0]['copy_gb_s']:.0f} GB/s; peer: torch SDPA bf16 "
          f"{next(iter(peer.values()))['torch'] if peer else '(not run)'}")
    print(f"{'D':>3} {'Hq':>3} {'Hkv':>3} {'Tq':>4} {'Tk':>6} {'kernel':11} {'median us':>10} {'min us':>8} {'GB/s':>6} "
          f"{'% copy':>6} {'TFLOP/s':>7} {'torch us':>8}")
for r in rows:
    key = (r["head_dim"], r["q_heads"], r["kv_heads"], r["tq"], r["tk"])
    kern = r["kernel"] + ("+kvl" if r["kv_len_tensor"] else "")
    pu = peer.get(key, {}).get("median_us")
    print(f"{r['head_dim']:3d} {r['q_heads']:3d} {r['kv_heads']:3d} {r['tq']:4d} {r['tk']:6d} {kern:11} "
          f"{r['median_us']:10.2f} {r['min_us']:8.2f} {r['gb_s']:6.0f} {r['pct_of_copy']:5.0f}% {r['tflop_s']:7.1f} "
          f"{'-' if pu is None else f'{pu:.2f}':>8}")
PY
