/* mlxn_sample (the sampler as an op, so a GPU decode loop keeps the logits
 * on the device):
 *   - the CPU op against the host sampler (mlxn_sampler_sample, the
 *     mlx-lm semantics) on seeded random logits with ties and -inf, for
 *     every filter combination: the same token for the same draw;
 *   - hand-made cases whose answer is known (top_k 1, a tiny nucleus,
 *     min_p 1 with ties, top_k through a tie keeping the lower ids, all
 *     -inf), and drawn frequencies against the tempered softmax;
 *   - bad arguments;
 *   - on a CUDA device (skipped without one, exit 77 when it is the only
 *     part left), the same cases against the CPU op, with strided logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

typedef struct sp_case {
    float temp, top_p, min_p;
    int keep, top_k;
} sp_case;

static const sp_case cases[] = {
    {0, 0, 0, 1, 0},       {1, 0, 0, 1, 0},      {0.7f, 0, 0, 1, 0},    {1.5f, 0.9f, 0, 1, 0},
    {1, 0.5f, 0, 1, 0},    {1, 0.95f, 0, 1, 40}, {0.8f, 0, 0.05f, 1, 0}, {1, 0, 0.2f, 3, 0},
    {1, 0, 0, 1, 1},       {1, 0, 0, 1, 5},      {1.2f, 0.9f, 0.1f, 2, 7}, {0.6f, 0.3f, 0.5f, 4, 3},
    {2, 0.99f, 0.01f, 1, 1000}, {1, 0, 0, 1, 40},      {0.9f, 0, 0, 1, 20000}, {1, 0, 0.0001f, 1, 0},
    {1, 0.999f, 0, 1, 0},   {1, 0, 1.0f, 1, 0},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

/* Random logits of one of several kinds: plain normal, rounded to halves
 * (many ties), a few -inf, one dominant token, spread over hundreds of
 * nats, all equal (one tie group), all within a hundredth of a nat, and
 * a third of them tied at 1e9 (the rest 64..256 below). Kinds 4-6 meet
 * the CUDA op's bins (cu_sample.cu) at their edges: the open-ended bins
 * far below the top, and every token in one bin. Kind 7 is where f32
 * log-sum-exp rounds to the maximum, so every tied token has mass 1 and
 * the masses of one chunk add up to thousands (its fixed-point sums). */
enum { N_KINDS = 8 };
static void fill_logits(float *x, int V, int kind) {
    const float c = t_randn();
    for (int i = 0; i < V; i++) {
        float v = t_randn() * 3.0f;
        if (kind == 1) v = roundf(v * 2.0f) * 0.5f;
        if (kind == 2 && t_rand_u64() % 7 == 0) v = -INFINITY;
        if (kind == 4) v *= 40.0f;
        if (kind == 5) v = c;
        if (kind == 6) v = c + v * 0.003f;
        if (kind == 7) v = t_rand_u64() % 3 ? 1e9f - 64.0f * (float)(1 + t_rand_u64() % 4) : 1e9f;
        x[i] = v;
    }
    if (kind == 2) x[t_rand_u64() % (uint64_t)V] = t_randn(); /* at least one finite logit */
    if (kind == 3) x[t_rand_u64() % (uint64_t)V] = 25.0f;
}

static mlxn_sample_params op_params(const sp_case *c, uint64_t seed, uint64_t counter) {
    return (mlxn_sample_params){.temperature = c->temp, .top_p = c->top_p, .min_p = c->min_p,
                                .min_tokens_to_keep = c->keep, .top_k = c->top_k, .seed = seed, .counter = counter};
}

/* Run the op on a device; logits copied in with element stride `st`. -100 on failure. */
static int32_t run_op(mlxn_device *dev, const float *x, int V, int64_t st, const mlxn_sample_params *p) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t shape[1] = {V}, strides[1] = {st}, one[1] = {1};
    mlxn_tensor lt = t_tensor_strided(dev, MLXN_DTYPE_F32, 1, shape, strides);
    mlxn_tensor tt = t_tensor_contig(dev, MLXN_DTYPE_I32, 1, one);
    int32_t tok = -100, poison = 0x7f7f7f7f;
    float *tmp = malloc((size_t)V * (size_t)st * sizeof(float));
    if (lt.buf && tt.buf && tmp) {
        for (int64_t i = 0; i < (int64_t)V * st; i++) tmp[i] = (i % st) ? NAN : x[i / st];
        CHECK_OK(mlxn_buffer_write(lt.buf, 0, tmp, (size_t)((V - 1) * st + 1) * sizeof(float)));
        CHECK_OK(mlxn_buffer_write(tt.buf, 0, &poison, sizeof poison));
        mlxn_status r = mlxn_sample(s, &lt, p, &tt);
        CHECK(r == MLXN_OK, "sample on %s: %s", mlxn_device_name(dev), mlxn_last_error());
        CHECK_OK(mlxn_stream_sync(s));
        CHECK_OK(mlxn_buffer_read(tt.buf, 0, &tok, sizeof tok));
        CHECK(tok != poison, "sample on %s left the token unwritten", mlxn_device_name(dev));
        if (r != MLXN_OK) tok = -100;
    }
    free(tmp);
    t_tensor_free(&lt);
    t_tensor_free(&tt);
    return tok;
}

/* The CPU op draws what the host sampler draws, draw after draw. */
static void test_vs_host(mlxn_device *cpu) {
    static const int sizes[] = {1, 2, 7, 64, 333, 4099};
    int mismatches = 0, total = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int V = sizes[si];
        float *x = malloc((size_t)V * sizeof(float)), *h = malloc((size_t)V * sizeof(float));
        if (!x || !h) {
            CHECK(0, "out of memory");
            free(x), free(h);
            return;
        }
        for (int kind = 0; kind < N_KINDS; kind++) {
            fill_logits(x, V, kind);
            for (int ci = 0; ci < N_CASES; ci++) {
                const sp_case *c = &cases[ci];
                uint64_t seed = t_rand_u64();
                mlxn_sampler_params hp = {.temperature = c->temp, .top_p = c->top_p, .min_p = c->min_p,
                                          .min_tokens_to_keep = c->keep, .top_k = c->top_k, .seed = seed};
                mlxn_sampler *hs = NULL;
                CHECK_OK(mlxn_sampler_new(&hp, V, &hs));
                if (!hs) continue;
                for (uint64_t k = 1; k <= 3; k++) {
                    memcpy(h, x, (size_t)V * sizeof(float));
                    int32_t want = -1;
                    CHECK_OK(mlxn_sampler_sample(hs, h, NULL, 0, &want));
                    mlxn_sample_params p = op_params(c, seed, k);
                    int32_t got = run_op(cpu, x, V, 1, &p);
                    total++;
                    if (got != want) {
                        mismatches++;
                        CHECK(0, "V %d kind %d case %d draw %llu: op %d, host sampler %d", V, kind, ci,
                              (unsigned long long)k, got, want);
                    }
                }
                mlxn_sampler_free(hs);
            }
        }
        free(x), free(h);
    }
    CHECK(mismatches == 0, "%d of %d draws differ from the host sampler", mismatches, total);
    printf("cpu op vs host sampler: %d draws, %d differ\n", total, mismatches);
}

/* Cases with a known answer. */
static void test_known(mlxn_device *dev) {
    const char *dn = mlxn_device_name(dev);
    float x[6] = {1.0f, 3.0f, 3.0f, -2.0f, 2.9f, 0.0f};
    sp_case c;
    int seen_minp[6] = {0}; /* min_p 1's draws by id: both tied maxima must come up */
    for (uint64_t k = 1; k <= 50; k++) {
        c = (sp_case){1.0f, 0, 0, 1, 1}; /* top_k 1 through a tie: the lower id */
        mlxn_sample_params p = op_params(&c, 5, k);
        CHECK(run_op(dev, x, 6, 1, &p) == 1, "%s: top_k 1 keeps id 1", dn);
        c = (sp_case){1.0f, 0, 1.0f, 1, 0}; /* min_p 1: only the maximum (both tied ids) */
        p = op_params(&c, 6, k);
        int32_t t = run_op(dev, x, 6, 1, &p);
        CHECK(t == 1 || t == 2, "%s: min_p 1 gave %d", dn, t);
        if (t >= 0 && t < 6) seen_minp[t]++;
        c = (sp_case){1.0f, 0.01f, 0, 1, 0}; /* a tiny nucleus: the top tie group */
        p = op_params(&c, 7, k);
        t = run_op(dev, x, 6, 1, &p);
        CHECK(t == 1 || t == 2, "%s: top_p 0.01 gave %d", dn, t);
        c = (sp_case){1.0f, 0, 0, 1, 2}; /* top_k 2: the tied pair, not 2.9 */
        p = op_params(&c, 8, k);
        t = run_op(dev, x, 6, 1, &p);
        CHECK(t == 1 || t == 2, "%s: top_k 2 gave %d", dn, t);
        c = (sp_case){1.0f, 0, 0, 1, 3}; /* top_k 3: the pair and 2.9 */
        p = op_params(&c, 9, k);
        t = run_op(dev, x, 6, 1, &p);
        CHECK(t == 1 || t == 2 || t == 4, "%s: top_k 3 gave %d", dn, t);
    }
    /* each has probability 1/2 a draw: missing one in 50 draws is 2^-49 */
    CHECK(seen_minp[1] > 0 && seen_minp[2] > 0, "%s: min_p 1 keeps both tied maxima (ids 1 / 2 drawn %d / %d times)",
          dn, seen_minp[1], seen_minp[2]);
    c = (sp_case){0, 0, 0, 1, 0};
    mlxn_sample_params p = op_params(&c, 1, 1);
    CHECK(run_op(dev, x, 6, 1, &p) == 1, "%s: argmax takes the first of a tie", dn);
    float ninf[3] = {-INFINITY, -INFINITY, -INFINITY};
    CHECK(run_op(dev, ninf, 3, 1, &p) == -1, "%s: all -inf gives -1 (greedy)", dn);
    c = (sp_case){1, 0.9f, 0.1f, 1, 2};
    p = op_params(&c, 1, 1);
    CHECK(run_op(dev, ninf, 3, 1, &p) == -1, "%s: all -inf gives -1 (sampled)", dn);
    /* frequencies: softmax([0, ln 2, ln 3, ln 4] / T) at T = 1 and 2, over 4000 draws */
    float y[4] = {0.0f, logf(2.0f), logf(3.0f), logf(4.0f)};
    for (int ti = 0; ti < 2; ti++) {
        float T = ti ? 2.0f : 1.0f;
        int count[4] = {0};
        const int n = 4000;
        c = (sp_case){T, 0, 0, 1, 0};
        for (int k = 1; k <= n; k++) {
            p = op_params(&c, 99, (uint64_t)k);
            int32_t t = run_op(dev, y, 4, 1, &p);
            if (t >= 0 && t < 4) count[t]++;
        }
        double z = 0, w[4];
        for (int i = 0; i < 4; i++) z += w[i] = pow(i + 1.0, 1.0 / T);
        for (int i = 0; i < 4; i++) {
            double want = w[i] / z, got = (double)count[i] / n, sd = sqrt(want * (1 - want) / n);
            CHECK(fabs(got - want) < 5 * sd, "%s: T %g token %d drawn %.4f of the time, want %.4f", dn, (double)T, i,
                  got, want);
        }
    }
}

static void test_bad(mlxn_device *cpu) {
    mlxn_stream *s = mlxn_device_stream(cpu);
    int64_t v[1] = {8}, two[2] = {2, 8}, one[1] = {1}, dos[1] = {2};
    mlxn_tensor l = t_tensor_contig(cpu, MLXN_DTYPE_F32, 1, v), l2 = t_tensor_contig(cpu, MLXN_DTYPE_F32, 2, two);
    mlxn_tensor t = t_tensor_contig(cpu, MLXN_DTYPE_I32, 1, one), tf = t_tensor_contig(cpu, MLXN_DTYPE_F32, 1, one);
    mlxn_tensor t2 = t_tensor_contig(cpu, MLXN_DTYPE_I32, 1, dos);
    mlxn_sample_params ok = {.temperature = 1, .counter = 1};
    mlxn_sample_params p = ok;
    CHECK_FAILS(mlxn_sample(s, &l, NULL, &t), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sample(s, NULL, &p, &t), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_sample(s, &l2, &p, &t), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_sample(s, &l, &p, &tf), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_sample(s, &l, &p, &t2), MLXN_ERR_SHAPE);
    p.temperature = -1;
    CHECK_FAILS(mlxn_sample(s, &l, &p, &t), MLXN_ERR_INVALID_ARGUMENT);
    p = ok, p.temperature = INFINITY;
    CHECK_FAILS(mlxn_sample(s, &l, &p, &t), MLXN_ERR_INVALID_ARGUMENT);
    p = ok, p.top_p = 1.5f;
    CHECK_FAILS(mlxn_sample(s, &l, &p, &t), MLXN_ERR_INVALID_ARGUMENT);
    p = ok, p.min_p = NAN;
    CHECK_FAILS(mlxn_sample(s, &l, &p, &t), MLXN_ERR_INVALID_ARGUMENT);
    p = ok, p.top_k = -2;
    CHECK_FAILS(mlxn_sample(s, &l, &p, &t), MLXN_ERR_INVALID_ARGUMENT);
    p = ok, p.counter = 0;
    CHECK_FAILS(mlxn_sample(s, &l, &p, &t), MLXN_ERR_INVALID_ARGUMENT);
    t_tensor_free(&l), t_tensor_free(&l2), t_tensor_free(&t), t_tensor_free(&tf), t_tensor_free(&t2);
}

/* The device op against the CPU op: every case, several sizes (a real
 * vocabulary among them), contiguous and strided logits. */
static void test_device(mlxn_device *dev, mlxn_device *cpu) {
    static const int sizes[] = {1, 5, 1000, 4099, 128256};
    int mismatches = 0, total = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int V = sizes[si];
        float *x = malloc((size_t)V * sizeof(float));
        if (!x) {
            CHECK(0, "out of memory");
            return;
        }
        for (int kind = 0; kind < N_KINDS; kind++) {
            fill_logits(x, V, kind);
            for (int ci = 0; ci < N_CASES; ci++) {
                uint64_t seed = t_rand_u64();
                for (uint64_t k = 1; k <= 2; k++) {
                    mlxn_sample_params p = op_params(&cases[ci], seed, k);
                    int32_t want = run_op(cpu, x, V, 1, &p);
                    int32_t got = run_op(dev, x, V, (k == 2 && V < 5000) ? 3 : 1, &p);
                    total++;
                    if (got != want) {
                        mismatches++;
                        CHECK(0, "V %d kind %d case %d draw %llu: %s %d, cpu %d", V, kind, ci, (unsigned long long)k,
                              mlxn_device_name(dev), got, want);
                    }
                }
            }
        }
        free(x);
    }
    printf("%s vs cpu op: %d draws, %d differ\n", mlxn_device_name(dev), total, mismatches);
}

/* Greedy over large vocabularies, which a GPU splits over several blocks
 * (cu_sample.cu: one share per block of a cluster): the maximum tied in
 * two distant shares (the lower id wins, whichever share is merged
 * first), NaN logits (ignored), an odd size, contiguous and strided
 * logits, and no logit above -inf (-1);
 * each against its known answer and the CPU op. */
static void test_device_greedy(mlxn_device *dev, mlxn_device *cpu) {
    const int V = 262147;
    float *x = malloc((size_t)V * sizeof(float));
    if (!x) {
        CHECK(0, "out of memory");
        return;
    }
    mlxn_sample_params p = {.temperature = 0, .counter = 1};
    const char *dn = mlxn_device_name(dev);
    for (int trial = 0; trial < 6; trial++) {
        for (int i = 0; i < V; i++) x[i] = t_randn();
        for (int i = 0; i < 64; i++) x[t_rand_u64() % (uint64_t)V] = NAN;
        x[0] = NAN;
        /* two equal maxima: a random low id and one at least a quarter of the vocabulary above it */
        const int lo = (int)(t_rand_u64() % (uint64_t)(V / 2)), hi = lo + V / 4 + (int)(t_rand_u64() % (uint64_t)(V / 4));
        x[lo] = x[hi] = 40.0f;
        const int64_t st = 1 + trial % 2; /* contiguous (16-byte loads on a GPU) and strided logits */
        int32_t want = run_op(cpu, x, V, 1, &p), got = run_op(dev, x, V, st, &p);
        CHECK(want == lo && got == lo, "%s: greedy over %d logits (stride %lld), maxima at %d and %d: got %d, cpu %d", dn,
              V, (long long)st, lo, hi, got, want);
    }
    for (int i = 0; i < V; i++) x[i] = (i % 3) ? -INFINITY : NAN;
    CHECK(run_op(dev, x, V, 1, &p) == -1 && run_op(cpu, x, V, 1, &p) == -1, "%s: greedy with no logit above -inf gives -1",
          dn);
    free(x);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_sample");
    mlxn_device *cpu = t_cpu_device(1, MLXN_CPU_ISA_AUTO);
    if (!cpu) return t_finish();
    test_vs_host(cpu);
    test_known(cpu);
    test_bad(cpu);
    mlxn_device_params dp = {.kind = MLXN_DEVICE_CUDA, .index = 0};
    mlxn_device *gpu = NULL;
    if (mlxn_device_new(&dp, &gpu) == MLXN_OK) {
        test_known(gpu);
        test_device(gpu, cpu);
        test_device_greedy(gpu, cpu);
        mlxn_device_free(gpu);
    } else {
        printf("skipped: no CUDA device (%s): the device part did not run\n", mlxn_last_error());
    }
    mlxn_device_free(cpu);
    return t_finish();
}
