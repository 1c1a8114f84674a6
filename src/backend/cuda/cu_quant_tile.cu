/* mlxn_quantized_tile on CUDA: a quantized matrix reordered in place into
 * the TILED16 layout (quant_tiled.h), which the tensor-core mat-vec, the
 * prefill dequantizer and the gathers read (cu_quant.cuh's cu_qrow_*).
 * Each of wq, scales and biases is copied to one stream-ordered scratch
 * (the codes' size, taken before anything moves: running out of memory
 * changes nothing) and scattered back through the layout's index: a pure
 * permutation, so the bits are the host reorder's (mlxn_quant_tile;
 * test_backend_ops compares them). A model does this once per weight at
 * load (weights.c). MLXN_CUDA_TILED=0 declines (the matrices stay in
 * rows), for comparisons, and so does MLXN_CUDA_QMV_MMA=0. */
#include "backend/cuda/cu_quant.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

/* dst[tiled index of (r, w)] = src[r * per_row + w], elements of type E
 * (u32 words of codes, or 16-bit scales and biases: then w is a group and
 * `group` its size). */
template <typename E, bool CODES>
__global__ void tile_kernel(const E *src, E *dst, int64_t rows, int64_t per_row, int64_t cols, int group) {
    const int64_t n = rows * per_row;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / per_row, w = i - r * per_row;
        dst[CODES ? mlxn_tiled_word(r, w, cols) : mlxn_tiled_scale(r, w, cols, group)] = src[i];
    }
}

/* One tensor of the matrix through tmp (scratch of at least its size): copy, then scatter back. */
template <typename E, bool CODES>
static mlxn_status tile_one(mlxn_stream *s, void *tmp, mlxn_tensor *t, int64_t rows, int64_t per_row, int64_t cols,
                            int group) {
    const char *op = "quantized_tile";
    const size_t bytes = (size_t)(rows * per_row) * sizeof(E);
    E *p = (E *)cu_ptr(t);
    MLXN_TRY(cu_check(cudaMemcpyAsync(tmp, p, bytes, cudaMemcpyDeviceToDevice, cu_ctx(s)->s), op, "cudaMemcpyAsync",
                      cu_ctx(s)->index));
    tile_kernel<E, CODES><<<cu_blocks(rows * per_row, 256), 256, 0, cu_ctx(s)->s>>>((const E *)tmp, p, rows, per_row,
                                                                                   cols, group);
    return cu_launched(s, op, "tile_kernel");
}

extern "C" mlxn_status cu_op_quantized_tile(mlxn_stream *s, mlxn_tensor *wq, mlxn_tensor *scales, mlxn_tensor *biases,
                                            const mlxn_quant_params *q) {
    const char *op = "quantized_tile";
    if (cu_ctx(s)->knobs.tiled_off)
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: %s: turned off (MLXN_CUDA_TILED=0)", op);
    /* the layout's mat-vec readers are the tensor-core kernels: with them off, rows (and the f32 kernels) */
    if (cu_ctx(s)->knobs.qmv_mma == 0)
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: %s: the tensor-core mat-vec is off (MLXN_CUDA_QMV_MMA=0)", op);
    MLXN_TRY(cu_begin(s, op));
    const int64_t rows = wq->shape[0], cols = wq->shape[1] * 8, groups = cols / q->group_size;
    /* one scratch for the three (the codes are the largest), taken first: out of memory changes nothing */
    void *tmp = NULL;
    MLXN_TRY(cu_scratch(s, op, (size_t)(rows * cols / 8) * sizeof(uint32_t), &tmp));
    mlxn_status st = tile_one<uint32_t, true>(s, tmp, wq, rows, cols / 8, cols, q->group_size);
    if (st == MLXN_OK) st = tile_one<uint16_t, false>(s, tmp, scales, rows, groups, cols, q->group_size); /* 16-bit */
    if (st == MLXN_OK) st = tile_one<uint16_t, false>(s, tmp, biases, rows, groups, cols, q->group_size);
    cu_scratch_free(s, tmp);
    return st;
}
