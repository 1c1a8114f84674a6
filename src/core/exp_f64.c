/* exp over arrays of doubles: the method and its edges are in exp_f64.h. */
#include "core/exp_f64.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define EXP_LOG2E 1.4426950408889634
#define EXP_LN2_HI 0x1.62e42fefa39efp-1 /* the double nearest ln 2 */
#define EXP_LN2_LO 0x1.abc9e3b39803fp-56 /* ln 2 - EXP_LN2_HI */
#define EXP_LO -708.3964185322641       /* ln(DBL_MIN): below, 0 */
#define EXP_HI 709.782712893384         /* ln(DBL_MAX): above, +inf */

/* 1 / n!, n = 13 down to 2 (p's coefficients above the linear term) */
static const double exp_c[12] = {1.6059043836821613e-10, 2.08767569878681e-09, 2.505210838544172e-08,
                                 2.755731922398589e-07,  2.7557319223985893e-06, 2.48015873015873e-05,
                                 0.0001984126984126984,  0.001388888888888889,   0.008333333333333333,
                                 0.041666666666666664,   0.16666666666666666,    0.5};

/* 2^k for an integral k in [-1022, 1023] */
static double pow2i(double k) {
    const uint64_t bits = (uint64_t)((int64_t)k + 1023) << 52;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static double exp1(double x) {
    if (isnan(x)) return x;
    if (x < EXP_LO) return 0.0;
    if (x > EXP_HI) return INFINITY;
    const double k = nearbyint(x * EXP_LOG2E);
    double r = fma(-k, EXP_LN2_HI, x);
    r = fma(-k, EXP_LN2_LO, r);
    double p = exp_c[0];
    for (int i = 1; i < 12; i++) p = fma(p, r, exp_c[i]);
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
    const double k1 = floor(k * 0.5); /* k in [-1022, 1024]: both halves stay normal */
    return p * pow2i(k1) * pow2i(k - k1);
}

void mlxn_exp_f64_scalar(double *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = exp1(x[i]);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TGT_AVX2 __attribute__((target("avx2,fma")))

/* 2^k for integral k in [-1022, 1023] in each lane: k + 1.5 * 2^52 holds k in its low bits */
TGT_AVX2 static __m256d pow2i_4(__m256d k) {
    const __m256d magic = _mm256_set1_pd(0x1.8p52);
    const __m256i ki = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(k, magic)), _mm256_castpd_si256(magic));
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(ki, _mm256_set1_epi64x(1023)), 52));
}

/* exp1 on four lanes, operation for operation */
TGT_AVX2 static __m256d exp4(__m256d x) {
    const __m256d k = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(EXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(EXP_LN2_HI), x);
    r = _mm256_fnmadd_pd(k, _mm256_set1_pd(EXP_LN2_LO), r);
    __m256d p = _mm256_set1_pd(exp_c[0]);
    for (int i = 1; i < 12; i++) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(exp_c[i]));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    /* outside [EXP_LO, EXP_HI] k may be anything; those lanes are replaced below */
    const __m256d kc = _mm256_max_pd(_mm256_min_pd(k, _mm256_set1_pd(1024.0)), _mm256_set1_pd(-1022.0));
    const __m256d k1 = _mm256_floor_pd(_mm256_mul_pd(kc, _mm256_set1_pd(0.5)));
    __m256d y = _mm256_mul_pd(_mm256_mul_pd(p, pow2i_4(k1)), pow2i_4(_mm256_sub_pd(kc, k1)));
    y = _mm256_andnot_pd(_mm256_cmp_pd(x, _mm256_set1_pd(EXP_LO), _CMP_LT_OQ), y);
    y = _mm256_blendv_pd(y, _mm256_set1_pd(INFINITY), _mm256_cmp_pd(x, _mm256_set1_pd(EXP_HI), _CMP_GT_OQ));
    return _mm256_blendv_pd(y, x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q)); /* NaN stays NaN */
}

TGT_AVX2 static void exp_avx2(double *x, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, exp4(_mm256_loadu_pd(x + i)));
    for (; i < n; i++) x[i] = exp1(x[i]); /* the same bits as a lane */
}

void mlxn_exp_f64(double *x, size_t n) {
    /* a feature test, not a cached flag: it reads what the C runtime set up at start */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        exp_avx2(x, n);
        return;
    }
    mlxn_exp_f64_scalar(x, n);
}
#else
void mlxn_exp_f64(double *x, size_t n) { mlxn_exp_f64_scalar(x, n); }
#endif
