/* CUDA fast Walsh-Hadamard transform over the last axis (n a power of two
 * up to 2^15), times scale, with the CPU's exact sequence of roundings
 * (hadamard.c): stages h = 1, 2, ..., n/2 map (a, b) at distance h to
 * (a + b, a - b), then the result is multiplied by scale. Same operations,
 * so the result is bit-identical to the CPU's.
 *
 * One block per row; the row lives in shared memory (n floats, up to
 * 128 KB: the dynamic limit is raised for rows past 48 KB) and each stage
 * is one pass of n/2 butterflies over the block's threads. The whole row
 * is read before anything is written, so out may be x (in place). */
#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

enum { HAD_THREADS = 256 };

/* x f32 view [..., n]; out f32 [rows, n]. */
__global__ void hadamard_kernel(cu_view x, int64_t rows, int n, float scale, float *out) {
    extern __shared__ float y[]; /* [n] */
    const int64_t xs = x.st[x.nd - 1];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = (const float *)x.p + cu_row_off(x, r);
        __syncthreads(); /* the previous row's results are written out */
        for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = xr[i * xs];
        __syncthreads();
        for (int h = 1; h < n; h <<= 1) {
            for (int p = threadIdx.x; p < n / 2; p += blockDim.x) {
                int j = (p / h) * 2 * h + (p % h);
                float a = y[j], b = y[j + h];
                y[j] = a + b;
                y[j + h] = a - b;
            }
            __syncthreads();
        }
        float *o = out + r * (int64_t)n;
        for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = y[i] * scale;
    }
}

extern "C" mlxn_status cu_op_hadamard(mlxn_stream *s, const mlxn_tensor *x, float scale, mlxn_tensor *out) {
    const char *op = "hadamard";
    MLXN_TRY(cu_begin(s, op));
    cu_view xv = cu_view_of(x);
    int64_t rows = cu_rows(xv);
    int n = (int)cu_last(xv);
    if (rows == 0) return MLXN_OK;
    size_t smem = (size_t)n * sizeof(float);
    if (smem > 48 * 1024) MLXN_TRY(cu_smem_allow(s, op, hadamard_kernel, smem));
    unsigned blocks = (unsigned)(rows < 65535 * 8 ? rows : 65535 * 8);
    hadamard_kernel<<<blocks, HAD_THREADS, smem, cu_ctx(s)->s>>>(xv, rows, n, scale, (float *)cu_ptr(out));
    return cu_launched(s, op, "hadamard_kernel");
}
