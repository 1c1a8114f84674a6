/* safetensors reader and writer: placeholder until it lands. */
#include <stddef.h>

#include "core/internal.h"
#include "mlxn/safetensors.h"

mlxn_status mlxn_weights_open(const char *path, mlxn_weights **out) {
    (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "%s: safetensors reading is not implemented yet", path);
}
void mlxn_weights_free(mlxn_weights *w) { (void)w; }
size_t mlxn_weights_count(const mlxn_weights *w) { (void)w; return 0; }
const mlxn_weight_info *mlxn_weights_at(const mlxn_weights *w, size_t i) { (void)w, (void)i; return NULL; }
const mlxn_weight_info *mlxn_weights_find(const mlxn_weights *w, const char *name) { (void)w, (void)name; return NULL; }
const void *mlxn_weights_data(const mlxn_weights *w, const mlxn_weight_info *info) { (void)w, (void)info; return NULL; }
const char *mlxn_weights_metadata(const mlxn_weights *w, const char *key) { (void)w, (void)key; return NULL; }
mlxn_status mlxn_weights_tensor(mlxn_weights *w, mlxn_device *dev, const char *name, mlxn_tensor *out) {
    (void)w, (void)dev, (void)out;
    return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "%s: not implemented yet", name);
}
mlxn_status mlxn_st_writer_new(mlxn_st_writer **out) { (void)out; return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "writer: not implemented yet"); }
void mlxn_st_writer_free(mlxn_st_writer *wr) { (void)wr; }
mlxn_status mlxn_st_writer_set_metadata(mlxn_st_writer *wr, const char *key, const char *value) { (void)wr, (void)key, (void)value; return MLXN_ERR_NOT_IMPLEMENTED; }
mlxn_status mlxn_st_writer_add(mlxn_st_writer *wr, const char *name, mlxn_dtype dtype, int ndim, const int64_t *shape, const void *data) { (void)wr, (void)name, (void)dtype, (void)ndim, (void)shape, (void)data; return MLXN_ERR_NOT_IMPLEMENTED; }
mlxn_status mlxn_st_writer_save(mlxn_st_writer *wr, const char *path) { (void)wr, (void)path; return MLXN_ERR_NOT_IMPLEMENTED; }
