/* The CUDA tensor-core attention (bf16/f16 K/V, head dims 64/128/256/512:
 * src/backend/cuda/cu_attn_flash.cu and cu_attn_decode.cu) against the CPU
 * backend's exact f32 attention (itself checked against a double-precision
 * reference and MLX in test_sdpa) on the same inputs: decode (Tq 1, 3, 8) with GQA ratios 1, 4
 * and 16 up to 20000 cached keys (the key-split path and its combine; up
 * to ~2000 keys the splits merge inside a thread-block cluster on sm_90,
 * MLXN_CUDA_FA_CLUSTER=0 takes the combine there too), decode with
 * softcap, without causality and on a sliding-window ring,
 * prefill (Tq 64, 257) with causal, sliding window and softcap, bf16 and
 * f16 K/V with f32 or bf16 q, strided q and K/V inside a larger cache,
 * prefill with enough kv heads that the keys are not split (each block
 * then walks several 64-key tiles through its K/V buffers), and
 * a device-side kv_len shorter than the K/V capacity (the rows past it are
 * NaN, so a kernel that reads one fails), changed between two calls on the
 * same tensors (the device reads it each time). One-row decode at head
 * dims 64/128 with at most 256 keys a block (more than 64 at 128) runs the
 * one-row kernel (cu_attn_decode.cu): short spans (64..256 slots, a single
 * key, a window inside a chunk, softcap without causality) are cases of
 * their own, and every one-row case runs twice more on a device opened
 * with a switch: MLXN_CUDA_FA_DECODE=0 (the tile kernel for all) and
 * MLXN_CUDA_FA_CLUSTER=0 (the one-row kernel's splits merged by
 * fa_combine).
 *
 * Fresh random inputs per run (the seed is printed and replayable), outputs
 * poisoned with NaN on both sides. Thresholds, NMSE against the f32 CPU
 * result: the GPU rounds the scaled q and the softmax weights to the K/V
 * type before the tensor-core products (f32 accumulate), so bf16 (8-bit
 * mantissa) allows 2e-4 (typical ~1e-5) and f16 (11-bit) 2e-5; NaN never
 * passes. Without a CUDA device: "skipped: no CUDA device", exit 77. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define F32 MLXN_DTYPE_F32
#define F16 MLXN_DTYPE_F16
#define BF16 MLXN_DTYPE_BF16

typedef struct attn_tc {
    const char *name;
    int64_t B, Hq, Hkv, Tq, Tk, D; /* Tk: K/V capacity */
    mlxn_dtype qdt, kvdt;
    int causal, window;
    float softcap;
    int kvl;    /* 0: no kv_len; else kv_len = kvl (second call: kvl2) */
    int kvl2;
    int strided; /* q stored [B, Tq, Hq, D]; K/V rows inside a cache 13 rows longer */
} attn_tc;

static const attn_tc cases[] = {
    /* name               B  Hq  Hkv Tq   Tk     D    qdt   kvdt  caus win  cap   kvl    kvl2  str */
    {"dec_d64_g1",        1, 8,  8,  1,   1500,  64,  F32,  BF16, 1,   0,   0,    0,     0,    0},
    {"dec_d64_g4",        2, 8,  2,  1,   777,   64,  F32,  F16,  1,   0,   0,    0,     0,    1},
    {"dec_d64_g16",       1, 16, 1,  1,   3001,  64,  F32,  BF16, 1,   0,   0,    2500,  3001, 0},
    {"dec_d128_g1",       1, 4,  4,  1,   2049,  128, F32,  BF16, 1,   0,   0,    0,     0,    0},
    {"dec_d128_g4",       1, 32, 8,  1,   4100,  128, F32,  BF16, 1,   0,   0,    4000,  37,   1},
    {"dec_d128_g16",      1, 16, 1,  3,   999,   128, BF16, BF16, 1,   0,   0,    0,     0,    0},
    {"dec_d256_g1",       1, 2,  2,  1,   1234,  256, F32,  F16,  1,   0,   0,    0,     0,    0},
    {"dec_d256_g4",       1, 8,  2,  8,   2000,  256, F32,  BF16, 1,   0,   0,    1900,  1901, 0},
    {"dec_d256_g16_20k",  1, 32, 2,  1,   20000, 256, F32,  BF16, 1,   0,   0,    0,     0,    0},
    {"dec_d256_g16_kvl",  1, 32, 2,  1,   20480, 256, F32,  BF16, 1,   0,   0,    20000, 123,  1},
    {"dec_d512_g1",       1, 2,  2,  1,   800,   512, F32,  BF16, 1,   0,   0,    0,     0,    0},
    {"dec_d512_g4",       1, 8,  2,  3,   1100,  512, F32,  F16,  1,   0,   0,    900,   1100, 1},
    {"dec_d512_g16",      1, 16, 1,  1,   600,   512, F32,  BF16, 0,   0,   0,    0,     0,    0},
    {"dec_window",        1, 8,  2,  1,   3000,  128, F32,  BF16, 1,   512, 0,    2900,  2000, 0},
    {"dec_softcap",       1, 8,  1,  8,   700,   256, F32,  BF16, 1,   0,   30,   0,     0,    0},
    {"dec_softcap_d128",  1, 8,  2,  1,   900,   128, F32,  BF16, 1,   0,   30,   0,     0,    0},
    {"dec_noncausal_d64", 2, 4,  1,  1,   300,   64,  F32,  F16,  0,   0,   0,    0,     0,    0},
    {"dec_d128_g16_640",  1, 32, 2,  1,   640,   128, F32,  BF16, 1,   0,   0,    600,   640,  0},
    {"dec_d64_win_ring",  1, 32, 8,  1,   640,   64,  F32,  BF16, 1,   100, 0,    640,   77,   1},
    /* one-row decode at a short context (a step's span of 64 / 128 / 256 capacity slots), the spans the
       one-row kernel takes whole or in a cluster's splits: a single key, a chunk's edge, a window */
    {"dec_d128_short",    1, 32, 8,  1,   128,   128, F32,  BF16, 1,   0,   0,    1,     100,  0},
    {"dec_d64_short",     1, 32, 8,  1,   64,    64,  F32,  BF16, 1,   0,   0,    64,    17,   1},
    {"dec_d128_g8_256",   2, 16, 2,  1,   256,   128, F32,  F16,  1,   0,   0,    200,   256,  0},
    {"dec_d64_short_win", 1, 8,  2,  1,   128,   64,  BF16, BF16, 1,   40,  0,    128,   50,   0},
    {"dec_d128_g16_33",   1, 16, 1,  1,   128,   128, F32,  F16,  0,   0,   20,   33,    128,  1},
    {"pre_d64_causal",    1, 4,  1,  257, 257,   64,  F32,  BF16, 1,   0,   0,    0,     0,    0},
    {"pre_d128_causal",   1, 8,  2,  64,  64,    128, F32,  BF16, 1,   0,   0,    0,     0,    1},
    {"pre_d128_tq_lt_tk", 2, 4,  4,  64,  200,   128, F32,  F16,  1,   0,   0,    0,     0,    0},
    {"pre_d256_window",   1, 4,  2,  257, 300,   256, F32,  BF16, 1,   100, 0,    0,     0,    0},
    {"pre_d256_softcap",  1, 4,  2,  64,  64,    256, BF16, BF16, 1,   0,   50,   0,     0,    1},
    {"pre_d512_causal",   1, 2,  1,  257, 257,   512, F32,  BF16, 1,   0,   0,    0,     0,    0},
    {"pre_d512_kvl",      1, 4,  2,  64,  300,   512, F32,  F16,  1,   31,  0,    250,   64,   0},
    {"pre_noncausal",     1, 4,  1,  64,  100,   64,  F32,  F16,  0,   0,   0,    0,     0,    0},
    {"pre_kvl_lt_tq",     1, 4,  2,  64,  128,   128, F32,  BF16, 1,   0,   0,    20,    0,    0},
    {"pre_g16_t8",        1, 16, 1,  8,   500,   64,  F32,  BF16, 1,   0,   0,    0,     0,    0},
    {"pre_d64_unsplit",   2, 16, 16, 300, 300,   64,  F32,  BF16, 1,   0,   0,    0,     0,    0},
    {"pre_d128_unsplit",  2, 32, 8,  200, 200,   128, F32,  BF16, 1,   0,   0,    0,     0,    0},
    {"pre_d256_unsplit",  2, 16, 8,  300, 300,   256, F32,  F16,  1,   0,   0,    0,     0,    0},
    {"pre_d256_unsplit_w",2, 16, 8,  300, 300,   256, F32,  BF16, 1,   77,  0,    280,   300,  0},
};

/* Host image of a strided [d0, d1, d2, d3] view: `span` elements, gaps 0xFF. */
typedef struct img {
    int64_t shape[4], st[4], span;
    char *p;
} img;

static img img_new(mlxn_dtype dt, const int64_t shape[4], const int64_t st[4]) {
    img m;
    m.span = 1;
    for (int i = 0; i < 4; i++) {
        m.shape[i] = shape[i];
        m.st[i] = st[i];
        m.span += (shape[i] - 1) * st[i];
    }
    m.p = malloc((size_t)m.span * mlxn_dtype_size(dt));
    if (m.p) memset(m.p, 0xFF, (size_t)m.span * mlxn_dtype_size(dt));
    return m;
}

static void img_put(img *m, mlxn_dtype dt, int64_t i0, int64_t i1, int64_t i2, int64_t i3, float v, int nan) {
    int64_t off = i0 * m->st[0] + i1 * m->st[1] + i2 * m->st[2] + i3 * m->st[3];
    if (dt == F32) ((float *)m->p)[off] = nan ? NAN : v;
    else if (dt == BF16) ((uint16_t *)m->p)[off] = nan ? 0xFFFF : mlxn_f32_to_bf16(v);
    else ((uint16_t *)m->p)[off] = nan ? 0xFFFF : mlxn_f32_to_f16(v);
}

/* The image as a tensor on dev (a fresh buffer, freed by the caller). */
static mlxn_tensor on(mlxn_device *dev, mlxn_dtype dt, int nd, const img *m) {
    mlxn_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = nd;
    for (int i = 0; i < nd; i++) t.shape[i] = m->shape[4 - nd + i], t.strides[i] = m->st[4 - nd + i];
    size_t bytes = (size_t)m->span * mlxn_dtype_size(dt);
    CHECK_OK(mlxn_buffer_new(dev, bytes, &t.buf));
    if (t.buf) CHECK_OK(mlxn_buffer_write(t.buf, 0, m->p, bytes));
    return t;
}

static void set_kvl(mlxn_tensor *t, int32_t n) { CHECK_OK(mlxn_buffer_write(t->buf, 0, &n, sizeof n)); }

/* Runs case c on cpu and gpu; returns the worst NMSE over its calls. */
static double run_case(mlxn_device *cpu, mlxn_device *gpu, const attn_tc *c) {
    const int64_t B = c->B, Hq = c->Hq, Hkv = c->Hkv, Tq = c->Tq, Tk = c->Tk, D = c->D;
    const int64_t cap = c->strided ? Tk + 13 : Tk;
    int64_t qsh[4] = {B, Hq, Tq, D}, ksh[4] = {B, Hkv, Tk, D}, osh[4] = {B, Hq, Tq, D};
    int64_t qst[4] = {Hq * Tq * D, Tq * D, D, 1}, kst[4] = {Hkv * cap * D, cap * D, D, 1};
    if (c->strided) qst[0] = Tq * Hq * D, qst[1] = D, qst[2] = Hq * D;
    int64_t ost[4] = {Hq * Tq * D, Tq * D, D, 1};
    img q = img_new(c->qdt, qsh, qst), k = img_new(c->kvdt, ksh, kst), v = img_new(c->kvdt, ksh, kst);
    img o = img_new(F32, osh, ost);
    if (!q.p || !k.p || !v.p || !o.p) {
        CHECK(0, "%s: out of host memory", c->name);
        free(q.p), free(k.p), free(v.p), free(o.p);
        return INFINITY;
    }
    const int used = c->kvl ? (c->kvl > c->kvl2 ? c->kvl : c->kvl2) : (int)Tk; /* rows past it: NaN */
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t t = 0; t < Tq; t++)
                for (int64_t d = 0; d < D; d++) img_put(&q, c->qdt, b, h, t, d, t_randn(), 0);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hkv; h++)
            for (int64_t j = 0; j < Tk; j++)
                for (int64_t d = 0; d < D; d++) {
                    img_put(&k, c->kvdt, b, h, j, d, t_randn(), j >= used);
                    img_put(&v, c->kvdt, b, h, j, d, t_randn(), j >= used);
                }
    mlxn_tensor qc = on(cpu, c->qdt, 4, &q), kc = on(cpu, c->kvdt, 4, &k), vc = on(cpu, c->kvdt, 4, &v);
    mlxn_tensor qg = on(gpu, c->qdt, 4, &q), kg = on(gpu, c->kvdt, 4, &k), vg = on(gpu, c->kvdt, 4, &v);
    mlxn_tensor oc = on(cpu, F32, 4, &o), og = on(gpu, F32, 4, &o); /* poisoned: 0xFF */
    int32_t zero = 0;
    img one = img_new(MLXN_DTYPE_I32, (const int64_t[]){1, 1, 1, 1}, (const int64_t[]){1, 1, 1, 1});
    if (one.p) memcpy(one.p, &zero, 4);
    mlxn_tensor lc = on(cpu, MLXN_DTYPE_I32, 1, &one), lg = on(gpu, MLXN_DTYPE_I32, 1, &one);
    mlxn_sdpa_params p = {.scale = 1.0f / sqrtf((float)D), .causal = c->causal, .window = c->window,
                          .softcap = c->softcap};
    mlxn_sdpa_params pc = p, pg = p;
    if (c->kvl) pc.kv_len = &lc, pg.kv_len = &lg;
    const size_t n = (size_t)(B * Hq * Tq * D);
    float *rc = malloc(n * sizeof(float)), *rg = malloc(n * sizeof(float));
    double worst = 0;
    for (int call = 0; call < (c->kvl ? 2 : 1) && rc && rg; call++) {
        if (c->kvl) {
            set_kvl(&lc, call ? c->kvl2 : c->kvl);
            set_kvl(&lg, call ? c->kvl2 : c->kvl);
        }
        CHECK_OK(mlxn_buffer_write(oc.buf, 0, o.p, n * sizeof(float))); /* poison again */
        CHECK_OK(mlxn_buffer_write(og.buf, 0, o.p, n * sizeof(float)));
        mlxn_status sc = mlxn_sdpa(mlxn_device_stream(cpu), &qc, &kc, &vc, &pc, &oc);
        mlxn_status sg = mlxn_sdpa(mlxn_device_stream(gpu), &qg, &kg, &vg, &pg, &og);
        CHECK(sc == MLXN_OK, "%s: cpu: %s", c->name, mlxn_last_error());
        CHECK(sg == MLXN_OK, "%s: cuda: %s", c->name, mlxn_last_error());
        CHECK_OK(mlxn_stream_sync(mlxn_device_stream(gpu)));
        CHECK_OK(mlxn_buffer_read(oc.buf, 0, rc, n * sizeof(float)));
        CHECK_OK(mlxn_buffer_read(og.buf, 0, rg, n * sizeof(float)));
        const double thr = c->kvdt == BF16 ? 2e-4 : 2e-5;
        double e = t_nmse(rc, rg, n);
        CHECK(e <= thr, "%s (kv_len %d): cuda vs cpu nmse %.3g > %.1g (max |diff| %.3g)", c->name,
              c->kvl ? (call ? c->kvl2 : c->kvl) : -1, e, thr, t_max_abs_diff(rc, rg, n));
        if (!(e <= worst)) worst = e;
    }
    free(rc), free(rg);
    mlxn_tensor *all[] = {&qc, &kc, &vc, &qg, &kg, &vg, &oc, &og, &lc, &lg};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mlxn_buffer_free(all[i]->buf);
    free(q.p), free(k.p), free(v.p), free(o.p), free(one.p);
    return worst;
}

/* Every case (decode_only: those with one query position) on gpu against cpu. */
static void run_all(mlxn_device *cpu, mlxn_device *gpu, const char *label, int decode_only) {
    printf("%s:\n", label);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (decode_only && cases[i].Tq != 1) continue;
        double e = run_case(cpu, gpu, &cases[i]);
        printf("  %-18s D %3lld Hq %2lld Hkv %lld Tq %3lld Tk %5lld %s: worst nmse %.3g\n", cases[i].name,
               (long long)cases[i].D, (long long)cases[i].Hq, (long long)cases[i].Hkv, (long long)cases[i].Tq,
               (long long)cases[i].Tk, cases[i].kvdt == BF16 ? "bf16" : "f16 ", e);
    }
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_backend_attn");
    mlxn_device *gpu = t_cuda_device();
    if (!gpu) return t_skip("no CUDA device");
    mlxn_device *cpu = t_cpu_device_exact(0);
    printf("%s vs %s\n", mlxn_device_name(gpu), mlxn_device_name(cpu));
    run_all(cpu, gpu, "default", 0);
    mlxn_device_free(gpu);
    /* the one-row decode cases again with each switch that changes their path (read when a device's
       stream is made): the tile kernel alone, and the splits merged by fa_combine instead of a cluster */
    static const char *const runs[][2] = {{"MLXN_CUDA_FA_DECODE", "0"}, {"MLXN_CUDA_FA_CLUSTER", "0"}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        setenv(runs[r][0], runs[r][1], 1);
        gpu = t_cuda_device();
        char label[64];
        snprintf(label, sizeof label, "%s=%s", runs[r][0], runs[r][1]);
        if (gpu) run_all(cpu, gpu, label, 1);
        CHECK(gpu != NULL, "%s: the CUDA device did not open again", label);
        mlxn_device_free(gpu);
        unsetenv(runs[r][0]);
    }
    mlxn_device_free(cpu);
    return t_finish();
}
