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

/* Four keys per pass: four independent FMA chains, and q loaded once for
 * the four (why: the q row is the shared operand). */
T512 static void dots(const float *q, const float *k, int64_t ldk, int64_t n, int64_t D, float *s) {
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *k0 = k + j * ldk, *k1 = k0 + ldk, *k2 = k1 + ldk, *k3 = k2 + ldk;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t d = 0; d < D; d += 16) {
            __mmask16 m = lanes(D - d);
            __m512 qv = _mm512_maskz_loadu_ps(m, q + d);
            a0 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k0 + d), a0);
            a1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k1 + d), a1);
            a2 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k2 + d), a2);
            a3 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k3 + d), a3);
        }
        s[j] = _mm512_reduce_add_ps(a0);
        s[j + 1] = _mm512_reduce_add_ps(a1);
        s[j + 2] = _mm512_reduce_add_ps(a2);
        s[j + 3] = _mm512_reduce_add_ps(a3);
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

/* 64 output columns per pass (4 zmm accumulators held across all keys of
 * the block), so acc is read and written once per block. */
T512 static void pv(const float *p, const float *v, int64_t ldv, int64_t n, int64_t Dv, float corr, float *acc) {
    const __m512 c = _mm512_set1_ps(corr);
    int64_t d = 0;
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

static const sdpa_kernels kernels = {to_f32, dots, vmax, exp_sum, pv};
const sdpa_kernels *sdpa_kernels_avx512(void) { return &kernels; }

#else
const sdpa_kernels *sdpa_kernels_avx512(void) { return 0; }
#endif
