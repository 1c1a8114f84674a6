/* GGML blocks -> MLX affine quantization, row by row, without loss.
 *
 * Each GGML block type below is an affine code per group of 32 values in
 * disguise; only the code order inside a block and the scale/bias
 * arithmetic differ (layouts in quant/ggml_blocks.h, MLX's in
 * quant/quant_layout.h: code i of a row at bits [i*b, (i+1)*b) of an
 * LSB-first stream of little-endian u32 words):
 *   Q4_0  x = d*(q - 8)          -> 4 bits, scale d,      bias -8d
 *   Q4_1  x = d*q + m            -> 4 bits, scale d,      bias m
 *   Q8_0  x = d*q, q in [-128,127] -> 8 bits, code q + 128, scale d, bias -128d
 *   Q4_K  x = (d*sc)*q - dmin*m  -> 4 bits per sub-block of 32, scale d*sc,
 *                                   bias -(dmin*m)
 *   Q5_K  as Q4_K with a fifth bit -> 5 bits
 * "Without loss": MLX computes scale*code + bias; with the values above that
 * is the same real number ggml computes, and every intermediate is exact or
 * rounded once exactly as ggml rounds it (Q4_0: d*(q-8) is exact in f32;
 * Q4_1: d*q exact, + m rounded once in both; Q8_0: d*(q+128) and 128d
 * exact, their difference d*q representable so exact; K-quants: d*sc is a
 * 17-bit product, exact in f32, and (d*sc)*q - dmin*m rounds once in both).
 * Scales and biases are f16 for Q4_0/Q4_1/Q8_0 (d and m are f16 and -8d,
 * -128d are f16 too unless they overflow: the caller checks and then asks
 * for f32) and f32 for the K-quants (d*sc needs 17 mantissa bits). */
#include <string.h>

#include "model/convert_gguf_blocks.h"
#include "mlxn/dtype.h"
#include "mlxn/gguf.h"
#include "quant/ggml_blocks.h"
#include "quant/quant_layout.h"

static void put(void *arr, int64_t i, float v, bool f32) {
    if (f32) ((float *)arr)[i] = v;
    else ((uint16_t *)arr)[i] = mlxn_f32_to_f16(v);
}

/* Codes v[32] of 4 bits -> 4 words. */
static void pack4(const uint8_t *v, uint32_t *w) {
    for (int k = 0; k < 4; k++) {
        uint32_t x = 0;
        for (int t = 0; t < 8; t++) x |= (uint32_t)v[8 * k + t] << (4 * t);
        w[k] = x;
    }
}

bool cvg_block_exact(int type) {
    return type == MLXN_GGML_Q4_0 || type == MLXN_GGML_Q4_1 || type == MLXN_GGML_Q8_0 || type == MLXN_GGML_Q4_K ||
           type == MLXN_GGML_Q5_K;
}

int cvg_block_bits(int type) {
    switch (type) {
    case MLXN_GGML_Q8_0: return 8;
    case MLXN_GGML_Q5_K: return 5;
    default: return 4;
    }
}

bool cvg_block_f32_scales(int type) { return type == MLXN_GGML_Q4_K || type == MLXN_GGML_Q5_K; }

bool cvg_f16_fits(int type, const void *src, int64_t n) {
    const uint8_t *p = src;
    float k = type == MLXN_GGML_Q4_0 ? 8.0f : type == MLXN_GGML_Q8_0 ? 128.0f : 1.0f;
    size_t bb = type == MLXN_GGML_Q4_0 ? 18 : type == MLXN_GGML_Q4_1 ? 20 : 34;
    for (int64_t b = 0; b < n / 32; b++) {
        uint16_t d;
        memcpy(&d, p + (size_t)b * bb, 2);
        float v = mlxn_f16_to_f32(d);
        if (!(v * k <= 65504.0f && v * k >= -65504.0f)) return false;
    }
    return true;
}

void cvg_block_row(int type, const void *src, int64_t n, uint32_t *wq, void *scales, void *biases, bool f32) {
    const uint8_t *p = src;
    uint8_t v[32];
    switch (type) {
    case MLXN_GGML_Q4_0:
    case MLXN_GGML_Q4_1: {
        bool one = type == MLXN_GGML_Q4_1;
        size_t bb = one ? sizeof(mlxn_block_q4_1) : sizeof(mlxn_block_q4_0);
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = p + (size_t)b * bb;
            uint16_t dh, mh = 0;
            memcpy(&dh, blk, 2);
            if (one) memcpy(&mh, blk + 2, 2);
            const uint8_t *qs = blk + (one ? 4 : 2);
            for (int j = 0; j < 16; j++) {
                v[j] = qs[j] & 15;
                v[j + 16] = qs[j] >> 4;
            }
            pack4(v, wq + 4 * b);
            float d = mlxn_f16_to_f32(dh);
            put(scales, b, d, f32);
            put(biases, b, one ? mlxn_f16_to_f32(mh) : -8.0f * d, f32);
        }
        break;
    }
    case MLXN_GGML_Q8_0:
        for (int64_t b = 0; b < n / 32; b++) {
            mlxn_block_q8_0 blk;
            memcpy(&blk, p + (size_t)b * sizeof blk, sizeof blk);
            for (int k = 0; k < 8; k++) {
                uint32_t x = 0;
                for (int t = 0; t < 4; t++) x |= (uint32_t)(uint8_t)(blk.qs[4 * k + t] + 128) << (8 * t);
                wq[8 * b + k] = x;
            }
            float d = mlxn_f16_to_f32(blk.d);
            put(scales, b, d, f32);
            put(biases, b, -128.0f * d, f32);
        }
        break;
    case MLXN_GGML_Q4_K:
    case MLXN_GGML_Q5_K: {
        bool five = type == MLXN_GGML_Q5_K;
        for (int64_t b = 0; b < n / 256; b++) {
            uint16_t dh, dminh;
            const uint8_t *scl, *qs, *qh = NULL;
            if (five) {
                const mlxn_block_q5_K *blk = (const mlxn_block_q5_K *)(p + (size_t)b * sizeof(mlxn_block_q5_K));
                memcpy(&dh, &blk->d, 2);
                memcpy(&dminh, &blk->dmin, 2);
                scl = blk->scales;
                qs = blk->qs;
                qh = blk->qh;
            } else {
                const mlxn_block_q4_K *blk = (const mlxn_block_q4_K *)(p + (size_t)b * sizeof(mlxn_block_q4_K));
                memcpy(&dh, &blk->d, 2);
                memcpy(&dminh, &blk->dmin, 2);
                scl = blk->scales;
                qs = blk->qs;
            }
            float d = mlxn_f16_to_f32(dh), dmin = mlxn_f16_to_f32(dminh);
            for (int s = 0; s < 8; s++) {
                uint8_t sc, m;
                mlxn_q4k_scale_min(scl, s, &sc, &m);
                float ds = d * (float)sc, ms = dmin * (float)m;
                int64_t g = 8 * b + s; /* group index in the row */
                put(scales, g, ds, f32);
                put(biases, g, -ms, f32);
                const uint8_t *q = qs + 32 * (s / 2);
                int shift = 4 * (s & 1);
                for (int l = 0; l < 32; l++) {
                    uint32_t code = (q[l] >> shift) & 15u;
                    if (five) code |= ((qh[l] >> s) & 1u) << 4;
                    mlxn_pack_code(wq, g * 32 + l, five ? 5 : 4, code);
                }
            }
        }
        break;
    }
    default: break;
    }
}
