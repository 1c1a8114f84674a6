/* mlxn bench sample: what picking one token costs, the two ways a decode
 * loop can do it on a device:
 *   device  mlxn_sample on logits already on the device, then the 4-byte
 *           token read back (the read waits for the op, so the interval is
 *           the whole cost a decode step pays);
 *   host    the logits read back to the host (vocab x 4 bytes), then the
 *           host sampler (mlxn_sampler_sample) on them.
 * On the CPU both run on host memory (the "read back" is a copy). Random
 * normal logits scaled by --spread; after --warmup untimed rounds, --reps
 * rounds are timed with a host clock; medians, min and max are printed. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "mlxn/mlxn.h"
#include "progress.h"

typedef struct bs_opts {
    const char *device;
    int vocab, top_k, reps, warmup, threads, json;
    float temp, top_p, min_p, spread;
} bs_opts;

static const opt_spec bs_rows[] = {
    {"device", 0, OPT_STRING, offsetof(bs_opts, device), "DEV", "cpu, cuda or cuda:N.", "cpu", 0, 0, NULL},
    {"vocab", 0, OPT_INT, offsetof(bs_opts, vocab), "V", "Logits per draw.", "128256", 1, 1 << 28, NULL},
    {"temp", 0, OPT_FLOAT, offsetof(bs_opts, temp), "T", "Temperature; 0 is argmax.", "1", 0, OPT_NO_MAX, NULL},
    {"top-p", 0, OPT_FLOAT, offsetof(bs_opts, top_p), "P", "Nucleus filter (1: off).", "0.9", 0, 1, NULL},
    {"top-k", 0, OPT_INT, offsetof(bs_opts, top_k), "K", "Keep the K best (0: off).", "0", 0, 1 << 30, NULL},
    {"min-p", 0, OPT_FLOAT, offsetof(bs_opts, min_p), "P", "min_p filter (0: off).", "0", 0, 1, NULL},
    {"spread", 0, OPT_FLOAT, offsetof(bs_opts, spread), "S",
     "Scale of the random logits (0: all equal, one tie group; small: every logit within a hair of the others).",
     "3", 0, OPT_NO_MAX, NULL},
    {"threads", 't', OPT_INT, offsetof(bs_opts, threads), "N", "CPU worker threads (0: one per core).", "0", 0,
     4096, NULL},
    {"reps", 0, OPT_INT, offsetof(bs_opts, reps), "R", "Timed rounds.", "200", 1, 1 << 24, NULL},
    {"warmup", 0, OPT_INT, offsetof(bs_opts, warmup), "W", "Untimed rounds first.", "20", 0, 1 << 24, NULL},
    {"json", 0, OPT_FLAG, offsetof(bs_opts, json), NULL, "Print one JSON object instead of text.", NULL, 0, 0, NULL},
    {0},
};

const opt_command bench_sample_command = {
    .name = "bench sample",
    .synopsis = "[--device cuda] [--vocab V] [--temp T --top-p P --top-k K --min-p P]",
    .summary = "Time picking one token: the sampling op on the device vs the logits read back to the host sampler.",
    .description = "device: mlxn_sample on logits already on the device, then the 4-byte token read back; host: the "
                   "logits read back (vocab x 4 bytes) and the host sampler. Random normal logits (--spread); "
                   "medians of --reps rounds after --warmup, timed with a host clock.",
    .opts = bs_rows,
    .examples = "mlxn bench sample --device cuda --vocab 128256 --temp 0.7 --top-p 0.9\n"
                "mlxn bench sample --device cuda --temp 0 --json",
};

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench_sample(int argc, char **argv) {
    bs_opts o = {.device = "cpu", .vocab = 128256, .temp = 1.0f, .top_p = 0.9f, .spread = 3.0f, .reps = 200,
                 .warmup = 20};
    opt_args a;
    int pr = opt_parse(&bench_sample_command, argc, argv, 2, &o, &a, NULL);
    if (pr != OPT_OK) return pr == OPT_HELP ? 0 : 2;
    mlxn_device_params dp = {.kind = MLXN_DEVICE_CPU, .n_threads = o.threads};
    if (mlxn_device_parse(o.device, &dp) != MLXN_OK) {
        fprintf(stderr, "mlxn bench sample: --device: %s\n", mlxn_last_error());
        return 2;
    }
    dp.n_threads = o.threads;
    mlxn_device *dev = NULL;
    if (mlxn_device_new(&dp, &dev) != MLXN_OK) {
        fprintf(stderr, "mlxn bench sample: %s\n", mlxn_last_error());
        return 1;
    }
    int rc = 1;
    int64_t vshape[1] = {o.vocab}, one[1] = {1};
    mlxn_tensor lg = {0}, tok = {0};
    mlxn_sampler *hs = NULL;
    float *host = malloc((size_t)o.vocab * sizeof(float)), *work = malloc((size_t)o.vocab * sizeof(float));
    double *t_dev = malloc((size_t)o.reps * sizeof(double)), *t_host = malloc((size_t)o.reps * sizeof(double));
    mlxn_stream *s = mlxn_device_stream(dev);
    mlxn_sampler_params hp = {.temperature = o.temp, .top_p = o.top_p, .min_p = o.min_p, .top_k = o.top_k, .seed = 7};
    if (!host || !work || !t_dev || !t_host) {
        fprintf(stderr, "mlxn bench sample: out of memory\n");
        goto done;
    }
    uint64_t r = 0x243f6a8885a308d3ull;
    for (int i = 0; i < o.vocab; i++) { /* roughly normal: the sum of four uniforms, scaled */
        double u = 0;
        for (int k = 0; k < 4; k++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            u += (double)(r >> 11) * 0x1.0p-53;
        }
        host[i] = (float)((u - 2.0) * (double)o.spread);
    }
    if (mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 1, vshape, &lg) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_I32, 1, one, &tok) != MLXN_OK ||
        mlxn_buffer_write(lg.buf, 0, host, (size_t)o.vocab * sizeof(float)) != MLXN_OK ||
        mlxn_sampler_new(&hp, o.vocab, &hs) != MLXN_OK)
        goto fail;
    int32_t id = 0;
    for (int i = 0; i < o.warmup + o.reps; i++) {
        mlxn_sample_params sp = {.temperature = o.temp, .top_p = o.top_p, .min_p = o.min_p, .top_k = o.top_k,
                                 .seed = 7, .counter = (uint64_t)i + 1};
        double t0 = progress_now();
        if (mlxn_sample(s, &lg, &sp, &tok) != MLXN_OK || mlxn_stream_read(s, tok.buf, 0, &id, sizeof id) != MLXN_OK)
            goto fail;
        double t1 = progress_now();
        if (mlxn_stream_read(s, lg.buf, 0, work, (size_t)o.vocab * sizeof(float)) != MLXN_OK ||
            mlxn_sampler_sample(hs, work, NULL, 0, &id) != MLXN_OK)
            goto fail;
        double t2 = progress_now();
        if (i >= o.warmup) t_dev[i - o.warmup] = (t1 - t0) * 1e6, t_host[i - o.warmup] = (t2 - t1) * 1e6;
    }
    qsort(t_dev, (size_t)o.reps, sizeof *t_dev, cmp_d);
    qsort(t_host, (size_t)o.reps, sizeof *t_host, cmp_d);
    double md = t_dev[o.reps / 2], mh = t_host[o.reps / 2];
    const char *dn = mlxn_device_name(dev);
    if (o.json) {
        json_t *j = json_pack("{s:s, s:s, s:i, s:f, s:f, s:i, s:f, s:i, s:f, s:f, s:f, s:f, s:f, s:f}", "bench",
                              "sample", "device", dn, "vocab", o.vocab, "temp", (double)o.temp, "top_p",
                              (double)o.top_p, "top_k", o.top_k, "min_p", (double)o.min_p, "reps", o.reps,
                              "device_median_us", md, "device_min_us", t_dev[0], "device_max_us", t_dev[o.reps - 1],
                              "host_median_us", mh, "host_min_us", t_host[0], "host_max_us", t_host[o.reps - 1]);
        char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!txt) goto fail;
        printf("%s\n", txt);
        free(txt);
    } else {
        printf("sample: vocab %d, temp %g, top_p %g, top_k %d, min_p %g, %s\n", o.vocab, (double)o.temp,
               (double)o.top_p, o.top_k, (double)o.min_p, dn);
        printf("device op + 4-byte read:           median %9.1f us (min %.1f, max %.1f)\n", md, t_dev[0],
               t_dev[o.reps - 1]);
        printf("logits read back + host sampler:   median %9.1f us (min %.1f, max %.1f)\n", mh, t_host[0],
               t_host[o.reps - 1]);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "mlxn bench sample: %s\n", mlxn_last_error());
done:
    mlxn_sampler_free(hs);
    if (lg.buf) mlxn_tensor_release(&lg);
    if (tok.buf) mlxn_tensor_release(&tok);
    free(host), free(work), free(t_dev), free(t_host);
    mlxn_device_free(dev);
    return rc;
}
