/* extern "C" entry points of the CUDA kernels, one per backend op, with
 * the vtable's arguments (validated by src/ops). Each lives in a .cu file
 * of this directory:
 *   cu_elementwise.cu  add, scale, copy, silu, gelu, swiglu, geglu
 *   cu_kv_write.cu     kv_write, kv_write2
 *   cu_reduce.cu       rms_norm, add_rms_norm, layer_norm, softmax, argmax
 *   cu_rope.cu         rope
 *   cu_rope_kv.cu      rope_kv_write (rope of q and k, k and v into their caches)
 *   cu_hadamard.cu     hadamard
 *   cu_embedding.cu    embedding, quantized_embedding
 *   cu_qmm.cu          quantized_matmul's entry (_any): many x rows
 *                      dequantize W to bf16 for cuBLAS, few go to
 *   cu_qmatmul.cu      quantized_matmul (mat-vec kernels, one matrix of
 *                      instantiations), quantized_matmul_fused
 *   cu_matmul.cu       matmul (cuBLAS)
 *   cu_sdpa.cu         sdpa (the exact fallback; bf16/f16 K/V go to the
 *                      tensor-core kernel of cu_attn_flash.cu)
 *   cu_sample.cu       sample (greedy in one cluster; else log-softmax, filters on a CUB sort, draw, over chunks)
 * Only compiled with MLXN_HAVE_CUDA. */
#ifndef MLXN_CUDA_OPS_H
#define MLXN_CUDA_OPS_H

#include "mlxn/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

mlxn_status cu_op_add(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, mlxn_tensor *out);
mlxn_status cu_op_scale(mlxn_stream *s, const mlxn_tensor *x, float alpha, mlxn_tensor *out);
mlxn_status cu_op_copy(mlxn_stream *s, const mlxn_tensor *src, mlxn_tensor *dst);
mlxn_status cu_op_kv_write(mlxn_stream *s, const mlxn_tensor *src, const mlxn_tensor *slot, mlxn_tensor *dst);
mlxn_status cu_op_kv_write2(mlxn_stream *s, const mlxn_tensor *k_src, const mlxn_tensor *v_src,
                            const mlxn_tensor *slot, mlxn_tensor *k_dst, mlxn_tensor *v_dst);
mlxn_status cu_op_rope_kv_write(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                                const mlxn_rope_params *p, const mlxn_tensor *slot, mlxn_tensor *q_out,
                                mlxn_tensor *k_dst, mlxn_tensor *v_dst);
mlxn_status cu_op_silu(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);
mlxn_status cu_op_gelu(mlxn_stream *s, const mlxn_tensor *x, mlxn_gelu_kind kind, mlxn_tensor *out);
mlxn_status cu_op_swiglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_tensor *out);
mlxn_status cu_op_geglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_gelu_kind kind,
                        mlxn_tensor *out);

mlxn_status cu_op_rms_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, float eps, float w_offset,
                           mlxn_tensor *out);
mlxn_status cu_op_add_rms_norm(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, const mlxn_tensor *w,
                               float eps, float w_offset, mlxn_tensor *sum, mlxn_tensor *out);
mlxn_status cu_op_layer_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, const mlxn_tensor *b,
                             float eps, mlxn_tensor *out);
mlxn_status cu_op_softmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);
mlxn_status cu_op_argmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);
mlxn_status cu_op_sample(mlxn_stream *s, const mlxn_tensor *logits, const mlxn_sample_params *p, mlxn_tensor *token);

mlxn_status cu_op_rope(mlxn_stream *s, const mlxn_tensor *x, const mlxn_rope_params *p, mlxn_tensor *out);
mlxn_status cu_op_hadamard(mlxn_stream *s, const mlxn_tensor *x, float scale, mlxn_tensor *out);

mlxn_status cu_op_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *table, mlxn_tensor *out);
mlxn_status cu_op_quantized_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *wq,
                                      const mlxn_tensor *scales, const mlxn_tensor *biases,
                                      const mlxn_quant_params *q, mlxn_tensor *out);

mlxn_status cu_op_quantized_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                   const mlxn_tensor *scales, const mlxn_tensor *biases,
                                   const mlxn_quant_params *q, bool transpose, mlxn_tensor *out);
mlxn_status cu_op_quantized_matmul_any(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                       const mlxn_tensor *scales, const mlxn_tensor *biases,
                                       const mlxn_quant_params *q, bool transpose, mlxn_tensor *out);
bool cu_op_quantized_matmul_fuses(mlxn_stream *s, const mlxn_tensor *wq, const mlxn_tensor *scales,
                                  const mlxn_tensor *biases, const mlxn_quant_params *q, int64_t M);
mlxn_status cu_op_quantized_matmul_fused(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                         const mlxn_tensor *scales, const mlxn_tensor *biases,
                                         const mlxn_quant_params *q, const mlxn_qmm_fusion *f, mlxn_tensor *out,
                                         int *done);
mlxn_status cu_op_quantized_tile(mlxn_stream *s, mlxn_tensor *wq, mlxn_tensor *scales, mlxn_tensor *biases,
                                 const mlxn_quant_params *q);
mlxn_status cu_op_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, bool transpose,
                         mlxn_tensor *out);
mlxn_status cu_op_sdpa(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                       const mlxn_sdpa_params *p, mlxn_tensor *out);

#ifdef __cplusplus
}
#endif
#endif
