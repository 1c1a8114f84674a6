/* Sampler tests: each logits processor and filter against hand-computed
 * values (mlx-lm's semantics and order), greedy decoding, the sampled
 * distribution at two temperatures, seeding, and bad parameters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static mlxn_sampler *make(mlxn_sampler_params p, int32_t vocab) {
    mlxn_sampler *s = NULL;
    CHECK_OK(mlxn_sampler_new(&p, vocab, &s));
    return s;
}

static void expect(const float *got, const float *want, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        int ok = (isinf(want[i]) && isinf(got[i]) && (want[i] < 0) == (got[i] < 0)) || fabsf(got[i] - want[i]) <= 1e-5f;
        CHECK(ok, "%s: [%d] = %g, want %g", what, i, (double)got[i], (double)want[i]);
    }
}

static void test_penalties(void) {
    int32_t hist[] = {2, 1, 2, 4};
    int32_t bias_ids[] = {0, 2, 0};
    float bias_vals[] = {1.0f, 1.0f, 0.5f};
    /* bias first: token 2 is 3+1 = 4 before the repetition penalty halves it */
    mlxn_sampler *s = make((mlxn_sampler_params){.temperature = 1, .repetition_penalty = 2.0f, .presence_penalty = 0.5f,
                                                 .frequency_penalty = 0.25f, .logit_bias_ids = bias_ids,
                                                 .logit_bias_values = bias_vals, .n_logit_bias = 3},
                           5);
    if (s) {
        float l[] = {1.0f, -2.0f, 3.0f, 0.5f, 0.0f};
        CHECK_OK(mlxn_sampler_apply_penalties(s, l, hist, 4));
        /* 0: 1+1+0.5; 1: -2*2 -0.5 -0.25; 2: (3+1)/2 -0.5 -2*0.25; 3: untouched; 4: 0/2 -0.5 -0.25 */
        expect(l, (float[]){2.5f, -4.75f, 1.0f, 0.5f, -0.75f}, 5, "all penalties");
        mlxn_sampler_free(s);
    }
    /* the context window: only the last 2 tokens (2, 4) count */
    s = make((mlxn_sampler_params){.temperature = 1, .repetition_penalty = 2.0f, .repetition_context_size = 2}, 5);
    if (s) {
        float l[] = {1.0f, -2.0f, 3.0f, 0.5f, 0.4f};
        CHECK_OK(mlxn_sampler_apply_penalties(s, l, hist, 4));
        expect(l, (float[]){1.0f, -2.0f, 1.5f, 0.5f, 0.2f}, 5, "repetition window");
        mlxn_sampler_free(s);
    }
    /* frequency counts repeats inside the window, presence does not */
    s = make((mlxn_sampler_params){.temperature = 1, .frequency_penalty = 1.0f, .frequency_context_size = 3}, 5);
    if (s) {
        float l[5] = {0};
        CHECK_OK(mlxn_sampler_apply_penalties(s, l, (int32_t[]){2, 2, 2, 2}, 4));
        expect(l, (float[]){0, 0, -3.0f, 0, 0}, 5, "frequency window");
        mlxn_sampler_free(s);
    }
    s = make((mlxn_sampler_params){.temperature = 1, .presence_penalty = 1.0f}, 5);
    if (s) {
        float l[5] = {0};
        CHECK_OK(mlxn_sampler_apply_penalties(s, l, (int32_t[]){2, 2, 2, 2}, 4));
        expect(l, (float[]){0, 0, -1.0f, 0, 0}, 5, "presence once");
        /* empty history: nothing */
        CHECK_OK(mlxn_sampler_apply_penalties(s, l, NULL, 0));
        expect(l, (float[]){0, 0, -1.0f, 0, 0}, 5, "empty history");
        mlxn_sampler_free(s);
    }
}

static void filter(mlxn_sampler_params p, const float *probs, int n, const int *keep, const char *what) {
    mlxn_sampler *s = make(p, n);
    if (!s) return;
    float lp[16], want[16];
    for (int i = 0; i < n; i++) {
        lp[i] = logf(probs[i]);
        want[i] = keep[i] ? lp[i] : -INFINITY;
    }
    CHECK_OK(mlxn_sampler_apply_filters(s, lp));
    expect(lp, want, n, what);
    mlxn_sampler_free(s);
}

static void test_filters(void) {
    const float p[] = {0.15f, 0.5f, 0.05f, 0.3f};
    /* top_p: a token goes when the mass strictly above it is >= top_p:
     * above(0.5)=0, above(0.3)=0.5, above(0.15)=0.8, above(0.05)=0.95 */
    filter((mlxn_sampler_params){.temperature = 1, .top_p = 0.45f}, p, 4, (int[]){0, 1, 0, 0}, "top_p 0.45");
    filter((mlxn_sampler_params){.temperature = 1, .top_p = 0.75f}, p, 4, (int[]){0, 1, 0, 1}, "top_p 0.75");
    filter((mlxn_sampler_params){.temperature = 1, .top_p = 0.9f}, p, 4, (int[]){1, 1, 0, 1}, "top_p 0.9");
    filter((mlxn_sampler_params){.temperature = 1, .top_p = 1.0f}, p, 4, (int[]){1, 1, 1, 1}, "top_p 1 is off");
    /* min_p: keep p >= 0.5 * min_p */
    filter((mlxn_sampler_params){.temperature = 1, .min_p = 0.35f}, p, 4, (int[]){0, 1, 0, 1}, "min_p 0.35");
    filter((mlxn_sampler_params){.temperature = 1, .min_p = 0.2f}, p, 4, (int[]){1, 1, 0, 1}, "min_p 0.2");
    filter((mlxn_sampler_params){.temperature = 1, .min_p = 0.9f, .min_tokens_to_keep = 3}, p, 4, (int[]){1, 1, 0, 1},
           "min_p with min_tokens_to_keep");
    /* top_k */
    filter((mlxn_sampler_params){.temperature = 1, .top_k = 1}, p, 4, (int[]){0, 1, 0, 0}, "top_k 1");
    filter((mlxn_sampler_params){.temperature = 1, .top_k = 3}, p, 4, (int[]){1, 1, 0, 1}, "top_k 3");
    filter((mlxn_sampler_params){.temperature = 1, .top_k = 4}, p, 4, (int[]){1, 1, 1, 1}, "top_k = vocab keeps all");
    /* ties at the cut keep exactly k */
    filter((mlxn_sampler_params){.temperature = 1, .top_k = 2}, (float[]){0.25f, 0.25f, 0.25f, 0.25f}, 4,
           (int[]){1, 1, 0, 0}, "top_k ties");
    /* combined in mlx-lm's order: top_p 0.9 keeps 3, min_p 0.35 keeps 2, top_k 1 keeps 1 */
    filter((mlxn_sampler_params){.temperature = 1, .top_p = 0.9f, .min_p = 0.35f, .top_k = 1}, p, 4, (int[]){0, 1, 0, 0},
           "all filters");
    /* temperature 0: filters do nothing */
    filter((mlxn_sampler_params){.temperature = 0, .top_k = 1}, p, 4, (int[]){1, 1, 1, 1}, "greedy skips filters");
}

static void test_greedy(void) {
    mlxn_sampler *s = make((mlxn_sampler_params){.top_k = 1, .top_p = 0.5f}, 6);
    if (!s) return;
    float l[] = {0.5f, 2.0f, -1.0f, 2.0f, NAN, 1.0f};
    int32_t tok = -1;
    CHECK_OK(mlxn_sampler_sample(s, l, NULL, 0, &tok));
    CHECK(tok == 1, "greedy takes the first maximum (got %d)", tok);
    float l2[] = {0.5f, 2.0f, -1.0f, 1.9f, 0.0f, 1.0f};
    CHECK_OK(mlxn_sampler_sample(s, l2, (int32_t[]){1}, 1, &tok));
    CHECK(tok == 1, "no penalty configured (got %d)", tok);
    mlxn_sampler_free(s);
    s = make((mlxn_sampler_params){.repetition_penalty = 2.0f}, 6);
    if (!s) return;
    float l3[] = {0.5f, 2.0f, -1.0f, 1.9f, 0.0f, 1.0f};
    CHECK_OK(mlxn_sampler_sample(s, l3, (int32_t[]){1}, 1, &tok));
    CHECK(tok == 3, "penalty applies before argmax (got %d)", tok);
    float inf[] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    CHECK_FAILS(mlxn_sampler_sample(s, inf, NULL, 0, &tok), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_sampler_free(s);
}

static void frequencies(float temp, int top_k, uint64_t seed, double *freq) {
    mlxn_sampler *s = make((mlxn_sampler_params){.temperature = temp, .top_k = top_k, .seed = seed}, 3);
    int n = 40000, count[3] = {0};
    for (int i = 0; s && i < n; i++) {
        float l[] = {logf(0.6f) + 3.0f, logf(0.3f) + 3.0f, logf(0.1f) + 3.0f}; /* any offset: softmax */
        int32_t tok = -1;
        CHECK_OK(mlxn_sampler_sample(s, l, NULL, 0, &tok));
        if (tok >= 0 && tok < 3) count[tok]++;
    }
    for (int k = 0; k < 3; k++) freq[k] = (double)count[k] / n;
    mlxn_sampler_free(s);
}

static void test_distribution(void) {
    double f[3];
    frequencies(1.0f, 0, t_rand_u64(), f);
    CHECK(fabs(f[0] - 0.6) < 0.02 && fabs(f[1] - 0.3) < 0.02 && fabs(f[2] - 0.1) < 0.015, "T=1: %g %g %g", f[0], f[1], f[2]);
    /* T=0.5 squares the probabilities: 0.36, 0.09, 0.01 over 0.46 */
    frequencies(0.5f, 0, t_rand_u64(), f);
    CHECK(fabs(f[0] - 0.36 / 0.46) < 0.02 && fabs(f[1] - 0.09 / 0.46) < 0.02 && fabs(f[2] - 0.01 / 0.46) < 0.01,
          "T=0.5: %g %g %g", f[0], f[1], f[2]);
    frequencies(1.0f, 2, t_rand_u64(), f);
    CHECK(f[2] == 0.0 && fabs(f[0] - 2.0 / 3.0) < 0.02, "top_k 2 renormalizes: %g %g %g", f[0], f[1], f[2]);
    /* same seed, same draws; another seed, other draws */
    int32_t a[64], b[64], c[64];
    for (int r = 0; r < 3; r++) {
        mlxn_sampler *s = make((mlxn_sampler_params){.temperature = 1.0f, .seed = r == 2 ? 8 : 7}, 3);
        for (int i = 0; s && i < 64; i++) {
            float l[] = {0.1f, 0.0f, -0.1f};
            int32_t *dst = r == 0 ? a : r == 1 ? b : c;
            CHECK_OK(mlxn_sampler_sample(s, l, NULL, 0, &dst[i]));
        }
        mlxn_sampler_free(s);
    }
    CHECK(!memcmp(a, b, sizeof a), "seeded samplers repeat");
    CHECK(memcmp(a, c, sizeof a) != 0, "different seeds differ");
}

static void test_bad_params(void) {
    mlxn_sampler *s = NULL;
    mlxn_sampler_params p = {0};
    CHECK_FAILS(mlxn_sampler_new(&p, 0, &s), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sampler_new(&(mlxn_sampler_params){.temperature = -1}, 8, &s), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sampler_new(&(mlxn_sampler_params){.temperature = NAN}, 8, &s), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sampler_new(&(mlxn_sampler_params){.top_p = 1.5f}, 8, &s), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sampler_new(&(mlxn_sampler_params){.min_p = -0.1f}, 8, &s), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sampler_new(&(mlxn_sampler_params){.top_k = -1}, 8, &s), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sampler_new(&(mlxn_sampler_params){.repetition_penalty = -1}, 8, &s), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sampler_new(&(mlxn_sampler_params){.repetition_context_size = -1}, 8, &s), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sampler_new(&(mlxn_sampler_params){.logit_bias_ids = (int32_t[]){8}, .logit_bias_values = (float[]){1},
                                                        .n_logit_bias = 1},
                                 8, &s),
                MLXN_ERR_INVALID_ARGUMENT);
    CHECK(s == NULL, "no sampler on failure");
    s = make((mlxn_sampler_params){.temperature = 1}, 4);
    if (s) {
        float l[4] = {0};
        int32_t tok;
        CHECK_FAILS(mlxn_sampler_sample(s, l, (int32_t[]){4}, 1, &tok), MLXN_ERR_INVALID_ARGUMENT);
        CHECK_FAILS(mlxn_sampler_sample(s, l, NULL, 2, &tok), MLXN_ERR_INVALID_ARGUMENT);
        CHECK_FAILS(mlxn_sampler_sample(s, NULL, NULL, 0, &tok), MLXN_ERR_INVALID_ARGUMENT);
        mlxn_sampler_free(s);
    }
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_sampler");
    test_penalties();
    test_filters();
    test_greedy();
    test_distribution();
    test_bad_params();
    return t_finish();
}
