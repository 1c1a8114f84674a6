/* GGUF metadata: lookup by key (binary search over the sorted key index),
 * typed getters with lossless integer conversion, and access to array
 * elements (strings and nested arrays are parsed nodes; arrays of
 * fixed-size scalars are decoded from the mapping on demand). */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "io/gguf_internal.h"

const char *mlxn_gguf_type_name(mlxn_gguf_type t) {
    switch (t) {
    case MLXN_GGUF_U8: return "u8";
    case MLXN_GGUF_I8: return "i8";
    case MLXN_GGUF_U16: return "u16";
    case MLXN_GGUF_I16: return "i16";
    case MLXN_GGUF_U32: return "u32";
    case MLXN_GGUF_I32: return "i32";
    case MLXN_GGUF_F32: return "f32";
    case MLXN_GGUF_BOOL: return "bool";
    case MLXN_GGUF_STRING: return "string";
    case MLXN_GGUF_ARRAY: return "array";
    case MLXN_GGUF_U64: return "u64";
    case MLXN_GGUF_I64: return "i64";
    case MLXN_GGUF_F64: return "f64";
    }
    return "invalid";
}

size_t mlxn_gguf_kv_count(const mlxn_gguf *g) { return g ? g->n_kv : 0; }

const char *mlxn_gguf_kv_key(const mlxn_gguf *g, size_t i) {
    return g && i < g->n_kv ? g->kv[i].key : NULL;
}

const mlxn_gguf_value *mlxn_gguf_kv_value(const mlxn_gguf *g, size_t i) {
    return g && i < g->n_kv ? &g->kv[i].val : NULL;
}

static int cmp_key(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const gguf_kv *const *)elem)->key);
}

const mlxn_gguf_value *mlxn_gguf_find(const mlxn_gguf *g, const char *key) {
    if (!g || !key || !g->n_kv || !g->kv_sorted) return NULL;
    const gguf_kv *const *hit = bsearch(key, g->kv_sorted, g->n_kv, sizeof *g->kv_sorted, cmp_key);
    return hit ? &(*hit)->val : NULL;
}

/* ---- value nodes ---- */

static int is_unsigned(uint32_t t) {
    return t == MLXN_GGUF_U8 || t == MLXN_GGUF_U16 || t == MLXN_GGUF_U32 || t == MLXN_GGUF_U64;
}
static int is_signed(uint32_t t) {
    return t == MLXN_GGUF_I8 || t == MLXN_GGUF_I16 || t == MLXN_GGUF_I32 || t == MLXN_GGUF_I64;
}

static mlxn_status mismatch(const mlxn_gguf_value *v, const char *want) {
    return mlxn_fail(MLXN_ERR_FORMAT, "value is %s, expected %s", v ? mlxn_gguf_type_name(v->type) : "missing",
                     want);
}

mlxn_gguf_type mlxn_gguf_value_type(const mlxn_gguf_value *v) {
    return v ? (mlxn_gguf_type)v->type : MLXN_GGUF_U8;
}

mlxn_status mlxn_gguf_value_u64(const mlxn_gguf_value *v, uint64_t *out) {
    if (!out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_gguf_value_u64: out is NULL");
    if (v && is_unsigned(v->type)) {
        *out = v->num.u;
        return MLXN_OK;
    }
    if (v && is_signed(v->type)) {
        if (v->num.i < 0)
            return mlxn_fail(MLXN_ERR_FORMAT, "value %lld is negative, expected an unsigned integer",
                             (long long)v->num.i);
        *out = (uint64_t)v->num.i;
        return MLXN_OK;
    }
    return mismatch(v, "an integer");
}

mlxn_status mlxn_gguf_value_i64(const mlxn_gguf_value *v, int64_t *out) {
    if (!out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_gguf_value_i64: out is NULL");
    if (v && is_signed(v->type)) {
        *out = v->num.i;
        return MLXN_OK;
    }
    if (v && is_unsigned(v->type)) {
        if (v->num.u > (uint64_t)INT64_MAX)
            return mlxn_fail(MLXN_ERR_FORMAT, "value %llu does not fit in i64", (unsigned long long)v->num.u);
        *out = (int64_t)v->num.u;
        return MLXN_OK;
    }
    return mismatch(v, "an integer");
}

mlxn_status mlxn_gguf_value_f64(const mlxn_gguf_value *v, double *out) {
    if (!out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_gguf_value_f64: out is NULL");
    if (v && (v->type == MLXN_GGUF_F32 || v->type == MLXN_GGUF_F64)) {
        *out = v->num.f;
        return MLXN_OK;
    }
    return mismatch(v, "f32 or f64");
}

mlxn_status mlxn_gguf_value_bool(const mlxn_gguf_value *v, int *out) {
    if (!out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_gguf_value_bool: out is NULL");
    if (v && v->type == MLXN_GGUF_BOOL) {
        *out = (int)v->num.u;
        return MLXN_OK;
    }
    return mismatch(v, "bool");
}

const char *mlxn_gguf_value_str(const mlxn_gguf_value *v, size_t *len) {
    if (!v || v->type != MLXN_GGUF_STRING) return NULL;
    if (len) *len = (size_t)v->n;
    return v->str;
}

/* ---- arrays ---- */

mlxn_gguf_type mlxn_gguf_array_type(const mlxn_gguf_value *v) {
    return v && v->type == MLXN_GGUF_ARRAY ? (mlxn_gguf_type)v->elem_type : MLXN_GGUF_U8;
}

size_t mlxn_gguf_array_len(const mlxn_gguf_value *v) {
    return v && v->type == MLXN_GGUF_ARRAY ? (size_t)v->n : 0;
}

const void *mlxn_gguf_array_data(const mlxn_gguf_value *v) {
    return v && v->type == MLXN_GGUF_ARRAY ? v->raw : NULL;
}

/* Element i of an array of fixed-size scalars, decoded into a node. */
static mlxn_status scalar_at(const mlxn_gguf_value *v, size_t i, struct mlxn_gguf_value *el) {
    if (!v || v->type != MLXN_GGUF_ARRAY) return mismatch(v, "an array");
    size_t es = mlxn_gguf_scalar_size(v->elem_type);
    if (!es || !v->raw)
        return mlxn_fail(MLXN_ERR_FORMAT, "array of %s, expected an array of numbers",
                         mlxn_gguf_type_name((mlxn_gguf_type)v->elem_type));
    if (i >= v->n)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "array index %zu out of range (length %llu)", i,
                         (unsigned long long)v->n);
    memset(el, 0, sizeof *el);
    el->type = v->elem_type;
    const uint8_t *p = v->raw + i * es;
    uint64_t bits = 0;
    for (size_t k = es; k-- > 0;) bits = (bits << 8) | p[k];
    switch (el->type) {
    case MLXN_GGUF_I8: el->num.i = (int8_t)bits; break;
    case MLXN_GGUF_I16: el->num.i = (int16_t)bits; break;
    case MLXN_GGUF_I32: el->num.i = (int32_t)bits; break;
    case MLXN_GGUF_I64: el->num.i = (int64_t)bits; break;
    case MLXN_GGUF_F32: {
        uint32_t b = (uint32_t)bits;
        float f;
        memcpy(&f, &b, 4);
        el->num.f = f;
        break;
    }
    case MLXN_GGUF_F64: memcpy(&el->num.f, &bits, 8); break;
    default: el->num.u = bits; break; /* unsigned and bool */
    }
    return MLXN_OK;
}

mlxn_status mlxn_gguf_array_u64(const mlxn_gguf_value *v, size_t i, uint64_t *out) {
    struct mlxn_gguf_value el;
    MLXN_TRY(scalar_at(v, i, &el));
    return mlxn_gguf_value_u64(&el, out);
}

mlxn_status mlxn_gguf_array_i64(const mlxn_gguf_value *v, size_t i, int64_t *out) {
    struct mlxn_gguf_value el;
    MLXN_TRY(scalar_at(v, i, &el));
    return mlxn_gguf_value_i64(&el, out);
}

mlxn_status mlxn_gguf_array_f64(const mlxn_gguf_value *v, size_t i, double *out) {
    struct mlxn_gguf_value el;
    MLXN_TRY(scalar_at(v, i, &el));
    return mlxn_gguf_value_f64(&el, out);
}

const char *mlxn_gguf_array_str(const mlxn_gguf_value *v, size_t i, size_t *len) {
    if (!v || v->type != MLXN_GGUF_ARRAY || v->elem_type != MLXN_GGUF_STRING || i >= v->n) return NULL;
    return mlxn_gguf_value_str(&v->elems[i], len);
}

const mlxn_gguf_value *mlxn_gguf_array_at(const mlxn_gguf_value *v, size_t i) {
    if (!v || v->type != MLXN_GGUF_ARRAY || v->elem_type != MLXN_GGUF_ARRAY || i >= v->n) return NULL;
    return &v->elems[i];
}

/* ---- getters by key ---- */

/* The value of `key`, or MLXN_ERR_INVALID_ARGUMENT naming the file. */
static mlxn_status lookup(const mlxn_gguf *g, const char *key, const void *out, const mlxn_gguf_value **v) {
    if (!g || !key || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_gguf_get: NULL handle, key or out");
    *v = mlxn_gguf_find(g, key);
    if (!*v) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: metadata key '%s' is missing", g->name, key);
    return MLXN_OK;
}

static mlxn_status ctx(const mlxn_gguf *g, const char *key, mlxn_status st) {
    return st == MLXN_OK ? st : mlxn_fail_context(st, "%s: metadata key '%s': ", g->name, key);
}

mlxn_status mlxn_gguf_get_u64(const mlxn_gguf *g, const char *key, uint64_t *out) {
    const mlxn_gguf_value *v;
    MLXN_TRY(lookup(g, key, out, &v));
    return ctx(g, key, mlxn_gguf_value_u64(v, out));
}

mlxn_status mlxn_gguf_get_i64(const mlxn_gguf *g, const char *key, int64_t *out) {
    const mlxn_gguf_value *v;
    MLXN_TRY(lookup(g, key, out, &v));
    return ctx(g, key, mlxn_gguf_value_i64(v, out));
}

mlxn_status mlxn_gguf_get_u32(const mlxn_gguf *g, const char *key, uint32_t *out) {
    const mlxn_gguf_value *v;
    uint64_t x;
    MLXN_TRY(lookup(g, key, out, &v));
    MLXN_TRY(ctx(g, key, mlxn_gguf_value_u64(v, &x)));
    if (x > UINT32_MAX)
        return ctx(g, key, mlxn_fail(MLXN_ERR_FORMAT, "value %llu does not fit in u32", (unsigned long long)x));
    *out = (uint32_t)x;
    return MLXN_OK;
}

mlxn_status mlxn_gguf_get_i32(const mlxn_gguf *g, const char *key, int32_t *out) {
    const mlxn_gguf_value *v;
    int64_t x;
    MLXN_TRY(lookup(g, key, out, &v));
    MLXN_TRY(ctx(g, key, mlxn_gguf_value_i64(v, &x)));
    if (x > INT32_MAX || x < INT32_MIN)
        return ctx(g, key, mlxn_fail(MLXN_ERR_FORMAT, "value %lld does not fit in i32", (long long)x));
    *out = (int32_t)x;
    return MLXN_OK;
}

mlxn_status mlxn_gguf_get_f64(const mlxn_gguf *g, const char *key, double *out) {
    const mlxn_gguf_value *v;
    MLXN_TRY(lookup(g, key, out, &v));
    return ctx(g, key, mlxn_gguf_value_f64(v, out));
}

mlxn_status mlxn_gguf_get_f32(const mlxn_gguf *g, const char *key, float *out) {
    double x;
    MLXN_TRY(mlxn_gguf_get_f64(g, key, &x));
    *out = (float)x;
    return MLXN_OK;
}

mlxn_status mlxn_gguf_get_bool(const mlxn_gguf *g, const char *key, int *out) {
    const mlxn_gguf_value *v;
    MLXN_TRY(lookup(g, key, out, &v));
    return ctx(g, key, mlxn_gguf_value_bool(v, out));
}

mlxn_status mlxn_gguf_get_str(const mlxn_gguf *g, const char *key, const char **out, size_t *len) {
    const mlxn_gguf_value *v;
    MLXN_TRY(lookup(g, key, out, &v));
    const char *s = mlxn_gguf_value_str(v, len);
    if (!s) return ctx(g, key, mismatch(v, "string"));
    *out = s;
    return MLXN_OK;
}

mlxn_status mlxn_gguf_get_array(const mlxn_gguf *g, const char *key, mlxn_gguf_type *elem_type, size_t *len,
                                const mlxn_gguf_value **out) {
    const mlxn_gguf_value *v;
    MLXN_TRY(lookup(g, key, out, &v));
    if (v->type != MLXN_GGUF_ARRAY) return ctx(g, key, mismatch(v, "array"));
    if (elem_type) *elem_type = (mlxn_gguf_type)v->elem_type;
    if (len) *len = (size_t)v->n;
    *out = v;
    return MLXN_OK;
}
