/* The 4-bit mat-vec of decode on the bf16 tensor cores for 2..8 x rows,
 * and the entry points of every tensor-core mat-vec (cu_qmv_mma.cuh has
 * the design, the one-row kernel and its launch; cu_qmv_mma_bits*.cu the
 * one-row kernel's instances for every other format). */
#include "backend/cuda/cu_qmv_mma.cuh"

/* ---- 2..8 x rows ----
 * The same tile and mma layout, one B column set per x row (each exactly
 * the one-row kernel's columns), the codes dequantized once per chunk and
 * used for every row. Splitting x per warp would cost ~40 instructions per
 * row per chunk; here it is done once per call: qm_xprep_kernel writes
 * each chunk's "image" (x's three bf16 parts for NX rows in the order the
 * B registers are read, then the rows' group sums), and the warps copy a
 * chunk's image into their shared-memory ring with cp.async (no registers,
 * D chunks ahead, the copy waited on by cp.async.wait_group). */

/* Bytes of one chunk's image: [NX rows][3 parts][4 lanes t][4 slots] of 16
 * bytes (slot j of lane t at j ^ (t >> 1)), then [NX][G] f32 group sums in
 * 64 bytes. */
__host__ __device__ constexpr int qm_img_bytes(int nx) { return nx * QM_PARTS * 256 + 64; }

/* The body of both image-prep kernels (one block per chunk c, thread k =
 * code position k of the chunk): x rows 0..NX-1 (rows M.. as zeros) split
 * into three bf16 parts that sum to x exactly, part p of row m stored at
 * base + dst(m, p) (each layout's B-register order), then the rows' group
 * sums, [NX][G] f32 at base + sums. Every row's value is loaded first, one
 * round trip (the stores may alias x for the compiler, so loads inside the
 * loop waited on L2 one row at a time; ncu had the 8-row prep at 6.6 us,
 * mostly those waits). */
template <int G, int NX, class Dst>
__device__ __forceinline__ void qm_prep_chunk(const float *x, int64_t ldx, int M, unsigned char *base, int sums, Dst dst) {
    const int c = blockIdx.x, k = threadIdx.x;
    __shared__ float wsum[NX][4];
    cu_pdl_wait();
    cu_pdl_launch_dependents();
    float xv[NX];
#pragma unroll
    for (int m = 0; m < NX; m++) xv[m] = m < M ? x[m * ldx + (int64_t)c * QM_CHUNK + k] : 0.0f;
#pragma unroll
    for (int m = 0; m < NX; m++) {
        float rest = xv[m], sum = xv[m];
#pragma unroll
        for (int o = 16; o >= 1; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if ((k & 31) == 0) wsum[m][k >> 5] = sum;
#pragma unroll
        for (int p = 0; p < QM_PARTS; p++) {
            const __nv_bfloat16 h = __float2bfloat16_rn(rest);
            *(__nv_bfloat16 *)(base + dst(m, p)) = h;
            rest -= __bfloat162float(h);
        }
    }
    __syncthreads();
    if (k < NX * G) {
        const int m = k / G, gi = k % G;
        ((float *)(base + sums))[k] =
            G == 2 ? wsum[m][2 * gi] + wsum[m][2 * gi + 1] : (wsum[m][0] + wsum[m][1]) + (wsum[m][2] + wsum[m][3]);
    }
}

/* One block per chunk, one thread per code position k of it. Rows M..NX-1
 * are zeros. */
template <int G, int NX>
__global__ void __launch_bounds__(QM_CHUNK) qm_xprep_kernel(const float *x, int64_t ldx, int M, unsigned char *img) {
    const int k = threadIdx.x;
    const int t = k >> 5, j = (k >> 3) & 3, i = k & 7; /* lane t, word j, code i of the word */
    /* code i is pair i % 4, half i / 4 (codes m and m + 4 share a bf16x2) */
    const int off = t * 64 + ((j ^ (t >> 1)) * 16) + (i & 3) * 4 + (i >> 2) * 2;
    qm_prep_chunk<G, NX>(x, ldx, M, img + (size_t)blockIdx.x * qm_img_bytes(NX), NX * QM_PARTS * 256,
                         [=](int m, int p) { return (m * QM_PARTS + p) * 256 + off; });
}

/* G, SDT, W, D as in qmv_mma_kernel; NX: x rows (a.M <= NX). Shared
 * memory per warp: D image slots (parts padded to 288 bytes apart, as in
 * the one-row kernel) and 64 bytes of zeros. */
template <int G, int SDT, int NX, int W, int D>
__global__ void __launch_bounds__(W * 32, 512 / (W * 32)) qmv_mma_nx_kernel(qmv_args a, const unsigned char *img) {
    constexpr int SUMS = NX * QM_PARTS * QM_PART_BYTES;  /* a slot's group sums, after its parts */
    constexpr int SLOT = SUMS + 64, WBYTES = D * SLOT + 64;
    extern __shared__ uint4 qm_dsmem[];
    __shared__ float red[W][NX][QM_ROWS]; /* each warp's row sums */
    const int nch = a.K / QM_CHUNK;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int64_t r0 = (int64_t)blockIdx.x * QM_ROWS;
    qm_rows<false> rows(a, r0, g, t, r0 + 8, warp, W); /* (offsets: it spills with either form; pointers not timed here) */
    unsigned char *wb = (unsigned char *)qm_dsmem + warp * WBYTES;
    const uint32_t wbs = (uint32_t)__cvta_generic_to_shared(wb);

    uint32_t cw[D][8]; /* ring: codes (qm_rows::load) */
    uint32_t sw[D][4]; /* ring: raw scales and biases */
    /* chunk c's image into slot d: 16-byte pieces q, part pieces placed
     * 288 bytes apart per (row, part); the caller commits one cp.async group
     * per slot refill, copy or not, so wait_group counts slots */
    auto copy = [&](int d, int c) {
        const unsigned char *src = img + (size_t)c * qm_img_bytes(NX);
        for (int q = lane; q < NX * 48 + 4; q += 32) {
            const uint32_t dst = wbs + d * SLOT + (q < NX * 48 ? (q >> 4) * QM_PART_BYTES + (q & 15) * 16 : SUMS + (q - NX * 48) * 16);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src + 16 * q));
        }
    };

#pragma unroll
    for (int d = 0; d < D; d++)
        if (warp + d * W < nch) rows.prefetch(a, d);
    cu_pdl_wait(); /* the images are the kernel before's output */
    cu_pdl_launch_dependents();
#pragma unroll
    for (int d = 0; d < D; d++) {
        if (warp + d * W < nch) rows.load<G>(a, cw[d], sw[d]), copy(d, warp + d * W);
        asm volatile("cp.async.commit_group;" ::);
    }
    if (lane < 4) ((uint4 *)(wb + D * SLOT))[lane] = make_uint4(0, 0, 0, 0);

    /* B registers as in the one-row kernel: the column's part of each row, or the zeros */
    const bool bvalid = qm_bvalid<G>(g, t);
    const unsigned char *bb = bvalid ? wb + (g % QM_PARTS) * QM_PART_BYTES + t * 64 : wb + D * SLOT;
    const int bslot = bvalid ? SLOT : 0, brow = bvalid ? QM_PARTS * QM_PART_BYTES : 0, swz = bvalid ? t >> 1 : 0;
    const qm_epi<G, SDT> epi(t);
    float accg[NX], acch[NX];
#pragma unroll
    for (int m = 0; m < NX; m++) accg[m] = acch[m] = 0.0f;
    for (int c0 = warp; c0 < nch; c0 += D * W) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            const int c = c0 + d * W;
            if (c >= nch) break;
            asm volatile("cp.async.wait_group %0;" ::"n"(D - 1)); /* this slot's copy (the oldest group) is done */
            __syncwarp();
            float sv[4], bv[4];
            epi.scales(sw[d], sv, bv);
            const float *sums = (const float *)(wb + d * SLOT + SUMS);
            /* two x rows at a time, each row's 8 mmas split over two accumulators: 4 independent chains of 4
             * (one chain of 8 per row, row after row, left the warp waiting on the mma latency). The codes
             * become operands again for every pair of rows: holding all 32 operand registers across the rows
             * cost 40 more registers per thread, which halved the warps per SM. */
#pragma unroll
            for (int m0 = 0; m0 < NX; m0 += 2) {
                float acc[2][2][4] = {}; /* [row of the pair][chain][accumulator] */
#pragma unroll
                for (int j = 0; j < 4; j++) { /* word j: mmas 2j, 2j + 1; B read just before (8 registers live) */
                    uint4 v[2];
#pragma unroll
                    for (int r = 0; r < 2; r++) v[r] = *(const uint4 *)(bb + d * bslot + (m0 + r) * brow + 16 * (j ^ swz));
#pragma unroll
                    for (int r = 0; r < 2; r++) {
                        qm_mma(acc[r][0], qm_pair(cw[d][j], 0), qm_pair(cw[d][4 + j], 0), qm_pair(cw[d][j], 1),
                               qm_pair(cw[d][4 + j], 1), v[r].x, v[r].y);
                        qm_mma(acc[r][1], qm_pair(cw[d][j], 2), qm_pair(cw[d][4 + j], 2), qm_pair(cw[d][j], 3),
                               qm_pair(cw[d][4 + j], 3), v[r].z, v[r].w);
                    }
                }
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    const int m = m0 + r;
#pragma unroll
                    for (int e = 0; e < 2; e++)
                        epi.add(e, sums[m * G + epi.egrp[e]], acc[r][0][e] + acc[r][1][e], acc[r][0][2 + e] + acc[r][1][2 + e],
                                sv, bv, accg[m], acch[m]);
                }
            }
            __syncwarp(); /* every lane is done with the slot before it is refilled */
            if (c + D * W < nch) rows.load<G>(a, cw[d], sw[d]), copy(d, c + D * W);
            asm volatile("cp.async.commit_group;" ::);
        }
    }
    asm volatile("cp.async.wait_all;" ::);
    qm_finish<W, NX>(a, r0, accg, acch, red);
}

/* ---- 3..8 x rows, the rows as B columns ----
 * Why a second layout: above, an mma's 8 B columns are one x row's (group,
 * part) sums, so 8 rows take 8 mmas per 16 codes and re-make the code
 * operands for every pair of rows (~450 instructions per chunk and warp at
 * 8 rows; 58 us at 4096 x 14336). Here B's 8 columns are the 8 x rows (rows
 * M..7 zero) and x's three parts are three mmas, each into its own f32
 * accumulator (the parts' sums are added in f32 after, as the one-row
 * layout adds its part columns), so 16 codes of 16 W rows against all rows
 * cost 3 mmas, and the codes become operands once per chunk. (Two rows stay
 * on the kernel above: this one costs the same for any row count.)
 *   - An mma must not mix two groups (each has its own scale): the 4 lanes
 *     t feeding one mma must hold codes of one group. With groups of 64,
 *     lane t loads 8 bytes of each group of each of its rows ([8t, 8t + 8)
 *     and [32 + 8t, 32 + 8t + 8) of the chunk's 64 bytes: 4 lanes read 32
 *     contiguous bytes, a whole sector); k-steps 0..3 take group 0's words,
 *     4..7 group 1's. With groups of 128, lane t loads bytes [16t, 16t + 16).
 *   - k-step s uses word s / 2 of each row and nibble pairs m0 = 2 (s % 2)
 *     (k = 2t, 2t + 1) and m0 + 1 (k = 2t + 8, 2t + 9), as qm_pair makes
 *     them; qm8_xprep_kernel puts each x value where that order needs it.
 *   - The accumulator of lane (g, t) holds W rows g, g + 8 times x rows 2t,
 *     2t + 1. Per group: acc += s * (C - 128 sum x) + b * sum x, with the
 *     group sums of x rows 2t, 2t + 1 from the image.
 *   - Accumulators per part and per chain, the chain being the group (64)
 *     or the k-step's parity (128): no accumulator waits on the mma
 *     latency more than 4 times per chunk.
 * The image of a chunk: [4 k-step pairs][3 parts][32 lanes] x 16 bytes (a
 * lane's B registers of k-steps 2i and 2i + 1: one conflict-free 16-byte
 * read), then [8 rows][G] f32 group sums. */
__host__ __device__ constexpr int qm8_img_bytes() { return 4 * QM_PARTS * 32 * 16 + 64; }

/* One block per chunk, one thread per code position k of it. */
template <int G>
__global__ void __launch_bounds__(QM_CHUNK) qm8_xprep_kernel(const float *x, int64_t ldx, int M, unsigned char *img) {
    const int k = threadIdx.x;
    /* lane t, word j (of the lane's 4 words of a row) and nibble of code k */
    int t, j;
    if (G == 2) t = (k & 63) >> 4, j = 2 * (k >> 6) + ((k >> 3) & 1);
    else t = k >> 5, j = (k >> 3) & 3;
    const int nib = k & 7, s = 2 * j + ((nib & 3) >> 1);         /* k-step: pair nib % 4 is m0 or m0 + 1 */
    const int reg = (s & 1) * 2 + (nib & 1), half = nib >> 2;    /* b0 / b1 of k-step s; low / high bf16 */
    /* part p of row m: B lane (g = m, t) of k-step pair s / 2 */
    qm_prep_chunk<G, 8>(x, ldx, M, img + (size_t)blockIdx.x * qm8_img_bytes(), 4 * QM_PARTS * 32 * 16,
                        [=](int m, int p) { return (((s >> 1) * QM_PARTS + p) * 32 + 4 * m + t) * 16 + reg * 4 + half * 2; });
}

/* G, SDT, W, D as in qmv_mma_kernel; T row tiles of 16 per block, each
 * warp computing all of them for its chunks. Why T > 1: a chunk's image
 * (6 KB) comes from L2 once per warp and chunk, against 1 KB of codes per
 * tile; with one tile the images were ~6x the weights' bytes. Shared
 * memory per warp: D image slots. */
template <int G, int SDT, int W, int D, int T>
__global__ void __launch_bounds__(W * 32, 1) qmv_mma8_kernel(qmv_args a, const unsigned char *img) {
    constexpr int SLOT = qm8_img_bytes(), SUMS = 4 * QM_PARTS * 32 * 16;
    extern __shared__ uint4 qm_dsmem[];
    __shared__ float red[W][T][4][32]; /* each warp's sums, [tile][value][lane] */
    const int nch = a.K / QM_CHUNK;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int64_t r0 = (int64_t)blockIdx.x * QM_ROWS * T;
    unsigned char *wb = (unsigned char *)qm_dsmem + warp * D * SLOT;
    const uint32_t wbs = (uint32_t)__cvta_generic_to_shared(wb);

    /* this lane's rows g, g + 8 of each tile (clamped: rows past N compute and are not written) */
    uint32_t ow[T][2], os[T][2];
#pragma unroll
    for (int u = 0; u < T; u++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            int64_t r = r0 + 16 * u + g + 8 * hr;
            if (r >= a.N) r = a.N - 1;
            ow[u][hr] = (uint32_t)cu_qrow_words(a.w, r) + (G == 2 ? 2 * t : 4 * t);
            os[u][hr] = (uint32_t)cu_qrow_scales(a.w, r);
        }
    /* a chunk's step in words and scale elements (the layout's) */
    const uint32_t ccw = (uint32_t)cu_qchunk_words(a.w), ccs = (uint32_t)cu_qchunk_scales(a.w);
    uint32_t cw[D][T][8]; /* ring: words 0..3 of row g, then of row g + 8, per tile */
    uint32_t sw[D][T][4]; /* ring: raw scales of rows g, g + 8, then biases (a group pair as one word when G = 2) */
    auto load = [&](int d, uint32_t c) {
        const uint32_t *wq = a.w.wq;
        const unsigned short *sc = (const unsigned short *)a.w.sc, *bi = (const unsigned short *)a.w.bi;
#pragma unroll
        for (int u = 0; u < T; u++)
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                uint32_t *w = cw[d][u] + 4 * hr;
                if (G == 2) {
                    const uint2 v0 = __ldg((const uint2 *)(wq + ow[u][hr] + ccw * c));
                    const uint2 v1 = __ldg((const uint2 *)(wq + ow[u][hr] + ccw * c + 8));
                    w[0] = v0.x, w[1] = v0.y, w[2] = v1.x, w[3] = v1.y;
                    sw[d][u][hr] = __ldg((const unsigned int *)(sc + (os[u][hr] + ccs * c)));
                    sw[d][u][2 + hr] = __ldg((const unsigned int *)(bi + (os[u][hr] + ccs * c)));
                } else {
                    const uint4 v = __ldg((const uint4 *)(wq + ow[u][hr] + ccw * c));
                    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
                    sw[d][u][hr] = __ldg(sc + (os[u][hr] + ccs * c));
                    sw[d][u][2 + hr] = __ldg(bi + (os[u][hr] + ccs * c));
                }
            }
        /* the chunk's image into slot d: SLOT / 16 pieces over the lanes; one cp.async group per refill */
        const unsigned char *src = img + (size_t)c * SLOT;
        for (int q = lane; q < SLOT / 16; q += 32)
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(wbs + d * SLOT + 16 * q), "l"(src + 16 * q));
    };

    /* before the wait, only L2 prefetches of the first chunks' codes (see qm_rows::prefetch) */
#pragma unroll
    for (int d = 0; d < D; d++)
#pragma unroll
        for (int u = 0; u < T; u++)
#pragma unroll
            for (int hr = 0; hr < 2; hr++)
                if (warp + d * W < nch) asm volatile("prefetch.global.L2 [%0];" ::"l"(a.w.wq + (ow[u][hr] + ccw * (warp + d * W))));
    cu_pdl_wait(); /* the images are the kernel before's output */
    cu_pdl_launch_dependents();
#pragma unroll
    for (int d = 0; d < D; d++) {
        if (warp + d * W < nch) load(d, warp + d * W);
        asm volatile("cp.async.commit_group;" ::);
    }
    /* the scale of group e from a raw word */
    auto scale = [&](uint32_t raw, int e) { return qm_scale(raw, qm_scale_sel<SDT>(e), SDT); };
    /* per tile: (row g, x 2t), (row g, x 2t + 1), (row g + 8, x 2t), (row g + 8, x 2t + 1) */
    float out[T][4];
#pragma unroll
    for (int u = 0; u < T; u++) out[u][0] = out[u][1] = out[u][2] = out[u][3] = 0.0f;
    for (int c0 = warp; c0 < nch; c0 += D * W) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            const int c = c0 + d * W;
            if (c >= nch) break;
            asm volatile("cp.async.wait_group %0;" ::"n"(D - 1)); /* this slot's image (the oldest group) is here */
            __syncwarp();
            const uint4 *bimg = (const uint4 *)(wb + d * SLOT) + lane;
            /* [tile][chain][part]: chain = group (G = 2) or k-step parity (G = 1); each part its own
             * accumulator, added in f32 after (one accumulator for all three parts lost precision: NMSE
             * 1-2e-10 against the CPU, where the one-row layout stays under 1e-10) */
            float acc[T][2][QM_PARTS][4] = {};
#pragma unroll
            for (int i = 0; i < 4; i++) { /* k-steps 2i, 2i + 1: word i */
                const int ch = G == 2 ? (i >> 1) : 0;
                uint32_t A[T][2][4];
#pragma unroll
                for (int u = 0; u < T; u++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        A[u][h][0] = qm_pair(cw[d][u][i], 2 * h), A[u][h][1] = qm_pair(cw[d][u][4 + i], 2 * h);
                        A[u][h][2] = qm_pair(cw[d][u][i], 2 * h + 1), A[u][h][3] = qm_pair(cw[d][u][4 + i], 2 * h + 1);
                    }
#pragma unroll
                for (int p = 0; p < QM_PARTS; p++) {
                    const uint4 b = bimg[(i * QM_PARTS + p) * 32];
#pragma unroll
                    for (int u = 0; u < T; u++) {
                        qm_mma(acc[u][G == 2 ? ch : 0][p], A[u][0][0], A[u][0][1], A[u][0][2], A[u][0][3], b.x, b.y);
                        qm_mma(acc[u][G == 2 ? ch : 1][p], A[u][1][0], A[u][1][1], A[u][1][2], A[u][1][3], b.z, b.w);
                    }
                }
            }
            const float *sums = (const float *)(wb + d * SLOT + SUMS); /* [8 x rows][G] */
#pragma unroll
            for (int e = 0; e < G; e++) {
                const float x0 = sums[(2 * t) * G + e], x1 = sums[(2 * t + 1) * G + e];
#pragma unroll
                for (int u = 0; u < T; u++) {
                    const float s0 = scale(sw[d][u][0], e), s1 = scale(sw[d][u][1], e);
                    const float b0 = scale(sw[d][u][2], e), b1 = scale(sw[d][u][3], e);
                    float cv[4];
#pragma unroll
                    for (int r = 0; r < 4; r++) {
                        const int cc = G == 2 ? e : 0;
                        cv[r] = (acc[u][cc][2][r] + acc[u][cc][1][r]) + acc[u][cc][0][r];
                        if (G == 1) cv[r] += (acc[u][1][2][r] + acc[u][1][1][r]) + acc[u][1][0][r];
                    }
                    out[u][0] = fmaf(s0, fmaf(-128.0f, x0, cv[0]), fmaf(b0, x0, out[u][0]));
                    out[u][1] = fmaf(s0, fmaf(-128.0f, x1, cv[1]), fmaf(b0, x1, out[u][1]));
                    out[u][2] = fmaf(s1, fmaf(-128.0f, x0, cv[2]), fmaf(b1, x0, out[u][2]));
                    out[u][3] = fmaf(s1, fmaf(-128.0f, x1, cv[3]), fmaf(b1, x1, out[u][3]));
                }
            }
            __syncwarp(); /* every lane is done with the slot before it is refilled */
            if (c + D * W < nch) load(d, c + D * W);
            asm volatile("cp.async.commit_group;" ::);
        }
    }
    asm volatile("cp.async.wait_all;" ::);
    /* the warps' sums, added in warp order (deterministic) */
#pragma unroll
    for (int u = 0; u < T; u++)
#pragma unroll
        for (int v = 0; v < 4; v++) red[warp][u][v][lane] = out[u][v];
    __syncthreads();
    for (int i = threadIdx.x; i < T * 4 * 32; i += W * 32) {
        const int u = i >> 7, v = (i >> 5) & 3, ln = i & 31, gg = ln >> 2, tt = ln & 3;
        const int m = 2 * tt + (v & 1);
        const int64_t r = r0 + 16 * u + gg + 8 * (v >> 1);
        if (m < a.M && r < a.N) {
            float sum = 0.0f;
#pragma unroll
            for (int w = 0; w < W; w++) sum += red[w][u][v][ln];
            a.out[m * a.ldo + r] = sum;
        }
    }
}

/* The several-row launches: the x image of every chunk (img_bytes each)
 * into stream scratch by `prep`, then `k` over row tiles of `rows` rows
 * with `smem` bytes of dynamic shared memory. false when that does not fit
 * (the caller then runs the f32 kernels); *st says whether the launches
 * went. */
template <class Prep, class Main>
static bool qm_launch_imaged(const qmv_args &a, mlxn_stream *s, mlxn_status *st, Prep prep, Main k, size_t img_bytes,
                             int rows, int threads, size_t smem) {
    const char *op = "quantized_matmul";
    const int nch = a.K / QM_CHUNK;
    if (!cu_smem_fits(s, k, smem)) return false; /* e.g. 5..8 x rows on a 99 KB card (sm_86 / sm_89) */
    if (smem > 48 * 1024) {
        *st = cu_smem_allow(s, op, k, smem);
        if (*st != MLXN_OK) return true;
    }
    unsigned char *img = NULL;
    *st = cu_scratch(s, op, (size_t)nch * img_bytes, (void **)&img);
    if (*st != MLXN_OK) return true;
    cu_launch(s, prep, dim3((unsigned)nch), dim3(QM_CHUNK), 0, a.x, a.ldx, a.M, img);
    cu_launch(s, k, dim3((unsigned)((a.N + rows - 1) / rows)), dim3(threads), smem, a, (const unsigned char *)img);
    cu_scratch_free(s, img); /* stream-ordered: freed after the kernel */
    return true;
}

template <int G, int SDT>
static bool qm8_launch(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    constexpr int W = 8, D = 2, T = 2;
    return qm_launch_imaged(a, s, st, qm8_xprep_kernel<G>, qmv_mma8_kernel<G, SDT, W, D, T>, qm8_img_bytes(), QM_ROWS * T,
                            W * 32, (size_t)W * D * qm8_img_bytes());
}

template <int G, int SDT, int NX, int W>
static bool qmx_launch1(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    constexpr int D = 2;
    return qm_launch_imaged(a, s, st, qm_xprep_kernel<G, NX>, qmv_mma_nx_kernel<G, SDT, NX, W, D>, qm_img_bytes(NX),
                            QM_ROWS, W * 32, (size_t)W * (D * (NX * QM_PARTS * QM_PART_BYTES + 64) + 64));
}

/* 8 warps per block where K is long or the row tiles do not fill the SMs (as for one row), else 4; 4
 * also where 8 do not fit the card's shared memory (8 x rows on 99 KB: sm_86 / sm_89) */
template <int G, int SDT, int NX>
static bool qmx_launch(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    const int v = cu_ctx(s)->knobs.qmv_mma;
    if (v == 2 || (v != 3 && (a.K / QM_CHUNK >= 64 || (a.N + QM_ROWS - 1) / QM_ROWS <= cu_ctx(s)->sms)))
        if (qmx_launch1<G, SDT, NX, 8>(a, s, st)) return true;
    return qmx_launch1<G, SDT, NX, 4>(a, s, st);
}

/* Formats the tensor cores take for one x row only (cu_qmv_mma_bits*.cu): all but affine 4-bit with groups
 * of 64 or 128 */
static bool qm_one_row_only(const cu_qmat &w) { return w.bits != 4 || w.mode != MLXN_QUANT_AFFINE || w.group == 32; }

bool cu_qmv_mma_takes(const cu_qmat &w, int64_t N, int64_t K, mlxn_stream *s) {
    /* mxfp4 (groups of 32, e8m0 byte scales) and nvfp4 (groups of 16, e4m3 bytes, read in pairs) by rows,
     * no biases: one x row (cu_qmv_mma_bits.cu) */
    if (w.mode == MLXN_QUANT_MXFP4 || w.mode == MLXN_QUANT_NVFP4) {
        const bool nv = w.mode == MLXN_QUANT_NVFP4;
        return cu_ctx(s)->knobs.qmv_mma != 0 && !cu_ctx(s)->knobs.qmv_bits_off && w.bits == 4 &&
               w.group == (nv ? 16 : 32) && !(nv && (((uintptr_t)w.sc & 1) || (w.sc_st & 1))) && !w.tiled &&
               K % QM_CHUNK == 0 && K <= INT32_MAX / 2 && !((uintptr_t)w.wq & 15) && (w.wq_st * 4) % 16 == 0 &&
               N * w.wq_st < ((int64_t)1 << 31) && N * w.sc_st < ((int64_t)1 << 31);
    }
    /* every other affine width (2, 3, 5, 6, 8 bits), and 4-bit with groups of 32, by rows: one x row
     * (cu_qmv_mma_bits.cu) */
    const bool g32 = w.bits == 4 && w.group == 32;
    const bool other = (w.bits == 2 || w.bits == 3 || w.bits == 5 || w.bits == 6 || w.bits == 8 || g32) && !w.tiled &&
                       !cu_ctx(s)->knobs.qmv_bits_off;
    /* scales and biases bf16 or f16, or f32 with groups of 32 (GGUF Q4_K / Q5_K imports; the f16 path) */
    const bool f32s = w.sdt == MLXN_DTYPE_F32 && w.group == 32 && other && !(((uintptr_t)w.sc | (uintptr_t)w.bi) & 3);
    if (cu_ctx(s)->knobs.qmv_mma == 0 || w.mode != MLXN_QUANT_AFFINE || (w.bits != 4 && !other) || (g32 && !other) ||
        !w.bi || (w.group != 32 && w.group != 64 && w.group != 128) ||
        (w.sdt != MLXN_DTYPE_BF16 && w.sdt != MLXN_DTYPE_F16 && !f32s) || K % QM_CHUNK || K > INT32_MAX / 2 ||
        ((uintptr_t)w.wq & 15) || (w.wq_st * 4) % 16)
        return false;
    /* the G = 2 path reads a group pair as one 32-bit word */
    if (w.group == 64 && (((uintptr_t)w.sc | (uintptr_t)w.bi) & 3 || (w.sc_st | w.bi_st) & 1)) return false;
    /* one offset per row serves scales and biases; element offsets are 32-bit */
    return w.sc_st == w.bi_st && N * w.wq_st < ((int64_t)1 << 31) && N * w.sc_st < ((int64_t)1 << 31);
}

/* The one-row launch: 8 warps with 3 chunks in flight each when K has 64
 * chunks or more, or when there are no more row tiles than SMs (more warps
 * per block are then the only way to more loads in flight); 6 warps with 2
 * where 3 blocks per SM take every tile in one wave; else 4 warps with 2 (a
 * block's warps split K, and fewer warps keep each one's run of chunks
 * long enough to fill its ring). MLXN_CUDA_QMV_MMA = 2 / 3 / 7 force one
 * shape (timing runs compare them, tests cover them). Measured on an H100:
 * docs/perf.md, v8 and later sections. */
static bool qm_launch_one(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    if (qm_one_row_only(a.w)) return cu_qmv_mma_bits(a, s, st);
    const int variant = cu_ctx(s)->knobs.qmv_mma;
#define QM_PICK(W, D)                                                                                    \
    if (a.w.group == 64)                                                                                 \
        return a.w.sdt == MLXN_DTYPE_BF16 ? qm_launch<2, MLXN_DTYPE_BF16, W, D>(a, s, st)                \
                                          : qm_launch<2, MLXN_DTYPE_F16, W, D>(a, s, st);                \
    return a.w.sdt == MLXN_DTYPE_BF16 ? qm_launch<1, MLXN_DTYPE_BF16, W, D>(a, s, st)                    \
                                      : qm_launch<1, MLXN_DTYPE_F16, W, D>(a, s, st);
    const int64_t tiles = (a.N + QM_ROWS - 1) / QM_ROWS;
    /* 16 warps where K is long and the row tiles are at most one per SM (Llama-3.2-1B's down projection,
     * 2048 x 8192: 128 tiles): each SM then has one block, and 16 warps keep twice the chunks in flight.
     * MLXN_CUDA_QMV_MMA = 6 leaves this shape out (comparisons) */
    if ((variant == 1 || variant == 8) && a.K / QM_CHUNK >= 64 && tiles <= cu_ctx(s)->sms) { QM_PICK(16, 3) }
    if (variant == 7) { QM_PICK(6, 2) } /* every shape on the 6-warp launch (tests) */
    /* 8 warps x 3 chunks in flight where K is long, or where the row tiles need at most two 8-warp blocks
     * per SM (one wave): a warp then owns few enough chunks for one or two round trips. Up to 2 tiles per
     * SM (not 1) measured on an H100: Llama-3.2-1B's q/k/v (192 tiles at K = 2048) joins, tg128 1503-1515
     * -> 1565-1601 tok/s; the 8B's o (256 tiles) joins without moving its tg128; up to 3 per SM (the 8B's
     * 384-tile q/k/v too) cost the 8B 1%. 4 warps x 2 elsewhere (many tiles: more blocks per SM) */
    const bool wide = variant == 2 || (variant != 3 && (a.K / QM_CHUNK >= 64 || tiles <= 2 * cu_ctx(s)->sms));
    if (wide) { QM_PICK(8, 3) }
    /* 6 warps x 2 where the row tiles need more than 2 and at most 3 blocks per SM (Llama-3-8B's q/k/v,
     * 6144 x 4096: 384 tiles): 3 blocks of 6 warps fit a SM at 96 registers, so the grid is one wave of
     * ~18 warps per SM where 4-warp blocks left ~12 (2.9 blocks per SM of the 5 that fit) and 8-warp
     * ones needed 1.5 waves. Measured on an H100: 6144 x 4096 10.7 -> 8.6 us back to back, 8B tg128
     * 421.5 -> 437.0 tok/s; on shapes with fewer tiles it gained nothing (4096 x 4096 6.37 / 6.35 us)
     * or lost (2048 x 8192 7.1 -> 7.5). MLXN_CUDA_QMV_MMA = 8 leaves this shape out (comparisons) */
    if (variant != 3 && variant != 8 && tiles <= 3 * cu_ctx(s)->sms) { QM_PICK(6, 2) }
    QM_PICK(4, 2)
#undef QM_PICK
}

bool cu_qmv_mma_fused(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    if (a.M != 1 || ((uintptr_t)a.x & 15) || !cu_qmv_mma_takes(a.w, a.N, a.K, s)) return false;
    if (a.glu && (a.res || a.N % 2)) return false;
    /* rope_kv: whole tiles of a head (qm_tile), no other epilogue */
    if (a.rk && (a.glu || a.res || a.rk_d % QM_ROWS || a.rk_qk % QM_ROWS || a.N % QM_ROWS)) return false;
    /* the norm weight: 16-bit (read as pairs: 4-byte aligned), or f32 (pairs: 8-byte aligned) with the one-row
     * kernel's groups of 32 (4 a chunk: fp4, affine g32; qb_launch builds that variant) */
    const bool g4 = qm_one_row_only(a.w) && (a.w.mode != MLXN_QUANT_AFFINE || a.w.group == 32);
    const bool nw16 = (a.nw_dt == MLXN_DTYPE_BF16 || a.nw_dt == MLXN_DTYPE_F16) && !((uintptr_t)a.nw & 3);
    const bool nw32 = a.nw_dt == MLXN_DTYPE_F32 && g4 && !((uintptr_t)a.nw & 7);
    if (a.nw && !nw16 && !nw32) return false;
    return qm_launch_one(a, s, st);
}

bool cu_qmv_mma(const qmv_args &a, mlxn_stream *s, mlxn_status *st) {
    const int variant = cu_ctx(s)->knobs.qmv_mma;
    if (a.M < 1 || a.M > 8 || (a.M == 1 && ((uintptr_t)a.x & 15)) || !cu_qmv_mma_takes(a.w, a.N, a.K, s))
        return false;
    if (qm_one_row_only(a.w) && a.M > 1) return false; /* (the f32 kernels take more rows) */
    /* 3..8 rows: x rows as B columns (qmv_mma8_kernel; 4096 x 14336 at 8 rows 58 -> 32 us on an H100). 2 rows
     * stay on the one-row layout's kernel (24 against 30 us there), as do 3..8 rows with MLXN_CUDA_QMV_MMA = 4
     * (comparisons) */
    if (a.M > 2 && variant != 4) {
        const bool bf = a.w.sdt == MLXN_DTYPE_BF16;
        const bool went = a.w.group == 64 ? (bf ? qm8_launch<2, MLXN_DTYPE_BF16>(a, s, st) : qm8_launch<2, MLXN_DTYPE_F16>(a, s, st))
                                          : (bf ? qm8_launch<1, MLXN_DTYPE_BF16>(a, s, st) : qm8_launch<1, MLXN_DTYPE_F16>(a, s, st));
        /* its blocks (97 KB of images, 8 KB of sums) do not fit a 99 KB card (sm_86 / sm_89): the one-row
         * layout's kernel below */
        if (went) return true;
    }
    if (a.M > 1) {
        /* 5..8 rows over a short K: the f32 kernel (cu_qmv_fast.cu) measured faster (62 against 68-72 us at
         * 14336 x 4096, n = 8); the mma kernel wins from K = 8192 (58 against 74 us at 4096 x 14336) */
        if (a.M > 4 && a.K / QM_CHUNK < 64 && !a.w.tiled) return false; /* (a tiled matrix has no f32 kernel) */
#define QMX_PICK(NX)                                                                                     \
    if (a.w.group == 64)                                                                                 \
        return a.w.sdt == MLXN_DTYPE_BF16 ? qmx_launch<2, MLXN_DTYPE_BF16, NX>(a, s, st)                 \
                                          : qmx_launch<2, MLXN_DTYPE_F16, NX>(a, s, st);                 \
    return a.w.sdt == MLXN_DTYPE_BF16 ? qmx_launch<1, MLXN_DTYPE_BF16, NX>(a, s, st)                     \
                                      : qmx_launch<1, MLXN_DTYPE_F16, NX>(a, s, st);
        if (a.M == 2) { QMX_PICK(2) }
        if (a.M <= 4) { QMX_PICK(4) }
        QMX_PICK(8)
#undef QMX_PICK
    }
    return qm_launch_one(a, s, st);
}
