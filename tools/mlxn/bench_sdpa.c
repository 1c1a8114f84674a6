/* mlxn bench sdpa: times attention (mlxn_sdpa) on a GPU.
 *
 * q [B, Hq, Tq, D] (f32 or bf16), K/V [B, Hkv, Tk, D] (bf16 or f16), random
 * normal, scale 1/sqrt(D), causal unless --causal 0. Timed like `bench qmv
 * --device cuda` (cuda_bench.h): at least 300 ms of warm-up calls, then
 * --reps calls queued behind a device-side wait with an event between
 * calls, so each interval is device time. The K/V are replicated over
 * enough copies to exceed 3x the L2 cache and the calls rotate through
 * them (the 41 MB of a 20000-token decode would otherwise sit in an H100's
 * 50 MB L2). Printed: median and min, the bytes an ideal kernel moves (q,
 * the K/V rows it must read, out) over the median as GB/s and as a share
 * of a device-to-device copy measured in the same process, and the
 * arithmetic rate over the visible (query, key) pairs (4 D flops each).
 * "back to back" is the time per call of the same --reps calls with no
 * event between them (one interval over all), as a decode step's stream
 * runs them: each call's launch and tail then overlap its neighbours'.
 * --kv-len 1 passes the length as a device-side kv_len tensor (the K/V then
 * hold a capacity of Tk + 256 rows), as a captured decode step would.
 * MLXN_CUDA_SDPA_SIMPLE=1 in the environment times the simple kernel. */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cuda/cuda_bench.h"
#include "bench_util.h"
#include "commands.h"
#include "mlxn/mlxn.h"
#include "options.h"

typedef struct sdpa_opts {
    int D, hq, hkv, tq, tk, batch, kvdt, qdt, causal, window, kvlen, reps, warmup, json;
    float softcap;
    const char *device;
} sdpa_opts;

static const opt_spec sdpa_rows[] = {
    {"head-dim", 0, OPT_INT, offsetof(sdpa_opts, D), "D", "Head dim of q, K and V.", "256", 1, 1024, NULL},
    {"q-heads", 0, OPT_INT, offsetof(sdpa_opts, hq), "HQ", "Query heads.", "32", 1, 1024, NULL},
    {"kv-heads", 0, OPT_INT, offsetof(sdpa_opts, hkv), "HKV", "KV heads (divides --q-heads).", "2", 1, 1024, NULL},
    {"tq", 0, OPT_INT, offsetof(sdpa_opts, tq), "TQ", "Query positions (1: decode).", "1", 1, 1 << 20, NULL},
    {"tk", 0, OPT_INT, offsetof(sdpa_opts, tk), "TK", "Keys (cached tokens, including the queries').", "20000", 1,
     1 << 24, NULL},
    {"batch", 'b', OPT_INT, offsetof(sdpa_opts, batch), "B", "Batch.", "1", 1, 1024, NULL},
    {"kv-dtype", 0, OPT_CHOICE, offsetof(sdpa_opts, kvdt), "T", "K/V dtype.", "bf16", 0, 0, "bf16|f16"},
    {"q-dtype", 0, OPT_CHOICE, offsetof(sdpa_opts, qdt), "T", "q dtype.", "f32", 0, 0, "f32|bf16"},
    {"causal", 0, OPT_INT, offsetof(sdpa_opts, causal), "0|1", "Causal (lower-right aligned).", "1", 0, 1, NULL},
    {"window", 0, OPT_INT, offsetof(sdpa_opts, window), "W", "Sliding window (0: none).", "0", 0, 1 << 24, NULL},
    {"softcap", 0, OPT_FLOAT, offsetof(sdpa_opts, softcap), "C", "Score softcap (0: none).", "0", 0, 1e6, NULL},
    {"kv-len", 0, OPT_INT, offsetof(sdpa_opts, kvlen), "0|1",
     "1: pass Tk as a device-side kv_len over K/V holding Tk + 256 rows.", "0", 0, 1, NULL},
    {"device", 0, OPT_STRING, offsetof(sdpa_opts, device), "DEV", "cuda or cuda:N.", "cuda", 0, 0, NULL},
    {"reps", 0, OPT_INT, offsetof(sdpa_opts, reps), "R", "Timed calls.", "200", 1, 100000, NULL},
    {"warmup", 0, OPT_INT, offsetof(sdpa_opts, warmup), "W", "Untimed calls first (and >= 300 ms).", "10", 0,
     1 << 20, NULL},
    {"json", 0, OPT_FLAG, offsetof(sdpa_opts, json), NULL, "Print one JSON object instead of text.", NULL, 0, 0,
     NULL},
    {0},
};

const opt_command bench_sdpa_command = {
    .name = "bench sdpa",
    .synopsis = "[options]",
    .summary = "Time attention (mlxn_sdpa) on a GPU: decode or prefill shapes.",
    .description = "Random q/K/V, timed with device events after at least 300 ms of warm-up, rotating through "
                   "enough K/V copies to exceed 3x the L2 cache; prints the median and min, the ideal bytes over "
                   "the median (GB/s and % of a device-to-device copy measured in the same process) and the "
                   "arithmetic rate over the visible (query, key) pairs; \"back to back\" is the time per call "
                   "of the same calls with no event between them, as a decode step's stream runs them. "
                   "MLXN_CUDA_SDPA_SIMPLE=1 in the "
                   "environment times the simple (exact f32) kernel instead of the tensor-core one.",
    .opts = sdpa_rows,
    .examples = "mlxn bench sdpa --head-dim 256 --q-heads 32 --kv-heads 2 --tq 1 --tk 20000\n"
                "mlxn bench sdpa --head-dim 128 --q-heads 32 --kv-heads 8 --tq 512 --tk 512 --json",
};

static uint64_t rng(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Approximately normal values (sum of 4 uniforms), stored as dt. */
static void fill(void *p, mlxn_dtype dt, int64_t n, uint64_t *seed) {
    for (int64_t i = 0; i < n; i++) {
        float v = 0;
        for (int k = 0; k < 4; k++) v += (float)(rng(seed) >> 40) / (float)(1 << 24) - 0.5f;
        v *= 1.7f;
        if (dt == MLXN_DTYPE_F32) ((float *)p)[i] = v;
        else if (dt == MLXN_DTYPE_BF16) ((uint16_t *)p)[i] = mlxn_f32_to_bf16(v);
        else ((uint16_t *)p)[i] = mlxn_f32_to_f16(v);
    }
}

/* One timed call (bench_time_calls): mlxn_sdpa on K/V copy i % nsets. */
typedef struct sdpa_call {
    mlxn_stream *s;
    const mlxn_tensor *q, *k, *v;
    int nsets;
    const mlxn_sdpa_params *p;
    mlxn_tensor *out;
} sdpa_call;

static mlxn_status sdpa_once(void *ctx, int i) {
    const sdpa_call *c = ctx;
    return mlxn_sdpa(c->s, c->q, &c->k[i % c->nsets], &c->v[i % c->nsets], c->p, c->out);
}

int cmd_bench_sdpa(int argc, char **argv) {
    sdpa_opts o = {.D = 256, .hq = 32, .hkv = 2, .tq = 1, .tk = 20000, .batch = 1, .causal = 1, .reps = 200,
                   .warmup = 10, .device = "cuda"};
    opt_args args;
    int pr = opt_parse(&bench_sdpa_command, argc, argv, 2, &o, &args, NULL);
    if (pr != OPT_OK) return pr == OPT_HELP ? 0 : 2;
    if (o.hq % o.hkv) {
        opt_error(&bench_sdpa_command, "--q-heads %d is not a multiple of --kv-heads %d", o.hq, o.hkv);
        return 2;
    }
    mlxn_device_params dp = {.kind = MLXN_DEVICE_CPU};
    if (mlxn_device_parse(o.device, &dp) != MLXN_OK || dp.kind != MLXN_DEVICE_CUDA) {
        fprintf(stderr, "mlxn bench sdpa: --device must be cuda or cuda:N, got '%s'\n", o.device);
        return 2;
    }
    mlxn_device *dev = NULL;
    if (mlxn_device_new(&dp, &dev) != MLXN_OK) {
        fprintf(stderr, "mlxn bench sdpa: %s\n", mlxn_last_error());
        return 1;
    }
    enum { MAX_SETS = 64 };
    const mlxn_dtype kdt = o.kvdt ? MLXN_DTYPE_F16 : MLXN_DTYPE_BF16, qdt = o.qdt ? MLXN_DTYPE_BF16 : MLXN_DTYPE_F32;
    const int64_t cap = o.kvlen ? (int64_t)o.tk + 256 : o.tk;
    int64_t qsh[4] = {o.batch, o.hq, o.tq, o.D}, ksh[4] = {o.batch, o.hkv, cap, o.D}, one[1] = {1};
    const int64_t nq = (int64_t)o.batch * o.hq * o.tq * o.D, nk = (int64_t)o.batch * o.hkv * cap * o.D;
    mlxn_tensor k[MAX_SETS], v[MAX_SETS], q = {0}, out = {0}, kl = {0};
    memset(k, 0, sizeof k), memset(v, 0, sizeof v);
    int rc = 1, nsets = 0, sms = 0;
    size_t l2 = 0;
    void *hq = malloc((size_t)nq * 4), *hk = malloc((size_t)nk * 2);
    double *t = malloc((size_t)o.reps * sizeof(double));
    mlxn_stream *s = mlxn_device_stream(dev);
    if (!hq || !hk || !t) {
        fprintf(stderr, "mlxn bench sdpa: out of host memory\n");
        goto done;
    }
    uint64_t seed = 2024;
    if (mlxn_cuda_device_info(dev, &l2, &sms) != MLXN_OK) goto fail;
    const size_t kvbytes = 2 * (size_t)nk * 2;
    nsets = (int)((3 * l2 + kvbytes - 1) / kvbytes);
    nsets = nsets < 1 ? 1 : nsets > MAX_SETS ? MAX_SETS : nsets;
    for (int i = 0; i < nsets; i++) {
        if (mlxn_tensor_alloc(dev, kdt, 4, ksh, &k[i]) != MLXN_OK || mlxn_tensor_alloc(dev, kdt, 4, ksh, &v[i]) != MLXN_OK)
            goto fail;
        fill(hk, kdt, nk, &seed);
        if (mlxn_buffer_write(k[i].buf, 0, hk, (size_t)nk * 2) != MLXN_OK) goto fail;
        fill(hk, kdt, nk, &seed);
        if (mlxn_buffer_write(v[i].buf, 0, hk, (size_t)nk * 2) != MLXN_OK) goto fail;
    }
    int32_t len = o.tk;
    fill(hq, qdt, nq, &seed);
    if (mlxn_tensor_alloc(dev, qdt, 4, qsh, &q) != MLXN_OK || mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 4, qsh, &out) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_I32, 1, one, &kl) != MLXN_OK ||
        mlxn_buffer_write(q.buf, 0, hq, (size_t)nq * mlxn_dtype_size(qdt)) != MLXN_OK ||
        mlxn_buffer_write(kl.buf, 0, &len, 4) != MLXN_OK)
        goto fail;
    mlxn_sdpa_params p = {.scale = 1.0f / sqrtf((float)o.D), .causal = o.causal, .window = o.window,
                          .softcap = o.softcap, .kv_len = o.kvlen ? &kl : NULL};
    double w0 = bench_now_us();
    for (int i = 0; i < o.warmup + nsets || bench_now_us() - w0 < 300e3; i++) {
        if (mlxn_sdpa(s, &q, &k[i % nsets], &v[i % nsets], &p, &out) != MLXN_OK) goto fail;
        if (i % 64 == 63 && mlxn_stream_sync(s) != MLXN_OK) goto fail;
    }
    if (mlxn_stream_sync(s) != MLXN_OK) goto fail;
    double host_us = 0, b2b = 0, host_b2b = 0;
    /* the device waits 60 us per call while the host queues them (validation, launch, scratch: ~10-20 us) */
    sdpa_call call = {.s = s, .q = &q, .k = k, .v = v, .nsets = nsets, .p = &p, .out = &out};
    if (bench_time_calls(s, "sdpa", o.reps, 0, 60.0, sdpa_once, &call, t, &host_us) != MLXN_OK ||
        bench_time_calls(s, "sdpa", o.reps, 1, 60.0, sdpa_once, &call, &b2b, &host_b2b) != MLXN_OK)
        goto fail;
    qsort(t, (size_t)o.reps, sizeof(double), bench_cmp_double);
    const double med = o.reps % 2 ? t[o.reps / 2] : 0.5 * (t[o.reps / 2 - 1] + t[o.reps / 2]), tmin = t[0];
    double copy = 0;
    if (mlxn_cuda_copy_bandwidth(dev, (size_t)256 << 20, 20, &copy) != MLXN_OK) goto fail;
    /* visible (query, key) pairs and the K/V rows some query sees */
    double pairs = 0;
    int64_t kmin = o.tk, kmax = 0;
    for (int64_t i = 0; i < o.tq; i++) {
        int64_t pos = i + o.tk - o.tq, lo = 0, hi = o.tk;
        if (o.causal && pos + 1 < hi) hi = pos + 1;
        if (o.window > 0 && pos - o.window + 1 > lo) lo = pos - o.window + 1;
        if (hi > lo) {
            pairs += (double)(hi - lo);
            if (lo < kmin) kmin = lo;
            if (hi > kmax) kmax = hi;
        }
    }
    pairs *= (double)o.batch * o.hq;
    const double rows_read = kmax > kmin ? (double)(kmax - kmin) : 0.0;
    const double bytes = (double)nq * (double)mlxn_dtype_size(qdt) + (double)nq * 4.0 +
                         2.0 * (double)o.batch * o.hkv * rows_read * o.D * 2.0;
    const double gbs = bytes / (med * 1e3), pct = copy > 0 ? 100.0 * gbs / copy : 0.0;
    const double tflops = 4.0 * o.D * pairs / (med * 1e6);
    const char *simple = getenv("MLXN_CUDA_SDPA_SIMPLE");
    const char *kernel = simple && !strcmp(simple, "1") ? "simple" : "default";
    if (o.json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:b, s:i, s:f, s:b, s:i, "
                              "s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:i, s:f}",
                              "bench", "sdpa", "device", mlxn_device_name(dev), "kernel", kernel, "head_dim", o.D,
                              "q_heads", o.hq, "kv_heads", o.hkv, "tq", o.tq, "tk", o.tk, "batch", o.batch, "kv_dtype",
                              o.kvdt ? "f16" : "bf16", "q_dtype", o.qdt ? "bf16" : "f32", "causal", o.causal,
                              "window", o.window, "softcap", (double)o.softcap, "kv_len_tensor", o.kvlen, "reps",
                              o.reps, "median_us", med, "min_us", tmin, "bytes", bytes, "gb_s", gbs, "copy_gb_s", copy,
                              "pct_of_copy", pct, "tflop_s", tflops, "host_us_per_call", host_us, "kv_sets", nsets, "sms", sms,
                              "b2b_us", b2b);
        char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!txt) {
            fprintf(stderr, "mlxn bench sdpa: could not build the JSON output\n");
            goto done;
        }
        printf("%s\n", txt);
        free(txt);
    } else {
        printf("sdpa (%s kernel): B %d, Hq %d, Hkv %d, Tq %d, Tk %d, D %d, q %s, K/V %s%s%s, %s\n", kernel, o.batch,
               o.hq, o.hkv, o.tq, o.tk, o.D, o.qdt ? "bf16" : "f32", o.kvdt ? "f16" : "bf16",
               o.causal ? ", causal" : "", o.kvlen ? ", device kv_len" : "", mlxn_device_name(dev));
        printf("time: median %.2f us, min %.2f us over %d device-timed calls, rotating %d K/V copies (L2 %.0f MB, %d "
               "SMs); back to back %.2f us per call\n",
               med, tmin, o.reps, nsets, (double)l2 / 1e6, sms, b2b);
        printf("traffic: %.2f MB -> %.1f GB/s, %.0f%% of the device-to-device copy (%.1f GB/s); %.1f TFLOP/s\n",
               bytes / 1e6, gbs, pct, copy, tflops);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "mlxn bench sdpa: %s\n", mlxn_last_error());
done:
    mlxn_tensor_release(&q);
    mlxn_tensor_release(&out);
    mlxn_tensor_release(&kl);
    for (int i = 0; i < nsets; i++) mlxn_tensor_release(&k[i]), mlxn_tensor_release(&v[i]);
    free(hq), free(hk), free(t);
    mlxn_device_free(dev);
    return rc;
}
