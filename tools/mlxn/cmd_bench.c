/* mlxn bench model | qmv | qmm | tq (bench_tq.c) | sdpa (bench_sdpa.c).
 *
 * `bench model` (bench_model.c) times a model's prompt processing and
 * generation, like llama-bench; `bench sdpa` (bench_sdpa.c) times attention
 * on a GPU. `bench qmv|qmm` time the quantized matmul
 * on the CPU or a GPU: random codes and scales (the kernels' speed does not depend on the
 * values) for W [rows, cols] (out = x @ W^T; with --transpose 0, W is
 * [cols, rows] quantized along rows and out = x @ W), x [n, cols] random
 * normal. After --warmup calls, --reps calls are timed one by one; the
 * median, min and max are printed with the effective bandwidth
 * (weights + scales + biases + x + out bytes / median time) and, measured
 * in the same process with the same number of threads, the machine's
 * memory read bandwidth over a 512 MiB buffer (--mem-mib; far past the
 * caches of most machines) and
 * over a buffer the size of the weights (what a warm cache can give).
 *
 * --device cuda[:N] times the op on a GPU with device events (cuda_bench.h):
 * after at least 300 ms of warm-up calls (the clocks ramp up from idle),
 * every timed call is queued behind a short device-side wait, with an event
 * between calls, so each interval is device time (the kernel plus the gap
 * between two queued launches), never host launch latency. The weights are
 * replicated over enough copies to exceed 3x the L2 cache and the calls
 * rotate through them, so every call reads its weights from device memory
 * (one 4096 x 14336 4-bit matrix, 33 MB, would otherwise sit in an H100's
 * 50 MB L2). The ceiling printed beside it is a device-to-device copy
 * measured in the same process (bytes read + written per second). */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_bench.h"
#include "commands.h"
#include "core/threadpool.h"
#include "mlxn/mlxn.h"
#include "bench_util.h"
#include "options.h"

typedef struct bench_opts {
    const char *what, *device;
    int bits, group, transpose, threads, reps, warmup, json, mem_mib;
    int64_t rows, cols, n;
    mlxn_quant_mode mode;
    mlxn_dtype sdt; /* affine: the scales' and biases' dtype */
    mlxn_cpu_isa isa;
} bench_opts;

typedef struct kernel_opts {
    int bits, group, transpose, threads, reps, warmup, json, mem_mib, rows, cols, n, isa, sdt;
    const char *mode, *device;
} kernel_opts;

static const opt_spec kernel_rows[] = {
    {"bits", 0, OPT_INT, offsetof(kernel_opts, bits), "B", "Code width (affine: 1, 2, 3, 4, 5, 6, 8).",
     "4 (mxfp8: 8)", 1, 8, NULL},
    {"group-size", 0, OPT_INT, offsetof(kernel_opts, group), "G", "Quantization group size.",
     "64 (mxfp*: 32, nvfp4: 16)", 1, 1 << 20, NULL},
    {"mode", 0, OPT_STRING, offsetof(kernel_opts, mode), "M", "affine, mxfp4, mxfp8 or nvfp4.", "affine", 0, 0,
     NULL},
    {"scale-dtype", 0, OPT_CHOICE, offsetof(kernel_opts, sdt), "T",
     "Affine scales' and biases' dtype (f32: what GGUF Q4_K / Q5_K imports carry).", "bf16", 0, 0, "bf16|f16|f32"},
    {"rows", 0, OPT_INT, offsetof(kernel_opts, rows), "N", "Output features (rows of W).", "4096", 1, 1 << 30,
     NULL},
    {"cols", 0, OPT_INT, offsetof(kernel_opts, cols), "K", "Input features.", "14336", 1, 1 << 30, NULL},
    {"n", 0, OPT_INT, offsetof(kernel_opts, n), "NX", "Rows of x.", "1 for qmv, 8 for qmm", 1, 1 << 20, NULL},
    {"device", 0, OPT_STRING, offsetof(kernel_opts, device), "DEV",
     "cpu, cuda or cuda:N (a GPU is timed with device events over rotating weight copies).", "cpu", 0, 0, NULL},
    {"threads", 't', OPT_INT, offsetof(kernel_opts, threads), "T", "CPU worker threads (0: one per core).", "0",
     0, 4096, NULL},
    {"isa", 0, OPT_CHOICE, offsetof(kernel_opts, isa), "I", "Cap the CPU instruction set.", "auto", 0, 0,
     "auto|scalar|avx2|avx512"},
    {"reps", 0, OPT_INT, offsetof(kernel_opts, reps), "R", "Timed calls.", "30", 1, 1 << 30, NULL},
    {"warmup", 0, OPT_INT, offsetof(kernel_opts, warmup), "W", "Untimed calls first.", "5", 0, 1 << 30, NULL},
    {"transpose", 0, OPT_INT, offsetof(kernel_opts, transpose), "0|1",
     "1: out = x @ W^T (W is [rows, cols]); 0: out = x @ W (W is [cols, rows], quantized along rows).", "1", 0,
     1, NULL},
    {"mem-mib", 0, OPT_INT, offsetof(kernel_opts, mem_mib), "S",
     "Size of the CPU memory-bandwidth read buffer in MiB (0 skips it).", "512", 0, 1 << 20, NULL},
    {"json", 0, OPT_FLAG, offsetof(kernel_opts, json), NULL, "Print one JSON object instead of text.", NULL, 0, 0,
     NULL},
    {0},
};

#define KERNEL_DESCRIPTION                                                                                      \
    "Random codes and scales (the speed does not depend on the values). On the CPU, after --warmup calls, "    \
    "--reps calls are timed one by one; the median, min and max are printed with the effective bandwidth "      \
    "(weights, scales, biases, x and out bytes over the median time) and the machine's memory read bandwidth "  \
    "measured in the same process with the same threads, over --mem-mib MiB and over a buffer the size of the " \
    "weights. On a GPU the calls are timed with device events, after at least 300 ms of warm-up, rotating "     \
    "through enough weight copies to exceed 3x the L2 cache, beside a device-to-device copy's bandwidth; then " \
    "the same calls back to back (one interval over all of them), rotating and on one copy."

const opt_command bench_qmv_command = {
    .name = "bench qmv",
    .synopsis = "[options]",
    .summary = "Time the quantized matrix-vector product (decode's kernel).",
    .description = KERNEL_DESCRIPTION,
    .opts = kernel_rows,
    .examples = "mlxn bench qmv --bits 4 --group-size 64 --rows 4096 --cols 14336",
};

const opt_command bench_qmm_command = {
    .name = "bench qmm",
    .synopsis = "[options]",
    .summary = "Time the quantized matrix-matrix product (prefill's kernel).",
    .description = KERNEL_DESCRIPTION,
    .opts = kernel_rows,
    .examples = "mlxn bench qmm --n 64 --mode mxfp4 --json",
};

const opt_command bench_command = {
    .name = "bench",
    .synopsis = "model|qmv|qmm|tq|sample|sdpa [options]",
    .summary = "Time a model (prompt and generation tok/s, like llama-bench), the quantized matmul kernels, "
               "TurboQuant KV-cache attention, token sampling or attention on a GPU.",
    .description = "`mlxn bench model`, `mlxn bench qmv`, `mlxn bench qmm`, `mlxn bench tq`, `mlxn bench sample` and "
                   "`mlxn bench sdpa` "
                   "each have their own --help.",
    .opts = NULL,
};

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- the benchmark ------------------------------------------------------ */

static int parse(int argc, char **argv, bench_opts *o) {
    const opt_command *c = !strcmp(argv[1], "qmm") ? &bench_qmm_command : &bench_qmv_command;
    kernel_opts k = {.bits = 4, .group = 64, .transpose = 1, .reps = 30, .warmup = 5, .mem_mib = 512,
                     .rows = 4096, .cols = 14336, .n = -1, .mode = "affine", .device = "cpu"};
    opt_args a;
    opt_given given;
    int pr = opt_parse(c, argc, argv, 2, &k, &a, &given);
    if (pr != OPT_OK) return pr;
    *o = (bench_opts){.what = argv[1], .device = k.device, .bits = k.bits, .group = k.group,
                      .transpose = k.transpose, .threads = k.threads, .reps = k.reps, .warmup = k.warmup,
                      .json = k.json, .mem_mib = k.mem_mib, .rows = k.rows, .cols = k.cols, .n = k.n,
                      .isa = (mlxn_cpu_isa)k.isa};
    if (mlxn_quant_mode_parse(k.mode, &o->mode) != MLXN_OK) {
        opt_error(c, "--mode must be affine, mxfp4, mxfp8 or nvfp4, got '%s'", k.mode);
        return OPT_ERROR;
    }
    static const mlxn_dtype sdts[3] = {MLXN_DTYPE_BF16, MLXN_DTYPE_F16, MLXN_DTYPE_F32}; /* (--scale-dtype's order) */
    o->sdt = o->mode == MLXN_QUANT_AFFINE ? sdts[k.sdt] : MLXN_DTYPE_U8; /* (the fp modes: byte scales) */
    if (o->mode != MLXN_QUANT_AFFINE && opt_was_given(c, &given, "scale-dtype")) {
        opt_error(c, "--scale-dtype is for affine weights (%s scales are bytes)", k.mode);
        return OPT_ERROR;
    }
    if (o->mode != MLXN_QUANT_AFFINE) { /* the fp modes fix both */
        if (!opt_was_given(c, &given, "bits")) o->bits = o->mode == MLXN_QUANT_MXFP8 ? 8 : 4;
        if (!opt_was_given(c, &given, "group-size")) o->group = o->mode == MLXN_QUANT_NVFP4 ? 16 : 32;
    }
    if (o->n < 0) o->n = !strcmp(o->what, "qmm") ? 8 : 1;
    return OPT_OK;
}

/* Random codes (no mxfp8 NaN codes), scales/biases of a realistic size and
 * x in [-1, 1]; the kernels' speed does not depend on the values. */
static void fill_inputs(const bench_opts *o, uint64_t *seed, uint32_t *w, int64_t nw, void *sc, void *bi, int64_t ng,
                        float *xp) {
    int affine = o->mode == MLXN_QUANT_AFFINE;
    for (int64_t i = 0; i < nw; i++) w[i] = (uint32_t)rng_next(seed);
    if (o->mode == MLXN_QUANT_MXFP8) /* no NaN codes */
        for (int64_t i = 0; i < nw * 4; i++)
            if ((((uint8_t *)w)[i] & 0x7f) == 0x7f) ((uint8_t *)w)[i] = 0x30;
    for (int64_t i = 0; i < ng; i++) {
        if (affine) {
            const float sv = 0.01f + (float)(rng_next(seed) % 100) * 1e-4f, bv = -0.08f;
            if (o->sdt == MLXN_DTYPE_F32) ((float *)sc)[i] = sv, ((float *)bi)[i] = bv;
            else if (o->sdt == MLXN_DTYPE_F16) ((uint16_t *)sc)[i] = mlxn_f32_to_f16(sv), ((uint16_t *)bi)[i] = mlxn_f32_to_f16(bv);
            else ((uint16_t *)sc)[i] = mlxn_f32_to_bf16(sv), ((uint16_t *)bi)[i] = mlxn_f32_to_bf16(bv);
        } else {
            ((uint8_t *)sc)[i] = (uint8_t)(o->mode == MLXN_QUANT_NVFP4 ? 0x30 : 120);
        }
    }
    for (int64_t i = 0; i < o->n * o->cols; i++) xp[i] = (float)((int64_t)(rng_next(seed) % 2001) - 1000) * 1e-3f;
}

static double median_of(double *t, int n) {
    qsort(t, (size_t)n, sizeof(double), bench_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* One timed call (bench_time_calls): the product over weight copy i % nsets. */
typedef struct qmv_call {
    mlxn_stream *s;
    const mlxn_tensor *x, *wq, *sc, *bi;
    const mlxn_quant_params *q;
    int transpose, nsets;
    mlxn_tensor *out;
} qmv_call;

static mlxn_status qmv_once(void *ctx, int i) {
    const qmv_call *c = ctx;
    const int k = i % c->nsets;
    return mlxn_quantized_matmul(c->s, c->x, &c->wq[k], &c->sc[k], c->bi ? &c->bi[k] : NULL, c->q, c->transpose, c->out);
}

/* The --device cuda[:N] path: see the top of the file. */
static int bench_cuda(const bench_opts *o, const mlxn_quant_params *q, const mlxn_device_params *dp, int64_t qrows,
                      int64_t qcols) {
    mlxn_device *dev = NULL;
    if (mlxn_device_new(dp, &dev) != MLXN_OK) {
        fprintf(stderr, "mlxn bench: %s\n", mlxn_last_error());
        return 1;
    }
    enum { MAX_SETS = 64 };
    int rc = 1, affine = o->mode == MLXN_QUANT_AFFINE, nsets = 0, sms = 0;
    size_t l2 = 0;
    mlxn_dtype sdt = o->sdt;
    int64_t wshape[2] = {qrows, mlxn_quant_words_per_row(q, qcols)}, sshape[2] = {qrows, qcols / o->group};
    int64_t xshape[2] = {o->n, o->cols}, oshape[2] = {o->n, o->rows};
    int64_t nw = wshape[0] * wshape[1], ng = sshape[0] * sshape[1];
    size_t ssz = mlxn_dtype_size(sdt);
    mlxn_tensor wq[MAX_SETS], sc[MAX_SETS], bi[MAX_SETS], x = {0}, out = {0};
    memset(wq, 0, sizeof wq), memset(sc, 0, sizeof sc), memset(bi, 0, sizeof bi);
    uint32_t *hw = malloc((size_t)nw * 4);
    void *hs = malloc((size_t)ng * ssz), *hb = malloc((size_t)ng * ssz);
    float *hx = malloc((size_t)(o->n * o->cols) * sizeof(float));
    double *t = malloc((size_t)o->reps * sizeof(double));
    mlxn_stream *s = mlxn_device_stream(dev);
    if (!hw || !hs || !hb || !hx || !t) {
        fprintf(stderr, "mlxn bench: out of host memory\n");
        goto done;
    }
    uint64_t seed = 12345;
    fill_inputs(o, &seed, hw, nw, hs, hb, ng, hx);
    if (mlxn_cuda_device_info(dev, &l2, &sms) != MLXN_OK) goto fail;
    size_t wbytes = (size_t)nw * 4 + (size_t)ng * ssz * (affine ? 2 : 1);
    /* enough weight copies that a rotation through them spans 3x L2 (every call misses) */
    nsets = (int)((3 * l2 + wbytes - 1) / wbytes);
    nsets = nsets < 1 ? 1 : nsets > MAX_SETS ? MAX_SETS : nsets;
    for (int i = 0; i < nsets; i++) {
        if (mlxn_tensor_alloc(dev, MLXN_DTYPE_U32, 2, wshape, &wq[i]) != MLXN_OK ||
            mlxn_tensor_alloc(dev, sdt, 2, sshape, &sc[i]) != MLXN_OK ||
            (affine && mlxn_tensor_alloc(dev, sdt, 2, sshape, &bi[i]) != MLXN_OK) ||
            mlxn_buffer_write(wq[i].buf, 0, hw, (size_t)nw * 4) != MLXN_OK ||
            mlxn_buffer_write(sc[i].buf, 0, hs, (size_t)ng * ssz) != MLXN_OK ||
            (affine && mlxn_buffer_write(bi[i].buf, 0, hb, (size_t)ng * ssz) != MLXN_OK))
            goto fail;
    }
    /* the layout a model's weights take on this device: tiled where the backend has it (weights.c) */
    mlxn_quant_params qq = *q;
    if (mlxn_quant_tileable(q, sdt, qrows, qcols)) {
        mlxn_status ts = MLXN_OK;
        for (int i = 0; i < nsets && ts == MLXN_OK; i++) ts = mlxn_quantized_tile(s, &wq[i], &sc[i], &bi[i], q);
        if (ts == MLXN_OK) qq.layout = MLXN_QUANT_TILED16;
        else if (ts != MLXN_ERR_NOT_IMPLEMENTED) goto fail;
    }
    q = &qq;
    if (!o->json) printf("weights: %s layout\n", qq.layout == MLXN_QUANT_TILED16 ? "tiled (TILED16)" : "MLX's row");
    if (mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 2, xshape, &x) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 2, oshape, &out) != MLXN_OK ||
        mlxn_buffer_write(x.buf, 0, hx, (size_t)(o->n * o->cols) * sizeof(float)) != MLXN_OK)
        goto fail;
    /* warm-up: --warmup calls and at least 300 ms of them, so the GPU's clocks
     * have ramped up from idle before anything is timed */
    double w0 = bench_now_us();
    for (int i = 0; i < o->warmup + nsets || bench_now_us() - w0 < 300e3; i++) {
        int k = i % nsets;
        if (mlxn_quantized_matmul(s, &x, &wq[k], &sc[k], affine ? &bi[k] : NULL, q, o->transpose, &out) != MLXN_OK)
            goto fail;
        if (i % 64 == 63 && mlxn_stream_sync(s) != MLXN_OK) goto fail;
    }
    if (mlxn_stream_sync(s) != MLXN_OK) goto fail;
    /* the device waits 20 us per call while the host queues them (validation and launch are a few us) */
    qmv_call call = {.s = s, .x = &x, .wq = wq, .sc = sc, .bi = affine ? bi : NULL, .q = q,
                     .transpose = o->transpose, .out = &out, .nsets = nsets};
    if (bench_time_calls(s, "qmv", o->reps, 0, 20.0, qmv_once, &call, t, NULL) != MLXN_OK) goto fail;
    /* Back to back: the same calls with no event between them, one interval
     * over all of them (the next kernel's launch overlaps this one's tail, as
     * in a decode step). First rotating the copies (every call from HBM),
     * then on one copy (the peer's method: ggml's test-backend-ops perf
     * repeats one op on one set of weights, so what the L2 holds is reused). */
    double b2b[2] = {0, 0};
    for (int same = 0; same < 2; same++) {
        call.nsets = same ? 1 : nsets;
        if (bench_time_calls(s, "qmv", o->reps, 1, 20.0, qmv_once, &call, &b2b[same], NULL) != MLXN_OK) goto fail;
    }
    double mean = 0;
    for (int i = 0; i < o->reps; i++) mean += t[i] / o->reps;
    double med = median_of(t, o->reps), tmin = t[0], tmax = t[o->reps - 1];
    double copy_gbs = 0;
    if (mlxn_cuda_copy_bandwidth(dev, (size_t)256 << 20, 20, &copy_gbs) != MLXN_OK) goto fail;
    size_t bytes = wbytes + (size_t)(o->n * o->cols + o->n * o->rows) * sizeof(float);
    double gbs = (double)bytes / (med * 1e3), pct = copy_gbs > 0 ? 100.0 * gbs / copy_gbs : 0.0;
    const char *dname = mlxn_device_name(dev);
    if (o->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:b, s:i, s:f, s:f, s:f, s:f, s:I, s:f, s:f, "
                              "s:f, s:i, s:I, s:i}",
                              "bench", o->what, "device", dname, "mode", mlxn_quant_mode_name(o->mode), "scale_dtype",
                              mlxn_dtype_name(o->sdt), "bits", o->bits,
                              "group_size", o->group, "rows", (json_int_t)o->rows, "cols", (json_int_t)o->cols, "n",
                              (json_int_t)o->n, "transpose", o->transpose, "reps", o->reps, "median_us", med, "mean_us",
                              mean, "min_us", tmin, "max_us", tmax, "bytes", (json_int_t)bytes, "gb_s", gbs,
                              "copy_gb_s", copy_gbs, "pct_of_copy", pct, "weight_sets", nsets, "l2_bytes",
                              (json_int_t)l2, "sms", sms);
        if (j) json_object_set_new(j, "back_to_back_us", json_real(b2b[0]));
        if (j) json_object_set_new(j, "same_weights_us", json_real(b2b[1]));
        if (j) json_object_set_new(j, "layout", json_string(qq.layout == MLXN_QUANT_TILED16 ? "tiled16" : "rows"));
        char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!txt) {
            fprintf(stderr, "mlxn bench: could not build the JSON output\n");
            goto done;
        }
        printf("%s\n", txt);
        free(txt);
    } else {
        printf("%s: %s %d-bit group %d%s%s, W %lld x %lld (%s), x %lld x %lld, %s\n", o->what,
               mlxn_quant_mode_name(o->mode), o->bits, o->group, o->mode == MLXN_QUANT_AFFINE ? " scales " : "",
               o->mode == MLXN_QUANT_AFFINE ? mlxn_dtype_name(o->sdt) : "", (long long)o->rows, (long long)o->cols,
               o->transpose ? "out = x @ W^T" : "out = x @ W", (long long)o->n, (long long)o->cols, dname);
        printf("time: median %.2f us (mean %.2f, min %.2f, max %.2f) over %d device-timed calls after %d warm-up, "
               "rotating %d weight copies (L2 %.0f MB, %d SMs)\n",
               med, mean, tmin, tmax, o->reps, o->warmup, nsets, (double)l2 / 1e6, sms);
        printf("traffic: %.2f MB -> %.1f GB/s effective, %.0f%% of the device-to-device copy (%.1f GB/s)\n",
               (double)bytes / 1e6, gbs, pct, copy_gbs);
        printf("back to back: %.2f us per call rotating the copies (%.1f GB/s, %.0f%%); %.2f us on one copy "
               "(L2 reuse, as ggml's test-backend-ops perf times)\n",
               b2b[0], (double)bytes / (b2b[0] * 1e3), copy_gbs > 0 ? 100.0 * bytes / (b2b[0] * 1e3) / copy_gbs : 0.0,
               b2b[1]);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "mlxn bench: %s\n", mlxn_last_error());
done:
    mlxn_tensor_release(&out);
    mlxn_tensor_release(&x);
    for (int i = 0; i < nsets; i++) {
        mlxn_tensor_release(&wq[i]);
        mlxn_tensor_release(&sc[i]);
        if (affine) mlxn_tensor_release(&bi[i]);
    }
    free(hw), free(hs), free(hb), free(hx), free(t);
    mlxn_device_free(dev);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "model")) return cmd_bench_model(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "tq")) return cmd_bench_tq(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "sample")) return cmd_bench_sample(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "sdpa")) return cmd_bench_sdpa(argc, argv);
    if (argc < 2 || (strcmp(argv[1], "qmv") && strcmp(argv[1], "qmm"))) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            opt_help(&bench_command, stdout);
            return 0;
        }
        if (argc >= 2)
            fprintf(stderr, "mlxn bench: unknown benchmark '%s': use model, qmv, qmm, tq, sample or sdpa\n", argv[1]);
        else fprintf(stderr, "mlxn bench: say what to time: model, qmv, qmm, tq, sample or sdpa\n");
        fprintf(stderr, "Run `mlxn bench model --help` (or qmv/qmm/tq/sample/sdpa) for the options.\n");
        return 2;
    }
    bench_opts o;
    int pr = parse(argc, argv, &o);
    if (pr) return pr == OPT_HELP ? 0 : 2;

    mlxn_quant_params q = {.mode = o.mode, .bits = o.bits, .group_size = o.group};
    /* W's quantized layout: [N, K] (transpose) or [K, N], quantized along its last axis */
    int64_t qrows = o.transpose ? o.rows : o.cols, qcols = o.transpose ? o.cols : o.rows;
    if (mlxn_quant_validate(&q, qcols) != MLXN_OK) {
        fprintf(stderr, "mlxn bench: %s\n", mlxn_last_error());
        return 2;
    }
    mlxn_device_params dp = {.kind = MLXN_DEVICE_CPU, .n_threads = o.threads, .isa = o.isa};
    if (mlxn_device_parse(o.device, &dp) != MLXN_OK) {
        fprintf(stderr, "mlxn bench: %s\n", mlxn_last_error());
        return 2;
    }
    if (dp.kind == MLXN_DEVICE_CUDA) return bench_cuda(&o, &q, &dp, qrows, qcols);
    mlxn_device *dev = NULL;
    if (mlxn_device_new(&dp, &dev) != MLXN_OK) {
        fprintf(stderr, "mlxn bench: %s\n", mlxn_last_error());
        return 1;
    }
    int rc = 1;
    int affine = o.mode == MLXN_QUANT_AFFINE;
    mlxn_dtype sdt = o.sdt;
    int64_t wshape[2] = {qrows, mlxn_quant_words_per_row(&q, qcols)}, sshape[2] = {qrows, qcols / o.group};
    int64_t xshape[2] = {o.n, o.cols}, oshape[2] = {o.n, o.rows};
    mlxn_tensor wq = {0}, sc = {0}, bi = {0}, x = {0}, out = {0};
    if (mlxn_tensor_alloc(dev, MLXN_DTYPE_U32, 2, wshape, &wq) != MLXN_OK ||
        mlxn_tensor_alloc(dev, sdt, 2, sshape, &sc) != MLXN_OK ||
        (affine && mlxn_tensor_alloc(dev, sdt, 2, sshape, &bi) != MLXN_OK) ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 2, xshape, &x) != MLXN_OK ||
        mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 2, oshape, &out) != MLXN_OK) {
        fprintf(stderr, "mlxn bench: %s\n", mlxn_last_error());
        goto done;
    }
    uint64_t seed = 12345;
    fill_inputs(&o, &seed, mlxn_tensor_host(&wq), mlxn_tensor_numel(&wq), mlxn_tensor_host(&sc),
                affine ? mlxn_tensor_host(&bi) : NULL, mlxn_tensor_numel(&sc), mlxn_tensor_host(&x));
    mlxn_stream *s = mlxn_device_stream(dev);
    for (int i = 0; i < o.warmup; i++)
        if (mlxn_quantized_matmul(s, &x, &wq, &sc, affine ? &bi : NULL, &q, o.transpose, &out) != MLXN_OK) {
            fprintf(stderr, "mlxn bench: %s\n", mlxn_last_error());
            goto done;
        }
    double *t = malloc((size_t)o.reps * 2 * sizeof(double)), *tc = t + o.reps;
    if (!t) goto done;
    for (int i = 0; i < o.reps; i++) {
        double c0 = bench_thread_cpu_us(), t0 = bench_now_us();
        mlxn_quantized_matmul(s, &x, &wq, &sc, affine ? &bi : NULL, &q, o.transpose, &out);
        t[i] = bench_now_us() - t0;
        tc[i] = bench_thread_cpu_us() - c0;
    }
    qsort(t, (size_t)o.reps, sizeof(double), bench_cmp_double);
    qsort(tc, (size_t)o.reps, sizeof(double), bench_cmp_double);
    double med_cpu = o.reps % 2 ? tc[o.reps / 2] : 0.5 * (tc[o.reps / 2 - 1] + tc[o.reps / 2]);
    double med = o.reps % 2 ? t[o.reps / 2] : 0.5 * (t[o.reps / 2 - 1] + t[o.reps / 2]);
    double tmin = t[0], tmax = t[o.reps - 1];
    free(t);
    size_t wbytes = mlxn_tensor_nbytes(&wq) + mlxn_tensor_nbytes(&sc) + (affine ? mlxn_tensor_nbytes(&bi) : 0);
    size_t bytes = wbytes + mlxn_tensor_nbytes(&x) + mlxn_tensor_nbytes(&out);
    double gbs = (double)bytes / (med * 1e3);
    double gflops = 2.0 * (double)o.n * (double)o.rows * (double)o.cols / (med * 1e3);

    /* memory bandwidth with the device's own threads */
    mlxn_threadpool *pool = NULL;
    double bw_dram = 0, bw_same = 0;
    if (mlxn_threadpool_new(mlxn_device_threads(dev), &pool) == MLXN_OK) {
        if (o.mem_mib > 0) bw_dram = bench_read_bandwidth(pool, (size_t)o.mem_mib << 20, 3);
        bw_same = bench_read_bandwidth(pool, (bytes + 63) & ~(size_t)63, 10);
        mlxn_threadpool_free(pool);
    }
    char model[256];
    bench_cpu_model(model, sizeof model);
    const char *dname = mlxn_device_name(dev);
    if (o.json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:b, s:i, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:f, "
                              "s:f, s:s, s:s}",
                              "bench", o.what, "mode", mlxn_quant_mode_name(o.mode), "scale_dtype", mlxn_dtype_name(o.sdt),
                              "bits", o.bits, "group_size",
                              o.group, "rows", (json_int_t)o.rows, "cols", (json_int_t)o.cols, "n",
                              (json_int_t)o.n, "transpose", o.transpose, "reps", o.reps, "median_us", med,
                              "min_us", tmin, "max_us", tmax, "median_caller_cpu_us", med_cpu, "bytes", (json_int_t)bytes, "gb_s", gbs, "gflop_s",
                              gflops, "mem_read_gb_s", bw_dram, "mem_read_same_size_gb_s", bw_same,
                              "pct_of_mem_read", bw_dram > 0 ? 100.0 * gbs / bw_dram : 0.0, "device", dname,
                              "cpu", model);
        char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (!txt) {
            json_decref(j);
            fprintf(stderr, "mlxn bench: could not build the JSON output\n");
            goto done;
        }
        printf("%s\n", txt);
        free(txt);
        json_decref(j);
    } else {
        printf("%s: %s %d-bit group %d%s%s, W %lld x %lld (%s), x %lld x %lld, %s\n", o.what,
               mlxn_quant_mode_name(o.mode), o.bits, o.group, o.mode == MLXN_QUANT_AFFINE ? " scales " : "",
               o.mode == MLXN_QUANT_AFFINE ? mlxn_dtype_name(o.sdt) : "", (long long)o.rows, (long long)o.cols,
               o.transpose ? "out = x @ W^T" : "out = x @ W", (long long)o.n, (long long)o.cols, dname);
        printf("cpu: %s\n", model);
        printf("time: median %.1f us (min %.1f, max %.1f) over %d reps after %d warm-up; calling thread's CPU "
               "time median %.1f us\n", med, tmin, tmax, o.reps, o.warmup, med_cpu);
        printf("traffic: %.2f MB -> %.2f GB/s effective, %.1f GFLOP/s\n", (double)bytes / 1e6, gbs, gflops);
        printf("memory read: %.2f GB/s over %d MiB (%.0f%% reached), %.2f GB/s over %.1f MB (%.0f%%)\n", bw_dram,
               o.mem_mib,
               bw_dram > 0 ? 100.0 * gbs / bw_dram : 0.0, bw_same, (double)bytes / 1e6,
               bw_same > 0 ? 100.0 * gbs / bw_same : 0.0);
    }
    rc = 0;
done:
    mlxn_tensor_release(&out);
    mlxn_tensor_release(&x);
    if (affine) mlxn_tensor_release(&bi);
    mlxn_tensor_release(&sc);
    mlxn_tensor_release(&wq);
    mlxn_device_free(dev);
    return rc;
}
