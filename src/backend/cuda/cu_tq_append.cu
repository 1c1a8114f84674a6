/* CUDA TurboQuant quantize-on-append (semantics: mlxn_tq_append in
 * mlxn/turboquant.h; format: src/quant/tq_layout.h). One fused kernel: a
 * warp per (vector, K or V) loads the vector (any strides), applies the
 * signs, runs the FWHT in registers, scales by 1/sqrt(D), takes the norm,
 * quantizes every coordinate against the width's boundaries (binary
 * search, mlxn_tq_encode itself), packs the codes and writes the row and
 * the norm into slot (pos + t) % capacity. The position comes from the host
 * int or from the i32 [1] device tensor, read on the device only, so the
 * launch can live in a captured graph; a negative device position writes
 * nothing (the CPU reports it as an error; a kernel cannot).
 *
 * Codes are bit-identical to the CPU reference (see cu_tq.cuh):
 *   - the FWHT runs the CPU's stages in the CPU's order (h = 1, 2, ...,
 *     D/2; lane l holds dims 32 k + l, so strides 1..16 are shuffles
 *     between lanes and 32.. are inside a lane), each butterfly the same
 *     single rounded add or subtract;
 *   - the norm is the same sequential f32 sum of squares, d = 0, 1, ...,
 *     D - 1, done by one lane over the squares the lanes parked in shared
 *     memory (D dependent adds: the price of identical codes).
 * Why a warp per vector and not a block (the previous version): its FWHT
 * took log2(D) block barriers and its x loads waited behind the boundary
 * table; a decode step's append is 2 x kv heads vectors, so the whole
 * launch was that serial path (~8 us standalone). The boundary tables are
 * filled before the programmatic-launch wait (they are constants). */
#include "backend/cuda/cu_tq.cuh"

extern "C" {
#include "backend/cuda/cuda_tq.h"
}

enum { TQA_WARPS = 4, TQA_THREADS = 32 * TQA_WARPS };

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

/* grid ceil(2 nvec / TQA_WARPS), nvec = Hkv T: warp w of the grid encodes
 * vector w / 2 (head, token), its key (w even) or its value (w odd).
 * signs: f32 [D]; E = D / 32 dims per lane. */
template <int E>
__global__ void __launch_bounds__(TQA_THREADS)
tq_append_kernel(tqa_src k, tqa_src v, tqa_dst kd, tqa_dst vd, const float *signs, int64_t nvec, int64_t T,
                 int64_t cap, int64_t pos, const int32_t *pos_t) {
    constexpr int D = 32 * E;
    __shared__ float bnd[2][255];          /* boundaries of the key width, the value width */
    __shared__ float sq[TQA_WARPS][D];     /* a warp's squares y_d^2, in dim order */
    __shared__ uint8_t code[TQA_WARPS][D]; /* a warp's codes, in dim order */
    for (int i = threadIdx.x; i < (1 << kd.bits) - 1; i += blockDim.x) bnd[0][i] = cu_tq_bound(kd.bits, i);
    for (int i = threadIdx.x; i < (1 << vd.bits) - 1; i += blockDim.x) bnd[1][i] = cu_tq_bound(vd.bits, i);
    __syncthreads();
    cu_pdl_wait(); /* programmatic launch: the sources and the position are an earlier kernel's */
    cu_pdl_launch_dependents();
    const int lane = threadIdx.x & 31, wl = threadIdx.x >> 5;
    const int64_t wv = (int64_t)blockIdx.x * TQA_WARPS + wl, r = wv >> 1;
    const int is_v = (int)(wv & 1);
    const int64_t p0 = cu_tq_pos(pos_t, pos);
    if (p0 < 0 || r >= nvec) return; /* warp-uniform */
    const tqa_src src = is_v ? v : k;
    const tqa_dst dst = is_v ? vd : kd;
    const int64_t h = r / T, t = r % T;
    const int64_t slot = h * cap + (p0 + t) % cap;

    /* lane holds dims 32 j + lane; every load issued before any use */
    const float *x = src.p + h * src.s[0] + t * src.s[1];
    float y[E], sg[E];
#pragma unroll
    for (int j = 0; j < E; j++) y[j] = x[(int64_t)(32 * j + lane) * src.s[2]], sg[j] = signs[32 * j + lane];
#pragma unroll
    for (int j = 0; j < E; j++) y[j] = __fmul_rn(y[j], sg[j]);
    cu_tq_fwht_warp<E>(y, lane); /* the CPU's stage order: bit-identical */
    const float rd = cu_tq_rsqrt_d(D);
#pragma unroll
    for (int j = 0; j < E; j++) {
        y[j] = __fmul_rn(y[j], rd);
        sq[wl][32 * j + lane] = __fmul_rn(y[j], y[j]);
    }
    __syncwarp();
    /* the CPU's exact sum: one f32 accumulator, in order, no fusing */
    float n = 0.0f;
    if (lane == 0) {
        float ss = 0.0f;
        for (int d = 0; d < D; d++) ss = __fadd_rn(ss, sq[wl][d]);
        n = __fsqrt_rn(ss);
    }
    n = __shfl_sync(0xffffffffu, n, 0);
    const float inv = n > 0.0f ? __fdiv_rn(__fsqrt_rn((float)D), n) : 0.0f; /* zero or NaN vector: all codes 0 */
#pragma unroll
    for (int j = 0; j < E; j++) code[wl][32 * j + lane] = (uint8_t)mlxn_tq_encode(bnd[is_v], dst.bits, __fmul_rn(y[j], inv));
    __syncwarp();

    uint8_t *row = dst.codes + slot * dst.row;
    if (dst.bits <= 4) {
        /* 8 codes make `bits` whole bytes (LSB-first stream): one lane per group */
        for (int g = lane; g < D / 8; g += 32) {
            uint64_t w = 0;
            for (int j = 0; j < 8; j++) w |= (uint64_t)code[wl][g * 8 + j] << (j * dst.bits);
            for (int b = 0; b < dst.bits; b++) row[g * dst.bits + b] = (uint8_t)(w >> (8 * b));
        }
    } else {
        for (int d = lane; d < D; d += 32) row[d] = code[wl][d];
    }
    if (lane == 0) dst.norms[slot] = n;
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
    if (2 * H * T / TQA_WARPS + 1 > 0x7fffffffLL)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "tq_append: %lld vectors in one call is more than a grid holds",
                         (long long)(H * T));
    const int64_t nvec = H * T, blocks = (2 * nvec + TQA_WARPS - 1) / TQA_WARPS;
    const tqa_src ks = src_of(k), vs = src_of(v);
    const tqa_dst kd = dst_of(&c->k_codes, &c->k_norms, c->k_row, c->p.k_bits),
                  vd = dst_of(&c->v_codes, &c->v_norms, c->v_row, c->p.v_bits);
    const float *signs = (const float *)cu_ptr(&c->signs);
    const int32_t *pt = pos_tensor ? (const int32_t *)cu_ptr(pos_tensor) : NULL;
    const dim3 grid((unsigned)blocks), block(TQA_THREADS);
    switch (c->p.head_dim) {
    case 64: cu_launch(s, tq_append_kernel<2>, grid, block, 0, ks, vs, kd, vd, signs, nvec, T, c->p.capacity, pos, pt); break;
    case 128: cu_launch(s, tq_append_kernel<4>, grid, block, 0, ks, vs, kd, vd, signs, nvec, T, c->p.capacity, pos, pt); break;
    case 256: cu_launch(s, tq_append_kernel<8>, grid, block, 0, ks, vs, kd, vd, signs, nvec, T, c->p.capacity, pos, pt); break;
    case 512: cu_launch(s, tq_append_kernel<16>, grid, block, 0, ks, vs, kd, vd, signs, nvec, T, c->p.capacity, pos, pt); break;
    default: return mlxn_fail(MLXN_ERR_UNSUPPORTED, "tq_append: head dim %lld", (long long)c->p.head_dim);
    }
    return cu_launched(s, op, "tq_append_kernel");
}
