/* CUDA quantized matmul for many x rows (prefill): dequantize W to bf16,
 * round x to bf16, multiply on the tensor cores through cuBLAS (bf16
 * operands, f32 accumulation, f32 out). Also the op's entry point: it
 * picks this path or the mat-vec kernels (cu_qmatmul.cu) by the number of
 * x rows.
 *
 * Why this shape: at 512 x rows a 4096 x 14336 matrix is 60 GFLOP, so the
 * tensor cores must do the arithmetic; the mat-vec kernels re-read W per 8
 * x rows on the FP32 units. Writing W once as bf16 (2 bytes a weight) and
 * handing it to cuBLAS costs one extra pass over ~117 MB against a GEMM
 * that is compute bound, and it covers every mode and width with one
 * dequantize kernel.
 *
 * W is dequantized as bf16 into a scratch buffer the stream owns (grown
 * on demand and kept, so a steady stream of calls allocates nothing), then
 * cuBLAS computes out = x_bf16 @ W_bf16^T. A W of more than QMM_SLAB_ELEMS
 * weights (a vocabulary-sized head) goes a range of K at a time
 * (out += x[:, k0 : k1] @ block), which bounds the scratch. Blocks small
 * enough to stay in L2 between the dequantize kernel and the GEMM were
 * tried and lost: 2 / 4 / 8 / 16 M-weight blocks ran 403 / 280 / 246 /
 * 221 us at n = 512 against 182 us for the whole 58.7 M-weight matrix
 * (H100, docs/perf.md "CUDA prefill"), so each block costs ~10 us more
 * than the traffic it saves.
 *
 * Numerics: x and W are rounded to bf16 (relative 2^-9 each), so the
 * result differs from the f32 CPU path by NMSE ~1e-5 (see mlxn/ops.h). */
#include <cuda_bf16.h>
#include <limits.h>

#include "backend/cuda/cu_qmv.cuh"
#include "backend/cuda/cu_quant.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

enum { QMM_THREADS = 256, QMM_CHUNK = 16 /* codes per thread: every group size is a multiple of 16 */ };

/* Weights per dequantized block: 64 Mi bf16 = 128 MiB (a 4096 x 14336
 * matrix, 58.7 M weights, is one block). QMM_SLAB_MAX bounds what
 * MLXN_CUDA_QMM_SLAB_ELEMS may ask for (32-bit indices in the kernel). */
static const int64_t QMM_SLAB_ELEMS = (int64_t)64 << 20, QMM_SLAB_MAX = (int64_t)1 << 30;

/* e2m1 code -> value, from bits (no table: a run-time index into a local
 * array would go to local memory). */
__device__ __forceinline__ float qmm_e2m1(uint32_t q) {
    const uint32_t e = (q >> 1) & 3u, m = q & 1u;
    const uint32_t mag = e ? ((e + 126u) << 23) | (m << 22) : (m ? 0x3f000000u : 0u);
    return __uint_as_float(mag | ((q & 8u) << 28));
}

/* The group scale of (row r, group g) for MODE; affine scales of dtype sdt. */
template <int MODE>
__device__ __forceinline__ float qmm_scale(const cu_qmat &w, int64_t i) {
    if (MODE == MLXN_QUANT_AFFINE) return cu_load(w.sc, w.sdt, i);
    const uint8_t b = ((const uint8_t *)w.sc)[i];
    if (MODE == MLXN_QUANT_NVFP4) return mlxn_e4m3_to_f32(b) * w.gscale;
    return mlxn_e8m0_to_f32(b);
}

/* Dequantize the block rows [r0, r0 + rows) x columns [c0, c0 + cn) of
 * the stored matrix w to bf16 dst [rows, cn] (c0 and cn multiples of 16;
 * c0 of 32, so odd widths keep their word parity). One thread per 16
 * codes (one group, one scale): it loads the 16 * BITS bits (4-byte loads;
 * a warp reads one contiguous span) and writes 32 bytes (two 16-byte
 * stores; a warp writes 1 KB contiguous). Block-local indices are 32-bit
 * (a block holds at most QMM_SLAB_MAX weights): a 64-bit division per
 * thread costs more than the rest of the index arithmetic. Weights are
 * computed as the CPU reference does (s * q + b with two roundings, or
 * fp(q) * s) and then rounded to bf16, nearest even. */
template <int MODE, int BITS>
__global__ void __launch_bounds__(QMM_THREADS) qmm_dequant_kernel(cu_qmat w, int64_t r0, int rows, int c0, int cn,
                                                                  __nv_bfloat16 *dst /* [rows, cn] */) {
    /* 16 * BITS bits start at bit 0 of a word for even BITS, at bit 0 or 16 for odd BITS */
    constexpr int NL = (16 * (BITS & 1) + QMM_CHUNK * BITS + 31) / 32; /* words to load */
    const int cpr = cn / QMM_CHUNK; /* chunks per block row */
    const int total = rows * cpr;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const int r = i / cpr, cl = i - r * cpr, c = c0 / QMM_CHUNK + cl;
        const int64_t row = r0 + r;
        const int64_t bit = (int64_t)c * QMM_CHUNK * BITS;
        /* (tiled: 4-bit, so a 16-code piece is two words of one chunk's row) */
        const uint32_t *p = w.wq + (w.tiled ? mlxn_tiled_word(row, bit >> 5, w.cols) : row * w.wq_st + (bit >> 5));
        uint32_t wd[NL];
#pragma unroll
        for (int j = 0; j < NL; j++) wd[j] = __ldg(p + j);
        if (BITS & 1) { /* odd widths: the chunk may start mid-word (bit 16) */
            if (bit & 31) {
#pragma unroll
                for (int j = 0; j < NL; j++) wd[j] = __funnelshift_r(wd[j], j + 1 < NL ? wd[j + 1] : 0u, 16);
            }
        }
        const int64_t g = ((int64_t)c * QMM_CHUNK) / w.group;
        const int64_t si = w.tiled ? mlxn_tiled_scale(row, g, w.cols, w.group) : row * w.sc_st + g;
        const float s = qmm_scale<MODE>(w, si);
        const float b = MODE == MLXN_QUANT_AFFINE ? cu_load(w.bi, w.sdt, w.tiled ? si : row * w.bi_st + g) : 0.0f;
        uint32_t packed[QMM_CHUNK / 2];
#pragma unroll
        for (int k = 0; k < QMM_CHUNK; k += 2) {
            float v[2];
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int pos = (k + h) * BITS, wi = pos >> 5, sh = pos & 31;
                uint32_t q = sh + BITS <= 32 ? wd[wi] >> sh : __funnelshift_r(wd[wi], wd[wi + 1 < NL ? wi + 1 : wi], sh);
                q &= (1u << BITS) - 1u;
                if (MODE == MLXN_QUANT_AFFINE) v[h] = __fadd_rn(__fmul_rn(s, (float)q), b);
                else if (MODE == MLXN_QUANT_MXFP8) v[h] = mlxn_e4m3_to_f32((uint8_t)q) * s;
                else v[h] = qmm_e2m1(q) * s;
            }
            __nv_bfloat162 two = __floats2bfloat162_rn(v[0], v[1]);
            packed[k / 2] = *(uint32_t *)&two;
        }
        uint4 *o = (uint4 *)(dst + (int64_t)r * cn + cl * QMM_CHUNK);
        o[0] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
        o[1] = make_uint4(packed[4], packed[5], packed[6], packed[7]);
    }
}

typedef void (*qmm_dq_fn)(cu_qmat, int64_t, int, int, int, __nv_bfloat16 *);

static qmm_dq_fn qmm_dq_pick(int mode, int bits) {
#define QMM_PICK(M, B) \
    if (mode == (M) && bits == (B)) return qmm_dequant_kernel<(M), (B)>;
    QMM_PICK(MLXN_QUANT_AFFINE, 1) QMM_PICK(MLXN_QUANT_AFFINE, 2) QMM_PICK(MLXN_QUANT_AFFINE, 3)
    QMM_PICK(MLXN_QUANT_AFFINE, 4) QMM_PICK(MLXN_QUANT_AFFINE, 5) QMM_PICK(MLXN_QUANT_AFFINE, 6)
    QMM_PICK(MLXN_QUANT_AFFINE, 8) QMM_PICK(MLXN_QUANT_MXFP4, 4) QMM_PICK(MLXN_QUANT_MXFP8, 8)
    QMM_PICK(MLXN_QUANT_NVFP4, 4)
#undef QMM_PICK
    return NULL;
}

/* The stream's scratch, at least `bytes` (grown in stream order: the old
 * buffer is freed after the work queued before it). */
static mlxn_status qmm_scratch(mlxn_stream *s, const char *op, size_t bytes, void **p) {
    cu_stream *c = cu_ctx(s);
    if (c->qmm_cap < bytes) {
        if (c->qmm_buf) cudaFreeAsync(c->qmm_buf, c->s);
        c->qmm_buf = NULL;
        c->qmm_cap = 0;
        MLXN_TRY(cu_scratch(s, op, bytes, &c->qmm_buf));
        c->qmm_cap = bytes;
    }
    *p = c->qmm_buf;
    return MLXN_OK;
}

static mlxn_status qmm_blas_check(mlxn_stream *s, cublasStatus_t e) {
    if (e == CUBLAS_STATUS_SUCCESS) return MLXN_OK;
    return mlxn_fail(e == CUBLAS_STATUS_ALLOC_FAILED ? MLXN_ERR_OUT_OF_MEMORY : MLXN_ERR_DEVICE,
                     "cuda:%d: quantized_matmul: cublasGemmEx (bf16) failed: %s", cu_ctx(s)->index,
                     cu_ctx(s)->blas_api.status_string(e));
}

static bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/* x rows from which this path beats the mat-vec kernels, measured on an
 * H100 (docs/perf.md "CUDA prefill"; bench/device.sh with MLXN_QMM_SWEEP=1
 * re-measures it): with W [N, K] the mat-vec kernels took 85-96 us at 4
 * rows and 129-153 us at 8, this path 110-125 us at 8 (every mode); with
 * W [K, N] the mat-vec kernel took 18 ms at 1 row, this path ~0.12 ms.
 * The streaming mat-vec kernels for 1..8 rows (cu_qmv_fast.cu) landed
 * after that sweep, logging 74.7 us at 8 rows, so W [N, K] takes this
 * path from 16 rows (two 8-row mat-vec passes) until the sweep is re-run.
 * MLXN_CUDA_QMM_MIN_ROWS overrides both (to time or test either path; read
 * when the stream is made, cu_knobs). */
static int64_t qmm_min_rows(mlxn_stream *s, bool transpose) {
    const int64_t set = cu_ctx(s)->knobs.qmm_min_rows;
    return set ? set : transpose ? 16 : 1;
}

/* x f32 [M, ldx] (unit stride, 16-byte aligned rows, K % 4 == 0) -> bf16
 * [M, K], nearest even. One thread per 4 values: a 16-byte load and an
 * 8-byte store (the generic gather moves one element per thread). */
__global__ void qmm_x_bf16_kernel(const float *x /* [M, ldx] */, int64_t ldx, int64_t M, int K,
                                  __nv_bfloat16 *xb /* [M, K] */) {
    const int q4 = K / 4;
    const int64_t total = M * q4;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t m = i / q4;
        const int c = (int)(i - m * q4) * 4;
        const float4 v = *(const float4 *)(x + m * ldx + c);
        __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
        uint2 u;
        u.x = *(uint32_t *)&lo;
        u.y = *(uint32_t *)&hi;
        *(uint2 *)(xb + m * K + c) = u;
    }
}

/* x as bf16 [M, K] in xb. */
static mlxn_status qmm_x_bf16(mlxn_stream *s, const char *op, const mlxn_tensor *x, int64_t M, int64_t K,
                              __nv_bfloat16 *xb) {
    cu_view xv = cu_view_of(x);
    int64_t ldx = 0;
    const float *xp = (const float *)cu_ptr(x);
    if (K % 4 || !(xv.st[xv.nd - 1] == 1 || K == 1) || !cu_rows_uniform(xv, &ldx) || ldx % 4 || ((uintptr_t)xp & 15))
        return cu_gather_as(s, op, x, MLXN_DTYPE_BF16, xb);
    const int64_t n4 = M * (K / 4), blocks = (n4 + QMM_THREADS - 1) / QMM_THREADS;
    qmm_x_bf16_kernel<<<(unsigned)(blocks < 65536 ? blocks : 65536), QMM_THREADS, 0, cu_ctx(s)->s>>>(xp, ldx, M, (int)K,
                                                                                                    xb);
    return cu_launched(s, op, "qmm_x_bf16_kernel");
}

/* The prefill path; M x rows of K, out [M, N]. W is taken a range of K at
 * a time (all of it, unless it has more than QMM_SLAB_ELEMS weights):
 * dequantize that block, then out += x[:, k0 : k1] @ block (the first
 * block with beta = 0). transpose: stored W [N, K], the block is
 * columns [k0, k1) of every row (k0 a multiple of 128); not transposed:
 * stored W [K, N], the block is rows [k0, k1). */
static mlxn_status qmm_gemm(mlxn_stream *s, const mlxn_tensor *x, const cu_qmat &w, const mlxn_quant_params *q,
                            bool transpose, int64_t M, int64_t K, int64_t N, float *o) {
    const char *op = "quantized_matmul";
    qmm_dq_fn dq = qmm_dq_pick(q->mode, q->bits);
    if (!dq)
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: quantized_matmul for %s %d-bit is not built yet",
                         mlxn_quant_mode_name(q->mode), q->bits);
    /* MLXN_CUDA_QMM_SLAB_ELEMS sets the block size (tests reach the many-block paths with small matrices) */
    int64_t want = cu_ctx(s)->knobs.qmm_slab ? cu_ctx(s)->knobs.qmm_slab : QMM_SLAB_ELEMS;
    want = want > QMM_SLAB_MAX ? QMM_SLAB_MAX : want;
    int64_t kb = want / N; /* K per block */
    if (transpose) kb = kb / 128 * 128;
    kb = kb < (transpose ? 128 : 1) ? (transpose ? 128 : 1) : kb > K ? K : kb;
    if (kb * N > QMM_SLAB_MAX) /* one block row or 128 columns of a huge N: past the 32-bit block indices */
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: quantized_matmul with N = %lld is not built yet",
                         (long long)N);
    const size_t xbytes = ((size_t)(M * K) * 2 + 255) & ~(size_t)255;
    void *buf = NULL;
    MLXN_TRY(qmm_scratch(s, op, xbytes + (size_t)(kb * N) * 2, &buf));
    __nv_bfloat16 *xb = (__nv_bfloat16 *)buf;                   /* [M, K] */
    __nv_bfloat16 *wb = (__nv_bfloat16 *)((char *)buf + xbytes); /* [N, kb] (transpose) or [kb, N] */
    MLXN_TRY(qmm_x_bf16(s, op, x, M, K, xb));
    cublasHandle_t h = NULL;
    MLXN_TRY(cu_blas_handle(s, &h));
    cudaStream_t cs = cu_ctx(s)->s;
    const float one = 1.0f, zero = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += kb) {
        const int64_t kn = K - k0 < kb ? K - k0 : kb;
        const int64_t chunks = kn * N / QMM_CHUNK;
        const int64_t blocks = (chunks + QMM_THREADS - 1) / QMM_THREADS;
        if (transpose) dq<<<(unsigned)blocks, QMM_THREADS, 0, cs>>>(w, 0, (int)N, (int)k0, (int)kn, wb);
        else dq<<<(unsigned)blocks, QMM_THREADS, 0, cs>>>(w, k0, (int)kn, 0, (int)N, wb);
        MLXN_TRY(cu_launched(s, op, "qmm_dequant_kernel"));
        /* column-major views: out^T [N x M] (ld N), x^T [K x M] (ld K); the block:
         * transpose: stored [N, kn] = col-major kn x N -> op T; else stored [kn, N] = col-major N x kn -> op N */
        cublasStatus_t e = cu_ctx(s)->blas_api.gemm_ex(
            h, transpose ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M, (int)kn, &one, wb, CUDA_R_16BF,
            transpose ? (int)kn : (int)N, xb + k0, CUDA_R_16BF, (int)K, k0 ? &one : &zero, o, CUDA_R_32F, (int)N,
            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        MLXN_TRY(qmm_blas_check(s, e));
    }
    return MLXN_OK;
}

extern "C" mlxn_status cu_op_quantized_matmul_any(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                                  const mlxn_tensor *scales, const mlxn_tensor *biases,
                                                  const mlxn_quant_params *q, bool transpose, mlxn_tensor *out) {
    const char *op = "quantized_matmul";
    cu_view xv = cu_view_of(x);
    const int64_t M = cu_rows(xv), K = cu_last(xv), N = out->shape[out->ndim - 1];
    /* a tiled matrix (4-bit, MLXN_QUANT_TILED16): the tensor-core mat-vec where it takes the rows (up to 8
     * at a time, W [N, K]), this path for everything else; the f32 mat-vec kernels read rows only */
    const bool tiled = q->layout == MLXN_QUANT_TILED16;
    if (tiled && transpose && M < 16 && K > 0 && N > 0) {
        cu_qmat w;
        MLXN_TRY(cu_qmat_of(op, wq, scales, biases, q, &w));
        if (cu_qmv_mma_takes(w, N, K, s)) return cu_op_quantized_matmul(s, x, wq, scales, biases, q, transpose, out);
    } else if (!tiled && (M < qmm_min_rows(s, transpose) || K == 0 || N == 0 || !fits_int(M) || !fits_int(K) ||
                          !fits_int(N) || !qmm_dq_pick(q->mode, q->bits))) {
        return cu_op_quantized_matmul(s, x, wq, scales, biases, q, transpose, out);
    }
    if (tiled && (M == 0 || N == 0 || K == 0 || !fits_int(M) || !fits_int(K) || !fits_int(N)))
        return cu_op_quantized_matmul(s, x, wq, scales, biases, q, transpose, out); /* empty: zeros or nothing */
    MLXN_TRY(cu_begin(s, op));
    cu_qmat w;
    MLXN_TRY(cu_qmat_of(op, wq, scales, biases, q, &w));
    return qmm_gemm(s, x, w, q, transpose, M, K, N, (float *)cu_ptr(out));
}
