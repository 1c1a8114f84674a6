/* add_rms_norm on a GPU (today: CUDA), over the cases of add_norm_cases.h:
 * the fused op gives the very bits of mlxn_add followed by mlxn_rms_norm
 * on the same GPU (sum and out; contiguous 16-byte-aligned rows with D a
 * multiple of 4 up to 8192 take the one-kernel path, the other layouts its
 * add-then-norm fallback, so both are covered), its sum is bit for bit the
 * CPU's (one f32 add), its out within the f32 tree reduction's rounding of
 * the CPU's and of a double-precision reference, and nothing outside the
 * outputs is written. Without a GPU: "skipped: no CUDA device" (exit 77). */
#include "add_norm_cases.h"

#define GPU_NMSE 1e-11 /* as test_backend_ops' rms_norm: f32 tree sums vs the CPU's */

int main(int argc, char **argv) {
    t_init(argc, argv, "test_backend_add_norm");
    mlxn_device *gpu = t_cuda_device();
    if (!gpu) return t_skip("no CUDA device");
    mlxn_device *cpu = t_cpu_device_exact(0);
    printf("%s vs %s\n", mlxn_device_name(gpu), mlxn_device_name(cpu));
    double worst_cpu = 0, worst_ref = 0;
    for (int si = 0; si < AN_N_SHAPES; si++) {
        for (int v = 0; v < AN_N_VARIANTS; v++) {
            an_case c = an_make(si, v);
            char label[220];
            an_describe(&c, label, sizeof label);
            an_inputs in = an_inputs_new(&c, si);
            size_t n = (size_t)an_n(&c), bytes = (n ? n : 1) * 4;
            float *fs = malloc(bytes), *fo = malloc(bytes), *us = malloc(bytes), *uo = malloc(bytes);
            float *cs = malloc(bytes), *co = malloc(bytes), *rs = malloc(bytes), *ro = malloc(bytes);
            an_run(gpu, &c, &in, 1, fs, fo, label);
            an_run(gpu, &c, &in, 0, us, uo, label);
            an_run(cpu, &c, &in, 1, cs, co, label);
            CHECK(memcmp(fs, us, n * 4) == 0, "%s: sum differs from mlxn_add's on the GPU", label);
            CHECK(memcmp(fo, uo, n * 4) == 0, "%s: out differs from mlxn_add + mlxn_rms_norm on the GPU", label);
            CHECK(memcmp(fs, cs, n * 4) == 0, "%s: sum differs from the CPU's", label);
            double e = t_nmse(co, fo, n);
            if (e > worst_cpu) worst_cpu = e;
            CHECK(e <= GPU_NMSE, "%s: out NMSE %.3g vs the CPU", label, e);
            an_reference(&c, &in, rs, ro);
            an_check_reference(&c, rs, ro, fs, fo, GPU_NMSE, &worst_ref, label);
            free(fs), free(fo), free(us), free(uo), free(cs), free(co), free(rs), free(ro);
            an_inputs_free(&in);
        }
    }
    /* a tensor on the CPU given to the GPU's stream */
    int64_t shape[2] = {2, 8};
    mlxn_tensor hc, g;
    CHECK_OK(mlxn_tensor_alloc(cpu, MLXN_DTYPE_F32, 2, shape, &hc));
    CHECK_OK(mlxn_tensor_alloc(gpu, MLXN_DTYPE_F32, 2, shape, &g));
    mlxn_tensor g2 = g;
    CHECK_FAILS(mlxn_add_rms_norm(mlxn_device_stream(gpu), &hc, &g, NULL, 1e-5f, 0, &g2, &g),
                MLXN_ERR_INVALID_ARGUMENT);
    mlxn_tensor_release(&hc);
    mlxn_tensor_release(&g);
    printf("worst out NMSE: vs the CPU %.3g, vs the double reference %.3g\n", worst_cpu, worst_ref);
    mlxn_device_free(cpu);
    mlxn_device_free(gpu);
    return t_finish();
}
