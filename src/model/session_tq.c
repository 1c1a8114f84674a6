/* Sessions with a TurboQuant KV cache (mlxn/turboquant.h,
 * docs/turboquant.md): naming the cache kind, validating and allocating one
 * cache per layer at session creation, the attention step of the block,
 * and what truncation may do.
 *
 * Capacity: a full-attention layer gets a cache of max_context positions
 * (a TurboQuant cache does not grow), so such a session needs a bounded
 * context. A sliding-window layer (window W) gets a ring of
 * max(2W, W - 1 + prefill_chunk) positions (no more than max_context):
 * position p lives in slot p % capacity, every chunk fits with the W - 1
 * keys before it, and a truncation back by up to about W tokens still
 * finds its keys, the same bounds as the dense rotating cache.
 *
 * In the fixed KV layout (session.c; a GPU's default) a sliding-window
 * layer's ring has exactly `window` slots instead, like the dense fixed
 * layout's: what a single query sees. A single-token step then reads its
 * position from the step block (an i32 in device memory) for both append
 * (slot pos % capacity) and attention (the keys held: positions
 * [max(0, pos + 1 - capacity), pos + 1)), so every step queues the same ops
 * with the same arguments and a GPU replays one captured graph per token.
 * A chunk of T > 1 tokens on such a ring does not fit beside the window - 1
 * keys before it, so it runs in a scratch cache (tq_chunk, shared by the
 * layers, of the layer's rotation): the h <= window - 1 positions before the
 * chunk are copied there from the ring (codes and norms as they are), the
 * chunk is appended after them and attends there, and its last min(T,
 * window) positions are copied into the ring. Attention sees the same keys
 * in the same order as in a ring that never wraps.
 *
 * The caches do not know which positions they hold; the session passes its
 * position to append and attention. tq_hi[l] (one past the highest
 * position appended to layer l since the last reset; truncation does not
 * lower it) bounds what a ring has
 * overwritten: it holds positions [tq_hi - capacity, n) after a truncation
 * to n, so truncation re-encodes nothing and only checks that the window
 * of position n is still there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/internal.h"
#include "model/model_internal.h"
#include "mlxn/turboquant.h"

mlxn_status mlxn_kv_cache_parse(const char *name, mlxn_session_params *p) {
    if (!name || !p) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "kv_cache_parse: name or params is NULL");
    static const struct {
        const char *name;
        mlxn_dtype dt;
    } dense[] = {{"f32", MLXN_DTYPE_F32}, {"f16", MLXN_DTYPE_F16}, {"bf16", MLXN_DTYPE_BF16}};
    for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++)
        if (!strcmp(name, dense[i].name)) {
            p->kv_dtype = dense[i].dt;
            p->kv_k_bits = p->kv_v_bits = 0;
            return MLXN_OK;
        }
    int k = 0, v = 0;
    if (!strcmp(name, "tq")) k = v = MLXN_KV_TQ_DEFAULT_BITS;
    else if (!strncmp(name, "tq", 2) && name[2] >= '0' && name[2] <= '9' && !name[3]) k = v = name[2] - '0';
    else if (name[0] == 'k' && name[1] >= '0' && name[1] <= '9' && name[2] == 'v' && name[3] >= '0' &&
             name[3] <= '9' && !name[4]) {
        k = name[1] - '0';
        v = name[3] - '0';
    } else
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "KV cache '%s' is not known: use f32, f16, bf16, tq (tq%d), "
                         "tq2..tq8, or kXvY (key and value bits 2..8, e.g. k4v8)", name, MLXN_KV_TQ_DEFAULT_BITS);
    if (k < 2 || k > 8 || v < 2 || v > 8)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "KV cache '%s': TurboQuant widths are 2..8 bits (keys %d, values %d)",
                         name, k, v);
    p->kv_dtype = MLXN_DTYPE_F32;
    p->kv_k_bits = k;
    p->kv_v_bits = v;
    return MLXN_OK;
}

/* The cache params of layer l (capacity as described at the top; in the
 * fixed layout, session.c has set kv[l].ring and kv[l].cap). */
static mlxn_tq_cache_params layer_params(const mlxn_session *s, int l, int k_bits, int v_bits) {
    const mlxn_model_config *c = &s->m->cfg;
    int64_t W = c->layers[l].window, cap = s->max_context;
    if (s->fixed) {
        if (s->kv[l].ring) cap = s->kv[l].cap;
    } else if (W > 0) {
        int64_t ring = W - 1 + s->chunk > 2 * W ? W - 1 + s->chunk : 2 * W;
        if (cap <= 0 || ring < cap) cap = ring;
    }
    return (mlxn_tq_cache_params){c->n_kv_heads, cap, c->head_dim, k_bits, v_bits, mlxn_tq_seed(l)};
}

mlxn_status model_tq_new(mlxn_session *s, const mlxn_session_params *p) {
    if (!p || (p->kv_k_bits == 0 && p->kv_v_bits == 0)) return MLXN_OK;
    const mlxn_model_config *c = &s->m->cfg;
    int kb = p->kv_k_bits, vb = p->kv_v_bits;
    if (kb < 2 || kb > 8 || vb < 2 || vb > 8)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                         "session_new: TurboQuant KV cache widths are 2..8 bits, got keys %d and values %d", kb, vb);
    mlxn_tq_cache_params p0 = layer_params(s, 0, kb, vb);
    p0.capacity = 1;
    if (mlxn_tq_check_params(&p0) != MLXN_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", mlxn_last_error());
        return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                         "session_new: TurboQuant KV cache (k%dv%d) on this model: %s (the model's head_dim is %d; "
                         "use a dense cache: f32, bf16 or f16)", kb, vb, why, c->head_dim);
    }
    const mlxn_backend_i *be = s->m->dev->be;
    if (!be->tq_append || !be->tq_sdpa)
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED,
                         "session_new: the %s backend has no TurboQuant kernels yet: use a dense KV cache "
                         "(f32, bf16 or f16)", be->name);
    bool full = false;
    for (int l = 0; l < c->n_layers; l++) full |= c->layers[l].window <= 0;
    if (full && s->max_context <= 0)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                         "session_new: a TurboQuant KV cache needs a bounded context (the model states no "
                         "max_position_embeddings): set max_context");
    size_t nl = c->n_layers > 0 ? (size_t)c->n_layers : 1;
    s->tq = calloc(nl, sizeof *s->tq);
    s->tq_hi = calloc(nl, sizeof *s->tq_hi);
    if (!s->tq || !s->tq_hi) {
        model_tq_free(s);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "session_new: out of memory");
    }
    for (int l = 0; l < c->n_layers; l++) {
        mlxn_tq_cache_params lp = layer_params(s, l, kb, vb);
        mlxn_status st = mlxn_tq_cache_new(s->m->dev, &lp, &s->tq[l]);
        if (st != MLXN_OK) {
            model_tq_free(s);
            return mlxn_fail_context(st, "session_new: TurboQuant KV cache of layer %d (%lld positions): ", l,
                                     (long long)lp.capacity);
        }
    }
    return MLXN_OK;
}

void model_tq_free(mlxn_session *s) {
    if (s->tq)
        for (int l = 0; l < s->m->cfg.n_layers; l++) mlxn_tq_cache_free(s->tq[l]);
    mlxn_tq_cache_free(s->tq_chunk);
    free(s->tq);
    free(s->tq_hi);
    s->tq = NULL;
    s->tq_hi = NULL;
    s->tq_chunk = NULL;
}

void model_tq_mark_written(mlxn_session *s, int64_t end) {
    for (int l = 0; l < s->m->cfg.n_layers; l++)
        if (s->tq_hi[l] < end) s->tq_hi[l] = end;
}

mlxn_status model_tq_truncate_check(const mlxn_session *s, int64_t n) {
    const mlxn_model_config *c = &s->m->cfg;
    for (int l = 0; l < c->n_layers; l++) {
        int64_t W = c->layers[l].window, cap = mlxn_tq_cache_get_params(s->tq[l])->capacity;
        int64_t need = n - (W - 1), oldest = s->tq_hi[l] - cap;
        if (need < 0) need = 0;
        if (oldest < 0) oldest = 0;
        if (W > 0 && oldest > need)
            return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                             "session_truncate: layer %d (sliding window %lld, TurboQuant ring of %lld) no longer "
                             "holds position %lld (it keeps %lld and later); reset the session and run the first "
                             "%lld tokens again",
                             l, (long long)W, (long long)cap, (long long)need, (long long)oldest, (long long)n);
    }
    return MLXN_OK;
}

/* Slots [from, from + n) of a cache tensor as an f32 view: norms f32 [H,
 * cap] give [H, n]; codes u8 [H, cap, row] give [H, n, row / 4], the code
 * bytes as 4-byte words (a row is a multiple of 8 bytes at every head dim
 * the cache takes), because mlxn_copy moves f32 only; a copy between two
 * views of one dtype moves the bytes unchanged (memcpy on the CPU, a
 * device copy or plain 32-bit loads and stores on CUDA). */
static mlxn_tensor slots_f32(const mlxn_tensor *t, int64_t row, int64_t from, int64_t n) {
    mlxn_tensor v = *t;
    const int64_t cap = t->shape[1], w = row / 4;
    v.dtype = MLXN_DTYPE_F32;
    v.shape[1] = n;
    if (t->ndim == 3) {
        v.shape[2] = w;
        v.strides[0] = cap * w;
        v.strides[1] = w;
        v.strides[2] = 1;
        v.offset += (size_t)(from * row);
    } else {
        v.offset += (size_t)from * sizeof(float);
    }
    return v;
}

/* Copy the codes and norms of keys and values of positions [a, a + n) of
 * src (slots a % capacity ...) to positions [b, b + n) of dst (slots
 * b % capacity ...): runs split wherever either ring wraps. */
static mlxn_status tq_move(mlxn_stream *st, const mlxn_tq_cache *src, int64_t a, mlxn_tq_cache *dst, int64_t b,
                           int64_t n) {
    const int64_t sc = src->p.capacity, dc = dst->p.capacity;
    if (src->k_row % 4 || src->v_row % 4 || src->k_row != dst->k_row || src->v_row != dst->v_row)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "session: TurboQuant code rows of %lld / %lld bytes cannot be moved",
                         (long long)src->k_row, (long long)src->v_row);
    while (n > 0) {
        const int64_t sa = a % sc, db = b % dc;
        int64_t len = n;
        if (len > sc - sa) len = sc - sa;
        if (len > dc - db) len = dc - db;
        const mlxn_tensor *from[4] = {&src->k_codes, &src->v_codes, &src->k_norms, &src->v_norms};
        const mlxn_tensor *to[4] = {&dst->k_codes, &dst->v_codes, &dst->k_norms, &dst->v_norms};
        const int64_t row[4] = {src->k_row, src->v_row, 0, 0};
        for (int i = 0; i < 4; i++) {
            mlxn_tensor x = slots_f32(from[i], row[i], sa, len), y = slots_f32(to[i], row[i], db, len);
            MLXN_TRY(mlxn_copy(st, &x, &y));
        }
        a += len;
        b += len;
        n -= len;
    }
    return MLXN_OK;
}

/* The fixed layout's chunk scratch: a cache of at least `need` positions
 * (grow only; sized for the largest ring's window - 1 + the scratch rows,
 * so it is made once per scratch size). */
static mlxn_status chunk_cache(mlxn_session *s, int64_t need) {
    if (s->tq_chunk && s->tq_chunk->p.capacity >= need) return MLXN_OK;
    mlxn_tq_cache_free(s->tq_chunk);
    s->tq_chunk = NULL;
    int64_t wmax = 1;
    for (int l = 0; l < s->m->cfg.n_layers; l++)
        if (s->kv[l].ring && s->kv[l].cap > wmax) wmax = s->kv[l].cap;
    mlxn_tq_cache_params p = *mlxn_tq_cache_get_params(s->tq[0]);
    p.capacity = wmax - 1 + s->sc.rows;
    if (p.capacity < need) p.capacity = need;
    mlxn_status st = mlxn_tq_cache_new(s->m->dev, &p, &s->tq_chunk);
    if (st != MLXN_OK)
        return mlxn_fail_context(st, "session: TurboQuant chunk scratch of %lld positions: ", (long long)p.capacity);
    return MLXN_OK;
}

/* Fixed layout, a chunk of T tokens (k, v [Hkv, T, D]) at s->pos on layer
 * l's ring of `window` slots: through the chunk scratch (top of file). */
static mlxn_status ring_chunk(mlxn_session *s, int l, const mlxn_tensor *q, const mlxn_tensor *k,
                              const mlxn_tensor *v, const mlxn_rope_params *rp, mlxn_tensor *qr, const mlxn_tensor *q4,
                              mlxn_tq_sdpa_params *p, mlxn_tensor *out) {
    mlxn_tq_cache *ring = s->tq[l];
    const int64_t T = k->shape[1], pos = s->pos, W = p->window, cap = ring->p.capacity;
    const int64_t h = pos < W - 1 ? pos : W - 1; /* keys before the chunk that its first query sees */
    MLXN_TRY(chunk_cache(s, h + T));
    /* the scratch seen through this layer's rotation */
    mlxn_tq_cache view = *s->tq_chunk;
    view.p.seed = ring->p.seed;
    view.signs = ring->signs;
    /* position pos - h + i at scratch position i: attention depends on
       relative positions only */
    MLXN_TRY(tq_move(s->st, ring, pos - h, &view, 0, h));
    /* the rope at the chunk's own positions (rp), the codes at h */
    MLXN_TRY(mlxn_tq_rope_append(s->st, &view, q, k, v, rp, qr, h, NULL));
    p->pos = h;
    MLXN_TRY(mlxn_tq_sdpa(s->st, &view, q4, p, out));
    const int64_t m = T < cap ? T : cap;
    return tq_move(s->st, &view, h + T - m, ring, pos + T - m, m);
}

mlxn_status model_tq_attention(mlxn_session *s, int l, const mlxn_tensor *q, const mlxn_tensor *k,
                               const mlxn_tensor *v, const mlxn_rope_params *rp, mlxn_tensor *qr,
                               const mlxn_tensor *q4, const mlxn_tensor *at, mlxn_tensor *out) {
    const mlxn_model_config *c = &s->m->cfg;
    int64_t T = k->shape[1];
    /* a failed append may have overwritten ring slots: count them as written first */
    if (s->tq_hi[l] < s->pos + T) s->tq_hi[l] = s->pos + T;
    mlxn_tq_sdpa_params p = {.scale = c->attn_scale, .causal = true, .window = c->layers[l].window};
    if (at) {
        /* a single-token step: the position is the step block's (device
           memory), so nothing that changes per token is an argument here */
        MLXN_TRY(mlxn_tq_rope_append(s->st, s->tq[l], q, k, v, rp, qr, 0, at));
        p.pos_tensor = at;
        return mlxn_tq_sdpa(s->st, s->tq[l], q4, &p, out);
    }
    if (s->fixed && s->kv[l].ring) return ring_chunk(s, l, q, k, v, rp, qr, q4, &p, out);
    MLXN_TRY(mlxn_tq_rope_append(s->st, s->tq[l], q, k, v, rp, qr, s->pos, NULL));
    p.pos = s->pos;
    return mlxn_tq_sdpa(s->st, s->tq[l], q4, &p, out);
}

size_t model_tq_bytes_per_token(const mlxn_session *s) {
    size_t sum = 0;
    for (int l = 0; l < s->m->cfg.n_layers; l++) sum += mlxn_tq_bytes_per_token(mlxn_tq_cache_get_params(s->tq[l]));
    return sum;
}
