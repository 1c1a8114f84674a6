/* mlxn_convert from a Hugging Face checkpoint and from random presets.
 *
 * Against mlx-lm (tests/golden/gen_convert.py ran mlx_lm.convert on the
 * same tiny bf16 checkpoint, tests/golden/convert/hf_tiny):
 *  - every tensor we write is byte-identical to mlx-lm's (uniform 4/5/8-bit
 *    with groups 64/128/32, the bf16->f16 cast, the mixed_3_6 and
 *    mixed_2_6 recipes, mxfp4; modules whose input size is not a multiple
 *    of the group stay dense), and config.json's "quantization" and
 *    "quantization_config" objects are equal to mlx-lm's;
 *  - our runner on our directory gives mlx-lm's logits: tightly against
 *    mlx-lm's f32-activation run with the float paths (ISA capped at AVX2),
 *    within the VNNI tolerance at the best ISA, within bf16 rounding of
 *    mlx-lm's own bf16 run.
 * Random presets: every tiny preset in every mode loads and gives finite
 * logits; the same seed writes the same bytes, another seed other bytes;
 * sharding (index.json naming every tensor, shards loading to the same
 * logits).
 * Bad input: an extra, a missing and a mis-shaped tensor, an already
 * quantized checkpoint, an existing destination, bad options: each an error
 * naming the culprit, with nothing left behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_util.h"

static const cu_tol TOL_EXACT = {2e-5, 1e-10}; /* float paths: f32 vs f32, summation order */
static const cu_tol TOL_FAST = {4e-3, 1e-6};   /* VNNI mat-vec rounds x to 16 bits per group */
static const cu_tol TOL_BF16 = {1e-1, 1e-3};   /* mlx-lm's bf16 activations vs our f32 */

typedef struct hf_case {
    const char *name;
    mlxn_convert_params p;
} hf_case;

static bool listed(const char *csv, const char *name) {
    size_t n = strlen(name);
    for (const char *p = csv; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

/* Our directory `dir` against mlx-lm's conversion `case`. */
static void same_as_mlxlm(const char *dir, const char *cs) {
    char rel[256];
    snprintf(rel, sizeof rel, "convert/mlxlm_%s", cs);
    mlxn_weights *ours = NULL, *ref = NULL, *in = NULL;
    CHECK_OK(mlxn_weights_open(dir, &ours));
    CHECK_OK(mlxn_weights_open(cu_golden(rel), &ref));
    CHECK_OK(mlxn_weights_open(cu_golden("convert/hf_tiny"), &in));
    if (!ours || !ref || !in) goto done;
    const char *same = mlxn_weights_metadata(ref, "same_as_input");
    size_t n_ref = mlxn_weights_count(ref), n_same = 0, equal = 0;
    for (size_t i = 0; i < mlxn_weights_count(ours); i++) {
        const mlxn_weight_info *a = mlxn_weights_at(ours, i), *b = mlxn_weights_find(ref, a->name);
        mlxn_weights *bw = ref;
        if (!b && listed(same, a->name)) {
            b = mlxn_weights_find(in, a->name);
            bw = in;
            n_same++;
        }
        CHECK(b != NULL, "%s: we write %s, mlx-lm does not", cs, a->name);
        if (!b) continue;
        bool ok = a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes &&
                  !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) &&
                  !memcmp(mlxn_weights_data(ours, a), mlxn_weights_data(bw, b), a->nbytes);
        CHECK(ok, "%s: tensor %s differs from mlx-lm's (%s vs %s)", cs, a->name, mlxn_dtype_name(a->dtype),
              mlxn_dtype_name(b->dtype));
        equal += ok;
    }
    CHECK(mlxn_weights_count(ours) == n_ref + n_same, "%s: %zu tensors, mlx-lm has %zu", cs, mlxn_weights_count(ours),
          n_ref + n_same);
    char p1[1400], p2[1400];
    snprintf(p1, sizeof p1, "%s/config.json", dir);
    snprintf(p2, sizeof p2, "%s/config.json", cu_golden(rel));
    json_t *c1 = cu_json(p1), *c2 = cu_json(p2);
    if (c1 && c2) {
        const char *keys[] = {"quantization", "quantization_config"};
        for (int k = 0; k < 2; k++)
            CHECK(json_equal(json_object_get(c1, keys[k]), json_object_get(c2, keys[k])),
                  "%s: config.json \"%s\" differs from mlx-lm's", cs, keys[k]);
        CHECK(json_equal(json_object_get(c1, "hidden_size"), json_object_get(c2, "hidden_size")), "%s: hidden_size", cs);
    }
    json_decref(c1);
    json_decref(c2);
    printf("  %-12s %zu tensors byte-identical to mlx-lm's conversion\n", cs, equal);
    for (const char *f = "tokenizer.json"; f; f = NULL) {
        char p[1400];
        snprintf(p, sizeof p, "%s/%s", dir, f);
        CHECK(cu_exists(p), "%s: %s was not copied", cs, f);
    }
done:
    mlxn_weights_free(ours);
    mlxn_weights_free(ref);
    mlxn_weights_free(in);
}

static void test_hf(mlxn_device *exact, mlxn_device *fast) {
    hf_case cases[] = {
        {"q4g64", {.quantize = 1, .bits = 4, .group_size = 64}},
        {"q5g128", {.quantize = 1, .bits = 5, .group_size = 128}},
        {"q8g32", {.quantize = 1, .bits = 8, .group_size = 32, .dtype = MLXN_DTYPE_F16}},
        {"mixed_3_6", {.recipe = "mixed_3_6", .group_size = 64}},
        {"mixed_2_6", {.recipe = "mixed_2_6", .group_size = 32}},
        {"mxfp4", {.quantize = 1, .mode = MLXN_QUANT_MXFP4}},
    };
    mlxn_weights *g = t_golden_open("convert/logits.safetensors");
    size_t T = 0;
    const int32_t *tokens = g ? t_golden_get(g, "tokens", MLXN_DTYPE_I32, &T) : NULL;
    for (size_t c = 0; tokens && c < sizeof cases / sizeof cases[0]; c++) {
        const char *dst = cu_path(cases[c].name);
        mlxn_status st = mlxn_convert(cu_golden("convert/hf_tiny"), dst, &cases[c].p);
        CHECK(st == MLXN_OK, "convert %s: %s", cases[c].name, mlxn_last_error());
        if (st != MLXN_OK) continue;
        same_as_mlxlm(dst, cases[c].name);
        char key[64], label[96];
        snprintf(key, sizeof key, "%s_f32", cases[c].name);
        size_t n = 0;
        const float *ref = t_golden_get(g, key, MLXN_DTYPE_F32, &n);
        int64_t V = 0;
        float *a = cu_logits(exact, dst, tokens, (int64_t)T, &V), *b = cu_logits(fast, dst, tokens, (int64_t)T, &V);
        if (ref && a && b && n == T * (size_t)V) {
            snprintf(label, sizeof label, "%s vs mlx-lm f32 (float paths)", cases[c].name);
            cu_compare(label, ref, a, (int64_t)T, V, TOL_EXACT);
            snprintf(label, sizeof label, "%s vs mlx-lm f32 (best isa)", cases[c].name);
            cu_compare(label, ref, b, (int64_t)T, V, TOL_FAST);
            const float *bf = !strcmp(cases[c].name, "q4g64") ? t_golden_get(g, "q4g64", MLXN_DTYPE_F32, NULL) : NULL;
            if (bf) cu_compare("q4g64 vs mlx-lm bf16 run", bf, b, (int64_t)T, V, TOL_BF16);
        }
        free(a);
        free(b);
        cu_rm_tree(dst);
    }
    mlxn_weights_free(g);
}

/* ---- random presets ---- */

static int files_equal(const char *a, const char *b) {
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    int eq = x && y;
    while (eq) {
        int c = fgetc(x), d = fgetc(y);
        if (c != d) eq = 0;
        if (c == EOF || d == EOF) break;
    }
    if (x) fclose(x);
    if (y) fclose(y);
    return eq;
}

static void test_random(mlxn_device *dev) {
    static const int32_t toks[8] = {1, 5, 9, 200, 17, 3, 250, 64};
    struct {
        const char *preset;
        mlxn_convert_params p;
    } cases[] = {
        {"tiny-llama", {0}},
        {"tiny-llama", {.quantize = 1}},
        {"tiny-llama", {.quantize = 1, .mode = MLXN_QUANT_NVFP4}},
        {"tiny-qwen3", {.quantize = 1, .bits = 3, .group_size = 32}},
        {"tiny-qwen3", {.quantize = 1, .mode = MLXN_QUANT_MXFP8}},
        {"tiny-gemma3", {.quantize = 1, .mode = MLXN_QUANT_MXFP4}},
        {"tiny-gemma3", {.recipe = "mixed_3_4", .group_size = 32}},
        {"tiny-llama", {.dtype = MLXN_DTYPE_F16}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mlxn_convert_params p = cases[c].p;
        p.random_preset = cases[c].preset;
        p.seed = 11;
        const char *dst = cu_path("rand"), *dst2 = cu_path("rand2");
        CHECK_OK(mlxn_convert(NULL, dst, &p));
        CHECK_OK(mlxn_convert(NULL, dst2, &p));
        char f1[1400], f2[1400];
        snprintf(f1, sizeof f1, "%s/model.safetensors", dst);
        snprintf(f2, sizeof f2, "%s/model.safetensors", dst2);
        CHECK(files_equal(f1, f2), "%s case %zu: the same seed wrote different bytes", cases[c].preset, c);
        cu_rm_tree(dst2);
        p.seed = 12;
        CHECK_OK(mlxn_convert(NULL, dst2, &p));
        CHECK(!files_equal(f1, f2), "%s case %zu: another seed wrote the same bytes", cases[c].preset, c);
        cu_rm_tree(dst2);
        int64_t V = 0;
        float *l = cu_logits(dev, dst, toks, 8, &V);
        int finite = l != NULL;
        double sd = l ? cu_std(l, (size_t)(8 * V)) : 0;
        for (int64_t i = 0; l && i < 8 * V; i++) finite &= isfinite(l[i]) != 0;
        CHECK(finite && sd > 0, "%s case %zu: logits not finite or constant (std %g)", cases[c].preset, c, sd);
        printf("  random %-12s case %zu: loads, logits std %.3g\n", cases[c].preset, c, sd);
        free(l);
        cu_rm_tree(dst);
    }

    /* shards: mlx-lm's naming and index, loading to the same logits */
    mlxn_convert_params p = {.random_preset = "tiny-llama", .seed = 3};
    const char *one = cu_path("one"), *many = cu_path("many");
    CHECK_OK(mlxn_convert(NULL, one, &p));
    p.max_shard_bytes = 40000;
    CHECK_OK(mlxn_convert(NULL, many, &p));
    char path[1500];
    int shards = 0;
    for (int k = 1; k < 100; k++) {
        snprintf(path, sizeof path, "%s/model-%05d-of-", many, k);
        DIR *d = opendir(many);
        struct dirent *e;
        int found = 0;
        while (d && (e = readdir(d))) found |= !strncmp(e->d_name, path + strlen(many) + 1, strlen(path + strlen(many) + 1));
        if (d) closedir(d);
        if (!found) break;
        shards++;
    }
    CHECK(shards >= 3, "max_shard_bytes 40000: %d shards", shards);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", many);
    json_t *idx = cu_json(path);
    mlxn_weights *w = NULL;
    CHECK_OK(mlxn_weights_open(many, &w));
    if (idx && w) {
        json_t *map = json_object_get(idx, "weight_map");
        CHECK(json_object_size(map) == mlxn_weights_count(w), "index names %zu tensors, the shards hold %zu",
              json_object_size(map), mlxn_weights_count(w));
        for (size_t i = 0; i < mlxn_weights_count(w); i++) {
            const mlxn_weight_info *t = mlxn_weights_at(w, i);
            const char *f = json_string_value(json_object_get(map, t->name));
            CHECK(f && strstr(t->file, f), "index: %s -> %s, stored in %s", t->name, f ? f : "(none)", t->file);
        }
        CHECK(json_integer_value(json_object_get(json_object_get(idx, "metadata"), "total_size")) > 0, "total_size");
    }
    mlxn_weights_free(w);
    json_decref(idx);
    int64_t V = 0;
    float *a = cu_logits(dev, one, toks, 8, &V), *b = cu_logits(dev, many, toks, 8, &V);
    CHECK(a && b && !memcmp(a, b, sizeof(float) * (size_t)(8 * V)), "sharded and single-file models differ");
    free(a);
    free(b);
    cu_rm_tree(one);
    cu_rm_tree(many);
}

/* ---- bad inputs ---- */

/* hf_tiny copied to a scratch directory with its tensors changed. */
static const char *hf_variant(const char *tag, const char *drop, const char *extra, const char *reshape,
                              bool quantized_config) {
    const char *dir = cu_path(tag);
    mkdir(dir, 0755);
    char from[1500], to[1500];
    const char *files[] = {"config.json", "tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(from, sizeof from, "%s/%s", cu_golden("convert/hf_tiny"), files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        json_t *j = cu_json(from);
        if (j && i == 0 && quantized_config)
            json_object_set_new(j, "quantization", json_pack("{s:i, s:i}", "group_size", 64, "bits", 4));
        if (j) CHECK(json_dump_file(j, to, 0) == 0, "write %s", to);
        json_decref(j);
    }
    mlxn_weights *w = NULL;
    mlxn_st_writer *wr = NULL;
    CHECK_OK(mlxn_weights_open(cu_golden("convert/hf_tiny"), &w));
    CHECK_OK(mlxn_st_writer_new(&wr));
    for (size_t i = 0; w && wr && i < mlxn_weights_count(w); i++) {
        const mlxn_weight_info *t = mlxn_weights_at(w, i);
        int64_t shape[MLXN_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (reshape && !strcmp(t->name, reshape)) shape[0]--;
        if (drop && !strcmp(t->name, drop)) continue;
        CHECK_OK(mlxn_st_writer_add(wr, t->name, t->dtype, t->ndim, shape, mlxn_weights_data(w, t)));
        if (extra && !strcmp(t->name, "model.norm.weight"))
            CHECK_OK(mlxn_st_writer_add(wr, extra, t->dtype, t->ndim, shape, mlxn_weights_data(w, t)));
    }
    snprintf(to, sizeof to, "%s/model.safetensors", dir);
    if (wr) CHECK_OK(mlxn_st_writer_save(wr, to));
    mlxn_st_writer_free(wr);
    mlxn_weights_free(w);
    return dir;
}

static void test_bad(void) {
    mlxn_convert_params q4 = {.quantize = 1};
    char out[1400];
    snprintf(out, sizeof out, "%s", cu_path("out"));
    const char *d;
    d = hf_variant("extra", NULL, "model.layers.0.mlp.extra_proj.weight", NULL, false);
    cu_convert_fails(d, out, &q4, MLXN_ERR_FORMAT, "model.layers.0.mlp.extra_proj.weight", "not used");
    cu_rm_tree(d);
    d = hf_variant("missing", "model.layers.1.mlp.up_proj.weight", NULL, NULL, false);
    cu_convert_fails(d, out, &q4, MLXN_ERR_FORMAT, "missing tensor model.layers.1.mlp.up_proj.weight", NULL);
    cu_rm_tree(d);
    d = hf_variant("shape", NULL, NULL, "model.layers.0.self_attn.k_proj.weight", false);
    cu_convert_fails(d, out, NULL, MLXN_ERR_SHAPE, "model.layers.0.self_attn.k_proj.weight", "expected");
    cu_rm_tree(d);
    d = hf_variant("quantized", NULL, NULL, NULL, true);
    cu_convert_fails(d, out, &q4, MLXN_ERR_UNSUPPORTED, "already quantized", "config.json");
    cu_rm_tree(d);

    /* an existing destination is left alone */
    const char *exists = cu_path("exists");
    mkdir(exists, 0755);
    mlxn_clear_error();
    CHECK(mlxn_convert(cu_golden("convert/hf_tiny"), exists, NULL) == MLXN_ERR_INVALID_ARGUMENT &&
              strstr(mlxn_last_error(), "already exists"),
          "convert onto an existing directory: %s", mlxn_last_error());
    rmdir(exists);

    /* options */
    mlxn_convert_params bad_preset = {.random_preset = "llama-99b"};
    cu_convert_fails(NULL, out, &bad_preset, MLXN_ERR_INVALID_ARGUMENT, "llama-99b", "tiny-llama");
    mlxn_convert_params bad_recipe = {.random_preset = "tiny-llama", .recipe = "mixed_9_9"};
    cu_convert_fails(NULL, out, &bad_recipe, MLXN_ERR_INVALID_ARGUMENT, "mixed_9_9", "mixed_3_6");
    mlxn_convert_params fp_recipe = {.random_preset = "tiny-llama", .recipe = "mixed_3_6", .mode = MLXN_QUANT_MXFP4};
    cu_convert_fails(NULL, out, &fp_recipe, MLXN_ERR_INVALID_ARGUMENT, "mixed_3_6", "affine");
    mlxn_convert_params bits7 = {.random_preset = "tiny-llama", .quantize = 1, .bits = 7};
    cu_convert_fails(NULL, out, &bits7, MLXN_ERR_UNSUPPORTED, "bits = 7", NULL);
    mlxn_convert_params nvbits = {.random_preset = "tiny-llama", .quantize = 1, .mode = MLXN_QUANT_NVFP4, .bits = 8};
    cu_convert_fails(NULL, out, &nvbits, MLXN_ERR_UNSUPPORTED, "nvfp4", NULL);
    cu_convert_fails(cu_path("nowhere"), out, NULL, MLXN_ERR_IO, "nowhere", NULL);
    CHECK_FAILS(mlxn_convert(NULL, out, NULL), MLXN_ERR_INVALID_ARGUMENT);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_convert");
    cu_init_root("test_convert");
    mlxn_device *exact = t_cpu_device_exact(0), *fast = t_cpu_device(0, MLXN_CPU_ISA_AUTO);
    if (exact && fast) {
        test_hf(exact, fast);
        test_random(fast);
        test_bad();
    }
    mlxn_device_free(exact);
    mlxn_device_free(fast);
    cu_rm_tree(cu_root);
    return t_finish();
}
