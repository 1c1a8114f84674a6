/* MLX weight quantization: the formats mlx.core.quantize writes, and a
 * scalar reference quantize/dequantize that is bit-exact with MLX's CPU
 * kernels (the oracle every fast CPU or CUDA kernel is tested against).
 *
 * Layout of a quantized [rows, cols] matrix (cols is the reduction axis):
 *   wq      u32 [rows, cols * bits / 32]  codes, LSB-first bitstream of
 *                                          little-endian uint32 words; a
 *                                          3/5/6-bit code may straddle words
 *   scales      [rows, cols / group]       affine: f32/f16/bf16 (the weight
 *                                          dtype); mxfp4/mxfp8: u8 E8M0;
 *                                          nvfp4: u8 E4M3
 *   biases      [rows, cols / group]       affine only, same dtype as scales
 * Affine:  w = scale * q + bias, q in [0, 2^bits).
 * mxfp4:   w = e2m1(q) * 2^(scale - 127), group 32.
 * mxfp8:   w = e4m3(q) * 2^(scale - 127), group 32 (q is one byte).
 * nvfp4:   w = e2m1(q) * e4m3(scale), group 16; with a global scale g, MLX
 *          multiplies by g / 2688 (2688 = 6 * 448, the largest fp4 code times
 *          the largest e4m3 scale). */
#ifndef MLXN_QUANT_H
#define MLXN_QUANT_H

#include <stdint.h>

#include "mlxn/dtype.h"
#include "mlxn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mlxn_quant_mode {
    MLXN_QUANT_AFFINE = 0,
    MLXN_QUANT_MXFP4,
    MLXN_QUANT_MXFP8,
    MLXN_QUANT_NVFP4,
} mlxn_quant_mode;

/* How a quantized matrix's rows are laid out in memory.
 *   ROWS:    MLX's own (above): row after row.
 *   TILED16: a GPU layout of the same bytes for affine 4-bit weights with
 *            groups of 64 or 128 and 16-bit scales (rows a multiple of 16,
 *            cols of 128): rows in tiles of 16, each tile stored chunk by
 *            chunk (128 codes of a row per chunk), a chunk holding its 16
 *            rows' 64 bytes of codes (wq) and 128 / group scales (and
 *            biases). So the 16 x 128 codes a one-row mat-vec step reads
 *            are 1 KB in one piece, and their scales 32 or 64 bytes. Shapes
 *            and dtypes are unchanged; the element order is
 *            quant_tiled.h's. The CUDA backend reads it (decode measured
 *            5-8% faster end to end on an H100, docs/perf.md); the CPU
 *            backend's kernels do not take it. */
typedef enum mlxn_quant_layout {
    MLXN_QUANT_ROWS = 0,
    MLXN_QUANT_TILED16 = 1,
} mlxn_quant_layout;

typedef struct mlxn_quant_params {
    mlxn_quant_mode mode;
    int bits;           /* affine: 1,2,3,4,5,6,8; mxfp4/nvfp4: 4; mxfp8: 8 */
    int group_size;     /* affine: 32,64,128; mxfp*: 32; nvfp4: 16 */
    float global_scale; /* nvfp4 only; 0 means none, else dequantized values are scaled by g / 2688 */
    mlxn_quant_layout layout; /* ROWS (0), or TILED16 for a matrix tiled on its device (mlxn_quantized_tile) */
} mlxn_quant_params;

/* "affine", "mxfp4", ... and back. */
const char *mlxn_quant_mode_name(mlxn_quant_mode mode);
mlxn_status mlxn_quant_mode_parse(const char *name, mlxn_quant_mode *out);

/* Checks bits/group for the mode, and that cols is a multiple of the group
 * and of the packing (32 / gcd(bits, 32) codes per whole number of words).
 * On failure the message says which. */
mlxn_status mlxn_quant_validate(const mlxn_quant_params *q, int64_t cols);
/* The dtype scales must have for this mode given the weight dtype. */
mlxn_dtype mlxn_quant_scale_dtype(const mlxn_quant_params *q, mlxn_dtype weight_dtype);
/* Number of u32 words per row of wq (cols * bits / 32). */
int64_t mlxn_quant_words_per_row(const mlxn_quant_params *q, int64_t cols);

/* Quantize w [rows, cols] of dtype w_dtype (f32, f16 or bf16) exactly as
 * MLX's CPU kernel does. Outputs: wq [rows, words_per_row], scales and
 * biases [rows, cols/group] of mlxn_quant_scale_dtype(q, w_dtype); biases
 * must be NULL for the fp modes. */
mlxn_status mlxn_quantize(const mlxn_quant_params *q, mlxn_dtype w_dtype, const void *w,
                          int64_t rows, int64_t cols, uint32_t *wq, void *scales, void *biases);

/* Dequantize to out [rows, cols] of out_dtype (f32, f16 or bf16). The
 * arithmetic is MLX's: for f16/bf16 output, scale*q+bias is rounded the way
 * mlx.core.dequantize rounds it, so results are bit-identical. */
mlxn_status mlxn_dequantize(const mlxn_quant_params *q, mlxn_dtype scale_dtype, const uint32_t *wq,
                            const void *scales, const void *biases, int64_t rows, int64_t cols,
                            mlxn_dtype out_dtype, void *out);

/* Whether a [rows, cols] matrix with params q and scales of scale_dtype
 * may take the TILED16 layout: affine, 4 bits, group 64 or 128, bf16 or
 * f16 scales, rows % 16 == 0, cols % 128 == 0. */
int mlxn_quant_tileable(const mlxn_quant_params *q, mlxn_dtype scale_dtype, int64_t rows, int64_t cols);

/* Reorder row-major (ROWS) wq / scales / biases of a tileable [rows, cols]
 * matrix into the TILED16 layout (or back with untile), out of place:
 * the outputs have the inputs' sizes. A matrix that is not tileable is
 * MLXN_ERR_INVALID_ARGUMENT. */
mlxn_status mlxn_quant_tile(const mlxn_quant_params *q, mlxn_dtype scale_dtype, const uint32_t *wq,
                            const void *scales, const void *biases, int64_t rows, int64_t cols, int untile,
                            uint32_t *wq_out, void *scales_out, void *biases_out);

#ifdef __cplusplus
}
#endif
#endif
