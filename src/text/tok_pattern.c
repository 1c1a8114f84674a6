/* Patterns of the Split pre-tokenizer and the Replace normalizer/decoder:
 * a literal string or a PCRE2 regex (UTF + Unicode properties, JIT when
 * the platform has it), and the match spans `tokenizers` computes from
 * them (Pattern::find_matches: alternating non-match / match spans that
 * cover the whole input). */
#include <string.h>

#include "core/internal.h"
#include "text/tok_internal.h"

/* GPT-2's split (the ByteLevel pre-tokenizer's built-in regex). */
const char tx_gpt2_regex[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

mlxn_status tx_pattern_compile_regex(tx_pattern *p, const char *re, size_t len, const char *where) {
    memset(p, 0, sizeof *p);
    int err = 0;
    PCRE2_SIZE erroff = 0;
    /* UCP: \s \w \d and POSIX classes use Unicode properties, as Oniguruma
     * does in `tokenizers`. */
    p->re = pcre2_compile((PCRE2_SPTR)re, len, PCRE2_UTF | PCRE2_UCP, &err, &erroff, NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: regex does not compile at offset %zu: %s", where,
                         (size_t)erroff, (const char *)msg);
    }
    /* JIT makes the split several times faster; without it (or when the
     * platform lacks it) the interpreter gives the same matches. */
    p->jit = pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE) == 0;
    return MLXN_OK;
}

mlxn_status tx_pattern_literal(tx_pattern *p, const char *s, size_t len) {
    memset(p, 0, sizeof *p);
    p->literal = malloc(len + 1);
    if (!p->literal) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "text: out of memory");
    memcpy(p->literal, s, len);
    p->literal[len] = '\0';
    p->literal_len = len;
    return MLXN_OK;
}

void tx_pattern_free(tx_pattern *p) {
    free(p->literal);
    if (p->re) pcre2_code_free(p->re);
    memset(p, 0, sizeof *p);
}

/* memmem is a GNU extension; the sizes here are small. */
static const char *find_bytes(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn == 0 || nn > hn) return NULL;
    const char *end = h + hn - nn;
    for (const char *p = h; p <= end; p++) {
        p = memchr(p, (unsigned char)n[0], (size_t)(end - p) + 1);
        if (!p) return NULL;
        if (memcmp(p, n, nn) == 0) return p;
    }
    return NULL;
}

static mlxn_status push_span(tx_vec *spans, size_t a, size_t b, bool m) {
    tx_span sp = {a, b, m};
    return tx_vec_push(spans, &sp);
}

static mlxn_status regex_spans(const tx_pattern *p, const char *s, size_t len, tx_vec *spans) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->re, NULL);
    if (!md) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "text: out of memory");
    mlxn_status st = MLXN_OK;
    size_t prev = 0, at = 0;
    while (at <= len) {
        /* The input was validated as UTF-8 once, on entry to encode. */
        uint32_t opts = PCRE2_NO_UTF_CHECK;
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, len, at, opts, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* very long runs: the interpreter uses the heap */
            rc = pcre2_match(p->re, (PCRE2_SPTR)s, len, at, opts | PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            st = mlxn_fail(MLXN_ERR_UNSUPPORTED, "tokenizer: regex match failed: %s", (const char *)msg);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms > len || me > len || me < ms) break; /* \K tricks: ignore */
        if (prev != ms && (st = push_span(spans, prev, ms, false))) break;
        if ((st = push_span(spans, ms, me, true))) break;
        prev = me;
        if (me == ms) {
            /* An empty match: step over one character, as find_iter does. */
            if (me >= len) break;
            int n = tx_utf8_len((uint8_t)s[me]);
            at = me + (n ? (size_t)n : 1);
        } else {
            at = me;
        }
    }
    pcre2_match_data_free(md);
    if (st) return st;
    if (prev != len) return push_span(spans, prev, len, false);
    return MLXN_OK;
}

mlxn_status tx_pattern_spans(const tx_pattern *p, const char *s, size_t len, tx_vec *spans) {
    spans->n = 0;
    if (len == 0) return push_span(spans, 0, 0, false);
    if (p->re) return regex_spans(p, s, len, spans);
    if (p->literal_len == 0) return push_span(spans, 0, len, false);
    size_t prev = 0, i = 0;
    while (i + p->literal_len <= len) {
        const char *hit = find_bytes(s + i, len - i, p->literal, p->literal_len);
        if (!hit) break;
        size_t ms = (size_t)(hit - s);
        if (prev != ms) MLXN_TRY(push_span(spans, prev, ms, false));
        MLXN_TRY(push_span(spans, ms, ms + p->literal_len, true));
        prev = i = ms + p->literal_len;
    }
    if (prev != len) MLXN_TRY(push_span(spans, prev, len, false));
    return MLXN_OK;
}
