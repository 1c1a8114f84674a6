/* The TurboQuant ops on CUDA (mlxn/turboquant.h) against the CPU backend's
 * scalar reference (SCALAR ISA: backend/cpu/tq_ref.c), on fresh seeded
 * random inputs that both devices get byte for byte (strided views whose
 * gaps are 0xFF = NaN, so a kernel reading outside its view fails):
 *
 *  - append: after the same appends (chunks of varying length, the last one
 *    the query step, the position as an int or an i32 [1] device tensor, a
 *    ring that wraps) the code and norm arrays of K and V must be
 *    BIT-IDENTICAL to the CPU's, never-written slots included. The CUDA
 *    kernel does the CPU's exact operations (same FWHT stages, the f32
 *    sum of squares in mlxn_tq_sum_squares' order, no fused multiply-
 *    adds), so identical inputs give identical codes; a difference is a
 *    bug, reported with its head, slot, byte and both values.
 *  - dequantize: every held position of K and V, bit-identical likewise.
 *  - attention: outputs poisoned with NaN on both devices first; normalized
 *    squared error <= 1e-8 against the CPU. Why that bound: both sides
 *    compute in f32 from the same codes, in a different order (per-chunk
 *    online softmax, FMA), which costs ~1e-12; a one-key masking slip
 *    (off-by-one causal / window / ring edge) at these shapes moves the
 *    output by ~1/visible keys, NMSE >= ~1e-7. NaN or inf never passes.
 *    Cases the tensor-core decode kernels take (cu_tq_attention_mma.cu,
 *    and at head dim 128 or 256 with 4-bit K and V, or byte codes (5..8
 *    bits) for both, cu_tq_attention_split.cu, the default there but for
 *    byte codes at 128, and tq_attn_mma and the split kernel's shapes
 *    again on streams made with
 *    MLXN_CUDA_TQ_SPLIT=0, 1, 2) run on them too, at
 *    NMSE <= 5e-5: it rounds the rotated query and the
 *    softmax weights (times value norms) to f16. That costs ~1e-7..5e-6
 *    for most seeds, but the error of a score grows with the score, so a
 *    seed whose softmax is peaky costs more (once 2.9e-5 on a head-dim-128
 *    k5/v5 case, once 6.7e-5 on a head-dim-256 k8/v4 one, where the f32
 *    kernel got ~1e-12 on the same data: the rounding, not a slip). So
 *    the bound is 20 times the case's measured sensitivity to that
 *    rounding where that is more than 5e-5 (sensitivity). Its masking edges
 *    are covered by the window / causal cases with a few hundred visible
 *    keys, where a slip costs far more.
 *    Prefill chunks (16 or more query tokens, more than 16 rows a kv head)
 *    run by default on the dense flash kernel over the cache dequantized
 *    into bf16 (cu_tq_prefill.cu), which rounds q, K and V to bf16
 *    (relative 2^-8, 8 times f16's step): NMSE <= 8 times the case's
 *    sensitivity to a relative 1.5 x 2^-8 step of the query (for q and k
 *    both), at least 1e-5; measured on an H200 over 47 cases, the NMSE was
 *    0.27-1.24 times that sensitivity (1e-5..1e-4). The index mapping (which held
 *    positions a row sees) is covered by an 8-key window and by prefill
 *    from an empty cache, where a one-key slip costs ~1/8 of a row.
 *  - a negative position in the device tensor: append writes nothing,
 *    attention writes NaN rows (a kernel cannot return an error).
 *
 * Shapes: every width 2..8 and mixed K/V widths, head dims 64..512, GQA
 * groups 1, 4 and 16, Tq 1, 7 and prefill chunks of 16..128, causal or
 * not, windows, softcap, up to
 * ~9000 keys (hundreds per block), the decode shape (head dim
 * 256, 32 query / 2 kv heads, 4-bit K and V), and a kv head over 8
 * chunks (a Gemma-3-4B-like sliding layer among them). Every failure
 * names the case.
 * Without a CUDA device: "skipped: no CUDA device", exit 77. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/tq_cache.h"
#include "harness.h"
#include "quant/tq_layout.h"

typedef struct env {
    mlxn_device *cpu, *gpu;
    mlxn_stream *cs, *gs;
    mlxn_stream *gs_simple; /* a second GPU stream, made with MLXN_CUDA_TQ_SIMPLE=1 (read when a stream is made) */
    mlxn_stream *gs_split[3]; /* made with MLXN_CUDA_TQ_SPLIT=0, 1, 2: where the split kernel fits, tq_attn_mma
                                 and the split kernel's two shapes (8 and 16 keys per score warp) */
} env;

/* A tensor on the CPU and its byte-identical twin on the GPU. */
typedef struct twin {
    mlxn_tensor c, g;
} twin;

typedef struct tcase {
    int Hkv, G, D, kb, vb;
    int64_t cap, hist; /* positions appended before the query step */
    int64_t Tq;        /* query step: Tq tokens appended at hist, then attention at pos = hist */
    int causal, window;
    float softcap;
    int pos_tensor; /* the query step's position as an i32 [1] tensor */
    int strided;    /* k a transposed view, v rows with gaps, q a transposed view */
} tcase;

static void describe(const tcase *t, char *buf, size_t n) {
    snprintf(buf, n, "D %d Hkv %d G %d k%d/v%d cap %lld hist %lld Tq %lld%s win %d cap %g%s%s", t->D, t->Hkv, t->G,
             t->kb, t->vb, (long long)t->cap, (long long)t->hist, (long long)t->Tq, t->causal ? " causal" : "",
             t->window, (double)t->softcap, t->pos_tensor ? " pos-tensor" : "", t->strided ? " strided" : "");
}

/* Random f32 over every element of a view of up to 4 dims (last dim
 * innermost); each row of the last dim gets its own scale exp(spread *
 * N(0,1)), so norms vary widely. zero_first: row 0 is all zeros. */
static void fill_view(mlxn_tensor *t, float spread, int zero_first) {
    float *p = mlxn_tensor_host(t);
    int64_t sh[4] = {1, 1, 1, 1}, st[4] = {0, 0, 0, 0};
    for (int i = 0; i < t->ndim; i++) {
        sh[4 - t->ndim + i] = t->shape[i];
        st[4 - t->ndim + i] = t->strides[i];
    }
    int64_t row = 0;
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++)
            for (int64_t c = 0; c < sh[2]; c++, row++) {
                const float s = expf(spread * t_randn());
                for (int64_t d = 0; d < sh[3]; d++)
                    p[a * st[0] + b * st[1] + c * st[2] + d * st[3]] = (zero_first && row == 0) ? 0.0f : s * t_randn();
            }
}

static twin twin_new(env *e, int ndim, const int64_t *shape, const int64_t *strides, float spread, int zero_first) {
    twin w;
    w.c = t_tensor_strided(e->cpu, MLXN_DTYPE_F32, ndim, shape, strides);
    fill_view(&w.c, spread, zero_first);
    w.g = t_tensor_strided(e->gpu, MLXN_DTYPE_F32, ndim, shape, strides);
    CHECK_OK(mlxn_buffer_write(w.g.buf, 0, mlxn_buffer_host(w.c.buf), mlxn_buffer_size(w.c.buf)));
    return w;
}

static void twin_free(twin *w) {
    t_tensor_free(&w->c);
    t_tensor_free(&w->g);
}

/* [H, T, D]: contiguous, or (strided) k a view of [T, H, D] and v with
 * gaps of 8 floats between rows. */
static void kv_strides(const tcase *t, int64_t T, int is_v, int64_t *st) {
    const int64_t H = t->Hkv, D = t->D;
    if (!t->strided) {
        st[0] = T * D, st[1] = D, st[2] = 1;
    } else if (!is_v) {
        st[0] = D, st[1] = H * D, st[2] = 1;
    } else {
        st[0] = T * (D + 8), st[1] = D + 8, st[2] = 1;
    }
}

/* An i32 [1] tensor holding v on each device. */
static twin pos_twin(env *e, int32_t v) {
    twin w;
    int64_t one = 1;
    w.c = t_tensor_contig(e->cpu, MLXN_DTYPE_I32, 1, &one);
    w.g = t_tensor_contig(e->gpu, MLXN_DTYPE_I32, 1, &one);
    *(int32_t *)mlxn_tensor_host(&w.c) = v;
    CHECK_OK(mlxn_buffer_write(w.g.buf, 0, &v, sizeof v));
    return w;
}

/* Append T tokens at pos to both caches. */
static void append_both(env *e, const tcase *t, mlxn_tq_cache *cc, mlxn_tq_cache *gc, int64_t pos, int64_t T,
                        int use_tensor, int zero_first) {
    int64_t shape[3] = {t->Hkv, T, t->D}, ks[3], vs[3];
    kv_strides(t, T, 0, ks);
    kv_strides(t, T, 1, vs);
    twin k = twin_new(e, 3, shape, ks, 1.0f, zero_first), v = twin_new(e, 3, shape, vs, 0.5f, 0);
    if (use_tensor) {
        twin pt = pos_twin(e, (int32_t)pos);
        CHECK_OK(mlxn_tq_append(e->cs, cc, &k.c, &v.c, 99999, &pt.c));
        CHECK_OK(mlxn_tq_append(e->gs, gc, &k.g, &v.g, 99999, &pt.g));
        CHECK_OK(mlxn_stream_sync(e->gs));
        twin_free(&pt);
    } else {
        CHECK_OK(mlxn_tq_append(e->cs, cc, &k.c, &v.c, pos, NULL));
        CHECK_OK(mlxn_tq_append(e->gs, gc, &k.g, &v.g, pos, NULL));
    }
    CHECK_OK(mlxn_stream_sync(e->gs));
    twin_free(&k);
    twin_free(&v);
}

/* Whole device buffer of a cache tensor into host memory (malloc'd). */
static uint8_t *fetch(mlxn_stream *s, const mlxn_tensor *t, size_t *n) {
    CHECK_OK(mlxn_stream_sync(s));
    *n = mlxn_buffer_size(t->buf);
    uint8_t *p = malloc(*n);
    if (p) CHECK_OK(mlxn_buffer_read(t->buf, 0, p, *n));
    return p;
}

/* The cache arrays must match byte for byte; prints the first difference
 * as (head, slot, byte/element) of rows of `row` bytes. */
static void same_bytes(env *e, const char *name, const char *cs, const mlxn_tensor *ct, const mlxn_tensor *gt,
                       int64_t cap, int64_t row) {
    size_t nc = 0, ng = 0;
    uint8_t *a = fetch(e->cs, ct, &nc), *b = fetch(e->gs, gt, &ng);
    if (!a || !b || nc != ng) {
        CHECK(0, "%s: %s: could not read the arrays (%zu vs %zu bytes)", cs, name, nc, ng);
    } else {
        size_t diff = 0, first = 0;
        for (size_t i = 0; i < nc; i++)
            if (a[i] != b[i] && diff++ == 0) first = i;
        if (diff) {
            const int64_t r = (int64_t)first / row, h = r / cap;
            CHECK(0, "%s: %s differ in %zu of %zu bytes; first at kv head %lld slot %lld byte %lld: cpu 0x%02x cuda 0x%02x",
                  cs, name, diff, nc, (long long)h, (long long)(r % cap), (long long)((int64_t)first % row), a[first],
                  b[first]);
        } else {
            t_passed++;
        }
    }
    free(a);
    free(b);
}

/* Dequantize positions [lo, lo + n) of K or V on both; bit-identical. */
static void same_dequant(env *e, const char *cs, const tcase *t, mlxn_tq_cache *cc, mlxn_tq_cache *gc, char which,
                         int64_t lo, int64_t n) {
    int64_t shape[3] = {t->Hkv, n, t->D};
    mlxn_tensor oc = t_tensor_contig(e->cpu, MLXN_DTYPE_F32, 3, shape), og = t_tensor_contig(e->gpu, MLXN_DTYPE_F32, 3, shape);
    CHECK_OK(mlxn_tq_dequantize(e->cs, cc, which, lo, &oc));
    CHECK_OK(mlxn_tq_dequantize(e->gs, gc, which, lo, &og));
    const size_t N = (size_t)(t->Hkv * n * t->D);
    float *g = malloc(N * sizeof(float));
    CHECK_OK(mlxn_stream_sync(e->gs));
    if (g) CHECK_OK(mlxn_buffer_read(og.buf, 0, g, N * sizeof(float)));
    const float *c = mlxn_tensor_host(&oc);
    size_t diff = 0, first = 0, nan = 0;
    for (size_t i = 0; g && i < N; i++) {
        nan += isnan(g[i]) || isnan(c[i]);
        if (memcmp(&c[i], &g[i], sizeof(float)) != 0 && diff++ == 0) first = i;
    }
    CHECK(g && diff == 0 && nan == 0,
          "%s: dequantize %c of positions %lld..%lld: %zu of %zu values differ (%zu NaN); first at kv head %lld "
          "position %lld dim %lld: cpu %.9g cuda %.9g",
          cs, which, (long long)lo, (long long)(lo + n - 1), diff, N, nan, (long long)(first / (size_t)(n * t->D)),
          (long long)(lo + (int64_t)(first / (size_t)t->D) % n), (long long)(first % (size_t)t->D),
          g ? (double)c[first] : 0.0, g ? (double)g[first] : 0.0);
    free(g);
    t_tensor_free(&oc);
    t_tensor_free(&og);
}

/* Whether the tensor-core decode kernel (cu_tq_attention_mma.cu) takes
 * this case: up to 16 query rows per kv head, head dim 64..256, 4..8-bit
 * codes; everything else runs the f32 kernel either way. */
static bool mma_path(const tcase *t) {
    return (int64_t)t->G * t->Tq <= 16 && t->D <= 256 && t->kb >= 4 && t->vb >= 4;
}

/* Whether the split-dims tensor-core kernel (cu_tq_attention_split.cu)
 * can take this case: at head dim 128 or 256, up to 16 query rows per kv
 * head, 4-bit K and V or byte codes (5..8 bits) for both. Such cases also
 * run on tq_attn_mma and on the split kernel's shapes (e->gs_split: 8 and
 * 16 keys a warp, except byte codes at head dim 256, which have only 8).
 * By default it takes them all but byte codes at head dim 128
 * (split_default; those stay on tq_attn_mma). */
static bool split_path(const tcase *t) {
    return (int64_t)t->G * t->Tq <= 16 && (t->D == 128 || t->D == 256) &&
           ((t->kb == 4 && t->vb == 4) || (t->kb >= 5 && t->vb >= 5));
}
static bool split_default(const tcase *t) { return split_path(t) && (t->kb == 4 || t->D == 256); }
static bool split_has16(const tcase *t) { return t->kb == 4 || t->D == 128; }

/* Whether the default dispatch takes this case to the dense flash kernel
 * over the dequantized cache (cu_tq_prefill.cu): a prefill chunk of 16 or
 * more tokens, more than 16 rows a kv head, a host position. (On a card
 * whose shared memory the flash kernel does not fit, the f32 kernel runs
 * instead, inside the same bound.) */
static bool dense_path(const tcase *t) { return t->Tq >= 16 && (int64_t)t->G * t->Tq > 16 && !t->pos_tensor; }

enum { K_SIMPLE, K_DEFAULT, K_MMA, K_SPLIT8, K_SPLIT16 };

/* How much this case's data amplifies the tensor-core kernels' rounding:
 * the CPU reference again with every query element moved by a random
 * relative step of up to `step` (2^-11: half an f16 step, what rounding
 * the rotated query moves it by; 1.5 x 2^-8 for bf16 q and k), as NMSE
 * against the unmoved output `ref`. Why: the error of a score grows with the score, so keys of large
 * norm make a peaky softmax that amplifies the rounding; measured over
 * runs, the f16 kernels' NMSE on one case ranged 2.5e-7..7.8e-6 and once
 * 6.7e-5 (D 256, k8/v4, 3000 keys), past a fixed 5e-5. */
static double sensitivity(env *e, mlxn_tq_cache *cc, const mlxn_tensor *q, const mlxn_tq_sdpa_params *sp,
                          const float *ref, float step) {
    const int64_t *sh = q->shape, *st = q->strides;
    mlxn_tensor qp = t_tensor_contig(e->cpu, MLXN_DTYPE_F32, 4, sh), op = t_tensor_contig(e->cpu, MLXN_DTYPE_F32, 4, sh);
    const float *src = mlxn_tensor_host(q);
    float *dst = mlxn_tensor_host(&qp);
    int64_t i = 0;
    for (int64_t h = 0; h < sh[1]; h++)
        for (int64_t t = 0; t < sh[2]; t++)
            for (int64_t d = 0; d < sh[3]; d++, i++)
                dst[i] = src[h * st[1] + t * st[2] + d * st[3]] * (1.0f + t_uniform(-1.0f, 1.0f) * step);
    /* a failed call counts as a failure and widens nothing (0: the fixed bound stays) */
    double nmse = 0.0;
    const mlxn_status rc = mlxn_tq_sdpa(e->cs, cc, &qp, sp, &op);
    CHECK_OK(rc);
    if (rc == MLXN_OK) nmse = t_nmse(ref, mlxn_tensor_host(&op), (size_t)i);
    if (!isfinite(nmse)) nmse = 0.0; /* NaN or inf in the reference: never a reason to allow more */
    t_tensor_free(&qp);
    t_tensor_free(&op);
    return nmse;
}

/* The query step's attention on the CPU and on one CUDA kernel: K_SIMPLE
 * the f32 kernel (on e->gs_simple, MLXN_CUDA_TQ_SIMPLE=1), K_DEFAULT the
 * default dispatch, K_MMA tq_attn_mma, K_SPLIT8 / 16 the split kernel's
 * shapes (on e->gs_split[kernel - K_MMA]). */
static void attn_both(env *e, const tcase *t, const char *cs, mlxn_tq_cache *cc, mlxn_tq_cache *gc, int kernel) {
    const bool simple = kernel == K_SIMPLE, dense = kernel == K_DEFAULT && dense_path(t);
    const char *kname = simple ? "f32" : dense ? "dense (bf16 flash)" : kernel == K_MMA ? "tq_attn_mma"
                        : kernel == K_SPLIT8 ? "split (8 keys a warp)" : kernel == K_SPLIT16 ? "split (16 keys a warp)"
                        : split_default(t) ? "split (rule)" : "tensor-core";
    const int64_t Hq = (int64_t)t->Hkv * t->G, D = t->D, Tq = t->Tq;
    int64_t qshape[4] = {1, Hq, Tq, D}, qst[4] = {Hq * Tq * D, Tq * D, D, 1};
    if (t->strided) qst[1] = D, qst[2] = Hq * D; /* a view of [1, Tq, Hq, D] */
    twin q = twin_new(e, 4, qshape, qst, 0.3f, 0);
    twin out;
    out.c = t_tensor_contig(e->cpu, MLXN_DTYPE_F32, 4, qshape); /* poisoned: NaN */
    out.g = t_tensor_contig(e->gpu, MLXN_DTYPE_F32, 4, qshape);
    twin pt = {0};
    if (t->pos_tensor) pt = pos_twin(e, (int32_t)t->hist);
    mlxn_tq_sdpa_params sp = {.scale = 1.0f / sqrtf((float)D), .causal = t->causal, .window = t->window,
                              .softcap = t->softcap, .pos = t->pos_tensor ? 0 : t->hist};
    sp.pos_tensor = t->pos_tensor ? &pt.c : NULL;
    CHECK_OK(mlxn_tq_sdpa(e->cs, cc, &q.c, &sp, &out.c));
    const double sens =
        simple ? 0.0 : sensitivity(e, cc, &q.c, &sp, mlxn_tensor_host(&out.c), dense ? 0x1.8p-8f : 0x1p-11f);
    sp.pos_tensor = t->pos_tensor ? &pt.g : NULL;
    mlxn_stream *gs = simple ? e->gs_simple : kernel >= K_MMA ? e->gs_split[kernel - K_MMA] : e->gs;
    if (gs != e->gs) CHECK_OK(mlxn_stream_sync(e->gs)); /* the cache was written on e->gs */
    CHECK_OK(mlxn_tq_sdpa(gs, gc, &q.g, &sp, &out.g));
    const size_t N = (size_t)(Hq * Tq * D);
    float *g = malloc(N * sizeof(float));
    CHECK_OK(mlxn_stream_sync(gs));
    if (g) CHECK_OK(mlxn_buffer_read(out.g.buf, 0, g, N * sizeof(float)));
    const float *c = mlxn_tensor_host(&out.c);
    double nmse = g ? t_nmse(c, g, N) : INFINITY, mad = g ? t_max_abs_diff(c, g, N) : INFINITY;
    /* the worst row, to name it */
    int64_t worst = 0;
    double wv = -1.0;
    for (int64_t r = 0; g && r < Hq * Tq; r++) {
        double s = 0.0;
        for (int64_t d = 0; d < D; d++) {
            double x = (double)c[r * D + d] - (double)g[r * D + d];
            s += isnan(x) ? INFINITY : x * x;
        }
        if (s > wv) wv = s, worst = r;
    }
    /* tensor cores: f16 rounding (see the top), 5e-5, or 20 times this case's measured sensitivity to it
     * where that is more (a peaky softmax); the dense flash path's bf16: 8 times its sensitivity (see the top) */
    const double bound = simple ? 1e-8 : dense ? fmax(1e-5, 8.0 * sens) : fmax(5e-5, 20.0 * sens);
    CHECK(nmse <= bound,
          "%s: %s attention NMSE %.3g (bound %.3g; max |diff| %.3g), worst row: head %lld query %lld (cpu[0] %.6g "
          "cuda[0] %.6g)",
          cs, kname, nmse, bound, mad, (long long)(worst / Tq), (long long)(worst % Tq), g ? (double)c[worst * D] : 0.0,
          g ? (double)g[worst * D] : 0.0);
    printf("  %s: codes/norms/dequant compared, %s attention NMSE %.3g max |diff| %.3g (rounding sensitivity %.3g)\n", cs,
           kname, nmse, mad, sens);
    free(g);
    if (t->pos_tensor) twin_free(&pt);
    twin_free(&q);
    twin_free(&out);
}

static void run_case(env *e, const tcase *t) {
    char cs[200];
    describe(t, cs, sizeof cs);
    const uint32_t seed = mlxn_tq_seed((int)(t_rand_u64() % 100));
    mlxn_tq_cache_params p = {.n_kv_heads = t->Hkv, .capacity = t->cap, .head_dim = t->D, .k_bits = t->kb,
                              .v_bits = t->vb, .seed = seed};
    mlxn_tq_cache *cc = NULL, *gc = NULL;
    CHECK_OK(mlxn_tq_cache_new(e->cpu, &p, &cc));
    CHECK_OK(mlxn_tq_cache_new(e->gpu, &p, &gc));
    if (!cc || !gc) {
        mlxn_tq_cache_free(cc);
        mlxn_tq_cache_free(gc);
        return;
    }
    /* history in chunks of varying length (<= capacity), then the query step */
    for (int64_t at = 0; at < t->hist;) {
        int64_t lim = t->cap < 700 ? t->cap : 700, T = 1 + (int64_t)(t_rand_u64() % (uint64_t)lim);
        if (T > t->hist - at) T = t->hist - at;
        append_both(e, t, cc, gc, at, T, 0, at == 0);
        at += T;
    }
    append_both(e, t, cc, gc, t->hist, t->Tq, t->pos_tensor, t->hist == 0);

    same_bytes(e, "key codes", cs, &cc->k_codes, &gc->k_codes, t->cap, cc->k_row);
    same_bytes(e, "value codes", cs, &cc->v_codes, &gc->v_codes, t->cap, cc->v_row);
    same_bytes(e, "key norms", cs, &cc->k_norms, &gc->k_norms, t->cap, 4);
    same_bytes(e, "value norms", cs, &cc->v_norms, &gc->v_norms, t->cap, 4);
    const int64_t end = t->hist + t->Tq, lo = end > t->cap ? end - t->cap : 0;
    same_dequant(e, cs, t, cc, gc, 'k', lo, end - lo);
    same_dequant(e, cs, t, cc, gc, 'v', lo, end - lo);

    /* attention of the query step, on both CUDA kernels */
    attn_both(e, t, cs, cc, gc, K_SIMPLE);
    if (mma_path(t) || dense_path(t)) attn_both(e, t, cs, cc, gc, K_DEFAULT);
    if (split_path(t))
        for (int k = K_MMA; k <= (split_has16(t) ? K_SPLIT16 : K_SPLIT8); k++) attn_both(e, t, cs, cc, gc, k);
    mlxn_tq_cache_free(cc);
    mlxn_tq_cache_free(gc);
}

/* A negative position in the device tensor: the GPU cannot report it, so
 * append leaves the cache alone and attention writes NaN rows. */
static void negative_device_pos(env *e) {
    mlxn_tq_cache_params p = {.n_kv_heads = 2, .capacity = 16, .head_dim = 64, .k_bits = 4, .v_bits = 4,
                              .seed = mlxn_tq_seed(3)};
    mlxn_tq_cache *gc = NULL;
    CHECK_OK(mlxn_tq_cache_new(e->gpu, &p, &gc));
    if (!gc) return;
    int64_t shape[3] = {2, 4, 64}, st[3] = {256, 64, 1};
    twin k = twin_new(e, 3, shape, st, 1.0f, 0), v = twin_new(e, 3, shape, st, 1.0f, 0), pt = pos_twin(e, -5);
    CHECK_OK(mlxn_tq_append(e->gs, gc, &k.g, &v.g, 0, &pt.g));
    size_t n = 0;
    uint8_t *codes = fetch(e->gs, &gc->k_codes, &n);
    size_t nz = 0;
    for (size_t i = 0; codes && i < n; i++) nz += codes[i] != 0;
    CHECK(codes && nz == 0, "negative device position: append wrote %zu key code bytes", nz);
    free(codes);
    int64_t qs[4] = {1, 4, 1, 64};
    mlxn_tensor q = t_tensor_contig(e->gpu, MLXN_DTYPE_F32, 4, qs), o = t_tensor_contig(e->gpu, MLXN_DTYPE_F32, 4, qs);
    float zero[256] = {0};
    CHECK_OK(mlxn_buffer_write(q.buf, 0, zero, sizeof zero));
    CHECK_OK(mlxn_buffer_write(o.buf, 0, zero, sizeof zero)); /* zeros, so the NaN must come from the kernel */
    mlxn_tq_sdpa_params sp = {.scale = 0.125f, .causal = true, .pos_tensor = &pt.g};
    CHECK_OK(mlxn_tq_sdpa(e->gs, gc, &q, &sp, &o));
    float got[256];
    CHECK_OK(mlxn_stream_sync(e->gs));
    CHECK_OK(mlxn_buffer_read(o.buf, 0, got, sizeof got));
    int nan = 0;
    for (int i = 0; i < 256; i++) nan += isnan(got[i]) != 0;
    CHECK(nan == 256, "negative device position: attention wrote %d NaN of 256", nan);
    t_tensor_free(&q);
    t_tensor_free(&o);
    twin_free(&k);
    twin_free(&v);
    twin_free(&pt);
    mlxn_tq_cache_free(gc);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_backend_tq");
    env e;
    memset(&e, 0, sizeof e);
    e.gpu = t_cuda_device();
    if (!e.gpu) return t_skip("no CUDA device");
    e.cpu = t_cpu_device(0, MLXN_CPU_ISA_SCALAR);
    e.cs = mlxn_device_stream(e.cpu);
    e.gs = mlxn_device_stream(e.gpu);
    setenv("MLXN_CUDA_TQ_SIMPLE", "1", 1);
    CHECK_OK(mlxn_stream_new(e.gpu, &e.gs_simple));
    unsetenv("MLXN_CUDA_TQ_SIMPLE");
    for (int k = 0; k < 3; k++) {
        char v[2] = {(char)('0' + k), 0};
        setenv("MLXN_CUDA_TQ_SPLIT", v, 1);
        CHECK_OK(mlxn_stream_new(e.gpu, &e.gs_split[k]));
    }
    unsetenv("MLXN_CUDA_TQ_SPLIT");
    if (!e.gs_simple || !e.gs_split[0] || !e.gs_split[1] || !e.gs_split[2]) return t_finish();

    /*   Hkv  G    D  kb vb   cap  hist  Tq causal win softcap pos_t strided */
    const tcase cases[] = {
        /* every width, and mixed K/V widths */
        {2, 4, 128, 2, 2, 600, 517, 1, 1, 0, 0, 0, 1},
        {2, 4, 128, 3, 3, 600, 517, 1, 1, 0, 0, 1, 0},
        {2, 4, 128, 4, 4, 600, 517, 1, 1, 0, 0, 0, 1},
        {2, 4, 128, 5, 5, 600, 517, 1, 1, 0, 0, 0, 0},
        {2, 4, 128, 6, 6, 600, 517, 1, 1, 0, 0, 0, 1},
        {2, 4, 128, 7, 7, 600, 517, 1, 1, 0, 0, 1, 0},
        {2, 4, 128, 8, 8, 600, 517, 1, 1, 0, 0, 0, 1},
        {2, 4, 128, 4, 2, 600, 333, 7, 1, 0, 0, 0, 0},
        {1, 4, 64, 2, 8, 300, 250, 1, 1, 0, 0, 0, 1},
        {3, 1, 256, 3, 5, 400, 391, 7, 1, 0, 0, 0, 1},
        {1, 16, 128, 8, 4, 200, 150, 1, 1, 0, 0, 1, 0},
        {2, 4, 64, 6, 3, 500, 480, 7, 0, 0, 0, 0, 1},
        /* head dims 64..512, GQA 1 / 4 / 16, Tq 1 and 7 */
        {4, 1, 64, 4, 4, 1200, 1100, 1, 1, 0, 0, 0, 1},
        {2, 16, 64, 3, 3, 900, 800, 7, 1, 0, 0, 1, 0},
        {2, 4, 256, 4, 4, 1500, 1400, 7, 1, 0, 0, 0, 1},
        {1, 16, 512, 4, 4, 1100, 1000, 1, 1, 0, 0, 0, 1},
        {2, 4, 512, 2, 3, 800, 700, 7, 1, 0, 0, 1, 0},
        {2, 1, 512, 8, 8, 300, 200, 1, 0, 0, 0, 0, 1},
        /* the decode shape (head dim 256, 32 query / 2 kv heads, 4-bit K and V), and its prefill */
        {2, 16, 256, 4, 4, 3001, 3000, 1, 1, 0, 0, 0, 0},
        {2, 16, 256, 4, 4, 3001, 2994, 7, 1, 0, 0, 1, 1},
        /* long chunks on the tensor-core kernel (8 kv heads leave 16 blocks per head on a
         * 132-SM card: 190-580 keys per block, several 16-key steps per warp), one of them
         * through a wrapped ring */
        {8, 2, 256, 4, 4, 5200, 5100, 1, 1, 0, 0, 0, 0},
        {8, 2, 256, 8, 8, 5200, 5100, 1, 1, 0, 0, 1, 1},
        {8, 2, 64, 4, 8, 9000, 8990, 7, 1, 0, 0, 0, 0},
        {8, 2, 256, 8, 4, 3000, 9000, 1, 1, 0, 0, 1, 0},
        /* a kv head over 8 chunks of the tensor-core kernel: one kv head of 16 rows, and a
         * Gemma-3-4B-like sliding layer (4 kv heads, a 1024-slot ring that has wrapped) */
        {1, 16, 256, 4, 4, 1024, 1023, 1, 1, 0, 0, 0, 0},
        /* a short causal prefill chunk in one 16-row tile (7 tokens x 2 query heads); the decode
         * shape at a longer context through a device position (the split kernel's rule: 16 keys a warp) */
        {2, 2, 256, 4, 4, 900, 813, 7, 1, 0, 0, 1, 1},
        {2, 16, 256, 4, 4, 12000, 11990, 1, 1, 0, 0, 1, 0},
        /* a 30-key window across a chunk boundary (chunks of 80 or 160 keys end at 9600): each row sees
         * few keys, so a key slipping across the chunk's end moves the output by ~1/30, far past the
         * tensor-core bound */
        {2, 16, 256, 4, 4, 9700, 9615, 1, 1, 30, 0, 0, 0},
        {4, 2, 256, 4, 4, 1024, 3000, 1, 1, 1024, 0, 1, 0},
        /* the split kernel for byte codes (tq8, the default width, and 5 / 6 bits): the decode shape, a
         * short prefill chunk through a device position, a 30-key window across a chunk boundary, a
         * wrapped ring with a window and softcap, and different K and V widths (its two level tables) */
        {2, 16, 256, 8, 8, 3001, 3000, 1, 1, 0, 0, 0, 0},
        {2, 2, 256, 8, 8, 900, 813, 7, 1, 0, 0, 1, 1},
        {2, 16, 256, 8, 8, 9700, 9615, 1, 1, 30, 0, 1, 0},
        {2, 16, 256, 8, 8, 260, 2500, 1, 1, 250, 50.0f, 0, 1},
        {4, 2, 256, 6, 5, 1024, 3000, 1, 1, 1024, 0, 1, 0},
        {2, 4, 256, 5, 8, 700, 650, 1, 1, 0, 0, 0, 1},
        /* the split kernel at head dim 128 (Llama-3-8B's decode shape, 32 q / 8 kv heads, at tq4 and tq8), a
         * wrapped ring with a window, a short prefill chunk, a 30-key window across a chunk boundary with
         * different byte widths, a wrapped ring with softcap */
        {8, 4, 128, 4, 4, 5000, 4990, 1, 1, 0, 0, 1, 0},
        {8, 4, 128, 8, 8, 5000, 4990, 1, 1, 0, 0, 0, 1},
        {4, 4, 128, 4, 4, 4096, 9000, 1, 1, 4096, 0, 1, 0},
        {2, 2, 128, 8, 8, 900, 813, 7, 1, 0, 0, 1, 1},
        {2, 16, 128, 6, 5, 9700, 9615, 1, 1, 30, 0, 0, 0},
        {2, 4, 128, 4, 4, 260, 2500, 1, 1, 250, 50.0f, 0, 1},
        /* rings that wrap: sliding windows (softcap too), and no window through a device position */
        {2, 4, 128, 4, 4, 300, 1000, 1, 1, 200, 0, 1, 1},
        {2, 4, 128, 3, 6, 300, 1000, 7, 1, 200, 30.0f, 1, 0},
        {2, 16, 256, 4, 4, 260, 2500, 1, 1, 250, 50.0f, 0, 1},
        {1, 4, 64, 5, 2, 256, 700, 1, 1, 0, 0, 1, 0},
        {1, 4, 64, 4, 4, 64, 700, 7, 1, 33, 0, 1, 1},
        /* prefill chunks on the dense flash kernel (and the f32 kernel): tq4 and tq8 (a strided query, an
         * odd length), a wrapped ring with its window, an 8-key window (a one-key slip costs ~1/8), 3-bit
         * codes, head dim 512 with softcap, the first chunk of an empty cache with mixed widths, non-causal,
         * 16 query heads a kv head, a 16-key window over a wrapped 100-slot ring (a one-key slip in the
         * ring's order costs ~1/16) */
        {2, 4, 128, 4, 4, 2000, 1500, 64, 1, 0, 0, 0, 0},
        {2, 4, 128, 8, 8, 2000, 1500, 33, 1, 0, 0, 0, 1},
        {4, 2, 256, 4, 4, 1100, 3000, 64, 1, 1024, 0, 0, 0},
        {2, 8, 64, 3, 3, 800, 700, 40, 1, 8, 0, 0, 1},
        {1, 4, 512, 4, 4, 600, 300, 32, 1, 0, 50.0f, 0, 0},
        {2, 4, 128, 2, 5, 900, 0, 128, 1, 0, 0, 0, 0},
        {2, 4, 64, 4, 4, 500, 400, 20, 0, 0, 0, 0, 1},
        {1, 16, 128, 6, 6, 700, 600, 16, 1, 0, 0, 0, 0},
        {2, 4, 128, 4, 4, 100, 1000, 32, 1, 16, 0, 0, 1},
        /* edges: the first token, a prefill from empty, a window of 1, non-causal prefill */
        {1, 1, 64, 4, 4, 1, 0, 1, 1, 0, 0, 0, 0},
        {2, 4, 128, 4, 4, 16, 0, 7, 1, 0, 0, 0, 1},
        {2, 4, 128, 2, 4, 100, 50, 7, 1, 1, 0, 0, 0},
        {2, 4, 256, 5, 5, 100, 60, 7, 0, 0, 5.0f, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&e, &cases[i]);
    negative_device_pos(&e);

    mlxn_stream_free(e.gs_simple);
    for (int k = 0; k < 3; k++) mlxn_stream_free(e.gs_split[k]);
    mlxn_device_free(e.cpu);
    mlxn_device_free(e.gpu);
    return t_finish();
}
