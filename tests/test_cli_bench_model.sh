#!/usr/bin/env bash
# `mlxn bench model` on random-weight models (no tokenizer needed): the
# table and JSON fields (shape, ms/token, weight bytes per decode step,
# GB/s), the byte count checked against the tensor sizes in the
# safetensors headers for a tied and an untied model, --device cuda (skipped
# in the output check when the machine has no GPU); `mlxn bench sample`.
# No timing is checked.
#   bash tests/test_cli_bench_model.sh PATH_TO_MLXN BUILD_DIR
set -u
mlxn=${1:?usage: test_cli_bench_model.sh PATH_TO_MLXN BUILD_DIR}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_bench_model_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli_helpers.sh
. "$(dirname "$0")/cli_helpers.sh"

run "convert tied" 0 convert --random tiny-llama -q -o "$tmp/tied" --seed 3

run "text" 0 bench model -m "$tmp/tied" -p 8 -n 4 -r 1 --warmup 0 -t 1
has "text" '^shape: hidden 64, 4 heads \(2 KV\) of 16, FFN 128, vocab 256, tied embeddings' "$out"
has "text" '^\| pp8 +\| +[0-9.]+ \|.*\| +[0-9.]+ \| +\| +\|$' "$out"
has "text" '^\| tg4 +\| +[0-9.]+ \|.*\| +[0-9.]+ \| +[0-9.]+ \| +\|$' "$out"
# --isa caps the CPU level (the device line names it); a name not among the choices is a usage error
run "isa" 0 bench model -m "$tmp/tied" -p 0 -n 2 -r 1 --warmup 0 -t 1 --isa scalar
has "isa" 'device: cpu \(1 threads?, scalar\)' "$out"
run "isa bad" 2 bench model -m "$tmp/tied" -p 0 -n 2 -r 1 --isa avx9
run "json" 0 bench model -m "$tmp/tied" -p 0 -n 3 -r 2 --warmup 0 -t 1 --json
has "json" '"test": "tg3"' "$out"
has "json" '"ms_per_token": [0-9.e+-]+' "$out"
has "json" '"gb_s": [0-9.e+-]+' "$out"
has "json" '"copy_gb_s": null' "$out"
has "json" '"hidden_size": 64' "$out"

# Weight bytes one decode step reads: every tensor (tied: the embedding is
# the output head), or without the embedding but one of its rows (untied).
weight_sum() { # DIR -> "all embed" bytes of the safetensors tensors
  python3 - "$1" <<'PY'
import json, struct, sys, glob
tot = emb = 0
for f in glob.glob(sys.argv[1] + "/*.safetensors"):
    with open(f, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        h = json.loads(fh.read(n))
    for k, v in h.items():
        if k == "__metadata__":
            continue
        b = v["data_offsets"][1] - v["data_offsets"][0]
        tot += b
        emb += b if "embed_tokens." in k else 0
print(tot, emb)
PY
}
if command -v python3 > /dev/null; then
  read -r all emb < <(weight_sum "$tmp/tied")
  has "tied bytes" "\"decode_weight_bytes\": $all(\\.0)?," "$out"
  # an untied copy: lm_head.* = the embedding's tensors, tie_word_embeddings false
  cp -r "$tmp/tied" "$tmp/untied"
  python3 - "$tmp/untied" <<'PY'
import json, struct, sys, glob
d = sys.argv[1]
f = glob.glob(d + "/*.safetensors")[0]
raw = open(f, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h, data = json.loads(raw[8:8 + n]), bytearray(raw[8 + n:])
for k in [k for k in h if k.startswith("model.embed_tokens.")]:
    v = dict(h[k]); a, b = v["data_offsets"]
    v["data_offsets"] = [len(data), len(data) + b - a]
    data += data[a:b]
    h["lm_head." + k.split(".", 2)[2]] = v
hj = json.dumps(h).encode()
hj += b" " * (-len(hj) % 8)
open(f, "wb").write(struct.pack("<Q", len(hj)) + hj + data)
for idx in glob.glob(d + "/*.index.json"):
    j = json.load(open(idx))
    for k in list(j["weight_map"]):
        if k.startswith("model.embed_tokens."):
            j["weight_map"]["lm_head." + k.split(".", 2)[2]] = j["weight_map"][k]
    json.dump(j, open(idx, "w"))
c = json.load(open(d + "/config.json"))
c["tie_word_embeddings"] = False
json.dump(c, open(d + "/config.json", "w"))
PY
  run "json untied" 0 bench model -m "$tmp/untied" -p 0 -n 2 -r 1 --warmup 0 -t 1 --json
  read -r all emb < <(weight_sum "$tmp/untied")
  want=$(python3 -c "print(f'{$all - $emb + $emb / 256:.1f}')")
  has "untied bytes" "\"decode_weight_bytes\": ${want%.0}(\\.0)?," "$out"
else
  echo "python3 not found: byte counts not checked"
fi

if "$mlxn" bench model -m "$tmp/tied" -p 8 -n 2 -r 1 --warmup 0 --device cuda > "$tmp/out" 2> "$tmp/err"; then
  out=$(cat "$tmp/out")
  has "cuda" '^device-to-device copy: [0-9.]+ GB/s' "$out"
  has "cuda" '^\| tg2 +\|.*\| +[0-9]+% \|$' "$out"
else
  has "cuda unavailable" 'cannot open device|CUDA|cuda' "$(cat "$tmp/err")"
fi

# bench sample: the op beside the host sampler (no timing checked)
run "sample text" 0 bench sample --vocab 1000 --reps 3 --warmup 1 -t 1
has "sample text" '^device op \+ 4-byte read: +median +[0-9.]+ us' "$out"
has "sample text" '^logits read back \+ host sampler: +median +[0-9.]+ us' "$out"
run "sample json" 0 bench sample --vocab 33 --temp 0 --reps 2 --warmup 0 -t 1 --json
has "sample json" '^\{"bench": ?"sample".*"device_median_us": ?[0-9.e+-]+.*"host_median_us": ?[0-9.e+-]+.*\}$' "$out"
run "sample bad" 2 bench sample --top-p 2
run "sample no device" 1 bench sample --device cuda:99 --reps 1

finish test_cli_bench_model
