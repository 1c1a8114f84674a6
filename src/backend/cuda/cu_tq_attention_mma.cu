/* TurboQuant decode attention on the tensor cores: the partial kernel of
 * mlxn_tq_sdpa for up to 16 query rows per kv head (a decode step of any
 * GQA group up to 16, or a short prefill chunk), head dims 64/128/256 and
 * 4..8-bit codes (4-bit as nibbles, 5..8 one byte each; tq_layout.h),
 * followed by its own merge kernel; 2- and 3-bit widths and larger groups
 * stay on the f32 kernels of cu_tq_attention.cu.
 *
 * Why: the f32 kernel spends ~2 x 16 x 256 FMAs per key and group (scores
 * and values for 16 rows) on the CUDA cores, far more time than the codes
 * take to stream; here both products run as mma.sync m16n8k16 (f16 in,
 * f32 accumulate).
 *
 * tq_attn_mma, grid (chunk, kv head), 8 warps. The block rotates its query
 * rows once (signs, FWHT in registers and shuffles, 1/sqrt(D), scale) and
 * stores them as f16 A fragments. Warp w walks the 16-key steps w, w + 8,
 * ... of the chunk (neighbouring warps read neighbouring keys), holding its
 * own running max / denominator per row and the [16, D] output in f32
 * accumulators:
 *   scores, two 8-key n-tiles: lane (g = lane / 4, c = lane % 4) loads its
 *     share of key g's code row in 16-byte pieces c, c + 4, ... (see
 *     tqm_load_pieces); k-step s takes the lane's codes 4s .. 4s + 3 (a
 *     permutation of the reduction index, applied to the query fragments
 *     too), looked up in f16 levels in shared memory (4-bit: a byte of two
 *     codes is one lookup in a pair table, one copy of it per bank so the
 *     lookups never conflict). Scores times norm / sqrt(D);
 *     softcap; per-row visibility (causal, window, ring, chunk end) as -inf;
 *   online softmax per row in f32 (the row's 16 scores sit in 4 lanes);
 *   values: the weights of keys 2c, 2c + 1 (+ 8) times the value norms /
 *     sqrt(D), rounded to f16, are exactly the A fragment of the next mma
 *     (no shuffles); lane g loads pieces g, g + 8, ... of the 4 keys' value
 *     rows, its codes being the B columns of the n-tiles.
 * The 8 warps then merge (parked in per-warp shared-memory slots, added by
 * all threads in a fixed order, each slot scaled to the block's max of its
 * row: deterministic), each row is rotated back (FWHT per
 * chunk: the transform is linear), and the block writes one partial per
 * row. tq_attn_mma_combine then sums the chunks' partials with their
 * softmax weights over many blocks and applies sign / sqrt(D). Both run
 * with programmatic dependent launch.
 *
 * Exactness: q (after rotation and scaling) and the softmax weights times
 * the value norms are rounded to f16 (relative 2^-11), levels too (f16
 * holds each Lloyd-Max level to ~5e-4 relative, far inside a code's own
 * error); sums are f32. Results match the f32 kernel to ~1e-7 normalized
 * squared error (test_backend_tq bounds it), not bit for bit. */
#include <cuda_fp16.h>
#include <math.h>

#include "backend/cuda/cu_tq_attn.cuh"

enum {
    TQM_WARPS = 8,
    TQM_THREADS = 32 * TQM_WARPS,
    TQM_STEP = 16, /* keys per warp step: two n-tiles of scores, one k-step of values */
};

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

/* Dynamic shared memory of tq_attn_mma at head dim D (bytes). */
static size_t tqm_smem(int D) {
    return (size_t)D * 32                      /* qf: [D/16][32] uint4 */
           + sizeof(uint32_t) * 256 * 32       /* pair: [256][32] */
           + sizeof(float) * TQM_WARPS * 16 * (size_t)D /* red: a [16][D] slot per warp */
           + sizeof(float) * 16 * ((size_t)D + 1)      /* nat: the block's sum, [16][D + 1] */
           + sizeof(float) * 2 * TQM_WARPS * 16 /* mw, lw */
           + sizeof(unsigned short) * 512      /* lvk, lvv */
           + sizeof(int) * 36;                 /* kr, vr */
}

/* One step's codes and norms in registers: key codes of n-tile t (key
 * kb + 8t + g, lane c's pieces), value codes of keys kb + 2c + {0, 1} and
 * kb + 8 + 2c + {0, 1} (lane g's pieces), and both norms / sqrt(D) of the keys
 * kb + 8t + 2c + e at [2t + e]. */
template <int KW, int VW>
struct tqm_regs {
    uint32_t k[2][KW];
    uint32_t v[4][VW];
    float kn[4], vn[4];
};

/* Before the programmatic wait: an L2 prefetch of the block's first steps
 * (one per warp) of key and value codes and their norms. Why: a decode
 * step's cache rows were written steps ago and have left the L2, so the
 * first codes' load after the wait was a DRAM round trip on the step's
 * serial path; now it overlaps the kernel before. The position is a hint
 * read before the wait (a prefetch changes no value; the kernel reads it
 * again after). */
__device__ __forceinline__ void tqm_prefetch_first_steps(const tqs_args &a) {
    const int64_t p = a.pos_t ? (int64_t)*(const volatile int32_t *)a.pos_t : a.pos;
    if (p < 0) return;
    const int64_t end = p + a.Tq, lo = end > a.cap ? end - a.cap : 0, n_held = end - lo;
    const int64_t j0 = (int64_t)blockIdx.x * a.chunk;
    const int64_t j1 = min(min(j0 + a.chunk, n_held), j0 + (int64_t)TQM_WARPS * TQM_STEP);
    const int64_t head = (int64_t)blockIdx.y * a.cap;
    for (int64_t j = j0 + threadIdx.x; j < j1; j += TQM_THREADS) {
        const int64_t sl = head + (lo + j) % a.cap; /* the ring in position order */
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a.kc + sl * a.krow));
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a.vc + sl * a.vrow));
        if ((j - j0) % 32 == 0) { /* norms: one 128-byte line per 32 keys */
            asm volatile("prefetch.global.L2 [%0];" ::"l"(a.kn + sl));
            asm volatile("prefetch.global.L2 [%0];" ::"l"(a.vn + sl));
        }
    }
}

template <int KS, int VS, int D>
__global__ void __launch_bounds__(TQM_THREADS, 1) tq_attn_mma(tqs_args a) {
    if (a.pf) tqm_prefetch_first_steps(a);
    constexpr int NS = D / 16;       /* k-steps of the score product */
    constexpr int NU = D / 8;        /* n-tiles of the value product */
    constexpr int KBY = D * KS / 32; /* key code bytes per lane and key (a quarter row) */
    constexpr int VBY = D * VS / 64; /* value code bytes per lane and key (an eighth of a row) */
    constexpr int KW = KBY / 4, VW = VBY / 4;
    /* codes per load piece (tqm_load_pieces): key code j of lane c is dim
     * ((j / PK) 4 + c) PK + j % PK; value code u of lane g is dim
     * ((u / PV) 8 + g) PV + u % PV */
    constexpr int PK = (KBY < 16 ? KBY : 16) * 8 / KS, PV = (VBY < 16 ? VBY : 16) * 8 / VS;
    /* the next step's codes are loaded before this one's products where the
     * registers allow (two sets next to the 4 D / 8 accumulators) */
    constexpr bool PF = D * (KS + VS) <= 2048;
    extern __shared__ __align__(16) unsigned char tqm_sm[];
    uint4 *qf = (uint4 *)tqm_sm;                          /* [NS][32] query A fragments, f16 */
    uint32_t *pair = (uint32_t *)(qf + NS * 32);          /* [256][32] 4-bit pair table, one copy per bank (below) */
    float *red = (float *)(pair + 256 * 32);              /* [8][16 * D] merge slots, a warp's accumulators */
    float *nat = red + TQM_WARPS * 16 * D;                /* [16][D + 1] the block's sums in dim order */
    float *mw = nat + 16 * (D + 1);                       /* [8][16] per warp: running max of each row */
    float *lw = mw + TQM_WARPS * 16;                      /* [8][16] per warp: denominator of each row */
    unsigned short *lvk = (unsigned short *)(lw + TQM_WARPS * 16); /* [256] key levels, f16 bits */
    unsigned short *lvv = lvk + 256;                      /* [256] value levels */
    int *kr = (int *)(lvv + 256);                         /* [2][16] visible keys [k0, k1) of each row */
    int *vr = kr + 32;                                    /* [3] keys some row sees [vr0, vr1); the first key's ring slot */
    /* pair: the 4-bit pair table (a byte of two codes -> their levels as
     * an f16 pair), one copy per bank: entry b of copy l at word 32 b + l.
     * Lane l reads only copy l, so a warp's 32 lookups of any 32 bytes hit
     * 32 different banks. Why: with one copy, the bytes of real codes (the
     * inner levels are the likely ones) piled ~4 lanes on a bank: 0.76 M
     * of the 1.4 M shared-load wavefronts at the goal shape were replays.
     * Keys and values share it: both 4-bit sides use the one 4-bit
     * codebook. Its own 32 KB, not the merge slots': a warp parks its
     * accumulators while others may still be in their steps. */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, c = lane & 3;
    const int ch = blockIdx.x;
    const int64_t hk = blockIdx.y;
    const float rd = cu_tq_rsqrt_d(D);

    /* Level tables. For 4-bit codes, pair tables: a byte of two codes ->
     * both levels as one f16 pair, i.e. a B fragment register in one
     * lookup (why: per code, a shift, a mask, an address and a 16-bit load
     * were most of the kernel's instructions). A side with 4-bit codes
     * reads only its pair table, so its level table is not filled. */
    for (int i = tid; i < 256; i += TQM_THREADS) {
        if (KS != 4) lvk[i] = __half_as_ushort(__float2half_rn(i < (1 << a.kb) ? tqm_level(a.kb, i) : 0.0f));
        if (VS != 4) lvv[i] = __half_as_ushort(__float2half_rn(i < (1 << a.vb) ? tqm_level(a.vb, i) : 0.0f));
    }
    if (KS == 4 || VS == 4) {
        /* 16 bytes per store: the 4 words of piece i are 4 copies of byte
         * b = i / 8's pair (8 pieces per entry); the levels come from the
         * lanes (lane i holds level i % 16) by two shuffles */
        const unsigned short lv = __half_as_ushort(__float2half_rn(tqm_level(4, lane & 15)));
        uint4 *pair4 = (uint4 *)pair; /* [256 * 8] */
        for (int i = tid; i < 256 * 8; i += TQM_THREADS) {
            const int b = i >> 3;
            const uint32_t v = tqm_pack_bits(__shfl_sync(0xffffffffu, lv, b & 15), __shfl_sync(0xffffffffu, lv, b >> 4));
            pair4[i] = make_uint4(v, v, v, v);
        }
    }
    /* this lane's copy of the pair table: the pair of byte (w >> sh) & 0xff */
    const unsigned char *pair_lane = (const unsigned char *)pair + 4 * lane;
    auto pair_of = [&](uint32_t w, int sh) -> uint32_t {
        /* byte * 128 (32 words per entry) in one shift and mask; sh is a constant once unrolled */
        const uint32_t off = (sh >= 7 ? w >> (sh - 7) : w << (7 - sh)) & 0x7f80u;
        return *(const uint32_t *)(pair_lane + off);
    };
    /* Programmatic launch (tqm_launch): the tables above read only
     * constants, so they are filled while the kernel before this one
     * finishes; everything from here reads what earlier kernels wrote. */
    cu_pdl_wait();
    cu_pdl_launch_dependents();
    const int64_t p = cu_tq_pos(a.pos_t, a.pos);
    if (p < 0) return; /* the combine kernel writes NaN rows */
    const int64_t end = p + a.Tq, lo = end > a.cap ? end - a.cap : 0;
    const int n_held = (int)(end - lo), R = (int)(a.G * a.Tq), cap = (int)a.cap, Tq = (int)a.Tq;
    /* Warp 0's lanes 0..15: the keys row `lane` sees, and (reduced over
     * the lanes by shuffles) the range some row sees; lane 16: the first
     * key's ring slot. Why here and not in every thread: a loop over the
     * 16 rows and a 64-bit remainder per thread were ~200 instructions of
     * every warp's serial path, for numbers one warp can share. */
    if (warp == 0) {
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
    __syncthreads();
    const int rk0[2] = {kr[g], kr[g + 8]}, rk1[2] = {kr[16 + g], kr[16 + g + 8]};
    const int lo_slot = vr[2];
    /* this block's keys, clipped to what some row can see */
    int j0 = ch * (int)a.chunk, j1 = j0 + (int)a.chunk;
    if (j1 > n_held) j1 = n_held;
    j0 = max(j0, vr[0]);
    j1 = min(j1, vr[1]);
    /* this kv head's rows (64-bit once; a key's row is then its 32-bit
     * slot times the row's compile-time size: one wide multiply-add per
     * address, where 64-bit slot arithmetic was a tenth of a step) */
    constexpr int KROW = D * KS / 8, VROW = D * VS / 8; /* a.krow, a.vrow (cu_tq_attn_mma_fits) */
    const uint8_t *kch = a.kc + hk * a.cap * KROW, *vch = a.vc + hk * a.cap * VROW;
    const float *knh = a.kn + hk * a.cap, *vnh = a.vn + hk * a.cap;
    /* slot of key j (0 <= j < n_held) within the head: the ring in position order */
    auto slot = [&](int j) -> unsigned {
        int sl = lo_slot + j;
        if (sl >= cap) sl -= cap;
        return (unsigned)sl;
    };
    auto load = [&](int kb, tqm_regs<KW, VW> &r) {
        const int last = j1 - 1; /* keys past the chunk read a held row; their weights are 0 */
#pragma unroll
        for (int t = 0; t < 2; t++) tqm_load_pieces<KBY>(kch + (size_t)slot(min(kb + 8 * t + g, last)) * KROW, c, 4, r.k[t]);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const unsigned sl = slot(min(kb + 8 * (i >> 1) + 2 * c + (i & 1), last));
            tqm_load_pieces<VBY>(vch + (size_t)sl * VROW, g, 8, r.v[i]);
            r.kn[i] = __ldg(knh + sl) * rd;
            r.vn[i] = __ldg(vnh + sl) * rd;
        }
    };
    /* The warp's first step of codes is on its way before the query is
     * rotated (why: the rotation is a chain of dependent shuffles of a few
     * microseconds, and at short contexts the codes' round trip after it
     * was most of what remained) */
    const int nst = j1 > j0 ? (j1 - j0 + TQM_STEP - 1) / TQM_STEP : 0;
    tqm_regs<KW, VW> cur, nxt;
    if (warp < nst) load(j0 + warp * TQM_STEP, cur);
    /* Query rows w and w + 8 by warp w, in registers: lane holds dims
     * 32 k + lane. All loads are issued before any use (why: one
     * dependent global round trip per element made the prologue alone
     * several microseconds), the FWHT runs in registers (strides < E) and
     * across lanes by shuffles (cu_tq_fwht_warp); when both rows are real
     * their loads and transforms are one straight stretch of code, so the
     * two rows' shuffle chains overlap (a padding row, 14 of 16 rows for
     * Gemma-3-4B, is zeros without loads or transform). Then each pair of
     * dims goes, scaled and rounded to f16, to its place in the A
     * fragments. */
    {
        constexpr int E = D / 32;
        const float qscale = rd * a.scale;
        float x[2][E];
        auto load_q = [&](int r, float *xr) {
            const int64_t h = hk * a.G + r / Tq, i = r % Tq;
            const float *qrow = a.q + h * a.qs[0] + i * a.qs[1];
#pragma unroll
            for (int k = 0; k < E; k++) xr[k] = __ldg(qrow + (int64_t)(32 * k + lane) * a.qs[2]) * __ldg(a.signs + 32 * k + lane);
        };
        if (warp + 8 < R) { /* warp-uniform */
            load_q(warp, x[0]);
            load_q(warp + 8, x[1]);
            cu_tq_fwht_warp<E>(x[0], lane);
            cu_tq_fwht_warp<E>(x[1], lane);
        } else {
#pragma unroll
            for (int k = 0; k < E; k++) x[0][k] = x[1][k] = 0.0f;
            if (warp < R) {
                load_q(warp, x[0]);
                cu_tq_fwht_warp<E>(x[0], lane);
            }
        }
        /* dims d, d + 1 (d even: this lane and the next) go to one
         * register: d lies in key piece d / PK of the row; lane cc =
         * piece % 4 holds it as its code j = (piece / 4) PK + d % PK,
         * which k-step j / 4 takes at position j % 4 */
        uint32_t *qw = (uint32_t *)qf;
#pragma unroll
        for (int hi = 0; hi < 2; hi++)
#pragma unroll
            for (int k = 0; k < E; k++) {
                const float nb = __shfl_xor_sync(0xffffffffu, x[hi][k], 1);
                if (!(lane & 1)) {
                    const int d = 32 * k + lane, piece = d / PK, cc = piece & 3, j = (piece >> 2) * PK + d % PK;
                    qw[((j >> 2) * 32 + warp * 4 + cc) * 4 + ((j & 3) >> 1) * 2 + hi] =
                        tqm_pack(x[hi][k] * qscale, nb * qscale);
                }
            }
    }
    __syncthreads();

    float acc[NU][4];
#pragma unroll
    for (int u = 0; u < NU; u++) acc[u][0] = acc[u][1] = acc[u][2] = acc[u][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    auto step = [&](int kb, const tqm_regs<KW, VW> &r) {
        /* two accumulators per n-tile (even / odd k-steps): two shorter
         * dependent mma chains instead of one of NS */
        float sc[2][4], sc2[2][4];
#pragma unroll
        for (int t = 0; t < 2; t++)
#pragma unroll
            for (int e = 0; e < 4; e++) sc[t][e] = sc2[t][e] = 0.0f;
#pragma unroll
        for (int s = 0; s < NS; s++) {
            const uint4 qa = qf[s * 32 + lane];
            const uint32_t A[4] = {qa.x, qa.y, qa.z, qa.w};
#pragma unroll
            for (int t = 0; t < 2; t++) {
                uint32_t b0, b1;
                if (KS == 4) { /* dims 4s, 4s + 1 are byte 2s (low nibble even), 4s + 2, 4s + 3 byte 2s + 1 */
                    const uint32_t w = r.k[t][s >> 1], sh = (s & 1) * 16;
                    b0 = pair_of(w, sh);
                    b1 = pair_of(w, sh + 8);
                } else {
                    b0 = tqm_pack_bits(lvk[tqm_code<KS>(r.k[t], 4 * s)], lvk[tqm_code<KS>(r.k[t], 4 * s + 1)]);
                    b1 = tqm_pack_bits(lvk[tqm_code<KS>(r.k[t], 4 * s + 2)], lvk[tqm_code<KS>(r.k[t], 4 * s + 3)]);
                }
                tqm_mma(s & 1 ? sc2[t] : sc[t], A, b0, b1);
            }
        }
#pragma unroll
        for (int t = 0; t < 2; t++)
#pragma unroll
            for (int e = 0; e < 4; e++) sc[t][e] += sc2[t][e];
        /* sc[t][2h + e]: row g + 8h, key kb + 8t + 2c + e */
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int t = 0; t < 2; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int key = kb + 8 * t + 2 * c + e;
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    float x = sc[t][2 * h + e] * r.kn[2 * t + e];
                    if (a.softcap > 0.0f) x = tanhf(x / a.softcap) * a.softcap;
                    x = (key >= rk0[h] && key < rk1[h] && key < j1) ? x : -INFINITY;
                    sc[t][2 * h + e] = x;
                    mx[h] = fmaxf(mx[h], x);
                }
            }
        float corr[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
            const float mnew = fmaxf(m[h], mx[h]);
            corr[h] = m[h] == -INFINITY ? 0.0f : __expf(m[h] - mnew);
            float sum = 0.0f;
#pragma unroll
            for (int t = 0; t < 2; t++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float x = sc[t][2 * h + e];
                    const float pw = x == -INFINITY ? 0.0f : __expf(x - mnew);
                    sc[t][2 * h + e] = pw;
                    sum += pw;
                }
            l[h] = l[h] * corr[h] + sum;
            m[h] = mnew;
        }
        /* the accumulators only need rescaling when some row's max moved
         * (rare after the first steps; the branch is warp-uniform) */
        if (__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f))
#pragma unroll
            for (int u = 0; u < NU; u++) {
                acc[u][0] *= corr[0], acc[u][1] *= corr[0];
                acc[u][2] *= corr[1], acc[u][3] *= corr[1];
            }
        /* weights times value norms: the A fragment (keys 2c, 2c + 1, then 2c + 8, 2c + 9) */
        const uint32_t P[4] = {tqm_pack(sc[0][0] * r.vn[0], sc[0][1] * r.vn[1]),
                               tqm_pack(sc[0][2] * r.vn[0], sc[0][3] * r.vn[1]),
                               tqm_pack(sc[1][0] * r.vn[2], sc[1][1] * r.vn[3]),
                               tqm_pack(sc[1][2] * r.vn[2], sc[1][3] * r.vn[3])};
        if (VS == 4) {
            /* the two keys of a B register interleaved into bytes: for dims
             * 8i + 2k, byte k of ev = (code of key 2c) | (code of key 2c + 1)
             * << 4 (od likewise for the odd dims), one pair lookup each */
#pragma unroll
            for (int i = 0; i < VW; i++) {
                const uint32_t m = 0x0f0f0f0fu;
                const uint32_t ev0 = (r.v[0][i] & m) | ((r.v[1][i] & m) << 4), od0 = ((r.v[0][i] >> 4) & m) | (r.v[1][i] & ~m);
                const uint32_t ev1 = (r.v[2][i] & m) | ((r.v[3][i] & m) << 4), od1 = ((r.v[2][i] >> 4) & m) | (r.v[3][i] & ~m);
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    tqm_mma(acc[8 * i + 2 * k], P, pair_of(ev0, 8 * k), pair_of(ev1, 8 * k));
                    tqm_mma(acc[8 * i + 2 * k + 1], P, pair_of(od0, 8 * k), pair_of(od1, 8 * k));
                }
            }
        } else {
#pragma unroll
            for (int u = 0; u < NU; u++) {
                const uint32_t b0 = tqm_pack_bits(lvv[tqm_code<VS>(r.v[0], u)], lvv[tqm_code<VS>(r.v[1], u)]);
                const uint32_t b1 = tqm_pack_bits(lvv[tqm_code<VS>(r.v[2], u)], lvv[tqm_code<VS>(r.v[3], u)]);
                tqm_mma(acc[u], P, b0, b1);
            }
        }
    };

    if (warp < nst) {
        for (int st = warp; st < nst; st += TQM_WARPS) {
            const int nx = st + TQM_WARPS;
            if (PF && nx < nst) load(j0 + nx * TQM_STEP, nxt);
            step(j0 + st * TQM_STEP, cur);
            if (nx < nst) {
                if (PF) cur = nxt;
                else load(j0 + nx * TQM_STEP, cur);
            }
        }
    }
#pragma unroll
    for (int h = 0; h < 2; h++) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    }

    /* Merge the warps. Every warp parks its raw accumulators in its own
     * slot, in lane order (conflict-free 16-byte stores), with its running
     * max and denominator per row; after one barrier each thread sums the
     * 8 slots of its elements in a fixed order (deterministic), each slot
     * scaled to the block's max of its row, and puts the sum at its dim:
     * column n of n-tile u is value dim ((u / PV) 8 + n) PV + u % PV. Why
     * not a tree of warp pairs: its rounds ran one after another on one
     * warp. Why the scaling in the sum: a thread's elements all belong to
     * the same two rows (its lane in the slot), so it works out those rows'
     * 8 factors itself, where a pass of 16 threads, a barrier and a
     * rescale of every accumulator stood before the parking. */
    if (c == 0) {
        mw[warp * 16 + g] = m[0], mw[warp * 16 + g + 8] = m[1];
        lw[warp * 16 + g] = l[0], lw[warp * 16 + g + 8] = l[1];
    }
    float4 *rb = (float4 *)red; /* [8][NU][32] */
    if (g < R) /* a lane whose rows g, g + 8 are both padding has nothing to add (its slots are never read) */
#pragma unroll
        for (int u = 0; u < NU; u++)
            rb[(warp * NU + u) * 32 + lane] = make_float4(acc[u][0], acc[u][1], acc[u][2], acc[u][3]);
    __syncthreads();
    {
        const int ln = tid & 31, gg = ln >> 2, cc = ln & 3; /* the same for every element e = tid + 256 i */
        if (gg < R) { /* else padding rows only (a group of fewer than 8 rows) */
            float f[2][TQM_WARPS];
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int row = gg + 8 * h;
                float M = -INFINITY, L = 0.0f;
#pragma unroll
                for (int w = 0; w < TQM_WARPS; w++) M = fmaxf(M, mw[w * 16 + row]);
#pragma unroll
                for (int w = 0; w < TQM_WARPS; w++) {
                    const float mv = mw[w * 16 + row];
                    f[h][w] = mv == -INFINITY ? 0.0f : __expf(mv - M);
                    L += f[h][w] * lw[w * 16 + row];
                }
                if (tid < 32 && cc == 0 && row < R) { /* one thread per row writes the row's partial max, denominator */
                    const int64_t orow = (hk * a.G + row / Tq) * a.Tq + row % Tq;
                    a.pm[orow * a.nchunks + ch] = M;
                    a.pl[orow * a.nchunks + ch] = L;
                }
            }
            for (int e = tid; e < NU * 32; e += TQM_THREADS) {
                const int u = e >> 5;
                float4 t = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
                for (int w = 0; w < TQM_WARPS; w++) {
                    const float4 o = rb[w * NU * 32 + e];
                    t.x += f[0][w] * o.x, t.y += f[0][w] * o.y, t.z += f[1][w] * o.z, t.w += f[1][w] * o.w;
                }
                const int d0 = ((u / PV) * 8 + 2 * cc) * PV + u % PV, d1 = d0 + PV; /* columns 2cc, 2cc + 1 */
                nat[gg * (D + 1) + d0] = t.x, nat[gg * (D + 1) + d1] = t.y;
                nat[(gg + 8) * (D + 1) + d0] = t.z, nat[(gg + 8) * (D + 1) + d1] = t.w;
            }
        }
    }
    __syncthreads();
    /* Un-rotate the partial here (the FWHT is linear, so the combine's
     * weighted sum of rotated-back partials is the rotated-back sum; why:
     * the combine then needs no whole-row step and spreads over many
     * blocks). Warp w takes rows w and w + 8 (both in one stretch of code,
     * as the query above), lane l dims 32 k + l. */
    {
        constexpr int E = D / 32;
        const int nr = warp + 8 < R ? 2 : warp < R ? 1 : 0; /* warp-uniform */
        float x[2][E];
        auto out_row = [&](int r, const float *xr) {
            const int64_t row = (hk * a.G + r / Tq) * a.Tq + r % Tq;
            float *dst = a.pacc + (row * a.nchunks + ch) * D + lane;
#pragma unroll
            for (int k = 0; k < E; k++) dst[32 * k] = xr[k];
        };
        auto load_row = [&](int r, float *xr) {
#pragma unroll
            for (int k = 0; k < E; k++) xr[k] = nat[r * (D + 1) + 32 * k + lane];
        };
        if (nr == 2) {
            load_row(warp, x[0]);
            load_row(warp + 8, x[1]);
            cu_tq_fwht_warp<E>(x[0], lane);
            cu_tq_fwht_warp<E>(x[1], lane);
            out_row(warp, x[0]);
            out_row(warp + 8, x[1]);
        } else if (nr == 1) {
            load_row(warp, x[0]);
            cu_tq_fwht_warp<E>(x[0], lane);
            out_row(warp, x[0]);
        }
    }
}

/* The merge for tq_attn_mma's partials (already rotated back): grid
 * (rows, D / 32), TQMC_THREADS threads = 8 groups of 32 dims, group j
 * taking chunks j, j + 8, ... Every load of a thread's chunks is issued
 * first (its partials and their max and denominator), then each group
 * keeps an online-softmax sum of its chunks, and the 8 groups meet in
 * shared memory, added in a fixed order (deterministic). Why this shape:
 * the previous version read the maxima, then the denominators, then the
 * partials, three dependent global round trips and three block barriers
 * for a merge of a few kilobytes (4.8 us at 2 chunks, 6.8 us at 66).
 * Output dim d = sum / denominator times sign_d / sqrt(D). */
enum { TQMC_THREADS = 256, TQMC_GROUPS = TQMC_THREADS / 32, TQMC_BATCH = 16 /* chunks per group per pass */ };
__global__ void __launch_bounds__(TQMC_THREADS) tq_attn_mma_combine(tqs_args a) {
    __shared__ float gm[TQMC_GROUPS], gl[TQMC_GROUPS];
    __shared__ float gsum[TQMC_GROUPS][32];
    const int D = a.D, tid = threadIdx.x, nc = a.nchunks, grp = tid >> 5, lane = tid & 31;
    const int64_t row = blockIdx.x;
    const int d = blockIdx.y * 32 + lane;
    float *o = a.out + row * D;
    cu_pdl_wait(); /* programmatic launch: the partials are complete from here */
    if (cu_tq_pos(a.pos_t, a.pos) < 0) { /* a bad device position: visibly wrong, never plausible */
        if (grp == 0 && d < D) o[d] = NAN;
        return;
    }
    const float *pm = a.pm + row * nc, *pl = a.pl + row * nc, *pa = a.pacc + row * nc * D + d;
    float m = -INFINITY, l = 0.0f, s = 0.0f; /* this group's running max, denominator, sum at dim d */
    for (int k0 = grp; k0 < nc; k0 += TQMC_GROUPS * TQMC_BATCH) {
        float vm[TQMC_BATCH], vl[TQMC_BATCH], va[TQMC_BATCH];
#pragma unroll
        for (int i = 0; i < TQMC_BATCH; i++) {
            const int k = k0 + i * TQMC_GROUPS;
            const bool ok = k < nc;
            vm[i] = ok ? pm[k] : -INFINITY;
            vl[i] = ok ? pl[k] : 0.0f;
            va[i] = ok && d < D ? pa[(int64_t)k * D] : 0.0f;
        }
        float mb = m;
#pragma unroll
        for (int i = 0; i < TQMC_BATCH; i++) mb = fmaxf(mb, vm[i]);
        if (mb == -INFINITY) continue; /* nothing visible yet */
        const float f = m == -INFINITY ? 0.0f : __expf(m - mb);
        l *= f, s *= f;
#pragma unroll
        for (int i = 0; i < TQMC_BATCH; i++) {
            const float w = vm[i] == -INFINITY ? 0.0f : __expf(vm[i] - mb);
            l = fmaf(w, vl[i], l);
            s = fmaf(w, va[i], s);
        }
        m = mb;
    }
    if (lane == 0) gm[grp] = m, gl[grp] = l;
    gsum[grp][lane] = s;
    __syncthreads();
    if (grp == 0 && d < D) {
        float M = -INFINITY;
        for (int j = 0; j < TQMC_GROUPS; j++) M = fmaxf(M, gm[j]);
        float L = 0.0f, t = 0.0f;
        for (int j = 0; j < TQMC_GROUPS; j++) {
            const float f = gm[j] == -INFINITY ? 0.0f : __expf(gm[j] - M);
            L = fmaf(f, gl[j], L);
            t = fmaf(f, gsum[j][lane], t);
        }
        const float y = L > 0.0f ? t * (1.0f / L) : 0.0f; /* no visible key: zeros */
        o[d] = y * (cu_tq_rsqrt_d(D) * a.signs[d]);
    }
}

bool cu_tq_attn_mma_fits(const tqs_args &a) {
    const int sb_k = a.kb <= 4 ? 4 : 8, sb_v = a.vb <= 4 ? 4 : 8;
    return a.G * a.Tq <= 16 && (a.D == 64 || a.D == 128 || a.D == 256) && a.kb >= 4 && a.kb <= 8 && a.vb >= 4 &&
           a.vb <= 8 && a.krow == (int64_t)a.D * sb_k / 8 && a.vrow == (int64_t)a.D * sb_v / 8 &&
           a.cap < INT32_MAX / 2;
}

int64_t cu_tq_attn_mma_chunk(int64_t span, int64_t hkv, int sms) {
    /* one block per multiprocessor over all kv heads (8 warps each: enough
     * code bytes in flight), each warp at least one 16-key step */
    int64_t want = (sms > 0 ? sms : 1) / hkv;
    if (want < 1) want = 1;
    int64_t chunk = (span + want - 1) / want;
    chunk = (chunk + TQM_STEP - 1) / TQM_STEP * TQM_STEP;
    return chunk < TQM_STEP * TQM_WARPS ? TQM_STEP * TQM_WARPS : chunk;
}

template <int KS, int VS, int D>
static mlxn_status tqm_launch(mlxn_stream *s, const tqs_args &a, int64_t hkv) {
    const size_t smem = tqm_smem(D);
    auto k = tq_attn_mma<KS, VS, D>;
    if (smem > 48 * 1024) MLXN_TRY(cu_smem_allow(s, "tq_sdpa", k, smem));
    /* both with programmatic dependent launch (cu_launch): the partial's
     * level tables and the combine's launch overlap the kernel before */
    cu_launch(s, k, dim3((unsigned)a.nchunks, (unsigned)hkv), dim3(TQM_THREADS), smem, a);
    MLXN_TRY(cu_launched(s, "tq_sdpa", "tq_attn_mma"));
    const int64_t rows = a.G * a.Tq * hkv;
    cu_launch(s, tq_attn_mma_combine, dim3((unsigned)rows, (unsigned)((D + 31) / 32)), dim3(TQMC_THREADS), 0, a);
    return cu_launched(s, "tq_sdpa", "tq_attn_mma_combine");
}

template <int KS, int VS>
static mlxn_status tqm_launch_d(mlxn_stream *s, const tqs_args &a, int64_t hkv) {
    switch (a.D) {
    case 64: return tqm_launch<KS, VS, 64>(s, a, hkv);
    case 128: return tqm_launch<KS, VS, 128>(s, a, hkv);
    default: return tqm_launch<KS, VS, 256>(s, a, hkv);
    }
}

mlxn_status cu_tq_attn_mma_launch(mlxn_stream *s, const tqs_args &a, int64_t hkv) {
    const bool k8 = a.kb > 4, v8 = a.vb > 4;
    if (k8) return v8 ? tqm_launch_d<8, 8>(s, a, hkv) : tqm_launch_d<8, 4>(s, a, hkv);
    return v8 ? tqm_launch_d<4, 8>(s, a, hkv) : tqm_launch_d<4, 4>(s, a, hkv);
}
