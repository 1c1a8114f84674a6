/* mlxn_kv_write: rows appended to a cache at a slot read from device
 * memory. On the CPU against a scalar reference written here (every
 * destination element checked: the written rows hold src converted with
 * round-to-nearest-even, every other element keeps its poison), for f32 /
 * bf16 / f16 caches, contiguous and transposed sources ([T, H, D] seen as
 * [H, T, D], as the model writes V), first, middle and last slots; then a
 * slot out of range (an error naming it, nothing written) and bad shapes.
 * On a CUDA device when there is one: the same cases bit for bit against
 * the CPU, and a bad slot reported by the next stream sync. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The reference: dst (host copy, [H, cap, D] contiguous of dtype dt) rows
 * [at, at + T) = src[h, t, d] read through strides ss. */
static void ref_write(const float *src, const int64_t *ss, int64_t H, int64_t T, int64_t D, int64_t cap, int64_t at,
                      mlxn_dtype dt, void *dst) {
    for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t d = 0; d < D; d++) {
                float v = src[h * ss[0] + t * ss[1] + d * ss[2]];
                int64_t i = (h * cap + at + t) * D + d;
                if (dt == MLXN_DTYPE_F32) ((float *)dst)[i] = v;
                else if (dt == MLXN_DTYPE_BF16) ((uint16_t *)dst)[i] = mlxn_f32_to_bf16(v);
                else ((uint16_t *)dst)[i] = mlxn_f32_to_f16(v);
            }
}

typedef struct dev_case {
    mlxn_device *dev;
    const char *name;
} dev_case;

/* One case on dev: returns the dst bytes after the write (malloc'd). */
static void *run_one(mlxn_device *dev, const float *srcv, size_t src_elems, const int64_t *sshape,
                     const int64_t *sstrides, int64_t H, int64_t cap, int64_t D, mlxn_dtype dt, int32_t at,
                     mlxn_status *rc) {
    mlxn_stream *s = mlxn_device_stream(dev);
    size_t dbytes = (size_t)(H * cap * D) * mlxn_dtype_size(dt);
    mlxn_buffer *sb = NULL, *db = NULL, *slb = NULL;
    void *out = malloc(dbytes);
    t_poison(out, dbytes);
    CHECK_OK(mlxn_buffer_new(dev, src_elems * sizeof(float), &sb));
    CHECK_OK(mlxn_buffer_new(dev, dbytes, &db));
    CHECK_OK(mlxn_buffer_new(dev, sizeof(int32_t), &slb));
    *rc = MLXN_ERR_INVALID_ARGUMENT;
    if (sb && db && slb) {
        CHECK_OK(mlxn_buffer_write(sb, 0, srcv, src_elems * sizeof(float)));
        CHECK_OK(mlxn_buffer_write(db, 0, out, dbytes)); /* poisoned */
        CHECK_OK(mlxn_buffer_write(slb, 0, &at, sizeof at));
        mlxn_tensor src = {0}, dst = {0}, slot = {0};
        int64_t one = 1, dshape[3] = {H, cap, D};
        CHECK_OK(mlxn_tensor_view(sb, MLXN_DTYPE_F32, 3, sshape, 0, &src));
        for (int i = 0; i < 3; i++) src.strides[i] = sstrides[i];
        CHECK_OK(mlxn_tensor_view(db, dt, 3, dshape, 0, &dst));
        CHECK_OK(mlxn_tensor_view(slb, MLXN_DTYPE_I32, 1, &one, 0, &slot));
        *rc = mlxn_kv_write(s, &src, &slot, &dst);
        if (*rc == MLXN_OK) *rc = mlxn_stream_sync(s);
        CHECK_OK(mlxn_buffer_read(db, 0, out, dbytes));
    }
    mlxn_buffer_free(sb);
    mlxn_buffer_free(db);
    mlxn_buffer_free(slb);
    return out;
}

static void cases(mlxn_device *dev, mlxn_device *cpu, const char *name) {
    const mlxn_dtype dts[3] = {MLXN_DTYPE_F32, MLXN_DTYPE_BF16, MLXN_DTYPE_F16};
    const int64_t H = 3, D = 37, cap = 13;
    for (int di = 0; di < 3; di++)
        for (int trans = 0; trans < 2; trans++)
            for (int64_t T = 1; T <= 4; T += 3) {
                int32_t slots[3] = {0, 5, (int32_t)(cap - T)};
                for (int k = 0; k < 3; k++) {
                    size_t n = (size_t)(H * T * D);
                    float *srcv = malloc(n * sizeof(float));
                    t_fill_randn(srcv, n, 2.0f);
                    int64_t shape[3] = {H, T, D}, st[3];
                    if (trans) { /* stored [T, H, D], viewed [H, T, D] */
                        st[0] = D, st[1] = H * D, st[2] = 1;
                    } else {
                        st[0] = T * D, st[1] = D, st[2] = 1;
                    }
                    mlxn_status rc;
                    void *got = run_one(dev, srcv, n, shape, st, H, cap, D, dts[di], slots[k], &rc);
                    CHECK(rc == MLXN_OK, "%s kv_write %s T=%lld slot %d: %s", name, mlxn_dtype_name(dts[di]),
                          (long long)T, slots[k], mlxn_last_error());
                    size_t dbytes = (size_t)(H * cap * D) * mlxn_dtype_size(dts[di]);
                    void *want = malloc(dbytes);
                    if (cpu) { /* the device against the CPU, bit for bit */
                        want = (free(want), run_one(cpu, srcv, n, shape, st, H, cap, D, dts[di], slots[k], &rc));
                    } else {
                        t_poison(want, dbytes);
                        ref_write(srcv, st, H, T, D, cap, slots[k], dts[di], want);
                    }
                    CHECK(!memcmp(got, want, dbytes), "%s kv_write %s %s T=%lld slot %d: destination differs", name,
                          mlxn_dtype_name(dts[di]), trans ? "transposed" : "contiguous", (long long)T, slots[k]);
                    free(got);
                    free(want);
                    free(srcv);
                }
            }
    /* out of range: an error naming the slot, nothing written */
    int32_t bads[2] = {-1, (int32_t)(cap - 1)};
    for (int k = 0; k < 2; k++) {
        size_t n = (size_t)(H * 2 * D);
        float *srcv = malloc(n * sizeof(float));
        t_fill_randn(srcv, n, 1.0f);
        int64_t shape[3] = {H, 2, D}, st[3] = {2 * D, D, 1};
        mlxn_status rc;
        void *got = run_one(dev, srcv, n, shape, st, H, cap, D, MLXN_DTYPE_F32, bads[k], &rc);
        char needle[32];
        snprintf(needle, sizeof needle, "slot %d", bads[k]);
        CHECK(rc == MLXN_ERR_INVALID_ARGUMENT && strstr(mlxn_last_error(), needle),
              "%s kv_write at slot %d of 13 (2 rows): %s (%s)", name, bads[k], mlxn_status_str(rc), mlxn_last_error());
        int untouched = 1;
        for (size_t i = 0; i < (size_t)(H * cap * D); i++) untouched &= isnan(((float *)got)[i]);
        CHECK(untouched, "%s kv_write wrote with a bad slot", name);
        CHECK_OK(mlxn_stream_sync(mlxn_device_stream(dev))); /* reported once */
        free(got);
        free(srcv);
    }
}

static void bad_shapes(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t ss[3] = {2, 3, 8}, ds[3] = {2, 5, 8}, dw[3] = {2, 5, 9}, dsmall[3] = {2, 2, 8}, one = 1, two = 2;
    mlxn_tensor src, dst, dwrong, dsm, slot, slot2, si8;
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, ss, &src));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_BF16, 3, ds, &dst));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, dw, &dwrong));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_F32, 3, dsmall, &dsm));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_I32, 1, &one, &slot));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_I32, 1, &two, &slot2));
    CHECK_OK(mlxn_tensor_alloc(dev, MLXN_DTYPE_I8, 1, &one, &si8));
    CHECK_FAILS(mlxn_kv_write(s, &src, &slot, &dwrong), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_kv_write(s, &src, &slot, &dsm), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_kv_write(s, &src, &slot2, &dst), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_kv_write(s, &src, &si8, &dst), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_kv_write(s, &src, NULL, &dst), MLXN_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(mlxn_kv_write(s, &src, &slot, &src), MLXN_ERR_INVALID_ARGUMENT); /* dst aliases src */
    mlxn_tensor_release(&src);
    mlxn_tensor_release(&dst);
    mlxn_tensor_release(&dwrong);
    mlxn_tensor_release(&dsm);
    mlxn_tensor_release(&slot);
    mlxn_tensor_release(&slot2);
    mlxn_tensor_release(&si8);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_ops_kv_write");
    mlxn_device *cpu = t_cpu_device(2, MLXN_CPU_ISA_AUTO);
    if (!cpu) return t_finish();
    cases(cpu, NULL, "cpu");
    bad_shapes(cpu);
    mlxn_device_params p = {.kind = MLXN_DEVICE_CUDA};
    mlxn_device *gpu = NULL;
    if (mlxn_device_new(&p, &gpu) == MLXN_OK) {
        cases(gpu, cpu, "cuda");
        bad_shapes(gpu);
        mlxn_device_free(gpu);
    } else {
        printf("cuda: not available (%s)\n", mlxn_last_error());
    }
    mlxn_device_free(cpu);
    return t_finish();
}
