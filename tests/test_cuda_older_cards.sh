#!/usr/bin/env bash
# The CUDA test programs again with an older card's limits applied to this
# one (MLXN_CUDA_LIKE): 80 is an A100's 163 KB of shared memory a block, 89
# an sm_86 / sm_89 card's 99 KB (RTX 3090 / 4090, A10, L4, L40S), both
# without programmatic launch or clusters. Kernels that would not fit such
# a card must give way to ones that do, with the same answers; a request
# past the limit fails the op with a message naming both sizes, which the
# programs report as failures. Skipped (77) without a CUDA device.
#   bash tests/test_cuda_older_cards.sh PATH_TO_MLXN BUILD_DIR
set -u
build=${2:?usage: test_cuda_older_cards.sh PATH_TO_MLXN BUILD_DIR}
progs="test_backend_ops test_backend_attn test_backend_tq test_session_tq_fixed test_models_cuda test_sample"
fail=0
ran=0
for like in 80 89; do
  for p in $progs; do
    if [ ! -x "$build/tests/$p" ]; then
      echo "FAIL $build/tests/$p is not built"
      fail=$((fail + 1))
      continue
    fi
    out=$(MLXN_CUDA_LIKE=$like "$build/tests/$p" 2>&1)
    rc=$?
    if [ $rc = 77 ]; then
      echo "skipped: no CUDA device ($p)"
      exit 77
    fi
    ran=$((ran + 1))
    if [ $rc != 0 ]; then
      fail=$((fail + 1))
      echo "FAIL MLXN_CUDA_LIKE=$like $p (exit $rc):"
      echo "$out" | grep -E "FAIL" | head -10
    else
      echo "ok MLXN_CUDA_LIKE=$like $p: $(echo "$out" | tail -1)"
    fi
  done
done
echo "test_cuda_older_cards: $((ran - fail)) passed, $fail failed"
[ $fail = 0 ]
