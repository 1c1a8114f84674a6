/* The cases test_ops_kv_write2 (CPU) and test_backend_kv_write2 (CUDA) run
 * through mlxn_kv_write2: keys and values appended at one slot read from
 * device memory. Each case is a key pair and a value pair, each with its
 * own seeded random shape, source dtype (f32/bf16/f16) and layout
 * (contiguous [H, T, D]; transposed, stored [T, H, D] as the model's V;
 * a column range of wider rows, as the fused QKV output), cache dtype
 * (f32/bf16/f16: all nine key/value combinations) and cache layout
 * (contiguous, or rows padded with poisoned gaps), ranks 2 to 4, one step
 * (T = 1) or a chunk, and a case whose pairs have different T.
 *
 * Buffers are built from host images through mlxn_buffer_write, so one
 * code runs on any device; caches start poisoned (0xFF: NaN in every float
 * dtype) and are read back whole, so a write outside the slots fails the
 * byte comparison. kv2_run runs a case for a list of slots (a decode that
 * wraps around a ring when slot = position % cap) either fused or as two
 * mlxn_kv_write calls; kv2_ref is the scalar reference. */
#ifndef MLXN_TEST_KV_WRITE2_CASES_H
#define MLXN_TEST_KV_WRITE2_CASES_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

enum { KV2_MAXD = 4 };
enum { KV2_CONTIG = 0, KV2_TRANSPOSED, KV2_COLUMNS };  /* source layouts */
#define KV2_N_CASES 20

/* One pair: src [..., T, D] (strides into a buffer of sn elements from
 * element soff) into dst [..., cap, D] (strides, doff, dn likewise). */
typedef struct kv2_side {
    int nd;
    int64_t shape[KV2_MAXD];
    int64_t sst[KV2_MAXD], soff;
    size_t sn;
    mlxn_dtype sdt;
    int64_t cap;
    int64_t dst[KV2_MAXD], doff;
    size_t dn;
    mlxn_dtype ddt;
    int layout, padded;
} kv2_side;

typedef struct kv2_case {
    kv2_side p[2]; /* keys, values */
    char label[200];
} kv2_case;

static const mlxn_dtype kv2_dts[3] = {MLXN_DTYPE_F32, MLXN_DTYPE_BF16, MLXN_DTYPE_F16};

static inline int64_t kv2_rand(int64_t lo, int64_t hi) {
    return lo + (int64_t)(t_rand_u64() % (uint64_t)(hi - lo + 1));
}

/* Fill a side of rank nd (2: one head, no head axis; 4: a leading 1). */
static inline void kv2_side_make(kv2_side *s, int nd, int64_t H, int64_t T, int64_t D, int64_t cap, int layout,
                                 int padded, mlxn_dtype sdt, mlxn_dtype ddt) {
    memset(s, 0, sizeof *s);
    s->sdt = sdt, s->ddt = ddt, s->cap = cap, s->layout = layout, s->padded = padded;
    if (nd == 2) H = 1;
    int64_t sh[3] = {H, T, D}, ss[3], ds[3];
    if (layout == KV2_CONTIG) {
        ss[0] = T * D, ss[1] = D, ss[2] = 1;
        s->sn = (size_t)(H * T * D);
    } else if (layout == KV2_TRANSPOSED) {
        ss[0] = D, ss[1] = H * D, ss[2] = 1;
        s->sn = (size_t)(T * H * D);
    } else { /* heads [1, 1 + H) of rows of H + 2 heads */
        int64_t W = (H + 2) * D;
        ss[0] = D, ss[1] = W, ss[2] = 1;
        s->soff = D;
        s->sn = (size_t)(T * W);
    }
    if (padded) { /* rows D + 3 apart, heads 5 more, from element 2 */
        ds[2] = 1, ds[1] = D + 3, ds[0] = cap * (D + 3) + 5;
        s->doff = 2;
        s->dn = (size_t)(2 + H * ds[0]);
    } else {
        ds[2] = 1, ds[1] = D, ds[0] = cap * D;
        s->dn = (size_t)(H * cap * D);
    }
    int lead = nd == 4, skip = nd == 2; /* axes of the 3-D description used */
    s->nd = nd;
    if (lead) {
        s->shape[0] = 1, s->sst[0] = (int64_t)s->sn, s->dst[0] = (int64_t)s->dn;
    }
    for (int i = skip; i < 3; i++) {
        s->shape[i - skip + lead] = sh[i];
        s->sst[i - skip + lead] = ss[i];
        s->dst[i - skip + lead] = ds[i];
    }
}

static inline int64_t kv2_T(const kv2_side *s) { return s->shape[s->nd - 2]; }
static inline int64_t kv2_numel(const kv2_side *s) {
    int64_t n = 1;
    for (int i = 0; i < s->nd; i++) n *= s->shape[i];
    return n;
}
/* The largest slot both pairs fit (a pair with no elements fits any). */
static inline int64_t kv2_last_slot(const kv2_case *c) {
    int64_t a = c->p[0].cap - kv2_T(&c->p[0]), b = c->p[1].cap - kv2_T(&c->p[1]);
    if (!kv2_numel(&c->p[0])) return b;
    if (!kv2_numel(&c->p[1])) return a;
    return a < b ? a : b;
}

/* Case ci: cache dtypes over all nine pairs (twice: single steps, then
 * chunks), layouts and source dtypes rotating, rank 2 in case 5, rank 4 in
 * case 13, value rows differing from key rows in case 16, values with no
 * heads at all (an empty pair) in case 19. */
static inline kv2_case kv2_make(int ci) {
    kv2_case c;
    memset(&c, 0, sizeof c);
    int nd = ci == 5 ? 2 : ci == 13 ? 4 : 3;
    int64_t T = ci < 9 ? 1 : kv2_rand(2, 5), H = kv2_rand(1, 4), Dk = kv2_rand(1, 70) | 1;
    int64_t Dv = ci % 2 ? Dk : kv2_rand(1, 70), Hv = ci % 3 == 2 ? kv2_rand(1, 4) : H;
    int64_t Tv = ci == 16 ? T + 1 : T, cap = T + 1 + kv2_rand(0, 10), capv = ci % 4 == 3 ? cap + 2 : cap;
    if (ci == 19) Hv = 0;
    mlxn_dtype sk = ci % 4 == 3 ? MLXN_DTYPE_BF16 : MLXN_DTYPE_F32, sv = ci % 5 == 4 ? MLXN_DTYPE_F16 : MLXN_DTYPE_F32;
    kv2_side_make(&c.p[0], nd, H, T, Dk, cap, ci % 3, ci % 4 == 1, sk, kv2_dts[ci % 3]);
    kv2_side_make(&c.p[1], nd, Hv, Tv, Dv, capv, (ci + 1) % 3, ci % 4 == 2, sv, kv2_dts[(ci / 3) % 3]);
    static const char *lay[3] = {"contiguous", "transposed", "columns"};
    snprintf(c.label, sizeof c.label,
             "case %d: k %s %s [%lld rows, D %lld] into %s%s cap %lld; v %s %s [%lld rows, D %lld] into %s%s cap %lld "
             "(rank %d)",
             ci, mlxn_dtype_name(sk), lay[c.p[0].layout], (long long)T, (long long)Dk, mlxn_dtype_name(c.p[0].ddt),
             c.p[0].padded ? " padded" : "", (long long)cap, mlxn_dtype_name(sv), lay[c.p[1].layout], (long long)Tv,
             (long long)Dv, mlxn_dtype_name(c.p[1].ddt), c.p[1].padded ? " padded" : "", (long long)capv, nd);
    return c;
}

/* A source image of side s (sn elements of its dtype): random values with
 * a few edge values in front (f16 overflow and rounding, a tiny subnormal,
 * -0); bytes the view does not cover are 0xFF. */
static inline void *kv2_source(const kv2_side *s) {
    size_t es = mlxn_dtype_size(s->sdt), n = s->sn ? s->sn : 1;
    float *f = malloc(n * sizeof(float));
    t_fill_randn(f, n, 2.0f);
    static const float edge[5] = {70000.0f, 65519.0f, 3e-6f, -0.0f, 1.00048828125f};
    for (size_t i = 0; i < 5 && i + (size_t)s->soff < n; i++) f[i + (size_t)s->soff] = edge[i];
    void *img = malloc(n * es);
    for (size_t i = 0; i < n; i++) {
        if (s->sdt == MLXN_DTYPE_F32) ((float *)img)[i] = f[i];
        else if (s->sdt == MLXN_DTYPE_BF16) ((uint16_t *)img)[i] = mlxn_f32_to_bf16(f[i]);
        else ((uint16_t *)img)[i] = mlxn_f32_to_f16(f[i]);
    }
    free(f);
    return img;
}

static inline float kv2_load(const void *p, mlxn_dtype dt, int64_t i) {
    if (dt == MLXN_DTYPE_F32) return ((const float *)p)[i];
    if (dt == MLXN_DTYPE_BF16) return mlxn_bf16_to_f32(((const uint16_t *)p)[i]);
    return mlxn_f16_to_f32(((const uint16_t *)p)[i]);
}
static inline void kv2_store(void *p, mlxn_dtype dt, int64_t i, float v) {
    if (dt == MLXN_DTYPE_F32) ((float *)p)[i] = v;
    else if (dt == MLXN_DTYPE_BF16) ((uint16_t *)p)[i] = mlxn_f32_to_bf16(v);
    else ((uint16_t *)p)[i] = mlxn_f32_to_f16(v);
}

/* The reference: dst image rows [at, at + T) of side s = its source. */
static inline void kv2_ref(const kv2_side *s, const void *src, int64_t at, void *dst) {
    int64_t n = kv2_numel(s);
    for (int64_t e = 0; e < n; e++) {
        int64_t r = e, so = s->soff, dof = s->doff;
        for (int i = s->nd - 1; i >= 0; i--) {
            int64_t c = r % s->shape[i];
            r /= s->shape[i];
            so += c * s->sst[i];
            dof += (i == s->nd - 2 ? c + at : c) * s->dst[i];
        }
        kv2_store(dst, s->ddt, dof, kv2_load(src, s->sdt, so));
    }
}

static inline size_t kv2_dbytes(const kv2_side *s) { return (s->dn ? s->dn : 1) * mlxn_dtype_size(s->ddt); }
static inline size_t kv2_sbytes(const kv2_side *s) { return (s->sn ? s->sn : 1) * mlxn_dtype_size(s->sdt); }

/* A cache image as it starts: every byte poisoned. */
static inline void *kv2_poisoned(const kv2_side *s) {
    void *p = malloc(kv2_dbytes(s));
    t_poison(p, kv2_dbytes(s));
    return p;
}

/* Views of side s over its buffers. */
static inline void kv2_views(const kv2_side *s, mlxn_buffer *sb, mlxn_buffer *db, mlxn_tensor *src, mlxn_tensor *dst) {
    int64_t dshape[KV2_MAXD];
    memcpy(dshape, s->shape, sizeof dshape);
    dshape[s->nd - 2] = s->cap;
    memset(src, 0, sizeof *src);
    memset(dst, 0, sizeof *dst);
    /* a view's bytes are checked for contiguous strides; these layouts'
       buffers are at least that large, and the strides are set after */
    CHECK_OK(mlxn_tensor_view(sb, s->sdt, s->nd, s->shape, (size_t)s->soff * mlxn_dtype_size(s->sdt), src));
    CHECK_OK(mlxn_tensor_view(db, s->ddt, s->nd, dshape, (size_t)s->doff * mlxn_dtype_size(s->ddt), dst));
    for (int i = 0; i < s->nd; i++) src->strides[i] = s->sst[i], dst->strides[i] = s->dst[i];
}

/* Run case c on dev for n_steps slots: before step i the sources hold
 * srcs[i][0] (keys) and srcs[i][1] (values) and the slot slots[i]; then
 * mlxn_kv_write2 (fused) or mlxn_kv_write for keys then values. The caches
 * start poisoned and come back in out[0], out[1] (malloc'd). Returns the
 * first failing status (a slot error from the call or the stream's sync). */
static inline mlxn_status kv2_run(mlxn_device *dev, const kv2_case *c, int fused, int n_steps, const int32_t *slots,
                           void *const (*srcs)[2], void *out[2]) {
    mlxn_stream *s = mlxn_device_stream(dev);
    mlxn_buffer *sb[2] = {0}, *db[2] = {0}, *slb = NULL;
    mlxn_status rc = MLXN_ERR_INVALID_ARGUMENT;
    for (int j = 0; j < 2; j++) {
        out[j] = kv2_poisoned(&c->p[j]);
        CHECK_OK(mlxn_buffer_new(dev, kv2_sbytes(&c->p[j]), &sb[j]));
        CHECK_OK(mlxn_buffer_new(dev, kv2_dbytes(&c->p[j]), &db[j]));
        if (db[j]) CHECK_OK(mlxn_buffer_write(db[j], 0, out[j], kv2_dbytes(&c->p[j])));
    }
    CHECK_OK(mlxn_buffer_new(dev, sizeof(int32_t), &slb));
    if (sb[0] && sb[1] && db[0] && db[1] && slb) {
        mlxn_tensor src[2], dst[2], slot;
        int64_t one = 1;
        for (int j = 0; j < 2; j++) kv2_views(&c->p[j], sb[j], db[j], &src[j], &dst[j]);
        CHECK_OK(mlxn_tensor_view(slb, MLXN_DTYPE_I32, 1, &one, 0, &slot));
        rc = MLXN_OK;
        for (int i = 0; i < n_steps && rc == MLXN_OK; i++) {
            for (int j = 0; j < 2; j++) CHECK_OK(mlxn_buffer_write(sb[j], 0, srcs[i][j], kv2_sbytes(&c->p[j])));
            CHECK_OK(mlxn_buffer_write(slb, 0, &slots[i], sizeof(int32_t)));
            if (fused) {
                rc = mlxn_kv_write2(s, &src[0], &src[1], &slot, &dst[0], &dst[1]);
            } else {
                rc = mlxn_kv_write(s, &src[0], &slot, &dst[0]);
                if (rc == MLXN_OK) rc = mlxn_kv_write(s, &src[1], &slot, &dst[1]);
            }
            /* the next step's uploads must not overtake this step's kernels */
            if (rc == MLXN_OK) rc = mlxn_stream_sync(s);
        }
        for (int j = 0; j < 2; j++) CHECK_OK(mlxn_buffer_read(db[j], 0, out[j], kv2_dbytes(&c->p[j])));
    }
    for (int j = 0; j < 2; j++) mlxn_buffer_free(sb[j]), mlxn_buffer_free(db[j]);
    mlxn_buffer_free(slb);
    return rc;
}

/* Sources for n steps of case c (kv2_free_sources frees them). */
static inline void *(*kv2_sources(const kv2_case *c, int n))[2] {
    void *(*srcs)[2] = malloc((size_t)n * sizeof *srcs);
    for (int i = 0; i < n; i++) srcs[i][0] = kv2_source(&c->p[0]), srcs[i][1] = kv2_source(&c->p[1]);
    return srcs;
}
static inline void kv2_free_sources(void *(*srcs)[2], int n) {
    for (int i = 0; i < n; i++) free(srcs[i][0]), free(srcs[i][1]);
    free(srcs);
}

/* The expected caches after n steps (malloc'd into want[2]). */
static inline void kv2_expect(const kv2_case *c, int n, const int32_t *slots, void *const (*srcs)[2], void *want[2]) {
    for (int j = 0; j < 2; j++) {
        want[j] = kv2_poisoned(&c->p[j]);
        for (int i = 0; i < n; i++) kv2_ref(&c->p[j], srcs[i][j], slots[i], want[j]);
    }
}

/* Both caches of a and b are the same bytes. */
static inline int kv2_same(const kv2_case *c, void *const a[2], void *const b[2]) {
    return !memcmp(a[0], b[0], kv2_dbytes(&c->p[0])) && !memcmp(a[1], b[1], kv2_dbytes(&c->p[1]));
}
/* Both caches still hold only poison. */
static inline int kv2_untouched(const kv2_case *c, void *const a[2]) {
    void *p[2];
    for (int j = 0; j < 2; j++) p[j] = kv2_poisoned(&c->p[j]);
    int same = kv2_same(c, a, p);
    free(p[0]), free(p[1]);
    return same;
}

/* A decode around a ring: T = 1, slots position % cap for more than two
 * turns, fresh keys and values each step; f32 keys and bf16 values. */
static inline kv2_case kv2_ring_case(int64_t cap, int32_t *slots, int n) {
    kv2_case c;
    memset(&c, 0, sizeof c);
    kv2_side_make(&c.p[0], 3, 2, 1, 24, cap, KV2_COLUMNS, 0, MLXN_DTYPE_F32, MLXN_DTYPE_F32);
    kv2_side_make(&c.p[1], 3, 2, 1, 24, cap, KV2_TRANSPOSED, 0, MLXN_DTYPE_F32, MLXN_DTYPE_BF16);
    for (int i = 0; i < n; i++) slots[i] = (int32_t)(i % cap);
    snprintf(c.label, sizeof c.label, "ring of %lld slots, %d steps", (long long)cap, n);
    return c;
}

/* Slots that miss: below 0, and one past the last slot of each pair, with
 * the key cache shorter than the value cache and then the other way round
 * (so each pair's check is the only one that fails once). */
static inline void kv2_bad_slots(mlxn_device *dev) {
    for (int swap = 0; swap < 2; swap++) {
        kv2_case c = kv2_make(3); /* the value cache has two slots more than the key cache */
        if (swap) {
            kv2_side t = c.p[0];
            c.p[0] = c.p[1], c.p[1] = t;
        }
        int32_t lk = (int32_t)(c.p[0].cap - kv2_T(&c.p[0])), lv = (int32_t)(c.p[1].cap - kv2_T(&c.p[1]));
        int32_t bads[3] = {-1, lk + 1, lv + 1};
        for (int k = 0; k < 3; k++) {
            void *(*srcs)[2] = kv2_sources(&c, 1);
            void *got[2];
            mlxn_clear_error();
            mlxn_status rc = kv2_run(dev, &c, 1, 1, &bads[k], srcs, got);
            char needle[48];
            snprintf(needle, sizeof needle, "kv_write2: slot %d ", bads[k]);
            CHECK(rc == MLXN_ERR_INVALID_ARGUMENT && strstr(mlxn_last_error(), needle), "%s%s slot %d: %s (%s)",
                  c.label, swap ? " (pairs swapped)" : "", bads[k], mlxn_status_str(rc), mlxn_last_error());
            CHECK(kv2_untouched(&c, got), "%s%s slot %d: a cache was written", c.label, swap ? " (pairs swapped)" : "",
                  bads[k]);
            CHECK_OK(mlxn_stream_sync(mlxn_device_stream(dev))); /* a device-side report is made once */
            free(got[0]), free(got[1]);
            kv2_free_sources(srcs, 1);
        }
    }
}

#endif
