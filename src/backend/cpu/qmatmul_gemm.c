/* Quantized prefill (out = x @ W^T with many x rows) on the dense matmul's
 * register-blocked micro-kernel (matmul_kernels.h), AVX2 level.
 *
 * The product is computed transposed: out^T [N, M] = W [N, K] x^T, so that
 *   - the weights are the micro-kernel's broadcast operand ("A"): a panel of
 *     PR weight rows x GKC columns is dequantized row by row (the natural
 *     order of the codes) and each of its rows is read in place;
 *   - x is the packed operand ("B", [kc][16] per block of 16 x rows): packed
 *     once per call and shared by every panel, so the transposition costs
 *     O(M K) once instead of once per weight panel;
 *   - a 6 x 16 tile (6 weight rows x 16 x rows) keeps 12 independent
 *     accumulators, more than FMA latency x ports needs (4 x 2 on Zen 3,
 *     4 x 2 or 5 x 2 elsewhere), and 2 loads + 6 broadcasts feed its 12
 *     FMAs.
 * Why: the f32 tile kernel of qmatmul_avx2.c (4 x rows x 2 weight rows as
 * dot products, 8 accumulators, 6 loads per 8 FMAs) ran prefill at ~40% of
 * the cores' FMA peak, this at ~60-65% (docs/perf.md).
 *
 * Each panel's results collect in a per-thread [MB][PR][16] buffer over
 * the K blocks, then go to out transposed. Sums are f32 in k order per
 * lane (the tile kernel's order differs: results agree to f32 rounding). */
#include <stdlib.h>

#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/qmatmul.h"

enum {
    XB = 16,  /* x rows per packed block: the micro-kernel's nr (checked) */
    PR = 48,  /* weight rows per dequantized panel: a multiple of the micro-kernel's mr (6) */
    GKC = 256, /* panel columns (a multiple of the group size: checked); a packed x block [256][16] is 16 KB (L1) */
};

struct qm_gemm {
    const mm_kernels *mk;
    const qmat *w;
    qm_dequant_fn dequant;
    int64_t M, K, N, MB; /* MB: blocks of XB x rows */
    float *xp;           /* [MB][K][XB] x transposed per block, rows past M zero */
    float *scratch;      /* per thread: a panel [PR][GKC] then the sums [MB][PR][XB] */
    size_t per_thread;   /* floats of scratch per thread */
    float *out;          /* [M, N] */
};

int qm_gemm_supported(const qmat *w, mlxn_cpu_isa isa, int64_t M) {
    const mm_kernels *mk = mm_kernels_avx2();
    return isa == MLXN_CPU_ISA_AVX2 && mk && mk->nr == XB && mk->mr <= 8 && PR % mk->mr == 0 &&
           GKC % w->group == 0 && M >= QM_GEMM_MIN_ROWS;
}

typedef struct gemm_pack {
    const qm_gemm *g;
    const float *x; /* [M, ldx] */
    int64_t ldx;
} gemm_pack;

/* Pack the x rows of blocks [b0, b1) into g->xp: the dense matmul's
 * packing of a B contiguous along k (B[k][m] = x[m][k], register
 * transposes), one panel of XB x rows per block, rows past M zero. */
static void pack_x(void *arg, int64_t b0, int64_t b1, int thread) {
    (void)thread;
    const gemm_pack *pk = arg;
    const struct qm_gemm *g = pk->g;
    const mm_problem xv = {.K = g->K, .N = g->M, .w = pk->x, .wdt = MLXN_DTYPE_F32, .rsb = 1, .csb = pk->ldx};
    for (int64_t b = b0; b < b1; b++) {
        const int64_t nc = g->M - b * XB < XB ? g->M - b * XB : XB;
        g->mk->pack_b(&xv, 0, g->K, b * XB, nc, g->xp + b * g->K * XB); /* [K][XB] */
    }
}

qm_gemm *qm_gemm_prepare(const qmat *w, qm_dequant_fn dequant, const float *x, int64_t ldx, int64_t M,
                         int64_t N, float *out, mlxn_threadpool *pool) {
    qm_gemm *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    const int nt = mlxn_threadpool_size(pool);
    g->mk = mm_kernels_avx2();
    g->w = w;
    g->dequant = dequant;
    g->M = M, g->K = w->cols, g->N = N, g->MB = (M + XB - 1) / XB;
    g->out = out;
    g->per_thread = (size_t)PR * GKC + (size_t)g->MB * PR * XB;
    g->xp = malloc((size_t)(g->MB * g->K * XB) * sizeof(float));
    g->scratch = malloc(g->per_thread * (size_t)nt * sizeof(float));
    if (!g->xp || !g->scratch) {
        qm_gemm_free(g);
        return NULL;
    }
    gemm_pack pk = {g, x, ldx};
    mlxn_parallel_for(pool, g->MB, 1, pack_x, &pk);
    return g;
}

void qm_gemm_free(qm_gemm *g) {
    if (!g) return;
    free(g->xp);
    free(g->scratch);
    free(g);
}

/* Prefetch row r's codes of columns [k0, k0 + GKC) and the lines of their
 * scales and biases. */
static void prefetch_row(const qmat *w, int64_t r, int64_t k0) {
    const int64_t cb = k0 * w->bits / 8, nb = (int64_t)GKC * w->bits / 8, g0 = k0 / w->group;
    const size_t ssz = mlxn_dtype_size(w->sdt);
    const char *row = (const char *)(w->wq + r * w->wq_stride) + cb;
    for (int64_t o = 0; o < nb; o += 64) __builtin_prefetch(row + o);
    __builtin_prefetch((const char *)w->scales + (r * w->s_stride + g0) * ssz);
    if (w->biases) __builtin_prefetch((const char *)w->biases + (r * w->b_stride + g0) * ssz);
}

void qm_gemm_rows(const qm_gemm *g, int64_t r0, int64_t r1, int thread) {
    const int mr = g->mk->mr;
    float *panel = g->scratch + (size_t)thread * g->per_thread; /* [PR][GKC] dequantized weights */
    float *sums = panel + (size_t)PR * GKC;                      /* [MB][PR][XB]: out^T of the panel */
    for (int64_t p0 = r0; p0 < r1; p0 += PR) {
        const int pr = (int)(r1 - p0 < PR ? r1 - p0 : PR);
        for (int64_t k0 = 0; k0 < g->K; k0 += GKC) {
            const int64_t kc = g->K - k0 < GKC ? g->K - k0 : GKC;
            /* each row's next block (the next panel's first after a
             * panel's last) is prefetched as the row is dequantized, so the
             * requests spread over the loop. Why: the panel's rows are
             * K bits / 8 bytes apart, too many streams for the hardware
             * prefetcher, and each block's first touch of a row was a
             * memory round trip inside the dequantization */
            const int64_t pn = k0 + GKC < g->K ? p0 : p0 + PR, kn = k0 + GKC < g->K ? k0 + GKC : 0;
            for (int i = 0; i < pr; i++) {
                g->dequant(g->w, p0 + i, k0, kc, panel + (size_t)i * GKC);
                if (pn + i < r1) prefetch_row(g->w, pn + i, kn);
            }
            for (int64_t b = 0; b < g->MB; b++) {
                const float *xb = g->xp + (b * g->K + k0) * XB; /* [kc][XB] */
                for (int r = 0; r < pr; r += mr) {
                    const int mv = pr - r < mr ? pr - r : mr;
                    const float *a[8]; /* rows past mv repeat a valid one (the kernel's rule) */
                    for (int i = 0; i < mr; i++) a[i] = panel + (size_t)(r + (i < mv ? i : mv - 1)) * GKC;
                    g->mk->micro(kc, a, xb, sums + ((size_t)b * PR + r) * XB, XB, k0 > 0, mv, XB);
                }
            }
        }
        /* out[m][p0 + i] = sums[b][i][j] for m = b XB + j < M */
        for (int64_t m = 0; m < g->M; m++) {
            const float *s = sums + (size_t)(m / XB) * PR * XB + m % XB;
            float *o = g->out + m * g->N + p0;
            for (int i = 0; i < pr; i++) o[i] = s[(size_t)i * XB];
        }
    }
}
