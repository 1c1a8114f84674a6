"""Goldens for convert (tests/test_convert.c, tests/test_gguf_model.c),
made by mlx-lm, MLX and gguf-py: none of it by mlx-native.

Writes into tests/golden/convert/:
  hf_tiny/            a tiny Hugging Face llama checkpoint (bf16, untied
                      head, byte-level tokenizer): the input of the HF cases.
  mlxlm_<case>/       what mlx_lm.convert writes from hf_tiny for each case
                      below (config.json and model.safetensors; tensors
                      identical to the input's are left out and listed in
                      the metadata key "same_as_input"): our convert must
                      produce the same tensors byte for byte and the same
                      "quantization" object. In logits.safetensors:
                      "<case>_f32" f32 [T, V]: mlx-lm's logits of that model
                      run with f32 activations (every float tensor upcast;
                      the quantized values are unchanged), and "q4g64":
                      mlx-lm's own bf16 run of that case.
  tiny.gguf           a tiny llama GGUF (gguf-py's writer) with q/k rows
                      permuted as llama.cpp's convert_hf_to_gguf permutes
                      them, and the block types token_embd Q8_0, attn_q Q4_0,
                      attn_k Q4_1, attn_v Q8_0, attn_output F16, ffn_gate
                      F32 / BF16 / Q8_0, ffn_up Q4_0, ffn_down Q4_K / Q5_K /
                      Q6_K (layers 0/1/2), output F16, norms F32; a byte-level BPE vocabulary (special tokens,
                      256 byte symbols, three merges), pre-tokenizer "smollm".
                      In logits.safetensors: "gguf" f32 [T, V]: mlx-lm's llama
                      (f32) run on gguf-py's dequantization of every tensor,
                      q/k rows put back in the checkpoint's order.
                      "gguf_text_ids": the ids the Hugging Face `tokenizers`
                      library gives GGUF_TEXT with a tokenizer built directly
                      from the same vocabulary (the text is in the metadata).
  mini_<case>.gguf    a 1-layer f32 llama GGUF (hidden 16, vocab 8): "ok", and
                      bad inputs: a missing tensor, an extra tensor, a
                      mis-shaped tensor, llama.vocab_size disagreeing with
                      the embedding, an unsupported architecture.
  logits.safetensors  the above plus "tokens" i32 [T].

Deterministic (fixed seeds). Run from the repository root with the python
that has tests/golden/requirements.txt (and `tokenizers`).
"""
import json
import os
import shutil
import tempfile

import gguf
import mlx.core as mx
import mlx_lm
import numpy as np
from gguf import GGMLQuantizationType as Q
from mlx.utils import tree_flatten, tree_map
from mlx_lm.convert import convert
from mlx_lm.models import llama
from mlx_lm.utils import load_model

OUT = os.path.join("tests", "golden", "convert")
TOKENS = [3, 71, 200, 5, 17, 99, 250, 128, 64, 1, 42, 180]
GGUF_TEXT = "the cat saw 2024 thethe <|im_end|>\n"

mx.set_default_device(mx.cpu)
rng = np.random.default_rng(20250611)

HF_CFG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "vocab_size": 256,
    "rope_theta": 10000.0,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}

# case -> mlx_lm.convert arguments
CASES = {
    "q4g64": dict(quantize=True, q_bits=4, q_group_size=64),
    "q5g128": dict(quantize=True, q_bits=5, q_group_size=128),  # only down_proj (in = 128) fits
    "q8g32": dict(quantize=True, q_bits=8, q_group_size=32, dtype="float16"),
    "mixed_3_6": dict(quantize=True, q_group_size=64, quant_predicate="mixed_3_6"),
    "mixed_2_6": dict(quantize=True, q_group_size=32, quant_predicate="mixed_2_6"),
    "mxfp4": dict(quantize=True, q_mode="mxfp4"),
}


def byte_vocab():
    from tokenizers import pre_tokenizers

    return sorted(pre_tokenizers.ByteLevel.alphabet())


def write_hf_tiny(d):
    os.makedirs(d, exist_ok=True)
    model = llama.Model(llama.ModelArgs.from_dict(HF_CFG))
    params = tree_flatten(model.parameters())
    keys = mx.random.split(mx.random.key(7), len(params))
    new = []
    for (name, p), k in zip(params, keys):
        if name.endswith("norm.weight"):
            v = 1.0 + 0.2 * mx.random.normal(p.shape, key=k)
        elif "embed_tokens" in name:
            v = mx.random.normal(p.shape, key=k)
        else:
            v = mx.random.normal(p.shape, key=k) / np.sqrt(p.shape[-1])
        new.append((name, v.astype(mx.bfloat16)))
    mx.save_safetensors(os.path.join(d, "model.safetensors"), dict(new), metadata={"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(HF_CFG, f, indent=2)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {c: i for i, c in enumerate(byte_vocab())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "Ċ", "bos_token": "Ā"}, f, indent=2)


def logits_of(model):
    return np.array(model(mx.array([TOKENS]))[0].astype(mx.float32))


def f32_model(model):
    model.update(tree_map(lambda p: p.astype(mx.float32) if mx.issubdtype(p.dtype, mx.floating) else p,
                          model.parameters()))
    return model


def mlxlm_cases(hf, out):
    for case, kw in CASES.items():
        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "m")
        convert(hf, mlx_path=path, **kw)
        dst = os.path.join(OUT, "mlxlm_" + case)
        shutil.rmtree(dst, ignore_errors=True)
        os.makedirs(dst)
        shutil.copy(os.path.join(path, "config.json"), dst)
        # tensors identical to the input's are left out (listed in the metadata)
        src = mx.load(os.path.join(hf, "model.safetensors"))
        conv = mx.load(os.path.join(path, "model.safetensors"))
        keep, same = {}, []
        for k, v in conv.items():
            if k in src and src[k].dtype == v.dtype and src[k].shape == v.shape and mx.array_equal(src[k], v).item():
                same.append(k)
            else:
                keep[k] = v
        mx.save_safetensors(os.path.join(dst, "model.safetensors"), keep,
                            metadata={"format": "mlx", "same_as_input": ",".join(sorted(same))})
        model, _ = load_model(mx_path(path))
        if case == "q4g64":
            out[case] = logits_of(model)  # bf16 activations, as mlx-lm runs it
        out[case + "_f32"] = logits_of(f32_model(model))
        shutil.rmtree(tmp)


def mx_path(p):
    from pathlib import Path

    return Path(p)


# ---- the tiny GGUF ----

G = dict(hidden=64, layers=3, inter=256, heads=4, kv=2, eps=1e-5, theta=10000.0, ctx=2048)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he"]


def gguf_vocab():
    toks = SPECIALS + byte_vocab() + ["Ġt", "he", "Ġthe"]
    types = [3] * len(SPECIALS) + [1] * (len(toks) - len(SPECIALS))
    return toks, types


def permute(w, n_head):
    """convert_hf_to_gguf's reordering of q/k rows for ggml's rope."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def f16b(x):
    return np.asarray([x], dtype=np.float32).astype(np.float16).view(np.uint8)


def kquant(qtype, rows, cols):
    """Random valid K-quant blocks with a weight-like spread (centred)."""
    blocks = []
    for _ in range(rows * cols // 256):
        if qtype == Q.Q6_K:
            d = f16b(rng.uniform(2e-5, 6e-5))
            ql = rng.integers(0, 256, 128, dtype=np.uint8)
            qh = rng.integers(0, 256, 64, dtype=np.uint8)
            sc = rng.integers(16, 64, 16).astype(np.int8).view(np.uint8)
            blocks.append(np.concatenate([ql, qh, sc, d]))
            continue
        levels = 15.0 if qtype == Q.Q4_K else 31.0
        dv = rng.uniform(1e-4, 2e-4)
        d, dmin = f16b(dv), f16b(dv * levels / 2)  # min = d * m * levels/2 centres the codes when m = sc
        s = rng.integers(8, 64, 8)
        sc = np.zeros(12, np.uint8)
        for j in range(8):  # the 6-bit scale and min of sub-block j (m = sc)
            if j < 4:
                sc[j] = s[j]
                sc[j + 4] = s[j]
            else:
                sc[j + 4] = (s[j] & 15) | ((s[j] & 15) << 4)
                sc[j - 4] |= (s[j] >> 4) << 6
                sc[j] |= (s[j] >> 4) << 6
        qs = rng.integers(0, 256, 128, dtype=np.uint8)
        if qtype == Q.Q4_K:
            blocks.append(np.concatenate([d, dmin, sc, qs]))
        else:
            qh = rng.integers(0, 256, 32, dtype=np.uint8)
            blocks.append(np.concatenate([d, dmin, sc, qh, qs]))
    return np.concatenate(blocks).reshape(rows, -1)


def write_gguf(path):
    H, I, NH, NKV, L = G["hidden"], G["inter"], G["heads"], G["kv"], G["layers"]
    D = H // NH
    toks, types = gguf_vocab()
    V = len(toks)
    w = gguf.GGUFWriter(None, "llama")
    w.add_name("tiny test llama")
    w.add_block_count(L)
    w.add_context_length(G["ctx"])
    w.add_embedding_length(H)
    w.add_feed_forward_length(I)
    w.add_head_count(NH)
    w.add_head_count_kv(NKV)
    w.add_layer_norm_rms_eps(G["eps"])
    w.add_rope_freq_base(G["theta"])
    w.add_rope_dimension_count(D)
    w.add_vocab_size(V)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_merges(MERGES)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}")
    ref = {}  # mlx-lm name -> f32 array in the checkpoint's order

    def add(gname, mname, x, qtype, perm_heads=0):
        x = x.astype(np.float32)
        stored = permute(x, perm_heads) if perm_heads else x
        if qtype == Q.F32:
            data, raw = stored, None
        elif qtype == Q.F16:
            data, raw = stored.astype(np.float16), None
        else:
            data, raw = gguf.quants.quantize(stored, qtype), qtype
        w.add_tensor(gname, data, raw_dtype=raw)
        deq = stored if qtype == Q.F32 else gguf.quants.dequantize(data.view(np.uint8) if raw else data, qtype)
        deq = np.asarray(deq, dtype=np.float32).reshape(x.shape)
        if perm_heads:  # back to the checkpoint's order: the inverse permutation
            deq = deq.reshape(perm_heads, deq.shape[0] // perm_heads // 2, 2, *deq.shape[1:]).swapaxes(1, 2).reshape(x.shape)
        ref[mname] = deq

    def add_k(gname, mname, qtype, rows, cols):
        raw = kquant(qtype, rows, cols)
        w.add_tensor(gname, raw, raw_dtype=qtype)
        ref[mname] = np.asarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32).reshape(rows, cols)

    lin = lambda o, i: rng.standard_normal((o, i)) / np.sqrt(i)
    add("token_embd.weight", "model.embed_tokens.weight", rng.standard_normal((V, H)), Q.Q8_0)
    add("output_norm.weight", "model.norm.weight", 1 + 0.2 * rng.standard_normal(H), Q.F32)
    add("output.weight", "lm_head.weight", lin(V, H), Q.F16)
    for l in range(L):
        p, m = f"blk.{l}.", f"model.layers.{l}."
        add(p + "attn_norm.weight", m + "input_layernorm.weight", 1 + 0.2 * rng.standard_normal(H), Q.F32)
        add(p + "ffn_norm.weight", m + "post_attention_layernorm.weight", 1 + 0.2 * rng.standard_normal(H), Q.F32)
        add(p + "attn_q.weight", m + "self_attn.q_proj.weight", lin(NH * D, H), Q.Q4_0, NH)
        add(p + "attn_k.weight", m + "self_attn.k_proj.weight", lin(NKV * D, H), Q.Q4_1, NKV)
        add(p + "attn_v.weight", m + "self_attn.v_proj.weight", lin(NKV * D, H), Q.Q8_0)
        add(p + "attn_output.weight", m + "self_attn.o_proj.weight", lin(H, NH * D), Q.F16)
        add(p + "ffn_gate.weight", m + "mlp.gate_proj.weight", lin(I, H), [Q.F32, Q.BF16, Q.Q8_0][l])
        add(p + "ffn_up.weight", m + "mlp.up_proj.weight", lin(I, H), Q.Q4_0)
        add_k(p + "ffn_down.weight", m + "mlp.down_proj.weight", [Q.Q4_K, Q.Q5_K, Q.Q6_K][l], H, I)
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    cfg = {"model_type": "llama", "hidden_size": H, "num_hidden_layers": L, "intermediate_size": I,
           "num_attention_heads": NH, "num_key_value_heads": NKV, "rms_norm_eps": G["eps"], "vocab_size": V,
           "rope_theta": G["theta"], "tie_word_embeddings": False}
    model = llama.Model(llama.ModelArgs.from_dict(cfg))
    model.load_weights([(k, mx.array(v)) for k, v in ref.items()], strict=True)
    return logits_of(model)


def write_mini(path, mutate):
    """A 1-layer f32 llama GGUF of hidden 16, vocab 8, changed by `mutate`
    (bad-input cases for the converter and loader)."""
    H, I, NH, V = 16, 16, 2, 8
    arch = "qwen2" if mutate == "arch" else "llama"
    w = gguf.GGUFWriter(None, arch)
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(H)
    w.add_feed_forward_length(I)
    w.add_head_count(NH)
    w.add_head_count_kv(NH)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(V + 1 if mutate == "vocab" else V)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(V)])
    w.add_token_merges([])
    tensors = {"token_embd.weight": (V, H), "output_norm.weight": (H,), "blk.0.attn_norm.weight": (H,),
               "blk.0.ffn_norm.weight": (H,), "blk.0.attn_q.weight": (H, H), "blk.0.attn_k.weight": (H, H),
               "blk.0.attn_v.weight": (H, H), "blk.0.attn_output.weight": (H, H),
               "blk.0.ffn_gate.weight": (I, H), "blk.0.ffn_up.weight": (I, H), "blk.0.ffn_down.weight": (H, I)}
    if mutate == "missing":
        del tensors["blk.0.ffn_up.weight"]
    if mutate == "extra":
        tensors["blk.0.attn_q_norm.weight"] = (H,)
    if mutate == "shape":
        tensors["blk.0.attn_k.weight"] = (H // 2, H)
    for name, shape in tensors.items():
        w.add_tensor(name, (0.1 * rng.standard_normal(shape)).astype(np.float32))
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_text_ids():
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    toks, _ = gguf_vocab()
    vocab = {t: i for i, t in enumerate(toks)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in MERGES]))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return np.array(tok.encode(GGUF_TEXT).ids, dtype=np.int32)


def main():
    import tokenizers

    os.makedirs(OUT, exist_ok=True)
    hf = os.path.join(OUT, "hf_tiny")
    shutil.rmtree(hf, ignore_errors=True)
    write_hf_tiny(hf)
    out = {"tokens": np.array(TOKENS, dtype=np.int32)}
    mlxlm_cases(hf, out)
    out["gguf"] = write_gguf(os.path.join(OUT, "tiny.gguf"))
    out["gguf_text_ids"] = gguf_text_ids()
    for m in ("ok", "missing", "extra", "shape", "vocab", "arch"):
        write_mini(os.path.join(OUT, f"mini_{m}.gguf"), m)
    meta = {"mlx_version": mx.__version__, "mlx_lm_version": mlx_lm.__version__, "gguf_py_version": gguf.__version__
            if hasattr(gguf, "__version__") else "?", "tokenizers_version": tokenizers.__version__,
            "gguf_text": GGUF_TEXT}
    mx.save_safetensors(os.path.join(OUT, "logits.safetensors"), {k: mx.array(v) for k, v in out.items()},
                        metadata=meta)
    print("wrote", OUT, sorted(out))


if __name__ == "__main__":
    main()
