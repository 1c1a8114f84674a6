/* Small containers and UTF-8 helpers shared by the tokenizer, the chat
 * renderer and the sampler: a growable byte buffer, a growable array, a
 * string -> int32 hash map and an (int32, int32) -> (rank, id) hash map. */
#ifndef MLXN_TEXT_UTIL_H
#define MLXN_TEXT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mlxn/status.h"

/* Growable bytes, always NUL-terminated when s != NULL. */
typedef struct tx_buf {
    char *s;
    size_t len, cap;
} tx_buf;

mlxn_status tx_buf_reserve(tx_buf *b, size_t extra);
mlxn_status tx_buf_add(tx_buf *b, const void *p, size_t n);
mlxn_status tx_buf_addc(tx_buf *b, char c);
mlxn_status tx_buf_adds(tx_buf *b, const char *s);
/* Append the UTF-8 encoding of code point cp. */
mlxn_status tx_buf_add_cp(tx_buf *b, uint32_t cp);
void tx_buf_free(tx_buf *b);

/* Growable array of fixed-size elements. */
typedef struct tx_vec {
    void *v;
    size_t n, cap, elem;
} tx_vec;

void tx_vec_init(tx_vec *a, size_t elem);
mlxn_status tx_vec_push(tx_vec *a, const void *e);
mlxn_status tx_vec_reserve(tx_vec *a, size_t extra);
void tx_vec_free(tx_vec *a);
#define TX_AT(vec, type, i) (((type *)(vec)->v)[i])

/* String -> int32 open-addressing map; keys are copied into an arena. */
typedef struct tx_strmap {
    uint32_t *slots;     /* [cap]: entry index + 1, 0 = empty */
    size_t cap;
    struct tx_strent { size_t off; uint32_t len; int32_t val; } *ent;
    size_t n, ent_cap;
    tx_buf keys;
} tx_strmap;

/* Insert or overwrite. */
mlxn_status tx_strmap_put(tx_strmap *m, const char *k, size_t len, int32_t val);
/* 1 and *val when present. */
int tx_strmap_get(const tx_strmap *m, const char *k, size_t len, int32_t *val);
void tx_strmap_free(tx_strmap *m);
/* The key of entry i (0 <= i < n), NUL-terminated. */
static inline const char *tx_strmap_key(const tx_strmap *m, size_t i) { return m->keys.s + m->ent[i].off; }

/* (a, b) -> (rank, id) open-addressing map for BPE merges. */
typedef struct tx_pairmap {
    struct tx_pairent { uint64_t key; uint32_t rank; int32_t id; } *slots; /* key ~0 = empty */
    size_t cap, n;
} tx_pairmap;

mlxn_status tx_pairmap_put(tx_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id);
int tx_pairmap_get(const tx_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *id);
void tx_pairmap_free(tx_pairmap *m);

/* UTF-8. tx_utf8_next decodes one code point of valid UTF-8 at s (len > 0)
 * and returns its byte length. tx_utf8_check returns the offset of the
 * first invalid byte, or len when all is valid (no surrogates, no
 * overlongs, <= U+10FFFF). tx_utf8_len is the length of a sequence from
 * its lead byte (0 for a continuation/invalid lead). */
size_t tx_utf8_next(const char *s, size_t len, uint32_t *cp);
size_t tx_utf8_check(const char *s, size_t len);
int tx_utf8_len(uint8_t lead);

/* Unicode classes as Rust's char methods give them (via utf8proc). */
bool tx_is_whitespace(uint32_t cp);   /* White_Space */
bool tx_is_numeric(uint32_t cp);      /* Nd, Nl, No */
bool tx_is_word(uint32_t cp);         /* regex \w: L*, M*, Nd, Pc, Join_Control */

uint64_t tx_hash(const void *p, size_t n);

#endif
