/* Quantization choices of a conversion, as mlx-lm's convert makes them:
 *  - defaults per mode (affine 4-bit group 64, mxfp4 4/32, mxfp8 8/32,
 *    nvfp4 4/16), as mlx_lm.utils.quantize_model;
 *  - a module is quantized when its input size (weight.shape[-1]) is a
 *    multiple of the group size;
 *  - the mixed recipes (mlx_lm/convert.py mixed_quant_predicate_builder):
 *    low/high bits = 2/6, 3/4, 3/6, 4/6; layer i of L "uses more bits"
 *    when i < L/8, i >= 7L/8 or (i - L/8) % 3 == 2; v_proj and down_proj of
 *    such layers and lm_head get the high bits, everything else the low
 *    bits (paths without a layer index count as layer 0); every quantized
 *    module then has its own entry in config["quantization"];
 *  - config["quantization"] holds the default {group_size, bits, mode}
 *    plus an entry per module that differs, and "quantization_config" is
 *    the same object (mlx_lm.utils.save_config). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/convert_internal.h"

static void mode_defaults(mlxn_quant_mode m, int *bits, int *group) {
    switch (m) {
    case MLXN_QUANT_MXFP4: *bits = 4, *group = 32; break;
    case MLXN_QUANT_MXFP8: *bits = 8, *group = 32; break;
    case MLXN_QUANT_NVFP4: *bits = 4, *group = 16; break;
    default: *bits = 4, *group = 64; break;
    }
}

mlxn_status cv_resolve_opts(const mlxn_convert_params *p, cv_opts *o) {
    memset(o, 0, sizeof *o);
    mlxn_convert_params none = {0};
    if (!p) p = &none;
    o->quantize = p->quantize || p->recipe;
    o->q.mode = p->mode;
    int db, dg;
    mode_defaults(p->mode, &db, &dg);
    o->q.bits = p->bits ? p->bits : db;
    o->q.group_size = p->group_size ? p->group_size : dg;
    if (p->bits < 0 || p->group_size < 0 || p->max_shard_bytes < 0)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "convert: bits, group_size and max_shard_bytes must be >= 0");
    /* checks bits/group for the mode (cols = group * 32 always packs) */
    mlxn_status st = mlxn_quant_validate(&o->q, (int64_t)o->q.group_size * 32);
    if (st != MLXN_OK) return mlxn_fail_context(st, "convert: ");
    if (p->recipe) {
        static const struct {
            const char *name;
            int low, high;
        } R[] = {{"mixed_2_6", 2, 6}, {"mixed_3_4", 3, 4}, {"mixed_3_6", 3, 6}, {"mixed_4_6", 4, 6}};
        for (size_t i = 0; i < sizeof R / sizeof R[0]; i++)
            if (!strcmp(p->recipe, R[i].name)) {
                o->recipe = R[i].name;
                o->recipe_low = R[i].low;
                o->recipe_high = R[i].high;
            }
        if (!o->recipe)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                             "convert: unknown recipe '%s' (mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6)", p->recipe);
        if (p->mode != MLXN_QUANT_AFFINE)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "convert: recipe %s needs mode affine (as in mlx-lm)", p->recipe);
    }
    if (p->dtype && p->dtype != MLXN_DTYPE_F16 && p->dtype != MLXN_DTYPE_BF16 && p->dtype != MLXN_DTYPE_F32)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "convert: dtype %s is not f16, bf16 or f32", mlxn_dtype_name(p->dtype));
    o->dtype = p->dtype;
    o->requant.mode = MLXN_QUANT_AFFINE;
    o->requant.bits = 8;
    o->requant.group_size = 32;
    if (p->bits) o->requant = o->q;
    o->max_shard_bytes = p->max_shard_bytes ? p->max_shard_bytes : (int64_t)5 << 30;
    o->seed = p->seed;
    return MLXN_OK;
}

/* The layer index mlx-lm's recipe reads off a path (0 without one). */
static int layer_index(const char *path) {
    const char *p = strstr(path, "layers.");
    if (!p) return 0;
    return atoi(p + 7);
}

bool cv_module_quant(const cv_opts *o, const char *path, int64_t in_features, int n_layers, mlxn_quant_params *q) {
    if (!o->quantize || in_features % o->q.group_size != 0) return false;
    *q = o->q;
    if (!o->recipe) return true;
    int i = layer_index(path), L = n_layers;
    bool more = i < L / 8 || i >= 7 * L / 8 || (i - L / 8) % 3 == 2;
    bool high = (strstr(path, "v_proj") && more) || (strstr(path, "down_proj") && more) || strstr(path, "lm_head");
    q->bits = high ? o->recipe_high : o->recipe_low;
    return true;
}

static json_t *quant_obj(const mlxn_quant_params *q) {
    return json_pack("{s:i, s:i, s:s}", "group_size", q->group_size, "bits", q->bits, "mode",
                     mlxn_quant_mode_name(q->mode));
}

static bool same(const mlxn_quant_params *a, const mlxn_quant_params *b) {
    return a->mode == b->mode && a->bits == b->bits && a->group_size == b->group_size;
}

mlxn_status cv_record_quant(cv_set *s, const char *const *mods, const mlxn_quant_params *qs, size_t n,
                            const mlxn_quant_params *def, bool per_module_always) {
    json_t *root = quant_obj(def);
    if (!root) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!per_module_always && same(&qs[i], def)) continue;
        json_t *e = quant_obj(&qs[i]);
        if (!e || json_object_set_new(root, mods[i], e) != 0) {
            json_decref(root);
            return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        }
    }
    if (json_object_set(s->config, "quantization", root) != 0 ||
        json_object_set_new(s->config, "quantization_config", root) != 0)
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    return MLXN_OK;
}

mlxn_status cv_quantize_into(cv_set *s, const char *mod, const char *origin, const mlxn_quant_params *q,
                             mlxn_dtype w_dt, const void *w, int64_t rows, int64_t cols) {
    mlxn_status st = mlxn_quant_validate(q, cols);
    if (st != MLXN_OK) return mlxn_fail_context(st, "convert: %s: ", origin ? origin : mod);
    char name[512];
    int64_t wshape[2] = {rows, mlxn_quant_words_per_row(q, cols)}, sshape[2] = {rows, cols / q->group_size};
    mlxn_dtype sdt = mlxn_quant_scale_dtype(q, w_dt);
    void *wq, *sc, *bi = NULL;
    snprintf(name, sizeof name, "%s.weight", mod);
    MLXN_TRY(cv_add(s, name, origin, MLXN_DTYPE_U32, 2, wshape, &wq));
    snprintf(name, sizeof name, "%s.scales", mod);
    MLXN_TRY(cv_add(s, name, origin, sdt, 2, sshape, &sc));
    if (q->mode == MLXN_QUANT_AFFINE) {
        snprintf(name, sizeof name, "%s.biases", mod);
        MLXN_TRY(cv_add(s, name, origin, sdt, 2, sshape, &bi));
    }
    st = mlxn_quantize(q, w_dt, w, rows, cols, wq, sc, bi);
    if (st != MLXN_OK) return mlxn_fail_context(st, "convert: quantizing %s: ", origin ? origin : mod);
    return MLXN_OK;
}
