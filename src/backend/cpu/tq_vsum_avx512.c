/* AVX-512 kernel of the integer weighted sums over 4-bit TurboQuant values
 * (the model and why: tq_kernels.h; its scalar oracle: tq_vsum.c; the
 * AVX2 kernel it widens: tq_vsum_avx2.c). The AVX512 ISA level includes
 * VNNI (cpu_backend.c): VPDPWSSD adds a key pair's two products per dim
 * into the int32 lanes in one instruction (no saturation: the same exact
 * sums as VPMADDWD + VPADDD).
 *
 * Per block of up to TQ_VSUM_KEYS keys (the first applies corr), in pairs
 * (j, j + 1; an odd last key pairs with itself at weight 0):
 *   - decode, once per block: both keys' 32-byte code pieces (64 dims) are
 *     widened to 16-bit words (VPMOVZXBW); one VPERMT2W per half gathers the
 *     two keys' codes of 16 dims side by side in the order the accumulator
 *     keeps them (tq_vsum_slot: what AVX2's per-lane unpacks leave, so both
 *     kernels and the model agree on it), and the low and high nibbles (even
 *     and odd dims) become 16-bit levels with one VPERMW each: 4 vectors of
 *     16 dims x 2 keys per pair and 64 dims, 8 shuffles where the AVX2
 *     decoder spends 16. Buffer [pairs][D / 16][32].
 *   - per live query row: the weights u = w * vscale rounded to 16 bits
 *     against their maximum (the AVX2 kernel's expressions), one 32-bit word
 *     per key pair; one VPDPWSSD per 16 dims and pair into 4 int32
 *     accumulators per 64 dims, then acc = acc * corr + sum * fac.
 * Every output is the scalar model's bits. */
#include <math.h>

#include "backend/cpu/cpu_vmath.h"
#include "backend/cpu/tq_kernels.h"
#include "quant/tq_layout.h"

#if CPU_VMATH_X86

/* The VPERMT2W index of half il: int32 lane t = 8 h + i takes code byte
 * b = 8 il + 4 h + i % 4 + 16 (i / 4) (tq_vsum_slot's order) of key j
 * (word 2 t, from the first source) and of key k (word 2 t + 1, second). */
TGT_AVX512_VNNI static inline __m512i pair_index(int il) {
    int16_t idx[32];
    for (int t = 0; t < 16; t++) {
        const int h = t >> 3, i = t & 7, b = 8 * il + 4 * h + (i & 3) + 16 * (i >> 2);
        idx[2 * t] = (int16_t)b, idx[2 * t + 1] = (int16_t)(32 + b);
    }
    return _mm512_loadu_si512(idx);
}

TGT_AVX512_VNNI static inline __attribute__((always_inline)) void vsum4_block(const uint8_t *v, int64_t vstride,
                                                                             const float *vnorm, float vfac,
                                                                             int64_t n, const int64_t D,
                                                                             const __m512i tbl, const __m512i ix[2],
                                                                             const float *w, int64_t lds,
                                                                             const float *corr,
                                                                             const unsigned char *live, int64_t M,
                                                                             float *const *acc) {
    const __m512i m4 = _mm512_set1_epi16(15);
    const __m512 vf = _mm512_set1_ps(vfac);
    const int64_t np = (n + 1) / 2;
    /* [pairs][D / 16 vectors][16 dims x 2 keys] 16-bit levels, vector 4 c + 2 par + il of segment c */
    int16_t pv[TQ_VSUM_KEYS / 2 * MLXN_TQ_MAX_HEAD_DIM * 2];
    for (int64_t p = 0; p < np; p++) {
        const uint8_t *rj = v + 2 * p * vstride, *rk = v + (2 * p + 1 < n ? 2 * p + 1 : 2 * p) * vstride;
        for (int64_t g = 0; g < D / 64; g++) {
            const __m512i wj = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(rj + 32 * g)));
            const __m512i wk = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(rk + 32 * g)));
            int16_t *o = pv + (p * (D / 16) + g * 4) * 32;
            for (int il = 0; il < 2; il++) {
                const __m512i b = _mm512_permutex2var_epi16(wj, ix[il], wk);
                _mm512_storeu_si512(o + il * 32, _mm512_permutexvar_epi16(_mm512_and_si512(b, m4), tbl));        /* even dims */
                _mm512_storeu_si512(o + (2 + il) * 32, _mm512_permutexvar_epi16(_mm512_srli_epi16(b, 4), tbl)); /* odd */
            }
        }
    }
    for (int64_t r = 0; r < M; r++) {
        if (!live[r]) continue;
        /* the weights u = w * vscale, lanes past n zero (masked loads) */
        __m512 x[TQ_VSUM_KEYS / 16];
        __m512 mx = _mm512_setzero_ps();
        __mmask16 bad = 0;
        for (int g = 0; g < TQ_VSUM_KEYS / 16; g++) {
            const int64_t m = n - 16 * g;
            const __mmask16 k = m <= 0 ? 0 : m >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << m) - 1u);
            x[g] = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, w + r * lds + 16 * g),
                                 _mm512_mul_ps(_mm512_maskz_loadu_ps(k, vnorm + 16 * g), vf));
            const __m512 dx = _mm512_sub_ps(x[g], x[g]); /* NaN where x is not finite */
            bad |= _mm512_cmp_ps_mask(dx, dx, _CMP_UNORD_Q);
            mx = _mm512_max_ps(mx, x[g]);
        }
        float *a = acc[r];
        if (bad) {
            for (int64_t d = 0; d < D; d++) a[d] = NAN;
            continue;
        }
        const float umax = _mm512_reduce_max_ps(mx);
        const float inv = umax > 0.0f ? 32767.0f / umax : 0.0f, fac = umax * TQ_VSUM_FAC;
        /* 16-bit weights in key order, read as one 32-bit word per pair (past n: zeros) */
        int16_t u16[TQ_VSUM_KEYS];
        const __m512 iv = _mm512_set1_ps(inv);
        for (int g = 0; g < TQ_VSUM_KEYS / 16; g++)
            _mm256_storeu_si256((__m256i *)(u16 + 16 * g), _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(x[g], iv))));
        const uint32_t *wp = (const uint32_t *)u16;
        const __m512 cr = _mm512_set1_ps(corr ? corr[r] : 1.0f), fv = _mm512_set1_ps(fac);
        for (int64_t c = 0; c < D / 64; c++) {
            __m512i s[4];
            for (int e = 0; e < 4; e++) s[e] = _mm512_setzero_si512();
            for (int64_t p = 0; p < np; p++) {
                const __m512i wv = _mm512_set1_epi32((int)wp[p]);
                const int16_t *src = pv + (p * (D / 16) + c * 4) * 32;
                for (int e = 0; e < 4; e++) s[e] = _mm512_dpwssd_epi32(s[e], _mm512_loadu_si512(src + e * 32), wv);
            }
            /* vector e = 2 par + il holds slots 16 e .. 16 e + 15 of the segment (tq_vsum_slot) */
            for (int e = 0; e < 4; e++) {
                float *o = a + c * 64 + e * 16;
                _mm512_storeu_ps(o, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(o), cr), _mm512_mul_ps(_mm512_cvtepi32_ps(s[e]), fv)));
            }
        }
    }
}

/* Blocks of TQ_VSUM_KEYS keys, corr applied by the first; a constant D per
 * call, as in tq_kscores_avx2.c. */
TGT_AVX512_VNNI static inline __attribute__((always_inline)) void vsum4_d(const uint8_t *v, int64_t vstride,
                                                                         const float *vnorm, float vfac, int64_t n,
                                                                         const int64_t D, const int16_t l16[16],
                                                                         const float *w, int64_t lds, const float *corr,
                                                                         const unsigned char *live, int64_t M,
                                                                         float *const *acc) {
    /* VPERMW reads 32 entries by the index's low 5 bits; codes are 0..15 */
    const __m512i tbl = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)l16));
    const __m512i ix[2] = {pair_index(0), pair_index(1)};
    for (int64_t c0 = 0; c0 < n; c0 += TQ_VSUM_KEYS) {
        const int64_t m = n - c0 < TQ_VSUM_KEYS ? n - c0 : TQ_VSUM_KEYS;
        vsum4_block(v + c0 * vstride, vstride, vnorm + c0, vfac, m, D, tbl, ix, w + c0, lds, c0 == 0 ? corr : NULL,
                    live, M, acc);
    }
}

TGT_AVX512_VNNI static void vsum4(const uint8_t *v, int64_t vstride, const float *vnorm, float vfac, int64_t n,
                                  int64_t D, const int16_t l16[16], const float *w, int64_t lds, const float *corr,
                                  const unsigned char *live, int64_t M, float *const *acc) {
    switch (D) {
    case 64: vsum4_d(v, vstride, vnorm, vfac, n, 64, l16, w, lds, corr, live, M, acc); break;
    case 128: vsum4_d(v, vstride, vnorm, vfac, n, 128, l16, w, lds, corr, live, M, acc); break;
    case 256: vsum4_d(v, vstride, vnorm, vfac, n, 256, l16, w, lds, corr, live, M, acc); break;
    default: vsum4_d(v, vstride, vnorm, vfac, n, 512, l16, w, lds, corr, live, M, acc); break;
    }
}

tq_vsum_fn tq_vsum4_avx512(void) { return vsum4; }

#else
tq_vsum_fn tq_vsum4_avx512(void) { return 0; }
#endif
