/* CPU embedding: placeholder until the kernels land. */
#include "backend/cpu/cpu_ops.h"
#include "core/internal.h"

mlxn_status cpu_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *table, mlxn_tensor *out) {
    (void)s;
    (void)ids;
    (void)table;
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "embedding: not implemented on the CPU yet");
}
