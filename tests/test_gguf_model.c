/* GGUF models, run directly and converted (tests/golden/convert/tiny.gguf,
 * written by gguf-py: a 3-layer llama with q/k rows permuted as llama.cpp's
 * converter permutes them and every block type we map: Q8_0 embedding and
 * v, Q4_0 q and up, Q4_1 k, F16 o and head, F32/BF16/Q8_0 gate, Q4_K /
 * Q5_K / Q6_K down).
 *  - mlxn_model_load on the .gguf gives the logits mlx-lm's llama computes
 *    (f32) from gguf-py's dequantization of every tensor with the rows put
 *    back in the checkpoint's order. The exact mappings leave only
 *    summation order; Q6_K (layer 2's down) is requantized to affine 8-bit
 *    and adds its rounding (TOL_REQUANT, measured 2e-4 std).
 *  - convert writes a directory that loads to bit-identical logits;
 *    config.json has the metadata's shape and the quantization per module
 *    (4-bit group 32 by default, 8-bit Q8_0 tensors, Q4_K 4-bit and Q5_K
 *    5-bit with f32 scales, F16/F32/BF16 dense); tokenizer.json and
 *    tokenizer_config.json hold the GGUF vocabulary, merges, special
 *    tokens and pre-tokenizer.
 *  - requantization options, -q on the dense tensors.
 *  - bad files: a missing, an extra and a mis-shaped tensor, a vocabulary
 *    size that disagrees with the embedding, another architecture: each an
 *    error naming the file and the tensor or key, from load and convert,
 *    with nothing written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_util.h"

/* gguf-py's values through mlx-lm vs ours: the exact mappings leave only
   summation order (checked bit for bit per tensor below); the Q6_K layer
   requantized to affine 8-bit adds its rounding: measured 2.6e-3 std, NMSE
   7e-7 */
static const cu_tol TOL_REQUANT = {5e-3, 2e-6};
/* the same at the best ISA (VNNI rounds x to 16 bits per group) */
static const cu_tol TOL_FAST = {8e-3, 4e-6};
/* Q6_K -> 6-bit group 32 (measured 1.1e-2 std, NMSE 1.4e-5) and -q 8-bit g64
   on the dense tensors (3.2e-2, 7.7e-5) */
static const cu_tol TOL_6BIT = {3e-2, 5e-5};
static const cu_tol TOL_Q8 = {8e-2, 3e-4};

static const char *tiny(void) { return cu_golden("convert/tiny.gguf"); }

static void check_config(const char *dir) {
    char p[1500];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_t *c = cu_json(p);
    if (!c) return;
    CHECK(!strcmp(json_string_value(json_object_get(c, "model_type")), "llama"), "model_type");
    CHECK(json_integer_value(json_object_get(c, "hidden_size")) == 64 &&
              json_integer_value(json_object_get(c, "intermediate_size")) == 256 &&
              json_integer_value(json_object_get(c, "num_hidden_layers")) == 3 &&
              json_integer_value(json_object_get(c, "num_attention_heads")) == 4 &&
              json_integer_value(json_object_get(c, "num_key_value_heads")) == 2 &&
              json_integer_value(json_object_get(c, "vocab_size")) == 262 &&
              json_integer_value(json_object_get(c, "max_position_embeddings")) == 2048 &&
              json_is_false(json_object_get(c, "tie_word_embeddings")) &&
              json_is_false(json_object_get(c, "rope_traditional")) &&
              json_real_value(json_object_get(c, "rope_theta")) == 10000.0 &&
              (float)json_real_value(json_object_get(c, "rms_norm_eps")) == 1e-5f,
          "config.json shape keys");
    json_t *q = json_object_get(c, "quantization");
    CHECK(json_integer_value(json_object_get(q, "bits")) == 4 && json_integer_value(json_object_get(q, "group_size")) == 32,
          "default quantization 4-bit group 32");
    struct {
        const char *mod;
        int bits; /* 0: no entry (the default) */
    } want[] = {{"model.embed_tokens", 8}, {"model.layers.0.self_attn.v_proj", 8}, {"model.layers.2.mlp.gate_proj", 8},
                {"model.layers.2.mlp.down_proj", 8},   {"model.layers.1.mlp.down_proj", 5},
                {"model.layers.0.mlp.down_proj", 0},   {"model.layers.0.self_attn.q_proj", 0}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        json_t *e = json_object_get(q, want[i].mod);
        CHECK(want[i].bits ? json_integer_value(json_object_get(e, "bits")) == want[i].bits : e == NULL,
              "quantization entry of %s", want[i].mod);
    }
    json_decref(c);

    mlxn_weights *w = NULL;
    CHECK_OK(mlxn_weights_open(dir, &w));
    struct {
        const char *name;
        mlxn_dtype dt;
    } dts[] = {{"model.layers.0.mlp.down_proj.scales", MLXN_DTYPE_F32}, /* Q4_K: f32 scales */
               {"model.layers.1.mlp.down_proj.biases", MLXN_DTYPE_F32}, /* Q5_K */
               {"model.layers.2.mlp.down_proj.scales", MLXN_DTYPE_F16}, /* Q6_K requantized via f16 */
               {"model.layers.0.self_attn.q_proj.scales", MLXN_DTYPE_F16},
               {"model.embed_tokens.biases", MLXN_DTYPE_F16},
               {"model.layers.0.self_attn.o_proj.weight", MLXN_DTYPE_F16},
               {"model.layers.0.mlp.gate_proj.weight", MLXN_DTYPE_F32},
               {"model.layers.1.mlp.gate_proj.weight", MLXN_DTYPE_BF16},
               {"lm_head.weight", MLXN_DTYPE_F16},
               {"model.norm.weight", MLXN_DTYPE_F32}};
    for (size_t i = 0; w && i < sizeof dts / sizeof dts[0]; i++) {
        const mlxn_weight_info *t = mlxn_weights_find(w, dts[i].name);
        CHECK(t && t->dtype == dts[i].dt, "%s: dtype %s, expected %s", dts[i].name, t ? mlxn_dtype_name(t->dtype) : "none",
              mlxn_dtype_name(dts[i].dt));
    }
    mlxn_weights_free(w);
}

/* Our tokenizer.json, read by the library's tokenizer, encodes the golden
 * text to the ids Hugging Face's `tokenizers` gives with a tokenizer built
 * from the same vocabulary; so does the tokenizer read from the GGUF. */
static void check_encoding(const char *dir, mlxn_weights *g) {
    size_t n = 0;
    const int32_t *want = t_golden_get(g, "gguf_text_ids", MLXN_DTYPE_I32, &n);
    const char *text = mlxn_weights_metadata(g, "gguf_text");
    mlxn_tokenizer *t = NULL, *tg = NULL;
    mlxn_gguf *gg = NULL;
    CHECK_OK(mlxn_tokenizer_load(dir, &t));
    CHECK_OK(mlxn_gguf_open(tiny(), &gg));
    if (gg) CHECK_OK(mlxn_tokenizer_from_gguf(gg, &tg));
    mlxn_tokenizer *both[2] = {t, tg};
    for (int k = 0; k < 2 && want && text; k++) {
        int32_t *ids = NULL;
        size_t m = 0;
        if (!both[k]) continue;
        CHECK_OK(mlxn_tokenizer_encode(both[k], text, strlen(text), 0, &ids, &m));
        CHECK(m == n && ids && !memcmp(ids, want, sizeof(int32_t) * n), "%s encodes the golden text differently (%zu ids, "
              "want %zu)", k ? "the GGUF's tokenizer" : "our tokenizer.json", m, n);
        free(ids);
    }
    mlxn_tokenizer_free(t);
    mlxn_tokenizer_free(tg);
    mlxn_gguf_free(gg);
}

static void check_tokenizer(const char *dir) {
    char p[1500];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    json_t *t = cu_json(p);
    if (t) {
        json_t *model = json_object_get(t, "model"), *vocab = json_object_get(model, "vocab");
        json_t *merges = json_object_get(model, "merges"), *added = json_object_get(t, "added_tokens");
        CHECK(!strcmp(json_string_value(json_object_get(model, "type")), "BPE"), "tokenizer model type");
        CHECK(json_object_size(vocab) == 262, "vocab size %zu", json_object_size(vocab));
        CHECK(json_integer_value(json_object_get(vocab, "\xc4\xa0the")) == 261 &&
                  json_integer_value(json_object_get(vocab, "<|im_end|>")) == 2 &&
                  json_integer_value(json_object_get(vocab, "!")) == 3,
              "vocab ids");
        CHECK(json_array_size(merges) == 3 && !strcmp(json_string_value(json_array_get(merges, 2)), "\xc4\xa0t he"),
              "merges");
        CHECK(json_array_size(added) == 3, "added tokens");
        for (size_t i = 0; i < json_array_size(added); i++) {
            json_t *a = json_array_get(added, i);
            CHECK(json_integer_value(json_object_get(a, "id")) == (json_int_t)i && json_is_true(json_object_get(a, "special")),
                  "added token %zu", i);
        }
        json_t *pre = json_object_get(t, "pre_tokenizer");
        json_t *pts = json_object_get(pre, "pretokenizers");
        CHECK(!strcmp(json_string_value(json_object_get(pre, "type")), "Sequence") &&
                  !strcmp(json_string_value(json_object_get(json_array_get(pts, 0), "type")), "Digits") &&
                  !strcmp(json_string_value(json_object_get(json_array_get(pts, 1), "type")), "ByteLevel"),
              "pre_tokenizer (smollm: digits, then byte-level)");
    }
    json_decref(t);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    json_t *c = cu_json(p);
    if (c) {
        CHECK(!strcmp(json_string_value(json_object_get(c, "bos_token")), "<|im_start|>") &&
                  !strcmp(json_string_value(json_object_get(c, "eos_token")), "<|im_end|>") &&
                  !strcmp(json_string_value(json_object_get(c, "pad_token")), "<|im_end|>") &&
                  !strcmp(json_string_value(json_object_get(c, "unk_token")), "<|endoftext|>") &&
                  json_is_false(json_object_get(c, "add_bos_token")) &&
                  strstr(json_string_value(json_object_get(c, "chat_template")), "im_start"),
              "tokenizer_config.json special tokens and chat template");
    }
    json_decref(c);
}

/* Every weight of the converted directory, dequantized with MLX's
 * arithmetic (mlxn_dequantize), against the GGUF reader's dequantization
 * of the same GGUF row (rows of q/k un-permuted here, independently of
 * the converter): identical values for the exact block types (computed
 * in f32 as the runner does), within one 8-bit step for the requantized
 * Q6_K. */
static void check_exact(const char *dir) {
    static const char *const MAP[][2] = {
        {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"}, {"attn_q", "self_attn.q_proj"},
        {"attn_k", "self_attn.k_proj"},   {"attn_v", "self_attn.v_proj"},           {"attn_output", "self_attn.o_proj"},
        {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},                {"ffn_down", "mlp.down_proj"}};
    mlxn_gguf *g = NULL;
    mlxn_weights *w = NULL;
    CHECK_OK(mlxn_gguf_open(tiny(), &g));
    CHECK_OK(mlxn_weights_open(dir, &w));
    int exact = 0, requant = 0;
    for (size_t i = 0; g && w && i < mlxn_gguf_tensor_count(g); i++) {
        const mlxn_gguf_tensor_info *t = mlxn_gguf_tensor_at(g, i);
        char mod[256] = "", name[300];
        int layer, heads = 0;
        char part[64];
        if (sscanf(t->name, "blk.%d.%63[^.]", &layer, part) == 2) {
            for (int k = 0; k < 9; k++)
                if (!strcmp(part, MAP[k][0])) snprintf(mod, sizeof mod, "model.layers.%d.%s", layer, MAP[k][1]);
            heads = !strcmp(part, "attn_q") ? 4 : !strcmp(part, "attn_k") ? 2 : 0;
        } else if (!strcmp(t->name, "token_embd.weight")) snprintf(mod, sizeof mod, "model.embed_tokens");
        else if (!strcmp(t->name, "output.weight")) snprintf(mod, sizeof mod, "lm_head");
        else if (!strcmp(t->name, "output_norm.weight")) snprintf(mod, sizeof mod, "model.norm");
        CHECK(mod[0], "unmapped GGUF tensor %s", t->name);
        int64_t rows = t->n_rows, cols = t->ne[0], D = 16;
        snprintf(name, sizeof name, "%s.weight", mod);
        const mlxn_weight_info *wi = mlxn_weights_find(w, name);
        snprintf(name, sizeof name, "%s.scales", mod);
        const mlxn_weight_info *si = mlxn_weights_find(w, name);
        snprintf(name, sizeof name, "%s.biases", mod);
        const mlxn_weight_info *bi = mlxn_weights_find(w, name);
        CHECK(wi != NULL, "%s: no %s.weight", t->name, mod);
        if (!wi) continue;
        float *a = malloc(sizeof(float) * (size_t)cols), *b = malloc(sizeof(float) * (size_t)cols);
        double worst = 0, amax = 0;
        bool same = true;
        for (int64_t r = 0; r < rows; r++) {
            int64_t src = r;
            if (heads) {
                int64_t within = r % D;
                src = r - within + 2 * (within % (D / 2)) + within / (D / 2);
            }
            CHECK_OK(mlxn_gguf_dequantize(g, t, src, 1, a));
            if (si && bi) {
                /* scale * code + bias in f32, as the runner computes it
                   (mlxn_dequantize would round to the scales' f16 as
                   mx.dequantize does) */
                int bits = (int)(wi->shape[1] * 32 / cols), group = (int)(cols / si->shape[1]);
                const uint32_t *codes = (const uint32_t *)mlxn_weights_data(w, wi) + r * wi->shape[1];
                const char *sp = mlxn_weights_data(w, si), *bp = mlxn_weights_data(w, bi);
                for (int64_t c = 0; c < cols; c++) {
                    int64_t gi = r * si->shape[1] + c / group;
                    float sc, bs;
                    if (si->dtype == MLXN_DTYPE_F32) {
                        memcpy(&sc, sp + 4 * gi, 4);
                        memcpy(&bs, bp + 4 * gi, 4);
                    } else {
                        uint16_t h1, h2;
                        memcpy(&h1, sp + 2 * gi, 2);
                        memcpy(&h2, bp + 2 * gi, 2);
                        sc = mlxn_f16_to_f32(h1);
                        bs = mlxn_f16_to_f32(h2);
                    }
                    uint64_t bit = (uint64_t)c * (uint64_t)bits;
                    uint64_t pair = codes[bit / 32];
                    if (bit % 32 + (uint64_t)bits > 32) pair |= (uint64_t)codes[bit / 32 + 1] << 32;
                    float code = (float)((pair >> (bit % 32)) & ((1u << bits) - 1));
                    float prod = sc * code;
                    b[c] = prod + bs;
                }
            } else {
                const char *p = (const char *)mlxn_weights_data(w, wi) + (size_t)(r * cols) * mlxn_dtype_size(wi->dtype);
                for (int64_t c = 0; c < cols; c++) {
                    uint16_t h;
                    if (wi->dtype == MLXN_DTYPE_F32) memcpy(&b[c], p + 4 * c, 4);
                    else {
                        memcpy(&h, p + 2 * c, 2);
                        b[c] = wi->dtype == MLXN_DTYPE_F16 ? mlxn_f16_to_f32(h) : mlxn_bf16_to_f32(h);
                    }
                }
            }
            for (int64_t c = 0; c < cols; c++) same &= a[c] == b[c]; /* Q4_0's d*(8-8) may be -0, MLX's +0 */
            double d = t_max_abs_diff(a, b, (size_t)cols);
            for (int64_t c = 0; c < cols; c++) amax = fabs(a[c]) > amax ? fabs(a[c]) : amax;
            if (!(d <= worst)) worst = d;
        }
        if (t->type == MLXN_GGML_Q6_K) {
            /* 8-bit affine over groups of 32 (values first rounded to f16):
               within one step, 2 * max|w| / 255, of the Q6_K value */
            CHECK(worst <= 2 * amax / 255.0, "%s (q6_K requantized): max error %g (step %g)", t->name, worst,
                  2 * amax / 255.0);
            requant++;
        } else {
            CHECK(same, "%s (%s): our MLX tensors do not dequantize to the GGUF values (max diff %g)", t->name,
                  mlxn_ggml_type_name(t->type), worst);
            exact += same;
        }
        free(a);
        free(b);
    }
    printf("  %d GGUF tensors dequantize to identical values from our MLX tensors, %d requantized\n", exact, requant);
    mlxn_weights_free(w);
    mlxn_gguf_free(g);
}

static void test_tiny(mlxn_device *exact, mlxn_device *fast) {
    mlxn_weights *g = t_golden_open("convert/logits.safetensors");
    size_t T = 0, n = 0;
    const int32_t *tokens = g ? t_golden_get(g, "tokens", MLXN_DTYPE_I32, &T) : NULL;
    const float *ref = g ? t_golden_get(g, "gguf", MLXN_DTYPE_F32, &n) : NULL;
    if (!tokens || !ref) {
        mlxn_weights_free(g);
        return;
    }
    int64_t V = 0;
    float *direct = cu_logits(exact, tiny(), tokens, (int64_t)T, &V);
    float *direct_fast = cu_logits(fast, tiny(), tokens, (int64_t)T, &V);
    CHECK(V == 262 && n == T * 262, "vocab %lld", (long long)V);
    if (direct && direct_fast && n == T * (size_t)V) {
        cu_compare("gguf direct vs mlx-lm on gguf-py (float paths)", ref, direct, (int64_t)T, V, TOL_REQUANT);
        cu_compare("gguf direct vs mlx-lm on gguf-py (best isa)", ref, direct_fast, (int64_t)T, V, TOL_FAST);
    }

    /* the converted directory: the same logits, bit for bit */
    const char *dir = cu_path("tiny");
    CHECK_OK(mlxn_convert(tiny(), dir, NULL));
    check_config(dir);
    check_tokenizer(dir);
    check_encoding(dir, g);
    check_exact(dir);
    float *conv = cu_logits(exact, dir, tokens, (int64_t)T, &V);
    CHECK(direct && conv && !memcmp(direct, conv, sizeof(float) * n), "converted directory and GGUF logits differ");
    free(conv);
    cu_rm_tree(dir);

    /* Q6_K requantized to 8 bits, or to 6-bit group 32 when asked */
    mlxn_convert_params six = {.bits = 6, .group_size = 32};
    CHECK_OK(mlxn_convert(tiny(), dir, &six));
    mlxn_weights *w = NULL;
    CHECK_OK(mlxn_weights_open(dir, &w));
    const mlxn_weight_info *d2 = w ? mlxn_weights_find(w, "model.layers.2.mlp.down_proj.weight") : NULL;
    CHECK(d2 && d2->shape[1] == 256 * 6 / 32, "--bits 6: layer 2 down_proj has %lld words per row",
          d2 ? (long long)d2->shape[1] : -1LL);
    mlxn_weights_free(w);
    conv = cu_logits(exact, dir, tokens, (int64_t)T, &V);
    if (conv) cu_compare("gguf with Q6_K -> 6-bit g32", ref, conv, (int64_t)T, V, TOL_6BIT);
    free(conv);
    cu_rm_tree(dir);

    /* -q: the dense tensors (F32/BF16 gate, F16 o and head) get quantized too */
    mlxn_convert_params q = {.quantize = 1, .bits = 8, .group_size = 64};
    CHECK_OK(mlxn_convert(tiny(), dir, &q));
    CHECK_OK(mlxn_weights_open(dir, &w));
    const char *must[] = {"model.layers.0.mlp.gate_proj.scales", "model.layers.1.mlp.gate_proj.scales",
                          "model.layers.0.self_attn.o_proj.scales", "lm_head.scales"};
    for (int i = 0; w && i < 4; i++) CHECK(mlxn_weights_find(w, must[i]) != NULL, "-q: %s", must[i]);
    CHECK(w && !mlxn_weights_find(w, "model.norm.scales"), "-q quantized a norm");
    mlxn_weights_free(w);
    conv = cu_logits(exact, dir, tokens, (int64_t)T, &V);
    if (conv) cu_compare("gguf with -q 8-bit g64", ref, conv, (int64_t)T, V, TOL_Q8);
    free(conv);
    cu_rm_tree(dir);

    free(direct);
    free(direct_fast);
    mlxn_weights_free(g);
}

static void load_fails(mlxn_device *dev, const char *path, mlxn_status want, const char *n1, const char *n2) {
    mlxn_model *m = (mlxn_model *)&m;
    mlxn_clear_error();
    mlxn_status st = mlxn_model_load(path, dev, NULL, &m);
    const char *msg = mlxn_last_error();
    CHECK(st == want && m == NULL, "load %s -> %s (wanted %s): %s", path, mlxn_status_str(st), mlxn_status_str(want), msg);
    CHECK(strstr(msg, n1) && (!n2 || strstr(msg, n2)) && strstr(msg, path), "load %s: message '%s' should name '%s'%s%s",
          path, msg, n1, n2 ? " and " : "", n2 ? n2 : "");
    if (st == MLXN_OK) mlxn_model_free(m);
}

static void test_bad(mlxn_device *dev) {
    struct {
        const char *file;
        mlxn_status st;
        const char *n1, *n2;
    } bad[] = {
        {"convert/mini_missing.gguf", MLXN_ERR_FORMAT, "missing tensor blk.0.ffn_up.weight", NULL},
        {"convert/mini_extra.gguf", MLXN_ERR_FORMAT, "blk.0.attn_q_norm.weight", "not part of a llama model"},
        {"convert/mini_shape.gguf", MLXN_ERR_SHAPE, "blk.0.attn_k.weight", "expected [16, 16]"},
        {"convert/mini_vocab.gguf", MLXN_ERR_SHAPE, "llama.vocab_size is 9", "token_embd.weight has 8 rows"},
        {"convert/mini_arch.gguf", MLXN_ERR_UNSUPPORTED, "\"qwen2\"", "supported: llama"},
    };
    const char *out = cu_path("bad");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        load_fails(dev, cu_golden(bad[i].file), bad[i].st, bad[i].n1, bad[i].n2);
        cu_convert_fails(cu_golden(bad[i].file), out, NULL, bad[i].st, bad[i].n1, bad[i].n2);
    }
    /* the unmodified mini model loads and converts */
    static const int32_t toks[3] = {1, 2, 7};
    int64_t V = 0;
    float *a = cu_logits(dev, cu_golden("convert/mini_ok.gguf"), toks, 3, &V);
    CHECK(a && V == 8, "mini_ok.gguf");
    free(a);
    CHECK_OK(mlxn_convert(cu_golden("convert/mini_ok.gguf"), out, NULL));
    cu_rm_tree(out);
    /* a file that is not GGUF */
    load_fails(dev, cu_golden("convert/hf_tiny/config.json"), MLXN_ERR_FORMAT, "config.json", NULL);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_gguf_model");
    cu_init_root("test_gguf_model");
    mlxn_device *exact = t_cpu_device_exact(0), *fast = t_cpu_device(0, MLXN_CPU_ISA_AUTO);
    if (exact && fast) {
        test_tiny(exact, fast);
        test_bad(fast);
    }
    mlxn_device_free(exact);
    mlxn_device_free(fast);
    cu_rm_tree(cu_root);
    return t_finish();
}
