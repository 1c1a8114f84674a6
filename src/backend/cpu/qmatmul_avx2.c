/* AVX2 + FMA kernels of the quantized matmul (the AVX2 ISA level, for
 * processors without AVX-512): weights dequantized to f32 with 8-wide
 * code->float conversion, then register-blocked dot products (tile) or row
 * updates (axpy); and for decode (every mode, a few x rows) a mat-vec that
 * turns codes into f32 weights in registers. All in f32 FMA: results match
 * the scalar reference up to summation order. */
#include "backend/cpu/cpu_vmath.h"
#include "backend/cpu/qmatmul.h"
#include "quant/quant_layout.h"

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

#include "backend/cpu/qm_packed_avx2.h" /* inside the target region: its functions are AVX2 */

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
        /* chunks start on group boundaries; g counts the groups (no division per group) */
        for (int64_t i0 = 0, g = (c0 + cc) / G; i0 < len; i0 += G, g++) {
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
        for (int b = 0; b < RB_; b++) out[a * ldo + b] += v8_hsum(acc[a][b]);
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

/* ---- the mat-vec: transpose, affine, few x rows (decode) ----------------
 * Why: dequantizing 64-row panels to f32 and running the tile kernel over
 * them cost a byte per code through the scalar unpacker, then a 4-byte
 * store and load per weight, for one x row; SmolLM2-135M decoded at ~9
 * tok/s on a 2-core AVX2 machine (56-74 with this kernel; 4- and 8-bit
 * weights now take the integer mat-vec, qmatmul_avx2_int.c, unless the
 * device keeps float activations). Here 32 codes at a time go from their
 * packed bytes to f32 in registers (4-bit: two masks and two byte
 * interleaves; 8-bit: as they are; 2, 3, 5, 6 bits: qm_packed_avx2.h;
 * 1 and 7 bits through the scalar unpacker),
 * w = scale * q + bias as the dequantization computes it, and straight
 * into the x rows' FMAs: the same products, summed in another order. */

/* Codes [c, c + 32) of row r as 32 bytes, in order (e0: the first 16):
 * BITS 4 (two nibbles a byte, low first) or 8 (as they are), else through
 * the scalar unpacker. c is a multiple of 32. */
static inline __attribute__((always_inline)) void code_bytes32(const qmat *m, int64_t r, int64_t c, const int BITS,
                                                               __m128i *e0, __m128i *e1) {
    const uint8_t *row = (const uint8_t *)(m->wq + r * m->wq_stride);
    if (BITS == 4) { /* byte j holds codes 2j (low nibble) and 2j + 1 */
        const __m128i b = _mm_loadu_si128((const __m128i *)(row + c / 2)), lo4 = _mm_set1_epi8(0x0f);
        const __m128i lo = _mm_and_si128(b, lo4), hi = _mm_and_si128(_mm_srli_epi16(b, 4), lo4);
        *e0 = _mm_unpacklo_epi8(lo, hi);
        *e1 = _mm_unpackhi_epi8(lo, hi);
    } else if (BITS == 8) {
        *e0 = _mm_loadu_si128((const __m128i *)(row + c));
        *e1 = _mm_loadu_si128((const __m128i *)(row + c + 16));
    } else {
        uint8_t buf[32];
        qm_unpack_codes(m, r, c, 32, buf);
        *e0 = _mm_loadu_si128((const __m128i *)buf);
        *e1 = _mm_loadu_si128((const __m128i *)(buf + 16));
    }
}

/* Codes [c, c + 32) of row r as 4 x 8 f32 (BITS 4 or 8; 0: any width,
 * through pu where it handles the width (qm_packed_avx2.h), else the scalar
 * unpacker). c is a multiple of 32. */
static inline __attribute__((always_inline)) void codes32(const qmat *m, int64_t r, int64_t c, const int BITS,
                                                          const qm_packed *pu, __m256 q[4]) {
    const uint8_t *row = (const uint8_t *)(m->wq + r * m->wq_stride);
    if (BITS == 0 && pu) {
        __m256i h0, h1;
        qm_packed_codes32(pu, row + c * m->bits / 8, (m->cols - c) * m->bits / 8, &h0, &h1);
        q[0] = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(h0)));
        q[1] = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(h0, 1)));
        q[2] = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(h1)));
        q[3] = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(h1, 1)));
        return;
    }
    __m128i e0, e1;
    code_bytes32(m, r, c, BITS, &e0, &e1);
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(e0));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(e0, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(e1));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(e1, 8)));
}

/* dequant_avx2 for affine 2..6- and 8-bit codes in groups of a multiple of
 * 32: the same weights (w = scale * q + bias, one FMA), the codes decoded
 * in registers instead of through the scalar unpacker (2, 3, 5, 6 bits:
 * qm_packed_avx2.h). Scales and biases
 * come through v8_param1 (F16C, exact as mlxn_f16_to_f32); qm_scale /
 * qm_bias, two calls and a software f16 conversion per group, were a fifth
 * of a decode step's time with 32-code groups. */
static inline __attribute__((always_inline)) void dequant_affine(const qmat *m, int64_t r, int64_t c0, int64_t n,
                                                                 float *dst, const int BITS) {
    const int64_t G = m->group;
    const qm_packed pk = qm_packed_for(BITS == 0 ? m->bits : 2), *pu = BITS == 0 ? &pk : NULL;
    /* g counts the groups: one division per call, not per group */
    for (int64_t i = 0, g = c0 / G; i < n; i += G, g++) {
        const __m256 s = _mm256_set1_ps(v8_param1(m->scales, m->sdt, r * m->s_stride + g));
        const __m256 b = _mm256_set1_ps(m->biases ? v8_param1(m->biases, m->sdt, r * m->b_stride + g) : 0.0f);
        for (int64_t c = 0; c < G; c += 32) {
            __m256 q[4];
            codes32(m, r, c0 + i + c, BITS, pu, q);
            for (int j = 0; j < 4; j++) _mm256_storeu_ps(dst + i + c + 8 * j, _mm256_fmadd_ps(s, q[j], b));
        }
    }
}

static void dequant_fast_avx2(const qmat *m, int64_t r, int64_t c0, int64_t n, float *dst) {
    if (m->mode == MLXN_QUANT_AFFINE && m->group % 32 == 0 && m->bits == 4) dequant_affine(m, r, c0, n, dst, 4);
    else if (m->mode == MLXN_QUANT_AFFINE && m->group % 32 == 0 && m->bits == 8) dequant_affine(m, r, c0, n, dst, 8);
    else if (m->mode == MLXN_QUANT_AFFINE && m->group % 32 == 0 && qm_packed_width(m->bits))
        dequant_affine(m, r, c0, n, dst, 0);
    else dequant_avx2(m, r, c0, n, dst);
}

const qm_kernels qm_kernels_avx2 = {.dequant = dequant_fast_avx2, .tile = tile_avx2, .axpy = axpy_avx2};

/* The mat-vecs' shared steps: weights w (8 codes from column c) into
 * accumulator a of each of the MR x rows; then each row's NA accumulators
 * summed into out[i * ldo + r]. */
static inline __attribute__((always_inline)) void rows_fma(__m256 w, const float *x, int64_t ldx, int64_t c,
                                                           __m256 acc[4][4], int a, const int MR) {
    for (int i = 0; i < MR; i++) acc[i][a] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i * ldx + c), acc[i][a]);
}
static inline __attribute__((always_inline)) void rows_store(__m256 acc[4][4], const int NA, const int MR, float *out,
                                                             int64_t ldo, int64_t r) {
    for (int i = 0; i < MR; i++) {
        __m256 t = acc[i][0];
        for (int a = 1; a < NA; a++) t = _mm256_add_ps(t, acc[i][a]);
        out[i * ldo + r] = v8_hsum(t);
    }
}

/* Rows [r0, r1) against MR x rows. One x row keeps 4 accumulators (the
 * 4 independent FMA chains hide the FMA latency), two keep 2 each, more
 * keep one. */
static inline __attribute__((always_inline)) void matvec_core(const qmat *m, const float *x, int64_t ldx, int64_t r0,
                                                              int64_t r1, float *out, int64_t ldo, const int MR,
                                                              const int BITS) {
    const int NA = MR == 1 ? 4 : MR == 2 ? 2 : 1; /* accumulators per x row */
    const int64_t G = m->group, ng = m->cols / G;
    const qm_packed pk = qm_packed_for(BITS == 0 && qm_packed_width(m->bits) ? m->bits : 2);
    const qm_packed *pu = BITS == 0 && qm_packed_width(m->bits) ? &pk : NULL;
    for (int64_t r = r0; r < r1; r++) {
        __m256 acc[4][4];
        for (int i = 0; i < MR; i++)
            for (int a = 0; a < NA; a++) acc[i][a] = _mm256_setzero_ps();
        for (int64_t g = 0; g < ng; g++) {
            const __m256 s = _mm256_set1_ps(v8_param1(m->scales, m->sdt, r * m->s_stride + g));
            const __m256 b = _mm256_set1_ps(m->biases ? v8_param1(m->biases, m->sdt, r * m->b_stride + g) : 0.0f);
            for (int64_t c = g * G; c < (g + 1) * G; c += 32) {
                __m256 q[4];
                codes32(m, r, c, BITS, pu, q);
                for (int j = 0; j < 4; j++) {
                    const __m256 w = _mm256_fmadd_ps(s, q[j], b); /* as dequant_avx2 */
                    rows_fma(w, x, ldx, c + 8 * j, acc, j % NA, MR);
                }
            }
        }
        rows_store(acc, NA, MR, out, ldo, r);
    }
}

/* Group g's scale of row r in an fp mode, exactly as qm_scale gives it, inlined: through the call
   per group, a one-thread 4096 x 4096 mxfp4 mat-vec took 3.9-5.1 ms, inlined 3.0-3.5 (AMD EPYC) */
static inline __attribute__((always_inline)) float fp_scale(const qmat *m, int64_t r, int64_t g,
                                                            const mlxn_quant_mode MODE) {
    const uint8_t s = ((const uint8_t *)m->scales)[r * m->s_stride + g];
    return MODE == MLXN_QUANT_NVFP4 ? mlxn_e4m3_to_f32(s) * m->gscale : mlxn_e8m0_to_f32(s);
}

/* matvec_core for the fp modes: mxfp4 and nvfp4 (4-bit e2m1 codes, groups of
 * 32 and 16) and mxfp8 (8-bit e4m3, groups of 32). Each weight is value *
 * scale, the scale as qm_scale gives it, as dequant_avx2 computes it; at
 * nvfp4's 16 a 32-code chunk holds two groups. Why: these modes had only
 * the dequantized-panel tile path, through the scalar unpacker: a 4096 x
 * 4096 mxfp4 mat-vec took 17-28 ms on one core of an AMD EPYC (Zen 3), 30-50x
 * the affine 4-bit one. */
static inline __attribute__((always_inline)) void matvec_fp_core(const qmat *m, const float *x, int64_t ldx,
                                                                 int64_t r0, int64_t r1, float *out, int64_t ldo,
                                                                 const int MR, const mlxn_quant_mode MODE) {
    const int NA = MR == 1 ? 4 : MR == 2 ? 2 : 1; /* accumulators per x row */
    const int BITS = MODE == MLXN_QUANT_MXFP8 ? 8 : 4;
    const int gsh = MODE == MLXN_QUANT_NVFP4 ? 4 : 5; /* log2 of the group: 16 or 32 */
    for (int64_t r = r0; r < r1; r++) {
        __m256 acc[4][4];
        for (int i = 0; i < MR; i++)
            for (int a = 0; a < NA; a++) acc[i][a] = _mm256_setzero_ps();
        for (int64_t c = 0; c < m->cols; c += 32) {
            const __m256 s0 = _mm256_set1_ps(fp_scale(m, r, c >> gsh, MODE));
            const __m256 s1 = gsh == 4 ? _mm256_set1_ps(fp_scale(m, r, (c >> gsh) + 1, MODE)) : s0;
            __m128i e0, e1;
            code_bytes32(m, r, c, BITS, &e0, &e1);
            const __m256i qi[4] = {_mm256_cvtepu8_epi32(e0), _mm256_cvtepu8_epi32(_mm_srli_si128(e0, 8)),
                                   _mm256_cvtepu8_epi32(e1), _mm256_cvtepu8_epi32(_mm_srli_si128(e1, 8))};
            for (int j = 0; j < 4; j++) {
                const __m256 w = _mm256_mul_ps(fp_codes8(MODE, qi[j]), j < 2 ? s0 : s1); /* as dequant_avx2 */
                rows_fma(w, x, ldx, c + 8 * j, acc, j % NA, MR);
            }
        }
        rows_store(acc, NA, MR, out, ldo, r);
    }
}

#define MATVEC_CASE(MR_, BITS_) \
    case (MR_) * 16 + (BITS_): matvec_core(m, x, ldx, r0, r1, out, ldo, MR_, BITS_); break;
#define MATVEC_FP_CASE(MR_)                                                                          \
    case MR_:                                                                                        \
        if (m->mode == MLXN_QUANT_MXFP4) matvec_fp_core(m, x, ldx, r0, r1, out, ldo, MR_, MLXN_QUANT_MXFP4); \
        else if (m->mode == MLXN_QUANT_NVFP4) matvec_fp_core(m, x, ldx, r0, r1, out, ldo, MR_, MLXN_QUANT_NVFP4); \
        else matvec_fp_core(m, x, ldx, r0, r1, out, ldo, MR_, MLXN_QUANT_MXFP8);                   \
        break;

int qm_matvec_avx2_supported(const qmat *m, int64_t M) {
    if (M < 1 || M > QM_MATVEC_MAX_ROWS) return 0;
    if (m->mode != MLXN_QUANT_AFFINE) return m->cols % 32 == 0; /* whole 32-code chunks */
    return m->group % 32 == 0 && m->cols % m->group == 0;
}

void qm_matvec_avx2_rows(const qmat *m, const float *x, int64_t ldx, int M, int64_t r0, int64_t r1, float *out,
                         int64_t ldo) {
    if (m->mode != MLXN_QUANT_AFFINE) {
        switch (M) {
            MATVEC_FP_CASE(1) MATVEC_FP_CASE(2) MATVEC_FP_CASE(3) MATVEC_FP_CASE(4)
        default: break;
        }
        return;
    }
    const int bits = m->bits == 4 || m->bits == 8 ? m->bits : 0;
    switch (M * 16 + bits) {
        MATVEC_CASE(1, 4) MATVEC_CASE(1, 8) MATVEC_CASE(1, 0)
        MATVEC_CASE(2, 4) MATVEC_CASE(2, 8) MATVEC_CASE(2, 0)
        MATVEC_CASE(3, 4) MATVEC_CASE(3, 8) MATVEC_CASE(3, 0)
        MATVEC_CASE(4, 4) MATVEC_CASE(4, 8) MATVEC_CASE(4, 0)
    default: break;
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
const qm_kernels qm_kernels_avx2 = {.dequant = qm_dequant_span, .tile = NULL, .axpy = NULL};
int qm_matvec_avx2_supported(const qmat *m, int64_t M) {
    (void)m, (void)M;
    return 0;
}
void qm_matvec_avx2_rows(const qmat *m, const float *x, int64_t ldx, int M, int64_t r0, int64_t r1, float *out,
                         int64_t ldo) {
    (void)m, (void)x, (void)ldx, (void)M, (void)r0, (void)r1, (void)out, (void)ldo;
}
#endif
