/* Public scaled dot-product attention. */
#include "ops/op_check.h"

#include <math.h>
#include <stdio.h>

/* mask must broadcast to [B, Hq, Tq, Tk]: rank <= 4, each dim 1 or equal. */
static mlxn_status check_mask(mlxn_stream *s, const mlxn_tensor *m, const int64_t full[4]) {
    const char *op = "sdpa";
    MLXN_TRY(op_check_tensor(op, "mask", s, m));
    MLXN_TRY(op_check_dtype(op, "mask", m, DT(MLXN_DTYPE_BOOL) | DT_F32));
    if (m->ndim < 1 || m->ndim > 4) return mlxn_fail(MLXN_ERR_SHAPE, "sdpa: mask must have 1 to 4 dimensions");
    for (int i = 0; i < m->ndim; i++) {
        int64_t want = full[4 - m->ndim + i];
        if (m->shape[i] != 1 && m->shape[i] != want) {
            char d[96];
            return mlxn_fail(MLXN_ERR_SHAPE, "sdpa: mask %s does not broadcast to [%lld, %lld, %lld, %lld]",
                             mlxn_tensor_describe(m, d, sizeof d), (long long)full[0], (long long)full[1],
                             (long long)full[2], (long long)full[3]);
        }
    }
    return MLXN_OK;
}

mlxn_status mlxn_sdpa(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                      const mlxn_sdpa_params *p, mlxn_tensor *out) {
    const char *op = "sdpa";
    char d1[96], d2[96], d3[96];
    MLXN_TRY(op_check_stream(op, s));
    if (!p) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sdpa: params are NULL");
    MLXN_TRY(op_check_tensor(op, "q", s, q));
    MLXN_TRY(op_check_tensor(op, "k", s, k));
    MLXN_TRY(op_check_tensor(op, "v", s, v));
    MLXN_TRY(op_check_dtype(op, "q", q, DT_FLOAT16_32));
    MLXN_TRY(op_check_dtype(op, "k", k, DT_FLOAT16_32));
    MLXN_TRY(op_check_dtype(op, "v", v, DT_FLOAT16_32));
    MLXN_TRY(op_check_rank(op, "q", q, 4, 0));
    MLXN_TRY(op_check_rank(op, "k", k, 4, 0));
    MLXN_TRY(op_check_rank(op, "v", v, 4, 0));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    int64_t B = q->shape[0], Hq = q->shape[1], Tq = q->shape[2], D = q->shape[3];
    int64_t Hkv = k->shape[1], Tk = k->shape[2], Dv = v->shape[3];
    if (k->shape[0] != B || k->shape[3] != D || v->shape[0] != B || v->shape[1] != Hkv || v->shape[2] != Tk ||
        Hkv == 0 || Hq % Hkv != 0)
        return mlxn_fail(MLXN_ERR_SHAPE,
                         "sdpa: q %s, k %s, v %s: need q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv] "
                         "with Hq a multiple of Hkv",
                         mlxn_tensor_describe(q, d1, sizeof d1), mlxn_tensor_describe(k, d2, sizeof d2),
                         mlxn_tensor_describe(v, d3, sizeof d3));
    if (out->ndim != 4 || out->shape[0] != B || out->shape[1] != Hq || out->shape[2] != Tq || out->shape[3] != Dv)
        return mlxn_fail(MLXN_ERR_SHAPE, "sdpa: out is %s, expected [%lld, %lld, %lld, %lld]",
                         mlxn_tensor_describe(out, d1, sizeof d1), (long long)B, (long long)Hq, (long long)Tq,
                         (long long)Dv);
    if (p->window < 0) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sdpa: window must be >= 0, got %d", p->window);
    if (!(p->softcap >= 0) || isinf(p->softcap)) /* also rejects NaN */
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sdpa: softcap must be finite and >= 0, got %g", p->softcap);
    if (!isfinite(p->scale)) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sdpa: scale must be finite, got %g", p->scale);
    if (p->mask) {
        const int64_t full[4] = {B, Hq, Tq, Tk};
        MLXN_TRY(check_mask(s, p->mask, full));
    }
    if (p->sinks) {
        MLXN_TRY(op_check_tensor(op, "sinks", s, p->sinks));
        MLXN_TRY(op_check_dtype(op, "sinks", p->sinks, DT_F32));
        MLXN_TRY(op_check_vector(op, "sinks", p->sinks, Hq));
    }
    if (p->kv_len) {
        MLXN_TRY(op_check_tensor(op, "kv_len", s, p->kv_len));
        MLXN_TRY(op_check_dtype(op, "kv_len", p->kv_len, DT(MLXN_DTYPE_I32)));
        if (mlxn_tensor_numel(p->kv_len) != 1)
            return mlxn_fail(MLXN_ERR_SHAPE, "sdpa: kv_len must hold exactly one element, has %lld",
                             (long long)mlxn_tensor_numel(p->kv_len));
    }
    MLXN_TRY(op_check_no_alias(op, "q", out, q));
    MLXN_TRY(op_check_no_alias(op, "k", out, k));
    MLXN_TRY(op_check_no_alias(op, "v", out, v));
    MLXN_TRY(op_check_no_alias(op, "mask", out, p->mask));
    MLXN_TRY(op_check_no_alias(op, "sinks", out, p->sinks));
    MLXN_TRY(op_check_no_alias(op, "kv_len", out, p->kv_len));
    return s->dev->be->sdpa(s, q, k, v, p, out);
}
