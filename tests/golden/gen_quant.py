"""Golden quantization data written by real MLX (CPU stream), read by
tests/test_quant_golden.c, which checks that our quantize reproduces
MLX's wq/scales/biases bytes and our dequantize MLX's output bytes.

Files (under tests/golden/quant/):
    affine_{f32,f16,bf16}.safetensors
        one case per bits (1,2,3,4,5,6,8) x group (32, 64, 128), named
        b<bits>_g<group>.<tensor>:
            w        [rows, cols] weight dtype   the input
            wq       [rows, cols*bits/32] u32    mx.quantize
            scales   [rows, cols/group]          mx.quantize
            biases   [rows, cols/group]          mx.quantize
            deq      [rows, cols] weight dtype   mx.dequantize(dtype=weight dtype)
            deq_f32  [rows, cols] f32            mx.dequantize(dtype=float32)
        shapes: group 32: 3 x 128, group 64: 5 x 192, group 128: 3 x 512
    fp_{f32,f16,bf16}.safetensors
        cases mxfp4, mxfp8, nvfp4, nvfp4_gs (global scale = max|w|) and
        nvfp4_gs2 (global scale 0.37), same tensor names without biases;
        <case>.global_scale is a [1] f32 tensor when there is one.
        shapes: 3 x 128 (mxfp*), 5 x 128 (nvfp4*)

Every group of a case is one of a fixed list of kinds (random normal,
constant, all-negative, all-positive, zeros, tiny range, large magnitudes,
|min| == |max|, an outlier, exact FP4 midpoints, values near the dtype's
limits, a range whose rounding of edge / step is a tie), rotated so each
case sees every kind. Inputs are finite and keep
scales out of the ranges where MLX's result depends on the platform's
float-to-int conversion. Metadata records mx.__version__.

Run from the repository root: python tests/golden/gen_quant.py
"""
import os

import mlx.core as mx
import numpy as np

OUT = os.path.join("tests", "golden", "quant")
DTYPES = {"f32": mx.float32, "f16": mx.float16, "bf16": mx.bfloat16}
BITS = [1, 2, 3, 4, 5, 6, 8]
GROUPS = [32, 64, 128]
SHAPES = {32: (3, 128), 64: (5, 192), 128: (3, 512)}


def group_values(kind, n, rs, dname, bits):
    """n values of one group, as float32 (cast to the weight dtype later)."""
    big = {"f32": 1e30, "f16": 6.0e4, "bf16": 1e30}[dname]
    if kind == 0:  # random normal
        return rs.randn(n)
    if kind == 1:  # constant
        return np.full(n, -3.25 if rs.rand() < 0.5 else 0.7)
    if kind == 2:  # all negative
        return -np.abs(rs.randn(n)) - 0.5
    if kind == 3:  # all positive, offset
        return np.abs(rs.randn(n)) * 0.1 + 2.0
    if kind == 4:  # zeros (one negative zero)
        v = np.zeros(n)
        v[1] = -0.0
        return v
    if kind == 5:  # tiny range around 1 (a few ulps in every dtype)
        return 1.0 + rs.randint(-3, 4, n) * 2.0**-10 * (0.1 if dname == "f32" else 1.0)
    if kind == 6:  # large magnitudes
        return rs.uniform(-1, 1, n) * big
    if kind == 7:  # |min| == |max|
        v = rs.uniform(-1.5, 1.5, n)
        v[0], v[-1] = -1.5, 1.5
        return v
    if kind == 8:  # one outlier among small values
        v = rs.randn(n) * 0.01
        v[rs.randint(n)] = 5.0
        return v
    if kind == 9:  # FP4 grid midpoints and ties (amax = 6 * 2^k)
        k = rs.randint(-3, 4)
        mids = np.array([6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5.0, 0.0])
        return np.resize(mids, n) * 2.0**k
    if kind == 10:  # values near the dtype's precision limit (small, many ulps)
        scale = {"f32": 1e-30, "f16": 1e-3, "bf16": 1e-30}[dname]
        return rs.randn(n) * scale
    if kind == 11:  # affine q0 = edge / step lands on a tie x.5 with x even
        nb = (1 << max(bits, 2)) - 1
        m = {3: 2, 7: 4, 15: 12, 31: 20, 63: 40, 255: 200}[nb]
        lo, hi = -(m + 0.5), nb - (m + 0.5)  # step (hi - lo) / nb = 1
        v = rs.uniform(lo, hi, n)
        v[0], v[-1] = lo, hi
        return v
    raise ValueError(kind)


N_KINDS = 12


def make_input(rows, cols, group, dtype, dname, rs, offset, bits):
    w = np.empty((rows, cols), np.float32)
    g = 0
    for r in range(rows):
        for c0 in range(0, cols, group):
            w[r, c0:c0 + group] = group_values((g + offset) % N_KINDS, group, rs, dname, bits)
            g += 1
    return mx.array(w).astype(dtype)


def save(path, arrays):
    for k, v in arrays.items():
        mx.eval(v)
    mx.save_safetensors(path, arrays, metadata={"mlx_version": mx.__version__, "generator": "gen_quant.py"})


def affine(dname, dtype, rs):
    arrays = {}
    case = 0
    for bits in BITS:
        for group in GROUPS:
            rows, cols = SHAPES[group]
            w = make_input(rows, cols, group, dtype, dname, rs, case * 5, bits)
            wq, scales, biases = mx.quantize(w, group_size=group, bits=bits, mode="affine")
            kw = dict(group_size=group, bits=bits, mode="affine")
            name = f"b{bits}_g{group}"
            arrays[f"{name}.w"] = w
            arrays[f"{name}.wq"] = wq
            arrays[f"{name}.scales"] = scales
            arrays[f"{name}.biases"] = biases
            arrays[f"{name}.deq"] = mx.dequantize(wq, scales, biases, dtype=dtype, **kw)
            arrays[f"{name}.deq_f32"] = mx.dequantize(wq, scales, biases, dtype=mx.float32, **kw)
            case += 1
    save(os.path.join(OUT, f"affine_{dname}.safetensors"), arrays)


def fp(dname, dtype, rs):
    arrays = {}
    cases = [("mxfp4", "mxfp4", 32, 4, None), ("mxfp8", "mxfp8", 32, 8, None), ("nvfp4", "nvfp4", 16, 4, None),
             ("nvfp4_gs", "nvfp4", 16, 4, "amax"), ("nvfp4_gs2", "nvfp4", 16, 4, 0.37)]
    for i, (name, mode, group, bits, gs) in enumerate(cases):
        rows, cols = (3, 128) if group == 32 else (5, 128)
        w = make_input(rows, cols, group, dtype, dname, rs, i * 5, bits)
        kw = dict(group_size=group, bits=bits, mode=mode)
        if gs is not None:
            g = mx.max(mx.abs(w.astype(mx.float32))) if gs == "amax" else mx.array(gs, dtype=mx.float32)
            g = g.reshape(1)
            kw["global_scale"] = g
            arrays[f"{name}.global_scale"] = g
        wq, scales = mx.quantize(w, **kw)
        arrays[f"{name}.w"] = w
        arrays[f"{name}.wq"] = wq
        arrays[f"{name}.scales"] = scales
        # With a global scale MLX's dequantize returns f32 whatever dtype is
        # asked for; deq is that result cast to the weight dtype.
        arrays[f"{name}.deq"] = mx.dequantize(wq, scales, dtype=dtype, **kw).astype(dtype)
        arrays[f"{name}.deq_f32"] = mx.dequantize(wq, scales, dtype=mx.float32, **kw)
    save(os.path.join(OUT, f"fp_{dname}.safetensors"), arrays)


def main():
    mx.set_default_device(mx.cpu)
    os.makedirs(OUT, exist_ok=True)
    for j, (dname, dtype) in enumerate(DTYPES.items()):
        affine(dname, dtype, np.random.RandomState(100 + j))
        fp(dname, dtype, np.random.RandomState(200 + j))


if __name__ == "__main__":
    main()
