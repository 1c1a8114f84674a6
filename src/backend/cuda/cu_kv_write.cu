/* CUDA kv_write: dst[..., slot + t, :] = src[..., t, :] with the slot read
 * from device memory by the kernel, so a captured decode step appends at
 * the position its replay is given. A slot out of range writes nothing and
 * is recorded in the stream's error record (reported at the next sync).
 * One thread per source element; consecutive threads on consecutive
 * columns, so both reads and writes are coalesced for contiguous rows. */
#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

/* src view [..., T, D]; dst view [..., cap, D] (same dims but axis -2);
 * slot i32 [1]; err: the stream's error record. */
__global__ void kv_write_kernel(cu_view src, cu_view dst, const int32_t *slot, int64_t n, long long *err) {
    cu_pdl_wait(); /* programmatic launch (cu_launch): inputs come from the kernel before */
    cu_pdl_launch_dependents();
    const int ax = src.nd - 2;
    const int64_t T = src.shape[ax], cap = dst.shape[ax], at = (int64_t)slot[0];
    if (at < 0 || at > cap - T) {
        if (blockIdx.x == 0 && threadIdx.x == 0) cu_report(err, CU_ERR_KV_SLOT, T, at, cap - T);
        return;
    }
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        /* coordinates of element e of src (row-major), mapped into dst */
        int64_t r = e, so = 0, dof = 0;
        for (int i = src.nd - 1; i >= 0; i--) {
            int64_t d = src.shape[i], q = r / d, c = r - q * d;
            so += c * src.st[i];
            dof += (i == ax ? c + at : c) * dst.st[i];
            r = q;
        }
        cu_store((void *)dst.p, dst.dt, dof, cu_load(src.p, src.dt, so));
    }
}

extern "C" mlxn_status cu_op_kv_write(mlxn_stream *s, const mlxn_tensor *src, const mlxn_tensor *slot,
                                      mlxn_tensor *dst) {
    const char *op = "kv_write";
    MLXN_TRY(cu_begin(s, op));
    int64_t n = mlxn_tensor_numel(src);
    if (n == 0) return MLXN_OK;
    cu_launch(s, kv_write_kernel, dim3(cu_blocks(n, 256)), dim3(256), 0, cu_view_of(src), cu_view_of(dst),
              (const int32_t *)cu_ptr(slot), n, cu_ctx(s)->err_dev);
    return cu_launched(s, op, "kv_write_kernel");
}
