/* The one-row tensor-core mat-vec (qmv_mma_kernel, cu_qmv_mma.cuh) for
 * MLX affine 3-, 6- and 8-bit weights, 4-bit ones with groups of 32, and
 * mxfp4 and nvfp4 ones, by rows: decode's product for the other formats,
 * with the same fused norm, residual, gated activation and rope_kv
 * epilogues as 4-bit. Why: these widths ran the f32
 * streaming kernel (cu_qmv_fast.cu), which decodes 3- and 6-bit codes (and
 * mxfp4's, through a byte-permute table) one at a time (8-43% of the copy
 * rate on an H200, docs/perf.md), and their models lost every fusion of
 * the decode step. The f16 path (at QM_MXFP4: 8-bit, 4-bit groups of 32,
 * mxfp4, nvfp4): the 4-bit formats read 4 words a lane, so 3 chunks in
 * flight with 8 warps.
 * Its own file so that nvcc builds these 90 instances beside cu_qmv_mma.cu
 * (the two are the longest compiles of the library).
 * Launch: the 4-bit rule's two main shapes (qm_launch_one): 8 warps where
 * K has 64 chunks or more or the row tiles need at most two blocks per SM,
 * else 4 warps; both at 128 registers a thread (a 6-bit chunk is 1.5 times
 * a 4-bit one's words, an 8-bit one twice: 8-bit keeps 2 chunks in flight
 * per warp where 4-bit keeps 3; ptxas: 96-128 registers, no spills). No
 * blocks of two row tiles, no 16- or 6-warp launch (compile time). */
#include "backend/cuda/cu_qmv_mma.cuh"

namespace {

template <int BITS, int G, int SDT, int W, int D, int MB>
bool qb_launch(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    const int64_t tiles = a.glu ? (a.N / 2 + QM_ROWS / 2 - 1) / (QM_ROWS / 2) : (a.N + QM_ROWS - 1) / QM_ROWS;
    cu_launch(s, qm_kernel_for<G, SDT, W, D, 1, MB, BITS>(a), dim3((unsigned)tiles), dim3(W * 32), 0, a);
    *st = MLXN_OK;
    return true;
}

template <int BITS, int W, int D, int MB>
bool qb_pick(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    if constexpr (qm_fp4<BITS>()) {
        return qb_launch<BITS, 4, MLXN_DTYPE_U8, W, D, MB>(a, s, st); /* the f16 path (G 4), byte scales */
    } else if constexpr (BITS == 4) { /* groups of 32 (cu_qmv_mma.cu has the others): the f16 path */
        return a.w.sdt == MLXN_DTYPE_BF16 ? qb_launch<BITS, 4, MLXN_DTYPE_BF16, W, D, MB>(a, s, st)
                                         : qb_launch<BITS, 4, MLXN_DTYPE_F16, W, D, MB>(a, s, st);
    } else {
        const bool bf = a.w.sdt == MLXN_DTYPE_BF16;
        if (a.w.group == 64)
            return bf ? qb_launch<BITS, 2, MLXN_DTYPE_BF16, W, D, MB>(a, s, st) : qb_launch<BITS, 2, MLXN_DTYPE_F16, W, D, MB>(a, s, st);
        return bf ? qb_launch<BITS, 1, MLXN_DTYPE_BF16, W, D, MB>(a, s, st) : qb_launch<BITS, 1, MLXN_DTYPE_F16, W, D, MB>(a, s, st);
    }
}

template <int BITS>
bool qb_width(const qmv_args &a, mlxn_stream *s, mlxn_status *st, bool wide) {
    if (wide) return qb_pick<BITS, 8, BITS == 8 ? 2 : 3, 2>(a, s, st);
    return qb_pick<BITS, 4, 2, 4>(a, s, st);
}

} // namespace

bool cu_qmv_mma_bits(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    const int variant = cu_ctx(s)->knobs.qmv_mma;
    const int64_t tiles = (a.N + QM_ROWS - 1) / QM_ROWS;
    const bool wide = variant == 2 || (variant != 3 && (a.K / QM_CHUNK >= 64 || tiles <= 2 * cu_ctx(s)->sms));
    if (a.w.mode == MLXN_QUANT_MXFP4) return qb_width<QM_MXFP4>(a, s, st, wide);
    if (a.w.mode == MLXN_QUANT_NVFP4) return qb_width<QM_NVFP4>(a, s, st, wide);
    switch (a.w.bits) {
    case 3: return qb_width<3>(a, s, st, wide);
    case 4: return qb_width<4>(a, s, st, wide); /* (groups of 32) */
    case 6: return qb_width<6>(a, s, st, wide);
    case 8: return qb_width<8>(a, s, st, wide);
    default: return false;
    }
}
