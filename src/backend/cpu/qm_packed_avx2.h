/* MLX's 2-, 3-, 5- and 6-bit codes unpacked with AVX2, shared by the
 * integer mat-vec (qmatmul_avx2_int.c) and the float kernels
 * (qmatmul_avx2.c: dequantization panels and the float mat-vec).
 *
 * MLX packs these widths as an LSB-first bit stream, so 16 codes take
 * 2 * bits bytes and every code lies within the two bytes at its first
 * bit's byte (offset + bits <= 7 + 6). One VPSHUFB puts those two bytes in
 * the code's int16 lane; a VPMULLW by 2^(16 - offset - bits) drops the
 * bits above the code and a shift right by 16 - bits the bits below it:
 * 16 codes as int16 in three instructions. The pattern repeats every 16
 * codes, so one mask and one set of multipliers serve a block's two
 * halves. Why: the scalar bit-stream reader took ~1 ns a code, ~16x the
 * 4-bit kernels' time per weight.
 *
 * Include it only inside a region compiled for AVX2 (#pragma GCC target /
 * clang attribute push), as both users do: its functions have no target
 * attribute of their own. */
#ifndef MLXN_CPU_QM_PACKED_AVX2_H
#define MLXN_CPU_QM_PACKED_AVX2_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

typedef struct qm_packed {
    __m256i shuf, mul; /* per int16 lane: the two bytes to fetch, the left-shift multiplier */
    __m128i shift;     /* 16 - bits */
    int bits;
} qm_packed;

/* The constants of each width as literal tables (row: bits 2, 3, 5, 6),
 * so qm_packed_for is two loads wherever it is called. Lane i holds code i
 * of 16 (the upper 128 bits: codes 8..15): its two bytes start at byte
 * i * bits / 8 (both within the 16 loaded bytes: 2 * bits <= 12) and its
 * multiplier is 2^(16 - i * bits % 8 - bits) (<= 2^14: a positive int16). */
#define QMP_SH(b, i) (int8_t)((i) * (b) / 8), (int8_t)((i) * (b) / 8 + 1)
#define QMP_MU(b, i) (int16_t)(1 << (16 - ((i) * (b)) % 8 - (b)))
#define QMP_ROW(F, b)                                                                                         \
    {F(b, 0), F(b, 1), F(b, 2), F(b, 3), F(b, 4), F(b, 5), F(b, 6), F(b, 7), F(b, 8), F(b, 9), F(b, 10), F(b, 11), \
     F(b, 12), F(b, 13), F(b, 14), F(b, 15)}
static const int8_t qm_packed_shuf[4][32] = {QMP_ROW(QMP_SH, 2), QMP_ROW(QMP_SH, 3), QMP_ROW(QMP_SH, 5),
                                             QMP_ROW(QMP_SH, 6)};
static const int16_t qm_packed_mul[4][16] = {QMP_ROW(QMP_MU, 2), QMP_ROW(QMP_MU, 3), QMP_ROW(QMP_MU, 5),
                                             QMP_ROW(QMP_MU, 6)};
#undef QMP_SH
#undef QMP_MU
#undef QMP_ROW

/* The constants for one width (2, 3, 5 or 6). */
static inline qm_packed qm_packed_for(int bits) {
    const int row = bits == 2 ? 0 : bits == 3 ? 1 : bits == 5 ? 2 : 3;
    qm_packed u;
    u.shuf = _mm256_loadu_si256((const __m256i *)qm_packed_shuf[row]);
    u.mul = _mm256_loadu_si256((const __m256i *)qm_packed_mul[row]);
    u.shift = _mm_cvtsi32_si128(16 - bits);
    u.bits = bits;
    return u;
}

/* 16 codes from the 16 bytes at src (2 * bits of them used) as int16. */
static inline __m256i qm_packed_half(const qm_packed *u, const uint8_t *src) {
    const __m256i w = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)src));
    return _mm256_srl_epi16(_mm256_mullo_epi16(_mm256_shuffle_epi8(w, u->shuf), u->mul), u->shift);
}

/* The 32 codes of the block at blk (4 * bits bytes, starting on a code
 * that is a multiple of 32) as two vectors of 16 int16, codes 0..15 and
 * 16..31 in order. avail: the row's bytes from blk on. The second half's
 * 16-byte load reaches 2 * bits + 16 bytes from blk, past the block and,
 * at 2 bits, past the next one too; where the row has fewer bytes left,
 * the block is copied first, so no load leaves the row. */
static inline void qm_packed_codes32(const qm_packed *u, const uint8_t *blk, int64_t avail, __m256i *q0,
                                     __m256i *q1) {
    uint8_t tmp[48];
    if (avail < 2 * u->bits + 16) {
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, blk, (size_t)(4 * u->bits));
        blk = tmp;
    }
    *q0 = qm_packed_half(u, blk);
    *q1 = qm_packed_half(u, blk + 2 * u->bits);
}

/* Whether qm_packed_* handle this width. */
static inline int qm_packed_width(int bits) { return bits == 2 || bits == 3 || bits == 5 || bits == 6; }

#endif
