/* Private structures of the tokenizer: the pipeline of `tokenizers`
 * (added tokens -> normalizer -> pre-tokenizer -> BPE model ->
 * post-processor; decoders on the way back) as plain C data. */
#ifndef MLXN_TEXT_TOK_INTERNAL_H
#define MLXN_TEXT_TOK_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mlxn/text.h"
#include "text/text_util.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* Largest token id we accept (the id -> token table is dense). */
#define TX_MAX_ID (1 << 24)

/* ---- patterns (Split pre-tokenizer, Replace normalizer/decoder) ---- */
typedef struct tx_pattern {
    char *literal;       /* a plain string pattern, or NULL */
    size_t literal_len;
    pcre2_code *re;      /* a regex pattern (UTF + UCP, JIT when available) */
    bool jit;
} tx_pattern;

/* One match span list covering a string: (start, end, is_match). */
typedef struct tx_span {
    size_t start, end;
    bool match;
} tx_span;

mlxn_status tx_pattern_compile_regex(tx_pattern *p, const char *re, size_t len, const char *where);
mlxn_status tx_pattern_literal(tx_pattern *p, const char *s, size_t len);
void tx_pattern_free(tx_pattern *p);
/* Spans of `s` as `tokenizers`' Pattern::find_matches gives them. */
mlxn_status tx_pattern_spans(const tx_pattern *p, const char *s, size_t len, tx_vec *spans /* tx_span */);

/* ---- normalizers ---- */
typedef enum tx_norm_kind {
    TX_NORM_SEQUENCE, TX_NORM_NFC, TX_NORM_NFD, TX_NORM_NFKC, TX_NORM_NFKD,
    TX_NORM_LOWERCASE, TX_NORM_PREPEND, TX_NORM_REPLACE, TX_NORM_STRIP,
} tx_norm_kind;

typedef struct tx_normalizer {
    tx_norm_kind kind;
    struct tx_normalizer *children; /* SEQUENCE */
    size_t n_children;
    char *str; size_t str_len;      /* PREPEND text / REPLACE content */
    tx_pattern pat;                 /* REPLACE */
    bool left, right;               /* STRIP */
} tx_normalizer;

/* ---- pre-tokenizers ---- */
typedef enum tx_split_behavior {
    TX_SPLIT_REMOVED, TX_SPLIT_ISOLATED, TX_SPLIT_MERGED_PREV, TX_SPLIT_MERGED_NEXT, TX_SPLIT_CONTIGUOUS,
} tx_split_behavior;

typedef enum tx_pretok_kind {
    TX_PRE_SEQUENCE, TX_PRE_BYTELEVEL, TX_PRE_SPLIT, TX_PRE_DIGITS, TX_PRE_METASPACE,
} tx_pretok_kind;

typedef enum tx_prepend_scheme { TX_PREPEND_ALWAYS, TX_PREPEND_FIRST, TX_PREPEND_NEVER } tx_prepend_scheme;

typedef struct tx_pretok {
    tx_pretok_kind kind;
    struct tx_pretok *children;     /* SEQUENCE */
    size_t n_children;
    bool add_prefix_space, use_regex;     /* BYTELEVEL */
    tx_pattern pat;                 /* SPLIT (and BYTELEVEL's regex) */
    tx_split_behavior behavior;     /* SPLIT */
    bool invert;                    /* SPLIT */
    bool individual_digits;         /* DIGITS */
    uint32_t replacement;           /* METASPACE code point */
    tx_prepend_scheme scheme;       /* METASPACE */
    bool split;                     /* METASPACE */
} tx_pretok;

/* ---- decoders ---- */
typedef enum tx_dec_kind {
    TX_DEC_SEQUENCE, TX_DEC_BYTELEVEL, TX_DEC_METASPACE, TX_DEC_REPLACE, TX_DEC_BYTEFALLBACK,
    TX_DEC_FUSE, TX_DEC_STRIP,
} tx_dec_kind;

typedef struct tx_decoder {
    tx_dec_kind kind;
    struct tx_decoder *children;
    size_t n_children;
    uint32_t replacement;           /* METASPACE */
    tx_prepend_scheme scheme;       /* METASPACE */
    tx_pattern pat;                 /* REPLACE */
    char *content; size_t content_len; /* REPLACE */
    uint32_t strip_char;            /* STRIP */
    size_t strip_start, strip_stop; /* STRIP */
} tx_decoder;

/* ---- BPE model ---- */
typedef struct tx_bpe {
    tx_strmap vocab;                /* token -> id */
    tx_pairmap merges;              /* (left id, right id) -> (rank, merged id) */
    int32_t unk_id;                 /* -1 = no unk token */
    bool byte_fallback, fuse_unk, ignore_merges;
    char *prefix; size_t prefix_len;   /* continuing_subword_prefix */
    char *suffix; size_t suffix_len;   /* end_of_word_suffix */
    int32_t byte_ids[256];          /* "<0xXX>" ids, -1 when absent */
} tx_bpe;

/* ---- added tokens ---- */
typedef struct tx_added {
    char *content; size_t len;      /* as written in the file */
    char *norm; size_t norm_len;    /* normalized form (normalized tokens), else == content */
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} tx_added;

/* Leftmost-longest matcher over one class of added tokens. */
typedef struct tx_added_set {
    tx_strmap map;                  /* matching text -> index into tokens */
    size_t *lens;                   /* distinct lengths, longest first */
    size_t n_lens;
    uint8_t first[32];              /* bitmap of first bytes */
} tx_added_set;

/* ---- post-processor ---- */
typedef struct tx_post {
    /* The single-sequence template: ids before and after $A. */
    int32_t *pre; size_t n_pre;
    int32_t *post; size_t n_post;
} tx_post;

/* ---- the word cache ---- */
#define TX_CACHE_SLOTS 4096
#define TX_CACHE_MAX_WORD 256
typedef struct tx_cache_slot {
    char *word; size_t len;
    int32_t *ids; size_t n;
} tx_cache_slot;

struct mlxn_tokenizer {
    char *name;
    tx_bpe bpe;
    tx_normalizer *normalizer;      /* NULL = none */
    tx_pretok *pretok;              /* NULL = none */
    tx_decoder *decoder;            /* NULL = join with spaces */
    tx_post post;
    bool has_post;

    tx_added *added;                /* in file order */
    size_t n_added, added_cap;
    int64_t added_max_id;           /* -1 when none */
    tx_strmap added_by_content;     /* content -> index */
    tx_added_set set_raw, set_norm; /* non-normalized / normalized tokens */

    char **id_to_token;             /* [vocab_size]; NULL holes */
    int32_t *added_index;           /* [vocab_size]: index into added, or -1 */
    size_t vocab_size;

    int32_t bos_id, eos_id;
    char *bos_token, *eos_token;
    char *chat_template;

    pthread_mutex_t cache_lock;
    tx_cache_slot *cache;           /* [TX_CACHE_SLOTS] */
};

/* Lifecycle helpers (tok_core.c). */
mlxn_tokenizer *tx_tokenizer_alloc(const char *name);
/* After the model and added tokens are set: builds the id table, the
 * added-token matchers (normalizing normalized tokens) and the cache. */
mlxn_status tx_tokenizer_finish(mlxn_tokenizer *t);
/* Register an added token the way AddedVocabulary::add_tokens does. */
mlxn_status tx_tokenizer_add_token(mlxn_tokenizer *t, const char *content, size_t len, int32_t file_id,
                                   bool special, bool lstrip, bool rstrip, bool single_word, bool normalized);
void tx_normalizer_free(tx_normalizer *n);
void tx_pretok_free(tx_pretok *p);
void tx_decoder_free(tx_decoder *d);
void tx_bpe_free(tx_bpe *b);

/* Pipeline stages. */
mlxn_status tx_normalize(const tx_normalizer *n, const char *s, size_t len, tx_buf *out);
/* A piece of text during pre-tokenization: [off, off+len) of an arena,
 * `first` when it starts at offset 0 of the original input. */
typedef struct tx_piece {
    size_t off, len;
    bool first;
} tx_piece;
mlxn_status tx_pretokenize(const tx_pretok *p, tx_buf *arena, tx_vec *pieces /* tx_piece */);
/* BPE one word (already normalized and pre-tokenized) -> ids appended. */
mlxn_status tx_bpe_word(const tx_bpe *b, const char *w, size_t len, tx_vec *ids /* int32_t */);
mlxn_status tx_bpe_build_merge(tx_bpe *b, const char *a, size_t alen, const char *bstr, size_t blen,
                               uint32_t rank, const char *where);
/* Decoders on a list of token strings (tx_vec of tx_buf). */
mlxn_status tx_decode_chain(const tx_decoder *d, tx_vec *tokens);

/* The GPT-2 split regex of the ByteLevel pre-tokenizer. */
extern const char tx_gpt2_regex[];
/* Byte-level alphabet: byte -> code point, and back (-1 when not in it). */
uint32_t tx_byte_to_cp(uint8_t b);
int tx_cp_to_byte(uint32_t cp);

#endif
