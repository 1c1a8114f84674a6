/* cuBLAS, loaded when a stream first needs it (dlopen) instead of linked.
 * Why: merely linking libcublas costs every process that loads mlx-native
 * ~215 MB of resident memory (the dynamic loader relocates the whole
 * library), CPU-only runs included — measured: `mlxn --version` 219 MB
 * linked vs 2 MB without. Loading it on the first dense GPU matmul keeps
 * CPU users lean. Each stream keeps its own table (no process-global
 * state); dlopen reference-counts the library underneath. */
#ifndef MLXN_CU_BLAS_CUH
#define MLXN_CU_BLAS_CUH

#include <cublas_v2.h>

extern "C" {
#include "mlxn/status.h"
}

typedef struct cu_blas_api {
    void *lib; /* dlopen handle; NULL until loaded */
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetStream_v2) set_stream;
    decltype(&cublasSgemm_v2) sgemm;
    /* the exported C entry (C++ also sees an inline overload taking a
     * cudaDataType compute type, so decltype cannot name it) */
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                              const void *, cudaDataType, int, const void *, cudaDataType, int, const void *, void *,
                              cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
    decltype(&cublasGetStatusString) status_string;
} cu_blas_api;

/* Load libcublas.so.<major of the headers we built with> into api (no-op
 * when already loaded). The error names the library and dlerror's text. */
mlxn_status cu_blas_load(cu_blas_api *api, int index);
void cu_blas_unload(cu_blas_api *api);

#endif
