/* The one definition of the TurboQuant KV-cache format (Zandieh et al.,
 * arXiv 2504.19874), shared by the scalar reference, the fast CPU kernels
 * and (through nvcc) the CUDA kernels. Everything here is static inline
 * and free of libc, so a .cu file may include it with MLXN_HD defined as
 * __host__ __device__. The codebooks live in tq_codebooks.h (generated).
 *
 * What is stored. For every (layer, kv head, position) a key and a value
 * vector x of head_dim D (a power of two, 64..512) become
 *   y = R x,  R = H_D S / sqrt(D)   (S = diag of +-1 signs, H_D the
 *                                    Sylvester Hadamard matrix: y is the
 *                                    normalized FWHT of S x, orthonormal)
 *   norm = ||y|| (= ||x||), one f32 per vector (the sum of squares in the
 *          fixed order of mlxn_tq_sum_squares, so every backend stores
 *          the same bits),
 *   u_d  = y_d * sqrt(D) / norm     (0 for a zero vector): the coordinates
 *          of the rotated unit vector scaled to ~N(0, 1),
 *   code_d = number of decision boundaries strictly below u_d, with the
 *          Lloyd-Max boundaries of N(0, 1) for the width (2..8 bits).
 * Decoding gives the rotated vector back, y^_d = norm / sqrt(D) *
 * level[code_d]; x^ = R^T y^ = S H_D y^ / sqrt(D). Attention never leaves
 * the rotated domain for K and V: q . x^ = (R q) . y^, and sum_j p_j x^_j =
 * R^T sum_j p_j y^_j, so the query is rotated once and the output
 * un-rotated once.
 *
 * One norm per vector at every head dim, 512 included: the rotation mixes
 * all D coordinates, so after it every coordinate of a unit vector has the
 * same N(0, 1/D) marginal whatever D is, and a norm per 256-block would buy
 * nothing but a second f32 (it only helps when blocks are rotated
 * separately).
 *
 * Signs. S_i = -1 when bit 31 of mlxn_tq_hash32(seed ^ mlxn_tq_hash32(i +
 * 0x68E31DA4)) is set, else +1: a counter-based hash, so every backend
 * derives the same diagonal from (seed, i) alone, with no RNG state. A
 * model's layer l uses seed mlxn_tq_layer_seed(l); keys and values of a
 * layer share the layer's rotation.
 *
 * Code rows. Per vector, code_bytes(D, bits) bytes:
 *   2, 3, 4 bits: an LSB-first bitstream over bytes: code d occupies bits
 *     [d*bits, (d+1)*bits) of the row, bit k of the stream being bit k % 8
 *     of byte k / 8. So at 4 bits byte i holds coordinate 2i in its low
 *     nibble and 2i+1 in its high nibble; at 2 bits byte i holds 4i..4i+3
 *     from the low bits up; at 3 bits every 3 bytes hold 8 codes (code d of
 *     a group at bits 3*(d%8) of the group's 24-bit little-endian word), and
 *     codes 2, 5 of a group straddle two bytes.
 *   5, 6, 7, 8 bits: one byte per code, byte d = code d.
 * Cache tensors (per layer, for K and V separately; Hkv kv heads, C slots):
 *   codes u8 [Hkv, C, code_bytes] followed by MLXN_TQ_PAD bytes of zeros,
 *   so a kernel may load whole 64-byte vectors past a row's end;
 *   norms f32 [Hkv, C].
 * Position p lives in slot p % C (a ring buffer; a cache at least as long
 * as the sequence never wraps, so there slot = position). */
#ifndef MLXN_TQ_LAYOUT_H
#define MLXN_TQ_LAYOUT_H

#include <stdint.h>

#ifndef MLXN_HD
#define MLXN_HD
#endif

#define MLXN_TQ_MIN_HEAD_DIM 64
#define MLXN_TQ_MAX_HEAD_DIM 512
#define MLXN_TQ_MIN_BITS 2
#define MLXN_TQ_MAX_BITS 8
#define MLXN_TQ_PAD 64

/* bits is a width the format has (2..8). */
static inline MLXN_HD int mlxn_tq_bits_ok(int bits) { return bits >= MLXN_TQ_MIN_BITS && bits <= MLXN_TQ_MAX_BITS; }

/* head_dim is a power of two in 64..512. */
static inline MLXN_HD int mlxn_tq_dim_ok(int64_t d) {
    return d >= MLXN_TQ_MIN_HEAD_DIM && d <= MLXN_TQ_MAX_HEAD_DIM && (d & (d - 1)) == 0;
}

/* Bytes of one vector's codes. */
static inline MLXN_HD int64_t mlxn_tq_code_bytes(int64_t d, int bits) { return bits <= 4 ? d * bits / 8 : d; }

/* sum_d y[d]^2 for D a multiple of 32, in this order: 32 partial sums,
 * part l over d = l, l + 32, l + 64, ... in turn, then halved pairwise
 * (part l += part l + h for h = 16, 8, 4, 2, 1), each square and add
 * rounded on its own (no fused multiply-add: the CUDA kernel uses
 * __fmul_rn / __fadd_rn). Why this order: a GPU warp holding dims
 * 32 j + lane gets the same bits with one partial sum per lane and five
 * shuffles; one sequential sum was D dependent adds by one lane on every
 * decode step's append. */
static inline MLXN_HD float mlxn_tq_sum_squares(const float *y, int64_t D) {
    float part[32];
    for (int l = 0; l < 32; l++) part[l] = 0.0f;
    for (int64_t d = 0; d < D; d++) {
        const float sq = y[d] * y[d];
        part[d & 31] += sq;
    }
    for (int h = 16; h >= 1; h >>= 1)
        for (int l = 0; l < h; l++) part[l] += part[l + h];
    return part[0];
}

/* A 32-bit integer hash with good avalanche (the "lowbias32" mix: two
 * multiply-xorshift rounds). */
static inline MLXN_HD uint32_t mlxn_tq_hash32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* The rotation seed of a model's layer `layer` (0-based). */
static inline MLXN_HD uint32_t mlxn_tq_layer_seed(int layer) {
    return mlxn_tq_hash32(0x54517562u + (uint32_t)layer); /* "TQub" + layer */
}

/* Sign S_i of the rotation with seed `seed`: +1 or -1. */
static inline MLXN_HD float mlxn_tq_sign(uint32_t seed, int64_t i) {
    return (mlxn_tq_hash32(seed ^ mlxn_tq_hash32((uint32_t)i + 0x68E31DA4u)) >> 31) ? -1.0f : 1.0f;
}

/* Code d of a row. */
static inline MLXN_HD uint32_t mlxn_tq_get_code(const uint8_t *row, int64_t d, int bits) {
    if (bits > 4) return row[d];
    int64_t bit = d * bits;
    int64_t byte = bit >> 3;
    unsigned sh = (unsigned)(bit & 7);
    uint32_t w = row[byte];
    if (sh + (unsigned)bits > 8) w |= (uint32_t)row[byte + 1] << 8; /* 3-bit straddle */
    return (w >> sh) & ((1u << bits) - 1u);
}

/* OR code v into position d of a zero-initialised row. */
static inline MLXN_HD void mlxn_tq_put_code(uint8_t *row, int64_t d, int bits, uint32_t v) {
    if (bits > 4) {
        row[d] = (uint8_t)v;
        return;
    }
    int64_t bit = d * bits;
    int64_t byte = bit >> 3;
    unsigned sh = (unsigned)(bit & 7);
    uint32_t x = (v & ((1u << bits) - 1u)) << sh;
    row[byte] |= (uint8_t)x;
    if (sh + (unsigned)bits > 8) row[byte + 1] |= (uint8_t)(x >> 8);
}

/* Code of a scaled coordinate u: the number of the 2^bits - 1 sorted
 * boundaries strictly below u (NaN gives code 0). A branchless binary
 * search in power-of-two steps, exact because there are 2^bits - 1
 * boundaries (why: the comparisons are data-dependent and unpredictable, so
 * a branchy search costs a mispredict per level on the CPU, and divergence
 * on a GPU; this is bits loads and selects). */
static inline MLXN_HD uint32_t mlxn_tq_encode(const float *bounds, int bits, float u) {
    uint32_t idx = 0;
    for (uint32_t step = 1u << (bits - 1); step > 0; step >>= 1)
        idx += (bounds[idx + step - 1] < u) ? step : 0u;
    return idx;
}

/* In-place unnormalized FWHT of y[0..n) (n a power of two): stages
 * h = 1, 2, ..., n/2 map (a, b) at distance h to (a + b, a - b). */
static inline MLXN_HD void mlxn_tq_fwht(float *y, int64_t n) {
    for (int64_t h = 1; h < n; h <<= 1)
        for (int64_t j = 0; j < n; j += 2 * h)
            for (int64_t k = j; k < j + h; k++) {
                float a = y[k], b = y[k + h];
                y[k] = a + b;
                y[k + h] = a - b;
            }
}

#endif
