/* CPU activations and last-axis reductions, in the forms MLX evaluates:
 *   silu(x)      = x * sigmoid(x)                                   (nn.silu)
 *   gelu_erf(x)  = x * (1 + erf(x / sqrt(2))) / 2                   (nn.gelu)
 *   gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (nn.gelu_approx)
 *   swiglu / geglu = act(gate) * up
 *   softmax      = exp(x - max) * (1 / sum exp(x - max))            (mx.softmax, f32)
 *   argmax       = first index of the largest value; NaN beats every number,
 *                  so the first NaN wins when there is one           (mx.argmax)
 * Special values follow: a row of softmax holding +inf or NaN, or only
 * -inf, is all NaN, as in MLX.
 *
 * The scalar path uses libm (expf, erff, tanhf); the AVX2/AVX-512 paths
 * use the polynomial forms in cpu_vmath.h, within an ulp or two of MLX's
 * own. Elementwise ops on contiguous tensors are split into flat chunks
 * (one decode-sized MLP row still spreads over the threads); other views go
 * row by row. Softmax and argmax go row by row. Every element is computed
 * the same way whatever the chunking, so results do not depend on the
 * thread count. */
#include <math.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_tensor.h"
#include "backend/cpu/cpu_vmath.h"
#include "core/internal.h"

typedef enum act_kind { ACT_SILU, ACT_GELU_ERF, ACT_GELU_TANH } act_kind;

#define GELU_SQRT2 1.41421356237309505f
#define GELU_SQRT_2_OVER_PI 0.79788456080286536f
#define GELU_CUBIC 0.044715f

/* ---- elementwise ------------------------------------------------------------- */

static inline float act_scalar(act_kind k, float x) {
    switch (k) {
    case ACT_SILU: return x * vm_sigmoid(x);
    case ACT_GELU_ERF: return x * (1.0f + erff(x / GELU_SQRT2)) * 0.5f;
    default: {
        float inner = GELU_SQRT_2_OVER_PI * (x + GELU_CUBIC * (x * x * x));
        return 0.5f * x * (1.0f + tanhf(inner));
    }
    }
}

/* y[i] = act(g[i * gs]) (* u[i * us] when u) for i < n. */
static void act_span_scalar(act_kind k, const float *g, int64_t gs, const float *u, int64_t us, float *y,
                            int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = act_scalar(k, g[i * gs]);
        y[i] = u ? v * u[i * us] : v;
    }
}

#if CPU_VMATH_X86
TGT_AVX2 static inline __m256 act8(act_kind k, __m256 x) {
    switch (k) {
    case ACT_SILU: return _mm256_mul_ps(x, v8_sigmoid(x));
    case ACT_GELU_ERF: {
        __m256 e = v8_erf(_mm256_div_ps(x, _mm256_set1_ps(GELU_SQRT2)));
        return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), _mm256_set1_ps(0.5f));
    }
    default: {
        __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        __m256 in = _mm256_add_ps(x, _mm256_mul_ps(_mm256_set1_ps(GELU_CUBIC), x3));
        __m256 t = v8_tanh(_mm256_mul_ps(_mm256_set1_ps(GELU_SQRT_2_OVER_PI), in));
        return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), t));
    }
    }
}

/* unit-stride spans; the tail goes through masked loads and stores so it
 * uses the same formula as the body */
TGT_AVX2 static void act_span_avx2(act_kind k, const float *g, const float *u, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = act8(k, _mm256_loadu_ps(g + i));
        if (u) v = _mm256_mul_ps(v, _mm256_loadu_ps(u + i));
        _mm256_storeu_ps(y + i, v);
    }
    if (i < n) {
        __m256i m = v8_tail_mask(n - i);
        __m256 v = act8(k, _mm256_maskload_ps(g + i, m));
        if (u) v = _mm256_mul_ps(v, _mm256_maskload_ps(u + i, m));
        _mm256_maskstore_ps(y + i, m, v);
    }
}

TGT_AVX512 static inline __m512 act16(act_kind k, __m512 x) {
    switch (k) {
    case ACT_SILU: return _mm512_mul_ps(x, v16_sigmoid(x));
    case ACT_GELU_ERF: {
        __m512 e = v16_erf(_mm512_div_ps(x, _mm512_set1_ps(GELU_SQRT2)));
        return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), _mm512_set1_ps(0.5f));
    }
    default: {
        __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
        __m512 in = _mm512_add_ps(x, _mm512_mul_ps(_mm512_set1_ps(GELU_CUBIC), x3));
        __m512 t = v16_tanh(_mm512_mul_ps(_mm512_set1_ps(GELU_SQRT_2_OVER_PI), in));
        return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), t));
    }
    }
}

TGT_AVX512 static void act_span_avx512(act_kind k, const float *g, const float *u, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : v16_tail_mask(n - i);
        __m512 v = act16(k, _mm512_maskz_loadu_ps(m, g + i));
        if (u) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, u + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}
#endif

static void act_span(mlxn_cpu_isa isa, act_kind k, const float *g, int64_t gs, const float *u, int64_t us,
                     float *y, int64_t n) {
#if CPU_VMATH_X86
    if (gs == 1 && (!u || us == 1)) {
        if (isa >= MLXN_CPU_ISA_AVX512) {
            act_span_avx512(k, g, u, y, n);
            return;
        }
        if (isa >= MLXN_CPU_ISA_AVX2) {
            act_span_avx2(k, g, u, y, n);
            return;
        }
    }
#else
    (void)isa;
#endif
    act_span_scalar(k, g, gs, u, us, y, n);
}

typedef struct act_job {
    const mlxn_tensor *g, *u; /* f32 [..., D] (u may be NULL) */
    float *out;               /* f32 [..., D] contiguous */
    int64_t D;
    act_kind kind;
    mlxn_cpu_isa isa;
} act_job;

/* items are elements of the flat (all contiguous) tensors */
static void act_flat_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const act_job *j = arg;
    const float *g = (const float *)mlxn_tensor_host(j->g) + begin;
    const float *u = j->u ? (const float *)mlxn_tensor_host(j->u) + begin : NULL;
    act_span(j->isa, j->kind, g, 1, u, 1, j->out + begin, end - begin);
}

/* items are rows */
static void act_rows_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const act_job *j = arg;
    int last = j->g->ndim - 1;
    for (int64_t r = begin; r < end; r++) {
        const float *g = cpu_row_ptr(j->g, r);
        const float *u = j->u ? cpu_row_ptr(j->u, r) : NULL;
        act_span(j->isa, j->kind, g, j->g->strides[last], u, j->u ? j->u->strides[last] : 0, j->out + r * j->D,
                 j->D);
    }
}

/* Flat chunks of 4K elements (a multiple of every vector width): enough
 * work to be worth a thread, small enough to spread one 14K-wide row. */
#define ACT_GRAIN 4096

static mlxn_status act_run(mlxn_stream *s, const mlxn_tensor *g, const mlxn_tensor *u, act_kind k,
                           mlxn_tensor *out) {
    act_job j = {.g = g, .u = u, .out = mlxn_tensor_host(out), .kind = k, .isa = cpu_dev(s)->isa};
    int64_t n = mlxn_tensor_numel(g);
    if (n == 0) return MLXN_OK;
    mlxn_threadpool *pool = cpu_dev(s)->pool;
    if (g->ndim == 0 || (mlxn_tensor_is_contiguous(g) && (!u || mlxn_tensor_is_contiguous(u)))) {
        mlxn_parallel_for(pool, n, ACT_GRAIN, act_flat_task, &j);
    } else {
        j.D = g->shape[g->ndim - 1];
        mlxn_parallel_for(pool, cpu_rows(g), j.D >= ACT_GRAIN ? 1 : ACT_GRAIN / j.D, act_rows_task, &j);
    }
    return MLXN_OK;
}

mlxn_status cpu_gelu(mlxn_stream *s, const mlxn_tensor *x, mlxn_gelu_kind kind, mlxn_tensor *out) {
    return act_run(s, x, NULL, kind == MLXN_GELU_TANH ? ACT_GELU_TANH : ACT_GELU_ERF, out);
}

mlxn_status cpu_silu(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    return act_run(s, x, NULL, ACT_SILU, out);
}

mlxn_status cpu_swiglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_tensor *out) {
    return act_run(s, gate, up, ACT_SILU, out);
}

mlxn_status cpu_geglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_gelu_kind kind,
                      mlxn_tensor *out) {
    return act_run(s, gate, up, kind == MLXN_GELU_TANH ? ACT_GELU_TANH : ACT_GELU_ERF, out);
}

/* ---- softmax ------------------------------------------------------------------ */

static void softmax_row_scalar(const float *x, int64_t xs, int64_t n, float *y) {
    float m = -INFINITY;
    int has_nan = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i * xs];
        has_nan |= isnan(v);
        m = v > m ? v : m;
    }
    if (has_nan) m = NAN; /* MLX's row is all NaN then; make sure ours is too */
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        y[i] = expf(x[i * xs] - m);
        sum += y[i];
    }
    float norm = 1.0f / (float)sum;
    for (int64_t i = 0; i < n; i++) y[i] *= norm;
}

#if CPU_VMATH_X86
/* max over the row; a NaN anywhere makes the result NaN (max_ps alone
 * would drop it depending on the operand order) */
TGT_AVX2 static float rowmax_avx2(const float *x, int64_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY), bad = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        m = _mm256_max_ps(m, v);
    }
    float r = v8_hmax(m);
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    int any = _mm256_movemask_ps(bad) != 0;
    for (i = n & ~(int64_t)7; i < n; i++) any |= isnan(x[i]);
    return any ? NAN : r;
}

/* The normalizer is summed in 4 x 8 partial sums (32 lanes, like the
 * AVX-512 path's 2 x 16): fewer additions per partial sum keep its rounding
 * error below MLX's own on 4K-wide rows. */
TGT_AVX2 static void softmax_row_avx2(const float *x, int64_t n, float *y) {
    __m256 m = _mm256_set1_ps(rowmax_avx2(x, n)), acc = _mm256_setzero_ps();
    __m256 a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 e0 = v8_exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        __m256 e1 = v8_exp(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m));
        __m256 e2 = v8_exp(_mm256_sub_ps(_mm256_loadu_ps(x + i + 16), m));
        __m256 e3 = v8_exp(_mm256_sub_ps(_mm256_loadu_ps(x + i + 24), m));
        _mm256_storeu_ps(y + i, e0);
        _mm256_storeu_ps(y + i + 8, e1);
        _mm256_storeu_ps(y + i + 16, e2);
        _mm256_storeu_ps(y + i + 24, e3);
        acc = _mm256_add_ps(acc, e0);
        a1 = _mm256_add_ps(a1, e1);
        a2 = _mm256_add_ps(a2, e2);
        a3 = _mm256_add_ps(a3, e3);
    }
    acc = _mm256_add_ps(_mm256_add_ps(acc, a1), _mm256_add_ps(a2, a3));
    for (; i + 8 <= n; i += 8) {
        __m256 e = v8_exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (i < n) {
        __m256i k = v8_tail_mask(n - i);
        __m256 e = _mm256_and_ps(v8_exp(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), m)), _mm256_castsi256_ps(k));
        _mm256_maskstore_ps(y + i, k, e);
        acc = _mm256_add_ps(acc, e);
    }
    __m256 norm = _mm256_set1_ps(1.0f / v8_hsum(acc));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), norm));
    if (i < n) {
        __m256i k = v8_tail_mask(n - i);
        _mm256_maskstore_ps(y + i, k, _mm256_mul_ps(_mm256_maskload_ps(y + i, k), norm));
    }
}

TGT_AVX512 static float rowmax_avx512(const float *x, int64_t n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    __mmask16 bad = 0;
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : v16_tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        bad |= _mm512_mask_cmp_ps_mask(k, v, v, _CMP_UNORD_Q);
        m = _mm512_mask_max_ps(m, k, m, v);
    }
    return bad ? NAN : _mm512_reduce_max_ps(m);
}

TGT_AVX512 static void softmax_row_avx512(const float *x, int64_t n, float *y) {
    __m512 m = _mm512_set1_ps(rowmax_avx512(x, n)), acc = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 e0 = v16_exp(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
        __m512 e1 = v16_exp(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), m));
        _mm512_storeu_ps(y + i, e0);
        _mm512_storeu_ps(y + i + 16, e1);
        acc = _mm512_add_ps(acc, e0);
        a1 = _mm512_add_ps(a1, e1);
    }
    acc = _mm512_add_ps(acc, a1);
    for (; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : v16_tail_mask(n - i);
        __m512 e = v16_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m));
        _mm512_mask_storeu_ps(y + i, k, e);
        acc = _mm512_mask_add_ps(acc, k, acc, e);
    }
    __m512 norm = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(acc));
    for (i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : v16_tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), norm));
    }
}
#endif

typedef struct row_job {
    const mlxn_tensor *x; /* f32 [..., N] */
    void *out;            /* f32 [rows, N] (softmax) or i32 [rows] (argmax) */
    int64_t N;
    mlxn_cpu_isa isa;
} row_job;

static void softmax_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const row_job *j = arg;
    int64_t xs = j->x->strides[j->x->ndim - 1];
    for (int64_t r = begin; r < end; r++) {
        const float *x = cpu_row_ptr(j->x, r);
        float *y = (float *)j->out + r * j->N;
#if CPU_VMATH_X86
        if (xs == 1 && j->isa >= MLXN_CPU_ISA_AVX512) {
            softmax_row_avx512(x, j->N, y);
            continue;
        }
        if (xs == 1 && j->isa >= MLXN_CPU_ISA_AVX2) {
            softmax_row_avx2(x, j->N, y);
            continue;
        }
#endif
        softmax_row_scalar(x, xs, j->N, y);
    }
}

static int64_t row_grain(int64_t N) { return N >= 16384 ? 1 : 16384 / (N > 0 ? N : 1); }

mlxn_status cpu_softmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    row_job j = {.x = x, .out = mlxn_tensor_host(out), .N = x->shape[x->ndim - 1], .isa = cpu_dev(s)->isa};
    int64_t rows = cpu_rows(x);
    if (rows == 0 || j.N == 0) return MLXN_OK;
    mlxn_parallel_for(cpu_dev(s)->pool, rows, row_grain(j.N), softmax_task, &j);
    return MLXN_OK;
}

/* ---- argmax ------------------------------------------------------------------- */

static int32_t argmax_row_scalar(const float *x, int64_t xs, int64_t n) {
    float best = x[0];
    int64_t at = 0;
    for (int64_t i = 1; i < n; i++) {
        float v = x[i * xs];
        if (v > best || (isnan(v) && !isnan(best))) {
            best = v;
            at = i;
        }
    }
    return (int32_t)at;
}

#if CPU_VMATH_X86
/* Two vector passes instead of one compare-and-track pass: the row max (and
 * whether a NaN is present), then the first index holding it (or the first
 * NaN). Both passes stream at full vector width; tracking indices per lane
 * would need twice the registers for the same memory traffic. */
TGT_AVX2 static int32_t argmax_row_avx2(const float *x, int64_t n) {
    float m = rowmax_avx2(x, n);
    int has_nan = isnan(m);
    __m256 vm = _mm256_set1_ps(m);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 hit = has_nan ? _mm256_cmp_ps(v, v, _CMP_UNORD_Q) : _mm256_cmp_ps(v, vm, _CMP_EQ_OQ);
        int bits = _mm256_movemask_ps(hit);
        if (bits) return (int32_t)(i + __builtin_ctz((unsigned)bits));
    }
    for (; i < n; i++)
        if (has_nan ? isnan(x[i]) : x[i] == m) return (int32_t)i;
    return 0; /* not reached: the max is one of the elements */
}
#endif

static void argmax_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const row_job *j = arg;
    int64_t xs = j->x->strides[j->x->ndim - 1];
    for (int64_t r = begin; r < end; r++) {
        const float *x = cpu_row_ptr(j->x, r);
        int32_t *y = (int32_t *)j->out + r;
#if CPU_VMATH_X86
        /* AVX-512 devices use the AVX2 pass: it is bound by memory */
        if (xs == 1 && j->isa >= MLXN_CPU_ISA_AVX2) {
            *y = argmax_row_avx2(x, j->N);
            continue;
        }
#endif
        *y = argmax_row_scalar(x, xs, j->N);
    }
}

mlxn_status cpu_argmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    row_job j = {.x = x, .out = mlxn_tensor_host(out), .N = x->shape[x->ndim - 1], .isa = cpu_dev(s)->isa};
    int64_t rows = cpu_rows(x);
    if (rows == 0) return MLXN_OK;
    mlxn_parallel_for(cpu_dev(s)->pool, rows, row_grain(j.N), argmax_task, &j);
    return MLXN_OK;
}
