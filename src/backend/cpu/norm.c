/* CPU norm: placeholder until the kernels land. */
#include "backend/cpu/cpu_ops.h"
#include "core/internal.h"

mlxn_status cpu_rms_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, float eps, float w_offset, mlxn_tensor *out) {
    (void)s;
    (void)x;
    (void)w;
    (void)eps;
    (void)w_offset;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "rms_norm: not implemented on the CPU yet");
}

mlxn_status cpu_layer_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, const mlxn_tensor *b, float eps, mlxn_tensor *out) {
    (void)s;
    (void)x;
    (void)w;
    (void)b;
    (void)eps;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "layer_norm: not implemented on the CPU yet");
}
