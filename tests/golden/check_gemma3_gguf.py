"""tools/gemma3_gguf_to_hf.py against mlx-lm (not part of `make check`:
needs tests/golden/requirements.txt).

  tiny  a random gemma3_text model (mlx-lm, seeded, 7 layers so both
        sliding and global layers occur, window 8 < 24 tokens) is written
        as GGUF the way llama.cpp's convert_hf_to_gguf writes Gemma 3
        (names, every norm stored as w + 1, matrices Q8_0, norms f32);
        the script converts it back; mlx-lm runs the result and must give
        the logits of the original model whose matrices hold the
        dequantized Q8_0 values (the oracle: mlx-lm's own model, never
        through our script), and `mlxn eval --logits-out` on the result
        must agree with them too.
  real  (when the directory tests/golden/fetch_gemma3.sh writes exists)
        the first 64 ids of the committed text through Gemma 3 270M: mlxn
        against mlx-lm.
Usage: python tests/golden/check_gemma3_gguf.py   (MLXN: the mlxn binary,
default build/mlxn; run from the repository root)
"""
import json
import os
import subprocess
import sys
import tempfile

import mlx.core as mx
import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import dequantize, quantize
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.models import gemma3_text
from mlx_lm.utils import load_model

MLXN = os.environ.get("MLXN", os.path.join("build", "mlxn"))
SCRIPT = os.path.join("tools", "gemma3_gguf_to_hf.py")
SEED = 20261126
TOKENS = [2, 17, 250, 5, 99, 3, 64, 128, 7, 7, 200, 31, 1, 44, 180, 9, 10, 260, 77, 3, 141, 12, 8, 290]

GGUF_LAYER = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "post_feedforward_layernorm": "post_ffw_norm",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    p = hf.split(".")
    assert p[0] == "model" and p[1] == "layers" and p[-1] == "weight", hf
    return f"blk.{p[2]}.{GGUF_LAYER['.'.join(p[3:-1])]}.weight"


def mlxn_logits(model_dir, ids, tmp):
    out = os.path.join(tmp, "logits.npy")
    subprocess.run([MLXN, "eval", "-m", model_dir, "--tokens", " ".join(map(str, ids)), "--logits-out", out, "--quiet"],
                   check=True)
    return np.load(out)


def compare(name, ref, got, tol):
    d = float(np.abs(ref - got).max())
    scale = float(np.abs(ref).max())
    ok = bool(np.isfinite(got).all()) and d <= tol * scale and (ref.argmax(-1) == got.argmax(-1)).all()
    print(f"{name}: max |diff| {d:.3g} (max |ref| {scale:.3g}, bound {tol:g} x), top-1 equal: {'ok' if ok else 'FAIL'}")
    return ok


def tiny(tmp):
    args = gemma3_text.ModelArgs(model_type="gemma3_text", hidden_size=64, num_hidden_layers=7, intermediate_size=96,
                                 num_attention_heads=2, head_dim=64, rms_norm_eps=1e-6, vocab_size=300,
                                 num_key_value_heads=1, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                                 query_pre_attn_scalar=64, sliding_window=8, sliding_window_pattern=6,
                                 max_position_embeddings=512)
    mx.random.seed(SEED)
    model = gemma3_text.Model(args)
    rng = np.random.default_rng(SEED)
    params = {}
    w = GGUFWriter(os.path.join(tmp, "tiny.gguf"), "gemma3")
    w.add_context_length(512)
    w.add_embedding_length(64)
    w.add_block_count(7)
    w.add_feed_forward_length(96)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_key_length(64)
    w.add_value_length(64)
    w.add_rope_freq_base(1000000.0)
    w.add_sliding_window(8)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_pad_token_id(0)
    for name, p in tree_flatten(model.parameters()):
        if name == "lm_head.weight":
            continue  # tied: mlx-lm's sanitize drops it
        a = np.array(p, dtype=np.float32)
        if name.endswith("norm.weight"):
            a = rng.normal(0, 0.5, a.shape).astype(np.float32)  # Gemma's norms multiply by 1 + w
            params[name] = a
            w.add_tensor(gguf_name(name), a + np.float32(1.0))
        else:
            a = rng.normal(0, 0.08, a.shape).astype(np.float32)
            q = quantize(a, GGMLQuantizationType.Q8_0)
            params[name] = dequantize(q, GGMLQuantizationType.Q8_0).reshape(a.shape).astype(np.float32)
            w.add_tensor(gguf_name(name), q, raw_dtype=GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    weights = model.sanitize({k: mx.array(v) for k, v in params.items()})  # no lm_head: tied
    model.load_weights(list(weights.items()))
    ref = np.array(model(mx.array([TOKENS]))[0].astype(mx.float32))

    out = os.path.join(tmp, "tiny-hf")
    subprocess.run([sys.executable, SCRIPT, os.path.join(tmp, "tiny.gguf"), out], check=True)
    cfg = json.load(open(os.path.join(out, "config.json")))
    ok = all(cfg[k] == getattr(args, k) for k in ("hidden_size", "num_hidden_layers", "intermediate_size",
                                                  "num_attention_heads", "num_key_value_heads", "head_dim",
                                                  "vocab_size", "sliding_window", "sliding_window_pattern",
                                                  "rope_theta", "rope_local_base_freq", "query_pre_attn_scalar"))
    print(f"tiny: config.json keys as the original: {'ok' if ok else 'FAIL'}")
    conv, _ = load_model(__import__("pathlib").Path(out))
    got = np.array(conv(mx.array([TOKENS]))[0].astype(mx.float32))
    ok &= compare("tiny: mlx-lm on the converted directory vs the original", ref, got, 1e-5)
    ok &= compare("tiny: mlxn eval on the converted directory vs the original", ref, mlxn_logits(out, TOKENS, tmp), 1e-4)
    return ok


def real(tmp):
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "mlx-native")
    d, g = os.path.join(cache, "gemma-3-270m-f32"), os.path.join(cache, "gemma-3-270m-q4_k_m.gguf")
    if not os.path.isdir(d) or not os.path.isfile(g):
        print("real: skipped (run tests/golden/fetch_gemma3.sh first)")
        return True
    text = open(os.path.join("tests", "golden", "kv_quality", "declaration.txt")).read()
    ids = [int(x) for x in subprocess.run([MLXN, "tokenize", "-m", g], input=text, capture_output=True, text=True,
                                          check=True).stdout.split()][:64]
    model, _ = load_model(__import__("pathlib").Path(d))
    ref = np.array(model(mx.array([ids]))[0].astype(mx.float32))
    return compare("real: mlxn vs mlx-lm, Gemma 3 270M, 64 tokens", ref, mlxn_logits(d, ids, tmp), 1e-4)


def main():
    print(f"mlx {mx.__version__}, seed {SEED}")
    with tempfile.TemporaryDirectory() as tmp:
        ok = tiny(tmp)
        ok &= real(tmp)
    print("all ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
