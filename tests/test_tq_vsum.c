/* The integer weighted sums of 4-bit TurboQuant values
 * (src/backend/cpu/tq_kernels.h):
 *  - the dim order is a permutation;
 *  - the model's sums against exact double sums of the same weights and
 *    levels, within the bound its roundings allow (per output, computed
 *    from the weights and codes, not a fixed tolerance), rows not live left
 *    alone bit for bit, NaN rows for a NaN weight or an infinite norm;
 *  - the AVX2 kernel against the scalar model, bit for bit, for head dims
 *    64..512, 1..70 keys (one to three blocks of TQ_VSUM_KEYS), zero
 *    weights where a key is masked, a rescale or none.
 * Inputs are fresh seeded random codes, norms, weights and accumulators. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/tq_kernels.h"
#include "harness.h"
#include "quant/tq_layout.h"
#include "quant/tq_tables.h"

static int same_bits(float a, float b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0; }

static void check_order(void) {
    for (int64_t D = 64; D <= 512; D *= 2) {
        unsigned char seen[MLXN_TQ_MAX_HEAD_DIM] = {0};
        int ok = 1;
        for (int64_t d = 0; d < D; d++) {
            const int64_t s = tq_vsum_slot(d);
            if (s < 0 || s >= D || seen[s]++) ok = 0;
        }
        CHECK(ok, "D %lld: tq_vsum_slot is not a permutation of the dims", (long long)D);
    }
}

/* The model's rows against double sums: |out - exact| within what rounding
 * the weights (half a step of umax / 32767 per weight, per block) and the
 * levels (|L - L16 / LS|) allows, plus f32 rounding. */
static void check_accuracy(const uint8_t *v, int64_t vstride, const float *vscale, int64_t n, int64_t D, const float *w,
                           float corr, const float *acc0, const float *out, const int16_t *l16) {
    const float *lv = mlxn_tq_levels(4);
    const double LS = TQ_KS_LSCALE;
    double umax[8] = {0}; /* per block of TQ_VSUM_KEYS */
    for (int64_t j = 0; j < n; j++) {
        const double u = (double)(w[j] * vscale[j]);
        if (u > umax[j / TQ_VSUM_KEYS]) umax[j / TQ_VSUM_KEYS] = u;
    }
    int ok = 1;
    double worst = 0.0;
    for (int64_t d = 0; d < D; d++) {
        const int64_t s = tq_vsum_slot(d);
        double exact = (double)acc0[s] * corr, bound = 0.0, mag = fabs(exact);
        for (int64_t j = 0; j < n; j++) {
            const int c = mlxn_tq_get_code(v + j * vstride, d, 4);
            const double u = (double)(w[j] * vscale[j]);
            exact += u * lv[c];
            mag += fabs(u * lv[c]);
            bound += 0.5 * umax[j / TQ_VSUM_KEYS] / 32767.0 * fabs((double)l16[c]) / LS + u * fabs(lv[c] - l16[c] / LS);
        }
        bound += 1e-6 * mag + 1e-30;
        const double e = fabs((double)out[s] - exact);
        if (!(e <= bound)) ok = 0;
        if (e / bound > worst) worst = e / bound;
    }
    CHECK(ok, "D %lld n %lld: a sum is further from the exact one than its roundings allow (worst %.3g of the bound)",
          (long long)D, (long long)n, worst);
}

static const char *kernel_name = ""; /* the kernel one_shape checks, for messages */

static void one_shape(int64_t D, int64_t n, int with_corr, tq_vsum_fn kernel) {
    enum { M = 4 };
    const int64_t rb = D / 2 + 3, lds = n + 5; /* rows 3 bytes apart */
    uint8_t *codes = malloc((size_t)(n * rb));
    const float vfac = 1.0f / sqrtf((float)D);
    float *vnorm = malloc(sizeof(float) * (size_t)n), *vscale = malloc(sizeof(float) * (size_t)n);
    float *w = malloc(sizeof(float) * (size_t)(M * lds));
    float *a0 = malloc(sizeof(float) * (size_t)(M * D)), *ar = malloc(sizeof(float) * (size_t)(M * D));
    float *af = malloc(sizeof(float) * (size_t)(M * D)), corr[M];
    int16_t l16[16];
    tq_kq_levels4(l16);
    for (int64_t i = 0; i < n * rb; i++) codes[i] = (uint8_t)t_rand_u64();
    for (int64_t j = 0; j < n; j++) vnorm[j] = 0.1f + 8.0f * fabsf(t_randn()), vscale[j] = vnorm[j] * vfac;
    for (int64_t i = 0; i < M * lds; i++) w[i] = expf(-4.0f * fabsf(t_randn())); /* softmax weights, <= 1 */
    for (int64_t j = 0; j < n; j += 3) w[j] = 0.0f; /* row 0: masked keys */
    for (int64_t i = 0; i < M * D; i++) a0[i] = t_randn();
    for (int r = 0; r < M; r++) corr[r] = with_corr ? 0.05f + 0.95f * (float)(t_rand_u64() % 1000) / 1000.0f : 1.0f;
    if (n > 3) w[2 * lds + n / 2] = NAN; /* row 2: a NaN weight */
    const unsigned char live[M] = {1, 0, 1, 1}; /* row 1 must be left alone */
    float *ref_rows[M], *fast_rows[M];
    for (int r = 0; r < M; r++) ref_rows[r] = ar + r * D, fast_rows[r] = af + r * D;
    memcpy(ar, a0, sizeof(float) * (size_t)(M * D));
    memcpy(af, a0, sizeof(float) * (size_t)(M * D));
    tq_vsum4_scalar(codes, rb, vnorm, vfac, n, D, l16, w, lds, with_corr ? corr : NULL, live, M, ref_rows);
    CHECK(memcmp(ar + D, a0 + D, sizeof(float) * (size_t)D) == 0, "D %lld n %lld: a row not live was written",
          (long long)D, (long long)n);
    if (n > 3) {
        int nan = 1;
        for (int64_t d = 0; d < D; d++) nan &= isnan(ar[2 * D + d]);
        CHECK(nan, "D %lld n %lld: a NaN weight did not make its row NaN", (long long)D, (long long)n);
    }
    for (int r = 0; r < M; r += 3) /* rows 0 and 3 */
        check_accuracy(codes, rb, vscale, n, D, w + r * lds, corr[r], a0 + r * D, ar + r * D, l16);
    if (kernel) {
        kernel(codes, rb, vnorm, vfac, n, D, l16, w, lds, with_corr ? corr : NULL, live, M, fast_rows);
        int64_t diff = 0, first = -1;
        for (int64_t i = 0; i < M * D; i++)
            if (!same_bits(ar[i], af[i])) diff++, first = first < 0 ? i : first;
        CHECK(diff == 0, "%s, D %lld n %lld corr %d: %lld sums differ from the model (first row %lld slot %lld: %.9g, want %.9g)",
              kernel_name, (long long)D, (long long)n, with_corr, (long long)diff, first < 0 ? 0LL : (long long)(first / D),
              first < 0 ? 0LL : (long long)(first % D), first < 0 ? 0.0 : (double)af[first], first < 0 ? 0.0 : (double)ar[first]);
    }
    free(codes), free(vnorm), free(vscale), free(w), free(a0), free(ar), free(af);
}

/* An infinite norm makes every row that weighs it NaN, in both. */
static void check_inf_norm(tq_vsum_fn kernel) {
    const int64_t D = 64, n = 9;
    uint8_t codes[9 * 32];
    float vnorm[9], w[9], acc[64] = {0};
    for (int i = 0; i < 9 * 32; i++) codes[i] = (uint8_t)t_rand_u64();
    for (int j = 0; j < 9; j++) vnorm[j] = 1.0f, w[j] = 0.5f;
    vnorm[4] = INFINITY;
    int16_t l16[16];
    tq_kq_levels4(l16);
    const unsigned char live[1] = {1};
    float *a[1] = {acc};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !kernel) break;
        memset(acc, 0, sizeof acc);
        (pass ? kernel : tq_vsum4_scalar)(codes, 32, vnorm, 0.125f, n, D, l16, w, n, NULL, live, 1, a);
        int nan = 1;
        for (int d = 0; d < 64; d++) nan &= isnan(acc[d]);
        CHECK(nan, "%s: an infinite norm did not make the row NaN", pass ? kernel_name : "model");
    }
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_tq_vsum");
    check_order();
    /* each kernel this processor runs (the model is checked on every pass) */
    tq_vsum_fn kernels[2] = {NULL, NULL};
    const char *names[2] = {"avx2", "avx512"};
    const mlxn_cpu_isa best = mlxn_cpu_detect_isa(MLXN_CPU_ISA_AUTO); /* the level a device here takes */
    if (best >= MLXN_CPU_ISA_AVX2) kernels[0] = tq_vsum4_avx2();
    if (best >= MLXN_CPU_ISA_AVX512) kernels[1] = tq_vsum4_avx512();
    for (int k = 0; k < 2; k++) {
        if (!kernels[k] && k > 0) {
            printf("test_tq_vsum: no %s here: that kernel is not checked\n", names[k]);
            continue;
        }
        if (!kernels[k]) printf("test_tq_vsum: no %s here: the model is checked, the kernel is not\n", names[k]);
        kernel_name = names[k];
        const int64_t ns[] = {1, 2, 7, 31, 32, 33, 64, 70};
        for (int64_t D = 64; D <= 512; D *= 2)
            for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
                for (int c = 0; c < 2; c++) one_shape(D, ns[i], c, kernels[k]);
        check_inf_norm(kernels[k]);
    }
    return t_finish();
}
