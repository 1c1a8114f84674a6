/* safetensors writer: collect tensors, then write one file atomically.
 *
 * The header lists tensors in name order with their data laid out back to
 * back in the same order; it is padded with spaces so the data section
 * starts at a multiple of 8 bytes (then every tensor of 8-byte-or-smaller
 * elements whose offset is aligned stays aligned when mmap'd). The file is
 * written to a temporary name in the target directory and renamed over
 * the target, so a reader never sees a half-written file; on any error the
 * temporary file is removed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/internal.h"
#include "io/st_internal.h"

typedef struct wr_tensor {
    char *name;
    mlxn_dtype dtype;
    int ndim;
    int64_t shape[MLXN_MAX_DIMS];
    const void *data; /* [nbytes], caller-owned */
    size_t nbytes;
} wr_tensor;

struct mlxn_st_writer {
    wr_tensor *t;
    size_t n, cap;
    json_t *meta; /* object: key -> string */
};

mlxn_status mlxn_st_writer_new(mlxn_st_writer **out) {
    if (!out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_st_writer_new: NULL argument");
    *out = NULL;
    mlxn_st_writer *wr = calloc(1, sizeof *wr);
    if (!wr || !(wr->meta = json_object())) {
        free(wr);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "mlxn_st_writer_new: out of memory");
    }
    *out = wr;
    return MLXN_OK;
}

void mlxn_st_writer_free(mlxn_st_writer *wr) {
    if (!wr) return;
    for (size_t i = 0; i < wr->n; i++) free(wr->t[i].name);
    free(wr->t);
    json_decref(wr->meta);
    free(wr);
}

mlxn_status mlxn_st_writer_set_metadata(mlxn_st_writer *wr, const char *key, const char *value) {
    if (!wr || !key || !value)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_st_writer_set_metadata: NULL argument");
    json_t *s = json_string(value);
    if (!s) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_st_writer_set_metadata: '%s' is not UTF-8", key);
    if (json_object_set_new(wr->meta, key, s) != 0)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_st_writer_set_metadata: key '%s' is not UTF-8", key);
    return MLXN_OK;
}

mlxn_status mlxn_st_writer_add(mlxn_st_writer *wr, const char *name, mlxn_dtype dtype, int ndim,
                               const int64_t *shape, const void *data) {
    if (!wr || !name || (ndim > 0 && !shape))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_st_writer_add: NULL argument");
    if (!mlxn_st_dtype_to_name(dtype))
        return mlxn_fail(MLXN_ERR_DTYPE, "mlxn_st_writer_add: tensor '%s': invalid dtype %d", name, (int)dtype);
    if (!strcmp(name, "__metadata__"))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_st_writer_add: '__metadata__' is reserved");
    if (ndim < 0 || ndim > MLXN_MAX_DIMS)
        return mlxn_fail(MLXN_ERR_SHAPE, "mlxn_st_writer_add: tensor '%s': %d dimensions", name, ndim);
    for (size_t i = 0; i < wr->n; i++)
        if (!strcmp(wr->t[i].name, name))
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_st_writer_add: tensor '%s' added twice", name);
    uint64_t nb = mlxn_dtype_size(dtype);
    bool zero = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return mlxn_fail(MLXN_ERR_SHAPE, "mlxn_st_writer_add: tensor '%s': negative dimension", name);
        if (shape[i] == 0) zero = true;
    }
    for (int i = 0; i < ndim && !zero; i++) {
        if (nb > (uint64_t)INT64_MAX / (uint64_t)shape[i])
            return mlxn_fail(MLXN_ERR_SHAPE, "mlxn_st_writer_add: tensor '%s': size overflows", name);
        nb *= (uint64_t)shape[i];
    }
    if (zero) nb = 0;
    if (nb && !data) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_st_writer_add: tensor '%s': NULL data", name);
    if (wr->n == wr->cap) {
        size_t nc = wr->cap ? 2 * wr->cap : 16;
        wr_tensor *g = realloc(wr->t, nc * sizeof *g);
        if (!g) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "mlxn_st_writer_add: out of memory");
        wr->t = g;
        wr->cap = nc;
    }
    wr_tensor *t = &wr->t[wr->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "mlxn_st_writer_add: out of memory");
    json_t *probe = json_string(name); /* jansson refuses non-UTF-8 keys: catch it here, not at save */
    if (!probe) {
        free(t->name);
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_st_writer_add: tensor name is not UTF-8");
    }
    json_decref(probe);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = (size_t)nb;
    wr->n++;
    return MLXN_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const wr_tensor *)a)->name, ((const wr_tensor *)b)->name);
}

/* The header JSON (unpadded), malloc'd; NULL when out of memory. */
static char *build_header(mlxn_st_writer *wr) {
    json_t *root = json_object();
    if (!root) return NULL;
    int bad = 0;
    if (json_object_size(wr->meta)) bad |= json_object_set(root, "__metadata__", wr->meta);
    uint64_t off = 0;
    for (size_t i = 0; i < wr->n && !bad; i++) {
        const wr_tensor *t = &wr->t[i];
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->ndim; d++) bad |= json_array_append_new(shape, json_integer(t->shape[d]));
        json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", mlxn_st_dtype_to_name(t->dtype), "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + t->nbytes));
        bad |= !e || json_object_set_new(root, t->name, e);
        off += t->nbytes;
    }
    char *s = bad ? NULL : json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

static mlxn_status write_all(FILE *fp, const void *p, size_t n, const char *tmp) {
    if (n && fwrite(p, 1, n, fp) != n) return mlxn_fail(MLXN_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    return MLXN_OK;
}

mlxn_status mlxn_st_writer_save(mlxn_st_writer *wr, const char *path) {
    if (!wr || !path) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_st_writer_save: NULL argument");
    if (wr->n > 1) qsort(wr->t, wr->n, sizeof *wr->t, by_name);
    char *hdr = build_header(wr);
    if (!hdr) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: cannot build the header (out of memory)", path);
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) / 8 * 8;
    size_t tn = strlen(path) + 16;
    char *tmp = malloc(tn);
    if (!tmp) {
        free(hdr);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    snprintf(tmp, tn, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        mlxn_status st = mlxn_fail(MLXN_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        free(hdr);
        return st;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; weights are meant to be shared */
    FILE *fp = fdopen(fd, "wb");
    mlxn_status st = MLXN_OK;
    if (!fp) {
        st = mlxn_fail(MLXN_ERR_IO, "%s: fdopen failed: %s", tmp, strerror(errno));
        close(fd);
    } else {
        uint8_t len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
        st = write_all(fp, len8, 8, tmp);
        if (!st) st = write_all(fp, hdr, hlen, tmp);
        for (size_t i = hlen; i < padded && !st; i++)
            if (fputc(' ', fp) == EOF) st = mlxn_fail(MLXN_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        for (size_t i = 0; i < wr->n && !st; i++) st = write_all(fp, wr->t[i].data, wr->t[i].nbytes, tmp);
        if (!st && fflush(fp) != 0) st = mlxn_fail(MLXN_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        if (!st && fsync(fileno(fp)) != 0) st = mlxn_fail(MLXN_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
        if (fclose(fp) != 0 && !st) st = mlxn_fail(MLXN_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    }
    if (!st && rename(tmp, path) != 0)
        st = mlxn_fail(MLXN_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    if (st) unlink(tmp);
    free(tmp);
    free(hdr);
    return st;
}
