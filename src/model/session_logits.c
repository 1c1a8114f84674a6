/* mlxn_session_logits: the last forward pass's logits where the session
 * computed them (its device), so a decode loop can sample there
 * (mlxn_sample) instead of on the host. model_forward_chunk writes the
 * logit rows it computes to rows [0, ...) of the session's logits scratch;
 * with MLXN_LOGITS_LAST that is the last token's row 0. */
#include "core/internal.h"
#include "model/model_internal.h"

mlxn_status mlxn_session_logits(mlxn_session *s, mlxn_tensor *out) {
    if (!s || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_logits: NULL argument");
    if (!s->sc.logits.buf || s->pos == 0)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                         "session_logits: no logits yet (run mlxn_session_forward with MLXN_LOGITS_LAST first)");
    int64_t shape[1] = {s->m->cfg.vocab};
    return mlxn_tensor_view(s->sc.logits.buf, MLXN_DTYPE_F32, 1, shape, s->sc.logits.offset, out);
}
