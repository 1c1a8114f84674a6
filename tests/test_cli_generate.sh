#!/usr/bin/env bash
# `mlxn generate`, `mlxn tokenize` and `mlxn bench model` on the demo model
# (SmolLM2-135M-Instruct, converted to MLX 4-bit by `mlxn convert`):
#  - greedy output identical to what mlx-lm prints for the same prompt and
#    chat template on the same directory (tests/golden/gen_cli.py; up to
#    the first near-tie), from -p, -f, stdin and the GGUF file directly;
#  - the prompt ids of `tokenize --chat` identical to mlx-lm's
#    apply_chat_template; encode/decode round trip; --json pieces;
#  - sampling flags: top-k 1 at any temperature is greedy, a seed repeats,
#    a large logit bias forces its token, penalties run;
#  - statistics on stderr (KV bytes per token computed here from the
#    config), Ctrl-C (SIGINT) ends the answer with exit 130;
#  - bad input: unknown flags (with a suggestion), bad values, a missing
#    model, invalid UTF-8, a prompt longer than the context (error, or
#    --truncate), --device cuda: a message, exit 1 or 2, never a crash;
#  - --help on every subcommand.
# In a sanitizer build (slow kernels) the greedy checks use 8 tokens.
#   bash tests/test_cli_generate.sh PATH_TO_MLXN BUILD_DIR
set -u
mlxn=${1:?usage: test_cli_generate.sh PATH_TO_MLXN BUILD_DIR}
build=${2:-.}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_generate_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli_model.sh
. "$(dirname "$0")/cli_model.sh"
T=(-t 1) # one thread: the suite runs tests side by side

# ---- greedy text and prompt ids against mlx-lm -------------------------------
cases=(capital pirate greet code)
[ "$short" = 1 ] && cases=(capital code)
sfx=""
[ "$short" = 1 ] && sfx=.short
for c in "${cases[@]}"; do
  mapfile -t args <"$golden/$c.args"
  n=$(cat "$golden/$c$sfx.n")
  run "generate $c" 0 generate -m "$model" "${T[@]}" -n "$n" "${args[@]}"
  same_file "generate $c" "$tmp/out" "$golden/$c$sfx.out"
  # tokenize: the same arguments, the prompt as TEXT
  targs=()
  for ((i = 0; i < ${#args[@]}; i++)); do
    if [ "${args[i]}" = -p ]; then i=$((i + 1)); prompt=${args[i]}; else targs+=("${args[i]}"); fi
  done
  run "tokenize $c" 0 tokenize -m "$model" "${targs[@]}" "$prompt"
  same_file "tokenize $c ids" "$tmp/out" "$golden/$c.ids"
done

# the prompt from stdin, from a file, and the GGUF run directly
mapfile -t args <"$golden/code.args"
n=$(cat "$golden/code$sfx.n")
"$mlxn" generate -m "$model" "${T[@]}" -q -n "$n" <<<"${args[1]}" >"$tmp/stdin.out" 2>"$tmp/err" || bad "stdin: $(cat "$tmp/err")"
# (<<< appends a newline: the prompt differs, so only check it ran and stopped)
[ -s "$tmp/stdin.out" ] && ok || bad "stdin: no output"
printf '%s' "${args[1]}" >"$tmp/prompt.txt"
"$mlxn" generate -m "$model" "${T[@]}" -q -n "$n" <"$tmp/prompt.txt" >"$tmp/stdin2.out" 2>"$tmp/err"
same_file "prompt from stdin" "$tmp/stdin2.out" "$golden/code$sfx.out"
run "prompt file" 0 generate -m "$model" "${T[@]}" -q -n "$n" -f "$tmp/prompt.txt"
same_file "prompt file" "$tmp/out" "$golden/code$sfx.out"
mapfile -t args <"$golden/capital.args"
n=$(cat "$golden/capital.short.n")
run "generate gguf" 0 generate -m "$gguf" "${T[@]}" -q -n "$n" "${args[@]}"
same_file "generate gguf" "$tmp/out" "$golden/capital.short.out"

# ---- statistics -------------------------------------------------------------
run "stats" 0 generate -m "$model" "${T[@]}" -n 3 --ignore-eos "${args[@]}"
has "stats" '^load: [0-9.]+ s \(llama, cpu \(1 thread' "$err"
has "stats" '^prompt: 37 tokens, [0-9.]+ s, [0-9.]+ tok/s$' "$err"
has "stats" '^generation: 3 tokens, [0-9.]+ s, [0-9.]+ tok/s \(stopped: max-tokens\)$' "$err"
# KV cache: 2 (K and V) x 30 layers x 3 KV heads x 64 dims x 4 bytes = 46080 B = 45.0 KiB; 37 + 2 tokens held
has "stats" '^memory: peak RSS [0-9.]+ MiB; KV cache 45\.0 KiB per token \(f32\), 1\.7 MiB for 39 tokens$' "$err"
# a bare question to an instruct model ends at once: the hint names --chat (and only then)
run "no chat" 0 generate -m "$model" "${T[@]}" -n 8 -p "What is the capital of France?"
has "no chat" '^generation: 0 tokens, .*\(stopped: eos\)$' "$err"
has "no chat" 'it has a chat template, so for an answer to the prompt add --chat$' "$err"
run "chat, no hint" 0 generate -m "$model" "${T[@]}" -n 1 "${args[@]}"
hasnt "chat, no hint" 'add --chat' "$err"
run "stats bf16" 0 generate -m "$model" "${T[@]}" -n 1 --kv-dtype bf16 "${args[@]}"
has "stats bf16" 'KV cache 22\.5 KiB per token \(bf16\)' "$err"
run "quiet" 0 generate -m "$model" "${T[@]}" -n 1 -q "${args[@]}"
[ -z "$err" ] && ok || bad "quiet: stderr not empty: $err"
run "max-tokens 0" 0 generate -m "$model" "${T[@]}" -n 0 -q "${args[@]}"
[ "$(od -An -c "$tmp/out" | tr -d ' ')" = '\n' ] && ok || bad "max-tokens 0: output '$out'"

# ---- sampling -----------------------------------------------------------------
n=$(cat "$golden/capital$sfx.n")
run "top-k 1" 0 generate -m "$model" "${T[@]}" -q -n "$n" --temp 1.5 --top-k 1 --seed 3 "${args[@]}"
same_file "top-k 1 is greedy" "$tmp/out" "$golden/capital$sfx.out"
run "seed a" 0 generate -m "$model" "${T[@]}" -n 6 --temp 1.0 --top-p 0.9 --min-p 0.05 --seed 42 "${args[@]}"
cp "$tmp/out" "$tmp/seed_a"
has "seed printed" '^seed: 42$' "$err"
run "seed b" 0 generate -m "$model" "${T[@]}" -q -n 6 --temp 1.0 --top-p 0.9 --min-p 0.05 --seed 42 "${args[@]}"
same_file "same seed, same text" "$tmp/out" "$tmp/seed_a"
forced=$("$mlxn" tokenize -m "$model" --decode 28840)
run "logit bias" 0 generate -m "$model" "${T[@]}" -q -n 1 --logit-bias 28840=100 "${args[@]}"
[ "$out" = "$forced" ] && ok || bad "logit bias: got '$out', want '$forced'"
run "penalties" 0 generate -m "$model" "${T[@]}" -q -n 4 --repetition-penalty 1.3 --repetition-context-size 8 \
  --presence-penalty 0.5 --frequency-penalty 0.5 --frequency-context-size 16 --logit-bias 13=-5,42=2 "${args[@]}"

# ---- Ctrl-C: the answer ends, statistics still come, exit 130 ------------------
"$mlxn" generate -m "$model" "${T[@]}" --ignore-eos -n 100000 "${args[@]}" >"$tmp/int.out" 2>"$tmp/int.err" &
pid=$!
for _ in $(seq 600); do [ -s "$tmp/int.out" ] && break; sleep 0.1; done
kill -INT "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 130 ] && ok || bad "SIGINT: exit $rc, want 130; $(cat "$tmp/int.err")"
has "SIGINT" '\(stopped: interrupted\)' "$(cat "$tmp/int.err")"

# ---- tokenize ---------------------------------------------------------------------
text='Hello, wörld! 日本語 👋🏽 ok'
run "tokenize" 0 tokenize -m "$model" "$text"
ids=$out
run "decode" 0 tokenize -m "$model" --decode "$ids"
[ "$out" = "$text" ] && ok || bad "decode round trip: '$out'"
run "tokenize gguf" 0 tokenize -m "$gguf" "$text"
[ "$out" = "$ids" ] && ok || bad "GGUF tokenizer: '$out' vs '$ids'"
printf '%s' "$text" >"$tmp/text"
"$mlxn" tokenize -m "$model" <"$tmp/text" >"$tmp/out" 2>&1
[ "$(cat "$tmp/out")" = "$ids" ] && ok || bad "tokenize stdin: $(cat "$tmp/out")"
run "tokenize json" 0 tokenize -m "$model" --json "Hello, wörld"
has "tokenize json" '^\[\{"id": ?19556, ?"piece": ?"Hello", ?"text": ?"Hello", ?"special": ?false\},' "$out"
has "tokenize json" '"piece": ?"Ã¶r", ?"text": ?"ör"' "$out"
run "tokenize special" 0 tokenize -m "$model" "<|im_end|>"
[ "$out" = 2 ] && ok || bad "special token: '$out'"
run "split special" 0 tokenize -m "$model" --split-special "<|im_end|>"
[ "$out" != 2 ] && ok || bad "--split-special: still '$out'"
run "decode json" 0 tokenize -m "$model" --decode --json "19556,28"
has "decode json" '^\{"text": ?"Hello,"\}$' "$out"
run "decode bad" 2 tokenize -m "$model" --decode "1 two"
run "decode range" 1 tokenize -m "$model" --decode "49152"
has "decode range" 'outside the vocabulary' "$err"

# ---- bench model -----------------------------------------------------------------
run "bench model" 0 bench model -m "$model" "${T[@]}" -p 8 -n 2 -r 1 --warmup 0
has "bench model" '^\| pp8 +\| +[0-9.]+ \|' "$out"
has "bench model" '^\| tg2 +\| +[0-9.]+ \|' "$out"
run "bench model json" 0 bench model -m "$model" "${T[@]}" -p 4,8 -n 0 -r 2 --warmup 0 --json
has "bench json" '"test": "pp4"' "$out"
has "bench json" '"test": "pp8"' "$out"
has "bench json" '"median_ts": [0-9.e+-]+' "$out"
run "bench bad list" 2 bench model -m "$model" -p 8x
run "bench nothing" 2 bench model -m "$model" -p 0 -n 0
run "bench context" 1 bench model -m "$model" -c 16 -p 32 -n 0

# ---- bad input ---------------------------------------------------------------------
run "unknown flag" 2 generate -m "$model" --tmp 0.5 -p hi
has "unknown flag" "unknown option '--tmp' \(did you mean --temp\?\)" "$err"
has "unknown flag" 'mlxn generate --help' "$err"
run "missing value" 2 generate -m "$model" -p
has "missing value" '-p needs a value' "$err"
run "bad number" 2 generate -m "$model" -p hi --temp warm
has "bad number" "--temp wants a number >= 0, got 'warm'" "$err"
run "out of range" 2 generate -m "$model" -p hi --top-p 1.5
has "out of range" '--top-p wants a number in \[0, 1\]' "$err"
run "no model" 2 generate -p hi
has "no model" 'no model given' "$err"
run "missing model" 1 generate -m "$tmp/nowhere" -p hi
has "missing model" "no model at '.*nowhere'" "$err"
run "not a model" 1 generate -m "$tmp/text" -p hi
has "not a model" 'neither a model directory nor a .gguf file' "$err"
mkdir -p "$tmp/empty"
run "dir without model" 1 generate -m "$tmp/empty" -p hi
has "dir without model" 'tokenizer.json' "$err"
run "invalid utf-8" 1 generate -m "$model" -p $'ab\xff\xfecd'
has "invalid utf-8" 'UTF-8' "$err"
run "invalid utf-8 chat" 1 generate -m "$model" --chat -p $'\xc3('
has "invalid utf-8 chat" 'UTF-8' "$err"
run "tokenize invalid utf-8" 1 tokenize -m "$model" $'\xe2\x82'
has "tokenize invalid utf-8" 'UTF-8' "$err"
run "empty prompt" 1 generate -m "$model" -p ""
has "empty prompt" 'prompt is empty' "$err"
long=$(printf 'one two three four five six seven eight nine ten %.0s' $(seq 4))
run "too long" 1 generate -m "$model" "${T[@]}" -c 16 -p "$long"
has "too long" 'the prompt has 41 tokens but the context holds 16: .*--truncate' "$err"
run "truncate" 0 generate -m "$model" "${T[@]}" -c 16 -n 4 --truncate -p "$long"
has "truncate" 'keeps its last 12' "$err"
has "truncate" '^prompt: 12 tokens' "$err"
run "context full" 0 generate -m "$model" "${T[@]}" -c 14 -n 10 --truncate -p "$long"
has "context full" '\(stopped: context\)' "$err"
run "device cuda" 1 generate -m "$model" --device cuda -p hi
has "device cuda" 'cuda' "$err"
run "device bad" 2 generate -m "$model" --device tpu -p hi
run "system without chat" 2 generate -m "$model" --system hi -p hi
run "bad logit bias" 2 generate -m "$model" --logit-bias 5 -p hi
has "bad logit bias" 'ID=BIAS' "$err"
run "bad chat format" 2 generate -m "$model" --chat --chat-format jinja -p hi
run "bad kv dtype" 2 generate -m "$model" --kv-dtype f8 -p hi
has "bad kv dtype" 'must be one of auto\|f32\|bf16\|f16' "$err"
run "both prompts" 2 generate -m "$model" -p hi -f "$tmp/text"
run "unreadable prompt file" 1 generate -m "$model" -f "$tmp/nowhere"
run "positional" 2 generate -m "$model" hello
run "tokenize two texts" 2 tokenize -m "$model" a b
run "chat unknown flag" 2 chat -m "$model" --frobnicate

# ---- --help everywhere ------------------------------------------------------------
for c in generate chat tokenize "bench model" "bench qmv" "bench qmm" bench info convert eval; do
  # shellcheck disable=SC2086
  run "help $c" 0 $c --help
  has "help $c" "^usage: mlxn $c" "$out"
done
run "help top" 0 --help
for c in generate chat tokenize bench info convert eval; do has "command list" "^  $c " "$out"; done

finish test_cli_generate
