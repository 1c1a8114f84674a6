/* AVX2 + FMA kernels of the quantized matmul (the AVX2 ISA level, for
 * processors without AVX-512): weights dequantized to f32 with 8-wide
 * code->float conversion, then register-blocked dot products (tile) or row
 * updates (axpy), all in f32 FMA: results match the scalar reference up to
 * summation order. */
#include "backend/cpu/qmatmul.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Every function below is compiled for this ISA (dispatch checks the CPU
 * first). GCC and clang spell the region differently. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

/* 8 codes (int32 lanes) to their fp-mode values before the scale. */
static inline __m256 fp_codes8(mlxn_quant_mode mode, __m256i q) {
    if (mode == MLXN_QUANT_MXFP8) {
        /* e4m3 -> f32 by moving the exponent/mantissa bits and rebiasing
         * with one multiply (exact, subnormals included); 0x7f is NaN */
        __m256i em = _mm256_and_si256(q, _mm256_set1_epi32(0x7f));
        __m256 v = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(em, 20)), _mm256_set1_ps(0x1p120f));
        __m256 nan = _mm256_castsi256_ps(_mm256_cmpeq_epi32(em, _mm256_set1_epi32(0x7f)));
        v = _mm256_blendv_ps(v, _mm256_set1_ps(__builtin_nanf("")), nan);
        __m256i sign = _mm256_slli_epi32(_mm256_and_si256(q, _mm256_set1_epi32(0x80)), 24);
        return _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(v), sign));
    }
    /* e2m1: magnitude from an 8-entry table, sign from bit 3 */
    const __m256 mag = _mm256_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f);
    __m256 v = _mm256_permutevar8x32_ps(mag, q); /* uses the low 3 bits of each index */
    __m256i sign = _mm256_slli_epi32(_mm256_and_si256(q, _mm256_set1_epi32(8)), 28);
    return _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(v), sign));
}

static void dequant_avx2(const qmat *m, int64_t r, int64_t c0, int64_t n, float *dst) {
    uint8_t codes[512];
    const int G = m->group;
    for (int64_t cc = 0; cc < n; cc += 512) {
        int64_t len = n - cc < 512 ? n - cc : 512;
        qm_unpack_codes(m, r, c0 + cc, len, codes);
        for (int64_t i0 = 0; i0 < len; i0 += G) { /* chunks start on group boundaries */
            int64_t g = (c0 + cc + i0) / G;
            __m256 s = _mm256_set1_ps(qm_scale(m, r, g));
            __m256 b = _mm256_set1_ps(qm_bias(m, r, g));
            for (int64_t i = i0; i < i0 + G; i += 8) {
                __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(codes + i)));
                __m256 v = m->mode == MLXN_QUANT_AFFINE ? _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(q), b)
                                                        : _mm256_mul_ps(fp_codes8(m->mode, q), s);
                _mm256_storeu_ps(dst + cc + i, v);
            }
        }
    }
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* MB_ x RB_ (<= 4 x 2: 8 accumulators + 6 operands fit the 16 ymm
 * registers) dot products over kc (multiple of 16), unrolled per shape. */
static inline __attribute__((always_inline)) void tile_core(const float *x, int64_t ldx, const float *w,
                                                            int64_t ldw, int64_t kc, float *out, int64_t ldo,
                                                            const int MB_, const int RB_) {
    __m256 acc[4][2];
    for (int a = 0; a < MB_; a++)
        for (int b = 0; b < RB_; b++) acc[a][b] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k += 8) {
        __m256 wv[2];
        for (int b = 0; b < RB_; b++) wv[b] = _mm256_loadu_ps(w + b * ldw + k);
        for (int a = 0; a < MB_; a++) {
            __m256 xv = _mm256_loadu_ps(x + a * ldx + k);
            for (int b = 0; b < RB_; b++) acc[a][b] = _mm256_fmadd_ps(xv, wv[b], acc[a][b]);
        }
    }
    for (int a = 0; a < MB_; a++)
        for (int b = 0; b < RB_; b++) out[a * ldo + b] += hsum8(acc[a][b]);
}

#define TILE_CASE(A, B) \
    case (A) * 8 + (B): tile_core(x, ldx, wj, ldw, kc, oj, ldo, A, B); break;

static void tile_avx2(const float *x, int64_t ldx, int mb, const float *w, int64_t ldw, int rb, int64_t kc,
                      float *out, int64_t ldo) {
    for (int j = 0; j < rb; j += 2) {
        int r = rb - j < 2 ? rb - j : 2;
        const float *wj = w + j * ldw;
        float *oj = out + j;
        switch (mb * 8 + r) {
            TILE_CASE(1, 1) TILE_CASE(1, 2) TILE_CASE(2, 1) TILE_CASE(2, 2)
            TILE_CASE(3, 1) TILE_CASE(3, 2) TILE_CASE(4, 1) TILE_CASE(4, 2)
        default: break;
        }
    }
}

static void axpy_avx2(const float *x, int64_t ldx, int mb, const float *b, int64_t ldb, int kb, int64_t n,
                      float *out, int64_t ldo) {
    for (int m = 0; m < mb; m++) {
        __m256 xv[4];
        for (int i = 0; i < kb; i++) xv[i] = _mm256_set1_ps(x[m * ldx + i]);
        float *o = out + m * ldo;
        for (int64_t j = 0; j < n; j += 8) {
            __m256 acc = _mm256_loadu_ps(o + j);
            for (int i = 0; i < kb; i++) acc = _mm256_fmadd_ps(xv[i], _mm256_loadu_ps(b + i * ldb + j), acc);
            _mm256_storeu_ps(o + j, acc);
        }
    }
}

const qm_kernels qm_kernels_avx2 = {.dequant = dequant_avx2, .tile = tile_avx2, .axpy = axpy_avx2};

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
const qm_kernels qm_kernels_avx2 = {.dequant = qm_dequant_span, .tile = NULL, .axpy = NULL};
#endif
