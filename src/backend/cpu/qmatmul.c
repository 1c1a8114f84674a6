/* CPU qmatmul: placeholder until the kernels land. */
#include "backend/cpu/cpu_ops.h"
#include "core/internal.h"

mlxn_status cpu_quantized_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq, const mlxn_tensor *scales, const mlxn_tensor *biases, const mlxn_quant_params *q, bool transpose, mlxn_tensor *out) {
    (void)s;
    (void)x;
    (void)wq;
    (void)scales;
    (void)biases;
    (void)q;
    (void)transpose;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "quantized_matmul: not implemented on the CPU yet");
}
