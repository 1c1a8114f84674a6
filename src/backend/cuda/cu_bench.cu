/* Device-side timing for the bench tool (see cuda_bench.h): event timers
 * behind a device-side hold, and a device-to-device copy bandwidth probe
 * (the ceiling the mat-vec is compared with). */
#include <stdlib.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_bench.h"
}

struct mlxn_cuda_timer {
    mlxn_stream *s;
    int n;
    cudaEvent_t *ev; /* [n] */
};

/* Spin until the global nanosecond timer passes start + ns. */
__global__ void hold_kernel(unsigned long long ns) {
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        __nanosleep(1000);
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
}

extern "C" mlxn_status mlxn_cuda_timer_begin(mlxn_stream *s, int n_marks, double hold_us, mlxn_cuda_timer **out) {
    const char *op = "timer";
    *out = NULL;
    if (n_marks < 2) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "cuda timer: need at least 2 marks");
    MLXN_TRY(cu_begin(s, op));
    mlxn_cuda_timer *t = (mlxn_cuda_timer *)calloc(1, sizeof *t);
    cudaEvent_t *ev = (cudaEvent_t *)calloc((size_t)n_marks, sizeof *ev);
    if (!t || !ev) {
        free(t);
        free(ev);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "cuda timer: out of host memory");
    }
    t->s = s;
    t->ev = ev;
    for (; t->n < n_marks; t->n++) {
        mlxn_status st = cu_check(cudaEventCreate(&ev[t->n]), op, "cudaEventCreate", cu_ctx(s)->index);
        if (st != MLXN_OK) {
            for (int i = 0; i < t->n; i++) cudaEventDestroy(ev[i]);
            free(ev);
            free(t);
            return st;
        }
    }
    hold_kernel<<<1, 1, 0, cu_ctx(s)->s>>>((unsigned long long)(hold_us * 1000.0));
    mlxn_status st = cu_launched(s, op, "hold_kernel");
    if (st != MLXN_OK) {
        for (int i = 0; i < t->n; i++) cudaEventDestroy(ev[i]);
        free(ev);
        free(t);
        return st;
    }
    *out = t;
    return MLXN_OK;
}

extern "C" mlxn_status mlxn_cuda_timer_mark(mlxn_cuda_timer *t, int i) {
    if (!t || i < 0 || i >= t->n) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "cuda timer: mark %d out of range", i);
    return cu_check(cudaEventRecord(t->ev[i], cu_ctx(t->s)->s), "timer", "cudaEventRecord", cu_ctx(t->s)->index);
}

extern "C" mlxn_status mlxn_cuda_timer_end(mlxn_cuda_timer *t, double *us) {
    if (!t) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "cuda timer: NULL");
    int idx = cu_ctx(t->s)->index;
    mlxn_status st = cu_check(cudaEventSynchronize(t->ev[t->n - 1]), "timer", "cudaEventSynchronize", idx);
    for (int i = 0; st == MLXN_OK && i + 1 < t->n; i++) {
        float ms = 0;
        st = cu_check(cudaEventElapsedTime(&ms, t->ev[i], t->ev[i + 1]), "timer", "cudaEventElapsedTime", idx);
        us[i] = (double)ms * 1000.0;
    }
    for (int i = 0; i < t->n; i++) cudaEventDestroy(t->ev[i]);
    free(t->ev);
    free(t);
    return st;
}

extern "C" mlxn_status mlxn_cuda_device_info(mlxn_device *dev, size_t *l2_bytes, int *sm_count) {
    cudaDeviceProp p;
    MLXN_TRY(cu_check(cudaGetDeviceProperties(&p, dev->index), "device_info", "cudaGetDeviceProperties", dev->index));
    *l2_bytes = (size_t)p.l2CacheSize;
    *sm_count = p.multiProcessorCount;
    return MLXN_OK;
}

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

extern "C" mlxn_status mlxn_cuda_copy_bandwidth(mlxn_device *dev, size_t bytes, int reps, double *gb_s) {
    const char *op = "copy_bandwidth";
    int idx = dev->index;
    *gb_s = 0;
    if (reps < 1 || reps > 1000) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: reps must be 1..1000", op);
    MLXN_TRY(cu_check(cudaSetDevice(idx), op, "cudaSetDevice", idx));
    cudaStream_t s = cu_ctx(dev->default_stream)->s;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    float times[1000];
    mlxn_status st = cu_check(cudaMalloc(&a, bytes), op, "cudaMalloc", idx);
    if (st == MLXN_OK) st = cu_check(cudaMalloc(&b, bytes), op, "cudaMalloc", idx);
    if (st == MLXN_OK) st = cu_check(cudaMemsetAsync(a, 0x5a, bytes, s), op, "cudaMemset", idx);
    if (st == MLXN_OK) st = cu_check(cudaEventCreate(&e0), op, "cudaEventCreate", idx);
    if (st == MLXN_OK) st = cu_check(cudaEventCreate(&e1), op, "cudaEventCreate", idx);
    if (st == MLXN_OK) st = cu_check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s), op, "warm-up copy", idx);
    for (int r = 0; st == MLXN_OK && r < reps; r++) {
        cudaEventRecord(e0, s);
        cudaMemcpyAsync(r & 1 ? a : b, r & 1 ? b : a, bytes, cudaMemcpyDeviceToDevice, s);
        cudaEventRecord(e1, s);
        st = cu_check(cudaEventSynchronize(e1), op, "copy", idx);
        if (st == MLXN_OK) st = cu_check(cudaEventElapsedTime(&times[r], e0, e1), op, "cudaEventElapsedTime", idx);
    }
    if (st == MLXN_OK) {
        qsort(times, (size_t)reps, sizeof times[0], cmp_f);
        double med = reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
        *gb_s = 2.0 * (double)bytes / (med * 1e6);
    }
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return st;
}
