/* The launch of the one-row tensor-core mat-vec (qmv_mma_kernel,
 * cu_qmv_mma.cuh) for every format but affine 4-bit with groups of 64 or
 * 128: its instances, by code width, in cu_qmv_mma_bits.cu (mxfp4, nvfp4,
 * 4-bit groups of 32, 8-bit), cu_qmv_mma_bits36.cu (3-, 6-bit) and
 * cu_qmv_mma_bits25.cu (2-, 5-bit). Why three files: each holds 88-96
 * kernel instances (groups of 32 also with f32 scales, and an f32 norm
 * weight's variant), the longest compiles of the library, and a parallel
 * build runs them side by side.
 * Launch: the 4-bit rule's two main shapes (qm_launch_one): 8 warps where
 * K has 64 chunks or more or the row tiles need at most two blocks per SM
 * (wide), else 4 warps; both at 128 registers a thread (a 6-bit chunk is
 * 1.5 times a 4-bit one's words, an 8-bit one twice: 8-bit keeps 2 chunks
 * in flight per warp where 4-bit keeps 3; ptxas: 96-128 registers, no
 * spills). No blocks of two row tiles, no 16- or 6-warp launch (compile
 * time). */
#ifndef MLXN_CU_QMV_MMA_BITS_CUH
#define MLXN_CU_QMV_MMA_BITS_CUH

#include "backend/cuda/cu_qmv_mma.cuh"

template <int BITS, int G, int SDT, int W, int D, int MB>
static bool qb_launch(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    const int64_t tiles = a.glu ? (a.N / 2 + QM_ROWS / 2 - 1) / (QM_ROWS / 2) : (a.N + QM_ROWS - 1) / QM_ROWS;
    /* (groups of 32, 4 a chunk: an f32 norm weight's variant too; GGUF imports carry f32 norms) */
    cu_launch(s, qm_kernel_for<G, SDT, W, D, 1, MB, BITS, G == 4>(a), dim3((unsigned)tiles), dim3(W * 32), 0, a);
    *st = MLXN_OK;
    return true;
}

/* G, the groups a chunk holds, from the group size: 32 -> 4 (the f16
 * path), 64 -> 2, 128 -> 1; 16-bit scales (fp4: bytes), or f32 ones with
 * groups of 32 (what GGUF Q4_K / Q5_K imports become) */
template <int BITS, int W, int D, int MB>
static bool qb_pick(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    if constexpr (qm_fp4<BITS>()) {
        return qb_launch<BITS, 4, MLXN_DTYPE_U8, W, D, MB>(a, s, st); /* the f16 path (G 4), byte scales */
    } else {
        const bool bf = a.w.sdt == MLXN_DTYPE_BF16;
        if (a.w.group == 32) {
            if (a.w.sdt == MLXN_DTYPE_F32) return qb_launch<BITS, 4, MLXN_DTYPE_F32, W, D, MB>(a, s, st);
            return bf ? qb_launch<BITS, 4, MLXN_DTYPE_BF16, W, D, MB>(a, s, st) : qb_launch<BITS, 4, MLXN_DTYPE_F16, W, D, MB>(a, s, st);
        }
        if constexpr (BITS != 4) { /* (4-bit groups of 64 and 128: cu_qmv_mma.cu) */
            if (a.w.group == 64)
                return bf ? qb_launch<BITS, 2, MLXN_DTYPE_BF16, W, D, MB>(a, s, st) : qb_launch<BITS, 2, MLXN_DTYPE_F16, W, D, MB>(a, s, st);
            return bf ? qb_launch<BITS, 1, MLXN_DTYPE_BF16, W, D, MB>(a, s, st) : qb_launch<BITS, 1, MLXN_DTYPE_F16, W, D, MB>(a, s, st);
        }
        return false;
    }
}

/* The launch for codes of BITS (or QM_MXFP4 / QM_NVFP4): 8 warps with 3
 * chunks in flight (8-bit: 2) where wide, else 4 warps with 2 */
template <int BITS>
static bool qb_width(const qmv_args &a, mlxn_stream *s, mlxn_status *st, bool wide) {
    if (wide) return qb_pick<BITS, 8, BITS == 8 ? 2 : 3, 2>(a, s, st);
    return qb_pick<BITS, 4, 2, 4>(a, s, st);
}

/* The widths of the other two files (bits: 3 or 6; 2 or 5) */
bool cu_qmv_mma_bits36(const qmv_args &a, mlxn_stream *s, mlxn_status *st, bool wide);
bool cu_qmv_mma_bits25(const qmv_args &a, mlxn_stream *s, mlxn_status *st, bool wide);

#endif
