/* AVX2 + FMA + F16C kernels for the dense matmul (see matmul_kernels.h):
 * B panel packing with f16/bf16 -> f32 conversion, a 6 x 16 micro-kernel,
 * and the two mat-vec kernels. Ragged edges (fewer than 8 elements) go
 * through scalar code: AVX2 has no cheap 16-bit masked loads.
 *
 * Compiled with target attributes so the library loads on any x86-64. */
#include "backend/cpu/matmul_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define T256 __attribute__((target("avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline))

enum { MR = 6, NR = 16 };

/* 8 consecutive elements of a float row of dtype dt, from element i. */
T256 INL __m256 ld8(const void *src, mlxn_dtype dt, int64_t i) {
    switch (dt) {
    case MLXN_DTYPE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)src + i)));
    case MLXN_DTYPE_BF16: {
        /* bf16 is the top half of an f32: widen and shift left 16 */
        __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)src + i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
    }
    default: return _mm256_loadu_ps((const float *)src + i);
    }
}

INL float ld1(const void *src, mlxn_dtype dt, int64_t i) {
    switch (dt) {
    case MLXN_DTYPE_F16: return mlxn_f16_to_f32(((const uint16_t *)src)[i]);
    case MLXN_DTYPE_BF16: return mlxn_bf16_to_f32(((const uint16_t *)src)[i]);
    default: return ((const float *)src)[i];
    }
}

T256 INL float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INL const char *w_at(const mm_problem *p, int64_t k, int64_t n) {
    return (const char *)p->w + (k * p->rsb + n * p->csb) * (int64_t)mlxn_dtype_size(p->wdt);
}

/* ---- packing ------------------------------------------------------------ */

T256 INL void pack_n_contig(const mm_problem *p, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float *dst,
                            mlxn_dtype dt) {
    const int64_t es = dt == MLXN_DTYPE_F32 ? 4 : 2; /* as in pack_k_contig: no library call per row */
    for (int64_t j = 0; j < nc; j += NR, dst += kc * NR) {
        int64_t w = nc - j < NR ? nc - j : NR;
        for (int64_t k = 0; k < kc; k++) {
            const void *row = (const char *)p->w + ((k0 + k) * p->rsb + (n0 + j) * p->csb) * es;
            if (w == NR) {
                _mm256_storeu_ps(dst + k * NR, ld8(row, dt, 0));
                _mm256_storeu_ps(dst + k * NR + 8, ld8(row, dt, 8));
            } else {
                for (int64_t c = 0; c < NR; c++) dst[k * NR + c] = c < w ? ld1(row, dt, c) : 0.0f;
            }
        }
    }
}

/* r[i] = column i of the 8 x 8 block whose row j is r[j] (the transpose, in place). */
T256 INL void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);     /* a0 b0 a1 b1 | a4 b4 a5 b5 */
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]); /* a2 b2 a3 b3 | a6 b6 a7 b7 */
    }
    for (int i = 0; i < 2; i++)
        for (int h = 0; h < 2; h++) {
            u[4 * i + h] = _mm256_shuffle_ps(t[4 * i + h], t[4 * i + 2 + h], 0x44);     /* a b c d of one k */
            u[4 * i + 2 + h] = _mm256_shuffle_ps(t[4 * i + h], t[4 * i + 2 + h], 0xEE); /* of the next k */
        }
    /* u[0..3]: columns 0, 2, 1, 3 of rows 0-3 (and 4, 6, 5, 7 in the high halves); u[4..7]: rows 4-7 */
    static const int col[4] = {0, 2, 1, 3};
    for (int i = 0; i < 4; i++) {
        r[col[i]] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x20);
        r[col[i] + 4] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x31);
    }
}

/* B contiguous along k (W [N, K] transposed, or attention's keys in
 * sdpa_flash.c): each panel is the transpose of 16 rows of W. Whole panels
 * go through 8 x 8 register transposes (8 loads, 24 shuffles, 8 stores per
 * 64 values) where the values had been scattered one by one. Measured on an
 * AMD EPYC (Zen 3), a dense bf16 SmolLM2-135M's pp512: pack_b 6.4% of the
 * samples before, 3.6% after (with the attention's keys, which
 * flash_task had packed itself: 2.6% -> 1.6%). Ragged panels and the k
 * tail go element by element. */
T256 INL void pack_k_contig(const mm_problem *p, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float *dst,
                            mlxn_dtype dt) {
    float tmp[8];
    /* element size from dt itself (a compile-time constant here): a library call in the loop would
       spill the rows held in ymm registers */
    const int64_t es = dt == MLXN_DTYPE_F32 ? 4 : 2;
    for (int64_t j = 0; j < nc; j += NR, dst += kc * NR) {
        int64_t w = nc - j < NR ? nc - j : NR;
        int64_t kt = 0; /* k below kt: done by the transposes */
        if (w == NR) {
            for (int h = 0; h < NR; h += 8) {
                const char *c0 = (const char *)p->w + (k0 * p->rsb + (n0 + j + h) * p->csb) * es;
                const int64_t cs = p->csb * es; /* bytes between the columns (rows of W) */
                for (kt = 0; kt + 8 <= kc; kt += 8) {
                    __m256 r[8];
                    for (int c = 0; c < 8; c++) r[c] = ld8(c0 + c * cs, dt, kt);
                    transpose8(r);
                    for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (kt + i) * NR + h, r[i]);
                }
            }
            for (int64_t c = 0; c < NR; c++) {
                const void *col = w_at(p, k0, n0 + j + c);
                for (int64_t k = kt; k < kc; k++) dst[k * NR + c] = ld1(col, dt, k);
            }
            continue;
        }
        for (int64_t c = 0; c < NR; c++) {
            if (c >= w) {
                for (int64_t k = 0; k < kc; k++) dst[k * NR + c] = 0.0f;
                continue;
            }
            const void *col = w_at(p, k0, n0 + j + c);
            int64_t k = 0;
            for (; k + 8 <= kc; k += 8) {
                _mm256_storeu_ps(tmp, ld8(col, dt, k));
                for (int i = 0; i < 8; i++) dst[(k + i) * NR + c] = tmp[i];
            }
            for (; k < kc; k++) dst[k * NR + c] = ld1(col, dt, k);
        }
    }
}

T256 static void pack_b(const mm_problem *p, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float *dst) {
    if (p->csb == 1) {
        switch (p->wdt) {
        case MLXN_DTYPE_F16: pack_n_contig(p, k0, kc, n0, nc, dst, MLXN_DTYPE_F16); return;
        case MLXN_DTYPE_BF16: pack_n_contig(p, k0, kc, n0, nc, dst, MLXN_DTYPE_BF16); return;
        default: pack_n_contig(p, k0, kc, n0, nc, dst, MLXN_DTYPE_F32); return;
        }
    }
    if (p->rsb == 1) {
        switch (p->wdt) {
        case MLXN_DTYPE_F16: pack_k_contig(p, k0, kc, n0, nc, dst, MLXN_DTYPE_F16); return;
        case MLXN_DTYPE_BF16: pack_k_contig(p, k0, kc, n0, nc, dst, MLXN_DTYPE_BF16); return;
        default: pack_k_contig(p, k0, kc, n0, nc, dst, MLXN_DTYPE_F32); return;
        }
    }
    for (int64_t j = 0; j < nc; j += NR, dst += kc * NR)
        for (int64_t k = 0; k < kc; k++)
            for (int64_t c = 0; c < NR; c++)
                dst[k * NR + c] = j + c < nc ? mm_load_b(p, k0 + k, n0 + j + c) : 0.0f;
}

/* ---- micro-kernel --------------------------------------------------------- */

/* 6 rows x 16 columns: 12 ymm accumulators + 2 B + 1 broadcast = 15 of the
 * 16 registers (why 6 x 16: the largest tile that does not spill). */
T256 static void micro(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int accumulate,
                       int mv, int nv) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
           c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int64_t k = 0; k < kc; k++, b += NR) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
#define ROW(i)                                  \
    x = _mm256_broadcast_ss(a##i + k);          \
    c##i##0 = _mm256_fmadd_ps(x, b0, c##i##0); \
    c##i##1 = _mm256_fmadd_ps(x, b1, c##i##1);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
    }
    __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int i = 0; i < mv; i++) {
        float *ci = c + i * ldc;
        if (nv == NR) {
            __m256 v0 = acc[i][0], v1 = acc[i][1];
            if (accumulate) {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(ci));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(ci + 8));
            }
            _mm256_storeu_ps(ci, v0);
            _mm256_storeu_ps(ci + 8, v1);
        } else {
            float t[NR];
            _mm256_storeu_ps(t, acc[i][0]);
            _mm256_storeu_ps(t + 8, acc[i][1]);
            for (int jj = 0; jj < nv; jj++) ci[jj] = accumulate ? ci[jj] + t[jj] : t[jj];
        }
    }
}

/* ---- mat-vec, B contiguous along k: dot products ------------------------- */

T256 INL void mv_k(const mm_problem *p, int64_t n0, int64_t n1, mlxn_dtype dt, int R) {
    const int64_t K = p->K;
    const float *const *x = p->xrows;
    int64_t n = n0;
    /* 2 columns x R rows: 2R <= 8 accumulators, W read once */
    for (; n < n1; n += 2) {
        int two = n + 1 < n1;
        __m256 acc[MM_MATVEC_MAX_ROWS][2];
        for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        const void *w0 = w_at(p, 0, n), *w1 = w_at(p, 0, two ? n + 1 : n);
        int64_t k = 0;
        for (; k + 8 <= K; k += 8) {
            __m256 v0 = ld8(w0, dt, k), v1 = ld8(w1, dt, k);
            for (int r = 0; r < R; r++) {
                __m256 xv = _mm256_loadu_ps(x[r] + k);
                acc[r][0] = _mm256_fmadd_ps(xv, v0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(xv, v1, acc[r][1]);
            }
        }
        for (int r = 0; r < R; r++) {
            float s0 = hsum8(acc[r][0]), s1 = hsum8(acc[r][1]);
            for (int64_t kk = k; kk < K; kk++) {
                s0 += x[r][kk] * ld1(w0, dt, kk);
                s1 += x[r][kk] * ld1(w1, dt, kk);
            }
            p->out[r * p->N + n] = s0;
            if (two) p->out[r * p->N + n + 1] = s1;
        }
    }
}

/* ---- mat-vec, B contiguous along n: row sweep ------------------------------ */

#define SWEEP_TILE 256

T256 INL void mv_n(const mm_problem *p, int64_t n0, int64_t n1, mlxn_dtype dt, int R) {
    const float *const *x = p->xrows;
    for (int64_t t0 = n0; t0 < n1; t0 += SWEEP_TILE) {
        int64_t tw = n1 - t0 < SWEEP_TILE ? n1 - t0 : SWEEP_TILE;
        int64_t tv = tw / 8 * 8; /* vector part; the rest is scalar */
        for (int r = 0; r < R; r++)
            for (int64_t c = 0; c < tw; c++) p->out[r * p->N + t0 + c] = 0.0f;
        for (int64_t k = 0; k < p->K; k++) {
            const void *w0 = w_at(p, k, t0);
            for (int64_t c = 0; c < tv; c += 8) {
                __m256 v0 = ld8(w0, dt, c);
                for (int r = 0; r < R; r++) {
                    float *o = p->out + r * p->N + t0 + c;
                    _mm256_storeu_ps(o, _mm256_fmadd_ps(_mm256_set1_ps(x[r][k]), v0, _mm256_loadu_ps(o)));
                }
            }
            for (int64_t c = tv; c < tw; c++)
                for (int r = 0; r < R; r++) p->out[r * p->N + t0 + c] += x[r][k] * ld1(w0, dt, c);
        }
    }
}

#define DISPATCH(fn, p, n0, n1)                                                              \
    do {                                                                                     \
        int R_ = (int)(p)->M;                                                                \
        switch ((p)->wdt) {                                                                  \
        case MLXN_DTYPE_F16:                                                                 \
            if (R_ == 1) fn(p, n0, n1, MLXN_DTYPE_F16, 1);                                   \
            else if (R_ == 2) fn(p, n0, n1, MLXN_DTYPE_F16, 2);                              \
            else if (R_ == 3) fn(p, n0, n1, MLXN_DTYPE_F16, 3);                              \
            else fn(p, n0, n1, MLXN_DTYPE_F16, 4);                                           \
            break;                                                                           \
        case MLXN_DTYPE_BF16:                                                                \
            if (R_ == 1) fn(p, n0, n1, MLXN_DTYPE_BF16, 1);                                  \
            else if (R_ == 2) fn(p, n0, n1, MLXN_DTYPE_BF16, 2);                             \
            else if (R_ == 3) fn(p, n0, n1, MLXN_DTYPE_BF16, 3);                             \
            else fn(p, n0, n1, MLXN_DTYPE_BF16, 4);                                          \
            break;                                                                           \
        default:                                                                             \
            if (R_ == 1) fn(p, n0, n1, MLXN_DTYPE_F32, 1);                                   \
            else if (R_ == 2) fn(p, n0, n1, MLXN_DTYPE_F32, 2);                              \
            else if (R_ == 3) fn(p, n0, n1, MLXN_DTYPE_F32, 3);                              \
            else fn(p, n0, n1, MLXN_DTYPE_F32, 4);                                           \
            break;                                                                           \
        }                                                                                    \
    } while (0)

T256 static void matvec_k(const mm_problem *p, int64_t n0, int64_t n1) { DISPATCH(mv_k, p, n0, n1); }
T256 static void matvec_n(const mm_problem *p, int64_t n0, int64_t n1) { DISPATCH(mv_n, p, n0, n1); }

static const mm_kernels kernels = {MR, NR, pack_b, micro, matvec_k, matvec_n};
const mm_kernels *mm_kernels_avx2(void) { return &kernels; }

#else
const mm_kernels *mm_kernels_avx2(void) { return 0; }
#endif
