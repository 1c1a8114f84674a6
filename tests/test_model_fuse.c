/* Fused projections (mlxn_model_params.fuse_projections): a model loaded
 * with each layer's q/k/v and gate/up stacked into one weight must give the
 * logits of the same model loaded with them apart, bit for bit on the CPU:
 * each output column is the same weight row times the same x, and the CPU
 * kernels compute every row alone (the VNNI mat-vec quantizes x once per
 * call, the same x for both), so nothing may change, not even rounding.
 * For every model:
 *  - which groups were fused (mlxn_model_info.n_fused) against what
 *    config.json implies, read here on its own: a group fuses when every
 *    part is quantized with the same mode, bits and group size (dense
 *    models: none). mlx-lm's mixed_3_6 recipe gives layer 1's v_proj 6
 *    bits and q/k 3, so that q/k/v must be refused while its gate/up fuse;
 *  - a 13-token prompt in chunks of 5 (T > 1: the parts are strided column
 *    views of the fused output) with every row's logits, then 4 single
 *    tokens (T = 1: contiguous views), in the growing KV layout and in the
 *    fixed one (single-token steps through kv_write), with the ISA capped
 *    at AVX2 (float paths) and at the best the machine has (VNNI);
 *  - a GGUF file loaded directly (converted in memory) and fused, against
 *    the directory `mlxn convert` writes from it, unfused; SmolLM2-135M
 *    (a GGUF, 30 layers) when it has been fetched;
 *  - mlxn_weights_advise_unneeded, which the loader calls on the mapped
 *    parts it stacked: the bytes still read the same afterwards.
 * On a CUDA device (when present) the same runs compare fused and unfused
 * there, bit for bit too: chunks of 5 rows stay on the mat-vec kernels,
 * whose sum for a W row does not depend on where the row sits in its tile,
 * and the q/k norms of a fused model (column views whose rows are not one
 * stride apart over a chunk) take the unfused model's rms_norm kernel and
 * its summation order. */
#include <stdlib.h>
#include <string.h>

#include "convert_util.h"
#include "harness.h"

enum { NTOK = 17, PROMPT = 13, CHUNK = 5 };

/* What the stored tensors say of module `mod` (mlx-lm's rule: quantized
 * when it has scales; then the words per row, scale columns and their
 * dtype fix bits, group and mode for one input size): key[0] = 0 when
 * dense. Two parts are alike when their keys are equal. */
static void quant_key(const mlxn_weights *w, const char *mod, int64_t key[4]) {
    char n[300];
    memset(key, 0, 4 * sizeof *key);
    snprintf(n, sizeof n, "%s.scales", mod);
    const mlxn_weight_info *si = mlxn_weights_find(w, n);
    snprintf(n, sizeof n, "%s.weight", mod);
    const mlxn_weight_info *wi = mlxn_weights_find(w, n);
    snprintf(n, sizeof n, "%s.biases", mod);
    if (!si || !wi) return;
    key[0] = wi->shape[1], key[1] = si->shape[1], key[2] = si->dtype, key[3] = mlxn_weights_find(w, n) != NULL;
}

/* Groups the loader should fuse in model directory `dir`, read off its
 * files: per layer, q/k/v when all three are quantized alike, gate/up
 * likewise. */
static int expected_fused(const char *dir) {
    char p[1500], mod[200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_t *c = cu_json(p);
    mlxn_weights *w = NULL;
    if (!c || mlxn_weights_open(dir, &w) != MLXN_OK) {
        CHECK(0, "%s: cannot read the model: %s", dir, mlxn_last_error());
        json_decref(c);
        return -1;
    }
    const json_t *tc = json_object_get(c, "text_config");
    const char *prefix = tc ? "language_model." : "";
    int layers = (int)json_integer_value(json_object_get(tc ? tc : c, "num_hidden_layers"));
    static const char *const groups[2][3] = {{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
                                             {"mlp.gate_proj", "mlp.up_proj", NULL}};
    int n = 0;
    for (int l = 0; l < layers; l++)
        for (int g = 0; g < 2; g++) {
            int64_t k0[4], k[4];
            int alike = 1;
            for (int i = 0; i < 3 && groups[g][i]; i++) {
                snprintf(mod, sizeof mod, "%smodel.layers.%d.%s", prefix, l, groups[g][i]);
                quant_key(w, mod, i ? k : k0);
                alike &= k0[0] != 0 && (!i || !memcmp(k, k0, sizeof k));
            }
            n += alike;
        }
    mlxn_weights_free(w);
    json_decref(c);
    return n;
}

/* Logits of the schedule on model m: PROMPT tokens in chunks of CHUNK (all
 * rows), then one token at a time (the last row each), in out[NTOK, V]. */
static int run(mlxn_model *m, int layout, const int32_t *tok, float *out) {
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    mlxn_session_params sp = {.prefill_chunk = CHUNK, .max_context = 64, .kv_layout = layout};
    mlxn_session *s = NULL;
    mlxn_status st = mlxn_session_new(m, &sp, &s);
    if (st == MLXN_OK) st = mlxn_session_forward(s, tok, PROMPT, MLXN_LOGITS_ALL, out);
    for (int i = PROMPT; st == MLXN_OK && i < NTOK; i++)
        st = mlxn_session_forward(s, tok + i, 1, MLXN_LOGITS_LAST, out + (int64_t)i * V);
    if (st != MLXN_OK) CHECK(0, "session: %s", mlxn_last_error());
    mlxn_session_free(s);
    return st == MLXN_OK;
}

static mlxn_model *load(mlxn_device *dev, const char *path, int fuse) {
    mlxn_model_params mp = {.fuse_projections = fuse};
    mlxn_model *m = NULL;
    mlxn_status st = mlxn_model_load(path, dev, &mp, &m);
    CHECK(st == MLXN_OK, "load %s (fuse %d): %s", path, fuse, mlxn_last_error());
    return m;
}

/* Model `fused_path` loaded fused against `plain_path` loaded apart. */
static void compare(mlxn_device *dev, const char *label, const char *fused_path, const char *plain_path, int want) {
    mlxn_model *mf = load(dev, fused_path, 1), *mp = load(dev, plain_path, -1);
    if (mf && mp) {
        const mlxn_model_info *fi = mlxn_model_get_info(mf), *pi = mlxn_model_get_info(mp);
        CHECK(fi->n_fused == want, "%s: %d groups fused, config.json implies %d", label, fi->n_fused, want);
        CHECK(pi->n_fused == 0, "%s: fuse_projections = -1 still fused %d groups", label, pi->n_fused);
        int64_t V = fi->vocab_size;
        size_t n = (size_t)(NTOK * V);
        float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
        int32_t tok[NTOK];
        for (int i = 0; i < NTOK; i++) tok[i] = (int32_t)(t_rand_u64() % (uint64_t)V);
        int failed0 = t_failed;
        for (int layout = 1; a && b && layout <= 2; layout++) {
            t_poison(a, n * sizeof(float));
            t_poison(b, n * sizeof(float));
            if (!run(mf, layout, tok, a) || !run(mp, layout, tok, b)) continue;
            size_t first = n;
            for (size_t i = 0; i < n && first == n; i++)
                if (memcmp(&a[i], &b[i], sizeof(float)) || a[i] != a[i]) first = i;
            double nmse = t_nmse(b, a, n);
            CHECK(first == n,
                  "%s on %s, %s layout: fused logits differ from unfused at token %zu, column %zu "
                  "(%.9g vs %.9g; NMSE %.3g)", label, mlxn_device_name(dev), layout == 1 ? "growing" : "fixed",
                  first / (size_t)V, first % (size_t)V, first < n ? a[first] : 0.0, first < n ? b[first] : 0.0, nmse);
        }
        printf("%-28s %-24s %2d groups fused: logits %s\n", label, mlxn_device_name(dev), fi->n_fused,
               t_failed != failed0 ? "DIFFER" : "bit-identical");
        free(a);
        free(b);
    }
    mlxn_model_free(mf);
    mlxn_model_free(mp);
}

/* Golden models (llama_q3g32_mixed leaves layer 1's q_proj dense: its
 * q/k/v must stay apart) and a model mlx-lm's convert wrote. */
static const char *const MODELS[] = {
    "models/llama_f32",     "models/llama3_bias_q4g64", "models/llama_q3g32_mixed", "models/qwen2_q5g128",
    "models/qwen3_q6g128",  "models/qwen3_q8g64",       "models/qwen3_mxfp4",       "models/qwen3_nvfp4",
    "models/gemma3_text_q4g32", "models/gemma3_mm_q4g64", "models/qwen3_bf16",      "convert/mlxlm_q8g32",
};

static void all_models(mlxn_device *dev, const char *mixed_dir, const char *gguf_dir) {
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) {
        const char *dir = cu_golden(MODELS[i]);
        compare(dev, MODELS[i], dir, dir, expected_fused(dir));
    }
    /* mlx-lm's mixed_3_6 recipe on a random tiny llama: v_proj has 6 bits
       where q/k have 3 in some layers (those q/k/v stay apart) */
    compare(dev, "random tiny-llama mixed_3_6", mixed_dir, mixed_dir, expected_fused(mixed_dir));
    /* a GGUF (v_proj Q8_0 beside Q4 q/k, a dense gate_proj: refused there),
       converted in memory at load and fused, against its converted directory */
    compare(dev, "convert/tiny.gguf", cu_golden("convert/tiny.gguf"), gguf_dir, expected_fused(gguf_dir));
}

/* SmolLM2-135M as a Q4_1 GGUF (every q/k/v and gate/up alike), when fetched
 * (tests/golden/fetch_smollm2.sh): the size where the mat-vec splits rows
 * over threads in blocks, loaded fused and apart. */
static void smollm2(mlxn_device *dev) {
    char p[1200];
    if (!t_model_cache_path(T_SMOLLM2_GGUF, p, sizeof p)) {
        printf("SmolLM2-135M not fetched: skipping it\n");
        return;
    }
    compare(dev, "SmolLM2-135M Q4_1 gguf", p, p, 60);
}

/* mlxn_weights_advise_unneeded (the loader drops the mapped pages of
 * parts it stacked): the bytes read the same afterwards (faulted back in
 * from the file); unknown tensors and NULL are ignored. */
static void advise(void) {
    mlxn_weights *w = NULL;
    CHECK_OK(mlxn_weights_open(cu_golden("models/qwen3_q8g64"), &w));
    size_t n = mlxn_weights_count(w), checked = 0;
    for (size_t i = 0; i < n; i++) {
        const mlxn_weight_info *info = mlxn_weights_at(w, i);
        const unsigned char *d = mlxn_weights_data(w, info);
        unsigned char *keep = malloc(info->nbytes ? info->nbytes : 1);
        if (!keep || !d) {
            CHECK(0, "%s: no bytes or no memory", info->name);
            free(keep);
            continue;
        }
        memcpy(keep, d, info->nbytes);
        mlxn_weights_advise_unneeded(w, info);
        CHECK(mlxn_weights_data(w, info) == d && !memcmp(keep, d, info->nbytes),
              "%s reads differently after mlxn_weights_advise_unneeded", info->name);
        checked += info->nbytes;
        free(keep);
    }
    mlxn_weight_info other = {0};
    mlxn_weights_advise_unneeded(w, &other);
    mlxn_weights_advise_unneeded(w, NULL);
    mlxn_weights_advise_unneeded(NULL, NULL);
    printf("advise: %zu tensors (%zu bytes) read back the same\n", n, checked);
    mlxn_weights_free(w);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_model_fuse");
    cu_init_root("test_model_fuse");
    advise();
    const char *mixed = cu_path("mixed_3_6"), *gguf = cu_path("tiny_from_gguf");
    mlxn_convert_params rp = {.random_preset = "tiny-llama", .seed = t_seed(), .recipe = "mixed_3_6"};
    CHECK_OK(mlxn_convert(NULL, mixed, &rp));
    CHECK_OK(mlxn_convert(cu_golden("convert/tiny.gguf"), gguf, NULL));
    mlxn_cpu_isa isas[] = {MLXN_CPU_ISA_AVX2, MLXN_CPU_ISA_AVX512};
    for (int k = 0; k < 2; k++) {
        mlxn_device *cpu = t_cpu_device(0, isas[k]);
        if (cpu) all_models(cpu, mixed, gguf);
        if (cpu && k == 1) smollm2(cpu);
        mlxn_device_free(cpu);
    }
    mlxn_device_params p = {.kind = MLXN_DEVICE_CUDA, .index = 0};
    mlxn_device *gpu = NULL;
    if (mlxn_device_new(&p, &gpu) == MLXN_OK) {
        all_models(gpu, mixed, gguf);
        smollm2(gpu);
        mlxn_device_free(gpu);
    } else {
        printf("no CUDA device: CPU only\n");
    }
    cu_rm_tree(mixed);
    cu_rm_tree(gguf);
    cu_rm_tree(cu_root);
    return t_finish();
}
