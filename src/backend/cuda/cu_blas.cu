/* dlopen'd cuBLAS: see cu_blas.cuh for why. */
#include <dlfcn.h>
#include <stdio.h>

#include "backend/cuda/cu_blas.cuh"

extern "C" {
#include "core/internal.h"
}

template <typename F> static bool bind(void *lib, const char *name, F *fn) {
    *fn = (F)dlsym(lib, name);
    return *fn != nullptr;
}

mlxn_status cu_blas_load(cu_blas_api *api, int index) {
    if (api->lib) return MLXN_OK;
    char soname[64];
    snprintf(soname, sizeof soname, "libcublas.so.%d", CUBLAS_VER_MAJOR);
    void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return mlxn_fail(MLXN_ERR_DEVICE, "cuda:%d: matmul needs cuBLAS, but %s could not be loaded: %s", index,
                         soname, dlerror());
    cu_blas_api a = {};
    a.lib = lib;
    /* the _v2 names are what cublas_v2.h's macros expand to */
    if (!bind(lib, "cublasCreate_v2", &a.create) || !bind(lib, "cublasDestroy_v2", &a.destroy) ||
        !bind(lib, "cublasSetStream_v2", &a.set_stream) || !bind(lib, "cublasSgemm_v2", &a.sgemm) ||
        !bind(lib, "cublasGemmEx", &a.gemm_ex) || !bind(lib, "cublasGetStatusString", &a.status_string)) {
        mlxn_status st = mlxn_fail(MLXN_ERR_DEVICE, "cuda:%d: %s lacks a cuBLAS entry point: %s", index, soname,
                                   dlerror());
        dlclose(lib);
        return st;
    }
    *api = a;
    return MLXN_OK;
}

void cu_blas_unload(cu_blas_api *api) {
    if (api->lib) dlclose(api->lib);
    *api = cu_blas_api{};
}
