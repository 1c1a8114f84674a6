/* mlxn_tq_rope_append on the CPU: the cases of tq_rope_cases.h (the fused
 * op against mlxn_rope, mlxn_rope and mlxn_tq_append apart, byte for byte),
 * at the scalar ISA and the machine's best. A bad position, host or in the
 * device tensor: an error naming the op, and nothing written, q_out
 * included. Bad arguments: a clear status whose message names the
 * argument. */
#include "tq_rope_cases.h"

/* Nothing written: q_out still NaN everywhere, every code and norm zero. */
static int untouched(const mlxn_tensor *qo, const mlxn_tq_cache *c) {
    const float *q = mlxn_tensor_host(qo);
    for (int64_t i = 0; i < mlxn_tensor_numel(qo); i++)
        if (!isnan(q[i])) return 0;
    const mlxn_tensor *arr[4] = {&c->k_codes, &c->v_codes, &c->k_norms, &c->v_norms};
    for (int a = 0; a < 4; a++) {
        const uint8_t *b = mlxn_buffer_host(arr[a]->buf);
        for (size_t i = 0; i < mlxn_buffer_size(arr[a]->buf); i++)
            if (b[i]) return 0;
    }
    return 1;
}

#define CHECK_BAD(expr, want, what)                                                                                   \
    do {                                                                                                              \
        mlxn_clear_error();                                                                                           \
        mlxn_status st_ = (expr);                                                                                     \
        CHECK(st_ == (want) && strstr(mlxn_last_error(), "tq_rope_append") && strstr(mlxn_last_error(), what),        \
              "%s -> %s (wanted %s naming %s): '%s'", #expr, mlxn_status_str(st_), mlxn_status_str(want), what,      \
              mlxn_last_error());                                                                                     \
    } while (0)

static void bad_args(mlxn_device *dev) {
    mlxn_stream *s = mlxn_device_stream(dev);
    mlxn_tq_cache_params cp = {.n_kv_heads = 2, .capacity = 16, .head_dim = 64, .k_bits = 4, .v_bits = 4,
                               .seed = mlxn_tq_seed(1)};
    mlxn_tq_cache *c = NULL;
    CHECK_OK(mlxn_tq_cache_new(dev, &cp, &c));
    if (!c) return;
    const int64_t qs[3] = {4, 3, 64}, ks[3] = {2, 3, 64}, q2s[3] = {4, 2, 64}, qds[3] = {4, 3, 32};
    mlxn_tensor q = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, qs), qo = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, qs);
    mlxn_tensor k = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, ks), v = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, ks);
    mlxn_tensor qbf = t_tensor_contig(dev, MLXN_DTYPE_BF16, 3, qs), q2 = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, q2s);
    mlxn_tensor qd = t_tensor_contig(dev, MLXN_DTYPE_F32, 3, qds);
    /* q_out as a transposed view of [3, 4, 64]: not contiguous */
    mlxn_tensor qo_t = t_tensor_strided(dev, MLXN_DTYPE_F32, 3, qs, (const int64_t[]){64, 256, 1});
    mlxn_tensor neg = trc_i32(dev, -3), big = trc_i32(dev, 1);
    int64_t two = 2;
    mlxn_tensor off2 = t_tensor_contig(dev, MLXN_DTYPE_I32, 1, &two);
    float *h = mlxn_tensor_host(&q);
    for (int64_t i = 0; i < mlxn_tensor_numel(&q); i++) h[i] = 0.25f * (float)(i % 7);
    memcpy(mlxn_tensor_host(&k), h, (size_t)mlxn_tensor_numel(&k) * sizeof(float));
    memcpy(mlxn_tensor_host(&v), h, (size_t)mlxn_tensor_numel(&v) * sizeof(float));
    mlxn_rope_params p = {.dims = 64, .base = 10000.0f, .scale = 1.0f, .offset = 5}, podd = p, pwide = p, poff = p;
    podd.dims = 7;
    pwide.dims = 66;
    poff.offset_tensor = &off2;

    /* bad positions first, on the fresh cache: nothing may be written */
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &k, &v, &p, &qo, -1, NULL), MLXN_ERR_INVALID_ARGUMENT, "pos");
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &k, &v, &p, &qo, 0, &neg), MLXN_ERR_INVALID_ARGUMENT, "pos_tensor");
    CHECK(untouched(&qo, c), "a bad position wrote q_out or the cache");

    CHECK_OK(mlxn_tq_rope_append(s, c, &q, &k, &v, &p, &qo, 3, NULL)); /* the good call */
    CHECK_OK(mlxn_tq_rope_append(s, c, &q, &k, &v, &p, &qo, 0, &big));
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &k, &v, NULL, &qo, 0, NULL), MLXN_ERR_INVALID_ARGUMENT, "params");
    CHECK_BAD(mlxn_tq_rope_append(s, NULL, &q, &k, &v, &p, &qo, 0, NULL), MLXN_ERR_INVALID_ARGUMENT, "cache");
    CHECK_BAD(mlxn_tq_rope_append(s, c, NULL, &k, &v, &p, &qo, 0, NULL), MLXN_ERR_INVALID_ARGUMENT, "q");
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, NULL, &v, &p, &qo, 0, NULL), MLXN_ERR_INVALID_ARGUMENT, "k");
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &k, NULL, &p, &qo, 0, NULL), MLXN_ERR_INVALID_ARGUMENT, "v");
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &k, &v, &p, NULL, 0, NULL), MLXN_ERR_INVALID_ARGUMENT, "q_out");
    CHECK_BAD(mlxn_tq_rope_append(s, c, &qbf, &k, &v, &p, &qo, 0, NULL), MLXN_ERR_DTYPE, "q");
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q2, &k, &v, &p, &q2, 0, NULL), MLXN_ERR_SHAPE, "q is");  /* 2 tokens, k 3 */
    CHECK_BAD(mlxn_tq_rope_append(s, c, &qd, &k, &v, &p, &qd, 0, NULL), MLXN_ERR_SHAPE, "q is");  /* head dim 32 */
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &k, &v, &p, &q2, 0, NULL), MLXN_ERR_SHAPE, "q_out");
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &k, &v, &p, &qo_t, 0, NULL), MLXN_ERR_SHAPE, "contiguous");
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &k, &v, &podd, &qo, 0, NULL), MLXN_ERR_INVALID_ARGUMENT, "dims");
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &k, &v, &pwide, &qo, 0, NULL), MLXN_ERR_INVALID_ARGUMENT, "dims");
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &k, &v, &poff, &qo, 0, NULL), MLXN_ERR_SHAPE, "offset_tensor");
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &k, &v, &p, &q, 0, NULL), MLXN_ERR_INVALID_ARGUMENT, "q_out overlaps q");
    mlxn_tensor kq = q; /* k as the first kv heads of q's buffer, which q_out then is */
    kq.shape[0] = 2;
    CHECK_BAD(mlxn_tq_rope_append(s, c, &q, &kq, &v, &p, &q, 0, NULL), MLXN_ERR_INVALID_ARGUMENT, "overlaps");
    mlxn_tensor *all[] = {&q, &qo, &k, &v, &qbf, &q2, &qd, &qo_t, &neg, &big, &off2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) t_tensor_free(all[i]);
    mlxn_tq_cache_free(c);
}

int main(int argc, char **argv) {
    t_init(argc, argv, "test_tq_rope_append");
    mlxn_device *scalar = t_cpu_device(2, MLXN_CPU_ISA_SCALAR), *best = t_cpu_device(2, MLXN_CPU_ISA_AUTO);
    if (!scalar || !best) return t_finish();
    trc_run_cases(scalar);
    trc_run_cases(best);
    bad_args(best);
    mlxn_device_free(scalar);
    mlxn_device_free(best);
    return t_finish();
}
