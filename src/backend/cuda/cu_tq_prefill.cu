/* TurboQuant attention for prefill chunks on the GPU: the held keys and
 * values dequantized into bf16 in the rotated domain, then the dense
 * tensor-core flash attention (cu_attn_flash.cu) over them.
 *
 * Why: a chunk of Tq query tokens has G Tq rows per kv head, more than the
 * 16 the TurboQuant tensor-core decode kernels take, so those calls ran the
 * f32 kernel, whose scores and value sums are CUDA-core FMAs: on an H200 a
 * random Llama-3-8B prefilled 4096 tokens at 4740 tok/s with tq4 against
 * 17292 with the bf16 cache (docs/perf.md). Attention of a chunk is
 * O(Tq n D) work over O(n D) cached codes, so decoding the codes once per
 * call costs little beside it, and the flash kernel does the rest on the
 * tensor cores.
 *
 * The rotation is orthonormal (R x = FWHT(signs * x) / sqrt(D)), so
 * q . k = (R q) . (R k) and the output is R^-1 of the weighted sum of the
 * rotated values. In the rotated domain a held key is its norm times its
 * codes' levels / sqrt(D) (tq_layout.h). So: q rows rotated (f32), the
 * cache's held positions [lo, end) in position order as bf16 K and V
 * [Hkv, n, D], mlxn_sdpa's own kernel with the op's scale, causal rule,
 * window and softcap (its semantics are what mlxn_tq_sdpa promises, with
 * the held positions as the keys: lower-right alignment puts query t at
 * key index t + n - Tq, which is position pos + t), then each output row
 * rotated back in place (FWHT, times signs / sqrt(D)).
 *
 * Exactness: K and V are rounded to bf16 (relative 2^-9, as the dense
 * bf16 cache stores them), and the flash kernel rounds q to bf16 for its
 * products; sums are f32. test_backend_tq bounds it by the case's
 * measured sensitivity to that rounding. */
#include "backend/cuda/cu_attn.cuh"
#include "backend/cuda/cu_tq_attn.cuh"

#include <cuda_bf16.h>
#include <string.h>

enum { TQP_WARPS = 4 }; /* rows per block of both kernels: one warp per row */

/* Held positions lo .. lo + n - 1 of the K (blockIdx.y 0) or V (1) side,
 * dequantized into the rotated domain: out [Hkv, n, D] bf16, row (h, i)
 * = norm / sqrt(D) * level[code_d] of slot (lo + i) % cap. Lane l writes
 * dims l, l + 32, ... (64-byte pieces per warp and step). */
__global__ void __launch_bounds__(TQP_WARPS * 32)
tq_rows_dense(const uint8_t *kc, const uint8_t *vc, const float *kn, const float *vn, int64_t krow, int64_t vrow,
              int kb, int vb, int D, int64_t cap, int64_t lo, int64_t n, int64_t rows, __nv_bfloat16 *kout,
              __nv_bfloat16 *vout) {
    __shared__ float lv[256];
    const bool isv = blockIdx.y == 1;
    const int bits = isv ? vb : kb;
    cu_tq_load_levels(bits, lv);
    __syncthreads();
    const int64_t r = (int64_t)blockIdx.x * TQP_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return;
    const int lane = threadIdx.x & 31;
    const int64_t h = r / n, i = r % n, slot = h * cap + (lo + i) % cap;
    const uint8_t *cr = (isv ? vc : kc) + slot * (isv ? vrow : krow);
    const float sc = (isv ? vn : kn)[slot] * cu_tq_rsqrt_d(D);
    __nv_bfloat16 *o = (isv ? vout : kout) + r * D;
    for (int d = lane; d < D; d += 32) o[d] = __float2bfloat16_rn(sc * lv[mlxn_tq_get_code(cr, d, bits)]);
}

/* Row r of `in` (rows (h, t), h < rows / Tq, element (h, t, d) at
 * in[h s0 + t s1 + d s2]) rotated into out [rows, D] contiguous: the
 * query's R x = FWHT(signs * x) / sqrt(D) (back = false), or the output's
 * R^-1 y = signs * FWHT(y) / sqrt(D) (back = true; in may be out). */
template <int D>
__global__ void __launch_bounds__(TQP_WARPS * 32)
tq_rows_rotate(const float *in, int64_t s0, int64_t s1, int64_t s2, int64_t Tq, const float *signs, int64_t rows,
               bool back, float *out) {
    constexpr int E = D / 32;
    const int64_t r = (int64_t)blockIdx.x * TQP_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return;
    const int lane = threadIdx.x & 31;
    const float *src = in + (r / Tq) * s0 + (r % Tq) * s1;
    float x[E];
#pragma unroll
    for (int j = 0; j < E; j++) {
        const int d = 32 * j + lane;
        x[j] = src[d * s2] * (back ? 1.0f : signs[d]);
    }
    cu_tq_fwht_warp<E>(x, lane);
    const float rd = cu_tq_rsqrt_d(D);
    float *dst = out + r * D;
#pragma unroll
    for (int j = 0; j < E; j++) {
        const int d = 32 * j + lane;
        dst[d] = x[j] * rd * (back ? signs[d] : 1.0f);
    }
}

static mlxn_status rotate_launch(mlxn_stream *s, const float *in, const int64_t st[3], int64_t Tq, const float *signs,
                                 int64_t rows, int D, bool back, float *out) {
    const unsigned grid = (unsigned)((rows + TQP_WARPS - 1) / TQP_WARPS);
    cudaStream_t cs = cu_ctx(s)->s;
    switch (D) {
    case 64: tq_rows_rotate<64><<<grid, TQP_WARPS * 32, 0, cs>>>(in, st[0], st[1], st[2], Tq, signs, rows, back, out); break;
    case 128: tq_rows_rotate<128><<<grid, TQP_WARPS * 32, 0, cs>>>(in, st[0], st[1], st[2], Tq, signs, rows, back, out); break;
    case 256: tq_rows_rotate<256><<<grid, TQP_WARPS * 32, 0, cs>>>(in, st[0], st[1], st[2], Tq, signs, rows, back, out); break;
    default: tq_rows_rotate<512><<<grid, TQP_WARPS * 32, 0, cs>>>(in, st[0], st[1], st[2], Tq, signs, rows, back, out); break;
    }
    return cu_launched(s, "tq_sdpa", "tq_rows_rotate");
}

/* A contiguous view of `ndim` dims over device memory at p (a scratch
 * buffer: the view's buffer is `b`, which owns nothing). */
static mlxn_tensor scratch_view(mlxn_buffer *b, void *p, size_t bytes, mlxn_dtype dt, int ndim, const int64_t *shape) {
    memset(b, 0, sizeof *b);
    b->ptr = p;
    b->size = bytes;
    mlxn_tensor t;
    memset(&t, 0, sizeof t);
    t.buf = b;
    t.dtype = dt;
    t.ndim = ndim;
    int64_t st = 1;
    for (int i = ndim - 1; i >= 0; i--) t.shape[i] = shape[i], t.strides[i] = st, st *= shape[i];
    return t;
}

mlxn_status cu_tq_sdpa_dense(mlxn_stream *s, const mlxn_tq_cache *c, const mlxn_tensor *q,
                             const mlxn_tq_sdpa_params *prm, mlxn_tensor *out, bool *taken) {
    const char *op = "tq_sdpa";
    *taken = false;
    const int64_t Hq = q->shape[1], Tq = q->shape[2], Hkv = c->p.n_kv_heads, cap = c->p.capacity;
    const int D = c->p.head_dim;
    const int64_t end = prm->pos + Tq, lo = end > cap ? end - cap : 0, n = end - lo;
    if (prm->pos_tensor || prm->pos < 0 || (D != 64 && D != 128 && D != 256 && D != 512)) return MLXN_OK;
    /* the dense kernel's shapes, before anything is allocated: views without memory behind them yet */
    mlxn_buffer bq, bk, bv;
    const int64_t qsh[4] = {1, Hq, Tq, D}, ksh[4] = {1, Hkv, n, D};
    const size_t kv_bytes = sizeof(__nv_bfloat16) * (size_t)(Hkv * n * D), q_bytes = sizeof(float) * (size_t)(Hq * Tq * D);
    char *scratch = NULL; /* [K bf16 | V bf16 | q f32]: 16-byte aligned pieces (D is a multiple of 64) */
    mlxn_tensor qt = scratch_view(&bq, NULL, q_bytes, MLXN_DTYPE_F32, 4, qsh);
    mlxn_tensor kt = scratch_view(&bk, NULL, kv_bytes, MLXN_DTYPE_BF16, 4, ksh);
    mlxn_tensor vt = scratch_view(&bv, NULL, kv_bytes, MLXN_DTYPE_BF16, 4, ksh);
    mlxn_sdpa_params sp;
    memset(&sp, 0, sizeof sp);
    sp.scale = prm->scale, sp.causal = prm->causal, sp.window = prm->window, sp.softcap = prm->softcap;
    /* else the f32 kernel takes the call */
    if (!cu_attn_mma_fits(&qt, &kt, &vt, &sp, cu_ctx(s)->smem_optin) || Hkv * n > INT32_MAX || Hq * Tq > INT32_MAX)
        return MLXN_OK;
    /* No room for the decoded positions (bf16 K and V of every held one:
     * 32 MB at 8192 positions of Llama-3-8B): the f32 kernel too, which
     * needs only its partials, rather than a failed prefill. */
    if (cu_scratch(s, op, 2 * kv_bytes + q_bytes, (void **)&scratch) != MLXN_OK) return MLXN_OK;
    bk.ptr = scratch, bv.ptr = scratch + kv_bytes, bq.ptr = scratch + 2 * kv_bytes;
    const int64_t rows = Hkv * n;
    tq_rows_dense<<<dim3((unsigned)((rows + TQP_WARPS - 1) / TQP_WARPS), 2), TQP_WARPS * 32, 0, cu_ctx(s)->s>>>(
        (const uint8_t *)cu_ptr(&c->k_codes), (const uint8_t *)cu_ptr(&c->v_codes), (const float *)cu_ptr(&c->k_norms),
        (const float *)cu_ptr(&c->v_norms), c->k_row, c->v_row, c->p.k_bits, c->p.v_bits, D, cap, lo, n, rows,
        (__nv_bfloat16 *)bk.ptr, (__nv_bfloat16 *)bv.ptr);
    mlxn_status st = cu_launched(s, op, "tq_rows_dense");
    const float *signs = (const float *)cu_ptr(&c->signs);
    if (st == MLXN_OK)
        st = rotate_launch(s, (const float *)cu_ptr(q), q->strides + 1, Tq, signs, Hq * Tq, D, false, (float *)bq.ptr);
    if (st == MLXN_OK) st = cu_attn_mma(s, &qt, &kt, &vt, &sp, out);
    const int64_t ost[3] = {Tq * D, D, 1}; /* out: contiguous [1, Hq, Tq, D] */
    if (st == MLXN_OK) st = rotate_launch(s, (const float *)cu_ptr(out), ost, Tq, signs, Hq * Tq, D, true, (float *)cu_ptr(out));
    cu_scratch_free(s, scratch);
    *taken = st == MLXN_OK;
    return st;
}
