/* Private interface of the CPU TurboQuant kernels (format in
 * src/quant/tq_layout.h, op semantics in mlxn/turboquant.h):
 *  - tq_ref.c: the scalar reference (encode/decode of one vector and the
 *    attention rows), the oracle every fast path is tested against;
 *  - tq_decode_avx512.c: blocks of vectors' codes to rotated-domain f32
 *    (what the fast attention feeds the flash driver), AVX-512 and AVX2;
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
