/* Loading a Hugging Face tokenizer.json (+ tokenizer_config.json and
 * chat_template.jinja) with jansson into the structures of
 * tok_internal.h. Every component type we do not implement is
 * MLXN_ERR_UNSUPPORTED naming the component and the file; malformed JSON
 * or wrong field types are MLXN_ERR_FORMAT. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/internal.h"
#include "text/tok_internal.h"

typedef struct ctx {
    const char *name;
    mlxn_tokenizer *t;
} ctx;

static const json_t *field(const json_t *o, const char *k) {
    const json_t *v = json_object_get(o, k);
    return json_is_null(v) ? NULL : v;
}

static mlxn_status get_bool(const ctx *c, const json_t *o, const char *k, bool def, bool *out, const char *what) {
    const json_t *v = field(o, k);
    if (!v) { *out = def; return MLXN_OK; }
    if (!json_is_boolean(v)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s.%s is not a boolean", c->name, what, k);
    *out = json_is_true(v);
    return MLXN_OK;
}

static mlxn_status get_str(const ctx *c, const json_t *o, const char *k, const char **s, size_t *len, const char *what) {
    const json_t *v = field(o, k);
    if (!v || !json_is_string(v)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s.%s is missing or not a string", c->name, what, k);
    *s = json_string_value(v);
    *len = json_string_length(v);
    return MLXN_OK;
}

static const char *type_of(const json_t *o) {
    const json_t *v = json_object_get(o, "type");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static mlxn_status dup_str(const char *s, size_t len, char **out, size_t *out_len) {
    *out = malloc(len + 1);
    if (!*out) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    memcpy(*out, s, len);
    (*out)[len] = '\0';
    if (out_len) *out_len = len;
    return MLXN_OK;
}

/* {"String": "..."} or {"Regex": "..."} */
static mlxn_status parse_pattern(const ctx *c, const json_t *o, tx_pattern *p, const char *what) {
    if (!json_is_object(o)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s.pattern is not an object", c->name, what);
    const json_t *s = json_object_get(o, "String"), *r = json_object_get(o, "Regex");
    if (json_is_string(s)) return tx_pattern_literal(p, json_string_value(s), json_string_length(s));
    if (json_is_string(r)) {
        char where[160];
        snprintf(where, sizeof where, "%s: %s", c->name, what);
        return tx_pattern_compile_regex(p, json_string_value(r), json_string_length(r), where);
    }
    return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s.pattern has neither String nor Regex", c->name, what);
}

/* A single code point given as a JSON string. */
static mlxn_status get_char(const ctx *c, const json_t *o, const char *k, uint32_t def, uint32_t *out, const char *what) {
    const json_t *v = field(o, k);
    if (!v) { *out = def; return MLXN_OK; }
    if (!json_is_string(v)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s.%s is not a string", c->name, what, k);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0 || tx_utf8_check(s, len) != len) return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s.%s is not one character", c->name, what, k);
    size_t n = tx_utf8_next(s, len, out);
    if (n != len) return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s.%s is not one character", c->name, what, k);
    return MLXN_OK;
}

static mlxn_status parse_scheme(const ctx *c, const json_t *o, tx_prepend_scheme *out, const char *what) {
    const json_t *ps = field(o, "prepend_scheme");
    *out = TX_PREPEND_ALWAYS;
    if (ps) {
        const char *s = json_is_string(ps) ? json_string_value(ps) : "";
        if (!strcmp(s, "always")) *out = TX_PREPEND_ALWAYS;
        else if (!strcmp(s, "first")) *out = TX_PREPEND_FIRST;
        else if (!strcmp(s, "never")) *out = TX_PREPEND_NEVER;
        else return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s.prepend_scheme '%s' is not always/first/never", c->name, what, s);
    }
    const json_t *aps = field(o, "add_prefix_space");
    if (aps && json_is_false(aps)) {
        if (ps && *out != TX_PREPEND_NEVER)
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s: add_prefix_space does not match prepend_scheme", c->name, what);
        *out = TX_PREPEND_NEVER;
    }
    return MLXN_OK;
}

/* ---- normalizers ---- */
static mlxn_status parse_normalizer(const ctx *c, const json_t *o, tx_normalizer *n) {
    memset(n, 0, sizeof *n);
    if (!json_is_object(o)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: normalizer is not an object", c->name);
    const char *ty = type_of(o);
    if (!ty) return mlxn_fail(MLXN_ERR_FORMAT, "%s: normalizer has no type", c->name);
    if (!strcmp(ty, "Sequence")) {
        const json_t *a = json_object_get(o, "normalizers");
        if (!json_is_array(a)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: Sequence normalizer has no normalizers list", c->name);
        n->kind = TX_NORM_SEQUENCE;
        n->children = calloc(json_array_size(a) + 1, sizeof *n->children);
        if (!n->children) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        for (size_t i = 0; i < json_array_size(a); i++) {
            mlxn_status st = parse_normalizer(c, json_array_get(a, i), &n->children[i]);
            n->n_children = i + 1;
            if (st) return st;
        }
        return MLXN_OK;
    }
    if (!strcmp(ty, "NFC")) { n->kind = TX_NORM_NFC; return MLXN_OK; }
    if (!strcmp(ty, "NFD")) { n->kind = TX_NORM_NFD; return MLXN_OK; }
    if (!strcmp(ty, "NFKC")) { n->kind = TX_NORM_NFKC; return MLXN_OK; }
    if (!strcmp(ty, "NFKD")) { n->kind = TX_NORM_NFKD; return MLXN_OK; }
    if (!strcmp(ty, "Lowercase")) { n->kind = TX_NORM_LOWERCASE; return MLXN_OK; }
    if (!strcmp(ty, "Prepend")) {
        const char *s = NULL;
        size_t len = 0;
        n->kind = TX_NORM_PREPEND;
        MLXN_TRY(get_str(c, o, "prepend", &s, &len, "Prepend normalizer"));
        return dup_str(s, len, &n->str, &n->str_len);
    }
    if (!strcmp(ty, "Replace")) {
        const char *s = NULL;
        size_t len = 0;
        n->kind = TX_NORM_REPLACE;
        MLXN_TRY(get_str(c, o, "content", &s, &len, "Replace normalizer"));
        MLXN_TRY(dup_str(s, len, &n->str, &n->str_len));
        return parse_pattern(c, json_object_get(o, "pattern"), &n->pat, "Replace normalizer");
    }
    if (!strcmp(ty, "Strip")) {
        n->kind = TX_NORM_STRIP;
        MLXN_TRY(get_bool(c, o, "strip_left", true, &n->left, "Strip normalizer"));
        return get_bool(c, o, "strip_right", true, &n->right, "Strip normalizer");
    }
    return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported (supported: Sequence, NFC, NFD, NFKC, NFKD, "
                     "Lowercase, Prepend, Replace, Strip)", c->name, ty);
}

/* ---- pre-tokenizers ---- */
static mlxn_status parse_pretok(const ctx *c, const json_t *o, tx_pretok *p) {
    memset(p, 0, sizeof *p);
    if (!json_is_object(o)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: pre_tokenizer is not an object", c->name);
    const char *ty = type_of(o);
    if (!ty) return mlxn_fail(MLXN_ERR_FORMAT, "%s: pre_tokenizer has no type", c->name);
    if (!strcmp(ty, "Sequence")) {
        const json_t *a = json_object_get(o, "pretokenizers");
        if (!json_is_array(a)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: Sequence pre_tokenizer has no pretokenizers list", c->name);
        p->kind = TX_PRE_SEQUENCE;
        p->children = calloc(json_array_size(a) + 1, sizeof *p->children);
        if (!p->children) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        for (size_t i = 0; i < json_array_size(a); i++) {
            mlxn_status st = parse_pretok(c, json_array_get(a, i), &p->children[i]);
            p->n_children = i + 1;
            if (st) return st;
        }
        return MLXN_OK;
    }
    if (!strcmp(ty, "ByteLevel")) {
        p->kind = TX_PRE_BYTELEVEL;
        MLXN_TRY(get_bool(c, o, "add_prefix_space", true, &p->add_prefix_space, "ByteLevel pre_tokenizer"));
        MLXN_TRY(get_bool(c, o, "use_regex", true, &p->use_regex, "ByteLevel pre_tokenizer"));
        if (p->use_regex) return tx_pattern_compile_regex(&p->pat, tx_gpt2_regex, strlen(tx_gpt2_regex), "ByteLevel");
        return MLXN_OK;
    }
    if (!strcmp(ty, "Split")) {
        const char *b = NULL;
        size_t bl = 0;
        p->kind = TX_PRE_SPLIT;
        MLXN_TRY(get_str(c, o, "behavior", &b, &bl, "Split pre_tokenizer"));
        if (!strcmp(b, "Removed")) p->behavior = TX_SPLIT_REMOVED;
        else if (!strcmp(b, "Isolated")) p->behavior = TX_SPLIT_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious")) p->behavior = TX_SPLIT_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) p->behavior = TX_SPLIT_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) p->behavior = TX_SPLIT_CONTIGUOUS;
        else return mlxn_fail(MLXN_ERR_FORMAT, "%s: Split behavior '%s' is unknown", c->name, b);
        MLXN_TRY(get_bool(c, o, "invert", false, &p->invert, "Split pre_tokenizer"));
        return parse_pattern(c, json_object_get(o, "pattern"), &p->pat, "Split pre_tokenizer");
    }
    if (!strcmp(ty, "Digits")) {
        p->kind = TX_PRE_DIGITS;
        return get_bool(c, o, "individual_digits", false, &p->individual_digits, "Digits pre_tokenizer");
    }
    if (!strcmp(ty, "Metaspace")) {
        p->kind = TX_PRE_METASPACE;
        MLXN_TRY(get_char(c, o, "replacement", 0x2581, &p->replacement, "Metaspace pre_tokenizer"));
        MLXN_TRY(parse_scheme(c, o, &p->scheme, "Metaspace pre_tokenizer"));
        return get_bool(c, o, "split", true, &p->split, "Metaspace pre_tokenizer");
    }
    return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: pre_tokenizer '%s' is not supported (supported: Sequence, ByteLevel, Split, "
                     "Digits, Metaspace)", c->name, ty);
}

/* ---- decoders ---- */
static mlxn_status parse_decoder(const ctx *c, const json_t *o, tx_decoder *d) {
    memset(d, 0, sizeof *d);
    if (!json_is_object(o)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: decoder is not an object", c->name);
    const char *ty = type_of(o);
    if (!ty) return mlxn_fail(MLXN_ERR_FORMAT, "%s: decoder has no type", c->name);
    if (!strcmp(ty, "Sequence")) {
        const json_t *a = json_object_get(o, "decoders");
        if (!json_is_array(a)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: Sequence decoder has no decoders list", c->name);
        d->kind = TX_DEC_SEQUENCE;
        d->children = calloc(json_array_size(a) + 1, sizeof *d->children);
        if (!d->children) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        for (size_t i = 0; i < json_array_size(a); i++) {
            mlxn_status st = parse_decoder(c, json_array_get(a, i), &d->children[i]);
            d->n_children = i + 1;
            if (st) return st;
        }
        return MLXN_OK;
    }
    if (!strcmp(ty, "ByteLevel")) { d->kind = TX_DEC_BYTELEVEL; return MLXN_OK; }
    if (!strcmp(ty, "ByteFallback")) { d->kind = TX_DEC_BYTEFALLBACK; return MLXN_OK; }
    if (!strcmp(ty, "Fuse")) { d->kind = TX_DEC_FUSE; return MLXN_OK; }
    if (!strcmp(ty, "Metaspace")) {
        d->kind = TX_DEC_METASPACE;
        MLXN_TRY(get_char(c, o, "replacement", 0x2581, &d->replacement, "Metaspace decoder"));
        return parse_scheme(c, o, &d->scheme, "Metaspace decoder");
    }
    if (!strcmp(ty, "Replace")) {
        const char *s = NULL;
        size_t len = 0;
        d->kind = TX_DEC_REPLACE;
        MLXN_TRY(get_str(c, o, "content", &s, &len, "Replace decoder"));
        MLXN_TRY(dup_str(s, len, &d->content, &d->content_len));
        return parse_pattern(c, json_object_get(o, "pattern"), &d->pat, "Replace decoder");
    }
    if (!strcmp(ty, "Strip")) {
        d->kind = TX_DEC_STRIP;
        MLXN_TRY(get_char(c, o, "content", ' ', &d->strip_char, "Strip decoder"));
        const json_t *a = field(o, "start"), *b = field(o, "stop");
        if ((a && (!json_is_integer(a) || json_integer_value(a) < 0)) || (b && (!json_is_integer(b) || json_integer_value(b) < 0)))
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: Strip decoder start/stop are not non-negative integers", c->name);
        d->strip_start = a ? (size_t)json_integer_value(a) : 0;
        d->strip_stop = b ? (size_t)json_integer_value(b) : 0;
        return MLXN_OK;
    }
    return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: decoder '%s' is not supported (supported: Sequence, ByteLevel, Metaspace, "
                     "Replace, ByteFallback, Fuse, Strip)", c->name, ty);
}

/* ---- post-processors ---- */
static mlxn_status push_id(int32_t **v, size_t *n, int32_t id) {
    int32_t *p = realloc(*v, (*n + 1) * sizeof *p);
    if (!p) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    p[(*n)++] = id;
    *v = p;
    return MLXN_OK;
}

static mlxn_status id_of_json(const ctx *c, const json_t *v, int32_t *out, const char *what) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= TX_MAX_ID)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s: id is not an integer in [0, %d)", c->name, what, TX_MAX_ID);
    *out = (int32_t)json_integer_value(v);
    return MLXN_OK;
}

static mlxn_status parse_post(const ctx *c, const json_t *o, tx_post *p) {
    if (!json_is_object(o)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: post_processor is not an object", c->name);
    const char *ty = type_of(o);
    if (!ty) return mlxn_fail(MLXN_ERR_FORMAT, "%s: post_processor has no type", c->name);
    if (!strcmp(ty, "ByteLevel")) return MLXN_OK; /* offsets only */
    if (!strcmp(ty, "Sequence")) {
        const json_t *a = json_object_get(o, "processors");
        if (!json_is_array(a)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: Sequence post_processor has no processors list", c->name);
        for (size_t i = 0; i < json_array_size(a); i++) MLXN_TRY(parse_post(c, json_array_get(a, i), p));
        return MLXN_OK;
    }
    if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        const json_t *cls = json_object_get(o, "cls"), *sep = json_object_get(o, "sep");
        if (!json_is_array(cls) || !json_is_array(sep) || json_array_size(cls) != 2 || json_array_size(sep) != 2)
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s needs cls and sep as [token, id]", c->name, ty);
        int32_t a = 0, b = 0;
        MLXN_TRY(id_of_json(c, json_array_get(cls, 1), &a, ty));
        MLXN_TRY(id_of_json(c, json_array_get(sep, 1), &b, ty));
        MLXN_TRY(push_id(&p->pre, &p->n_pre, a));
        return push_id(&p->post, &p->n_post, b);
    }
    if (!strcmp(ty, "TemplateProcessing")) {
        const json_t *single = json_object_get(o, "single"), *specials = json_object_get(o, "special_tokens");
        if (!json_is_array(single)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: TemplateProcessing has no single template", c->name);
        bool seen_a = false;
        int32_t *pre = NULL, *post = NULL;
        size_t npre = 0, npost = 0;
        mlxn_status st = MLXN_OK;
        for (size_t i = 0; !st && i < json_array_size(single); i++) {
            const json_t *it = json_array_get(single, i);
            const json_t *sp = json_object_get(it, "SpecialToken"), *sq = json_object_get(it, "Sequence");
            if (json_is_object(sq)) {
                seen_a = true;
                continue;
            }
            if (!json_is_object(sp) || !json_is_string(json_object_get(sp, "id"))) {
                st = mlxn_fail(MLXN_ERR_FORMAT, "%s: TemplateProcessing item %zu is neither SpecialToken nor Sequence", c->name, i);
                break;
            }
            const char *nm = json_string_value(json_object_get(sp, "id"));
            const json_t *def = json_object_get(specials, nm), *ids = json_object_get(def, "ids");
            if (!json_is_array(ids)) {
                st = mlxn_fail(MLXN_ERR_FORMAT, "%s: TemplateProcessing special token '%s' is not defined", c->name, nm);
                break;
            }
            for (size_t k = 0; !st && k < json_array_size(ids); k++) {
                int32_t id = 0;
                st = id_of_json(c, json_array_get(ids, k), &id, "TemplateProcessing");
                if (!st) st = seen_a ? push_id(&post, &npost, id) : push_id(&pre, &npre, id);
            }
        }
        for (size_t k = 0; !st && k < npre; k++) st = push_id(&p->pre, &p->n_pre, pre[k]);
        for (size_t k = 0; !st && k < npost; k++) st = push_id(&p->post, &p->n_post, post[k]);
        free(pre);
        free(post);
        return st;
    }
    return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: post_processor '%s' is not supported (supported: TemplateProcessing, "
                     "ByteLevel, Sequence, RobertaProcessing, BertProcessing)", c->name, ty);
}

/* ---- model ---- */
static mlxn_status opt_str(const ctx *c, const json_t *o, const char *k, char **out, size_t *len) {
    const json_t *v = field(o, k);
    *out = NULL;
    *len = 0;
    if (!v) return MLXN_OK;
    if (!json_is_string(v)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: model.%s is not a string", c->name, k);
    if (json_string_length(v) == 0) return MLXN_OK;
    return dup_str(json_string_value(v), json_string_length(v), out, len);
}

static mlxn_status parse_model(const ctx *c, const json_t *m) {
    tx_bpe *b = &c->t->bpe;
    if (!json_is_object(m)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: model is missing or not an object", c->name);
    const char *ty = type_of(m);
    if (ty && strcmp(ty, "BPE") != 0)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (only BPE)", c->name, ty);
    if (!ty && !json_object_get(m, "merges"))
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: the model has no type and no merges (only BPE is supported)", c->name);
    const json_t *vocab = json_object_get(m, "vocab"), *merges = json_object_get(m, "merges");
    if (!json_is_object(vocab)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: model.vocab is missing or not an object", c->name);
    if (merges && !json_is_null(merges) && !json_is_array(merges))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: model.merges is not a list", c->name);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= TX_MAX_ID)
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: vocab entry '%.64s' has no id in [0, %d)", c->name, key, TX_MAX_ID);
        MLXN_TRY(tx_strmap_put(&b->vocab, key, strlen(key), (int32_t)json_integer_value(val)));
    }
    bool fuse = false, fb = false, ign = false;
    MLXN_TRY(get_bool(c, m, "fuse_unk", false, &fuse, "model"));
    MLXN_TRY(get_bool(c, m, "byte_fallback", false, &fb, "model"));
    MLXN_TRY(get_bool(c, m, "ignore_merges", false, &ign, "model"));
    b->fuse_unk = fuse;
    b->byte_fallback = fb;
    b->ignore_merges = ign;
    MLXN_TRY(opt_str(c, m, "continuing_subword_prefix", &b->prefix, &b->prefix_len));
    MLXN_TRY(opt_str(c, m, "end_of_word_suffix", &b->suffix, &b->suffix_len));
    const json_t *unk = field(m, "unk_token");
    if (unk) {
        if (!json_is_string(unk)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: model.unk_token is not a string", c->name);
        int32_t id;
        if (tx_strmap_get(&b->vocab, json_string_value(unk), json_string_length(unk), &id)) b->unk_id = id;
    }
    for (int i = 0; i < 256; i++) {
        char k[8];
        snprintf(k, sizeof k, "<0x%02X>", i);
        int32_t id;
        if (tx_strmap_get(&b->vocab, k, 6, &id)) b->byte_ids[i] = id;
    }
    /* Dropout only matters for training; inference is deterministic. */
    size_t n = merges && json_is_array(merges) ? json_array_size(merges) : 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(merges, i);
        const char *a = NULL, *bs = NULL;
        size_t al = 0, bl = 0;
        if (json_is_string(e)) {
            const char *s = json_string_value(e), *sp = memchr(s, ' ', json_string_length(e));
            if (!sp || memchr(sp + 1, ' ', json_string_length(e) - (size_t)(sp + 1 - s)))
                return mlxn_fail(MLXN_ERR_FORMAT, "%s: merge %zu '%.64s' is not two tokens separated by one space", c->name, i, s);
            a = s;
            al = (size_t)(sp - s);
            bs = sp + 1;
            bl = json_string_length(e) - al - 1;
        } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                   json_is_string(json_array_get(e, 1))) {
            a = json_string_value(json_array_get(e, 0));
            al = json_string_length(json_array_get(e, 0));
            bs = json_string_value(json_array_get(e, 1));
            bl = json_string_length(json_array_get(e, 1));
        } else {
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", c->name, i);
        }
        MLXN_TRY(tx_bpe_build_merge(b, a, al, bs, bl, (uint32_t)i, c->name));
    }
    return MLXN_OK;
}

static mlxn_status parse_added(const ctx *c, const json_t *a) {
    if (!a || json_is_null(a)) return MLXN_OK;
    if (!json_is_array(a)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: added_tokens is not a list", c->name);
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *e = json_array_get(a, i);
        const json_t *content = json_object_get(e, "content");
        if (!json_is_object(e) || !json_is_string(content))
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: added_tokens[%zu] has no content string", c->name, i);
        int32_t id = -1;
        const json_t *jid = json_object_get(e, "id");
        if (jid) MLXN_TRY(id_of_json(c, jid, &id, "added_tokens"));
        bool special = false, lstrip = false, rstrip = false, single = false, normalized = false;
        MLXN_TRY(get_bool(c, e, "special", false, &special, "added_tokens"));
        MLXN_TRY(get_bool(c, e, "lstrip", false, &lstrip, "added_tokens"));
        MLXN_TRY(get_bool(c, e, "rstrip", false, &rstrip, "added_tokens"));
        MLXN_TRY(get_bool(c, e, "single_word", false, &single, "added_tokens"));
        MLXN_TRY(get_bool(c, e, "normalized", !special, &normalized, "added_tokens"));
        if (tx_utf8_check(json_string_value(content), json_string_length(content)) != json_string_length(content))
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: added_tokens[%zu] is not valid UTF-8", c->name, i);
        MLXN_TRY(tx_tokenizer_add_token(c->t, json_string_value(content), json_string_length(content), id, special, lstrip,
                                        rstrip, single, normalized));
    }
    return MLXN_OK;
}

/* ---- tokenizer_config.json ---- */
static const char *token_text(const json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v) && json_is_string(json_object_get(v, "content"))) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static mlxn_status set_text(char **dst, const char *s) {
    free(*dst);
    *dst = strdup(s);
    return *dst ? MLXN_OK : mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
}

/* add_bos_token / add_eos_token adjust the template as transformers'
 * update_post_processor does: BOS first / EOS last, or not. */
static mlxn_status apply_add_flags(mlxn_tokenizer *t, const json_t *add_bos, const json_t *add_eos) {
    if (json_is_boolean(add_bos) && t->bos_id >= 0) {
        bool has = t->post.n_pre > 0 && t->post.pre[0] == t->bos_id;
        if (json_is_true(add_bos) && !has) {
            MLXN_TRY(push_id(&t->post.pre, &t->post.n_pre, 0));
            memmove(t->post.pre + 1, t->post.pre, (t->post.n_pre - 1) * sizeof(int32_t));
            t->post.pre[0] = t->bos_id;
        } else if (json_is_false(add_bos) && has) {
            memmove(t->post.pre, t->post.pre + 1, (t->post.n_pre - 1) * sizeof(int32_t));
            t->post.n_pre--;
        }
        t->has_post = true;
    }
    if (json_is_boolean(add_eos) && t->eos_id >= 0) {
        bool has = t->post.n_post > 0 && t->post.post[t->post.n_post - 1] == t->eos_id;
        if (json_is_true(add_eos) && !has) MLXN_TRY(push_id(&t->post.post, &t->post.n_post, t->eos_id));
        else if (json_is_false(add_eos) && has) t->post.n_post--;
        t->has_post = true;
    }
    return MLXN_OK;
}

static mlxn_status parse_config(const ctx *c, const json_t *cfg) {
    mlxn_tokenizer *t = c->t;
    if (!json_is_object(cfg)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: tokenizer_config is not an object", c->name);
    const char *bos = token_text(json_object_get(cfg, "bos_token")), *eos = token_text(json_object_get(cfg, "eos_token"));
    if (bos) {
        MLXN_TRY(set_text(&t->bos_token, bos));
        t->bos_id = mlxn_tokenizer_token_to_id(t, bos);
    }
    if (eos) {
        MLXN_TRY(set_text(&t->eos_token, eos));
        t->eos_id = mlxn_tokenizer_token_to_id(t, eos);
    }
    const json_t *ct = json_object_get(cfg, "chat_template");
    if (json_is_string(ct)) {
        MLXN_TRY(set_text(&t->chat_template, json_string_value(ct)));
    } else if (json_is_array(ct)) {
        /* a list of {name, template}: the "default" one, else the first */
        const char *pick = NULL;
        for (size_t i = 0; i < json_array_size(ct); i++) {
            const json_t *e = json_array_get(ct, i);
            const char *tmpl = json_string_value(json_object_get(e, "template"));
            const char *nm = json_string_value(json_object_get(e, "name"));
            if (tmpl && (!pick || (nm && !strcmp(nm, "default")))) pick = tmpl;
            if (tmpl && nm && !strcmp(nm, "default")) break;
        }
        if (pick) MLXN_TRY(set_text(&t->chat_template, pick));
    }
    return apply_add_flags(t, json_object_get(cfg, "add_bos_token"), json_object_get(cfg, "add_eos_token"));
}

static mlxn_status load_root(const ctx *c, const json_t *root) {
    mlxn_tokenizer *t = c->t;
    if (!json_is_object(root)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: not a JSON object", c->name);
    const json_t *tr = field(root, "truncation"), *pad = field(root, "padding");
    (void)tr;
    (void)pad; /* batching options: not used by a single-sequence encode */
    MLXN_TRY(parse_model(c, json_object_get(root, "model")));
    const json_t *v;
    if ((v = field(root, "normalizer"))) {
        t->normalizer = calloc(1, sizeof *t->normalizer);
        if (!t->normalizer) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        MLXN_TRY(parse_normalizer(c, v, t->normalizer));
    }
    if ((v = field(root, "pre_tokenizer"))) {
        t->pretok = calloc(1, sizeof *t->pretok);
        if (!t->pretok) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        MLXN_TRY(parse_pretok(c, v, t->pretok));
    }
    if ((v = field(root, "decoder"))) {
        t->decoder = calloc(1, sizeof *t->decoder);
        if (!t->decoder) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        MLXN_TRY(parse_decoder(c, v, t->decoder));
    }
    if ((v = field(root, "post_processor"))) {
        MLXN_TRY(parse_post(c, v, &t->post));
        t->has_post = true;
    }
    return parse_added(c, json_object_get(root, "added_tokens"));
}

static mlxn_status parse_json(const char *name, const char *what, const char *s, size_t len, json_t **out) {
    json_error_t err;
    *out = json_loadb(s, len, JSON_ALLOW_NUL, &err);
    if (!*out)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s is not valid JSON (line %d, column %d: %s)", name, what, err.line, err.column,
                         err.text);
    return MLXN_OK;
}

static mlxn_status load_json(const char *name, const char *json, size_t json_len, const char *cfg, size_t cfg_len,
                             const char *template_file, mlxn_tokenizer **out) {
    mlxn_tokenizer *t = tx_tokenizer_alloc(name);
    if (!t) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    ctx c = {t->name, t};
    json_t *root = NULL, *croot = NULL;
    mlxn_status st = parse_json(t->name, "tokenizer.json", json, json_len, &root);
    if (!st) st = load_root(&c, root);
    if (!st) st = tx_tokenizer_finish(t);
    if (!st && cfg) st = parse_json(t->name, "tokenizer_config.json", cfg, cfg_len, &croot);
    if (!st && croot) st = parse_config(&c, croot);
    if (!st && template_file) st = set_text(&t->chat_template, template_file);
    json_decref(root);
    json_decref(croot);
    if (st) {
        mlxn_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MLXN_OK;
}

mlxn_status mlxn_tokenizer_load_json(const char *name, const char *json, size_t json_len, const char *config_json,
                                     size_t config_len, mlxn_tokenizer **out) {
    if (!out || (!json && json_len)) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tokenizer_load_json: NULL argument");
    *out = NULL;
    return load_json(name ? name : "tokenizer.json", json ? json : "", json_len, config_json, config_len, NULL, out);
}

/* Read a whole file; *data NULL (and MLXN_OK) when it does not exist and optional. */
static mlxn_status read_file(const char *path, bool optional, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (optional && errno == ENOENT) return MLXN_OK;
        return mlxn_fail(MLXN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    tx_buf b = {0};
    char chunk[65536];
    size_t n;
    mlxn_status st = MLXN_OK;
    while (!st && (n = fread(chunk, 1, sizeof chunk, f)) > 0) st = tx_buf_add(&b, chunk, n);
    if (!st && ferror(f)) st = mlxn_fail(MLXN_ERR_IO, "%s: read error", path);
    fclose(f);
    if (!st && !b.s) st = tx_buf_reserve(&b, 0);
    if (st) {
        tx_buf_free(&b);
        return st;
    }
    *data = b.s;
    *len = b.len;
    return MLXN_OK;
}

mlxn_status mlxn_tokenizer_load(const char *path, mlxn_tokenizer **out) {
    if (!path || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tokenizer_load: NULL argument");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return mlxn_fail(MLXN_ERR_IO, "%s: %s", path, strerror(errno));
    tx_buf dir = {0}, p = {0};
    mlxn_status st;
    if (S_ISDIR(sb.st_mode)) {
        st = tx_buf_adds(&dir, path);
    } else {
        const char *slash = strrchr(path, '/');
        st = slash ? tx_buf_add(&dir, path, (size_t)(slash - path)) : tx_buf_adds(&dir, ".");
    }
    char *json = NULL, *cfg = NULL, *tmpl = NULL;
    size_t jl = 0, cl = 0, tl = 0;
    if (!st) {
        p.len = 0;
        st = S_ISDIR(sb.st_mode) ? tx_buf_adds(&p, dir.s) : tx_buf_adds(&p, path);
        if (!st && S_ISDIR(sb.st_mode)) st = tx_buf_adds(&p, "/tokenizer.json");
        if (!st) st = read_file(p.s, false, &json, &jl);
    }
    if (!st) {
        p.len = 0;
        st = tx_buf_adds(&p, dir.s);
        if (!st) st = tx_buf_adds(&p, "/tokenizer_config.json");
        if (!st) st = read_file(p.s, true, &cfg, &cl);
    }
    if (!st) {
        p.len = 0;
        st = tx_buf_adds(&p, dir.s);
        if (!st) st = tx_buf_adds(&p, "/chat_template.jinja");
        if (!st) st = read_file(p.s, true, &tmpl, &tl);
    }
    if (!st) st = load_json(path, json, jl, cfg, cl, tmpl, out);
    free(json);
    free(cfg);
    free(tmpl);
    tx_buf_free(&dir);
    tx_buf_free(&p);
    return st;
}
