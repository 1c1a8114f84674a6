"""Oracle for the CLI end-to-end tests (tests/test_cli_generate.sh,
tests/test_cli_chat.sh): what mlx-lm prints, greedy, for the demo model.

  1. `mlxn convert` (the binary named by $MLXN, default build/mlxn) turns the
     SmolLM2-135M-Instruct Q4_1 GGUF (tests/golden/fetch_smollm2.sh puts it in
     ${XDG_CACHE_HOME:-~/.cache}/mlx-native/) into an MLX 4-bit directory,
     as `make demo` does; only the conversion is ours;
  2. mlx-lm loads that directory and, on the CPU, for each case below:
       - tokenizes the prompt as mlx_lm.generate does (the chat template with
         the generation prompt, or the plain text);
       - runs mlx_lm.stream_generate greedily (temperature 0) and keeps the
         text it streams: mlx-lm's own generation loop, detokenizer and EOS
         handling;
       - finds the first step whose top-2 log-probability margin is below
         NEAR_TIE (our logits differ from mlx-lm's by up to ~0.02, see
         tests/test_smollm2.c; below 0.06 either token is a fair argmax) and
         keeps only the tokens before it, generating again with that
         max_tokens so the text is exactly what mlx-lm prints then;
  3. writes tests/golden/cli/: per case NAME.args (the mlxn generate
     arguments, one per line), NAME.ids (mlx-lm's prompt ids), NAME.n and
     NAME.out (max tokens and the expected stdout: the text and a newline),
     NAME.short.n / NAME.short.out (the same for at most SHORT tokens, for
     the sanitizer build); chat.turns / chat.out for a two-turn
     conversation (each turn a fresh mlx-lm generation over the whole
     history, no near-tie allowed); meta.json (versions, sha256, margins).
Without the GGUF or the binary it prints "skipped: ..." and exits 0.
Deterministic: greedy decoding, fixed prompts.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
OUT = os.path.join("tests", "golden", "cli")
MAX_TOKENS = 48
SHORT = 8
NEAR_TIE = 0.06

# name, chat?, system, prompt
CASES = [
    ("capital", True, None, "What is the capital of France?"),
    ("pirate", True, "You are a pirate. Answer in one sentence.", "Tell me about the ocean."),
    ("greet", True, None, "How do you say 'good morning' in French and in Spanish?"),
    ("code", False, None, "def fibonacci(n):"),
]
CHAT_TURNS = ["What is the capital of France?", "And of Germany?"]


def cache_path():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mlx-native", GGUF_NAME)


def main():
    gguf_path = cache_path()
    mlxn = os.environ.get("MLXN", os.path.join("build", "mlxn"))
    if not os.path.exists(gguf_path):
        print(f"skipped: {gguf_path} is absent (tests/golden/fetch_smollm2.sh fetches it)")
        return
    if not os.access(mlxn, os.X_OK):
        print(f"skipped: no mlxn binary at {mlxn} (set MLXN)")
        return
    sha = hashlib.sha256(open(gguf_path, "rb").read()).hexdigest()
    if sha != GGUF_SHA256:
        sys.exit(f"{gguf_path}: sha256 {sha}, expected {GGUF_SHA256}")

    import mlx.core as mx
    import mlx_lm
    from mlx_lm.sample_utils import make_sampler

    mx.set_default_device(mx.cpu)
    greedy = make_sampler(temp=0.0)
    tmp = tempfile.mkdtemp()
    try:
        mdir = os.path.join(tmp, "smollm2")
        subprocess.run([mlxn, "convert", "-i", gguf_path, "-o", mdir], check=True)
        model, tok = mlx_lm.load(mdir)

        def run(ids, max_tokens):
            """mlx-lm's streamed text, tokens, and the first near-tie step."""
            text, toks, cut, margins, finish = "", [], None, [], None
            for r in mlx_lm.stream_generate(model, tok, ids, max_tokens=max_tokens, sampler=greedy):
                text += r.text
                toks.append(int(r.token))
                lp = r.logprobs.astype(mx.float32)
                top2 = mx.topk(lp, 2)
                m = abs(float(top2[1]) - float(top2[0]))
                margins.append(m)
                if cut is None and m < NEAR_TIE:
                    cut = len(toks) - 1
                finish = r.finish_reason
            return text, toks, cut, min(margins), finish

        def prompt_ids(chat, system, messages):
            if not chat:
                return tok.encode(messages, add_special_tokens=True)
            msgs = ([{"role": "system", "content": system}] if system else []) + messages
            return tok.apply_chat_template(msgs, add_generation_prompt=True)

        os.makedirs(OUT, exist_ok=True)
        for f in os.listdir(OUT):
            os.remove(os.path.join(OUT, f))
        meta = {"mlx_version": mx.__version__, "mlx_lm_version": mlx_lm.__version__, "gguf": GGUF_NAME,
                "gguf_sha256": GGUF_SHA256, "converted_by": "mlxn convert -i " + GGUF_NAME,
                "near_tie": NEAR_TIE, "cases": {}}
        for name, chat, system, prompt in CASES:
            ids = prompt_ids(chat, system, prompt if not chat else [{"role": "user", "content": prompt}])
            text, toks, cut, margin, finish = run(ids, MAX_TOKENS)
            n = MAX_TOKENS
            if cut is not None:
                if cut < SHORT:
                    sys.exit(f"case {name}: near-tie at step {cut}: pick another prompt")
                n = cut
                text, toks, _, margin, finish = run(ids, n)
            short_text, _, _, _, _ = run(ids, min(SHORT, n))
            args = (["--chat"] if chat else []) + (["--system", system] if system else []) + ["-p", prompt]
            with open(os.path.join(OUT, name + ".args"), "w", encoding="utf-8") as f:
                f.write("\n".join(args) + "\n")
            with open(os.path.join(OUT, name + ".ids"), "w") as f:
                f.write(" ".join(str(i) for i in ids) + "\n")
            for suffix, k, t in ((".n", n, text), (".short.n", min(SHORT, n), short_text)):
                with open(os.path.join(OUT, name + suffix), "w") as f:
                    f.write(f"{k}\n")
                with open(os.path.join(OUT, name + suffix[:-2] + ".out"), "w", encoding="utf-8") as f:
                    f.write(t + "\n")
            meta["cases"][name] = {"max_tokens": n, "generated": len(toks), "min_margin": margin,
                                   "cut_at_near_tie": cut is not None, "finish": finish, "text": text}
            print(f"{name}: {len(toks)} tokens (max {n}), min margin {margin:.3f}: {json.dumps(text)}")

        # two chat turns, each generated afresh over the history, as `mlxn chat` renders it
        history, out = [], ""
        for turn in CHAT_TURNS:
            history.append({"role": "user", "content": turn})
            ids = prompt_ids(True, None, history)
            text, toks, cut, margin, finish = run(ids, MAX_TOKENS)
            if cut is not None or finish != "stop":
                sys.exit(f"chat turn {turn!r}: near-tie or no end within {MAX_TOKENS} tokens: pick another")
            history.append({"role": "assistant", "content": text})
            out += ">>> " + text + "\n"
            print(f"chat: {len(toks)} tokens, min margin {margin:.3f}: {json.dumps(text)}")
        with open(os.path.join(OUT, "chat.turns"), "w", encoding="utf-8") as f:
            f.write("\n".join(CHAT_TURNS) + "\n")
        with open(os.path.join(OUT, "chat.out"), "w", encoding="utf-8") as f:
            f.write(out)
        meta["chat"] = {"max_tokens": MAX_TOKENS, "history": history}
        with open(os.path.join(OUT, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1, ensure_ascii=False)
            f.write("\n")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
