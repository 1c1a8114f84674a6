/* CUDA quantized matmul for decode: out[m, n] = sum_k x[m, k] * W[n, k]
 * with W quantized along k (MLX layout, mlxn/quant.h), every MLX mode and
 * width, few x rows.
 *
 * transpose (W [N, K], the decode case); docs/perf.md has every version's
 * measurements. 1..8 x rows whose shape and alignment the streaming kernels
 * take (cu_qmv_fast.cu: K a multiple of the lane unit, 16-byte aligned rows,
 * affine groups >= 32) run there; of the rest, one x row of affine 4-bit
 * weights with bf16/f16 scales runs qmv1_kernel, described above it, and
 * everything else runs qmv_kernel:
 *   - A block of 256 threads owns R = 4 consecutive W rows and splits K
 *     over all its threads. Why: each x
 *     value a thread loads (from L1) serves R rows, so x costs 2 bytes per
 *     4-bit weight byte instead of 8, while N / R = 1024 blocks of 8 warps
 *     keep 24 warps on every SM busy (the first version gave each warp its
 *     own 4 rows: 8 warps per SM could not hide the ALU latency and it ran
 *     at a fifth of the bandwidth).
 *   - A thread step covers CPL = 32 consecutive codes of a row (16 for
 *     nvfp4, whose groups are 16 wide), which lie in one group: one scale
 *     (and bias) per row and step. Threads take consecutive steps, so a
 *     warp reads 512 contiguous bytes of a 4-bit row per load instruction.
 *   - Codes are read with the widest load the row alignment allows (16
 *     bytes for 4/8-bit, 8 for 2/6-bit and nvfp4) without allocating in L1
 *     (weights are streamed once; L1 is left to x). Up to 4 bits, two steps'
 *     loads are issued before either is used (wider codes fill the same
 *     registers with one step).
 *   - Affine: per step and row, d = sum q * x and acc += s * d + b * sum x
 *     (sum x is shared by the rows). A code becomes a float by placing it
 *     in the mantissa of 2^23 and subtracting 2^23 (exact; an int->float
 *     conversion runs at a quarter of the FP32 rate). For 4 and 8 bits the
 *     byte holding the code is moved there by one byte permute (4-bit
 *     words are first split into their even and odd nibbles), so a weight
 *     costs a permute, an add and an FMA. The fp modes multiply each
 *     step's sum fp(q) * x by the group scale; e4m3 codes use the hardware
 *     fp8 conversion where there is one (sm_89+).
 *   - Threads reduce by warp shuffles, then across warps through shared
 *     memory; out is written once.
 *   x rows must be unit-stride, 16-byte aligned and evenly spaced; other
 *   views are gathered into scratch first. NX (x rows per launch) is 1 or
 *   8; more rows run in chunks of 8 (a prefill-sized x re-reads W per
 *   chunk: the tensor-core mat-mat is separate work).
 *
 * not transposed (W [K, N] quantized along N): qmv_n_kernel, one thread per
 * output column walking k, scalar decode; correct and simple, not fast.
 *
 * The instantiation matrix: QMV_KINDS below (10 modes/widths) x qmv_kernel
 * NX = 1 and 8, plus qmv1_kernel for affine 4-bit with bf16 or f16 scales. */
#include "backend/cuda/cu_qmv.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

enum { QMV_THREADS = 256, QMV_WARPS = QMV_THREADS / 32, QMV_NX_MAX = 8 };

/* W rows per block for NX x rows. */
#define QMV_ROWS(NX) 4

template <int MODE, int BITS, int NX>
__global__ void __launch_bounds__(QMV_THREADS, NX == 1 ? 3 : 2) qmv_kernel(qmv_args a) {
    constexpr int R = QMV_ROWS(NX);
    constexpr int CPL = MODE == MLXN_QUANT_NVFP4 ? 16 : 32; /* codes per step */
    constexpr int WPL = CPL * BITS / 32;                     /* words per step */
    constexpr int U = (WPL <= 4 && NX == 1) ? 2 : 1; /* steps loaded before use: 16 bytes x R rows x 2 in flight */
    /* NX > 1: dequantize each weight once (s * q + b) and use it for every x
     * row; NX = 1: d = sum q * x per step, scaled once (one FMA less per weight) */
    constexpr bool DQ = NX > 1;
    constexpr bool AFF = MODE == MLXN_QUANT_AFFINE;
    __shared__ float red[QMV_WARPS][R * NX];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int64_t row0 = (int64_t)blockIdx.x * R;
    const int nsteps = a.K / CPL;
    /* e2m1 values come out doubled (see e2m1_x2); halve through the scale */
    const float vscale = (MODE == MLXN_QUANT_MXFP4 || MODE == MLXN_QUANT_NVFP4) ? 0.5f : 1.0f;

    /* rows past N (last block only) read row N - 1 and are never stored */
    int64_t rows[R];
    const uint32_t *wrow[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        rows[r] = row0 + r < a.N ? row0 + r : a.N - 1;
        wrow[r] = a.w.wq + rows[r] * a.w.wq_st;
    }

    float acc[R][NX];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < NX; m++) acc[r][m] = 0.0f;

    for (int st0 = tid; st0 < nsteps; st0 += QMV_THREADS * U) {
        uint32_t w[U][R][WPL];
        float sc[U][R], bi[U][R];
        /* issue every load of U steps first */
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int st = st0 + QMV_THREADS * u;
            const int g = (st * CPL) >> a.gshift;
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (st < nsteps) {
                    load_words<WPL>(wrow[r] + st * WPL, w[u][r], a.vec);
                    sc[u][r] = cu_q_scale(a.w, rows[r], g) * vscale;
                    bi[u][r] = AFF ? cu_load(a.w.bi, a.w.sdt, rows[r] * a.w.bi_st + g) : 0.0f;
                } else {
#pragma unroll
                    for (int i = 0; i < WPL; i++) w[u][r][i] = 0;
                    sc[u][r] = bi[u][r] = 0.0f;
                }
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int st = st0 + QMV_THREADS * u;
            if (st >= nsteps) break;
            float d[R][NX], sx[NX];
#pragma unroll
            for (int m = 0; m < NX; m++) {
                sx[m] = 0.0f;
#pragma unroll
                for (int r = 0; r < R; r++) d[r][m] = 0.0f;
            }
#pragma unroll
            for (int c = 0; c < CPL / 8; c++) { /* 8 codes at a time */
                if (NX == 1) { /* x first, then one row's codes at a time (fewest live registers) */
                    const float4 *xp = (const float4 *)(a.x + st * CPL + 8 * c);
                    const float4 x0 = xp[0], x1 = xp[1];
                    const float xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                    if (AFF)
#pragma unroll
                        for (int i = 0; i < 8; i++) sx[0] += xv[i];
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        float q[8];
                        codes8<MODE, BITS, WPL>(w[u][r], c, q);
#pragma unroll
                        for (int i = 0; i < 8; i++) d[r][0] = fmaf(q[i], xv[i], d[r][0]);
                    }
                } else {
                    float q[R][8]; /* every row's weights first: each x load then serves R rows */
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        codes8<MODE, BITS, WPL>(w[u][r], c, q[r]);
#pragma unroll
                        for (int i = 0; i < 8; i++) q[r][i] = AFF ? fmaf(sc[u][r], q[r][i], bi[u][r]) : q[r][i] * sc[u][r];
                    }
#pragma unroll
                    for (int m = 0; m < NX; m++) {
                        if (m >= a.M) break;
                        const float4 *xp = (const float4 *)(a.x + m * a.ldx + st * CPL + 8 * c);
                        const float4 x0 = xp[0], x1 = xp[1];
                        const float xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
                        for (int r = 0; r < R; r++)
#pragma unroll
                            for (int i = 0; i < 8; i++) acc[r][m] = fmaf(q[r][i], xv[i], acc[r][m]);
                    }
                }
            }
            if (!DQ)
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int m = 0; m < NX; m++)
                    acc[r][m] = AFF ? fmaf(sc[u][r], d[r][m], fmaf(bi[u][r], sx[m], acc[r][m]))
                                    : fmaf(sc[u][r], d[r][m], acc[r][m]);
        }
    }
    /* reduce: warps by shuffles, then the warps' partials through shared memory */
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < NX; m++) {
            float v = cu_warp_sum(acc[r][m]);
            if (lane == 0) red[warp][r * NX + m] = v;
        }
    __syncthreads();
    if (tid < R * NX) {
        const int r = tid / NX, m = tid % NX;
        float v = 0.0f;
#pragma unroll
        for (int i = 0; i < QMV_WARPS; i++) v += red[i][tid];
        if (row0 + r < a.N && m < a.M) a.out[m * a.ldo + row0 + r] = v;
    }
}

/* One x row (decode), persistent blocks with x in shared memory. The
 * block stages x once (padded: 16 bytes after every step's codes, so the
 * 16-byte reads of 8 consecutive threads hit distinct banks), then walks
 * groups of R rows (grid-stride). A thread owns S fixed steps of K (64
 * codes) in every row; the block sums each row's slices (shuffles, one
 * shared-memory exchange per group). The next group's codes and scales are
 * loaded before the current group is computed. Why: reading x from L1 with
 * threads 128 bytes apart (qmv_kernel) touched 32 cache lines per warp load
 * and cost more than the weights; and short-lived blocks could not overlap
 * their one load latency with compute. The scale dtype is a template
 * parameter and rows are known to be aligned, so the loads of a group are
 * straight-line code (with a runtime dtype switch between them the kernel
 * ran 38 us instead of 28 us on an H100). T = ceil(nsteps / S) threads
 * (<= 256: K up to 16384). */
template <int MODE, int BITS, int SDT>
__global__ void __launch_bounds__(256, 2) qmv1_kernel(qmv_args a) {
    constexpr int CPL = MODE == MLXN_QUANT_NVFP4 ? 16 : 32;
    constexpr int WPL = CPL * BITS / 32;
    constexpr int S = 64 / CPL;              /* steps per thread */
    constexpr int R = WPL <= 4 ? 4 : 2;      /* rows per group: two groups of codes fit in registers */
    constexpr int XS = CPL + 4;              /* padded floats per step in shared memory */
    constexpr bool AFF = MODE == MLXN_QUANT_AFFINE;
    extern __shared__ float4 xs4[];          /* [nsteps][XS] x, padded */
    float *xs = (float *)xs4;
    __shared__ float red[2][8][R];
    const int T = blockDim.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nw = T >> 5;
    const int nsteps = a.K / CPL;
    const float vscale = (MODE == MLXN_QUANT_MXFP4 || MODE == MLXN_QUANT_NVFP4) ? 0.5f : 1.0f;

    for (int i = tid * 4; i < a.K; i += T * 4) { /* coalesced 16-byte reads of x */
        const float4 v = *(const float4 *)(a.x + i);
        *(float4 *)(xs + (i / CPL) * XS + i % CPL) = v;
    }
    __syncthreads();
    int woff[S], gix[S];
    bool has[S];
    float sxr[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        const int st = tid + s * T;
        has[s] = st < nsteps;
        woff[s] = (has[s] ? st : 0) * WPL;
        gix[s] = ((has[s] ? st : 0) * CPL) >> a.gshift;
        sxr[s] = 0.0f;
        if (AFF && has[s])
            for (int i = 0; i < CPL; i++) sxr[s] += xs[st * XS + i];
    }
    const int64_t ngroups = (a.N + R - 1) / R;
    uint32_t w[S][R][WPL], wn[S][R][WPL];
    float sc[S][R], bi[S][R], scn[S][R], bin[S][R];

    /* codes and scales of group g; rows past N read row N - 1 */
    auto load_group = [&](int64_t g, uint32_t (&ww)[S][R][WPL], float (&ss)[S][R], float (&bb)[S][R]) {
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int64_t row = g * R + r < a.N ? g * R + r : a.N - 1;
            const uint32_t *wrow = a.w.wq + row * a.w.wq_st;
            const int64_t srow = row * a.w.sc_st, brow = row * a.w.bi_st;
#pragma unroll
            for (int s = 0; s < S; s++) {
                if (has[s]) {
                    load_words<WPL>(wrow + woff[s], ww[s][r], 1); /* launched only for aligned rows */
                    if (AFF) { /* the scale dtype is a template parameter: no branch between the loads */
                        const uint16_t sv = __ldg((const unsigned short *)a.w.sc + srow + gix[s]);
                        const uint16_t bv = __ldg((const unsigned short *)a.w.bi + brow + gix[s]);
                        ss[s][r] = SDT == MLXN_DTYPE_BF16 ? cu_bf16_f32(sv) : cu_f16_f32(sv);
                        bb[s][r] = SDT == MLXN_DTYPE_BF16 ? cu_bf16_f32(bv) : cu_f16_f32(bv);
                    } else {
                        ss[s][r] = cu_q_scale(a.w, row, gix[s]) * vscale;
                        bb[s][r] = 0.0f;
                    }
                } else {
#pragma unroll
                    for (int i = 0; i < WPL; i++) ww[s][r][i] = 0;
                    ss[s][r] = bb[s][r] = 0.0f;
                }
            }
        }
    };

    int64_t g = blockIdx.x;
    if (g < ngroups) load_group(g, w, sc, bi);
    for (int it = 0; g < ngroups; g += gridDim.x, it++) {
        const int64_t gn = g + gridDim.x;
        if (gn < ngroups) load_group(gn, wn, scn, bin); /* in flight while this group computes */
        float acc[R];
#pragma unroll
        for (int r = 0; r < R; r++) acc[r] = 0.0f;
#pragma unroll
        for (int s = 0; s < S; s++) {
            if (!has[s]) continue;
            const float *xp = xs + (tid + s * T) * XS;
            float d[R];
#pragma unroll
            for (int r = 0; r < R; r++) d[r] = 0.0f;
#pragma unroll
            for (int c = 0; c < CPL / 8; c++) {
                const float4 x0 = *(const float4 *)(xp + 8 * c), x1 = *(const float4 *)(xp + 8 * c + 4);
                const float xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float q[8];
                    codes8<MODE, BITS, WPL>(w[s][r], c, q);
#pragma unroll
                    for (int i = 0; i < 8; i++) d[r] = fmaf(q[i], xv[i], d[r]);
                }
            }
#pragma unroll
            for (int r = 0; r < R; r++)
                acc[r] = AFF ? fmaf(sc[s][r], d[r], fmaf(bi[s][r], sxr[s], acc[r])) : fmaf(sc[s][r], d[r], acc[r]);
        }
        /* block sum of each row's slices; red is double-buffered, so one barrier per group */
#pragma unroll
        for (int r = 0; r < R; r++) {
            float v = cu_warp_sum(acc[r]);
            if (lane == 0) red[it & 1][warp][r] = v;
        }
        __syncthreads();
        if (tid < R && g * R + tid < a.N) {
            float v = 0.0f;
            for (int i = 0; i < nw; i++) v += red[it & 1][i][tid];
            a.out[g * R + tid] = v;
        }
#pragma unroll
        for (int s = 0; s < S; s++)
#pragma unroll
            for (int r = 0; r < R; r++) {
#pragma unroll
                for (int i = 0; i < WPL; i++) w[s][r][i] = wn[s][r][i];
                sc[s][r] = scn[s][r];
                bi[s][r] = bin[s][r];
            }
    }
}

/* Not transposed: W logical [K, N] stored as [K rows, N cols] quantized
 * along N; out[m, n] = sum_k x[m, k] * W[k, n]. One thread per column n;
 * x reads are broadcasts. x [M, ldx] contiguous along K. */
__global__ void qmv_n_kernel(cu_qmat w, const float *x, int64_t ldx, int M, int64_t K, int64_t N, float *out,
                             int64_t ldo) {
    for (int64_t n = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; n < N; n += (int64_t)gridDim.x * blockDim.x) {
        float acc[QMV_NX_MAX];
#pragma unroll
        for (int m = 0; m < QMV_NX_MAX; m++) acc[m] = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            float wv = cu_q_weight(w, k, n);
#pragma unroll
            for (int m = 0; m < QMV_NX_MAX; m++)
                if (m < M) acc[m] = fmaf(x[m * ldx + k], wv, acc[m]);
        }
#pragma unroll
        for (int m = 0; m < QMV_NX_MAX; m++)
            if (m < M) out[m * ldo + n] = acc[m];
    }
}

/* ---- the instantiation matrix: every (mode, bits) the kernel is built for ---- */
#define QMV_KINDS(X)                                                                                       \
    X(MLXN_QUANT_AFFINE, 1) X(MLXN_QUANT_AFFINE, 2) X(MLXN_QUANT_AFFINE, 3) X(MLXN_QUANT_AFFINE, 4)           \
    X(MLXN_QUANT_AFFINE, 5) X(MLXN_QUANT_AFFINE, 6) X(MLXN_QUANT_AFFINE, 8) X(MLXN_QUANT_MXFP4, 4)            \
    X(MLXN_QUANT_MXFP8, 8) X(MLXN_QUANT_NVFP4, 4)

typedef void (*qmv_fn)(qmv_args);

static qmv_fn qmv_pick(int mode, int bits, int nx) {
#define PICK(M, B)                                                                                         \
    if (mode == (M) && bits == (B)) return nx == 1 ? qmv_kernel<(M), (B), 1> : qmv_kernel<(M), (B), QMV_NX_MAX>;
    QMV_KINDS(PICK)
#undef PICK
    return NULL;
}

/* The decode fast path: affine 4-bit with 16-bit scales (what MLX writes
 * for bf16/f16 models), vector-aligned rows, one x row. */
static qmv_fn qmv1_pick(int mode, int bits, int sdt, int vec) {
    if (mode != MLXN_QUANT_AFFINE || bits != 4 || !vec) return NULL;
    if (sdt == MLXN_DTYPE_BF16) return qmv1_kernel<MLXN_QUANT_AFFINE, 4, MLXN_DTYPE_BF16>;
    if (sdt == MLXN_DTYPE_F16) return qmv1_kernel<MLXN_QUANT_AFFINE, 4, MLXN_DTYPE_F16>;
    return NULL;
}

/* Bytes of alignment the vector code loads of this mode/width need. */
static int qmv_align(int mode, int bits) {
    int wpl = (mode == MLXN_QUANT_NVFP4 ? 16 : 32) * bits / 32;
    return wpl % 4 == 0 ? 16 : wpl % 2 == 0 ? 8 : 4;
}

extern "C" mlxn_status cu_op_quantized_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                              const mlxn_tensor *scales, const mlxn_tensor *biases,
                                              const mlxn_quant_params *q, bool transpose, mlxn_tensor *out) {
    const char *op = "quantized_matmul";
    MLXN_TRY(cu_begin(s, op));
    cu_qmat w;
    MLXN_TRY(cu_qmat_of(op, wq, scales, biases, q, &w));
    cu_view xv = cu_view_of(x);
    const int64_t M = cu_rows(xv), K = cu_last(xv), N = out->shape[out->ndim - 1];
    float *o = (float *)cu_ptr(out);
    cudaStream_t cs = cu_ctx(s)->s;
    if (M == 0 || N == 0) return MLXN_OK;
    if (K == 0)
        return cu_check(cudaMemsetAsync(o, 0, (size_t)(M * N) * sizeof(float), cs), op, "cudaMemsetAsync",
                        cu_ctx(s)->index);
    qmv_fn fn = transpose ? qmv_pick(q->mode, q->bits, 1) : NULL;
    if (transpose && !fn)
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: quantized_matmul for %s %d-bit is not built yet",
                         mlxn_quant_mode_name(q->mode), q->bits);
    if (K > INT32_MAX / 2 || N > INT32_MAX)
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: quantized_matmul with %lld x %lld weights is not built yet",
                         (long long)N, (long long)K);

    /* x as [M, ldx] rows, unit stride, 16-byte aligned: in place or gathered */
    int64_t ldx = 0;
    const float *xp = (const float *)cu_ptr(x);
    float *xs = NULL;
    if (!(xv.st[xv.nd - 1] == 1 || K == 1) || !cu_rows_uniform(xv, &ldx) || ldx % 4 || ((uintptr_t)xp & 15)) {
        MLXN_TRY(cu_scratch(s, op, (size_t)(M * K) * sizeof(float), (void **)&xs));
        mlxn_status st = cu_gather_f32(s, op, x, xs);
        if (st != MLXN_OK) {
            cu_scratch_free(s, xs);
            return st;
        }
        xp = xs;
        ldx = K;
    }
    mlxn_status st = MLXN_OK;
    for (int64_t m0 = 0; m0 < M && st == MLXN_OK; m0 += QMV_NX_MAX) {
        int mc = (int)(M - m0 < QMV_NX_MAX ? M - m0 : QMV_NX_MAX);
        if (transpose) {
            int al = qmv_align(q->mode, q->bits), nx = mc == 1 ? 1 : QMV_NX_MAX, gshift = 0;
            while ((1 << gshift) < q->group_size) gshift++;
            qmv_args a = {w, xp + m0 * ldx, ldx, mc, (int)K, N, o + m0 * N, N, gshift,
                          ((uintptr_t)w.wq % al == 0 && (w.wq_st * 4) % al == 0) ? 1 : 0};
            const int cpl = q->mode == MLXN_QUANT_NVFP4 ? 16 : 32, nsteps = (int)(K / cpl);
            const int t1 = ((nsteps + 64 / cpl - 1) / (64 / cpl) + 31) / 32 * 32; /* qmv1 block size */
            qmv_fn k1 = mc == 1 && t1 <= QMV_THREADS ? qmv1_pick(q->mode, q->bits, w.sdt, a.vec) : NULL;
            if (w.tiled) { /* only the tensor-core kernels read the tiled layout (cu_op_quantized_matmul_any) */
                if (!cu_qmv_mma(a, s, &st))
                    st = mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: quantized_matmul of a tiled %lld x %lld matrix "
                                   "over %d rows is not built yet", (long long)N, (long long)K, mc);
                if (st != MLXN_OK) break;
            } else if (cu_qmv_fast(a, s, &st)) {
                if (st != MLXN_OK) break;
            } else if (k1) {
                const int sms = cu_ctx(s)->sms;
                const int rows = 4;
                const size_t smem = (size_t)nsteps * (cpl + 4) * sizeof(float);
                if (smem > 48 * 1024) st = cu_smem_allow(s, op, k1, smem);
                int64_t groups = (N + rows - 1) / rows, blocks = groups < 2 * sms ? groups : 2 * sms;
                if (st == MLXN_OK) k1<<<(unsigned)blocks, t1, smem, cs>>>(a);
            } else {
                int64_t blocks = (N + QMV_ROWS(nx) - 1) / QMV_ROWS(nx);
                qmv_pick(q->mode, q->bits, nx)<<<(unsigned)blocks, QMV_THREADS, 0, cs>>>(a);
            }
            st = cu_launched(s, op, "qmv_kernel");
        } else if (w.tiled) {
            st = mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: quantized_matmul of a tiled matrix untransposed over %d "
                           "rows is not built yet", mc);
        } else {
            qmv_n_kernel<<<cu_blocks(N, 128), 128, 0, cs>>>(w, xp + m0 * ldx, ldx, mc, K, N, o + m0 * N, N);
            st = cu_launched(s, op, "qmv_n_kernel");
        }
    }
    cu_scratch_free(s, xs);
    return st;
}

/* ---- quantized_matmul_fused: the one-row tensor-core kernel with the
 * rms_norm of x before it and the residual add after it (cu_qmv_mma.cu) */

extern "C" bool cu_op_quantized_matmul_fuses(mlxn_stream *s, const mlxn_tensor *wq, const mlxn_tensor *scales,
                                             const mlxn_tensor *biases, const mlxn_quant_params *q, int64_t M) {
    cu_qmat w; /* cu_qmat_of's condition checked first, quietly: a query records no error */
    if (M != 1 || cu_ctx(s)->knobs.fuse_off || cu_qmat_strided(wq, scales, biases) >= 0 ||
        cu_qmat_of("quantized_matmul_fused", wq, scales, biases, q, &w) != MLXN_OK)
        return false;
    return cu_qmv_mma_takes(w, wq->shape[0], wq->shape[1] * 32 / q->bits, s);
}

/* The rope_kv epilogue's arguments (qmv_args::rk) for a product of N rows
 * (the op layer checked the call as rope_kv_write's); false for a rotation
 * the epilogue lacks (traditional pairs, rotary dims short of the head),
 * which then runs apart. */
static bool rope_kv_args(const mlxn_qmm_rope_kv *r, int64_t N, qmv_args *a) {
    const mlxn_rope_params *p = r->rope;
    const int64_t D = N / (r->q_heads + 2 * r->kv_heads);
    if (p->traditional || p->dims != D) return false;
    a->rk = 1;
    a->rk_d = (int)D;
    a->rk_q = r->q_heads * D;
    a->rk_qk = (r->q_heads + r->kv_heads) * D;
    a->rk_rope = cu_rope_args_of(p, 1, D); /* one row */
    a->rk_offp = p->offset_tensor ? (const int32_t *)cu_ptr(p->offset_tensor) : NULL;
    a->rk_slot = (const int32_t *)cu_ptr(r->slot);
    a->rk_qout = (float *)cu_ptr(r->q_out);
    const mlxn_tensor *kc = r->k_dst, *vc = r->v_dst; /* [..., kv_heads, cap, D] */
    a->rk_kc = cu_ptr(kc), a->rk_vc = cu_ptr(vc);
    a->rk_kdt = kc->dtype, a->rk_vdt = vc->dtype;
    for (int i = 0; i < 3; i++) a->rk_kst[i] = kc->strides[kc->ndim - 3 + i], a->rk_vst[i] = vc->strides[vc->ndim - 3 + i];
    const int64_t kcap = kc->shape[kc->ndim - 2], vcap = vc->shape[vc->ndim - 2];
    a->rk_cap = kcap < vcap ? kcap : vcap;
    return true;
}

extern "C" mlxn_status cu_op_quantized_matmul_fused(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                                    const mlxn_tensor *scales, const mlxn_tensor *biases,
                                                    const mlxn_quant_params *q, const mlxn_qmm_fusion *f,
                                                    mlxn_tensor *out, int *done) {
    const char *op = "quantized_matmul_fused";
    *done = 0;
    const cu_view xv = cu_view_of(x);
    const int64_t K = cu_last(xv), N = wq->shape[0];
    /* the kernel reads x, the norm weight and the residual as plain unit-stride rows */
    if (cu_rows(xv) != 1 || !(xv.st[xv.nd - 1] == 1 || K == 1)) return MLXN_OK;
    if (f->norm_w && !(f->norm_w->strides[0] == 1 || K == 1)) return MLXN_OK;
    if (f->residual && !mlxn_tensor_is_contiguous(f->residual)) return MLXN_OK;
    MLXN_TRY(cu_begin(s, op));
    cu_qmat w;
    MLXN_TRY(cu_qmat_of(op, wq, scales, biases, q, &w));
    int gshift = 0;
    while ((1 << gshift) < q->group_size) gshift++;
    qmv_args a = {w, (const float *)cu_ptr(x), K, 1, (int)K, N, (float *)cu_ptr(out), N, gshift, 1};
    if (f->norm_w) {
        a.nw = cu_ptr(f->norm_w);
        a.nw_dt = f->norm_w->dtype;
        a.nw_off = f->norm_offset;
        a.eps = f->norm_eps;
    }
    if (f->residual) a.res = (const float *)cu_ptr(f->residual);
    if (f->glu) a.glu = 1 + (f->glu == MLXN_GLU_SWIGLU ? CU_ACT_SILU : f->glu == MLXN_GLU_GEGLU_TANH ? CU_ACT_GELU_TANH : CU_ACT_GELU_ERF);
    if (f->rope_kv && !rope_kv_args(f->rope_kv, N, &a)) return MLXN_OK;
    a.err = cu_ctx(s)->err_dev;
    mlxn_status st = MLXN_OK;
    if (!cu_qmv_mma_fused(a, s, &st)) return MLXN_OK;
    MLXN_TRY(st);
    *done = 1;
    return cu_launched(s, op, "qmv_mma_kernel");
}
