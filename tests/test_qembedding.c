/* mlxn_quantized_embedding on the CPU: every affine width x group x scale
 * dtype and the fp modes, at every ISA level this processor has (others
 * are skipped and reported) and 1-3 threads, against rows decoded here
 * with quant/quant_layout.h (independently of the library's kernels).
 * Dequantization is float-exact (w = scale*q + bias, fp(q) * scale), so the
 * tolerance is NMSE < 1e-12 (only f32 rounding of scale*q + bias). Also:
 * i32 and u32 ids, strided ids, repeated ids, poisoned output, ids out of
 * range and bad shapes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "harness.h"
#include "quant/quant_layout.h"

static float ref_scale(mlxn_dtype dt, const void *p, int64_t i) {
    if (dt == MLXN_DTYPE_F16) return mlxn_f16_to_f32(((const uint16_t *)p)[i]);
    if (dt == MLXN_DTYPE_BF16) return mlxn_bf16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

static float ref_weight(const mlxn_quant_params *q, mlxn_dtype sdt, const uint32_t *wq, const void *sc,
                        const void *bi, int64_t D, int64_t r, int64_t c) {
    uint32_t code = mlxn_unpack_code(wq + r * (D * q->bits / 32), c, q->bits);
    int64_t gi = r * (D / q->group_size) + c / q->group_size;
    switch (q->mode) {
    case MLXN_QUANT_AFFINE: return (float)((double)ref_scale(sdt, sc, gi) * code + ref_scale(sdt, bi, gi));
    case MLXN_QUANT_MXFP4: return mlxn_e2m1_to_f32(code) * mlxn_e8m0_to_f32(((const uint8_t *)sc)[gi]);
    case MLXN_QUANT_MXFP8: return mlxn_e4m3_to_f32((uint8_t)code) * mlxn_e8m0_to_f32(((const uint8_t *)sc)[gi]);
    default: {
        float gs = q->global_scale > 0.0f ? q->global_scale / 2688.0f : 1.0f; /* MLX's global scale */
        return mlxn_e2m1_to_f32(code) * (mlxn_e4m3_to_f32(((const uint8_t *)sc)[gi]) * gs);
    }
    }
}

static void store_f(mlxn_dtype dt, void *p, int64_t i, float v) {
    if (dt == MLXN_DTYPE_F16) ((uint16_t *)p)[i] = mlxn_f32_to_f16(v);
    else if (dt == MLXN_DTYPE_BF16) ((uint16_t *)p)[i] = mlxn_f32_to_bf16(v);
    else ((float *)p)[i] = v;
}

static mlxn_tensor make(mlxn_device *dev, mlxn_dtype dt, int ndim, const int64_t *shape, const void *data) {
    mlxn_tensor t;
    memset(&t, 0, sizeof t);
    CHECK_OK(mlxn_tensor_alloc(dev, dt, ndim, shape, &t));
    if (data) CHECK_OK(mlxn_buffer_write(t.buf, t.offset, data, mlxn_tensor_nbytes(&t)));
    return t;
}

static void one(mlxn_device *dev, mlxn_quant_params q, mlxn_dtype sdt, int salt, int bad_checks) {
    const int64_t V = 11, D = q.group_size * (salt % 2 ? 3 : 5), n = 9;
    int64_t words = V * D * q.bits / 32, ng = V * D / q.group_size;
    uint32_t *wq = malloc((size_t)words * 4);
    for (int64_t i = 0; i < words; i++) wq[i] = (uint32_t)t_rand_u64();
    if (q.mode == MLXN_QUANT_MXFP8)
        for (int64_t i = 0; i < words * 4; i++)
            if ((((uint8_t *)wq)[i] & 0x7f) == 0x7f) ((uint8_t *)wq)[i] = 0x11; /* no NaN codes */
    int affine = q.mode == MLXN_QUANT_AFFINE;
    if (!affine) sdt = MLXN_DTYPE_U8;
    size_t es = mlxn_dtype_size(sdt);
    void *sc = malloc((size_t)ng * es), *bi = affine ? malloc((size_t)ng * es) : NULL;
    for (int64_t i = 0; i < ng; i++) {
        if (affine) {
            store_f(sdt, sc, i, t_uniform(-0.2f, 0.2f));
            store_f(sdt, bi, i, t_uniform(-1.0f, 1.0f));
        } else {
            ((uint8_t *)sc)[i] = q.mode == MLXN_QUANT_NVFP4 ? (uint8_t)(t_rand_u64() % 0x7f)
                                                             : (uint8_t)(118 + t_rand_u64() % 16);
        }
    }
    /* ids: stored every other element (a strided view), repeats allowed */
    mlxn_dtype idt = salt % 2 ? MLXN_DTYPE_U32 : MLXN_DTYPE_I32;
    int32_t idbuf[2 * 9];
    for (int i = 0; i < 2 * n; i++) idbuf[i] = (int32_t)(t_rand_u64() % (uint64_t)V);
    int64_t ws[2] = {V, D * q.bits / 32}, ss[2] = {V, D / q.group_size}, is[1] = {2 * n}, os[2] = {n, D};
    mlxn_tensor twq = make(dev, MLXN_DTYPE_U32, 2, ws, wq), tsc = make(dev, sdt, 2, ss, sc), tbi;
    memset(&tbi, 0, sizeof tbi);
    if (affine) tbi = make(dev, sdt, 2, ss, bi);
    mlxn_tensor ids = make(dev, idt, 1, is, idbuf);
    ids.shape[0] = n;
    ids.strides[0] = 2;
    mlxn_tensor out = make(dev, MLXN_DTYPE_F32, 2, os, NULL);
    float *o = mlxn_tensor_host(&out);
    t_poison(o, (size_t)(n * D) * sizeof(float));
    mlxn_stream *s = mlxn_device_stream(dev);
    CHECK_OK(mlxn_quantized_embedding(s, &ids, &twq, &tsc, affine ? &tbi : NULL, &q, &out));
    float *want = malloc((size_t)(n * D) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < D; c++) want[i * D + c] = ref_weight(&q, sdt, wq, sc, bi, D, idbuf[2 * i], c);
    double e = t_nmse(want, o, (size_t)(n * D));
    CHECK(e < 1e-12, "%s bits=%d group=%d sdt=%s on %s: nmse %.3g", mlxn_quant_mode_name(q.mode), q.bits,
          q.group_size, mlxn_dtype_name(sdt), mlxn_device_name(dev), e);
    if (bad_checks) {
        idbuf[4] = (int32_t)V; /* element 2 of the view */
        CHECK_OK(mlxn_buffer_write(ids.buf, ids.offset, idbuf, sizeof idbuf));
        CHECK_FAILS(mlxn_quantized_embedding(s, &ids, &twq, &tsc, affine ? &tbi : NULL, &q, &out),
                    MLXN_ERR_INVALID_ARGUMENT);
        idbuf[4] = -1;
        CHECK_OK(mlxn_buffer_write(ids.buf, ids.offset, idbuf, sizeof idbuf));
        if (idt == MLXN_DTYPE_I32)
            CHECK_FAILS(mlxn_quantized_embedding(s, &ids, &twq, &tsc, affine ? &tbi : NULL, &q, &out),
                        MLXN_ERR_INVALID_ARGUMENT);
        mlxn_tensor o2 = out;
        o2.shape[1] = D - q.group_size;
        CHECK_FAILS(mlxn_quantized_embedding(s, &ids, &twq, &tsc, affine ? &tbi : NULL, &q, &o2), MLXN_ERR_SHAPE);
    }
    free(want);
    mlxn_tensor_release(&out);
    mlxn_tensor_release(&ids);
    if (affine) mlxn_tensor_release(&tbi);
    mlxn_tensor_release(&tsc);
    mlxn_tensor_release(&twq);
    free(wq);
    free(sc);
    free(bi);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_qembedding");
    static const mlxn_cpu_isa isas[3] = {MLXN_CPU_ISA_SCALAR, MLXN_CPU_ISA_AVX2, MLXN_CPU_ISA_AVX512};
    static const mlxn_dtype sdts[3] = {MLXN_DTYPE_F32, MLXN_DTYPE_F16, MLXN_DTYPE_BF16};
    mlxn_cpu_isa best = mlxn_cpu_detect_isa(MLXN_CPU_ISA_AUTO);
    int salt = 0;
    for (int i = 0; i < 3; i++) {
        if (isas[i] > best) {
            printf("skipping ISA level %s: this processor lacks it\n", mlxn_cpu_isa_name(isas[i]));
            continue;
        }
        mlxn_device *devs[3] = {t_cpu_device(1, isas[i]), t_cpu_device(2, isas[i]), t_cpu_device(3, isas[i])};
        for (int bits = 1; bits <= 8; bits++) {
            if (bits == 7) continue;
            for (int group = 32; group <= 128; group *= 2)
                for (int sd = 0; sd < 3; sd++, salt++) {
                    mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = bits, .group_size = group};
                    one(devs[salt % 3], q, sdts[sd], salt, salt % 17 == 0);
                }
        }
        for (int rep = 0; rep < 2; rep++, salt++) {
            one(devs[salt % 3], (mlxn_quant_params){MLXN_QUANT_MXFP4, 4, 32, 0, MLXN_QUANT_ROWS}, MLXN_DTYPE_U8, salt, 1);
            one(devs[salt % 3], (mlxn_quant_params){MLXN_QUANT_MXFP8, 8, 32, 0, MLXN_QUANT_ROWS}, MLXN_DTYPE_U8, salt, 0);
            one(devs[salt % 3], (mlxn_quant_params){MLXN_QUANT_NVFP4, 4, 16, 0, MLXN_QUANT_ROWS}, MLXN_DTYPE_U8, salt, 0);
            one(devs[salt % 3], (mlxn_quant_params){MLXN_QUANT_NVFP4, 4, 16, 0.37f, MLXN_QUANT_ROWS}, MLXN_DTYPE_U8, salt, 0);
        }
        for (int t = 0; t < 3; t++) mlxn_device_free(devs[t]);
    }
    return t_finish();
}
