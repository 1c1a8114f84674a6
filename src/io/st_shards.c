/* Sharded model directories, the way mlx-lm loads them: every
 * `model*.safetensors` in the directory, in sorted order, forms one weight
 * set. When model.safetensors.index.json is present its "weight_map"
 * (tensor name -> shard file name) must agree with what the shards hold:
 * an entry naming a missing shard or a tensor its shard lacks is an error
 * (tensors the map leaves out are accepted, as mlx-lm ignores the map). */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core/internal.h"
#include "io/st_internal.h"

#define INDEX_NAME "model.safetensors.index.json"

static int by_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

mlxn_status mlxn_st_list_shards(const char *dir, char ***paths, size_t *n) {
    *paths = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return mlxn_fail(MLXN_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    mlxn_status st = MLXN_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (fnmatch("model*.safetensors", e->d_name, FNM_PERIOD) != 0) continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 8;
            char **g = realloc(v, cap * sizeof *g);
            if (!g) {
                st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory listing shards", dir);
                break;
            }
            v = g;
        }
        if (!(v[cnt] = strdup(e->d_name))) {
            st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory listing shards", dir);
            break;
        }
        cnt++;
    }
    closedir(d);
    if (st == MLXN_OK && cnt == 0)
        st = mlxn_fail(MLXN_ERR_IO, "%s: no model*.safetensors files in this directory", dir);
    if (st == MLXN_OK) {
        qsort(v, cnt, sizeof *v, by_str);
        for (size_t i = 0; i < cnt && st == MLXN_OK; i++) {
            char *full = join(dir, v[i]);
            if (!full) st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
            free(v[i]);
            v[i] = full;
        }
    }
    if (st != MLXN_OK) {
        for (size_t i = 0; i < cnt; i++) free(v[i]);
        free(v);
        return st;
    }
    *paths = v;
    *n = cnt;
    return MLXN_OK;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

mlxn_status mlxn_st_check_index(const char *dir, const mlxn_weights *w) {
    char *ip = join(dir, INDEX_NAME);
    if (!ip) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    struct stat sb;
    if (stat(ip, &sb) != 0) {
        free(ip);
        return MLXN_OK; /* no index: the shards alone define the set */
    }
    json_error_t jerr;
    json_t *root = json_load_file(ip, JSON_REJECT_DUPLICATES, &jerr);
    mlxn_status st = MLXN_OK;
    json_t *map = root ? json_object_get(root, "weight_map") : NULL;
    if (!root) {
        st = mlxn_fail(MLXN_ERR_FORMAT, "%s: not valid JSON: %s (line %d)", ip, jerr.text, jerr.line);
    } else if (!json_is_object(map)) {
        st = mlxn_fail(MLXN_ERR_FORMAT, "%s: missing or non-object \"weight_map\"", ip);
    } else {
        const char *name;
        json_t *val;
        json_object_foreach(map, name, val) {
            if (!json_is_string(val)) {
                st = mlxn_fail(MLXN_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name", ip, name);
                break;
            }
            const char *shard = json_string_value(val);
            bool shard_loaded = false;
            for (size_t i = 0; i < w->n_files && !shard_loaded; i++)
                shard_loaded = !strcmp(base_name(w->files[i].path), shard);
            if (!shard_loaded) {
                st = mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s' is mapped to shard '%s', which is not in %s", ip,
                               name, shard, dir);
                break;
            }
            const mlxn_weight_info *info = mlxn_weights_find(w, name);
            if (!info) {
                st = mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s' is mapped to '%s', which does not hold it", ip,
                               name, shard);
                break;
            }
            if (strcmp(base_name(info->file), shard) != 0) {
                st = mlxn_fail(MLXN_ERR_FORMAT, "%s: tensor '%s' is mapped to '%s' but is in %s", ip, name, shard,
                               info->file);
                break;
            }
        }
    }
    json_decref(root);
    free(ip);
    return st;
}
