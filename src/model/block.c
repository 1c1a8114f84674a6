/* The forward pass, written once against the op API (mlxn/ops.h) for every
 * architecture and every backend. One call runs a chunk of T tokens at
 * the session's position through embedding, the shared transformer block
 * of each layer, the final norm and (for the requested rows) the head.
 *
 * The block, with the configuration's switches:
 *   xn = rms_norm(x, input_layernorm)
 *   q, k, v = xn Wq^T (+bq), xn Wk^T (+bk), xn Wv^T (+bv)
 *              (one matmul over the stacked rows when the loader fused
 *              them: q, k, v are then column views of its output; gate
 *              and up likewise)
 *   [qk_norm]  q, k = rms_norm per head (head_dim)
 *   q, k = rope(q, k) at positions pos .. pos + T - 1 (layer's base/scaling)
 *   append k, v to the layer's cache; a = sdpa(q, cache, causal, window)
 *   o = a Wo^T (+bo)
 *   x += [sandwich] ? rms_norm(o, post_attention_layernorm) : o
 *   xn = rms_norm(x, sandwich ? pre_feedforward_layernorm : post_attention_layernorm)
 *   m = down(act(gate(xn)) * up(xn))        act: silu, or gelu(tanh)
 *   x += [sandwich] ? rms_norm(m, post_feedforward_layernorm) : m
 * Each residual add and the norm of its sum that comes next (the MLP's
 * input norm, the next layer's, the final norm) run as one op,
 * mlxn_add_rms_norm: the same bits as the two apart, one kernel fewer on a
 * GPU (a decode step's small kernels cost microseconds each whatever their
 * bytes). So a layer's attention starts from xn already normalized, except
 * layer 0's, which norms the embedding itself. A single-token step of the
 * fixed cache layout rotates q and k and appends k and v to the caches in
 * one op (mlxn_rope_kv_write: the same bits as rope + mlxn_kv_write2).
 * Layouts: token-major activations [T, heads * head_dim] from the
 * projections; head-major [heads, T, head_dim] for rope output, the cache
 * and attention; mlxn_copy moves between them (strided views, no extra
 * transposes elsewhere).
 * Where the backend runs a product with its neighbours as one kernel
 * (mlxn_quantized_matmul_fuses: a decode step on a GPU), the residual adds
 * ride in the output and down projections, and the norms (and the gated
 * activation) in the q/k/v and gate/up products, through
 * mlxn_quantized_matmul_fused: no add_rms_norm or activation op then runs
 * but the final norm. A decode step's rope and cache writes then ride in
 * the fused q/k/v product too (its rope_kv; not with q/k norms, which come
 * between the product and rope). */
#include <string.h>

#include "core/internal.h"
#include "model/model_internal.h"

/* A contiguous f32 view [d0, d1, d2] (ndim 1..3) at the start of scratch t. */
static mlxn_tensor view(const mlxn_tensor *t, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    mlxn_tensor v = *t;
    int64_t dims[3] = {d0, d1, d2};
    v.ndim = ndim;
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        v.shape[i] = dims[i];
        v.strides[i] = stride;
        stride *= dims[i];
    }
    return v;
}

/* Columns [c0, c0 + h*d) of a contiguous f32 scratch [T, N] as a [T, h, d]
 * view (row stride N): one projection's part of a fused output. At T = 1
 * the view is contiguous, so decode's ops see plain rows. */
static mlxn_tensor cols(const mlxn_tensor *t, int64_t T, int64_t N, int64_t c0, int64_t h, int64_t d) {
    mlxn_tensor v = view(t, 3, T, h, d);
    v.strides[0] = N;
    v.offset += (size_t)c0 * sizeof(float);
    return v;
}

/* [T, H, D] contiguous seen as [H, T, D] (or back): swap the first two axes. */
static mlxn_tensor swap01(mlxn_tensor t) {
    int64_t s = t.shape[0], st = t.strides[0];
    t.shape[0] = t.shape[1];
    t.strides[0] = t.strides[1];
    t.shape[1] = s;
    t.strides[1] = st;
    return t;
}

/* Add a leading axis of 1: [H, T, D] -> [1, H, T, D]. */
static mlxn_tensor batch1(mlxn_tensor t) {
    for (int i = t.ndim; i > 0; i--) {
        t.shape[i] = t.shape[i - 1];
        t.strides[i] = t.strides[i - 1];
    }
    t.shape[0] = 1;
    t.strides[0] = t.shape[1] * t.strides[1];
    t.ndim++;
    return t;
}

static mlxn_status linear(mlxn_stream *st, const mlxn_tensor *x, const model_linear *L, mlxn_tensor *out) {
    if (L->quantized)
        MLXN_TRY(mlxn_quantized_matmul(st, x, &L->w, &L->scales, L->q.mode == MLXN_QUANT_AFFINE ? &L->biases : NULL,
                                       &L->q, true, out));
    else
        MLXN_TRY(mlxn_matmul(st, x, &L->w, true, out));
    if (L->has_bias) MLXN_TRY(mlxn_add(st, out, &L->bias, out));
    return MLXN_OK;
}

static mlxn_status norm(mlxn_stream *st, const mlxn_model_config *c, const mlxn_tensor *x, const mlxn_tensor *w,
                        mlxn_tensor *out) {
    return mlxn_rms_norm(st, x, w, c->norm_eps, c->norm_offset, out);
}

/* Whether L's product over T rows takes a norm before it or a residual add
 * after it inside its own kernel (mlxn_quantized_matmul_fuses): then the
 * fold below costs no extra pass. */
static bool fuses(mlxn_stream *st, const model_linear *L, int64_t T) {
    return L->quantized && !L->has_bias &&
           mlxn_quantized_matmul_fuses(st, &L->w, &L->scales, L->q.mode == MLXN_QUANT_AFFINE ? &L->biases : NULL,
                                       &L->q, T);
}

/* out = [residual +] [rms_norm(x, norm_w)] L^T in one op, or with glu the
 * gated activation of that product's two halves (mlxn_quantized_matmul_fused),
 * for an L that fuses(); xbuf / ybuf: scratch tensors the op may run the
 * parts through (the normed x; the product). */
static mlxn_status linear_fused_rkv(mlxn_stream *st, const mlxn_model_config *c, const mlxn_tensor *x,
                                    const model_linear *L, const mlxn_tensor *norm_w, const mlxn_tensor *residual,
                                    mlxn_glu glu, const mlxn_qmm_rope_kv *rope_kv, const mlxn_tensor *xbuf,
                                    const mlxn_tensor *ybuf, mlxn_tensor *out) {
    int64_t rows = mlxn_tensor_numel(out) / out->shape[out->ndim - 1];
    mlxn_tensor xs = {0}, ys = {0};
    if (norm_w) xs = view(xbuf, 1, rows * x->shape[x->ndim - 1], 0, 0);
    if (residual || glu) ys = view(ybuf, 1, rows * L->out, 0, 0);
    mlxn_qmm_fusion f = {.norm_w = norm_w, .norm_eps = c->norm_eps, .norm_offset = c->norm_offset,
                         .residual = residual, .glu = glu, .x_scratch = norm_w ? &xs : NULL,
                         .y_scratch = residual || glu ? &ys : NULL, .rope_kv = rope_kv};
    return mlxn_quantized_matmul_fused(st, x, &L->w, &L->scales, L->q.mode == MLXN_QUANT_AFFINE ? &L->biases : NULL,
                                       &L->q, &f, out);
}

static mlxn_status linear_fused(mlxn_stream *st, const mlxn_model_config *c, const mlxn_tensor *x,
                                const model_linear *L, const mlxn_tensor *norm_w, const mlxn_tensor *residual,
                                mlxn_glu glu, const mlxn_tensor *xbuf, const mlxn_tensor *ybuf, mlxn_tensor *out) {
    return linear_fused_rkv(st, c, x, L, norm_w, residual, glu, NULL, xbuf, ybuf, out);
}

/* Layer l's q/k/v product takes its input norm in its kernel. */
static bool fold_qkv(mlxn_stream *st, const model_layer *L, int64_t T) { return L->fused_qkv && fuses(st, &L->qkv, T); }

/* The residual add x += r, and, when next_w is given, xn = rms_norm(x,
 * next_w) of the new x in the same op (the norm that follows the add). */
static mlxn_status residual(mlxn_stream *st, const mlxn_model_config *c, mlxn_tensor *x, const mlxn_tensor *r,
                            const mlxn_tensor *next_w, mlxn_tensor *xn) {
    if (!next_w) return mlxn_add(st, x, r, x);
    return mlxn_add_rms_norm(st, x, r, next_w, c->norm_eps, c->norm_offset, x, xn);
}

/* Element i of the session's step block as an i32 [1] tensor. */
static mlxn_tensor step_at(const mlxn_session *s, int i) {
    mlxn_tensor t = s->step_dev;
    t.ndim = 1;
    t.shape[0] = 1;
    t.strides[0] = 1;
    t.offset += (size_t)i * sizeof(int32_t);
    return t;
}

/* The layer's rope of rows of D columns; the position is pos, or the step
 * block's when `at` is given. */
static mlxn_rope_params rope_params(const model_layer_cfg *lc, const model_layer *L, int64_t pos,
                                    const mlxn_tensor *at, int64_t D) {
    mlxn_rope_params p = {
        .dims = (int)D,
        .traditional = lc->rope.traditional,
        .base = lc->rope.base,
        .scale = lc->rope.kind == ROPE_DEFAULT ? lc->rope.scale : 1.0f,
        .offset = (int)pos,
        .offset_tensor = at,
        .freqs = lc->rope.kind == ROPE_FREQS ? &L->rope_freqs : NULL,
    };
    return p;
}

/* rope of [T, H, D] (token-major) into out [H, T, D] (head-major). */
static mlxn_status rope(mlxn_stream *st, const model_layer_cfg *lc, const model_layer *L, int64_t pos,
                        const mlxn_tensor *at, const mlxn_tensor *x_thd, mlxn_tensor *out_htd) {
    mlxn_rope_params p = rope_params(lc, L, pos, at, x_thd->shape[2]);
    mlxn_tensor x = swap01(*x_thd);
    return mlxn_rope(st, &x, &p, out_htd);
}

/* Slots [from, from + n) of a cache buffer [Hkv, cap, D] as a [Hkv, n, D] view. */
static mlxn_tensor cache_slots(const mlxn_tensor *buf, int64_t from, int64_t n) {
    mlxn_tensor v = *buf;
    v.shape[1] = n;
    v.offset += (size_t)(from * buf->strides[1]) * mlxn_dtype_size(buf->dtype);
    return v;
}

/* Copy rows [from, from + n) of src [Hkv, *, D] into rows [to, to + n) of dst. */
static mlxn_status copy_rows(mlxn_stream *st, const mlxn_tensor *src, int64_t from, const mlxn_tensor *dst, int64_t to,
                             int64_t n) {
    if (n <= 0) return MLXN_OK;
    mlxn_tensor a = cache_slots(src, from, n), b = cache_slots(dst, to, n);
    return mlxn_copy(st, &a, &b);
}

/* Positions [p, p + n) of a ring of `cap` slots <-> rows [r, r + n) of a
 * buffer in order: at most two runs of slots. to_ring: buffer -> ring. */
static mlxn_status ring_copy(mlxn_stream *st, const mlxn_tensor *ring, int64_t cap, int64_t p, const mlxn_tensor *buf,
                             int64_t r, int64_t n, bool to_ring) {
    int64_t slot = p % cap, n1 = n < cap - slot ? n : cap - slot;
    if (to_ring) {
        MLXN_TRY(copy_rows(st, buf, r, ring, slot, n1));
        return copy_rows(st, buf, r + n1, ring, 0, n - n1);
    }
    MLXN_TRY(copy_rows(st, ring, slot, buf, r, n1));
    return copy_rows(st, ring, 0, buf, r + n1, n - n1);
}

/* A single-token step of the fixed layout (the step a decode graph
 * captures): q3, k3, v3 [1, heads, D] (token-major views of the
 * projections) -> rope of q into qr [Hq, 1, D]; rope of k and v written at
 * the step's slot of layer l's cache, all in one op (unless `roped`: the
 * q/k/v product did it, through its rope_kv); then q4 [1, Hq, 1, D] (qr)
 * attends to slots [0, kv_len) of the whole buffer into att4. With one
 * query every key held is visible (a ring holds exactly the window; rope
 * was applied before the write, so the order of keys in the ring does not
 * matter to the softmax). */
static mlxn_status attend_step(mlxn_session *s, int l, bool roped, const mlxn_tensor *q3, const mlxn_tensor *k3,
                               const mlxn_tensor *v3, mlxn_tensor *qr, const mlxn_tensor *q4, mlxn_tensor *att4) {
    const mlxn_model_config *c = &s->m->cfg;
    model_kv *kv = &s->kv[l];
    mlxn_stream *st = s->st;
    mlxn_tensor slot = step_at(s, STEP_SLOT(l)), len = step_at(s, STEP_KV_LEN(l)), pos = step_at(s, STEP_POS);
    if (!roped) {
        mlxn_rope_params p = rope_params(&c->layers[l], &s->m->layers[l], s->pos, &pos, q3->shape[2]);
        mlxn_tensor q = swap01(*q3), k = swap01(*k3), v = swap01(*v3);
        MLXN_TRY(mlxn_rope_kv_write(st, &q, &k, &v, &p, &slot, qr, &kv->k, &kv->v));
    }
    mlxn_tensor kall = batch1(kv->k), vall = batch1(kv->v);
    /* the span of slots attended (model_step_span: the keys held fit in it) */
    kall.shape[2] = vall.shape[2] = model_step_span(s->pos, kv->cap);
    mlxn_sdpa_params sp = {.scale = c->attn_scale, .kv_len = &len};
    return mlxn_sdpa(st, q4, &kall, &vall, &sp, att4);
}

/* Append the T new keys kr / values vt ([Hkv, T, D]) of layer l to its
 * cache and attend q4 [1, Hq, T, D] over what the layer sees, into att4
 * (a chunk, or a step of the growing layout). */
static mlxn_status attend(mlxn_session *s, int l, int64_t T, const mlxn_tensor *kr, const mlxn_tensor *vt,
                          const mlxn_tensor *q4, mlxn_tensor *att4) {
    const mlxn_model_config *c = &s->m->cfg;
    const model_layer_cfg *lc = &c->layers[l];
    model_kv *kv = &s->kv[l];
    mlxn_stream *st = s->st;
    /* causal is lower-right aligned: the T queries are the last T keys; a
       sliding layer also only sees its last `window` keys */
    mlxn_sdpa_params sp = {.scale = c->attn_scale, .causal = true, .window = lc->window};
    if (kv->ring) {
        /* the window - 1 keys before the chunk (from the ring, in order),
           then the chunk's, in scratch; attend there; then the chunk's last
           `cap` keys go into the ring */
        model_scratch *sc = &s->sc;
        int64_t p = s->pos, h = p < lc->window - 1 ? p : lc->window - 1, cap = kv->cap;
        if (h > cap) h = cap;
        MLXN_TRY(ring_copy(st, &kv->k, cap, p - h, &sc->ring_k, 0, h, false));
        MLXN_TRY(ring_copy(st, &kv->v, cap, p - h, &sc->ring_v, 0, h, false));
        mlxn_tensor ks = cache_slots(&sc->ring_k, h, T), vs = cache_slots(&sc->ring_v, h, T);
        MLXN_TRY(mlxn_copy(st, kr, &ks));
        MLXN_TRY(mlxn_copy(st, vt, &vs));
        mlxn_tensor kall = batch1(cache_slots(&sc->ring_k, 0, h + T)), vall = batch1(cache_slots(&sc->ring_v, 0, h + T));
        MLXN_TRY(mlxn_sdpa(st, q4, &kall, &vall, &sp, att4));
        int64_t m = T < cap ? T : cap;
        MLXN_TRY(ring_copy(st, &kv->k, cap, p + T - m, &sc->ring_k, h + T - m, m, true));
        return ring_copy(st, &kv->v, cap, p + T - m, &sc->ring_v, h + T - m, m, true);
    }
    /* in order: append at the end (model_kv_reserve made room) */
    mlxn_tensor kslot = cache_slots(&kv->k, kv->len, T), vslot = cache_slots(&kv->v, kv->len, T);
    MLXN_TRY(mlxn_copy(st, kr, &kslot));
    MLXN_TRY(mlxn_copy(st, vt, &vslot));
    kv->len += T;
    mlxn_tensor kall = batch1(cache_slots(&kv->k, 0, kv->len)), vall = batch1(cache_slots(&kv->v, 0, kv->len));
    return mlxn_sdpa(st, q4, &kall, &vall, &sp, att4);
}

/* Layer l's attention sub-block on x [T, H]; xn holds rms_norm(x,
 * input_layernorm) when normed (the previous layer's last add made it),
 * else the q/k/v product norms x itself when it can (fold_qkv). Ends with
 * x += branch and xn = rms_norm(x, the MLP's input norm), or, when
 * *mlp_folds is set on return, with x += branch alone, the output
 * projection adding into x and the MLP's gate/up product norming x. */
static mlxn_status attention(mlxn_session *s, int l, int64_t T, mlxn_tensor *x, bool normed, bool *mlp_folds) {
    mlxn_model *m = s->m;
    const mlxn_model_config *c = &m->cfg;
    const model_layer *L = &m->layers[l];
    const model_layer_cfg *lc = &c->layers[l];
    model_scratch *sc = &s->sc;
    mlxn_stream *st = s->st;
    int64_t H = c->hidden, D = c->head_dim, Hq = c->n_heads, Hk = c->n_kv_heads;

    mlxn_tensor xn = view(&sc->xn, 2, T, H, 0);
    const bool fold_in = !normed && fold_qkv(st, L, T);
    if (!normed && !fold_in) MLXN_TRY(norm(st, c, x, &L->attn_norm, &xn));
    mlxn_tensor q3, k3, v3; /* [T, heads, D] views of the projections */
    mlxn_tensor qr = view(&sc->qr, 3, Hq, T, D), kr = view(&sc->kr, 3, Hk, T, D);
    /* a decode step's rope and cache writes in the q/k/v product's own
       kernel, where it has one (no q/k norm may come between) */
    const bool fold_rope = s->step_mode && !s->tq && L->fused_qkv && !c->qk_norm && fuses(st, &L->qkv, T);
    if (L->fused_qkv) {
        /* one matmul; q, k, v are column ranges of its [T, (Hq + 2 Hk) D] output */
        int64_t N = (Hq + 2 * Hk) * D;
        mlxn_tensor qkv = view(&sc->qkv, 2, T, N, 0);
        if (fold_rope) {
            model_kv *kv = &s->kv[l];
            mlxn_tensor slot = step_at(s, STEP_SLOT(l)), pos = step_at(s, STEP_POS);
            mlxn_rope_params p = rope_params(lc, L, s->pos, &pos, D);
            mlxn_qmm_rope_kv rkv = {.q_heads = Hq, .kv_heads = Hk, .rope = &p, .slot = &slot, .q_out = &qr,
                                    .k_dst = &kv->k, .v_dst = &kv->v};
            MLXN_TRY(linear_fused_rkv(st, c, fold_in ? x : &xn, &L->qkv, fold_in ? &L->attn_norm : NULL, NULL,
                                      MLXN_GLU_NONE, &rkv, &sc->xn, NULL, &qkv));
        } else if (fold_in) {
            MLXN_TRY(linear_fused(st, c, x, &L->qkv, &L->attn_norm, NULL, MLXN_GLU_NONE, &sc->xn, NULL, &qkv));
        } else {
            MLXN_TRY(linear(st, &xn, &L->qkv, &qkv));
        }
        q3 = cols(&sc->qkv, T, N, 0, Hq, D);
        k3 = cols(&sc->qkv, T, N, Hq * D, Hk, D);
        v3 = cols(&sc->qkv, T, N, (Hq + Hk) * D, Hk, D);
    } else {
        mlxn_tensor q = view(&sc->q, 2, T, Hq * D, 0), k = view(&sc->k, 2, T, Hk * D, 0),
                    v = view(&sc->v, 2, T, Hk * D, 0);
        MLXN_TRY(linear(st, &xn, &L->q, &q));
        MLXN_TRY(linear(st, &xn, &L->k, &k));
        MLXN_TRY(linear(st, &xn, &L->v, &v));
        q3 = view(&sc->q, 3, T, Hq, D), k3 = view(&sc->k, 3, T, Hk, D), v3 = view(&sc->v, 3, T, Hk, D);
    }

    if (c->qk_norm) {
        mlxn_tensor qn = view(&sc->qn, 3, T, Hq, D), kn = view(&sc->kn, 3, T, Hk, D);
        MLXN_TRY(norm(st, c, &q3, &L->q_norm, &qn));
        MLXN_TRY(norm(st, c, &k3, &L->k_norm, &kn));
        q3 = qn;
        k3 = kn;
    }
    mlxn_tensor pos_t = step_at(s, STEP_POS);
    const mlxn_tensor *at = s->step_mode ? &pos_t : NULL;
    mlxn_tensor q4 = batch1(qr), att = view(&sc->att, 3, Hq, T, D);
    mlxn_tensor att4 = batch1(att);
    if (s->step_mode && !s->tq) {
        /* rope, the cache writes and attention of a decode step (one
           kernel for the first two on a GPU, instead of two or three; none
           where the q/k/v product did them) */
        MLXN_TRY(attend_step(s, l, fold_rope, &q3, &k3, &v3, &qr, &q4, &att4));
    } else if (s->tq) {
        /* TurboQuant cache: the rope and quantize-on-append in one op (on a
           GPU one kernel, where rope, rope and append were three), then
           attention from the codes (session_tq.c) */
        mlxn_rope_params rp = rope_params(lc, L, s->pos, at, D);
        mlxn_tensor qh = swap01(q3), kh = swap01(k3), vt = swap01(v3);
        MLXN_TRY(model_tq_attention(s, l, &qh, &kh, &vt, &rp, &qr, &q4, at, &att4));
    } else {
        if (L->fused_qkv && !c->qk_norm) {
            /* q and k are neighbouring column ranges of the fused output: one
               rope call over their Hq + Hkv heads (the same rotation for both;
               one kernel fewer per layer), the keys landing after the queries */
            int64_t N = (Hq + 2 * Hk) * D;
            mlxn_tensor qk3 = cols(&sc->qkv, T, N, 0, Hq + Hk, D), qkr = view(&sc->qr, 3, Hq + Hk, T, D);
            MLXN_TRY(rope(st, lc, L, s->pos, at, &qk3, &qkr));
            kr = view(&sc->qr, 3, Hk, T, D);
            kr.offset += (size_t)(Hq * T * D) * sizeof(float);
        } else {
            MLXN_TRY(rope(st, lc, L, s->pos, at, &q3, &qr));
            MLXN_TRY(rope(st, lc, L, s->pos, at, &k3, &kr));
        }
        mlxn_tensor vt = swap01(v3);
        MLXN_TRY(attend(s, l, T, &kr, &vt, &q4, &att4));
    }

    /* [Hq, T, D] -> [T, Hq * D] for the output projection (one token: the
       same bytes, no copy) */
    mlxn_tensor a2 = view(&sc->att, 2, 1, Hq * D, 0), o = view(&sc->o, 2, T, H, 0);
    if (T > 1) {
        mlxn_tensor att_thd = swap01(att), att_t = view(&sc->att_t, 3, T, Hq, D);
        MLXN_TRY(mlxn_copy(st, &att_thd, &att_t));
        a2 = view(&sc->att_t, 2, T, Hq * D, 0);
    }
    /* the residual add in the output projection and the MLP's input norm
       in its gate/up product, where both run as one kernel each */
    *mlp_folds = !c->sandwich_norms && L->fused_gu && fuses(st, &L->o, T) && fuses(st, &L->gu, T);
    if (*mlp_folds) return linear_fused(st, c, &a2, &L->o, NULL, x, MLXN_GLU_NONE, NULL, &sc->o, x);
    MLXN_TRY(linear(st, &a2, &L->o, &o));
    /* the MLP's input norm: pre_feedforward_layernorm with sandwich norms
       (post_attention_layernorm then norms the branch), else
       post_attention_layernorm */
    if (c->sandwich_norms) {
        mlxn_tensor t = view(&sc->tmp, 2, T, H, 0);
        MLXN_TRY(norm(st, c, &o, &L->post_attn_norm, &t));
        return residual(st, c, x, &t, &L->mlp_norm, &xn);
    }
    return residual(st, c, x, &o, &L->mlp_norm, &xn);
}

/* Layer l's MLP sub-block on x [T, H], from xn = rms_norm(x, its input
 * norm) (made by attention's add), or from x itself when fold_in (the
 * gate/up product norms it and ends with the gated activation). Ends with
 * x += branch and, when next_w is given, xn = rms_norm(x, next_w): the
 * next layer's input norm or the final norm; with fold_out, with
 * x += branch alone, added by the down projection (whoever reads x next
 * norms it in its own product). */
static mlxn_status mlp(mlxn_session *s, int l, int64_t T, mlxn_tensor *x, const mlxn_tensor *next_w, bool fold_in,
                       bool fold_out) {
    const mlxn_model_config *c = &s->m->cfg;
    const model_layer *L = &s->m->layers[l];
    model_scratch *sc = &s->sc;
    mlxn_stream *st = s->st;
    int64_t H = c->hidden, I = c->inter;
    mlxn_tensor xn = view(&sc->xn, 2, T, H, 0);
    mlxn_tensor a = view(&sc->act, 2, T, I, 0);
    if (fold_in) {
        /* the norm before the gate/up product and the gated activation after it, in one op */
        MLXN_TRY(linear_fused(st, c, x, &L->gu, &L->mlp_norm, NULL,
                              c->gelu_mlp ? MLXN_GLU_GEGLU_TANH : MLXN_GLU_SWIGLU, &sc->xn, &sc->gu, &a));
    } else {
        mlxn_tensor g, u;
        if (L->fused_gu) {
            /* one matmul; gate and up are the two column halves of its [T, 2I]
               output, which the gated activation reads in place */
            mlxn_tensor gu = view(&sc->gu, 2, T, 2 * I, 0);
            MLXN_TRY(linear(st, &xn, &L->gu, &gu));
            g = view(&sc->gu, 2, T, I, 0);
            g.strides[0] = 2 * I;
            u = g;
            u.offset += (size_t)I * sizeof(float);
        } else {
            g = view(&sc->gate, 2, T, I, 0), u = view(&sc->up, 2, T, I, 0);
            MLXN_TRY(linear(st, &xn, &L->gate, &g));
            MLXN_TRY(linear(st, &xn, &L->up, &u));
        }
        if (c->gelu_mlp) MLXN_TRY(mlxn_geglu(st, &g, &u, MLXN_GELU_TANH, &a));
        else MLXN_TRY(mlxn_swiglu(st, &g, &u, &a));
    }
    if (fold_out) return linear_fused(st, c, &a, &L->down, NULL, x, MLXN_GLU_NONE, NULL, &sc->mlp_out, x);
    mlxn_tensor d = view(&sc->mlp_out, 2, T, H, 0);
    MLXN_TRY(linear(st, &a, &L->down, &d));
    if (c->sandwich_norms) {
        mlxn_tensor t = view(&sc->tmp, 2, T, H, 0);
        MLXN_TRY(norm(st, c, &d, &L->post_mlp_norm, &t));
        return residual(st, c, x, &t, next_w, &xn);
    }
    return residual(st, c, x, &d, next_w, &xn);
}

mlxn_status model_forward_chunk(mlxn_session *s, int64_t T, int64_t first_logit_row) {
    mlxn_model *m = s->m;
    const mlxn_model_config *c = &m->cfg;
    model_scratch *sc = &s->sc;
    mlxn_stream *st = s->st;
    int64_t H = c->hidden;

    mlxn_tensor ids = s->step_mode ? step_at(s, STEP_TOKEN) : view(&sc->ids, 1, T, 0, 0), x = view(&sc->x, 2, T, H, 0);
    const model_linear *E = &m->embed;
    if (E->quantized)
        MLXN_TRY(mlxn_quantized_embedding(st, &ids, &E->w, &E->scales,
                                          E->q.mode == MLXN_QUANT_AFFINE ? &E->biases : NULL, &E->q, &x));
    else
        MLXN_TRY(mlxn_embedding(st, &ids, &E->w, &x));
    if (c->embed_scale != 0) MLXN_TRY(mlxn_scale(st, &x, c->embed_scale, &x));

    int64_t n = T - first_logit_row;
    /* the last layer's add carries the final norm when every row of the
       chunk gives logits (decode, or all logits asked for); otherwise only
       the last rows are normed, apart, as before */
    bool final_fused = n == T;
    const model_linear *head = c->tied ? &m->embed : &m->head;
    /* Where each product runs as one kernel with the norm before it or the
       residual add after it (a decode step on a GPU: fuses()), the adds
       ride in the output and down projections and the norms in the q/k/v
       and gate/up products (the gated activation too, in the latter),
       instead of add_rms_norm and activation kernels apart. */
    bool normed = false;
    for (int l = 0; l < c->n_layers; l++) {
        const bool last = l + 1 == c->n_layers;
        const mlxn_tensor *next_w = !last ? &m->layers[l + 1].attn_norm : final_fused ? &m->final_norm : NULL;
        /* the next reader norms x in its own product (or nothing norms x next). Not the head: its
           thousands of row tiles would each redo the norm's work over x, which measured ~2.5 us
           slower than the one norm kernel it saves (docs/perf.md) */
        const bool next_folds = !last ? fold_qkv(st, &m->layers[l + 1], T) : !final_fused;
        const bool fold_out = !c->sandwich_norms && next_folds && fuses(st, &m->layers[l].down, T);
        bool mlp_folds = false;
        mlxn_status rc = attention(s, l, T, &x, normed, &mlp_folds);
        if (rc == MLXN_OK) rc = mlp(s, l, T, &x, fold_out ? NULL : next_w, mlp_folds, fold_out);
        if (rc != MLXN_OK) return mlxn_fail_context(rc, "layer %d: ", l);
        normed = !fold_out;
    }

    if (n <= 0) return MLXN_OK;
    mlxn_tensor xn = view(&sc->xn, 2, n, H, 0), logits = view(&sc->logits, 2, n, c->vocab, 0);
    if (!final_fused) {
        mlxn_tensor rows = view(&sc->x, 2, n, H, 0);
        rows.offset += (size_t)(first_logit_row * H) * sizeof(float);
        MLXN_TRY(norm(st, c, &rows, &m->final_norm, &xn));
    }
    return linear(st, &xn, head, &logits);
}
