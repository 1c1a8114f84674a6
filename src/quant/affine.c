/* MLX affine quantize/dequantize reference: placeholder until it lands. */
#include "core/internal.h"
#include "mlxn/quant.h"

mlxn_status mlxn_quantize(const mlxn_quant_params *q, mlxn_dtype w_dtype, const void *w, int64_t rows, int64_t cols,
                          uint32_t *wq, void *scales, void *biases) {
    (void)q, (void)w_dtype, (void)w, (void)rows, (void)cols, (void)wq, (void)scales, (void)biases;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "quantize: not implemented yet");
}

mlxn_status mlxn_dequantize(const mlxn_quant_params *q, mlxn_dtype scale_dtype, const uint32_t *wq,
                            const void *scales, const void *biases, int64_t rows, int64_t cols,
                            mlxn_dtype out_dtype, void *out) {
    (void)q, (void)scale_dtype, (void)wq, (void)scales, (void)biases, (void)rows, (void)cols, (void)out_dtype,
        (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "dequantize: not implemented yet");
}
