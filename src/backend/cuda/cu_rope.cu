/* CUDA rotary position embedding, as the CPU backend computes it (rope.c):
 * row r of x [..., T, D] sits at t = r mod T, position
 * pos = ((float)t + offset) * scale; pair i < dims/2 turns by
 * pos * inv_freq[i], inv_freq[i] = 1 / freqs[i] or
 * exp(-i * (log(base) / (dims/2))) with the same polynomial exp as the CPU
 * (libm-style exps differ by ulps, and positions reach 10^5, where an ulp
 * of the frequency moves the angle visibly). Pairs are (x[2i], x[2i+1])
 * (traditional) or (x[i], x[i + dims/2]); each becomes
 * (a cos - b sin, a sin + b cos) with every product rounded on its own
 * (no fused multiply-add, as the CPU and MLX). Columns from dims on are
 * copied.
 *
 * One thread per output element; the two elements of a pair each compute
 * the pair's sin/cos (accurate sincosf: the op is bound by memory, and the
 * fast intrinsics lose accuracy at large angles). offset_tensor, when
 * given, is read on the device, so a captured graph can advance it. */
#include "backend/cuda/cu_rope.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

/* x f32 view [..., T, D]; freqs f32 [dims/2] (stride fs) or NULL; offp:
 * device i32 [1] or NULL; out f32 [rows, D] contiguous. */
__global__ void rope_kernel(cu_view x, int64_t rows, int64_t T, int64_t D, int dims, bool trad, float base_step,
                            const float *freqs, int64_t fs, int offset, const int32_t *offp, float scale,
                            float *out) {
    cu_pdl_wait(); /* programmatic launch (cu_launch): inputs come from the kernel before */
    cu_pdl_launch_dependents();
    const int64_t n = rows * D;
    const cu_rope_args ra = {T, D, dims, trad, base_step, freqs, fs, (float)(offp ? *offp : offset), scale};
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
        out[e] = cu_rope_elem(x, ra, e);
}

extern "C" mlxn_status cu_op_rope(mlxn_stream *s, const mlxn_tensor *x, const mlxn_rope_params *p, mlxn_tensor *out) {
    const char *op = "rope";
    MLXN_TRY(cu_begin(s, op));
    cu_view xv = cu_view_of(x);
    int64_t rows = cu_rows(xv), D = cu_last(xv), T = x->shape[x->ndim - 2];
    if (rows == 0 || D == 0) return MLXN_OK;
    int half = p->dims / 2;
    float step = p->freqs ? 0.0f : logf(p->base) / (float)half;
    cu_launch(s, rope_kernel, dim3(cu_blocks(rows * D, 256)), dim3(256), 0,
        xv, rows, T, D, p->dims, p->traditional, step, p->freqs ? (const float *)cu_ptr(p->freqs) : NULL,
        p->freqs ? p->freqs->strides[0] : 0, p->offset,
        p->offset_tensor ? (const int32_t *)cu_ptr(p->offset_tensor) : NULL, p->scale, (float *)cu_ptr(out));
    return cu_launched(s, op, "rope_kernel");
}
