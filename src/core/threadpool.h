/* A small fork-join thread pool owned by one CPU device.
 *
 * parallel_for splits [0, n) into one contiguous chunk per thread and runs
 * them at once; the caller's thread runs chunk 0 and waits for the rest.
 * Workers spin briefly before sleeping on a condition variable, because
 * decode issues hundreds of short ops per token and a sleep/wake round trip
 * (tens of microseconds) per op would dominate them. Not reentrant: a task
 * must not call parallel_for on the same pool. */
#ifndef MLXN_CORE_THREADPOOL_H
#define MLXN_CORE_THREADPOOL_H

#include <stdint.h>

#include "mlxn/status.h"

typedef struct mlxn_threadpool mlxn_threadpool;

/* fn(arg, begin, end, thread) handles items [begin, end); thread in [0, n_threads). */
typedef void (*mlxn_task_fn)(void *arg, int64_t begin, int64_t end, int thread);

mlxn_status mlxn_threadpool_new(int n_threads, mlxn_threadpool **out);
void mlxn_threadpool_free(mlxn_threadpool *pool);
int mlxn_threadpool_size(const mlxn_threadpool *pool);

/* Split [0, n) over the threads; chunks are multiples of `grain` (>= 1)
 * except the last, so kernels can keep whole blocks (e.g. 4 rows) together.
 * Runs inline when n is small or the pool has one thread. */
void mlxn_parallel_for(mlxn_threadpool *pool, int64_t n, int64_t grain, mlxn_task_fn fn, void *arg);

#endif
