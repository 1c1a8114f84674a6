/* mlxn eval: run token ids through a model (an MLX directory or a .gguf
 * file) and report the logits: every position's [vocab] row as an f32
 * .npy file ([n_tokens, vocab], numpy's format 1.0: a fixed magic, a
 * little header dictionary padded to 64 bytes, then the raw floats), the
 * top-1 id of each position, and optionally a greedy continuation, with
 * prefill and decode tok/s (--last computes only the last row's logits, as
 * generation does, for a prefill timing comparable with mlx_lm.generate). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "mlxn/mlxn.h"

typedef struct eval_opts {
    const char *model, *tokens, *tokens_file, *logits_out, *kv_cache;
    int greedy, last, threads, chunk, quiet, compare_dense, float_activations;
} eval_opts;

static const opt_spec eval_rows[] = {
    {"model", 'm', OPT_STRING, offsetof(eval_opts, model), "PATH",
     "The model: an MLX model directory or a .gguf file.", NULL, 0, 0, NULL},
    {"tokens", 0, OPT_STRING, offsetof(eval_opts, tokens), "IDS",
     "The token ids, separated by spaces or commas (one argument: quote it).", NULL, 0, 0, NULL},
    {"tokens-file", 0, OPT_STRING, offsetof(eval_opts, tokens_file), "FILE",
     "Read the token ids from FILE instead (the same format).", NULL, 0, 0, NULL},
    {"logits-out", 0, OPT_STRING, offsetof(eval_opts, logits_out), "FILE",
     "Write the logits as an f32 .npy file of shape [n_tokens, vocab].", NULL, 0, 0, NULL},
    {"greedy", 0, OPT_INT, offsetof(eval_opts, greedy), "N",
     "Then generate N tokens greedily (argmax) and print them, with the decode tok/s.", "0", 0, OPT_NO_MAX, NULL},
    {"last", 0, OPT_FLAG, offsetof(eval_opts, last), NULL,
     "Compute only the last position's logits, as generation runs a prompt's prefill (not with --logits-out).",
     NULL, 0, 0, NULL},
    {"threads", 0, OPT_INT, offsetof(eval_opts, threads), "N", "CPU threads (0: one per core).", "0", 0,
     OPT_NO_MAX, NULL},
    {"chunk", 0, OPT_INT, offsetof(eval_opts, chunk), "N", "Prefill chunk, in tokens (0: the default).", "2048",
     0, OPT_NO_MAX, NULL},
    {"float-activations", 0, OPT_FLAG, offsetof(eval_opts, float_activations), NULL,
     "CPU: keep every quantized matmul and TurboQuant attention in f32, as `mlxn generate --float-activations` "
     "(to tell the integer paths' effect from a cache's).",
     NULL, 0, 0, NULL},
    {"quiet", 0, OPT_FLAG, offsetof(eval_opts, quiet), NULL, "Print nothing but errors.", NULL, 0, 0, NULL},
    {"kv-cache", 0, OPT_STRING, offsetof(eval_opts, kv_cache), "KIND",
     "The KV cache: f32, f16, bf16, tq (tq8), tq2..tq8 or kXvY (TurboQuant keys X bits, values Y bits), as in "
     "`mlxn generate`.", "f32", 0, 0, NULL},
    {"compare-dense", 0, OPT_FLAG, offsetof(eval_opts, compare_dense), NULL,
     "Measure the --kv-cache against the dense f32 cache on the tokens (teacher-forced): perplexity of both, "
     "its change in %, the mean KL divergence of the next-token distributions (dense || this cache) and how "
     "often the top-1 ids agree.", NULL, 0, 0, NULL},
    {0},
};

const opt_command eval_command = {
    .name = "eval",
    .synopsis = "-m MODEL (--tokens IDS | --tokens-file FILE) [options]",
    .summary = "Run token ids through a model: top-1 ids, logits as .npy.",
    .description = "Runs the token ids through MODEL on the CPU and prints the load and forward times, then the "
                   "top-1 id at every position (with --last, of the last one only). --logits-out writes every "
                   "position's logits as numpy's .npy format 1.0.",
    .opts = eval_rows,
    .examples = "mlxn eval -m SmolLM2-135M-Instruct-4bit --tokens \"1 2 3\" --greedy 8\n"
                "mlxn eval -m model.gguf --tokens-file ids.txt --logits-out logits.npy --quiet\n"
                "mlxn eval -m model.gguf --tokens-file ids.txt --kv-cache tq4 --compare-dense",
};

static int parse_tokens(const char *s, int32_t **out, int64_t *n) {
    int64_t cap = 64, k = 0;
    int32_t *t = malloc(sizeof *t * (size_t)cap);
    if (!t) return -1;
    while (*s) {
        while (*s && (isspace((unsigned char)*s) || *s == ',')) s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > 2147483647L) {
            free(t);
            return -1;
        }
        if (k == cap) {
            int32_t *nt = realloc(t, sizeof *t * (size_t)(cap *= 2));
            if (!nt) {
                free(t);
                return -1;
            }
            t = nt;
        }
        t[k++] = (int32_t)v;
        s = end;
    }
    *out = t;
    *n = k;
    return 0;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, r;
    char *b = malloc(cap);
    while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    fclose(f);
    if (b) b[n] = '\0';
    return b;
}

/* numpy .npy version 1.0 of f32 [rows, cols], little-endian. */
static int write_npy(const char *path, const float *x, int64_t rows, int64_t cols) {
    char hdr[128];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                       (long long)rows, (long long)cols);
    int total = 10 + len + 1, pad = (64 - total % 64) % 64;
    memset(hdr + len, ' ', (size_t)pad);
    hdr[len + pad] = '\n';
    uint16_t hlen = (uint16_t)(len + pad + 1);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xFF), (unsigned char)(hlen >> 8)};
    int ok = fwrite(magic, 1, 10, f) == 10 && fwrite(hdr, 1, hlen, f) == hlen &&
             fwrite(x, sizeof *x, (size_t)(rows * cols), f) == (size_t)(rows * cols);
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

static int32_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* log softmax normalizer of x [n]: log sum exp x (in double). */
static double log_sum_exp(const float *x, int64_t n) {
    float mx = x[0];
    for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    return mx + log(sum);
}

/* --compare-dense: run the tokens through a dense f32 session and session
 * s (the --kv-cache) in lockstep, chunk by chunk (memory stays two chunks
 * of logits), teacher-forced: token i + 1 is scored by row i. Prints the
 * perplexity of both, its change, the mean KL(dense || s) over the rows and
 * the top-1 agreement. */
static int compare_dense(mlxn_model *m, mlxn_session *s, const char *kind, const int32_t *ids, int64_t n, int chunk,
                         int quiet) {
    int64_t V = mlxn_model_get_info(m)->vocab_size, C = chunk > 0 ? chunk : 256;
    mlxn_session_params dp = {.prefill_chunk = chunk, .max_context = n, .kv_dtype = MLXN_DTYPE_F32};
    mlxn_session *d = NULL;
    float *a = malloc(sizeof(float) * (size_t)(C * V)), *b = malloc(sizeof(float) * (size_t)(C * V));
    int rc = 1;
    if (!a || !b) {
        fprintf(stderr, "mlxn eval: out of memory for the logits\n");
        goto done;
    }
    if (mlxn_session_new(m, &dp, &d) != MLXN_OK) {
        fprintf(stderr, "mlxn eval: %s\n", mlxn_last_error());
        goto done;
    }
    double nll_d = 0, nll_s = 0, kl = 0;
    int64_t agree = 0, rows = 0;
    for (int64_t at = 0; at < n; at += C) {
        int64_t T = n - at < C ? n - at : C;
        if (mlxn_session_forward(d, ids + at, T, MLXN_LOGITS_ALL, a) != MLXN_OK ||
            mlxn_session_forward(s, ids + at, T, MLXN_LOGITS_ALL, b) != MLXN_OK) {
            fprintf(stderr, "mlxn eval: %s\n", mlxn_last_error());
            goto done;
        }
        for (int64_t r = 0; r < T; r++) {
            const float *x = a + r * V, *y = b + r * V;
            double lx = log_sum_exp(x, V), ly = log_sum_exp(y, V), k = 0;
            for (int64_t i = 0; i < V; i++) {
                double lpx = x[i] - lx;
                k += exp(lpx) * (lpx - (y[i] - ly));
            }
            kl += k;
            agree += argmax(x, V) == argmax(y, V);
            rows++;
            if (at + r + 1 < n) {
                nll_d += lx - x[ids[at + r + 1]];
                nll_s += ly - y[ids[at + r + 1]];
            }
        }
    }
    if (n < 2) {
        fprintf(stderr, "mlxn eval: --compare-dense needs at least 2 tokens\n");
        goto done;
    }
    double ppl_d = exp(nll_d / (double)(n - 1)), ppl_s = exp(nll_s / (double)(n - 1));
    printf("kv-cache %s: ppl %.4f, dense f32 ppl %.4f (%+.2f%%), mean KL %.5f, top-1 agreement %.2f%% over %lld "
           "positions, %zu KV bytes per token (f32 %zu)\n",
           kind, ppl_s, ppl_d, 100.0 * (ppl_s / ppl_d - 1.0), kl / (double)rows, 100.0 * (double)agree / (double)rows,
           (long long)rows, mlxn_session_kv_bytes_per_token(s), mlxn_session_kv_bytes_per_token(d));
    (void)quiet;
    rc = 0;
done:
    mlxn_session_free(d);
    free(a);
    free(b);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    eval_opts o = {0};
    opt_args a;
    int pr = opt_parse(&eval_command, argc, argv, 1, &o, &a, NULL);
    if (pr != OPT_OK) return pr == OPT_HELP ? 0 : 2;
    if (!o.model) {
        opt_error(&eval_command, "no model given: add -m PATH (an MLX model directory or a .gguf file)");
        return 2;
    }
    if (!o.tokens == !o.tokens_file) {
        opt_error(&eval_command, o.tokens ? "give either --tokens or --tokens-file, not both"
                                          : "no tokens given: add --tokens \"IDS\" or --tokens-file FILE");
        return 2;
    }
    if (o.last && o.logits_out) {
        opt_error(&eval_command, "--last computes one row of logits: --logits-out wants them all, leave one out");
        return 2;
    }
    if (o.compare_dense && (o.last || o.logits_out || o.greedy)) {
        opt_error(&eval_command, "--compare-dense runs the tokens teacher-forced: leave out --last, --logits-out and --greedy");
        return 2;
    }
    const char *model = o.model, *tokens = o.tokens, *tokens_file = o.tokens_file, *npy = o.logits_out;
    int threads = o.threads, chunk = o.chunk, greedy = o.greedy, quiet = o.quiet, last = o.last;
    char *text = tokens_file ? read_file(tokens_file) : NULL;
    if (tokens_file && !text) {
        fprintf(stderr, "mlxn eval: cannot read %s\n", tokens_file);
        return 1;
    }
    int32_t *ids = NULL;
    int64_t n = 0;
    int bad = parse_tokens(tokens ? tokens : text, &ids, &n);
    free(text);
    if (bad || n == 0) {
        fprintf(stderr, "mlxn eval: the tokens must be non-negative integers (at least one)\n");
        if (!bad) free(ids);
        return 2;
    }
    int rc = 1;
    mlxn_device *dev = NULL;
    mlxn_model *m = NULL;
    mlxn_session *s = NULL;
    float *logits = NULL;
    mlxn_device_params dp = {.kind = MLXN_DEVICE_CPU, .n_threads = threads, .float_activations = o.float_activations};
    /* the context the run needs, so a TurboQuant cache holds no more */
    mlxn_session_params sp = {.prefill_chunk = chunk, .max_context = n + (greedy > 0 ? greedy : 0)};
    if (o.kv_cache && mlxn_kv_cache_parse(o.kv_cache, &sp) != MLXN_OK) {
        fprintf(stderr, "mlxn eval: --kv-cache: %s\n", mlxn_last_error());
        rc = 2;
        goto done;
    }
    double t0 = now(), t1 = 0, t2 = 0, t3 = 0;
    if (mlxn_device_new(&dp, &dev) != MLXN_OK || mlxn_model_load(model, dev, NULL, &m) != MLXN_OK ||
        mlxn_session_new(m, &sp, &s) != MLXN_OK) {
        fprintf(stderr, "mlxn eval: %s\n", mlxn_last_error());
        goto done;
    }
    if (o.compare_dense) {
        rc = compare_dense(m, s, o.kv_cache ? o.kv_cache : "f32", ids, n, chunk, quiet);
        goto done;
    }
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    t1 = now();
    logits = malloc(sizeof(float) * (size_t)(n * V));
    if (!logits) {
        fprintf(stderr, "mlxn eval: out of memory for %lld x %lld logits\n", (long long)n, (long long)V);
        goto done;
    }
    int64_t rows = last ? 1 : n; /* rows of logits computed */
    if (mlxn_session_forward(s, ids, n, last ? MLXN_LOGITS_LAST : MLXN_LOGITS_ALL, logits) != MLXN_OK) {
        fprintf(stderr, "mlxn eval: %s\n", mlxn_last_error());
        goto done;
    }
    t2 = now();
    if (npy && write_npy(npy, logits, n, V) != 0) {
        fprintf(stderr, "mlxn eval: cannot write %s: %s\n", npy, strerror(errno));
        goto done;
    }
    if (!quiet) {
        printf("model %s: %lld tokens, vocab %lld, load %.2f s, forward %.3f s (%.1f tok/s)\ntop1:", model,
               (long long)n, (long long)V, t1 - t0, t2 - t1, (double)n / (t2 - t1));
        for (int64_t i = 0; i < rows; i++) printf(" %d", argmax(logits + i * V, V));
        printf("\n");
    }
    if (greedy > 0) {
        int32_t next = argmax(logits + (rows - 1) * V, V);
        if (!quiet) printf("greedy:");
        double g0 = now();
        for (int k = 0; k < greedy; k++) {
            if (!quiet) printf(" %d", next);
            if (k + 1 == greedy) break;
            if (mlxn_session_forward(s, &next, 1, MLXN_LOGITS_LAST, logits) != MLXN_OK) {
                fprintf(stderr, "\nmlxn eval: %s\n", mlxn_last_error());
                goto done;
            }
            next = argmax(logits, V);
        }
        t3 = now();
        if (!quiet) printf("\ndecode %.1f tok/s\n", greedy > 1 ? (double)(greedy - 1) / (t3 - g0) : 0.0);
    }
    rc = 0;
done:
    free(logits);
    free(ids);
    mlxn_session_free(s);
    mlxn_model_free(m);
    mlxn_device_free(dev);
    return rc;
}
