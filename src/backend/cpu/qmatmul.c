/* CPU quantized matmul: picks a kernel family for the ISA level the device
 * allows and spreads the work over the device's thread pool.
 *
 * transpose (out = x @ W^T, W [N, K]): threads split the N output rows in
 * balanced chunks of whole row blocks.
 *   - AVX-512 with VNNI, affine, few x rows (decode): the integer mat-vec in
 *     qmatmul_avx512.c (x quantized to 16 bits per group once per call).
 *   - else AVX2, affine 2..6- or 8-bit, up to 4 x rows: the integer mat-vec in
 *     qmatmul_avx2_int.c (the VNNI kernel's arithmetic with VPMADDUBSW).
 *   - else AVX2, affine, up to 4 x rows: the f32 mat-vec in qmatmul_avx2.c
 *     (codes to weights in registers, no panel).
 *   - else AVX2, at least QM_GEMM_MIN_ROWS x rows (prefill): the dense
 *     micro-kernel over dequantized weight panels and x packed once
 *     (qmatmul_gemm.c).
 *   - otherwise: a block of RB weight rows x KC columns is dequantized to f32
 *     (L1-sized) and multiplied by every x row with the ISA's tile kernel,
 *     so each weight is decoded once however many x rows there are.
 * not transposed (out = x @ W, W [K, N] quantized along N): threads split
 * the N columns in group-aligned chunks; KB weight rows at a time are
 * dequantized and added into every output row (axpy kernel). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_tensor.h"
#include "backend/cpu/qmatmul.h"
#include "core/internal.h"

enum {
    NR = 64,  /* weight rows per dequantized panel (transpose) */
    RB = 4,   /* weight rows per tile-kernel call (its register block) */
    KC = 512, /* panel columns: a multiple of every group size */
    MB = 4,   /* x rows per tile-kernel call (its register block) */
    KB = 4,   /* weight rows per axpy step (not transposed) */
    CB = 256, /* output columns per axpy chunk: KB x 256 f32 = 4 KB in L1 */
};

typedef struct qm_job {
    const qmat *w;
    const qm_kernels *k;
    const float *x;     /* [M, ldx] */
    int64_t ldx, M, K, N;
    float *out;         /* [M, N] */
    const qm_xprep *xp; /* the VNNI path's prepared x, else NULL */
    const qm_ixprep *ixp; /* the AVX2 integer path's prepared x, else NULL */
    float *panels;      /* [threads, NR, KC] scratch of the float transpose path */
    qm_gemm *gemm;      /* the AVX2 prefill path's packed x and scratch, else NULL */
} qm_job;

float *qm_scratch_alloc(int n_threads, int64_t per_thread) {
    const size_t bytes = (size_t)n_threads * (size_t)per_thread * sizeof(float); /* a multiple of 128 */
    float *p = bytes ? aligned_alloc(128, bytes) : NULL;
    if (p) memset(p, 0, bytes);
    return p;
}

static void task_vnni(void *arg, int64_t r0, int64_t r1, int thread) {
    const qm_job *j = arg;
    qm_vnni_rows(j->w, j->xp, r0, r1, j->out, j->N, thread);
}

static void task_imv(void *arg, int64_t r0, int64_t r1, int thread) {
    const qm_job *j = arg;
    qm_imv_avx2_rows(j->w, j->ixp, r0, r1, j->out, j->N, thread);
}

static void task_matvec(void *arg, int64_t r0, int64_t r1, int thread) {
    (void)thread;
    const qm_job *j = arg;
    qm_matvec_avx2_rows(j->w, j->x, j->ldx, (int)j->M, r0, r1, j->out, j->N);
}

static void task_gemm(void *arg, int64_t r0, int64_t r1, int thread) {
    const qm_job *j = arg;
    qm_gemm_rows(j->gemm, r0, r1, thread);
}

/* transpose: output columns [r0, r1) = W rows [r0, r1). A panel of NR
 * weight rows x KC columns is dequantized once (128 KB: stays in L2), then
 * every block of MB x rows (8 KB of x: L1) runs against it RB rows at a
 * time. Looping x blocks inside the panel, not panels inside x blocks,
 * means x is read from memory once per panel rather than once per RB
 * weight rows (for prefill, x is far larger than any cache). */
static void task_t(void *arg, int64_t r0, int64_t r1, int thread) {
    const qm_job *j = arg;
    float *panel = j->panels + (int64_t)thread * NR * KC; /* [NR, KC] dequantized weights */
    for (int64_t p0 = r0; p0 < r1; p0 += NR) {
        int64_t nr = r1 - p0 < NR ? r1 - p0 : NR;
        for (int64_t m = 0; m < j->M; m++) memset(j->out + m * j->N + p0, 0, (size_t)nr * sizeof(float));
        for (int64_t k0 = 0; k0 < j->K; k0 += KC) {
            int64_t kc = j->K - k0 < KC ? j->K - k0 : KC;
            for (int64_t i = 0; i < nr; i++) j->k->dequant(j->w, p0 + i, k0, kc, panel + i * KC);
            for (int64_t m0 = 0; m0 < j->M; m0 += MB) {
                int mb = (int)(j->M - m0 < MB ? j->M - m0 : MB);
                for (int64_t b0 = 0; b0 < nr; b0 += RB) {
                    int rb = (int)(nr - b0 < RB ? nr - b0 : RB);
                    j->k->tile(j->x + m0 * j->ldx + k0, j->ldx, mb, panel + b0 * KC, KC, rb, kc,
                               j->out + m0 * j->N + p0 + b0, j->N);
                }
            }
        }
    }
}

/* not transposed: output columns [c0, c1) (group aligned). */
static void task_n(void *arg, int64_t c0, int64_t c1, int thread) {
    (void)thread;
    const qm_job *j = arg;
    float buf[KB * CB]; /* [KB, CB] dequantized rows of W */
    for (int64_t cb0 = c0; cb0 < c1; cb0 += CB) {
        int64_t n = c1 - cb0 < CB ? c1 - cb0 : CB;
        for (int64_t m = 0; m < j->M; m++) memset(j->out + m * j->N + cb0, 0, (size_t)n * sizeof(float));
        for (int64_t k0 = 0; k0 < j->K; k0 += KB) {
            int kb = (int)(j->K - k0 < KB ? j->K - k0 : KB);
            for (int i = 0; i < kb; i++) j->k->dequant(j->w, k0 + i, cb0, n, buf + i * CB);
            for (int64_t m0 = 0; m0 < j->M; m0 += MB) {
                int mb = (int)(j->M - m0 < MB ? j->M - m0 : MB);
                j->k->axpy(j->x + m0 * j->ldx + k0, j->ldx, mb, buf, CB, kb, n, j->out + m0 * j->N + cb0, j->N);
            }
        }
    }
}

static const qm_kernels *kernels_for(mlxn_cpu_isa isa) {
    switch (isa) {
    case MLXN_CPU_ISA_AVX512: return &qm_kernels_avx512;
    case MLXN_CPU_ISA_AVX2: return &qm_kernels_avx2;
    default: return &qm_kernels_ref;
    }
}

mlxn_status cpu_quantized_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                 const mlxn_tensor *scales, const mlxn_tensor *biases,
                                 const mlxn_quant_params *q, bool transpose, mlxn_tensor *out) {
    const char *op = "quantized_matmul";
    qmat w;
    MLXN_TRY(qmat_from_tensors(op, wq, scales, biases, q, &w));
    cpu_device *dev = cpu_dev(s);
    const int64_t M = cpu_rows(x), K = x->shape[x->ndim - 1], N = out->shape[out->ndim - 1];
    float *o = mlxn_tensor_host(out);
    if (M == 0 || N == 0) return MLXN_OK;
    if (K == 0) {
        memset(o, 0, (size_t)(M * N) * sizeof(float));
        return MLXN_OK;
    }
    /* x as [M, K] rows K apart: used in place when contiguous, else gathered */
    const float *xp = mlxn_tensor_host(x);
    float *xcopy = NULL;
    if (!mlxn_tensor_is_contiguous(x)) {
        xcopy = malloc((size_t)(M * K) * sizeof(float));
        if (!xcopy) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: no memory to gather x (%lld x %lld)", op,
                                     (long long)M, (long long)K);
        for (int64_t m = 0; m < M; m++)
            cpu_row_to_f32(cpu_row_ptr(x, m), x->dtype, x->strides[x->ndim - 1], K, xcopy + m * K);
        xp = xcopy;
    }
    qm_job j = {.w = &w, .k = kernels_for(dev->isa), .x = xp, .ldx = K, .M = M, .K = K, .N = N, .out = o};
    if (transpose) {
        qm_xprep *prep = NULL;
        const int int_x = !dev->float_activations; /* integer mat-vecs allowed */
        if (int_x && dev->isa == MLXN_CPU_ISA_AVX512 && qm_vnni_supported(&w, M))
            prep = qm_vnni_prepare(&w, xp, K, M, mlxn_threadpool_size(dev->pool)); /* NULL (non-finite x, no memory): float path */
        if (prep) {
            j.xp = prep;
            mlxn_parallel_for(dev->pool, N, RB, task_vnni, &j);
            qm_vnni_free(prep);
        } else if (int_x && dev->isa >= MLXN_CPU_ISA_AVX2 && qm_imv_avx2_supported(&w, M) &&
                   (j.ixp = qm_imv_avx2_prepare(&w, xp, K, M, mlxn_threadpool_size(dev->pool)))) {
            mlxn_parallel_for(dev->pool, N, RB, task_imv, &j);
            qm_imv_avx2_free((qm_ixprep *)j.ixp);
        } else if ((w.mode == MLXN_QUANT_AFFINE ? dev->isa >= MLXN_CPU_ISA_AVX2 : dev->isa == MLXN_CPU_ISA_AVX2) &&
                   qm_matvec_avx2_supported(&w, M)) {
            /* the fp modes only at the AVX2 level: the AVX-512 level keeps its dequantized-panel path
               for them until the two are compared on such a machine */
            mlxn_parallel_for(dev->pool, N, RB, task_matvec, &j);
        } else if (qm_gemm_supported(&w, dev->isa, M) &&
                   (j.gemm = qm_gemm_prepare(&w, j.k->dequant, xp, K, M, N, o, dev->pool))) {
            mlxn_parallel_for(dev->pool, N, RB, task_gemm, &j);
            qm_gemm_free(j.gemm);
        } else {
            int nt = mlxn_threadpool_size(dev->pool);
            j.panels = malloc((size_t)nt * NR * KC * sizeof(float));
            if (!j.panels) {
                free(xcopy);
                return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: no memory for %d dequantization panels", op, nt);
            }
            mlxn_parallel_for(dev->pool, N, RB, task_t, &j);
            free(j.panels);
        }
    } else {
        int64_t grain = w.group > 64 ? w.group : 64; /* group aligned, and whole cache lines of out */
        mlxn_parallel_for(dev->pool, N, grain, task_n, &j);
    }
    free(xcopy);
    return MLXN_OK;
}
