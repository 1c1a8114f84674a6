/* CPU activations: placeholder until the kernels land. */
#include "backend/cpu/cpu_ops.h"
#include "core/internal.h"

mlxn_status cpu_softmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    (void)s;
    (void)x;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "softmax: not implemented on the CPU yet");
}

mlxn_status cpu_gelu(mlxn_stream *s, const mlxn_tensor *x, mlxn_gelu_kind kind, mlxn_tensor *out) {
    (void)s;
    (void)x;
    (void)kind;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "gelu: not implemented on the CPU yet");
}

mlxn_status cpu_silu(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    (void)s;
    (void)x;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "silu: not implemented on the CPU yet");
}

mlxn_status cpu_swiglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_tensor *out) {
    (void)s;
    (void)gate;
    (void)up;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "swiglu: not implemented on the CPU yet");
}

mlxn_status cpu_geglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_gelu_kind kind, mlxn_tensor *out) {
    (void)s;
    (void)gate;
    (void)up;
    (void)kind;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "geglu: not implemented on the CPU yet");
}

mlxn_status cpu_argmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    (void)s;
    (void)x;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "argmax: not implemented on the CPU yet");
}
