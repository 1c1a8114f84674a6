/* Public rotary position embedding, and the checks of its parameters
 * (shared with rope_kv.c). */
#include "ops/op_check.h"

mlxn_status mlxn_rope(mlxn_stream *s, const mlxn_tensor *x, const mlxn_rope_params *p, mlxn_tensor *out) {
    const char *op = "rope";
    MLXN_TRY(op_check_stream(op, s));
    if (!p) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "rope: params are NULL");
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_rank(op, "x", x, 2, 1));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    MLXN_TRY(op_check_same_shape(op, "out", out, "x", x));
    MLXN_TRY(op_check_rope_params(op, s, p, x->shape[x->ndim - 1]));
    return s->dev->be->rope(s, x, p, out);
}

mlxn_status op_check_rope_params(const char *op, mlxn_stream *s, const mlxn_rope_params *p, int64_t D) {
    if (p->dims <= 0 || p->dims % 2 || p->dims > D)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: dims = %d must be even and in (0, %lld]", op, p->dims,
                         (long long)D);
    if (p->freqs) {
        MLXN_TRY(op_check_tensor(op, "freqs", s, p->freqs));
        MLXN_TRY(op_check_dtype(op, "freqs", p->freqs, DT_F32));
        MLXN_TRY(op_check_vector(op, "freqs", p->freqs, p->dims / 2));
    } else if (!(p->base > 0.0f)) {
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: base must be > 0 when freqs is not given", op);
    }
    if (p->offset_tensor) {
        MLXN_TRY(op_check_tensor(op, "offset_tensor", s, p->offset_tensor));
        MLXN_TRY(op_check_dtype(op, "offset_tensor", p->offset_tensor, DT(MLXN_DTYPE_I32)));
        if (mlxn_tensor_numel(p->offset_tensor) != 1)
            return mlxn_fail(MLXN_ERR_SHAPE, "%s: offset_tensor must hold exactly one element", op);
    }
    return MLXN_OK;
}
