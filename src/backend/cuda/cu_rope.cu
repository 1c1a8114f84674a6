/* CUDA rotary position embedding, as the CPU backend computes it (rope.c):
 * row r of x [..., T, D] sits at t = r mod T, position
 * pos = ((float)t + offset) * scale; pair i < dims/2 turns by
 * pos * inv_freq[i], inv_freq[i] = 1 / freqs[i] or
 * exp(-i * (log(base) / (dims/2))) with the same polynomial exp as the CPU
 * (libm-style exps differ by ulps, and positions reach 10^5, where an ulp
 * of the frequency moves the angle visibly). Pairs are (x[2i], x[2i+1])
 * (traditional) or (x[i], x[i + dims/2]); each becomes
 * (a cos - b sin, a sin + b cos) with every product rounded on its own
 * (no fused multiply-add, as the CPU and MLX). Columns from dims on are
 * copied.
 *
 * One thread per output element; the two elements of a pair each compute
 * the pair's sin/cos (accurate sincosf: the op is bound by memory, and the
 * fast intrinsics lose accuracy at large angles). offset_tensor, when
 * given, is read on the device, so a captured graph can advance it. */
#include <math.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

/* The CPU's vm_exp_exact: exp(x) = 2^n * p(f), degree-6 polynomial. */
__device__ __forceinline__ float exp_exact(float x) {
    if (isnan(x)) return x;
    if (x > 88.0f) return INFINITY;
    if (x < -88.0f) return 0.0f;
    /* explicit roundings: a fused x * log2e - n would change f, and with it
     * the frequency, by an ulp (the CPU rounds each step) */
    float y = __fmul_rn(x, 1.442695f);
    float n = floorf(__fadd_rn(y, 0.5f));
    float f = __fsub_rn(y, n);
    float p = 1.535336188319500e-4f;
    p = fmaf(p, f, 1.339887440266574e-3f);
    p = fmaf(p, f, 9.618437357674640e-3f);
    p = fmaf(p, f, 5.550332471162809e-2f);
    p = fmaf(p, f, 2.402264791363012e-1f);
    p = fmaf(p, f, 6.931472028550421e-1f);
    p = fmaf(p, f, 1.0f);
    return __fmul_rn(__uint_as_float((uint32_t)((int32_t)n + 127) << 23), p);
}

/* x f32 view [..., T, D]; freqs f32 [dims/2] (stride fs) or NULL; offp:
 * device i32 [1] or NULL; out f32 [rows, D] contiguous. */
__global__ void rope_kernel(cu_view x, int64_t rows, int64_t T, int64_t D, int dims, bool trad, float base_step,
                            const float *freqs, int64_t fs, int offset, const int32_t *offp, float scale,
                            float *out) {
    cu_pdl_wait(); /* programmatic launch (cu_launch): inputs come from the kernel before */
    cu_pdl_launch_dependents();
    const int64_t n = rows * D, xs = x.st[x.nd - 1];
    const int half = dims / 2;
    const float off = (float)(offp ? *offp : offset);
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = e / D, c = e - r * D;
        const float *xr = (const float *)x.p + cu_row_off(x, r);
        if (c >= dims) {
            out[e] = xr[c * xs];
            continue;
        }
        const int64_t t = r % T;
        const float pos = ((float)t + off) * scale;
        const int i = trad ? (int)(c >> 1) : (int)(c < half ? c : c - half);
        const float inv = freqs ? 1.0f / freqs[i * fs] : exp_exact(-(float)i * base_step);
        float sn, cs;
        sincosf(pos * inv, &sn, &cs);
        const int64_t ia = trad ? 2 * i : i, ib = trad ? 2 * i + 1 : i + half;
        const float a = xr[ia * xs], b = xr[ib * xs];
        /* first of the pair: a cos - b sin; second: a sin + b cos (traditional: b cos + a sin) */
        out[e] = (c == ia) ? __fadd_rn(__fmul_rn(a, cs), -__fmul_rn(b, sn))
                           : (trad ? __fadd_rn(__fmul_rn(b, cs), __fmul_rn(a, sn))
                                   : __fadd_rn(__fmul_rn(a, sn), __fmul_rn(b, cs)));
    }
}

extern "C" mlxn_status cu_op_rope(mlxn_stream *s, const mlxn_tensor *x, const mlxn_rope_params *p, mlxn_tensor *out) {
    const char *op = "rope";
    MLXN_TRY(cu_begin(s, op));
    cu_view xv = cu_view_of(x);
    int64_t rows = cu_rows(xv), D = cu_last(xv), T = x->shape[x->ndim - 2];
    if (rows == 0 || D == 0) return MLXN_OK;
    int half = p->dims / 2;
    float step = p->freqs ? 0.0f : logf(p->base) / (float)half;
    cu_launch(s, rope_kernel, dim3(cu_blocks(rows * D, 256)), dim3(256), 0,
        xv, rows, T, D, p->dims, p->traditional, step, p->freqs ? (const float *)cu_ptr(p->freqs) : NULL,
        p->freqs ? p->freqs->strides[0] : 0, p->offset,
        p->offset_tensor ? (const int32_t *)cu_ptr(p->offset_tensor) : NULL, p->scale, (float *)cu_ptr(out));
    return cu_launched(s, op, "rope_kernel");
}
