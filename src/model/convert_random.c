/* Random models of named shapes, for benchmarks and tests.
 *
 * The config.json is what mlx-lm expects for the architecture (the shapes
 * of the real model; rope and norm settings included). Weights are lazy
 * (convert_set.c): each tensor is generated when its shard is written, so
 * an 8B shape never sits in memory. Dense weights: uniform with std 0.02
 * (bf16 unless --dtype). Quantized weights are not quantized from floats
 * (slow for billions of values): the codes are random words and the
 * scales/biases are chosen so the values have about the same spread
 * (affine: scale ~ 0.02 / std(codes), bias centring the codes; mxfp4/mxfp8/
 * nvfp4: a fixed exponent/scale; E4M3 NaN codes avoided). Norm weights are
 * 1 (Gemma: 0, since it multiplies by 1 + w). Deterministic per seed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/convert_internal.h"
#include "quant/quant_layout.h"

typedef struct preset {
    const char *name, *arch;
    int H, L, NH, NKV, D, I, V;
    int tied;
    double theta, eps;
    int max_pos;
    int window, pattern; /* gemma */
} preset;

static const preset PRESETS[] = {
    {"llama-3.2-1b", "llama", 2048, 16, 32, 8, 64, 8192, 128256, 1, 500000.0, 1e-5, 131072, 0, 0},
    {"llama-3-8b", "llama", 4096, 32, 32, 8, 128, 14336, 128256, 0, 500000.0, 1e-5, 8192, 0, 0},
    {"qwen3-4b", "qwen3", 2560, 36, 32, 8, 128, 9728, 151936, 1, 1000000.0, 1e-6, 40960, 0, 0},
    {"gemma-3-4b", "gemma3_text", 2560, 34, 8, 4, 256, 10240, 262208, 1, 1000000.0, 1e-6, 131072, 1024, 6},
    {"smollm2-135m", "llama", 576, 30, 9, 3, 64, 1536, 49152, 1, 100000.0, 1e-5, 8192, 0, 0},
    {"tiny-llama", "llama", 64, 2, 4, 2, 16, 128, 256, 1, 10000.0, 1e-5, 2048, 0, 0},
    {"tiny-qwen3", "qwen3", 64, 2, 4, 2, 16, 128, 256, 1, 1000000.0, 1e-6, 4096, 0, 0},
    {"tiny-gemma3", "gemma3_text", 64, 3, 2, 1, 32, 128, 256, 1, 1000000.0, 1e-6, 4096, 8, 2},
    /* head_dim 64: the smallest a TurboQuant KV cache takes */
    {"tiny-llama-d64", "llama", 128, 2, 4, 2, 64, 256, 256, 1, 10000.0, 1e-5, 2048, 0, 0},
    {"tiny-gemma3-d64", "gemma3_text", 128, 3, 2, 1, 64, 256, 256, 1, 1000000.0, 1e-6, 4096, 8, 2},
};

const char *mlxn_convert_presets(void) {
    return "llama-3.2-1b, llama-3-8b, qwen3-4b, gemma-3-4b, smollm2-135m, tiny-llama, tiny-qwen3, tiny-gemma3, tiny-llama-d64, tiny-gemma3-d64";
}

/* ---- generators (splitmix64: fast, and any seed is fine) ---- */

static uint64_t mix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float unit(uint64_t *x) { return (float)(mix(x) >> 40) * (1.0f / 16777216.0f); } /* [0, 1) */

static void put_float(const cv_tensor *t, void *dst, size_t i, float v) {
    if (t->dtype == MLXN_DTYPE_F32) ((float *)dst)[i] = v;
    else if (t->dtype == MLXN_DTYPE_F16) ((uint16_t *)dst)[i] = mlxn_f32_to_f16(v);
    else ((uint16_t *)dst)[i] = mlxn_f32_to_bf16(v);
}

static size_t numel(const cv_tensor *t) { return t->nbytes / mlxn_dtype_size(t->dtype); }

/* uniform with std fill_scale */
static mlxn_status fill_dense(const cv_tensor *t, void *dst) {
    uint64_t x = t->fill_seed;
    float a = t->fill_scale * 1.7320508f;
    for (size_t i = 0, n = numel(t); i < n; i++) put_float(t, dst, i, (2.0f * unit(&x) - 1.0f) * a);
    return MLXN_OK;
}

static mlxn_status fill_const(const cv_tensor *t, void *dst) {
    for (size_t i = 0, n = numel(t); i < n; i++) put_float(t, dst, i, t->fill_scale);
    return MLXN_OK;
}

/* random code words; fill_bits 8 with fill_scale < 0 marks E4M3 codes (mxfp8) */
static mlxn_status fill_codes(const cv_tensor *t, void *dst) {
    uint64_t x = t->fill_seed;
    uint32_t *w = dst;
    size_t n = numel(t);
    for (size_t i = 0; i < n; i += 2) {
        uint64_t r = mix(&x);
        w[i] = (uint32_t)r;
        if (i + 1 < n) w[i + 1] = (uint32_t)(r >> 32);
    }
    if (t->fill_scale < 0) { /* E4M3: S.1111.111 is NaN, turn it into 448 (S.1111.110) */
        uint8_t *b = dst;
        for (size_t i = 0; i < t->nbytes; i++)
            if ((b[i] & 0x7F) == 0x7F) b[i] ^= 1;
    }
    return MLXN_OK;
}

/* affine scales ~ fill_scale * [0.75, 1.25); biases (fill_bits > 0, same
 * seed) centre the codes: -scale * (2^bits - 1) / 2 */
static mlxn_status fill_affine(const cv_tensor *t, void *dst) {
    uint64_t x = t->fill_seed;
    float centre = t->fill_bits ? -0.5f * (float)((1 << t->fill_bits) - 1) : 1.0f;
    for (size_t i = 0, n = numel(t); i < n; i++) {
        float sc = t->fill_scale * (0.75f + 0.5f * unit(&x));
        /* the bias uses the scale as the model stores it */
        if (t->fill_bits && t->dtype == MLXN_DTYPE_F16) sc = mlxn_f16_to_f32(mlxn_f32_to_f16(sc));
        if (t->fill_bits && t->dtype == MLXN_DTYPE_BF16) sc = mlxn_bf16_to_f32(mlxn_f32_to_bf16(sc));
        put_float(t, dst, i, sc * centre);
    }
    return MLXN_OK;
}

/* fp-mode scale bytes: all equal to fill_bits (an E8M0 or E4M3 byte) */
static mlxn_status fill_bytes(const cv_tensor *t, void *dst) {
    memset(dst, t->fill_bits, t->nbytes);
    return MLXN_OK;
}

/* ---- model ---- */

typedef struct rnd {
    cv_set *s;
    const cv_opts *o;
    const preset *p;
    mlxn_dtype dt;
    uint64_t seed;
    char **mods;
    mlxn_quant_params *qs;
    size_t nq, capq;
} rnd;

static uint64_t next_seed(rnd *r) { return mix(&r->seed); }

static mlxn_status vec(rnd *r, const char *name, int64_t n, float v) {
    return cv_add_lazy(r->s, name, r->dt, 1, &n, fill_const, 0, v, 0);
}

static mlxn_status linear(rnd *r, const char *mod, int64_t out, int64_t in) {
    char name[512];
    mlxn_quant_params q;
    const float std = 0.02f;
    if (!cv_module_quant(r->o, mod, in, r->p->L, &q)) {
        int64_t shape[2] = {out, in};
        snprintf(name, sizeof name, "%s.weight", mod);
        return cv_add_lazy(r->s, name, r->dt, 2, shape, fill_dense, next_seed(r), std, 0);
    }
    if (r->nq == r->capq) {
        size_t cap = r->capq ? 2 * r->capq : 64;
        char **m = realloc(r->mods, cap * sizeof *m);
        if (m) r->mods = m;
        mlxn_quant_params *qq = m ? realloc(r->qs, cap * sizeof *qq) : NULL;
        if (!m || !qq) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        r->qs = qq;
        r->capq = cap;
    }
    if (!(r->mods[r->nq] = strdup(mod))) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    r->qs[r->nq++] = q;
    MLXN_TRY(mlxn_quant_validate(&q, in));
    int64_t wshape[2] = {out, mlxn_quant_words_per_row(&q, in)}, sshape[2] = {out, in / q.group_size};
    snprintf(name, sizeof name, "%s.weight", mod);
    MLXN_TRY(cv_add_lazy(r->s, name, MLXN_DTYPE_U32, 2, wshape, fill_codes, next_seed(r),
                         q.mode == MLXN_QUANT_MXFP8 ? -1.0f : 1.0f, q.bits));
    snprintf(name, sizeof name, "%s.scales", mod);
    if (q.mode == MLXN_QUANT_AFFINE) {
        /* uniform codes on [0, 2^b) have std ~ 2^b / sqrt(12) */
        float sc = std / ((float)(1 << q.bits) / 3.4641016f);
        uint64_t sd = next_seed(r);
        MLXN_TRY(cv_add_lazy(r->s, name, r->dt, 2, sshape, fill_affine, sd, sc, 0));
        snprintf(name, sizeof name, "%s.biases", mod);
        return cv_add_lazy(r->s, name, r->dt, 2, sshape, fill_affine, sd, sc, q.bits);
    }
    /* fp modes: e2m1 codes have std ~ 2.9, e4m3 (as used here) ~ 100 */
    int byte;
    if (q.mode == MLXN_QUANT_NVFP4) byte = mlxn_f32_to_e4m3(std / 2.9f);
    else byte = 127 + (int)lrintf(log2f(std / (q.mode == MLXN_QUANT_MXFP8 ? 100.0f : 2.9f)));
    return cv_add_lazy(r->s, name, MLXN_DTYPE_U8, 2, sshape, fill_bytes, 0, 0, byte);
}

static mlxn_status config(rnd *r) {
    const preset *p = r->p;
    json_t *c = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:b, s:i}", "model_type", p->arch,
                          "hidden_size", p->H, "num_hidden_layers", p->L, "num_attention_heads", p->NH,
                          "num_key_value_heads", p->NKV, "head_dim", p->D, "intermediate_size", p->I, "vocab_size", p->V,
                          "max_position_embeddings", p->max_pos, "rope_theta", json_real(p->theta), "rms_norm_eps",
                          json_real(p->eps), "tie_word_embeddings", p->tied, "bos_token_id", 1);
    if (!c) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    r->s->config = c;
    json_object_set_new(c, "torch_dtype", json_string(r->dt == MLXN_DTYPE_F16 ? "float16" : r->dt == MLXN_DTYPE_F32 ? "float32" : "bfloat16"));
    if (!strcmp(p->name, "llama-3.2-1b"))
        json_object_set_new(c, "rope_scaling",
                            json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor", 32.0,
                                      "low_freq_factor", 1.0, "high_freq_factor", 4.0,
                                      "original_max_position_embeddings", 8192));
    if (!strcmp(p->arch, "gemma3_text")) {
        json_object_set_new(c, "query_pre_attn_scalar", json_integer(p->D));
        json_object_set_new(c, "sliding_window", json_integer(p->window));
        json_object_set_new(c, "sliding_window_pattern", json_integer(p->pattern));
        json_object_set_new(c, "rope_local_base_freq", json_real(10000.0));
        if (p->H > 1000)
            json_object_set_new(c, "rope_scaling", json_pack("{s:s, s:f}", "rope_type", "linear", "factor", 8.0));
    }
    return MLXN_OK;
}

static mlxn_status build(rnd *r) {
    const preset *p = r->p;
    bool gemma = !strcmp(p->arch, "gemma3_text"), qk = gemma || !strcmp(p->arch, "qwen3");
    float one = gemma ? 0.0f : 1.0f;
    int64_t qd = (int64_t)p->NH * p->D, kd = (int64_t)p->NKV * p->D;
    MLXN_TRY(config(r));
    MLXN_TRY(linear(r, "model.embed_tokens", p->V, p->H));
    if (!p->tied) MLXN_TRY(linear(r, "lm_head", p->V, p->H));
    MLXN_TRY(vec(r, "model.norm.weight", p->H, one));
    char pre[64], n[128];
    for (int l = 0; l < p->L; l++) {
        snprintf(pre, sizeof pre, "model.layers.%d", l);
#define N(suffix) (snprintf(n, sizeof n, "%s.%s", pre, suffix), n)
        MLXN_TRY(vec(r, N("input_layernorm.weight"), p->H, one));
        MLXN_TRY(vec(r, N("post_attention_layernorm.weight"), p->H, one));
        if (gemma) {
            MLXN_TRY(vec(r, N("pre_feedforward_layernorm.weight"), p->H, one));
            MLXN_TRY(vec(r, N("post_feedforward_layernorm.weight"), p->H, one));
        }
        if (qk) {
            MLXN_TRY(vec(r, N("self_attn.q_norm.weight"), p->D, one));
            MLXN_TRY(vec(r, N("self_attn.k_norm.weight"), p->D, one));
        }
        MLXN_TRY(linear(r, N("self_attn.q_proj"), qd, p->H));
        MLXN_TRY(linear(r, N("self_attn.k_proj"), kd, p->H));
        MLXN_TRY(linear(r, N("self_attn.v_proj"), kd, p->H));
        MLXN_TRY(linear(r, N("self_attn.o_proj"), p->H, qd));
        MLXN_TRY(linear(r, N("mlp.gate_proj"), p->I, p->H));
        MLXN_TRY(linear(r, N("mlp.up_proj"), p->I, p->H));
        MLXN_TRY(linear(r, N("mlp.down_proj"), p->H, p->I));
#undef N
    }
    if (r->o->quantize)
        MLXN_TRY(cv_record_quant(r->s, (const char *const *)r->mods, r->qs, r->nq, &r->o->q, r->o->recipe != NULL));
    return cv_finish(r->s, p->name);
}

mlxn_status cv_from_random(const char *name, const cv_opts *o, cv_set *s) {
    memset(s, 0, sizeof *s);
    const preset *p = NULL;
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
        if (!strcmp(PRESETS[i].name, name)) p = &PRESETS[i];
    if (!p)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "convert: unknown preset '%s' (presets: %s)", name,
                         mlxn_convert_presets());
    rnd r = {.s = s, .o = o, .p = p, .dt = o->dtype ? o->dtype : MLXN_DTYPE_BF16, .seed = o->seed ^ 0x5EEDull};
    mlxn_status st = build(&r);
    for (size_t i = 0; i < r.nq; i++) free(r.mods[i]);
    free(r.mods);
    free(r.qs);
    if (st != MLXN_OK) cv_free(s);
    return st;
}
