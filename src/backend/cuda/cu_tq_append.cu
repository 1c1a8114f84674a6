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
 *   - the norm is the same f32 sum of squares in the same order
 *     (mlxn_tq_sum_squares): lane l's dims l, l + 32, ... in turn, then
 *     five xor shuffles, which give every lane the CPU's pairwise halving
 *     bit for bit (an add is commutative, so lanes l and l ^ h compute the
 *     same sum). Before, one lane added the D squares in dim order.
 * Why a warp per vector and not a block (the previous version): its FWHT
 * took log2(D) block barriers and its x loads waited behind the boundary
 * table; a decode step's append is 2 x kv heads vectors, so the whole
 * launch was that serial path (~8 us standalone). The boundary tables are
 * filled before the programmatic-launch wait (they are constants).
 *
 * The same kernel is mlxn_tq_rope_append's (a decode step's rope and
 * append): its first blocks rope q into q_out, a warp per row, and the
 * key warps rope their vector before the rotation, with the pair formula
 * rope_kernel uses (cu_rope.cuh), so q_out and the codes are the bits of
 * rope, rope and append apart. Why: at decode each of those kernels moves
 * a few kilobytes, so each costs its launch and dependency gap (~2 us in a
 * step's graph), not its bytes; this is one kernel where they were two or
 * three per layer. A row's pairs are rotated in registers where a lane
 * holds both halves of each pair (halves 32 k dims apart) or its
 * neighbour lane does (adjacent pairs); other rotary layouts take the
 * element-by-element path (correct, slower: a 64-bit row division per
 * element). */
#include <string.h>

#include "backend/cuda/cu_rope.cuh"
#include "backend/cuda/cu_tq.cuh"

extern "C" {
#include "backend/cuda/cuda_tq.h"
}

enum { TQA_WARPS = 4, TQA_THREADS = 32 * TQA_WARPS };

/* The boundaries again, in global memory (read through L1): the block
 * fills its tables by 32 different indices per warp load, which the
 * constant cache (cu_tq_cb) serves one address at a time; a warp's 32
 * neighbouring floats from global memory are one or two lines. */
static __device__ const cu_tq_books tqa_books = CU_TQ_BOOKS_INIT;
__device__ __forceinline__ float tqa_bound(int bits, int i) {
    switch (bits) {
    case 2: return __ldg(&tqa_books.b2[i]);
    case 3: return __ldg(&tqa_books.b3[i]);
    case 4: return __ldg(&tqa_books.b4[i]);
    case 5: return __ldg(&tqa_books.b5[i]);
    case 6: return __ldg(&tqa_books.b6[i]);
    case 7: return __ldg(&tqa_books.b7[i]);
    default: return __ldg(&tqa_books.b8[i]);
    }
}

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

/* The rope of the fused op (on = 0: a plain append). */
typedef struct tqa_rope {
    int on;
    int regs;            /* pairs rotated in registers (tqa_rope_regs); else element by element */
    cu_view q, k;        /* q f32 [Hq, T, D]; k f32 [Hkv, T, D], the keys before their rope */
    cu_rope_args rq, rk; /* their off replaced by *offp when offp is given (device i32 [1]) */
    const int32_t *offp;
    float *q_out;        /* f32 [Hq, T, D] contiguous */
    int64_t nq;          /* q's elements */
    unsigned qb;         /* blocks [0, qb) rope q */
} tqa_rope;

/* Rope of one row in registers: lane holds dims 32 j + lane in y[j];
 * position pos. Pairs of halves (dims / 2 a multiple of 32: dim d and
 * d + dims / 2 both in this lane) or adjacent pairs (the partner in lane ^
 * 1); dims from a.dims on are kept. */
template <int E>
__device__ __forceinline__ void tqa_rope_regs(const cu_rope_args &a, float pos, float *y, int lane) {
    if (a.trad) {
#pragma unroll
        for (int j = 0; j < E; j++) {
            const float o = __shfl_xor_sync(0xffffffffu, y[j], 1); /* every lane: a uniform shuffle */
            const int d = 32 * j + lane;
            if (d < a.dims) {
                const bool first = !(lane & 1);
                y[j] = cu_rope_pair(a, pos, d >> 1, first ? y[j] : o, first ? o : y[j], first);
            }
        }
    } else {
        const int hj = a.dims / 64; /* half, in steps of 32 dims */
#pragma unroll
        for (int j = 0; j < E; j++)
            if (j < hj) cu_rope_pair2(a, pos, 32 * j + lane, y[j], y[j + hj], &y[j], &y[j + hj]);
    }
}

/* grid qb + ceil(2 nvec / TQA_WARPS), nvec = Hkv T: blocks [0, qb) rope q
 * (rope.on), then warp w of the rest encodes vector w / 2 (head, token),
 * its key (w even; roped first when rope.on) or its value (w odd).
 * signs: f32 [D]; E = D / 32 dims per lane. */
template <int E>
__global__ void __launch_bounds__(TQA_THREADS)
tq_append_kernel(tqa_src k, tqa_src v, tqa_dst kd, tqa_dst vd, const float *signs, int64_t nvec, int64_t T,
                 int64_t cap, int64_t pos, const int32_t *pos_t, tqa_rope rope) {
    constexpr int D = 32 * E;
    __shared__ float bnd[2][255];          /* boundaries of the key width, the value width */
    __shared__ uint8_t code[TQA_WARPS][D]; /* a warp's codes, in dim order */
    for (int i = threadIdx.x; i < (1 << kd.bits) - 1; i += blockDim.x) bnd[0][i] = tqa_bound(kd.bits, i);
    for (int i = threadIdx.x; i < (1 << vd.bits) - 1; i += blockDim.x) bnd[1][i] = tqa_bound(vd.bits, i);
    __syncthreads();
    cu_pdl_wait(); /* programmatic launch: the sources and the position are an earlier kernel's */
    cu_pdl_launch_dependents();
    const int lane = threadIdx.x & 31, wl = threadIdx.x >> 5;
    const int64_t p0 = cu_tq_pos(pos_t, pos);
    if (p0 < 0) return; /* nothing written, q_out included (as the CPU, which reports it) */
    if (blockIdx.x < rope.qb) {
        cu_rope_args a = rope.rq;
        if (rope.offp) a.off = (float)*rope.offp;
        if (rope.regs) { /* warp w: row w of q [Hq, T, D] (head w / T, token w % T) */
            const int64_t row = (int64_t)blockIdx.x * TQA_WARPS + wl;
            if (row >= rope.nq / D) return;
            const int64_t hq = row / a.T, t = row % a.T;
            const float *qr = (const float *)rope.q.p + hq * rope.q.st[0] + t * rope.q.st[1];
            float y[E];
#pragma unroll
            for (int j = 0; j < E; j++) y[j] = qr[(int64_t)(32 * j + lane) * rope.q.st[2]];
            tqa_rope_regs<E>(a, (float)t + a.off, y, lane);
#pragma unroll
            for (int j = 0; j < E; j++) rope.q_out[row * D + 32 * j + lane] = y[j];
        } else {
            for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < rope.nq;
                 e += (int64_t)rope.qb * blockDim.x)
                rope.q_out[e] = cu_rope_elem(rope.q, a, e);
        }
        return;
    }
    const int64_t wv = (int64_t)(blockIdx.x - rope.qb) * TQA_WARPS + wl, r = wv >> 1;
    const int is_v = (int)(wv & 1);
    if (r >= nvec) return; /* warp-uniform */
    const tqa_src src = is_v ? v : k;
    const tqa_dst dst = is_v ? vd : kd;
    const int64_t h = r / T, t = r % T;
    const int64_t slot = h * cap + (p0 + t) % cap;

    /* lane holds dims 32 j + lane; every load issued before any use */
    const float *x = src.p + h * src.s[0] + t * src.s[1];
    float y[E], sg[E];
    if (rope.on && !is_v && !rope.regs) { /* the key's rope, element by element (row r of k: head h, token t) */
        cu_rope_args a = rope.rk;
        if (rope.offp) a.off = (float)*rope.offp;
#pragma unroll
        for (int j = 0; j < E; j++) y[j] = cu_rope_elem(rope.k, a, r * D + 32 * j + lane), sg[j] = signs[32 * j + lane];
    } else {
#pragma unroll
        for (int j = 0; j < E; j++) y[j] = x[(int64_t)(32 * j + lane) * src.s[2]], sg[j] = signs[32 * j + lane];
        if (rope.on && !is_v) { /* src is k itself here: its rope in registers */
            cu_rope_args a = rope.rk;
            if (rope.offp) a.off = (float)*rope.offp;
            tqa_rope_regs<E>(a, (float)t + a.off, y, lane);
        }
    }
#pragma unroll
    for (int j = 0; j < E; j++) y[j] = __fmul_rn(y[j], sg[j]);
    cu_tq_fwht_warp<E>(y, lane); /* the CPU's stage order: bit-identical */
    const float rd = cu_tq_rsqrt_d(D);
    /* the CPU's exact sum (mlxn_tq_sum_squares): this lane's dims in order, then the halving, no fusing */
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < E; j++) {
        y[j] = __fmul_rn(y[j], rd);
        ss = __fadd_rn(ss, __fmul_rn(y[j], y[j]));
    }
#pragma unroll
    for (int h = 16; h >= 1; h >>= 1) ss = __fadd_rn(ss, __shfl_xor_sync(0xffffffffu, ss, h));
    const float n = __fsqrt_rn(ss);
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

/* One launch of tq_append_kernel: the append of k (or, with rope.on, of
 * rope(k)) and v, after the q rope's rope.qb blocks. */
static mlxn_status tqa_launch(mlxn_stream *s, const char *op, mlxn_tq_cache *c, const mlxn_tensor *k,
                              const mlxn_tensor *v, int64_t pos, const mlxn_tensor *pos_tensor, const tqa_rope &rope) {
    MLXN_TRY(cu_begin(s, op));
    const int64_t H = c->p.n_kv_heads, T = k->shape[1];
    if (2 * H * T / TQA_WARPS + rope.qb + 1 > 0x7fffffffLL)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: %lld vectors in one call is more than a grid holds", op,
                         (long long)(H * T));
    const int64_t nvec = H * T, blocks = rope.qb + (2 * nvec + TQA_WARPS - 1) / TQA_WARPS;
    const tqa_src ks = src_of(k), vs = src_of(v);
    const tqa_dst kd = dst_of(&c->k_codes, &c->k_norms, c->k_row, c->p.k_bits),
                  vd = dst_of(&c->v_codes, &c->v_norms, c->v_row, c->p.v_bits);
    const float *signs = (const float *)cu_ptr(&c->signs);
    const int32_t *pt = pos_tensor ? (const int32_t *)cu_ptr(pos_tensor) : NULL;
    const dim3 grid((unsigned)blocks), block(TQA_THREADS);
    const int64_t cap = c->p.capacity;
    switch (c->p.head_dim) {
    case 64: cu_launch(s, tq_append_kernel<2>, grid, block, 0, ks, vs, kd, vd, signs, nvec, T, cap, pos, pt, rope); break;
    case 128: cu_launch(s, tq_append_kernel<4>, grid, block, 0, ks, vs, kd, vd, signs, nvec, T, cap, pos, pt, rope); break;
    case 256: cu_launch(s, tq_append_kernel<8>, grid, block, 0, ks, vs, kd, vd, signs, nvec, T, cap, pos, pt, rope); break;
    case 512: cu_launch(s, tq_append_kernel<16>, grid, block, 0, ks, vs, kd, vd, signs, nvec, T, cap, pos, pt, rope); break;
    default: return mlxn_fail(MLXN_ERR_UNSUPPORTED, "%s: head dim %lld", op, (long long)c->p.head_dim);
    }
    return cu_launched(s, op, "tq_append_kernel");
}

extern "C" mlxn_status cu_op_tq_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *k, const mlxn_tensor *v,
                                       int64_t pos, const mlxn_tensor *pos_tensor) {
    tqa_rope rope;
    memset(&rope, 0, sizeof rope);
    return tqa_launch(s, "tq_append", c, k, v, pos, pos_tensor, rope);
}

extern "C" mlxn_status cu_op_tq_rope_append(mlxn_stream *s, mlxn_tq_cache *c, const mlxn_tensor *q,
                                            const mlxn_tensor *k, const mlxn_tensor *v, const mlxn_rope_params *p,
                                            mlxn_tensor *q_out, int64_t pos, const mlxn_tensor *pos_tensor) {
    tqa_rope rope;
    rope.on = 1;
    rope.q = cu_view_of(q);
    rope.k = cu_view_of(k);
    rope.rq = cu_rope_args_of(p, q->shape[1], q->shape[2]);
    rope.rk = cu_rope_args_of(p, k->shape[1], k->shape[2]);
    rope.offp = p->offset_tensor ? (const int32_t *)cu_ptr(p->offset_tensor) : NULL;
    rope.q_out = (float *)cu_ptr(q_out);
    rope.nq = mlxn_tensor_numel(q);
    /* pairs in registers: adjacent pairs, or halves a multiple of 32 dims apart */
    rope.regs = p->traditional || (p->dims / 2) % 32 == 0;
    /* a warp per q row (registers), else a thread per element */
    const int64_t qb = rope.regs ? (rope.nq / c->p.head_dim + TQA_WARPS - 1) / TQA_WARPS
                                 : (rope.nq + TQA_THREADS - 1) / TQA_THREADS;
    if (qb > 0x3fffffff) return mlxn_fail(MLXN_ERR_UNSUPPORTED, "tq_rope_append: q has %lld elements", (long long)rope.nq);
    rope.qb = (unsigned)qb;
    return tqa_launch(s, "tq_rope_append", c, k, v, pos, pos_tensor, rope);
}
