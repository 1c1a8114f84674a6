/* A small fork-join thread pool owned by one CPU device.
 *
 * parallel_for cuts [0, n) into chunks of whole grains, a few per thread,
 * and every thread, the caller's included, claims chunks until none are
 * left; the call returns when all are done. Chunk boundaries depend only on
 * n, the grain and the pool's size, never on timing, so results do not
 * change from run to run; which thread runs which chunk does. Workers spin
 * briefly, then yield, then sleep on a condition variable, because decode
 * issues hundreds of short ops per token and a sleep/wake round trip (tens
 * of microseconds) per op would dominate them. Not reentrant: a task must
 * not call parallel_for on the same pool, and one thread at a time may call
 * it. */
#ifndef MLXN_CORE_THREADPOOL_H
#define MLXN_CORE_THREADPOOL_H

#include <stdint.h>

#include "mlxn/status.h"

typedef struct mlxn_threadpool mlxn_threadpool;

/* fn(arg, begin, end, thread) handles items [begin, end); thread in [0, n_threads) names the
   thread running it (for per-thread scratch): one thread may run several chunks of a job. */
typedef void (*mlxn_task_fn)(void *arg, int64_t begin, int64_t end, int thread);

mlxn_status mlxn_threadpool_new(int n_threads, mlxn_threadpool **out);
void mlxn_threadpool_free(mlxn_threadpool *pool);
int mlxn_threadpool_size(const mlxn_threadpool *pool);

/* Run fn over [0, n) on the pool's threads; chunks are multiples of `grain`
 * (>= 1) except the last, so kernels can keep whole blocks (e.g. 4 rows)
 * together. Runs inline, as one call, when n is one grain or the pool has
 * one thread. */
void mlxn_parallel_for(mlxn_threadpool *pool, int64_t n, int64_t grain, mlxn_task_fn fn, void *arg);

#endif
