"""mlx-lm loads and runs what `mlxn convert` writes.

Runs the mlxn binary ($MLXN, default build/mlxn) and checks its output with
mlx-lm, MLX and numpy (none of which mlx-native wrote):
  gguf     tests/golden/convert/tiny.gguf -> directory: mlx_lm.load (model
           and our tokenizer.json) runs it; its logits against mlx-lm on
           gguf-py's dequantization (golden "gguf"); our tokenizer.json
           encodes the golden text to the ids `tokenizers` gives with a
           tokenizer built from the same vocabulary; the Q4_0/Q4_1/Q8_0
           tensors are byte-identical to mx.load's own GGUF mapping (q/k
           rows un-permuted here); `mlxn eval --logits-out` writes a .npy
           numpy reads, equal to what mlx-lm computes within tolerance.
  hf       tests/golden/convert/hf_tiny with -q 4/64: mlx_lm.load runs ours
           and gives exactly the logits of mlx-lm's own conversion.
  random   tiny presets in several modes: mlx-lm runs them; its logits for
           fixed tokens ("case<i>": bf16 activations as mlx-lm runs them,
           "case<i>_f32": the same weights with f32 activations) are
           recorded in tests/golden/convert/random.safetensors for
           tests/test_convert_random.c (our runner on the same preset).
  big      (--big) every full-size preset quantized 4-bit: convert time, and
           mlx-lm loads it and runs one forward pass.
Results go to tests/golden/convert/check_results.json.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import mlx.core as mx
import mlx_lm
import numpy as np
from mlx_lm.utils import load_model

GOLD = os.path.join("tests", "golden", "convert")
MLXN = os.environ.get("MLXN", os.path.join("build", "mlxn"))
RANDOM_TOKENS = [1, 5, 9, 200, 17, 3, 250, 64]
# (preset, mlxn convert flags): the cases test_convert_random.c replays
RANDOM_CASES = [
    ("tiny-llama", []),
    ("tiny-llama", ["-q"]),
    ("tiny-qwen3", ["-q", "--bits", "3", "--group-size", "32"]),
    ("tiny-qwen3", ["--recipe", "mixed_4_6", "--group-size", "32"]),
    ("tiny-gemma3", ["-q", "--mode", "mxfp4"]),
    ("tiny-gemma3", ["-q", "--mode", "nvfp4"]),
    ("tiny-llama", ["-q", "--mode", "mxfp8"]),
]
BIG = ["smollm2-135m", "llama-3.2-1b", "qwen3-4b", "gemma-3-4b", "llama-3-8b"]

mx.set_default_device(mx.cpu)
results = {"mlx_version": mx.__version__, "mlx_lm_version": mlx_lm.__version__}


def run(*args):
    t = time.time()
    subprocess.run([MLXN, *args], check=True, stdout=subprocess.DEVNULL)
    return time.time() - t


def rel_diff(ref, got):
    return float(np.abs(ref - got).max() / ref.std())


def unpermute(a, heads):
    d = a.shape[0] // heads
    return a.reshape(heads, d // 2, 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape)


def check_gguf(tmp):
    gold = mx.load(os.path.join(GOLD, "logits.safetensors"))
    src = os.path.join(GOLD, "tiny.gguf")
    d = os.path.join(tmp, "gguf")
    run("convert", "-i", src, "-o", d)
    model, tok = mlx_lm.load(d)
    tokens = np.array(gold["tokens"]).tolist()
    ref = np.array(gold["gguf"])
    ours_in_mlx = np.array(model(mx.array([tokens]))[0].astype(mx.float32))
    r = {"mlx_lm_loads": True, "mlx_lm_logits_vs_gguf_py_max_rel": rel_diff(ref, ours_in_mlx)}
    # our tokenizer.json vs a tokenizer built from the same vocabulary
    _, meta = mx.load(os.path.join(GOLD, "logits.safetensors"), return_metadata=True)
    ids = tok.encode(meta["gguf_text"], add_special_tokens=False)
    r["tokenizer_matches"] = ids == np.array(gold["gguf_text_ids"]).tolist()
    # byte-identical to MLX's own GGUF mapping for the blocks MLX maps
    # (mx.load reads Q4_0/Q4_1/Q8_0 only: copy those tensors into a GGUF of their own)
    import gguf

    sub = os.path.join(tmp, "sub.gguf")
    rd = gguf.GGUFReader(src)
    wr = gguf.GGUFWriter(sub, "llama")
    kinds = (gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q8_0)
    for t in rd.tensors:
        if t.tensor_type in kinds:
            wr.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    mxw = mx.load(sub)
    ours = mx.load(os.path.join(d, "model.safetensors"))
    names = {"attn_q": ("self_attn.q_proj", 4), "attn_k": ("self_attn.k_proj", 2), "attn_v": ("self_attn.v_proj", 0),
             "ffn_up": ("mlp.up_proj", 0)}
    same = compared = 0
    for k, v in mxw.items():
        p = k.split(".")
        if p[0] == "blk" and p[2] in names:
            mod, heads = names[p[2]]
            ours_k = f"model.layers.{p[1]}.{mod}.{p[3]}"
        elif k.startswith("token_embd."):
            ours_k, heads = "model.embed_tokens." + p[1], 0
        else:
            continue
        a = np.array(v.view(mx.uint16) if v.dtype == mx.float16 else v)
        if heads:
            a = unpermute(a, heads)
        b = ours[ours_k]
        b = np.array(b.view(mx.uint16) if b.dtype == mx.float16 else b)
        compared += 1
        same += a.shape == b.shape and np.array_equal(a, b)
    r["tensors_identical_to_mx_load_gguf"] = f"{same}/{compared}"
    # mlxn eval's .npy
    npy = os.path.join(tmp, "l.npy")
    run("eval", "-m", d, "--tokens", " ".join(map(str, tokens)), "--logits-out", npy, "--quiet")
    ev = np.load(npy)
    r["eval_npy_shape"] = list(ev.shape)
    r["eval_vs_mlx_lm_max_rel"] = rel_diff(ours_in_mlx, ev)
    r["eval_vs_gguf_py_max_rel"] = rel_diff(ref, ev)
    assert r["tokenizer_matches"] and same == compared and r["eval_vs_mlx_lm_max_rel"] < 1e-2, r
    results["gguf"] = r


def check_hf(tmp):
    gold = mx.load(os.path.join(GOLD, "logits.safetensors"))
    d = os.path.join(tmp, "hf")
    run("convert", "-i", os.path.join(GOLD, "hf_tiny"), "-o", d, "-q", "--bits", "4", "--group-size", "64")
    model, tok = mlx_lm.load(d)
    got = np.array(model(mx.array([np.array(gold["tokens"]).tolist()]))[0].astype(mx.float32))
    ref = np.array(gold["q4g64"])
    results["hf_q4g64"] = {"mlx_lm_loads": True, "logits_identical_to_mlx_lm_conversion": bool(np.array_equal(ref, got))}
    assert np.array_equal(ref, got)


def check_random(tmp):
    out, rows = {}, []
    for i, (preset, flags) in enumerate(RANDOM_CASES):
        d = os.path.join(tmp, f"rand{i}")
        run("convert", "--random", preset, "--seed", "7", "-o", d, *flags)
        model, _ = load_model(__import__("pathlib").Path(d))
        l = np.array(model(mx.array([RANDOM_TOKENS]))[0].astype(mx.float32))
        npy = os.path.join(tmp, f"r{i}.npy")
        run("eval", "-m", d, "--tokens", " ".join(map(str, RANDOM_TOKENS)), "--logits-out", npy, "--quiet")
        ev = np.load(npy)
        out[f"case{i}"] = l
        # the same weights with f32 activations (quantized values unchanged)
        model.update(__import__("mlx.utils").utils.tree_map(
            lambda p: p.astype(mx.float32) if mx.issubdtype(p.dtype, mx.floating) else p, model.parameters()))
        out[f"case{i}_f32"] = np.array(model(mx.array([RANDOM_TOKENS]))[0].astype(mx.float32))
        rows.append({"preset": preset, "flags": " ".join(flags), "mlx_lm_loads": True,
                     "mlxn_eval_vs_mlx_lm_max_rel": rel_diff(l, ev)})
        shutil.rmtree(d)
    mx.save_safetensors(os.path.join(GOLD, "random.safetensors"), {k: mx.array(v) for k, v in out.items()},
                        metadata={"mlx_version": mx.__version__, "mlx_lm_version": mlx_lm.__version__,
                                  "tokens": json.dumps(RANDOM_TOKENS), "seed": "7",
                                  "cases": json.dumps(RANDOM_CASES)})
    results["random"] = rows


def check_big(tmp):
    rows = []
    for preset in BIG:
        d = os.path.join(tmp, preset)
        secs = run("convert", "--random", preset, "-q", "-o", d)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        t = time.time()
        model, _ = load_model(__import__("pathlib").Path(d))
        l = model(mx.array([[1, 2, 3]]))
        mx.eval(l)
        rows.append({"preset": preset, "convert_seconds": round(secs, 2), "bytes": size,
                     "mlx_lm_load_and_forward_seconds": round(time.time() - t, 2),
                     "logits_finite": bool(np.isfinite(np.array(l.astype(mx.float32))).all())})
        print(rows[-1])
        del model, l
        shutil.rmtree(d)
    results["big_presets_4bit"] = rows


def main():
    if not os.access(MLXN, os.X_OK):
        sys.exit(f"no mlxn binary at {MLXN} (set MLXN)")
    tmp = tempfile.mkdtemp()
    try:
        check_gguf(tmp)
        check_hf(tmp)
        check_random(tmp)
        if "--big" in sys.argv:
            check_big(tmp)
    finally:
        shutil.rmtree(tmp)
    path = os.path.join(GOLD, "check_results.json")
    old = json.load(open(path)) if os.path.exists(path) else {}
    if "big_presets_4bit" not in results and "big_presets_4bit" in old:
        results["big_presets_4bit"] = old["big_presets_4bit"]
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
