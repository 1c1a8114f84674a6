/* mlxn_rope_kv_write on the CPU: a decode step's rope of q and k with k
 * and v appended to their caches, in one call. Over the cases of
 * rope_kv_cases.h at the first, a random and the last slot: q_out and both
 * caches byte for byte those of mlxn_rope, mlxn_rope and mlxn_kv_write2
 * (every other byte keeps its poison). A slot that misses either cache:
 * an error naming the op and the slot, and nothing written, q_out
 * included. Bad arguments: a clear status whose message names the
 * argument. */
#include "rope_kv_cases.h"

static void cases(mlxn_device *dev) {
    for (int ci = 0; ci < RK_N_CASES; ci++) {
        rk_case c = rk_make(ci);
        int32_t last = (int32_t)kv2_last_slot(&c.kv), slots[3] = {0, (int32_t)kv2_rand(0, last), last};
        for (int k = 0; k < 3; k++) {
            rk_inputs in = rk_inputs_new(&c);
            rk_outputs got, want;
            mlxn_status rc = rk_run(dev, &c, 1, slots[k], &in, &got);
            CHECK(rc == MLXN_OK, "%s slot %d: %s", c.label, slots[k], mlxn_last_error());
            rc = rk_run(dev, &c, 0, slots[k], &in, &want);
            CHECK(rc == MLXN_OK, "%s slot %d (apart): %s", c.label, slots[k], mlxn_last_error());
            CHECK(rk_same(&c, &got, &want), "%s slot %d: outputs differ from rope + rope + kv_write2", c.label,
                  slots[k]);
            rk_outputs_free(&got);
            rk_outputs_free(&want);
            rk_inputs_free(&in);
        }
    }
}

/* Slots that miss: below 0, past the last slot of the key cache (the
 * value cache is longer), past the last of the value cache (shorter). */
static void bad_slots(mlxn_device *dev) {
    for (int swap = 0; swap < 2; swap++) {
        rk_case c = rk_make(9); /* rank 3: [heads, rows, D] */
        c.kv.p[swap].cap += 2;
        int32_t lk = (int32_t)(c.kv.p[0].cap - kv2_T(&c.kv.p[0])), lv = (int32_t)(c.kv.p[1].cap - kv2_T(&c.kv.p[1]));
        kv2_side_make(&c.kv.p[0], c.kv.p[0].nd, c.kv.p[0].shape[c.kv.p[0].nd - 3], kv2_T(&c.kv.p[0]),
                      c.kv.p[0].shape[c.kv.p[0].nd - 1], c.kv.p[0].cap, c.kv.p[0].layout, c.kv.p[0].padded,
                      c.kv.p[0].sdt, c.kv.p[0].ddt);
        kv2_side_make(&c.kv.p[1], c.kv.p[1].nd, c.kv.p[1].shape[c.kv.p[1].nd - 3], kv2_T(&c.kv.p[1]),
                      c.kv.p[1].shape[c.kv.p[1].nd - 1], c.kv.p[1].cap, c.kv.p[1].layout, c.kv.p[1].padded,
                      c.kv.p[1].sdt, c.kv.p[1].ddt);
        int32_t bads[3] = {-1, lk + 1, lv + 1};
        for (int k = 0; k < 3; k++) {
            rk_inputs in = rk_inputs_new(&c);
            rk_outputs got;
            mlxn_clear_error();
            mlxn_status rc = rk_run(dev, &c, 1, bads[k], &in, &got);
            char needle[48];
            snprintf(needle, sizeof needle, "rope_kv_write: slot %d ", bads[k]);
            CHECK(rc == MLXN_ERR_INVALID_ARGUMENT && strstr(mlxn_last_error(), needle), "%s slot %d: %s (%s)",
                  c.label, bads[k], mlxn_status_str(rc), mlxn_last_error());
            int q_poisoned = 1;
            for (int64_t i = 0; i < kv2_numel(&c.q); i++) q_poisoned &= isnan(got.q[i]);
            CHECK(q_poisoned && kv2_untouched(&c.kv, got.cache), "%s slot %d: something was written", c.label,
                  bads[k]);
            rk_outputs_free(&got);
            rk_inputs_free(&in);
        }
    }
}

#define CHECK_BAD(expr, want, what)                                                                                   \
    do {                                                                                                              \
        mlxn_clear_error();                                                                                           \
        mlxn_status st_ = (expr);                                                                                     \
        CHECK(st_ == (want) && strstr(mlxn_last_error(), "rope_kv_write") && strstr(mlxn_last_error(), what),         \
              "%s -> %s (wanted %s naming %s): '%s'", #expr, mlxn_status_str(st_), mlxn_status_str(want), what,      \
              mlxn_last_error());                                                                                     \
    } while (0)

static void bad_args(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t qs[3] = {4, 1, 8}, ks[3] = {2, 1, 8}, ds[3] = {2, 6, 8}, one = 1, k6[3] = {2, 1, 6};
    mlxn_tensor q, qo, k, v, kd, vd, slot, kbf, qo_small, kshort, off2, fr;
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, qs, &q));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, qs, &qo));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, ks, &k));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, ks, &v));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_BF16, 3, ds, &kd));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_BF16, 3, ds, &vd));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_I32, 1, &one, &slot));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_BF16, 3, ks, &kbf));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, ks, &qo_small));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, k6, &kshort));
    int64_t two = 2, four = 4;
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_I32, 1, &two, &off2));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 1, &four, &fr));
    int32_t zero = 0;
    CHECK_OK(mlxn_buffer_write(slot.buf, slot.offset, &zero, sizeof zero));
    mlxn_rope_params p = {.dims = 8, .base = 10000.0f, .scale = 1.0f}, podd = p, pwide = p, poff = p, pfr = p;
    podd.dims = 7;
    pwide.dims = 10;
    poff.offset_tensor = &off2;
    pfr.freqs = &fr;
    CHECK_OK(mlxn_rope_kv_write(s, &q, &k, &v, &p, &slot, &qo, &kd, &vd)); /* the good call */
    CHECK_OK(mlxn_rope_kv_write(s, &q, &k, &v, &pfr, &slot, &qo, &kd, &vd));
    CHECK_BAD(mlxn_rope_kv_write(NULL, &q, &k, &v, &p, &slot, &qo, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "stream");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, NULL, &slot, &qo, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "params");
    CHECK_BAD(mlxn_rope_kv_write(s, NULL, &k, &v, &p, &slot, &qo, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "q");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, NULL, &v, &p, &slot, &qo, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "k");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, NULL, &p, &slot, &qo, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "v");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &p, NULL, &qo, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "slot");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &p, &slot, NULL, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "q_out");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &p, &slot, &qo, NULL, &vd), MLXN_ERR_INVALID_ARGUMENT, "k_dst");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &p, &slot, &qo, &kd, NULL), MLXN_ERR_INVALID_ARGUMENT, "v_dst");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &kbf, &v, &p, &slot, &qo, &kd, &vd), MLXN_ERR_DTYPE, "k has dtype");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &p, &slot, &qo_small, &kd, &vd), MLXN_ERR_SHAPE, "q_out");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &p, &slot, &qo, &q, &vd), MLXN_ERR_SHAPE, "k_dst");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &podd, &slot, &qo, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "dims");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &pwide, &slot, &qo, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT, "dims");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &poff, &slot, &qo, &kd, &vd), MLXN_ERR_SHAPE, "offset_tensor");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &p, &off2, &qo, &kd, &vd), MLXN_ERR_SHAPE, "slot");
    /* rope rotates p.dims of k's columns too: a k narrower than dims */
    mlxn_tensor kd6 = kd;
    kd6.shape[2] = 6;
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &kshort, &v, &p, &slot, &qo, &kd6, &vd), MLXN_ERR_INVALID_ARGUMENT, "dims");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &p, &slot, &q, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT,
              "q_out overlaps q");
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &v, &p, &slot, &qo, &kd, &kd), MLXN_ERR_INVALID_ARGUMENT,
              "v_dst overlaps k_dst");
    mlxn_tensor kd1 = kd; /* the first slot of the key cache as the values */
    kd1.shape[1] = 1;
    CHECK_BAD(mlxn_rope_kv_write(s, &q, &k, &kd1, &p, &slot, &qo, &kd, &vd), MLXN_ERR_INVALID_ARGUMENT,
              "k_dst overlaps v");
    mlxn_tensor *all[] = {&q, &qo, &k, &v, &kd, &vd, &slot, &kbf, &qo_small, &kshort, &off2, &fr};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mlxn_tensor_release(all[i]);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_ops_rope_kv");
    mlxn_device *cpu = t_cpu_device(2, MLXN_CPU_ISA_AUTO);
    if (!cpu) return t_finish();
    cases(cpu);
    bad_slots(cpu);
    bad_args(cpu);
    mlxn_device_free(cpu);
    return t_finish();
}
