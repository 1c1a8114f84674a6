"""Golden models for the model runner (tests/test_models.c), built, saved and
run by mlx-lm itself: the reference no one here wrote.

For every case below the script
  1. builds a tiny random model with mlx-lm's own class
     (mlx_lm.models.<arch>.Model(ModelArgs.from_dict(config))),
  2. quantizes it (when the case says so) with mlx_lm.utils.quantize_model,
     which is what `mlx_lm.convert -q` runs, including per-layer overrides
     that it records in config["quantization"],
  3. saves it with mlx_lm.utils.save_model / save_config into
     tests/golden/models/<case>/ (config.json, model.safetensors and the
     model.safetensors.index.json that mlx-lm writes),
  4. loads that directory back with mlx_lm.utils.load_model (so the files
     are proven loadable by mlx-lm) and records, on the CPU stream:
       full    f32 [T, V]  logits of the whole prompt in one call, no cache
       steps   i32 [S]     how the same tokens are fed through a cache made
                           by the model's make_cache() / make_prompt_cache:
                           a prefill, a second multi-token chunk, then one
                           token at a time
       stepped f32 [T, V]  the logits of that cached run, every position
       tokens  i32 [T]     the token ids
       full_f32 f32 [T, V] (bf16 models only) the logits mlx-lm computes
                           from the same weights with f32 activations
     into tests/golden/models/<case>/logits.safetensors, with the mlx and
     mlx-lm versions in the metadata.

Gemma cases use a sliding window (8) shorter than the prompt (21 tokens),
so the RotatingKVCache path of mlx-lm is exercised in prefill (a chunk
that overflows the window) and decode (in-place rotation).

Run from the repository root (deterministic: fixed seeds).
"""
import importlib
import json
import os
import shutil

import mlx.core as mx
import mlx.nn as nn
import mlx_lm
import numpy as np
from mlx.utils import tree_flatten, tree_map_with_path
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.utils import load_model, quantize_model, save_config, save_model

OUT = os.path.join("tests", "golden", "models")
T = 21
STEPS = [11, 4, 1, 1, 1, 1, 1, 1]  # sums to T

mx.set_default_device(mx.cpu)


def llama_cfg(**kw):
    cfg = {
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": 256,
        "rope_theta": 10000.0,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
    }
    cfg.update(kw)
    return cfg


def qwen_cfg(model_type, **kw):
    cfg = {
        "model_type": model_type,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "rms_norm_eps": 1e-6,
        "vocab_size": 256,
        "rope_theta": 1000000.0,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
    }
    cfg.update(kw)
    return cfg


def gemma_text_cfg(**kw):
    cfg = {
        "model_type": "gemma3_text",
        "hidden_size": 64,
        "num_hidden_layers": 3,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "rms_norm_eps": 1e-6,
        "vocab_size": 256,
        "rope_theta": 1000000.0,
        "rope_local_base_freq": 10000.0,
        "query_pre_attn_scalar": 24,
        "sliding_window": 8,
        "sliding_window_pattern": 2,
        "max_position_embeddings": 4096,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0},
    }
    cfg.update(kw)
    return cfg


def randomize(model, seed):
    """Random weights with a spread that makes every part of the block
    matter: norm weights away from 1 (and from 0 for Gemma's 1 + w),
    non-zero biases, embeddings of unit variance."""
    params = tree_flatten(model.parameters())
    keys = mx.random.split(mx.random.key(seed), len(params))
    new = []
    for i, (name, p) in enumerate(params):
        k = keys[i]
        if name.endswith("norm.weight"):
            v = 0.2 * mx.random.normal(p.shape, key=k)
            if "gemma" not in type(model).__module__:
                v = 1.0 + v
        elif name.endswith(".bias"):
            v = 0.1 * mx.random.normal(p.shape, key=k)
        elif "embed_tokens" in name:
            v = mx.random.normal(p.shape, key=k)
        else:
            fan_in = p.shape[-1]
            v = mx.random.normal(p.shape, key=k) * (1.0 / np.sqrt(fan_in))
        new.append((name, v.astype(p.dtype)))
    model.load_weights(new)
    mx.eval(model.parameters())


def build(cfg):
    arch = cfg["model_type"]
    module = importlib.import_module(f"mlx_lm.models.{arch}")
    return module.Model(module.ModelArgs.from_dict(cfg))


def untie_gemma(model, tie):
    """gemma3_text always builds an lm_head; its sanitize drops it (and ties
    the output to the embedding) when a checkpoint has none."""
    lm = model.language_model if hasattr(model, "language_model") else model
    if tie:
        lm.tie_word_embeddings = True
        lm.pop("lm_head")


def make_case(name, cfg, seed, dtype=mx.float32, quant=None, tie_gemma=None):
    """quant: None, or dict(bits=, group_size=, mode=, predicate=)."""
    path = os.path.join(OUT, name)
    if os.path.isdir(path):
        shutil.rmtree(path)
    mx.random.seed(seed)
    model = build(cfg)
    if tie_gemma is not None:
        untie_gemma(model, tie_gemma)
    randomize(model, seed)
    if dtype != mx.float32:
        model.set_dtype(dtype)
    cfg = dict(cfg)
    if quant is not None:
        model, cfg = quantize_model(
            model,
            cfg,
            quant["group_size"],
            quant["bits"],
            mode=quant.get("mode", "affine"),
            quant_predicate=quant.get("predicate"),
        )
    save_model(path, model)
    save_config(cfg, os.path.join(path, "config.json"))

    # The oracle: what mlx-lm computes from the directory it just wrote.
    model, _ = load_model(__import__("pathlib").Path(path))
    rng = np.random.RandomState(seed)
    tokens = rng.randint(0, cfg.get("vocab_size", 256), size=T).astype(np.int32)
    toks = mx.array(tokens)[None]
    full = model(toks).astype(mx.float32)[0]
    cache = make_prompt_cache(model)
    outs = []
    pos = 0
    for n in STEPS:
        outs.append(model(toks[:, pos : pos + n], cache=cache).astype(mx.float32)[0])
        pos += n
    stepped = mx.concatenate(outs, axis=0)
    arrays = {
        "tokens": mx.array(tokens),
        "steps": mx.array(np.array(STEPS, dtype=np.int32)),
        "full": full,
        "stepped": stepped,
    }
    if dtype != mx.float32:
        # the same weights run by mlx-lm with f32 activations: what our f32
        # dataflow must match tightly (the bf16 run differs by bf16 rounding)
        model.set_dtype(mx.float32)
        arrays["full_f32"] = model(toks).astype(mx.float32)[0]
    mx.eval(arrays)
    meta = {
        "mlx_version": mx.__version__,
        "mlx_lm_version": mlx_lm.__version__,
        "model_dtype": str(dtype),
        "cache_types": ",".join(type(c).__name__ for c in cache),
    }
    mx.save_safetensors(
        os.path.join(path, "logits.safetensors"),
        arrays,
        metadata=meta,
    )
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    print(f"{name:28s} {size / 1024:7.1f} KB  {meta['cache_types']}")


def override_predicate(path, module):
    """A per-layer recipe: down_proj of layer 0 in 6 bits/g64, q_proj of
    layer 1 left unquantized, the rest at the default."""
    if path == "model.layers.0.mlp.down_proj":
        return {"group_size": 64, "bits": 6}
    if path == "model.layers.1.self_attn.q_proj":
        return False
    return True


def no_embedding(path, module):
    return not path.endswith("embed_tokens")


def main():
    os.makedirs(OUT, exist_ok=True)
    # llama, f32, unquantized, tied embeddings, GQA 4/2
    make_case("llama_f32", llama_cfg(intermediate_size=48), 1)
    # llama-3 rope scaling, attention and mlp biases, untied head, 4-bit g64
    make_case(
        "llama3_bias_q4g64",
        llama_cfg(
            intermediate_size=128,
            attention_bias=True,
            mlp_bias=True,
            tie_word_embeddings=False,
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        ),
        2,
        quant={"bits": 4, "group_size": 64},
    )
    # 3-bit g32 with per-layer overrides (6-bit layer, an unquantized layer),
    # quantized tied embedding used as the head; a sliding layer via
    # layer_types
    make_case(
        "llama_q3g32_mixed",
        llama_cfg(
            intermediate_size=128,
            layer_types=["sliding_attention", "full_attention"],
            sliding_window=6,
        ),
        3,
        quant={"bits": 3, "group_size": 32, "predicate": override_predicate},
    )
    # qwen2 (q/k/v bias), 5-bit g128, tied
    make_case(
        "qwen2_q5g128",
        qwen_cfg("qwen2", hidden_size=128, intermediate_size=256, head_dim=None, num_key_value_heads=2),
        4,
        quant={"bits": 5, "group_size": 128},
    )
    # qwen3 (q/k norm), 6-bit g128, untied, unquantized embedding
    make_case(
        "qwen3_q6g128",
        qwen_cfg("qwen3", hidden_size=128, intermediate_size=128, vocab_size=128, tie_word_embeddings=False),
        5,
        quant={"bits": 6, "group_size": 128, "predicate": no_embedding},
    )
    # qwen3 8-bit g64
    make_case("qwen3_q8g64", qwen_cfg("qwen3"), 6, quant={"bits": 8, "group_size": 64})
    # qwen3 mxfp4 and nvfp4
    make_case("qwen3_mxfp4", qwen_cfg("qwen3"), 7, quant={"bits": 4, "group_size": 32, "mode": "mxfp4"})
    make_case("qwen3_nvfp4", qwen_cfg("qwen3"), 8, quant={"bits": 4, "group_size": 16, "mode": "nvfp4"})
    # gemma3_text f32 unquantized, tied, window 8 < prompt, pattern 2
    make_case("gemma3_text_f32", gemma_text_cfg(intermediate_size=32), 9, tie_gemma=True)
    # gemma3_text untied, 4-bit g32 (linear rope scaling on global layers)
    make_case("gemma3_text_q4g32", gemma_text_cfg(num_hidden_layers=2), 10, tie_gemma=False,
              quant={"bits": 4, "group_size": 32})
    # multimodal gemma3 checkpoint layout (language_model. prefix), 4-bit g64
    mm = {
        "model_type": "gemma3",
        "vocab_size": 256,
        "text_config": {k: v for k, v in gemma_text_cfg(num_hidden_layers=2).items() if k != "vocab_size"},
    }
    mm["text_config"]["model_type"] = "gemma3_text"
    make_case("gemma3_mm_q4g64", mm, 11, tie_gemma=True, quant={"bits": 4, "group_size": 64})
    # one bf16 model (MLX runs it in bf16; our activations are f32)
    make_case("qwen3_bf16", qwen_cfg("qwen3", intermediate_size=64), 12, dtype=mx.bfloat16)


if __name__ == "__main__":
    main()
