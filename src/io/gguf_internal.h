/* Private GGUF structures shared by the parser (gguf.c), the metadata
 * accessors (gguf_meta.c) and the tensor accessors (gguf_tensor.c), and
 * the open-from-memory entry point that the file path and the fuzzer use. */
#ifndef MLXN_IO_GGUF_INTERNAL_H
#define MLXN_IO_GGUF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mlxn/gguf.h"

/* One metadata value (a key's value or an element of an array of strings
 * or arrays). */
struct mlxn_gguf_value {
    uint32_t type;                  /* mlxn_gguf_type */
    uint32_t elem_type;             /* arrays: the element type */
    uint64_t n;                     /* strings: byte length; arrays: element count */
    union {
        uint64_t u;                 /* u8 u16 u32 u64 bool */
        int64_t i;                  /* i8 i16 i32 i64 */
        double f;                   /* f32 (exactly) and f64 */
    } num;
    const char *str;                /* strings: NUL-terminated copy of n bytes */
    const uint8_t *raw;             /* arrays of fixed-size scalars: [n * size] in the mapping */
    const struct mlxn_gguf_value *elems; /* arrays of strings/arrays: [n] */
};

typedef struct gguf_kv {
    const char *key;
    struct mlxn_gguf_value val;
} gguf_kv;

/* Bump allocator: every allocation of a handle comes from here, so an
 * error at any point frees everything in one walk. */
typedef struct gguf_chunk gguf_chunk;

struct mlxn_gguf {
    char *name;                     /* the path (or the fuzzer's label), for messages */
    const uint8_t *base;            /* [size] the file bytes */
    size_t size;
    void *map;                      /* the mmap to release, or NULL */
    size_t map_size;
    uint32_t version;
    uint32_t alignment;
    size_t data_offset;             /* start of the data section */
    size_t n_kv;
    gguf_kv *kv;                    /* [n_kv] in file order */
    const gguf_kv **kv_sorted;      /* [n_kv] by key, for bsearch */
    size_t n_tensors;
    mlxn_gguf_tensor_info *tensors; /* [n_tensors] in file order */
    const mlxn_gguf_tensor_info **t_sorted; /* [n_tensors] by name */
    gguf_chunk *chunks;
};

/* Parse and validate `size` bytes at `data` (which must stay valid and
 * unchanged until mlxn_gguf_free). `name` labels error messages. */
mlxn_status mlxn_gguf_open_memory(const char *name, const void *data, size_t size, mlxn_gguf **out);

/* Size in bytes of a fixed-size metadata scalar type; 0 for string/array
 * or an unknown id. */
size_t mlxn_gguf_scalar_size(uint32_t type);

#endif
