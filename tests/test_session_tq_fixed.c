/* Sessions with a TurboQuant KV cache in the fixed KV layout (every cache
 * allocated once; sliding-window layers a ring of exactly `window` slots;
 * single-token steps reading their position from the step block in device
 * memory, which a GPU captures into one graph and replays every token),
 * against the same TurboQuant session in the growing layout, on the
 * random-weight head_dim-64 presets (tiny-gemma3-d64: window-8 sliding
 * layers and a global one; tiny-llama-d64: full attention, 2 kv heads),
 * tq4 and k8v4, fresh random tokens per run (the seed is printed):
 *  - CPU, fixed vs growing, bit for bit, two schedules over 50 tokens: one
 *    token per call (the rings of 8 wrap six times), and a prefill of 11, a
 *    chunk of 4, 19 single tokens, a chunk of 5 on wrapped rings (run in the
 *    chunk scratch) and 11 more. Why bit for bit: the codes of a key do not
 *    depend on its slot, attention visits the keys each query sees in
 *    position order from the first visible one in both layouts, and at
 *    these lengths (< 128 keys) the CPU never splits the keys, so the sums
 *    run in the same order (longer contexts may split differently: f32
 *    rounding then, not bits);
 *  - the fixed session's caches: rings of 8 positions, full layers of
 *    max_context; CPU sessions replay no graph;
 *  - truncation by one token on a ring (allowed: the token again gives the
 *    same logits), by two (refused naming the window, position unchanged),
 *    reset and the same schedule again: the same logits.
 * On a CUDA device (skipped without one): the same runs with decode graphs
 * on (the steps after the first replay the graph: 49 and 29 replays) and
 * off, bit for bit; MLXN_CUDA_GRAPHS=0 with the default layout (fixed on a
 * GPU) turns graphs off and gives the same bits; and CUDA against the CPU
 * within TOL_CUDA_REL / TOL_CUDA_NMSE (below). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_util.h"
#include "model/model_internal.h"
#include "mlxn/turboquant.h"

enum { N = 50, CTX = 64, WINDOW = 8 };

/* a prefill, a chunk, single tokens past the window twice, a chunk on
   wrapped rings, single tokens */
static const int MIXED[] = {11, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                            5,  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
static const int MIXED_N = (int)(sizeof MIXED / sizeof MIXED[0]);

/* CUDA vs CPU. The projections round differently on the two devices
 * (another summation order), which now and then moves a coordinate across
 * a code boundary: a whole level step of that key or value. Measured with
 * the CPU's AVX2 path against its AVX-512 one (the same kind of rounding
 * difference), these runs agree to ~2e-6 std (NMSE ~2e-13) without a flip,
 * and with one up to max rel 0.027, NMSE 4.5e-6 (4 seeds); test_session_tq
 * bounds the same effect (chunks of 4 vs 64) by max rel 0.2, NMSE 1e-3. */
static const double TOL_CUDA_REL = 0.25, TOL_CUDA_NMSE = 2e-3;

static mlxn_model *load_preset(mlxn_device *dev, const char *preset, char *dir, size_t n) {
    snprintf(dir, n, "%s/%s", cu_root, preset);
    mlxn_convert_params cp = {.random_preset = preset, .seed = 7, .dtype = MLXN_DTYPE_F32};
    mlxn_model *m = NULL;
    if (!cu_exists(dir)) CHECK_OK(mlxn_convert(NULL, dir, &cp));
    CHECK_OK(mlxn_model_load(dir, dev, NULL, &m));
    return m;
}

/* Run a schedule (sched NULL: N single tokens) on session s from position
 * `from` (a boundary of the schedule; the session holds `from` tokens):
 * logits of rows [from, N) into out [N, V]. */
static void run_sched(mlxn_session *s, int64_t V, const int *sched, int64_t from, const int32_t *tok, float *out) {
    t_poison(out, sizeof(float) * (size_t)(N * V));
    int64_t pos = 0;
    for (int i = 0; pos < N && (sched ? i < MIXED_N : 1); i++) {
        int n = sched ? sched[i] : 1;
        if (pos < from) {
            pos += n;
            continue;
        }
        mlxn_status st = mlxn_session_forward(s, tok + pos, n, MLXN_LOGITS_ALL, out + pos * V);
        CHECK(st == MLXN_OK, "forward of %d tokens at %lld: %s", n, (long long)pos, mlxn_last_error());
        if (st != MLXN_OK) return;
        pos += n;
    }
    CHECK(pos == N && mlxn_session_position(s) == N, "schedule covers %lld tokens", (long long)pos);
}

/* A fresh session of m with params p running a schedule; kept in *keep when given. */
static void run(mlxn_model *m, const mlxn_session_params *p, const int *sched, const int32_t *tok, float *out,
                mlxn_session **keep) {
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    mlxn_session *s = NULL;
    CHECK_OK(mlxn_session_new(m, p, &s));
    if (!s) {
        t_poison(out, sizeof(float) * (size_t)(N * V));
        return;
    }
    run_sched(s, V, sched, 0, tok, out);
    if (keep) *keep = s;
    else mlxn_session_free(s);
}

/* Rows [0, rows) of a and b bit for bit; names the first row that differs. */
static void same_bits(const char *label, const char *what, const float *a, const float *b, int64_t rows, int64_t V) {
    for (int64_t r = 0; r < rows; r++)
        if (memcmp(a + r * V, b + r * V, sizeof(float) * (size_t)V)) {
            CHECK(0, "%s %s: row %lld differs (max |diff| %.3g)", label, what, (long long)r,
                  t_max_abs_diff(a + r * V, b + r * V, (size_t)V));
            return;
        }
    /* poisoned rows compare equal to each other: make sure a row was written */
    for (int64_t i = 0; i < rows * V; i++)
        if (!isfinite(a[i])) {
            CHECK(0, "%s %s: element %lld is not finite", label, what, (long long)i);
            return;
        }
    printf("  %-8s %-40s bit-identical over %lld rows\n", label, what, (long long)rows);
}

/* The largest per-row max |a - b| over the row's std of a, and the NMSE (NaN fails). */
static void close_to(const char *label, const char *what, const float *a, const float *b, int64_t rows, int64_t V,
                     double tol_rel, double tol_nmse) {
    double worst = 0, nmse = t_nmse(a, b, (size_t)(rows * V));
    for (int64_t r = 0; r < rows; r++) {
        const float *x = a + r * V, *y = b + r * V;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < V; i++) mean += x[i];
        mean /= (double)V;
        for (int64_t i = 0; i < V; i++) var += (x[i] - mean) * (x[i] - mean);
        double sd = sqrt(var / (double)V), d = t_max_abs_diff(x, y, (size_t)V), rel = sd > 0 ? d / sd : d;
        if (!(rel <= worst)) worst = rel;
    }
    CHECK(worst <= tol_rel && nmse <= tol_nmse, "%s %s: max |diff|/std %.3g (tol %.3g), NMSE %.3g (tol %.3g)", label,
          what, worst, tol_rel, nmse, tol_nmse);
    printf("  %-8s %-40s max |diff|/std %.3g, NMSE %.3g\n", label, what, worst, nmse);
}

static void params(const char *kind, int layout, int graphs, mlxn_session_params *p) {
    memset(p, 0, sizeof *p);
    p->max_context = CTX;
    p->kv_layout = layout;
    p->decode_graphs = graphs;
    CHECK_OK(mlxn_kv_cache_parse(kind, p));
}

/* The fixed session's caches: rings of `window` slots, full layers of max_context. */
static void check_caches(const char *label, mlxn_model *m, const mlxn_session *s) {
    const mlxn_model_config *c = &m->cfg;
    CHECK(s->fixed, "%s: the session is not in the fixed layout", label);
    for (int l = 0; l < c->n_layers && s->tq; l++) {
        int64_t W = c->layers[l].window, want = W > 0 ? W : CTX;
        int64_t got = mlxn_tq_cache_get_params(s->tq[l])->capacity;
        CHECK(got == want, "%s: layer %d (window %lld) has a cache of %lld positions, want %lld", label, l,
              (long long)W, (long long)got, (long long)want);
    }
}

/* CPU: fixed vs growing, truncation and reset. The fixed runs' logits go to fix_out[2] (steps, mixed). */
static void cpu_case(mlxn_model *m, const char *label, const char *kind, const int32_t *tok, float *fix_out[2]) {
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    char what[96];
    mlxn_session_params grow, fix;
    params(kind, 1, 0, &grow);
    params(kind, 2, 0, &fix);
    float *ref = malloc(sizeof(float) * (size_t)(N * V)), *got = malloc(sizeof(float) * (size_t)(N * V));
    if (!ref || !got) {
        CHECK(0, "out of memory");
        free(ref);
        free(got);
        return;
    }
    for (int k = 0; k < 2; k++) {
        const int *sched = k ? MIXED : NULL;
        mlxn_session *s = NULL;
        run(m, &grow, sched, tok, ref, NULL);
        run(m, &fix, sched, tok, fix_out[k], &s);
        snprintf(what, sizeof what, "%s fixed vs growing, %s", kind, k ? "chunks and steps" : "token by token");
        same_bits(label, what, ref, fix_out[k], N, V);
        if (!s) continue;
        check_caches(label, m, s);
        CHECK(model_session_graph_replays(s) == 0, "%s: a CPU session replayed %lld graphs", label,
              (long long)model_session_graph_replays(s));
        if (k == 1) {
            /* one token back on a ring is fine: the same token, the same logits */
            CHECK_OK(mlxn_session_truncate(s, N - 1));
            t_poison(got, sizeof(float) * (size_t)V);
            CHECK_OK(mlxn_session_forward(s, tok + N - 1, 1, MLXN_LOGITS_LAST, got));
            snprintf(what, sizeof what, "%s truncated by 1, last token again", kind);
            same_bits(label, what, ref + (N - 1) * V, got, 1, V);
            if (mlxn_model_get_info(m)->n_sliding_layers > 0) {
                CHECK_FAILS(mlxn_session_truncate(s, N - 2), MLXN_ERR_UNSUPPORTED);
                CHECK(strstr(mlxn_last_error(), "sliding window 8") != NULL, "truncate message: %s",
                      mlxn_last_error());
                CHECK(mlxn_session_position(s) == N, "a refused truncation moved the position to %lld",
                      (long long)mlxn_session_position(s));
            } else {
                /* full attention only: any truncation, then the rest of the schedule again */
                CHECK_OK(mlxn_session_truncate(s, 20));
                run_sched(s, V, MIXED, 20, tok, got);
                snprintf(what, sizeof what, "%s truncated to 20, the rest again", kind);
                same_bits(label, what, ref + 20 * V, got + 20 * V, N - 20, V);
            }
            mlxn_session_reset(s);
            run_sched(s, V, MIXED, 0, tok, got);
            snprintf(what, sizeof what, "%s after reset", kind);
            same_bits(label, what, ref, got, N, V);
        }
        mlxn_session_free(s);
    }
    free(ref);
    free(got);
}

/* CUDA: graphs on vs off bit for bit, the environment switch, and CUDA vs the CPU's logits cpu[2]. */
static void gpu_case(mlxn_model *m, const char *label, const char *kind, const int32_t *tok, float *cpu[2]) {
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    char what[96];
    float *a = malloc(sizeof(float) * (size_t)(N * V)), *b = malloc(sizeof(float) * (size_t)(N * V));
    if (!a || !b) {
        CHECK(0, "out of memory");
        free(a);
        free(b);
        return;
    }
    mlxn_session_params off, on, dflt;
    params(kind, 2, -1, &off);
    params(kind, 2, 1, &on);
    params(kind, 0, 0, &dflt);
    for (int k = 0; k < 2; k++) {
        const int *sched = k ? MIXED : NULL;
        const char *how = k ? "chunks and steps" : "token by token";
        mlxn_session *s = NULL;
        run(m, &off, sched, tok, a, &s);
        CHECK(s && model_session_graph_replays(s) == 0, "%s: graphs off, yet replays", label);
        if (s) check_caches(label, m, s);
        mlxn_session_free(s);
        s = NULL;
        run(m, &on, sched, tok, b, &s);
        /* every single-token step but the first (op by op, before the capture) replays */
        int64_t want = k ? 29 : N - 1, replays = model_session_graph_replays(s);
        CHECK(replays == want, "%s %s %s: %lld graph replays, want %lld", label, kind, how, (long long)replays,
              (long long)want);
        mlxn_session_free(s);
        snprintf(what, sizeof what, "%s cuda graphs vs op by op, %s", kind, how);
        same_bits(label, what, a, b, N, V);
        snprintf(what, sizeof what, "%s cuda vs cpu, %s", kind, how);
        close_to(label, what, cpu[k], b, N, V, TOL_CUDA_REL, TOL_CUDA_NMSE);
        if (k == 1) {
            /* the default layout on a GPU is the fixed one; the environment turns graphs off */
            s = NULL;
            run(m, &dflt, sched, tok, b, &s);
            CHECK(s && s->fixed && model_session_graph_replays(s) == want,
                  "%s: the default session on a GPU replayed %lld graphs", label,
                  (long long)model_session_graph_replays(s));
            mlxn_session_free(s);
            same_bits(label, "default layout on the GPU", a, b, N, V);
            setenv("MLXN_CUDA_GRAPHS", "0", 1);
            s = NULL;
            run(m, &dflt, sched, tok, b, &s);
            CHECK(s && model_session_graph_replays(s) == 0, "%s: MLXN_CUDA_GRAPHS=0 ignored", label);
            mlxn_session_free(s);
            unsetenv("MLXN_CUDA_GRAPHS");
            same_bits(label, "MLXN_CUDA_GRAPHS=0", a, b, N, V);
        }
    }
    free(a);
    free(b);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_session_tq_fixed");
    cu_init_root("test_session_tq_fixed");
    mlxn_device *cpu = t_cpu_device(2, MLXN_CPU_ISA_AUTO);
    if (!cpu) return t_finish();
    mlxn_device_params gp = {.kind = MLXN_DEVICE_CUDA};
    mlxn_device *gpu = NULL;
    if (mlxn_device_new(&gp, &gpu) != MLXN_OK) {
        printf("cuda: skipped: no CUDA device (%s)\n", mlxn_last_error());
        gpu = NULL;
    }
    const char *presets[] = {"tiny-gemma3-d64", "tiny-llama-d64"}, *labels[] = {"gemma", "llama"};
    const char *kinds[] = {"tq4", "k8v4"};
    for (size_t i = 0; i < 2; i++) {
        char dir[2048];
        mlxn_model *m = load_preset(cpu, presets[i], dir, sizeof dir);
        mlxn_model *mg = m && gpu ? load_preset(gpu, presets[i], dir, sizeof dir) : NULL;
        if (m) {
            int64_t V = mlxn_model_get_info(m)->vocab_size;
            if (i == 0)
                CHECK(mlxn_model_get_info(m)->n_sliding_layers > 0 && m->cfg.layers[0].window == WINDOW,
                      "tiny-gemma3-d64: expected sliding layers of window %d", WINDOW);
            for (size_t k = 0; k < 2; k++) {
                int32_t tok[N];
                for (int t = 0; t < N; t++) tok[t] = (int32_t)(t_rand_u64() % (uint64_t)V);
                float *fix[2] = {malloc(sizeof(float) * (size_t)(N * V)), malloc(sizeof(float) * (size_t)(N * V))};
                if (fix[0] && fix[1]) {
                    cpu_case(m, labels[i], kinds[k], tok, fix);
                    if (mg) gpu_case(mg, labels[i], kinds[k], tok, fix);
                }
                free(fix[0]);
                free(fix[1]);
            }
        }
        mlxn_model_free(mg);
        mlxn_model_free(m);
        cu_rm_tree(dir);
    }
    rmdir(cu_root);
    mlxn_device_free(gpu);
    mlxn_device_free(cpu);
    return t_finish();
}
