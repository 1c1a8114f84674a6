/* safetensors header parsing and validation (from a block of bytes).
 *
 * Layout: [u64 little-endian header length n][n bytes of JSON][data]. The
 * JSON is an object: "__metadata__" -> {string: string} (or null, which
 * MLX writes when there is no metadata), and for every tensor
 * name -> {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}
 * with offsets relative to the data section. Everything is checked before
 * use: lengths against the file size, integers for being integers and
 * non-negative, the shape's byte size against the offsets (overflow-safe),
 * the offsets against the data section, and tensors for overlapping. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/internal.h"
#include "io/st_internal.h"

static const struct {
    const char *name;
    mlxn_dtype dt;
} st_dtypes[] = {
    {"BOOL", MLXN_DTYPE_BOOL}, {"U8", MLXN_DTYPE_U8},     {"I8", MLXN_DTYPE_I8},
    {"U16", MLXN_DTYPE_U16},   {"I16", MLXN_DTYPE_I16},   {"U32", MLXN_DTYPE_U32},
    {"I32", MLXN_DTYPE_I32},   {"U64", MLXN_DTYPE_U64},   {"I64", MLXN_DTYPE_I64},
    {"F16", MLXN_DTYPE_F16},   {"BF16", MLXN_DTYPE_BF16}, {"F32", MLXN_DTYPE_F32},
    {"F64", MLXN_DTYPE_F64},   {"F8_E4M3", MLXN_DTYPE_F8_E4M3}, {"F8_E5M2", MLXN_DTYPE_F8_E5M2},
    {"C64", MLXN_DTYPE_C64},
    /* MLX reads E8M0 (the mxfp scale type) as raw bytes; so do we. */
    {"F8_E8M0", MLXN_DTYPE_U8},
};

/* Types the safetensors format defines that we cannot hold. */
static const char *const st_unsupported[] = {"F4", "F6_E2M3", "F6_E3M2", "C128", "F8_E4M3FNUZ", "F8_E5M2FNUZ"};

bool mlxn_st_dtype_from_name(const char *s, mlxn_dtype *out) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(s, st_dtypes[i].name)) {
            *out = st_dtypes[i].dt;
            return true;
        }
    return false;
}

const char *mlxn_st_dtype_to_name(mlxn_dtype dt) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dt == dt) return st_dtypes[i].name; /* U8 precedes F8_E8M0 */
    return NULL;
}

/* Non-negative JSON integer -> *v; false for reals, negatives, others. */
static bool get_count(const json_t *j, int64_t *v) {
    if (!json_is_integer(j) || json_integer_value(j) < 0) return false;
    *v = (int64_t)json_integer_value(j);
    return true;
}

static mlxn_status parse_metadata(st_file *f, json_t *m) {
    if (json_is_null(m)) return MLXN_OK;
    if (!json_is_object(m))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: \"__metadata__\" is not an object", f->path);
    size_t n = json_object_size(m);
    f->meta = calloc(n ? n : 1, sizeof *f->meta);
    if (!f->meta) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory for metadata", f->path);
    const char *key;
    json_t *val;
    json_object_foreach(m, key, val) {
        if (!json_is_string(val))
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: metadata '%s' is not a string", f->path, key);
        st_meta *e = &f->meta[f->n_meta];
        e->key = strdup(key);
        e->value = strdup(json_string_value(val));
        if (e->key) f->n_meta++; /* counted once key exists, so free() sees it */
        if (!e->key || !e->value)
            return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory for metadata", f->path);
    }
    return MLXN_OK;
}

/* One tensor entry -> *t (name not yet set). */
static mlxn_status parse_tensor(const st_file *f, const char *name, json_t *e, st_tensor *t) {
    const char *p = f->path;
    if (!json_is_object(e)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s': entry is not an object", p, name);

    json_t *jd = json_object_get(e, "dtype");
    if (!json_is_string(jd))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", p, name);
    const char *ds = json_string_value(jd);
    if (!mlxn_st_dtype_from_name(ds, &t->info.dtype)) {
        for (size_t i = 0; i < sizeof st_unsupported / sizeof st_unsupported[0]; i++)
            if (!strcmp(ds, st_unsupported[i]))
                return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported", p, name, ds);
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", p, name, ds);
    }

    json_t *js = json_object_get(e, "shape");
    if (!json_is_array(js))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", p, name);
    size_t nd = json_array_size(js);
    if (nd > MLXN_MAX_DIMS)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d)", p, name, nd,
                         MLXN_MAX_DIMS);
    t->info.ndim = (int)nd;
    bool any_zero = false;
    for (size_t i = 0; i < nd; i++) {
        if (!get_count(json_array_get(js, i), &t->info.shape[i]))
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer", p,
                             name, i);
        if (t->info.shape[i] == 0) any_zero = true;
    }
    /* numel * size with overflow checks (a zero dimension makes it 0 whatever the others are) */
    uint64_t nbytes = 0;
    if (!any_zero) {
        nbytes = mlxn_dtype_size(t->info.dtype);
        for (size_t i = 0; i < nd; i++) {
            uint64_t d = (uint64_t)t->info.shape[i];
            if (nbytes > (uint64_t)INT64_MAX / d)
                return mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s': shape byte size overflows", p, name);
            nbytes *= d;
        }
    }

    json_t *jo = json_object_get(e, "data_offsets");
    int64_t b, en;
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" is not a [begin, end] array", p, name);
    if (!get_count(json_array_get(jo, 0), &b) || !get_count(json_array_get(jo, 1), &en))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s': data_offsets are not non-negative integers", p, name);
    if (en < b)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] end before they begin", p,
                         name, (long long)b, (long long)en);
    if ((uint64_t)(en - b) != nbytes) {
        char desc[128];
        mlxn_tensor tmp = {.dtype = t->info.dtype, .ndim = t->info.ndim};
        memcpy(tmp.shape, t->info.shape, sizeof tmp.shape);
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] hold %lld bytes but %s needs %llu",
                         p, name, (long long)b, (long long)en, (long long)(en - b),
                         mlxn_tensor_describe(&tmp, desc, sizeof desc), (unsigned long long)nbytes);
    }
    if ((uint64_t)en > f->data_size)
        return mlxn_fail(MLXN_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%lld, %lld] run past the %zu-byte data section", p, name,
                         (long long)b, (long long)en, f->data_size);
    t->begin = (size_t)b;
    t->info.nbytes = (size_t)nbytes;
    t->info.file = f->path;
    return MLXN_OK;
}

static int by_begin(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->info.nbytes < y->info.nbytes ? -1 : x->info.nbytes > y->info.nbytes;
}

/* No two non-empty tensors may share a byte (empty ones hold none). */
static mlxn_status check_overlap(const st_file *f, st_tensor *ts, size_t n) {
    if (n < 2) return MLXN_OK;
    st_tensor **order = malloc(n * sizeof *order);
    if (!order) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    for (size_t i = 0; i < n; i++) order[i] = &ts[i];
    qsort(order, n, sizeof *order, by_begin);
    const st_tensor *last = NULL; /* the non-empty tensor reaching furthest so far */
    mlxn_status st = MLXN_OK;
    for (size_t i = 0; i < n && st == MLXN_OK; i++) {
        const st_tensor *t = order[i];
        if (t->info.nbytes == 0) continue;
        if (last && t->begin < last->begin + last->info.nbytes)
            st = mlxn_fail(MLXN_ERR_FORMAT, "%s: tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap", f->path,
                           last->info.name, last->begin, last->begin + last->info.nbytes, t->info.name, t->begin,
                           t->begin + t->info.nbytes);
        if (!last || t->begin + t->info.nbytes > last->begin + last->info.nbytes) last = t;
    }
    free(order);
    return st;
}

mlxn_status mlxn_st_parse(st_file *f, size_t file_index, st_tensor **tensors, size_t *n, size_t *cap) {
    const char *p = f->path;
    if (f->size < 8)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file (8-byte header length)",
                         p, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->bytes[i];
    if (hlen > MLXN_ST_MAX_HEADER)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: header length %llu is absurd (limit %llu); not a safetensors file?", p,
                         (unsigned long long)hlen, (unsigned long long)MLXN_ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: header length %llu runs past the end of the %zu-byte file (truncated?)",
                         p, (unsigned long long)hlen, f->size);
    f->data = f->bytes + 8 + hlen;
    f->data_size = f->size - 8 - (size_t)hlen;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)f->bytes + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: header is not valid JSON: %s (byte %d)", p, jerr.text, jerr.position);
    mlxn_status st = MLXN_OK;
    size_t first = *n;
    if (!json_is_object(root)) {
        st = mlxn_fail(MLXN_ERR_FORMAT, "%s: header is not a JSON object", p);
        goto done;
    }
    size_t want = *n + json_object_size(root);
    if (want > *cap) {
        size_t nc = want + want / 2 + 8;
        st_tensor *g = realloc(*tensors, nc * sizeof *g);
        if (!g) {
            st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu tensors", p, want);
            goto done;
        }
        *tensors = g;
        *cap = nc;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            st = parse_metadata(f, val);
            if (st) goto done;
            continue;
        }
        st_tensor *t = &(*tensors)[*n];
        memset(t, 0, sizeof *t);
        st = parse_tensor(f, key, val, t);
        if (st) goto done;
        t->info.name = strdup(key);
        if (!t->info.name) {
            st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", p);
            goto done;
        }
        t->file = file_index;
        t->host = f->data + t->begin;
        (*n)++;
    }
    st = check_overlap(f, *tensors + first, *n - first);
done:
    json_decref(root);
    return st;
}
