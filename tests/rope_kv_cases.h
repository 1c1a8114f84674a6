/* The cases test_ops_rope_kv (CPU) and test_backend_rope_kv (CUDA) run
 * through mlxn_rope_kv_write, and the calls it stands for: mlxn_rope of q,
 * mlxn_rope of k into an f32 temporary, mlxn_kv_write2 of that and v.
 * Seeded random q, k, v in the layouts of kv_write2_cases.h (contiguous,
 * transposed, a column range of wider rows), grouped-query head counts,
 * every key/value cache dtype pair, padded caches, ranks 2 to 4, one step
 * or a few rows; rope with all or part of the columns rotated, adjacent
 * pairs or halves, base or explicit frequencies, scaled positions, the
 * position given or read from the device (as a captured decode step
 * does), up to 10^5. rk_run runs a case either way on any device and
 * reads q_out and both caches back (outputs start poisoned). */
#ifndef MLXN_TEST_ROPE_KV_CASES_H
#define MLXN_TEST_ROPE_KV_CASES_H

#include "kv_write2_cases.h"

#define RK_N_CASES 18

typedef struct rk_case {
    kv2_case kv; /* p[0]: k (f32) into the key cache, p[1]: v into the value cache */
    kv2_side q;  /* q's source (its cache part unused); q_out is contiguous f32 */
    int dims, trad, use_freqs, use_offt, offset;
    float base, scale;
    char label[320];
} rk_case;

static inline rk_case rk_make(int ci) {
    rk_case c;
    memset(&c, 0, sizeof c);
    int nd = ci == 4 ? 2 : ci == 11 ? 4 : 3;
    int64_t T = ci < 9 ? 1 : kv2_rand(2, 4), Hk = nd == 2 ? 1 : kv2_rand(1, 3), Hq = Hk * kv2_rand(1, 3);
    int64_t D = 2 * kv2_rand(1, 40), Dv = ci % 2 ? D : kv2_rand(1, 70), cap = T + kv2_rand(0, 9);
    c.dims = ci % 3 == 1 ? (int)(2 * kv2_rand(1, D / 2)) : (int)D;
    c.trad = ci % 4 == 2;
    c.use_freqs = ci % 5 == 3;
    c.use_offt = ci % 2 == 0;
    c.offset = ci == 7 ? 100000 : (int)kv2_rand(0, 3000);
    c.base = ci % 3 == 2 ? 500000.0f : 10000.0f;
    c.scale = ci % 4 == 1 ? 0.25f : 1.0f;
    mlxn_dtype sv = ci % 5 == 4 ? MLXN_DTYPE_BF16 : MLXN_DTYPE_F32;
    kv2_side_make(&c.q, nd, Hq, T, D, T, (ci + 2) % 3, 0, MLXN_DTYPE_F32, MLXN_DTYPE_F32);
    kv2_side_make(&c.kv.p[0], nd, Hk, T, D, cap, ci % 3, ci % 4 == 1, MLXN_DTYPE_F32, kv2_dts[ci % 3]);
    kv2_side_make(&c.kv.p[1], nd, Hk, T, Dv, cap, (ci + 1) % 3, ci % 4 == 3, sv, kv2_dts[(ci / 3) % 3]);
    snprintf(c.label, sizeof c.label,
             "case %d: q [%lld heads, %lld rows, D %lld], k [%lld heads] into %s, v %s D %lld into %s (rank %d); "
             "dims %d %s %s base %g scale %g position %d%s",
             ci, (long long)Hq, (long long)T, (long long)D, (long long)Hk, mlxn_dtype_name(c.kv.p[0].ddt),
             mlxn_dtype_name(sv), (long long)Dv, mlxn_dtype_name(c.kv.p[1].ddt), nd, c.dims,
             c.trad ? "traditional" : "halves", c.use_freqs ? "freqs" : "base", (double)c.base, (double)c.scale,
             c.offset, c.use_offt ? " (on the device)" : "");
    return c;
}

/* Inputs of a case: images of q, k and v (kv2_source). */
typedef struct rk_inputs {
    void *q, *k, *v;
} rk_inputs;
static inline rk_inputs rk_inputs_new(const rk_case *c) {
    rk_inputs in = {kv2_source(&c->q), kv2_source(&c->kv.p[0]), kv2_source(&c->kv.p[1])};
    return in;
}
static inline void rk_inputs_free(rk_inputs *in) { free(in->q), free(in->k), free(in->v); }

/* Outputs read back: q_out (f32 [q's elements]) and both cache images. */
typedef struct rk_outputs {
    float *q;
    void *cache[2];
} rk_outputs;
static inline void rk_outputs_free(rk_outputs *o) { free(o->q), free(o->cache[0]), free(o->cache[1]); }
static inline size_t rk_qbytes(const rk_case *c) {
    int64_t n = kv2_numel(&c->q);
    return (size_t)(n ? n : 1) * sizeof(float);
}

/* Both outputs are the same bytes. */
static inline int rk_same(const rk_case *c, const rk_outputs *a, const rk_outputs *b) {
    return !memcmp(a->q, b->q, rk_qbytes(c)) && kv2_same(&c->kv, a->cache, b->cache);
}

/* Run case c at `slot` on dev: mlxn_rope_kv_write (fused) or rope, rope
 * and kv_write2. Returns the first failing status (a slot error from the
 * call or the stream's sync). */
static inline mlxn_status rk_run(mlxn_device *dev, const rk_case *c, int fused, int32_t slot, const rk_inputs *in,
                                 rk_outputs *out) {
    mlxn_stream *s = mlxn_device_stream(dev);
    const kv2_side *kp = &c->kv.p[0], *vp = &c->kv.p[1];
    mlxn_buffer *qb = NULL, *qob = NULL, *kb = NULL, *vb = NULL, *kdb = NULL, *vdb = NULL, *slb = NULL, *fb = NULL,
                *ob = NULL, *krb = NULL;
    out->q = malloc(rk_qbytes(c));
    t_poison(out->q, rk_qbytes(c));
    out->cache[0] = kv2_poisoned(kp);
    out->cache[1] = kv2_poisoned(vp);
    size_t kn = (size_t)kv2_numel(kp);
    CHECK_OK(mlxn_buffer_new(dev, kv2_sbytes(&c->q), &qb));
    CHECK_OK(mlxn_buffer_new(dev, rk_qbytes(c), &qob));
    CHECK_OK(mlxn_buffer_new(dev, kv2_sbytes(kp), &kb));
    CHECK_OK(mlxn_buffer_new(dev, kv2_sbytes(vp), &vb));
    CHECK_OK(mlxn_buffer_new(dev, kv2_dbytes(kp), &kdb));
    CHECK_OK(mlxn_buffer_new(dev, kv2_dbytes(vp), &vdb));
    CHECK_OK(mlxn_buffer_new(dev, sizeof(int32_t), &slb));
    CHECK_OK(mlxn_buffer_new(dev, sizeof(float) * (size_t)(c->dims / 2), &fb));
    CHECK_OK(mlxn_buffer_new(dev, sizeof(int32_t), &ob));
    CHECK_OK(mlxn_buffer_new(dev, sizeof(float) * (kn ? kn : 1), &krb));
    mlxn_status rc = MLXN_ERR_INVALID_ARGUMENT;
    if (qb && qob && kb && vb && kdb && vdb && slb && fb && ob && krb) {
        CHECK_OK(mlxn_buffer_write(qb, 0, in->q, kv2_sbytes(&c->q)));
        CHECK_OK(mlxn_buffer_write(kb, 0, in->k, kv2_sbytes(kp)));
        CHECK_OK(mlxn_buffer_write(vb, 0, in->v, kv2_sbytes(vp)));
        CHECK_OK(mlxn_buffer_write(qob, 0, out->q, rk_qbytes(c)));
        CHECK_OK(mlxn_buffer_write(kdb, 0, out->cache[0], kv2_dbytes(kp)));
        CHECK_OK(mlxn_buffer_write(vdb, 0, out->cache[1], kv2_dbytes(vp)));
        CHECK_OK(mlxn_buffer_write(slb, 0, &slot, sizeof slot));
        float fr[64];
        for (int i = 0; i < c->dims / 2; i++) fr[i] = 1.0f + 3.0f * (float)i * (float)i;
        CHECK_OK(mlxn_buffer_write(fb, 0, fr, sizeof(float) * (size_t)(c->dims / 2)));
        CHECK_OK(mlxn_buffer_write(ob, 0, &c->offset, sizeof(int32_t)));
        mlxn_tensor q, qo, k, v, kd, vd, sl, fr_t, off_t, kr;
        CHECK_OK(mlxn_tensor_view(qb, MLXN_DTYPE_F32, c->q.nd, c->q.shape, (size_t)c->q.soff * sizeof(float), &q));
        for (int i = 0; i < c->q.nd; i++) q.strides[i] = c->q.sst[i];
        kv2_views(kp, kb, kdb, &k, &kd);
        kv2_views(vp, vb, vdb, &v, &vd);
        int64_t one = 1, half = c->dims / 2;
        CHECK_OK(mlxn_tensor_view(qob, MLXN_DTYPE_F32, c->q.nd, c->q.shape, 0, &qo));
        CHECK_OK(mlxn_tensor_view(krb, MLXN_DTYPE_F32, kp->nd, kp->shape, 0, &kr));
        CHECK_OK(mlxn_tensor_view(slb, MLXN_DTYPE_I32, 1, &one, 0, &sl));
        CHECK_OK(mlxn_tensor_view(fb, MLXN_DTYPE_F32, 1, &half, 0, &fr_t));
        CHECK_OK(mlxn_tensor_view(ob, MLXN_DTYPE_I32, 1, &one, 0, &off_t));
        /* a device-side position replaces a wrong host one */
        mlxn_rope_params p = {.dims = c->dims, .traditional = c->trad, .base = c->base, .scale = c->scale,
                              .offset = c->use_offt ? 17 : c->offset, .offset_tensor = c->use_offt ? &off_t : NULL,
                              .freqs = c->use_freqs ? &fr_t : NULL};
        if (fused) {
            rc = mlxn_rope_kv_write(s, &q, &k, &v, &p, &sl, &qo, &kd, &vd);
        } else {
            rc = mlxn_rope(s, &q, &p, &qo);
            if (rc == MLXN_OK && kn) rc = mlxn_rope(s, &k, &p, &kr);
            if (rc == MLXN_OK) rc = mlxn_kv_write2(s, &kr, &v, &sl, &kd, &vd);
        }
        if (rc == MLXN_OK) rc = mlxn_stream_sync(s);
        CHECK_OK(mlxn_buffer_read(qob, 0, out->q, rk_qbytes(c)));
        CHECK_OK(mlxn_buffer_read(kdb, 0, out->cache[0], kv2_dbytes(kp)));
        CHECK_OK(mlxn_buffer_read(vdb, 0, out->cache[1], kv2_dbytes(vp)));
    }
    mlxn_buffer *all[] = {qb, qob, kb, vb, kdb, vdb, slb, fb, ob, krb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mlxn_buffer_free(all[i]);
    return rc;
}

/* The elements side s wrote at slot `at` of its cache image, as f32 in
 * src order (n = its elements). */
static inline void rk_written(const kv2_side *s, const void *cache, int64_t at, float *out) {
    int64_t n = kv2_numel(s);
    for (int64_t e = 0; e < n; e++) {
        int64_t r = e, dof = s->doff;
        for (int i = s->nd - 1; i >= 0; i--) {
            int64_t c = r % s->shape[i];
            r /= s->shape[i];
            dof += (i == s->nd - 2 ? c + at : c) * s->dst[i];
        }
        out[e] = kv2_load(cache, s->ddt, dof);
    }
}

#endif
