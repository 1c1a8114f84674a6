/* mlxn_model_load / mlxn_model_free: read config.json, pick the
 * architecture by model_type, parse it into the shared configuration, open
 * the safetensors files and bind the weights. A .gguf file is converted in
 * memory to the MLX model `mlxn convert` would write (convert_gguf.c) and
 * bound from there, so the same tensors and kernels run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/internal.h"
#include "model/convert_internal.h"
#include "model/model_internal.h"

static void model_release(mlxn_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) mlxn_tensor_release(&m->owned[i]);
    free(m->owned);
    free(m->layers);
    cfg_free(&m->cfg);
    mlxn_weights_free(m->weights);
    if (m->mem) cv_free(m->mem);
    free(m->mem);
    free(m->mem_info);
    free(m);
}

void mlxn_model_free(mlxn_model *m) { model_release(m); }

const mlxn_model_info *mlxn_model_get_info(const mlxn_model *m) { return m ? &m->info : NULL; }

/* config["quantization"], or a legacy "quantization_config" that is the
 * same object; other quantization schemes are not MLX's and unsupported. */
static mlxn_status find_quant(const json_t *root, const char *cfgpath, const json_t **out) {
    *out = NULL;
    const json_t *q = json_object_get(root, "quantization");
    if (!q || json_is_null(q)) {
        const json_t *qc = json_object_get(root, "quantization_config");
        if (json_is_object(qc)) {
            const json_t *meth = json_object_get(qc, "quant_method");
            if (meth)
                return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                                 "%s: quantization_config.quant_method \"%s\" is not an MLX quantization "
                                 "(convert the model to MLX format first)",
                                 cfgpath, json_is_string(meth) ? json_string_value(meth) : "?");
            if (json_object_get(qc, "bits") || json_object_get(qc, "group_size")) q = qc;
        }
    }
    if (!q || json_is_null(q)) return MLXN_OK;
    if (!json_is_object(q)) return mlxn_fail(MLXN_ERR_FORMAT, "%s: \"quantization\" must be an object", cfgpath);
    *out = q;
    return MLXN_OK;
}

static void fill_info(mlxn_model *m) {
    const mlxn_model_config *c = &m->cfg;
    mlxn_model_info *i = &m->info;
    i->arch = c->arch;
    i->model_type = c->model_type;
    i->vocab_size = c->vocab;
    i->hidden_size = c->hidden;
    i->n_layers = c->n_layers;
    i->n_heads = c->n_heads;
    i->n_kv_heads = c->n_kv_heads;
    i->head_dim = c->head_dim;
    i->intermediate_size = c->inter;
    i->max_position_embeddings = c->max_pos;
    i->tied_embeddings = c->tied;
    for (int l = 0; l < c->n_layers; l++)
        if (c->layers[l].window > 0) {
            i->n_sliding_layers++;
            i->sliding_window = c->layers[l].window;
        }
}

/* Configure m from a parsed config (cfgpath names it in messages) and bind
 * its tensors: from the safetensors of directory `path`, or from m->mem
 * when set. */
static mlxn_status load_config(const char *path, const char *cfgpath, const json_t *root,
                               const mlxn_model_params *params, mlxn_model *m) {
    mlxn_status st = MLXN_OK;
    const json_t *jt = json_object_get(root, "model_type");
    const char *type = json_string_value(jt);
    const model_arch *arch = NULL;
    const json_t *quant = NULL;
    bool qa = false;
    if (!json_is_object(root)) st = mlxn_fail(MLXN_ERR_FORMAT, "%s: not a JSON object", cfgpath);
    else if (!type) st = mlxn_fail(MLXN_ERR_FORMAT, "%s: missing \"model_type\"", cfgpath);
    else if (!(arch = model_arch_find(type)))
        st = mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (supported: %s)", cfgpath, type,
                       model_arch_list());
    if (st == MLXN_OK) {
        snprintf(m->cfg.arch, sizeof m->cfg.arch, "%s", arch->name);
        snprintf(m->cfg.model_type, sizeof m->cfg.model_type, "%s", type);
        st = arch->parse(root, cfgpath, &m->cfg);
    }
    if (st == MLXN_OK && (m->cfg.head_dim <= 0 || m->cfg.head_dim % 2))
        st = mlxn_fail(MLXN_ERR_FORMAT, "%s: head_dim %d must be positive and even", cfgpath, m->cfg.head_dim);
    if (st == MLXN_OK) st = cfg_bool(root, cfgpath, "quantize_activations", false, &qa);
    if (st == MLXN_OK && qa)
        st = mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: quantize_activations is not supported", cfgpath);
    if (st == MLXN_OK) st = find_quant(root, cfgpath, &quant);
    if (st == MLXN_OK && !m->mem) {
        st = mlxn_weights_open(path, &m->weights);
        if (st != MLXN_OK) mlxn_fail_context(st, "loading model %s: ", path);
    }
    if (st == MLXN_OK) {
        m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
        if (!m->layers) st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    if (st == MLXN_OK && !m->dry) {
        if (params) {
            m->progress = params->progress;
            m->progress_user = params->progress_user;
        }
        int fuse = params ? params->fuse_projections : 0;
        if (fuse == 0)
            fuse = mlxn_device_get_kind(m->dev) == MLXN_DEVICE_CPU ? MLXN_FUSE_DEFAULT_CPU : MLXN_FUSE_DEFAULT_GPU;
        m->fuse = fuse > 0;
        size_t n = model_src_count(m);
        for (size_t i = 0; i < n; i++) m->up_total += (int64_t)model_src_at(m, i)->nbytes;
    }
    if (st == MLXN_OK) st = model_bind_weights(m, path, quant, params && params->allow_unused_tensors);
    if (st == MLXN_OK && !m->dry) {
        /* the uploads were queued on the device's stream: wait for them once */
        st = mlxn_stream_sync(mlxn_device_stream(m->dev));
        if (st != MLXN_OK) mlxn_fail_context(st, "loading model %s: ", path);
        else if (m->progress) m->progress(m->progress_user, m->up_total, m->up_total);
    }
    if (st == MLXN_OK) fill_info(m);
    return st;
}

static mlxn_status load(const char *path, const mlxn_model_params *params, mlxn_model *m) {
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        /* a file: GGUF, converted in memory exactly as `mlxn convert` would */
        cv_set *set = calloc(1, sizeof *set);
        if (!set) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "model_load: out of memory");
        cv_opts o;
        mlxn_status st = cv_resolve_opts(NULL, &o);
        if (st == MLXN_OK) st = cv_from_gguf(path, &o, false, set);
        if (st != MLXN_OK) {
            free(set);
            return st;
        }
        /* every tensor was copied out of the file: let the mapping go */
        mlxn_gguf_free(set->src_gguf);
        set->src_gguf = NULL;
        st = model_src_set(m, set);
        if (st != MLXN_OK) {
            cv_free(set);
            free(set);
            m->mem = NULL;
            return st;
        }
        return load_config(path, path, set->config, params, m);
    }
    char cfgpath[4096];
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", path);
    json_error_t jerr;
    json_t *root = json_load_file(cfgpath, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return mlxn_fail(MLXN_ERR_FORMAT, "%s: cannot read: %s (line %d)", cfgpath, jerr.text, jerr.line);
    mlxn_status st = load_config(path, cfgpath, root, params, m);
    json_decref(root);
    return st;
}

mlxn_status model_check_set(cv_set *set, const char *label) {
    mlxn_model *m = calloc(1, sizeof *m);
    if (!m) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    m->dry = true;
    mlxn_status st = model_src_set(m, set);
    if (st == MLXN_OK) st = load_config(label, label, set->config, NULL, m);
    m->mem = NULL; /* the caller keeps the set */
    model_release(m);
    return st;
}

mlxn_status mlxn_model_load(const char *path, mlxn_device *dev, const mlxn_model_params *params, mlxn_model **out) {
    if (!out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "model_load: out is NULL");
    *out = NULL;
    if (!path || !dev) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "model_load: path or device is NULL");
    mlxn_model *m = calloc(1, sizeof *m);
    if (!m) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "model_load: out of memory");
    m->dev = dev;
    mlxn_status st = load(path, params, m);
    if (st != MLXN_OK) {
        model_release(m);
        return st;
    }
    *out = m;
    return MLXN_OK;
}
