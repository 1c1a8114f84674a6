/* AVX2 kernel of the integer weighted sums over 4-bit TurboQuant values
 * (the model and why: tq_kernels.h; its scalar oracle: tq_vsum.c).
 *
 * Per block of up to TQ_VSUM_KEYS keys (the first applies corr), in pairs (j, j + 1; an odd last
 * key pairs with itself at weight 0):
 *   - decode, once per block: the two keys' 32-byte code pieces (64 dims)
 *     give their low and high nibbles; byte unpacks interleave the two
 *     keys' codes, two vpshufb look up the low and high bytes of the 16-bit
 *     levels and two more unpacks join them: 8 vectors per pair and
 *     segment, each 8 dims x 2 keys as 16-bit pairs, ~18 operations per key
 *     and 64 dims where the f32 decode took ~55. Buffer [pairs][D / 8][16].
 *   - per live query row: the weights u = w * vscale rounded to 16 bits
 *     against their maximum, packed as one 32-bit word per key pair; for
 *     each 64 dims, one vpmaddwd (the pair's two products, added) and one
 *     add per 8 dims and pair into 8 int32 accumulators, then
 *     acc = acc * corr + sum * fac, written in tq_vsum_slot order.
 * Every output is the scalar model's bits: the integer sums are exact and
 * the float expression is the same. */
#include <math.h>

#include "backend/cpu/cpu_vmath.h"
#include "backend/cpu/tq_kernels.h"
#include "quant/tq_layout.h"

#if CPU_VMATH_X86

TGT_AVX2 static inline __attribute__((always_inline)) void vsum4_block(const uint8_t *v, int64_t vstride,
                                                                  const float *vnorm, float vfac,
                                                                  int64_t n, const int64_t D, const int16_t l16[16],
                                                                  const float *w, int64_t lds, const float *corr,
                                                                  const unsigned char *live, int64_t M,
                                                                  float *const *acc) {
    uint8_t lb[16], hb[16];
    tq_l16_bytes(l16, lb, hb);
    const __m256i plo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lb));
    const __m256i phi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)hb));
    const __m256i m4 = _mm256_set1_epi8(15), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 vf = _mm256_set1_ps(vfac);
    const int64_t np = (n + 1) / 2;
    /* [pairs][D / 8 vectors][8 dims x 2 keys] 16-bit levels, interleaved per pair */
    int16_t pv[TQ_VSUM_KEYS / 2 * MLXN_TQ_MAX_HEAD_DIM * 2];
    for (int64_t p = 0; p < np; p++) {
        const uint8_t *rj = v + 2 * p * vstride, *rk = v + (2 * p + 1 < n ? 2 * p + 1 : 2 * p) * vstride;
        for (int64_t g = 0; g < D / 64; g++) {
            const __m256i xj = _mm256_loadu_si256((const __m256i *)(rj + 32 * g));
            const __m256i xk = _mm256_loadu_si256((const __m256i *)(rk + 32 * g));
            const __m256i cj[2] = {_mm256_and_si256(xj, m4), _mm256_and_si256(_mm256_srli_epi16(xj, 4), m4)};
            const __m256i ck[2] = {_mm256_and_si256(xk, m4), _mm256_and_si256(_mm256_srli_epi16(xk, 4), m4)};
            int16_t *o = pv + (p * (D / 8) + g * 8) * 16;
            for (int par = 0; par < 2; par++) { /* even dims, then odd */
                const __m256i il[2] = {_mm256_unpacklo_epi8(cj[par], ck[par]), _mm256_unpackhi_epi8(cj[par], ck[par])};
                for (int i = 0; i < 2; i++) {
                    const __m256i bl = _mm256_shuffle_epi8(plo, il[i]), bh = _mm256_shuffle_epi8(phi, il[i]);
                    _mm256_storeu_si256((__m256i *)(o + (par * 4 + i * 2) * 16), _mm256_unpacklo_epi8(bl, bh));
                    _mm256_storeu_si256((__m256i *)(o + (par * 4 + i * 2 + 1) * 16), _mm256_unpackhi_epi8(bl, bh));
                }
            }
        }
    }
    for (int64_t r = 0; r < M; r++) {
        if (!live[r]) continue;
        /* the weights u = w * vscale, lanes past n zero (masked loads: no copies, no zeroing) */
        __m256 x[TQ_VSUM_KEYS / 8];
        __m256 mx = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
        for (int g = 0; g < TQ_VSUM_KEYS / 8; g++) {
            const int64_t m = n - 8 * g;
            if (m <= 0) {
                x[g] = _mm256_setzero_ps();
                continue;
            }
            const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(m < 8 ? (int)m : 8), lane);
            x[g] = _mm256_mul_ps(_mm256_maskload_ps(w + r * lds + 8 * g, mask),
                                 _mm256_mul_ps(_mm256_maskload_ps(vnorm + 8 * g, mask), vf));
            /* not finite: x - x is NaN */
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_sub_ps(x[g], x[g]), _mm256_sub_ps(x[g], x[g]), _CMP_UNORD_Q));
            mx = _mm256_max_ps(mx, x[g]);
        }
        float *a = acc[r];
        if (_mm256_movemask_ps(bad)) {
            for (int64_t d = 0; d < D; d++) a[d] = NAN;
            continue;
        }
        __m128 m4v = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4v = _mm_max_ps(m4v, _mm_movehl_ps(m4v, m4v));
        const float umax = _mm_cvtss_f32(_mm_max_ss(m4v, _mm_movehdup_ps(m4v)));
        const float inv = umax > 0.0f ? 32767.0f / umax : 0.0f, fac = umax * TQ_VSUM_FAC;
        /* 16-bit weights in key order, read as one 32-bit word per pair (past n: zeros) */
        int16_t u16[TQ_VSUM_KEYS];
        const __m256 iv = _mm256_set1_ps(inv);
        for (int g = 0; g < TQ_VSUM_KEYS / 8; g += 2) {
            const __m256i lo = _mm256_cvtps_epi32(_mm256_mul_ps(x[g], iv)), hi = _mm256_cvtps_epi32(_mm256_mul_ps(x[g + 1], iv));
            _mm256_storeu_si256((__m256i *)(u16 + 8 * g), _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8));
        }
        const uint32_t *wp = (const uint32_t *)u16;
        const __m256 cr = _mm256_set1_ps(corr ? corr[r] : 1.0f), fv = _mm256_set1_ps(fac);
        for (int64_t c = 0; c < D / 64; c++) {
            __m256i s[8];
            for (int e = 0; e < 8; e++) s[e] = _mm256_setzero_si256();
            for (int64_t p = 0; p < np; p++) {
                const __m256i wv = _mm256_set1_epi32((int)wp[p]);
                const int16_t *src = pv + (p * (D / 8) + c * 8) * 16;
                for (int e = 0; e < 8; e++)
                    s[e] = _mm256_add_epi32(s[e], _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(src + e * 16)), wv));
            }
            for (int e = 0; e < 8; e++) {
                float *o = a + c * 64 + e * 8;
                _mm256_storeu_ps(o, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(o), cr), _mm256_mul_ps(_mm256_cvtepi32_ps(s[e]), fv)));
            }
        }
    }
}

/* Blocks of TQ_VSUM_KEYS keys, corr applied by the first; a constant D per
 * call, as in tq_kscores_avx2.c. */
TGT_AVX2 static inline __attribute__((always_inline)) void vsum4_d(const uint8_t *v, int64_t vstride,
                                                                  const float *vnorm, float vfac,
                                                                  int64_t n, const int64_t D, const int16_t l16[16],
                                                                  const float *w, int64_t lds, const float *corr,
                                                                  const unsigned char *live, int64_t M,
                                                                  float *const *acc) {
    for (int64_t c0 = 0; c0 < n; c0 += TQ_VSUM_KEYS) {
        const int64_t m = n - c0 < TQ_VSUM_KEYS ? n - c0 : TQ_VSUM_KEYS;
        vsum4_block(v + c0 * vstride, vstride, vnorm + c0, vfac, m, D, l16, w + c0, lds, c0 == 0 ? corr : NULL, live, M,
                    acc);
    }
}

TGT_AVX2 static void vsum4(const uint8_t *v, int64_t vstride, const float *vnorm, float vfac, int64_t n, int64_t D,
                           const int16_t l16[16], const float *w, int64_t lds, const float *corr,
                           const unsigned char *live, int64_t M, float *const *acc) {
    switch (D) {
    case 64: vsum4_d(v, vstride, vnorm, vfac, n, 64, l16, w, lds, corr, live, M, acc); break;
    case 128: vsum4_d(v, vstride, vnorm, vfac, n, 128, l16, w, lds, corr, live, M, acc); break;
    case 256: vsum4_d(v, vstride, vnorm, vfac, n, 256, l16, w, lds, corr, live, M, acc); break;
    default: vsum4_d(v, vstride, vnorm, vfac, n, 512, l16, w, lds, corr, live, M, acc); break;
    }
}

tq_vsum_fn tq_vsum4_avx2(void) { return vsum4; }

#else
tq_vsum_fn tq_vsum4_avx2(void) { return 0; }
#endif
