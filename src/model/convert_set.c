/* The in-memory MLX model of a conversion (cv_set, convert_internal.h):
 * adding tensors (owned, borrowed or lazy), sorting and lookup, getting a
 * tensor's bytes, and freeing everything. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/convert_internal.h"

void cv_free(cv_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->t[i].name);
        free(s->t[i].origin);
        free(s->t[i].data);
    }
    free(s->t);
    json_decref(s->config);
    json_decref(s->tokenizer);
    json_decref(s->tokenizer_config);
    free(s->copy_dir);
    mlxn_weights_free(s->src_st);
    mlxn_gguf_free(s->src_gguf);
    memset(s, 0, sizeof *s);
}

static mlxn_status push(cv_set *s, const char *name, const char *origin, mlxn_dtype dt, int ndim, const int64_t *shape,
                        cv_tensor **out) {
    if (ndim < 0 || ndim > MLXN_MAX_DIMS)
        return mlxn_fail(MLXN_ERR_SHAPE, "convert: tensor %s has %d dimensions", name, ndim);
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        cv_tensor *t = realloc(s->t, cap * sizeof *t);
        if (!t) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        s->t = t;
        s->cap = cap;
    }
    cv_tensor *t = &s->t[s->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->origin = origin ? strdup(origin) : NULL;
    if (!t->name || (origin && !t->origin)) {
        free(t->name);
        free(t->origin);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    }
    t->dtype = dt;
    t->ndim = ndim;
    size_t n = mlxn_dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    t->nbytes = n;
    s->n++;
    *out = t;
    return MLXN_OK;
}

mlxn_status cv_add(cv_set *s, const char *name, const char *origin, mlxn_dtype dt, int ndim, const int64_t *shape,
                   void **data) {
    cv_tensor *t = NULL;
    MLXN_TRY(push(s, name, origin, dt, ndim, shape, &t));
    t->data = calloc(1, t->nbytes ? t->nbytes : 1);
    if (!t->data) {
        size_t nb = t->nbytes;
        free(t->name);
        free(t->origin);
        s->n--;
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: tensor %s: out of memory (%zu bytes)", name, nb);
    }
    *data = t->data;
    return MLXN_OK;
}

mlxn_status cv_add_borrowed(cv_set *s, const char *name, const char *origin, mlxn_dtype dt, int ndim,
                            const int64_t *shape, const void *bytes) {
    cv_tensor *t = NULL;
    MLXN_TRY(push(s, name, origin, dt, ndim, shape, &t));
    t->borrowed = bytes;
    return MLXN_OK;
}

mlxn_status cv_add_lazy(cv_set *s, const char *name, mlxn_dtype dt, int ndim, const int64_t *shape, cv_fill_fn fill,
                        uint64_t seed, float scale, int bits) {
    cv_tensor *t = NULL;
    MLXN_TRY(push(s, name, NULL, dt, ndim, shape, &t));
    t->fill = fill;
    t->fill_seed = seed;
    t->fill_scale = scale;
    t->fill_bits = bits;
    return MLXN_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const cv_tensor *)a)->name, ((const cv_tensor *)b)->name);
}

mlxn_status cv_finish(cv_set *s, const char *what) {
    if (s->n) qsort(s->t, s->n, sizeof *s->t, by_name);
    for (size_t i = 1; i < s->n; i++)
        if (!strcmp(s->t[i - 1].name, s->t[i].name))
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: two tensors map to %s (%s and %s)", what, s->t[i].name,
                             s->t[i - 1].origin ? s->t[i - 1].origin : "?", s->t[i].origin ? s->t[i].origin : "?");
    return MLXN_OK;
}

static int key_cmp(const void *key, const void *elem) { return strcmp(key, ((const cv_tensor *)elem)->name); }

const cv_tensor *cv_find(const cv_set *s, const char *name) {
    if (!s->n) return NULL;
    return bsearch(name, s->t, s->n, sizeof *s->t, key_cmp);
}

mlxn_status cv_bytes(const cv_tensor *t, const void **bytes, void **tmp) {
    *tmp = NULL;
    if (t->data) *bytes = t->data;
    else if (t->borrowed) *bytes = t->borrowed;
    else if (t->fill) {
        void *b = malloc(t->nbytes ? t->nbytes : 1);
        if (!b) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: tensor %s: out of memory (%zu bytes)", t->name, t->nbytes);
        mlxn_status st = t->fill(t, b);
        if (st != MLXN_OK) {
            free(b);
            return st;
        }
        *bytes = b;
        *tmp = b;
    } else {
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "convert: tensor %s has no bytes", t->name);
    }
    return MLXN_OK;
}

json_t *cv_json_f32(float f) {
    char buf[48];
    if (!isfinite(f)) return json_real(0); /* never in a config we write */
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}
