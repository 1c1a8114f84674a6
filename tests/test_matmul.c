/* Dense matmul (mlxn_matmul) on the CPU backend:
 *  - MLX goldens (tests/golden/attn/matmul.safetensors, written by
 *    gen_attn.py): f32/f16/bf16 W, transpose on/off, x [1,K], [5,K],
 *    [2,3,K], odd K/N; NMSE < 1e-10 against MLX (both sum in f32, in
 *    different orders: typical NMSE is 1e-14).
 *  - fresh random inputs against a double-precision reference written here,
 *    at every ISA level the processor has (scalar, AVX2, AVX-512) and with
 *    1, 2 and 3 threads: mat-vec rows (1..4), GEMM rows, ragged K/N, strided
 *    x, a transposed-view W and a W with padded rows; NMSE < 1e-10;
 *    outputs poisoned first so an unwritten element fails.
 *  - bad arguments return the documented status. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* ---- tensors with chosen strides ------------------------------------------ */

/* Store v (rounded to dt) at element index i; returns the stored value. */
static float put(void *base, mlxn_dtype dt, int64_t i, float v) {
    switch (dt) {
    case MLXN_DTYPE_F16: ((uint16_t *)base)[i] = mlxn_f32_to_f16(v); return mlxn_f16_to_f32(((uint16_t *)base)[i]);
    case MLXN_DTYPE_BF16:
        ((uint16_t *)base)[i] = mlxn_f32_to_bf16(v);
        return mlxn_bf16_to_f32(((uint16_t *)base)[i]);
    default: ((float *)base)[i] = v; return v;
    }
}

static int64_t elem_offset(const mlxn_tensor *t, int64_t flat) {
    int64_t off = 0;
    for (int i = t->ndim - 1; i >= 0; i--) {
        off += (flat % t->shape[i]) * t->strides[i];
        flat /= t->shape[i];
    }
    return off;
}

/* ---- random cases against a double reference ------------------------------- */

enum { X_CONTIG, X_STRIDED };          /* x layout */
enum { W_CONTIG, W_PADDED, W_VIEW_T }; /* W layout: contiguous, padded rows, transposed view */

typedef struct mm_case {
    int ndim_lead;
    int64_t lead[3]; /* leading dims of x */
    int64_t K, N;
    mlxn_dtype wdt;
    int transpose, xlay, wlay;
} mm_case;

static double case_nmse(mlxn_device *dev, const mm_case *c) {
    int64_t M = 1;
    for (int i = 0; i < c->ndim_lead; i++) M *= c->lead[i];
    int xnd = c->ndim_lead + 1;
    int64_t xshape[4], xstr[4];
    for (int i = 0; i < c->ndim_lead; i++) xshape[i] = c->lead[i];
    xshape[c->ndim_lead] = c->K;
    /* strided x: every axis spaced out, last axis stride 2 */
    int64_t s = c->xlay == X_STRIDED ? 2 : 1;
    for (int i = xnd - 1; i >= 0; i--) {
        xstr[i] = s;
        s *= xshape[i] + (c->xlay == X_STRIDED ? 1 : 0);
    }
    mlxn_tensor x = t_tensor_strided(dev, MLXN_DTYPE_F32, xnd, xshape, xstr);

    /* W's stored shape, then the view */
    int64_t wr = c->transpose ? c->N : c->K, wc = c->transpose ? c->K : c->N;
    int64_t wshape[2] = {wr, wc}, wstr[2];
    if (c->wlay == W_CONTIG) wstr[0] = wc, wstr[1] = 1;
    else if (c->wlay == W_PADDED) wstr[0] = wc + 7, wstr[1] = 1;
    else wstr[0] = 1, wstr[1] = wr; /* column-major storage seen as [wr, wc] */
    mlxn_tensor w = t_tensor_strided(dev, c->wdt, 2, wshape, wstr);

    int64_t oshape[4];
    memcpy(oshape, xshape, sizeof oshape);
    oshape[c->ndim_lead] = c->N;
    mlxn_tensor out = t_tensor_contig(dev, MLXN_DTYPE_F32, xnd, oshape);

    float *xv = malloc((size_t)(M * c->K) * sizeof(float));  /* [M, K] logical */
    float *wv = malloc((size_t)(wr * wc) * sizeof(float));   /* [wr, wc] logical, as stored */
    float *ref = malloc((size_t)(M * c->N) * sizeof(float)); /* [M, N] */
    double nm = INFINITY;
    if (!x.buf || !w.buf || !out.buf || !xv || !wv || !ref) goto done;
    for (int64_t i = 0; i < M * c->K; i++)
        xv[i] = put(mlxn_tensor_host(&x), MLXN_DTYPE_F32, elem_offset(&x, i), t_randn());
    for (int64_t i = 0; i < wr * wc; i++)
        wv[i] = put(mlxn_tensor_host(&w), c->wdt, elem_offset(&w, i), 0.5f * t_randn());
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < c->N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < c->K; k++)
                acc += (double)xv[m * c->K + k] * (c->transpose ? wv[n * wc + k] : wv[k * wc + n]);
            ref[m * c->N + n] = (float)acc;
        }
    t_poison(mlxn_tensor_host(&out), (size_t)(M * c->N) * sizeof(float));
    mlxn_status st = mlxn_matmul(mlxn_device_stream(dev), &x, &w, c->transpose, &out);
    CHECK(st == MLXN_OK, "matmul: %s", mlxn_last_error());
    if (st == MLXN_OK) nm = t_nmse(ref, mlxn_tensor_host(&out), (size_t)(M * c->N));
done:
    free(xv);
    free(wv);
    free(ref);
    t_tensor_free(&x);
    t_tensor_free(&w);
    t_tensor_free(&out);
    return nm;
}

static const char *isa_names[] = {"auto", "scalar", "avx2", "avx512"};

static void test_random(void) {
    static const mlxn_dtype dts[3] = {MLXN_DTYPE_F32, MLXN_DTYPE_F16, MLXN_DTYPE_BF16};
    /* (rows, K, N): mat-vec rows 1..4, GEMM rows with ragged tiles, odd K/N,
     * K past one 256-wide k block, N past one 256-wide column block */
    static const int64_t shapes[][3] = {{1, 33, 100}, {2, 257, 33}, {3, 100, 257}, {4, 64, 48}, {1, 1, 7},
                                        {5, 33, 100}, {9, 300, 70}, {17, 257, 300}, {8, 64, 32}, {13, 7, 1}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int isa = MLXN_CPU_ISA_SCALAR; isa <= MLXN_CPU_ISA_AVX512; isa++) {
        for (int threads = 1; threads <= 3; threads++) {
            mlxn_device *dev = t_cpu_device(threads, (mlxn_cpu_isa)isa);
            if (!dev) return;
            if (!strstr(mlxn_device_name(dev), isa_names[isa])) { /* processor lacks it */
                mlxn_device_free(dev);
                continue;
            }
            int bad = 0, runs = 0;
            double worst = 0;
            for (int si = 0; si < nshapes; si++)
                for (int di = 0; di < 3; di++)
                    for (int tr = 0; tr < 2; tr++) {
                        mm_case c = {1, {shapes[si][0]}, shapes[si][1], shapes[si][2], dts[di], tr,
                                     (si + di) % 3 == 2 ? X_STRIDED : X_CONTIG, (si + tr + di) % 3};
                        if (si % 4 == 1) { /* a batched x [2, r, K] now and then */
                            c.ndim_lead = 2;
                            c.lead[0] = 2;
                            c.lead[1] = shapes[si][0];
                        }
                        double nm = case_nmse(dev, &c);
                        runs++;
                        if (!(nm < 1e-10)) {
                            bad++;
                            fprintf(stderr, "  %s t=%d rows=%lld K=%lld N=%lld %s tr=%d x=%d w=%d: nmse %.3g\n",
                                    isa_names[isa], threads, (long long)shapes[si][0], (long long)c.K,
                                    (long long)c.N, mlxn_dtype_name(c.wdt), tr, c.xlay, c.wlay, nm);
                        }
                        if (nm > worst) worst = nm;
                    }
            CHECK(bad == 0, "matmul %s, %d threads: %d of %d random cases over NMSE 1e-10", isa_names[isa],
                  threads, bad, runs);
            printf("random %-6s threads=%d: %d cases, worst nmse %.3g\n", isa_names[isa], threads, runs, worst);
            mlxn_device_free(dev);
        }
    }
}

/* ---- goldens from MLX -------------------------------------------------------- */

static void test_golden(mlxn_device *dev) {
    mlxn_weights *g = t_golden_open("attn/matmul.safetensors");
    if (!g) return;
    const char *cases = mlxn_weights_metadata(g, "cases");
    CHECK(cases != NULL, "golden matmul: no 'cases' metadata");
    int n = 0;
    double worst = 0;
    for (const char *c = cases; c && *c;) {
        char name[64];
        size_t len = strcspn(c, ",");
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, c, len);
        name[len] = '\0';
        c += len + (c[len] == ',');
        char key[96];
        mlxn_tensor x, w, want;
        snprintf(key, sizeof key, "%s.x", name);
        CHECK_OK(mlxn_weights_tensor(g, dev, key, &x));
        snprintf(key, sizeof key, "%s.w", name);
        CHECK_OK(mlxn_weights_tensor(g, dev, key, &w));
        snprintf(key, sizeof key, "%s.out", name);
        CHECK_OK(mlxn_weights_tensor(g, dev, key, &want));
        int transpose = name[0] == 't'; /* "t_...": x @ w.T, "n_...": x @ w */
        mlxn_tensor out = t_tensor_contig(dev, MLXN_DTYPE_F32, want.ndim, want.shape);
        size_t numel = (size_t)mlxn_tensor_numel(&want);
        t_poison(mlxn_tensor_host(&out), numel * sizeof(float));
        CHECK_OK(mlxn_matmul(mlxn_device_stream(dev), &x, &w, transpose, &out));
        double nm = t_nmse(mlxn_tensor_host(&want), mlxn_tensor_host(&out), numel);
        CHECK(nm < 1e-10, "golden %s (%s): nmse %.3g", name, mlxn_device_name(dev), nm);
        if (nm > worst) worst = nm;
        t_tensor_free(&out);
        n++;
    }
    printf("golden %s: %d cases, worst nmse %.3g\n", mlxn_device_name(dev), n, worst);
    CHECK(n >= 18, "golden matmul: only %d cases", n);
    mlxn_weights_free(g);
}

/* ---- bad arguments ------------------------------------------------------------- */

static void test_bad_args(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t xs[2] = {3, 8}, ws[2] = {5, 8}, os[2] = {3, 5}, w3[3] = {1, 5, 8}, ob[2] = {3, 6};
    mlxn_tensor x = t_tensor_contig(dev, MLXN_DTYPE_F32, 2, xs);
    mlxn_tensor w = t_tensor_contig(dev, MLXN_DTYPE_BF16, 2, ws);
    mlxn_tensor out = t_tensor_contig(dev, MLXN_DTYPE_F32, 2, os);
    mlxn_tensor xb = t_tensor_contig(dev, MLXN_DTYPE_BF16, 2, xs);
    mlxn_tensor wi = t_tensor_contig(dev, MLXN_DTYPE_I32, 2, ws);
    mlxn_tensor wbig = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, w3);
    mlxn_tensor obad = t_tensor_contig(dev, MLXN_DTYPE_F32, 2, ob);
    mlxn_tensor of16 = t_tensor_contig(dev, MLXN_DTYPE_F16, 2, os);
    t_fill_randn(mlxn_tensor_host(&x), 24, 1.0f);
    memset(mlxn_tensor_host(&w), 0, 80);
    CHECK_OK(mlxn_matmul(s, &x, &w, true, &out));
    CHECK_FAILS(mlxn_matmul(NULL, &x, &w, true, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_matmul(s, NULL, &w, true, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_matmul(s, &x, NULL, true, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_matmul(s, &x, &w, true, NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_matmul(s, &xb, &w, true, &out), MLXN_ERR_DTYPE);     /* x must be f32 */
    CHECK_FAILS(mlxn_matmul(s, &x, &wi, true, &out), MLXN_ERR_DTYPE);     /* W must be a float */
    CHECK_FAILS(mlxn_matmul(s, &x, &w, true, &of16), MLXN_ERR_DTYPE);     /* out must be f32 */
    CHECK_FAILS(mlxn_matmul(s, &x, &wbig, true, &out), MLXN_ERR_SHAPE);   /* W must be 2-D */
    CHECK_FAILS(mlxn_matmul(s, &x, &w, false, &out), MLXN_ERR_SHAPE);     /* K mismatch untransposed */
    CHECK_FAILS(mlxn_matmul(s, &x, &w, true, &obad), MLXN_ERR_SHAPE);     /* N mismatch */
    /* out overlapping x (shapes agree: W is [8, 8]) */
    int64_t w8s[2] = {8, 8};
    mlxn_tensor w8 = t_tensor_contig(dev, MLXN_DTYPE_F32, 2, w8s);
    CHECK_FAILS(mlxn_matmul(s, &x, &w8, true, &x), MLXN_ERR_INVALID_ARGUMENT);
    t_tensor_free(&w8);
    /* a non-contiguous out */
    int64_t ost[2] = {6, 1};
    mlxn_tensor ostr = t_tensor_strided(dev, MLXN_DTYPE_F32, 2, os, ost);
    CHECK_FAILS(mlxn_matmul(s, &x, &w, true, &ostr), MLXN_ERR_SHAPE);
    t_tensor_free(&ostr);
    /* a tensor from another device */
    mlxn_device *other = t_cpu_device(1, MLXN_CPU_ISA_AUTO);
    if (other) {
        mlxn_tensor xo = t_tensor_contig(other, MLXN_DTYPE_F32, 2, xs);
        CHECK_FAILS(mlxn_matmul(s, &xo, &w, true, &out), MLXN_ERR_INVALID_ARGUMENT);
        t_tensor_free(&xo);
        mlxn_device_free(other);
    }
    mlxn_tensor *all[] = {&x, &w, &out, &xb, &wi, &wbig, &obad, &of16};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) t_tensor_free(all[i]);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_matmul");
    test_random();
    for (int isa = MLXN_CPU_ISA_SCALAR; isa <= MLXN_CPU_ISA_AVX512; isa++) {
        mlxn_device *dev = t_cpu_device(2, (mlxn_cpu_isa)isa);
        if (!dev) continue;
        if (strstr(mlxn_device_name(dev), isa_names[isa])) test_golden(dev);
        if (isa == MLXN_CPU_ISA_SCALAR) test_bad_args(dev);
        mlxn_device_free(dev);
    }
    return t_finish();
}
