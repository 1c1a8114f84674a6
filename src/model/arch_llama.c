/* llama (and mistral, which mlx-lm maps onto it): pre-norm blocks with
 * RMSNorm, SwiGLU MLP, optional attention/MLP biases, rope with default,
 * linear or llama3 scaling, optional sliding-window layers via
 * "layer_types", tied or untied head (mlx_lm/models/llama.py). */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "model/model_internal.h"

static mlxn_status parse(const json_t *o, const char *path, mlxn_model_config *c) {
    MLXN_TRY(cfg_common(o, path, c, true, 0));
    MLXN_TRY(cfg_int(o, path, "head_dim", c->hidden / c->n_heads, false, &c->head_dim));
    double theta;
    bool traditional, attn_bias, mlp_bias;
    MLXN_TRY(cfg_float(o, path, "rope_theta", 10000.0, false, &theta));
    MLXN_TRY(cfg_bool(o, path, "rope_traditional", false, &traditional));
    MLXN_TRY(cfg_bool(o, path, "attention_bias", false, &attn_bias));
    MLXN_TRY(cfg_bool(o, path, "mlp_bias", false, &mlp_bias));
    MLXN_TRY(cfg_bool(o, path, "tie_word_embeddings", true, &c->tied));
    c->q_bias = c->k_bias = c->v_bias = c->o_bias = attn_bias;
    c->mlp_bias = mlp_bias;
    c->attn_scale = (float)pow((double)c->head_dim, -0.5);

    const json_t *types = json_object_get(o, "layer_types");
    int window = 0;
    if (types && !json_is_null(types)) {
        if (!json_is_array(types) || (int)json_array_size(types) != c->n_layers)
            return mlxn_fail(MLXN_ERR_FORMAT, "%s: \"layer_types\" must be a list of %d strings", path, c->n_layers);
        MLXN_TRY(cfg_int(o, path, "sliding_window", 0, false, &window));
    }
    for (int i = 0; i < c->n_layers; i++) {
        model_layer_cfg *l = &c->layers[i];
        MLXN_TRY(cfg_rope(json_object_get(o, "rope_scaling"), path, c->head_dim, theta, traditional, &l->rope));
        if (!types || json_is_null(types)) continue;
        const char *t = json_string_value(json_array_get(types, (size_t)i));
        if (t && strcmp(t, "full_attention") == 0) continue;
        if (t && strcmp(t, "sliding_attention") == 0) {
            if (window <= 0)
                return mlxn_fail(MLXN_ERR_FORMAT, "%s: layer %d is sliding_attention but \"sliding_window\" is not set",
                                 path, i);
            l->window = window;
            continue;
        }
        return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                         "%s: layer_types[%d] = \"%s\" is not supported (supported: full_attention, sliding_attention)",
                         path, i, t ? t : "(not a string)");
    }
    return MLXN_OK;
}

static const char *const ALIASES[] = {"mistral", NULL};
const model_arch model_arch_llama = {"llama", ALIASES, parse};
