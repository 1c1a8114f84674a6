/* Fork-join thread pool; see threadpool.h for the contract.
 *
 * How a job runs. The caller cuts [0, n) into chunks of whole grains (a
 * few per thread), publishes the job, and then every thread, the caller
 * included, claims chunks one at a time until none are left; the caller
 * returns when every chunk is done. Why chunks claimed at run time rather
 * than one fixed chunk per thread: a decode step issues ~150 short jobs
 * per token, and with fixed chunks each job waited for its slowest thread,
 * a worker that woke late (it was yielding or sleeping), was descheduled
 * (a VM, a busy desktop) or shared a core with its hyperthread twin. Now
 * the threads that are running take the work of the ones that are not, and
 * the caller never waits for a worker that has nothing left to do.
 *
 * The claim word. One 64-bit atomic holds the job's generation, its chunk
 * count and the next chunk to claim:
 *     bits 63..40 generation (wraps), 39..20 chunk count, 19..0 next chunk.
 * A claim is one fetch_add. Because the count and the generation come back
 * with the index, a thread that woke late cannot take a chunk of a job that
 * has moved on: what it claims belongs to the job the word names, and that
 * job's fields (fn, arg, n, chunk) stay put until all of its chunks are
 * done, which includes the one just claimed. A claim past the count only
 * bumps the index (at most once per thread and job: never into the count's
 * bits, since chunks are < 2^19 and threads <= 1024).
 *
 * Waiting. An idle thread polls the word: first pause instructions (a few
 * microseconds: catches the next job of a decode step at once), then
 * sched_yield (~1 ms in all on an idle core), then it sleeps on a condition
 * variable. Yielding rather than spinning matters when the machine is
 * busier than the pool: a spinning waiter would steal the core from the
 * very thread it waits for (measured: 2 threads on one free core fell from
 * 64 to 8 tokens/s of decode with a pure pause spin). The caller takes the
 * mutex to wake sleepers only when a thread sleeps: a counter of sleepers,
 * stored and read with sequentially consistent atomics on both sides, so
 * either the caller sees the sleeper or the sleeper sees the new job. The
 * caller waits for the last chunk the same way (spin, yield, then sleep
 * with a flag the finishing worker checks). */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define SPIN_PAUSES 64
#define SPIN_YIELDS 1000

/* Chunks per thread a job is cut into (when it has that many grains): more
   balance what threads that start late or run slow leave undone; fewer
   keep each thread's rows contiguous and the claims few. */
#define CHUNKS_PER_THREAD 4

#define GEN_SHIFT 40
#define COUNT_SHIFT 20
#define FIELD_MASK ((UINT64_C(1) << 20) - 1)
#define MAX_CHUNKS (INT64_C(1) << 19)

/* keeps the atomics that every claim or finish touches off the lines the job's fields sit on */
#define LINE 128

struct mlxn_threadpool {
    int n_threads;      /* including the caller's thread */
    pthread_t *workers; /* [n_threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* sleeping workers wait here for a new job */
    pthread_cond_t done; /* a sleeping caller waits here for the last chunk */
    /* the current job: written by the caller before the claim word names it */
    mlxn_task_fn fn;
    void *arg;
    int64_t n, chunk;
    uint64_t gen; /* the caller's generation counter (the word holds its low 24 bits) */
    _Alignas(LINE) _Atomic uint64_t claim; /* generation | chunk count | next chunk */
    _Alignas(LINE) atomic_int finished;    /* chunks of the current job done */
    _Alignas(LINE) atomic_int sleepers;    /* workers asleep on `wake` (or about to be) */
    atomic_int caller_sleeps;              /* the caller asleep on `done` (or about to be) */
    atomic_int stop;
};

typedef struct {
    mlxn_threadpool *pool;
    int index; /* 1 .. n_threads-1 */
} worker_arg;

static uint64_t word_gen(uint64_t w) { return w >> GEN_SHIFT; }
static int64_t word_count(uint64_t w) { return (int64_t)((w >> COUNT_SHIFT) & FIELD_MASK); }
static int64_t word_next(uint64_t w) { return (int64_t)(w & FIELD_MASK); }

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

/* Claim and run chunks of the job that the claim word names until none are
   left; returns that job's generation. */
static uint64_t run_chunks(mlxn_threadpool *p, int t) {
    for (;;) {
        const uint64_t w = atomic_fetch_add_explicit(&p->claim, 1, memory_order_acq_rel);
        const int64_t c = word_next(w);
        if (c >= word_count(w)) return word_gen(w);
        /* chunk c of job word_gen(w): its fields cannot change before this chunk is counted */
        const int64_t begin = c * p->chunk;
        const int64_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
        p->fn(p->arg, begin, end, t);
        if (atomic_fetch_add(&p->finished, 1) + 1 == word_count(w) && atomic_load(&p->caller_sleeps)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *worker_main(void *vp) {
    worker_arg *wa = vp;
    mlxn_threadpool *p = wa->pool;
    int t = wa->index;
    free(wa);
    uint64_t seen = 0; /* the generation of "no job yet" */
    for (;;) {
        int i = 0;
        while (word_gen(atomic_load_explicit(&p->claim, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_relaxed) && i < SPIN_PAUSES + SPIN_YIELDS)
            relax(i++);
        if (word_gen(atomic_load(&p->claim)) == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (word_gen(atomic_load(&p->claim)) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = run_chunks(p, t);
    }
}

mlxn_status mlxn_threadpool_new(int n_threads, mlxn_threadpool **out) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "thread pool: %d threads is out of range [1, 1024]",
                         n_threads);
    mlxn_threadpool *p = aligned_alloc(LINE, (sizeof *p + LINE - 1) / LINE * LINE);
    if (!p) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "thread pool: out of memory");
    memset(p, 0, sizeof *p);
    p->n_threads = n_threads;
    atomic_init(&p->claim, 0); /* generation 0, no chunks: nothing to claim */
    atomic_init(&p->finished, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_sleeps, 0);
    atomic_init(&p->stop, 0);
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
    const int64_t grains = (n + grain - 1) / grain;
    if (!p || p->n_threads == 1 || grains == 1) {
        fn(arg, 0, n, 0);
        return;
    }
    /* whole grains per chunk, enough chunks for CHUNKS_PER_THREAD each, never more than the word holds */
    const int64_t want = (int64_t)p->n_threads * CHUNKS_PER_THREAD;
    int64_t per = (grains + want - 1) / want;
    if ((grains + per - 1) / per > MAX_CHUNKS) per = (grains + MAX_CHUNKS - 1) / MAX_CHUNKS;
    const int64_t chunk = per * grain, count = (n + chunk - 1) / chunk;
    /* every chunk of the last job is done, so no thread reads these fields now */
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->chunk = chunk;
    p->gen = (p->gen + 1) & ((UINT64_C(1) << (64 - GEN_SHIFT)) - 1);
    atomic_store_explicit(&p->finished, 0, memory_order_relaxed);
    /* publishes the fields (release and more): a claim that reads this word reads them too */
    atomic_store(&p->claim, p->gen << GEN_SHIFT | (uint64_t)count << COUNT_SHIFT);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_chunks(p, 0);
    /* wait for the chunks other threads still run: spin, yield, then sleep */
    for (int i = 0; i < SPIN_PAUSES + SPIN_YIELDS && atomic_load_explicit(&p->finished, memory_order_acquire) < count;
         i++)
        relax(i);
    if (atomic_load(&p->finished) < count) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_sleeps, 1);
        while (atomic_load(&p->finished) < count) pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->caller_sleeps, 0);
        pthread_mutex_unlock(&p->mu);
    }
}
