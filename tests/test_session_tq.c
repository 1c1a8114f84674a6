/* Sessions with a TurboQuant KV cache (mlxn_session_params kv_k_bits /
 * kv_v_bits), on random-weight models of head_dim 64 (the tiny-llama-d64
 * and tiny-gemma3-d64 presets, written by mlxn_convert; the committed tiny
 * golden models have head_dim 16/32, which the cache does not take):
 *  - naming: mlxn_kv_cache_parse's forms and its errors;
 *  - creation errors: head_dim 16 and 32 (the golden models) and widths
 *    outside 2..8 fail at mlxn_session_new with a message naming them;
 *  - KV bytes per token, from the documented formula (codes of K and V
 *    plus two f32 norms per kv head and layer; dense 2 x D x element);
 *  - tq8 logits close to the dense f32 session's (llama; gemma with
 *    sliding-window layers of window 8 over 40 tokens);
 *  - the sliding-window ring that wraps (prefill chunk 4: a ring of 16
 *    positions) gives the logits of a ring that never wraps (chunk 64);
 *  - truncation: back by a few tokens and run again = the straight run;
 *    too far back for the ring fails, changing nothing; reset reruns;
 *  - widths differing for K and V (k4v8) run and stay close.
 * The real model (SmolLM2) is tests/test_session_tq_smollm2.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_util.h"

static mlxn_model *load_preset(mlxn_device *dev, const char *preset, char *dir, size_t n) {
    snprintf(dir, n, "%s/%s", cu_root, preset);
    mlxn_convert_params cp = {.random_preset = preset, .seed = 7, .dtype = MLXN_DTYPE_F32};
    mlxn_model *m = NULL;
    CHECK_OK(mlxn_convert(NULL, dir, &cp));
    CHECK_OK(mlxn_model_load(dir, dev, NULL, &m));
    return m;
}

/* Logits of every position of ids [n] in a fresh session with params p
 * (NULL on failure, reported). */
static float *run_all(mlxn_model *m, const mlxn_session_params *p, const int32_t *ids, int64_t n) {
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    mlxn_session *s = NULL;
    float *l = malloc(sizeof(float) * (size_t)(n * V));
    if (l) t_poison(l, sizeof(float) * (size_t)(n * V));
    CHECK_OK(mlxn_session_new(m, p, &s));
    if (s && l) CHECK_OK(mlxn_session_forward(s, ids, n, MLXN_LOGITS_ALL, l));
    mlxn_session_free(s);
    return l;
}

/* The same, one token per forward call. */
static float *run_steps(mlxn_model *m, const mlxn_session_params *p, const int32_t *ids, int64_t n) {
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    mlxn_session *s = NULL;
    float *l = malloc(sizeof(float) * (size_t)(n * V));
    if (l) t_poison(l, sizeof(float) * (size_t)(n * V));
    CHECK_OK(mlxn_session_new(m, p, &s));
    for (int64_t i = 0; s && l && i < n; i++) CHECK_OK(mlxn_session_forward(s, ids + i, 1, MLXN_LOGITS_LAST, l + i * V));
    mlxn_session_free(s);
    return l;
}

/* The largest per-row max |a - b| over the row's std of a, and the NMSE. */
static void compare(const float *a, const float *b, int64_t rows, int64_t V, double *max_rel, double *nmse) {
    *max_rel = 0;
    *nmse = t_nmse(a, b, (size_t)(rows * V));
    for (int64_t r = 0; r < rows; r++) {
        const float *x = a + r * V, *y = b + r * V;
        double mean = 0, var = 0, worst = 0;
        for (int64_t i = 0; i < V; i++) mean += x[i];
        mean /= (double)V;
        for (int64_t i = 0; i < V; i++) var += (x[i] - mean) * (x[i] - mean);
        double sd = sqrt(var / (double)V);
        for (int64_t i = 0; i < V; i++) {
            double d = fabs((double)x[i] - y[i]);
            if (!(d <= worst)) worst = d; /* NaN makes it NaN */
        }
        double rel = sd > 0 ? worst / sd : worst;
        if (!(rel <= *max_rel)) *max_rel = rel;
    }
}

static void test_parse(void) {
    struct {
        const char *name;
        mlxn_dtype dt;
        int k, v;
    } ok[] = {{"f32", MLXN_DTYPE_F32, 0, 0},   {"f16", MLXN_DTYPE_F16, 0, 0}, {"bf16", MLXN_DTYPE_BF16, 0, 0},
              {"tq2", MLXN_DTYPE_F32, 2, 2},   {"tq3", MLXN_DTYPE_F32, 3, 3}, {"tq8", MLXN_DTYPE_F32, 8, 8},
              {"tq", MLXN_DTYPE_F32, MLXN_KV_TQ_DEFAULT_BITS, MLXN_KV_TQ_DEFAULT_BITS},
              {"k4v8", MLXN_DTYPE_F32, 4, 8},  {"k8v2", MLXN_DTYPE_F32, 8, 2}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        mlxn_session_params p = {.kv_k_bits = 5, .kv_v_bits = 5, .prefill_chunk = 3};
        CHECK_OK(mlxn_kv_cache_parse(ok[i].name, &p));
        CHECK(p.kv_dtype == ok[i].dt && p.kv_k_bits == ok[i].k && p.kv_v_bits == ok[i].v && p.prefill_chunk == 3,
              "%s -> dtype %d k %d v %d", ok[i].name, (int)p.kv_dtype, p.kv_k_bits, p.kv_v_bits);
    }
    const char *bad[] = {"", "tq1", "tq9", "tq0", "tq10", "tq4x", "k4v", "k4v9", "k1v4", "k4v8x", "q4", "F32",
                         "int8", "kv48", "k44v8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mlxn_session_params p = {0};
        CHECK_FAILS(mlxn_kv_cache_parse(bad[i], &p), MLXN_ERR_INVALID_ARGUMENT);
        CHECK(strstr(mlxn_last_error(), "tq2..tq8") || strstr(mlxn_last_error(), "2..8 bits"),
              "'%s': the message lists the forms or the widths: %s", bad[i],
              mlxn_last_error());
        CHECK(p.kv_k_bits == 0 && p.kv_v_bits == 0 && p.kv_dtype == 0, "'%s' changed the params", bad[i]);
    }
    CHECK_FAILS(mlxn_kv_cache_parse(NULL, &(mlxn_session_params){0}), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_kv_cache_parse("tq4", NULL), MLXN_ERR_INVALID_ARGUMENT);
}

/* The committed golden models have head_dim 16 (llama) and 32 (gemma). */
static void test_bad_head_dim(mlxn_device *dev) {
    const struct {
        const char *dir;
        int head_dim;
    } g[] = {{"models/llama_f32", 16}, {"models/gemma3_text_f32", 32}, {"models/qwen3_q8g64", 16}};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        char path[2048], want[64];
        snprintf(path, sizeof path, "%s/%s", MLXN_TEST_GOLDEN_DIR, g[i].dir);
        mlxn_model *m = NULL;
        CHECK_OK(mlxn_model_load(path, dev, NULL, &m));
        if (!m) continue;
        mlxn_session_params p = {.kv_k_bits = 4, .kv_v_bits = 4};
        mlxn_session *s = (mlxn_session *)&p;
        CHECK_FAILS(mlxn_session_new(m, &p, &s), MLXN_ERR_UNSUPPORTED);
        snprintf(want, sizeof want, "head_dim is %d", g[i].head_dim);
        CHECK(s == NULL && strstr(mlxn_last_error(), want) && strstr(mlxn_last_error(), "power of two"),
              "%s: the message names the model's head_dim and what is needed: %s", g[i].dir, mlxn_last_error());
        if (s != (mlxn_session *)&p) mlxn_session_free(s);
        mlxn_model_free(m);
    }
}

static void test_bad_widths(mlxn_model *m) {
    const int w[][2] = {{1, 4}, {4, 1}, {9, 4}, {4, 9}, {16, 16}, {-4, 4}, {4, 0}, {0, 4}};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        mlxn_session_params p = {.kv_k_bits = w[i][0], .kv_v_bits = w[i][1]};
        mlxn_session *s = NULL;
        CHECK_FAILS(mlxn_session_new(m, &p, &s), MLXN_ERR_UNSUPPORTED);
        char want[64];
        snprintf(want, sizeof want, "keys %d and values %d", w[i][0], w[i][1]);
        CHECK(s == NULL && strstr(mlxn_last_error(), want) && strstr(mlxn_last_error(), "2..8"),
              "k%d v%d: the message names the widths: %s", w[i][0], w[i][1], mlxn_last_error());
    }
}

static void test_bytes(mlxn_model *m) {
    /* tiny-llama-d64: 2 layers, 2 kv heads, head_dim 64 */
    const struct {
        const char *kind;
        size_t want;
    } c[] = {{"f32", 2 * 2 * 2 * 64 * 4}, {"bf16", 2 * 2 * 2 * 64 * 2}, {"tq4", 2 * 2 * (32 + 32 + 8)},
             {"tq2", 2 * 2 * (16 + 16 + 8)}, {"tq3", 2 * 2 * (24 + 24 + 8)}, {"tq5", 2 * 2 * (64 + 64 + 8)},
             {"k4v8", 2 * 2 * (32 + 64 + 8)}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        mlxn_session_params p = {.max_context = 64};
        CHECK_OK(mlxn_kv_cache_parse(c[i].kind, &p));
        mlxn_session *s = NULL;
        CHECK_OK(mlxn_session_new(m, &p, &s));
        size_t got = mlxn_session_kv_bytes_per_token(s);
        CHECK(got == c[i].want, "%s: %zu KV bytes per token, want %zu", c[i].kind, got, c[i].want);
        mlxn_session_free(s);
    }
    CHECK(mlxn_session_kv_bytes_per_token(NULL) == 0, "NULL session: 0 bytes");
}

static void test_close(mlxn_model *m, const char *label, const int32_t *ids, int64_t n, const char *kind,
                       double tol_rel, double tol_nmse) {
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    mlxn_session_params dense = {.prefill_chunk = 5}, tq = {.prefill_chunk = 5};
    CHECK_OK(mlxn_kv_cache_parse(kind, &tq));
    float *a = run_all(m, &dense, ids, n), *b = run_all(m, &tq, ids, n);
    if (a && b) {
        double rel, nmse;
        compare(a, b, n, V, &rel, &nmse);
        CHECK(rel <= tol_rel && nmse <= tol_nmse, "%s %s vs dense f32: max rel %.3g (tol %.3g), NMSE %.3g (tol %.3g)",
              label, kind, rel, tol_rel, nmse, tol_nmse);
        printf("  %s %s vs dense f32 over %lld tokens: max |diff|/std %.3g, NMSE %.3g\n", label, kind, (long long)n,
               rel, nmse);
    }
    free(a);
    free(b);
}

/* gemma: window 8 on sliding layers. A ring of 16 positions (chunk 4) wraps
 * twice over 40 tokens; the same with chunk 64 (a ring of 71) never wraps. */
static void test_ring(mlxn_model *m, const int32_t *ids, int64_t n) {
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    mlxn_session_params small = {.prefill_chunk = 4, .kv_k_bits = 6, .kv_v_bits = 6};
    mlxn_session_params big = {.prefill_chunk = 64, .kv_k_bits = 6, .kv_v_bits = 6};
    float *a = run_all(m, &small, ids, n), *b = run_all(m, &big, ids, n);
    /* token by token (the same projections' rounding in both, so the same
       codes): the ring of 16 that wraps against the ring of 71 that does not */
    float *a1 = run_steps(m, &small, ids, n), *b1 = run_steps(m, &big, ids, n);
    if (a1 && b1) {
        double rel, nmse;
        compare(b1, a1, n, V, &rel, &nmse);
        CHECK(rel <= 1e-4 && nmse <= 1e-10, "wrapped ring vs unwrapped, token by token: max rel %.3g, NMSE %.3g", rel,
              nmse);
        printf("  gemma window 8 token by token, ring of 16 (wraps) vs 71: max |diff|/std %.3g, NMSE %.3g\n", rel, nmse);
    }
    free(a1);
    free(b1);
    if (a && b) {
        double rel, nmse;
        compare(b, a, n, V, &rel, &nmse);
        /* chunks of 4 vs 64: the projections round differently, which may
           move a coordinate across a code boundary now and then (seen: max
           rel 0.04, NMSE 4e-5 for one seed of 40) */
        CHECK(rel <= 0.2 && nmse <= 1e-3, "wrapped ring vs unwrapped: max rel %.3g, NMSE %.3g", rel, nmse);
        printf("  gemma window 8, ring of 16 (wraps) vs 71: max |diff|/std %.3g, NMSE %.3g\n", rel, nmse);
    }

    /* truncation: run 30, back to 27, run 27..39 = the straight run (ring 16) */
    mlxn_session *s = NULL;
    float *l = malloc(sizeof(float) * (size_t)(n * V));
    CHECK_OK(mlxn_session_new(m, &small, &s));
    if (s && l && a) {
        t_poison(l, sizeof(float) * (size_t)(n * V));
        CHECK_OK(mlxn_session_forward(s, ids, 30, MLXN_LOGITS_NONE, NULL));
        CHECK_OK(mlxn_session_truncate(s, 27));
        CHECK(mlxn_session_position(s) == 27, "position after truncate: %lld", (long long)mlxn_session_position(s));
        CHECK_OK(mlxn_session_forward(s, ids + 27, n - 27, MLXN_LOGITS_ALL, l));
        double rel, nmse;
        compare(a + 27 * V, l, n - 27, V, &rel, &nmse);
        CHECK(rel <= 2e-3 && nmse <= 1e-7, "truncate 30 -> 27 and rerun vs straight: max rel %.3g, NMSE %.3g", rel,
              nmse);
        /* at 40 with a ring of 16 the sliding layers keep positions 24..39:
           position 20 needs 13..19 */
        CHECK_FAILS(mlxn_session_truncate(s, 20), MLXN_ERR_UNSUPPORTED);
        CHECK(strstr(mlxn_last_error(), "sliding window 8") != NULL, "truncate message: %s", mlxn_last_error());
        CHECK(mlxn_session_position(s) == n, "a failed truncate changed the position to %lld",
              (long long)mlxn_session_position(s));
        /* 32 needs 25..31: still held */
        CHECK_OK(mlxn_session_truncate(s, 32));
        mlxn_session_reset(s);
        CHECK(mlxn_session_position(s) == 0, "reset");
        t_poison(l, sizeof(float) * (size_t)(n * V));
        CHECK_OK(mlxn_session_forward(s, ids, n, MLXN_LOGITS_ALL, l));
        CHECK(!memcmp(a, l, sizeof(float) * (size_t)(n * V)), "after reset, the same run gives other logits");
        /* after a reset and 10 tokens, truncating to 5 needs nothing the ring lost */
        mlxn_session_reset(s);
        CHECK_OK(mlxn_session_forward(s, ids, 10, MLXN_LOGITS_NONE, NULL));
        CHECK_OK(mlxn_session_truncate(s, 5));
    }
    free(l);
    mlxn_session_free(s);
    free(a);
    free(b);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_session_tq");
    cu_init_root("test_session_tq");
    mlxn_device *dev = t_cpu_device(0, MLXN_CPU_ISA_AUTO);
    test_parse();
    if (!dev) return t_finish();
    test_bad_head_dim(dev);

    enum { N = 40 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(t_rand_u64() % 256);
    char dl[2048], dg[2048];
    mlxn_model *ml = load_preset(dev, "tiny-llama-d64", dl, sizeof dl);
    mlxn_model *mg = load_preset(dev, "tiny-gemma3-d64", dg, sizeof dg);
    if (ml) {
        test_bad_widths(ml);
        test_bytes(ml);
        /* measured: max rel 0.02, NMSE 3e-5 (both) */
        test_close(ml, "llama", ids, N, "tq8", 0.15, 1e-3);
        test_close(ml, "llama", ids, N, "k4v8", 0.15, 1e-3);
    }
    if (mg) {
        /* measured: max rel 0.07, NMSE 1.7e-4 */
        test_close(mg, "gemma", ids, N, "tq8", 0.3, 2e-3);
        test_ring(mg, ids, N);
    }
    mlxn_model_free(ml);
    mlxn_model_free(mg);
    cu_rm_tree(dl);
    cu_rm_tree(dg);
    rmdir(cu_root);
    mlxn_device_free(dev);
    return t_finish();
}
