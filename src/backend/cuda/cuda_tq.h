/* extern "C" entry points of the CUDA TurboQuant kernels, with the
 * backend vtable's arguments (validated by src/ops/turboquant.c):
 *   cu_tq_append.cu     tq_append (quantize-on-append, one fused kernel) and
 *                       tq_rope_append (the same kernel roping q and k first)
 *   cu_tq_attention.cu  tq_sdpa (split-KV attention from the codes)
 *   cu_tq_dequant.cu    tq_dequantize (codes back to f32)
 * Only compiled with MLXN_HAVE_CUDA. */
#ifndef MLXN_CUDA_TQ_H
#define MLXN_CUDA_TQ_H

#include "backend/tq_cache.h"

#ifdef __cplusplus
extern "C" {
#endif

mlxn_status cu_op_tq_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *k, const mlxn_tensor *v,
                            int64_t pos, const mlxn_tensor *pos_tensor);
mlxn_status cu_op_tq_rope_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *q, const mlxn_tensor *k,
                                 const mlxn_tensor *v, const mlxn_rope_params *p, mlxn_tensor *q_out, int64_t pos,
                                 const mlxn_tensor *pos_tensor);
mlxn_status cu_op_tq_sdpa(mlxn_stream *s, const mlxn_tq_cache *c, const mlxn_tensor *q,
                          const mlxn_tq_sdpa_params *p, mlxn_tensor *out);
mlxn_status cu_op_tq_dequantize(mlxn_stream *s, const mlxn_tq_cache *c, int which_v, int64_t pos,
                                mlxn_tensor *out);

#ifdef __cplusplus
}
#endif
#endif
