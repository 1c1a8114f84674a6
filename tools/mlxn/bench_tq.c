/* mlxn bench tq: decode attention over a TurboQuant KV cache
 * (mlxn_tq_sdpa, one query token) against the same attention over a dense
 * f32 cache (mlxn_sdpa), at several context lengths, on the CPU.
 *
 * Keys and values are seeded random normal vectors, appended through
 * mlxn_tq_append (the attention's speed does not depend on their values);
 * the query sits at the last position (causal). After --warmup untimed
 * calls, --reps calls of each are timed one by one and the medians
 * printed, with the bytes each reads from its cache (the dense cache is
 * 4 * head_dim * 2 bytes per kv head and token; the TurboQuant one is its
 * code bytes plus two f32 norms), the effective GB/s over the median, and
 * the machine's memory read bandwidth measured in the same process with
 * the same threads over --mem-mib MiB. With one thread the medians of the
 * thread's CPU time are printed too (a shared machine preempts the wall
 * clock, not the CPU time).
 *
 * --device cuda[:N] times the TurboQuant attention on a GPU instead, with
 * device events (cuda_bench.h: every timed call is queued behind a short
 * device-side wait, so each interval is device time), rotating through
 * enough copies of the cache to span 3x the L2 (every call reads its codes
 * from device memory), beside a device-to-device copy's bandwidth; the
 * same calls back to back (one interval over all of them: no event between
 * calls, as in a decode step); the one-token append of a decode step
 * one by one; and "step": the append followed by the attention, those pairs
 * back to back, as a decode step queues them. Why the last: back to back,
 * each attention runs behind the previous one's merge, a long kernel its
 * early (programmatic) start can overlap; in a decode step it runs behind
 * the short append, and a change that helped the first cost 0.5-1.3% end to
 * end (docs/perf.md). The dense f32 baseline is CPU-only (the CUDA dense
 * attention is the simple exact kernel, not a fair rival). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_bench.h"
#include "bench_util.h"
#include "commands.h"
#include "core/threadpool.h"
#include "quant/tq_layout.h"
#include "quant/tq_tables.h"
#include "mlxn/mlxn.h"

typedef struct tq_bench_opts {
    const char *ctx, *device;
    int head_dim, q_heads, kv_heads, k_bits, v_bits, threads, isa, float_activations, reps, warmup, quality, mem_mib,
        vectors;
} tq_bench_opts;

static const opt_spec tq_rows[] = {
    {"ctx", 'c', OPT_STRING, offsetof(tq_bench_opts, ctx), "N[,N...]", "Context lengths (tokens in the cache).",
     "1024,4096,16384,32768", 0, 0, NULL},
    {"head-dim", 0, OPT_INT, offsetof(tq_bench_opts, head_dim), "D", "Head dim (a power of two, 64..512).", "128",
     64, 512, NULL},
    {"q-heads", 0, OPT_INT, offsetof(tq_bench_opts, q_heads), "HQ", "Query heads.", "32", 1, 4096, NULL},
    {"kv-heads", 0, OPT_INT, offsetof(tq_bench_opts, kv_heads), "HKV", "Key/value heads (divides the query heads).",
     "8", 1, 4096, NULL},
    {"k-bits", 0, OPT_INT, offsetof(tq_bench_opts, k_bits), "B", "Key code width (2..8).", "4", 2, 8, NULL},
    {"v-bits", 0, OPT_INT, offsetof(tq_bench_opts, v_bits), "B", "Value code width (2..8).", "4", 2, 8, NULL},
    {"threads", 't', OPT_INT, offsetof(tq_bench_opts, threads), "T", "CPU worker threads (0: one per core).", "0",
     0, 4096, NULL},
    {"isa", 0, OPT_CHOICE, offsetof(tq_bench_opts, isa), "I", "Cap the CPU instruction set.", "auto", 0, 0,
     "auto|scalar|avx2|avx512"},
    {"float-activations", 0, OPT_FLAG, offsetof(tq_bench_opts, float_activations), NULL,
     "CPU: TurboQuant attention in f32 (by default, with AVX2 or AVX-512, decode scores 4-bit keys and sums "
     "4-bit values in 16-bit integers).",
     NULL, 0, 0, NULL},
    {"reps", 0, OPT_INT, offsetof(tq_bench_opts, reps), "R", "Timed calls of each attention.", "20", 1, 1 << 20,
     NULL},
    {"warmup", 0, OPT_INT, offsetof(tq_bench_opts, warmup), "W", "Untimed calls first.", "3", 0, 1 << 20, NULL},
    {"mem-mib", 0, OPT_INT, offsetof(tq_bench_opts, mem_mib), "S",
     "Size of the memory-bandwidth read buffer in MiB (0 skips it).", "512", 0, 1 << 20, NULL},
    {"vectors", 0, OPT_INT, offsetof(tq_bench_opts, vectors), "N",
     "--quality: random unit vectors per (head dim, width) cell of the error table.", "4000", 1, 1 << 20, NULL},
    {"quality", 0, OPT_FLAG, offsetof(tq_bench_opts, quality), NULL,
     "Measure quality instead of time: the mean squared error per unit vector for head dims 64..512 and every "
     "width, and the cosine of decode attention outputs against the dense f32 cache at --ctx lengths "
     "(--head-dim, --q-heads, --kv-heads).",
     NULL, 0, 0, NULL},
    {"device", 0, OPT_STRING, offsetof(tq_bench_opts, device), "DEV",
     "cpu, cuda or cuda:N (a GPU times the tq attention and append with device events).", "cpu", 0, 0, NULL},
    {0},
};

const opt_command bench_tq_command = {
    .name = "bench tq",
    .synopsis = "[--ctx 1024,4096,16384,32768] [--head-dim 128 --q-heads 32 --kv-heads 8] [options]",
    .summary = "Time decode attention over a TurboQuant KV cache against a dense f32 cache (CPU), or on a GPU.",
    .description =
        "For each context length, fills a TurboQuant cache (--k-bits/--v-bits) and a dense f32 cache with the "
        "same seeded random keys and values, then times one-token causal attention over each: --warmup untimed "
        "calls, then --reps timed calls one by one. Prints the median time of each, the speedup, the bytes each "
        "reads from its cache with the effective GB/s, and the machine's memory read bandwidth measured in the "
        "same process. With --device cuda the tq attention and a one-token append are timed on the GPU with "
        "device events, rotating through cache copies that span 3x the L2, beside a device-to-device copy's "
        "bandwidth; \"b2b us\" is the attention's time per call with --reps calls back to back (no event between "
        "them, as a decode step's stream runs it), \"step us\" the time per one-token append followed by the "
        "attention, those pairs back to back (what a decode step pays for both: the attention there runs behind "
        "the short append, not behind another attention), GB/s and % copy are from the one-by-one median.",
    .opts = tq_rows,
    .examples = "mlxn bench tq\nmlxn bench tq --head-dim 256 --q-heads 32 --kv-heads 2 --ctx 4096,20000\n"
                "mlxn bench tq --quality --ctx 256,1024,4096,16384\n"
                "mlxn bench tq --device cuda --head-dim 256 --q-heads 32 --kv-heads 2 --ctx 20000",
};

static double median_us(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* One context length: returns 0 on success. */
static int one_ctx(mlxn_device *dev, const tq_bench_opts *o, int64_t ctx, uint64_t *seed) {
    const int threads1 = mlxn_device_threads(dev) == 1;
    mlxn_stream *s = mlxn_device_stream(dev);
    const int64_t H = o->kv_heads, Hq = o->q_heads, D = o->head_dim;
    mlxn_tq_cache_params tp = {.n_kv_heads = (int)H, .capacity = ctx, .head_dim = (int)D, .k_bits = o->k_bits,
                               .v_bits = o->v_bits, .seed = mlxn_tq_seed(0)};
    mlxn_tq_cache *c = NULL;
    mlxn_tensor k = {0}, v = {0}, q = {0}, out = {0};
    const int64_t kshape[4] = {1, H, ctx, D}, qshape[4] = {1, Hq, 1, D};
    int rc = 1;
    double *t_tq = malloc(sizeof(double) * 4 * (size_t)o->reps), *t_f32 = t_tq + o->reps, *c_tq = t_f32 + o->reps,
           *c_f32 = c_tq + o->reps;
    if (!t_tq || mlxn_tq_cache_new(dev, &tp, &c) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, kshape, &k) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, kshape, &v) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, qshape, &q) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, qshape, &out) != MLXN_OK) {
        fprintf(stderr, "mlxn bench tq: %s\n", mlxn_last_error());
        goto done;
    }
    float *kh = mlxn_tensor_host(&k), *vh = mlxn_tensor_host(&v), *qh = mlxn_tensor_host(&q);
    /* seeded normal-ish values: sums of uniforms (fast, and the speed does not depend on them) */
    float *all[] = {kh, vh, qh};
    const int64_t sizes[] = {H * ctx * D, H * ctx * D, Hq * D};
    for (int a = 0; a < 3; a++)
        for (int64_t i = 0; i < sizes[a]; i++) {
            *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t r = *seed >> 16;
            all[a][i] = (float)((int)(r & 0xFFF) + (int)((r >> 12) & 0xFFF) + (int)((r >> 24) & 0xFFF) - 6142) / 2048.0f;
        }
    /* append in chunks of up to 4096 tokens, as [H, T, D] views of the dense cache */
    for (int64_t p0 = 0; p0 < ctx; p0 += 4096) {
        int64_t T = ctx - p0 < 4096 ? ctx - p0 : 4096;
        mlxn_tensor ks = k, vs = v;
        ks.ndim = vs.ndim = 3;
        ks.shape[0] = vs.shape[0] = H, ks.shape[1] = vs.shape[1] = T, ks.shape[2] = vs.shape[2] = D;
        ks.strides[0] = vs.strides[0] = ctx * D, ks.strides[1] = vs.strides[1] = D, ks.strides[2] = vs.strides[2] = 1;
        ks.offset = vs.offset = (size_t)(p0 * D) * sizeof(float);
        if (mlxn_tq_append(s, c, &ks, &vs, p0, NULL) != MLXN_OK) {
            fprintf(stderr, "mlxn bench tq: %s\n", mlxn_last_error());
            goto done;
        }
    }
    mlxn_tq_sdpa_params tq = {.scale = 1.0f / sqrtf((float)D), .causal = true, .pos = ctx - 1};
    mlxn_sdpa_params dp = {.scale = tq.scale, .causal = true};
    for (int i = 0; i < o->warmup + o->reps; i++) {
        double t0 = bench_now_us(), u0 = bench_thread_cpu_us();
        mlxn_status st = mlxn_tq_sdpa(s, c, &q, &tq, &out);
        double t1 = bench_now_us(), u1 = bench_thread_cpu_us();
        if (st == MLXN_OK) st = mlxn_sdpa(s, &q, &k, &v, &dp, &out);
        double t2 = bench_now_us(), u2 = bench_thread_cpu_us();
        if (st != MLXN_OK) {
            fprintf(stderr, "mlxn bench tq: %s\n", mlxn_last_error());
            goto done;
        }
        if (i >= o->warmup) {
            const int r = i - o->warmup;
            t_tq[r] = t1 - t0, t_f32[r] = t2 - t1, c_tq[r] = u1 - u0, c_f32[r] = u2 - u1;
        }
    }
    double mt = median_us(t_tq, o->reps), mf = median_us(t_f32, o->reps);
    double bt = (double)mlxn_tq_bytes_per_token(&tp) * (double)ctx, bf = 8.0 * (double)(H * D) * (double)ctx;
    printf("%7lld  %9.1f  %7.2f  %10.1f  %7.2f  %6.2fx  %9.1f  %9.1f", (long long)ctx, mt, bt / (mt * 1e3), mf,
           bf / (mf * 1e3), mf / mt, bt / 1048576.0, bf / 1048576.0);
    if (threads1) {
        double ct = median_us(c_tq, o->reps), cf = median_us(c_f32, o->reps);
        printf("  %9.1f  %10.1f  %6.2fx", ct, cf, cf / ct);
    }
    printf("\n");
    rc = 0;
done:
    mlxn_tq_cache_free(c);
    mlxn_tensor *ts[] = {&k, &v, &q, &out};
    for (int i = 0; i < 4; i++)
        if (ts[i]->buf) mlxn_tensor_release(ts[i]);
    free(t_tq);
    return rc;
}

/* ---- quality ------------------------------------------------------------- */

static uint64_t q_rng(uint64_t *st) { /* splitmix64 */
    uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float q_randn(uint64_t *st) { /* Box-Muller */
    double u1 = ((double)(q_rng(st) >> 11) + 0.5) / 9007199254740992.0, u2 = (double)(q_rng(st) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static const int q_widths[] = {2, 3, 4, 5, 6, 8};
#define N_WIDTHS 6

/* Mean ||x - dequantize(append(x))||^2 over n random unit vectors. */
static int unit_mse(mlxn_device *dev, int D, int bits, int n, uint64_t *st, double *mse) {
    mlxn_stream *s = mlxn_device_stream(dev);
    mlxn_tq_cache_params p = {.n_kv_heads = 1, .capacity = n, .head_dim = D, .k_bits = bits, .v_bits = bits,
                              .seed = mlxn_tq_seed(0)};
    mlxn_tq_cache *c = NULL;
    mlxn_tensor x = {0}, y = {0};
    const int64_t shp[3] = {1, n, D};
    int rc = 1;
    if (mlxn_tq_cache_new(dev, &p, &c) != MLXN_OK || mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, shp, &x) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, shp, &y) != MLXN_OK)
        goto done;
    float *xh = mlxn_tensor_host(&x), *yh = mlxn_tensor_host(&y);
    for (int i = 0; i < n; i++) {
        double nn = 0.0;
        for (int d = 0; d < D; d++) {
            xh[i * D + d] = q_randn(st);
            nn += (double)xh[i * D + d] * xh[i * D + d];
        }
        for (int d = 0; d < D; d++) xh[i * D + d] = (float)(xh[i * D + d] / sqrt(nn));
    }
    if (mlxn_tq_append(s, c, &x, &x, 0, NULL) != MLXN_OK || mlxn_tq_dequantize(s, c, 'k', 0, &y) != MLXN_OK) goto done;
    double e = 0.0;
    for (int64_t i = 0; i < (int64_t)n * D; i++) e += ((double)xh[i] - yh[i]) * ((double)xh[i] - yh[i]);
    *mse = e / n;
    rc = 0;
done:
    if (rc) fprintf(stderr, "mlxn bench tq: %s\n", mlxn_last_error());
    mlxn_tq_cache_free(c);
    if (x.buf) mlxn_tensor_release(&x);
    if (y.buf) mlxn_tensor_release(&y);
    return rc;
}

/* Decode attention at the last of ctx positions over structured random
 * K/V: keys have 8 outlier channels with large per-channel offsets (as real
 * key projections do after RoPE-free layers), values are normal, and each
 * query is a scaled copy of one random earlier key plus noise, so the
 * softmax is peaked rather than flat. Returns the mean over query heads of
 * cos(out_tq, out_f32) and the worst head. */
static int attn_cosine(mlxn_device *dev, const tq_bench_opts *o, int64_t ctx, int kb, int vb, uint64_t *st,
                       double *mean_cos, double *min_cos) {
    mlxn_stream *s = mlxn_device_stream(dev);
    const int64_t H = o->kv_heads, Hq = o->q_heads, D = o->head_dim, G = Hq / H;
    mlxn_tq_cache_params p = {.n_kv_heads = (int)H, .capacity = ctx, .head_dim = (int)D, .k_bits = kb,
                              .v_bits = vb, .seed = mlxn_tq_seed(5)};
    mlxn_tq_cache *c = NULL;
    mlxn_tensor k = {0}, v = {0}, q = {0}, o1 = {0}, o2 = {0};
    const int64_t ks[4] = {1, H, ctx, D}, qs[4] = {1, Hq, 1, D};
    int rc = 1;
    if (mlxn_tq_cache_new(dev, &p, &c) != MLXN_OK || mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, ks, &k) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, ks, &v) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, qs, &q) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, qs, &o1) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, qs, &o2) != MLXN_OK)
        goto done;
    float *kh = mlxn_tensor_host(&k), *vh = mlxn_tensor_host(&v), *qh = mlxn_tensor_host(&q);
    for (int64_t h = 0; h < H; h++) {
        float off[MLXN_TQ_MAX_HEAD_DIM] = {0};
        for (int i = 0; i < 8; i++) off[q_rng(st) % (uint64_t)D] = 4.0f * q_randn(st);
        for (int64_t t = 0; t < ctx; t++)
            for (int64_t d = 0; d < D; d++) {
                kh[(h * ctx + t) * D + d] = off[d] + q_randn(st);
                vh[(h * ctx + t) * D + d] = q_randn(st);
            }
        for (int64_t g = 0; g < G; g++) {
            int64_t j = (int64_t)(q_rng(st) % (uint64_t)ctx);
            for (int64_t d = 0; d < D; d++)
                qh[(h * G + g) * D + d] = 0.25f * (kh[(h * ctx + j) * D + d] - off[d]) + 0.5f * q_randn(st);
        }
    }
    for (int64_t p0 = 0; p0 < ctx; p0 += 4096) {
        int64_t T = ctx - p0 < 4096 ? ctx - p0 : 4096;
        mlxn_tensor kv[2] = {k, v};
        for (int a = 0; a < 2; a++) {
            kv[a].ndim = 3;
            kv[a].shape[0] = H, kv[a].shape[1] = T, kv[a].shape[2] = D;
            kv[a].strides[0] = ctx * D, kv[a].strides[1] = D, kv[a].strides[2] = 1;
            kv[a].offset = (size_t)(p0 * D) * sizeof(float);
        }
        if (mlxn_tq_append(s, c, &kv[0], &kv[1], p0, NULL) != MLXN_OK) goto done;
    }
    mlxn_tq_sdpa_params tp = {.scale = 1.0f / sqrtf((float)D), .causal = true, .pos = ctx - 1};
    mlxn_sdpa_params dp = {.scale = tp.scale, .causal = true};
    if (mlxn_tq_sdpa(s, c, &q, &tp, &o1) != MLXN_OK || mlxn_sdpa(s, &q, &k, &v, &dp, &o2) != MLXN_OK) goto done;
    const float *a = mlxn_tensor_host(&o1), *b = mlxn_tensor_host(&o2);
    double sum = 0.0, worst = 1.0;
    for (int64_t h = 0; h < Hq; h++) {
        double ab = 0, aa = 0, bb = 0;
        for (int64_t d = 0; d < D; d++) {
            ab += (double)a[h * D + d] * b[h * D + d];
            aa += (double)a[h * D + d] * a[h * D + d];
            bb += (double)b[h * D + d] * b[h * D + d];
        }
        double cs = ab / sqrt(aa * bb);
        sum += cs;
        if (cs < worst) worst = cs;
    }
    *mean_cos = sum / (double)Hq;
    *min_cos = worst;
    rc = 0;
done:
    if (rc) fprintf(stderr, "mlxn bench tq: %s\n", mlxn_last_error());
    mlxn_tq_cache_free(c);
    mlxn_tensor *ts[] = {&k, &v, &q, &o1, &o2};
    for (int i = 0; i < 5; i++)
        if (ts[i]->buf) mlxn_tensor_release(ts[i]);
    return rc;
}

static int quality(mlxn_device *dev, const tq_bench_opts *o, const int64_t *ctxs, int n_ctx) {
    uint64_t st = 0x7451;
    const int n_vec = o->vectors;
    printf("mean squared error per unit vector (%d random unit vectors per cell) vs the Lloyd-Max distortion of "
           "N(0,1)\n",
           n_vec);
    printf("%5s", "bits");
    for (int D = 64; D <= 512; D *= 2) printf("  %10s %7s", D == 64 ? "D=64" : D == 128 ? "D=128" : D == 256 ? "D=256" : "D=512", "dev");
    printf("  %10s\n", "Lloyd-Max");
    for (int w = 0; w < N_WIDTHS; w++) {
        const int bits = q_widths[w];
        const double lm = mlxn_tq_distortion(bits);
        printf("%5d", bits);
        for (int D = 64; D <= 512; D *= 2) {
            double mse = 0;
            if (unit_mse(dev, D, bits, n_vec, &st, &mse)) return 1;
            printf("  %10.4g %+6.1f%%", mse, 100.0 * (mse / lm - 1.0));
        }
        printf("  %10.4g\n", lm);
    }
    printf("\ndecode attention output cosine vs the dense f32 cache: head_dim %d, %d q / %d kv heads, mean over "
           "heads (worst head)\n",
           o->head_dim, o->q_heads, o->kv_heads);
    static const int pairs[][2] = {{2, 2}, {3, 3}, {4, 4}, {5, 5}, {6, 6}, {8, 8}, {4, 8}, {3, 4}};
    printf("%7s", "ctx");
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char name[16];
        if (pairs[i][0] == pairs[i][1]) snprintf(name, sizeof name, "tq%d", pairs[i][0]);
        else snprintf(name, sizeof name, "k%dv%d", pairs[i][0], pairs[i][1]);
        printf("  %17s", name);
    }
    printf("\n");
    for (int i = 0; i < n_ctx; i++) {
        printf("%7lld", (long long)ctxs[i]);
        for (size_t j = 0; j < sizeof pairs / sizeof pairs[0]; j++) {
            double mc = 0, wc = 0;
            if (attn_cosine(dev, o, ctxs[i], pairs[j][0], pairs[j][1], &st, &mc, &wc)) return 1;
            printf("  %8.6f (%6.4f)", mc, wc);
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}

/* ---- --device cuda ------------------------------------------------------- */

/* Seeded values in about [-3, 3] (sums of uniforms), as the CPU path. */
static void fill_seeded(float *p, int64_t n, uint64_t *seed) {
    for (int64_t i = 0; i < n; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = *seed >> 16;
        p[i] = (float)((int)(r & 0xFFF) + (int)((r >> 12) & 0xFFF) + (int)((r >> 24) & 0xFFF) - 6142) / 2048.0f;
    }
}

/* One timed call (bench_time_calls) on cache copy i % n: the attention,
 * the one-token append at apos, or both (TQ_STEP: a decode step's pair). */
enum { TQ_ATTN, TQ_APPEND, TQ_STEP };
typedef struct tq_call {
    mlxn_stream *s;
    mlxn_tq_cache **c;
    int n, what;
    const mlxn_tensor *q;
    const mlxn_tq_sdpa_params *tp;
    mlxn_tensor *out;
    const mlxn_tensor *k1, *v1;
    int64_t apos;
} tq_call;

static mlxn_status tq_once(void *ctx, int i) {
    const tq_call *a = ctx;
    mlxn_tq_cache *c = a->c[i % a->n];
    if (a->what != TQ_ATTN) {
        const mlxn_status st = mlxn_tq_append(a->s, c, a->k1, a->v1, a->apos, NULL);
        if (st != MLXN_OK || a->what == TQ_APPEND) return st;
    }
    return mlxn_tq_sdpa(a->s, c, a->q, a->tp, a->out);
}

enum { TQ_MAX_SETS = 32 };

static int one_ctx_cuda(mlxn_device *dev, const tq_bench_opts *o, int64_t ctx, size_t l2, double copy_gbs,
                        uint64_t *seed) {
    mlxn_stream *s = mlxn_device_stream(dev);
    const int64_t H = o->kv_heads, Hq = o->q_heads, D = o->head_dim, CH = ctx < 4096 ? ctx : 4096;
    mlxn_tq_cache_params tp = {.n_kv_heads = (int)H, .capacity = ctx, .head_dim = (int)D, .k_bits = o->k_bits,
                               .v_bits = o->v_bits, .seed = mlxn_tq_seed(0)};
    const double cbytes = (double)mlxn_tq_bytes_per_token(&tp) * (double)ctx;
    int nsets = (int)ceil(3.0 * (double)l2 / cbytes);
    nsets = nsets < 1 ? 1 : nsets > TQ_MAX_SETS ? TQ_MAX_SETS : nsets;
    mlxn_tq_cache *c[TQ_MAX_SETS] = {0};
    mlxn_tensor k = {0}, v = {0}, q = {0}, out = {0};
    const int64_t kshape[3] = {H, CH, D}, qshape[4] = {1, Hq, 1, D};
    float *hk = malloc(sizeof(float) * (size_t)(H * CH * D)), *hq = malloc(sizeof(float) * (size_t)(Hq * D));
    double *t = malloc(sizeof(double) * 2 * (size_t)o->reps), *ta = t + o->reps;
    int rc = 1;
    if (!hk || !hq || !t) {
        fprintf(stderr, "mlxn bench tq: out of host memory\n");
        goto done;
    }
    fill_seeded(hk, H * CH * D, seed);
    fill_seeded(hq, Hq * D, seed);
    if (mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, kshape, &k) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, kshape, &v) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, qshape, &q) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, qshape, &out) != MLXN_OK ||
        mlxn_buffer_write(k.buf, 0, hk, sizeof(float) * (size_t)(H * CH * D)) != MLXN_OK ||
        mlxn_buffer_write(v.buf, 0, hk, sizeof(float) * (size_t)(H * CH * D)) != MLXN_OK ||
        mlxn_buffer_write(q.buf, 0, hq, sizeof(float) * (size_t)(Hq * D)) != MLXN_OK)
        goto fail;
    /* every copy filled from the same chunk of keys (the speed does not depend on the values) */
    for (int i = 0; i < nsets; i++) {
        if (mlxn_tq_cache_new(dev, &tp, &c[i]) != MLXN_OK) goto fail;
        for (int64_t p0 = 0; p0 < ctx; p0 += CH) {
            mlxn_tensor ks = k, vs = v;
            ks.shape[1] = vs.shape[1] = ctx - p0 < CH ? ctx - p0 : CH;
            if (mlxn_tq_append(s, c[i], &ks, &vs, p0, NULL) != MLXN_OK) goto fail;
        }
    }
    mlxn_tensor k1 = k, v1 = v; /* one token: a decode step's append */
    k1.shape[1] = v1.shape[1] = 1;
    mlxn_tq_sdpa_params ap = {.scale = 1.0f / sqrtf((float)D), .causal = true, .pos = ctx - 1};
    /* warm-up: --warmup calls and at least 300 ms, so the clocks have ramped up */
    double w0 = bench_now_us();
    for (int i = 0; i < o->warmup + nsets || bench_now_us() - w0 < 300e3; i++) {
        if (mlxn_tq_sdpa(s, c[i % nsets], &q, &ap, &out) != MLXN_OK) goto fail;
        if (i % 64 == 63 && mlxn_stream_sync(s) != MLXN_OK) goto fail;
    }
    if (mlxn_stream_sync(s) != MLXN_OK) goto fail;
    double b2b = 0, step = 0;
    /* the device waits 20 us per call while the host queues them */
    tq_call att = {.s = s, .c = c, .n = nsets, .what = TQ_ATTN, .q = &q, .tp = &ap, .out = &out};
    tq_call app = {.s = s, .c = c, .n = nsets, .what = TQ_APPEND, .k1 = &k1, .v1 = &v1, .apos = ctx - 1};
    tq_call both = att;
    both.what = TQ_STEP, both.k1 = &k1, both.v1 = &v1, both.apos = ctx - 1;
    if (bench_time_calls(s, "tq", o->reps, 0, 20.0, tq_once, &att, t, NULL) != MLXN_OK ||
        bench_time_calls(s, "tq", o->reps, 1, 20.0, tq_once, &att, &b2b, NULL) != MLXN_OK ||
        bench_time_calls(s, "tq", o->reps, 0, 20.0, tq_once, &app, ta, NULL) != MLXN_OK ||
        bench_time_calls(s, "tq", o->reps, 1, 40.0, tq_once, &both, &step, NULL) != MLXN_OK)
        goto fail;
    double med = median_us(t, o->reps), tmin = t[0], amed = median_us(ta, o->reps);
    double gbs = cbytes / (med * 1e3);
    printf("%7lld  %9.2f  %9.2f  %9.2f  %7.1f  %6.0f%%  %9.1f  %6d  %10.2f  %10.2f\n", (long long)ctx, med, tmin, b2b,
           gbs, copy_gbs > 0 ? 100.0 * gbs / copy_gbs : 0.0, cbytes / 1048576.0, nsets, amed, step);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "mlxn bench tq: %s\n", mlxn_last_error());
done:
    for (int i = 0; i < nsets; i++) mlxn_tq_cache_free(c[i]);
    mlxn_tensor *ts[] = {&k, &v, &q, &out};
    for (int i = 0; i < 4; i++)
        if (ts[i]->buf) mlxn_tensor_release(ts[i]);
    free(hk), free(hq), free(t);
    return rc;
}

static int bench_tq_cuda(const tq_bench_opts *o, const mlxn_device_params *dp, const int64_t *ctxs, int n) {
    mlxn_device *dev = NULL;
    if (mlxn_device_new(dp, &dev) != MLXN_OK) {
        fprintf(stderr, "mlxn bench tq: %s\n", mlxn_last_error());
        return 1;
    }
    size_t l2 = 0;
    int sms = 0;
    double copy_gbs = 0;
    if (mlxn_cuda_device_info(dev, &l2, &sms) != MLXN_OK ||
        mlxn_cuda_copy_bandwidth(dev, (size_t)256 << 20, 20, &copy_gbs) != MLXN_OK) {
        fprintf(stderr, "mlxn bench tq: %s\n", mlxn_last_error());
        mlxn_device_free(dev);
        return 1;
    }
    printf("device: %s, %d SMs, L2 %.0f MB; device-to-device copy %.1f GB/s\n", mlxn_device_name(dev), sms,
           (double)l2 / 1e6, copy_gbs);
    printf("decode attention over tq k%d v%d, head_dim %d, %d q heads / %d kv heads (causal, one query); medians "
           "of %d device-timed calls after %d+ warm-up, cache copies rotated past 3x L2\n",
           o->k_bits, o->v_bits, o->head_dim, o->q_heads, o->kv_heads, o->reps, o->warmup);
    printf("%7s  %9s  %9s  %9s  %7s  %7s  %9s  %6s  %10s  %10s\n", "ctx", "tq us", "min us", "b2b us", "GB/s",
           "% copy", "tq MiB", "copies", "append us", "step us");
    uint64_t seed = 0x5eed;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = one_ctx_cuda(dev, o, ctxs[i], l2, copy_gbs, &seed);
    mlxn_device_free(dev);
    return rc;
}

int cmd_bench_tq(int argc, char **argv) {
    tq_bench_opts o = {.ctx = "1024,4096,16384,32768", .device = "cpu", .head_dim = 128, .q_heads = 32,
                       .kv_heads = 8, .k_bits = 4, .v_bits = 4, .reps = 20, .warmup = 3, .mem_mib = 512,
                       .vectors = 4000};
    opt_args a;
    int pr = opt_parse(&bench_tq_command, argc, argv, 2, &o, &a, NULL);
    if (pr != OPT_OK) return pr == OPT_HELP ? 0 : 2;
    if (o.q_heads % o.kv_heads != 0) {
        opt_error(&bench_tq_command, "--q-heads %d is not a multiple of --kv-heads %d", o.q_heads, o.kv_heads);
        return 2;
    }
    mlxn_tq_cache_params check = {.n_kv_heads = o.kv_heads, .capacity = 1, .head_dim = o.head_dim,
                                  .k_bits = o.k_bits, .v_bits = o.v_bits};
    if (mlxn_tq_check_params(&check) != MLXN_OK) {
        fprintf(stderr, "mlxn bench tq: %s\n", mlxn_last_error());
        return 2;
    }
    int64_t ctxs[32];
    int n = 0;
    for (const char *p = o.ctx; *p && n < 32;) {
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p || x < 1 || x > (1ll << 30)) {
            opt_error(&bench_tq_command, "--ctx wants positive whole numbers separated by commas, got '%s'", o.ctx);
            return 2;
        }
        ctxs[n++] = x;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            opt_error(&bench_tq_command, "--ctx wants positive whole numbers separated by commas, got '%s'", o.ctx);
            return 2;
        }
    }
    mlxn_device_params dpar = {.kind = MLXN_DEVICE_CPU, .n_threads = o.threads, .isa = (mlxn_cpu_isa)o.isa,
                                .float_activations = o.float_activations};
    if (mlxn_device_parse(o.device, &dpar) != MLXN_OK) {
        opt_error(&bench_tq_command, "%s", mlxn_last_error());
        return 2;
    }
    if (dpar.kind == MLXN_DEVICE_CUDA) {
        if (o.quality) {
            opt_error(&bench_tq_command, "--quality runs on the CPU (drop --device %s)", o.device);
            return 2;
        }
        return bench_tq_cuda(&o, &dpar, ctxs, n);
    }
    mlxn_device *dev = NULL;
    if (mlxn_device_new(&dpar, &dev) != MLXN_OK) {
        fprintf(stderr, "mlxn bench tq: %s\n", mlxn_last_error());
        return 1;
    }
    char model[256];
    bench_cpu_model(model, sizeof model);
    if (o.quality) {
        printf("machine: %s, %s\n", model, mlxn_device_name(dev));
        int qr = quality(dev, &o, ctxs, n);
        mlxn_device_free(dev);
        return qr;
    }
    printf("machine: %s, %s", model, mlxn_device_name(dev));
    if (o.mem_mib > 0)
        printf("; memory read %.1f GB/s (%d MiB)", bench_read_bandwidth(((cpu_device *)dev->ctx)->pool, (size_t)o.mem_mib << 20, 5),
               o.mem_mib);
    printf("\n");
    printf("decode attention, head_dim %d, %d q heads / %d kv heads, tq k%d v%d vs dense f32; medians of %d calls\n",
           o.head_dim, o.q_heads, o.kv_heads, o.k_bits, o.v_bits, o.reps);
    printf("%7s  %9s  %7s  %10s  %7s  %7s  %9s  %9s", "ctx", "tq us", "GB/s", "f32 us", "GB/s", "speedup", "tq MiB",
           "f32 MiB");
    /* one thread: also the thread's CPU time, which preemption does not inflate */
    if (mlxn_device_threads(dev) == 1) printf("  %9s  %10s  %7s", "tq cpu us", "f32 cpu us", "cpu x");
    printf("\n");
    uint64_t seed = 0x5eed;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = one_ctx(dev, &o, ctxs[i], &seed);
    mlxn_device_free(dev);
    return rc;
}
