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
#include "backend/cuda/cu_tq_mma.cuh"

enum {
    TQM_WARPS = 8,
    TQM_THREADS = 32 * TQM_WARPS,
    TQM_STEP = 16, /* keys per warp step: two n-tiles of scores, one k-step of values */
};

/* Dynamic shared memory of tq_attn_mma at head dim D (bytes), by its
 * merge's layout (a.compact): 0, a slot per warp after the tables; 1, the
 * slots over the query fragments and the pair table, which no warp reads
 * after its steps (a barrier then stands before the first warp parks); 2,
 * half as many slots over the tables, filled and summed in two rounds.
 * Why: at head dim 128 the block fits 99 KB (sm_86 / sm_89) only with 1,
 * at 256 an A100's 163 KB only with 1 and 99 KB only with 2 (KB of 1024
 * bytes: 110 -> 74 at 128, 186 -> 146 -> 82 at 256). A card that holds the
 * whole block keeps 0 (no barrier: a warp parks while others still step);
 * tqm_launch picks the first that fits. */
static size_t tqm_front(int D, int compact) {
    const size_t tables = (size_t)D * 32               /* qf: [D/16][32] uint4 */
                          + sizeof(uint32_t) * 256 * 32; /* pair: [256][32] */
    /* red: a [16][D] slot per warp, or per warp of a round */
    const size_t slots = sizeof(float) * (compact == 2 ? TQM_WARPS / 2 : TQM_WARPS) * 16 * (size_t)D;
    return compact ? (tables > slots ? tables : slots) : tables + slots;
}
static size_t tqm_smem(int D, int compact) {
    return tqm_front(D, compact)
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

/* a compile-time count as an argument (tq_attn_mma's merge) */
template <int N>
struct tqm_count {
    static constexpr int value = N;
};

template <int KS, int VS, int D>
__global__ void __launch_bounds__(TQM_THREADS, 1) tq_attn_mma(tqs_args a) {
    if (a.pf) tqm_prefetch_first(a, (int64_t)TQM_WARPS * TQM_STEP, threadIdx.x, TQM_THREADS);
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
    /* bytes of the tables and of the 8 merge slots (tqm_front; 4 slots when a.compact == 2) */
    constexpr int TABLES = NS * 32 * 16 + 256 * 32 * 4, SLOTS = 4 * TQM_WARPS * 16 * D;
    const int slots = a.compact == 2 ? SLOTS / 2 : SLOTS;
    /* [8 or 4][16 * D] merge slots, a warp's accumulators: after the tables, or over them (a.compact) */
    float *red = (float *)(tqm_sm + (a.compact ? 0 : TABLES));
    float *nat = (float *)(tqm_sm + (a.compact ? (TABLES > slots ? TABLES : slots) : TABLES + slots)); /* [16][D + 1] the block's sums in dim order */
    float *mw = nat + 16 * (D + 1);                       /* [8][16] per warp: running max of each row */
    float *lw = mw + TQM_WARPS * 16;                      /* [8][16] per warp: denominator of each row */
    unsigned short *lvk = (unsigned short *)(lw + TQM_WARPS * 16); /* [256] key levels, f16 bits */
    unsigned short *lvv = lvk + 256;                      /* [256] value levels */
    int *kr = (int *)(lvv + 256);                         /* [2][16] visible keys [k0, k1) of each row */
    int *vr = kr + 32;                                    /* [3] keys some row sees [vr0, vr1); the first key's ring slot */
    /* pair: the 4-bit pair table (tqm_fill_pairs). Keys and values share
     * it: both 4-bit sides use the one 4-bit codebook. Its own 32 KB, not
     * the merge slots', where the block fits (a warp parks its
     * accumulators while others may still be in their steps); a.compact:
     * under them, after a barrier (tqm_front). */

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
    if (KS == 4 || VS == 4) tqm_fill_pairs(pair, tid, TQM_THREADS);
    /* this lane's copy of the pair table */
    const unsigned char *pair_lane = (const unsigned char *)pair + 4 * lane;
    auto pair_of = [&](uint32_t w, int sh) -> uint32_t { return tqm_pair_of(pair_lane, w, sh); };
    /* Programmatic launch (tqm_launch): the tables above read only
     * constants, so they are filled while the kernel before this one
     * finishes; everything from here reads what earlier kernels wrote. */
    cu_pdl_wait();
    cu_pdl_launch_dependents();
    tqm_span sp;
    if (!tqm_block_span(a, warp, lane, kr, vr, sp)) return;
    const int R = sp.R, cap = sp.cap, Tq = sp.Tq, lo_slot = sp.lo_slot, j0 = sp.j0, j1 = sp.j1;
    const int *rk0 = sp.rk0, *rk1 = sp.rk1;
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
    tqm_query_frags<D, PK>(a, hk, R, warp, lane, qf);
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
                uint32_t ev0, od0, ev1, od1;
                tqm_interleave(r.v[0][i], r.v[1][i], ev0, od0);
                tqm_interleave(r.v[2][i], r.v[3][i], ev1, od1);
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
    float4 *rb = (float4 *)red; /* [slots][NU][32] */
    /* Warps parked per round (PER, a compile-time count: the merge is on
     * every block's serial path): all 8 in one, or 4 and 4 (a.compact ==
     * 2: half the slots; the second round's sums start from the first's,
     * so each element is summed in the same order either way) */
    const int ln = tid & 31, gg = ln >> 2, cc = ln & 3; /* the same for every element e = tid + 256 i */
    auto merge = [&](auto per_tag) {
        constexpr int PER = decltype(per_tag)::value;
        float f[2][TQM_WARPS] = {};
#pragma unroll
        for (int w0 = 0; w0 < TQM_WARPS; w0 += PER) {
            /* the slots lie over the tables: every warp is past its last lookup (and, in a second round,
             * every thread past its reads of the first round's slots) */
            if (a.compact) __syncthreads();
            if (g < R && warp >= w0 && warp < w0 + PER) /* a lane whose rows g, g + 8 are both padding has nothing to add (its slots are never read) */
#pragma unroll
                for (int u = 0; u < NU; u++)
                    rb[((warp - w0) * NU + u) * 32 + lane] = make_float4(acc[u][0], acc[u][1], acc[u][2], acc[u][3]);
            __syncthreads();
            if (gg < R) { /* else padding rows only (a group of fewer than 8 rows) */
                if (w0 == 0)
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
                    const int d0 = ((u / PV) * 8 + 2 * cc) * PV + u % PV, d1 = d0 + PV; /* columns 2cc, 2cc + 1 */
                    float *n0 = nat + gg * (D + 1), *n1 = nat + (gg + 8) * (D + 1);
                    float4 t = w0 == 0 ? make_float4(0.0f, 0.0f, 0.0f, 0.0f) : make_float4(n0[d0], n0[d1], n1[d0], n1[d1]);
#pragma unroll
                    for (int w = w0; w < w0 + PER; w++) {
                        const float4 o = rb[(w - w0) * NU * 32 + e];
                        t.x += f[0][w] * o.x, t.y += f[0][w] * o.y, t.z += f[1][w] * o.z, t.w += f[1][w] * o.w;
                    }
                    n0[d0] = t.x, n0[d1] = t.y, n1[d0] = t.z, n1[d1] = t.w;
                }
            }
        }
    };
    if (a.compact == 2)
        merge(tqm_count<TQM_WARPS / 2>{});
    else
        merge(tqm_count<TQM_WARPS>{});
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
 * (rows, D / 64), TQMC_THREADS threads = 8 groups of 32 lanes, lane l of a
 * group holding dims 2 l, 2 l + 1 of the block's 64 (8-byte loads), group
 * j taking chunks j, j + 8, ... Every load of a thread's chunks is issued
 * first (its partials and their max and denominator), then each group
 * keeps an online-softmax sum of its chunks, and the 8 groups meet in
 * shared memory, added in a fixed order (deterministic). Why this shape:
 * the previous version read the maxima, then the denominators, then the
 * partials, three dependent global round trips and three block barriers
 * for a merge of a few kilobytes (4.8 us at 2 chunks, 6.8 us at 66). Why
 * 64 dims a block: 32 q heads at head dim 256 are then 128 blocks, which
 * wait resident beside the attention kernel's blocks (one each per SM);
 * with 32 dims, 256 blocks, half of them launched only as the attention's
 * blocks left.
 * Output dim d = sum / denominator times sign_d / sqrt(D). */
enum { TQMC_THREADS = 256, TQMC_GROUPS = TQMC_THREADS / 32, TQMC_BATCH = 16 /* chunks per group per pass */ };
__global__ void __launch_bounds__(TQMC_THREADS) tq_attn_mma_combine(tqs_args a) {
    __shared__ float gm[TQMC_GROUPS], gl[TQMC_GROUPS];
    __shared__ float2 gsum[TQMC_GROUPS][32];
    const int D = a.D, tid = threadIdx.x, nc = a.nchunks, grp = tid >> 5, lane = tid & 31;
    const int64_t row = blockIdx.x;
    const int d = blockIdx.y * 64 + 2 * lane; /* D is a multiple of 64 (64, 128, 256) */
    float *o = a.out + row * D;
    cu_pdl_wait(); /* programmatic launch: the partials are complete from here */
    /* The kernel after this one may be scheduled now (it waits for these
     * stores in its own cu_pdl_wait). Why: without it that kernel's launch
     * began only at this one's end, ~0.8 us on a decode step's path. */
    cu_pdl_launch_dependents();
    /* the position is read beside the partials, not before them (one
     * round trip, not two): with a bad one the blocks wrote nothing, and
     * the sums read here are dropped below */
    const bool bad_pos = cu_tq_pos(a.pos_t, a.pos) < 0;
    const float *pm = a.pm + row * nc, *pl = a.pl + row * nc, *pa = a.pacc + row * nc * D + d;
    float m = -INFINITY, l = 0.0f; /* this group's running max, denominator */
    float2 s = make_float2(0.0f, 0.0f); /* its sums at dims d, d + 1 */
    for (int k0 = grp; k0 < nc; k0 += TQMC_GROUPS * TQMC_BATCH) {
        float vm[TQMC_BATCH], vl[TQMC_BATCH];
        float2 va[TQMC_BATCH];
#pragma unroll
        for (int i = 0; i < TQMC_BATCH; i++) {
            const int k = k0 + i * TQMC_GROUPS;
            const bool ok = k < nc;
            vm[i] = ok ? pm[k] : -INFINITY;
            vl[i] = ok ? pl[k] : 0.0f;
            va[i] = ok ? *(const float2 *)(pa + (int64_t)k * D) : make_float2(0.0f, 0.0f);
        }
        float mb = m;
#pragma unroll
        for (int i = 0; i < TQMC_BATCH; i++) mb = fmaxf(mb, vm[i]);
        if (mb == -INFINITY) continue; /* nothing visible yet */
        const float f = m == -INFINITY ? 0.0f : __expf(m - mb);
        l *= f, s.x *= f, s.y *= f;
#pragma unroll
        for (int i = 0; i < TQMC_BATCH; i++) {
            const float w = vm[i] == -INFINITY ? 0.0f : __expf(vm[i] - mb);
            l = fmaf(w, vl[i], l);
            s.x = fmaf(w, va[i].x, s.x);
            s.y = fmaf(w, va[i].y, s.y);
        }
        m = mb;
    }
    if (lane == 0) gm[grp] = m, gl[grp] = l;
    gsum[grp][lane] = s;
    __syncthreads();
    if (grp == 0) {
        float M = -INFINITY;
        for (int j = 0; j < TQMC_GROUPS; j++) M = fmaxf(M, gm[j]);
        float L = 0.0f;
        float2 t = make_float2(0.0f, 0.0f);
        for (int j = 0; j < TQMC_GROUPS; j++) {
            const float f = gm[j] == -INFINITY ? 0.0f : __expf(gm[j] - M);
            L = fmaf(f, gl[j], L);
            t.x = fmaf(f, gsum[j][lane].x, t.x);
            t.y = fmaf(f, gsum[j][lane].y, t.y);
        }
        const float r = L > 0.0f ? 1.0f / L : 0.0f; /* no visible key: zeros */
        const float k = cu_tq_rsqrt_d(D);
        /* a bad device position: visibly wrong, never plausible */
        *(float2 *)(o + d) = bad_pos ? make_float2(NAN, NAN)
                                     : make_float2(t.x * r * (k * a.signs[d]), t.y * r * (k * a.signs[d + 1]));
    }
}

mlxn_status cu_tq_attn_mma_combine_launch(mlxn_stream *s, const tqs_args &a, int64_t rows) {
    cu_launch(s, tq_attn_mma_combine, dim3((unsigned)rows, (unsigned)(a.D / 64)), dim3(TQMC_THREADS), 0, a);
    return cu_launched(s, "tq_sdpa", "tq_attn_mma_combine");
}

bool cu_tq_attn_mma_fits(const tqs_args &a, int smem_optin) {
    const int sb_k = a.kb <= 4 ? 4 : 8, sb_v = a.vb <= 4 ? 4 : 8;
    /* the smallest layout (tqm_smem): 40 / 46 / 82 KB at head dim 64 / 128 / 256 */
    return tqm_smem(a.D, 2) <= (size_t)smem_optin && a.G * a.Tq <= 16 && (a.D == 64 || a.D == 128 || a.D == 256) && a.kb >= 4 && a.kb <= 8 && a.vb >= 4 &&
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
    tqs_args b = a;
    const size_t optin = (size_t)cu_ctx(s)->smem_optin;
    b.compact = tqm_smem(D, 0) <= optin ? 0 : tqm_smem(D, 1) <= optin ? 1 : 2; /* cu_tq_attn_mma_fits took 2 */
    const size_t smem = tqm_smem(D, b.compact);
    auto k = tq_attn_mma<KS, VS, D>;
    if (smem > 48 * 1024) MLXN_TRY(cu_smem_allow(s, "tq_sdpa", k, smem));
    /* both with programmatic dependent launch (cu_launch): the partial's
     * level tables and the combine's launch overlap the kernel before */
    cu_launch(s, k, dim3((unsigned)b.nchunks, (unsigned)hkv), dim3(TQM_THREADS), smem, b);
    MLXN_TRY(cu_launched(s, "tq_sdpa", "tq_attn_mma"));
    return cu_tq_attn_mma_combine_launch(s, a, a.G * a.Tq * hkv);
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
