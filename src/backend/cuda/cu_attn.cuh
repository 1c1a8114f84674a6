/* Private interface between the CUDA sdpa entry point (cu_sdpa.cu) and the
 * tensor-core attention (cu_attn_flash.cu): whether a call fits the
 * tensor-core kernel, and the launch. C++ only. */
#ifndef MLXN_CU_ATTN_CUH
#define MLXN_CU_ATTN_CUH

#include "backend/cuda/cuda_common.cuh"

/* True when the tensor-core path covers the call: K and V both bf16 or both
 * f16 with unit inner stride, 16-byte aligned rows, D == Dv in {64, 128,
 * 256} (512: see cu_attn_flash.cu), no mask, no sinks (q any float dtype
 * and strides), and the smallest launch of that head dim within smem_optin
 * bytes of shared memory a block (the device's opt-in limit). */
bool cu_attn_mma_fits(const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v, const mlxn_sdpa_params *p,
                      int smem_optin);

/* Runs it (flash attention over key tiles, split over the keys with a
 * combine pass when there are too few query tiles to fill the GPU). */
mlxn_status cu_attn_mma(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                        const mlxn_sdpa_params *p, mlxn_tensor *out);

#endif
