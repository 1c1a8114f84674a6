/* Devices, streams and buffers: the backend-independent half. Each call
 * checks its arguments and forwards to the device's backend vtable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/internal.h"

mlxn_status mlxn_device_parse(const char *spec, mlxn_device_params *p) {
    if (!spec || !p) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "device: NULL argument");
    if (strcmp(spec, "cpu") == 0) {
        p->kind = MLXN_DEVICE_CPU;
        p->index = 0;
        return MLXN_OK;
    }
    if (strncmp(spec, "cuda", 4) == 0) {
        const char *rest = spec + 4;
        p->kind = MLXN_DEVICE_CUDA;
        p->index = 0;
        if (*rest == '\0') return MLXN_OK;
        if (*rest == ':' && rest[1] >= '0' && rest[1] <= '9') {
            char *end;
            long v = strtol(rest + 1, &end, 10);
            if (*end == '\0' && v >= 0 && v < 1024) {
                p->index = (int)v;
                return MLXN_OK;
            }
        }
    }
    return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "device '%s' not understood: use cpu, cuda or cuda:N",
                     spec);
}

mlxn_status mlxn_device_new(const mlxn_device_params *params, mlxn_device **out) {
    if (!out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_device_new: out is NULL");
    *out = NULL;
    mlxn_device_params p = {0};
    if (params) p = *params;
    const mlxn_backend_i *be;
    switch (p.kind) {
    case MLXN_DEVICE_CPU: be = &mlxn_cpu_backend; break;
    case MLXN_DEVICE_CUDA: be = &mlxn_cuda_backend; break;
    default: return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_device_new: unknown device kind %d", (int)p.kind);
    }
    mlxn_device *dev = calloc(1, sizeof *dev);
    if (!dev) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "mlxn_device_new: out of memory");
    dev->be = be;
    dev->kind = p.kind;
    dev->index = p.index;
    mlxn_status st = be->device_init(dev, &p);
    if (st != MLXN_OK) {
        free(dev);
        return st;
    }
    st = mlxn_stream_new(dev, &dev->default_stream);
    if (st != MLXN_OK) {
        be->device_free(dev);
        free(dev);
        return st;
    }
    *out = dev;
    return MLXN_OK;
}

void mlxn_device_free(mlxn_device *dev) {
    if (!dev) return;
    mlxn_stream_free(dev->default_stream);
    dev->be->device_free(dev);
    free(dev);
}

mlxn_device_kind mlxn_device_get_kind(const mlxn_device *dev) { return dev->kind; }
const char *mlxn_device_name(const mlxn_device *dev) { return dev ? dev->name : "(null)"; }
mlxn_stream *mlxn_device_stream(mlxn_device *dev) { return dev ? dev->default_stream : NULL; }

mlxn_status mlxn_stream_new(mlxn_device *dev, mlxn_stream **out) {
    if (!dev || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_stream_new: NULL argument");
    *out = NULL;
    mlxn_stream *s = calloc(1, sizeof *s);
    if (!s) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "mlxn_stream_new: out of memory");
    s->dev = dev;
    mlxn_status st = dev->be->stream_init(s);
    if (st != MLXN_OK) {
        free(s);
        return st;
    }
    *out = s;
    return MLXN_OK;
}

void mlxn_stream_free(mlxn_stream *s) {
    if (!s) return;
    s->dev->be->stream_free(s);
    free(s);
}

mlxn_device *mlxn_stream_device(mlxn_stream *s) { return s ? s->dev : NULL; }

mlxn_status mlxn_stream_sync(mlxn_stream *s) {
    if (!s) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_stream_sync: stream is NULL");
    return s->dev->be->stream_sync(s);
}

mlxn_status mlxn_buffer_new(mlxn_device *dev, size_t bytes, mlxn_buffer **out) {
    if (!dev || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_buffer_new: NULL argument");
    *out = NULL;
    mlxn_buffer *b = calloc(1, sizeof *b);
    if (!b) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "mlxn_buffer_new: out of memory");
    mlxn_status st = dev->be->alloc(dev, bytes ? bytes : 1, &b->ptr);
    if (st != MLXN_OK) {
        free(b);
        return st;
    }
    b->dev = dev;
    b->size = bytes;
    b->owned = 1;
    *out = b;
    return MLXN_OK;
}

mlxn_status mlxn_buffer_wrap(mlxn_device *dev, void *host, size_t bytes, void (*release)(void *user),
                             void *user, mlxn_buffer **out) {
    if (!dev || !out || (!host && bytes))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_buffer_wrap: NULL argument");
    *out = NULL;
    if (!dev->be->host_visible)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "mlxn_buffer_wrap: device %s cannot use host memory directly",
                         dev->name);
    mlxn_buffer *b = calloc(1, sizeof *b);
    if (!b) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "mlxn_buffer_wrap: out of memory");
    b->dev = dev;
    b->ptr = host;
    b->size = bytes;
    b->release = release;
    b->user = user;
    *out = b;
    return MLXN_OK;
}

void mlxn_buffer_free(mlxn_buffer *b) {
    if (!b) return;
    if (b->owned) b->dev->be->free(b->dev, b->ptr);
    if (b->release) b->release(b->user);
    free(b);
}

size_t mlxn_buffer_size(const mlxn_buffer *b) { return b ? b->size : 0; }
mlxn_device *mlxn_buffer_device(const mlxn_buffer *b) { return b ? b->dev : NULL; }
void *mlxn_buffer_host(mlxn_buffer *b) { return b && b->dev->be->host_visible ? b->ptr : NULL; }

static mlxn_status check_range(const mlxn_buffer *b, size_t offset, size_t n, const char *what) {
    if (!b) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: buffer is NULL", what);
    if (offset > b->size || n > b->size - offset)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: range [%zu, +%zu) is outside the %zu-byte buffer",
                         what, offset, n, b->size);
    return MLXN_OK;
}

mlxn_status mlxn_buffer_write(mlxn_buffer *b, size_t offset, const void *src, size_t n) {
    MLXN_TRY(check_range(b, offset, n, "mlxn_buffer_write"));
    if (n == 0) return MLXN_OK;
    return b->dev->be->upload(b->dev, (char *)b->ptr + offset, src, n);
}

mlxn_status mlxn_buffer_read(mlxn_buffer *b, size_t offset, void *dst, size_t n) {
    MLXN_TRY(check_range(b, offset, n, "mlxn_buffer_read"));
    if (n == 0) return MLXN_OK;
    return b->dev->be->download(b->dev, dst, (const char *)b->ptr + offset, n);
}

/* ---- stream-level helpers (core/internal.h) ---- */

mlxn_status mlxn_host_alloc(mlxn_device *dev, size_t bytes, void **ptr) {
    if (!dev || !ptr) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_host_alloc: NULL argument");
    return dev->be->host_alloc(dev, bytes ? bytes : 1, ptr);
}

void mlxn_host_free(mlxn_device *dev, void *ptr) {
    if (dev && ptr) dev->be->host_free(dev, ptr);
}

mlxn_status mlxn_stream_write(mlxn_stream *s, mlxn_buffer *b, size_t offset, const void *src, size_t n,
                              int src_pinned) {
    if (!s) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_stream_write: stream is NULL");
    MLXN_TRY(check_range(b, offset, n, "mlxn_stream_write"));
    if (b->dev != s->dev)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_stream_write: the buffer is on %s, the stream on %s",
                         b->dev->name, s->dev->name);
    if (n == 0) return MLXN_OK;
    return s->dev->be->stream_upload(s, (char *)b->ptr + offset, src, n, src_pinned);
}

mlxn_status mlxn_stream_read(mlxn_stream *s, mlxn_buffer *b, size_t offset, void *dst, size_t n) {
    if (!s) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_stream_read: stream is NULL");
    MLXN_TRY(check_range(b, offset, n, "mlxn_stream_read"));
    if (b->dev != s->dev)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_stream_read: the buffer is on %s, the stream on %s",
                         b->dev->name, s->dev->name);
    if (n == 0) return s->dev->be->stream_sync(s);
    return s->dev->be->stream_download(s, dst, (const char *)b->ptr + offset, n);
}

/* mlxn_reader: the backend's deferred read where it has one, else a read
 * at begin into host memory of our own, handed over at end. */
struct mlxn_reader {
    mlxn_stream *s;
    size_t cap;     /* max_bytes */
    size_t n;       /* the pending read's bytes */
    int pending;
    void *impl;     /* the backend's (reader_new), or [cap] host bytes */
};

mlxn_status mlxn_reader_new(mlxn_stream *s, size_t max_bytes, mlxn_reader **out) {
    if (!s || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_reader_new: NULL argument");
    *out = NULL;
    if (max_bytes == 0) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_reader_new: max_bytes is 0");
    mlxn_reader *r = calloc(1, sizeof *r);
    if (!r) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "mlxn_reader_new: out of host memory");
    r->s = s;
    r->cap = max_bytes;
    mlxn_status st = MLXN_OK;
    if (s->dev->be->reader_new) st = s->dev->be->reader_new(s, max_bytes, &r->impl);
    else if (!(r->impl = malloc(max_bytes)))
        st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "mlxn_reader_new: out of host memory for %zu bytes", max_bytes);
    if (st != MLXN_OK) {
        free(r);
        return st;
    }
    *out = r;
    return MLXN_OK;
}

mlxn_status mlxn_reader_begin(mlxn_reader *r, mlxn_buffer *b, size_t offset, size_t n) {
    if (!r) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_reader_begin: reader is NULL");
    MLXN_TRY(check_range(b, offset, n, "mlxn_reader_begin"));
    if (b->dev != r->s->dev)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_reader_begin: the buffer is on %s, the stream on %s",
                         b->dev->name, r->s->dev->name);
    if (n > r->cap)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_reader_begin: %zu bytes asked, the reader holds %zu", n,
                         r->cap);
    if (r->pending)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_reader_begin: a read is pending (end it first)");
    const void *src = (const char *)b->ptr + offset;
    mlxn_stream *s = r->s;
    MLXN_TRY(s->dev->be->reader_begin ? s->dev->be->reader_begin(s, r->impl, src, n)
                                      : s->dev->be->stream_download(s, r->impl, src, n));
    r->n = n;
    r->pending = 1;
    return MLXN_OK;
}

mlxn_status mlxn_reader_end(mlxn_reader *r, void *dst) {
    if (!r) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_reader_end: reader is NULL");
    if (!r->pending) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_reader_end: no read is pending");
    if (r->n && !dst) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_reader_end: dst is NULL");
    r->pending = 0; /* ended, whatever the device reports */
    mlxn_stream *s = r->s;
    if (s->dev->be->reader_end) return s->dev->be->reader_end(s, r->impl, dst, r->n);
    if (r->n) memcpy(dst, r->impl, r->n);
    return MLXN_OK;
}

void mlxn_reader_free(mlxn_reader *r) {
    if (!r) return;
    if (r->s->dev->be->reader_free) r->s->dev->be->reader_free(r->s, r->impl);
    else free(r->impl);
    free(r);
}

int mlxn_stream_has_graphs(const mlxn_stream *s) { return s && s->dev->be->graph_begin != NULL; }

mlxn_status mlxn_stream_capture_begin(mlxn_stream *s) {
    if (!mlxn_stream_has_graphs(s))
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "graph capture: device %s has no graphs", s ? s->dev->name : "(null)");
    return s->dev->be->graph_begin(s);
}

mlxn_status mlxn_stream_capture_end(mlxn_stream *s, void **graph) { return s->dev->be->graph_end(s, graph); }

mlxn_status mlxn_stream_graph_launch(mlxn_stream *s, void *graph) { return s->dev->be->graph_launch(s, graph); }

void mlxn_stream_graph_free(mlxn_stream *s, void *graph) {
    if (s && graph && s->dev->be->graph_free) s->dev->be->graph_free(s->dev, graph);
}
