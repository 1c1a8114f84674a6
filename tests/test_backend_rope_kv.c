/* mlxn_rope_kv_write on a GPU (today: CUDA), over the cases of
 * rope_kv_cases.h at the first, a random and the last slot: the one-kernel
 * op gives byte for byte the q_out and caches of mlxn_rope, mlxn_rope and
 * mlxn_kv_write2 on the same GPU (every other byte keeps its poison), and
 * agrees with the CPU's within the rounding of the GPU's sin/cos (the GPU
 * rope's own tolerance in test_backend_ops; a 16-bit cache may round a
 * value the other way). A slot that misses either cache: the next stream
 * sync reports it naming the op and the slot, once, and nothing is
 * written. Without a GPU: "skipped: no CUDA device" (exit 77). */
#include "rope_kv_cases.h"

#define Q_NMSE 1e-9      /* f32 rope on the GPU vs the CPU (test_backend_ops: up to 1e-9 at 10^5) */
#define CACHE_NMSE 1e-5  /* the same values rounded to bf16/f16: an ulp (2^-8) now and then */

static void compare(mlxn_device *gpu, mlxn_device *cpu, const rk_case *c, int32_t slot, double *worst) {
    rk_inputs in = rk_inputs_new(c);
    rk_outputs got, apart, host;
    mlxn_status rc = rk_run(gpu, c, 1, slot, &in, &got);
    CHECK(rc == MLXN_OK, "%s slot %d: %s", c->label, slot, mlxn_last_error());
    rc = rk_run(gpu, c, 0, slot, &in, &apart);
    CHECK(rc == MLXN_OK, "%s slot %d (apart): %s", c->label, slot, mlxn_last_error());
    rc = rk_run(cpu, c, 1, slot, &in, &host);
    CHECK(rc == MLXN_OK, "%s slot %d (cpu): %s", c->label, slot, mlxn_last_error());
    CHECK(rk_same(c, &got, &apart), "%s slot %d: outputs differ from rope + rope + kv_write2 on the GPU", c->label,
          slot);
    size_t nq = (size_t)kv2_numel(&c->q);
    double e = t_nmse(host.q, got.q, nq);
    if (e > worst[0]) worst[0] = e;
    CHECK(e <= Q_NMSE, "%s slot %d: q_out NMSE %.3g vs the CPU", c->label, slot, e);
    for (int j = 0; j < 2; j++) {
        const kv2_side *sd = &c->kv.p[j];
        size_t n = (size_t)kv2_numel(sd);
        float *a = malloc((n ? n : 1) * sizeof(float)), *b = malloc((n ? n : 1) * sizeof(float));
        rk_written(sd, host.cache[j], slot, a);
        rk_written(sd, got.cache[j], slot, b);
        e = t_nmse(a, b, n);
        if (e > worst[1]) worst[1] = e;
        CHECK(e <= (sd->ddt == MLXN_DTYPE_F32 ? Q_NMSE : CACHE_NMSE), "%s slot %d: %s cache NMSE %.3g vs the CPU",
              c->label, slot, j ? "value" : "key", e);
        free(a), free(b);
    }
    rk_outputs_free(&got);
    rk_outputs_free(&apart);
    rk_outputs_free(&host);
    rk_inputs_free(&in);
}

static void bad_slots(mlxn_device *gpu) {
    rk_case c = rk_make(9); /* rank 3 */
    c.kv.p[1].cap += 2;     /* the value cache longer */
    kv2_side *v = &c.kv.p[1];
    kv2_side_make(v, 3, v->shape[0], v->shape[1], v->shape[2], v->cap, v->layout, v->padded, v->sdt, v->ddt);
    int32_t lk = (int32_t)(c.kv.p[0].cap - kv2_T(&c.kv.p[0])), lv = (int32_t)(v->cap - kv2_T(v));
    int32_t bads[3] = {-1, lk + 1, lv + 1};
    for (int k = 0; k < 3; k++) {
        rk_inputs in = rk_inputs_new(&c);
        rk_outputs got;
        mlxn_clear_error();
        mlxn_status rc = rk_run(gpu, &c, 1, bads[k], &in, &got);
        char needle[48];
        snprintf(needle, sizeof needle, "rope_kv_write: slot %d ", bads[k]);
        CHECK(rc == MLXN_ERR_INVALID_ARGUMENT && strstr(mlxn_last_error(), needle), "%s slot %d: %s (%s)", c.label,
              bads[k], mlxn_status_str(rc), mlxn_last_error());
        int q_poisoned = 1;
        for (int64_t i = 0; i < kv2_numel(&c.q); i++) q_poisoned &= isnan(got.q[i]);
        CHECK(q_poisoned && kv2_untouched(&c.kv, got.cache), "%s slot %d: something was written", c.label, bads[k]);
        CHECK_OK(mlxn_stream_sync(mlxn_device_stream(gpu))); /* reported once */
        rk_outputs_free(&got);
        rk_inputs_free(&in);
    }
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_backend_rope_kv");
    mlxn_device *gpu = t_cuda_device();
    if (!gpu) return t_skip("no CUDA device");
    mlxn_device *cpu = t_cpu_device(2, MLXN_CPU_ISA_AUTO);
    printf("%s vs %s\n", mlxn_device_name(gpu), mlxn_device_name(cpu));
    double worst[2] = {0, 0};
    for (int ci = 0; ci < RK_N_CASES; ci++) {
        rk_case c = rk_make(ci);
        int32_t last = (int32_t)kv2_last_slot(&c.kv), slots[3] = {0, (int32_t)kv2_rand(0, last), last};
        for (int k = 0; k < 3; k++) compare(gpu, cpu, &c, slots[k], worst);
    }
    bad_slots(gpu);
    printf("worst NMSE vs the CPU: q_out %.3g, caches %.3g\n", worst[0], worst[1]);
    mlxn_device_free(cpu);
    mlxn_device_free(gpu);
    return t_finish();
}
