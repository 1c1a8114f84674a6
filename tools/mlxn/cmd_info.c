/* mlxn info: list the tensors of a safetensors file or model directory.
 *
 * Prints the file metadata, one line per tensor (name, dtype, shape, and
 * for quantized weights the quantization), then totals; --json prints the
 * same as one JSON object. A quantized weight is recognised the way MLX
 * stores it: NAME.weight (u32, packed codes) + NAME.scales, with
 * NAME.biases for affine mode and without for the fp modes (mxfp4, mxfp8,
 * nvfp4: u8 scales). Bits and group size come from the directory's
 * config.json "quantization" (with per-layer overrides keyed by module
 * path). Without a config, shapes give only bits * group_size =
 * 32 * packed_cols / scales_cols: unique for the fp modes (so they are
 * inferred), ambiguous for affine (4-bit g64 and 8-bit g32 look alike),
 * which is then shown as "affine ?-bit". */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "commands.h"
#include "mlxn/mlxn.h"

typedef struct qinfo {
    bool quantized;
    char mode[16];     /* "affine", "mxfp4", ...; "fp" when unknown */
    int bits;          /* 0 = unknown */
    int group_size;    /* 0 = unknown */
    bool inferred;     /* from shapes, not config.json */
    bool mismatch;     /* config.json disagrees with the shapes */
    int64_t unpacked;  /* logical columns when bits are known */
    int64_t bits_x_group; /* 32 * packed_cols / scales_cols: what the shapes alone tell */
} qinfo;

typedef struct info_opts {
    const char *model;
    int json;
} info_opts;

static const opt_spec info_rows[] = {
    {"model", 'm', OPT_STRING, offsetof(info_opts, model), "PATH",
     "The .safetensors file or MLX model directory (may also be given as the one positional argument).", NULL, 0,
     0, NULL},
    {"json", 0, OPT_FLAG, offsetof(info_opts, json), NULL, "Print one JSON object instead of text.", NULL, 0, 0,
     NULL},
    {0},
};

const opt_command info_command = {
    .name = "info",
    .synopsis = "-m FILE_OR_DIR [--json]",
    .summary = "List the tensors of a safetensors file or model directory.",
    .description = "Reads a .safetensors file or an MLX model directory (every model*.safetensors in it, checked "
                   "against model.safetensors.index.json) and prints the metadata, then the name, dtype, shape and "
                   "quantization of each tensor, then totals. Bits and group size of quantized weights come from "
                   "the directory's config.json; without one they are inferred from the shapes where that is "
                   "unambiguous (the fp modes), else shown as \"affine ?-bit\".",
    .opts = info_rows,
    .positional = "FILE_OR_DIR",
    .max_positional = 1,
    .examples = "mlxn info -m SmolLM2-135M-Instruct-4bit\n"
                "mlxn info --json model.safetensors",
};

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static const mlxn_weight_info *sibling(const mlxn_weights *w, const char *prefix, const char *suffix) {
    char name[1024];
    if ((size_t)snprintf(name, sizeof name, "%s%s", prefix, suffix) >= sizeof name) return NULL;
    return mlxn_weights_find(w, name);
}

/* config.json of a directory, or NULL (a broken one is reported, not fatal). */
static json_t *load_config(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return NULL;
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", path);
    if (stat(p, &sb) != 0) return NULL;
    json_error_t err;
    json_t *c = json_load_file(p, 0, &err);
    if (!c) fprintf(stderr, "mlxn info: warning: %s: %s (line %d); quantization not read\n", p, err.text, err.line);
    return c;
}

static void apply_config(const json_t *q, qinfo *qi) {
    json_t *v;
    if ((v = json_object_get(q, "bits")) && json_is_integer(v)) qi->bits = (int)json_integer_value(v);
    if ((v = json_object_get(q, "group_size")) && json_is_integer(v)) qi->group_size = (int)json_integer_value(v);
    if ((v = json_object_get(q, "mode")) && json_is_string(v))
        snprintf(qi->mode, sizeof qi->mode, "%s", json_string_value(v));
}

/* Quantization of weight `t` (zeroed qinfo when it is not a quantized weight). */
static qinfo quant_of(const mlxn_weights *w, const mlxn_weight_info *t, const json_t *quant_cfg) {
    qinfo qi;
    memset(&qi, 0, sizeof qi);
    if (t->dtype != MLXN_DTYPE_U32 || t->ndim < 1 || !ends_with(t->name, ".weight")) return qi;
    char prefix[1024];
    size_t plen = strlen(t->name) - strlen(".weight");
    if (plen >= sizeof prefix) return qi;
    memcpy(prefix, t->name, plen);
    prefix[plen] = '\0';
    const mlxn_weight_info *sc = sibling(w, prefix, ".scales");
    if (!sc || sc->ndim != t->ndim) return qi;
    const mlxn_weight_info *bi = sibling(w, prefix, ".biases");
    qi.quantized = true;
    snprintf(qi.mode, sizeof qi.mode, "%s", bi ? "affine" : "fp");
    int64_t packed_cols = t->shape[t->ndim - 1], scale_cols = sc->shape[sc->ndim - 1];
    int64_t bits_x_group = scale_cols > 0 ? 32 * packed_cols / scale_cols : 0;
    qi.bits_x_group = bits_x_group;
    if (quant_cfg) {
        apply_config(quant_cfg, &qi);
        const json_t *layer = json_object_get(quant_cfg, prefix);
        if (json_is_object(layer)) apply_config(layer, &qi);
        if (qi.bits > 0 && qi.group_size > 0 && (int64_t)qi.bits * qi.group_size != bits_x_group) qi.mismatch = true;
    } else if (!bi) {
        /* fp modes: bits * group is 128 (mxfp4), 256 (mxfp8), 64 (nvfp4) */
        static const struct { int64_t prod; const char *mode; int bits, group; } fp[] = {
            {128, "mxfp4", 4, 32}, {256, "mxfp8", 8, 32}, {64, "nvfp4", 4, 16}};
        for (size_t i = 0; i < sizeof fp / sizeof fp[0]; i++)
            if (fp[i].prod == bits_x_group) {
                snprintf(qi.mode, sizeof qi.mode, "%s", fp[i].mode);
                qi.bits = fp[i].bits;
                qi.group_size = fp[i].group;
                qi.inferred = true;
            }
    }
    if (qi.bits > 0) qi.unpacked = packed_cols * 32 / qi.bits;
    return qi;
}

/* Elements of every axis but the last (the rows of a weight matrix). */
static int64_t rows(const mlxn_weight_info *t) {
    int64_t n = 1;
    for (int i = 0; i + 1 < t->ndim; i++) n *= t->shape[i];
    return n;
}

static void describe_quant(const qinfo *q, const mlxn_weight_info *t, char *buf, size_t n) {
    if (!q->quantized) {
        buf[0] = '\0';
        return;
    }
    size_t k = 0;
    if (q->bits > 0)
        k += (size_t)snprintf(buf + k, n - k, "%s %d-bit", q->mode, q->bits);
    else
        k += (size_t)snprintf(buf + k, n - k, "%s ?-bit (bits x group = %lld; no config.json to say which)", q->mode,
                              (long long)q->bits_x_group);
    if (k < n && q->group_size > 0) k += (size_t)snprintf(buf + k, n - k, " g%d", q->group_size);
    if (k < n && q->unpacked > 0)
        k += (size_t)snprintf(buf + k, n - k, " (%lld x %lld)", (long long)rows(t),
                              (long long)q->unpacked);
    if (k < n && q->inferred) k += (size_t)snprintf(buf + k, n - k, " inferred from shapes");
    if (k < n && q->mismatch) k += (size_t)snprintf(buf + k, n - k, " CONFIG DISAGREES WITH SHAPES");
    (void)k;
}

static int64_t numel(const mlxn_weight_info *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* Is t the scales/biases of a quantized weight (not a parameter of its own)? */
static bool is_quant_aux(const mlxn_weights *w, const mlxn_weight_info *t, const json_t *cfg) {
    const char *suf = ends_with(t->name, ".scales") ? ".scales" : ends_with(t->name, ".biases") ? ".biases" : NULL;
    if (!suf) return false;
    char prefix[1024];
    size_t plen = strlen(t->name) - strlen(suf);
    if (plen >= sizeof prefix) return false;
    memcpy(prefix, t->name, plen);
    prefix[plen] = '\0';
    const mlxn_weight_info *wt = sibling(w, prefix, ".weight");
    return wt && quant_of(w, wt, cfg).quantized;
}

static int by_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static void shape_str(const mlxn_weight_info *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

int cmd_info(int argc, char **argv) {
    info_opts o = {0};
    opt_args a;
    int pr = opt_parse(&info_command, argc, argv, 1, &o, &a, NULL);
    if (pr != OPT_OK) return pr == OPT_HELP ? 0 : 2;
    if (o.model && a.n_pos) {
        opt_error(&info_command, "the path is given twice ('%s' and '%s'): give one, with -m or alone", o.model,
                  a.pos[0]);
        return 2;
    }
    const char *path = o.model ? o.model : a.n_pos ? a.pos[0] : NULL;
    bool as_json = o.json;
    if (!path) {
        opt_error(&info_command, "no file given: add -m PATH (a .safetensors file or an MLX model directory)");
        return 2;
    }
    mlxn_weights *w = NULL;
    if (mlxn_weights_open(path, &w) != MLXN_OK) {
        fprintf(stderr, "mlxn info: %s\n", mlxn_last_error());
        return 1;
    }
    json_t *cfg = load_config(path);
    const json_t *qcfg = NULL;
    if (cfg) {
        qcfg = json_object_get(cfg, "quantization");
        if (!json_is_object(qcfg)) qcfg = json_object_get(cfg, "quantization_config");
        if (!json_is_object(qcfg)) qcfg = NULL;
    }

    size_t n = mlxn_weights_count(w), nfiles = 0;
    uint64_t bytes = 0, params = 0;
    bool params_exact = true;
    int name_w = 4;
    const char *files[4096];
    for (size_t i = 0; i < n; i++) {
        const mlxn_weight_info *t = mlxn_weights_at(w, i);
        bytes += t->nbytes;
        if ((int)strlen(t->name) > name_w) name_w = (int)strlen(t->name);
        bool seen = false;
        for (size_t j = 0; j < nfiles && !seen; j++) seen = !strcmp(files[j], t->file);
        if (!seen && nfiles < sizeof files / sizeof files[0]) files[nfiles++] = t->file;
        qinfo q = quant_of(w, t, qcfg);
        if (q.quantized) {
            if (q.unpacked > 0) params += (uint64_t)(rows(t) * q.unpacked);
            else params += (uint64_t)numel(t), params_exact = false;
        } else if (!is_quant_aux(w, t, qcfg)) {
            params += (uint64_t)numel(t);
        }
    }
    qsort(files, nfiles, sizeof files[0], by_str);

    int rc = 0;
    if (as_json) {
        json_t *root = json_object(), *jmeta = json_object(), *jt = json_array(), *jf = json_array();
        json_object_set_new(root, "path", json_string(path));
        for (size_t i = 0; i < nfiles; i++) json_array_append_new(jf, json_string(files[i]));
        json_object_set_new(root, "files", jf);
        const char *key;
        for (size_t i = 0; (key = mlxn_weights_metadata_key(w, i)) != NULL; i++)
            json_object_set_new(jmeta, key, json_string(mlxn_weights_metadata(w, key)));
        json_object_set_new(root, "metadata", jmeta);
        for (size_t i = 0; i < n; i++) {
            const mlxn_weight_info *t = mlxn_weights_at(w, i);
            json_t *e = json_object(), *shape = json_array();
            for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
            json_object_set_new(e, "name", json_string(t->name));
            json_object_set_new(e, "dtype", json_string(mlxn_dtype_name(t->dtype)));
            json_object_set_new(e, "shape", shape);
            json_object_set_new(e, "bytes", json_integer((json_int_t)t->nbytes));
            json_object_set_new(e, "file", json_string(t->file));
            qinfo q = quant_of(w, t, qcfg);
            if (q.quantized) {
                json_t *jq = json_object();
                json_object_set_new(jq, "mode", json_string(q.mode));
                json_object_set_new(jq, "bits", q.bits > 0 ? json_integer(q.bits) : json_null());
                json_object_set_new(jq, "group_size", q.group_size > 0 ? json_integer(q.group_size) : json_null());
                json_object_set_new(jq, "source", json_string(qcfg ? "config.json" : q.inferred ? "shapes" : "unknown"));
                if (q.mismatch) json_object_set_new(jq, "config_disagrees_with_shapes", json_true());
                json_object_set_new(e, "quantization", jq);
            }
            json_array_append_new(jt, e);
        }
        json_object_set_new(root, "tensors", jt);
        json_object_set_new(root, "total",
                            json_pack("{s:I, s:I, s:I, s:b}", "tensors", (json_int_t)n, "bytes", (json_int_t)bytes,
                                      "parameters", (json_int_t)params, "parameters_exact", params_exact));
        char *s = json_dumps(root, JSON_INDENT(2));
        if (s) {
            puts(s);
            free(s);
        } else {
            fprintf(stderr, "mlxn info: out of memory\n");
            rc = 1;
        }
        json_decref(root);
    } else {
        printf("path: %s\n", path);
        printf("files: %zu\n", nfiles);
        for (size_t i = 0; i < nfiles; i++) printf("  %s\n", files[i]);
        printf("metadata:%s\n", mlxn_weights_metadata_key(w, 0) ? "" : " (none)");
        const char *key;
        for (size_t i = 0; (key = mlxn_weights_metadata_key(w, i)) != NULL; i++)
            printf("  %s: %s\n", key, mlxn_weights_metadata(w, key));
        printf("tensors:\n");
        for (size_t i = 0; i < n; i++) {
            const mlxn_weight_info *t = mlxn_weights_at(w, i);
            char shp[256], qd[160];
            shape_str(t, shp, sizeof shp);
            qinfo q = quant_of(w, t, qcfg);
            describe_quant(&q, t, qd, sizeof qd);
            if (qd[0])
                printf("  %-*s  %-7s  %-18s  %s\n", name_w, t->name, mlxn_dtype_name(t->dtype), shp, qd);
            else
                printf("  %-*s  %-7s  %s\n", name_w, t->name, mlxn_dtype_name(t->dtype), shp);
        }
        printf("total: %zu tensors, %llu bytes, %llu parameters%s\n", n, (unsigned long long)bytes,
               (unsigned long long)params, params_exact ? "" : " (quantized weights of unknown bits counted as stored)");
    }
    json_decref(cfg);
    mlxn_weights_free(w);
    return rc;
}
