/* Tensor-core attention for bf16/f16 K/V (semantics: backend/cpu/
 * sdpa_kernels.h): GQA, causal lower-right, sliding window, softcap and a
 * device-side kv_len. Masks and sinks stay on the simple kernel (cu_sdpa.cu).
 *
 * One kernel serves prefill and decode. The G * Tq query rows of a kv head
 * (ordered head-in-group major, position minor) are cut into tiles of ROWS
 * rows; a block takes one tile and a range of keys (the whole visible range,
 * or one fixed-size chunk of it when the keys are split). Why rows of
 * several query heads in one block: grouped-query attention reads each K/V
 * tile once for all the heads that share it (decode with 32 query / 2 kv
 * heads reads K/V 16x less than a block per query head would).
 *
 * Per 64-key tile, NW = 4 warps (8 for decode, see fa_kernel):
 *   1. K and V tiles [64, D] go global -> shared with 16-byte cp.async,
 *      the next tile's copy issued before this tile's arithmetic (ST = 2
 *      buffers; why: decode is a stream of K/V and a copy in flight during
 *      the products keeps the stream going; the first tile is issued
 *      before q is staged; three buffers at D 256, measured, were 1-8%
 *      slower than two). A one-buffer variant of the loop serves shapes
 *      whose two buffers do not fit (D 512; its first version reused the
 *      first tile; test_backend_attn's D 512 cases pass on an H100), and D 256
 *      on a card with less shared memory a block (99 KB on sm_86 / sm_89;
 *      D 512 does not fit there and runs the simple kernel). D 256
 *      keeps 16-row tiles. Fragments come from shared memory through
 *      ldmatrix (V's transposed).
 *      Keys outside the block's range are zero-filled: a row of NaN
 *      capacity past kv_len must never reach a product;
 *   2. S = Q K^T with mma.sync m16n8k16 (bf16 or f16 in, f32 accumulate),
 *      warp w taking keys [KW w, KW w + KW) of every row (KW = 64 / NW);
 *      softcap and the causal/window/kv_len visibility are applied as S
 *      goes to shared;
 *   3. online softmax per row in f32 (running max m, denominator l), the
 *      32 NW / ROWS threads of a row taking a share of the 64 keys each, the
 *      weights rounded to the input type into shared memory P;
 *   4. O = O * corr + P V with mma.sync, warp w owning output columns
 *      [w D/NW, (w+1) D/NW) (why: the f32 accumulators of a ROWS x D tile
 *      then take 64 (NW = 4) or 32 registers per thread for every D).
 * ROWS = 16 MT rows per block, MT (16-row tiles) chosen per call: no more
 * than the rows there are (decode with 16 query heads per kv head: one
 * 16-row tile), at most 2 (more, smaller blocks keep more warps per
 * multiprocessor) and at most 512 / D (the accumulators stay at 64
 * registers), and only where two K/V buffers fit.
 * q is scaled by `scale` in f32, then rounded to the K/V type (MLX also
 * scales q first).
 *
 * Splits: with few (batch, kv head, row tile) blocks (decode), the keys are
 * cut into S chunks of CH keys, CH chosen on the host from the capacity Tk
 * (never from kv_len, which only the device reads: a captured graph stays
 * valid as the cache grows; chunks past kv_len find nothing to do and only
 * mark their partials empty). Each split writes its unnormalized rows with
 * (m, l); fa_combine merges them. On sm_90, where at most FA_CLUSTER_MAX
 * splits of at most FA_CLUSTER_KEYS keys cover the capacity, the splits
 * of a row tile are instead one thread-block cluster that merges its rows
 * through distributed shared memory at the kernel's end (no partials in
 * global memory, no second kernel; docs/perf.md has the measurements: the
 * kernel after it, the o projection, gains most, its blocks resident on
 * the multiprocessors the attention leaves idle).
 *
 * One query position at head dim 64 or 128 with at most FA_DEC_KEYS keys a
 * block (more than 64 at 128) runs the one-row kernel (cu_attn_decode.cu)
 * instead, over the same splits, chosen here (fa_launch). */
#include "backend/cuda/cu_attn_flash.cuh"

__device__ __forceinline__ float fa_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Shared-memory bytes of one block with ROWS rows and ST K/V buffers. Rows
 * are padded by 8 halves / 8 floats so the fragment loads of a warp fall
 * in distinct banks. */
constexpr size_t fa_smem_bytes(int D, int ROWS, int ST) {
    return (size_t)ROWS * (D + 8) * 2 + 2 * (size_t)ST * FA_KT * (D + 8) * 2 + (size_t)ROWS * (FA_KT + 8) * 4 +
           (size_t)ROWS * (FA_KT + 8) * 2 + 5 * (size_t)ROWS * 4;
}
/* K/V buffers of the D, MT kernel on a card that allows `optin` bytes of
 * shared memory a block: two where they fit (sm_90's 227 KB: every shape
 * but D 512; an A100's 163 KB too; 99 KB on sm_86 / sm_89: D 64 and 128),
 * else one, else 0 (nothing fits: the simple kernel's call). */
static int fa_stages(int D, int MT, int optin) {
    return fa_smem_bytes(D, 16 * MT, 2) <= (size_t)optin ? 2 : fa_smem_bytes(D, 16 * MT, 1) <= (size_t)optin ? 1 : 0;
}

/* NW warps per block: 4, or 8 for decode (one query position: a block has
 * one 16-row tile and, with one block per SM at D 256, 4 warps left each
 * scheduler a single warp, stalled on every latency: ncu had 19% of issue
 * slots busy). KW keys of each tile per warp in S = Q K^T, D / NW output
 * columns per warp in P V. */
template <int D, int MT, bool BF, int NW, int ST>
__global__ void __launch_bounds__(NW * 32) fa_kernel(fa_args a) {
    constexpr int NTH = NW * 32, KW = FA_KT / NW, NBS = KW / 8;
    if (a.pf) fa_prefetch_keys<D>(a, NTH, FA_KT);
    cu_pdl_wait(); /* programmatic launch (cu_launch): inputs come from the kernel before */
    cu_pdl_launch_dependents();
    constexpr int ROWS = 16 * MT, LD = D + 8, LS = FA_KT + 8, LP = FA_KT + 8, NB = D / (8 * NW);
    constexpr int TPR = NTH / ROWS, KPT = FA_KT / TPR; /* softmax: threads per row, keys per thread */
    extern __shared__ __align__(16) unsigned char fa_smem[];
    uint16_t *Qs = (uint16_t *)fa_smem;                  /* [ROWS][LD] scaled q */
    uint16_t *Ks = Qs + ROWS * LD;                       /* [ST][KT][LD] */
    uint16_t *Vs = Ks + ST * FA_KT * LD;                 /* [ST][KT][LD] */
    float *Ss = (float *)(Vs + ST * FA_KT * LD);         /* [ROWS][LS] scores */
    uint16_t *Ps = (uint16_t *)(Ss + ROWS * LS);         /* [ROWS][LP] weights */
    float *m_s = (float *)(Ps + ROWS * LP);              /* [ROWS] running max */
    float *l_s = m_s + ROWS;                             /* [ROWS] running denominator */
    float *c_s = l_s + ROWS;                             /* [ROWS] this tile's rescale */
    int *lo_s = (int *)(c_s + ROWS), *hi_s = lo_s + ROWS; /* [ROWS] visible keys */
    __shared__ int range[2];                             /* union of the rows' [lo, hi) */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int tile = a.NT - 1 - (int)(blockIdx.x / a.S), split = (int)(blockIdx.x % a.S); /* late rows first */
    const int bh = (int)blockIdx.y, b = bh / a.Hkv, hk = bh % a.Hkv;
    const int R = a.G * a.Tq, r0 = tile * ROWS;
    int Tkv = a.Tk;
    if (a.kv_len) Tkv = min(max(*a.kv_len, 0), a.Tk); /* read on the device: graph-capturable */

    if (tid == 0) range[0] = INT32_MAX, range[1] = 0;
    __syncthreads();
    for (int r = tid; r < ROWS; r += NTH) {
        const int rg = r0 + r;
        int lo = 0, hi = 0;
        if (rg < R) {
            const int pos = rg % a.Tq + Tkv - a.Tq;
            hi = Tkv;
            if (a.causal) hi = min(hi, pos + 1);
            if (a.window > 0) lo = max(0, pos - a.window + 1);
            const int cs = split * a.CH, ce = cs + a.CH;
            lo = max(lo, cs);
            hi = min(hi, ce);
        }
        if (hi < lo) hi = lo;
        lo_s[r] = lo, hi_s[r] = hi;
        m_s[r] = -INFINITY, l_s[r] = 0.0f;
        if (lo < hi) atomicMin(&range[0], lo), atomicMax(&range[1], hi);
    }
    __syncthreads();
    const int kbeg = range[0], kend = range[1];

    const uint16_t *kbase = a.k + (int64_t)b * a.ks[0] + (int64_t)hk * a.ks[1];
    const uint16_t *vbase = a.v + (int64_t)b * a.vs[0] + (int64_t)hk * a.vs[1];

    /* K/V tile at k0 -> buffer buf (zeros past the block's keys); one
     * cp.async group per tile. Thread tid copies the 16-byte piece lc of
     * rows lr, lr + RP, ...; its addresses are set up once and advanced
     * by a constant per row step (why: the index arithmetic of a copy per
     * (row, piece) with 64-bit products was the largest instruction count
     * of the tile loop in the SASS). */
    constexpr int PR = D / 8, RP = NTH / PR, NIT = FA_KT / RP; /* pieces per row, rows per pass, passes */
    static_assert(NTH % PR == 0 && FA_KT % RP == 0, "tile copy shape");
    const int lr = tid / PR, lc = (tid % PR) * 8;
    const unsigned ks_sm = (unsigned)__cvta_generic_to_shared(Ks + lr * LD + lc);
    const unsigned vs_sm = (unsigned)__cvta_generic_to_shared(Vs + lr * LD + lc);
    const uint16_t *kg0 = kbase + (int64_t)lr * a.ks[2] + lc, *vg0 = vbase + (int64_t)lr * a.vs[2] + lc;
    const int64_t kstep = (int64_t)RP * a.ks[2], vstep = (int64_t)RP * a.vs[2];
    auto load_tile = [&](int k0, int buf) {
        unsigned sk = ks_sm + buf * (FA_KT * LD * 2), sv = vs_sm + buf * (FA_KT * LD * 2);
        const uint16_t *gk = kg0 + (int64_t)k0 * a.ks[2], *gv = vg0 + (int64_t)k0 * a.vs[2];
        const int rows = kend - k0 - lr; /* pass it copies a key while it * RP < rows */
#pragma unroll
        for (int it = 0; it < NIT; it++) {
            if (it * RP < rows) {
                fa_cp16(sk, gk);
                fa_cp16(sv, gv);
            } else {
                fa_zero16(sk);
                fa_zero16(sv);
            }
            sk += RP * LD * 2, sv += RP * LD * 2, gk += kstep, gv += vstep;
        }
        asm volatile("cp.async.commit_group;\n" ::);
    };
    /* the first ST - 1 tiles (one with one buffer) are on their way before
     * q is staged (they do not depend on it), one cp.async group each
     * (empty past the keys: the group count stays the same for the waits
     * below) */
    constexpr int PRE = ST > 1 ? ST - 1 : 1;
#pragma unroll
    for (int st = 0; st < PRE; st++) {
        if (kbeg < kend - st * FA_KT) load_tile(kbeg + st * FA_KT, st); /* kbeg is INT32_MAX when empty */
        else asm volatile("cp.async.commit_group;\n" ::);
    }
    float o[MT][NB][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nb = 0; nb < NB; nb++) o[mt][nb][0] = o[mt][nb][1] = o[mt][nb][2] = o[mt][nb][3] = 0.0f;

    if (kbeg < kend && a.qvec) {
        /* q rows, scaled in f32 and rounded to the K/V type; padding rows 0.
         * f32 rows with 16-byte alignment (the decode case): all of a
         * thread's loads first, one round trip (the element loop below
         * waits on each of its loads in turn) */
        constexpr int QV = ROWS * D / 4 / NTH; /* float4s per thread */
        float4 xv[QV];
#pragma unroll
        for (int i = 0; i < QV; i++) {
            const int e = tid + i * NTH, r = e / (D / 4), d = (e % (D / 4)) * 4, rg = r0 + r;
            xv[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (rg < R) {
                const int h = hk * a.G + rg / a.Tq, t = rg % a.Tq;
                const float *qr = (const float *)a.q + (int64_t)b * a.qs[0] + (int64_t)h * a.qs[1] + (int64_t)t * a.qs[2];
                xv[i] = *(const float4 *)(qr + d);
            }
        }
#pragma unroll
        for (int i = 0; i < QV; i++) {
            const int e = tid + i * NTH, r = e / (D / 4), d = (e % (D / 4)) * 4;
            *(uint2 *)&Qs[r * LD + d] = make_uint2(fa_pack(xv[i].x * a.scale, xv[i].y * a.scale, BF),
                                                   fa_pack(xv[i].z * a.scale, xv[i].w * a.scale, BF));
        }
    } else if (kbeg < kend) {
        /* q rows, scaled in f32 and rounded to the K/V type; padding rows 0 */
        const int es = a.qdt == MLXN_DTYPE_F32 ? 4 : 2;
        for (int e = tid; e < ROWS * D / 2; e += NTH) {
            const int r = e / (D / 2), d = (e % (D / 2)) * 2, rg = r0 + r;
            float x0 = 0.0f, x1 = 0.0f;
            if (rg < R) {
                const int h = hk * a.G + rg / a.Tq, t = rg % a.Tq;
                const char *qr = a.q + ((int64_t)b * a.qs[0] + (int64_t)h * a.qs[1] + (int64_t)t * a.qs[2]) * es;
                x0 = cu_load(qr, a.qdt, d * a.qs[3]) * a.scale;
                x1 = cu_load(qr, a.qdt, (d + 1) * a.qs[3]) * a.scale;
            }
            *(uint32_t *)&Qs[r * LD + d] = fa_pack(x0, x1, BF);
        }
    }
    for (int k0 = kbeg, it = 0; k0 < kend; k0 += FA_KT, it++) {
        /* 1. this tile arrived; the ST - 1 after it on their way (ST
         * buffers: tile `it` lives in buffer it % ST; the one refilled here
         * held tile it - 1, which every warp finished before the barrier
         * at the loop's end) */
        const int buf = it % ST;
        if (ST == 1) {
            if (it > 0) load_tile(k0, 0); /* one buffer: the previous tile is done with it */
            asm volatile("cp.async.wait_group 0;\n" ::);
        } else {
            const int kn = k0 + (ST - 1) * FA_KT;
            if (kn < kend) load_tile(kn, (it + ST - 1) % ST);
            else asm volatile("cp.async.commit_group;\n" ::);
            asm volatile("cp.async.wait_group %0;\n" ::"n"(ST - 1));
        }
        __syncthreads();
        const uint16_t *Kt = Ks + buf * FA_KT * LD, *Vt = Vs + buf * FA_KT * LD;

        /* 2. S = Q K^T for keys [KW warp, KW warp + KW) of the tile */
        {
            float s[MT][NBS][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nb = 0; nb < NBS; nb++) s[mt][nb][0] = s[mt][nb][1] = s[mt][nb][2] = s[mt][nb][3] = 0.0f;
            /* 32 dims per pass: one ldmatrix gives a key tile's B fragments
             * of two k-steps (matrices: dims +0, +8, +16, +24 of 8 keys),
             * one per k-step gives q's A fragment (rows +0/+8 x dims +0/+8) */
            const int qrow = (lane & 7) + 8 * ((lane >> 3) & 1), qcol = 8 * (lane >> 4);
#pragma unroll 2
            for (int kk = 0; kk < D; kk += 32) {
                uint32_t bk[NBS][4];
#pragma unroll
                for (int nb = 0; nb < NBS; nb++)
                    fa_ldsm4(bk[nb], &Kt[(KW * warp + 8 * nb + (lane & 7)) * LD + kk + 8 * (lane >> 3)]);
#pragma unroll
                for (int h2 = 0; h2 < 2; h2++)
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        uint32_t af[4];
                        fa_ldsm4(af, &Qs[(16 * mt + qrow) * LD + kk + 16 * h2 + qcol]);
#pragma unroll
                        for (int nb = 0; nb < NBS; nb++) fa_mma<BF>(s[mt][nb], af, bk[nb][2 * h2], bk[nb][2 * h2 + 1]);
                    }
            }
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nb = 0; nb < NBS; nb++)
#pragma unroll
                    for (int hf = 0; hf < 2; hf++) {
                        const int row = 16 * mt + g + 8 * hf, col = KW * warp + 8 * nb + 2 * t4, j = k0 + col;
                        const int lo = lo_s[row], hi = hi_s[row];
                        float x0 = s[mt][nb][2 * hf], x1 = s[mt][nb][2 * hf + 1];
                        if (a.softcap > 0.0f) {
                            x0 = tanhf(x0 / a.softcap) * a.softcap;
                            x1 = tanhf(x1 / a.softcap) * a.softcap;
                        }
                        float2 w;
                        w.x = (j >= lo && j < hi) ? x0 : -INFINITY;
                        w.y = (j + 1 >= lo && j + 1 < hi) ? x1 : -INFINITY;
                        *(float2 *)&Ss[row * LS + col] = w;
                    }
        }
        __syncthreads();

        /* 3. online softmax: TPR consecutive threads per row, KPT keys each */
        {
            const int r = tid / TPR, k1 = (tid % TPR) * KPT;
            float x[KPT], tm = -INFINITY;
#pragma unroll
            for (int i = 0; i < KPT; i++) tm = fmaxf(tm, x[i] = Ss[r * LS + k1 + i]);
#pragma unroll
            for (int o = TPR / 2; o > 0; o >>= 1) tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, o));
            const float mo = m_s[r], mn = fmaxf(mo, tm);
            float sum = 0.0f, corr = 1.0f;
            if (mn != -INFINITY) corr = mo == -INFINITY ? 0.0f : __expf(mo - mn);
#pragma unroll
            for (int i = 0; i < KPT; i += 2) {
                /* the weights are rounded once, and the denominator sums the
                 * rounded values the product uses */
                const float p0 = (mn == -INFINITY || x[i] == -INFINITY) ? 0.0f : __expf(x[i] - mn);
                const float p1 = (mn == -INFINITY || x[i + 1] == -INFINITY) ? 0.0f : __expf(x[i + 1] - mn);
                const uint32_t pk = fa_pack(p0, p1, BF);
                *(uint32_t *)&Ps[r * LP + k1 + i] = pk;
                sum += fa_unpack_lo(pk, BF) + fa_unpack_hi(pk, BF);
            }
#pragma unroll
            for (int o = TPR / 2; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            __syncwarp();
            if (tid % TPR == 0) {
                m_s[r] = mn;
                l_s[r] = l_s[r] * corr + sum;
                c_s[r] = corr;
            }
        }
        __syncthreads();

        /* 4. O = O * corr + P V over this warp's output columns */
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            const float c0 = c_s[16 * mt + g], c1 = c_s[16 * mt + g + 8];
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
                o[mt][nb][0] *= c0, o[mt][nb][1] *= c0;
                o[mt][nb][2] *= c1, o[mt][nb][3] *= c1;
            }
        }
        /* 32 keys per pass: one transposed ldmatrix gives an n-tile's B
         * fragments of two k-steps (matrices: keys +0, +8, +16, +24 of 8
         * output columns), one per k-step P's A fragment */
        const int prow = (lane & 7) + 8 * ((lane >> 3) & 1), pcol = 8 * (lane >> 4);
#pragma unroll
        for (int kk = 0; kk < FA_KT; kk += 32) {
            uint32_t af[2][MT][4];
#pragma unroll
            for (int h2 = 0; h2 < 2; h2++)
#pragma unroll
                for (int mt = 0; mt < MT; mt++) fa_ldsm4(af[h2][mt], &Ps[(16 * mt + prow) * LP + kk + 16 * h2 + pcol]);
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
                uint32_t bv[4];
                fa_ldsm4<true>(bv, &Vt[(kk + lane) * LD + warp * (D / NW) + 8 * nb]);
#pragma unroll
                for (int h2 = 0; h2 < 2; h2++)
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) fa_mma<BF>(o[mt][nb], af[h2][mt], bv[2 * h2], bv[2 * h2 + 1]);
            }
        }
        __syncthreads(); /* the next tile overwrites S, P and (one buffer) K, V */
    }

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (a.cl) {
        /* the splits of this row tile merge inside their cluster (fa_cluster_merge); the rows are parked in
         * the K/V buffers (the loop ended on a barrier and no copy is in flight) */
        float *Os = (float *)Ks; /* [ROWS][D] this split's unnormalized rows */
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int hf = 0; hf < 2; hf++)
#pragma unroll
                for (int nb = 0; nb < NB; nb++) {
                    const int row = 16 * mt + g + 8 * hf, col = warp * (D / NW) + 8 * nb + 2 * t4;
                    *(float2 *)&Os[row * D + col] = make_float2(o[mt][nb][2 * hf], o[mt][nb][2 * hf + 1]);
                }
        fa_cluster_merge(a, D, Os, m_s, l_s, r0, min(ROWS, R - r0), b, hk, split);
        return;
    }
#endif
    /* results: normalized rows, or this split's partial rows with (m, l) */
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            const int row = 16 * mt + g + 8 * hf, rg = r0 + row;
            if (rg >= R) continue;
            const float l = l_s[row];
            float *dst;
            float inv = 1.0f;
            if (a.S == 1) {
                const int h = hk * a.G + rg / a.Tq, t = rg % a.Tq;
                dst = a.out + (((int64_t)b * a.Hq + h) * a.Tq + t) * D;
                inv = l > 0.0f ? 1.0f / l : 0.0f; /* no visible key: zeros */
            } else {
                if (m_s[row] == -INFINITY) continue; /* empty partial: only (m, l) below */
                dst = a.part + ((((int64_t)bh * a.NT + tile) * a.S + split) * ROWS + row) * (D + 4);
            }
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
                const int col = warp * (D / NW) + 8 * nb + 2 * t4;
                *(float2 *)&dst[col] = make_float2(o[mt][nb][2 * hf] * inv, o[mt][nb][2 * hf + 1] * inv);
            }
        }
    if (a.S > 1)
        for (int r = tid; r < ROWS; r += NTH) {
            if (r0 + r >= R) continue;
            float *dst = a.part + ((((int64_t)bh * a.NT + tile) * a.S + split) * ROWS + r) * (D + 4);
            dst[D] = m_s[r];
            dst[D + 1] = l_s[r];
        }
}

/* Merges the S partial rows of one output row (b, h, t) over columns
 * [blockIdx.y * 128, + 128): weights exp(m_s - max m), denominators summed
 * with the same weights. 8 warps take every 8th split, each lane 4 columns
 * (16-byte loads): a warp issues the loads of FC_BATCH of its splits at
 * once (their max, denominator and columns) and keeps an online-softmax
 * sum of them; then the warps' sums meet in shared memory, added in warp
 * order (deterministic). Why: the previous version read the maxima, then
 * the denominators, then the columns, three dependent global round trips
 * and four block barriers, per output row and layer. Why a second grid
 * dimension over the columns: decode has few output rows (32 for 32 query
 * heads) and the partials are several MB; more blocks keep more loads in
 * flight. */
enum { FC_BATCH = 8 };
__global__ void __launch_bounds__(256) fa_combine(const float *part, float *out, int Hq, int Hkv, int G, int Tq,
                                                  int D, int NT, int S, int ROWS) {
    cu_pdl_wait(); /* programmatic launch (cu_launch): inputs come from the kernel before */
    cu_pdl_launch_dependents();
    __shared__ float wm[8], wl[8];
    __shared__ __align__(16) float acc_s[8][128];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int64_t orow = blockIdx.x; /* ((b * Hq + h) * Tq + t) */
    const int t = (int)(orow % Tq), h = (int)((orow / Tq) % Hq), b = (int)(orow / ((int64_t)Tq * Hq));
    const int hk = h / G, rg = (h % G) * Tq + t, tile = rg / ROWS, r = rg % ROWS;
    const int64_t sstride = (int64_t)ROWS * (D + 4);
    const float *base = part + ((((int64_t)b * Hkv + hk) * NT + tile) * S * ROWS + r) * (D + 4);
    const int d0 = (int)blockIdx.y * 128 + lane * 4;
    float m = -INFINITY, l = 0.0f; /* this warp's running max and denominator */
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int c0 = warp; c0 < S; c0 += 8 * FC_BATCH) {
        float vm[FC_BATCH], vl[FC_BATCH];
        float4 vx[FC_BATCH];
#pragma unroll
        for (int i = 0; i < FC_BATCH; i++) {
            const int c = c0 + 8 * i;
            const bool ok = c < S;
            vm[i] = ok ? base[c * sstride + D] : -INFINITY;
            vl[i] = ok ? base[c * sstride + D + 1] : 0.0f;
            /* an empty split wrote no columns: read anyway (one round trip), never used */
            vx[i] = ok && d0 < D ? *(const float4 *)&base[c * sstride + d0] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
        float mb = m;
#pragma unroll
        for (int i = 0; i < FC_BATCH; i++) mb = fmaxf(mb, vm[i]);
        if (mb == -INFINITY) continue; /* nothing visible yet */
        const float f = m == -INFINITY ? 0.0f : expf(m - mb);
        l *= f, acc.x *= f, acc.y *= f, acc.z *= f, acc.w *= f;
#pragma unroll
        for (int i = 0; i < FC_BATCH; i++) {
            if (vm[i] == -INFINITY) continue;
            const float w = expf(vm[i] - mb);
            l += w * vl[i];
            acc.x += w * vx[i].x, acc.y += w * vx[i].y, acc.z += w * vx[i].z, acc.w += w * vx[i].w;
        }
        m = mb;
    }
    if (lane == 0) wm[warp] = m, wl[warp] = l;
    *(float4 *)&acc_s[warp][lane * 4] = acc;
    __syncthreads();
    if (tid < 128 && (int)blockIdx.y * 128 + tid < D) {
        float M = -INFINITY;
        for (int w = 0; w < 8; w++) M = fmaxf(M, wm[w]);
        float L = 0.0f, sum = 0.0f;
        for (int w = 0; w < 8; w++) {
            const float f = wm[w] == -INFINITY ? 0.0f : expf(wm[w] - M);
            L += f * wl[w];
            sum += f * acc_s[w][tid];
        }
        out[orow * D + blockIdx.y * 128 + tid] = sum * (L > 0.0f ? 1.0f / L : 0.0f);
    }
}

mlxn_status fa_combine_launch(mlxn_stream *s, const fa_args &a, int D, int ROWS) {
    const int64_t orows = (int64_t)a.B * a.Hq * a.Tq;
    if (orows > INT32_MAX) /* grid x */
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: sdpa with %lld rows is not built yet", (long long)orows);
    cu_launch(s, fa_combine, dim3((unsigned)orows, (unsigned)((D + 127) / 128)), dim3(256), 0, (const float *)a.part,
              a.out, a.Hq, a.Hkv, a.G, a.Tq, D, a.NT, a.S, ROWS);
    return cu_launched(s, "sdpa", "fa_combine");
}

bool cu_attn_mma_fits(const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v, const mlxn_sdpa_params *p,
                      int smem_optin) {
    const int64_t D = q->shape[3];
    if (p->mask || p->sinks) return false;
    /* the smallest launch of this head dim (fa_dispatch: two buffers at D 64 and 128, built only so) */
    if (D <= 128 ? fa_smem_bytes((int)D, 16, 2) > (size_t)smem_optin : fa_stages((int)D, 1, smem_optin) == 0)
        return false;
    if (k->dtype != v->dtype || (k->dtype != MLXN_DTYPE_BF16 && k->dtype != MLXN_DTYPE_F16)) return false;
    /* D 512 runs the single-buffer variant of the tile loop (two 64-key
     * K/V buffers of 512 do not fit in shared memory) */
    if (v->shape[3] != D || (D != 64 && D != 128 && D != 256 && D != 512)) return false;
    const mlxn_tensor *kv[2] = {k, v};
    for (int i = 0; i < 2; i++) {
        const mlxn_tensor *t = kv[i];
        if (t->strides[3] != 1 || ((uintptr_t)cu_ptr(t) & 15)) return false;
        for (int a = 0; a < 3; a++)
            if (t->shape[a] > 1 && t->strides[a] % 8) return false; /* 16-byte rows */
    }
    /* int32 indexing inside the kernel */
    if (q->shape[0] * q->shape[1] > INT32_MAX / 2 || q->shape[2] > INT32_MAX / 2 || k->shape[2] > INT32_MAX / 2 ||
        (q->shape[1] / k->shape[1]) * q->shape[2] > INT32_MAX / 2)
        return false;
    return true;
}

template <int D, int MT, bool BF, int NW, int ST>
static mlxn_status fa_launch(mlxn_stream *s, fa_args &a, int64_t groups, int64_t R) {
    const char *op = "sdpa";
    const size_t smem = fa_smem_bytes(D, 16 * MT, ST);
    MLXN_TRY(cu_smem_allow(s, op, fa_kernel<D, MT, BF, NW, ST>, smem));
    const int sms = cu_ctx(s)->sms;
    int per_sm = 0;
    MLXN_TRY(cu_occupancy(s, op, fa_kernel<D, MT, BF, NW, ST>, NW * 32, smem, &per_sm));
    a.NT = (int)((R + 16 * MT - 1) / (16 * MT));
    /* splits: when the row tiles leave multiprocessors idle, cut the keys
     * into whole 64-key tiles so that the blocks fill one wave (a second,
     * partial wave would double the time); sized from the capacity Tk
     * alone (see the top) */
    const int64_t base = groups * a.NT, slots = (int64_t)sms * (per_sm > 0 ? per_sm : 1);
    a.S = 1;
    a.CH = a.Tk > 0 ? a.Tk : 1;
    if (base < slots && a.Tk > 2 * FA_KT) {
        int64_t S = slots / base, CH = ((a.Tk + S - 1) / S + FA_KT - 1) / FA_KT * FA_KT;
        S = (a.Tk + CH - 1) / CH;
        while (S > FA_MAX_SPLITS) CH += FA_KT, S = (a.Tk + CH - 1) / CH;
        a.S = (int)S;
        a.CH = (int)CH;
    }
    /* the splits merged inside a cluster (sm_90+) where at most FA_CLUSTER_MAX of them cover the keys
     * with at most FA_CLUSTER_KEYS each: fewer splits, no partials in global memory, no fa_combine */
    a.cl = 0;
    a.pf = a.Tq == 1 && !cu_ctx(s)->knobs.attn_pf_off;
    const int64_t ckeys = cu_ctx(s)->knobs.fa_cluster < 0 ? FA_CLUSTER_KEYS : cu_ctx(s)->knobs.fa_cluster;
    if (a.S > 1 && cu_ctx(s)->clusters && ckeys > 0) {
        const int64_t S = a.S < FA_CLUSTER_MAX ? a.S : FA_CLUSTER_MAX;
        const int64_t CH = ((a.Tk + S - 1) / S + FA_KT - 1) / FA_KT * FA_KT;
        const int64_t SC = (a.Tk + CH - 1) / CH;
        /* and only where such a cluster fits the GPU (a partition may have too few multiprocessors per GPC) */
        if (CH <= ckeys && SC > 1 && cu_cluster_occupancy(s, fa_kernel<D, MT, BF, NW, ST>, NW * 32, smem, (int)SC) > 0)
            a.CH = (int)CH, a.S = (int)SC, a.cl = 1;
    }
    const int64_t gx = (int64_t)a.NT * a.S;
    if (gx > INT32_MAX)
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: sdpa with %lld row tiles is not built yet", (long long)gx);
    void *part = NULL;
    if (a.S > 1 && !a.cl) {
        MLXN_TRY(cu_scratch(s, op, (size_t)groups * a.NT * a.S * 16 * MT * (D + 4) * sizeof(float), &part));
        a.part = (float *)part;
    }
    /* one query position at D 64/128 with few keys a block: the one-row decode kernel (cu_attn_decode.cu) */
    bool taken = false;
    mlxn_status st = MT == 1 && NW == 8 ? fa_decode_launch(s, a, D, BF, &taken) : MLXN_OK;
    if (st == MLXN_OK && !taken) {
        cu_launch_cluster(s, a.cl ? (unsigned)a.S : 1u, fa_kernel<D, MT, BF, NW, ST>, dim3((unsigned)gx, (unsigned)groups),
                          dim3(NW * 32), smem, a);
        st = cu_launched(s, op, "fa_kernel");
    }
    if (st == MLXN_OK && a.S > 1 && !a.cl) st = fa_combine_launch(s, a, D, 16 * MT);
    cu_scratch_free(s, part);
    return st;
}

/* The 16-row tiles per block for R rows per kv head (see the top). Only
 * shapes whose two K/V buffers fit are dispatched (D 256 takes one 16-row
 * tile: with two, the buffers no longer fit; see cu_attn_mma_fits). */
static int fa_mt(int D, int64_t R, int optin) {
    int mt = 1;
    while (mt < 512 / D && mt < 2 && 16 * mt < R && fa_stages(D, 2 * mt, optin) == 2) mt *= 2;
    return mt;
}

/* D 256 with one or two K/V buffers (fa_stages), 4 or 8 warps. */
template <bool BF, int NW>
static mlxn_status fa_launch_256(mlxn_stream *s, fa_args &a, int64_t groups, int64_t R) {
    return fa_stages(256, 1, cu_ctx(s)->smem_optin) == 2 ? fa_launch<256, 1, BF, NW, 2>(s, a, groups, R)
                                                         : fa_launch<256, 1, BF, NW, 1>(s, a, groups, R);
}

template <bool BF>
static mlxn_status fa_dispatch(mlxn_stream *s, fa_args &a, int D, int64_t groups, int64_t R) {
    const int mt = fa_mt(D, R, cu_ctx(s)->smem_optin);
    const bool dec = a.Tq == 1; /* decode: 8 warps (see fa_kernel) */
    /* two K/V buffers at D 64 and 128 (every card: cu_attn_mma_fits), one at D 512 (two would take 283 KB) */
    switch (D) {
    case 64:
        return mt == 2 ? fa_launch<64, 2, BF, 4, 2>(s, a, groups, R)
                       : dec ? fa_launch<64, 1, BF, 8, 2>(s, a, groups, R) : fa_launch<64, 1, BF, 4, 2>(s, a, groups, R);
    case 128:
        return mt == 2 ? fa_launch<128, 2, BF, 4, 2>(s, a, groups, R)
                       : dec ? fa_launch<128, 1, BF, 8, 2>(s, a, groups, R)
                             : fa_launch<128, 1, BF, 4, 2>(s, a, groups, R);
    case 256: return dec ? fa_launch_256<BF, 8>(s, a, groups, R) : fa_launch_256<BF, 4>(s, a, groups, R);
    default:
        return dec ? fa_launch<512, 1, BF, 8, 1>(s, a, groups, R) : fa_launch<512, 1, BF, 4, 1>(s, a, groups, R);
    }
}

mlxn_status cu_attn_mma(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                        const mlxn_sdpa_params *p, mlxn_tensor *out) {
    fa_args a;
    a.q = (const char *)cu_ptr(q);
    a.qdt = (int)q->dtype;
    for (int i = 0; i < 4; i++) a.qs[i] = q->strides[i];
    a.qvec = q->dtype == MLXN_DTYPE_F32 && q->strides[3] == 1 && ((uintptr_t)cu_ptr(q) & 15) == 0;
    for (int i = 0; i < 3; i++)
        if (q->shape[i] > 1 && q->strides[i] % 4) a.qvec = 0;
    a.k = (const uint16_t *)cu_ptr(k);
    a.v = (const uint16_t *)cu_ptr(v);
    for (int i = 0; i < 3; i++) a.ks[i] = k->strides[i], a.vs[i] = v->strides[i];
    a.B = (int)q->shape[0], a.Hq = (int)q->shape[1], a.Hkv = (int)k->shape[1], a.Tq = (int)q->shape[2];
    a.Tk = (int)k->shape[2];
    a.G = a.Hq / a.Hkv;
    a.scale = p->scale, a.softcap = p->softcap, a.causal = p->causal, a.window = p->window;
    a.kv_len = p->kv_len ? (const int32_t *)cu_ptr(p->kv_len) : NULL;
    a.out = (float *)cu_ptr(out);
    a.part = NULL;
    a.dch = 1;
    const int D = (int)q->shape[3];
    const int64_t groups = (int64_t)a.B * a.Hkv;
    if (groups > 65535)
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: sdpa with %lld batch x kv heads is not built yet",
                         (long long)groups);
    const int64_t R = (int64_t)a.G * a.Tq;
    return k->dtype == MLXN_DTYPE_BF16 ? fa_dispatch<true>(s, a, D, groups, R) : fa_dispatch<false>(s, a, D, groups, R);
}
