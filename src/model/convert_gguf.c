/* GGUF (llama architecture) -> the in-memory MLX model: config.json from
 * the llama.* metadata, mlx-lm's tensor names, the q/k row order of the
 * original checkpoint, and GGML blocks in MLX's affine layout (exactly,
 * see convert_gguf_blocks.c; other dequantizable blocks requantized).
 *
 * Metadata -> config.json:
 *   llama.embedding_length -> hidden_size     llama.block_count -> num_hidden_layers
 *   llama.feed_forward_length -> intermediate_size
 *   llama.attention.head_count(_kv) -> num_attention_heads / num_key_value_heads
 *   llama.attention.key_length -> head_dim (else hidden / heads)
 *   llama.attention.layer_norm_rms_epsilon -> rms_norm_eps
 *   llama.rope.freq_base -> rope_theta (10000)   llama.context_length -> max_position_embeddings
 *   llama.rope.scaling.type linear + .factor -> rope_scaling
 *   token_embd rows -> vocab_size (llama.vocab_size and the tokenizer's
 *   token count must agree); no output.weight -> tie_word_embeddings.
 * Names: token_embd -> model.embed_tokens, output_norm -> model.norm,
 * output -> lm_head, blk.N.{attn_norm, ffn_norm, attn_q, attn_k, attn_v,
 * attn_output, ffn_gate, ffn_up, ffn_down} -> model.layers.N.{
 * input_layernorm, post_attention_layernorm, self_attn.{q,k,v,o}_proj,
 * mlp.{gate,up,down}_proj}.
 *
 * Rope: convert_hf_to_gguf reorders the rows of each q/k head from the
 * "half split" order the checkpoint (and mlx-lm's default rope) uses to the
 * interleaved pairs ggml's rope uses: GGUF row 2i + j of a head (i <
 * head_dim/2, j in {0, 1}) is the checkpoint's row j*head_dim/2 + i. We
 * undo it (whole rows, so quantized rows move with their scales: no loss)
 * and keep rope_traditional = false, so the directory is the checkpoint's
 * own layout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/convert_gguf_blocks.h"
#include "model/convert_internal.h"
#include "quant/ggml_blocks.h"

typedef enum kind { K_NORM, K_Q, K_K, K_V, K_O, K_GATE, K_UP, K_DOWN, K_EMBED, K_HEAD, K_FINAL } kind;

static const struct {
    const char *gguf, *mlx;
    kind k;
} LAYER_NAMES[] = {
    {"attn_norm", "input_layernorm", K_NORM}, {"ffn_norm", "post_attention_layernorm", K_NORM},
    {"attn_q", "self_attn.q_proj", K_Q},      {"attn_k", "self_attn.k_proj", K_K},
    {"attn_v", "self_attn.v_proj", K_V},      {"attn_output", "self_attn.o_proj", K_O},
    {"ffn_gate", "mlp.gate_proj", K_GATE},    {"ffn_up", "mlp.up_proj", K_UP},
    {"ffn_down", "mlp.down_proj", K_DOWN},
};
#define N_LAYER_NAMES 9

typedef struct gg {
    const char *path;
    const mlxn_gguf *g;
    const cv_opts *o;
    cv_set *s;
    int hidden, n_layers, heads, kv_heads, inter, head_dim;
    int64_t vocab;
    bool has_head, q_bias, mlp_bias;
    unsigned char *seen; /* [n_layers * N_LAYER_NAMES] weights seen */
    /* quantized modules, for config["quantization"] */
    char **mods;
    mlxn_quant_params *qs;
    size_t nq, capq;
} gg;

static mlxn_status meta_u32(gg *c, const char *suffix, bool required, uint32_t def, uint32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "llama.%s", suffix);
    if (!mlxn_gguf_find(c->g, key)) {
        if (required) return mlxn_fail(MLXN_ERR_FORMAT, "%s: missing metadata key %s", c->path, key);
        *out = def;
        return MLXN_OK;
    }
    MLXN_TRY(mlxn_gguf_get_u32(c->g, key, out));
    if (*out == 0 || *out > 1u << 30) return mlxn_fail(MLXN_ERR_FORMAT, "%s: %s = %u is out of range", c->path, key, *out);
    return MLXN_OK;
}

static mlxn_status meta_f32(gg *c, const char *suffix, bool required, float def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "llama.%s", suffix);
    if (!mlxn_gguf_find(c->g, key)) {
        if (required) return mlxn_fail(MLXN_ERR_FORMAT, "%s: missing metadata key %s", c->path, key);
        *out = def;
        return MLXN_OK;
    }
    return mlxn_gguf_get_f32(c->g, key, out);
}

static mlxn_status record(gg *c, const char *mod, const mlxn_quant_params *q) {
    if (c->nq == c->capq) {
        size_t cap = c->capq ? 2 * c->capq : 64;
        char **m = realloc(c->mods, cap * sizeof *m);
        if (m) c->mods = m;
        mlxn_quant_params *p = m ? realloc(c->qs, cap * sizeof *p) : NULL;
        if (!m || !p) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        c->qs = p;
        c->capq = cap;
    }
    if (!(c->mods[c->nq] = strdup(mod))) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    c->qs[c->nq++] = *q;
    return MLXN_OK;
}

/* The GGUF row that holds row r of the checkpoint's order. */
static int64_t src_row(kind k, const gg *c, int64_t r) {
    if (k != K_Q && k != K_K) return r;
    int64_t D = c->head_dim, half = D / 2, within = r % D;
    return (r - within) + 2 * (within % half) + within / half;
}

static void convert_vals(mlxn_dtype from, const void *src, mlxn_dtype to, void *dst, int64_t n) {
    if (from == to) {
        memcpy(dst, src, (size_t)n * mlxn_dtype_size(to));
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float v;
        uint16_t h;
        if (from == MLXN_DTYPE_F32) memcpy(&v, (const char *)src + 4 * i, 4);
        else {
            memcpy(&h, (const char *)src + 2 * i, 2);
            v = from == MLXN_DTYPE_F16 ? mlxn_f16_to_f32(h) : mlxn_bf16_to_f32(h);
        }
        if (to == MLXN_DTYPE_F32) memcpy((char *)dst + 4 * i, &v, 4);
        else {
            h = to == MLXN_DTYPE_F16 ? mlxn_f32_to_f16(v) : mlxn_f32_to_bf16(v);
            memcpy((char *)dst + 2 * i, &h, 2);
        }
    }
}

static mlxn_dtype plain_dtype(mlxn_ggml_type t) {
    return t == MLXN_GGML_F32 ? MLXN_DTYPE_F32 : t == MLXN_GGML_F16 ? MLXN_DTYPE_F16 : t == MLXN_GGML_BF16 ? MLXN_DTYPE_BF16 : MLXN_DTYPE_COUNT;
}

/* rows x cols values of t (rows permuted per kind) as dense dtype `dt`
 * into dst; quantized types are dequantized. */
static mlxn_status dense_rows(gg *c, const mlxn_gguf_tensor_info *t, kind k, mlxn_dtype dt, void *dst) {
    int64_t rows = t->n_rows, cols = t->ne[0];
    const uint8_t *base = mlxn_gguf_tensor_data(c->g, t);
    mlxn_dtype pd = plain_dtype(t->type);
    float *tmp = NULL;
    if (pd == MLXN_DTYPE_COUNT && !(tmp = malloc(sizeof(float) * (size_t)cols)))
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    for (int64_t r = 0; r < rows; r++) {
        int64_t sr = src_row(k, c, r);
        char *out = (char *)dst + (size_t)(r * cols) * mlxn_dtype_size(dt);
        if (pd != MLXN_DTYPE_COUNT) {
            convert_vals(pd, base + (size_t)sr * t->row_bytes, dt, out, cols);
        } else {
            mlxn_status st = mlxn_gguf_dequantize(c->g, t, sr, 1, tmp);
            if (st != MLXN_OK) {
                free(tmp);
                return st;
            }
            convert_vals(MLXN_DTYPE_F32, tmp, dt, out, cols);
        }
    }
    free(tmp);
    return MLXN_OK;
}

/* An exact block type -> NAME.weight/.scales/.biases. */
static mlxn_status exact_blocks(gg *c, const mlxn_gguf_tensor_info *t, kind k, const char *mod, const char *origin) {
    int64_t rows = t->n_rows, cols = t->ne[0];
    int bits = cvg_block_bits(t->type);
    const uint8_t *base = mlxn_gguf_tensor_data(c->g, t);
    bool f32 = cvg_block_f32_scales(t->type);
    if (!f32)
        for (int64_t r = 0; r < rows && !f32; r++) f32 = !cvg_f16_fits(t->type, base + (size_t)r * t->row_bytes, cols);
    mlxn_dtype sdt = f32 ? MLXN_DTYPE_F32 : MLXN_DTYPE_F16;
    int64_t wshape[2] = {rows, cols * bits / 32}, sshape[2] = {rows, cols / 32};
    char name[512];
    void *wq, *sc, *bi;
    snprintf(name, sizeof name, "%s.weight", mod);
    MLXN_TRY(cv_add(c->s, name, origin, MLXN_DTYPE_U32, 2, wshape, &wq));
    snprintf(name, sizeof name, "%s.scales", mod);
    MLXN_TRY(cv_add(c->s, name, origin, sdt, 2, sshape, &sc));
    snprintf(name, sizeof name, "%s.biases", mod);
    MLXN_TRY(cv_add(c->s, name, origin, sdt, 2, sshape, &bi));
    size_t ssz = mlxn_dtype_size(sdt);
    for (int64_t r = 0; r < rows; r++)
        cvg_block_row(t->type, base + (size_t)src_row(k, c, r) * t->row_bytes, cols, (uint32_t *)wq + r * wshape[1],
                      (char *)sc + (size_t)(r * sshape[1]) * ssz, (char *)bi + (size_t)(r * sshape[1]) * ssz, f32);
    mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = bits, .group_size = 32};
    return record(c, mod, &q);
}

/* A 2-D weight of module `mod`. */
static mlxn_status weight(gg *c, const mlxn_gguf_tensor_info *t, kind k, const char *mod, const char *origin) {
    if (cvg_block_exact(t->type)) return exact_blocks(c, t, k, mod, origin);
    if (!mlxn_ggml_type_can_dequantize(t->type))
        return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                         "%s: tensor %s has type %s, which cannot be converted (supported: f32, f16, bf16, q4_0, q4_1, "
                         "q8_0, q4_K, q5_K, q6_K)",
                         c->path, t->name, mlxn_ggml_type_name(t->type));
    int64_t rows = t->n_rows, cols = t->ne[0], shape[2] = {rows, cols};
    mlxn_dtype pd = plain_dtype(t->type);
    mlxn_quant_params q;
    bool requant = pd == MLXN_DTYPE_COUNT;
    bool quant = requant ? true : cv_module_quant(c->o, mod, cols, c->n_layers, &q);
    if (requant) q = c->o->requant;
    /* dense dtype: as stored (or --dtype); requantized blocks go through f16 */
    mlxn_dtype dt = requant ? MLXN_DTYPE_F16 : c->o->dtype ? c->o->dtype : pd;
    char name[512];
    if (!quant) {
        void *d;
        snprintf(name, sizeof name, "%s.weight", mod);
        MLXN_TRY(cv_add(c->s, name, origin, dt, 2, shape, &d));
        return dense_rows(c, t, k, dt, d);
    }
    if (requant && cols % q.group_size != 0)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: tensor %s (%s) has %lld columns, not a multiple of the group size %d",
                         c->path, t->name, mlxn_ggml_type_name(t->type), (long long)cols, q.group_size);
    void *tmp = malloc((size_t)(rows * cols) * mlxn_dtype_size(dt));
    if (!tmp) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: %s: out of memory", origin);
    mlxn_status st = dense_rows(c, t, k, dt, tmp);
    if (st == MLXN_OK) st = cv_quantize_into(c->s, mod, origin, &q, dt, tmp, rows, cols);
    free(tmp);
    MLXN_TRY(st);
    return record(c, mod, &q);
}

/* A 1-D tensor (norm weight or bias) as a dense vector. */
static mlxn_status vector(gg *c, const mlxn_gguf_tensor_info *t, kind k, const char *name, const char *origin) {
    if (!mlxn_ggml_type_can_dequantize(t->type))
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: tensor %s has type %s, which cannot be converted", c->path, t->name,
                         mlxn_ggml_type_name(t->type));
    mlxn_dtype pd = plain_dtype(t->type);
    mlxn_dtype dt = c->o->dtype ? c->o->dtype : pd != MLXN_DTYPE_COUNT ? pd : MLXN_DTYPE_F32;
    int64_t n = t->ne[0];
    void *d;
    MLXN_TRY(cv_add(c->s, name, origin, dt, 1, &n, &d));
    /* a vector is one row; q/k biases are permuted like the weight rows:
       treat each element as a row of one */
    if (k == K_Q || k == K_K) {
        float *all = malloc(sizeof(float) * (size_t)n), *perm = malloc(sizeof(float) * (size_t)n);
        mlxn_status st = all && perm ? mlxn_gguf_dequantize(c->g, t, 0, 1, all)
                                     : mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        if (st == MLXN_OK) {
            for (int64_t i = 0; i < n; i++) perm[i] = all[src_row(k, c, i)];
            convert_vals(MLXN_DTYPE_F32, perm, dt, d, n);
        }
        free(all);
        free(perm);
        return st;
    }
    return dense_rows(c, t, K_NORM, dt, d);
}

/* Expected [out, in] of a weight kind (in = 0 for vectors: [out]). */
static void expect(const gg *c, kind k, int64_t *out, int64_t *in) {
    int64_t H = c->hidden, qd = (int64_t)c->heads * c->head_dim, kd = (int64_t)c->kv_heads * c->head_dim;
    *in = H;
    switch (k) {
    case K_Q: *out = qd; break;
    case K_K: case K_V: *out = kd; break;
    case K_O: *out = H, *in = qd; break;
    case K_GATE: case K_UP: *out = c->inter; break;
    case K_DOWN: *out = H, *in = c->inter; break;
    case K_EMBED: case K_HEAD: *out = c->vocab; break;
    default: *out = H, *in = 0; break;
    }
}

static mlxn_status check_shape(gg *c, const mlxn_gguf_tensor_info *t, kind k, bool is_bias) {
    int64_t out, in;
    expect(c, k, &out, &in);
    if (is_bias) in = 0;
    bool ok = in ? (t->n_dims == 2 && t->shape[0] == out && t->shape[1] == in) : (t->n_dims == 1 && t->shape[0] == out);
    if (ok) return MLXN_OK;
    char got[96];
    int n = snprintf(got, sizeof got, "[");
    for (int i = 0; i < t->n_dims; i++) n += snprintf(got + n, sizeof got - (size_t)n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    snprintf(got + n, sizeof got - (size_t)n, "]");
    if (in)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: tensor %s has shape %s, expected [%lld, %lld] from the llama.* metadata",
                         c->path, t->name, got, (long long)out, (long long)in);
    return mlxn_fail(MLXN_ERR_SHAPE, "%s: tensor %s has shape %s, expected [%lld]", c->path, t->name, got, (long long)out);
}

/* llama3-style rope_freqs: accepted only when it changes nothing. */
static mlxn_status rope_freqs(gg *c, const mlxn_gguf_tensor_info *t) {
    float *v = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    if (!v) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    mlxn_status st = t->n_dims == 1 ? mlxn_gguf_dequantize(c->g, t, 0, 1, v) : MLXN_ERR_FORMAT;
    bool ones = st == MLXN_OK;
    for (int64_t i = 0; ones && i < t->numel; i++) ones = v[i] == 1.0f;
    free(v);
    if (!ones)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                         "%s: tensor %s (llama3 rope frequency factors) is not supported: the file does not say which "
                         "rope_scaling produced it",
                         c->path, t->name);
    return MLXN_OK;
}

static mlxn_status one_tensor(gg *c, const mlxn_gguf_tensor_info *t) {
    char mod[256], name[300], origin[1200];
    snprintf(origin, sizeof origin, "%s tensor %s", c->path, t->name);
    const char *n = t->name;
    int layer = -1, used = 0;
    char part[64] = "", suffix[16] = "";
    if (sscanf(n, "blk.%d.%63[^.].%15s%n", &layer, part, suffix, &used) == 3 && n[used] == '\0') {
        if (layer < 0 || layer >= c->n_layers)
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor %s: layer %d is outside [0, %d) (llama.block_count)", c->path, n,
                             layer, c->n_layers);
        int li = -1;
        for (int i = 0; i < N_LAYER_NAMES; i++)
            if (!strcmp(part, LAYER_NAMES[i].gguf)) li = i;
        bool bias = !strcmp(suffix, "bias");
        kind k = li >= 0 ? LAYER_NAMES[li].k : K_NORM;
        if (li < 0 || (!bias && strcmp(suffix, "weight")) || (bias && k == K_NORM)) goto unknown;
        MLXN_TRY(check_shape(c, t, k, bias));
        snprintf(mod, sizeof mod, "model.layers.%d.%s", layer, LAYER_NAMES[li].mlx);
        snprintf(name, sizeof name, "%s.%s", mod, suffix);
        if (bias) {
            if (k == K_Q) c->q_bias = true;
            if (k == K_GATE) c->mlp_bias = true;
            return vector(c, t, k, name, origin);
        }
        c->seen[layer * N_LAYER_NAMES + li] = 1;
        return k == K_NORM ? vector(c, t, k, name, origin) : weight(c, t, k, mod, origin);
    }
    if (!strcmp(n, "token_embd.weight")) {
        MLXN_TRY(check_shape(c, t, K_EMBED, false));
        return weight(c, t, K_EMBED, "model.embed_tokens", origin);
    }
    if (!strcmp(n, "output.weight")) {
        MLXN_TRY(check_shape(c, t, K_HEAD, false));
        return weight(c, t, K_HEAD, "lm_head", origin);
    }
    if (!strcmp(n, "output_norm.weight")) {
        MLXN_TRY(check_shape(c, t, K_FINAL, false));
        return vector(c, t, K_FINAL, "model.norm.weight", origin);
    }
    if (!strcmp(n, "rope_freqs.weight")) return rope_freqs(c, t);
unknown:
    return mlxn_fail(MLXN_ERR_FORMAT,
                     "%s: tensor %s is not part of a llama model (token_embd, output_norm, output, rope_freqs, "
                     "blk.N.{attn_norm, ffn_norm, attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down}"
                     ".weight and attention/ffn .bias)",
                     c->path, n);
}

static mlxn_status build_config(gg *c, uint32_t ctx, float eps, float theta) {
    json_t *cfg = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:o, s:o, s:b, s:b, s:b, s:b}",
                            "architectures", "LlamaForCausalLM", "model_type", "llama", "hidden_size", c->hidden,
                            "num_hidden_layers", c->n_layers, "intermediate_size", c->inter, "num_attention_heads",
                            c->heads, "num_key_value_heads", c->kv_heads, "head_dim", c->head_dim, "vocab_size",
                            (json_int_t)c->vocab, "rms_norm_eps", cv_json_f32(eps), "rope_theta", cv_json_f32(theta),
                            "tie_word_embeddings", !c->has_head, "rope_traditional", 0, "attention_bias", c->q_bias,
                            "mlp_bias", c->mlp_bias);
    if (!cfg) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    c->s->config = cfg;
    if (ctx) json_object_set_new(cfg, "max_position_embeddings", json_integer(ctx));
    static const char *const ids[][2] = {{"tokenizer.ggml.bos_token_id", "bos_token_id"},
                                         {"tokenizer.ggml.eos_token_id", "eos_token_id"}};
    for (int i = 0; i < 2; i++) {
        uint32_t v;
        if (mlxn_gguf_find(c->g, ids[i][0]) && mlxn_gguf_get_u32(c->g, ids[i][0], &v) == MLXN_OK)
            json_object_set_new(cfg, ids[i][1], json_integer(v));
    }
    /* rope scaling */
    const char *stype = NULL;
    if (mlxn_gguf_find(c->g, "llama.rope.scaling.type")) MLXN_TRY(mlxn_gguf_get_str(c->g, "llama.rope.scaling.type", &stype, NULL));
    if (stype && strcmp(stype, "none") != 0) {
        float factor = 0;
        if (strcmp(stype, "linear") != 0)
            return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: llama.rope.scaling.type \"%s\" is not supported (none, linear)",
                             c->path, stype);
        MLXN_TRY(meta_f32(c, "rope.scaling.factor", true, 1, &factor));
        if (!(factor > 0)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: llama.rope.scaling.factor must be positive", c->path);
        json_object_set_new(cfg, "rope_scaling", json_pack("{s:s, s:o}", "type", "linear", "factor", cv_json_f32(factor)));
    }
    return MLXN_OK;
}

static mlxn_status from_gguf(gg *c) {
    const char *arch = NULL;
    if (!mlxn_gguf_find(c->g, "general.architecture"))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: missing metadata key general.architecture", c->path);
    MLXN_TRY(mlxn_gguf_get_str(c->g, "general.architecture", &arch, NULL));
    if (strcmp(arch, "llama") != 0)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: GGUF architecture \"%s\" is not supported (supported: llama)", c->path,
                         arch);
    uint32_t H, L, I, NH, NKV, ctx, hd, rope_dims, vocab_meta;
    float eps, theta;
    MLXN_TRY(meta_u32(c, "embedding_length", true, 0, &H));
    MLXN_TRY(meta_u32(c, "block_count", true, 0, &L));
    MLXN_TRY(meta_u32(c, "feed_forward_length", true, 0, &I));
    MLXN_TRY(meta_u32(c, "attention.head_count", true, 0, &NH));
    MLXN_TRY(meta_u32(c, "attention.head_count_kv", false, NH, &NKV));
    MLXN_TRY(meta_u32(c, "context_length", false, 0, &ctx));
    MLXN_TRY(meta_u32(c, "attention.key_length", false, H / NH, &hd));
    MLXN_TRY(meta_u32(c, "rope.dimension_count", false, hd, &rope_dims));
    MLXN_TRY(meta_f32(c, "attention.layer_norm_rms_epsilon", true, 0, &eps));
    MLXN_TRY(meta_f32(c, "rope.freq_base", false, 10000.0f, &theta));
    if (NH % NKV != 0)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: llama.attention.head_count %u is not a multiple of head_count_kv %u", c->path,
                         NH, NKV);
    if (hd % 2 || rope_dims != hd)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: rope over %u of %u head dimensions is not supported (llama ropes all, "
                                               "and head_dim must be even)",
                         c->path, rope_dims, hd);
    c->hidden = (int)H, c->n_layers = (int)L, c->inter = (int)I, c->heads = (int)NH, c->kv_heads = (int)NKV;
    c->head_dim = (int)hd;

    const mlxn_gguf_tensor_info *emb = mlxn_gguf_tensor_find(c->g, "token_embd.weight");
    if (!emb) return mlxn_fail(MLXN_ERR_FORMAT, "%s: missing tensor token_embd.weight", c->path);
    if (emb->n_dims != 2) return mlxn_fail(MLXN_ERR_SHAPE, "%s: tensor token_embd.weight is not a matrix", c->path);
    c->vocab = emb->shape[0];
    MLXN_TRY(meta_u32(c, "vocab_size", false, (uint32_t)c->vocab, &vocab_meta));
    if (vocab_meta != c->vocab)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: llama.vocab_size is %u but tensor token_embd.weight has %lld rows", c->path,
                         vocab_meta, (long long)c->vocab);
    mlxn_gguf_type et;
    size_t ntok;
    const mlxn_gguf_value *toks;
    if (mlxn_gguf_find(c->g, "tokenizer.ggml.tokens")) {
        MLXN_TRY(mlxn_gguf_get_array(c->g, "tokenizer.ggml.tokens", &et, &ntok, &toks));
        if ((int64_t)ntok != c->vocab)
            return mlxn_fail(MLXN_ERR_SHAPE, "%s: the vocabulary (tokenizer.ggml.tokens) has %zu tokens but tensor "
                                             "token_embd.weight has %lld rows",
                             c->path, ntok, (long long)c->vocab);
    }
    c->has_head = mlxn_gguf_tensor_find(c->g, "output.weight") != NULL;
    c->seen = calloc((size_t)L * N_LAYER_NAMES, 1);
    if (!c->seen) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");

    size_t nt = mlxn_gguf_tensor_count(c->g);
    for (size_t i = 0; i < nt; i++) MLXN_TRY(one_tensor(c, mlxn_gguf_tensor_at(c->g, i)));
    if (!mlxn_gguf_tensor_find(c->g, "output_norm.weight"))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: missing tensor output_norm.weight", c->path);
    for (int l = 0; l < c->n_layers; l++)
        for (int i = 0; i < N_LAYER_NAMES; i++)
            if (!c->seen[l * N_LAYER_NAMES + i])
                return mlxn_fail(MLXN_ERR_FORMAT, "%s: missing tensor blk.%d.%s.weight", c->path, l, LAYER_NAMES[i].gguf);

    MLXN_TRY(build_config(c, ctx, eps, theta));
    if (c->nq) {
        /* the most common setting is the default; the others get entries */
        size_t best = 0, best_n = 0;
        for (size_t i = 0; i < c->nq; i++) {
            size_t k = 0;
            for (size_t j = 0; j < c->nq; j++)
                k += c->qs[j].bits == c->qs[i].bits && c->qs[j].group_size == c->qs[i].group_size &&
                     c->qs[j].mode == c->qs[i].mode;
            if (k > best_n) best_n = k, best = i;
        }
        mlxn_quant_params def = c->qs[best];
        MLXN_TRY(cv_record_quant(c->s, (const char *const *)c->mods, c->qs, c->nq, &def, false));
    }
    return cv_finish(c->s, c->path);
}

mlxn_status cv_from_gguf(const char *path, const cv_opts *o, bool with_tokenizer, cv_set *s) {
    memset(s, 0, sizeof *s);
    MLXN_TRY(mlxn_gguf_open(path, &s->src_gguf));
    gg c = {.path = path, .g = s->src_gguf, .o = o, .s = s};
    mlxn_status st = from_gguf(&c);
    if (st == MLXN_OK && with_tokenizer) st = cv_gguf_tokenizer(s->src_gguf, path, s);
    for (size_t i = 0; i < c.nq; i++) free(c.mods[i]);
    free(c.mods);
    free(c.qs);
    free(c.seen);
    if (st != MLXN_OK) cv_free(s);
    return st;
}
