/* Every op on every available non-CPU backend (today: cuda), compared with
 * the CPU backend on the same inputs — a small cousin of ggml's
 * test-backend-ops.
 *
 * Each case draws fresh random inputs (the run's seed is printed and can be
 * replayed), builds identical byte images on the CPU and on the device
 * (contiguous, or strided views whose gaps are 0xFF, so a kernel that reads
 * outside its view gets NaN), poisons every output with 0xFF (NaN) on both,
 * runs the op on both and compares: normalized squared error under a
 * threshold per op (NaN or a differing inf never passes), exact equality
 * for indices and for copies (whole buffers, gaps included: the copy may
 * write nothing outside its view), and NaN positions for special values.
 * Shapes are odd on purpose (non-multiples of warp and vector widths).
 *
 * An op a backend reports as MLXN_ERR_NOT_IMPLEMENTED ("not built yet") is
 * listed, not failed; any other failure fails. With no device of a kind the
 * kind is skipped; with none at all the program prints "skipped: no CUDA
 * device" and exits 77 (ctest reports a skip). The CPU reference runs with
 * the AVX2 cap: its float paths compute the exact dequantized products (the
 * AVX-512 VNNI mat-vec rounds x to 16 bits). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

enum { MAX_BUFS = 512, MAX_NB = 32 };

/* One backend under test, its CPU twin and what the current case allocated. */
typedef struct bk {
    const char *name;
    mlxn_device *cpu, *dev;
    mlxn_stream *cs, *ds;
    mlxn_buffer *bufs[MAX_BUFS];
    int nbufs;
    void *host[MAX_BUFS];
    int nhost;
    const char *not_built[MAX_NB];
    int n_not_built;
} bk;

/* A tensor and its twin: c on the CPU, g on the device, same geometry. */
typedef struct tp {
    mlxn_tensor c, g;
} tp;

/* Strided layouts of a [..., D] tensor. */
enum { CONTIG = 0, GAPPY = 1, TRANS = 2 };

/* ---- allocation --------------------------------------------------------- */

static void *hmem(bk *b, size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p || b->nhost == MAX_BUFS) {
        fprintf(stderr, "test_backend_ops: out of host memory\n");
        exit(1);
    }
    b->host[b->nhost++] = p;
    return p;
}

static mlxn_buffer *dbuf(bk *b, mlxn_device *d, const void *image, size_t bytes) {
    mlxn_buffer *buf = NULL;
    CHECK_OK(mlxn_buffer_new(d, bytes, &buf));
    if (!buf || b->nbufs == MAX_BUFS) {
        fprintf(stderr, "test_backend_ops: could not allocate a %zu-byte buffer on %s\n", bytes, mlxn_device_name(d));
        exit(1);
    }
    b->bufs[b->nbufs++] = buf;
    if (bytes) CHECK_OK(mlxn_buffer_write(buf, 0, image, bytes));
    return buf;
}

/* The CUDA backend reads its MLXN_CUDA_* switches when a stream is made:
 * after changing one, env_stream runs the device's ops on a new stream
 * (which reads it), and default_stream goes back to the device's own (made
 * with the environment the test started with), freeing the new one. */
static void default_stream(bk *b) {
    mlxn_stream *own = mlxn_device_stream(b->dev);
    if (b->ds && b->ds != own) mlxn_stream_free(b->ds); /* waits for its work */
    b->ds = own;
}
static void env_stream(bk *b) {
    mlxn_stream *s = NULL;
    CHECK_OK(mlxn_stream_new(b->dev, &s));
    if (!s) {
        fprintf(stderr, "test_backend_ops: could not make a stream on %s\n", mlxn_device_name(b->dev));
        exit(1);
    }
    default_stream(b);
    mlxn_stream_sync(b->ds);
    b->ds = s;
}

/* Free everything the case allocated. */
static void reset(bk *b) {
    mlxn_stream_sync(b->ds);
    for (int i = 0; i < b->nbufs; i++) mlxn_buffer_free(b->bufs[i]);
    for (int i = 0; i < b->nhost; i++) free(b->host[i]);
    b->nbufs = b->nhost = 0;
}

static int64_t numel(int nd, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    return n;
}

/* Element strides of a layout of shape. */
static void layout_strides(int layout, int nd, const int64_t *shape, int64_t *st) {
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        st[i] = s;
        s *= shape[i];
    }
    if (layout == GAPPY && nd >= 1) {
        /* last axis every 2nd element, rows 3 elements apart past that */
        s = 2;
        st[nd - 1] = s;
        s = 2 * shape[nd - 1] + 3;
        for (int i = nd - 2; i >= 0; i--) {
            st[i] = s;
            s *= shape[i];
        }
    } else if (layout == TRANS && nd >= 2) {
        /* stored with the last two axes swapped, contiguous */
        int64_t A = shape[nd - 2], B = shape[nd - 1];
        st[nd - 2] = 1;
        st[nd - 1] = A;
        s = A * B;
        for (int i = nd - 3; i >= 0; i--) {
            st[i] = s;
            s *= shape[i];
        }
    }
}

/* A view with strides st of logical row-major data (dtype dt); bytes the
 * view does not cover are 0xFF. */
static tp tp_strided(bk *b, mlxn_dtype dt, int nd, const int64_t *shape, const int64_t *st, const void *data) {
    size_t es = mlxn_dtype_size(dt);
    int64_t n = numel(nd, shape), span = 1;
    for (int i = 0; i < nd; i++) span += (shape[i] - 1) * st[i];
    if (n == 0) span = 1;
    char *img = hmem(b, (size_t)span * es);
    memset(img, 0xFF, (size_t)span * es);
    for (int64_t e = 0; e < n; e++) {
        int64_t off = 0, r = e;
        for (int i = nd - 1; i >= 0; i--) {
            off += (r % shape[i]) * st[i];
            r /= shape[i];
        }
        memcpy(img + off * (int64_t)es, (const char *)data + e * (int64_t)es, es);
    }
    tp t;
    memset(&t, 0, sizeof t);
    t.c.dtype = t.g.dtype = dt;
    t.c.ndim = t.g.ndim = nd;
    for (int i = 0; i < nd; i++) {
        t.c.shape[i] = t.g.shape[i] = shape[i];
        t.c.strides[i] = t.g.strides[i] = st[i];
    }
    t.c.buf = dbuf(b, b->cpu, img, (size_t)span * es);
    t.g.buf = dbuf(b, b->dev, img, (size_t)span * es);
    return t;
}

static tp tp_make(bk *b, mlxn_dtype dt, int nd, const int64_t *shape, const void *data, int layout) {
    int64_t st[MLXN_MAX_DIMS];
    layout_strides(layout, nd, shape, st);
    return tp_strided(b, dt, nd, shape, st, data);
}

/* A poisoned contiguous output. */
static tp tp_out(bk *b, mlxn_dtype dt, int nd, const int64_t *shape) {
    size_t bytes = (size_t)numel(nd, shape) * mlxn_dtype_size(dt);
    void *img = hmem(b, bytes);
    memset(img, 0xFF, bytes);
    int64_t st[MLXN_MAX_DIMS];
    layout_strides(CONTIG, nd, shape, st);
    tp t = tp_strided(b, dt, nd, shape, st, img);
    return t;
}

/* n random values of dtype dt, N(0, scale^2). */
static void *rnd(bk *b, mlxn_dtype dt, int64_t n, float scale) {
    void *p = hmem(b, (size_t)n * mlxn_dtype_size(dt));
    for (int64_t i = 0; i < n; i++) {
        float v = t_randn() * scale;
        if (dt == MLXN_DTYPE_F32) ((float *)p)[i] = v;
        else if (dt == MLXN_DTYPE_BF16) ((uint16_t *)p)[i] = mlxn_f32_to_bf16(v);
        else ((uint16_t *)p)[i] = mlxn_f32_to_f16(v);
    }
    return p;
}

static tp tp_rand(bk *b, mlxn_dtype dt, int nd, const int64_t *shape, float scale, int layout) {
    return tp_make(b, dt, nd, shape, rnd(b, dt, numel(nd, shape), scale), layout);
}

/* ---- running and comparing ---------------------------------------------- */

/* The CPU call must succeed; the device call too, unless it reports "not
 * built yet". Returns 1 when both ran. */
static int ran(bk *b, const char *label, mlxn_status sc, mlxn_status sd) {
    CHECK(sc == MLXN_OK, "%s: cpu: %s: %s", label, mlxn_status_str(sc), mlxn_last_error());
    if (sd == MLXN_ERR_NOT_IMPLEMENTED) {
        int seen = 0;
        for (int i = 0; i < b->n_not_built; i++) seen |= !strcmp(b->not_built[i], label);
        if (!seen && b->n_not_built < MAX_NB) {
            b->not_built[b->n_not_built++] = label;
            printf("  %s: %s: not built yet (%s)\n", b->name, label, mlxn_last_error());
        }
        return 0;
    }
    CHECK(sd == MLXN_OK, "%s: %s: %s: %s", label, b->name, mlxn_status_str(sd), mlxn_last_error());
    if (sd == MLXN_OK) CHECK_OK(mlxn_stream_sync(b->ds));
    return sc == MLXN_OK && sd == MLXN_OK;
}

/* The bytes of a tensor's whole buffer. */
static void *bytes_of(bk *b, const mlxn_tensor *t) {
    size_t n = mlxn_buffer_size(t->buf);
    void *p = hmem(b, n);
    CHECK_OK(mlxn_buffer_read(t->buf, 0, p, n));
    return p;
}

/* Contiguous f32 outputs: NMSE(cpu, device) <= thr. */
static void cmp_f32(bk *b, const char *label, const tp *o, double thr) {
    size_t n = (size_t)mlxn_tensor_numel(&o->c);
    const float *rc = (const float *)((char *)bytes_of(b, &o->c) + o->c.offset);
    const float *rg = (const float *)((char *)bytes_of(b, &o->g) + o->g.offset);
    double e = t_nmse(rc, rg, n);
    CHECK(e <= thr, "%s: %s vs cpu: nmse %.3g > %.1g (%zu elements; max |diff| %.3g)", label, b->name, e, thr, n,
          t_max_abs_diff(rc, rg, n));
}

/* Whole buffers byte for byte (indices, copies with their gaps). */
static void cmp_exact(bk *b, const char *label, const tp *o) {
    size_t n = mlxn_buffer_size(o->c.buf);
    const unsigned char *rc = bytes_of(b, &o->c), *rg = bytes_of(b, &o->g);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (rc[i] != rg[i] && !bad++) first = i;
    CHECK(bad == 0, "%s: %s: %zu of %zu bytes differ from the cpu (first at byte %zu)", label, b->name, bad, n, first);
}

/* Special values: same NaN positions and infinities, finite values close. */
static void cmp_special(bk *b, const char *label, const tp *o) {
    size_t n = (size_t)mlxn_tensor_numel(&o->c);
    const float *rc = bytes_of(b, &o->c), *rg = bytes_of(b, &o->g);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float x = rc[i], y = rg[i];
        int ok = isnan(x) ? isnan(y) : isinf(x) ? x == y : (isfinite(y) && fabsf(x - y) <= 1e-6f * (1.0f + fabsf(x)));
        bad += !ok;
    }
    CHECK(bad == 0, "%s: %s: %zu of %zu special values differ from the cpu", label, b->name, bad, n);
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

/* ---- elementwise --------------------------------------------------------- */

static void case_add_scale_copy(bk *b) {
    {   /* bias broadcast, bf16 b */
        tp a = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(3, 37), 1, CONTIG), v = tp_rand(b, MLXN_DTYPE_BF16, 1, SHAPE(37), 1, CONTIG);
        tp o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(3, 37));
        if (ran(b, "add", mlxn_add(b->cs, &a.c, &v.c, &o.c), mlxn_add(b->ds, &a.g, &v.g, &o.g))) cmp_f32(b, "add", &o, 0);
    }
    {   /* strided a, transposed f16 b */
        tp a = tp_rand(b, MLXN_DTYPE_F32, 3, SHAPE(2, 5, 33), 1, GAPPY), v = tp_rand(b, MLXN_DTYPE_F16, 3, SHAPE(2, 5, 33), 1, TRANS);
        tp o = tp_out(b, MLXN_DTYPE_F32, 3, SHAPE(2, 5, 33));
        if (ran(b, "add", mlxn_add(b->cs, &a.c, &v.c, &o.c), mlxn_add(b->ds, &a.g, &v.g, &o.g))) cmp_f32(b, "add strided", &o, 0);
    }
    {   /* in place */
        tp a = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(4, 65), 1, CONTIG), v = tp_rand(b, MLXN_DTYPE_F32, 1, SHAPE(65), 1, CONTIG);
        if (ran(b, "add", mlxn_add(b->cs, &a.c, &v.c, &a.c), mlxn_add(b->ds, &a.g, &v.g, &a.g))) cmp_f32(b, "add in place", &a, 0);
    }
    {
        tp x = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(7, 129), 1, GAPPY), o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(7, 129));
        if (ran(b, "scale", mlxn_scale(b->cs, &x.c, 0.37f, &o.c), mlxn_scale(b->ds, &x.g, 0.37f, &o.g))) cmp_f32(b, "scale", &o, 0);
        tp y = tp_rand(b, MLXN_DTYPE_F32, 1, SHAPE(1001), 1, CONTIG);
        if (ran(b, "scale", mlxn_scale(b->cs, &y.c, -3.0f, &y.c), mlxn_scale(b->ds, &y.g, -3.0f, &y.g))) cmp_f32(b, "scale in place", &y, 0);
    }
    /* copies: every dtype pair in a few layouts; whole destination buffers must match */
    const mlxn_dtype dts[3] = {MLXN_DTYPE_F32, MLXN_DTYPE_BF16, MLXN_DTYPE_F16};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            int sl = (i + j) % 3, dl = (i + 2 * j) % 3;
            tp src = tp_rand(b, dts[i], 3, SHAPE(3, 4, 37), 2, sl);
            void *zero = hmem(b, 3 * 4 * 37 * 4);
            tp dst = tp_make(b, dts[j], 3, SHAPE(3, 4, 37), zero, dl);
            if (ran(b, "copy", mlxn_copy(b->cs, &src.c, &dst.c), mlxn_copy(b->ds, &src.g, &dst.g))) cmp_exact(b, "copy", &dst);
        }
    reset(b);
}

static void case_activations(bk *b) {
    for (int layout = 0; layout < 2; layout++) {
        const int64_t *sh = layout ? SHAPE(5, 1031) : SHAPE(3, 7, 64);
        int nd = layout ? 2 : 3;
        tp x = tp_rand(b, MLXN_DTYPE_F32, nd, sh, 3, layout), u = tp_rand(b, MLXN_DTYPE_F32, nd, sh, 1, layout ? CONTIG : GAPPY);
        tp o = tp_out(b, MLXN_DTYPE_F32, nd, sh);
        if (ran(b, "silu", mlxn_silu(b->cs, &x.c, &o.c), mlxn_silu(b->ds, &x.g, &o.g))) cmp_f32(b, "silu", &o, 1e-12);
        for (int k = 0; k < 2; k++) {
            mlxn_gelu_kind kind = k ? MLXN_GELU_TANH : MLXN_GELU_ERF;
            if (ran(b, "gelu", mlxn_gelu(b->cs, &x.c, kind, &o.c), mlxn_gelu(b->ds, &x.g, kind, &o.g))) cmp_f32(b, "gelu", &o, 1e-12);
            if (ran(b, "geglu", mlxn_geglu(b->cs, &x.c, &u.c, kind, &o.c), mlxn_geglu(b->ds, &x.g, &u.g, kind, &o.g)))
                cmp_f32(b, "geglu", &o, 1e-12);
        }
        if (ran(b, "swiglu", mlxn_swiglu(b->cs, &x.c, &u.c, &o.c), mlxn_swiglu(b->ds, &x.g, &u.g, &o.g)))
            cmp_f32(b, "swiglu", &o, 1e-12);
    }
    reset(b);
}

/* ---- reductions ---------------------------------------------------------- */

static void case_softmax_argmax(bk *b) {
    for (int layout = 0; layout < 2; layout++) {
        const int64_t *sh = layout ? SHAPE(2, 3, 17) : SHAPE(7, 1000);
        int nd = layout ? 3 : 2;
        tp x = tp_rand(b, MLXN_DTYPE_F32, nd, sh, 4, layout);
        tp o = tp_out(b, MLXN_DTYPE_F32, nd, sh), am = tp_out(b, MLXN_DTYPE_I32, nd - 1, sh);
        if (ran(b, "softmax", mlxn_softmax(b->cs, &x.c, &o.c), mlxn_softmax(b->ds, &x.g, &o.g))) cmp_f32(b, "softmax", &o, 1e-12);
        if (ran(b, "argmax", mlxn_argmax(b->cs, &x.c, &am.c), mlxn_argmax(b->ds, &x.g, &am.g))) cmp_exact(b, "argmax", &am);
    }
    {   /* special rows: NaN, only -inf, +inf, ties */
        enum { R = 5, N = 300 };
        float *v = hmem(b, R * N * sizeof(float));
        for (int i = 0; i < R * N; i++) v[i] = t_randn();
        v[0 * N + 123] = NAN, v[0 * N + 200] = NAN;
        for (int i = 0; i < N; i++) v[1 * N + i] = -INFINITY;
        v[2 * N + 7] = INFINITY;
        v[3 * N + 50] = 9.0f, v[3 * N + 250] = 9.0f, v[3 * N + 10] = 9.0f;
        v[4 * N + 299] = NAN;
        tp x = tp_make(b, MLXN_DTYPE_F32, 2, SHAPE(R, N), v, CONTIG);
        tp o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(R, N)), am = tp_out(b, MLXN_DTYPE_I32, 1, SHAPE(R));
        if (ran(b, "softmax", mlxn_softmax(b->cs, &x.c, &o.c), mlxn_softmax(b->ds, &x.g, &o.g))) cmp_special(b, "softmax special", &o);
        if (ran(b, "argmax", mlxn_argmax(b->cs, &x.c, &am.c), mlxn_argmax(b->ds, &x.g, &am.g))) cmp_exact(b, "argmax special", &am);
    }
    reset(b);
}

static void case_norms(bk *b) {
    {
        tp x = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(6, 4097), 2, CONTIG), w = tp_rand(b, MLXN_DTYPE_BF16, 1, SHAPE(4097), 1, CONTIG);
        tp o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(6, 4097));
        if (ran(b, "rms_norm", mlxn_rms_norm(b->cs, &x.c, &w.c, 1e-6f, 1.0f, &o.c), mlxn_rms_norm(b->ds, &x.g, &w.g, 1e-6f, 1.0f, &o.g)))
            cmp_f32(b, "rms_norm w_offset", &o, 1e-11);
        if (ran(b, "rms_norm", mlxn_rms_norm(b->cs, &x.c, NULL, 1e-5f, 0, &o.c), mlxn_rms_norm(b->ds, &x.g, NULL, 1e-5f, 0, &o.g)))
            cmp_f32(b, "rms_norm no w", &o, 1e-11);
    }
    {
        tp x = tp_rand(b, MLXN_DTYPE_F32, 3, SHAPE(2, 3, 77), 1, GAPPY), w = tp_rand(b, MLXN_DTYPE_F16, 1, SHAPE(77), 1, GAPPY);
        tp bb = tp_rand(b, MLXN_DTYPE_BF16, 1, SHAPE(77), 1, CONTIG), o = tp_out(b, MLXN_DTYPE_F32, 3, SHAPE(2, 3, 77));
        if (ran(b, "rms_norm", mlxn_rms_norm(b->cs, &x.c, &w.c, 1e-6f, 0, &o.c), mlxn_rms_norm(b->ds, &x.g, &w.g, 1e-6f, 0, &o.g)))
            cmp_f32(b, "rms_norm strided", &o, 1e-11);
        if (ran(b, "layer_norm", mlxn_layer_norm(b->cs, &x.c, &w.c, &bb.c, 1e-5f, &o.c),
                mlxn_layer_norm(b->ds, &x.g, &w.g, &bb.g, 1e-5f, &o.g)))
            cmp_f32(b, "layer_norm", &o, 1e-11);
        if (ran(b, "layer_norm", mlxn_layer_norm(b->cs, &x.c, NULL, NULL, 1e-5f, &o.c),
                mlxn_layer_norm(b->ds, &x.g, NULL, NULL, 1e-5f, &o.g)))
            cmp_f32(b, "layer_norm bare", &o, 1e-11);
    }
    {   /* a fused q/k/v output [3, 416] for 3 tokens, its k part as [3, 2, 64] (strides 416, 64, 1; 128
           columns in): rows not one stride apart. The device must normalize it to the bits of a contiguous
           copy of it (the fused and the unfused model's k norm), and to the CPU's within rounding */
        float *v = rnd(b, MLXN_DTYPE_F32, 3 * 416, 2), *kc = hmem(b, 3 * 128 * sizeof(float));
        for (int t = 0; t < 3; t++) memcpy(kc + t * 128, v + t * 416 + 128, 128 * sizeof(float));
        tp xv = tp_make(b, MLXN_DTYPE_F32, 2, SHAPE(3, 416), v, CONTIG);
        const int64_t sh[3] = {3, 2, 64}, st[3] = {416, 64, 1};
        mlxn_tensor *vt[2] = {&xv.c, &xv.g};
        for (int i = 0; i < 2; i++) {
            vt[i]->ndim = 3;
            vt[i]->offset = 128 * sizeof(float);
            memcpy(vt[i]->shape, sh, sizeof sh);
            memcpy(vt[i]->strides, st, sizeof st);
        }
        tp xc = tp_make(b, MLXN_DTYPE_F32, 3, sh, kc, CONTIG), w = tp_rand(b, MLXN_DTYPE_BF16, 1, SHAPE(64), 1, CONTIG);
        tp ov = tp_out(b, MLXN_DTYPE_F32, 3, sh), oc = tp_out(b, MLXN_DTYPE_F32, 3, sh);
        if (ran(b, "rms_norm", mlxn_rms_norm(b->cs, &xv.c, &w.c, 1e-6f, 0, &ov.c), mlxn_rms_norm(b->ds, &xv.g, &w.g, 1e-6f, 0, &ov.g)) &&
            ran(b, "rms_norm", mlxn_rms_norm(b->cs, &xc.c, &w.c, 1e-6f, 0, &oc.c), mlxn_rms_norm(b->ds, &xc.g, &w.g, 1e-6f, 0, &oc.g))) {
            cmp_f32(b, "rms_norm of a column view", &ov, 1e-11);
            const void *gv = bytes_of(b, &ov.g), *gc = bytes_of(b, &oc.g);
            CHECK(memcmp(gv, gc, sizeof(float) * 3 * 128) == 0, "rms_norm: %s: a column view and its contiguous copy differ",
                  b->name);
        }
    }
    {
        tp x = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(5, 1000), 1, CONTIG), w = tp_rand(b, MLXN_DTYPE_F32, 1, SHAPE(1000), 1, CONTIG);
        tp o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(5, 1000));
        if (ran(b, "layer_norm", mlxn_layer_norm(b->cs, &x.c, &w.c, NULL, 1e-5f, &o.c), mlxn_layer_norm(b->ds, &x.g, &w.g, NULL, 1e-5f, &o.g)))
            cmp_f32(b, "layer_norm w only", &o, 1e-11);
    }
    reset(b);
}

/* ---- rope, hadamard ------------------------------------------------------ */

static void case_rope(bk *b) {
    const int64_t *sh = SHAPE(2, 3, 9, 64);
    tp x = tp_rand(b, MLXN_DTYPE_F32, 4, sh, 1, CONTIG), xs = tp_rand(b, MLXN_DTYPE_F32, 4, sh, 1, GAPPY);
    tp o = tp_out(b, MLXN_DTYPE_F32, 4, sh);
    float fr[16];
    for (int i = 0; i < 16; i++) fr[i] = 1.0f + 3.0f * (float)i * (float)i;
    tp freqs = tp_make(b, MLXN_DTYPE_F32, 1, SHAPE(16), fr, CONTIG);
    int32_t off7 = 7;
    tp offt = tp_make(b, MLXN_DTYPE_I32, 1, SHAPE(1), &off7, CONTIG);
    struct { int dims; bool trad; float base, scale; int offset; int use_freqs, use_offt, strided; double thr; } cs[] = {
        {64, false, 10000.0f, 1.0f, 100, 0, 0, 0, 1e-11},  {32, true, 10000.0f, 1.0f, 3, 0, 0, 1, 1e-11},
        {32, false, 500000.0f, 0.5f, 0, 1, 0, 0, 1e-11},   {64, true, 10000.0f, 1.0f, 0, 0, 1, 0, 1e-11},
        {48, false, 10000.0f, 1.0f, 100000, 0, 0, 1, 1e-9},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        mlxn_rope_params pc = {.dims = cs[i].dims, .traditional = cs[i].trad, .base = cs[i].base, .scale = cs[i].scale,
                               .offset = cs[i].offset};
        mlxn_rope_params pg = pc;
        if (cs[i].use_freqs) pc.freqs = &freqs.c, pg.freqs = &freqs.g;
        if (cs[i].use_offt) pc.offset_tensor = &offt.c, pg.offset_tensor = &offt.g;
        tp *in = cs[i].strided ? &xs : &x;
        if (ran(b, "rope", mlxn_rope(b->cs, &in->c, &pc, &o.c), mlxn_rope(b->ds, &in->g, &pg, &o.g))) cmp_f32(b, "rope", &o, cs[i].thr);
    }
    reset(b);
}

static void case_hadamard(bk *b) {
    const int64_t ns[4] = {1, 64, 1024, 32768};
    for (int i = 0; i < 4; i++) {
        int64_t rows = ns[i] > 4096 ? 2 : 3;
        const int64_t sh[2] = {rows, ns[i]};
        tp x = tp_rand(b, MLXN_DTYPE_F32, 2, sh, 1, i == 1 ? GAPPY : CONTIG), o = tp_out(b, MLXN_DTYPE_F32, 2, sh);
        float sc = 1.0f / sqrtf((float)ns[i]);
        if (ran(b, "hadamard", mlxn_hadamard(b->cs, &x.c, sc, &o.c), mlxn_hadamard(b->ds, &x.g, sc, &o.g))) cmp_exact(b, "hadamard", &o);
        if (i != 1 && ran(b, "hadamard", mlxn_hadamard(b->cs, &x.c, 0.5f, &x.c), mlxn_hadamard(b->ds, &x.g, 0.5f, &x.g)))
            cmp_exact(b, "hadamard in place", &x);
    }
    reset(b);
}

/* ---- gathers ------------------------------------------------------------- */

static tp ids_of(bk *b, mlxn_dtype dt, int64_t n, int64_t V) {
    int32_t *ids = hmem(b, (size_t)n * 4);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(t_rand_u64() % (uint64_t)V);
    if (n > 2) ids[n - 1] = (int32_t)(V - 1), ids[0] = 0;
    return tp_make(b, dt, 1, SHAPE(n), ids, CONTIG);
}

/* A random quantized [R, C] matrix (scales of dtype sdt for affine). */
typedef struct qm {
    tp wq, sc, bi;
    int has_bi;
} qm;

static qm quantized(bk *b, const mlxn_quant_params *q, mlxn_dtype sdt, int64_t R, int64_t C) {
    qm m;
    memset(&m, 0, sizeof m);
    mlxn_dtype wdt = q->mode == MLXN_QUANT_AFFINE ? sdt : MLXN_DTYPE_F32;
    void *w = rnd(b, wdt, R * C, 0.5f);
    int64_t wpr = mlxn_quant_words_per_row(q, C), ng = C / q->group_size;
    mlxn_dtype st = mlxn_quant_scale_dtype(q, wdt);
    uint32_t *codes = hmem(b, (size_t)(R * wpr) * 4);
    void *sc = hmem(b, (size_t)(R * ng) * mlxn_dtype_size(st));
    void *bi = q->mode == MLXN_QUANT_AFFINE ? hmem(b, (size_t)(R * ng) * mlxn_dtype_size(st)) : NULL;
    CHECK_OK(mlxn_quantize(q, wdt, w, R, C, codes, sc, bi));
    m.wq = tp_make(b, MLXN_DTYPE_U32, 2, SHAPE(R, wpr), codes, CONTIG);
    m.sc = tp_make(b, st, 2, SHAPE(R, ng), sc, CONTIG);
    if (bi) m.bi = tp_make(b, st, 2, SHAPE(R, ng), bi, CONTIG), m.has_bi = 1;
    return m;
}

/* The NMSE bound of a quantized product against the CPU: 1e-10 (f32
 * rounding), but 1e-9 for the affine formats with 16-bit scales (or f32
 * ones with groups of 32), which CUDA's tensor-core mat-vec takes (every
 * width and group size for one x row, 4-bit groups of 64 / 128 for up to
 * 8; cu_qmv_mma.cuh; mxfp4 and nvfp4 on it carry no offset and keep
 * 1e-10). It sums x * (offset + q) in f32 and subtracts offset * sum(x)
 * per group, so its rounding is that of a sum up to ~30x larger than the
 * result's terms (4-bit g64: offset 128): seeds gave up to 1.34e-10 (6001
 * x 128, g128), while a wrong weight, scale or row gives > 1e-6. */
static double qmv_bound(const mlxn_quant_params *q, mlxn_dtype sdt) {
    const int tc = q->mode == MLXN_QUANT_AFFINE &&
                   (sdt == MLXN_DTYPE_BF16 || sdt == MLXN_DTYPE_F16 || (sdt == MLXN_DTYPE_F32 && q->group_size == 32));
    return tc ? 1e-9 : 1e-10;
}

static void case_embedding(bk *b) {
    {
        tp tb = tp_rand(b, MLXN_DTYPE_BF16, 2, SHAPE(100, 77), 1, CONTIG), ids = ids_of(b, MLXN_DTYPE_I32, 9, 100);
        tp o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(9, 77));
        if (ran(b, "embedding", mlxn_embedding(b->cs, &ids.c, &tb.c, &o.c), mlxn_embedding(b->ds, &ids.g, &tb.g, &o.g)))
            cmp_exact(b, "embedding", &o);
        tp t2 = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(50, 33), 1, TRANS), i2 = ids_of(b, MLXN_DTYPE_U32, 5, 50);
        tp o2 = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(5, 33));
        if (ran(b, "embedding", mlxn_embedding(b->cs, &i2.c, &t2.c, &o2.c), mlxn_embedding(b->ds, &i2.g, &t2.g, &o2.g)))
            cmp_exact(b, "embedding strided", &o2);
        int32_t bad[3] = {1, 100, 2};
        tp ib = tp_make(b, MLXN_DTYPE_I32, 1, SHAPE(3), bad, CONTIG);
        tp o3 = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(3, 77));
        /* the device reads the ids, so the bad one is reported by the next sync, naming it */
        CHECK_OK(mlxn_embedding(b->ds, &ib.g, &tb.g, &o3.g));
        CHECK_FAILS(mlxn_stream_sync(b->ds), MLXN_ERR_INVALID_ARGUMENT);
        CHECK(strstr(mlxn_last_error(), "ids[1] = 100") != NULL, "bad id message: %s", mlxn_last_error());
        CHECK_OK(mlxn_stream_sync(b->ds)); /* reported once */
    }
    const struct { mlxn_quant_mode mode; int bits, group; mlxn_dtype sdt; float gs; int64_t C; } qs[] = {
        {MLXN_QUANT_AFFINE, 4, 64, MLXN_DTYPE_BF16, 0, 256}, {MLXN_QUANT_AFFINE, 3, 32, MLXN_DTYPE_F16, 0, 96},
        {MLXN_QUANT_MXFP4, 4, 32, MLXN_DTYPE_U8, 0, 128},    {MLXN_QUANT_NVFP4, 4, 16, MLXN_DTYPE_U8, 3.5f, 80},
        {MLXN_QUANT_MXFP8, 8, 32, MLXN_DTYPE_U8, 0, 64},
    };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        mlxn_quant_params q = {.mode = qs[i].mode, .bits = qs[i].bits, .group_size = qs[i].group, .global_scale = qs[i].gs};
        qm m = quantized(b, &q, qs[i].sdt == MLXN_DTYPE_U8 ? MLXN_DTYPE_F32 : qs[i].sdt, 40, qs[i].C);
        tp ids = ids_of(b, MLXN_DTYPE_I32, 7, 40), o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(7, qs[i].C));
        if (ran(b, "quantized_embedding",
                mlxn_quantized_embedding(b->cs, &ids.c, &m.wq.c, &m.sc.c, m.has_bi ? &m.bi.c : NULL, &q, &o.c),
                mlxn_quantized_embedding(b->ds, &ids.g, &m.wq.g, &m.sc.g, m.has_bi ? &m.bi.g : NULL, &q, &o.g)))
            cmp_exact(b, "quantized_embedding", &o);
    }
    reset(b);
}

/* ---- matrix products ----------------------------------------------------- */

static void case_qmatmul(bk *b) {
    const struct { mlxn_quant_mode mode; int bits, group; mlxn_dtype sdt; float gs; } qs[] = {
        {MLXN_QUANT_AFFINE, 4, 64, MLXN_DTYPE_BF16, 0}, {MLXN_QUANT_AFFINE, 4, 32, MLXN_DTYPE_F16, 0},
        {MLXN_QUANT_AFFINE, 4, 128, MLXN_DTYPE_F32, 0}, {MLXN_QUANT_AFFINE, 2, 64, MLXN_DTYPE_BF16, 0},
        {MLXN_QUANT_AFFINE, 3, 64, MLXN_DTYPE_BF16, 0}, {MLXN_QUANT_AFFINE, 5, 32, MLXN_DTYPE_BF16, 0},
        {MLXN_QUANT_AFFINE, 6, 64, MLXN_DTYPE_F16, 0},  {MLXN_QUANT_AFFINE, 8, 128, MLXN_DTYPE_BF16, 0},
        {MLXN_QUANT_MXFP4, 4, 32, MLXN_DTYPE_U8, 0},    {MLXN_QUANT_MXFP8, 8, 32, MLXN_DTYPE_U8, 0},
        {MLXN_QUANT_NVFP4, 4, 16, MLXN_DTYPE_U8, 0},    {MLXN_QUANT_NVFP4, 4, 16, MLXN_DTYPE_U8, 2.5f},
        /* the tensor-core one-row kernel's other formats (cu_qmv_mma.cuh): every width by every group size,
         * both scale dtypes among them */
        {MLXN_QUANT_AFFINE, 4, 128, MLXN_DTYPE_BF16, 0}, {MLXN_QUANT_AFFINE, 4, 64, MLXN_DTYPE_F16, 0},
        {MLXN_QUANT_AFFINE, 3, 128, MLXN_DTYPE_F16, 0},  {MLXN_QUANT_AFFINE, 6, 128, MLXN_DTYPE_BF16, 0},
        {MLXN_QUANT_AFFINE, 8, 64, MLXN_DTYPE_F16, 0},   {MLXN_QUANT_AFFINE, 2, 32, MLXN_DTYPE_F16, 0},
        {MLXN_QUANT_AFFINE, 2, 128, MLXN_DTYPE_BF16, 0}, {MLXN_QUANT_AFFINE, 5, 64, MLXN_DTYPE_F16, 0},
        {MLXN_QUANT_AFFINE, 5, 128, MLXN_DTYPE_BF16, 0}, {MLXN_QUANT_AFFINE, 3, 32, MLXN_DTYPE_BF16, 0},
        {MLXN_QUANT_AFFINE, 6, 32, MLXN_DTYPE_F16, 0},   {MLXN_QUANT_AFFINE, 8, 32, MLXN_DTYPE_BF16, 0},
        /* f32 scales with groups of 32 (GGUF Q4_K / Q5_K imports): the f16 path too */
        {MLXN_QUANT_AFFINE, 4, 32, MLXN_DTYPE_F32, 0},   {MLXN_QUANT_AFFINE, 5, 32, MLXN_DTYPE_F32, 0},
        {MLXN_QUANT_AFFINE, 3, 32, MLXN_DTYPE_F32, 0},
    };
    const int64_t nxs[5] = {1, 2, 3, 8, 13};
    setenv("MLXN_CUDA_QMM_MIN_ROWS", "1000000", 1); /* the mat-vec kernels (f32 exact) at every n; case_qmm tests the rest */
    env_stream(b);
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        mlxn_quant_params q = {.mode = qs[i].mode, .bits = qs[i].bits, .group_size = qs[i].group, .global_scale = qs[i].gs};
        mlxn_dtype sdt = qs[i].sdt == MLXN_DTYPE_U8 ? MLXN_DTYPE_F32 : qs[i].sdt;
        for (int t = 0; t < 2; t++) {
            /* quantized [R, C]; transpose: x [n, C] -> [n, R]; else x [n, R] -> [n, C] */
            int64_t R = t ? 67 : 45, C = t ? (q.mode == MLXN_QUANT_NVFP4 ? 400 : 384) : 256;
            qm m = quantized(b, &q, sdt, R, C);
            for (int k = 0; k < 5; k++) {
                int64_t n = nxs[k], K = t ? C : R, N = t ? R : C;
                tp x = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(n, K), 1, (k == 2 && t) ? GAPPY : CONTIG);
                tp o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(n, N));
                char label[96];
                snprintf(label, sizeof label, "quantized_matmul %s %d-bit g%d t=%d n=%lld", mlxn_quant_mode_name(q.mode),
                         q.bits, q.group_size, t, (long long)n);
                if (ran(b, "quantized_matmul",
                        mlxn_quantized_matmul(b->cs, &x.c, &m.wq.c, &m.sc.c, m.has_bi ? &m.bi.c : NULL, &q, t, &o.c),
                        mlxn_quantized_matmul(b->ds, &x.g, &m.wq.g, &m.sc.g, m.has_bi ? &m.bi.g : NULL, &q, t, &o.g)))
                    cmp_f32(b, label, &o, qmv_bound(&q, sdt));
            }
            reset(b);
        }
    }
    /* the streaming kernels at their tails: one x row with many rows per warp
     * and a one-item row (K = 128, lanes past K idle), one x row whose last
     * item is partial (K = 2176 = 17 x 128) with a row count that fills no
     * block evenly; 3 and 8 x rows with K split into several slices, the
     * last one partial (K = 6272 = 49 x 128: a multiple of every group size), and rows that are not a multiple of 4 */
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        mlxn_quant_params q = {.mode = qs[i].mode, .bits = qs[i].bits, .group_size = qs[i].group, .global_scale = qs[i].gs};
        mlxn_dtype sdt = qs[i].sdt == MLXN_DTYPE_U8 ? MLXN_DTYPE_F32 : qs[i].sdt;
        /* (and one x row over K = 2560, Gemma-3-4B's hidden size, and K = 3072, with row counts that fill
         * no block evenly) */
        const int64_t shapes[6][3] = {{6001, 128, 1}, {1501, 2176, 1}, {301, 6272, 3}, {301, 6272, 8}, {341, 2560, 1}, {1000, 3072, 1}};
        for (int k = 0; k < 6; k++) {
            int64_t R = shapes[k][0], C = shapes[k][1], n = shapes[k][2];
            qm m = quantized(b, &q, sdt, R, C);
            tp x = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(n, C), 1, CONTIG);
            tp o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(n, R));
            char label[96];
            snprintf(label, sizeof label, "quantized_matmul %s %d-bit g%d %lldx%lld n=%lld", mlxn_quant_mode_name(q.mode),
                     q.bits, q.group_size, (long long)R, (long long)C, (long long)n);
            if (ran(b, "quantized_matmul",
                    mlxn_quantized_matmul(b->cs, &x.c, &m.wq.c, &m.sc.c, m.has_bi ? &m.bi.c : NULL, &q, true, &o.c),
                    mlxn_quantized_matmul(b->ds, &x.g, &m.wq.g, &m.sc.g, m.has_bi ? &m.bi.g : NULL, &q, true, &o.g)))
                cmp_f32(b, label, &o, qmv_bound(&q, sdt));
            reset(b);
        }
    }
    {   /* a decode-sized matrix, and x at an offset that is not 16-byte aligned (gathered) */
        mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = 4, .group_size = 64};
        qm m = quantized(b, &q, MLXN_DTYPE_BF16, 1024, 4096);
        float *xv = rnd(b, MLXN_DTYPE_F32, 4097, 1);
        tp xb = tp_make(b, MLXN_DTYPE_F32, 1, SHAPE(4097), xv, CONTIG);
        tp x = xb;
        x.c.ndim = x.g.ndim = 2;
        x.c.shape[0] = x.g.shape[0] = 1;
        x.c.shape[1] = x.g.shape[1] = 4096;
        x.c.strides[0] = x.g.strides[0] = 4096;
        x.c.strides[1] = x.g.strides[1] = 1;
        x.c.offset = x.g.offset = 4;
        tp o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(1, 1024));
        if (ran(b, "quantized_matmul", mlxn_quantized_matmul(b->cs, &x.c, &m.wq.c, &m.sc.c, &m.bi.c, &q, true, &o.c),
                mlxn_quantized_matmul(b->ds, &x.g, &m.wq.g, &m.sc.g, &m.bi.g, &q, true, &o.g)))
            cmp_f32(b, "quantized_matmul 1024x4096 unaligned x", &o, 1e-10);
        reset(b);
    }
    /* the f16 path of the one-row tensor-core kernel (mxfp4, nvfp4, groups of 32, 2-, 5- and 8-bit) scales x by
     * a power of two per 32 codes (qm_h16_stage): x rows of one magnitude far from 1 (the scale's clamp:
     * 2^-120), and one whose groups span 2^-60 .. 2^64 */
    const struct { mlxn_quant_mode mode; int bits, group; float gs; mlxn_dtype sdt; } h16[] = {
        {MLXN_QUANT_MXFP4, 4, 32, 0, MLXN_DTYPE_F32}, {MLXN_QUANT_NVFP4, 4, 16, 3.5f, MLXN_DTYPE_F32},
        {MLXN_QUANT_AFFINE, 4, 32, 0, MLXN_DTYPE_BF16}, {MLXN_QUANT_AFFINE, 2, 64, 0, MLXN_DTYPE_F16},
        {MLXN_QUANT_AFFINE, 5, 128, 0, MLXN_DTYPE_BF16}};
    for (size_t f = 0; f < sizeof h16 / sizeof h16[0]; f++) {
        mlxn_quant_params q = {.mode = h16[f].mode, .bits = h16[f].bits, .group_size = h16[f].group, .global_scale = h16[f].gs};
        const int64_t R = 300, C = 1024;
        qm m = quantized(b, &q, h16[f].sdt, R, C);
        const float mags[6] = {0x1p-120f, 0x1p-100f, 0x1p-30f, 0x1p40f, 0x1p100f, 0.0f};
        for (int k = 0; k < 6; k++) {
            float *xv = rnd(b, MLXN_DTYPE_F32, C, 1);
            for (int64_t i = 0; i < C; i++) xv[i] *= mags[k] != 0.0f ? mags[k] : ldexpf(1.0f, -60 + 4 * (int)(i / 32));
            tp x = tp_make(b, MLXN_DTYPE_F32, 2, SHAPE(1, C), xv, CONTIG), o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(1, R));
            char label[112];
            snprintf(label, sizeof label, "quantized_matmul %s %d-bit g%d %lldx%lld x * %g%s", mlxn_quant_mode_name(q.mode),
                     q.bits, q.group_size, (long long)R, (long long)C, (double)mags[k], mags[k] != 0.0f ? "" : " (2^-60 .. 2^64 by 32)");
            if (ran(b, "quantized_matmul",
                    mlxn_quantized_matmul(b->cs, &x.c, &m.wq.c, &m.sc.c, m.has_bi ? &m.bi.c : NULL, &q, true, &o.c),
                    mlxn_quantized_matmul(b->ds, &x.g, &m.wq.g, &m.sc.g, m.has_bi ? &m.bi.g : NULL, &q, true, &o.g)))
                cmp_f32(b, label, &o, qmv_bound(&q, h16[f].sdt));
        }
        reset(b);
    }
    unsetenv("MLXN_CUDA_QMM_MIN_ROWS");
    default_stream(b);
}

/* quantized_matmul_fused: the one-row kernel with the norm before it and
 * the residual add or the gated activation after it (CUDA: every MLX affine
 * width and group size, mxfp4 and nvfp4) against the CPU's parts run apart;
 * its fuses() answer is asserted, so the kernel under test is the fused
 * one; gate halves of 333 rows leave the last 8-row tile partly past them.
 * An mxfp8 weight, 4-bit with f32 scales and groups of 64, two x rows and
 * an f32 norm weight (but with groups of 32: the f16 path takes it) run
 * the parts apart on the device too. NMSE qmv_bound (the fused kernel also
 * scales the sums by the norm instead of x: f32 rounding apart). */
static void case_qmatmul_fused(bk *b) {
    const mlxn_quant_mode AF = MLXN_QUANT_AFFINE, MX = MLXN_QUANT_MXFP4;
    const struct { mlxn_quant_mode mode; int bits, group; mlxn_dtype sdt; int64_t N, K; } ws[] = {
        {AF, 4, 64, MLXN_DTYPE_BF16, 2000, 2176}, {AF, 4, 128, MLXN_DTYPE_F16, 666, 4096}, {AF, 8, 64, MLXN_DTYPE_BF16, 130, 256},
        {AF, 3, 128, MLXN_DTYPE_F16, 666, 4096},  {AF, 6, 64, MLXN_DTYPE_BF16, 2000, 2176}, {AF, 8, 128, MLXN_DTYPE_F16, 1330, 3072},
        {AF, 5, 64, MLXN_DTYPE_BF16, 130, 256}, {AF, 5, 128, MLXN_DTYPE_F16, 1330, 3072}, {AF, 2, 32, MLXN_DTYPE_F16, 666, 2048},
        {AF, 2, 128, MLXN_DTYPE_BF16, 130, 512}, {AF, 3, 32, MLXN_DTYPE_BF16, 130, 256}, {AF, 6, 32, MLXN_DTYPE_F16, 666, 1024},
        {AF, 8, 32, MLXN_DTYPE_BF16, 130, 512}, {MLXN_QUANT_MXFP8, 8, 32, MLXN_DTYPE_F32, 130, 256},
        {AF, 4, 32, MLXN_DTYPE_F32, 1330, 3072}, {AF, 5, 32, MLXN_DTYPE_F32, 666, 2048}, {AF, 4, 64, MLXN_DTYPE_F32, 130, 256},
        /* gate halves of 665 rows again, over K = 3072 (24 chunks: whole rounds of the 4-warp ring) */
        {AF, 4, 64, MLXN_DTYPE_BF16, 1330, 3072},
        /* the f16 path: mxfp4 and nvfp4 (f32 weights quantized; no biases), 4-bit groups of 32 */
        {MX, 4, 32, MLXN_DTYPE_F32, 2000, 2176}, {MX, 4, 32, MLXN_DTYPE_F32, 1330, 3072},
        {MLXN_QUANT_NVFP4, 4, 16, MLXN_DTYPE_F32, 666, 4096}, {AF, 4, 32, MLXN_DTYPE_F16, 2000, 2176},
        {AF, 4, 32, MLXN_DTYPE_BF16, 1330, 3072}};
    const struct { mlxn_dtype nw; float off; int norm, res, in_place, M; mlxn_glu glu; } fs[] = {
        {MLXN_DTYPE_BF16, 0, 1, 0, 0, 1, MLXN_GLU_NONE}, {MLXN_DTYPE_F16, 1, 1, 0, 0, 1, MLXN_GLU_NONE},
        {MLXN_DTYPE_F32, 0, 1, 0, 0, 1, MLXN_GLU_NONE},  {MLXN_DTYPE_BF16, 0, 0, 1, 1, 1, MLXN_GLU_NONE},
        {MLXN_DTYPE_BF16, 0, 0, 1, 0, 1, MLXN_GLU_NONE}, {MLXN_DTYPE_BF16, 1, 1, 1, 1, 1, MLXN_GLU_NONE},
        {MLXN_DTYPE_BF16, 0, 1, 1, 0, 2, MLXN_GLU_NONE}, {MLXN_DTYPE_BF16, 0, 1, 0, 0, 1, MLXN_GLU_SWIGLU},
        {MLXN_DTYPE_F16, 1, 1, 0, 0, 1, MLXN_GLU_GEGLU_TANH}, {MLXN_DTYPE_BF16, 0, 0, 0, 0, 1, MLXN_GLU_GEGLU_ERF},
        {MLXN_DTYPE_BF16, 0, 1, 0, 0, 2, MLXN_GLU_SWIGLU}, {MLXN_DTYPE_F32, 1, 1, 0, 0, 1, MLXN_GLU_SWIGLU},
        {MLXN_DTYPE_F32, 0, 1, 1, 0, 1, MLXN_GLU_NONE},
    };
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        mlxn_quant_params q = {.mode = ws[i].mode, .bits = ws[i].bits, .group_size = ws[i].group,
                               .global_scale = ws[i].mode == MLXN_QUANT_NVFP4 ? 2.5f : 0.0f};
        const int64_t N = ws[i].N, K = ws[i].K;
        qm m = quantized(b, &q, ws[i].sdt, N, K);
        const mlxn_tensor *bic = m.has_bi ? &m.bi.c : NULL, *big = m.has_bi ? &m.bi.g : NULL;
        for (size_t j = 0; j < sizeof fs / sizeof fs[0]; j++) {
            const int64_t M = fs[j].M, NO = fs[j].glu ? N / 2 : N;
            tp x = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(M, K), 2, CONTIG);
            tp nw = tp_make(b, fs[j].nw, 1, SHAPE(K), rnd(b, fs[j].nw, K, 0.5f), CONTIG);
            tp r = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(M, NO), 1, CONTIG), o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(M, NO));
            tp xs = tp_out(b, MLXN_DTYPE_F32, 1, SHAPE(M * K)), ys = tp_out(b, MLXN_DTYPE_F32, 1, SHAPE(M * N));
            tp *dst = fs[j].in_place ? &r : &o;
            mlxn_qmm_fusion fc = {.norm_w = fs[j].norm ? &nw.c : NULL, .norm_eps = 1e-5f, .norm_offset = fs[j].off,
                                  .residual = fs[j].res ? &r.c : NULL, .glu = fs[j].glu, .x_scratch = &xs.c,
                                  .y_scratch = &ys.c};
            mlxn_qmm_fusion fg = fc;
            fg.norm_w = fs[j].norm ? &nw.g : NULL, fg.residual = fs[j].res ? &r.g : NULL;
            fg.x_scratch = &xs.g, fg.y_scratch = &ys.g;
            /* (f32 scales: with groups of 32 only) */
            const int f32s_ok = ws[i].sdt != MLXN_DTYPE_F32 || ws[i].mode != AF || ws[i].group == 32;
            const int want_fused = ws[i].mode != MLXN_QUANT_MXFP8 && f32s_ok && M == 1;
            CHECK(mlxn_quantized_matmul_fuses(b->ds, &m.wq.g, &m.sc.g, big, &q, M) == want_fused,
                  "%s: quantized_matmul_fuses %s %d-bit g%d M=%lld should be %d", b->name, mlxn_quant_mode_name(q.mode),
                  q.bits, q.group_size, (long long)M, want_fused);
            char label[160];
            snprintf(label, sizeof label,
                     "quantized_matmul_fused %s %d-bit g%d %lldx%lld M=%lld norm %d (%s, +%g) residual %d%s glu %d",
                     mlxn_quant_mode_name(q.mode), q.bits, q.group_size, (long long)N, (long long)K, (long long)M, fs[j].norm, mlxn_dtype_name(fs[j].nw),
                     fs[j].off, fs[j].res, fs[j].in_place ? " in place" : "", (int)fs[j].glu);
            if (ran(b, "quantized_matmul_fused", mlxn_quantized_matmul_fused(b->cs, &x.c, &m.wq.c, &m.sc.c, bic, &q, &fc, &dst->c),
                    mlxn_quantized_matmul_fused(b->ds, &x.g, &m.wq.g, &m.sc.g, big, &q, &fg, &dst->g)))
                cmp_f32(b, label, dst, qmv_bound(&q, ws[i].sdt));
        }
        reset(b);
    }
}

/* The rope_kv epilogue of the fused op (a decode step's q/k/v product, its
 * rope and its cache writes): against the CPU (the products within
 * rounding; f32 caches compared whole, the rows not written included), and
 * on the device against the parts run apart there (MLXN_CUDA_FUSE=0: the
 * plain product, then rope_kv_write): bit for bit without a norm (each row's
 * sum is the same wherever its tile puts it), and with one within the
 * norm's rounding. Head dim 48 has 3 tiles per head; traditional pairs and
 * rotary dims short of the head run apart anyway; every other affine width
 * and group size, mxfp4 and nvfp4 weights take the epilogue too. */
static void case_qmatmul_rope_kv(bk *b) {
    const mlxn_dtype BF = MLXN_DTYPE_BF16, F16 = MLXN_DTYPE_F16, F32 = MLXN_DTYPE_F32;
    const mlxn_quant_mode AF = MLXN_QUANT_AFFINE;
    const struct {
        int64_t Hq, Hk, D, K;
        int bits, group;
        mlxn_dtype sdt, cdt;
        int norm, freqs, trad, short_dims;
        mlxn_quant_mode mode;
    } cs[] = {
        {4, 2, 64, 512, 4, 64, BF, F32, 1, 0, 0, 0, AF},  {3, 1, 128, 256, 4, 128, F16, F32, 0, 1, 0, 0, AF},
        {2, 1, 48, 384, 4, 64, BF, BF, 0, 0, 0, 0, AF},   {2, 1, 64, 256, 4, 64, BF, F16, 1, 1, 0, 0, AF},
        {2, 2, 64, 256, 4, 64, BF, F32, 0, 0, 1, 0, AF},  {2, 2, 64, 256, 4, 64, BF, F32, 0, 0, 0, 1, AF},
        {2, 1, 64, 256, 8, 64, BF, F32, 1, 0, 0, 0, AF},  {4, 2, 64, 1024, 4, 64, BF, F32, 1, 0, 0, 0, AF},
        {2, 1, 64, 384, 3, 64, BF, BF, 0, 1, 0, 0, AF},   {3, 1, 128, 512, 6, 128, F16, F32, 1, 0, 0, 0, AF},
        {4, 2, 64, 512, 4, 32, F32, BF, 1, 0, 0, 0, MLXN_QUANT_MXFP4}, {2, 1, 64, 384, 4, 16, F32, F32, 0, 1, 0, 0, MLXN_QUANT_NVFP4},
        {3, 1, 128, 512, 4, 32, BF, F32, 1, 0, 0, 0, AF}, {2, 1, 64, 256, 2, 32, F16, F32, 1, 0, 0, 0, AF},
        {2, 1, 64, 384, 5, 64, BF, BF, 0, 1, 0, 0, AF},   {3, 1, 128, 512, 8, 32, BF, F32, 1, 0, 0, 0, AF},
        {2, 2, 64, 256, 3, 32, F16, F32, 0, 0, 0, 0, AF}, {2, 1, 128, 256, 6, 32, BF, F32, 1, 0, 0, 0, AF},
        {2, 1, 64, 512, 4, 32, F32, BF, 1, 0, 0, 0, AF},  {2, 1, 64, 256, 5, 32, F32, F32, 0, 1, 0, 0, AF},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        const int64_t Hq = cs[i].Hq, Hk = cs[i].Hk, D = cs[i].D, K = cs[i].K, N = (Hq + 2 * Hk) * D, cap = 9;
        mlxn_quant_params q = {.mode = cs[i].mode, .bits = cs[i].bits, .group_size = cs[i].group};
        qm m = quantized(b, &q, cs[i].sdt, N, K);
        const mlxn_tensor *bic = m.has_bi ? &m.bi.c : NULL, *big = m.has_bi ? &m.bi.g : NULL;
        /* (f32 scales: an f32 norm weight too, as a GGUF import has) */
        const mlxn_dtype nwdt = cs[i].sdt == F32 && cs[i].mode == AF ? F32 : BF;
        tp x = tp_rand(b, F32, 2, SHAPE(1, K), 2, CONTIG), nw = tp_rand(b, nwdt, 1, SHAPE(K), 0.5f, CONTIG);
        const int32_t slot_v = 5, pos_v = 37;
        tp slot = tp_make(b, MLXN_DTYPE_I32, 1, SHAPE(1), &slot_v, CONTIG), pos = tp_make(b, MLXN_DTYPE_I32, 1, SHAPE(1), &pos_v, CONTIG);
        float *fr = hmem(b, (size_t)(D / 2) * sizeof(float));
        for (int64_t k = 0; k < D / 2; k++) fr[k] = 1.0f + 0.7f * (float)(k * k);
        tp freqs = tp_make(b, F32, 1, SHAPE(D / 2), fr, CONTIG);
        const int64_t csh[3] = {Hk, cap, D};
        void *kimg = rnd(b, cs[i].cdt, Hk * cap * D, 1), *vimg = rnd(b, cs[i].cdt, Hk * cap * D, 1);
        /* run 0 against the CPU; runs 1 (fused) and 2 (apart) on the device only */
        tp kc[3], vc[3], qo[3], o[3];
        for (int r = 0; r < 3; r++) {
            kc[r] = tp_make(b, cs[i].cdt, 3, csh, kimg, CONTIG), vc[r] = tp_make(b, cs[i].cdt, 3, csh, vimg, CONTIG);
            qo[r] = tp_out(b, F32, 3, SHAPE(Hq, 1, D)), o[r] = tp_out(b, F32, 2, SHAPE(1, N));
        }
        tp xs = tp_out(b, F32, 1, SHAPE(K));
        mlxn_rope_params pc = {.dims = (int)(cs[i].short_dims ? D / 2 : D), .traditional = cs[i].trad, .base = 10000.0f,
                               .scale = 1.0f, .offset_tensor = &pos.c, .freqs = cs[i].freqs ? &freqs.c : NULL};
        mlxn_rope_params pg = pc;
        pg.offset_tensor = &pos.g, pg.freqs = cs[i].freqs ? &freqs.g : NULL;
        mlxn_qmm_rope_kv rc = {.q_heads = Hq, .kv_heads = Hk, .rope = &pc, .slot = &slot.c, .q_out = &qo[0].c,
                               .k_dst = &kc[0].c, .v_dst = &vc[0].c};
        mlxn_qmm_fusion fc = {.norm_w = cs[i].norm ? &nw.c : NULL, .norm_eps = 1e-5f, .x_scratch = &xs.c, .rope_kv = &rc};
        mlxn_qmm_fusion fg = fc;
        fg.norm_w = cs[i].norm ? &nw.g : NULL, fg.x_scratch = &xs.g;
        mlxn_qmm_rope_kv rg[3];
        char label[160];
        snprintf(label, sizeof label, "quantized_matmul_fused rope_kv %s %d-bit g%d Hq %lld Hk %lld D %lld norm %d (%s) freqs %d%s%s",
                 mlxn_quant_mode_name(q.mode), q.bits, q.group_size, (long long)Hq, (long long)Hk, (long long)D, cs[i].norm,
                 mlxn_dtype_name(nwdt), cs[i].freqs,
                 cs[i].trad ? " traditional" : "", cs[i].short_dims ? " dims D/2" : "");
        for (int r = 0; r < 3; r++) {
            rg[r] = (mlxn_qmm_rope_kv){.q_heads = Hq, .kv_heads = Hk, .rope = &pg, .slot = &slot.g, .q_out = &qo[r].g,
                                       .k_dst = &kc[r].g, .v_dst = &vc[r].g};
            fg.rope_kv = &rg[r];
            if (r == 2) { /* the parts apart on the device */
                setenv("MLXN_CUDA_FUSE", "0", 1);
                env_stream(b);
            }
            mlxn_status sc = r ? MLXN_OK : mlxn_quantized_matmul_fused(b->cs, &x.c, &m.wq.c, &m.sc.c, bic, &q, &fc, &o[0].c);
            mlxn_status sd = mlxn_quantized_matmul_fused(b->ds, &x.g, &m.wq.g, &m.sc.g, big, &q, &fg, &o[r].g);
            if (r == 2) {
                CHECK(!mlxn_quantized_matmul_fuses(b->ds, &m.wq.g, &m.sc.g, big, &q, 1), "%s: MLXN_CUDA_FUSE=0 still fuses", b->name);
                mlxn_stream_sync(b->ds);
                unsetenv("MLXN_CUDA_FUSE");
                /* back on a stream with the caller's switches (MLXN_CUDA_QMV_T2 ...), so the next case's
                   fused products run under them too, as its apart ones do (the default stream has none:
                   fused and apart then ran different launches after the first case) */
                env_stream(b);
            }
            if (!ran(b, "quantized_matmul_fused", sc, sd)) break;
        }
        const double bound = qmv_bound(&q, cs[i].sdt);
        cmp_f32(b, label, &o[0], bound);
        snprintf(label + strlen(label), sizeof label - strlen(label), " (q_out)");
        cmp_f32(b, label, &qo[0], bound);
        for (int k = 0; k < 2; k++) { /* the caches, 16-bit ones as f32 (a product's last bit may round apart) */
            const tp *t = k ? &vc[0] : &kc[0];
            size_t n = (size_t)mlxn_tensor_numel(&t->c);
            const void *hc = bytes_of(b, &t->c), *hg = bytes_of(b, &t->g);
            float *hcf = hmem(b, n * sizeof(float)), *hgf = hmem(b, n * sizeof(float));
            for (size_t e = 0; e < n; e++) {
                if (cs[i].cdt == F32) hcf[e] = ((const float *)hc)[e], hgf[e] = ((const float *)hg)[e];
                else if (cs[i].cdt == BF) hcf[e] = mlxn_bf16_to_f32(((const uint16_t *)hc)[e]), hgf[e] = mlxn_bf16_to_f32(((const uint16_t *)hg)[e]);
                else hcf[e] = mlxn_f16_to_f32(((const uint16_t *)hc)[e]), hgf[e] = mlxn_f16_to_f32(((const uint16_t *)hg)[e]);
            }
            double e = t_nmse(hcf, hgf, n), thr = cs[i].cdt == F32 ? bound : 1e-5;
            CHECK(e <= thr, "%s: %s: the %s cache vs cpu: nmse %.3g > %.0g", label, b->name, k ? "v" : "k", e, thr);
        }
        /* fused against apart on the device */
        const tp *pair[4][2] = {{&o[1], &o[2]}, {&qo[1], &qo[2]}, {&kc[1], &kc[2]}, {&vc[1], &vc[2]}};
        static const char *what[4] = {"product", "q_out", "k cache", "v cache"};
        for (int k = 0; k < 4; k++) {
            size_t n = mlxn_buffer_size(pair[k][0]->g.buf);
            const unsigned char *f = bytes_of(b, &pair[k][0]->g), *a = bytes_of(b, &pair[k][1]->g);
            if (!cs[i].norm) {
                CHECK(memcmp(f, a, n) == 0, "%s: %s: the %s differs fused and apart on the device", label, b->name, what[k]);
            } else if (pair[k][0]->g.dtype == F32) {
                /* 1e-9, not the CPU comparisons' 1e-10: both sides carry their own f32 rounding of
                 * s * (C - 128 sum x) (C ~ 128 |x| per code, cancelling), on differently scaled x;
                 * seed 1795756890020694861 gave 1.3e-10 between them, a wrong norm scale gives > 1e-6 */
                double e = t_nmse((const float *)a, (const float *)f, n / 4);
                CHECK(e <= 1e-9, "%s: %s: the %s fused vs apart on the device: nmse %.3g", label, b->name, what[k], e);
            }
        }
        if (i == 0) { /* a slot past the caches: an error at the sync, and the caches untouched */
            const int32_t bad = (int32_t)cap;
            CHECK_OK(mlxn_buffer_write(slot.g.buf, 0, &bad, sizeof bad));
            size_t n = mlxn_buffer_size(kc[1].g.buf);
            const void *before = bytes_of(b, &kc[1].g);
            fg.rope_kv = &rg[1];
            CHECK_OK(mlxn_quantized_matmul_fused(b->ds, &x.g, &m.wq.g, &m.sc.g, &m.bi.g, &q, &fg, &o[1].g));
            mlxn_status st = mlxn_stream_sync(b->ds);
            CHECK(st != MLXN_OK && strstr(mlxn_last_error(), "slot"), "%s: %s: a slot past the cache: %s (%s)", label,
                  b->name, mlxn_status_str(st), mlxn_last_error());
            CHECK(memcmp(before, bytes_of(b, &kc[1].g), n) == 0, "%s: %s: a slot past the cache wrote the k cache", label,
                  b->name);
        }
        reset(b);
    }
    default_stream(b);
}

/* The TILED16 layout (mlxn/quant.h): a matrix tiled in place on the
 * device (mlxn_quantized_tile) holds exactly the host reorder's bytes
 * (mlxn_quant_tile), and every op that takes it gives the CPU's results on
 * the row layout: the mat-vec at 1..15 x rows (the tensor-core kernels, 8
 * rows at a time), the mat-mat from 16 rows (dequantized slabs), the
 * untransposed product, the fused norm / residual / gated / rope_kv
 * epilogues, and the gather (bit for bit). Tile counts that no launch
 * fills evenly (19 tiles), both group sizes and 16-bit scale dtypes; a
 * matrix that cannot be tiled is refused with nothing changed, and
 * MLXN_CUDA_TILED=0 or MLXN_CUDA_QMV_MMA=0 declines. */
static void case_qmatmul_tiled(bk *b) {
    const struct { int64_t N, K; int group; mlxn_dtype sdt; } ws[] = {
        {304, 256, 64, MLXN_DTYPE_BF16}, {1024, 2048, 128, MLXN_DTYPE_F16}, {2048, 1152, 64, MLXN_DTYPE_BF16}};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        const int64_t N = ws[i].N, K = ws[i].K, ng = K / ws[i].group;
        mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = 4, .group_size = ws[i].group};
        qm m = quantized(b, &q, ws[i].sdt, N, K);
        mlxn_status st = mlxn_quantized_tile(b->ds, &m.wq.g, &m.sc.g, &m.bi.g, &q);
        if (st == MLXN_ERR_NOT_IMPLEMENTED) {
            printf("  %s: no tiled layout (%s)\n", b->name, mlxn_last_error());
            reset(b);
            return;
        }
        CHECK_OK(st);
        CHECK_OK(mlxn_stream_sync(b->ds));
        mlxn_quant_params qt = q;
        qt.layout = MLXN_QUANT_TILED16;
        char label[160];
        snprintf(label, sizeof label, "tiled %lldx%lld g%d %s", (long long)N, (long long)K, q.group_size,
                 mlxn_dtype_name(ws[i].sdt));
        { /* the device's bytes are the host reorder's */
            const size_t es = mlxn_dtype_size(ws[i].sdt);
            uint32_t *wt = hmem(b, (size_t)(N * K / 8) * 4);
            void *stt = hmem(b, (size_t)(N * ng) * es), *btt = hmem(b, (size_t)(N * ng) * es);
            CHECK_OK(mlxn_quant_tile(&q, ws[i].sdt, bytes_of(b, &m.wq.c), bytes_of(b, &m.sc.c), bytes_of(b, &m.bi.c), N, K,
                                     0, wt, stt, btt));
            CHECK(!memcmp(wt, bytes_of(b, &m.wq.g), (size_t)(N * K / 8) * 4), "%s: %s: tiled codes differ from the host's",
                  label, b->name);
            CHECK(!memcmp(stt, bytes_of(b, &m.sc.g), (size_t)(N * ng) * es) &&
                      !memcmp(btt, bytes_of(b, &m.bi.g), (size_t)(N * ng) * es),
                  "%s: %s: tiled scales or biases differ from the host's", label, b->name);
        }
        /* products: x [n, K] -> [n, N] (and untransposed x [n, N] -> [n, K]) */
        const int64_t ns[8] = {1, 2, 3, 5, 8, 13, 16, 40};
        for (int k = 0; k < 8; k++) {
            for (int t = 1; t >= 0; t--) {
                if (!t && k % 3) continue; /* untransposed at a few row counts */
                const int64_t n = ns[k], in = t ? K : N, on = t ? N : K;
                tp x = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(n, in), 1, CONTIG), o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(n, on));
                char l2[320];
                snprintf(l2, sizeof l2, "%s quantized_matmul t=%d n=%lld", label, t, (long long)n);
                if (ran(b, "quantized_matmul tiled", mlxn_quantized_matmul(b->cs, &x.c, &m.wq.c, &m.sc.c, &m.bi.c, &q, t, &o.c),
                        mlxn_quantized_matmul(b->ds, &x.g, &m.wq.g, &m.sc.g, &m.bi.g, &qt, t, &o.g)))
                    /* the mat-mat path (16 rows and up, and untransposed) rounds W and x to bf16: case_qmm's bound */
                    cmp_f32(b, l2, &o, t && n < 16 ? qmv_bound(&q, ws[i].sdt) : 3e-5);
            }
        }
        { /* the fused epilogues, one row: norm + residual in place, and norm + gated activation */
            tp x = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(1, K), 2, CONTIG), nw = tp_rand(b, MLXN_DTYPE_BF16, 1, SHAPE(K), 0.5f, CONTIG);
            tp r = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(1, N), 1, CONTIG), o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(1, N / 2));
            tp xs = tp_out(b, MLXN_DTYPE_F32, 1, SHAPE(K)), ys = tp_out(b, MLXN_DTYPE_F32, 1, SHAPE(N));
            CHECK(mlxn_quantized_matmul_fuses(b->ds, &m.wq.g, &m.sc.g, &m.bi.g, &qt, 1), "%s: %s: a tiled matrix does not fuse",
                  label, b->name);
            for (int glu = 0; glu < 2; glu++) {
                mlxn_qmm_fusion fc = {.norm_w = &nw.c, .norm_eps = 1e-5f, .residual = glu ? NULL : &r.c,
                                      .glu = glu ? MLXN_GLU_SWIGLU : MLXN_GLU_NONE, .x_scratch = &xs.c, .y_scratch = &ys.c};
                mlxn_qmm_fusion fg = fc;
                fg.norm_w = &nw.g, fg.residual = glu ? NULL : &r.g, fg.x_scratch = &xs.g, fg.y_scratch = &ys.g;
                tp *dst = glu ? &o : &r;
                char l2[320];
                snprintf(l2, sizeof l2, "%s quantized_matmul_fused %s", label, glu ? "norm + swiglu" : "norm + residual in place");
                if (ran(b, "quantized_matmul_fused tiled", mlxn_quantized_matmul_fused(b->cs, &x.c, &m.wq.c, &m.sc.c, &m.bi.c, &q, &fc, &dst->c),
                        mlxn_quantized_matmul_fused(b->ds, &x.g, &m.wq.g, &m.sc.g, &m.bi.g, &qt, &fg, &dst->g)))
                    cmp_f32(b, l2, dst, qmv_bound(&q, ws[i].sdt));
            }
        }
        if (N % 64 == 0) { /* rope_kv: heads of 64 (rows N = (Hq + 2 Hk) 64 with Hk = N / 256) */
            const int64_t D = 64, Hk = N / 256 > 0 ? N / 256 : 1, Hq = N / D - 2 * Hk, cap = 7;
            tp x = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(1, K), 2, CONTIG);
            const int32_t slot_v = 3, pos_v = 21;
            tp slot = tp_make(b, MLXN_DTYPE_I32, 1, SHAPE(1), &slot_v, CONTIG), pos = tp_make(b, MLXN_DTYPE_I32, 1, SHAPE(1), &pos_v, CONTIG);
            void *kimg = rnd(b, MLXN_DTYPE_F32, Hk * cap * D, 1), *vimg = rnd(b, MLXN_DTYPE_F32, Hk * cap * D, 1);
            tp kc = tp_make(b, MLXN_DTYPE_F32, 3, SHAPE(Hk, cap, D), kimg, CONTIG), vc = tp_make(b, MLXN_DTYPE_F32, 3, SHAPE(Hk, cap, D), vimg, CONTIG);
            tp qo = tp_out(b, MLXN_DTYPE_F32, 3, SHAPE(Hq, 1, D)), o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(1, N));
            mlxn_rope_params pc = {.dims = (int)D, .base = 10000.0f, .scale = 1.0f, .offset_tensor = &pos.c};
            mlxn_rope_params pg = pc;
            pg.offset_tensor = &pos.g;
            mlxn_qmm_rope_kv rc = {.q_heads = Hq, .kv_heads = Hk, .rope = &pc, .slot = &slot.c, .q_out = &qo.c, .k_dst = &kc.c, .v_dst = &vc.c};
            mlxn_qmm_rope_kv rg = {.q_heads = Hq, .kv_heads = Hk, .rope = &pg, .slot = &slot.g, .q_out = &qo.g, .k_dst = &kc.g, .v_dst = &vc.g};
            mlxn_qmm_fusion fc = {.rope_kv = &rc}, fg = {.rope_kv = &rg};
            char l2[320];
            snprintf(l2, sizeof l2, "%s quantized_matmul_fused rope_kv Hq %lld Hk %lld", label, (long long)Hq, (long long)Hk);
            if (ran(b, "quantized_matmul_fused tiled", mlxn_quantized_matmul_fused(b->cs, &x.c, &m.wq.c, &m.sc.c, &m.bi.c, &q, &fc, &o.c),
                    mlxn_quantized_matmul_fused(b->ds, &x.g, &m.wq.g, &m.sc.g, &m.bi.g, &qt, &fg, &o.g))) {
                cmp_f32(b, l2, &o, qmv_bound(&q, ws[i].sdt));
                cmp_f32(b, l2, &qo, qmv_bound(&q, ws[i].sdt));
                cmp_f32(b, l2, &kc, qmv_bound(&q, ws[i].sdt));
                cmp_f32(b, l2, &vc, qmv_bound(&q, ws[i].sdt));
            }
        }
        { /* the gather: bit for bit */
            tp ids = ids_of(b, MLXN_DTYPE_I32, 9, N), o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(9, K));
            if (ran(b, "quantized_embedding tiled", mlxn_quantized_embedding(b->cs, &ids.c, &m.wq.c, &m.sc.c, &m.bi.c, &q, &o.c),
                    mlxn_quantized_embedding(b->ds, &ids.g, &m.wq.g, &m.sc.g, &m.bi.g, &qt, &o.g)))
                cmp_exact(b, "quantized_embedding tiled", &o);
        }
        /* tiled twice, and the CPU, refuse */
        CHECK_FAILS(mlxn_quantized_tile(b->ds, &m.wq.g, &m.sc.g, &m.bi.g, &qt), MLXN_ERR_INVALID_ARGUMENT);
        CHECK_FAILS(mlxn_quantized_tile(b->cs, &m.wq.c, &m.sc.c, &m.bi.c, &q), MLXN_ERR_NOT_IMPLEMENTED);
        reset(b);
    }
    { /* not tileable (30 rows; 8 bits; f32 scales): refused, nothing changed */
        const struct { int64_t N, K; int bits; mlxn_dtype sdt; } bad[3] = {
            {30, 256, 4, MLXN_DTYPE_BF16}, {32, 256, 8, MLXN_DTYPE_BF16}, {32, 256, 4, MLXN_DTYPE_F32}};
        for (int i = 0; i < 3; i++) {
            mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = bad[i].bits, .group_size = 64};
            qm m = quantized(b, &q, bad[i].sdt, bad[i].N, bad[i].K);
            const size_t n = mlxn_buffer_size(m.wq.g.buf);
            const void *before = bytes_of(b, &m.wq.g);
            CHECK_FAILS(mlxn_quantized_tile(b->ds, &m.wq.g, &m.sc.g, &m.bi.g, &q), MLXN_ERR_NOT_IMPLEMENTED);
            CHECK(!memcmp(before, bytes_of(b, &m.wq.g), n), "%s: a refused tiling changed the codes", b->name);
            reset(b);
        }
    }
    /* MLXN_CUDA_TILED=0, and MLXN_CUDA_QMV_MMA=0 (the layout's mat-vec readers off): declined */
    static const char *const off[2][2] = {{"MLXN_CUDA_TILED", "MLXN_CUDA_TILED"}, {"MLXN_CUDA_QMV_MMA", "MLXN_CUDA_QMV_MMA=0"}};
    for (int i = 0; i < 2; i++) {
        mlxn_quant_params q = {.mode = MLXN_QUANT_AFFINE, .bits = 4, .group_size = 64};
        setenv(off[i][0], "0", 1);
        env_stream(b);
        qm m = quantized(b, &q, MLXN_DTYPE_BF16, 32, 256);
        CHECK_FAILS(mlxn_quantized_tile(b->ds, &m.wq.g, &m.sc.g, &m.bi.g, &q), MLXN_ERR_NOT_IMPLEMENTED);
        CHECK(strstr(mlxn_last_error(), off[i][1]) != NULL, "%s: %s=0 message: %s", b->name, off[i][0], mlxn_last_error());
        unsetenv(off[i][0]);
        default_stream(b);
        reset(b);
    }
}

/* Many x rows (prefill): the CUDA backend dequantizes W to bf16 and rounds x
 * to bf16 for a tensor-core GEMM, so the threshold is bf16's (relative
 * 2^-9 per operand: NMSE ~3e-6 on these inputs), far under what a wrong
 * weight, scale or row gives (> 1e-3). Every mode and width, both
 * transposes, an odd N (transpose) or K (not), x rows n = 16 .. 512, a
 * gappy x (gathered); then once more with slabs of a few hundred weights
 * (MLXN_CUDA_QMM_SLAB_ELEMS), which splits W over several dequantize +
 * GEMM rounds, and with the mat-mat path forced down to 3 rows. */
static void case_qmm(bk *b) {
    const struct { mlxn_quant_mode mode; int bits, group; mlxn_dtype sdt; float gs; } qs[] = {
        {MLXN_QUANT_AFFINE, 4, 64, MLXN_DTYPE_BF16, 0}, {MLXN_QUANT_AFFINE, 4, 32, MLXN_DTYPE_F16, 0},
        {MLXN_QUANT_AFFINE, 4, 128, MLXN_DTYPE_F32, 0}, {MLXN_QUANT_AFFINE, 1, 64, MLXN_DTYPE_BF16, 0},
        {MLXN_QUANT_AFFINE, 2, 64, MLXN_DTYPE_BF16, 0}, {MLXN_QUANT_AFFINE, 3, 64, MLXN_DTYPE_BF16, 0},
        {MLXN_QUANT_AFFINE, 5, 32, MLXN_DTYPE_BF16, 0}, {MLXN_QUANT_AFFINE, 6, 64, MLXN_DTYPE_F16, 0},
        {MLXN_QUANT_AFFINE, 8, 128, MLXN_DTYPE_BF16, 0}, {MLXN_QUANT_MXFP4, 4, 32, MLXN_DTYPE_U8, 0},
        {MLXN_QUANT_MXFP8, 8, 32, MLXN_DTYPE_U8, 0},    {MLXN_QUANT_NVFP4, 4, 16, MLXN_DTYPE_U8, 2.5f},
    };
    const double thr = 3e-5;
    const char *envs[3][2] = {{NULL, NULL}, {"300", NULL}, {"1000", "3"}}; /* slab weights, min rows */
    for (int pass = 0; pass < 3; pass++) {
        if (envs[pass][0]) setenv("MLXN_CUDA_QMM_SLAB_ELEMS", envs[pass][0], 1);
        if (envs[pass][1]) setenv("MLXN_CUDA_QMM_MIN_ROWS", envs[pass][1], 1);
        if (pass) env_stream(b);
        for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
            if (pass && i % 4) continue; /* the extra passes: 3 of the kinds */
            mlxn_quant_params q = {.mode = qs[i].mode, .bits = qs[i].bits, .group_size = qs[i].group,
                                   .global_scale = qs[i].gs};
            mlxn_dtype sdt = qs[i].sdt == MLXN_DTYPE_U8 ? MLXN_DTYPE_F32 : qs[i].sdt;
            for (int t = 0; t < 2; t++) {
                /* quantized [R, C], C a multiple of the group; transpose: K = C, N = R (odd); else K = R (odd), N = C */
                int64_t R = t ? 131 : 97, C = (int64_t)q.group_size * (q.group_size >= 64 ? 5 : 13);
                qm m = quantized(b, &q, sdt, R, C);
                const int64_t nxs[5] = {16, 33, 100, 512, 3};
                for (int k = 0; k < (pass == 2 ? 5 : 4); k++) {
                    int64_t n = nxs[k], K = t ? C : R, N = t ? R : C;
                    tp x = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(n, K), 1, k == 1 ? GAPPY : CONTIG);
                    tp o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(n, N));
                    char label[128];
                    snprintf(label, sizeof label, "quantized_matmul (mat-mat) %s %d-bit g%d t=%d n=%lld pass %d",
                             mlxn_quant_mode_name(q.mode), q.bits, q.group_size, t, (long long)n, pass);
                    if (ran(b, "quantized_matmul (mat-mat)",
                            mlxn_quantized_matmul(b->cs, &x.c, &m.wq.c, &m.sc.c, m.has_bi ? &m.bi.c : NULL, &q, t, &o.c),
                            mlxn_quantized_matmul(b->ds, &x.g, &m.wq.g, &m.sc.g, m.has_bi ? &m.bi.g : NULL, &q, t, &o.g)))
                        cmp_f32(b, label, &o, thr);
                }
                reset(b);
            }
        }
    }
    unsetenv("MLXN_CUDA_QMM_SLAB_ELEMS");
    unsetenv("MLXN_CUDA_QMM_MIN_ROWS");
    default_stream(b);
}

static void case_matmul(bk *b) {
    const mlxn_dtype dts[3] = {MLXN_DTYPE_F32, MLXN_DTYPE_F16, MLXN_DTYPE_BF16};
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < 2; t++)
            for (int v = 0; v < 2; v++) {
                int64_t K = 77, N = 45;
                tp w = tp_rand(b, dts[i], 2, t ? SHAPE(N, K) : SHAPE(K, N), 0.2f, v ? TRANS : CONTIG);
                tp x = v ? tp_rand(b, MLXN_DTYPE_F32, 3, SHAPE(2, 5, K), 1, GAPPY) : tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(3, K), 1, CONTIG);
                tp o = v ? tp_out(b, MLXN_DTYPE_F32, 3, SHAPE(2, 5, N)) : tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(3, N));
                char label[64];
                snprintf(label, sizeof label, "matmul %s t=%d layout=%d", mlxn_dtype_name(dts[i]), t, v);
                /* bf16 W: the device rounds x to bf16 (see cu_matmul.cu) */
                if (ran(b, "matmul", mlxn_matmul(b->cs, &x.c, &w.c, t, &o.c), mlxn_matmul(b->ds, &x.g, &w.g, t, &o.g)))
                    cmp_f32(b, label, &o, dts[i] == MLXN_DTYPE_BF16 ? 1e-4 : 1e-10);
            }
    reset(b);
}

/* ---- attention ----------------------------------------------------------- */

static void case_sdpa(bk *b) {
    struct { int64_t B, Hq, Hkv, Tq, Tk, D, Dv; mlxn_dtype dt; bool causal; int window; float softcap;
             int mask; /* 0 none, 1 bool [Tq, Tk], 2 f32 [B, 1, Tq, Tk] */
             int sinks, qlayout;
             int kvl; /* 0: no kv_len; else kv_len = kvl (K/V rows past it are NaN) */ } cs[] = {
        {1, 8, 2, 1, 37, 64, 64, MLXN_DTYPE_F32, false, 0, 0, 0, 0, 0, 0},
        {2, 4, 4, 19, 19, 80, 48, MLXN_DTYPE_BF16, true, 0, 0, 0, 0, 0, 0},
        {1, 4, 2, 5, 23, 128, 128, MLXN_DTYPE_F16, true, 7, 30.0f, 0, 0, 0, 0},
        {1, 4, 4, 9, 33, 64, 64, MLXN_DTYPE_F32, false, 0, 0, 1, 1, 0, 0},
        {2, 6, 2, 7, 41, 256, 256, MLXN_DTYPE_BF16, true, 0, 0, 2, 0, 1, 0},
        {1, 2, 1, 3, 17, 512, 512, MLXN_DTYPE_F32, false, 0, 0, 0, 1, 0, 0},
        {1, 8, 2, 1, 300, 128, 128, MLXN_DTYPE_BF16, true, 0, 0, 0, 0, 0, 201},
        {1, 4, 2, 6, 64, 64, 64, MLXN_DTYPE_F16, true, 9, 20.0f, 0, 1, 0, 40},
        {2, 4, 2, 3, 33, 32, 32, MLXN_DTYPE_F32, false, 0, 0, 2, 0, 0, 12},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        int64_t B = cs[i].B, Hq = cs[i].Hq, Hkv = cs[i].Hkv, Tq = cs[i].Tq, Tk = cs[i].Tk, D = cs[i].D, Dv = cs[i].Dv;
        tp q;
        if (cs[i].qlayout) { /* stored [B, Tq, Hq, D], viewed [B, Hq, Tq, D] */
            int64_t st[4] = {Tq * Hq * D, D, Hq * D, 1};
            q = tp_strided(b, cs[i].dt, 4, SHAPE(B, Hq, Tq, D), st, rnd(b, cs[i].dt, B * Hq * Tq * D, 1));
        } else {
            q = tp_rand(b, cs[i].dt, 4, SHAPE(B, Hq, Tq, D), 1, CONTIG);
        }
        void *kd = rnd(b, cs[i].dt, B * Hkv * Tk * D, 1), *vd = rnd(b, cs[i].dt, B * Hkv * Tk * Dv, 1);
        const size_t es = mlxn_dtype_size(cs[i].dt);
        for (int64_t r = 0; cs[i].kvl && r < B * Hkv * Tk; r++)
            if (r % Tk >= cs[i].kvl) { /* capacity past kv_len: NaN, so reading it shows */
                memset((char *)kd + r * D * (int64_t)es, 0xFF, (size_t)D * es);
                memset((char *)vd + r * Dv * (int64_t)es, 0xFF, (size_t)Dv * es);
            }
        tp k = tp_make(b, cs[i].dt, 4, SHAPE(B, Hkv, Tk, D), kd, CONTIG), v = tp_make(b, cs[i].dt, 4, SHAPE(B, Hkv, Tk, Dv), vd, CONTIG);
        tp o = tp_out(b, MLXN_DTYPE_F32, 4, SHAPE(B, Hq, Tq, Dv));
        mlxn_sdpa_params pc = {.scale = 1.0f / sqrtf((float)D), .causal = cs[i].causal, .window = cs[i].window,
                               .softcap = cs[i].softcap};
        mlxn_sdpa_params pg = pc;
        tp m, sk;
        memset(&m, 0, sizeof m);
        memset(&sk, 0, sizeof sk);
        if (cs[i].mask == 1) {
            uint8_t *mb = hmem(b, (size_t)(Tq * Tk));
            for (int64_t j = 0; j < Tq * Tk; j++) mb[j] = (t_rand_u64() % 4) != 0;
            for (int64_t j = 0; j < Tk; j++) mb[2 * Tk + j] = 0; /* row 2 sees nothing */
            m = tp_make(b, MLXN_DTYPE_BOOL, 2, SHAPE(Tq, Tk), mb, CONTIG);
            pc.mask = &m.c, pg.mask = &m.g;
        } else if (cs[i].mask == 2) {
            float *mf = rnd(b, MLXN_DTYPE_F32, B * Tq * Tk, 1);
            for (int64_t j = 0; j < B * Tq * Tk; j += 5) mf[j] = -INFINITY;
            m = tp_make(b, MLXN_DTYPE_F32, 4, SHAPE(B, 1, Tq, Tk), mf, CONTIG);
            pc.mask = &m.c, pg.mask = &m.g;
        }
        if (cs[i].sinks) {
            sk = tp_rand(b, MLXN_DTYPE_F32, 1, SHAPE(Hq), 1, CONTIG);
            pc.sinks = &sk.c, pg.sinks = &sk.g;
        }
        tp kl;
        if (cs[i].kvl) {
            int32_t n = cs[i].kvl;
            kl = tp_make(b, MLXN_DTYPE_I32, 1, SHAPE(1), &n, CONTIG);
            pc.kv_len = &kl.c, pg.kv_len = &kl.g;
        }
        char label[64];
        snprintf(label, sizeof label, "sdpa case %zu", i);
        if (ran(b, "sdpa", mlxn_sdpa(b->cs, &q.c, &k.c, &v.c, &pc, &o.c), mlxn_sdpa(b->ds, &q.g, &k.g, &v.g, &pg, &o.g))) {
            /* bf16/f16 K/V of head dim 64/128/256 without mask or sinks run on
             * the tensor cores with q and the weights rounded to the K/V type
             * (test_backend_attn covers that path); everything else is exact f32 */
            int mma = cs[i].dt != MLXN_DTYPE_F32 && D == Dv && (D == 64 || D == 128 || D == 256) &&
                      !cs[i].mask && !cs[i].sinks;
            cmp_f32(b, label, &o, !mma ? 1e-10 : cs[i].dt == MLXN_DTYPE_BF16 ? 2e-4 : 2e-5);
        }
        reset(b);
    }
}

/* ---- bad arguments on the device ----------------------------------------- */

static void case_bad(bk *b) {
    tp x = tp_rand(b, MLXN_DTYPE_F32, 2, SHAPE(2, 8), 1, CONTIG), o = tp_out(b, MLXN_DTYPE_F32, 2, SHAPE(2, 8));
    CHECK_FAILS(mlxn_silu(b->ds, &x.c, &o.g), MLXN_ERR_INVALID_ARGUMENT); /* a CPU tensor on the device stream */
    CHECK_FAILS(mlxn_copy(b->ds, &x.g, &x.g), MLXN_ERR_INVALID_ARGUMENT);    /* dst overlaps src */
    tp ids = ids_of(b, MLXN_DTYPE_I32, 3, 5), oi = tp_out(b, MLXN_DTYPE_F32, 1, SHAPE(3));
    CHECK_FAILS(mlxn_silu(b->ds, &ids.g, &oi.g), MLXN_ERR_DTYPE);
    reset(b);
}

static void run_backend(bk *b) {
    printf("backend %s: %s vs %s\n", b->name, mlxn_device_name(b->dev), mlxn_device_name(b->cpu));
    case_add_scale_copy(b);
    case_activations(b);
    case_softmax_argmax(b);
    case_norms(b);
    case_rope(b);
    case_hadamard(b);
    case_embedding(b);
    case_qmatmul(b);
    case_qmatmul_fused(b);
    case_qmatmul_rope_kv(b);
    case_qmatmul_tiled(b);
    /* again with the one-row mat-vec in blocks of two row tiles on every shape (cu_qmv_mma.cu; by
     * default only products with at least 6 row tiles per SM take them): odd tile counts leave a
     * block's second tile past the rows */
    for (int v = 1; v <= 3; v++) { /* the builds: 4 warps at 4 and 5 blocks per SM, 2 warps */
        printf("backend %s: the mat-vecs again with MLXN_CUDA_QMV_T2=%d\n", b->name, v);
        setenv("MLXN_CUDA_QMV_T2", v == 1 ? "1" : v == 2 ? "2" : "3", 1);
        env_stream(b);
        case_qmatmul_fused(b);
        case_qmatmul_tiled(b);
        case_qmatmul(b); /* makes its own stream (the switch is still set), ends on the default one */
        env_stream(b);
        case_qmatmul_rope_kv(b); /* ends on the default stream */
        unsetenv("MLXN_CUDA_QMV_T2");
        default_stream(b);
    }
    /* and on the 6-warp launch (by default only products with 2..3 row tiles per SM take it) */
    printf("backend %s: the mat-vecs again with MLXN_CUDA_QMV_MMA=7\n", b->name);
    setenv("MLXN_CUDA_QMV_MMA", "7", 1);
    env_stream(b);
    case_qmatmul_fused(b);
    case_qmatmul(b);
    env_stream(b);
    case_qmatmul_rope_kv(b);
    unsetenv("MLXN_CUDA_QMV_MMA");
    default_stream(b);
    /* and 3-, 6- and 8-bit one-row products on the f32 kernels, which still take them where K is not a
     * multiple of 128 */
    printf("backend %s: the mat-vecs again with MLXN_CUDA_QMV_BITS=0\n", b->name);
    setenv("MLXN_CUDA_QMV_BITS", "0", 1);
    case_qmatmul(b);
    unsetenv("MLXN_CUDA_QMV_BITS");
    default_stream(b);
    case_qmm(b);
    case_matmul(b);
    case_sdpa(b);
    case_bad(b);
    printf("backend %s: %d op(s) not built yet\n", b->name, b->n_not_built);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_backend_ops");
    const struct { const char *name; mlxn_device_kind kind; } kinds[] = {{"cuda", MLXN_DEVICE_CUDA}};
    int tested = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        mlxn_device_params p = {.kind = kinds[i].kind, .index = 0};
        bk b;
        memset(&b, 0, sizeof b);
        b.name = kinds[i].name;
        if (mlxn_device_new(&p, &b.dev) != MLXN_OK) {
            printf("%s: not available (%s)\n", kinds[i].name, mlxn_last_error());
            continue;
        }
        b.cpu = t_cpu_device_exact(0);
        b.cs = mlxn_device_stream(b.cpu);
        b.ds = mlxn_device_stream(b.dev);
        run_backend(&b);
        reset(&b);
        mlxn_device_free(b.cpu);
        mlxn_device_free(b.dev);
        tested++;
    }
    if (!tested) return t_skip("no CUDA device");
    return t_finish();
}
