/* AVX-512 kernel of the integer scores over 4-bit TurboQuant keys (the
 * model and why: tq_kernels.h; its scalar oracle: tq_kscores.c; the AVX2
 * kernel it widens: tq_kscores_avx2.c). The AVX512 ISA level includes VNNI
 * (cpu_backend.c), so VPDPWSSD does each 32 dims' products and their sum
 * into the int32 lanes in one instruction (no saturation: the same exact
 * sums as VPMADDWD + VPADDD).
 *
 * Per block of 8 keys:
 *   - decode: each 32-byte piece of a code row (64 dims) has its quarters
 *     1 and 2 swapped (VPERMQ), is widened to 16-bit words (VPMOVZXBW), and
 *     its low and high nibbles (even and odd dims) become 16-bit levels with
 *     one VPERMW each from the 16 levels in a register: two vectors of 32
 *     levels in the queries' order (tq_kq_slot: the swap is what AVX2's
 *     per-lane unpacks leave). 4 shuffles per 64 codes, where the AVX2
 *     decoder spends 8 plus two stores more.
 *   - per query row, per key: one VPDPWSSD per 32 dims;
 *   - the 8 keys' 16-lane sums are reduced together (hsum8x16) and scaled
 *     exactly as the AVX2 kernel does: s = (sum * kscale) * qs.
 * Every score is the scalar model's bits. A block short of 8 keys repeats
 * its last key and drops the extra scores. */
#include "backend/cpu/cpu_vmath.h"
#include "backend/cpu/tq_kernels.h"
#include "quant/tq_layout.h"

#if CPU_VMATH_X86

/* [s_0 .. s_7] from eight 16-lane int32 accumulators: keys paired into
 * halves, then into 128-bit lanes, then within the lanes. */
TGT_AVX512_VNNI static inline __m256i hsum8x16(const __m512i a[8]) {
    __m512i p[4]; /* p[i]: key 2i's 8 partial sums in the low 256 bits, key 2i + 1's in the high */
    for (int i = 0; i < 4; i++)
        p[i] = _mm512_add_epi32(_mm512_shuffle_i64x2(a[2 * i], a[2 * i + 1], 0x44),
                                _mm512_shuffle_i64x2(a[2 * i], a[2 * i + 1], 0xEE));
    /* x: 128-bit lane i holds key i's 4 partial sums; y: key 4 + i's */
    const __m512i x = _mm512_add_epi32(_mm512_shuffle_i64x2(p[0], p[1], 0x88), _mm512_shuffle_i64x2(p[0], p[1], 0xDD));
    const __m512i y = _mm512_add_epi32(_mm512_shuffle_i64x2(p[2], p[3], 0x88), _mm512_shuffle_i64x2(p[2], p[3], 0xDD));
    /* lane i: [x0 + x2, y0 + y2, x1 + x3, y1 + y3], then [key i, key 4 + i, key i, key 4 + i] */
    const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi32(x, y), _mm512_unpackhi_epi32(x, y));
    const __m512i v = _mm512_add_epi32(u, _mm512_shuffle_epi32(u, (_MM_PERM_ENUM)0x4E));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, v));
}

/* The kernel body for one head dim (inlined with a constant D, as in the
 * AVX2 kernel, so the eight keys' sums stay in registers). */
TGT_AVX512_VNNI static inline __attribute__((always_inline)) void kscores4_d(const uint8_t *k, int64_t kstride,
                                                                            const float *knorm, float kfac, int64_t n,
                                                                            const int64_t D, const tq_kq *q,
                                                                            int64_t q0, int64_t nt, int64_t Tq,
                                                                            int64_t M, float *s, int64_t lds) {
    /* VPERMW reads 32 entries by the index's low 5 bits; codes are 0..15 */
    const __m512i tbl = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)q->l16));
    const __m512i m4 = _mm512_set1_epi16(15);
    int16_t lv[8 * MLXN_TQ_MAX_HEAD_DIM]; /* [8 keys][D] levels in the queries' order */
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
        const int64_t nj = n - j0 < 8 ? n - j0 : 8;
        float ksb[8];
        for (int jj = 0; jj < 8; jj++) {
            const int64_t j = j0 + (jj < nj ? jj : nj - 1);
            const uint8_t *row = k + j * kstride;
            ksb[jj] = knorm[j] * kfac;
            for (int64_t g = 0; g < D / 64; g++) {
                /* bytes 0-7, 16-23, 8-15, 24-31: code byte b lands on its tq_kq_slot within a parity */
                const __m256i x = _mm256_permute4x64_epi64(_mm256_loadu_si256((const __m256i *)(row + 32 * g)), 0xD8);
                const __m512i w = _mm512_cvtepu8_epi16(x);
                int16_t *o = lv + jj * D + 64 * g;
                _mm512_storeu_si512(o, _mm512_permutexvar_epi16(_mm512_and_si512(w, m4), tbl));   /* even dims */
                _mm512_storeu_si512(o + 32, _mm512_permutexvar_epi16(_mm512_srli_epi16(w, 4), tbl)); /* odd dims */
            }
        }
        const __m256 ks = _mm256_loadu_ps(ksb);
        for (int64_t r = 0; r < M; r++) {
            const int64_t qr = q0 + (r / nt) * Tq + r % nt;
            const int16_t *qv = q->q + qr * D;
            __m512i acc[8];
            for (int jj = 0; jj < 8; jj++) acc[jj] = _mm512_setzero_si512();
            for (int64_t g = 0; g < D; g += 32) {
                const __m512i a = _mm512_loadu_si512(qv + g);
                for (int jj = 0; jj < 8; jj++) acc[jj] = _mm512_dpwssd_epi32(acc[jj], a, _mm512_loadu_si512(lv + jj * D + g));
            }
            const __m256 sc = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(hsum8x16(acc)), ks), _mm256_set1_ps(q->qs[qr]));
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

TGT_AVX512_VNNI static void kscores4(const uint8_t *k, int64_t kstride, const float *knorm, float kfac, int64_t n,
                                     int64_t D, const tq_kq *q, int64_t q0, int64_t nt, int64_t Tq, int64_t M, float *s,
                                     int64_t lds) {
    switch (D) {
    case 64: kscores4_d(k, kstride, knorm, kfac, n, 64, q, q0, nt, Tq, M, s, lds); break;
    case 128: kscores4_d(k, kstride, knorm, kfac, n, 128, q, q0, nt, Tq, M, s, lds); break;
    case 256: kscores4_d(k, kstride, knorm, kfac, n, 256, q, q0, nt, Tq, M, s, lds); break;
    default: kscores4_d(k, kstride, knorm, kfac, n, 512, q, q0, nt, Tq, M, s, lds); break; /* head dims are 64..512 */
    }
}

tq_kscores_fn tq_kscores4_avx512(void) { return kscores4; }

#else
tq_kscores_fn tq_kscores4_avx512(void) { return 0; }
#endif
