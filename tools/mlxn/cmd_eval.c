/* mlxn eval: run token ids through a model (an MLX directory or a .gguf
 * file) and report the logits: every position's [vocab] row as an f32
 * .npy file ([n_tokens, vocab], numpy's format 1.0: a fixed magic, a
 * little header dictionary padded to 64 bytes, then the raw floats), the
 * top-1 id of each position, and optionally a greedy continuation, with
 * prefill and decode tok/s (--last computes only the last row's logits, as
 * generation does, for a prefill timing comparable with mlx_lm.generate). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "mlxn/mlxn.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: mlxn eval -m MODEL (--tokens \"1 2 3\" | --tokens-file FILE) [options]\n\n"
            "Run the token ids through MODEL (an MLX model directory or a .gguf file) and\n"
            "print the top-1 id at every position.\n\n"
            "  -m, --model PATH      the model\n"
            "  --tokens \"IDS\"        token ids separated by spaces or commas\n"
            "  --tokens-file FILE    the same, read from a file\n"
            "  --logits-out FILE     write the logits as an f32 .npy [n_tokens, vocab]\n"
            "  --greedy N            then generate N tokens greedily (argmax) and print them\n"
            "  --last                only the last position's logits (a prompt's prefill, as\n"
            "                        generation runs it; not with --logits-out)\n"
            "  --threads T           CPU threads (default: one per core)\n"
            "  --chunk N             prefill chunk (default 2048)\n"
            "  --quiet               print nothing but errors\n"
            "  -h, --help            this help\n");
}

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

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *tokens = NULL, *tokens_file = NULL, *npy = NULL;
    int threads = 0, chunk = 0, greedy = 0, quiet = 0, last = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (!strcmp(a, "--last")) {
            last = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "mlxn eval: unknown option or missing value: %s\n\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--tokens")) tokens = v;
        else if (!strcmp(a, "--tokens-file")) tokens_file = v;
        else if (!strcmp(a, "--logits-out")) npy = v;
        else if (!strcmp(a, "--greedy")) greedy = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--chunk")) chunk = atoi(v);
        else {
            fprintf(stderr, "mlxn eval: unknown option %s\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || (!tokens == !tokens_file) || greedy < 0 || threads < 0 || chunk < 0 || (last && npy)) {
        fprintf(stderr, "mlxn eval: give -m MODEL and one of --tokens or --tokens-file\n\n");
        usage(stderr);
        return 2;
    }
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
    mlxn_device_params dp = {.kind = MLXN_DEVICE_CPU, .n_threads = threads};
    mlxn_session_params sp = {.prefill_chunk = chunk};
    double t0 = now(), t1 = 0, t2 = 0, t3 = 0;
    if (mlxn_device_new(&dp, &dev) != MLXN_OK || mlxn_model_load(model, dev, NULL, &m) != MLXN_OK ||
        mlxn_session_new(m, &sp, &s) != MLXN_OK) {
        fprintf(stderr, "mlxn eval: %s\n", mlxn_last_error());
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
