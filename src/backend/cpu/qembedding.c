/* CPU quantized embedding: out[i, :] = dequantize(table row ids[i]).
 * Rows are decoded with the ISA's dequantizer (the same float-exact
 * w = scale * q + bias, or fp(q) * scale, as the matmul's reference), and
 * the ids are split over the device's threads. */
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/qmatmul.h"
#include "core/internal.h"

typedef struct qe_job {
    const qmat *w;
    const qm_kernels *k;
    const void *ids;     /* [n] i32/u32, element stride ids_stride */
    int64_t ids_stride;
    mlxn_dtype ids_dt;
    float *out;          /* [n, D] */
} qe_job;

static int64_t id_at(const qe_job *j, int64_t i) {
    if (j->ids_dt == MLXN_DTYPE_U32) return (int64_t)((const uint32_t *)j->ids)[i * j->ids_stride];
    return (int64_t)((const int32_t *)j->ids)[i * j->ids_stride];
}

static void task(void *arg, int64_t i0, int64_t i1, int thread) {
    (void)thread;
    const qe_job *j = arg;
    for (int64_t i = i0; i < i1; i++) j->k->dequant(j->w, id_at(j, i), 0, j->w->cols, j->out + i * j->w->cols);
}

mlxn_status cpu_quantized_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *wq,
                                    const mlxn_tensor *scales, const mlxn_tensor *biases,
                                    const mlxn_quant_params *q, mlxn_tensor *out) {
    const char *op = "quantized_embedding";
    qmat w;
    MLXN_TRY(qmat_from_tensors(op, wq, scales, biases, q, &w));
    cpu_device *dev = cpu_dev(s);
    qe_job j = {.w = &w,
                .ids = mlxn_tensor_host(ids),
                .ids_stride = ids->strides[0],
                .ids_dt = ids->dtype,
                .out = mlxn_tensor_host(out)};
    j.k = dev->isa == MLXN_CPU_ISA_AVX512 ? &qm_kernels_avx512
          : dev->isa == MLXN_CPU_ISA_AVX2 ? &qm_kernels_avx2
                                          : &qm_kernels_ref;
    const int64_t n = ids->shape[0];
    for (int64_t i = 0; i < n; i++) {
        int64_t id = id_at(&j, i);
        if (id < 0 || id >= w.rows)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: ids[%lld] = %lld is outside [0, %lld)", op,
                             (long long)i, (long long)id, (long long)w.rows);
    }
    mlxn_parallel_for(dev->pool, n, 1, task, &j);
    return MLXN_OK;
}
