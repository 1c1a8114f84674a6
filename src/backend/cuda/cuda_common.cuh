/* Shared by every CUDA kernel file (C++ only, never included from C):
 * the per-stream state, the device view of a tensor (a strided [..., D]
 * description passed to kernels by value), float loads/stores for the
 * f32/f16/bf16 dtypes, warp/block reductions, launch checks and
 * stream-ordered scratch memory.
 *
 * Op entry points (extern "C", declared in cuda_ops.h) follow one pattern:
 * cu_begin() selects the stream's GPU, the kernels are launched on the
 * stream, and cu_launched() turns a launch error into a status carrying
 * CUDA's own text. Execution errors surface at the next stream sync. */
#ifndef MLXN_CUDA_COMMON_CUH
#define MLXN_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "backend/backend.h"
#include "core/internal.h"
}

#include "backend/cuda/cu_blas.cuh"

/* ---- per-stream state --------------------------------------------------- */

/* Device-side argument errors (a bad embedding id, a KV slot out of
 * range): values the host never sees before the kernel runs. The first
 * one a stream's kernels meet is recorded in `err` and reported by the
 * next stream sync or download, which clears it. */
enum { CU_ERR_NONE = 0, CU_ERR_EMBEDDING_ID, CU_ERR_QEMBEDDING_ID, CU_ERR_KV_SLOT, CU_ERR_KV2_SLOT,
       CU_ERR_ROPE_KV_SLOT };

/* Pinned staging for uploads: two halves of CU_STAGE_BYTES, so the host
 * fills one while the copy engine drains the other (an upload of at most
 * 1 KB is drained by a kernel instead: cuda_runtime.cu). */
#define CU_STAGE_BYTES ((size_t)4 << 20)

/* Switches from the environment, read once when the stream is made (a
 * device's default stream: when the device is opened), so no op reads the
 * environment per call. A test or a timing run that changes one makes a
 * new stream (or opens the device again) for it to take effect. */
typedef struct cu_knobs {
    int pdl_off;          /* MLXN_CUDA_PDL=0: no programmatic dependent launch */
    int tq_simple;        /* MLXN_CUDA_TQ_SIMPLE=1: tq_sdpa always on the f32 kernel */
    int sdpa_simple;      /* MLXN_CUDA_SDPA_SIMPLE=1: sdpa always on the exact f32 kernel */
    int64_t qmm_min_rows; /* MLXN_CUDA_QMM_MIN_ROWS: x rows from which quantized_matmul takes the
                             bf16 GEMM path (0 = unset: the measured defaults, cu_qmm.cu) */
    int64_t qmm_slab;     /* MLXN_CUDA_QMM_SLAB_ELEMS: weights per dequantized block (0 = unset) */
    int qmv_mma;          /* MLXN_CUDA_QMV_MMA: 0 = 4-bit mat-vecs on the f32 kernels, not the tensor
                             cores (cu_qmv_mma.cu); 2 / 3 / 7 force a launch shape (8 / 4 / 6 warps);
                             4 = 3..8 x rows on the one-row layout's kernel (comparisons); 6 / 8 = the
                             measured choice without the 16- / 6-warp one-row launch (comparisons);
                             1 (unset) = measured choice */
    int qmv_bits_off;     /* MLXN_CUDA_QMV_BITS=0: one-row mat-vecs but 4-bit g64 / g128 on the f32 kernels, not
                             the tensor cores (cu_qmv_mma_bits.cu; comparisons) */
    int fuse_off;         /* MLXN_CUDA_FUSE=0: quantized_matmul_fused runs its parts apart (comparisons) */
    int64_t fa_cluster;   /* MLXN_CUDA_FA_CLUSTER: the most keys per block for which split decode attention
                             merges its splits inside a thread-block cluster (cu_attn_flash.cu); 0 = off;
                             -1 (unset) = the measured default */
    int qmv_t2;           /* MLXN_CUDA_QMV_T2: one-row mat-vec blocks of two row tiles (cu_qmv_mma.cu):
                             -1 (=0) never, 1 / 2 (=1 / =2) always, 4 / 5 blocks per SM, 3 (=3) always
                             as blocks of two warps (comparisons, tests), 0 (unset) the measured rule */
    int qmv_w2_off;       /* MLXN_CUDA_QMV_W2=0: the rule above never picks blocks of two warps (comparisons) */
    int attn_pf_off;      /* MLXN_CUDA_ATTN_PREFETCH=0: decode attention (bf16/f16 caches and TurboQuant's
                             tensor-core kernel) prefetches no cache rows into the L2 before its
                             programmatic wait (comparisons) */
    int tq_split;         /* MLXN_CUDA_TQ_SPLIT: TurboQuant's split-dims decode kernel (cu_tq_attention_split.cu)
                             where it fits: 1 / 2 = 8 / 16 keys per score warp always (byte codes at head
                             dim 256: 8), and byte codes at head dim 128 only so; 0 (=0) = tq_attn_mma
                             instead (comparisons, tests); -1 (unset) = the measured rule */
    int reader_copy;      /* MLXN_CUDA_READER_COPY=1: mlxn_reader reads every size with a device-to-host
                             copy, not small ones with a kernel (comparisons) */
    int fa_decode_off;    /* MLXN_CUDA_FA_DECODE=0: one-row decode attention on the tile kernel, never the
                             one-row kernel (cu_attn_decode.cu; comparisons, tests) */
    int tiled_off;        /* MLXN_CUDA_TILED=0: mlxn_quantized_tile declines, so a model's 4-bit weights stay in
                             MLX's row layout (cu_quant_tile.cu; comparisons) */
    int upload_copy;      /* MLXN_CUDA_UPLOAD_COPY=1: staged uploads of every size by a host-to-device copy,
                             not small ones by a kernel (cuda_runtime.cu; comparisons) */
    int like;             /* MLXN_CUDA_LIKE=80 / 86 / 89 (or sm80 ...): choose kernels as on that older
                             card (tests on a newer one): its shared memory limits, no programmatic
                             launch, no clusters (mlxn_cuda_stream_create); 0 (unset) = the card itself */
} cu_knobs;

/* Kernels whose dynamic shared memory limit a stream remembers (more are
 * looked up each call, which is only slower). */
enum { CU_SMEM_SLOTS = 64 };

typedef struct cu_stream {
    cudaStream_t s;
    cublasHandle_t blas; /* created on the first dense matmul (cuBLAS init costs ~ms) */
    cu_blas_api blas_api; /* cuBLAS entry points, loaded with it (cu_blas.cuh) */
    int index;           /* the GPU ordinal */
    /* [4] {kind, index, value, bound}: mapped pinned host memory, written
     * by kernels through err_dev and read by the host after a sync without
     * a copy (so a sync costs no extra transfer) */
    long long *err_host, *err_dev;
    unsigned char *stage;     /* [2 * CU_STAGE_BYTES] pinned, made on the first staged upload */
    unsigned char *stage_dev; /* stage as kernels address it (pinned memory is mapped), or NULL */
    cudaEvent_t stage_ev[2];  /* the copy (or load kernel) out of each half has finished */
    int stage_used[2];
    void *qmm_buf;       /* quantized mat-mat scratch (bf16 x and W, cu_qmm.cu), kept between calls */
    size_t qmm_cap;      /* its bytes */
    int pdl;             /* programmatic dependent launch (cu_launch): sm_90+, unless MLXN_CUDA_PDL=0 */
    int clusters;        /* thread-block clusters with distributed shared memory: sm_90+ */
    cu_knobs knobs;      /* the environment's switches, read when the stream was made */
    /* device attributes, read when the stream was made (launch shapes use them every call) */
    int sms;             /* multiprocessors */
    int smem_optin;      /* dynamic shared memory one block may opt in to (bytes) */
    int smem_per_sm;     /* shared memory per multiprocessor (bytes) */
    /* [smem_n] kernels and the dynamic shared memory limit each is known to
     * have (cu_smem_allow) */
    const void *smem_fn[CU_SMEM_SLOTS];
    int smem_max[CU_SMEM_SLOTS];
    int smem_static[CU_SMEM_SLOTS]; /* and each one's static shared memory (bytes) */
    int smem_n;
    /* [occ_n] occupancy answers (cu_occupancy, cu_cluster_occupancy):
     * kernel, threads, dynamic shared memory, cluster size (0: blocks per
     * multiprocessor asked) -> the answer */
    const void *occ_fn[CU_SMEM_SLOTS];
    int occ_threads[CU_SMEM_SLOTS], occ_blocks[CU_SMEM_SLOTS], occ_cluster[CU_SMEM_SLOTS];
    size_t occ_smem[CU_SMEM_SLOTS];
    int occ_n;
    int capturing;       /* a graph capture is open (mlxn_cuda_graph_begin .. _end) */
    void *tq_buf;        /* tq_sdpa's partials scratch (cu_tq_attention.cu), kept between uncaptured calls */
    size_t tq_cap;       /* its bytes */
} cu_stream;

static inline cu_stream *cu_ctx(mlxn_stream *s) { return (cu_stream *)s->ctx; }

/* cu_launch_cluster on the backend's stream itself (for the runtime's own
 * kernels, which hold a cu_stream rather than an mlxn_stream). */
template <typename... KArgs, typename... Args>
static inline void cu_launch_cluster_on(const cu_stream *c, unsigned cluster_x, void (*kernel)(KArgs...), dim3 grid,
                                        dim3 block, size_t smem, Args &&...args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->s;
    cudaLaunchAttribute attr[2];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = c->pdl;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    if (cluster_x > 1) {
        attr[1].id = cudaLaunchAttributeClusterDimension;
        attr[1].val.clusterDim.x = cluster_x, attr[1].val.clusterDim.y = 1, attr[1].val.clusterDim.z = 1;
        cfg.numAttrs = 2;
    }
    (void)cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...); /* errors: cu_launched */
}
/* cu_launch (below) with the grid's x cut into thread-block clusters of
 * cluster_x blocks (sm_90+, cu_stream.clusters; 1: no clusters). */
template <typename... KArgs, typename... Args>
static inline void cu_launch_cluster(mlxn_stream *s, unsigned cluster_x, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                                     size_t smem, Args &&...args) {
    cu_launch_cluster_on(cu_ctx(s), cluster_x, kernel, grid, block, smem, static_cast<Args &&>(args)...);
}
/* Launch a kernel on the session's stream with programmatic dependent
 * launch where the GPU has it (Hopper+): the kernel may be scheduled while
 * the kernel before it on the stream is still finishing, and in a captured
 * graph the edge between them becomes programmatic. Why: a decode step is
 * ~15 small dependent kernels per layer, and the gap between one kernel's
 * end and the next one's first instruction (plus the next one's weight
 * loads, which depend on nothing) was a large share of the step. Contract:
 * a kernel launched this way calls cu_pdl_wait() before it reads anything
 * an earlier kernel wrote or writes anything at all, and may call
 * cu_pdl_launch_dependents() to let its successor be scheduled early. */
template <typename... KArgs, typename... Args>
static inline void cu_launch(mlxn_stream *s, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                             Args &&...args) {
    cu_launch_cluster(s, 1, kernel, grid, block, smem, static_cast<Args &&>(args)...);
}
/* Wait until the kernels before this one on the stream have finished and
 * their writes are visible (a no-op without programmatic launch). */
__device__ __forceinline__ void cu_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
/* Let the next kernel on the stream be scheduled now (it still waits in
 * cu_pdl_wait for this one to finish). */
__device__ __forceinline__ void cu_pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* The activations, in the forms the CPU backend documents (activations.c),
 * shared by the elementwise kernels and the mat-vec's gated epilogue so
 * both give the same bits: silu(x) = x * sigmoid(x) with sigmoid via
 * 1 / (1 + exp(|x|)); gelu_erf(x) = x (1 + erf(x / sqrt 2)) / 2;
 * gelu_tanh(x) = x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2. */
enum { CU_ACT_SILU = 0, CU_ACT_GELU_ERF = 1, CU_ACT_GELU_TANH = 2 };
__device__ __forceinline__ float cu_act(int k, float x) {
    switch (k) {
    case CU_ACT_SILU: {
        float y = 1.0f / (1.0f + expf(fabsf(x)));
        return x * (x < 0.0f ? y : 1.0f - y);
    }
    case CU_ACT_GELU_ERF: return x * (1.0f + erff(x / 1.41421356237309505f)) * 0.5f;
    default: {
        float inner = 0.79788456080286536f * (x + 0.044715f * (x * x * x));
        return 0.5f * x * (1.0f + tanhf(inner));
    }
    }
}

/* The stream's cuBLAS handle, made (and the library loaded) on first use (cu_matmul.cu). */
mlxn_status cu_blas_handle(mlxn_stream *s, cublasHandle_t *h);

static inline mlxn_status cu_check(cudaError_t e, const char *op, const char *what, int index) {
    if (e == cudaSuccess) return MLXN_OK;
    return mlxn_fail(e == cudaErrorMemoryAllocation ? MLXN_ERR_OUT_OF_MEMORY : MLXN_ERR_DEVICE,
                     "cuda:%d: %s: %s failed: %s", index, op, what, cudaGetErrorString(e));
}

/* Let `fn` (a kernel) launch with `smem` bytes of dynamic shared memory
 * (cudaFuncAttributeMaxDynamicSharedMemorySize). Why remembered: setting
 * the attribute on every call was a runtime call per launch; the stream
 * keeps the limit each kernel is known to have and calls CUDA only when a
 * launch needs more. The limit belongs to the kernel on the device, not to
 * the stream, so it is only ever raised (another stream may have raised it
 * already; lowering it would break that stream's remembered limit); a
 * limit above what a launch uses only permits it. cuda_runtime.cu. */
mlxn_status cu_smem_allow_fn(mlxn_stream *s, const char *op, const void *fn, size_t smem);
template <typename... KArgs>
static inline mlxn_status cu_smem_allow(mlxn_stream *s, const char *op, void (*kernel)(KArgs...), size_t smem) {
    return cu_smem_allow_fn(s, op, (const void *)kernel, smem);
}
/* Whether `fn` with `smem` bytes of dynamic shared memory fits the card's
 * opt-in limit a block, its static shared memory counted (a dispatcher's
 * question before it picks a kernel). */
bool cu_smem_fits_fn(mlxn_stream *s, const void *fn, size_t smem);
template <typename... KArgs>
static inline bool cu_smem_fits(mlxn_stream *s, void (*kernel)(KArgs...), size_t smem) {
    return cu_smem_fits_fn(s, (const void *)kernel, smem);
}

/* How many blocks of `fn` (a kernel) one multiprocessor holds at
 * `threads` threads and `smem` bytes of dynamic shared memory
 * (cudaOccupancyMaxActiveBlocksPerMultiprocessor). Why remembered: launch
 * shapes that size themselves by it (flash attention's split of the keys)
 * asked the runtime on every call; the answer depends only on the kernel
 * and these two numbers, so the stream keeps it. cuda_runtime.cu. */
mlxn_status cu_occupancy_fn(mlxn_stream *s, const char *op, const void *fn, int threads, size_t smem, int *blocks);
template <typename... KArgs>
static inline mlxn_status cu_occupancy(mlxn_stream *s, const char *op, void (*kernel)(KArgs...), int threads, size_t smem,
                                       int *blocks) {
    return cu_occupancy_fn(s, op, (const void *)kernel, threads, smem, blocks);
}

/* How many clusters of `cluster_x` blocks of `fn` the GPU runs at once
 * (cudaOccupancyMaxActiveClusters; 0 when such a cluster cannot be
 * scheduled, e.g. on a partition with too few multiprocessors per GPC,
 * when the kernel was not built for sm_90 or later, or when the runtime
 * cannot say). Remembered as cu_occupancy's answers are. cuda_runtime.cu. */
int cu_cluster_occupancy_fn(mlxn_stream *s, const void *fn, int threads, size_t smem, int cluster_x);
template <typename... KArgs>
static inline int cu_cluster_occupancy(mlxn_stream *s, void (*kernel)(KArgs...), int threads, size_t smem, int cluster_x) {
    return cu_cluster_occupancy_fn(s, (const void *)kernel, threads, smem, cluster_x);
}

/* Select the stream's GPU (cheap when it already is current). */
static inline mlxn_status cu_begin(mlxn_stream *s, const char *op) {
    return cu_check(cudaSetDevice(cu_ctx(s)->index), op, "cudaSetDevice", cu_ctx(s)->index);
}

/* After a launch: a bad configuration or a sticky error becomes a status. */
static inline mlxn_status cu_launched(mlxn_stream *s, const char *op, const char *kernel) {
    return cu_check(cudaGetLastError(), op, kernel, cu_ctx(s)->index);
}

/* Stream-ordered scratch (cudaMallocAsync: plain device memory from the
 * stream's pool, freed in stream order, so no host sync is needed). */
static inline mlxn_status cu_scratch(mlxn_stream *s, const char *op, size_t bytes, void **p) {
    cudaError_t e = cudaMallocAsync(p, bytes ? bytes : 1, cu_ctx(s)->s);
    if (e == cudaSuccess) return MLXN_OK;
    (void)cudaGetLastError(); /* an allocation failure is not sticky: clear it */
    return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "cuda:%d: %s: could not allocate %zu bytes of scratch: %s",
                     cu_ctx(s)->index, op, bytes, cudaGetErrorString(e));
}
static inline void cu_scratch_free(mlxn_stream *s, void *p) {
    if (p) cudaFreeAsync(p, cu_ctx(s)->s);
}

/* Record a device-side argument error (the first one wins). err: the
 * stream's err_dev [4]. */
__device__ __forceinline__ void cu_report(long long *err, int kind, long long index, long long value,
                                          long long bound) {
    if (atomicCAS((unsigned long long *)err, 0ull, (unsigned long long)kind) == 0ull) {
        err[1] = index;
        err[2] = value;
        err[3] = bound;
        __threadfence_system();
    }
}

/* Device address of element 0 of a tensor. */
static inline void *cu_ptr(const mlxn_tensor *t) { return (char *)t->buf->ptr + t->offset; }

/* ---- tensors as kernels see them ---------------------------------------- */

/* A tensor of up to MLXN_MAX_DIMS dims: base pointer, dtype and strides in
 * elements. A 0-d tensor is described as [1]. Passed by value. */
typedef struct cu_view {
    const char *p;
    int dt;                         /* mlxn_dtype */
    int nd;                         /* >= 1 */
    int64_t shape[MLXN_MAX_DIMS];
    int64_t st[MLXN_MAX_DIMS];      /* elements */
} cu_view;

static inline cu_view cu_view_of(const mlxn_tensor *t) {
    cu_view v;
    v.p = (const char *)cu_ptr(t);
    v.dt = (int)t->dtype;
    v.nd = t->ndim ? t->ndim : 1;
    for (int i = 0; i < MLXN_MAX_DIMS; i++) {
        v.shape[i] = i < t->ndim ? t->shape[i] : 1;
        v.st[i] = i < t->ndim ? t->strides[i] : 1;
    }
    return v;
}

/* Rows of a [..., D] view (product of the leading dims) and D. */
static inline int64_t cu_rows(const cu_view &v) {
    int64_t n = 1;
    for (int i = 0; i < v.nd - 1; i++) n *= v.shape[i];
    return n;
}
static inline int64_t cu_last(const cu_view &v) { return v.shape[v.nd - 1]; }

/* The view is row-major contiguous. */
static inline bool cu_contig(const cu_view &v) {
    int64_t want = 1;
    for (int i = v.nd - 1; i >= 0; i--) {
        if (v.shape[i] != 1 && v.st[i] != want) return false;
        want *= v.shape[i];
    }
    return true;
}

/* Element offset of row r (row-major over the leading dims). */
__device__ __forceinline__ int64_t cu_row_off(const cu_view &v, int64_t r) {
    int64_t off = 0;
    for (int i = v.nd - 2; i >= 0; i--) {
        int64_t d = v.shape[i];
        int64_t q = r / d;
        off += (r - q * d) * v.st[i];
        r = q;
    }
    return off;
}

/* Element offset of flat (row-major) element index e. */
__device__ __forceinline__ int64_t cu_elem_off(const cu_view &v, int64_t e) {
    int64_t off = 0;
    for (int i = v.nd - 1; i >= 0; i--) {
        int64_t d = v.shape[i];
        int64_t q = e / d;
        off += (e - q * d) * v.st[i];
        e = q;
    }
    return off;
}

/* ---- float dtypes ------------------------------------------------------- */

__device__ __forceinline__ float cu_bf16_f32(uint16_t b) { return __uint_as_float((uint32_t)b << 16); }
__device__ __forceinline__ float cu_f16_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }

/* f32 -> bf16 exactly as mlxn_f32_to_bf16: NaN stays a quiet NaN with its
 * top bits, everything else rounds to nearest, ties to even. */
__device__ __forceinline__ uint16_t cu_f32_bf16(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
/* f32 -> f16, round to nearest even (the hardware conversion; NaN payloads
 * are not preserved bit for bit, which no op contract relies on). */
__device__ __forceinline__ uint16_t cu_f32_f16(float f) { return __half_as_ushort(__float2half_rn(f)); }

/* Element i of a float array of dtype dt (f32/f16/bf16). */
__device__ __forceinline__ float cu_load(const void *p, int dt, int64_t i) {
    switch (dt) {
    case MLXN_DTYPE_F16: return cu_f16_f32(((const uint16_t *)p)[i]);
    case MLXN_DTYPE_BF16: return cu_bf16_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}
__device__ __forceinline__ void cu_store(void *p, int dt, int64_t i, float v) {
    switch (dt) {
    case MLXN_DTYPE_F16: ((uint16_t *)p)[i] = cu_f32_f16(v); break;
    case MLXN_DTYPE_BF16: ((uint16_t *)p)[i] = cu_f32_bf16(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

/* ---- reductions ---------------------------------------------------------- */

__device__ __forceinline__ float cu_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over a block of blockDim.x threads (a multiple of 32, <= 1024);
 * every thread gets the result. sh: 32 floats of shared memory. */
__device__ __forceinline__ float cu_block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = cu_warp_sum(v);
    __syncthreads(); /* sh may still be read from a previous reduction */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    return cu_warp_sum(v);
}

/* The leading dims of a [..., D] view collapse to rows a single stride
 * (*ld, elements) apart: each dim longer than 1 steps by the next inner
 * such dim's stride times its length. */
static inline bool cu_rows_uniform(const cu_view &v, int64_t *ld) {
    int first = -1, prev = -1; /* innermost / last seen leading dim longer than 1 */
    for (int i = v.nd - 2; i >= 0; i--) {
        if (v.shape[i] == 1) continue;
        if (prev >= 0 && v.st[i] != v.st[prev] * v.shape[prev]) return false;
        if (first < 0) first = i;
        prev = i;
    }
    *ld = first >= 0 ? v.st[first] : v.shape[v.nd - 1];
    return true;
}

/* Copy any f32/f16/bf16 view into a contiguous f32 array (cu_elementwise.cu). */
mlxn_status cu_gather_f32(mlxn_stream *s, const char *op, const mlxn_tensor *t, float *dst);
/* Copy any f32/f16/bf16 view into a contiguous array of dtype dt. */
mlxn_status cu_gather_as(mlxn_stream *s, const char *op, const mlxn_tensor *t, mlxn_dtype dt, void *dst);

/* Grid size for n items at `per_block` items per block, capped (kernels
 * loop with a grid stride past the cap). */
static inline unsigned cu_blocks(int64_t n, int per_block) {
    int64_t b = (n + per_block - 1) / per_block;
    if (b < 1) b = 1;
    return (unsigned)(b > 65535 * 16 ? 65535 * 16 : b);
}

#endif
