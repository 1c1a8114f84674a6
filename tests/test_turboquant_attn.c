/* Attention straight over the TurboQuant cache (mlxn_tq_sdpa) on the CPU:
 *  - the scalar reference (SCALAR ISA) against mlxn_sdpa run on the
 *    dequantized keys and values of the positions the cache holds, in
 *    position order: the rotation is orthonormal, so the two agree to float
 *    rounding (NMSE < 1e-9);
 *  - the fast paths (AVX2, AVX-512; 1 to 3 threads) against the reference,
 *    NMSE < 1e-9 with float activations; by default, in decode, where
 *    4-bit keys are scored or 4-bit values summed in 16-bit integers (AVX2
 *    and AVX-512, tq_kernels.h), NMSE < 1e-5, and that path must then
 *    differ from the f32 one of the same ISA (it ran);
 * over decode (Tq = 1, with the key-split path) and prefill chunks, GQA
 * ratios 1 to 16, head dims 64..512, every width on keys or values, causal
 * and not, sliding windows over a ring that has wrapped, softcap, the
 * position as an int and as an i32 tensor, a strided (transposed) q.
 * Outputs are poisoned first; NaN never passes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

typedef struct tq_case {
    const char *name;
    int64_t Hkv, G, D;
    int kb, vb;
    int64_t cap;
    int n_chunks;
    int64_t chunks[4]; /* tokens appended per call; the last chunk is the query block */
    int causal, window;
    float softcap, scale;
} tq_case;

static const tq_case cases[] = {
    {"decode d128 8/2 tq4", 2, 4, 128, 4, 4, 512, 3, {200, 99, 1}, 1, 0, 0, 0},
    {"decode d256 32/2 tq4 (split keys)", 2, 16, 256, 4, 4, 1024, 2, {699, 1}, 1, 0, 0, 0},
    {"prefill d64 3/1 k2v3", 1, 3, 64, 2, 3, 64, 2, {40, 23}, 1, 0, 0, 0},
    {"ring prefill d128 4/2 k3v5 window 64", 2, 2, 128, 3, 5, 82, 3, {50, 40, 16}, 1, 64, 0, 0},
    {"ring decode d512 2/1 k8v6 window 32", 1, 2, 512, 8, 6, 40, 3, {37, 33, 1}, 1, 32, 0, 0},
    {"non-causal d128 4/4 k7v2", 4, 1, 128, 7, 2, 64, 1, {33}, 0, 0, 0, 0},
    {"softcap window d256 8/1 k5v4", 1, 8, 256, 5, 4, 256, 2, {100, 20}, 1, 50, 5.0f, 1.0f},
    {"decode d64 6/3 k6v8 window 16", 3, 2, 64, 6, 8, 300, 2, {150, 1}, 1, 16, 0, 0},
    /* 4-bit keys: SmolLM2's heads; a prefill item of 5 positions x 2 heads on the per-row path over a wrapped
       ring (f32: the integer paths are decode's); head dim 512 with softcap */
    {"decode d64 9/3 tq4", 3, 3, 64, 4, 4, 400, 2, {333, 1}, 1, 0, 0, 0},
    {"ring prefill d64 4/2 k4v2 window 24", 2, 2, 64, 4, 2, 70, 3, {50, 30, 5}, 1, 24, 0, 0},
    {"softcap d512 8/2 k4v8", 2, 4, 512, 4, 8, 128, 2, {90, 1}, 1, 0, 30.0f, 0},
    /* 4-bit values in decode (summed from the codes): a window over a wrapped ring; 8-bit keys (f32 dots) */
    {"ring decode d128 4/2 tq4 window 40", 2, 2, 128, 4, 4, 100, 3, {90, 30, 1}, 1, 40, 0, 0},
    {"decode d64 8/2 k8v4", 2, 4, 64, 8, 4, 300, 2, {257, 1}, 1, 0, 0, 0},
    /* the first decode steps: one key (the query's own), then a handful */
    {"first step d64 9/3 tq4", 3, 3, 64, 4, 4, 64, 1, {1}, 1, 0, 0, 0},
    {"short decode d64 9/3 tq4", 3, 3, 64, 4, 4, 64, 2, {4, 1}, 1, 0, 0, 0},
    {"short decode d128 4/2 tq4", 2, 2, 128, 4, 4, 64, 2, {36, 1}, 1, 0, 0, 0},
};

typedef struct run_out {
    float *out; /* [Hq, Tq, D] */
    float *ref; /* mlxn_sdpa on the dequantized cache (reference device only) */
} run_out;

/* Build the cache on dev from the shared data, attend, and (when want_ref)
 * also run mlxn_sdpa on the dequantized K/V. */
static run_out run(mlxn_device *dev, const tq_case *tc, const float *kx, const float *vx, const float *qx,
                   int use_tensor, int want_ref) {
    run_out r = {0};
    mlxn_stream *s = mlxn_device_stream(dev);
    const int64_t H = tc->Hkv, D = tc->D, Hq = H * tc->G;
    mlxn_tq_cache_params p = {.n_kv_heads = (int)H, .capacity = tc->cap, .head_dim = (int)D, .k_bits = tc->kb,
                              .v_bits = tc->vb, .seed = mlxn_tq_seed(3)};
    mlxn_tq_cache *c = NULL;
    CHECK_OK(mlxn_tq_cache_new(dev, &p, &c));
    if (!c) return r;
    int64_t one = 1, pos = 0, n = 0;
    for (int i = 0; i < tc->n_chunks; i++) n += tc->chunks[i];
    mlxn_tensor pt = t_tensor_contig(dev, MLXN_DTYPE_I32, 1, &one);
    for (int i = 0; i < tc->n_chunks; i++) {
        const int64_t T = tc->chunks[i], shp[3] = {H, T, D}, st[3] = {n * D, D, 1};
        /* views into the full [H, n, D] data */
        mlxn_tensor k = t_tensor_strided(dev, MLXN_DTYPE_F32, 3, shp, st), v = t_tensor_strided(dev, MLXN_DTYPE_F32, 3, shp, st);
        float *kh = mlxn_tensor_host(&k), *vh = mlxn_tensor_host(&v);
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t d = 0; d < D; d++) {
                    kh[h * n * D + t * D + d] = kx[(h * n + pos + t) * D + d];
                    vh[h * n * D + t * D + d] = vx[(h * n + pos + t) * D + d];
                }
        *(int32_t *)mlxn_tensor_host(&pt) = (int32_t)pos;
        CHECK_OK(mlxn_tq_append(s, c, &k, &v, pos, use_tensor ? &pt : NULL));
        t_tensor_free(&k);
        t_tensor_free(&v);
        pos += T;
    }
    const int64_t Tq = tc->chunks[tc->n_chunks - 1], qpos = n - Tq;
    /* q as a transposed view of [Tq, Hq, D] */
    const int64_t qshape[4] = {1, Hq, Tq, D}, qst[4] = {Tq * Hq * D, D, Hq * D, 1};
    mlxn_tensor q = t_tensor_strided(dev, MLXN_DTYPE_F32, 4, qshape, qst), out = t_tensor_contig(dev, MLXN_DTYPE_F32, 4, qshape);
    float *qh = mlxn_tensor_host(&q);
    for (int64_t h = 0; h < Hq; h++)
        for (int64_t t = 0; t < Tq; t++)
            for (int64_t d = 0; d < D; d++) qh[t * Hq * D + h * D + d] = qx[(h * Tq + t) * D + d];
    const float scale = tc->scale > 0 ? tc->scale : 1.0f / sqrtf((float)D);
    *(int32_t *)mlxn_tensor_host(&pt) = (int32_t)qpos;
    mlxn_tq_sdpa_params sp = {.scale = scale, .causal = tc->causal, .window = tc->window, .softcap = tc->softcap,
                              .pos = use_tensor ? 0 : qpos, .pos_tensor = use_tensor ? &pt : NULL};
    CHECK_OK(mlxn_tq_sdpa(s, c, &q, &sp, &out));
    const size_t no = (size_t)(Hq * Tq * D);
    r.out = malloc(no * sizeof(float));
    memcpy(r.out, mlxn_tensor_host(&out), no * sizeof(float));
    if (want_ref) {
        const int64_t lo = n > tc->cap ? n - tc->cap : 0, held = n - lo, kshape[3] = {H, held, D};
        mlxn_tensor kd = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, kshape), vd = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, kshape);
        CHECK_OK(mlxn_tq_dequantize(s, c, 'k', lo, &kd));
        CHECK_OK(mlxn_tq_dequantize(s, c, 'v', lo, &vd));
        mlxn_tensor k4 = kd, v4 = vd; /* as [1, H, held, D] */
        k4.ndim = v4.ndim = 4;
        for (int i = 3; i > 0; i--) k4.shape[i] = v4.shape[i] = kd.shape[i - 1], k4.strides[i] = v4.strides[i] = kd.strides[i - 1];
        k4.shape[0] = v4.shape[0] = 1, k4.strides[0] = v4.strides[0] = H * held * D;
        mlxn_tensor o2 = t_tensor_contig(dev, MLXN_DTYPE_F32, 4, qshape);
        mlxn_sdpa_params dp = {.scale = scale, .causal = tc->causal, .window = tc->window, .softcap = tc->softcap};
        CHECK_OK(mlxn_sdpa(s, &q, &k4, &v4, &dp, &o2));
        r.ref = malloc(no * sizeof(float));
        memcpy(r.ref, mlxn_tensor_host(&o2), no * sizeof(float));
        t_tensor_free(&kd);
        t_tensor_free(&vd);
        t_tensor_free(&o2);
    }
    t_tensor_free(&pt);
    t_tensor_free(&q);
    t_tensor_free(&out);
    mlxn_tq_cache_free(c);
    return r;
}

static void one_case(const tq_case *tc) {
    int64_t n = 0;
    for (int i = 0; i < tc->n_chunks; i++) n += tc->chunks[i];
    const int64_t H = tc->Hkv, D = tc->D, Hq = H * tc->G, Tq = tc->chunks[tc->n_chunks - 1];
    float *kx = malloc(sizeof(float) * (size_t)(H * n * D)), *vx = malloc(sizeof(float) * (size_t)(H * n * D));
    float *qx = malloc(sizeof(float) * (size_t)(Hq * Tq * D));
    t_fill_randn(kx, (size_t)(H * n * D), 1.0f);
    t_fill_randn(vx, (size_t)(H * n * D), 1.0f);
    t_fill_randn(qx, (size_t)(Hq * Tq * D), 2.0f);
    const size_t no = (size_t)(Hq * Tq * D);

    mlxn_device *ref_dev = t_cpu_device(2, MLXN_CPU_ISA_SCALAR);
    run_out ref = run(ref_dev, tc, kx, vx, qx, 0, 1);
    mlxn_device_free(ref_dev);
    if (ref.out && ref.ref) {
        double e = t_nmse(ref.ref, ref.out, no);
        CHECK(e < 1e-9, "%s: reference vs sdpa on the dequantized cache: NMSE %.3g", tc->name, e);
    }
    const mlxn_cpu_isa isas[] = {MLXN_CPU_ISA_AVX2, MLXN_CPU_ISA_AVX512};
    for (int i = 0; i < 2; i++)
        for (int threads = 1; threads <= 3; threads += 2) {
            mlxn_device *dev = t_cpu_device(threads, isas[i]);
            run_out f = run(dev, tc, kx, vx, qx, threads == 3, 0);
            /* the integer paths (4-bit keys' scores, 4-bit values' sums in decode) run at both SIMD levels;
               the device resolves to the processor's best at most (AVX2 on a processor without AVX-512) */
            const int int_scores = (tc->kb == 4 || tc->vb == 4) && Tq == 1 && (strstr(mlxn_device_name(dev), "avx2") != NULL ||
                                                                               strstr(mlxn_device_name(dev), "avx512") != NULL);
            if (f.out && ref.out) {
                double e = t_nmse(ref.out, f.out, no);
                const double bound = int_scores ? 1e-5 : 1e-9;
                CHECK(e < bound, "%s: %s vs the reference: NMSE %.3g (bound %g)", tc->name, mlxn_device_name(dev), e, bound);
            }
            /* the same ISA with f32 activations: the f32 paths, held to 1e-9 (once per resolved ISA) */
            const int resolved_twice = i == 1 && strstr(mlxn_device_name(dev), "avx2") != NULL;
            if (int_scores && !resolved_twice) {
                mlxn_device_params ep = {.kind = MLXN_DEVICE_CPU, .n_threads = threads, .isa = isas[i],
                                         .float_activations = 1};
                mlxn_device *ex = NULL;
                CHECK_OK(mlxn_device_new(&ep, &ex));
                run_out g = run(ex, tc, kx, vx, qx, threads == 3, 0);
                if (g.out && ref.out) {
                    double e = t_nmse(ref.out, g.out, no);
                    CHECK(e < 1e-9, "%s: %s, float activations, vs the reference: NMSE %.3g", tc->name,
                          mlxn_device_name(ex), e);
                }
                if (g.out && f.out) CHECK(memcmp(g.out, f.out, no * sizeof(float)) != 0,
                                          "%s: the integer paths gave the f32 path's bits: did they run?", tc->name);
                free(g.out);
                mlxn_device_free(ex);
            }
            free(f.out);
            mlxn_device_free(dev);
        }
    free(ref.out);
    free(ref.ref);
    free(kx);
    free(vx);
    free(qx);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_turboquant_attn");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) one_case(&cases[i]);
    return t_finish();
}
