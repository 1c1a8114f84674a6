/* TurboQuant decode attention on the tensor cores with the value dims
 * split over the warps: the partial kernel of mlxn_tq_sdpa at head dim 128
 * or 256 for 4-bit keys and values, or byte codes (5..8 bits, tq8 the
 * default width) for both, and up to 16 query rows per kv head (a decode
 * step of a GQA group up to 16), merged by tq_attn_mma_combine
 * (cu_tq_attention_mma.cu), whose partials it writes in the same form.
 * (Byte codes at head dim 128 run here only when forced:
 * cu_tq_attn_split_pick says why.)
 *
 * Why a second kernel: in tq_attn_mma every warp owns whole 16-key steps
 * and the whole [16, 256] output, 128 f32 accumulators per lane, so it
 * runs at 255 registers, one block of 8 warps per SM that takes the whole
 * register file (nothing else can be resident beside it, not even the
 * merge kernel waiting for it), and its 8 warps' outputs meet in a 128 KB
 * merge at the end. Measured there (docs/perf.md): at 20000 keys the steps
 * were latency-bound at 2 warps per scheduler, and the block merge was
 * ~2.5 of ~19 us.
 *
 * Here a block of W = 8 warps (at most TS_MAXREG = 160 registers, so the
 * merge kernel can wait resident beside it; 140 KB of shared memory at
 * KPW = 8, 206 KB at 16: one block a SM) walks its chunk in tiles of KPW W
 * keys, in two phases per tile:
 *   scores: warp w takes the tile's keys KPW w .. KPW w + KPW - 1 (KPW =
 *     8 or 16: one or two n-tiles; the query's A fragments and the
 *     key-code pieces exactly as in tq_attn_mma), scales, softcaps and
 *     masks them, and posts its row maxima; after a barrier every warp
 *     forms the same tile maximum per row (so every warp holds the same
 *     running max), and warp w writes the weights of its keys times their
 *     value norms, in f16, as its part of the value product's A fragments;
 *   values: after a second barrier warp w owns the 64 value dims of
 *     group w % (D / 64) for the tile's key group w / (D / 64) (at head
 *     dim 256: quarter w % 4, key group w / 4, KPW / 4 k-steps of 16
 *     keys): 8 n-tiles, 32 accumulators per lane. A lane reads one 32-bit
 *     word (8 dims) of each of its 4 keys per k-step for its B fragments.
 * Both phases read the tile from shared memory: the block copies each
 * tile's key and value codes and norms there with cp.async two tiles
 * ahead (three buffers), so bytes in flight hold no registers. Measured
 * on an H100 against key codes loaded into registers one tile ahead (and
 * values copied one tile ahead): 20000 keys at 32 q / 2 kv heads 18.8 ->
 * 18.4 us, 32768 keys at 8 q / 4 kv 32.7 -> 29.5-29.8 us.
 * KPW = 8 makes shorter tiles: the choice for short spans; 16 reads the
 * query fragments half as often per key: long spans
 * (cu_tq_attn_split_pick has the rule and the figures). The pair table's
 * lookups are one byte permute and a load each (ts_pair).
 * Byte codes (SB = 8): the same walk at KPW = 8 (16 would not fit the
 * shared memory) with 256-byte code rows; a B register's two codes are
 * two lookups in a level table of the pair table's layout (ts_fill_levels:
 * key levels in one half of each entry, value levels in the other) and a
 * byte permute that packs them: 5 instructions per register against the
 * 4-bit pair's 2, 976 SASS instructions per warp and 64-key tile against
 * 791 for nibbles (static counts, bench/sass_loops.py). Why here and not in
 * tq_attn_mma: that kernel took 24.3 us at 20000 keys (32 q / 2 kv heads)
 * for tq8 on an H200, at 255 registers and one block of 8 warps a SM
 * (docs/perf.md).
 * Head dim 128: the same walk with 64-byte (4-bit) or 128-byte rows, two
 * dim groups and four key groups in the value phase (KPW / 8 k-steps
 * each), 661 / 1038 SASS instructions per warp and tile at KPW = 8 / 16
 * (4-bit).
 * At the end the W / (D / 64) key groups' accumulators meet once in shared
 * memory (added in a fixed order), each row is rotated back and written as
 * the chunk's partial with the row's max and denominator.
 *
 * Exactness: as tq_attn_mma (q and the weights times value norms rounded
 * to f16, levels in f16, sums in f32), with a different summation order;
 * test_backend_tq holds both to the f32 kernel. */
#include "backend/cuda/cu_tq_mma.cuh"

namespace {

constexpr int TS_W = 8;                   /* warps per block (16 measured no faster: docs/perf.md) */
/* Registers per thread: the 64 of the query's A fragments kept for the
 * whole span (tq_attn_split) fit, and 160 x 256 threads leave 24K
 * registers, what a block of the merge kernel (96 x 256) takes, so the
 * merge's blocks still wait resident beside the attention's. */
constexpr int TS_MAXREG = 160;

/* 16 bytes global -> shared, not through L1 (each code is read once). */
__device__ __forceinline__ void ts_cp16(void *dst, const void *src) {
    const unsigned sa = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(sa), "l"(src));
}
/* 4 bytes global -> shared (cp.async has no 4-byte form that skips L1) */
__device__ __forceinline__ void ts_cp4(void *dst, const void *src) {
    const unsigned sa = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(sa), "l"(src));
}
__device__ __forceinline__ void ts_commit() { asm volatile("cp.async.commit_group;\n" ::); }
/* all but the newest group have landed (this thread's copies) */
__device__ __forceinline__ void ts_wait_all_but_newest() { asm volatile("cp.async.wait_group 1;\n" ::); }

/* The pair of byte k of w (tqm_fill_pairs' table with 64-word entries:
 * entry b of this lane's copy at byte 256 b + 4 lane): one byte permute
 * builds the address, byte k of w over the lane's 4 lane (< 256) in byte 0,
 * zeros above. Why 256-byte entries: with 128 (the shared table's layout)
 * each lookup was a shift, a mask and an add before its load, and the
 * lookups (128 per warp and tile) were half of the kernel's instructions. */
__device__ __forceinline__ uint32_t ts_pair(const uint32_t *pair, uint32_t lane4, uint32_t w, int k) {
    const uint32_t off = __byte_perm(w, lane4, 0x5504u | ((uint32_t)k << 4));
    return *(const uint32_t *)((const unsigned char *)pair + off);
}

/* Byte codes (5..8 bits): the level table, [256][64] u32 as the pair
 * table's layout, so ts_pair's one byte permute builds a lookup's address:
 * entry b holds code b's f16 level (key codebook) in every word of bytes
 * 0..127 (lane l reads word l: no bank conflicts) and the value
 * codebook's in bytes 128..255 (read with lane4 + 128), codes past the
 * width 0. Filled by all `nthreads` threads, 16 bytes per store. */
__device__ __forceinline__ void ts_fill_levels(uint32_t *tab, int kb, int vb, int tid, int nthreads) {
    uint4 *tab4 = (uint4 *)tab; /* [256][16] */
    for (int i = tid; i < 256 * 16; i += nthreads) {
        const int b = i >> 4, bits = (i & 15) < 8 ? kb : vb;
        const uint32_t h = __half_as_ushort(__float2half_rn(b < (1 << bits) ? tqm_level(bits, b) : 0.0f));
        tab4[i] = make_uint4(h, h, h, h);
    }
}

/* Two byte codes' levels (ts_pair's words, the level in the low half) as
 * one f16 pair: a B fragment register. */
__device__ __forceinline__ uint32_t ts_two(uint32_t lo, uint32_t hi) { return __byte_perm(lo, hi, 0x5410u); }

/* Shared memory of the W-warp kernel for SB-bit stored codes (4: nibbles,
 * 8: bytes) at head dim D (128 or 256), in bytes from the start. QA: the
 * query fragments over tile buffer 2 (QF below), for a card whose block
 * must fit 99 KB. */
template <int SB, int D, int W, int KPW, bool QA>
struct ts_smem {
    static constexpr int NS = D / 16;    /* k-steps of the score product */
    static constexpr int ROW = D * SB / 8; /* bytes of a code row */
    static constexpr int PPK = ROW / 16; /* 16-byte pieces of a code row (4 .. 16) */
    static constexpr int PPK_SH = PPK == 4 ? 2 : PPK == 8 ? 3 : 4; /* log2 PPK */
    static constexpr int PK = 128 / SB;  /* codes per 16-byte key piece (tqm_query_frags' PK) */
    static constexpr int NB = 3;         /* tile buffers: the tile computed and two on their way */
    /* a key row in shared memory, 64 mod 128 bytes (64, 192 or 320; why: copy_tile) */
    static constexpr int KSTRIDE = ROW % 128 == 64 ? ROW : ROW + 64;
    static constexpr int VSTRIDE = ROW + 16; /* a value row, 16 mod 64 (80, 144 or 272; why: copy_tile) */
    static constexpr int QD = D / 64;    /* the value phase's dim groups (64 dims each) */
    static constexpr int QD_SH = QD == 2 ? 1 : 2; /* log2 QD */
    static constexpr int TK = KPW * W;   /* keys per tile */
    static constexpr int KSTEPS = TK / 16; /* value k-steps per tile */
    static constexpr int KG = W / QD;    /* key groups of the value phase */
    static constexpr int KPG = KSTEPS / KG; /* k-steps per key group */
    static constexpr int PAIR = QA ? 0 : NS * 32 * 16;              /* [256][64] u32 pair (4-bit) or level table (ts_pair) */
    static constexpr int VBUF = PAIR + 256 * 64 * 4;               /* [NB][TK][VSTRIDE] bytes: value codes */
    static constexpr int KBUF = VBUF + NB * TK * VSTRIDE;          /* [NB][TK][KSTRIDE] bytes: key codes */
    static constexpr int NBUF = KBUF + NB * TK * KSTRIDE;          /* [NB][2][TK] f32 key, value norms */
    static constexpr int PBUF = NBUF + NB * 2 * TK * 4;            /* [KSTEPS][32] uint4 weight fragments */
    static constexpr int WMAX = PBUF + KSTEPS * 32 * 16;           /* [16][W] f32 warp row maxima */
    static constexpr int LSUM = WMAX + 16 * W * 4;                 /* [16][W] f32 warp row denominators */
    static constexpr int MROW = LSUM + 16 * W * 4;                 /* [16] f32 the block's row max */
    static constexpr int KR = MROW + 16 * 4;                       /* [32] i32 visible keys of each row */
    static constexpr int VR = KR + 32 * 4;                         /* [4] i32 keys some row sees, first slot */
    static constexpr int BYTES = VR + 4 * 4;
    /* [NS][32] uint4 query A fragments: first, or (QA) over buffer 2's
     * value rows. Why that may be: every thread reads them into registers
     * before its first tile's scores, and buffer 2 is first written by the
     * copy issued after that tile's barrier (1); the 4 KB this saves let
     * the 4-bit kernel at head dim 128 fit a 99 KB block (sm_86 / sm_89).
     * Only there: on an H200 that layout took 0.4-0.7 us longer at head
     * dim 128 (32 q / 8 kv heads, 4096 and 32768 keys: 10.35 -> 10.77,
     * 32.7 -> 33.35 us back to back; cause not found). */
    static constexpr int QF = QA ? VBUF + 2 * TK * VSTRIDE : 0;
    static_assert(!QA || (NB == 3 && NS * 32 * 16 <= TK * VSTRIDE), "the query fragments must fit buffer 2's value rows");
    /* after the tiles: [KG][16][D + 1] f32, each key group's sums in dim
     * order, over the pair table and the value buffers (both done by then) */
    static constexpr int NAT = PAIR;
    static_assert(NAT + KG * 16 * (D + 1) * 4 <= PBUF, "the sums must fit over the tables");
    static_assert(KPG >= 1 && ROW % 64 == 0 && BYTES <= 227 * 1024, "a shape the kernel does not take");
};

/* A score warp's keys of a tile in registers (NT n-tiles of 8 keys): key
 * code pieces of n-tile t (lane (g, c): key KPW w + 8 t + g, pieces c,
 * c + 4, ..., KW / 4 of them), and both norms / sqrt(D) of keys
 * KPW w + 8 t + 2 c + e at [2 t + e]. */
template <int NT, int KW>
struct ts_kregs {
    uint32_t k[NT][KW];
    float kn[2 * NT], vn[2 * NT];
};

template <int SB, int D, int W, int KPW, bool QA>
__global__ void __maxnreg__(TS_MAXREG) tq_attn_split(tqs_args a) {
    using L = ts_smem<SB, D, W, KPW, QA>;
    constexpr int NT = KPW / 8; /* score n-tiles per warp */
    constexpr int TK = L::TK, ROW = L::ROW, VSTRIDE = L::VSTRIDE, NS = L::NS, PPK = L::PPK;
    constexpr int KW = ROW / 16;  /* words of a key row per score lane (a quarter row) */
    extern __shared__ __align__(16) unsigned char ts_sm[];
    uint4 *qf = (uint4 *)(ts_sm + L::QF);
    uint32_t *pair = (uint32_t *)(ts_sm + L::PAIR);
    unsigned char *vbuf = ts_sm + L::VBUF, *kbuf = ts_sm + L::KBUF;
    float *nbuf = (float *)(ts_sm + L::NBUF);
    uint4 *pbuf = (uint4 *)(ts_sm + L::PBUF);
    float *wmax = (float *)(ts_sm + L::WMAX), *lsum = (float *)(ts_sm + L::LSUM), *mrow = (float *)(ts_sm + L::MROW);
    int *kr = (int *)(ts_sm + L::KR), *vr = (int *)(ts_sm + L::VR);
    float *nat = (float *)(ts_sm + L::NAT);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, c = lane & 3;
    const int ch = blockIdx.x;
    const int64_t hk = blockIdx.y;
    const float rd = cu_tq_rsqrt_d(D);

    if (a.pf) tqm_prefetch_first(a, TK, tid, W * 32);
    if constexpr (SB == 4)
        tqm_fill_pairs<64>(pair, tid, W * 32);
    else
        ts_fill_levels(pair, a.kb, a.vb, tid, W * 32);
    const uint32_t lane4 = 4 * lane;
    /* 4-bit: the pair of the byte at bit sh of w; bytes: code k of w's level, key or value codebook */
    auto pair_of = [&](uint32_t w, int sh) -> uint32_t { return ts_pair(pair, lane4, w, sh >> 3); };
    auto klev = [&](uint32_t w, int k) -> uint32_t { return ts_pair(pair, lane4, w, k); };
    auto vlev = [&](uint32_t w, int k) -> uint32_t { return ts_pair(pair, lane4 + 128, w, k); };
    /* Programmatic launch: the table above reads only constants, so it is
     * filled while the kernel before this one finishes. */
    cu_pdl_wait();
    cu_pdl_launch_dependents();
    /* the query rows' loads first: they need no position, so their round
     * trip overlaps the position's and the span's barrier */
    float qx[2][D / 32];
    if (warp < 8) tqm_query_load<D>(a, hk, (int)(a.G * a.Tq), warp, lane, qx);
    tqm_span sp;
    if (!tqm_block_span(a, warp, lane, kr, vr, sp)) return;
    const int R = sp.R, cap = sp.cap, Tq = sp.Tq, lo_slot = sp.lo_slot, j0 = sp.j0, j1 = sp.j1;
    const int *rk0 = sp.rk0, *rk1 = sp.rk1;
    const int last = j1 - 1; /* keys past the chunk read a held row; their weights are 0 */
    const int ntiles = j1 > j0 ? (j1 - j0 + TK - 1) / TK : 0;
    const uint8_t *kch = a.kc + hk * a.cap * ROW, *vch = a.vc + hk * a.cap * ROW;
    const float *knh = a.kn + hk * a.cap, *vnh = a.vn + hk * a.cap;
    auto slot = [&](int j) -> unsigned { /* key j's ring slot in the head: the ring in position order */
        int sl = lo_slot + min(j, last);
        if (sl >= cap) sl -= cap;
        return (unsigned)sl;
    };
    /* The tile at key kt into buffer b (cp.async: no registers held for
     * bytes in flight; the codes are read once): PPK pieces of 16 bytes per
     * key of both code rows, piece i of the tile by thread i % (32 W), and
     * the two norms of key tid. Value rows are VSTRIDE bytes apart (16 mod
     * 64: 80, 144 or 272): 2 keys apart (lane c) is 32 bytes mod 128, so a
     * value lane's 32-bit reads (4-bit: word g of a dim group's 32 bytes),
     * or a half warp's 64-bit reads (bytes: 8 bytes g of its 64), fall on
     * 32 banks. Key rows are KSTRIDE apart (64 mod 128: 64, 192 or 320),
     * so a quarter warp's 16-byte reads (2 keys x 4 pieces) do. */
    auto copy_tile = [&](int kt, int b) {
#pragma unroll
        for (int i = tid; i < TK * PPK; i += W * 32) {
            const int key = i >> L::PPK_SH, piece = i & (PPK - 1); /* i / PPK, i % PPK (i >= 0) */
            const size_t at = (size_t)slot(kt + key) * ROW + 16 * piece;
            ts_cp16(vbuf + (b * TK + key) * VSTRIDE + 16 * piece, vch + at);
            ts_cp16(kbuf + (b * TK + key) * L::KSTRIDE + 16 * piece, kch + at);
        }
        if (tid < TK) {
            const unsigned sl = slot(kt + tid);
            ts_cp4(nbuf + (b * 2) * TK + tid, knh + sl);
            ts_cp4(nbuf + (b * 2 + 1) * TK + tid, vnh + sl);
        }
    };
    /* the score warp's keys of the tile in buffer b, into registers */
    auto keys_from_smem = [&](int b, ts_kregs<NT, KW> &r) {
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const unsigned char *row = kbuf + (b * TK + KPW * warp + 8 * t + g) * L::KSTRIDE;
#pragma unroll
            for (int i = 0; i < KW / 4; i++) {
                const uint4 u = *(const uint4 *)(row + 16 * (4 * i + c));
                r.k[t][4 * i] = u.x, r.k[t][4 * i + 1] = u.y, r.k[t][4 * i + 2] = u.z, r.k[t][4 * i + 3] = u.w;
            }
        }
#pragma unroll
        for (int i = 0; i < 2 * NT; i++) {
            const int key = KPW * warp + 8 * (i >> 1) + 2 * c + (i & 1);
            r.kn[i] = nbuf[(b * 2) * TK + key] * rd;
            r.vn[i] = nbuf[(b * 2 + 1) * TK + key] * rd;
        }
    };
    /* two tiles on their way; the first one waited for before the barrier below */
    if (ntiles > 0) copy_tile(j0, 0);
    ts_commit();
    if (ntiles > 1) copy_tile(j0 + TK, 1);
    ts_commit();
    if (warp < 8) tqm_query_store<D, L::PK>(a, R, warp, lane, qx, qf);
    ts_wait_all_but_newest();
    __syncthreads();

    /* The query's A fragments in registers for the whole span. Why: read
     * from shared memory per tile, they were by count 512 of the ~1000
     * shared-memory wavefronts a SM spends on a tile's score phase (16 keys
     * a warp), beside ~480 issued instructions per scheduler, so the pipe,
     * not the issue, likely set that phase's pace; in registers the 16-key
     * kernel took 0.6-0.7 us less at long spans (docs/perf.md). */
    uint4 qreg[NS];
#pragma unroll
    for (int s = 0; s < NS; s++) qreg[s] = qf[s * 32 + lane];
    const int qd = warp & (L::QD - 1), kg = warp >> L::QD_SH; /* the value phase: dim group, key group */
    float acc[8][4];                         /* n-tile u, column n: value dim 64 qd + 8 n + u */
#pragma unroll
    for (int u = 0; u < 8; u++) acc[u][0] = acc[u][1] = acc[u][2] = acc[u][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, lown[2] = {0.0f, 0.0f}; /* rows g, g + 8; lown: this lane's keys */
    for (int it = 0; it < ntiles; it++) {
        const int kt = j0 + it * TK, buf = it % L::NB;
        ts_kregs<NT, KW> cur;
        keys_from_smem(buf, cur);
        /* scores of keys kt + KPW warp + 8t + 2c + e for rows g, g + 8:
         * sc[t][2h + e] (two mma chains: with one n-tile its even and odd
         * k-steps in sc and sc2, with two one per n-tile) */
        float sc[NT][4], sc2[NT][4];
#pragma unroll
        for (int t = 0; t < NT; t++)
#pragma unroll
            for (int e = 0; e < 4; e++) sc[t][e] = sc2[t][e] = 0.0f;
#pragma unroll
        for (int s = 0; s < NS; s++) {
            const uint4 qa = qreg[s];
            const uint32_t A[4] = {qa.x, qa.y, qa.z, qa.w};
#pragma unroll
            for (int t = 0; t < NT; t++) {
                /* the lane's codes 4s .. 4s + 3 (4-bit: bytes 2s, 2s + 1, low nibble first; bytes: word s) */
                uint32_t b0, b1;
                if constexpr (SB == 4) {
                    const uint32_t w = cur.k[t][s >> 1], sh = (s & 1) * 16;
                    b0 = pair_of(w, sh), b1 = pair_of(w, sh + 8);
                } else {
                    const uint32_t w = cur.k[t][s];
                    b0 = ts_two(klev(w, 0), klev(w, 1)), b1 = ts_two(klev(w, 2), klev(w, 3));
                }
                tqm_mma(NT == 1 && (s & 1) ? sc2[t] : sc[t], A, b0, b1);
            }
        }
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int t = 0; t < NT; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int key = kt + KPW * warp + 8 * t + 2 * c + e;
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    float x = (sc[t][2 * h + e] + sc2[t][2 * h + e]) * cur.kn[2 * t + e];
                    if (a.softcap > 0.0f) x = tanhf(x / a.softcap) * a.softcap;
                    x = (key >= rk0[h] && key < rk1[h] && key < j1) ? x : -INFINITY;
                    sc[t][2 * h + e] = x;
                    mx[h] = fmaxf(mx[h], x);
                }
            }
#pragma unroll
        for (int h = 0; h < 2; h++) {
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
            if (c == 0) wmax[(g + 8 * h) * W + warp] = mx[h];
        }
        __syncthreads(); /* (1) the maxima are posted; every warp is done with the last tile's values */
        if (it + 2 < ntiles) copy_tile(kt + 2 * TK, (it + 2) % L::NB); /* tile it - 1's buffer: every warp is past it */
        ts_commit();
        /* the tile max of rows g, g + 8 (the same in every warp), the weights, the fragment half */
        float corr[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const float4 *wm = (const float4 *)(wmax + (g + 8 * h) * W);
            float tm = -INFINITY;
#pragma unroll
            for (int i = 0; i < W / 4; i++) {
                const float4 v = wm[i];
                tm = fmaxf(tm, fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)));
            }
            const float mnew = fmaxf(m[h], tm);
            corr[h] = m[h] == -INFINITY ? 0.0f : __expf(m[h] - mnew);
            float sum = 0.0f;
#pragma unroll
            for (int t = 0; t < NT; t++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float x = sc[t][2 * h + e];
                    const float pw = x == -INFINITY ? 0.0f : __expf(x - mnew);
                    sc[t][2 * h + e] = pw;
                    sum += pw;
                }
            lown[h] = lown[h] * corr[h] + sum;
            m[h] = mnew;
        }
        /* the weights times value norms as A fragments of the value product: n-tile t is half t of
         * k-step (KPW warp + 8 t) / 16 (rows g, g + 8) */
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const int kk = KPW * warp + 8 * t;
            ((uint2 *)(pbuf + (kk >> 4) * 32 + lane))[(kk >> 3) & 1] =
                make_uint2(tqm_pack(sc[t][0] * cur.vn[2 * t], sc[t][1] * cur.vn[2 * t + 1]),
                           tqm_pack(sc[t][2] * cur.vn[2 * t], sc[t][3] * cur.vn[2 * t + 1]));
        }
        ts_wait_all_but_newest(); /* the next tile (this thread's copies) */
        __syncthreads();          /* (2) the weights are in place, and the next tile */
        if (__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f))
#pragma unroll
            for (int u = 0; u < 8; u++) {
                acc[u][0] *= corr[0], acc[u][1] *= corr[0];
                acc[u][2] *= corr[1], acc[u][3] *= corr[1];
            }
        /* lane (g, c): the 8 codes g of the dim group (dims 64 qd + 8 g ..) of keys 2c, 2c + 1, 2c + 8,
         * 2c + 9; n-tile u takes dim 64 qd + 8 g + u */
        const unsigned char *vb = vbuf + buf * TK * VSTRIDE + 8 * SB * qd + SB * g;
#pragma unroll
        for (int j = 0; j < L::KPG; j++) {
            const int ks = L::KPG * kg + j, k0 = 16 * ks + 2 * c;
            const uint4 pa = pbuf[ks * 32 + lane];
            const uint32_t P[4] = {pa.x, pa.y, pa.z, pa.w};
            if constexpr (SB == 4) {
                const uint32_t w0 = *(const uint32_t *)(vb + k0 * VSTRIDE), w1 = *(const uint32_t *)(vb + (k0 + 1) * VSTRIDE);
                const uint32_t w2 = *(const uint32_t *)(vb + (k0 + 8) * VSTRIDE),
                               w3 = *(const uint32_t *)(vb + (k0 + 9) * VSTRIDE);
                /* the two keys of a B register interleaved into bytes (dims 8 g + 2k, 8 g + 2k + 1), one pair lookup each */
                uint32_t ev0, od0, ev1, od1;
                tqm_interleave(w0, w1, ev0, od0);
                tqm_interleave(w2, w3, ev1, od1);
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    tqm_mma(acc[2 * k], P, pair_of(ev0, 8 * k), pair_of(ev1, 8 * k));
                    tqm_mma(acc[2 * k + 1], P, pair_of(od0, 8 * k), pair_of(od1, 8 * k));
                }
            } else {
                const uint2 w0 = *(const uint2 *)(vb + k0 * VSTRIDE), w1 = *(const uint2 *)(vb + (k0 + 1) * VSTRIDE);
                const uint2 w2 = *(const uint2 *)(vb + (k0 + 8) * VSTRIDE), w3 = *(const uint2 *)(vb + (k0 + 9) * VSTRIDE);
#pragma unroll
                for (int u = 0; u < 8; u++) { /* byte u & 3 of word u / 4 */
                    const int k = u & 3;
                    const uint32_t x0 = u < 4 ? w0.x : w0.y, x1 = u < 4 ? w1.x : w1.y;
                    const uint32_t x2 = u < 4 ? w2.x : w2.y, x3 = u < 4 ? w3.x : w3.y;
                    tqm_mma(acc[u], P, ts_two(vlev(x0, k), vlev(x1, k)), ts_two(vlev(x2, k), vlev(x3, k)));
                }
            }
        }
    }

    /* The block's denominators (each score warp's keys, its lanes c summed) and max per row. */
#pragma unroll
    for (int h = 0; h < 2; h++) {
        lown[h] += __shfl_xor_sync(0xffffffffu, lown[h], 1);
        lown[h] += __shfl_xor_sync(0xffffffffu, lown[h], 2);
        if (c == 0) lsum[(g + 8 * h) * W + warp] = lown[h];
        if (warp == 0 && c == 0) mrow[g + 8 * h] = m[h];
    }
    __syncthreads(); /* every warp is past its last tile: the tables and buffers are free */
    /* each key group's sums in dim order: acc[u][2h + e] is row g + 8h, dim 64 qd + 8 (2c + e) + u */
#pragma unroll
    for (int u = 0; u < 8; u++)
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int e = 0; e < 2; e++)
                nat[(kg * 16 + g + 8 * h) * (D + 1) + 64 * qd + 16 * c + 8 * e + u] = acc[u][2 * h + e];
    if (tid < 16 && tid < R) { /* row tid's partial max and denominator, the warps added in order */
        float Lr = 0.0f;
#pragma unroll
        for (int w = 0; w < W; w++) Lr += lsum[tid * W + w];
        const int64_t orow = (hk * a.G + tid / Tq) * a.Tq + tid % Tq;
        a.pm[orow * a.nchunks + ch] = mrow[tid];
        a.pl[orow * a.nchunks + ch] = Lr;
    }
    __syncthreads();
    /* Un-rotate each row (the FWHT is linear: the combine's weighted sum of
     * rotated-back partials is the rotated-back sum) and write it: rows
     * warp, warp + W, ..., the key groups added in order; lane l holds dims
     * 32 k + l. */
    constexpr int E = D / 32, NR = 16 / W;
    float x[NR][E];
#pragma unroll
    for (int i = 0; i < NR; i++) {
        const int r = warp + W * i;
#pragma unroll
        for (int k = 0; k < E; k++) {
            float v = 0.0f;
#pragma unroll
            for (int q = 0; q < L::KG; q++) v += nat[(q * 16 + r) * (D + 1) + 32 * k + lane];
            x[i][k] = v;
        }
    }
#pragma unroll
    for (int i = 0; i < NR; i++)
        if (warp + W * i < R) cu_tq_fwht_warp<E>(x[i], lane);
#pragma unroll
    for (int i = 0; i < NR; i++) {
        const int r = warp + W * i;
        if (r < R) {
            const int64_t row = (hk * a.G + r / Tq) * a.Tq + r % Tq;
            float *dst = a.pacc + (row * a.nchunks + ch) * D + lane;
#pragma unroll
            for (int k = 0; k < E; k++) dst[32 * k] = x[i][k];
        }
    }
}

template <int SB, int D, int KPW, bool QA = false>
mlxn_status ts_launch(mlxn_stream *s, const tqs_args &a, int64_t hkv) {
    constexpr size_t smem = ts_smem<SB, D, TS_W, KPW, QA>::BYTES;
    auto k = tq_attn_split<SB, D, TS_W, KPW, QA>;
    MLXN_TRY(cu_smem_allow(s, "tq_sdpa", k, smem));
    cu_launch(s, k, dim3((unsigned)a.nchunks, (unsigned)hkv), dim3(TS_W * 32), smem, a);
    MLXN_TRY(cu_launched(s, "tq_sdpa", "tq_attn_split"));
    return cu_tq_attn_mma_combine_launch(s, a, a.G * a.Tq * hkv);
}

} // namespace

/* The kernel's shape by the measured rule (see cu_tq_attn_split_pick), before the shared memory is asked. */
static int split_rule(const tqs_args &a, int64_t span, int64_t hkv, int sms, int knob) {
    /* head dim 128 or 256; 4-bit K and V (nibbles), or byte codes (5..8 bits) for both */
    const int64_t D = a.D;
    const bool nib = a.kb == 4 && a.vb == 4 && a.krow == D / 2 && a.vrow == D / 2;
    const bool byt = a.kb >= 5 && a.kb <= 8 && a.vb >= 5 && a.vb <= 8 && a.krow == D && a.vrow == D;
    const bool fits = a.G * a.Tq <= 16 && (D == 128 || D == 256) && (nib || byt) && a.cap < INT32_MAX / 2;
    if (!fits || knob == 0) return 0;
    /* byte codes at head dim 256: 8 keys per score warp only (16 would need 3 x 128 x 592 bytes of
     * tile buffers) */
    if (byt && D == 256) return 8;
    if (knob == 1 || knob == 2) return 8 * knob;
    /* byte codes at head dim 128 stay on tq_attn_mma unless forced: measured on an H200 (docs/perf.md),
     * Llama-3-8B-shaped random model at depth 4096, tq8, tg64: 409.3 / 409.4 tok/s there against 401.8 /
     * 403.2 on this kernel at 16 keys a warp and 408.4 at 8, although `bench tq` timed this kernel
     * faster at that shape (append + attention 18.1 -> 16.4 us) */
    if (byt && D == 128) return 0;
    /* Measured (docs/perf.md), back to back: up to ~96 keys per SM (all kv heads), 8 keys per score warp
     * (on an H100, then at 2 blocks per SM, 32 q / 2 kv heads at 4096 keys: 62 keys per SM, 11.1 against
     * 12.1 us with 16; on an H200 at one block per SM, 10.9 against 11.3-11.5); beyond, 16 keys per score
     * warp, which reads the query fragments half as often per key (H100: 32 q / 2 kv at 20000, 303 per SM,
     * 18.2 against 20.2; 8 q / 4 kv heads at 4096 keys, 124 per SM, 11.2 against 12.5 in the kernel's
     * first version; H200 at one block per SM: 16.6 against 16.9 and, at 16384 keys, 17.4 against 20.1) */
    const int64_t per_sm = span * hkv / (sms > 0 ? sms : 1);
    return per_sm <= 96 ? 8 : 16;
}

/* Shared memory of the shape the launch below runs for (byte codes or nibbles, D, kpw), bytes. */
static size_t ts_bytes(bool bytes, int64_t D, int kpw) {
    if (D == 128) {
        if (bytes) return kpw == 16 ? ts_smem<8, 128, TS_W, 16, false>::BYTES : ts_smem<8, 128, TS_W, 8, false>::BYTES;
        return kpw == 16 ? ts_smem<4, 128, TS_W, 16, false>::BYTES : ts_smem<4, 128, TS_W, 8, false>::BYTES;
    }
    if (bytes) return ts_smem<8, 256, TS_W, 8, false>::BYTES;
    return kpw == 16 ? ts_smem<4, 256, TS_W, 16, false>::BYTES : ts_smem<4, 256, TS_W, 8, false>::BYTES;
}
/* the one shape with the query over a tile buffer (ts_smem's QA) */
constexpr size_t TS_QA_BYTES = ts_smem<4, 128, TS_W, 8, true>::BYTES;

int cu_tq_attn_split_pick(const tqs_args &a, int64_t span, int64_t hkv, int sms, int knob, int smem_optin) {
    const int kpw = split_rule(a, span, hkv, sms, knob);
    if (!kpw) return 0;
    const bool byt = a.kb != 4;
    /* a card with less shared memory a block (an A100's 163 KB, 99 KB on sm_86 / sm_89): 8 keys a
     * score warp where 16 do not fit, else not this kernel (KB of 1024 bytes: 4-bit at head dim 256
     * 140 at 8, 206 at 16; bytes at 256: 188; at 128: 100 / 130 for nibbles, 136 / 202 for bytes;
     * 4-bit at head dim 128 and 8 keys with the query over a tile buffer: 96) */
    if (ts_bytes(byt, a.D, kpw) <= (size_t)smem_optin) return kpw;
    if (kpw == 16 && ts_bytes(byt, a.D, 8) <= (size_t)smem_optin) return 8;
    return !byt && a.D == 128 && TS_QA_BYTES <= (size_t)smem_optin ? 8 : 0;
}

int64_t cu_tq_attn_split_chunk(int64_t span, int64_t hkv, int sms, int kpw) {
    /* one block per SM (the shared memory allows no more; with 2 at KPW = 8, before the pair table
     * doubled, a block launched early behind the merge kernel could share a SM with another while SMs
     * idled: 32 q / 2 kv at 4096 keys 11.4 -> 13.9 us); at least one tile of keys per block */
    const int64_t per_sm = 1, tk = (int64_t)kpw * TS_W;
    int64_t want = (sms > 0 ? sms : 1) * per_sm / hkv;
    if (want < 1) want = 1;
    int64_t chunk = (span + want - 1) / want;
    chunk = (chunk + 15) / 16 * 16;
    return chunk < tk ? tk : chunk;
}

mlxn_status cu_tq_attn_split_launch(mlxn_stream *s, const tqs_args &a, int64_t hkv, int kpw) {
    const bool bytes = a.kb != 4; /* byte codes (cu_tq_attn_split_pick) */
    if (a.D == 128) {
        if (bytes) return kpw == 16 ? ts_launch<8, 128, 16>(s, a, hkv) : ts_launch<8, 128, 8>(s, a, hkv);
        if (kpw == 16) return ts_launch<4, 128, 16>(s, a, hkv);
        return ts_bytes(false, 128, 8) <= (size_t)cu_ctx(s)->smem_optin ? ts_launch<4, 128, 8>(s, a, hkv)
                                                                        : ts_launch<4, 128, 8, true>(s, a, hkv);
    }
    if (bytes) return ts_launch<8, 256, 8>(s, a, hkv);
    return kpw == 16 ? ts_launch<4, 256, 16>(s, a, hkv) : ts_launch<4, 256, 8>(s, a, hkv);
}
