/* TurboQuant KV cache (Zandieh et al., arXiv 2504.19874): keys and values
 * are stored rotated (a fixed +-1 diagonal, then a normalized Walsh-
 * Hadamard transform), as an f32 norm plus a 2- to 8-bit Lloyd-Max code of
 * N(0, 1) per coordinate of the unit vector scaled by sqrt(head_dim).
 * Attention reads the codes directly: the query is rotated once, scores
 * and the weighted value sum are formed in the rotated domain, and the
 * output is rotated back once. The byte layout is documented in the
 * library's src/quant/tq_layout.h; docs/turboquant.md has measurements and
 * how a session uses the cache.
 *
 * One cache holds one layer: codes and norms of n_kv_heads x capacity
 * slots, keys and values (their widths may differ). Position p is stored
 * in slot p % capacity: a cache at least as long as the sequence never
 * wraps; a sliding-window layer can use a ring of capacity >= window - 1 +
 * the longest chunk appended at once. The cache does not track which
 * positions it holds: the caller passes the position of the first new
 * token to append and to attention (as a host int, or as an i32 [1]
 * device tensor so a captured CUDA graph can replay a decode step). */
#ifndef MLXN_TURBOQUANT_H
#define MLXN_TURBOQUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mlxn/ops.h"
#include "mlxn/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlxn_tq_cache mlxn_tq_cache;

typedef struct mlxn_tq_cache_params {
    int n_kv_heads;     /* >= 1 */
    int64_t capacity;   /* slots per kv head, >= 1 */
    int head_dim;       /* a power of two, 64..512 */
    int k_bits, v_bits; /* code widths 2..8 (2, 3, 4 bit-packed; 5..8 one byte per code) */
    uint32_t seed;      /* rotation seed: mlxn_tq_seed(layer) for layer `layer` of a model */
} mlxn_tq_cache_params;

/* The documented rotation seed of a model's layer (0-based). */
uint32_t mlxn_tq_seed(int layer);

/* Checks widths and head dim (and heads/capacity, when > 0 is required)
 * without allocating: a clear MLXN_ERR_UNSUPPORTED / INVALID_ARGUMENT
 * message naming the bad field, for a session to fail at creation. */
mlxn_status mlxn_tq_check_params(const mlxn_tq_cache_params *p);

/* Bytes one position costs in a cache of these params: codes and norms of
 * keys and values for every kv head (what "KV bytes per token" reports for
 * one layer). 0 when the params are invalid. */
size_t mlxn_tq_bytes_per_token(const mlxn_tq_cache_params *p);

/* Allocate a cache on `dev` (all codes and norms zero). */
mlxn_status mlxn_tq_cache_new(mlxn_device *dev, const mlxn_tq_cache_params *p, mlxn_tq_cache **out);
void mlxn_tq_cache_free(mlxn_tq_cache *c);
/* The params the cache was made with. */
const mlxn_tq_cache_params *mlxn_tq_cache_get_params(const mlxn_tq_cache *c);
/* Device bytes the cache holds. */
size_t mlxn_tq_cache_bytes(const mlxn_tq_cache *c);

/* Quantize-on-append: rotate, take the norm, quantize and pack T new
 * tokens' keys and values for every kv head, in one pass, into slots
 * (pos + t) % capacity. k, v: f32 [n_kv_heads, T, head_dim] (any strides,
 * e.g. a transposed view of [T, n_kv_heads, head_dim]); 1 <= T <= capacity.
 * pos_tensor (optional, i32 [1] on the device) overrides pos; pos >= 0. */
mlxn_status mlxn_tq_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *k, const mlxn_tensor *v,
                           int64_t pos, const mlxn_tensor *pos_tensor);

/* A step's rotary embedding and quantize-on-append in one call (on a GPU
 * one kernel where the calls it stands for take two or three): exactly
 * mlxn_rope(q, p, q_out), then mlxn_rope(k, p, k_rot) into an f32
 * temporary of k's shape, then mlxn_tq_append(c, k_rot, v, pos,
 * pos_tensor), bit for bit. q: f32 [Hq, T, head_dim] (any strides, Hq >=
 * 1); q_out: f32 of q's shape, contiguous; k, v, pos, pos_tensor as
 * mlxn_tq_append takes them, with the same T; p->dims fits head_dim. The
 * rope's positions are p's (offset / offset_tensor), the slots pos's: a
 * caller appending into a scratch view passes them apart. q_out may not
 * overlap an input or the cache. A bad position writes nothing, not even
 * q_out (a negative device position too: an error on the CPU, silently on
 * a GPU, as mlxn_tq_append). */
mlxn_status mlxn_tq_rope_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *q, const mlxn_tensor *k,
                                const mlxn_tensor *v, const mlxn_rope_params *p, mlxn_tensor *q_out, int64_t pos,
                                const mlxn_tensor *pos_tensor);

typedef struct mlxn_tq_sdpa_params {
    float scale;   /* multiplies q.k (typically 1/sqrt(head_dim)) */
    bool causal;   /* query at position P sees keys at positions <= P */
    int window;    /* > 0: ... and only keys at positions > P - window */
    float softcap; /* > 0: scores = softcap * tanh(scores / softcap) before masking */
    int64_t pos;   /* position of the first query row (the first token appended last) */
    const mlxn_tensor *pos_tensor; /* optional i32 [1] on the device, overrides pos */
} mlxn_tq_sdpa_params;

/* Attention of Tq queries at positions pos .. pos + Tq - 1 over the cache,
 * with mlxn_sdpa's semantics (f32 softmax, lower-right causal, window,
 * softcap, grouped-query heads without tiling K/V; a row that sees no key
 * gives zeros) as if k/v were the dequantized keys and values of positions
 * [max(0, pos + Tq - capacity), pos + Tq) in order; older positions have
 * been overwritten and are invisible. q f32 [1, Hq, Tq, head_dim] (any
 * strides; Hq a multiple of n_kv_heads; 1 <= Tq <= capacity); out f32
 * [1, Hq, Tq, head_dim] contiguous. With a host pos, a layer without a
 * window whose positions no longer fit (pos + Tq > capacity), or a ring too
 * short for the window (capacity < window - 1 + Tq once wrapped), is an
 * error instead of a silently shortened history. */
mlxn_status mlxn_tq_sdpa(mlxn_stream *s, const mlxn_tq_cache *c, const mlxn_tensor *q,
                         const mlxn_tq_sdpa_params *p, mlxn_tensor *out);

/* Decode the keys (which = 'k') or values ('v') of positions pos ..
 * pos + n - 1 (slots (pos + t) % capacity) back to the original domain,
 * for tests and debugging. out f32 [n_kv_heads, n, head_dim] contiguous,
 * 1 <= n <= capacity, pos >= 0. */
mlxn_status mlxn_tq_dequantize(mlxn_stream *s, const mlxn_tq_cache *c, char which, int64_t pos,
                               mlxn_tensor *out);

#ifdef __cplusplus
}
#endif
#endif
