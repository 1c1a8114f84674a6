/* The integer scores of 4-bit TurboQuant keys (src/backend/cpu/tq_kernels.h):
 *  - the model's pieces: the 16-bit levels and queries stay within their
 *    bounds and within half a step of the values they stand for, and the
 *    dim order is a permutation;
 *  - the model's scores against the exact dot products in double, within
 *    the bound its two roundings allow (computed per score, not a fixed
 *    tolerance), and exactly 0 / NaN for a zero / non-finite query;
 *  - the AVX2 and AVX-512 kernels against the scalar model, bit for bit, for head dims
 *    64..512, key counts around its 8-key blocks, an item's rows as nt
 *    positions of several heads, and a row stride wider than the keys:
 *    the scores are poisoned first, and the padding past n must stay so;
 *  - the query and output rotations (tq_rotate, tq_unrotate) at every ISA
 *    level this CPU runs, bit for bit against the format's FWHT.
 * Inputs are fresh seeded random codes, norms and queries. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/tq_kernels.h"
#include "harness.h"
#include "quant/tq_layout.h"
#include "quant/tq_tables.h"

#define POISON 12345.678f

static int same_bits(float a, float b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0; }

static void check_levels_and_order(void) {
    int16_t l16[16];
    tq_kq_levels4(l16);
    const float *lv = mlxn_tq_levels(4);
    for (int i = 0; i < 16; i++) {
        CHECK(l16[i] >= -2047 && l16[i] <= 2047, "L16[%d] = %d past 2047", i, l16[i]);
        CHECK(fabsf((float)l16[i] / TQ_KS_LSCALE - lv[i]) <= 0.5f / TQ_KS_LSCALE * 1.0001f,
              "L16[%d] = %d is not the level %g rounded", i, l16[i], (double)lv[i]);
        CHECK(l16[i] == -l16[15 - i], "L16 not symmetric at %d", i);
    }
    CHECK(l16[15] == 2047, "the largest level maps to %d, not 2047", l16[15]);
    for (int64_t D = 64; D <= 512; D *= 2) {
        unsigned char seen[MLXN_TQ_MAX_HEAD_DIM] = {0};
        int ok = 1;
        for (int64_t d = 0; d < D; d++) {
            const int64_t s = tq_kq_slot(d);
            if (s < 0 || s >= D || seen[s]++) ok = 0;
        }
        CHECK(ok, "D %lld: tq_kq_slot is not a permutation of the dims", (long long)D);
    }
}

/* A query of D dims: Gaussian times `scale`. */
static void random_query(float *x, int64_t D, float scale) {
    for (int64_t d = 0; d < D; d++) x[d] = t_randn() * scale;
}

static void check_prepare(const float *x, int64_t D, const int16_t *q16, float qs) {
    float amax = 0.0f;
    for (int64_t d = 0; d < D; d++) amax = fmaxf(amax, fabsf(x[d]));
    int top = 0, ok = 1;
    for (int64_t d = 0; d < D; d++) {
        const int v = q16[tq_kq_slot(d)];
        if (v < -2047 || v > 2047 || fabsf((float)v * qs - x[d]) > qs * 0.5f * 1.001f + 1e-30f) ok = 0;
        if (v == 2047 || v == -2047) top = 1;
    }
    CHECK(ok, "D %lld: a q16 past 2047 or further than half a step from x", (long long)D);
    CHECK(top, "D %lld: no q16 reaches +-2047", (long long)D);
    CHECK(fabsf(qs - amax / 2047.0f) <= 1e-6f * qs, "D %lld: qs %g, want %g", (long long)D, (double)qs,
          (double)(amax / 2047.0f));
}

/* Scores of the model against double dots over the levels: |s - exact| must
 * stay within what the roundings allow, term by term:
 *   |x L - (q qs)(L16 / LS)| <= |dx| |L| + |x| |dL| + |dx| |dL|,
 *   |dx| <= qs / 2, |dL| <= 1 / (2 LS); plus f32 rounding of the result. */
static void check_model_accuracy(const uint8_t *k, int64_t kstride, const float *kscale, int64_t n, int64_t D,
                                 const float *x, const tq_kq *q, const float *s) {
    const float *lv = mlxn_tq_levels(4);
    const double ks_lv = TQ_KS_LSCALE, dl = 0.5 / ks_lv, dx = q->qs[0] * 0.5;
    int ok = 1;
    double worst = 0.0;
    for (int64_t j = 0; j < n; j++) {
        const double kn = (double)kscale[j] * ks_lv; /* the key's norm / sqrt(D) */
        double exact = 0.0, bound = 0.0, mag = 0.0;
        for (int64_t d = 0; d < D; d++) {
            const double L = lv[mlxn_tq_get_code(k + j * kstride, d, 4)];
            exact += (double)x[d] * L * kn;
            bound += (dx * fabs(L) + fabs(x[d]) * dl + dx * dl) * kn;
            mag += fabs(x[d] * L) * kn;
        }
        bound += 1e-6 * mag;
        const double e = fabs((double)s[j] - exact);
        if (!(e <= bound)) ok = 0;
        if (bound > 0 && e / bound > worst) worst = e / bound;
    }
    CHECK(ok, "D %lld: a score is further from the exact dot than its roundings allow (worst %.3g of the bound)",
          (long long)D, worst);
}

/* The rotations at every ISA level this CPU runs give the bits of the
 * format's own FWHT (mlxn_tq_fwht, which the CUDA kernels match too):
 * cpu_fwht's SIMD kernels only reorder memory visits. */
static void check_rotations(void) {
    const mlxn_cpu_isa best = mlxn_cpu_detect_isa(MLXN_CPU_ISA_AUTO); /* the levels a device here can take */
    mlxn_cpu_isa isas[3] = {MLXN_CPU_ISA_SCALAR, MLXN_CPU_ISA_AVX2, MLXN_CPU_ISA_AVX512};
    const int n_isa = best == MLXN_CPU_ISA_AVX512 ? 3 : best == MLXN_CPU_ISA_AVX2 ? 2 : 1;
    for (int64_t D = 64; D <= 512; D *= 2) {
        float x[2 * 512], signs[512], rot[512], back[512], got[512];
        t_fill_randn(x, (size_t)(2 * D), 3.0f);
        for (int64_t d = 0; d < D; d++) signs[d] = (t_rand_u64() & 1) ? 1.0f : -1.0f;
        const float r = 1.0f / sqrtf((float)D);
        for (int64_t d = 0; d < D; d++) rot[d] = x[2 * d] * signs[d]; /* x at stride 2 */
        mlxn_tq_fwht(rot, D);
        for (int64_t d = 0; d < D; d++) rot[d] *= r;
        memcpy(back, rot, sizeof(float) * (size_t)D);
        mlxn_tq_fwht(back, D);
        for (int64_t d = 0; d < D; d++) back[d] *= r * signs[d];
        for (int i = 0; i < n_isa; i++) {
            for (int64_t d = 0; d < D; d++) got[d] = POISON;
            tq_rotate(x, 2, D, signs, got, isas[i]);
            int64_t diff = 0;
            for (int64_t d = 0; d < D; d++) diff += !same_bits(got[d], rot[d]);
            CHECK(diff == 0, "rotate, D %lld, ISA level %d: %lld of %lld dims differ from mlxn_tq_fwht's bits",
                  (long long)D, (int)isas[i], (long long)diff, (long long)D);
            memcpy(got, rot, sizeof(float) * (size_t)D);
            tq_unrotate(got, D, signs, isas[i]);
            diff = 0;
            for (int64_t d = 0; d < D; d++) diff += !same_bits(got[d], back[d]);
            CHECK(diff == 0, "unrotate, D %lld, ISA level %d: %lld of %lld dims differ from mlxn_tq_fwht's bits",
                  (long long)D, (int)isas[i], (long long)diff, (long long)D);
        }
    }
}

static const char *kernel_name = ""; /* the kernel one_shape checks, for messages */

static void one_shape(int64_t D, int64_t n, int64_t heads, int64_t nt, tq_kscores_fn kernel) {
    const int64_t Tq = nt + 1, rows_q = heads * Tq, M = heads * nt, lds = n + 3, rb = D / 2 + 5; /* rows 5 bytes apart */
    uint8_t *codes = malloc((size_t)(n * rb));
    float *knorm = malloc(sizeof(float) * (size_t)n), *kscale = malloc(sizeof(float) * (size_t)n);
    float *x = malloc(sizeof(float) * (size_t)(rows_q * D));
    const float kfac = 1.0f / TQ_KS_LSCALE;
    int16_t *q16 = malloc(sizeof(int16_t) * (size_t)(rows_q * D));
    float *qs = malloc(sizeof(float) * (size_t)rows_q);
    float *s_ref = malloc(sizeof(float) * (size_t)(M * lds)), *s_fast = malloc(sizeof(float) * (size_t)(M * lds));
    for (int64_t i = 0; i < n * rb; i++) codes[i] = (uint8_t)t_rand_u64();
    for (int64_t j = 0; j < n; j++) knorm[j] = 0.5f + fabsf(t_randn()), kscale[j] = knorm[j] * kfac;
    for (int64_t r = 0; r < rows_q; r++) {
        /* magnitudes from 1e-3 to 1e3; row 1 all zeros, row 2 NaN in one dim (when there are that many) */
        random_query(x + r * D, D, powf(10.0f, (float)(r % 7) - 3.0f));
        if (r == 1) memset(x + r * D, 0, sizeof(float) * (size_t)D);
        if (r == 2) x[r * D + D / 3] = NAN;
        tq_kq_prepare(x + r * D, D, q16 + r * D, qs + r);
        if (r != 1 && r != 2) check_prepare(x + r * D, D, q16 + r * D, qs[r]);
    }
    CHECK(rows_q < 2 || qs[1] == 0.0f, "a zero query's scale is %g, not 0", (double)qs[1]);
    CHECK(rows_q < 3 || isnan(qs[2]), "a NaN query's scale is %g, not NaN", (double)qs[2]);
    tq_kq q = {.q = q16, .qs = qs};
    tq_kq_levels4(q.l16);
    const int64_t q0 = 1; /* the item's rows start one row in */
    if (q0 + (heads - 1) * Tq + nt - 1 >= rows_q) abort();
    for (int64_t i = 0; i < M * lds; i++) s_ref[i] = s_fast[i] = POISON;
    tq_kscores4_scalar(codes, rb, knorm, kfac, n, D, &q, q0, nt, Tq, M, s_ref, lds);
    /* the model against exact dots, for each row of the item with a finite, non-zero query */
    for (int64_t r = 0; r < M; r++) {
        const int64_t qr = q0 + (r / nt) * Tq + r % nt;
        if (qr == 1 || qr == 2) {
            int ok = 1;
            for (int64_t j = 0; j < n; j++) ok &= qr == 1 ? s_ref[r * lds + j] == 0.0f : isnan(s_ref[r * lds + j]);
            CHECK(ok, "D %lld: query row %lld (%s) does not score %s", (long long)D, (long long)qr, qr == 1 ? "zeros" : "NaN",
                  qr == 1 ? "0" : "NaN");
            continue;
        }
        tq_kq one = q;
        one.q = q16 + qr * D, one.qs = qs + qr;
        check_model_accuracy(codes, rb, kscale, n, D, x + qr * D, &one, s_ref + r * lds);
    }
    if (kernel) {
        kernel(codes, rb, knorm, kfac, n, D, &q, q0, nt, Tq, M, s_fast, lds);
        int64_t diff = 0, first = -1;
        for (int64_t i = 0; i < M * lds; i++)
            if (!same_bits(s_ref[i], s_fast[i])) diff++, first = first < 0 ? i : first;
        CHECK(diff == 0, "%s, D %lld n %lld heads %lld nt %lld: %lld scores differ from the model (first at row %lld key %lld: %g, want %g)",
              kernel_name, (long long)D, (long long)n, (long long)heads, (long long)nt, (long long)diff, first < 0 ? 0LL : (long long)(first / lds),
              first < 0 ? 0LL : (long long)(first % lds), first < 0 ? 0.0 : (double)s_fast[first], first < 0 ? 0.0 : (double)s_ref[first]);
    }
    free(codes), free(knorm), free(kscale), free(x), free(q16), free(qs), free(s_ref), free(s_fast);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_tq_kscores");
    check_levels_and_order();
    check_rotations();
    /* each kernel this processor runs (the model is checked on every pass) */
    tq_kscores_fn kernels[2] = {NULL, NULL};
    const char *names[2] = {"avx2", "avx512"};
    const mlxn_cpu_isa best = mlxn_cpu_detect_isa(MLXN_CPU_ISA_AUTO); /* the level a device here takes */
    if (best >= MLXN_CPU_ISA_AVX2) kernels[0] = tq_kscores4_avx2();
    if (best >= MLXN_CPU_ISA_AVX512) kernels[1] = tq_kscores4_avx512();
    for (int k = 0; k < 2; k++) {
        if (!kernels[k] && k > 0) {
            printf("test_tq_kscores: no %s here: that kernel is not checked\n", names[k]);
            continue;
        }
        if (!kernels[k]) printf("test_tq_kscores: no %s here: the model is checked, the kernel is not\n", names[k]);
        kernel_name = names[k];
        const int64_t ns[] = {1, 7, 8, 13, 32, 41};
        for (int64_t D = 64; D <= 512; D *= 2)
            for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
                one_shape(D, ns[i], 3, 1, kernels[k]); /* decode: three heads of one kv head */
                one_shape(D, ns[i], 2, 3, kernels[k]); /* a prefill item: 3 positions of 2 heads */
            }
    }
    return t_finish();
}
