"""Golden safetensors files written by real MLX (mx.save_safetensors), read
by tests/test_safetensors.c and tests/test_cli_info.sh.

Every value follows one formula the C test recomputes on its own (so the
test never trusts the reader it checks). For element i (row-major) of a
tensor:
    k = (i * 7) % 23 - 11                 (in -11 .. 11)
    bool                 : k != 0
    uint8/16/32          : k + 11
    int8/16/32           : k
    uint64               : (k + 11) * 2**40 + i
    int64                : k * 2**40 - i
    float16/bfloat16/32  : k * 0.25        (exact in every float type)
    complex64            : k * 0.25 - (k * 0.5)j

Files (under tests/golden/safetensors/):
    dtypes.safetensors   one tensor per dtype MLX writes, odd shapes, 0-d
                         and empty tensors; metadata format=mlx, mlx_version
    nometa.safetensors   no metadata (MLX writes "__metadata__": null)
    sharded/             model-0000{1,2}-of-00002.safetensors + index.json
    quantized/           model.safetensors with MLX-quantized layers
                         (affine 4-bit g64, affine 8-bit g32 override,
                         mxfp4) + config.json, for `mlxn info`

Run from the repository root: python tests/golden/gen_safetensors.py
"""
import json
import os

import mlx.core as mx
import numpy as np

OUT = os.path.join("tests", "golden", "safetensors")
META = {"format": "mlx", "mlx_version": mx.__version__}


def formula(name, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    i = np.arange(n, dtype=np.int64)
    k = (i * 7) % 23 - 11
    if name == "bool_":
        v = k != 0
    elif name in ("uint8", "uint16", "uint32"):
        v = (k + 11).astype(getattr(np, name))
    elif name in ("int8", "int16", "int32"):
        v = k.astype(getattr(np, name))
    elif name == "uint64":
        v = ((k + 11).astype(np.uint64) << np.uint64(40)) + i.astype(np.uint64)
    elif name == "int64":
        v = k * (1 << 40) - i
    elif name in ("float16", "bfloat16", "float32"):
        v = (k * 0.25).astype(np.float32)
    elif name == "complex64":
        v = (k * 0.25 - 1j * (k * 0.5)).astype(np.complex64)
    else:
        raise ValueError(name)
    a = mx.array(v.reshape(shape))
    return a.astype(getattr(mx, name))


# (tensor name, MLX dtype, shape); the C test holds the same table.
TENSORS = [
    ("t_bool", "bool_", (3, 5, 7)),
    ("t_u8", "uint8", (13,)),
    ("t_u16", "uint16", (3, 5)),
    ("t_u32", "uint32", (2, 3, 5)),
    ("t_u64", "uint64", (7,)),
    ("t_i8", "int8", (3, 5, 7)),
    ("t_i16", "int16", (1, 9)),
    ("t_i32", "int32", (5, 3)),
    ("t_i64", "int64", (2, 1, 3)),
    ("t_f16", "float16", (3, 5, 7)),
    ("t_bf16", "bfloat16", (7, 5)),
    ("t_f32", "float32", (3, 1, 5, 1)),
    ("t_c64", "complex64", (4,)),
    ("scalar_f32", "float32", ()),
    ("scalar_i32", "int32", ()),
    ("empty_f32", "float32", (0, 4)),
    ("empty_bf16", "bfloat16", (2, 0, 3)),
    ("odd_u8", "uint8", (3,)),
]

SHARDS = {
    "model-00001-of-00002.safetensors": [
        ("model.embed_tokens.weight", "bfloat16", (7, 5)),
        ("model.layers.0.w", "float32", (3, 4)),
    ],
    "model-00002-of-00002.safetensors": [
        ("model.layers.1.w", "float16", (4, 3)),
        ("lm_head.weight", "bfloat16", (5, 7)),
    ],
}


def write_dtypes():
    arrays = {name: formula(dt, shape) for name, dt, shape in TENSORS}
    mx.save_safetensors(os.path.join(OUT, "dtypes.safetensors"), arrays, metadata=META)
    mx.save_safetensors(os.path.join(OUT, "nometa.safetensors"), {"x": formula("float32", (2, 3))})


def write_shards():
    d = os.path.join(OUT, "sharded")
    os.makedirs(d, exist_ok=True)
    weight_map, total = {}, 0
    for fname, tensors in SHARDS.items():
        arrays = {name: formula(dt, shape) for name, dt, shape in tensors}
        mx.save_safetensors(os.path.join(d, fname), arrays, metadata=META)
        for name in arrays:
            weight_map[name] = fname
            total += arrays[name].nbytes
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)


def write_quantized():
    d = os.path.join(OUT, "quantized")
    os.makedirs(d, exist_ok=True)
    mx.random.seed(7)
    arrays = {"model.norm.weight": mx.ones((128,), dtype=mx.bfloat16)}
    layers = {
        "model.layers.0.mlp.up_proj": dict(group_size=64, bits=4, mode="affine"),
        "model.layers.0.mlp.down_proj": dict(group_size=32, bits=8, mode="affine"),
        "model.layers.0.mlp.gate_proj": dict(group_size=32, bits=4, mode="mxfp4"),
    }
    for name, q in layers.items():
        w = mx.random.normal((16, 128)).astype(mx.bfloat16)
        out = mx.quantize(w, **q)
        arrays[name + ".weight"] = out[0]
        arrays[name + ".scales"] = out[1]
        if q["mode"] == "affine":
            arrays[name + ".biases"] = out[2]
    mx.save_safetensors(os.path.join(d, "model.safetensors"), arrays, metadata=META)
    config = {
        "model_type": "llama",
        "quantization": {
            "group_size": 64,
            "bits": 4,
            "mode": "affine",
            "model.layers.0.mlp.down_proj": {"group_size": 32, "bits": 8},
            "model.layers.0.mlp.gate_proj": {"group_size": 32, "bits": 4, "mode": "mxfp4"},
        },
    }
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def main():
    os.makedirs(OUT, exist_ok=True)
    write_dtypes()
    write_shards()
    write_quantized()


if __name__ == "__main__":
    main()
