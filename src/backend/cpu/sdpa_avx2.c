/* AVX2 + FMA + F16C primitives for the flash attention driver
 * (sdpa_flash.c); the same contract as sdpa_avx512.c with 8 lanes. Ragged
 * ends run scalar code (AVX2 has no cheap masked 16-bit loads). Compiled
 * with target attributes so the library loads on any x86-64. */
#include "backend/cpu/sdpa_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <math.h>

#include "backend/cpu/cpu_tensor.h"

#define T256 __attribute__((target("avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline))

/* e^x for 8 lanes, as exp16 in sdpa_avx512.c; 2^n is built in the exponent
 * bits (n >= -126 after the clamp, so the result stays normal). */
T256 INL __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.72283f);
    __m256 tiny = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(hi, _mm256_max_ps(lo, x)); /* operand order keeps NaN lanes NaN */
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

T256 INL float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

T256 INL float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

T256 static void to_f32(const void *src, mlxn_dtype dt, int64_t stride, int64_t n, float *dst) {
    if (stride != 1) {
        cpu_row_to_f32(src, dt, stride, n, dst);
        return;
    }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v;
        if (dt == MLXN_DTYPE_F16) {
            v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)src + i)));
        } else if (dt == MLXN_DTYPE_BF16) { /* bf16 is the top half of an f32 */
            __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)src + i)));
            v = _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
        } else {
            v = _mm256_loadu_ps((const float *)src + i);
        }
        _mm256_storeu_ps(dst + i, v);
    }
    for (; i < n; i++) dst[i] = cpu_load_f32(src, dt, i);
}

/* Four accumulators' sums as one vector [sum a0, sum a1, sum a2, sum a3]
 * (three horizontal adds and one cross-lane add, where four separate
 * reductions took five operations each). */
T256 INL __m128 hsum4x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* Scalar tails (D % 8 dims) of row q against keys k_0..k_3 added to t. */
T256 INL __m128 tail4(__m128 t, const float *q, const float *k, int64_t ldk, int64_t d0, int64_t D) {
    if (d0 == D) return t;
    float e[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = 0; i < 4; i++)
        for (int64_t d = d0; d < D; d++) e[i] += q[d] * k[i * ldk + d];
    return _mm_add_ps(t, _mm_loadu_ps(e));
}

/* One row against 8 keys per pass: 8 independent FMA chains (why: with 4,
 * the FMA latency, not the issue width, set the pace). */
T256 static void dots(const float *q, const float *k, int64_t ldk, int64_t n, int64_t D, float *s) {
    const int64_t Dv8 = D / 8 * 8;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const float *k0 = k + j * ldk;
        __m256 a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
        for (int64_t d = 0; d < Dv8; d += 8) {
            const __m256 qv = _mm256_loadu_ps(q + d);
            for (int i = 0; i < 8; i++) a[i] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i * ldk + d), a[i]);
        }
        _mm_storeu_ps(s + j, tail4(hsum4x8(a[0], a[1], a[2], a[3]), q, k0, ldk, Dv8, D));
        _mm_storeu_ps(s + j + 4, tail4(hsum4x8(a[4], a[5], a[6], a[7]), q, k0 + 4 * ldk, ldk, Dv8, D));
    }
    for (; j < n; j++) {
        const float *k0 = k + j * ldk;
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t d = 0; d < Dv8; d += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k0 + d), a0);
        float s0 = hsum8(a0);
        for (int64_t d = Dv8; d < D; d++) s0 += q[d] * k0[d];
        s[j] = s0;
    }
}

/* Two rows against 4 keys per pass: 8 accumulators, and each key load
 * feeds both rows (why: the rows of one kv head see the same keys, so this
 * halves the K loads per FMA). */
T256 static void dots2(const float *q0, const float *q1, const float *k, int64_t ldk, int64_t n, int64_t D,
                       float *s0, float *s1) {
    const int64_t Dv8 = D / 8 * 8;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *k0 = k + j * ldk;
        __m256 a[4], b[4];
        for (int i = 0; i < 4; i++) a[i] = b[i] = _mm256_setzero_ps();
        for (int64_t d = 0; d < Dv8; d += 8) {
            const __m256 x0 = _mm256_loadu_ps(q0 + d), x1 = _mm256_loadu_ps(q1 + d);
            for (int i = 0; i < 4; i++) {
                const __m256 kv = _mm256_loadu_ps(k0 + i * ldk + d);
                a[i] = _mm256_fmadd_ps(x0, kv, a[i]);
                b[i] = _mm256_fmadd_ps(x1, kv, b[i]);
            }
        }
        _mm_storeu_ps(s0 + j, tail4(hsum4x8(a[0], a[1], a[2], a[3]), q0, k0, ldk, Dv8, D));
        _mm_storeu_ps(s1 + j, tail4(hsum4x8(b[0], b[1], b[2], b[3]), q1, k0, ldk, Dv8, D));
    }
    if (j < n) {
        dots(q0, k + j * ldk, ldk, n - j, D, s0 + j);
        dots(q1, k + j * ldk, ldk, n - j, D, s1 + j);
    }
}

T256 static float vmax(const float *s, int64_t n) {
    __m256 mx = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + j));
    float m = hmax8(mx);
    for (; j < n; j++)
        if (s[j] > m) m = s[j];
    return m;
}

T256 static float exp_sum(float *s, int64_t n, float m) {
    const __m256 mv = _mm256_set1_ps(m);
    __m256 sum = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
        _mm256_storeu_ps(s + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    float t = hsum8(sum);
    for (; j < n; j++) {
        s[j] = s[j] == -INFINITY ? 0.0f : expf(s[j] - m);
        t += s[j];
    }
    return t;
}

/* 64 output columns per pass: 8 accumulators held across the block (8
 * independent FMA chains). */
T256 static void pv(const float *p, const float *v, int64_t ldv, int64_t n, int64_t Dv, float corr, float *acc) {
    const __m256 c = _mm256_set1_ps(corr);
    int64_t d = 0;
    for (; d + 64 <= Dv; d += 64) {
        __m256 a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm256_mul_ps(c, _mm256_loadu_ps(acc + d + 8 * i));
        for (int64_t j = 0; j < n; j++) {
            const float *vj = v + j * ldv + d;
            const __m256 pj = _mm256_set1_ps(p[j]);
            for (int i = 0; i < 8; i++) a[i] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * i), a[i]);
        }
        for (int i = 0; i < 8; i++) _mm256_storeu_ps(acc + d + 8 * i, a[i]);
    }
    for (; d + 8 <= Dv; d += 8) {
        __m256 a0 = _mm256_mul_ps(c, _mm256_loadu_ps(acc + d));
        for (int64_t j = 0; j < n; j++) a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + j * ldv + d), a0);
        _mm256_storeu_ps(acc + d, a0);
    }
    for (; d < Dv; d++) {
        float a = acc[d] * corr;
        for (int64_t j = 0; j < n; j++) a += p[j] * v[j * ldv + d];
        acc[d] = a;
    }
}

/* Two rows' p.V: 32 columns x 2 rows = 8 accumulators per pass; each V
 * load feeds both rows. */
T256 static void pv2(const float *p0, const float *p1, const float *v, int64_t ldv, int64_t n, int64_t Dv,
                     float corr0, float corr1, float *acc0, float *acc1) {
    const __m256 c0 = _mm256_set1_ps(corr0), c1 = _mm256_set1_ps(corr1);
    int64_t d = 0;
    for (; d + 32 <= Dv; d += 32) {
        __m256 a[4], b[4];
        for (int i = 0; i < 4; i++) {
            a[i] = _mm256_mul_ps(c0, _mm256_loadu_ps(acc0 + d + 8 * i));
            b[i] = _mm256_mul_ps(c1, _mm256_loadu_ps(acc1 + d + 8 * i));
        }
        for (int64_t j = 0; j < n; j++) {
            const float *vj = v + j * ldv + d;
            const __m256 x0 = _mm256_set1_ps(p0[j]), x1 = _mm256_set1_ps(p1[j]);
            for (int i = 0; i < 4; i++) {
                const __m256 vv = _mm256_loadu_ps(vj + 8 * i);
                a[i] = _mm256_fmadd_ps(x0, vv, a[i]);
                b[i] = _mm256_fmadd_ps(x1, vv, b[i]);
            }
        }
        for (int i = 0; i < 4; i++) {
            _mm256_storeu_ps(acc0 + d + 8 * i, a[i]);
            _mm256_storeu_ps(acc1 + d + 8 * i, b[i]);
        }
    }
    if (d < Dv) {
        pv(p0, v + d, ldv, n, Dv - d, corr0, acc0 + d);
        pv(p1, v + d, ldv, n, Dv - d, corr1, acc1 + d);
    }
}

static const sdpa_kernels kernels = {to_f32, dots, vmax, exp_sum, pv, dots2, pv2};
const sdpa_kernels *sdpa_kernels_avx2(void) { return &kernels; }

#else
const sdpa_kernels *sdpa_kernels_avx2(void) { return 0; }
#endif
