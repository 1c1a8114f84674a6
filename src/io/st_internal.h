/* Private pieces of the safetensors layer, shared by the header parser
 * (st_parse.c), the weight-set code (safetensors.c), the shard directory
 * code (st_shards.c) and the fuzz target.
 *
 * A file is a block of bytes (an mmap of the file, or caller memory for
 * mlxn_weights_open_memory): [u64 LE header length n][n bytes of JSON]
 * [data section]. Parsing validates every field of the header before any
 * tensor byte is touched. */
#ifndef MLXN_IO_ST_INTERNAL_H
#define MLXN_IO_ST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mlxn/safetensors.h"

/* The reference implementation's limit; anything larger is not a header. */
#define MLXN_ST_MAX_HEADER ((uint64_t)100000000)

typedef struct st_meta {
    char *key;
    char *value;
} st_meta;

typedef struct st_file {
    char *path;             /* as opened; every message names it */
    const uint8_t *bytes;   /* the whole file */
    size_t size;
    bool mapped;            /* bytes is our mmap (munmap on free) */
    const uint8_t *data;    /* the data section: bytes + 8 + header length */
    size_t data_size;
    st_meta *meta;          /* "__metadata__", in header order */
    size_t n_meta;
} st_file;

typedef struct st_tensor {
    mlxn_weight_info info;  /* first member: an info pointer maps back to its st_tensor */
    size_t begin;           /* byte offset inside the file's data section */
    size_t file;            /* index into the weight set's files */
    const void *host;       /* the bytes: inside the mapping, or `copy` */
    void *copy;             /* aligned private copy when the mapping is misaligned (owned) */
    mlxn_device *view_dev;  /* CPU view cache for mlxn_weights_tensor */
    mlxn_buffer *view_buf;
} st_tensor;

struct mlxn_weights {
    st_file *files;         /* [n_files], shard order */
    size_t n_files;
    st_tensor *tensors;     /* [n_tensors], sorted by name */
    size_t n_tensors;
    mlxn_buffer **retired;  /* CPU view buffers replaced by a view on another device */
    size_t n_retired;
};

/* Parse f->bytes[0, f->size) (f->path names it in messages): fills
 * f->data/data_size/meta and appends the file's tensors to *tensors
 * (growing it; *n counts them), each with .file = file_index. On failure
 * the tensors appended so far stay in *tensors for the caller to free. */
mlxn_status mlxn_st_parse(st_file *f, size_t file_index, st_tensor **tensors, size_t *n, size_t *cap);

/* Map safetensors dtype names ("BF16") to ours and back. */
bool mlxn_st_dtype_from_name(const char *s, mlxn_dtype *out);
const char *mlxn_st_dtype_to_name(mlxn_dtype dt);

/* Load a shard directory's file list: every model*.safetensors, sorted.
 * *paths is malloc'd (free each and the array). MLXN_ERR_IO when none. */
mlxn_status mlxn_st_list_shards(const char *dir, char ***paths, size_t *n);
/* Check model.safetensors.index.json in dir (if present) against w. */
mlxn_status mlxn_st_check_index(const char *dir, const mlxn_weights *w);

/* A weight set over caller memory (one file's bytes, which must outlive
 * the set); `label` names it in messages. Used by the fuzz target. */
mlxn_status mlxn_weights_open_memory(const char *label, const void *bytes, size_t n, mlxn_weights **out);

#endif
