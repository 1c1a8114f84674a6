/* CPU sdpa: placeholder until the kernels land. */
#include "backend/cpu/cpu_ops.h"
#include "core/internal.h"

mlxn_status cpu_sdpa(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v, const mlxn_sdpa_params *p, mlxn_tensor *out) {
    (void)s;
    (void)q;
    (void)k;
    (void)v;
    (void)p;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "sdpa: not implemented on the CPU yet");
}
