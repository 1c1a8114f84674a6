/* Private interface of the CPU TurboQuant kernels (format in
 * src/quant/tq_layout.h, op semantics in mlxn/turboquant.h):
 *  - tq_ref.c: the scalar reference (encode/decode of one vector and the
 *    attention rows), the oracle every fast path is tested against;
 *  - tq_decode_avx512.c: blocks of vectors' codes to rotated-domain f32
 *    (what the fast attention feeds the flash driver), AVX-512 and AVX2;
 *  - tq_kscores.c, tq_kscores_avx2.c, tq_kscores_avx512.c: 4-bit keys'
 *    scores in 16-bit integers, the model and its AVX2 and AVX-512 kernels
 *    (below);
 *  - tq_vsum.c, tq_vsum_avx2.c, tq_vsum_avx512.c: 4-bit values' weighted
 *    sums in 16-bit integers, the model and its two kernels (below);
 *  - turboquant.c: the backend entry points (threads, ISA choice). */
#ifndef MLXN_CPU_TQ_KERNELS_H
#define MLXN_CPU_TQ_KERNELS_H

#include <stdint.h>

#include "backend/tq_cache.h"
#include "mlxn/device.h"

/* Rotate, normalize and quantize one vector: x [D] at element stride xs ->
 * code row [code_bytes] (fully written) and *norm. tmp: [D] scratch. isa
 * picks the FWHT's kernel (cpu_fwht: the same bits at every level). */
void tq_encode_row(const float *x, int64_t xs, int64_t D, const float *signs, int bits, uint8_t *row, float *norm,
                   float *tmp, mlxn_cpu_isa isa);

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

/* ---- Integer scores over 4-bit keys (tq_kscores.c, tq_kscores_avx*.c) ----
 * Where a score pass over decoded f32 keys cost most of the attention
 * (decoding a key block to f32 and the dots over it), the keys'
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
 * (with the values' sums below) within NMSE 1e-7 to 8e-7 of the f32 path
 * and holds these paths to 1e-5 (the CUDA tensor-core path's bound is
 * 5e-5); docs/perf.md has the end-to-end runs. 8-bit products
 * (vpmaddubsw, half the multiplies) were measured at NMSE 2.5e-4 there and
 * dropped. */
#define TQ_KS_LSCALE (2047.0f / 2.7325896f) /* the 4-bit codebook's largest level maps to 2047 */

/* Queries in the score kernel's order (tq_kq_slot): per 64-dim segment,
 * four groups of 16 dims as the kernel's 16-bit level vectors hold them. */
typedef struct tq_kq {
    const int16_t *q; /* [rows][D] q16 */
    const float *qs;  /* [rows] the query's scale (NaN for a non-finite query) */
    int16_t l16[16];  /* the 4-bit codebook as L16 (tq_kq_levels4) */
} tq_kq;

/* Where dim d (>= 0) sits in a kq row. The kernel decodes a 64-dim
 * segment's 32 code bytes as two byte vectors, the low nibbles (even dims)
 * and the high ones (odd dims), and widens each to 16 bits with vpunpcklbw
 * / vpunpckhbw, which work per 128-bit lane: vector 2p + h (p: 0 even, 1
 * odd; h: 0 low, 1 high unpack) holds the code bytes b with (b % 16) / 8
 * == h, element (b / 16) * 8 + b % 8. The AVX-512 kernel builds the same
 * order (tq_kscores_avx512.c). */
static inline int64_t tq_kq_slot(int64_t d) { /* inline: called per dim per query */
    const int64_t p = d & 1, b = (d & 63) >> 1;
    return (d & ~(int64_t)63) + 16 * (2 * p + ((b & 15) >> 3)) + (b >> 4) * 8 + (b & 7);
}

/* The 16-bit levels' low and high bytes as two 16-entry tables: what the
 * AVX2 kernels' vpshufb lookups (keys and values alike) take. */
static inline void tq_l16_bytes(const int16_t l16[16], uint8_t lo[16], uint8_t hi[16]) {
    for (int i = 0; i < 16; i++) lo[i] = (uint8_t)(l16[i] & 0xff), hi[i] = (uint8_t)((uint16_t)l16[i] >> 8);
}

/* Query x [D] (rotated, already times the attention scale) into q16 [D]
 * (tq_kq order) and *qs. */
void tq_kq_prepare(const float *x, int64_t D, int16_t *q16, float *qs);
/* The 16 levels of the 4-bit codebook as L16. */
void tq_kq_levels4(int16_t out[16]);
/* Scores of query rows r < M against keys j < n: s[r * lds + j]. Key j's
 * 4-bit code row is at k + j * kstride, kscale_j = knorm[j] * kfac. Query
 * row r is row q0 + (r / nt) * Tq + r % nt of q (the layout of an attention
 * item's rows: nt positions of each of its heads). The scalar model, and
 * the AVX2 and AVX-512 kernels (NULL without x86 SIMD). */
typedef void (*tq_kscores_fn)(const uint8_t *k, int64_t kstride, const float *knorm, float kfac, int64_t n, int64_t D,
                              const tq_kq *q, int64_t q0, int64_t nt, int64_t Tq, int64_t M, float *s, int64_t lds);
void tq_kscores4_scalar(const uint8_t *k, int64_t kstride, const float *knorm, float kfac, int64_t n, int64_t D,
                        const tq_kq *q, int64_t q0, int64_t nt, int64_t Tq, int64_t M, float *s, int64_t lds);
tq_kscores_fn tq_kscores4_avx2(void);
tq_kscores_fn tq_kscores4_avx512(void); /* AVX-512 with VNNI; NULL without x86 SIMD */

/* ---- Integer weighted sums over 4-bit values (tq_vsum.c, tq_vsum_avx*.c) ----
 * The values' side of a decode step's key block, for the same reason: the
 * f32 decode (~55 operations per 64 codes) was the largest single cost of
 * a small-head attention once the keys were scored from the codes. Per
 * query row, over a block of n <= TQ_VSUM_KEYS keys:
 *   u_j   = w_j * vscale_j              (vscale_j = vnorm[j] * vfac: norm / sqrt(D))
 *   u16_j = round(u_j * 32767 / umax)    (umax = max_j u_j; 0 <= u16 <= 32767)
 *   acc[pos(d)] = acc[pos(d)] * corr + (float)(sum_j u16_j * L16[code_jd])
 *                 * (umax * TQ_VSUM_FAC),  TQ_VSUM_FAC = 1 / (32767 * TQ_KS_LSCALE)
 * with L16 as for the keys. The integer sums are exact (|sum| <= 32 *
 * 32767 * 2047 < 2^31, just): the kernel and the scalar model give the
 * same bits. The weights' rounding is at most 1.5e-5 of the block's
 * largest weight.
 * pos(d) = tq_vsum_slot(d): the accumulator holds the dims in the kernel's
 * order (what two keys' levels interleaved for vpmaddwd leave in its
 * int32 lanes); whoever reads the output restores the natural order. A row
 * whose weights are not finite gets NaN everywhere (as f32 sums would). */
enum { TQ_VSUM_KEYS = 32 };
#define TQ_VSUM_FAC (1.0f / (32767.0f * TQ_KS_LSCALE))
/* Where dim d (>= 0) sits in an accumulator row. The kernel interleaves
 * two keys' code bytes (vpunpcklbw / vpunpckhbw: bytes 0-7 and 16-23, then
 * 8-15 and 24-31 of a 32-byte piece, per 128-bit lane), looks up 16-bit
 * levels, and splits each interleaved vector into its low and high halves
 * again; a vpmaddwd then leaves in int32 lane i of output vector (segment
 * g, parity p, interleave il, half h) the dim whose code byte is
 * b = 8 il + 4 h + i % 4 + 16 (i / 4). The AVX-512 kernel gathers its
 * codes into the same order (tq_vsum_avx512.c). */
static inline int64_t tq_vsum_slot(int64_t d) { /* inline: called per dim per output */
    const int64_t r = d & 63, p = r & 1, b = r >> 1;
    const int64_t il = (b & 15) >> 3, h = (b & 7) >> 2, i = (b & 3) + 4 * (b >> 4);
    return (d & ~(int64_t)63) + 32 * p + 16 * il + 8 * h + i;
}

/* Rows r < M with live[r] (w [M][lds], corr [M] or NULL for 1, acc[r] [D]
 * in tq_vsum_slot order) over values j < n, code row at v + j * vstride;
 * longer than TQ_VSUM_KEYS keys, in blocks of that many, corr applied by
 * the first. */
typedef void (*tq_vsum_fn)(const uint8_t *v, int64_t vstride, const float *vnorm, float vfac, int64_t n, int64_t D,
                           const int16_t l16[16], const float *w, int64_t lds, const float *corr,
                           const unsigned char *live, int64_t M, float *const *acc);
void tq_vsum4_scalar(const uint8_t *v, int64_t vstride, const float *vnorm, float vfac, int64_t n, int64_t D,
                     const int16_t l16[16], const float *w, int64_t lds, const float *corr, const unsigned char *live,
                     int64_t M, float *const *acc);
tq_vsum_fn tq_vsum4_avx2(void);
tq_vsum_fn tq_vsum4_avx512(void); /* AVX-512 with VNNI; NULL without x86 SIMD */

/* x = S H y / sqrt(D) in place: from the rotated domain back (signs [D]). */
void tq_unrotate(float *y, int64_t D, const float *signs, mlxn_cpu_isa isa);
/* y = H S x / sqrt(D): x [D] at stride xs into y [D]. Both: the FWHT by
 * cpu_fwht at isa's widest kernel (every level gives mlxn_tq_fwht's bits). */
void tq_rotate(const float *x, int64_t xs, int64_t D, const float *signs, float *y, mlxn_cpu_isa isa);

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
