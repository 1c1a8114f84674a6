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

/* E8M0 scale byte: 2^(e - 127). Built from bits so it is exact for every
 * exponent, including e = 0 (2^-127, an f32 subnormal). MLX gives byte
 * 255 no special meaning: it computes 2^128, which is +inf in f32/bf16
 * (the OCP spec would call it NaN); we follow MLX. */
static inline MLXN_HD float mlxn_e8m0_to_f32(uint8_t e) {
    union { uint32_t u; float f; } v;
    if (e == 255) { v.u = 0x7f800000u; return v.f; }
    if (e == 0) { v.u = 0x00400000u; return v.f; } /* 2^-127 is an f32 subnormal */
    v.u = (uint32_t)e << 23;
    return v.f;
}

/* FP8 E4M3 "fn" (bias 7, no infinities, S.1111.111 is NaN; MLX 0.32.4
 * decodes it as NaN too, though it never produces it when encoding). */
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

/* f32 -> E4M3 byte as MLX encodes it: round to nearest, ties to even;
 * magnitudes from 448 up, infinities and NaN all saturate to 448 (0x7E)
 * with the input's sign bit; below 2^-6 the result is a subnormal
 * (multiples of 2^-9). */
static inline MLXN_HD uint8_t mlxn_f32_to_e4m3(float f) {
    union { uint32_t u; float f; } v;
    v.f = f;
    uint32_t sign = v.u & 0x80000000u, a = v.u ^ sign;
    uint32_t r;
    if (a >= 0x43e00000u) { /* >= 448, inf, NaN */
        r = 0x7eu;
    } else if (a < (121u << 23)) { /* < 2^-6: subnormal range */
        /* Adding 2^14 leaves 2^-9 as the unit in the last place, so the
         * f32 addition itself rounds to the nearest multiple of 2^-9
         * (ties to even); the low mantissa bits are then the code. */
        union { uint32_t u; float f; } big, sum;
        big.u = 141u << 23; /* 2^14 */
        v.u = a;
        sum.f = v.f + big.f;
        r = sum.u - big.u;
    } else {
        /* Normal: rebias the exponent (127 -> 7) and round the 23-bit
         * mantissa to 3 bits, ties to even; a carry may bump the exponent. */
        uint32_t odd = (a >> 20) & 1u;
        r = (a - (120u << 23) + 0x7ffffu + odd) >> 20;
    }
    return (uint8_t)(r | (sign >> 24));
}

#endif
