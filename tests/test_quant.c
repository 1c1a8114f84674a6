/* Quantization reference (src/quant): the packed-code layout, the small
 * float codecs, argument checking, and properties of quantize/dequantize
 * on fresh random inputs that hold whatever the exact rounding is:
 *   - pack/unpack against a bit-by-bit model of the LSB-first stream, for
 *     every width 1..8 (3/5/6/7-bit codes straddle words);
 *   - E4M3/E8M0/E2M1 decoders against their formulas, the E4M3 encoder
 *     against hand-worked values and a brute-force nearest search;
 *   - affine: the largest-magnitude element of each group comes back
 *     exactly, and every code is the nearest one (error within half a
 *     step, plus the rounding of the stored scale/bias), for every bits x
 *     group x weight dtype, odd row counts;
 *   - mxfp4/mxfp8/nvfp4: the scale is the rule's (smallest power of two
 *     covering the group / nearest E4M3), every code is the nearest value;
 *   - a few cases worked by hand.
 * Bit-exactness against MLX itself is tested in test_quant_golden.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "quant/quant_layout.h"

/* Element i of a f32/f16/bf16 buffer, as f32. */
static float ld(mlxn_dtype dt, const void *p, int64_t i) {
    if (dt == MLXN_DTYPE_F32) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return dt == MLXN_DTYPE_F16 ? mlxn_f16_to_f32(h) : mlxn_bf16_to_f32(h);
}
static void st(mlxn_dtype dt, void *p, int64_t i, float f) {
    if (dt == MLXN_DTYPE_F32)
        ((float *)p)[i] = f;
    else
        ((uint16_t *)p)[i] = dt == MLXN_DTYPE_F16 ? mlxn_f32_to_f16(f) : mlxn_f32_to_bf16(f);
}
/* Unit roundoff of a dtype. */
static float unit(mlxn_dtype dt) {
    return dt == MLXN_DTYPE_F32 ? 0x1p-24f : dt == MLXN_DTYPE_F16 ? 0x1p-11f : 0x1p-8f;
}

/* ---- packing ----------------------------------------------------------- */

static int stream_bit(const uint32_t *row, int64_t b) { return (int)((row[b / 32] >> (b % 32)) & 1u); }

static void test_pack(void) {
    for (int bits = 1; bits <= 8; bits++) {
        int64_t n = 32 * 7 + 32; /* 256 codes: whole words for every width */
        int64_t words = n * bits / 32;
        uint32_t *row = calloc((size_t)words + 1, 4), *codes = malloc((size_t)n * 4);
        row[words] = 0xA5A5A5A5u; /* guard word past the row */
        for (int64_t i = 0; i < n; i++) {
            codes[i] = (uint32_t)(t_rand_u64() & ((1u << bits) - 1u));
            mlxn_pack_code(row, i, bits, codes[i]);
        }
        int bad_stream = 0, bad_unpack = 0;
        for (int64_t i = 0; i < n; i++) {
            uint32_t v = 0;
            for (int k = 0; k < bits; k++) v |= (uint32_t)stream_bit(row, i * bits + k) << k;
            bad_stream += v != codes[i];
            bad_unpack += mlxn_unpack_code(row, i, bits) != codes[i];
        }
        CHECK(bad_stream == 0, "%d-bit pack: %d codes not at bits [i*bits, (i+1)*bits) LSB-first", bits, bad_stream);
        CHECK(bad_unpack == 0, "%d-bit unpack: %d codes differ", bits, bad_unpack);
        CHECK(row[words] == 0xA5A5A5A5u, "%d-bit pack wrote past the row", bits);
        /* a code's high bits are masked off, so it cannot spill into its neighbour */
        memset(row, 0, (size_t)words * 4);
        mlxn_pack_code(row, 1, bits, 0xFFFFFFFFu);
        CHECK(mlxn_unpack_code(row, 0, bits) == 0 && mlxn_unpack_code(row, 2, bits) == 0 &&
                  mlxn_unpack_code(row, 1, bits) == (1u << bits) - 1u,
              "%d-bit pack of an oversized value leaks into neighbours", bits);
        free(row);
        free(codes);
    }
    /* a hand-made straddle: 3-bit code 10 occupies bits 30..32 */
    uint32_t w[3] = {0, 0, 0};
    mlxn_pack_code(w, 10, 3, 5u); /* 0b101: bit 30 = 1, bit 31 = 0, bit 32 = 1 */
    CHECK(w[0] == 0x40000000u && w[1] == 1u, "3-bit straddle: words %08x %08x", w[0], w[1]);
    /* 6-bit code 5 occupies bits 30..35 */
    uint32_t w6[2] = {0, 0};
    mlxn_pack_code(w6, 5, 6, 0x2Du); /* 0b101101 */
    CHECK(w6[0] == 0x40000000u && w6[1] == 0xBu && mlxn_unpack_code(w6, 5, 6) == 0x2Du,
          "6-bit straddle: words %08x %08x", w6[0], w6[1]);
}

/* ---- small float codecs ------------------------------------------------ */

static void test_codecs(void) {
    const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    int bad = 0;
    for (int c = 0; c < 16; c++) {
        float v = mlxn_e2m1_to_f32((uint32_t)c);
        bad += memcmp(&v, &e2m1[c], 4) != 0;
    }
    CHECK(bad == 0, "e2m1 table: %d codes wrong", bad);

    bad = 0;
    for (int e = 1; e < 255; e++) bad += mlxn_e8m0_to_f32((uint8_t)e) != ldexpf(1.0f, e - 127);
    CHECK(bad == 0 && mlxn_e8m0_to_f32(0) == 0x1p-127f && isinf(mlxn_e8m0_to_f32(255)),
          "e8m0: %d wrong, 0 -> %g, 255 -> %g", bad, (double)mlxn_e8m0_to_f32(0), (double)mlxn_e8m0_to_f32(255));

    /* E4M3 decode against the formula; 0x7F/0xFF are NaN */
    bad = 0;
    for (int x = 0; x < 256; x++) {
        int e = (x >> 3) & 15, m = x & 7;
        float mag = e == 0 ? ldexpf((float)m, -9) : ldexpf(1.0f + (float)m / 8.0f, e - 7);
        float want = (x & 0x80) ? -mag : mag;
        float got = mlxn_e4m3_to_f32((uint8_t)x);
        if ((x & 0x7F) == 0x7F)
            bad += !isnan(got);
        else
            bad += got != want || signbit(got) != signbit(want);
    }
    CHECK(bad == 0, "e4m3 decode: %d bytes wrong", bad);

    /* E4M3 encode: hand-worked values (round to nearest even, saturation) */
    struct { float f; uint8_t b; } cases[] = {
        {0.0f, 0x00},        {-0.0f, 0x80},       {1.0f, 0x38},         {-1.0f, 0xB8},
        {448.0f, 0x7E},      {460.0f, 0x7E},      {1e9f, 0x7E},         {-1e9f, 0xFE},
        {INFINITY, 0x7E},    {0x1p-9f, 0x01},     {0x1p-10f, 0x00},     {0x3p-10f, 0x02},
        {0x1p-6f, 0x08},     {0x1.1p0f, 0x38},    {0x1.3p0f, 0x3A},     {0x1.28p0f, 0x39},
        {0x1.18p0f, 0x39},   {0x1.5p0f, 0x3A},     {0x1.08p0f, 0x38},   {0x1.fp8f, 0x7E},     {0x0.7p-6f, 0x04},
    };
    bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t b = mlxn_f32_to_e4m3(cases[i].f);
        if (b != cases[i].b) {
            bad++;
            fprintf(stderr, "  e4m3(%a) = 0x%02x, want 0x%02x\n", (double)cases[i].f, b, cases[i].b);
        }
    }
    CHECK(bad == 0, "e4m3 encode: %d hand cases wrong", bad);
    CHECK((mlxn_f32_to_e4m3(NAN) & 0x7F) == 0x7E, "e4m3 encode: NaN saturates to 448");

    /* E4M3 encode on random inputs: the nearest code, ties to even mantissa */
    bad = 0;
    for (int i = 0; i < 20000; i++) {
        float f = (float)(t_randn() * ldexp(1.0, (int)(t_rand_u64() % 24) - 14));
        if (i % 7 == 0) f = mlxn_e4m3_to_f32((uint8_t)(t_rand_u64() & 0x7E)) * (1.0f + 0x1p-4f); /* near ties */
        uint8_t b = mlxn_f32_to_e4m3(f);
        float got = mlxn_e4m3_to_f32(b), best = 0;
        double bd = INFINITY;
        for (int x = 0; x < 127; x++) { /* magnitudes only; sign is the input's */
            float v = mlxn_e4m3_to_f32((uint8_t)x);
            double d = fabs((double)fabsf(f) - v);
            if (d < bd || (d == bd && (x & 1) == 0)) bd = d, best = v;
        }
        if (fabsf(f) >= 448.0f) best = 448.0f;
        if (fabsf(got) != best || signbit(got) != signbit(f)) {
            if (bad++ < 3) fprintf(stderr, "  e4m3(%a) -> %a, nearest %a\n", (double)f, (double)got, (double)best);
        }
    }
    CHECK(bad == 0, "e4m3 encode: %d random inputs not rounded to the nearest (even) code", bad);
}

/* ---- argument checking ------------------------------------------------- */

static void test_validate(void) {
    mlxn_quant_params ok = {.mode = MLXN_QUANT_AFFINE, .bits = 4, .group_size = 64};
    CHECK_OK(mlxn_quant_validate(&ok, 128));
    for (int b = 0; b <= 9; b++) {
        mlxn_quant_params q = ok;
        q.bits = b;
        if (b == 0 || b == 7 || b == 9)
            CHECK_FAILS(mlxn_quant_validate(&q, 128), MLXN_ERR_UNSUPPORTED);
        else
            CHECK_OK(mlxn_quant_validate(&q, 128));
    }
    int bad_groups[] = {0, 16, 33, 96, 256, -32};
    for (size_t i = 0; i < sizeof bad_groups / sizeof bad_groups[0]; i++) {
        mlxn_quant_params q = ok;
        q.group_size = bad_groups[i];
        CHECK_FAILS(mlxn_quant_validate(&q, 512), MLXN_ERR_UNSUPPORTED);
    }
    CHECK_FAILS(mlxn_quant_validate(&ok, 96), MLXN_ERR_SHAPE);  /* not a multiple of 64 */
    CHECK_FAILS(mlxn_quant_validate(&ok, 0), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_quant_validate(&ok, -64), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_quant_validate(NULL, 64), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_quant_params fp[] = {
        {.mode = MLXN_QUANT_MXFP4, .bits = 4, .group_size = 64},
        {.mode = MLXN_QUANT_MXFP4, .bits = 8, .group_size = 32},
        {.mode = MLXN_QUANT_MXFP8, .bits = 4, .group_size = 32},
        {.mode = MLXN_QUANT_NVFP4, .bits = 4, .group_size = 32},
        {.mode = (mlxn_quant_mode)9, .bits = 4, .group_size = 32},
    };
    for (size_t i = 0; i < sizeof fp / sizeof fp[0]; i++) CHECK_FAILS(mlxn_quant_validate(&fp[i], 64), MLXN_ERR_UNSUPPORTED);
    mlxn_quant_params nv = {.mode = MLXN_QUANT_NVFP4, .bits = 4, .group_size = 16};
    CHECK_OK(mlxn_quant_validate(&nv, 16));
    CHECK_FAILS(mlxn_quant_validate(&nv, 24), MLXN_ERR_SHAPE);

    /* quantize / dequantize argument errors */
    float w[64] = {0};
    uint32_t wq[16];
    float sc[2], bi[2], out[64];
    uint8_t sc8[2];
    CHECK_FAILS(mlxn_quantize(&ok, MLXN_DTYPE_I32, w, 1, 64, wq, sc, bi), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_quantize(&ok, MLXN_DTYPE_F32, w, 1, 64, wq, sc, NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_quantize(&ok, MLXN_DTYPE_F32, NULL, 1, 64, wq, sc, bi), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_quantize(&ok, MLXN_DTYPE_F32, w, -1, 64, wq, sc, bi), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_quantize(&ok, MLXN_DTYPE_F32, w, 1, 63, wq, sc, bi), MLXN_ERR_SHAPE);
    mlxn_quant_params gs_affine = ok;
    gs_affine.global_scale = 2.0f;
    CHECK_FAILS(mlxn_quantize(&gs_affine, MLXN_DTYPE_F32, w, 1, 64, wq, sc, bi), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_quant_params mx4 = {.mode = MLXN_QUANT_MXFP4, .bits = 4, .group_size = 32};
    CHECK_FAILS(mlxn_quantize(&mx4, MLXN_DTYPE_F32, w, 1, 64, wq, sc8, bi), MLXN_ERR_INVALID_ARGUMENT);
    float bad_gs[] = {-1.0f, NAN, INFINITY};
    for (int i = 0; i < 3; i++) {
        mlxn_quant_params q = nv;
        q.global_scale = bad_gs[i];
        CHECK_FAILS(mlxn_quantize(&q, MLXN_DTYPE_F32, w, 1, 64, wq, sc8, NULL), MLXN_ERR_INVALID_ARGUMENT);
    }
    CHECK_FAILS(mlxn_dequantize(&ok, MLXN_DTYPE_U8, wq, sc, bi, 1, 64, MLXN_DTYPE_F32, out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_dequantize(&mx4, MLXN_DTYPE_F16, wq, sc8, NULL, 1, 64, MLXN_DTYPE_F32, out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_dequantize(&ok, MLXN_DTYPE_F32, wq, sc, bi, 1, 64, MLXN_DTYPE_I8, out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_dequantize(&ok, MLXN_DTYPE_F32, wq, sc, bi, 1, 64, MLXN_DTYPE_F32, NULL),
                MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_dequantize(&ok, MLXN_DTYPE_F32, wq, sc, NULL, 1, 64, MLXN_DTYPE_F32, out),
                MLXN_ERR_INVALID_ARGUMENT);
    /* zero rows is a valid, empty call */
    CHECK_OK(mlxn_quantize(&ok, MLXN_DTYPE_F32, w, 0, 64, wq, sc, bi));
}

/* ---- hand-worked cases --------------------------------------------------- */

static void test_hand(void) {
    /* affine 4-bit, group 32, w = 0..31: the edge is hi = 31 (|31| > |0|),
     * step 31/15, scale -31/15, q0 = rint(31 / (-31/15)) = -15, so scale
     * = 31/-15 and bias 31; code of w is rint((w - 31) * -15/31). */
    float w[32];
    for (int i = 0; i < 32; i++) w[i] = (float)i;
    uint32_t wq[4];
    float s, b;
    mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = 4, .group_size = 32};
    t_poison(wq, sizeof wq);
    t_poison(&s, 4);
    t_poison(&b, 4);
    CHECK_OK(mlxn_quantize(&q, MLXN_DTYPE_F32, w, 1, 32, wq, &s, &b));
    CHECK(s == 31.0f / -15.0f && b == 31.0f, "affine hand case: scale %g bias %g", (double)s, (double)b);
    int want[32], bad = 0;
    for (int i = 0; i < 32; i++) want[i] = (int)rint((31.0 - i) * 15.0 / 31.0);
    for (int i = 0; i < 32; i++) bad += mlxn_unpack_code(wq, i, 4) != (uint32_t)want[i];
    CHECK(bad == 0, "affine hand case: %d codes wrong (code(0) = %u)", bad, mlxn_unpack_code(wq, 0, 4));
    CHECK(mlxn_unpack_code(wq, 31, 4) == 0 && mlxn_unpack_code(wq, 0, 4) == 15, "affine hand case: ends");

    /* a constant group: range 0 -> step eps, edge = the constant, bias = it */
    for (int i = 0; i < 32; i++) w[i] = -3.25f;
    CHECK_OK(mlxn_quantize(&q, MLXN_DTYPE_F32, w, 1, 32, wq, &s, &b));
    float back[32];
    t_poison(back, sizeof back);
    CHECK_OK(mlxn_dequantize(&q, MLXN_DTYPE_F32, wq, &s, &b, 1, 32, MLXN_DTYPE_F32, back));
    bad = 0;
    for (int i = 0; i < 32; i++) bad += back[i] != -3.25f;
    CHECK(b == -3.25f && bad == 0, "constant group: bias %g, %d values changed", (double)b, bad);

    /* 1 bit: code 0 = min, 1 = max */
    for (int i = 0; i < 32; i++) w[i] = (i % 3 == 0) ? 2.0f : -1.0f;
    q.bits = 1;
    CHECK_OK(mlxn_quantize(&q, MLXN_DTYPE_F32, w, 1, 32, wq, &s, &b));
    CHECK(s == 3.0f && b == -1.0f && wq[0] == 0x49249249u, "1-bit: scale %g bias %g word %08x", (double)s, (double)b,
          wq[0]);

    /* mxfp4: amax 6 -> scale 2^0 (byte 127); ties go toward zero */
    const float v[16] = {6.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f,
                         -0.25f, -0.75f, -5.0f, 0.1f, -0.1f, 0.0f, -0.0f, 5.5f};
    const uint32_t code[16] = {7, 0, 1, 2, 3, 4, 5, 6, 0, 9, 14, 0, 0, 0, 0, 7};
    float wf[32] = {0};
    memcpy(wf, v, sizeof v);
    mlxn_quant_params m4 = {.mode = MLXN_QUANT_MXFP4, .bits = 4, .group_size = 32};
    uint8_t sb;
    CHECK_OK(mlxn_quantize(&m4, MLXN_DTYPE_F32, wf, 1, 32, wq, &sb, NULL));
    bad = 0;
    for (int i = 0; i < 16; i++) bad += mlxn_unpack_code(wq, i, 4) != code[i];
    CHECK(sb == 127 && bad == 0, "mxfp4 hand case: scale byte %u, %d codes wrong", sb, bad);
    /* amax just above 6 needs the next power of two: byte 128 */
    wf[0] = nextafterf(6.0f, 7.0f);
    CHECK_OK(mlxn_quantize(&m4, MLXN_DTYPE_F32, wf, 1, 32, wq, &sb, NULL));
    CHECK(sb == 128, "mxfp4: amax just above 6 gives byte %u, want 128", sb);
}

/* ---- random properties: affine --------------------------------------------- */

static void test_affine_random(void) {
    const int bits_list[] = {1, 2, 3, 4, 5, 6, 8}, groups[] = {32, 64, 128};
    const mlxn_dtype dts[] = {MLXN_DTYPE_F32, MLXN_DTYPE_F16, MLXN_DTYPE_BF16};
    for (int bi = 0; bi < 7; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int di = 0; di < 3; di++) {
                int bits = bits_list[bi], group = groups[gi];
                mlxn_dtype dt = dts[di];
                int64_t rows = (bi + gi + di) % 2 ? 5 : 3, cols = group * 3;
                int64_t n = rows * cols, ng = n / group, words = cols * bits / 32;
                size_t es = mlxn_dtype_size(dt);
                void *w = malloc((size_t)n * es), *s = malloc((size_t)ng * es), *b = malloc((size_t)ng * es);
                uint32_t *wq = malloc((size_t)(rows * words) * 4);
                float *out = malloc((size_t)n * 4);
                for (int64_t i = 0; i < n; i++) {
                    int64_t g = i / group;
                    float scale = g % 4 == 0 ? 1e-3f : g % 4 == 1 ? 1.0f : g % 4 == 2 ? 30.0f : 0.2f;
                    float shift = g % 3 == 0 ? 0.0f : g % 3 == 1 ? -2.0f * scale : 3.0f * scale;
                    st(dt, w, i, scale * t_randn() + shift);
                }
                mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = bits, .group_size = group};
                t_poison(wq, (size_t)(rows * words) * 4);
                t_poison(s, (size_t)ng * es);
                t_poison(b, (size_t)ng * es);
                t_poison(out, (size_t)n * 4);
                CHECK_OK(mlxn_quantize(&q, dt, w, rows, cols, wq, s, b));
                CHECK_OK(mlxn_dequantize(&q, dt, wq, s, b, rows, cols, MLXN_DTYPE_F32, out));
                int bad_edge = 0, bad_near = 0, bad_deq = 0;
                const float nb = (float)((1 << bits) - 1), u = unit(dt);
                /* half the smallest subnormal: a tiny f16 scale is stored with
                 * this absolute error, not u relative */
                const double tiny = dt == MLXN_DTYPE_F32 ? 0x1p-150 : dt == MLXN_DTYPE_F16 ? 0x1p-25 : 0x1p-134;
                for (int64_t g = 0; g < ng; g++) {
                    float sg = ld(dt, s, g), bg = ld(dt, b, g);
                    int64_t r = g / (cols / group), c0 = (g % (cols / group)) * group;
                    /* the group's edge: largest magnitude (max wins a tie), or min for 1 bit */
                    int64_t ie = 0;
                    for (int64_t j = 1; j < group; j++) {
                        float a = ld(dt, w, g * group + j), e = ld(dt, w, g * group + ie);
                        if (bits == 1 ? a < e : (fabsf(a) > fabsf(e) || (fabsf(a) == fabsf(e) && a > e))) ie = j;
                    }
                    if (out[g * group + ie] != ld(dt, w, g * group + ie)) bad_edge++;
                    for (int64_t j = 0; j < group; j++) {
                        int64_t i = g * group + j;
                        float x = ld(dt, w, i);
                        uint32_t c = mlxn_unpack_code(wq + r * words, c0 + j, bits);
                        /* dequantize is scale*q+bias with each op rounded to dt */
                        float want;
                        {
                            uint16_t tmp16[1];
                            float tmp32[1];
                            void *t = dt == MLXN_DTYPE_F32 ? (void *)tmp32 : (void *)tmp16;
                            st(dt, t, 0, (float)c * sg);
                            st(dt, t, 0, ld(dt, t, 0) + bg);
                            want = ld(dt, t, 0);
                        }
                        if (memcmp(&want, &out[i], 4) != 0) bad_deq++;
                        /* nearest code: no other code is closer, up to the rounding
                         * of the stored scale and bias and of the arithmetic */
                        double err = fabs((double)x - ((double)c * sg + bg));
                        double slack = 2.0 * u * ((double)nb * fabs(sg) + fabs(bg) + fabs(x)) + 2.0 * nb * tiny;
                        for (int dc = -1; dc <= 1; dc += 2) {
                            double cc = (double)c + dc;
                            if (cc < 0 || cc > nb) continue;
                            if (fabs((double)x - (cc * sg + bg)) + slack < err) bad_near++;
                        }
                        if (err > 0.5 * fabs(sg) + slack && c != 0 && c != (uint32_t)nb) bad_near++;
                    }
                }
                CHECK(bad_edge == 0, "affine %d-bit g%d %s: %d groups do not reproduce their edge exactly", bits,
                      group, mlxn_dtype_name(dt), bad_edge);
                CHECK(bad_near == 0, "affine %d-bit g%d %s: %d codes are not the nearest", bits, group,
                      mlxn_dtype_name(dt), bad_near);
                CHECK(bad_deq == 0, "affine %d-bit g%d %s: %d dequantized values differ from scale*q+bias", bits,
                      group, mlxn_dtype_name(dt), bad_deq);
                /* dequantize to a 16-bit dtype = the f32 result rounded (scales f32 only:
                 * for f16/bf16 scales the f32 result already is a dt value) */
                if (dt == MLXN_DTYPE_F32) {
                    uint16_t *o16 = malloc((size_t)n * 2);
                    for (int k = 0; k < 2; k++) {
                        mlxn_dtype od = k ? MLXN_DTYPE_BF16 : MLXN_DTYPE_F16;
                        t_poison(o16, (size_t)n * 2);
                        CHECK_OK(mlxn_dequantize(&q, dt, wq, s, b, rows, cols, od, o16));
                        int bad16 = 0;
                        for (int64_t i = 0; i < n; i++) {
                            uint16_t want16 = k ? mlxn_f32_to_bf16(out[i]) : mlxn_f32_to_f16(out[i]);
                            bad16 += o16[i] != want16;
                        }
                        CHECK(bad16 == 0, "affine %d-bit g%d: %d %s outputs are not the f32 ones rounded", bits,
                              group, bad16, mlxn_dtype_name(od));
                    }
                    free(o16);
                }
                free(w), free(s), free(b), free(wq), free(out);
            }
}

/* ---- random properties: fp modes ----------------------------------------- */

static void test_fp_random(void) {
    const mlxn_quant_mode modes[] = {MLXN_QUANT_MXFP4, MLXN_QUANT_MXFP8, MLXN_QUANT_NVFP4, MLXN_QUANT_NVFP4};
    for (int mi = 0; mi < 4; mi++) {
        mlxn_quant_params q = {.mode = modes[mi], .bits = modes[mi] == MLXN_QUANT_MXFP8 ? 8 : 4,
                               .group_size = modes[mi] == MLXN_QUANT_NVFP4 ? 16 : 32,
                               .global_scale = mi == 3 ? 0.37f : 0.0f};
        int64_t rows = 5, cols = 96, n = rows * cols, ng = n / q.group_size, words = cols * q.bits / 32;
        float *w = malloc((size_t)n * 4), *out = malloc((size_t)n * 4);
        uint32_t *wq = malloc((size_t)(rows * words) * 4);
        uint8_t *sc = malloc((size_t)ng);
        for (int64_t i = 0; i < n; i++) w[i] = t_randn() * ldexpf(1.0f, (int)((i / q.group_size) % 9) - 4);
        t_poison(wq, (size_t)(rows * words) * 4);
        t_poison(sc, (size_t)ng);
        t_poison(out, (size_t)n * 4);
        CHECK_OK(mlxn_quantize(&q, MLXN_DTYPE_F32, w, rows, cols, wq, sc, NULL));
        CHECK_OK(mlxn_dequantize(&q, MLXN_DTYPE_U8, wq, sc, NULL, rows, cols, MLXN_DTYPE_F32, out));
        int bad_scale = 0, bad_code = 0, bad_deq = 0;
        float enc = q.global_scale > 0 ? 2688.0f / q.global_scale : 1.0f;
        for (int64_t g = 0; g < ng; g++) {
            float amax = 0;
            for (int j = 0; j < q.group_size; j++) amax = fmaxf(amax, fabsf(w[g * q.group_size + j]));
            float d; /* the divisor each element is scaled by */
            if (q.mode == MLXN_QUANT_NVFP4) {
                /* nearest E4M3 to amax/6 * enc (brute force) */
                float t = amax / 6.0f * enc, best = 0;
                for (int x = 0; x < 127; x++) {
                    float v = mlxn_e4m3_to_f32((uint8_t)x);
                    if (fabsf(v - t) < fabsf(best - t)) best = v;
                }
                float got = mlxn_e4m3_to_f32(sc[g]);
                if (fabsf(got - t) > fabsf(best - t)) bad_scale++;
                d = got / enc;
            } else {
                float s = amax / (q.bits == 4 ? 6.0f : 448.0f);
                d = mlxn_e8m0_to_f32(sc[g]);
                if (!(d >= s && d / 2 < s)) bad_scale++;
            }
            int64_t r = g / (cols / q.group_size), c0 = (g % (cols / q.group_size)) * q.group_size;
            for (int j = 0; j < q.group_size; j++) {
                int64_t i = g * q.group_size + j;
                uint32_t c = mlxn_unpack_code(wq + r * words, c0 + j, q.bits);
                float val = q.bits == 4 ? mlxn_e2m1_to_f32(c) : mlxn_e4m3_to_f32((uint8_t)c);
                /* nearest among all codes of the element format */
                float x = q.mode == MLXN_QUANT_NVFP4 ? w[i] / mlxn_e4m3_to_f32(sc[g]) * enc : w[i] / d;
                int ncodes = q.bits == 4 ? 16 : 256;
                for (int k = 0; k < ncodes; k++) {
                    float o = q.bits == 4 ? mlxn_e2m1_to_f32((uint32_t)k) : mlxn_e4m3_to_f32((uint8_t)k);
                    if (isnan(o)) continue;
                    if (fabsf(x - o) < fabsf(x - val) * (1.0f - 1e-6f) && fabsf(x) < 448.0f) {
                        bad_code++;
                        break;
                    }
                }
                float dval = q.mode == MLXN_QUANT_NVFP4
                                 ? val * (mlxn_e4m3_to_f32(sc[g]) * (q.global_scale > 0 ? q.global_scale / 2688.0f : 1.0f))
                                 : val * d;
                if (memcmp(&dval, &out[i], 4) != 0) bad_deq++;
            }
        }
        const char *name = mlxn_quant_mode_name(q.mode);
        CHECK(bad_scale == 0, "%s%s: %d scales break the rule", name, mi == 3 ? "+gs" : "", bad_scale);
        CHECK(bad_code == 0, "%s%s: %d codes not the nearest", name, mi == 3 ? "+gs" : "", bad_code);
        CHECK(bad_deq == 0, "%s%s: %d dequantized values wrong", name, mi == 3 ? "+gs" : "", bad_deq);
        free(w), free(out), free(wq), free(sc);
    }
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_quant");
    test_pack();
    test_codecs();
    test_validate();
    test_hand();
    test_affine_random();
    test_fp_random();
    return t_finish();
}
