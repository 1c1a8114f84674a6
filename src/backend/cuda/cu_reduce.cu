/* CUDA last-axis row ops: rms_norm, layer_norm, softmax, argmax, in the
 * forms the CPU backend documents (norm.c, activations.c):
 *   rms:     out = x * (1 / sqrt(sum(x^2) / D + eps)) [* w]
 *   layer:   c = x - mean; out = c * (1 / sqrt(sum(c^2) / D + eps)) [* w] [+ b]
 *   softmax: exp(x - max) * (1 / sum); a row holding NaN or +inf, or only
 *            -inf, comes out all NaN (as MLX)
 *   argmax:  first index of the largest value; the first NaN wins.
 * With w_offset != 0 the rms weight is (w_offset + w) rounded to w's dtype.
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

/* rms_norm of contiguous rows (D % 4 == 0, D <= 1024 NV): every x and w
 * element a thread needs is loaded up front into registers as 16-byte
 * vectors, before the reduction. Why: the general kernel above walks each
 * row twice in dependent loop iterations, and in a decode step (one row;
 * the norm weight evicted from L2 by the weight stream since the last
 * token) its w loads were a chain of DRAM round trips, ~10 us per norm
 * against ~3 us here. Same formula and rounding per element as norm_kernel.
 * x f32 rows ld elements apart [rows, D]; w [D] of dtype WDT (f32, bf16 or
 * f16) when has_w; out f32 [rows, D]. */
template <int NV, int WDT>
__global__ void __launch_bounds__(RED_THREADS) rms_rows_kernel(const float *x, int64_t ld, int64_t rows, int D,
                                                               const void *w, bool has_w, float w_off, float eps,
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
        const float4 *xr = (const float4 *)(x + r * ld);
        float4 xv[NV];
        float ss = 0.0f;
#pragma unroll
        for (int k = 0; k < NV; k++) {
            const int i = threadIdx.x + k * RED_THREADS;
            xv[k] = i < D4 ? xr[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            ss += xv[k].x * xv[k].x + xv[k].y * xv[k].y + xv[k].z * xv[k].z + xv[k].w * xv[k].w;
        }
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

template <int NV>
static void rms_rows_launch(unsigned grid, mlxn_stream *s, int wdt, const float *x, int64_t ld, int64_t rows, int D,
                            const void *w, bool has_w, float w_off, float eps, float *out) {
    if (wdt == MLXN_DTYPE_BF16)
        cu_launch(s, rms_rows_kernel<NV, MLXN_DTYPE_BF16>, dim3(grid), dim3(RED_THREADS), 0, x, ld, rows, D, w, has_w, w_off, eps, out);
    else if (wdt == MLXN_DTYPE_F16)
        cu_launch(s, rms_rows_kernel<NV, MLXN_DTYPE_F16>, dim3(grid), dim3(RED_THREADS), 0, x, ld, rows, D, w, has_w, w_off, eps, out);
    else
        cu_launch(s, rms_rows_kernel<NV, MLXN_DTYPE_F32>, dim3(grid), dim3(RED_THREADS), 0, x, ld, rows, D, w, has_w, w_off, eps, out);
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

static mlxn_status run_norm(mlxn_stream *s, const char *op, const mlxn_tensor *x, const mlxn_tensor *w, float w_off,
                            const mlxn_tensor *b, float eps, bool layer, mlxn_tensor *out) {
    MLXN_TRY(cu_begin(s, op));
    cu_view xv = cu_view_of(x);
    int64_t rows = cu_rows(xv), D = cu_last(xv);
    if (rows == 0 || D == 0) return MLXN_OK;
    cu_view wv = w ? cu_view_of(w) : xv, bv = b ? cu_view_of(b) : xv;
    /* contiguous rms rows: the register-resident kernel (see above) */
    int64_t ld = D;
    const int wdt = w ? (int)w->dtype : MLXN_DTYPE_F32;
    if (!layer && !b && xv.st[xv.nd - 1] == 1 && D % 4 == 0 && D <= 8 * 4 * RED_THREADS && cu_rows_uniform(xv, &ld) &&
        ld % 4 == 0 && ((uintptr_t)xv.p & 15) == 0 && ((uintptr_t)cu_ptr(out) & 15) == 0 &&
        (!w || (wv.st[0] == 1 && ((uintptr_t)wv.p & 15) == 0 &&
                (wdt == MLXN_DTYPE_F32 || wdt == MLXN_DTYPE_BF16 || wdt == MLXN_DTYPE_F16)))) {
        const int nv = (int)((D / 4 + RED_THREADS - 1) / RED_THREADS);
        const unsigned g = row_blocks(rows);
        const float *xp = (const float *)xv.p;
        void *op_out = cu_ptr(out);
        if (nv <= 1) rms_rows_launch<1>(g, s, wdt, xp, ld, rows, (int)D, wv.p, w != NULL, w_off, eps, (float *)op_out);
        else if (nv <= 2) rms_rows_launch<2>(g, s, wdt, xp, ld, rows, (int)D, wv.p, w != NULL, w_off, eps, (float *)op_out);
        else if (nv <= 4) rms_rows_launch<4>(g, s, wdt, xp, ld, rows, (int)D, wv.p, w != NULL, w_off, eps, (float *)op_out);
        else rms_rows_launch<8>(g, s, wdt, xp, ld, rows, (int)D, wv.p, w != NULL, w_off, eps, (float *)op_out);
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
