/* GGUF reader on bad input: a valid file is built in memory (every field's
 * position recorded), then corrupted — truncated at every length, bad
 * magic/version, huge counts and lengths, bad type ids, dims that
 * overflow, misaligned / out-of-range / overlapping offsets, bad
 * alignment values, duplicate names, too-deep nesting — plus seeded random
 * byte damage. Each must give a clean status and a message naming the file
 * (and, where it is specific, the field); ASan/LSan builds check for
 * overreads and leaks. Parsed from an exact-size heap copy, so a read one
 * byte too far is an ASan error; some cases also go through a real file. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/gguf_internal.h"

#define NAME "corrupt.gguf"

/* ---- a tiny GGUF writer that remembers where each field is ---- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static size_t put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    size_t at = b->n;
    b->n += n;
    return at;
}
static size_t put_u32(buf *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    return put(b, x, 4);
}
static size_t put_u64(buf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    return put(b, x, 8);
}
static size_t put_str(buf *b, const char *s) {
    size_t at = put_u64(b, strlen(s));
    put(b, s, strlen(s));
    return at;
}
static void set_u32(buf *b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) b->p[at + (size_t)i] = (uint8_t)(v >> (8 * i));
}
static void set_u64(buf *b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; i++) b->p[at + (size_t)i] = (uint8_t)(v >> (8 * i));
}

/* Positions of the fields the corruptions patch. */
typedef struct layout {
    size_t version, n_tensors, n_kv;
    size_t arch_key_len, arch_val_len;        /* general.architecture */
    size_t align_type, align_val;             /* general.alignment: u32 32 */
    size_t bool_val;                          /* test.flag */
    size_t tok_elem_type, tok_count, tok1_len; /* tokens: string array of 3 */
    size_t u8arr_count;                       /* test.bytes: u8 array of 5 */
    size_t nest_inner_type;                   /* test.nest: [[1, 2], [3]] */
    size_t key_xa, key_xb;                    /* "test.xa", "test.xb": u8 values */
    size_t t_name[3], t_ndims[3], t_dims[3], t_type[3], t_off[3];
    size_t data_start;
} layout;

/* Tensors: "a" f32 [2, 4] (32 bytes), "b" q4_0 ne {64} (36 bytes), "c"
 * q6_K ne {256, 1} (210 bytes), at 0, 64, 128 of the data section, which
 * ends with the last tensor (no padding), so every truncation is bad. */
static const char *k_tname[3] = {"a", "b", "c"};
static const uint32_t k_ttype[3] = {MLXN_GGML_F32, MLXN_GGML_Q4_0, MLXN_GGML_Q6_K};
static const int k_tnd[3] = {2, 1, 2};
static const uint64_t k_tne[3][2] = {{4, 2}, {64, 0}, {256, 1}};
static const uint64_t k_toff[3] = {0, 64, 128};
static const size_t k_tbytes[3] = {32, 36, 210};

static buf build(layout *L) {
    buf b = {0};
    put(&b, "GGUF", 4);
    L->version = put_u32(&b, 3);
    L->n_tensors = put_u64(&b, 3);
    L->n_kv = put_u64(&b, 8);
    L->arch_key_len = put_str(&b, "general.architecture");
    put_u32(&b, MLXN_GGUF_STRING);
    L->arch_val_len = put_str(&b, "llama");
    put_str(&b, "general.alignment");
    L->align_type = put_u32(&b, MLXN_GGUF_U32);
    L->align_val = put_u32(&b, 32);
    put_str(&b, "test.flag");
    put_u32(&b, MLXN_GGUF_BOOL);
    L->bool_val = put(&b, "\1", 1);
    put_str(&b, "tokenizer.ggml.tokens");
    put_u32(&b, MLXN_GGUF_ARRAY);
    L->tok_elem_type = put_u32(&b, MLXN_GGUF_STRING);
    L->tok_count = put_u64(&b, 3);
    put_str(&b, "<s>");
    L->tok1_len = put_str(&b, "hello");
    put_str(&b, "");
    put_str(&b, "test.bytes");
    put_u32(&b, MLXN_GGUF_ARRAY);
    put_u32(&b, MLXN_GGUF_U8);
    L->u8arr_count = put_u64(&b, 5);
    put(&b, "\1\2\3\4\5", 5);
    put_str(&b, "test.nest");
    put_u32(&b, MLXN_GGUF_ARRAY);
    put_u32(&b, MLXN_GGUF_ARRAY);
    put_u64(&b, 2);
    L->nest_inner_type = put_u32(&b, MLXN_GGUF_I32);
    put_u64(&b, 2);
    put_u32(&b, 1);
    put_u32(&b, 2);
    put_u32(&b, MLXN_GGUF_I32);
    put_u64(&b, 1);
    put_u32(&b, 3);
    L->key_xa = put_str(&b, "test.xa");
    put_u32(&b, MLXN_GGUF_U8);
    put(&b, "\7", 1);
    L->key_xb = put_str(&b, "test.xb");
    put_u32(&b, MLXN_GGUF_U8);
    put(&b, "\10", 1);
    for (int t = 0; t < 3; t++) {
        L->t_name[t] = put_str(&b, k_tname[t]);
        L->t_ndims[t] = put_u32(&b, (uint32_t)k_tnd[t]);
        L->t_dims[t] = b.n;
        for (int d = 0; d < k_tnd[t]; d++) put_u64(&b, k_tne[t][d]);
        L->t_type[t] = put_u32(&b, k_ttype[t]);
        L->t_off[t] = put_u64(&b, k_toff[t]);
    }
    while (b.n % 32) put(&b, "", 1);
    L->data_start = b.n;
    uint8_t data[128 + 210];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 37 + 11);
    memset(data + 32, 0, 32);  /* padding after "a" */
    memset(data + 100, 0, 28); /* padding after "b" */
    put(&b, data, sizeof data);
    return b;
}

/* Parse an exact-size heap copy of the first n bytes. */
static mlxn_status parse_n(const uint8_t *p, size_t n, mlxn_gguf **out) {
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    mlxn_status st = mlxn_gguf_open_memory(NAME, copy, n, out);
    if (st == MLXN_OK) mlxn_gguf_free(*out);
    *out = NULL;
    free(copy);
    return st;
}

/* The buffer must be refused with `want`, naming the file and `needle`. */
static void expect_bad(const buf *b, mlxn_status want, const char *needle, const char *what) {
    mlxn_gguf *g = NULL;
    mlxn_clear_error();
    mlxn_status st = parse_n(b->p, b->n, &g);
    const char *msg = mlxn_last_error();
    CHECK(st == want, "%s: status %s, wanted %s (%s)", what, mlxn_status_str(st), mlxn_status_str(want), msg);
    CHECK(strncmp(msg, NAME ": ", strlen(NAME) + 2) == 0, "%s: message does not start with the file: '%s'", what,
          msg);
    CHECK(!needle || strstr(msg, needle), "%s: message lacks '%s': '%s'", what, needle ? needle : "", msg);
}

static void test_valid(void) {
    layout L;
    buf b = build(&L);
    uint8_t *copy = malloc(b.n);
    memcpy(copy, b.p, b.n);
    mlxn_gguf *g = NULL;
    CHECK_OK(mlxn_gguf_open_memory(NAME, copy, b.n, &g));
    if (g) {
        CHECK(mlxn_gguf_tensor_count(g) == 3 && mlxn_gguf_kv_count(g) == 8, "counts");
        CHECK(mlxn_gguf_data_offset(g) == L.data_start, "data offset %zu", mlxn_gguf_data_offset(g));
        for (int t = 0; t < 3; t++) {
            const mlxn_gguf_tensor_info *i = mlxn_gguf_tensor_find(g, k_tname[t]);
            CHECK(i && i->nbytes == k_tbytes[t] && i->offset == k_toff[t], "tensor %s", k_tname[t]);
        }
        const mlxn_gguf_value *v = mlxn_gguf_find(g, "tokenizer.ggml.tokens");
        size_t len = 9;
        const char *s = mlxn_gguf_array_str(v, 2, &len);
        CHECK(s && len == 0 && s[0] == '\0', "empty token");
        float out[256];
        CHECK_OK(mlxn_gguf_dequantize(g, mlxn_gguf_tensor_find(g, "c"), 0, 1, out));
    }
    mlxn_gguf_free(g);
    free(copy);
    /* the same bytes through a real file */
    char path[512];
    snprintf(path, sizeof path, "%s/gguf_corrupt_valid.gguf", MLXN_TEST_BINARY_DIR);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b.p, 1, b.n, f) == b.n, "write %s", path);
    if (f) fclose(f);
    CHECK_OK(mlxn_gguf_open(path, &g));
    mlxn_gguf_free(g);
    remove(path);
    free(b.p);
}

static void test_truncation(void) {
    layout L;
    buf b = build(&L);
    int ok = 0, unnamed = 0;
    for (size_t n = 0; n < b.n; n++) {
        mlxn_gguf *g = NULL;
        mlxn_clear_error();
        mlxn_status st = parse_n(b.p, n, &g);
        if (st == MLXN_OK) ok++;
        else if (strncmp(mlxn_last_error(), NAME ": ", strlen(NAME) + 2) != 0) unnamed++;
    }
    CHECK(ok == 0, "%d truncated lengths were accepted", ok);
    CHECK(unnamed == 0, "%d truncation messages do not name the file", unnamed);
    /* through a real file, a few lengths: the message names the path */
    char path[512];
    snprintf(path, sizeof path, "%s/gguf_corrupt_trunc.gguf", MLXN_TEST_BINARY_DIR);
    size_t lens[] = {0, 3, 4, 20, L.arch_val_len + 3, L.t_off[2] + 2, L.data_start, b.n - 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(b.p, 1, lens[i], f);
            fclose(f);
        }
        mlxn_gguf *g = (mlxn_gguf *)&g;
        CHECK_FAILS(mlxn_gguf_open(path, &g), MLXN_ERR_FORMAT);
        CHECK(g == NULL && strstr(mlxn_last_error(), "gguf_corrupt_trunc.gguf"), "length %zu: %s", lens[i],
              mlxn_last_error());
    }
    remove(path);
    free(b.p);
}

/* Build, patch one field, expect a refusal. */
#define BAD(patch, want, needle)                    \
    do {                                            \
        layout L;                                   \
        buf b = build(&L);                          \
        patch;                                      \
        expect_bad(&b, want, needle, #patch);       \
        free(b.p);                                  \
    } while (0)

static void test_header(void) {
    BAD(memcpy(b.p, "GGUG", 4), MLXN_ERR_FORMAT, "GGUF");
    BAD(memcpy(b.p, "\0\0\0\0", 4), MLXN_ERR_FORMAT, "GGUF");
    BAD(set_u32(&b, L.version, 1), MLXN_ERR_UNSUPPORTED, "version 1");
    BAD(set_u32(&b, L.version, 0), MLXN_ERR_FORMAT, "version");
    BAD(set_u32(&b, L.version, 4), MLXN_ERR_FORMAT, "version 4");
    BAD(set_u32(&b, L.version, 0x03000000u), MLXN_ERR_UNSUPPORTED, "big-endian");
    BAD(set_u64(&b, L.n_tensors, UINT64_MAX), MLXN_ERR_FORMAT, "tensor count");
    BAD(set_u64(&b, L.n_tensors, (uint64_t)1 << 40), MLXN_ERR_FORMAT, "tensor count");
    BAD(set_u64(&b, L.n_tensors, 4), MLXN_ERR_FORMAT, NULL);
    BAD(set_u64(&b, L.n_kv, UINT64_MAX), MLXN_ERR_FORMAT, "metadata count");
    BAD(set_u64(&b, L.n_kv, (uint64_t)1 << 60), MLXN_ERR_FORMAT, "metadata count");
    BAD(set_u64(&b, L.n_kv, 9), MLXN_ERR_FORMAT, NULL);
}

static void test_metadata(void) {
    BAD(set_u64(&b, L.arch_key_len, UINT64_MAX), MLXN_ERR_FORMAT, "metadata entry #0");
    BAD(set_u64(&b, L.arch_key_len, (uint64_t)1 << 40), MLXN_ERR_FORMAT, "past the end");
    BAD(set_u64(&b, L.arch_key_len, 0), MLXN_ERR_FORMAT, "empty");
    BAD(b.p[L.arch_key_len + 8 + 3] = 0, MLXN_ERR_FORMAT, "NUL");
    BAD(set_u64(&b, L.arch_val_len, UINT64_MAX - 3), MLXN_ERR_FORMAT, "general.architecture");
    BAD(set_u64(&b, L.arch_val_len, b.n), MLXN_ERR_FORMAT, "general.architecture");
    BAD(set_u32(&b, L.align_type, 13), MLXN_ERR_FORMAT, "type id 13");
    BAD(set_u32(&b, L.align_type, 0xFFFFFFFFu), MLXN_ERR_FORMAT, "general.alignment");
    BAD(set_u32(&b, L.align_type, MLXN_GGUF_I32), MLXN_ERR_FORMAT, "expected u32");
    BAD(set_u32(&b, L.align_val, 0), MLXN_ERR_FORMAT, "power of two");
    BAD(set_u32(&b, L.align_val, 48), MLXN_ERR_FORMAT, "power of two");
    BAD(set_u32(&b, L.align_val, 0x80000001u), MLXN_ERR_FORMAT, "power of two");
    BAD(set_u32(&b, L.align_val, 0x80000000u), MLXN_ERR_FORMAT, "past the end"); /* data section off the file */
    BAD(set_u32(&b, L.align_val, 64), MLXN_ERR_FORMAT, "tensor 'c'"); /* the data section moves 32 on: c ends past EOF */
    BAD(b.p[L.bool_val] = 2, MLXN_ERR_FORMAT, "test.flag");
    BAD(set_u32(&b, L.tok_elem_type, 99), MLXN_ERR_FORMAT, "tokenizer.ggml.tokens");
    BAD(set_u32(&b, L.tok_elem_type, MLXN_GGUF_ARRAY), MLXN_ERR_FORMAT, "tokenizer.ggml.tokens");
    BAD(set_u64(&b, L.tok_count, UINT64_MAX), MLXN_ERR_FORMAT, "tokenizer.ggml.tokens");
    BAD(set_u64(&b, L.tok_count, (uint64_t)1 << 61), MLXN_ERR_FORMAT, "remain");
    BAD(set_u64(&b, L.tok1_len, UINT64_MAX), MLXN_ERR_FORMAT, "element 1");
    BAD(set_u64(&b, L.tok1_len, 1000), MLXN_ERR_FORMAT, "element 1");
    BAD(set_u64(&b, L.u8arr_count, UINT64_MAX), MLXN_ERR_FORMAT, "test.bytes");
    BAD(set_u64(&b, L.u8arr_count, b.n), MLXN_ERR_FORMAT, "test.bytes");
    BAD(set_u32(&b, L.nest_inner_type, 77), MLXN_ERR_FORMAT, "element 0");
    BAD(set_u32(&b, L.nest_inner_type, MLXN_GGUF_I64), MLXN_ERR_FORMAT, "test.nest"); /* misparse follows */
    BAD(memcpy(b.p + L.key_xb + 8, "test.xa", 7), MLXN_ERR_FORMAT, "'test.xa' appears twice");
}

/* A tensor with a zero dim holds no bytes and overlaps nothing. */
static void test_empty_tensor(void) {
    layout L;
    buf b = build(&L);
    set_u64(&b, L.t_dims[2] + 8, 0); /* c: ne {256, 0} */
    set_u64(&b, L.t_off[2], 64);     /* where b is */
    mlxn_gguf *g = NULL;
    uint8_t *copy = malloc(b.n);
    memcpy(copy, b.p, b.n);
    CHECK_OK(mlxn_gguf_open_memory(NAME, copy, b.n, &g));
    const mlxn_gguf_tensor_info *t = mlxn_gguf_tensor_find(g, "c");
    CHECK(t && t->numel == 0 && t->nbytes == 0 && t->n_rows == 0 && t->row_bytes == 210, "empty tensor c");
    float out[1];
    if (t) CHECK_OK(mlxn_gguf_dequantize(g, t, 0, 0, out));
    mlxn_gguf_free(g);
    free(copy);
    free(b.p);
}

static void test_tensors(void) {
    BAD(set_u64(&b, L.t_name[1], UINT64_MAX), MLXN_ERR_FORMAT, "tensor info #1");
    BAD(set_u64(&b, L.t_name[1], 0), MLXN_ERR_FORMAT, "empty");
    BAD(b.p[L.t_name[1] + 8] = 0, MLXN_ERR_FORMAT, "NUL");
    BAD(b.p[L.t_name[1] + 8] = 'a', MLXN_ERR_FORMAT, "'a' appears twice");
    BAD(set_u32(&b, L.t_ndims[0], 5), MLXN_ERR_FORMAT, "n_dims");
    BAD(set_u32(&b, L.t_ndims[0], 0xFFFFFFFFu), MLXN_ERR_FORMAT, "tensor 'a'");
    BAD(set_u64(&b, L.t_dims[0], (uint64_t)1 << 63), MLXN_ERR_FORMAT, "too large");
    BAD((set_u64(&b, L.t_dims[2], (uint64_t)1 << 40), set_u64(&b, L.t_dims[2] + 8, (uint64_t)1 << 40)),
        MLXN_ERR_FORMAT, "overflow");
    BAD(set_u64(&b, L.t_dims[0], (uint64_t)1 << 61), MLXN_ERR_FORMAT, "overflow"); /* numel fits, bytes don't */
    BAD(set_u64(&b, L.t_dims[0], (uint64_t)1 << 40), MLXN_ERR_FORMAT, "tensor 'a'"); /* past the end */
    BAD((set_u64(&b, L.t_dims[0], 1ull << 62), set_u64(&b, L.t_dims[0] + 8, 0)), MLXN_ERR_FORMAT,
        "overflows"); /* no values, but one row's byte size overflows */
    BAD(set_u64(&b, L.t_dims[1], 48), MLXN_ERR_FORMAT, "multiple of the q4_0 block size");
    BAD(set_u32(&b, L.t_type[1], 31), MLXN_ERR_FORMAT, "ggml type id 31");
    BAD(set_u32(&b, L.t_type[1], 0xFFFFFFFFu), MLXN_ERR_FORMAT, "tensor 'b'");
    BAD(set_u32(&b, L.t_type[1], 1000), MLXN_ERR_FORMAT, "tensor 'b'");
    BAD(set_u64(&b, L.t_dims[0], 12), MLXN_ERR_FORMAT, "overlap"); /* a grows to 96 bytes, into b */
    BAD(set_u64(&b, L.t_off[1], 68), MLXN_ERR_FORMAT, "not a multiple of the alignment");
    BAD(set_u64(&b, L.t_off[1], 1u << 20), MLXN_ERR_FORMAT, "tensor 'b'");
    BAD(set_u64(&b, L.t_off[1], UINT64_MAX - 31), MLXN_ERR_FORMAT, "tensor 'b'");
    BAD(set_u64(&b, L.t_off[2], 160), MLXN_ERR_FORMAT, "past its end");
    BAD(set_u64(&b, L.t_off[2], 64), MLXN_ERR_FORMAT, "overlap");
    BAD(set_u64(&b, L.t_off[1], 0), MLXN_ERR_FORMAT, "overlap");
}

/* Arrays nested `depth` deep around one u8. */
static buf nested(int depth) {
    buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, 1);
    put_str(&b, "deep");
    put_u32(&b, MLXN_GGUF_ARRAY);
    for (int i = 0; i < depth - 1; i++) {
        put_u32(&b, MLXN_GGUF_ARRAY);
        put_u64(&b, 1);
    }
    put_u32(&b, MLXN_GGUF_U8);
    put_u64(&b, 1);
    put(&b, "\5", 1);
    return b;
}

static void test_nesting(void) {
    buf ok = nested(8);
    mlxn_gguf *g = NULL;
    CHECK(parse_n(ok.p, ok.n, &g) == MLXN_OK, "8-deep arrays: %s", mlxn_last_error());
    free(ok.p);
    buf deep = nested(9);
    expect_bad(&deep, MLXN_ERR_FORMAT, "nested", "9-deep arrays");
    free(deep.p);
    buf deeper = nested(5000);
    expect_bad(&deeper, MLXN_ERR_FORMAT, "nested", "5000-deep arrays");
    free(deeper.p);
}

/* Seeded random damage: overwrite bytes or whole u64 fields. Whatever the
 * result, no crash (ASan), no leak, and a message on failure. */
static void test_random(void) {
    layout L;
    buf base = build(&L);
    int accepted = 0, unnamed = 0;
    for (int it = 0; it < 3000; it++) {
        buf b = {malloc(base.n), base.n, base.n};
        memcpy(b.p, base.p, base.n);
        int edits = 1 + (int)(t_rand_u64() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)(t_rand_u64() % L.data_start);
            if (t_rand_u64() & 1) {
                b.p[at] = (uint8_t)t_rand_u64();
            } else if (at + 8 <= b.n) {
                static const uint64_t vals[] = {0, 1, 31, 32, 255, 0x7FFFFFFFFFFFFFFFull, UINT64_MAX, 1ull << 32};
                set_u64(&b, at, vals[t_rand_u64() % 8]);
            }
        }
        size_t n = (t_rand_u64() % 4 == 0) ? (size_t)(t_rand_u64() % (b.n + 1)) : b.n;
        mlxn_gguf *g = NULL;
        mlxn_clear_error();
        mlxn_status st = parse_n(b.p, n, &g);
        if (st == MLXN_OK) accepted++;
        else if (strncmp(mlxn_last_error(), NAME ": ", strlen(NAME) + 2) != 0) unnamed++;
        free(b.p);
    }
    CHECK(unnamed == 0, "%d random corruptions failed without naming the file", unnamed);
    printf("random damage: %d of 3000 variants still parsed (edits in string bytes or padding)\n", accepted);
    free(base.p);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_gguf_corrupt");
    test_valid();
    test_truncation();
    test_header();
    test_metadata();
    test_tensors();
    test_empty_tensor();
    test_nesting();
    test_random();
    return t_finish();
}
