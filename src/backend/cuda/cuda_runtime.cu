/* CUDA runtime glue: device selection, plain device allocations (never
 * managed memory), copies and streams. Errors come back as statuses that
 * carry CUDA's own error text. Kernels arrive with the CUDA backend issue. */
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" {
#include "backend/cuda/cuda_runtime.h"
#include "core/internal.h"
}

static mlxn_status cuda_check(cudaError_t e, const char *what, int index) {
    if (e == cudaSuccess) return MLXN_OK;
    return mlxn_fail(MLXN_ERR_DEVICE, "cuda:%d: %s failed: %s", index, what, cudaGetErrorString(e));
}

extern "C" mlxn_status mlxn_cuda_open(int index, char *name, size_t name_cap) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return mlxn_fail(MLXN_ERR_DEVICE, "cuda:%d: no CUDA device (%s)", index,
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
    return cuda_check(cudaMalloc(ptr, bytes), "cudaMalloc", index);
}

extern "C" void mlxn_cuda_free(int index, void *ptr) {
    if (cudaSetDevice(index) == cudaSuccess) cudaFree(ptr);
}

extern "C" mlxn_status mlxn_cuda_memcpy_h2d(int index, void *dst, const void *src, size_t n) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    return cuda_check(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice), "cudaMemcpy (upload)", index);
}

extern "C" mlxn_status mlxn_cuda_memcpy_d2h(int index, void *dst, const void *src, size_t n) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    return cuda_check(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost), "cudaMemcpy (download)", index);
}

extern "C" mlxn_status mlxn_cuda_stream_create(int index, void **stream) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    cudaStream_t s;
    MLXN_TRY(cuda_check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate", index));
    *stream = (void *)s;
    return MLXN_OK;
}

extern "C" void mlxn_cuda_stream_destroy(int index, void *stream) {
    if (cudaSetDevice(index) == cudaSuccess) cudaStreamDestroy((cudaStream_t)stream);
}

extern "C" mlxn_status mlxn_cuda_stream_sync(int index, void *stream) {
    MLXN_TRY(cuda_check(cudaSetDevice(index), "cudaSetDevice", index));
    return cuda_check(cudaStreamSynchronize((cudaStream_t)stream), "cudaStreamSynchronize", index);
}
