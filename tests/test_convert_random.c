/* Random presets against mlx-lm: tests/golden/check_convert.py wrote each
 * case below with `mlxn convert --random PRESET --seed 7 FLAGS`, loaded it
 * with mlx-lm and recorded its logits for fixed tokens
 * (tests/golden/convert/random.safetensors). The generator is
 * deterministic, so we rebuild the same model here and our runner must give
 * mlx-lm's logits: tightly against its f32-activation run (float paths),
 * within the VNNI tolerance at the best ISA, and within bf16 rounding of
 * mlx-lm's own bf16 run. The case list must match the script's (checked
 * against the golden's metadata). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_util.h"

static const cu_tol TOL_EXACT = {2e-5, 1e-10};
static const cu_tol TOL_FAST = {4e-3, 1e-6};
/* mlx-lm's bf16 activations vs our f32: measured up to 0.091 std, NMSE 2e-4 */
static const cu_tol TOL_BF16 = {0.15, 2e-3};

static const struct {
    const char *preset, *flags; /* flags as the script passes them */
    mlxn_convert_params p;
} CASES[] = {
    {"tiny-llama", "", {0}},
    {"tiny-llama", "-q", {.quantize = 1}},
    {"tiny-qwen3", "-q --bits 3 --group-size 32", {.quantize = 1, .bits = 3, .group_size = 32}},
    {"tiny-qwen3", "--recipe mixed_4_6 --group-size 32", {.recipe = "mixed_4_6", .group_size = 32}},
    {"tiny-gemma3", "-q --mode mxfp4", {.quantize = 1, .mode = MLXN_QUANT_MXFP4}},
    {"tiny-gemma3", "-q --mode nvfp4", {.quantize = 1, .mode = MLXN_QUANT_NVFP4}},
    {"tiny-llama", "-q --mode mxfp8", {.quantize = 1, .mode = MLXN_QUANT_MXFP8}},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

/* The progress callback: calls counted, bytes never go backwards, the
 * last call reports everything, and the total is what the files hold. */
typedef struct progress_log {
    int calls, monotonic;
    int64_t last_done, last_total;
} progress_log;

static void on_progress(void *user, int64_t done, int64_t total) {
    progress_log *l = user;
    if (done < l->last_done || done > total || (l->calls && total != l->last_total)) l->monotonic = 0;
    l->calls++;
    l->last_done = done;
    l->last_total = total;
}

static void check_progress(void) {
    progress_log log = {.monotonic = 1};
    mlxn_convert_params p = {.random_preset = "tiny-llama", .quantize = 1, .seed = 3,
                             .progress = on_progress, .progress_user = &log};
    const char *dst = cu_path("progress");
    CHECK_OK(mlxn_convert(NULL, dst, &p));
    mlxn_weights *w = NULL;
    CHECK_OK(mlxn_weights_open(dst, &w));
    int64_t bytes = 0;
    for (size_t i = 0; w && i < mlxn_weights_count(w); i++) bytes += (int64_t)mlxn_weights_at(w, i)->nbytes;
    CHECK(log.calls == (int)(w ? mlxn_weights_count(w) : 0), "progress: %d calls for %zu tensors", log.calls,
          w ? mlxn_weights_count(w) : 0);
    CHECK(log.monotonic, "progress: bytes went backwards or past the total");
    CHECK(log.last_done == bytes && log.last_total == bytes, "progress: ended at %lld of %lld, files hold %lld",
          (long long)log.last_done, (long long)log.last_total, (long long)bytes);
    mlxn_weights_free(w);
    cu_rm_tree(dst);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_convert_random");
    cu_init_root("test_convert_random");
    mlxn_weights *g = t_golden_open("convert/random.safetensors");
    mlxn_device *exact = t_cpu_device_exact(0), *fast = t_cpu_device(0, MLXN_CPU_ISA_AUTO);
    json_t *cases = NULL, *tokens = NULL;
    if (g) {
        json_error_t e;
        const char *c = mlxn_weights_metadata(g, "cases"), *t = mlxn_weights_metadata(g, "tokens");
        cases = c ? json_loads(c, 0, &e) : NULL;
        tokens = t ? json_loads(t, 0, &e) : NULL;
        CHECK(json_array_size(cases) == N_CASES && json_array_size(tokens) > 0, "golden metadata: cases and tokens");
        CHECK(!strcmp(mlxn_weights_metadata(g, "seed") ? mlxn_weights_metadata(g, "seed") : "", "7"), "seed 7");
    }
    int32_t toks[64];
    int64_t T = (int64_t)json_array_size(tokens);
    for (int64_t i = 0; i < T && i < 64; i++) toks[i] = (int32_t)json_integer_value(json_array_get(tokens, (size_t)i));
    for (size_t c = 0; g && exact && fast && json_array_size(cases) == N_CASES && c < N_CASES; c++) {
        /* the script's case c: [preset, [flag, ...]] */
        json_t *jc = json_array_get(cases, c), *jf = json_array_get(jc, 1);
        char flags[256] = "";
        for (size_t k = 0; k < json_array_size(jf); k++)
            snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "%s%s", k ? " " : "",
                     json_string_value(json_array_get(jf, k)));
        CHECK(!strcmp(json_string_value(json_array_get(jc, 0)), CASES[c].preset) && !strcmp(flags, CASES[c].flags),
              "case %zu: the script ran %s %s, we replay %s %s", c, json_string_value(json_array_get(jc, 0)), flags,
              CASES[c].preset, CASES[c].flags);
        mlxn_convert_params p = CASES[c].p;
        p.random_preset = CASES[c].preset;
        p.seed = 7;
        const char *dst = cu_path("m");
        CHECK_OK(mlxn_convert(NULL, dst, &p));
        char key[32], label[128];
        snprintf(key, sizeof key, "case%zu", c);
        size_t n = 0;
        const float *bf = t_golden_get(g, key, MLXN_DTYPE_F32, &n);
        snprintf(key, sizeof key, "case%zu_f32", c);
        const float *f32 = t_golden_get(g, key, MLXN_DTYPE_F32, NULL);
        int64_t V = 0;
        float *a = cu_logits(exact, dst, toks, T, &V), *b = cu_logits(fast, dst, toks, T, &V);
        if (a && b && bf && f32 && n == (size_t)(T * V)) {
            snprintf(label, sizeof label, "%s %s vs mlx-lm f32 (float paths)", CASES[c].preset, CASES[c].flags);
            cu_compare(label, f32, a, T, V, TOL_EXACT);
            snprintf(label, sizeof label, "%s %s vs mlx-lm f32 (best isa)", CASES[c].preset, CASES[c].flags);
            cu_compare(label, f32, b, T, V, TOL_FAST);
            snprintf(label, sizeof label, "%s %s vs mlx-lm bf16", CASES[c].preset, CASES[c].flags);
            cu_compare(label, bf, b, T, V, TOL_BF16);
        }
        free(a);
        free(b);
        cu_rm_tree(dst);
    }
    check_progress();
    json_decref(cases);
    json_decref(tokens);
    mlxn_weights_free(g);
    mlxn_device_free(exact);
    mlxn_device_free(fast);
    cu_rm_tree(cu_root);
    return t_finish();
}
