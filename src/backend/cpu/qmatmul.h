/* Private interface of the CPU quantized matmul and embedding kernels.
 *
 * A `qmat` is a quantized logical [rows, cols] matrix, quantized along cols
 * (layout in mlxn/quant.h); every kernel reads it through this struct so
 * strided rows (a view into a bigger weight) cost nothing extra.
 *
 * The kernels are split by instruction set, one file each:
 *   qmatmul_decode.c   scalar decode: codes -> bytes -> f32 (any mode/width)
 *   qmatmul_ref.c      scalar kernels (the SCALAR ISA level), float-exact
 *   qmatmul_avx2.c     AVX2+FMA float kernels
 *   qmatmul_avx2_int.c AVX2 integer mat-vec (affine 2..6- and 8-bit decode)
 *   qmatmul_avx512.c   AVX-512 float kernels + the VNNI integer mat-vec
 * and qmatmul.c picks one per call and spreads it over the thread pool. */
#ifndef MLXN_CPU_QMATMUL_H
#define MLXN_CPU_QMATMUL_H

#include <stdint.h>

#include "core/threadpool.h"
#include "mlxn/device.h"
#include "mlxn/quant.h"
#include "mlxn/tensor.h"

typedef struct qmat {
    const uint32_t *wq;   /* [rows, wq_stride]: row r at wq + r * wq_stride */
    int64_t wq_stride;    /* u32 words between rows (>= cols * bits / 32) */
    const void *scales;   /* [rows, s_stride] of sdt */
    int64_t s_stride;
    const void *biases;   /* [rows, b_stride] of sdt; NULL for the fp modes */
    int64_t b_stride;
    mlxn_dtype sdt;       /* f32/f16/bf16 (affine) or u8 (e8m0 / e4m3) */
    mlxn_quant_mode mode;
    int bits, group;
    float gscale;         /* nvfp4: global_scale / 2688 as MLX applies it (1 when none) */
    int64_t rows, cols;
} qmat;

/* Fill a qmat from validated op arguments; fails (SHAPE) when the last axis
 * of wq/scales/biases is not unit-stride. */
mlxn_status qmat_from_tensors(const char *op, const mlxn_tensor *wq, const mlxn_tensor *scales,
                              const mlxn_tensor *biases, const mlxn_quant_params *q, qmat *m);

/* ---- scalar decode (qmatmul_decode.c) ----------------------------------- */

/* Codes [c0, c0 + n) of row `r` as bytes. c0 is a multiple of 16 codes and
 * of 32 / gcd(bits, 32) (true for every group start), n a multiple of 16. */
void qm_unpack_codes(const qmat *m, int64_t r, int64_t c0, int64_t n, uint8_t *dst /* [n] */);
/* Group g of row r: scale (mx/nv scale bytes decoded, global scale folded
 * in) and bias (0 for the fp modes). */
float qm_scale(const qmat *m, int64_t r, int64_t g);
float qm_bias(const qmat *m, int64_t r, int64_t g);
/* Value of code q in the fp modes (e2m1 or e4m3), before the scale. */
float qm_fp_code(const qmat *m, uint32_t q);
/* Weights [c0, c0 + n) of row r as f32, exactly w = scale*q + bias (affine)
 * or w = fp(q) * scale: the float-exact dequantization. c0 and n are
 * multiples of the group size (n may end at cols). */
void qm_dequant_span(const qmat *m, int64_t r, int64_t c0, int64_t n, float *dst /* [n] */);

/* ---- per-ISA kernels ---------------------------------------------------- */

/* out[m * ldo + j] += sum_k x[m * ldx + k] * w[j * ldw + k] for m < mb, j < rb,
 * k < kc. kc is a multiple of 16; x and w may be unaligned. */
typedef void (*qm_tile_fn)(const float *x, int64_t ldx, int mb, const float *w, int64_t ldw, int rb,
                           int64_t kc, float *out, int64_t ldo);
/* out[m * ldo + j] += sum_i x[m * ldx + i] * b[i * ldb + j] for m < mb,
 * i < kb, j < n (the transpose=false update: kb dequantized W rows). */
typedef void (*qm_axpy_fn)(const float *x, int64_t ldx, int mb, const float *b, int64_t ldb, int kb,
                           int64_t n, float *out, int64_t ldo);

/* dst[i] = W[r][c0 + i], i < n, dequantized to f32 (c0 group aligned). */
typedef void (*qm_dequant_fn)(const qmat *m, int64_t r, int64_t c0, int64_t n, float *dst);

typedef struct qm_kernels {
    qm_dequant_fn dequant;
    qm_tile_fn tile;
    qm_axpy_fn axpy;
} qm_kernels;

extern const qm_kernels qm_kernels_ref;
extern const qm_kernels qm_kernels_avx2;
extern const qm_kernels qm_kernels_avx512;

/* ---- the AVX-512 VNNI mat-vec (affine, transpose, few x rows) ------------ */

/* The integer mat-vecs' per-thread scratch (a row's scales times x's
 * scales, rewritten every weight row): each thread's part starts on its own
 * 128-byte boundary (two cache lines, which the adjacent-line prefetcher
 * fetches together), so no line is written by one thread and read by
 * another. Why: with few groups a row (SmolLM2's 576 columns: 9) the parts
 * were ~100 bytes apart, and the line two threads shared moved between
 * their cores once per row (docs/perf.md: a 49152 x 576 product at two
 * threads took ~2x as long as its bytes needed). qm_scratch_floats: a
 * thread's part of `floats`, rounded up; qm_scratch_alloc: zeroed, 128-byte
 * aligned, freed with free(). */
static inline int64_t qm_scratch_floats(int64_t floats) { return (floats + 31) / 32 * 32; }
float *qm_scratch_alloc(int n_threads, int64_t per_thread);

/* x prepared once per call: per x row, quantized per weight group to
 * 16-bit integers split into two signed bytes (see qmatmul_avx512.c). */
typedef struct qm_xprep qm_xprep;

/* Whether the integer kernel handles this matrix with M x rows on this CPU
 * (affine, M <= 8). */
int qm_vnni_supported(const qmat *m, int64_t M);
/* Prepare x [M, K] (rows ldx apart, M <= 8) for up to n_threads callers;
 * NULL when out of memory or when x holds a non-finite (or absurdly tiny)
 * value: the float path then handles (and propagates) it. */
qm_xprep *qm_vnni_prepare(const qmat *m, const float *x, int64_t ldx, int64_t M, int n_threads);
void qm_vnni_free(qm_xprep *p);
/* out[i * ldo + r] = dot(x_i, W_r) for W rows [r0, r1) and every x row i;
 * `thread` (< n_threads) picks the caller's scratch. */
void qm_vnni_rows(const qmat *m, const qm_xprep *p, int64_t r0, int64_t r1, float *out, int64_t ldo, int thread);

/* ---- the AVX2 mat-vec (every mode, transpose, few x rows: qmatmul_avx2.c) ---- */
enum { QM_MATVEC_MAX_ROWS = 4 };
/* Whether it takes this matrix with M x rows: M <= 4; affine with groups a
 * multiple of 32 codes that tile the row, or an fp mode (mxfp4, nvfp4,
 * mxfp8) with rows of whole 32-code chunks. */
int qm_matvec_avx2_supported(const qmat *m, int64_t M);
/* out[i * ldo + r] = dot(x_i, W_r) for W rows [r0, r1) and x rows i < M
 * (x rows ldx apart); the caller checked qm_matvec_avx2_supported and the
 * CPU. */
void qm_matvec_avx2_rows(const qmat *m, const float *x, int64_t ldx, int M, int64_t r0, int64_t r1, float *out,
                         int64_t ldo);

/* ---- the AVX2 integer mat-vec (affine 2..6/8-bit, transpose, few x rows:
 * qmatmul_avx2_int.c); the VNNI kernel's arithmetic with AVX2 ---------- */
typedef struct qm_ixprep qm_ixprep;
/* Whether it takes this matrix with M x rows: affine 2..6- or 8-bit, groups of
 * 32/64/128 that tile the row, M <= QM_MATVEC_MAX_ROWS. */
int qm_imv_avx2_supported(const qmat *m, int64_t M);
/* x [M, K] (rows ldx apart) quantized per group, for up to n_threads
 * callers; NULL when out of memory or when x holds a non-finite (or
 * absurdly tiny) value: the float path then handles it. */
qm_ixprep *qm_imv_avx2_prepare(const qmat *m, const float *x, int64_t ldx, int64_t M, int n_threads);
void qm_imv_avx2_free(qm_ixprep *p);
/* out[i * ldo + r] = dot(x_i, W_r) for W rows [r0, r1) and every x row i;
 * `thread` (< n_threads) picks the caller's scratch. */
void qm_imv_avx2_rows(const qmat *m, const qm_ixprep *p, int64_t r0, int64_t r1, float *out, int64_t ldo,
                      int thread);

/* ---- prefill on the dense micro-kernel (transpose, many x rows:
 * qmatmul_gemm.c), AVX2 level ------------------------------------------ */
typedef struct qm_gemm qm_gemm;
enum { QM_GEMM_MIN_ROWS = 16 /* fewer x rows keep the tile kernel: a packed block holds 16 (measured: 8 rows took 9.0 ms there against 5.5, 16 rows the same, 32 rows 12.9 against 14.6) */ };
/* Whether it takes w with M x rows at ISA level isa (any mode and width:
 * it dequantizes; groups that divide its 256-column blocks). */
int qm_gemm_supported(const qmat *w, mlxn_cpu_isa isa, int64_t M);
/* x [M, K = w->cols] (rows ldx apart) packed once (over the pool's threads)
 * for products into out [M, N], with scratch for every thread; NULL when
 * out of memory. */
qm_gemm *qm_gemm_prepare(const qmat *w, qm_dequant_fn dequant, const float *x, int64_t ldx, int64_t M, int64_t N,
                         float *out, mlxn_threadpool *pool);
void qm_gemm_free(qm_gemm *g);
/* out[m][r] = dot(x_m, W_r) for W rows [r0, r1) and every x row; `thread`
 * (a pool thread index) picks its scratch. */
void qm_gemm_rows(const qm_gemm *g, int64_t r0, int64_t r1, int thread);
#endif
