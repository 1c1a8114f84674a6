/* Vector math for the CPU kernels: exp, erf, tanh, sigmoid and horizontal
 * reductions on 8 (AVX2) and 16 (AVX-512) f32 lanes, plus the scalar forms
 * the SCALAR path uses.
 *
 * Everything SIMD is compiled per function with __attribute__((target)),
 * so the library itself is built for the baseline x86-64 and still runs on
 * processors without AVX2; a kernel only calls these after checking the
 * device's resolved ISA (cpu_dev(s)->isa). On other architectures
 * CPU_VMATH_X86 is 0 and only the scalar forms exist.
 *
 * exp and erf are the approximations MLX's CPU backend evaluates, so
 * results agree with MLX to an ulp or two:
 *   exp(x) = 2^n * p(f), n = round(x log2 e), f = x log2 e - n in [-1/2, 1/2],
 *            p a degree-6 polynomial for 2^f (Cephes' exp2 coefficients);
 *            x > 88 gives inf, x < -88 gives 0, NaN stays NaN.
 *   erf(x) = sign(x) (1 - t (a1 + t (a2 + ...)) e^(-x^2)), t = 1 / (1 + p|x|)
 *            (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
 * The others are built on that exp (MLX calls libm's tanh; ours is within
 * ~1e-7 absolute of it):
 *   tanh(u) = sign(u) (1 - 2 / (e^(2|u|) + 1)).
 *   sigmoid(x) = x < 0 ? y : 1 - y with y = 1 / (1 + e^|x|) (MLX's form),
 *            which never overflows into inf/inf. */
#ifndef MLXN_CPU_VMATH_H
#define MLXN_CPU_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mlxn/dtype.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_VMATH_X86 1
#include <immintrin.h>
#define TGT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TGT_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
/* The AVX512 ISA level also requires VNNI (cpu_backend.c); kernels that use it say so. */
#define TGT_AVX512_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#else
#define CPU_VMATH_X86 0
#endif

/* Cephes' polynomial for 2^f on [-1/2, 1/2], highest degree first. */
#define VM_EXP_C6 1.535336188319500e-4f
#define VM_EXP_C5 1.339887440266574e-3f
#define VM_EXP_C4 9.618437357674640e-3f
#define VM_EXP_C3 5.550332471162809e-2f
#define VM_EXP_C2 2.402264791363012e-1f
#define VM_EXP_C1 6.931472028550421e-1f
#define VM_LOG2E 1.442695f
/* Abramowitz & Stegun 7.1.26 */
#define VM_ERF_P 0.3275911f
#define VM_ERF_A1 0.254829592f
#define VM_ERF_A2 -0.284496736f
#define VM_ERF_A3 1.421413741f
#define VM_ERF_A4 -1.453152027f
#define VM_ERF_A5 1.061405429f

/* ---- scalar ------------------------------------------------------------- */

/* The same exp as the vector forms, step for step (fmaf is exact, so this
 * agrees bit for bit with an FMA lane). Used where MLX's exact exp value
 * matters: rope's inverse frequencies multiply positions in the hundreds of
 * thousands, so one ulp there is a visible phase error. Slow without a
 * hardware FMA; call it O(dims) times, never per element. */
static inline float vm_exp_exact(float x) {
    if (isnan(x)) return x;
    if (x > 88.0f) return INFINITY;
    if (x < -88.0f) return 0.0f;
    float y = x * VM_LOG2E;
    float n = floorf(y + 0.5f);
    float f = y - n;
    float p = VM_EXP_C6;
    p = fmaf(p, f, VM_EXP_C5);
    p = fmaf(p, f, VM_EXP_C4);
    p = fmaf(p, f, VM_EXP_C3);
    p = fmaf(p, f, VM_EXP_C2);
    p = fmaf(p, f, VM_EXP_C1);
    p = fmaf(p, f, 1.0f);
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, 4);
    return two_n * p;
}

static inline float vm_sigmoid(float x) {
    float y = 1.0f / (1.0f + expf(fabsf(x)));
    return x < 0.0f ? y : 1.0f - y;
}

#if CPU_VMATH_X86
/* ---- AVX2 (8 lanes) ------------------------------------------------------ */

TGT_AVX2 static inline __m256 v8_exp(__m256 x) {
    __m256 y = _mm256_mul_ps(x, _mm256_set1_ps(VM_LOG2E));
    __m256 n = _mm256_floor_ps(_mm256_add_ps(y, _mm256_set1_ps(0.5f)));
    __m256 f = _mm256_sub_ps(y, n);
    __m256 p = _mm256_set1_ps(VM_EXP_C6);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(VM_EXP_C5));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(VM_EXP_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(VM_EXP_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(VM_EXP_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(VM_EXP_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    /* n is garbage outside [-88, 88] (and NaN); those lanes are replaced below */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 r = _mm256_mul_ps(_mm256_castsi256_ps(e), p);
    r = _mm256_blendv_ps(r, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, _mm256_set1_ps(88.0f), _CMP_GT_OQ));
    r = _mm256_blendv_ps(r, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(-88.0f), _CMP_LT_OQ));
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

TGT_AVX2 static inline __m256 v8_abs(__m256 x) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}

/* Copies the sign of s onto the non-negative m. */
TGT_AVX2 static inline __m256 v8_with_sign(__m256 m, __m256 s) {
    return _mm256_or_ps(m, _mm256_and_ps(s, _mm256_set1_ps(-0.0f)));
}

TGT_AVX2 static inline __m256 v8_erf(__m256 x) {
    __m256 ax = v8_abs(x);
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(VM_ERF_P), ax, one));
    __m256 r = _mm256_fmadd_ps(_mm256_set1_ps(VM_ERF_A5), t, _mm256_set1_ps(VM_ERF_A4));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(VM_ERF_A3));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(VM_ERF_A2));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(VM_ERF_A1));
    __m256 e = v8_exp(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), x), x));
    __m256 m = _mm256_fnmadd_ps(_mm256_mul_ps(e, t), r, one);
    return v8_with_sign(m, x);
}

TGT_AVX2 static inline __m256 v8_tanh(__m256 u) {
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = v8_exp(_mm256_add_ps(v8_abs(u), v8_abs(u)));
    __m256 m = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
    return v8_with_sign(m, u);
}

TGT_AVX2 static inline __m256 v8_sigmoid(__m256 x) {
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 y = _mm256_div_ps(one, _mm256_add_ps(one, v8_exp(v8_abs(x))));
    return _mm256_blendv_ps(_mm256_sub_ps(one, y), y, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
}

TGT_AVX2 static inline float v8_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TGT_AVX2 static inline float v8_hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Element i of an f16, bf16 or f32 array as f32 (f16 through F16C; bf16 is
 * the top half of an f32): the quantized kernels' scales and biases. */
TGT_AVX2 static inline float v8_param1(const void *p, mlxn_dtype dt, int64_t i) {
    switch (dt) {
    case MLXN_DTYPE_F16: return _cvtsh_ss(((const uint16_t *)p)[i]);
    case MLXN_DTYPE_BF16: {
        const uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    default: return ((const float *)p)[i];
    }
}

/* Mask for a tail of n < 8 lanes (maskload/maskstore read/write only those). */
TGT_AVX2 static inline __m256i v8_tail_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* ---- AVX-512 (16 lanes) --------------------------------------------------- */

TGT_AVX512 static inline __m512 v16_exp(__m512 x) {
    __m512 y = _mm512_mul_ps(x, _mm512_set1_ps(VM_LOG2E));
    __m512 n = _mm512_roundscale_ps(_mm512_add_ps(y, _mm512_set1_ps(0.5f)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(y, n);
    __m512 p = _mm512_set1_ps(VM_EXP_C6);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(VM_EXP_C5));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(VM_EXP_C4));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(VM_EXP_C3));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(VM_EXP_C2));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(VM_EXP_C1));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 r = _mm512_mul_ps(_mm512_castsi512_ps(e), p);
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.0f), _CMP_GT_OQ), _mm512_set1_ps(INFINITY));
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-88.0f), _CMP_LT_OQ), _mm512_setzero_ps());
    return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

TGT_AVX512 static inline __m512 v16_abs(__m512 x) {
    return _mm512_andnot_ps(_mm512_set1_ps(-0.0f), x);
}

TGT_AVX512 static inline __m512 v16_with_sign(__m512 m, __m512 s) {
    return _mm512_or_ps(m, _mm512_and_ps(s, _mm512_set1_ps(-0.0f)));
}

TGT_AVX512 static inline __m512 v16_erf(__m512 x) {
    __m512 ax = v16_abs(x);
    __m512 one = _mm512_set1_ps(1.0f);
    __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(VM_ERF_P), ax, one));
    __m512 r = _mm512_fmadd_ps(_mm512_set1_ps(VM_ERF_A5), t, _mm512_set1_ps(VM_ERF_A4));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(VM_ERF_A3));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(VM_ERF_A2));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(VM_ERF_A1));
    __m512 e = v16_exp(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), x));
    __m512 m = _mm512_fnmadd_ps(_mm512_mul_ps(e, t), r, one);
    return v16_with_sign(m, x);
}

TGT_AVX512 static inline __m512 v16_tanh(__m512 u) {
    __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = v16_exp(_mm512_add_ps(v16_abs(u), v16_abs(u)));
    __m512 m = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
    return v16_with_sign(m, u);
}

TGT_AVX512 static inline __m512 v16_sigmoid(__m512 x) {
    __m512 one = _mm512_set1_ps(1.0f);
    __m512 y = _mm512_div_ps(one, _mm512_add_ps(one, v16_exp(v16_abs(x))));
    return _mm512_mask_mov_ps(_mm512_sub_ps(one, y), _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), y);
}

/* Mask for a tail of n < 16 lanes. */
static inline __mmask16 v16_tail_mask(int64_t n) { return (__mmask16)((1u << n) - 1u); }

#endif /* CPU_VMATH_X86 */
#endif
