/* Bad input for the safetensors reader: a corpus of broken files built at
 * run time in a temporary directory ($TMPDIR or /tmp), each opened and
 * checked for the right status and a message naming the file (and the
 * tensor or field where there is one). Under the ASan build this also
 * proves that no broken file crashes the reader or leaks memory.
 *
 * Kinds: every truncation of a valid MLX-written file, header lengths
 * past the end / absurd / zero, garbage and non-object JSON, unknown or
 * unsupported dtypes, shape/size mismatches, offsets outside the data,
 * overlapping tensors, negative, fractional and out-of-range numbers,
 * duplicate keys, NUL bytes in names, bad metadata, and shard directories
 * with a broken index, a missing shard, or a tensor held twice. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "io/st_internal.h"

static char tmpdir[1024];

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot create %s", path);
    if (!f) return;
    CHECK(fwrite(p, 1, n, f) == n, "short write to %s", path);
    fclose(f);
}

/* [u64 hlen][header][data_len bytes of 0x5A]; hlen overrides strlen(header) when not ~0. */
static void write_st(const char *path, uint64_t hlen, const char *header, size_t header_n, size_t data_len) {
    size_t n = 8 + header_n + data_len;
    uint8_t *b = malloc(n ? n : 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(b + 8, header, header_n);
    memset(b + 8 + header_n, 0x5A, data_len);
    write_bytes(path, b, n);
    free(b);
}

/* Open `path`, expect `want` and a message containing the file name and `also` (when not NULL). */
static void expect_fail(const char *path, mlxn_status want, const char *also, const char *what) {
    mlxn_weights *w = NULL;
    mlxn_clear_error();
    mlxn_status st = mlxn_weights_open(path, &w);
    const char *msg = mlxn_last_error();
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    CHECK(st == want, "%s: status %s, want %s (message '%s')", what, mlxn_status_str(st), mlxn_status_str(want), msg);
    CHECK(strstr(msg, base) != NULL, "%s: message '%s' does not name %s", what, msg, base);
    CHECK(!also || strstr(msg, also) != NULL, "%s: message '%s' does not mention '%s'", what, msg, also);
    CHECK(w == NULL, "%s: weight set returned on failure", what);
    mlxn_weights_free(w);
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "cannot read %s", path);
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* Every prefix of a valid file written by MLX is malformed (MLX lays the
 * data out with no slack, so even the last byte is needed). */
static void test_truncations(void) {
    char src[1200], dst[1200];
    snprintf(src, sizeof src, "%s/safetensors/dtypes.safetensors", MLXN_TEST_GOLDEN_DIR);
    size_t n = 0;
    uint8_t *b = read_file(src, &n);
    if (!b) return;
    path_of(dst, sizeof dst, "trunc.safetensors");
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        write_bytes(dst, b, len);
        mlxn_weights *w = NULL;
        mlxn_status st = mlxn_weights_open(dst, &w);
        if (st != MLXN_ERR_FORMAT || !strstr(mlxn_last_error(), "trunc.safetensors") || w) {
            if (bad++ < 5)
                CHECK(0, "truncated to %zu of %zu bytes: %s '%s'", len, n, mlxn_status_str(st), mlxn_last_error());
        }
        mlxn_weights_free(w);
    }
    CHECK(bad == 0, "%d truncations were not rejected properly", bad);
    /* and the whole file opens, so the loop above tested truncation only */
    write_bytes(dst, b, n);
    mlxn_weights *w = NULL;
    CHECK_OK(mlxn_weights_open(dst, &w));
    mlxn_weights_free(w);
    /* the same from memory (the fuzz target's path) */
    for (size_t len = 0; len < n; len += 7) {
        mlxn_weights *m = NULL;
        CHECK(mlxn_weights_open_memory("mem.safetensors", b, len, &m) == MLXN_ERR_FORMAT && !m,
              "memory truncated to %zu accepted", len);
        mlxn_weights_free(m);
    }
    CHECK_OK(mlxn_weights_open_memory("mem.safetensors", b, n, &w));
    CHECK(mlxn_weights_count(w) == 18, "memory open: %zu tensors", mlxn_weights_count(w));
    mlxn_weights_free(w);
    free(b);
    unlink(dst);
}

typedef struct {
    const char *label;
    const char *header; /* JSON text */
    size_t data_len;
    mlxn_status want;
    const char *also; /* a substring the message must hold (tensor or field), or NULL */
} bad_header;

#define T1 "\"dtype\":\"F32\",\"shape\":[2,2]"
static const bad_header bad_headers[] = {
    {"garbage JSON", "this is not json", 16, MLXN_ERR_FORMAT, "JSON"},
    {"cut JSON", "{\"a\":{\"dtype\":\"F32\",", 16, MLXN_ERR_FORMAT, "JSON"},
    {"empty header", "", 0, MLXN_ERR_FORMAT, "JSON"},
    {"binary header", "\xff\xfe\x00\x01", 0, MLXN_ERR_FORMAT, "JSON"},
    {"array header", "[1,2,3]", 0, MLXN_ERR_FORMAT, "not a JSON object"},
    {"string header", "\"x\"", 0, MLXN_ERR_FORMAT, "JSON"},
    {"entry not object", "{\"w\":[1,2]}", 0, MLXN_ERR_FORMAT, "'w'"},
    {"unknown dtype", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, MLXN_ERR_FORMAT, "Q4"},
    {"unsupported dtype", "{\"w\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1, MLXN_ERR_UNSUPPORTED,
     "'w'"},
    {"lower-case dtype", "{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MLXN_ERR_FORMAT, "'w'"},
    {"dtype not string", "{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MLXN_ERR_FORMAT, "dtype"},
    {"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MLXN_ERR_FORMAT, "dtype"},
    {"missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, MLXN_ERR_FORMAT, "shape"},
    {"shape not array", "{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16, MLXN_ERR_FORMAT, "shape"},
    {"missing offsets", "{\"w\":{" T1 "}}", 16, MLXN_ERR_FORMAT, "data_offsets"},
    {"three offsets", "{\"w\":{" T1 ",\"data_offsets\":[0,16,16]}}", 16, MLXN_ERR_FORMAT, "data_offsets"},
    {"size mismatch", "{\"w\":{" T1 ",\"data_offsets\":[0,12]}}", 16, MLXN_ERR_FORMAT, "f32[2, 2] needs 16"},
    {"size mismatch bf16",
     "{\"model.embed.weight\":{\"dtype\":\"BF16\",\"shape\":[10,10],\"data_offsets\":[0,100]}}", 200,
     MLXN_ERR_FORMAT, "'model.embed.weight': data_offsets [0, 100] hold 100 bytes but bf16[10, 10] needs 200"},
    {"offsets past data", "{\"w\":{" T1 ",\"data_offsets\":[8,24]}}", 16, MLXN_ERR_FORMAT, "past the 16-byte"},
    {"offsets reversed", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 16, MLXN_ERR_FORMAT, "'w'"},
    {"negative offset", "{\"w\":{" T1 ",\"data_offsets\":[-16,0]}}", 16, MLXN_ERR_FORMAT, "data_offsets"},
    {"float offsets", "{\"w\":{" T1 ",\"data_offsets\":[0.0,16.0]}}", 16, MLXN_ERR_FORMAT, "data_offsets"},
    {"string offsets", "{\"w\":{" T1 ",\"data_offsets\":[\"0\",\"16\"]}}", 16, MLXN_ERR_FORMAT, "data_offsets"},
    {"huge offset", "{\"w\":{" T1 ",\"data_offsets\":[0,18446744073709551615]}}", 16, MLXN_ERR_FORMAT, "JSON"},
    {"negative dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,-2],\"data_offsets\":[0,16]}}", 16, MLXN_ERR_FORMAT,
     "shape[0]"},
    {"float dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0,2],\"data_offsets\":[0,16]}}", 16, MLXN_ERR_FORMAT,
     "shape[0]"},
    {"shape overflow",
     "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],\"data_offsets\":[0,0]}}", 0,
     MLXN_ERR_FORMAT, "overflow"},
    {"shape overflow with size", "{\"w\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}",
     0, MLXN_ERR_FORMAT, "overflow"},
    {"too many dims", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
     MLXN_ERR_UNSUPPORTED, "dimensions"},
    {"overlap", "{\"a\":{" T1 ",\"data_offsets\":[0,16]},\"b\":{" T1 ",\"data_offsets\":[8,24]}}", 24, MLXN_ERR_FORMAT,
     "overlap"},
    {"identical ranges", "{\"a\":{" T1 ",\"data_offsets\":[0,16]},\"b\":{" T1 ",\"data_offsets\":[0,16]}}", 16,
     MLXN_ERR_FORMAT, "overlap"},
    {"nested overlap",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[32],\"data_offsets\":[0,32]},\"b\":{\"dtype\":\"U8\",\"shape\":[4],"
     "\"data_offsets\":[20,24]},\"c\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[28,32]}}",
     32, MLXN_ERR_FORMAT, "overlap"},
    {"duplicate key", "{\"w\":{" T1 ",\"data_offsets\":[0,16]},\"w\":{" T1 ",\"data_offsets\":[16,32]}}", 32,
     MLXN_ERR_FORMAT, "duplicate"},
    {"NUL escape in name", "{\"a\\u0000b\":{" T1 ",\"data_offsets\":[0,16]}}", 16, MLXN_ERR_FORMAT, "JSON"},
    {"metadata array", "{\"__metadata__\":[1],\"w\":{" T1 ",\"data_offsets\":[0,16]}}", 16, MLXN_ERR_FORMAT,
     "__metadata__"},
    {"metadata number", "{\"__metadata__\":{\"format\":1},\"w\":{" T1 ",\"data_offsets\":[0,16]}}", 16,
     MLXN_ERR_FORMAT, "'format'"},
};

static void test_bad_headers(void) {
    char p[1200];
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        const bad_header *c = &bad_headers[i];
        char name[64];
        snprintf(name, sizeof name, "bad%02zu.safetensors", i);
        path_of(p, sizeof p, name);
        size_t hn = strlen(c->header);
        if (!strcmp(c->label, "binary header")) hn = 4;
        write_st(p, hn, c->header, hn, c->data_len);
        expect_fail(p, c->want, c->also, c->label);
        unlink(p);
    }
    /* a raw NUL byte inside a name (the header length counts past it) */
    static const char nul_name[] = "{\"a\0b\":{" T1 ",\"data_offsets\":[0,16]}}";
    path_of(p, sizeof p, "nul.safetensors");
    write_st(p, sizeof nul_name - 1, nul_name, sizeof nul_name - 1, 16);
    expect_fail(p, MLXN_ERR_FORMAT, "JSON", "raw NUL in name");
    unlink(p);
}

static void test_bad_lengths(void) {
    static const char hdr[] = "{\"w\":{" T1 ",\"data_offsets\":[0,16]}}";
    size_t hn = sizeof hdr - 1;
    char p[1200];
    path_of(p, sizeof p, "len.safetensors");
    write_st(p, hn, hdr, hn, 16);
    mlxn_weights *w = NULL;
    CHECK_OK(mlxn_weights_open(p, &w)); /* the unbroken file opens */
    mlxn_weights_free(w);
    const struct {
        uint64_t hlen;
        const char *also;
    } cases[] = {
        {hn + 16 + 1, "past the end"},          /* one byte past EOF */
        {(uint64_t)-1, "absurd"},              /* 2^64 - 1 */
        {(uint64_t)1 << 63, "absurd"},
        {MLXN_ST_MAX_HEADER + 1, "absurd"},
        {0, "JSON"},
        {hn - 1, "JSON"},                      /* cuts the closing brace */
        {hn + 16, "JSON"},                     /* the data swallowed into the header is not JSON */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st(p, cases[i].hlen, hdr, hn, 16);
        char what[64];
        snprintf(what, sizeof what, "header length %llu", (unsigned long long)cases[i].hlen);
        expect_fail(p, MLXN_ERR_FORMAT, cases[i].also, what);
    }
    write_bytes(p, "\x10\x00\x00", 3);
    expect_fail(p, MLXN_ERR_FORMAT, "too short", "3-byte file");
    write_bytes(p, "", 0);
    expect_fail(p, MLXN_ERR_FORMAT, "too short", "empty file");
    unlink(p);
}

static void test_not_a_file(void) {
    char p[1200];
    path_of(p, sizeof p, "missing.safetensors");
    expect_fail(p, MLXN_ERR_IO, NULL, "missing file");
}

/* Shard directories: [dir]/model-0000{1,2}-of-00002.safetensors + index. */
static void make_shard(const char *dir, const char *file, const char *tensor) {
    char p[1400], hdr[256];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    snprintf(hdr, sizeof hdr, "{\"%s\":{" T1 ",\"data_offsets\":[0,16]}}", tensor);
    write_st(p, strlen(hdr), hdr, strlen(hdr), 16);
}

static void write_text(const char *dir, const char *file, const char *text) {
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    write_bytes(p, text, strlen(text));
}

static void remove_dir(const char *dir) {
    static const char *const names[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                        "model.safetensors.index.json"};
    char p[1400];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    CHECK(rmdir(dir) == 0, "could not remove %s", dir);
}

static void test_shard_dirs(void) {
    char d[1200];
    path_of(d, sizeof d, "model_dir");
    CHECK(mkdir(d, 0755) == 0, "mkdir %s", d);
    mlxn_weights *w = NULL;
    /* empty directory */
    mlxn_clear_error();
    CHECK(mlxn_weights_open(d, &w) == MLXN_ERR_IO && strstr(mlxn_last_error(), "model_dir") &&
              strstr(mlxn_last_error(), "model*.safetensors"),
          "empty directory: '%s'", mlxn_last_error());
    make_shard(d, "model-00001-of-00002.safetensors", "a");
    make_shard(d, "model-00002-of-00002.safetensors", "b");
    /* good, with and without an index */
    CHECK_OK(mlxn_weights_open(d, &w));
    CHECK(mlxn_weights_count(w) == 2, "two shards: %zu tensors", mlxn_weights_count(w));
    mlxn_weights_free(w);
    const char *good_index = "{\"metadata\":{},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                             "\"b\":\"model-00002-of-00002.safetensors\"}}";
    write_text(d, "model.safetensors.index.json", good_index);
    CHECK_OK(mlxn_weights_open(d, &w));
    mlxn_weights_free(w);

    const struct {
        const char *index;
        const char *also;
    } bad_index[] = {
        {"{\"weight_map\":", "not valid JSON"},
        {"[]", "weight_map"},
        {"{\"weight_map\":[1]}", "weight_map"},
        {"{\"weight_map\":{\"a\":3}}", "'a'"},
        {"{\"weight_map\":{\"a\":\"model-00002-of-00002.safetensors\"}}", "'a'"},     /* wrong shard */
        {"{\"weight_map\":{\"c\":\"model-00001-of-00002.safetensors\"}}", "'c'"},     /* tensor absent */
        {"{\"weight_map\":{\"a\":\"model-00003-of-00003.safetensors\"}}", "model-00003"}, /* shard missing */
    };
    for (size_t i = 0; i < sizeof bad_index / sizeof bad_index[0]; i++) {
        write_text(d, "model.safetensors.index.json", bad_index[i].index);
        mlxn_clear_error();
        w = NULL;
        mlxn_status st = mlxn_weights_open(d, &w);
        const char *m = mlxn_last_error();
        CHECK(st == MLXN_ERR_FORMAT && !w && strstr(m, "model.safetensors.index.json") && strstr(m, bad_index[i].also),
              "bad index %zu: %s '%s'", i, mlxn_status_str(st), m);
        mlxn_weights_free(w);
    }
    write_text(d, "model.safetensors.index.json", good_index);

    /* the index names a shard that was deleted */
    char p[1400];
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
    unlink(p);
    mlxn_clear_error();
    CHECK(mlxn_weights_open(d, &w) == MLXN_ERR_FORMAT && strstr(mlxn_last_error(), "model-00002-of-00002"),
          "missing shard: '%s'", mlxn_last_error());
    /* one tensor in two shards: the message names both files */
    make_shard(d, "model-00002-of-00002.safetensors", "a");
    mlxn_clear_error();
    CHECK(mlxn_weights_open(d, &w) == MLXN_ERR_FORMAT && strstr(mlxn_last_error(), "model-00001-of-00002") &&
              strstr(mlxn_last_error(), "model-00002-of-00002") && strstr(mlxn_last_error(), "'a'"),
          "duplicate across shards: '%s'", mlxn_last_error());
    /* a corrupt shard: its own message */
    write_bytes(p, "\x05\0\0\0\0\0\0\0{\"a\":", 13);
    expect_fail(p, MLXN_ERR_FORMAT, "JSON", "corrupt shard alone");
    mlxn_clear_error();
    CHECK(mlxn_weights_open(d, &w) == MLXN_ERR_FORMAT && strstr(mlxn_last_error(), "model-00002-of-00002"),
          "corrupt shard in directory: '%s'", mlxn_last_error());
    remove_dir(d);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_safetensors_corrupt");
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/mlxn_corrupt_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp %s failed", tmpdir);
        return t_finish();
    }
    test_truncations();
    test_bad_headers();
    test_bad_lengths();
    test_not_a_file();
    test_shard_dirs();
    CHECK(rmdir(tmpdir) == 0, "temporary directory %s not empty at the end", tmpdir);
    return t_finish();
}
