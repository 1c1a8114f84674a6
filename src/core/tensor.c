/* Tensor views: construction, sizes and contiguity. */
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "core/internal.h"

static mlxn_status fill_contiguous(mlxn_dtype dtype, int ndim, const int64_t *shape, mlxn_tensor *t) {
    if (mlxn_dtype_size(dtype) == 0) return mlxn_fail(MLXN_ERR_DTYPE, "tensor: invalid dtype %d", (int)dtype);
    if (ndim < 0 || ndim > MLXN_MAX_DIMS)
        return mlxn_fail(MLXN_ERR_SHAPE, "tensor: %d dimensions (at most %d)", ndim, MLXN_MAX_DIMS);
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] < 0) return mlxn_fail(MLXN_ERR_SHAPE, "tensor: negative dimension %lld", (long long)shape[i]);
        t->shape[i] = shape[i];
        t->strides[i] = stride;
        if (shape[i] && stride > INT64_MAX / shape[i])
            return mlxn_fail(MLXN_ERR_SHAPE, "tensor: element count overflows");
        stride *= shape[i];
    }
    return MLXN_OK;
}

int64_t mlxn_tensor_numel(const mlxn_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t mlxn_tensor_nbytes(const mlxn_tensor *t) {
    if (mlxn_tensor_numel(t) == 0) return 0;
    int64_t last = 0; /* largest element index reached */
    for (int i = 0; i < t->ndim; i++) last += (t->shape[i] - 1) * (t->strides[i] > 0 ? t->strides[i] : 0);
    return (size_t)(last + 1) * mlxn_dtype_size(t->dtype);
}

bool mlxn_tensor_is_contiguous(const mlxn_tensor *t) {
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != stride) return false;
        stride *= t->shape[i];
    }
    return true;
}

mlxn_status mlxn_tensor_view(mlxn_buffer *buf, mlxn_dtype dtype, int ndim, const int64_t *shape,
                             size_t offset, mlxn_tensor *out) {
    if (!buf || !out || (ndim > 0 && !shape))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_tensor_view: NULL argument");
    mlxn_tensor t;
    MLXN_TRY(fill_contiguous(dtype, ndim, shape, &t));
    t.buf = buf;
    t.offset = offset;
    size_t need = mlxn_tensor_nbytes(&t);
    if (offset > buf->size || need > buf->size - offset) {
        char d[96];
        return mlxn_fail(MLXN_ERR_SHAPE, "mlxn_tensor_view: %s at byte %zu needs %zu bytes, buffer has %zu",
                         mlxn_tensor_describe(&t, d, sizeof d), offset, need, buf->size);
    }
    *out = t;
    return MLXN_OK;
}

mlxn_status mlxn_tensor_alloc(mlxn_device *dev, mlxn_dtype dtype, int ndim, const int64_t *shape,
                              mlxn_tensor *out) {
    if (!dev || !out || (ndim > 0 && !shape))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_tensor_alloc: NULL argument");
    mlxn_tensor t;
    MLXN_TRY(fill_contiguous(dtype, ndim, shape, &t));
    MLXN_TRY(mlxn_buffer_new(dev, mlxn_tensor_nbytes(&t), &t.buf));
    *out = t;
    return MLXN_OK;
}

void mlxn_tensor_release(mlxn_tensor *t) {
    if (!t) return;
    mlxn_buffer_free(t->buf);
    memset(t, 0, sizeof *t);
}

void *mlxn_tensor_host(const mlxn_tensor *t) {
    if (!t || !t->buf) return NULL;
    char *base = mlxn_buffer_host(t->buf);
    return base ? base + t->offset : NULL;
}

const char *mlxn_tensor_describe(const mlxn_tensor *t, char *buf, size_t n) {
    if (!buf || n == 0) return "";
    size_t k = (size_t)snprintf(buf, n, "%s[", mlxn_dtype_name(t->dtype));
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}
