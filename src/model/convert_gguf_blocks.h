/* GGML blocks -> MLX affine rows without loss (convert_gguf_blocks.c). */
#ifndef MLXN_MODEL_CONVERT_GGUF_BLOCKS_H
#define MLXN_MODEL_CONVERT_GGUF_BLOCKS_H

#include <stdbool.h>
#include <stdint.h>

/* 1 for the ggml types with an exact MLX affine form (group 32): Q4_0,
 * Q4_1, Q8_0, Q4_K, Q5_K. */
bool cvg_block_exact(int type);
/* Its MLX bits (4, 8 or 5). */
int cvg_block_bits(int type);
/* Whether its scales must be f32 (the K-quants). */
bool cvg_block_f32_scales(int type);
/* Q4_0/Q4_1/Q8_0: whether every scale and bias of n values at src fits
 * f16 (-8d and -128d may overflow where d does not). */
bool cvg_f16_fits(int type, const void *src, int64_t n);
/* One row of n values (a multiple of the block size) of an exact type:
 * wq [n * bits / 32] (zeroed by the caller), scales and biases [n / 32]
 * of f16 (f32 = false) or f32. */
void cvg_block_row(int type, const void *src, int64_t n, uint32_t *wq, void *scales, void *biases, bool f32);

#endif
