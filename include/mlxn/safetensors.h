/* safetensors: reading (mmap, single files, sharded directories) and writing.
 *
 * A weight set opens a .safetensors file or an mlx-lm model directory. For
 * a directory it follows mlx-lm: every `model*.safetensors` in the directory
 * is loaded (model.safetensors.index.json, when present, is checked against
 * what the shards hold). Tensor bytes stay in the mmap'd files; CPU tensors
 * view them without copying. Every header is validated before use: a bad
 * file is MLXN_ERR_FORMAT with a message naming the file and the tensor. */
#ifndef MLXN_SAFETENSORS_H
#define MLXN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "mlxn/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlxn_weights mlxn_weights;

typedef struct mlxn_weight_info {
    const char *name;       /* tensor name as stored */
    const char *file;       /* path of the file that holds it */
    mlxn_dtype dtype;
    int ndim;
    int64_t shape[MLXN_MAX_DIMS];
    size_t nbytes;          /* numel * dtype size */
} mlxn_weight_info;

/* Open a .safetensors file, or a directory of model*.safetensors shards. */
mlxn_status mlxn_weights_open(const char *path, mlxn_weights **out);
void mlxn_weights_free(mlxn_weights *w);

size_t mlxn_weights_count(const mlxn_weights *w);
/* Tensors in name order; NULL when i is out of range. */
const mlxn_weight_info *mlxn_weights_at(const mlxn_weights *w, size_t i);
/* NULL when absent (no error is recorded: absence is often expected). */
const mlxn_weight_info *mlxn_weights_find(const mlxn_weights *w, const char *name);
/* Read-only host pointer to the tensor's bytes inside the mapping. */
const void *mlxn_weights_data(const mlxn_weights *w, const mlxn_weight_info *info);
/* The caller has copied the tensor's bytes elsewhere and will not read
 * them again soon: the pages of the mapping that lie wholly inside the
 * tensor leave the process's resident set (they stay in the page cache and
 * are read back from the file if touched). Nothing happens for a tensor
 * with a private aligned copy or a file that is not mapped. */
void mlxn_weights_advise_unneeded(const mlxn_weights *w, const mlxn_weight_info *info);
/* A value of the "__metadata__" object (of the first shard that has the
 * key), e.g. "format" -> "mlx"; NULL when absent. */
const char *mlxn_weights_metadata(const mlxn_weights *w, const char *key);
/* The i-th distinct "__metadata__" key across the shards (in file order),
 * for listing them; NULL when i is out of range. */
const char *mlxn_weights_metadata_key(const mlxn_weights *w, size_t i);
/* A tensor on `dev`: on the CPU a zero-copy view of the mapping (valid
 * while the weight set is open); elsewhere a fresh copy (release it with
 * mlxn_tensor_release). MLXN_ERR_INVALID_ARGUMENT names a missing tensor. */
mlxn_status mlxn_weights_tensor(mlxn_weights *w, mlxn_device *dev, const char *name,
                                mlxn_tensor *out);

/* Writer: collect tensors (the data pointers must stay valid until
 * mlxn_st_writer_save returns), then write one file atomically (temp file
 * + rename). Tensors are written in name order, 8-byte aligned header. */
typedef struct mlxn_st_writer mlxn_st_writer;

mlxn_status mlxn_st_writer_new(mlxn_st_writer **out);
void mlxn_st_writer_free(mlxn_st_writer *wr);
mlxn_status mlxn_st_writer_set_metadata(mlxn_st_writer *wr, const char *key, const char *value);
mlxn_status mlxn_st_writer_add(mlxn_st_writer *wr, const char *name, mlxn_dtype dtype, int ndim,
                               const int64_t *shape, const void *data);
mlxn_status mlxn_st_writer_save(mlxn_st_writer *wr, const char *path);

#ifdef __cplusplus
}
#endif
#endif
