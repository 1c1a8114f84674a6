/* Shared by the CUDA TurboQuant kernels (cu_tq_append.cu, cu_tq_attention.cu,
 * cu_tq_dequant.cu): the format of src/quant/tq_layout.h compiled for the
 * device (MLXN_HD = __host__ __device__), the Lloyd-Max codebooks of
 * src/quant/tq_codebooks.h as a __constant__ table, the block-wide FWHT in
 * shared memory, and the position a kernel reads (host int or i32 [1]
 * device tensor, so a captured graph can replay a step).
 *
 * Exactness. Append and dequantize reproduce the CPU reference
 * (backend/cpu/tq_ref.c) bit for bit: the same FWHT stages (each butterfly
 * output depends on the same two operands as on the CPU), the same
 * products, and explicit round-to-nearest intrinsics (__fmul_rn,
 * __fadd_rn, __fdiv_rn, __fsqrt_rn) wherever nvcc would otherwise fuse a
 * multiply into an add (the CPU build never contracts: ISO C11, no FMA). */
#ifndef MLXN_CU_TQ_CUH
#define MLXN_CU_TQ_CUH

#define MLXN_HD __host__ __device__
#include "backend/cuda/cuda_common.cuh"
#include "quant/tq_codebooks.h"
#include "quant/tq_layout.h"

/* Every width's levels and boundaries (one copy per translation unit: a
 * few KB of constant memory). */
struct cu_tq_books {
    float l2[4], l3[8], l4[16], l5[32], l6[64], l7[128], l8[256];
    float b2[3], b3[7], b4[15], b5[31], b6[63], b7[127], b8[255];
};
/* The initializer of a cu_tq_books (the constant table below; a kernel
 * that looks up many different indices at once keeps a global copy). */
#define CU_TQ_BOOKS_INIT                                                                                         \
    {                                                                                                            \
        MLXN_TQ_LEVELS_2, MLXN_TQ_LEVELS_3, MLXN_TQ_LEVELS_4, MLXN_TQ_LEVELS_5, MLXN_TQ_LEVELS_6, MLXN_TQ_LEVELS_7, \
            MLXN_TQ_LEVELS_8, MLXN_TQ_BOUNDS_2, MLXN_TQ_BOUNDS_3, MLXN_TQ_BOUNDS_4, MLXN_TQ_BOUNDS_5,               \
            MLXN_TQ_BOUNDS_6, MLXN_TQ_BOUNDS_7, MLXN_TQ_BOUNDS_8,                                                  \
    }
static __constant__ cu_tq_books cu_tq_cb = CU_TQ_BOOKS_INIT;

/* Level i of width bits (direct indexing of the constant arrays). */
__device__ __forceinline__ float cu_tq_level(int bits, int i) {
    switch (bits) {
    case 2: return cu_tq_cb.l2[i];
    case 3: return cu_tq_cb.l3[i];
    case 4: return cu_tq_cb.l4[i];
    case 5: return cu_tq_cb.l5[i];
    case 6: return cu_tq_cb.l6[i];
    case 7: return cu_tq_cb.l7[i];
    default: return cu_tq_cb.l8[i];
    }
}

/* Copy width bits' levels into shared memory lv [2^bits] (whole block;
 * the caller syncs). Lookups by data-dependent codes go to shared memory:
 * the constant cache serializes lanes that read different addresses. */
__device__ __forceinline__ void cu_tq_load_levels(int bits, float *lv) {
    for (int i = threadIdx.x; i < (1 << bits); i += blockDim.x) lv[i] = cu_tq_level(bits, i);
}

/* In-place unnormalized FWHT of y [n] in shared memory by the whole block,
 * stage by stage exactly as mlxn_tq_fwht (so bit-identical to it). The
 * caller syncs before (y written) and this syncs after every stage. */
__device__ __forceinline__ void cu_tq_fwht(float *y, int n) {
    for (int h = 1; h < n; h <<= 1) {
        for (int p = threadIdx.x; p < n / 2; p += blockDim.x) {
            const int j = (p / h) * 2 * h + (p % h);
            const float a = y[j], b = y[j + h];
            y[j] = __fadd_rn(a, b);
            y[j + h] = __fsub_rn(a, b);
        }
        __syncthreads();
    }
}

/* In-place unnormalized FWHT of one vector of 32 E elements held by a
 * warp, lane l holding elements 32 j + l (j < E; interleaved so that loads
 * and stores of a row are coalesced), in the CPU's stage order (so
 * bit-identical to mlxn_tq_fwht): strides 1..16 across lanes by shuffles
 * (the lane with that bit clear keeps a + b, the other a - b, a being the
 * lower dim's value), then strides 32, 64, ... inside the lane. No block
 * barrier (why: the block-wide cu_tq_fwht syncs after each of log2(D)
 * stages). */
template <int E>
__device__ __forceinline__ void cu_tq_fwht_warp(float *y, int lane) {
#pragma unroll
    for (int m = 1; m < 32; m <<= 1) {
        const bool upper = lane & m;
#pragma unroll
        for (int j = 0; j < E; j++) {
            const float o = __shfl_xor_sync(0xffffffffu, y[j], m);
            y[j] = upper ? __fsub_rn(o, y[j]) : __fadd_rn(y[j], o);
        }
    }
#pragma unroll
    for (int hh = 1; hh < E; hh <<= 1)
#pragma unroll
        for (int j = 0; j < E; j++)
            if (!(j & hh)) {
                const float a = y[j], b = y[j + hh];
                y[j] = __fadd_rn(a, b);
                y[j + hh] = __fsub_rn(a, b);
            }
}

/* 1 / sqrt(D) rounded as the CPU computes it: 1.0f / sqrtf((float)D). */
__device__ __forceinline__ float cu_tq_rsqrt_d(int D) { return __fdiv_rn(1.0f, __fsqrt_rn((float)D)); }

/* The position of the first token: the device tensor when given, else the
 * host value. */
__device__ __forceinline__ int64_t cu_tq_pos(const int32_t *pos_t, int64_t pos) { return pos_t ? (int64_t)*pos_t : pos; }

#endif
