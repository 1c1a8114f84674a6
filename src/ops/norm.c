/* Public normalizations over the last axis: rms_norm, layer_norm, and
 * add_rms_norm (a residual add and the rms_norm of its sum in one call). */
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

mlxn_status mlxn_add_rms_norm(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, const mlxn_tensor *w,
                              float eps, float w_offset, mlxn_tensor *sum, mlxn_tensor *out) {
    const char *op = "add_rms_norm";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "a", s, a));
    MLXN_TRY(op_check_dtype(op, "a", a, DT_F32));
    MLXN_TRY(op_check_rank(op, "a", a, 1, 1));
    MLXN_TRY(op_check_tensor(op, "b", s, b));
    MLXN_TRY(op_check_dtype(op, "b", b, DT_F32));
    MLXN_TRY(op_check_same_shape(op, "b", b, "a", a));
    MLXN_TRY(op_check_tensor(op, "sum", s, sum));
    MLXN_TRY(op_check_dtype(op, "sum", sum, DT_F32));
    if (!mlxn_tensor_is_contiguous(sum)) return mlxn_fail(MLXN_ERR_SHAPE, "%s: sum must be contiguous", op);
    MLXN_TRY(op_check_same_shape(op, "sum", sum, "a", a));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    MLXN_TRY(op_check_same_shape(op, "out", out, "a", a));
    MLXN_TRY(check_param(op, "w", s, w, a->shape[a->ndim - 1]));
    /* sum may be a or b exactly (in place, element by element); nothing else may overlap */
    if (!op_same_view(sum, a)) MLXN_TRY(op_check_disjoint(op, "sum", sum, "a", a));
    if (!op_same_view(sum, b)) MLXN_TRY(op_check_disjoint(op, "sum", sum, "b", b));
    MLXN_TRY(op_check_disjoint(op, "out", out, "a", a));
    MLXN_TRY(op_check_disjoint(op, "out", out, "b", b));
    MLXN_TRY(op_check_disjoint(op, "out", out, "sum", sum));
    MLXN_TRY(op_check_disjoint(op, "sum", sum, "w", w));
    MLXN_TRY(op_check_disjoint(op, "out", out, "w", w));
    if (mlxn_tensor_numel(a) == 0) return MLXN_OK;
    return s->dev->be->add_rms_norm(s, a, b, w, eps, w_offset, sum, out);
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
