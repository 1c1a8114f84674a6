/* Fork-join thread pool; see threadpool.h for the contract. */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/internal.h"

/* How a waiting thread polls before it sleeps: SPIN_PAUSES cheap pause
 * instructions (a few microseconds: catches the next op of a decode step at
 * once), then up to SPIN_YIELDS sched_yield calls (~1 ms in all on an idle
 * core). Yielding rather than spinning matters when the machine is busier
 * than the pool: a spinning waiter would steal the core from the very thread
 * it waits for (measured: 2 threads on one free core fell from 64 to 8
 * tokens/s of decode with a pure pause spin). */
#define SPIN_PAUSES 64
#define SPIN_YIELDS 1000

struct mlxn_threadpool {
    int n_threads;                /* including the caller's thread */
    pthread_t *workers;           /* [n_threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t wake;          /* workers wait here for a new generation */
    pthread_cond_t done;          /* the caller waits here for pending == 0 */
    atomic_uint_fast64_t generation;
    atomic_int pending;           /* workers still running the current job */
    atomic_int stop;
    /* the current job, written before generation is bumped */
    mlxn_task_fn fn;
    void *arg;
    int64_t n, chunk;
};

typedef struct {
    mlxn_threadpool *pool;
    int index; /* 1 .. n_threads-1 */
} worker_arg;

/* One polling step of a waiting thread: pause first, then yield the core. */
static void relax(int i) {
    if (i < SPIN_PAUSES) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

static void run_chunk(mlxn_threadpool *p, int t) {
    int64_t begin = (int64_t)t * p->chunk;
    int64_t end = begin + p->chunk;
    if (end > p->n) end = p->n;
    if (begin < end) p->fn(p->arg, begin, end, t);
}

static void *worker_main(void *vp) {
    worker_arg *wa = vp;
    mlxn_threadpool *p = wa->pool;
    int t = wa->index;
    free(wa);
    uint_fast64_t seen = 0;
    for (;;) {
        uint_fast64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
        for (int i = 0; g == seen && i < SPIN_PAUSES + SPIN_YIELDS && !atomic_load(&p->stop); i++) {
            relax(i);
            g = atomic_load_explicit(&p->generation, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        run_chunk(p, t);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

mlxn_status mlxn_threadpool_new(int n_threads, mlxn_threadpool **out) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "thread pool: %d threads is out of range [1, 1024]",
                         n_threads);
    mlxn_threadpool *p = calloc(1, sizeof *p);
    if (!p) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "thread pool: out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            mlxn_threadpool_free(p);
            return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "thread pool: out of memory");
        }
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (wa) {
                wa->pool = p; /* filled before the thread can read it */
                wa->index = i;
            }
            if (!wa || pthread_create(&p->workers[i - 1], NULL, worker_main, wa) != 0) {
                free(wa);
                p->n_threads = i; /* only join the ones that started */
                mlxn_threadpool_free(p);
                return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "thread pool: could not start thread %d", i);
            }
        }
    }
    *out = p;
    return MLXN_OK;
}

void mlxn_threadpool_free(mlxn_threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads && p->workers; i++) pthread_join(p->workers[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

int mlxn_threadpool_size(const mlxn_threadpool *p) { return p ? p->n_threads : 1; }

void mlxn_parallel_for(mlxn_threadpool *p, int64_t n, int64_t grain, mlxn_task_fn fn, void *arg) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t blocks = (n + grain - 1) / grain;
    if (!p || p->n_threads == 1 || blocks == 1) {
        fn(arg, 0, n, 0);
        return;
    }
    int64_t chunk = (blocks + p->n_threads - 1) / p->n_threads * grain;
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->chunk = chunk;
    atomic_store(&p->pending, p->n_threads - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_chunk(p, 0);
    /* spin, then sleep, until every worker has finished its chunk */
    for (int i = 0; i < SPIN_PAUSES + SPIN_YIELDS && atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++)
        relax(i);
    if (atomic_load(&p->pending) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
