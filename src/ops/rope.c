/* Public rotary position embedding. */
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
    int64_t D = x->shape[x->ndim - 1];
    if (p->dims <= 0 || p->dims % 2 || p->dims > D)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "rope: dims = %d must be even and in (0, %lld]", p->dims,
                         (long long)D);
    if (p->freqs) {
        MLXN_TRY(op_check_tensor(op, "freqs", s, p->freqs));
        MLXN_TRY(op_check_dtype(op, "freqs", p->freqs, DT_F32));
        MLXN_TRY(op_check_vector(op, "freqs", p->freqs, p->dims / 2));
    } else if (!(p->base > 0.0f)) {
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "rope: base must be > 0 when freqs is not given");
    }
    if (p->offset_tensor) {
        MLXN_TRY(op_check_tensor(op, "offset_tensor", s, p->offset_tensor));
        MLXN_TRY(op_check_dtype(op, "offset_tensor", p->offset_tensor, DT(MLXN_DTYPE_I32)));
        if (mlxn_tensor_numel(p->offset_tensor) != 1)
            return mlxn_fail(MLXN_ERR_SHAPE, "rope: offset_tensor must hold exactly one element");
    }
    return s->dev->be->rope(s, x, p, out);
}
