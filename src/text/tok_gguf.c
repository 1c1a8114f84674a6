/* Building a tokenizer from GGUF metadata (tokenizer.ggml.*), the way
 * transformers' GGUF tokenizer conversion does, so both give the same ids:
 *   "gpt2"  byte-level BPE: tokens (respelled into the byte alphabet when
 *           they are not), merges "a b", the split regex named by
 *           tokenizer.ggml.pre (for "smollm" the digit split llama.cpp and
 *           the original tokenizer use), ByteLevel decoder;
 *   "llama" SentencePiece BPE with byte fallback: merges derived from the
 *           vocabulary (every token cut at each character where both halves
 *           are tokens), ranked by score (Gemma: by token order, as Gemma's
 *           scores do not follow its merge order); Gemma spells blanks as
 *           "▁" and replaces spaces in a normalizer, others use Metaspace
 *           (prepend at the start) and strip the leading space on decode.
 * Control tokens (type 3) become special added tokens, user-defined ones
 * (type 4) plain added tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "text/tok_internal.h"

#define GGUF_TOKEN_CONTROL 3
#define GGUF_TOKEN_USER_DEFINED 4

static const char LLAMA3_SPLIT[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_SPLIT[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static bool in_byte_alphabet(const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        i += tx_utf8_next(s + i, len - i, &cp);
        if (tx_cp_to_byte(cp) < 0) return false;
    }
    return true;
}

static bool py_space(uint32_t cp) { return tx_is_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F); }

static size_t n_chars(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((uint8_t)s[i] & 0xC0) != 0x80;
    return n;
}

/* The token's spelling in the vocabulary we build. */
static mlxn_status spell(bool byte_level, bool gemma, const char *s, size_t len, tx_buf *out) {
    out->len = 0;
    if (byte_level && !in_byte_alphabet(s, len)) {
        for (size_t i = 0; i < len; i++) MLXN_TRY(tx_buf_add_cp(out, tx_byte_to_cp((uint8_t)s[i])));
        return MLXN_OK;
    }
    if (gemma && len && memchr(s, ' ', len)) {
        bool blank = true;
        size_t i = 0;
        while (i < len && blank) {
            uint32_t cp;
            i += tx_utf8_next(s + i, len - i, &cp);
            blank = py_space(cp);
        }
        if (blank) {
            size_t n = n_chars(s, len);
            for (size_t k = 0; k < n; k++) MLXN_TRY(tx_buf_add(out, "\xE2\x96\x81", 3));
            return MLXN_OK;
        }
    }
    MLXN_TRY(tx_buf_add(out, s, len));
    if (!out->s) MLXN_TRY(tx_buf_reserve(out, 0));
    return MLXN_OK;
}

typedef struct cand {
    double score;
    uint32_t len_l, len_r;
    uint32_t order;          /* token order of first appearance */
    int32_t id_l, id_r;
    uint32_t tok;            /* index of the merged token's spelling */
    uint32_t cut;            /* byte offset of the cut */
} cand;

static int cand_cmp(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->len_l != b->len_l) return a->len_l > b->len_l ? -1 : 1;
    if (a->len_r != b->len_r) return a->len_r > b->len_r ? -1 : 1;
    if (a->order != b->order) return a->order < b->order ? -1 : 1;
    if (a->id_l != b->id_l) return a->id_l < b->id_l ? -1 : 1;
    if (a->id_r != b->id_r) return a->id_r < b->id_r ? -1 : 1;
    return 0;
}

/* transformers' generate_merges(vocab, vocab_scores): spellings[i] is token
 * i's spelling; scores[i] its sort key (first appearance of a spelling
 * gives its order, the last its score, as a Python dict built from them). */
static mlxn_status derive_merges(mlxn_tokenizer *t, char **sp, size_t *sp_len, const double *scores, size_t n) {
    tx_strmap seen = {0};
    tx_vec cands;
    tx_vec_init(&cands, sizeof(cand));
    mlxn_status st = MLXN_OK;
    double *last_score = malloc((n ? n : 1) * sizeof *last_score);
    if (!last_score) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
    /* the dict's value for a spelling is its last score; its position the first */
    for (size_t i = 0; i < n && !st; i++) {
        int32_t first;
        if (tx_strmap_get(&seen, sp[i], sp_len[i], &first)) last_score[first] = scores[i];
        else {
            st = tx_strmap_put(&seen, sp[i], sp_len[i], (int32_t)i);
            last_score[i] = scores[i];
        }
    }
    uint32_t order = 0;
    for (size_t i = 0; i < n && !st; i++) {
        int32_t first;
        tx_strmap_get(&seen, sp[i], sp_len[i], &first);
        if ((size_t)first != i) continue; /* not the first appearance */
        const char *s = sp[i];
        size_t len = sp_len[i];
        size_t cut = 0;
        uint32_t lchars = 0, total = (uint32_t)n_chars(s, len);
        while (!st) {
            uint32_t cp;
            cut += tx_utf8_next(s + cut, len - cut, &cp);
            lchars++;
            if (cut >= len) break;
            int32_t il, ir;
            if (tx_strmap_get(&t->bpe.vocab, s, cut, &il) && tx_strmap_get(&t->bpe.vocab, s + cut, len - cut, &ir)) {
                cand c = {last_score[i], lchars, total - lchars, order, il, ir, (uint32_t)i, (uint32_t)cut};
                st = tx_vec_push(&cands, &c);
            }
        }
        order++;
    }
    if (!st) {
        qsort(cands.v, cands.n, sizeof(cand), cand_cmp);
        for (size_t k = 0; k < cands.n && !st; k++) {
            cand *c = &TX_AT(&cands, cand, k);
            st = tx_bpe_build_merge(&t->bpe, sp[c->tok], c->cut, sp[c->tok] + c->cut, sp_len[c->tok] - c->cut, (uint32_t)k,
                                    t->name);
        }
    }
    free(last_score);
    tx_vec_free(&cands);
    tx_strmap_free(&seen);
    return st;
}

static tx_pretok *pretok_new(tx_pretok_kind k) {
    tx_pretok *p = calloc(1, sizeof *p);
    if (p) p->kind = k;
    return p;
}

static mlxn_status gpt2_pretok(mlxn_tokenizer *t, const char *pre) {
    const char *split = NULL;
    bool digits = false;
    if (!pre || !strcmp(pre, "default") || !strcmp(pre, "gpt2")) {
    } else if (!strcmp(pre, "smollm")) {
        digits = true;
    } else if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") || !strcmp(pre, "llama-bpe") || !strcmp(pre, "smaug-bpe")) {
        split = LLAMA3_SPLIT;
    } else if (!strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-r1-qwen")) {
        split = QWEN2_SPLIT;
    } else {
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre '%s' is not supported (supported: default, gpt2, smollm, "
                         "llama3, llama-bpe, qwen2)", t->name, pre);
    }
    tx_pretok *seq = pretok_new(TX_PRE_SEQUENCE);
    if (!seq) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
    t->pretok = seq;
    seq->children = calloc(2, sizeof *seq->children);
    if (!seq->children) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
    tx_pretok *first = &seq->children[0], *bl;
    if (digits) {
        first->kind = TX_PRE_DIGITS;
        first->individual_digits = true;
        seq->n_children = 2;
        bl = &seq->children[1];
    } else if (split) {
        first->kind = TX_PRE_SPLIT;
        first->behavior = TX_SPLIT_ISOLATED;
        seq->n_children = 2;
        MLXN_TRY(tx_pattern_compile_regex(&first->pat, split, strlen(split), t->name));
        bl = &seq->children[1];
    } else {
        seq->n_children = 1;
        bl = first;
    }
    bl->kind = TX_PRE_BYTELEVEL;
    bl->add_prefix_space = false;
    bl->use_regex = !split;
    if (bl->use_regex) MLXN_TRY(tx_pattern_compile_regex(&bl->pat, tx_gpt2_regex, strlen(tx_gpt2_regex), "ByteLevel"));
    return MLXN_OK;
}

static mlxn_status spm_pipeline(mlxn_tokenizer *t, bool gemma) {
    tx_decoder *d = calloc(1, sizeof *d);
    if (!d) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
    t->decoder = d;
    d->kind = TX_DEC_SEQUENCE;
    d->children = calloc(4, sizeof *d->children);
    if (!d->children) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
    d->n_children = gemma ? 3 : 4;
    d->children[0].kind = TX_DEC_REPLACE;
    MLXN_TRY(tx_pattern_literal(&d->children[0].pat, "\xE2\x96\x81", 3));
    d->children[0].content = strdup(" ");
    if (!d->children[0].content) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
    d->children[0].content_len = 1;
    d->children[1].kind = TX_DEC_BYTEFALLBACK;
    d->children[2].kind = TX_DEC_FUSE;
    if (!gemma) {
        d->children[3].kind = TX_DEC_STRIP;
        d->children[3].strip_char = ' ';
        d->children[3].strip_start = 1;
    }
    if (gemma) {
        tx_normalizer *n = calloc(1, sizeof *n);
        if (!n) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
        t->normalizer = n;
        n->kind = TX_NORM_REPLACE;
        MLXN_TRY(tx_pattern_literal(&n->pat, " ", 1));
        n->str = strdup("\xE2\x96\x81");
        if (!n->str) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
        n->str_len = 3;
        /* (GemmaTokenizer also splits on " " after the normalizer, which no longer finds any.) */
    } else {
        tx_pretok *p = pretok_new(TX_PRE_METASPACE);
        if (!p) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
        t->pretok = p;
        p->replacement = 0x2581;
        p->scheme = TX_PREPEND_FIRST;
        p->split = false;
    }
    return MLXN_OK;
}

static mlxn_status read_id(const mlxn_gguf *g, const char *key, int32_t *out) {
    *out = -1;
    if (!mlxn_gguf_find(g, key)) return MLXN_OK;
    uint32_t v;
    MLXN_TRY(mlxn_gguf_get_u32(g, key, &v));
    *out = v < TX_MAX_ID ? (int32_t)v : -1;
    return MLXN_OK;
}

static mlxn_status build(mlxn_tokenizer *t, const mlxn_gguf *g) {
    const char *model = NULL, *arch = NULL, *pre = NULL;
    MLXN_TRY(mlxn_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL));
    if (mlxn_gguf_find(g, "general.architecture")) MLXN_TRY(mlxn_gguf_get_str(g, "general.architecture", &arch, NULL));
    if (mlxn_gguf_find(g, "tokenizer.ggml.pre")) MLXN_TRY(mlxn_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL));
    bool byte_level = !strcmp(model, "gpt2"), spm = !strcmp(model, "llama");
    if (!byte_level && !spm)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model '%s' is not supported (supported: gpt2, llama)", t->name, model);
    bool gemma = spm && arch && (!strcmp(arch, "gemma") || !strcmp(arch, "gemma2") || !strcmp(arch, "gemma3"));

    mlxn_gguf_type et;
    size_t n = 0, n_types = 0;
    const mlxn_gguf_value *tokens, *types = NULL;
    MLXN_TRY(mlxn_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &n, &tokens));
    if (et != MLXN_GGUF_STRING) return mlxn_fail(MLXN_ERR_FORMAT, "%s: tokenizer.ggml.tokens is not a string array", t->name);
    if (n == 0 || n >= TX_MAX_ID) return mlxn_fail(MLXN_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %zu entries", t->name, n);
    if (mlxn_gguf_find(g, "tokenizer.ggml.token_type")) {
        MLXN_TRY(mlxn_gguf_get_array(g, "tokenizer.ggml.token_type", &et, &n_types, &types));
        if (n_types != n) return mlxn_fail(MLXN_ERR_FORMAT, "%s: token_type has %zu entries for %zu tokens", t->name, n_types, n);
    }
    char **sp = calloc(n, sizeof *sp);
    size_t *sp_len = calloc(n, sizeof *sp_len);
    double *scores = calloc(n, sizeof *scores);
    tx_buf b = {0};
    mlxn_status st = (!sp || !sp_len || !scores) ? mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name) : MLXN_OK;
    for (size_t i = 0; !st && i < n; i++) {
        size_t len;
        const char *s = mlxn_gguf_array_str(tokens, i, &len);
        if (!s || tx_utf8_check(s, len) != len) {
            st = mlxn_fail(MLXN_ERR_FORMAT, "%s: token %zu is not valid UTF-8", t->name, i);
            break;
        }
        st = spell(byte_level, gemma, s, len, &b);
        if (!st) st = tx_strmap_put(&t->bpe.vocab, b.s, b.len, (int32_t)i);
        if (!st) {
            sp[i] = malloc(b.len + 1);
            if (!sp[i]) st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
            else {
                memcpy(sp[i], b.s, b.len + 1);
                sp_len[i] = b.len;
            }
        }
    }
    if (!st && byte_level) {
        const mlxn_gguf_value *merges;
        size_t nm = 0;
        st = mlxn_gguf_get_array(g, "tokenizer.ggml.merges", &et, &nm, &merges);
        if (!st && et != MLXN_GGUF_STRING) st = mlxn_fail(MLXN_ERR_FORMAT, "%s: tokenizer.ggml.merges is not a string array", t->name);
        for (size_t i = 0; !st && i < nm; i++) {
            size_t len;
            const char *s = mlxn_gguf_array_str(merges, i, &len);
            const char *space = s ? memchr(s, ' ', len) : NULL;
            if (!space) {
                st = mlxn_fail(MLXN_ERR_FORMAT, "%s: merge %zu is not two tokens separated by a space", t->name, i);
                break;
            }
            size_t al = (size_t)(space - s);
            st = tx_bpe_build_merge(&t->bpe, s, al, space + 1, len - al - 1, (uint32_t)i, t->name);
        }
        if (!st) st = gpt2_pretok(t, pre);
        if (!st) {
            t->decoder = calloc(1, sizeof *t->decoder);
            if (!t->decoder) st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
            else t->decoder->kind = TX_DEC_BYTELEVEL;
        }
    }
    if (!st && spm) {
        if (gemma) {
            for (size_t i = 0; i < n; i++) scores[i] = -(double)i;
        } else {
            const mlxn_gguf_value *sc;
            size_t ns = 0;
            st = mlxn_gguf_get_array(g, "tokenizer.ggml.scores", &et, &ns, &sc);
            if (!st && ns != n) st = mlxn_fail(MLXN_ERR_FORMAT, "%s: tokenizer.ggml.scores has %zu entries for %zu tokens", t->name, ns, n);
            for (size_t i = 0; !st && i < n; i++) st = mlxn_gguf_array_f64(sc, i, &scores[i]);
        }
        if (!st) st = derive_merges(t, sp, sp_len, scores, n);
        t->bpe.byte_fallback = true;
        t->bpe.fuse_unk = true;
        for (int i = 0; i < 256; i++) {
            char k[8];
            snprintf(k, sizeof k, "<0x%02X>", i);
            int32_t id;
            if (tx_strmap_get(&t->bpe.vocab, k, 6, &id)) t->bpe.byte_ids[i] = id;
        }
        if (gemma) {
            int32_t id;
            if (tx_strmap_get(&t->bpe.vocab, "<unk>", 5, &id)) t->bpe.unk_id = id;
        }
        if (!st) st = spm_pipeline(t, gemma);
    }
    /* added tokens */
    for (size_t i = 0; !st && types && i < n; i++) {
        int64_t ty;
        st = mlxn_gguf_array_i64(types, i, &ty);
        if (st) break;
        if (ty == GGUF_TOKEN_CONTROL && (!byte_level || in_byte_alphabet(sp[i], sp_len[i])))
            st = tx_tokenizer_add_token(t, sp[i], sp_len[i], (int32_t)i, true, false, false, false, false);
        else if (ty == GGUF_TOKEN_USER_DEFINED)
            st = tx_tokenizer_add_token(t, sp[i], sp_len[i], (int32_t)i, false, false, false, false, false);
    }
    tx_buf_free(&b);
    for (size_t i = 0; sp && i < n; i++) free(sp[i]);
    free(sp);
    free(sp_len);
    free(scores);
    if (st) return st;

    MLXN_TRY(tx_tokenizer_finish(t));
    MLXN_TRY(read_id(g, "tokenizer.ggml.bos_token_id", &t->bos_id));
    MLXN_TRY(read_id(g, "tokenizer.ggml.eos_token_id", &t->eos_id));
    const char *bt = mlxn_tokenizer_id_to_token(t, t->bos_id), *etok = mlxn_tokenizer_id_to_token(t, t->eos_id);
    if (bt && !(t->bos_token = strdup(bt))) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
    if (etok && !(t->eos_token = strdup(etok))) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
    int add_bos = spm; /* llama.cpp adds BOS to a sentencepiece vocabulary that does not say otherwise */
    if (mlxn_gguf_find(g, "tokenizer.ggml.add_bos_token")) MLXN_TRY(mlxn_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos));
    int add_eos = 0;
    if (mlxn_gguf_find(g, "tokenizer.ggml.add_eos_token")) MLXN_TRY(mlxn_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &add_eos));
    t->has_post = true;
    if (add_bos && t->bos_id >= 0) {
        t->post.pre = malloc(sizeof(int32_t));
        if (!t->post.pre) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
        t->post.pre[0] = t->bos_id;
        t->post.n_pre = 1;
    }
    if (add_eos && t->eos_id >= 0) {
        t->post.post = malloc(sizeof(int32_t));
        if (!t->post.post) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
        t->post.post[0] = t->eos_id;
        t->post.n_post = 1;
    }
    if (mlxn_gguf_find(g, "tokenizer.chat_template")) {
        const char *ct;
        MLXN_TRY(mlxn_gguf_get_str(g, "tokenizer.chat_template", &ct, NULL));
        if (!(t->chat_template = strdup(ct))) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
    }
    return MLXN_OK;
}

mlxn_status mlxn_tokenizer_from_gguf(const mlxn_gguf *g, mlxn_tokenizer **out) {
    if (!g || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tokenizer_from_gguf: NULL argument");
    *out = NULL;
    mlxn_tokenizer *t = tx_tokenizer_alloc("GGUF tokenizer");
    if (!t) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer_from_gguf: out of memory");
    mlxn_status st = build(t, g);
    if (st) {
        mlxn_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MLXN_OK;
}
