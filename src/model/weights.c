/* Weight binding: find every tensor the configuration implies in the
 * model's safetensors files, check its dtype and shape, resolve its
 * quantization the way mlx-lm's load_model does, and keep a view of it
 * (zero-copy on the CPU).
 *
 * Quantization of a module at path p (e.g. "model.layers.0.mlp.down_proj"):
 *   config["quantization"][p] == false   -> dense
 *   config["quantization"][p] == {...}   -> those group_size/bits/mode
 *                                           (defaults per mode, affine)
 *   otherwise, when "p.scales" exists    -> group_size, bits and mode read
 *                                           off the shapes and the scales
 *                                           dtype (mlx-lm's infer_quant_config)
 *   otherwise                            -> dense
 * and the stored shapes must agree with the result. Without a
 * "quantization" object nothing is quantized (as in mlx-lm).
 *
 * A layer's linears are checked first and placed after: q/k/v (and
 * gate/up) quantized alike are stacked into one tensor when the model
 * fuses projections (place_group), else each is placed on its own.
 *
 * Every tensor in the files must be used, except the ones mlx-lm's
 * sanitize drops (rotary_emb.inv_freq, lm_head.weight of a tied model, a
 * multimodal checkpoint's vision tower), unless the caller allows it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/model_internal.h"

typedef struct binder {
    mlxn_model *m;
    const char *dir;
    const json_t *quant;
    const mlxn_weight_info **used; /* tensors bound or deliberately ignored */
    size_t n_used, cap_used;
} binder;

static mlxn_status mark_used(binder *b, const mlxn_weight_info *info) {
    if (b->n_used == b->cap_used) {
        size_t cap = b->cap_used ? 2 * b->cap_used : 256;
        const mlxn_weight_info **u = realloc(b->used, cap * sizeof *u);
        if (!u) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", b->dir);
        b->used = u;
        b->cap_used = cap;
    }
    b->used[b->n_used++] = info;
    return MLXN_OK;
}

mlxn_status model_own(mlxn_model *m, const mlxn_tensor *t) {
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        mlxn_tensor *o = realloc(m->owned, (size_t)cap * sizeof *o);
        if (!o) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "model: out of memory");
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = *t;
    return MLXN_OK;
}

static const mlxn_weight_info *find(binder *b, const char *name) { return model_src_find(b->m, name); }

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

#define DTM(d) (1u << (d))
#define FLOATS (DTM(MLXN_DTYPE_F32) | DTM(MLXN_DTYPE_F16) | DTM(MLXN_DTYPE_BF16))

/* Check tensor `name` for the given rank/shape and one of `dtypes` and
 * mark it used; *out is its source, not yet placed on the device. */
static mlxn_status check(binder *b, const char *name, int ndim, const int64_t *shape, unsigned dtypes,
                         const char *what, const mlxn_weight_info **out) {
    const mlxn_weight_info *info = find(b, name);
    if (!info) return mlxn_fail(MLXN_ERR_FORMAT, "%s: missing tensor %s (%s)", b->dir, name, what);
    int ok = info->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = info->shape[i] == shape[i];
    char want[96], got[96];
    if (!ok)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: tensor %s in %s has shape %s, expected %s (%s)", b->dir, name, info->file,
                         shape_str(info->ndim, info->shape, got, sizeof got), shape_str(ndim, shape, want, sizeof want),
                         what);
    if (!((unsigned)info->dtype < 32 && (dtypes & DTM(info->dtype))))
        return mlxn_fail(MLXN_ERR_DTYPE, "%s: tensor %s in %s has dtype %s, not usable as %s", b->dir, name, info->file,
                         mlxn_dtype_name(info->dtype), what);
    MLXN_TRY(mark_used(b, info));
    *out = info;
    return MLXN_OK;
}

/* Bind tensor `name` with the given rank/shape and one of `dtypes`. */
static mlxn_status bind(binder *b, const char *name, int ndim, const int64_t *shape, unsigned dtypes,
                        const char *what, mlxn_tensor *out) {
    const mlxn_weight_info *info;
    MLXN_TRY(check(b, name, ndim, shape, dtypes, what, &info));
    return model_src_tensor(b->m, info, out);
}

static mlxn_status bind_vec(binder *b, const char *name, int64_t n, const char *what, mlxn_tensor *out) {
    return bind(b, name, 1, &n, FLOATS, what, out);
}

/* Quantization parameters from a per-layer object {"group_size", "bits", "mode"}. */
static mlxn_status params_from_json(binder *b, const char *mod, const json_t *o, mlxn_quant_params *q) {
    const char *mode = "affine";
    const json_t *jm = json_object_get(o, "mode");
    if (jm && !json_is_null(jm)) {
        if (!json_is_string(jm))
            return mlxn_fail(MLXN_ERR_FORMAT, "%s/config.json: quantization \"%s\": mode must be a string", b->dir, mod);
        mode = json_string_value(jm);
    }
    memset(q, 0, sizeof *q);
    if (mlxn_quant_mode_parse(mode, &q->mode) != MLXN_OK)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                         "%s/config.json: quantization of %s: mode \"%s\" is not supported (affine, mxfp4, mxfp8, nvfp4)",
                         b->dir, mod, mode);
    int dg = 64, db = 4;
    if (q->mode == MLXN_QUANT_MXFP4) dg = 32, db = 4;
    if (q->mode == MLXN_QUANT_MXFP8) dg = 32, db = 8;
    if (q->mode == MLXN_QUANT_NVFP4) dg = 16, db = 4;
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json: quantization of %s", b->dir, mod);
    MLXN_TRY(cfg_int(o, path, "group_size", dg, false, &q->group_size));
    MLXN_TRY(cfg_int(o, path, "bits", db, false, &q->bits));
    return MLXN_OK;
}

/* mlx-lm's infer_quant_config: read group/bits off the stored shapes. */
static mlxn_status infer_params(binder *b, const char *mod, const mlxn_weight_info *w, const mlxn_weight_info *s,
                                int64_t in, mlxn_quant_params *q) {
    memset(q, 0, sizeof *q);
    if (w->ndim != 2 || s->ndim != 2 || s->shape[1] <= 0 || in % s->shape[1] != 0 || (w->shape[1] * 32) % in != 0)
        return mlxn_fail(MLXN_ERR_FORMAT,
                         "%s: %s: cannot read the quantization off weight %s and scales %s for an input size of %lld",
                         b->dir, mod, w->name, s->name, (long long)in);
    q->group_size = (int)(in / s->shape[1]);
    q->bits = (int)(w->shape[1] * 32 / in);
    q->mode = MLXN_QUANT_AFFINE;
    if (s->dtype == MLXN_DTYPE_U8) {
        if (q->bits == 4 && q->group_size == 16) q->mode = MLXN_QUANT_NVFP4;
        else if (q->bits == 4 && q->group_size == 32) q->mode = MLXN_QUANT_MXFP4;
        else if (q->bits == 8 && q->group_size == 32) q->mode = MLXN_QUANT_MXFP8;
        else
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s: u8 scales with %d bits and group %d match no quantization mode",
                             b->dir, mod, q->bits, q->group_size);
    }
    return MLXN_OK;
}

/* The source tensors of a linear layer, checked but not yet placed on the
 * device (the layer first decides whether to fuse it with its siblings). */
typedef struct linear_src {
    const mlxn_weight_info *w, *scales, *biases, *bias; /* NULL when absent */
} linear_src;

/* Check module `mod` (full path without ".weight") as a linear [out, in]:
 * its quantization, tensors, shapes and dtypes. Fills L's shape and
 * quantization and *src; L's tensors stay empty until place_linear. */
static mlxn_status check_linear(binder *b, const char *mod, int64_t in, int64_t out, bool bias, model_linear *L,
                                linear_src *src) {
    char name[512], what[160];
    memset(L, 0, sizeof *L);
    memset(src, 0, sizeof *src);
    L->in = in;
    L->out = out;
    const json_t *entry = b->quant ? json_object_get(b->quant, mod) : NULL;
    snprintf(name, sizeof name, "%s.weight", mod);
    const mlxn_weight_info *wi = find(b, name);
    snprintf(name, sizeof name, "%s.scales", mod);
    const mlxn_weight_info *si = find(b, name);
    if (entry && !json_is_object(entry) && !json_is_boolean(entry))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s/config.json: quantization entry for %s must be an object or false", b->dir,
                         mod);
    if (json_is_object(entry)) {
        MLXN_TRY(params_from_json(b, mod, entry, &L->q));
        L->quantized = true;
    } else if (b->quant && !json_is_false(entry) && si && wi) {
        MLXN_TRY(infer_params(b, mod, wi, si, in, &L->q));
        L->quantized = true;
    }
    snprintf(name, sizeof name, "%s.weight", mod);
    if (!L->quantized && si && wi && wi->dtype == MLXN_DTYPE_U32)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s is stored quantized (%s, %s) but %s", b->dir, mod, wi->name, si->name,
                         !b->quant ? "config.json has no \"quantization\""
                                   : "config.json's quantization marks it dense (false)");
    if (!L->quantized) {
        int64_t shape[2] = {out, in};
        snprintf(what, sizeof what, "dense weight [out=%lld, in=%lld]", (long long)out, (long long)in);
        MLXN_TRY(check(b, name, 2, shape, FLOATS, what, &src->w));
    } else {
        mlxn_quant_params *q = &L->q;
        mlxn_status st = mlxn_quant_validate(q, in);
        if (st != MLXN_OK)
            return mlxn_fail_context(st, "%s: %s (%s, %d bits, group %d): ", b->dir, mod, mlxn_quant_mode_name(q->mode),
                                     q->bits, q->group_size);
        const char *mname = mlxn_quant_mode_name(q->mode);
        snprintf(what, sizeof what, "%s %d-bit group %d weight of [%lld, %lld]", mname, q->bits, q->group_size,
                 (long long)out, (long long)in);
        int64_t wshape[2] = {out, mlxn_quant_words_per_row(q, in)};
        MLXN_TRY(check(b, name, 2, wshape, DTM(MLXN_DTYPE_U32), what, &src->w));
        int64_t sshape[2] = {out, in / q->group_size};
        unsigned sdt = q->mode == MLXN_QUANT_AFFINE ? FLOATS : DTM(MLXN_DTYPE_U8);
        snprintf(name, sizeof name, "%s.scales", mod);
        MLXN_TRY(check(b, name, 2, sshape, sdt, what, &src->scales));
        if (q->mode == MLXN_QUANT_AFFINE) {
            snprintf(name, sizeof name, "%s.biases", mod);
            MLXN_TRY(check(b, name, 2, sshape, DTM(src->scales->dtype), what, &src->biases));
        }
        b->m->info.n_quantized++;
    }
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", mod);
        snprintf(what, sizeof what, "bias of %s", mod);
        MLXN_TRY(check(b, name, 1, &out, FLOATS, what, &src->bias));
        L->has_bias = true;
    }
    return MLXN_OK;
}

/* Place the checked tensors of one linear on the device (views in place on the CPU). */
static mlxn_status place_linear(binder *b, const linear_src *src, model_linear *L) {
    MLXN_TRY(model_src_tensor(b->m, src->w, &L->w));
    if (src->scales) MLXN_TRY(model_src_tensor(b->m, src->scales, &L->scales));
    if (src->biases) MLXN_TRY(model_src_tensor(b->m, src->biases, &L->biases));
    if (src->bias) MLXN_TRY(model_src_tensor(b->m, src->bias, &L->bias));
    return MLXN_OK;
}

static mlxn_status bind_linear(binder *b, const char *mod, int64_t in, int64_t out, bool bias, model_linear *L) {
    linear_src src;
    MLXN_TRY(check_linear(b, mod, in, out, bias, L, &src));
    return place_linear(b, &src, L);
}

static bool same_dtype(const mlxn_weight_info *a, const mlxn_weight_info *b) {
    return !a == !b && (!a || a->dtype == b->dtype);
}

/* Whether linears p[0..n) (one input size) can run as one: all quantized
 * the same way (mode, bits, group, scale/bias dtypes) with biases on all
 * or none. Quantization is per output row (groups run along the input),
 * so stacking the rows of codes, scales and biases gives each part's rows
 * exactly; a mixed recipe that quantizes one part differently keeps them
 * apart. Dense layers are left alone (the quantized decode is what is
 * bound by the number of kernels). */
static bool fusable(model_linear *const *p, const linear_src *s, int n) {
    for (int i = 0; i < n; i++) {
        const mlxn_quant_params *a = &p[0]->q, *q = &p[i]->q;
        if (!p[i]->quantized || p[i]->in != p[0]->in || q->mode != a->mode || q->bits != a->bits ||
            q->group_size != a->group_size || p[i]->has_bias != p[0]->has_bias)
            return false;
        if (!same_dtype(s[i].scales, s[0].scales) || !same_dtype(s[i].biases, s[0].biases) ||
            !same_dtype(s[i].bias, s[0].bias))
            return false;
    }
    return true;
}

/* Bind the sibling linears p[0..n) (checked into s) either as one fused
 * linear *f whose output rows are theirs in order (*fused = true; their
 * own tensors then stay empty) or each on its own. */
static mlxn_status place_group(binder *b, model_linear *const *p, const linear_src *s, int n, model_linear *f,
                               bool *fused) {
    *fused = b->m->fuse && fusable(p, s, n);
    if (!*fused) {
        for (int i = 0; i < n; i++) MLXN_TRY(place_linear(b, &s[i], p[i]));
        return MLXN_OK;
    }
    memset(f, 0, sizeof *f);
    f->in = p[0]->in;
    f->quantized = true;
    f->q = p[0]->q;
    f->has_bias = p[0]->has_bias;
    const mlxn_weight_info *parts[8];
    for (int i = 0; i < n; i++) f->out += p[i]->out;
#define CONCAT(field, dst)                                                   \
    do {                                                                     \
        for (int i = 0; i < n; i++) parts[i] = s[i].field;                   \
        if (parts[0]) MLXN_TRY(model_src_concat(b->m, parts, n, dst));       \
    } while (0)
    CONCAT(w, &f->w);
    CONCAT(scales, &f->scales);
    CONCAT(biases, &f->biases);
    CONCAT(bias, &f->bias);
#undef CONCAT
    b->m->info.n_fused++;
    return MLXN_OK;
}

static mlxn_status bind_layer(binder *b, int i) {
    mlxn_model *m = b->m;
    const mlxn_model_config *c = &m->cfg;
    model_layer *L = &m->layers[i];
    char p[256], n[320];
    snprintf(p, sizeof p, "%smodel.layers.%d", c->prefix, i);
    int64_t H = c->hidden, D = c->head_dim, qd = (int64_t)c->n_heads * D, kd = (int64_t)c->n_kv_heads * D;
#define NAME(suffix) (snprintf(n, sizeof n, "%s.%s", p, suffix), n)
    MLXN_TRY(bind_vec(b, NAME("input_layernorm.weight"), H, "norm weight [hidden]", &L->attn_norm));
    if (c->sandwich_norms) {
        MLXN_TRY(bind_vec(b, NAME("post_attention_layernorm.weight"), H, "norm weight [hidden]", &L->post_attn_norm));
        MLXN_TRY(bind_vec(b, NAME("pre_feedforward_layernorm.weight"), H, "norm weight [hidden]", &L->mlp_norm));
        MLXN_TRY(bind_vec(b, NAME("post_feedforward_layernorm.weight"), H, "norm weight [hidden]", &L->post_mlp_norm));
    } else {
        MLXN_TRY(bind_vec(b, NAME("post_attention_layernorm.weight"), H, "norm weight [hidden]", &L->mlp_norm));
    }
    if (c->qk_norm) {
        MLXN_TRY(bind_vec(b, NAME("self_attn.q_norm.weight"), D, "q norm weight [head_dim]", &L->q_norm));
        MLXN_TRY(bind_vec(b, NAME("self_attn.k_norm.weight"), D, "k norm weight [head_dim]", &L->k_norm));
    }
    linear_src s[3];
    model_linear *qkv[3] = {&L->q, &L->k, &L->v}, *gu[2] = {&L->gate, &L->up};
    MLXN_TRY(check_linear(b, NAME("self_attn.q_proj"), H, qd, c->q_bias, &L->q, &s[0]));
    MLXN_TRY(check_linear(b, NAME("self_attn.k_proj"), H, kd, c->k_bias, &L->k, &s[1]));
    MLXN_TRY(check_linear(b, NAME("self_attn.v_proj"), H, kd, c->v_bias, &L->v, &s[2]));
    MLXN_TRY(place_group(b, qkv, s, 3, &L->qkv, &L->fused_qkv));
    MLXN_TRY(bind_linear(b, NAME("self_attn.o_proj"), qd, H, c->o_bias, &L->o));
    MLXN_TRY(check_linear(b, NAME("mlp.gate_proj"), H, c->inter, c->mlp_bias, &L->gate, &s[0]));
    MLXN_TRY(check_linear(b, NAME("mlp.up_proj"), H, c->inter, c->mlp_bias, &L->up, &s[1]));
    MLXN_TRY(place_group(b, gu, s, 2, &L->gu, &L->fused_gu));
    MLXN_TRY(bind_linear(b, NAME("mlp.down_proj"), c->inter, H, c->mlp_bias, &L->down));
#undef NAME
    /* the rope frequency table, when the layer's rope has one */
    const model_rope *r = &c->layers[i].rope;
    if (r->kind == ROPE_FREQS && !m->dry) {
        int64_t half = D / 2;
        MLXN_TRY(mlxn_tensor_alloc(m->dev, MLXN_DTYPE_F32, 1, &half, &L->rope_freqs));
        MLXN_TRY(model_own(m, &L->rope_freqs));
        MLXN_TRY(mlxn_stream_write(mlxn_device_stream(m->dev), L->rope_freqs.buf, L->rope_freqs.offset, r->freqs,
                                   sizeof(float) * (size_t)half, 0));
    }
    return MLXN_OK;
}

/* Tensors mlx-lm's sanitize drops without complaint. */
static bool ignorable(const mlxn_model *m, const char *name) {
    if (strstr(name, "self_attn.rotary_emb.inv_freq")) return true;
    if (m->cfg.prefix[0] && (strncmp(name, "vision_tower.", 13) == 0 || strncmp(name, "multi_modal_projector.", 22) == 0))
        return true;
    return false;
}

static int by_ptr(const void *a, const void *b) {
    const void *x = *(const void *const *)a, *y = *(const void *const *)b;
    return x < y ? -1 : x > y;
}

/* On a backend whose kernels read it (CUDA), every tileable quantized
 * linear (affine 4-bit, groups of 64 or 128, 16-bit scales) goes into the
 * TILED16 layout (mlxn/quant.h), reordered in place on the device: a
 * decode step's mat-vecs then read each warp's 16 x 128 codes as one
 * piece (decode measured 5-8% faster on an H100, docs/perf.md). The first
 * decline (a backend without the layout, MLXN_CUDA_TILED=0) leaves every
 * matrix in rows; a matrix without room for the reorder's scratch stays
 * in rows alone. tile_linear: L, if it can be; *declined once the backend
 * has said no. */
static mlxn_status tile_linear(mlxn_model *m, model_linear *L, bool *declined) {
    if (*declined || !L->quantized || !L->w.buf || L->q.layout != MLXN_QUANT_ROWS ||
        !mlxn_quant_tileable(&L->q, L->scales.dtype, L->out, L->in))
        return MLXN_OK;
    mlxn_status rc = mlxn_quantized_tile(mlxn_device_stream(m->dev), &L->w, &L->scales, &L->biases, &L->q);
    if (rc == MLXN_ERR_NOT_IMPLEMENTED) { /* rows it is, for every matrix */
        *declined = true;
        return MLXN_OK;
    }
    if (rc == MLXN_ERR_OUT_OF_MEMORY) return MLXN_OK; /* no room for its scratch: this one stays in rows */
    if (rc != MLXN_OK) return mlxn_fail_context(rc, "model: tiling the weights: ");
    L->q.layout = MLXN_QUANT_TILED16;
    m->info.n_tiled++;
    return MLXN_OK;
}

static mlxn_status tile_weights(mlxn_model *m) {
    if (m->dry || mlxn_device_get_kind(m->dev) == MLXN_DEVICE_CPU) return MLXN_OK;
    bool declined = false;
    MLXN_TRY(tile_linear(m, &m->embed, &declined));
    if (!m->cfg.tied) MLXN_TRY(tile_linear(m, &m->head, &declined));
    for (int i = 0; i < m->cfg.n_layers; i++) {
        model_layer *L = &m->layers[i];
        model_linear *ls[9] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down, &L->qkv, &L->gu};
        for (int j = 0; j < 9; j++) MLXN_TRY(tile_linear(m, ls[j], &declined));
    }
    return MLXN_OK;
}

mlxn_status model_bind_weights(mlxn_model *m, const char *dir, const json_t *quant, bool allow_unused) {
    binder b = {.m = m, .dir = dir, .quant = quant};
    mlxn_model_config *c = &m->cfg;
    char mod[256], name[300];
    mlxn_status st = MLXN_OK;

    /* Gemma decides tying from the files, as its sanitize does */
    snprintf(name, sizeof name, "%slm_head.weight", c->prefix);
    const mlxn_weight_info *lm = find(&b, name);
    if (c->tie_from_files) c->tied = lm == NULL;
    if (c->tied && lm) st = mark_used(&b, lm); /* a tied model's lm_head is dropped */

    /* the embedding: a [vocab, hidden] "linear"; say so when vocab disagrees */
    snprintf(mod, sizeof mod, "%smodel.embed_tokens", c->prefix);
    snprintf(name, sizeof name, "%s.weight", mod);
    const mlxn_weight_info *emb = find(&b, name);
    if (st == MLXN_OK && emb && emb->ndim == 2 && emb->shape[0] != c->vocab)
        st = mlxn_fail(MLXN_ERR_SHAPE, "%s: config.json says vocab_size %d but %s in %s has %lld rows", dir, c->vocab, name,
                       emb->file, (long long)emb->shape[0]);
    if (st == MLXN_OK) st = bind_linear(&b, mod, c->hidden, c->vocab, false, &m->embed);
    if (st == MLXN_OK && !c->tied) {
        snprintf(mod, sizeof mod, "%slm_head", c->prefix);
        st = bind_linear(&b, mod, c->hidden, c->vocab, false, &m->head);
    }
    if (st == MLXN_OK) {
        snprintf(name, sizeof name, "%smodel.norm.weight", c->prefix);
        st = bind_vec(&b, name, c->hidden, "final norm weight [hidden]", &m->final_norm);
    }
    for (int i = 0; st == MLXN_OK && i < c->n_layers; i++) st = bind_layer(&b, i);

    /* every tensor must have been used */
    if (st == MLXN_OK && !allow_unused) {
        qsort(b.used, b.n_used, sizeof *b.used, by_ptr);
        size_t n = model_src_count(m), unused = 0;
        const mlxn_weight_info *first = NULL;
        for (size_t i = 0; i < n; i++) {
            const mlxn_weight_info *info = model_src_at(m, i);
            if (ignorable(m, info->name)) continue;
            if (b.n_used && bsearch(&info, b.used, b.n_used, sizeof *b.used, by_ptr)) continue;
            if (!first) first = info;
            unused++;
        }
        if (first) {
            const char *hint = "";
            size_t len = strlen(first->name);
            if (len > 7 && strcmp(first->name + len - 7, ".scales") == 0)
                hint = quant ? " (config.json's quantization leaves this layer dense)"
                             : " (config.json has no \"quantization\")";
            st = mlxn_fail(MLXN_ERR_FORMAT,
                           "%s: tensor %s in %s is not used by the %s architecture%s (%zu unused tensor%s)", dir,
                           first->name, first->file, c->arch, hint, unused, unused == 1 ? "" : "s");
        }
    }
    free(b.used);
    if (st == MLXN_OK) st = tile_weights(m);
    return st;
}
