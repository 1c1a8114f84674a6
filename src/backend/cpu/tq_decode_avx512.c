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
 *  - AVX2, 4 bits: byte planes of the codebook looked up by vpshufb (see
 *    dec4_256); 5..8 bits: gathers; 2 and 3 bits use the scalar decoder.
 * The decoders take a block of rows (tq_decode_fn); the AVX2 4-bit byte
 * planes are built once per block. Rows are whole vectors (head dim a
 * multiple of 64), and a 3-bit group's 4-byte load may read one byte past
 * the row, which MLXN_TQ_PAD covers. */
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

TGT_AVX512 static void decode512(const uint8_t *const *rows, const float *scale, int64_t n, int bits, const float *lv,
                                 int64_t D, float *y) {
    for (int64_t j = 0; j < n; j++) { /* the codebook is scaled per row, so each row sets up its own */
        const uint8_t *row = rows[j];
        float *yj = y + j * D;
        switch (bits) {
        case 2: dec2_512(row, lv, scale[j], D, yj); break;
        case 3: dec3_512(row, lv, scale[j], D, yj); break;
        case 4: dec4_512(row, lv, scale[j], D, yj); break;
        case 5:
        case 6: dec56_512(row, bits, lv, scale[j], D, yj); break;
        default: dec78_512(row, lv, scale[j], D, yj); break;
        }
    }
}

/* AVX2, 4 bits: the 16 levels as four byte planes (plane b holds byte b of
 * each level's f32 bits), so a vpshufb per plane looks up 32 codes at once
 * and byte interleaves rebuild the floats. Why not permutes as at AVX-512:
 * with 8 lanes a lookup of 16 levels took two vpermps and a blend per 8
 * codes, and decoding was over half of a 4-bit attention's time at head
 * dim 128 on a 2-core AVX2 machine (~0.8 cycles per code). */
TGT_AVX2 static void dec4_256(const uint8_t *const *rows, const float *scale, int64_t n, const float *lv, int64_t D,
                              float *y) {
    /* planes: byte b of levels 0..15 in lane byte j, in both 128-bit lanes;
     * built once per block of rows */
    const __m128i tr = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m128i r[4];
    for (int i = 0; i < 4; i++) r[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(lv + 4 * i)), tr);
    const __m128i t0 = _mm_unpacklo_epi32(r[0], r[1]), t1 = _mm_unpacklo_epi32(r[2], r[3]);
    const __m128i t2 = _mm_unpackhi_epi32(r[0], r[1]), t3 = _mm_unpackhi_epi32(r[2], r[3]);
    const __m256i p0 = _mm256_broadcastsi128_si256(_mm_unpacklo_epi64(t0, t1));
    const __m256i p1 = _mm256_broadcastsi128_si256(_mm_unpackhi_epi64(t0, t1));
    const __m256i p2 = _mm256_broadcastsi128_si256(_mm_unpacklo_epi64(t2, t3));
    const __m256i p3 = _mm256_broadcastsi128_si256(_mm_unpackhi_epi64(t2, t3));
    /* Each code byte twice, ordered so the interleaves below land the
     * floats in natural order without a cross-lane step: lane 0 takes the
     * bytes of codes 0-3, 8-11, 16-19, 24-27, lane 1 those of 4-7, 12-15,
     * 20-23, 28-31; even positions keep the low nibble (the even
     * coordinate), odd ones the high nibble. */
    const __m256i sel = _mm256_setr_epi8(0, 0, 1, 1, 4, 4, 5, 5, 8, 8, 9, 9, 12, 12, 13, 13, 2, 2, 3, 3, 6, 6, 7, 7, 10,
                                         10, 11, 11, 14, 14, 15, 15);
    const __m256i odd = _mm256_set1_epi16((short)0xff00), m4 = _mm256_set1_epi8(15);
    for (int64_t j = 0; j < n; j++) {
        const uint8_t *row = rows[j];
        float *yj = y + j * D;
        const __m256 s = _mm256_set1_ps(scale[j]);
        for (int64_t d = 0; d < D; d += 32) {
            __m256i x =
                _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(row + d / 2))), sel);
            const __m256i c = _mm256_and_si256(_mm256_blendv_epi8(x, _mm256_srli_epi16(x, 4), odd), m4);
            const __m256i b0 = _mm256_shuffle_epi8(p0, c), b1 = _mm256_shuffle_epi8(p1, c);
            const __m256i b2 = _mm256_shuffle_epi8(p2, c), b3 = _mm256_shuffle_epi8(p3, c);
            const __m256i l01 = _mm256_unpacklo_epi8(b0, b1), h01 = _mm256_unpackhi_epi8(b0, b1);
            const __m256i l23 = _mm256_unpacklo_epi8(b2, b3), h23 = _mm256_unpackhi_epi8(b2, b3);
            _mm256_storeu_ps(yj + d, _mm256_mul_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(l01, l23)), s));
            _mm256_storeu_ps(yj + d + 8, _mm256_mul_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(l01, l23)), s));
            _mm256_storeu_ps(yj + d + 16, _mm256_mul_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(h01, h23)), s));
            _mm256_storeu_ps(yj + d + 24, _mm256_mul_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(h01, h23)), s));
        }
    }
}

/* AVX2, 5..8 bits (one byte per code): eight gathers from the level
 * table per 64 codes, then the scale. */
TGT_AVX2 static void dec8_256(const uint8_t *row, const float *lv, float scale, int64_t D, float *y) {
    const __m256 s = _mm256_set1_ps(scale);
    for (int64_t d = 0; d < D; d += 8) {
        const __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(row + d)));
        _mm256_storeu_ps(y + d, _mm256_mul_ps(_mm256_i32gather_ps(lv, x, 4), s));
    }
}

TGT_AVX2 static void decode256(const uint8_t *const *rows, const float *scale, int64_t n, int bits, const float *lv,
                               int64_t D, float *y) {
    if (bits == 4) {
        dec4_256(rows, scale, n, lv, D, y);
        return;
    }
    for (int64_t j = 0; j < n; j++) {
        if (bits >= 5) dec8_256(rows[j], lv, scale[j], D, y + j * D);
        else tq_decode_scalar(rows[j], bits, lv, scale[j], D, y + j * D);
    }
}

tq_decode_fn tq_decode_avx512(void) { return decode512; }
tq_decode_fn tq_decode_avx2(void) { return decode256; }

#else
tq_decode_fn tq_decode_avx512(void) { return 0; }
tq_decode_fn tq_decode_avx2(void) { return 0; }
#endif
