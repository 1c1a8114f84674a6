/* Containers and UTF-8 helpers for src/text (see text_util.h). */
#include "text/text_util.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/internal.h"

static mlxn_status oom(void) { return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "text: out of memory"); }

mlxn_status tx_buf_reserve(tx_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return MLXN_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) return oom();
        cap *= 2;
    }
    char *s = realloc(b->s, cap);
    if (!s) return oom();
    b->s = s;
    b->cap = cap;
    return MLXN_OK;
}

mlxn_status tx_buf_add(tx_buf *b, const void *p, size_t n) {
    MLXN_TRY(tx_buf_reserve(b, n));
    if (n) memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
    return MLXN_OK;
}

mlxn_status tx_buf_addc(tx_buf *b, char c) { return tx_buf_add(b, &c, 1); }
mlxn_status tx_buf_adds(tx_buf *b, const char *s) { return tx_buf_add(b, s, strlen(s)); }

mlxn_status tx_buf_add_cp(tx_buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 63)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 63)); u[2] = (char)(0x80 | (cp & 63)); n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 63));
        u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63)); n = 4;
    }
    return tx_buf_add(b, u, n);
}

void tx_buf_free(tx_buf *b) {
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

void tx_vec_init(tx_vec *a, size_t elem) {
    a->v = NULL;
    a->n = a->cap = 0;
    a->elem = elem;
}

mlxn_status tx_vec_reserve(tx_vec *a, size_t extra) {
    if (a->n + extra <= a->cap) return MLXN_OK;
    size_t cap = a->cap ? a->cap : 16;
    while (cap < a->n + extra) {
        if (cap > SIZE_MAX / 2 / a->elem) return oom();
        cap *= 2;
    }
    void *v = realloc(a->v, cap * a->elem);
    if (!v) return oom();
    a->v = v;
    a->cap = cap;
    return MLXN_OK;
}

mlxn_status tx_vec_push(tx_vec *a, const void *e) {
    MLXN_TRY(tx_vec_reserve(a, 1));
    memcpy((char *)a->v + a->n * a->elem, e, a->elem);
    a->n++;
    return MLXN_OK;
}

void tx_vec_free(tx_vec *a) {
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

/* FNV-1a, 64-bit: keys are short token strings. */
uint64_t tx_hash(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static mlxn_status strmap_grow(tx_strmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return oom();
    for (size_t i = 0; i < m->n; i++) {
        uint64_t h = tx_hash(m->keys.s + m->ent[i].off, m->ent[i].len);
        size_t j = h & (cap - 1);
        while (slots[j]) j = (j + 1) & (cap - 1);
        slots[j] = (uint32_t)(i + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return MLXN_OK;
}

static size_t strmap_find(const tx_strmap *m, const char *k, size_t len) {
    /* returns slot index holding k, or the empty slot where it would go */
    size_t j = tx_hash(k, len) & (m->cap - 1);
    for (;;) {
        uint32_t e = m->slots[j];
        if (!e) return j;
        const struct tx_strent *en = &m->ent[e - 1];
        if (en->len == len && memcmp(m->keys.s + en->off, k, len) == 0) return j;
        j = (j + 1) & (m->cap - 1);
    }
}

mlxn_status tx_strmap_put(tx_strmap *m, const char *k, size_t len, int32_t val) {
    if (len > UINT32_MAX || m->n >= UINT32_MAX - 1) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "text: key too long");
    if ((m->n + 1) * 2 > m->cap) MLXN_TRY(strmap_grow(m));
    size_t j = strmap_find(m, k, len);
    if (m->slots[j]) {
        m->ent[m->slots[j] - 1].val = val;
        return MLXN_OK;
    }
    if (m->n == m->ent_cap) {
        size_t c = m->ent_cap ? m->ent_cap * 2 : 64;
        void *e = realloc(m->ent, c * sizeof *m->ent);
        if (!e) return oom();
        m->ent = e;
        m->ent_cap = c;
    }
    size_t off = m->keys.len;
    MLXN_TRY(tx_buf_add(&m->keys, k, len));
    MLXN_TRY(tx_buf_addc(&m->keys, '\0'));
    m->ent[m->n] = (struct tx_strent){off, (uint32_t)len, val};
    m->n++;
    m->slots[j] = (uint32_t)m->n;
    return MLXN_OK;
}

int tx_strmap_get(const tx_strmap *m, const char *k, size_t len, int32_t *val) {
    if (!m->cap) return 0;
    size_t j = strmap_find(m, k, len);
    if (!m->slots[j]) return 0;
    if (val) *val = m->ent[m->slots[j] - 1].val;
    return 1;
}

void tx_strmap_free(tx_strmap *m) {
    free(m->slots);
    free(m->ent);
    tx_buf_free(&m->keys);
    memset(m, 0, sizeof *m);
}

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
static size_t pair_slot(uint64_t key, size_t cap) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (cap - 1);
}

mlxn_status tx_pairmap_put(tx_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        struct tx_pairent *s = malloc(cap * sizeof *s);
        if (!s) return oom();
        for (size_t i = 0; i < cap; i++) s[i].key = ~0ull;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slots[i].key == ~0ull) continue;
            size_t j = pair_slot(m->slots[i].key, cap);
            while (s[j].key != ~0ull) j = (j + 1) & (cap - 1);
            s[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = s;
        m->cap = cap;
    }
    uint64_t key = pair_key(a, b);
    size_t j = pair_slot(key, m->cap);
    while (m->slots[j].key != ~0ull && m->slots[j].key != key) j = (j + 1) & (m->cap - 1);
    if (m->slots[j].key == ~0ull) m->n++;
    m->slots[j] = (struct tx_pairent){key, rank, id};
    return MLXN_OK;
}

int tx_pairmap_get(const tx_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *id) {
    if (!m->cap) return 0;
    uint64_t key = pair_key(a, b);
    size_t j = pair_slot(key, m->cap);
    for (;;) {
        if (m->slots[j].key == ~0ull) return 0;
        if (m->slots[j].key == key) {
            *rank = m->slots[j].rank;
            *id = m->slots[j].id;
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
}

void tx_pairmap_free(tx_pairmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

int tx_utf8_len(uint8_t c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

size_t tx_utf8_next(const char *s, size_t len, uint32_t *cp) {
    const uint8_t *u = (const uint8_t *)s;
    int n = tx_utf8_len(u[0]);
    if (n == 0 || (size_t)n > len) { *cp = 0xFFFD; return 1; }
    switch (n) {
    case 1: *cp = u[0]; break;
    case 2: *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F); break;
    case 3: *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F); break;
    default:
        *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) | ((uint32_t)(u[2] & 0x3F) << 6) |
              (u[3] & 0x3F);
    }
    return (size_t)n;
}

size_t tx_utf8_check(const char *s, size_t len) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        uint8_t c = u[i];
        if (c < 0x80) { i++; continue; }
        int n = tx_utf8_len(c);
        if (n == 0 || i + (size_t)n > len) return i;
        for (int k = 1; k < n; k++)
            if ((u[i + k] & 0xC0) != 0x80) return i;
        /* overlong 3/4-byte forms, surrogates, > U+10FFFF */
        if (c == 0xE0 && u[i + 1] < 0xA0) return i;
        if (c == 0xED && u[i + 1] >= 0xA0) return i;
        if (c == 0xF0 && u[i + 1] < 0x90) return i;
        if (c == 0xF4 && u[i + 1] >= 0x90) return i;
        i += (size_t)n;
    }
    return len;
}

bool tx_is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

bool tx_is_numeric(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

bool tx_is_word(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (c == 0x200C || c == 0x200D) return true;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return true;
    default:
        return false;
    }
}
