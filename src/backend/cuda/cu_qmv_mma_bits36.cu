/* The one-row tensor-core mat-vec's instances for MLX affine 3- and 6-bit
 * weights (cu_qmv_mma_bits.cuh): groups of 64 and 128 on the bf16 path
 * (8 + q, 64 + q), groups of 32 on the f16 path (cu_qmv_mma.cuh). */
#include "backend/cuda/cu_qmv_mma_bits.cuh"

bool cu_qmv_mma_bits36(const qmv_args &a, mlxn_stream *s, mlxn_status *st, bool wide) {
    return a.w.bits == 3 ? qb_width<3>(a, s, st, wide) : qb_width<6>(a, s, st, wide);
}
