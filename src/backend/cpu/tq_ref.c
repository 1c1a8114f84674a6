/* Scalar reference of the TurboQuant kernels (semantics: mlxn/turboquant.h,
 * format: src/quant/tq_layout.h): encoding one vector, decoding one row, the
 * rotations, and attention one query row at a time in two passes (scores of
 * every visible key, then the weighted value sum), all from the codes with
 * plain f32 sums. It is the SCALAR-ISA path and the oracle of the fast one. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/tq_kernels.h"
#include "quant/tq_layout.h"
#include "quant/tq_tables.h"

/* The FWHT of both rotations: mlxn_tq_fwht's stages (h = 1, 2, ..., D / 2)
 * at every ISA level (cpu_fwht's SIMD kernels only reorder memory visits),
 * with the 1 / sqrt(D) as its final scale. A sign flip is exact, so
 * unrotate's (y * r) * s is y * (r * s), bit for bit. */
void tq_rotate(const float *x, int64_t xs, int64_t D, const float *signs, float *y, mlxn_cpu_isa isa) {
    for (int64_t d = 0; d < D; d++) y[d] = x[d * xs] * signs[d];
    cpu_fwht(y, D, 1.0f / sqrtf((float)D), isa);
}

void tq_unrotate(float *y, int64_t D, const float *signs, mlxn_cpu_isa isa) {
    cpu_fwht(y, D, 1.0f / sqrtf((float)D), isa);
    for (int64_t d = 0; d < D; d++) y[d] *= signs[d];
}

void tq_encode_row(const float *x, int64_t xs, int64_t D, const float *signs, int bits, uint8_t *row, float *norm,
                   float *tmp, mlxn_cpu_isa isa) {
    tq_rotate(x, xs, D, signs, tmp, isa);
    const float n = sqrtf(mlxn_tq_sum_squares(tmp, D));
    const float inv = n > 0.0f ? sqrtf((float)D) / n : 0.0f; /* a zero (or NaN) vector codes as zeros */
    const float *bd = mlxn_tq_bounds(bits);
    const int64_t nbytes = mlxn_tq_code_bytes(D, bits); /* > 0 for a validated cache; the guard tells the compiler */
    if (nbytes > 0) memset(row, 0, (size_t)nbytes);
    for (int64_t d = 0; d < D; d++) mlxn_tq_put_code(row, d, bits, mlxn_tq_encode(bd, bits, tmp[d] * inv));
    *norm = n;
}

void tq_decode_scalar(const uint8_t *row, int bits, const float *levels, float scale, int64_t D, float *y) {
    for (int64_t d = 0; d < D; d++) y[d] = scale * levels[mlxn_tq_get_code(row, d, bits)];
}

void tq_decode_rows_scalar(const uint8_t *const *rows, const float *scale, int64_t n, int bits, const float *levels,
                           int64_t D, float *y) {
    for (int64_t j = 0; j < n; j++) tq_decode_scalar(rows[j], bits, levels, scale[j], D, y + j * D);
}

void tq_ref_attn_rows(const tq_attn *a, int64_t r0, int64_t r1, float *scratch) {
    const int64_t D = a->D;
    const int kb = a->c->p.k_bits, vb = a->c->p.v_bits;
    const int64_t krow = a->c->k_row, vrow = a->c->v_row;
    const float r = 1.0f / sqrtf((float)D);
    float *sc = scratch;            /* [n_held] scores, then weights */
    float *q = scratch + a->n_held; /* [D] rotated, scaled query */
    for (int64_t row = r0; row < r1; row++) {
        const int64_t h = row / a->Tq, i = row % a->Tq, hk = h / a->G, qp = a->pos + i;
        float *o = a->out + row * D; /* [D] */
        tq_rotate(a->q + h * a->qs[0] + i * a->qs[1], a->qs[2], D, a->signs, q, MLXN_CPU_ISA_SCALAR);
        for (int64_t d = 0; d < D; d++) q[d] *= a->scale;
        /* visible positions [p0, p1) */
        int64_t p0 = a->lo, p1 = a->pos + a->Tq;
        if (a->causal && qp + 1 < p1) p1 = qp + 1;
        if (a->window > 0 && qp - a->window + 1 > p0) p0 = qp - a->window + 1;
        memset(o, 0, (size_t)D * sizeof(float));
        if (p0 >= p1) continue;
        float m = -INFINITY;
        for (int64_t p = p0; p < p1; p++) {
            const int64_t slot = hk * a->cap + p % a->cap;
            const uint8_t *kr = a->kc + slot * krow;
            const float ks = a->kn[slot] * r;
            float s = 0.0f;
            for (int64_t d = 0; d < D; d++) s += q[d] * (ks * a->klv[mlxn_tq_get_code(kr, d, kb)]);
            if (a->softcap > 0.0f) s = tanhf(s / a->softcap) * a->softcap;
            sc[p - p0] = s;
            if (s > m) m = s;
        }
        float sum = 0.0f;
        for (int64_t p = p0; p < p1; p++) {
            float e = expf(sc[p - p0] - m);
            sc[p - p0] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        for (int64_t p = p0; p < p1; p++) {
            const int64_t slot = hk * a->cap + p % a->cap;
            const uint8_t *vr = a->vc + slot * vrow;
            const float w = sc[p - p0] * inv, vs = a->vn[slot] * r;
            for (int64_t d = 0; d < D; d++) o[d] += w * (vs * a->vlv[mlxn_tq_get_code(vr, d, vb)]);
        }
        tq_unrotate(o, D, a->signs, MLXN_CPU_ISA_SCALAR);
    }
}
