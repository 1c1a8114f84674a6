/* softmax, gelu (erf and tanh), silu, swiglu, geglu and argmax: against
 * MLX goldens (mx.softmax precise with huge magnitudes, -inf masks and
 * all-NaN rows; nn.silu/gelu/gelu_approx incl. saturated tails; mx.argmax
 * with ties, NaN, +-inf, +-0) on every ISA x thread count; random inputs
 * against double-precision references here; identical bits across thread
 * counts; strided inputs; bad arguments. */
#include "test_ops_common.h"

/* f32 with polynomial exp/erf/tanh (MLX's own are polynomials too): a few
 * ulp per element, NMSE ~1e-14 */
#define GOLDEN_NMSE 1e-12
#define REF_NMSE 1e-12
/* Elementwise, each output is also held to |got - ref| <= ACT_TOL |x * up|:
 * the f32 formulas (MLX's) lose relative accuracy where the value is tiny
 * next to x (gelu(-5) = x (1 + erf) / 2 cancels to ~1e-7 |x|), so an error
 * relative to the input is what they promise; NMSE is checked on tensors of
 * 64+ elements, where such tails cannot dominate. */
#define ACT_TOL 1e-6

static double worst_golden[2], worst_ref[2]; /* [softmax, activations] */
static double worst_in_rel;

/* max over i of |got - ref| / |scale_i| (+inf on NaN) */
static double in_rel_err(const float *ref, const float *got, const float *x, const float *u, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]) / (fabs((double)x[i] * (u ? u[i] : 1.0f)) + 1e-30);
        if (!(d <= m)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* kind: 0 silu, 1 gelu erf, 2 gelu tanh (the golden file's codes) */
static double ref_act(int kind, double x) {
    switch (kind) {
    case 0: return x / (1.0 + exp(-x));
    case 1: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    default: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    }
}

static mlxn_status run_act(mlxn_stream *s, int kind, const mlxn_tensor *x, const mlxn_tensor *up, mlxn_tensor *out) {
    mlxn_gelu_kind gk = kind == 2 ? MLXN_GELU_TANH : MLXN_GELU_ERF;
    if (up) return kind == 0 ? mlxn_swiglu(s, x, up, out) : mlxn_geglu(s, x, up, gk, out);
    return kind == 0 ? mlxn_silu(s, x, out) : mlxn_gelu(s, x, gk, out);
}

static void ref_softmax(const float *x, int64_t rows, int64_t N, float *y) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * N;
        double m = -INFINITY, sum = 0;
        int bad = 0;
        for (int64_t i = 0; i < N; i++) {
            bad |= isnan(xr[i]) || xr[i] == INFINITY;
            if (xr[i] > m) m = xr[i];
        }
        bad |= m == -INFINITY;
        for (int64_t i = 0; i < N; i++) sum += exp(xr[i] - m);
        for (int64_t i = 0; i < N; i++) y[r * N + i] = bad ? NAN : (float)(exp(xr[i] - m) / sum);
    }
}

static int32_t ref_argmax(const float *x, int64_t N) {
    for (int64_t i = 0; i < N; i++)
        if (isnan(x[i])) return (int32_t)i;
    int64_t at = 0;
    for (int64_t i = 1; i < N; i++)
        if (x[i] > x[at]) at = i;
    return (int32_t)at;
}

/* ---- goldens -------------------------------------------------------------------- */

static void golden_float(mlxn_device *devs[OPS_N_DEV], const char *file, int is_softmax, int min_cases) {
    mlxn_weights *g = t_golden_open(file);
    if (!g) return;
    char cases[OPS_MAX_CASES][128];
    int nc = ops_cases(g, cases);
    CHECK(nc >= min_cases, "%s: only %d cases", file, nc);
    for (int k = 0; k < nc; k++) {
        size_t np = 0;
        const float *p = ops_params(g, cases[k], &np);
        if (!p || np != 1) continue;
        for (int d = 0; d < OPS_N_DEV; d++) {
            mlxn_tensor x, up, want;
            mlxn_stream *s = mlxn_device_stream(devs[d]);
            ops_golden(g, devs[d], cases[k], "x", &x);
            int hu = ops_golden(g, devs[d], cases[k], "up", &up);
            ops_golden(g, devs[d], cases[k], "out", &want);
            mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_F32, x.ndim, x.shape, NULL);
            if (is_softmax) CHECK_OK(mlxn_softmax(s, &x, &out));
            else CHECK_OK(run_act(s, (int)p[0], &x, hu ? &up : NULL, &out));
            double e = ops_nmse_nan(ops_f32(&want), ops_f32(&out), (size_t)mlxn_tensor_numel(&x));
            if (e > worst_golden[!is_softmax]) worst_golden[!is_softmax] = e;
            CHECK(e < GOLDEN_NMSE, "%s %s on %s: NMSE %.3g vs MLX", file, cases[k], ops_dev_label(d), e);
            ops_free(&x);
            ops_free(&up);
            ops_free(&want);
            ops_free(&out);
        }
    }
    mlxn_weights_free(g);
}

static void golden_argmax(mlxn_device *devs[OPS_N_DEV]) {
    mlxn_weights *g = t_golden_open("ops/argmax.safetensors");
    if (!g) return;
    char cases[OPS_MAX_CASES][128];
    int nc = ops_cases(g, cases);
    CHECK(nc >= 5, "argmax golden: only %d cases", nc);
    for (int k = 0; k < nc; k++) {
        for (int d = 0; d < OPS_N_DEV; d++) {
            mlxn_tensor x, want;
            ops_golden(g, devs[d], cases[k], "x", &x);
            ops_golden(g, devs[d], cases[k], "out", &want);
            mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_I32, x.ndim - 1, x.shape, NULL);
            CHECK_OK(mlxn_argmax(mlxn_device_stream(devs[d]), &x, &out));
            size_t n = (size_t)mlxn_tensor_numel(&out);
            const int32_t *a = mlxn_tensor_host(&want), *b = mlxn_tensor_host(&out);
            int bad = want.dtype != MLXN_DTYPE_I32;
            for (size_t i = 0; !bad && i < n; i++) bad = a[i] != b[i];
            CHECK(!bad, "argmax %s on %s differs from MLX", cases[k], ops_dev_label(d));
            ops_free(&x);
            ops_free(&want);
            ops_free(&out);
        }
    }
    mlxn_weights_free(g);
}

/* ---- random --------------------------------------------------------------------- */

static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {2, 33}, {4, 100}, {5, 3001}, {37, 2000}, {2, 17}};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

static void random_act(mlxn_device *devs[OPS_N_DEV]) {
    for (size_t si = 0; si < N_SHAPES; si++)
        for (int kind = 0; kind < 3; kind++)
            for (int gated = 0; gated <= 1; gated++) {
                int64_t rows = shapes[si][0], D = shapes[si][1], shp[2] = {rows, D};
                size_t n = (size_t)(rows * D);
                float *x = ops_randn(n, 4.0f), *u = ops_randn(n, 1.0f);
                float *ref = malloc(n * sizeof *ref), *first = malloc(n * sizeof *first);
                for (size_t i = 0; i < n; i++) ref[i] = (float)(ref_act(kind, x[i]) * (gated ? u[i] : 1.0));
                for (int d = 0; d < OPS_N_DEV; d++) {
                    mlxn_stream *s = mlxn_device_stream(devs[d]);
                    mlxn_tensor tx = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, x);
                    mlxn_tensor tu = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, u);
                    mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, NULL);
                    CHECK_OK(run_act(s, kind, &tx, gated ? &tu : NULL, &out));
                    double e = t_nmse(ref, ops_f32(&out), n);
                    if (n >= 64 && e > worst_ref[1]) worst_ref[1] = e;
                    CHECK(n < 64 || e < REF_NMSE, "act %d gated %d [%lld, %lld] on %s: NMSE %.3g", kind, gated,
                          (long long)rows, (long long)D, ops_dev_label(d), e);
                    double r = in_rel_err(ref, ops_f32(&out), x, gated ? u : NULL, n);
                    if (r > worst_in_rel) worst_in_rel = r;
                    CHECK(r < ACT_TOL, "act %d gated %d [%lld, %lld] on %s: error %.3g of |x|", kind, gated,
                          (long long)rows, (long long)D, ops_dev_label(d), r);
                    if (d % 3 == 0) memcpy(first, ops_f32(&out), n * sizeof *first);
                    else CHECK(ops_same(first, ops_f32(&out), n), "act %d: %s differs from 1 thread", kind, ops_dev_label(d));
                    /* strided gate (padded rows, then every other element), up strided the other way */
                    for (int ls = 1; ls <= 2; ls++) {
                        mlxn_tensor sx = ops_strided(devs[d], x, 2, shp, ls, D * ls + 1);
                        mlxn_tensor su = ops_strided(devs[d], u, 2, shp, 3 - ls, D * (3 - ls) + 2);
                        mlxn_tensor o2 = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, NULL);
                        CHECK_OK(run_act(s, kind, &sx, gated ? &su : NULL, &o2));
                        r = in_rel_err(ref, ops_f32(&o2), x, gated ? u : NULL, n);
                        CHECK(r < ACT_TOL, "act %d strided %d on %s: error %.3g of |x|", kind, ls, ops_dev_label(d), r);
                        ops_free(&sx);
                        ops_free(&su);
                        ops_free(&o2);
                    }
                    ops_free(&tx);
                    ops_free(&tu);
                    ops_free(&out);
                }
                free(x);
                free(u);
                free(ref);
                free(first);
            }
}

static void random_softmax(mlxn_device *devs[OPS_N_DEV]) {
    for (size_t si = 0; si < N_SHAPES; si++) {
        int64_t rows = shapes[si][0], N = shapes[si][1], shp[2] = {rows, N};
        size_t n = (size_t)(rows * N);
        float *x = ops_randn(n, si % 2 ? 20.0f : 1.0f);
        /* masks: a -inf every 5th element of row 0; all of row 1 -inf but one; row 2 +1e4 */
        for (int64_t i = 0; i < N; i += 5) x[i] = -INFINITY;
        if (rows > 1)
            for (int64_t i = 1; i < N; i++) x[N + i] = -INFINITY;
        if (rows > 2)
            for (int64_t i = 0; i < N; i++) x[2 * N + i] += 1e4f;
        float *ref = malloc(n * sizeof *ref), *first = malloc(n * sizeof *first);
        ref_softmax(x, rows, N, ref);
        for (int d = 0; d < OPS_N_DEV; d++) {
            mlxn_stream *s = mlxn_device_stream(devs[d]);
            mlxn_tensor tx = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, x);
            mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, NULL);
            CHECK_OK(mlxn_softmax(s, &tx, &out));
            double e = ops_nmse_nan(ref, ops_f32(&out), n);
            if (e > worst_ref[0]) worst_ref[0] = e;
            CHECK(e < REF_NMSE, "softmax [%lld, %lld] on %s: NMSE %.3g", (long long)rows, (long long)N,
                  ops_dev_label(d), e);
            if (d % 3 == 0) memcpy(first, ops_f32(&out), n * sizeof *first);
            else CHECK(ops_same(first, ops_f32(&out), n), "softmax: %s differs from 1 thread", ops_dev_label(d));
            for (int ls = 1; ls <= 2; ls++) {
                mlxn_tensor sx = ops_strided(devs[d], x, 2, shp, ls, N * ls + 7);
                mlxn_tensor o2 = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, NULL);
                CHECK_OK(mlxn_softmax(s, &sx, &o2));
                e = ops_nmse_nan(ref, ops_f32(&o2), n);
                CHECK(e < REF_NMSE, "softmax strided %d on %s: NMSE %.3g", ls, ops_dev_label(d), e);
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

static void random_argmax(mlxn_device *devs[OPS_N_DEV]) {
    static const int64_t ashapes[][2] = {{1, 1}, {3, 7}, {9, 33}, {20, 5000}, {64, 100}, {2, 151936}};
    for (size_t si = 0; si < sizeof ashapes / sizeof ashapes[0]; si++) {
        int64_t rows = ashapes[si][0], N = ashapes[si][1], shp[2] = {rows, N};
        size_t n = (size_t)(rows * N);
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++) x[i] = (float)(int)t_uniform(-50.0f, 50.0f); /* many ties */
        for (int64_t r = 0; r < rows; r++) {
            int64_t i = (int64_t)(t_rand_u64() % (uint64_t)N), j = (int64_t)(t_rand_u64() % (uint64_t)N);
            if (r % 4 == 1) x[r * N + i] = NAN;
            if (r % 4 == 2) x[r * N + i] = INFINITY, x[r * N + j] = INFINITY;
            if (r % 4 == 3) x[r * N + i] = 100.0f, x[r * N + j] = 100.0f;
        }
        int32_t *ref = malloc((size_t)rows * sizeof *ref);
        for (int64_t r = 0; r < rows; r++) ref[r] = ref_argmax(x + r * N, N);
        for (int d = 0; d < OPS_N_DEV; d++) {
            mlxn_stream *s = mlxn_device_stream(devs[d]);
            for (int ls = 0; ls <= 2; ls++) { /* 0: contiguous */
                mlxn_tensor tx = ls ? ops_strided(devs[d], x, 2, shp, ls, N * ls + 3)
                                    : ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, x);
                mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_I32, 1, shp, NULL);
                CHECK_OK(mlxn_argmax(s, &tx, &out));
                const int32_t *got = mlxn_tensor_host(&out);
                int bad = 0;
                for (int64_t r = 0; r < rows; r++) bad += got[r] != ref[r];
                CHECK(bad == 0, "argmax [%lld, %lld] (stride %d) on %s: %d rows wrong", (long long)rows, (long long)N,
                      ls, ops_dev_label(d), bad);
                ops_free(&tx);
                ops_free(&out);
            }
        }
        free(x);
        free(ref);
    }
}

static void test_bad_args(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t xs[2] = {3, 8}, ys[2] = {3, 9}, r3[1] = {3}, r4[1] = {4}, e0[2] = {3, 0}, s0[1] = {0};
    mlxn_tensor x = ops_tensor(dev, MLXN_DTYPE_F32, 2, xs, NULL), out = ops_tensor(dev, MLXN_DTYPE_F32, 2, xs, NULL);
    mlxn_tensor xh = ops_tensor(dev, MLXN_DTYPE_F16, 2, xs, NULL), y = ops_tensor(dev, MLXN_DTYPE_F32, 2, ys, NULL);
    mlxn_tensor a3 = ops_tensor(dev, MLXN_DTYPE_I32, 1, r3, NULL), a4 = ops_tensor(dev, MLXN_DTYPE_I32, 1, r4, NULL);
    mlxn_tensor af = ops_tensor(dev, MLXN_DTYPE_F32, 1, r3, NULL), empty = ops_tensor(dev, MLXN_DTYPE_F32, 2, e0, NULL);
    mlxn_tensor scalar = ops_tensor(dev, MLXN_DTYPE_F32, 0, s0, NULL);
    float zeros[24] = {0};
    mlxn_tensor ostr = ops_strided(dev, zeros, 2, xs, 1, 9);
    CHECK_FAILS(mlxn_softmax(s, &xh, &out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_softmax(s, &x, &y), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_softmax(s, &x, &ostr), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_softmax(s, &scalar, &scalar), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_gelu(s, &x, (mlxn_gelu_kind)7, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_gelu(s, &xh, MLXN_GELU_ERF, &out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_silu(s, &x, &y), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_silu(s, &x, NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_swiglu(s, &x, &y, &out), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_swiglu(s, &x, &xh, &out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_geglu(s, &x, &x, (mlxn_gelu_kind)-1, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_geglu(s, &x, NULL, MLXN_GELU_TANH, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_argmax(s, &x, &af), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_argmax(s, &x, &a4), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_argmax(s, &xh, &a3), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_argmax(s, &empty, &a3), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_argmax(s, &scalar, &a3), MLXN_ERR_SHAPE);
    /* gelu / silu of a scalar tensor is fine */
    float v = -1.5f;
    mlxn_tensor sv = ops_tensor(dev, MLXN_DTYPE_F32, 0, s0, &v), so = ops_tensor(dev, MLXN_DTYPE_F32, 0, s0, NULL);
    CHECK_OK(mlxn_silu(s, &sv, &so));
    CHECK(fabs(ops_f32(&so)[0] - ref_act(0, -1.5)) < 1e-6, "silu(-1.5) = %g", ops_f32(&so)[0]);
    mlxn_tensor *all[] = {&x, &out, &xh, &y, &a3, &a4, &af, &empty, &scalar, &ostr, &sv, &so};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ops_free(all[i]);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_ops_act");
    mlxn_device *devs[OPS_N_DEV];
    ops_devices(devs);
    golden_float(devs, "ops/softmax.safetensors", 1, 8);
    golden_float(devs, "ops/activations.safetensors", 0, 11);
    golden_argmax(devs);
    random_act(devs);
    random_softmax(devs);
    random_argmax(devs);
    test_bad_args(devs[3]);
    printf("worst NMSE: softmax vs MLX %.3g, vs double reference %.3g; activations %.3g, %.3g "
           "(worst error relative to |x * up|: %.3g)\n",
           worst_golden[0], worst_ref[0], worst_golden[1], worst_ref[1], worst_in_rel);
    ops_devices_free(devs);
    return t_finish();
}
