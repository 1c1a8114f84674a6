/* The fixed KV layout (every buffer allocated once; sliding-window layers a
 * ring of `window` slots; single-token steps reading their position from
 * device memory) against the growing layout that test_models.c checks
 * against mlx-lm, on the CPU:
 *  - golden models (gemma3 with a window of 8, llama, qwen3 quantized):
 *    a prefill, a 4-token chunk, 30 single tokens (the rings wrap several
 *    times), then a 5-token chunk after the wrap (gathered from the ring in
 *    two runs) and more single tokens: every row within float rounding
 *    (a ring holds the same keys in another order, so attention sums in
 *    another order);
 *  - reuse: truncation by one token on a ring (allowed), by two (refused,
 *    naming the window), reset and run again: the same logits;
 *  - bad parameters: an unknown layout, fixed with an unbounded context.
 * On a CUDA device (when present), the decode graph: the same 50-token run
 * with graphs on and off gives bit-identical logits (the replays read the
 * same step block the op-by-op steps do), graphs were really replayed, and
 * MLXN_CUDA_GRAPHS=0 or decode_graphs = -1 turns them off; and 300 steps
 * after a 250-token prompt cross attention span buckets (256, 512, 1024:
 * one graph each), bit-identical to op by op.
 * On both: logits left on the device (device_logits), and tokens kept on
 * the device (device_tokens: mlxn_session_forward_next). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/model_internal.h"

/* float rounding of another summation order; measured on the CPU */
static const double TOL_MAX = 2e-5, TOL_NMSE = 1e-10;


enum { N = 50 };
/* the schedule: chunk sizes adding up to N: a prefill of 11, a chunk of 4,
   19 single tokens (past the window of 8 twice), a chunk of 5 (gathered
   from a wrapped ring), 11 single tokens */
static const int SCHED[] = {11, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                            5,  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

/* Run the schedule on a fresh session of m with params p: all logits into out [N, V]. */
static void run(mlxn_model *m, const mlxn_session_params *p, const int32_t *tok, float *out, mlxn_session **keep) {
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    mlxn_session *s = NULL;
    CHECK_OK(mlxn_session_new(m, p, &s));
    if (!s) return;
    t_poison(out, sizeof(float) * (size_t)(N * V));
    int64_t pos = 0;
    for (size_t i = 0; i < sizeof SCHED / sizeof SCHED[0]; i++) {
        CHECK_OK(mlxn_session_forward(s, tok + pos, SCHED[i], MLXN_LOGITS_ALL, out + pos * V));
        pos += SCHED[i];
    }
    CHECK(pos == N && mlxn_session_position(s) == N, "schedule covers %lld tokens", (long long)pos);
    if (keep) *keep = s;
    else mlxn_session_free(s);
}

static void compare_tol(const char *name, const char *what, const float *ref, const float *got, int64_t from,
                        int64_t to, int64_t V, double sd, double tol_max, double tol_nmse) {
    char label[256];
    snprintf(label, sizeof label, "%s %s", name, what);
    double worst = 0, worst_e = 0;
    t_compare_rows(label, ref, got, from, to, V, sd, tol_max, tol_nmse, &worst, &worst_e);
    printf("  %-18s %-22s max|diff| %.2e std  nmse %.2e\n", name, what, worst, worst_e);
}

static void compare(const char *name, const char *what, const float *ref, const float *got, int64_t from, int64_t to,
                    int64_t V, double sd) {
    compare_tol(name, what, ref, got, from, to, V, sd, TOL_MAX, TOL_NMSE);
}

static void cpu_case(mlxn_device *dev, const char *name) {
    mlxn_model *m = t_golden_model(dev, name);
    if (!m) return;
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(t_rand_u64() % (uint64_t)V);
    float *ref = malloc(sizeof(float) * (size_t)(N * V)), *got = malloc(sizeof(float) * (size_t)(N * V));
    mlxn_session_params grow = {.kv_layout = 1, .max_context = 64};
    mlxn_session_params fix = {.kv_layout = 2, .max_context = 64};
    run(m, &grow, tok, ref, NULL);
    double sd = t_std(ref, (size_t)(N * V));
    mlxn_session *s = NULL;
    run(m, &fix, tok, got, &s);
    compare(name, "fixed vs growing", ref, got, 0, N, V, sd);
    if (s) {
        const mlxn_model_info *info = mlxn_model_get_info(m);
        /* truncation: one token back is fine, two are refused on a ring */
        CHECK_OK(mlxn_session_truncate(s, N - 1));
        t_poison(got, sizeof(float) * (size_t)V);
        CHECK_OK(mlxn_session_forward(s, tok + N - 1, 1, MLXN_LOGITS_LAST, got));
        compare(name, "truncated by 1", ref + (N - 1) * V, got, 0, 1, V, sd);
        if (info->n_sliding_layers > 0) {
            CHECK_FAILS(mlxn_session_truncate(s, N - 2), MLXN_ERR_UNSUPPORTED);
            CHECK(strstr(mlxn_last_error(), "sliding window") != NULL, "truncate message: %s", mlxn_last_error());
        } else {
            CHECK_OK(mlxn_session_truncate(s, 20));
            t_poison(got, sizeof(float) * (size_t)(N * V));
            CHECK_OK(mlxn_session_forward(s, tok + 20, N - 20, MLXN_LOGITS_ALL, got + 20 * V));
            compare(name, "truncated to 20", ref, got, 20, N, V, sd);
        }
        /* reset and again: the same */
        mlxn_session_reset(s);
        t_poison(got, sizeof(float) * (size_t)(N * V));
        int64_t pos = 0;
        for (size_t i = 0; i < sizeof SCHED / sizeof SCHED[0]; i++) {
            CHECK_OK(mlxn_session_forward(s, tok + pos, SCHED[i], MLXN_LOGITS_ALL, got + pos * V));
            pos += SCHED[i];
        }
        compare(name, "after reset", ref, got, 0, N, V, sd);
        /* past the context */
        CHECK_OK(mlxn_session_truncate(s, N - 1));
        int32_t more[20] = {0};
        CHECK_FAILS(mlxn_session_forward(s, more, 20, MLXN_LOGITS_NONE, NULL), MLXN_ERR_INVALID_ARGUMENT);
        mlxn_session_free(s);
    }
    free(ref);
    free(got);
    mlxn_model_free(m);
}

static void bad_params(mlxn_device *dev) {
    mlxn_model *m = t_golden_model(dev, "llama_f32");
    if (!m) return;
    mlxn_session *s = NULL;
    mlxn_session_params p3 = {.kv_layout = 3}, g2 = {.decode_graphs = 2};
    CHECK_FAILS(mlxn_session_new(m, &p3, &s), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_session_new(m, &g2, &s), MLXN_ERR_INVALID_ARGUMENT);
    if (mlxn_model_get_info(m)->max_position_embeddings == 0) {
        mlxn_session_params fx = {.kv_layout = 2};
        CHECK_FAILS(mlxn_session_new(m, &fx, &s), MLXN_ERR_INVALID_ARGUMENT);
        CHECK(strstr(mlxn_last_error(), "bounded context") != NULL, "message: %s", mlxn_last_error());
    }
    mlxn_model_free(m);
}

/* GPU: graphs on vs off, bit for bit. */
static void gpu_graphs(mlxn_device *gpu, const char *name) {
    mlxn_model *m = t_golden_model(gpu, name);
    if (!m) return;
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(t_rand_u64() % (uint64_t)V);
    float *a = malloc(sizeof(float) * (size_t)(N * V)), *b = malloc(sizeof(float) * (size_t)(N * V));
    mlxn_session_params off = {.max_context = 64, .decode_graphs = -1}, on = {.max_context = 64, .decode_graphs = 1};
    mlxn_session *s = NULL;
    run(m, &off, tok, a, &s);
    CHECK(s && model_session_graph_replays(s) == 0, "%s: graphs off, yet %lld replays", name,
          (long long)model_session_graph_replays(s));
    mlxn_session_free(s);
    s = NULL;
    run(m, &on, tok, b, &s);
    int64_t replays = model_session_graph_replays(s);
    /* 30 single-token steps: the first runs op by op, the other 29 replay the graph */
    CHECK(replays == 29, "%s: only %lld graph replays", name, (long long)replays);
    CHECK(!memcmp(a, b, sizeof(float) * (size_t)(N * V)), "%s: graph-replayed logits differ from op-by-op ones", name);
    /* a prefill in between makes the scratch grow: the graph is dropped and captured again */
    if (s) {
        mlxn_session_reset(s);
        float *c = malloc(sizeof(float) * (size_t)(N * V));
        CHECK_OK(mlxn_session_forward(s, tok, 30, MLXN_LOGITS_ALL, c));
        for (int i = 30; i < N; i++) CHECK_OK(mlxn_session_forward(s, tok + i, 1, MLXN_LOGITS_ALL, c + i * V));
        CHECK(model_session_graph_replays(s) > replays, "%s: no replays after the scratch grew", name);
        double sd = t_std(a, (size_t)(N * V));
        /* another chunking: other kernels round the bf16 cache's inputs differently (test_models_cuda's bound) */
        compare_tol(name, "gpu: prefill 30 + steps", a, c, 0, N, V, sd, 5e-3, 1e-5);
        free(c);
    }
    mlxn_session_free(s);
    printf("  %-18s graphs: %lld replays, bit-identical to op by op over %d tokens\n", name, (long long)replays, N);
    /* the environment switch */
    setenv("MLXN_CUDA_GRAPHS", "0", 1);
    mlxn_session_params dflt = {.max_context = 64};
    run(m, &dflt, tok, b, &s);
    CHECK(s && model_session_graph_replays(s) == 0, "%s: MLXN_CUDA_GRAPHS=0 ignored", name);
    CHECK(!memcmp(a, b, sizeof(float) * (size_t)(N * V)), "%s: MLXN_CUDA_GRAPHS=0 run differs", name);
    mlxn_session_free(s);
    unsetenv("MLXN_CUDA_GRAPHS");
    free(a);
    free(b);
    mlxn_model_free(m);
}

/* Steps across attention span buckets (model_step_span: 256, 512, 1024): a
 * 250-token prefill, then 300 single tokens with graphs on and off. One
 * graph is captured per bucket, and the replayed logits are bit-identical
 * to the op-by-op ones (both attend over the same span). */
static void gpu_span_buckets(mlxn_device *gpu, const char *name) {
    enum { P = 250, STEPS = 300 };
    mlxn_model *m = t_golden_model(gpu, name);
    if (!m) return;
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    int32_t tok[P + STEPS];
    for (int i = 0; i < P + STEPS; i++) tok[i] = (int32_t)(t_rand_u64() % (uint64_t)V);
    float *lg[2];
    int64_t replays[2] = {0, 0};
    int graphs[2] = {0, 0};
    for (int on = 0; on < 2; on++) {
        lg[on] = malloc(sizeof(float) * (size_t)(STEPS * V));
        if (lg[on]) t_poison(lg[on], sizeof(float) * (size_t)(STEPS * V));
        mlxn_session_params sp = {.max_context = P + STEPS + 8, .decode_graphs = on ? 1 : -1};
        mlxn_session *s = NULL;
        CHECK_OK(mlxn_session_new(m, &sp, &s));
        if (!s || !lg[on]) {
            mlxn_session_free(s);
            continue;
        }
        float *last = malloc(sizeof(float) * (size_t)V);
        CHECK_OK(mlxn_session_forward(s, tok, P, MLXN_LOGITS_LAST, last));
        free(last);
        for (int i = 0; i < STEPS; i++)
            CHECK_OK(mlxn_session_forward(s, tok + P + i, 1, MLXN_LOGITS_LAST, lg[on] + (int64_t)i * V));
        replays[on] = model_session_graph_replays(s);
        for (int b = 0; b < MODEL_SPAN_BUCKETS; b++) graphs[on] += s->graph[b] != NULL;
        mlxn_session_free(s);
    }
    CHECK(replays[0] == 0 && replays[1] == STEPS - 1, "%s: span buckets: %lld / %lld replays (want 0 / %d)", name,
          (long long)replays[0], (long long)replays[1], STEPS - 1);
    CHECK(graphs[1] == 3, "%s: %d graphs captured over positions %d..%d (want 3: spans 256, 512, 1024)", name,
          graphs[1], P, P + STEPS - 1);
    CHECK(lg[0] && lg[1] && !memcmp(lg[0], lg[1], sizeof(float) * (size_t)(STEPS * V)),
          "%s: span buckets: graph-replayed logits differ from op-by-op ones", name);
    printf("  %-18s span buckets: %d graphs, %lld replays, bit-identical over %d steps\n", name, graphs[1],
           (long long)replays[1], STEPS);
    free(lg[0]);
    free(lg[1]);
    mlxn_model_free(m);
}

/* Logits left on the device (mlxn_session_forward with MLXN_LOGITS_LAST
 * and no host buffer, then mlxn_session_logits): the schedule's last rows
 * bit-identical to the same calls with host logits, also when two calls
 * run back to back without a read in between (the second waits for the
 * first's work before it rewrites the step block); MLXN_LOGITS_ALL still
 * wants a buffer. */
static void device_logits(mlxn_device *dev, const char *name) {
    mlxn_model *m = t_golden_model(dev, name);
    if (!m) return;
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(t_rand_u64() % (uint64_t)V);
    const size_t nsched = sizeof SCHED / sizeof SCHED[0];
    float *ref = malloc(sizeof(float) * (size_t)V * nsched), *got = malloc(sizeof(float) * (size_t)V * nsched);
    mlxn_session_params p = {.max_context = 64};
    mlxn_session *a = NULL, *b = NULL;
    CHECK_OK(mlxn_session_new(m, &p, &a));
    CHECK_OK(mlxn_session_new(m, &p, &b));
    if (a && b && ref && got) {
        t_poison(got, sizeof(float) * (size_t)V * nsched);
        int64_t pos = 0;
        for (size_t i = 0; i < nsched; i++) {
            CHECK_OK(mlxn_session_forward(a, tok + pos, SCHED[i], MLXN_LOGITS_LAST, ref + i * V));
            CHECK_OK(mlxn_session_forward(b, tok + pos, SCHED[i], MLXN_LOGITS_LAST, NULL));
            pos += SCHED[i];
            if (i % 3 == 1) continue; /* no read: the next call runs with this one's work still queued */
            mlxn_tensor lt;
            CHECK_OK(mlxn_session_logits(b, &lt));
            CHECK_OK(mlxn_buffer_read(lt.buf, lt.offset, got + i * V, sizeof(float) * (size_t)V));
            CHECK(!memcmp(ref + i * V, got + i * V, sizeof(float) * (size_t)V),
                  "%s on %s: logits left on the device differ from the host copy after call %zu", name,
                  mlxn_device_name(dev), i);
        }
        CHECK_FAILS(mlxn_session_forward(b, tok, 1, MLXN_LOGITS_ALL, NULL), MLXN_ERR_INVALID_ARGUMENT);
        printf("  %-18s %-24s logits left on the device: bit-identical to the host copies\n", name,
               mlxn_device_name(dev));
    }
    mlxn_session_free(a);
    mlxn_session_free(b);
    free(ref);
    free(got);
    mlxn_model_free(m);
}

/* mlxn_session_forward_next: a greedy decode with the token kept on the
 * device (mlxn_sample into mlxn_session_token_slot, then the next step
 * queued without a wait) against the same tokens given from the host: every
 * step's logits bit-identical, each sampled token the first maximum of the
 * host logits; then 8 steps back to back with no read between them, and
 * the last logits still identical. The slot and the step refuse a growing
 * session; a token outside the vocabulary in the slot is an error at the
 * next wait. On the GPU this runs through the replayed decode graphs. */
static void device_tokens(mlxn_device *dev, const char *name, int kv_layout) {
    enum { P = 9, K = 24, B2B = 8 };
    mlxn_model *m = t_golden_model(dev, name);
    if (!m) return;
    const int64_t V = mlxn_model_get_info(m)->vocab_size;
    mlxn_stream *st = mlxn_device_stream(dev);
    int32_t prompt[P];
    for (int i = 0; i < P; i++) prompt[i] = (int32_t)(t_rand_u64() % (uint64_t)V);
    float *ref = malloc(sizeof(float) * (size_t)V), *got = malloc(sizeof(float) * (size_t)V);
    mlxn_session_params p = {.max_context = 64, .kv_layout = kv_layout};
    mlxn_session *a = NULL, *b = NULL;
    CHECK_OK(mlxn_session_new(m, &p, &a));
    CHECK_OK(mlxn_session_new(m, &p, &b));
    mlxn_tensor slot, lt;
    const mlxn_sample_params greedy = {.temperature = 0, .counter = 1};
    if (a && b && ref && got && mlxn_session_token_slot(b, &slot) == MLXN_OK) {
        CHECK_OK(mlxn_session_forward(a, prompt, P, MLXN_LOGITS_LAST, ref));
        CHECK_OK(mlxn_session_forward(b, prompt, P, MLXN_LOGITS_LAST, NULL));
        CHECK_OK(mlxn_session_logits(b, &lt));
        CHECK_OK(mlxn_sample(st, &lt, &greedy, &slot));
        int steps_ok = 1;
        for (int k = 0; k < K + B2B && steps_ok; k++) {
            int32_t tok = -1;
            CHECK_OK(mlxn_stream_read(st, slot.buf, slot.offset, &tok, sizeof tok));
            int64_t best = 0;
            for (int64_t v = 1; v < V; v++)
                if (ref[v] > ref[best]) best = v;
            CHECK(tok == best, "%s on %s: step %d: the device sampled %d, the host logits' first maximum is %lld",
                  name, mlxn_device_name(dev), k, tok, (long long)best);
            CHECK_OK(mlxn_session_forward(a, &tok, 1, MLXN_LOGITS_LAST, ref));
            steps_ok = mlxn_session_forward_next(b) == MLXN_OK;
            CHECK(steps_ok, "%s on %s: forward_next at step %d: %s", name, mlxn_device_name(dev), k, mlxn_last_error());
            CHECK_OK(mlxn_session_logits(b, &lt));
            CHECK_OK(mlxn_sample(st, &lt, &greedy, &slot));
            if (k >= K && k < K + B2B - 1) continue; /* back to back: no read until the last of them */
            t_poison(got, sizeof(float) * (size_t)V);
            CHECK_OK(mlxn_buffer_read(lt.buf, lt.offset, got, sizeof(float) * (size_t)V));
            CHECK(!memcmp(ref, got, sizeof(float) * (size_t)V),
                  "%s on %s: step %d: logits with the token kept on the device differ from the host token's", name,
                  mlxn_device_name(dev), k);
        }
        CHECK(mlxn_session_position(b) == P + K + B2B && mlxn_session_position(a) == P + K + B2B,
              "%s on %s: positions %lld / %lld after %d steps", name, mlxn_device_name(dev),
              (long long)mlxn_session_position(b), (long long)mlxn_session_position(a), P + K + B2B);
        /* a token outside the vocabulary in the slot: an error at the next wait */
        const int32_t bad = (int32_t)V;
        CHECK_OK(mlxn_buffer_write(slot.buf, slot.offset, &bad, sizeof bad));
        mlxn_status fs = mlxn_session_forward_next(b);
        if (fs == MLXN_OK) fs = mlxn_stream_sync(st);
        CHECK(fs != MLXN_OK, "%s on %s: a token past the vocabulary in the slot ran without an error", name,
              mlxn_device_name(dev));
        printf("  %-18s %-24s tokens kept on the device: %d steps bit-identical to host tokens\n", name,
               mlxn_device_name(dev), K + B2B);
    } else if (a && b) {
        CHECK(0, "%s on %s: session_token_slot: %s", name, mlxn_device_name(dev), mlxn_last_error());
    }
    mlxn_session_free(a);
    mlxn_session_free(b);
    /* a growing session has no slot */
    mlxn_session_params g = {.max_context = 64, .kv_layout = 1};
    mlxn_session *c = NULL;
    CHECK_OK(mlxn_session_new(m, &g, &c));
    if (c) {
        CHECK_FAILS(mlxn_session_token_slot(c, &slot), MLXN_ERR_INVALID_ARGUMENT);
        CHECK_FAILS(mlxn_session_forward_next(c), MLXN_ERR_INVALID_ARGUMENT);
    }
    mlxn_session_free(c);
    free(ref);
    free(got);
    mlxn_model_free(m);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_session_fixed");
    mlxn_device *cpu = t_cpu_device_exact(2);
    if (!cpu) return t_finish();
    const char *cases[] = {"gemma3_text_f32", "llama_f32", "qwen3_q8g64", "gemma3_text_q4g32"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) cpu_case(cpu, cases[i]);
    bad_params(cpu);
    device_logits(cpu, "qwen3_q8g64");
    device_tokens(cpu, "llama_f32", 2);
    device_tokens(cpu, "gemma3_text_q4g32", 2);
    mlxn_device_free(cpu);
    mlxn_device_params p = {.kind = MLXN_DEVICE_CUDA};
    mlxn_device *gpu = NULL;
    /* the comparisons with the CPU are at f32 tolerances: keep the prompts'
       quantized products on the exact mat-vec kernels, not the bf16 GEMM
       prefill path (test_models_cuda checks that one at bf16 tolerances);
       the CUDA backend reads the switch when a stream is made (the device's
       default stream: when it is opened) */
    setenv("MLXN_CUDA_QMM_MIN_ROWS", "1000000000", 1);
    mlxn_status opened = mlxn_device_new(&p, &gpu);
    unsetenv("MLXN_CUDA_QMM_MIN_ROWS");
    if (opened == MLXN_OK) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) gpu_graphs(gpu, cases[i]);
        gpu_span_buckets(gpu, "llama_f32");
        gpu_span_buckets(gpu, "gemma3_text_q4g32");
        device_logits(gpu, "qwen3_q8g64");
        device_logits(gpu, "gemma3_text_q4g32");
        device_tokens(gpu, "llama_f32", 0);
        device_tokens(gpu, "gemma3_text_q4g32", 0);
        mlxn_device_free(gpu);
    } else {
        printf("cuda: not available: graphs not tested (%s)\n", mlxn_last_error());
    }
    return t_finish();
}
