/* Scalar kernels of the quantized matmul (the SCALAR ISA level): plain C
 * loops over float-exact dequantized weights (qm_dequant_span), one
 * sequential f32 sum per output, as MLX's own CPU kernel. They run on any
 * processor and are the fallback every faster path is measured against. */
#include "backend/cpu/qmatmul.h"

/* out[m, j] += dot(x[m, :kc], w[j, :kc]) */
static void tile_ref(const float *x, int64_t ldx, int mb, const float *w, int64_t ldw, int rb, int64_t kc,
                     float *out, int64_t ldo) {
    for (int m = 0; m < mb; m++)
        for (int j = 0; j < rb; j++) {
            const float *xm = x + m * ldx, *wj = w + j * ldw;
            float acc = 0.0f;
            for (int64_t k = 0; k < kc; k++) acc += xm[k] * wj[k];
            out[m * ldo + j] += acc;
        }
}

/* out[m, :n] += sum_i x[m, i] * b[i, :n] */
static void axpy_ref(const float *x, int64_t ldx, int mb, const float *b, int64_t ldb, int kb, int64_t n,
                     float *out, int64_t ldo) {
    for (int m = 0; m < mb; m++)
        for (int i = 0; i < kb; i++) {
            float xi = x[m * ldx + i];
            const float *bi = b + i * ldb;
            float *o = out + m * ldo;
            for (int64_t j = 0; j < n; j++) o[j] += xi * bi[j];
        }
}

const qm_kernels qm_kernels_ref = {.dequant = qm_dequant_span, .tile = tile_ref, .axpy = axpy_ref};
