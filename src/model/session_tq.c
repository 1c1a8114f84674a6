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

/* The cache params of layer l (capacity as described at the top). */
static mlxn_tq_cache_params layer_params(const mlxn_session *s, int l, int k_bits, int v_bits) {
    const mlxn_model_config *c = &s->m->cfg;
    int64_t W = c->layers[l].window, cap = s->max_context;
    if (W > 0) {
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
    free(s->tq);
    free(s->tq_hi);
    s->tq = NULL;
    s->tq_hi = NULL;
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

mlxn_status model_tq_attention(mlxn_session *s, int l, const mlxn_tensor *k, const mlxn_tensor *v,
                               const mlxn_tensor *q, mlxn_tensor *out) {
    const mlxn_model_config *c = &s->m->cfg;
    int64_t T = k->shape[1];
    /* a failed append may have overwritten ring slots: count them as written first */
    if (s->tq_hi[l] < s->pos + T) s->tq_hi[l] = s->pos + T;
    MLXN_TRY(mlxn_tq_append(s->st, s->tq[l], k, v, s->pos, NULL));
    mlxn_tq_sdpa_params p = {.scale = c->attn_scale, .causal = true, .window = c->layers[l].window, .pos = s->pos};
    return mlxn_tq_sdpa(s->st, s->tq[l], q, &p, out);
}

size_t model_tq_bytes_per_token(const mlxn_session *s) {
    size_t sum = 0;
    for (int l = 0; l < s->m->cfg.n_layers; l++) sum += mlxn_tq_bytes_per_token(mlxn_tq_cache_get_params(s->tq[l]));
    return sum;
}
