/* Quantization modes and their parameter rules (which bits, which groups,
 * which scale dtype), shared by the reference code, the ops and the loaders. */
#include <string.h>

#include "core/internal.h"
#include "mlxn/quant.h"

static const char *mode_names[] = {"affine", "mxfp4", "mxfp8", "nvfp4"};

const char *mlxn_quant_mode_name(mlxn_quant_mode mode) {
    return (unsigned)mode < 4 ? mode_names[mode] : "invalid";
}

mlxn_status mlxn_quant_mode_parse(const char *name, mlxn_quant_mode *out) {
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, mode_names[i]) == 0) {
            *out = (mlxn_quant_mode)i;
            return MLXN_OK;
        }
    return mlxn_fail(MLXN_ERR_UNSUPPORTED, "quantization mode '%s' is not one of affine, mxfp4, mxfp8, nvfp4",
                     name ? name : "(null)");
}

mlxn_status mlxn_quant_validate(const mlxn_quant_params *q, int64_t cols) {
    if (!q) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "quant: params are NULL");
    switch (q->mode) {
    case MLXN_QUANT_AFFINE:
        if (q->bits != 1 && q->bits != 2 && q->bits != 3 && q->bits != 4 && q->bits != 5 && q->bits != 6 && q->bits != 8)
            return mlxn_fail(MLXN_ERR_UNSUPPORTED, "quant: affine bits = %d (supported: 1, 2, 3, 4, 5, 6, 8)", q->bits);
        if (q->group_size != 32 && q->group_size != 64 && q->group_size != 128)
            return mlxn_fail(MLXN_ERR_UNSUPPORTED, "quant: affine group_size = %d (supported: 32, 64, 128)",
                             q->group_size);
        break;
    case MLXN_QUANT_MXFP4:
    case MLXN_QUANT_MXFP8:
    case MLXN_QUANT_NVFP4: {
        int bits = q->mode == MLXN_QUANT_MXFP8 ? 8 : 4;
        int group = q->mode == MLXN_QUANT_NVFP4 ? 16 : 32;
        if (q->bits != bits || q->group_size != group)
            return mlxn_fail(MLXN_ERR_UNSUPPORTED, "quant: %s needs bits = %d and group_size = %d (got %d, %d)",
                             mlxn_quant_mode_name(q->mode), bits, group, q->bits, q->group_size);
        break;
    }
    default: return mlxn_fail(MLXN_ERR_UNSUPPORTED, "quant: unknown mode %d", (int)q->mode);
    }
    if (cols <= 0 || cols % q->group_size != 0)
        return mlxn_fail(MLXN_ERR_SHAPE, "quant: %lld columns is not a positive multiple of the group size %d",
                         (long long)cols, q->group_size);
    if ((cols * q->bits) % 32 != 0)
        return mlxn_fail(MLXN_ERR_SHAPE, "quant: %lld columns of %d bits do not fill whole 32-bit words",
                         (long long)cols, q->bits);
    return MLXN_OK;
}

mlxn_dtype mlxn_quant_scale_dtype(const mlxn_quant_params *q, mlxn_dtype weight_dtype) {
    return q->mode == MLXN_QUANT_AFFINE ? weight_dtype : MLXN_DTYPE_U8;
}

int64_t mlxn_quant_words_per_row(const mlxn_quant_params *q, int64_t cols) { return cols * q->bits / 32; }
