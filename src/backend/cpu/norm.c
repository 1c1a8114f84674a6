/* CPU rms_norm and layer_norm over the last axis, as MLX evaluates
 * mx.fast.rms_norm / mx.fast.layer_norm on its CPU stream (f32 input, so
 * the output dtype is f32 whatever the weight dtype):
 *   rms:   y = x * (1 / sqrt(sum(x^2) / D + eps));  out = y * w
 *   layer: c = x - mean;  y = c * (1 / sqrt(sum(c^2) / D + eps));  out = y * w + b
 * Each product is rounded on its own (no fused multiply-add), in MLX's order.
 *
 * Weights (f32/f16/bf16, possibly strided) are converted once per call into
 * an f32 vector shared by every row. With w_offset != 0 the effective
 * weight is w_offset + w rounded to w's dtype, which is what mlx-lm's Gemma
 * norm feeds MLX (`1.0 + weight` is computed in the weight's dtype). A NULL
 * w means no weight at all (w_offset is then ignored), a NULL b no bias.
 *
 * Rows go to the device's threads in contiguous chunks; each row is
 * computed by one thread, so results do not depend on the thread count.
 * Reductions: double in the scalar path; f32 in 8/16 independent lanes in
 * the SIMD paths (several partial sums keep the rounding error near that of
 * pairwise summation). The SIMD paths need a unit stride on x's last axis;
 * other views take the scalar path.
 *
 * add_rms_norm runs the same row code on the sum: each row of a + b is
 * written to `sum` first (one f32 add per element, as cpu_add) and the
 * norm then reads that contiguous row, so its output has the bits of
 * cpu_add followed by cpu_rms_norm while the row is still in L1. */
#include <stdlib.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_tensor.h"
#include "backend/cpu/cpu_vmath.h"
#include "core/internal.h"

typedef struct norm_job {
    const mlxn_tensor *x; /* f32 [..., D], leading dims strided */
    float *out;           /* f32 [rows, D] contiguous */
    const float *w;       /* f32 [D] or NULL */
    const float *b;       /* f32 [D] or NULL (layer_norm only) */
    float eps;
    int64_t D;
    int64_t xs;           /* stride of x's last axis (1 for add_rms_norm: the norm reads sum) */
    const mlxn_tensor *addend; /* add_rms_norm: f32 [..., D] added to x (then x is a) */
    float *sum;           /* add_rms_norm: f32 [rows, D] contiguous, x + addend; may be x or addend */
    int layer;            /* 0: rms_norm, 1: layer_norm */
    mlxn_cpu_isa isa;
} norm_job;

/* ---- scalar --------------------------------------------------------------- */

static void rms_row_scalar(const float *x, int64_t xs, int64_t D, const float *w, float eps, float *y) {
    double ss = 0;
    for (int64_t i = 0; i < D; i++) ss += (double)x[i * xs] * x[i * xs];
    float inv = 1.0f / sqrtf((float)(ss / (double)D) + eps);
    for (int64_t i = 0; i < D; i++) {
        float v = x[i * xs] * inv;
        y[i] = w ? v * w[i] : v;
    }
}

static void ln_row_scalar(const float *x, int64_t xs, int64_t D, const float *w, const float *b, float eps,
                          float *y) {
    double s = 0;
    for (int64_t i = 0; i < D; i++) s += x[i * xs];
    float mean = (float)(s / (double)D);
    double ss = 0;
    for (int64_t i = 0; i < D; i++) {
        float c = x[i * xs] - mean;
        ss += (double)c * c;
    }
    float inv = 1.0f / sqrtf((float)(ss / (double)D) + eps);
    for (int64_t i = 0; i < D; i++) {
        float v = (x[i * xs] - mean) * inv;
        if (w) v = v * w[i];
        if (b) v = v + b[i];
        y[i] = v;
    }
}

#if CPU_VMATH_X86
/* ---- AVX2 ------------------------------------------------------------------- */

/* y = (x - sub) * inv [* w] [+ b] over D elements (sub = 0 for rms). */
TGT_AVX2 static void norm_apply_avx2(const float *x, int64_t D, float sub, float inv, const float *w,
                                     const float *b, float *y) {
    __m256 vs = _mm256_set1_ps(sub), vi = _mm256_set1_ps(inv);
    int64_t i = 0;
    for (; i + 8 <= D; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs), vi);
        if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
        if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, v);
    }
    if (i < D) {
        __m256i m = v8_tail_mask(D - i);
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vs), vi);
        if (w) v = _mm256_mul_ps(v, _mm256_maskload_ps(w + i, m));
        if (b) v = _mm256_add_ps(v, _mm256_maskload_ps(b + i, m));
        _mm256_maskstore_ps(y + i, m, v);
    }
}

/* sum((x - c)^2); two accumulators hide the FMA latency. Masked-off tail
 * lanes load as 0 and would add (0 - c)^2, so the difference is masked again. */
TGT_AVX2 static float sumsq_avx2(const float *x, int64_t D, float c) {
    __m256 vc = _mm256_set1_ps(c), a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= D; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), vc);
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vc);
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
    }
    for (; i + 8 <= D; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vc);
        a0 = _mm256_fmadd_ps(d, d, a0);
    }
    if (i < D) {
        __m256i m = v8_tail_mask(D - i);
        __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vc), _mm256_castsi256_ps(m));
        a1 = _mm256_fmadd_ps(d, d, a1);
    }
    return v8_hsum(_mm256_add_ps(a0, a1));
}

TGT_AVX2 static float sum_avx2(const float *x, int64_t D) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= D; i += 16) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
    }
    for (; i + 8 <= D; i += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    if (i < D) a1 = _mm256_add_ps(a1, _mm256_maskload_ps(x + i, v8_tail_mask(D - i)));
    return v8_hsum(_mm256_add_ps(a0, a1));
}

TGT_AVX2 static void norm_row_avx2(const norm_job *j, const float *x, float *y) {
    int64_t D = j->D;
    float mean = 0.0f;
    if (j->layer) mean = sum_avx2(x, D) / (float)D;
    float inv = 1.0f / sqrtf(sumsq_avx2(x, D, mean) / (float)D + j->eps);
    norm_apply_avx2(x, D, mean, inv, j->w, j->b, y);
}

/* ---- AVX-512 ------------------------------------------------------------------ */

TGT_AVX512 static void norm_apply_avx512(const float *x, int64_t D, float sub, float inv, const float *w,
                                         const float *b, float *y) {
    __m512 vs = _mm512_set1_ps(sub), vi = _mm512_set1_ps(inv);
    for (int64_t i = 0; i < D; i += 16) {
        __mmask16 m = D - i >= 16 ? (__mmask16)0xFFFF : v16_tail_mask(D - i);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs), vi);
        if (w) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i));
        if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

TGT_AVX512 static float sumsq_avx512(const float *x, int64_t D, float c) {
    __m512 vc = _mm512_set1_ps(c), a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= D; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), vc);
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vc);
        a0 = _mm512_fmadd_ps(d0, d0, a0);
        a1 = _mm512_fmadd_ps(d1, d1, a1);
    }
    for (; i < D; i += 16) {
        __mmask16 m = D - i >= 16 ? (__mmask16)0xFFFF : v16_tail_mask(D - i);
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vc);
        a0 = _mm512_fmadd_ps(d, d, a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

TGT_AVX512 static float sum_avx512(const float *x, int64_t D) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= D; i += 32) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
    }
    for (; i < D; i += 16) {
        __mmask16 m = D - i >= 16 ? (__mmask16)0xFFFF : v16_tail_mask(D - i);
        a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(m, x + i));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

TGT_AVX512 static void norm_row_avx512(const norm_job *j, const float *x, float *y) {
    int64_t D = j->D;
    float mean = 0.0f;
    if (j->layer) mean = sum_avx512(x, D) / (float)D;
    float inv = 1.0f / sqrtf(sumsq_avx512(x, D, mean) / (float)D + j->eps);
    norm_apply_avx512(x, D, mean, inv, j->w, j->b, y);
}
#endif

/* Row r of sum = a + addend (a's row at x); returns the sum row. Each
 * element is read and then written by the same iteration, so sum may be a
 * or addend itself. */
static const float *add_row(const norm_job *j, const float *x, int64_t r) {
    const mlxn_tensor *a = j->x, *b = j->addend;
    int64_t sa = a->strides[a->ndim - 1], sb = b->strides[b->ndim - 1];
    const float *br = cpu_row_ptr(b, r);
    float *o = j->sum + r * j->D;
    for (int64_t i = 0; i < j->D; i++) o[i] = x[i * sa] + br[i * sb];
    return o;
}

static void norm_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const norm_job *j = arg;
    for (int64_t r = begin; r < end; r++) {
        const float *x = cpu_row_ptr(j->x, r);
        float *y = j->out + r * j->D;
        if (j->sum) x = add_row(j, x, r);
#if CPU_VMATH_X86
        if (j->xs == 1 && j->isa >= MLXN_CPU_ISA_AVX512) {
            norm_row_avx512(j, x, y);
            continue;
        }
        if (j->xs == 1 && j->isa >= MLXN_CPU_ISA_AVX2) {
            norm_row_avx2(j, x, y);
            continue;
        }
#endif
        if (j->layer)
            ln_row_scalar(x, j->xs, j->D, j->w, j->b, j->eps, y);
        else
            rms_row_scalar(x, j->xs, j->D, j->w, j->eps, y);
    }
}

/* An f32 view of a [D] weight: the tensor itself when it is f32, unit
 * stride and needs no offset; otherwise a fresh array (*owned, freed by the
 * caller) holding offset + t rounded to t's dtype. NULL t gives NULL. */
static mlxn_status weight_f32(const char *op, const mlxn_tensor *t, float offset, int64_t D, const float **out,
                              float **owned) {
    *out = NULL;
    *owned = NULL;
    if (!t) return MLXN_OK;
    const void *p = mlxn_tensor_host(t);
    int64_t st = t->strides[0];
    if (t->dtype == MLXN_DTYPE_F32 && st == 1 && offset == 0.0f) {
        *out = p;
        return MLXN_OK;
    }
    float *v = malloc((size_t)(D > 0 ? D : 1) * sizeof *v);
    if (!v) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory for a [%lld] weight", op, (long long)D);
    for (int64_t i = 0; i < D; i++) {
        float w = cpu_load_f32(p, t->dtype, i * st);
        if (offset != 0.0f) {
            w = offset + w;
            if (t->dtype == MLXN_DTYPE_F16) w = mlxn_f16_to_f32(mlxn_f32_to_f16(w));
            if (t->dtype == MLXN_DTYPE_BF16) w = mlxn_bf16_to_f32(mlxn_f32_to_bf16(w));
        }
        v[i] = w;
    }
    *out = v;
    *owned = v;
    return MLXN_OK;
}

/* Rows per thread chunk: about 16K elements, so small calls (one decode
 * token) stay on the calling thread instead of paying a wake-up. */
static int64_t norm_grain(int64_t D) { return D >= 16384 ? 1 : 16384 / (D > 0 ? D : 1); }

static mlxn_status norm_run(mlxn_stream *s, norm_job *j) {
    int64_t rows = cpu_rows(j->x);
    if (rows == 0 || j->D == 0) return MLXN_OK;
    j->isa = cpu_dev(s)->isa;
    mlxn_parallel_for(cpu_dev(s)->pool, rows, norm_grain(j->D), norm_task, j);
    return MLXN_OK;
}

mlxn_status cpu_rms_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, float eps, float w_offset,
                         mlxn_tensor *out) {
    int64_t D = x->shape[x->ndim - 1];
    norm_job j = {.x = x, .out = mlxn_tensor_host(out), .eps = eps, .D = D, .xs = x->strides[x->ndim - 1]};
    float *wown = NULL;
    MLXN_TRY(weight_f32("rms_norm", w, w_offset, D, &j.w, &wown));
    mlxn_status st = norm_run(s, &j);
    free(wown);
    return st;
}

mlxn_status cpu_add_rms_norm(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, const mlxn_tensor *w,
                             float eps, float w_offset, mlxn_tensor *sum, mlxn_tensor *out) {
    int64_t D = a->shape[a->ndim - 1];
    norm_job j = {.x = a, .addend = b, .sum = mlxn_tensor_host(sum), .out = mlxn_tensor_host(out), .eps = eps,
                  .D = D, .xs = 1};
    float *wown = NULL;
    MLXN_TRY(weight_f32("add_rms_norm", w, w_offset, D, &j.w, &wown));
    mlxn_status st = norm_run(s, &j);
    free(wown);
    return st;
}

mlxn_status cpu_layer_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, const mlxn_tensor *b,
                           float eps, mlxn_tensor *out) {
    int64_t D = x->shape[x->ndim - 1];
    norm_job j = {.x = x, .out = mlxn_tensor_host(out), .eps = eps, .D = D, .xs = x->strides[x->ndim - 1],
                  .layer = 1};
    float *wown = NULL, *bown = NULL;
    MLXN_TRY(weight_f32("layer_norm", w, 0.0f, D, &j.w, &wown));
    mlxn_status st = weight_f32("layer_norm", b, 0.0f, D, &j.b, &bown);
    if (st == MLXN_OK) st = norm_run(s, &j);
    free(wown);
    free(bown);
    return st;
}
