/* Public KV-cache append with the slot read on the device (mlxn_kv_write):
 * validated here, then dispatched like every op. The slot's range is
 * checked where it is read (the CPU at once; a GPU records it and reports
 * it at the next stream sync), since the host does not know it. */
#include "ops/op_check.h"

mlxn_status mlxn_kv_write(mlxn_stream *s, const mlxn_tensor *src, const mlxn_tensor *slot, mlxn_tensor *dst) {
    const char *op = "kv_write";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "src", s, src));
    MLXN_TRY(op_check_dtype(op, "src", src, DT_FLOAT16_32));
    MLXN_TRY(op_check_tensor(op, "dst", s, dst));
    MLXN_TRY(op_check_dtype(op, "dst", dst, DT_FLOAT16_32));
    MLXN_TRY(op_check_tensor(op, "slot", s, slot));
    MLXN_TRY(op_check_dtype(op, "slot", slot, DT(MLXN_DTYPE_I32)));
    if (mlxn_tensor_numel(slot) != 1) return mlxn_fail(MLXN_ERR_SHAPE, "kv_write: slot must hold exactly one element");
    MLXN_TRY(op_check_rank(op, "src", src, 2, 1));
    if (dst->ndim != src->ndim)
        return mlxn_fail(MLXN_ERR_SHAPE, "kv_write: dst has %d dims, src %d", dst->ndim, src->ndim);
    int n = src->ndim;
    for (int i = 0; i < n; i++) {
        if (i == n - 2) continue;
        if (dst->shape[i] != src->shape[i])
            return mlxn_fail(MLXN_ERR_SHAPE, "kv_write: axis %d: dst has %lld, src %lld (only axis %d may differ)", i,
                             (long long)dst->shape[i], (long long)src->shape[i], n - 2);
    }
    if (src->shape[n - 2] > dst->shape[n - 2])
        return mlxn_fail(MLXN_ERR_SHAPE, "kv_write: %lld rows of src do not fit the %lld slots of dst",
                         (long long)src->shape[n - 2], (long long)dst->shape[n - 2]);
    for (int i = 0; i < n; i++)
        if (dst->shape[i] > 1 && dst->strides[i] == 0)
            return mlxn_fail(MLXN_ERR_SHAPE, "kv_write: dst has a zero stride on axis %d (elements would collide)", i);
    MLXN_TRY(op_check_no_alias(op, "src", dst, src));
    MLXN_TRY(op_check_no_alias(op, "slot", dst, slot));
    if (mlxn_tensor_numel(src) == 0) return MLXN_OK;
    return s->dev->be->kv_write(s, src, slot, dst);
}
