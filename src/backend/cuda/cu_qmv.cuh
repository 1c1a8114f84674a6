/* Device helpers shared by the quantized mat-vec kernels (cu_qmatmul.cu:
 * the general and qmv1 kernels; cu_qmv_fast.cu: the streaming decode
 * kernel): the launch arguments, the vector code loads and the exact
 * code -> float decoders. */
#ifndef MLXN_CU_QMV_CUH
#define MLXN_CU_QMV_CUH

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "backend/cuda/cu_quant.cuh"
#include "backend/cuda/cu_rope.cuh"

/* What a qmv launch reads and writes. */
typedef struct qmv_args {
    cu_qmat w;          /* [N, K] quantized along K */
    const float *x;     /* [M, ldx], unit stride along K, 16-byte aligned rows */
    int64_t ldx;
    int M;              /* x rows of this launch, <= NX */
    int K;              /* columns (codes per row) */
    int64_t N;
    float *out;         /* [M, ldo] */
    int64_t ldo;
    int gshift;         /* log2(group size) */
    int vec;            /* rows allow the kernel's vector code loads */
    /* Only the one-row tensor-core kernel reads these (cu_qmv_mma_fused;
     * zero elsewhere): x is first rms-normed with the weight nw [K]
     * (dtype nw_dt, unit stride; the effective weight is nw_off + nw
     * rounded to nw_dt, as rms_norm's) when nw is set, and out = res + the
     * product when res is set (res [N], unit stride; may be out); with glu
     * (a CU_ACT_* kind + 1) out [N / 2] = act(gate) * up of the rows
     * [gate; up]. */
    const void *nw;
    int nw_dt;
    float nw_off, eps;
    const float *res;
    int glu;
    /* rk (one row, cu_qmv_mma_fused): the rows are q, k and v heads of rk_d
     * rows (rk_q rows of q, rk_qk of q and k), and the epilogue also does
     * rope_kv_write's work on them: q rotated into rk_qout [rk_q], k
     * rotated and v stored at row *rk_slot of the caches rk_kc / rk_vc
     * (dtypes rk_kdt / rk_vdt, element strides [head, row, dim], rk_cap
     * rows); the rotation rk_rope, its position *rk_offp when set; a slot
     * that misses is recorded in err and nothing but out is written. */
    int rk, rk_d;
    int64_t rk_q, rk_qk, rk_cap;
    cu_rope_args rk_rope;
    const int32_t *rk_offp, *rk_slot;
    float *rk_qout;
    void *rk_kc, *rk_vc;
    int rk_kdt, rk_vdt;
    int64_t rk_kst[3], rk_vst[3];
    long long *err;
} qmv_args;

/* Load the WPL words of one step at p: 16-byte loads that skip L1 when
 * WPL % 4 == 0 and vec, 8-byte loads when WPL % 2 == 0 and vec, else
 * 4-byte loads. */
template <int WPL>
__device__ __forceinline__ void load_words(const uint32_t *p, uint32_t (&w)[WPL], int vec) {
    if (WPL % 4 == 0 && vec) {
#pragma unroll
        for (int i = 0; i < WPL / 4; i++)
            asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                         : "=r"(w[4 * i]), "=r"(w[4 * i + 1]), "=r"(w[4 * i + 2]), "=r"(w[4 * i + 3])
                         : "l"(p + 4 * i));
    } else if (WPL % 2 == 0 && vec) {
#pragma unroll
        for (int i = 0; i < WPL / 2; i++) {
            uint2 v = __ldg((const uint2 *)(p + 2 * i));
            w[2 * i] = v.x;
            w[2 * i + 1] = v.y;
        }
    } else {
#pragma unroll
        for (int i = 0; i < WPL; i++) w[i] = __ldg(p + i);
    }
}

/* Code i of a step's words (compile-time i after unrolling). */
template <int BITS, int WPL>
__device__ __forceinline__ uint32_t code_at(const uint32_t (&w)[WPL], int i) {
    const int bit = i * BITS, word = bit >> 5, sh = bit & 31;
    uint32_t v = (sh + BITS <= 32) ? (w[word] >> sh) : __funnelshift_r(w[word], w[word + 1 < WPL ? word + 1 : word], sh);
    return v & ((1u << BITS) - 1u);
}

/* Integer code -> float, exact for codes < 2^23. */
__device__ __forceinline__ float code_f32(uint32_t q) { return __uint_as_float(q | 0x4B000000u) - 8388608.0f; }

/* Byte k of v as a float (v's bytes are codes): one permute puts the byte
 * under the exponent of 2^23, one add removes the 2^23. */
__device__ __forceinline__ float byte_f32(uint32_t v, int k) {
    return __uint_as_float(__byte_perm(v, 0x4B000000u, 0x7440u | (unsigned)k)) - 8388608.0f;
}

/* e2m1 code -> 2 * value: magnitudes 0, 1, 2, 3, 4, 6, 8, 12 picked by a
 * byte permute, the sign OR-ed in (the 1/2 is folded into the scale). */
__device__ __forceinline__ float e2m1_x2(uint32_t q) {
    uint32_t mag = __byte_perm(0x03020100u, 0x0C080604u, q & 7u) & 0xffu;
    return __uint_as_float(__float_as_uint(code_f32(mag)) | ((q & 8u) << 28));
}

__device__ __forceinline__ float e4m3_f32(uint32_t q) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    /* the hardware conversion (e4m3 "fn": 0x7f / 0xff are NaN, as MLX decodes them) */
    return __half2float(__half(__nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)q, __NV_E4M3)));
#else
    return mlxn_e4m3_to_f32((uint8_t)q);
#endif
}

template <int MODE, int BITS>
__device__ __forceinline__ float code_value(uint32_t q) {
    if (MODE == MLXN_QUANT_AFFINE) return code_f32(q);
    if (MODE == MLXN_QUANT_MXFP8) return e4m3_f32(q);
    return e2m1_x2(q);
}

/* The 8 code values 8c .. 8c + 7 of one step's words, in order. */
template <int MODE, int BITS, int WPL>
__device__ __forceinline__ void codes8(const uint32_t (&w)[WPL], int c, float (&q)[8]) {
    if (MODE == MLXN_QUANT_AFFINE && BITS == 4) {
        const uint32_t v = w[c], lo = v & 0x0F0F0F0Fu, hi = (v >> 4) & 0x0F0F0F0Fu; /* even / odd codes */
#pragma unroll
        for (int k = 0; k < 4; k++) q[2 * k] = byte_f32(lo, k), q[2 * k + 1] = byte_f32(hi, k);
    } else if (MODE == MLXN_QUANT_AFFINE && BITS == 8) {
#pragma unroll
        for (int k = 0; k < 4; k++) q[k] = byte_f32(w[2 * c], k), q[4 + k] = byte_f32(w[2 * c + 1], k);
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++) q[i] = code_value<MODE, BITS>(code_at<BITS, WPL>(w, 8 * c + i));
    }
}

/* The streaming decode kernels (cu_qmv_fast.cu) for 1..8 x rows; false
 * (nothing launched) when its shape/mode/alignment conditions do not hold,
 * then the caller runs the general kernel. *st receives launch errors. */
bool cu_qmv_fast(const qmv_args &a, mlxn_stream *s, mlxn_status *st);

/* The mat-vec on the tensor cores (cu_qmv_mma.cu): 1..8 x rows of affine
 * 4-bit weights with groups of 64 or 128, one x row of every other affine
 * width (2..8 bits) and group size (32, 64, 128), mxfp4 or nvfp4; false
 * (nothing launched) outside its formats and shapes. */
bool cu_qmv_mma(const qmv_args &a, mlxn_stream *s, mlxn_status *st);
/* The one-row launch for every format but 4-bit g64 / g128 (cu_qmv_mma_bits.cu, cu_qmv_mma_bits.cuh). */
bool cu_qmv_mma_bits(const qmv_args &a, mlxn_stream *s, mlxn_status *st);
/* Whether cu_qmv_mma takes these weights (N rows of K codes) for one x row. */
bool cu_qmv_mma_takes(const cu_qmat &w, int64_t N, int64_t K, mlxn_stream *s);
/* The one-row kernel with a.nw / a.res (the fused op); false (nothing
 * launched) where cu_qmv_mma_takes is false, x is not 16-byte aligned or
 * M != 1. */
bool cu_qmv_mma_fused(const qmv_args &a, mlxn_stream *s, mlxn_status *st);

#endif
