/* mlxn_tq_rope_append on CUDA: the cases of tq_rope_cases.h, the fused
 * kernel against rope, rope and append apart on the same GPU, byte for
 * byte (q_out, codes, norms). The parts apart are checked against the CPU
 * by test_backend_ops (rope) and test_backend_tq (append, bit for bit). A
 * negative position in the device tensor writes nothing, q_out included
 * (a kernel cannot return an error). Without a CUDA device: "skipped: no
 * CUDA device", exit 77. */
#include "tq_rope_cases.h"

static void negative_device_pos(mlxn_device *gpu) {
    trc c = TRC_CASES[0];
    c.pos = -5;
    trc_inputs in = trc_inputs_new(gpu, &c); /* pos_t holds -5 */
    mlxn_tq_cache *cache = NULL;
    mlxn_tensor qo;
    memset(&qo, 0, sizeof qo);
    CHECK_OK(trc_run(gpu, &c, 1, &in, &cache, &qo));
    if (cache && qo.buf) {
        const size_t nq = mlxn_buffer_size(qo.buf), nk = mlxn_buffer_size(cache->k_codes.buf);
        float *q = malloc(nq);
        uint8_t *k = malloc(nk);
        if (q && k) {
            CHECK_OK(mlxn_buffer_read(qo.buf, 0, q, nq));
            CHECK_OK(mlxn_buffer_read(cache->k_codes.buf, 0, k, nk));
            size_t wq = 0, wk = 0;
            for (size_t i = 0; i < nq / sizeof(float); i++) wq += !isnan(q[i]);
            for (size_t i = 0; i < nk; i++) wk += k[i] != 0;
            CHECK(wq == 0 && wk == 0, "negative device position: %zu q_out values and %zu code bytes written", wq, wk);
        }
        free(q);
        free(k);
    }
    mlxn_tq_cache_free(cache);
    if (qo.buf) t_tensor_free(&qo);
    trc_inputs_free(&in);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_backend_tq_rope");
    mlxn_device *gpu = t_cuda_device();
    if (!gpu) return t_skip("no CUDA device");
    trc_run_cases(gpu);
    negative_device_pos(gpu);
    mlxn_device_free(gpu);
    return t_finish();
}
