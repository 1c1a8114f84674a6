/* MLX's floating-point quantization modes, scalar reference:
 *   mxfp4  group 32, FP4 E2M1 codes, E8M0 scale bytes
 *   mxfp8  group 32, FP8 E4M3 codes (one byte each), E8M0 scale bytes
 *   nvfp4  group 16, FP4 E2M1 codes, E4M3 scale bytes, optional global scale
 *
 * MLX (0.32) has no CPU kernel for these: on the CPU stream mx.quantize and
 * mx.dequantize evaluate a graph of ordinary ops (mlx/ops.cpp, fp_quantize
 * and fp_dequantize). Each op computes in f32 and rounds its result to the
 * op's dtype, which follows MLX's type promotion; we replay that sequence
 * exactly. T is the weight dtype (quantize) or the output dtype
 * (dequantize), R() rounds to T.
 *
 * Quantize, per group (amax = max |w|):
 *   mxfp*:  s = R(amax / M)            M = 6 (fp4) or 448 (fp8)
 *           k = the smallest integer with 2^k >= s (0 if s == 0), so no
 *           element lands beyond the code range (MLX 0.32.4; earlier
 *           versions rounded log2(s) to nearest instead)
 *           scale byte = k + 127;  v = R(w / 2^k)
 *   nvfp4:  enc = 2688 / global_scale (f32; 2688 = 448 * 6), or 1
 *           scale byte = e4m3(f32(R(amax / 6)) * enc)
 *           v = f32(R(w / e4m3value(byte))) * enc   (f32, promoted by enc)
 *   fp4 code: the index of the nearest entry of the table
 *             [+0 +.5 +1 +1.5 +2 +3 +4 +6 -0 -.5 -1 -1.5 -2 -3 -4 -6],
 *             distances |v - entry| computed in v's dtype (T for mxfp4,
 *             f32 for nvfp4), the first (lowest index) winning a tie and
 *             NaN giving index 0. So ties round toward zero (0.25 -> 0,
 *             0.75 -> 0.5, 5 -> 4), every |v| <= 0.25 becomes +0, and
 *             anything beyond 6 clamps to +-6.
 *   fp8 code: e4m3(v), round to nearest even, saturating at 448 (see
 *             mlxn_f32_to_e4m3).
 *   A zero nvfp4 scale (amax too small for E4M3) makes v = w / 0 (inf or
 *   NaN), which the table search turns into code 0, as MLX does.
 *
 * Dequantize to T:
 *   mxfp*:  R(value(code) * R(2^(byte - 127)))   (2^x rounded to T: f16
 *           flushes tiny scales to 0 and large ones to inf; byte 255 is inf)
 *   nvfp4:  without global scale R(value(code) * e4m3value(byte)); with one,
 *           value(code) * (e4m3value(byte) * (global_scale / 2688)) in f32,
 *           then rounded to T (MLX returns that f32 array whatever dtype was
 *           asked for; our f32 output equals it).
 *
 * MLX's GPU kernels differ (Metal, MLX 0.32.4: backend/metal/kernels/
 * fp_quantized.h, fp4.h, fp8.h): an FP4 code rounds half to even (0.75 ->
 * 1, 1.75 -> 2, 3.5 -> 4, 5 -> 4), keeps the sign of small negatives
 * (-0.1 -> -0, code 8) and maps NaN to 6; elements are multiplied by an f32
 * reciprocal of the scale instead of divided in T; the E8M0 scale is
 * rounded up from the f32 amax / M (not from its T-rounded value), with the
 * exponent clamped to [-127, 127] and byte 255 for a non-finite scale. */
#include <math.h>

#include "quant/quant_layout.h"
#include "quant/quant_ref.h"

/* The FP4 table in code order (code 8 is -0). */
static float fp4_value(int code) { return mlxn_e2m1_to_f32((uint32_t)code); }

/* Nearest FP4 code to v, distances rounded to `dist_dtype` (see above). */
static uint32_t fp4_nearest(float v, mlxn_dtype dist_dtype) {
    uint32_t best = 0;
    float best_d = fabsf(mlxn_qref_round(dist_dtype, v - fp4_value(0)));
    for (int c = 1; c < 16; c++) {
        float d = fabsf(mlxn_qref_round(dist_dtype, v - fp4_value(c)));
        if (d < best_d) {
            best_d = d;
            best = (uint32_t)c;
        }
    }
    return best;
}

/* Largest |w| of a group; NaN propagates. */
static float group_amax(mlxn_dtype dt, const void *w, int64_t g0, int group) {
    float m = 0.0f;
    for (int j = 0; j < group; j++) {
        float a = fabsf(mlxn_qref_load(dt, w, g0 + j));
        if (a != a) return a;
        m = a > m ? a : m;
    }
    return m;
}

/* The E8M0 byte for a group scale s >= 0 held in T, and the divisor 2^k
 * (in T) the group's elements are divided by. k is the smallest integer
 * with 2^k >= s, found exactly (frexp), not through a rounded log2; s == 0
 * gives k = 0. The byte is k + 127 computed in T and converted to u8 the
 * way MLX's build does on x86-64: through int32, keeping the low byte. So
 * MLX does not clamp: when an f32 group is so small that k < -127 the byte
 * wraps (and the scale is garbage), which we reproduce. A non-finite s
 * (inf or NaN in the group, or an f16 |w| that overflows) makes MLX's
 * integer conversion of log2(s) produce INT32_MIN on x86-64; widened back
 * to T that is -2^31 (f32, bf16) or -inf (f16), so the divisor is 0 and the
 * byte is 128 (f32) or 0 (f16, bf16). On ARM, MLX's conversion saturates
 * instead; garbage in, garbage out either way. */
static uint8_t e8m0_round_up(mlxn_dtype T, float s, float *divisor) {
    float kf;
    if (s == 0.0f) {
        kf = 0.0f;
    } else if (s != s || isinf(s)) {
        kf = mlxn_qref_round(T, -2147483648.0f);
    } else {
        int e;
        float m = frexpf(s, &e); /* s = m * 2^e, m in [0.5, 1) */
        kf = (float)(m == 0.5f ? e - 1 : e);
    }
    *divisor = isinf(kf) || kf < -1000.0f ? 0.0f : mlxn_qref_round(T, ldexpf(1.0f, (int)kf));
    float b = mlxn_qref_round(T, kf + 127.0f);
    int32_t i = b >= -2147483648.0f && b < 2147483648.0f ? (int32_t)b : INT32_MIN;
    return (uint8_t)((uint32_t)i & 0xffu);
}

void mlxn_fp_quantize_row(const mlxn_quant_params *q, mlxn_dtype T, const void *w, int64_t cols, uint32_t *wq,
                          uint8_t *scales) {
    // w [cols] (T), wq [cols*bits/32], scales [cols/group] (E8M0 or E4M3 bytes)
    const int group = q->group_size, bits = q->bits;
    memset(wq, 0, (size_t)(cols * bits / 32) * sizeof(uint32_t));
    for (int64_t g0 = 0; g0 < cols; g0 += group) {
        float amax = group_amax(T, w, g0, group);
        if (q->mode == MLXN_QUANT_NVFP4) {
            float enc = q->global_scale > 0.0f ? 2688.0f / q->global_scale : 1.0f;
            uint8_t sb = mlxn_f32_to_e4m3(mlxn_qref_round(T, amax / 6.0f) * enc);
            float d = mlxn_e4m3_to_f32(sb); /* exact in f16 and bf16 */
            scales[g0 / group] = sb;
            for (int j = 0; j < group; j++) {
                float v = mlxn_qref_round(T, mlxn_qref_load(T, w, g0 + j) / d) * enc;
                mlxn_pack_code(wq, g0 + j, 4, fp4_nearest(v, MLXN_DTYPE_F32));
            }
            continue;
        }
        float s = mlxn_qref_round(T, amax / (bits == 4 ? 6.0f : 448.0f));
        float p;
        scales[g0 / group] = e8m0_round_up(T, s, &p); /* p = 2^k, exact in T */
        for (int j = 0; j < group; j++) {
            float v = mlxn_qref_round(T, mlxn_qref_load(T, w, g0 + j) / p);
            uint32_t code = bits == 4 ? fp4_nearest(v, T) : mlxn_f32_to_e4m3(v);
            mlxn_pack_code(wq, g0 + j, bits, code);
        }
    }
}

void mlxn_fp_dequantize_row(const mlxn_quant_params *q, const uint32_t *wq, const uint8_t *scales, int64_t cols,
                            mlxn_dtype T, void *out) {
    // wq [cols*bits/32], scales [cols/group] (bytes), out [cols] (T)
    const int group = q->group_size, bits = q->bits;
    for (int64_t g0 = 0; g0 < cols; g0 += group) {
        uint8_t sb = scales[g0 / group];
        if (q->mode == MLXN_QUANT_NVFP4) {
            float sv = mlxn_e4m3_to_f32(sb);
            if (q->global_scale > 0.0f) sv = sv * (q->global_scale / 2688.0f);
            for (int j = 0; j < group; j++) {
                float x = fp4_value((int)mlxn_unpack_code(wq, g0 + j, 4)) * sv;
                mlxn_qref_store(T, out, g0 + j, q->global_scale > 0.0f ? x : mlxn_qref_round(T, x));
            }
            continue;
        }
        float p = mlxn_qref_round(T, ldexpf(1.0f, (int)sb - 127));
        for (int j = 0; j < group; j++) {
            uint32_t c = mlxn_unpack_code(wq, g0 + j, bits);
            float v = bits == 4 ? fp4_value((int)c) : mlxn_qref_round(T, mlxn_e4m3_to_f32((uint8_t)c));
            mlxn_qref_store(T, out, g0 + j, mlxn_qref_round(T, v * p));
        }
    }
}
