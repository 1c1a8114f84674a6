/* AVX-512 primitives for the flash attention driver (sdpa_flash.c): f16 /
 * bf16 -> f32 row conversion, q.k dot products four keys at a time, block
 * max, exp-and-sum, and the p.V accumulation. Ragged ends use masked loads,
 * so every head dim works. Compiled with target attributes, not -m flags,
 * so the library still loads on processors without AVX-512. */
#include "backend/cpu/sdpa_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <math.h>

#include "backend/cpu/cpu_tensor.h"

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline))

INL __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

/* e^x for 16 lanes: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so
 * n ln2 is exact), a degree-6 polynomial for e^r (Cephes' expf
 * coefficients, ~1 ulp), then scalef by 2^n. Lanes below -87.3 (where e^x
 * leaves the normal f32 range) give exactly 0, so -inf scores vanish. */
T512 INL __m512 exp16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.33654f), hi = _mm512_set1_ps(88.72283f);
    __mmask16 tiny = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_min_ps(hi, x); /* operand order keeps NaN lanes NaN */
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps((__mmask16)~tiny, _mm512_scalef_ps(y, n));
}

T512 static void to_f32(const void *src, mlxn_dtype dt, int64_t stride, int64_t n, float *dst) {
    if (stride != 1) {
        cpu_row_to_f32(src, dt, stride, n, dst);
        return;
    }
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = lanes(n - i);
        __m512 v;
        if (dt == MLXN_DTYPE_F16) {
            v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)src + i));
        } else if (dt == MLXN_DTYPE_BF16) { /* bf16 is the top half of an f32 */
            __m512i u = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)src + i));
            v = _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
        } else {
            v = _mm512_maskz_loadu_ps(m, (const float *)src + i);
        }
        _mm512_mask_storeu_ps(dst + i, m, v);
    }
}

/* Horizontal sums of eight vectors, out[i] = sum(a[i]), by a shuffle tree
 * (why: ~3 instructions per key instead of ~8 for eight separate
 * reductions). */
T512 INL void hsum8x16(__m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5, __m512 a6, __m512 a7,
                       float *out) {
    /* fold 512 -> 256 bits per source, two sources per register */
    __m512 x01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xEE));
    __m512 x23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xEE));
    __m512 x45 = _mm512_add_ps(_mm512_shuffle_f32x4(a4, a5, 0x44), _mm512_shuffle_f32x4(a4, a5, 0xEE));
    __m512 x67 = _mm512_add_ps(_mm512_shuffle_f32x4(a6, a7, 0x44), _mm512_shuffle_f32x4(a6, a7, 0xEE));
    /* fold 256 -> 128: 128-bit lane i holds 4 partial sums of source i (y0) / i + 4 (y1) */
    __m512 y0 = _mm512_add_ps(_mm512_shuffle_f32x4(x01, x23, 0x88), _mm512_shuffle_f32x4(x01, x23, 0xDD));
    __m512 y1 = _mm512_add_ps(_mm512_shuffle_f32x4(x45, x67, 0x88), _mm512_shuffle_f32x4(x45, x67, 0xDD));
    /* fold 128 -> 32: lane i ends with sum(a[i]) in float 0 and sum(a[i + 4]) in float 1 */
    __m512 t = _mm512_add_ps(_mm512_unpacklo_ps(y0, y1), _mm512_unpackhi_ps(y0, y1));
    t = _mm512_add_ps(t, _mm512_permute_ps(t, 0x4E));
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm256_storeu_ps(out, _mm512_castps512_ps256(_mm512_permutexvar_ps(idx, t)));
}

/* Eight keys per pass: eight independent FMA chains (why: one chain per
 * key would wait on the 4-cycle FMA latency; eight keep both FMA ports
 * busy), and q loaded once for the eight. */
T512 static void dots(const float *q, const float *k, int64_t ldk, int64_t n, int64_t D, float *s) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const float *k0 = k + j * ldk;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int64_t d = 0; d < D; d += 16) {
            __mmask16 m = lanes(D - d);
            __m512 qv = _mm512_maskz_loadu_ps(m, q + d);
            const float *kd = k0 + d;
            a0 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, kd), a0);
            a1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, kd + ldk), a1);
            a2 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, kd + 2 * ldk), a2);
            a3 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, kd + 3 * ldk), a3);
            a4 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, kd + 4 * ldk), a4);
            a5 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, kd + 5 * ldk), a5);
            a6 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, kd + 6 * ldk), a6);
            a7 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, kd + 7 * ldk), a7);
        }
        hsum8x16(a0, a1, a2, a3, a4, a5, a6, a7, s + j);
    }
    for (; j < n; j++) {
        const float *k0 = k + j * ldk;
        __m512 a0 = _mm512_setzero_ps();
        for (int64_t d = 0; d < D; d += 16) {
            __mmask16 m = lanes(D - d);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), _mm512_maskz_loadu_ps(m, k0 + d), a0);
        }
        s[j] = _mm512_reduce_add_ps(a0);
    }
}

T512 static float vmax(const float *s, int64_t n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += 16)
        mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), lanes(n - j), s + j));
    return _mm512_reduce_max_ps(mx);
}

T512 static float exp_sum(float *s, int64_t n, float m) {
    const __m512 mv = _mm512_set1_ps(m);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 k = lanes(n - j);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), mv));
        e = _mm512_maskz_mov_ps(k, e);
        _mm512_mask_storeu_ps(s + j, k, e);
        sum = _mm512_add_ps(sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

/* 128 output columns per pass: 8 zmm accumulators held across all keys of
 * the block (why: acc is read and written once per block, and 8 chains
 * hide the FMA latency); then 64, then masked 16-column pieces. */
T512 static void pv(const float *p, const float *v, int64_t ldv, int64_t n, int64_t Dv, float corr, float *acc) {
    const __m512 c = _mm512_set1_ps(corr);
    int64_t d = 0;
    for (; d + 128 <= Dv; d += 128) {
        __m512 a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm512_mul_ps(c, _mm512_loadu_ps(acc + d + 16 * i));
        for (int64_t j = 0; j < n; j++) {
            const float *vj = v + j * ldv + d;
            __m512 pj = _mm512_set1_ps(p[j]);
            for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 16 * i), a[i]);
        }
        for (int i = 0; i < 8; i++) _mm512_storeu_ps(acc + d + 16 * i, a[i]);
    }
    for (; d + 64 <= Dv; d += 64) {
        __m512 a0 = _mm512_mul_ps(c, _mm512_loadu_ps(acc + d)), a1 = _mm512_mul_ps(c, _mm512_loadu_ps(acc + d + 16)),
               a2 = _mm512_mul_ps(c, _mm512_loadu_ps(acc + d + 32)), a3 = _mm512_mul_ps(c, _mm512_loadu_ps(acc + d + 48));
        for (int64_t j = 0; j < n; j++) {
            const float *vj = v + j * ldv + d;
            __m512 pj = _mm512_set1_ps(p[j]);
            a0 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj), a0);
            a1 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 16), a1);
            a2 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 32), a2);
            a3 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 48), a3);
        }
        _mm512_storeu_ps(acc + d, a0);
        _mm512_storeu_ps(acc + d + 16, a1);
        _mm512_storeu_ps(acc + d + 32, a2);
        _mm512_storeu_ps(acc + d + 48, a3);
    }
    for (; d < Dv; d += 16) {
        __mmask16 m = lanes(Dv - d);
        __m512 a0 = _mm512_mul_ps(c, _mm512_maskz_loadu_ps(m, acc + d));
        for (int64_t j = 0; j < n; j++)
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(m, v + j * ldv + d), a0);
        _mm512_mask_storeu_ps(acc + d, m, a0);
    }
}

/* Two query rows x eight keys: 16 accumulators; per 16-wide step two q
 * loads and eight K loads feed 16 FMAs (one row alone needs nine loads
 * for eight). */
T512 static void dots2(const float *q0, const float *q1, const float *k, int64_t ldk, int64_t n, int64_t D,
                       float *s0, float *s1) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const float *k0 = k + j * ldk;
        __m512 a[8], b[8];
        for (int i = 0; i < 8; i++) a[i] = b[i] = _mm512_setzero_ps();
        for (int64_t d = 0; d < D; d += 16) {
            __mmask16 m = lanes(D - d);
            __m512 x0 = _mm512_maskz_loadu_ps(m, q0 + d), x1 = _mm512_maskz_loadu_ps(m, q1 + d);
            for (int i = 0; i < 8; i++) {
                __m512 kv = _mm512_maskz_loadu_ps(m, k0 + i * ldk + d);
                a[i] = _mm512_fmadd_ps(x0, kv, a[i]);
                b[i] = _mm512_fmadd_ps(x1, kv, b[i]);
            }
        }
        hsum8x16(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], s0 + j);
        hsum8x16(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], s1 + j);
    }
    if (j < n) {
        dots(q0, k + j * ldk, ldk, n - j, D, s0 + j);
        dots(q1, k + j * ldk, ldk, n - j, D, s1 + j);
    }
}

/* Two rows' p.V: 64 columns x 2 rows = 8 accumulators per pass; each V
 * load feeds both rows. */
T512 static void pv2(const float *p0, const float *p1, const float *v, int64_t ldv, int64_t n, int64_t Dv,
                     float corr0, float corr1, float *acc0, float *acc1) {
    const __m512 c0 = _mm512_set1_ps(corr0), c1 = _mm512_set1_ps(corr1);
    int64_t d = 0;
    for (; d + 64 <= Dv; d += 64) {
        __m512 a[4], b[4];
        for (int i = 0; i < 4; i++) {
            a[i] = _mm512_mul_ps(c0, _mm512_loadu_ps(acc0 + d + 16 * i));
            b[i] = _mm512_mul_ps(c1, _mm512_loadu_ps(acc1 + d + 16 * i));
        }
        for (int64_t j = 0; j < n; j++) {
            const float *vj = v + j * ldv + d;
            __m512 x0 = _mm512_set1_ps(p0[j]), x1 = _mm512_set1_ps(p1[j]);
            for (int i = 0; i < 4; i++) {
                __m512 vv = _mm512_loadu_ps(vj + 16 * i);
                a[i] = _mm512_fmadd_ps(x0, vv, a[i]);
                b[i] = _mm512_fmadd_ps(x1, vv, b[i]);
            }
        }
        for (int i = 0; i < 4; i++) {
            _mm512_storeu_ps(acc0 + d + 16 * i, a[i]);
            _mm512_storeu_ps(acc1 + d + 16 * i, b[i]);
        }
    }
    for (; d < Dv; d += 16) {
        __mmask16 m = lanes(Dv - d);
        __m512 a0 = _mm512_mul_ps(c0, _mm512_maskz_loadu_ps(m, acc0 + d));
        __m512 b0 = _mm512_mul_ps(c1, _mm512_maskz_loadu_ps(m, acc1 + d));
        for (int64_t j = 0; j < n; j++) {
            __m512 vv = _mm512_maskz_loadu_ps(m, v + j * ldv + d);
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(p0[j]), vv, a0);
            b0 = _mm512_fmadd_ps(_mm512_set1_ps(p1[j]), vv, b0);
        }
        _mm512_mask_storeu_ps(acc0 + d, m, a0);
        _mm512_mask_storeu_ps(acc1 + d, m, b0);
    }
}

static const sdpa_kernels kernels = {to_f32, dots, vmax, exp_sum, pv, dots2, pv2};
const sdpa_kernels *sdpa_kernels_avx512(void) { return &kernels; }

#else
const sdpa_kernels *sdpa_kernels_avx512(void) { return 0; }
#endif
