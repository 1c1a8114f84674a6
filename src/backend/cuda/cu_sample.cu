/* CUDA mlxn_sample (semantics in mlxn/ops.h; the CPU op, backend/cpu/
 * sample.c, is the reference and uses the same plan):
 *   1. prep:   argmax (greedy ends here), log-sum-exp, logprobs lp [V]
 *   2. sort:   (lp, id) pairs descending with CUB's radix sort, which is
 *              stable, so equal logprobs stay in id order: the order in
 *              which the filters keep tokens ("the k best, lower ids first")
 *   3. cut:    every filter becomes a prefix length of that order (top_p:
 *              the first tie group whose preceding mass reaches top_p of the
 *              total; min_p: logprob >= max + log(min_p), at least
 *              min_tokens_to_keep; top_k: k); the kept set is the shortest
 *   4. draw:   mark the kept ids, then the inverse CDF of
 *              softmax(lp / T) over ids in order, as the host walks them.
 * Greedy (temperature 0) on sm_90 is instead one cluster of SC blocks
 * (sample_argmax_cluster): a block of one SM read a 128k vocabulary in
 * ~10 us on an H100, which a decode loop paid every token.
 * Steps 1, 3 and 4 are one block of 1024 threads each: the vocabulary
 * (~128k-262k f32, at most 1 MB) is read a few times from L2, which costs
 * a few microseconds per pass, less than launching a multi-block reduction
 * and its second pass. Sums are in double, like the host's; their order
 * and their terms differ (f32 exp here: the FP64 unit of one SM would
 * take ~30 us per pass over 128k tokens), so only a draw within ~1e-7 of
 * a boundary could pick differently. Greedy (temperature 0) is one kernel
 * and needs no scratch; sampling takes its scratch from the stream's pool
 * (cudaMallocAsync), whose release threshold is raised here: at the
 * default (0) the pool returns its memory at every stream sync, so each
 * decode step would map fresh memory again (~150 us measured on an H100).
 * The only bytes a decode loop copies back are the token id. */
#include <cooperative_groups.h>
#include <cub/cub.cuh>
#include <math.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
#include "backend/sample_draw.h"
}

enum { SB = 1024 }; /* threads of the single-block kernels */

typedef struct sample_meta {
    float mx;    /* the largest logit that is a number */
    float lse;   /* log-sum-exp of the logits */
    int32_t L;   /* kept prefix length of the sorted order */
    int32_t ok;  /* 0: no logit above -inf (the token is -1) */
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

/* This thread's contiguous segment [*a, *b) of n items: a thread walks its
 * own run in order, so a block-wide scan over the per-thread sums gives
 * each run its starting prefix (the ordered walks need that). */
__device__ __forceinline__ void segment(int n, int *a, int *b) {
    int per = (n + SB - 1) / SB;
    *a = min(n, (int)threadIdx.x * per);
    *b = min(n, *a + per);
}

/* x f32 [V] (element stride xs); lp f32 [V], ids i32 [V]; m [1]; tok i32 [1]. */
__global__ void __launch_bounds__(SB) sample_prep(const float *x, int64_t xs, int V, int greedy, float *lp,
                                                  int32_t *ids, sample_meta *m, int32_t *tok) {
    typedef cub::BlockReduce<arg_best, SB> RA;
    typedef cub::BlockReduce<double, SB> RD;
    __shared__ union {
        typename RA::TempStorage a;
        typename RD::TempStorage d;
    } sh;
    __shared__ arg_best best;
    arg_best b = {-INFINITY, INT32_MAX};
    for (int i = threadIdx.x; i < V; i += SB) {
        float v = x[i * xs];
        if (v > b.v || (v == b.v && i < b.i)) b.v = v, b.i = i; /* NaN compares false: ignored */
    }
    b = RA(sh.a).Reduce(b, arg_best_op());
    if (threadIdx.x == 0) best = b;
    __syncthreads();
    b = best;
    const int ok = b.v > -INFINITY;
    if (greedy || !ok) {
        if (threadIdx.x == 0) {
            *tok = ok ? b.i : -1;
            if (m) m->ok = ok, m->L = 0;
        }
        return;
    }
    double sum = 0.0;
    for (int i = threadIdx.x; i < V; i += SB) {
        float v = x[i * xs];
        if (v == v) sum += (double)expf(v - b.v); /* f32 terms (FP64 exp is ~30x slower), f64 sum */
    }
    sum = RD(sh.d).Sum(sum);
    __shared__ float lse_sh;
    if (threadIdx.x == 0) lse_sh = b.v + (float)log(sum);
    __syncthreads();
    const float lse = lse_sh;
    for (int i = threadIdx.x; i < V; i += SB) {
        float v = x[i * xs];
        lp[i] = v == v ? v - lse : -INFINITY;
        ids[i] = i;
    }
    if (threadIdx.x == 0) m->mx = b.v, m->lse = lse, m->ok = 1, m->L = V;
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

/* lps f32 [V] sorted descending; m [1]: writes m->L. */
__global__ void __launch_bounds__(SB) sample_cut(const float *lps, int V, float top_p, int use_min_p, float log_min_p,
                                                 int keep_n, int top_k, sample_meta *m) {
    typedef cub::BlockScan<double, SB> SD;
    typedef cub::BlockReduce<int32_t, SB> RI;
    __shared__ union {
        typename SD::TempStorage s;
        typename RI::TempStorage r;
    } sh;
    if (!m->ok) return;
    int a, b;
    segment(V, &a, &b);
    int L = V;
    if (top_p > 0.0f && top_p < 1.0f) {
        double mine = 0.0, before = 0.0, total = 0.0;
        for (int j = a; j < b; j++) mine += (double)expf(lps[j]);
        SD(sh.s).ExclusiveSum(mine, before, total);
        __syncthreads();
        const double cut = (double)top_p * total;
        int first = V;
        for (int j = a; j < b; j++) {
            if ((j == 0 || lps[j] != lps[j - 1]) && before >= cut) {
                first = j;
                break;
            }
            before += (double)expf(lps[j]);
        }
        first = RI(sh.r).Reduce(first, min_op());
        __syncthreads();
        L = first; /* valid in thread 0 */
    }
    if (use_min_p) {
        const float cut = lps[0] + log_min_p;
        int first = V; /* the first position below the cut */
        for (int j = a; j < b; j++)
            if (!(lps[j] >= cut)) {
                first = j;
                break;
            }
        first = RI(sh.r).Reduce(first, min_op());
        if (first < keep_n) first = keep_n > V ? V : keep_n;
        if (first < L) L = first;
    }
    if (top_k > 0 && top_k < L) L = top_k;
    if (threadIdx.x == 0) m->L = L;
}

/* lp f32 [V] (id order), idss i32 [V] (sorted order), keep u8 [V] scratch; tok i32 [1]. */
__global__ void __launch_bounds__(SB) sample_draw(const float *lp, const float *lps, const int32_t *idss, uint8_t *keep,
                                                  int V, double inv_t, double u, const sample_meta *m, int32_t *tok) {
    typedef cub::BlockScan<double, SB> SD;
    typedef cub::BlockReduce<int32_t, SB> RI;
    __shared__ union {
        typename SD::TempStorage s;
        typename RI::TempStorage r;
    } sh;
    if (!m->ok) return;
    const int L = m->L;
    for (int i = threadIdx.x; i < V; i += SB) keep[i] = 0;
    __syncthreads();
    for (int j = threadIdx.x; j < L; j += SB) keep[idss[j]] = 1;
    __syncthreads();
    const float top = lps[0], inv_tf = (float)inv_t;
    int a, b;
    segment(V, &a, &b);
    double mine = 0.0, before = 0.0, total = 0.0;
    for (int i = a; i < b; i++)
        if (keep[i] && lp[i] > -INFINITY) mine += (double)expf((lp[i] - top) * inv_tf);
    SD(sh.s).ExclusiveSum(mine, before, total);
    __syncthreads();
    const double target = u * total;
    int pick = INT32_MAX, last = -1;
    for (int i = a; i < b; i++) {
        if (!keep[i] || !(lp[i] > -INFINITY)) continue;
        before += (double)expf((lp[i] - top) * inv_tf);
        last = i;
        if (target < before) {
            pick = i;
            break;
        }
    }
    pick = RI(sh.r).Reduce(pick, min_op());
    __syncthreads();
    last = RI(sh.r).Reduce(last, max_op());
    if (threadIdx.x == 0) *tok = pick != INT32_MAX ? pick : last;
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
    const int greedy = p->temperature == 0.0f;
    size_t cub_bytes = 0;
    if (!greedy &&
        cub::DeviceRadixSort::SortPairsDescending(NULL, cub_bytes, (const float *)NULL, (float *)NULL,
                                                  (const int32_t *)NULL, (int32_t *)NULL, V, 0, 32, st) != cudaSuccess)
        return mlxn_fail(MLXN_ERR_DEVICE, "cuda: sample: sizing the sort's scratch failed");
    const size_t fv = align256((size_t)V * 4), bv = align256((size_t)V);
    const size_t o_lp = 0, o_ids = fv, o_lps = 2 * fv, o_idss = 3 * fv, o_keep = 4 * fv, o_meta = 4 * fv + bv,
                 o_cub = o_meta + 256, bytes = o_cub + cub_bytes;
    char *w = NULL;
    if (greedy) {
        /* one cluster where the GPU has clusters and one of SC 1024-thread blocks fits it; else one block */
        if (cu_ctx(s)->clusters && V >= SC * SB && cu_cluster_occupancy(s, sample_argmax_cluster, SB, 0, SC) > 0) {
            cu_launch_cluster(s, SC, sample_argmax_cluster, dim3(SC), dim3(SB), 0, x, xs, V, tok);
            return cu_launched(s, op, "sample_argmax_cluster");
        }
        sample_prep<<<1, SB, 0, st>>>(x, xs, V, 1, NULL, NULL, NULL, tok);
        return cu_launched(s, op, "sample_prep");
    }
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, cu_ctx(s)->index) == cudaSuccess) {
        uint64_t keep_all = UINT64_MAX; /* see the top of the file */
        (void)cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all);
    }
    MLXN_TRY(cu_scratch(s, op, bytes, (void **)&w));
    sample_meta *m = (sample_meta *)(w + o_meta);
    float *lp = (float *)(w + o_lp), *lps = (float *)(w + o_lps);
    int32_t *ids = (int32_t *)(w + o_ids), *idss = (int32_t *)(w + o_idss);
    sample_prep<<<1, SB, 0, st>>>(x, xs, V, 0, lp, ids, m, tok);
    mlxn_status r = cu_launched(s, op, "sample_prep");
    if (r == MLXN_OK) {
        cudaError_t e = cub::DeviceRadixSort::SortPairsDescending(w + o_cub, cub_bytes, lp, lps, ids, idss, V, 0, 32,
                                                                  st);
        r = cu_check(e, op, "cub::DeviceRadixSort", cu_ctx(s)->index);
    }
    if (r == MLXN_OK) {
        const int use_min_p = p->min_p != 0.0f;
        const float log_min_p = use_min_p ? logf(p->min_p) : 0.0f;
        const int keep_n = p->min_tokens_to_keep > 1 ? p->min_tokens_to_keep : 1;
        sample_cut<<<1, SB, 0, st>>>(lps, V, p->top_p, use_min_p, log_min_p, keep_n, p->top_k, m);
        r = cu_launched(s, op, "sample_cut");
    }
    if (r == MLXN_OK) {
        const double u = mlxn_sample_uniform(p->seed, p->counter);
        sample_draw<<<1, SB, 0, st>>>(lp, lps, idss, (uint8_t *)(w + o_keep), V, 1.0 / (double)p->temperature, u, m,
                                      tok);
        r = cu_launched(s, op, "sample_draw");
    }
    cu_scratch_free(s, w);
    return r;
}
