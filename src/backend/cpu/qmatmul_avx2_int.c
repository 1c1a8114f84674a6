/* The AVX2 integer mat-vec of decode: affine 2-, 3-, 4-, 5-, 6- and 8-bit
 * weights (MLX's widths but 1 and 7), transpose, 1..4 x rows, on
 * processors without AVX-512 VNNI.
 *
 * Why: the float AVX2 mat-vec (qmatmul_avx2.c) turns every code into an
 * f32 weight and spends about one instruction per weight, so on a 2-core
 * AVX2 machine it ran at ~6.6 GB/s of a ~23 GB/s memory. Here the products
 * run on the raw codes in integers, ~0.3 instructions per weight.
 *
 * The arithmetic is the VNNI kernel's (qmatmul_avx512.c), with AVX2
 * instructions:
 *   - per group g of a weight row, dot(x, w) = s_g * dot(x, q) + b_g *
 *     sum(x); sum(x) per group is computed once per call in f32;
 *   - x is quantized once per call, per group, to xi = rint(x / xs) with
 *     xs = max|x| / 32639, kept in int16;
 *   - 4-bit: the codes are taken out of each 16-bit lane of the packed
 *     words (four codes a lane) by shifts and masks, and VPMADDWD
 *     multiplies them by xi in int16 and adds pairs into int32 (|pair| <=
 *     2 * 15 * 32639; a lane's 8 codes < 2^22: exact). Why not the bytes'
 *     VPMADDUBSW: x needs 16 bits, so bytes meant two byte planes (xh, xl
 *     with xi = 256 * xh + xl) and 6 multiplies per 64 codes (4 VPMADDUBSW
 *     and 2 VPMADDWD widening them) against 4 here, and the multiplies set
 *     the pace (docs/perf.md: the AVX2 integer mat-vec with int16 codes).
 *   - 8-bit: the codes are widened to int16 and VPMADDWD multiplies them
 *     by xi: |pair| <= 2 * 255 * 32639, a 32-code block's lane
 *     sum < 2^26, exact.
 *   - 2, 3, 5, 6 bits: the codes of a 32-code block are unpacked from
 *     MLX's bit stream straight into int16 (qm_packed_avx2.h), then as 8-bit.
 *     Why: the float mat-vec unpacked them one by one through the scalar
 *     unpacker, ~16x slower than 4-bit.
 * So x is rounded to 16 bits relative to its group's largest element, far
 * below the precision of the bf16/f16 scales; the tests hold it to the
 * VNNI kernel's bound (NMSE 1e-7 against the float-exact reference). A
 * non-finite x falls back to the float path, so NaN/inf propagate as in
 * MLX.
 *
 * Layout, 4-bit: a block is 64 codes (32 bytes of a row: sixteen 16-bit
 * lanes of four codes, lane m holding codes 4m .. 4m + 3, low bits first).
 * x is stored to match, as four planes of 16 int16 per block: plane k,
 * lane m holds xi of code 4m + k. VPMADDWD of plane k against the codes k
 * of each lane adds codes 8j + k and 8j + 4 + k into int32 lane j, so
 * lane j of a block's sum covers codes 8j .. 8j + 7 and never straddles a
 * group (groups are 32, 64
 * or 128). 8-bit: a block is 32 codes (32 bytes), one group's or part of
 * one, and x is xi in int16 in code order; 2..6 bits: a block is 32 codes
 * (4 * bits bytes), x as for 8-bit. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_vmath.h"
#include "backend/cpu/qmatmul.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#include "backend/cpu/qm_packed_avx2.h" /* inside the target region: its functions are AVX2 */

#define XQ_MAX 32639 /* largest |xi| (what an earlier two-byte-plane kernel needed; kept: the same integers) */
#define SF_PAD 8     /* zero floats after each row's per-group arrays (8-wide loads past the last group) */

struct qm_ixprep {
    int64_t M, K, ngroups, nblk;
    int bits;    /* 2, 3, 4, 5, 6 or 8 */
    int8_t *xq;  /* 4-bit: [M, nblk, 4 planes, 16] xi as int16, plane k lane m = code 4m + k;
                    other widths: [M, nblk, 32] xi as int16 */
    float *xs;   /* [M, ngroups + SF_PAD]: x scale per group */
    float *sumx; /* [M, ngroups + SF_PAD]: sum of x per group */
    float *sf;   /* [n_threads][sfs]: per-thread scratch (qm_scratch_alloc), [M, ngroups + SF_PAD] each:
                    scale * xs per group */
    int64_t sfs; /* floats per thread in sf */
};

int qm_imv_avx2_supported(const qmat *m, int64_t M) {
    return m->mode == MLXN_QUANT_AFFINE && m->bits >= 2 && m->bits <= 8 && m->bits != 7 && M >= 1 &&
           M <= QM_MATVEC_MAX_ROWS &&
           (m->group == 32 || m->group == 64 || m->group == 128) && m->cols % m->group == 0;
}

void qm_imv_avx2_free(qm_ixprep *p) {
    if (!p) return;
    free(p->xq);
    free(p->xs);
    free(p->sumx);
    free(p->sf);
    free(p);
}

qm_ixprep *qm_imv_avx2_prepare(const qmat *m, const float *x, int64_t ldx, int64_t M, int n_threads) {
    const int64_t K = m->cols, G = m->group, ng = K / G, ngp = ng + SF_PAD;
    qm_ixprep *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->M = M;
    p->K = K;
    p->ngroups = ng;
    p->bits = m->bits;
    p->nblk = m->bits == 4 ? (K + 63) / 64 : K / 32; /* other widths: 32-code blocks, as 8-bit */
    /* 128 bytes per block at 4 bits (zeros: a 32-code tail block's missing half adds 0), 64 at 8 */
    const int64_t xblk = m->bits == 4 ? 128 : 64;
    p->xq = calloc((size_t)(M * p->nblk * xblk), 1);
    p->xs = calloc((size_t)(M * ngp), sizeof(float));
    p->sumx = calloc((size_t)(M * ngp), sizeof(float));
    p->sfs = qm_scratch_floats(M * ngp);
    p->sf = qm_scratch_alloc(n_threads, p->sfs);
    if (!p->xq || !p->xs || !p->sumx || !p->sf) {
        qm_imv_avx2_free(p);
        return NULL;
    }
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 big = _mm256_set1_ps(0x1p127f);
    /* 8 int16 xi of codes c .. c + 7 -> the pairs (c + k, c + 4 + k), k = 0..3, one per plane */
    const __m128i pairs = _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15);
    for (int64_t i = 0; i < M; i++) {
        const float *xr = x + i * ldx;
        int8_t *xq = p->xq + i * p->nblk * xblk;
        for (int64_t g = 0; g < ng; g++) {
            __m256 vmax = _mm256_setzero_ps(), vsum = _mm256_setzero_ps();
            __m256 bad = _mm256_setzero_ps();
            for (int64_t c = g * G; c < (g + 1) * G; c += 8) {
                const __m256 xv = _mm256_loadu_ps(xr + c), ax = _mm256_and_ps(xv, absmask);
                bad = _mm256_or_ps(bad, _mm256_cmp_ps(ax, big, _CMP_NLE_UQ)); /* NaN, inf (and > 2^127) */
                vmax = _mm256_max_ps(vmax, ax);
                vsum = _mm256_add_ps(vsum, xv);
            }
            const float amax = v8_hmax(vmax);
            if (_mm256_movemask_ps(bad) || (amax > 0.0f && amax < 0x1p-96f)) {
                /* non-finite x: the float path propagates it; tiny x: 1/xs
                 * would overflow, and the float path is exact anyway */
                qm_imv_avx2_free(p);
                return NULL;
            }
            p->xs[i * ngp + g] = amax / (float)XQ_MAX;
            p->sumx[i * ngp + g] = v8_hsum(vsum);
            const __m256 inv = _mm256_set1_ps(amax > 0.0f ? (float)XQ_MAX / amax : 0.0f);
            for (int64_t c = g * G; c < (g + 1) * G; c += 8) {
                /* cvtps rounds to nearest even (the default MXCSR mode), as rint */
                __m256i xi = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + c), inv));
                xi = _mm256_max_epi32(_mm256_min_epi32(xi, _mm256_set1_epi32(XQ_MAX)), _mm256_set1_epi32(-XQ_MAX));
                const __m128i x16 = _mm_packs_epi32(_mm256_castsi256_si128(xi), _mm256_extracti128_si256(xi, 1));
                if (p->bits != 4) { /* xi as int16, in code order */
                    _mm_storeu_si128((__m128i *)(xq + 2 * c), x16);
                    continue;
                }
                /* codes c .. c + 7 (c a multiple of 8) are lanes 2j, 2j + 1 of each plane, j = (c % 64) / 8 */
                uint32_t pk[4];
                _mm_storeu_si128((__m128i *)pk, _mm_shuffle_epi8(x16, pairs));
                int8_t *base = xq + (c / 64) * 128 + ((c % 64) / 8) * 4;
                for (int k = 0; k < 4; k++) memcpy(base + 32 * k, &pk[k], 4);
            }
        }
    }
    return p;
}

/* 8 scales or biases from index i of a row. */
static inline __m256 load_param8(const void *row, mlxn_dtype dt, int64_t i) {
    switch (dt) {
    case MLXN_DTYPE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
    case MLXN_DTYPE_BF16: {
        const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
    }
    default: return _mm256_loadu_ps((const float *)row + i);
    }
}

/* Per weight row and x row: sf[g] = scale_g * xs_g (one FMA applies both),
 * and the bias term sum_g b_g * sum(x)_g. The groups past the last whole 8
 * go one by one, straight into sf (why: gathering them into a vector
 * through a stack array was a third of the decode time of a model with
 * 9 groups per row, SmolLM2-135M). */
static inline __attribute__((always_inline)) float row_setup_t(const qmat *m, const qm_ixprep *p, int64_t r,
                                                                int64_t i, float *sf, const mlxn_dtype SDT) {
    const int64_t ng = p->ngroups, ngp = ng + SF_PAD, es = SDT == MLXN_DTYPE_F32 ? 4 : 2;
    const char *srow = (const char *)m->scales + r * m->s_stride * es;
    const char *brow = m->biases ? (const char *)m->biases + r * m->b_stride * es : NULL;
    const float *xs = p->xs + i * ngp, *sx = p->sumx + i * ngp;
    __m256 bacc = _mm256_setzero_ps();
    int64_t g = 0;
    for (; g + 8 <= ng; g += 8) {
        _mm256_storeu_ps(sf + g, _mm256_mul_ps(load_param8(srow, SDT, g), _mm256_loadu_ps(xs + g)));
        if (brow) bacc = _mm256_fmadd_ps(load_param8(brow, SDT, g), _mm256_loadu_ps(sx + g), bacc);
    }
    float bias = v8_hsum(bacc);
    for (; g < ng; g++) {
        sf[g] = v8_param1(srow, SDT, g) * xs[g];
        if (brow) bias += v8_param1(brow, SDT, g) * sx[g];
    }
    return bias;
}

/* row_setup_t for the matrix's scale dtype: one predictable branch per
 * row, each variant inlined with its conversions fixed. Why: called
 * through a function that switched on the dtype for every 8 groups, it was
 * 16% of SmolLM2-135M's decode mat-vec time on an AMD EPYC (9 groups per
 * row of its 576-wide products and its 49152-row head). */
static inline __attribute__((always_inline)) float row_setup(const qmat *m, const qm_ixprep *p, int64_t r,
                                                              int64_t i, float *sf) {
    switch (m->sdt) {
    case MLXN_DTYPE_BF16: return row_setup_t(m, p, r, i, sf, MLXN_DTYPE_BF16);
    case MLXN_DTYPE_F16: return row_setup_t(m, p, r, i, sf, MLXN_DTYPE_F16);
    default: return row_setup_t(m, p, r, i, sf, MLXN_DTYPE_F32);
    }
}

/* One 4-bit block (64 codes, 32 bytes at w) against x row i's planes xb:
 * the int32 sums of its 8 lanes (codes 8j .. 8j + 7 in lane j). */
static inline __m256i block4(__m256i w, const __m256i *xb) {
    const __m256i low4 = _mm256_set1_epi16(0x000F);
    const __m256i c0 = _mm256_and_si256(w, low4);                       /* codes 4m */
    const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(w, 4), low4); /* codes 4m + 1 */
    const __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(w, 8), low4); /* codes 4m + 2 */
    const __m256i c3 = _mm256_srli_epi16(w, 12);                        /* codes 4m + 3 */
    return _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(c0, _mm256_loadu_si256(xb)),
                                             _mm256_madd_epi16(c1, _mm256_loadu_si256(xb + 1))),
                            _mm256_add_epi32(_mm256_madd_epi16(c2, _mm256_loadu_si256(xb + 2)),
                                             _mm256_madd_epi16(c3, _mm256_loadu_si256(xb + 3))));
}

/* One block b (its first group g0; 4-bit: codes w; else q0, q1 as int16)
 * against the MM x rows, into acc. GS: the group size at 4 bits (32, 64,
 * 128), else 0. */
static inline __attribute__((always_inline)) void imv_step(const qm_ixprep *p, const float *sf, int64_t ngp, int64_t b,
                                                           int64_t g0, __m256i w, __m256i q0, __m256i q1, __m256i gidx,
                                                           __m256 *acc, const int MM, const int BITS, const int GS) {
    const int64_t xbytes = BITS == 4 ? 128 : 64; /* x per block */
    for (int i = 0; i < MM; i++) {
        const __m256i *xb = (const __m256i *)(p->xq + (i * p->nblk + b) * xbytes);
        const __m256i d = BITS == 4 ? block4(w, xb)
                                    : _mm256_add_epi32(_mm256_madd_epi16(q0, _mm256_loadu_si256(xb)),
                                                       _mm256_madd_epi16(q1, _mm256_loadu_si256(xb + 1)));
        /* 4-bit, groups of 32: the block's two groups, sf[g0] and sf[g0 + 1], spread over the lanes.
           An 8-byte load, where 32 bytes had been loaded: 3% faster on an AMD EPYC (Zen 3), likely
           because a 32-byte load straddles two of row_setup's recent stores and cannot take its
           value from them. One group: a broadcast load (a load alone, no shuffle) */
        __m256 lsf;
        if (BITS == 4 && GS == 32) {
            const __m128i sf2 = _mm_loadl_epi64((const __m128i *)(sf + i * ngp + g0));
            lsf = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_castsi128_ps(sf2)), gidx);
        } else {
            lsf = _mm256_broadcast_ss(sf + i * ngp + g0);
        }
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), lsf, acc[i]);
    }
}

/* 4-bit, groups of 128: blocks b and b + 1 (codes w0, w1), one group g0,
 * summed in int32 before the one conversion and FMA they share. */
static inline __attribute__((always_inline)) void imv_step128(const qm_ixprep *p, const float *sf, int64_t ngp,
                                                              int64_t b, int64_t g0, __m256i w0, __m256i w1,
                                                              __m256 *acc, const int MM) {
    for (int i = 0; i < MM; i++) {
        const __m256i *xb = (const __m256i *)(p->xq + (i * p->nblk + b) * 128);
        const __m256i d = _mm256_add_epi32(block4(w0, xb), block4(w1, xb + 4));
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_broadcast_ss(sf + i * ngp + g0), acc[i]);
    }
}

/* Rows [r0, r1) against MM x rows, BITS 4, 8 or 0 (2, 3, 5, 6: m->bits;
 * constants once inlined, so
 * the accumulators stay in registers and the block step is fixed).
 *   4-bit: a block is 64 codes; lane j's group is g0 + 8j / G (two groups
 *   per block at G = 32). Taking the codes out of the 16-bit lanes
 *   (shifts, masks) is the same for every x row; the compiler hoists it
 *   out of the x-row loop.
 *   8-bit: a block is 32 codes (one group or part of one), widened to int16
 *   in two halves, each multiplied with 16 int16 x values by VPMADDWD. */
static inline __attribute__((always_inline)) void imv_body(const qmat *m, const qm_ixprep *p, int64_t r0,
                                                           int64_t r1, float *out, int64_t ldo, float *sf,
                                                           const int MM, const int BITS, const int GS) {
    const int64_t K = p->K, ngp = p->ngroups + SF_PAD, G = m->group;
    const int64_t codes = BITS == 4 ? 64 : 32; /* per block */
    const __m256i gidx = BITS == 4 && G == 32 ? _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1) : _mm256_setzero_si256();
    const qm_packed pu = qm_packed_for(BITS == 0 ? m->bits : 2); /* used by BITS 0 only */
    const int64_t bb = 4 * (int64_t)m->bits; /* BITS 0: bytes per 32-code block */
    /* log2 of the group (32, 64 or 128): a block's first group by a shift. Why: `b * codes / G`
       compiled to a 64-bit idiv per block, which set the loop's pace on an AMD EPYC (Zen 3). At
       4 bits the group is a constant (GS), so the shift folds into the block index: a variable
       shift and its index arithmetic were a third of the loop's instructions */
    const int gsh = GS ? (GS == 32 ? 5 : GS == 64 ? 6 : 7) : G == 32 ? 5 : G == 64 ? 6 : 7;
    const int64_t nfull = BITS == 4 ? K / 64 : p->nblk; /* blocks of a whole 64 codes (4-bit) */
    float bias[QM_MATVEC_MAX_ROWS];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wrow = (const uint8_t *)(m->wq + r * m->wq_stride);
        __m256 acc[QM_MATVEC_MAX_ROWS];
        for (int i = 0; i < MM; i++) {
            bias[i] = row_setup(m, p, r, i, sf + i * ngp);
            acc[i] = _mm256_setzero_ps();
        }
        /* the full blocks without a per-block test, then 4-bit's 32-code tail block, if any */
        int64_t b = 0;
        if (BITS == 4 && GS == 128) /* K is a multiple of 128: whole pairs */
            for (; b + 2 <= nfull; b += 2)
                imv_step128(p, sf, ngp, b, b >> 1, _mm256_loadu_si256((const __m256i *)(wrow + b * 32)),
                            _mm256_loadu_si256((const __m256i *)(wrow + b * 32 + 32)), acc, MM);
        for (; b < nfull; b++) {
            __m256i w = _mm256_setzero_si256(), q0 = w, q1 = w;
            if (BITS == 4) w = _mm256_loadu_si256((const __m256i *)(wrow + b * 32));
            else if (BITS == 8)
                q0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(wrow + b * 32))),
                q1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(wrow + b * 32) + 1));
            else
                qm_packed_codes32(&pu, wrow + b * bb, (p->nblk - b) * bb, &q0, &q1);
            imv_step(p, sf, ngp, b, (b * codes) >> gsh, w, q0, q1, gidx, acc, MM, BITS, GS);
        }
        for (; b < p->nblk; b++) /* its missing half: zero codes against zero x bytes */
            imv_step(p, sf, ngp, b, (b * codes) >> gsh,
                     _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)(wrow + b * 32))), _mm256_setzero_si256(),
                     _mm256_setzero_si256(), gidx, acc, MM, BITS, GS);
        for (int i = 0; i < MM; i++) out[i * ldo + r] = v8_hsum(acc[i]) + bias[i];
    }
}

#define IMV_CASES(BITS, GS)                                                \
    switch (p->M) {                                                        \
    case 1: imv_body(m, p, r0, r1, out, ldo, sf, 1, BITS, GS); break;      \
    case 2: imv_body(m, p, r0, r1, out, ldo, sf, 2, BITS, GS); break;      \
    case 3: imv_body(m, p, r0, r1, out, ldo, sf, 3, BITS, GS); break;      \
    default: imv_body(m, p, r0, r1, out, ldo, sf, 4, BITS, GS); break;     \
    }

void qm_imv_avx2_rows(const qmat *m, const qm_ixprep *p, int64_t r0, int64_t r1, float *out, int64_t ldo,
                      int thread) {
    float *sf = p->sf + (int64_t)thread * p->sfs;
    if (p->bits == 8) IMV_CASES(8, 0)
    else if (p->bits == 4) {
        if (m->group == 32) IMV_CASES(4, 32)
        else if (m->group == 64) IMV_CASES(4, 64)
        else IMV_CASES(4, 128)
    } else IMV_CASES(0, 0)
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else /* not x86-64 GCC/Clang: the AVX2 level is never selected */

int qm_imv_avx2_supported(const qmat *m, int64_t M) {
    (void)m, (void)M;
    return 0;
}
qm_ixprep *qm_imv_avx2_prepare(const qmat *m, const float *x, int64_t ldx, int64_t M, int n_threads) {
    (void)m, (void)x, (void)ldx, (void)M, (void)n_threads;
    return NULL;
}
void qm_imv_avx2_free(qm_ixprep *p) { (void)p; }
void qm_imv_avx2_rows(const qmat *m, const qm_ixprep *p, int64_t r0, int64_t r1, float *out, int64_t ldo,
                      int thread) {
    (void)m, (void)p, (void)r0, (void)r1, (void)out, (void)ldo, (void)thread;
}
#endif
