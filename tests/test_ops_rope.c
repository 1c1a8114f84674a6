/* rope: against MLX goldens (mx.fast.rope: traditional and not, partial
 * rotary dims, base and explicit freqs, scale != 1, offsets 0 to ~10^5,
 * rank 3 and 4), each both with `offset` and with `offset_tensor`, on every
 * ISA x thread count; random inputs against a reference here; strided
 * inputs; bad arguments. */
#include "test_ops_common.h"

/* Angles are the same f32 numbers as MLX's; sin/cos and the products differ
 * by an ulp or so: NMSE ~1e-14. */
#define GOLDEN_NMSE 1e-12
#define REF_NMSE 1e-12

static double worst_golden, worst_ref;

/* MLX's f32 exp (a degree-6 polynomial for 2^f after rounding x*log2(e) to
 * an integer), written out again here so the reference's inverse
 * frequencies are MLX's to the bit. */
static float mlx_expf(float x) {
    if (x < -88.0f) return 0.0f;
    float y = x * 1.442695f, n = floorf(y + 0.5f), f = y - n;
    static const float c[7] = {1.535336188319500e-4f, 1.339887440266574e-3f, 9.618437357674640e-3f,
                               5.550332471162809e-2f, 2.402264791363012e-1f, 6.931472028550421e-1f, 1.0f};
    float p = c[0];
    for (int i = 1; i < 7; i++) p = fmaf(p, f, c[i]);
    return ldexpf(p, (int)n);
}

typedef struct rope_case {
    int dims, traditional;
    float base, scale;
    int offset;
    const float *freqs; /* [dims/2] or NULL */
} rope_case;

/* x [rows, D] with rows = lead * T -> y */
static void ref_rope(const rope_case *c, const float *x, int64_t rows, int64_t T, int64_t D, float *y) {
    int half = c->dims / 2;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        float pos = ((float)(r % T) + (float)c->offset) * c->scale;
        for (int i = 0; i < half; i++) {
            float inv = c->freqs ? 1.0f / c->freqs[i] : mlx_expf(-(float)i * (logf(c->base) / (float)half));
            double th = (double)(pos * inv), cs = cos(th), sn = sin(th);
            int64_t ia = c->traditional ? 2 * i : i, ib = c->traditional ? 2 * i + 1 : i + half;
            yr[ia] = (float)(xr[ia] * cs - xr[ib] * sn);
            yr[ib] = (float)(xr[ia] * sn + xr[ib] * cs);
        }
        for (int64_t i = c->dims; i < D; i++) yr[i] = xr[i];
    }
}

/* runs one case on dev, with the offset as a number or as a device tensor */
static mlxn_status run_rope(mlxn_device *dev, const rope_case *c, const mlxn_tensor *x, const mlxn_tensor *freqs,
                            int via_tensor, mlxn_tensor *out) {
    mlxn_rope_params p = {.dims = c->dims, .traditional = c->traditional, .base = c->base, .scale = c->scale,
                          .offset = c->offset, .freqs = freqs};
    int64_t one[1] = {1};
    mlxn_tensor ot = {0};
    if (via_tensor) {
        int32_t v = c->offset;
        ot = ops_tensor(dev, MLXN_DTYPE_I32, 1, one, &v);
        p.offset_tensor = &ot;
        p.offset = -999; /* must be ignored */
    }
    mlxn_status st = mlxn_rope(mlxn_device_stream(dev), x, &p, out);
    if (via_tensor) ops_free(&ot);
    return st;
}

static void test_golden(mlxn_device *devs[OPS_N_DEV]) {
    mlxn_weights *g = t_golden_open("ops/rope.safetensors");
    if (!g) return;
    char cases[OPS_MAX_CASES][128];
    int nc = ops_cases(g, cases);
    CHECK(nc >= 15, "rope golden: only %d cases", nc);
    for (int k = 0; k < nc; k++) {
        size_t np = 0;
        const float *p = ops_params(g, cases[k], &np);
        if (!p || np != 5) continue;
        rope_case c = {.dims = (int)p[0], .traditional = p[1] != 0, .base = p[2], .scale = p[3], .offset = (int)p[4]};
        for (int d = 0; d < OPS_N_DEV; d++) {
            mlxn_tensor x, f, want;
            ops_golden(g, devs[d], cases[k], "x", &x);
            int hf = ops_golden(g, devs[d], cases[k], "freqs", &f);
            ops_golden(g, devs[d], cases[k], "out", &want);
            for (int vt = 0; vt <= 1; vt++) {
                mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_F32, x.ndim, x.shape, NULL);
                CHECK_OK(run_rope(devs[d], &c, &x, hf ? &f : NULL, vt, &out));
                double e = t_nmse(ops_f32(&want), ops_f32(&out), (size_t)mlxn_tensor_numel(&x));
                if (e > worst_golden) worst_golden = e;
                CHECK(e < GOLDEN_NMSE, "rope %s (offset %s) on %s: NMSE %.3g vs MLX", cases[k],
                      vt ? "tensor" : "number", ops_dev_label(d), e);
                ops_free(&out);
            }
            ops_free(&x);
            ops_free(&f);
            ops_free(&want);
        }
    }
    mlxn_weights_free(g);
}

static void test_random(mlxn_device *devs[OPS_N_DEV]) {
    static const struct {
        int64_t shape[4];
        int ndim, dims, trad, use_freqs;
        float scale;
        int offset;
    } cs[] = {
        {{2, 8, 33, 128}, 4, 128, 0, 0, 1.0f, 0},      {{2, 8, 33, 128}, 4, 128, 1, 0, 1.0f, 17},
        {{1, 3, 20, 96}, 4, 64, 0, 1, 0.5f, 200000},   {{1, 3, 20, 96}, 4, 64, 1, 1, 0.5f, 200000},
        {{4, 9, 10}, 3, 2, 0, 0, 1.0f, 5},             {{4, 9, 10}, 3, 2, 1, 0, 1.0f, 5},
        {{7, 30}, 2, 22, 0, 0, 3.0f, 1000},            {{7, 30}, 2, 22, 1, 1, 3.0f, 1000},
        {{2, 16, 64, 256}, 4, 192, 0, 0, 1.0f, 4096}, {{3, 1, 2}, 3, 2, 1, 0, 1.0f, 0},
    };
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        int ndim = cs[k].ndim;
        const int64_t *shape = cs[k].shape;
        int64_t D = shape[ndim - 1], T = shape[ndim - 2], n = ops_numel(ndim, shape), rows = n / D;
        int half = cs[k].dims / 2;
        float *x = ops_randn((size_t)n, 1.0f), *fr = malloc((size_t)half * sizeof *fr);
        for (int i = 0; i < half; i++) fr[i] = powf(10000.0f, 2.0f * (float)i / (float)cs[k].dims) * t_uniform(0.5f, 2.0f);
        rope_case c = {.dims = cs[k].dims, .traditional = cs[k].trad, .base = 10000.0f, .scale = cs[k].scale,
                       .offset = cs[k].offset, .freqs = cs[k].use_freqs ? fr : NULL};
        float *ref = malloc((size_t)n * sizeof *ref), *first = malloc((size_t)n * sizeof *first);
        ref_rope(&c, x, rows, T, D, ref);
        for (int d = 0; d < OPS_N_DEV; d++) {
            int64_t fs[1] = {half};
            mlxn_tensor tx = ops_tensor(devs[d], MLXN_DTYPE_F32, ndim, shape, x);
            mlxn_tensor tf = ops_tensor(devs[d], MLXN_DTYPE_F32, 1, fs, fr);
            mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_F32, ndim, shape, NULL);
            CHECK_OK(run_rope(devs[d], &c, &tx, c.freqs ? &tf : NULL, (int)(k % 2), &out));
            double e = t_nmse(ref, ops_f32(&out), (size_t)n);
            if (e > worst_ref) worst_ref = e;
            CHECK(e < REF_NMSE, "rope random case %zu on %s: NMSE %.3g", k, ops_dev_label(d), e);
            if (d % 3 == 0) memcpy(first, ops_f32(&out), (size_t)n * sizeof *first);
            else CHECK(ops_same(first, ops_f32(&out), (size_t)n), "rope case %zu: %s differs from 1 thread", k, ops_dev_label(d));
            for (int ls = 1; ls <= 2; ls++) {
                mlxn_tensor sx = ops_strided(devs[d], x, ndim, shape, ls, D * ls + 5);
                mlxn_tensor o2 = ops_tensor(devs[d], MLXN_DTYPE_F32, ndim, shape, NULL);
                CHECK_OK(run_rope(devs[d], &c, &sx, c.freqs ? &tf : NULL, 0, &o2));
                e = t_nmse(ref, ops_f32(&o2), (size_t)n);
                CHECK(e < REF_NMSE, "rope strided (last stride %d) case %zu on %s: NMSE %.3g", ls, k,
                      ops_dev_label(d), e);
                ops_free(&sx);
                ops_free(&o2);
            }
            ops_free(&tx);
            ops_free(&tf);
            ops_free(&out);
        }
        free(x);
        free(fr);
        free(ref);
        free(first);
    }
}

static void test_bad_args(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t xs[3] = {2, 4, 8}, x1[1] = {8}, f4[1] = {4}, f3[1] = {3}, two[1] = {2}, one[1] = {1}, os[3] = {2, 4, 9};
    mlxn_tensor x = ops_tensor(dev, MLXN_DTYPE_F32, 3, xs, NULL), out = ops_tensor(dev, MLXN_DTYPE_F32, 3, xs, NULL);
    mlxn_tensor xr1 = ops_tensor(dev, MLXN_DTYPE_F32, 1, x1, NULL), xh = ops_tensor(dev, MLXN_DTYPE_F16, 3, xs, NULL);
    mlxn_tensor obad = ops_tensor(dev, MLXN_DTYPE_F32, 3, os, NULL);
    mlxn_tensor f = ops_tensor(dev, MLXN_DTYPE_F32, 1, f4, NULL), fbad = ops_tensor(dev, MLXN_DTYPE_F32, 1, f3, NULL);
    mlxn_tensor fh = ops_tensor(dev, MLXN_DTYPE_F16, 1, f4, NULL);
    mlxn_tensor of = ops_tensor(dev, MLXN_DTYPE_F32, 1, one, NULL), o2 = ops_tensor(dev, MLXN_DTYPE_I32, 1, two, NULL);
    mlxn_rope_params ok = {.dims = 8, .base = 10000.0f, .scale = 1.0f}, p;
    p = ok;
    p.dims = 7;
    CHECK_FAILS(mlxn_rope(s, &x, &p, &out), MLXN_ERR_INVALID_ARGUMENT);
    p.dims = 10;
    CHECK_FAILS(mlxn_rope(s, &x, &p, &out), MLXN_ERR_INVALID_ARGUMENT);
    p.dims = 0;
    CHECK_FAILS(mlxn_rope(s, &x, &p, &out), MLXN_ERR_INVALID_ARGUMENT);
    p = ok;
    p.base = 0.0f;
    CHECK_FAILS(mlxn_rope(s, &x, &p, &out), MLXN_ERR_INVALID_ARGUMENT);
    p.freqs = &f; /* with freqs the base is unused */
    CHECK_OK(mlxn_rope(s, &x, &p, &out));
    p.freqs = &fbad;
    CHECK_FAILS(mlxn_rope(s, &x, &p, &out), MLXN_ERR_SHAPE);
    p.freqs = &fh;
    CHECK_FAILS(mlxn_rope(s, &x, &p, &out), MLXN_ERR_DTYPE);
    p = ok;
    p.offset_tensor = &of;
    CHECK_FAILS(mlxn_rope(s, &x, &p, &out), MLXN_ERR_DTYPE);
    p.offset_tensor = &o2;
    CHECK_FAILS(mlxn_rope(s, &x, &p, &out), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_rope(s, &xr1, &ok, &xr1), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_rope(s, &xh, &ok, &out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_rope(s, &x, &ok, &obad), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_rope(s, &x, NULL, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_rope(s, NULL, &ok, &out), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_tensor *all[] = {&x, &out, &xr1, &xh, &obad, &f, &fbad, &fh, &of, &o2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ops_free(all[i]);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_ops_rope");
    mlxn_device *devs[OPS_N_DEV];
    ops_devices(devs);
    test_golden(devs);
    test_random(devs);
    test_bad_args(devs[0]);
    printf("worst NMSE: vs MLX %.3g, vs reference %.3g\n", worst_golden, worst_ref);
    ops_devices_free(devs);
    return t_finish();
}
