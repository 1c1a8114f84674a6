/* Small helpers shared by the `mlxn bench` modes (cmd_bench.c, bench_*.c):
 * clocks, a median's sort order, the CPU's name and a memory read
 * bandwidth measured with the device's thread pool. */
#ifndef MLXN_TOOLS_BENCH_UTIL_H
#define MLXN_TOOLS_BENCH_UTIL_H

#include <stddef.h>

#include "core/threadpool.h"
#include "mlxn/device.h"

/* Monotonic wall clock in microseconds. */
double bench_now_us(void);
/* CPU time of the calling thread in microseconds: with --threads 1 it is
 * the kernel's own time even while other processes preempt it (a shared
 * machine). */
double bench_thread_cpu_us(void);
/* qsort order for doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);
/* The CPU's model name from /proc/cpuinfo ("unknown" when absent). */
void bench_cpu_model(char *buf, size_t n);
/* Best-of-`reps` read bandwidth in GB/s over `bytes` with the pool (one
 * untimed pass first touches the pages); 0 when the buffer cannot be had. */
double bench_read_bandwidth(mlxn_threadpool *pool, size_t bytes, int reps);

/* Call i of a timed run (the caller picks that call's inputs from i). */
typedef mlxn_status (*bench_call_fn)(void *ctx, int i);
/* Device time of `reps` calls of fn on stream s, with the CUDA timer:
 * one by one (an event after every call; t[0..reps) each call's time) or
 * back to back (events only around all of them, as a decode step's stream
 * runs its kernels; t[0] the time per call). The device waits hold_us per
 * call (plus 1 ms) before the first, while the host queues them; when the
 * queueing took longer than that, the intervals may include host time and
 * a warning names `what`. *host_us (when not NULL): the host's queueing
 * time per call. */
mlxn_status bench_time_calls(mlxn_stream *s, const char *what, int reps, int back_to_back, double hold_us,
                             bench_call_fn fn, void *ctx, double *t, double *host_us);

#endif
