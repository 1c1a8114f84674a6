/* Decoding: ids -> token strings -> the decoder chain of `tokenizers`
 * (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence) ->
 * one UTF-8 string. Streaming decode follows `tokenizers`' DecodeStream:
 * it decodes a short window of ids, and releases the text that window adds
 * past the previous prefix only when it does not end in U+FFFD, so a
 * character split across tokens is never emitted in parts. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "text/tok_internal.h"

static const char REPL[] = "\xEF\xBF\xBD"; /* U+FFFD */

static void toks_free(tx_vec *t) {
    for (size_t i = 0; i < t->n; i++) tx_buf_free(&TX_AT(t, tx_buf, i));
    tx_vec_free(t);
}

/* String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD. */
static mlxn_status add_lossy(tx_buf *out, const uint8_t *u, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t ok = tx_utf8_check((const char *)u + i, n - i);
        MLXN_TRY(tx_buf_add(out, u + i, ok));
        i += ok;
        if (i >= n) break;
        /* length of the maximal subpart starting at i */
        uint8_t c = u[i];
        int need = tx_utf8_len(c);
        size_t k = 1;
        if (need > 1) {
            uint8_t lo = 0x80, hi = 0xBF;
            if (c == 0xE0) lo = 0xA0;
            else if (c == 0xED) hi = 0x9F;
            else if (c == 0xF0) lo = 0x90;
            else if (c == 0xF4) hi = 0x8F;
            if (i + 1 < n && u[i + 1] >= lo && u[i + 1] <= hi) {
                k = 2;
                while (k < (size_t)need && i + k < n && (u[i + k] & 0xC0) == 0x80) k++;
            }
        }
        MLXN_TRY(tx_buf_add(out, REPL, 3));
        i += k;
    }
    return MLXN_OK;
}

static mlxn_status set_single(tx_vec *toks, tx_buf *joined) {
    toks_free(toks);
    tx_vec_init(toks, sizeof(tx_buf));
    mlxn_status st = tx_vec_push(toks, joined);
    if (st) tx_buf_free(joined);
    return st;
}

static mlxn_status dec_bytelevel(tx_vec *toks) {
    tx_buf bytes = {0}, out = {0};
    mlxn_status st = MLXN_OK;
    for (size_t i = 0; !st && i < toks->n; i++) {
        tx_buf *t = &TX_AT(toks, tx_buf, i);
        size_t mark = bytes.len, j = 0;
        bool all = true;
        while (j < t->len && !st) {
            uint32_t cp;
            j += tx_utf8_next(t->s + j, t->len - j, &cp);
            int b = tx_cp_to_byte(cp);
            if (b < 0) { all = false; break; }
            st = tx_buf_addc(&bytes, (char)b);
        }
        if (!st && !all) {
            bytes.len = mark;
            st = tx_buf_add(&bytes, t->s, t->len);
        }
    }
    if (!st) st = tx_buf_reserve(&out, bytes.len);
    if (!st) st = add_lossy(&out, (const uint8_t *)bytes.s, bytes.len);
    tx_buf_free(&bytes);
    if (!st) return set_single(toks, &out);
    tx_buf_free(&out);
    return st;
}

static mlxn_status dec_fuse(tx_vec *toks) {
    tx_buf out = {0};
    mlxn_status st = tx_buf_reserve(&out, 0);
    for (size_t i = 0; !st && i < toks->n; i++) st = tx_buf_add(&out, TX_AT(toks, tx_buf, i).s, TX_AT(toks, tx_buf, i).len);
    if (!st) return set_single(toks, &out);
    tx_buf_free(&out);
    return st;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static mlxn_status flush_bytes(tx_vec *out, tx_buf *pending) {
    if (pending->len == 0) return MLXN_OK;
    tx_buf s = {0};
    mlxn_status st = MLXN_OK;
    if (tx_utf8_check(pending->s, pending->len) == pending->len) {
        st = tx_buf_add(&s, pending->s, pending->len);
        if (!st) st = tx_vec_push(out, &s);
        if (st) tx_buf_free(&s);
    } else {
        for (size_t i = 0; i < pending->len && !st; i++) {
            tx_buf r = {0};
            st = tx_buf_add(&r, REPL, 3);
            if (!st) st = tx_vec_push(out, &r);
            if (st) tx_buf_free(&r);
        }
    }
    pending->len = 0;
    return st;
}

static mlxn_status dec_bytefallback(tx_vec *toks) {
    tx_vec out;
    tx_vec_init(&out, sizeof(tx_buf));
    tx_buf pending = {0};
    mlxn_status st = MLXN_OK;
    for (size_t i = 0; !st && i < toks->n; i++) {
        tx_buf *t = &TX_AT(toks, tx_buf, i);
        int hi, lo;
        if (t->len == 6 && memcmp(t->s, "<0x", 3) == 0 && t->s[5] == '>' && (hi = hexval(t->s[3])) >= 0 &&
            (lo = hexval(t->s[4])) >= 0) {
            st = tx_buf_addc(&pending, (char)(hi * 16 + lo));
            continue;
        }
        st = flush_bytes(&out, &pending);
        if (!st) st = tx_vec_push(&out, t);
        if (!st) memset(t, 0, sizeof *t); /* moved */
    }
    if (!st) st = flush_bytes(&out, &pending);
    tx_buf_free(&pending);
    toks_free(toks);
    *toks = out;
    return st;
}

static mlxn_status dec_metaspace(const tx_decoder *d, tx_vec *toks) {
    for (size_t i = 0; i < toks->n; i++) {
        tx_buf *t = &TX_AT(toks, tx_buf, i);
        tx_buf o = {0};
        mlxn_status st = tx_buf_reserve(&o, t->len);
        size_t j = 0;
        while (!st && j < t->len) {
            uint32_t cp;
            size_t k = tx_utf8_next(t->s + j, t->len - j, &cp);
            if (cp == d->replacement) {
                if (!(i == 0 && d->scheme != TX_PREPEND_NEVER)) st = tx_buf_addc(&o, ' ');
            } else {
                st = tx_buf_add(&o, t->s + j, k);
            }
            j += k;
        }
        if (st) {
            tx_buf_free(&o);
            return st;
        }
        tx_buf_free(t);
        *t = o;
    }
    return MLXN_OK;
}

static mlxn_status dec_replace(const tx_decoder *d, tx_vec *toks) {
    tx_vec spans;
    tx_vec_init(&spans, sizeof(tx_span));
    mlxn_status st = MLXN_OK;
    for (size_t i = 0; !st && i < toks->n; i++) {
        tx_buf *t = &TX_AT(toks, tx_buf, i);
        tx_buf o = {0};
        st = tx_pattern_spans(&d->pat, t->s ? t->s : "", t->len, &spans);
        if (!st) st = tx_buf_reserve(&o, t->len);
        for (size_t k = 0; !st && k < spans.n; k++) {
            tx_span sp = TX_AT(&spans, tx_span, k);
            st = sp.match ? tx_buf_add(&o, d->content, d->content_len) : tx_buf_add(&o, t->s + sp.start, sp.end - sp.start);
        }
        if (st) {
            tx_buf_free(&o);
            break;
        }
        tx_buf_free(t);
        *t = o;
    }
    tx_vec_free(&spans);
    return st;
}

static mlxn_status dec_strip(const tx_decoder *d, tx_vec *toks) {
    for (size_t i = 0; i < toks->n; i++) {
        tx_buf *t = &TX_AT(toks, tx_buf, i);
        if (t->len == 0) continue;
        /* character boundaries */
        size_t nch = 0, j = 0;
        while (j < t->len) {
            uint32_t cp;
            j += tx_utf8_next(t->s + j, t->len - j, &cp);
            nch++;
        }
        size_t *pos = malloc((nch + 1) * sizeof *pos);
        uint32_t *cps = malloc((nch + 1) * sizeof *cps);
        if (!pos || !cps) {
            free(pos);
            free(cps);
            return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        }
        j = 0;
        for (size_t c = 0; c < nch; c++) {
            pos[c] = j;
            j += tx_utf8_next(t->s + j, t->len - j, &cps[c]);
        }
        pos[nch] = t->len;
        size_t a = 0, b = nch;
        for (size_t c = 0; c < d->strip_start && c < nch; c++) {
            if (cps[c] != d->strip_char) break;
            a = c + 1;
        }
        for (size_t c = 0; c < d->strip_stop && c < nch; c++) {
            size_t idx = nch - c - 1;
            if (cps[idx] != d->strip_char) break;
            b = idx;
        }
        if (b < a) b = a;
        size_t from = pos[a], to = pos[b];
        memmove(t->s, t->s + from, to - from);
        t->len = to - from;
        t->s[t->len] = '\0';
        free(pos);
        free(cps);
    }
    return MLXN_OK;
}

mlxn_status tx_decode_chain(const tx_decoder *d, tx_vec *toks) {
    switch (d->kind) {
    case TX_DEC_SEQUENCE:
        for (size_t i = 0; i < d->n_children; i++) MLXN_TRY(tx_decode_chain(&d->children[i], toks));
        return MLXN_OK;
    case TX_DEC_BYTELEVEL: return dec_bytelevel(toks);
    case TX_DEC_METASPACE: return dec_metaspace(d, toks);
    case TX_DEC_REPLACE: return dec_replace(d, toks);
    case TX_DEC_BYTEFALLBACK: return dec_bytefallback(toks);
    case TX_DEC_FUSE: return dec_fuse(toks);
    case TX_DEC_STRIP: return dec_strip(d, toks);
    }
    return mlxn_fail(MLXN_ERR_UNSUPPORTED, "tokenizer: unknown decoder");
}

static void dec_clear(tx_decoder *d) {
    for (size_t i = 0; i < d->n_children; i++) dec_clear(&d->children[i]);
    free(d->children);
    free(d->content);
    tx_pattern_free(&d->pat);
}

void tx_decoder_free(tx_decoder *d) {
    if (!d) return;
    dec_clear(d);
    free(d);
}

/* TokenizerImpl::decode into a tx_buf. */
static mlxn_status decode_buf(const mlxn_tokenizer *t, const int32_t *ids, size_t n, int skip_special, tx_buf *out) {
    tx_vec toks;
    tx_vec_init(&toks, sizeof(tx_buf));
    mlxn_status st = tx_vec_reserve(&toks, n);
    for (size_t i = 0; !st && i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= t->vocab_size) continue;
        const char *s = NULL;
        size_t len = 0;
        int32_t ai = t->added_index[id];
        if (ai >= 0) {
            const tx_added *a = &t->added[ai];
            if (skip_special && a->special) continue;
            s = a->norm;
            len = a->norm_len;
        } else if (t->id_to_token[id]) {
            s = t->id_to_token[id];
            len = strlen(s);
        } else {
            continue;
        }
        tx_buf b = {0};
        st = tx_buf_add(&b, s, len);
        if (!st) st = tx_vec_push(&toks, &b);
        if (st) tx_buf_free(&b);
    }
    if (!st && t->decoder) st = tx_decode_chain(t->decoder, &toks);
    out->len = 0;
    if (!st) st = tx_buf_reserve(out, 0);
    for (size_t i = 0; !st && i < toks.n; i++) {
        if (i > 0 && !t->decoder) st = tx_buf_addc(out, ' ');
        if (!st) st = tx_buf_add(out, TX_AT(&toks, tx_buf, i).s, TX_AT(&toks, tx_buf, i).len);
    }
    if (!st) out->s[out->len] = '\0';
    toks_free(&toks);
    return st;
}

mlxn_status mlxn_tokenizer_decode(const mlxn_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special,
                                  char **text, size_t *len) {
    if (!t || !text || (!ids && n_ids)) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tokenizer_decode: NULL argument");
    *text = NULL;
    tx_buf out = {0};
    mlxn_status st = decode_buf(t, ids, n_ids, skip_special, &out);
    if (st) {
        tx_buf_free(&out);
        return st;
    }
    *text = out.s;
    if (len) *len = out.len;
    return MLXN_OK;
}

struct mlxn_detokenizer {
    const mlxn_tokenizer *t;
    int skip_special;
    tx_vec ids;          /* int32_t: the window */
    tx_buf prefix;       /* decode of ids[0 .. prefix_index) */
    size_t prefix_index;
    tx_buf cur, out;
};

mlxn_status mlxn_detokenizer_new(const mlxn_tokenizer *t, int skip_special, mlxn_detokenizer **out) {
    if (!t || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "detokenizer_new: NULL argument");
    mlxn_detokenizer *d = calloc(1, sizeof *d);
    if (!d) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "detokenizer_new: out of memory");
    d->t = t;
    d->skip_special = skip_special;
    tx_vec_init(&d->ids, sizeof(int32_t));
    *out = d;
    return MLXN_OK;
}

static bool ends_repl(const tx_buf *b) { return b->len >= 3 && memcmp(b->s + b->len - 3, REPL, 3) == 0; }

mlxn_status mlxn_detokenizer_push(mlxn_detokenizer *d, int32_t id, const char **text, size_t *len) {
    if (!d || !text) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "detokenizer_push: NULL argument");
    *text = "";
    if (len) *len = 0;
    if (d->prefix.len == 0 && d->ids.n) {
        MLXN_TRY(decode_buf(d->t, d->ids.v, d->ids.n, d->skip_special, &d->cur));
        if (!ends_repl(&d->cur)) {
            tx_buf s = d->prefix;
            d->prefix = d->cur;
            d->cur = s;
            d->prefix_index = d->ids.n;
        }
    }
    MLXN_TRY(tx_vec_push(&d->ids, &id));
    MLXN_TRY(decode_buf(d->t, d->ids.v, d->ids.n, d->skip_special, &d->cur));
    if (d->cur.len > d->prefix.len && !ends_repl(&d->cur)) {
        if (memcmp(d->cur.s, d->prefix.s ? d->prefix.s : "", d->prefix.len) != 0) {
            /* tokenizers reports InvalidPrefix here (a byte group that
             * decoded to text now decodes to U+FFFDs); rather than fail a
             * stream, release the ids not yet shown, decoded alone. */
            MLXN_TRY(decode_buf(d->t, (const int32_t *)d->ids.v + d->prefix_index, d->ids.n - d->prefix_index,
                                d->skip_special, &d->out));
        } else {
            d->out.len = 0;
            MLXN_TRY(tx_buf_add(&d->out, d->cur.s + d->prefix.len, d->cur.len - d->prefix.len));
        }
        size_t new_prefix_index = d->ids.n - d->prefix_index;
        int32_t *v = d->ids.v;
        memmove(v, v + d->prefix_index, (d->ids.n - d->prefix_index) * sizeof *v);
        d->ids.n -= d->prefix_index;
        MLXN_TRY(decode_buf(d->t, d->ids.v, d->ids.n, d->skip_special, &d->prefix));
        d->prefix_index = new_prefix_index;
        *text = d->out.s;
        if (len) *len = d->out.len;
    }
    return MLXN_OK;
}

mlxn_status mlxn_detokenizer_flush(mlxn_detokenizer *d, const char **text, size_t *len) {
    if (!d || !text) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "detokenizer_flush: NULL argument");
    *text = "";
    if (len) *len = 0;
    MLXN_TRY(decode_buf(d->t, d->ids.v, d->ids.n, d->skip_special, &d->cur));
    d->out.len = 0;
    if (d->cur.len >= d->prefix.len && memcmp(d->cur.s, d->prefix.s ? d->prefix.s : "", d->prefix.len) == 0)
        MLXN_TRY(tx_buf_add(&d->out, d->cur.s + d->prefix.len, d->cur.len - d->prefix.len));
    else
        MLXN_TRY(decode_buf(d->t, (const int32_t *)d->ids.v + d->prefix_index, d->ids.n - d->prefix_index,
                            d->skip_special, &d->out));
    d->ids.n = 0;
    d->prefix.len = 0;
    d->prefix_index = 0;
    if (d->out.s) {
        *text = d->out.s;
        if (len) *len = d->out.len;
    }
    return MLXN_OK;
}

void mlxn_detokenizer_free(mlxn_detokenizer *d) {
    if (!d) return;
    tx_vec_free(&d->ids);
    tx_buf_free(&d->prefix);
    tx_buf_free(&d->cur);
    tx_buf_free(&d->out);
    free(d);
}
