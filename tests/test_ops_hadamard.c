/* hadamard: bit-exact against MLX goldens (mx.hadamard_transform, n = 1, 2,
 * 64, 128, 4096; scale 1/sqrt(n), 1 and 2) on every ISA x thread count;
 * random rows for every n = 2^0..2^15 against a double-precision reference
 * (the explicit matrix for small n), every path bit-identical to the scalar
 * one (they do the same additions); in place; strided inputs; bad sizes. */
#include "test_ops_common.h"

#define REF_NMSE 1e-12

static double worst_ref;

/* y = H x * scale in double: the matrix (+-1 by popcount parity) when small,
 * a double-precision butterfly otherwise */
static void ref_fwht(const float *x, int64_t n, double scale, float *y) {
    if (n <= 256) {
        for (int64_t i = 0; i < n; i++) {
            double acc = 0;
            for (int64_t j = 0; j < n; j++) acc += (__builtin_popcountll((unsigned long long)(i & j)) & 1) ? -x[j] : x[j];
            y[i] = (float)(acc * scale);
        }
        return;
    }
    double *t = malloc((size_t)n * sizeof *t);
    for (int64_t i = 0; i < n; i++) t[i] = x[i];
    for (int64_t h = 1; h < n; h *= 2)
        for (int64_t j = 0; j < n; j += 2 * h)
            for (int64_t k = j; k < j + h; k++) {
                double a = t[k], b = t[k + h];
                t[k] = a + b;
                t[k + h] = a - b;
            }
    for (int64_t i = 0; i < n; i++) y[i] = (float)(t[i] * scale);
    free(t);
}

static void test_golden(mlxn_device *devs[OPS_N_DEV]) {
    mlxn_weights *g = t_golden_open("ops/hadamard.safetensors");
    if (!g) return;
    char cases[OPS_MAX_CASES][128];
    int nc = ops_cases(g, cases);
    CHECK(nc >= 7, "hadamard golden: only %d cases", nc);
    for (int k = 0; k < nc; k++) {
        size_t np = 0;
        const float *p = ops_params(g, cases[k], &np);
        if (!p || np != 1) continue;
        for (int d = 0; d < OPS_N_DEV; d++) {
            mlxn_tensor x, want;
            ops_golden(g, devs[d], cases[k], "x", &x);
            ops_golden(g, devs[d], cases[k], "out", &want);
            size_t n = (size_t)mlxn_tensor_numel(&x);
            mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_F32, x.ndim, x.shape, NULL);
            CHECK_OK(mlxn_hadamard(mlxn_device_stream(devs[d]), &x, p[0], &out));
            CHECK(ops_same(ops_f32(&want), ops_f32(&out), n), "hadamard %s on %s: not bit-identical to MLX (NMSE %.3g)",
                  cases[k], ops_dev_label(d), t_nmse(ops_f32(&want), ops_f32(&out), n));
            /* in place */
            CHECK_OK(mlxn_hadamard(mlxn_device_stream(devs[d]), &x, p[0], &x));
            CHECK(ops_same(ops_f32(&want), ops_f32(&x), n), "hadamard %s in place on %s differs from MLX", cases[k],
                  ops_dev_label(d));
            ops_free(&x);
            ops_free(&want);
            ops_free(&out);
        }
    }
    mlxn_weights_free(g);
}

static void test_random(mlxn_device *devs[OPS_N_DEV]) {
    for (int lg = 0; lg <= 15; lg++) {
        int64_t n = (int64_t)1 << lg, rows = lg <= 6 ? 67 : lg <= 12 ? 9 : 2, shp[2] = {rows, n};
        size_t total = (size_t)(rows * n);
        float scale = lg % 2 ? 1.0f / sqrtf((float)n) : 0.5f;
        float *x = ops_randn(total, 1.0f), *ref = malloc(total * sizeof *ref), *first = malloc(total * sizeof *first);
        for (int64_t r = 0; r < rows; r++) ref_fwht(x + r * n, n, scale, ref + r * n);
        for (int d = 0; d < OPS_N_DEV; d++) {
            mlxn_stream *s = mlxn_device_stream(devs[d]);
            mlxn_tensor tx = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, x);
            mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, NULL);
            CHECK_OK(mlxn_hadamard(s, &tx, scale, &out));
            double e = t_nmse(ref, ops_f32(&out), total);
            if (e > worst_ref) worst_ref = e;
            CHECK(e < REF_NMSE, "hadamard n=%lld on %s: NMSE %.3g", (long long)n, ops_dev_label(d), e);
            if (d == 0) memcpy(first, ops_f32(&out), total * sizeof *first);
            else CHECK(ops_same(first, ops_f32(&out), total), "hadamard n=%lld: %s differs from scalar/1t", (long long)n,
                       ops_dev_label(d));
            CHECK_OK(mlxn_hadamard(s, &tx, scale, &tx));
            CHECK(ops_same(first, ops_f32(&tx), total), "hadamard n=%lld in place on %s differs", (long long)n,
                  ops_dev_label(d));
            for (int ls = 1; ls <= 2; ls++) {
                mlxn_tensor sx = ops_strided(devs[d], x, 2, shp, ls, n * ls + 1);
                mlxn_tensor o2 = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, NULL);
                CHECK_OK(mlxn_hadamard(s, &sx, scale, &o2));
                CHECK(ops_same(first, ops_f32(&o2), total), "hadamard n=%lld strided %d on %s differs", (long long)n, ls,
                      ops_dev_label(d));
                ops_free(&sx);
                ops_free(&o2);
            }
            ops_free(&tx);
            ops_free(&out);
        }
        free(x);
        free(ref);
        free(first);
    }
}

static void test_bad_args(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t s12[2] = {2, 12}, sbig[1] = {65536}, s0[2] = {2, 0}, s8[2] = {2, 8}, s16[2] = {2, 16}, sc[1] = {0};
    mlxn_tensor x12 = ops_tensor(dev, MLXN_DTYPE_F32, 2, s12, NULL), xb = ops_tensor(dev, MLXN_DTYPE_F32, 1, sbig, NULL);
    mlxn_tensor x0 = ops_tensor(dev, MLXN_DTYPE_F32, 2, s0, NULL), x8 = ops_tensor(dev, MLXN_DTYPE_F32, 2, s8, NULL);
    mlxn_tensor x16 = ops_tensor(dev, MLXN_DTYPE_F32, 2, s16, NULL), xh = ops_tensor(dev, MLXN_DTYPE_F16, 2, s8, NULL);
    mlxn_tensor scalar = ops_tensor(dev, MLXN_DTYPE_F32, 0, sc, NULL);
    CHECK_FAILS(mlxn_hadamard(s, &x12, 1.0f, &x12), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_hadamard(s, &xb, 1.0f, &xb), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_hadamard(s, &x0, 1.0f, &x0), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_hadamard(s, &x8, 1.0f, &x16), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_hadamard(s, &xh, 1.0f, &x8), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_hadamard(s, &scalar, 1.0f, &scalar), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_hadamard(s, NULL, 1.0f, &x8), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_tensor *all[] = {&x12, &xb, &x0, &x8, &x16, &xh, &scalar};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ops_free(all[i]);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_ops_hadamard");
    mlxn_device *devs[OPS_N_DEV];
    ops_devices(devs);
    test_golden(devs);
    test_random(devs);
    test_bad_args(devs[5]);
    printf("worst NMSE vs the double reference: %.3g (MLX goldens: bit-exact)\n", worst_ref);
    ops_devices_free(devs);
    return t_finish();
}
