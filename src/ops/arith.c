/* Public copies and elementwise arithmetic: add (with a trailing-dims
 * broadcast for biases), scale by a scalar, and a converting strided copy
 * (the one op whose output may be a strided view, so a model can write
 * keys into a slot range of its KV cache or change a layout). */
#include "ops/op_check.h"

mlxn_status mlxn_add(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, mlxn_tensor *out) {
    const char *op = "add";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "a", s, a));
    MLXN_TRY(op_check_dtype(op, "a", a, DT_F32));
    MLXN_TRY(op_check_tensor(op, "b", s, b));
    MLXN_TRY(op_check_dtype(op, "b", b, DT_FLOAT16_32));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    MLXN_TRY(op_check_same_shape(op, "out", out, "a", a));
    /* b must match a's trailing dims */
    int ok = b->ndim <= a->ndim && (b->ndim >= 1 || a->ndim == 0);
    for (int i = 0; ok && i < b->ndim; i++) ok = b->shape[b->ndim - 1 - i] == a->shape[a->ndim - 1 - i];
    if (!ok) {
        char da[96], db[96];
        return mlxn_fail(MLXN_ERR_SHAPE, "add: b (%s) must have a's shape or its trailing dims (a is %s)",
                         mlxn_tensor_describe(b, db, sizeof db), mlxn_tensor_describe(a, da, sizeof da));
    }
    if (!op_same_view(out, a)) {
        if (!mlxn_tensor_is_contiguous(a) && out->buf == a->buf)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "add: in place needs out to be exactly a");
        MLXN_TRY(op_check_no_alias(op, "a", out, a));
    }
    if (!op_same_view(out, b)) MLXN_TRY(op_check_no_alias(op, "b", out, b));
    return s->dev->be->add(s, a, b, out);
}

mlxn_status mlxn_scale(mlxn_stream *s, const mlxn_tensor *x, float alpha, mlxn_tensor *out) {
    const char *op = "scale";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    MLXN_TRY(op_check_same_shape(op, "out", out, "x", x));
    if (!op_same_view(out, x)) MLXN_TRY(op_check_no_alias(op, "x", out, x));
    return s->dev->be->scale(s, x, alpha, out);
}

mlxn_status mlxn_copy(mlxn_stream *s, const mlxn_tensor *src, mlxn_tensor *dst) {
    const char *op = "copy";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "src", s, src));
    MLXN_TRY(op_check_dtype(op, "src", src, DT_FLOAT16_32));
    MLXN_TRY(op_check_tensor(op, "dst", s, dst));
    MLXN_TRY(op_check_dtype(op, "dst", dst, DT_FLOAT16_32));
    MLXN_TRY(op_check_same_shape(op, "dst", dst, "src", src));
    for (int i = 0; i < dst->ndim; i++)
        if (dst->shape[i] > 1 && dst->strides[i] == 0)
            return mlxn_fail(MLXN_ERR_SHAPE, "copy: dst has a zero stride on axis %d (elements would collide)", i);
    MLXN_TRY(op_check_no_alias(op, "src", dst, src));
    if (mlxn_tensor_numel(dst) == 0) return MLXN_OK;
    return s->dev->be->copy(s, src, dst);
}
