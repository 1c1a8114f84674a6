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

/* The constants for one width (2, 3, 5 or 6); made once per call. */
static inline qm_packed qm_packed_for(int bits) {
    qm_packed u;
    int8_t sh[32];
    int16_t mu[16];
    for (int i = 0; i < 16; i++) { /* lane i: code i of the 16 (upper 128 bits: codes 8..15) */
        const int byte = i * bits / 8, off = i * bits % 8;
        sh[2 * i] = (int8_t)byte, sh[2 * i + 1] = (int8_t)(byte + 1); /* within the 16 loaded bytes: 2 * bits <= 12 */
        mu[i] = (int16_t)(1u << (16 - off - bits));
    }
    u.shuf = _mm256_loadu_si256((const __m256i *)sh);
    u.mul = _mm256_loadu_si256((const __m256i *)mu);
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
 * 16..31 in order. The second half's 16-byte load reaches 16 - 2 * bits
 * bytes past the block, so a row's last block (last != 0) is copied
 * first: no load leaves the row. */
static inline void qm_packed_codes32(const qm_packed *u, const uint8_t *blk, int last, __m256i *q0, __m256i *q1) {
    uint8_t tmp[48];
    if (last) {
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
