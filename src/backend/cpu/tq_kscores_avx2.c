/* AVX2 kernel of the integer scores over 4-bit TurboQuant keys (the model
 * and why: tq_kernels.h; its scalar oracle: tq_kscores.c).
 *
 * Per block of 8 keys:
 *   - decode: each 32-byte piece of a code row (64 dims) gives its low
 *     nibbles (even dims) and high nibbles (odd dims); two vpshufb per
 *     nibble vector look up the low and high bytes of the 16-bit levels
 *     and two byte unpacks join them: four vectors of 16 levels, stored in
 *     a small L1 buffer [8 keys][D] in the queries' order (tq_kq_slot).
 *     ~15 operations per 64 codes, where the f32 decode took ~58;
 *   - per query row, per key: one vpmaddwd per 16 dims (q16 x L16, pairs
 *     added into int32) and an add;
 *   - the 8 keys' sums are reduced together (three rounds of vphaddd and a
 *     cross-lane add), converted once and scaled: s = (sum * kscale) * qs.
 * Every score is the scalar model's bits: the integer sums are exact and
 * the two products are in the same order. A block short of 8 keys repeats
 * its last key and drops the extra scores. */
#include "backend/cpu/cpu_vmath.h"
#include "backend/cpu/tq_kernels.h"
#include "quant/tq_layout.h"

#if CPU_VMATH_X86

/* [s_0 .. s_7] from eight 8-lane int32 accumulators. */
TGT_AVX2 static inline __m256i hsum8x8(const __m256i a[8]) {
    const __m256i h01 = _mm256_hadd_epi32(a[0], a[1]), h23 = _mm256_hadd_epi32(a[2], a[3]);
    const __m256i h45 = _mm256_hadd_epi32(a[4], a[5]), h67 = _mm256_hadd_epi32(a[6], a[7]);
    const __m256i lo4 = _mm256_hadd_epi32(h01, h23), hi4 = _mm256_hadd_epi32(h45, h67);
    /* lo4 lane 0 holds keys 0..3's low-lane sums, lane 1 their high-lane sums; hi4 the same for keys 4..7 */
    return _mm256_add_epi32(_mm256_permute2x128_si256(lo4, hi4, 0x20), _mm256_permute2x128_si256(lo4, hi4, 0x31));
}

/* The kernel body for one head dim: always inlined and called with a
 * constant D, so the loops over D unroll and the eight keys' sums stay in
 * registers (with D a variable, GCC kept them in memory: 15.5 against 9 ns
 * per key at D = 64, 3 rows, in the 8-bit version). */
TGT_AVX2 static inline __attribute__((always_inline)) void kscores4_d(const uint8_t *k, int64_t kstride,
                                                                     const float *knorm, float kfac, int64_t n,
                                                                     const int64_t D, const tq_kq *q, int64_t q0,
                                                                     int64_t nt, int64_t Tq, int64_t M, float *s,
                                                                     int64_t lds) {
    /* the levels' low and high bytes, one table per byte, in both 128-bit lanes */
    uint8_t lb[16], hb[16];
    tq_l16_bytes(q->l16, lb, hb);
    const __m256i plo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lb));
    const __m256i phi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)hb));
    const __m256i m4 = _mm256_set1_epi8(15);
    int16_t lv[8 * MLXN_TQ_MAX_HEAD_DIM]; /* [8 keys][D] levels in the queries' order */
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
        const int64_t nj = n - j0 < 8 ? n - j0 : 8;
        float ksb[8];
        for (int jj = 0; jj < 8; jj++) {
            const int64_t j = j0 + (jj < nj ? jj : nj - 1);
            const uint8_t *row = k + j * kstride;
            ksb[jj] = knorm[j] * kfac;
            for (int64_t g = 0; g < D / 64; g++) {
                const __m256i x = _mm256_loadu_si256((const __m256i *)(row + 32 * g));
                const __m256i c[2] = {_mm256_and_si256(x, m4), _mm256_and_si256(_mm256_srli_epi16(x, 4), m4)};
                int16_t *o = lv + jj * D + 64 * g;
                for (int p = 0; p < 2; p++) { /* even dims, then odd */
                    const __m256i bl = _mm256_shuffle_epi8(plo, c[p]), bh = _mm256_shuffle_epi8(phi, c[p]);
                    _mm256_storeu_si256((__m256i *)(o + 32 * p), _mm256_unpacklo_epi8(bl, bh));
                    _mm256_storeu_si256((__m256i *)(o + 32 * p + 16), _mm256_unpackhi_epi8(bl, bh));
                }
            }
        }
        const __m256 ks = _mm256_loadu_ps(ksb);
        for (int64_t r = 0; r < M; r++) {
            const int64_t qr = q0 + (r / nt) * Tq + r % nt;
            const int16_t *qv = q->q + qr * D;
            __m256i acc[8];
            for (int jj = 0; jj < 8; jj++) acc[jj] = _mm256_setzero_si256();
            for (int64_t g = 0; g < D; g += 16) {
                const __m256i a = _mm256_loadu_si256((const __m256i *)(qv + g));
                for (int jj = 0; jj < 8; jj++)
                    acc[jj] = _mm256_add_epi32(acc[jj], _mm256_madd_epi16(a, _mm256_loadu_si256((const __m256i *)(lv + jj * D + g))));
            }
            const __m256 sc = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(hsum8x8(acc)), ks), _mm256_set1_ps(q->qs[qr]));
            if (nj == 8) {
                _mm256_storeu_ps(s + r * lds + j0, sc);
            } else {
                float tmp[8];
                _mm256_storeu_ps(tmp, sc);
                for (int64_t jj = 0; jj < nj; jj++) s[r * lds + j0 + jj] = tmp[jj];
            }
        }
    }
}

TGT_AVX2 static void kscores4(const uint8_t *k, int64_t kstride, const float *knorm, float kfac, int64_t n, int64_t D,
                              const tq_kq *q, int64_t q0, int64_t nt, int64_t Tq, int64_t M, float *s, int64_t lds) {
    switch (D) {
    case 64: kscores4_d(k, kstride, knorm, kfac, n, 64, q, q0, nt, Tq, M, s, lds); break;
    case 128: kscores4_d(k, kstride, knorm, kfac, n, 128, q, q0, nt, Tq, M, s, lds); break;
    case 256: kscores4_d(k, kstride, knorm, kfac, n, 256, q, q0, nt, Tq, M, s, lds); break;
    default: kscores4_d(k, kstride, knorm, kfac, n, 512, q, q0, nt, Tq, M, s, lds); break; /* head dims are 64..512 */
    }
}

tq_kscores_fn tq_kscores4_avx2(void) { return kscores4; }

#else
tq_kscores_fn tq_kscores4_avx2(void) { return 0; }
#endif
