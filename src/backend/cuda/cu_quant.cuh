/* Quantized-matrix helpers shared by the CUDA gather and matmul kernels:
 * the matrix as kernels read it and the float-exact scalar weight decode
 * (layout and small-float decoders from quant/quant_layout.h, the one
 * definition of the format, compiled here for host and device). */
#ifndef MLXN_CU_QUANT_CUH
#define MLXN_CU_QUANT_CUH

#include "backend/cuda/cuda_common.cuh"

#ifndef MLXN_HD
#define MLXN_HD __host__ __device__
#endif
#include "quant/quant_layout.h"
#include "quant/quant_tiled.h"

/* A quantized [rows, cols] matrix, quantized along cols. */
typedef struct cu_qmat {
    const uint32_t *wq; int64_t wq_st;  /* [rows, wq_st] u32 codes */
    const void *sc; int64_t sc_st;      /* [rows, sc_st] f32/f16/bf16 (affine) or u8 (e8m0 / e4m3) */
    const void *bi; int64_t bi_st;      /* [rows, bi_st], affine only */
    int sdt, mode, bits, group;
    float gscale;                       /* nvfp4: global_scale / 2688 as MLX applies it, else 1 */
    int tiled;                          /* the TILED16 layout (quant_tiled.h; contiguous, *_st unused) */
    int64_t cols;                       /* codes per row */
} cu_qmat;

/* Which of wq, scales, biases (0, 1, 2) has a last axis that is not
 * unit-stride, or -1: the kernels' condition, checked quietly. */
static inline int cu_qmat_strided(const mlxn_tensor *wq, const mlxn_tensor *scales, const mlxn_tensor *biases) {
    const mlxn_tensor *ts[3] = {wq, scales, biases};
    for (int i = 0; i < 3; i++)
        if (ts[i] && ts[i]->shape[1] > 1 && ts[i]->strides[1] != 1) return i;
    return -1;
}

/* From validated op arguments; MLXN_ERR_SHAPE when a last axis is not unit-stride. */
static inline mlxn_status cu_qmat_of(const char *op, const mlxn_tensor *wq, const mlxn_tensor *scales,
                                     const mlxn_tensor *biases, const mlxn_quant_params *q, cu_qmat *m) {
    const char *names[3] = {"wq", "scales", "biases"};
    const int bad = cu_qmat_strided(wq, scales, biases);
    if (bad >= 0) return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s must have a unit stride along its last axis", op, names[bad]);
    m->wq = (const uint32_t *)cu_ptr(wq);
    m->wq_st = wq->strides[0];
    m->sc = cu_ptr(scales);
    m->sc_st = scales->strides[0];
    m->bi = biases ? cu_ptr(biases) : NULL;
    m->bi_st = biases ? biases->strides[0] : 0;
    m->sdt = (int)scales->dtype;
    m->mode = (int)q->mode;
    m->bits = q->bits;
    m->group = q->group_size;
    m->gscale = (q->mode == MLXN_QUANT_NVFP4 && q->global_scale > 0.0f) ? q->global_scale / 2688.0f : 1.0f;
    m->cols = wq->shape[1] * 32 / q->bits;
    m->tiled = q->layout == MLXN_QUANT_TILED16;
    if (m->tiled && (!mlxn_tensor_is_contiguous(wq) || !mlxn_tensor_is_contiguous(scales) ||
                     (biases && !mlxn_tensor_is_contiguous(biases))))
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: a tiled matrix's wq, scales and biases must be contiguous", op);
    return MLXN_OK;
}

/* Where row r's first chunk (128 codes) sits: its codes' word offset and
 * its scales' (and biases') element offset; chunk c is cu_qchunk_words(m)
 * * c words and cu_qchunk_scales(m) * c elements further on. In the
 * TILED16 layout (4-bit, groups of 64 / 128) a tile's chunk holds 16 rows
 * of 16 words and of 128 / group scales (quant_tiled.h); by rows, a row's
 * chunks follow each other. */
__host__ __device__ __forceinline__ int64_t cu_qrow_words(const cu_qmat &m, int64_t r) {
    return m.tiled ? mlxn_tiled_word(r, 0, m.cols) : r * m.wq_st;
}
__host__ __device__ __forceinline__ int64_t cu_qrow_scales(const cu_qmat &m, int64_t r) {
    return m.tiled ? mlxn_tiled_scale(r, 0, m.cols, m.group) : r * m.sc_st;
}
__host__ __device__ __forceinline__ int cu_qchunk_words(const cu_qmat &m) {
    return m.tiled ? MLXN_TILE_ROWS * MLXN_TILE_WORDS : 4 * m.bits; /* by rows: 128 codes of m.bits bits */
}
__host__ __device__ __forceinline__ int cu_qchunk_scales(const cu_qmat &m) {
    return (m.tiled ? MLXN_TILE_ROWS : 1) * (MLXN_TILE_CODES / m.group);
}

/* Group scale of (r, g): decoded, nvfp4's global scale folded in. */
__device__ __forceinline__ float cu_q_scale(const cu_qmat &a, int64_t r, int64_t g) {
    int64_t i = a.tiled ? mlxn_tiled_scale(r, g, a.cols, a.group) : r * a.sc_st + g;
    switch (a.mode) {
    case MLXN_QUANT_AFFINE: return cu_load(a.sc, a.sdt, i);
    case MLXN_QUANT_NVFP4: return mlxn_e4m3_to_f32(((const uint8_t *)a.sc)[i]) * a.gscale;
    default: return mlxn_e8m0_to_f32(((const uint8_t *)a.sc)[i]);
    }
}

/* Weight (r, c) exactly as the CPU reference: scale * q + bias (two
 * roundings, no FMA) or fp(q) * scale. */
__device__ __forceinline__ float cu_q_weight(const cu_qmat &a, int64_t r, int64_t c) {
    /* tiled (4-bit): code c is nibble c % 8 of word c / 8 */
    uint32_t q = a.tiled ? (a.wq[mlxn_tiled_word(r, c / 8, a.cols)] >> (4 * (c % 8))) & 15u
                         : mlxn_unpack_code(a.wq + r * a.wq_st, c, a.bits);
    int64_t g = c / a.group;
    float s = cu_q_scale(a, r, g);
    switch (a.mode) {
    case MLXN_QUANT_AFFINE:
        return __fadd_rn(__fmul_rn(s, (float)q),
                         cu_load(a.bi, a.sdt, a.tiled ? mlxn_tiled_scale(r, g, a.cols, a.group) : r * a.bi_st + g));
    case MLXN_QUANT_MXFP8: return mlxn_e4m3_to_f32((uint8_t)q) * s;
    default: return mlxn_e2m1_to_f32(q) * s;
    }
}

#endif
