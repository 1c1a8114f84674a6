/* Helpers shared by the tests/test_ops_*.c programs: the grid of CPU
 * devices every kernel runs on (each ISA cap x 1/2/3 threads), tensors
 * from host data (contiguous, or strided views with NaN-poisoned gaps so a
 * kernel that reads outside the view fails), and golden cases.
 *
 * Golden files (tests/golden/ops/<family>.safetensors, written by
 * tests/golden/gen_ops.py) hold cases as "<case>/<role>" tensors; every case
 * has "<case>/out" and "<case>/p" (its scalar parameters). */
#ifndef MLXN_TEST_OPS_COMMON_H
#define MLXN_TEST_OPS_COMMON_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define OPS_N_DEV 9
static const mlxn_cpu_isa ops_isas[3] = {MLXN_CPU_ISA_SCALAR, MLXN_CPU_ISA_AVX2, MLXN_CPU_ISA_AVX512};
static const int ops_threads[3] = {1, 2, 3};

/* devs[i]: ISA ops_isas[i / 3], ops_threads[i % 3] threads */
static void ops_devices(mlxn_device *devs[OPS_N_DEV]) {
    for (int i = 0; i < OPS_N_DEV; i++) devs[i] = t_cpu_device(ops_threads[i % 3], ops_isas[i / 3]);
}

static void ops_devices_free(mlxn_device *devs[OPS_N_DEV]) {
    for (int i = 0; i < OPS_N_DEV; i++) mlxn_device_free(devs[i]);
}

static const char *ops_dev_label(int i) {
    static const char *names[OPS_N_DEV] = {"scalar/1t", "scalar/2t", "scalar/3t", "avx2/1t", "avx2/2t",
                                           "avx2/3t", "avx512/1t", "avx512/2t", "avx512/3t"};
    return names[i];
}

static int64_t ops_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

/* A contiguous tensor holding `data` (or poisoned when data is NULL). */
static mlxn_tensor ops_tensor(mlxn_device *dev, mlxn_dtype dt, int ndim, const int64_t *shape, const void *data) {
    mlxn_tensor t;
    memset(&t, 0, sizeof t);
    CHECK_OK(mlxn_tensor_alloc(dev, dt, ndim, shape, &t));
    size_t bytes = (size_t)ops_numel(ndim, shape) * mlxn_dtype_size(dt);
    if (t.buf && bytes) {
        if (data)
            CHECK_OK(mlxn_buffer_write(t.buf, 0, data, bytes));
        else
            t_poison(mlxn_tensor_host(&t), bytes);
    }
    return t;
}

/* A view of `data` ([..., D] row-major, elements of dtype dt) whose last
 * axis has stride ls and whose rows sit rs >= (D-1)*ls+1 elements apart
 * (outer dims packed over rows). Every byte the view does not cover is
 * 0xFF: NaN as a float, -1 / 0xFFFFFFFF as an index. */
static mlxn_tensor ops_strided_dt(mlxn_device *dev, mlxn_dtype dt, const void *data, int ndim, const int64_t *shape,
                                  int64_t ls, int64_t rs) {
    int64_t D = shape[ndim - 1], rows = ops_numel(ndim - 1, shape);
    size_t es = mlxn_dtype_size(dt), n = (size_t)(rows * rs + 1);
    mlxn_buffer *buf = NULL;
    mlxn_tensor t;
    memset(&t, 0, sizeof t);
    CHECK_OK(mlxn_buffer_new(dev, n * es, &buf));
    if (!buf) return t;
    char *p = mlxn_buffer_host(buf);
    t_poison(p, n * es);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < D; i++)
            memcpy(p + (size_t)(r * rs + i * ls) * es, (const char *)data + (size_t)(r * D + i) * es, es);
    t.buf = buf;
    t.dtype = dt;
    t.ndim = ndim;
    t_set_row_strides(&t, ndim, shape, ls, rs);
    return t;
}

static mlxn_tensor ops_strided(mlxn_device *dev, const float *data, int ndim, const int64_t *shape, int64_t ls,
                               int64_t rs) {
    return ops_strided_dt(dev, MLXN_DTYPE_F32, data, ndim, shape, ls, rs);
}

/* Frees what ops_tensor / ops_strided made. */
static void ops_free(mlxn_tensor *t) {
    if (t->buf) mlxn_buffer_free(t->buf);
    memset(t, 0, sizeof *t);
}

static float *ops_f32(const mlxn_tensor *t) { return (float *)mlxn_tensor_host(t); }

/* The golden tensor `<case>/<role>` copied onto dev; 0 when absent. */
static int ops_golden(mlxn_weights *g, mlxn_device *dev, const char *cs, const char *role, mlxn_tensor *t) {
    char name[160];
    memset(t, 0, sizeof *t);
    int len = snprintf(name, sizeof name, "%s/%s", cs, role);
    if (len < 0 || (size_t)len >= sizeof name) return 0;
    const mlxn_weight_info *info = mlxn_weights_find(g, name);
    if (!info) return 0;
    *t = ops_tensor(dev, info->dtype, info->ndim, info->shape, mlxn_weights_data(g, info));
    return 1;
}

/* The golden case's parameter vector `<case>/p` (NULL + a failed check when absent). */
static const float *ops_params(mlxn_weights *g, const char *cs, size_t *n) {
    char name[160];
    int len = snprintf(name, sizeof name, "%s/p", cs);
    if (len < 0 || (size_t)len >= sizeof name) return NULL;
    return t_golden_get(g, name, MLXN_DTYPE_F32, n);
}

/* Names of the golden cases (the prefixes of "<case>/out"); returns the count. */
#define OPS_MAX_CASES 64
static int ops_cases(mlxn_weights *g, char names[OPS_MAX_CASES][128]) {
    int n = 0;
    for (size_t i = 0; g && i < mlxn_weights_count(g) && n < OPS_MAX_CASES; i++) {
        const char *nm = mlxn_weights_at(g, i)->name;
        size_t len = strlen(nm);
        if (len > 4 && len < 128 && strcmp(nm + len - 4, "/out") == 0) {
            memcpy(names[n], nm, len - 4);
            names[n][len - 4] = '\0';
            n++;
        }
    }
    return n;
}

/* Random f32 values into a fresh array (free with free()). */
static float *ops_randn(size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    t_fill_randn(x, n, scale);
    return x;
}

/* 1 when a and b hold the same bits (NaN payloads aside). */
static int ops_same(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) && isnan(b[i])) continue;
        if (memcmp(&a[i], &b[i], 4) != 0) return 0;
    }
    return 1;
}

/* NMSE where a NaN expected at a position must be a NaN there (and counts
 * as agreeing); any other NaN or infinity mismatch is +inf. */
static double ops_nmse_nan(const float *ref, const float *got, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(ref[i]) || isnan(got[i])) {
            if (isnan(ref[i]) && isnan(got[i])) continue;
            return INFINITY;
        }
        if (isinf(ref[i]) || isinf(got[i])) {
            if (ref[i] == got[i]) continue;
            return INFINITY;
        }
        double d = (double)ref[i] - got[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

#endif
