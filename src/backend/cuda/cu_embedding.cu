/* CUDA embedding gathers: out[i, :] = table[ids[i], :] as f32, from a dense
 * f32/f16/bf16 table or a quantized one (dequantized as gathered, with the
 * CPU's float-exact w = scale * q + bias or fp(q) * scale).
 *
 * The ids live in device memory (a captured decode step reads whatever
 * token its replay was given), so they are checked where they are read: a
 * bad id's row is written as zeros and the first one is recorded in the
 * stream's error record, which the next stream sync reports as
 * MLXN_ERR_INVALID_ARGUMENT naming the position and the id. Nothing here
 * waits for the host. One thread per output element, consecutive threads
 * on consecutive columns (coalesced). */
#include "backend/cuda/cu_quant.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}


/* ids i32/u32 [n] (stride is); table view [V, D]; out f32 [n, D]. */
/* The id of row i as the dtype says (i32 or u32), widened. */
__device__ __forceinline__ int64_t id_at(const int32_t *ids, int64_t is, int u32, int64_t i) {
    int32_t v = ids[i * is];
    return u32 ? (int64_t)(uint32_t)v : (int64_t)v;
}

/* ids i32/u32 [n] (stride is); table view [V, D]; out f32 [n, D]; err: the
 * stream's error record. */
__global__ void embedding_kernel(const int32_t *ids, int64_t is, int u32, cu_view tb, int64_t n, int64_t D,
                                 float *out, long long *err) {
    const int64_t V = tb.shape[0];
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * D; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e / D, c = e - i * D, id = id_at(ids, is, u32, i);
        if (id < 0 || id >= V) {
            if (c == 0) cu_report(err, CU_ERR_EMBEDDING_ID, i, id, V);
            out[e] = 0.0f;
            continue;
        }
        out[e] = cu_load(tb.p, tb.dt, id * tb.st[0] + c * tb.st[1]);
    }
}

extern "C" mlxn_status cu_op_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *table,
                                       mlxn_tensor *out) {
    const char *op = "embedding";
    MLXN_TRY(cu_begin(s, op));
    int64_t n = ids->shape[0], D = table->shape[1];
    if (n == 0 || D == 0) return MLXN_OK;
    embedding_kernel<<<cu_blocks(n * D, 256), 256, 0, cu_ctx(s)->s>>>(
        (const int32_t *)cu_ptr(ids), ids->strides[0], ids->dtype == MLXN_DTYPE_U32, cu_view_of(table), n, D,
        (float *)cu_ptr(out), cu_ctx(s)->err_dev);
    return cu_launched(s, op, "embedding_kernel");
}

/* ids [n] (stride is); a: the table [V, D]; out f32 [n, D]; err: the
 * stream's error record. */
__global__ void qembedding_kernel(const int32_t *ids, int64_t is, int u32, cu_qmat a, int64_t V, int64_t n, int64_t D,
                                  float *out, long long *err) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * D; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e / D, c = e - i * D, id = id_at(ids, is, u32, i);
        if (id < 0 || id >= V) {
            if (c == 0) cu_report(err, CU_ERR_QEMBEDDING_ID, i, id, V);
            out[e] = 0.0f;
            continue;
        }
        out[e] = cu_q_weight(a, id, c);
    }
}

extern "C" mlxn_status cu_op_quantized_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *wq,
                                                 const mlxn_tensor *scales, const mlxn_tensor *biases,
                                                 const mlxn_quant_params *q, mlxn_tensor *out) {
    const char *op = "quantized_embedding";
    MLXN_TRY(cu_begin(s, op));
    cu_qmat a;
    MLXN_TRY(cu_qmat_of(op, wq, scales, biases, q, &a));
    int64_t n = ids->shape[0], D = out->shape[1];
    if (n == 0 || D == 0) return MLXN_OK;
    qembedding_kernel<<<cu_blocks(n * D, 256), 256, 0, cu_ctx(s)->s>>>(
        (const int32_t *)cu_ptr(ids), ids->strides[0], ids->dtype == MLXN_DTYPE_U32, a, wq->shape[0], n, D,
        (float *)cu_ptr(out), cu_ctx(s)->err_dev);
    return cu_launched(s, op, "qembedding_kernel");
}
