/* AVX-512 kernels for the dense matmul (see matmul_kernels.h): B panel
 * packing with f16/bf16 -> f32 conversion, an 8 x 32 register-blocked
 * micro-kernel, and two mat-vec kernels for the memory-bound n <= 4 case.
 *
 * Compiled with target attributes, not -m flags, so the library still loads
 * on processors without AVX-512; the driver only calls these when the device
 * ISA is AVX512. */
#include "backend/cpu/matmul_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline))

enum { MR = 8, NR = 32 };

/* 16 consecutive elements of a float row of dtype dt, from element i. */
T512 INL __m512 ld16(const void *src, mlxn_dtype dt, int64_t i) {
    switch (dt) {
    case MLXN_DTYPE_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)src + i)));
    case MLXN_DTYPE_BF16: {
        /* bf16 is the top half of an f32: widen and shift left 16 */
        __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)src + i)));
        return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
    }
    default: return _mm512_loadu_ps((const float *)src + i);
    }
}

/* The same for the first lanes of mask m (others read as 0, never touched). */
T512 INL __m512 ld16m(const void *src, mlxn_dtype dt, int64_t i, __mmask16 m) {
    switch (dt) {
    case MLXN_DTYPE_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)src + i));
    case MLXN_DTYPE_BF16: {
        __m512i u = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)src + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
    }
    default: return _mm512_maskz_loadu_ps(m, (const float *)src + i);
    }
}

INL __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

INL const char *w_at(const mm_problem *p, int64_t k, int64_t n) {
    return (const char *)p->w + (k * p->rsb + n * p->csb) * (int64_t)mlxn_dtype_size(p->wdt);
}

/* ---- packing ------------------------------------------------------------ */

/* B contiguous along n (W [K, N]): each packed row is two (masked) loads. */
T512 INL void pack_n_contig(const mm_problem *p, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float *dst,
                            mlxn_dtype dt) {
    for (int64_t j = 0; j < nc; j += NR, dst += kc * NR) {
        int64_t w = nc - j < NR ? nc - j : NR;
        __mmask16 m0 = lanes(w), m1 = lanes(w > 16 ? w - 16 : 0);
        for (int64_t k = 0; k < kc; k++) {
            const void *row = w_at(p, k0 + k, n0 + j);
            _mm512_storeu_ps(dst + k * NR, ld16m(row, dt, 0, m0));
            _mm512_storeu_ps(dst + k * NR + 16, ld16m(row, dt, 16, m1));
        }
    }
}

/* B contiguous along k (W [N, K], the nn.Linear layout): each column of a
 * panel is a contiguous run of W; convert 16 at a time and spread them down
 * the panel. */
T512 INL void pack_k_contig(const mm_problem *p, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float *dst,
                            mlxn_dtype dt) {
    float tmp[16];
    for (int64_t j = 0; j < nc; j += NR, dst += kc * NR) {
        int64_t w = nc - j < NR ? nc - j : NR;
        for (int64_t c = 0; c < NR; c++) {
            if (c >= w) { /* zero padding past N keeps the micro-kernel branch-free */
                for (int64_t k = 0; k < kc; k++) dst[k * NR + c] = 0.0f;
                continue;
            }
            const void *col = w_at(p, k0, n0 + j + c);
            for (int64_t k = 0; k < kc; k += 16) {
                int64_t r = kc - k < 16 ? kc - k : 16;
                _mm512_storeu_ps(tmp, ld16m(col, dt, k, lanes(r)));
                for (int64_t i = 0; i < r; i++) dst[(k + i) * NR + c] = tmp[i];
            }
        }
    }
}

T512 static void pack_b(const mm_problem *p, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float *dst) {
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
    /* any other strides: element by element */
    for (int64_t j = 0; j < nc; j += NR, dst += kc * NR)
        for (int64_t k = 0; k < kc; k++)
            for (int64_t c = 0; c < NR; c++)
                dst[k * NR + c] = j + c < nc ? mm_load_b(p, k0 + k, n0 + j + c) : 0.0f;
}

/* ---- micro-kernel --------------------------------------------------------- */

/* 8 rows x 32 columns: 16 zmm accumulators, two B loads and eight
 * broadcasts per k (why 8 x 32: 16 independent FMA chains hide the 4-cycle
 * FMA latency on both FMA ports, and 18 live registers leave room). */
T512 static void micro(int64_t kc, const float *const *a, const float *b, float *c, int64_t ldc, int accumulate,
                       int mv, int nv) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
           c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5], *a6 = a[6], *a7 = a[7];
    for (int64_t k = 0; k < kc; k++, b += NR) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), x;
#define ROW(i)                                  \
    x = _mm512_set1_ps(a##i[k]);                \
    c##i##0 = _mm512_fmadd_ps(x, b0, c##i##0); \
    c##i##1 = _mm512_fmadd_ps(x, b1, c##i##1);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)
#undef ROW
    }
    __m512 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                         {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
    __mmask16 m0 = lanes(nv), m1 = lanes(nv > 16 ? nv - 16 : 0);
    for (int i = 0; i < mv; i++) {
        float *ci = c + i * ldc;
        __m512 v0 = acc[i][0], v1 = acc[i][1];
        if (accumulate) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ci));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ci + 16));
        }
        _mm512_mask_storeu_ps(ci, m0, v0);
        _mm512_mask_storeu_ps(ci + 16, m1, v1);
    }
}

/* ---- mat-vec, B contiguous along k: dot products ------------------------- */

/* 4 columns x R rows of X at a time: 4R accumulators; each W row is read
 * once and used for every X row (why: W traffic is the whole cost). */
T512 INL void mv_k(const mm_problem *p, int64_t n0, int64_t n1, mlxn_dtype dt, int R) {
    const int64_t K = p->K;
    const float *const *x = p->xrows;
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        __m512 acc[MM_MATVEC_MAX_ROWS][4];
        for (int r = 0; r < R; r++)
            for (int j = 0; j < 4; j++) acc[r][j] = _mm512_setzero_ps();
        const void *w0 = w_at(p, 0, n), *w1 = w_at(p, 0, n + 1), *w2 = w_at(p, 0, n + 2), *w3 = w_at(p, 0, n + 3);
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            __m512 v0 = ld16(w0, dt, k), v1 = ld16(w1, dt, k), v2 = ld16(w2, dt, k), v3 = ld16(w3, dt, k);
            for (int r = 0; r < R; r++) {
                __m512 xv = _mm512_loadu_ps(x[r] + k);
                acc[r][0] = _mm512_fmadd_ps(xv, v0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(xv, v1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(xv, v2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_ps(xv, v3, acc[r][3]);
            }
        }
        if (k < K) {
            __mmask16 m = lanes(K - k);
            __m512 v0 = ld16m(w0, dt, k, m), v1 = ld16m(w1, dt, k, m), v2 = ld16m(w2, dt, k, m),
                   v3 = ld16m(w3, dt, k, m);
            for (int r = 0; r < R; r++) {
                __m512 xv = _mm512_maskz_loadu_ps(m, x[r] + k);
                acc[r][0] = _mm512_fmadd_ps(xv, v0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(xv, v1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(xv, v2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_ps(xv, v3, acc[r][3]);
            }
        }
        for (int r = 0; r < R; r++)
            for (int j = 0; j < 4; j++) p->out[r * p->N + n + j] = _mm512_reduce_add_ps(acc[r][j]);
    }
    for (; n < n1; n++) {
        __m512 acc[MM_MATVEC_MAX_ROWS];
        for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
        const void *w0 = w_at(p, 0, n);
        for (int64_t k = 0; k < K; k += 16) {
            __mmask16 m = lanes(K - k);
            __m512 v0 = ld16m(w0, dt, k, m);
            for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x[r] + k), v0, acc[r]);
        }
        for (int r = 0; r < R; r++) p->out[r * p->N + n] = _mm512_reduce_add_ps(acc[r]);
    }
}

/* ---- mat-vec, B contiguous along n: row sweep ------------------------------ */

/* Columns per tile: R rows x 256 f32 partial sums stay in L1 while every
 * row of W streams through once, in memory order. */
#define SWEEP_TILE 256

T512 INL void mv_n(const mm_problem *p, int64_t n0, int64_t n1, mlxn_dtype dt, int R) {
    const float *const *x = p->xrows;
    for (int64_t t0 = n0; t0 < n1; t0 += SWEEP_TILE) {
        int64_t tw = n1 - t0 < SWEEP_TILE ? n1 - t0 : SWEEP_TILE;
        for (int r = 0; r < R; r++)
            for (int64_t c = 0; c < tw; c++) p->out[r * p->N + t0 + c] = 0.0f;
        /* four W rows per pass: a quarter of the partial-sum loads/stores */
        int64_t k = 0;
        for (; k + 4 <= p->K; k += 4) {
            const void *w0 = w_at(p, k, t0), *w1 = w_at(p, k + 1, t0), *w2 = w_at(p, k + 2, t0),
                       *w3 = w_at(p, k + 3, t0);
            for (int64_t c = 0; c < tw; c += 16) {
                __mmask16 m = lanes(tw - c);
                __m512 v0 = ld16m(w0, dt, c, m), v1 = ld16m(w1, dt, c, m), v2 = ld16m(w2, dt, c, m),
                       v3 = ld16m(w3, dt, c, m);
                for (int r = 0; r < R; r++) {
                    float *o = p->out + r * p->N + t0 + c;
                    __m512 acc = _mm512_maskz_loadu_ps(m, o);
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(x[r][k]), v0, acc);
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(x[r][k + 1]), v1, acc);
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(x[r][k + 2]), v2, acc);
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(x[r][k + 3]), v3, acc);
                    _mm512_mask_storeu_ps(o, m, acc);
                }
            }
        }
        for (; k < p->K; k++) {
            const void *w0 = w_at(p, k, t0);
            for (int64_t c = 0; c < tw; c += 16) {
                __mmask16 m = lanes(tw - c);
                __m512 v0 = ld16m(w0, dt, c, m);
                for (int r = 0; r < R; r++) {
                    float *o = p->out + r * p->N + t0 + c;
                    _mm512_mask_storeu_ps(o, m, _mm512_fmadd_ps(_mm512_set1_ps(x[r][k]), v0, _mm512_maskz_loadu_ps(m, o)));
                }
            }
        }
    }
}

/* Instantiate per dtype and row count, so dtype and R are constants in the
 * inner loops (why: a switch per element would cost more than the FMA). */
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

T512 static void matvec_k(const mm_problem *p, int64_t n0, int64_t n1) { DISPATCH(mv_k, p, n0, n1); }
T512 static void matvec_n(const mm_problem *p, int64_t n0, int64_t n1) { DISPATCH(mv_n, p, n0, n1); }

static const mm_kernels kernels = {MR, NR, pack_b, micro, matvec_k, matvec_n};
const mm_kernels *mm_kernels_avx512(void) { return &kernels; }

#else
const mm_kernels *mm_kernels_avx512(void) { return 0; }
#endif
