/* A small test harness: checks that count, seeded random inputs, poisoned
 * outputs, normalized error, and golden files written by MLX.
 *
 * Each test program calls t_init(argc, argv, "name") first (the seed is
 * fresh each run, printed, and can be replayed with `test_x SEED`), then
 * CHECKs, then returns t_finish(). The last line it prints is
 * "name: N passed, N failed". NaN never passes a numeric check. */
#ifndef MLXN_TEST_HARNESS_H
#define MLXN_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mlxn/mlxn.h"

extern int t_passed, t_failed;

void t_init(int argc, char **argv, const char *name);
/* Prints the summary; returns the process exit code (0 = all passed). */
int t_finish(void);
/* Exit code 77 after printing "skipped: <why>": ctest reports a skip. */
int t_skip(const char *why);

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (cond) {                                                           \
            t_passed++;                                                       \
        } else {                                                              \
            t_failed++;                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

/* A call that must succeed; on failure prints the library's message. */
#define CHECK_OK(expr)                                                        \
    do {                                                                      \
        mlxn_status t_st_ = (expr);                                           \
        CHECK(t_st_ == MLXN_OK, "%s -> %s: %s", #expr, mlxn_status_str(t_st_), \
              mlxn_last_error());                                             \
    } while (0)

/* A call that must fail with `want` and leave a non-empty message. */
#define CHECK_FAILS(expr, want)                                               \
    do {                                                                      \
        mlxn_clear_error();                                                   \
        mlxn_status t_st_ = (expr);                                           \
        CHECK(t_st_ == (want) && mlxn_last_error()[0] != '\0',                \
              "%s -> %s (wanted %s), message '%s'", #expr,                    \
              mlxn_status_str(t_st_), mlxn_status_str(want), mlxn_last_error()); \
    } while (0)

/* Random numbers from the run's seed (xoshiro256**). */
uint64_t t_rand_u64(void);
float t_uniform(float lo, float hi);
float t_randn(void);
void t_fill_randn(float *x, size_t n, float scale);
uint64_t t_seed(void);

/* Fill bytes with 0xFF: as f32/f16/bf16 that is NaN, so an output element a
 * kernel forgot to write fails every numeric check. */
void t_poison(void *p, size_t bytes);

/* sum((ref - got)^2) / sum(ref^2) (plain squared error when ref is all
 * zero); +inf when any value is NaN/inf or differs in finiteness. */
double t_nmse(const float *ref, const float *got, size_t n);
/* max |ref - got|; +inf on any NaN. */
double t_max_abs_diff(const float *ref, const float *got, size_t n);
/* Standard deviation of x [n] (the scale logits are compared at). */
double t_std(const float *x, size_t n);
/* Rows [from, to) of got against ref (both [*, V]): every row's
 * max |diff| / sd must be <= max_rel and its NMSE <= nmse (NaN never
 * passes). One check for the lot, naming `what` and how many rows failed;
 * the first three are printed to stderr. The worst ratio and NMSE over the
 * rows come back through worst_rel / worst_nmse (either may be NULL). */
void t_compare_rows(const char *what, const float *ref, const float *got, int64_t from, int64_t to, int64_t V,
                    double sd, double max_rel, double nmse, double *worst_rel, double *worst_nmse);

/* t's shape, element stride ls along the last axis, and row stride rs
 * for the axis before it, the outer axes packed over the rows. */
void t_set_row_strides(mlxn_tensor *t, int ndim, const int64_t *shape, int64_t ls, int64_t rs);
/* The path of `file` in the cache of fetched test models (where
 * tests/golden/fetch_*.sh put them): $MLXN_CACHE_DIR when set, else
 * ${XDG_CACHE_HOME:-~/.cache}/mlx-native. Returns whether it exists. */
int t_model_cache_path(const char *file, char *out, size_t cap);
/* The real test model the fetch script tests/golden/fetch_smollm2.sh gets. */
#define T_SMOLLM2_GGUF "SmolLM2-135M-Instruct.Q4_1.gguf"
/* t_skip for a fetched model that is absent at `path`, naming the fetch script. */
int t_skip_absent_smollm2(const char *path);

/* Load the golden model tests/golden/models/<name> on dev; NULL (with a
 * failed check) when it cannot be loaded. */
mlxn_model *t_golden_model(mlxn_device *dev, const char *name);

/* Open a golden file tests/golden/<rel> written by the committed MLX
 * script; NULL (with a failed check) when it cannot be read. */
mlxn_weights *t_golden_open(const char *rel);
/* Pointer to a golden tensor's bytes, checking its dtype; NULL + failed
 * check when absent. n_out (optional) receives the element count. */
const void *t_golden_get(mlxn_weights *g, const char *name, mlxn_dtype dtype, size_t *n_out);

/* A tensor over a fresh buffer on `dev` just large enough for `shape` with
 * element `strides`, every byte poisoned (so the gaps between strided rows
 * read as NaN). t_tensor_contig is the same with row-major strides. Free
 * either with t_tensor_free. */
mlxn_tensor t_tensor_strided(mlxn_device *dev, mlxn_dtype dt, int ndim, const int64_t *shape,
                             const int64_t *strides);
mlxn_tensor t_tensor_contig(mlxn_device *dev, mlxn_dtype dt, int ndim, const int64_t *shape);
void t_tensor_free(mlxn_tensor *t);

/* A CPU device with `threads` threads (0 = all) and an ISA cap. */
mlxn_device *t_cpu_device(int threads, mlxn_cpu_isa isa);
/* The CPU at AVX2 with f32 activations in every quantized matmul (no
 * integer mat-vec): the float paths only, for tight comparisons. */
mlxn_device *t_cpu_device_exact(int threads);

/* CUDA device 0, or NULL after printing why it could not be opened (the
 * caller then returns t_skip("no CUDA device")). */
mlxn_device *t_cuda_device(void);

/* A norm weight as the model applies it: w_offset + w[i], rounded to the
 * weight's dtype as mlx-lm's `1.0 + weight` is (w f32, f16 or bf16). */
float t_norm_weight(const void *w, mlxn_dtype dt, int64_t i, float off);

#endif
