/* CUDA elementwise ops: add (with the trailing-dims broadcast of b), scale,
 * the converting strided copy, and the activations silu, gelu (erf/tanh),
 * swiglu, geglu — in the forms the CPU backend documents (activations.c;
 * cu_act in cuda_common.cuh, shared with the mat-vec's gated epilogue):
 *   silu(x)      = x * sigmoid(x), sigmoid via 1 / (1 + exp(|x|))
 *   gelu_erf(x)  = x * (1 + erf(x / sqrt 2)) * 0.5
 *   gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 *
 * One thread per element, a grid-stride loop, consecutive threads on
 * consecutive elements of the output (contiguous), so every access is
 * coalesced when the inputs are contiguous. Inputs may be any strided view:
 * a flag picks the plain index when a view is contiguous (the common
 * case), else the element offset is computed from its shape/strides. These
 * ops move memory and do little math; nothing more is needed to run at
 * bandwidth. */
#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

enum { EW_THREADS = 256 };
/* Offset of flat element e of view v: e itself when v is contiguous. */
__device__ __forceinline__ int64_t off_of(const cu_view &v, bool contig, int64_t e) {
    return contig ? e : cu_elem_off(v, e);
}

/* out[e] = act(g[e]) (* u[e] when has_up); g, u f32 views; out f32 [n] contiguous. */
__global__ void act_kernel(int kind, cu_view g, bool gc, cu_view u, bool uc, bool has_up, float *out, int64_t n) {
    cu_pdl_wait(); /* programmatic launch (cu_launch): inputs come from the kernel before */
    cu_pdl_launch_dependents();
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        float v = cu_act(kind, ((const float *)g.p)[off_of(g, gc, e)]);
        if (has_up) v = v * ((const float *)u.p)[off_of(u, uc, e)];
        out[e] = v;
    }
}

/* out[e] = a[e] + b[e mod nb]; a f32 view, b f32/f16/bf16 view of a's
 * trailing dims (nb elements); out f32 [n] contiguous, may be a itself. */
__global__ void add_kernel(cu_view a, bool ac, cu_view b, bool bc, int64_t nb, float *out, int64_t n) {
    cu_pdl_wait(); /* programmatic launch (cu_launch): inputs come from the kernel before */
    cu_pdl_launch_dependents();
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t eb = e % nb;
        out[e] = ((const float *)a.p)[off_of(a, ac, e)] + cu_load(b.p, b.dt, off_of(b, bc, eb));
    }
}

/* out[e] = x[e] * alpha; out f32 [n] contiguous, may be x itself. */
__global__ void scale_kernel(cu_view x, bool xc, float alpha, float *out, int64_t n) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
        out[e] = ((const float *)x.p)[off_of(x, xc, e)] * alpha;
}

/* dst[e] = src[e] converted; both any float dtype and any strides. */
__global__ void copy_kernel(cu_view src, bool sc, cu_view dst, bool dc, int64_t n) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
        cu_store((void *)dst.p, dst.dt, off_of(dst, dc, e), cu_load(src.p, src.dt, off_of(src, sc, e)));
}

static int64_t numel(const mlxn_tensor *t) { return mlxn_tensor_numel(t); }

static mlxn_status run_act(mlxn_stream *s, const char *op, int kind, const mlxn_tensor *g, const mlxn_tensor *u,
                           mlxn_tensor *out) {
    MLXN_TRY(cu_begin(s, op));
    int64_t n = numel(out);
    if (n == 0) return MLXN_OK;
    cu_view gv = cu_view_of(g), uv = u ? cu_view_of(u) : gv;
    cu_launch(s, act_kernel, dim3(cu_blocks(n, EW_THREADS)), dim3(EW_THREADS), 0, kind, gv, cu_contig(gv), uv,
              cu_contig(uv), u != NULL, (float *)cu_ptr(out), n);
    return cu_launched(s, op, "act_kernel");
}

static int gelu_code(mlxn_gelu_kind k) { return k == MLXN_GELU_TANH ? CU_ACT_GELU_TANH : CU_ACT_GELU_ERF; }

extern "C" mlxn_status cu_op_silu(mlxn_stream *s, const mlxn_tensor *x, mlxn_tensor *out) {
    return run_act(s, "silu", CU_ACT_SILU, x, NULL, out);
}
extern "C" mlxn_status cu_op_gelu(mlxn_stream *s, const mlxn_tensor *x, mlxn_gelu_kind kind, mlxn_tensor *out) {
    return run_act(s, "gelu", gelu_code(kind), x, NULL, out);
}
extern "C" mlxn_status cu_op_swiglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_tensor *out) {
    return run_act(s, "swiglu", CU_ACT_SILU, gate, up, out);
}
extern "C" mlxn_status cu_op_geglu(mlxn_stream *s, const mlxn_tensor *gate, const mlxn_tensor *up, mlxn_gelu_kind kind,
                                   mlxn_tensor *out) {
    return run_act(s, "geglu", gelu_code(kind), gate, up, out);
}

extern "C" mlxn_status cu_op_add(mlxn_stream *s, const mlxn_tensor *a, const mlxn_tensor *b, mlxn_tensor *out) {
    const char *op = "add";
    MLXN_TRY(cu_begin(s, op));
    int64_t n = numel(out), nb = numel(b);
    if (n == 0) return MLXN_OK;
    cu_view av = cu_view_of(a), bv = cu_view_of(b);
    cu_launch(s, add_kernel, dim3(cu_blocks(n, EW_THREADS)), dim3(EW_THREADS), 0, av, cu_contig(av), bv,
              cu_contig(bv), nb < 1 ? (int64_t)1 : nb, (float *)cu_ptr(out), n);
    return cu_launched(s, op, "add_kernel");
}

extern "C" mlxn_status cu_op_scale(mlxn_stream *s, const mlxn_tensor *x, float alpha, mlxn_tensor *out) {
    const char *op = "scale";
    MLXN_TRY(cu_begin(s, op));
    int64_t n = numel(out);
    if (n == 0) return MLXN_OK;
    cu_view xv = cu_view_of(x);
    scale_kernel<<<cu_blocks(n, EW_THREADS), EW_THREADS, 0, cu_ctx(s)->s>>>(xv, cu_contig(xv), alpha,
                                                                            (float *)cu_ptr(out), n);
    return cu_launched(s, op, "scale_kernel");
}

extern "C" mlxn_status cu_op_copy(mlxn_stream *s, const mlxn_tensor *src, mlxn_tensor *dst) {
    const char *op = "copy";
    MLXN_TRY(cu_begin(s, op));
    int64_t n = numel(dst);
    if (n == 0) return MLXN_OK;
    cu_view sv = cu_view_of(src), dv = cu_view_of(dst);
    bool sc = cu_contig(sv), dc = cu_contig(dv);
    if (sc && dc && sv.dt == dv.dt) /* same bytes: the copy engine's own path */
        return cu_check(cudaMemcpyAsync(cu_ptr(dst), cu_ptr(src), (size_t)n * mlxn_dtype_size(src->dtype),
                                        cudaMemcpyDeviceToDevice, cu_ctx(s)->s),
                        op, "cudaMemcpyAsync", cu_ctx(s)->index);
    copy_kernel<<<cu_blocks(n, EW_THREADS), EW_THREADS, 0, cu_ctx(s)->s>>>(sv, sc, dv, dc, n);
    return cu_launched(s, op, "copy_kernel");
}

mlxn_status cu_gather_as(mlxn_stream *s, const char *op, const mlxn_tensor *t, mlxn_dtype dt, void *dst) {
    int64_t n = numel(t);
    if (n == 0) return MLXN_OK;
    cu_view sv = cu_view_of(t), dv = sv;
    dv.p = (const char *)dst;
    dv.dt = (int)dt;
    int64_t st = 1;
    for (int i = dv.nd - 1; i >= 0; i--) {
        dv.st[i] = st;
        st *= dv.shape[i];
    }
    copy_kernel<<<cu_blocks(n, EW_THREADS), EW_THREADS, 0, cu_ctx(s)->s>>>(sv, cu_contig(sv), dv, true, n);
    return cu_launched(s, op, "copy_kernel (gather)");
}

mlxn_status cu_gather_f32(mlxn_stream *s, const char *op, const mlxn_tensor *t, float *dst) {
    return cu_gather_as(s, op, t, MLXN_DTYPE_F32, dst);
}
