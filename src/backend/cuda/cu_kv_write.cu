/* CUDA kv_write: dst[..., slot + t, :] = src[..., t, :] with the slot read
 * from device memory by the kernel, so a captured decode step appends at
 * the position its replay is given. A slot out of range writes nothing and
 * is recorded in the stream's error record (reported at the next sync).
 * One thread per source element; consecutive threads on consecutive
 * columns, so both reads and writes are coalesced for contiguous rows.
 *
 * kv_write2: keys and values in one launch. Why: at decode each write is
 * a few hundred elements, so a kernel costs its launch and dependency gap
 * (microseconds), not its bytes; one kernel instead of two per layer. The
 * first blocks take the keys, the rest the values (a branch uniform per
 * block), each element moved by the very code kv_write uses, so the bits
 * are those of two kv_writes. */
#include "backend/cuda/cu_kv.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

/* src view [..., T, D]; dst view [..., cap, D] (same dims but axis -2);
 * slot i32 [1]; n: src's elements; err: the stream's error record. */
__global__ void kv_write_kernel(cu_view src, cu_view dst, const int32_t *slot, int64_t n, long long *err) {
    cu_pdl_wait(); /* programmatic launch (cu_launch): inputs come from the kernel before */
    cu_pdl_launch_dependents();
    const int64_t at = (int64_t)slot[0];
    if (!kv_fits(src, dst, at)) {
        const int ax = src.nd - 2;
        if (blockIdx.x == 0 && threadIdx.x == 0)
            cu_report(err, CU_ERR_KV_SLOT, src.shape[ax], at, dst.shape[ax] - src.shape[ax]);
        return;
    }
    kv_rows(src, dst, at, n, (int64_t)blockIdx.x * blockDim.x + threadIdx.x, (int64_t)gridDim.x * blockDim.x);
}

/* ks view [..., Tk, Dk] into kd [..., capk, Dk]; vs view [..., Tv, Dv] into
 * vd [..., capv, Dv]; slot i32 [1]; nk, nv: the sources' elements; blocks
 * [0, kb) write the keys, [kb, gridDim.x) the values; err: the stream's
 * error record. An empty pair (n 0) has no blocks and no range check. */
__global__ void kv_write2_kernel(cu_view ks, cu_view kd, cu_view vs, cu_view vd, const int32_t *slot, int64_t nk,
                                 int64_t nv, unsigned kb, long long *err) {
    cu_pdl_wait(); /* programmatic launch (cu_launch): inputs come from the kernel before */
    cu_pdl_launch_dependents();
    const int64_t at = (int64_t)slot[0];
    const bool k_ok = nk == 0 || kv_fits(ks, kd, at), v_ok = nv == 0 || kv_fits(vs, vd, at);
    if (!k_ok || !v_ok) { /* every block sees it: nothing is written to either cache */
        if (blockIdx.x == 0 && threadIdx.x == 0) {
            const cu_view &s = k_ok ? vs : ks, &d = k_ok ? vd : kd;
            const int ax = s.nd - 2;
            cu_report(err, CU_ERR_KV2_SLOT, s.shape[ax], at, d.shape[ax] - s.shape[ax]);
        }
        return;
    }
    if (blockIdx.x < kb)
        kv_rows(ks, kd, at, nk, (int64_t)blockIdx.x * blockDim.x + threadIdx.x, (int64_t)kb * blockDim.x);
    else
        kv_rows(vs, vd, at, nv, (int64_t)(blockIdx.x - kb) * blockDim.x + threadIdx.x,
                (int64_t)(gridDim.x - kb) * blockDim.x);
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

extern "C" mlxn_status cu_op_kv_write2(mlxn_stream *s, const mlxn_tensor *k_src, const mlxn_tensor *v_src,
                                       const mlxn_tensor *slot, mlxn_tensor *k_dst, mlxn_tensor *v_dst) {
    const char *op = "kv_write2";
    MLXN_TRY(cu_begin(s, op));
    int64_t nk = mlxn_tensor_numel(k_src), nv = mlxn_tensor_numel(v_src);
    unsigned kb = nk ? cu_blocks(nk, 256) : 0, vb = nv ? cu_blocks(nv, 256) : 0;
    if (kb + vb == 0) return MLXN_OK;
    cu_launch(s, kv_write2_kernel, dim3(kb + vb), dim3(256), 0, cu_view_of(k_src), cu_view_of(k_dst),
              cu_view_of(v_src), cu_view_of(v_dst), (const int32_t *)cu_ptr(slot), nk, nv, kb, cu_ctx(s)->err_dev);
    return cu_launched(s, op, "kv_write2_kernel");
}
