/* Scalar reference attention (semantics in sdpa_kernels.h): two passes per
 * query row over all its scores, plain f32 sums. It is the SCALAR-ISA path
 * (what non-x86 builds run) and the oracle the flash kernels are tested
 * against. */
#include <math.h>

#include "backend/cpu/cpu_tensor.h"
#include "backend/cpu/sdpa_kernels.h"

void sdpa_ref_rows(const sdpa_problem *p, int64_t r0, int64_t r1, float *scratch) {
    float *sc = scratch;     /* [Tk] scores, then weights */
    float *q = scratch + p->Tk; /* [D] scaled query */
    for (int64_t r = r0; r < r1; r++) {
        const int64_t i = r % p->Tq, h = (r / p->Tq) % p->Hq, b = r / (p->Tq * p->Hq), hk = h / p->G;
        float *o = p->out + r * p->Dv; /* [Dv] */
        for (int64_t d = 0; d < p->Dv; d++) o[d] = 0.0f;
        cpu_row_to_f32(sdpa_row(&p->q, b, h, i), p->q.dt, p->q.s[3], p->D, q);
        for (int64_t d = 0; d < p->D; d++) q[d] *= p->scale;
        int64_t lo, hi;
        sdpa_key_range(p, i, &lo, &hi);
        float m = p->sinks ? p->sinks[h * p->sink_stride] : -INFINITY;
        if (lo >= hi && !p->sinks) continue;
        for (int64_t j = lo; j < hi; j++) {
            const void *kr = sdpa_row(&p->k, b, hk, j);
            float s = 0.0f;
            for (int64_t d = 0; d < p->D; d++) s += q[d] * cpu_load_f32(kr, p->k.dt, d * p->k.s[3]);
            sc[j] = s;
        }
        if (lo < hi) sdpa_cap_and_mask(p, p->mask ? sdpa_mask_row(p, b, h, i) : 0, lo, hi - lo, sc + lo);
        for (int64_t j = lo; j < hi; j++)
            if (sc[j] > m) m = sc[j];
        if (m == -INFINITY) continue; /* nothing visible, no sink: zeros */
        float sum = p->sinks ? expf(p->sinks[h * p->sink_stride] - m) : 0.0f;
        for (int64_t j = lo; j < hi; j++) {
            sc[j] = sc[j] == -INFINITY ? 0.0f : expf(sc[j] - m);
            sum += sc[j];
        }
        const float inv = 1.0f / sum;
        for (int64_t j = lo; j < hi; j++) {
            const float w = sc[j] * inv;
            const void *vr = sdpa_row(&p->v, b, hk, j);
            for (int64_t d = 0; d < p->Dv; d++) o[d] += w * cpu_load_f32(vr, p->v.dt, d * p->v.s[3]);
        }
    }
}
