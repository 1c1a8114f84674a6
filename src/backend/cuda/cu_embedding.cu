/* CUDA embedding gathers: out[i, :] = table[ids[i], :] as f32, from a dense
 * f32/f16/bf16 table or a quantized one (dequantized as gathered, with the
 * CPU's float-exact w = scale * q + bias or fp(q) * scale).
 *
 * The ids are checked on the host first (a bad id is
 * MLXN_ERR_INVALID_ARGUMENT naming its position, and nothing is written):
 * that copies the ids back, which a captured decode graph cannot do; the
 * graph work will move the check to a device-side flag. One thread per
 * output element, consecutive threads on consecutive columns (coalesced). */
#include <stdlib.h>

#include "backend/cuda/cu_quant.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}


/* Checks every id against [0, V) on the host. */
static mlxn_status check_ids(mlxn_stream *s, const char *op, const mlxn_tensor *ids, int64_t V) {
    int64_t n = ids->shape[0];
    if (n == 0) return MLXN_OK;
    int64_t st = ids->strides[0];
    size_t span = (size_t)((n - 1) * st + 1) * 4;
    uint32_t *h = (uint32_t *)malloc(span);
    if (!h) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of host memory for %lld ids", op, (long long)n);
    mlxn_status rc = cu_check(cudaStreamSynchronize(cu_ctx(s)->s), op, "cudaStreamSynchronize", cu_ctx(s)->index);
    if (rc == MLXN_OK)
        rc = cu_check(cudaMemcpy(h, cu_ptr(ids), span, cudaMemcpyDeviceToHost), op, "cudaMemcpy (ids)",
                      cu_ctx(s)->index);
    for (int64_t i = 0; rc == MLXN_OK && i < n; i++) {
        int64_t id = ids->dtype == MLXN_DTYPE_U32 ? (int64_t)h[i * st] : (int64_t)(int32_t)h[i * st];
        if (id < 0 || id >= V)
            rc = mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: ids[%lld] = %lld is outside the table's [0, %lld)", op,
                           (long long)i, (long long)id, (long long)V);
    }
    free(h);
    return rc;
}

/* ids i32/u32 [n] (stride is); table view [V, D]; out f32 [n, D]. */
__global__ void embedding_kernel(const int32_t *ids, int64_t is, cu_view tb, int64_t n, int64_t D, float *out) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * D; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e / D, c = e - i * D;
        int64_t id = (int64_t)(uint32_t)ids[i * is]; /* validated: in [0, V) */
        out[e] = cu_load(tb.p, tb.dt, id * tb.st[0] + c * tb.st[1]);
    }
}

extern "C" mlxn_status cu_op_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *table,
                                       mlxn_tensor *out) {
    const char *op = "embedding";
    MLXN_TRY(cu_begin(s, op));
    MLXN_TRY(check_ids(s, op, ids, table->shape[0]));
    int64_t n = ids->shape[0], D = table->shape[1];
    if (n == 0 || D == 0) return MLXN_OK;
    embedding_kernel<<<cu_blocks(n * D, 256), 256, 0, cu_ctx(s)->s>>>(
        (const int32_t *)cu_ptr(ids), ids->strides[0], cu_view_of(table), n, D, (float *)cu_ptr(out));
    return cu_launched(s, op, "embedding_kernel");
}

/* ids [n] (stride is); a: the table [V, D]; out f32 [n, D]. */
__global__ void qembedding_kernel(const int32_t *ids, int64_t is, cu_qmat a, int64_t n, int64_t D, float *out) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * D; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e / D, c = e - i * D;
        out[e] = cu_q_weight(a, (int64_t)(uint32_t)ids[i * is], c);
    }
}

extern "C" mlxn_status cu_op_quantized_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *wq,
                                                 const mlxn_tensor *scales, const mlxn_tensor *biases,
                                                 const mlxn_quant_params *q, mlxn_tensor *out) {
    const char *op = "quantized_embedding";
    MLXN_TRY(cu_begin(s, op));
    cu_qmat a;
    MLXN_TRY(cu_qmat_of(op, wq, scales, biases, q, &a));
    MLXN_TRY(check_ids(s, op, ids, wq->shape[0]));
    int64_t n = ids->shape[0], D = out->shape[1];
    if (n == 0 || D == 0) return MLXN_OK;
    qembedding_kernel<<<cu_blocks(n * D, 256), 256, 0, cu_ctx(s)->s>>>((const int32_t *)cu_ptr(ids), ids->strides[0],
                                                                        a, n, D, (float *)cu_ptr(out));
    return cu_launched(s, op, "qembedding_kernel");
}
