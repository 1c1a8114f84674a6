/* Core: dtype conversion (against the processor's own F16C/AVX512-BF16
 * conversions where present, and exhaustively for round trips), tensor
 * views, buffers, the thread pool, two devices in one process, and the
 * error contract (status + message, nothing leaked). */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/threadpool.h"
#include "harness.h"

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

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
    __builtin_cpu_init();
    if (__builtin_cpu_supports("f16c")) {
        int mism = 0;
        for (int i = 0; i < 2000000; i++) {
            uint32_t u = (uint32_t)t_rand_u64();
            if (i & 1) u = (u & 0x8fffffffu) | 0x38000000u; /* bias toward the f16 range */
            float f = bits_f32(u);
            uint16_t a = mlxn_f32_to_f16(f), b = hw_f32_to_f16(f);
            if (a != b && !(isnan(f))) mism++;
        }
        CHECK(mism == 0, "f32->f16 differs from F16C on %d inputs", mism);
    }
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

static void sum_task(void *arg, int64_t b, int64_t e, int thread) {
    int64_t *out = arg;
    (void)thread;
    for (int64_t i = b; i < e; i++) out[i] = i * 3;
}

static void test_threadpool(void) {
    mlxn_threadpool *pool = NULL;
    CHECK_OK(mlxn_threadpool_new(3, &pool));
    for (int rep = 0; rep < 200; rep++) {
        int64_t n = 1 + (int64_t)(t_rand_u64() % 5000);
        int64_t *v = malloc((size_t)n * sizeof *v);
        memset(v, 0xff, (size_t)n * sizeof *v);
        mlxn_parallel_for(pool, n, 1 + (int64_t)(t_rand_u64() % 8), sum_task, v);
        int ok = 1;
        for (int64_t i = 0; i < n; i++) ok &= v[i] == i * 3;
        CHECK(ok, "parallel_for n=%lld wrote wrong values", (long long)n);
        free(v);
    }
    mlxn_threadpool_free(pool);
    CHECK_FAILS(mlxn_threadpool_new(0, &pool), MLXN_ERR_INVALID_ARGUMENT);
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
    test_devices_and_tensors();
    test_cuda_device();
    return t_finish();
}
