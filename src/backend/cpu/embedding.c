/* CPU dense embedding gather: out[i, :] = table[ids[i], :] as f32.
 *
 * Every id is checked before anything is written, so a bad id returns
 * MLXN_ERR_INVALID_ARGUMENT naming its position and value and leaves out
 * untouched. Then rows are copied on the device's threads: f32 rows with
 * memcpy, bf16 by widening (a 16-bit shift), f16 through F16C on AVX2
 * devices (a table row of 4096 halves is ~1 us either way, but the scalar
 * f16 decode costs several times that). Tables may be strided views. */
#include <string.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_tensor.h"
#include "backend/cpu/cpu_vmath.h"
#include "core/internal.h"

typedef struct emb_job {
    const mlxn_tensor *ids;   /* i32/u32 [n] */
    const mlxn_tensor *table; /* f32/f16/bf16 [V, D] */
    float *out;               /* f32 [n, D] contiguous */
    int64_t D;
    mlxn_cpu_isa isa;
} emb_job;

static int64_t id_at(const mlxn_tensor *ids, int64_t i) {
    const void *p = mlxn_tensor_host(ids);
    int64_t at = i * ids->strides[0];
    if (ids->dtype == MLXN_DTYPE_U32) return (int64_t)((const uint32_t *)p)[at];
    return (int64_t)((const int32_t *)p)[at];
}

static void bf16_row(const uint16_t *src, int64_t n, float *dst) {
    /* a plain loop the compiler vectorizes: bf16 is the top half of an f32 */
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(dst + i, &u, 4);
    }
}

#if CPU_VMATH_X86
TGT_AVX2 static void f16_row_avx2(const uint16_t *src, int64_t n, float *dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = mlxn_f16_to_f32(src[i]);
}
#endif

static void emb_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const emb_job *j = arg;
    const mlxn_tensor *t = j->table;
    const char *base = mlxn_tensor_host(t);
    size_t es = mlxn_dtype_size(t->dtype);
    int64_t cs = t->strides[1];
    for (int64_t i = begin; i < end; i++) {
        const void *row = base + id_at(j->ids, i) * t->strides[0] * (int64_t)es;
        float *y = j->out + i * j->D;
        if (cs != 1) {
            cpu_row_to_f32(row, t->dtype, cs, j->D, y);
        } else if (t->dtype == MLXN_DTYPE_F32) {
            memcpy(y, row, (size_t)j->D * sizeof *y);
        } else if (t->dtype == MLXN_DTYPE_BF16) {
            bf16_row(row, j->D, y);
#if CPU_VMATH_X86
        } else if (j->isa >= MLXN_CPU_ISA_AVX2) {
            f16_row_avx2(row, j->D, y);
#endif
        } else {
            cpu_row_to_f32(row, t->dtype, 1, j->D, y);
        }
    }
}

mlxn_status cpu_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *table, mlxn_tensor *out) {
    int64_t n = ids->shape[0], V = table->shape[0];
    for (int64_t i = 0; i < n; i++) {
        int64_t id = id_at(ids, i);
        if (id < 0 || id >= V)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "embedding: ids[%lld] = %lld is outside the table's [0, %lld)",
                             (long long)i, (long long)id, (long long)V);
    }
    emb_job j = {.ids = ids, .table = table, .out = mlxn_tensor_host(out), .D = table->shape[1],
                 .isa = cpu_dev(s)->isa};
    if (n == 0 || j.D == 0) return MLXN_OK;
    mlxn_parallel_for(cpu_dev(s)->pool, n, j.D >= 16384 ? 1 : 16384 / j.D, emb_task, &j);
    return MLXN_OK;
}
