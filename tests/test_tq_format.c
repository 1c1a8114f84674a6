/* The TurboQuant format (src/quant/tq_layout.h) and its committed
 * codebooks (src/quant/tq_codebooks.h, written by tools/gen_tq_codebooks.py):
 *  - codebooks: 2^b sorted, symmetric levels; the published 2/3/4-bit
 *    values; boundaries at the midpoints; the Lloyd-Max centroid condition
 *    (each level = E[X | X in its cell], X ~ N(0,1)) and the distortion,
 *    both by this test's own numerical integration (Simpson's rule);
 *  - encode: the binary search equals a plain count of boundaries below u;
 *  - packing: explicit byte patterns for 2, 3 and 4 bits, random round trips
 *    for every width;
 *  - signs: the documented hash, re-implemented here, and balance. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "quant/tq_codebooks.h"
#include "quant/tq_layout.h"
#include "quant/tq_tables.h"

static double npdf(double x) { return exp(-0.5 * x * x) / sqrt(2.0 * M_PI); }

/* integral of f(x) * npdf(x) over [a, b], composite Simpson, n even */
static double integrate(double a, double b, int n, double (*f)(double, double), double c) {
    double h = (b - a) / n, s = 0.0;
    for (int i = 0; i <= n; i++) {
        double x = a + i * h, w = (i == 0 || i == n) ? 1.0 : (i % 2 ? 4.0 : 2.0);
        s += w * f(x, c) * npdf(x);
    }
    return s * h / 3.0;
}
static double f_one(double x, double c) { (void)x, (void)c; return 1.0; }
static double f_x(double x, double c) { (void)c; return x; }
static double f_sq(double x, double c) { return (x - c) * (x - c); }

static void check_codebook(int bits) {
    const int n = 1 << bits;
    const float *lv = mlxn_tq_levels(bits), *bd = mlxn_tq_bounds(bits);
    CHECK(lv && bd, "%d bits: tables missing", bits);
    if (!lv || !bd) return;
    int sorted = 1, sym = 1, mid = 1;
    for (int k = 0; k + 1 < n; k++) sorted &= lv[k] < lv[k + 1];
    for (int k = 0; k < n; k++) sym &= lv[k] == -lv[n - 1 - k];
    for (int k = 0; k + 1 < n; k++) {
        double m = 0.5 * ((double)lv[k] + (double)lv[k + 1]);
        if (fabs(bd[k] - m) > 2e-7 * fmax(1.0, fabs(m))) mid = 0;
    }
    CHECK(sorted, "%d bits: levels not strictly increasing", bits);
    CHECK(sym, "%d bits: levels not symmetric", bits);
    CHECK(mid, "%d bits: boundaries are not the midpoints of adjacent levels", bits);

    /* centroid condition and distortion by integration over each cell
     * (tails cut at +-15 sigma, where the mass is below 1e-50) */
    double worst = 0.0, mse = 0.0;
    for (int k = 0; k < n; k++) {
        double a = k == 0 ? -15.0 : bd[k - 1], b = k == n - 1 ? 15.0 : bd[k];
        int steps = 20000;
        double mass = integrate(a, b, steps, f_one, 0), mean = integrate(a, b, steps, f_x, 0) / mass;
        double err = fabs(mean - lv[k]);
        if (err > worst) worst = err;
        mse += integrate(a, b, steps, f_sq, lv[k]);
    }
    CHECK(worst < 2e-6, "%d bits: a level is %.3g away from its cell's centroid", bits, worst);
    CHECK(fabs(mse - mlxn_tq_distortion(bits)) < 1e-6 * fmax(1e-3, mse) + 1e-9,
          "%d bits: distortion %.9g by integration vs %.9g in the table", bits, mse, mlxn_tq_distortion(bits));
    printf("  %d bits: %3d levels, max |level - centroid| %.2g, distortion %.7f\n", bits, n, worst, mse);
}

static void check_known_values(void) {
    /* the positive halves published in the issue (7 decimals) */
    static const double l2[] = {0.4527800, 1.5104176};
    static const double l3[] = {0.2450942, 0.7560053, 1.3439093, 2.1519457};
    static const double l4[] = {0.1283950, 0.3880483, 0.6567591, 0.9423405,
                                1.2562312, 1.6180464, 2.0690172, 2.7325896};
    const double *ref[] = {l2, l3, l4};
    for (int bits = 2; bits <= 4; bits++) {
        int h = 1 << (bits - 1);
        const float *lv = mlxn_tq_levels(bits);
        double worst = 0.0;
        /* a plain compare, not fmax(): GCC 12.2 for aarch64 crashes (ICE in
         * vect_transform_reduction) vectorizing an fmax reduction under -std=c11 */
        for (int k = 0; k < h; k++) {
            double d = fabs(lv[h + k] - ref[bits - 2][k]);
            if (d > worst) worst = d;
        }
        CHECK(worst < 1e-6, "%d bits: levels differ from the published values by %.3g", bits, worst);
    }
    CHECK(fabs(MLXN_TQ_DISTORTION_2 - 0.1175) < 1e-4 && fabs(MLXN_TQ_DISTORTION_3 - 0.0345) < 1e-4 &&
              fabs(MLXN_TQ_DISTORTION_4 - 0.0095) < 1e-4,
          "distortions %.5f %.5f %.5f vs the published 0.1175 0.0345 0.0095", MLXN_TQ_DISTORTION_2,
          MLXN_TQ_DISTORTION_3, MLXN_TQ_DISTORTION_4);
}

static void check_encode(void) {
    for (int bits = 2; bits <= 8; bits++) {
        const float *bd = mlxn_tq_bounds(bits);
        const int nb = (1 << bits) - 1;
        int bad = 0;
        for (int t = 0; t < 4000 + nb; t++) {
            /* random values, and every boundary exactly (ties go to the lower code) */
            float u = t < 4000 ? 3.0f * t_randn() : bd[t - 4000];
            uint32_t cnt = 0;
            for (int k = 0; k < nb; k++) cnt += bd[k] < u;
            if (mlxn_tq_encode(bd, bits, u) != cnt) bad++;
        }
        CHECK(bad == 0, "%d bits: encode disagrees with a boundary count %d times", bits, bad);
        CHECK(mlxn_tq_encode(bd, bits, INFINITY) == (uint32_t)nb && mlxn_tq_encode(bd, bits, -INFINITY) == 0 &&
                  mlxn_tq_encode(bd, bits, NAN) == 0,
              "%d bits: +-inf / NaN codes", bits);
    }
}

static void check_packing(void) {
    uint8_t row[MLXN_TQ_MAX_HEAD_DIM + MLXN_TQ_PAD];
    /* 4 bits: low nibble = even coordinate */
    memset(row, 0, sizeof row);
    mlxn_tq_put_code(row, 0, 4, 0x3);
    mlxn_tq_put_code(row, 1, 4, 0xA);
    mlxn_tq_put_code(row, 2, 4, 0xF);
    CHECK(row[0] == 0xA3 && row[1] == 0x0F, "4-bit packing: bytes %02x %02x, expected a3 0f", row[0], row[1]);
    /* 2 bits: byte i holds codes 4i..4i+3 from the low bits up */
    memset(row, 0, sizeof row);
    const uint32_t c2[4] = {1, 2, 3, 0};
    for (int d = 0; d < 4; d++) mlxn_tq_put_code(row, d, 2, c2[d]);
    CHECK(row[0] == 0x39, "2-bit packing: byte %02x, expected 39", row[0]);
    /* 3 bits: 8 codes in a 24-bit little-endian word, code d at bit 3d */
    memset(row, 0, sizeof row);
    uint32_t word = 0;
    for (uint32_t d = 0; d < 8; d++) {
        uint32_t c = (5 * d + 3) & 7;
        mlxn_tq_put_code(row, d, 3, c);
        word |= c << (3 * d);
    }
    CHECK(row[0] == (word & 0xFF) && row[1] == ((word >> 8) & 0xFF) && row[2] == (word >> 16) && row[3] == 0,
          "3-bit packing: %02x %02x %02x %02x, expected %02x %02x %02x 00", row[0], row[1], row[2], row[3],
          word & 0xFF, (word >> 8) & 0xFF, word >> 16);
    CHECK(mlxn_tq_code_bytes(128, 4) == 64 && mlxn_tq_code_bytes(128, 3) == 48 && mlxn_tq_code_bytes(64, 2) == 16 &&
              mlxn_tq_code_bytes(128, 5) == 128 && mlxn_tq_code_bytes(512, 8) == 512,
          "code_bytes");
    for (int bits = 2; bits <= 8; bits++) {
        for (int64_t D = 64; D <= 512; D *= 2) {
            uint32_t codes[MLXN_TQ_MAX_HEAD_DIM];
            memset(row, 0, sizeof row);
            for (int64_t d = 0; d < D; d++) {
                codes[d] = (uint32_t)(t_rand_u64() & ((1u << bits) - 1u));
                mlxn_tq_put_code(row, d, bits, codes[d]);
            }
            int bad = 0;
            for (int64_t d = 0; d < D; d++) bad += mlxn_tq_get_code(row, d, bits) != codes[d];
            int spill = 0;
            for (size_t i = (size_t)mlxn_tq_code_bytes(D, bits); i < sizeof row; i++) spill |= row[i];
            CHECK(bad == 0 && !spill, "%d bits, D %lld: round trip %d wrong, bytes past the row %s", bits,
                  (long long)D, bad, spill ? "written" : "clean");
        }
    }
    CHECK(mlxn_tq_dim_ok(64) && mlxn_tq_dim_ok(128) && mlxn_tq_dim_ok(256) && mlxn_tq_dim_ok(512) &&
              !mlxn_tq_dim_ok(32) && !mlxn_tq_dim_ok(96) && !mlxn_tq_dim_ok(1024) && !mlxn_tq_dim_ok(0) &&
              !mlxn_tq_dim_ok(-64),
          "head dim checks");
    CHECK(!mlxn_tq_bits_ok(1) && !mlxn_tq_bits_ok(9) && mlxn_tq_bits_ok(2) && mlxn_tq_bits_ok(8), "width checks");
}

/* the documented sign rule, written out independently */
static uint32_t mix(uint32_t x) {
    x = (x ^ (x >> 16)) * 0x7feb352du;
    x = (x ^ (x >> 15)) * 0x846ca68bu;
    return x ^ (x >> 16);
}

static void check_signs(void) {
    for (int layer = 0; layer < 4; layer++) {
        uint32_t seed = mlxn_tq_layer_seed(layer);
        CHECK(seed == mix(0x54517562u + (uint32_t)layer), "layer %d seed", layer);
        int bad = 0, neg = 0;
        for (int i = 0; i < 512; i++) {
            float want = (mix(seed ^ mix((uint32_t)i + 0x68E31DA4u)) & 0x80000000u) ? -1.0f : 1.0f;
            float got = mlxn_tq_sign(seed, i);
            bad += got != want;
            neg += got < 0;
        }
        CHECK(bad == 0, "layer %d: %d signs differ from the documented rule", layer, bad);
        CHECK(neg > 200 && neg < 312, "layer %d: %d of 512 signs negative", layer, neg);
    }
    CHECK(mlxn_tq_layer_seed(0) != mlxn_tq_layer_seed(1), "layers share a seed");
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_tq_format");
    for (int bits = 2; bits <= 8; bits++) check_codebook(bits);
    CHECK(mlxn_tq_levels(1) == NULL && mlxn_tq_levels(9) == NULL, "unsupported widths have no table");
    check_known_values();
    check_encode();
    check_packing();
    check_signs();
    return t_finish();
}
