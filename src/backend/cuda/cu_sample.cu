/* CUDA mlxn_sample (semantics in mlxn/ops.h; the CPU op, backend/cpu/
 * sample.c, is the reference and uses the same plan):
 *   1. prep:   argmax (greedy ends here), log-sum-exp, logprobs lp [V]
 *   2. sort:   only when a filter is on: (lp, id) pairs descending with
 *              CUB's radix sort, which is stable, so equal logprobs stay in
 *              id order: the order in which the filters keep tokens ("the k
 *              best, lower ids first")
 *   3. cut:    every filter becomes a prefix length of that order (top_p:
 *              the first tie group whose preceding mass reaches top_p of the
 *              total; min_p: logprob >= max + log(min_p), at least
 *              min_tokens_to_keep; top_k: k); the kept set is the shortest
 *   4. draw:   the inverse CDF of softmax(lp / T) over the kept ids in id
 *              order, as the host walks them.
 * Greedy (temperature 0) on sm_90 is instead one cluster of SC blocks
 * (sample_argmax_cluster): a block of one SM read a 128k vocabulary in
 * ~10 us on an H100, which a decode loop paid every token.
 * Sampling runs over chunks of CHUNK logits, one block each, and every
 * ordered walk (the draw, top_p's cut) in two steps: each block sums its
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

/* lp of one logit: NaN as -inf, as the host maps it. */
__device__ __forceinline__ float logprob(float v, float lse) { return v == v ? v - lse : -INFINITY; }

/* The draw's weight of a kept logprob: softmax(lp / T)'s numerator, relative to the top logprob. The one
   formula every kernel uses, so the chunk sums and the walk inside a chunk add the same terms. */
__device__ __forceinline__ double draw_weight(float l, float top, float inv_t) {
    return l > -INFINITY ? (double)expf((l - top) * inv_t) : 0.0;
}

/* The draw's term of id i: from lp f32 [V] and keep u8 [V] (a filter on), else from the logits x (stride
   xs) with every finite token kept. One type, so chunk_crossing has one instance (and one set of shared
   arrays) per kernel. */
struct draw_term {
    const float *x;
    int64_t xs;
    const float *lp;
    const uint8_t *keep;
    float lse, top, inv_t;
    __device__ __forceinline__ double operator()(int i) const {
        if (lp) return keep[i] ? draw_weight(lp[i], top, inv_t) : 0.0;
        return draw_weight(logprob(x[(int64_t)i * xs], lse), top, inv_t);
    }
};

/* top_p's term of sorted position j: exp(lp). */
struct mass_term {
    const float *lps;
    __device__ __forceinline__ double operator()(int j) const { return (double)expf(lps[j]); }
};

/* x f32 [V] (stride xs) -> part_best [nb]: each chunk's argmax. */
__global__ void __launch_bounds__(MB) sample_chunk_best(const float *x, int64_t xs, int V, arg_best *part_best) {
    typedef cub::BlockReduce<arg_best, MB> RA;
    __shared__ typename RA::TempStorage tmp;
    const int lo = blockIdx.x * CHUNK, hi = min(V, lo + CHUNK);
    arg_best b = {-INFINITY, INT32_MAX};
    for (int i = lo + threadIdx.x; i < hi; i += MB) {
        const float v = x[(int64_t)i * xs];
        if (v > b.v || (v == b.v && i < b.i)) b.v = v, b.i = i;
    }
    b = RA(tmp).Reduce(b, arg_best_op());
    if (threadIdx.x == 0) part_best[blockIdx.x] = b;
}

/* part_best [nb] -> part_sum [nb]: each chunk's sum of exp(v - max), the max from every chunk's best (a
   total order, so every block finds the same); block 0 writes m's max and ok, and the token -1 when no
   logit is above -inf. */
__global__ void __launch_bounds__(MB) sample_chunk_expsum(const float *x, int64_t xs, int V, const arg_best *part_best,
                                                          int nb, double *part_sum, sample_meta *m, int32_t *tok) {
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
            m->mx = b.v, m->ok = b.v > -INFINITY, m->L = V;
            if (!(b.v > -INFINITY)) *tok = -1;
        }
    }
    __syncthreads();
    const float mx = mx_sh;
    if (!(mx > -INFINITY)) return;
    const int lo = blockIdx.x * CHUNK, hi = min(V, lo + CHUNK);
    double sum = 0.0;
    for (int i = lo + threadIdx.x; i < hi; i += MB) {
        const float v = x[(int64_t)i * xs];
        if (v == v) sum += (double)expf(v - mx); /* f32 terms (FP64 exp is ~30x slower), f64 sum */
    }
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

/* With a filter: lp f32 [V] and ids i32 [V] for the sort, keep u8 [V] cleared. Without: no stores, but
   each chunk's draw weight part_w [nb] and last finite id part_last [nb] (every finite token is kept). */
__global__ void __launch_bounds__(MB) sample_chunk_lp(const float *x, int64_t xs, int V, const double *part_sum,
                                                      int nb, sample_meta *m, float *lp, int32_t *ids, uint8_t *keep,
                                                      float inv_t, double *part_w, int32_t *part_last) {
    typedef cub::BlockReduce<double, MB> RD;
    typedef cub::BlockReduce<int32_t, MB> RI;
    __shared__ union {
        typename RD::TempStorage d;
        typename RI::TempStorage i;
    } sh;
    if (!m->ok) return;
    const float lse = chunk_lse(part_sum, nb, m), top = m->mx - lse; /* top: the largest logprob */
    const int lo = blockIdx.x * CHUNK, hi = min(V, lo + CHUNK);
    double w = 0.0;
    int32_t last = -1;
    for (int i = lo + threadIdx.x; i < hi; i += MB) {
        const float l = logprob(x[(int64_t)i * xs], lse);
        if (lp) {
            lp[i] = l, ids[i] = i, keep[i] = 0;
        } else {
            w += draw_weight(l, top, inv_t);
            if (l > -INFINITY) last = i;
        }
    }
    if (lp) return;
    w = RD(sh.d).Sum(w);
    __syncthreads();
    last = RI(sh.i).Reduce(last, max_op());
    if (threadIdx.x == 0) part_w[blockIdx.x] = w, part_last[blockIdx.x] = last;
}

/* top_p's terms: lps f32 [V] sorted descending -> part_c [nb], each chunk's sum of exp(lp). */
__global__ void __launch_bounds__(MB) sample_chunk_mass(const float *lps, int V, const sample_meta *m,
                                                        double *part_c) {
    typedef cub::BlockReduce<double, MB> RD;
    __shared__ typename RD::TempStorage tmp;
    if (!m->ok) return;
    const int lo = blockIdx.x * CHUNK, hi = min(V, lo + CHUNK);
    double s = 0.0;
    for (int j = lo + threadIdx.x; j < hi; j += MB) s += (double)expf(lps[j]);
    s = RD(tmp).Sum(s);
    if (threadIdx.x == 0) part_c[blockIdx.x] = s;
}

/* The first position of chunk c whose inclusive running sum (from `before`, over the terms term(j))
   exceeds `target` (strictly, `strict`, else reaches it); INT32_MAX when none. One block: the chunk's
   terms staged in shared memory, each thread's run of PER summed, a block scan, then each run walked. */
template <typename Term>
__device__ int32_t chunk_crossing(int c, int V, double before, double target, bool strict, Term term) {
    typedef cub::BlockScan<double, MB> SD;
    typedef cub::BlockReduce<int32_t, MB> RI;
    __shared__ union {
        typename SD::TempStorage s;
        typename RI::TempStorage r;
    } sh;
    __shared__ double t_sh[MB * (PER + 1)]; /* [MB][PER + 1]: a thread's run, padded against bank conflicts */
    const int lo = c * CHUNK, hi = min(V, lo + CHUNK);
    for (int k = 0; k < PER; k++) { /* coalesced: element lo + k * MB + t is run (k * MB + t) / PER's */
        const int e = k * MB + threadIdx.x, j = lo + e;
        t_sh[(e / PER) * (PER + 1) + e % PER] = j < hi ? term(j) : 0.0;
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
        if (strict ? target < acc : target <= acc) {
            hit = lo + threadIdx.x * PER + k;
            break;
        }
    }
    return RI(sh.r).Reduce(hit, min_op()); /* valid in thread 0 */
}

/* The cut: every filter as a prefix length of the sorted order (lps f32 [V] descending), m->L. top_p: L is
   the first tie-group start j whose mass above (exclusive) reaches top_p * total; the positions with mass
   above >= cut are [j0, V), j0 one past the first position whose inclusive mass reaches the cut. */
__global__ void __launch_bounds__(MB) sample_cut(const float *lps, int V, const double *part_c_g, int nb, float top_p,
                                                 int use_min_p, float log_min_p, int keep_n, int top_k,
                                                 sample_meta *m) {
    typedef cub::BlockReduce<int32_t, MB> RI;
    __shared__ typename RI::TempStorage tmp;
    __shared__ int c_sh;
    __shared__ double before_sh, cut_sh;
    __shared__ int32_t j0_sh;
    if (!m->ok) return;
    int L = V;
    if (top_p > 0.0f && top_p < 1.0f) {
        __shared__ double c_parts[STAGED];
        const double *part_c = stage_parts(part_c_g, nb, c_parts);
        if (threadIdx.x == 0) {
            double total = 0.0, run = 0.0;
            for (int c = 0; c < nb; c++) total += part_c[c];
            const double cut = (double)top_p * total;
            int c = 0;
            while (c < nb && !(cut <= run + part_c[c])) run += part_c[c++];
            c_sh = c, before_sh = run, cut_sh = cut;
        }
        __syncthreads();
        int32_t j0 = V; /* no position's mass above reaches the cut: nothing dropped */
        if (cut_sh <= 0.0) j0 = 0;
        else if (c_sh < nb) {
            const int32_t jin = chunk_crossing(c_sh, V, before_sh, cut_sh, false, mass_term{lps});
            if (threadIdx.x == 0) j0_sh = jin == INT32_MAX ? V : jin + 1; /* rounding: none inside, none dropped */
            __syncthreads();
            j0 = j0_sh;
        }
        /* the first tie-group start at or after j0 */
        int32_t start = V;
        for (int32_t w0 = j0; w0 < V; w0 += MB) {
            const int32_t j = w0 + (int32_t)threadIdx.x;
            int32_t f = (j < V && (j == 0 || lps[j] != lps[j - 1])) ? j : V;
            f = RI(tmp).Reduce(f, min_op());
            if (threadIdx.x == 0) j0_sh = f;
            __syncthreads();
            start = j0_sh;
            __syncthreads();
            if (start < V) break;
        }
        L = start;
    }
    if (threadIdx.x != 0) return;
    if (use_min_p) { /* the positions with lps >= max + log(min_p): a prefix, found by bisection */
        const float cut = lps[0] + log_min_p;
        int32_t lo = 0, hi = V; /* lps[< lo] >= cut, lps[>= hi] < cut */
        while (lo < hi) {
            const int32_t mid = lo + (hi - lo) / 2;
            if (lps[mid] >= cut) lo = mid + 1;
            else hi = mid;
        }
        int32_t first = lo;
        if (first < keep_n) first = keep_n > V ? V : keep_n;
        if (first < L) L = first;
    }
    if (top_k > 0 && top_k < L) L = top_k;
    m->L = L;
}

/* keep u8 [V]: the first m->L ids of the sorted order (idss i32 [V]). */
__global__ void sample_mark(const int32_t *idss, int V, const sample_meta *m, uint8_t *keep) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < V && m->ok && j < m->L) keep[idss[j]] = 1;
}

/* With a filter: each chunk's draw weight over its kept ids, part_w [nb], and its last kept finite id,
   part_last [nb]. lp f32 [V] in id order. */
__global__ void __launch_bounds__(MB) sample_chunk_weights(const float *lp, const uint8_t *keep, int V,
                                                           const sample_meta *m, float inv_t, double *part_w,
                                                           int32_t *part_last) {
    typedef cub::BlockReduce<double, MB> RD;
    typedef cub::BlockReduce<int32_t, MB> RI;
    __shared__ union {
        typename RD::TempStorage d;
        typename RI::TempStorage i;
    } sh;
    if (!m->ok) return;
    const float top = m->mx - m->lse;
    const int lo = blockIdx.x * CHUNK, hi = min(V, lo + CHUNK);
    double w = 0.0;
    int32_t last = -1;
    for (int i = lo + threadIdx.x; i < hi; i += MB)
        if (keep[i] && lp[i] > -INFINITY) w += draw_weight(lp[i], top, inv_t), last = i;
    w = RD(sh.d).Sum(w);
    __syncthreads();
    last = RI(sh.i).Reduce(last, max_op());
    if (threadIdx.x == 0) part_w[blockIdx.x] = w, part_last[blockIdx.x] = last;
}

/* The draw: the first kept id whose inclusive weight exceeds u * total, walking ids in order. One block:
   the chunk sums added in order find the chunk, which is then walked. The weights come from lp f32 [V]
   and keep u8 [V] with a filter, else from the logits x (stride xs) themselves. When rounding leaves the
   target at the top (no crossing), the last kept finite id, as the host does. */
__global__ void __launch_bounds__(MB) sample_draw(const float *x, int64_t xs, const float *lp, const uint8_t *keep,
                                                  int V, const double *part_w_g, const int32_t *part_last_g, int nb,
                                                  const sample_meta *m, float inv_t, double u, int32_t *tok) {
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
    const int32_t pick = chunk_crossing(c_sh, V, before_sh, target_sh, true,
                                        draw_term{x, xs, lp, keep, lse, m->mx - lse, inv_t});
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
    /* a filter on: the sorted order is needed (else every finite token is kept, and no sort) */
    const int use_top_p = p->top_p > 0.0f && p->top_p < 1.0f, use_min_p = p->min_p != 0.0f;
    const int filter = use_top_p || use_min_p || (p->top_k > 0 && p->top_k < V);
    const int nb = (V + CHUNK - 1) / CHUNK;
    size_t cub_bytes = 0;
    if (filter &&
        cub::DeviceRadixSort::SortPairsDescending(NULL, cub_bytes, (const float *)NULL, (float *)NULL,
                                                  (const int32_t *)NULL, (int32_t *)NULL, V, 0, 32, st) != cudaSuccess)
        return mlxn_fail(MLXN_ERR_DEVICE, "cuda: sample: sizing the sort's scratch failed");
    /* scratch: per chunk [nb] best, exp sums, draw weights, top_p masses, last ids; the meta; with a filter
       lp, ids, lps, idss f32/i32 [V], keep u8 [V] and the sort's own */
    const size_t fv = align256((size_t)V * 4), bv = align256((size_t)V), pc = align256((size_t)nb * 8);
    const size_t o_best = 0, o_sum = pc, o_w = 2 * pc, o_c = 3 * pc, o_last = 4 * pc, o_meta = 5 * pc,
                 o_lp = o_meta + 256, o_ids = o_lp + fv, o_lps = o_ids + fv, o_idss = o_lps + fv, o_keep = o_idss + fv,
                 o_cub = o_keep + bv, bytes = filter ? o_cub + cub_bytes : o_lp;
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, cu_ctx(s)->index) == cudaSuccess) {
        uint64_t keep_all = UINT64_MAX; /* see the top of the file */
        (void)cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all);
    }
    char *w = NULL;
    MLXN_TRY(cu_scratch(s, op, bytes, (void **)&w));
    arg_best *part_best = (arg_best *)(w + o_best);
    double *part_sum = (double *)(w + o_sum), *part_w = (double *)(w + o_w), *part_c = (double *)(w + o_c);
    int32_t *part_last = (int32_t *)(w + o_last);
    sample_meta *m = (sample_meta *)(w + o_meta);
    float *lp = filter ? (float *)(w + o_lp) : NULL, *lps = filter ? (float *)(w + o_lps) : NULL;
    int32_t *ids = filter ? (int32_t *)(w + o_ids) : NULL, *idss = filter ? (int32_t *)(w + o_idss) : NULL;
    uint8_t *keep = filter ? (uint8_t *)(w + o_keep) : NULL;
    const float inv_t = (float)(1.0 / (double)p->temperature);
    sample_chunk_best<<<nb, MB, 0, st>>>(x, xs, V, part_best);
    mlxn_status r = cu_launched(s, op, "sample_chunk_best");
    if (r == MLXN_OK) {
        sample_chunk_expsum<<<nb, MB, 0, st>>>(x, xs, V, part_best, nb, part_sum, m, tok);
        r = cu_launched(s, op, "sample_chunk_expsum");
    }
    if (r == MLXN_OK) {
        sample_chunk_lp<<<nb, MB, 0, st>>>(x, xs, V, part_sum, nb, m, lp, ids, keep, inv_t, part_w, part_last);
        r = cu_launched(s, op, "sample_chunk_lp");
    }
    if (filter) {
        if (r == MLXN_OK) {
            cudaError_t e = cub::DeviceRadixSort::SortPairsDescending(w + o_cub, cub_bytes, lp, lps, ids, idss, V, 0,
                                                                      32, st);
            r = cu_check(e, op, "cub::DeviceRadixSort", cu_ctx(s)->index);
        }
        if (r == MLXN_OK && use_top_p) {
            sample_chunk_mass<<<nb, MB, 0, st>>>(lps, V, m, part_c);
            r = cu_launched(s, op, "sample_chunk_mass");
        }
        if (r == MLXN_OK) {
            const float log_min_p = use_min_p ? logf(p->min_p) : 0.0f;
            const int keep_n = p->min_tokens_to_keep > 1 ? p->min_tokens_to_keep : 1;
            sample_cut<<<1, MB, 0, st>>>(lps, V, part_c, nb, use_top_p ? p->top_p : 0.0f, use_min_p, log_min_p,
                                         keep_n, p->top_k, m);
            r = cu_launched(s, op, "sample_cut");
        }
        if (r == MLXN_OK) {
            sample_mark<<<(V + MB - 1) / MB, MB, 0, st>>>(idss, V, m, keep);
            r = cu_launched(s, op, "sample_mark");
        }
        if (r == MLXN_OK) {
            sample_chunk_weights<<<nb, MB, 0, st>>>(lp, keep, V, m, inv_t, part_w, part_last);
            r = cu_launched(s, op, "sample_chunk_weights");
        }
    }
    if (r == MLXN_OK) {
        const double u = mlxn_sample_uniform(p->seed, p->counter);
        sample_draw<<<1, MB, 0, st>>>(x, xs, lp, keep, V, part_w, part_last, nb, m, inv_t, u, tok);
        r = cu_launched(s, op, "sample_draw");
    }
    cu_scratch_free(s, w);
    return r;
}
