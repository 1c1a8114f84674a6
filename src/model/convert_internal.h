/* Conversion internals: an in-memory MLX model (cv_set) that every source
 * fills and every sink reads.
 *
 * Sources: a GGUF file (convert_gguf.c), a Hugging Face directory
 * (convert_hf.c), a random preset (convert_random.c). Sinks: the directory
 * writer (convert_write.c) and the model loader, which binds a GGUF's set
 * directly (model.c), so a GGUF runs through exactly the tensors convert
 * would write.
 *
 * A tensor's bytes are owned (malloc'd here), borrowed (the mmap of the
 * source, which the set keeps open), or lazy: produced by a fill hook when
 * the writer needs them and freed after its shard is written (random
 * models of 8B parameters never sit in memory at once). */
#ifndef MLXN_MODEL_CONVERT_INTERNAL_H
#define MLXN_MODEL_CONVERT_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mlxn/convert.h"
#include "mlxn/gguf.h"
#include "mlxn/safetensors.h"

typedef struct cv_tensor cv_tensor;
/* Write the tensor's nbytes into dst. */
typedef mlxn_status (*cv_fill_fn)(const cv_tensor *t, void *dst);

struct cv_tensor {
    char *name;            /* mlx-lm's name, e.g. model.layers.0.mlp.up_proj.scales */
    char *origin;          /* where it came from, for messages ("x.gguf tensor blk.0.ffn_up.weight") */
    mlxn_dtype dtype;
    int ndim;
    int64_t shape[MLXN_MAX_DIMS];
    size_t nbytes;
    void *data;            /* owned bytes, or NULL */
    const void *borrowed;  /* bytes owned by the source, or NULL */
    cv_fill_fn fill;       /* lazy bytes, or NULL */
    uint64_t fill_seed;    /* for fill */
    float fill_scale;      /* for fill */
    int fill_bits;         /* for fill */
};

typedef struct cv_set {
    cv_tensor *t;          /* [n] (sorted by name after cv_finish) */
    size_t n, cap;
    json_t *config;        /* config.json, mlx-lm's format */
    json_t *tokenizer;     /* tokenizer.json to write, or NULL */
    json_t *tokenizer_config; /* tokenizer_config.json to write, or NULL */
    char *copy_dir;        /* HF source: directory whose tokenizer files are copied */
    mlxn_weights *src_st;  /* keeps borrowed safetensors bytes mapped */
    mlxn_gguf *src_gguf;   /* keeps borrowed GGUF bytes mapped */
} cv_set;

void cv_free(cv_set *s);
/* A new tensor with zeroed owned bytes (*data receives them). */
mlxn_status cv_add(cv_set *s, const char *name, const char *origin, mlxn_dtype dt, int ndim, const int64_t *shape,
                   void **data);
/* A tensor whose bytes stay in the source. */
mlxn_status cv_add_borrowed(cv_set *s, const char *name, const char *origin, mlxn_dtype dt, int ndim,
                            const int64_t *shape, const void *bytes);
/* A tensor produced by fill at write time. */
mlxn_status cv_add_lazy(cv_set *s, const char *name, mlxn_dtype dt, int ndim, const int64_t *shape, cv_fill_fn fill,
                        uint64_t seed, float scale, int bits);
/* Sort by name and reject a repeated name. */
mlxn_status cv_finish(cv_set *s, const char *what);
/* After cv_finish: the tensor named `name`, or NULL. */
const cv_tensor *cv_find(const cv_set *s, const char *name);
/* The bytes of t; for a lazy tensor a fresh buffer in *tmp (free it). */
mlxn_status cv_bytes(const cv_tensor *t, const void **bytes, void **tmp);

/* Resolved conversion options (defaults applied). */
typedef struct cv_opts {
    bool quantize;
    mlxn_quant_params q;     /* uniform quantization (mode/bits/group) */
    const char *recipe;      /* mixed recipe or NULL */
    int recipe_low, recipe_high;
    mlxn_dtype dtype;        /* 0 = as the source says */
    mlxn_quant_params requant; /* GGUF blocks without an exact form */
    int64_t max_shard_bytes;
    uint64_t seed;
} cv_opts;

mlxn_status cv_resolve_opts(const mlxn_convert_params *p, cv_opts *o);

/* The quantization a module gets (mlx-lm's convert with a uniform setting
 * or a mixed recipe): *q filled and true, or false when it stays dense
 * (input size not a multiple of the group). path: e.g.
 * "model.layers.3.mlp.down_proj"; n_layers for the recipe's layer rule. */
bool cv_module_quant(const cv_opts *o, const char *path, int64_t in_features, int n_layers, mlxn_quant_params *q);
/* Record the quantization of every module in config["quantization"] (and
 * "quantization_config") the way mlx-lm does: the default object plus a
 * per-module entry where a module differs. mods/qs: [n] module paths and
 * params of the quantized modules; def: the default. */
mlxn_status cv_record_quant(cv_set *s, const char *const *mods, const mlxn_quant_params *qs, size_t n,
                            const mlxn_quant_params *def, bool per_module_always);

/* Quantize w [rows, cols] of dtype w_dt into new tensors NAME.weight,
 * NAME.scales (and NAME.biases) of module `mod`. */
mlxn_status cv_quantize_into(cv_set *s, const char *mod, const char *origin, const mlxn_quant_params *q,
                             mlxn_dtype w_dt, const void *w, int64_t rows, int64_t cols);

/* Sources. */
mlxn_status cv_from_gguf(const char *path, const cv_opts *o, bool with_tokenizer, cv_set *s);
mlxn_status cv_from_hf(const char *dir, const cv_opts *o, cv_set *s);
mlxn_status cv_from_random(const char *preset, const cv_opts *o, cv_set *s);
/* tokenizer.json / tokenizer_config.json from a GGUF's vocabulary. */
mlxn_status cv_gguf_tokenizer(const mlxn_gguf *g, const char *path, cv_set *s);

/* Write s as an MLX model directory at dst (atomically). */
/* progress (optional) is called with bytes written / total after each tensor. */
mlxn_status cv_write_dir(const cv_set *s, const char *dst, int64_t max_shard_bytes,
                         void (*progress)(void *user, int64_t done, int64_t total), void *progress_user);

/* A float that prints as the shortest decimal that reads back as the same
 * f32 (1e-05, not 9.999999747378752e-06). */
json_t *cv_json_f32(float f);

#endif
