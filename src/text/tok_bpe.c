/* The BPE model of `tokenizers` (models/bpe): a word is cut into
 * characters (looked up in the vocabulary, else "<0xXX>" byte fallback,
 * else the unk token, fused or not), then merged by rank with a min-heap
 * of candidate pairs keyed (rank, position) over a linked list of symbols,
 * so a word of n characters costs O(n log n), not O(n^2). Stale heap
 * entries are skipped by the same test `tokenizers` uses (the pair at the
 * position must still merge into the entry's id), so ties resolve alike. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "text/tok_internal.h"

mlxn_status tx_bpe_build_merge(tx_bpe *b, const char *a, size_t alen, const char *bs, size_t blen, uint32_t rank,
                               const char *where) {
    int32_t ia, ib, inew;
    if (!tx_strmap_get(&b->vocab, a, alen, &ia))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: merge %u: token '%.*s' is not in the vocabulary", where, rank,
                         (int)(alen > 64 ? 64 : alen), a);
    if (!tx_strmap_get(&b->vocab, bs, blen, &ib))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: merge %u: token '%.*s' is not in the vocabulary", where, rank,
                         (int)(blen > 64 ? 64 : blen), bs);
    if (blen < b->prefix_len)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: merge %u: right token shorter than the subword prefix", where, rank);
    tx_buf m = {0};
    mlxn_status st = tx_buf_add(&m, a, alen);
    if (!st) st = tx_buf_add(&m, bs + b->prefix_len, blen - b->prefix_len);
    if (!st && !tx_strmap_get(&b->vocab, m.s, m.len, &inew))
        st = mlxn_fail(MLXN_ERR_FORMAT, "%s: merge %u: merged token '%.*s' is not in the vocabulary", where, rank,
                       (int)(m.len > 64 ? 64 : m.len), m.s);
    tx_buf_free(&m);
    if (st) return st;
    /* Later duplicates overwrite earlier ones, as collecting into a map does. */
    return tx_pairmap_put(&b->merges, ia, ib, rank, inew);
}

typedef struct sym {
    int32_t c;
    int32_t prev, next;
    size_t len; /* bytes of input covered; 0 = merged away */
} sym;

typedef struct cand {
    uint32_t rank;
    uint32_t pos;
    int32_t id;
} cand;

static bool cand_less(cand a, cand b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; }

typedef struct heap {
    cand *v;
    size_t n, cap;
} heap;

static mlxn_status heap_push(heap *h, cand c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 32;
        cand *v = realloc(h->v, cap * sizeof *v);
        if (!v) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(c, h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return MLXN_OK;
}

static cand heap_pop(heap *h) {
    cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        cand best = last;
        if (l < h->n && cand_less(h->v[l], best)) { m = l; best = h->v[l]; }
        if (r < h->n && cand_less(h->v[r], best)) { m = r; }
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static mlxn_status add_sym(tx_vec *syms, int32_t c, size_t len) {
    sym s = {c, (int32_t)syms->n - 1, -1, len};
    if (syms->n) TX_AT(syms, sym, syms->n - 1).next = (int32_t)syms->n;
    return tx_vec_push(syms, &s);
}

/* Word::merge_all */
static mlxn_status merge_all(const tx_bpe *b, tx_vec *syms) {
    sym *s = syms->v;
    heap h = {0};
    mlxn_status st = MLXN_OK;
    for (size_t i = 0; st == MLXN_OK && i + 1 < syms->n; i++) {
        cand c;
        if (tx_pairmap_get(&b->merges, s[i].c, s[i + 1].c, &c.rank, &c.id)) {
            c.pos = (uint32_t)i;
            st = heap_push(&h, c);
        }
    }
    while (st == MLXN_OK && h.n) {
        cand top = heap_pop(&h);
        sym *cur = &s[top.pos];
        if (cur->len == 0 || cur->next == -1) continue;
        sym right = s[cur->next];
        uint32_t rank;
        int32_t id;
        if (!tx_pairmap_get(&b->merges, cur->c, right.c, &rank, &id) || id != top.id) continue;
        s[cur->next].len = 0;
        cur->c = top.id;
        cur->len += right.len;
        cur->next = right.next;
        if (right.next > -1 && (size_t)right.next < syms->n) s[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            cand c;
            if (tx_pairmap_get(&b->merges, s[cur->prev].c, cur->c, &c.rank, &c.id)) {
                c.pos = (uint32_t)cur->prev;
                st = heap_push(&h, c);
            }
        }
        if (!st && cur->next >= 0 && (size_t)cur->next < syms->n) {
            cand c;
            if (tx_pairmap_get(&b->merges, cur->c, s[cur->next].c, &c.rank, &c.id)) {
                c.pos = top.pos;
                st = heap_push(&h, c);
            }
        }
    }
    free(h.v);
    return st;
}

mlxn_status tx_bpe_word(const tx_bpe *b, const char *w, size_t len, tx_vec *ids) {
    if (len == 0) return MLXN_OK;
    int32_t id;
    if (b->ignore_merges && tx_strmap_get(&b->vocab, w, len, &id)) return tx_vec_push(ids, &id);

    tx_vec syms;
    tx_vec_init(&syms, sizeof(sym));
    tx_buf key = {0};
    mlxn_status st = MLXN_OK;
    bool have_unk = false;
    int32_t unk_id = -1;
    size_t unk_len = 0;
    size_t i = 0;
    while (st == MLXN_OK && i < len) {
        uint32_t cp;
        size_t k = tx_utf8_next(w + i, len - i, &cp);
        bool first = i == 0, last = i + k == len;
        const char *s = w + i;
        size_t sl = k;
        if ((!first && b->prefix_len) || (last && b->suffix_len)) {
            key.len = 0;
            if (!first && b->prefix_len) st = tx_buf_add(&key, b->prefix, b->prefix_len);
            if (!st) st = tx_buf_add(&key, w + i, k);
            if (!st && last && b->suffix_len) st = tx_buf_add(&key, b->suffix, b->suffix_len);
            if (st) break;
            s = key.s;
            sl = key.len;
        }
        if (tx_strmap_get(&b->vocab, s, sl, &id)) {
            if (have_unk) {
                st = add_sym(&syms, unk_id, unk_len);
                have_unk = false;
            }
            if (!st) st = add_sym(&syms, id, k);
        } else {
            bool done = false;
            if (b->byte_fallback) {
                bool all = true;
                for (size_t q = 0; q < sl; q++) all = all && b->byte_ids[(uint8_t)s[q]] >= 0;
                if (all) {
                    /* s may point into key; byte ids are looked up before it changes */
                    for (size_t q = 0; q < sl && !st; q++) st = add_sym(&syms, b->byte_ids[(uint8_t)s[q]], 1);
                    done = true;
                }
            }
            if (!done && b->unk_id >= 0) {
                if (have_unk && b->fuse_unk) {
                    unk_len += k;
                } else {
                    if (have_unk) st = add_sym(&syms, unk_id, unk_len);
                    have_unk = true;
                    unk_id = b->unk_id;
                    unk_len = k;
                }
            }
            /* No fallback and no unk token: the character is dropped, as in `tokenizers`. */
        }
        i += k;
    }
    if (!st && have_unk) st = add_sym(&syms, unk_id, unk_len);
    tx_buf_free(&key);
    if (!st) st = merge_all(b, &syms);
    if (!st) {
        st = tx_vec_reserve(ids, syms.n);
        for (size_t q = 0; !st && q < syms.n; q++) {
            sym *sy = &TX_AT(&syms, sym, q);
            if (sy->len) st = tx_vec_push(ids, &sy->c);
        }
    }
    tx_vec_free(&syms);
    return st;
}

void tx_bpe_free(tx_bpe *b) {
    tx_strmap_free(&b->vocab);
    tx_pairmap_free(&b->merges);
    free(b->prefix);
    free(b->suffix);
}
