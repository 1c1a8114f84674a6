/* Scalar reference for the GGML block formats (layouts in ggml_blocks.h):
 * dequantize F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K to f32, and
 * quantize to Q4_0, Q4_1, Q8_0 with ggml's reference rounding. Also the
 * table of every ggml type id: name, values per block, bytes per block.
 *
 * Rounding order matters for bit-exact agreement with other readers:
 * products are formed in the order the format defines ((d * sc) * q, then
 * the min subtracted) and each product is stored in its own variable, so
 * a compiler allowed to contract expressions cannot fuse them into one
 * FMA with a different rounding. */
#include "quant/ggml_blocks.h"

#include <math.h>
#include <string.h>

#include "mlxn/dtype.h"
#include "mlxn/gguf.h"

/* ---- the type table ---- */

typedef struct ggml_type_row {
    const char *name;
    int64_t block_elems;
    size_t block_bytes;
} ggml_type_row;

static const ggml_type_row k_types[MLXN_GGML_TYPE_LIMIT] = {
    [MLXN_GGML_F32] = {"f32", 1, 4},
    [MLXN_GGML_F16] = {"f16", 1, 2},
    [MLXN_GGML_Q4_0] = {"q4_0", 32, 18},
    [MLXN_GGML_Q4_1] = {"q4_1", 32, 20},
    [MLXN_GGML_Q5_0] = {"q5_0", 32, 22},
    [MLXN_GGML_Q5_1] = {"q5_1", 32, 24},
    [MLXN_GGML_Q8_0] = {"q8_0", 32, 34},
    [MLXN_GGML_Q8_1] = {"q8_1", 32, 40},
    [MLXN_GGML_Q2_K] = {"q2_K", 256, 84},
    [MLXN_GGML_Q3_K] = {"q3_K", 256, 110},
    [MLXN_GGML_Q4_K] = {"q4_K", 256, 144},
    [MLXN_GGML_Q5_K] = {"q5_K", 256, 176},
    [MLXN_GGML_Q6_K] = {"q6_K", 256, 210},
    [MLXN_GGML_Q8_K] = {"q8_K", 256, 292},
    [MLXN_GGML_IQ2_XXS] = {"iq2_xxs", 256, 66},
    [MLXN_GGML_IQ2_XS] = {"iq2_xs", 256, 74},
    [MLXN_GGML_IQ3_XXS] = {"iq3_xxs", 256, 98},
    [MLXN_GGML_IQ1_S] = {"iq1_s", 256, 50},
    [MLXN_GGML_IQ4_NL] = {"iq4_nl", 32, 18},
    [MLXN_GGML_IQ3_S] = {"iq3_s", 256, 110},
    [MLXN_GGML_IQ2_S] = {"iq2_s", 256, 82},
    [MLXN_GGML_IQ4_XS] = {"iq4_xs", 256, 136},
    [MLXN_GGML_I8] = {"i8", 1, 1},
    [MLXN_GGML_I16] = {"i16", 1, 2},
    [MLXN_GGML_I32] = {"i32", 1, 4},
    [MLXN_GGML_I64] = {"i64", 1, 8},
    [MLXN_GGML_F64] = {"f64", 1, 8},
    [MLXN_GGML_IQ1_M] = {"iq1_m", 256, 56},
    [MLXN_GGML_BF16] = {"bf16", 1, 2},
    [MLXN_GGML_TQ1_0] = {"tq1_0", 256, 54},
    [MLXN_GGML_TQ2_0] = {"tq2_0", 256, 66},
    [MLXN_GGML_MXFP4] = {"mxfp4", 32, 17},
};

static const ggml_type_row *type_row(mlxn_ggml_type t) {
    if ((int)t < 0 || (int)t >= MLXN_GGML_TYPE_LIMIT || !k_types[t].name) return NULL;
    return &k_types[t];
}

const char *mlxn_ggml_type_name(mlxn_ggml_type t) {
    const ggml_type_row *r = type_row(t);
    return r ? r->name : "invalid";
}

int64_t mlxn_ggml_type_block_elems(mlxn_ggml_type t) {
    const ggml_type_row *r = type_row(t);
    return r ? r->block_elems : 0;
}

size_t mlxn_ggml_type_block_bytes(mlxn_ggml_type t) {
    const ggml_type_row *r = type_row(t);
    return r ? r->block_bytes : 0;
}

int mlxn_ggml_type_can_dequantize(mlxn_ggml_type t) {
    switch (t) {
    case MLXN_GGML_F32: case MLXN_GGML_F16: case MLXN_GGML_BF16:
    case MLXN_GGML_Q4_0: case MLXN_GGML_Q4_1: case MLXN_GGML_Q8_0:
    case MLXN_GGML_Q4_K: case MLXN_GGML_Q5_K: case MLXN_GGML_Q6_K:
        return 1;
    default:
        return 0;
    }
}

/* ---- dequantize ---- */

static uint16_t rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

void mlxn_ggml_dequant_f16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = mlxn_f16_to_f32(rd_u16(p + 2 * i));
}

void mlxn_ggml_dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = mlxn_bf16_to_f32(rd_u16(p + 2 * i));
}

void mlxn_ggml_dequant_q4_0(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / MLXN_QK4_0; b++, dst += MLXN_QK4_0) {
        mlxn_block_q4_0 blk;
        memcpy(&blk, p + (size_t)b * sizeof blk, sizeof blk);
        float d = mlxn_f16_to_f32(blk.d);
        for (int j = 0; j < MLXN_QK4_0 / 2; j++) {
            dst[j] = d * (float)((blk.qs[j] & 0x0F) - 8);
            dst[j + MLXN_QK4_0 / 2] = d * (float)((blk.qs[j] >> 4) - 8);
        }
    }
}

void mlxn_ggml_dequant_q4_1(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / MLXN_QK4_1; b++, dst += MLXN_QK4_1) {
        mlxn_block_q4_1 blk;
        memcpy(&blk, p + (size_t)b * sizeof blk, sizeof blk);
        float d = mlxn_f16_to_f32(blk.d), m = mlxn_f16_to_f32(blk.m);
        for (int j = 0; j < MLXN_QK4_1 / 2; j++) {
            float lo = d * (float)(blk.qs[j] & 0x0F); /* separate statements: no FMA */
            float hi = d * (float)(blk.qs[j] >> 4);
            dst[j] = lo + m;
            dst[j + MLXN_QK4_1 / 2] = hi + m;
        }
    }
}

void mlxn_ggml_dequant_q8_0(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / MLXN_QK8_0; b++, dst += MLXN_QK8_0) {
        mlxn_block_q8_0 blk;
        memcpy(&blk, p + (size_t)b * sizeof blk, sizeof blk);
        float d = mlxn_f16_to_f32(blk.d);
        for (int j = 0; j < MLXN_QK8_0; j++) dst[j] = d * (float)blk.qs[j];
    }
}

void mlxn_ggml_dequant_q4_K(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / MLXN_QK_K; b++, dst += MLXN_QK_K) {
        mlxn_block_q4_K blk;
        memcpy(&blk, p + (size_t)b * sizeof blk, sizeof blk);
        float d = mlxn_f16_to_f32(blk.d), dmin = mlxn_f16_to_f32(blk.dmin);
        for (int s = 0; s < 8; s++) { /* sub-block s: chunk s/2, nibble s&1 */
            uint8_t sc, m;
            mlxn_q4k_scale_min(blk.scales, s, &sc, &m);
            float ds = d * (float)sc, ms = dmin * (float)m;
            const uint8_t *q = blk.qs + 32 * (s / 2);
            int shift = 4 * (s & 1);
            for (int l = 0; l < 32; l++) {
                float v = ds * (float)((q[l] >> shift) & 0x0F);
                dst[32 * s + l] = v - ms;
            }
        }
    }
}

void mlxn_ggml_dequant_q5_K(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / MLXN_QK_K; b++, dst += MLXN_QK_K) {
        mlxn_block_q5_K blk;
        memcpy(&blk, p + (size_t)b * sizeof blk, sizeof blk);
        float d = mlxn_f16_to_f32(blk.d), dmin = mlxn_f16_to_f32(blk.dmin);
        for (int s = 0; s < 8; s++) {
            uint8_t sc, m;
            mlxn_q4k_scale_min(blk.scales, s, &sc, &m);
            float ds = d * (float)sc, ms = dmin * (float)m;
            const uint8_t *q = blk.qs + 32 * (s / 2);
            int shift = 4 * (s & 1);
            for (int l = 0; l < 32; l++) {
                int code = ((q[l] >> shift) & 0x0F) | (((blk.qh[l] >> s) & 1) << 4);
                float v = ds * (float)code;
                dst[32 * s + l] = v - ms;
            }
        }
    }
}

void mlxn_ggml_dequant_q6_K(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / MLXN_QK_K; b++, dst += MLXN_QK_K) {
        mlxn_block_q6_K blk;
        memcpy(&blk, p + (size_t)b * sizeof blk, sizeof blk);
        float d = mlxn_f16_to_f32(blk.d);
        for (int h = 0; h < 2; h++) {
            for (int t = 0; t < 4; t++) {
                for (int l = 0; l < 32; l++) {
                    int v = 128 * h + 32 * t + l;
                    int lo = (blk.ql[64 * h + l + 32 * (t & 1)] >> (4 * (t >> 1))) & 0x0F;
                    int hi = (blk.qh[32 * h + l] >> (2 * t)) & 3;
                    float ds = d * (float)blk.scales[v / 16];
                    dst[v] = ds * (float)((lo | (hi << 4)) - 32);
                }
            }
        }
    }
}

int mlxn_ggml_dequant(int type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case MLXN_GGML_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return 0;
    case MLXN_GGML_F16: mlxn_ggml_dequant_f16(src, dst, n); return 0;
    case MLXN_GGML_BF16: mlxn_ggml_dequant_bf16(src, dst, n); return 0;
    case MLXN_GGML_Q4_0: mlxn_ggml_dequant_q4_0(src, dst, n); return 0;
    case MLXN_GGML_Q4_1: mlxn_ggml_dequant_q4_1(src, dst, n); return 0;
    case MLXN_GGML_Q8_0: mlxn_ggml_dequant_q8_0(src, dst, n); return 0;
    case MLXN_GGML_Q4_K: mlxn_ggml_dequant_q4_K(src, dst, n); return 0;
    case MLXN_GGML_Q5_K: mlxn_ggml_dequant_q5_K(src, dst, n); return 0;
    case MLXN_GGML_Q6_K: mlxn_ggml_dequant_q6_K(src, dst, n); return 0;
    default: return -1;
    }
}

/* ---- quantize ---- */

/* A 4-bit code from value + 1/2: truncation (t >= 0 for finite input, so
 * it is floor), capped at 15; NaN (only from non-finite input) is 0. */
static int trunc_code(float t) {
    if (!(t >= 0.0f)) return 0;
    return t >= 15.0f ? 15 : (int)t;
}

void mlxn_ggml_quant_q4_0(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t b = 0; b < n / MLXN_QK4_0; b++, src += MLXN_QK4_0) {
        /* the value of largest magnitude (first one on ties) maps to code 0 */
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < MLXN_QK4_0; j++) {
            if (amax < fabsf(src[j])) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        mlxn_block_q4_0 blk;
        blk.d = mlxn_f32_to_f16(d);
        int code[MLXN_QK4_0];
        for (int j = 0; j < MLXN_QK4_0; j++) {
            float s = src[j] * id;
            float t = s + 8.5f;
            code[j] = trunc_code(t);
        }
        for (int j = 0; j < MLXN_QK4_0 / 2; j++)
            blk.qs[j] = (uint8_t)(code[j] | (code[j + MLXN_QK4_0 / 2] << 4));
        memcpy(p + (size_t)b * sizeof blk, &blk, sizeof blk);
    }
}

void mlxn_ggml_quant_q4_1(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t b = 0; b < n / MLXN_QK4_1; b++, src += MLXN_QK4_1) {
        float lo = src[0], hi = src[0];
        for (int j = 1; j < MLXN_QK4_1; j++) {
            if (src[j] < lo) lo = src[j];
            if (src[j] > hi) hi = src[j];
        }
        float d = (hi - lo) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        mlxn_block_q4_1 blk;
        blk.d = mlxn_f32_to_f16(d);
        blk.m = mlxn_f32_to_f16(lo);
        int code[MLXN_QK4_1];
        for (int j = 0; j < MLXN_QK4_1; j++) {
            float s = (src[j] - lo) * id;
            float t = s + 0.5f;
            code[j] = trunc_code(t);
        }
        for (int j = 0; j < MLXN_QK4_1 / 2; j++)
            blk.qs[j] = (uint8_t)(code[j] | (code[j + MLXN_QK4_1 / 2] << 4));
        memcpy(p + (size_t)b * sizeof blk, &blk, sizeof blk);
    }
}

void mlxn_ggml_quant_q8_0(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t b = 0; b < n / MLXN_QK8_0; b++, src += MLXN_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < MLXN_QK8_0; j++) {
            float a = fabsf(src[j]);
            if (a > amax) amax = a;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        mlxn_block_q8_0 blk;
        blk.d = mlxn_f32_to_f16(d);
        for (int j = 0; j < MLXN_QK8_0; j++) {
            float r = roundf(src[j] * id); /* half away from 0 */
            /* |r| <= 127 for finite input; NaN (from inf input) becomes 0 */
            blk.qs[j] = (int8_t)(r >= 127.0f ? 127 : r <= -127.0f ? -127 : r == r ? (int)r : 0);
        }
        memcpy(p + (size_t)b * sizeof blk, &blk, sizeof blk);
    }
}
