/* CPU hadamard: placeholder until the kernels land. */
#include "backend/cpu/cpu_ops.h"
#include "core/internal.h"

mlxn_status cpu_hadamard(mlxn_stream *s, const mlxn_tensor *x, float scale, mlxn_tensor *out) {
    (void)s;
    (void)x;
    (void)scale;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "hadamard: not implemented on the CPU yet");
}
