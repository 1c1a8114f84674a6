/* CPU rope: placeholder until the kernels land. */
#include "backend/cpu/cpu_ops.h"
#include "core/internal.h"

mlxn_status cpu_rope(mlxn_stream *s, const mlxn_tensor *x, const mlxn_rope_params *p, mlxn_tensor *out) {
    (void)s;
    (void)x;
    (void)p;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "rope: not implemented on the CPU yet");
}
