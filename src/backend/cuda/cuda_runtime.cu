/* CUDA runtime glue: device selection, plain device allocations (never
 * managed memory), copies and streams. Errors come back as statuses that
 * carry CUDA's own error text.
 *
 * Copies between host and device synchronize the whole device first: the
 * library's streams are non-blocking (they do not order against the legacy
 * default stream cudaMemcpy uses), so without that a read could overtake a
 * kernel still writing the buffer. Uploads and downloads are staging
 * operations, not the hot path; the per-token path never crosses. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_runtime.h"
}

static mlxn_status cuda_check(cudaError_t e, const char *what, int index) {
    if (e == cudaSuccess) return MLXN_OK;
    return mlxn_fail(e == cudaErrorMemoryAllocation ? MLXN_ERR_OUT_OF_MEMORY : MLXN_ERR_DEVICE,
                     "cuda:%d: %s failed: %s", index, what, cudaGetErrorString(e));
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
    snprintf(name, name_cap, "cuda:%d (%s, sm_%d%d)", index, prop.name, prop.major, prop.minor);
    return cuda_check(cudaSetDevice(index), "cudaSetDevice", index);
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
    return cuda_check(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice), "cudaMemcpy (upload)", index);
}

extern "C" mlxn_status mlxn_cuda_memcpy_d2h(int index, void *dst, const void *src, size_t n) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    MLXN_TRY(cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (before download)", index));
    return cuda_check(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost), "cudaMemcpy (download)", index);
}

extern "C" mlxn_status mlxn_cuda_stream_create(int index, void **stream) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    cu_stream *c = (cu_stream *)calloc(1, sizeof *c);
    if (!c) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "cuda:%d: out of host memory for a stream", index);
    c->index = index;
    mlxn_status st = cuda_check(cudaStreamCreateWithFlags(&c->s, cudaStreamNonBlocking), "cudaStreamCreate", index);
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
        if (c->blas) c->blas_api.destroy(c->blas);
        cu_blas_unload(&c->blas_api);
        cudaStreamDestroy(c->s);
    }
    free(c);
}

extern "C" mlxn_status mlxn_cuda_stream_sync(int index, void *stream) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    return cuda_check(cudaStreamSynchronize(((cu_stream *)stream)->s), "cudaStreamSynchronize", index);
}
