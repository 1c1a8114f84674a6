/* Scaled dot-product attention (mlxn_sdpa) on the CPU backend:
 *  - MLX goldens (tests/golden/attn/sdpa.safetensors, written by
 *    gen_attn.py from mx.fast.scaled_dot_product_attention, or from explicit
 *    MLX ops for softcap): head dims 64/80/128/256, GQA ratios 1/4/8, decode
 *    and prefill, causal with Tq < Tk, bool and additive masks of several
 *    broadcast shapes, sinks, sliding windows, softcap, f16/bf16 K/V;
 *    NMSE < 1e-10 (MLX's CPU path and ours both work in f32; typical NMSE
 *    is 1e-14), at every ISA level.
 *  - fresh random inputs against a double-precision reference written here,
 *    at every ISA level (scalar, AVX2, AVX-512) with 1, 2 and 3 threads:
 *    odd head dims, D != Dv, long decode rows (the key-split path), rows
 *    that see no key and an empty K/V (zeros, with and without sinks),
 *    strided q/k/v/mask/sinks views (a transposed q, K/V inside a larger
 *    cache, a V with inner stride 2), f16/bf16 q/k/v, a kv_len shorter
 *    than the K/V capacity (rows past it NaN, so reading one shows; zero,
 *    below Tq, with causal/window/softcap/mask/sinks); NMSE < 1e-9;
 *    outputs poisoned first.
 *  - bad arguments return the documented status. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* ---- tensors with chosen strides ------------------------------------------ */

/* A [d0, d1, d2, d3] view whose storage orders the axes as perm (outermost
 * first) and pads the innermost stored axis by `pad` elements; inner > 1
 * spaces the elements of the last logical axis. */
static mlxn_tensor make_4d(mlxn_device *dev, mlxn_dtype dt, const int64_t *shape, const int *perm, int64_t pad,
                           int64_t inner) {
    int64_t st[4], s = inner;
    for (int i = 3; i >= 0; i--) {
        st[perm[i]] = s;
        s *= shape[perm[i]] + (i == 3 ? pad : 0) + (i == 2 ? pad : 0);
    }
    return t_tensor_strided(dev, dt, 4, shape, st);
}

static float put(void *base, mlxn_dtype dt, int64_t i, float v) {
    switch (dt) {
    case MLXN_DTYPE_F16: ((uint16_t *)base)[i] = mlxn_f32_to_f16(v); return mlxn_f16_to_f32(((uint16_t *)base)[i]);
    case MLXN_DTYPE_BF16:
        ((uint16_t *)base)[i] = mlxn_f32_to_bf16(v);
        return mlxn_bf16_to_f32(((uint16_t *)base)[i]);
    case MLXN_DTYPE_BOOL: ((uint8_t *)base)[i] = v != 0.0f; return v != 0.0f;
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

/* Fill every logical element with gen(), storing the rounded values in vals. */
static void fill(mlxn_tensor *t, float *vals, float (*gen)(void)) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    for (int64_t i = 0; i < n; i++) vals[i] = put(mlxn_tensor_host(t), t->dtype, elem_offset(t, i), gen());
}

static float gen_randn(void) { return t_randn(); }
static float gen_big(void) { return 6.0f * t_randn(); } /* scores large enough for softcap to bite */
static float gen_keep(void) { return t_uniform(0, 1) < 0.7f ? 1.0f : 0.0f; }
static float gen_additive(void) { return t_uniform(0, 1) < 0.15f ? -INFINITY : 2.0f * t_randn(); }

/* ---- the double-precision reference -------------------------------------- */

typedef struct attn_case {
    const char *name;
    int64_t B, Hq, Hkv, Tq, Tk, D, Dv;
    int causal, window;
    float softcap;
    int mask;           /* 0 none, 1 bool, 2 additive */
    int mask_nd;        /* rank of the mask */
    int64_t mshape[4];  /* right-aligned against [B, Hq, Tq, Tk] */
    int sinks;
    mlxn_dtype qdt, kdt, vdt;
    int strided;        /* 1: q transposed, K/V inside a bigger cache, V inner stride 2 (f32), mask padded */
    int big_q;          /* q scaled up (softcap cases) */
    int kvl;            /* 0: no kv_len; n > 0: kv_len = n; -1: kv_len = 0 (K/V/mask past it are NaN) */
} attn_case;

/* Keys the case uses: kv_len when set, else all Tk. */
static int64_t keys_used(const attn_case *c) { return c->kvl ? (c->kvl < 0 ? 0 : c->kvl) : c->Tk; }

typedef struct attn_data {
    float *q, *k, *v, *mask, *sinks; /* logical values, row-major */
    int64_t ms[4];                   /* broadcast strides into mask values */
} attn_data;

static void reference(const attn_case *c, const attn_data *a, float scale, float *out) {
    const int64_t G = c->Hq / c->Hkv;
    double *sc = malloc((size_t)c->Tk * sizeof(double));
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->Tq; i++) {
                const int64_t hk = h / G, pos = i + keys_used(c) - c->Tq;
                const float *q = a->q + ((b * c->Hq + h) * c->Tq + i) * c->D;
                double mx = c->sinks ? a->sinks[h] : -INFINITY;
                for (int64_t j = 0; j < keys_used(c); j++) {
                    int vis = (!c->causal || j <= pos) && (c->window <= 0 || j > pos - c->window);
                    const float *k = a->k + ((b * c->Hkv + hk) * c->Tk + j) * c->D;
                    double s = 0;
                    for (int64_t d = 0; d < c->D; d++) s += (double)q[d] * k[d];
                    s *= scale;
                    if (c->softcap > 0) s = c->softcap * tanh(s / c->softcap);
                    if (c->mask) {
                        float m = a->mask[b * a->ms[0] + h * a->ms[1] + i * a->ms[2] + j * a->ms[3]];
                        if (c->mask == 1) vis = vis && m != 0.0f;
                        else s += m;
                    }
                    sc[j] = vis ? s : -INFINITY;
                    if (sc[j] > mx) mx = sc[j];
                }
                float *o = out + ((b * c->Hq + h) * c->Tq + i) * c->Dv;
                for (int64_t d = 0; d < c->Dv; d++) o[d] = 0.0f;
                if (mx == -INFINITY) continue;
                double sum = c->sinks ? exp(a->sinks[h] - mx) : 0.0;
                for (int64_t j = 0; j < keys_used(c); j++) sum += sc[j] == -INFINITY ? 0.0 : exp(sc[j] - mx);
                for (int64_t d = 0; d < c->Dv; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j < keys_used(c); j++)
                        if (sc[j] != -INFINITY)
                            acc += exp(sc[j] - mx) * a->v[((b * c->Hkv + hk) * c->Tk + j) * c->Dv + d];
                    o[d] = (float)(acc / sum);
                }
            }
    free(sc);
}

/* Builds the inputs of case c on dev, runs mlxn_sdpa and returns the NMSE
 * against the reference (inf on failure). */
static double run_case(mlxn_device *dev, const attn_case *c) {
    const int tr[4] = {0, 2, 1, 3}, id[4] = {0, 1, 2, 3};
    int64_t qs[4] = {c->B, c->Hq, c->Tq, c->D}, ks[4] = {c->B, c->Hkv, c->Tk, c->D},
            vs[4] = {c->B, c->Hkv, c->Tk, c->Dv}, os[4] = {c->B, c->Hq, c->Tq, c->Dv};
    mlxn_tensor q = make_4d(dev, c->qdt, qs, c->strided ? tr : id, 0, 1);
    mlxn_tensor k = make_4d(dev, c->kdt, ks, id, c->strided ? 5 : 0, 1);
    mlxn_tensor v = make_4d(dev, c->vdt, vs, id, c->strided ? 3 : 0, c->strided && c->vdt == MLXN_DTYPE_F32 ? 2 : 1);
    mlxn_tensor out = t_tensor_contig(dev, MLXN_DTYPE_F32, 4, os);
    mlxn_tensor mask = {0}, sinks = {0};
    attn_data a = {0};
    size_t nq = (size_t)(c->B * c->Hq * c->Tq * c->D), nk = (size_t)(c->B * c->Hkv * c->Tk * c->D),
           nv = (size_t)(c->B * c->Hkv * c->Tk * c->Dv), no = (size_t)(c->B * c->Hq * c->Tq * c->Dv);
    a.q = malloc(nq * sizeof(float));
    a.k = malloc(nk * sizeof(float));
    a.v = malloc(nv * sizeof(float));
    float *ref = malloc(no * sizeof(float));
    fill(&q, a.q, c->big_q ? gen_big : gen_randn);
    fill(&k, a.k, gen_randn);
    fill(&v, a.v, gen_randn);
    const float scale = 1.0f / sqrtf((float)c->D);
    mlxn_sdpa_params p = {.scale = scale, .causal = c->causal, .window = c->window, .softcap = c->softcap};
    if (c->mask) {
        int64_t mst[4], s = 1, n = 1;
        for (int i = c->mask_nd - 1; i >= 0; i--) { /* padded rows when strided */
            mst[i] = s;
            s *= c->mshape[i] + (c->strided && i == c->mask_nd - 1 ? 3 : 0);
            n *= c->mshape[i];
        }
        mask = t_tensor_strided(dev, c->mask == 1 ? MLXN_DTYPE_BOOL : MLXN_DTYPE_F32, c->mask_nd, c->mshape, mst);
        a.mask = malloc((size_t)n * sizeof(float));
        fill(&mask, a.mask, c->mask == 1 ? gen_keep : gen_additive);
        /* broadcast strides of the row-major logical values */
        int64_t full[4] = {1, 1, 1, 1}, vs2 = 1;
        for (int i = 0; i < c->mask_nd; i++) full[4 - c->mask_nd + i] = c->mshape[i];
        for (int i = 3; i >= 0; i--) {
            a.ms[i] = full[i] == 1 ? 0 : vs2;
            vs2 *= full[i];
        }
        p.mask = &mask;
    }
    if (c->sinks) {
        int64_t sh[1] = {c->Hq}, st[1] = {c->strided ? 2 : 1};
        sinks = t_tensor_strided(dev, MLXN_DTYPE_F32, 1, sh, st);
        a.sinks = malloc((size_t)c->Hq * sizeof(float));
        fill(&sinks, a.sinks, gen_randn);
        p.sinks = &sinks;
    }
    mlxn_tensor kvt = {0};
    if (c->kvl) {
        /* the rows past kv_len hold NaN: reading any of them would show */
        int64_t one[1] = {1};
        kvt = t_tensor_contig(dev, MLXN_DTYPE_I32, 1, one);
        *(int32_t *)mlxn_tensor_host(&kvt) = (int32_t)keys_used(c);
        p.kv_len = &kvt;
        for (int64_t b = 0; b < c->B; b++)
            for (int64_t h = 0; h < c->Hkv; h++)
                for (int64_t j = keys_used(c); j < c->Tk; j++) {
                    for (int64_t d = 0; d < c->D; d++)
                        put(mlxn_tensor_host(&k), c->kdt, elem_offset(&k, ((b * c->Hkv + h) * c->Tk + j) * c->D + d), NAN);
                    for (int64_t d = 0; d < c->Dv; d++)
                        put(mlxn_tensor_host(&v), c->vdt, elem_offset(&v, ((b * c->Hkv + h) * c->Tk + j) * c->Dv + d), NAN);
                }
        if (c->mask == 2) {
            int64_t n = 1;
            for (int i = 0; i < c->mask_nd; i++) n *= c->mshape[i];
            for (int64_t e = 0; e < n; e++)
                if (e % c->mshape[c->mask_nd - 1] >= keys_used(c)) put(mlxn_tensor_host(&mask), MLXN_DTYPE_F32, elem_offset(&mask, e), NAN);
        }
    }
    reference(c, &a, scale, ref);
    t_poison(mlxn_tensor_host(&out), no * sizeof(float));
    double nm = INFINITY;
    mlxn_status st = mlxn_sdpa(mlxn_device_stream(dev), &q, &k, &v, &p, &out);
    CHECK(st == MLXN_OK, "%s: sdpa: %s", c->name, mlxn_last_error());
    if (st == MLXN_OK) nm = t_nmse(ref, mlxn_tensor_host(&out), no);
    free(a.q);
    free(a.k);
    free(a.v);
    free(a.mask);
    free(a.sinks);
    free(ref);
    t_tensor_free(&q);
    t_tensor_free(&k);
    t_tensor_free(&v);
    t_tensor_free(&out);
    if (c->mask) t_tensor_free(&mask);
    if (c->sinks) t_tensor_free(&sinks);
    if (c->kvl) t_tensor_free(&kvt);
    return nm;
}

#define F32 MLXN_DTYPE_F32
#define F16 MLXN_DTYPE_F16
#define BF16 MLXN_DTYPE_BF16

static const attn_case cases[] = {
    /* name                B  Hq Hkv Tq   Tk   D    Dv  caus win cap  mask nd mshape            sink qdt  kdt   vdt   str big */
    {"decode_gqa4",        1, 8, 2,  1,   77,  64,  64, 0,   0,  0,   0,   0, {0},              0, F32, F32, F32, 0, 0, 0},
    {"decode_split",       1, 4, 1,  1,   1100, 64, 64, 1,   0,  0,   0,   0, {0},              0, F32, BF16, BF16, 1, 0, 0},
    {"decode_split_sink",  2, 8, 1,  1,   700, 80,  80, 1,   0,  0,   0,   0, {0},              1, F32, F16, F16, 0, 0, 0},
    {"prefill_causal",     1, 4, 2,  70,  70,  37,  37, 1,   0,  0,   0,   0, {0},              0, F32, F32, F32, 1, 0, 0},
    {"prefill_tq_lt_tk",   2, 3, 3,  9,   150, 48,  24, 1,   0,  0,   0,   0, {0},              0, F16, F16, F32, 0, 0, 0},
    {"causal_tq_gt_tk",    1, 2, 1,  12,  5,   16,  16, 1,   0,  0,   0,   0, {0},              0, F32, F32, F32, 0, 0, 0},
    {"causal_tq_gt_tk_s",  1, 2, 1,  12,  5,   16,  16, 1,   0,  0,   0,   0, {0},              1, F32, F32, F32, 1, 0, 0},
    {"window_causal",      1, 4, 1,  90,  90,  32,  32, 1,   17, 0,   0,   0, {0},              0, F32, BF16, BF16, 0, 0, 0},
    {"window_offset",      1, 2, 2,  6,   200, 64,  64, 1,   40, 0,   0,   0, {0},              1, BF16, BF16, F32, 1, 0, 0},
    {"window_noncausal",   1, 2, 1,  5,   40,  8,   8,  0,   10, 0,   0,   0, {0},              0, F32, F32, F32, 0, 0, 0},
    {"softcap",            1, 4, 2,  20,  33,  64,  64, 1,   0,  5,   0,   0, {0},              0, F32, F32, F32, 0, 1, 0},
    {"softcap_window",     1, 2, 1,  16,  16,  128, 128, 1,  4,  20,  0,   0, {0},              1, F32, F16, F16, 1, 1, 0},
    {"bool_2d",            2, 4, 2,  7,   29,  64,  64, 0,   0,  0,   1,   2, {7, 29},          0, F32, F32, F32, 0, 0, 0},
    {"bool_head_keys",     2, 4, 4,  3,   45,  33,  33, 0,   0,  0,   1,   4, {2, 4, 1, 45},    0, F32, F32, F32, 1, 0, 0},
    {"bool_causal_sink",   1, 8, 1,  6,   30,  64,  64, 1,   0,  0,   1,   4, {1, 1, 6, 30},    1, F32, BF16, BF16, 0, 0, 0},
    {"add_full",           2, 2, 1,  5,   19,  256, 256, 0,  0,  0,   2,   4, {2, 2, 5, 19},    0, F32, F32, F32, 1, 0, 0},
    {"add_rows",           1, 4, 2,  8,   8,   16,  16, 1,   0,  0,   2,   3, {1, 8, 8},        1, F32, F32, F32, 0, 0, 0},
    {"add_1d",             1, 2, 2,  1,   300, 128, 64, 0,   0,  0,   2,   1, {300},            0, F32, F16, BF16, 1, 0, 0},
    {"no_keys",            1, 4, 2,  3,   0,   8,   8,  1,   0,  0,   0,   0, {0},              1, F32, F32, F32, 0, 0, 0},
    {"tiny_d1",            1, 1, 1,  3,   3,   1,   1,  1,   0,  0,   0,   0, {0},              0, F32, F32, F32, 0, 0, 0},
    /* kv_len: K/V (and an additive mask) hold a capacity of Tk keys, only the first kvl are used */
    {"kvlen_decode",       1, 8, 2,  1,   300, 64,  64, 1,   0,  0,   0,   0, {0},              0, F32, BF16, BF16, 1, 0, 123},
    {"kvlen_decode_split", 1, 4, 1,  1,   1500, 64, 64, 1,   0,  0,   0,   0, {0},              1, F32, F16, F16, 0, 0, 1111},
    {"kvlen_prefill_win",  1, 4, 2,  9,   64,  32,  32, 1,   10, 0,   0,   0, {0},              0, F32, F32, F32, 1, 0, 40},
    {"kvlen_softcap",      2, 2, 1,  5,   50,  16,  16, 1,   0,  7,   0,   0, {0},              0, F32, BF16, BF16, 0, 1, 50},
    {"kvlen_add_mask",     1, 2, 2,  3,   40,  8,   8,  0,   0,  0,   2,   4, {1, 2, 3, 40},    0, F32, F32, F32, 0, 0, 17},
    {"kvlen_lt_tq",        1, 2, 1,  6,   20,  8,   8,  1,   0,  0,   0,   0, {0},              0, F32, F32, F32, 0, 0, 3},
    {"kvlen_zero_sink",    1, 4, 2,  2,   9,   8,   8,  1,   0,  0,   0,   0, {0},              1, F32, F32, F32, 0, 0, -1},
};

static const char *isa_names[] = {"auto", "scalar", "avx2", "avx512"};

static void test_random(void) {
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    for (int isa = MLXN_CPU_ISA_SCALAR; isa <= MLXN_CPU_ISA_AVX512; isa++)
        for (int threads = 1; threads <= 3; threads++) {
            mlxn_device *dev = t_cpu_device(threads, (mlxn_cpu_isa)isa);
            if (!dev) return;
            if (!strstr(mlxn_device_name(dev), isa_names[isa])) { /* processor lacks it */
                mlxn_device_free(dev);
                continue;
            }
            double worst = 0;
            for (int ci = 0; ci < ncases; ci++) {
                double nm = run_case(dev, &cases[ci]);
                CHECK(nm < 1e-9, "%s on %s: nmse %.3g", cases[ci].name, mlxn_device_name(dev), nm);
                if (nm > worst) worst = nm;
            }
            printf("random %-6s threads=%d: %d cases, worst nmse %.3g\n", isa_names[isa], threads, ncases, worst);
            mlxn_device_free(dev);
        }
}

/* A row that sees nothing is zeros (MLX itself gives the mean of V for
 * bool/causal masks and NaN for an all -inf additive mask). Checked on
 * values, not only against the reference above. */
static void test_empty_rows(mlxn_device *dev) {
    int64_t qs[4] = {1, 2, 4, 8}, ks[4] = {1, 1, 2, 8}, os[4] = {1, 2, 4, 8};
    mlxn_tensor q = t_tensor_contig(dev, F32, 4, qs), k = t_tensor_contig(dev, F32, 4, ks), v = t_tensor_contig(dev, F32, 4, ks);
    mlxn_tensor out = t_tensor_contig(dev, F32, 4, os);
    t_fill_randn(mlxn_tensor_host(&q), 64, 1.0f);
    t_fill_randn(mlxn_tensor_host(&k), 16, 1.0f);
    t_fill_randn(mlxn_tensor_host(&v), 16, 1.0f);
    mlxn_sdpa_params p = {.scale = 0.35f, .causal = true}; /* Tq 4 > Tk 2: rows 0 and 1 see nothing */
    t_poison(mlxn_tensor_host(&out), 64 * sizeof(float));
    CHECK_OK(mlxn_sdpa(mlxn_device_stream(dev), &q, &k, &v, &p, &out));
    const float *o = mlxn_tensor_host(&out), *vv = mlxn_tensor_host(&v);
    int zeros = 1;
    for (int h = 0; h < 2; h++)
        for (int d = 0; d < 16; d++) zeros = zeros && o[h * 32 + d] == 0.0f;
    CHECK(zeros, "sdpa: causal rows before the first key must be zeros (%s)", mlxn_device_name(dev));
    /* row 2 sees only key 0: its output is v[0] exactly (weight 1) */
    double diff = 0;
    for (int d = 0; d < 8; d++) diff += fabs(o[16 + d] - vv[d]);
    CHECK(diff < 1e-6, "sdpa: a row with one visible key must return that value row, off by %g", diff);
    t_tensor_free(&q);
    t_tensor_free(&k);
    t_tensor_free(&v);
    t_tensor_free(&out);
}

/* ---- goldens from MLX -------------------------------------------------------- */

static void test_golden(mlxn_device *dev) {
    mlxn_weights *g = t_golden_open("attn/sdpa.safetensors");
    if (!g) return;
    const char *list = mlxn_weights_metadata(g, "cases");
    CHECK(list != NULL, "golden sdpa: no 'cases' metadata");
    int n = 0;
    double worst = 0;
    for (const char *c = list; c && *c;) {
        char name[64], key[128];
        size_t len = strcspn(c, ",");
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, c, len);
        name[len] = '\0';
        c += len + (c[len] == ',');
        const char *prm = mlxn_weights_metadata(g, name);
        float scale = 0, softcap = 0;
        int causal = 0, window = 0;
        CHECK(prm && sscanf(prm, "scale=%f causal=%d window=%d softcap=%f", &scale, &causal, &window, &softcap) == 4,
              "golden %s: bad params '%s'", name, prm ? prm : "(none)");
        mlxn_tensor q, k, v, want, mask, sinks;
        snprintf(key, sizeof key, "%s.q", name);
        CHECK_OK(mlxn_weights_tensor(g, dev, key, &q));
        snprintf(key, sizeof key, "%s.k", name);
        CHECK_OK(mlxn_weights_tensor(g, dev, key, &k));
        snprintf(key, sizeof key, "%s.v", name);
        CHECK_OK(mlxn_weights_tensor(g, dev, key, &v));
        snprintf(key, sizeof key, "%s.out", name);
        CHECK_OK(mlxn_weights_tensor(g, dev, key, &want));
        mlxn_sdpa_params p = {.scale = scale, .causal = causal, .window = window, .softcap = softcap};
        snprintf(key, sizeof key, "%s.mask", name);
        if (mlxn_weights_find(g, key)) {
            CHECK_OK(mlxn_weights_tensor(g, dev, key, &mask));
            p.mask = &mask;
        }
        snprintf(key, sizeof key, "%s.sinks", name);
        if (mlxn_weights_find(g, key)) {
            CHECK_OK(mlxn_weights_tensor(g, dev, key, &sinks));
            p.sinks = &sinks;
        }
        mlxn_tensor out = t_tensor_contig(dev, F32, 4, want.shape);
        size_t numel = (size_t)mlxn_tensor_numel(&want);
        t_poison(mlxn_tensor_host(&out), numel * sizeof(float));
        CHECK_OK(mlxn_sdpa(mlxn_device_stream(dev), &q, &k, &v, &p, &out));
        double nm = t_nmse(mlxn_tensor_host(&want), mlxn_tensor_host(&out), numel);
        CHECK(nm < 1e-10, "golden %s (%s): nmse %.3g", name, mlxn_device_name(dev), nm);
        if (nm > worst) worst = nm;
        t_tensor_free(&out);
        n++;
    }
    printf("golden %s: %d cases, worst nmse %.3g\n", mlxn_device_name(dev), n, worst);
    CHECK(n >= 20, "golden sdpa: only %d cases", n);
    mlxn_weights_free(g);
}

/* ---- bad arguments ------------------------------------------------------------- */

static void test_bad_args(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t qs[4] = {1, 4, 3, 8}, ks[4] = {1, 2, 5, 8}, os[4] = {1, 4, 3, 8};
    int64_t k3[4] = {1, 3, 5, 8}, kd[4] = {1, 2, 5, 6}, vb[4] = {1, 2, 4, 8}, q3[3] = {4, 3, 8};
    int64_t mbad[2] = {3, 4}, mok[2] = {3, 5}, s4[1] = {4}, s3[1] = {3}, ob[4] = {1, 4, 3, 7};
    mlxn_tensor q = t_tensor_contig(dev, F32, 4, qs), k = t_tensor_contig(dev, BF16, 4, ks), v = t_tensor_contig(dev, BF16, 4, ks);
    mlxn_tensor out = t_tensor_contig(dev, F32, 4, os);
    mlxn_tensor kh = t_tensor_contig(dev, F32, 4, k3), kdim = t_tensor_contig(dev, F32, 4, kd), vbad = t_tensor_contig(dev, F32, 4, vb);
    mlxn_tensor qr3 = t_tensor_contig(dev, F32, 3, q3), qi = t_tensor_contig(dev, MLXN_DTYPE_I32, 4, qs);
    mlxn_tensor mb = t_tensor_contig(dev, MLXN_DTYPE_BOOL, 2, mbad), mi = t_tensor_contig(dev, MLXN_DTYPE_I32, 2, mok);
    mlxn_tensor sk = t_tensor_contig(dev, F32, 1, s4), sk3 = t_tensor_contig(dev, F32, 1, s3), skh = t_tensor_contig(dev, F16, 1, s4);
    mlxn_tensor of16 = t_tensor_contig(dev, F16, 4, os), obad = t_tensor_contig(dev, F32, 4, ob);
    memset(mlxn_tensor_host(&q), 0, 96 * 4);
    memset(mlxn_tensor_host(&k), 0, 80 * 2);
    memset(mlxn_tensor_host(&v), 0, 80 * 2);
    memset(mlxn_tensor_host(&sk), 0, 16);
    mlxn_sdpa_params p = {.scale = 0.5f};
    CHECK_OK(mlxn_sdpa(s, &q, &k, &v, &p, &out));
    CHECK_FAILS(mlxn_sdpa(NULL, &q, &k, &v, &p, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, NULL, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sdpa(s, NULL, &k, &v, &p, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &p, NULL), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sdpa(s, &qr3, &k, &v, &p, &out), MLXN_ERR_SHAPE);   /* q must be 4-D */
    CHECK_FAILS(mlxn_sdpa(s, &qi, &k, &v, &p, &out), MLXN_ERR_DTYPE);    /* q must be a float */
    CHECK_FAILS(mlxn_sdpa(s, &q, &kh, &kh, &p, &out), MLXN_ERR_SHAPE);   /* Hq 4 not a multiple of Hkv 3 */
    CHECK_FAILS(mlxn_sdpa(s, &q, &kdim, &v, &p, &out), MLXN_ERR_SHAPE);  /* k head dim differs from q */
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &vbad, &p, &out), MLXN_ERR_SHAPE);  /* v has 4 keys, k 5 */
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &p, &of16), MLXN_ERR_DTYPE);    /* out must be f32 */
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &p, &obad), MLXN_ERR_SHAPE);    /* out Dv wrong */
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &p, &q), MLXN_ERR_INVALID_ARGUMENT); /* out aliases q */
    mlxn_sdpa_params bad = p;
    bad.mask = &mb; /* [3, 4] does not broadcast to [.., 3, 5] */
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_SHAPE);
    bad.mask = &mi;
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_DTYPE);
    bad = p;
    bad.sinks = &sk3;
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_SHAPE);
    bad.sinks = &skh;
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_DTYPE);
    bad.sinks = &sk;
    CHECK_OK(mlxn_sdpa(s, &q, &k, &v, &bad, &out));
    bad = p;
    bad.window = -1;
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_INVALID_ARGUMENT);
    bad = p;
    bad.softcap = NAN;
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_INVALID_ARGUMENT);
    bad.softcap = -1.0f;
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_INVALID_ARGUMENT);
    bad = p;
    bad.scale = INFINITY;
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_INVALID_ARGUMENT);
    int64_t one[1] = {1}, two[1] = {2};
    mlxn_tensor kl = t_tensor_contig(dev, MLXN_DTYPE_I32, 1, one), kl2 = t_tensor_contig(dev, MLXN_DTYPE_I32, 1, two),
                klf = t_tensor_contig(dev, F32, 1, one);
    *(int32_t *)mlxn_tensor_host(&kl) = 5; /* == Tk: fine */
    memset(mlxn_tensor_host(&kl2), 0, 8);
    memset(mlxn_tensor_host(&klf), 0, 4);
    bad = p;
    bad.kv_len = &kl;
    CHECK_OK(mlxn_sdpa(s, &q, &k, &v, &bad, &out));
    *(int32_t *)mlxn_tensor_host(&kl) = 6; /* past the 5 keys k holds */
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_INVALID_ARGUMENT);
    *(int32_t *)mlxn_tensor_host(&kl) = -1;
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_INVALID_ARGUMENT);
    bad.kv_len = &kl2; /* two elements */
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_SHAPE);
    bad.kv_len = &klf; /* not i32 */
    CHECK_FAILS(mlxn_sdpa(s, &q, &k, &v, &bad, &out), MLXN_ERR_DTYPE);
    t_tensor_free(&kl);
    t_tensor_free(&kl2);
    t_tensor_free(&klf);
    mlxn_tensor *all[] = {&q, &k, &v, &out, &kh, &kdim, &vbad, &qr3, &qi, &mb, &mi, &sk, &sk3, &skh, &of16, &obad};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) t_tensor_free(all[i]);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_sdpa");
    test_random();
    for (int isa = MLXN_CPU_ISA_SCALAR; isa <= MLXN_CPU_ISA_AVX512; isa++) {
        mlxn_device *dev = t_cpu_device(2, (mlxn_cpu_isa)isa);
        if (!dev) continue;
        if (strstr(mlxn_device_name(dev), isa_names[isa])) {
            test_empty_rows(dev);
            test_golden(dev);
        }
        if (isa == MLXN_CPU_ISA_SCALAR) test_bad_args(dev);
        mlxn_device_free(dev);
    }
    return t_finish();
}
