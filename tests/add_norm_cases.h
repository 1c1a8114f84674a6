/* The cases test_ops_add_norm (CPU) and test_backend_add_norm (CUDA) run
 * through mlxn_add_rms_norm: seeded random a, b and weights in odd shapes,
 * a and b in several layouts (contiguous, rows padded, every other element,
 * misaligned by one element), sum written apart or in place over a or b,
 * weights f32/f16/bf16 or none, with and without Gemma's 1 + w.
 *
 * Tensors are built from host images through mlxn_buffer_write, so the
 * same code runs on any device: bytes a view does not cover are 0xFF (NaN),
 * outputs are poisoned the same way and followed by a poisoned guard that
 * must survive. an_run runs one case on a device either fused or as
 * mlxn_add followed by mlxn_rms_norm and reads sum and out back. */
#ifndef MLXN_TEST_ADD_NORM_CASES_H
#define MLXN_TEST_ADD_NORM_CASES_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* layouts of a [..., D] input */
enum { AN_CONTIG = 0, AN_PADDED, AN_GAPPY, AN_MISALIGNED, AN_N_LAYOUTS };
/* where sum goes */
enum { AN_APART = 0, AN_OVER_A, AN_OVER_B };
enum { AN_GUARD = 8 }; /* poisoned f32 elements after every output */

typedef struct an_case {
    int ndim;
    int64_t shape[3];
    int a_layout, b_layout, sum_at;
    int w_kind; /* 0: no weight, else an mlxn_dtype + 1 */
    int w_strided;
    float off, eps;
} an_case;

/* The shapes (odd on purpose: D of 1, non-multiples of 4, CUDA's vector
 * widths 1/2/4/8 x 1024 and just past them, a 3-D activation, no rows). */
static const struct {
    int ndim;
    int64_t shape[3];
} an_shapes[] = {
    {2, {1, 1}},    {2, {3, 7}},    {2, {2, 33}},  {2, {4, 100}},   {2, {1, 2048}}, {2, {37, 520}}, {3, {2, 3, 64}},
    {2, {5, 4096}}, {2, {3, 8192}}, {2, {2, 8196}}, {2, {1, 1028}}, {2, {9, 260}}, {2, {0, 8}},
};
#define AN_N_SHAPES (int)(sizeof an_shapes / sizeof an_shapes[0])
#define AN_N_VARIANTS 7

/* Variant v of shape si: each layout, each place for sum, each weight.
 * On CUDA, variants 0, 1, 2 and 6 (a and b in 16-byte-aligned rows) take
 * the one-kernel path wherever D is a multiple of 4 up to 8192; 3, 4 and 5
 * (misaligned or strided a/b, a strided weight) the add-then-norm one. */
static an_case an_make(int si, int v) {
    an_case c;
    memset(&c, 0, sizeof c);
    c.ndim = an_shapes[si].ndim;
    memcpy(c.shape, an_shapes[si].shape, sizeof c.shape);
    static const int a_l[AN_N_VARIANTS] = {AN_CONTIG, AN_PADDED, AN_CONTIG, AN_MISALIGNED,
                                           AN_GAPPY,  AN_CONTIG, AN_PADDED};
    static const int b_l[AN_N_VARIANTS] = {AN_CONTIG, AN_CONTIG, AN_PADDED, AN_PADDED,
                                           AN_MISALIGNED, AN_GAPPY, AN_PADDED};
    static const int at[AN_N_VARIANTS] = {AN_APART, AN_OVER_B, AN_OVER_A, AN_APART, AN_APART, AN_OVER_A, AN_APART};
    static const int wk[AN_N_VARIANTS] = {MLXN_DTYPE_BF16 + 1, MLXN_DTYPE_F32 + 1, MLXN_DTYPE_F16 + 1, 0,
                                          MLXN_DTYPE_F32 + 1,  0,                   0};
    c.a_layout = a_l[v];
    c.b_layout = b_l[v];
    c.sum_at = at[v];
    c.w_kind = wk[v];
    c.w_strided = v == 4;
    c.off = (v == 1 || v == 2) ? 1.0f : 0.0f;
    c.eps = v % 2 ? 1e-6f : 1e-5f;
    return c;
}

static const char *an_layout_name(int l) {
    static const char *n[AN_N_LAYOUTS] = {"contiguous", "padded rows", "stride 2", "misaligned"};
    return n[l];
}

static void an_describe(const an_case *c, char *buf, size_t cap) {
    static const char *at[3] = {"apart", "over a", "over b"};
    char dims[64];
    int k = 0;
    for (int i = 0; i < c->ndim; i++)
        k += snprintf(dims + k, sizeof dims - (size_t)k, "%s%lld", i ? ", " : "", (long long)c->shape[i]);
    snprintf(buf, cap, "[%s] a %s, b %s, sum %s, w %s%s, off %g", dims, an_layout_name(c->a_layout),
             an_layout_name(c->b_layout), at[c->sum_at],
             c->w_kind ? mlxn_dtype_name((mlxn_dtype)(c->w_kind - 1)) : "none", c->w_strided ? " (stride 3)" : "",
             (double)c->off);
}

static int64_t an_D(const an_case *c) { return c->shape[c->ndim - 1]; }
static int64_t an_n(const an_case *c) {
    int64_t n = 1;
    for (int i = 0; i < c->ndim; i++) n *= c->shape[i];
    return n;
}

/* A view of `shape` in `layout` over a fresh buffer holding the row-major
 * f32/f16/bf16 `data` (NULL: all poisoned), every other byte 0xFF, plus
 * AN_GUARD poisoned elements at the end. *image (optional) receives the
 * buffer's bytes as written (free with free()). */
static mlxn_tensor an_tensor(mlxn_device *dev, mlxn_dtype dt, int ndim, const int64_t *shape, int layout,
                             const void *data, unsigned char **image, size_t *image_bytes) {
    mlxn_tensor t;
    memset(&t, 0, sizeof t);
    int64_t D = shape[ndim - 1], rows = 1;
    for (int i = 0; i < ndim - 1; i++) rows *= shape[i];
    int64_t ls = layout == AN_GAPPY ? 2 : 1;
    int64_t ld = layout == AN_PADDED ? D + 4 : layout == AN_GAPPY ? 2 * D + 3 : D;
    int64_t first = layout == AN_MISALIGNED ? 1 : 0;
    size_t es = mlxn_dtype_size(dt);
    size_t n_el = (size_t)(first + (rows > 0 ? (rows - 1) * ld + (D - 1) * ls + 1 : 0) + AN_GUARD);
    unsigned char *img = malloc(n_el * es);
    memset(img, 0xFF, n_el * es);
    for (int64_t r = 0; data && r < rows; r++)
        for (int64_t i = 0; i < D; i++)
            memcpy(img + (size_t)(first + r * ld + i * ls) * es, (const char *)data + (size_t)(r * D + i) * es, es);
    mlxn_buffer *buf = NULL;
    CHECK_OK(mlxn_buffer_new(dev, n_el * es, &buf));
    if (buf) CHECK_OK(mlxn_buffer_write(buf, 0, img, n_el * es));
    t.buf = buf;
    t.dtype = dt;
    t.ndim = ndim;
    t.offset = (size_t)first * es;
    t_set_row_strides(&t, ndim, shape, ls, ld);
    if (image) {
        *image = img;
        *image_bytes = n_el * es;
    } else {
        free(img);
    }
    return t;
}

static void an_free(mlxn_tensor *t) {
    if (t->buf) mlxn_buffer_free(t->buf);
    memset(t, 0, sizeof *t);
}

/* The buffer behind t, read back whole (free with free()). */
static unsigned char *an_read_buffer(const mlxn_tensor *t, size_t bytes) {
    unsigned char *p = malloc(bytes ? bytes : 1);
    memset(p, 0, bytes ? bytes : 1);
    if (t->buf) CHECK_OK(mlxn_buffer_read(t->buf, 0, p, bytes));
    return p;
}

/* A contiguous f32 output's n elements into dst; its guard must still be
 * poisoned. */
static void an_read_out(const mlxn_tensor *t, int64_t n, float *dst, const char *what, const char *label) {
    size_t bytes = t->offset + (size_t)(n + AN_GUARD) * 4;
    unsigned char *p = an_read_buffer(t, bytes);
    memcpy(dst, p + t->offset, (size_t)n * 4);
    int guard_ok = 1;
    for (size_t i = t->offset + (size_t)n * 4; i < bytes; i++) guard_ok &= p[i] == 0xFF;
    CHECK(guard_ok, "%s: %s: written past its end", label, what);
    free(p);
}

/* Host inputs of a case: a, b f32 [n]; w raw [D] of the case's dtype. */
typedef struct an_inputs {
    float *a, *b;
    void *w;
} an_inputs;

static an_inputs an_inputs_new(const an_case *c, int si) {
    an_inputs in;
    int64_t n = an_n(c), D = an_D(c);
    in.a = malloc((size_t)(n ? n : 1) * 4);
    in.b = malloc((size_t)(n ? n : 1) * 4);
    in.w = malloc((size_t)D * 4);
    /* residual stream larger than the branch, some rows far from unit scale */
    t_fill_randn(in.a, (size_t)n, si % 2 ? 3.0f : 0.5f);
    t_fill_randn(in.b, (size_t)n, si % 3 ? 1.0f : 20.0f);
    mlxn_dtype wdt = c->w_kind ? (mlxn_dtype)(c->w_kind - 1) : MLXN_DTYPE_F32;
    for (int64_t i = 0; i < D; i++) {
        float v = c->off != 0.0f ? 0.1f * t_randn() : t_randn();
        if (wdt == MLXN_DTYPE_F32) ((float *)in.w)[i] = v;
        else ((uint16_t *)in.w)[i] = wdt == MLXN_DTYPE_F16 ? mlxn_f32_to_f16(v) : mlxn_f32_to_bf16(v);
    }
    return in;
}

static void an_inputs_free(an_inputs *in) {
    free(in->a);
    free(in->b);
    free(in->w);
}

/* The definition, in double: sum = a + b rounded to f32 (one f32 add),
 * out = sum * 1/sqrt(mean(sum^2) + eps) * w_eff. */
static void an_reference(const an_case *c, const an_inputs *in, float *sum, float *out) {
    int64_t D = an_D(c), rows = D ? an_n(c) / D : 0;
    mlxn_dtype wdt = c->w_kind ? (mlxn_dtype)(c->w_kind - 1) : MLXN_DTYPE_F32;
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t i = 0; i < D; i++) {
            float s = in->a[r * D + i] + in->b[r * D + i];
            sum[r * D + i] = s;
            ss += (double)s * s;
        }
        double inv = 1.0 / sqrt(ss / (double)D + c->eps);
        for (int64_t i = 0; i < D; i++) {
            double v = sum[r * D + i] * inv;
            if (c->w_kind) v *= t_norm_weight(in->w, wdt, i, c->off);
            out[r * D + i] = (float)v;
        }
    }
}

/* Run case c on dev: fused (mlxn_add_rms_norm) or as mlxn_add then
 * mlxn_rms_norm; sum and out come back in row-major order. Also checks that
 * inputs not written in place come back byte for byte (gaps included). */
static void an_run(mlxn_device *dev, const an_case *c, const an_inputs *in, int fused, float *sum, float *out,
                   const char *label) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t n = an_n(c), D = an_D(c), wshape[1] = {D};
    unsigned char *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    mlxn_tensor ta = an_tensor(dev, MLXN_DTYPE_F32, c->ndim, c->shape, c->a_layout, in->a, &ia, &na);
    mlxn_tensor tb = an_tensor(dev, MLXN_DTYPE_F32, c->ndim, c->shape, c->b_layout, in->b, &ib, &nb);
    mlxn_dtype wdt = c->w_kind ? (mlxn_dtype)(c->w_kind - 1) : MLXN_DTYPE_F32;
    mlxn_tensor tw;
    memset(&tw, 0, sizeof tw);
    if (c->w_kind) {
        tw = an_tensor(dev, wdt, 1, wshape, AN_CONTIG, in->w, NULL, NULL);
        if (c->w_strided) { /* every third element of a [3D] buffer */
            unsigned char *wimg = malloc((size_t)(3 * D + AN_GUARD) * mlxn_dtype_size(wdt));
            memset(wimg, 0xFF, (size_t)(3 * D + AN_GUARD) * mlxn_dtype_size(wdt));
            for (int64_t i = 0; i < D; i++)
                memcpy(wimg + (size_t)(3 * i) * mlxn_dtype_size(wdt), (char *)in->w + (size_t)i * mlxn_dtype_size(wdt),
                       mlxn_dtype_size(wdt));
            an_free(&tw);
            mlxn_buffer *wb = NULL;
            CHECK_OK(mlxn_buffer_new(dev, (size_t)(3 * D + AN_GUARD) * mlxn_dtype_size(wdt), &wb));
            if (wb) CHECK_OK(mlxn_buffer_write(wb, 0, wimg, (size_t)(3 * D + AN_GUARD) * mlxn_dtype_size(wdt)));
            free(wimg);
            tw.buf = wb;
            tw.dtype = wdt;
            tw.ndim = 1;
            tw.shape[0] = D;
            tw.strides[0] = 3;
        }
    }
    mlxn_tensor tsum, tout = an_tensor(dev, MLXN_DTYPE_F32, c->ndim, c->shape, AN_CONTIG, NULL, NULL, NULL);
    memset(&tsum, 0, sizeof tsum);
    mlxn_tensor *psum = c->sum_at == AN_OVER_A ? &ta : c->sum_at == AN_OVER_B ? &tb : &tsum;
    if (c->sum_at == AN_APART) tsum = an_tensor(dev, MLXN_DTYPE_F32, c->ndim, c->shape, AN_CONTIG, NULL, NULL, NULL);
    const mlxn_tensor *w = c->w_kind ? &tw : NULL;
    if (fused) {
        CHECK_OK(mlxn_add_rms_norm(s, &ta, &tb, w, c->eps, c->off, psum, &tout));
    } else {
        CHECK_OK(mlxn_add(s, &ta, &tb, psum));
        CHECK_OK(mlxn_rms_norm(s, psum, w, c->eps, c->off, &tout));
    }
    CHECK_OK(mlxn_stream_sync(s));
    an_read_out(psum, n, sum, "sum", label);
    an_read_out(&tout, n, out, "out", label);
    if (c->sum_at != AN_OVER_A) {
        unsigned char *back = an_read_buffer(&ta, na);
        CHECK(memcmp(back, ia, na) == 0, "%s: a (or the bytes around it) changed", label);
        free(back);
    }
    if (c->sum_at != AN_OVER_B) {
        unsigned char *back = an_read_buffer(&tb, nb);
        CHECK(memcmp(back, ib, nb) == 0, "%s: b (or the bytes around it) changed", label);
        free(back);
    }
    free(ia);
    free(ib);
    an_free(&ta);
    an_free(&tb);
    an_free(&tw);
    an_free(&tsum);
    an_free(&tout);
}

/* sum/out against the definition: sum bit for bit, out to NMSE `tol`
 * (NaN never passes). */
static void an_check_reference(const an_case *c, const float *rsum, const float *rout, const float *sum,
                               const float *out, double tol, double *worst, const char *label) {
    size_t n = (size_t)an_n(c);
    int same = memcmp(rsum, sum, n * 4) == 0;
    for (size_t i = 0; i < n; i++) same &= !isnan(sum[i]);
    CHECK(same, "%s: sum is not a + b", label);
    double e = t_nmse(rout, out, n);
    if (e > *worst) *worst = e;
    CHECK(e <= tol, "%s: out NMSE %.3g vs the double reference", label, e);
}

#endif
