/* Public KV-cache appends with the slot read on the device: mlxn_kv_write
 * (one tensor) and mlxn_kv_write2 (keys and values in one call), validated
 * here, then dispatched like every op. The slot's range is checked where
 * it is read (the CPU at once; a GPU records it and reports it at the next
 * stream sync), since the host does not know it. */
#include "ops/op_check.h"

mlxn_status op_check_kv_pair(const char *op, mlxn_stream *s, const char *sn, const mlxn_tensor *src, const char *dn,
                             const mlxn_tensor *dst) {
    MLXN_TRY(op_check_tensor(op, sn, s, src));
    MLXN_TRY(op_check_dtype(op, sn, src, DT_FLOAT16_32));
    MLXN_TRY(op_check_tensor(op, dn, s, dst));
    MLXN_TRY(op_check_dtype(op, dn, dst, DT_FLOAT16_32));
    MLXN_TRY(op_check_rank(op, sn, src, 2, 1));
    if (dst->ndim != src->ndim)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s has %d dims, %s %d", op, dn, dst->ndim, sn, src->ndim);
    int n = src->ndim;
    for (int i = 0; i < n; i++) {
        if (i == n - 2) continue;
        if (dst->shape[i] != src->shape[i])
            return mlxn_fail(MLXN_ERR_SHAPE, "%s: axis %d: %s has %lld, %s %lld (only axis %d may differ)", op, i, dn,
                             (long long)dst->shape[i], sn, (long long)src->shape[i], n - 2);
    }
    if (src->shape[n - 2] > dst->shape[n - 2])
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: %lld rows of %s do not fit the %lld slots of %s", op,
                         (long long)src->shape[n - 2], sn, (long long)dst->shape[n - 2], dn);
    for (int i = 0; i < n; i++)
        if (dst->shape[i] > 1 && dst->strides[i] == 0)
            return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s has a zero stride on axis %d (elements would collide)", op, dn, i);
    return MLXN_OK;
}

mlxn_status op_check_kv_slot(const char *op, mlxn_stream *s, const mlxn_tensor *slot) {
    MLXN_TRY(op_check_tensor(op, "slot", s, slot));
    MLXN_TRY(op_check_dtype(op, "slot", slot, DT(MLXN_DTYPE_I32)));
    if (mlxn_tensor_numel(slot) != 1) return mlxn_fail(MLXN_ERR_SHAPE, "%s: slot must hold exactly one element", op);
    return MLXN_OK;
}

mlxn_status mlxn_kv_write(mlxn_stream *s, const mlxn_tensor *src, const mlxn_tensor *slot, mlxn_tensor *dst) {
    const char *op = "kv_write";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_kv_pair(op, s, "src", src, "dst", dst));
    MLXN_TRY(op_check_kv_slot(op, s, slot));
    MLXN_TRY(op_check_no_alias(op, "src", dst, src));
    MLXN_TRY(op_check_no_alias(op, "slot", dst, slot));
    if (mlxn_tensor_numel(src) == 0) return MLXN_OK;
    return s->dev->be->kv_write(s, src, slot, dst);
}

mlxn_status mlxn_kv_write2(mlxn_stream *s, const mlxn_tensor *k_src, const mlxn_tensor *v_src,
                           const mlxn_tensor *slot, mlxn_tensor *k_dst, mlxn_tensor *v_dst) {
    const char *op = "kv_write2";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_kv_pair(op, s, "k_src", k_src, "k_dst", k_dst));
    MLXN_TRY(op_check_kv_pair(op, s, "v_src", v_src, "v_dst", v_dst));
    MLXN_TRY(op_check_kv_slot(op, s, slot));
    /* one kernel writes both caches while reading both sources: every
       output disjoint from everything else, so the order does not matter */
    MLXN_TRY(op_check_disjoint(op, "k_dst", k_dst, "k_src", k_src));
    MLXN_TRY(op_check_disjoint(op, "k_dst", k_dst, "v_src", v_src));
    MLXN_TRY(op_check_disjoint(op, "k_dst", k_dst, "slot", slot));
    MLXN_TRY(op_check_disjoint(op, "v_dst", v_dst, "k_src", k_src));
    MLXN_TRY(op_check_disjoint(op, "v_dst", v_dst, "v_src", v_src));
    MLXN_TRY(op_check_disjoint(op, "v_dst", v_dst, "slot", slot));
    MLXN_TRY(op_check_disjoint(op, "v_dst", v_dst, "k_dst", k_dst));
    if (mlxn_tensor_numel(k_src) == 0 && mlxn_tensor_numel(v_src) == 0) return MLXN_OK;
    return s->dev->be->kv_write2(s, k_src, v_src, slot, k_dst, v_dst);
}
