/* CPU matmul: placeholder until the kernels land. */
#include "backend/cpu/cpu_ops.h"
#include "core/internal.h"

mlxn_status cpu_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, bool transpose, mlxn_tensor *out) {
    (void)s;
    (void)x;
    (void)w;
    (void)transpose;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "matmul: not implemented on the CPU yet");
}
