/* Public fused decode-step op mlxn_rope_kv_write: the rotary embedding of
 * q and k with k (rotated) and v appended to their caches at a slot read
 * on the device, validated here as mlxn_rope and mlxn_kv_write2 validate
 * the calls it stands for, then dispatched like every op. The check is
 * also the one mlxn_quantized_matmul_fused runs for its rope_kv epilogue. */
#include "ops/op_check.h"

mlxn_status op_check_rope_kv(const char *op, mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k,
                             const mlxn_tensor *v, const mlxn_rope_params *p, const mlxn_tensor *slot,
                             const mlxn_tensor *q_out, const mlxn_tensor *k_dst, const mlxn_tensor *v_dst) {
    if (!p) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: params are NULL", op);
    MLXN_TRY(op_check_tensor(op, "q", s, q));
    MLXN_TRY(op_check_dtype(op, "q", q, DT_F32));
    MLXN_TRY(op_check_rank(op, "q", q, 2, 1));
    MLXN_TRY(op_check_tensor(op, "q_out", s, q_out));
    MLXN_TRY(op_check_dtype(op, "q_out", q_out, DT_F32));
    if (!mlxn_tensor_is_contiguous(q_out)) return mlxn_fail(MLXN_ERR_SHAPE, "%s: q_out must be contiguous", op);
    MLXN_TRY(op_check_same_shape(op, "q_out", q_out, "q", q));
    MLXN_TRY(op_check_kv_pair(op, s, "k", k, "k_dst", k_dst));
    MLXN_TRY(op_check_dtype(op, "k", k, DT_F32)); /* rope reads f32 */
    MLXN_TRY(op_check_kv_pair(op, s, "v", v, "v_dst", v_dst));
    MLXN_TRY(op_check_kv_slot(op, s, slot));
    int64_t Dq = q->shape[q->ndim - 1], Dk = k->shape[k->ndim - 1];
    MLXN_TRY(op_check_rope_params(op, s, p, Dq < Dk ? Dq : Dk));
    /* one kernel reads every input while writing every output */
    const mlxn_tensor *in[6] = {q, k, v, slot, p->freqs, p->offset_tensor};
    static const char *in_n[6] = {"q", "k", "v", "slot", "freqs", "offset_tensor"};
    const mlxn_tensor *out[3] = {q_out, k_dst, v_dst};
    static const char *out_n[3] = {"q_out", "k_dst", "v_dst"};
    for (int o = 0; o < 3; o++) {
        for (int i = 0; i < 6; i++) MLXN_TRY(op_check_disjoint(op, out_n[o], out[o], in_n[i], in[i]));
        for (int o2 = 0; o2 < o; o2++) MLXN_TRY(op_check_disjoint(op, out_n[o], out[o], out_n[o2], out[o2]));
    }
    return MLXN_OK;
}

mlxn_status mlxn_rope_kv_write(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                               const mlxn_rope_params *p, const mlxn_tensor *slot, mlxn_tensor *q_out,
                               mlxn_tensor *k_dst, mlxn_tensor *v_dst) {
    const char *op = "rope_kv_write";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_rope_kv(op, s, q, k, v, p, slot, q_out, k_dst, v_dst));
    if (mlxn_tensor_numel(q) == 0 && mlxn_tensor_numel(k) == 0 && mlxn_tensor_numel(v) == 0) return MLXN_OK;
    return s->dev->be->rope_kv_write(s, q, k, v, p, slot, q_out, k_dst, v_dst);
}
