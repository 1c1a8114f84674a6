/* The one definition of the GGML block formats we read (Q4_0, Q4_1, Q8_0,
 * Q4_K, Q5_K, Q6_K; F32/F16/BF16 are plain arrays), shared by the scalar
 * reference (ggml_blocks.c), the fast CPU kernels and (through nvcc) the
 * CUDA kernels. Like quant_layout.h it is free of libc: structs, sizes,
 * and static inline bit helpers only (MLXN_HD marks them for nvcc).
 *
 * Layouts (public facts of the GGUF format; f16 fields are stored as raw
 * IEEE half bits in a uint16_t):
 *   Q4_0  32 values: d; 16 bytes of 4-bit codes. Value j < 16 is the low
 *         nibble of qs[j], value j + 16 the high nibble. x = d * (q - 8).
 *   Q4_1  32 values: d, m; codes as Q4_0. x = d * q + m.
 *   Q8_0  32 values: d; 32 signed bytes. x = d * q.
 *   Q4_K  256 values = 8 sub-blocks of 32: d, dmin; 12 bytes holding eight
 *         6-bit scales and eight 6-bit mins (mlxn_q4k_scale_min); 128
 *         bytes of codes: chunk c (0..3) is qs[32c .. 32c+31], whose low
 *         nibbles are sub-block 2c and high nibbles sub-block 2c+1.
 *         x = (d * sc) * q - (dmin * m).
 *   Q5_K  as Q4_K plus qh[32]: bit s of qh[l] is the fifth bit (value 16)
 *         of element l of sub-block s.
 *   Q6_K  256 values = 16 groups of 16 with signed 8-bit scales: ql[128],
 *         qh[64], scales[16], d. Half h (0..1) covers values 128h ..
 *         128h+127; within it, value 32t + l (t 0..3, l 0..31) takes its
 *         low 4 bits from ql[64h + l + 32(t&1)] (low nibble for t < 2,
 *         high for t >= 2) and its top 2 bits from qh[32h + l] >> 2t.
 *         x = (d * scales[v / 16]) * (q - 32). */
#ifndef MLXN_GGML_BLOCKS_H
#define MLXN_GGML_BLOCKS_H

#include <stdint.h>

#ifndef MLXN_HD
#define MLXN_HD
#endif

#define MLXN_QK4_0 32
#define MLXN_QK4_1 32
#define MLXN_QK8_0 32
#define MLXN_QK_K 256
#define MLXN_K_SCALE_SIZE 12

typedef struct mlxn_block_q4_0 {
    uint16_t d;                      /* f16 scale */
    uint8_t qs[MLXN_QK4_0 / 2];      /* [16] two codes per byte */
} mlxn_block_q4_0;

typedef struct mlxn_block_q4_1 {
    uint16_t d;                      /* f16 scale */
    uint16_t m;                      /* f16 minimum */
    uint8_t qs[MLXN_QK4_1 / 2];      /* [16] */
} mlxn_block_q4_1;

typedef struct mlxn_block_q8_0 {
    uint16_t d;                      /* f16 scale */
    int8_t qs[MLXN_QK8_0];           /* [32] */
} mlxn_block_q8_0;

typedef struct mlxn_block_q4_K {
    uint16_t d;                      /* f16 super-block scale of the scales */
    uint16_t dmin;                   /* f16 super-block scale of the mins */
    uint8_t scales[MLXN_K_SCALE_SIZE]; /* [12] 8 scales + 8 mins, 6 bits each */
    uint8_t qs[MLXN_QK_K / 2];       /* [128] */
} mlxn_block_q4_K;

typedef struct mlxn_block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[MLXN_K_SCALE_SIZE]; /* [12] */
    uint8_t qh[MLXN_QK_K / 8];       /* [32] fifth bits */
    uint8_t qs[MLXN_QK_K / 2];       /* [128] low 4 bits */
} mlxn_block_q5_K;

typedef struct mlxn_block_q6_K {
    uint8_t ql[MLXN_QK_K / 2];       /* [128] low 4 bits */
    uint8_t qh[MLXN_QK_K / 4];       /* [64] high 2 bits */
    int8_t scales[MLXN_QK_K / 16];   /* [16] */
    uint16_t d;                      /* f16 */
} mlxn_block_q6_K;

_Static_assert(sizeof(mlxn_block_q4_0) == 18, "q4_0 block is 18 bytes");
_Static_assert(sizeof(mlxn_block_q4_1) == 20, "q4_1 block is 20 bytes");
_Static_assert(sizeof(mlxn_block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(mlxn_block_q4_K) == 144, "q4_K block is 144 bytes");
_Static_assert(sizeof(mlxn_block_q5_K) == 176, "q5_K block is 176 bytes");
_Static_assert(sizeof(mlxn_block_q6_K) == 210, "q6_K block is 210 bytes");

/* Scale and min (6 bits each) of sub-block j (0..7) of a Q4_K/Q5_K block.
 * Bytes 0-3 hold scales 0-3 in their low 6 bits, bytes 4-7 mins 0-3; the
 * spare top 2 bits of bytes 0-3 / 4-7 are the high bits of scales 4-7 /
 * mins 4-7, whose low 4 bits sit in bytes 8-11 (scale low nibble, min
 * high nibble). */
static inline MLXN_HD void mlxn_q4k_scale_min(const uint8_t *scales /* [12] */, int j, uint8_t *sc,
                                              uint8_t *m) {
    if (j < 4) {
        *sc = (uint8_t)(scales[j] & 63);
        *m = (uint8_t)(scales[j + 4] & 63);
    } else {
        *sc = (uint8_t)((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4));
        *m = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
    }
}

/* ---- scalar reference (ggml_blocks.c) ----
 * n is the number of values and must be a multiple of the block size; the
 * blocks may sit at any address (they are copied before use). */
void mlxn_ggml_dequant_f16(const void *src /* [n] f16 */, float *dst /* [n] */, int64_t n);
void mlxn_ggml_dequant_bf16(const void *src /* [n] bf16 */, float *dst /* [n] */, int64_t n);
void mlxn_ggml_dequant_q4_0(const void *src /* [n/32] blocks */, float *dst /* [n] */, int64_t n);
void mlxn_ggml_dequant_q4_1(const void *src /* [n/32] blocks */, float *dst /* [n] */, int64_t n);
void mlxn_ggml_dequant_q8_0(const void *src /* [n/32] blocks */, float *dst /* [n] */, int64_t n);
void mlxn_ggml_dequant_q4_K(const void *src /* [n/256] blocks */, float *dst /* [n] */, int64_t n);
void mlxn_ggml_dequant_q5_K(const void *src /* [n/256] blocks */, float *dst /* [n] */, int64_t n);
void mlxn_ggml_dequant_q6_K(const void *src /* [n/256] blocks */, float *dst /* [n] */, int64_t n);

/* Quantize with ggml's reference rounding (the scale from the value of
 * largest magnitude / the range, codes truncated after adding one half,
 * Q8_0 rounded half away from zero). */
void mlxn_ggml_quant_q4_0(const float *src /* [n] */, void *dst /* [n/32] blocks */, int64_t n);
void mlxn_ggml_quant_q4_1(const float *src /* [n] */, void *dst /* [n/32] blocks */, int64_t n);
void mlxn_ggml_quant_q8_0(const float *src /* [n] */, void *dst /* [n/32] blocks */, int64_t n);

/* Dequantize n values of ggml type id `type` (any type above, f32
 * included); returns 0, or -1 when the type is not one of them. */
int mlxn_ggml_dequant(int type, const void *src, float *dst /* [n] */, int64_t n);

#endif
