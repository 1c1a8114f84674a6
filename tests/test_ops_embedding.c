/* embedding (dense gather): bit-exact against MLX goldens (table[ids] for
 * f32/f16/bf16 tables, i32 and u32 ids) on every ISA x thread count; random
 * tables and ids (repeats, both ends of the table) against a plain gather
 * here, contiguous and strided tables and ids; an id out of range is
 * MLXN_ERR_INVALID_ARGUMENT naming it, with out left untouched; bad
 * shapes and dtypes. */
#include "test_ops_common.h"

static float table_f32(const void *t, mlxn_dtype dt, size_t i) {
    if (dt == MLXN_DTYPE_F16) return mlxn_f16_to_f32(((const uint16_t *)t)[i]);
    if (dt == MLXN_DTYPE_BF16) return mlxn_bf16_to_f32(((const uint16_t *)t)[i]);
    return ((const float *)t)[i];
}

static void test_golden(mlxn_device *devs[OPS_N_DEV]) {
    mlxn_weights *g = t_golden_open("ops/embedding.safetensors");
    if (!g) return;
    char cases[OPS_MAX_CASES][128];
    int nc = ops_cases(g, cases);
    CHECK(nc >= 4, "embedding golden: only %d cases", nc);
    for (int k = 0; k < nc; k++) {
        for (int d = 0; d < OPS_N_DEV; d++) {
            mlxn_tensor ids, table, want;
            ops_golden(g, devs[d], cases[k], "ids", &ids);
            ops_golden(g, devs[d], cases[k], "table", &table);
            ops_golden(g, devs[d], cases[k], "out", &want);
            mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, want.shape, NULL);
            CHECK_OK(mlxn_embedding(mlxn_device_stream(devs[d]), &ids, &table, &out));
            CHECK(ops_same(ops_f32(&want), ops_f32(&out), (size_t)mlxn_tensor_numel(&want)),
                  "embedding %s on %s differs from MLX", cases[k], ops_dev_label(d));
            ops_free(&ids);
            ops_free(&table);
            ops_free(&want);
            ops_free(&out);
        }
    }
    mlxn_weights_free(g);
}

static void test_random(mlxn_device *devs[OPS_N_DEV]) {
    static const struct {
        int64_t V, D, n;
    } cs[] = {{1, 1, 3}, {17, 7, 40}, {300, 33, 64}, {200, 4096, 21}, {5, 100, 500}, {64, 2048, 50}};
    static const mlxn_dtype dts[3] = {MLXN_DTYPE_F32, MLXN_DTYPE_F16, MLXN_DTYPE_BF16};
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++)
        for (int di = 0; di < 3; di++) {
            int64_t V = cs[k].V, D = cs[k].D, n = cs[k].n, tshape[2] = {V, D}, ishape[1] = {n}, oshape[2] = {n, D};
            mlxn_dtype dt = dts[di], idt = (k + (size_t)di) % 2 ? MLXN_DTYPE_U32 : MLXN_DTYPE_I32;
            size_t es = mlxn_dtype_size(dt);
            char *table = malloc((size_t)(V * D) * es);
            for (int64_t i = 0; i < V * D; i++) {
                float v = t_randn();
                if (dt == MLXN_DTYPE_F32) ((float *)table)[i] = v;
                else ((uint16_t *)table)[i] = dt == MLXN_DTYPE_F16 ? mlxn_f32_to_f16(v) : mlxn_f32_to_bf16(v);
            }
            int32_t *ids = malloc((size_t)n * sizeof *ids);
            for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(t_rand_u64() % (uint64_t)V);
            ids[0] = (int32_t)(V - 1);
            ids[n - 1] = 0;
            float *ref = malloc((size_t)(n * D) * sizeof *ref);
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < D; j++) ref[i * D + j] = table_f32(table, dt, (size_t)(ids[i] * D + j));
            for (int d = 0; d < OPS_N_DEV; d++) {
                mlxn_stream *s = mlxn_device_stream(devs[d]);
                for (int layout = 0; layout < 3; layout++) {
                    /* 0 contiguous; 1 padded table rows + ids stride 2; 2 table columns stride 2 */
                    mlxn_tensor tt = layout == 0 ? ops_tensor(devs[d], dt, 2, tshape, table)
                                                 : ops_strided_dt(devs[d], dt, table, 2, tshape, layout, D * layout + 5);
                    mlxn_tensor ti = layout == 1 ? ops_strided_dt(devs[d], idt, ids, 1, ishape, 2, 2 * n)
                                                 : ops_tensor(devs[d], idt, 1, ishape, ids);
                    mlxn_tensor out = ops_tensor(devs[d], MLXN_DTYPE_F32, 2, oshape, NULL);
                    CHECK_OK(mlxn_embedding(s, &ti, &tt, &out));
                    CHECK(ops_same(ref, ops_f32(&out), (size_t)(n * D)),
                          "embedding %s [%lld, %lld] x %lld ids (layout %d) on %s: wrong rows", mlxn_dtype_name(dt),
                          (long long)V, (long long)D, (long long)n, layout, ops_dev_label(d));
                    ops_free(&tt);
                    ops_free(&ti);
                    ops_free(&out);
                }
            }
            free(table);
            free(ids);
            free(ref);
        }
}

/* An out-of-range id: the right status, a message naming it, out untouched. */
static void bad_id(mlxn_device *dev, mlxn_dtype idt, uint32_t bad, const char *want_in_msg) {
    int64_t tshape[2] = {50, 8}, ishape[1] = {4}, oshape[2] = {4, 8};
    uint32_t ids[4] = {1, 2, bad, 3};
    mlxn_tensor table = ops_tensor(dev, MLXN_DTYPE_F32, 2, tshape, NULL);
    t_fill_randn(ops_f32(&table), 400, 1.0f);
    mlxn_tensor ti = ops_tensor(dev, idt, 1, ishape, ids);
    mlxn_tensor out = ops_tensor(dev, MLXN_DTYPE_F32, 2, oshape, NULL);
    CHECK_FAILS(mlxn_embedding(mlxn_device_stream(dev), &ti, &table, &out), MLXN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(mlxn_last_error(), want_in_msg) != NULL, "message '%s' does not name '%s'", mlxn_last_error(),
          want_in_msg);
    int untouched = 1;
    for (int i = 0; i < 32; i++) untouched &= isnan(ops_f32(&out)[i]);
    CHECK(untouched, "out was written before the bad id was reported");
    ops_free(&table);
    ops_free(&ti);
    ops_free(&out);
}

static void test_bad_args(mlxn_device *dev) {
    bad_id(dev, MLXN_DTYPE_I32, 50, "ids[2] = 50");
    bad_id(dev, MLXN_DTYPE_I32, (uint32_t)-1, "ids[2] = -1");
    bad_id(dev, MLXN_DTYPE_U32, 0xFFFFFFFFu, "ids[2] = 4294967295");
    bad_id(dev, MLXN_DTYPE_U32, 0x80000000u, "ids[2] = 2147483648");
    mlxn_stream *s = mlxn_device_stream(dev);
    int64_t t2[2] = {10, 4}, t1[1] = {40}, i1[1] = {3}, i2[2] = {3, 1}, o2[2] = {3, 4}, o5[2] = {3, 5};
    mlxn_tensor table = ops_tensor(dev, MLXN_DTYPE_BF16, 2, t2, NULL), t1d = ops_tensor(dev, MLXN_DTYPE_F32, 1, t1, NULL);
    mlxn_tensor tint = ops_tensor(dev, MLXN_DTYPE_I32, 2, t2, NULL);
    int32_t idv[3] = {0, 1, 2};
    mlxn_tensor ids = ops_tensor(dev, MLXN_DTYPE_I32, 1, i1, idv), ids2 = ops_tensor(dev, MLXN_DTYPE_I32, 2, i2, idv);
    mlxn_tensor idsf = ops_tensor(dev, MLXN_DTYPE_F32, 1, i1, NULL);
    mlxn_tensor out = ops_tensor(dev, MLXN_DTYPE_F32, 2, o2, NULL), out5 = ops_tensor(dev, MLXN_DTYPE_F32, 2, o5, NULL);
    mlxn_tensor outh = ops_tensor(dev, MLXN_DTYPE_F16, 2, o2, NULL);
    memset(mlxn_tensor_host(&table), 0, 80);
    CHECK_OK(mlxn_embedding(s, &ids, &table, &out));
    CHECK_FAILS(mlxn_embedding(s, &ids, &t1d, &out), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_embedding(s, &ids, &tint, &out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_embedding(s, &ids2, &table, &out), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_embedding(s, &idsf, &table, &out), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_embedding(s, &ids, &table, &out5), MLXN_ERR_SHAPE);
    CHECK_FAILS(mlxn_embedding(s, &ids, &table, &outh), MLXN_ERR_DTYPE);
    CHECK_FAILS(mlxn_embedding(s, NULL, &table, &out), MLXN_ERR_INVALID_ARGUMENT);
    mlxn_tensor *all[] = {&table, &t1d, &tint, &ids, &ids2, &idsf, &out, &out5, &outh};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ops_free(all[i]);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_ops_embedding");
    mlxn_device *devs[OPS_N_DEV];
    ops_devices(devs);
    test_golden(devs);
    test_random(devs);
    test_bad_args(devs[8]);
    ops_devices_free(devs);
    return t_finish();
}
