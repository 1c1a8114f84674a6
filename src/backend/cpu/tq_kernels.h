/* Private interface of the CPU TurboQuant kernels (format in
 * src/quant/tq_layout.h, op semantics in mlxn/turboquant.h):
 *  - tq_ref.c: the scalar reference (encode/decode of one vector and the
 *    attention rows), the oracle every fast path is tested against;
 *  - tq_decode_avx512.c: blocks of vectors' codes to rotated-domain f32
 *    (what the fast attention feeds the flash driver), AVX-512 and AVX2;
 *  - tq_kscores.c, tq_kscores_avx2.c: 4-bit keys' scores in 16-bit
 *    integers, the model and its AVX2 kernel (below);
 *  - turboquant.c: the backend entry points (threads, ISA choice). */
#ifndef MLXN_CPU_TQ_KERNELS_H
#define MLXN_CPU_TQ_KERNELS_H

#include <stdint.h>

#include "backend/tq_cache.h"

/* Rotate, normalize and quantize one vector: x [D] at element stride xs ->
 * code row [code_bytes] (fully written) and *norm. tmp: [D] scratch. */
void tq_encode_row(const float *x, int64_t xs, int64_t D, const float *signs, int bits, uint8_t *row, float *norm,
                   float *tmp);

/* y[d] = scale * levels[code d]: a row back to the rotated domain, with
 * scale = norm / sqrt(D). */
void tq_decode_scalar(const uint8_t *row, int bits, const float *levels, float scale, int64_t D, float *y);
/* The same for a block: y [n][D], row j from rows[j] with scale[j]. Why a
 * block: a fast decoder sets up its lookup tables once per block of keys,
 * not once per key (at head dim 64 the AVX2 table setup cost as much as a
 * row's decoding). */
typedef void (*tq_decode_fn)(const uint8_t *const *rows, const float *scale, int64_t n, int bits,
                             const float *levels, int64_t D, float *y);
void tq_decode_rows_scalar(const uint8_t *const *rows, const float *scale, int64_t n, int bits, const float *levels,
                           int64_t D, float *y);
tq_decode_fn tq_decode_avx512(void); /* NULL without x86 SIMD */
tq_decode_fn tq_decode_avx2(void);   /* NULL without x86 SIMD */

/* ---- Integer scores over 4-bit keys (tq_kscores.c, tq_kscores_avx2.c) ----
 * Where a score pass over decoded f32 keys cost most of the attention
 * (AVX2: decoding a key block to f32 and the dots over it), the keys'
 * scores come from the codes through 16-bit integer products instead:
 *   levels: L16[c] = round(level[c] * TQ_KS_LSCALE)      (|L16| <= 2047)
 *   query:  q16[d] = round(x[d] / qs), qs = max|x| / 2047 (|q16| <= 2047;
 *           x = the rotated query times the attention scale)
 *   score:  s_j = ((float)sum_d q16[d] * L16[code_jd] * kscale_j) * qs,
 *           kscale_j = norm_j / sqrt(D) / TQ_KS_LSCALE.
 * The integer sum is exact (|sum| <= 512 * 2047^2 < 2^31), so the SIMD
 * kernel and the scalar model below give the same bits. What the roundings
 * cost: at most 4e-4 on a level (~1e-3 of a code step) and 2.4e-4 of the
 * query's largest coordinate, against the 4-bit code's own squared error of
 * 0.0095 per coordinate. test_turboquant_attn measures attention outputs
 * within NMSE 2e-7 (head dim 128) and 8e-7 (256) of the f32 path and holds
 * this path to 1e-5 (the CUDA tensor-core path's bound is 5e-5). 8-bit
 * products (vpmaddubsw, half the multiplies) were measured at NMSE 2.5e-4
 * there and dropped. */
#define TQ_KS_LSCALE (2047.0f / 2.7325896f) /* the 4-bit codebook's largest level maps to 2047 */

/* Queries in the score kernel's order (tq_kq_slot): per 64-dim segment,
 * four groups of 16 dims as the kernel's 16-bit level vectors hold them. */
typedef struct tq_kq {
    const int16_t *q; /* [rows][D] q16 */
    const float *qs;  /* [rows] the query's scale (NaN for a non-finite query) */
    int16_t l16[16];  /* the 4-bit codebook as L16 (tq_kq_levels4) */
} tq_kq;

/* Where dim d sits in a kq row. */
int64_t tq_kq_slot(int64_t d);
/* Query x [D] (rotated, already times the attention scale) into q16 [D]
 * (tq_kq order) and *qs. */
void tq_kq_prepare(const float *x, int64_t D, int16_t *q16, float *qs);
/* The 16 levels of the 4-bit codebook as L16. */
void tq_kq_levels4(int16_t out[16]);
/* Scores of query rows r < M against keys j < n (4-bit code rows krows[j],
 * kscale[j]): s[r * lds + j]. Query row r is row q0 + (r / nt) * Tq + r % nt
 * of q (the layout of an attention item's rows: nt positions of each of its
 * heads). The scalar model, and the AVX2 kernel (NULL without x86 SIMD). */
typedef void (*tq_kscores_fn)(const uint8_t *const *krows, const float *kscale, int64_t n, int64_t D,
                              const tq_kq *q, int64_t q0, int64_t nt, int64_t Tq, int64_t M, float *s, int64_t lds);
void tq_kscores4_scalar(const uint8_t *const *krows, const float *kscale, int64_t n, int64_t D, const tq_kq *q,
                        int64_t q0, int64_t nt, int64_t Tq, int64_t M, float *s, int64_t lds);
tq_kscores_fn tq_kscores4_avx2(void);

/* x = S H y / sqrt(D) in place: from the rotated domain back (signs [D]). */
void tq_unrotate(float *y, int64_t D, const float *signs);
/* y = H S x / sqrt(D): x [D] at stride xs into y [D]. */
void tq_rotate(const float *x, int64_t xs, int64_t D, const float *signs, float *y);

/* The attention problem as the kernels see it (built by turboquant.c). */
typedef struct tq_attn {
    const mlxn_tq_cache *c;
    int64_t Hq, Hkv, G, Tq, D, cap;
    int64_t pos;        /* position of query row 0 */
    int64_t lo;         /* oldest position still held: max(0, pos + Tq - cap) */
    int64_t n_held;     /* pos + Tq - lo */
    float scale, softcap;
    int causal;
    int64_t window;
    const float *q;     /* [Hq, Tq, D] at element strides qs */
    int64_t qs[3];
    const uint8_t *kc, *vc; /* [Hkv, cap, k_row / v_row] */
    const float *kn, *vn;   /* [Hkv, cap] */
    const float *signs;     /* [D] */
    const float *klv, *vlv; /* levels of the key / value width */
    float *out;             /* [Hq, Tq, D] contiguous */
} tq_attn;

/* Scalar reference for query rows [r0, r1) of the flattened [Hq, Tq];
 * scratch holds n_held + 2 D floats. */
void tq_ref_attn_rows(const tq_attn *a, int64_t r0, int64_t r1, float *scratch);

#endif
