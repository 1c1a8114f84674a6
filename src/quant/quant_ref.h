/* Private to src/quant: the per-mode scalar reference routines behind
 * mlxn_quantize / mlxn_dequantize (quantize.c checks the arguments once,
 * then calls these), and the small element helpers they share.
 *
 * "Rounded to the dtype" below always means round-to-nearest-even, the
 * rounding MLX's own f16/bf16 types use on the CPU. */
#ifndef MLXN_QUANT_REF_H
#define MLXN_QUANT_REF_H

#include <stdint.h>
#include <string.h>

#include "mlxn/dtype.h"
#include "mlxn/quant.h"

/* Element i of a f32/f16/bf16 array, as f32 (exact). */
static inline float mlxn_qref_load(mlxn_dtype dt, const void *p, int64_t i) {
    if (dt == MLXN_DTYPE_F32) {
        float f;
        memcpy(&f, (const char *)p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const char *)p + 2 * i, 2);
    return dt == MLXN_DTYPE_F16 ? mlxn_f16_to_f32(h) : mlxn_bf16_to_f32(h);
}

/* f32 -> f16/bf16 bits as MLX's CPU types convert: round to nearest even,
 * and one NaN per type (f16: the input's sign | 0x7D00, bf16: 0x7FC0), so
 * even NaN outputs usually match MLX bit for bit. */
static inline uint16_t mlxn_qref_half_bits(mlxn_dtype dt, float f) {
    if (f != f) {
        uint32_t u;
        memcpy(&u, &f, 4);
        return dt == MLXN_DTYPE_F16 ? (uint16_t)(((u >> 16) & 0x8000u) | 0x7d00u) : (uint16_t)0x7fc0u;
    }
    return dt == MLXN_DTYPE_F16 ? mlxn_f32_to_f16(f) : mlxn_f32_to_bf16(f);
}

/* Store f (rounded to the dtype) as element i. */
static inline void mlxn_qref_store(mlxn_dtype dt, void *p, int64_t i, float f) {
    if (dt == MLXN_DTYPE_F32) {
        memcpy((char *)p + 4 * i, &f, 4);
        return;
    }
    uint16_t h = mlxn_qref_half_bits(dt, f);
    memcpy((char *)p + 2 * i, &h, 2);
}

/* f rounded to the dtype and widened back: the value an MLX array of that
 * dtype would hold after one arithmetic op computed in f32. */
static inline float mlxn_qref_round(mlxn_dtype dt, float f) {
    if (dt == MLXN_DTYPE_F16) return mlxn_f16_to_f32(mlxn_qref_half_bits(dt, f));
    if (dt == MLXN_DTYPE_BF16) return mlxn_bf16_to_f32(mlxn_qref_half_bits(dt, f));
    return f;
}

/* Affine (affine.c). One row each: w [cols], wq [cols*bits/32],
 * scales/biases [cols/group], out [cols]. Arguments are already checked. */
void mlxn_affine_quantize_row(int bits, int group, mlxn_dtype w_dtype, const void *w, int64_t cols,
                              uint32_t *wq, void *scales, void *biases);
void mlxn_affine_dequantize_row(int bits, int group, mlxn_dtype scale_dtype, const uint32_t *wq,
                                const void *scales, const void *biases, int64_t cols, mlxn_dtype out_dtype,
                                void *out);

/* mxfp4 / mxfp8 / nvfp4 (fp_quant.c). One row each: w [cols], wq
 * [cols*bits/32], scales u8 [cols/group], out [cols]. */
void mlxn_fp_quantize_row(const mlxn_quant_params *q, mlxn_dtype w_dtype, const void *w, int64_t cols,
                          uint32_t *wq, uint8_t *scales);
void mlxn_fp_dequantize_row(const mlxn_quant_params *q, const uint32_t *wq, const uint8_t *scales, int64_t cols,
                            mlxn_dtype out_dtype, void *out);

#endif
