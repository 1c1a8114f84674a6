/* config.json readers shared by the architecture files: typed getters with
 * defaults (a missing required key or a key of the wrong type is an error
 * naming the file and the key), the common shape keys, and the rotary
 * embedding variants mlx-lm's initialize_rope builds (default, linear,
 * llama3). The llama3 frequency table is computed in f32 with the same
 * operations, in the same order, as mlx-lm's Llama3RoPE. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/model_internal.h"

/* A key that is absent or JSON null counts as absent (HF configs write
 * "head_dim": null). */
static const json_t *get(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

mlxn_status cfg_int(const json_t *o, const char *path, const char *key, int def, bool required, int *out) {
    const json_t *v = get(o, key);
    if (!v) {
        if (required) return mlxn_fail(MLXN_ERR_FORMAT, "%s: missing required key \"%s\"", path, key);
        *out = def;
        return MLXN_OK;
    }
    double d;
    if (json_is_integer(v)) d = (double)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) d = json_real_value(v);
    else return mlxn_fail(MLXN_ERR_FORMAT, "%s: \"%s\" must be an integer", path, key);
    if (d < -2147483647.0 || d > 2147483647.0)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: \"%s\" = %.0f is out of range", path, key, d);
    *out = (int)d;
    return MLXN_OK;
}

mlxn_status cfg_float(const json_t *o, const char *path, const char *key, double def, bool required,
                      double *out) {
    const json_t *v = get(o, key);
    if (!v) {
        if (required) return mlxn_fail(MLXN_ERR_FORMAT, "%s: missing required key \"%s\"", path, key);
        *out = def;
        return MLXN_OK;
    }
    if (!json_is_number(v)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: \"%s\" must be a number", path, key);
    *out = json_number_value(v);
    return MLXN_OK;
}

mlxn_status cfg_bool(const json_t *o, const char *path, const char *key, bool def, bool *out) {
    const json_t *v = get(o, key);
    if (!v) {
        *out = def;
        return MLXN_OK;
    }
    if (!json_is_boolean(v)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: \"%s\" must be true or false", path, key);
    *out = json_is_true(v);
    return MLXN_OK;
}

static mlxn_status positive(const char *path, const char *key, int v) {
    if (v <= 0) return mlxn_fail(MLXN_ERR_FORMAT, "%s: \"%s\" must be positive, got %d", path, key, v);
    return MLXN_OK;
}

mlxn_status cfg_common(const json_t *o, const char *path, mlxn_model_config *c, bool eps_required,
                       double eps_default) {
    MLXN_TRY(cfg_int(o, path, "hidden_size", 0, true, &c->hidden));
    MLXN_TRY(cfg_int(o, path, "num_hidden_layers", 0, true, &c->n_layers));
    MLXN_TRY(cfg_int(o, path, "intermediate_size", 0, true, &c->inter));
    MLXN_TRY(cfg_int(o, path, "num_attention_heads", 0, true, &c->n_heads));
    MLXN_TRY(cfg_int(o, path, "num_key_value_heads", c->n_heads, false, &c->n_kv_heads));
    MLXN_TRY(cfg_int(o, path, "vocab_size", 0, true, &c->vocab));
    MLXN_TRY(cfg_int(o, path, "max_position_embeddings", 0, false, &c->max_pos));
    double eps;
    MLXN_TRY(cfg_float(o, path, "rms_norm_eps", eps_default, eps_required, &eps));
    c->norm_eps = (float)eps;
    MLXN_TRY(positive(path, "hidden_size", c->hidden));
    MLXN_TRY(positive(path, "num_hidden_layers", c->n_layers));
    MLXN_TRY(positive(path, "intermediate_size", c->inter));
    MLXN_TRY(positive(path, "num_attention_heads", c->n_heads));
    MLXN_TRY(positive(path, "num_key_value_heads", c->n_kv_heads));
    MLXN_TRY(positive(path, "vocab_size", c->vocab));
    if (c->n_heads % c->n_kv_heads != 0)
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)",
                         path, c->n_heads, c->n_kv_heads);
    if (c->n_layers > 100000) return mlxn_fail(MLXN_ERR_FORMAT, "%s: num_hidden_layers = %d", path, c->n_layers);
    free(c->layers);
    c->layers = calloc((size_t)c->n_layers, sizeof *c->layers);
    if (!c->layers) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    return MLXN_OK;
}

/* mlx-lm's Llama3RoPE frequency table, in f32 like MLX computes it. */
static mlxn_status llama3_freqs(const json_t *sc, const char *path, int dims, double theta, float *freqs) {
    double factor, low, high, old_ctx;
    MLXN_TRY(cfg_float(sc, path, "factor", 0, true, &factor));
    MLXN_TRY(cfg_float(sc, path, "low_freq_factor", 1.0, false, &low));
    MLXN_TRY(cfg_float(sc, path, "high_freq_factor", 4.0, false, &high));
    MLXN_TRY(cfg_float(sc, path, "original_max_position_embeddings", 8192, false, &old_ctx));
    if (high == low) return mlxn_fail(MLXN_ERR_FORMAT, "%s: rope_scaling: high_freq_factor equals low_freq_factor", path);
    float low_wl = (float)(old_ctx / low), high_wl = (float)(old_ctx / high);
    float two_pi = (float)(2.0 * M_PI), f_factor = (float)factor, f_low = (float)low;
    float f_span = (float)(high - low), f_old = (float)old_ctx;
    for (int i = 0; i < dims / 2; i++) {
        float f = powf((float)theta, (float)(2 * i) / (float)dims);
        float wl = two_pi * f;
        if (wl > low_wl) f = f * f_factor;
        if (wl > high_wl && wl < low_wl) {
            float smooth = (f_old / wl - f_low) / f_span;
            f = f / ((1.0f - smooth) / f_factor + smooth);
        }
        freqs[i] = f;
    }
    return MLXN_OK;
}

mlxn_status cfg_rope(const json_t *scaling, const char *path, int dims, double theta, bool traditional,
                     model_rope *out) {
    memset(out, 0, sizeof *out);
    out->kind = ROPE_DEFAULT;
    out->base = (float)theta;
    out->scale = 1.0f;
    out->traditional = traditional;
    if (!(theta > 0)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: rope_theta must be positive", path);
    if (!scaling || json_is_null(scaling)) return MLXN_OK;
    if (!json_is_object(scaling)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: rope_scaling must be an object", path);
    const json_t *t = get(scaling, "type");
    if (!t) t = get(scaling, "rope_type");
    const char *type = t && json_is_string(t) ? json_string_value(t) : "default";
    if (strcmp(type, "default") == 0) return MLXN_OK;
    if (strcmp(type, "linear") == 0) {
        double factor;
        MLXN_TRY(cfg_float(scaling, path, "factor", 0, true, &factor));
        if (!(factor > 0)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: rope_scaling factor must be positive", path);
        out->scale = (float)(1.0 / factor);
        return MLXN_OK;
    }
    if (strcmp(type, "llama3") == 0) {
        out->kind = ROPE_FREQS;
        out->freqs = malloc(sizeof(float) * (size_t)(dims / 2 > 0 ? dims / 2 : 1));
        if (!out->freqs) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        mlxn_status st = llama3_freqs(scaling, path, dims, theta, out->freqs);
        if (st != MLXN_OK) {
            free(out->freqs);
            out->freqs = NULL;
        }
        return st;
    }
    return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: rope_scaling type \"%s\" is not supported (supported: default, linear, llama3)",
                     path, type);
}

mlxn_status cfg_rope_copy(const model_rope *r, int dims, model_rope *out) {
    *out = *r;
    if (r->freqs) {
        out->freqs = malloc(sizeof(float) * (size_t)(dims / 2));
        if (!out->freqs) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "model config: out of memory");
        memcpy(out->freqs, r->freqs, sizeof(float) * (size_t)(dims / 2));
    }
    return MLXN_OK;
}

void cfg_free(mlxn_model_config *c) {
    if (c->layers)
        for (int i = 0; i < c->n_layers; i++) free(c->layers[i].rope.freqs);
    free(c->layers);
    c->layers = NULL;
}
