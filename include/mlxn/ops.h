/* The op API: one function per op. Each validates shapes and dtypes once
 * (a bad call returns MLXN_ERR_SHAPE / MLXN_ERR_DTYPE with a message naming
 * the op and the argument) and then runs on the stream's device. Tensors
 * must live on that device. Activations are f32; weights (matmul, norms,
 * embeddings) may be f32, f16 or bf16, converted to f32 as they are read.
 * Unless an op says otherwise, inputs may be strided views and outputs must
 * be contiguous, and outputs must not alias inputs. The model's forward
 * pass is written once against these calls; backends implement them. */
#ifndef MLXN_OPS_H
#define MLXN_OPS_H

#include <stdbool.h>

#include "mlxn/quant.h"
#include "mlxn/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- matrix products ---------------------------------------------------- */

/* out[..., N] = x[..., K] @ W^T  when transpose (W is [N, K], the layout of
 * nn.Linear and of every MLX checkpoint), or x @ W when not (W is [K, N]).
 * x: f32 [..., K]; w: f32/f16/bf16, 2-D; out: f32 [..., N]. */
mlxn_status mlxn_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, bool transpose,
                        mlxn_tensor *out);

/* Same products with a quantized W (layout in mlxn/quant.h), as
 * mlx.core.quantized_matmul: transpose -> W logical [N, K], wq [N, K*bits/32],
 * scales/biases [N, K/group]; not transposed -> W logical [K, N], wq
 * [K, N*bits/32], scales/biases [K, N/group]. biases is NULL for fp modes.
 * x: f32 [..., K]; out: f32 [..., N].
 * Precision: the CPU and, for few x rows, the CUDA backend sum exact f32
 * products of x and the dequantized weights. With many x rows (prefill:
 * 16 or more with W [N, K]; any number with W [K, N]) the CUDA backend
 * rounds x and the weights to bf16 for the tensor cores (f32 accumulation):
 * results differ from the f32 path by a normalized squared error of ~1e-5. */
mlxn_status mlxn_quantized_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                  const mlxn_tensor *scales, const mlxn_tensor *biases,
                                  const mlxn_quant_params *q, bool transpose, mlxn_tensor *out);

/* The gated activation a fused product may end with (below). */
typedef enum mlxn_glu {
    MLXN_GLU_NONE = 0,
    MLXN_GLU_SWIGLU,     /* silu(gate) * up, as mlxn_swiglu */
    MLXN_GLU_GEGLU_TANH, /* gelu(gate) * up, tanh form, as mlxn_geglu(MLXN_GELU_TANH) */
    MLXN_GLU_GEGLU_ERF,  /* the same with the erf form */
} mlxn_glu;

/* A decode step's q/k/v product continued: its N = (q_heads + 2
 * kv_heads) * D columns are q, k and v of each x row (heads of D), and
 * then, exactly as mlxn_rope_kv_write on those column ranges seen as
 * [heads, rows, D]: q rotated into q_out [q_heads, rows, D], k rotated and
 * v written at *slot of k_dst / v_dst [kv_heads, cap, D]. Everything as
 * mlxn_rope_kv_write takes it. */
typedef struct mlxn_qmm_rope_kv {
    int64_t q_heads, kv_heads;
    const struct mlxn_rope_params *rope; /* below, under rotary embedding */
    const mlxn_tensor *slot;
    mlxn_tensor *q_out, *k_dst, *v_dst;
} mlxn_qmm_rope_kv;

/* What a decode step does around a mat-vec, folded into it (W [N, K]
 * transposed, as nn.Linear):
 *   xin = norm_w ? rms_norm(x, norm_w, norm_eps, norm_offset) : x
 *   y   = xin @ W^T                                     [..., N]
 *   out = glu ? act(y[..., :N/2]) * y[..., N/2:]        [..., N/2]
 *             : [residual +] y                          [..., N]
 *   rope_kv: rope and the cache writes of q, k, v = y (above)
 * norm_w: the rms_norm weight [K] (f32/f16/bf16) or NULL; residual: f32 of
 * out's shape or NULL, and it may be out itself (the same view: the
 * residual stream updated in place); glu: W's rows are the gate rows then
 * the up rows (N even), not together with a residual; rope_kv: neither
 * with glu nor a residual (out still receives y). Scratch, used only
 * where a backend runs the parts apart, contiguous f32, overlapping nothing
 * else: x_scratch (at least M*K elements, M = x's rows) with norm_w,
 * y_scratch (at least M*N) with residual or glu. */
typedef struct mlxn_qmm_fusion {
    const mlxn_tensor *norm_w;
    float norm_eps, norm_offset;
    const mlxn_tensor *residual;
    mlxn_glu glu;
    mlxn_tensor *x_scratch, *y_scratch;
    const mlxn_qmm_rope_kv *rope_kv;
} mlxn_qmm_fusion;

/* quantized_matmul (transposed) with a fusion as above. A backend that has
 * a kernel for the case (mlxn_quantized_matmul_fuses) runs it as one: the
 * norm's scale rsqrt(mean(x^2) + eps) is then applied to the sums instead
 * of to x, so the result differs from the parts run apart by f32 rounding
 * (relative ~1e-7), while the add, the activation and rope_kv take the
 * sums with the bits of their ops; every other case runs rms_norm,
 * quantized_matmul, add, the gated activation or mlxn_rope_kv_write
 * through the scratch, with exactly the bits of those ops. */
mlxn_status mlxn_quantized_matmul_fused(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                        const mlxn_tensor *scales, const mlxn_tensor *biases,
                                        const mlxn_quant_params *q, const mlxn_qmm_fusion *f, mlxn_tensor *out);

/* Whether the stream's backend runs mlxn_quantized_matmul_fused for these
 * weights and M x rows as one kernel (today: CUDA, one row, MLX affine
 * 4-bit weights with groups of 64 or 128 and bf16/f16 scales, K a multiple
 * of 128; there a norm weight must also be bf16 or f16, or the call runs
 * the parts apart after all). A caller
 * that would otherwise use mlxn_add_rms_norm (one kernel) uses the fused
 * form only then: run apart it costs an extra pass. */
bool mlxn_quantized_matmul_fuses(mlxn_stream *s, const mlxn_tensor *wq, const mlxn_tensor *scales,
                                 const mlxn_tensor *biases, const mlxn_quant_params *q, int64_t M);

/* Reorder the quantized matrix wq / scales / biases (params q, layout
 * ROWS) in place into the TILED16 layout (mlxn/quant.h), on the stream's
 * device; afterwards pass the same params with layout = MLXN_QUANT_TILED16
 * to the ops that read it. Only a backend whose kernels read that layout
 * has it (CUDA; MLXN_CUDA_TILED=0 turns it off): elsewhere, or for a
 * matrix mlxn_quant_tileable refuses, MLXN_ERR_NOT_IMPLEMENTED with nothing
 * changed. MLXN_ERR_OUT_OF_MEMORY (no room for the reorder's scratch, the
 * codes' size) changes nothing either. The three tensors must be
 * contiguous. */
mlxn_status mlxn_quantized_tile(mlxn_stream *s, mlxn_tensor *wq, mlxn_tensor *scales, mlxn_tensor *biases,
                                const mlxn_quant_params *q);

/* ---- gathers ------------------------------------------------------------- */

/* out[i, :] = table[ids[i], :]. ids: i32/u32 [n]; table f32/f16/bf16 [V, D];
 * out f32 [n, D]. An id outside [0, V) is MLXN_ERR_INVALID_ARGUMENT: on the
 * CPU at once (nothing written); on a GPU the ids live in device memory, so
 * the kernel records the first bad one (its row is written as zeros) and
 * the next stream sync reports it, naming the id. */
mlxn_status mlxn_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *table,
                           mlxn_tensor *out);
/* The same from a quantized table: wq [V, D*bits/32], scales/biases
 * [V, D/group]; rows are dequantized as they are gathered. */
mlxn_status mlxn_quantized_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *wq,
                                     const mlxn_tensor *scales, const mlxn_tensor *biases,
                                     const mlxn_quant_params *q, mlxn_tensor *out);

/* ---- normalization ------------------------------------------------------- */

/* out = x * rsqrt(mean(x^2, -1) + eps) * (w_offset + w), as mx.fast.rms_norm
 * (w_offset = 1 gives Gemma's 1 + w; the sum is rounded to w's dtype, as
 * mlx-lm's `1.0 + weight` is). x, out: f32 [..., D]; w [D] or NULL (no
 * weight: w_offset is then unused). */
mlxn_status mlxn_rms_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, float eps,
                          float w_offset, mlxn_tensor *out);

/* The residual add and the norm after it, in one op (one kernel on a GPU):
 *   sum = a + b;  out = rms_norm(sum, w, eps, w_offset)
 * with exactly the bits of mlxn_add(a, b, sum) followed by
 * mlxn_rms_norm(sum, w, eps, w_offset, out) on the same backend. a, b: f32
 * of one shape [..., D] (strided views are fine; b is not broadcast); w as
 * rms_norm's. sum, out: f32 of a's shape, contiguous. sum may be a or b
 * itself (in place: the same buffer, offset and shape), otherwise it must
 * not overlap them; out must overlap none of a, b and sum. */
mlxn_status mlxn_add_rms_norm(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, const mlxn_tensor *w,
                              float eps, float w_offset, mlxn_tensor *sum, mlxn_tensor *out);

/* out = (x - mean) * rsqrt(var + eps) * w + b over the last axis, as
 * mx.fast.layer_norm; w and b [D] may each be NULL. */
mlxn_status mlxn_layer_norm(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w,
                            const mlxn_tensor *b, float eps, mlxn_tensor *out);

/* ---- rotary embedding ---------------------------------------------------- */

typedef struct mlxn_rope_params {
    int dims;          /* rotated leading dims of the last axis (even, <= D); rest pass through */
    bool traditional;  /* true: rotate adjacent pairs (x0,x1); false: halves (x[i], x[i+dims/2]) */
    float base;        /* theta base, used when freqs is NULL */
    float scale;       /* positions are multiplied by this (1 = none) */
    int offset;        /* position of the first row along T */
    const mlxn_tensor *offset_tensor; /* optional i32 [1] on the device, overrides offset */
    const mlxn_tensor *freqs;         /* optional f32 [dims/2]: angle = pos / freqs[i] */
} mlxn_rope_params;

/* As mx.fast.rope: x, out f32 [..., T, D] (T is the second-to-last axis). */
mlxn_status mlxn_rope(mlxn_stream *s, const mlxn_tensor *x, const mlxn_rope_params *p,
                      mlxn_tensor *out);

/* ---- attention ----------------------------------------------------------- */

typedef struct mlxn_sdpa_params {
    float scale;              /* multiplies q.k (typically 1/sqrt(head_dim)) */
    bool causal;              /* lower-right aligned: query i sees keys j <= i + (Tk - Tq) */
    int window;               /* > 0: query i also only sees keys j > i + (Tk - Tq) - window */
    float softcap;            /* > 0: scores = softcap * tanh(scores / softcap) before masking */
    const mlxn_tensor *mask;  /* optional, broadcastable to [B, Hq, Tq, Tk]: bool (true = keep)
                                 or f32 (added to the scores) */
    const mlxn_tensor *sinks; /* optional f32 [Hq]: a per-head logit that joins the softmax
                                 denominator and attends to nothing */
    const mlxn_tensor *kv_len; /* optional i32 [1] on the op's device: only keys/values
                                 [0, kv_len) are used, k/v's Tk is then a capacity, and
                                 causal/window align with kv_len in place of Tk (the mask is
                                 still [.., Tk] and its columns past kv_len are ignored). Read
                                 by the device when the op runs, never by the host on a GPU,
                                 so a call can be captured once and replayed as a cache grows.
                                 A value outside [0, Tk]: the CPU reports
                                 MLXN_ERR_INVALID_ARGUMENT; a GPU clamps it to [0, Tk]. */
} mlxn_sdpa_params;

/* As mx.fast.scaled_dot_product_attention, softmax in f32. q [B, Hq, Tq, D],
 * k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv] with Hq a multiple of Hkv (grouped-
 * query attention, K/V never tiled); out f32 [B, Hq, Tq, Dv]. q/k/v may be
 * f32, f16 or bf16. A query row that sees no key gives zeros. */
mlxn_status mlxn_sdpa(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k,
                      const mlxn_tensor *v, const mlxn_sdpa_params *p, mlxn_tensor *out);

/* ---- elementwise and reductions ------------------------------------------ */

/* Softmax over the last axis, f32 [..., N]. */
mlxn_status mlxn_softmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);

typedef enum mlxn_gelu_kind {
    MLXN_GELU_ERF = 0,  /* x * 0.5 * (1 + erf(x / sqrt(2)))  (nn.gelu) */
    MLXN_GELU_TANH,     /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (nn.gelu_approx) */
} mlxn_gelu_kind;

mlxn_status mlxn_gelu(mlxn_stream *s, const mlxn_tensor *x, mlxn_gelu_kind kind, mlxn_tensor *out);
mlxn_status mlxn_silu(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);
/* out = silu(gate) * up (SwiGLU MLP), all f32 of one shape. */
mlxn_status mlxn_swiglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up,
                        mlxn_tensor *out);
/* out = gelu(gate) * up (GeGLU MLP, Gemma uses the tanh form). */
mlxn_status mlxn_geglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up,
                       mlxn_gelu_kind kind, mlxn_tensor *out);

/* Index of the largest value along the last axis (the first one on ties;
 * NaN counts as largest, as in MLX). x f32 [..., N]; out i32 [...]. */
mlxn_status mlxn_argmax(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out);

/* Fast Walsh-Hadamard transform over the last axis (a power of two, up to
 * 2^15), times `scale`, as mx.hadamard_transform (scale 1/sqrt(n) makes it
 * orthonormal). x, out f32 [..., n]; out may equal x (in place). */
mlxn_status mlxn_hadamard(mlxn_stream *s, const mlxn_tensor *x, float scale, mlxn_tensor *out);

/* ---- sampling -------------------------------------------------------------- */

/* The token filters and draw of mlx-lm's make_sampler, in its order (the
 * host sampler of mlxn/text.h documents them): log-softmax; then, when
 * temperature > 0, top_p, min_p (keeping min_tokens_to_keep), top_k, each
 * on the untempered log-probabilities; then one draw from
 * softmax(logprobs / temperature) by inverse CDF over token ids in order.
 * The draw's uniform number is the counter-th output of splitmix64 seeded
 * with `seed` (the n-th number the host sampler draws with that seed has
 * counter n), so device and host pick the same token for the same draw.
 * Penalties and logit_bias are not applied here (mlxn_sampler_apply_penalties
 * does them on host logits). */
typedef struct mlxn_sample_params {
    float temperature;          /* 0: argmax (NaN ignored, first index on ties) */
    float top_p;                /* in (0, 1) keeps the nucleus; 0 or 1: off */
    float min_p;                /* in (0, 1]; 0: off */
    int32_t min_tokens_to_keep; /* min_p keeps at least this many (< 1 counts as 1) */
    int32_t top_k;              /* 0 or >= vocab: off */
    uint64_t seed;
    uint64_t counter;           /* >= 1 */
} mlxn_sample_params;

/* token = one token drawn from logits. logits: f32 [V] or [1, V] (a strided
 * view is fine); token: i32 with one element, on the same device, so a GPU
 * decode loop needs only 4 bytes back per step. When no logit is a number
 * above -inf, token is -1. */
mlxn_status mlxn_sample(mlxn_stream *s, const mlxn_tensor *logits, const mlxn_sample_params *p, mlxn_tensor *token);

/* ---- copies and elementwise arithmetic ----------------------------------- */

/* out = a + b. a: f32 [..., N]; b: f32/f16/bf16 with a's shape, or with a's
 * trailing dims only (broadcast over a's leading dims: a bias [N] added to
 * every row); out: f32 of a's shape. out may be a itself (in place: the same
 * buffer, offset and shape), otherwise it must not overlap a or b. */
mlxn_status mlxn_add(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, mlxn_tensor *out);

/* out = x * alpha. x, out: f32 of one shape; out may be x itself. */
mlxn_status mlxn_scale(mlxn_stream *s, const mlxn_tensor *x, float alpha, mlxn_tensor *out);

/* dst = src element by element over one shape, converting dtypes (to f16 /
 * bf16 by round-to-nearest-even). Unlike other ops, dst may be a strided
 * view (a slot range of a KV cache, a transposed layout). src: f32/f16/bf16,
 * any strides; dst: f32/f16/bf16, no zero stride on an axis longer than 1,
 * not overlapping src. */
mlxn_status mlxn_copy(mlxn_stream *s, const mlxn_tensor *src, mlxn_tensor *dst);

/* Append rows to a cache at a slot the device reads when the op runs:
 * dst[..., slot + t, :] = src[..., t, :] for t < T, converting dtypes as
 * mlxn_copy. src: f32/f16/bf16 [..., T, D], any strides; dst: f32/f16/bf16
 * [..., cap, D] with src's other dims; slot: i32 [1] on the device. Because
 * the slot is data, a captured decode step appends at whatever position the
 * replay is given. A slot outside [0, cap - T] is MLXN_ERR_INVALID_ARGUMENT
 * and writes nothing: at once on the CPU; a GPU records it and reports it
 * (naming the slot) at the next stream sync. */
mlxn_status mlxn_kv_write(mlxn_stream *s, const mlxn_tensor *src, const mlxn_tensor *slot, mlxn_tensor *dst);

/* Keys and values appended at one slot in one call (on a GPU one kernel,
 * not two): exactly mlxn_kv_write(k_src, slot, k_dst) followed by
 * mlxn_kv_write(v_src, slot, v_dst), bit for bit. Each pair is checked as
 * mlxn_kv_write checks its src and dst (the pairs may differ in shape and
 * in dtypes: a bf16 key cache beside an f32 value cache is fine). No
 * output may overlap any input or the other output. A slot that does not
 * fit either non-empty pair is MLXN_ERR_INVALID_ARGUMENT and writes
 * nothing to either cache (two separate calls would have written the
 * first), reported as mlxn_kv_write reports it. */
mlxn_status mlxn_kv_write2(mlxn_stream *s, const mlxn_tensor *k_src, const mlxn_tensor *v_src,
                           const mlxn_tensor *slot, mlxn_tensor *k_dst, mlxn_tensor *v_dst);

/* A decode step's rotary embedding and cache append in one call (on a GPU
 * one kernel instead of three): exactly mlxn_rope(q, p, q_out), then
 * mlxn_rope(k, p, k_rot) into an f32 temporary of k's shape, then
 * mlxn_kv_write2(k_rot, v, slot, k_dst, v_dst), bit for bit. q, k: f32
 * [..., T, D] (any strides; p->dims fits both); q_out: f32 of q's shape,
 * contiguous; v, k_dst, v_dst, slot as mlxn_kv_write2 takes them. No
 * output may overlap an input or another output. A slot that does not
 * fit either non-empty pair writes nothing at all (not even q_out) and
 * is reported as mlxn_kv_write reports it. */
mlxn_status mlxn_rope_kv_write(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                               const mlxn_rope_params *p, const mlxn_tensor *slot, mlxn_tensor *q_out,
                               mlxn_tensor *k_dst, mlxn_tensor *v_dst);

#ifdef __cplusplus
}
#endif
#endif
