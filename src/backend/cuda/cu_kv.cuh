/* Cache appends as the kernels do them, shared by kv_write / kv_write2
 * (cu_kv_write.cu) and the fused rope + append (cu_rope_kv.cu), so all
 * move an element the same way: dst[..., slot + t, :] = src[..., t, :]
 * converted by cu_store. C++ only. */
#ifndef MLXN_CU_KV_CUH
#define MLXN_CU_KV_CUH

#include "backend/cuda/cuda_common.cuh"

/* The slot fits a pair: src [..., T, D] into dst [..., cap, D]. */
__device__ __forceinline__ bool kv_fits(const cu_view &src, const cu_view &dst, int64_t at) {
    const int ax = src.nd - 2;
    return at >= 0 && at <= dst.shape[ax] - src.shape[ax];
}

/* Element offsets of element e of src (row-major) in src (*so) and, with
 * axis -2 shifted by at, in dst (*dof). src view [..., T, D]; dst view
 * [..., cap, D]. */
__device__ __forceinline__ void kv_offsets(const cu_view &src, const cu_view &dst, int64_t at, int64_t e, int64_t *so,
                                           int64_t *dof) {
    const int ax = src.nd - 2;
    int64_t r = e, s = 0, d = 0;
    for (int i = src.nd - 1; i >= 0; i--) {
        int64_t n = src.shape[i], q = r / n, c = r - q * n;
        s += c * src.st[i];
        d += (i == ax ? c + at : c) * dst.st[i];
        r = q;
    }
    *so = s;
    *dof = d;
}

/* Elements e = first, first + step, ... < n of src (row-major) into dst
 * with axis -2 shifted by at. src view [..., T, D]; dst view [..., cap, D]. */
__device__ __forceinline__ void kv_rows(const cu_view &src, const cu_view &dst, int64_t at, int64_t n, int64_t first,
                                        int64_t step) {
    for (int64_t e = first; e < n; e += step) {
        int64_t so, dof;
        kv_offsets(src, dst, at, e, &so, &dof);
        cu_store((void *)dst.p, dst.dt, dof, cu_load(src.p, src.dt, so));
    }
}

#endif
