/* Flash-style attention on the CPU (semantics in sdpa_kernels.h).
 *
 * Work item = (batch, kv head, block of query positions, key split). An
 * item takes every query head of its kv head's group (G = Hq / Hkv) for its
 * query positions, so one K/V block, converted to f32 once, serves G * QB
 * query rows (why: grouped-query attention without tiling K/V, and f16/bf16
 * caches converted once per block instead of once per query head). Keys are
 * visited in blocks of SDPA_KB with an online softmax per row: running max
 * m, running denominator l, unnormalized output acc; a block raising the max
 * rescales l and acc by exp(m_old - m_new). A sink starts a row at m = sink,
 * l = 1 (its value row is zero).
 *
 * Scheduling: items are taken from an atomic counter, latest query blocks
 * first (why: under a causal mask they see the most keys; handing out the
 * big ones first keeps threads from idling at the end). When there are too
 * few (batch, kv head, query block) groups for the threads, e.g. decode
 * with few kv heads, each group's keys are split into S ranges whose
 * partial (m, l, acc) are merged afterwards.
 *
 * A problem may bring its own keys and values (the TurboQuant cache):
 * fetch decodes K/V blocks to f32; kscores scores a block from its codes;
 * vsum (decode) adds a block's weighted values from its codes, in 64-key
 * blocks when both hooks are set (vsum_block). */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_tensor.h"
#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/sdpa_kernels.h"
#include "core/internal.h"
#include "core/threadpool.h"

/* Keys per block, at most: K and V of a 32-key block of head dim 128 in
 * f32 are 2 x 16 KiB, so both stay in L1 while every row of the item
 * reuses them (64 keys spilled to L2 and ran 25% slower in decode). Wider
 * heads take fewer keys per block to stay within the same 32 KiB
 * (block_keys). */
#define SDPA_KB 32
/* Keys per block where the problem scores and sums from its own codes
 * (kscores and vsum: a TurboQuant decode): there is no f32 K/V block to keep
 * in L1, so twice the keys spread each block's fixed costs (the hooks'
 * setup, every row's softmax step) further. The scores' row stride (sc). */
#define SDPA_KB_CODES 64
#define SDPA_KV_BYTES (32 * 1024)
/* Target query rows per item (G * QB): enough rows to amortize a block's
 * conversion, few enough that the per-row state stays in cache. */
#define SDPA_ROWS 64
/* Smallest key range worth a split of its own. */
#define SDPA_MIN_SPLIT (4 * SDPA_KB)

/* Query rows per prefill item from which the block's two products run on
 * the dense matmul's micro-kernel (sdpa_block_gemm), where the ISA has one:
 * two of its 6-row tiles. */
#define SDPA_GEMM_ROWS 12

typedef struct flash_job {
    const sdpa_problem *p;
    const sdpa_kernels *kr;
    const mm_kernels *mk; /* the micro-kernel for prefill items (AVX2), else NULL */
    int64_t QB, nqb, S, n_items, max_rows;
    atomic_llong next;  /* next item to hand out */
    char *scratch;      /* [threads][per_thread] bytes */
    size_t per_thread;
    float *part;        /* S > 1: [groups][S][max_rows][Dv + 2]: acc, then m and l */
} flash_job;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Dv rounded up to whole 16-wide panels of the micro-kernel. */
static int64_t dv16(const sdpa_problem *p) { return (p->Dv + 15) / 16 * 16; }

/* Keys per block for head dims D / Dv: SDPA_KB, halved while the block's
 * K and V in f32 exceed SDPA_KV_BYTES (at least 8 keys). */
static int64_t block_keys(const sdpa_problem *p) {
    int64_t kb = SDPA_KB;
    while (kb > 8 && kb * (p->D + p->Dv) * (int64_t)sizeof(float) > SDPA_KV_BYTES) kb /= 2;
    return kb;
}

/* Per-thread scratch layout, in bytes. */
typedef struct flash_scratch {
    float *q;          /* [max_rows][D] scaled queries */
    float *kbuf;       /* [SDPA_KB][D] converted keys */
    float *vbuf;       /* [SDPA_KB][Dv] converted values */
    float *s, *s2;     /* [SDPA_KB] scores / weights of one or two rows */
    float *m, *l;      /* [max_rows] running max and denominator */
    float *corr;       /* [max_rows] (vsum) each row's rescale for the block */
    unsigned char *live; /* [max_rows] (vsum) whether the row sees a key of the block */
    int64_t *lo, *hi;  /* [max_rows] visible key range */
    float **acc;       /* [max_rows] output accumulators */
    const char **mask; /* [max_rows] mask rows */
    /* sdpa_block_gemm (prefill items): */
    float *kpk;        /* [SDPA_KB / 16][D][16] the block's keys, 16 to a panel (the micro-kernel's packed B) */
    float *vpk;        /* [ceil(Dv / 16)][n][16] its n values, 16 dims to a panel (room for SDPA_KB) */
    float *sc;         /* [max_rows][SDPA_KB_CODES] scores, then weights */
    float *o;          /* [max_rows][Dv16] unnormalized outputs (Dv16: Dv rounded up to 16) */
} flash_scratch;

/* Carves fs out of base (0 when only the size is wanted); returns the size. */
static size_t scratch_layout(const sdpa_problem *p, int64_t rows, uintptr_t base, flash_scratch *fs) {
    size_t off = 0;
#define TAKE(field, bytes)                                   \
    do {                                                     \
        fs->field = (void *)(base + off);                    \
        off += align64((size_t)(bytes));                     \
    } while (0)
    TAKE(q, rows * p->D * 4);
    TAKE(kbuf, SDPA_KB * p->D * 4);
    TAKE(vbuf, SDPA_KB * p->Dv * 4);
    TAKE(s, SDPA_KB * 4);
    TAKE(s2, SDPA_KB * 4);
    TAKE(m, rows * 4);
    TAKE(l, rows * 4);
    TAKE(corr, rows * 4);
    TAKE(live, rows);
    TAKE(lo, rows * 8);
    TAKE(hi, rows * 8);
    TAKE(acc, rows * sizeof(float *));
    TAKE(mask, rows * sizeof(char *));
    TAKE(kpk, SDPA_KB * p->D * 4);
    TAKE(vpk, SDPA_KB * dv16(p) * 4);
    TAKE(sc, rows * SDPA_KB_CODES * 4);
    TAKE(o, rows * dv16(p) * 4);
#undef TAKE
    return off;
}

/* Rows n0 .. n0+n of a K or V view for (b, hk) as f32 rows of stride *ld:
 * the tensor itself when it is f32 with unit inner stride, else converted
 * into buf. */
static const float *kv_block(const sdpa_kernels *kr, const sdpa_view *v, int64_t b, int64_t hk, int64_t n0,
                             int64_t n, int64_t dim, float *buf, int64_t *ld) {
    if (v->dt == MLXN_DTYPE_F32 && (v->s[3] == 1 || dim <= 1)) {
        *ld = v->s[2];
        return (const float *)sdpa_row(v, b, hk, n0);
    }
    for (int64_t j = 0; j < n; j++) kr->to_f32(sdpa_row(v, b, hk, n0 + j), v->dt, v->s[3], dim, buf + j * dim);
    *ld = dim;
    return buf;
}

/* Keys and values [kb, kb + n) of (b, hk) as f32 rows: decoded by the
 * problem's fetch (a TurboQuant cache), else the views themselves or
 * converted (kv_block). */
static void block_kv(const sdpa_problem *p, const sdpa_kernels *kr, const flash_scratch *fs, int64_t b, int64_t hk,
                     int64_t kb, int64_t n, int want_k, int want_v, const float **kp, int64_t *ldk, const float **vp,
                     int64_t *ldv) {
    if (p->fetch) { /* only what is asked (kscores and vsum work from the codes) */
        if (want_k) p->fetch(p->fetch_ctx, 0, b, hk, kb, n, fs->kbuf);
        if (want_v) p->fetch(p->fetch_ctx, 1, b, hk, kb, n, fs->vbuf);
        *kp = fs->kbuf, *vp = fs->vbuf, *ldk = p->D, *ldv = p->Dv;
        return;
    }
    *kp = kv_block(kr, &p->k, b, hk, kb, n, p->D, fs->kbuf, ldk);
    *vp = kv_block(kr, &p->v, b, hk, kb, n, p->Dv, fs->vbuf, ldv);
}

/* Online-softmax step for row r over scores s[0..n) of keys a .. a+n:
 * applies softcap and mask, turns s into weights exp(s - m_new), updates
 * the row's m and l, and returns in *corr the factor its acc must be
 * scaled by. Returns 0 (state untouched) when every key is masked. */
static int row_softmax(const sdpa_problem *p, const sdpa_kernels *kr, const flash_scratch *fs, int64_t r,
                       int64_t a, float *s, int64_t n, float *corr) {
    if (p->softcap > 0.0f || fs->mask[r]) sdpa_cap_and_mask(p, fs->mask[r], a, n, s);
    const float bm = kr->max(s, n);
    if (bm == -INFINITY) return 0;
    const float mo = fs->m[r], mn = bm > mo ? bm : mo;
    *corr = mo == -INFINITY ? 0.0f : expf(mo - mn);
    fs->l[r] = fs->l[r] * *corr + kr->exp_sum(s, n, mn);
    fs->m[r] = mn;
    return 1;
}

/* One key block [kb, kb + n) for the item's M rows as two matrix products
 * on the dense matmul's micro-kernel (mk: mr x 16 tiles, packed B):
 *   S = Q K^T   (rows x keys; the keys packed 16 to a panel, [D][16])
 *   online softmax per row over its visible keys (row_softmax), invisible
 *   ones zeroed, each row's output rescaled by its correction
 *   O += P V    (rows x Dv; the values packed 16 dims to a panel)
 * Why: the per-row dot and axpy kernels reduce every score horizontally
 * and reload K and V per row pair; with a whole item's rows the block is a
 * small GEMM, which the micro-kernel runs near the FMA peak. The sums are
 * f32 in key order per output, as in the per-row kernels (the order of
 * the dims in a score differs: results agree to f32 rounding). */
static void sdpa_block_gemm(const flash_job *job, const flash_scratch *fs, int64_t M, int64_t kb, int64_t n,
                            const float *kp, int64_t ldk, const float *vp, int64_t ldv) {
    const sdpa_problem *p = job->p;
    const mm_kernels *mk = job->mk;
    const int64_t D = p->D, Dv = p->Dv, DV16 = dv16(p), np = (n + 15) / 16, nvp = DV16 / 16;
    /* K [n][D] -> kpk [np][D][16], keys past n zero: the dense matmul's packing of a B contiguous
       along k (B[d][key] = K[key][d]), which transposes in registers */
    const mm_problem kb_view = {.K = D, .N = n, .w = kp, .wdt = MLXN_DTYPE_F32, .rsb = 1, .csb = ldk};
    mk->pack_b(&kb_view, 0, D, 0, n, fs->kpk);
    /* V [n][Dv] -> vpk [nvp][n][16], dims past Dv zero: the same packing of a B contiguous along n
       (B[key][d] = V[key][d]) */
    const mm_problem vb_view = {.K = n, .N = Dv, .w = vp, .wdt = MLXN_DTYPE_F32, .rsb = ldv, .csb = 1};
    mk->pack_b(&vb_view, 0, n, 0, Dv, fs->vpk);
    const int mr = mk->mr;
    const float *a[8];
    /* S = Q K^T */
    for (int64_t r = 0; r < M; r += mr) {
        const int mv = (int)(M - r < mr ? M - r : mr);
        for (int i = 0; i < mr; i++) a[i] = fs->q + (r + (i < mv ? i : mv - 1)) * D;
        for (int64_t pj = 0; pj < np; pj++) {
            const int nv = (int)(n - pj * 16 < 16 ? n - pj * 16 : 16);
            mk->micro(D, a, fs->kpk + pj * D * 16, fs->sc + r * SDPA_KB_CODES + pj * 16, SDPA_KB_CODES, 0, mv, nv);
        }
    }
    /* per row: the visible keys' softmax step; everything else a zero weight */
    for (int64_t r = 0; r < M; r++) {
        float *s = fs->sc + r * SDPA_KB_CODES;
        const int64_t lo = fs->lo[r] > kb ? fs->lo[r] : kb, hi = fs->hi[r] < kb + n ? fs->hi[r] : kb + n;
        float corr = 1.0f;
        if (lo >= hi || !row_softmax(p, job->kr, fs, r, lo, s + (lo - kb), hi - lo, &corr)) {
            memset(s, 0, (size_t)n * sizeof(float));
            continue;
        }
        for (int64_t j = 0; j < lo - kb; j++) s[j] = 0.0f;
        for (int64_t j = hi - kb; j < n; j++) s[j] = 0.0f;
        if (corr != 1.0f)
            for (int64_t d = 0; d < Dv; d++) fs->o[r * DV16 + d] *= corr;
    }
    /* O += P V */
    for (int64_t r = 0; r < M; r += mr) {
        const int mv = (int)(M - r < mr ? M - r : mr);
        for (int i = 0; i < mr; i++) a[i] = fs->sc + (r + (i < mv ? i : mv - 1)) * SDPA_KB_CODES;
        for (int64_t pv = 0; pv < nvp; pv++)
            mk->micro(n, a, fs->vpk + pv * n * 16, fs->o + r * DV16 + pv * 16, DV16, 1, mv, 16);
    }
}

/* One key block [kb, kb + n) of an item through p->vsum: every row's scores
 * (kscores, or the kernels' dots over fetched keys), each visible row's
 * softmax step with its weights zeroed outside what it sees, then the
 * hook adds the weighted values to the rows it marks live. */
static void vsum_block(const sdpa_problem *p, const sdpa_kernels *kr, const flash_scratch *fs, int64_t b, int64_t hk,
                       int64_t t0, int64_t nt, int64_t M, int64_t kb, int64_t n) {
    const float *kp = NULL, *vp = NULL;
    int64_t ldk = 0, ldv = 0;
    int loaded = 0, any = 0;
    for (int64_t r = 0; r < M; r++) {
        fs->live[r] = 0;
        const int64_t a = fs->lo[r] > kb ? fs->lo[r] : kb, e = fs->hi[r] < kb + n ? fs->hi[r] : kb + n;
        if (a >= e) continue;
        if (!loaded) { /* on first use: a window may skip whole blocks */
            if (p->kscores) p->kscores(p->fetch_ctx, b, hk, t0, nt, kb, n, fs->sc, SDPA_KB_CODES);
            else block_kv(p, kr, fs, b, hk, kb, n, 1, 0, &kp, &ldk, &vp, &ldv);
            loaded = 1;
        }
        float *s = fs->sc + r * SDPA_KB_CODES;
        if (!p->kscores) kr->dots(fs->q + r * p->D, kp + (a - kb) * ldk, ldk, e - a, p->D, s + (a - kb));
        if (!row_softmax(p, kr, fs, r, a, s + (a - kb), e - a, &fs->corr[r])) continue;
        for (int64_t j = 0; j < a - kb; j++) s[j] = 0.0f;
        for (int64_t j = e - kb; j < n; j++) s[j] = 0.0f;
        fs->live[r] = 1, any = 1;
    }
    if (any) p->vsum(p->fetch_ctx, b, hk, kb, n, fs->sc, SDPA_KB_CODES, fs->corr, fs->live, M, fs->acc);
}

static void run_item(flash_job *job, int64_t idx, const flash_scratch *fs) {
    const sdpa_problem *p = job->p;
    const sdpa_kernels *kr = job->kr;
    const int64_t S = job->S, per_qb = p->B * p->Hkv * S;
    const int64_t qb = job->nqb - 1 - idx / per_qb, rem = idx % per_qb;
    const int64_t split = rem % S, b = (rem / S) / p->Hkv, hk = (rem / S) % p->Hkv;
    const int64_t t0 = qb * job->QB, t1 = t0 + job->QB < p->Tq ? t0 + job->QB : p->Tq, nt = t1 - t0;
    const int64_t M = p->G * nt, Dv = p->Dv;
    const int use_sink = p->sinks && split == 0;
    const int64_t KB = p->kscores && p->vsum ? SDPA_KB_CODES : block_keys(p);
    float *part = NULL;
    if (S > 1) {
        int64_t group = ((qb * p->B + b) * p->Hkv + hk);
        part = job->part + (group * S + split) * job->max_rows * (Dv + 2);
    }

    /* per-row setup: query, visible range, state, where the output goes */
    int64_t ulo = p->Tk, uhi = 0;
    for (int64_t r = 0; r < M; r++) {
        const int64_t h = hk * p->G + r / nt, t = t0 + r % nt;
        float *q = fs->q + r * p->D;
        kr->to_f32(sdpa_row(&p->q, b, h, t), p->q.dt, p->q.s[3], p->D, q);
        for (int64_t d = 0; d < p->D; d++) q[d] *= p->scale;
        sdpa_key_range(p, t, &fs->lo[r], &fs->hi[r]);
        if (fs->lo[r] < fs->hi[r]) {
            if (fs->lo[r] < ulo) ulo = fs->lo[r];
            if (fs->hi[r] > uhi) uhi = fs->hi[r];
        }
        fs->m[r] = use_sink ? p->sinks[h * p->sink_stride] : -INFINITY;
        fs->l[r] = use_sink ? 1.0f : 0.0f;
        fs->acc[r] = S > 1 ? part + r * (Dv + 2) : p->out + ((b * p->Hq + h) * p->Tq + t) * Dv;
        memset(fs->acc[r], 0, (size_t)Dv * sizeof(float));
        fs->mask[r] = p->mask ? sdpa_mask_row(p, b, h, t) : NULL;
    }
    /* this split's share of the keys, whole blocks each */
    int64_t ks = ulo, ke = uhi;
    if (S > 1 && ulo < uhi) {
        int64_t per = ((uhi - ulo + S - 1) / S + KB - 1) / KB * KB;
        ks = ulo + split * per;
        ke = ks + per < uhi ? ks + per : uhi;
    }
    /* the block as two small GEMMs (sdpa_block_gemm) for prefill items only:
     * a decode item of one query position and a 16-head group measured
     * slower that way (tq4 D256 32 q / 2 kv at 4096 keys 2.2 -> 2.5-2.8 ms:
     * the packing is shared by too few rows) */
    const int gemm = job->mk && !p->vsum && nt > 1 && M >= SDPA_GEMM_ROWS;
    if (gemm) memset(fs->o, 0, (size_t)(M * dv16(p)) * sizeof(float));

    for (int64_t kb = ks; kb < ke; kb += KB) {
        const int64_t n = ke - kb < KB ? ke - kb : KB;
        if (gemm) {
            int seen = 0; /* some row sees a key of the block */
            for (int64_t r = 0; r < M && !seen; r++) seen = fs->lo[r] < kb + n && fs->hi[r] > kb;
            if (!seen) continue;
            const float *kp, *vp;
            int64_t ldk, ldv;
            block_kv(p, kr, fs, b, hk, kb, n, 1, 1, &kp, &ldk, &vp, &ldv);
            sdpa_block_gemm(job, fs, M, kb, n, kp, ldk, vp, ldv);
            continue;
        }
        if (p->vsum) { /* decode with the values' side in the hook */
            vsum_block(p, kr, fs, b, hk, t0, nt, M, kb, n);
            continue;
        }
        const float *kp = NULL, *vp = NULL;
        int64_t ldk = 0, ldv = 0;
        for (int64_t r = 0; r < M; r++) {
            const int64_t a = fs->lo[r] > kb ? fs->lo[r] : kb, e = fs->hi[r] < kb + n ? fs->hi[r] : kb + n;
            if (a >= e) continue;
            /* on first use: a window may skip whole blocks */
            if (!vp) {
                block_kv(p, kr, fs, b, hk, kb, n, !p->kscores, 1, &kp, &ldk, &vp, &ldv);
                if (p->kscores) p->kscores(p->fetch_ctx, b, hk, t0, nt, kb, n, fs->sc, SDPA_KB_CODES); /* every row's */
            }
            const int64_t g = r / nt;
            if (kr->dots2 && g % 2 == 1) continue; /* done with its partner row r - nt */
            const int64_t n1 = e - a;
            const float *kj = kp + (a - kb) * ldk, *vj = vp + (a - kb) * ldv;
            float *s = fs->s, *s2 = fs->s2, c1 = 1.0f, c2 = 1.0f;
            if (p->kscores) s = fs->sc + r * SDPA_KB_CODES + (a - kb); /* the scores of keys a .. e */
            if (kr->dots2 && g + 1 < p->G) {
                /* heads g and g + 1 at the same position see the same keys:
                 * one pass over the block serves both (why: halves the K/V
                 * loads per FMA) */
                const int64_t r2 = r + nt;
                if (p->kscores) s2 = fs->sc + r2 * SDPA_KB_CODES + (a - kb);
                else kr->dots2(fs->q + r * p->D, fs->q + r2 * p->D, kj, ldk, n1, p->D, s, s2);
                int ok1 = row_softmax(p, kr, fs, r, a, s, n1, &c1);
                int ok2 = row_softmax(p, kr, fs, r2, a, s2, n1, &c2);
                if (!ok1 && !ok2) continue;
                if (!ok1) memset(s, 0, (size_t)n1 * sizeof(float));
                if (!ok2) memset(s2, 0, (size_t)n1 * sizeof(float));
                kr->pv2(s, s2, vj, ldv, n1, Dv, c1, c2, fs->acc[r], fs->acc[r2]);
            } else {
                if (!p->kscores) kr->dots(fs->q + r * p->D, kj, ldk, n1, p->D, s);
                if (row_softmax(p, kr, fs, r, a, s, n1, &c1)) kr->pv(s, vj, ldv, n1, Dv, c1, fs->acc[r]);
            }
        }
    }

    if (gemm)
        for (int64_t r = 0; r < M; r++) memcpy(fs->acc[r], fs->o + r * dv16(p), (size_t)Dv * sizeof(float));
    for (int64_t r = 0; r < M; r++) {
        float *acc = fs->acc[r];
        if (S > 1) {
            acc[Dv] = fs->m[r];
            acc[Dv + 1] = fs->l[r];
            continue;
        }
        const float inv = fs->l[r] > 0.0f ? 1.0f / fs->l[r] : 0.0f; /* no visible key: zeros */
        for (int64_t d = 0; d < Dv; d++) acc[d] = fs->l[r] > 0.0f ? acc[d] * inv : 0.0f;
    }
}

static void flash_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)begin;
    (void)end;
    flash_job *job = arg;
    flash_scratch fs;
    scratch_layout(job->p, job->max_rows, (uintptr_t)(job->scratch + (size_t)thread * job->per_thread), &fs);
    for (;;) {
        long long i = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (i >= job->n_items) break;
        run_item(job, i, &fs);
    }
}

/* Merge the S partial results of each (query block, batch, kv head) group. */
static void combine_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const flash_job *job = arg;
    const sdpa_problem *p = job->p;
    const int64_t S = job->S, Dv = p->Dv, stride = job->max_rows * (Dv + 2);
    for (int64_t g = begin; g < end; g++) {
        const int64_t qb = g / (p->B * p->Hkv), b = (g / p->Hkv) % p->B, hk = g % p->Hkv;
        const int64_t t0 = qb * job->QB, t1 = t0 + job->QB < p->Tq ? t0 + job->QB : p->Tq, nt = t1 - t0;
        const float *base = job->part + g * S * stride;
        for (int64_t r = 0; r < p->G * nt; r++) {
            const int64_t h = hk * p->G + r / nt, t = t0 + r % nt;
            float *o = p->out + ((b * p->Hq + h) * p->Tq + t) * Dv;
            float mx = -INFINITY, l = 0.0f;
            for (int64_t sp = 0; sp < S; sp++) {
                float ms = base[sp * stride + r * (Dv + 2) + Dv];
                if (ms > mx) mx = ms;
            }
            for (int64_t d = 0; d < Dv; d++) o[d] = 0.0f;
            if (mx == -INFINITY) continue;
            for (int64_t sp = 0; sp < S; sp++) {
                const float *pa = base + sp * stride + r * (Dv + 2);
                if (pa[Dv] == -INFINITY) continue;
                const float w = expf(pa[Dv] - mx);
                l += pa[Dv + 1] * w;
                for (int64_t d = 0; d < Dv; d++) o[d] += pa[d] * w;
            }
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;
            for (int64_t d = 0; d < Dv; d++) o[d] *= inv;
        }
    }
}

mlxn_status sdpa_flash(struct mlxn_threadpool *pool, const sdpa_problem *p, const sdpa_kernels *kr) {
    const int64_t threads = mlxn_threadpool_size(pool);
    int64_t QB = SDPA_ROWS / p->G > 1 ? SDPA_ROWS / p->G : 1;
    if (QB > p->Tq) QB = p->Tq;
    /* smaller query blocks until every thread has a few groups to take */
    while (QB > 1 && p->B * p->Hkv * ((p->Tq + QB - 1) / QB) < 4 * threads) QB = (QB + 1) / 2;
    const int64_t nqb = (p->Tq + QB - 1) / QB, groups = p->B * p->Hkv * nqb;
    int64_t S = 1;
    if (threads > 1 && groups < 2 * threads) { /* decode-like: split the keys as well */
        S = (2 * threads + groups - 1) / groups;
        int64_t max_s = p->Tk / SDPA_MIN_SPLIT;
        if (S > max_s) S = max_s;
        if (S < 1) S = 1;
    }
    flash_job job = {.p = p, .kr = kr, .QB = QB, .nqb = nqb, .S = S, .n_items = groups * S, .max_rows = p->G * QB};
    /* the micro-kernel path at the AVX2 level only (measured there; AVX-512 keeps the per-row kernels) */
    const mm_kernels *mk = mm_kernels_avx2();
    if (kr == sdpa_kernels_avx2() && mk && mk->nr == 16 && mk->mr <= 8) job.mk = mk;
    atomic_init(&job.next, 0);
    flash_scratch sizing;
    job.per_thread = scratch_layout(p, job.max_rows, 0, &sizing);
    job.scratch = aligned_alloc(64, job.per_thread * (size_t)threads);
    if (S > 1) job.part = malloc((size_t)(groups * S * job.max_rows * (p->Dv + 2)) * sizeof(float));
    if (!job.scratch || (S > 1 && !job.part)) {
        free(job.scratch);
        free(job.part);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "sdpa: no memory for %lld threads' scratch", (long long)threads);
    }
    /* one task per thread; each pulls items until none are left */
    mlxn_parallel_for(pool, threads < job.n_items ? threads : job.n_items, 1, flash_task, &job);
    if (S > 1) {
        /* groups per task: a decode's merge is a few microseconds of work, less than waking a worker, so small
           merges run on the calling thread (2-core AVX2 VM, SmolLM2's heads at 64 keys, medians of three runs:
           tq4 27 -> 11 us, the dense f32 cache 16 -> 5 us) */
        const int64_t per_group = S * job.max_rows * (p->Dv + 2);
        mlxn_parallel_for(pool, groups, per_group < 32768 ? 32768 / per_group : 1, combine_task, &job);
    }
    free(job.scratch);
    free(job.part);
    return MLXN_OK;
}
