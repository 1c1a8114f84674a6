/* CUDA rope_kv_write: a decode step's rotary embedding of q and k with the
 * rotated keys and the values appended to their caches, in one launch.
 * Why: at decode rope and the cache writes each move a few hundred
 * elements, so each kernel costs its launch and dependency gap
 * (microseconds), not its bytes; one kernel instead of rope + rope (or one
 * rope over q and k) + kv_write2 per layer. The first blocks rotate q into
 * q_out, the next rotate k straight into its cache (converted by cu_store,
 * with no f32 round trip through memory), the rest copy v; a branch
 * uniform per block. Every element is computed by the code rope_kernel
 * and kv_write2_kernel use (cu_rope.cuh, cu_kv.cuh), so the bits are those
 * of the separate ops. The slot is read on the device; one that misses
 * either cache writes nothing and is recorded in the stream's error
 * record (reported at the next sync). */
#include "backend/cuda/cu_kv.cuh"
#include "backend/cuda/cu_rope.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

/* q view f32 [..., Tq, Dq] -> q_out f32 contiguous [nq]; k view f32
 * [..., Tk, Dk] -> kd [..., capk, Dk] at the slot; v view [..., Tv, Dv] ->
 * vd [..., capv, Dv] at the slot; rq, rk: rope arguments for q and k
 * (their off replaced by *offp when offp is given: device i32 [1]); slot:
 * device i32 [1]; blocks [0, qb) rotate q, [qb, qb + kb) k, the rest copy
 * v; err: the stream's error record. */
__global__ void rope_kv_kernel(cu_view q, cu_view k, cu_view v, cu_view kd, cu_view vd, cu_rope_args rq,
                               cu_rope_args rk, const int32_t *offp, const int32_t *slot, float *q_out, int64_t nq,
                               int64_t nk, int64_t nv, unsigned qb, unsigned kb, long long *err) {
    cu_pdl_wait(); /* programmatic launch (cu_launch): inputs come from the kernel before */
    cu_pdl_launch_dependents();
    const int64_t at = (int64_t)slot[0];
    const bool k_ok = nk == 0 || kv_fits(k, kd, at), v_ok = nv == 0 || kv_fits(v, vd, at);
    if (!k_ok || !v_ok) { /* every block sees it: nothing is written */
        if (blockIdx.x == 0 && threadIdx.x == 0) {
            const cu_view &s = k_ok ? v : k, &d = k_ok ? vd : kd;
            const int ax = s.nd - 2;
            cu_report(err, CU_ERR_ROPE_KV_SLOT, s.shape[ax], at, d.shape[ax] - s.shape[ax]);
        }
        return;
    }
    const unsigned b = blockIdx.x;
    if (b < qb) {
        cu_rope_args a = rq;
        if (offp) a.off = (float)*offp;
        for (int64_t e = (int64_t)b * blockDim.x + threadIdx.x; e < nq; e += (int64_t)qb * blockDim.x)
            q_out[e] = cu_rope_elem(q, a, e);
    } else if (b < qb + kb) {
        cu_rope_args a = rk;
        if (offp) a.off = (float)*offp;
        for (int64_t e = (int64_t)(b - qb) * blockDim.x + threadIdx.x; e < nk; e += (int64_t)kb * blockDim.x) {
            int64_t so, dof;
            kv_offsets(k, kd, at, e, &so, &dof);
            cu_store((void *)kd.p, kd.dt, dof, cu_rope_elem(k, a, e));
        }
    } else {
        kv_rows(v, vd, at, nv, (int64_t)(b - qb - kb) * blockDim.x + threadIdx.x,
                (int64_t)(gridDim.x - qb - kb) * blockDim.x);
    }
}

extern "C" mlxn_status cu_op_rope_kv_write(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k,
                                           const mlxn_tensor *v, const mlxn_rope_params *p, const mlxn_tensor *slot,
                                           mlxn_tensor *q_out, mlxn_tensor *k_dst, mlxn_tensor *v_dst) {
    const char *op = "rope_kv_write";
    MLXN_TRY(cu_begin(s, op));
    int64_t nq = mlxn_tensor_numel(q), nk = mlxn_tensor_numel(k), nv = mlxn_tensor_numel(v);
    unsigned qb = nq ? cu_blocks(nq, 256) : 0, kb = nk ? cu_blocks(nk, 256) : 0, vb = nv ? cu_blocks(nv, 256) : 0;
    if (qb + kb + vb == 0) return MLXN_OK;
    cu_launch(s, rope_kv_kernel, dim3(qb + kb + vb), dim3(256), 0, cu_view_of(q), cu_view_of(k), cu_view_of(v),
              cu_view_of(k_dst), cu_view_of(v_dst), cu_rope_args_of(p, q->shape[q->ndim - 2], q->shape[q->ndim - 1]),
              cu_rope_args_of(p, k->shape[k->ndim - 2], k->shape[k->ndim - 1]),
              p->offset_tensor ? (const int32_t *)cu_ptr(p->offset_tensor) : NULL, (const int32_t *)cu_ptr(slot),
              (float *)cu_ptr(q_out), nq, nk, nv, qb, kb, cu_ctx(s)->err_dev);
    return cu_launched(s, op, "rope_kv_kernel");
}
