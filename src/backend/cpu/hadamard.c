/* CPU fast Walsh-Hadamard transform over the last axis (n a power of two,
 * up to 2^15), times scale, as mx.hadamard_transform: out = (H_n x) * scale
 * with H_n the Sylvester matrix, H[i][j] = (-1)^popcount(i & j).
 *
 * Stages run h = 1, 2, 4, ..., n/2; each maps a pair (a, b) at distance h
 * to (a + b, a - b), and the scale multiplies the result of the last stage.
 * That is exactly MLX's sequence of roundings, so results match MLX bit for
 * bit (n = 1 is just x * scale, as MLX gives too). The vector paths keep it:
 * the stages below the vector width run inside registers as
 * partner + (+-v) (the same sums and differences, commutated), and the
 * stages above it are done two at a time (radix 4), which only changes the
 * order in which memory is visited, not any arithmetic.
 *
 * Each row is copied into out first (unless out is x, the in-place case)
 * and transformed there; rows go to the device's threads in chunks. */
#include <string.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_tensor.h"
#include "backend/cpu/cpu_vmath.h"
#include "core/internal.h"

typedef struct fwht_job {
    const mlxn_tensor *x; /* f32 [..., n] */
    float *out;           /* f32 [rows, n] contiguous; may be x's memory */
    int64_t n, xs;
    float scale;
    mlxn_cpu_isa isa;
} fwht_job;

static void fwht_scalar(float *y, int64_t n, float scale) {
    for (int64_t h = 1; h < n; h <<= 1)
        for (int64_t j = 0; j < n; j += 2 * h)
            for (int64_t k = j; k < j + h; k++) {
                float a = y[k], b = y[k + h];
                y[k] = a + b;
                y[k + h] = a - b;
            }
    for (int64_t i = 0; i < n; i++) y[i] *= scale;
}

#if CPU_VMATH_X86
/* Stages h = W..n/2 on a row of W-lane vectors: radix-4 passes, then one
 * radix-2 pass when an odd number of stages is left. ADD/SUB/LD/ST are the
 * width's intrinsics. */
#define FWHT_WIDE_STAGES(W, VT, LD, ST, ADD, SUB)                                      \
    do {                                                                               \
        int64_t h = (W);                                                               \
        for (; 4 * h <= n; h *= 4)                                                     \
            for (int64_t j = 0; j < n; j += 4 * h)                                     \
                for (int64_t k = j; k < j + h; k += (W)) {                             \
                    VT a = LD(y + k), b = LD(y + k + h), c = LD(y + k + 2 * h);        \
                    VT d = LD(y + k + 3 * h);                                          \
                    VT s0 = ADD(a, b), d0 = SUB(a, b), s1 = ADD(c, d), d1 = SUB(c, d); \
                    ST(y + k, ADD(s0, s1));                                            \
                    ST(y + k + h, ADD(d0, d1));                                        \
                    ST(y + k + 2 * h, SUB(s0, s1));                                    \
                    ST(y + k + 3 * h, SUB(d0, d1));                                    \
                }                                                                      \
        if (h < n)                                                                     \
            for (int64_t k = 0; k < h; k += (W)) {                                     \
                VT a = LD(y + k), b = LD(y + k + h);                                   \
                ST(y + k, ADD(a, b));                                                  \
                ST(y + k + h, SUB(a, b));                                              \
            }                                                                          \
    } while (0)

/* one in-register stage: lanes with bit h clear get p + v, the others p - v,
 * where p is the partner lane (sign flips are exact, so these are a + b and
 * a - b with MLX's operands) */
TGT_AVX2 static inline __m256 stage8(__m256 v, __m256 p, __m256 neg_hi) {
    return _mm256_add_ps(p, _mm256_xor_ps(v, neg_hi));
}

TGT_AVX2 static void fwht_avx2(float *y, int64_t n, float scale) {
    const __m256 n1 = _mm256_castsi256_ps(_mm256_setr_epi32(0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN));
    const __m256 n2 = _mm256_castsi256_ps(_mm256_setr_epi32(0, 0, INT32_MIN, INT32_MIN, 0, 0, INT32_MIN, INT32_MIN));
    const __m256 n4 = _mm256_castsi256_ps(_mm256_setr_epi32(0, 0, 0, 0, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN));
    for (int64_t i = 0; i < n; i += 8) {
        __m256 v = _mm256_loadu_ps(y + i);
        v = stage8(v, _mm256_permute_ps(v, 0xB1), n1);
        v = stage8(v, _mm256_permute_ps(v, 0x4E), n2);
        v = stage8(v, _mm256_permute2f128_ps(v, v, 0x01), n4);
        _mm256_storeu_ps(y + i, v);
    }
    FWHT_WIDE_STAGES(8, __m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps, _mm256_sub_ps);
    __m256 s = _mm256_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), s));
}

TGT_AVX512 static inline __m512 stage16(__m512 v, __m512 p, __mmask16 hi) {
    return _mm512_mask_sub_ps(_mm512_add_ps(p, v), hi, p, v);
}

TGT_AVX512 static void fwht_avx512(float *y, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i += 16) {
        __m512 v = _mm512_loadu_ps(y + i);
        v = stage16(v, _mm512_permute_ps(v, 0xB1), 0xAAAA);
        v = stage16(v, _mm512_permute_ps(v, 0x4E), 0xCCCC);
        v = stage16(v, _mm512_shuffle_f32x4(v, v, 0xB1), 0xF0F0);
        v = stage16(v, _mm512_shuffle_f32x4(v, v, 0x4E), 0xFF00);
        _mm512_storeu_ps(y + i, v);
    }
    FWHT_WIDE_STAGES(16, __m512, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_add_ps, _mm512_sub_ps);
    __m512 s = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), s));
}
#endif

void cpu_fwht(float *y, int64_t n, float scale, mlxn_cpu_isa isa) {
#if CPU_VMATH_X86
    if (n >= 16 && isa >= MLXN_CPU_ISA_AVX512) {
        fwht_avx512(y, n, scale);
        return;
    }
    if (n >= 8 && isa >= MLXN_CPU_ISA_AVX2) {
        fwht_avx2(y, n, scale);
        return;
    }
#else
    (void)isa;
#endif
    fwht_scalar(y, n, scale);
}

static void fwht_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const fwht_job *j = arg;
    int64_t n = j->n;
    for (int64_t r = begin; r < end; r++) {
        const float *x = cpu_row_ptr(j->x, r);
        float *y = j->out + r * n;
        if (j->xs == 1) {
            if (x != y) memmove(y, x, (size_t)n * sizeof *y);
        } else {
            for (int64_t i = 0; i < n; i++) y[i] = x[i * j->xs];
        }
        cpu_fwht(y, n, j->scale, j->isa);
    }
}

mlxn_status cpu_hadamard(mlxn_stream *s, const mlxn_tensor *x, float scale, mlxn_tensor *out) {
    fwht_job j = {.x = x, .out = mlxn_tensor_host(out), .n = x->shape[x->ndim - 1],
                  .xs = x->strides[x->ndim - 1], .scale = scale, .isa = cpu_dev(s)->isa};
    int64_t rows = cpu_rows(x);
    if (rows == 0) return MLXN_OK;
    /* ~16K elements per chunk; one 2^15 row is a chunk of its own */
    mlxn_parallel_for(cpu_dev(s)->pool, rows, j.n >= 16384 ? 1 : 16384 / j.n, fwht_task, &j);
    return MLXN_OK;
}
