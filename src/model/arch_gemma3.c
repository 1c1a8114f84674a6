/* gemma3_text, and the text part of multimodal gemma3 checkpoints
 * (mlx_lm/models/gemma3_text.py, gemma3.py):
 *  - RMSNorm with (1 + w), four norms per block (sandwich: the attention
 *    and MLP outputs are normed before their residual adds);
 *  - per-head q/k RMSNorm before rope; GeGLU MLP with tanh gelu;
 *  - embeddings scaled by sqrt(hidden) rounded to bf16;
 *  - attention scale query_pre_attn_scalar^-0.5;
 *  - layer i is global when (i + 1) % sliding_window_pattern == 0, else a
 *    sliding-window layer (rotating cache) with the local rope base; rope
 *    scaling applies to global layers only;
 *  - the head is tied unless the files hold lm_head.weight (decided in
 *    weights.c, as mlx-lm's sanitize does).
 * Multimodal checkpoints (model_type "gemma3") keep the text model under
 * "text_config" and its tensors under "language_model."; the vision tower
 * is ignored. Missing keys take mlx-lm's ModelArgs defaults. */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "model/model_internal.h"

static int has(const json_t *o, const char *k) {
    const json_t *v = json_object_get(o, k);
    return v && !json_is_null(v);
}

static mlxn_status set_default_int(json_t *o, const char *k, int v) {
    if (has(o, k)) return MLXN_OK;
    if (json_object_set_new(o, k, json_integer(v)) != 0)
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "gemma3 config: out of memory");
    return MLXN_OK;
}

static mlxn_status parse_text(const json_t *in, const char *path, mlxn_model_config *c) {
    /* mlx-lm's gemma3_text.ModelArgs defaults for the shape keys */
    json_t *o = json_deep_copy(in);
    if (!o) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    mlxn_status st = set_default_int(o, "hidden_size", 1152);
    if (st == MLXN_OK) st = set_default_int(o, "num_hidden_layers", 26);
    if (st == MLXN_OK) st = set_default_int(o, "intermediate_size", 6912);
    if (st == MLXN_OK) st = set_default_int(o, "num_attention_heads", 4);
    if (st == MLXN_OK) st = set_default_int(o, "num_key_value_heads", 1);
    if (st == MLXN_OK) st = set_default_int(o, "vocab_size", 262144);
    if (st == MLXN_OK) st = set_default_int(o, "max_position_embeddings", 32768);
    if (st == MLXN_OK) st = cfg_common(o, path, c, false, 1e-6);
    double theta = 0, local = 0, qpas = 0;
    int window = 0, pattern = 0;
    if (st == MLXN_OK) st = cfg_int(o, path, "head_dim", 256, false, &c->head_dim);
    if (st == MLXN_OK) st = cfg_float(o, path, "rope_theta", 1000000.0, false, &theta);
    if (st == MLXN_OK) st = cfg_float(o, path, "rope_local_base_freq", 10000.0, false, &local);
    if (st == MLXN_OK) st = cfg_float(o, path, "query_pre_attn_scalar", 256, false, &qpas);
    if (st == MLXN_OK) st = cfg_int(o, path, "sliding_window", 512, false, &window);
    if (st == MLXN_OK) st = cfg_int(o, path, "sliding_window_pattern", 6, false, &pattern);
    if (st == MLXN_OK && (pattern <= 0 || window <= 0 || !(qpas > 0)))
        st = mlxn_fail(MLXN_ERR_FORMAT, "%s: sliding_window, sliding_window_pattern and query_pre_attn_scalar must be positive",
                       path);
    for (int i = 0; st == MLXN_OK && i < c->n_layers; i++) {
        model_layer_cfg *l = &c->layers[i];
        if ((i + 1) % pattern != 0) {
            l->window = window;
            st = cfg_rope(NULL, path, c->head_dim, local, false, &l->rope);
        } else {
            st = cfg_rope(json_object_get(o, "rope_scaling"), path, c->head_dim, theta, false, &l->rope);
        }
    }
    json_decref(o);
    MLXN_TRY(st);
    c->norm_offset = 1.0f;
    c->qk_norm = true;
    c->sandwich_norms = true;
    c->gelu_mlp = true;
    c->attn_scale = (float)pow(qpas, -0.5);
    c->embed_scale = mlxn_bf16_to_f32(mlxn_f32_to_bf16((float)sqrt((double)c->hidden)));
    c->tied = true;
    c->tie_from_files = true; /* weights.c unties it when lm_head.weight exists */
    return MLXN_OK;
}

static mlxn_status parse_mm(const json_t *o, const char *path, mlxn_model_config *c) {
    const json_t *tc = json_object_get(o, "text_config");
    if (!json_is_object(tc)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: model_type gemma3 needs a \"text_config\" object", path);
    json_t *t = json_deep_copy(tc);
    if (!t) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    /* as mlx_lm/models/gemma3.py: the top-level vocab_size wins; other head defaults */
    int vocab;
    mlxn_status st = cfg_int(o, path, "vocab_size", 262208, false, &vocab);
    if (st == MLXN_OK && json_object_set_new(t, "vocab_size", json_integer(vocab)) != 0)
        st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    if (st == MLXN_OK) st = set_default_int(t, "num_attention_heads", 8);
    if (st == MLXN_OK) st = set_default_int(t, "num_key_value_heads", 4);
    if (st == MLXN_OK) st = parse_text(t, path, c);
    json_decref(t);
    MLXN_TRY(st);
    strcpy(c->prefix, "language_model.");
    return MLXN_OK;
}

const model_arch model_arch_gemma3_text = {"gemma3_text", NULL, parse_text};
const model_arch model_arch_gemma3 = {"gemma3", NULL, parse_mm};
