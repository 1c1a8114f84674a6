/* Pre-tokenizers of `tokenizers` used by the supported families:
 * Sequence, ByteLevel (GPT-2 split + byte -> unicode mapping), Split
 * (literal or regex, five delimiter behaviors, invert), Digits and
 * Metaspace. Pieces live in one arena per encode call; each stage replaces
 * the piece list with the pieces it cuts, dropping empty ones, as
 * PreTokenizedString::split does. */
#include <string.h>

#include "core/internal.h"
#include "text/tok_internal.h"

/* The GPT-2 byte -> code point table: printable Latin-1 bytes map to
 * themselves, the other 68 bytes to U+0100.. in byte order. */
uint32_t tx_byte_to_cp(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
    uint32_t n = 0;
    for (int c = 0; c < b; c++) {
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) n++;
    }
    return 256 + n;
}

int tx_cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp < 256 || cp >= 256 + 68) return -1;
    uint32_t n = 0;
    for (int c = 0; c < 256; c++) {
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) {
            if (n == cp - 256) return c;
            n++;
        }
    }
    return -1;
}

/* Append a copy of arena bytes [off, off+len) to the arena (the source
 * moves when the arena grows, so reserve first). */
static mlxn_status arena_copy(tx_buf *a, size_t off, size_t len, size_t *new_off) {
    MLXN_TRY(tx_buf_reserve(a, len));
    *new_off = a->len;
    memmove(a->s + a->len, a->s + off, len);
    a->len += len;
    a->s[a->len] = '\0';
    return MLXN_OK;
}

static mlxn_status push_piece(tx_vec *out, size_t off, size_t len, bool first) {
    if (len == 0) return MLXN_OK;
    tx_piece p = {off, len, first};
    return tx_vec_push(out, &p);
}

/* NormalizedString::split: turn the spans into pieces per the behavior. */
static mlxn_status split_spans(const tx_piece *in, tx_vec *spans, tx_split_behavior b, tx_vec *out) {
    tx_span *sp = spans->v;
    size_t n = spans->n, m = 0;
    switch (b) {
    case TX_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++) sp[i].match = false;
        m = n;
        break;
    case TX_SPLIT_REMOVED:
        m = n;
        break;
    case TX_SPLIT_CONTIGUOUS: {
        bool prev = false;
        for (size_t i = 0; i < n; i++) {
            bool is = sp[i].match;
            if (is == prev && m > 0) sp[m - 1].end = sp[i].end;
            else sp[m++] = (tx_span){sp[i].start, sp[i].end, false};
            prev = is;
        }
        break;
    }
    case TX_SPLIT_MERGED_PREV: {
        bool prev = false;
        for (size_t i = 0; i < n; i++) {
            bool is = sp[i].match;
            if (is && !prev && m > 0) sp[m - 1].end = sp[i].end;
            else sp[m++] = (tx_span){sp[i].start, sp[i].end, false};
            prev = is;
        }
        break;
    }
    case TX_SPLIT_MERGED_NEXT: {
        /* Walk backwards, merging a match into the piece after it; the
         * result is built from the end of the array towards its start. */
        bool prev = false;
        size_t w = n; /* next write position, exclusive, moving down */
        for (size_t k = n; k-- > 0;) {
            tx_span cur = sp[k];
            bool is = cur.match;
            if (is && !prev && w < n) sp[w].start = cur.start;
            else sp[--w] = (tx_span){cur.start, cur.end, false};
            prev = is;
        }
        memmove(sp, sp + w, (n - w) * sizeof *sp);
        m = n - w;
        break;
    }
    }
    for (size_t i = 0; i < m; i++) {
        if (sp[i].match) continue; /* removed */
        MLXN_TRY(push_piece(out, in->off + sp[i].start, sp[i].end - sp[i].start, in->first && sp[i].start == 0));
    }
    return MLXN_OK;
}

/* Spans of the characters that satisfy pred, each its own match. */
static mlxn_status char_spans(const char *s, size_t len, bool (*pred)(uint32_t, uint32_t), uint32_t arg,
                              tx_vec *spans) {
    spans->n = 0;
    if (len == 0) {
        tx_span e = {0, 0, false};
        return tx_vec_push(spans, &e);
    }
    size_t last = 0, i = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = tx_utf8_next(s + i, len - i, &cp);
        if (pred(cp, arg)) {
            if (last < i) {
                tx_span a = {last, i, false};
                MLXN_TRY(tx_vec_push(spans, &a));
            }
            tx_span b = {i, i + k, true};
            MLXN_TRY(tx_vec_push(spans, &b));
            last = i + k;
        }
        i += k;
    }
    if (len > last) {
        tx_span c = {last, len, false};
        MLXN_TRY(tx_vec_push(spans, &c));
    }
    return MLXN_OK;
}

static bool pred_numeric(uint32_t cp, uint32_t arg) { (void)arg; return tx_is_numeric(cp); }
static bool pred_equal(uint32_t cp, uint32_t arg) { return cp == arg; }

static mlxn_status bytelevel_piece(const tx_pretok *p, tx_buf *a, tx_piece pc, tx_vec *spans, tx_vec *out) {
    if (p->add_prefix_space && !(pc.len > 0 && a->s[pc.off] == ' ')) {
        size_t off;
        MLXN_TRY(tx_buf_reserve(a, pc.len + 1));
        off = a->len;
        a->s[a->len++] = ' ';
        memmove(a->s + a->len, a->s + pc.off, pc.len);
        a->len += pc.len;
        a->s[a->len] = '\0';
        pc.off = off;
        pc.len += 1;
    }
    tx_vec cut;
    tx_vec_init(&cut, sizeof(tx_piece));
    mlxn_status st;
    if (p->use_regex) {
        st = tx_pattern_spans(&p->pat, a->s + pc.off, pc.len, spans);
        if (!st) st = split_spans(&pc, spans, TX_SPLIT_ISOLATED, &cut);
    } else {
        st = push_piece(&cut, pc.off, pc.len, pc.first);
    }
    /* Map every byte to its stand-in character. */
    for (size_t i = 0; st == MLXN_OK && i < cut.n; i++) {
        tx_piece c = TX_AT(&cut, tx_piece, i);
        st = tx_buf_reserve(a, c.len * 2);
        if (st) break;
        size_t off = a->len;
        for (size_t k = 0; k < c.len && !st; k++) st = tx_buf_add_cp(a, tx_byte_to_cp((uint8_t)a->s[c.off + k]));
        if (!st) st = push_piece(out, off, a->len - off, c.first);
    }
    tx_vec_free(&cut);
    return st;
}

static mlxn_status metaspace_piece(const tx_pretok *p, tx_buf *a, tx_piece pc, tx_vec *spans, tx_vec *out) {
    char rep[4];
    size_t rep_len;
    {
        tx_buf t = {0};
        MLXN_TRY(tx_buf_add_cp(&t, p->replacement));
        memcpy(rep, t.s, t.len);
        rep_len = t.len;
        tx_buf_free(&t);
    }
    /* Replace ' ' by the replacement character, then maybe prepend it. */
    MLXN_TRY(tx_buf_reserve(a, pc.len * rep_len + rep_len));
    size_t off = a->len;
    bool starts = pc.len >= rep_len && memcmp(a->s + pc.off, rep, rep_len) == 0;
    if (!starts && pc.len > 0 && a->s[pc.off] == ' ' && p->replacement != ' ') starts = true;
    bool prepend = (p->scheme == TX_PREPEND_ALWAYS && !starts) || (p->scheme == TX_PREPEND_FIRST && !starts && pc.first);
    if (prepend) {
        memcpy(a->s + a->len, rep, rep_len);
        a->len += rep_len;
    }
    for (size_t k = 0; k < pc.len; k++) {
        char c = a->s[pc.off + k];
        if (c == ' ') {
            memcpy(a->s + a->len, rep, rep_len);
            a->len += rep_len;
        } else {
            a->s[a->len++] = c;
        }
    }
    a->s[a->len] = '\0';
    tx_piece np = {off, a->len - off, pc.first};
    if (!p->split) return push_piece(out, np.off, np.len, np.first);
    MLXN_TRY(char_spans(a->s + np.off, np.len, pred_equal, p->replacement, spans));
    return split_spans(&np, spans, TX_SPLIT_MERGED_NEXT, out);
}

static mlxn_status apply_one(const tx_pretok *p, tx_buf *a, tx_vec *pieces) {
    if (p->kind == TX_PRE_SEQUENCE) {
        for (size_t i = 0; i < p->n_children; i++) MLXN_TRY(apply_one(&p->children[i], a, pieces));
        return MLXN_OK;
    }
    tx_vec out, spans;
    tx_vec_init(&out, sizeof(tx_piece));
    tx_vec_init(&spans, sizeof(tx_span));
    mlxn_status st = MLXN_OK;
    for (size_t i = 0; st == MLXN_OK && i < pieces->n; i++) {
        tx_piece pc = TX_AT(pieces, tx_piece, i);
        switch (p->kind) {
        case TX_PRE_BYTELEVEL: st = bytelevel_piece(p, a, pc, &spans, &out); break;
        case TX_PRE_METASPACE: st = metaspace_piece(p, a, pc, &spans, &out); break;
        case TX_PRE_DIGITS:
            st = char_spans(a->s + pc.off, pc.len, pred_numeric, 0, &spans);
            if (!st) st = split_spans(&pc, &spans, p->individual_digits ? TX_SPLIT_ISOLATED : TX_SPLIT_CONTIGUOUS, &out);
            break;
        case TX_PRE_SPLIT:
            st = tx_pattern_spans(&p->pat, a->s + pc.off, pc.len, &spans);
            if (!st && p->invert)
                for (size_t k = 0; k < spans.n; k++) TX_AT(&spans, tx_span, k).match = !TX_AT(&spans, tx_span, k).match;
            if (!st) st = split_spans(&pc, &spans, p->behavior, &out);
            break;
        default: st = mlxn_fail(MLXN_ERR_UNSUPPORTED, "tokenizer: unknown pre-tokenizer"); break;
        }
    }
    tx_vec_free(&spans);
    if (st) {
        tx_vec_free(&out);
        return st;
    }
    tx_vec_free(pieces);
    *pieces = out;
    return MLXN_OK;
}

mlxn_status tx_pretokenize(const tx_pretok *p, tx_buf *arena, tx_vec *pieces) {
    return apply_one(p, arena, pieces);
}

static void pretok_clear(tx_pretok *p) {
    for (size_t i = 0; i < p->n_children; i++) pretok_clear(&p->children[i]);
    free(p->children);
    tx_pattern_free(&p->pat);
}

void tx_pretok_free(tx_pretok *p) {
    if (!p) return;
    pretok_clear(p);
    free(p);
}
