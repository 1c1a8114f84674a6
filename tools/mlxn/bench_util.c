/* Helpers shared by the `mlxn bench` modes; see bench_util.h. */
#include "bench_util.h"

#include "backend/cuda/cuda_bench.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

double bench_thread_cpu_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *c = strchr(line, ':');
        if (!c) break;
        c += 1 + (c[1] == ' ');
        c[strcspn(c, "\n")] = '\0';
        snprintf(buf, n, "%s", c);
        break;
    }
    fclose(f);
}

typedef struct read_job {
    const uint64_t *p; /* [words] */
    uint64_t sink[64]; /* one slot per thread, 8 apart: no false sharing of results */
} read_job;

static void read_task(void *arg, int64_t b, int64_t e, int thread) {
    read_job *j = arg;
    /* 8 independent lanes: the compiler vectorizes the xor, and the loop is
     * bound by loads, not by a dependency chain */
    uint64_t acc[8] = {0};
    for (int64_t i = b; i + 8 <= e; i += 8)
        for (int k = 0; k < 8; k++) acc[k] ^= j->p[i + k];
    uint64_t x = 0;
    for (int k = 0; k < 8; k++) x ^= acc[k];
    j->sink[(thread % 8) * 8] ^= x;
}

double bench_read_bandwidth(mlxn_threadpool *pool, size_t bytes, int reps) {
    uint64_t *p = aligned_alloc(64, bytes);
    if (!p) return 0.0;
    int64_t words = (int64_t)(bytes / 8);
    for (int64_t i = 0; i < words; i++) p[i] = (uint64_t)i * 0x9e3779b97f4a7c15ull;
    read_job j = {.p = p};
    double best = 1e30;
    mlxn_parallel_for(pool, words, 4096, read_task, &j); /* touch once */
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now_us();
        mlxn_parallel_for(pool, words, 4096, read_task, &j);
        double dt = bench_now_us() - t0;
        best = dt < best ? dt : best;
    }
    free(p);
    return (double)bytes / (best * 1e3);
}

mlxn_status bench_time_calls(mlxn_stream *s, const char *what, int reps, int back_to_back, double hold_us,
                             bench_call_fn fn, void *ctx, double *t, double *host_us) {
    const double hold = 1000.0 + hold_us * reps;
    mlxn_cuda_timer *tm = NULL;
    mlxn_status st = mlxn_cuda_timer_begin(s, back_to_back ? 2 : reps + 1, hold, &tm);
    if (st != MLXN_OK) return st;
    st = mlxn_cuda_timer_mark(tm, 0);
    const double h0 = bench_now_us();
    for (int i = 0; i < reps && st == MLXN_OK; i++) {
        st = fn(ctx, i);
        if (st == MLXN_OK && !back_to_back) st = mlxn_cuda_timer_mark(tm, i + 1);
    }
    if (st == MLXN_OK && back_to_back) st = mlxn_cuda_timer_mark(tm, 1);
    const double queued = bench_now_us() - h0;
    if (host_us) *host_us = queued / reps;
    if (st == MLXN_OK && queued > hold)
        fprintf(stderr, "mlxn bench %s: warning: queueing took %.1f us per call, past the device's wait: the "
                        "intervals may include host time\n", what, queued / reps);
    mlxn_status st2 = mlxn_cuda_timer_end(tm, t);
    if (st == MLXN_OK && st2 == MLXN_OK && back_to_back) t[0] /= reps;
    return st != MLXN_OK ? st : st2;
}
