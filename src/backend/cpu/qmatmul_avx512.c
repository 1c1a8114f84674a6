/* AVX-512 kernels of the quantized matmul (the AVX512 ISA level: F, BW, VL,
 * VNNI; VBMI is used when the processor has it, checked at run time).
 *
 * 1. The integer mat-vec (decode: affine, transpose, a few x rows).
 *    Per group g of a weight row, dot(x, w) = s_g * dot(x, q) + b_g * sum(x).
 *    sum(x) per group is computed once per call in f32. dot(x, q) runs in
 *    integers: x is quantized once per call, per group, to xi = rint(x / xs)
 *    with xs = max|x| / 32639, and xi is split into two signed bytes,
 *    xi = 256 * xh + xl (xh, xl in [-127, 127]), so VPDPBUSD (unsigned code
 *    byte x signed byte, 64 products per instruction) does the products on
 *    the raw codes with no widening; 256 * dot(q, xh) + dot(q, xl) is exact
 *    in int32 (|dot| < 128 * 255 * 32639 < 2^31).
 *    Numerical effect: x is rounded to 16 bits relative to its group's
 *    largest element (|error| <= max|x| / 65278 per element), far below the
 *    precision of the bf16/f16 scales the weights carry; on random data the
 *    normalized error vs the float-exact reference is ~1e-9 (the tests allow
 *    1e-7). A non-finite x falls back to the float path, so NaN/inf
 *    propagate as in MLX.
 *    4-bit rows are split into nibbles with and/shift (no table): a 64-byte
 *    load gives 128 codes whose low nibbles (even codes) and high nibbles
 *    (odd codes) are two byte vectors; x is stored pre-permuted the same
 *    way, so 32-bit lane j of both covers codes 8j..8j+7 of the block and a
 *    lane never straddles a group. Other widths unpack 64 codes with
 *    VPERMB + VPMULTISHIFTQB (VBMI), 8-bit rows are used as they are.
 * 2. Float kernels for everything else (fp modes, many x rows, transpose =
 *    false): dequantize to f32 with vector code->float conversion, then
 *    4 x 4 register-blocked dot products (tile) or row updates (axpy). */
#include "backend/cpu/qmatmul.h"

#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Every function below is compiled for this ISA (dispatch checks the CPU
 * first). GCC and clang spell the region differently. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")
#endif

#define VBMI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx512vbmi,avx2,fma,f16c")))

static int has_vbmi(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi");
}

static inline __mmask16 mask16(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }
static inline __mmask64 mask64(int64_t n) { return n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1); }

/* up to 16 scale/bias values of dtype dt as f32 (zeros past n) */
static inline __m512 load_f16x(const void *p, mlxn_dtype dt, int64_t n) {
    __mmask16 k = mask16(n);
    switch (dt) {
    case MLXN_DTYPE_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p));
    case MLXN_DTYPE_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
    default: return _mm512_maskz_loadu_ps(k, p);
    }
}

/* ---- code unpacking ------------------------------------------------------ */

/* VPERMB/VPMULTISHIFTQB constants for `bits`: qword i gathers bytes
 * [bits*i, bits*i + 8) of the source (the 8 codes i*8..i*8+7 live there),
 * byte t of it then takes bits [t*bits, t*bits + 8) of that qword. */
typedef struct vbmi_unpack {
    __m512i perm, shift, mask;
    int bits;
} vbmi_unpack;

static vbmi_unpack vbmi_unpack_init(int bits) {
    uint8_t perm[64], shift[64];
    for (int i = 0; i < 8; i++)
        for (int t = 0; t < 8; t++) {
            int src = bits * i + t;
            perm[8 * i + t] = (uint8_t)(src > 63 ? 63 : src);
            shift[8 * i + t] = (uint8_t)(t * bits);
        }
    vbmi_unpack u;
    u.perm = _mm512_loadu_si512(perm);
    u.shift = _mm512_loadu_si512(shift);
    u.mask = _mm512_set1_epi8((char)((1u << bits) - 1u));
    u.bits = bits;
    return u;
}

/* 64 codes (n <= 64 valid, multiple of 8) from the packed bytes at p. The
 * load is masked to the bytes those codes occupy, so it never reads past
 * the row. */
VBMI_TARGET static inline __m512i vbmi_unpack64(const vbmi_unpack *u, const uint8_t *p, int64_t n) {
    __m512i v = _mm512_maskz_loadu_epi8(mask64(n * u->bits / 8), p);
    if (u->bits == 8) return v;
    v = _mm512_permutexvar_epi8(u->perm, v);
    v = _mm512_multishift_epi64_epi8(u->shift, v);
    return _mm512_and_si512(v, u->mask);
}

VBMI_TARGET static void unpack_span_vbmi(const qmat *m, int64_t r, int64_t c0, int64_t n, uint8_t *dst) {
    vbmi_unpack u = vbmi_unpack_init(m->bits);
    const uint8_t *p = (const uint8_t *)(m->wq + r * m->wq_stride) + c0 * m->bits / 8;
    for (int64_t c = 0; c < n; c += 64) {
        int64_t k = n - c < 64 ? n - c : 64;
        _mm512_mask_storeu_epi8(dst + c, mask64(k), vbmi_unpack64(&u, p + c * m->bits / 8, k));
    }
}

/* ---- dequantization to f32 ---------------------------------------------- */

/* 16 codes (bytes) to f32 values before the scale, for the fp modes. */
static inline __m512 fp_codes16(mlxn_quant_mode mode, __m512i q) {
    if (mode == MLXN_QUANT_MXFP8) {
        /* e4m3: exponent+mantissa moved to the f32 position (an f32 with
         * exponent e - 127), times 2^120 rebiases it to e - 7; subnormals
         * come out exact the same way. 0x7f/0xff are NaN. */
        __m512i em = _mm512_and_si512(q, _mm512_set1_epi32(0x7f));
        __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(em, 20)), _mm512_set1_ps(0x1p120f));
        __mmask16 nan = _mm512_cmpeq_epi32_mask(em, _mm512_set1_epi32(0x7f));
        v = _mm512_mask_mov_ps(v, nan, _mm512_set1_ps(__builtin_nanf("")));
        __m512i sign = _mm512_slli_epi32(_mm512_and_si512(q, _mm512_set1_epi32(0x80)), 24);
        return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v), sign));
    }
    /* e2m1: a 16-entry table in one register */
    const __m512 lut = _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f,
                                      -2.0f, -3.0f, -4.0f, -6.0f);
    return _mm512_permutexvar_ps(q, lut);
}

static void dequant_avx512(const qmat *m, int64_t r, int64_t c0, int64_t n, float *dst) {
    uint8_t codes[512]; /* a chunk of codes as bytes */
    const int G = m->group;
    const int vbmi = has_vbmi();
    for (int64_t cc = 0; cc < n; cc += 512) {
        int64_t len = n - cc < 512 ? n - cc : 512;
        if (vbmi) unpack_span_vbmi(m, r, c0 + cc, len, codes);
        else qm_unpack_codes(m, r, c0 + cc, len, codes);
        for (int64_t i0 = 0; i0 < len; i0 += G) { /* chunks start on group boundaries */
            int64_t g = (c0 + cc + i0) / G;
            __m512 s = _mm512_set1_ps(qm_scale(m, r, g)), b = _mm512_set1_ps(qm_bias(m, r, g));
            for (int64_t i = i0; i < i0 + G; i += 16) {
                __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(codes + i)));
                __m512 v = m->mode == MLXN_QUANT_AFFINE ? _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(q), b)
                                                        : _mm512_mul_ps(fp_codes16(m->mode, q), s);
                _mm512_storeu_ps(dst + cc + i, v);
            }
        }
    }
}

/* ---- float tile and axpy ------------------------------------------------- */

/* MB_ x RB_ dot products over kc (multiple of 16): 16 accumulators at most,
 * each x vector and each w vector loaded once per step and reused 4 times
 * from registers. always_inline + constant MB_/RB_ gives one unrolled
 * kernel per shape. */
static inline __attribute__((always_inline)) void tile_core(const float *x, int64_t ldx, const float *w,
                                                            int64_t ldw, int64_t kc, float *out, int64_t ldo,
                                                            const int MB_, const int RB_) {
    __m512 acc[4][4];
    for (int a = 0; a < MB_; a++)
        for (int b = 0; b < RB_; b++) acc[a][b] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k += 16) {
        __m512 xv[4], wv[4];
        for (int a = 0; a < MB_; a++) xv[a] = _mm512_loadu_ps(x + a * ldx + k);
        for (int b = 0; b < RB_; b++) wv[b] = _mm512_loadu_ps(w + b * ldw + k);
        for (int a = 0; a < MB_; a++)
            for (int b = 0; b < RB_; b++) acc[a][b] = _mm512_fmadd_ps(xv[a], wv[b], acc[a][b]);
    }
    for (int a = 0; a < MB_; a++)
        for (int b = 0; b < RB_; b++) out[a * ldo + b] += _mm512_reduce_add_ps(acc[a][b]);
}

#define TILE_CASE(A, B) \
    case (A) * 8 + (B): tile_core(x, ldx, w, ldw, kc, out, ldo, A, B); break;

static void tile_avx512(const float *x, int64_t ldx, int mb, const float *w, int64_t ldw, int rb, int64_t kc,
                        float *out, int64_t ldo) {
    switch (mb * 8 + rb) {
        TILE_CASE(1, 1) TILE_CASE(1, 2) TILE_CASE(1, 3) TILE_CASE(1, 4)
        TILE_CASE(2, 1) TILE_CASE(2, 2) TILE_CASE(2, 3) TILE_CASE(2, 4)
        TILE_CASE(3, 1) TILE_CASE(3, 2) TILE_CASE(3, 3) TILE_CASE(3, 4)
        TILE_CASE(4, 1) TILE_CASE(4, 2) TILE_CASE(4, 3) TILE_CASE(4, 4)
    default: break; /* mb, rb are 1..4 by construction */
    }
}

static void axpy_avx512(const float *x, int64_t ldx, int mb, const float *b, int64_t ldb, int kb, int64_t n,
                        float *out, int64_t ldo) {
    for (int m = 0; m < mb; m++) {
        __m512 xv[4];
        for (int i = 0; i < kb; i++) xv[i] = _mm512_set1_ps(x[m * ldx + i]);
        float *o = out + m * ldo;
        for (int64_t j = 0; j < n; j += 16) { /* n is a multiple of 16 */
            __m512 acc = _mm512_loadu_ps(o + j);
            for (int i = 0; i < kb; i++) acc = _mm512_fmadd_ps(xv[i], _mm512_loadu_ps(b + i * ldb + j), acc);
            _mm512_storeu_ps(o + j, acc);
        }
    }
}

const qm_kernels qm_kernels_avx512 = {.dequant = dequant_avx512, .tile = tile_avx512, .axpy = axpy_avx512};

/* ---- the VNNI integer mat-vec -------------------------------------------- */

#define VNNI_MAX_ROWS 8 /* x rows one call handles (the kernels are unrolled per count) */
#define XQ_MAX 32639 /* largest |xi|: keeps xh = (xi + 128) >> 8 within [-127, 127] */

struct qm_xprep {
    int64_t M, K, ngroups, nblk;
    int nib;         /* 1: 4-bit nibble layout (128-code blocks), 0: byte layout (64-code blocks) */
    int vbmi;
    int n_threads;
    int8_t *xq;      /* [M, nblk, nib ? 4 : 2, 64]: nib: xh_even, xh_odd, xl_even, xl_odd; else xh, xl */
    float *xs;       /* [M, ngroups]: x scale per group */
    float *sumx;     /* [M, ngroups + 16]: sum of x per group, zero padded */
    float *sf;       /* [n_threads][sfs]: per-thread scratch (qm_scratch_alloc), [M, ngroups + 16] each:
                        scale * xs per group */
    int64_t sfs;     /* floats per thread in sf */
};

int qm_vnni_supported(const qmat *m, int64_t M) {
    if (m->mode != MLXN_QUANT_AFFINE || M < 1 || M > VNNI_MAX_ROWS) return 0;
    if (m->group != 32 && m->group != 64 && m->group != 128) return 0; /* the kernels' group sizes */
    return m->bits == 4 || m->bits == 8 || has_vbmi();
}

void qm_vnni_free(qm_xprep *p) {
    if (!p) return;
    free(p->xq);
    free(p->xs);
    free(p->sumx);
    free(p->sf);
    free(p);
}

/* Quantize 16 x values to xi and split into (xh, xl) int32 lanes. */
static inline void split16(__m512 xv, __m512 inv, __m512i *xh, __m512i *xl) {
    /* cvtps rounds to nearest even (the default MXCSR mode), as rint */
    __m512i xi = _mm512_cvtps_epi32(_mm512_mul_ps(xv, inv));
    xi = _mm512_max_epi32(_mm512_min_epi32(xi, _mm512_set1_epi32(XQ_MAX)), _mm512_set1_epi32(-XQ_MAX));
    *xh = _mm512_srai_epi32(_mm512_add_epi32(xi, _mm512_set1_epi32(128)), 8); /* floor((xi + 128) / 256) */
    *xl = _mm512_sub_epi32(xi, _mm512_slli_epi32(*xh, 8));
}

qm_xprep *qm_vnni_prepare(const qmat *m, const float *x, int64_t ldx, int64_t M, int n_threads) {
    const int64_t K = m->cols, G = m->group, ng = K / G;
    qm_xprep *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->M = M;
    p->K = K;
    p->ngroups = ng;
    p->nib = m->bits == 4;
    p->vbmi = has_vbmi();
    p->n_threads = n_threads;
    const int64_t blk = p->nib ? 128 : 64, planes = p->nib ? 4 : 2;
    p->nblk = (K + blk - 1) / blk;
    p->xq = calloc((size_t)(M * p->nblk * planes * 64), 1);
    p->xs = malloc((size_t)(M * ng) * sizeof(float));
    p->sumx = calloc((size_t)(M * (ng + 16)), sizeof(float));
    p->sfs = qm_scratch_floats(M * (ng + 16));
    p->sf = qm_scratch_alloc(n_threads, p->sfs);
    if (!p->xq || !p->xs || !p->sumx || !p->sf) {
        qm_vnni_free(p);
        return NULL;
    }
    /* evens of 16 lanes first, then odds: the nibble layout's two planes */
    const __m512i eo = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t i = 0; i < M; i++) {
        const float *xr = x + i * ldx;
        int8_t *xq = p->xq + i * p->nblk * planes * 64;
        __mmask16 bad = 0;
        for (int64_t g = 0; g < ng; g++) {
            __m512 vmax = _mm512_setzero_ps(), vsum = _mm512_setzero_ps();
            for (int64_t c = g * G; c < (g + 1) * G; c += 16) {
                __m512 xv = _mm512_loadu_ps(xr + c);
                bad |= _mm512_fpclass_ps_mask(xv, 0x99); /* NaN or +-inf */
                vmax = _mm512_max_ps(vmax, _mm512_and_ps(xv, absmask));
                vsum = _mm512_add_ps(vsum, xv);
            }
            float amax = _mm512_reduce_max_ps(vmax);
            if (bad || (amax > 0.0f && amax < 0x1p-96f)) {
                /* non-finite x: the float path propagates it; tiny x: 1/xs
                 * would overflow, and the float path is exact anyway */
                qm_vnni_free(p);
                return NULL;
            }
            float inv = amax > 0.0f ? (float)XQ_MAX / amax : 0.0f;
            p->xs[i * ng + g] = amax / (float)XQ_MAX;
            p->sumx[i * (ng + 16) + g] = _mm512_reduce_add_ps(vsum);
            __m512 vinv = _mm512_set1_ps(inv);
            for (int64_t c = g * G; c < (g + 1) * G; c += 16) {
                __m512i xh, xl;
                split16(_mm512_loadu_ps(xr + c), vinv, &xh, &xl);
                int64_t b = c / blk, cc = c % blk;
                int8_t *base = xq + b * planes * 64;
                if (p->nib) { /* code cc sits in byte cc/2 of the even (low nibble) or odd plane */
                    __m128i h = _mm512_cvtepi32_epi8(_mm512_permutexvar_epi32(eo, xh));
                    __m128i l = _mm512_cvtepi32_epi8(_mm512_permutexvar_epi32(eo, xl));
                    _mm_storel_epi64((__m128i *)(base + cc / 2), h);
                    _mm_storel_epi64((__m128i *)(base + 64 + cc / 2), _mm_unpackhi_epi64(h, h));
                    _mm_storel_epi64((__m128i *)(base + 128 + cc / 2), l);
                    _mm_storel_epi64((__m128i *)(base + 192 + cc / 2), _mm_unpackhi_epi64(l, l));
                } else {
                    _mm_storeu_si128((__m128i *)(base + cc), _mm512_cvtepi32_epi8(xh));
                    _mm_storeu_si128((__m128i *)(base + 64 + cc), _mm512_cvtepi32_epi8(xl));
                }
            }
        }
    }
    return p;
}

/* Per row and x row: sf[g] = scale_g * xs_g (so one FMA applies both), and
 * the bias term sum_g b_g * sum(x)_g; SDT, the scales' dtype, a constant
 * once inlined. */
static inline __attribute__((always_inline)) float row_setup_t(const qmat *m, const qm_xprep *p, int64_t r,
                                                                int64_t i, float *sf, const mlxn_dtype SDT) {
    const int64_t ng = p->ngroups, es = SDT == MLXN_DTYPE_F32 ? 4 : 2;
    const char *srow = (const char *)m->scales + r * m->s_stride * es;
    const char *brow = (const char *)m->biases + r * m->b_stride * es;
    const float *xs = p->xs + i * ng, *sx = p->sumx + i * (ng + 16);
    __m512 bacc = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; g += 16) {
        int64_t n = ng - g;
        __m512 s = load_f16x(srow + g * es, SDT, n);
        __m512 b = load_f16x(brow + g * es, SDT, n);
        _mm512_mask_storeu_ps(sf + g, mask16(n), _mm512_mul_ps(s, _mm512_maskz_loadu_ps(mask16(n), xs + g)));
        bacc = _mm512_fmadd_ps(b, _mm512_loadu_ps(sx + g), bacc);
    }
    return _mm512_reduce_add_ps(bacc);
}

/* row_setup_t for the matrix's scale dtype: one predictable branch per row.
 * Why: it had been a function called per row and x row that asked the
 * dtype's size and switched on the dtype for every 16 groups, as the AVX2
 * kernel's once was (16% of a small model's decode there). */
static inline __attribute__((always_inline)) float row_setup(const qmat *m, const qm_xprep *p, int64_t r, int64_t i,
                                                              float *sf) {
    switch (m->sdt) {
    case MLXN_DTYPE_BF16: return row_setup_t(m, p, r, i, sf, MLXN_DTYPE_BF16);
    case MLXN_DTYPE_F16: return row_setup_t(m, p, r, i, sf, MLXN_DTYPE_F16);
    default: return row_setup_t(m, p, r, i, sf, MLXN_DTYPE_F32);
    }
}

/* Lane j's group offset from its block's first group, when lane j covers
 * codes [per_lane * j, per_lane * (j + 1)) of the block. */
static inline __m512i lane_groups(int per_lane, int G) {
    __m512i j = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_srli_epi32(_mm512_mullo_epi32(j, _mm512_set1_epi32(per_lane)), __builtin_ctz((unsigned)G));
}

/* The kernels below are always_inline bodies instantiated for each x-row
 * count MM = 1..8 (a switch picks one): with MM a constant the per-x-row
 * accumulators stay in registers; with a run-time count they would live on
 * the stack and every block would wait on a store/reload. */
#define SWITCH_M(fn, ...)                                                                           \
    switch (p->M) {                                                                                 \
    case 1: fn(__VA_ARGS__, 1); break;                                                              \
    case 2: fn(__VA_ARGS__, 2); break;                                                              \
    case 3: fn(__VA_ARGS__, 3); break;                                                              \
    case 4: fn(__VA_ARGS__, 4); break;                                                              \
    case 5: fn(__VA_ARGS__, 5); break;                                                              \
    case 6: fn(__VA_ARGS__, 6); break;                                                              \
    case 7: fn(__VA_ARGS__, 7); break;                                                              \
    default: fn(__VA_ARGS__, 8); break;                                                             \
    }

/* One 128-code block b of a 4-bit row (codes ev, od: its even and odd
 * nibbles; first group g0) against the MM x rows, into acc. GS: the group
 * size, a constant. */
static inline __attribute__((always_inline)) void nib_step(const qm_xprep *p, const float *sf, int64_t b, int64_t g0,
                                                           __m512i ev, __m512i od, __m512i gidx, __m512 *acc,
                                                           const int MM, const int GS) {
    const int64_t ng = p->ngroups;
    for (int i = 0; i < MM; i++) {
        const int8_t *xb = p->xq + (i * p->nblk + b) * 256;
        /* 256 * (q . xh) + (q . xl) as one chain: shift the high part's
         * sum before the low products join it. Blocks are independent,
         * so out-of-order execution overlaps the chains of
         * consecutive blocks and the chain's latency is hidden. */
        __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ev, _mm512_loadu_si512(xb));
        d = _mm512_dpbusd_epi32(d, od, _mm512_loadu_si512(xb + 64));
        d = _mm512_slli_epi32(d, 8);
        d = _mm512_dpbusd_epi32(d, ev, _mm512_loadu_si512(xb + 128));
        d = _mm512_dpbusd_epi32(d, od, _mm512_loadu_si512(xb + 192));
        /* groups of 128: the block is one group, a broadcast load; else its 2 or 4 groups spread over
           the lanes */
        const __m512 lsf = GS == 128 ? _mm512_set1_ps(sf[i * (ng + 16) + g0])
                                     : _mm512_permutexvar_ps(gidx, _mm512_loadu_ps(sf + i * (ng + 16) + g0));
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), lsf, acc[i]);
    }
}

/* 4-bit rows [r0, r1): 128 codes per 64-byte load. The group size GS is a
 * constant (one build per size): a block's first group is then its index
 * times 128 / GS. Why: `b * 128 / G` with G read at run time was a 64-bit
 * division per block. The whole blocks load without a mask; a tail block
 * (K % 128 of 32, 64 or 96 codes), if any, with one. */
static inline __attribute__((always_inline)) void nib_body(const qmat *m, const qm_xprep *p, int64_t r0,
                                                           int64_t r1, float *out, int64_t ldo, float *sf,
                                                           const int GS, const int MM) {
    const int64_t K = p->K, ng = p->ngroups, nfull = K / 128;
    const __m512i low4 = _mm512_set1_epi8(0x0F), gidx = lane_groups(8, GS);
    float bias[VNNI_MAX_ROWS];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wrow = (const uint8_t *)(m->wq + r * m->wq_stride);
        __m512 acc[VNNI_MAX_ROWS];
        for (int i = 0; i < MM; i++) {
            bias[i] = row_setup(m, p, r, i, sf + i * (ng + 16));
            acc[i] = _mm512_setzero_ps();
        }
        int64_t b = 0;
        for (; b < nfull; b++) {
            const __m512i w = _mm512_loadu_si512(wrow + b * 64);
            nib_step(p, sf, b, b * (128 / GS), _mm512_and_si512(w, low4) /* codes 0, 2, 4, ... */,
                     _mm512_and_si512(_mm512_srli_epi16(w, 4), low4) /* codes 1, 3, 5, ... */, gidx, acc, MM, GS);
        }
        if (b < p->nblk) { /* K % 128 of 32, 64 or 96 codes; zero codes past them meet zero x bytes */
            const __m512i w = _mm512_maskz_loadu_epi8(mask64((K - b * 128) / 2), wrow + b * 64);
            nib_step(p, sf, b, b * (128 / GS), _mm512_and_si512(w, low4),
                     _mm512_and_si512(_mm512_srli_epi16(w, 4), low4), gidx, acc, MM, GS);
        }
        for (int i = 0; i < MM; i++) out[i * ldo + r] = _mm512_reduce_add_ps(acc[i]) + bias[i];
    }
}

static void rows_nib(const qmat *m, const qm_xprep *p, int64_t r0, int64_t r1, float *out, int64_t ldo,
                     float *sf) {
    switch (m->group) {
    case 32: SWITCH_M(nib_body, m, p, r0, r1, out, ldo, sf, 32) break;
    case 64: SWITCH_M(nib_body, m, p, r0, r1, out, ldo, sf, 64) break;
    default: SWITCH_M(nib_body, m, p, r0, r1, out, ldo, sf, 128) break;
    }
}

/* Rows of byte codes, 64 codes per block: 8-bit codes are loaded as they
 * are; other widths are unpacked with VBMI (the VBMI_TARGET copy). */
#define BYTE_BODY(NAME, ATTR, LOAD_CODES)                                                                 \
    ATTR static inline __attribute__((always_inline)) void NAME(const qmat *m, const qm_xprep *p, int64_t r0, \
                                                                int64_t r1, float *out, int64_t ldo,      \
                                                                float *sf, const int MM) {                \
        const int64_t K = p->K, ng = p->ngroups, G = m->group;                                            \
        const int bits = m->bits;                                                                         \
        vbmi_unpack u;                                                                                    \
        memset(&u, 0, sizeof u);                                                                          \
        if (bits != 8) u = vbmi_unpack_init(bits);                                                        \
        const __m512i gidx = lane_groups(4, (int)G);                                                      \
        const int gsh = __builtin_ctz((unsigned)G); /* a block's group by a shift, not a division */      \
        float bias[VNNI_MAX_ROWS];                                                                        \
        for (int64_t r = r0; r < r1; r++) {                                                               \
            const uint8_t *wrow = (const uint8_t *)(m->wq + r * m->wq_stride);                            \
            __m512 acc[VNNI_MAX_ROWS];                                                                    \
            for (int i = 0; i < MM; i++) {                                                                \
                bias[i] = row_setup(m, p, r, i, sf + i * (ng + 16));                                      \
                acc[i] = _mm512_setzero_ps();                                                             \
            }                                                                                             \
            for (int64_t b = 0; b < p->nblk; b++) {                                                       \
                int64_t left = K - b * 64, n = left < 64 ? left : 64;                                     \
                __m512i q = LOAD_CODES;                                                                   \
                int64_t g0 = (b * 64) >> gsh;                                                             \
                for (int i = 0; i < MM; i++) {                                                            \
                    const int8_t *xb = p->xq + (i * p->nblk + b) * 128;                                   \
                    __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_loadu_si512(xb));   \
                    d = _mm512_dpbusd_epi32(_mm512_slli_epi32(d, 8), q, _mm512_loadu_si512(xb + 64));     \
                    __m512 lsf = _mm512_permutexvar_ps(gidx, _mm512_loadu_ps(sf + i * (ng + 16) + g0));   \
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), lsf, acc[i]);                         \
                }                                                                                         \
            }                                                                                             \
            for (int i = 0; i < MM; i++) out[i * ldo + r] = _mm512_reduce_add_ps(acc[i]) + bias[i];       \
        }                                                                                                 \
    }

BYTE_BODY(u8_body, , _mm512_maskz_loadu_epi8(mask64(n), wrow + b * 64))
BYTE_BODY(vbmi_body, VBMI_TARGET, vbmi_unpack64(&u, wrow + b * 8 * bits, n))

static void rows_u8(const qmat *m, const qm_xprep *p, int64_t r0, int64_t r1, float *out, int64_t ldo,
                    float *sf) {
    SWITCH_M(u8_body, m, p, r0, r1, out, ldo, sf)
}

VBMI_TARGET static void rows_vbmi(const qmat *m, const qm_xprep *p, int64_t r0, int64_t r1, float *out,
                                  int64_t ldo, float *sf) {
    SWITCH_M(vbmi_body, m, p, r0, r1, out, ldo, sf)
}

void qm_vnni_rows(const qmat *m, const qm_xprep *p, int64_t r0, int64_t r1, float *out, int64_t ldo, int thread) {
    float *sf = p->sf + (int64_t)thread * p->sfs;
    if (p->nib) rows_nib(m, p, r0, r1, out, ldo, sf);
    else if (m->bits == 8) rows_u8(m, p, r0, r1, out, ldo, sf);
    else rows_vbmi(m, p, r0, r1, out, ldo, sf);
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else /* not x86-64 GCC/Clang: the AVX512 level is never selected */

const qm_kernels qm_kernels_avx512 = {.dequant = qm_dequant_span, .tile = NULL, .axpy = NULL};
int qm_vnni_supported(const qmat *m, int64_t M) {
    (void)m, (void)M;
    return 0;
}
qm_xprep *qm_vnni_prepare(const qmat *m, const float *x, int64_t ldx, int64_t M, int n_threads) {
    (void)m, (void)x, (void)ldx, (void)M, (void)n_threads;
    return NULL;
}
void qm_vnni_free(qm_xprep *p) { (void)p; }
void qm_vnni_rows(const qmat *m, const qm_xprep *p, int64_t r0, int64_t r1, float *out, int64_t ldo, int thread) {
    (void)m, (void)p, (void)r0, (void)r1, (void)out, (void)ldo, (void)thread;
}
#endif
