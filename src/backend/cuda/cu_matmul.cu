/* CUDA dense matmul through cuBLAS: out[..., N] = x[..., K] @ W^T
 * (transpose, W [N, K]) or x @ W (W [K, N]); x f32, out f32, W f32/bf16/f16.
 *
 *   f32 W:  SGEMM in f32 (cuBLAS's default math mode: no TF32), so the
 *           result matches the CPU's f32 sums up to summation order.
 *   bf16 W: x is rounded to bf16 (in scratch) and cublasGemmEx multiplies
 *           bf16 x bf16 with f32 accumulation and f32 output: cuBLAS takes
 *           no mixed f32 x bf16 product, and rounding x costs 2 bytes per
 *           element once where widening W would cost 6 per weight on every
 *           call. The error is x's bf16 rounding (relative 2^-9 per element),
 *           what MLX itself computes for a bf16 model.
 *   f16 W:  W is widened to f32 in scratch and multiplied by SGEMM. Rounding
 *           x to f16 instead would overflow for |x| > 65504; this slower path
 *           keeps the op exact for any finite input.
 * Row-major operands map onto cuBLAS's column-major view without copies:
 * a row-major [r, c] matrix with row stride ld is a column-major c x r
 * matrix with leading dimension ld. A W view with a unit stride on either
 * axis is used in place (a transposed view just flips the operation);
 * anything else is gathered. x rows must be evenly spaced with a unit last
 * stride, else x is gathered. The cuBLAS handle is made on the stream's
 * first matmul and kept with the stream. */
#include <limits.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

static mlxn_status blas_check(cublasStatus_t e, mlxn_stream *s, const char *what) {
    if (e == CUBLAS_STATUS_SUCCESS) return MLXN_OK;
    return mlxn_fail(e == CUBLAS_STATUS_ALLOC_FAILED ? MLXN_ERR_OUT_OF_MEMORY : MLXN_ERR_DEVICE,
                     "cuda:%d: matmul: %s failed: %s", cu_ctx(s)->index, what,
                     cu_ctx(s)->blas_api.status_string(e));
}

mlxn_status cu_blas_handle(mlxn_stream *s, cublasHandle_t *h) {
    cu_stream *c = cu_ctx(s);
    if (!c->blas) {
        MLXN_TRY(cu_blas_load(&c->blas_api, c->index));
        MLXN_TRY(blas_check(c->blas_api.create(&c->blas), s, "cublasCreate"));
        cublasStatus_t e = c->blas_api.set_stream(c->blas, c->s);
        if (e != CUBLAS_STATUS_SUCCESS) {
            c->blas_api.destroy(c->blas);
            c->blas = NULL;
            return blas_check(e, s, "cublasSetStream");
        }
    }
    *h = c->blas;
    return MLXN_OK;
}

static bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

extern "C" mlxn_status cu_op_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, bool transpose,
                                    mlxn_tensor *out) {
    const char *op = "matmul";
    MLXN_TRY(cu_begin(s, op));
    cu_view xv = cu_view_of(x);
    const int64_t M = cu_rows(xv), K = cu_last(xv), N = out->shape[out->ndim - 1];
    float *o = (float *)cu_ptr(out);
    cudaStream_t cs = cu_ctx(s)->s;
    if (M == 0 || N == 0) return MLXN_OK;
    if (K == 0)
        return cu_check(cudaMemsetAsync(o, 0, (size_t)(M * N) * sizeof(float), cs), op, "cudaMemsetAsync",
                        cu_ctx(s)->index);
    if (!fits_int(M) || !fits_int(N) || !fits_int(K))
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: matmul with a dimension past 2^31 is not built yet");
    cublasHandle_t h = NULL;
    MLXN_TRY(cu_blas_handle(s, &h));

    const bool bf16 = w->dtype == MLXN_DTYPE_BF16;
    const int64_t wr = w->shape[0], wc = w->shape[1];
    void *scratch_w = NULL, *scratch_x = NULL;
    mlxn_status st = MLXN_OK;

    /* W as a column-major matrix: (ptr, ld, whether it is stored transposed) */
    const void *wp = cu_ptr(w);
    int64_t ldw;
    bool w_rowmajor;
    if (w->dtype != MLXN_DTYPE_F16 && (wc == 1 || w->strides[1] == 1) && (wr == 1 || w->strides[0] >= wc)) {
        w_rowmajor = true;
        ldw = wr == 1 ? (wc > 0 ? wc : 1) : w->strides[0];
    } else if (w->dtype != MLXN_DTYPE_F16 && (wr == 1 || w->strides[0] == 1) && (wc == 1 || w->strides[1] >= wr)) {
        w_rowmajor = false;
        ldw = wc == 1 ? (wr > 0 ? wr : 1) : w->strides[1];
    } else {
        /* gather (and for f16 widen) into a contiguous row-major copy */
        mlxn_dtype gdt = bf16 ? MLXN_DTYPE_BF16 : MLXN_DTYPE_F32;
        MLXN_TRY(cu_scratch(s, op, (size_t)(wr * wc) * mlxn_dtype_size(gdt), &scratch_w));
        st = cu_gather_as(s, op, w, gdt, scratch_w);
        wp = scratch_w;
        ldw = wc;
        w_rowmajor = true;
    }

    /* x as [M, ldx] rows of W's compute dtype */
    int64_t ldx = K;
    const void *xp = cu_ptr(x);
    if (st == MLXN_OK && (bf16 || xv.st[xv.nd - 1] != 1 || !cu_rows_uniform(xv, &ldx) || !fits_int(ldx))) {
        ldx = K;
        st = cu_scratch(s, op, (size_t)(M * K) * (bf16 ? 2 : 4), &scratch_x);
        if (st == MLXN_OK) st = cu_gather_as(s, op, x, bf16 ? MLXN_DTYPE_BF16 : MLXN_DTYPE_F32, scratch_x);
        xp = scratch_x;
    }
    if (st == MLXN_OK && !fits_int(ldw))
        st = mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: matmul with a W stride past 2^31 is not built yet");

    if (st == MLXN_OK) {
        /* column-major: out^T [N x M] = op(W) [N x K] * x^T [K x M].
         * transpose (W logical [N, K]): row-major storage is K x N col-major -> op T;
         * not transposed (W logical [K, N]): row-major storage is N x K col-major -> op N.
         * A W stored column-major flips that. */
        cublasOperation_t opw = (transpose == w_rowmajor) ? CUBLAS_OP_T : CUBLAS_OP_N;
        const float one = 1.0f, zero = 0.0f;
        if (bf16)
            st = blas_check(cu_ctx(s)->blas_api.gemm_ex(h, opw, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, wp, CUDA_R_16BF, (int)ldw,
                                         xp, CUDA_R_16BF, (int)ldx, &zero, o, CUDA_R_32F, (int)N, CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT),
                            s, "cublasGemmEx (bf16)");
        else
            st = blas_check(cu_ctx(s)->blas_api.sgemm(h, opw, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, (const float *)wp, (int)ldw,
                                        (const float *)xp, (int)ldx, &zero, o, (int)N),
                            s, "cublasSgemm");
    }
    cu_scratch_free(s, scratch_x);
    cu_scratch_free(s, scratch_w);
    return st;
}
