/* mlxn_kv_write2 on a GPU (today: CUDA), over the cases of
 * kv_write2_cases.h (every key/value cache dtype pair, strided sources,
 * padded caches, ranks 2 to 4, steps and chunks, pairs of different
 * shapes, an empty pair) at the first, a random and the last slot both
 * fit: the one-kernel write gives byte for byte the caches of two
 * mlxn_kv_write calls on the same GPU, of mlxn_kv_write2 on the CPU and of
 * the scalar reference (every other byte keeps its poison). A decode
 * wrapping around a ring, the same three ways. A slot that misses either
 * pair: the next stream sync reports it naming the op and the slot, once,
 * and neither cache is written. A tensor of another device is refused.
 * Without a GPU: "skipped: no CUDA device" (exit 77). */
#include "kv_write2_cases.h"

/* Case c for n slots on the GPU (fused and two kv_writes) and the CPU. */
static void compare(mlxn_device *gpu, mlxn_device *cpu, const kv2_case *c, int n, const int32_t *slots) {
    void *(*srcs)[2] = kv2_sources(c, n);
    void *want[2], *got[2], *two[2], *host[2];
    kv2_expect(c, n, slots, srcs, want);
    mlxn_status rc = kv2_run(gpu, c, 1, n, slots, srcs, got);
    CHECK(rc == MLXN_OK, "%s slot %d: %s", c->label, slots[0], mlxn_last_error());
    rc = kv2_run(gpu, c, 0, n, slots, srcs, two);
    CHECK(rc == MLXN_OK, "%s slot %d (two kv_writes): %s", c->label, slots[0], mlxn_last_error());
    rc = kv2_run(cpu, c, 1, n, slots, srcs, host);
    CHECK(rc == MLXN_OK, "%s slot %d (cpu): %s", c->label, slots[0], mlxn_last_error());
    CHECK(kv2_same(c, got, two), "%s slot %d: caches differ from two kv_writes on the GPU", c->label, slots[0]);
    CHECK(kv2_same(c, got, host), "%s slot %d: caches differ from the CPU's", c->label, slots[0]);
    CHECK(kv2_same(c, got, want), "%s slot %d: caches differ from the reference", c->label, slots[0]);
    for (int j = 0; j < 2; j++) free(want[j]), free(got[j]), free(two[j]), free(host[j]);
    kv2_free_sources(srcs, n);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_backend_kv_write2");
    mlxn_device *gpu = t_cuda_device();
    if (!gpu) return t_skip("no CUDA device");
    mlxn_device *cpu = t_cpu_device(2, MLXN_CPU_ISA_AUTO);
    printf("%s vs %s\n", mlxn_device_name(gpu), mlxn_device_name(cpu));
    for (int ci = 0; ci < KV2_N_CASES; ci++) {
        kv2_case c = kv2_make(ci);
        int32_t last = (int32_t)kv2_last_slot(&c), slots[3] = {0, (int32_t)kv2_rand(0, last), last};
        for (int k = 0; k < 3; k++) compare(gpu, cpu, &c, 1, &slots[k]);
    }
    enum { N = 13 };
    int32_t ring[N];
    kv2_case rc = kv2_ring_case(5, ring, N);
    compare(gpu, cpu, &rc, N, ring);
    kv2_bad_slots(gpu);
    /* a CPU tensor given to the GPU's stream */
    int64_t ss[3] = {2, 1, 8}, ds[3] = {2, 4, 8}, one = 1;
    mlxn_tensor ks, vs, kd, vd, slot;
    CHECK_OK(mlxn_tensor_alloc(gpu, MLXN_DTYPE_F32, 3, ss, &ks));
    CHECK_OK(mlxn_tensor_alloc(cpu, MLXN_DTYPE_F32, 3, ss, &vs));
    CHECK_OK(mlxn_tensor_alloc(gpu, MLXN_DTYPE_BF16, 3, ds, &kd));
    CHECK_OK(mlxn_tensor_alloc(gpu, MLXN_DTYPE_BF16, 3, ds, &vd));
    CHECK_OK(mlxn_tensor_alloc(gpu, MLXN_DTYPE_I32, 1, &one, &slot));
    mlxn_clear_error();
    mlxn_status st = mlxn_kv_write2(mlxn_device_stream(gpu), &ks, &vs, &slot, &kd, &vd);
    CHECK(st == MLXN_ERR_INVALID_ARGUMENT && strstr(mlxn_last_error(), "v_src"), "v_src on the CPU: %s (%s)",
          mlxn_status_str(st), mlxn_last_error());
    mlxn_tensor *all[] = {&ks, &vs, &kd, &vd, &slot};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mlxn_tensor_release(all[i]);
    mlxn_device_free(cpu);
    mlxn_device_free(gpu);
    return t_finish();
}
