/* Sessions: the KV caches, scratch activations, chunked prefill, reset
 * and truncation, single-token steps with their position in device memory,
 * and decode graphs.
 *
 * Two cache layouts (mlxn_session_params.kv_layout). The growing one: 
 * Caches (model_kv): per layer, keys and values of positions
 * [start, start + len) in slots [0, len) of [n_kv_heads, cap, head_dim]
 * buffers (f32, or bf16/f16 when the session asks: mlxn_copy rounds on the
 * way in), always in temporal order, so attention reads one strided view.
 *  - full-attention layers: start stays 0; the buffers grow in steps of 256
 *    slots (mlx-lm's KVCache step).
 *  - sliding-window layers (window W): when a chunk of T tokens does not
 *    fit, the oldest keys are dropped, never below the last W - 1, which is
 *    what mlx-lm's RotatingKVCache keeps before appending a chunk (and
 *    exactly what the first new query can see). Their buffers are sized
 *    max(2W, W - 1 + T) rounded to the step, so a layer holds between W - 1
 *    and about 2W tokens: bounded memory, and a truncation back by up to
 *    about W tokens still finds the keys it needs. Attention applies the
 *    window, so queries see exactly the keys mlx-lm's rotating cache shows
 *    them (its decode buffer holds exactly W keys in rotated slot order;
 *    ours holds them in order: the same set, summed in another order).
 * The fixed one (a GPU's default): every buffer allocated once, so nothing
 * moves and a captured step stays valid. Full-attention layers hold
 * position p in slot p for the whole context; sliding-window layers a ring
 * of `window` slots (position p in slot p % window), which is exactly what
 * a single query sees. A chunk of T > 1 tokens on a ring layer gathers the
 * window - 1 keys before it into scratch in order, appends its own, attends
 * there and writes its last keys into the ring (block.c).
 *
 * Single-token steps of the fixed layout read everything that changes per
 * token (the token, its position, and per layer the slot to write and the
 * number of slots to attend to) from a small step block in device memory,
 * uploaded by a staged copy (the host's copy is free again at once). So
 * every step queues the same ops with the same arguments, and on a GPU the
 * session captures one step (with the output head) into a graph and
 * replays it: per token the host fills the step block, queues its upload
 * and launches the graph. A step's token may also be the one already in
 * the device block's token slot (mlxn_session_forward_next: a sampler on
 * the device wrote it there), so a decode loop can queue the next step
 * before the token comes back to the host. The first step after the scratch is (re)made runs
 * op by op (so lazy initialization, such as cuBLAS's, happens outside the
 * capture); later steps are captured, once per attention span bucket (a
 * step attends over a power-of-two prefix of each layer's slots that holds
 * its keys, model_step_span, so short contexts do not pay for the whole
 * capacity's key splits): a few graphs as a context grows. A capture that
 * fails turns graphs off for the session, which then runs op by op.
 *
 * A session with a TurboQuant cache takes the same layout, step block and
 * graphs; session_tq.c allocates its caches (full-attention layers for the
 * whole context in both layouts; rings of `window` slots in the fixed one)
 * and its single-token steps read the step block's position. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "model/model_internal.h"

#define KV_STEP 256
#define DEFAULT_CHUNK 2048

static int64_t round_up(int64_t n, int64_t step) { return (n + step - 1) / step * step; }

/* ---- scratch ---------------------------------------------------------------- */

static void scratch_free(model_scratch *sc) {
    mlxn_tensor *all[] = {&sc->ids, &sc->x,   &sc->xn,    &sc->o,  &sc->mlp_out, &sc->tmp, &sc->q,
                          &sc->qn,  &sc->qr,  &sc->att,   &sc->att_t, &sc->k,    &sc->kn,  &sc->kr,
                          &sc->v,   &sc->gate, &sc->up,   &sc->act, &sc->logits, &sc->ring_k, &sc->ring_v,
                          &sc->qkv, &sc->gu};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->buf) mlxn_tensor_release(all[i]);
    sc->rows = 0;
}

static mlxn_status alloc1(mlxn_device *dev, mlxn_dtype dt, int64_t n, mlxn_tensor *t) {
    return mlxn_tensor_alloc(dev, dt, 1, &n, t);
}

/* Scratch for chunks of up to `rows` tokens (grow only). */
/* The captured step reads the scratch buffers: drop it when they move. */
static void graph_drop(mlxn_session *s) {
    for (int i = 0; i < MODEL_SPAN_BUCKETS; i++) {
        if (s->graph[i]) mlxn_stream_graph_free(s->st, s->graph[i]);
        s->graph[i] = NULL;
    }
    s->warm = false;
}

static mlxn_status scratch_reserve(mlxn_session *s, int64_t rows) {
    model_scratch *sc = &s->sc;
    if (rows <= sc->rows) return MLXN_OK;
    graph_drop(s);
    scratch_free(sc);
    const mlxn_model_config *c = &s->m->cfg;
    mlxn_device *dev = s->m->dev;
    int64_t H = c->hidden, qd = (int64_t)c->n_heads * c->head_dim, kd = (int64_t)c->n_kv_heads * c->head_dim;
    mlxn_status st = alloc1(dev, MLXN_DTYPE_I32, rows, &sc->ids);
    mlxn_tensor *hid[] = {&sc->x, &sc->xn, &sc->o, &sc->mlp_out, &sc->tmp};
    for (size_t i = 0; st == MLXN_OK && i < 5; i++) st = alloc1(dev, MLXN_DTYPE_F32, rows * H, hid[i]);
    /* the separate q/k/v (gate/up) outputs only when some layer runs them
       apart, the fused ones only when some layer is fused */
    bool split_qkv = false, split_gu = false, fused_qkv = false, fused_gu = false;
    for (int l = 0; l < c->n_layers; l++) {
        const model_layer *L = &s->m->layers[l];
        split_qkv |= !L->fused_qkv, fused_qkv |= L->fused_qkv;
        split_gu |= !L->fused_gu, fused_gu |= L->fused_gu;
    }
    mlxn_tensor *qs[] = {&sc->qn, &sc->att, &sc->att_t, &sc->q};
    for (size_t i = 0; st == MLXN_OK && i < 3u + split_qkv; i++) st = alloc1(dev, MLXN_DTYPE_F32, rows * qd, qs[i]);
    /* qr holds room for the keys after the queries: a fused layer without
       q/k norms ropes both in one call into [Hq + Hkv, T, D] (block.c) */
    if (st == MLXN_OK) st = alloc1(dev, MLXN_DTYPE_F32, rows * (qd + kd), &sc->qr);
    mlxn_tensor *ks[] = {&sc->kn, &sc->kr, &sc->k, &sc->v};
    for (size_t i = 0; st == MLXN_OK && i < 2u + 2 * split_qkv; i++)
        st = alloc1(dev, MLXN_DTYPE_F32, rows * kd, ks[i]);
    mlxn_tensor *is[] = {&sc->act, &sc->gate, &sc->up};
    for (size_t i = 0; st == MLXN_OK && i < 1u + 2 * split_gu; i++)
        st = alloc1(dev, MLXN_DTYPE_F32, rows * c->inter, is[i]);
    if (st == MLXN_OK && fused_qkv) st = alloc1(dev, MLXN_DTYPE_F32, rows * (qd + 2 * kd), &sc->qkv);
    if (st == MLXN_OK && fused_gu) st = alloc1(dev, MLXN_DTYPE_F32, rows * 2 * c->inter, &sc->gu);
    if (st == MLXN_OK) st = alloc1(dev, MLXN_DTYPE_F32, rows * c->vocab, &sc->logits);
    int64_t wmax = 0; /* dense rings only (TurboQuant: session_tq.c's chunk scratch) */
    for (int l = 0; s->fixed && !s->tq && l < c->n_layers; l++)
        if (s->kv[l].ring && s->kv[l].cap > wmax) wmax = s->kv[l].cap;
    if (wmax > 0) {
        int64_t shape[3] = {c->n_kv_heads, wmax - 1 + rows, c->head_dim};
        if (st == MLXN_OK) st = mlxn_tensor_alloc(dev, s->kv_dtype, 3, shape, &sc->ring_k);
        if (st == MLXN_OK) st = mlxn_tensor_alloc(dev, s->kv_dtype, 3, shape, &sc->ring_v);
    }
    if (st != MLXN_OK) {
        scratch_free(sc);
        return mlxn_fail_context(st, "session: scratch for %lld tokens: ", (long long)rows);
    }
    sc->rows = rows;
    return MLXN_OK;
}

/* ---- KV caches ---------------------------------------------------------------- */

static void kv_free(model_kv *kv) {
    if (kv->k.buf) mlxn_tensor_release(&kv->k);
    if (kv->v.buf) mlxn_tensor_release(&kv->v);
    kv->cap = kv->start = kv->len = 0;
}

/* Move the last `keep` positions of kv into fresh buffers of `cap` slots. */
static mlxn_status kv_rebuild(mlxn_session *s, model_kv *kv, int64_t cap, int64_t keep) {
    const mlxn_model_config *c = &s->m->cfg;
    int64_t shape[3] = {c->n_kv_heads, cap, c->head_dim};
    model_kv nk = {.cap = cap, .start = kv->start + kv->len - keep, .len = keep};
    mlxn_status st = mlxn_tensor_alloc(s->m->dev, s->kv_dtype, 3, shape, &nk.k);
    if (st == MLXN_OK) st = mlxn_tensor_alloc(s->m->dev, s->kv_dtype, 3, shape, &nk.v);
    if (st == MLXN_OK && keep > 0) {
        mlxn_tensor sk = kv->k, sv = kv->v, dk = nk.k, dv = nk.v;
        sk.shape[1] = sv.shape[1] = dk.shape[1] = dv.shape[1] = keep;
        size_t from = (size_t)((kv->len - keep) * kv->k.strides[1]) * mlxn_dtype_size(kv->k.dtype);
        sk.offset += from;
        sv.offset += from;
        st = mlxn_copy(s->st, &sk, &dk);
        if (st == MLXN_OK) st = mlxn_copy(s->st, &sv, &dv);
    }
    if (st != MLXN_OK) {
        kv_free(&nk);
        return mlxn_fail_context(st, "session: KV cache of %lld slots: ", (long long)cap);
    }
    kv_free(kv);
    *kv = nk;
    return MLXN_OK;
}

/* Fixed layout: every layer's buffers for the whole context (rings for
 * sliding-window layers; with a TurboQuant cache only the ring flags and
 * capacities: session_tq.c allocates its caches by them), and the step block. */
static mlxn_status kv_fixed_alloc(mlxn_session *s, bool dense) {
    const mlxn_model_config *c = &s->m->cfg;
    for (int l = 0; l < c->n_layers; l++) {
        model_kv *kv = &s->kv[l];
        int64_t W = c->layers[l].window;
        kv->ring = W > 0 && W < s->max_context;
        kv->cap = kv->ring ? W : s->max_context;
        if (!dense) continue;
        int64_t shape[3] = {c->n_kv_heads, kv->cap, c->head_dim};
        mlxn_status st = mlxn_tensor_alloc(s->m->dev, s->kv_dtype, 3, shape, &kv->k);
        if (st == MLXN_OK) st = mlxn_tensor_alloc(s->m->dev, s->kv_dtype, 3, shape, &kv->v);
        if (st != MLXN_OK)
            return mlxn_fail_context(st, "session: KV cache of layer %d (%lld slots, %s): ", l, (long long)kv->cap,
                                     mlxn_dtype_name(s->kv_dtype));
    }
    int64_t n = STEP_SIZE(c->n_layers);
    MLXN_TRY(alloc1(s->m->dev, MLXN_DTYPE_I32, n, &s->step_dev));
    void *h = NULL;
    MLXN_TRY(mlxn_host_alloc(s->m->dev, sizeof(int32_t) * (size_t)n, &h));
    s->step_host = h;
    return MLXN_OK;
}

/* Fixed layout: every layer holds the positions before `end` it keeps. */
static void kv_set_end(mlxn_session *s, int64_t end) {
    for (int l = 0; l < s->m->cfg.n_layers; l++) {
        model_kv *kv = &s->kv[l];
        kv->start = kv->ring && end > kv->cap ? end - kv->cap : 0;
        kv->len = end - kv->start;
    }
}

mlxn_status model_kv_reserve(mlxn_session *s, int64_t T) {
    if (s->fixed) return MLXN_OK; /* allocated for the whole context */
    const mlxn_model_config *c = &s->m->cfg;
    if (s->tq) return MLXN_OK; /* TurboQuant caches are allocated at creation (session_tq.c) */
    for (int l = 0; l < c->n_layers; l++) {
        model_kv *kv = &s->kv[l];
        int64_t W = c->layers[l].window;
        if (kv->len + T <= kv->cap) continue;
        if (W <= 0) {
            MLXN_TRY(kv_rebuild(s, kv, round_up(kv->len + T, KV_STEP), kv->len));
            continue;
        }
        /* sliding window: keep as much history as fits, never less than W - 1 */
        int64_t want = round_up(W - 1 + T > 2 * W ? W - 1 + T : 2 * W, KV_STEP);
        int64_t cap = kv->cap > want ? kv->cap : want;
        int64_t keep = cap - T < kv->len ? cap - T : kv->len;
        MLXN_TRY(kv_rebuild(s, kv, cap, keep));
    }
    return MLXN_OK;
}

/* ---- single-token steps -------------------------------------------------------------- */

/* Capture one step (the forward pass and the head; the step block's
 * upload stays outside: run_step queues it before each launch) into
 * s->graph[bucket]. */
static mlxn_status capture(mlxn_session *s, int bucket) {
    MLXN_TRY(mlxn_stream_capture_begin(s->st));
    s->step_mode = true;
    mlxn_status st = model_forward_chunk(s, 1, 0);
    s->step_mode = false;
    void *g = NULL;
    mlxn_status e = mlxn_stream_capture_end(s->st, &g);
    if (st == MLXN_OK) st = e;
    else if (g) mlxn_stream_graph_free(s->st, g);
    if (st == MLXN_OK) s->graph[bucket] = g;
    return st;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static mlxn_status run_step_(mlxn_session *s, const int32_t *token, int64_t first);

/* One token at s->pos in the fixed layout; first: 0 (logits) or 1 (none);
 * token NULL: the one already in the device block's token slot. */
static mlxn_status run_step(mlxn_session *s, const int32_t *token, int64_t first) {
    int64_t t0 = now_ns();
    mlxn_status st = run_step_(s, token, first);
    s->step_host_ns += now_ns() - t0;
    return st;
}

static mlxn_status run_step_(mlxn_session *s, const int32_t *token, int64_t first) {
    const mlxn_model_config *c = &s->m->cfg;
    int32_t *h = s->step_host;
    int64_t p = s->pos;
    h[STEP_TOKEN] = token ? *token : 0;
    h[STEP_POS] = (int32_t)p;
    for (int l = 0; l < c->n_layers; l++) {
        const model_kv *kv = &s->kv[l];
        h[STEP_SLOT(l)] = (int32_t)(kv->ring ? p % kv->cap : p);
        h[STEP_KV_LEN(l)] = (int32_t)(kv->ring && p + 1 > kv->cap ? kv->cap : p + 1);
    }
    if (s->tq) model_tq_mark_written(s, p + 1); /* a replay runs no host code of session_tq.c */
    /* the block goes up by a staged copy, queued behind the last step (which read the block), so the
     * host may rewrite h at once and need not wait for that step; without a token the slot is left as
     * the device wrote it */
    const size_t skip = token ? 0 : sizeof(int32_t) * (STEP_TOKEN + 1);
    const size_t bytes = sizeof(int32_t) * (size_t)STEP_SIZE(c->n_layers) - skip;
    MLXN_TRY(mlxn_stream_write(s->st, s->step_dev.buf, s->step_dev.offset + skip, (const char *)h + skip, bytes, 0));
    bool use_graph = s->graphs && first == 0;
    const int bk = model_step_bucket(p);
    if (use_graph && !s->graph[bk] && s->warm && capture(s, bk) != MLXN_OK) s->graphs = use_graph = false;
    if (use_graph && s->graph[bk]) {
        MLXN_TRY(mlxn_stream_graph_launch(s->st, s->graph[bk]));
        s->graph_replays++;
        return MLXN_OK;
    }
    s->step_mode = true;
    mlxn_status st = model_forward_chunk(s, 1, first);
    s->step_mode = false;
    if (st == MLXN_OK && first == 0) s->warm = true;
    return st;
}

/* Wait for the work a forward call left queued (logits left on the device),
 * reporting its device errors. */
static mlxn_status session_settle(mlxn_session *s) {
    if (!s->queued) return MLXN_OK;
    s->queued = false;
    return mlxn_stream_sync(s->st);
}

/* A call on a fixed-layout session that started at pos0 failed with st
 * after completing the tokens before `reached`: back to pos0, or reset. */
static mlxn_status fixed_failed(mlxn_session *s, int64_t pos0, int64_t reached, mlxn_status st) {
    /* a ring may already hold part of the failed chunk over positions
       that are still needed: start again (the API allows it) */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", mlxn_last_error());
    s->pos = reached;
    kv_set_end(s, s->pos);
    bool ring = false;
    for (int l = 0; l < s->m->cfg.n_layers; l++) ring |= s->kv[l].ring;
    if (ring || mlxn_session_truncate(s, pos0) != MLXN_OK) mlxn_session_reset(s);
    return mlxn_fail(st, "%s", msg);
}

/* ---- public API ------------------------------------------------------------------ */

mlxn_status mlxn_session_new(mlxn_model *m, const mlxn_session_params *p, mlxn_session **out) {
    if (!out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_new: out is NULL");
    *out = NULL;
    if (!m) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_new: model is NULL");
    if (p && (p->prefill_chunk < 0 || p->max_context < 0))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_new: prefill_chunk and max_context must be >= 0");
    if (p && p->kv_dtype != 0 && p->kv_dtype != MLXN_DTYPE_F32 && p->kv_dtype != MLXN_DTYPE_BF16 &&
        p->kv_dtype != MLXN_DTYPE_F16)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_new: kv_dtype %s is not f32, bf16 or f16",
                         mlxn_dtype_name(p->kv_dtype));
    if (p && p->stream && mlxn_stream_device(p->stream) != m->dev)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_new: the stream is not on the model's device");
    if (p && (p->kv_layout < 0 || p->kv_layout > 2))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_new: kv_layout %d is not 0 (default), 1 (growing) or 2 (fixed)",
                         p->kv_layout);
    if (p && (p->decode_graphs < -1 || p->decode_graphs > 1))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_new: decode_graphs %d is not -1, 0 or 1", p->decode_graphs);
    int64_t max_ctx = p && p->max_context ? p->max_context : m->cfg.max_pos;
    if (p && p->kv_layout == 2 && max_ctx <= 0)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                         "session_new: the fixed KV layout needs a bounded context (max_context; the model has no "
                         "max_position_embeddings)");
    if (max_ctx > 2147483647)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_new: max_context %lld is beyond 2^31", (long long)max_ctx);
    mlxn_session *s = calloc(1, sizeof *s);
    if (!s) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "session_new: out of memory");
    s->kv = calloc((size_t)m->cfg.n_layers, sizeof *s->kv);
    if (!s->kv) {
        free(s);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "session_new: out of memory");
    }
    s->m = m;
    s->st = p && p->stream ? p->stream : mlxn_device_stream(m->dev);
    s->chunk = p && p->prefill_chunk ? p->prefill_chunk : DEFAULT_CHUNK;
    s->max_context = max_ctx;
    bool gpu = mlxn_device_get_kind(m->dev) != MLXN_DEVICE_CPU;
    s->kv_dtype = p && p->kv_dtype ? p->kv_dtype : gpu ? MLXN_DTYPE_BF16 : MLXN_DTYPE_F32;
    int layout = p ? p->kv_layout : 0;
    bool tq = p && (p->kv_k_bits || p->kv_v_bits); /* TurboQuant: its own caches (session_tq.c) */
    s->fixed = layout == 2 || (layout == 0 && gpu && max_ctx > 0);
    const char *env = getenv("MLXN_CUDA_GRAPHS");
    int g = p ? p->decode_graphs : 0;
    s->graphs = s->fixed && mlxn_stream_has_graphs(s->st) && (g == 1 || (g == 0 && !(env && strcmp(env, "0") == 0)));
    if (s->fixed) {
        mlxn_status st = kv_fixed_alloc(s, !tq);
        if (st != MLXN_OK) {
            mlxn_session_free(s);
            return st;
        }
    }
    mlxn_status tqs = model_tq_new(s, p);
    if (tqs != MLXN_OK) {
        mlxn_session_free(s);
        return tqs;
    }
    *out = s;
    return MLXN_OK;
}

int64_t model_session_graph_replays(const mlxn_session *s) { return s ? s->graph_replays : 0; }
int64_t model_session_step_host_ns(const mlxn_session *s) { return s ? s->step_host_ns : 0; }

void mlxn_session_free(mlxn_session *s) {
    if (!s) return;
    (void)session_settle(s); /* nothing is freed under queued work; its error has nobody to go to */
    graph_drop(s);
    if (s->step_dev.buf) mlxn_tensor_release(&s->step_dev);
    mlxn_host_free(s->m->dev, s->step_host);
    for (int l = 0; l < s->m->cfg.n_layers; l++) kv_free(&s->kv[l]);
    free(s->kv);
    model_tq_free(s);
    scratch_free(&s->sc);
    free(s);
}

int64_t mlxn_session_position(const mlxn_session *s) { return s ? s->pos : 0; }

size_t mlxn_session_kv_bytes_per_token(const mlxn_session *s) {
    if (!s) return 0;
    if (s->tq) return model_tq_bytes_per_token(s);
    const mlxn_model_config *c = &s->m->cfg;
    return (size_t)2 * (size_t)c->n_layers * (size_t)c->n_kv_heads * (size_t)c->head_dim * mlxn_dtype_size(s->kv_dtype);
}

void mlxn_session_reset(mlxn_session *s) {
    if (!s) return;
    for (int l = 0; l < s->m->cfg.n_layers; l++) s->kv[l].start = s->kv[l].len = 0;
    if (s->tq) memset(s->tq_hi, 0, sizeof *s->tq_hi * (size_t)s->m->cfg.n_layers); /* rewritten from 0 */
    s->pos = 0;
}

mlxn_status mlxn_session_truncate(mlxn_session *s, int64_t n) {
    if (!s) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_truncate: session is NULL");
    if (n < 0 || n > s->pos)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_truncate: %lld is outside [0, %lld] (the tokens held)",
                         (long long)n, (long long)s->pos);
    const mlxn_model_config *c = &s->m->cfg;
    if (s->tq) {
        MLXN_TRY(model_tq_truncate_check(s, n));
        s->pos = n;
        return MLXN_OK;
    }
    /* a sliding layer must still hold every position the next query sees */
    for (int l = 0; l < c->n_layers; l++) {
        int64_t W = c->layers[l].window, need = n - (W - 1);
        if (need < 0) need = 0;
        if (W > 0 && s->kv[l].start > need)
            return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                             "session_truncate: layer %d (sliding window %lld) no longer holds position %lld "
                             "(it keeps %lld and later); reset the session and run the first %lld tokens again",
                             l, (long long)W, (long long)need, (long long)s->kv[l].start, (long long)n);
    }
    for (int l = 0; l < c->n_layers; l++) s->kv[l].len = n - s->kv[l].start;
    s->pos = n;
    return MLXN_OK;
}

mlxn_status mlxn_session_forward(mlxn_session *s, const int32_t *tokens, int64_t n, mlxn_logits_mode mode,
                                 float *logits) {
    if (!s) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_forward: session is NULL");
    if (n < 0 || (n > 0 && !tokens))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_forward: %lld tokens at %p", (long long)n,
                         (const void *)tokens);
    if (mode != MLXN_LOGITS_NONE && mode != MLXN_LOGITS_LAST && mode != MLXN_LOGITS_ALL)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_forward: unknown logits mode %d", (int)mode);
    if (mode == MLXN_LOGITS_ALL && !logits)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_forward: logits is NULL (MLXN_LOGITS_ALL)");
    if (mode != MLXN_LOGITS_NONE && n == 0)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_forward: logits of zero tokens");
    const mlxn_model_config *c = &s->m->cfg;
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_forward: token %d at index %lld is outside [0, %d)",
                             tokens[i], (long long)i, c->vocab);
    if (s->max_context > 0 && s->pos + n > s->max_context)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                         "session_forward: context overflow: %lld tokens held + %lld new > max_context %lld",
                         (long long)s->pos, (long long)n, (long long)s->max_context);
    if (s->pos + n > 2147483647)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_forward: positions beyond 2^31 are not supported");

    /* the last call's work first: the step block it read is rewritten below */
    MLXN_TRY(session_settle(s));
    int64_t pos0 = s->pos, done = 0;
    mlxn_status st = MLXN_OK;
    while (st == MLXN_OK && done < n) {
        int64_t T = n - done < s->chunk ? n - done : s->chunk;
        bool last = done + T == n;
        int64_t first = mode == MLXN_LOGITS_ALL ? 0 : (mode == MLXN_LOGITS_LAST && last ? T - 1 : T);
        st = scratch_reserve(s, T);
        if (st == MLXN_OK) st = model_kv_reserve(s, T);
        /* in order on the session's stream: ids up, the forward pass, logits
           down (the read waits for the stream and reports device errors) */
        if (st == MLXN_OK && s->fixed && T == 1) {
            st = run_step(s, tokens + done, first);
        } else {
            if (st == MLXN_OK)
                st = mlxn_stream_write(s->st, s->sc.ids.buf, s->sc.ids.offset, tokens + done,
                                       sizeof(int32_t) * (size_t)T, 0);
            if (st == MLXN_OK) st = model_forward_chunk(s, T, first);
        }
        if (st == MLXN_OK && T - first > 0 && !logits) {
            s->queued = true; /* MLXN_LOGITS_LAST into the device buffer only: no wait */
        } else if (st == MLXN_OK && T - first > 0) {
            float *dst = mode == MLXN_LOGITS_ALL ? logits + done * (int64_t)c->vocab : logits;
            st = mlxn_stream_read(s->st, s->sc.logits.buf, s->sc.logits.offset, dst,
                                  sizeof(float) * (size_t)((T - first) * c->vocab));
        } else if (st == MLXN_OK) {
            st = mlxn_stream_sync(s->st);
        }
        if (st == MLXN_OK) {
            s->pos += T;
            done += T;
            if (s->fixed) kv_set_end(s, s->pos);
        }
    }
    if (st != MLXN_OK && s->fixed) return fixed_failed(s, pos0, pos0 + done, st);
    if (st != MLXN_OK) {
        /* back to where the call started (the layers may have appended part of a chunk) */
        s->pos = pos0 + done;
        for (int l = 0; l < c->n_layers; l++) s->kv[l].len = s->pos - s->kv[l].start;
        mlxn_status keep = st;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", mlxn_last_error());
        if (mlxn_session_truncate(s, pos0) != MLXN_OK) mlxn_session_reset(s);
        return mlxn_fail(keep, "%s", msg);
    }
    return MLXN_OK;
}

mlxn_status mlxn_session_token_slot(mlxn_session *s, mlxn_tensor *out) {
    if (!s || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_token_slot: NULL argument");
    if (!s->fixed)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                         "session_token_slot: needs the fixed KV layout (kv_layout 2; a GPU session's default)");
    int64_t shape[1] = {1};
    return mlxn_tensor_view(s->step_dev.buf, MLXN_DTYPE_I32, 1, shape,
                            s->step_dev.offset + sizeof(int32_t) * STEP_TOKEN, out);
}

mlxn_status mlxn_session_forward_next(mlxn_session *s) {
    if (!s) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_forward_next: session is NULL");
    if (!s->fixed)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                         "session_forward_next: needs the fixed KV layout (kv_layout 2; a GPU session's default)");
    if (s->max_context > 0 && s->pos + 1 > s->max_context)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                         "session_forward_next: context overflow: %lld tokens held + 1 new > max_context %lld",
                         (long long)s->pos, (long long)s->max_context);
    if (s->pos + 1 > 2147483647)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "session_forward_next: positions beyond 2^31 are not supported");
    /* No settle: the step block's upload is queued behind the last call's work (run_step), and the
     * scratch, once made, only grows, so a one-row reservation frees nothing queued work still uses.
     * Only a session without scratch (new, or after a failed reservation) makes it, after a settle. */
    if (s->sc.rows < 1) MLXN_TRY(session_settle(s));
    const int64_t pos0 = s->pos;
    mlxn_status st = scratch_reserve(s, 1);
    if (st == MLXN_OK) st = run_step(s, NULL, 0);
    if (st != MLXN_OK) return fixed_failed(s, pos0, pos0, st);
    s->queued = true; /* the logits stay on the device, as MLXN_LOGITS_LAST with NULL */
    s->pos += 1;
    kv_set_end(s, s->pos);
    return MLXN_OK;
}
