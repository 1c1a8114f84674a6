/* CUDA scaled dot-product attention, simple and exact in f32: the
 * semantics of the CPU backend (backend/cpu/sdpa_kernels.h): GQA (query
 * head h reads kv head h / (Hq / Hkv)), causal lower-right aligned,
 * sliding window, softcap tanh(s / c) * c, bool or additive f32 masks
 * broadcast to [B, Hq, Tq, Tk], per-head sinks that join the softmax
 * denominator, zeros for a row that sees no key, an optional device-side
 * kv_len (keys past it are capacity).
 *
 * One warp per query row, keys in order with an online softmax (running
 * max m, denominator l, output o rescaled when m grows), so any Tk works
 * without scratch. Lanes split the head dims (d = lane + 32 c; D and Dv up
 * to 512, 16 values per lane in registers): q.k is a lane-partial dot and
 * a shuffle reduction, reads of K and V rows are coalesced. This is the
 * exact fallback: calls with bf16/f16 K/V of head dim 64/128/256 and
 * no mask or sinks go to the tensor-core kernel (cu_attn_flash.cu) unless
 * the environment sets MLXN_CUDA_SDPA_SIMPLE=1 (for comparisons; read when
 * the stream is made, cu_knobs). D or Dv
 * past 512 reports "not built yet". */

#include <math.h>

#include "backend/cuda/cu_attn.cuh"
#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

enum { SD_WARPS = 4, SD_MAXC = 16 /* 512 / 32 */ };

typedef struct sd_tensor {
    const char *p;
    int dt;
    int64_t s[4]; /* element strides over [B, H, T, D] */
} sd_tensor;

typedef struct sdpa_args {
    sd_tensor q, k, v;          /* [B, Hq, Tq, D], [B, Hkv, Tk, D], [B, Hkv, Tk, Dv] */
    int64_t B, Hq, G, Tq, Tk, D, Dv;
    float scale, softcap;
    int causal;
    int64_t window;
    const char *mask;           /* NULL, or bool/f32 at strides ms (0 on broadcast axes) */
    int mdt;
    int64_t ms[4];
    const float *sinks;         /* NULL or [Hq] at stride ss */
    const int32_t *kv_len;      /* NULL or [1] on the device: keys used, clamped to [0, Tk] */
    int64_t ss;
    float *out;                 /* [B, Hq, Tq, Dv] contiguous */
} sdpa_args;

__device__ __forceinline__ const char *sd_row(const sd_tensor &t, int64_t b, int64_t h, int64_t i) {
    return t.p + (b * t.s[0] + h * t.s[1] + i * t.s[2]) * (t.dt == MLXN_DTYPE_F32 ? 4 : 2);
}

__global__ void __launch_bounds__(32 * SD_WARPS) sdpa_kernel(sdpa_args a) {
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * SD_WARPS + (threadIdx.x >> 5);
    if (r >= a.B * a.Hq * a.Tq) return;
    const int64_t i = r % a.Tq, h = (r / a.Tq) % a.Hq, b = r / (a.Tq * a.Hq), hk = h / a.G;

    float q[SD_MAXC], o[SD_MAXC];
    const char *qr = sd_row(a.q, b, h, i);
#pragma unroll
    for (int c = 0; c < SD_MAXC; c++) {
        int64_t d = lane + 32 * c;
        q[c] = d < a.D ? cu_load(qr, a.q.dt, d * a.q.s[3]) * a.scale : 0.0f; /* q is scaled first, as MLX */
        o[c] = 0.0f;
    }
    /* keys [lo, hi) that causal / window leave visible; kv_len (read here,
     * on the device, so the launch can live in a captured graph) shortens
     * the key range and moves the causal alignment with it */
    int64_t Tk = a.Tk;
    if (a.kv_len) Tk = min((int64_t)max(*a.kv_len, 0), a.Tk);
    const int64_t pos = i + Tk - a.Tq;
    int64_t lo = 0, hi = Tk;
    if (a.causal && pos + 1 < hi) hi = pos + 1;
    if (a.window > 0 && pos - a.window + 1 > lo) lo = pos - a.window + 1;

    float m = -INFINITY, l = 0.0f;
    if (a.sinks) {
        m = a.sinks[h * a.ss];
        l = m == -INFINITY ? 0.0f : 1.0f; /* exp(sink - m) with m = sink */
    }
    const char *mrow = a.mask ? a.mask + (b * a.ms[0] + h * a.ms[1] + i * a.ms[2]) * (a.mdt == MLXN_DTYPE_BOOL ? 1 : 4)
                              : NULL;
    for (int64_t j = lo; j < hi; j++) {
        if (mrow && a.mdt == MLXN_DTYPE_BOOL && !((const uint8_t *)mrow)[j * a.ms[3]]) continue;
        const char *kr = sd_row(a.k, b, hk, j);
        float part = 0.0f;
#pragma unroll
        for (int c = 0; c < SD_MAXC; c++) {
            int64_t d = lane + 32 * c;
            if (d < a.D) part = fmaf(q[c], cu_load(kr, a.k.dt, d * a.k.s[3]), part);
        }
        float sc = cu_warp_sum(part);
        if (a.softcap > 0.0f) sc = tanhf(sc / a.softcap) * a.softcap;
        if (mrow && a.mdt == MLXN_DTYPE_F32) sc += ((const float *)mrow)[j * a.ms[3]];
        if (sc == -INFINITY) continue; /* a hidden key: weight exactly 0 */
        const float mn = fmaxf(m, sc);
        const float corr = m == -INFINITY ? 0.0f : expf(m - mn);
        const float p = expf(sc - mn);
        l = l * corr + p;
        const char *vr = sd_row(a.v, b, hk, j);
#pragma unroll
        for (int c = 0; c < SD_MAXC; c++) {
            int64_t d = lane + 32 * c;
            if (d < a.Dv) o[c] = o[c] * corr + p * cu_load(vr, a.v.dt, d * a.v.s[3]);
        }
        m = mn;
    }
    const float inv = (m == -INFINITY || l == 0.0f) ? 0.0f : 1.0f / l; /* nothing visible: zeros */
    float *orow = a.out + r * a.Dv;
#pragma unroll
    for (int c = 0; c < SD_MAXC; c++) {
        int64_t d = lane + 32 * c;
        if (d < a.Dv) orow[d] = o[c] * inv;
    }
}

static sd_tensor sd_of(const mlxn_tensor *t) {
    sd_tensor v;
    v.p = (const char *)cu_ptr(t);
    v.dt = (int)t->dtype;
    for (int i = 0; i < 4; i++) v.s[i] = t->strides[i];
    return v;
}

extern "C" mlxn_status cu_op_sdpa(mlxn_stream *s, const mlxn_tensor *q, const mlxn_tensor *k, const mlxn_tensor *v,
                                  const mlxn_sdpa_params *p, mlxn_tensor *out) {
    const char *op = "sdpa";
    MLXN_TRY(cu_begin(s, op));
    sdpa_args a;
    a.q = sd_of(q);
    a.k = sd_of(k);
    a.v = sd_of(v);
    a.B = q->shape[0], a.Hq = q->shape[1], a.Tq = q->shape[2], a.D = q->shape[3];
    a.Tk = k->shape[2], a.Dv = v->shape[3];
    if (a.B == 0 || a.Hq == 0 || a.Tq == 0 || a.Dv == 0) return MLXN_OK;
    if (!cu_ctx(s)->knobs.sdpa_simple && cu_attn_mma_fits(q, k, v, p, cu_ctx(s)->smem_optin)) return cu_attn_mma(s, q, k, v, p, out);
    if (a.D > 32 * SD_MAXC || a.Dv > 32 * SD_MAXC)
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: sdpa with head dims %lld/%lld (over %d) is not built yet",
                         (long long)a.D, (long long)a.Dv, 32 * SD_MAXC);
    a.G = a.Hq / k->shape[1];
    a.scale = p->scale;
    a.softcap = p->softcap;
    a.causal = p->causal;
    a.window = p->window;
    a.mask = NULL;
    a.mdt = 0;
    for (int i = 0; i < 4; i++) a.ms[i] = 0;
    if (p->mask) {
        const mlxn_tensor *m = p->mask;
        a.mask = (const char *)cu_ptr(m);
        a.mdt = (int)m->dtype;
        for (int i = 0; i < m->ndim; i++) a.ms[4 - m->ndim + i] = m->shape[i] == 1 ? 0 : m->strides[i];
    }
    a.sinks = p->sinks ? (const float *)cu_ptr(p->sinks) : NULL;
    a.ss = p->sinks ? p->sinks->strides[0] : 0;
    a.kv_len = p->kv_len ? (const int32_t *)cu_ptr(p->kv_len) : NULL;
    a.out = (float *)cu_ptr(out);
    int64_t rows = a.B * a.Hq * a.Tq;
    int64_t blocks = (rows + SD_WARPS - 1) / SD_WARPS;
    if (blocks > INT32_MAX) return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "cuda: sdpa with %lld query rows is not built yet",
                                             (long long)rows);
    sdpa_kernel<<<(unsigned)blocks, 32 * SD_WARPS, 0, cu_ctx(s)->s>>>(a);
    return cu_launched(s, op, "sdpa_kernel");
}
