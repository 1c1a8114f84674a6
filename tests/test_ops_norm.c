/* rms_norm and layer_norm: against MLX goldens (mx.fast.rms_norm with
 * f32/f16/bf16 weights and Gemma's 1 + w, mx.fast.layer_norm with and
 * without w/b) on every ISA x thread count; fresh random inputs against a
 * double-precision reference here; identical bits across thread counts;
 * strided inputs and weights; bad arguments. */
#include "test_ops_common.h"

/* MLX computes in f32 and so do we: a few ulp per element, NMSE ~1e-14.
 * layer_norm subtracts an f32 mean (as MLX does); for rows far from zero
 * mean (the cases that add 50 or 100) one ulp of that mean is ~1e-6 of the
 * centred values, so its NMSE reaches ~5e-11 there. */
#define RMS_NMSE 1e-12
#define LN_NMSE 2e-10
#define GOLDEN_NMSE (layer ? LN_NMSE : RMS_NMSE)
#define REF_NMSE (layer ? LN_NMSE : RMS_NMSE)

static double worst_golden[2], worst_ref[2]; /* [rms, layer] */

/* x [rows, D] -> y; w/b raw [D] of dtype wdt/bdt or NULL; layer selects layer_norm */
static void ref_norm(int layer, const float *x, int64_t rows, int64_t D, const void *w, mlxn_dtype wdt, float off,
                     const void *b, mlxn_dtype bdt, float eps, float *y) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * D;
        double mean = 0, ss = 0;
        if (layer) {
            for (int64_t i = 0; i < D; i++) mean += xr[i];
            mean /= (double)D;
        }
        for (int64_t i = 0; i < D; i++) ss += (xr[i] - mean) * (xr[i] - mean);
        double inv = 1.0 / sqrt(ss / (double)D + eps);
        for (int64_t i = 0; i < D; i++) {
            double v = (xr[i] - mean) * inv;
            if (w) v *= t_norm_weight(w, wdt, i, off);
            if (b) v += t_norm_weight(b, bdt, i, 0.0f);
            y[r * D + i] = (float)v;
        }
    }
}

static void test_golden(mlxn_device *devs[OPS_N_DEV], int layer) {
    const char *file = layer ? "ops/layer_norm.safetensors" : "ops/rms_norm.safetensors";
    mlxn_weights *g = t_golden_open(file);
    if (!g) return;
    char cases[OPS_MAX_CASES][128];
    int nc = ops_cases(g, cases);
    CHECK(nc >= 7, "%s: only %d cases", file, nc);
    for (int c = 0; c < nc; c++) {
        size_t np = 0;
        const float *p = ops_params(g, cases[c], &np);
        if (!p || np < 1) continue;
        for (int d = 0; d < OPS_N_DEV; d++) {
            mlxn_tensor x, w, b, want;
            ops_golden(g, devs[d], cases[c], "x", &x);
            int hw = ops_golden(g, devs[d], cases[c], "w", &w);
            int hb = ops_golden(g, devs[d], cases[c], "b", &b);
            ops_golden(g, devs[d], cases[c], "out", &want);
            mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_F32, x.ndim, x.shape, NULL);
            if (layer)
                CHECK_OK(mlxn_layer_norm(mlxn_device_stream(devs[d]), &x, hw ? &w : NULL, hb ? &b : NULL, p[0], &out));
            else
                CHECK_OK(mlxn_rms_norm(mlxn_device_stream(devs[d]), &x, hw ? &w : NULL, p[0], np > 1 ? p[1] : 0.0f,
                                       &out));
            size_t n = (size_t)mlxn_tensor_numel(&x);
            double e = t_nmse(ops_f32(&want), ops_f32(&out), n);
            if (e > worst_golden[layer]) worst_golden[layer] = e;
            CHECK(e < GOLDEN_NMSE, "%s %s on %s: NMSE %.3g vs MLX", file, cases[c], ops_dev_label(d), e);
            ops_free(&x);
            ops_free(&w);
            ops_free(&b);
            ops_free(&want);
            ops_free(&out);
        }
    }
    mlxn_weights_free(g);
}

/* random rows (some shapes large enough to split over 2-3 threads), every
 * weight dtype, offsets, strided x; each device vs the reference and all
 * thread counts of one ISA bit-identical */
static void test_random(mlxn_device *devs[OPS_N_DEV], int layer) {
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {2, 33}, {4, 100}, {37, 2000}, {2, 4096}, {50, 513}};
    static const mlxn_dtype wdts[3] = {MLXN_DTYPE_F32, MLXN_DTYPE_F16, MLXN_DTYPE_BF16};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int64_t rows = shapes[si][0], D = shapes[si][1];
        int64_t shp[2] = {rows, D};
        size_t n = (size_t)(rows * D);
        float *x = ops_randn(n, si % 2 ? 4.0f : 0.5f);
        if (layer && si % 3 == 2)
            for (size_t i = 0; i < n; i++) x[i] += 50.0f; /* far from zero mean */
        mlxn_dtype wdt = wdts[si % 3], bdt = wdts[(si + 1) % 3];
        int use_w = si % 4 != 1, use_b = layer && si % 4 != 2;
        float off = (!layer && si % 3 == 1) ? 1.0f : 0.0f, eps = si % 2 ? 1e-6f : 1e-5f;
        uint16_t *w16 = malloc((size_t)D * 4), *b16 = malloc((size_t)D * 4);
        float *wf = (float *)w16, *bf = (float *)b16; /* f32 views of the same storage */
        for (int64_t i = 0; i < D; i++) {
            float wv = t_randn(), bv = t_randn();
            if (wdt == MLXN_DTYPE_F32) wf[i] = wv;
            else w16[i] = wdt == MLXN_DTYPE_F16 ? mlxn_f32_to_f16(wv) : mlxn_f32_to_bf16(wv);
            if (bdt == MLXN_DTYPE_F32) bf[i] = bv;
            else b16[i] = bdt == MLXN_DTYPE_F16 ? mlxn_f32_to_f16(bv) : mlxn_f32_to_bf16(bv);
        }
        float *ref = malloc(n * sizeof *ref), *first = malloc(n * sizeof *first);
        ref_norm(layer, x, rows, D, use_w ? (void *)w16 : NULL, wdt, off, use_b ? (void *)b16 : NULL, bdt, eps, ref);
        for (int d = 0; d < OPS_N_DEV; d++) {
            int64_t wshape[1] = {D};
            mlxn_tensor tx = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, x);
            mlxn_tensor tw = ops_tensor(devs[d], wdt, 1, wshape, w16);
            mlxn_tensor tb = ops_tensor(devs[d], bdt, 1, wshape, b16);
            mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, NULL);
            mlxn_stream *s = mlxn_device_stream(devs[d]);
            if (layer)
                CHECK_OK(mlxn_layer_norm(s, &tx, use_w ? &tw : NULL, use_b ? &tb : NULL, eps, &out));
            else
                CHECK_OK(mlxn_rms_norm(s, &tx, use_w ? &tw : NULL, eps, off, &out));
            double e = t_nmse(ref, ops_f32(&out), n);
            if (e > worst_ref[layer]) worst_ref[layer] = e;
            CHECK(e < REF_NMSE, "%s random [%lld, %lld] on %s: NMSE %.3g", layer ? "layer_norm" : "rms_norm",
                  (long long)rows, (long long)D, ops_dev_label(d), e);
            if (d % 3 == 0) memcpy(first, ops_f32(&out), n * sizeof *first);
            else
                CHECK(ops_same(first, ops_f32(&out), n), "%s [%lld, %lld]: %s differs from 1 thread",
                      layer ? "layer_norm" : "rms_norm", (long long)rows, (long long)D, ops_dev_label(d));
            /* strided x: rows padded (vector path) and every other element (scalar path) */
            for (int ls = 1; ls <= 2; ls++) {
                mlxn_tensor sx = ops_strided(devs[d], x, 2, shp, ls, D * ls + 3);
                mlxn_tensor o2 = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, shp, NULL);
                if (layer)
                    CHECK_OK(mlxn_layer_norm(s, &sx, use_w ? &tw : NULL, use_b ? &tb : NULL, eps, &o2));
                else
                    CHECK_OK(mlxn_rms_norm(s, &sx, use_w ? &tw : NULL, eps, off, &o2));
                e = t_nmse(ref, ops_f32(&o2), n);
                CHECK(e < REF_NMSE, "strided (last stride %d) [%lld, %lld] on %s: NMSE %.3g", ls, (long long)rows,
                      (long long)D, ops_dev_label(d), e);
                ops_free(&sx);
                ops_free(&o2);
            }
            ops_free(&tx);
            ops_free(&tw);
            ops_free(&tb);
            ops_free(&out);
        }
        /* a strided f32 weight vector */
        if (wdt == MLXN_DTYPE_F32 && use_w) {
            int64_t wshape[1] = {D};
            mlxn_tensor tx = ops_tensor(devs[8], MLXN_DTYPE_F32, 2, shp, x);
            mlxn_tensor tw = ops_strided(devs[8], wf, 1, wshape, 3, 3 * D);
            mlxn_tensor tb = ops_tensor(devs[8], bdt, 1, wshape, b16);
            mlxn_tensor out = ops_tensor(devs[8], MLXN_DTYPE_F32, 2, shp, NULL);
            if (layer)
                CHECK_OK(mlxn_layer_norm(mlxn_device_stream(devs[8]), &tx, &tw, use_b ? &tb : NULL, eps, &out));
            else
                CHECK_OK(mlxn_rms_norm(mlxn_device_stream(devs[8]), &tx, &tw, eps, off, &out));
            double e = t_nmse(ref, ops_f32(&out), n);
            CHECK(e < REF_NMSE, "strided weight [%lld, %lld]: NMSE %.3g", (long long)rows, (long long)D, e);
            ops_free(&tx);
            ops_free(&tw);
            ops_free(&tb);
            ops_free(&out);
        }
        free(x);
        free(w16);
        free(b16);
        free(ref);
        free(first);
    }
}

static void test_bad_args(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t xs[2] = {3, 8}, ws[1] = {8}, w9[1] = {9}, os[2] = {3, 9}, s0[1] = {0};
    mlxn_tensor x = ops_tensor(dev, MLXN_DTYPE_F32, 2, xs, NULL);
    mlxn_tensor xh = ops_tensor(dev, MLXN_DTYPE_F16, 2, xs, NULL);
    mlxn_tensor w = ops_tensor(dev, MLXN_DTYPE_BF16, 1, ws, NULL);
    mlxn_tensor wbad = ops_tensor(dev, MLXN_DTYPE_F32, 1, w9, NULL);
    mlxn_tensor wint = ops_tensor(dev, MLXN_DTYPE_I32, 1, ws, NULL);
    mlxn_tensor out = ops_tensor(dev, MLXN_DTYPE_F32, 2, xs, NULL);
    mlxn_tensor obad = ops_tensor(dev, MLXN_DTYPE_F32, 2, os, NULL);
    mlxn_tensor oh = ops_tensor(dev, MLXN_DTYPE_F16, 2, xs, NULL);
    mlxn_tensor scalar = ops_tensor(dev, MLXN_DTYPE_F32, 0, s0, NULL);
    float zeros[24] = {0};
    mlxn_tensor ostr = ops_strided(dev, zeros, 2, xs, 1, 11);
    CHECK_FAILS(mlxn_rms_norm(s, &xh, &w, 1e-5f, 0, &out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_rms_norm(s, &x, &wint, 1e-5f, 0, &out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_rms_norm(s, &x, &wbad, 1e-5f, 0, &out), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_rms_norm(s, &x, &w, 1e-5f, 0, &obad), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_rms_norm(s, &x, &w, 1e-5f, 0, &oh), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_rms_norm(s, &x, &w, 1e-5f, 0, &ostr), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_rms_norm(s, &scalar, NULL, 1e-5f, 0, &scalar), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_rms_norm(s, NULL, &w, 1e-5f, 0, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_rms_norm(NULL, &x, &w, 1e-5f, 0, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_layer_norm(s, &x, &w, &wbad, 1e-5f, &out), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_layer_norm(s, &x, &wint, NULL, 1e-5f, &out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_layer_norm(s, &xh, NULL, NULL, 1e-5f, &out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_layer_norm(s, &x, NULL, NULL, 1e-5f, &obad), MLXN_ERR_SHAPE);
    /* a tensor on another device */
    mlxn_device *other = t_cpu_device(1, MLXN_CPU_ISA_SCALAR);
    mlxn_tensor xo = ops_tensor(other, MLXN_DTYPE_F32, 2, xs, NULL);
    CHECK_FAILS(mlxn_rms_norm(s, &xo, NULL, 1e-5f, 0, &out), MLXN_ERR_INVALID_ARGUMENT);
    ops_free(&xo);
    mlxn_device_free(other);
    mlxn_tensor *all[] = {&x, &xh, &w, &wbad, &wint, &out, &obad, &oh, &scalar, &ostr};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ops_free(all[i]);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_ops_norm");
    mlxn_device *devs[OPS_N_DEV];
    ops_devices(devs);
    for (int layer = 0; layer <= 1; layer++) {
        test_golden(devs, layer);
        test_random(devs, layer);
    }
    test_bad_args(devs[4]);
    printf("worst NMSE: rms_norm vs MLX %.3g, vs double reference %.3g; layer_norm %.3g, %.3g\n", worst_golden[0],
           worst_ref[0], worst_golden[1], worst_ref[1]);
    ops_devices_free(devs);
    return t_finish();
}
