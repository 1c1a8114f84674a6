/* CPU entry points of the TurboQuant KV cache (semantics:
 * mlxn/turboquant.h; format: src/quant/tq_layout.h).
 *  - append: every (kv head, token) vector is encoded by one thread:
 *    rotate, norm, quantize, pack (tq_encode_row), keys and values together.
 *  - attention: at the SCALAR ISA the reference (tq_ref.c) runs one query
 *    row per task. Otherwise the queries are rotated once, the flash driver
 *    of mlxn_sdpa (sdpa_flash.c: online softmax over key blocks, every query
 *    head of a kv head's group per block, keys split across threads when
 *    there are few kv heads, as in decode) runs in the rotated domain with
 *    its K/V blocks decoded from the codes (fetch hook: codebook lookups
 *    times norm / sqrt(D), SIMD per ISA), and the outputs are rotated back
 *    once. Key index j of that problem is position lo + j, in slot
 *    (lo + j) % capacity, so a wrapped ring reads in position order.
 *  - dequantize: decode and un-rotate, one row per task. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_tensor.h"
#include "backend/cpu/sdpa_kernels.h"
#include "backend/cpu/tq_kernels.h"
#include "core/internal.h"
#include "quant/tq_layout.h"
#include "quant/tq_tables.h"

static mlxn_status read_pos(const char *op, int64_t pos, const mlxn_tensor *pt, int64_t *out) {
    if (pt) pos = *(const int32_t *)mlxn_tensor_host(pt);
    if (pos < 0) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: pos_tensor holds %lld (must be >= 0)", op, (long long)pos);
    *out = pos;
    return MLXN_OK;
}

/* ---- append ------------------------------------------------------------------ */

typedef struct append_job {
    mlxn_tq_cache *c;
    const mlxn_tensor *k, *v; /* f32 [Hkv, T, D] */
    int64_t T, pos;
    mlxn_cpu_isa isa; /* the rotations' FWHT kernel */
} append_job;

static void append_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const append_job *j = arg;
    const mlxn_tq_cache *c = j->c;
    const int64_t D = c->p.head_dim, cap = c->p.capacity;
    const float *signs = mlxn_tensor_host(&c->signs);
    uint8_t *kc = mlxn_tensor_host(&c->k_codes), *vc = mlxn_tensor_host(&c->v_codes);
    float *kn = mlxn_tensor_host(&c->k_norms), *vn = mlxn_tensor_host(&c->v_norms);
    float tmp[MLXN_TQ_MAX_HEAD_DIM];
    for (int64_t r = begin; r < end; r++) {
        const int64_t h = r / j->T, t = r % j->T, slot = h * cap + (j->pos + t) % cap;
        tq_encode_row(cpu_row_ptr(j->k, r), j->k->strides[2], D, signs, c->p.k_bits, kc + slot * c->k_row,
                      kn + slot, tmp, j->isa);
        tq_encode_row(cpu_row_ptr(j->v, r), j->v->strides[2], D, signs, c->p.v_bits, vc + slot * c->v_row,
                      vn + slot, tmp, j->isa);
    }
}

mlxn_status cpu_tq_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *k, const mlxn_tensor *v, int64_t pos,
                          const mlxn_tensor *pos_tensor) {
    append_job j = {.c = c, .k = k, .v = v, .T = k->shape[1], .isa = cpu_dev(s)->isa};
    MLXN_TRY(read_pos("tq_append", pos, pos_tensor, &j.pos));
    /* ~4 vectors per chunk: each is a few microseconds of work */
    mlxn_parallel_for(cpu_dev(s)->pool, c->p.n_kv_heads * j.T, 4, append_task, &j);
    return MLXN_OK;
}

/* rope + append: the position checked first (a bad one writes nothing),
 * then the calls the op stands for, in order: rope of q, rope of k into an
 * f32 temporary, the append. */
mlxn_status cpu_tq_rope_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *q, const mlxn_tensor *k,
                               const mlxn_tensor *v, const mlxn_rope_params *p, mlxn_tensor *q_out, int64_t pos,
                               const mlxn_tensor *pos_tensor) {
    int64_t at = 0;
    MLXN_TRY(read_pos("tq_rope_append", pos, pos_tensor, &at));
    MLXN_TRY(cpu_rope(s, q, p, q_out));
    mlxn_tensor kr;
    MLXN_TRY(mlxn_tensor_alloc(s->dev, MLXN_DTYPE_F32, k->ndim, k->shape, &kr));
    mlxn_status st = cpu_rope(s, k, p, &kr);
    if (st == MLXN_OK) st = cpu_tq_append(s, c, &kr, v, at, NULL);
    mlxn_tensor_release(&kr);
    return st;
}

/* ---- dequantize -------------------------------------------------------------- */

typedef struct deq_job {
    const mlxn_tq_cache *c;
    int is_v;
    int64_t pos, n;
    float *out; /* [Hkv, n, D] */
    mlxn_cpu_isa isa;
} deq_job;

static void deq_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const deq_job *j = arg;
    const mlxn_tq_cache *c = j->c;
    const int64_t D = c->p.head_dim, cap = c->p.capacity, rb = j->is_v ? c->v_row : c->k_row;
    const int bits = j->is_v ? c->p.v_bits : c->p.k_bits;
    const uint8_t *codes = mlxn_tensor_host(j->is_v ? &c->v_codes : &c->k_codes);
    const float *norms = mlxn_tensor_host(j->is_v ? &c->v_norms : &c->k_norms);
    const float *signs = mlxn_tensor_host(&c->signs), *lv = mlxn_tq_levels(bits);
    for (int64_t r = begin; r < end; r++) {
        const int64_t h = r / j->n, t = r % j->n, slot = h * cap + (j->pos + t) % cap;
        float *y = j->out + r * D;
        tq_decode_scalar(codes + slot * rb, bits, lv, norms[slot] / sqrtf((float)D), D, y);
        tq_unrotate(y, D, signs, j->isa);
    }
}

mlxn_status cpu_tq_dequantize(mlxn_stream *s, const mlxn_tq_cache *c, int which_v, int64_t pos, mlxn_tensor *out) {
    deq_job j = {.c = c, .is_v = which_v, .pos = pos, .n = out->shape[1], .out = mlxn_tensor_host(out),
                 .isa = cpu_dev(s)->isa};
    mlxn_parallel_for(cpu_dev(s)->pool, c->p.n_kv_heads * j.n, 8, deq_task, &j);
    return MLXN_OK;
}

/* ---- attention --------------------------------------------------------------- */

typedef struct ref_job {
    const tq_attn *a;
    float *scratch; /* [threads][n_held + 2 D] */
} ref_job;

static void ref_task(void *arg, int64_t begin, int64_t end, int thread) {
    const ref_job *j = arg;
    tq_ref_attn_rows(j->a, begin, end, j->scratch + (int64_t)thread * (j->a->n_held + 2 * j->a->D));
}

typedef struct fast_ctx {
    const tq_attn *a;
    tq_decode_fn dec;
    float *qr; /* [Hq, Tq, D] rotated queries */
    /* the integer score path (4-bit keys, AVX2 or AVX-512, tq_kernels.h), else NULL */
    tq_kscores_fn ks;
    tq_kq kq;  /* [Hq * Tq] rows: the rotated, scaled queries in 16 bits */
    /* the integer weighted sums (4-bit values in decode, AVX2 or AVX-512, tq_kernels.h), else NULL: the outputs
       then come out of sdpa_flash in tq_vsum_slot order */
    tq_vsum_fn vs;
    mlxn_cpu_isa isa; /* the rotations' FWHT kernel */
} fast_ctx;

/* sdpa_flash's K/V source: keys (or values) of positions lo + n0 .. + n of
 * kv head hk, decoded into buf [n][D] in the rotated domain. */
static void fetch(const void *ctx, int is_v, int64_t b, int64_t hk, int64_t n0, int64_t n, float *buf) {
    (void)b;
    const fast_ctx *f = ctx;
    const tq_attn *a = f->a;
    const int64_t D = a->D, rb = is_v ? a->c->v_row : a->c->k_row;
    const int bits = is_v ? a->c->p.v_bits : a->c->p.k_bits;
    const uint8_t *codes = is_v ? a->vc : a->kc;
    const float *norms = is_v ? a->vn : a->kn, *lv = is_v ? a->vlv : a->klv;
    const float r = 1.0f / sqrtf((float)D);
    enum { CH = 64 }; /* rows per decoder call (a flash block is at most 32 keys) */
    const uint8_t *rows[CH];
    float scale[CH];
    /* the ring in position order: the slot of position lo + n0 + j, stepped and wrapped rather than divided
       per key (docs/perf.md, CPU TurboQuant: a small gain at head dim 64, within the 2-core machine's spread) */
    int64_t at = (a->lo + n0) % a->cap;
    for (int64_t j0 = 0; j0 < n; j0 += CH) {
        const int64_t m = n - j0 < CH ? n - j0 : CH;
        for (int64_t j = 0; j < m; j++) {
            const int64_t slot = hk * a->cap + at;
            rows[j] = codes + slot * rb;
            scale[j] = norms[slot] * r;
            if (++at == a->cap) at = 0;
        }
        f->dec(rows, scale, m, bits, lv, D, buf + j0 * D);
    }
}

/* Keys of positions lo + n0 .. + n of kv head hk as runs of consecutive
 * ring slots (one, or two where the ring wraps): calls fn(ctx, slot of
 * the run's first key, its offset in the n keys, its length). */
static void ring_runs(const tq_attn *a, int64_t hk, int64_t n0, int64_t n,
                      void (*fn)(const void *ctx, int64_t slot, int64_t j0, int64_t m), const void *ctx) {
    const int64_t at = (a->lo + n0) % a->cap, first = n < a->cap - at ? n : a->cap - at;
    fn(ctx, hk * a->cap + at, 0, first);
    if (first < n) fn(ctx, hk * a->cap, first, n - first);
}

typedef struct kscores_run {
    const fast_ctx *f;
    int64_t hk, t0, nt;
    float *s;
    int64_t lds;
} kscores_run;

static void kscores_of_run(const void *ctx, int64_t slot, int64_t j0, int64_t m) {
    const kscores_run *k = ctx;
    const tq_attn *a = k->f->a;
    const float kfac = 1.0f / sqrtf((float)a->D) / TQ_KS_LSCALE;
    k->f->ks(a->kc + slot * a->c->k_row, a->c->k_row, a->kn + slot, kfac, m, a->D, &k->f->kq,
             k->hk * a->G * a->Tq + k->t0, k->nt, a->Tq, a->G * k->nt, k->s + j0, k->lds);
}

/* sdpa_flash's kscores: the item's rows against the keys of positions
 * lo + n0 .. + n of kv head hk, from the codes (tq_kscores_fn). */
static void kscores(const void *ctx, int64_t b, int64_t hk, int64_t t0, int64_t nt, int64_t n0, int64_t n, float *s,
                    int64_t lds) {
    (void)b;
    const kscores_run k = {ctx, hk, t0, nt, s, lds};
    ring_runs(((const fast_ctx *)ctx)->a, hk, n0, n, kscores_of_run, &k);
}

/* sdpa_flash's vsum: the item's rows' weights against the values of
 * positions lo + n0 .. + n of kv head hk, from the codes (tq_vsum_fn), 64
 * keys a call (the first applies corr). Where the ring wraps inside a call
 * its codes and norms are copied in position order first: the kernel rounds
 * the weights per block of TQ_VSUM_KEYS keys counted from the call's start,
 * so the blocks must not depend on where the ring wraps (a fixed-layout
 * session then gives the growing layout's bits, test_session_tq_fixed). */
static void vsum(const void *ctx, int64_t b, int64_t hk, int64_t n0, int64_t n, const float *w, int64_t lds,
                 const float *corr, const unsigned char *live, int64_t M, float *const *acc) {
    (void)b;
    enum { CH = 64 };
    const fast_ctx *f = ctx;
    const tq_attn *a = f->a;
    const int64_t rb = a->c->v_row;
    const float vfac = 1.0f / sqrtf((float)a->D);
    for (int64_t j0 = 0; j0 < n; j0 += CH) {
        const int64_t m = n - j0 < CH ? n - j0 : CH, at = (a->lo + n0 + j0) % a->cap, slot = hk * a->cap + at;
        const float *c = j0 == 0 ? corr : NULL;
        if (at + m <= a->cap) {
            f->vs(a->vc + slot * rb, rb, a->vn + slot, vfac, m, a->D, f->kq.l16, w + j0, lds, c, live, M, acc);
            continue;
        }
        uint8_t codes[CH * MLXN_TQ_MAX_HEAD_DIM / 2]; /* [m][rb]: 4-bit rows of at most 256 bytes */
        float norms[CH];
        for (int64_t j = 0, s = at; j < m; j++, s = s + 1 == a->cap ? 0 : s + 1) {
            memcpy(codes + j * rb, a->vc + (hk * a->cap + s) * rb, (size_t)rb);
            norms[j] = a->vn[hk * a->cap + s];
        }
        f->vs(codes, rb, norms, vfac, m, a->D, f->kq.l16, w + j0, lds, c, live, M, acc);
    }
}

static void rotate_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const fast_ctx *f = arg;
    const tq_attn *a = f->a;
    for (int64_t r = begin; r < end; r++) {
        float *y = f->qr + r * a->D;
        tq_rotate(a->q + (r / a->Tq) * a->qs[0] + (r % a->Tq) * a->qs[1], a->qs[2], a->D, a->signs, y, f->isa);
        if (f->ks) { /* the query as the driver scales it (q * scale), then in 16 bits */
            float x[MLXN_TQ_MAX_HEAD_DIM];
            for (int64_t d = 0; d < a->D; d++) x[d] = y[d] * a->scale;
            tq_kq_prepare(x, a->D, (int16_t *)f->kq.q + r * a->D, (float *)f->kq.qs + r);
        }
    }
}

static void unrotate_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const fast_ctx *f = arg;
    const tq_attn *a = f->a;
    float tmp[MLXN_TQ_MAX_HEAD_DIM];
    for (int64_t r = begin; r < end; r++) {
        float *o = a->out + r * a->D;
        if (f->vs) { /* back from the weighted sums' dim order */
            for (int64_t d = 0; d < a->D; d++) tmp[d] = o[tq_vsum_slot(d)];
            memcpy(o, tmp, (size_t)a->D * sizeof(float));
        }
        tq_unrotate(o, a->D, a->signs, f->isa);
    }
}

static mlxn_status fast_attn(mlxn_threadpool *pool, mlxn_cpu_isa isa, const tq_attn *a, const sdpa_kernels *kr,
                             tq_decode_fn dec, tq_kscores_fn ks, tq_vsum_fn vs) {
    const size_t rows = (size_t)(a->Hq * a->Tq);
    /* the integer paths in decode only: one position gives per-row items alone (no block-GEMM items,
       which would neither read the 16-bit queries nor keep the sums' dim order), and a prefill chunk's
       attention is the GEMM path's (the 16-bit queries of a 1024-token chunk were 1.75% of its time, unread) */
    if (a->Tq != 1) ks = NULL, vs = NULL;
    fast_ctx f = {.a = a, .dec = dec, .qr = malloc(rows * (size_t)a->D * sizeof(float)), .ks = ks, .vs = vs,
                  .isa = isa};
    /* one block: [rows][D] q16, then [rows] scales */
    char *kqbuf = ks ? malloc(rows * (size_t)(2 * a->D + 4)) : NULL;
    if (!f.qr || (ks && !kqbuf)) {
        free(f.qr);
        free(kqbuf);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tq_sdpa: no memory for the rotated queries");
    }
    if (ks) f.kq.q = (const int16_t *)kqbuf, f.kq.qs = (const float *)(kqbuf + rows * 2 * a->D);
    tq_kq_levels4(f.kq.l16); /* the 4-bit levels, for the keys' scores and the values' sums */
    /* rows x D <= 4096 run on the calling thread: a decode's few rotations cost less than waking a worker
       (docs/perf.md, CPU TurboQuant without AVX-512) */
    mlxn_parallel_for(pool, a->Hq * a->Tq, 4096 / a->D, rotate_task, &f);
    sdpa_problem p = {
        .B = 1, .Hq = a->Hq, .Hkv = a->Hkv, .G = a->G, .Tq = a->Tq, .Tk = a->n_held, .D = a->D, .Dv = a->D,
        .scale = a->scale, .softcap = a->softcap, .causal = a->causal, .window = a->window, .out = a->out,
        .fetch = fetch, .fetch_ctx = &f, .kscores = ks ? kscores : NULL, .vsum = f.vs ? vsum : NULL,
    };
    p.q = (sdpa_view){.base = (const char *)f.qr, .dt = MLXN_DTYPE_F32,
                      .s = {a->Hq * a->Tq * a->D, a->Tq * a->D, a->D, 1}};
    p.k.dt = p.v.dt = MLXN_DTYPE_F32; /* unused: fetch supplies K and V */
    mlxn_status st = sdpa_flash(pool, &p, kr);
    free(f.qr);
    free(kqbuf);
    MLXN_TRY(st);
    mlxn_parallel_for(pool, a->Hq * a->Tq, 4096 / a->D, unrotate_task, &f);
    return MLXN_OK;
}

mlxn_status cpu_tq_sdpa(mlxn_stream *s, const mlxn_tq_cache *c, const mlxn_tensor *q, const mlxn_tq_sdpa_params *prm,
                        mlxn_tensor *out) {
    cpu_device *dev = cpu_dev(s);
    tq_attn a = {
        .c = c, .Hq = q->shape[1], .Hkv = c->p.n_kv_heads, .Tq = q->shape[2], .D = c->p.head_dim,
        .cap = c->p.capacity, .scale = prm->scale, .softcap = prm->softcap, .causal = prm->causal,
        .window = prm->window, .q = mlxn_tensor_host(q), .qs = {q->strides[1], q->strides[2], q->strides[3]},
        .kc = mlxn_tensor_host(&c->k_codes), .vc = mlxn_tensor_host(&c->v_codes),
        .kn = mlxn_tensor_host(&c->k_norms), .vn = mlxn_tensor_host(&c->v_norms),
        .signs = mlxn_tensor_host(&c->signs), .klv = mlxn_tq_levels(c->p.k_bits), .vlv = mlxn_tq_levels(c->p.v_bits),
        .out = mlxn_tensor_host(out),
    };
    MLXN_TRY(read_pos("tq_sdpa", prm->pos, prm->pos_tensor, &a.pos));
    a.G = a.Hq / a.Hkv;
    const int64_t end = a.pos + a.Tq;
    a.lo = end > a.cap ? end - a.cap : 0;
    a.n_held = end - a.lo;

    const sdpa_kernels *kr = NULL;
    tq_decode_fn dec = NULL;
    if (dev->isa >= MLXN_CPU_ISA_AVX512) kr = sdpa_kernels_avx512(), dec = tq_decode_avx512();
    else if (dev->isa >= MLXN_CPU_ISA_AVX2) kr = sdpa_kernels_avx2(), dec = tq_decode_avx2();
    /* 4-bit keys scored and 4-bit values (decode) summed in integers from the codes (tq_kernels.h;
       measured at both levels, docs/perf.md), unless the device keeps activations in f32 */
    tq_kscores_fn ks = NULL;
    tq_vsum_fn vs = NULL;
    if (kr && !dev->float_activations) {
        const int wide = kr == sdpa_kernels_avx512();
        if (c->p.k_bits == 4) ks = wide ? tq_kscores4_avx512() : tq_kscores4_avx2();
        if (c->p.v_bits == 4) vs = wide ? tq_vsum4_avx512() : tq_vsum4_avx2();
    }
    if (kr) return fast_attn(dev->pool, dev->isa, &a, kr, dec ? dec : tq_decode_rows_scalar, ks, vs);

    int threads = mlxn_threadpool_size(dev->pool);
    ref_job j = {&a, malloc((size_t)threads * (size_t)(a.n_held + 2 * a.D) * sizeof(float))};
    if (!j.scratch)
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "tq_sdpa: no memory for score rows of %lld keys", (long long)a.n_held);
    mlxn_parallel_for(dev->pool, a.Hq * a.Tq, 1, ref_task, &j);
    free(j.scratch);
    return MLXN_OK;
}
