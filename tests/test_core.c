/* Core: dtype conversion (against the processor's own F16C or aarch64 FCVT
 * conversions where present, and exhaustively for round trips), tensor
 * views, buffers, the thread pool, the samplers' float sorts (against
 * qsort), two devices in one process, and the error contract (status +
 * message, nothing leaked). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/sort.h"
#include "core/threadpool.h"
#include "harness.h"

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The processor's own f32 -> f16 conversion, to check ours against: F16C on
 * x86-64 (when the CPU has it), FCVT through __fp16 on aarch64 (always
 * there; rounds to nearest even under the default FPCR). Elsewhere there is
 * nothing to compare with and that check is left out. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_HW_F16 1
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
static int hw_f16_ok(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c");
}
#elif defined(__aarch64__) && defined(__GNUC__)
#define HAVE_HW_F16 1
static uint16_t hw_f32_to_f16(float f) {
    __fp16 h = (__fp16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}
static int hw_f16_ok(void) { return 1; }
#endif

static void test_f16(void) {
    /* every f16 survives f16 -> f32 -> f16 (NaNs stay NaN) */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mlxn_f16_to_f32((uint16_t)h);
        uint16_t back = mlxn_f32_to_f16(f);
        if (isnan(f) ? !isnan(mlxn_f16_to_f32(back)) : back != h) bad++;
    }
    CHECK(bad == 0, "f16 round trip: %d values changed", bad);
    /* f32 -> f16 agrees with the hardware conversion on random bit patterns */
#ifdef HAVE_HW_F16
    if (hw_f16_ok()) {
        int mism = 0;
        for (int i = 0; i < 2000000; i++) {
            uint32_t u = (uint32_t)t_rand_u64();
            if (i & 1) u = (u & 0x8fffffffu) | 0x38000000u; /* bias toward the f16 range */
            float f = bits_f32(u);
            uint16_t a = mlxn_f32_to_f16(f), b = hw_f32_to_f16(f);
            if (a != b && !(isnan(f))) mism++;
        }
        CHECK(mism == 0, "f32->f16 differs from the hardware conversion on %d inputs", mism);
    }
#endif
    CHECK(mlxn_f32_to_f16(1.0f) == 0x3c00, "f16(1)");
    CHECK(mlxn_f32_to_f16(65504.0f) == 0x7bff, "f16(65504)");
    CHECK(mlxn_f32_to_f16(65520.0f) == 0x7c00, "f16(65520) rounds to inf");
    CHECK(mlxn_f32_to_f16(5.9604644775390625e-08f) == 0x0001, "smallest f16 subnormal");
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mlxn_bf16_to_f32((uint16_t)h);
        uint16_t back = mlxn_f32_to_bf16(f);
        if (isnan(f) ? !isnan(mlxn_bf16_to_f32(back)) : back != h) bad++;
    }
    CHECK(bad == 0, "bf16 round trip: %d values changed", bad);
    /* ties go to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 */
    CHECK(mlxn_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 tie to even (down)");
    CHECK(mlxn_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 tie to even (up)");
    /* against exact rounding computed in double for random values */
    int mism = 0;
    for (int i = 0; i < 1000000; i++) {
        float f = t_randn() * ldexpf(1.0f, (int)(t_rand_u64() % 40) - 20);
        uint16_t b = mlxn_f32_to_bf16(f);
        double got = mlxn_bf16_to_f32(b);
        double lo = mlxn_bf16_to_f32((uint16_t)(b - 1)), hi = mlxn_bf16_to_f32((uint16_t)(b + 1));
        /* the result must be at least as close as both neighbours */
        if (fabs(got - f) > fabs(lo - f) || fabs(got - f) > fabs(hi - f)) mism++;
    }
    CHECK(mism == 0, "bf16 rounding not nearest on %d inputs", mism);
}

/* Records what parallel_for handed out: each item's visit count, and any
   range that is not whole grains or names a thread the pool lacks. */
typedef struct {
    int64_t n, grain;
    int threads;
    _Atomic int *visits; /* [n] */
    atomic_int bad_range, bad_thread;
} pool_probe;

static void probe_task(void *arg, int64_t b, int64_t e, int thread) {
    pool_probe *pr = arg;
    if (b < 0 || e > pr->n || b >= e || b % pr->grain || (e != pr->n && (e - b) % pr->grain))
        atomic_fetch_add(&pr->bad_range, 1);
    if (thread < 0 || thread >= pr->threads) atomic_fetch_add(&pr->bad_thread, 1);
    for (int64_t i = b; i < e && i < pr->n && i >= 0; i++) atomic_fetch_add_explicit(&pr->visits[i], 1, memory_order_relaxed);
}

/* One job of n items: every item exactly once, in whole grains, on threads that exist. */
static void check_pool_job(mlxn_threadpool *pool, int64_t n, int64_t grain, const char *when) {
    pool_probe pr = {.n = n, .grain = grain, .threads = mlxn_threadpool_size(pool)};
    pr.visits = calloc((size_t)n, sizeof *pr.visits);
    atomic_init(&pr.bad_range, 0);
    atomic_init(&pr.bad_thread, 0);
    mlxn_parallel_for(pool, n, grain, probe_task, &pr);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += atomic_load_explicit(&pr.visits[i], memory_order_relaxed) != 1;
    CHECK(wrong == 0 && !pr.bad_range && !pr.bad_thread,
          "parallel_for %s, %d threads, n=%lld grain=%lld: %lld items not visited once, %d ranges not whole grains, "
          "%d bad thread indices",
          when, pr.threads, (long long)n, (long long)grain, (long long)wrong, atomic_load(&pr.bad_range),
          atomic_load(&pr.bad_thread));
    free(pr.visits);
}

/* A task that waits (up to 2 s) until a second thread has joined the job. */
static void rendezvous_task(void *arg, int64_t b, int64_t e, int thread) {
    (void)b, (void)e;
    atomic_int *mask = arg;
    atomic_fetch_or(mask, 1 << (thread % 30));
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (__builtin_popcount((unsigned)atomic_load(mask)) >= 2) return;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) < 2.0);
}

static void test_threadpool(void) {
    const int sizes[] = {1, 3, 8};
    for (int s = 0; s < 3; s++) {
        mlxn_threadpool *pool = NULL;
        CHECK_OK(mlxn_threadpool_new(sizes[s], &pool));
        CHECK(mlxn_threadpool_size(pool) == sizes[s], "pool size");
        /* back to back, as a decode step issues them: workers catch jobs while they spin */
        for (int rep = 0; rep < 300; rep++)
            check_pool_job(pool, 1 + (int64_t)(t_rand_u64() % 5000), 1 + (int64_t)(t_rand_u64() % 8), "back to back");
        /* with pauses longer than the workers' spin: they sleep, and each job must wake them */
        for (int rep = 0; rep < 4; rep++) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
            check_pool_job(pool, 1 + (int64_t)(t_rand_u64() % 5000), 1 + (int64_t)(t_rand_u64() % 8), "after a sleep");
        }
        if (sizes[s] > 1) { /* a job wakes sleeping workers: the caller alone cannot finish this one early */
            struct timespec ts = {0, 20 * 1000 * 1000}; /* longer than any worker spins or yields */
            nanosleep(&ts, NULL);
            atomic_int mask;
            atomic_init(&mask, 0);
            mlxn_parallel_for(pool, 2, 1, rendezvous_task, &mask);
            CHECK(__builtin_popcount((unsigned)atomic_load(&mask)) >= 2,
                  "parallel_for after a sleep: no worker joined the job in 2 s (%d threads)", sizes[s]);
        }
        /* more grains than the claim word counts chunks (2^19): chunks of several grains */
        check_pool_job(pool, 1500007, 1, "with 1.5M grains");
        mlxn_threadpool_free(pool);
    }
    mlxn_threadpool *pool = NULL;
    CHECK_FAILS(mlxn_threadpool_new(0, &pool), MLXN_ERR_INVALID_ARGUMENT);
}

static int cmp_f32_asc(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int cmp_pair_desc(const void *a, const void *b) {
    const mlxn_f32_id *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The radix sorts against qsort: the same values in the same order (the pairs bit for bit), on
   vocabulary-sized inputs with -inf, both zeros, denormals, huge values and many ties; and the radix
   select's k-th largest against the sorted array's value at n - k, bit for bit, for k at both ends,
   the middle and random places. */
static void test_sorts(void) {
    const int32_t sizes[] = {0, 1, 2, 3, 17, 1000, 49152, 262147};
    for (int si = 0; si < 8; si++) {
        const int32_t n = sizes[si];
        float *x = malloc((size_t)(n + 1) * sizeof *x), *ref = malloc((size_t)(n + 1) * sizeof *ref);
        float *tmp = malloc((size_t)(n + 1) * sizeof *tmp);
        mlxn_f32_id *a = malloc((size_t)(n + 1) * sizeof *a), *aref = malloc((size_t)(n + 1) * sizeof *aref);
        mlxn_f32_id *atmp = malloc((size_t)(n + 1) * sizeof *atmp);
        for (int64_t i = 0; i < n; i++) {
            const uint64_t r = t_rand_u64() % 16;
            float v = t_randn() * 8.0f;
            if (r == 0) v = -INFINITY;
            else if (r == 1) v = 0.0f;
            else if (r == 2) v = -0.0f;
            else if (r == 3) v = roundf(v); /* ties */
            else if (r == 4) v = ldexpf(t_randn(), -140); /* denormal */
            else if (r == 5) v = ldexpf(t_randn(), 120);
            x[i] = ref[i] = v;
            a[i] = aref[i] = (mlxn_f32_id){v, (int32_t)i};
        }
        float *orig = malloc((size_t)(n + 1) * sizeof *orig);
        memcpy(orig, x, (size_t)n * sizeof *x);
        mlxn_sort_f32_ascending(x, tmp, n);
        qsort(ref, (size_t)n, sizeof *ref, cmp_f32_asc);
        int32_t ks[8] = {1, 2, n / 2 + 1, n - 1, n, 0, 0, 0};
        for (int j = 5; j < 8; j++) ks[j] = 1 + (int32_t)(t_rand_u64() % (uint64_t)(n > 0 ? n : 1));
        int64_t sel_bad = 0;
        for (int j = 0; j < 8 && n > 0; j++) {
            if (ks[j] < 1 || ks[j] > n) continue;
            for (int64_t i = 0; i < n; i++) tmp[i] = NAN; /* scratch poisoned */
            const float v = mlxn_select_f32_kth_largest(orig, tmp, n, ks[j]);
            sel_bad += memcmp(&v, &x[n - ks[j]], sizeof v) != 0;
        }
        CHECK(sel_bad == 0, "select_f32_kth_largest, n=%lld: %lld of 8 ranks differ from the sort's value",
              (long long)n, (long long)sel_bad);
        free(orig);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += !(x[i] == ref[i] || (x[i] != x[i] && ref[i] != ref[i]));
        for (int64_t i = 1; i < n; i++) bad += x[i - 1] > x[i];
        CHECK(bad == 0, "sort_f32_ascending, n=%lld: %lld positions differ from qsort's", (long long)n, (long long)bad);
        mlxn_sort_f32_id_descending(a, atmp, n);
        qsort(aref, (size_t)n, sizeof *aref, cmp_pair_desc);
        CHECK(n == 0 || memcmp(a, aref, (size_t)n * sizeof *a) == 0,
              "sort_f32_id_descending, n=%lld: not qsort's order (value descending, then id)", (long long)n);
        free(x), free(ref), free(tmp), free(a), free(aref), free(atmp);
    }
}

static void test_devices_and_tensors(void) {
    mlxn_device *a = t_cpu_device(2, MLXN_CPU_ISA_AUTO), *b = t_cpu_device(1, MLXN_CPU_ISA_SCALAR);
    CHECK(a && b && a != b, "two CPU devices");
    if (!a || !b) return;
    CHECK(mlxn_device_threads(a) == 2 && mlxn_device_threads(b) == 1, "thread counts");
    CHECK(strstr(mlxn_device_name(b), "scalar") != NULL, "isa cap shows in name: %s", mlxn_device_name(b));

    int64_t shape[2] = {3, 5};
    mlxn_tensor t;
    CHECK_OK(mlxn_tensor_alloc(a, MLXN_DTYPE_F32, 2, shape, &t));
    CHECK(mlxn_tensor_numel(&t) == 15 && mlxn_tensor_nbytes(&t) == 60, "numel/nbytes");
    CHECK(mlxn_tensor_is_contiguous(&t), "fresh tensor is contiguous");
    char d[64];
    CHECK(strcmp(mlxn_tensor_describe(&t, d, sizeof d), "f32[3, 5]") == 0, "describe: %s", d);
    float src[15], dst[15];
    for (int i = 0; i < 15; i++) src[i] = (float)i;
    CHECK_OK(mlxn_buffer_write(t.buf, 0, src, sizeof src));
    CHECK_OK(mlxn_buffer_read(t.buf, 0, dst, sizeof dst));
    CHECK(memcmp(src, dst, sizeof src) == 0, "buffer round trip");
    CHECK_FAILS(mlxn_buffer_write(t.buf, 8, src, sizeof src), MLXN_ERR_INVALID_ARGUMENT);

    mlxn_tensor v;
    int64_t big[2] = {4, 5};
    CHECK_FAILS(mlxn_tensor_view(t.buf, MLXN_DTYPE_F32, 2, big, 0, &v), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_tensor_view(t.buf, MLXN_DTYPE_COUNT, 2, shape, 0, &v), MLXN_ERR_DTYPE);
    int64_t row[1] = {5};
    CHECK_OK(mlxn_tensor_view(t.buf, MLXN_DTYPE_F32, 1, row, 40, &v));
    CHECK(((float *)mlxn_tensor_host(&v))[0] == 10.0f, "view at byte offset");

    /* a tensor of device a used on device b's stream is refused by name */
    mlxn_tensor o;
    CHECK_OK(mlxn_tensor_alloc(b, MLXN_DTYPE_F32, 2, shape, &o));
    CHECK_FAILS(mlxn_silu(mlxn_device_stream(b), &t, &o), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(mlxn_last_error(), "silu") != NULL, "message names the op: %s", mlxn_last_error());
    mlxn_tensor_release(&o);
    mlxn_tensor_release(&t);

    mlxn_device_params p;
    CHECK_OK(mlxn_device_parse("cuda:3", &p));
    CHECK(p.kind == MLXN_DEVICE_CUDA && p.index == 3, "parse cuda:3");
    CHECK_FAILS(mlxn_device_parse("gpu", &p), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_device_free(a);
    mlxn_device_free(b);
}

static void test_cuda_device(void) {
    mlxn_device_params p = {.kind = MLXN_DEVICE_CUDA};
    mlxn_device *dev = NULL;
    mlxn_status st = mlxn_device_new(&p, &dev);
    /* without a GPU (or without CUDA in the build) this is a clean DEVICE error */
    CHECK(st == MLXN_OK || (st == MLXN_ERR_DEVICE && mlxn_last_error()[0]), "cuda open: %s", mlxn_last_error());
    if (st != MLXN_OK) {
        printf("cuda device: skipped: no CUDA device (%s)\n", mlxn_last_error());
    }
    mlxn_device_free(dev);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_core");
    test_f16();
    test_bf16();
    test_threadpool();
    test_sorts();
    test_devices_and_tensors();
    test_cuda_device();
    return t_finish();
}
