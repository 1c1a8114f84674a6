/* Where a model's tensors come from: its safetensors files (mlxn_weights)
 * or an in-memory MLX model (a GGUF converted at load, convert_internal.h).
 * The binder (weights.c) sees both through these calls. Tensors are viewed
 * in place on the CPU (a wrapped buffer, no copy) and uploaded to other
 * devices in order on the device's stream (from the mapping, through the
 * stream's pinned staging: no device-wide wait per tensor; the load waits
 * once at the end), reporting progress; a dry model (validation only) gets
 * the dtype and shape with no buffer. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/convert_internal.h"
#include "model/model_internal.h"

size_t model_src_count(const mlxn_model *m) { return m->mem ? m->mem->n : mlxn_weights_count(m->weights); }

const mlxn_weight_info *model_src_at(const mlxn_model *m, size_t i) {
    if (!m->mem) return mlxn_weights_at(m->weights, i);
    return i < m->mem->n ? &m->mem_info[i] : NULL;
}

static int key_cmp(const void *key, const void *elem) {
    return strcmp(key, ((const mlxn_weight_info *)elem)->name);
}

const mlxn_weight_info *model_src_find(const mlxn_model *m, const char *name) {
    if (!m->mem) return mlxn_weights_find(m->weights, name);
    if (!m->mem->n) return NULL;
    return bsearch(name, m->mem_info, m->mem->n, sizeof *m->mem_info, key_cmp);
}

static void shape_only(const mlxn_weight_info *info, mlxn_tensor *out) {
    memset(out, 0, sizeof *out);
    out->dtype = info->dtype;
    out->ndim = info->ndim;
    int64_t stride = 1;
    for (int i = info->ndim - 1; i >= 0; i--) {
        out->shape[i] = info->shape[i];
        out->strides[i] = stride;
        stride *= info->shape[i];
    }
}

/* Upload n bytes into a fresh tensor of info's dtype and shape on m->dev. */
static mlxn_status upload(mlxn_model *m, const mlxn_weight_info *info, const void *bytes, size_t n, mlxn_tensor *out) {
    mlxn_tensor x;
    MLXN_TRY(mlxn_tensor_alloc(m->dev, info->dtype, info->ndim, info->shape, &x));
    mlxn_status st = mlxn_stream_write(mlxn_device_stream(m->dev), x.buf, 0, bytes, n, 0);
    if (st == MLXN_OK) st = model_own(m, &x);
    if (st != MLXN_OK) {
        mlxn_tensor_release(&x);
        return mlxn_fail_context(st, "%s: tensor %s: ", info->file, info->name);
    }
    m->up_done += (int64_t)n;
    if (m->progress) m->progress(m->progress_user, m->up_done, m->up_total > m->up_done ? m->up_total : m->up_done);
    *out = x;
    return MLXN_OK;
}

mlxn_status model_src_tensor(mlxn_model *m, const mlxn_weight_info *info, mlxn_tensor *out) {
    if (m->dry) {
        shape_only(info, out);
        return MLXN_OK;
    }
    bool cpu = mlxn_device_get_kind(m->dev) == MLXN_DEVICE_CPU;
    if (!m->mem) {
        if (!cpu) return upload(m, info, mlxn_weights_data(m->weights, info), info->nbytes, out);
        return mlxn_weights_tensor(m->weights, m->dev, info->name, out);
    }
    const cv_tensor *t = &m->mem->t[info - m->mem_info];
    const void *bytes = t->data ? t->data : t->borrowed;
    if (!bytes) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "model: tensor %s has no data", t->name);
    if (!cpu) return upload(m, info, bytes, t->nbytes, out);
    mlxn_tensor x;
    {
        mlxn_buffer *buf;
        MLXN_TRY(mlxn_buffer_wrap(m->dev, (void *)bytes, t->nbytes ? t->nbytes : 1, NULL, NULL, &buf));
        mlxn_status st = mlxn_tensor_view(buf, t->dtype, t->ndim, t->shape, 0, &x);
        if (st != MLXN_OK) {
            mlxn_buffer_free(buf);
            return st;
        }
    }
    mlxn_status st = model_own(m, &x);
    if (st != MLXN_OK) {
        mlxn_tensor_release(&x);
        return st;
    }
    *out = x;
    return MLXN_OK;
}

/* Host bytes of a source tensor (the mapping, or the in-memory set). */
static mlxn_status src_bytes(mlxn_model *m, const mlxn_weight_info *info, const void **bytes, size_t *n) {
    if (!m->mem) {
        *bytes = mlxn_weights_data(m->weights, info);
        *n = info->nbytes;
    } else {
        const cv_tensor *t = &m->mem->t[info - m->mem_info];
        *bytes = t->data ? t->data : t->borrowed;
        *n = t->nbytes;
    }
    if (!*bytes && *n) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "model: tensor %s has no data", info->name);
    return MLXN_OK;
}

mlxn_status model_src_concat(mlxn_model *m, const mlxn_weight_info *const *parts, int n, mlxn_tensor *out) {
    mlxn_weight_info all = *parts[0];
    for (int i = 1; i < n; i++) all.shape[0] += parts[i]->shape[0];
    if (m->dry) {
        shape_only(&all, out);
        return MLXN_OK;
    }
    mlxn_tensor x;
    MLXN_TRY(mlxn_tensor_alloc(m->dev, all.dtype, all.ndim, all.shape, &x));
    mlxn_status st = model_own(m, &x);
    if (st != MLXN_OK) {
        mlxn_tensor_release(&x);
        return st;
    }
    /* the parts' rows one after another: in order on the device's stream
       (from the mapping straight into place on a GPU: no second copy) */
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        const void *bytes;
        size_t nb;
        MLXN_TRY(src_bytes(m, parts[i], &bytes, &nb));
        st = mlxn_stream_write(mlxn_device_stream(m->dev), x.buf, at, bytes, nb, 0);
        if (st != MLXN_OK) return mlxn_fail_context(st, "%s: tensor %s: ", parts[i]->file, parts[i]->name);
        /* the mapped part is not read again: out of the resident set (on
           the CPU this is what keeps the stacked copy from costing its size
           twice; a GPU's upload has finished with it when the call returns) */
        if (!m->mem) mlxn_weights_advise_unneeded(m->weights, parts[i]);
        at += nb;
        m->up_done += (int64_t)nb;
        if (m->progress)
            m->progress(m->progress_user, m->up_done, m->up_total > m->up_done ? m->up_total : m->up_done);
    }
    *out = x;
    return MLXN_OK;
}

/* Views of a set's tensors for the binder. */
mlxn_status model_src_set(mlxn_model *m, cv_set *set) {
    m->mem = set;
    m->mem_info = calloc(set->n ? set->n : 1, sizeof *m->mem_info);
    if (!m->mem_info) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "model: out of memory");
    for (size_t i = 0; i < set->n; i++) {
        const cv_tensor *t = &set->t[i];
        mlxn_weight_info *w = &m->mem_info[i];
        w->name = t->name;
        w->file = t->origin ? t->origin : "(converted in memory)";
        w->dtype = t->dtype;
        w->ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) w->shape[d] = t->shape[d];
        w->nbytes = t->nbytes;
    }
    return MLXN_OK;
}
