/* Public matrix products: dense and quantized. Validation, then dispatch. */
#include "ops/op_check.h"

#include <stdio.h>

/* x [..., K] and out [..., N] agree on the leading dims. */
static mlxn_status check_xo(const char *op, const mlxn_tensor *x, const mlxn_tensor *out, int64_t K, int64_t N) {
    char dx[96], dout[96];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != K)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: x is %s, its last axis must be K = %lld", op,
                         mlxn_tensor_describe(x, dx, sizeof dx), (long long)K);
    int ok = out->ndim == x->ndim && out->shape[out->ndim - 1] == N;
    for (int i = 0; ok && i < x->ndim - 1; i++) ok = out->shape[i] == x->shape[i];
    if (!ok)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: out is %s, expected x's leading dims then N = %lld (x is %s)", op,
                         mlxn_tensor_describe(out, dout, sizeof dout), (long long)N,
                         mlxn_tensor_describe(x, dx, sizeof dx));
    return MLXN_OK;
}

mlxn_status mlxn_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, bool transpose,
                        mlxn_tensor *out) {
    const char *op = "matmul";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_tensor(op, "w", s, w));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_dtype(op, "w", w, DT_FLOAT16_32));
    MLXN_TRY(op_check_rank(op, "w", w, 2, 0));
    int64_t K = transpose ? w->shape[1] : w->shape[0];
    int64_t N = transpose ? w->shape[0] : w->shape[1];
    MLXN_TRY(check_xo(op, x, out, K, N));
    MLXN_TRY(op_check_no_alias(op, "x", out, x));
    MLXN_TRY(op_check_no_alias(op, "w", out, w));
    return s->dev->be->matmul(s, x, w, transpose, out);
}

mlxn_status op_check_quantized(const char *op, mlxn_stream *s, const mlxn_tensor *wq, const mlxn_tensor *scales,
                               const mlxn_tensor *biases, const mlxn_quant_params *q, int64_t *rows,
                               int64_t *cols) {
    char d[96];
    if (!q) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: quant params are NULL", op);
    MLXN_TRY(op_check_tensor(op, "wq", s, wq));
    MLXN_TRY(op_check_tensor(op, "scales", s, scales));
    MLXN_TRY(op_check_dtype(op, "wq", wq, DT(MLXN_DTYPE_U32)));
    MLXN_TRY(op_check_rank(op, "wq", wq, 2, 0));
    MLXN_TRY(op_check_rank(op, "scales", scales, 2, 0));
    if (32 % q->bits != 0 && q->bits != 3 && q->bits != 5 && q->bits != 6)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %d bits is not an MLX width", op, q->bits);
    if (q->bits < 1 || q->bits > 8)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %d bits is not an MLX width", op, q->bits);
    int64_t c = wq->shape[1] * 32 / q->bits;
    MLXN_TRY(mlxn_quant_validate(q, c));
    *rows = wq->shape[0];
    *cols = c;
    int64_t ng = c / q->group_size;
    if (scales->shape[0] != *rows || scales->shape[1] != ng)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: scales is %s, expected [%lld, %lld] for wq %lld x %lld codes", op,
                         mlxn_tensor_describe(scales, d, sizeof d), (long long)*rows, (long long)ng,
                         (long long)*rows, (long long)c);
    if (q->mode == MLXN_QUANT_AFFINE) {
        MLXN_TRY(op_check_dtype(op, "scales", scales, DT_FLOAT16_32));
        if (!biases) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: affine mode needs biases", op);
        MLXN_TRY(op_check_tensor(op, "biases", s, biases));
        MLXN_TRY(op_check_same_shape(op, "biases", biases, "scales", scales));
        if (biases->dtype != scales->dtype)
            return mlxn_fail(MLXN_ERR_DTYPE, "%s: biases are %s but scales are %s", op, mlxn_dtype_name(biases->dtype),
                             mlxn_dtype_name(scales->dtype));
    } else {
        MLXN_TRY(op_check_dtype(op, "scales", scales, DT(MLXN_DTYPE_U8)));
        if (biases)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: mode %s takes no biases", op,
                             mlxn_quant_mode_name(q->mode));
    }
    return MLXN_OK;
}

mlxn_status mlxn_quantized_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                  const mlxn_tensor *scales, const mlxn_tensor *biases,
                                  const mlxn_quant_params *q, bool transpose, mlxn_tensor *out) {
    const char *op = "quantized_matmul";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    int64_t rows, cols;
    MLXN_TRY(op_check_quantized(op, s, wq, scales, biases, q, &rows, &cols));
    int64_t K = transpose ? cols : rows;
    int64_t N = transpose ? rows : cols;
    MLXN_TRY(check_xo(op, x, out, K, N));
    return s->dev->be->quantized_matmul(s, x, wq, scales, biases, q, transpose, out);
}
