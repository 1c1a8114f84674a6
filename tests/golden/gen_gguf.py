"""Golden GGUF files for tests/test_gguf.c, written by gguf-py (the GGUF
writer and numpy (de)quantizer of the llama.cpp project), an implementation
independent of ours.

Writes into tests/golden/gguf/:
  model.gguf      metadata of every value type (string arrays, arrays of
                  every scalar type, arrays nested three deep), alignment 64,
                  tensors of f32 (0-4 dims), f16, bf16, q4_0, q4_1, q8_0
                  (quantized by gguf.quants.quantize from expected.safetensors'
                  "<name>.src") and q4_K, q5_K, q6_K (random valid blocks built
                  bytewise: gguf-py cannot quantize K-quants, only dequantize).
  small.gguf      default alignment (no general.alignment key), two tensors.
  align1.gguf     alignment 1: a 3-byte i8 tensor pushes a q8_0 tensor to an
                  odd offset.
  expected.safetensors
                  "model.file_offsets": where gguf.GGUFReader finds each
                  tensor of model.gguf (i64, file order);
                  "<name>": gguf.quants.dequantize of each tensor (f32,
                  row-major shape); "<name>.src": the f32 input quantized for
                  q4_0/q4_1/q8_0. Metadata records the gguf-py version (also
                  stored in model.gguf as test.gguf_py_version).

Deterministic (fixed seed); run from anywhere with the python that has the
packages of tests/golden/requirements.txt.
"""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
from safetensors.numpy import save_file

try:
    from importlib.metadata import version as _pkg_version
    GGUF_PY_VERSION = _pkg_version("gguf")
except Exception:  # pragma: no cover
    GGUF_PY_VERSION = "unknown"

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf")
rng = np.random.default_rng(20240607)
expected = {}


def token(i):
    """Vocabulary entry i; tests/test_gguf.c rebuilds the same list."""
    special = {0: "", 1: "h\u00e9llo", 2: "a\x00b", 3: "<0x0A>"}
    return special.get(i, "t%d_%s" % (i, "x" * (i % 5)))


def add_metadata(w):
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 3.14159)
    w.add_bool("test.bool", True)
    w.add_bool("test.false", False)
    w.add_string("test.string", "h\u00e9llo w\u00f6rld")
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62) - 3)
    w.add_float64("test.f64", 2.718281828459045)
    w.add_string("test.gguf_py_version", GGUF_PY_VERSION)
    w.add_array("tokenizer.ggml.tokens", [token(i) for i in range(64)])
    # one array per scalar type: [1, 2, 3] (signed ones [-1, 2, -3])
    for t, vals in [(V.UINT8, [1, 2, 3]), (V.INT8, [-1, 2, -3]), (V.UINT16, [1, 2, 3]),
                    (V.INT16, [-1, 2, -3]), (V.UINT32, [1, 2, 3]), (V.INT32, [-1, 2, -3]),
                    (V.UINT64, [1, 2, 2**64 - 1]), (V.INT64, [-1, 2, -(2**63)]),
                    (V.FLOAT32, [0.5, -1.25, 3.0]), (V.FLOAT64, [0.1, -2.5, 1e300]),
                    (V.BOOL, [True, False, True])]:
        w.add_key_value("test.arr_" + t.name.lower(), vals, V.ARRAY, sub_type=t)
    # nested: [[1, 2, 3], [4, 5]], and three deep: [[["a"], ["b", "c"]], [["d"]]]
    w.add_array("test.nested", [[1, 2, 3], [4, 5]])
    w.add_array("test.nested3", [[["a"], ["b", "c"]], [["d"]]])


def add_plain(w, name, arr, qtype):
    """f32 / f16 / bf16 tensors; the oracle is gguf-py's dequantize."""
    if qtype == T.F32:
        data = arr.astype(np.float32)
    elif qtype == T.F16:
        data = arr.astype(np.float16)
    else:
        data = gguf.quants.quantize(arr.astype(np.float32), qtype)
    w.add_tensor(name, data, raw_dtype=None if qtype in (T.F32, T.F16) else qtype)
    raw = data.view(np.uint8) if qtype != T.F32 else data
    deq = gguf.quants.dequantize(raw, qtype) if qtype != T.F32 else data
    expected[name] = np.array(deq.reshape(arr.shape), dtype=np.float32, order="C")  # keeps 0-d


def quant_source(rows, cols):
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    # rows that probe the rounding rules (each is whole blocks of 32):
    x[0, :] = 0.0                                           # all zero: d = 0
    x[1, :32] = np.float32(0.75)                            # constant block
    x[1, 32:64] = np.tile(np.float32([2.0, -2.0]), 16)      # max-magnitude tie: the first wins
    x[2, :32] = np.float32([127, 2.5, -3.5, 0.5, -0.5, 1.5, -1.5, 126.5] * 4)  # Q8_0 halves
    x[2, 32:64] = np.float32([-8, -0.5, 0.5, 7, 7.6, 3.5, -4.5, 2.5] * 4)     # Q4_0 d = 1
    x[3, :32] = np.float32([0, 15, 2.5, 7.5, 14.5, 0.5, 1.5, 9.5] * 4)          # Q4_1 d = 1
    x[3, 32:64] = x[3, 32:64] * np.float32(1e-6)            # scales in the f16 subnormal range
    return x


def add_quant(w, name, x, qtype):
    q = gguf.quants.quantize(x, qtype)
    w.add_tensor(name, q, raw_dtype=qtype)
    expected[name] = np.ascontiguousarray(gguf.quants.dequantize(q, qtype).reshape(x.shape), dtype=np.float32)
    expected[name + ".src"] = np.ascontiguousarray(x)


def f16_bytes(vals):
    return np.asarray(vals, dtype=np.float32).astype(np.float16).view(np.uint8)


def kquant_blocks(qtype, n):
    """n random valid blocks; scales of moderate size so values stay finite."""
    blocks = []
    for b in range(n):
        d = f16_bytes([rng.uniform(-0.05, 0.05)])
        dmin = f16_bytes([0.0 if b == 1 else rng.uniform(0.0, 0.02)])
        if qtype == T.Q6_K:
            ql = rng.integers(0, 256, 128, dtype=np.uint8)
            qh = rng.integers(0, 256, 64, dtype=np.uint8)
            sc = rng.integers(-128, 128, 16, dtype=np.int8).view(np.uint8)
            blocks.append(np.concatenate([ql, qh, sc, d]))
            continue
        scales = np.full(12, 0xFF, np.uint8) if b == 0 else rng.integers(0, 256, 12, dtype=np.uint8)
        qs = rng.integers(0, 256, 128, dtype=np.uint8)
        if qtype == T.Q4_K:
            blocks.append(np.concatenate([d, dmin, scales, qs]))
        else:
            qh = rng.integers(0, 256, 32, dtype=np.uint8)
            blocks.append(np.concatenate([d, dmin, scales, qh, qs]))
    out = np.concatenate(blocks)
    assert out.size == n * gguf.GGML_QUANT_SIZES[qtype][1]
    return out


def add_kquant(w, name, rows, blocks_per_row, qtype):
    raw = kquant_blocks(qtype, rows * blocks_per_row).reshape(rows, -1)
    w.add_tensor(name, raw, raw_dtype=qtype)
    expected[name] = np.ascontiguousarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32)


def write(w, path):
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)

    w = gguf.GGUFWriter(None, "testarch")
    w.add_custom_alignment(64)
    add_metadata(w)
    add_plain(w, "f32_2d", rng.standard_normal((3, 5)), T.F32)
    add_plain(w, "f32_1d", rng.standard_normal(7), T.F32)
    add_plain(w, "f32_4d", rng.standard_normal((2, 3, 4, 5)), T.F32)
    add_plain(w, "f32_scalar", np.array(1.5), T.F32)
    add_plain(w, "f16", rng.standard_normal((4, 7)), T.F16)
    add_plain(w, "bf16", rng.standard_normal((3, 9)), T.BF16)
    for qt in (T.Q4_0, T.Q4_1, T.Q8_0):
        add_quant(w, qt.name.lower(), quant_source(4, 96), qt)
    add_quant(w, "q8_0_3d", rng.standard_normal((2, 3, 64)).astype(np.float32), T.Q8_0)
    for qt in (T.Q4_K, T.Q5_K, T.Q6_K):
        add_kquant(w, qt.name.lower(), 3, 2, qt)
    write(w, os.path.join(OUT, "model.gguf"))
    # where gguf-py's own reader finds each tensor's bytes (file order)
    r = gguf.GGUFReader(os.path.join(OUT, "model.gguf"))
    expected["model.file_offsets"] = np.array([t.data_offset for t in r.tensors], dtype=np.int64)

    w = gguf.GGUFWriter(None, "small")
    w.add_uint32("small.answer", 42)
    add_plain(w, "small.a", rng.standard_normal((2, 3)), T.F32)
    add_plain(w, "small.b", rng.standard_normal((5,)), T.F16)
    write(w, os.path.join(OUT, "small.gguf"))

    w = gguf.GGUFWriter(None, "align1")
    w.add_custom_alignment(1)
    w.add_tensor("pad_i8", np.array([1, -2, 3], dtype=np.int8))
    add_quant(w, "odd_q8_0", rng.standard_normal((2, 32)).astype(np.float32), T.Q8_0)
    write(w, os.path.join(OUT, "align1.gguf"))

    save_file(expected, os.path.join(OUT, "expected.safetensors"),
              metadata={"gguf_py_version": GGUF_PY_VERSION})  # one key: the writer orders keys at random
    print("gguf-py %s: wrote %d expected tensors to %s" % (GGUF_PY_VERSION, len(expected), OUT))


if __name__ == "__main__":
    main()
