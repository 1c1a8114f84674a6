/* CPU rotary position embedding, as MLX evaluates mx.fast.rope on its CPU
 * stream. x is [..., T, D]; row r of x sits at time t = r mod T, whose
 * position is pos = (t + offset) * scale, computed in f32 like MLX
 * ((float)t + (float)offset, then times scale). For pair i < dims/2 the
 * angle is pos * inv_freq[i] with
 *   inv_freq[i] = 1 / freqs[i]                            (freqs given)
 *   inv_freq[i] = exp(-i * (log(base) / (dims/2)))        (otherwise)
 * where exp is MLX's own polynomial exp (vm_exp_exact): libm's differs by
 * up to ~9 ulp there, and positions reach 10^5, so the angle would drift by
 * hundredths of a radian. Pairs are (x[2i], x[2i+1]) when traditional,
 * (x[i], x[i + dims/2]) otherwise; each becomes
 *   (a cos - b sin, a sin + b cos)
 * with every product rounded on its own, as MLX does. Elements from dims
 * to D pass through unchanged.
 *
 * Two passes over the device's threads: first a [T, ...] table of cos and
 * sin (every row at one t shares it, so heads and batch entries reuse it),
 * then the rotation of every row. For the traditional layout the table is
 * stored per element, cos duplicated and sin with the sign of its output
 * ([-s, +s] for each pair), so the rotation becomes x*C + swap_pairs(x)*S,
 * which vectorizes without deinterleaving. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_tensor.h"
#include "backend/cpu/cpu_vmath.h"
#include "core/internal.h"

typedef struct rope_job {
    const mlxn_tensor *x; /* f32 [..., T, D] */
    float *out;           /* f32 [rows, D] contiguous */
    const float *inv;     /* f32 [dims/2] inverse frequencies */
    float *cs, *sn;       /* f32 [T, tw] table: tw = dims (traditional) or dims/2 */
    int64_t T, D, dims, tw, xs;
    float offset, scale;
    bool traditional;
    mlxn_cpu_isa isa;
} rope_job;

static void table_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    rope_job *j = arg;
    int64_t half = j->dims / 2;
    for (int64_t t = begin; t < end; t++) {
        float pos = ((float)t + j->offset) * j->scale;
        float *c = j->cs + t * j->tw, *s = j->sn + t * j->tw;
        for (int64_t i = 0; i < half; i++) {
            float th = pos * j->inv[i];
            float cv = cosf(th), sv = sinf(th);
            if (j->traditional) {
                c[2 * i] = cv;
                c[2 * i + 1] = cv;
                s[2 * i] = -sv;
                s[2 * i + 1] = sv;
            } else {
                c[i] = cv;
                s[i] = sv;
            }
        }
    }
}

/* One row: x (last-axis stride xs) -> y [D]; c, s the table row of its t. */
static void rope_row_scalar(const rope_job *j, const float *x, int64_t xs, const float *c, const float *s,
                            float *y) {
    int64_t half = j->dims / 2;
    if (j->traditional) {
        for (int64_t i = 0; i < j->dims; i += 2) {
            float a = x[i * xs], b = x[(i + 1) * xs];
            y[i] = a * c[i] + b * s[i];
            y[i + 1] = b * c[i + 1] + a * s[i + 1];
        }
    } else {
        for (int64_t i = 0; i < half; i++) {
            float a = x[i * xs], b = x[(i + half) * xs];
            y[i] = a * c[i] - b * s[i];
            y[i + half] = a * s[i] + b * c[i];
        }
    }
    for (int64_t i = j->dims; i < j->D; i++) y[i] = x[i * xs];
}

#if CPU_VMATH_X86
/* AVX2 rotation of one unit-stride row. AVX-512 devices use it too: the op
 * streams each element once, so it is bound by memory, not by lane count. */
TGT_AVX2 static void rope_row_avx2(const rope_job *j, const float *x, const float *c, const float *s, float *y) {
    int64_t half = j->dims / 2, i = 0;
    if (j->traditional) {
        for (; i + 8 <= j->dims; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            __m256 w = _mm256_permute_ps(v, 0xB1); /* swap each pair */
            __m256 r = _mm256_add_ps(_mm256_mul_ps(v, _mm256_loadu_ps(c + i)), _mm256_mul_ps(w, _mm256_loadu_ps(s + i)));
            _mm256_storeu_ps(y + i, r);
        }
        for (; i < j->dims; i += 2) {
            float a = x[i], b = x[i + 1];
            y[i] = a * c[i] + b * s[i];
            y[i + 1] = b * c[i + 1] + a * s[i + 1];
        }
    } else {
        for (; i + 8 <= half; i += 8) {
            __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + half);
            __m256 cv = _mm256_loadu_ps(c + i), sv = _mm256_loadu_ps(s + i);
            _mm256_storeu_ps(y + i, _mm256_sub_ps(_mm256_mul_ps(a, cv), _mm256_mul_ps(b, sv)));
            _mm256_storeu_ps(y + i + half, _mm256_add_ps(_mm256_mul_ps(a, sv), _mm256_mul_ps(b, cv)));
        }
        for (; i < half; i++) {
            float a = x[i], b = x[i + half];
            y[i] = a * c[i] - b * s[i];
            y[i + half] = a * s[i] + b * c[i];
        }
    }
    if (j->D > j->dims) memcpy(y + j->dims, x + j->dims, (size_t)(j->D - j->dims) * sizeof *y);
}
#endif

static void apply_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const rope_job *j = arg;
    for (int64_t r = begin; r < end; r++) {
        const float *x = cpu_row_ptr(j->x, r);
        int64_t t = r % j->T;
        const float *c = j->cs + t * j->tw, *s = j->sn + t * j->tw;
        float *y = j->out + r * j->D;
#if CPU_VMATH_X86
        if (j->xs == 1 && j->isa >= MLXN_CPU_ISA_AVX2) {
            rope_row_avx2(j, x, c, s, y);
            continue;
        }
#endif
        rope_row_scalar(j, x, j->xs, c, s, y);
    }
}

mlxn_status cpu_rope(mlxn_stream *s, const mlxn_tensor *x, const mlxn_rope_params *p, mlxn_tensor *out) {
    rope_job j = {.x = x, .out = mlxn_tensor_host(out), .T = x->shape[x->ndim - 2], .D = x->shape[x->ndim - 1],
                  .dims = p->dims, .xs = x->strides[x->ndim - 1], .scale = p->scale,
                  .traditional = p->traditional, .isa = cpu_dev(s)->isa};
    int64_t rows = cpu_rows(x), half = p->dims / 2;
    if (rows == 0 || j.D == 0) return MLXN_OK;
    int offset = p->offset;
    if (p->offset_tensor) offset = *(const int32_t *)mlxn_tensor_host(p->offset_tensor);
    j.offset = (float)offset;
    j.tw = p->traditional ? p->dims : half;

    /* one allocation: inverse frequencies, then the cos and sin tables */
    size_t n = (size_t)half + 2 * (size_t)j.T * (size_t)j.tw;
    float *mem = malloc(n * sizeof *mem);
    if (!mem) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "rope: out of memory for a [%lld, %lld] cos/sin table",
                               (long long)j.T, (long long)j.tw);
    float *inv = mem;
    if (p->freqs) {
        const float *f = mlxn_tensor_host(p->freqs);
        for (int64_t i = 0; i < half; i++) inv[i] = 1.0f / f[i * p->freqs->strides[0]];
    } else {
        float step = logf(p->base) / (float)half;
        for (int64_t i = 0; i < half; i++) inv[i] = vm_exp_exact(-(float)i * step);
    }
    j.inv = inv;
    j.cs = mem + half;
    j.sn = j.cs + (size_t)j.T * (size_t)j.tw;

    mlxn_threadpool *pool = cpu_dev(s)->pool;
    /* ~1K sin/cos pairs per chunk; ~16K rotated elements per chunk */
    mlxn_parallel_for(pool, j.T, half >= 1024 ? 1 : 1024 / half, table_task, &j);
    mlxn_parallel_for(pool, rows, j.D >= 16384 ? 1 : 16384 / j.D, apply_task, &j);
    free(mem);
    return MLXN_OK;
}
