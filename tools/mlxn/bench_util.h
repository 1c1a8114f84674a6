/* Small helpers shared by the `mlxn bench` modes (cmd_bench.c, bench_*.c):
 * clocks, a median's sort order, the CPU's name and a memory read
 * bandwidth measured with the device's thread pool. */
#ifndef MLXN_TOOLS_BENCH_UTIL_H
#define MLXN_TOOLS_BENCH_UTIL_H

#include <stddef.h>

#include "core/threadpool.h"

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

#endif
