/* tokenizer.json and tokenizer_config.json (Hugging Face's formats) from
 * a GGUF's vocabulary, for byte-level BPE tokenizers
 * (tokenizer.ggml.model = "gpt2"):
 *   model          BPE: vocab = tokenizer.ggml.tokens by id, merges =
 *                  tokenizer.ggml.merges ("a b" strings, rank order),
 *                  no unk token, no byte fallback
 *   added_tokens   every token of type 3 (control; special) or 4
 *                  (user-defined; not special), in id order
 *   pre_tokenizer  from tokenizer.ggml.pre, the regex llama.cpp names:
 *                    smollm/starcoder/refact: Digits (one digit per piece)
 *                      then ByteLevel with GPT-2's regex
 *                    gpt2/default/absent: ByteLevel with GPT-2's regex
 *                    llama-bpe: llama 3's Split regex, then ByteLevel
 *                    qwen2: NFC, Qwen2's Split regex, then ByteLevel
 *   post_processor ByteLevel, or a template adding BOS when
 *                  tokenizer.ggml.add_bos_token is true
 *   decoder        ByteLevel
 * tokenizer_config.json: bos/eos/unk/pad tokens by the tokenizer.ggml.*_id
 * keys, the chat template, added_tokens_decoder, model_max_length (the
 * context length), tokenizer_class GPT2Tokenizer. A vocabulary with a
 * repeated token, or a token count other than the embedding's rows
 * (checked by the caller), is an error. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "model/convert_internal.h"

static const char *const RE_LLAMA3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
static const char *const RE_QWEN2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

static json_t *byte_level(int use_regex) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex",
                     use_regex);
}

static json_t *split(const char *re) {
    return json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex", re, "behavior", "Isolated", "invert",
                     0);
}

/* pre_tokenizer and normalizer for tokenizer.ggml.pre; NULL pre = unsupported. */
static void pre_for(const char *pre, json_t **pt, json_t **norm) {
    *pt = NULL;
    *norm = json_null();
    if (!pre || !strcmp(pre, "default") || !strcmp(pre, "gpt2") || !strcmp(pre, "gpt-2")) {
        *pt = byte_level(1);
    } else if (!strcmp(pre, "smollm") || !strcmp(pre, "starcoder") || !strcmp(pre, "refact")) {
        *pt = json_pack("{s:s, s:[{s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type", "Digits",
                        "individual_digits", 1, byte_level(1));
    } else if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3")) {
        *pt = json_pack("{s:s, s:[o, o]}", "type", "Sequence", "pretokenizers", split(RE_LLAMA3), byte_level(0));
    } else if (!strcmp(pre, "qwen2")) {
        *pt = json_pack("{s:s, s:[o, o]}", "type", "Sequence", "pretokenizers", split(RE_QWEN2), byte_level(0));
        *norm = json_pack("{s:s}", "type", "NFC");
    }
}

static const char *token_at(const mlxn_gguf_value *toks, size_t i) { return mlxn_gguf_array_str(toks, i, NULL); }

static mlxn_status opt_id(const mlxn_gguf *g, const char *key, size_t n, int64_t *out) {
    *out = -1;
    if (!mlxn_gguf_find(g, key)) return MLXN_OK;
    uint32_t v;
    MLXN_TRY(mlxn_gguf_get_u32(g, key, &v));
    if (v < n) *out = v;
    return MLXN_OK;
}

static json_t *added_token(int64_t id, const char *content, int special) {
    return json_pack("{s:I, s:s, s:b, s:b, s:b, s:b, s:b}", "id", (json_int_t)id, "content", content, "single_word", 0,
                     "lstrip", 0, "rstrip", 0, "normalized", !special, "special", special);
}

mlxn_status cv_gguf_tokenizer(const mlxn_gguf *g, const char *path, cv_set *s) {
    const char *model = NULL, *pre = NULL;
    if (!mlxn_gguf_find(g, "tokenizer.ggml.model"))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: no tokenizer (metadata key tokenizer.ggml.model is missing)", path);
    MLXN_TRY(mlxn_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL));
    if (strcmp(model, "gpt2") != 0)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model \"%s\" is not supported (supported: gpt2, "
                                               "byte-level BPE)",
                         path, model);
    if (mlxn_gguf_find(g, "tokenizer.ggml.pre")) MLXN_TRY(mlxn_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL));
    json_t *pt, *norm;
    pre_for(pre, &pt, &norm);
    if (!pt)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                         "%s: tokenizer.ggml.pre \"%s\" is not supported (supported: smollm, starcoder, refact, gpt2, "
                         "default, llama-bpe, qwen2)",
                         path, pre);
    mlxn_gguf_type et;
    size_t n = 0, nm = 0, ntt = 0;
    const mlxn_gguf_value *toks = NULL, *merges = NULL, *types = NULL;
    mlxn_status st = mlxn_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &n, &toks);
    if (st == MLXN_OK && et != MLXN_GGUF_STRING)
        st = mlxn_fail(MLXN_ERR_FORMAT, "%s: tokenizer.ggml.tokens is not an array of strings", path);
    if (st == MLXN_OK && mlxn_gguf_find(g, "tokenizer.ggml.merges")) { /* absent: no merges */
        st = mlxn_gguf_get_array(g, "tokenizer.ggml.merges", &et, &nm, &merges);
        if (st == MLXN_OK && nm == 0) et = MLXN_GGUF_STRING;
    }
    if (st == MLXN_OK && merges && et != MLXN_GGUF_STRING)
        st = mlxn_fail(MLXN_ERR_FORMAT, "%s: tokenizer.ggml.merges is not an array of strings", path);
    if (st == MLXN_OK && mlxn_gguf_find(g, "tokenizer.ggml.token_type")) {
        st = mlxn_gguf_get_array(g, "tokenizer.ggml.token_type", &et, &ntt, &types);
        if (st == MLXN_OK && ntt != n)
            st = mlxn_fail(MLXN_ERR_FORMAT, "%s: tokenizer.ggml.token_type has %zu entries for %zu tokens", path, ntt, n);
    }
    int64_t bos, eos, unk, pad;
    if (st == MLXN_OK) st = opt_id(g, "tokenizer.ggml.bos_token_id", n, &bos);
    if (st == MLXN_OK) st = opt_id(g, "tokenizer.ggml.eos_token_id", n, &eos);
    if (st == MLXN_OK) st = opt_id(g, "tokenizer.ggml.unknown_token_id", n, &unk);
    if (st == MLXN_OK) st = opt_id(g, "tokenizer.ggml.padding_token_id", n, &pad);
    int add_bos = 0;
    if (st == MLXN_OK && mlxn_gguf_find(g, "tokenizer.ggml.add_bos_token"))
        st = mlxn_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos);
    if (st != MLXN_OK) {
        json_decref(pt);
        json_decref(norm);
        return st;
    }

    json_t *vocab = json_object(), *mj = json_array(), *added = json_array(), *decoder = json_object();
    bool oom = !vocab || !mj || !added || !decoder;
    for (size_t i = 0; !oom && st == MLXN_OK && i < n; i++) {
        const char *t = token_at(toks, i);
        if (json_object_get(vocab, t)) {
            st = mlxn_fail(MLXN_ERR_FORMAT, "%s: token \"%s\" appears twice in tokenizer.ggml.tokens (ids %lld and %zu)",
                           path, t, (long long)json_integer_value(json_object_get(vocab, t)), i);
            break;
        }
        oom = json_object_set_new(vocab, t, json_integer((json_int_t)i)) != 0;
        int64_t type = 1;
        if (types) mlxn_gguf_array_i64(types, i, &type);
        if (!oom && (type == 3 || type == 4)) {
            char key[32];
            snprintf(key, sizeof key, "%zu", i);
            json_t *a = added_token((int64_t)i, t, type == 3);
            json_t *d = json_pack("{s:s, s:b, s:b, s:b, s:b, s:b}", "content", t, "lstrip", 0, "normalized", type != 3,
                                  "rstrip", 0, "single_word", 0, "special", type == 3);
            oom = !a || !d || json_array_append_new(added, a) != 0 || json_object_set_new(decoder, key, d) != 0;
        }
    }
    for (size_t i = 0; !oom && st == MLXN_OK && i < nm; i++) oom = json_array_append_new(mj, json_string(token_at(merges, i))) != 0;
    if (oom && st == MLXN_OK)
        st = mlxn_fail(MLXN_ERR_FORMAT, "%s: tokenizer: out of memory, or a token or merge that is not UTF-8", path);
    if (st != MLXN_OK) {
        json_decref(vocab), json_decref(mj), json_decref(added), json_decref(decoder), json_decref(pt), json_decref(norm);
        return st;
    }

    json_t *post;
    if (add_bos && bos >= 0) {
        const char *b = token_at(toks, (size_t)bos);
        post = json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}, "
                         "{s:{s:s, s:i}}], s:{s:{s:s, s:[I], s:[s]}}}",
                         "type", "TemplateProcessing", "single", "SpecialToken", "id", b, "type_id", 0, "Sequence", "id",
                         "A", "type_id", 0, "pair", "SpecialToken", "id", b, "type_id", 0, "Sequence", "id", "A",
                         "type_id", 0, "SpecialToken", "id", b, "type_id", 1, "Sequence", "id", "B", "type_id", 1,
                         "special_tokens", b, "id", b, "ids", (json_int_t)bos, "tokens", b);
    } else {
        post = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 0,
                         "use_regex", 1);
    }
    json_t *model_obj = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
                                  "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
                                  "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges", mj);
    s->tokenizer = json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:o}", "version", "1.0", "truncation", "padding",
                             "added_tokens", added, "normalizer", norm, "pre_tokenizer", pt, "post_processor", post,
                             "decoder",
                             json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                                       "trim_offsets", 1, "use_regex", 1),
                             "model", model_obj);
    if (!s->tokenizer) {
        json_decref(decoder);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: tokenizer: out of memory");
    }

    json_t *tc = json_pack("{s:b, s:b, s:o, s:b, s:s}", "add_bos_token", add_bos, "add_prefix_space", 0,
                           "added_tokens_decoder", decoder, "clean_up_tokenization_spaces", 0, "tokenizer_class",
                           "GPT2Tokenizer");
    if (!tc) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: tokenizer: out of memory");
    static const char *const names[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int64_t ids[] = {bos, eos, unk, pad};
    for (int i = 0; i < 4; i++)
        if (ids[i] >= 0) json_object_set_new(tc, names[i], json_string(token_at(toks, (size_t)ids[i])));
    const char *tmpl = NULL;
    if (mlxn_gguf_find(g, "tokenizer.chat_template") &&
        mlxn_gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL) == MLXN_OK)
        json_object_set_new(tc, "chat_template", json_string(tmpl));
    uint32_t ctx;
    if (mlxn_gguf_find(g, "llama.context_length") && mlxn_gguf_get_u32(g, "llama.context_length", &ctx) == MLXN_OK)
        json_object_set_new(tc, "model_max_length", json_integer(ctx));
    json_object_set_new(tc, "vocab_size", json_integer((json_int_t)n));
    s->tokenizer_config = tc;
    return MLXN_OK;
}
