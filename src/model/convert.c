/* mlxn_convert: pick the source (random preset, .gguf file, Hugging Face
 * directory), build the in-memory MLX model, write the directory. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/internal.h"
#include "model/convert_internal.h"
#include "model/model_internal.h"

mlxn_status mlxn_convert(const char *src, const char *dst, const mlxn_convert_params *params) {
    if (!dst || (!src && !(params && params->random_preset)))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "convert: source or destination is NULL");
    cv_opts o;
    MLXN_TRY(cv_resolve_opts(params, &o));
    struct stat sb;
    if (stat(dst, &sb) == 0)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "convert: %s already exists (convert writes a new directory)", dst);
    cv_set s;
    mlxn_status st;
    if (params && params->random_preset) {
        st = cv_from_random(params->random_preset, &o, &s);
    } else if (stat(src, &sb) != 0) {
        return mlxn_fail(MLXN_ERR_IO, "convert: cannot read %s", src);
    } else if (S_ISDIR(sb.st_mode)) {
        st = cv_from_hf(src, &o, &s);
    } else {
        st = cv_from_gguf(src, &o, true, &s);
    }
    if (st != MLXN_OK) return st;
    /* what we write must load: the runner's own checks (every tensor the
       architecture needs, nothing extra, shapes, quantization metadata) */
    st = model_check_set(&s, params && params->random_preset ? params->random_preset : src);
    if (st != MLXN_OK) mlxn_fail_context(st, "convert: the converted model does not load: ");
    if (st == MLXN_OK) st = cv_write_dir(&s, dst, o.max_shard_bytes, params ? params->progress : NULL,
                                          params ? params->progress_user : NULL);
    cv_free(&s);
    return st;
}
