#!/usr/bin/env python3
"""A Gemma 3 text GGUF (general.architecture = "gemma3", as llama.cpp's
convert_hf_to_gguf writes it) -> a Hugging Face style directory that mlxn
and mlx-lm load: config.json (model_type gemma3_text) and model.safetensors
(f32, every tensor dequantized exactly as ggml defines its blocks).

mlxn's own GGUF converter reads the llama architecture only; this script is
the way to a second, differently shaped real model (head_dim 256, one kv
head, sliding-window layers) for the KV-cache measurements.

What llama.cpp changed on the way to GGUF, undone here:
  - every "*norm.weight" was stored as w + 1 (Gemma's RMSNorm multiplies
    by 1 + w; ggml's by w): we subtract 1 (in f32; the stored values are f32);
  - tensor names: token_embd -> model.embed_tokens, output_norm ->
    model.norm, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
    attn_q_norm, attn_k_norm, post_attention_norm, ffn_norm, ffn_gate,
    ffn_up, ffn_down, post_ffw_norm} -> model.layers.N.{input_layernorm,
    self_attn.{q,k,v,o}_proj, self_attn.{q,k}_norm,
    post_attention_layernorm, pre_feedforward_layernorm,
    mlp.{gate,up,down}_proj, post_feedforward_layernorm};
  - q/k rows are NOT permuted for Gemma (ggml ropes it NeoX-style, the
    checkpoint's own half-split order), so nothing to undo there.
Not in the GGUF and taken from Gemma 3's published text config (what
llama.cpp hardcodes for this architecture): a global layer every 6th
(sliding_window_pattern 6), local rope base 10000, query_pre_attn_scalar =
head_dim, gelu_pytorch_tanh, tied embeddings.

Usage: gemma3_gguf_to_hf.py MODEL.gguf OUT_DIR   (needs gguf, numpy,
safetensors: tests/golden/requirements.txt). The tokenizer stays in the
GGUF: `mlxn tokenize -m MODEL.gguf` gives the ids.
"""
import json
import os
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize
from safetensors.numpy import save_file

LAYER = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "post_ffw_norm": "post_feedforward_layernorm",
}
TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm"}


def field(r, key, default=None):
    f = r.fields.get(key)
    if f is None:
        if default is None:
            sys.exit(f"{key}: missing from the GGUF")
        return default
    v = f.parts[f.data[0]]
    return v.tobytes().decode() if f.types[0].name == "STRING" else v.item()


def hf_name(gguf_name):
    base, _, suffix = gguf_name.rpartition(".")
    if suffix != "weight":
        sys.exit(f"tensor {gguf_name}: only .weight tensors are expected in a Gemma 3 GGUF")
    if base in TOP:
        return TOP[base] + ".weight"
    parts = base.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in LAYER:
        return f"model.layers.{int(parts[1])}.{LAYER[parts[2]]}.weight"
    sys.exit(f"tensor {gguf_name}: not part of a Gemma 3 text model")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    r = GGUFReader(src)
    arch = field(r, "general.architecture")
    if arch != "gemma3":
        sys.exit(f"{src}: general.architecture is {arch!r}, expected 'gemma3'")
    g = lambda k, d=None: field(r, "gemma3." + k, d)
    hidden, layers, heads = g("embedding_length"), g("block_count"), g("attention.head_count")
    head_dim = g("attention.key_length")
    if g("attention.value_length", head_dim) != head_dim:
        sys.exit("key_length != value_length is not supported")
    tensors = {}
    for t in r.tensors:
        name = hf_name(t.name)
        qt = GGMLQuantizationType(t.tensor_type)
        # ggml lists dims fastest first; dequantize gives the row-major
        # [rows, cols] array, the checkpoint's [out_features, in_features].
        w = dequantize(t.data, qt).astype(np.float32).reshape(tuple(int(d) for d in reversed(t.shape)))
        if name.endswith("norm.weight"):
            w = w - np.float32(1.0)
        tensors[name] = np.ascontiguousarray(w)
    vocab = tensors["model.embed_tokens.weight"].shape[0]
    pattern = 6
    cfg = {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": g("feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": g("attention.head_count_kv"),
        "head_dim": head_dim,
        "vocab_size": vocab,
        "rms_norm_eps": g("attention.layer_norm_rms_epsilon"),
        "rope_theta": g("rope.freq_base"),
        "rope_local_base_freq": 10000.0,
        "rope_scaling": None,
        "sliding_window": g("attention.sliding_window"),
        "sliding_window_pattern": pattern,
        "layer_types": ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(layers)],
        "query_pre_attn_scalar": head_dim,
        "max_position_embeddings": g("context_length"),
        "hidden_activation": "gelu_pytorch_tanh",
        "attn_logit_softcapping": None,
        "final_logit_softcapping": None,
        "tie_word_embeddings": True,
        "bos_token_id": field(r, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": field(r, "tokenizer.ggml.eos_token_id"),
        "pad_token_id": field(r, "tokenizer.ggml.padding_token_id", 0),
        "torch_dtype": "float32",
    }
    os.makedirs(out, exist_ok=True)
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print(f"wrote {out}: {len(tensors)} tensors, vocab {vocab}, {layers} layers, head_dim {head_dim}")


if __name__ == "__main__":
    main()
