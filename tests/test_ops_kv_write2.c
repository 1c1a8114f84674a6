/* mlxn_kv_write2 on the CPU: keys and values appended at one slot in one
 * call. Over the cases of kv_write2_cases.h (every key/value cache dtype
 * pair, strided sources, padded caches, ranks 2 to 4, steps and chunks,
 * pairs of different shapes, an empty pair) at the first, a random and the
 * last slot both fit: both caches byte for byte against the scalar
 * reference written here (every other byte keeps its poison) and against
 * two mlxn_kv_write calls. A decode wrapping around a ring. A slot that
 * does not fit one pair or the other: an error naming the op and the slot,
 * and neither cache written. Bad arguments: a clear status whose message
 * names the argument. */
#include "kv_write2_cases.h"

/* Case c at `slot` fused and as two kv_writes against the reference. */
static void check_case(mlxn_device *dev, const kv2_case *c, int32_t slot) {
    void *(*srcs)[2] = kv2_sources(c, 1);
    void *want[2], *got[2], *two[2];
    kv2_expect(c, 1, &slot, srcs, want);
    mlxn_status rc = kv2_run(dev, c, 1, 1, &slot, srcs, got);
    CHECK(rc == MLXN_OK, "%s slot %d: %s", c->label, slot, mlxn_last_error());
    CHECK(kv2_same(c, got, want), "%s slot %d: caches differ from the reference", c->label, slot);
    rc = kv2_run(dev, c, 0, 1, &slot, srcs, two);
    CHECK(rc == MLXN_OK, "%s slot %d (two kv_writes): %s", c->label, slot, mlxn_last_error());
    CHECK(kv2_same(c, got, two), "%s slot %d: caches differ from two kv_writes", c->label, slot);
    for (int j = 0; j < 2; j++) free(want[j]), free(got[j]), free(two[j]);
    kv2_free_sources(srcs, 1);
}

static void ring(mlxn_device *dev) {
    enum { N = 13 };
    int32_t slots[N];
    kv2_case c = kv2_ring_case(5, slots, N);
    void *(*srcs)[2] = kv2_sources(&c, N);
    void *want[2], *got[2], *two[2];
    kv2_expect(&c, N, slots, srcs, want);
    CHECK(kv2_run(dev, &c, 1, N, slots, srcs, got) == MLXN_OK, "%s: %s", c.label, mlxn_last_error());
    CHECK(kv2_run(dev, &c, 0, N, slots, srcs, two) == MLXN_OK, "%s (two kv_writes): %s", c.label, mlxn_last_error());
    CHECK(kv2_same(&c, got, want), "%s: caches differ from the reference", c.label);
    CHECK(kv2_same(&c, got, two), "%s: caches differ from two kv_writes", c.label);
    for (int j = 0; j < 2; j++) free(want[j]), free(got[j]), free(two[j]);
    kv2_free_sources(srcs, N);
}

/* A bad argument: the status and a message naming `what`. */
#define CHECK_BAD(expr, want, what)                                                                                   \
    do {                                                                                                              \
        mlxn_clear_error();                                                                                           \
        mlxn_status st_ = (expr);                                                                                     \
        CHECK(st_ == (want) && strstr(mlxn_last_error(), "kv_write2") && strstr(mlxn_last_error(), what),             \
              "%s -> %s (wanted %s naming %s): '%s'", #expr, mlxn_status_str(st_), mlxn_status_str(want), what,      \
              mlxn_last_error());                                                                                     \
    } while (0)

static void bad_args(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t ss[3] = {2, 1, 8}, ds[3] = {2, 5, 8}, dw[3] = {2, 5, 9}, dsmall[3] = {2, 2, 8}, big[3] = {4, 5, 8};
    int64_t one = 1, two = 2, s2[2] = {1, 8};
    mlxn_tensor ks, vs, kd, vd, vwide, vsmall, slot, slot2, si8, sidx, k2, both;
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, ss, &ks));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, ss, &vs));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_BF16, 3, ds, &kd));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F16, 3, ds, &vd));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, dw, &vwide));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, dsmall, &vsmall));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_I32, 1, &one, &slot));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_I32, 1, &two, &slot2));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_I8, 1, &one, &si8));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_I32, 1, &one, &sidx));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 2, s2, &k2));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, big, &both)); /* two caches in one buffer */
    mlxn_tensor lo = both, hi = both, mid = both; /* heads [0, 2), [2, 4), [1, 3) as [2, 5, 8] */
    lo.shape[0] = hi.shape[0] = mid.shape[0] = 2;
    hi.offset += 2 * 5 * 8 * sizeof(float);
    mid.offset += 5 * 8 * sizeof(float);
    int32_t zero = 0;
    CHECK_OK(mlxn_buffer_write(slot.buf, slot.offset, &zero, sizeof zero));

    CHECK_OK(mlxn_kv_write2(s, &ks, &vs, &slot, &kd, &vd)); /* the good call these variations break */
    CHECK_OK(mlxn_kv_write2(s, &ks, &vs, &slot, &lo, &hi)); /* two caches side by side in one buffer */
    CHECK_BAD(mlxn_kv_write2(NULL, &ks, &vs, &slot, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "stream");
    CHECK_BAD(mlxn_kv_write2(s, NULL, &vs, &slot, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "k_src");
    CHECK_BAD(mlxn_kv_write2(s, &ks, NULL, &slot, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "v_src");
    CHECK_BAD(mlxn_kv_write2(s, &ks, &vs, NULL, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "slot");
    CHECK_BAD(mlxn_kv_write2(s, &ks, &vs, &slot, NULL, &vd), MLXN_ERR_INVALID_ARGUMENT, "k_dst");
    CHECK_BAD(mlxn_kv_write2(s, &ks, &vs, &slot, &kd, NULL), MLXN_ERR_INVALID_ARGUMENT, "v_dst");
    CHECK_BAD(mlxn_kv_write2(s, &slot, &vs, &slot, &kd, &vd), MLXN_ERR_DTYPE, "k_src");
    CHECK_BAD(mlxn_kv_write2(s, &ks, &vs, &slot, &kd, &sidx), MLXN_ERR_DTYPE, "v_dst");
    CHECK_BAD(mlxn_kv_write2(s, &ks, &vs, &slot, &kd, &vwide), MLXN_ERR_SHAPE, "v_dst");
    CHECK_BAD(mlxn_kv_write2(s, &ks, &vs, &slot, &vwide, &vd), MLXN_ERR_SHAPE, "k_dst");
    CHECK_BAD(mlxn_kv_write2(s, &ks, &lo, &slot, &kd, &vsmall), MLXN_ERR_SHAPE, "v_src"); /* 5 rows into 2 */
    CHECK_BAD(mlxn_kv_write2(s, &ks, &k2, &slot, &kd, &vd), MLXN_ERR_SHAPE, "v_dst");   /* ranks differ */
    CHECK_BAD(mlxn_kv_write2(s, &ks, &vs, &slot2, &kd, &vd), MLXN_ERR_SHAPE, "slot");
    CHECK_BAD(mlxn_kv_write2(s, &ks, &vs, &si8, &kd, &vd), MLXN_ERR_DTYPE, "slot");
    CHECK_BAD(mlxn_kv_write2(s, &ks, &vs, &slot, &kd, &kd), MLXN_ERR_INVALID_ARGUMENT, "v_dst overlaps k_dst");
    CHECK_BAD(mlxn_kv_write2(s, &ks, &vs, &slot, &lo, &mid), MLXN_ERR_INVALID_ARGUMENT, "v_dst overlaps k_dst");
    CHECK_BAD(mlxn_kv_write2(s, &ks, &lo, &slot, &mid, &vd), MLXN_ERR_INVALID_ARGUMENT, "k_dst overlaps v_src");
    CHECK_BAD(mlxn_kv_write2(s, &lo, &vs, &slot, &mid, &vd), MLXN_ERR_INVALID_ARGUMENT, "k_dst overlaps k_src");
    CHECK_BAD(mlxn_kv_write2(s, &lo, &vs, &slot, &kd, &mid), MLXN_ERR_INVALID_ARGUMENT, "v_dst overlaps k_src");
    mlxn_tensor zs = kd; /* a zero stride on a cache axis */
    zs.strides[0] = 0;
    CHECK_BAD(mlxn_kv_write2(s, &ks, &vs, &slot, &zs, &vd), MLXN_ERR_SHAPE, "k_dst has a zero stride");
    mlxn_tensor *all[] = {&ks, &vs, &kd, &vd, &vwide, &vsmall, &slot, &slot2, &si8, &sidx, &k2, &both};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mlxn_tensor_release(all[i]);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_ops_kv_write2");
    mlxn_device *cpu = t_cpu_device(2, MLXN_CPU_ISA_AUTO);
    if (!cpu) return t_finish();
    for (int ci = 0; ci < KV2_N_CASES; ci++) {
        kv2_case c = kv2_make(ci);
        int32_t last = (int32_t)kv2_last_slot(&c), slots[3] = {0, (int32_t)kv2_rand(0, last), last};
        for (int k = 0; k < 3; k++) check_case(cpu, &c, slots[k]);
    }
    ring(cpu);
    kv2_bad_slots(cpu);
    bad_args(cpu);
    mlxn_device_free(cpu);
    return t_finish();
}
