/* Private interface between the CPU dense matmul driver (matmul.c) and its
 * kernels: the scalar reference (matmul_ref.c) and the per-ISA SIMD kernels
 * (gemm_avx2.c, gemm_avx512.c).
 *
 * Every product is seen as out[M, N] = X[M, K] @ B[K, N] where B is a
 * logical view of W with element strides (rsb, csb): W [N, K] transposed
 * gives rsb = w.strides[1], csb = w.strides[0]; W [K, N] gives rsb =
 * w.strides[0], csb = w.strides[1]. X rows are f32 with unit stride along K
 * (the driver copies X when it is not); out is contiguous f32 [M, N]. */
#ifndef MLXN_CPU_MATMUL_KERNELS_H
#define MLXN_CPU_MATMUL_KERNELS_H

#include <stdint.h>

#include "mlxn/dtype.h"

typedef struct mm_problem {
    int64_t M, K, N;
    const float *const *xrows; /* [M] pointers to rows of X, each [K] f32, unit stride */
    const void *w;             /* element (0, 0) of W */
    mlxn_dtype wdt;            /* f32, f16 or bf16 */
    int64_t rsb, csb;          /* strides (elements of W) of B[k][n] along k and along n */
    float *out;                /* [M, N] contiguous */
} mm_problem;

/* B[k][n] as f32 (any dtype, any strides). */
static inline float mm_load_b(const mm_problem *p, int64_t k, int64_t n) {
    int64_t i = k * p->rsb + n * p->csb;
    switch (p->wdt) {
    case MLXN_DTYPE_F16: return mlxn_f16_to_f32(((const uint16_t *)p->w)[i]);
    case MLXN_DTYPE_BF16: return mlxn_bf16_to_f32(((const uint16_t *)p->w)[i]);
    default: return ((const float *)p->w)[i];
    }
}

/* Largest X row count the mat-vec kernels take in one pass. */
#define MM_MATVEC_MAX_ROWS 4

/* One ISA's kernels. The packed B panel layout is [kc][nr]: row k of a
 * panel holds B[k0 + k][n0 .. n0 + nr), zero-padded past N. */
typedef struct mm_kernels {
    int mr, nr; /* micro-tile: mr rows of X by nr columns of B */
    /* dst [ceil(nc / nr)][kc][nr] <- B[k0 .. k0+kc)[n0 .. n0+nc) as f32 */
    void (*pack_b)(const mm_problem *p, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float *dst);
    /* c[i][j] (+)= sum_k a[i][k] * b[k][j] for i < mv, j < nv (c row stride
     * ldc). a: mr row pointers already offset to k0 (rows >= mv repeat a
     * valid row); b: one packed panel [kc][nr]. accumulate = 0 overwrites. */
    void (*micro)(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int accumulate,
                  int mv, int nv);
    /* out[r][n] = X[r] . B[:, n] for r < M (<= MM_MATVEC_MAX_ROWS), n in
     * [n0, n1), when B is contiguous along k (rsb == 1): dot products. */
    void (*matvec_k)(const mm_problem *p, int64_t n0, int64_t n1);
    /* The same when B is contiguous along n (csb == 1): rows of B are
     * swept and accumulated into out. */
    void (*matvec_n)(const mm_problem *p, int64_t n0, int64_t n1);
} mm_kernels;

/* NULL when this build has no kernels for the ISA (non-x86 builds). */
const mm_kernels *mm_kernels_avx2(void);
const mm_kernels *mm_kernels_avx512(void);

/* Scalar reference: out[r][n0 .. n1) for rows [r0, r1). */
void mm_ref_rows(const mm_problem *p, int64_t r0, int64_t r1, int64_t n0, int64_t n1);

#endif
