/* Timing helpers for `mlxn bench --device cuda` (plain C types only, so
 * the tool can include this without CUDA headers). With a build that has
 * no CUDA backend every call fails with MLXN_ERR_DEVICE.
 *
 * A timer records device events between the ops it times: begin() queues a
 * short device-side wait so the host can queue every timed call before the
 * GPU starts them (the gaps between events then hold device time only, not
 * host launch latency), mark(i) records event i, end() waits and returns
 * the n - 1 intervals in microseconds. */
#ifndef MLXN_CUDA_BENCH_H
#define MLXN_CUDA_BENCH_H

#include <stddef.h>

#include "mlxn/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlxn_cuda_timer mlxn_cuda_timer;

/* n_marks events; hold_us: how long the GPU waits before the first mark. */
mlxn_status mlxn_cuda_timer_begin(mlxn_stream *s, int n_marks, double hold_us, mlxn_cuda_timer **out);
mlxn_status mlxn_cuda_timer_mark(mlxn_cuda_timer *t, int i);
/* us[i] = time from mark i to mark i + 1 (i < n_marks - 1); frees t. */
mlxn_status mlxn_cuda_timer_end(mlxn_cuda_timer *t, double *us);

/* The device's L2 size and multiprocessor count. */
mlxn_status mlxn_cuda_device_info(mlxn_device *dev, size_t *l2_bytes, int *sm_count);
/* Median device-to-device copy bandwidth over `bytes` (read + write bytes
 * counted, cudaMemcpyAsync timed with events) in GB/s. */
mlxn_status mlxn_cuda_copy_bandwidth(mlxn_device *dev, size_t bytes, int reps, double *gb_s);

#ifdef __cplusplus
}
#endif
#endif
