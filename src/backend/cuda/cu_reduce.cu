/* CUDA last-axis row ops: rms_norm, layer_norm, softmax, argmax, in the
 * forms the CPU backend documents (norm.c, activations.c):
 *   rms:     out = x * (1 / sqrt(sum(x^2) / D + eps)) [* w]
 *   layer:   c = x - mean; out = c * (1 / sqrt(sum(c^2) / D + eps)) [* w] [+ b]
 *   softmax: exp(x - max) * (1 / sum); a row holding NaN or +inf, or only
 *            -inf, comes out all NaN (as MLX)
 *   argmax:  first index of the largest value; the first NaN wins.
 * With w_offset != 0 the rms weight is (w_offset + w) rounded to w's dtype.
 *
 * add_rms_norm is rms_norm with the residual add before it in the same
 * kernel (rms_rows_kernel<ADD>), bit for bit add then rms_norm.
 *
 * One block per row (grid-stride over rows); threads stride over the row,
 * so loads are coalesced for unit-stride rows, and the sums are f32 tree
 * reductions (warp shuffles, then one value per warp through shared
 * memory). A row is read twice (three times for layer_norm/softmax): the
 * second read comes from L1/L2 for any row that fits there. */
#include <math.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

enum { RED_THREADS = 256 };

/* Effective norm weight element i: (off + w[i]) rounded to w's dtype. */
__device__ __forceinline__ float norm_w(const cu_view &w, int64_t i, float off) {
    float v = cu_load(w.p, w.dt, i * w.st[0]);
    if (off != 0.0f) {
        v = off + v;
        if (w.dt == MLXN_DTYPE_BF16) v = cu_bf16_f32(cu_f32_bf16(v));
        if (w.dt == MLXN_DTYPE_F16) v = cu_f16_f32(cu_f32_f16(v));
    }
    return v;
}

/* x f32 view [..., D]; w, b [D] views (has_w / has_b); out f32 [rows, D]. */
__global__ void norm_kernel(cu_view x, int64_t rows, int64_t D, cu_view w, bool has_w, float w_off, cu_view b,
                            bool has_b, float eps, bool layer, float *out) {
    __shared__ float sh[32];
    const int64_t xs = x.st[x.nd - 1];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = (const float *)x.p + cu_row_off(x, r);
        float mean = 0.0f;
        if (layer) {
            float s = 0.0f;
            for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += xr[i * xs];
            mean = cu_block_sum(s, sh) / (float)D;
        }
        float ss = 0.0f;
        for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
            float c = xr[i * xs] - mean;
            ss += c * c;
        }
        ss = cu_block_sum(ss, sh);
        const float inv = 1.0f / sqrtf(ss / (float)D + eps);
        float *o = out + r * D;
        for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
            float v = __fmul_rn(xr[i * xs] - mean, inv);
            if (has_w) v = __fmul_rn(v, norm_w(w, i, w_off));
            if (has_b) v = __fadd_rn(v, cu_load(b.p, b.dt, i * b.st[0]));
            o[i] = v;
        }
    }
}

/* sum(v.x^2 + v.y^2 + v.z^2 + v.w^2) with the roundings spelled out:
 * y*y, then x, z, w by fused multiply-adds. This is the contraction the
 * compiler chose for the plain expression, written with intrinsics so that
 * every kernel that shares it (rms_rows_kernel with and without its add)
 * rounds alike whatever the compiler would do in each. */
__device__ __forceinline__ float sumsq4(float4 v) {
    return __fmaf_rn(v.w, v.w, __fmaf_rn(v.z, v.z, __fmaf_rn(v.x, v.x, __fmul_rn(v.y, v.y))));
}

/* rms_norm of contiguous rows (D % 4 == 0, D <= 1024 NV): every x and w
 * element a thread needs is loaded up front into registers as 16-byte
 * vectors, before the reduction. Why: the general kernel above walks each
 * row twice in dependent loop iterations, and in a decode step (one row;
 * the norm weight evicted from L2 by the weight stream since the last
 * token) its w loads were a chain of DRAM round trips, ~10 us per norm
 * against ~3 us here. Same formula and rounding per element as norm_kernel.
 * With ADD (add_rms_norm) the row is first a + b, each element one f32
 * add as add_kernel's, stored to `sum` and normalized from the registers:
 * the residual add costs no kernel of its own, and since the reduction and
 * the scaling are this very code, out has the bits of add_kernel followed
 * by the ADD = false kernel on its result.
 * x f32 rows ld elements apart [rows, D] (ADD: a), or, with ld < 0 (not
 * ADD), rows where the view xview puts them (unit last stride, every row
 * 16-byte aligned: a column slice such as a fused q/k/v output's q for
 * several tokens, whose rows are not one stride apart; taking this kernel
 * rather than norm_kernel keeps its summation order, so a view and a
 * contiguous copy normalize to the same bits); xb f32 rows ldb apart
 * [rows, D] (ADD only: b); w [D] of dtype WDT (f32, bf16 or f16) when
 * has_w; sum f32 [rows, D] (ADD only; may be x or xb itself: every element
 * is read before the same thread writes it); out f32 [rows, D]. */
template <int NV, int WDT, bool ADD>
__global__ void __launch_bounds__(RED_THREADS) rms_rows_kernel(const float *x, int64_t ld, cu_view xview, const float *xb,
                                                               int64_t ldb, int64_t rows, int D, const void *w,
                                                               bool has_w, float w_off, float eps, float *sum,
                                                               float *out) {
    __shared__ float sh[32];
    const int D4 = D / 4;
    cu_pdl_wait(); /* programmatic launch (cu_launch): x (and, in principle, w) come from earlier kernels */
    cu_pdl_launch_dependents();
    float wv[NV][4];
#pragma unroll
    for (int k = 0; k < NV; k++) {
        const int i = threadIdx.x + k * RED_THREADS;
        wv[k][0] = wv[k][1] = wv[k][2] = wv[k][3] = 1.0f;
        if (has_w && i < D4) {
            if (WDT == MLXN_DTYPE_F32) {
                const float4 t = __ldg((const float4 *)w + i); /* f32: the offset is added unrounded */
                wv[k][0] = w_off + t.x, wv[k][1] = w_off + t.y, wv[k][2] = w_off + t.z, wv[k][3] = w_off + t.w;
            } else {
                const uint2 t = __ldg((const uint2 *)w + i);
                const uint32_t h[4] = {t.x & 0xffffu, t.x >> 16, t.y & 0xffffu, t.y >> 16};
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float v = WDT == MLXN_DTYPE_BF16 ? cu_bf16_f32((uint16_t)h[e]) : cu_f16_f32((uint16_t)h[e]);
                    if (w_off != 0.0f) {
                        v = w_off + v;
                        v = WDT == MLXN_DTYPE_BF16 ? cu_bf16_f32(cu_f32_bf16(v)) : cu_f16_f32(cu_f32_f16(v));
                    }
                    wv[k][e] = v;
                }
            }
        }
    }
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float4 *xr = (const float4 *)(x + (ld >= 0 ? r * ld : cu_row_off(xview, r)));
        float4 xv[NV];
#pragma unroll
        for (int k = 0; k < NV; k++) {
            const int i = threadIdx.x + k * RED_THREADS;
            xv[k] = i < D4 ? xr[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
        if (ADD) {
            /* every load of the row before the first store: sum may alias x
               or xb, so a store would otherwise hold back the loads after it
               (one memory round trip per vector instead of one per row).
               Plain loads, not __ldg: x and xb are written by this kernel. */
            const float4 *br = (const float4 *)(xb + r * ldb);
            float4 bv[NV];
#pragma unroll
            for (int k = 0; k < NV; k++) {
                const int i = threadIdx.x + k * RED_THREADS;
                bv[k] = i < D4 ? br[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
            float4 *sr = (float4 *)(sum + r * (int64_t)D);
#pragma unroll
            for (int k = 0; k < NV; k++) {
                const int i = threadIdx.x + k * RED_THREADS;
                if (i < D4) {
                    xv[k] = make_float4(__fadd_rn(xv[k].x, bv[k].x), __fadd_rn(xv[k].y, bv[k].y),
                                        __fadd_rn(xv[k].z, bv[k].z), __fadd_rn(xv[k].w, bv[k].w));
                    sr[i] = xv[k];
                }
            }
        }
        float ss = 0.0f;
#pragma unroll
        for (int k = 0; k < NV; k++) ss = __fadd_rn(ss, sumsq4(xv[k]));
        ss = cu_block_sum(ss, sh);
        const float inv = 1.0f / sqrtf(ss / (float)D + eps);
        float4 *o = (float4 *)(out + r * (int64_t)D);
#pragma unroll
        for (int k = 0; k < NV; k++) {
            const int i = threadIdx.x + k * RED_THREADS;
            if (i < D4) {
                float4 v = make_float4(__fmul_rn(xv[k].x, inv), __fmul_rn(xv[k].y, inv), __fmul_rn(xv[k].z, inv),
                                       __fmul_rn(xv[k].w, inv));
                if (has_w) {
                    v.x = __fmul_rn(v.x, wv[k][0]), v.y = __fmul_rn(v.y, wv[k][1]);
                    v.z = __fmul_rn(v.z, wv[k][2]), v.w = __fmul_rn(v.w, wv[k][3]);
                }
                o[i] = v;
            }
        }
    }
}

/* The rms_rows_kernel instance for NV, w's dtype and ADD (xb, ldb and sum
 * are unused without ADD). */
template <int NV, bool ADD>
static void rms_rows_launch(unsigned grid, mlxn_stream *s, int wdt, const float *x, int64_t ld, const cu_view &xv,
                            const float *xb, int64_t ldb, int64_t rows, int D, const void *w, bool has_w, float w_off, float eps,
                            float *sum, float *out) {
    if (wdt == MLXN_DTYPE_BF16)
        cu_launch(s, rms_rows_kernel<NV, MLXN_DTYPE_BF16, ADD>, dim3(grid), dim3(RED_THREADS), 0, x, ld, xv, xb, ldb, rows,
                  D, w, has_w, w_off, eps, sum, out);
    else if (wdt == MLXN_DTYPE_F16)
        cu_launch(s, rms_rows_kernel<NV, MLXN_DTYPE_F16, ADD>, dim3(grid), dim3(RED_THREADS), 0, x, ld, xv, xb, ldb, rows,
                  D, w, has_w, w_off, eps, sum, out);
    else
        cu_launch(s, rms_rows_kernel<NV, MLXN_DTYPE_F32, ADD>, dim3(grid), dim3(RED_THREADS), 0, x, ld, xv, xb, ldb, rows,
                  D, w, has_w, w_off, eps, sum, out);
}

/* NV (float4 vectors per thread) for rows of D elements, D % 4 == 0 and
 * D <= 8 * 4 * RED_THREADS. */
template <bool ADD>
static void rms_rows_dispatch(unsigned grid, mlxn_stream *s, int wdt, const float *x, int64_t ld, const cu_view &xv,
                              const float *xb, int64_t ldb, int64_t rows, int D, const void *w, bool has_w, float w_off, float eps,
                              float *sum, float *out) {
    const int nv = (D / 4 + RED_THREADS - 1) / RED_THREADS;
    if (nv <= 1) rms_rows_launch<1, ADD>(grid, s, wdt, x, ld, xv, xb, ldb, rows, D, w, has_w, w_off, eps, sum, out);
    else if (nv <= 2) rms_rows_launch<2, ADD>(grid, s, wdt, x, ld, xv, xb, ldb, rows, D, w, has_w, w_off, eps, sum, out);
    else if (nv <= 4) rms_rows_launch<4, ADD>(grid, s, wdt, x, ld, xv, xb, ldb, rows, D, w, has_w, w_off, eps, sum, out);
    else rms_rows_launch<8, ADD>(grid, s, wdt, x, ld, xv, xb, ldb, rows, D, w, has_w, w_off, eps, sum, out);
}

/* x f32 view [..., N]; out f32 [rows, N]. */
__global__ void softmax_kernel(cu_view x, int64_t rows, int64_t N, float *out) {
    __shared__ float sh[32];
    const int64_t xs = x.st[x.nd - 1];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = (const float *)x.p + cu_row_off(x, r);
        float m = -INFINITY, nan = 0.0f;
        for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
            float v = xr[i * xs];
            if (isnan(v)) nan = 1.0f;
            m = fmaxf(m, v);
        }
        /* block max, with a NaN anywhere making it NaN (fmaxf alone drops NaN) */
        for (int o = 16; o > 0; o >>= 1) {
            m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
            nan = fmaxf(nan, __shfl_xor_sync(0xffffffffu, nan, o));
        }
        __syncthreads();
        if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = nan > 0.0f ? NAN : m;
        __syncthreads();
        float rm = -INFINITY;
        bool any_nan = false;
        for (int i = 0; i < (int)(blockDim.x >> 5); i++) {
            float v = sh[i];
            if (isnan(v)) any_nan = true;
            rm = fmaxf(rm, v);
        }
        if (any_nan) rm = NAN;
        float *o = out + r * N;
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
            float e = expf(xr[i * xs] - rm);
            o[i] = e;
            s += e;
        }
        s = cu_block_sum(s, sh);
        const float norm = 1.0f / s;
        for (int64_t i = threadIdx.x; i < N; i += blockDim.x) o[i] = o[i] * norm;
    }
}

/* (v, i) beats (w, j): NaN beats numbers, larger beats smaller, ties and
 * NaN-vs-NaN go to the smaller index. */
__device__ __forceinline__ bool am_better(float v, int64_t i, float w, int64_t j) {
    bool vn = isnan(v), wn = isnan(w);
    if (vn != wn) return vn;
    if (!vn && v != w) return v > w;
    return i < j;
}

/* x f32 view [..., N]; out i32 [rows]. */
__global__ void argmax_kernel(cu_view x, int64_t rows, int64_t N, int32_t *out) {
    __shared__ float shv[32];
    __shared__ int64_t shi[32];
    const int64_t xs = x.st[x.nd - 1];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = (const float *)x.p + cu_row_off(x, r);
        float bv = -INFINITY;
        int64_t bi = INT64_MAX;
        for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
            float v = xr[i * xs];
            if (am_better(v, i, bv, bi)) bv = v, bi = i;
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (am_better(ov, oi, bv, bi)) bv = ov, bi = oi;
        }
        __syncthreads();
        if ((threadIdx.x & 31) == 0) shv[threadIdx.x >> 5] = bv, shi[threadIdx.x >> 5] = bi;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < (int)(blockDim.x >> 5); w++)
                if (am_better(shv[w], shi[w], bv, bi)) bv = shv[w], bi = shi[w];
            out[r] = (int32_t)bi;
        }
    }
}

static unsigned row_blocks(int64_t rows) { return (unsigned)(rows < 65535 * 8 ? (rows < 1 ? 1 : rows) : 65535 * 8); }

/* 16-byte aligned. */
static bool al16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* rms_rows_kernel takes x: unit stride on the last axis, rows one stride
 * (*ld, a multiple of 4) apart, 16-byte aligned. */
static bool rows_vec4(const cu_view &v, int64_t *ld) {
    return v.st[v.nd - 1] == 1 && cu_rows_uniform(v, ld) && *ld % 4 == 0 && al16(v.p);
}

/* rms_rows_kernel takes x as a view (ld < 0): unit stride on the last
 * axis, every leading stride a multiple of 4, 16-byte aligned. */
static bool rows_vec4_view(const cu_view &v) {
    if (v.st[v.nd - 1] != 1 || !al16(v.p)) return false;
    for (int i = 0; i < v.nd - 1; i++)
        if (v.shape[i] != 1 && v.st[i] % 4 != 0) return false;
    return true;
}

/* rms_rows_kernel takes D, the weight and out (as rms_norm of x into out). */
static bool rms_rows_ok(int64_t D, const mlxn_tensor *w, const void *out) {
    if (D % 4 != 0 || D > 8 * 4 * RED_THREADS || !al16(out)) return false;
    if (!w) return true;
    const cu_view wv = cu_view_of(w);
    return wv.st[0] == 1 && al16(wv.p) &&
           (w->dtype == MLXN_DTYPE_F32 || w->dtype == MLXN_DTYPE_BF16 || w->dtype == MLXN_DTYPE_F16);
}

static mlxn_status run_norm(mlxn_stream *s, const char *op, const mlxn_tensor *x, const mlxn_tensor *w, float w_off,
                            const mlxn_tensor *b, float eps, bool layer, mlxn_tensor *out) {
    MLXN_TRY(cu_begin(s, op));
    cu_view xv = cu_view_of(x);
    int64_t rows = cu_rows(xv), D = cu_last(xv);
    if (rows == 0 || D == 0) return MLXN_OK;
    cu_view wv = w ? cu_view_of(w) : xv, bv = b ? cu_view_of(b) : xv;
    /* rms rows one stride apart, or any view of aligned unit-stride rows:
       the register-resident kernel (see above) */
    int64_t ld = D;
    if (!layer && !b && (rows_vec4(xv, &ld) || (ld = -1, rows_vec4_view(xv))) && rms_rows_ok(D, w, cu_ptr(out))) {
        rms_rows_dispatch<false>(row_blocks(rows), s, w ? (int)w->dtype : MLXN_DTYPE_F32, (const float *)xv.p, ld, xv,
                                 NULL, 0, rows, (int)D, wv.p, w != NULL, w_off, eps, NULL, (float *)cu_ptr(out));
        return cu_launched(s, op, "rms_rows_kernel");
    }
    norm_kernel<<<row_blocks(rows), RED_THREADS, 0, cu_ctx(s)->s>>>(xv, rows, D, wv, w != NULL, w_off, bv, b != NULL,
                                                                     eps, layer, (float *)cu_ptr(out));
    return cu_launched(s, op, "norm_kernel");
}

extern "C" mlxn_status cu_op_rms_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, float eps,
                                      float w_offset, mlxn_tensor *out) {
    return run_norm(s, "rms_norm", x, w, w ? w_offset : 0.0f, NULL, eps, false, out);
}

/* One rms_rows_kernel<ADD> when it takes a, b, sum (contiguous, so it is
 * what rms_norm would run on sum), the weight and out; otherwise
 * add_kernel then rms_norm, the very composition the op promises to
 * equal. */
extern "C" mlxn_status cu_op_add_rms_norm(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b,
                                          const mlxn_tensor *w, float eps, float w_offset, mlxn_tensor *sum,
                                          mlxn_tensor *out) {
    const char *op = "add_rms_norm";
    MLXN_TRY(cu_begin(s, op));
    cu_view av = cu_view_of(a), bv = cu_view_of(b);
    int64_t rows = cu_rows(av), D = cu_last(av), lda = D, ldb = D;
    if (rows == 0 || D == 0) return MLXN_OK;
    if (rows_vec4(av, &lda) && rows_vec4(bv, &ldb) && al16(cu_ptr(sum)) && rms_rows_ok(D, w, cu_ptr(out))) {
        rms_rows_dispatch<true>(row_blocks(rows), s, w ? (int)w->dtype : MLXN_DTYPE_F32, (const float *)av.p, lda, av,
                                (const float *)bv.p, ldb, rows, (int)D, w ? cu_ptr(w) : NULL, w != NULL,
                                w ? w_offset : 0.0f, eps, (float *)cu_ptr(sum), (float *)cu_ptr(out));
        return cu_launched(s, op, "rms_rows_kernel<add>");
    }
    MLXN_TRY(cu_op_add(s, a, b, sum));
    return cu_op_rms_norm(s, sum, w, eps, w_offset, out);
}

extern "C" mlxn_status cu_op_layer_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w,
                                        const mlxn_tensor *b, float eps, mlxn_tensor *out) {
    return run_norm(s, "layer_norm", x, w, 0.0f, b, eps, true, out);
}

extern "C" mlxn_status cu_op_softmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    const char *op = "softmax";
    MLXN_TRY(cu_begin(s, op));
    cu_view xv = cu_view_of(x);
    int64_t rows = cu_rows(xv), N = cu_last(xv);
    if (rows == 0 || N == 0) return MLXN_OK;
    softmax_kernel<<<row_blocks(rows), RED_THREADS, 0, cu_ctx(s)->s>>>(xv, rows, N, (float *)cu_ptr(out));
    return cu_launched(s, op, "softmax_kernel");
}

extern "C" mlxn_status cu_op_argmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    const char *op = "argmax";
    MLXN_TRY(cu_begin(s, op));
    cu_view xv = cu_view_of(x);
    int64_t rows = cu_rows(xv), N = cu_last(xv);
    if (rows == 0) return MLXN_OK;
    argmax_kernel<<<row_blocks(rows), RED_THREADS, 0, cu_ctx(s)->s>>>(xv, rows, N, (int32_t *)cu_ptr(out));
    return cu_launched(s, op, "argmax_kernel");
}
