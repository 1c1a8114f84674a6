/* The one-row tensor-core mat-vec's instances for MLX affine 2- and 5-bit
 * weights (cu_qmv_mma_bits.cuh), every group size, on the f16 path
 * (cu_qmv_mma.cuh: 4 + q, 32 + q; 5-bit pairs through qm_gather40). */
#include "backend/cuda/cu_qmv_mma_bits.cuh"

bool cu_qmv_mma_bits25(const qmv_args &a, mlxn_stream *s, mlxn_status *st, bool wide) {
    return a.w.bits == 2 ? qb_width<2>(a, s, st, wide) : qb_width<5>(a, s, st, wide);
}
