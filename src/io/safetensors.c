/* Weight sets: open one .safetensors file or a shard directory, look
 * tensors up by name, hand out their bytes and tensors on a device.
 *
 * Files are mmap'd read-only. Tensor bytes are used in place when they sit
 * at an address aligned to their element size; MLX does not pad its
 * header, so in files it writes they often do not, and reading a float
 * through a misaligned pointer is undefined behaviour in C. Such tensors
 * get one 64-byte-aligned private copy, made at open time (so the const
 * accessors never write and any number of threads may call them at once;
 * mlxn_weights_tensor caches CPU view buffers and so needs one caller at a
 * time per weight set).
 *
 * Tensors are kept sorted by name: lookups are a binary search, and
 * duplicates across shards show up as neighbours. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "io/st_internal.h"

static void file_clear(st_file *f) {
    if (f->mapped && f->bytes) munmap((void *)f->bytes, f->size);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    free(f->path);
    memset(f, 0, sizeof *f);
}

static void tensor_clear(st_tensor *t) {
    free((char *)t->info.name);
    free(t->copy);
    mlxn_buffer_free(t->view_buf);
}

void mlxn_weights_free(mlxn_weights *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_tensors; i++) tensor_clear(&w->tensors[i]);
    free(w->tensors);
    for (size_t i = 0; i < w->n_files; i++) file_clear(&w->files[i]);
    free(w->files);
    for (size_t i = 0; i < w->n_retired; i++) mlxn_buffer_free(w->retired[i]);
    free(w->retired);
    free(w);
}

/* mmap `path` read-only into f (f->path set by the caller). */
static mlxn_status map_file(st_file *f) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mlxn_fail(MLXN_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat sb;
    mlxn_status st = MLXN_OK;
    if (fstat(fd, &sb) != 0) {
        st = mlxn_fail(MLXN_ERR_IO, "%s: cannot stat: %s", f->path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = mlxn_fail(MLXN_ERR_IO, "%s: not a regular file", f->path);
    } else if (sb.st_size < 8) {
        /* too short to map usefully; the parser words the error */
        f->size = (size_t)sb.st_size;
        f->bytes = (const uint8_t *)"";
    } else {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            st = mlxn_fail(MLXN_ERR_IO, "%s: mmap of %lld bytes failed: %s", f->path, (long long)sb.st_size,
                           strerror(errno));
        } else {
            f->bytes = m;
            f->size = (size_t)sb.st_size;
            f->mapped = true;
        }
    }
    close(fd);
    return st;
}

/* Where empty tensors point: aligned for every dtype, never read (const,
 * so no mutable state is shared). */
static _Alignas(64) const uint8_t empty_block[64];

/* Give misaligned tensors an aligned private copy (see the top comment). */
static mlxn_status align_tensors(mlxn_weights *w) {
    for (size_t i = 0; i < w->n_tensors; i++) {
        st_tensor *t = &w->tensors[i];
        size_t a = mlxn_dtype_size(t->info.dtype);
        if (t->info.nbytes == 0) t->host = empty_block;
        if (((uintptr_t)t->host % a) == 0) continue;
        void *c = NULL;
        if (posix_memalign(&c, 64, t->info.nbytes) != 0)
            return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: tensor '%s': out of memory for an aligned copy of %zu bytes",
                             t->info.file, t->info.name, t->info.nbytes);
        memcpy(c, t->host, t->info.nbytes);
        t->copy = c;
        t->host = c;
    }
    return MLXN_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->info.name, ((const st_tensor *)b)->info.name);
}

/* Sort by name; a name held twice (necessarily in two shards) is an error. */
static mlxn_status sort_and_check(mlxn_weights *w) {
    if (w->n_tensors > 1) qsort(w->tensors, w->n_tensors, sizeof *w->tensors, by_name);
    for (size_t i = 1; i < w->n_tensors; i++) {
        const st_tensor *a = &w->tensors[i - 1], *b = &w->tensors[i];
        if (!strcmp(a->info.name, b->info.name))
            return mlxn_fail(MLXN_ERR_FORMAT, "tensor '%s' is in both %s and %s", a->info.name, a->info.file,
                             b->info.file);
    }
    return MLXN_OK;
}

/* Open the files at paths[0..n) (or the single memory block when bytes is
 * non-NULL) as one weight set. */
static mlxn_status open_files(char **paths, size_t n, const void *bytes, size_t size, mlxn_weights **out) {
    mlxn_weights *w = calloc(1, sizeof *w);
    if (!w) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
    w->files = calloc(n, sizeof *w->files);
    mlxn_status st = MLXN_OK;
    size_t cap = 0;
    if (!w->files) {
        st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        st_file *f = &w->files[i];
        w->n_files++;
        f->path = strdup(paths[i]);
        if (!f->path) {
            st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", paths[i]);
            goto fail;
        }
        if (bytes) {
            f->bytes = bytes;
            f->size = size;
        } else if ((st = map_file(f)) != MLXN_OK) {
            goto fail;
        }
        if ((st = mlxn_st_parse(f, i, &w->tensors, &w->n_tensors, &cap)) != MLXN_OK) goto fail;
    }
    if ((st = sort_and_check(w)) != MLXN_OK || (st = align_tensors(w)) != MLXN_OK) goto fail;
    *out = w;
    return MLXN_OK;
fail:
    mlxn_weights_free(w);
    return st;
}

mlxn_status mlxn_weights_open_memory(const char *label, const void *bytes, size_t n, mlxn_weights **out) {
    if (!label || (!bytes && n) || !out)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_weights_open_memory: NULL argument");
    *out = NULL;
    char *paths[1] = {(char *)label};
    return open_files(paths, 1, bytes ? bytes : "", n, out);
}

mlxn_status mlxn_weights_open(const char *path, mlxn_weights **out) {
    if (!path || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_weights_open: NULL argument");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return mlxn_fail(MLXN_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        char *paths[1] = {(char *)path};
        return open_files(paths, 1, NULL, 0, out);
    }
    char **paths = NULL;
    size_t n = 0;
    MLXN_TRY(mlxn_st_list_shards(path, &paths, &n));
    mlxn_status st = open_files(paths, n, NULL, 0, out);
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
    if (st == MLXN_OK && (st = mlxn_st_check_index(path, *out)) != MLXN_OK) {
        mlxn_weights_free(*out);
        *out = NULL;
    }
    return st;
}

size_t mlxn_weights_count(const mlxn_weights *w) { return w ? w->n_tensors : 0; }

const mlxn_weight_info *mlxn_weights_at(const mlxn_weights *w, size_t i) {
    return w && i < w->n_tensors ? &w->tensors[i].info : NULL;
}

static st_tensor *find(const mlxn_weights *w, const char *name) {
    if (!w || !name || !w->n_tensors) return NULL;
    size_t lo = 0, hi = w->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, w->tensors[mid].info.name);
        if (c == 0) return &w->tensors[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const mlxn_weight_info *mlxn_weights_find(const mlxn_weights *w, const char *name) {
    st_tensor *t = find(w, name);
    return t ? &t->info : NULL;
}

/* The st_tensor behind an info pointer, or NULL when it is not one of w's. */
static const st_tensor *owner(const mlxn_weights *w, const mlxn_weight_info *info) {
    if (!w || !info || !w->n_tensors) return NULL;
    const st_tensor *t = (const st_tensor *)(const void *)info;
    if (t < w->tensors || t >= w->tensors + w->n_tensors) return NULL;
    return t;
}

const void *mlxn_weights_data(const mlxn_weights *w, const mlxn_weight_info *info) {
    const st_tensor *t = owner(w, info);
    return t ? t->host : NULL;
}

void mlxn_weights_advise_unneeded(const mlxn_weights *w, const mlxn_weight_info *info) {
    const st_tensor *t = owner(w, info);
    if (!t || t->copy || !t->info.nbytes || !w->files[t->file].mapped) return;
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    uintptr_t a = (uintptr_t)t->host, e = a + t->info.nbytes, p = (uintptr_t)pg;
    uintptr_t a0 = (a + p - 1) / p * p, e0 = e / p * p;
    /* a read-only file mapping: dropped pages fault back in from the file */
    if (e0 > a0) (void)madvise((void *)a0, e0 - a0, MADV_DONTNEED);
}

const char *mlxn_weights_metadata(const mlxn_weights *w, const char *key) {
    if (!w || !key) return NULL;
    for (size_t i = 0; i < w->n_files; i++)
        for (size_t j = 0; j < w->files[i].n_meta; j++)
            if (!strcmp(w->files[i].meta[j].key, key)) return w->files[i].meta[j].value;
    return NULL;
}

/* Whether key k of file fi was already seen in an earlier position. */
static bool meta_seen_before(const mlxn_weights *w, size_t fi, size_t k) {
    const char *key = w->files[fi].meta[k].key;
    for (size_t i = 0; i <= fi; i++)
        for (size_t j = 0; j < (i == fi ? k : w->files[i].n_meta); j++)
            if (!strcmp(w->files[i].meta[j].key, key)) return true;
    return false;
}

const char *mlxn_weights_metadata_key(const mlxn_weights *w, size_t i) {
    if (!w) return NULL;
    for (size_t f = 0; f < w->n_files; f++)
        for (size_t k = 0; k < w->files[f].n_meta; k++)
            if (!meta_seen_before(w, f, k) && i-- == 0) return w->files[f].meta[k].key;
    return NULL;
}

mlxn_status mlxn_weights_tensor(mlxn_weights *w, mlxn_device *dev, const char *name, mlxn_tensor *out) {
    if (!w || !dev || !name || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_weights_tensor: NULL argument");
    st_tensor *t = find(w, name);
    if (!t) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_weights_tensor: no tensor named '%s'", name);
    if (mlxn_device_get_kind(dev) != MLXN_DEVICE_CPU) {
        mlxn_tensor x;
        MLXN_TRY(mlxn_tensor_alloc(dev, t->info.dtype, t->info.ndim, t->info.shape, &x));
        mlxn_status st = mlxn_buffer_write(x.buf, 0, t->host, t->info.nbytes);
        if (st != MLXN_OK) {
            mlxn_tensor_release(&x);
            return mlxn_fail_context(st, "%s: tensor '%s': ", t->info.file, name);
        }
        *out = x;
        return MLXN_OK;
    }
    /* CPU: a view of the bytes in place, through a buffer the weight set
     * owns (cached per tensor; one for another CPU device replaces it and
     * the old one is kept until free, since views of it may be alive). */
    if (!t->view_buf || t->view_dev != dev) {
        mlxn_buffer *b = NULL;
        MLXN_TRY(mlxn_buffer_wrap(dev, (void *)t->host, t->info.nbytes, NULL, NULL, &b));
        if (t->view_buf) {
            mlxn_buffer **r = realloc(w->retired, (w->n_retired + 1) * sizeof *r);
            if (!r) {
                mlxn_buffer_free(b);
                return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "mlxn_weights_tensor: out of memory");
            }
            w->retired = r;
            w->retired[w->n_retired++] = t->view_buf;
        }
        t->view_buf = b;
        t->view_dev = dev;
    }
    return mlxn_tensor_view(t->view_buf, t->info.dtype, t->info.ndim, t->info.shape, 0, out);
}
