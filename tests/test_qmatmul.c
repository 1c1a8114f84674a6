/* mlxn_quantized_matmul on the CPU.
 *
 * 1. Goldens from real MLX (tests/golden/gen_qmm.py): every affine width x
 *    group x scale dtype, transpose true/false, batches [1,K], [3,K],
 *    [2,3,K]; mxfp4, mxfp8, nvfp4 (and nvfp4 with a global scale), run at
 *    every ISA level this processor has.
 * 2. Fresh random codes/scales/x against a reference written here,
 *    independently of the library's kernels: each weight decoded with
 *    quant/quant_layout.h, sums in double. Every ISA level (levels the CPU
 *    lacks are skipped and reported), 1/2/3 threads, poisoned outputs, K
 *    and N that are not multiples of the vector width, strided x.
 * 3. NaN in x propagates; bad arguments return a status.
 * 4. quantized_matmul_fused (the norm before, the residual add after): the
 *    bits of the parts run apart, and the reference.
 *
 * Tolerances (normalized squared error, sum (ref-got)^2 / sum ref^2):
 *   float paths (scalar, AVX2, AVX-512 tiles): 1e-10 — only f32 rounding
 *   of the sums (~K * 2^-48 ~ 1e-12 here).
 *   the integer mat-vecs, AVX-512 VNNI (affine, transpose, <= 8 x rows)
 *   and AVX2 (affine 2..6- and 8-bit, transpose, <= 4 x rows): 1e-7 — x is rounded
 *   to 16 bits per group (rms error ~ max|x| / 113000, i.e. NMSE ~1e-9 on
 *   Gaussian x); see src/backend/cpu/qmatmul_avx512.c and
 *   qmatmul_avx2_int.c.
 *   against MLX's output the same bounds plus MLX's own f32 rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "harness.h"
#include "quant/quant_layout.h"

#define TOL_FLOAT 1e-10
#define TOL_VNNI 1e-7

static double worst_float = 0, worst_vnni = 0;

/* ---- the independent reference ------------------------------------------ */

typedef struct qcase {
    mlxn_quant_params q;
    mlxn_dtype sdt;         /* affine: f32/f16/bf16; fp modes: u8 */
    int64_t rows, cols;     /* W's quantized layout [rows, cols] */
    const uint32_t *wq;     /* [rows, cols*bits/32] */
    const void *scales;     /* [rows, cols/group] */
    const void *biases;     /* [rows, cols/group] or NULL */
} qcase;

static double ref_scale_f(mlxn_dtype dt, const void *p, int64_t i) {
    if (dt == MLXN_DTYPE_F16) return mlxn_f16_to_f32(((const uint16_t *)p)[i]);
    if (dt == MLXN_DTYPE_BF16) return mlxn_bf16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

/* W[r][c] as the format defines it */
static double ref_weight(const qcase *c, int64_t r, int64_t col) {
    const int bits = c->q.bits;
    uint32_t code = mlxn_unpack_code(c->wq + r * (c->cols * bits / 32), col, bits);
    int64_t gi = r * (c->cols / c->q.group_size) + col / c->q.group_size;
    switch (c->q.mode) {
    case MLXN_QUANT_AFFINE:
        return (double)(float)(ref_scale_f(c->sdt, c->scales, gi) * code + ref_scale_f(c->sdt, c->biases, gi));
    case MLXN_QUANT_MXFP4:
        return (double)mlxn_e2m1_to_f32(code) * mlxn_e8m0_to_f32(((const uint8_t *)c->scales)[gi]);
    case MLXN_QUANT_MXFP8:
        return (double)mlxn_e4m3_to_f32((uint8_t)code) * mlxn_e8m0_to_f32(((const uint8_t *)c->scales)[gi]);
    default: {
        /* MLX: a global scale g makes the block scale e4m3(s) * (g / (6 * 448)) */
        float gs = c->q.global_scale > 0.0f ? c->q.global_scale / 2688.0f : 1.0f;
        return (double)mlxn_e2m1_to_f32(code) * (double)(mlxn_e4m3_to_f32(((const uint8_t *)c->scales)[gi]) * gs);
    }
    }
}

/* out [M, N] = x [M, K] @ W^T (transpose, W [N, K]) or x @ W (W [K, N]) */
static void ref_qmm(const qcase *c, int transpose, const float *x, int64_t M, float *out) {
    int64_t K = transpose ? c->cols : c->rows, N = transpose ? c->rows : c->cols;
    double *acc = calloc((size_t)(M * N), sizeof(double));
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++) {
            double w = transpose ? ref_weight(c, n, k) : ref_weight(c, k, n);
            for (int64_t m = 0; m < M; m++) acc[m * N + n] += (double)x[m * K + k] * w;
        }
    for (int64_t i = 0; i < M * N; i++) out[i] = (float)acc[i];
    free(acc);
}

/* ---- tensors ------------------------------------------------------------ */

static mlxn_tensor make(mlxn_device *dev, mlxn_dtype dt, int ndim, const int64_t *shape, const void *data) {
    mlxn_tensor t;
    memset(&t, 0, sizeof t);
    CHECK_OK(mlxn_tensor_alloc(dev, dt, ndim, shape, &t));
    if (data) CHECK_OK(mlxn_buffer_write(t.buf, t.offset, data, mlxn_tensor_nbytes(&t)));
    return t;
}

static mlxn_cpu_isa best_isa;

static double tolerance(mlxn_cpu_isa isa, const qcase *c, int transpose, int64_t M) {
    mlxn_cpu_isa eff = isa < best_isa ? isa : best_isa;
    if (!transpose || c->q.mode != MLXN_QUANT_AFFINE) return TOL_FLOAT;
    if (eff == MLXN_CPU_ISA_AVX512 && M <= 8) return TOL_VNNI;
    if (eff == MLXN_CPU_ISA_AVX2 && c->q.bits >= 2 && c->q.bits != 7 && M <= 4) return TOL_VNNI; /* the AVX2 integer mat-vec */
    return TOL_FLOAT;
}

static void note(double tol, double e) {
    if (tol == TOL_VNNI) worst_vnni = e > worst_vnni ? e : worst_vnni;
    else worst_float = e > worst_float ? e : worst_float;
}

/* Run the op on device `dev` with x given as (possibly strided) host
 * data; compare with `want` [M, N]. x_lead: the leading dims. */
static void run_and_check(mlxn_device *dev, mlxn_cpu_isa isa, const qcase *c, int transpose, int nlead,
                          const int64_t *lead, const float *x, int strided, const float *want,
                          const char *what) {
    int64_t K = transpose ? c->cols : c->rows, N = transpose ? c->rows : c->cols, M = 1;
    for (int i = 0; i < nlead; i++) M *= lead[i];
    int64_t ws[2] = {c->rows, c->cols * c->q.bits / 32}, ss[2] = {c->rows, c->cols / c->q.group_size};
    mlxn_tensor wq = make(dev, MLXN_DTYPE_U32, 2, ws, c->wq);
    mlxn_tensor sc = make(dev, c->sdt, 2, ss, c->scales);
    mlxn_tensor bi;
    memset(&bi, 0, sizeof bi);
    if (c->biases) bi = make(dev, c->sdt, 2, ss, c->biases);
    /* x: contiguous, or each row padded by 3 elements and every element 2
     * apart (strided leading dims and a strided last axis) */
    int64_t xshape[4], oshape[4];
    for (int i = 0; i < nlead; i++) xshape[i] = oshape[i] = lead[i];
    xshape[nlead] = K;
    oshape[nlead] = N;
    mlxn_tensor xt;
    if (!strided) {
        xt = make(dev, MLXN_DTYPE_F32, nlead + 1, xshape, x);
    } else {
        int64_t rowlen = 2 * K + 3, flat[1] = {M * rowlen + 8};
        float *pad = malloc((size_t)flat[0] * sizeof(float));
        for (int64_t i = 0; i < flat[0]; i++) pad[i] = NAN; /* never read */
        for (int64_t m = 0; m < M; m++)
            for (int64_t k = 0; k < K; k++) pad[8 + m * rowlen + 2 * k] = x[m * K + k];
        xt = make(dev, MLXN_DTYPE_F32, 1, flat, pad);
        free(pad);
        xt.ndim = nlead + 1;
        xt.offset = 8 * sizeof(float);
        int64_t st = rowlen;
        for (int i = nlead - 1; i >= 0; i--) {
            xt.shape[i] = lead[i];
            xt.strides[i] = st;
            st *= lead[i];
        }
        xt.shape[nlead] = K;
        xt.strides[nlead] = 2;
    }
    mlxn_tensor out = make(dev, MLXN_DTYPE_F32, nlead + 1, oshape, NULL);
    float *o = mlxn_tensor_host(&out);
    t_poison(o, (size_t)(M * N) * sizeof(float));
    CHECK_OK(mlxn_quantized_matmul(mlxn_device_stream(dev), &xt, &wq, &sc, c->biases ? &bi : NULL, &c->q,
                                   transpose, &out));
    double e = t_nmse(want, o, (size_t)(M * N));
    double tol = tolerance(isa, c, transpose, M);
    note(tol, e);
    CHECK(e < tol, "%s: %s bits=%d group=%d sdt=%s transpose=%d M=%lld K=%lld N=%lld isa=%s threads=%d "
          "strided=%d: nmse %.3g (tol %.0e)", what, mlxn_quant_mode_name(c->q.mode), c->q.bits, c->q.group_size,
          mlxn_dtype_name(c->sdt), transpose, (long long)M, (long long)K, (long long)N, mlxn_cpu_isa_name(isa),
          mlxn_device_threads(dev), strided, e, tol);
    mlxn_tensor_release(&out);
    mlxn_tensor_release(&xt);
    if (c->biases) mlxn_tensor_release(&bi);
    mlxn_tensor_release(&sc);
    mlxn_tensor_release(&wq);
}

/* ---- goldens ------------------------------------------------------------ */

static const mlxn_cpu_isa ISAS[3] = {MLXN_CPU_ISA_SCALAR, MLXN_CPU_ISA_AVX2, MLXN_CPU_ISA_AVX512};

static void golden_case(mlxn_weights *g, const char *name, mlxn_quant_params q, mlxn_device **devs) {
    char key[128];
    snprintf(key, sizeof key, "%s.x", name);
    const mlxn_weight_info *xi = mlxn_weights_find(g, key);
    snprintf(key, sizeof key, "%s.wq", name);
    const mlxn_weight_info *wi = mlxn_weights_find(g, key);
    snprintf(key, sizeof key, "%s.scales", name);
    const mlxn_weight_info *si = mlxn_weights_find(g, key);
    CHECK(xi && wi && si, "golden case %s incomplete", name);
    if (!xi || !wi || !si) return;
    int transpose = name[strlen(name) - 1] == '1';
    qcase c = {.q = q, .sdt = si->dtype, .rows = wi->shape[0], .cols = wi->shape[1] * 32 / q.bits};
    c.wq = mlxn_weights_data(g, wi);
    c.scales = mlxn_weights_data(g, si);
    if (q.mode == MLXN_QUANT_AFFINE) {
        snprintf(key, sizeof key, "%s.biases", name);
        c.biases = t_golden_get(g, key, si->dtype, NULL);
    }
    snprintf(key, sizeof key, "%s.global_scale", name);
    if (mlxn_weights_find(g, key)) c.q.global_scale = *(const float *)t_golden_get(g, key, MLXN_DTYPE_F32, NULL);
    snprintf(key, sizeof key, "%s.x", name);
    const float *x = t_golden_get(g, key, MLXN_DTYPE_F32, NULL);
    snprintf(key, sizeof key, "%s.out", name);
    size_t nout = 0;
    const float *want = t_golden_get(g, key, MLXN_DTYPE_F32, &nout);
    if (!x || !want) return;
    int nlead = xi->ndim - 1;
    int64_t M = 1;
    for (int i = 0; i < nlead; i++) M *= xi->shape[i];
    /* the reference written here must agree with MLX too */
    float *mine = malloc(nout * sizeof(float));
    ref_qmm(&c, transpose, x, M, mine);
    double e = t_nmse(want, mine, nout);
    note(TOL_FLOAT, e);
    CHECK(e < TOL_FLOAT, "golden %s: the test's reference disagrees with MLX: nmse %.3g", name, e);
    free(mine);
    for (int i = 0; i < 3; i++)
        if (devs[i]) run_and_check(devs[i], ISAS[i], &c, transpose, nlead, xi->shape, x, 0, want, name);
}

static void goldens(mlxn_device **devs) {
    static const char *const sdts[3] = {"f32", "f16", "bf16"};
    for (int bits = 1; bits <= 8; bits++) {
        if (bits == 7) continue;
        char file[64];
        snprintf(file, sizeof file, "qmm/affine_b%d.safetensors", bits);
        mlxn_weights *g = t_golden_open(file);
        if (!g) continue;
        for (int group = 32; group <= 128; group *= 2)
            for (int s = 0; s < 3; s++)
                for (int t = 1; t >= 0; t--) {
                    char name[64];
                    snprintf(name, sizeof name, "g%d_%s_t%d", group, sdts[s], t);
                    mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = bits, .group_size = group};
                    golden_case(g, name, q, devs);
                }
        mlxn_weights_free(g);
    }
    mlxn_weights *g = t_golden_open("qmm/fp.safetensors");
    if (!g) return;
    static const struct { const char *name; mlxn_quant_params q; } fp[] = {
        {"mxfp4_t1", {MLXN_QUANT_MXFP4, 4, 32, 0, MLXN_QUANT_ROWS}}, {"mxfp4_t0", {MLXN_QUANT_MXFP4, 4, 32, 0, MLXN_QUANT_ROWS}},
        {"mxfp8_t1", {MLXN_QUANT_MXFP8, 8, 32, 0, MLXN_QUANT_ROWS}}, {"mxfp8_t0", {MLXN_QUANT_MXFP8, 8, 32, 0, MLXN_QUANT_ROWS}},
        {"nvfp4_t1", {MLXN_QUANT_NVFP4, 4, 16, 0, MLXN_QUANT_ROWS}}, {"nvfp4_t0", {MLXN_QUANT_NVFP4, 4, 16, 0, MLXN_QUANT_ROWS}},
        {"nvfp4gs_t1", {MLXN_QUANT_NVFP4, 4, 16, 0, MLXN_QUANT_ROWS}},
    };
    for (size_t i = 0; i < sizeof fp / sizeof fp[0]; i++) golden_case(g, fp[i].name, fp[i].q, devs);
    mlxn_weights_free(g);
}

/* ---- random cases ------------------------------------------------------- */

typedef struct rnd {
    qcase c;
    uint32_t *wq;
    void *scales, *biases;
} rnd;

static void store_f(mlxn_dtype dt, void *p, int64_t i, float v) {
    if (dt == MLXN_DTYPE_F16) ((uint16_t *)p)[i] = mlxn_f32_to_f16(v);
    else if (dt == MLXN_DTYPE_BF16) ((uint16_t *)p)[i] = mlxn_f32_to_bf16(v);
    else ((float *)p)[i] = v;
}

static void rnd_make(rnd *r, mlxn_quant_params q, mlxn_dtype sdt, int64_t rows, int64_t cols) {
    memset(r, 0, sizeof *r);
    int64_t words = rows * cols * q.bits / 32, ng = rows * cols / q.group_size;
    r->wq = malloc((size_t)words * 4);
    for (int64_t i = 0; i < words; i++) r->wq[i] = (uint32_t)t_rand_u64();
    if (q.mode == MLXN_QUANT_MXFP8) /* no NaN codes (0x7f, 0xff): MLX never writes them */
        for (int64_t i = 0; i < words * 4; i++) {
            uint8_t *b = (uint8_t *)r->wq + i;
            if ((*b & 0x7f) == 0x7f) *b = 0x3e;
        }
    if (q.mode == MLXN_QUANT_AFFINE) {
        size_t es = mlxn_dtype_size(sdt);
        r->scales = malloc((size_t)ng * es);
        r->biases = malloc((size_t)ng * es);
        for (int64_t i = 0; i < ng; i++) {
            store_f(sdt, r->scales, i, t_uniform(-0.1f, 0.1f));
            store_f(sdt, r->biases, i, t_uniform(-1.0f, 1.0f));
        }
    } else {
        uint8_t *s = malloc((size_t)ng);
        for (int64_t i = 0; i < ng; i++)
            s[i] = q.mode == MLXN_QUANT_NVFP4 ? (uint8_t)(t_rand_u64() % 0x7f) /* any finite e4m3 >= 0 */
                                              : (uint8_t)(120 + t_rand_u64() % 12); /* 2^-7 .. 2^4 */
        r->scales = s;
        sdt = MLXN_DTYPE_U8;
    }
    r->c = (qcase){.q = q, .sdt = sdt, .rows = rows, .cols = cols, .wq = r->wq, .scales = r->scales,
                   .biases = r->biases};
}

static void rnd_free(rnd *r) {
    free(r->wq);
    free(r->scales);
    free(r->biases);
}

/* One configuration at every ISA level; threads and batch rotate. kfix:
 * 0, or the number of groups per row of a transposed W instead of 3, 5 or
 * 13 (nvfp4's groups of 16 need an even count for whole 32-code chunks,
 * the AVX2 mat-vec's step). */
static void random_case_k(mlxn_device *devs[3][4], mlxn_quant_params q, mlxn_dtype sdt, int transpose, int salt,
                          int64_t kfix) {
    static const int64_t kmul[3] = {3, 5, 13};
    /* x rows: decode sizes, and prefill sizes for the packed-x path (17: a
     * second, mostly padded block of 16; 40 = 4 x 10: three blocks) */
    static const int64_t leads[6][3] = {{1, 1, 1}, {3, 1, 1}, {4, 1, 1}, {3, 3, 1}, {17, 1, 1}, {4, 10, 1}};
    static const int nleads[6] = {1, 1, 1, 2, 1, 2};
    int64_t G = q.group_size;
    /* transpose: W [N, K], N odd; K = group * (3 | 5 | 13). Not transposed:
     * W [K, N] with N = group * (3 | 5), K odd. */
    int64_t rows = transpose ? (salt % 2 ? 37 : 101) : 7 + 2 * (salt % 3); /* 101: three 48-row panels */
    int64_t cols = transpose ? G * (kfix ? kfix : kmul[salt % 3]) : G * kmul[salt % 2];
    rnd r;
    rnd_make(&r, q, sdt, rows, cols);
    int li = salt % 6;
    int64_t M = leads[li][0] * (nleads[li] > 1 ? leads[li][1] : 1);
    int64_t K = transpose ? cols : rows, N = transpose ? rows : cols;
    float *x = malloc((size_t)(M * K) * sizeof(float));
    t_fill_randn(x, (size_t)(M * K), 1.0f);
    float *want = malloc((size_t)(M * N) * sizeof(float));
    ref_qmm(&r.c, transpose, x, M, want);
    int threads = 1 + salt % 3;
    for (int i = 0; i < 3; i++)
        if (devs[i][threads])
            run_and_check(devs[i][threads], ISAS[i], &r.c, transpose, nleads[li], leads[li], x, salt % 5 == 0,
                          want, "random");
    free(x);
    free(want);
    rnd_free(&r);
}

static void random_case(mlxn_device *devs[3][4], mlxn_quant_params q, mlxn_dtype sdt, int transpose, int salt) {
    random_case_k(devs, q, sdt, transpose, salt, 0);
}

static void randoms(mlxn_device *devs[3][4]) {
    static const mlxn_dtype sdts[3] = {MLXN_DTYPE_F32, MLXN_DTYPE_F16, MLXN_DTYPE_BF16};
    int salt = 0;
    for (int bits = 1; bits <= 8; bits++) {
        if (bits == 7) continue;
        for (int group = 32; group <= 128; group *= 2)
            for (int s = 0; s < 3; s++)
                for (int t = 0; t < 2; t++) {
                    mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = bits, .group_size = group};
                    random_case(devs, q, sdts[s], t, salt++);
                }
    }
    for (int t = 0; t < 2; t++)
        for (int rep = 0; rep < 4; rep++) {
            random_case(devs, (mlxn_quant_params){MLXN_QUANT_MXFP4, 4, 32, 0, MLXN_QUANT_ROWS}, MLXN_DTYPE_U8, t, salt++);
            random_case(devs, (mlxn_quant_params){MLXN_QUANT_MXFP8, 8, 32, 0, MLXN_QUANT_ROWS}, MLXN_DTYPE_U8, t, salt++);
            random_case(devs, (mlxn_quant_params){MLXN_QUANT_NVFP4, 4, 16, 0, MLXN_QUANT_ROWS}, MLXN_DTYPE_U8, t, salt++);
            random_case(devs, (mlxn_quant_params){MLXN_QUANT_NVFP4, 4, 16, 0.37f, MLXN_QUANT_ROWS}, MLXN_DTYPE_U8, t, salt++);
        }
    /* nvfp4 over whole 32-code chunks (two groups each): K = 32, 128, 416, every lead */
    for (int rep = 0; rep < 6; rep++) {
        const int64_t kfix[3] = {2, 8, 26};
        const float gs = rep % 2 ? 0.37f : 0.0f;
        random_case_k(devs, (mlxn_quant_params){MLXN_QUANT_NVFP4, 4, 16, gs, MLXN_QUANT_ROWS}, MLXN_DTYPE_U8, 1, salt++, kfix[rep % 3]);
    }
    /* every thread count on one larger decode-shaped case per ISA */
    for (int th = 1; th <= 3; th++) {
        mlxn_device *one[3][4] = {{0}};
        for (int i = 0; i < 3; i++) one[i][1 + (salt % 3)] = devs[i][th];
        mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = 4, .group_size = 64};
        random_case(one, q, MLXN_DTYPE_BF16, 1, salt);
        random_case(one, q, MLXN_DTYPE_BF16, 0, salt);
    }
}

/* 2-, 3-, 5- and 6-bit rows whose matrix ends exactly at a 64-byte
 * boundary (K = 256, 8 rows), so the weights' buffer has no allocation
 * slack: a vector load past a row's last code then leaves the buffer, which
 * the ASan build reports. Every AVX2 path that unpacks these widths runs:
 * the integer mat-vec (1 x row), the float mat-vec (1 x row with float
 * activations), the tile kernel (9) and the micro-kernel prefill (17). */
static void packed_row_ends(mlxn_device *avx2) {
    mlxn_device *exact = t_cpu_device_exact(2);
    static const int widths[4] = {2, 3, 5, 6};
    static const int64_t ms[3] = {1, 9, 17};
    for (int wi = 0; wi < 4; wi++) {
        mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = widths[wi], .group_size = 64};
        rnd r;
        rnd_make(&r, q, MLXN_DTYPE_BF16, 8, 256);
        for (int mi = 0; mi < 3; mi++) {
            const int64_t M = ms[mi], lead[1] = {M};
            float *x = malloc((size_t)(M * 256) * sizeof(float)), *want = malloc((size_t)(M * 8) * sizeof(float));
            t_fill_randn(x, (size_t)(M * 256), 1.0f);
            ref_qmm(&r.c, 1, x, M, want);
            run_and_check(avx2, MLXN_CPU_ISA_AVX2, &r.c, 1, 1, lead, x, 0, want, "packed row ends");
            if (M == 1) run_and_check(exact, MLXN_CPU_ISA_AVX2, &r.c, 1, 1, lead, x, 0, want, "packed row ends, float");
            free(x);
            free(want);
        }
        rnd_free(&r);
    }
    mlxn_device_free(exact);
}

/* ---- NaN and bad arguments ---------------------------------------------- */

static void nan_and_errors(mlxn_device *dev) {
    mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = 4, .group_size = 64};
    rnd r;
    rnd_make(&r, q, MLXN_DTYPE_BF16, 20, 128);
    int64_t ws[2] = {20, 16}, ss[2] = {20, 2}, xs[2] = {2, 128}, os[2] = {2, 20};
    mlxn_tensor wq = make(dev, MLXN_DTYPE_U32, 2, ws, r.wq), sc = make(dev, MLXN_DTYPE_BF16, 2, ss, r.scales);
    mlxn_tensor bi = make(dev, MLXN_DTYPE_BF16, 2, ss, r.biases);
    float x[256];
    t_fill_randn(x, 256, 1.0f);
    x[5] = NAN; /* row 0 only */
    mlxn_tensor xt = make(dev, MLXN_DTYPE_F32, 2, xs, x), out = make(dev, MLXN_DTYPE_F32, 2, os, NULL);
    float *o = mlxn_tensor_host(&out);
    mlxn_stream *s = mlxn_device_stream(dev);
    CHECK_OK(mlxn_quantized_matmul(s, &xt, &wq, &sc, &bi, &q, true, &out));
    int nan_row0 = 1;
    for (int i = 0; i < 20; i++) nan_row0 &= isnan(o[i]);
    CHECK(nan_row0, "a NaN in x row 0 must make every output of row 0 NaN");
    float want[40];
    ref_qmm(&r.c, 1, x, 2, want);
    CHECK(t_nmse(want + 20, o + 20, 20) < TOL_VNNI, "row 1 (finite x) must still be right next to a NaN row");
    /* bad arguments */
    mlxn_quant_params bad = q;
    bad.bits = 7;
    CHECK_FAILS(mlxn_quantized_matmul(s, &xt, &wq, &sc, &bi, &bad, true, &out), MLXN_ERR_INVALID_ARGUMENT);
    bad = q;
    bad.group_size = 48;
    CHECK_FAILS(mlxn_quantized_matmul(s, &xt, &wq, &sc, &bi, &bad, true, &out), MLXN_ERR_UNSUPPORTED);
    CHECK_FAILS(mlxn_quantized_matmul(s, &xt, &wq, &sc, NULL, &q, true, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_quantized_matmul(s, &xt, &wq, &sc, &bi, &q, false, &out), MLXN_ERR_SHAPE); /* K mismatch */
    mlxn_quant_params mx = {.mode = MLXN_QUANT_MXFP4, .bits = 4, .group_size = 32};
    CHECK_FAILS(mlxn_quantized_matmul(s, &xt, &wq, &sc, &bi, &mx, true, &out), MLXN_ERR_SHAPE);
    /* a weight view whose last axis is not unit-stride */
    mlxn_tensor wv = wq;
    wv.shape[1] = 8;
    wv.strides[1] = 2;
    mlxn_tensor sv = sc, bv = bi;
    sv.shape[1] = bv.shape[1] = 1;
    int64_t xs2[2] = {2, 64};
    mlxn_tensor x2 = make(dev, MLXN_DTYPE_F32, 2, xs2, x);
    CHECK_FAILS(mlxn_quantized_matmul(s, &x2, &wv, &sv, &bv, &q, true, &out), MLXN_ERR_SHAPE);
    mlxn_tensor_release(&x2);
    mlxn_tensor_release(&xt);
    mlxn_tensor_release(&out);
    mlxn_tensor_release(&wq);
    mlxn_tensor_release(&sc);
    mlxn_tensor_release(&bi);
    rnd_free(&r);
}

/* ---- quantized_matmul_fused ---------------------------------------------
 * The CPU runs the parts apart (rms_norm, the product, then add or the
 * gated activation), so its result must be exactly those ops' bits, in
 * place or not; against the independent reference (norm in double, then
 * ref_qmm, then the residual or act(gate) * up) the product's tolerance.
 * Bad fusions fail with a status. */

static double ref_act(mlxn_glu glu, double g) {
    if (glu == MLXN_GLU_SWIGLU) return g / (1.0 + exp(-g));
    if (glu == MLXN_GLU_GEGLU_TANH) return 0.5 * g * (1.0 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g)));
    return 0.5 * g * (1.0 + erf(g / sqrt(2.0)));
}

static void fused_case(mlxn_device *dev, mlxn_dtype nw_dt, float off, int M, int with_norm, int with_res,
                       int in_place, mlxn_glu glu) {
    mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = 4, .group_size = 64};
    const int64_t N = glu ? 78 : 77, K = 256, NO = glu ? N / 2 : N;
    rnd r;
    rnd_make(&r, q, MLXN_DTYPE_BF16, N, K);
    int64_t ws[2] = {N, K / 8}, ss[2] = {N, K / 64}, xs[2] = {M, K}, os[2] = {M, NO}, ys[2] = {M, N}, ks[1] = {K};
    int64_t xn_n[1] = {M * K}, y_n[1] = {M * N};
    float *x = malloc(sizeof(float) * (size_t)(M * K)), *res = malloc(sizeof(float) * (size_t)(M * NO));
    t_fill_randn(x, (size_t)(M * K), 2.0f);
    t_fill_randn(res, (size_t)(M * NO), 1.0f);
    uint16_t nw16[256];
    float nw32[256];
    for (int k = 0; k < K; k++) {
        float v = t_uniform(0.5f, 1.5f);
        nw32[k] = v;
        nw16[k] = nw_dt == MLXN_DTYPE_F16 ? mlxn_f32_to_f16(v) : mlxn_f32_to_bf16(v);
    }
    const void *nwv = nw_dt == MLXN_DTYPE_F32 ? (const void *)nw32 : (const void *)nw16;
    mlxn_stream *s = mlxn_device_stream(dev);
    mlxn_tensor wq = make(dev, MLXN_DTYPE_U32, 2, ws, r.wq), sc = make(dev, MLXN_DTYPE_BF16, 2, ss, r.scales);
    mlxn_tensor bi = make(dev, MLXN_DTYPE_BF16, 2, ss, r.biases), xt = make(dev, MLXN_DTYPE_F32, 2, xs, x);
    mlxn_tensor nw = make(dev, nw_dt, 1, ks, nwv);
    mlxn_tensor rt = make(dev, MLXN_DTYPE_F32, 2, os, res), out = make(dev, MLXN_DTYPE_F32, 2, os, NULL);
    mlxn_tensor xscr = make(dev, MLXN_DTYPE_F32, 1, xn_n, NULL), yscr = make(dev, MLXN_DTYPE_F32, 1, y_n, NULL);
    t_poison(mlxn_tensor_host(&out), sizeof(float) * (size_t)(M * NO));
    mlxn_tensor *dst = in_place ? &rt : &out;
    mlxn_qmm_fusion f = {.norm_w = with_norm ? &nw : NULL, .norm_eps = 1e-5f, .norm_offset = off,
                         .residual = with_res ? &rt : NULL, .glu = glu, .x_scratch = &xscr, .y_scratch = &yscr};
    /* the parts apart, through the public ops, first (in place overwrites the residual) */
    mlxn_tensor xn = make(dev, MLXN_DTYPE_F32, 2, xs, NULL), prod = make(dev, MLXN_DTYPE_F32, 2, ys, NULL);
    mlxn_tensor sum = make(dev, MLXN_DTYPE_F32, 2, os, NULL);
    if (with_norm) CHECK_OK(mlxn_rms_norm(s, &xt, &nw, 1e-5f, off, &xn));
    CHECK_OK(mlxn_quantized_matmul(s, with_norm ? &xn : &xt, &wq, &sc, &bi, &q, true, &prod));
    if (with_res) CHECK_OK(mlxn_add(s, &rt, &prod, &sum));
    if (glu) {
        mlxn_tensor g = prod, u = prod;
        g.shape[1] = u.shape[1] = NO;
        u.offset += (size_t)NO * sizeof(float);
        if (glu == MLXN_GLU_SWIGLU) CHECK_OK(mlxn_swiglu(s, &g, &u, &sum));
        else CHECK_OK(mlxn_geglu(s, &g, &u, glu == MLXN_GLU_GEGLU_TANH ? MLXN_GELU_TANH : MLXN_GELU_ERF, &sum));
    }
    const float *apart = mlxn_tensor_host(with_res || glu ? &sum : &prod);
    CHECK_OK(mlxn_quantized_matmul_fused(s, &xt, &wq, &sc, &bi, &q, &f, dst));
    const float *got = mlxn_tensor_host(dst);
    CHECK(!memcmp(apart, got, sizeof(float) * (size_t)(M * NO)),
          "fused (norm %d %s off %g, residual %d, in place %d, glu %d, M %d) differs from the parts apart", with_norm,
          mlxn_dtype_name(nw_dt), off, with_res, in_place, (int)glu, M);
    /* the independent reference */
    float *xr = malloc(sizeof(float) * (size_t)(M * K)), *y = malloc(sizeof(float) * (size_t)(M * N));
    float *want = malloc(sizeof(float) * (size_t)(M * NO));
    for (int m = 0; m < M; m++) {
        double ssq = 0;
        for (int k = 0; k < K; k++) ssq += (double)x[m * K + k] * x[m * K + k];
        double inv = 1.0 / sqrt(ssq / K + 1e-5);
        for (int k = 0; k < K; k++)
            xr[m * K + k] = with_norm ? (float)(x[m * K + k] * inv * t_norm_weight(nwv, nw_dt, k, off)) : x[m * K + k];
    }
    ref_qmm(&r.c, 1, xr, M, y);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < NO; n++)
            want[m * NO + n] = glu ? (float)(ref_act(glu, y[m * N + n]) * y[m * N + NO + n])
                                   : y[m * N + n] + (with_res ? res[m * NO + n] : 0.0f);
    double e = t_nmse(want, got, (size_t)(M * NO));
    CHECK(e < TOL_VNNI, "fused vs reference: nmse %.3g (norm %d, residual %d, glu %d, M %d)", e, with_norm, with_res,
          (int)glu, M);
    free(xr), free(y), free(want), free(x), free(res);
    mlxn_tensor *all[] = {&wq, &sc, &bi, &xt, &nw, &rt, &out, &xscr, &yscr, &xn, &prod, &sum};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mlxn_tensor_release(all[i]);
    rnd_free(&r);
}

static void fused_errors(mlxn_device *dev) {
    mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = 4, .group_size = 64};
    rnd r;
    rnd_make(&r, q, MLXN_DTYPE_BF16, 21, 128);
    int64_t ws[2] = {21, 16}, ss[2] = {21, 2}, xs[2] = {1, 128}, os[2] = {1, 21}, ks[1] = {128}, bad_k[1] = {64};
    int64_t small[1] = {100}, x_n[1] = {128}, y_n[1] = {21};
    mlxn_tensor wq = make(dev, MLXN_DTYPE_U32, 2, ws, r.wq), sc = make(dev, MLXN_DTYPE_BF16, 2, ss, r.scales);
    mlxn_tensor bi = make(dev, MLXN_DTYPE_BF16, 2, ss, r.biases), x = make(dev, MLXN_DTYPE_F32, 2, xs, NULL);
    mlxn_tensor nw = make(dev, MLXN_DTYPE_BF16, 1, ks, NULL), nw_short = make(dev, MLXN_DTYPE_BF16, 1, bad_k, NULL);
    mlxn_tensor out = make(dev, MLXN_DTYPE_F32, 2, os, NULL), res = make(dev, MLXN_DTYPE_F32, 2, os, NULL);
    mlxn_tensor res_bad = make(dev, MLXN_DTYPE_F32, 2, ss, NULL), scr_small = make(dev, MLXN_DTYPE_F32, 1, small, NULL);
    mlxn_tensor xscr = make(dev, MLXN_DTYPE_F32, 1, x_n, NULL), yscr = make(dev, MLXN_DTYPE_F32, 1, y_n, NULL);
    mlxn_stream *s = mlxn_device_stream(dev);
    mlxn_qmm_fusion f = {.norm_w = &nw, .norm_eps = 1e-5f, .residual = &res, .x_scratch = &xscr, .y_scratch = &yscr};
    CHECK_OK(mlxn_quantized_matmul_fused(s, &x, &wq, &sc, &bi, &q, &f, &out));
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &x, &wq, &sc, &bi, &q, NULL, &out), MLXN_ERR_INVALID_ARGUMENT);
    f.x_scratch = NULL;
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &x, &wq, &sc, &bi, &q, &f, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(mlxn_last_error(), "x_scratch") != NULL, "missing scratch message: %s", mlxn_last_error());
    f.x_scratch = &scr_small; /* 100 < K = 128 */
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &x, &wq, &sc, &bi, &q, &f, &out), MLXN_ERR_SHAPE);
    f.x_scratch = &xscr;
    f.y_scratch = &xscr; /* the same tensor for both */
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &x, &wq, &sc, &bi, &q, &f, &out), MLXN_ERR_INVALID_ARGUMENT);
    f.y_scratch = &yscr;
    mlxn_tensor x_in_scr = xscr; /* x inside the scratch */
    x_in_scr.ndim = 2, x_in_scr.shape[0] = 1, x_in_scr.shape[1] = 128, x_in_scr.strides[0] = 128;
    x_in_scr.strides[1] = 1;
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &x_in_scr, &wq, &sc, &bi, &q, &f, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(mlxn_last_error(), "scratch") != NULL, "overlap message: %s", mlxn_last_error());
    f.norm_w = &nw_short;
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &x, &wq, &sc, &bi, &q, &f, &out), MLXN_ERR_SHAPE);
    CHECK(strstr(mlxn_last_error(), "norm_w") != NULL, "bad norm_w message: %s", mlxn_last_error());
    f.norm_w = &nw;
    f.residual = &res_bad;
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &x, &wq, &sc, &bi, &q, &f, &out), MLXN_ERR_SHAPE);
    f.residual = NULL;
    f.glu = MLXN_GLU_SWIGLU; /* 21 rows: no halves */
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &x, &wq, &sc, &bi, &q, &f, &out), MLXN_ERR_INVALID_ARGUMENT);
    f.glu = (mlxn_glu)7;
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &x, &wq, &sc, &bi, &q, &f, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(!mlxn_quantized_matmul_fuses(s, &wq, &sc, &bi, &q, 1), "the CPU backend runs the parts apart");
    mlxn_tensor *all[] = {&wq, &sc, &bi, &x, &nw, &nw_short, &out, &res, &res_bad, &scr_small, &xscr, &yscr};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mlxn_tensor_release(all[i]);
    rnd_free(&r);
}

/* The rope_kv epilogue (a decode step's q/k/v product, its rope and its
 * cache writes; 2 q heads and 1 kv head of 64, position 37 read from a
 * tensor, slot 3 of 5): on the CPU exactly quantized_matmul then
 * rope_kv_write on the product's column ranges; against a double-precision
 * rope of the reference product within the product's tolerance; the rows
 * of the caches not written untouched; bad calls fail with a status. */
static void fused_rope_kv(mlxn_device *dev) {
    enum { HQ = 2, HK = 1, D = 64, K = 256, N = (HQ + 2 * HK) * D, CAP = 5, SLOT = 3, POS = 37 };
    mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = 4, .group_size = 64};
    rnd r;
    rnd_make(&r, q, MLXN_DTYPE_BF16, N, K);
    int64_t ws[2] = {N, K / 8}, ss[2] = {N, K / 64}, xs[2] = {1, K}, os[2] = {1, N}, one[1] = {1};
    int64_t qs[3] = {HQ, 1, D}, cs[3] = {HK, CAP, D};
    float x[K], cache0[HK * CAP * D];
    t_fill_randn(x, K, 2.0f);
    t_fill_randn(cache0, HK * CAP * D, 1.0f);
    const int32_t slot_v = SLOT, pos_v = POS;
    mlxn_stream *s = mlxn_device_stream(dev);
    mlxn_tensor wq = make(dev, MLXN_DTYPE_U32, 2, ws, r.wq), sc = make(dev, MLXN_DTYPE_BF16, 2, ss, r.scales);
    mlxn_tensor bi = make(dev, MLXN_DTYPE_BF16, 2, ss, r.biases), xt = make(dev, MLXN_DTYPE_F32, 2, xs, x);
    mlxn_tensor slot = make(dev, MLXN_DTYPE_I32, 1, one, &slot_v), pos = make(dev, MLXN_DTYPE_I32, 1, one, &pos_v);
    mlxn_tensor t[2][4]; /* [fused, apart][out, q_out, k cache, v cache] */
    for (int i = 0; i < 2; i++) {
        t[i][0] = make(dev, MLXN_DTYPE_F32, 2, os, NULL), t[i][1] = make(dev, MLXN_DTYPE_F32, 3, qs, NULL);
        t[i][2] = make(dev, MLXN_DTYPE_F32, 3, cs, cache0), t[i][3] = make(dev, MLXN_DTYPE_F32, 3, cs, cache0);
        t_poison(mlxn_tensor_host(&t[i][0]), sizeof(float) * N);
        t_poison(mlxn_tensor_host(&t[i][1]), sizeof(float) * HQ * D);
    }
    mlxn_rope_params p = {.dims = D, .base = 10000.0f, .scale = 1.0f, .offset_tensor = &pos};
    mlxn_qmm_rope_kv rkv = {.q_heads = HQ, .kv_heads = HK, .rope = &p, .slot = &slot, .q_out = &t[0][1],
                            .k_dst = &t[0][2], .v_dst = &t[0][3]};
    mlxn_qmm_fusion f = {.rope_kv = &rkv};
    CHECK_OK(mlxn_quantized_matmul_fused(s, &xt, &wq, &sc, &bi, &q, &f, &t[0][0]));
    /* the parts apart: the product, then rope_kv_write on its [heads, 1, D] column ranges */
    CHECK_OK(mlxn_quantized_matmul(s, &xt, &wq, &sc, &bi, &q, true, &t[1][0]));
    mlxn_tensor v3[3];
    const int64_t c0[3] = {0, HQ * D, (HQ + HK) * D}, h[3] = {HQ, HK, HK};
    for (int i = 0; i < 3; i++) {
        v3[i] = t[1][0];
        v3[i].ndim = 3;
        v3[i].shape[0] = h[i], v3[i].shape[1] = 1, v3[i].shape[2] = D;
        v3[i].strides[0] = D, v3[i].strides[1] = N, v3[i].strides[2] = 1;
        v3[i].offset += (size_t)c0[i] * sizeof(float);
    }
    CHECK_OK(mlxn_rope_kv_write(s, &v3[0], &v3[1], &v3[2], &p, &slot, &t[1][1], &t[1][2], &t[1][3]));
    static const char *what[4] = {"product", "q_out", "k cache", "v cache"};
    for (int i = 0; i < 4; i++)
        CHECK(!memcmp(mlxn_tensor_host(&t[0][i]), mlxn_tensor_host(&t[1][i]), mlxn_tensor_nbytes(&t[0][i])),
              "fused rope_kv: the %s differs from the parts apart", what[i]);
    /* the reference: the product in double, rotated by halves at POS */
    float y[N], want_q[HQ * D], want_k[HK * CAP * D], want_v[HK * CAP * D];
    ref_qmm(&r.c, 1, x, 1, y);
    memcpy(want_k, cache0, sizeof want_k);
    memcpy(want_v, cache0, sizeof want_v);
    for (int hh = 0; hh < HQ + HK; hh++)
        for (int i = 0; i < D / 2; i++) {
            double ang = POS * pow(10000.0, -2.0 * i / D), a = y[hh * D + i], b2 = y[hh * D + i + D / 2];
            double o1 = a * cos(ang) - b2 * sin(ang), o2 = a * sin(ang) + b2 * cos(ang);
            float *dst = hh < HQ ? want_q + hh * D : want_k + ((hh - HQ) * CAP + SLOT) * D;
            dst[i] = (float)o1, dst[i + D / 2] = (float)o2;
        }
    for (int hh = 0; hh < HK; hh++) memcpy(want_v + (hh * CAP + SLOT) * D, y + (HQ + HK + hh) * D, sizeof(float) * D);
    double eq = t_nmse(want_q, mlxn_tensor_host(&t[0][1]), HQ * D);
    double ek = t_nmse(want_k, mlxn_tensor_host(&t[0][2]), HK * CAP * D);
    double ev = t_nmse(want_v, mlxn_tensor_host(&t[0][3]), HK * CAP * D);
    CHECK(eq < TOL_VNNI && ek < TOL_VNNI && ev < TOL_VNNI, "fused rope_kv vs reference: nmse q %.3g k %.3g v %.3g", eq,
          ek, ev);
    /* bad calls */
    f.glu = MLXN_GLU_SWIGLU;
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &xt, &wq, &sc, &bi, &q, &f, &t[0][0]), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(mlxn_last_error(), "rope_kv") != NULL, "rope_kv with glu message: %s", mlxn_last_error());
    f.glu = MLXN_GLU_NONE;
    rkv.q_heads = 3; /* (3 + 2) heads do not split 256 rows */
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &xt, &wq, &sc, &bi, &q, &f, &t[0][0]), MLXN_ERR_SHAPE);
    rkv.q_heads = HQ;
    rkv.slot = &pos; /* fine as a slot tensor, but k_dst is the v cache too */
    rkv.k_dst = &t[0][3];
    CHECK_FAILS(mlxn_quantized_matmul_fused(s, &xt, &wq, &sc, &bi, &q, &f, &t[0][0]), MLXN_ERR_INVALID_ARGUMENT);
    rkv.k_dst = &t[0][2];
    rkv.q_out = &xt; /* q_out over x: the wrong shape, and x is read while it is written */
    CHECK(mlxn_quantized_matmul_fused(s, &xt, &wq, &sc, &bi, &q, &f, &t[0][0]) != MLXN_OK, "q_out over x was accepted");
    mlxn_tensor *all[] = {&wq, &sc, &bi, &xt, &slot, &pos};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mlxn_tensor_release(all[i]);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) mlxn_tensor_release(&t[i][j]);
    rnd_free(&r);
}

/* The TILED16 layout's host reorder (mlxn/quant.h): tile then untile gives
 * the rows back; word 4 of row 17 of a [32, 256] matrix lands where the
 * layout says (tile 1, chunk 1, row 1 of the tile: (3 * 256) + 16 + 4);
 * what cannot be tiled is refused; the CPU's ops refuse tiled params. */
static void tiled_layout(mlxn_device *dev) {
    enum { R = 32, C = 256, W = C / 8, NG = C / 64 };
    mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = 4, .group_size = 64};
    uint32_t wq[R * W], wt[R * W], back[R * W];
    uint16_t sc[R * NG], bi[R * NG], st[R * NG], bt[R * NG], sb[R * NG], bb[R * NG];
    for (int i = 0; i < R * W; i++) wq[i] = (uint32_t)t_rand_u64();
    for (int i = 0; i < R * NG; i++) sc[i] = (uint16_t)i, bi[i] = (uint16_t)(1000 + i);
    CHECK(mlxn_quant_tileable(&q, MLXN_DTYPE_BF16, R, C), "a [32, 256] 4-bit g64 matrix is tileable");
    CHECK_OK(mlxn_quant_tile(&q, MLXN_DTYPE_BF16, wq, sc, bi, R, C, 0, wt, st, bt));
    CHECK(wt[3 * 256 + 16 + 4] == wq[17 * W + 20], "row 17 word 20 not at tile 1 chunk 1 row 1 word 4");
    /* group 3 of row 17 (chunk 1's second group): (tile 1 * 2 chunks + chunk 1) * 32, then rows 1 and 9's
     * pair ((17 % 8) * 2 + 0) * 2, then group 1 of the chunk; and group 0 of row 25 (row 9 of tile 1, the
     * pair's second): (tile 1 * 2 + chunk 0) * 32 + (1 * 2 + 1) * 2 */
    CHECK(st[3 * 32 + 4 + 1] == sc[17 * NG + 3] && bt[3 * 32 + 4 + 1] == bi[17 * NG + 3],
          "row 17 group 3 scale not where the layout puts it");
    CHECK(st[2 * 32 + 6] == sc[25 * NG] && bt[2 * 32 + 6] == bi[25 * NG], "row 25 group 0 scale not where the layout puts it");
    CHECK_OK(mlxn_quant_tile(&q, MLXN_DTYPE_BF16, wt, st, bt, R, C, 1, back, sb, bb));
    CHECK(!memcmp(back, wq, sizeof wq) && !memcmp(sb, sc, sizeof sc) && !memcmp(bb, bi, sizeof bi), "untile(tile) is not the rows");
    mlxn_quant_params q8 = q, q32 = q;
    q8.bits = 8, q32.group_size = 32;
    CHECK(!mlxn_quant_tileable(&q, MLXN_DTYPE_BF16, 30, C) && !mlxn_quant_tileable(&q, MLXN_DTYPE_BF16, R, 192) &&
              !mlxn_quant_tileable(&q8, MLXN_DTYPE_BF16, R, C) && !mlxn_quant_tileable(&q32, MLXN_DTYPE_BF16, R, C) &&
              !mlxn_quant_tileable(&q, MLXN_DTYPE_F32, R, C),
          "tileable: 30 rows, 192 cols, 8 bits, group 32 or f32 scales");
    CHECK_FAILS(mlxn_quant_tile(&q8, MLXN_DTYPE_BF16, wq, sc, bi, R, C, 0, wt, st, bt), MLXN_ERR_INVALID_ARGUMENT);
    /* the CPU's ops: tiled params refused, the tile op not there, dequantize wants rows */
    int64_t ws[2] = {R, W}, ss[2] = {R, NG}, xs[2] = {1, C}, os[2] = {1, R};
    mlxn_tensor tw = make(dev, MLXN_DTYPE_U32, 2, ws, wq), ts = make(dev, MLXN_DTYPE_BF16, 2, ss, sc);
    mlxn_tensor tb = make(dev, MLXN_DTYPE_BF16, 2, ss, bi), x = make(dev, MLXN_DTYPE_F32, 2, xs, NULL);
    mlxn_tensor out = make(dev, MLXN_DTYPE_F32, 2, os, NULL);
    mlxn_stream *s = mlxn_device_stream(dev);
    mlxn_quant_params qt = q;
    qt.layout = MLXN_QUANT_TILED16;
    CHECK_FAILS(mlxn_quantized_matmul(s, &x, &tw, &ts, &tb, &qt, true, &out), MLXN_ERR_NOT_IMPLEMENTED);
    CHECK(strstr(mlxn_last_error(), "row layout") != NULL, "tiled on the CPU: %s", mlxn_last_error());
    CHECK_FAILS(mlxn_quantized_tile(s, &tw, &ts, &tb, &q), MLXN_ERR_NOT_IMPLEMENTED);
    qt.layout = (mlxn_quant_layout)7;
    CHECK_FAILS(mlxn_quantized_matmul(s, &x, &tw, &ts, &tb, &qt, true, &out), MLXN_ERR_INVALID_ARGUMENT);
    qt.layout = MLXN_QUANT_TILED16;
    float deq[R * C];
    CHECK_FAILS(mlxn_dequantize(&qt, MLXN_DTYPE_BF16, wq, sc, bi, R, C, MLXN_DTYPE_F32, deq), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_tensor *all[] = {&tw, &ts, &tb, &x, &out};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mlxn_tensor_release(all[i]);
}

static void fused(mlxn_device *dev) {
    const mlxn_dtype dts[3] = {MLXN_DTYPE_BF16, MLXN_DTYPE_F16, MLXN_DTYPE_F32};
    for (int i = 0; i < 3; i++) fused_case(dev, dts[i], i == 1 ? 1.0f : 0.0f, 1, 1, 0, 0, MLXN_GLU_NONE);
    fused_case(dev, MLXN_DTYPE_BF16, 0, 1, 0, 1, 1, MLXN_GLU_NONE); /* the residual stream in place */
    fused_case(dev, MLXN_DTYPE_BF16, 0, 3, 0, 1, 0, MLXN_GLU_NONE);
    fused_case(dev, MLXN_DTYPE_BF16, 0, 2, 1, 1, 1, MLXN_GLU_NONE); /* both */
    fused_case(dev, MLXN_DTYPE_BF16, 0, 1, 1, 0, 0, MLXN_GLU_SWIGLU);
    fused_case(dev, MLXN_DTYPE_F16, 1, 2, 1, 0, 0, MLXN_GLU_GEGLU_TANH);
    fused_case(dev, MLXN_DTYPE_BF16, 0, 1, 0, 0, 0, MLXN_GLU_GEGLU_ERF);
    fused_errors(dev);
    fused_rope_kv(dev);
    tiled_layout(dev);
}

/* mlxn_device_params.float_activations = 1 keeps x in f32: a decode-shaped
 * 3-, 4-, 6- and 8-bit product at the processor's best ISA then meets 1e-11 (its
 * f32 sums give ~1e-13). Where an integer mat-vec exists, 16-bit x over
 * K = 4096 costs ~2e-10..5e-10, so this fails if the option is ignored. */
static void float_activations_option(void) {
    mlxn_device_params dp = {.kind = MLXN_DEVICE_CPU, .n_threads = 2, .isa = MLXN_CPU_ISA_AUTO, .float_activations = 1};
    mlxn_device *dev = NULL;
    CHECK_OK(mlxn_device_new(&dp, &dev));
    mlxn_device *fast = t_cpu_device(2, MLXN_CPU_ISA_AUTO);
    static const int widths[4] = {3, 4, 6, 8};
    for (int wi = 0; wi < 4; wi++) {
        const int bits = widths[wi];
        mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = bits, .group_size = 64};
        enum { N = 64, K = 4096 };
        rnd r;
        rnd_make(&r, q, MLXN_DTYPE_BF16, N, K);
        int64_t ws[2] = {N, K * bits / 32}, ss[2] = {N, K / 64}, xs[2] = {1, K}, os[2] = {1, N};
        float *x = malloc(K * sizeof(float)), want[N];
        t_fill_randn(x, K, 1.0f);
        ref_qmm(&r.c, 1, x, 1, want);
        double e[2];
        mlxn_device *devs2[2] = {dev, fast};
        for (int d = 0; d < 2; d++) {
            mlxn_device *dv = devs2[d];
            mlxn_tensor wq = make(dv, MLXN_DTYPE_U32, 2, ws, r.wq), sc = make(dv, MLXN_DTYPE_BF16, 2, ss, r.scales);
            mlxn_tensor bi = make(dv, MLXN_DTYPE_BF16, 2, ss, r.biases), xt = make(dv, MLXN_DTYPE_F32, 2, xs, x);
            mlxn_tensor out = make(dv, MLXN_DTYPE_F32, 2, os, NULL);
            float *o = mlxn_tensor_host(&out);
            for (int i = 0; i < N; i++) o[i] = NAN; /* poisoned */
            CHECK_OK(mlxn_quantized_matmul(mlxn_device_stream(dv), &xt, &wq, &sc, &bi, &q, true, &out));
            e[d] = t_nmse(want, o, N);
            mlxn_tensor_release(&wq), mlxn_tensor_release(&sc), mlxn_tensor_release(&bi), mlxn_tensor_release(&xt);
            mlxn_tensor_release(&out);
        }
        printf("float_activations, %d-bit: nmse %.3g with the option, %.3g without\n", bits, e[0], e[1]);
        /* 1e-11: the float path's f32 sums give ~1e-13 here, 16-bit x ~1e-10 */
        CHECK(e[0] < 1e-11, "%d-bit with float activations: nmse %.3g (tol 1e-11)", bits, e[0]);
        CHECK(e[1] < TOL_VNNI, "%d-bit on the default device: nmse %.3g (tol %.0e)", bits, e[1], TOL_VNNI);
        free(x);
        rnd_free(&r);
    }
    mlxn_device_free(dev);
    mlxn_device_free(fast);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_qmatmul");
    best_isa = mlxn_cpu_detect_isa(MLXN_CPU_ISA_AUTO);
    mlxn_device *devs[3][4] = {{0}};
    for (int i = 0; i < 3; i++) {
        if (ISAS[i] > best_isa) {
            printf("skipping ISA level %s: this processor lacks it\n", mlxn_cpu_isa_name(ISAS[i]));
            continue;
        }
        for (int th = 1; th <= 3; th++) devs[i][th] = t_cpu_device(th, ISAS[i]);
    }
    mlxn_device *gdevs[3] = {devs[0][2], devs[1][2], devs[2][2]};
    goldens(gdevs);
    randoms(devs);
    if (devs[1][2]) packed_row_ends(devs[1][2]);
    for (int i = 0; i < 3; i++) /* the integer paths' NaN fallback at AVX2 and AVX-512 too */
        if (devs[i][2]) nan_and_errors(devs[i][2]);
    for (int i = 0; i < 3; i++)
        if (devs[i][2]) fused(devs[i][2]);
    float_activations_option();
    printf("worst nmse: float paths %.3g (tol %.0e), integer paths %.3g (tol %.0e)\n", worst_float, TOL_FLOAT,
           worst_vnni, TOL_VNNI);
    for (int i = 0; i < 3; i++)
        for (int th = 1; th <= 3; th++) mlxn_device_free(devs[i][th]);
    return t_finish();
}
