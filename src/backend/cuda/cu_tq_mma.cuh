/* What the two tensor-core TurboQuant decode kernels share
 * (cu_tq_attention_mma.cu: each warp owns whole keys and the whole head
 * dim; cu_tq_attention_split.cu: warps split the value dims): the mma and
 * its f16 packing, code loads and extraction, the 4-bit pair table, the
 * visible key ranges of the block's rows, the query rotated into f16 A
 * fragments, and the L2 prefetch of the first codes before the
 * programmatic wait. Both kernels' partials (per chunk, rotated back) are
 * merged by tq_attn_mma_combine. */
#ifndef MLXN_CU_TQ_MMA_CUH
#define MLXN_CU_TQ_MMA_CUH

#include <cuda_fp16.h>
#include <math.h>

#include "backend/cuda/cu_tq_attn.cuh"

/* The levels again, in global memory (read through L1): the prologue
 * looks up 256 different indices at once, which the constant cache
 * (cu_tq_cb) serves one address at a time. */
static __device__ const cu_tq_books tqm_books = CU_TQ_BOOKS_INIT;
__device__ __forceinline__ float tqm_level(int bits, int i) {
    switch (bits) {
    case 2: return __ldg(&tqm_books.l2[i]);
    case 3: return __ldg(&tqm_books.l3[i]);
    case 4: return __ldg(&tqm_books.l4[i]);
    case 5: return __ldg(&tqm_books.l5[i]);
    case 6: return __ldg(&tqm_books.l6[i]);
    case 7: return __ldg(&tqm_books.l7[i]);
    default: return __ldg(&tqm_books.l8[i]);
    }
}

/* c += a (16x16 f16, row) * b (16x8 f16, col), f32 accumulators. */
__device__ __forceinline__ void tqm_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t tqm_pack(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *(const uint32_t *)&h;
}
__device__ __forceinline__ uint32_t tqm_pack_bits(unsigned short lo, unsigned short hi) {
    return (uint32_t)lo | ((uint32_t)hi << 16);
}

/* N bytes (4, 8, 16, 32 or 64; p aligned to min(N, 16)) into words w[N / 4]. */
template <int N>
__device__ __forceinline__ void tqm_load(const uint8_t *p, uint32_t *w) {
    if (N >= 16) {
#pragma unroll
        for (int i = 0; i < N / 16; i++) {
            const uint4 u = __ldg((const uint4 *)p + i);
            w[4 * i] = u.x, w[4 * i + 1] = u.y, w[4 * i + 2] = u.z, w[4 * i + 3] = u.w;
        }
    } else if (N == 8) {
        const uint2 u = __ldg((const uint2 *)p);
        w[0] = u.x, w[1] = u.y;
    } else {
        w[0] = __ldg((const unsigned *)p);
    }
}

/* Code i (compile-time once unrolled) of words w: SB storage bits per code
 * (4: nibbles, low nibble the even coordinate; 8: bytes). */
template <int SB>
__device__ __forceinline__ uint32_t tqm_code(const uint32_t *w, int i) {
    return (w[(i * SB) >> 5] >> ((i * SB) & 31)) & ((1u << SB) - 1u);
}

/* A lane's share of one code row, NB bytes in pieces of PB = min(NB, 16):
 * piece i of lane `idx` (of `nl` lanes sharing the row) at byte
 * (i nl + idx) PB. Why pieces: lanes next to each other then read
 * neighbouring 16 bytes in every load instruction (one lane's 32 contiguous
 * bytes, loaded as two 16-byte halves, left every sector half used per
 * instruction). */
template <int NB>
__device__ __forceinline__ void tqm_load_pieces(const uint8_t *row, int idx, int nl, uint32_t *w) {
    constexpr int PB = NB < 16 ? NB : 16;
#pragma unroll
    for (int i = 0; i < NB / PB; i++) tqm_load<PB>(row + (i * nl + idx) * PB, w + i * (PB / 4));
}

/* The 4-bit pair table, pair [256][32] words: a byte of two codes -> both
 * levels as one f16 pair (a B fragment register in one lookup; why: per
 * code, a shift, a mask, an address and a 16-bit load were most of the
 * kernel's instructions), one copy per bank: entry b of copy l at word
 * 32 b + l. Lane l reads only copy l, so a warp's 32 lookups of any 32
 * bytes hit 32 different banks. Why: with one copy, the bytes of real
 * codes (the inner levels are the likely ones) piled ~4 lanes on a bank:
 * 0.76 M of the 1.4 M shared-load wavefronts at the goal shape were
 * replays. Filled by all `nthreads` threads (whole warps), 16 bytes per
 * store: the 4 words of piece i are 4 copies of byte b = i / 8's pair (8
 * pieces per entry); the levels come from the lanes (lane i holds level
 * i % 16) by two shuffles. EW: words per entry, 32, or 64 for the layout
 * whose addresses a byte permute builds (tq_attn_split: entry b of copy l
 * at word 64 b + l, words 64 b + 32 .. 63 unused). */
template <int EW = 32>
__device__ __forceinline__ void tqm_fill_pairs(uint32_t *pair, int tid, int nthreads) {
    const int lane = tid & 31;
    const unsigned short lv = __half_as_ushort(__float2half_rn(tqm_level(4, lane & 15)));
    uint4 *pair4 = (uint4 *)pair; /* [256 * 8] */
    for (int i = tid; i < 256 * 8; i += nthreads) {
        const int b = i >> 3;
        const uint32_t v = tqm_pack_bits(__shfl_sync(0xffffffffu, lv, b & 15), __shfl_sync(0xffffffffu, lv, b >> 4));
        pair4[(i >> 3) * (EW / 4) + (i & 7)] = make_uint4(v, v, v, v);
    }
}

/* The pair of byte (w >> sh) & 0xff from this lane's copy (pair_lane =
 * the table's bytes + 4 lane): byte * 128 (32 words per entry) in one
 * shift and mask; sh is a constant once unrolled. */
__device__ __forceinline__ uint32_t tqm_pair_of(const unsigned char *pair_lane, uint32_t w, int sh) {
    const uint32_t off = (sh >= 7 ? w >> (sh - 7) : w << (7 - sh)) & 0x7f80u;
    return *(const uint32_t *)(pair_lane + off);
}

/* Two keys' words of 4-bit codes (8 dims each, the same dims) interleaved
 * into bytes for the pair table: byte k of ev = (code of the first key) |
 * (code of the second) << 4 at dim 2k of the words, od likewise at dim
 * 2k + 1; each byte's pair is then a value product's B register (the two
 * keys are its k rows). */
__device__ __forceinline__ void tqm_interleave(uint32_t first, uint32_t second, uint32_t &ev, uint32_t &od) {
    const uint32_t m = 0x0f0f0f0fu;
    ev = (first & m) | ((second & m) << 4);
    od = ((first >> 4) & m) | (second & ~m);
}

/* Warp 0 of a block: which keys each of the block's (up to 16) query rows
 * sees, as key indices in position order from the oldest held key lo:
 * kr[r] .. kr[16 + r] for row r (padding rows see nothing); vr[0], vr[1]
 * the range some row sees; vr[2] the oldest key's ring slot. Why one warp
 * and shared memory: a loop over the 16 rows and a 64-bit remainder per
 * thread were ~200 instructions of every warp's serial path, for numbers
 * one warp can share. p: the position of the first query row. */
__device__ __forceinline__ void tqm_ranges(const tqs_args &a, int64_t p, int lane, int *kr, int *vr) {
    const int64_t end = p + a.Tq, lo = end > a.cap ? end - a.cap : 0;
    const int R = (int)(a.G * a.Tq), Tq = (int)a.Tq;
    int b0 = 0, b1 = 0; /* padding rows see nothing */
    if (lane < R) {
        const int64_t qp = p + lane % Tq;
        int64_t p0 = lo, p1 = end;
        if (a.causal && qp + 1 < p1) p1 = qp + 1;
        if (a.window > 0 && qp - a.window + 1 > p0) p0 = qp - a.window + 1;
        b0 = (int)(p0 - lo);
        b1 = (int)(p1 - lo);
    }
    if (lane < 16) kr[lane] = b0, kr[16 + lane] = b1;
    int vlo = b0 < b1 ? b0 : INT32_MAX, vhi = b0 < b1 ? b1 : 0; /* lanes 16.. and padding rows: nothing */
    if (lane >= 16) vlo = INT32_MAX, vhi = 0;
#pragma unroll
    for (int o = 8; o >= 1; o >>= 1) {
        vlo = min(vlo, __shfl_xor_sync(0xffffffffu, vlo, o));
        vhi = max(vhi, __shfl_xor_sync(0xffffffffu, vhi, o));
    }
    if (lane == 0) vr[0] = vlo, vr[1] = vhi;
    if (lane == 16) vr[2] = (int)(lo % a.cap);
}

/* A block's view of the cache after the programmatic wait: its rows, and
 * which keys (indices in position order from the oldest held key) it and
 * the lane's rows g, g + 8 see. */
struct tqm_span {
    int R, cap, Tq;     /* query rows (G Tq), ring capacity, query tokens */
    int rk0[2], rk1[2]; /* rows g, g + 8 see keys [rk0, rk1) */
    int lo_slot;        /* the oldest held key's ring slot */
    int j0, j1;         /* this block's keys (chunk blockIdx.x), clipped to what some row sees */
};
/* Fills sp through tqm_ranges (warp 0, into kr and vr) and one block
 * barrier, so every thread calls it. False when the device position is
 * negative: the block then returns (the merge kernel writes NaN rows). */
__device__ __forceinline__ bool tqm_block_span(const tqs_args &a, int warp, int lane, int *kr, int *vr, tqm_span &sp) {
    const int64_t p = cu_tq_pos(a.pos_t, a.pos);
    if (p < 0) return false;
    const int64_t end = p + a.Tq, lo = end > a.cap ? end - a.cap : 0;
    const int n_held = (int)(end - lo), g = lane >> 2;
    sp.R = (int)(a.G * a.Tq), sp.cap = (int)a.cap, sp.Tq = (int)a.Tq;
    if (warp == 0) tqm_ranges(a, p, lane, kr, vr);
    __syncthreads();
    sp.rk0[0] = kr[g], sp.rk0[1] = kr[g + 8], sp.rk1[0] = kr[16 + g], sp.rk1[1] = kr[16 + g + 8];
    sp.lo_slot = vr[2];
    sp.j0 = (int)blockIdx.x * (int)a.chunk, sp.j1 = sp.j0 + (int)a.chunk;
    if (sp.j1 > n_held) sp.j1 = n_held;
    sp.j0 = max(sp.j0, vr[0]);
    sp.j1 = min(sp.j1, vr[1]);
    return true;
}

/* Query rows w and w + 8 by warp w (< 8) of kv head hk, rotated (signs,
 * FWHT), times 1 / sqrt(D) and the scale, rounded to f16 and stored as the
 * score mma's A fragments: qf [D / 16][32 lanes] uint4, in the order of the
 * key codes' pieces (PK codes per piece: key code j of lane c is dim
 * ((j / PK) 4 + c) PK + j % PK, and k-step j / 4 takes it at position
 * j % 4). Two steps, so a kernel can put other work between them:
 * tqm_query_load issues every load of both rows (why all before any use:
 * one dependent global round trip per element made the prologue alone
 * several microseconds) into x, lane holding dims 32 k + lane, times the
 * signs; tqm_query_store rotates them in registers (strides < E) and
 * across lanes by shuffles (cu_tq_fwht_warp) and stores the fragments.
 * When both rows are real their transforms are one straight stretch of
 * code, so the two rows' shuffle chains overlap (a padding row, 14 of 16
 * rows for Gemma-3-4B, is zeros without loads or transform). R: the
 * block's real rows. */
template <int D>
__device__ __forceinline__ void tqm_query_load(const tqs_args &a, int64_t hk, int R, int warp, int lane,
                                               float (&x)[2][D / 32]) {
    constexpr int E = D / 32;
    const int Tq = (int)a.Tq;
#pragma unroll
    for (int hi = 0; hi < 2; hi++) {
        const int r = warp + 8 * hi;
        if (r < R) { /* warp-uniform */
            const int64_t h = hk * a.G + r / Tq, i = r % Tq;
            const float *qrow = a.q + h * a.qs[0] + i * a.qs[1];
#pragma unroll
            for (int k = 0; k < E; k++)
                x[hi][k] = __ldg(qrow + (int64_t)(32 * k + lane) * a.qs[2]) * __ldg(a.signs + 32 * k + lane);
        } else {
#pragma unroll
            for (int k = 0; k < E; k++) x[hi][k] = 0.0f;
        }
    }
}
template <int D, int PK>
__device__ __forceinline__ void tqm_query_store(const tqs_args &a, int R, int warp, int lane, float (&x)[2][D / 32],
                                                uint4 *qf) {
    constexpr int E = D / 32;
    const float qscale = cu_tq_rsqrt_d(D) * a.scale;
    if (warp + 8 < R) { /* warp-uniform */
        cu_tq_fwht_warp<E>(x[0], lane);
        cu_tq_fwht_warp<E>(x[1], lane);
    } else if (warp < R) {
        cu_tq_fwht_warp<E>(x[0], lane);
    }
    /* dims d, d + 1 (d even: this lane and the next) go to one register: d
     * lies in key piece d / PK of the row; lane cc = piece % 4 holds it as
     * its code j = (piece / 4) PK + d % PK, which k-step j / 4 takes at
     * position j % 4 */
    uint32_t *qw = (uint32_t *)qf;
#pragma unroll
    for (int hi = 0; hi < 2; hi++)
#pragma unroll
        for (int k = 0; k < E; k++) {
            const float nb = __shfl_xor_sync(0xffffffffu, x[hi][k], 1);
            if (!(lane & 1)) {
                const int d = 32 * k + lane, piece = d / PK, cc = piece & 3, j = (piece >> 2) * PK + d % PK;
                qw[((j >> 2) * 32 + warp * 4 + cc) * 4 + ((j & 3) >> 1) * 2 + hi] = tqm_pack(x[hi][k] * qscale, nb * qscale);
            }
        }
}
template <int D, int PK>
__device__ __forceinline__ void tqm_query_frags(const tqs_args &a, int64_t hk, int R, int warp, int lane, uint4 *qf) {
    float x[2][D / 32];
    tqm_query_load<D>(a, hk, R, warp, lane, x);
    tqm_query_store<D, PK>(a, R, warp, lane, x, qf);
}

/* Before the programmatic wait: an L2 prefetch of the block's first
 * `keys` keys' codes and norms (threads tid of nthreads). Why: a decode
 * step's cache rows were written steps ago and have left the L2, so the
 * first codes' load after the wait was a DRAM round trip on the step's
 * serial path; now it overlaps the kernel before. The position is a hint
 * read before the wait (a prefetch changes no value; the kernel reads it
 * again after). */
__device__ __forceinline__ void tqm_prefetch_first(const tqs_args &a, int64_t keys, int tid, int nthreads) {
    const int64_t p = a.pos_t ? (int64_t)*(const volatile int32_t *)a.pos_t : a.pos;
    if (p < 0) return;
    const int64_t end = p + a.Tq, lo = end > a.cap ? end - a.cap : 0, n_held = end - lo;
    const int64_t j0 = (int64_t)blockIdx.x * a.chunk;
    const int64_t j1 = min(min(j0 + a.chunk, n_held), j0 + keys);
    const int64_t head = (int64_t)blockIdx.y * a.cap;
    for (int64_t j = j0 + tid; j < j1; j += nthreads) {
        const int64_t sl = head + (lo + j) % a.cap; /* the ring in position order */
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a.kc + sl * a.krow));
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a.vc + sl * a.vrow));
        if ((j - j0) % 32 == 0) { /* norms: one 128-byte line per 32 keys */
            asm volatile("prefetch.global.L2 [%0];" ::"l"(a.kn + sl));
            asm volatile("prefetch.global.L2 [%0];" ::"l"(a.vn + sl));
        }
    }
}

#endif
