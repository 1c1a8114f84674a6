/* SIMD decoding of TurboQuant code rows to rotated-domain f32 (y[d] =
 * scale * level[code d]; layout in src/quant/tq_layout.h), which the fast
 * attention feeds to the flash driver one key block at a time.
 *
 * Why these shapes: the codebook (times the row's scale) sits in registers
 * and a code is a register permute index, so a lookup is one permute, not
 * a load.
 *  - 4 bits (AVX-512): 16 bytes -> 32 codes: zero-extend to 16 dwords, low
 *    nibbles are the even coordinates, high nibbles the odd; two vpermps
 *    look up 16 levels; two vpermt2ps interleave them back to natural order.
 *  - 2 and 3 bits: a dword holding 16 (2-bit) or 8 (3-bit) codes is
 *    broadcast to the lanes and shifted right per lane by bits * lane.
 *  - 5 and 6 bits: one byte per code; vpermt2ps looks up 32 levels from two
 *    registers (6 bits: two such lookups and a blend on bit 5).
 *  - 7 and 8 bits: gathers from the level table, then one multiply.
 *  - AVX2, 4 bits: the same nibble split over 8 lanes; 16 levels need two
 *    vpermps and a blend on bit 3. Other widths at AVX2 use the scalar
 *    decoder (they are not the default format).
 * Rows are whole vectors (head dim a multiple of 64), and a 3-bit group's
 * 4-byte load may read one byte past the row, which MLXN_TQ_PAD covers. */
#include <string.h>

#include "backend/cpu/cpu_vmath.h"
#include "backend/cpu/tq_kernels.h"

#if CPU_VMATH_X86

TGT_AVX512 static void dec4_512(const uint8_t *row, const float *lv, float scale, int64_t D, float *y) {
    const __m512 cb = _mm512_mul_ps(_mm512_loadu_ps(lv), _mm512_set1_ps(scale));
    const __m512i ia = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ib = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i m4 = _mm512_set1_epi32(15);
    for (int64_t d = 0; d < D; d += 32) {
        __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(row + d / 2)));
        __m512 lo = _mm512_permutexvar_ps(_mm512_and_si512(x, m4), cb);
        __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(x, 4), cb);
        _mm512_storeu_ps(y + d, _mm512_permutex2var_ps(lo, ia, hi));
        _mm512_storeu_ps(y + d + 16, _mm512_permutex2var_ps(lo, ib, hi));
    }
}

TGT_AVX512 static void dec2_512(const uint8_t *row, const float *lv, float scale, int64_t D, float *y) {
    const __m512 cb = _mm512_mul_ps(_mm512_castps128_ps512(_mm_loadu_ps(lv)), _mm512_set1_ps(scale));
    const __m512i sh = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i m = _mm512_set1_epi32(3);
    for (int64_t d = 0; d < D; d += 16) {
        uint32_t w;
        memcpy(&w, row + d / 4, 4);
        __m512i c = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)w), sh), m);
        _mm512_storeu_ps(y + d, _mm512_permutexvar_ps(c, cb));
    }
}

TGT_AVX512 static void dec3_512(const uint8_t *row, const float *lv, float scale, int64_t D, float *y) {
    const __m512 cb = _mm512_mul_ps(_mm512_castps256_ps512(_mm256_loadu_ps(lv)), _mm512_set1_ps(scale));
    const __m512i sh = _mm512_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21, 0, 3, 6, 9, 12, 15, 18, 21);
    const __m512i m = _mm512_set1_epi32(7);
    for (int64_t d = 0; d < D; d += 16) {
        uint32_t w0, w1; /* two 8-code groups of 3 bytes each */
        memcpy(&w0, row + d / 8 * 3, 4);
        memcpy(&w1, row + d / 8 * 3 + 3, 4);
        __m512i v = _mm512_inserti64x4(_mm512_set1_epi32((int)w0), _mm256_set1_epi32((int)w1), 1);
        __m512i c = _mm512_and_si512(_mm512_srlv_epi32(v, sh), m);
        _mm512_storeu_ps(y + d, _mm512_permutexvar_ps(c, cb));
    }
}

TGT_AVX512 static void dec56_512(const uint8_t *row, int bits, const float *lv, float scale, int64_t D, float *y) {
    const __m512 s = _mm512_set1_ps(scale);
    const __m512 c0 = _mm512_mul_ps(_mm512_loadu_ps(lv), s), c1 = _mm512_mul_ps(_mm512_loadu_ps(lv + 16), s);
    __m512 c2 = c0, c3 = c1;
    if (bits == 6) c2 = _mm512_mul_ps(_mm512_loadu_ps(lv + 32), s), c3 = _mm512_mul_ps(_mm512_loadu_ps(lv + 48), s);
    const __m512i b5 = _mm512_set1_epi32(32);
    for (int64_t d = 0; d < D; d += 16) {
        __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(row + d)));
        __m512 v = _mm512_permutex2var_ps(c0, x, c1);
        if (bits == 6) v = _mm512_mask_blend_ps(_mm512_test_epi32_mask(x, b5), v, _mm512_permutex2var_ps(c2, x, c3));
        _mm512_storeu_ps(y + d, v);
    }
}

TGT_AVX512 static void dec78_512(const uint8_t *row, const float *lv, float scale, int64_t D, float *y) {
    const __m512 s = _mm512_set1_ps(scale);
    for (int64_t d = 0; d < D; d += 16) {
        __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(row + d)));
        _mm512_storeu_ps(y + d, _mm512_mul_ps(_mm512_i32gather_ps(x, lv, 4), s));
    }
}

TGT_AVX512 static void decode512(const uint8_t *row, int bits, const float *lv, float scale, int64_t D, float *y) {
    switch (bits) {
    case 2: dec2_512(row, lv, scale, D, y); return;
    case 3: dec3_512(row, lv, scale, D, y); return;
    case 4: dec4_512(row, lv, scale, D, y); return;
    case 5:
    case 6: dec56_512(row, bits, lv, scale, D, y); return;
    default: dec78_512(row, lv, scale, D, y); return;
    }
}

TGT_AVX2 static void decode256(const uint8_t *row, int bits, const float *lv, float scale, int64_t D, float *y) {
    if (bits != 4) {
        tq_decode_scalar(row, bits, lv, scale, D, y);
        return;
    }
    const __m256 s = _mm256_set1_ps(scale);
    const __m256 cl = _mm256_mul_ps(_mm256_loadu_ps(lv), s), ch = _mm256_mul_ps(_mm256_loadu_ps(lv + 8), s);
    const __m256i m4 = _mm256_set1_epi32(15);
    for (int64_t d = 0; d < D; d += 16) {
        __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(row + d / 2)));
        __m256i il = _mm256_and_si256(x, m4), ih = _mm256_srli_epi32(x, 4);
        /* bit 3 of the code picks the upper half of the codebook (blendv reads the sign bit) */
        __m256 lo = _mm256_blendv_ps(_mm256_permutevar8x32_ps(cl, il), _mm256_permutevar8x32_ps(ch, il),
                                     _mm256_castsi256_ps(_mm256_slli_epi32(il, 28)));
        __m256 hi = _mm256_blendv_ps(_mm256_permutevar8x32_ps(cl, ih), _mm256_permutevar8x32_ps(ch, ih),
                                     _mm256_castsi256_ps(_mm256_slli_epi32(ih, 28)));
        __m256 a = _mm256_unpacklo_ps(lo, hi), b = _mm256_unpackhi_ps(lo, hi); /* pairs within 128-bit lanes */
        _mm256_storeu_ps(y + d, _mm256_permute2f128_ps(a, b, 0x20));
        _mm256_storeu_ps(y + d + 8, _mm256_permute2f128_ps(a, b, 0x31));
    }
}

tq_decode_fn tq_decode_avx512(void) { return decode512; }
tq_decode_fn tq_decode_avx2(void) { return decode256; }

#else
tq_decode_fn tq_decode_avx512(void) { return 0; }
tq_decode_fn tq_decode_avx2(void) { return 0; }
#endif
