/* Public elementwise ops and last-axis reductions: softmax, gelu, silu,
 * swiglu, geglu, argmax, hadamard. */
#include "ops/op_check.h"

static mlxn_status check_unary(const char *op, mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *out) {
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    return op_check_same_shape(op, "out", out, "x", x);
}

static mlxn_status check_gated(const char *op, mlxn_stream *s, const mlxn_tensor *g, const mlxn_tensor *u,
                               const mlxn_tensor *out) {
    MLXN_TRY(check_unary(op, s, g, out));
    MLXN_TRY(op_check_tensor(op, "up", s, u));
    MLXN_TRY(op_check_dtype(op, "up", u, DT_F32));
    return op_check_same_shape(op, "up", u, "gate", g);
}

static mlxn_status check_gelu_kind(const char *op, mlxn_gelu_kind kind) {
    if (kind != MLXN_GELU_ERF && kind != MLXN_GELU_TANH)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: unknown gelu kind %d", op, (int)kind);
    return MLXN_OK;
}

mlxn_status mlxn_softmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    MLXN_TRY(check_unary("softmax", s, x, out));
    MLXN_TRY(op_check_rank("softmax", "x", x, 1, 1));
    return s->dev->be->softmax(s, x, out);
}

mlxn_status mlxn_gelu(mlxn_stream *s, const mlxn_tensor *x, mlxn_gelu_kind kind, mlxn_tensor *out) {
    MLXN_TRY(check_unary("gelu", s, x, out));
    MLXN_TRY(check_gelu_kind("gelu", kind));
    return s->dev->be->gelu(s, x, kind, out);
}

mlxn_status mlxn_silu(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    MLXN_TRY(check_unary("silu", s, x, out));
    return s->dev->be->silu(s, x, out);
}

mlxn_status mlxn_swiglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_tensor *out) {
    MLXN_TRY(check_gated("swiglu", s, gate, up, out));
    return s->dev->be->swiglu(s, gate, up, out);
}

mlxn_status mlxn_geglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_gelu_kind kind,
                       mlxn_tensor *out) {
    MLXN_TRY(check_gated("geglu", s, gate, up, out));
    MLXN_TRY(check_gelu_kind("geglu", kind));
    return s->dev->be->geglu(s, gate, up, kind, out);
}

mlxn_status mlxn_argmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    const char *op = "argmax";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_rank(op, "x", x, 1, 1));
    if (x->shape[x->ndim - 1] == 0) return mlxn_fail(MLXN_ERR_SHAPE, "argmax: the last axis is empty");
    MLXN_TRY(op_check_output(op, s, out, DT(MLXN_DTYPE_I32)));
    int ok = out->ndim == x->ndim - 1;
    for (int i = 0; ok && i < out->ndim; i++) ok = out->shape[i] == x->shape[i];
    if (!ok) return mlxn_fail(MLXN_ERR_SHAPE, "argmax: out must have x's shape without its last axis");
    return s->dev->be->argmax(s, x, out);
}

mlxn_status mlxn_hadamard(mlxn_stream *s, const mlxn_tensor *x, float scale, mlxn_tensor *out) {
    const char *op = "hadamard";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_rank(op, "x", x, 1, 1));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    MLXN_TRY(op_check_same_shape(op, "out", out, "x", x));
    int64_t n = x->shape[x->ndim - 1];
    if (n < 1 || n > 32768 || (n & (n - 1)))
        return mlxn_fail(MLXN_ERR_SHAPE, "hadamard: the last axis (%lld) must be a power of two up to 32768",
                         (long long)n);
    return s->dev->be->hadamard(s, x, scale, out);
}
