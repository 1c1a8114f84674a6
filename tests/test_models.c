/* The model runner against mlx-lm itself (tests/golden/gen_models.py builds
 * each tiny model with mlx-lm's classes, quantizes and saves it with
 * mlx-lm's functions, reloads it with mlx_lm.utils.load_model and records
 * its logits). For every case:
 *  - full:    the 21-token prompt in one forward (all logits) against
 *             mlx-lm's uncached call; the same with prefill_chunk = 4 (six
 *             chunks through the cache) and the last-token mode;
 *  - stepped: the same tokens as mlx-lm fed them through its KV cache
 *             (11-token prefill, a 4-token chunk, six single tokens) against
 *             mlx-lm's cached logits: Gemma's window (8) is shorter than the
 *             prompt, so its RotatingKVCache behaviour (a chunk overflowing
 *             the window, decode past it) is what we are compared with;
 *  - reuse:   truncate back to 11 tokens and run the rest again; reset and
 *             run again: the same logits;
 *  - a bf16 KV cache: within the bf16 tolerance.
 * Tolerance, per position: max |ours - mlx| relative to the std of mlx-lm's
 * logits, and NMSE (TOL_* below). Every case runs twice: with the ISA
 * capped at AVX2 (float paths only: the same f32 math as mlx-lm, so a tight
 * tolerance) and with the best ISA (where the VNNI quantized mat-vec rounds
 * x to 16 bits per group). f32 models: mlx-lm computes in f32 as we do.
 * The bf16 model: mlx-lm rounds every activation to bf16, we keep f32, so
 * it gets a bf16-sized tolerance, and must match tightly the logits mlx-lm
 * computes from the same weights with f32 activations.
 * Then bad inputs: unsupported architecture and rope scaling, a missing,
 * an extra and a mis-shaped tensor, a vocab size that disagrees with the
 * embedding, wrong quantization metadata, bad tokens, context overflow and
 * a truncation a sliding-window layer cannot serve: each a clear error
 * naming the culprit (and allow_unused_tensors accepting the extra one). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"

typedef struct model_case {
    const char *name;
    int bf16; /* mlx-lm ran it in bf16 (the golden also has its f32-activation logits) */
} model_case;

static const model_case CASES[] = {
    {"llama_f32", 0},         {"llama3_bias_q4g64", 0}, {"llama_q3g32_mixed", 0}, {"qwen2_q5g128", 0},
    {"qwen3_q6g128", 0},      {"qwen3_q8g64", 0},       {"qwen3_mxfp4", 0},       {"qwen3_nvfp4", 0},
    {"gemma3_text_f32", 0},   {"gemma3_text_q4g32", 0}, {"gemma3_mm_q4g64", 0},   {"qwen3_bf16", 1},
};

/* Tolerances: max |diff| relative to the std of mlx-lm's logits, and NMSE. */
typedef struct tol {
    double max_rel, nmse;
} tol;
/* float paths (ISA capped at AVX2): the same f32 math as mlx-lm, summed in
   another order; measured <= 4.3e-6 std, NMSE <= 4.3e-13 */
static const tol TOL_EXACT = {2e-5, 1e-10};
/* any ISA: the AVX-512 VNNI quantized mat-vec (decode and short chunks)
   rounds x to 16 bits per group (see qmatmul_avx512.c); measured <= 9e-4
   std, NMSE <= 1e-7 through a whole model */
static const tol TOL_FAST = {4e-3, 1e-6};
/* mlx-lm's bf16 dataflow (every activation rounded to bf16) against our f32
   one; measured 3.2e-2 std, NMSE 1.5e-4 (mlx-lm's own bf16 vs f32 runs differ
   by the same) */
static const tol TOL_BF16 = {1e-1, 1e-3};

static int verbose = 1;


/* Compare rows [0, rows) of got against ref ([rows, V] each). */
static void compare(const char *cs, const char *what, const float *ref, const float *got, int64_t rows, int64_t V,
                    tol tl, double sd) {
    char name[256];
    snprintf(name, sizeof name, "%s %s", cs, what);
    double worst = 0, worst_nmse = 0;
    t_compare_rows(name, ref, got, 0, rows, V, sd, tl.max_rel, tl.nmse, &worst, &worst_nmse);
    if (verbose) printf("  %-28s %-12s max|diff| %.2e std  nmse %.2e\n", cs, what, worst, worst_nmse);
}

/* One golden case on `dev`. exact: the device runs float paths only (the
 * tight tolerance applies); full: also the chunked, last-only and reuse runs. */
static void run_case(mlxn_device *dev, const model_case *mc, int exact, int full_suite) {
    char dir[1024], rel[256], label[64];
    snprintf(dir, sizeof dir, "%s/models/%s", MLXN_TEST_GOLDEN_DIR, mc->name);
    snprintf(rel, sizeof rel, "models/%s/logits.safetensors", mc->name);
    snprintf(label, sizeof label, "%s%s", mc->name, exact ? "" : " (any isa)");
    mlxn_weights *g = t_golden_open(rel);
    if (!g) return;
    size_t T = 0, nsteps = 0, nfull = 0, nstep = 0;
    const int32_t *tokens = t_golden_get(g, "tokens", MLXN_DTYPE_I32, &T);
    const int32_t *steps = t_golden_get(g, "steps", MLXN_DTYPE_I32, &nsteps);
    const float *full = t_golden_get(g, "full", MLXN_DTYPE_F32, &nfull);
    const float *stepped = t_golden_get(g, "stepped", MLXN_DTYPE_F32, &nstep);
    const float *full_f32 = mc->bf16 ? t_golden_get(g, "full_f32", MLXN_DTYPE_F32, NULL) : NULL;
    mlxn_model *m = NULL;
    CHECK_OK(mlxn_model_load(dir, dev, NULL, &m));
    if (!tokens || !steps || !full || !stepped || !m || (mc->bf16 && !full_f32)) {
        mlxn_model_free(m);
        mlxn_weights_free(g);
        return;
    }
    const mlxn_model_info *info = mlxn_model_get_info(m);
    int64_t V = info->vocab_size;
    CHECK(nfull == T * (size_t)V && nstep == nfull, "%s: golden sizes", mc->name);
    double sd = t_std(full, nfull);
    tol tl = mc->bf16 ? TOL_BF16 : exact ? TOL_EXACT : TOL_FAST;
    float *out = malloc(sizeof(float) * nfull);

    /* the whole prompt in one chunk */
    mlxn_session *s = NULL;
    CHECK_OK(mlxn_session_new(m, NULL, &s));
    t_poison(out, sizeof(float) * nfull);
    CHECK_OK(mlxn_session_forward(s, tokens, (int64_t)T, MLXN_LOGITS_ALL, out));
    compare(label, "full", full, out, (int64_t)T, V, tl, sd);
    if (full_f32) compare(label, "full vs f32", full_f32, out, (int64_t)T, V, exact ? TOL_EXACT : TOL_FAST, sd);
    CHECK(mlxn_session_position(s) == (int64_t)T, "%s: position after prefill", mc->name);

    /* mlx-lm's cached schedule; then truncated back to the first step and
       redone; then after a reset */
    for (int pass = 0; pass < (full_suite ? 3 : 1); pass++) {
        int64_t from = 0;
        if (pass == 0 || pass == 2) mlxn_session_reset(s);
        if (pass == 1) { /* s holds all T tokens from pass 0 */
            CHECK_OK(mlxn_session_truncate(s, steps[0]));
            CHECK(mlxn_session_position(s) == steps[0], "%s: position after truncate", mc->name);
            from = steps[0];
        }
        t_poison(out, sizeof(float) * nfull);
        int64_t pos = 0;
        for (size_t i = 0; i < nsteps; i++) {
            if (pos >= from) CHECK_OK(mlxn_session_forward(s, tokens + pos, steps[i], MLXN_LOGITS_ALL, out + pos * V));
            pos += steps[i];
        }
        static const char *names[3] = {"stepped", "truncated", "after reset"};
        compare(label, names[pass], stepped + from * V, out + from * V, (int64_t)T - from, V, tl, sd);
    }
    mlxn_session_free(s);

    if (full_suite) {
        /* chunked prefill (chunks of 4), the last-token mode, and NONE then LAST */
        mlxn_session_params sp = {.prefill_chunk = 4};
        CHECK_OK(mlxn_session_new(m, &sp, &s));
        t_poison(out, sizeof(float) * nfull);
        CHECK_OK(mlxn_session_forward(s, tokens, (int64_t)T, MLXN_LOGITS_ALL, out));
        compare(label, "chunks of 4", full, out, (int64_t)T, V, tl, sd);
        mlxn_session_reset(s);
        t_poison(out, sizeof(float) * (size_t)V);
        CHECK_OK(mlxn_session_forward(s, tokens, (int64_t)T, MLXN_LOGITS_LAST, out));
        compare(label, "last only", full + (T - 1) * (size_t)V, out, 1, V, tl, sd);
        mlxn_session_reset(s);
        CHECK_OK(mlxn_session_forward(s, tokens, (int64_t)T - 1, MLXN_LOGITS_NONE, NULL));
        t_poison(out, sizeof(float) * (size_t)V);
        CHECK_OK(mlxn_session_forward(s, tokens + T - 1, 1, MLXN_LOGITS_LAST, out));
        compare(label, "none+last", full + (T - 1) * (size_t)V, out, 1, V, tl, sd);
        mlxn_session_free(s);

        /* a bf16 KV cache (mlx-lm's for bf16 models): bf16-sized differences */
        mlxn_session_params kb = {.kv_dtype = MLXN_DTYPE_BF16, .prefill_chunk = 5};
        CHECK_OK(mlxn_session_new(m, &kb, &s));
        t_poison(out, sizeof(float) * nfull);
        int64_t pos = 0;
        for (size_t i = 0; i < nsteps; i++) {
            CHECK_OK(mlxn_session_forward(s, tokens + pos, steps[i], MLXN_LOGITS_ALL, out + pos * V));
            pos += steps[i];
        }
        compare(label, "bf16 cache", stepped, out, (int64_t)T, V, TOL_BF16, sd);
        mlxn_session_free(s);
    }
    free(out);
    mlxn_model_free(m);
    mlxn_weights_free(g);
}

/* ---- bad inputs ------------------------------------------------------------- */

/* A model directory derived from golden case `src`: its config.json edited
 * by `edit` (may be NULL), its tensors copied except `drop`, plus `extra`
 * (a copy of `drop`'s source under another name), with `reshape`'s first
 * dimension reduced by one. Returns the directory (static buffer). */
typedef void (*config_edit)(json_t *cfg);

static char tmp_root[1024];

static const char *variant(const char *src, const char *tag, config_edit edit, const char *drop, const char *extra,
                           const char *reshape) {
    static char dir[1200];
    char sdir[1024], path[1300];
    snprintf(sdir, sizeof sdir, "%s/models/%s", MLXN_TEST_GOLDEN_DIR, src);
    snprintf(dir, sizeof dir, "%s/%s", tmp_root, tag);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", sdir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    CHECK(cfg != NULL, "read %s: %s", path, jerr.text);
    if (!cfg) return dir;
    if (edit) edit(cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(json_dump_file(cfg, path, JSON_INDENT(2)) == 0, "write %s", path);
    json_decref(cfg);

    mlxn_weights *w = NULL;
    CHECK_OK(mlxn_weights_open(sdir, &w));
    mlxn_st_writer *wr = NULL;
    CHECK_OK(mlxn_st_writer_new(&wr));
    if (!w || !wr) {
        mlxn_weights_free(w);
        mlxn_st_writer_free(wr);
        return dir;
    }
    for (size_t i = 0; i < mlxn_weights_count(w); i++) {
        const mlxn_weight_info *in = mlxn_weights_at(w, i);
        const void *data = mlxn_weights_data(w, in);
        int64_t shape[MLXN_MAX_DIMS];
        memcpy(shape, in->shape, sizeof shape);
        if (reshape && strcmp(in->name, reshape) == 0) shape[0]--;
        if (drop && strcmp(in->name, drop) == 0) {
            if (extra) CHECK_OK(mlxn_st_writer_add(wr, extra, in->dtype, in->ndim, shape, data));
            continue;
        }
        CHECK_OK(mlxn_st_writer_add(wr, in->name, in->dtype, in->ndim, shape, data));
    }
    int64_t one = 1;
    float zero = 0; /* must live until the save below */
    if (extra && !drop) CHECK_OK(mlxn_st_writer_add(wr, extra, MLXN_DTYPE_F32, 1, &one, &zero));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(mlxn_st_writer_save(wr, path));
    mlxn_st_writer_free(wr);
    mlxn_weights_free(w);
    return dir;
}

static void rm_variant(const char *dir) {
    char p[1300];
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    rmdir(dir);
}

/* Loading `dir` fails with `want` and a message holding every needle. */
static void load_fails(mlxn_device *dev, const char *dir, mlxn_status want, const char *n1, const char *n2) {
    mlxn_model *m = (mlxn_model *)&m; /* must be reset to NULL */
    mlxn_clear_error();
    mlxn_status st = mlxn_model_load(dir, dev, NULL, &m);
    const char *msg = mlxn_last_error();
    CHECK(st == want && m == NULL, "load %s -> %s (wanted %s): %s", dir, mlxn_status_str(st), mlxn_status_str(want), msg);
    CHECK(strstr(msg, n1) && (!n2 || strstr(msg, n2)), "load %s: message '%s' should name '%s'%s%s", dir, msg, n1,
          n2 ? " and " : "", n2 ? n2 : "");
    if (st == MLXN_OK) mlxn_model_free(m);
}

static void edit_arch(json_t *c) { json_object_set_new(c, "model_type", json_string("mamba")); }
static void edit_vocab(json_t *c) { json_object_set_new(c, "vocab_size", json_integer(300)); }
static void edit_rope(json_t *c) {
    json_object_set_new(c, "rope_scaling", json_pack("{s:s, s:f}", "rope_type", "yarn", "factor", 4.0));
}
static void edit_no_quant(json_t *c) {
    json_object_del(c, "quantization");
    json_object_del(c, "quantization_config");
}
static void edit_wrong_bits(json_t *c) {
    json_t *q = json_object_get(c, "quantization");
    json_object_set_new(q, "model.layers.0.mlp.down_proj", json_pack("{s:i, s:i}", "group_size", 64, "bits", 4));
}
static void edit_bad_mode(json_t *c) {
    json_t *q = json_object_get(c, "quantization");
    json_object_set_new(q, "model.layers.0.mlp.down_proj", json_pack("{s:s}", "mode", "int3"));
}

static void test_bad_models(mlxn_device *dev) {
    snprintf(tmp_root, sizeof tmp_root, "%s/test_models_XXXXXX", MLXN_TEST_BINARY_DIR);
    CHECK(mkdtemp(tmp_root) != NULL, "mkdtemp %s", tmp_root);
    const char *d;

    d = variant("llama_f32", "arch", edit_arch, NULL, NULL, NULL);
    load_fails(dev, d, MLXN_ERR_UNSUPPORTED, "mamba", "qwen3");
    rm_variant(d);
    d = variant("llama_f32", "missing", NULL, "model.layers.1.mlp.up_proj.weight", NULL, NULL);
    load_fails(dev, d, MLXN_ERR_FORMAT, "missing tensor model.layers.1.mlp.up_proj.weight", NULL);
    rm_variant(d);
    d = variant("llama_f32", "extra", NULL, NULL, "model.layers.0.mlp.extra_proj.weight", NULL);
    load_fails(dev, d, MLXN_ERR_FORMAT, "model.layers.0.mlp.extra_proj.weight", "not used");
    mlxn_model_params allow = {.allow_unused_tensors = 1};
    mlxn_model *mu = NULL;
    CHECK_OK(mlxn_model_load(d, dev, &allow, &mu)); /* the same files, when unused tensors are allowed */
    mlxn_model_free(mu);
    rm_variant(d);
    d = variant("llama_f32", "shape", NULL, NULL, NULL, "model.layers.0.self_attn.k_proj.weight");
    load_fails(dev, d, MLXN_ERR_SHAPE, "model.layers.0.self_attn.k_proj.weight", "model.safetensors");
    rm_variant(d);
    d = variant("llama_f32", "vocab", edit_vocab, NULL, NULL, NULL);
    load_fails(dev, d, MLXN_ERR_SHAPE, "vocab_size 300", "model.embed_tokens.weight");
    rm_variant(d);
    d = variant("llama_f32", "rope", edit_rope, NULL, NULL, NULL);
    load_fails(dev, d, MLXN_ERR_UNSUPPORTED, "yarn", "llama3");
    rm_variant(d);
    d = variant("qwen3_q8g64", "noquant", edit_no_quant, NULL, NULL, NULL);
    load_fails(dev, d, MLXN_ERR_FORMAT, "model.embed_tokens", "quantization");
    rm_variant(d);
    d = variant("llama_q3g32_mixed", "bits", edit_wrong_bits, NULL, NULL, NULL);
    load_fails(dev, d, MLXN_ERR_SHAPE, "model.layers.0.mlp.down_proj.weight", "4-bit");
    rm_variant(d);
    d = variant("llama_q3g32_mixed", "mode", edit_bad_mode, NULL, NULL, NULL);
    load_fails(dev, d, MLXN_ERR_UNSUPPORTED, "int3", "model.layers.0.mlp.down_proj");
    rm_variant(d);
    char nodir[1200];
    snprintf(nodir, sizeof nodir, "%s/nothing_here", tmp_root);
    load_fails(dev, nodir, MLXN_ERR_FORMAT, "config.json", NULL);
    rmdir(tmp_root);

    mlxn_model *m = NULL;
    CHECK_FAILS(mlxn_model_load(NULL, dev, NULL, &m), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_model_load(nodir, NULL, NULL, &m), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_model_load(nodir, dev, NULL, NULL), MLXN_ERR_INVALID_ARGUMENT);
}

/* Session misuse, context overflow, and a truncation a sliding-window layer
 * cannot serve (gemma3_text_f32: window 8), plus a long run checked
 * against a fresh session (the sliding layers drop keys while full layers
 * grow past several 256-slot steps). */
static void test_sessions(mlxn_device *dev) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/gemma3_text_f32", MLXN_TEST_GOLDEN_DIR);
    mlxn_model *m = NULL;
    CHECK_OK(mlxn_model_load(dir, dev, NULL, &m));
    if (!m) return;
    const mlxn_model_info *info = mlxn_model_get_info(m);
    CHECK(strcmp(info->arch, "gemma3_text") == 0 && info->n_sliding_layers == 2 && info->sliding_window == 8 &&
              info->tied_embeddings && info->n_quantized == 0,
          "gemma3_text_f32 info: %s sliding %d window %d tied %d", info->arch, info->n_sliding_layers,
          info->sliding_window, info->tied_embeddings);
    int64_t V = info->vocab_size;
    enum { N = 600 };
    int32_t *tok = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(t_rand_u64() % (uint64_t)V);
    float *a = malloc(sizeof(float) * (size_t)(N * V)), *b = malloc(sizeof(float) * (size_t)(10 * V));

    mlxn_session *s = NULL;
    mlxn_session_params sp = {.max_context = 10};
    CHECK_OK(mlxn_session_new(m, &sp, &s));
    int32_t bad[3] = {1, (int32_t)V, 2};
    CHECK_FAILS(mlxn_session_forward(s, bad, 3, MLXN_LOGITS_ALL, a), MLXN_ERR_INVALID_ARGUMENT);
    bad[1] = -1;
    CHECK_FAILS(mlxn_session_forward(s, bad, 3, MLXN_LOGITS_ALL, a), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(mlxn_session_position(s) == 0, "a rejected call leaves the position");
    CHECK_OK(mlxn_session_forward(s, tok, 10, MLXN_LOGITS_NONE, NULL));
    CHECK_FAILS(mlxn_session_forward(s, tok, 1, MLXN_LOGITS_LAST, a), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(mlxn_last_error(), "context overflow") != NULL, "overflow message: %s", mlxn_last_error());
    CHECK_FAILS(mlxn_session_forward(s, tok, 1, MLXN_LOGITS_ALL, NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_session_forward(s, tok, 1, (mlxn_logits_mode)7, a), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_session_truncate(s, 11), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_session_truncate(s, -1), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(mlxn_session_position(s) == 10, "position after rejected calls: %lld", (long long)mlxn_session_position(s));
    mlxn_session_free(s);
    mlxn_session_params neg = {.prefill_chunk = -1};
    CHECK_FAILS(mlxn_session_new(m, &neg, &s), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_session_params i8 = {.kv_dtype = MLXN_DTYPE_I8};
    CHECK_FAILS(mlxn_session_new(m, &i8, &s), MLXN_ERR_INVALID_ARGUMENT);

    /* reference: all N tokens in one session, chunks of 100 */
    mlxn_session_params c100 = {.prefill_chunk = 100};
    CHECK_OK(mlxn_session_new(m, &c100, &s));
    CHECK_OK(mlxn_session_forward(s, tok, N, MLXN_LOGITS_ALL, a));
    mlxn_session_free(s);

    /* 300 + 290 tokens: the second chunk makes the sliding layers drop their oldest keys */
    CHECK_OK(mlxn_session_new(m, NULL, &s));
    CHECK_OK(mlxn_session_forward(s, tok, 300, MLXN_LOGITS_NONE, NULL));
    CHECK_OK(mlxn_session_forward(s, tok + 300, 290, MLXN_LOGITS_NONE, NULL));
    CHECK_FAILS(mlxn_session_truncate(s, 50), MLXN_ERR_UNSUPPORTED); /* keeps 78.. */
    CHECK(strstr(mlxn_last_error(), "sliding window") != NULL, "truncate message: %s", mlxn_last_error());
    CHECK(mlxn_session_position(s) == 590, "a refused truncate changes nothing");
    CHECK_OK(mlxn_session_truncate(s, 585));
    CHECK_OK(mlxn_session_forward(s, tok + 585, 5, MLXN_LOGITS_NONE, NULL));
    for (int i = 590; i < N; i++) CHECK_OK(mlxn_session_forward(s, tok + i, 1, MLXN_LOGITS_LAST, b + (i - 590) * V));
    double sd = t_std(a, (size_t)(N * V));
    compare("gemma3_text_f32", "long run", a + 590 * V, b, 10, V, TOL_EXACT, sd);
    mlxn_session_free(s);
    /* the same with a bf16 cache (its sliding layers move bf16 keys) */
    mlxn_session_params kb = {.kv_dtype = MLXN_DTYPE_BF16};
    CHECK_OK(mlxn_session_new(m, &kb, &s));
    CHECK_OK(mlxn_session_forward(s, tok, 300, MLXN_LOGITS_NONE, NULL));
    CHECK_OK(mlxn_session_forward(s, tok + 300, 290, MLXN_LOGITS_NONE, NULL));
    CHECK_OK(mlxn_session_forward(s, tok + 590, 10, MLXN_LOGITS_ALL, b));
    compare("gemma3_text_f32", "long bf16kv", a + 590 * V, b, 10, V, TOL_BF16, sd);
    mlxn_session_free(s);
    free(tok);
    free(a);
    free(b);
    mlxn_model_free(m);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_models");
    /* float paths only: the tight comparison */
    mlxn_device *dev = t_cpu_device_exact(2);
    if (!dev) return t_finish();
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) run_case(dev, &CASES[i], 1, 1);
    test_sessions(dev);
    test_bad_models(dev);
    mlxn_device_free(dev);
    /* the best ISA the processor has (the VNNI decode path where present) */
    dev = t_cpu_device(2, MLXN_CPU_ISA_AUTO);
    if (!dev) return t_finish();
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) run_case(dev, &CASES[i], 0, 0);
    mlxn_device_free(dev);
    return t_finish();
}
