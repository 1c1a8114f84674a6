/* The streaming quantized mat-vec for decode: out[n] = sum_k x[k] * W[n, k]
 * for one x row, W [N, K] quantized along K (every MLX affine width with
 * bf16/f16/f32 scales, mxfp4, nvfp4, mxfp8). docs/perf.md (CUDA log, v6)
 * has the measurements.
 *
 * Design (why each part):
 *   - A warp owns whole W rows (rows gw, gw + GW, ...; GW warps in the
 *     grid) and walks K in "items": one item is 32 lanes x CPL codes, each
 *     lane reading CPL consecutive codes (16, 48 or 80 bytes: whole 16-byte
 *     loads for every width). Rows are never split across warps, so no
 *     block barrier and no cross-warp reduction sits in the hot loop: a
 *     warp shuffle-sums a row when its last item is done.
 *   - Each warp keeps D items in flight in a register ring: after it
 *     computes the item in slot d it refills slot d with the item D ahead
 *     (across row boundaries too), so memory requests are issued
 *     continuously instead of in bursts; the previous kernel (v5) loaded
 *     one group ahead per block and synchronized the block per group, and
 *     its loads waited on the barrier (40% of the copy rate).
 *   - Scales/biases are loaded raw with the codes and decoded only when
 *     the item is computed (decoding at load time would wait on the load).
 *   - x lives in shared memory, staged once per block, padded by 4 floats
 *     after every lane unit of CPL codes: lanes then sit 4 banks apart, so
 *     the 16-byte x reads of each 8-lane phase are conflict-free. For
 *     affine modes the block also stores the sum of every 32 x values, so
 *     the bias costs one FMA per 32 codes (acc += s * sum q x + b * sum x).
 *     The first D items' loads are issued before x is staged, so staging
 *     overlaps the first memory latency.
 *   - Codes become floats exactly (byte permute under 2^23, one subtract),
 *     as in the general kernel (cu_qmv.cuh).
 * Conditions (else the caller runs the general kernel): K % CPL == 0, rows
 * 16-byte aligned, x row 16-byte aligned, group >= 32 for affine, and x
 * (padded) fits the opt-in shared memory (K up to ~50k at 4 bits). */
#include "backend/cuda/cu_qmv.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

/* Codes per lane per item: the fewest that fill whole 16-byte words. */
__host__ __device__ constexpr int qf_cpl(int bits) {
    return (bits == 3 || bits == 5) ? 128 : (bits == 2 || bits == 6) ? 64 : 32;
}

template <int MODE, int BITS, int SDT, int V, int D, int MAXT>
__global__ void __launch_bounds__(MAXT, 1) qmv_fast_kernel(qmv_args a, int nch) {
    constexpr int CPL = qf_cpl(BITS);                         /* codes per lane unit */
    constexpr int WI = CPL * BITS / 32;                       /* words per lane unit (multiple of 4) */
    constexpr int SUB = MODE == MLXN_QUANT_NVFP4 ? 16 : 32;   /* codes per scale read */
    constexpr int NSC = CPL / SUB;                            /* scales per lane unit */
    constexpr int XU = CPL + 4;                               /* padded floats per lane unit */
    constexpr int NXS = CPL / 32;                             /* x sums per lane unit */
    constexpr bool AFF = MODE == MLXN_QUANT_AFFINE;
    extern __shared__ float4 qf_smem[];
    float *xs = (float *)qf_smem;             /* [nch * V * 32][XU] x, zero past K */
    float *xsum = xs + nch * V * 32 * XU;     /* [nch * V * 32][NXS] sums of 32 x values (affine) */

    const int lane = threadIdx.x & 31;
    const int64_t gw = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int64_t GW = (int64_t)gridDim.x * (blockDim.x >> 5);
    const int64_t nrows = gw < a.N ? (a.N - 1 - gw) / GW + 1 : 0;
    const int64_t its = nrows * nch;                          /* this warp's items */
    const float vscale = (MODE == MLXN_QUANT_MXFP4 || MODE == MLXN_QUANT_NVFP4) ? 0.5f : 1.0f;

    uint32_t w[D][V][WI];            /* the ring: codes of D items */
    uint32_t sr[D][V][NSC];          /* raw scales */
    uint32_t br[D][V][AFF ? NSC : 1]; /* raw biases */

    /* loader state: the row's pointers advance by one item's words/codes
     * (no 64-bit index products per item) */
    int64_t lrow = gw;
    int lch = 0, lc0 = lane * CPL;   /* lc0: first code of this lane's unit v = 0 */
    const uint32_t *lw = a.w.wq + lrow * a.w.wq_st + lane * WI;
    const char *lsc = (const char *)a.w.sc + lrow * a.w.sc_st * (AFF ? (SDT == MLXN_DTYPE_F32 ? 4 : 2) : 1);
    const char *lbi = AFF ? (const char *)a.w.bi + lrow * a.w.bi_st * (SDT == MLXN_DTYPE_F32 ? 4 : 2) : NULL;
    auto load = [&](uint32_t (&ww)[V][WI], uint32_t (&ss)[V][NSC], uint32_t (&bb)[V][AFF ? NSC : 1]) {
#pragma unroll
        for (int v = 0; v < V; v++) {
            const int c0 = lc0 + v * 32 * CPL;
            if (c0 < a.K) {
                const uint32_t *p = lw + v * 32 * WI;
#pragma unroll
                for (int i = 0; i < WI / 4; i++) {
                    if (WI == 4) /* one vector per lane unit: each warp load is 512 contiguous bytes */
                        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                                     : "=r"(ww[v][4 * i]), "=r"(ww[v][4 * i + 1]), "=r"(ww[v][4 * i + 2]),
                                       "=r"(ww[v][4 * i + 3])
                                     : "l"(p + 4 * i));
                    else /* lanes' vectors interleave: the unit's next load hits the sectors this one brought to L1 */
                        asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
                                     : "=r"(ww[v][4 * i]), "=r"(ww[v][4 * i + 1]), "=r"(ww[v][4 * i + 2]),
                                       "=r"(ww[v][4 * i + 3])
                                     : "l"(p + 4 * i));
                }
#pragma unroll
                for (int h = 0; h < NSC; h++) {
                    if (AFF) {
                        const int g = (c0 + 32 * h) >> a.gshift;
                        if (SDT == MLXN_DTYPE_F32) {
                            ss[v][h] = __ldg((const unsigned int *)lsc + g);
                            bb[v][h] = __ldg((const unsigned int *)lbi + g);
                        } else {
                            ss[v][h] = __ldg((const unsigned short *)lsc + g);
                            bb[v][h] = __ldg((const unsigned short *)lbi + g);
                        }
                    } else {
                        ss[v][h] = __ldg((const unsigned char *)lsc + c0 / SUB + h);
                    }
                }
            } else { /* past K in the row's last item: contributes 0 (x is 0 there too) */
#pragma unroll
                for (int i = 0; i < WI; i++) ww[v][i] = 0;
#pragma unroll
                for (int h = 0; h < NSC; h++) ss[v][h] = 0, bb[v][AFF ? h : 0] = 0;
            }
        }
        if (++lch == nch) {
            lch = 0, lc0 = lane * CPL, lrow += GW;
            if (lrow < a.N) {
                lw = a.w.wq + lrow * a.w.wq_st + lane * WI;
                lsc = (const char *)a.w.sc + lrow * a.w.sc_st * (AFF ? (SDT == MLXN_DTYPE_F32 ? 4 : 2) : 1);
                if (AFF) lbi = (const char *)a.w.bi + lrow * a.w.bi_st * (SDT == MLXN_DTYPE_F32 ? 4 : 2);
            }
        } else {
            lc0 += V * 32 * CPL, lw += V * 32 * WI;
        }
    };

    /* Programmatic launch (cu_launch): while the kernel before this one
     * finishes, only L2 prefetches of this warp's first items of its row.
     * Why prefetches and not the loads themselves: the weights might in
     * principle be an earlier kernel's output; L2 is where every write
     * lands, so a prefetch can never leave a stale value behind, a register
     * load could. */
#pragma unroll
    for (int d = 0; d < D; d++)
#pragma unroll
        for (int v = 0; v < V; v++)
            if (d < its && d < nch && lc0 + (d * V + v) * 32 * CPL < a.K)
#pragma unroll
                for (int i = 0; i < WI / 4; i++)
                    asm volatile("prefetch.global.L2 [%0];" ::"l"(lw + (d * V + v) * 32 * WI + 4 * i));
    cu_pdl_wait();
    cu_pdl_launch_dependents();

    /* the first D items go out before x is staged */
#pragma unroll
    for (int d = 0; d < D; d++)
        if (d < its) load(w[d], sr[d], br[d]);

    /* x into shared memory, a lane unit per thread, its sums in the same pass (one barrier) */
    const int T = blockDim.x, tid = threadIdx.x;
    for (int unit = tid; unit < nch * V * 32; unit += T) {
        float xsv[NXS];
#pragma unroll
        for (int h = 0; h < NXS; h++) xsv[h] = 0.0f;
        const int k0 = unit * CPL;
#pragma unroll
        for (int f = 0; f < CPL; f += 4) {
            const float4 v = k0 < a.K ? *(const float4 *)(a.x + k0 + f) : make_float4(0.f, 0.f, 0.f, 0.f);
            *(float4 *)(xs + unit * XU + f) = v;
            xsv[f / 32] += (v.x + v.y) + (v.z + v.w);
        }
        if (AFF)
#pragma unroll
            for (int h = 0; h < NXS; h++) xsum[unit * NXS + h] = xsv[h];
    }
    __syncthreads();

    int64_t crow = gw; /* item to compute */
    int cch = 0;
    const float *xp = xs + lane * XU;   /* this lane's unit v = 0 of the item */
    const float *xq = xsum + lane * NXS;
    float acc = 0.0f;
    for (int64_t j = 0; j < its; j += D) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            if (j + d >= its) break;
#pragma unroll
            for (int v = 0; v < V; v++) {
#pragma unroll
                for (int h = 0; h < NSC; h++) {
                    float dsum = 0.0f;
#pragma unroll
                    for (int c = h * SUB / 8; c < (h + 1) * SUB / 8; c++) { /* 8 codes at a time */
                        const float *xc = xp + v * 32 * XU + 8 * c;
                        const float4 x0 = *(const float4 *)xc, x1 = *(const float4 *)(xc + 4);
                        const float xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                        float q[8];
                        codes8<MODE, BITS, WI>(w[d][v], c, q);
#pragma unroll
                        for (int i = 0; i < 8; i++) dsum = fmaf(q[i], xv[i], dsum);
                    }
                    float sc;
                    if (AFF) {
                        sc = SDT == MLXN_DTYPE_F32    ? __uint_as_float(sr[d][v][h])
                             : SDT == MLXN_DTYPE_BF16 ? cu_bf16_f32((uint16_t)sr[d][v][h])
                                                      : cu_f16_f32((uint16_t)sr[d][v][h]);
                        const float b = SDT == MLXN_DTYPE_F32    ? __uint_as_float(br[d][v][h])
                                        : SDT == MLXN_DTYPE_BF16 ? cu_bf16_f32((uint16_t)br[d][v][h])
                                                                 : cu_f16_f32((uint16_t)br[d][v][h]);
                        acc = fmaf(b, xq[v * 32 * NXS + h], acc); /* SUB == 32 for affine: one x sum per scale */
                    } else if (MODE == MLXN_QUANT_NVFP4) {
                        sc = e4m3_f32(sr[d][v][h]) * a.w.gscale * vscale;
                    } else {
                        sc = mlxn_e8m0_to_f32((uint8_t)sr[d][v][h]) * vscale;
                    }
                    acc = fmaf(sc, dsum, acc);
                }
            }
            if (++cch == nch) { /* the row is done: sum the lanes, store */
                const float r = cu_warp_sum(acc);
                if (lane == 0) a.out[crow] = r;
                acc = 0.0f;
                cch = 0, crow += GW;
                xp = xs + lane * XU, xq = xsum + lane * NXS;
            } else {
                xp += V * 32 * XU, xq += V * 32 * NXS;
            }
            if (j + d + D < its) load(w[d], sr[d], br[d]); /* refill the slot, D items ahead */
        }
    }
}

/* Launch shape of one instantiation. */
template <int MODE, int BITS, int SDT, int V, int D, int MAXT>
static bool qf_launch(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    constexpr int CPL = qf_cpl(BITS);
    const char *op = "quantized_matmul";
    const int nch = (a.K / CPL + 32 * V - 1) / (32 * V);
    const size_t smem = (size_t)nch * V * 32 * (CPL + 4) * sizeof(float) +
                        (MODE == MLXN_QUANT_AFFINE ? (size_t)nch * V * CPL * sizeof(float) : 0);
    const int sms = cu_ctx(s)->sms, smsm = cu_ctx(s)->smem_per_sm;
    auto k = qmv_fast_kernel<MODE, BITS, SDT, V, D, MAXT>;
    if (!cu_smem_fits(s, k, smem)) return false;
    if (smem > 48 * 1024) {
        *st = cu_smem_allow(s, op, k, smem);
        if (*st != MLXN_OK) return true;
    }
    /* warps per block: spread small N over every SM (a warp per row), at most MAXT threads */
    int64_t wpb = (a.N + sms - 1) / sms;
    if (wpb > MAXT / 32) wpb = MAXT / 32;
    if (wpb < 1) wpb = 1;
    const int T = (int)wpb * 32;
    int64_t bpsm = 2048 / T, bys = (int64_t)smsm / (int64_t)(smem + 1024);
    if (bys < bpsm) bpsm = bys;
    if (bpsm < 1) bpsm = 1;
    int64_t blocks = (a.N + wpb - 1) / wpb;
    if (blocks > sms * bpsm) blocks = sms * bpsm;
    cu_launch(s, k, dim3((unsigned)blocks), dim3(T), smem, a, nch);
    *st = MLXN_OK;
    return true;
}

/* ---- several x rows (2..8): the same streaming, each weight used NX times ----
 * A warp item is R = 4 rows x one chunk (32 lanes x CPL codes): every x
 * value read from shared memory serves 4 rows (x costs 32 / R bytes of
 * shared-memory traffic per weight instead of 32). Weights are dequantized
 * once (s * q + b) and used for every x row. K is split into slices of a
 * few chunks so that NX rows of x fit in shared memory: block (bx, slice)
 * stages x[:, slice] and its warps walk row groups over that slice; each
 * (slice, row, x row) partial goes to scratch (one slice: straight to
 * out) and qf_sum_slices adds the slices in a fixed order (deterministic,
 * no atomics). The R x NX sums of a row group leave the warp by a
 * reduce-scatter (31 shuffles for 32 sums instead of 5 per sum). */
enum { QFN_R = 4, QFN_THREADS = 256 };

/* v[0..V) summed over the warp; lane l ends with the sum of v[l % V]. */
template <int V>
__device__ __forceinline__ float qf_reduce_scatter(float (&v)[V], int lane) {
#pragma unroll
    for (int s = V / 2; s >= 1; s /= 2) {
        const bool up = lane & s;
#pragma unroll
        for (int i = 0; i < s; i++) {
            const float send = up ? v[i] : v[i + s], keep = up ? v[i + s] : v[i];
            v[i] = keep + __shfl_xor_sync(0xffffffffu, send, s);
        }
    }
    float r = v[0];
#pragma unroll
    for (int s = V; s < 32; s *= 2) r += __shfl_xor_sync(0xffffffffu, r, s);
    return r;
}

template <int MODE, int BITS, int SDT, int NX>
__global__ void __launch_bounds__(QFN_THREADS, 1)
    qmv_fastn_kernel(qmv_args a, int nch, int nchs, float *part /* [slices, M, N] or NULL: write out */) {
    constexpr int R = QFN_R, D = 2;
    constexpr int CPL = qf_cpl(BITS), WI = CPL * BITS / 32;
    constexpr int SUB = MODE == MLXN_QUANT_NVFP4 ? 16 : 32, NSC = CPL / SUB;
    constexpr int XU = CPL + 4;
    constexpr bool AFF = MODE == MLXN_QUANT_AFFINE;
    extern __shared__ float4 qf_smem[];
    float *xs = (float *)qf_smem; /* [NX][nchs * 32][XU] x rows of this slice, zero past K / M */

    const int lane = threadIdx.x & 31, T = blockDim.x, tid = threadIdx.x;
    const int slice = blockIdx.y, k0 = slice * nchs * 32 * CPL;
    const int ncs = min(nchs, nch - slice * nchs); /* chunks in this slice */
    const int nu = a.K / CPL;
    const int64_t ngr = (a.N + R - 1) / R;
    const int64_t gw = (int64_t)blockIdx.x * (T >> 5) + (tid >> 5), GW = (int64_t)gridDim.x * (T >> 5);
    const int64_t ngw = gw < ngr ? (ngr - 1 - gw) / GW + 1 : 0;
    const int64_t its = ngw * ncs;
    const float vscale = (MODE == MLXN_QUANT_MXFP4 || MODE == MLXN_QUANT_NVFP4) ? 0.5f : 1.0f;

    uint32_t w[D][R][WI], sr[D][R][NSC], br[D][R][AFF ? NSC : 1];
    int64_t lg = gw; /* next item to load: row group, chunk within the slice */
    int lch = 0;
    auto load = [&](uint32_t (&ww)[R][WI], uint32_t (&ss)[R][NSC], uint32_t (&bb)[R][AFF ? NSC : 1]) {
        const int u = (slice * nchs + lch) * 32 + lane;
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int64_t row = min(lg * R + r, a.N - 1); /* rows past N repeat row N - 1, never stored */
            if (u < nu) {
                const uint32_t *p = a.w.wq + row * a.w.wq_st + (int64_t)u * WI;
#pragma unroll
                for (int i = 0; i < WI / 4; i++)
                    asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
                                 : "=r"(ww[r][4 * i]), "=r"(ww[r][4 * i + 1]), "=r"(ww[r][4 * i + 2]),
                                   "=r"(ww[r][4 * i + 3])
                                 : "l"(p + 4 * i));
                const int c0 = u * CPL;
                if (AFF) {
#pragma unroll
                    for (int h = 0; h < NSC; h++) {
                        const int g = (c0 + 32 * h) >> a.gshift;
                        if (SDT == MLXN_DTYPE_F32) {
                            ss[r][h] = __ldg((const unsigned int *)a.w.sc + row * a.w.sc_st + g);
                            bb[r][h] = __ldg((const unsigned int *)a.w.bi + row * a.w.bi_st + g);
                        } else {
                            ss[r][h] = __ldg((const unsigned short *)a.w.sc + row * a.w.sc_st + g);
                            bb[r][h] = __ldg((const unsigned short *)a.w.bi + row * a.w.bi_st + g);
                        }
                    }
                } else {
                    const unsigned char *sp = (const unsigned char *)a.w.sc + row * a.w.sc_st + c0 / SUB;
#pragma unroll
                    for (int h = 0; h < NSC; h++) ss[r][h] = __ldg(sp + h);
                }
            } else {
#pragma unroll
                for (int i = 0; i < WI; i++) ww[r][i] = 0;
#pragma unroll
                for (int h = 0; h < NSC; h++) ss[r][h] = 0, bb[r][AFF ? h : 0] = 0;
            }
        }
        if (++lch == ncs) lch = 0, lg += GW;
    };
#pragma unroll
    for (int d = 0; d < D; d++)
        if (d < its) load(w[d], sr[d], br[d]);

    const int su = nchs * 32; /* lane units per x row in shared memory */
    for (int i = tid; i < NX * su * (CPL / 4); i += T) {
        const int m = i / (su * (CPL / 4)), rest = i % (su * (CPL / 4));
        const int unit = rest / (CPL / 4), f = (rest % (CPL / 4)) * 4, k = k0 + unit * CPL + f;
        const float4 v = (m < a.M && unit < ncs * 32 && k < a.K) ? *(const float4 *)(a.x + m * a.ldx + k)
                                                                 : make_float4(0.f, 0.f, 0.f, 0.f);
        *(float4 *)(xs + (m * su + unit) * XU + f) = v;
    }
    __syncthreads();

    int64_t cg = gw;
    int cch = 0;
    float acc[R][NX];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < NX; m++) acc[r][m] = 0.0f;
    for (int64_t j = 0; j < its; j += D) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            if (j + d >= its) break;
            const int unit = cch * 32 + lane;
#pragma unroll
            for (int h = 0; h < NSC; h++) {
                float s[R], b[R];
#pragma unroll
                for (int r = 0; r < R; r++) {
                    if (AFF) {
                        s[r] = SDT == MLXN_DTYPE_F32    ? __uint_as_float(sr[d][r][h])
                               : SDT == MLXN_DTYPE_BF16 ? cu_bf16_f32((uint16_t)sr[d][r][h])
                                                        : cu_f16_f32((uint16_t)sr[d][r][h]);
                        b[r] = SDT == MLXN_DTYPE_F32    ? __uint_as_float(br[d][r][h])
                               : SDT == MLXN_DTYPE_BF16 ? cu_bf16_f32((uint16_t)br[d][r][h])
                                                        : cu_f16_f32((uint16_t)br[d][r][h]);
                    } else {
                        s[r] = (MODE == MLXN_QUANT_NVFP4 ? e4m3_f32(sr[d][r][h]) * a.w.gscale
                                                          : mlxn_e8m0_to_f32((uint8_t)sr[d][r][h])) * vscale;
                        b[r] = 0.0f;
                    }
                }
#pragma unroll
                for (int c = h * SUB / 8; c < (h + 1) * SUB / 8; c++) {
                    float q[R][8]; /* every row's dequantized weights first: each x load then serves R rows */
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        codes8<MODE, BITS, WI>(w[d][r], c, q[r]);
#pragma unroll
                        for (int i = 0; i < 8; i++) q[r][i] = AFF ? fmaf(s[r], q[r][i], b[r]) : q[r][i] * s[r];
                    }
#pragma unroll
                    for (int m = 0; m < NX; m++) {
                        const float *xp = xs + (m * su + unit) * XU + 8 * c;
                        const float4 x0 = *(const float4 *)xp, x1 = *(const float4 *)(xp + 4);
                        const float xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
                        for (int r = 0; r < R; r++)
#pragma unroll
                            for (int i = 0; i < 8; i++) acc[r][m] = fmaf(q[r][i], xv[i], acc[r][m]);
                    }
                }
            }
            if (cch == ncs - 1) { /* the row group's slice is done */
                float v[R * NX];
#pragma unroll
                for (int r = 0; r < R; r++)
#pragma unroll
                    for (int m = 0; m < NX; m++) v[r * NX + m] = acc[r][m], acc[r][m] = 0.0f;
                const float sum = qf_reduce_scatter<R * NX>(v, lane);
                const int idx = lane % (R * NX), r = idx / NX, m = idx % NX;
                const int64_t row = cg * R + r;
                if (lane < R * NX && row < a.N && m < a.M) {
                    if (part) part[((int64_t)slice * a.M + m) * a.N + row] = sum;
                    else a.out[m * a.ldo + row] = sum;
                }
            }
            if (++cch == ncs) cch = 0, cg += GW;
            if (j + d + D < its) load(w[d], sr[d], br[d]);
        }
    }
}

/* out[m, n] = sum over slices of part[slice, m, n], slices in order. */
__global__ void qf_sum_slices(const float *part /* [S, M, N] */, int S, int M, int64_t N, float *out /* [M, ldo] */,
                              int64_t ldo) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)M * N;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int m = (int)(i / N);
        const int64_t n = i % N;
        float v = 0.0f;
        for (int s = 0; s < S; s++) v += part[((int64_t)s * M + m) * N + n];
        out[m * ldo + n] = v;
    }
}

template <int MODE, int BITS, int SDT, int NX>
static bool qfn_launch(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    constexpr int CPL = qf_cpl(BITS);
    const char *op = "quantized_matmul";
    cudaStream_t cs = cu_ctx(s)->s;
    const int nch = (a.K / CPL + 31) / 32;
    const size_t chunk_bytes = (size_t)NX * 32 * (CPL + 4) * sizeof(float); /* x of one chunk, NX rows */
    const int sms = cu_ctx(s)->sms;
    /* slices of up to ~100 KB of x (two blocks per SM), at least one chunk */
    int nchs = (int)((100 * 1024) / chunk_bytes);
    if (nchs < 1) nchs = 1;
    if (nchs > nch) nchs = nch;
    const size_t smem = (size_t)nchs * chunk_bytes;
    auto k = qmv_fastn_kernel<MODE, BITS, SDT, NX>;
    if (!cu_smem_fits(s, k, smem)) return false;
    const int S = (nch + nchs - 1) / nchs;
    /* Several slices: partial sums in scratch, added by qf_sum_slices in a
     * fixed order (test_backend_ops' K = 6208 cases at n = 3 and 8 take this
     * path; they pass on an H100, docs/perf.md). */
    if (smem > 48 * 1024) {
        *st = cu_smem_allow(s, op, k, smem);
        if (*st != MLXN_OK) return true;
    }
    const int64_t ngr = (a.N + QFN_R - 1) / QFN_R, wpb = QFN_THREADS / 32;
    int64_t bx = (2 * (int64_t)sms + S - 1) / S; /* ~2 blocks per SM over all slices */
    if (bx > (ngr + wpb - 1) / wpb) bx = (ngr + wpb - 1) / wpb;
    if (bx < 1) bx = 1;
    float *part = NULL;
    if (S > 1) {
        *st = cu_scratch(s, op, (size_t)S * a.M * a.N * sizeof(float), (void **)&part);
        if (*st != MLXN_OK) return true;
    }
    k<<<dim3((unsigned)bx, (unsigned)S), QFN_THREADS, smem, cs>>>(a, nch, nchs, part);
    *st = cu_launched(s, op, "qmv_fastn_kernel");
    if (*st == MLXN_OK && part) {
        qf_sum_slices<<<cu_blocks((int64_t)a.M * a.N, 256), 256, 0, cs>>>(part, S, a.M, a.N, a.out, a.ldo);
        *st = cu_launched(s, op, "qf_sum_slices");
    }
    cu_scratch_free(s, part);
    return true;
}

/* Several x rows: NX = 4 for 2..4 rows, 8 for 5..8 (unused x rows are zero). */
static bool qfn_dispatch(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    const int mode = a.w.mode, bits = a.w.bits, sdt = a.w.sdt;
#define QFN_NX(M_, B_, S_)                                                                                 \
    return a.M <= 4 ? qfn_launch<M_, B_, S_, 4>(a, s, st) : qfn_launch<M_, B_, S_, 8>(a, s, st);
    if (mode == MLXN_QUANT_AFFINE) {
        if (a.w.group < 32) return false;
#define QFN_AFF(B)                                                                                         \
    if (bits == B) {                                                                                       \
        if (sdt == MLXN_DTYPE_BF16) { QFN_NX(MLXN_QUANT_AFFINE, B, MLXN_DTYPE_BF16) }                        \
        if (sdt == MLXN_DTYPE_F16) { QFN_NX(MLXN_QUANT_AFFINE, B, MLXN_DTYPE_F16) }                          \
        if (sdt == MLXN_DTYPE_F32) { QFN_NX(MLXN_QUANT_AFFINE, B, MLXN_DTYPE_F32) }                          \
        return false;                                                                                      \
    }
        QFN_AFF(2) QFN_AFF(4) QFN_AFF(8) /* 3, 5, 6 bits: 4 rows x 2 items of 48-80 bytes exceed the registers */
#undef QFN_AFF
        return false;
    }
    if (mode == MLXN_QUANT_MXFP4 && bits == 4) { QFN_NX(MLXN_QUANT_MXFP4, 4, 0) }
    if (mode == MLXN_QUANT_NVFP4 && bits == 4) { QFN_NX(MLXN_QUANT_NVFP4, 4, 0) }
    if (mode == MLXN_QUANT_MXFP8 && bits == 8) { QFN_NX(MLXN_QUANT_MXFP8, 8, 0) }
#undef QFN_NX
    return false;
}

bool cu_qmv_fast(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    const int mode = a.w.mode, bits = a.w.bits, sdt = a.w.sdt;
    cudaStream_t cs = cu_ctx(s)->s;
    if (a.M < 1 || a.M > 8) return false;
    if (cu_qmv_mma(a, s, st)) return true;
    const int cpl = qf_cpl(bits);
    if (a.K % cpl || ((uintptr_t)a.w.wq & 15) || (a.w.wq_st * 4) % 16 || ((uintptr_t)a.x & 15) ||
        (a.M > 1 && a.ldx % 4))
        return false;
    if (a.M > 1) return qfn_dispatch(a, s, st);
    if (mode == MLXN_QUANT_AFFINE) {
        if (a.w.group < 32) return false;
#define QF_AFF(B, V, D, T)                                                                                      \
    if (bits == B) {                                                                                            \
        if (sdt == MLXN_DTYPE_BF16) return qf_launch<MLXN_QUANT_AFFINE, B, MLXN_DTYPE_BF16, V, D, T>(a, s, st); \
        if (sdt == MLXN_DTYPE_F16) return qf_launch<MLXN_QUANT_AFFINE, B, MLXN_DTYPE_F16, V, D, T>(a, s, st);   \
        if (sdt == MLXN_DTYPE_F32) return qf_launch<MLXN_QUANT_AFFINE, B, MLXN_DTYPE_F32, V, D, T>(a, s, st);   \
        return false;                                                                                           \
    }
        /* V lane units per item, D items in flight: about 64 bytes in flight per lane; the widest units need the
         * 512-thread register cap */
        QF_AFF(2, 1, 2, 1024)
        QF_AFF(3, 1, 2, 512)
        QF_AFF(4, 2, 2, 1024)
        QF_AFF(5, 1, 2, 512)
        QF_AFF(6, 1, 2, 512)
        QF_AFF(8, 1, 2, 1024)
#undef QF_AFF
        return false;
    }
    if (mode == MLXN_QUANT_MXFP4 && bits == 4) return qf_launch<MLXN_QUANT_MXFP4, 4, 0, 2, 2, 1024>(a, s, st);
    if (mode == MLXN_QUANT_NVFP4 && bits == 4) return qf_launch<MLXN_QUANT_NVFP4, 4, 0, 2, 2, 1024>(a, s, st);
    if (mode == MLXN_QUANT_MXFP8 && bits == 8) return qf_launch<MLXN_QUANT_MXFP8, 8, 0, 1, 2, 1024>(a, s, st);
    return false;
}
