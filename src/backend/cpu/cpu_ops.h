/* The CPU backend's op entry points (one file per op family). Arguments
 * are already validated by src/ops. */
#ifndef MLXN_CPU_OPS_H
#define MLXN_CPU_OPS_H

#include "backend/cpu/cpu_backend.h"

mlxn_status cpu_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, bool transpose,
                       mlxn_tensor *out);
mlxn_status cpu_quantized_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                 const mlxn_tensor *scales, const mlxn_tensor *biases,
                                 const mlxn_quant_params *q, bool transpose, mlxn_tensor *out);
mlxn_status cpu_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *table,
                          mlxn_tensor *out);
mlxn_status cpu_quantized_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *wq,
                                    const mlxn_tensor *scales, const mlxn_tensor *biases,
                                    const mlxn_quant_params *q, mlxn_tensor *out);
mlxn_status cpu_rms_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, float eps,
                         float w_offset, mlxn_tensor *out);
mlxn_status cpu_add_rms_norm(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, const mlxn_tensor *w,
                             float eps, float w_offset, mlxn_tensor *sum, mlxn_tensor *out);
mlxn_status cpu_layer_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w,
                           const mlxn_tensor *b, float eps, mlxn_tensor *out);
mlxn_status cpu_rope(mlxn_stream *s, const mlxn_tensor *x, const mlxn_rope_params *p, mlxn_tensor *out);
mlxn_status cpu_sdpa(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                     const mlxn_sdpa_params *p, mlxn_tensor *out);
mlxn_status cpu_softmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);
mlxn_status cpu_gelu(mlxn_stream *s, const mlxn_tensor *x, mlxn_gelu_kind kind, mlxn_tensor *out);
mlxn_status cpu_silu(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);
mlxn_status cpu_swiglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_tensor *out);
mlxn_status cpu_geglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_gelu_kind kind,
                      mlxn_tensor *out);
mlxn_status cpu_argmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);
mlxn_status cpu_hadamard(mlxn_stream *s, const mlxn_tensor *x, float scale, mlxn_tensor *out);
/* One row in place: y = (H_n y) * scale (n a power of two), with the widest
 * kernel isa allows; every level gives the same bits (hadamard.c). */
void cpu_fwht(float *y, int64_t n, float scale, mlxn_cpu_isa isa);
mlxn_status cpu_sample(mlxn_stream *s, const mlxn_tensor *logits, const mlxn_sample_params *p, mlxn_tensor *token);
mlxn_status cpu_add(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, mlxn_tensor *out);
mlxn_status cpu_scale(mlxn_stream *s, const mlxn_tensor *x, float alpha, mlxn_tensor *out);
mlxn_status cpu_copy_tensor(mlxn_stream *s, const mlxn_tensor *src, mlxn_tensor *dst);
mlxn_status cpu_tq_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *k, const mlxn_tensor *v, int64_t pos,
                          const mlxn_tensor *pos_tensor);
mlxn_status cpu_tq_rope_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *q, const mlxn_tensor *k,
                               const mlxn_tensor *v, const mlxn_rope_params *p, mlxn_tensor *q_out, int64_t pos,
                               const mlxn_tensor *pos_tensor);
mlxn_status cpu_tq_sdpa(mlxn_stream *s, const mlxn_tq_cache *c, const mlxn_tensor *q, const mlxn_tq_sdpa_params *p,
                        mlxn_tensor *out);
mlxn_status cpu_tq_dequantize(mlxn_stream *s, const mlxn_tq_cache *c, int which_v, int64_t pos, mlxn_tensor *out);

#endif
