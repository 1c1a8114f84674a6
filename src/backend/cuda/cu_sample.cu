/* CUDA mlxn_sample (semantics in mlxn/ops.h; the CPU op, backend/cpu/
 * sample.c, is the reference and keeps the same set):
 *   1. prep:   argmax (greedy ends here), log-sum-exp, logprobs lp [V]
 *   2. filter: only when one is on. Every filter keeps a prefix of the
 *              order "logprob descending, lower id first on ties" (top_p:
 *              up to the first tie group whose preceding mass reaches top_p
 *              of the total; min_p: logprob >= max + log(min_p), at least
 *              min_tokens_to_keep; top_k: k), and the kept set is the
 *              shortest prefix. Found without sorting: bins of the
 *              logprobs, then a radix select inside the one bin where the
 *              prefix ends ("the filters without a sort" below).
 *   3. draw:   the inverse CDF of softmax(lp / T) over the kept ids in id
 *              order, as the host walks them.
 * Greedy (temperature 0) on sm_90 is instead one cluster of SC blocks
 * (sample_argmax_cluster): a block of one SM read a 128k vocabulary in
 * ~10 us on an H100, which a decode loop paid every token.
 * Sampling runs over chunks of CHUNK logits, one block each, and the
 * ordered walk of the draw in two steps: each block sums its
 * chunk, then one block adds the chunk sums in order, finds the chunk where
 * the walk ends and walks that chunk alone. Why: the walks had been one
 * block of 1024 threads over the whole vocabulary, each thread reading its
 * own contiguous run (32 cache lines a warp load): ~300 us a token for a
 * 128k vocabulary with no filter, most of a 1B model's decode step. Sums
 * are in double, like the host's; their order and their terms differ (f32
 * exp here), so only a draw within ~1e-7 of a boundary could pick
 * differently. Greedy is one kernel and needs no scratch; sampling takes
 * its scratch from the stream's pool (cudaMallocAsync), whose release
 * threshold is raised here: at the default (0) the pool returns its memory
 * at every stream sync, so each decode step would map fresh memory again
 * (~150 us measured on an H100). The only bytes a decode loop copies back
 * are the token id. */
#include <cooperative_groups.h>
#include <cub/cub.cuh>
#include <math.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
#include "backend/sample_draw.h"
}

enum { SB = 1024 };                 /* threads of the greedy kernels */
enum { MB = 256, PER = 16, CHUNK = MB * PER }; /* sampling: threads a block, logits a thread, logits a chunk */

typedef struct sample_meta {
    float mx;        /* the largest logit that is a number */
    float lse;       /* log-sum-exp of the logits */
    int32_t ok;      /* 0: no logit above -inf (the token is -1) */
    int32_t bcut;    /* with a filter: b*, the bin where the kept prefix ends (bins below it are kept) */
    int32_t need_p;  /* top_p's prefix ends inside b* */
    int32_t r_o;     /* how many of b*'s tokens top_k and min_p keep (INT32_MAX: no limit inside b*) */
    uint64_t base_q; /* their mass (fixed point, see lp_mass) */
    double cut;      /* top_p's mass target, top_p x the total mass (INFINITY: top_p off) */
} sample_meta;

struct arg_best { /* the larger value, the lower index on ties */
    float v;
    int32_t i;
};
struct arg_best_op {
    __device__ __forceinline__ arg_best operator()(const arg_best &a, const arg_best &b) const {
        if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
        return a;
    }
};
struct min_op {
    __device__ __forceinline__ int32_t operator()(int32_t a, int32_t b) const { return a < b ? a : b; }
};
struct max_op {
    __device__ __forceinline__ int32_t operator()(int32_t a, int32_t b) const { return a > b ? a : b; }
};

/* Greedy on one block (GPUs without clusters): x f32 [V] (element stride xs) -> tok i32 [1], the argmax
 * (lowest id among equal maxima, NaN ignored, -1 when no logit is above -inf). */
__global__ void __launch_bounds__(SB) sample_argmax_block(const float *x, int64_t xs, int V, int32_t *tok) {
    typedef cub::BlockReduce<arg_best, SB> RA;
    __shared__ typename RA::TempStorage tmp;
    arg_best b = {-INFINITY, INT32_MAX};
    for (int i = threadIdx.x; i < V; i += SB) {
        float v = x[i * xs];
        if (v > b.v || (v == b.v && i < b.i)) b.v = v, b.i = i; /* NaN compares false: ignored */
    }
    b = RA(tmp).Reduce(b, arg_best_op());
    if (threadIdx.x == 0) *tok = b.v > -INFINITY ? b.i : -1;
}

/* Greedy on sm_90: x f32 [V] (element stride xs) -> tok i32 [1], the argmax
 * (lowest id among equal maxima, NaN ignored, -1 when no logit is above
 * -inf), by the SC blocks of one thread-block cluster, block r taking the
 * r-th contiguous share of the vocabulary with 4 loads in flight per
 * thread (16-byte loads where the logits are contiguous); block 0 merges the blocks' answers through distributed shared
 * memory. The maximum under (value, then lower id) is a total order, so the
 * answer does not depend on the order of the merge. Why a cluster: 8 SMs
 * read the ~0.5-1 MB of logits ~8x faster than one, with no scratch memory
 * and no second kernel (measured: docs/perf.md). */
enum { SC = 8 };
__global__ void __launch_bounds__(SB) sample_argmax_cluster(const float *x, int64_t xs, int V, int32_t *tok) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    typedef cub::BlockReduce<arg_best, SB> RA;
    __shared__ typename RA::TempStorage tmp;
    __shared__ arg_best part[SC]; /* block 0's copy: every block's answer, by rank */
    cu_pdl_wait(); /* cu_launch_cluster launches programmatically: the logits are complete from here */
    cu_pdl_launch_dependents(); /* a token read (mlxn_reader) behind this kernel may be scheduled */
    cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
    /* shares of whole float4s, so each starts 16-byte aligned when x does */
    const int rank = (int)cluster.block_rank(), per = ((V + 3) / 4 + SC - 1) / SC * 4;
    /* a block may write into another's shared memory only once that block has started: each block says
       so here and waits for the others just before its remote store, by which time they all have */
    asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
    const int lo = min(V, rank * per), hi = min(V, lo + per);
    arg_best b = {-INFINITY, INT32_MAX};
    auto take = [&](float v, int i) {
        if (v > b.v || (v == b.v && i < b.i)) b.v = v, b.i = i; /* NaN compares false: ignored */
    };
    int rest = lo; /* the elements from here on go one by one */
    if (xs == 1 && ((uintptr_t)x & 15) == 0) {
        /* contiguous logits (a decode step's): 16-byte loads, 4 in flight per thread (a 128k vocabulary is
         * then one round of loads per block) */
        const float4 *x4 = (const float4 *)(x + lo);
        const int n4 = (hi - lo) / 4;
        for (int q0 = (int)threadIdx.x; q0 < n4; q0 += 4 * SB) {
            float4 v[4];
#pragma unroll
            for (int u = 0; u < 4; u++)
                if (q0 + u * SB < n4) v[u] = x4[q0 + u * SB];
#pragma unroll
            for (int u = 0; u < 4; u++)
                if (q0 + u * SB < n4) {
                    const int i = lo + 4 * (q0 + u * SB);
                    take(v[u].x, i), take(v[u].y, i + 1), take(v[u].z, i + 2), take(v[u].w, i + 3);
                }
        }
        rest = lo + 4 * n4;
    }
    for (int i0 = rest + (int)threadIdx.x; i0 < hi; i0 += 4 * SB) {
        float v[4];
#pragma unroll
        for (int u = 0; u < 4; u++)
            if (i0 + u * SB < hi) v[u] = x[(int64_t)(i0 + u * SB) * xs];
#pragma unroll
        for (int u = 0; u < 4; u++)
            if (i0 + u * SB < hi) take(v[u], i0 + u * SB);
    }
    b = RA(tmp).Reduce(b, arg_best_op());
    /* each block stores its answer into block 0's shared memory; one cluster barrier then makes them
       visible there, and no block reads another's memory after it (so none waits for block 0 to read:
       block 0 reading the others' answers one remote load at a time after the barrier, then a second
       barrier, was ~1 us of serial latency) */
    asm volatile("barrier.cluster.wait.aligned;" ::: "memory"); /* every block of the cluster has started */
    if (threadIdx.x == 0) *cluster.map_shared_rank(&part[rank], 0) = b;
    cluster.sync();
    if (rank == 0 && threadIdx.x == 0) {
        b = part[0];
        for (int j = 1; j < SC; j++) b = arg_best_op()(b, part[j]);
        *tok = b.v > -INFINITY ? b.i : -1;
    }
#endif
}

/* ---- sampling ------------------------------------------------------------
 * Chunk c is logits [c * CHUNK, min(V, (c + 1) * CHUNK)); a block reads it
 * with coalesced loads (element c * CHUNK + k * MB + threadIdx.x). */

/* A thread's PER values of its block's chunk [lo, hi) of a (element stride st): element lo + k * MB +
   threadIdx.x into v[k], pad past hi. Every load is issued before any value is used: one at a time, each
   waited an L2 round trip (~10 us a kernel over 16 loads). */
template <typename T>
__device__ __forceinline__ void load_chunk_vals(const T *a, int64_t st, int lo, int hi, T pad, T (&v)[PER]) {
#pragma unroll
    for (int k = 0; k < PER; k++) {
        const int i = lo + k * MB + (int)threadIdx.x;
        v[k] = i < hi ? a[(int64_t)i * st] : pad;
    }
}

/* lp of one logit: NaN as -inf, as the host maps it. */
__device__ __forceinline__ float logprob(float v, float lse) { return v == v ? v - lse : -INFINITY; }

/* The draw's weight of a kept logprob: softmax(lp / T)'s numerator, relative to the top logprob. The one
   formula every kernel uses, so the chunk sums and the walk inside a chunk add the same terms. */
__device__ __forceinline__ double draw_weight(float l, float top, float inv_t) {
    return l > -INFINITY ? (double)expf((l - top) * inv_t) : 0.0;
}

/* ---- the filters without a sort ----------------------------------------
 * Every filter keeps a prefix of the order (logprob descending, lower id
 * first on ties), and the kept set is the shortest prefix (see the top of
 * the file). Instead of sorting V pairs (CUB's radix sort of a 128k
 * vocabulary: ~50-70 us of a ~140 us draw on an H200), the finite logprobs
 * go into NBIN bins by their distance d = top - lp from the top logprob:
 * 1/64 nat wide below 30 nats, then 16 a doubling of d, the last bin open.
 * Bins follow the order (d is monotone in lp), so one grid pass gives each
 * bin's count and mass, a scan of the bins names the bin where the kept
 * prefix ends (b*), every bin above it is kept whole, and only b*'s tokens
 * (the candidates, tens to hundreds) are ordered, by a radix select in
 * one block. A token is then kept when bin(lp) < b* or its keep flag is
 * set. The masses are fixed point (exp(lp) * 2^QBITS, rounded), so their
 * sums are exact integers whatever the order of the atomics: the same draw
 * every run. exp(lp) is the f32 expf, as before; the logprobs' masses add
 * up to ~1, so every sum of them stays below ~2^QBITS. */
enum { NBIN = 2048, NLIN = 1920, BPT = NBIN / MB }; /* bins; linear ones (1/64 nat); bins a thread scans */
enum { QBITS = 44, PART_BITS = 19 }; /* mass units 2^-44; the parts of a mass in chunk_hist's split */
typedef unsigned long long u64;

/* The bin of a finite logprob l (top: the largest). __fsub_rn/__fmul_rn: no contraction into an FMA, so
   every kernel that recomputes a bin gets the same one. */
__device__ __forceinline__ int lp_bin(float top, float l) {
    const float d = __fsub_rn(top, l); /* >= 0 */
    if (d < 30.0f) return min(NLIN - 1, (int)__fmul_rn(d, 64.0f));
    const unsigned o = (__float_as_uint(d) - __float_as_uint(30.0f)) >> 19; /* 16 bins a doubling */
    return NLIN + (int)min(o, (unsigned)(NBIN - NLIN - 1));
}

/* A finite logprob's mass, exp(l) in units of 2^-QBITS (l <= 0, so at most 2^QBITS). */
__device__ __forceinline__ u64 lp_mass(float l) { return __float2ull_rn(__fmul_rn(expf(l), (float)(1ull << QBITS))); }

/* An order-preserving key of a finite logprob (larger l, larger key), -0 as +0 as the CPU's sort has it. */
__device__ __forceinline__ uint32_t lp_key(float l) {
    const uint32_t u = l == 0.0f ? 0u : __float_as_uint(l);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

struct draw_in { /* what the draw reads of one id: its logprob, its keep flag */
    float l;
    uint8_t flag;
};
/* The draw's view of the vocabulary: whether id i is kept (and finite), and its logprob. With a filter from
   lp f32 [V] (kept: bin below m->bcut, or the keep u8 [V] flag of a candidate of bin bcut); without one from
   the logits x (stride xs), every finite token kept. */
struct draw_term {
    const float *x;
    int64_t xs;
    const float *lp;
    const uint8_t *keep;
    float lse, top, inv_t;
    int bcut;
    __device__ __forceinline__ draw_in load(int i) const {
        if (lp) return draw_in{lp[i], keep[i]};
        return draw_in{logprob(x[(int64_t)i * xs], lse), 1};
    }
    /* A thread's PER ids of chunk lo..hi, every load issued first (as load_chunk_vals); ids past hi read
       as -inf. */
    __device__ __forceinline__ void load_chunk(int lo, int hi, draw_in *d) const {
#pragma unroll
        for (int k = 0; k < PER; k++) {
            const int i = lo + k * MB + (int)threadIdx.x;
            d[k] = i < hi ? load(i) : draw_in{-INFINITY, 0};
        }
    }
    __device__ __forceinline__ bool kept(const draw_in &d) const {
        return d.l > -INFINITY && (d.flag || lp_bin(top, d.l) < bcut);
    }
    __device__ __forceinline__ double weight(const draw_in &d) const {
        return kept(d) ? draw_weight(d.l, top, inv_t) : 0.0;
    }
};

/* x f32 [V] (stride xs) -> part_best [nb]: each chunk's argmax. With a filter, also clears zero u32 [nz] (the
   bins and counters that sample_chunk_hist adds into). */
__global__ void __launch_bounds__(MB) sample_chunk_best(const float *x, int64_t xs, int V, arg_best *part_best,
                                                        uint32_t *zero, int nz) {
    cu_pdl_wait(); /* launched programmatically (cu_launch): nothing is read before this */
    cu_pdl_launch_dependents();
    typedef cub::BlockReduce<arg_best, MB> RA;
    __shared__ typename RA::TempStorage tmp;
    for (int i = blockIdx.x * MB + threadIdx.x; i < nz; i += gridDim.x * MB) zero[i] = 0;
    const int lo = blockIdx.x * CHUNK, hi = min(V, lo + CHUNK);
    arg_best b = {-INFINITY, INT32_MAX};
    float v[PER];
    load_chunk_vals(x, xs, lo, hi, -INFINITY, v);
#pragma unroll
    for (int k = 0; k < PER; k++) {
        const int i = lo + k * MB + (int)threadIdx.x;
        if (i < hi && (v[k] > b.v || (v[k] == b.v && i < b.i))) b.v = v[k], b.i = i;
    }
    b = RA(tmp).Reduce(b, arg_best_op());
    if (threadIdx.x == 0) part_best[blockIdx.x] = b;
}

/* part_best [nb] -> part_sum [nb]: each chunk's sum of exp(v - max), the max from every chunk's best (a
   total order, so every block finds the same); block 0 writes m's max and ok, and the token -1 when no
   logit is above -inf. */
__global__ void __launch_bounds__(MB) sample_chunk_expsum(const float *x, int64_t xs, int V, const arg_best *part_best,
                                                          int nb, double *part_sum, sample_meta *m, int32_t *tok) {
    cu_pdl_wait(); /* launched programmatically (cu_launch): nothing is read before this */
    cu_pdl_launch_dependents();
    typedef cub::BlockReduce<arg_best, MB> RA;
    typedef cub::BlockReduce<double, MB> RD;
    __shared__ union {
        typename RA::TempStorage a;
        typename RD::TempStorage d;
    } sh;
    __shared__ float mx_sh;
    arg_best b = {-INFINITY, INT32_MAX};
    for (int c = threadIdx.x; c < nb; c += MB) b = arg_best_op()(b, part_best[c]);
    b = RA(sh.a).Reduce(b, arg_best_op());
    if (threadIdx.x == 0) {
        mx_sh = b.v;
        if (blockIdx.x == 0) {
            m->mx = b.v, m->ok = b.v > -INFINITY;
            if (!(b.v > -INFINITY)) *tok = -1;
        }
    }
    __syncthreads();
    const float mx = mx_sh;
    if (!(mx > -INFINITY)) return;
    const int lo = blockIdx.x * CHUNK, hi = min(V, lo + CHUNK);
    double sum = 0.0;
    float v[PER];
    load_chunk_vals(x, xs, lo, hi, NAN, v);
#pragma unroll
    for (int k = 0; k < PER; k++)
        if (v[k] == v[k]) sum += (double)expf(v[k] - mx); /* f32 terms (FP64 exp is ~30x slower), f64 sum */
    sum = RD(sh.d).Sum(sum);
    if (threadIdx.x == 0) part_sum[blockIdx.x] = sum;
}

/* The chunk values part [nb] in shared memory for one thread's ordered walk: all loads at once (a walk
   over global memory waited one L2 round trip per chunk: ~20 us over 32 chunks). Vocabularies of up to
   STAGED chunks (2M logits); a larger one is read from global memory. */
enum { STAGED = 512 };
template <typename T>
__device__ const T *stage_parts(const T *part, int nb, T *sh) {
    if (nb > STAGED) return part;
    for (int c = threadIdx.x; c < nb; c += blockDim.x) sh[c] = part[c];
    __syncthreads();
    return sh;
}

/* The log-sum-exp from the chunk sums, added in chunk order by one thread (the same value in every
   block); block 0 stores it in m. */
__device__ float chunk_lse(const double *part_sum_g, int nb, sample_meta *m) {
    __shared__ float lse_sh;
    __shared__ double sum_sh[STAGED];
    const double *part_sum = stage_parts(part_sum_g, nb, sum_sh);
    if (threadIdx.x == 0) {
        double sum = 0.0;
        for (int c = 0; c < nb; c++) sum += part_sum[c];
        lse_sh = m->mx + (float)log(sum);
        if (blockIdx.x == 0) m->lse = lse_sh;
    }
    __syncthreads();
    return lse_sh;
}

/* This block's chunk -> part_w [blockIdx.x], the sum of its kept tokens' draw weights, and part_last
   [blockIdx.x], its last kept finite id (-1: none). */
__device__ void chunk_draw_parts(const draw_term &t, int V, double *part_w, int32_t *part_last) {
    typedef cub::BlockReduce<double, MB> RD;
    typedef cub::BlockReduce<int32_t, MB> RI;
    __shared__ union {
        typename RD::TempStorage d;
        typename RI::TempStorage i;
    } sh;
    const int lo = blockIdx.x * CHUNK, hi = min(V, lo + CHUNK);
    double w = 0.0;
    int32_t last = -1;
    draw_in d[PER];
    t.load_chunk(lo, hi, d);
#pragma unroll
    for (int k = 0; k < PER; k++)
        if (t.kept(d[k])) w += draw_weight(d[k].l, t.top, t.inv_t), last = lo + k * MB + (int)threadIdx.x;
    w = RD(sh.d).Sum(w);
    __syncthreads();
    last = RI(sh.i).Reduce(last, max_op());
    if (threadIdx.x == 0) part_w[blockIdx.x] = w, part_last[blockIdx.x] = last;
}

/* No filter: every finite token kept, straight from the logits x (stride xs) -> part_w, part_last [nb]. */
__global__ void __launch_bounds__(MB) sample_chunk_all(const float *x, int64_t xs, int V, const double *part_sum,
                                                       int nb, sample_meta *m, float inv_t, double *part_w,
                                                       int32_t *part_last) {
    cu_pdl_wait(); /* launched programmatically (cu_launch): nothing is read before this */
    cu_pdl_launch_dependents();
    if (!m->ok) return;
    const float lse = chunk_lse(part_sum, nb, m);
    chunk_draw_parts(draw_term{x, xs, NULL, NULL, lse, m->mx - lse, inv_t, 0}, V, part_w, part_last);
}

/* With a filter: lp f32 [V] in id order, keep u8 [V] cleared, and into the bins hist_n u32 [NBIN] and
   hist_q u64 [NBIN] each finite token's count and mass; *n_minp += the tokens with lp >= top + log_min_p
   (min_p's kept count before min_tokens_to_keep). Each block bins its chunk in shared memory first, the
   masses as three 32-bit parts (bits 0-18, 19-37, 38 up): a shared 64-bit atomicAdd is a
   compare-and-swap loop, slow where many tokens share a bin; a 32-bit one is native. A mass is at most
   2^QBITS (lp <= 0: lse is the maximum plus a log of a sum >= 1), so over a chunk's 4096 tokens each
   part's sum stays below 2^31 even where every token is tied at the top: logits beyond ~1e8 in
   magnitude, where lse's f32 rounding loses log(sum) and the masses add up to far more than 1. */
__global__ void __launch_bounds__(MB) sample_chunk_hist(const float *x, int64_t xs, int V, const double *part_sum,
                                                        int nb, sample_meta *m, float log_min_p, float *lp,
                                                        uint8_t *keep, uint32_t *hist_n, u64 *hist_q,
                                                        uint32_t *n_minp) {
    cu_pdl_wait(); /* launched programmatically (cu_launch): nothing is read before this */
    cu_pdl_launch_dependents();
    typedef cub::BlockReduce<uint32_t, MB> RU;
    __shared__ typename RU::TempStorage tmp;
    __shared__ uint32_t sh_n[NBIN], sh_hi[NBIN], sh_mid[NBIN], sh_lo[NBIN];
    if (!m->ok) return;
    const float lse = chunk_lse(part_sum, nb, m), top = m->mx - lse, cut_minp = top + log_min_p;
    for (int b = threadIdx.x; b < NBIN; b += MB) sh_n[b] = 0, sh_hi[b] = 0, sh_mid[b] = 0, sh_lo[b] = 0;
    const int lo = blockIdx.x * CHUNK, hi = min(V, lo + CHUNK);
    float v[PER];
    load_chunk_vals(x, xs, lo, hi, NAN, v);
    __syncthreads(); /* the bins are cleared */
    uint32_t n_in = 0;
#pragma unroll
    for (int k = 0; k < PER; k++) {
        const int i = lo + k * MB + (int)threadIdx.x;
        if (i >= hi) continue;
        const float l = logprob(v[k], lse);
        lp[i] = l, keep[i] = 0;
        if (l > -INFINITY) {
            const int b = lp_bin(top, l);
            const u64 q = lp_mass(l);
            atomicAdd(&sh_n[b], 1u);
            const uint32_t part = (1u << PART_BITS) - 1;
            atomicAdd(&sh_hi[b], (uint32_t)(q >> 2 * PART_BITS));
            atomicAdd(&sh_mid[b], (uint32_t)(q >> PART_BITS) & part);
            atomicAdd(&sh_lo[b], (uint32_t)q & part);
            n_in += l >= cut_minp;
        }
    }
    __syncthreads();
    for (int b = threadIdx.x; b < NBIN; b += MB)
        if (sh_n[b])
            atomicAdd(&hist_n[b], sh_n[b]),
                atomicAdd(&hist_q[b], ((u64)sh_hi[b] << 2 * PART_BITS) + ((u64)sh_mid[b] << PART_BITS) + sh_lo[b]);
    n_in = RU(tmp).Sum(n_in);
    if (threadIdx.x == 0 && n_in) atomicAdd(n_minp, n_in);
}

/* A count and a mass, summed together in the scan of the bins. */
struct nq {
    u64 n, q;
};
struct nq_sum {
    __device__ __forceinline__ nq operator()(const nq &a, const nq &b) const { return nq{a.n + b.n, a.q + b.q}; }
};

/* The filters' parameters as the kernels see them. */
struct filt {
    float top_p;     /* 0: off */
    int top_k;       /* 0: off */
    int use_min_p, keep_n;
};

/* Every block of sample_gather: from the bins, b* (returned) and, in m (block 0): bcut = b*; base_q, the
   mass of the bins above b*; need_p, whether top_p's kept prefix ends inside b*;
   cut, top_p's mass target; r_o, how many of b*'s tokens top_k and min_p keep (INT32_MAX: all). top_p ends
   in the first bin whose running mass (inclusive) reaches top_p * total; top_k and min_p keep
   L_o = min(k, max(min_p's count, min_tokens_to_keep)) tokens, which end in the first bin whose running
   count reaches L_o. b* is the earlier of the two. */
__device__ int pick_bin(const uint32_t *hist_n, const u64 *hist_q, int V, const filt &f, uint32_t n_minp,
                        sample_meta *m) {
    typedef cub::BlockScan<nq, MB> SQ;
    typedef cub::BlockReduce<int, MB> RI;
    __shared__ union {
        typename SQ::TempStorage s;
        typename RI::TempStorage r;
    } sh;
    __shared__ int bp_sh, bo_sh;
    uint32_t hn[BPT]; /* this thread's bins */
    u64 hq[BPT];
    nq mine = {0, 0}, pre, all;
#pragma unroll
    for (int j = 0; j < BPT; j++) hn[j] = hist_n[threadIdx.x * BPT + j], hq[j] = hist_q[threadIdx.x * BPT + j];
#pragma unroll
    for (int j = 0; j < BPT; j++) mine.n += hn[j], mine.q += hq[j];
    SQ(sh.s).ExclusiveScan(mine, pre, nq{0, 0}, nq_sum(), all);
    const double cut = f.top_p > 0.0f ? (double)f.top_p * (double)all.q : INFINITY;
    u64 L_o = all.n; /* every finite token */
    if (f.top_k > 0 && (u64)f.top_k < L_o) L_o = (u64)f.top_k;
    if (f.use_min_p) {
        const u64 c = n_minp > (uint32_t)f.keep_n ? n_minp : (uint32_t)f.keep_n;
        if (c < L_o) L_o = c;
    }
    int bp = INT32_MAX, bo = INT32_MAX;
    nq run = pre, at_p = {0, 0}, at_o = {0, 0};
#pragma unroll
    for (int j = 0; j < BPT; j++) {
        const int b = threadIdx.x * BPT + j;
        const nq next = {run.n + hn[j], run.q + hq[j]};
        if (bp == INT32_MAX && (double)next.q >= cut) bp = b, at_p = run;
        if (bo == INT32_MAX && next.n >= L_o) bo = b, at_o = run;
        run = next;
    }
    __syncthreads(); /* the scan's storage is reused */
    const int bp_min = RI(sh.r).Reduce(bp, min_op());
    if (threadIdx.x == 0) bp_sh = bp_min;
    __syncthreads();
    const int bo_min = RI(sh.r).Reduce(bo, min_op());
    if (threadIdx.x == 0) bo_sh = bo_min;
    __syncthreads();
    const int bs = min(bp_sh, bo_sh);
    if (blockIdx.x == 0 && (bp == bs || bo == bs)) { /* the thread whose bins hold b* */
        const nq base = bp == bs ? at_p : at_o;
        m->bcut = bs, m->base_q = base.q, m->cut = cut;
        m->need_p = bp == bs;
        m->r_o = bo == bs ? (int32_t)(L_o - base.n) : INT32_MAX;
    }
    return bs;
}

/* The candidates: b*'s tokens, appended as (cand_l f32, cand_id i32) [*cand_n] in no particular order (the
   select in sample_resolve does not depend on it). Each block finds b* itself from the bins (~24 KB read
   from the L2), which costs less than a kernel of its own. */
__global__ void __launch_bounds__(MB) sample_gather(const float *lp, int V, const uint32_t *hist_n, const u64 *hist_q,
                                                    const uint32_t *n_minp, filt f, sample_meta *m, float *cand_l,
                                                    int32_t *cand_id, uint32_t *cand_n) {
    cu_pdl_wait(); /* launched programmatically (cu_launch): nothing is read before this */
    cu_pdl_launch_dependents();
    if (!m->ok) return;
    const int lo = blockIdx.x * CHUNK, hi = min(V, lo + CHUNK), lane = threadIdx.x & 31;
    float lv[PER]; /* loaded before the bins' scan, which they do not need */
    load_chunk_vals(lp, 1, lo, hi, -INFINITY, lv);
    const int bs = pick_bin(hist_n, hist_q, V, f, *n_minp, m);
    const float top = m->mx - m->lse;
#pragma unroll
    for (int k = 0; k < PER; k++) { /* every thread runs every round: the ballot needs the whole warp */
        const int i = lo + k * MB + (int)threadIdx.x;
        const float l = lv[k];
        const bool in = l > -INFINITY && lp_bin(top, l) == bs;
        const unsigned ball = __ballot_sync(0xffffffffu, in);
        if (!ball) continue;
        uint32_t base = 0;
        if (lane == 0) base = atomicAdd(cand_n, (uint32_t)__popc(ball)); /* one atomic a warp */
        base = __shfl_sync(0xffffffffu, base, 0);
        if (in) {
            const uint32_t at = base + (uint32_t)__popc(ball & ((1u << lane) - 1u));
            cand_l[at] = l, cand_id[at] = i;
        }
    }
}

/* ---- the select among the candidates (one block of RB threads) ---------- */
enum { RB = 1024 };

/* A histogram of one 8-bit digit for the select, each total as two 32-bit words (lo, hi), added with
   32-bit shared atomics: where a bin holds most of the vocabulary they took ~12% less time than 64-bit
   ones (H200, every logit within a hundredth of a nat). */
struct sel_hist {
    uint32_t lo[256], hi[256];
    __device__ u64 operator[](int d) const { return ((u64)hi[d] << 32) + lo[d]; }
    __device__ void clear() {
        for (int b = threadIdx.x; b < 256; b += RB) lo[b] = 0, hi[b] = 0;
    }
    /* += v: the low word's carry goes into the high one (a count stays below 2^31: no carry) */
    __device__ void add(int d, u64 v, bool carry) {
        if (!carry) {
            atomicAdd(&lo[d], (uint32_t)v);
            return;
        }
        const uint32_t vl = (uint32_t)v, old = atomicAdd(&lo[d], vl);
        const uint32_t vh = (uint32_t)(v >> 32) + (old + vl < old ? 1u : 0u);
        if (vh) atomicAdd(&hi[d], vh);
    }
};

/* Warp 0, after a histogram h [256] of one 8-bit digit: the first digit in walk order (descending keys, or
   ascending when `up`) at which base + the running total (inclusive) reaches target. Sets *d, *before
   (base + the total of the digits walked before it) and *here (the digit's own total). Lane j sums walk
   positions 8j..8j+7, a warp scan finds the lane, which walks its eight. */
__device__ void pick_digit(const sel_hist &h, bool up, u64 base, double target, int *d, u64 *before, u64 *here) {
    const int lane = threadIdx.x & 31;
    u64 s = 0;
    for (int j = 0; j < 8; j++) s += h[up ? lane * 8 + j : 255 - (lane * 8 + j)];
    u64 incl = s;
    for (int o = 1; o < 32; o <<= 1) {
        const u64 v = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += v;
    }
    const unsigned ball = __ballot_sync(0xffffffffu, (double)(base + incl) >= target);
    const int f = ball ? __ffs(ball) - 1 : 31; /* none: rounding cannot cause it (exact sums); take the end */
    if (lane == f) {
        u64 run = base + incl - s;
        int dd = up ? 255 : 0;
        for (int j = 0; j < 8; j++) {
            const int dj = up ? lane * 8 + j : 255 - (lane * 8 + j);
            if ((double)(run + h[dj]) >= target || j == 7) {
                dd = dj;
                break;
            }
            run += h[dj];
        }
        *d = dd, *before = run, *here = h[dd];
    }
}

/* The select's state, shared by the block. */
struct sel_sh {
    sel_hist h;
    int d;
    u64 before, here;
};

/* One pass of a select: each candidate c for which f(c, &digit, &value) holds adds value (mass: a mass of
   at most 2^QBITS; else 1) into h[digit]. A thread takes up to UB candidates a round and issues their loads
   (inside f) before any is used: a bin can hold most of the vocabulary (every logit within a hundredth of
   a nat), and one load a round cost each round an L2 round trip. Counts: the lanes of a warp with the
   same digit (__match_any_sync) add their number once, by their lowest lane. Masses: where the warp's
   candidates share one digit (every logit equal), one whole-warp __reduce_add_sync and one atomic, since
   32 atomics on one word queue; else every lane adds its own. Both measured on an H200 against summing
   each digit's group first, by 32 shuffles or by __reduce_add_sync over the group's own mask (that one
   1.5x slower than the shuffles where the digits differ): docs/perf.md, the GPU sampler's worst cases. */
enum { UB = 4 };
template <typename F>
__device__ void add_digits(int N, bool mass, sel_hist &h, F f) {
    const int lane = threadIdx.x & 31;
    for (int c0 = 0; c0 < N; c0 += RB * UB) { /* the same rounds in every thread: the warp functions need them all */
        int dg[UB];
        u64 v[UB];
#pragma unroll
        for (int u = 0; u < UB; u++) {
            const int c = c0 + u * RB + (int)threadIdx.x;
            v[u] = 0;
            if (c >= N || !f(c, &dg[u], &v[u])) dg[u] = 256, v[u] = 0; /* 256: nothing to add */
        }
#pragma unroll
        for (int u = 0; u < UB; u++) {
            if (c0 + u * RB >= N) break; /* the same in every thread: no candidate of the block is left */
            const unsigned real = __ballot_sync(0xffffffffu, dg[u] < 256);
            if (!real) continue; /* the same in the whole warp */
            if (mass) { /* (v is 0 where the digit is 256) */
                const int first = __ffs(real) - 1, d0 = __shfl_sync(0xffffffffu, dg[u], first);
                if (!__any_sync(0xffffffffu, dg[u] < 256 && dg[u] != d0)) { /* one digit: a whole-warp sum */
                    const u64 sum = ((u64)__reduce_add_sync(0xffffffffu, (uint32_t)(v[u] >> 23)) << 23) +
                                    __reduce_add_sync(0xffffffffu, (uint32_t)v[u] & 0x7fffffu);
                    if (lane == first) h.add(d0, sum, true);
                } else if (dg[u] < 256) {
                    h.add(dg[u], v[u], true); /* each its own: the atomics of one digit queue in hardware */
                }
            } else {
                const unsigned grp = __match_any_sync(0xffffffffu, dg[u]);
                if (dg[u] < 256 && lane == __ffs(grp) - 1) h.add(dg[u], (u64)__popc(grp), false);
            }
        }
    }
}

/* The candidates' keys lie in [lo, lo ^ (bits below 2^(shift0 + 8))]: the bytes above shift0 are the same
   in all, so a select starts at byte shift0 (shift0 < 0: one key). Found in one pass; a bin's keys
   usually differ only in their lower two bytes. */
struct key_range {
    uint32_t lo;
    int shift0;
};

/* The group (key, returned) of the candidates, walked from the largest key down, at which base + the running
   total of each candidate's count (mass: lp_mass) reaches target; *before: base + the total of the larger
   keys, *here: the group's own total (counts only). One pass over the candidates for each byte of the key
   from kr.shift0 down. */
__device__ uint32_t select_key(const float *cand_l, int N, bool mass, u64 base, double target, key_range kr,
                               sel_sh &s, u64 *before, u64 *here) {
    if (kr.shift0 < 0) { /* one key: every candidate is the group */
        *before = base, *here = (u64)N;
        return kr.lo;
    }
    const uint32_t high = kr.shift0 + 8 >= 32 ? 0u : ~0u << (kr.shift0 + 8); /* the common bytes */
    uint32_t prefix = kr.lo & high, mask = high;
    for (int shift = kr.shift0; shift >= 0; shift -= 8) {
        s.h.clear();
        __syncthreads();
        add_digits(N, mass, s.h, [&](int c, int *dg, u64 *v) {
            const float l = cand_l[c];
            const uint32_t k = lp_key(l);
            *dg = (k >> shift) & 255, *v = mass ? lp_mass(l) : 1ull;
            return (k & mask) == prefix;
        });
        __syncthreads();
        if (threadIdx.x < 32) pick_digit(s.h, false, base, target, &s.d, &s.before, &s.here);
        __syncthreads();
        prefix |= (uint32_t)s.d << shift, mask |= 255u << shift, base = s.before;
    }
    *before = base, *here = s.here;
    return prefix;
}

/* The need-th smallest id (1-based) among the candidates with key g: the same walk over the ids' bytes,
   ascending. V > 1 (a group of two or more). */
__device__ int32_t select_id(const float *cand_l, const int32_t *cand_id, int N, uint32_t g, int V, u64 need,
                             sel_sh &s) {
    const int bits = 32 - __clz(V - 1);
    uint32_t prefix = 0, mask = 0;
    u64 base = 0;
    for (int shift = (bits - 1) / 8 * 8; shift >= 0; shift -= 8) {
        s.h.clear();
        __syncthreads();
        add_digits(N, false, s.h, [&](int c, int *dg, u64 *v) {
            const uint32_t id = (uint32_t)cand_id[c];
            *dg = (id >> shift) & 255, *v = 1ull;
            return lp_key(cand_l[c]) == g && (id & mask) == prefix;
        });
        __syncthreads();
        if (threadIdx.x < 32) pick_digit(s.h, true, base, (double)need, &s.d, &s.before, &s.here);
        __syncthreads();
        prefix |= (uint32_t)s.d << shift, mask |= 255u << shift, base = s.before;
    }
    return (int32_t)prefix;
}

struct umin_op {
    __device__ __forceinline__ uint32_t operator()(uint32_t a, uint32_t b) const { return a < b ? a : b; }
};
struct umax_op {
    __device__ __forceinline__ uint32_t operator()(uint32_t a, uint32_t b) const { return a > b ? a : b; }
};

/* The candidates of bin b* (m->bcut) -> keep u8 [V]: the flags of those the filters keep, so that the kept
   set is bins < b* plus these. top_p (m->need_p): the group at which the running mass from m->base_q
   reaches m->cut is the last kept, with every group before it (the CPU's "first tie group whose mass above
   reaches the cut ends the prefix"); top_k/min_p: the first r_o candidates in the order, a tie group
   broken by the lower ids. The shorter wins. */
__global__ void __launch_bounds__(RB) sample_resolve(const float *__restrict__ cand_l,
                                                     const int32_t *__restrict__ cand_id, const uint32_t *cand_n,
                                                     int V, const sample_meta *m, uint8_t *__restrict__ keep) {
    cu_pdl_wait(); /* launched programmatically (cu_launch): nothing is read before this */
    cu_pdl_launch_dependents();
    typedef cub::BlockReduce<uint32_t, RB> RU;
    __shared__ sel_sh s;
    __shared__ typename RU::TempStorage tmp;
    __shared__ uint32_t u_sh;
    if (!m->ok) return;
    const int N = (int)*cand_n;
    key_range kr;
    { /* the candidates' key range */
        uint32_t kmin = UINT32_MAX, kmax = 0;
        for (int c = threadIdx.x; c < N; c += RB) {
            const uint32_t k = lp_key(cand_l[c]);
            kmin = min(kmin, k), kmax = max(kmax, k);
        }
        kmin = RU(tmp).Reduce(kmin, umin_op());
        if (threadIdx.x == 0) u_sh = kmin;
        __syncthreads();
        kr.lo = u_sh;
        kmax = RU(tmp).Reduce(kmax, umax_op());
        if (threadIdx.x == 0) u_sh = kmax;
        __syncthreads();
        const uint32_t diff = kr.lo ^ u_sh;
        kr.shift0 = diff ? (31 - __clz(diff)) / 8 * 8 : -1;
        __syncthreads(); /* u_sh is read by all before its next use */
    }
    u64 before, here;
    int r = N, r_p = INT32_MAX;
    uint32_t gp = 0;
    if (m->need_p) {
        gp = select_key(cand_l, N, true, m->base_q, m->cut, kr, s, &before, &here);
        uint32_t n_ge = 0; /* r_p: the candidates up to the end of group gp */
        for (int c = threadIdx.x; c < N; c += RB) n_ge += lp_key(cand_l[c]) >= gp;
        n_ge = RU(tmp).Sum(n_ge);
        if (threadIdx.x == 0) u_sh = n_ge;
        __syncthreads();
        r_p = (int)u_sh;
    }
    const int r_o = m->r_o;
    if (r_p <= r_o) { /* top_p ends the prefix (at a group's end): keys >= gp */
        for (int c = threadIdx.x; c < N; c += RB)
            if (lp_key(cand_l[c]) >= gp) keep[cand_id[c]] = 1;
        return;
    }
    r = min(r, r_o);
    if (r >= N) { /* the whole bin */
        for (int c = threadIdx.x; c < N; c += RB) keep[cand_id[c]] = 1;
        return;
    }
    /* the first r: the group holding the r-th, then, inside it, the lowest ids */
    const uint32_t g = select_key(cand_l, N, false, 0, (double)r, kr, s, &before, &here);
    const u64 need = (u64)r - before;
    const int32_t id_max = need == here ? INT32_MAX : select_id(cand_l, cand_id, N, g, V, need, s);
    for (int c = threadIdx.x; c < N; c += RB) {
        const uint32_t k = lp_key(cand_l[c]);
        if (k > g || (k == g && cand_id[c] <= id_max)) keep[cand_id[c]] = 1;
    }
}

/* With a filter: each chunk's draw weight over its kept ids, part_w [nb], and its last kept finite id,
   part_last [nb]. lp f32 [V] in id order. */
__global__ void __launch_bounds__(MB) sample_chunk_weights(const float *lp, const uint8_t *keep, int V,
                                                           const sample_meta *m, float inv_t, double *part_w,
                                                           int32_t *part_last) {
    cu_pdl_wait(); /* launched programmatically (cu_launch): nothing is read before this */
    cu_pdl_launch_dependents();
    if (!m->ok) return;
    chunk_draw_parts(draw_term{NULL, 0, lp, keep, m->lse, m->mx - m->lse, inv_t, m->bcut}, V, part_w, part_last);
}

/* The first position of chunk c whose inclusive running sum (from `before`, over the draw weights of
   term) exceeds `target`; INT32_MAX when none. One block: the chunk's terms staged in shared memory, each
   thread's run of PER summed, a block scan, then each run walked. */
__device__ int32_t chunk_crossing(int c, int V, double before, double target, const draw_term &term) {
    typedef cub::BlockScan<double, MB> SD;
    typedef cub::BlockReduce<int32_t, MB> RI;
    __shared__ union {
        typename SD::TempStorage s;
        typename RI::TempStorage r;
    } sh;
    __shared__ double t_sh[MB * (PER + 1)]; /* [MB][PER + 1]: a thread's run, padded against bank conflicts */
    const int lo = c * CHUNK, hi = min(V, lo + CHUNK);
    draw_in d[PER];
    term.load_chunk(lo, hi, d);
#pragma unroll
    for (int k = 0; k < PER; k++) { /* coalesced: element lo + k * MB + t is run (k * MB + t) / PER's */
        const int e = k * MB + threadIdx.x;
        t_sh[(e / PER) * (PER + 1) + e % PER] = term.weight(d[k]);
    }
    __syncthreads();
    const double *run = t_sh + threadIdx.x * (PER + 1);
    double mine = 0.0, pre = 0.0;
    for (int k = 0; k < PER; k++) mine += run[k];
    SD(sh.s).ExclusiveSum(mine, pre);
    __syncthreads();
    double acc = before + pre;
    int32_t hit = INT32_MAX;
    for (int k = 0; k < PER; k++) {
        acc += run[k];
        if (target < acc) {
            hit = lo + threadIdx.x * PER + k;
            break;
        }
    }
    return RI(sh.r).Reduce(hit, min_op()); /* valid in thread 0 */
}

/* The draw: the first kept id whose inclusive weight exceeds u * total, walking ids in order. One block:
   the chunk sums added in order find the chunk, which is then walked. The weights come from lp f32 [V]
   (kept as draw_term says) with a filter, else from the logits x (stride xs) themselves. When rounding
   leaves the target at the top (no crossing), the last kept finite id, as the host does. */
__global__ void __launch_bounds__(MB) sample_draw(const float *x, int64_t xs, const float *lp, const uint8_t *keep,
                                                  int V, const double *part_w_g, const int32_t *part_last_g, int nb,
                                                  const sample_meta *m, float inv_t, double u, int32_t *tok) {
    cu_pdl_wait(); /* launched programmatically (cu_launch): nothing is read before this */
    cu_pdl_launch_dependents();
    __shared__ int c_sh;
    __shared__ double before_sh, target_sh;
    __shared__ int32_t last_sh;
    __shared__ double w_parts[STAGED];
    __shared__ int32_t last_parts[STAGED];
    if (!m->ok) return;
    const double *part_w = stage_parts(part_w_g, nb, w_parts);
    const int32_t *part_last = stage_parts(part_last_g, nb, last_parts);
    if (threadIdx.x == 0) {
        double total = 0.0, run = 0.0;
        int32_t last = -1;
        for (int c = 0; c < nb; c++) total += part_w[c], last = max(last, part_last[c]);
        const double target = u * total;
        int c = 0;
        while (c < nb && !(target < run + part_w[c])) run += part_w[c++];
        c_sh = c, before_sh = run, target_sh = target, last_sh = c < nb ? part_last[c] : last;
    }
    __syncthreads();
    if (c_sh >= nb) {
        if (threadIdx.x == 0) *tok = last_sh;
        return;
    }
    const float lse = m->lse;
    const int32_t pick = chunk_crossing(c_sh, V, before_sh, target_sh,
                                        draw_term{x, xs, lp, keep, lse, m->mx - lse, inv_t, lp ? m->bcut : 0});
    if (threadIdx.x == 0) *tok = pick != INT32_MAX ? pick : last_sh;
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

extern "C" mlxn_status cu_op_sample(mlxn_stream *s, const mlxn_tensor *logits, const mlxn_sample_params *p,
                                    mlxn_tensor *token) {
    const char *op = "sample";
    MLXN_TRY(cu_begin(s, op));
    cudaStream_t st = cu_ctx(s)->s;
    cu_view xv = cu_view_of(logits);
    const int V = (int)cu_last(xv);
    const int64_t xs = xv.st[xv.nd - 1];
    const float *x = (const float *)xv.p;
    int32_t *tok = (int32_t *)cu_ptr(token);
    if (p->temperature == 0.0f) {
        /* one cluster where the GPU has clusters and one of SC 1024-thread blocks fits it; else one block */
        if (cu_ctx(s)->clusters && V >= SC * SB && cu_cluster_occupancy(s, sample_argmax_cluster, SB, 0, SC) > 0) {
            cu_launch_cluster(s, SC, sample_argmax_cluster, dim3(SC), dim3(SB), 0, x, xs, V, tok);
            return cu_launched(s, op, "sample_argmax_cluster");
        }
        sample_argmax_block<<<1, SB, 0, st>>>(x, xs, V, tok);
        return cu_launched(s, op, "sample_argmax_block");
    }
    /* a filter on: the bins and the select (else every finite token is kept) */
    const int use_top_p = p->top_p > 0.0f && p->top_p < 1.0f, use_min_p = p->min_p != 0.0f;
    const int use_top_k = p->top_k > 0 && p->top_k < V, filter = use_top_p || use_min_p || use_top_k;
    const int nb = (V + CHUNK - 1) / CHUNK;
    /* scratch: per chunk [nb] best, exp sums, draw weights, last ids; the meta; with a filter the bins
       (hist_q u64, hist_n u32 [NBIN], then two u32 counters: min_p's count, the candidates'), lp f32 [V],
       the candidates cand_l f32 / cand_id i32 [V] and keep u8 [V] */
    const size_t fv = align256((size_t)V * 4), pc = align256((size_t)nb * 8);
    const size_t hist_words = NBIN * 3 + 2; /* u32 words of the bins and counters, cleared together */
    const size_t o_best = 0, o_sum = pc, o_w = 2 * pc, o_last = 3 * pc, o_meta = 4 * pc, o_hist = o_meta + 256,
                 o_lp = o_hist + align256(hist_words * 4), o_cl = o_lp + fv, o_ci = o_cl + fv, o_keep = o_ci + fv,
                 bytes = filter ? o_keep + align256((size_t)V) : o_hist;
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, cu_ctx(s)->index) == cudaSuccess) {
        uint64_t keep_all = UINT64_MAX; /* see the top of the file */
        (void)cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all);
    }
    char *w = NULL;
    MLXN_TRY(cu_scratch(s, op, bytes, (void **)&w));
    arg_best *part_best = (arg_best *)(w + o_best);
    double *part_sum = (double *)(w + o_sum), *part_w = (double *)(w + o_w);
    int32_t *part_last = (int32_t *)(w + o_last);
    sample_meta *m = (sample_meta *)(w + o_meta);
    u64 *hist_q = (u64 *)(w + o_hist);
    uint32_t *hist_n = (uint32_t *)(hist_q + NBIN), *n_minp = hist_n + NBIN, *cand_n = n_minp + 1;
    float *lp = filter ? (float *)(w + o_lp) : NULL, *cand_l = (float *)(w + o_cl);
    int32_t *cand_id = (int32_t *)(w + o_ci);
    uint8_t *keep = filter ? (uint8_t *)(w + o_keep) : NULL;
    const float inv_t = (float)(1.0 / (double)p->temperature);
    const filt f = {use_top_p ? p->top_p : 0.0f, use_top_k ? p->top_k : 0, use_min_p,
                    p->min_tokens_to_keep > 1 ? p->min_tokens_to_keep : 1};
    cu_launch(s, sample_chunk_best, dim3(nb), dim3(MB), 0, x, xs, V, part_best, filter ? (uint32_t *)hist_q : NULL,
              filter ? (int)hist_words : 0);
    mlxn_status r = cu_launched(s, op, "sample_chunk_best");
    if (r == MLXN_OK) {
        cu_launch(s, sample_chunk_expsum, dim3(nb), dim3(MB), 0, x, xs, V, part_best, nb, part_sum, m, tok);
        r = cu_launched(s, op, "sample_chunk_expsum");
    }
    if (!filter) {
        if (r == MLXN_OK) {
            cu_launch(s, sample_chunk_all, dim3(nb), dim3(MB), 0, x, xs, V, part_sum, nb, m, inv_t, part_w, part_last);
            r = cu_launched(s, op, "sample_chunk_all");
        }
    } else {
        if (r == MLXN_OK) {
            const float log_min_p = use_min_p ? logf(p->min_p) : 0.0f;
            cu_launch(s, sample_chunk_hist, dim3(nb), dim3(MB), 0, x, xs, V, part_sum, nb, m, log_min_p, lp, keep,
                      hist_n, hist_q, n_minp);
            r = cu_launched(s, op, "sample_chunk_hist");
        }
        if (r == MLXN_OK) {
            cu_launch(s, sample_gather, dim3(nb), dim3(MB), 0, lp, V, hist_n, hist_q, n_minp, f, m, cand_l, cand_id,
                      cand_n);
            r = cu_launched(s, op, "sample_gather");
        }
        if (r == MLXN_OK) {
            cu_launch(s, sample_resolve, dim3(1), dim3(RB), 0, cand_l, cand_id, cand_n, V, m, keep);
            r = cu_launched(s, op, "sample_resolve");
        }
        if (r == MLXN_OK) {
            cu_launch(s, sample_chunk_weights, dim3(nb), dim3(MB), 0, lp, keep, V, m, inv_t, part_w, part_last);
            r = cu_launched(s, op, "sample_chunk_weights");
        }
    }
    if (r == MLXN_OK) {
        const double u = mlxn_sample_uniform(p->seed, p->counter);
        cu_launch(s, sample_draw, dim3(1), dim3(MB), 0, x, xs, lp, keep, V, part_w, part_last, nb, m, inv_t, u, tok);
        r = cu_launched(s, op, "sample_draw");
    }
    cu_scratch_free(s, w);
    return r;
}
