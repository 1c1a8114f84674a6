/* Scalar reference for the dense matmul: plain f32 sums in k order, any W
 * dtype and strides. It is the SCALAR-ISA path (and so what non-x86 builds
 * run) and the oracle the SIMD kernels are tested against. */
#include "backend/cpu/matmul_kernels.h"

/* Columns handled per tile: the partial sums live in a small local array. */
#define REF_TILE 64

void mm_ref_rows(const mm_problem *p, int64_t r0, int64_t r1, int64_t n0, int64_t n1) {
    /* Walk W in its memory order (why: a W [K, N] read column by column would
     * touch one cache line per element). Both orders add the same terms in
     * the same k order, so the result does not depend on the layout. */
    int sweep_k = p->csb <= p->rsb;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = p->xrows[r]; /* [K] */
        float *o = p->out + r * p->N; /* [N] */
        for (int64_t t0 = n0; t0 < n1; t0 += REF_TILE) {
            int64_t t1 = t0 + REF_TILE < n1 ? t0 + REF_TILE : n1;
            float acc[REF_TILE] = {0};
            if (sweep_k) {
                for (int64_t k = 0; k < p->K; k++)
                    for (int64_t n = t0; n < t1; n++) acc[n - t0] += x[k] * mm_load_b(p, k, n);
            } else {
                for (int64_t n = t0; n < t1; n++) {
                    float s = 0.0f;
                    for (int64_t k = 0; k < p->K; k++) s += x[k] * mm_load_b(p, k, n);
                    acc[n - t0] = s;
                }
            }
            for (int64_t n = t0; n < t1; n++) o[n] = acc[n - t0];
        }
    }
}
