/* CPU dense matmul: out[M, N] = X[M, K] @ B[K, N], B a view of W (see
 * matmul_kernels.h), W f32/f16/bf16, X and out f32.
 *
 * Paths, by device ISA and shape:
 *   SCALAR          the reference (matmul_ref.c), threaded over rows x columns.
 *   M <= 4          mat-vec: memory-bound, so W is read exactly once, converted
 *                   in registers, and every X row uses each W element; threads
 *                   split N.
 *   M > 4           blocked GEMM: per (column block, k block) W is converted
 *                   once into f32 panels that every row tile reuses; an
 *                   mr x nr register-blocked micro-kernel does the FMAs.
 * f16/bf16 W is always widened to f32 and multiplied in f32. The AVX512-BF16
 * dot instruction (vdpbf16ps) is not used: it needs X rounded to bf16, which
 * measured NMSE 2.8e-6 against the f32 product (random x, K = 4096), where
 * the f32 kernels give ~1e-13. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_tensor.h"
#include "backend/cpu/matmul_kernels.h"
#include "core/internal.h"

/* GEMM blocking. KC x NC f32 of packed W is 256 KiB: it stays in L2 while
 * every row tile of X streams past it; a KC-long micro-panel of B is 32 KiB
 * (fits L1 with the X rows). */
#define GEMM_KC 256
#define GEMM_NC 256
/* Columns per mat-vec task: enough work to amortize a task. */
#define MATVEC_GRAIN 64

typedef struct gemm_job {
    const mm_problem *p;
    const mm_kernels *kr;
    float *scratch;   /* [threads][GEMM_KC * GEMM_NC] packed B, one per thread */
    int64_t n_mblk;   /* row chunks per column block */
    int64_t m_chunk;  /* rows per chunk (a multiple of mr) */
} gemm_job;

/* One item: a column block x a row chunk. */
static void gemm_item(const gemm_job *j, int64_t item, float *bpack) {
    const mm_problem *p = j->p;
    const mm_kernels *kr = j->kr;
    const int mr = kr->mr, nr = kr->nr;
    int64_t n0 = (item / j->n_mblk) * GEMM_NC, nc = p->N - n0 < GEMM_NC ? p->N - n0 : GEMM_NC;
    int64_t m0 = (item % j->n_mblk) * j->m_chunk, m1 = m0 + j->m_chunk < p->M ? m0 + j->m_chunk : p->M;
    if (m0 >= m1) return;
    const float *arows[16]; /* mr <= 16 row pointers */
    for (int64_t k0 = 0; k0 < p->K; k0 += GEMM_KC) {
        int64_t kc = p->K - k0 < GEMM_KC ? p->K - k0 : GEMM_KC;
        kr->pack_b(p, k0, kc, n0, nc, bpack);
        for (int64_t i0 = m0; i0 < m1; i0 += mr) {
            int mv = m1 - i0 < mr ? (int)(m1 - i0) : mr;
            /* rows past the end repeat the last row: computed, never stored */
            for (int i = 0; i < mr; i++) arows[i] = p->xrows[i0 + (i < mv ? i : mv - 1)] + k0;
            for (int64_t jj = 0; jj < nc; jj += nr) {
                int nv = nc - jj < nr ? (int)(nc - jj) : nr;
                kr->micro(kc, arows, bpack + (jj / nr) * kc * nr, p->out + i0 * p->N + n0 + jj, p->N, k0 > 0, mv,
                          nv);
            }
        }
    }
}

static void gemm_task(void *arg, int64_t begin, int64_t end, int thread) {
    const gemm_job *j = arg;
    float *bpack = j->scratch + (int64_t)thread * GEMM_KC * GEMM_NC;
    for (int64_t it = begin; it < end; it++) gemm_item(j, it, bpack);
}

static mlxn_status run_gemm(mlxn_threadpool *pool, const mm_problem *p, const mm_kernels *kr) {
    int threads = mlxn_threadpool_size(pool);
    int64_t n_nblk = (p->N + GEMM_NC - 1) / GEMM_NC;
    /* Split rows too when there are too few column blocks to feed every
     * thread twice (each row chunk repacks its W block, so only then). */
    int64_t n_mblk = 1;
    if (n_nblk < 2 * threads) n_mblk = (2 * threads + n_nblk - 1) / n_nblk;
    int64_t max_mblk = (p->M + 4 * kr->mr - 1) / (4 * kr->mr); /* >= 4 row tiles each */
    if (n_mblk > max_mblk) n_mblk = max_mblk;
    if (n_mblk < 1) n_mblk = 1;
    int64_t m_chunk = (p->M + n_mblk - 1) / n_mblk;
    m_chunk = (m_chunk + kr->mr - 1) / kr->mr * kr->mr;
    float *scratch = aligned_alloc(64, (size_t)threads * GEMM_KC * GEMM_NC * sizeof(float));
    if (!scratch) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "matmul: no memory for %d packing buffers", threads);
    gemm_job j = {p, kr, scratch, n_mblk, m_chunk};
    mlxn_parallel_for(pool, n_nblk * n_mblk, 1, gemm_task, &j);
    free(scratch);
    return MLXN_OK;
}

typedef struct mv_job {
    const mm_problem *p;
    const mm_kernels *kr; /* NULL: reference */
} mv_job;

static void matvec_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const mv_job *j = arg;
    if (j->p->rsb == 1) j->kr->matvec_k(j->p, begin, end);
    else j->kr->matvec_n(j->p, begin, end);
}

/* Reference path: items are (row, column tile) pairs. */
#define REF_COLS 64
static void ref_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const mm_problem *p = ((const mv_job *)arg)->p;
    int64_t tiles = (p->N + REF_COLS - 1) / REF_COLS;
    for (int64_t it = begin; it < end; it++) {
        int64_t r = it / tiles, n0 = (it % tiles) * REF_COLS;
        mm_ref_rows(p, r, r + 1, n0, n0 + REF_COLS < p->N ? n0 + REF_COLS : p->N);
    }
}

mlxn_status cpu_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, bool transpose,
                       mlxn_tensor *out) {
    cpu_device *dev = cpu_dev(s);
    const int64_t M = cpu_rows(x), K = x->shape[x->ndim - 1];
    const int64_t N = transpose ? w->shape[0] : w->shape[1];
    float *o = mlxn_tensor_host(out); /* [M, N] */
    if (M == 0 || N == 0) return MLXN_OK;
    if (K == 0) {
        memset(o, 0, (size_t)(M * N) * sizeof(float));
        return MLXN_OK;
    }

    /* Row pointers into X; X is copied only when its last axis is strided. */
    const float **rows = malloc((size_t)M * sizeof *rows);
    float *xcopy = NULL;
    if (!rows) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "matmul: out of memory");
    const int64_t xs = x->strides[x->ndim - 1];
    if (xs != 1 && K > 1) {
        xcopy = malloc((size_t)(M * K) * sizeof(float));
        if (!xcopy) {
            free(rows);
            return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "matmul: no memory to copy a strided x");
        }
    }
    for (int64_t r = 0; r < M; r++) {
        const float *src = cpu_row_ptr(x, r);
        if (xcopy) {
            for (int64_t k = 0; k < K; k++) xcopy[r * K + k] = src[k * xs];
            src = xcopy + r * K;
        }
        rows[r] = src;
    }

    mm_problem p = {
        .M = M, .K = K, .N = N, .xrows = rows, .w = mlxn_tensor_host(w), .wdt = w->dtype,
        .rsb = transpose ? w->strides[1] : w->strides[0],
        .csb = transpose ? w->strides[0] : w->strides[1],
        .out = o,
    };
    /* a length-1 axis may carry any stride: give it the one the fast paths want */
    if (K == 1) p.rsb = 1;
    if (N == 1) p.csb = 1;

    const mm_kernels *kr = NULL;
    if (dev->isa >= MLXN_CPU_ISA_AVX512) kr = mm_kernels_avx512();
    else if (dev->isa >= MLXN_CPU_ISA_AVX2) kr = mm_kernels_avx2();

    mlxn_status st = MLXN_OK;
    mv_job j = {&p, kr};
    if (!kr) {
        mlxn_parallel_for(dev->pool, M * ((N + REF_COLS - 1) / REF_COLS), 1, ref_task, &j);
    } else if (M <= MM_MATVEC_MAX_ROWS && (p.rsb == 1 || p.csb == 1)) {
        mlxn_parallel_for(dev->pool, N, MATVEC_GRAIN, matvec_task, &j);
    } else {
        st = run_gemm(dev->pool, &p, kr);
    }
    free(xcopy);
    free(rows);
    return st;
}
