/* CUDA TurboQuant attention straight from the codes (semantics: mlxn_tq_sdpa
 * in mlxn/turboquant.h, the CPU reference tq_ref_attn_rows in
 * backend/cpu/tq_ref.c; format: src/quant/tq_layout.h). Two kernels:
 *
 * 1. tq_attn_partial, split-KV: grid (chunk, kv head, row tile). Key index
 *    j stands for position lo + j (lo = max(0, pos + Tq - capacity), the
 *    oldest position still held), in slot (lo + j) % capacity, so a wrapped
 *    ring reads in position order. A block takes the keys [c * chunk,
 *    (c + 1) * chunk) of one kv head for up to RT query rows of its GQA
 *    group (rows (g, i) of the G heads x Tq queries: every row of a decode
 *    step in one block, so the codes are read once). It rotates its query
 *    rows itself (signs, FWHT in shared memory, 1/sqrt(D), scale: a few
 *    thousand flops, cheaper than another launch), then walks its keys in
 *    tiles of 128:
 *      scores: one thread per key reads the key's code row in 8-byte words,
 *        looks every code up in the width's levels (shared memory), and
 *        accumulates all RT rows' dot products against the rotated queries
 *        (shared memory, float4 broadcasts); times norm / sqrt(D); softcap;
 *        causal / window masks per row;
 *      online softmax per row (running max, denominator, rescale factor);
 *      values: threads own head dims (adjacent lanes read adjacent codes of
 *        a row: coalesced), and accumulate p * norm / sqrt(D) * level for
 *        every row.
 *    It writes the chunk's (max, denominator, unnormalized sum) per row.
 *    Chunks that no row can see (window, causal prefill) are skipped.
 * 2. tq_attn_combine: a block per query row merges the chunks (rescaled to
 *    the global max), divides by the denominator (a row that sees no key
 *    gives zeros), runs the inverse rotation once (FWHT, then sign / sqrt D)
 *    and writes out.
 *
 * Exactness: f32 throughout; sums run in another order than the CPU's
 * (per-chunk partials, FMA), so results agree to f32 rounding (normalized
 * squared error ~1e-12, far below the quantization error itself), not bit
 * for bit.
 *
 * The position may come from an i32 [1] device tensor (read only on the
 * device, for graph replay): the grid then covers the whole capacity and
 * blocks past the held keys exit after writing empty partials; a negative
 * device position writes NaN rows (the CPU reports an error; a kernel
 * cannot). Any Tq works; prefill rows beyond RT = 16 per kv head re-read
 * the codes once per tile of 16 rows (correct, not tuned). */
#include <math.h>
#include <stdlib.h>

#include "backend/cuda/cu_tq_attn.cuh"

extern "C" {
#include "backend/cuda/cuda_tq.h"
}

enum {
    TQS_THREADS = 128, /* 4 warps */
    TQS_KT = 128,      /* keys per tile: one per thread in the score pass */
    TQS_WARPS = TQS_THREADS / 32,
};


/* Code k (0..63, a compile-time constant once unrolled) of a 64-code group
 * held in 64-bit words w (LSB-first stream for B <= 4, bytes above). */
template <int B>
__device__ __forceinline__ uint32_t tqs_code(const uint64_t *w, int k) {
    if (B > 4) return (uint32_t)(w[k >> 3] >> ((k & 7) * 8)) & 0xffu;
    const int bit = k * B, wi = bit >> 6, sh = bit & 63;
    uint64_t v = w[wi] >> sh;
    if (sh + B > 64) v |= w[wi + 1] << (64 - sh); /* 3 bits: a code across two words */
    return (uint32_t)v & ((1u << B) - 1u);
}

/* acc[r] += sum_d qsm[r][d] * lv[code_d] for the code row `row` (8-byte
 * aligned: row lengths are multiples of 8 bytes). Groups of 64 codes are
 * B words of 8 bytes (8 for B > 4), loaded whole, then decoded with
 * constant shifts. qsm: [RT][D] shared; lv: levels, shared. */
template <int B, int RT>
__device__ __forceinline__ void tqs_dot(const uint8_t *row, int D, const float *qsm, const float *lv, float *acc) {
    constexpr int NW = B <= 4 ? B : 8;
    for (int g = 0; g < D / 64; g++) {
        const uint2 *src = (const uint2 *)(row + (int64_t)g * NW * 8);
        uint64_t w[NW];
#pragma unroll
        for (int i = 0; i < NW; i++) {
            const uint2 u = __ldg(src + i);
            w[i] = (uint64_t)u.x | ((uint64_t)u.y << 32);
        }
#pragma unroll
        for (int k = 0; k < 64; k += 4) {
            const float l0 = lv[tqs_code<B>(w, k)], l1 = lv[tqs_code<B>(w, k + 1)];
            const float l2 = lv[tqs_code<B>(w, k + 2)], l3 = lv[tqs_code<B>(w, k + 3)];
#pragma unroll
            for (int r = 0; r < RT; r++) {
                const float4 qv = *(const float4 *)(qsm + r * D + g * 64 + k); /* same address in every lane: broadcast */
                acc[r] = fmaf(qv.x, l0, acc[r]);
                acc[r] = fmaf(qv.y, l1, acc[r]);
                acc[r] = fmaf(qv.z, l2, acc[r]);
                acc[r] = fmaf(qv.w, l3, acc[r]);
            }
        }
    }
}

template <int RT>
__device__ __forceinline__ void tqs_dot_any(int bits, const uint8_t *row, int D, const float *qsm, const float *lv,
                                            float *acc) {
    switch (bits) {
    case 2: tqs_dot<2, RT>(row, D, qsm, lv, acc); break;
    case 3: tqs_dot<3, RT>(row, D, qsm, lv, acc); break;
    case 4: tqs_dot<4, RT>(row, D, qsm, lv, acc); break;
    case 5: tqs_dot<5, RT>(row, D, qsm, lv, acc); break;
    case 6: tqs_dot<6, RT>(row, D, qsm, lv, acc); break;
    case 7: tqs_dot<7, RT>(row, D, qsm, lv, acc); break;
    default: tqs_dot<8, RT>(row, D, qsm, lv, acc); break;
    }
}

/* Dynamic shared memory of tq_attn_partial<RT> at head dim D (bytes). */
static size_t tqs_smem(int RT, int D) {
    return sizeof(float) * ((size_t)RT * D + (size_t)RT * TQS_KT) /* qsm, S */
           + sizeof(int64_t) * ((size_t)TQS_KT + 2 * (size_t)RT)  /* vslot, k0, k1 */
           + sizeof(float) * (512 + (size_t)TQS_KT + 3 * (size_t)RT); /* lvk, lvv, vsc, m, l, corr */
}

/* RT: query rows per block; DPT: head dims per thread in the value pass
 * (D / min(D, 128)), both compile-time so the accumulators stay in
 * registers. */
template <int RT, int DPT>
__global__ void __launch_bounds__(TQS_THREADS) tq_attn_partial(tqs_args a) {
    extern __shared__ __align__(16) unsigned char tqs_sm[];
    const int D = a.D;
    float *qsm = (float *)tqs_sm;                   /* [RT][D] rotated, scaled queries */
    float *S = qsm + RT * D;                        /* [RT][KT] scores, then weights */
    int64_t *vslot = (int64_t *)(S + RT * TQS_KT);  /* [KT] slot of each key of the tile */
    int64_t *k0 = vslot + TQS_KT, *k1 = k0 + RT;    /* [RT] visible key indices [k0, k1) per row */
    float *lvk = (float *)(k1 + RT);                /* [256] key levels */
    float *lvv = lvk + 256;                         /* [256] value levels */
    float *vsc = lvv + 256;                         /* [KT] value norm / sqrt(D) per key (0 past the end) */
    float *mrow = vsc + TQS_KT, *lrow = mrow + RT, *crow = lrow + RT; /* [RT] running max, denominator, rescale */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int c = blockIdx.x;
    const int64_t hk = blockIdx.y;
    const int64_t p = cu_tq_pos(a.pos_t, a.pos);
    if (p < 0) return; /* the combine kernel writes NaN rows */
    const int64_t end = p + a.Tq, lo = end > a.cap ? end - a.cap : 0, n_held = end - lo;
    const int64_t R = a.G * a.Tq, r0 = (int64_t)blockIdx.z * RT;
    const int nr = (int)(R - r0 < RT ? R - r0 : RT);
    const float rd = cu_tq_rsqrt_d(D);

    /* levels, query rows (sign-flipped), per-row visibility */
    cu_tq_load_levels(a.kb, lvk);
    cu_tq_load_levels(a.vb, lvv);
    for (int e = tid; e < RT * D; e += TQS_THREADS) {
        const int r = e / D, d = e % D;
        float x = 0.0f;
        if (r < nr) {
            const int64_t rr = r0 + r, h = hk * a.G + rr / a.Tq, i = rr % a.Tq;
            x = a.q[h * a.qs[0] + i * a.qs[1] + d * a.qs[2]] * a.signs[d];
        }
        qsm[e] = x;
    }
    if (tid < RT) {
        int64_t b0 = 0, b1 = 0; /* rows past the group see nothing */
        if (tid < nr) {
            const int64_t qp = p + (r0 + tid) % a.Tq;
            int64_t p0 = lo, p1 = end;
            if (a.causal && qp + 1 < p1) p1 = qp + 1;
            if (a.window > 0 && qp - a.window + 1 > p0) p0 = qp - a.window + 1;
            b0 = p0 - lo;
            b1 = p1 - lo;
        }
        k0[tid] = b0;
        k1[tid] = b1;
        mrow[tid] = -INFINITY;
        lrow[tid] = 0.0f;
    }
    __syncthreads();
    /* rotate every row: FWHT stages over all RT rows at once */
    for (int h = 1; h < D; h <<= 1) {
        for (int e = tid; e < RT * D / 2; e += TQS_THREADS) {
            const int r = e / (D / 2), pp = e % (D / 2), j = r * D + (pp / h) * 2 * h + (pp % h);
            const float x = qsm[j], y = qsm[j + h];
            qsm[j] = x + y;
            qsm[j + h] = x - y;
        }
        __syncthreads();
    }
    for (int e = tid; e < RT * D; e += TQS_THREADS) qsm[e] = qsm[e] * rd * a.scale; /* CPU: (y * r) * scale */

    /* this block's keys, clipped to what some row can see */
    int64_t j0 = (int64_t)c * a.chunk, j1 = j0 + a.chunk;
    if (j1 > n_held) j1 = n_held;
    int64_t vlo = INT64_MAX, vhi = 0;
    for (int r = 0; r < nr; r++)
        if (k0[r] < k1[r]) {
            vlo = k0[r] < vlo ? k0[r] : vlo;
            vhi = k1[r] > vhi ? k1[r] : vhi;
        }
    if (j0 < vlo) j0 = vlo;
    if (j1 > vhi) j1 = vhi;

    /* value pass geometry: TD threads cover the head dims (DPT each), KG
     * groups of them take every KG-th group of 4 keys */
    const int TD = D / DPT, KG = TQS_THREADS / TD;
    const int dl = tid % TD, kg = tid / TD;
    float acc[RT][DPT];
#pragma unroll
    for (int r = 0; r < RT; r++)
#pragma unroll
        for (int e = 0; e < DPT; e++) acc[r][e] = 0.0f;
    __syncthreads();

    for (int64_t t0 = j0; t0 < j1; t0 += TQS_KT) {
        const int nk = (int)(j1 - t0 < TQS_KT ? j1 - t0 : TQS_KT);
        /* scores: thread tid takes key t0 + tid */
        {
            const int64_t j = t0 + tid;
            if (tid < nk) {
                const int64_t slot = hk * a.cap + (lo + j) % a.cap;
                float sacc[RT];
#pragma unroll
                for (int r = 0; r < RT; r++) sacc[r] = 0.0f;
                tqs_dot_any<RT>(a.kb, a.kc + slot * a.krow, D, qsm, lvk, sacc);
                const float ks = a.kn[slot] * rd;
#pragma unroll
                for (int r = 0; r < RT; r++) {
                    float s = sacc[r] * ks;
                    if (a.softcap > 0.0f) s = tanhf(s / a.softcap) * a.softcap;
                    S[r * TQS_KT + tid] = (j >= k0[r] && j < k1[r]) ? s : -INFINITY;
                }
                vsc[tid] = a.vn[slot] * rd;
                vslot[tid] = slot;
            } else {
#pragma unroll
                for (int r = 0; r < RT; r++) S[r * TQS_KT + tid] = -INFINITY;
                vsc[tid] = 0.0f;                            /* contributes 0 * level = 0 */
                vslot[tid] = hk * a.cap + (lo + t0) % a.cap; /* a valid row to read */
            }
        }
        __syncthreads();
        /* online softmax: warp w takes rows w, w + 4, ... */
        for (int r = warp; r < RT; r += TQS_WARPS) {
            float mx = -INFINITY;
            for (int k = lane; k < TQS_KT; k += 32) mx = fmaxf(mx, S[r * TQS_KT + k]);
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float mold = mrow[r], mnew = fmaxf(mold, mx);
            const float corr = mold == -INFINITY ? 0.0f : expf(mold - mnew);
            float sum = 0.0f;
            for (int k = lane; k < TQS_KT; k += 32) {
                const float s = S[r * TQS_KT + k];
                const float e = s == -INFINITY ? 0.0f : expf(s - mnew);
                S[r * TQS_KT + k] = e;
                sum += e;
            }
            sum = cu_warp_sum(sum);
            __syncwarp(); /* every lane has read mrow[r] / lrow[r] before lane 0 rewrites them */
            if (lane == 0) {
                mrow[r] = mnew;
                lrow[r] = lrow[r] * corr + sum;
                crow[r] = corr;
            }
        }
        __syncthreads();
        /* values */
#pragma unroll
        for (int r = 0; r < RT; r++) {
            const float cr = crow[r];
#pragma unroll
            for (int e = 0; e < DPT; e++) acc[r][e] *= cr;
        }
        for (int j = kg * 4; j < nk; j += KG * 4) {
            float4 pw[RT];
#pragma unroll
            for (int r = 0; r < RT; r++) pw[r] = *(const float4 *)(S + r * TQS_KT + j); /* broadcast */
#pragma unroll
            for (int jj = 0; jj < 4; jj++) {
                const uint8_t *vr = a.vc + vslot[j + jj] * a.vrow;
                const float vs = vsc[j + jj];
                float w[RT];
#pragma unroll
                for (int r = 0; r < RT; r++)
                    w[r] = (jj == 0 ? pw[r].x : jj == 1 ? pw[r].y : jj == 2 ? pw[r].z : pw[r].w) * vs;
#pragma unroll
                for (int e = 0; e < DPT; e++) {
                    const float l = lvv[mlxn_tq_get_code(vr, dl + TD * e, a.vb)];
#pragma unroll
                    for (int r = 0; r < RT; r++) acc[r][e] = fmaf(w[r], l, acc[r][e]);
                }
            }
        }
        __syncthreads(); /* S, vsc, vslot are rewritten by the next tile */
    }

    /* key groups (D < 128) add up through shared memory (S is free: RT * KT floats) */
    if (KG > 1) {
#pragma unroll
        for (int r = 0; r < RT; r++) S[(kg * RT + r) * TD + dl] = acc[r][0];
        __syncthreads();
        if (kg == 0)
#pragma unroll
            for (int r = 0; r < RT; r++)
                for (int g = 1; g < KG; g++) acc[r][0] += S[(g * RT + r) * TD + dl];
    }
    if (kg == 0) {
#pragma unroll
        for (int r = 0; r < RT; r++) {
            if (r < nr) {
                const int64_t rr = r0 + r, row = (hk * a.G + rr / a.Tq) * a.Tq + rr % a.Tq;
                float *pa = a.pacc + (row * a.nchunks + c) * D;
#pragma unroll
                for (int e = 0; e < DPT; e++) pa[dl + TD * e] = acc[r][e];
            }
        }
    }
    if (tid < nr) {
        const int64_t rr = r0 + tid, row = (hk * a.G + rr / a.Tq) * a.Tq + rr % a.Tq;
        a.pm[row * a.nchunks + c] = mrow[tid];
        a.pl[row * a.nchunks + c] = lrow[tid];
    }
}

/* grid Hq * Tq (one block per output row), TQC_THREADS threads; dynamic
 * shared memory: D + nchunks + TQC_THREADS floats. The weighted sum over
 * chunks runs with the threads split into groups of D, group j taking
 * chunks j, j + groups, ..., four loads in flight per thread (why: one thread walking all chunks of a
 * dim was a chain of L2 round trips, ~20 us at 66 chunks); the groups' sums
 * are then added in a fixed order (deterministic). */
enum { TQC_THREADS = 1024 };
__global__ void __launch_bounds__(TQC_THREADS) tq_attn_combine(tqs_args a) {
    extern __shared__ __align__(16) unsigned char tqc_sm[];
    __shared__ float red[32];
    const int D = a.D;
    float *y = (float *)tqc_sm;   /* [D] */
    float *wc = y + D;            /* [nchunks] chunk weights */
    float *gs = wc + a.nchunks;   /* [TQC_THREADS] per-group sums, [group][dim] */
    const int64_t row = blockIdx.x;
    float *o = a.out + row * D;
    const int tid = threadIdx.x, nc = a.nchunks;
    if (cu_tq_pos(a.pos_t, a.pos) < 0) { /* a bad device position: visibly wrong, never plausible */
        for (int d = tid; d < D; d += blockDim.x) o[d] = NAN;
        return;
    }
    const float *pm = a.pm + row * nc, *pl = a.pl + row * nc;
    float mx = -INFINITY;
    for (int k = tid; k < nc; k += blockDim.x) mx = fmaxf(mx, pm[k]);
    for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    if ((tid & 31) == 0) red[tid >> 5] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) mx = fmaxf(mx, red[w]);
    float lsum = 0.0f;
    for (int k = tid; k < nc; k += blockDim.x) {
        const float w = pm[k] == -INFINITY ? 0.0f : expf(pm[k] - mx);
        wc[k] = w;
        lsum += w * pl[k];
    }
    const float L = cu_block_sum(lsum, red); /* syncs: wc is complete */
    const float inv = L > 0.0f ? 1.0f / L : 0.0f; /* no visible key: zeros */
    const float *pa = a.pacc + row * nc * D;
    const int width = D < TQC_THREADS ? D : TQC_THREADS, groups = TQC_THREADS / width;
    const int grp = tid / width, d0 = tid % width;
    for (int d = d0; d < D; d += width) {
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int k = grp;
        for (; k + 3 * groups < nc; k += 4 * groups) {
            s0 = fmaf(pa[(int64_t)k * D + d], wc[k], s0);
            s1 = fmaf(pa[(int64_t)(k + groups) * D + d], wc[k + groups], s1);
            s2 = fmaf(pa[(int64_t)(k + 2 * groups) * D + d], wc[k + 2 * groups], s2);
            s3 = fmaf(pa[(int64_t)(k + 3 * groups) * D + d], wc[k + 3 * groups], s3);
        }
        for (; k < nc; k += groups) s0 = fmaf(pa[(int64_t)k * D + d], wc[k], s0);
        const float s = (s0 + s1) + (s2 + s3);
        if (groups == 1) y[d] = s * inv;
        else gs[grp * width + d0] = s;
    }
    __syncthreads();
    if (groups > 1) {
        for (int d = tid; d < D; d += blockDim.x) {
            float s = 0.0f;
            for (int j = 0; j < groups; j++) s += gs[j * width + d];
            y[d] = s * inv;
        }
        __syncthreads();
    }
    cu_tq_fwht(y, D);
    const float rd = cu_tq_rsqrt_d(D);
    for (int d = tid; d < D; d += blockDim.x) o[d] = y[d] * (rd * a.signs[d]);
}

template <int RT, int DPT>
static mlxn_status launch_partial(mlxn_stream *s, const tqs_args &a, int64_t hkv, int64_t tiles) {
    const size_t smem = tqs_smem(RT, a.D);
    if (smem > 48 * 1024) MLXN_TRY(cu_smem_allow(s, "tq_sdpa", tq_attn_partial<RT, DPT>, smem));
    dim3 grid((unsigned)a.nchunks, (unsigned)hkv, (unsigned)tiles);
    tq_attn_partial<RT, DPT><<<grid, TQS_THREADS, smem, cu_ctx(s)->s>>>(a);
    return cu_launched(s, "tq_sdpa", "tq_attn_partial");
}

template <int RT>
static mlxn_status launch_partial_d(mlxn_stream *s, const tqs_args &a, int64_t hkv, int64_t tiles) {
    switch (a.D) {
    case 512: return launch_partial<RT, 4>(s, a, hkv, tiles);
    case 256: return launch_partial<RT, 2>(s, a, hkv, tiles);
    default: return launch_partial<RT, 1>(s, a, hkv, tiles); /* 64, 128 */
    }
}

/* The partials' scratch, `bytes` at *p: outside a graph capture the
 * stream's kept buffer (grown in stream order: the old one is freed after
 * the work queued before it), so a steady stream of calls allocates
 * nothing; inside a capture a buffer of its own (a graph memory node,
 * freed by the caller), so a replay never points at a kept buffer a later
 * call may have grown and freed. */
static mlxn_status tqs_scratch(mlxn_stream *s, const char *op, size_t bytes, float **p) {
    cu_stream *c = cu_ctx(s);
    if (c->capturing) return cu_scratch(s, op, bytes, (void **)p);
    if (c->tq_cap < bytes) {
        if (c->tq_buf) cudaFreeAsync(c->tq_buf, c->s);
        c->tq_buf = NULL;
        c->tq_cap = 0;
        MLXN_TRY(cu_scratch(s, op, bytes, &c->tq_buf));
        c->tq_cap = bytes;
    }
    *p = (float *)c->tq_buf;
    return MLXN_OK;
}

extern "C" mlxn_status cu_op_tq_sdpa(mlxn_stream *s, const mlxn_tq_cache *c, const mlxn_tensor *q,
                                     const mlxn_tq_sdpa_params *prm, mlxn_tensor *out) {
    const char *op = "tq_sdpa";
    MLXN_TRY(cu_begin(s, op));
    const int64_t Hq = q->shape[1], Tq = q->shape[2], Hkv = c->p.n_kv_heads, G = Hq / Hkv, cap = c->p.capacity;
    const int D = c->p.head_dim;
    tqs_args a;
    a.q = (const float *)cu_ptr(q);
    for (int i = 0; i < 3; i++) a.qs[i] = q->strides[i + 1];
    a.kc = (const uint8_t *)cu_ptr(&c->k_codes);
    a.vc = (const uint8_t *)cu_ptr(&c->v_codes);
    a.kn = (const float *)cu_ptr(&c->k_norms);
    a.vn = (const float *)cu_ptr(&c->v_norms);
    a.signs = (const float *)cu_ptr(&c->signs);
    a.krow = c->k_row;
    a.vrow = c->v_row;
    a.kb = c->p.k_bits;
    a.vb = c->p.v_bits;
    a.G = G;
    a.Tq = Tq;
    a.cap = cap;
    a.D = D;
    a.scale = prm->scale;
    a.softcap = prm->softcap;
    a.causal = prm->causal;
    a.window = prm->window;
    a.pos = prm->pos;
    a.pos_t = prm->pos_tensor ? (const int32_t *)cu_ptr(prm->pos_tensor) : NULL;
    a.out = (float *)cu_ptr(out);

    /* Prefill chunks (at least 16 query tokens, more rows a kv head than
     * the tensor-core decode kernels take) on the dense flash kernel over
     * the cache dequantized in bf16 (cu_tq_prefill.cu: 3.6x the f32
     * kernel's tok/s on a 4096-token prefill of a Llama-3-8B-shaped model;
     * MLXN_CUDA_TQ_SIMPLE=1 keeps the f32 kernel). Why not shorter chunks:
     * each call decodes every held key, which a few query rows do not
     * repay. */
    if (Tq >= 16 && G * Tq > 16 && !cu_ctx(s)->knobs.tq_simple) {
        bool taken = false;
        MLXN_TRY(cu_tq_sdpa_dense(s, c, q, prm, out, &taken));
        if (taken) return MLXN_OK;
    }
    /* Row tile: the smallest of 1, 4, 16 that holds the group's rows (a
     * decode step's G rows in one block), 16 rows per tile beyond. */
    const int64_t R = G * Tq;
    const int RT = R <= 1 ? 1 : R <= 4 ? 4 : 16;
    const int64_t tiles = (R + RT - 1) / RT;
    /* Keys the grid covers: those held (a host position), else the whole
     * capacity (a device position is unknown here; blocks past the held
     * keys exit at once). Chunks: ~3 blocks per multiprocessor in all
     * (enough warps to hide the code loads, few partials to merge), each a
     * multiple of 32 keys. */
    int64_t span = cap;
    if (!prm->pos_tensor) {
        const int64_t end = prm->pos + Tq;
        span = end > cap ? cap : end;
    }
    const int sms = cu_ctx(s)->sms, optin = cu_ctx(s)->smem_optin;
    /* The tensor-core kernels take what they fit (decode; MLXN_CUDA_TQ_SIMPLE=1
     * keeps everything on the f32 kernel, for tests and comparisons): the
     * split-dims kernel where its rule and the shared memory allow
     * (MLXN_CUDA_TQ_SPLIT: 0 tq_attn_mma, 1 / 2 one of its shapes), else
     * tq_attn_mma where it fits, else the f32 kernel (a card with less
     * shared memory a block than the tensor-core kernels want). */
    const bool tc = !cu_ctx(s)->knobs.tq_simple;
    const int split = tc ? cu_tq_attn_split_pick(a, span, Hkv, sms, cu_ctx(s)->knobs.tq_split, optin) : 0;
    const bool mma = tc && !split && cu_tq_attn_mma_fits(a, optin);
    int64_t chunk;
    if (split) {
        chunk = cu_tq_attn_split_chunk(span, Hkv, sms, split);
    } else if (mma) {
        chunk = cu_tq_attn_mma_chunk(span, Hkv, sms);
    } else {
        int64_t want = (3 * (int64_t)(sms > 0 ? sms : 1) + Hkv * tiles - 1) / (Hkv * tiles);
        if (want < 1) want = 1;
        chunk = (span + want - 1) / want;
        chunk = (chunk + 31) / 32 * 32;
        if (chunk < TQS_KT / 2) chunk = TQS_KT / 2; /* short contexts: fewer, fuller blocks */
    }
    const int64_t nchunks = (span + chunk - 1) / chunk;
    if (nchunks > 65535 || Hkv > 65535 || tiles > 65535)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED, "tq_sdpa: %lld chunks x %lld kv heads x %lld row tiles is past the grid",
                         (long long)nchunks, (long long)Hkv, (long long)tiles);
    a.chunk = chunk;
    a.nchunks = (int)nchunks;
    a.pf = !cu_ctx(s)->knobs.attn_pf_off; /* MLXN_CUDA_ATTN_PREFETCH=0: none (comparisons) */
    a.compact = 0;                        /* tq_attn_mma's launch sets its own */

    const int64_t rows = Hq * Tq;
    float *scratch = NULL;
    const size_t n_part = (size_t)rows * (size_t)nchunks;
    MLXN_TRY(tqs_scratch(s, op, sizeof(float) * n_part * (2 + (size_t)D), &scratch));
    a.pacc = scratch; /* first: 16-byte aligned for the tensor-core kernel's float4 stores */
    a.pm = scratch + n_part * (size_t)D;
    a.pl = a.pm + n_part;

    mlxn_status st = split     ? cu_tq_attn_split_launch(s, a, Hkv, split)
                     : mma     ? cu_tq_attn_mma_launch(s, a, Hkv)
                     : RT == 1 ? launch_partial_d<1>(s, a, Hkv, tiles)
                     : RT == 4 ? launch_partial_d<4>(s, a, Hkv, tiles)
                               : launch_partial_d<16>(s, a, Hkv, tiles);
    if (st == MLXN_OK && !split && !mma) { /* the tensor-core paths merge their own partials */
        const size_t smem = sizeof(float) * ((size_t)D + (size_t)nchunks + TQC_THREADS);
        if (smem > 48 * 1024) st = cu_smem_allow(s, op, tq_attn_combine, smem);
        if (st == MLXN_OK) {
            tq_attn_combine<<<(unsigned)rows, TQC_THREADS, smem, cu_ctx(s)->s>>>(a);
            st = cu_launched(s, op, "tq_attn_combine");
        }
    }
    if (scratch != cu_ctx(s)->tq_buf) cu_scratch_free(s, scratch);
    return st;
}
