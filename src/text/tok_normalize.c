/* Normalizers of `tokenizers` used by the supported families: Sequence,
 * NFC/NFD/NFKC/NFKD (utf8proc), Lowercase, Prepend, Replace, Strip. Each
 * maps one string to another; the pipeline applies them to every span of
 * the input between added tokens, separately, as `tokenizers` does. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/internal.h"
#include "text/tok_internal.h"

static mlxn_status unicode_form(tx_norm_kind k, const char *s, size_t len, tx_buf *out) {
    int opts = UTF8PROC_STABLE;
    switch (k) {
    case TX_NORM_NFC: opts |= UTF8PROC_COMPOSE; break;
    case TX_NORM_NFD: opts |= UTF8PROC_DECOMPOSE; break;
    case TX_NORM_NFKC: opts |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    default: opts |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    if (len == 0) return MLXN_OK;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &dst, (utf8proc_option_t)opts);
    if (n < 0) {
        free(dst);
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tokenizer: unicode normalization failed: %s",
                         utf8proc_errmsg(n));
    }
    mlxn_status st = tx_buf_add(out, dst, (size_t)n);
    free(dst);
    return st;
}

static mlxn_status lowercase(const char *s, size_t len, tx_buf *out) {
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        i += tx_utf8_next(s + i, len - i, &cp);
        MLXN_TRY(tx_buf_add_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp)));
    }
    return MLXN_OK;
}

static mlxn_status replace(const tx_normalizer *n, const char *s, size_t len, tx_buf *out) {
    tx_vec spans;
    tx_vec_init(&spans, sizeof(tx_span));
    mlxn_status st = tx_pattern_spans(&n->pat, s, len, &spans);
    for (size_t i = 0; st == MLXN_OK && i < spans.n; i++) {
        tx_span sp = TX_AT(&spans, tx_span, i);
        st = sp.match ? tx_buf_add(out, n->str, n->str_len) : tx_buf_add(out, s + sp.start, sp.end - sp.start);
    }
    tx_vec_free(&spans);
    return st;
}

static mlxn_status strip(const tx_normalizer *n, const char *s, size_t len, tx_buf *out) {
    size_t a = 0, b = len;
    if (n->left) {
        while (a < b) {
            uint32_t cp;
            size_t k = tx_utf8_next(s + a, b - a, &cp);
            if (!tx_is_whitespace(cp)) break;
            a += k;
        }
    }
    if (n->right) {
        while (b > a) {
            size_t k = b - 1;
            while (k > a && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
            uint32_t cp;
            tx_utf8_next(s + k, b - k, &cp);
            if (!tx_is_whitespace(cp)) break;
            b = k;
        }
    }
    return tx_buf_add(out, s + a, b - a);
}

mlxn_status tx_normalize(const tx_normalizer *n, const char *s, size_t len, tx_buf *out) {
    out->len = 0;
    MLXN_TRY(tx_buf_reserve(out, len));
    out->s[0] = '\0';
    switch (n->kind) {
    case TX_NORM_SEQUENCE: {
        tx_buf tmp = {0};
        mlxn_status st = tx_buf_add(out, s, len);
        for (size_t i = 0; st == MLXN_OK && i < n->n_children; i++) {
            st = tx_normalize(&n->children[i], out->s, out->len, &tmp);
            tx_buf swap = *out;
            *out = tmp;
            tmp = swap;
        }
        tx_buf_free(&tmp);
        return st;
    }
    case TX_NORM_NFC: case TX_NORM_NFD: case TX_NORM_NFKC: case TX_NORM_NFKD:
        return unicode_form(n->kind, s, len, out);
    case TX_NORM_LOWERCASE: return lowercase(s, len, out);
    case TX_NORM_PREPEND:
        if (len) MLXN_TRY(tx_buf_add(out, n->str, n->str_len));
        return tx_buf_add(out, s, len);
    case TX_NORM_REPLACE: return replace(n, s, len, out);
    case TX_NORM_STRIP: return strip(n, s, len, out);
    }
    return mlxn_fail(MLXN_ERR_UNSUPPORTED, "tokenizer: unknown normalizer");
}

static void norm_clear(tx_normalizer *n) {
    for (size_t i = 0; i < n->n_children; i++) norm_clear(&n->children[i]);
    free(n->children);
    free(n->str);
    tx_pattern_free(&n->pat);
}

void tx_normalizer_free(tx_normalizer *n) {
    if (!n) return;
    norm_clear(n);
    free(n);
}
