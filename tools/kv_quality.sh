#!/bin/sh
# The quality of every KV cache kind against the dense f32 cache on one
# model and one text: `mlxn eval --compare-dense` (teacher-forced
# perplexity of both, its change, mean KL divergence of the next-token
# distributions, top-1 agreement) for tq2..tq8 and mixed widths.
# Usage: tools/kv_quality.sh MODEL [TEXT] [KINDS...]
#   MLXN: the mlxn binary (default build/mlxn); TOKENIZER: the model
#   whose tokenizer makes the ids (default MODEL; e.g. the .gguf a
#   directory was converted from, when the directory has no
#   tokenizer.json); TEXT default tests/golden/kv_quality/declaration.txt.
#   docs/turboquant.md has the results.
set -eu
mlxn=${MLXN:-build/mlxn}
model=$1
text=${2:-tests/golden/kv_quality/declaration.txt}
[ $# -ge 2 ] && shift 2 || shift $#
kinds=${*:-tq2 tq3 tq4 tq5 tq6 tq7 tq8 k4v8 k8v4 k4v6 k6v4 k5v4 k8v2}
ids=$(mktemp)
trap 'rm -f "$ids"' EXIT
"$mlxn" tokenize -m "${TOKENIZER:-$model}" < "$text" > "$ids"
for k in $kinds; do
    "$mlxn" eval -m "$model" --tokens-file "$ids" --chunk 512 --kv-cache "$k" --compare-dense
done
