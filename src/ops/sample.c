/* mlxn_sample: validation, then the stream's backend (backend/cpu/sample.c,
 * backend/cuda/cu_sample.cu). */
#include <math.h>

#include "ops/op_check.h"

mlxn_status mlxn_sample(mlxn_stream *s, const mlxn_tensor *logits, const mlxn_sample_params *p, mlxn_tensor *token) {
    const char *op = "sample";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "logits", s, logits));
    MLXN_TRY(op_check_dtype(op, "logits", logits, DT_F32));
    if (!p) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sample: params is NULL");
    if (logits->ndim < 1 || logits->ndim > 2 || (logits->ndim == 2 && logits->shape[0] != 1))
        return mlxn_fail(MLXN_ERR_SHAPE, "sample: logits must be [V] or [1, V], got rank %d", logits->ndim);
    int64_t V = logits->shape[logits->ndim - 1];
    if (V < 1 || V > INT32_MAX / 2)
        return mlxn_fail(MLXN_ERR_SHAPE, "sample: the vocabulary size %lld is outside [1, 2^30)", (long long)V);
    MLXN_TRY(op_check_output(op, s, token, DT(MLXN_DTYPE_I32)));
    int64_t n = 1;
    for (int i = 0; i < token->ndim; i++) n *= token->shape[i];
    if (n != 1) return mlxn_fail(MLXN_ERR_SHAPE, "sample: token must hold one element, got %lld", (long long)n);
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sample: temperature %g must be a finite number >= 0",
                         (double)p->temperature);
    if (!(p->top_p >= 0.0f && p->top_p <= 1.0f))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sample: top_p %g must be in [0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sample: min_p %g must be in [0, 1]", (double)p->min_p);
    if (p->top_k < 0) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sample: top_k %d must be >= 0", p->top_k);
    if (p->counter < 1) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sample: counter must be >= 1 (the first draw is 1)");
    return s->dev->be->sample(s, logits, p, token);
}
