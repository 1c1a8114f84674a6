/* Pieces shared by the tensor-core attention's two kernels: the tile
 * kernel (cu_attn_flash.cu: prefill, and decode where a block walks many
 * keys or D is 256/512) and the one-row decode kernel (cu_attn_decode.cu:
 * one query position, head dims 64/128, at most 256 keys per block). Their
 * arguments, the mma / ldmatrix / cp.async wrappers, the L2 prefetch before
 * the programmatic wait, and the merge of a cluster's splits. C++ only. */
#ifndef MLXN_CU_ATTN_FLASH_CUH
#define MLXN_CU_ATTN_FLASH_CUH

#include <math.h>
#include <stdint.h>

#include <cooperative_groups.h>

#include "backend/cuda/cu_attn.cuh"

/* FA_CLUSTER_KEYS: the most keys per split for which the splits merge in
 * a cluster (MLXN_CUDA_FA_CLUSTER overrides it), FA_CLUSTER_MAX the most
 * splits then (a portable cluster size) */
enum { FA_KT = 64, FA_MAX_SPLITS = 1024, FA_CLUSTER_KEYS = 256, FA_CLUSTER_MAX = 8 };

typedef struct fa_args {
    const char *q;              /* [B, Hq, Tq, D] any float dtype, element strides qs */
    int qdt;
    int qvec;                   /* q is f32 with 16-byte aligned, unit-stride rows (vector loads) */
    int64_t qs[4];
    const uint16_t *k, *v;      /* [B, Hkv, Tk, D] bf16/f16, strides ks/vs (inner 1) */
    int64_t ks[3], vs[3];
    int B, Hq, Hkv, G, Tq, Tk;  /* Tk: the capacity */
    float scale, softcap;
    int causal, window;
    const int32_t *kv_len;      /* NULL or [1] on the device */
    float *out;                 /* [B, Hq, Tq, D] contiguous */
    float *part;                /* S > 1: [B * Hkv][NT][S][ROWS][D + 4] (acc, then m, l; rows
                                   padded to 16 bytes for the combine's vector loads) */
    int NT, S, CH;              /* row tiles per kv head, splits, keys per split */
    int cl;                     /* S > 1 and the splits merge inside a cluster of S blocks (no part) */
    int pf;                     /* one query row (decode): prefetch the first K/V tile before the wait */
    int dch;                    /* the one-row decode kernel: 16-key chunks per warp (1 or 2) */
} fa_args;

__device__ __forceinline__ uint32_t fa_pack(float x0, float x1, bool bf) {
    if (bf) {
        __nv_bfloat162 h = __floats2bfloat162_rn(x0, x1);
        return *(uint32_t *)&h;
    }
    __half2 h = __floats2half2_rn(x0, x1);
    return *(uint32_t *)&h;
}
__device__ __forceinline__ float fa_unpack_lo(uint32_t u, bool bf) {
    return bf ? __uint_as_float(u << 16) : __half2float(__ushort_as_half((unsigned short)(u & 0xffffu)));
}
__device__ __forceinline__ float fa_unpack_hi(uint32_t u, bool bf) {
    return bf ? __uint_as_float(u & 0xffff0000u) : __half2float(__ushort_as_half((unsigned short)(u >> 16)));
}

/* c += a (16x16, row) * b (16x8, col), f32 accumulators. */
template <bool BF>
__device__ __forceinline__ void fa_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    if (BF)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Four 8 x 8 b16 matrices from shared memory, lanes 8m .. 8m + 7 giving the
 * row addresses of matrix m (16-byte aligned); lane l receives row l / 4,
 * elements 2 (l % 4) and 2 (l % 4) + 1 of each (.trans: the transposed
 * matrix), i.e. one mma fragment register per matrix, in one instruction
 * instead of one 32-bit (or two 16-bit) shared-memory loads per register. */
template <bool TRANS = false>
__device__ __forceinline__ void fa_ldsm4(uint32_t r[4], const void *row) {
    const unsigned sa = (unsigned)__cvta_generic_to_shared(row);
    if (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(sa)
                     : "memory");
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(sa)
                     : "memory");
}

/* 16 bytes global -> shared (sa: a shared-space address) without the
 * register file; and 16 zero bytes to shared */
__device__ __forceinline__ void fa_cp16(unsigned sa, const void *gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(sa), "l"(gmem));
}
__device__ __forceinline__ void fa_zero16(unsigned sa) {
    asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(sa), "r"(0) : "memory");
}

/* Decode (one query row per head), before the programmatic wait: an L2
 * prefetch of this block's first `keys` keys of K and V. Why: a decode
 * step's cache rows were written steps ago and have left the L2 (the
 * weights streamed through it since), so the first tile's copy after the
 * wait was a DRAM round trip on the step's serial path; now it overlaps
 * the kernel before (the q/k/v product). The key range is a hint: kv_len
 * is read before the wait (the kernel before may still write it, and it
 * writes the newest key); a prefetch changes no value, the range proper is
 * read after the wait. */
template <int D>
__device__ __forceinline__ void fa_prefetch_keys(const fa_args &a, int nth, int keys) {
    const int split = (int)(blockIdx.x % a.S), bh = (int)blockIdx.y, b = bh / a.Hkv, hk = bh % a.Hkv;
    int n = a.Tk;
    if (a.kv_len) n = min(max(*(const volatile int32_t *)a.kv_len, 0), a.Tk);
    int lo = split * a.CH;
    if (a.window > 0) lo = max(lo, n - a.window);
    const int hi = min(min(n, split * a.CH + a.CH), lo + keys);
    constexpr int LINES = D * 2 / 128; /* 128-byte lines per key row */
    for (int e = threadIdx.x; e < 2 * (hi - lo) * LINES; e += nth) {
        const int kv = e & 1, r = lo + (e >> 1) / LINES, c = ((e >> 1) % LINES) * 64; /* c: elements */
        const uint16_t *p = kv ? a.v + (int64_t)b * a.vs[0] + (int64_t)hk * a.vs[1] + (int64_t)r * a.vs[2] + c
                               : a.k + (int64_t)b * a.ks[0] + (int64_t)hk * a.ks[1] + (int64_t)r * a.ks[2] + c;
        asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
    }
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
/* The splits of one row tile are the blocks of one cluster (rank = split).
 * Each has parked its unnormalized rows Os [ROWS][D] (row stride D) with
 * their running maxima m_s and denominators l_s [ROWS] in its own shared
 * memory. After a cluster barrier each block merges a share of the tile's
 * outputs (rows r0 .. r0 + Rv - 1 of kv head (b, hk)), reading every
 * split's rows, maxima and denominators through distributed shared memory,
 * in split order (deterministic), and writes them normalized. Why: the
 * partials do not go through global memory to a second kernel
 * (fa_combine). Ends on a cluster barrier: the other blocks read this
 * one's shared memory until there. */
__device__ __forceinline__ void fa_cluster_merge(const fa_args &a, int D, const float *Os, const float *m_s,
                                                 const float *l_s, int r0, int Rv, int b, int hk, int split) {
    cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
    cluster.sync();
    for (int e = split * (int)blockDim.x + (int)threadIdx.x; e < Rv * D; e += a.S * (int)blockDim.x) {
        const int row = e / D, col = e % D;
        float M = -INFINITY;
        for (int j = 0; j < a.S; j++) M = fmaxf(M, *cluster.map_shared_rank(m_s + row, j));
        float L = 0.0f, sum = 0.0f;
        for (int j = 0; j < a.S; j++) {
            const float mj = *cluster.map_shared_rank(m_s + row, j);
            if (mj == -INFINITY) continue; /* an empty split */
            const float f = expf(mj - M);
            L += f * *cluster.map_shared_rank(l_s + row, j);
            sum += f * *cluster.map_shared_rank(Os + row * D + col, j);
        }
        const int rg = r0 + row, h = hk * a.G + rg / a.Tq, t = rg % a.Tq;
        a.out[(((int64_t)b * a.Hq + h) * a.Tq + t) * D + col] = sum * (L > 0.0f ? 1.0f / L : 0.0f); /* none: zeros */
    }
    cluster.sync();
}
#endif

/* The one-row decode kernel (cu_attn_decode.cu) in place of the tile
 * kernel, where it fits: one query position, head dim 64 or 128, at most 16
 * rows (query heads per kv head), at most FA_DEC_KEYS keys a block (and
 * more than 64 at head dim 128, where the tile kernel was faster), where
 * its shared memory fits the GPU's limit per block and (a cluster's
 * splits) its cluster fits the GPU; not with
 * MLXN_CUDA_FA_DECODE=0. a: the tile kernel's arguments with its splits
 * (S, CH, cl) chosen. *taken: whether it ran (then the status is the
 * launch's). */
enum { FA_DEC_KEYS = 256 };
mlxn_status fa_decode_launch(mlxn_stream *s, fa_args &a, int D, bool bf, bool *taken);

/* fa_combine over a's partials (S > 1 without a cluster), rows of ROWS. */
mlxn_status fa_combine_launch(mlxn_stream *s, const fa_args &a, int D, int ROWS);

#endif
