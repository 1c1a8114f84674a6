/* Shared argument checks for the op API; see op_check.h. */
#include "ops/op_check.h"

#include <stdio.h>

mlxn_status op_check_stream(const char *op, mlxn_stream *s) {
    if (!s || !s->dev) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: stream is NULL", op);
    return MLXN_OK;
}

mlxn_status op_check_tensor(const char *op, const char *arg, mlxn_stream *s, const mlxn_tensor *t) {
    if (!t) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, arg);
    if (!t->buf) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %s has no buffer", op, arg);
    if (t->buf->dev != s->dev)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %s lives on %s, the stream on %s", op, arg,
                         t->buf->dev->name, s->dev->name);
    if (t->ndim < 0 || t->ndim > MLXN_MAX_DIMS)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s has %d dimensions", op, arg, t->ndim);
    if (mlxn_dtype_size(t->dtype) == 0)
        return mlxn_fail(MLXN_ERR_DTYPE, "%s: %s has an invalid dtype", op, arg);
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0) return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s has a negative dimension", op, arg);
        if (t->strides[i] < 0)
            return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s has a negative stride (not supported)", op, arg);
    }
    size_t need = mlxn_tensor_nbytes(t);
    if (t->offset > t->buf->size || need > t->buf->size - t->offset) {
        char d[96];
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s (%s at byte %zu) reaches past its %zu-byte buffer", op, arg,
                         mlxn_tensor_describe(t, d, sizeof d), t->offset, t->buf->size);
    }
    return MLXN_OK;
}

mlxn_status op_check_dtype(const char *op, const char *arg, const mlxn_tensor *t, unsigned mask) {
    if ((unsigned)t->dtype < 32 && (mask & DT(t->dtype))) return MLXN_OK;
    char allowed[128] = "";
    size_t k = 0;
    for (int d = 0; d < MLXN_DTYPE_COUNT && k < sizeof allowed; d++)
        if (mask & DT(d)) k += (size_t)snprintf(allowed + k, sizeof allowed - k, "%s%s", k ? "/" : "", mlxn_dtype_name(d));
    return mlxn_fail(MLXN_ERR_DTYPE, "%s: %s has dtype %s, expected %s", op, arg, mlxn_dtype_name(t->dtype), allowed);
}

mlxn_status op_check_output(const char *op, mlxn_stream *s, const mlxn_tensor *out, unsigned mask) {
    MLXN_TRY(op_check_tensor(op, "out", s, out));
    MLXN_TRY(op_check_dtype(op, "out", out, mask));
    if (!mlxn_tensor_is_contiguous(out)) return mlxn_fail(MLXN_ERR_SHAPE, "%s: out must be contiguous", op);
    return MLXN_OK;
}

mlxn_status op_check_same_shape(const char *op, const char *an, const mlxn_tensor *a, const char *bn,
                                const mlxn_tensor *b) {
    int same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (same) return MLXN_OK;
    char da[96], db[96];
    return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s is %s but %s is %s", op, an, mlxn_tensor_describe(a, da, sizeof da), bn,
                     mlxn_tensor_describe(b, db, sizeof db));
}

mlxn_status op_check_rank(const char *op, const char *arg, const mlxn_tensor *t, int ndim, int at_least) {
    if (t->ndim == ndim || (at_least && t->ndim > ndim)) return MLXN_OK;
    char d[96];
    return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s must have %s%d dimensions, got %s", op, arg, at_least ? "at least " : "",
                     ndim, mlxn_tensor_describe(t, d, sizeof d));
}

mlxn_status op_check_vector(const char *op, const char *arg, const mlxn_tensor *t, int64_t n) {
    if (t->ndim == 1 && t->shape[0] == n) return MLXN_OK;
    char d[96];
    return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s must be [%lld], got %s", op, arg, (long long)n,
                     mlxn_tensor_describe(t, d, sizeof d));
}

mlxn_status op_check_no_alias(const char *op, const char *arg, const mlxn_tensor *out, const mlxn_tensor *in) {
    return op_check_disjoint(op, "out", out, arg, in);
}

mlxn_status op_check_disjoint(const char *op, const char *out_name, const mlxn_tensor *out, const char *t_name,
                              const mlxn_tensor *t) {
    if (!t || !out || t->buf != out->buf) return MLXN_OK;
    size_t a0 = out->offset, a1 = a0 + mlxn_tensor_nbytes(out);
    size_t b0 = t->offset, b1 = b0 + mlxn_tensor_nbytes(t);
    if (a0 < b1 && b0 < a1)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %s overlaps %s (outputs must not alias inputs)", op,
                         out_name, t_name);
    return MLXN_OK;
}

int op_same_view(const mlxn_tensor *out, const mlxn_tensor *x) {
    if (out->buf != x->buf || out->offset != x->offset || out->dtype != x->dtype || out->ndim != x->ndim) return 0;
    for (int i = 0; i < x->ndim; i++)
        if (out->shape[i] != x->shape[i] || (x->shape[i] > 1 && out->strides[i] != x->strides[i])) return 0;
    return 1;
}
