/* GGUF tensors: lookup by name (binary search over the name index built at
 * open), the data pointer inside the mapping, and dequantization of a row
 * range to f32 through the scalar block reference (quant/ggml_blocks.c). */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "io/gguf_internal.h"
#include "quant/ggml_blocks.h"

size_t mlxn_gguf_tensor_count(const mlxn_gguf *g) { return g ? g->n_tensors : 0; }

const mlxn_gguf_tensor_info *mlxn_gguf_tensor_at(const mlxn_gguf *g, size_t i) {
    return g && i < g->n_tensors ? &g->tensors[i] : NULL;
}

static int cmp_name(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const mlxn_gguf_tensor_info *const *)elem)->name);
}

const mlxn_gguf_tensor_info *mlxn_gguf_tensor_find(const mlxn_gguf *g, const char *name) {
    if (!g || !name || !g->n_tensors || !g->t_sorted) return NULL;
    const mlxn_gguf_tensor_info *const *hit =
        bsearch(name, g->t_sorted, g->n_tensors, sizeof *g->t_sorted, cmp_name);
    return hit ? *hit : NULL;
}

/* 1 when t is one of g's own tensor infos. */
static int owns(const mlxn_gguf *g, const mlxn_gguf_tensor_info *t) {
    return g && t && g->n_tensors && t >= g->tensors && t < g->tensors + g->n_tensors;
}

const void *mlxn_gguf_tensor_data(const mlxn_gguf *g, const mlxn_gguf_tensor_info *t) {
    if (!owns(g, t)) return NULL;
    return g->base + g->data_offset + t->offset;
}

mlxn_status mlxn_gguf_dequantize(const mlxn_gguf *g, const mlxn_gguf_tensor_info *t, int64_t row0, int64_t n_rows,
                                 float *out /* [n_rows, ne[0]] */) {
    if (!g || !t || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "mlxn_gguf_dequantize: NULL argument");
    if (!owns(g, t))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: mlxn_gguf_dequantize: tensor info is not from this file",
                         g->name);
    if (!mlxn_ggml_type_can_dequantize(t->type))
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: tensor '%s': cannot dequantize type %s", g->name, t->name,
                         mlxn_ggml_type_name(t->type));
    if (row0 < 0 || n_rows < 0 || row0 > t->n_rows || n_rows > t->n_rows - row0)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: tensor '%s': rows [%lld, %lld + %lld) out of range (%lld rows)",
                         g->name, t->name, (long long)row0, (long long)row0, (long long)n_rows,
                         (long long)t->n_rows);
    const uint8_t *src = (const uint8_t *)mlxn_gguf_tensor_data(g, t) + (size_t)row0 * t->row_bytes;
    for (int64_t r = 0; r < n_rows; r++)
        mlxn_ggml_dequant(t->type, src + (size_t)r * t->row_bytes, out + r * t->ne[0], t->ne[0]);
    return MLXN_OK;
}
