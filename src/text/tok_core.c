/* The tokenizer object: added-token registration (AddedVocabulary of
 * `tokenizers`), the id tables, the encode pipeline and the accessors.
 *
 * encode: added tokens that are not `normalized` are found first in the
 * raw text (leftmost-longest); every span between them is normalized on
 * its own, then searched for the `normalized` added tokens; the remaining
 * spans are pre-tokenized into words and each word goes through BPE (with
 * a cache of recent words); finally the post-processor adds BOS/EOS. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "text/tok_internal.h"

mlxn_tokenizer *tx_tokenizer_alloc(const char *name) {
    mlxn_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->name = strdup(name ? name : "tokenizer");
    if (!t->name) {
        free(t);
        return NULL;
    }
    t->bpe.unk_id = -1;
    for (int i = 0; i < 256; i++) t->bpe.byte_ids[i] = -1;
    t->bos_id = t->eos_id = -1;
    t->added_max_id = -1;
    pthread_mutex_init(&t->cache_lock, NULL);
    return t;
}

static void added_set_free(tx_added_set *s) {
    tx_strmap_free(&s->map);
    free(s->lens);
    memset(s, 0, sizeof *s);
}

void mlxn_tokenizer_free(mlxn_tokenizer *t) {
    if (!t) return;
    tx_bpe_free(&t->bpe);
    tx_normalizer_free(t->normalizer);
    tx_pretok_free(t->pretok);
    tx_decoder_free(t->decoder);
    free(t->post.pre);
    free(t->post.post);
    for (size_t i = 0; i < t->n_added; i++) {
        if (t->added[i].norm != t->added[i].content) free(t->added[i].norm);
        free(t->added[i].content);
    }
    free(t->added);
    tx_strmap_free(&t->added_by_content);
    added_set_free(&t->set_raw);
    added_set_free(&t->set_norm);
    free(t->id_to_token);
    free(t->added_index);
    free(t->bos_token);
    free(t->eos_token);
    free(t->chat_template);
    if (t->cache) {
        for (size_t i = 0; i < TX_CACHE_SLOTS; i++) {
            free(t->cache[i].word);
            free(t->cache[i].ids);
        }
        free(t->cache);
    }
    pthread_mutex_destroy(&t->cache_lock);
    free(t->name);
    free(t);
}

mlxn_status tx_tokenizer_add_token(mlxn_tokenizer *t, const char *content, size_t len, int32_t file_id, bool special,
                                   bool lstrip, bool rstrip, bool single_word, bool normalized) {
    (void)file_id; /* `tokenizers` keeps the model's id (or the next free one), not the file's */
    if (len == 0) return MLXN_OK;
    int32_t id = -1, idx = -1;
    if (tx_strmap_get(&t->added_by_content, content, len, &idx)) {
        id = t->added[idx].id;
    } else if (!tx_strmap_get(&t->bpe.vocab, content, len, &id)) {
        /* next id: past the model vocabulary, or past the largest added id */
        int64_t next = (int64_t)t->bpe.vocab.n;
        if (t->added_max_id >= next) next = t->added_max_id + 1;
        if (next >= TX_MAX_ID) return mlxn_fail(MLXN_ERR_FORMAT, "%s: too many added tokens", t->name);
        id = (int32_t)next;
    }
    tx_added a = {0};
    a.content = malloc(len + 1);
    if (!a.content) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
    memcpy(a.content, content, len);
    a.content[len] = '\0';
    a.len = len;
    a.norm = a.content;
    a.norm_len = len;
    a.id = id;
    a.special = special;
    a.lstrip = lstrip;
    a.rstrip = rstrip;
    a.single_word = single_word;
    a.normalized = normalized;
    /* A token with the same id replaces the earlier one (id -> token map). */
    for (size_t i = 0; i < t->n_added; i++) {
        if (t->added[i].id == id) {
            free(t->added[i].content);
            t->added[i] = a;
            return tx_strmap_put(&t->added_by_content, content, len, (int32_t)i);
        }
    }
    if (id > t->added_max_id) t->added_max_id = id;
    if (t->n_added == t->added_cap) {
        size_t cap = t->added_cap ? t->added_cap * 2 : 16;
        tx_added *v = realloc(t->added, cap * sizeof *v);
        if (!v) {
            free(a.content);
            return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
        }
        t->added = v;
        t->added_cap = cap;
    }
    t->added[t->n_added] = a;
    MLXN_TRY(tx_strmap_put(&t->added_by_content, content, len, (int32_t)t->n_added));
    t->n_added++;
    return MLXN_OK;
}

static mlxn_status set_add(tx_added_set *s, const char *k, size_t len, int32_t idx) {
    MLXN_TRY(tx_strmap_put(&s->map, k, len, idx));
    s->first[(uint8_t)k[0] >> 3] |= (uint8_t)(1u << ((uint8_t)k[0] & 7));
    for (size_t i = 0; i < s->n_lens; i++)
        if (s->lens[i] == len) return MLXN_OK;
    size_t *v = realloc(s->lens, (s->n_lens + 1) * sizeof *v);
    if (!v) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    s->lens = v;
    size_t i = s->n_lens++;
    while (i > 0 && s->lens[i - 1] < len) {
        s->lens[i] = s->lens[i - 1];
        i--;
    }
    s->lens[i] = len;
    return MLXN_OK;
}

mlxn_status tx_tokenizer_finish(mlxn_tokenizer *t) {
    int64_t max_id = -1;
    for (size_t i = 0; i < t->bpe.vocab.n; i++) {
        int32_t v = t->bpe.vocab.ent[i].val;
        if (v < 0 || v >= TX_MAX_ID) return mlxn_fail(MLXN_ERR_FORMAT, "%s: token id %d out of range [0, %d)", t->name, v, TX_MAX_ID);
        if (v > max_id) max_id = v;
    }
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id > max_id) max_id = t->added[i].id;
    t->vocab_size = (size_t)(max_id + 1);
    for (size_t i = 0; i < t->post.n_pre + t->post.n_post; i++) {
        int32_t id = i < t->post.n_pre ? t->post.pre[i] : t->post.post[i - t->post.n_pre];
        if (id < 0 || (size_t)id >= t->vocab_size)
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: post_processor adds id %d, outside the vocabulary [0, %zu)", t->name, id,
                             t->vocab_size);
    }
    size_t n = t->vocab_size ? t->vocab_size : 1;
    t->id_to_token = calloc(n, sizeof *t->id_to_token);
    t->added_index = malloc(n * sizeof *t->added_index);
    t->cache = calloc(TX_CACHE_SLOTS, sizeof *t->cache);
    if (!t->id_to_token || !t->added_index || !t->cache) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
    for (size_t i = 0; i < t->bpe.vocab.n; i++)
        t->id_to_token[t->bpe.vocab.ent[i].val] = t->bpe.vocab.keys.s + t->bpe.vocab.ent[i].off;
    for (size_t i = 0; i < n; i++) t->added_index[i] = -1;
    tx_buf nb = {0};
    for (size_t i = 0; i < t->n_added; i++) {
        tx_added *a = &t->added[i];
        t->added_index[a->id] = (int32_t)i;
        if (a->normalized && t->normalizer) {
            mlxn_status st = tx_normalize(t->normalizer, a->content, a->len, &nb);
            if (st) {
                tx_buf_free(&nb);
                return mlxn_fail_context(st, "%s: normalizing added token '%s': ", t->name, a->content);
            }
            if (nb.len != a->len || memcmp(nb.s, a->content, a->len) != 0) {
                a->norm = malloc(nb.len + 1);
                if (!a->norm) {
                    a->norm = a->content;
                    tx_buf_free(&nb);
                    return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", t->name);
                }
                memcpy(a->norm, nb.s, nb.len);
                a->norm[nb.len] = '\0';
                a->norm_len = nb.len;
            }
        }
        mlxn_status st = MLXN_OK;
        if (a->normalized) {
            if (a->norm_len) st = set_add(&t->set_norm, a->norm, a->norm_len, (int32_t)i);
        } else {
            st = set_add(&t->set_raw, a->content, a->len, (int32_t)i);
        }
        if (st) {
            tx_buf_free(&nb);
            return st;
        }
    }
    tx_buf_free(&nb);
    return MLXN_OK;
}

/* ---- encode ---- */

typedef struct seg {
    size_t start, end;
    int32_t token; /* added token id, or -1 for text */
} seg;

static bool ends_with_word(const char *s, size_t end) {
    if (end == 0) return false;
    size_t k = end - 1;
    while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
    uint32_t cp;
    tx_utf8_next(s + k, end - k, &cp);
    return tx_is_word(cp);
}

static bool starts_with_word(const char *s, size_t len) {
    if (len == 0) return false;
    uint32_t cp;
    tx_utf8_next(s, len, &cp);
    return tx_is_word(cp);
}

/* AddedVocabulary::find_matches */
static mlxn_status find_added(const mlxn_tokenizer *t, const tx_added_set *set, const char *s, size_t len,
                              bool split_special, tx_vec *segs) {
    size_t start_offset = 0, pos = 0;
    if (set->n_lens) {
        while (pos < len) {
            uint8_t c = (uint8_t)s[pos];
            if (!(set->first[c >> 3] & (1u << (c & 7)))) {
                pos++;
                continue;
            }
            int32_t idx = -1;
            size_t L = 0;
            for (size_t k = 0; k < set->n_lens; k++) {
                if (set->lens[k] > len - pos) continue;
                if (tx_strmap_get(&set->map, s + pos, set->lens[k], &idx)) {
                    L = set->lens[k];
                    break;
                }
            }
            if (!L) {
                pos++;
                continue;
            }
            const tx_added *a = &t->added[idx];
            size_t start = pos, stop = pos + L;
            pos = stop;
            if (split_special && a->special) continue;
            if (a->single_word) {
                bool start_space = start == 0 || !ends_with_word(s, start);
                bool stop_space = stop == len || !starts_with_word(s + stop, len - stop);
                if (!start_space || !stop_space) continue;
            }
            if (a->lstrip) {
                size_t ns = start;
                while (ns > 0) {
                    size_t k = ns - 1;
                    while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
                    uint32_t cp;
                    tx_utf8_next(s + k, ns - k, &cp);
                    if (!tx_is_whitespace(cp)) break;
                    ns = k;
                }
                start = ns > start_offset ? ns : start_offset;
            }
            if (a->rstrip) {
                while (stop < len) {
                    uint32_t cp;
                    size_t k = tx_utf8_next(s + stop, len - stop, &cp);
                    if (!tx_is_whitespace(cp)) break;
                    stop += k;
                }
                if (stop > pos) pos = stop;
            }
            if (start < start_offset) start = start_offset;
            if (start_offset < start) {
                seg g = {start_offset, start, -1};
                MLXN_TRY(tx_vec_push(segs, &g));
            }
            seg g = {start, stop, a->id};
            MLXN_TRY(tx_vec_push(segs, &g));
            start_offset = stop;
        }
    }
    if (start_offset != len) {
        seg g = {start_offset, len, -1};
        MLXN_TRY(tx_vec_push(segs, &g));
    }
    return MLXN_OK;
}

static mlxn_status word_ids(const mlxn_tokenizer *t, const char *w, size_t len, tx_vec *ids) {
    mlxn_tokenizer *mt = (mlxn_tokenizer *)t; /* the cache is the one mutable part, under its lock */
    size_t slot = 0;
    bool cacheable = len < TX_CACHE_MAX_WORD;
    if (cacheable) {
        slot = tx_hash(w, len) & (TX_CACHE_SLOTS - 1);
        pthread_mutex_lock(&mt->cache_lock);
        tx_cache_slot *c = &mt->cache[slot];
        if (c->word && c->len == len && memcmp(c->word, w, len) == 0) {
            mlxn_status st = tx_vec_reserve(ids, c->n);
            if (!st && c->n) {
                memcpy((int32_t *)ids->v + ids->n, c->ids, c->n * sizeof(int32_t));
                ids->n += c->n;
            }
            pthread_mutex_unlock(&mt->cache_lock);
            return st;
        }
        pthread_mutex_unlock(&mt->cache_lock);
    }
    size_t before = ids->n;
    MLXN_TRY(tx_bpe_word(&t->bpe, w, len, ids));
    if (cacheable) {
        size_t n = ids->n - before;
        char *word = malloc(len + 1);
        int32_t *v = malloc((n ? n : 1) * sizeof *v);
        if (!word || !v) {
            free(word);
            free(v);
            return MLXN_OK; /* caching is optional */
        }
        memcpy(word, w, len);
        if (n) memcpy(v, (int32_t *)ids->v + before, n * sizeof *v);
        pthread_mutex_lock(&mt->cache_lock);
        tx_cache_slot *c = &mt->cache[slot];
        free(c->word);
        free(c->ids);
        *c = (tx_cache_slot){word, len, v, n};
        pthread_mutex_unlock(&mt->cache_lock);
    }
    return MLXN_OK;
}

/* Normalized text (one span between raw added tokens) -> ids. */
static mlxn_status encode_span(const mlxn_tokenizer *t, const char *s, size_t len, bool first, unsigned flags,
                               tx_buf *arena, tx_vec *ids) {
    tx_vec segs, pieces;
    tx_vec_init(&segs, sizeof(seg));
    tx_vec_init(&pieces, sizeof(tx_piece));
    mlxn_status st = find_added(t, &t->set_norm, s, len, flags & MLXN_TOKENIZE_SPLIT_SPECIAL, &segs);
    for (size_t i = 0; !st && i < segs.n; i++) {
        seg g = TX_AT(&segs, seg, i);
        if (g.token >= 0) {
            st = tx_vec_push(ids, &g.token);
            continue;
        }
        arena->len = 0;
        st = tx_buf_add(arena, s + g.start, g.end - g.start);
        if (st) break;
        pieces.n = 0;
        tx_piece p = {0, arena->len, first && g.start == 0};
        if (p.len) st = tx_vec_push(&pieces, &p);
        if (!st && t->pretok) st = tx_pretokenize(t->pretok, arena, &pieces);
        for (size_t k = 0; !st && k < pieces.n; k++) {
            tx_piece q = TX_AT(&pieces, tx_piece, k);
            st = word_ids(t, arena->s + q.off, q.len, ids);
        }
    }
    tx_vec_free(&segs);
    tx_vec_free(&pieces);
    return st;
}

mlxn_status mlxn_tokenizer_encode(const mlxn_tokenizer *t, const char *text, size_t len, unsigned flags,
                                  int32_t **ids_out, size_t *n_out) {
    if (!t || !ids_out || !n_out || (!text && len))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tokenizer_encode: NULL argument");
    *ids_out = NULL;
    *n_out = 0;
    size_t bad = tx_utf8_check(text, len);
    if (bad != len)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tokenizer_encode: the text is not valid UTF-8 (byte 0x%02X at offset %zu)",
                         (uint8_t)text[bad], bad);
    tx_vec ids, segs;
    tx_vec_init(&ids, sizeof(int32_t));
    tx_vec_init(&segs, sizeof(seg));
    tx_buf norm = {0}, arena = {0};
    mlxn_status st = MLXN_OK;
    if (flags & MLXN_TOKENIZE_ADD_SPECIAL && t->has_post)
        for (size_t i = 0; !st && i < t->post.n_pre; i++) st = tx_vec_push(&ids, &t->post.pre[i]);
    if (!st) st = find_added(t, &t->set_raw, text, len, flags & MLXN_TOKENIZE_SPLIT_SPECIAL, &segs);
    for (size_t i = 0; !st && i < segs.n; i++) {
        seg g = TX_AT(&segs, seg, i);
        if (g.token >= 0) {
            st = tx_vec_push(&ids, &g.token);
            continue;
        }
        const char *s = text + g.start;
        size_t n = g.end - g.start;
        if (t->normalizer) {
            st = tx_normalize(t->normalizer, s, n, &norm);
            if (st) break;
            s = norm.s ? norm.s : "";
            n = norm.len;
        }
        st = encode_span(t, s, n, g.start == 0, flags, &arena, &ids);
    }
    if (!st && flags & MLXN_TOKENIZE_ADD_SPECIAL && t->has_post)
        for (size_t i = 0; !st && i < t->post.n_post; i++) st = tx_vec_push(&ids, &t->post.post[i]);
    tx_vec_free(&segs);
    tx_buf_free(&norm);
    tx_buf_free(&arena);
    if (st) {
        tx_vec_free(&ids);
        return st;
    }
    *ids_out = ids.v;
    *n_out = ids.n;
    return MLXN_OK;
}

/* ---- accessors ---- */

size_t mlxn_tokenizer_vocab_size(const mlxn_tokenizer *t) { return t ? t->vocab_size : 0; }

const char *mlxn_tokenizer_id_to_token(const mlxn_tokenizer *t, int32_t id) {
    if (!t || id < 0 || (size_t)id >= t->vocab_size) return NULL;
    if (t->added_index[id] >= 0) return t->added[t->added_index[id]].content;
    return t->id_to_token[id];
}

int32_t mlxn_tokenizer_token_to_id(const mlxn_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    size_t len = strlen(token);
    int32_t v;
    if (tx_strmap_get(&t->added_by_content, token, len, &v)) return t->added[v].id;
    if (tx_strmap_get(&t->bpe.vocab, token, len, &v)) return v;
    return -1;
}

int mlxn_tokenizer_is_special(const mlxn_tokenizer *t, int32_t id) {
    if (!t || id < 0 || (size_t)id >= t->vocab_size || t->added_index[id] < 0) return 0;
    return t->added[t->added_index[id]].special;
}

int32_t mlxn_tokenizer_bos_id(const mlxn_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t mlxn_tokenizer_eos_id(const mlxn_tokenizer *t) { return t ? t->eos_id : -1; }
const char *mlxn_tokenizer_bos_token(const mlxn_tokenizer *t) { return t && t->bos_token ? t->bos_token : ""; }
const char *mlxn_tokenizer_eos_token(const mlxn_tokenizer *t) { return t && t->eos_token ? t->eos_token : ""; }
const char *mlxn_tokenizer_chat_template(const mlxn_tokenizer *t) { return t ? t->chat_template : NULL; }
