/* The one definition of the TILED16 layout (mlxn/quant.h) of an affine
 * 4-bit matrix with groups of 64 or 128: where row r's pieces sit. Shared
 * by the host's reorder (quant_tiled.c) and, through nvcc, the CUDA
 * kernels that read it. Static inline and free of libc; a .cu file may
 * define MLXN_HD as __host__ __device__ first.
 *
 * Rows come in tiles of 16 and columns in chunks of 128 codes (16 u32
 * words of a row). The matrix is stored tile by tile, each tile chunk by
 * chunk; a chunk holds its 16 rows' codes in row order, and their scales
 * with rows i and i + 8 side by side (the two rows one mma lane holds):
 *   wq:     [rows / 16][cols / 128][16 rows][16 words]
 *   scales: [rows / 16][cols / 128][8 rows i][2: row i, row i + 8][128 / group]
 *   (biases alike)
 * Why: a one-row mat-vec step reads a tile's chunk (16 rows x 128 codes)
 * in one warp; stored by rows, each of its loads touched 8 rows' lines
 * (codes 1 KB apart at K = 2048, scales 64 B apart), stored this way a
 * warp's 16-byte loads read 512 contiguous bytes, and a lane's scales of
 * both its rows sit in one 8- (or 4-) byte piece. (The mat-vecs now load
 * each row's scales on their own: whether a tile's halves are one stored
 * tile is known only at run time, and choosing the paired load there cost
 * more instructions than it saved; cu_qmv_mma.cu.) */
#ifndef MLXN_QUANT_TILED_H
#define MLXN_QUANT_TILED_H

#include <stdint.h>

#ifndef MLXN_HD
#define MLXN_HD
#endif

enum { MLXN_TILE_ROWS = 16, MLXN_TILE_CODES = 128, MLXN_TILE_WORDS = 16 /* u32 words of a row's chunk */ };

/* The u32 index in the tiled wq of word w (0 <= w < cols / 8) of row r. */
static inline MLXN_HD int64_t mlxn_tiled_word(int64_t r, int64_t w, int64_t cols) {
    const int64_t nch = cols / MLXN_TILE_CODES;
    return ((r / MLXN_TILE_ROWS) * nch + w / MLXN_TILE_WORDS) * (MLXN_TILE_ROWS * MLXN_TILE_WORDS) +
           (r % MLXN_TILE_ROWS) * MLXN_TILE_WORDS + w % MLXN_TILE_WORDS;
}

/* The element index in the tiled scales (and biases) of group j (0 <= j <
 * cols / group) of row r. */
static inline MLXN_HD int64_t mlxn_tiled_scale(int64_t r, int64_t j, int64_t cols, int group) {
    const int64_t nch = cols / MLXN_TILE_CODES, gpc = MLXN_TILE_CODES / group; /* groups per chunk */
    const int64_t slot = (r % 8) * 2 + (r % MLXN_TILE_ROWS) / 8;          /* rows i, i + 8 side by side */
    return ((r / MLXN_TILE_ROWS) * nch + j / gpc) * (MLXN_TILE_ROWS * gpc) + slot * gpc + j % gpc;
}

#endif
