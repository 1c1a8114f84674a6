"""Golden attention and dense-matmul data written by real MLX, read by
tests/test_sdpa.c and tests/test_matmul.c.

Files (under tests/golden/attn/):
    sdpa.safetensors     per case <name>.q/.k/.v[/.mask][/.sinks] inputs and
                         <name>.out, the MLX result (f32). Metadata: "cases"
                         (comma-separated names) and, per case,
                         "<name>" -> "scale=S causal=0|1 window=W softcap=C",
                         the mlxn_sdpa_params that must reproduce .out.
    matmul.safetensors   per case <name>.x/.w/.out; names start with "t_"
                         (out = x @ w.T) or "n_" (out = x @ w).

References:
  * plain, causal, array-mask and sink cases call
    mx.fast.scaled_dot_product_attention itself;
  * sliding windows pass the bool mask mlx-lm builds for them
    (create_causal_mask: query at position p sees keys j with
    p - window < j <= p) to mx.fast.scaled_dot_product_attention, and the C
    side must reproduce it from window=W alone;
  * softcap (not an MLX sdpa argument) follows mlx-lm's Gemma 2 attention in
    explicit MLX ops: scores = (q * scale) @ k^T; tanh(scores / c) * c; mask
    (bool -> where(mask, s, finfo.min), additive -> +); softmax(precise) @ v.
q is always f32, so MLX promotes f16/bf16 K/V to f32 and computes in f32.
No case has a query row that sees no key (MLX returns the mean of V there,
mlx-native returns zeros; see tests/test_sdpa.c).

Deterministic: inputs come from numpy's PCG64 with fixed seeds.
Run from the repository root: python tests/golden/gen_attn.py
"""
import os

import mlx.core as mx
import numpy as np

OUT = os.path.join("tests", "golden", "attn")
DT = {"f32": mx.float32, "f16": mx.float16, "bf16": mx.bfloat16}


def window_mask(tq, tk, window):
    """mlx-lm's create_causal_mask(N=tq, offset=tk-tq, window_size=window)."""
    off = tk - tq
    linds = mx.arange(off, off + tq)[:, None]
    rinds = mx.arange(tk)[None]
    return (linds >= rinds) & (linds < rinds + window)


def gqa_scores(q, k, scale):
    """(q * scale) @ k^T with query head h reading kv head h // (Hq / Hkv)."""
    B, Hq, Tq, D = q.shape
    Hkv = k.shape[1]
    qg = (q * scale).reshape(B, Hkv, Hq // Hkv, Tq, D)
    return qg @ mx.expand_dims(k.astype(mx.float32), 2).swapaxes(-1, -2)  # [B, Hkv, G, Tq, Tk]


def softcap_attention(q, k, v, scale, softcap, mask):
    B, Hq, Tq, _ = q.shape
    Hkv, Dv = k.shape[1], v.shape[-1]
    s = gqa_scores(q, k, scale)
    s = mx.tanh(s / softcap) * softcap
    if mask is not None:
        m = mask
        if m.ndim == 4:  # [B, Hq, Tq, Tk] -> [B, Hkv, G, Tq, Tk]
            m = m.reshape(m.shape[0], Hkv if m.shape[1] != 1 else 1, -1 if m.shape[1] != 1 else 1, *m.shape[2:])
        s = mx.where(m, s, mx.finfo(s.dtype).min) if m.dtype == mx.bool_ else s + m
    p = mx.softmax(s, axis=-1, precise=True)
    o = p @ mx.expand_dims(v.astype(mx.float32), 2)
    return o.reshape(B, Hq, Tq, Dv)


def sdpa_cases():
    rng = np.random.default_rng(20240611)
    arrays, names, meta = {}, [], {}

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def case(name, B, Hq, Hkv, Tq, Tk, D, Dv=None, kv="f32", causal=False, window=0, softcap=0.0, mask=None,
             sinks=False, qscale=1.0):
        Dv = Dv or D
        scale = float(1.0 / np.sqrt(D))
        q = mx.array(randn(B, Hq, Tq, D, scale=qscale))
        k = mx.array(randn(B, Hkv, Tk, D)).astype(DT[kv])
        v = mx.array(randn(B, Hkv, Tk, Dv)).astype(DT[kv])
        m = None
        if mask is not None:
            kind, shape = mask
            if kind == "bool":
                mm = rng.random(shape) < 0.7
                # every query row keeps its last key, so no row is fully masked
                mm[..., -1] = True
                m = mx.array(mm)
            else:
                ma = randn(*shape, scale=2.0)
                ma[rng.random(shape) < 0.15] = -np.inf
                ma[..., -1] = 1.0  # the last key stays visible in every row
                m = mx.array(ma)
        s = mx.array(randn(Hq)) if sinks else None
        if softcap > 0:
            full = m
            if window > 0 or causal:
                wm = window_mask(Tq, Tk, window if window > 0 else Tk + Tq)
                full = wm if full is None else (full & wm if full.dtype == mx.bool_ else mx.where(wm, full, -np.inf))
            assert not sinks
            out = softcap_attention(q, k, v, scale, softcap, full)
        else:
            if window > 0:
                wm = window_mask(Tq, Tk, window)
                if not causal:
                    raise ValueError("mlx-lm windows are always causal")
                arg = wm if m is None else (m & wm if m.dtype == mx.bool_ else mx.where(wm, m, -np.inf))
            elif causal and m is not None:
                wm = window_mask(Tq, Tk, Tk + Tq)
                arg = m & wm if m.dtype == mx.bool_ else mx.where(wm, m, -np.inf)
            elif causal:
                arg = "causal"
            else:
                arg = m
            out = mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=arg, sinks=s)
        out = out.astype(mx.float32)
        mx.eval(out)
        assert not np.isnan(np.array(out)).any(), name
        arrays[f"{name}.q"] = q
        arrays[f"{name}.k"] = k
        arrays[f"{name}.v"] = v
        arrays[f"{name}.out"] = out
        if m is not None:
            arrays[f"{name}.mask"] = m
        if s is not None:
            arrays[f"{name}.sinks"] = s
        names.append(name)
        meta[name] = f"scale={scale!r} causal={int(causal)} window={window} softcap={softcap!r}"

    # head dims 64 / 80 / 128 / 256, GQA ratios 1 / 4 / 8, decode and prefill
    case("d64_mha_decode", 1, 2, 2, 1, 37, 64)
    case("d64_gqa4_prefill_causal", 1, 4, 1, 9, 9, 64, causal=True)
    case("d80_gqa8_causal_tq_lt_tk", 2, 8, 1, 5, 21, 80, causal=True)
    case("d128_gqa4_decode_bf16", 1, 8, 2, 1, 70, 128, kv="bf16")
    case("d128_mha_causal_f16", 1, 2, 2, 6, 19, 128, kv="f16", causal=True)
    case("d256_gqa2_causal", 1, 2, 1, 3, 17, 256, causal=True)
    case("d64_dv48", 1, 4, 2, 4, 11, 64, Dv=48)
    # masks (bool: true = keep; additive f32) in several broadcast shapes
    case("bool_2d", 2, 4, 2, 5, 11, 64, mask=("bool", (5, 11)))
    case("bool_heads_keys", 2, 4, 4, 3, 13, 64, mask=("bool", (1, 4, 1, 13)))
    case("bool_full_gqa8", 1, 8, 1, 2, 9, 64, kv="bf16", mask=("bool", (1, 8, 2, 9)))
    case("add_batch", 2, 4, 2, 4, 10, 64, mask=("add", (2, 1, 4, 10)))
    case("add_3d_causal", 1, 4, 1, 6, 12, 80, causal=True, mask=("add", (4, 6, 12)))
    case("add_decode_1d", 1, 4, 1, 1, 40, 64, kv="f16", mask=("add", (40,)))
    # sinks (gpt-oss): an unscaled per-head logit in the denominator
    case("sinks_causal", 1, 8, 2, 4, 13, 64, causal=True, sinks=True)
    case("sinks_decode_bf16", 1, 4, 1, 1, 50, 64, kv="bf16", sinks=True)
    case("sinks_window", 1, 4, 2, 8, 20, 64, causal=True, window=6, sinks=True)
    # sliding windows (mlx-lm masks), with Tq < Tk and decode
    case("window_prefill", 1, 2, 1, 12, 12, 64, causal=True, window=4)
    case("window_offset", 1, 4, 4, 3, 20, 64, causal=True, window=5, kv="f16")
    case("window_decode", 1, 4, 1, 1, 30, 128, causal=True, window=8, kv="bf16")
    # softcap (Gemma 2), scores pushed into tanh's curved range
    case("softcap_causal", 1, 4, 2, 7, 7, 64, causal=True, softcap=20.0, qscale=8.0)
    case("softcap_window_bf16", 1, 2, 1, 8, 8, 64, causal=True, window=3, softcap=50.0, qscale=20.0, kv="bf16")
    case("softcap_bool_decode", 1, 4, 1, 1, 16, 64, softcap=10.0, qscale=6.0, mask=("bool", (1, 4, 1, 16)))
    meta["cases"] = ",".join(names)
    return arrays, meta


def matmul_cases():
    rng = np.random.default_rng(7)
    arrays, names = {}, []
    kn = [(33, 100), (100, 33), (257, 33), (33, 257)]
    i = 0
    for wdt in ("f32", "f16", "bf16"):
        for tr in (True, False):
            for lead in ((1,), (5,), (2, 3)):
                K, N = kn[i % len(kn)]
                i += 1
                x = mx.array(rng.standard_normal((*lead, K)).astype(np.float32))
                wshape = (N, K) if tr else (K, N)
                w = mx.array((rng.standard_normal(wshape) * 0.5).astype(np.float32)).astype(DT[wdt])
                out = mx.matmul(x, w.T if tr else w).astype(mx.float32)
                name = f"{'t' if tr else 'n'}_{wdt}_{'x'.join(map(str, lead))}x{K}x{N}"
                arrays[f"{name}.x"] = x
                arrays[f"{name}.w"] = w
                arrays[f"{name}.out"] = out
                names.append(name)
    return arrays, {"cases": ",".join(names)}


def main():
    os.makedirs(OUT, exist_ok=True)
    base = {"mlx_version": mx.__version__, "generator": "tests/golden/gen_attn.py"}
    arrays, meta = sdpa_cases()
    mx.save_safetensors(os.path.join(OUT, "sdpa.safetensors"), arrays, metadata={**base, **meta})
    arrays, meta = matmul_cases()
    mx.save_safetensors(os.path.join(OUT, "matmul.safetensors"), arrays, metadata={**base, **meta})


if __name__ == "__main__":
    main()
