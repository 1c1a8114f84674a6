/* libFuzzer target: the GGUF parser and every accessor on arbitrary bytes.
 * The input is parsed from memory (mlxn_gguf_open_memory, the code path
 * mlxn_gguf_open runs on its mmap). When it is accepted, every metadata
 * value is walked (nested arrays, every string byte, every array element
 * through the typed accessors), every key is read with every getter, and
 * every tensor's bytes are read end to end and dequantized, so ASan and
 * UBSan catch anything the validation let through. A rejection must name
 * the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf_internal.h"
#include "mlxn/mlxn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void walk(const mlxn_gguf_value *v) {
    uint64_t u;
    int64_t i;
    double f;
    int b;
    size_t len = 0;
    const char *s = mlxn_gguf_value_str(v, &len);
    if (s) {
        if (s[len] != '\0') __builtin_trap();
        for (size_t k = 0; k < len; k++) sink += (uint8_t)s[k];
    }
    (void)mlxn_gguf_value_u64(v, &u);
    (void)mlxn_gguf_value_i64(v, &i);
    (void)mlxn_gguf_value_f64(v, &f);
    (void)mlxn_gguf_value_bool(v, &b);
    if (mlxn_gguf_value_type(v) != MLXN_GGUF_ARRAY) return;
    size_t n = mlxn_gguf_array_len(v);
    mlxn_gguf_type et = mlxn_gguf_array_type(v);
    for (size_t k = 0; k < n; k++) {
        if (et == MLXN_GGUF_ARRAY) {
            const mlxn_gguf_value *e = mlxn_gguf_array_at(v, k);
            if (!e) __builtin_trap();
            walk(e);
        } else if (et == MLXN_GGUF_STRING) {
            const char *e = mlxn_gguf_array_str(v, k, &len);
            if (!e || e[len] != '\0') __builtin_trap();
            sink += len;
        } else {
            if (mlxn_gguf_array_u64(v, k, &u) == MLXN_OK) sink += u;
            if (mlxn_gguf_array_i64(v, k, &i) == MLXN_OK) sink += (uint64_t)i;
            if (mlxn_gguf_array_f64(v, k, &f) == MLXN_OK) sink += (uint64_t)(f == f);
        }
    }
    if (mlxn_gguf_array_len(v) && mlxn_gguf_array_data(v)) sink += ((const uint8_t *)mlxn_gguf_array_data(v))[0];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mlxn_gguf *g = NULL;
    mlxn_status st = mlxn_gguf_open_memory("fuzz.gguf", data, size, &g);
    if (st != MLXN_OK) {
        if (g || !strstr(mlxn_last_error(), "fuzz.gguf")) __builtin_trap();
        return 0;
    }
    uint32_t a = mlxn_gguf_alignment(g);
    if (a == 0 || (a & (a - 1)) != 0) __builtin_trap();
    for (size_t k = 0; k < mlxn_gguf_kv_count(g); k++) {
        const char *key = mlxn_gguf_kv_key(g, k);
        if (mlxn_gguf_find(g, key) != mlxn_gguf_kv_value(g, k)) __builtin_trap();
        walk(mlxn_gguf_kv_value(g, k));
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
        float f32;
        double f64;
        int b;
        const char *s;
        size_t len;
        mlxn_gguf_type et;
        const mlxn_gguf_value *arr;
        (void)mlxn_gguf_get_u32(g, key, &u32);
        (void)mlxn_gguf_get_i32(g, key, &i32);
        (void)mlxn_gguf_get_u64(g, key, &u64);
        (void)mlxn_gguf_get_i64(g, key, &i64);
        (void)mlxn_gguf_get_f32(g, key, &f32);
        (void)mlxn_gguf_get_f64(g, key, &f64);
        (void)mlxn_gguf_get_bool(g, key, &b);
        (void)mlxn_gguf_get_str(g, key, &s, &len);
        (void)mlxn_gguf_get_array(g, key, &et, &len, &arr);
    }
    for (size_t k = 0; k < mlxn_gguf_tensor_count(g); k++) {
        const mlxn_gguf_tensor_info *t = mlxn_gguf_tensor_at(g, k);
        if (mlxn_gguf_tensor_find(g, t->name) != t) __builtin_trap();
        const uint8_t *p = mlxn_gguf_tensor_data(g, t);
        if (!p || (uintptr_t)(p - data) % a) __builtin_trap();
        for (size_t j = 0; j < t->nbytes; j++) sink += p[j];
        if (!mlxn_ggml_type_can_dequantize(t->type) || t->n_rows == 0) continue;
        float *out = malloc((size_t)t->numel * sizeof *out);
        if (!out) continue;
        if (mlxn_gguf_dequantize(g, t, 0, t->n_rows, out) != MLXN_OK) __builtin_trap();
        if (mlxn_gguf_dequantize(g, t, t->n_rows - 1, 1, out) != MLXN_OK) __builtin_trap();
        free(out);
    }
    mlxn_gguf_free(g);
    return 0;
}
