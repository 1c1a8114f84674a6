/* mlxn_quantize / mlxn_dequantize: check every argument once (mode, bits,
 * group, shape, dtypes, pointers, global scale), then run the per-mode
 * scalar reference (affine.c, fp_quant.c) row by row. */
#include <math.h>

#include "core/internal.h"
#include "quant/quant_ref.h"

static int is_float_dtype(mlxn_dtype dt) {
    return dt == MLXN_DTYPE_F32 || dt == MLXN_DTYPE_F16 || dt == MLXN_DTYPE_BF16;
}

/* The checks both directions share: params, shape, global scale. */
static mlxn_status check_common(const char *op, const mlxn_quant_params *q, int64_t rows, int64_t cols,
                                const void *biases) {
    if (!q) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: params are NULL", op);
    mlxn_status st = mlxn_quant_validate(q, cols);
    if (st != MLXN_OK) return mlxn_fail_context(st, "%s: ", op);
    if (rows < 0) return mlxn_fail(MLXN_ERR_SHAPE, "%s: rows = %lld is negative", op, (long long)rows);
    if (q->layout != MLXN_QUANT_ROWS)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: works on MLX's row layout (mlxn_quant_tile untiles)", op);
    if (q->mode == MLXN_QUANT_AFFINE && !biases)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: affine mode needs biases (got NULL)", op);
    if (q->mode != MLXN_QUANT_AFFINE && biases)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %s mode has no biases (pass NULL)", op,
                         mlxn_quant_mode_name(q->mode));
    if (q->global_scale != 0.0f) {
        if (q->mode != MLXN_QUANT_NVFP4)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: global_scale = %g is only for nvfp4 (mode is %s)", op,
                             (double)q->global_scale, mlxn_quant_mode_name(q->mode));
        if (!(q->global_scale > 0.0f) || isinf(q->global_scale))
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                             "%s: nvfp4 global_scale = %g must be a positive finite number (0 = none)", op,
                             (double)q->global_scale);
    }
    return MLXN_OK;
}

mlxn_status mlxn_quantize(const mlxn_quant_params *q, mlxn_dtype w_dtype, const void *w, int64_t rows, int64_t cols,
                          uint32_t *wq, void *scales, void *biases) {
    // w [rows, cols] (w_dtype); wq [rows, cols*bits/32]; scales, biases [rows, cols/group]
    const char *op = "quantize";
    MLXN_TRY(check_common(op, q, rows, cols, biases));
    if (!is_float_dtype(w_dtype))
        return mlxn_fail(MLXN_ERR_DTYPE, "%s: weight dtype %s (supported: f32, f16, bf16)", op,
                         mlxn_dtype_name(w_dtype));
    if (rows > 0 && (!w || !wq || !scales))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, !w ? "w" : !wq ? "wq" : "scales");
    int64_t words = mlxn_quant_words_per_row(q, cols), groups = cols / q->group_size;
    size_t wsz = mlxn_dtype_size(w_dtype);
    for (int64_t r = 0; r < rows; r++) {
        const char *wr = (const char *)w + (size_t)(r * cols) * wsz;
        uint32_t *qr = wq + r * words;
        if (q->mode == MLXN_QUANT_AFFINE)
            mlxn_affine_quantize_row(q->bits, q->group_size, w_dtype, wr, cols, qr,
                                     (char *)scales + (size_t)(r * groups) * wsz,
                                     (char *)biases + (size_t)(r * groups) * wsz);
        else
            mlxn_fp_quantize_row(q, w_dtype, wr, cols, qr, (uint8_t *)scales + r * groups);
    }
    return MLXN_OK;
}

mlxn_status mlxn_dequantize(const mlxn_quant_params *q, mlxn_dtype scale_dtype, const uint32_t *wq,
                            const void *scales, const void *biases, int64_t rows, int64_t cols,
                            mlxn_dtype out_dtype, void *out) {
    // wq [rows, cols*bits/32]; scales, biases [rows, cols/group] (scale_dtype); out [rows, cols] (out_dtype)
    const char *op = "dequantize";
    MLXN_TRY(check_common(op, q, rows, cols, biases));
    if (q->mode == MLXN_QUANT_AFFINE ? !is_float_dtype(scale_dtype) : scale_dtype != MLXN_DTYPE_U8)
        return mlxn_fail(MLXN_ERR_DTYPE, "%s: %s scales of dtype %s (need %s)", op, mlxn_quant_mode_name(q->mode),
                         mlxn_dtype_name(scale_dtype), q->mode == MLXN_QUANT_AFFINE ? "f32, f16 or bf16" : "u8");
    if (!is_float_dtype(out_dtype))
        return mlxn_fail(MLXN_ERR_DTYPE, "%s: output dtype %s (supported: f32, f16, bf16)", op,
                         mlxn_dtype_name(out_dtype));
    if (rows > 0 && (!wq || !scales || !out))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, !wq ? "wq" : !scales ? "scales" : "out");
    int64_t words = mlxn_quant_words_per_row(q, cols), groups = cols / q->group_size;
    size_t ssz = mlxn_dtype_size(scale_dtype), osz = mlxn_dtype_size(out_dtype);
    for (int64_t r = 0; r < rows; r++) {
        const uint32_t *qr = wq + r * words;
        char *orow = (char *)out + (size_t)(r * cols) * osz;
        if (q->mode == MLXN_QUANT_AFFINE)
            mlxn_affine_dequantize_row(q->bits, q->group_size, scale_dtype, qr,
                                       (const char *)scales + (size_t)(r * groups) * ssz,
                                       (const char *)biases + (size_t)(r * groups) * ssz, cols, out_dtype, orow);
        else
            mlxn_fp_dequantize_row(q, qr, (const uint8_t *)scales + r * groups, cols, out_dtype, orow);
    }
    return MLXN_OK;
}
