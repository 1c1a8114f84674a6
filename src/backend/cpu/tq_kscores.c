/* The integer score model of 4-bit TurboQuant keys (tq_kernels.h has the
 * definition and why): the query's rounding to 16-bit integers, the
 * codebook's, the kernel's dim order, and the scores in plain scalar C. It
 * is the oracle of the SIMD kernel (tq_kscores_avx2.c), which must give the
 * same bits. */
#include <math.h>

#include "backend/cpu/tq_kernels.h"
#include "quant/tq_layout.h"
#include "quant/tq_tables.h"

void tq_kq_prepare(const float *x, int64_t D, int16_t *q16, float *qs) {
    float amax = 0.0f;
    int nan = 0;
    for (int64_t d = 0; d < D; d++) {
        const float a = fabsf(x[d]);
        nan |= isnan(a);
        if (a > amax) amax = a;
    }
    if (nan) amax = NAN;
    if (!isfinite(amax) || amax == 0.0f) {
        /* a zero query scores 0 everywhere (as in f32); a NaN or infinite one
           NaN everywhere, where the f32 path gives NaN or inf */
        for (int64_t d = 0; d < D; d++) q16[d] = 0;
        *qs = amax == 0.0f ? 0.0f : NAN;
        return;
    }
    const float inv = 2047.0f / amax;
    for (int64_t d = 0; d < D; d++) {
        float r = rintf(x[d] * inv);
        r = r > 2047.0f ? 2047.0f : r < -2047.0f ? -2047.0f : r;
        q16[tq_kq_slot(d)] = (int16_t)r;
    }
    *qs = amax / 2047.0f;
}

void tq_kq_levels4(int16_t out[16]) {
    const float *lv = mlxn_tq_levels(4);
    for (int i = 0; i < 16; i++) out[i] = (int16_t)rintf(lv[i] * TQ_KS_LSCALE);
}

void tq_kscores4_scalar(const uint8_t *k, int64_t kstride, const float *knorm, float kfac, int64_t n, int64_t D,
                        const tq_kq *q, int64_t q0, int64_t nt, int64_t Tq, int64_t M, float *s, int64_t lds) {
    for (int64_t r = 0; r < M; r++) {
        const int64_t qr = q0 + (r / nt) * Tq + r % nt;
        const int16_t *qv = q->q + qr * D;
        for (int64_t j = 0; j < n; j++) {
            int32_t sum = 0;
            for (int64_t d = 0; d < D; d++) sum += (int32_t)qv[tq_kq_slot(d)] * q->l16[mlxn_tq_get_code(k + j * kstride, d, 4)];
            s[r * lds + j] = ((float)sum * (knorm[j] * kfac)) * q->qs[qr];
        }
    }
}
