/* CUDA TurboQuant dequantize (semantics: mlxn_tq_dequantize in
 * mlxn/turboquant.h; format: src/quant/tq_layout.h): the keys or values of
 * positions pos .. pos + n - 1 (slots (pos + t) % capacity) back to f32 in
 * the original domain. A block per vector: y_d = (norm / sqrt(D)) *
 * level[code_d] in shared memory, the FWHT, then y_d * (sign_d / sqrt(D)),
 * with the CPU reference's exact operations (bit-identical, cu_tq.cuh). */
#include "backend/cuda/cu_tq.cuh"

extern "C" {
#include "backend/cuda/cuda_tq.h"
}

enum { TQD_THREADS = 128 };

/* codes u8 [Hkv, cap, row]; norms f32 [Hkv, cap]; signs f32 [D];
 * out f32 [Hkv, n, D] contiguous; grid Hkv * n. */
__global__ void __launch_bounds__(TQD_THREADS)
tq_dequant_kernel(const uint8_t *codes, const float *norms, const float *signs, int64_t row, int bits, int D,
                  int64_t cap, int64_t pos, int64_t n, float *out) {
    __shared__ float y[MLXN_TQ_MAX_HEAD_DIM];
    __shared__ float lv[256];
    cu_tq_load_levels(bits, lv);
    __syncthreads();
    const int64_t r = blockIdx.x, h = r / n, t = r % n, slot = h * cap + (pos + t) % cap;
    const uint8_t *cr = codes + slot * row;
    const float sc = __fdiv_rn(norms[slot], __fsqrt_rn((float)D)); /* CPU: norms[slot] / sqrtf(D) */
    for (int d = threadIdx.x; d < D; d += blockDim.x) y[d] = __fmul_rn(sc, lv[mlxn_tq_get_code(cr, d, bits)]);
    __syncthreads();
    cu_tq_fwht(y, D);
    const float rd = cu_tq_rsqrt_d(D);
    float *o = out + r * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) o[d] = __fmul_rn(y[d], rd * signs[d]); /* rd * +-1: exact */
}

extern "C" mlxn_status cu_op_tq_dequantize(mlxn_stream *s, const mlxn_tq_cache *c, int which_v, int64_t pos,
                                           mlxn_tensor *out) {
    const char *op = "tq_dequantize";
    MLXN_TRY(cu_begin(s, op));
    const int64_t H = c->p.n_kv_heads, n = out->shape[1];
    if (H * n > 0x7fffffffLL)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "tq_dequantize: %lld vectors in one call is more than a grid holds",
                         (long long)(H * n));
    const mlxn_tensor *codes = which_v ? &c->v_codes : &c->k_codes, *norms = which_v ? &c->v_norms : &c->k_norms;
    tq_dequant_kernel<<<(unsigned)(H * n), TQD_THREADS, 0, cu_ctx(s)->s>>>(
        (const uint8_t *)cu_ptr(codes), (const float *)cu_ptr(norms), (const float *)cu_ptr(&c->signs),
        which_v ? c->v_row : c->k_row, which_v ? c->p.v_bits : c->p.k_bits, c->p.head_dim, c->p.capacity, pos, n,
        (float *)cu_ptr(out));
    return cu_launched(s, op, "tq_dequant_kernel");
}
