/* Public normalizations: rms_norm and layer_norm over the last axis. */
#include "ops/op_check.h"

static mlxn_status check_param(const char *op, const char *arg, mlxn_stream *s, const mlxn_tensor *p, int64_t D) {
    if (!p) return MLXN_OK;
    MLXN_TRY(op_check_tensor(op, arg, s, p));
    MLXN_TRY(op_check_dtype(op, arg, p, DT_FLOAT16_32));
    return op_check_vector(op, arg, p, D);
}

mlxn_status mlxn_rms_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, float eps, float w_offset,
                          mlxn_tensor *out) {
    const char *op = "rms_norm";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_rank(op, "x", x, 1, 1));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    MLXN_TRY(op_check_same_shape(op, "out", out, "x", x));
    MLXN_TRY(check_param(op, "w", s, w, x->shape[x->ndim - 1]));
    return s->dev->be->rms_norm(s, x, w, eps, w_offset, out);
}

mlxn_status mlxn_layer_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, const mlxn_tensor *b,
                            float eps, mlxn_tensor *out) {
    const char *op = "layer_norm";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_rank(op, "x", x, 1, 1));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    MLXN_TRY(op_check_same_shape(op, "out", out, "x", x));
    MLXN_TRY(check_param(op, "w", s, w, x->shape[x->ndim - 1]));
    MLXN_TRY(check_param(op, "b", s, b, x->shape[x->ndim - 1]));
    return s->dev->be->layer_norm(s, x, w, b, eps, out);
}
