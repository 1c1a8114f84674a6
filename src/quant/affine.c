/* MLX affine quantization, scalar reference: w = scale * q + bias per group
 * of `group` consecutive columns, q in [0, 2^bits). Bit-exact with MLX's CPU
 * results (mlx.core.quantize / mlx.core.dequantize on the CPU stream).
 *
 * Quantize, per group (the order of f32 operations is MLX's CPU kernel's,
 * everything in f32, inputs widened exactly from the weight dtype):
 *   lo, hi    = min, max of the group
 *   bits >= 2: step = max((hi - lo) / (2^bits - 1), 1e-7)
 *              the end with the larger magnitude is the "edge" (hi wins a
 *              tie |lo| == |hi|); scale = step if the edge is lo, else -step
 *              q0 = rint(edge / scale); if q0 != 0: scale = edge / q0 and
 *              bias = edge (the edge comes back exactly and 0 lies on the
 *              grid up to rounding), else bias = 0 and scale stays.
 *   bits == 1: scale = max(hi - lo, 1e-7), bias = lo (code 0 = lo, 1 = hi).
 *   code      = clamp(rint((w - bias) / scale), 0, 2^bits - 1), using the
 *              f32 scale; only the stored scale/bias are rounded to the
 *              weight dtype (round to nearest even).
 * rint rounds half to even. A NaN input makes a NaN code, whose conversion
 * MLX leaves undefined; we write code 0 there.
 *
 * Where MLX's GPU kernels round differently (read in the Metal kernels
 * shipped with MLX 0.32.4, backend/metal/kernels/quantized.h, and the CUDA
 * kernels of MLX 0.32.2, backend/cuda/quantized/affine_quantize.cu):
 *   - they start the group maximum at 0 (the CPU: at -inf), so an
 *     all-negative group is quantized as if its maximum were 0: a different
 *     scale, bias and codes;
 *   - they round with round() (half away from zero) where the CPU uses rint
 *     (half to even), both for q0 and for every code;
 *   - they clamp a code only from above, min(round(.), 2^bits - 1), before
 *     converting it to an unsigned byte; the CPU clamps to [0, 2^bits - 1];
 *   - 1 bit: the Metal kernel has the scale = hi - lo, bias = lo rule above,
 *     and MLX 0.32.4's CPU results follow it; the CUDA kernel read has no
 *     1-bit branch;
 *   - dequantize: they evaluate scale * q + bias as one expression in the
 *     scale dtype (a compiler may contract it into a fused multiply-add,
 *     one rounding), where the CPU rounds the product and the sum
 *     separately, as below.
 *
 * Dequantize (MLX's CPU path is a graph of ops in the scale dtype T):
 *   out = T(T(T(q) * scale) + bias), each op computed in f32 and rounded to
 *   T (for f16/bf16 this equals native half arithmetic: f32 holds the exact
 *   product, and one f32 rounding before the T rounding is harmless for
 *   sums of two T values), then converted to the output dtype. So an f32
 *   output of f16 scales holds f16-rounded values, exactly as MLX's. */
#include <math.h>

#include "quant/quant_layout.h"
#include "quant/quant_ref.h"

void mlxn_affine_quantize_row(int bits, int group, mlxn_dtype w_dtype, const void *w, int64_t cols,
                              uint32_t *wq, void *scales, void *biases) {
    // w [cols] (w_dtype), wq [cols*bits/32], scales/biases [cols/group] (w_dtype)
    const float n_bins = (float)((1 << bits) - 1);
    const float eps = 1e-7f;
    memset(wq, 0, (size_t)(cols * bits / 32) * sizeof(uint32_t));
    for (int64_t g0 = 0; g0 < cols; g0 += group) {
        float lo = INFINITY, hi = -INFINITY;
        for (int j = 0; j < group; j++) {
            float v = mlxn_qref_load(w_dtype, w, g0 + j);
            hi = hi < v ? v : hi; /* std::max / std::min: keep the first on NaN */
            lo = v < lo ? v : lo;
        }
        float scale, bias;
        if (bits == 1) {
            float range = hi - lo;
            scale = range < eps ? eps : range;
            bias = lo;
        } else {
            int edge_is_lo = fabsf(lo) > fabsf(hi);
            float step = (hi - lo) / n_bins;
            scale = step < eps ? eps : step;
            if (!edge_is_lo) scale = -scale;
            float edge = edge_is_lo ? lo : hi;
            float q0 = rintf(edge / scale);
            bias = 0.0f;
            if (q0 != 0.0f) {
                scale = edge / q0;
                bias = edge;
            }
        }
        for (int j = 0; j < group; j++) {
            float v = mlxn_qref_load(w_dtype, w, g0 + j);
            float c = rintf((v - bias) / scale);
            c = c < 0.0f ? 0.0f : c;
            c = n_bins < c ? n_bins : c;
            uint32_t code = c == c ? (uint32_t)c : 0u; /* NaN -> 0 */
            mlxn_pack_code(wq, g0 + j, bits, code);
        }
        mlxn_qref_store(w_dtype, scales, g0 / group, scale);
        mlxn_qref_store(w_dtype, biases, g0 / group, bias);
    }
}

void mlxn_affine_dequantize_row(int bits, int group, mlxn_dtype scale_dtype, const uint32_t *wq,
                                const void *scales, const void *biases, int64_t cols, mlxn_dtype out_dtype,
                                void *out) {
    // wq [cols*bits/32], scales/biases [cols/group] (scale_dtype), out [cols] (out_dtype)
    for (int64_t i = 0; i < cols; i++) {
        float s = mlxn_qref_load(scale_dtype, scales, i / group);
        float b = mlxn_qref_load(scale_dtype, biases, i / group);
        float q = (float)mlxn_unpack_code(wq, i, bits);
        float prod = mlxn_qref_round(scale_dtype, q * s);
        float val = mlxn_qref_round(scale_dtype, prod + b);
        mlxn_qref_store(out_dtype, out, i, val);
    }
}
