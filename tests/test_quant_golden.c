/* Quantization against real MLX: for every case written by
 * tests/golden/gen_quant.py (affine: bits 1..8 x group 32/64/128 x weight
 * dtype f32/f16/bf16; mxfp4, mxfp8, nvfp4 with and without a global scale,
 * per weight dtype), our mlxn_quantize must reproduce MLX's wq, scales and
 * biases byte for byte, and our mlxn_dequantize of MLX's quantized tensors
 * must reproduce MLX's dequantized output byte for byte, in the weight
 * dtype and in f32. Outputs are poisoned first. The one allowance: where
 * MLX's value is a NaN ours must be a NaN too, whatever its payload (the
 * bits of a NaN made by arithmetic differ between processors). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static float as_f32(mlxn_dtype dt, const void *p, size_t i) {
    if (dt == MLXN_DTYPE_F32) return ((const float *)p)[i];
    if (dt == MLXN_DTYPE_U8 || dt == MLXN_DTYPE_U32) return 0.0f; /* never NaN */
    uint16_t h = ((const uint16_t *)p)[i];
    return dt == MLXN_DTYPE_F16 ? mlxn_f16_to_f32(h) : mlxn_bf16_to_f32(h);
}

/* Number of elements that differ in bytes (NaN matches any NaN); the first
 * one is printed. */
static size_t count_diff(const char *what, mlxn_dtype dt, const void *want, const void *got, size_t n) {
    size_t es = mlxn_dtype_size(dt), bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp((const char *)want + i * es, (const char *)got + i * es, es) == 0) continue;
        if (isnan(as_f32(dt, want, i)) && isnan(as_f32(dt, got, i))) continue;
        if (bad++ == 0) {
            uint32_t a = 0, b = 0;
            memcpy(&a, (const char *)want + i * es, es);
            memcpy(&b, (const char *)got + i * es, es);
            fprintf(stderr, "  %s[%zu]: MLX 0x%0*x (%g), ours 0x%0*x (%g)\n", what, i, (int)es * 2, a,
                    (double)as_f32(dt, want, i), (int)es * 2, b, (double)as_f32(dt, got, i));
        }
    }
    return bad;
}

static const mlxn_dtype weight_dtypes[3] = {MLXN_DTYPE_F32, MLXN_DTYPE_F16, MLXN_DTYPE_BF16};
static const char *dtype_tag[3] = {"f32", "f16", "bf16"};

/* One case: tensors <name>.{w,wq,scales,biases?,deq,deq_f32,global_scale?}. */
static void check_case(mlxn_weights *g, const char *file, const char *name, mlxn_quant_params q, mlxn_dtype wdt) {
    char key[96];
    snprintf(key, sizeof key, "%s.w", name);
    const mlxn_weight_info *wi = mlxn_weights_find(g, key);
    CHECK(wi && wi->ndim == 2, "%s: %s missing or not 2-D", file, key);
    if (!wi || wi->ndim != 2) return;
    int64_t rows = wi->shape[0], cols = wi->shape[1];
    size_t n = (size_t)(rows * cols), ng = (size_t)(rows * cols / q.group_size);
    size_t nw = (size_t)(rows * mlxn_quant_words_per_row(&q, cols));
    int affine = q.mode == MLXN_QUANT_AFFINE;
    mlxn_dtype sdt = mlxn_quant_scale_dtype(&q, wdt);
    size_t cnt[7] = {0};
    const void *w = t_golden_get(g, key, wdt, &cnt[0]);
    snprintf(key, sizeof key, "%s.wq", name);
    const uint32_t *wq = t_golden_get(g, key, MLXN_DTYPE_U32, &cnt[1]);
    snprintf(key, sizeof key, "%s.scales", name);
    const void *sc = t_golden_get(g, key, sdt, &cnt[2]);
    const void *bi = NULL;
    if (affine) {
        snprintf(key, sizeof key, "%s.biases", name);
        bi = t_golden_get(g, key, sdt, &cnt[3]);
    }
    snprintf(key, sizeof key, "%s.deq", name);
    const void *deq = t_golden_get(g, key, wdt, &cnt[4]);
    snprintf(key, sizeof key, "%s.deq_f32", name);
    const float *deq32 = t_golden_get(g, key, MLXN_DTYPE_F32, &cnt[5]);
    snprintf(key, sizeof key, "%s.global_scale", name);
    if (mlxn_weights_find(g, key)) {
        const float *gs = t_golden_get(g, key, MLXN_DTYPE_F32, &cnt[6]);
        if (gs) q.global_scale = gs[0];
    }
    if (!w || !wq || !sc || (affine && !bi) || !deq || !deq32) return;
    CHECK(cnt[0] == n && cnt[1] == nw && cnt[2] == ng && (!affine || cnt[3] == ng) && cnt[4] == n && cnt[5] == n,
          "%s %s: golden tensor sizes disagree with [%lld, %lld]", file, name, (long long)rows, (long long)cols);
    if (!(cnt[1] == nw && cnt[2] == ng && cnt[4] == n && cnt[5] == n)) return;

    size_t ssz = mlxn_dtype_size(sdt), wsz = mlxn_dtype_size(wdt);
    uint32_t *oq = malloc(nw * 4);
    void *os = malloc(ng * ssz), *ob = malloc(ng * ssz), *od = malloc(n * wsz);
    float *od32 = malloc(n * 4);
    t_poison(oq, nw * 4);
    t_poison(os, ng * ssz);
    t_poison(ob, ng * ssz);
    t_poison(od, n * wsz);
    t_poison(od32, n * 4);
    CHECK_OK(mlxn_quantize(&q, wdt, w, rows, cols, oq, os, affine ? ob : NULL));
    CHECK_OK(mlxn_dequantize(&q, sdt, wq, sc, bi, rows, cols, wdt, od));
    CHECK_OK(mlxn_dequantize(&q, sdt, wq, sc, bi, rows, cols, MLXN_DTYPE_F32, od32));
    size_t d_wq = count_diff("wq", MLXN_DTYPE_U32, wq, oq, nw);
    size_t d_sc = count_diff("scales", sdt, sc, os, ng);
    size_t d_bi = affine ? count_diff("biases", sdt, bi, ob, ng) : 0;
    size_t d_dq = count_diff("deq", wdt, deq, od, n);
    size_t d_32 = count_diff("deq_f32", MLXN_DTYPE_F32, deq32, od32, n);
    CHECK(d_wq == 0 && d_sc == 0 && d_bi == 0,
          "%s %s quantize: %zu of %zu words, %zu of %zu scales, %zu biases differ from MLX", file, name, d_wq, nw,
          d_sc, ng, d_bi);
    CHECK(d_dq == 0 && d_32 == 0, "%s %s dequantize: %zu (%s) and %zu (f32) of %zu values differ from MLX", file,
          name, d_dq, mlxn_dtype_name(wdt), d_32, n);
    free(oq), free(os), free(ob), free(od), free(od32);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_quant_golden");
    const int bits[] = {1, 2, 3, 4, 5, 6, 8}, groups[] = {32, 64, 128};
    for (int d = 0; d < 3; d++) {
        char file[64];
        snprintf(file, sizeof file, "quant/affine_%s.safetensors", dtype_tag[d]);
        mlxn_weights *g = t_golden_open(file);
        if (!g) continue;
        const char *ver = mlxn_weights_metadata(g, "mlx_version");
        CHECK(ver != NULL, "%s: no mlx_version metadata", file);
        if (d == 0) printf("goldens written by MLX %s\n", ver ? ver : "?");
        for (int b = 0; b < 7; b++)
            for (int k = 0; k < 3; k++) {
                char name[32];
                snprintf(name, sizeof name, "b%d_g%d", bits[b], groups[k]);
                mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = bits[b], .group_size = groups[k]};
                check_case(g, file, name, q, weight_dtypes[d]);
            }
        mlxn_weights_free(g);

        snprintf(file, sizeof file, "quant/fp_%s.safetensors", dtype_tag[d]);
        g = t_golden_open(file);
        if (!g) continue;
        CHECK(mlxn_weights_metadata(g, "mlx_version") != NULL, "%s: no mlx_version metadata", file);
        struct { const char *name; mlxn_quant_params q; } fp[] = {
            {"mxfp4", {.mode = MLXN_QUANT_MXFP4, .bits = 4, .group_size = 32}},
            {"mxfp8", {.mode = MLXN_QUANT_MXFP8, .bits = 8, .group_size = 32}},
            {"nvfp4", {.mode = MLXN_QUANT_NVFP4, .bits = 4, .group_size = 16}},
            {"nvfp4_gs", {.mode = MLXN_QUANT_NVFP4, .bits = 4, .group_size = 16}},
            {"nvfp4_gs2", {.mode = MLXN_QUANT_NVFP4, .bits = 4, .group_size = 16}},
        };
        for (size_t i = 0; i < sizeof fp / sizeof fp[0]; i++) {
            check_case(g, file, fp[i].name, fp[i].q, weight_dtypes[d]);
            /* the global-scale cases must really carry one */
            if (strncmp(fp[i].name, "nvfp4_gs", 8) == 0) {
                char key[64];
                snprintf(key, sizeof key, "%s.global_scale", fp[i].name);
                CHECK(mlxn_weights_find(g, key) != NULL, "%s: %s missing", file, key);
            }
        }
        mlxn_weights_free(g);
    }
    return t_finish();
}
