"""Golden data for the quantized matmul (tests/test_qmatmul.c), written by
real MLX: random weights quantized with mx.quantize, random f32 x, and the
output of mx.quantized_matmul.

One file per format under tests/golden/qmm/:
    affine_b{1,2,3,4,5,6,8}.safetensors   every group size (32, 64, 128) x
                                          scale dtype (float32, float16,
                                          bfloat16) x transpose (1, 0)
    fp.safetensors                        mxfp4, mxfp8, nvfp4 (x transpose),
                                          and nvfp4 with a global scale
Tensor names: "<case>.x", ".wq", ".scales", ".biases" (affine only),
".out", and for nvfp4 with a global scale ".global_scale" (f32 [1]); case
names are built by the C test from the same loops:
    affine: "g{group}_{sdt}_t{transpose}"   fp: "{mode}_t{transpose}" /
    "nvfp4gs_t1".
Shapes: transpose=1: W [N=5, K=3*group] (K not a multiple of 128 where the
group allows), x [1, K], [3, K] or [2, 3, K] in turn; transpose=0:
W [K=7, N=3*group], x likewise over K=7 (nvfp4: N=6 / K=8, as MLX's
nvfp4 quantize needs a multiple of 32 elements). With a global scale MLX's
quantized_matmul takes no such argument, so the expected output is
x @ dequantize(w, global_scale).T computed by MLX in f32.

Run from the repository root (deterministic: fixed seeds).
"""
import os

import mlx.core as mx

OUT = os.path.join("tests", "golden", "qmm")
DTYPES = {"f32": mx.float32, "f16": mx.float16, "bf16": mx.bfloat16}
BATCHES = [(1,), (3,), (2, 3)]


def case(arrays, name, key, x_lead, transpose, group, bits, mode, wdtype, gs=None):
    kw, kx = mx.random.split(key)
    # MLX's nvfp4 quantize wants W's element count to be a multiple of 32
    small = 6 if mode == "nvfp4" else 5
    if transpose:
        n, k = small, 3 * group
        w = mx.random.normal((n, k), key=kw).astype(wdtype)
    else:
        k, n = small + 2, 3 * group
        w = mx.random.normal((k, n), key=kw).astype(wdtype)
    x = mx.random.normal(x_lead + (k,), key=kx).astype(mx.float32)
    if gs is not None:
        wq, scales = mx.quantize(w, group_size=group, bits=bits, mode=mode, global_scale=gs)
        deq = mx.dequantize(wq, scales, group_size=group, bits=bits, mode=mode, global_scale=gs)
        out = x @ deq.astype(mx.float32).T
        arrays[name + ".global_scale"] = gs.reshape(1)
    else:
        q = mx.quantize(w, group_size=group, bits=bits, mode=mode)
        wq, scales = q[0], q[1]
        biases = q[2] if mode == "affine" else None
        out = mx.quantized_matmul(x, wq, scales, biases, transpose=transpose, group_size=group, bits=bits,
                                  mode=mode)
        if biases is not None:
            arrays[name + ".biases"] = biases
    arrays[name + ".x"] = x
    arrays[name + ".wq"] = wq
    arrays[name + ".scales"] = scales
    arrays[name + ".out"] = out.astype(mx.float32)


def save(arrays, fname, extra):
    mx.eval(list(arrays.values()))
    meta = {"mlx_version": mx.__version__, "generator": "tests/golden/gen_qmm.py"}
    meta.update(extra)
    mx.save_safetensors(os.path.join(OUT, fname), arrays, metadata=meta)


def main():
    os.makedirs(OUT, exist_ok=True)
    key = mx.random.key(20240611)
    i = 0
    for bits in (1, 2, 3, 4, 5, 6, 8):
        arrays = {}
        for group in (32, 64, 128):
            for sname, sdt in DTYPES.items():
                for transpose in (1, 0):
                    key, sub = mx.random.split(key)
                    case(arrays, f"g{group}_{sname}_t{transpose}", sub, BATCHES[i % 3], bool(transpose), group,
                         bits, "affine", sdt)
                    i += 1
        save(arrays, f"affine_b{bits}.safetensors", {"mode": "affine", "bits": str(bits)})
    arrays = {}
    for mode, group, bits in (("mxfp4", 32, 4), ("mxfp8", 32, 8), ("nvfp4", 16, 4)):
        for transpose in (1, 0):
            key, sub = mx.random.split(key)
            case(arrays, f"{mode}_t{transpose}", sub, BATCHES[i % 3], bool(transpose), group, bits, mode,
                 mx.bfloat16)
            i += 1
    key, sub = mx.random.split(key)
    case(arrays, "nvfp4gs_t1", sub, (3,), True, 16, 4, "nvfp4", mx.float32, gs=mx.array(0.37, dtype=mx.float32))
    save(arrays, "fp.safetensors", {"mode": "fp"})


if __name__ == "__main__":
    main()
