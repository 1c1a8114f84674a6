/* Hugging Face directory (config.json + *.safetensors, dense) -> the
 * in-memory MLX model, as mlx_lm.convert does it:
 *  - tensors mlx-lm's sanitize drops are dropped (rotary_emb.inv_freq;
 *    lm_head.weight when tie_word_embeddings, default true, except Gemma,
 *    which ties only when there is no lm_head);
 *  - floating tensors are cast to the dtype (--dtype, else config.json's
 *    torch_dtype / dtype when it is float16, bfloat16 or float32, else left
 *    as stored);
 *  - with quantization, the linear layers (q/k/v/o_proj, gate/up/down_proj,
 *    lm_head) and the embedding are quantized from the cast weights with
 *    MLX's rounding (mlxn_quantize, bit-exact with MLX's CPU kernel) when
 *    their input size is a multiple of the group, per convert_quant.c;
 *  - config.json is the source's (minus _name_or_path) plus
 *    "quantization" / "quantization_config";
 *  - the tokenizer and generation files are copied by the writer.
 * A quantized source (config "quantization" or "quantization_config") is
 * refused: requantizing would compound the error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/convert_internal.h"
#include "model/model_internal.h"

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* The module paths mlx-lm can quantize (Linear and Embedding layers). */
static bool quantizable(const char *name) {
    static const char *const MODS[] = {".q_proj.weight",    ".k_proj.weight",  ".v_proj.weight", ".o_proj.weight",
                                       ".gate_proj.weight", ".up_proj.weight", ".down_proj.weight",
                                       "embed_tokens.weight"};
    if (!strcmp(name, "lm_head.weight") || ends_with(name, ".lm_head.weight")) return true;
    for (size_t i = 0; i < sizeof MODS / sizeof MODS[0]; i++)
        if (ends_with(name, MODS[i])) return true;
    return false;
}

static mlxn_dtype dtype_from_config(const json_t *cfg) {
    const char *d = json_string_value(json_object_get(cfg, "torch_dtype"));
    if (!d) d = json_string_value(json_object_get(cfg, "dtype"));
    if (!d) return 0;
    if (!strcmp(d, "float16")) return MLXN_DTYPE_F16;
    if (!strcmp(d, "bfloat16")) return MLXN_DTYPE_BF16;
    if (!strcmp(d, "float32")) return MLXN_DTYPE_F32;
    return 0;
}

static float to_f32(mlxn_dtype dt, const void *p, int64_t i) {
    uint16_t h;
    float f;
    if (dt == MLXN_DTYPE_F32) {
        memcpy(&f, (const char *)p + 4 * i, 4);
        return f;
    }
    memcpy(&h, (const char *)p + 2 * i, 2);
    return dt == MLXN_DTYPE_F16 ? mlxn_f16_to_f32(h) : mlxn_bf16_to_f32(h);
}

static void cast(mlxn_dtype from, const void *src, mlxn_dtype to, void *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = to_f32(from, src, i);
        if (to == MLXN_DTYPE_F32) memcpy((char *)dst + 4 * i, &v, 4);
        else {
            uint16_t h = to == MLXN_DTYPE_F16 ? mlxn_f32_to_f16(v) : mlxn_f32_to_bf16(v);
            memcpy((char *)dst + 2 * i, &h, 2);
        }
    }
}

static mlxn_status hf(const char *dir, const cv_opts *o, cv_set *s, char ***mods, mlxn_quant_params **qs, size_t *nq) {
    char cfgpath[4096];
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(cfgpath, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return mlxn_fail(MLXN_ERR_FORMAT, "%s: cannot read: %s (line %d)", cfgpath, jerr.text, jerr.line);
    s->config = root;
    if (!json_is_object(root)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: not a JSON object", cfgpath);
    json_object_del(root, "_name_or_path");
    const char *type = json_string_value(json_object_get(root, "model_type"));
    static const char *const OK_TYPES[] = {"llama", "mistral", "qwen2", "qwen3", "gemma3_text"};
    bool ok = false;
    for (size_t i = 0; type && i < sizeof OK_TYPES / sizeof OK_TYPES[0]; i++) ok |= !strcmp(type, OK_TYPES[i]);
    if (!ok)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                         "%s: model_type \"%s\" cannot be converted (supported: llama, mistral, qwen2, qwen3, gemma3_text)",
                         cfgpath, type ? type : "(missing)");
    if (json_object_get(root, "quantization") || json_object_get(root, "quantization_config"))
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: the model is already quantized (convert reads dense checkpoints)", cfgpath);
    int n_layers = 0;
    MLXN_TRY(cfg_int(root, cfgpath, "num_hidden_layers", 0, o->recipe != NULL, &n_layers));
    bool gemma = !strcmp(type, "gemma3_text");
    bool tied = true;
    MLXN_TRY(cfg_bool(root, cfgpath, "tie_word_embeddings", true, &tied));
    mlxn_dtype want = o->dtype ? o->dtype : dtype_from_config(root);

    MLXN_TRY(mlxn_weights_open(dir, &s->src_st));
    size_t n = mlxn_weights_count(s->src_st);
    *mods = calloc(n ? n : 1, sizeof **mods);
    *qs = calloc(n ? n : 1, sizeof **qs);
    if (!*mods || !*qs) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    for (size_t i = 0; i < n; i++) {
        const mlxn_weight_info *w = mlxn_weights_at(s->src_st, i);
        char origin[4400];
        snprintf(origin, sizeof origin, "%s tensor %s", w->file, w->name);
        if (strstr(w->name, "rotary_emb.inv_freq")) continue;
        if (!gemma && tied && !strcmp(w->name, "lm_head.weight")) continue;
        const void *bytes = mlxn_weights_data(s->src_st, w);
        if (!mlxn_dtype_is_float(w->dtype) ||
            (w->dtype != MLXN_DTYPE_F32 && w->dtype != MLXN_DTYPE_F16 && w->dtype != MLXN_DTYPE_BF16))
            return mlxn_fail(MLXN_ERR_DTYPE, "%s: tensor %s has dtype %s (convert reads f32, f16 and bf16 checkpoints)",
                             w->file, w->name, mlxn_dtype_name(w->dtype));
        mlxn_dtype dt = want ? want : w->dtype;
        int64_t numel = 1;
        for (int d = 0; d < w->ndim; d++) numel *= w->shape[d];
        void *casted = NULL;
        if (dt != w->dtype) {
            if (!(casted = malloc((size_t)numel * mlxn_dtype_size(dt) + 1)))
                return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: %s: out of memory", origin);
            cast(w->dtype, bytes, dt, casted, numel);
            bytes = casted;
        }
        char mod[512];
        snprintf(mod, sizeof mod, "%.*s", (int)strlen(w->name) - 7, w->name);
        mlxn_quant_params q;
        mlxn_status st;
        if (w->ndim == 2 && quantizable(w->name) && cv_module_quant(o, mod, w->shape[1], n_layers, &q)) {
            st = cv_quantize_into(s, mod, origin, &q, dt, bytes, w->shape[0], w->shape[1]);
            if (st == MLXN_OK && !((*mods)[*nq] = strdup(mod))) st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
            if (st == MLXN_OK) (*qs)[(*nq)++] = q;
            free(casted);
        } else if (casted) {
            void *d;
            st = cv_add(s, w->name, origin, dt, w->ndim, w->shape, &d);
            if (st == MLXN_OK) memcpy(d, casted, (size_t)numel * mlxn_dtype_size(dt));
            free(casted);
        } else {
            st = cv_add_borrowed(s, w->name, origin, dt, w->ndim, w->shape, bytes);
        }
        MLXN_TRY(st);
    }
    if (o->quantize) MLXN_TRY(cv_record_quant(s, (const char *const *)*mods, *qs, *nq, &o->q, o->recipe != NULL));
    s->copy_dir = strdup(dir);
    if (!s->copy_dir) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    return cv_finish(s, dir);
}

mlxn_status cv_from_hf(const char *dir, const cv_opts *o, cv_set *s) {
    memset(s, 0, sizeof *s);
    char **mods = NULL;
    mlxn_quant_params *qs = NULL;
    size_t nq = 0;
    mlxn_status st = hf(dir, o, s, &mods, &qs, &nq);
    for (size_t i = 0; i < nq; i++) free(mods[i]);
    free(mods);
    free(qs);
    if (st != MLXN_OK) cv_free(s);
    return st;
}
