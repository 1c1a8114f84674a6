#!/usr/bin/env bash
# `mlxn chat` driven through a real pseudo-terminal (tmux): typed messages,
# Ctrl-C and Ctrl-D as keys, so the terminal's line discipline delivers
# SIGINT and end-of-input as it does for a person.
#  - two turns answer exactly what mlx-lm answers for the same
#    conversation, each generated afresh over the whole history
#    (tests/golden/gen_cli.py; tests/golden/cli/chat.out), while ours
#    reuses the KV cache across turns (--stats shows the reused prefix);
#  - Ctrl-C during an answer stops it ("(stopped)") and the REPL goes on;
#    /reset starts over and answers turn one again, identically;
#  - Ctrl-C at the prompt clears it; Ctrl-D exits with status 0;
#  - the terminal's settings (stty -g) are the same before and after.
# Also without a terminal: messages one per line from a pipe, and a small
# context (oldest turns dropped, a message too long for it refused).
#   bash tests/test_cli_chat.sh PATH_TO_MLXN BUILD_DIR
set -u
mlxn=${1:?usage: test_cli_chat.sh PATH_TO_MLXN BUILD_DIR}
build=${2:-.}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlxn_chat_XXXXXX")
sock=mlxn_chat_test_$$
trap 'tmux -L "$sock" kill-server >/dev/null 2>&1; rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli_model.sh
. "$(dirname "$0")/cli_model.sh"
if ! command -v tmux >/dev/null; then
  echo "FAIL: tmux is missing (Debian: apt-get install tmux; make check installs it)" >&2
  exit 1
fi

mapfile -t turns <"$golden/chat.turns"

# ---- without a terminal ---------------------------------------------------------
printf '%s\n' "${turns[@]}" | "$mlxn" chat -m "$model" -t 1 -n 48 --stats >"$tmp/pipe.out" 2>"$tmp/pipe.err"
rc=$?
[ "$rc" -eq 0 ] && ok || bad "piped chat: exit $rc: $(cat "$tmp/pipe.err")"
sed 's/^/>>> /' "$tmp/pipe.out" >"$tmp/pipe.prefixed"
same_file "piped chat" "$tmp/pipe.prefixed" "$golden/chat.out"
# turn two ran only what follows turn one in the cache
has "cache reuse" '^\[[0-9]+ tokens, .*prompt [0-9]+ tokens, [1-9][0-9]* from the cache' "$(sed -n 2p "$tmp/pipe.err")"

# a small context: the oldest turn is dropped, a message too long for it is refused, the REPL goes on
printf '%s\n' "${turns[@]}" "And of Spain?" "$(printf 'word %.0s' $(seq 200))" "And of Italy?" |
  "$mlxn" chat -m "$model" -t 1 -c 100 -n 16 --stats >"$tmp/small.out" 2>"$tmp/small.err"
rc=$?
[ "$rc" -eq 0 ] && ok || bad "small context: exit $rc: $(cat "$tmp/small.err")"
has "small context" 'the oldest turn is dropped' "$(cat "$tmp/small.err")"
has "small context" 'does not fit the context of 100 tokens' "$(cat "$tmp/small.err")"
[ "$(wc -l <"$tmp/small.out")" -eq 4 ] && ok || bad "small context: want 4 answers, got: $(cat "$tmp/small.out")"

# ---- on a terminal ----------------------------------------------------------------
t() { tmux -L "$sock" "$@"; }
# count of prompts printed so far
prompts() { grep -o '>>> ' "$tmp/tty.out" 2>/dev/null | wc -l; }
wait_prompts() { # N: wait until N prompts were printed (120 s at most)
  for _ in $(seq 1200); do [ "$(prompts)" -ge "$1" ] && return 0; sleep 0.1; done
  bad "timed out waiting for prompt $1; output so far: $(cat "$tmp/tty.out")"
  return 1
}
type_line() { t send-keys -t chat -l "$1" && t send-keys -t chat Enter; }
cat >"$tmp/session.sh" <<EOF
stty -g >"$tmp/stty.before"
"$mlxn" chat -m "$model" -t 1 -n 200 >"$tmp/tty.out" 2>"$tmp/tty.err"
echo \$? >"$tmp/rc"
stty -g >"$tmp/stty.after"
EOF
t -f /dev/null new-session -d -s chat -x 160 -y 40 "bash $tmp/session.sh" || bad "tmux could not start"
wait_prompts 1
type_line "${turns[0]}"
wait_prompts 2
type_line "${turns[1]}"
wait_prompts 3
# a long answer, stopped by Ctrl-C once it has started streaming
type_line "Write a very long story about a dragon who learns to fly."
size0=$(wc -c <"$tmp/tty.out")
for _ in $(seq 1200); do [ "$(wc -c <"$tmp/tty.out")" -gt $((size0 + 8)) ] && break; sleep 0.1; done
t send-keys -t chat C-c
wait_prompts 4
type_line "/reset"
wait_prompts 5
type_line "${turns[0]}"
wait_prompts 6
t send-keys -t chat C-c # at the prompt: a fresh prompt
wait_prompts 7
t send-keys -t chat C-d
for _ in $(seq 300); do [ -s "$tmp/stty.after" ] && break; sleep 0.1; done
rc=$(cat "$tmp/rc" 2>/dev/null)
[ "$rc" = 0 ] && ok || bad "chat on a terminal: exit '$rc': $(cat "$tmp/tty.err")"
if [ -s "$tmp/stty.before" ] && cmp -s "$tmp/stty.before" "$tmp/stty.after"; then ok; else
  bad "terminal settings changed: $(cat "$tmp/stty.before") -> $(cat "$tmp/stty.after")"
fi
want_len=$(wc -c <"$golden/chat.out")
head -c "$want_len" "$tmp/tty.out" >"$tmp/tty.head"
same_file "two turns on a terminal" "$tmp/tty.head" "$golden/chat.out"
got=$(cat "$tmp/tty.out")
has "Ctrl-C stops the answer" '^\(stopped\)$' "$got"
has "reset" '^>>> \(new conversation\)$' "$got"
first=$(head -n 1 "$golden/chat.out")
after_reset=$(sed -n '/(new conversation)/{n;p;}' "$tmp/tty.out")
[ "$after_reset" = "$first" ] && ok || bad "after /reset: '$after_reset', want '$first'"
has "Ctrl-C at the prompt" '^>>> $' "$got"
has "Ctrl-C at the prompt" '^\(Ctrl-D or /exit quits\)$' "$got"
# Ctrl-D at the prompt: a newline, so the shell's prompt starts on a fresh line
if [ "$(tail -c 5 "$tmp/tty.out" | od -An -c | tr -d ' \n')" = '>>>\n' ]; then ok; else
  bad "Ctrl-D: output ends with '$(tail -c 20 "$tmp/tty.out")'"
fi
has "banner" '^mlxn chat: .* Ctrl-C stops an answer' "$(cat "$tmp/tty.err")"

finish test_cli_chat
