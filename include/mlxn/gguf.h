/* GGUF (the llama.cpp / ggml model file format), version 3 (and 2, which
 * differs only in not allowing big-endian files), little-endian only.
 *
 * mlxn_gguf_open maps the file and validates all of it before returning:
 * the header, every metadata value (nested arrays included), every tensor
 * info (dims, ggml type, offset), that each tensor's bytes are aligned,
 * inside the file and overlap no other tensor, and that no key or tensor
 * name repeats. A bad file is MLXN_ERR_FORMAT with a message that names
 * the file and the field or tensor at fault.
 *
 * Shapes. GGUF lists a tensor's dims fastest-first: ne[0] is the length of
 * a row (the contiguous axis), ne[1] the number of rows, and so on. The
 * info exposes both that list (`ne`) and the row-major shape used
 * everywhere else in this library (`shape`, slowest-first, as numpy, MLX
 * and safetensors write it): shape[n_dims - 1 - i] == ne[i]. A 4096x11008
 * matrix in numpy terms ([out, in] = [4096, 11008]) has ne = {11008, 4096}
 * and shape = {4096, 11008}. Quantized types group a row into blocks of
 * mlxn_ggml_type_block_elems() values; ne[0] is always a multiple of it.
 *
 * Metadata values are read through typed getters by key, or walked as
 * mlxn_gguf_value nodes (arrays may hold arrays). Strings are returned
 * NUL-terminated (copies owned by the handle); their exact byte length is
 * available too, for strings that contain NUL bytes. Everything returned
 * stays valid until mlxn_gguf_free. */
#ifndef MLXN_GGUF_H
#define MLXN_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "mlxn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlxn_gguf mlxn_gguf;

/* Metadata value types; the numbers are the ids stored in the file. */
typedef enum mlxn_gguf_type {
    MLXN_GGUF_U8 = 0,
    MLXN_GGUF_I8 = 1,
    MLXN_GGUF_U16 = 2,
    MLXN_GGUF_I16 = 3,
    MLXN_GGUF_U32 = 4,
    MLXN_GGUF_I32 = 5,
    MLXN_GGUF_F32 = 6,
    MLXN_GGUF_BOOL = 7,
    MLXN_GGUF_STRING = 8,
    MLXN_GGUF_ARRAY = 9,
    MLXN_GGUF_U64 = 10,
    MLXN_GGUF_I64 = 11,
    MLXN_GGUF_F64 = 12,
} mlxn_gguf_type;

/* Tensor element types (ggml's ids, as stored in the file). Every listed
 * type can appear in a file we open (its byte size is known); the ones
 * mlxn_ggml_type_can_dequantize() accepts can also be read as f32. */
typedef enum mlxn_ggml_type {
    MLXN_GGML_F32 = 0,
    MLXN_GGML_F16 = 1,
    MLXN_GGML_Q4_0 = 2,
    MLXN_GGML_Q4_1 = 3,
    MLXN_GGML_Q5_0 = 6,
    MLXN_GGML_Q5_1 = 7,
    MLXN_GGML_Q8_0 = 8,
    MLXN_GGML_Q8_1 = 9,
    MLXN_GGML_Q2_K = 10,
    MLXN_GGML_Q3_K = 11,
    MLXN_GGML_Q4_K = 12,
    MLXN_GGML_Q5_K = 13,
    MLXN_GGML_Q6_K = 14,
    MLXN_GGML_Q8_K = 15,
    MLXN_GGML_IQ2_XXS = 16,
    MLXN_GGML_IQ2_XS = 17,
    MLXN_GGML_IQ3_XXS = 18,
    MLXN_GGML_IQ1_S = 19,
    MLXN_GGML_IQ4_NL = 20,
    MLXN_GGML_IQ3_S = 21,
    MLXN_GGML_IQ2_S = 22,
    MLXN_GGML_IQ4_XS = 23,
    MLXN_GGML_I8 = 24,
    MLXN_GGML_I16 = 25,
    MLXN_GGML_I32 = 26,
    MLXN_GGML_I64 = 27,
    MLXN_GGML_F64 = 28,
    MLXN_GGML_IQ1_M = 29,
    MLXN_GGML_BF16 = 30,
    MLXN_GGML_TQ1_0 = 34,
    MLXN_GGML_TQ2_0 = 35,
    MLXN_GGML_MXFP4 = 39,
    MLXN_GGML_TYPE_LIMIT = 40 /* one past the largest id we know */
} mlxn_ggml_type;

/* ggml's name of a type ("q4_K", "bf16"); "invalid" for an unknown id. */
const char *mlxn_ggml_type_name(mlxn_ggml_type t);
/* Values per block (1 for plain types, 32 or 256 for quantized ones) and
 * bytes per block; 0 for an unknown id. */
int64_t mlxn_ggml_type_block_elems(mlxn_ggml_type t);
size_t mlxn_ggml_type_block_bytes(mlxn_ggml_type t);
/* 1 when mlxn_gguf_dequantize handles the type: f32 f16 bf16 q4_0 q4_1
 * q8_0 q4_K q5_K q6_K. */
int mlxn_ggml_type_can_dequantize(mlxn_ggml_type t);
/* Name of a metadata value type ("u32", "string", "array"). */
const char *mlxn_gguf_type_name(mlxn_gguf_type t);

#define MLXN_GGUF_MAX_DIMS 4

typedef struct mlxn_gguf_tensor_info {
    const char *name;
    mlxn_ggml_type type;
    int n_dims;                          /* 0..4 (0: a scalar) */
    int64_t ne[MLXN_GGUF_MAX_DIMS];      /* GGUF order, fastest first; 1 past n_dims */
    int64_t shape[MLXN_GGUF_MAX_DIMS];   /* row-major order: shape[n_dims-1-i] == ne[i]; 0 past n_dims */
    int64_t numel;                       /* product of ne */
    int64_t n_rows;                      /* numel / ne[0] (ne[0] > 0), else 0 */
    size_t row_bytes;                    /* bytes of one row of ne[0] values */
    uint64_t offset;                     /* from the start of the data section */
    size_t nbytes;                       /* bytes of the whole tensor */
} mlxn_gguf_tensor_info;

/* Map and validate a .gguf file. */
mlxn_status mlxn_gguf_open(const char *path, mlxn_gguf **out);
void mlxn_gguf_free(mlxn_gguf *g);

uint32_t mlxn_gguf_version(const mlxn_gguf *g);
/* general.alignment, or 32 when the file does not set it. */
uint32_t mlxn_gguf_alignment(const mlxn_gguf *g);
/* Offset of the data section from the start of the file. */
size_t mlxn_gguf_data_offset(const mlxn_gguf *g);

/* ---- metadata ---- */
typedef struct mlxn_gguf_value mlxn_gguf_value;

size_t mlxn_gguf_kv_count(const mlxn_gguf *g);
/* Keys in file order; NULL when i is out of range. */
const char *mlxn_gguf_kv_key(const mlxn_gguf *g, size_t i);
const mlxn_gguf_value *mlxn_gguf_kv_value(const mlxn_gguf *g, size_t i);
/* The value of `key`; NULL when absent (no error is recorded). */
const mlxn_gguf_value *mlxn_gguf_find(const mlxn_gguf *g, const char *key);

/* Typed getters by key. Integers convert between integer types when the
 * value fits (a u8 reads as u32, a u64 of 7 reads as i64); f32 and f64
 * read each other (f64 -> f32 rounds). A missing key is
 * MLXN_ERR_INVALID_ARGUMENT, a value of another type or out of range is
 * MLXN_ERR_FORMAT; both name the file and the key. */
mlxn_status mlxn_gguf_get_u32(const mlxn_gguf *g, const char *key, uint32_t *out);
mlxn_status mlxn_gguf_get_i32(const mlxn_gguf *g, const char *key, int32_t *out);
mlxn_status mlxn_gguf_get_u64(const mlxn_gguf *g, const char *key, uint64_t *out);
mlxn_status mlxn_gguf_get_i64(const mlxn_gguf *g, const char *key, int64_t *out);
mlxn_status mlxn_gguf_get_f32(const mlxn_gguf *g, const char *key, float *out);
mlxn_status mlxn_gguf_get_f64(const mlxn_gguf *g, const char *key, double *out);
mlxn_status mlxn_gguf_get_bool(const mlxn_gguf *g, const char *key, int *out);
/* *out is NUL-terminated; len (optional) receives the exact byte length. */
mlxn_status mlxn_gguf_get_str(const mlxn_gguf *g, const char *key, const char **out, size_t *len);
/* An array value: its element type and length. */
mlxn_status mlxn_gguf_get_array(const mlxn_gguf *g, const char *key, mlxn_gguf_type *elem_type,
                                size_t *len, const mlxn_gguf_value **out);

/* Value nodes. Scalar accessors follow the getters' conversion rules and
 * return MLXN_ERR_FORMAT on a type mismatch (the message names the type). */
mlxn_gguf_type mlxn_gguf_value_type(const mlxn_gguf_value *v);
mlxn_status mlxn_gguf_value_u64(const mlxn_gguf_value *v, uint64_t *out);
mlxn_status mlxn_gguf_value_i64(const mlxn_gguf_value *v, int64_t *out);
mlxn_status mlxn_gguf_value_f64(const mlxn_gguf_value *v, double *out);
mlxn_status mlxn_gguf_value_bool(const mlxn_gguf_value *v, int *out);
/* NULL unless a string; len (optional) receives the byte length. */
const char *mlxn_gguf_value_str(const mlxn_gguf_value *v, size_t *len);

/* Arrays: element type and count (0 and MLXN_GGUF_U8 for a non-array). */
mlxn_gguf_type mlxn_gguf_array_type(const mlxn_gguf_value *v);
size_t mlxn_gguf_array_len(const mlxn_gguf_value *v);
/* Element i of an array of scalars, converted as the getters do. */
mlxn_status mlxn_gguf_array_u64(const mlxn_gguf_value *v, size_t i, uint64_t *out);
mlxn_status mlxn_gguf_array_i64(const mlxn_gguf_value *v, size_t i, int64_t *out);
mlxn_status mlxn_gguf_array_f64(const mlxn_gguf_value *v, size_t i, double *out);
/* Element i of an array of strings (NUL-terminated; NULL when v is not a
 * string array or i is out of range), e.g. tokenizer.ggml.tokens. */
const char *mlxn_gguf_array_str(const mlxn_gguf_value *v, size_t i, size_t *len);
/* Element i of an array of arrays; NULL otherwise. */
const mlxn_gguf_value *mlxn_gguf_array_at(const mlxn_gguf_value *v, size_t i);
/* The raw little-endian elements of an array of fixed-size scalars (e.g.
 * i32 token types, f32 scores), for bulk reads; NULL for strings/arrays.
 * Not necessarily aligned to the element size: copy with memcpy. */
const void *mlxn_gguf_array_data(const mlxn_gguf_value *v);

/* ---- tensors ---- */
size_t mlxn_gguf_tensor_count(const mlxn_gguf *g);
/* Tensors in file order; NULL when i is out of range. */
const mlxn_gguf_tensor_info *mlxn_gguf_tensor_at(const mlxn_gguf *g, size_t i);
/* NULL when absent (no error is recorded). */
const mlxn_gguf_tensor_info *mlxn_gguf_tensor_find(const mlxn_gguf *g, const char *name);
/* Read-only pointer to the tensor's bytes inside the mapping. Aligned to
 * mlxn_gguf_alignment() (the mapping itself is page-aligned). */
const void *mlxn_gguf_tensor_data(const mlxn_gguf *g, const mlxn_gguf_tensor_info *t);
/* Rows [row0, row0 + n_rows) of a tensor (a row is ne[0] values) as f32,
 * out: [n_rows, ne[0]]. MLXN_ERR_UNSUPPORTED for a type we cannot
 * dequantize, MLXN_ERR_INVALID_ARGUMENT for a bad row range. */
mlxn_status mlxn_gguf_dequantize(const mlxn_gguf *g, const mlxn_gguf_tensor_info *t, int64_t row0,
                                 int64_t n_rows, float *out);

#ifdef __cplusplus
}
#endif
#endif
