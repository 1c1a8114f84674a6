/* CUDA runtime glue: device selection, plain device allocations (never
 * managed memory), pinned host memory, copies, streams, device-side error
 * records and graphs. Errors come back as statuses that carry CUDA's own
 * error text.
 *
 * Two kinds of copies:
 *  - mlxn_buffer_write/read (no stream named): synchronize the whole device
 *    first (and a write again after: a pageable upload may still be in
 *    flight when cudaMemcpy returns). The library's streams are non-blocking
 *    (they do not order against the legacy default stream cudaMemcpy uses),
 *    so without that a read could overtake a kernel still writing the
 *    buffer, or a kernel read a buffer before its upload landed. Not the
 *    hot path.
 *  - stream uploads/downloads (the model runner's): queued in order on one
 *    stream, no device-wide wait. An upload goes through the stream's pinned
 *    staging buffer in 4 MiB halves (pageable memory cannot be DMA'd
 *    directly; with two halves the host's memcpy into one overlaps the copy
 *    engine draining the other), or straight from memory the caller got
 *    from mlxn_cuda_host_alloc. A staged upload of at most 1 KB (a decode
 *    step's block) is loaded by a kernel through the staging's mapping
 *    instead of copied: cheaper between two kernels. A download waits for
 *    the stream and then checks the stream's device-side error record. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_runtime.h"
}

static mlxn_status cuda_check(cudaError_t e, const char *what, int index) {
    if (e == cudaSuccess) return MLXN_OK;
    return mlxn_fail(e == cudaErrorMemoryAllocation ? MLXN_ERR_OUT_OF_MEMORY : MLXN_ERR_DEVICE,
                     "cuda:%d: %s failed: %s", index, what, cudaGetErrorString(e));
}

/* A kernel of this library, asked which architecture its loaded code was
 * compiled for. */
__global__ void cu_arch_probe() {}

/* The current device's kernels' architecture, major * 10 + minor (90: the
 * sm_90a build; 80: sm_80, as SASS on Ampere / Ada or as PTX the driver
 * compiled for a newer card), 0 when the build has nothing the device can
 * run (the CUDA error in *err when err is given). Why asked, not derived
 * from the card: the sm_90-only paths (programmatic launch, cluster
 * merges) are compiled out of the sm_80 code, which a Blackwell card
 * runs. */
static int code_arch(cudaError_t *err) {
    cudaFuncAttributes fa;
    const cudaError_t e = cudaFuncGetAttributes(&fa, cu_arch_probe);
    if (err) *err = e;
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* not left for the next check to find */
        return 0;
    }
    return fa.ptxVersion;
}

extern "C" mlxn_status mlxn_cuda_open(int index, char *name, size_t name_cap) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return mlxn_fail(MLXN_ERR_DEVICE, "cuda:%d: no CUDA device (%s); use --device cpu", index,
                         e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    if (index >= count)
        return mlxn_fail(MLXN_ERR_DEVICE, "cuda:%d: only %d CUDA device(s) present", index, count);
    cudaDeviceProp prop;
    MLXN_TRY(cuda_check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties", index));
    /* the kernels use bf16 tensor-core products and cp.async, and are built for sm_90a and sm_80 (whose
     * PTX the driver compiles for a newer card): an older card would fail at its first launch */
    if (prop.major < 8)
        return mlxn_fail(MLXN_ERR_DEVICE,
                         "cuda:%d (%s) has compute capability %d.%d; the CUDA backend needs 8.0 or newer (Ampere, "
                         "Ada, Hopper, Blackwell); use --device cpu",
                         index, prop.name, prop.major, prop.minor);
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    cudaError_t e_code = cudaSuccess;
    const int code = code_arch(&e_code);
    if (code <= 0)
        return mlxn_fail(MLXN_ERR_DEVICE, "cuda:%d (%s, sm_%d%d): this build has no kernels for it (%s); use --device cpu",
                         index, prop.name, prop.major, prop.minor, cudaGetErrorString(e_code));
    if (code / 10 == prop.major)
        snprintf(name, name_cap, "cuda:%d (%s, sm_%d%d)", index, prop.name, prop.major, prop.minor);
    else /* a newer card running the sm_80 build's PTX, compiled by the driver */
        snprintf(name, name_cap, "cuda:%d (%s, sm_%d%d, kernels from sm_%d code)", index, prop.name, prop.major,
                 prop.minor, code);
    return MLXN_OK;
}

extern "C" mlxn_status mlxn_cuda_malloc(int index, size_t bytes, void **ptr) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    cudaError_t e = cudaMalloc(ptr, bytes);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "cuda:%d: out of device memory: needed %zu bytes, %zu of %zu free",
                         index, bytes, free_b, total_b);
    }
    return cuda_check(e, "cudaMalloc", index);
}

extern "C" void mlxn_cuda_free(int index, void *ptr) {
    if (cudaSetDevice(index) == cudaSuccess) {
        cudaDeviceSynchronize(); /* a queued kernel may still use it */
        cudaFree(ptr);
    }
}

extern "C" mlxn_status mlxn_cuda_memcpy_h2d(int index, void *dst, const void *src, size_t n) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    MLXN_TRY(cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (before upload)", index));
    MLXN_TRY(cuda_check(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice), "cudaMemcpy (upload)", index));
    /* From pageable memory cudaMemcpy returns once the bytes are staged,
     * before the DMA into dst has finished, and kernels on the library's
     * non-blocking streams do not wait for the legacy stream: without this,
     * a kernel queued next could read the old contents (seen on a GPU
     * shared with other processes, whose copies delay ours). */
    return cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (after upload)", index);
}

extern "C" mlxn_status mlxn_cuda_memcpy_d2h(int index, void *dst, const void *src, size_t n) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    MLXN_TRY(cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (before download)", index));
    return cuda_check(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost), "cudaMemcpy (download)", index);
}

extern "C" mlxn_status mlxn_cuda_host_alloc(int index, size_t bytes, void **ptr) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    cudaError_t e = cudaMallocHost(ptr, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        *ptr = NULL;
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "cuda:%d: could not allocate %zu bytes of pinned host memory: %s",
                         index, bytes, cudaGetErrorString(e));
    }
    return MLXN_OK;
}

extern "C" void mlxn_cuda_host_free(int index, void *ptr) {
    if (ptr && cudaSetDevice(index) == cudaSuccess) cudaFreeHost(ptr);
}

/* A positive integer from the environment, else 0 (unset or not one). */
static int64_t env_count(const char *name) {
    const char *e = getenv(name);
    if (!e || !*e) return 0;
    char *end = NULL;
    long long v = strtoll(e, &end, 10);
    return end && *end == '\0' && v >= 1 ? (int64_t)v : 0;
}

/* The switches (cu_knobs in cuda_common.cuh; docs/architecture.md lists
 * them), read once per stream. */
static void read_knobs(cu_knobs *k) {
    const char *pdl = getenv("MLXN_CUDA_PDL"), *tq = getenv("MLXN_CUDA_TQ_SIMPLE"),
               *sdpa = getenv("MLXN_CUDA_SDPA_SIMPLE");
    k->pdl_off = pdl && pdl[0] == '0';
    k->tq_simple = tq && tq[0] == '1';
    k->sdpa_simple = sdpa && !strcmp(sdpa, "1");
    k->qmm_min_rows = env_count("MLXN_CUDA_QMM_MIN_ROWS");
    k->qmm_slab = env_count("MLXN_CUDA_QMM_SLAB_ELEMS");
    const char *qmv = getenv("MLXN_CUDA_QMV_MMA");
    const int64_t qv = env_count("MLXN_CUDA_QMV_MMA");
    k->qmv_mma = qmv && qmv[0] == '0' ? 0 : qv ? (int)qv : 1;
    const char *qb = getenv("MLXN_CUDA_QMV_BITS");
    k->qmv_bits_off = qb && qb[0] == '0';
    const char *fuse = getenv("MLXN_CUDA_FUSE");
    k->fuse_off = fuse && fuse[0] == '0';
    const char *fc = getenv("MLXN_CUDA_FA_CLUSTER");
    const int64_t fcn = env_count("MLXN_CUDA_FA_CLUSTER");
    k->fa_cluster = fc && fc[0] == '0' ? 0 : fcn ? fcn : -1;
    const char *tsp = getenv("MLXN_CUDA_TQ_SPLIT");
    const int64_t tspn = env_count("MLXN_CUDA_TQ_SPLIT");
    k->tq_split = tsp && tsp[0] == '0' ? 0 : tspn ? (int)tspn : -1;
    const char *t2 = getenv("MLXN_CUDA_QMV_T2");
    const int64_t t2n = env_count("MLXN_CUDA_QMV_T2");
    k->qmv_t2 = t2 && t2[0] == '0' ? -1 : t2n >= 3 ? 3 : (int)t2n;
    const char *w2 = getenv("MLXN_CUDA_QMV_W2");
    k->qmv_w2_off = w2 && w2[0] == '0';
    const char *apf = getenv("MLXN_CUDA_ATTN_PREFETCH");
    k->attn_pf_off = apf && apf[0] == '0';
    const char *rc = getenv("MLXN_CUDA_READER_COPY");
    k->reader_copy = rc && rc[0] == '1';
    const char *fd = getenv("MLXN_CUDA_FA_DECODE");
    k->fa_decode_off = fd && fd[0] == '0';
    const char *tl = getenv("MLXN_CUDA_TILED");
    k->tiled_off = tl && tl[0] == '0';
    const char *uc = getenv("MLXN_CUDA_UPLOAD_COPY");
    k->upload_copy = uc && uc[0] == '1';
    const char *like = getenv("MLXN_CUDA_LIKE");
    if (like && (like[0] == 's' || like[0] == 'S') && (like[1] == 'm' || like[1] == 'M')) like += like[2] == '_' ? 3 : 2;
    k->like = like ? atoi(like) : 0;
}

/* MLXN_CUDA_LIKE: an older card's limits (cu_knobs.like), so that a test on
 * a newer one runs the kernels that card would run. Only ever lowers what
 * the card has; an unknown value changes nothing. Shared memory figures
 * are the CUDA programming guide's per compute capability (opt-in per
 * block / per multiprocessor): 8.0 163 / 164 KB, 8.6 and 8.9 99 / 100 KB. */
static void apply_like(cu_stream *c) {
    int optin = 0, per_sm = 0;
    switch (c->knobs.like) {
    case 80: optin = 163 * 1024, per_sm = 164 * 1024; break;
    case 86:
    case 89: optin = 99 * 1024, per_sm = 100 * 1024; break;
    default: return;
    }
    if (optin < c->smem_optin) c->smem_optin = optin;
    if (per_sm < c->smem_per_sm) c->smem_per_sm = per_sm;
    c->pdl = 0;      /* sm_90+ */
    c->clusters = 0; /* sm_90+ */
}

extern "C" mlxn_status mlxn_cuda_stream_create(int index, void **stream) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    cu_stream *c = (cu_stream *)calloc(1, sizeof *c);
    if (!c) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "cuda:%d: out of host memory for a stream", index);
    c->index = index;
    read_knobs(&c->knobs);
    const int code = code_arch(NULL);
    /* by the code loaded, not the card: sm_80 code run on a newer card (its PTX compiled by the driver, as
     * on Blackwell) has no programmatic waits and no cluster merges in its kernels */
    c->pdl = code >= 90 && !c->knobs.pdl_off;
    c->clusters = code >= 90;
    mlxn_status st = cuda_check(cudaDeviceGetAttribute(&c->sms, cudaDevAttrMultiProcessorCount, index),
                                "cudaDeviceGetAttribute (multiprocessors)", index);
    if (st == MLXN_OK)
        st = cuda_check(cudaDeviceGetAttribute(&c->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, index),
                        "cudaDeviceGetAttribute (shared memory per block)", index);
    if (st == MLXN_OK)
        st = cuda_check(cudaDeviceGetAttribute(&c->smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, index),
                        "cudaDeviceGetAttribute (shared memory per multiprocessor)", index);
    if (st != MLXN_OK) {
        free(c);
        return st;
    }
    apply_like(c);
    st = cuda_check(cudaStreamCreateWithFlags(&c->s, cudaStreamNonBlocking), "cudaStreamCreate", index);
    if (st == MLXN_OK) {
        st = cuda_check(cudaHostAlloc((void **)&c->err_host, 4 * sizeof(long long), cudaHostAllocMapped),
                        "cudaHostAlloc (error record)", index);
        if (st == MLXN_OK) {
            c->err_host[0] = c->err_host[1] = c->err_host[2] = c->err_host[3] = 0;
            st = cuda_check(cudaHostGetDevicePointer((void **)&c->err_dev, c->err_host, 0),
                            "cudaHostGetDevicePointer (error record)", index);
        }
        if (st != MLXN_OK) {
            if (c->err_host) cudaFreeHost(c->err_host);
            cudaStreamDestroy(c->s);
        }
    }
    if (st != MLXN_OK) {
        free(c);
        return st;
    }
    *stream = c;
    return MLXN_OK;
}

extern "C" void mlxn_cuda_stream_destroy(int index, void *stream) {
    cu_stream *c = (cu_stream *)stream;
    if (!c) return;
    if (cudaSetDevice(index) == cudaSuccess) {
        cudaStreamSynchronize(c->s);
        if (c->qmm_buf) cudaFree(c->qmm_buf);
        if (c->tq_buf) cudaFree(c->tq_buf);
        if (c->blas) c->blas_api.destroy(c->blas);
        cu_blas_unload(&c->blas_api);
        if (c->stage) {
            cudaEventDestroy(c->stage_ev[0]);
            cudaEventDestroy(c->stage_ev[1]);
            cudaFreeHost(c->stage);
        }
        if (c->err_host) cudaFreeHost(c->err_host);
        cudaStreamDestroy(c->s);
    }
    free(c);
}

/* fn's entry in the stream's table (index, or c->smem_n when the table is
 * full), made with one cudaFuncGetAttributes the first time: the dynamic
 * limit fn has on the device, and its static shared memory. */
static mlxn_status smem_entry(cu_stream *c, const char *op, const void *fn, int *slot, int *have, int *stat) {
    int i = 0;
    while (i < c->smem_n && c->smem_fn[i] != fn) i++;
    if (i < c->smem_n) {
        *slot = i, *have = c->smem_max[i], *stat = c->smem_static[i];
        return MLXN_OK;
    }
    cudaFuncAttributes fa;
    MLXN_TRY(cu_check(cudaFuncGetAttributes(&fa, fn), op, "cudaFuncGetAttributes", c->index));
    *have = fa.maxDynamicSharedSizeBytes < 0 ? 0 : fa.maxDynamicSharedSizeBytes;
    *stat = (int)fa.sharedSizeBytes;
    if (c->smem_n < CU_SMEM_SLOTS) {
        c->smem_fn[c->smem_n] = fn, c->smem_max[c->smem_n] = *have, c->smem_static[c->smem_n] = *stat;
        c->smem_n++;
    }
    *slot = i;
    return MLXN_OK;
}

bool cu_smem_fits_fn(mlxn_stream *s, const void *fn, size_t smem) {
    cu_stream *c = cu_ctx(s);
    int slot = 0, have = 0, stat = 0;
    if (smem_entry(c, "shared memory", fn, &slot, &have, &stat) != MLXN_OK) return false;
    return smem + (size_t)stat <= (size_t)c->smem_optin;
}

mlxn_status cu_smem_allow_fn(mlxn_stream *s, const char *op, const void *fn, size_t smem) {
    cu_stream *c = cu_ctx(s);
    int slot = 0, have = 0, stat = 0;
    MLXN_TRY(smem_entry(c, op, fn, &slot, &have, &stat));
    /* every dispatcher checks the limit first and picks a kernel that fits; this is the net under them
     * (a block's static and dynamic shared memory together are held to the opt-in limit; asked before the
     * kernel's remembered limit, which a stream without MLXN_CUDA_LIKE may have raised past it) */
    if (smem + (size_t)stat > (size_t)c->smem_optin)
        return mlxn_fail(MLXN_ERR_UNSUPPORTED,
                         "%s: a kernel needs %zu bytes of shared memory per block (%zu dynamic, %d static); cuda:%d "
                         "allows %d (%s)",
                         op, smem + (size_t)stat, smem, stat, c->index, c->smem_optin,
                         c->knobs.like ? "MLXN_CUDA_LIKE" : "the device's limit");
    if ((size_t)have >= smem) return MLXN_OK;
    MLXN_TRY(cu_check(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), op,
                      "cudaFuncSetAttribute", c->index));
    if (slot < c->smem_n) c->smem_max[slot] = (int)smem;
    return MLXN_OK;
}

/* The cache behind cu_occupancy_fn and cu_cluster_occupancy_fn: the answer for (fn, threads, smem,
 * cluster) or -1. */
static int occ_find(const cu_stream *c, const void *fn, int threads, size_t smem, int cluster) {
    for (int i = 0; i < c->occ_n; i++)
        if (c->occ_fn[i] == fn && c->occ_threads[i] == threads && c->occ_smem[i] == smem && c->occ_cluster[i] == cluster)
            return c->occ_blocks[i];
    return -1;
}
static void occ_keep(cu_stream *c, const void *fn, int threads, size_t smem, int cluster, int n) {
    if (c->occ_n < CU_SMEM_SLOTS) {
        const int i = c->occ_n++;
        c->occ_fn[i] = fn, c->occ_threads[i] = threads, c->occ_smem[i] = smem, c->occ_cluster[i] = cluster;
        c->occ_blocks[i] = n;
    }
}

mlxn_status cu_occupancy_fn(mlxn_stream *s, const char *op, const void *fn, int threads, size_t smem, int *blocks) {
    cu_stream *c = cu_ctx(s);
    int n = occ_find(c, fn, threads, smem, 0);
    if (n < 0) {
        n = 0;
        MLXN_TRY(cu_check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, fn, threads, smem), op,
                          "cudaOccupancyMaxActiveBlocksPerMultiprocessor", c->index));
        occ_keep(c, fn, threads, smem, 0, n);
    }
    *blocks = n;
    return MLXN_OK;
}

int cu_cluster_occupancy_fn(mlxn_stream *s, const void *fn, int threads, size_t smem, int cluster_x) {
    cu_stream *c = cu_ctx(s);
    int n = occ_find(c, fn, threads, smem, cluster_x);
    if (n < 0) {
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3((unsigned)cluster_x);
        cfg.blockDim = dim3((unsigned)threads);
        cfg.dynamicSmemBytes = smem;
        cudaLaunchAttribute attr;
        attr.id = cudaLaunchAttributeClusterDimension;
        attr.val.clusterDim.x = (unsigned)cluster_x, attr.val.clusterDim.y = 1, attr.val.clusterDim.z = 1;
        cfg.attrs = &attr;
        cfg.numAttrs = 1;
        n = 0;
        /* the kernel's code for this GPU must have been built for sm_90 or later: a build for older
         * targets only (run through PTX) has no cluster code in it */
        cudaFuncAttributes fa;
        if (cudaFuncGetAttributes(&fa, fn) != cudaSuccess || fa.binaryVersion < 90 ||
            cudaOccupancyMaxActiveClusters(&n, fn, &cfg) != cudaSuccess) {
            (void)cudaGetLastError(); /* no answer is "none", not an error of the stream's work */
            n = 0;
        }
        occ_keep(c, fn, threads, smem, cluster_x, n);
    }
    return n;
}

/* The stream's device-side error record as a status (and cleared). */
static mlxn_status device_errors(cu_stream *c) {
    long long *e = c->err_host;
    if (!e || e[0] == CU_ERR_NONE) return MLXN_OK;
    long long kind = e[0], i = e[1], v = e[2], b = e[3];
    e[1] = e[2] = e[3] = 0;
    e[0] = CU_ERR_NONE;
    switch (kind) {
    case CU_ERR_EMBEDDING_ID:
    case CU_ERR_QEMBEDDING_ID:
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: ids[%lld] = %lld is outside the table's [0, %lld)",
                         kind == CU_ERR_EMBEDDING_ID ? "embedding" : "quantized_embedding", i, v, b);
    case CU_ERR_KV_SLOT:
    case CU_ERR_KV2_SLOT:
    case CU_ERR_ROPE_KV_SLOT:
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: slot %lld is outside [0, %lld] (%lld rows)",
                         kind == CU_ERR_KV_SLOT ? "kv_write" : kind == CU_ERR_KV2_SLOT ? "kv_write2" : "rope_kv_write",
                         v, b, i);
    default: return mlxn_fail(MLXN_ERR_DEVICE, "cuda:%d: unknown device-side error %lld", c->index, kind);
    }
}

extern "C" mlxn_status mlxn_cuda_stream_sync(int index, void *stream) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    MLXN_TRY(cuda_check(cudaStreamSynchronize(((cu_stream *)stream)->s), "cudaStreamSynchronize", index));
    return device_errors((cu_stream *)stream);
}

/* Staged uploads of at most CU_UPLOAD_KERNEL_BYTES (a decode step's block
 * of token, position and per-layer slots): a kernel loads the bytes from
 * the staging half through its mapped address and stores them to dst,
 * instead of a host-to-device copy. Why: a copy-engine operation between
 * two kernels holds the stream for microseconds of handoffs (the same cost
 * mlxn_reader's store kernel avoids the other way; docs/perf.md). The
 * kernel is launched programmatically, so it may be resident while the
 * kernel before it finishes: it reads the host bytes first (they were final
 * before it was queued, and the bus round trip is its slow part), then
 * waits, then stores. */
enum { CU_UPLOAD_KERNEL_BYTES = 1024, CU_UPLOAD_THREADS = 256 };
__global__ void __launch_bounds__(CU_UPLOAD_THREADS) upload_load_kernel(const unsigned char *src, unsigned char *dst,
                                                                         unsigned n) {
    enum { PER = CU_UPLOAD_KERNEL_BYTES / CU_UPLOAD_THREADS };
    const volatile unsigned char *hs = src; /* host memory the host rewrites between calls: never a cached copy */
    unsigned char v[PER];
#pragma unroll
    for (int u = 0; u < PER; u++) {
        const unsigned i = threadIdx.x + u * CU_UPLOAD_THREADS;
        v[u] = i < n ? hs[i] : 0;
    }
    cu_pdl_launch_dependents(); /* the kernel after may be resident now; it still waits for this one's stores */
    cu_pdl_wait(); /* the work before may still read dst */
#pragma unroll
    for (int u = 0; u < PER; u++) {
        const unsigned i = threadIdx.x + u * CU_UPLOAD_THREADS;
        if (i < n) dst[i] = v[u];
    }
}

extern "C" mlxn_status mlxn_cuda_stream_upload(void *stream, void *dst, const void *src, size_t n, int src_pinned) {
    cu_stream *c = (cu_stream *)stream;
    int index = c->index;
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    if (src_pinned)
        return cuda_check(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->s), "cudaMemcpyAsync (upload)", index);
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    MLXN_TRY(cuda_check(cudaStreamIsCapturing(c->s, &cap), "cudaStreamIsCapturing", index));
    if (cap != cudaStreamCaptureStatusNone)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                         "cuda:%d: a staged upload cannot be captured (a replay would not copy the host data again)",
                         index);
    if (!c->stage) {
        void *p = NULL;
        MLXN_TRY(mlxn_cuda_host_alloc(index, 2 * CU_STAGE_BYTES, &p));
        mlxn_status st = cuda_check(cudaEventCreateWithFlags(&c->stage_ev[0], cudaEventDisableTiming), "cudaEventCreate", index);
        if (st == MLXN_OK) {
            st = cuda_check(cudaEventCreateWithFlags(&c->stage_ev[1], cudaEventDisableTiming), "cudaEventCreate", index);
            if (st != MLXN_OK) cudaEventDestroy(c->stage_ev[0]);
        }
        if (st != MLXN_OK) {
            cudaFreeHost(p);
            return st;
        }
        c->stage = (unsigned char *)p;
        c->stage_used[0] = c->stage_used[1] = 0;
        if (cudaHostGetDevicePointer((void **)&c->stage_dev, p, 0) != cudaSuccess) {
            (void)cudaGetLastError(); /* not mapped: every upload takes the copy */
            c->stage_dev = NULL;
        }
    }
    /* alternate halves; a half is refilled once its previous copy is done */
    static_assert(CU_STAGE_BYTES > 0, "staging size");
    int half = 0;
    for (size_t off = 0; off < n; off += CU_STAGE_BYTES, half ^= 1) {
        size_t len = n - off < CU_STAGE_BYTES ? n - off : CU_STAGE_BYTES;
        unsigned char *buf = c->stage + (size_t)half * CU_STAGE_BYTES;
        if (c->stage_used[half])
            MLXN_TRY(cuda_check(cudaEventSynchronize(c->stage_ev[half]), "cudaEventSynchronize (staging)", index));
        memcpy(buf, (const unsigned char *)src + off, len);
        if (n <= CU_UPLOAD_KERNEL_BYTES && c->stage_dev && !c->knobs.upload_copy) {
            cu_launch_cluster_on(c, 1, upload_load_kernel, dim3(1), dim3(CU_UPLOAD_THREADS), 0,
                                 (const unsigned char *)(c->stage_dev + (size_t)half * CU_STAGE_BYTES),
                                 (unsigned char *)dst + off, (unsigned)len);
            MLXN_TRY(cuda_check(cudaGetLastError(), "upload_load_kernel", index));
        } else {
            MLXN_TRY(cuda_check(cudaMemcpyAsync((unsigned char *)dst + off, buf, len, cudaMemcpyHostToDevice, c->s),
                                "cudaMemcpyAsync (upload)", index));
        }
        MLXN_TRY(cuda_check(cudaEventRecord(c->stage_ev[half], c->s), "cudaEventRecord (staging)", index));
        c->stage_used[half] = 1;
    }
    return MLXN_OK;
}

extern "C" mlxn_status mlxn_cuda_stream_download(void *stream, void *dst, const void *src, size_t n) {
    cu_stream *c = (cu_stream *)stream;
    int index = c->index;
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    MLXN_TRY(cuda_check(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, c->s), "cudaMemcpyAsync (download)", index));
    MLXN_TRY(cuda_check(cudaStreamSynchronize(c->s), "cudaStreamSynchronize", index));
    return device_errors(c);
}

/* ---- reads that do not wait for later work (mlxn_reader) ------------------ */

/* One reader: the copy lands in pinned memory (a pageable destination would
 * make the async copy synchronous), and the event marks its end, so
 * waiting for it does not wait for work queued after it. */
typedef struct cu_reader {
    void *host;      /* [max_bytes] pinned */
    void *dev;       /* host as the device addresses it (pinned memory is mapped), or NULL */
    cudaEvent_t ev;  /* recorded behind the copy */
} cu_reader;

/* Reads of at most CU_READER_KERNEL_BYTES (a decode loop's token id): a
 * one-warp kernel stores the bytes straight into the reader's mapped
 * pinned memory. Why: a device-to-host copy between two kernels held the
 * stream ~8 us on an H100 (a copy-engine operation and its handoffs), a
 * kernel ~2 us, and the next decode step waits behind it (docs/perf.md). */
enum { CU_READER_KERNEL_BYTES = 256 };
__global__ void reader_store_kernel(const unsigned char *src, unsigned char *dst, unsigned n) {
    cu_pdl_launch_dependents(); /* the next kernel (a step block's upload) may be resident beside this one */
    cu_pdl_wait(); /* launched programmatically: the bytes are final from here */
    for (unsigned i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
    __threadfence_system(); /* the host reads them once the event behind this kernel has fired */
}

extern "C" mlxn_status mlxn_cuda_reader_new(void *stream, size_t max_bytes, void **impl) {
    cu_stream *c = (cu_stream *)stream;
    *impl = NULL;
    cu_reader *r = (cu_reader *)calloc(1, sizeof *r);
    if (!r) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "cuda:%d: out of host memory for a reader", c->index);
    mlxn_status st = mlxn_cuda_host_alloc(c->index, max_bytes, &r->host);
    if (st == MLXN_OK)
        st = cuda_check(cudaEventCreateWithFlags(&r->ev, cudaEventDisableTiming), "cudaEventCreate (reader)", c->index);
    if (st == MLXN_OK && cudaHostGetDevicePointer(&r->dev, r->host, 0) != cudaSuccess) {
        (void)cudaGetLastError(); /* not mapped: reads take the copy */
        r->dev = NULL;
    }
    if (st != MLXN_OK) {
        if (r->host) cudaFreeHost(r->host);
        free(r);
        return st;
    }
    *impl = r;
    return MLXN_OK;
}

extern "C" mlxn_status mlxn_cuda_reader_begin(void *stream, void *impl, const void *src, size_t n) {
    cu_stream *c = (cu_stream *)stream;
    cu_reader *r = (cu_reader *)impl;
    MLXN_TRY(cuda_check(cudaSetDevice(c->index), "cudaSetDevice", c->index));
    if (c->capturing)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                         "cuda:%d: a reader cannot begin inside a graph capture (a replay would not read)", c->index);
    if (n && n <= CU_READER_KERNEL_BYTES && r->dev && !c->knobs.reader_copy) {
        /* programmatic launch: behind a kernel that lets dependents start early (the greedy sampler), this
           one is resident when the bytes are final and skips a launch gap on the decode loop's path */
        cu_launch_cluster_on(c, 1, reader_store_kernel, dim3(1), dim3(32), 0, (const unsigned char *)src,
                             (unsigned char *)r->dev, (unsigned)n);
        MLXN_TRY(cuda_check(cudaGetLastError(), "reader_store_kernel", c->index));
    } else if (n) {
        MLXN_TRY(cuda_check(cudaMemcpyAsync(r->host, src, n, cudaMemcpyDeviceToHost, c->s), "cudaMemcpyAsync (read)", c->index));
    }
    return cuda_check(cudaEventRecord(r->ev, c->s), "cudaEventRecord (read)", c->index);
}

extern "C" mlxn_status mlxn_cuda_reader_end(void *stream, void *impl, void *dst, size_t n) {
    cu_stream *c = (cu_stream *)stream;
    cu_reader *r = (cu_reader *)impl;
    MLXN_TRY(cuda_check(cudaSetDevice(c->index), "cudaSetDevice", c->index));
    MLXN_TRY(cuda_check(cudaEventSynchronize(r->ev), "cudaEventSynchronize (read)", c->index));
    if (n) memcpy(dst, r->host, n);
    return device_errors(c);
}

extern "C" void mlxn_cuda_reader_free(void *stream, void *impl) {
    cu_stream *c = (cu_stream *)stream;
    cu_reader *r = (cu_reader *)impl;
    if (!r) return;
    if (cudaSetDevice(c->index) == cudaSuccess) {
        cudaEventSynchronize(r->ev); /* a pending copy still writes r->host */
        cudaEventDestroy(r->ev);
        cudaFreeHost(r->host);
    }
    free(r);
}

/* ---- graphs -------------------------------------------------------------- */

/* Thread-local capture mode: an unsafe call (a synchronization, a plain
 * allocation) from this thread during the capture fails it, so an op that
 * cannot be replayed shows up as an error instead of a wrong replay, while
 * other threads (another model in the process) are not affected. */
extern "C" mlxn_status mlxn_cuda_graph_begin(void *stream) {
    cu_stream *c = (cu_stream *)stream;
    MLXN_TRY(cuda_check(cudaSetDevice(c->index), "cudaSetDevice", c->index));
    MLXN_TRY(cuda_check(cudaStreamBeginCapture(c->s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture",
                        c->index));
    c->capturing = 1;
    return MLXN_OK;
}

extern "C" mlxn_status mlxn_cuda_graph_end(void *stream, void **graph) {
    cu_stream *c = (cu_stream *)stream;
    *graph = NULL;
    cudaGraph_t g = NULL;
    c->capturing = 0; /* the capture ends here, made or failed */
    cudaError_t e = cudaStreamEndCapture(c->s, &g);
    if (e != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        (void)cudaGetLastError();
        return cuda_check(e, "cudaStreamEndCapture", c->index);
    }
    cudaGraphExec_t x = NULL;
    e = cudaGraphInstantiate(&x, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return cuda_check(e, "cudaGraphInstantiate", c->index);
    }
    *graph = (void *)x;
    return MLXN_OK;
}

extern "C" mlxn_status mlxn_cuda_graph_launch(void *stream, void *graph) {
    cu_stream *c = (cu_stream *)stream;
    MLXN_TRY(cuda_check(cudaSetDevice(c->index), "cudaSetDevice", c->index));
    return cuda_check(cudaGraphLaunch((cudaGraphExec_t)graph, c->s), "cudaGraphLaunch", c->index);
}

extern "C" void mlxn_cuda_graph_free(int index, void *graph) {
    if (graph && cudaSetDevice(index) == cudaSuccess) cudaGraphExecDestroy((cudaGraphExec_t)graph);
}
