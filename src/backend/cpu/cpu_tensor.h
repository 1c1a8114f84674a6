/* Row access for CPU kernels. Ops treat a tensor [..., D] as `rows` rows of
 * D elements: the leading dims may have any strides, the last axis has
 * stride t->strides[ndim-1] (1 when contiguous). These helpers find a row
 * and read it as f32 whatever the stored float dtype. */
#ifndef MLXN_CPU_TENSOR_H
#define MLXN_CPU_TENSOR_H

#include <stdint.h>

#include "mlxn/tensor.h"

/* Number of rows of a [..., D] tensor (product of all but the last dim). */
static inline int64_t cpu_rows(const mlxn_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim - 1; i++) n *= t->shape[i];
    return n;
}

/* Element offset of row r (row-major over the leading dims). */
static inline int64_t cpu_row_offset(const mlxn_tensor *t, int64_t r) {
    int64_t off = 0;
    for (int i = t->ndim - 2; i >= 0; i--) {
        int64_t d = t->shape[i];
        off += (r % d) * t->strides[i];
        r /= d;
    }
    return off;
}

/* Address of element 0 of row r. */
static inline void *cpu_row_ptr(const mlxn_tensor *t, int64_t r) {
    char *base = (char *)mlxn_tensor_host(t);
    return base + cpu_row_offset(t, r) * (int64_t)mlxn_dtype_size(t->dtype);
}

/* Element i of a float row of dtype dt with element stride `stride`. */
static inline float cpu_load_f32(const void *row, mlxn_dtype dt, int64_t i) {
    switch (dt) {
    case MLXN_DTYPE_F16: return mlxn_f16_to_f32(((const uint16_t *)row)[i]);
    case MLXN_DTYPE_BF16: return mlxn_bf16_to_f32(((const uint16_t *)row)[i]);
    default: return ((const float *)row)[i];
    }
}

/* dst[0..n) = row[i * stride] converted to f32. */
static inline void cpu_row_to_f32(const void *row, mlxn_dtype dt, int64_t stride, int64_t n, float *dst) {
    if (dt == MLXN_DTYPE_F32 && stride == 1) {
        const float *src = (const float *)row;
        for (int64_t i = 0; i < n; i++) dst[i] = src[i];
        return;
    }
    for (int64_t i = 0; i < n; i++) dst[i] = cpu_load_f32(row, dt, i * stride);
}

#endif
