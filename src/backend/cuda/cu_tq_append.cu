/* CUDA TurboQuant quantize-on-append (semantics: mlxn_tq_append in
 * mlxn/turboquant.h; format: src/quant/tq_layout.h). One fused kernel: a
 * block per (vector, K or V) loads the vector (any strides), applies the
 * signs, runs the FWHT in shared memory, scales by 1/sqrt(D), takes the
 * norm, quantizes every coordinate against the width's boundaries (binary
 * search, mlxn_tq_encode itself), packs the codes and writes the row and
 * the norm into slot (pos + t) % capacity. The position comes from the host
 * int or from the i32 [1] device tensor, read on the device only, so the
 * launch can live in a captured graph; a negative device position writes
 * nothing (the CPU reports it as an error; a kernel cannot).
 *
 * Codes are bit-identical to the CPU reference (see cu_tq.cuh): the norm is
 * the same sequential f32 sum of squares, d = 0, 1, ..., D - 1, done by one
 * thread. That serial sum (D dependent adds, ~1-2 us at D = 512) is the
 * price of identical codes; every vector has its own block, so it overlaps
 * across vectors and a decode step's append stays one short launch. */
#include "backend/cuda/cu_tq.cuh"

extern "C" {
#include "backend/cuda/cuda_tq.h"
}

enum { TQA_THREADS = 128 };

typedef struct tqa_src {
    const float *p; /* f32 [Hkv, T, D] at element strides s */
    int64_t s[3];
} tqa_src;

typedef struct tqa_dst {
    uint8_t *codes; /* u8 [Hkv, cap, row] */
    float *norms;   /* f32 [Hkv, cap] */
    int64_t row;    /* code bytes per vector */
    int bits;
} tqa_dst;

/* grid (Hkv * T, 2): blockIdx.y 0 encodes keys, 1 values. signs: f32 [D]. */
__global__ void __launch_bounds__(TQA_THREADS)
tq_append_kernel(tqa_src k, tqa_src v, tqa_dst kd, tqa_dst vd, const float *signs, int64_t T, int D, int64_t cap,
                 int64_t pos, const int32_t *pos_t) {
    __shared__ float y[MLXN_TQ_MAX_HEAD_DIM];
    __shared__ float bnd[255];
    __shared__ uint8_t code[MLXN_TQ_MAX_HEAD_DIM];
    __shared__ float inv_sh, norm_sh;
    const int64_t p0 = cu_tq_pos(pos_t, pos);
    if (p0 < 0) return;
    const int is_v = blockIdx.y;
    const tqa_src src = is_v ? v : k;
    const tqa_dst dst = is_v ? vd : kd;
    const int64_t r = blockIdx.x, h = r / T, t = r % T;
    const int64_t slot = h * cap + (p0 + t) % cap;

    for (int i = threadIdx.x; i < (1 << dst.bits) - 1; i += blockDim.x) bnd[i] = cu_tq_bound(dst.bits, i);
    const float *x = src.p + h * src.s[0] + t * src.s[1];
    for (int d = threadIdx.x; d < D; d += blockDim.x) y[d] = __fmul_rn(x[d * src.s[2]], signs[d]);
    __syncthreads();
    cu_tq_fwht(y, D);
    const float rd = cu_tq_rsqrt_d(D);
    for (int d = threadIdx.x; d < D; d += blockDim.x) y[d] = __fmul_rn(y[d], rd);
    __syncthreads();
    if (threadIdx.x == 0) {
        /* the CPU's exact sum: one f32 accumulator, in order, no fusing */
        float ss = 0.0f;
        for (int d = 0; d < D; d++) ss = __fadd_rn(ss, __fmul_rn(y[d], y[d]));
        const float n = __fsqrt_rn(ss);
        norm_sh = n;
        inv_sh = n > 0.0f ? __fdiv_rn(__fsqrt_rn((float)D), n) : 0.0f; /* zero or NaN vector: all codes 0 */
    }
    __syncthreads();
    const float inv = inv_sh;
    for (int d = threadIdx.x; d < D; d += blockDim.x)
        code[d] = (uint8_t)mlxn_tq_encode(bnd, dst.bits, __fmul_rn(y[d], inv));
    __syncthreads();

    uint8_t *row = dst.codes + slot * dst.row;
    if (dst.bits <= 4) {
        /* 8 codes make `bits` whole bytes (LSB-first stream): one thread per group */
        for (int g = threadIdx.x; g < D / 8; g += blockDim.x) {
            uint64_t w = 0;
            for (int j = 0; j < 8; j++) w |= (uint64_t)code[g * 8 + j] << (j * dst.bits);
            for (int b = 0; b < dst.bits; b++) row[g * dst.bits + b] = (uint8_t)(w >> (8 * b));
        }
    } else {
        for (int d = threadIdx.x; d < D; d += blockDim.x) row[d] = code[d];
    }
    if (threadIdx.x == 0) dst.norms[slot] = norm_sh;
}

static tqa_src src_of(const mlxn_tensor *t) {
    tqa_src s;
    s.p = (const float *)cu_ptr(t);
    for (int i = 0; i < 3; i++) s.s[i] = t->strides[i];
    return s;
}

static tqa_dst dst_of(const mlxn_tensor *codes, const mlxn_tensor *norms, int64_t row, int bits) {
    tqa_dst d;
    d.codes = (uint8_t *)cu_ptr(codes);
    d.norms = (float *)cu_ptr(norms);
    d.row = row;
    d.bits = bits;
    return d;
}

extern "C" mlxn_status cu_op_tq_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *k, const mlxn_tensor *v,
                                       int64_t pos, const mlxn_tensor *pos_tensor) {
    const char *op = "tq_append";
    MLXN_TRY(cu_begin(s, op));
    const int64_t H = c->p.n_kv_heads, T = k->shape[1];
    if (H * T > 0x7fffffffLL)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "tq_append: %lld vectors in one call is more than a grid holds",
                         (long long)(H * T));
    dim3 grid((unsigned)(H * T), 2);
    tq_append_kernel<<<grid, TQA_THREADS, 0, cu_ctx(s)->s>>>(
        src_of(k), src_of(v), dst_of(&c->k_codes, &c->k_norms, c->k_row, c->p.k_bits),
        dst_of(&c->v_codes, &c->v_norms, c->v_row, c->p.v_bits), (const float *)cu_ptr(&c->signs), T,
        c->p.head_dim, c->p.capacity, pos, pos_tensor ? (const int32_t *)cu_ptr(pos_tensor) : NULL);
    return cu_launched(s, op, "tq_append_kernel");
}
