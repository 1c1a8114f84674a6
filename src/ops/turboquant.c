/* The TurboQuant KV cache: parameter checks, allocation, and the ops
 * (append, the fused rope + append of a step, attention, dequantize), each
 * validated once here and then run by the device's backend (a backend
 * without them reports "not built yet"). Format: src/quant/tq_layout.h. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/tq_cache.h"
#include "ops/op_check.h"
#include "quant/tq_layout.h"

uint32_t mlxn_tq_seed(int layer) { return mlxn_tq_layer_seed(layer); }

mlxn_status mlxn_tq_check_params(const mlxn_tq_cache_params *p) {
    if (!p) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "turboquant: params are NULL");
    if (!mlxn_tq_dim_ok(p->head_dim))
        return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                         "turboquant: head_dim %d is not supported (needs a power of two from %d to %d)",
                         p->head_dim, MLXN_TQ_MIN_HEAD_DIM, MLXN_TQ_MAX_HEAD_DIM);
    if (!mlxn_tq_bits_ok(p->k_bits))
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "turboquant: key width %d bits is not supported (2..8)", p->k_bits);
    if (!mlxn_tq_bits_ok(p->v_bits))
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "turboquant: value width %d bits is not supported (2..8)",
                         p->v_bits);
    if (p->n_kv_heads < 1)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "turboquant: n_kv_heads must be >= 1, got %d", p->n_kv_heads);
    if (p->capacity < 1)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "turboquant: capacity must be >= 1, got %lld",
                         (long long)p->capacity);
    return MLXN_OK;
}

size_t mlxn_tq_bytes_per_token(const mlxn_tq_cache_params *p) {
    if (!p || !mlxn_tq_dim_ok(p->head_dim) || !mlxn_tq_bits_ok(p->k_bits) || !mlxn_tq_bits_ok(p->v_bits) ||
        p->n_kv_heads < 1)
        return 0;
    int64_t per_head = mlxn_tq_code_bytes(p->head_dim, p->k_bits) + mlxn_tq_code_bytes(p->head_dim, p->v_bits) +
                       2 * (int64_t)sizeof(float);
    return (size_t)(per_head * p->n_kv_heads);
}

static void tensor_drop(mlxn_tensor *t) {
    if (t->buf) mlxn_buffer_free(t->buf);
    memset(t, 0, sizeof *t);
}

void mlxn_tq_cache_free(mlxn_tq_cache *c) {
    if (!c) return;
    tensor_drop(&c->k_codes);
    tensor_drop(&c->v_codes);
    tensor_drop(&c->k_norms);
    tensor_drop(&c->v_norms);
    tensor_drop(&c->signs);
    free(c);
}

/* A zeroed tensor of `shape` over a buffer with `pad` spare bytes after it. */
static mlxn_status tensor_zeroed(mlxn_device *dev, mlxn_dtype dt, int ndim, const int64_t *shape, size_t pad,
                                 mlxn_tensor *t) {
    size_t bytes = mlxn_dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        if ((uint64_t)shape[i] > (SIZE_MAX - pad) / 2 / bytes)
            return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "turboquant: a cache tensor is too large for this machine");
        bytes *= (size_t)shape[i];
    }
    mlxn_buffer *buf = NULL;
    MLXN_TRY(mlxn_buffer_new(dev, bytes + pad, &buf));
    mlxn_status st = mlxn_tensor_view(buf, dt, ndim, shape, 0, t);
    void *zero = st == MLXN_OK ? calloc(1, bytes + pad) : NULL;
    if (st == MLXN_OK && !zero) st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "turboquant: out of host memory");
    if (st == MLXN_OK) st = mlxn_buffer_write(buf, 0, zero, bytes + pad);
    free(zero);
    if (st != MLXN_OK) {
        mlxn_buffer_free(buf);
        memset(t, 0, sizeof *t);
    }
    return st;
}

mlxn_status mlxn_tq_cache_new(mlxn_device *dev, const mlxn_tq_cache_params *p, mlxn_tq_cache **out) {
    if (!out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tq_cache_new: out is NULL");
    *out = NULL;
    if (!dev) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tq_cache_new: device is NULL");
    MLXN_TRY(mlxn_tq_check_params(p));
    mlxn_tq_cache *c = calloc(1, sizeof *c);
    if (!c) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tq_cache_new: out of memory");
    c->dev = dev;
    c->p = *p;
    c->k_row = mlxn_tq_code_bytes(p->head_dim, p->k_bits);
    c->v_row = mlxn_tq_code_bytes(p->head_dim, p->v_bits);
    const int64_t H = p->n_kv_heads, C = p->capacity, D = p->head_dim;
    /* the largest tensor, codes of 8 bits, must have a size_t byte count */
    if ((uint64_t)C > SIZE_MAX / 4 / (uint64_t)(H * (D + 4))) {
        free(c);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tq_cache_new: capacity %lld x %lld kv heads is too large",
                         (long long)C, (long long)H);
    }
    const int64_t ks[3] = {H, C, c->k_row}, vs[3] = {H, C, c->v_row}, ns[2] = {H, C};
    mlxn_status st = tensor_zeroed(dev, MLXN_DTYPE_U8, 3, ks, MLXN_TQ_PAD, &c->k_codes);
    if (st == MLXN_OK) st = tensor_zeroed(dev, MLXN_DTYPE_U8, 3, vs, MLXN_TQ_PAD, &c->v_codes);
    if (st == MLXN_OK) st = tensor_zeroed(dev, MLXN_DTYPE_F32, 2, ns, 0, &c->k_norms);
    if (st == MLXN_OK) st = tensor_zeroed(dev, MLXN_DTYPE_F32, 2, ns, 0, &c->v_norms);
    if (st == MLXN_OK) st = tensor_zeroed(dev, MLXN_DTYPE_F32, 1, &D, 0, &c->signs);
    if (st == MLXN_OK) {
        float sg[MLXN_TQ_MAX_HEAD_DIM];
        for (int64_t i = 0; i < D; i++) sg[i] = mlxn_tq_sign(p->seed, i);
        st = mlxn_buffer_write(c->signs.buf, 0, sg, (size_t)D * sizeof(float));
    }
    if (st != MLXN_OK) {
        mlxn_tq_cache_free(c);
        return mlxn_fail_context(st, "tq_cache_new: %lld slots x %d kv heads: ", (long long)C, p->n_kv_heads);
    }
    *out = c;
    return MLXN_OK;
}

const mlxn_tq_cache_params *mlxn_tq_cache_get_params(const mlxn_tq_cache *c) { return c ? &c->p : NULL; }

size_t mlxn_tq_cache_bytes(const mlxn_tq_cache *c) {
    if (!c) return 0;
    return mlxn_buffer_size(c->k_codes.buf) + mlxn_buffer_size(c->v_codes.buf) + mlxn_buffer_size(c->k_norms.buf) +
           mlxn_buffer_size(c->v_norms.buf) + mlxn_buffer_size(c->signs.buf);
}

/* The cache and stream belong together, and the backend has the op. */
static mlxn_status check_cache(const char *op, mlxn_stream *s, const mlxn_tq_cache *c, int has_op) {
    MLXN_TRY(op_check_stream(op, s));
    if (!c) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: cache is NULL", op);
    if (c->dev != s->dev)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: the cache lives on %s, the stream on %s", op, c->dev->name,
                         s->dev->name);
    if (!has_op)
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "%s: not built yet for the %s backend", op, s->dev->be->name);
    return MLXN_OK;
}

static mlxn_status check_pos(const char *op, mlxn_stream *s, int64_t pos, const mlxn_tensor *pt) {
    if (pt) {
        MLXN_TRY(op_check_tensor(op, "pos_tensor", s, pt));
        MLXN_TRY(op_check_dtype(op, "pos_tensor", pt, DT(MLXN_DTYPE_I32)));
        if (mlxn_tensor_numel(pt) != 1) return mlxn_fail(MLXN_ERR_SHAPE, "%s: pos_tensor must hold one i32", op);
        return MLXN_OK;
    }
    if (pos < 0) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: pos must be >= 0, got %lld", op, (long long)pos);
    return MLXN_OK;
}

/* t is f32 [H, T, D] with H and D fixed; returns T. */
static mlxn_status check_kv(const char *op, const char *arg, mlxn_stream *s, const mlxn_tq_cache *c,
                            const mlxn_tensor *t, int64_t *T) {
    MLXN_TRY(op_check_tensor(op, arg, s, t));
    MLXN_TRY(op_check_dtype(op, arg, t, DT_F32));
    if (t->ndim != 3 || t->shape[0] != c->p.n_kv_heads || t->shape[2] != c->p.head_dim || t->shape[1] < 1 ||
        t->shape[1] > c->p.capacity) {
        char d[96];
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s is %s, expected [%d, T, %d] with 1 <= T <= capacity %lld", op, arg,
                         mlxn_tensor_describe(t, d, sizeof d), c->p.n_kv_heads, c->p.head_dim,
                         (long long)c->p.capacity);
    }
    *T = t->shape[1];
    return MLXN_OK;
}

mlxn_status mlxn_tq_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *k, const mlxn_tensor *v,
                           int64_t pos, const mlxn_tensor *pos_tensor) {
    const char *op = "tq_append";
    MLXN_TRY(check_cache(op, s, c, s && s->dev && s->dev->be->tq_append != NULL));
    int64_t tk = 0, tv = 0;
    MLXN_TRY(check_kv(op, "k", s, c, k, &tk));
    MLXN_TRY(check_kv(op, "v", s, c, v, &tv));
    if (tk != tv) return mlxn_fail(MLXN_ERR_SHAPE, "tq_append: k has %lld tokens, v %lld", (long long)tk, (long long)tv);
    MLXN_TRY(check_pos(op, s, pos, pos_tensor));
    return s->dev->be->tq_append(s, c, k, v, pos, pos_tensor);
}

mlxn_status mlxn_tq_rope_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *q, const mlxn_tensor *k,
                                const mlxn_tensor *v, const mlxn_rope_params *p, mlxn_tensor *q_out, int64_t pos,
                                const mlxn_tensor *pos_tensor) {
    const char *op = "tq_rope_append";
    char d1[96];
    MLXN_TRY(check_cache(op, s, c, s && s->dev && s->dev->be->tq_rope_append != NULL));
    if (!p) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tq_rope_append: rope params are NULL");
    int64_t tk = 0, tv = 0;
    MLXN_TRY(check_kv(op, "k", s, c, k, &tk));
    MLXN_TRY(check_kv(op, "v", s, c, v, &tv));
    if (tk != tv)
        return mlxn_fail(MLXN_ERR_SHAPE, "tq_rope_append: k has %lld tokens, v %lld", (long long)tk, (long long)tv);
    MLXN_TRY(op_check_tensor(op, "q", s, q));
    MLXN_TRY(op_check_dtype(op, "q", q, DT_F32));
    if (q->ndim != 3 || q->shape[0] < 1 || q->shape[1] != tk || q->shape[2] != c->p.head_dim)
        return mlxn_fail(MLXN_ERR_SHAPE, "tq_rope_append: q is %s, expected [Hq, %lld, %d] (k's tokens, the head dim)",
                         mlxn_tensor_describe(q, d1, sizeof d1), (long long)tk, c->p.head_dim);
    MLXN_TRY(op_check_tensor(op, "q_out", s, q_out));
    MLXN_TRY(op_check_dtype(op, "q_out", q_out, DT_F32));
    if (!mlxn_tensor_is_contiguous(q_out)) return mlxn_fail(MLXN_ERR_SHAPE, "tq_rope_append: q_out must be contiguous");
    MLXN_TRY(op_check_same_shape(op, "q_out", q_out, "q", q));
    MLXN_TRY(op_check_rope_params(op, s, p, c->p.head_dim));
    MLXN_TRY(check_pos(op, s, pos, pos_tensor));
    /* one kernel reads every input while writing q_out and the cache */
    const mlxn_tensor *in[6] = {q, k, v, p->freqs, p->offset_tensor, pos_tensor};
    static const char *in_n[6] = {"q", "k", "v", "freqs", "offset_tensor", "pos_tensor"};
    const mlxn_tensor *cache[4] = {&c->k_codes, &c->v_codes, &c->k_norms, &c->v_norms};
    for (int i = 0; i < 6; i++) {
        if (!in[i]) continue;
        MLXN_TRY(op_check_disjoint(op, "q_out", q_out, in_n[i], in[i]));
        for (int j = 0; j < 4; j++) MLXN_TRY(op_check_disjoint(op, "the cache", cache[j], in_n[i], in[i]));
    }
    for (int j = 0; j < 4; j++) MLXN_TRY(op_check_disjoint(op, "q_out", q_out, "the cache", cache[j]));
    return s->dev->be->tq_rope_append(s, c, q, k, v, p, q_out, pos, pos_tensor);
}

mlxn_status mlxn_tq_sdpa(mlxn_stream *s, const mlxn_tq_cache *c, const mlxn_tensor *q, const mlxn_tq_sdpa_params *p,
                         mlxn_tensor *out) {
    const char *op = "tq_sdpa";
    char d1[96];
    MLXN_TRY(check_cache(op, s, c, s && s->dev && s->dev->be->tq_sdpa != NULL));
    if (!p) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tq_sdpa: params are NULL");
    MLXN_TRY(op_check_tensor(op, "q", s, q));
    MLXN_TRY(op_check_dtype(op, "q", q, DT_F32));
    const int64_t D = c->p.head_dim, Hkv = c->p.n_kv_heads, C = c->p.capacity;
    if (q->ndim != 4 || q->shape[0] != 1 || q->shape[3] != D || q->shape[1] < 1 || q->shape[1] % Hkv != 0 ||
        q->shape[2] < 1 || q->shape[2] > C)
        return mlxn_fail(MLXN_ERR_SHAPE,
                         "tq_sdpa: q is %s, expected [1, Hq, Tq, %lld] with Hq a multiple of %lld kv heads and "
                         "1 <= Tq <= capacity %lld",
                         mlxn_tensor_describe(q, d1, sizeof d1), (long long)D, (long long)Hkv, (long long)C);
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    if (out->ndim != 4 || out->shape[0] != 1 || out->shape[1] != q->shape[1] || out->shape[2] != q->shape[2] ||
        out->shape[3] != D)
        return mlxn_fail(MLXN_ERR_SHAPE, "tq_sdpa: out is %s, expected [1, %lld, %lld, %lld]",
                         mlxn_tensor_describe(out, d1, sizeof d1), (long long)q->shape[1], (long long)q->shape[2],
                         (long long)D);
    MLXN_TRY(op_check_no_alias(op, "q", out, q));
    if (p->window < 0) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tq_sdpa: window must be >= 0, got %d", p->window);
    if (!(p->softcap >= 0) || isinf(p->softcap))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tq_sdpa: softcap must be finite and >= 0, got %g", p->softcap);
    if (!isfinite(p->scale)) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tq_sdpa: scale must be finite, got %g", p->scale);
    MLXN_TRY(check_pos(op, s, p->pos, p->pos_tensor));
    if (!p->pos_tensor) {
        const int64_t Tq = q->shape[2], end = p->pos + Tq;
        if (end > C && p->window == 0)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                             "tq_sdpa: positions up to %lld do not fit a cache of %lld slots without a window "
                             "(older keys were overwritten)",
                             (long long)end, (long long)C);
        if (end > C && C < p->window - 1 + Tq)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                             "tq_sdpa: a ring of %lld slots is too short for window %d and %lld queries "
                             "(needs window - 1 + Tq = %lld)",
                             (long long)C, p->window, (long long)Tq, (long long)(p->window - 1 + Tq));
    }
    return s->dev->be->tq_sdpa(s, c, q, p, out);
}

mlxn_status mlxn_tq_dequantize(mlxn_stream *s, const mlxn_tq_cache *c, char which, int64_t pos, mlxn_tensor *out) {
    const char *op = "tq_dequantize";
    MLXN_TRY(check_cache(op, s, c, s && s->dev && s->dev->be->tq_dequantize != NULL));
    if (which != 'k' && which != 'v')
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tq_dequantize: which must be 'k' or 'v'");
    if (pos < 0) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "tq_dequantize: pos must be >= 0, got %lld", (long long)pos);
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    if (out->ndim != 3 || out->shape[0] != c->p.n_kv_heads || out->shape[2] != c->p.head_dim || out->shape[1] < 1 ||
        out->shape[1] > c->p.capacity) {
        char d[96];
        return mlxn_fail(MLXN_ERR_SHAPE, "tq_dequantize: out is %s, expected [%d, n, %d] with 1 <= n <= capacity %lld",
                         mlxn_tensor_describe(out, d, sizeof d), c->p.n_kv_heads, c->p.head_dim,
                         (long long)c->p.capacity);
    }
    return s->dev->be->tq_dequantize(s, c, which == 'v', pos, out);
}
