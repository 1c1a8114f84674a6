/* The model runner on a CUDA device against the same runner on the CPU
 * (the CPU runner is itself checked against mlx-lm by test_models.c and
 * test_smollm2.c). Skipped ("skipped: no CUDA device") without a GPU.
 *
 * For every tiny mlx-lm golden model (tests/golden/models: llama, qwen2/3,
 * gemma3 with a sliding window of 8, dense f32/bf16 and every quantization):
 *  - f32 KV cache on both: the whole prompt in one chunk, all logits;
 *  - the devices' default caches (bf16 on the GPU; the CPU asked for bf16
 *    too, so both round K/V at the same points): mlx-lm's cached schedule
 *    (a prefill, a 4-token chunk, single tokens), then greedy decoding to
 *    45 positions, past the sliding window several times over. Greedy
 *    tokens must be identical, except after a near-tie of the CPU's top two
 *    logits (within the tolerance below: either order is rounding), where
 *    the comparison stops and the tie is reported.
 * Tolerances (max |gpu - cpu| relative to the std of the CPU's logits, and
 * NMSE): both devices compute in f32 with the same dequantized weights, so
 * they differ by summation order (~1e-6 relative per op). With a bf16 cache
 * such a difference can also flip the bf16 rounding of a K/V element (an
 * error of 2^-8 relative in that element, rarely). The bf16 model's dense
 * products round x to bf16 on the GPU (cuBLAS has no f32 x bf16 product;
 * see cu_matmul.cu), which the CPU does not: bf16-sized differences there.
 * Every case runs twice: first with the quantized products of a prompt on
 * the exact f32 mat-vec kernels (MLXN_CUDA_QMM_MIN_ROWS set out of reach),
 * at the tolerances above; then with the default prefill path, which from
 * a few x rows rounds x to bf16 for a tensor-core GEMM (cu_qmm.cu;
 * measured NMSE 1.5e-5 to 6.7e-5 on these models), at the bf16 tolerance.
 *
 * Then: a random 4-bit model whose decode steps fold the norms, adds and
 * the gated activation into the mat-vecs on the GPU (folded); SmolLM2-135M
 * (found as test_smollm2.c finds it; skipped when
 * absent) greedy on both devices; two models on the GPU at once, their
 * sessions interleaved, each giving what it gives alone; the load progress
 * callback; an out-of-memory error naming the bytes needed; a bad token id
 * met by the device (the embedding's device-side check) reported as a
 * status naming it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convert_util.h"
#include "harness.h"
#include "model/model_internal.h"

typedef struct tol {
    double max_rel, nmse;
} tol;
/* f32 caches, f32 paths: summation order only (measured on an H100:
   <= 1.8e-6 std, NMSE <= 2.3e-13) */
static const tol TOL_F32 = {2e-5, 1e-10};
/* f32 caches, 4-bit products with K a multiple of 128: the tensor-core
   mat-vec, whose f32 sums inside the mma do not round like an f32 add
   chain (measured on an H100 over 7 random prompts of the folded test
   below: 1.3e-5 to 2.5e-5 std, with the fold on or off alike) */
static const tol TOL_MMA = {5e-5, 1e-10};
/* bf16 caches: plus an occasional flipped bf16 rounding of a K/V element
   (measured <= 3e-5 std, NMSE <= 1.7e-11, greedy decoding included) */
static const tol TOL_KV16 = {3e-4, 1e-9};
/* the bf16 model: x rounded to bf16 before each dense GPU product
   (measured 1.5e-2 std, NMSE 2.1e-5) */
static const tol TOL_BF16 = {6e-2, 1e-4};

static const struct {
    const char *name;
    int bf16;
} CASES[] = {
    {"llama_f32", 0},      {"llama3_bias_q4g64", 0}, {"llama_q3g32_mixed", 0}, {"qwen2_q5g128", 0},
    {"qwen3_q6g128", 0},   {"qwen3_q8g64", 0},       {"qwen3_mxfp4", 0},       {"qwen3_nvfp4", 0},
    {"gemma3_text_f32", 0}, {"gemma3_text_q4g32", 0}, {"gemma3_mm_q4g64", 0},  {"qwen3_bf16", 1},
};

enum { DECODE_TO = 45 };


static void compare(const char *cs, const char *what, const float *ref, const float *got, int64_t rows, int64_t V,
                    tol tl, double sd) {
    char name[256];
    snprintf(name, sizeof name, "%s %s", cs, what);
    double worst = 0, worst_nmse = 0;
    t_compare_rows(name, ref, got, 0, rows, V, sd, tl.max_rel, tl.nmse, &worst, &worst_nmse);
    printf("  %-22s %-16s max|diff| %.2e std  nmse %.2e\n", cs, what, worst, worst_nmse);
}

static int32_t argmax(const float *x, int64_t n) {
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return (int32_t)b;
}

/* The CPU's top-2 margin at row x is within `eps` (a near-tie). */
static int near_tie(const float *x, int64_t n, double eps) {
    int32_t a = argmax(x, n);
    float second = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (i != a && x[i] > second) second = x[i];
    return (double)x[a] - (double)second <= eps;
}

/* Greedy decoding on both sessions from their current logits (cl on the
 * CPU, gl on the GPU) up to position `to`: identical tokens, or a near-tie
 * (then stop). Logits of every step compared within tl. */
static void greedy_pair(const char *name, mlxn_session *cs, mlxn_session *gs, float *cl, float *gl, int64_t V, int64_t to,
                        tol tl, double sd) {
    int64_t pos = mlxn_session_position(cs);
    int steps = 0;
    double worst = 0;
    while (pos < to) {
        int32_t a = argmax(cl, V), b = argmax(gl, V);
        if (a != b) {
            CHECK(near_tie(cl, V, 2 * tl.max_rel * sd), "%s: greedy token at position %lld: cpu %d, gpu %d (no near-tie)",
                  name, (long long)pos, a, b);
            printf("  %-22s greedy: near-tie at position %lld (cpu %d, gpu %d) after %d identical tokens\n", name,
                   (long long)pos, a, b, steps);
            return;
        }
        t_poison(cl, sizeof(float) * (size_t)V);
        t_poison(gl, sizeof(float) * (size_t)V);
        mlxn_status s1 = mlxn_session_forward(cs, &a, 1, MLXN_LOGITS_LAST, cl);
        mlxn_status s2 = mlxn_session_forward(gs, &a, 1, MLXN_LOGITS_LAST, gl);
        CHECK(s1 == MLXN_OK && s2 == MLXN_OK, "%s: decode at %lld: %s", name, (long long)pos, mlxn_last_error());
        if (s1 != MLXN_OK || s2 != MLXN_OK) return;
        double d = t_max_abs_diff(cl, gl, (size_t)V) / sd;
        if (!(d <= worst)) worst = d;
        pos++;
        steps++;
    }
    CHECK(worst <= tl.max_rel, "%s: decode logits differ by %.3g std (tolerance %.0e)", name, worst, tl.max_rel);
    printf("  %-22s greedy: %d identical tokens to position %lld, logits within %.2e std\n", name, steps,
           (long long)to, worst);
}

static void run_case(mlxn_device *cpu, mlxn_device *gpu, const char *name, int bf16, int gemm) {
    char dir[1024], rel[256];
    snprintf(dir, sizeof dir, "%s/models/%s", MLXN_TEST_GOLDEN_DIR, name);
    snprintf(rel, sizeof rel, "models/%s/logits.safetensors", name);
    mlxn_weights *g = t_golden_open(rel);
    size_t T = 0, nsteps = 0;
    const int32_t *tokens = g ? t_golden_get(g, "tokens", MLXN_DTYPE_I32, &T) : NULL;
    const int32_t *steps = g ? t_golden_get(g, "steps", MLXN_DTYPE_I32, &nsteps) : NULL;
    mlxn_model *mc = NULL, *mg = NULL;
    CHECK_OK(mlxn_model_load(dir, cpu, NULL, &mc));
    CHECK_OK(mlxn_model_load(dir, gpu, NULL, &mg));
    if (!tokens || !steps || !mc || !mg) goto done;
    int64_t V = mlxn_model_get_info(mc)->vocab_size;
    float *a = malloc(sizeof(float) * T * (size_t)V), *b = malloc(sizeof(float) * T * (size_t)V);

    /* f32 caches, the whole prompt */
    mlxn_session *cs = NULL, *gs = NULL;
    mlxn_session_params f32 = {.kv_dtype = MLXN_DTYPE_F32};
    CHECK_OK(mlxn_session_new(mc, &f32, &cs));
    CHECK_OK(mlxn_session_new(mg, &f32, &gs));
    t_poison(a, sizeof(float) * T * (size_t)V);
    t_poison(b, sizeof(float) * T * (size_t)V);
    CHECK_OK(mlxn_session_forward(cs, tokens, (int64_t)T, MLXN_LOGITS_ALL, a));
    CHECK_OK(mlxn_session_forward(gs, tokens, (int64_t)T, MLXN_LOGITS_ALL, b));
    double sd = t_std(a, T * (size_t)V);
    compare(name, gemm ? "prompt, f32 kv, GEMM prefill" : "prompt, f32 kv", a, b, (int64_t)T, V,
            bf16 || gemm ? TOL_BF16 : TOL_F32, sd);
    mlxn_session_free(cs);
    mlxn_session_free(gs);

    /* default caches (bf16 on the GPU; the CPU asks for bf16): the cached
       schedule, then greedy decoding past the window */
    mlxn_session_params kb = {.kv_dtype = MLXN_DTYPE_BF16};
    CHECK_OK(mlxn_session_new(mc, &kb, &cs));
    CHECK_OK(mlxn_session_new(mg, NULL, &gs));
    tol tl = bf16 || gemm ? TOL_BF16 : TOL_KV16;
    if (cs && gs) {
        t_poison(a, sizeof(float) * T * (size_t)V);
        t_poison(b, sizeof(float) * T * (size_t)V);
        int64_t pos = 0;
        for (size_t i = 0; i < nsteps; i++) {
            CHECK_OK(mlxn_session_forward(cs, tokens + pos, steps[i], MLXN_LOGITS_ALL, a + pos * V));
            CHECK_OK(mlxn_session_forward(gs, tokens + pos, steps[i], MLXN_LOGITS_ALL, b + pos * V));
            pos += steps[i];
        }
        compare(name, gemm ? "stepped, bf16 kv, GEMM prefill" : "stepped, bf16 kv", a, b, (int64_t)T, V, tl, sd);
        greedy_pair(name, cs, gs, a + (T - 1) * V, b + (T - 1) * V, V, DECODE_TO, tl, sd);
    }
    mlxn_session_free(cs);
    mlxn_session_free(gs);
    free(a);
    free(b);
done:
    mlxn_model_free(mc);
    mlxn_model_free(mg);
    mlxn_weights_free(g);
}

/* ---- the folded decode step -------------------------------------------------
 * A random 4-bit g64 Llama with hidden 128 (`tiny-llama-d64`: every
 * product's K a multiple of 128), so that on the GPU a decode step runs
 * its norms, residual adds and gated activation, and its rope and cache
 * writes, inside the mat-vecs (mlxn_quantized_matmul_fuses, asserted for
 * the q/k/v, gate/up, o and down weights), while the CPU runs them as ops
 * apart: a prompt, then greedy decoding with f32 caches on both (a bf16
 * cache would let a rounding difference flip a cached element's last
 * bit), logits within the tensor-core mat-vec's tolerance and the same
 * tokens (up to a near-tie). None of the golden mlx-lm models fold
 * (hidden 64, or biases, or other formats). */
static void folded(mlxn_device *cpu, mlxn_device *gpu) {
    const char *dir = cu_path("tiny-llama-d64-q4");
    mlxn_convert_params cp = {.random_preset = "tiny-llama-d64", .quantize = 1, .seed = 11};
    CHECK_OK(mlxn_convert(NULL, dir, &cp));
    mlxn_model *mc = NULL, *mg = NULL;
    CHECK_OK(mlxn_model_load(dir, cpu, NULL, &mc));
    CHECK_OK(mlxn_model_load(dir, gpu, NULL, &mg));
    if (!mc || !mg) goto done;
    const model_layer *L = &mg->layers[0];
    const model_linear *ls[4] = {&L->qkv, &L->gu, &L->o, &L->down};
    for (int i = 0; i < 4; i++)
        CHECK(L->fused_qkv && L->fused_gu &&
                  mlxn_quantized_matmul_fuses(mlxn_device_stream(gpu), &ls[i]->w, &ls[i]->scales, &ls[i]->biases,
                                              &ls[i]->q, 1),
              "tiny-llama-d64 q4: product %d of layer 0 does not fold on the GPU", i);
    int64_t V = mlxn_model_get_info(mc)->vocab_size;
    int32_t prompt[12];
    for (int i = 0; i < 12; i++) prompt[i] = (int32_t)(t_rand_u64() % (uint64_t)V);
    float *a = malloc(sizeof(float) * (size_t)V), *b = malloc(sizeof(float) * (size_t)V);
    mlxn_session *cs = NULL, *gs = NULL;
    mlxn_session_params kf = {.kv_dtype = MLXN_DTYPE_F32, .max_context = 64};
    CHECK_OK(mlxn_session_new(mc, &kf, &cs));
    CHECK_OK(mlxn_session_new(mg, &kf, &gs));
    if (a && b && cs && gs) {
        CHECK_OK(mlxn_session_forward(cs, prompt, 12, MLXN_LOGITS_LAST, a));
        CHECK_OK(mlxn_session_forward(gs, prompt, 12, MLXN_LOGITS_LAST, b));
        greedy_pair("tiny-llama-d64 q4 folded", cs, gs, a, b, V, 60, TOL_MMA, t_std(a, (size_t)V));
    }
    mlxn_session_free(cs);
    mlxn_session_free(gs);
    free(a);
    free(b);
done:
    mlxn_model_free(mc);
    mlxn_model_free(mg);
    cu_rm_tree(dir);
}

/* ---- SmolLM2 ---------------------------------------------------------------- */

static void smollm2(mlxn_device *cpu, mlxn_device *gpu) {
    char path[2048];
    if (!t_model_cache_path(T_SMOLLM2_GGUF, path, sizeof path)) {
        printf("  SmolLM2: %s is absent (tests/golden/fetch_smollm2.sh fetches it): not run\n", path);
        return;
    }
    mlxn_weights *g = t_golden_open("smollm2/golden.safetensors");
    size_t np = 0, npl = 0;
    const int32_t *pids = g ? t_golden_get(g, "prompt_ids", MLXN_DTYPE_I32, &np) : NULL;
    const int32_t *plen = g ? t_golden_get(g, "prompt_lens", MLXN_DTYPE_I32, &npl) : NULL;
    mlxn_model *mc = NULL, *mg = NULL;
    CHECK_OK(mlxn_model_load(path, cpu, NULL, &mc));
    CHECK_OK(mlxn_model_load(path, gpu, NULL, &mg));
    if (pids && plen && mc && mg) {
        int64_t V = mlxn_model_get_info(mc)->vocab_size;
        float *cl = malloc(sizeof(float) * (size_t)V), *gl = malloc(sizeof(float) * (size_t)V);
        int64_t off = 0;
        for (size_t p = 0; p < npl; off += plen[p], p++) {
            mlxn_session *cs = NULL, *gs = NULL;
            mlxn_session_params kb = {.kv_dtype = MLXN_DTYPE_BF16};
            CHECK_OK(mlxn_session_new(mc, &kb, &cs));
            CHECK_OK(mlxn_session_new(mg, NULL, &gs));
            if (cs && gs) {
                CHECK_OK(mlxn_session_forward(cs, pids + off, plen[p], MLXN_LOGITS_LAST, cl));
                CHECK_OK(mlxn_session_forward(gs, pids + off, plen[p], MLXN_LOGITS_LAST, gl));
                double sd = t_std(cl, (size_t)V);
                char label[64];
                snprintf(label, sizeof label, "SmolLM2 prompt %zu", p);
                /* logits of magnitude ~10-30 over 30 layers of 4-bit weights */
                tol tl = {2e-2, 1e-4};
                compare(label, "prompt, last", cl, gl, 1, V, tl, sd);
                greedy_pair(label, cs, gs, cl, gl, V, plen[p] + 48, tl, sd);
            }
            mlxn_session_free(cs);
            mlxn_session_free(gs);
        }
        free(cl);
        free(gl);
    }
    mlxn_model_free(mc);
    mlxn_model_free(mg);
    mlxn_weights_free(g);
}

/* ---- two models, progress, errors ------------------------------------------ */

typedef struct prog {
    int calls, monotonic;
    int64_t last, total;
} prog;

static void on_progress(void *user, int64_t done, int64_t total) {
    prog *p = user;
    if (done < p->last || done > total) p->monotonic = 0;
    p->calls++;
    p->last = done;
    p->total = total;
}

/* Logits of `n` greedy steps of model dir alone on dev. */
static void solo(mlxn_model *m, const int32_t *prompt, int64_t len, int n, float *out) {
    mlxn_session *s = NULL;
    int64_t V = mlxn_model_get_info(m)->vocab_size;
    CHECK_OK(mlxn_session_new(m, NULL, &s));
    if (!s) return;
    CHECK_OK(mlxn_session_forward(s, prompt, len, MLXN_LOGITS_LAST, out));
    for (int i = 1; i < n; i++) {
        int32_t t = argmax(out + (i - 1) * V, V);
        CHECK_OK(mlxn_session_forward(s, &t, 1, MLXN_LOGITS_LAST, out + i * V));
    }
    mlxn_session_free(s);
}

static void two_models(mlxn_device *gpu) {
    char d1[1024], d2[1024];
    snprintf(d1, sizeof d1, "%s/models/llama3_bias_q4g64", MLXN_TEST_GOLDEN_DIR);
    snprintf(d2, sizeof d2, "%s/models/gemma3_text_q4g32", MLXN_TEST_GOLDEN_DIR);
    prog pr = {.monotonic = 1};
    mlxn_model_params mp = {.progress = on_progress, .progress_user = &pr};
    mlxn_model *m1 = NULL, *m2 = NULL;
    CHECK_OK(mlxn_model_load(d1, gpu, &mp, &m1));
    CHECK(pr.calls > 2 && pr.monotonic && pr.last == pr.total && pr.total > 0,
          "progress: %d calls, monotonic %d, last %lld of %lld", pr.calls, pr.monotonic, (long long)pr.last,
          (long long)pr.total);
    CHECK_OK(mlxn_model_load(d2, gpu, NULL, &m2));
    if (!m1 || !m2) {
        mlxn_model_free(m1);
        mlxn_model_free(m2);
        return;
    }
    int64_t V1 = mlxn_model_get_info(m1)->vocab_size, V2 = mlxn_model_get_info(m2)->vocab_size;
    enum { N = 12 };
    int32_t prompt[7] = {1, 5, 9, 13, 2, 7, 3};
    float *r1 = malloc(sizeof(float) * N * (size_t)V1), *r2 = malloc(sizeof(float) * N * (size_t)V2);
    float *i1 = malloc(sizeof(float) * N * (size_t)V1), *i2 = malloc(sizeof(float) * N * (size_t)V2);
    solo(m1, prompt, 7, N, r1);
    solo(m2, prompt, 7, N, r2);
    /* interleaved: one step of each in turn, each on its own session's stream */
    mlxn_session *s1 = NULL, *s2 = NULL;
    CHECK_OK(mlxn_session_new(m1, NULL, &s1));
    CHECK_OK(mlxn_session_new(m2, NULL, &s2));
    if (s1 && s2) {
        CHECK_OK(mlxn_session_forward(s1, prompt, 7, MLXN_LOGITS_LAST, i1));
        CHECK_OK(mlxn_session_forward(s2, prompt, 7, MLXN_LOGITS_LAST, i2));
        for (int i = 1; i < N; i++) {
            int32_t t1 = argmax(i1 + (i - 1) * V1, V1), t2 = argmax(i2 + (i - 1) * V2, V2);
            CHECK_OK(mlxn_session_forward(s1, &t1, 1, MLXN_LOGITS_LAST, i1 + i * V1));
            CHECK_OK(mlxn_session_forward(s2, &t2, 1, MLXN_LOGITS_LAST, i2 + i * V2));
        }
        CHECK(!memcmp(r1, i1, sizeof(float) * N * (size_t)V1) && !memcmp(r2, i2, sizeof(float) * N * (size_t)V2),
              "two models interleaved on one GPU differ from each alone");
    }
    /* a bad id reaching the device (past the session's own check): the
       embedding records it and the sync reports it, naming it */
    mlxn_device *dev = gpu;
    int64_t n3 = 3, shape[2] = {10, 16};
    mlxn_tensor ids, table, out;
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_I32, 1, &n3, &ids));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 2, shape, &table));
    int64_t oshape[2] = {3, 16};
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 2, oshape, &out));
    int32_t bad[3] = {2, 4, 1234567};
    CHECK_OK(mlxn_buffer_write(ids.buf, 0, bad, sizeof bad));
    mlxn_stream *st = mlxn_device_stream(dev);
    CHECK_OK(mlxn_embedding(st, &ids, &table, &out));
    CHECK_FAILS(mlxn_stream_sync(st), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(mlxn_last_error(), "ids[2] = 1234567") != NULL, "device-side id error: %s", mlxn_last_error());
    CHECK_OK(mlxn_stream_sync(st));
    mlxn_tensor_release(&ids);
    mlxn_tensor_release(&table);
    mlxn_tensor_release(&out);
    /* the sessions still work after that */
    if (s1) {
        int32_t t = 3;
        CHECK_OK(mlxn_session_forward(s1, &t, 1, MLXN_LOGITS_LAST, i1));
    }
    mlxn_session_free(s1);
    mlxn_session_free(s2);
    free(r1);
    free(r2);
    free(i1);
    free(i2);
    mlxn_model_free(m1);
    mlxn_model_free(m2);

    /* out of device memory: a clear error with the bytes needed */
    mlxn_buffer *huge = NULL;
    mlxn_status st2 = mlxn_buffer_new(gpu, (size_t)1 << 50, &huge);
    CHECK(st2 == MLXN_ERR_OUT_OF_MEMORY && strstr(mlxn_last_error(), "1125899906842624 bytes"),
          "a 1 PiB allocation: %s (%s)", mlxn_status_str(st2), mlxn_last_error());
    mlxn_buffer_free(huge);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_models_cuda");
    mlxn_device *gpu = t_cuda_device();
    if (!gpu) return t_skip("no CUDA device");
    printf("device: %s\n", mlxn_device_name(gpu));
    mlxn_device *cpu = t_cpu_device_exact(0);
    if (cpu) {
        /* the CUDA backend reads MLXN_CUDA_QMM_MIN_ROWS when a stream is
           made: the GPU opened again now has it on its default stream */
        setenv("MLXN_CUDA_QMM_MIN_ROWS", "1000000000", 1);
        mlxn_device *exact = t_cuda_device();
        CHECK(exact != NULL, "the GPU did not open a second time");
        unsetenv("MLXN_CUDA_QMM_MIN_ROWS");
        if (exact) {
            for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
                run_case(cpu, exact, CASES[i].name, CASES[i].bf16, 0);
            smollm2(cpu, exact); /* still on the exact mat-vec path */
            mlxn_device_free(exact);
        }
        for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) run_case(cpu, gpu, CASES[i].name, CASES[i].bf16, 1);
    }
    if (cpu) {
        cu_init_root("test_models_cuda");
        folded(cpu, gpu);
        rmdir(cu_root);
    }
    two_models(gpu);
    mlxn_device_free(cpu);
    mlxn_device_free(gpu);
    return t_finish();
}
