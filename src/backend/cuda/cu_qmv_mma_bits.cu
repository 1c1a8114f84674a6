/* The one-row tensor-core mat-vec (qmv_mma_kernel, cu_qmv_mma.cuh) for
 * every format but MLX affine 4-bit with groups of 64 or 128: decode's
 * product for the other formats, with the same fused norm, residual, gated
 * activation and rope_kv epilogues as 4-bit. Why: these formats ran the
 * f32 streaming kernel (cu_qmv_fast.cu), which decodes 3-, 5- and 6-bit
 * codes (and mxfp4's, through a byte-permute table) one at a time (8-43% of
 * the copy rate on an H200, docs/perf.md), and their models lost every
 * fusion of the decode step.
 * This file: the launch's entry (cu_qmv_mma_bits), and the instances for
 * mxfp4, nvfp4, affine 4-bit with groups of 32 and 8-bit (the f16 path, at
 * QM_MXFP4; the 4-bit formats read 4 words a lane, so 3 chunks in flight
 * with 8 warps); cu_qmv_mma_bits.cuh says how they launch. */
#include "backend/cuda/cu_qmv_mma_bits.cuh"

bool cu_qmv_mma_bits(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    const int variant = cu_ctx(s)->knobs.qmv_mma;
    const int64_t tiles = (a.N + QM_ROWS - 1) / QM_ROWS;
    const bool wide = variant == 2 || (variant != 3 && (a.K / QM_CHUNK >= 64 || tiles <= 2 * cu_ctx(s)->sms));
    if (a.w.mode == MLXN_QUANT_MXFP4) return qb_width<QM_MXFP4>(a, s, st, wide);
    if (a.w.mode == MLXN_QUANT_NVFP4) return qb_width<QM_NVFP4>(a, s, st, wide);
    switch (a.w.bits) {
    case 2:
    case 5: return cu_qmv_mma_bits25(a, s, st, wide);
    case 3:
    case 6: return cu_qmv_mma_bits36(a, s, st, wide);
    case 4: return qb_width<4>(a, s, st, wide); /* (groups of 32) */
    case 8: return qb_width<8>(a, s, st, wide);
    default: return false;
    }
}
