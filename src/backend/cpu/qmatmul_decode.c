/* Scalar decoding of quantized rows (see qmatmul.h): codes to bytes, group
 * scales/biases to f32, and the float-exact dequantization every kernel is
 * checked against. The bit layout and the small-float decoders come from
 * quant/quant_layout.h, the one definition of the format. */
#include "backend/cpu/qmatmul.h"

#include "core/internal.h"
#include "quant/quant_layout.h"

mlxn_status qmat_from_tensors(const char *op, const mlxn_tensor *wq, const mlxn_tensor *scales,
                              const mlxn_tensor *biases, const mlxn_quant_params *q, qmat *m) {
    const mlxn_tensor *ts[3] = {wq, scales, biases};
    const char *names[3] = {"wq", "scales", "biases"};
    for (int i = 0; i < 3; i++)
        if (ts[i] && ts[i]->shape[1] > 1 && ts[i]->strides[1] != 1)
            return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s must have a unit stride along its last axis", op, names[i]);
    m->wq = mlxn_tensor_host(wq);
    m->wq_stride = wq->strides[0];
    m->scales = mlxn_tensor_host(scales);
    m->s_stride = scales->strides[0];
    m->biases = biases ? mlxn_tensor_host(biases) : NULL;
    m->b_stride = biases ? biases->strides[0] : 0;
    m->sdt = scales->dtype;
    m->mode = q->mode;
    m->bits = q->bits;
    m->group = q->group_size;
    /* MLX's nvfp4 global scale g multiplies each block scale by g / (6 * 448)
     * (6 and 448: the largest e2m1 and e4m3 values); none (0) means 1 */
    m->gscale = (q->mode == MLXN_QUANT_NVFP4 && q->global_scale > 0.0f) ? q->global_scale / 2688.0f : 1.0f;
    m->rows = wq->shape[0];
    m->cols = wq->shape[1] * 32 / q->bits;
    if (!m->wq || !m->scales || (biases && !m->biases))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: weights are not host-visible", op);
    return MLXN_OK;
}

void qm_unpack_codes(const qmat *m, int64_t r, int64_t c0, int64_t n, uint8_t *dst) {
    const int bits = m->bits;
    const uint32_t *p = m->wq + r * m->wq_stride + (c0 * bits) / 32;
    const uint64_t mask = (1u << bits) - 1u;
    if (bits == 4) { /* the common width: 8 codes per word, no straddling */
        for (int64_t i = 0; i < n; i += 8) {
            uint32_t w = *p++;
            for (int j = 0; j < 8; j++) dst[i + j] = (uint8_t)((w >> (4 * j)) & 15u);
        }
        return;
    }
    /* any width: a 64-bit window refilled one word at a time, so a word is
     * read only when it holds bits of a wanted code (never past the row) */
    uint64_t buf = 0;
    int have = 0;
    for (int64_t i = 0; i < n; i++) {
        if (have < bits) {
            buf |= (uint64_t)(*p++) << have;
            have += 32;
        }
        dst[i] = (uint8_t)(buf & mask);
        buf >>= bits;
        have -= bits;
    }
}

static float load_float(const void *base, mlxn_dtype dt, int64_t i) {
    switch (dt) {
    case MLXN_DTYPE_F16: return mlxn_f16_to_f32(((const uint16_t *)base)[i]);
    case MLXN_DTYPE_BF16: return mlxn_bf16_to_f32(((const uint16_t *)base)[i]);
    default: return ((const float *)base)[i];
    }
}

float qm_scale(const qmat *m, int64_t r, int64_t g) {
    int64_t i = r * m->s_stride + g;
    switch (m->mode) {
    case MLXN_QUANT_AFFINE: return load_float(m->scales, m->sdt, i);
    case MLXN_QUANT_NVFP4: return mlxn_e4m3_to_f32(((const uint8_t *)m->scales)[i]) * m->gscale;
    default: return mlxn_e8m0_to_f32(((const uint8_t *)m->scales)[i]);
    }
}

float qm_bias(const qmat *m, int64_t r, int64_t g) {
    return m->biases ? load_float(m->biases, m->sdt, r * m->b_stride + g) : 0.0f;
}

float qm_fp_code(const qmat *m, uint32_t q) {
    return m->mode == MLXN_QUANT_MXFP8 ? mlxn_e4m3_to_f32((uint8_t)q) : mlxn_e2m1_to_f32(q);
}

void qm_dequant_span(const qmat *m, int64_t r, int64_t c0, int64_t n, float *dst) {
    uint8_t codes[128]; /* one group (groups are at most 128) */
    const int G = m->group;
    for (int64_t c = 0, g = c0 / G; c < n; c += G, g++) { /* g counts the groups: no division per group */
        qm_unpack_codes(m, r, c0 + c, G, codes);
        float s = qm_scale(m, r, g);
        if (m->mode == MLXN_QUANT_AFFINE) {
            float b = qm_bias(m, r, g);
            for (int j = 0; j < G; j++) dst[c + j] = s * (float)codes[j] + b;
        } else {
            for (int j = 0; j < G; j++) dst[c + j] = qm_fp_code(m, codes[j]) * s;
        }
    }
}
