/* Write an in-memory MLX model as a model directory, the way mlx-lm's
 * save_model / save_config do:
 *   model.safetensors, or model-0000i-of-0000n.safetensors when the tensors
 *     exceed one shard (a new shard starts when the next tensor would push
 *     the current one past max_shard_bytes; a bigger tensor gets its own),
 *     each with metadata {"format": "mlx"};
 *   model.safetensors.index.json: {"metadata": {"total_size",
 *     "total_parameters"}, "weight_map": {name: shard}} (names sorted);
 *   config.json (keys sorted, indent 4);
 *   tokenizer.json / tokenizer_config.json when the set has them, and the
 *     tokenizer/generation files of an HF source directory, copied.
 * Everything goes into a fresh temporary directory next to dst, which is
 * renamed to dst at the end; on failure it is removed and dst untouched.
 * Lazy tensors are produced shard by shard and freed after each. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "model/convert_internal.h"

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4400];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static mlxn_status dump(const json_t *j, const char *dir, const char *file, size_t flags) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    if (json_dump_file(j, p, flags) != 0) return mlxn_fail(MLXN_ERR_IO, "convert: cannot write %s", p);
    return MLXN_OK;
}

static mlxn_status copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in) return MLXN_OK; /* optional files */
    FILE *out = fopen(to, "wb");
    mlxn_status st = MLXN_OK;
    if (!out) st = mlxn_fail(MLXN_ERR_IO, "convert: cannot create %s: %s", to, strerror(errno));
    char buf[65536];
    size_t n;
    while (st == MLXN_OK && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) st = mlxn_fail(MLXN_ERR_IO, "convert: writing %s failed", to);
    if (st == MLXN_OK && ferror(in)) st = mlxn_fail(MLXN_ERR_IO, "convert: reading %s failed", from);
    if (out && fclose(out) != 0 && st == MLXN_OK) st = mlxn_fail(MLXN_ERR_IO, "convert: writing %s failed", to);
    fclose(in);
    return st;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Parameters as mlx-lm counts them: a quantized weight counts its
 * unpacked size, scales and biases nothing. */
static int64_t count_params(const cv_set *s) {
    int64_t total = 0;
    const json_t *q = json_object_get(s->config, "quantization");
    for (size_t i = 0; i < s->n; i++) {
        const cv_tensor *t = &s->t[i];
        int64_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
        if (ends_with(t->name, ".scales") || ends_with(t->name, ".biases")) {
            char mod[512];
            snprintf(mod, sizeof mod, "%.*s.weight", (int)(strlen(t->name) - 7), t->name);
            if (cv_find(s, mod) && cv_find(s, mod)->dtype == MLXN_DTYPE_U32) continue;
        }
        if (t->dtype == MLXN_DTYPE_U32 && ends_with(t->name, ".weight") && q) {
            char mod[512];
            snprintf(mod, sizeof mod, "%.*s", (int)(strlen(t->name) - 7), t->name);
            const json_t *e = json_object_get(q, mod);
            json_int_t bits = json_integer_value(json_object_get(json_is_object(e) ? e : q, "bits"));
            if (bits > 0) n = n * 32 / bits;
        }
        total += n;
    }
    return total;
}

static mlxn_status write_all(const cv_set *s, const char *tmp, int64_t max_shard,
                             void (*progress)(void *user, int64_t done, int64_t total), void *user) {
    /* shard boundaries */
    size_t *start = malloc(sizeof(size_t) * (s->n + 1));
    if (!start) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    size_t nshards = 0;
    int64_t cur = 0, total = 0;
    for (size_t i = 0; i < s->n; i++) {
        int64_t nb = (int64_t)s->t[i].nbytes;
        if (nshards == 0 || cur + nb > max_shard) {
            start[nshards++] = i;
            cur = 0;
        }
        cur += nb;
        total += nb;
    }
    start[nshards] = s->n;
    int64_t done = 0;
    json_t *wmap = json_object();
    mlxn_status st = wmap ? MLXN_OK : mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    for (size_t k = 0; st == MLXN_OK && k < nshards; k++) {
        char fname[64], path[4200];
        if (nshards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", k + 1, nshards);
        snprintf(path, sizeof path, "%s/%s", tmp, fname);
        mlxn_st_writer *wr = NULL;
        size_t n = start[k + 1] - start[k];
        void **tmps = calloc(n ? n : 1, sizeof *tmps);
        st = tmps ? mlxn_st_writer_new(&wr) : mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        if (st == MLXN_OK) st = mlxn_st_writer_set_metadata(wr, "format", "mlx");
        for (size_t i = 0; st == MLXN_OK && i < n; i++) {
            const cv_tensor *t = &s->t[start[k] + i];
            const void *bytes;
            st = cv_bytes(t, &bytes, &tmps[i]);
            if (st == MLXN_OK) st = mlxn_st_writer_add(wr, t->name, t->dtype, t->ndim, t->shape, bytes);
            done += (int64_t)t->nbytes;
            if (st == MLXN_OK && progress) progress(user, done, total);
            if (st == MLXN_OK && json_object_set_new(wmap, t->name, json_string(fname)) != 0)
                st = mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        }
        if (st == MLXN_OK) st = mlxn_st_writer_save(wr, path);
        mlxn_st_writer_free(wr);
        for (size_t i = 0; tmps && i < n; i++) free(tmps[i]);
        free(tmps);
    }
    free(start);
    if (st == MLXN_OK) {
        json_t *idx = json_pack("{s:{s:I, s:I}, s:o}", "metadata", "total_size", (json_int_t)total, "total_parameters",
                                (json_int_t)count_params(s), "weight_map", wmap);
        wmap = NULL;
        st = idx ? dump(idx, tmp, "model.safetensors.index.json", JSON_INDENT(4) | JSON_SORT_KEYS)
                 : mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        json_decref(idx);
    }
    json_decref(wmap);
    if (st == MLXN_OK) st = dump(s->config, tmp, "config.json", JSON_INDENT(4) | JSON_SORT_KEYS);
    if (st == MLXN_OK && s->tokenizer) st = dump(s->tokenizer, tmp, "tokenizer.json", JSON_INDENT(2));
    if (st == MLXN_OK && s->tokenizer_config)
        st = dump(s->tokenizer_config, tmp, "tokenizer_config.json", JSON_INDENT(2) | JSON_SORT_KEYS);
    if (st == MLXN_OK && s->copy_dir) {
        static const char *const files[] = {"tokenizer.json",     "tokenizer_config.json", "special_tokens_map.json",
                                            "generation_config.json", "vocab.json",        "merges.txt",
                                            "tokenizer.model",    "added_tokens.json",     "chat_template.jinja",
                                            "chat_template.json"};
        for (size_t i = 0; st == MLXN_OK && i < sizeof files / sizeof files[0]; i++) {
            char from[4200], to[4200];
            snprintf(from, sizeof from, "%s/%s", s->copy_dir, files[i]);
            snprintf(to, sizeof to, "%s/%s", tmp, files[i]);
            st = copy_file(from, to);
        }
    }
    return st;
}

mlxn_status cv_write_dir(const cv_set *s, const char *dst, int64_t max_shard_bytes,
                         void (*progress)(void *user, int64_t done, int64_t total), void *progress_user) {
    struct stat sb;
    if (stat(dst, &sb) == 0)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "convert: %s already exists (convert writes a new directory)", dst);
    size_t len = strlen(dst);
    while (len > 1 && dst[len - 1] == '/') len--;
    if (len + 16 > 4000) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "convert: output path too long");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%.*s.tmp-XXXXXX", (int)len, dst);
    if (!mkdtemp(tmp)) return mlxn_fail(MLXN_ERR_IO, "convert: cannot create a directory next to %s: %s", dst, strerror(errno));
    chmod(tmp, 0755); /* mkdtemp makes it private; a model directory is not */
    mlxn_status st = write_all(s, tmp, max_shard_bytes, progress, progress_user);
    if (st == MLXN_OK && rename(tmp, dst) != 0)
        st = mlxn_fail(MLXN_ERR_IO, "convert: cannot rename %s to %s: %s", tmp, dst, strerror(errno));
    if (st != MLXN_OK) remove_tree(tmp);
    return st;
}
