/* What the two TurboQuant attention kernels (cu_tq_attention.cu: f32 on the
 * CUDA cores, any shape; cu_tq_attention_mma.cu: decode on the tensor
 * cores) share: their argument block and the partials they write for
 * tq_attn_combine (per row and chunk: the running max, the denominator and
 * the unnormalized weighted value sum in the rotated domain). */
#ifndef MLXN_CU_TQ_ATTN_CUH
#define MLXN_CU_TQ_ATTN_CUH

#include "backend/cuda/cu_tq.cuh"

extern "C" {
#include "backend/cuda/cuda_tq.h"
}

typedef struct tqs_args {
    const float *q;      /* [Hq, Tq, D] at element strides qs (batch 1) */
    int64_t qs[3];
    const uint8_t *kc;   /* [Hkv, cap, krow] */
    const uint8_t *vc;   /* [Hkv, cap, vrow] */
    const float *kn;     /* [Hkv, cap] */
    const float *vn;     /* [Hkv, cap] */
    const float *signs;  /* [D] */
    int64_t krow, vrow;
    int kb, vb;
    int64_t G, Tq, cap;
    int D;
    float scale, softcap;
    int causal;
    int64_t window;
    int64_t pos;         /* used when pos_t is NULL */
    const int32_t *pos_t;
    int64_t chunk;       /* keys per block */
    int nchunks;
    int pf;              /* the tensor-core kernel prefetches its first codes before the programmatic wait */
    int compact;         /* tq_attn_mma: its merge's layout, 0..2 (set by its launch; tqm_front) */
    float *pm, *pl;      /* [Hq * Tq, nchunks]: chunk max, chunk denominator */
    float *pacc;         /* [Hq * Tq, nchunks, D]: chunk's unnormalized weighted value sum */
    float *out;          /* [Hq * Tq, D] contiguous */
} tqs_args;

/* The tensor-core decode kernel (cu_tq_attention_mma.cu). fits: whether
 * it takes this call (up to 16 query rows per kv head, head dim 64/128/256,
 * widths 4..8 for K and V; 2- and 3-bit codes stay on the f32 kernel) with
 * smem_optin bytes of shared memory a block (the device's opt-in limit).
 * chunk: keys per block for `span` keys over `hkv` kv heads on `sms`
 * multiprocessors. launch: grid (a.nchunks, hkv), writing a.pm/pl/pacc
 * (rotated back per chunk), then its own merge into a.out. */
bool cu_tq_attn_mma_fits(const tqs_args &a, int smem_optin);
int64_t cu_tq_attn_mma_chunk(int64_t span, int64_t hkv, int sms);
mlxn_status cu_tq_attn_mma_launch(mlxn_stream *s, const tqs_args &a, int64_t hkv);
/* tq_attn_mma_combine alone (programmatic launch): the merge of a.nchunks
 * partials per row, rotated back, into a.out; `rows` query rows. */
mlxn_status cu_tq_attn_mma_combine_launch(mlxn_stream *s, const tqs_args &a, int64_t rows);

/* The tensor-core decode kernel with the value dims split over the warps
 * (cu_tq_attention_split.cu), at head dim 128 or 256 for 4-bit keys and
 * values or byte codes (5..8 bits) for both. pick: 0 where it does not fit
 * this call (or knob = 0; byte codes at head dim 128 unless knob 1 / 2),
 * else its keys per score warp, 8 or 16 (byte codes at head dim 256: 8;
 * otherwise knob 1 / 2 force one; -1: the measured rule
 * for `span` keys over `hkv` kv heads on `sms` multiprocessors), 8 where
 * 16 would need more than smem_optin bytes of shared memory a block, 0
 * where 8 would too. chunk and launch as above, for that choice (the
 * merge is tq_attn_mma_combine). */
int cu_tq_attn_split_pick(const tqs_args &a, int64_t span, int64_t hkv, int sms, int knob, int smem_optin);
int64_t cu_tq_attn_split_chunk(int64_t span, int64_t hkv, int sms, int kpw);
mlxn_status cu_tq_attn_split_launch(mlxn_stream *s, const tqs_args &a, int64_t hkv, int kpw);

/* TurboQuant attention for prefill chunks (cu_tq_prefill.cu): the held
 * keys and values dequantized into bf16 in the rotated domain and the
 * dense tensor-core flash attention over them, for the op's whole call
 * (q, prm, out as mlxn_tq_sdpa). *taken false, and nothing queued, where
 * it does not apply: a device position, a head dim past 64..512, or a card
 * whose shared memory the flash kernel does not fit. */
mlxn_status cu_tq_sdpa_dense(mlxn_stream *s, const mlxn_tq_cache *c, const mlxn_tensor *q,
                             const mlxn_tq_sdpa_params *prm, mlxn_tensor *out, bool *taken);

#endif
