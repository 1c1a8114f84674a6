/* GGUF reader and GGML blocks against gguf-py (tests/golden/gen_gguf.py):
 * every metadata value type (typed getters, conversions and their
 * refusals, string arrays, nested arrays), tensor infos (type, ne/shape,
 * sizes, where gguf-py's reader finds the bytes), dequantization of f32 f16
 * bf16 q4_0 q4_1 q8_0 q4_K q5_K q6_K equal bit for bit to gguf-py's
 * (whole tensors and row ranges, outputs poisoned first), our q4_0 q4_1
 * q8_0 quantizers byte-equal to gguf-py's, default and odd (1) alignment,
 * plus fresh random round trips and bad arguments. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "quant/ggml_blocks.h"

#define GDIR MLXN_TEST_GOLDEN_DIR "/gguf/"

static mlxn_gguf *open_golden(const char *name) {
    mlxn_gguf *g = NULL;
    mlxn_status st = mlxn_gguf_open(name, &g);
    CHECK(st == MLXN_OK, "open %s: %s", name, mlxn_last_error());
    return g;
}

/* The vocabulary gen_gguf.py writes. */
static size_t token(int i, char *buf, size_t cap) {
    switch (i) {
    case 0: buf[0] = '\0'; return 0;
    case 1: return (size_t)snprintf(buf, cap, "h\xc3\xa9llo");
    case 2: memcpy(buf, "a\0b", 4); return 3;
    case 3: return (size_t)snprintf(buf, cap, "<0x0A>");
    default: return (size_t)snprintf(buf, cap, "t%d_%.*s", i, i % 5, "xxxx");
    }
}

static void test_scalars(mlxn_gguf *g) {
    CHECK(mlxn_gguf_version(g) == 3, "version %u", mlxn_gguf_version(g));
    CHECK(mlxn_gguf_alignment(g) == 64, "alignment %u", mlxn_gguf_alignment(g));
    CHECK(mlxn_gguf_kv_count(g) == 30, "kv count %zu", mlxn_gguf_kv_count(g));
    const char *k0 = mlxn_gguf_kv_key(g, 0);
    CHECK(k0 && strcmp(k0, "general.architecture") == 0, "first key %s", k0 ? k0 : "(null)");
    CHECK(mlxn_gguf_kv_key(g, 30) == NULL && mlxn_gguf_kv_value(g, 30) == NULL, "kv index past the end");

    uint32_t u32 = 0;
    int32_t i32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f32 = 0;
    double f64 = 0;
    int b = -1;
    CHECK_OK(mlxn_gguf_get_u32(g, "test.u8", &u32));
    CHECK(u32 == 200, "u8 %u", u32);
    CHECK_OK(mlxn_gguf_get_i32(g, "test.i8", &i32));
    CHECK(i32 == -100, "i8 %d", i32);
    CHECK_OK(mlxn_gguf_get_u32(g, "test.u16", &u32));
    CHECK(u32 == 60000, "u16 %u", u32);
    CHECK_OK(mlxn_gguf_get_i64(g, "test.i16", &i64));
    CHECK(i64 == -30000, "i16 %lld", (long long)i64);
    CHECK_OK(mlxn_gguf_get_u32(g, "test.u32", &u32));
    CHECK(u32 == 4000000000u, "u32 %u", u32);
    CHECK_OK(mlxn_gguf_get_i32(g, "test.i32", &i32));
    CHECK(i32 == -2000000000, "i32 %d", i32);
    CHECK_OK(mlxn_gguf_get_u64(g, "test.u64", &u64));
    CHECK(u64 == 9223372036854775813ull, "u64 %llu", (unsigned long long)u64);
    CHECK_OK(mlxn_gguf_get_i64(g, "test.i64", &i64));
    CHECK(i64 == -4611686018427387907ll, "i64 %lld", (long long)i64);
    CHECK_OK(mlxn_gguf_get_f32(g, "test.f32", &f32));
    CHECK(f32 == 3.14159f, "f32 %.9g", f32);
    CHECK_OK(mlxn_gguf_get_f64(g, "test.f64", &f64));
    CHECK(f64 == 2.718281828459045, "f64 %.17g", f64);
    CHECK_OK(mlxn_gguf_get_bool(g, "test.bool", &b));
    CHECK(b == 1, "bool %d", b);
    CHECK_OK(mlxn_gguf_get_bool(g, "test.false", &b));
    CHECK(b == 0, "false %d", b);
    const char *s = NULL;
    size_t len = 0;
    CHECK_OK(mlxn_gguf_get_str(g, "test.string", &s, &len));
    CHECK(s && len == 13 && strcmp(s, "h\xc3\xa9llo w\xc3\xb6rld") == 0, "string '%s' (%zu)", s ? s : "", len);
    CHECK_OK(mlxn_gguf_get_str(g, "general.architecture", &s, NULL));
    CHECK(s && strcmp(s, "testarch") == 0, "architecture %s", s ? s : "");
    CHECK_OK(mlxn_gguf_get_u32(g, "general.alignment", &u32));
    CHECK(u32 == 64, "general.alignment %u", u32);

    /* conversions that would lose information are refused, naming the key */
    CHECK_FAILS(mlxn_gguf_get_u32(g, "test.u64", &u32), MLXN_ERR_FORMAT);
    CHECK(strstr(mlxn_last_error(), "test.u64") && strstr(mlxn_last_error(), "model.gguf"), "message: %s",
          mlxn_last_error());
    CHECK_FAILS(mlxn_gguf_get_i64(g, "test.u64", &i64), MLXN_ERR_FORMAT);
    CHECK_FAILS(mlxn_gguf_get_u64(g, "test.i8", &u64), MLXN_ERR_FORMAT);
    CHECK_FAILS(mlxn_gguf_get_i32(g, "test.u32", &i32), MLXN_ERR_FORMAT);
    CHECK_FAILS(mlxn_gguf_get_str(g, "test.u8", &s, NULL), MLXN_ERR_FORMAT);
    CHECK_FAILS(mlxn_gguf_get_f32(g, "test.u8", &f32), MLXN_ERR_FORMAT);
    CHECK_FAILS(mlxn_gguf_get_bool(g, "test.u8", &b), MLXN_ERR_FORMAT);
    CHECK_FAILS(mlxn_gguf_get_u32(g, "test.string", &u32), MLXN_ERR_FORMAT);
    CHECK_FAILS(mlxn_gguf_get_u32(g, "no.such.key", &u32), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(mlxn_last_error(), "no.such.key") != NULL, "message: %s", mlxn_last_error());
    CHECK_FAILS(mlxn_gguf_get_u32(g, "test.u8", NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(mlxn_gguf_find(g, "no.such.key") == NULL, "find of a missing key");
    const mlxn_gguf_value *v = mlxn_gguf_find(g, "test.i16");
    CHECK(v && mlxn_gguf_value_type(v) == MLXN_GGUF_I16, "type of test.i16");
    CHECK(strcmp(mlxn_gguf_type_name(MLXN_GGUF_STRING), "string") == 0, "type name");
}

static void test_arrays(mlxn_gguf *g) {
    const mlxn_gguf_value *v = NULL;
    mlxn_gguf_type et;
    size_t n = 0;
    CHECK_OK(mlxn_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &n, &v));
    CHECK(et == MLXN_GGUF_STRING && n == 64, "tokens: %s x %zu", mlxn_gguf_type_name(et), n);
    int bad = 0;
    for (int i = 0; i < 64 && v; i++) {
        char want[64];
        size_t wl = token(i, want, sizeof want), gl = 0;
        const char *got = mlxn_gguf_array_str(v, (size_t)i, &gl);
        if (!got || gl != wl || memcmp(got, want, wl) != 0 || got[gl] != '\0') bad++;
    }
    CHECK(bad == 0, "%d tokens differ", bad);
    CHECK(mlxn_gguf_array_str(v, 64, NULL) == NULL, "token index past the end");
    uint64_t u = 0;
    CHECK_FAILS(mlxn_gguf_array_u64(v, 0, &u), MLXN_ERR_FORMAT);
    CHECK_FAILS(mlxn_gguf_get_array(g, "test.u8", &et, &n, &v), MLXN_ERR_FORMAT);

    /* one array per scalar type */
    static const struct {
        const char *key;
        mlxn_gguf_type type;
        double vals[3];
    } arrs[] = {
        {"test.arr_uint8", MLXN_GGUF_U8, {1, 2, 3}},     {"test.arr_int8", MLXN_GGUF_I8, {-1, 2, -3}},
        {"test.arr_uint16", MLXN_GGUF_U16, {1, 2, 3}},   {"test.arr_int16", MLXN_GGUF_I16, {-1, 2, -3}},
        {"test.arr_uint32", MLXN_GGUF_U32, {1, 2, 3}},   {"test.arr_int32", MLXN_GGUF_I32, {-1, 2, -3}},
        {"test.arr_float32", MLXN_GGUF_F32, {0.5, -1.25, 3.0}},
        {"test.arr_float64", MLXN_GGUF_F64, {0.1, -2.5, 1e300}},
    };
    for (size_t a = 0; a < sizeof arrs / sizeof arrs[0]; a++) {
        CHECK_OK(mlxn_gguf_get_array(g, arrs[a].key, &et, &n, &v));
        CHECK(et == arrs[a].type && n == 3, "%s: %s x %zu", arrs[a].key, mlxn_gguf_type_name(et), n);
        for (size_t i = 0; i < 3 && n == 3; i++) {
            double got = NAN;
            if (et == MLXN_GGUF_F32 || et == MLXN_GGUF_F64) {
                CHECK_OK(mlxn_gguf_array_f64(v, i, &got));
            } else {
                int64_t x = 0;
                CHECK_OK(mlxn_gguf_array_i64(v, i, &x));
                got = (double)x;
            }
            CHECK(got == arrs[a].vals[i], "%s[%zu] = %g, want %g", arrs[a].key, i, got, arrs[a].vals[i]);
        }
        CHECK_FAILS(mlxn_gguf_array_i64(v, 3, &(int64_t){0}), MLXN_ERR_INVALID_ARGUMENT);
    }
    /* raw access: the i16 array as stored */
    CHECK_OK(mlxn_gguf_get_array(g, "test.arr_int16", &et, &n, &v));
    const uint8_t *raw = mlxn_gguf_array_data(v);
    CHECK(raw && raw[0] == 0xFF && raw[1] == 0xFF && raw[2] == 2 && raw[3] == 0, "raw i16 bytes");
    /* 64-bit extremes */
    uint64_t u64 = 0;
    int64_t i64 = 0;
    CHECK_OK(mlxn_gguf_get_array(g, "test.arr_uint64", &et, &n, &v));
    CHECK_OK(mlxn_gguf_array_u64(v, 2, &u64));
    CHECK(u64 == UINT64_MAX, "u64 max %llu", (unsigned long long)u64);
    CHECK_FAILS(mlxn_gguf_array_i64(v, 2, &i64), MLXN_ERR_FORMAT);
    CHECK_OK(mlxn_gguf_get_array(g, "test.arr_int64", &et, &n, &v));
    CHECK_OK(mlxn_gguf_array_i64(v, 2, &i64));
    CHECK(i64 == INT64_MIN, "i64 min %lld", (long long)i64);
    CHECK_FAILS(mlxn_gguf_array_u64(v, 0, &u64), MLXN_ERR_FORMAT);
    CHECK_OK(mlxn_gguf_get_array(g, "test.arr_bool", &et, &n, &v));
    CHECK(et == MLXN_GGUF_BOOL && n == 3, "bool array");
    CHECK(mlxn_gguf_array_str(v, 0, NULL) == NULL && mlxn_gguf_array_at(v, 0) == NULL, "bool array is not strings");

    /* [[1, 2, 3], [4, 5]] */
    CHECK_OK(mlxn_gguf_get_array(g, "test.nested", &et, &n, &v));
    CHECK(et == MLXN_GGUF_ARRAY && n == 2, "nested: %s x %zu", mlxn_gguf_type_name(et), n);
    const mlxn_gguf_value *a0 = mlxn_gguf_array_at(v, 0), *a1 = mlxn_gguf_array_at(v, 1);
    CHECK(a0 && mlxn_gguf_array_type(a0) == MLXN_GGUF_I32 && mlxn_gguf_array_len(a0) == 3, "nested[0]");
    CHECK(a1 && mlxn_gguf_array_len(a1) == 2, "nested[1]");
    int64_t x = 0;
    CHECK_OK(mlxn_gguf_array_i64(a1, 1, &x));
    CHECK(x == 5, "nested[1][1] = %lld", (long long)x);
    CHECK(mlxn_gguf_array_at(v, 2) == NULL, "nested index past the end");
    /* [[["a"], ["b", "c"]], [["d"]]] */
    CHECK_OK(mlxn_gguf_get_array(g, "test.nested3", &et, &n, &v));
    const mlxn_gguf_value *l1 = mlxn_gguf_array_at(v, 0);
    const mlxn_gguf_value *l2 = mlxn_gguf_array_at(l1, 1);
    const char *c = mlxn_gguf_array_str(l2, 1, NULL);
    CHECK(mlxn_gguf_array_len(l1) == 2 && mlxn_gguf_array_len(l2) == 2 && c && strcmp(c, "c") == 0,
          "nested3[0][1][1] = %s", c ? c : "(null)");
    const char *d = mlxn_gguf_array_str(mlxn_gguf_array_at(mlxn_gguf_array_at(v, 1), 0), 0, NULL);
    CHECK(d && strcmp(d, "d") == 0, "nested3[1][0][0] = %s", d ? d : "(null)");
}

/* bit equality of f32 arrays (NaN never passes: the goldens hold none) */
static size_t count_diff(const float *a, const float *b, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0 || isnan(a[i])) bad++;
    return bad;
}

static void check_tensor(mlxn_gguf *g, mlxn_weights *exp, const char *name, mlxn_ggml_type type, int n_dims) {
    const mlxn_gguf_tensor_info *t = mlxn_gguf_tensor_find(g, name);
    CHECK(t != NULL, "tensor %s missing", name);
    const mlxn_weight_info *e = mlxn_weights_find(exp, name);
    CHECK(e != NULL, "expected %s missing", name);
    if (!t || !e) return;
    CHECK(strcmp(t->name, name) == 0, "found %s for %s", t->name, name);
    CHECK(t->type == type, "%s: type %s, want %s", name, mlxn_ggml_type_name(t->type), mlxn_ggml_type_name(type));
    CHECK(t->n_dims == n_dims && (n_dims == 0 ? e->ndim == 0 : e->ndim == n_dims), "%s: n_dims %d (expected %d)",
          name, t->n_dims, e->ndim);
    int64_t numel = 1;
    for (int i = 0; i < t->n_dims && i < e->ndim; i++) {
        CHECK(t->shape[i] == e->shape[i], "%s: shape[%d] = %lld, want %lld", name, i, (long long)t->shape[i],
              (long long)e->shape[i]);
        CHECK(t->ne[t->n_dims - 1 - i] == e->shape[i], "%s: ne is not the reversed shape", name);
        numel *= e->shape[i];
    }
    for (int i = t->n_dims; i < MLXN_GGUF_MAX_DIMS; i++) CHECK(t->ne[i] == 1, "%s: ne[%d] past n_dims", name, i);
    CHECK(t->numel == numel, "%s: numel %lld", name, (long long)t->numel);
    size_t bytes = (size_t)(numel / mlxn_ggml_type_block_elems(type)) * mlxn_ggml_type_block_bytes(type);
    CHECK(t->nbytes == bytes, "%s: nbytes %zu, want %zu", name, t->nbytes, bytes);
    CHECK(t->n_rows * t->ne[0] == numel && t->row_bytes * (size_t)t->n_rows == bytes, "%s: rows", name);
    const uint8_t *data = mlxn_gguf_tensor_data(g, t);
    CHECK(data && (uintptr_t)data % mlxn_gguf_alignment(g) == 0, "%s: data pointer not aligned", name);

    const float *want = mlxn_weights_data(exp, e);
    float *got = malloc((size_t)numel * sizeof *got);
    t_poison(got, (size_t)numel * sizeof *got);
    CHECK_OK(mlxn_gguf_dequantize(g, t, 0, t->n_rows, got));
    size_t bad = count_diff(want, got, (size_t)numel);
    CHECK(bad == 0, "%s: %zu of %lld dequantized values differ from gguf-py", name, bad, (long long)numel);
    /* a row range: the last rows, into a poisoned buffer */
    if (t->n_rows > 1) {
        int64_t r0 = 1, nr = t->n_rows - 1;
        t_poison(got, (size_t)numel * sizeof *got);
        CHECK_OK(mlxn_gguf_dequantize(g, t, r0, nr, got));
        bad = count_diff(want + r0 * t->ne[0], got, (size_t)(nr * t->ne[0]));
        CHECK(bad == 0, "%s: rows [1, %lld): %zu values differ", name, (long long)t->n_rows, bad);
    }
    CHECK_FAILS(mlxn_gguf_dequantize(g, t, 0, t->n_rows + 1, got), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_gguf_dequantize(g, t, -1, 1, got), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_gguf_dequantize(g, t, t->n_rows, INT64_MAX, got), MLXN_ERR_INVALID_ARGUMENT);
    free(got);
}

/* Our quantizer on gguf-py's input must produce gguf-py's bytes. */
static void check_quantize(mlxn_gguf *g, mlxn_weights *exp, const char *name) {
    const mlxn_gguf_tensor_info *t = mlxn_gguf_tensor_find(g, name);
    char src_name[64];
    snprintf(src_name, sizeof src_name, "%s.src", name);
    size_t n = 0;
    const float *src = t_golden_get(exp, src_name, MLXN_DTYPE_F32, &n);
    if (!t || !src) return;
    CHECK((int64_t)n == t->numel, "%s: %zu source values for %lld", name, n, (long long)t->numel);
    uint8_t *q = malloc(t->nbytes);
    memset(q, 0xAB, t->nbytes);
    switch (t->type) {
    case MLXN_GGML_Q4_0: mlxn_ggml_quant_q4_0(src, q, t->numel); break;
    case MLXN_GGML_Q4_1: mlxn_ggml_quant_q4_1(src, q, t->numel); break;
    case MLXN_GGML_Q8_0: mlxn_ggml_quant_q8_0(src, q, t->numel); break;
    default: CHECK(0, "%s: not a quantizable type", name);
    }
    const uint8_t *ref = mlxn_gguf_tensor_data(g, t);
    size_t bb = mlxn_ggml_type_block_bytes(t->type), bad = 0, first = SIZE_MAX;
    for (size_t b = 0; b < t->nbytes / bb; b++)
        if (memcmp(q + b * bb, ref + b * bb, bb) != 0) {
            bad++;
            if (first == SIZE_MAX) first = b;
        }
    CHECK(bad == 0, "%s: %zu of %zu quantized blocks differ from gguf-py (first: block %zu)", name, bad,
          t->nbytes / bb, first);
    free(q);
}

static void test_model(void) {
    mlxn_gguf *g = open_golden(GDIR "model.gguf");
    mlxn_weights *exp = t_golden_open("gguf/expected.safetensors");
    if (!g || !exp) {
        mlxn_gguf_free(g);
        mlxn_weights_free(exp);
        return;
    }
    test_scalars(g);
    test_arrays(g);
    /* the generator's gguf-py version, as recorded in both files */
    const char *ver = NULL, *ver2 = mlxn_weights_metadata(exp, "gguf_py_version");
    CHECK_OK(mlxn_gguf_get_str(g, "test.gguf_py_version", &ver, NULL));
    CHECK(ver && ver2 && strcmp(ver, ver2) == 0, "gguf-py version %s vs %s", ver ? ver : "", ver2 ? ver2 : "");

    /* tensors in file order, where gguf-py's reader finds them */
    size_t nt = mlxn_gguf_tensor_count(g), no = 0;
    CHECK(nt == 13, "tensor count %zu", nt);
    const int64_t *offs = t_golden_get(exp, "model.file_offsets", MLXN_DTYPE_I64, &no);
    CHECK(no == nt, "%zu offsets for %zu tensors", no, nt);
    for (size_t i = 0; offs && i < nt && i < no; i++) {
        const mlxn_gguf_tensor_info *t = mlxn_gguf_tensor_at(g, i);
        CHECK((int64_t)(mlxn_gguf_data_offset(g) + t->offset) == offs[i], "%s at %zu + %llu, gguf-py says %lld",
              t->name, mlxn_gguf_data_offset(g), (unsigned long long)t->offset, (long long)offs[i]);
        CHECK(mlxn_gguf_tensor_find(g, t->name) == t, "find(%s)", t->name);
    }
    CHECK(mlxn_gguf_tensor_at(g, nt) == NULL && mlxn_gguf_tensor_find(g, "nope") == NULL, "missing tensors");

    check_tensor(g, exp, "f32_2d", MLXN_GGML_F32, 2);
    check_tensor(g, exp, "f32_1d", MLXN_GGML_F32, 1);
    check_tensor(g, exp, "f32_4d", MLXN_GGML_F32, 4);
    check_tensor(g, exp, "f32_scalar", MLXN_GGML_F32, 0);
    check_tensor(g, exp, "f16", MLXN_GGML_F16, 2);
    check_tensor(g, exp, "bf16", MLXN_GGML_BF16, 2);
    check_tensor(g, exp, "q4_0", MLXN_GGML_Q4_0, 2);
    check_tensor(g, exp, "q4_1", MLXN_GGML_Q4_1, 2);
    check_tensor(g, exp, "q8_0", MLXN_GGML_Q8_0, 2);
    check_tensor(g, exp, "q8_0_3d", MLXN_GGML_Q8_0, 3);
    check_tensor(g, exp, "q4_k", MLXN_GGML_Q4_K, 2);
    check_tensor(g, exp, "q5_k", MLXN_GGML_Q5_K, 2);
    check_tensor(g, exp, "q6_k", MLXN_GGML_Q6_K, 2);
    check_quantize(g, exp, "q4_0");
    check_quantize(g, exp, "q4_1");
    check_quantize(g, exp, "q8_0");
    check_quantize(g, exp, "q8_0_3d");

    const mlxn_gguf_tensor_info *t = mlxn_gguf_tensor_find(g, "q4_k");
    mlxn_gguf_tensor_info copy = *t;
    float tmp[512];
    CHECK_FAILS(mlxn_gguf_dequantize(g, &copy, 0, 1, tmp), MLXN_ERR_INVALID_ARGUMENT); /* not ours */
    CHECK_FAILS(mlxn_gguf_dequantize(g, t, 0, 1, NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(mlxn_gguf_tensor_data(g, &copy) == NULL, "data of a foreign info");
    mlxn_weights_free(exp);
    mlxn_gguf_free(g);
}

static void test_small_and_align1(void) {
    mlxn_weights *exp = t_golden_open("gguf/expected.safetensors");
    mlxn_gguf *g = open_golden(GDIR "small.gguf");
    if (g && exp) {
        CHECK(mlxn_gguf_alignment(g) == 32 && mlxn_gguf_find(g, "general.alignment") == NULL, "default alignment");
        CHECK(mlxn_gguf_data_offset(g) % 32 == 0, "data offset %zu", mlxn_gguf_data_offset(g));
        uint32_t a = 0;
        CHECK_OK(mlxn_gguf_get_u32(g, "small.answer", &a));
        CHECK(a == 42, "answer %u", a);
        CHECK(mlxn_gguf_tensor_count(g) == 2, "small: %zu tensors", mlxn_gguf_tensor_count(g));
        check_tensor(g, exp, "small.a", MLXN_GGML_F32, 2);
        check_tensor(g, exp, "small.b", MLXN_GGML_F16, 1);
    }
    mlxn_gguf_free(g);
    g = open_golden(GDIR "align1.gguf");
    if (g && exp) {
        CHECK(mlxn_gguf_alignment(g) == 1, "alignment %u", mlxn_gguf_alignment(g));
        const mlxn_gguf_tensor_info *t = mlxn_gguf_tensor_find(g, "odd_q8_0");
        CHECK(t && t->offset == 3, "odd_q8_0 at offset %llu", t ? (unsigned long long)t->offset : 0ull);
        check_tensor(g, exp, "odd_q8_0", MLXN_GGML_Q8_0, 2); /* unaligned blocks (UBSan watches) */
        check_quantize(g, exp, "odd_q8_0");
        const mlxn_gguf_tensor_info *p = mlxn_gguf_tensor_find(g, "pad_i8");
        float out[3];
        CHECK(p && p->type == MLXN_GGML_I8 && p->nbytes == 3, "pad_i8");
        if (p) {
            CHECK_FAILS(mlxn_gguf_dequantize(g, p, 0, 1, out), MLXN_ERR_UNSUPPORTED);
            CHECK(strstr(mlxn_last_error(), "pad_i8") && strstr(mlxn_last_error(), "i8"), "message: %s",
                  mlxn_last_error());
            const int8_t *d = mlxn_gguf_tensor_data(g, p);
            CHECK(d && d[0] == 1 && d[1] == -2 && d[2] == 3, "i8 bytes");
        }
    }
    mlxn_gguf_free(g);
    mlxn_weights_free(exp);
}

/* Layout facts and fresh random round trips through the reference code. */
static void test_blocks(void) {
    CHECK(mlxn_ggml_type_block_bytes(MLXN_GGML_Q4_0) == sizeof(mlxn_block_q4_0), "q4_0 size");
    CHECK(mlxn_ggml_type_block_bytes(MLXN_GGML_Q4_1) == sizeof(mlxn_block_q4_1), "q4_1 size");
    CHECK(mlxn_ggml_type_block_bytes(MLXN_GGML_Q8_0) == sizeof(mlxn_block_q8_0), "q8_0 size");
    CHECK(mlxn_ggml_type_block_bytes(MLXN_GGML_Q4_K) == sizeof(mlxn_block_q4_K), "q4_K size");
    CHECK(mlxn_ggml_type_block_bytes(MLXN_GGML_Q5_K) == sizeof(mlxn_block_q5_K), "q5_K size");
    CHECK(mlxn_ggml_type_block_bytes(MLXN_GGML_Q6_K) == sizeof(mlxn_block_q6_K), "q6_K size");
    CHECK(mlxn_ggml_type_block_elems(MLXN_GGML_Q6_K) == 256 && mlxn_ggml_type_block_elems(MLXN_GGML_BF16) == 1,
          "block elems");
    CHECK(strcmp(mlxn_ggml_type_name(MLXN_GGML_Q4_K), "q4_K") == 0 &&
              strcmp(mlxn_ggml_type_name((mlxn_ggml_type)31), "invalid") == 0 &&
              strcmp(mlxn_ggml_type_name((mlxn_ggml_type)-1), "invalid") == 0,
          "type names");
    CHECK(mlxn_ggml_type_block_bytes((mlxn_ggml_type)99) == 0, "unknown type size");
    CHECK(!mlxn_ggml_type_can_dequantize(MLXN_GGML_Q5_0) && mlxn_ggml_type_can_dequantize(MLXN_GGML_Q6_K),
          "can_dequantize");

    /* quantize -> dequantize of fresh Gaussian rows (odd block counts):
     * the error of each value is at most half a step (Q8_0, Q4_1) or one
     * step (Q4_0's asymmetric range), plus the f16 rounding of d */
    const int64_t n = 32 * 37;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint8_t *q = malloc((size_t)(n / 32) * 34);
    t_fill_randn(x, (size_t)n, 3.0f);
    struct {
        const char *name;
        void (*quant)(const float *, void *, int64_t);
        void (*deq)(const void *, float *, int64_t);
        double max_nmse;
    } rt[] = {{"q4_0", mlxn_ggml_quant_q4_0, mlxn_ggml_dequant_q4_0, 2e-2},
              {"q4_1", mlxn_ggml_quant_q4_1, mlxn_ggml_dequant_q4_1, 2e-2},
              {"q8_0", mlxn_ggml_quant_q8_0, mlxn_ggml_dequant_q8_0, 1e-4}};
    for (int k = 0; k < 3; k++) {
        t_poison(y, (size_t)n * sizeof *y);
        rt[k].quant(x, q, n);
        rt[k].deq(q, y, n);
        double e = t_nmse(x, y, (size_t)n);
        CHECK(e < rt[k].max_nmse, "%s round trip nmse %g", rt[k].name, e);
        CHECK(e > 0, "%s round trip is lossless?", rt[k].name);
    }
    /* an all-zero block stays zero, with d = 0 */
    memset(x, 0, 32 * sizeof *x);
    mlxn_ggml_quant_q8_0(x, q, 32);
    mlxn_ggml_dequant_q8_0(q, y, 32);
    CHECK(q[0] == 0 && q[1] == 0 && y[0] == 0 && y[31] == 0, "zero block");
    /* inf input does not crash (codes are clamped) */
    x[3] = INFINITY;
    mlxn_ggml_quant_q4_0(x, q, 32);
    mlxn_ggml_quant_q4_1(x, q, 32);
    mlxn_ggml_quant_q8_0(x, q, 32);
    free(x);
    free(y);
    free(q);
}

static void test_bad_args(void) {
    mlxn_gguf *g = (mlxn_gguf *)&g;
    CHECK_FAILS(mlxn_gguf_open(GDIR "does-not-exist.gguf", &g), MLXN_ERR_IO);
    CHECK(g == NULL && strstr(mlxn_last_error(), "does-not-exist.gguf"), "message: %s", mlxn_last_error());
    CHECK_FAILS(mlxn_gguf_open(GDIR, &g), MLXN_ERR_IO); /* a directory */
    CHECK_FAILS(mlxn_gguf_open(NULL, &g), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_gguf_open(GDIR "small.gguf", NULL), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_gguf_free(NULL);
    CHECK(mlxn_gguf_tensor_count(NULL) == 0 && mlxn_gguf_kv_count(NULL) == 0 && mlxn_gguf_find(NULL, "x") == NULL,
          "NULL handle");
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_gguf");
    test_blocks();
    test_bad_args();
    test_model();
    test_small_and_align1();
    return t_finish();
}
