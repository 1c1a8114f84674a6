/* The one definition of MLX's packed-code layout and small-float decoders,
 * shared by the scalar reference, the fast CPU kernels and (through nvcc)
 * the CUDA kernels. Everything here is static inline and free of libc, so
 * a .cu file may include it with MLXN_HD defined as __host__ __device__.
 *
 * Packing: code i of a row occupies bits [i*bits, (i+1)*bits) of the row's
 * bitstream; bit b of the stream is bit (b % 32) of little-endian u32
 * word b / 32. 3-, 5- and 6-bit codes can straddle two words. */
#ifndef MLXN_QUANT_LAYOUT_H
#define MLXN_QUANT_LAYOUT_H

#include <stdint.h>

#ifndef MLXN_HD
#define MLXN_HD
#endif

/* Code `i` (0-based) of a packed row. */
static inline MLXN_HD uint32_t mlxn_unpack_code(const uint32_t *row, int64_t i, int bits) {
    uint64_t bit = (uint64_t)i * (uint64_t)bits;
    uint64_t w = bit >> 5;
    unsigned sh = (unsigned)(bit & 31);
    uint64_t pair = row[w];
    if (sh + (unsigned)bits > 32) pair |= (uint64_t)row[w + 1] << 32; /* straddles */
    return (uint32_t)((pair >> sh) & ((1u << bits) - 1u));
}

/* OR code `v` into position `i` of a zero-initialised packed row. */
static inline MLXN_HD void mlxn_pack_code(uint32_t *row, int64_t i, int bits, uint32_t v) {
    uint64_t bit = (uint64_t)i * (uint64_t)bits;
    uint64_t w = bit >> 5;
    unsigned sh = (unsigned)(bit & 31);
    uint64_t x = (uint64_t)(v & ((1u << bits) - 1u)) << sh;
    row[w] |= (uint32_t)x;
    if (sh + (unsigned)bits > 32) row[w + 1] |= (uint32_t)(x >> 32);
}

/* FP4 E2M1 (1 sign, 2 exponent, 1 mantissa bit): the 16 values. */
static inline MLXN_HD float mlxn_e2m1_to_f32(uint32_t code) {
    /* magnitudes of codes 0..7: 0, 0.5, 1, 1.5, 2, 3, 4, 6 (times 2 below) */
    const int twice[8] = {0, 1, 2, 3, 4, 6, 8, 12};
    float m = 0.5f * (float)twice[code & 7u];
    return (code & 8u) ? -m : m;
}

/* E8M0 scale byte: 2^(e - 127); 255 is NaN. Built from bits so it is exact
 * for every exponent, including the subnormal-range ones (e < 1). */
static inline MLXN_HD float mlxn_e8m0_to_f32(uint8_t e) {
    union { uint32_t u; float f; } v;
    if (e == 255) { v.u = 0x7fc00000u; return v.f; }
    if (e == 0) { v.u = 0x00400000u; return v.f; } /* 2^-127 is an f32 subnormal */
    v.u = (uint32_t)e << 23;
    return v.f;
}

/* FP8 E4M3 "fn" (bias 7, no infinities, S.1111.111 is NaN). */
static inline MLXN_HD float mlxn_e4m3_to_f32(uint8_t x) {
    union { uint32_t u; float f; } v;
    uint32_t sign = (uint32_t)(x & 0x80u) << 24;
    uint32_t e = (x >> 3) & 15u, m = x & 7u;
    if (e == 15 && m == 7) { v.u = sign | 0x7fc00000u; return v.f; }
    if (e == 0) { /* subnormal: m/8 * 2^-6 */
        float f = (float)m * 0.001953125f;
        return sign ? -f : f;
    }
    v.u = sign | ((e - 7u + 127u) << 23) | (m << 20);
    return v.f;
}

#endif
