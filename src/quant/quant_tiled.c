/* The TILED16 layout's host reorder (mlxn_quant_tile) and its condition;
 * the layout itself is quant_tiled.h's. */
#include <string.h>

#include "core/internal.h"
#include "mlxn/quant.h"
#include "quant/quant_tiled.h"

int mlxn_quant_tileable(const mlxn_quant_params *q, mlxn_dtype scale_dtype, int64_t rows, int64_t cols) {
    return q && q->mode == MLXN_QUANT_AFFINE && q->bits == 4 && (q->group_size == 64 || q->group_size == 128) &&
           (scale_dtype == MLXN_DTYPE_BF16 || scale_dtype == MLXN_DTYPE_F16) && rows > 0 &&
           rows % MLXN_TILE_ROWS == 0 && cols > 0 && cols % MLXN_TILE_CODES == 0;
}

mlxn_status mlxn_quant_tile(const mlxn_quant_params *q, mlxn_dtype scale_dtype, const uint32_t *wq,
                            const void *scales, const void *biases, int64_t rows, int64_t cols, int untile,
                            uint32_t *wq_out, void *scales_out, void *biases_out) {
    if (!mlxn_quant_tileable(q, scale_dtype, rows, cols))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                         "quant_tile: a [%lld, %lld] matrix of %d-bit group %d %s weights with %s scales has no tiled "
                         "layout (affine 4-bit, group 64 or 128, bf16/f16 scales, rows a multiple of 16, cols of 128)",
                         (long long)rows, (long long)cols, q ? q->bits : 0, q ? q->group_size : 0,
                         q ? mlxn_quant_mode_name(q->mode) : "?", mlxn_dtype_name(scale_dtype));
    const size_t es = mlxn_dtype_size(scale_dtype);
    if (!wq || !scales || !biases || !wq_out || !scales_out || !biases_out)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "quant_tile: NULL buffer");
    const int64_t words = cols / 8, groups = cols / q->group_size;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t w = 0; w < words; w++) {
            const int64_t t = mlxn_tiled_word(r, w, cols), o = r * words + w;
            if (untile) wq_out[o] = wq[t];
            else wq_out[t] = wq[o];
        }
        for (int64_t j = 0; j < groups; j++) {
            const int64_t t = mlxn_tiled_scale(r, j, cols, q->group_size), o = r * groups + j;
            const int64_t from = untile ? t : o, to = untile ? o : t;
            memcpy((char *)scales_out + to * es, (const char *)scales + from * es, es);
            memcpy((char *)biases_out + to * es, (const char *)biases + from * es, es);
        }
    }
    return MLXN_OK;
}
