/* One-row decode attention on the tensor cores: bf16/f16 K/V, head dims 64
 * and 128, one query position, the G <= 16 query heads of a kv head as the
 * rows of one 16-row mma tile (semantics: backend/cpu/sdpa_kernels.h, as
 * the tile kernel in cu_attn_flash.cu, which picks the splits and calls
 * fa_decode_launch where this kernel fits).
 *
 * Why a second kernel: the tile kernel's block walks 64-key tiles with a
 * chain of block barriers per tile (scores to shared memory, the softmax by
 * rows, the weights back, the products), every warp waiting for the
 * slowest at each, and it prefetches only its first tile into the L2
 * before the programmatic wait. Here no block barrier comes before the
 * warps' merge, and all of the block's keys (at most FA_DEC_KEYS) are
 * prefetched. Measured on an H100 (docs/perf.md): decode at depth 1024,
 * Llama-3.2-1B 1533 -> 1629 tok/s, Llama-3-8B 407.8 -> 411.0; from an
 * empty context (tg128) the 8B 445 -> 446.6 and the 1B unchanged. Alone,
 * one call is within 0.5 us of the tile kernel's either way; at head dim
 * 128 a block of at most 64 keys was 0.4 us slower, and those stay on the
 * tile kernel (fa_decode_launch).
 *
 * Here each of the FD_NW = 8 warps runs flash attention alone over whole
 * 16-key chunks of the block's keys (chunk c: warp c % 8; at most
 * FA_DEC_KEYS keys a block, so one or two chunks a warp), in registers:
 *   - its chunks' K and V rows go global -> shared with cp.async, one group
 *     per chunk, all issued at once, while q loads straight from global
 *     memory into mma A fragments (scaled in f32, rounded to the K/V type);
 *   - S = q K^T: 16 rows x 16 keys, D / 16 k-steps, K's B fragments by
 *     ldmatrix; softcap, then keys past the block's range masked;
 *   - the online softmax in the accumulator layout: a row's 16 scores sit
 *     on the 4 lanes of a quad (two shuffles give its max); the weights,
 *     rounded to the K/V type, are P V's A fragment as they stand (two m16n8
 *     accumulators side by side are the m16n8k16 A layout); the
 *     denominator sums the rounded weights (per lane, quad-summed at the
 *     end), as the tile kernel's does;
 *   - O = O * corr + P V over all D columns (D / 8 n-tiles), V's B
 *     fragments by transposed ldmatrix.
 * No block barrier until the warps are done. Then their (m, l, O) meet in
 * shared memory (over the K/V rows) and each output is merged over the 8
 * warps in warp order (deterministic) and written as the tile kernel does:
 * normalized (one split), as a split's partial row with (m, l) for
 * fa_combine, or parked for the cluster's merge (fa_cluster_merge). */
#include "backend/cuda/cu_attn_flash.cuh"

enum { FD_NW = 8, FD_CK = 16 }; /* warps per block, keys per chunk */

/* Shared memory: the chunks' K/V rows [FD_NW][dch][2][FD_CK][D + 8] b16,
 * which the warps' rows [FD_NW][16][D + 8] f32 overlay once every warp is
 * done (both pitches padded by 8 so an ldmatrix's 8 row addresses, and a
 * warp's row stores, spread over the banks); then the warps' maxima,
 * denominators and merge weights [3][FD_NW][16], the merged rows for a
 * cluster [16][D] and their (m, l) [2][16], f32. */
__host__ __device__ constexpr size_t fd_area(int D, int dch) {
    return (size_t)FD_NW * dch * 2 * FD_CK * (D + 8) * 2 > (size_t)FD_NW * 16 * (D + 8) * 4
               ? (size_t)FD_NW * dch * 2 * FD_CK * (D + 8) * 2
               : (size_t)FD_NW * 16 * (D + 8) * 4;
}
constexpr size_t fd_smem(int D, int dch) { return fd_area(D, dch) + (3 * FD_NW * 16 + 16 * (size_t)D + 2 * 16) * 4; }

template <int D, bool BF>
__global__ void __launch_bounds__(FD_NW * 32) fa_decode_kernel(fa_args a) {
    /* K/V and merge row pitches, k-steps, n-tiles, 16-byte pieces a K/V row */
    constexpr int LD = D + 8, OP = D + 8, KS = D / 16, NB = D / 8, PR = D / 8;
    const int dch = a.dch;
    if (a.pf) fa_prefetch_keys<D>(a, FD_NW * 32, FD_NW * FD_CK * dch); /* all of the block's keys */
    cu_pdl_wait(); /* programmatic launch (cu_launch): inputs come from the kernel before */
    cu_pdl_launch_dependents();
    extern __shared__ __align__(16) unsigned char fd_raw[];
    uint16_t *kv_s = (uint16_t *)fd_raw;                   /* [FD_NW][dch][2][FD_CK][LD] */
    float *Om = (float *)fd_raw;                           /* after the chunks: [FD_NW][Rv][OP] */
    float *Ms = (float *)(fd_raw + fd_area(D, dch));       /* [FD_NW][16] each warp's row maxima */
    float *Ls = Ms + FD_NW * 16;                           /* [FD_NW][16] and denominators */
    float *Fs = Ls + FD_NW * 16;                           /* [FD_NW][16] and merge weights */
    float *Os = Fs + FD_NW * 16;                           /* [16][D] merged rows (cluster) */
    float *m_s = Os + 16 * D, *l_s = m_s + 16;             /* [16] their maxima, denominators */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int split = (int)blockIdx.x, bh = (int)blockIdx.y, b = bh / a.Hkv, hk = bh % a.Hkv; /* NT == 1 */
    const int R = a.G, Rv = min(16, R);
    int Tkv = a.Tk;
    if (a.kv_len) Tkv = min(max(*a.kv_len, 0), a.Tk); /* read on the device: graph-capturable */
    /* the keys the query (position Tkv - 1) sees, this split's share: the same for every row */
    int lo = a.window > 0 ? max(0, Tkv - a.window) : 0, hi = Tkv;
    lo = max(lo, split * a.CH);
    hi = min(hi, split * a.CH + a.CH);
    const int nchunk = hi > lo ? (hi - lo + FD_CK - 1) / FD_CK : 0; /* <= FD_NW * dch (the host's choice) */

    /* 1. this warp's chunks: K and V rows to shared (zeros past hi: a NaN row of spare capacity must not
     *    reach P V, where its weight 0 would still give NaN), one cp.async group per chunk */
    const uint16_t *kbase = a.k + (int64_t)b * a.ks[0] + (int64_t)hk * a.ks[1];
    const uint16_t *vbase = a.v + (int64_t)b * a.vs[0] + (int64_t)hk * a.vs[1];
    uint16_t *mine = kv_s + (size_t)warp * dch * 2 * FD_CK * LD;
    for (int i = 0; i < dch; i++) {
        const int c = warp + FD_NW * i;
        if (c < nchunk) {
            const int k0 = lo + FD_CK * c;
            uint16_t *Kc = mine + i * 2 * FD_CK * LD, *Vc = Kc + FD_CK * LD;
#pragma unroll
            for (int e = lane; e < FD_CK * PR; e += 32) {
                const int r = e / PR, pc = (e % PR) * 8;
                const unsigned sk = (unsigned)__cvta_generic_to_shared(Kc + r * LD + pc);
                const unsigned sv = (unsigned)__cvta_generic_to_shared(Vc + r * LD + pc);
                if (k0 + r < hi) {
                    fa_cp16(sk, kbase + (int64_t)(k0 + r) * a.ks[2] + pc);
                    fa_cp16(sv, vbase + (int64_t)(k0 + r) * a.vs[2] + pc);
                } else {
                    fa_zero16(sk);
                    fa_zero16(sv);
                }
            }
        }
        asm volatile("cp.async.commit_group;\n" ::); /* empty past the chunks: the group count stays dch */
    }

    /* 2. q's A fragments: rows g and g + 8 (zeros past R), dims 16 ks + 2 t4 (+ 1) and + 8. f32 rows with
     *    16-byte alignment (the decode case): a row's loads all issued before any is used, one round trip
     *    (per-element branches made them 16 dependent L2 round trips: 3 us) */
    uint32_t qa[KS][4];
    {
        const int es = a.qdt == MLXN_DTYPE_F32 ? 4 : 2;
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            const int row = g + 8 * hf;
            const char *qr = a.q + ((int64_t)b * a.qs[0] + (int64_t)(hk * a.G + min(row, R - 1)) * a.qs[1]) * es;
            const bool pad = row >= R; /* a padding row: zeros (its loads read row R - 1) */
            if (a.qvec) {
                float2 v[KS][2];
#pragma unroll
                for (int ks = 0; ks < KS; ks++)
#pragma unroll
                    for (int cp = 0; cp < 2; cp++) v[ks][cp] = *(const float2 *)((const float *)qr + 16 * ks + 8 * cp + 2 * t4);
#pragma unroll
                for (int ks = 0; ks < KS; ks++)
#pragma unroll
                    for (int cp = 0; cp < 2; cp++) qa[ks][hf + 2 * cp] = pad ? 0u : fa_pack(v[ks][cp].x * a.scale, v[ks][cp].y * a.scale, BF);
            } else {
#pragma unroll
                for (int ks = 0; ks < KS; ks++)
#pragma unroll
                    for (int cp = 0; cp < 2; cp++) {
                        const int d = 16 * ks + 8 * cp + 2 * t4;
                        qa[ks][hf + 2 * cp] = pad ? 0u
                                                  : fa_pack(cu_load(qr, a.qdt, d * a.qs[3]) * a.scale,
                                                            cu_load(qr, a.qdt, (d + 1) * a.qs[3]) * a.scale, BF);
                    }
            }
        }
    }

    /* 3. flash attention over this warp's chunks: rows g (m0, l0) and g + 8 (m1, l1) */
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    float o[NB][4];
#pragma unroll
    for (int nb = 0; nb < NB; nb++) o[nb][0] = o[nb][1] = o[nb][2] = o[nb][3] = 0.0f;
    for (int i = 0; i < dch; i++) {
        const int c = warp + FD_NW * i;
        if (c >= nchunk) break; /* uniform in the warp */
        if (i + 1 < dch) asm volatile("cp.async.wait_group 1;\n" ::); /* chunk i has landed, i + 1 may not */
        else asm volatile("cp.async.wait_group 0;\n" ::);
        __syncwarp();
        const uint16_t *Kc = mine + i * 2 * FD_CK * LD, *Vc = Kc + FD_CK * LD;
        const int k0 = lo + FD_CK * c;

        float s[2][4]; /* [n-tile: keys 8 nt ..][rows g: 0, 1; g + 8: 2, 3] */
#pragma unroll
        for (int nt = 0; nt < 2; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D; kk += 32) {
            /* one ldmatrix: an n-tile's B fragments of two k-steps (dims +0, +8, +16, +24 of 8 keys) */
            uint32_t bk[2][4];
#pragma unroll
            for (int nt = 0; nt < 2; nt++) fa_ldsm4(bk[nt], &Kc[(8 * nt + (lane & 7)) * LD + kk + 8 * (lane >> 3)]);
#pragma unroll
            for (int h2 = 0; h2 < 2; h2++)
#pragma unroll
                for (int nt = 0; nt < 2; nt++) fa_mma<BF>(s[nt], qa[kk / 16 + h2], bk[nt][2 * h2], bk[nt][2 * h2 + 1]);
        }
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[nt][e];
                if (a.softcap > 0.0f) x = tanhf(x / a.softcap) * a.softcap;
                s[nt][e] = k0 + 8 * nt + 2 * t4 + (e & 1) < hi ? x : -INFINITY;
            }
        float tm0 = fmaxf(fmaxf(s[0][0], s[0][1]), fmaxf(s[1][0], s[1][1]));
        float tm1 = fmaxf(fmaxf(s[0][2], s[0][3]), fmaxf(s[1][2], s[1][3]));
        tm0 = fmaxf(tm0, __shfl_xor_sync(0xffffffffu, tm0, 1));
        tm1 = fmaxf(tm1, __shfl_xor_sync(0xffffffffu, tm1, 1));
        tm0 = fmaxf(tm0, __shfl_xor_sync(0xffffffffu, tm0, 2));
        tm1 = fmaxf(tm1, __shfl_xor_sync(0xffffffffu, tm1, 2));
        const float mn0 = fmaxf(m0, tm0), mn1 = fmaxf(m1, tm1);
        float corr0 = 1.0f, corr1 = 1.0f;
        if (mn0 != -INFINITY) corr0 = m0 == -INFINITY ? 0.0f : __expf(m0 - mn0);
        if (mn1 != -INFINITY) corr1 = m1 == -INFINITY ? 0.0f : __expf(m1 - mn1);
        m0 = mn0, m1 = mn1;
        /* the weights, rounded once; P's A fragment: a0 row g keys 2 t4.., a1 row g + 8, a2 / a3 keys + 8 */
        uint32_t pa[4];
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int hf = 0; hf < 2; hf++) {
                const float mn = hf ? mn1 : mn0, x0 = s[nt][2 * hf], x1 = s[nt][2 * hf + 1];
                const float p0 = (mn == -INFINITY || x0 == -INFINITY) ? 0.0f : __expf(x0 - mn);
                const float p1 = (mn == -INFINITY || x1 == -INFINITY) ? 0.0f : __expf(x1 - mn);
                const uint32_t pk = fa_pack(p0, p1, BF);
                pa[2 * nt + hf] = pk;
                (hf ? sum1 : sum0) += fa_unpack_lo(pk, BF) + fa_unpack_hi(pk, BF);
            }
        l0 = l0 * corr0 + sum0, l1 = l1 * corr1 + sum1;
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            o[nb][0] *= corr0, o[nb][1] *= corr0;
            o[nb][2] *= corr1, o[nb][3] *= corr1;
        }
        /* O += P V: one transposed ldmatrix gives two n-tiles' B fragments (keys 0-7 / 8-15 of dims 16 np
         * + 0 and + 8) */
#pragma unroll
        for (int np = 0; np < NB / 2; np++) {
            uint32_t bv[4];
            fa_ldsm4<true>(bv, &Vc[(lane & 15) * LD + 16 * np + 8 * (lane >> 4)]);
            fa_mma<BF>(o[2 * np], pa, bv[0], bv[1]);
            fa_mma<BF>(o[2 * np + 1], pa, bv[2], bv[3]);
        }
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);

    /* 4. the warps' rows meet in shared memory (over the K/V rows: every warp is done with them) */
    asm volatile("cp.async.wait_group 0;\n" ::); /* a warp that stopped early may still have copies in flight */
    __syncthreads();
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int row = g + 8 * hf;
        if (row < Rv)
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
                *(float2 *)&Om[((size_t)warp * Rv + row) * OP + 8 * nb + 2 * t4] = make_float2(o[nb][2 * hf], o[nb][2 * hf + 1]);
        if (t4 == 0) Ms[warp * 16 + row] = hf ? m1 : m0, Ls[warp * 16 + row] = hf ? l1 : l0;
    }
    __syncthreads();
    /* 5. each row's merge weights once: thread 8 row + w takes warp w's (the 8 of a row are lanes of one
     *    warp; their max and the weighted denominators' sum by shuffles, a fixed order: deterministic) */
    if (tid < 16 * FD_NW) {
        const int row = tid >> 3, w = tid & 7;
        const float mw = Ms[w * 16 + row];
        float M = mw;
        for (int x = 1; x < 8; x <<= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, x));
        const float f = mw == -INFINITY ? 0.0f : expf(mw - M); /* a warp without keys weighs nothing */
        float L = f * Ls[w * 16 + row];
        for (int x = 1; x < 8; x <<= 1) L += __shfl_xor_sync(0xffffffffu, L, x);
        Fs[w * 16 + row] = f;
        if (w == 0) m_s[row] = M, l_s[row] = L;
    }
    __syncthreads();
    /* 6. the outputs, 4 columns a thread: sum over the warps of weight x row */
    for (int e = tid; e < Rv * (D / 4); e += FD_NW * 32) {
        const int row = e / (D / 4), col = (e % (D / 4)) * 4;
        float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int w = 0; w < FD_NW; w++) {
            const float f = Fs[w * 16 + row];
            const float4 v = *(const float4 *)&Om[((size_t)w * Rv + row) * OP + col];
            acc.x += f * v.x, acc.y += f * v.y, acc.z += f * v.z, acc.w += f * v.w;
        }
        const float M = m_s[row], L = l_s[row];
        const int h = hk * a.G + row;
        float *dst;
        if (a.cl) {
            *(float4 *)&Os[row * D + col] = acc; /* fa_cluster_merge normalizes */
            continue;
        } else if (a.S == 1) {
            const float inv = L > 0.0f ? 1.0f / L : 0.0f; /* no visible key: zeros */
            acc.x *= inv, acc.y *= inv, acc.z *= inv, acc.w *= inv;
            dst = a.out + ((int64_t)b * a.Hq + h) * D + col;
        } else {
            float *prow = a.part + (((int64_t)bh * a.S + split) * 16 + row) * (D + 4);
            if (col == 0) prow[D] = M, prow[D + 1] = L;
            if (M == -INFINITY) continue; /* an empty partial: only (m, l) */
            dst = prow + col;
        }
        dst[0] = acc.x, dst[1] = acc.y, dst[2] = acc.z, dst[3] = acc.w;
    }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (a.cl) fa_cluster_merge(a, D, Os, m_s, l_s, 0, Rv, b, hk, split); /* its first cluster barrier orders Os */
#endif
}

template <int D, bool BF>
static mlxn_status fd_launch(mlxn_stream *s, fa_args &a, bool *taken) {
    const size_t smem = fd_smem(D, a.dch);
    /* a GPU with less shared memory per block (e.g. 99 KB on sm_86 / sm_89, which run the sm_80 build):
     * the tile kernel */
    if (!cu_smem_fits(s, fa_decode_kernel<D, BF>, smem)) return MLXN_OK;
    MLXN_TRY(cu_smem_allow(s, "sdpa", fa_decode_kernel<D, BF>, smem));
    /* a cluster of these larger blocks may not fit where the tile kernel's did: then that one runs */
    if (a.cl && cu_cluster_occupancy(s, fa_decode_kernel<D, BF>, FD_NW * 32, smem, a.S) <= 0) return MLXN_OK;
    *taken = true;
    cu_launch_cluster(s, a.cl ? (unsigned)a.S : 1u, fa_decode_kernel<D, BF>, dim3((unsigned)a.S, (unsigned)(a.B * a.Hkv)),
                      dim3(FD_NW * 32), smem, a);
    return cu_launched(s, "sdpa", "fa_decode_kernel");
}

mlxn_status fa_decode_launch(mlxn_stream *s, fa_args &a, int D, bool bf, bool *taken) {
    *taken = false;
    if (a.Tq != 1 || a.G > 16 || a.NT != 1 || (D != 64 && D != 128) || cu_ctx(s)->knobs.fa_decode_off) return MLXN_OK;
    const int64_t keys = a.S == 1 ? a.Tk : a.CH; /* the most keys one block covers */
    /* measured on an H100 (docs/perf.md): at head dim 128 a block of at most 64 keys (half its warps
     * idle) was 0.4 us slower than the tile kernel, which then keeps it */
    if (keys > FA_DEC_KEYS || (D == 128 && keys <= FA_KT)) return MLXN_OK;
    a.dch = (int)((keys + FD_NW * FD_CK - 1) / (FD_NW * FD_CK));
    if (a.dch < 1) a.dch = 1;
    if (D == 64) return bf ? fd_launch<64, true>(s, a, taken) : fd_launch<64, false>(s, a, taken);
    return bf ? fd_launch<128, true>(s, a, taken) : fd_launch<128, false>(s, a, taken);
}
