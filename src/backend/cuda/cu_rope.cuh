/* The rotary embedding of one element, shared by rope_kernel (cu_rope.cu)
 * and the fused rope + cache append (cu_rope_kv.cu), so both give the same
 * bits; the formulas and why each rounding is spelled out are in
 * cu_rope.cu's overview. C++ only. */
#ifndef MLXN_CU_ROPE_CUH
#define MLXN_CU_ROPE_CUH

#include <math.h>

#include "backend/cuda/cuda_common.cuh"

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

/* A rope call's arguments as the kernels see them. */
typedef struct cu_rope_args {
    int64_t T, D;      /* x's axis -2 (rows sit at t = row mod T) and last axis */
    int dims;          /* rotated leading columns (even) */
    bool trad;         /* adjacent pairs (true) or halves */
    float base_step;   /* log(base) / (dims/2) when freqs is NULL */
    const float *freqs; /* f32 [dims/2] (stride fs) or NULL */
    int64_t fs;
    float off;         /* the position of t = 0 (already read from the device when given there) */
    float scale;
} cu_rope_args;

/* The rope arguments of rows [..., T, D] under p (host side; base_step
 * as cu_op_rope computes it), for the kernels that take a cu_rope_args. */
static inline cu_rope_args cu_rope_args_of(const mlxn_rope_params *p, int64_t T, int64_t D) {
    cu_rope_args a;
    a.T = T;
    a.D = D;
    a.dims = p->dims;
    a.trad = p->traditional;
    a.base_step = p->freqs ? 0.0f : logf(p->base) / (float)(p->dims / 2);
    a.freqs = p->freqs ? (const float *)cu_ptr(p->freqs) : NULL;
    a.fs = p->freqs ? p->freqs->strides[0] : 0;
    a.off = (float)p->offset;
    a.scale = p->scale;
    return a;
}

/* The rotated value of rope pair i's first element (first: a cos - b sin)
 * or second (a sin + b cos), a and b the pair's inputs, at position pos
 * (row t + offset, unscaled): the formula and roundings every kernel that
 * rotates shares (rope_kernel, rope_kv_kernel, the q/k/v mat-vec's
 * rope_kv epilogue), so they give the same bits. The sum is the same
 * either way round (an IEEE add is commutative), so traditional pairs take
 * it too. */
__device__ __forceinline__ void cu_rope_angle(const cu_rope_args &a, float pos, int i, float *sn, float *cs) {
    const float p = pos * a.scale;
    const float inv = a.freqs ? 1.0f / a.freqs[i * a.fs] : exp_exact(-(float)i * a.base_step);
    sincosf(p * inv, sn, cs);
}
__device__ __forceinline__ float cu_rope_pair(const cu_rope_args &a, float pos, int i, float va, float vb, bool first) {
    float sn, cs;
    cu_rope_angle(a, pos, i, &sn, &cs);
    return first ? __fadd_rn(__fmul_rn(va, cs), -__fmul_rn(vb, sn)) : __fadd_rn(__fmul_rn(va, sn), __fmul_rn(vb, cs));
}
/* Both rotated values of pair i (the same bits as two cu_rope_pair calls,
 * one angle). */
__device__ __forceinline__ void cu_rope_pair2(const cu_rope_args &a, float pos, int i, float va, float vb, float *first,
                                              float *second) {
    float sn, cs;
    cu_rope_angle(a, pos, i, &sn, &cs);
    *first = __fadd_rn(__fmul_rn(va, cs), -__fmul_rn(vb, sn));
    *second = __fadd_rn(__fmul_rn(va, sn), __fmul_rn(vb, cs));
}

/* Element e (row-major over x's [rows, D]) of rope(x). x f32 view [..., T, D]. */
__device__ __forceinline__ float cu_rope_elem(const cu_view &x, const cu_rope_args &a, int64_t e) {
    const int64_t xs = x.st[x.nd - 1];
    const int half = a.dims / 2;
    const int64_t r = e / a.D, c = e - r * a.D;
    const float *xr = (const float *)x.p + cu_row_off(x, r);
    if (c >= a.dims) return xr[c * xs];
    const int64_t t = r % a.T;
    const int i = a.trad ? (int)(c >> 1) : (int)(c < half ? c : c - half);
    const int64_t ia = a.trad ? 2 * i : i, ib = a.trad ? 2 * i + 1 : i + half;
    return cu_rope_pair(a, (float)t + a.off, i, xr[ia * xs], xr[ib * xs], c == ia);
}

#endif
