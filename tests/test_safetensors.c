/* safetensors reader and writer against files written by real MLX
 * (tests/golden/gen_safetensors.py): every dtype MLX writes, odd shapes,
 * 0-d and empty tensors, metadata, a sharded directory with its index,
 * CPU views, and our writer's output compared with MLX's for the same
 * tensors. Expected values come from the formula stated in the script
 * (recomputed here, never read through the code under test):
 *   k = (i * 7) % 23 - 11
 *   bool: k != 0; u8/u16/u32: k + 11; i8/i16/i32: k;
 *   u64: (k + 11) * 2^40 + i; i64: k * 2^40 - i;
 *   f16/bf16/f32: k * 0.25; c64: (k * 0.25, -k * 0.5). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

typedef struct {
    const char *name;
    mlxn_dtype dt;
    int ndim;
    int64_t shape[4];
} spec;

/* The same table as TENSORS in gen_safetensors.py. */
static const spec dtypes_file[] = {
    {"t_bool", MLXN_DTYPE_BOOL, 3, {3, 5, 7}}, {"t_u8", MLXN_DTYPE_U8, 1, {13}},
    {"t_u16", MLXN_DTYPE_U16, 2, {3, 5}},      {"t_u32", MLXN_DTYPE_U32, 3, {2, 3, 5}},
    {"t_u64", MLXN_DTYPE_U64, 1, {7}},         {"t_i8", MLXN_DTYPE_I8, 3, {3, 5, 7}},
    {"t_i16", MLXN_DTYPE_I16, 2, {1, 9}},      {"t_i32", MLXN_DTYPE_I32, 2, {5, 3}},
    {"t_i64", MLXN_DTYPE_I64, 3, {2, 1, 3}},   {"t_f16", MLXN_DTYPE_F16, 3, {3, 5, 7}},
    {"t_bf16", MLXN_DTYPE_BF16, 2, {7, 5}},    {"t_f32", MLXN_DTYPE_F32, 4, {3, 1, 5, 1}},
    {"t_c64", MLXN_DTYPE_C64, 1, {4}},         {"scalar_f32", MLXN_DTYPE_F32, 0, {0}},
    {"scalar_i32", MLXN_DTYPE_I32, 0, {0}},    {"empty_f32", MLXN_DTYPE_F32, 2, {0, 4}},
    {"empty_bf16", MLXN_DTYPE_BF16, 3, {2, 0, 3}}, {"odd_u8", MLXN_DTYPE_U8, 1, {3}},
};
#define N_DTYPES_FILE (sizeof dtypes_file / sizeof dtypes_file[0])

static const spec shard_tensors[] = {
    {"model.embed_tokens.weight", MLXN_DTYPE_BF16, 2, {7, 5}},
    {"model.layers.0.w", MLXN_DTYPE_F32, 2, {3, 4}},
    {"model.layers.1.w", MLXN_DTYPE_F16, 2, {4, 3}},
    {"lm_head.weight", MLXN_DTYPE_BF16, 2, {5, 7}},
};
static const char *const shard_files[] = {"model-00001-of-00002.safetensors", "model-00001-of-00002.safetensors",
                                          "model-00002-of-00002.safetensors", "model-00002-of-00002.safetensors"};

static int64_t numel(const spec *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->shape[i];
    return n;
}

/* Element i of the formula, as the dtype's bytes (little-endian host). */
static void expected_elem(mlxn_dtype dt, int64_t i, uint8_t *out) {
    int64_t k = (i * 7) % 23 - 11;
    float f = (float)k * 0.25f;
    switch (dt) {
    case MLXN_DTYPE_BOOL: out[0] = k != 0; break;
    case MLXN_DTYPE_U8: out[0] = (uint8_t)(k + 11); break;
    case MLXN_DTYPE_I8: { int8_t v = (int8_t)k; memcpy(out, &v, 1); } break;
    case MLXN_DTYPE_U16: { uint16_t v = (uint16_t)(k + 11); memcpy(out, &v, 2); } break;
    case MLXN_DTYPE_I16: { int16_t v = (int16_t)k; memcpy(out, &v, 2); } break;
    case MLXN_DTYPE_U32: { uint32_t v = (uint32_t)(k + 11); memcpy(out, &v, 4); } break;
    case MLXN_DTYPE_I32: { int32_t v = (int32_t)k; memcpy(out, &v, 4); } break;
    case MLXN_DTYPE_U64: { uint64_t v = ((uint64_t)(k + 11) << 40) + (uint64_t)i; memcpy(out, &v, 8); } break;
    case MLXN_DTYPE_I64: { int64_t v = k * ((int64_t)1 << 40) - i; memcpy(out, &v, 8); } break;
    /* k/4 is exact in f16 and bf16: the bit patterns below are the only right answers */
    case MLXN_DTYPE_F16: { uint16_t v = mlxn_f32_to_f16(f); memcpy(out, &v, 2); } break;
    case MLXN_DTYPE_BF16: { uint16_t v = mlxn_f32_to_bf16(f); memcpy(out, &v, 2); } break;
    case MLXN_DTYPE_F32: memcpy(out, &f, 4); break;
    case MLXN_DTYPE_C64: { float c[2] = {f, (float)k * -0.5f}; memcpy(out, c, 8); } break;
    default: memset(out, 0xAB, mlxn_dtype_size(dt)); break;
    }
}

/* Fresh buffer holding the formula's values for s (caller frees). */
static void *expected_bytes(const spec *s) {
    size_t es = mlxn_dtype_size(s->dt), n = (size_t)numel(s);
    uint8_t *b = malloc(n * es + 1);
    for (size_t i = 0; i < n; i++) expected_elem(s->dt, (int64_t)i, b + i * es);
    return b;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* One tensor's table entry and bytes against the spec and the formula. */
static void check_tensor(mlxn_weights *w, const spec *s, const char *file_suffix) {
    const mlxn_weight_info *info = mlxn_weights_find(w, s->name);
    CHECK(info != NULL, "tensor %s missing", s->name);
    if (!info) return;
    CHECK(!strcmp(info->name, s->name), "%s: name reads back as %s", s->name, info->name);
    CHECK(info->dtype == s->dt, "%s: dtype %s, want %s", s->name, mlxn_dtype_name(info->dtype), mlxn_dtype_name(s->dt));
    CHECK(info->ndim == s->ndim, "%s: ndim %d, want %d", s->name, info->ndim, s->ndim);
    for (int i = 0; i < s->ndim && i < info->ndim; i++)
        CHECK(info->shape[i] == s->shape[i], "%s: shape[%d] %lld, want %lld", s->name, i, (long long)info->shape[i],
              (long long)s->shape[i]);
    size_t want_bytes = (size_t)numel(s) * mlxn_dtype_size(s->dt);
    CHECK(info->nbytes == want_bytes, "%s: %zu bytes, want %zu", s->name, info->nbytes, want_bytes);
    CHECK(ends_with(info->file, file_suffix), "%s: file %s, want .../%s", s->name, info->file, file_suffix);
    const uint8_t *p = mlxn_weights_data(w, info);
    CHECK(p != NULL, "%s: no data pointer", s->name);
    if (!p || info->nbytes != want_bytes) return;
    CHECK((uintptr_t)p % mlxn_dtype_size(s->dt) == 0, "%s: data at %p is not aligned to %zu", s->name, (const void *)p,
          mlxn_dtype_size(s->dt));
    uint8_t *want = expected_bytes(s);
    size_t es = mlxn_dtype_size(s->dt);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < want_bytes; i += es)
        if (memcmp(p + i, want + i, es) != 0 && bad++ == 0) first = i / es;
    CHECK(bad == 0, "%s: %zu elements differ from the formula (first at %zu)", s->name, bad, first);
    free(want);
}

/* MLX's metadata keys, each listed once, in header order (MLX sorts keys). */
static void check_meta_keys(const mlxn_weights *w, const char *what) {
    const char *k0 = mlxn_weights_metadata_key(w, 0), *k1 = mlxn_weights_metadata_key(w, 1);
    CHECK(k0 && !strcmp(k0, "format"), "%s: metadata key 0 = %s", what, k0 ? k0 : "(null)");
    CHECK(k1 && !strcmp(k1, "mlx_version"), "%s: metadata key 1 = %s", what, k1 ? k1 : "(null)");
    CHECK(mlxn_weights_metadata_key(w, 2) == NULL, "%s: a third metadata key", what);
}

static void test_dtypes_file(void) {
    mlxn_weights *w = t_golden_open("safetensors/dtypes.safetensors");
    if (!w) return;
    CHECK(mlxn_weights_count(w) == N_DTYPES_FILE, "count %zu, want %zu", mlxn_weights_count(w), N_DTYPES_FILE);
    for (size_t i = 0; i < N_DTYPES_FILE; i++) check_tensor(w, &dtypes_file[i], "/dtypes.safetensors");
    /* name order, and at() agrees with find() */
    for (size_t i = 1; i < mlxn_weights_count(w); i++)
        CHECK(strcmp(mlxn_weights_at(w, i - 1)->name, mlxn_weights_at(w, i)->name) < 0, "not sorted at %zu", i);
    CHECK(mlxn_weights_at(w, mlxn_weights_count(w)) == NULL, "at(count) is not NULL");
    CHECK(mlxn_weights_find(w, "t_f3") == NULL && mlxn_weights_find(w, "") == NULL, "found an absent tensor");
    CHECK(mlxn_weights_find(w, "zzz") == NULL && mlxn_weights_find(w, "a") == NULL, "found an absent tensor");
    const char *fmt = mlxn_weights_metadata(w, "format");
    const char *ver = mlxn_weights_metadata(w, "mlx_version");
    CHECK(fmt && !strcmp(fmt, "mlx"), "metadata format = %s", fmt ? fmt : "(null)");
    CHECK(ver && ver[0] >= '0' && ver[0] <= '9', "metadata mlx_version = %s", ver ? ver : "(null)");
    CHECK(mlxn_weights_metadata(w, "absent") == NULL, "absent metadata key found");
    check_meta_keys(w, "dtypes.safetensors");
    /* an info pointer from another weight set is not this one's */
    mlxn_weight_info fake = *mlxn_weights_at(w, 0);
    CHECK(mlxn_weights_data(w, &fake) == NULL, "data() accepted a foreign info pointer");
    CHECK(mlxn_weights_data(w, NULL) == NULL, "data(NULL) is not NULL");

    /* CPU tensors: zero-copy views of the same bytes */
    mlxn_device *dev = t_cpu_device(1, MLXN_CPU_ISA_AUTO);
    mlxn_device *dev2 = t_cpu_device(1, MLXN_CPU_ISA_AUTO);
    for (size_t i = 0; dev && dev2 && i < N_DTYPES_FILE; i++) {
        const spec *s = &dtypes_file[i];
        mlxn_tensor t, t2, t3;
        CHECK_OK(mlxn_weights_tensor(w, dev, s->name, &t));
        CHECK_OK(mlxn_weights_tensor(w, dev, s->name, &t2));
        CHECK_OK(mlxn_weights_tensor(w, dev2, s->name, &t3));
        const void *d = mlxn_weights_data(w, mlxn_weights_find(w, s->name));
        CHECK(mlxn_tensor_host(&t) == d && mlxn_tensor_host(&t2) == d && mlxn_tensor_host(&t3) == d,
              "%s: CPU tensor is not a view of the weight bytes", s->name);
        CHECK(t.dtype == s->dt && t.ndim == s->ndim && mlxn_tensor_numel(&t) == numel(s) &&
                  mlxn_tensor_is_contiguous(&t),
              "%s: CPU tensor has the wrong dtype/shape", s->name);
        CHECK(mlxn_buffer_device(t3.buf) == dev2, "%s: view on the wrong device", s->name);
    }
    mlxn_tensor t;
    if (dev) CHECK_FAILS(mlxn_weights_tensor(w, dev, "nope", &t), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_weights_tensor(w, NULL, "t_f32", &t), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_weights_free(w); /* frees the views' buffers; the devices outlive nothing of them */
    mlxn_device_free(dev);
    mlxn_device_free(dev2);
}

static void test_nometa(void) {
    mlxn_weights *w = t_golden_open("safetensors/nometa.safetensors");
    if (!w) return;
    spec x = {"x", MLXN_DTYPE_F32, 2, {2, 3}};
    CHECK(mlxn_weights_count(w) == 1, "count %zu", mlxn_weights_count(w));
    check_tensor(w, &x, "/nometa.safetensors");
    CHECK(mlxn_weights_metadata(w, "format") == NULL, "metadata from a file without any");
    CHECK(mlxn_weights_metadata_key(w, 0) == NULL, "metadata key from a file without any");
    mlxn_weights_free(w);
}

static void test_sharded(void) {
    mlxn_weights *w = t_golden_open("safetensors/sharded");
    if (!w) return;
    CHECK(mlxn_weights_count(w) == 4, "count %zu, want 4", mlxn_weights_count(w));
    for (size_t i = 0; i < 4; i++) {
        char suffix[96];
        snprintf(suffix, sizeof suffix, "/%s", shard_files[i]);
        check_tensor(w, &shard_tensors[i], suffix);
    }
    const char *fmt = mlxn_weights_metadata(w, "format");
    CHECK(fmt && !strcmp(fmt, "mlx"), "sharded metadata format = %s", fmt ? fmt : "(null)");
    check_meta_keys(w, "sharded"); /* both shards hold both keys: listed once */
    mlxn_weights_free(w);
    /* one shard alone is a file like any other */
    w = t_golden_open("safetensors/sharded/model-00002-of-00002.safetensors");
    if (!w) return;
    CHECK(mlxn_weights_count(w) == 2, "one shard: count %zu", mlxn_weights_count(w));
    check_tensor(w, &shard_tensors[3], "/model-00002-of-00002.safetensors");
    mlxn_weights_free(w);
}

static char *make_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/mlxn_st_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(p)) {
        CHECK(0, "mkdtemp %s failed", p);
        free(p);
        return NULL;
    }
    return p;
}

static uint64_t header_len(const char *path) {
    uint8_t b[8] = {0};
    FILE *f = fopen(path, "rb");
    if (f) {
        if (fread(b, 1, 8, f) != 8) memset(b, 0, 8);
        fclose(f);
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
    return n;
}

/* Our writer, given the tensors MLX wrote into dtypes.safetensors, must
 * produce a file whose table and bytes match MLX's. */
static void test_writer_matches_mlx(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/ours.safetensors", dir);
    mlxn_st_writer *wr = NULL;
    CHECK_OK(mlxn_st_writer_new(&wr));
    if (!wr) return;
    void *bufs[N_DTYPES_FILE];
    /* added in reverse so the writer's name sort is exercised */
    for (size_t j = 0; j < N_DTYPES_FILE; j++) {
        size_t i = N_DTYPES_FILE - 1 - j;
        bufs[i] = expected_bytes(&dtypes_file[i]);
        CHECK_OK(mlxn_st_writer_add(wr, dtypes_file[i].name, dtypes_file[i].dt, dtypes_file[i].ndim,
                                    dtypes_file[i].shape, bufs[i]));
    }
    CHECK_OK(mlxn_st_writer_set_metadata(wr, "format", "mlx"));
    CHECK_OK(mlxn_st_writer_set_metadata(wr, "mlx_version", "replaced"));
    CHECK_OK(mlxn_st_writer_set_metadata(wr, "mlx_version", "0.0-test"));
    CHECK_OK(mlxn_st_writer_save(wr, path));
    mlxn_st_writer_free(wr);
    for (size_t i = 0; i < N_DTYPES_FILE; i++) free(bufs[i]);

    CHECK(header_len(path) % 8 == 0, "header length %llu is not a multiple of 8", (unsigned long long)header_len(path));
    mlxn_weights *ours = NULL, *mlx = t_golden_open("safetensors/dtypes.safetensors");
    CHECK_OK(mlxn_weights_open(path, &ours));
    if (ours && mlx) {
        CHECK(mlxn_weights_count(ours) == mlxn_weights_count(mlx), "count %zu vs MLX %zu", mlxn_weights_count(ours),
              mlxn_weights_count(mlx));
        for (size_t i = 0; i < mlxn_weights_count(mlx) && i < mlxn_weights_count(ours); i++) {
            const mlxn_weight_info *a = mlxn_weights_at(ours, i), *b = mlxn_weights_at(mlx, i);
            CHECK(!strcmp(a->name, b->name) && a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes &&
                      !memcmp(a->shape, b->shape, sizeof a->shape[0] * (size_t)a->ndim),
                  "tensor %zu: ours %s vs MLX %s", i, a->name, b->name);
            CHECK(a->nbytes != b->nbytes || !memcmp(mlxn_weights_data(ours, a), mlxn_weights_data(mlx, b), a->nbytes),
                  "%s: bytes differ from MLX's", a->name);
        }
        for (size_t i = 0; i < N_DTYPES_FILE; i++) check_tensor(ours, &dtypes_file[i], "/ours.safetensors");
        const char *v = mlxn_weights_metadata(ours, "mlx_version");
        CHECK(v && !strcmp(v, "0.0-test"), "metadata reads back as %s", v ? v : "(null)");
    }
    mlxn_weights_free(ours);
    mlxn_weights_free(mlx);
    unlink(path);
}

static void test_writer_errors(const char *dir) {
    mlxn_st_writer *wr = NULL;
    CHECK_OK(mlxn_st_writer_new(&wr));
    if (!wr) return;
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t shp[2] = {2, 3}, neg[1] = {-1};
    CHECK_OK(mlxn_st_writer_add(wr, "a", MLXN_DTYPE_F32, 2, shp, x));
    CHECK_FAILS(mlxn_st_writer_add(wr, "a", MLXN_DTYPE_F32, 2, shp, x), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_st_writer_add(wr, "__metadata__", MLXN_DTYPE_F32, 2, shp, x), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_st_writer_add(wr, "b", MLXN_DTYPE_COUNT, 2, shp, x), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_st_writer_add(wr, "b", MLXN_DTYPE_F32, 1, neg, x), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_st_writer_add(wr, "b", MLXN_DTYPE_F32, 9, shp, x), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_st_writer_add(wr, "b", MLXN_DTYPE_F32, 2, shp, NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_st_writer_add(wr, "\xff\xfe", MLXN_DTYPE_F32, 2, shp, x), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_st_writer_set_metadata(wr, "k", NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_st_writer_save(wr, NULL), MLXN_ERR_INVALID_ARGUMENT);
    /* a file in a missing directory: an I/O error, and nothing left behind */
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/missing/x.safetensors", dir);
    CHECK_FAILS(mlxn_st_writer_save(wr, bad), MLXN_ERR_IO);
    CHECK(strstr(mlxn_last_error(), "missing/x.safetensors") != NULL, "message '%s' does not name the file",
          mlxn_last_error());
    /* saving over an existing file replaces it; no temporary files remain */
    char good[4200];
    snprintf(good, sizeof good, "%s/small.safetensors", dir);
    FILE *f = fopen(good, "w");
    if (f) {
        fputs("old", f);
        fclose(f);
    }
    CHECK_OK(mlxn_st_writer_save(wr, good));
    mlxn_st_writer_free(wr);
    mlxn_weights *w = NULL;
    CHECK_OK(mlxn_weights_open(good, &w));
    const mlxn_weight_info *a = mlxn_weights_find(w, "a");
    CHECK(a && a->nbytes == sizeof x && !memcmp(mlxn_weights_data(w, a), x, sizeof x), "small file reads back wrong");
    mlxn_weights_free(w);
    unlink(good);
    CHECK(rmdir(dir) == 0, "temporary directory %s not empty after the writer tests (leftover temp file?)", dir);
    mlxn_st_writer_free(NULL);
    mlxn_weights_free(NULL);
}

static void test_open_errors(void) {
    mlxn_weights *w = (mlxn_weights *)&w;
    CHECK_FAILS(mlxn_weights_open("/nonexistent/dir/x.safetensors", &w), MLXN_ERR_IO);
    CHECK(w == NULL, "out not cleared on failure");
    CHECK(strstr(mlxn_last_error(), "/nonexistent/dir/x.safetensors") != NULL, "message '%s'", mlxn_last_error());
    CHECK_FAILS(mlxn_weights_open(NULL, &w), MLXN_ERR_INVALID_ARGUMENT);
    /* a directory without shards */
    CHECK_FAILS(mlxn_weights_open(MLXN_TEST_GOLDEN_DIR, &w), MLXN_ERR_IO);
    CHECK(strstr(mlxn_last_error(), "model*.safetensors") != NULL, "message '%s'", mlxn_last_error());
    CHECK(mlxn_weights_count(NULL) == 0 && mlxn_weights_at(NULL, 0) == NULL && mlxn_weights_find(NULL, "x") == NULL &&
              mlxn_weights_metadata(NULL, "x") == NULL,
          "NULL weight set accessors");
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_safetensors");
    test_dtypes_file();
    test_nometa();
    test_sharded();
    test_open_errors();
    char *dir = make_tmpdir();
    if (dir) {
        test_writer_matches_mlx(dir);
        test_writer_errors(dir);
        free(dir);
    }
    return t_finish();
}
