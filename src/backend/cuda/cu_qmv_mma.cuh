/* The mat-vec of decode on the bf16 tensor cores: out[m, n] = sum_k x[m, k]
 * * W[n, k] for 1..8 f32 x rows, W [N, K] MLX affine 4-bit with bf16 or f16
 * scales and biases, groups of 64 or 128; and for one x row the same with
 * 3- and 6-bit codes (qm_apair says how), and every other affine format
 * (2-, 5-, 8-bit, and groups of 32), mxfp4 and nvfp4 weights on the f16
 * tensor cores (the f16 path, at QM_MXFP4); instances in
 * cu_qmv_mma_bits*.cu. docs/perf.md (CUDA mat-vec log, v8, the 3..8-row
 * section, "Other widths" and later) has the measurements; it replaced the
 * f32 streaming kernels (cu_qmv_fast.cu) for these formats, which every
 * other case keeps (1-bit, mxfp8, 2..8 x rows but of 4-bit g64 / g128).
 * This header holds the one-row kernel and its launch (shared by
 * cu_qmv_mma.cu and cu_qmv_mma_bits*.cu); cu_qmv_mma.cu has the two-row
 * kernel, which reuses its layout, and the 3..8-row one, which takes the x
 * rows as the mma's B columns (qmv_mma8_kernel); each is described where it
 * starts. The design below is told for 4-bit codes.
 *
 * Why tensor cores for a mat-vec: the f32 kernel spent ~5 instructions per
 * weight per lane (decode, convert, FMA) and could not keep the issue slots
 * and the memory system busy at once. Here a code becomes a bf16 operand
 * with one LOP3 per two codes (plus a shift), and one mma.m16n8k16 does 256
 * multiply-adds: ~1.5 instructions per weight per lane.
 *
 * Exactness (why the products are exact and the sums f32):
 *   - A code q (0..15) OR-ed under the exponent of 128.0 in bf16 is the
 *     bf16 value 128 + q, exactly (7 mantissa bits). The tensor core then
 *     sums x * (128 + q); 128 * sum(x) over the group is subtracted in f32
 *     in the group's epilogue (sum(x) per group, summed by the warp as it
 *     stages the chunk).
 *   - x is f32; it is split into three bf16 parts hi + mid + lo that sum
 *     to x exactly (3 x 8 significant bits), and each part is its own B
 *     column. (128 + q) * part has at most 16 significant bits, so every
 *     product is exact and the tensor core accumulates in f32.
 *
 * Layout of one mma (m16n8k16, A row-major rows x k, B k x columns):
 *   - A = 16 rows of W (the block's row tile) x 16 codes; lane (g, t) =
 *     (lane / 4, lane % 4) holds rows g and g + 8. A "chunk" is 128 codes
 *     of each row: lane t loads 16 bytes (32 codes) of each of its two
 *     rows, and its 32 codes are the k it feeds to 8 mmas. Which k of the
 *     chunk an mma slot means does not matter to a dot product, as long as
 *     A and B agree: both use "lane t, word j, nibble pair m" (nibbles m
 *     and m + 4 of word j share one bf16x2 register after the LOP3).
 *   - B = 8 columns; column c = (group in chunk) * 3 + part (the one-row
 *     kernel on offsets: 4 * group + part, part 3 zeros; qm1_bvalid). With
 *     groups of 64 a chunk holds 2 groups: lanes t = 0, 1 carry group 0's
 *     codes and t = 2, 3 group 1's, so column c is zero in the lanes whose
 *     codes are not in its group. The accumulator's columns then hold every
 *     (group, part) sum separately, and the epilogue applies each group's
 *     scale: acc += s * (C - 128 sum x) + b * sum x.
 *   - x's parts are staged per chunk, by the warp that computes it: each
 *     lane loads 4 x values of the chunk with the chunk's codes (D chunks
 *     ahead), splits them and stores them in the warp's shared-memory
 *     buffer in "lane t, word, pair" order, so each lane reads its B
 *     registers with 16-byte loads. The first version staged all of x per
 *     block before the loop (86 KB at K = 14336): that cost a serial L2
 *     round trip per pass at the start and capped a SM at 2 blocks.
 *     The 16-byte slot j of lane t's 64 bytes is stored at j ^ (t >> 1), and
 *     part p's array starts p * 32 bytes further on, so one read phase
 *     touches distinct banks.
 * Work split: a block owns 16 rows (one row tile) and all of K; its W
 * warps take the chunks in turn (warp w: chunks w, w + W, ...), so at any
 * moment a block reads W consecutive 64-byte pieces of each of its 16
 * rows, and each warp keeps D chunks of codes, scales and x in flight in a
 * register ring. The warps' sums meet once in shared memory at the end, in
 * a fixed order (deterministic). Products with many row tiles run blocks
 * of two tiles instead (each warp stages x once for both; qm_launch says
 * where).
 * Weight layouts: MLX's rows, or the TILED16 layout a model's weights take
 * on the GPU (quant_tiled.h: a tile's chunk is 1 KB in one piece, so a
 * warp's code load reads 512 contiguous bytes where by rows it reads 64
 * from each of 8 rows; decode measured 5-8% faster, docs/perf.md); the
 * kernels see either through qm_rows' pointers (or offsets) and chunk steps.
 * Conditions (else the caller runs the f32 kernels): affine
 * 4-bit with groups of 64 or 128 (or, one x row by rows, 2- to 8-bit with
 * groups of 32, 64 or 128), bf16/f16 scales with biases (one row stride
 * for both; f32 ones too with groups of 32, on the f16 path), or (one x
 * row by rows) mxfp4 / nvfp4, K % 128 == 0, 16-byte
 * aligned rows (and x, for one row), element offsets under 2^31. */
#ifndef MLXN_CU_QMV_MMA_CUH
#define MLXN_CU_QMV_MMA_CUH

#include <type_traits>

#include "backend/cuda/cu_qmv.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

enum { QM_CHUNK = 128, QM_ROWS = 16, QM_PARTS = 3 };

/* bf16x2 of codes m and m + 4 of word w, each as 128 + q: one LOP3 with
 * both constants as operands (written in C, the compiler splits it into an
 * AND and an OR, a third more instructions in the hot loop). */
__device__ __forceinline__ uint32_t qm_pair(uint32_t w, int m) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(w >> (4 * m)), "r"(0x000F000Fu), "r"(0x43004300u));
    return r; /* 0xEA: (a & b) | c */
}

/* Other widths (one x row; cu_qmv_mma_bits*.cu). A lane's 32 codes of a row
 * are BITS words (MLX's packing: code i at bit BITS * i of the row), and
 * its pair P (0..15) is codes lo(P) and lo(P) + PD, lo(P) = 2 PD (P / PD)
 * + P % PD with PD = qm_pd<BITS>: the partners sit 16 bits apart in a word (8-bit:
 * bytes k, k + 2; 2-bit: codes m, m + 8) or one pack apart (3-bit: 8 codes a
 * 3-byte pack, 6-bit: 4; 5-bit: 8 a 5-byte pack, the f16 path's), so one
 * shift (after a byte permute that gathers both packs' bytes) moves both
 * into place. The 4-bit pairs (nibbles m, m + 4) are this rule
 * with PD = 4, so the x staging below serves every width.
 * Each code sits under a smaller exponent than 4-bit's 128, 2^BITS + q
 * (3-bit: 8 + q, bits 4..6; 6-bit: 64 + q, bits 1..6), because the
 * subtracted offset * sum(x) is what rounds: the rounding is that of a sum
 * (offset + mean q) / mean q times the result's terms (4-bit: 18, 3-bit
 * with 128 it would be 37, with 8 it is 3.3). 8-bit codes do not fit a
 * bf16's 8 significant bits: they take the f16 path below (256 + q). */
/* The f16 path (one x row, by rows; cu_qmv_mma_bits*.cu): MLX mxfp4 and
 * nvfp4 weights (the BITS values QM_MXFP4, QM_NVFP4), affine groups of 32
 * (G 4; bf16, f16 or f32 scales and biases) and affine 2-, 5- and 8-bit
 * (any group; qm_h16).
 *   - mxfp4: 4-bit e2m1 codes (sign, 2 exponent bits, 1 mantissa bit;
 *     MLX's nibble order), one e8m0 scale byte per group of 32, no biases.
 *     nvfp4: the same codes, an e4m3 scale byte per group of 16 times the
 *     matrix's global scale.
 *   - e2m1 codes are f16 operands, not bf16: their bits placed under an
 *     f16's exponent and mantissa are the value times 2^-14 exactly, the
 *     codes with a zero exponent (0 and 0.5) landing on f16's subnormals as
 *     they are e2m1's (bf16's would be f32's, which the tensor cores' sums
 *     flush). An affine code is the f16 2^BITS + q (qm_apair_h16).
 *   - So x's B operand is f16 too: two parts hi + lo (22 significant bits)
 *     of x scaled per 32 codes by a power of two that puts their largest
 *     |x| in [2^14, 2^15), which the epilogue undoes (qm_h16_stage).
 *   - A chunk holds 4 groups of 32 codes (lane t's 32 codes are group t),
 *     so 2 parts fit the 8 B columns: column 2 * group + part, and lane
 *     (g, t)'s accumulator columns 2t, 2t + 1 are both parts of its own
 *     codes' group t. (The bf16 path's 3 parts would need 12.) nvfp4's
 *     lane holds two groups of 16, words 0-1 and 2-3: mmas 0-3 and 4-7,
 *     each its own accumulator chain. A group of 64 or 128 (8-bit) is 2 or
 *     4 lanes': each lane adds its own codes' part of it, with the sum of
 *     its own codes' x (the epilogue is linear in both). */
enum { QM_MXFP4 = 0x104, QM_NVFP4 = 0x105 };
template <int BITS>
__host__ __device__ constexpr bool qm_fp4() { return BITS == QM_MXFP4 || BITS == QM_NVFP4; }
/* Whether the kernel for these codes (G groups a chunk) takes the f16 path:
 * fp4, groups of 32 (4 a chunk), and 2-, 5- and 8-bit codes at any group
 * (the bf16 path keeps 4-bit, and 3- and 6-bit, at groups of 64 and 128) */
template <int BITS, int G>
__host__ __device__ constexpr bool qm_h16() { return qm_fp4<BITS>() || G == 4 || BITS == 2 || BITS == 5 || BITS == 8; }
/* a lane's words of one row's chunk (32 codes) */
template <int BITS>
__host__ __device__ constexpr int qm_words() { return qm_fp4<BITS>() ? 4 : BITS; }
template <int BITS>
__host__ __device__ constexpr int qm_pd() { return BITS == 8 ? 2 : BITS == 4 || BITS == 6 || qm_fp4<BITS>() ? 4 : 8; }
template <int BITS>
__host__ __device__ constexpr float qm_offset() {
    return BITS == 4 ? 128.0f : BITS < 8 ? (float)(1 << BITS) : 0.0f; /* (3, 4, 6 bits: the bf16 path's) */
}

/* (w >> sh) & mask | bias as one LOP3 after the shift (a negative sh shifts left) */
__device__ __forceinline__ uint32_t qm_field(uint32_t w, int sh, uint32_t mask, uint32_t bias) {
    const uint32_t v = sh >= 0 ? w >> sh : w << -sh;
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(v), "r"(mask), "r"(bias));
    return r;
}

/* 3- and 6-bit pair P's gather: packs 2j, 2j + 1 (3 bytes each, bytes 6j ..
 * 6j + 5 of the lane's words, in two of them; j = P / PD), code m = P % PD
 * of each: one byte permute puts the bytes holding each code at the same
 * place of the two 16-bit halves; *s: the code's first bit there. */
template <int BITS>
__device__ __forceinline__ uint32_t qm_gather24(const uint32_t *c, int P, int *s) {
    constexpr int PD = qm_pd<BITS>();
    const int j = P / PD, m = P % PD;
    const int w0 = (6 * j) / 4, o = (6 * j) % 4;            /* first word, the packs' byte offset in it */
    const int bit = BITS * m, b = o + bit / 8;              /* the code's first byte in the window */
    const int b1 = b + 1 > 7 ? 7 : b + 1, b4 = b + 4 > 7 ? 7 : b + 4; /* (past the window: bits not used) */
    static_assert(qm_pd<BITS>() * BITS == 24, "a pack is 3 bytes");
    *s = bit % 8;
    return __byte_perm(c[w0], c[w0 + 1 < BITS ? w0 + 1 : w0], b | (b1 << 4) | ((b + 3) << 8) | (b4 << 12));
}

/* Pair P's A operand of a row whose lane words are c[0..BITS) (3, 4 or 6
 * bits), or fp4's f16x2 (c[0..4)). */
template <int BITS>
__device__ __forceinline__ uint32_t qm_apair(const uint32_t *c, int P) {
    constexpr int PD = qm_pd<BITS>();
    const int j = P / PD, m = P % PD;
    if constexpr (BITS == 4) {
        return qm_pair(c[j], m);
    } else if constexpr (qm_fp4<BITS>()) {
        /* nibbles m, m + 4 of word j: bits 0..2 (mantissa, exponent) -> 9..11 and the sign bit 3 -> 15 of
         * each half; two shifts, since no packing puts all four at one shift (4 instructions, 3 for m = 3) */
        const uint32_t sign = (m == 3 ? c[j] : c[j] << (12 - 4 * m)) & 0x80008000u;
        return qm_field(c[j], 4 * m - 9, 0x0E000E00u, sign);
    } else {
        int s;
        const uint32_t x = qm_gather24<BITS>(c, P, &s);
        /* the code at bits s.. of each 16-bit half -> bits (7 - BITS).. under 2^BITS's exponent */
        return BITS == 3 ? qm_field(x, s - 4, 0x00700070u, 0x41004100u) : qm_field(x, s - 1, 0x007E007Eu, 0x42804280u);
    }
}
/* 5-bit pair P's gather (f16 path only): packs of 8 codes in 5 bytes; pair
 * P is code m = P % 8 of packs 2j and 2j + 1 (j = P / 8: bytes 10j .. 10j + 9
 * of the lane's 5 words), the same bit of bytes 5 apart, so one shift
 * serves both once a byte permute has put their bytes A, A + 1 and B = A +
 * 5, B + 1 at the halves' bytes 0, 1. Where those 4 bytes lie in 3 words
 * (a code across a word's end: 4 of the 16 pairs; never both codes of a
 * pair, since A % 4 = 3 makes B % 4 = 0) a second permute brings the third
 * word's in: 3.25 instructions a pair on average (3-bit: 3). *s: the
 * code's first bit in its half. */
__device__ __forceinline__ uint32_t qm_gather40(const uint32_t *c, int P, int *s) {
    const int j = P / 8, m = P % 8;
    const int A = 10 * j + (5 * m) / 8, B = A + 5;
    const bool span = (5 * m) % 8 > 3; /* the code's 5 bits reach into byte A + 1 */
    *s = (5 * m) % 8;
    const int ia = A % 4, ib = B % 4;
    if (span && ia == 3) { /* A's code across words A / 4, A / 4 + 1; B's in A / 4 + 2 at byte 0 */
        const uint32_t lo = __byte_perm(c[A / 4], c[A / 4 + 1], 0x0043);
        return __byte_perm(lo, c[B / 4], 0x0010 | ((4 + ib) << 8) | ((5 + ib) << 12));
    }
    if (span && ib == 3) { /* B's code across words B / 4, B / 4 + 1; A's in B / 4 - 1 at byte 2 */
        const uint32_t hi = __byte_perm(c[B / 4], c[B / 4 + 1], 0x4300);
        return __byte_perm(c[A / 4], hi, 0x7600 | ia | ((ia + 1) << 4));
    }
    /* both codes within one word each (bytes past a one-byte code: bits not used) */
    const int ia1 = ia + 1 > 3 ? 3 : ia + 1, ib1 = ib + 1 > 3 ? 3 : ib + 1;
    return __byte_perm(c[A / 4], c[B / 4], ia | (ia1 << 4) | ((4 + ib) << 8) | ((4 + ib1) << 12));
}
/* Affine codes on the f16 path, each pair as the f16x2 of 2^BITS + q: the
 * code's bits under the mantissa's top (bits 10 - BITS .. 9) and 2^BITS's
 * exponent (15 + BITS) above them. Pairs: 2-bit, codes m, m + 8 of word P /
 * 8 (16 bits apart: PD 8); 4-bit (groups of 32), nibbles m, m + 4 of word
 * P / 4; 8-bit, bytes k, k + 2 of word P / 2: one shift and one LOP3 a
 * pair (an 8-bit code on the bf16 path took two operands for two mmas: 270
 * -> 202.5 SASS instructions a chunk). 3-, 5- and 6-bit: a byte permute or
 * two first (qm_gather24, qm_gather40). The offset (qm_h16_offset) is
 * 2^BITS, the smallest exponent over the codes (why: qm_offset). */
template <int BITS>
__host__ __device__ constexpr float qm_h16_offset() { return qm_fp4<BITS>() ? 0.0f : (float)(1 << BITS); }
template <int BITS>
__device__ __forceinline__ uint32_t qm_apair_h16(const uint32_t *c, int P) {
    constexpr uint32_t top = 10 - BITS, half_mask = ((1u << BITS) - 1) << top, half_exp = (15u + BITS) << 10;
    constexpr uint32_t mask = half_mask * 0x10001u, exp = half_exp * 0x10001u;
    int s = 0;
    uint32_t x;
    if constexpr (BITS == 8) x = c[P / 2], s = 8 * (P % 2);
    else if constexpr (BITS == 4) x = c[P / 4], s = 4 * (P % 4);
    else if constexpr (BITS == 2) x = c[P / 8], s = 2 * (P % 8);
    else if constexpr (BITS == 5) x = qm_gather40(c, P, &s);
    else x = qm_gather24<BITS>(c, P, &s);
    return qm_field(x, s - (int)top, mask, exp); /* (the code at bit s of each half) */
}
/* Pair P's A operand on the kernel's path (H16: the f16 path) */
template <int BITS, bool H16>
__device__ __forceinline__ uint32_t qm_a(const uint32_t *c, int P) {
    if constexpr (H16 && !qm_fp4<BITS>()) return qm_apair_h16<BITS>(c, P);
    else return qm_apair<BITS>(c, P);
}

/* The parts of x: the top 16 bits of an f32 are a bf16, its leading 8
 * significant bits (x truncated toward zero), and x minus them is exact and
 * has at most 16 significant bits left; so three truncations take x apart
 * exactly (the third holds what is left whole). A bf16x2 of the top halves
 * of two f32 words is one byte permute, where rounding (cvt) took a convert
 * and two unpacks per pair for the remainder: 192 -> 184 SASS instructions
 * per chunk in the one-row kernel of 8 warps (bench/sass_loops.py).
 * (Truncation also cannot overflow: x rounded to bf16 near FLT_MAX could.) */
__device__ __forceinline__ uint32_t qm_bf16_top2(uint32_t lo, uint32_t hi) { return __byte_perm(lo, hi, 0x7632); }

/* A 16-bit scale picked out of a raw word by a byte permute (sel); an f32
 * one (the f16 path's groups of 32) is the word itself. */
__device__ __forceinline__ float qm_scale(uint32_t raw, int sel, int sdt) {
    if (sdt == MLXN_DTYPE_F32) return __uint_as_float(raw);
    const uint32_t v = __byte_perm(raw, 0, sel);
    return sdt == MLXN_DTYPE_BF16 ? __uint_as_float(v) : __half2float(__ushort_as_half((unsigned short)v));
}
/* The byte permute that moves group gi's (0 or 1) 16-bit scale out of a
 * raw word: under the top half (bf16 -> f32 bits) or into the low half
 * (f16, converted after). */
template <int SDT>
__device__ __forceinline__ int qm_scale_sel(int gi) {
    return SDT == MLXN_DTYPE_BF16 ? (gi ? 0x3244 : 0x1044) : (gi ? 0x4432 : 0x4410);
}

/* One mma.m16n8k16 into c, bf16 operands (F16: f16 ones, the f16 path) */
template <bool F16 = false>
__device__ __forceinline__ void qm_mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1) {
#define QM_MMA(T)                                                                                          \
    asm("mma.sync.aligned.m16n8k16.row.col.f32." T "." T ".f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, " \
        "{%0, %1, %2, %3};"                                                                                \
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                                   \
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))
    if constexpr (F16) QM_MMA("f16");
    else QM_MMA("bf16");
#undef QM_MMA
}

/* The f16 path's x staging: this lane's 4 values y of the chunk (pairs as
 * the bf16 parts') as f16 hi and lo parts, pairs packed (h0, h1: part 0;
 * l0, l1: part 1), after scaling by 2^k, k picked per 32 codes (the 8
 * lanes 8 t' .. 8 t' + 7 hold lane t's codes' x) so their largest |x|,
 * 2^(E - 127) <= m < 2^(E - 126), lands in [2^14, 2^15): k = 141 - E, at
 * most 126 (x under 2^-112 keeps 2^126). The products of codes (e2m1:
 * value * 2^-14, < 8; affine: 2^BITS + q) and parts are then exact and far
 * from f16's limits; a part under 2^-14 loses bits only 2^-39 below the
 * largest term. Returns 2^(E0 - k), what the epilogue multiplies the sums
 * by (E0: 14 for e2m1 codes, 0 for affine ones). */
template <int E0>
__device__ __forceinline__ float qm_h16_stage(float (&y)[4], uint32_t (&hl)[4]) {
    uint32_t mx = 0;
#pragma unroll
    for (int e = 0; e < 4; e++) mx = max(mx, __float_as_uint(y[e]) & 0x7fffffffu);
#pragma unroll
    for (int o = 1; o < 8; o *= 2) mx = max(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    const int k = min(141 - (int)(mx >> 23), 126); /* -114 (inf / NaN: the sums are too) .. 126 */
    const float up = __uint_as_float((uint32_t)(k + 127) << 23);
#pragma unroll
    for (int e = 0; e < 4; e++) y[e] *= up; /* exact: a power of two, and no f32 subnormal but 2^-140 below m */
    const __half2 h0 = __floats2half2_rn(y[0], y[1]), h1 = __floats2half2_rn(y[2], y[3]);
    const float2 f0 = __half22float2(h0), f1 = __half22float2(h1);
    const __half2 l0 = __floats2half2_rn(y[0] - f0.x, y[1] - f0.y), l1 = __floats2half2_rn(y[2] - f1.x, y[3] - f1.y);
    hl[0] = *(const uint32_t *)&h0, hl[1] = *(const uint32_t *)&h1, hl[2] = *(const uint32_t *)&l0, hl[3] = *(const uint32_t *)&l1;
    return __uint_as_float((uint32_t)(127 + E0 - k) << 23);
}

/* Bytes of one warp's staging buffer: x's parts of one chunk ([3 parts][4
 * lanes t][4 slots] of 16 bytes, part p starting p * 32 bytes further on
 * so parts sit on different banks), then 64 bytes of zeros. */
enum { QM_PART_BYTES = 256 + 32, QM_ZEROS = QM_PARTS * QM_PART_BYTES, QM_WARP_BYTES = QM_ZEROS + 64 };

/* Per lane of a 16-row tile: where its next chunk's codes and its rows'
 * scales and biases are. Lane (g, t) reads 16 bytes of each chunk (16
 * words per row) in rows g and g + 8; scales and biases share one row
 * stride (checked). A warp reads chunks c0, c0 + W, c0 + 2 W, ... in that
 * order: load() reads the next one.
 * Rows r0 + g and r8 + g (r8 = r0 + 8 but for the gated epilogue). In the
 * TILED16 layout r0 and r8 are multiples of 8, so the 8 lanes g of a half
 * read 8 neighbouring rows of one tile's chunk: 512 contiguous bytes of
 * codes (quant_tiled.h). Where the two halves are one stored tile, a
 * lane's scales of both rows are neighbours too, but each row's are loaded
 * on their own: whether a tile is paired is known only at run time, and
 * both forms, predicated, cost more instructions than one 8-byte load
 * saves (the gated gate/up kernel, 357 -> 332 per chunk pair).
 * Two forms, by the registers the kernel may hold (PTR):
 *   - running pointers (6 of them), where it may hold 128 a thread: a
 *     load's address is then the pointer itself, one add after it. In the
 *     one-row kernel of 8 warps, 184 -> 172 SASS instructions per chunk
 *     (with the truncated x parts, 192 -> 172; 4096 x 14336 on an H200
 *     13.36 -> 12.20 us back to back, docs/perf.md);
 *   - 32-bit element offsets from the parameters' bases and a chunk
 *     counter where it may hold fewer (blocks of 4 warps at 5 a SM, of 6
 *     at 3; and the 2..4-row kernel, already spilling): the pointers
 *     spilled there; and for blocks of two row tiles, where 12 pointers
 *     took 358 -> 372 instructions per chunk pair. Each load costs a
 *     multiply-add, a widening one and a reload of the base (the callers
 *     check the offsets fit). */
/* A lane's BITS words of one row's chunk at p (4-byte aligned, and
 * 16-byte aligned for 4 and 8 bits, 8-byte for 2 and 6): the widest loads
 * the lane's offset allows (3-bit lanes sit 12 bytes apart, 5-bit 20).
 * 4-bit: one load per row, whose 4 lanes t read 64 contiguous bytes, not
 * kept in L1 (each byte is read once). Other widths: BITS / 4 .. BITS loads per row, each
 * touching every 32-byte sector of the row's piece (3-bit: load i reads
 * bytes 12 t + 4 i), so they go through L1, where the row's later loads
 * find the sectors the first one brought (not L1: 2-3 fetches from L2 for
 * each sector). */
template <int BITS>
__device__ __forceinline__ void qm_ldrow(const uint32_t *p, uint32_t *c) {
    if constexpr (BITS == 4 || qm_fp4<BITS>()) {
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
                     : "l"(p));
    } else if constexpr (BITS % 4 == 0) {
#pragma unroll
        for (int i = 0; i < BITS / 4; i++)
            asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
                         : "=r"(c[4 * i]), "=r"(c[4 * i + 1]), "=r"(c[4 * i + 2]), "=r"(c[4 * i + 3])
                         : "l"(p + 4 * i));
    } else if constexpr (BITS % 2 == 0) {
#pragma unroll
        for (int i = 0; i < BITS / 2; i++)
            asm volatile("ld.global.nc.v2.u32 {%0, %1}, [%2];" : "=r"(c[2 * i]), "=r"(c[2 * i + 1]) : "l"(p + 2 * i));
    } else {
#pragma unroll
        for (int i = 0; i < BITS; i++) asm volatile("ld.global.nc.u32 %0, [%1];" : "=r"(c[i]) : "l"(p + i));
    }
}

/* SB: bytes of a scale (and bias): 2 (bf16, f16), 4 (f32: the f16 path's
 * groups of 32) or, for fp4's, the default 2 */
template <bool PTR, int BITS = 4, int SB = 2>
struct qm_rows;

/* The f16 path: a lane reads its own group's scale (and bias) of each row,
 * lsc elements into the chunk's (the kernel passes it); fp4's are bytes
 * (nvfp4's two groups as one 16-bit load), with no biases. */
template <int BITS, int SB>
struct qm_rows<true, BITS, SB> {
    static constexpr bool FP4 = qm_fp4<BITS>();
    using bi_t = typename std::conditional<SB == 4, uint32_t, uint16_t>::type;
    using sc_t = typename std::conditional<FP4, uint8_t, bi_t>::type;
    const uint32_t *wg, *wh;
    const sc_t *sg, *sh;
    const bi_t *bg, *bh;
    uint32_t stw, sts; /* bytes from one of this warp's chunks to its next: of codes, of scales */
    __device__ qm_rows() {}
    /* p advanced by n steps of st bytes */
    template <class P>
    static __device__ __forceinline__ const P *at(const P *p, uint32_t n, uint32_t st) {
        return (const P *)((const char *)p + (size_t)(n * st));
    }
    __device__ qm_rows(const qmv_args &a, int64_t r0, int g, int t, int64_t r8, int c0, int W, int lsc = 0) {
        const int64_t rg = r0 + g < a.N ? r0 + g : a.N - 1, rh = r8 + g < a.N ? r8 + g : a.N - 1;
        const sc_t *sc = (const sc_t *)a.w.sc;
        const int64_t cw = cu_qchunk_words(a.w) * (int64_t)c0, cs = cu_qchunk_scales(a.w) * (int64_t)c0 + lsc;
        constexpr int NW = qm_words<BITS>();
        wg = a.w.wq + cu_qrow_words(a.w, rg) + NW * t + cw, wh = a.w.wq + cu_qrow_words(a.w, rh) + NW * t + cw;
        sg = sc + cu_qrow_scales(a.w, rg) + cs, sh = sc + cu_qrow_scales(a.w, rh) + cs;
        if (!FP4) {
            const bi_t *bi = (const bi_t *)a.w.bi;
            bg = bi + cu_qrow_scales(a.w, rg) + cs, bh = bi + cu_qrow_scales(a.w, rh) + cs;
        }
        stw = 4 * W * (uint32_t)cu_qchunk_words(a.w), sts = (uint32_t)sizeof(sc_t) * W * (uint32_t)cu_qchunk_scales(a.w);
    }
    /* Programmatic launch (cu_launch): before the kernel ahead finishes,
     * only L2 prefetches (the weights could in principle be an earlier
     * kernel's output; a prefetch cannot leave a stale value in a register)
     * of the chunk n loads ahead */
    __device__ void prefetch(const qmv_args &, uint32_t n) const {
        asm volatile("prefetch.global.L2 [%0];" ::"l"(at(wg, n, stw)));
        asm volatile("prefetch.global.L2 [%0];" ::"l"(at(wh, n, stw)));
    }
    /* the next chunk: cw = the lane's BITS words of row g then of row g + 8;
     * sw = the raw scales of the chunk's G groups in rows g, g + 8, then the
     * biases (a group pair as one 32-bit word when G = 2) */
    template <int G>
    __device__ void load(const qmv_args &, uint32_t (&cw)[2 * qm_words<BITS>()], uint32_t (&sw)[4]) {
        qm_ldrow<BITS>(wg, cw);
        qm_ldrow<BITS>(wh, cw + qm_words<BITS>());
        if (FP4) { /* sw[0], sw[1]: the scale byte(s) of rows g, g + 8 */
            if (BITS == QM_NVFP4) sw[0] = __ldg((const unsigned short *)sg), sw[1] = __ldg((const unsigned short *)sh);
            else sw[0] = __ldg(sg), sw[1] = __ldg(sh);
            wg = at(wg, 1, stw), wh = at(wh, 1, stw);
            sg = at(sg, 1, sts), sh = at(sh, 1, sts);
            return;
        }
        if (G == 2) {
            sw[0] = __ldg((const unsigned int *)sg), sw[1] = __ldg((const unsigned int *)sh);
            sw[2] = __ldg((const unsigned int *)bg), sw[3] = __ldg((const unsigned int *)bh);
        } else {
            sw[0] = __ldg(sg), sw[1] = __ldg(sh), sw[2] = __ldg(bg), sw[3] = __ldg(bh);
        }
        wg = at(wg, 1, stw), wh = at(wh, 1, stw);
        sg = at(sg, 1, sts), sh = at(sh, 1, sts), bg = at(bg, 1, sts), bh = at(bh, 1, sts);
    }
};

template <int BITS, int SB>
struct qm_rows<false, BITS, SB> {
    static_assert(SB == 2, "f32 scales: the pointer form only");
    uint32_t owg, owh, osg, osh;
    uint32_t stw, sts; /* a chunk's step in words and in scale elements (the layout's: cu_qchunk_*) */
    uint32_t c, W;     /* the next chunk, the step between this warp's chunks */
    __device__ qm_rows() {}
    __device__ qm_rows(const qmv_args &a, int64_t r0, int g, int t, int64_t r8, int c0, int W_, int lsc = 0) {
        const int64_t rg = r0 + g < a.N ? r0 + g : a.N - 1, rh = r8 + g < a.N ? r8 + g : a.N - 1;
        constexpr int NW = qm_words<BITS>();
        owg = (uint32_t)cu_qrow_words(a.w, rg) + NW * t, owh = (uint32_t)cu_qrow_words(a.w, rh) + NW * t;
        osg = (uint32_t)cu_qrow_scales(a.w, rg) + lsc, osh = (uint32_t)cu_qrow_scales(a.w, rh) + lsc;
        stw = (uint32_t)cu_qchunk_words(a.w), sts = (uint32_t)cu_qchunk_scales(a.w);
        c = (uint32_t)c0, W = (uint32_t)W_;
    }
    __device__ void prefetch(const qmv_args &a, uint32_t n) const {
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a.w.wq + (owg + stw * (c + n * W))));
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a.w.wq + (owh + stw * (c + n * W))));
    }
    template <int G>
    __device__ void load(const qmv_args &a, uint32_t (&cw)[2 * qm_words<BITS>()], uint32_t (&sw)[4]) {
        qm_ldrow<BITS>(a.w.wq + (owg + stw * c), cw);
        qm_ldrow<BITS>(a.w.wq + (owh + stw * c), cw + qm_words<BITS>());
        if (qm_fp4<BITS>()) {
            const uint8_t *sc = (const uint8_t *)a.w.sc;
            if (BITS == QM_NVFP4)
                sw[0] = __ldg((const unsigned short *)(sc + (osg + sts * c))), sw[1] = __ldg((const unsigned short *)(sc + (osh + sts * c)));
            else
                sw[0] = __ldg(sc + (osg + sts * c)), sw[1] = __ldg(sc + (osh + sts * c));
            c += W;
            return;
        }
        const unsigned short *sc = (const unsigned short *)a.w.sc, *bi = (const unsigned short *)a.w.bi;
        if (G == 2) {
            sw[0] = __ldg((const unsigned int *)(sc + (osg + sts * c)));
            sw[1] = __ldg((const unsigned int *)(sc + (osh + sts * c)));
            sw[2] = __ldg((const unsigned int *)(bi + (osg + sts * c)));
            sw[3] = __ldg((const unsigned int *)(bi + (osh + sts * c)));
        } else {
            sw[0] = __ldg(sc + (osg + sts * c)), sw[1] = __ldg(sc + (osh + sts * c));
            sw[2] = __ldg(bi + (osg + sts * c)), sw[3] = __ldg(bi + (osh + sts * c));
        }
        c += W;
    }
};

/* Whether a kernel of W warps at MB blocks per SM may hold 128 registers a thread (qm_rows' form) */
#define QM_ROOMY(W, MB) ((W) * 32 * (MB) <= 512)

/* Whether lane (g, t) feeds its B column g = (group in chunk) * 3 + part:
 * only when lane t's codes lie in that group (other lanes feed zeros). */
template <int G>
__device__ __forceinline__ bool qm_bvalid(int g, int t) {
    return g < G * QM_PARTS && g / QM_PARTS == (G == 2 ? t >> 1 : 0);
}

/* The epilogue of lane (g, t): its accumulator columns 2t, 2t + 1 as
 * per-lane constants, so it has no branch: columns past G * 3 hold zeros
 * (their B column is zero); a part-0 column also takes the group's offset
 * and bias: acc += s * (C - 128 sum x) + b * sum x. */
template <int G, int SDT>
struct qm_epi {
    int egrp[2], ssel[2];
    float eoff[2], ebias[2];
    /* off: the codes' offset (qm_offset) */
    __device__ explicit qm_epi(int t, float off = 128.0f) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int cc = 2 * t + e;
            egrp[e] = cc < G * QM_PARTS ? cc / QM_PARTS : 0;
            const bool p0 = cc < G * QM_PARTS && cc % QM_PARTS == 0;
            eoff[e] = p0 ? -off : 0.0f, ebias[e] = p0 ? 1.0f : 0.0f;
            ssel[e] = qm_scale_sel<SDT>(egrp[e]);
        }
    }
    /* the chunk's scales sv and biases bv: [column e][row g, g + 8] */
    __device__ void scales(const uint32_t (&sw)[4], float (&sv)[4], float (&bv)[4]) const {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            sv[2 * e] = qm_scale(sw[0], ssel[e], SDT), sv[2 * e + 1] = qm_scale(sw[1], ssel[e], SDT);
            bv[2 * e] = qm_scale(sw[2], ssel[e], SDT), bv[2 * e + 1] = qm_scale(sw[3], ssel[e], SDT);
        }
    }
    /* column e's sums cg (row g), ch (row g + 8), group sum of x sxv */
    __device__ void add(int e, float sxv, float cg, float ch, const float (&sv)[4], const float (&bv)[4], float &accg,
                        float &acch) const {
        const float bsx = ebias[e] * sxv;
        accg = fmaf(sv[2 * e], fmaf(eoff[e], sxv, cg), accg);
        acch = fmaf(sv[2 * e + 1], fmaf(eoff[e], sxv, ch), acch);
        accg = fmaf(bv[2 * e], bsx, accg);
        acch = fmaf(bv[2 * e + 1], bsx, acch);
    }
};

/* The one-row kernel's own column order: B column n = 4 * (group in
 * chunk) + part, part 3 zeros. Lane (g, t)'s accumulator columns 2t, 2t + 1
 * then belong to one group (t / 2 with groups of 64; 0, or none for t >= 2,
 * with 128), so it unpacks that group's scale and bias of its two rows (4,
 * not 8) and fetches one group sum (1 shuffle, not 2), and adds its two
 * columns before scaling them once: the gated two-tile kernel 332 -> 314
 * instructions per chunk pair, the heads' 283 -> 265 (bench/sass_loops.py).
 * Taken where the kernel keeps offsets (qm_rows<false>); the 2..8-row
 * kernels keep qm_bvalid's order (their x images are laid out by it). */
template <int G>
__device__ __forceinline__ bool qm1_bvalid(int g, int t) {
    return (g & 3) < QM_PARTS && (g >> 2) == (G == 2 ? t >> 1 : 0);
}
template <int G, int SDT>
struct qm1_epi {
    int grp, ssel;
    float eoff, ebias; /* column 2t is part 0 of its group: acc += s (C - off sum x) + b sum x */
    __device__ explicit qm1_epi(int t, float off = 128.0f) {
        const bool live = G == 2 || t < 2, p0 = live && (t & 1) == 0;
        grp = G == 2 ? t >> 1 : 0;
        ssel = qm_scale_sel<SDT>(grp);
        eoff = p0 ? -off : 0.0f, ebias = p0 ? 1.0f : 0.0f;
    }
    /* cg, ch: the lane's two columns added, rows g and g + 8; sw: the raw scales and biases (qm_rows::load) */
    __device__ void add(float sxv, float cg, float ch, const uint32_t (&sw)[4], float &accg, float &acch) const {
        const float sg = qm_scale(sw[0], ssel, SDT), sh = qm_scale(sw[1], ssel, SDT);
        const float bg = qm_scale(sw[2], ssel, SDT), bh = qm_scale(sw[3], ssel, SDT);
        const float bsx = ebias * sxv;
        accg = fmaf(bg, bsx, fmaf(sg, fmaf(eoff, sxv, cg), accg));
        acch = fmaf(bh, bsx, fmaf(sh, fmaf(eoff, sxv, ch), acch));
    }
};

/* Tile b's two 8-row halves, rows r0.. and r8..: 16 rows in a row (r8 =
 * r0 + 8); with glu, 8 gate rows and their up rows N / 2 further on; with
 * the rope_kv epilogue, in q and k, 8 rows of a head and their rope
 * partners half a head further on (rope's halves pairing: rows j and
 * j + D / 2), so the epilogue finds each pair in one tile; v's tiles are
 * in a row. */
__device__ __forceinline__ void qm_tile(const qmv_args &a, int64_t b, int64_t &r0, int64_t &r8) {
    if (a.glu) {
        r0 = b * (QM_ROWS / 2), r8 = a.N / 2 + r0;
    } else if (a.rk && b * QM_ROWS < a.rk_qk) {
        const int per_head = a.rk_d / QM_ROWS; /* tiles per head */
        const int64_t h = b / per_head;
        r0 = h * a.rk_d + (b - h * per_head) * (QM_ROWS / 2), r8 = r0 + a.rk_d / 2;
    } else {
        r0 = b * QM_ROWS, r8 = r0 + QM_ROWS / 2;
    }
}

/* The rope_kv epilogue of output row r (value v, its rope partner's value
 * pv): rope_kv_kernel's work on that element (cu_rope_kv.cu), through
 * cu_rope_pair (cu_rope.cuh) and with its stores, so the bits are those of
 * the product followed by rope_kv_write. */
__device__ __forceinline__ void qm_rope_kv(const qmv_args &a, int64_t r, float v, float pv) {
    const int64_t at = (int64_t)a.rk_slot[0];
    if (at < 0 || at >= a.rk_cap) { /* every thread sees it: nothing is written; row 0's thread reports */
        if (r == 0) cu_report(a.err, CU_ERR_ROPE_KV_SLOT, 1, at, a.rk_cap - 1);
        return;
    }
    const int D = a.rk_d;
    if (r >= a.rk_qk) { /* v: stored as it is */
        const int64_t h = (r - a.rk_qk) / D, c = r - a.rk_qk - h * D;
        cu_store(a.rk_vc, a.rk_vdt, h * a.rk_vst[0] + at * a.rk_vst[1] + c * a.rk_vst[2], v);
        return;
    }
    const int64_t h = r / D;
    const int c = (int)(r - h * D), half = D / 2;
    const bool first = c < half;
    const int i = first ? c : c - half;
    const float pos = 0.0f + (a.rk_offp ? (float)*a.rk_offp : a.rk_rope.off); /* row t = 0 */
    const float o = cu_rope_pair(a.rk_rope, pos, i, first ? v : pv, first ? pv : v, first);
    if (r < a.rk_q) a.rk_qout[r] = o; /* q_out [Hq, 1, D]: element r */
    else cu_store(a.rk_kc, a.rk_kdt, (h - a.rk_q / D) * a.rk_kst[0] + at * a.rk_kst[1] + c * a.rk_kst[2], o);
}

/* The end of a tile: rows g and g + 8 summed over the 4 lanes t, then over
 * the W warps in order (deterministic), written for x rows m < a.M. With
 * red_ss (the one-row kernel's fused norm: each warp's sum of x^2 over its
 * chunks, stored before this call) the sums are scaled by the norm's
 * 1 / sqrt(sum(x^2) / K + eps), the warps' shares added in order, so every
 * block gets the same bits; with a.res (one row) each output is res + sum
 * (the add of add_kernel, the same bits), thread i < 16 adding resv, the
 * residual of row r0 + i it loaded at its start; with a.glu (one row) the
 * tile is 8 gate rows and their up rows, and out [N / 2] gets
 * act(gate) * up; with a.rk (one row) the tile's halves are rows r0.. and
 * r8.. (qm_tile), written to out and through qm_rope_kv. */
template <int W, int NX>
__device__ __forceinline__ void qm_finish(const qmv_args &a, int64_t r0, float (&accg)[NX], float (&acch)[NX],
                                          float (&red)[W][NX][QM_ROWS], const float *red_ss = nullptr,
                                          float resv = 0.0f, int64_t r8 = 0) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int m = 0; m < NX; m++) {
        accg[m] += __shfl_xor_sync(0xffffffffu, accg[m], 1);
        acch[m] += __shfl_xor_sync(0xffffffffu, acch[m], 1);
        accg[m] += __shfl_xor_sync(0xffffffffu, accg[m], 2);
        acch[m] += __shfl_xor_sync(0xffffffffu, acch[m], 2);
        if (t == 0) red[warp][m][g] = accg[m], red[warp][m][g + 8] = acch[m];
    }
    __syncthreads();
    float inv = 1.0f;
    if (red_ss) {
        float ss = 0.0f;
#pragma unroll
        for (int w = 0; w < W; w++) ss += red_ss[w];
        inv = 1.0f / sqrtf(ss / (float)a.K + a.eps);
    }
    if (NX == 1 && a.glu) {
        /* thread i < 8: gate row r0 + i (tile row i) and its up row (tile row i + 8) */
        if (threadIdx.x < QM_ROWS / 2 && r0 + threadIdx.x < a.N / 2) {
            float gv = 0.0f, uv = 0.0f;
#pragma unroll
            for (int w = 0; w < W; w++) gv += red[w][0][threadIdx.x], uv += red[w][0][threadIdx.x + 8];
            if (red_ss) gv *= inv, uv *= inv;
            a.out[r0 + threadIdx.x] = cu_act(a.glu - 1, gv) * uv; /* act_kernel's expression */
        }
        return;
    }
    if (NX == 1 && a.rk) {
        /* warp 0's lane i < 16: tile row i (row r0 + i, then r8 + i - 8); its rope partner is lane i ^ 8 */
        if (warp == 0) {
            float v = 0.0f;
            if (lane < QM_ROWS) {
#pragma unroll
                for (int w = 0; w < W; w++) v += red[w][0][lane];
                if (red_ss) v *= inv;
            }
            const float pv = __shfl_xor_sync(0xffffffffu, v, 8);
            const int64_t r = (lane < 8 ? r0 : r8) + (lane & 7);
            if (lane < QM_ROWS && r < a.N) {
                a.out[r] = v;
                qm_rope_kv(a, r, v, pv);
            }
        }
        return;
    }
    for (int i = threadIdx.x; i < NX * QM_ROWS; i += W * 32) {
        const int m = i / QM_ROWS, r = i % QM_ROWS;
        if (m < a.M && r0 + r < a.N) {
            float v = 0.0f;
#pragma unroll
            for (int w = 0; w < W; w++) v += red[w][m][r];
            if (red_ss) v *= inv;
            if (a.res) v = resv + v; /* one row: thread i holds res[r0 + i] (NX == 1 only) */
            a.out[m * a.ldo + r0 + r] = v;
        }
    }
}

/* The fused norm's effective weight pair from two 16-bit values of dtype
 * NDT (bf16 or f16) in one word (lo first), each off + w rounded to NDT as
 * rms_norm's norm weight (cu_reduce.cu). */
template <int NDT>
__device__ __forceinline__ float2 qm_norm_w2(uint32_t raw, float off) {
    float2 v;
    v.x = NDT == MLXN_DTYPE_BF16 ? __uint_as_float(raw << 16) : cu_f16_f32((uint16_t)raw);
    v.y = NDT == MLXN_DTYPE_BF16 ? __uint_as_float(raw & 0xffff0000u) : cu_f16_f32((uint16_t)(raw >> 16));
    if (off != 0.0f) {
        v.x = off + v.x, v.y = off + v.y;
        v.x = NDT == MLXN_DTYPE_BF16 ? cu_bf16_f32(cu_f32_bf16(v.x)) : cu_f16_f32(cu_f32_f16(v.x));
        v.y = NDT == MLXN_DTYPE_BF16 ? cu_bf16_f32(cu_f32_bf16(v.y)) : cu_f16_f32(cu_f32_f16(v.y));
    }
    return v;
}

/* The same from two f32 values (an f32 norm weight): off + w in f32, as
 * rms_norm's. */
__device__ __forceinline__ float2 qm_norm_wf(uint32_t lo, uint32_t hi, float off) {
    return make_float2(off + __uint_as_float(lo), off + __uint_as_float(hi));
}

/* Blocks per SM the one-row kernel's registers must allow: 16 warps (a
 * 128-register cap: 2 blocks of 8 warps, 1 of 16), 3 blocks of 6 warps
 * (one wave of ~18 warps per SM, qm_launch_one), and 5 blocks of 4 warps,
 * what the plain kernel gets at 95 registers (the NORM variant needs the
 * cap: ~100 unforced). */
#define QM_MIN_BLOCKS(W) ((W) == 4 ? 5 : (W) == 6 ? 3 : (W) == 16 ? 1 : 512 / ((W) * 32))
/* T = 2 (two row tiles per block): a 128-register cap by default;
 * qm_launch also builds the 4-warp kernel at 5 blocks per SM (its MB) */
#define QM_MIN_BLOCKS_T(W, T) ((T) == 1 ? QM_MIN_BLOCKS(W) : (W) == 16 ? 1 : 512 / ((W) * 32))

/* G: groups per chunk (2: group 64, 1: group 128); SDT: scale dtype; W
 * warps per block; D chunks in flight per warp (per tile); T row tiles per
 * block (1, or 2 where qm_launch's rule picks it: the chunk's x parts and B
 * registers then serve both tiles); MB the blocks per SM the registers must
 * allow (QM_MIN_BLOCKS_T; qm_launch also builds two-tile blocks of 4 warps
 * at 5). At least 16 warps per SM (a 128-register cap).
 * NDT (0, or bf16 / f16, or f32 on the f16 path's groups of 32: the fused
 * op's rms_norm of x with the weight a.nw of that dtype): a decode step's
 * norm before its q/k/v and gate/up projections, without a kernel of its
 * own. The norm is linear up to its
 * scale, so each lane stages x * w instead of x, sums x^2 as it goes, and
 * the tile's sums are scaled once by 1 / sqrt(mean(x^2) + eps) at the end
 * (every block sees all of x, so each computes the scale itself). The
 * weights ride in the register ring with x (two 16-bit values per word).
 * Measured on an H100 (docs/perf.md): copied into shared memory at each
 * block's start instead, the kernel was 6-15% slower (a serial round trip
 * and a barrier per block); with an f32 ring beside the 16-bit one it held
 * 112 registers and the 4-warp launch lost a fifth of its blocks per SM. */
template <int G, int SDT, int W, int D, int NDT, int T, int MB = QM_MIN_BLOCKS_T(W, T), int BITS = 4>
__global__ void __launch_bounds__(W * 32, MB) qmv_mma_kernel(qmv_args a) {
    constexpr bool NORM = NDT != 0;
    constexpr bool FP4 = qm_fp4<BITS>(), NV = BITS == QM_NVFP4;
    constexpr bool H16 = qm_h16<BITS, G>(); /* the f16 path (QM_MXFP4 says how) */
    static_assert(!H16 || T == 1, "the f16 path: one row tile a block");
    constexpr int PD = qm_pd<BITS>(), NW = qm_words<BITS>(); /* a pair's partner code (qm_apair), a lane's words a row */
    static_assert(BITS == 4 || T == 1, "other widths: one row tile a block");
    __shared__ uint4 xbuf[W][QM_WARP_BYTES / 16]; /* per warp: the chunk being computed, x as B operands */
    __shared__ float red[T][W][1][QM_ROWS];       /* each warp's row sums, per tile */
    __shared__ float red_ss[NORM ? W : 1];        /* NORM: each warp's sum of x^2 */
    const int nch = a.K / QM_CHUNK;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    int64_t r0[T], r8[T]; /* each tile's two halves of 8 rows (qm_tile): tiles T b .. T b + T - 1 */
    constexpr bool ROOMY = QM_ROOMY(W, MB) && T == 1; /* (two tiles: 12 pointers, 358 -> 372 instructions a chunk pair) */
    constexpr int SB = SDT == MLXN_DTYPE_F32 ? 4 : 2; /* (f32 scales: the f16 path) */
    static_assert(SB == 2 || (H16 && !FP4), "f32 scales: affine, on the f16 path");
    qm_rows<ROOMY, BITS, SB> rows[T];
#pragma unroll
    for (int u = 0; u < T; u++) {
        qm_tile(a, (int64_t)blockIdx.x * T + u, r0[u], r8[u]);
        rows[u] = qm_rows<ROOMY, BITS, SB>(a, r0[u], g, t, r8[u], warp, W, H16 ? (NV ? 2 * t : FP4 ? t : t * G / 4) : 0);
    }
    /* the x this lane stages per chunk: pairs 4 (jw % 4) + 2h and the next
     * of lane t = jw / 4 (qm_apair), codes ox, ox + 1 and their partners
     * ox + PD, ox + PD + 1 (4-bit: codes 2h, 2h + 1, 2h + 4, 2h + 5 of the
     * chunk's word-group jw of 8 codes) */
    const int jw = lane >> 1, h = lane & 1, p0 = 4 * (jw & 3) + 2 * h;
    const uint32_t ox = 32 * (jw >> 2) + 2 * PD * (p0 / PD) + p0 % PD;
    const float *xl = a.x + QM_CHUNK * warp + ox; /* the next chunk's (load advances it) */
    /* NF32: an f32 norm weight (GGUF files store norms in f32), the f16 path's groups of 32 only (qm_kernel_for) */
    constexpr bool NF32 = NDT == MLXN_DTYPE_F32;
    static_assert(!NF32 || (H16 && G == 4), "f32 norm weights: the f16 path's groups of 32");
    using nw_t = typename std::conditional<NF32, uint32_t, uint16_t>::type;
    const nw_t *nl = NORM ? (const nw_t *)a.nw + QM_CHUNK * warp + ox : nullptr; /* same, of the norm weight */

    uint32_t cw[D][T][2 * NW]; /* ring: codes (qm_rows::load), per tile */
    uint32_t sw[D][T][4];  /* ring: raw scales and biases */
    float2 xr[D][2];    /* ring: this lane's 4 x values of the chunk */
    uint32_t nh[NORM ? D : 1][NF32 ? 4 : 2]; /* NORM ring: the norm weights of those x, two per word (f32: one) */
    auto load = [&](int d, uint32_t c) {
#pragma unroll
        for (int u = 0; u < T; u++) rows[u].template load<H16 ? 1 : G>(a, cw[d][u], sw[d][u]); /* (f16 path: the lane's group) */
        /* x and the norm weight: running pointers, or offsets as qm_rows<false> */
        const float *xc = ROOMY ? xl : a.x + (QM_CHUNK * c + ox);
        const nw_t *nc = ROOMY ? nl : (const nw_t *)a.nw + (QM_CHUNK * c + ox);
        xr[d][0] = *(const float2 *)xc, xr[d][1] = *(const float2 *)(xc + PD);
        if constexpr (NORM && NF32) { /* (8-byte aligned: ox is even; cu_qmv_mma_fused checks the base) */
            const uint2 v0 = __ldg((const uint2 *)nc), v1 = __ldg((const uint2 *)(nc + PD));
            nh[d][0] = v0.x, nh[d][1] = v0.y, nh[d][2] = v1.x, nh[d][3] = v1.y;
        } else if constexpr (NORM) {
            nh[d][0] = __ldg((const uint32_t *)nc), nh[d][1] = __ldg((const uint32_t *)(nc + PD));
        }
        if (ROOMY) xl += QM_CHUNK * W, nl += NORM ? QM_CHUNK * W : 0;
    };
    float ssq = 0.0f; /* NORM: this lane's sum of x^2 */
#pragma unroll
    for (int d = 0; d < D; d++)
        if (warp + d * W < nch)
#pragma unroll
            for (int u = 0; u < T; u++) rows[u].prefetch(a, d);
    cu_pdl_wait();
    cu_pdl_launch_dependents();
#pragma unroll
    for (int d = 0; d < D; d++)
        if (warp + d * W < nch) load(d, warp + d * W);
    /* the residual this thread adds in qm_finish (thread i < 16 writes row r0 + i), loaded now */
    float resv[T];
#pragma unroll
    for (int u = 0; u < T; u++)
        resv[u] = a.res && threadIdx.x < QM_ROWS && r0[u] + threadIdx.x < a.N ? a.res[r0[u] + threadIdx.x] : 0.0f;

    unsigned char *wb = (unsigned char *)xbuf[warp];
    if (lane < 4) ((uint4 *)(wb + QM_ZEROS))[lane] = make_uint4(0, 0, 0, 0);
    /* where this lane's two pairs go: lane region jw / 4, 16-byte slot jw % 4
     * (swizzled), 8 bytes h */
    const int st_off = (jw >> 2) * 64 + 16 * ((jw & 3) ^ ((jw >> 3) & 1)) + 8 * h;
    /* this lane's B registers: its column's part, or zeros (no predicated loads, no register clears).
     * The column order (qm1_bvalid): 4 * group + part where the kernel keeps offsets; the one-tile
     * pointer kernels keep (group) * 3 + part, where the other cost 6 instructions a chunk more (the
     * compiler then recomputed the shared addresses every chunk) */
    constexpr bool COL4 = !ROOMY;
    /* (the f16 path: column 2 * group + part; lane t's codes are group t) */
    const bool bvalid = H16 ? g >> 1 == t : COL4 ? qm1_bvalid<G>(g, t) : qm_bvalid<G>(g, t);
    const int bpart = H16 ? g & 1 : COL4 ? g & 3 : g % QM_PARTS;
    const unsigned char *xb = bvalid ? wb + bpart * QM_PART_BYTES + t * 64 : wb + QM_ZEROS;
    const int swz = bvalid ? (t >> 1) : 0;
    const qm_epi<G, SDT> epi(t, qm_offset<BITS>());
    const qm1_epi<G, SDT> epi1(t, qm_offset<BITS>());
    float accg[T][1], acch[T][1];
#pragma unroll
    for (int u = 0; u < T; u++) accg[u][0] = acch[u][0] = 0.0f;
    for (int c0 = warp; c0 < nch; c0 += D * W) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            const int c = c0 + d * W;
            if (c >= nch) break;
            /* stage the chunk's x as three bf16 parts (the f16 path: two f16 ones, scaled; pairs: codes m,
             * m + PD) and its group sums */
            float rest[4] = {xr[d][0].x, xr[d][1].x, xr[d][0].y, xr[d][1].y}; /* pair 2h, then pair 2h + 1 */
            if (NORM) {
                float2 w0, w1;
                if constexpr (NF32) w0 = qm_norm_wf(nh[d][0], nh[d][1], a.nw_off), w1 = qm_norm_wf(nh[d][2], nh[d][3], a.nw_off);
                else w0 = qm_norm_w2<NDT>(nh[d][0], a.nw_off), w1 = qm_norm_w2<NDT>(nh[d][1], a.nw_off);
#pragma unroll
                for (int e = 0; e < 4; e++) ssq = fmaf(rest[e], rest[e], ssq);
                rest[0] *= w0.x, rest[1] *= w1.x, rest[2] *= w0.y, rest[3] *= w1.y;
            }
            float xsum = 0.0f, fgrp = 0.0f; /* the group's sum of x (f16 path: the lane's 32 codes'), their factor */
            if constexpr (H16) {
                if (!FP4) { /* (x before its scaling) */
                    xsum = (rest[0] + rest[1]) + (rest[2] + rest[3]);
#pragma unroll
                    for (int o = 1; o < 8; o *= 2) xsum += __shfl_xor_sync(0xffffffffu, xsum, o);
                }
                uint32_t hl[4];
                fgrp = qm_h16_stage<FP4 ? 14 : 0>(rest, hl);
                __syncwarp(); /* the last chunk's B reads are done */
                *(uint2 *)(wb + st_off) = make_uint2(hl[0], hl[1]);
                *(uint2 *)(wb + QM_PART_BYTES + st_off) = make_uint2(hl[2], hl[3]);
            } else {
                xsum = (rest[0] + rest[1]) + (rest[2] + rest[3]);
                __syncwarp(); /* the last chunk's B reads are done */
#pragma unroll
                for (int p = 0; p < QM_PARTS; p++) {
                    uint32_t u[4];
#pragma unroll
                    for (int e = 0; e < 4; e++) u[e] = __float_as_uint(rest[e]);
                    *(uint2 *)(wb + p * QM_PART_BYTES + st_off) = make_uint2(qm_bf16_top2(u[0], u[1]), qm_bf16_top2(u[2], u[3]));
                    if (p + 1 < QM_PARTS)
#pragma unroll
                        for (int e = 0; e < 4; e++) rest[e] -= __uint_as_float(u[e] & 0xffff0000u);
                }
#pragma unroll
                for (int o = 1; o < 32 / G; o *= 2) xsum += __shfl_xor_sync(0xffffffffu, xsum, o);
            }
            __syncwarp();
            uint32_t b[16];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const uint4 v = *(const uint4 *)(xb + 16 * (j ^ swz));
                b[4 * j] = v.x, b[4 * j + 1] = v.y, b[4 * j + 2] = v.z, b[4 * j + 3] = v.w;
            }
            /* per tile two chains of 4 mmas (one of 8 waits on the mma latency 8 times; nvfp4: chain 0
             * group 2t, chain 1 group 2t + 1) */
            float acc[T][2][4] = {};
#pragma unroll
            for (int i = 0; i < 8; i++) {
#pragma unroll
                for (int u = 0; u < T; u++) {
                    const uint32_t *cg = cw[d][u], *ch = cw[d][u] + NW; /* rows g, g + 8; mma i: pairs 2i, 2i + 1 */
                    qm_mma<H16>(acc[u][NV ? i >> 2 : i & 1], qm_a<BITS, H16>(cg, 2 * i), qm_a<BITS, H16>(ch, 2 * i),
                                qm_a<BITS, H16>(cg, 2 * i + 1), qm_a<BITS, H16>(ch, 2 * i + 1), b[2 * i], b[2 * i + 1]);
                }
            }
            if constexpr (H16) {
                /* columns 2t, 2t + 1: lane group t's two parts, times its staging lanes' factor 2^(E0 - k) */
                const float f = __shfl_sync(0xffffffffu, fgrp, 8 * t);
                const float xs = FP4 ? 0.0f : __shfl_sync(0xffffffffu, xsum, 8 * t);
#pragma unroll
                for (int u = 0; u < T; u++) {
                    float cg0 = acc[u][0][0] + acc[u][0][1], ch0 = acc[u][0][2] + acc[u][0][3];
                    float cg1 = acc[u][1][0] + acc[u][1][1], ch1 = acc[u][1][2] + acc[u][1][3];
                    const uint32_t *sv = sw[d][u];
                    if (NV) { /* two groups (chains), e4m3 scales times the global one */
                        accg[u][0] = fmaf(e4m3_f32(sv[0] & 0xff) * a.w.gscale, f * cg0, accg[u][0]);
                        accg[u][0] = fmaf(e4m3_f32(sv[0] >> 8) * a.w.gscale, f * cg1, accg[u][0]);
                        acch[u][0] = fmaf(e4m3_f32(sv[1] & 0xff) * a.w.gscale, f * ch0, acch[u][0]);
                        acch[u][0] = fmaf(e4m3_f32(sv[1] >> 8) * a.w.gscale, f * ch1, acch[u][0]);
                    } else if (FP4) { /* e8m0 scales: powers of two, so the sums' one rounding is the mma's */
                        accg[u][0] = fmaf(mlxn_e8m0_to_f32((uint8_t)sv[0]), f * (cg0 + cg1), accg[u][0]);
                        acch[u][0] = fmaf(mlxn_e8m0_to_f32((uint8_t)sv[1]), f * (ch0 + ch1), acch[u][0]);
                    } else { /* affine: acc += s (C - off sum x) + b sum x, the lane's group's scale and bias (a
                              * group of 64 or 128 is 2 or 4 lanes': each adds its own codes' part, with its own sum x) */
                        constexpr float off = qm_h16_offset<BITS>();
                        const int sel = qm_scale_sel<SDT>(0); /* (one 16-bit value a word, or an f32) */
                        const float sg = qm_scale(sv[0], sel, SDT), sh = qm_scale(sv[1], sel, SDT);
                        const float bg = qm_scale(sv[2], sel, SDT), bh = qm_scale(sv[3], sel, SDT);
                        accg[u][0] = fmaf(bg, xs, fmaf(sg, fmaf(-off, xs, f * (cg0 + cg1)), accg[u][0]));
                        acch[u][0] = fmaf(bh, xs, fmaf(sh, fmaf(-off, xs, f * (ch0 + ch1)), acch[u][0]));
                    }
                }
            } else if (COL4) {
                const float xs = __shfl_sync(0xffffffffu, xsum, epi1.grp * 16);
#pragma unroll
                for (int u = 0; u < T; u++)
                    epi1.add(xs, (acc[u][0][0] + acc[u][1][0]) + (acc[u][0][1] + acc[u][1][1]),
                             (acc[u][0][2] + acc[u][1][2]) + (acc[u][0][3] + acc[u][1][3]), sw[d][u], accg[u][0],
                             acch[u][0]);
            } else {
                float xs[2];
#pragma unroll
                for (int e = 0; e < 2; e++) xs[e] = __shfl_sync(0xffffffffu, xsum, epi.egrp[e] * 16);
#pragma unroll
                for (int u = 0; u < T; u++) {
                    float sv[4], bv[4];
                    epi.scales(sw[d][u], sv, bv);
#pragma unroll
                    for (int e = 0; e < 2; e++)
                        epi.add(e, xs[e], acc[u][0][e] + acc[u][1][e], acc[u][0][2 + e] + acc[u][1][2 + e], sv, bv,
                                accg[u][0], acch[u][0]);
                }
            }
            /* refill the slot, D chunks ahead (refilling before the mmas, with the codes moved to operand
             * registers first, measured slower: 21.1 against 18.6 us at 4096 x 14336) */
            if (c + D * W < nch) load(d, c + D * W);
        }
    }
    if (NORM) {
#pragma unroll
        for (int o = 1; o < 32; o *= 2) ssq += __shfl_xor_sync(0xffffffffu, ssq, o);
        if (lane == 0) red_ss[warp] = ssq; /* read after qm_finish's barrier */
    }
#pragma unroll
    for (int u = 0; u < T; u++) qm_finish<W, 1>(a, r0[u], accg[u], acch[u], red[u], NORM ? red_ss : nullptr, resv[u], r8[u]);
}

/* qmv_mma_kernel for this product's norm variant (NDT), as a plain function
 * pointer; NF32: also built for an f32 norm weight (the f16 path's groups
 * of 32: cu_qmv_mma_fused takes one only there) */
template <int G, int SDT, int W, int D, int T, int MB = QM_MIN_BLOCKS_T(W, T), int BITS = 4, bool NF32 = false>
static void (*qm_kernel_for(const qmv_args &a))(qmv_args) {
    if (!a.nw) return qmv_mma_kernel<G, SDT, W, D, 0, T, MB, BITS>;
    if (a.nw_dt == MLXN_DTYPE_BF16) return qmv_mma_kernel<G, SDT, W, D, MLXN_DTYPE_BF16, T, MB, BITS>;
    if constexpr (NF32)
        if (a.nw_dt == MLXN_DTYPE_F32) return qmv_mma_kernel<G, SDT, W, D, MLXN_DTYPE_F32, T, MB, BITS>;
    return qmv_mma_kernel<G, SDT, W, D, MLXN_DTYPE_F16, T, MB, BITS>;
}

/* How full the last wave of a grid of `blocks` is, on average over its
 * waves (1: every wave full), at `per_sm` blocks per SM. */
static double qm_wave_fill(int64_t blocks, int per_sm, int sms) {
    const int64_t wave = (int64_t)(per_sm > 0 ? per_sm : 1) * sms, waves = (blocks + wave - 1) / wave;
    return (double)blocks / (double)(waves * wave);
}

template <int G, int SDT, int W, int D>
static bool qm_launch(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    /* Blocks of two row tiles (each warp's x parts and B reads serve both; one chunk of each in flight)
     * for the 4-warp launch's many-tile products, in one of two builds: capped at 128 registers (115
     * used: 4 blocks per SM) or at 102 (96 used, no spills: 5 blocks per SM, a quarter more warps).
     * Measured on an H100 (docs/perf.md), back to back, one tile / two at 4 per SM / two at 5 per SM:
     *   - 5 per SM where its grid fills its waves (>= 0.95): 20480 x 2560 (Gemma-3-4B's gate/up: 640
     *     blocks in 0.97 of a wave) 14.9 / 16.4 / 12.9 us, Gemma-3-4B tg128 470 -> 482 tok/s; and where
     *     it runs at least 4 waves (the vocabulary heads): 128256 x 2048 58.4 -> 56.4 alone, 58.5 -> 55.9
     *     in a traced step. With the heads there, Llama-3.2-1B's tg128 fell 1881 -> 1860 in one call
     *     (unexplained) and rose 1866 / 1869 -> 1871 / 1883 in a later one, Llama-3-8B's 447.6 / 447.4 ->
     *     448.0 / 447.8;
     *   - elsewhere 4 per SM, where the halved grid still fills its waves about as well as the one-tile
     *     grid (within 0.1): 16384 x 2048 10.7 / 9.2 / 10.1, 28672 x 4096 29.5 / 28.5 / 30.0 (1.7 waves
     *     at 4 per SM; 1.36 at 5 leave a third of the last wave's slots empty);
     *   - with few tiles half the blocks leave SMs short of loads (4096 x 14336 14.3 -> 19.6).
     * And two-tile blocks of 2 warps (8 per SM) where the grid picked above takes more than one wave and
     * theirs fits in one: a SM then holds 6-7 small blocks in one wave instead of a full wave of 4 and a
     * second one ~70% full. Measured on an H100 (docs/perf.md): with Llama-3-8B's gate/up (28672 x 4096,
     * 896 blocks: 1.7 waves of 4 per SM) on them, its tg128 rose 449.3 / 448.9 -> 455.7 / 455.9 tok/s in
     * one call (447.9 / 448.0 -> 453.9 / 453.9 in another), though alone, back to back, that product moved
     * only 28.6 -> 28.5-28.7 us (one by one 33.2-33.4 -> 31.8-32.6); 33792 x 4096 (2 waves) 31.7 -> 30.7
     * us. Where 4 per SM already fit one wave they lost: 16384 x 2048 (Llama-3.2-1B's gate/up, 512
     * blocks) 9.2 -> 11.5 us, the 1B's tg128 1880 -> 1574; 14336 x 4096 15.5 -> 19.8.
     * MLXN_CUDA_QMV_T2 = 0 forces one tile, 1 / 2 two at 4 / 5 per SM, 3 two-warp blocks (comparisons,
     * tests); MLXN_CUDA_QMV_W2 = 0 keeps the rule without two-warp blocks (comparisons). */
    const cu_stream *c = cu_ctx(s);
    const int64_t tiles = a.glu ? (a.N / 2 + QM_ROWS / 2 - 1) / (QM_ROWS / 2) : (a.N + QM_ROWS - 1) / QM_ROWS;
    const int64_t pairs = (tiles + 1) / 2;
    constexpr int MB5 = W == 4 ? 5 : QM_MIN_BLOCKS_T(W, 2); /* other widths: the one build */
    const int t2 = c->knobs.qmv_t2;
    bool two = t2 == 1 || t2 == 2, five = t2 == 2, warp2 = t2 == 3;
    if (t2 == 0 && W == 4 && tiles >= 6 * c->sms) {
        int b1 = 0, b2 = 0, b5 = 0, bw = 0;
        const char *op = "quantized_matmul";
        *st = cu_occupancy(s, op, qm_kernel_for<G, SDT, W, D, 1>(a), W * 32, 0, &b1);
        if (*st == MLXN_OK) *st = cu_occupancy(s, op, qm_kernel_for<G, SDT, W, 1, 2>(a), W * 32, 0, &b2);
        if (*st == MLXN_OK) *st = cu_occupancy(s, op, qm_kernel_for<G, SDT, W, 1, 2, MB5>(a), W * 32, 0, &b5);
        if (*st == MLXN_OK) *st = cu_occupancy(s, op, qm_kernel_for<G, SDT, 2, 1, 2>(a), 2 * 32, 0, &bw);
        if (*st != MLXN_OK) return true;
        five = b5 > 0 && (qm_wave_fill(pairs, b5, c->sms) >= 0.95 || pairs >= 4 * (int64_t)b5 * c->sms);
        two = five || qm_wave_fill(pairs, b2, c->sms) >= qm_wave_fill(tiles, b1, c->sms) - 0.1;
        const int64_t blocks = two ? pairs : tiles, per_sm = five ? b5 : two ? b2 : b1;
        warp2 = !c->knobs.qmv_w2_off && bw > 0 && blocks > per_sm * c->sms && pairs <= (int64_t)bw * c->sms;
    }
    if (warp2) cu_launch(s, qm_kernel_for<G, SDT, 2, 1, 2>(a), dim3((unsigned)pairs), dim3(2 * 32), 0, a);
    else if (two && five) cu_launch(s, qm_kernel_for<G, SDT, W, 1, 2, MB5>(a), dim3((unsigned)pairs), dim3(W * 32), 0, a);
    else if (two) cu_launch(s, qm_kernel_for<G, SDT, W, 1, 2>(a), dim3((unsigned)pairs), dim3(W * 32), 0, a);
    else cu_launch(s, qm_kernel_for<G, SDT, W, D, 1>(a), dim3((unsigned)tiles), dim3(W * 32), 0, a);
    *st = MLXN_OK;
    return true;
}

#endif
