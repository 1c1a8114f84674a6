/* The integer weighted sums of 4-bit TurboQuant values (tq_kernels.h has
 * the definition and why): the kernel's dim order, the weights' rounding
 * and the sums in plain scalar C. It is the oracle of the SIMD kernel
 * (tq_vsum_avx2.c), which must give the same bits. */
#include <math.h>

#include "backend/cpu/tq_kernels.h"
#include "quant/tq_layout.h"

void tq_vsum4_scalar(const uint8_t *v, int64_t vstride, const float *vnorm, float vfac, int64_t n, int64_t D,
                     const int16_t l16[16], const float *w, int64_t lds, const float *corr, const unsigned char *live,
                     int64_t M, float *const *acc) {
    while (n > TQ_VSUM_KEYS) { /* longer than a block: the blocks in turn */
        tq_vsum4_scalar(v, vstride, vnorm, vfac, TQ_VSUM_KEYS, D, l16, w, lds, corr, live, M, acc);
        v += TQ_VSUM_KEYS * vstride, vnorm += TQ_VSUM_KEYS, w += TQ_VSUM_KEYS, n -= TQ_VSUM_KEYS, corr = NULL;
    }
    for (int64_t r = 0; r < M; r++) {
        if (!live[r]) continue;
        float u[TQ_VSUM_KEYS], umax = 0.0f;
        int bad = 0;
        for (int64_t j = 0; j < n; j++) {
            u[j] = w[r * lds + j] * (vnorm[j] * vfac);
            bad |= !isfinite(u[j]);
            if (u[j] > umax) umax = u[j];
        }
        float *a = acc[r];
        if (bad) {
            for (int64_t d = 0; d < D; d++) a[d] = NAN;
            continue;
        }
        const float inv = umax > 0.0f ? 32767.0f / umax : 0.0f, fac = umax * TQ_VSUM_FAC;
        int32_t u16[TQ_VSUM_KEYS];
        for (int64_t j = 0; j < n; j++) u16[j] = (int32_t)rintf(u[j] * inv);
        for (int64_t d = 0; d < D; d++) {
            int32_t sum = 0;
            for (int64_t j = 0; j < n; j++) sum += u16[j] * l16[mlxn_tq_get_code(v + j * vstride, d, 4)];
            float *o = a + tq_vsum_slot(d);
            *o = *o * (corr ? corr[r] : 1.0f) + (float)sum * fac;
        }
    }
}
