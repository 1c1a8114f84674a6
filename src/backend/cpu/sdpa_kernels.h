/* Private interface of the CPU attention: the problem as the kernels see it
 * (sdpa.c builds it from the validated op arguments), the scalar reference
 * (sdpa_ref.c), the flash-style driver (sdpa_flash.c) and the per-ISA vector
 * primitives it calls (sdpa_avx2.c, sdpa_avx512.c).
 *
 * Semantics (all paths): for query row (b, h, i) with kv head
 * hk = h / (Hq / Hkv) and position pos = i + Tk - Tq,
 *   s_j = (scale * q) . k_j                  (q is scaled first, as MLX does)
 *   s_j = softcap * tanh(s_j / softcap)      (softcap > 0)
 *   key j is visible iff j <= pos            (causal)
 *                    and j > pos - window    (window > 0)
 *                    and mask[b,h,i,j]       (bool mask)
 *   s_j += mask[b,h,i,j]                     (f32 mask; -inf hides the key)
 *   out = sum_j softmax_j * v_j, where the softmax runs over the visible
 *   keys plus, with sinks, one extra logit sinks[h] (not scaled) whose
 *   value row is zero. A row with no visible key gives zeros.
 *
 * How this lines up with MLX / mlx-lm (checked against mlx/fast.cpp and
 * mlx_lm/models/{base,cache,gemma2}.py):
 *   - causal is MLX's mask="causal" (lower-right aligned when Tq < Tk).
 *   - window is mlx-lm's create_causal_mask(window_size=W): the query at
 *     position p sees keys p - W < j <= p, i.e. its last W keys including
 *     itself. Key index j is taken as the key's position, which holds for a
 *     linear cache and for RotatingKVCache before it wraps; a wrapped
 *     rotating buffer must be passed in position order or with a mask.
 *   - sinks are concatenated to the already scaled scores, unscaled and not
 *     softcapped, exactly as MLX's fallback does.
 *   - softcap is Gemma 2's tanh(s / c) * c after scaling, before the mask.
 *   - a bool mask and causal/window may be combined (all must allow a
 *     key); MLX's API takes only one of mask="causal" or an array.
 *   - a row with nothing visible: MLX fills masked scores with finfo.min and
 *     returns the plain mean of V for such a row (NaN for an all -inf
 *     additive mask); we return zeros, which is also what MLX returns when
 *     a sink is present. */
#ifndef MLXN_CPU_SDPA_KERNELS_H
#define MLXN_CPU_SDPA_KERNELS_H

#include <math.h>
#include <stdint.h>

#include "mlxn/dtype.h"
#include "mlxn/status.h"

/* A 4-D float tensor [B, H, T, D] as a base pointer and element strides. */
typedef struct sdpa_view {
    const char *base;
    mlxn_dtype dt;
    int64_t s[4];
} sdpa_view;

typedef struct sdpa_problem {
    int64_t B, Hq, Hkv, G, Tq, Tk, D, Dv; /* G = Hq / Hkv query heads per kv head */
    float scale, softcap;                 /* softcap 0 = off */
    int causal;
    int64_t window;                       /* 0 = off */
    sdpa_view q, k, v;                    /* [B, Hq, Tq, D], [B, Hkv, Tk, D], [B, Hkv, Tk, Dv] */
    const char *mask;                     /* NULL or bool/f32 at strides ms (0 on broadcast axes) */
    mlxn_dtype mdt;
    int64_t ms[4];                        /* over [B, Hq, Tq, Tk] */
    const float *sinks;                   /* NULL or [Hq] at stride sink_stride */
    int64_t sink_stride;
    float *out;                           /* [B, Hq, Tq, Dv] contiguous */
    /* Optional source of K/V rows instead of the k/v views (the TurboQuant
     * cache decodes its codes here): fills buf with keys (is_v 0, [n][D]) or
     * values (is_v 1, [n][Dv]) n0 .. n0+n of (b, hk) as f32. Flash path only. */
    void (*fetch)(const void *ctx, int is_v, int64_t b, int64_t hk, int64_t n0, int64_t n, float *buf);
    const void *fetch_ctx;
    /* Optional, with fetch: the scores of keys n0 .. n0+n of (b, hk) for an
     * item's M = G * nt query rows (row r: head hk * G + r / nt, position
     * t0 + r % nt), already scaled, into s [M][lds] (the TurboQuant cache's
     * integer scores straight from the codes). The driver then fetches only
     * the values and skips its dots. Per-row items only (the block-GEMM
     * path of prefill items still fetches keys). Called with fetch_ctx. */
    void (*kscores)(const void *ctx, int64_t b, int64_t hk, int64_t t0, int64_t nt, int64_t n0, int64_t n, float *s,
                    int64_t lds);
    /* Optional, with fetch, for problems of one query position (decode):
     * the values' side of keys n0 .. n0+n of (b, hk) instead of fetching
     * values and the kernels' pv: for each row r < M with live[r],
     * acc[r] = acc[r] * corr[r] + sum_j w[r * lds + j] * v_j (w is zero for
     * keys the row does not see). The hook's accumulators may hold the dims
     * in an order of its own; the problem's outputs (and key-split partials)
     * are then in that order, and whoever set the hook restores it. Called
     * with fetch_ctx. */
    void (*vsum)(const void *ctx, int64_t b, int64_t hk, int64_t n0, int64_t n, const float *w, int64_t lds,
                 const float *corr, const unsigned char *live, int64_t M, float *const *acc);
} sdpa_problem;

/* Keys [*lo, *hi) that causal/window leave visible to query row i
 * (*lo >= *hi when none). */
static inline void sdpa_key_range(const sdpa_problem *p, int64_t i, int64_t *lo, int64_t *hi) {
    int64_t pos = i + p->Tk - p->Tq;
    int64_t a = 0, b = p->Tk;
    if (p->causal && pos + 1 < b) b = pos + 1;
    if (p->window > 0 && pos - p->window + 1 > a) a = pos - p->window + 1;
    *lo = a;
    *hi = b;
}

/* Address of row (b, h, t) of a view. */
static inline const void *sdpa_row(const sdpa_view *v, int64_t b, int64_t h, int64_t t) {
    return v->base + (b * v->s[0] + h * v->s[1] + t * v->s[2]) * (int64_t)mlxn_dtype_size(v->dt);
}

/* Mask row for query (b, h, i); element j is at j * p->ms[3]. */
static inline const char *sdpa_mask_row(const sdpa_problem *p, int64_t b, int64_t h, int64_t i) {
    return p->mask + (b * p->ms[0] + h * p->ms[1] + i * p->ms[2]) * (int64_t)mlxn_dtype_size(p->mdt);
}

/* Softcap then mask the scores s[0..n) of keys j0 .. j0+n for one query
 * row (mrow from sdpa_mask_row, NULL without a mask). Masked keys get
 * -inf, which every path turns into an exact 0 weight. */
static inline void sdpa_cap_and_mask(const sdpa_problem *p, const char *mrow, int64_t j0, int64_t n, float *s) {
    if (p->softcap > 0.0f) {
        const float c = p->softcap; /* tanh(s / c) * c, the operations Gemma 2 uses */
        for (int64_t j = 0; j < n; j++) s[j] = tanhf(s[j] / c) * c;
    }
    if (!mrow) return;
    const int64_t st = p->ms[3];
    if (p->mdt == MLXN_DTYPE_BOOL) {
        const uint8_t *m = (const uint8_t *)mrow + j0 * st;
        for (int64_t j = 0; j < n; j++)
            if (!m[j * st]) s[j] = -INFINITY;
    } else {
        const float *m = (const float *)mrow + j0 * st;
        for (int64_t j = 0; j < n; j++) s[j] += m[j * st];
    }
}

/* One ISA's vector primitives for the flash driver. */
typedef struct sdpa_kernels {
    /* dst[0..n) = src[i * stride] as f32 */
    void (*to_f32)(const void *src, mlxn_dtype dt, int64_t stride, int64_t n, float *dst);
    /* s[j] = q . k_j for j < n; k_j = k + j * ldk; q, k_j [D] */
    void (*dots)(const float *q, const float *k, int64_t ldk, int64_t n, int64_t D, float *s);
    /* max of s[0..n) (-inf when n == 0) */
    float (*max)(const float *s, int64_t n);
    /* s[j] = exp(s[j] - m) (exactly 0 for s[j] = -inf); returns the sum */
    float (*exp_sum)(float *s, int64_t n, float m);
    /* acc[0..Dv) = acc * corr + sum_j p[j] * v_j; v_j = v + j * ldv */
    void (*pv)(const float *p, const float *v, int64_t ldv, int64_t n, int64_t Dv, float corr, float *acc);
    /* Optional (NULL: the driver calls dots/pv per row): the same for two
     * query rows that see the same keys, sharing every K/V load. */
    void (*dots2)(const float *q0, const float *q1, const float *k, int64_t ldk, int64_t n, int64_t D, float *s0,
                  float *s1);
    void (*pv2)(const float *p0, const float *p1, const float *v, int64_t ldv, int64_t n, int64_t Dv, float corr0,
                float corr1, float *acc0, float *acc1);
} sdpa_kernels;

const sdpa_kernels *sdpa_kernels_avx2(void);   /* NULL without x86 SIMD */
const sdpa_kernels *sdpa_kernels_avx512(void); /* NULL without x86 SIMD */

/* The flash-style path (sdpa_flash.c) with one ISA's primitives. */
struct mlxn_threadpool;
mlxn_status sdpa_flash(struct mlxn_threadpool *pool, const sdpa_problem *p, const sdpa_kernels *kr);

/* Scalar reference for query rows [r0, r1) of the flattened [B, Hq, Tq];
 * scratch holds Tk + D floats. */
void sdpa_ref_rows(const sdpa_problem *p, int64_t r0, int64_t r1, float *scratch);

#endif
