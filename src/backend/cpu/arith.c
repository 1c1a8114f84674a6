/* CPU add / scale / copy. Each op walks its tensors as rows of the last
 * axis (leading dims may have any strides) and splits the rows over the
 * device's threads. The loops are plain C the compiler vectorizes for
 * contiguous f32 rows; these ops move memory, they do no real math, so
 * there is nothing to gain from hand-written intrinsics. */
#include <string.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_tensor.h"

/* Rows and last-axis length/stride of t, treating a 0-d tensor as [1]. */
static int64_t last_len(const mlxn_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }
static int64_t last_stride(const mlxn_tensor *t) { return t->ndim ? t->strides[t->ndim - 1] : 1; }

/* Rows per task chunk: enough work per chunk that fork-join pays off. */
static int64_t grain_for(int64_t row_len) {
    int64_t g = 16384 / (row_len > 0 ? row_len : 1);
    return g < 1 ? 1 : g;
}

static void store_f32(void *row, mlxn_dtype dt, int64_t i, float v) {
    switch (dt) {
    case MLXN_DTYPE_F16: ((uint16_t *)row)[i] = mlxn_f32_to_f16(v); break;
    case MLXN_DTYPE_BF16: ((uint16_t *)row)[i] = mlxn_f32_to_bf16(v); break;
    default: ((float *)row)[i] = v; break;
    }
}

/* ---- add ----------------------------------------------------------------- */

typedef struct {
    const mlxn_tensor *a, *b, *out; /* a f32 [..., D]; b [..., D] (trailing dims of a); out f32 contiguous */
    int64_t D, b_rows;
} add_job;

static void add_rows(void *arg, int64_t r0, int64_t r1, int thread) {
    (void)thread;
    const add_job *j = arg;
    int64_t D = j->D, sa = last_stride(j->a), sb = last_stride(j->b);
    for (int64_t r = r0; r < r1; r++) {
        const float *a = cpu_row_ptr(j->a, r);
        const void *b = cpu_row_ptr(j->b, r % j->b_rows);
        float *o = (float *)mlxn_tensor_host(j->out) + r * D;
        if (sa == 1 && sb == 1 && j->b->dtype == MLXN_DTYPE_F32) {
            const float *bf = b;
            for (int64_t i = 0; i < D; i++) o[i] = a[i] + bf[i];
        } else {
            for (int64_t i = 0; i < D; i++) o[i] = a[i * sa] + cpu_load_f32(b, j->b->dtype, i * sb);
        }
    }
}

mlxn_status cpu_add(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, mlxn_tensor *out) {
    add_job j = {a, b, out, last_len(a), cpu_rows(b)};
    if (j.b_rows < 1) j.b_rows = 1;
    mlxn_parallel_for(cpu_dev(s)->pool, cpu_rows(a), grain_for(j.D), add_rows, &j);
    return MLXN_OK;
}

/* ---- scale --------------------------------------------------------------- */

typedef struct {
    const mlxn_tensor *x, *out; /* f32 [..., D]; out contiguous */
    int64_t D;
    float alpha;
} scale_job;

static void scale_rows(void *arg, int64_t r0, int64_t r1, int thread) {
    (void)thread;
    const scale_job *j = arg;
    int64_t D = j->D, sx = last_stride(j->x);
    for (int64_t r = r0; r < r1; r++) {
        const float *x = cpu_row_ptr(j->x, r);
        float *o = (float *)mlxn_tensor_host(j->out) + r * D;
        for (int64_t i = 0; i < D; i++) o[i] = x[i * sx] * j->alpha;
    }
}

mlxn_status cpu_scale(mlxn_stream *s, const mlxn_tensor *x, float alpha, mlxn_tensor *out) {
    scale_job j = {x, out, last_len(x), alpha};
    mlxn_parallel_for(cpu_dev(s)->pool, cpu_rows(x), grain_for(j.D), scale_rows, &j);
    return MLXN_OK;
}

/* ---- copy ---------------------------------------------------------------- */

typedef struct {
    const mlxn_tensor *src, *dst; /* one shape [..., D], any strides */
    int64_t D;
} copy_job;

static void copy_rows(void *arg, int64_t r0, int64_t r1, int thread) {
    (void)thread;
    const copy_job *j = arg;
    int64_t D = j->D, ss = last_stride(j->src), sd = last_stride(j->dst);
    mlxn_dtype st = j->src->dtype, dt = j->dst->dtype;
    size_t esz = mlxn_dtype_size(st);
    for (int64_t r = r0; r < r1; r++) {
        const void *src = cpu_row_ptr(j->src, r);
        void *dst = cpu_row_ptr(j->dst, r);
        if (st == dt && ss == 1 && sd == 1) {
            /* same dtype: the bytes themselves, no f32 round trip */
            memcpy(dst, src, (size_t)D * esz);
        } else if (dt == MLXN_DTYPE_F32 && sd == 1) {
            cpu_row_to_f32(src, st, ss, D, dst);
        } else {
            for (int64_t i = 0; i < D; i++) store_f32(dst, dt, i * sd, cpu_load_f32(src, st, i * ss));
        }
    }
}

mlxn_status cpu_copy_tensor(mlxn_stream *s, const mlxn_tensor *src, mlxn_tensor *dst) {
    copy_job j = {src, dst, last_len(src)};
    mlxn_parallel_for(cpu_dev(s)->pool, cpu_rows(src), grain_for(j.D), copy_rows, &j);
    return MLXN_OK;
}
