/* Cases of mlxn_tq_rope_append shared by test_tq_rope_append (CPU) and
 * test_backend_tq_rope (CUDA): on one device, the fused op against the
 * calls it stands for (mlxn_rope of q into q_out, mlxn_rope of k into an f32
 * temporary, mlxn_tq_append of that and v), from the same fresh seeded
 * inputs into fresh caches and NaN-poisoned q_out buffers: q_out and the
 * cache's codes and norms must match byte for byte (never-written slots
 * included). Inputs may be strided views (q and k transposed views of
 * token-major buffers, v rows with gaps of NaN), the positions host ints or
 * i32 [1] tensors, the rope's offset apart from the append's slot (as a
 * chunk appended into a scratch view passes them). Header-only: each test
 * includes it once. */
#ifndef MLXN_TQ_ROPE_CASES_H
#define MLXN_TQ_ROPE_CASES_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/tq_cache.h"
#include "harness.h"

typedef struct trc {
    int Hkv, G, D, T, kb, vb;
    int64_t cap, pos; /* the append's first slot position */
    int64_t off;      /* the rope's position of token 0 */
    int dims, trad, freqs;
    int tensors; /* pos and offset as i32 [1] device tensors */
    int strided;
    const char *label;
} trc;

static const trc TRC_CASES[] = {
    /* decode steps */
    {4, 2, 256, 1, 4, 4, 1024, 5000, 5000, 256, 0, 0, 1, 0, "Gemma-3-4B-like step, ring wrapped, device positions"},
    {8, 4, 128, 1, 4, 4, 4096, 77, 77, 128, 0, 1, 0, 1, "Llama-3-8B-like step, freqs, strided"},
    {2, 16, 256, 1, 4, 4, 20000, 19999, 19999, 256, 0, 0, 1, 1, "head dim 256, 32 q / 2 kv heads, strided"},
    {8, 4, 64, 1, 8, 4, 300, 299, 299, 32, 1, 0, 0, 0, "head dim 64, partial traditional rotary, k8 v4"},
    {1, 1, 512, 1, 3, 5, 64, 10, 100010, 512, 0, 0, 1, 0, "head dim 512, rope far from the slot"},
    {2, 4, 128, 1, 4, 4, 50, 20, 20, 64, 0, 0, 0, 1, "head dim 128, half rotary (64 of 128 dims)"},
    {2, 2, 64, 1, 5, 5, 50, 49, 49, 40, 1, 0, 1, 0, "head dim 64, traditional rotary of 40 dims"},
    /* chunks */
    {2, 4, 128, 7, 4, 4, 100, 95, 95, 128, 1, 0, 0, 1, "chunk of 7 through a ring's wrap, strided"},
    {3, 2, 64, 33, 2, 6, 64, 0, 4000, 48, 0, 1, 1, 1, "chunk of 33 into a scratch (slot 0, rope at 4000)"},
};
enum { TRC_N = sizeof TRC_CASES / sizeof TRC_CASES[0] };

/* One input tensor on a device: a view over a buffer whose gaps are NaN. */
static mlxn_tensor trc_input(mlxn_device *dev, int ndim, const int64_t *shape, const int64_t *strides, float spread) {
    mlxn_tensor t = t_tensor_strided(dev, MLXN_DTYPE_F32, ndim, shape, strides);
    if (!t.buf) return t;
    const size_t n = mlxn_buffer_size(t.buf) / sizeof(float);
    float *h = malloc(n * sizeof(float));
    if (!h) return t;
    memset(h, 0xff, n * sizeof(float));
    int64_t sh[3] = {1, 1, 1}, st[3] = {0, 0, 0};
    for (int i = 0; i < ndim; i++) sh[3 - ndim + i] = shape[i], st[3 - ndim + i] = strides[i];
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++) {
            const float s = expf(spread * t_randn()); /* norms vary by row */
            for (int64_t c = 0; c < sh[2]; c++) h[a * st[0] + b * st[1] + c * st[2]] = s * t_randn();
        }
    CHECK_OK(mlxn_buffer_write(t.buf, 0, h, n * sizeof(float)));
    free(h);
    return t;
}

static mlxn_tensor trc_i32(mlxn_device *dev, int32_t v) {
    int64_t one = 1;
    mlxn_tensor t = t_tensor_contig(dev, MLXN_DTYPE_I32, 1, &one);
    if (t.buf) CHECK_OK(mlxn_buffer_write(t.buf, 0, &v, sizeof v));
    return t;
}

typedef struct trc_inputs {
    mlxn_tensor q, k, v, freqs, pos_t, off_t;
} trc_inputs;

/* q [Hq, T, D], k and v [Hkv, T, D]: contiguous, or (strided) q and k
 * transposed views of [T, H, D] buffers and v rows 8 floats apart. */
static trc_inputs trc_inputs_new(mlxn_device *dev, const trc *c) {
    trc_inputs in;
    memset(&in, 0, sizeof in);
    const int64_t Hq = (int64_t)c->Hkv * c->G, T = c->T, D = c->D;
    int64_t qs[3] = {Hq, T, D}, ks[3] = {c->Hkv, T, D};
    int64_t qst[3] = {T * D, D, 1}, kst[3] = {T * D, D, 1}, vst[3] = {T * D, D, 1};
    if (c->strided) {
        qst[0] = D, qst[1] = Hq * D;
        kst[0] = D, kst[1] = c->Hkv * D;
        vst[0] = T * (D + 8), vst[1] = D + 8;
    }
    in.q = trc_input(dev, 3, qs, qst, 0.5f);
    in.k = trc_input(dev, 3, ks, kst, 1.0f);
    in.v = trc_input(dev, 3, ks, vst, 0.5f);
    if (c->freqs) {
        int64_t n = c->dims / 2;
        in.freqs = t_tensor_contig(dev, MLXN_DTYPE_F32, 1, &n);
        float *f = malloc((size_t)n * sizeof(float));
        if (f && in.freqs.buf) {
            for (int64_t i = 0; i < n; i++) f[i] = 1.0f + 3.0f * (float)(i * i);
            CHECK_OK(mlxn_buffer_write(in.freqs.buf, 0, f, (size_t)n * sizeof(float)));
        }
        free(f);
    }
    if (c->tensors) {
        in.pos_t = trc_i32(dev, (int32_t)c->pos);
        in.off_t = trc_i32(dev, (int32_t)c->off);
    }
    return in;
}

static void trc_inputs_free(trc_inputs *in) {
    mlxn_tensor *all[] = {&in->q, &in->k, &in->v, &in->freqs, &in->pos_t, &in->off_t};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->buf) t_tensor_free(all[i]);
}

static mlxn_rope_params trc_rope(const trc *c, const trc_inputs *in) {
    mlxn_rope_params p = {.dims = c->dims, .traditional = c->trad, .base = 10000.0f, .scale = 1.0f,
                          .offset = c->tensors ? 12345 : (int)c->off};
    if (c->freqs) p.freqs = &in->freqs;
    if (c->tensors) p.offset_tensor = &in->off_t;
    return p;
}

/* One run: fused (the op) or apart (the calls it stands for) into a fresh
 * cache *out and a fresh NaN q_out *qo. */
static mlxn_status trc_run(mlxn_device *dev, const trc *c, int fused, const trc_inputs *in, mlxn_tq_cache **out,
                           mlxn_tensor *qo) {
    mlxn_stream *s = mlxn_device_stream(dev);
    mlxn_tq_cache_params p = {.n_kv_heads = c->Hkv, .capacity = c->cap, .head_dim = c->D, .k_bits = c->kb,
                              .v_bits = c->vb, .seed = mlxn_tq_seed(c->Hkv + c->D)};
    *out = NULL;
    mlxn_status st = mlxn_tq_cache_new(dev, &p, out);
    if (st != MLXN_OK) return st;
    const int64_t qs[3] = {(int64_t)c->Hkv * c->G, c->T, c->D}, ks[3] = {c->Hkv, c->T, c->D};
    *qo = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, qs); /* poisoned */
    const mlxn_rope_params rp = trc_rope(c, in);
    const int64_t pos = c->tensors ? 99999 : c->pos;
    const mlxn_tensor *pt = c->tensors ? &in->pos_t : NULL;
    if (fused) {
        st = mlxn_tq_rope_append(s, *out, &in->q, &in->k, &in->v, &rp, qo, pos, pt);
    } else {
        mlxn_tensor kr = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, ks);
        st = mlxn_rope(s, &in->q, &rp, qo);
        if (st == MLXN_OK) st = mlxn_rope(s, &in->k, &rp, &kr);
        if (st == MLXN_OK) st = mlxn_tq_append(s, *out, &kr, &in->v, pos, pt);
        if (st == MLXN_OK) st = mlxn_stream_sync(s); /* before kr is freed */
        t_tensor_free(&kr);
        return st;
    }
    return st == MLXN_OK ? mlxn_stream_sync(s) : st;
}

/* Byte for byte; names the first difference. Returns 1 when equal. */
static int trc_same(const char *label, const char *what, const mlxn_tensor *a, const mlxn_tensor *b) {
    const size_t n = mlxn_buffer_size(a->buf);
    uint8_t *x = malloc(n), *y = malloc(n);
    int ok = x && y && n == mlxn_buffer_size(b->buf);
    if (ok) {
        CHECK_OK(mlxn_buffer_read(a->buf, 0, x, n));
        CHECK_OK(mlxn_buffer_read(b->buf, 0, y, n));
        size_t diff = 0, first = 0;
        for (size_t i = 0; i < n; i++)
            if (x[i] != y[i] && diff++ == 0) first = i;
        ok = diff == 0;
        CHECK(ok, "%s: %s differ from the calls apart in %zu of %zu bytes, first at byte %zu (0x%02x vs 0x%02x)",
              label, what, diff, n, first, x[first], y[first]);
    } else {
        CHECK(0, "%s: %s: could not read the buffers", label, what);
    }
    free(x);
    free(y);
    return ok;
}

/* Every case on `dev`: fused against apart. */
static void trc_run_cases(mlxn_device *dev) {
    for (int i = 0; i < TRC_N; i++) {
        const trc *c = &TRC_CASES[i];
        trc_inputs in = trc_inputs_new(dev, c);
        mlxn_tq_cache *cf = NULL, *ca = NULL;
        mlxn_tensor qf, qa;
        memset(&qf, 0, sizeof qf);
        memset(&qa, 0, sizeof qa);
        mlxn_status sf = trc_run(dev, c, 1, &in, &cf, &qf);
        CHECK(sf == MLXN_OK, "%s: fused: %s", c->label, mlxn_last_error());
        mlxn_status sa = trc_run(dev, c, 0, &in, &ca, &qa);
        CHECK(sa == MLXN_OK, "%s: apart: %s", c->label, mlxn_last_error());
        if (sf == MLXN_OK && sa == MLXN_OK) {
            trc_same(c->label, "q_out", &qf, &qa);
            trc_same(c->label, "key codes", &cf->k_codes, &ca->k_codes);
            trc_same(c->label, "value codes", &cf->v_codes, &ca->v_codes);
            trc_same(c->label, "key norms", &cf->k_norms, &ca->k_norms);
            trc_same(c->label, "value norms", &cf->v_norms, &ca->v_norms);
        }
        mlxn_tq_cache_free(cf);
        mlxn_tq_cache_free(ca);
        if (qf.buf) t_tensor_free(&qf);
        if (qa.buf) t_tensor_free(&qa);
        trc_inputs_free(&in);
    }
}

#endif
