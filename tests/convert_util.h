/* Helpers shared by the convert tests (test_convert.c, test_gguf_model.c):
 * scratch directories, logits comparison, file and JSON reading. Header
 * only (static functions), so each test program stays one file. */
#ifndef MLXN_TEST_CONVERT_UTIL_H
#define MLXN_TEST_CONVERT_UTIL_H

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"

/* Tolerances on logits, per row: max |diff| relative to the std of the
 * reference, and NMSE (the same classes as tests/test_models.c). */
typedef struct cu_tol {
    double max_rel, nmse;
} cu_tol;

static char cu_root[1024]; /* scratch directory of the test program */

static void cu_init_root(const char *name) {
    snprintf(cu_root, sizeof cu_root, "%s/%s_XXXXXX", MLXN_TEST_BINARY_DIR, name);
    if (!mkdtemp(cu_root)) CHECK(0, "mkdtemp %s", cu_root);
}

/* Remove a directory and the files in it (one level: what convert writes). */
static void cu_rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[2400];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int cu_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Entries of the scratch root whose name contains ".tmp-" (what a failed
 * convert must not leave behind). */
static int cu_leftovers(void) {
    DIR *d = opendir(cu_root);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp-")) n++;
    if (d) closedir(d);
    return n;
}

static const char *cu_path(const char *name) {
    static char p[4][1400];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", cu_root, name);
    return p[k];
}

static const char *cu_golden(const char *rel) {
    static char p[4][1400];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", MLXN_TEST_GOLDEN_DIR, rel);
    return p[k];
}

static json_t *cu_json(const char *path) {
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    CHECK(j != NULL, "read %s: %s", path, e.text);
    return j;
}

static double cu_std(const float *x, size_t n) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += x[i], s2 += (double)x[i] * x[i];
    double m = s / (double)n;
    return sqrt(s2 / (double)n - m * m);
}

/* Compare [rows, V] logits row by row against ref. */
static void cu_compare(const char *what, const float *ref, const float *got, int64_t rows, int64_t V, cu_tol tl) {
    double sd = cu_std(ref, (size_t)(rows * V)), worst = 0, worst_nmse = 0;
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        double d = t_max_abs_diff(ref + r * V, got + r * V, (size_t)V) / sd;
        double e = t_nmse(ref + r * V, got + r * V, (size_t)V);
        if (!(d <= tl.max_rel) || !(e <= tl.nmse)) bad++;
        if (!(d <= worst)) worst = d;
        if (!(e <= worst_nmse)) worst_nmse = e;
    }
    CHECK(bad == 0, "%s: %d of %lld rows beyond %.0e std / nmse %.0e (worst %.3g std, nmse %.3g)", what, bad,
          (long long)rows, tl.max_rel, tl.nmse, worst, worst_nmse);
    printf("  %-44s max|diff| %.2e std  nmse %.2e\n", what, worst, worst_nmse);
}

/* Logits of `tokens` through the model at `path` on dev ([n, V], malloc'd;
 * NULL on failure). */
static float *cu_logits(mlxn_device *dev, const char *path, const int32_t *tokens, int64_t n, int64_t *V) {
    mlxn_model *m = NULL;
    mlxn_session *s = NULL;
    float *out = NULL;
    CHECK_OK(mlxn_model_load(path, dev, NULL, &m));
    if (m) CHECK_OK(mlxn_session_new(m, NULL, &s));
    if (s) {
        *V = mlxn_model_get_info(m)->vocab_size;
        out = malloc(sizeof(float) * (size_t)(n * *V));
        t_poison(out, sizeof(float) * (size_t)(n * *V));
        mlxn_status st = mlxn_session_forward(s, tokens, n, MLXN_LOGITS_ALL, out);
        CHECK(st == MLXN_OK, "forward %s: %s", path, mlxn_last_error());
        if (st != MLXN_OK) {
            free(out);
            out = NULL;
        }
    }
    mlxn_session_free(s);
    mlxn_model_free(m);
    return out;
}

/* A call that must fail with `want`, a message naming n1 (and n2), and
 * nothing at `dst` nor temporary leftovers. */
static void cu_convert_fails(const char *src, const char *dst, const mlxn_convert_params *p, mlxn_status want,
                             const char *n1, const char *n2) {
    mlxn_clear_error();
    mlxn_status st = mlxn_convert(src, dst, p);
    const char *msg = mlxn_last_error();
    CHECK(st == want, "convert %s -> %s (wanted %s): %s", src ? src : "(random)", mlxn_status_str(st),
          mlxn_status_str(want), msg);
    CHECK(strstr(msg, n1) && (!n2 || strstr(msg, n2)), "convert %s: message '%s' should name '%s'%s%s",
          src ? src : "(random)", msg, n1, n2 ? " and " : "", n2 ? n2 : "");
    CHECK(!cu_exists(dst), "a failed convert left %s", dst);
    CHECK(cu_leftovers() == 0, "a failed convert left a temporary directory in %s", cu_root);
}

#endif
