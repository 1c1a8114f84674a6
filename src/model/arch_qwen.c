/* qwen2 (bias on q/k/v, head_dim = hidden / heads) and qwen3 (no biases,
 * explicit head_dim, per-head RMSNorm of q and k before rope): llama-style
 * pre-norm blocks with SwiGLU (mlx_lm/models/qwen2.py, qwen3.py). */
#include <math.h>

#include "core/internal.h"
#include "model/model_internal.h"

static mlxn_status ropes(const json_t *o, const char *path, mlxn_model_config *c, double theta, bool traditional,
                         const json_t *scaling) {
    for (int i = 0; i < c->n_layers; i++)
        MLXN_TRY(cfg_rope(scaling, path, c->head_dim, theta, traditional, &c->layers[i].rope));
    (void)o;
    return MLXN_OK;
}

static mlxn_status parse_qwen2(const json_t *o, const char *path, mlxn_model_config *c) {
    int kv;
    MLXN_TRY(cfg_int(o, path, "num_key_value_heads", 0, true, &kv));
    MLXN_TRY(cfg_common(o, path, c, true, 0));
    c->head_dim = c->hidden / c->n_heads;
    double theta;
    bool traditional;
    MLXN_TRY(cfg_float(o, path, "rope_theta", 1000000.0, false, &theta));
    MLXN_TRY(cfg_bool(o, path, "rope_traditional", false, &traditional));
    MLXN_TRY(cfg_bool(o, path, "tie_word_embeddings", true, &c->tied));
    c->q_bias = c->k_bias = c->v_bias = true;
    c->attn_scale = (float)pow((double)c->head_dim, -0.5);
    return ropes(o, path, c, theta, traditional, json_object_get(o, "rope_scaling"));
}

static mlxn_status parse_qwen3(const json_t *o, const char *path, mlxn_model_config *c) {
    int kv;
    MLXN_TRY(cfg_int(o, path, "num_key_value_heads", 0, true, &kv));
    MLXN_TRY(cfg_common(o, path, c, true, 0));
    MLXN_TRY(cfg_int(o, path, "head_dim", 0, true, &c->head_dim));
    MLXN_TRY(cfg_int(o, path, "max_position_embeddings", 0, true, &c->max_pos));
    if (!json_is_boolean(json_object_get(o, "tie_word_embeddings")))
        return mlxn_fail(MLXN_ERR_FORMAT, "%s: missing required key \"tie_word_embeddings\"", path);
    MLXN_TRY(cfg_bool(o, path, "tie_word_embeddings", true, &c->tied));
    /* transformers >= 5 nests rope_theta and the scaling under rope_parameters */
    const json_t *params = json_object_get(o, "rope_parameters");
    const json_t *scaling = json_object_get(o, "rope_scaling");
    if ((!scaling || json_is_null(scaling)) && json_is_object(params)) scaling = params;
    double theta;
    const json_t *src = json_object_get(o, "rope_theta") && !json_is_null(json_object_get(o, "rope_theta"))
                            ? o
                            : (json_is_object(params) ? params : o);
    MLXN_TRY(cfg_float(src, path, "rope_theta", 0, true, &theta));
    c->qk_norm = true;
    c->attn_scale = (float)pow((double)c->head_dim, -0.5);
    return ropes(o, path, c, theta, false, scaling);
}

const model_arch model_arch_qwen2 = {"qwen2", NULL, parse_qwen2};
const model_arch model_arch_qwen3 = {"qwen3", NULL, parse_qwen3};
