"""Golden data for the elementwise / normalization / rotary / gather ops.

Runs real MLX on its CPU stream with f32 inputs and writes, per op family,
tests/golden/ops/<family>.safetensors. Each case is a group of tensors named
"<case>/<role>": inputs (x, w, b, up, freqs, ids, table), the MLX output
"<case>/out", and "<case>/p", an f32 vector of the case's scalar parameters
(documented per family below), so the C tests read everything from the file.

Deterministic (fixed seeds); re-run from the repository root:
    python tests/golden/gen_ops.py
"""
import math
import os

import mlx.core as mx
import mlx.nn as nn
import numpy as np

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops")
F32 = mx.float32
DT = {"f32": mx.float32, "f16": mx.float16, "bf16": mx.bfloat16}


def rand(rng, shape, scale=1.0):
    return mx.array((rng.standard_normal(shape) * scale).astype(np.float32))


def params(*v):
    return mx.array(np.array(v, dtype=np.float32))


def save(name, arrays, what):
    mx.eval(list(arrays.values()))
    meta = {"mlx_version": mx.__version__, "generator": "tests/golden/gen_ops.py", "contents": what}
    path = os.path.join(OUT_DIR, name + ".safetensors")
    mx.save_safetensors(path, arrays, metadata=meta)
    print(f"{path}: {len(arrays)} tensors, {os.path.getsize(path)} bytes")


def gen_rms_norm(rng):
    """p = [eps, w_offset]; w (if present) f32/f16/bf16 [D]. With w_offset != 0
    the reference is mx.fast.rms_norm(x, w_offset + w), the sum taken in w's
    dtype (how mlx-lm's Gemma norm calls it)."""
    out = {}
    cases = [  # name, x shape, weight dtype or None, eps, w_offset
        ("d1_now", (3, 1), None, 1e-5, 0.0),
        ("d7_f32", (4, 7), "f32", 1e-5, 0.0),
        ("d33_f16", (2, 3, 33), "f16", 1e-6, 0.0),
        ("d100_bf16", (5, 100), "bf16", 1e-5, 0.0),
        ("d4096_bf16", (2, 4096), "bf16", 1e-6, 0.0),
        ("d16_now_big", (3, 16), None, 1e-5, 0.0),
        ("gemma_bf16", (3, 64), "bf16", 1e-6, 1.0),
        ("gemma_f16", (2, 100), "f16", 1e-6, 1.0),
        ("gemma_f32", (2, 33), "f32", 1e-6, 1.0),
    ]
    for name, shape, wdt, eps, off in cases:
        x = rand(rng, shape, 300.0 if name.endswith("big") else 1.0)
        w = None
        if wdt:
            w = rand(rng, (shape[-1],), 0.5 if off else 1.0).astype(DT[wdt])
            out[name + "/w"] = w
        weff = None if w is None else (w + off if off else w)
        out[name + "/x"] = x
        out[name + "/out"] = mx.fast.rms_norm(x, weff, eps)
        out[name + "/p"] = params(eps, off)
    save("rms_norm", out, "mx.fast.rms_norm")


def gen_layer_norm(rng):
    """p = [eps]; w and b each optional, f32/f16/bf16 [D]."""
    out = {}
    cases = [  # name, x shape, w dtype, b dtype, eps
        ("d1_wb", (3, 1), "f32", "f32", 1e-5),
        ("d7_none", (4, 7), None, None, 1e-5),
        ("d33_w", (2, 3, 33), "f16", None, 1e-5),
        ("d100_b", (5, 100), None, "bf16", 1e-6),
        ("d100_wb_bf16", (3, 100), "bf16", "bf16", 1e-5),
        ("d4096_wb", (2, 4096), "f32", "f32", 1e-5),
        ("d64_offset", (3, 64), "f32", "f32", 1e-5),
    ]
    for name, shape, wdt, bdt, eps in cases:
        x = rand(rng, shape)
        if name.endswith("offset"):
            x = x + 100.0  # a large mean: the two-pass variance must not cancel
        w = rand(rng, (shape[-1],)).astype(DT[wdt]) if wdt else None
        b = rand(rng, (shape[-1],)).astype(DT[bdt]) if bdt else None
        out[name + "/x"] = x
        if w is not None:
            out[name + "/w"] = w
        if b is not None:
            out[name + "/b"] = b
        out[name + "/out"] = mx.fast.layer_norm(x, w, b, eps)
        out[name + "/p"] = params(eps)
    save("layer_norm", out, "mx.fast.layer_norm")


def gen_rope(rng):
    """p = [dims, traditional, base, scale, offset]; freqs f32 [dims/2] when
    present (then base is unused). x is [..., T, D]."""
    out = {}
    cases = [  # name, shape, dims, traditional, base (None: explicit freqs), scale, offset
        ("full_0", (1, 2, 5, 8), 8, False, 10000.0, 1.0, 0),
        ("full_trad_0", (1, 2, 5, 8), 8, True, 10000.0, 1.0, 0),
        ("d64_off7", (2, 3, 4, 64), 64, False, 10000.0, 1.0, 7),
        ("d64_trad_off7", (2, 3, 4, 64), 64, True, 10000.0, 1.0, 7),
        ("partial_d100", (1, 2, 3, 100), 50, False, 10000.0, 1.0, 3),
        ("partial_trad_d100", (1, 2, 3, 100), 50, True, 10000.0, 1.0, 3),
        ("partial_d7", (1, 1, 6, 7), 6, False, 500000.0, 1.0, 0),
        ("partial_trad_d7", (1, 1, 6, 7), 6, True, 500000.0, 1.0, 0),
        ("scale_quarter", (1, 2, 6, 32), 32, False, 10000.0, 0.25, 11),
        ("scale_trad_quarter", (1, 2, 6, 32), 32, True, 10000.0, 0.25, 11),
        ("large_offset", (1, 4, 3, 128), 128, False, 500000.0, 1.0, 123456),
        ("large_offset_trad", (1, 4, 3, 128), 128, True, 1000000.0, 1.0, 98765),
        ("freqs", (1, 2, 4, 64), 64, False, None, 1.0, 5),
        ("freqs_trad_partial", (1, 2, 4, 80), 48, True, None, 2.0, 40000),
        ("rank3", (3, 5, 16), 16, False, 10000.0, 1.0, 2),
    ]
    for name, shape, dims, trad, base, scale, offset in cases:
        x = rand(rng, shape)
        freqs = None
        if base is None:
            # llama3-style: a geometric ladder with the long wavelengths stretched
            f = 10000.0 ** (np.arange(0, dims, 2, dtype=np.float32) / dims)
            f[dims // 4:] *= 8.0
            freqs = mx.array(f.astype(np.float32))
            out[name + "/freqs"] = freqs
        out[name + "/x"] = x
        out[name + "/out"] = mx.fast.rope(x, dims, traditional=trad, base=base, scale=scale, offset=offset,
                                          freqs=freqs)
        out[name + "/p"] = params(dims, 1.0 if trad else 0.0, base or 0.0, scale, offset)
    save("rope", out, "mx.fast.rope")


def gen_softmax(rng):
    """mx.softmax(x, axis=-1, precise=True) on f32; no parameters (p = [0])."""
    out = {}
    for name, shape, scale in [("d1", (3, 1), 1.0), ("d7", (4, 7), 3.0), ("d33", (2, 3, 33), 1.0),
                               ("d100", (5, 100), 10.0), ("d4096", (2, 4096), 2.0)]:
        x = rand(rng, shape, scale)
        out[name + "/x"] = x
    # large magnitudes: exp would overflow without the max subtraction
    x = np.asarray(rng.standard_normal((4, 37)) * 5 + 1e4, dtype=np.float32)
    x[1] -= 2e4
    x[2] *= -1
    out["big/x"] = mx.array(x)
    # masked rows: -inf entries (an attention mask), one row of a single survivor
    x = np.asarray(rng.standard_normal((4, 50)), dtype=np.float32)
    x[0, 10:] = -np.inf
    x[1, ::3] = -np.inf
    x[2, :-1] = -np.inf
    x[3, 17] = -np.inf
    out["masked/x"] = mx.array(x)
    # rows MLX makes all NaN: only -inf, a +inf, a NaN; the last row is plain
    x = np.asarray(rng.standard_normal((4, 9)), dtype=np.float32)
    x[0, :] = -np.inf
    x[1, 4] = np.inf
    x[2, 2] = np.nan
    out["special/x"] = mx.array(x)
    for k in [k for k in out if k.endswith("/x")]:
        case = k[:-2]
        out[case + "/out"] = mx.softmax(out[k], axis=-1, precise=True)
        out[case + "/p"] = params(0)
    save("softmax", out, "mx.softmax(precise=True)")


def gen_activations(rng):
    """p = [kind]: 0 silu, 1 gelu (erf, nn.gelu), 2 gelu tanh (nn.gelu_approx).
    With "<case>/up" present the case is gated: act(x) * up (swiglu / geglu)."""
    acts = {0: nn.silu, 1: nn.gelu, 2: nn.gelu_approx}
    out = {}
    cases = [  # name, kind, shape, gated
        ("silu_d7", 0, (3, 7), False),
        ("silu_d1000", 0, (2, 1000), False),
        ("gelu_d33", 1, (2, 33), False),
        ("gelu_d1000", 1, (2, 1000), False),
        ("gelu_tanh_d33", 2, (2, 33), False),
        ("gelu_tanh_d1000", 2, (2, 1000), False),
        ("swiglu_d100", 0, (3, 100), True),
        ("swiglu_d1", 0, (5, 1), True),
        ("geglu_d100", 1, (3, 100), True),
        ("geglu_tanh_d100", 2, (3, 100), True),
        ("geglu_tanh_d4096", 2, (1, 4096), True),
    ]
    for name, kind, shape, gated in cases:
        x = rand(rng, shape, 3.0)
        if name.endswith("d1000"):  # include far tails: sigmoid/erf/tanh saturation
            x = mx.concatenate([x[:, :-6], mx.array([[-40.0, -12.0, -6.0, 6.0, 12.0, 40.0]] * shape[0])], axis=1)
        out[name + "/x"] = x
        y = acts[kind](x)
        if gated:
            up = rand(rng, shape)
            out[name + "/up"] = up
            y = y * up
        out[name + "/out"] = y
        out[name + "/p"] = params(kind)
    save("activations", out, "nn.silu / nn.gelu / nn.gelu_approx, gated by multiplication")


def gen_argmax(rng):
    """mx.argmax(x, axis=-1) on f32 (written as i32); p = [0]."""
    out = {}
    x = np.asarray(rng.integers(-3, 4, size=(6, 37)), dtype=np.float32)  # many ties
    out["ties/x"] = x
    x = np.asarray(rng.standard_normal((5, 100)), dtype=np.float32)
    out["plain/x"] = x
    x = np.asarray(rng.standard_normal((8, 20)), dtype=np.float32)
    x[0, 5] = np.nan
    x[1, 0] = np.nan
    x[2, 19] = np.nan
    x[3, 3] = np.nan
    x[3, 12] = np.nan
    x[4, :] = -np.inf
    x[5, 7] = np.inf
    x[5, 9] = np.inf
    x[6, :] = 0.0
    x[6, 4] = -0.0
    x[7, :] = np.nan
    out["special/x"] = x
    x = np.asarray(rng.standard_normal((3, 1)), dtype=np.float32)
    out["d1/x"] = x
    x = np.asarray(rng.standard_normal((2, 4099)), dtype=np.float32)
    x[0, 4000] = 10.0
    x[0, 4097] = 10.0
    x[1, 5] = 10.0
    x[1, 6] = 10.0
    out["d4099/x"] = x
    res = {}
    for k, v in out.items():
        case = k[:-2]
        res[k] = mx.array(v)
        res[case + "/out"] = mx.argmax(res[k], axis=-1).astype(mx.int32)
        res[case + "/p"] = params(0)
    save("argmax", res, "mx.argmax(axis=-1)")


def gen_hadamard(rng):
    """p = [scale]; x [..., n], out = mx.hadamard_transform(x, scale)."""
    out = {}
    for name, shape, scale in [("n1", (3, 1), 1.0), ("n1_s2", (2, 1), 2.0), ("n2", (3, 2), 1 / math.sqrt(2)),
                               ("n64", (2, 3, 64), 1 / math.sqrt(64)), ("n128", (3, 128), 1 / math.sqrt(128)),
                               ("n128_s1", (2, 128), 1.0), ("n4096", (2, 4096), 1 / math.sqrt(4096))]:
        x = rand(rng, shape)
        out[name + "/x"] = x
        out[name + "/out"] = mx.hadamard_transform(x, scale=scale)
        out[name + "/p"] = params(scale)
    save("hadamard", out, "mx.hadamard_transform")


def gen_embedding(rng):
    """table f32/f16/bf16 [V, D], ids i32 or u32 [n]; out = table[ids] as f32; p = [0]."""
    out = {}
    for name, dt, idt, V, D, n in [("f32_i32", "f32", mx.int32, 50, 33, 9), ("f16_u32", "f16", mx.uint32, 20, 64, 5),
                                   ("bf16_i32", "bf16", mx.int32, 31, 100, 12), ("f32_d1", "f32", mx.uint32, 7, 1, 4)]:
        table = rand(rng, (V, D)).astype(DT[dt])
        ids = mx.array(rng.integers(0, V, size=(n,))).astype(idt)
        if n > 3:
            ids = mx.concatenate([ids[:-2], mx.array([0, V - 1]).astype(idt)])  # both ends of the table
        out[name + "/table"] = table
        out[name + "/ids"] = ids
        out[name + "/out"] = table[ids].astype(F32)
        out[name + "/p"] = params(0)
    save("embedding", out, "table[ids] (mx.take along axis 0)")


def main():
    mx.set_default_device(mx.cpu)
    os.makedirs(OUT_DIR, exist_ok=True)
    for i, gen in enumerate([gen_rms_norm, gen_layer_norm, gen_rope, gen_softmax, gen_activations, gen_argmax,
                             gen_hadamard, gen_embedding]):
        gen(np.random.default_rng(1234 + i))


if __name__ == "__main__":
    main()
