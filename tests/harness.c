/* Test harness implementation; see harness.h. */
#include "harness.h"

#include <math.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int t_passed, t_failed;
static const char *t_name = "test";
static uint64_t rng[4], seed0;

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void t_init(int argc, char **argv, const char *name) {
    t_name = name;
    if (argc > 1) {
        seed0 = strtoull(argv[1], NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed0 = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
    }
    uint64_t x = seed0;
    for (int i = 0; i < 4; i++) rng[i] = splitmix(&x);
    printf("%s: seed %llu (replay: %s %llu)\n", name, (unsigned long long)seed0, argv[0],
           (unsigned long long)seed0);
}

uint64_t t_seed(void) { return seed0; }

int t_finish(void) {
    printf("%s: %d passed, %d failed\n", t_name, t_passed, t_failed);
    fflush(stdout);
    return t_failed ? 1 : (t_passed ? 0 : 1); /* a test that checked nothing fails */
}

int t_skip(const char *why) {
    printf("%s: skipped: %s\n", t_name, why);
    fflush(stdout);
    return 77;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t t_rand_u64(void) {
    uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return r;
}

float t_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)((t_rand_u64() >> 40) * (1.0 / 16777216.0));
}

float t_randn(void) {
    double u1 = ((t_rand_u64() >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (t_rand_u64() >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void t_fill_randn(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * t_randn();
}

void t_poison(void *p, size_t bytes) { memset(p, 0xFF, bytes); }

double t_nmse(const float *ref, const float *got, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ref[i]) || !isfinite(got[i])) {
            if (isinf(ref[i]) && ref[i] == got[i]) continue; /* matching infinities */
            return INFINITY;
        }
        double d = (double)ref[i] - (double)got[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? num / den : num;
}

double t_max_abs_diff(const float *ref, const float *got, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ref[i] - (double)got[i]);
        if (isnan(d)) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

double t_std(const float *x, size_t n) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += x[i], s2 += (double)x[i] * x[i];
    double m = s / (double)n;
    return sqrt(s2 / (double)n - m * m);
}

void t_compare_rows(const char *what, const float *ref, const float *got, int64_t from, int64_t to, int64_t V,
                    double sd, double max_rel, double nmse, double *worst_rel, double *worst_nmse) {
    int bad = 0;
    double worst = 0, worst_e = 0;
    for (int64_t r = from; r < to; r++) {
        double d = t_max_abs_diff(ref + r * V, got + r * V, (size_t)V) / sd;
        double e = t_nmse(ref + r * V, got + r * V, (size_t)V);
        if (!(d <= max_rel) || !(e <= nmse)) {
            if (bad < 3) fprintf(stderr, "  %s row %lld: max diff %.3g std, nmse %.3g\n", what, (long long)r, d, e);
            bad++;
        }
        if (!(d <= worst)) worst = d;
        if (!(e <= worst_e)) worst_e = e;
    }
    CHECK(bad == 0, "%s: %d of %lld rows beyond %.0e std / nmse %.0e (worst %.3g std, nmse %.3g)", what, bad,
          (long long)(to - from), max_rel, nmse, worst, worst_e);
    if (worst_rel) *worst_rel = worst;
    if (worst_nmse) *worst_nmse = worst_e;
}

int t_skip_absent_smollm2(const char *path) {
    char why[2200];
    snprintf(why, sizeof why, "%s is absent (tests/golden/fetch_smollm2.sh fetches it)", path);
    return t_skip(why);
}

void t_set_row_strides(mlxn_tensor *t, int ndim, const int64_t *shape, int64_t ls, int64_t rs) {
    int64_t st = rs;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        if (i == ndim - 1) {
            t->strides[i] = ls;
        } else {
            t->strides[i] = st;
            st *= shape[i];
        }
    }
}

int t_model_cache_path(const char *file, char *out, size_t cap) {
    const char *dir = getenv("MLXN_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (dir && *dir) snprintf(out, cap, "%s/%s", dir, file);
    else if (xdg && *xdg) snprintf(out, cap, "%s/mlx-native/%s", xdg, file);
    else snprintf(out, cap, "%s/.cache/mlx-native/%s", home ? home : ".", file);
    struct stat sb;
    return stat(out, &sb) == 0;
}

mlxn_model *t_golden_model(mlxn_device *dev, const char *name) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/%s", MLXN_TEST_GOLDEN_DIR, name);
    mlxn_model *m = NULL;
    mlxn_status st = mlxn_model_load(dir, dev, NULL, &m);
    CHECK(st == MLXN_OK, "load golden model %s: %s", dir, mlxn_last_error());
    return st == MLXN_OK ? m : NULL;
}

mlxn_weights *t_golden_open(const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", MLXN_TEST_GOLDEN_DIR, rel);
    mlxn_weights *w = NULL;
    mlxn_status st = mlxn_weights_open(path, &w);
    CHECK(st == MLXN_OK, "open golden %s: %s", path, mlxn_last_error());
    return st == MLXN_OK ? w : NULL;
}

const void *t_golden_get(mlxn_weights *g, const char *name, mlxn_dtype dtype, size_t *n_out) {
    const mlxn_weight_info *info = g ? mlxn_weights_find(g, name) : NULL;
    CHECK(info != NULL, "golden tensor %s missing", name);
    if (!info) return NULL;
    CHECK(info->dtype == dtype, "golden tensor %s is %s, expected %s", name, mlxn_dtype_name(info->dtype),
          mlxn_dtype_name(dtype));
    if (info->dtype != dtype) return NULL;
    if (n_out) *n_out = info->nbytes / mlxn_dtype_size(dtype);
    return mlxn_weights_data(g, info);
}

mlxn_device *t_cpu_device(int threads, mlxn_cpu_isa isa) {
    mlxn_device_params p = {.kind = MLXN_DEVICE_CPU, .n_threads = threads, .isa = isa};
    mlxn_device *dev = NULL;
    CHECK_OK(mlxn_device_new(&p, &dev));
    return dev;
}

mlxn_device *t_cpu_device_exact(int threads) {
    mlxn_device_params p = {.kind = MLXN_DEVICE_CPU, .n_threads = threads, .isa = MLXN_CPU_ISA_AVX2,
                            .float_activations = 1};
    mlxn_device *dev = NULL;
    CHECK_OK(mlxn_device_new(&p, &dev));
    return dev;
}

mlxn_device *t_cuda_device(void) {
    mlxn_device_params p = {.kind = MLXN_DEVICE_CUDA, .index = 0};
    mlxn_device *dev = NULL;
    if (mlxn_device_new(&p, &dev) != MLXN_OK) {
        printf("cuda: not available (%s)\n", mlxn_last_error());
        return NULL;
    }
    return dev;
}

float t_norm_weight(const void *w, mlxn_dtype dt, int64_t i, float off) {
    float v = dt == MLXN_DTYPE_F32    ? ((const float *)w)[i]
              : dt == MLXN_DTYPE_F16 ? mlxn_f16_to_f32(((const uint16_t *)w)[i])
                                      : mlxn_bf16_to_f32(((const uint16_t *)w)[i]);
    if (off == 0.0f) return v;
    v = off + v;
    if (dt == MLXN_DTYPE_F16) v = mlxn_f16_to_f32(mlxn_f32_to_f16(v));
    if (dt == MLXN_DTYPE_BF16) v = mlxn_bf16_to_f32(mlxn_f32_to_bf16(v));
    return v;
}

mlxn_tensor t_tensor_strided(mlxn_device *dev, mlxn_dtype dt, int ndim, const int64_t *shape,
                             const int64_t *strides) {
    mlxn_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = ndim;
    int64_t span = 1; /* elements from the first to the last one, inclusive */
    for (int i = 0; i < ndim; i++) {
        t.shape[i] = shape[i];
        t.strides[i] = strides[i];
        if (shape[i] > 0) span += (shape[i] - 1) * strides[i];
    }
    size_t bytes = (size_t)span * mlxn_dtype_size(dt);
    CHECK_OK(mlxn_buffer_new(dev, bytes ? bytes : 1, &t.buf));
    if (!t.buf) return t;
    void *host = mlxn_buffer_host(t.buf);
    if (host) {
        t_poison(host, bytes);
    } else { /* device memory: poison through a host copy */
        void *p = malloc(bytes ? bytes : 1);
        if (p) {
            t_poison(p, bytes);
            CHECK_OK(mlxn_buffer_write(t.buf, 0, p, bytes));
            free(p);
        }
    }
    return t;
}

mlxn_tensor t_tensor_contig(mlxn_device *dev, mlxn_dtype dt, int ndim, const int64_t *shape) {
    int64_t st[MLXN_MAX_DIMS], s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        st[i] = s;
        s *= shape[i];
    }
    return t_tensor_strided(dev, dt, ndim, shape, st);
}

void t_tensor_free(mlxn_tensor *t) {
    mlxn_buffer_free(t->buf);
    t->buf = NULL;
}
