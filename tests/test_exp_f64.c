/* core/exp_f64.c, the samplers' exp over arrays of doubles, against libm's
 * exp: within 1 ulp over the normal range (fresh random arguments each
 * run, plus the usage range x <= 0 densely and the range's ends), the
 * documented edges (0 below ln(DBL_MIN), +inf above ln(DBL_MAX), -inf -> 0,
 * NaN -> NaN), and the vector path bit for bit against the one-at-a-time
 * path, at every length mod 4 and in arrays of 1..7 (the vector loop's
 * tail). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/exp_f64.h"
#include "harness.h"

/* distance in ulps between two finite positive doubles */
static double ulps(double got, double want) {
    int64_t a, b;
    memcpy(&a, &got, 8), memcpy(&b, &want, 8);
    return (double)llabs(a - b);
}

static double rand_in(double lo, double hi) { return lo + (hi - lo) * ((double)(t_rand_u64() >> 11) * 0x1.0p-53); }

enum { N = 1 << 18 };

static void check_range(double *x, double *y, double lo, double hi, const char *what) {
    for (int i = 0; i < N; i++) x[i] = rand_in(lo, hi);
    x[0] = lo, x[1] = hi, x[2] = 0.0, x[3] = -0.0;
    memcpy(y, x, N * sizeof *y); /* in place: every element is read and written */
    mlxn_exp_f64(y, N);
    double worst = 0.0, at = 0.0;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        const double want = exp(x[i]);
        const double u = isfinite(y[i]) && y[i] > 0.0 ? ulps(y[i], want) : INFINITY;
        if (!(u <= 1.0)) bad++;
        if (!(u <= worst)) worst = u, at = x[i];
    }
    CHECK(bad == 0, "%s: %d of %d values more than 1 ulp from libm's exp (worst %g ulps at x = %.17g)", what, bad, N,
          worst, at);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_exp_f64");
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *z = malloc(N * sizeof *z);
    if (!x || !y || !z) {
        CHECK(0, "out of memory");
        return t_finish();
    }
    check_range(x, y, -708.39, 709.78, "the normal range");
    check_range(x, y, -40.0, 0.0, "the samplers' range");
    check_range(x, y, -1e-3, 1e-3, "near 0");

    /* edges */
    double e[] = {-INFINITY, -1000.0, -708.4, -708.3964185322641, 709.782712893384, 709.8, 1000.0, INFINITY, NAN, 0.0};
    const int ne = (int)(sizeof e / sizeof e[0]);
    mlxn_exp_f64(e, (size_t)ne);
    CHECK(e[0] == 0.0 && e[1] == 0.0 && e[2] == 0.0, "below ln(DBL_MIN): %g %g %g, want 0", e[0], e[1], e[2]);
    CHECK(e[3] >= DBL_MIN && ulps(e[3], exp(-708.3964185322641)) <= 1.0, "at ln(DBL_MIN): %g", e[3]);
    CHECK(isfinite(e[4]) && ulps(e[4], exp(709.782712893384)) <= 1.0, "at ln(DBL_MAX): %g", e[4]);
    CHECK(isinf(e[5]) && isinf(e[6]) && isinf(e[7]) && e[5] > 0, "above ln(DBL_MAX): %g %g %g, want inf", e[5], e[6],
          e[7]);
    CHECK(isnan(e[8]), "NaN: %g", e[8]);
    CHECK(e[9] == 1.0, "exp(0) = %.17g", e[9]);

    /* the vector path against the scalar one, bit for bit, every tail length */
    for (int i = 0; i < N; i++) x[i] = i % 97 == 0 ? -INFINITY : i % 89 == 0 ? NAN : rand_in(-800.0, 800.0);
    for (int len = N - 3; len <= N; len++) {
        memcpy(y, x, (size_t)len * sizeof *y), memcpy(z, x, (size_t)len * sizeof *z);
        mlxn_exp_f64(y, (size_t)len);
        mlxn_exp_f64_scalar(z, (size_t)len);
        int diff = 0;
        for (int i = 0; i < len; i++) diff += memcmp(&y[i], &z[i], 8) != 0 && !(isnan(y[i]) && isnan(z[i]));
        CHECK(diff == 0, "length %d: %d values differ between the vector and scalar paths", len, diff);
    }
    /* short arrays: mostly the tail after the 4-lane loop */
    int diff = 0;
    for (int trial = 0; trial < 8192; trial++) {
        const int len = 1 + trial % 7;
        for (int i = 0; i < len; i++) x[i] = rand_in(-50.0, 50.0);
        memcpy(y, x, (size_t)len * sizeof *y), memcpy(z, x, (size_t)len * sizeof *z);
        mlxn_exp_f64(y, (size_t)len);
        mlxn_exp_f64_scalar(z, (size_t)len);
        for (int i = 0; i < len; i++) diff += memcmp(&y[i], &z[i], 8) != 0;
    }
    CHECK(diff == 0, "arrays of 1..7: %d values differ between the vector and scalar paths", diff);
    free(x), free(y), free(z);
    return t_finish();
}
