/* CUDA fast Walsh-Hadamard transform over the last axis (n a power of two
 * up to 2^15), times scale, with the CPU's exact sequence of roundings
 * (hadamard.c): stages h = 1, 2, ..., n/2 map (a, b) at distance h to
 * (a + b, a - b), then the result is multiplied by scale. Same operations,
 * so the result is bit-identical to the CPU's.
 *
 * One block per row; the row lives in shared memory (n floats, up to
 * 128 KB: the dynamic limit is raised for rows past 48 KB) and each stage
 * is one pass of n/2 butterflies over the block's threads. The whole row
 * is read before anything is written, so out may be x (in place).
 * Where a row does not fit a block's shared memory (2^15 floats on a card
 * with 99 KB a block, sm_86 / sm_89), the first stages run as above over
 * pieces of m elements that fit (the stages below m never mix pieces), and
 * the stages from m on run in place over `out` in global memory, one block
 * per row (hadamard_top): the same butterflies in the same stage order, so
 * the result is still the CPU's bit for bit. */
#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

enum { HAD_THREADS = 256 };

/* x f32 view [..., n]; out f32 [rows, n]: stages h = 1 .. m/2 of every
 * m-element piece of each row (m a power of two dividing n), times scale. */
__global__ void hadamard_kernel(cu_view x, int64_t rows, int n, int m, float scale, float *out) {
    extern __shared__ float y[]; /* [m] */
    const int64_t xs = x.st[x.nd - 1], per_row = n / m;
    for (int64_t r = blockIdx.x; r < rows * per_row; r += gridDim.x) {
        const int64_t row = r / per_row, piece = r % per_row;
        const float *xr = (const float *)x.p + cu_row_off(x, row) + piece * m * xs;
        __syncthreads(); /* the previous piece's results are written out */
        for (int i = threadIdx.x; i < m; i += blockDim.x) y[i] = xr[i * xs];
        __syncthreads();
        for (int h = 1; h < m; h <<= 1) {
            for (int p = threadIdx.x; p < m / 2; p += blockDim.x) {
                int j = (p / h) * 2 * h + (p % h);
                float a = y[j], b = y[j + h];
                y[j] = a + b;
                y[j + h] = a - b;
            }
            __syncthreads();
        }
        float *o = out + r * (int64_t)m; /* row * n + piece * m */
        for (int i = threadIdx.x; i < m; i += blockDim.x) o[i] = y[i] * scale;
    }
}

/* out f32 [rows, n], in place: stages h = m .. n/2 in global memory, the
 * last one times scale (the pieces' pass ran with scale 1, exact). */
__global__ void hadamard_top(float *out, int64_t rows, int n, int m, float scale) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float *y = out + r * (int64_t)n;
        for (int h = m; h < n; h <<= 1) {
            const float sc = 2 * h == n ? scale : 1.0f;
            __syncthreads(); /* the stage before is written (a block's global writes are visible after it) */
            for (int p = threadIdx.x; p < n / 2; p += blockDim.x) {
                int j = (p / h) * 2 * h + (p % h);
                float a = y[j], b = y[j + h];
                y[j] = (a + b) * sc;
                y[j + h] = (a - b) * sc;
            }
        }
    }
}

extern "C" mlxn_status cu_op_hadamard(mlxn_stream *s, const mlxn_tensor *x, float scale, mlxn_tensor *out) {
    const char *op = "hadamard";
    MLXN_TRY(cu_begin(s, op));
    cu_view xv = cu_view_of(x);
    int64_t rows = cu_rows(xv);
    int n = (int)cu_last(xv);
    if (rows == 0) return MLXN_OK;
    /* pieces of m elements: the whole row where it fits a block's shared memory */
    int m = n;
    while ((size_t)m * sizeof(float) > (size_t)cu_ctx(s)->smem_optin && m > 1) m >>= 1;
    size_t smem = (size_t)m * sizeof(float);
    if (smem > 48 * 1024) MLXN_TRY(cu_smem_allow(s, op, hadamard_kernel, smem));
    const int64_t pieces = rows * (n / m);
    unsigned blocks = (unsigned)(pieces < 65535 * 8 ? pieces : 65535 * 8);
    float *o = (float *)cu_ptr(out);
    hadamard_kernel<<<blocks, HAD_THREADS, smem, cu_ctx(s)->s>>>(xv, rows, n, m, m == n ? scale : 1.0f, o);
    MLXN_TRY(cu_launched(s, op, "hadamard_kernel"));
    if (m == n) return MLXN_OK;
    blocks = (unsigned)(rows < 65535 * 8 ? rows : 65535 * 8);
    hadamard_top<<<blocks, 1024, 0, cu_ctx(s)->s>>>(o, rows, n, m, scale);
    return cu_launched(s, op, "hadamard_top");
}
