/* CPU quantized embedding: placeholder until the kernels land. */
#include "backend/cpu/cpu_ops.h"
#include "core/internal.h"

mlxn_status cpu_quantized_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *wq, const mlxn_tensor *scales, const mlxn_tensor *biases, const mlxn_quant_params *q, mlxn_tensor *out) {
    (void)s;
    (void)ids;
    (void)wq;
    (void)scales;
    (void)biases;
    (void)q;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "quantized_embedding: not implemented on the CPU yet");
}
