/* The TurboQuant cache (mlxn/turboquant.h) on the CPU: creation, sizes, bad
 * input, and quantize-on-append checked through the dequantize op against
 * an independent double-precision reference of the format's math: the
 * rotation as an explicit Hadamard matrix product (not an FWHT), the norm,
 * the nearest level of the codebook (not the boundaries). Every width 2..8,
 * K/V widths that differ, head dims 64..512, strided inputs, a ring that
 * wraps, a zero vector, the position as an int and as an i32 tensor, at
 * every ISA level. Coordinates whose scaled value lies within 1e-4 of a
 * decision boundary may take either neighbour (f32 vs double rotation). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "quant/tq_layout.h"
#include "quant/tq_tables.h"

static int popcount(unsigned x) { return __builtin_popcount(x); }

/* y = H S x / sqrt(D) in double, by the matrix */
static void rotate_d(const float *x, int64_t D, uint32_t seed, double *y) {
    double sx[MLXN_TQ_MAX_HEAD_DIM];
    for (int64_t j = 0; j < D; j++) sx[j] = mlxn_tq_sign(seed, j) * (double)x[j];
    for (int64_t i = 0; i < D; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < D; j++) s += (popcount((unsigned)(i & j)) & 1) ? -sx[j] : sx[j];
        y[i] = s / sqrt((double)D);
    }
}

/* Checks one decoded vector xh against x: in the rotated domain every
 * coordinate must be norm/sqrt(D) * the level nearest to u (or a neighbour
 * near a boundary). Returns the number of bad coordinates. */
static int check_vector(const float *x, const float *xh, int64_t D, uint32_t seed, int bits) {
    double y[MLXN_TQ_MAX_HEAD_DIM], yh[MLXN_TQ_MAX_HEAD_DIM];
    rotate_d(x, D, seed, y);
    rotate_d(xh, D, seed, yh);
    double nn = 0.0;
    for (int64_t d = 0; d < D; d++) nn += y[d] * y[d];
    nn = sqrt(nn);
    const float *lv = mlxn_tq_levels(bits);
    const int L = 1 << bits;
    int bad = 0;
    for (int64_t d = 0; d < D; d++) {
        double u = nn > 0 ? y[d] * sqrt((double)D) / nn : 0.0;
        int best = 0;
        for (int c = 1; c < L; c++)
            if (fabs(u - lv[c]) < fabs(u - lv[best])) best = c;
        int ok = 0;
        for (int c = best - 1; c <= best + 1; c++) {
            if (c < 0 || c >= L) continue;
            if (c != best && fabs(fabs(u - lv[c]) - fabs(u - lv[best])) > 2e-4) continue; /* not a near tie */
            double want = nn / sqrt((double)D) * lv[c];
            if (fabs(yh[d] - want) <= 2e-5 * (nn / sqrt((double)D)) * (1.0 + fabs(lv[c]))) ok = 1;
        }
        if (nn == 0.0) ok = fabs(yh[d]) == 0.0;
        bad += !ok;
    }
    return bad;
}

static void one_case(mlxn_device *dev, int64_t H, int64_t D, int kb, int vb, int64_t cap, int use_tensor) {
    mlxn_stream *s = mlxn_device_stream(dev);
    const uint32_t seed = mlxn_tq_seed((int)(t_rand_u64() % 64));
    mlxn_tq_cache_params p = {.n_kv_heads = (int)H, .capacity = cap, .head_dim = (int)D, .k_bits = kb,
                              .v_bits = vb, .seed = seed};
    mlxn_tq_cache *c = NULL;
    CHECK_OK(mlxn_tq_cache_new(dev, &p, &c));
    if (!c) return;
    /* two appends: T1 tokens at 0, then T2 at T1 that wrap past the end of the ring */
    const int64_t T1 = cap - 2 > 1 ? cap - 2 : 1, T2 = cap < 5 ? cap : 5, Ts[2] = {T1, T2}, P[2] = {0, T1};
    float *xk[2], *xv[2];
    for (int a = 0; a < 2; a++) {
        const int64_t T = Ts[a];
        /* k is a transposed view of [T, H, D] (as a model's projection writes it), v contiguous */
        int64_t shp[3] = {H, T, D}, kst[3] = {D, H * D, 1};
        mlxn_tensor k = t_tensor_strided(dev, MLXN_DTYPE_F32, 3, shp, kst), v = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, shp);
        xk[a] = malloc(sizeof(float) * (size_t)(H * T * D));
        xv[a] = malloc(sizeof(float) * (size_t)(H * T * D));
        float *kh = mlxn_tensor_host(&k), *vh = mlxn_tensor_host(&v);
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                float sk = expf(2.0f * t_randn()), sv = expf(t_randn()); /* norms over a wide range */
                int zero = a == 0 && h == 0 && t == 0;                  /* one zero key */
                for (int64_t d = 0; d < D; d++) {
                    float x = zero ? 0.0f : sk * t_randn(), y = sv * t_randn();
                    xk[a][(h * T + t) * D + d] = kh[t * H * D + h * D + d] = x;
                    xv[a][(h * T + t) * D + d] = vh[(h * T + t) * D + d] = y;
                }
            }
        mlxn_tensor pt = {0};
        if (use_tensor) {
            int64_t one = 1;
            pt = t_tensor_contig(dev, MLXN_DTYPE_I32, 1, &one);
            *(int32_t *)mlxn_tensor_host(&pt) = (int32_t)P[a];
        }
        CHECK_OK(mlxn_tq_append(s, c, &k, &v, use_tensor ? 12345 : P[a], use_tensor ? &pt : NULL));
        if (use_tensor) t_tensor_free(&pt);
        t_tensor_free(&k);
        t_tensor_free(&v);
    }
    /* read back every position still held, in order */
    const int64_t end = T1 + T2, lo = end > cap ? end - cap : 0, n = end - lo;
    int64_t oshape[3] = {H, n, D};
    mlxn_tensor ok_ = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, oshape), ov = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, oshape);
    CHECK_OK(mlxn_tq_dequantize(s, c, 'k', lo, &ok_));
    CHECK_OK(mlxn_tq_dequantize(s, c, 'v', lo, &ov));
    const float *gk = mlxn_tensor_host(&ok_), *gv = mlxn_tensor_host(&ov);
    int bad = 0, nan = 0;
    for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < n; t++) {
            int64_t p0 = lo + t, a = p0 >= T1, tt = p0 - P[a];
            const float *rk = xk[a] + (h * Ts[a] + tt) * D, *rv = xv[a] + (h * Ts[a] + tt) * D;
            const float *ck = gk + (h * n + t) * D, *cv = gv + (h * n + t) * D;
            for (int64_t d = 0; d < D; d++) nan += isnan(ck[d]) || isnan(cv[d]);
            bad += check_vector(rk, ck, D, seed, kb) + check_vector(rv, cv, D, seed, vb);
        }
    CHECK(bad == 0 && nan == 0, "%s: H %lld D %lld k%d v%d cap %lld%s: %d coordinates off, %d NaN", mlxn_device_name(dev),
          (long long)H, (long long)D, kb, vb, (long long)cap, use_tensor ? " (pos tensor)" : "", bad, nan);
    t_tensor_free(&ok_);
    t_tensor_free(&ov);
    for (int a = 0; a < 2; a++) free(xk[a]), free(xv[a]);
    mlxn_tq_cache_free(c);
}

static void bad_input(mlxn_device *dev) {
    mlxn_tq_cache *c = NULL;
    mlxn_tq_cache_params ok = {.n_kv_heads = 2, .capacity = 16, .head_dim = 128, .k_bits = 4, .v_bits = 4};
    const int dims[] = {96, 32, 1024, 0, 100};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        mlxn_tq_cache_params p = ok;
        p.head_dim = dims[i];
        CHECK_FAILS(mlxn_tq_cache_new(dev, &p, &c), MLXN_ERR_UNSUPPORTED);
        CHECK(strstr(mlxn_last_error(), "head_dim") != NULL, "message names head_dim: %s", mlxn_last_error());
        CHECK(c == NULL && mlxn_tq_bytes_per_token(&p) == 0, "no cache for head_dim %d", dims[i]);
    }
    const int widths[] = {0, 1, 9, 16, -4};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        mlxn_tq_cache_params p = ok;
        p.k_bits = widths[i];
        CHECK_FAILS(mlxn_tq_cache_new(dev, &p, &c), MLXN_ERR_UNSUPPORTED);
        CHECK(strstr(mlxn_last_error(), "key width") != NULL, "message names the key width: %s", mlxn_last_error());
        p = ok;
        p.v_bits = widths[i];
        CHECK_FAILS(mlxn_tq_check_params(&p), MLXN_ERR_UNSUPPORTED);
        CHECK(strstr(mlxn_last_error(), "value width") != NULL, "message names the value width: %s", mlxn_last_error());
    }
    mlxn_tq_cache_params p = ok;
    p.n_kv_heads = 0;
    CHECK_FAILS(mlxn_tq_cache_new(dev, &p, &c), MLXN_ERR_INVALID_ARGUMENT);
    p = ok;
    p.capacity = 0;
    CHECK_FAILS(mlxn_tq_cache_new(dev, &p, &c), MLXN_ERR_INVALID_ARGUMENT);
    p = ok;
    p.capacity = INT64_MAX / 4; /* more bytes than a size_t holds: a clear failure, not a wrapped size */
    CHECK_FAILS(mlxn_tq_cache_new(dev, &p, &c), MLXN_ERR_OUT_OF_MEMORY);
    CHECK_FAILS(mlxn_tq_cache_new(dev, NULL, &c), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_tq_cache_new(NULL, &ok, &c), MLXN_ERR_INVALID_ARGUMENT);

    /* sizes: 8 kv heads x (64 + 64 code bytes + 2 norms) at 4 bits, head dim 128 */
    mlxn_tq_cache_params b = {.n_kv_heads = 8, .capacity = 4, .head_dim = 128, .k_bits = 4, .v_bits = 4};
    CHECK(mlxn_tq_bytes_per_token(&b) == 8 * (64 + 64 + 8), "bytes per token tq4: %zu", mlxn_tq_bytes_per_token(&b));
    b.k_bits = 3, b.v_bits = 8;
    CHECK(mlxn_tq_bytes_per_token(&b) == 8 * (48 + 128 + 8), "bytes per token k3v8: %zu", mlxn_tq_bytes_per_token(&b));
    b.head_dim = 256, b.n_kv_heads = 2, b.k_bits = b.v_bits = 2;
    CHECK(mlxn_tq_bytes_per_token(&b) == 2 * (64 + 64 + 8), "bytes per token tq2: %zu", mlxn_tq_bytes_per_token(&b));

    /* op arguments */
    CHECK_OK(mlxn_tq_cache_new(dev, &ok, &c));
    if (!c) return;
    CHECK(mlxn_tq_cache_get_params(c)->capacity == 16 && mlxn_tq_cache_bytes(c) >= 16 * mlxn_tq_bytes_per_token(&ok),
          "params / bytes of a cache");
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t good[3] = {2, 3, 128}, wrong_d[3] = {2, 3, 64}, wrong_h[3] = {1, 3, 128}, too_long[3] = {2, 17, 128};
    mlxn_tensor k = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, good), v = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, good);
    mlxn_tensor kd = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, wrong_d), kh = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, wrong_h);
    mlxn_tensor kl = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, too_long), kb = t_tensor_contig(dev, MLXN_DTYPE_BF16, 3, good);
    t_fill_randn(mlxn_tensor_host(&k), 2 * 3 * 128, 1.0f);
    t_fill_randn(mlxn_tensor_host(&v), 2 * 3 * 128, 1.0f);
    CHECK_FAILS(mlxn_tq_append(s, c, &kd, &v, 0, NULL), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_tq_append(s, c, &kh, &v, 0, NULL), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_tq_append(s, c, &kl, &kl, 0, NULL), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_tq_append(s, c, &kb, &v, 0, NULL), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_tq_append(s, c, &k, &v, -1, NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_tq_append(s, NULL, &k, &v, 0, NULL), MLXN_ERR_INVALID_ARGUMENT);
    int64_t one = 1, two = 2;
    mlxn_tensor pneg = t_tensor_contig(dev, MLXN_DTYPE_I32, 1, &one), pf = t_tensor_contig(dev, MLXN_DTYPE_F32, 1, &one);
    mlxn_tensor p2 = t_tensor_contig(dev, MLXN_DTYPE_I32, 1, &two);
    *(int32_t *)mlxn_tensor_host(&pneg) = -3;
    CHECK_FAILS(mlxn_tq_append(s, c, &k, &v, 0, &pneg), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_tq_append(s, c, &k, &v, 0, &pf), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_tq_append(s, c, &k, &v, 0, &p2), MLXN_ERR_SHAPE);
    CHECK_OK(mlxn_tq_append(s, c, &k, &v, 0, NULL));

    int64_t qs[4] = {1, 4, 3, 128}, qbad[4] = {1, 3, 3, 128}, qlong[4] = {1, 4, 17, 128};
    mlxn_tensor q = t_tensor_contig(dev, MLXN_DTYPE_F32, 4, qs), out = t_tensor_contig(dev, MLXN_DTYPE_F32, 4, qs);
    mlxn_tensor q3 = t_tensor_contig(dev, MLXN_DTYPE_F32, 4, qbad), ql = t_tensor_contig(dev, MLXN_DTYPE_F32, 4, qlong);
    t_fill_randn(mlxn_tensor_host(&q), 4 * 3 * 128, 1.0f);
    mlxn_tq_sdpa_params sp = {.scale = 0.1f, .causal = true, .pos = 0};
    CHECK_FAILS(mlxn_tq_sdpa(s, c, &q3, &sp, &out), MLXN_ERR_SHAPE);      /* Hq not a multiple of Hkv */
    CHECK_FAILS(mlxn_tq_sdpa(s, c, &ql, &sp, &out), MLXN_ERR_SHAPE);      /* Tq > capacity */
    CHECK_FAILS(mlxn_tq_sdpa(s, c, &q, &sp, &q), MLXN_ERR_INVALID_ARGUMENT); /* out aliases q */
    CHECK_FAILS(mlxn_tq_sdpa(s, c, &q, NULL, &out), MLXN_ERR_INVALID_ARGUMENT);
    sp.pos = 20; /* full attention past the capacity */
    CHECK_FAILS(mlxn_tq_sdpa(s, c, &q, &sp, &out), MLXN_ERR_INVALID_ARGUMENT);
    sp.window = 15; /* a wrapped ring of 16 is too short for window 15 and 3 queries */
    CHECK_FAILS(mlxn_tq_sdpa(s, c, &q, &sp, &out), MLXN_ERR_INVALID_ARGUMENT);
    sp.window = 14;
    CHECK_OK(mlxn_tq_sdpa(s, c, &q, &sp, &out));
    sp.window = -1;
    CHECK_FAILS(mlxn_tq_sdpa(s, c, &q, &sp, &out), MLXN_ERR_INVALID_ARGUMENT);
    sp.window = 0, sp.pos = 0, sp.softcap = NAN;
    CHECK_FAILS(mlxn_tq_sdpa(s, c, &q, &sp, &out), MLXN_ERR_INVALID_ARGUMENT);
    sp.softcap = 0, sp.pos = -1;
    CHECK_FAILS(mlxn_tq_sdpa(s, c, &q, &sp, &out), MLXN_ERR_INVALID_ARGUMENT);
    sp.pos = 0;
    CHECK_OK(mlxn_tq_sdpa(s, c, &q, &sp, &out));
    CHECK_FAILS(mlxn_tq_dequantize(s, c, 'x', 0, &k), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_tq_dequantize(s, c, 'k', -1, &k), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_tq_dequantize(s, c, 'k', 0, &kd), MLXN_ERR_SHAPE);
    CHECK_OK(mlxn_tq_dequantize(s, c, 'k', 0, &k));
    /* a cache of another device */
    mlxn_device *other = t_cpu_device(1, MLXN_CPU_ISA_AUTO);
    CHECK_FAILS(mlxn_tq_append(mlxn_device_stream(other), c, &k, &v, 0, NULL), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_device_free(other);
    mlxn_tensor *all[] = {&k, &v, &kd, &kh, &kl, &kb, &pneg, &pf, &p2, &q, &out, &q3, &ql};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) t_tensor_free(all[i]);
    mlxn_tq_cache_free(c);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_turboquant");
    mlxn_device *dev = t_cpu_device(2, MLXN_CPU_ISA_AUTO);
    bad_input(dev);
    const mlxn_cpu_isa isas[] = {MLXN_CPU_ISA_SCALAR, MLXN_CPU_ISA_AVX2, MLXN_CPU_ISA_AUTO};
    int n = 0;
    for (int kb = 2; kb <= 8; kb++) {
        /* values get the next width (mod 2..8), so K and V widths differ in every case */
        int vb = kb == 8 ? 2 : kb + 1;
        for (int64_t D = 64; D <= 512; D *= 2, n++) {
            mlxn_device *d = t_cpu_device(1 + n % 3, isas[n % 3]);
            one_case(d, 1 + n % 3, D, kb, vb, 7 + n % 5, n % 2);
            mlxn_device_free(d);
        }
    }
    one_case(dev, 2, 128, 4, 4, 1, 0); /* a one-slot ring */
    mlxn_device_free(dev);
    return t_finish();
}
