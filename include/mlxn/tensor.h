/* Tensor views: a dtype, a shape, element strides and a byte offset into a
 * buffer. A view is a plain value (copy it freely); it does not own its
 * buffer unless made by mlxn_tensor_alloc, which pairs with
 * mlxn_tensor_release. Row-major: the last axis is the fastest. */
#ifndef MLXN_TENSOR_H
#define MLXN_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "mlxn/device.h"
#include "mlxn/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLXN_MAX_DIMS 8

typedef struct mlxn_tensor {
    mlxn_buffer *buf;                /* storage (not owned by the view) */
    mlxn_dtype dtype;
    int ndim;                        /* 0 = scalar */
    int64_t shape[MLXN_MAX_DIMS];
    int64_t strides[MLXN_MAX_DIMS];  /* in elements */
    size_t offset;                   /* in bytes from the buffer start */
} mlxn_tensor;

/* A contiguous view of `buf` at byte `offset`; checks that it fits. */
mlxn_status mlxn_tensor_view(mlxn_buffer *buf, mlxn_dtype dtype, int ndim, const int64_t *shape,
                             size_t offset, mlxn_tensor *out);
/* Allocate a fresh buffer holding a contiguous tensor; free with mlxn_tensor_release. */
mlxn_status mlxn_tensor_alloc(mlxn_device *dev, mlxn_dtype dtype, int ndim, const int64_t *shape,
                              mlxn_tensor *out);
/* Free the buffer behind a tensor made by mlxn_tensor_alloc and clear the view. */
void mlxn_tensor_release(mlxn_tensor *t);

int64_t mlxn_tensor_numel(const mlxn_tensor *t);
/* Bytes spanned by the elements (numel * dtype size for contiguous views). */
size_t mlxn_tensor_nbytes(const mlxn_tensor *t);
bool mlxn_tensor_is_contiguous(const mlxn_tensor *t);
/* Host pointer to element 0, or NULL when the buffer is not host-visible. */
void *mlxn_tensor_host(const mlxn_tensor *t);
/* Writes "bf16[4096, 14336]" into buf (always NUL-terminated). */
const char *mlxn_tensor_describe(const mlxn_tensor *t, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
