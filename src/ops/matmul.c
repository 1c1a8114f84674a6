/* Public matrix products: dense and quantized. Validation, then dispatch. */
#include "ops/op_check.h"

#include <stdio.h>

/* x [..., K] and out [..., N] agree on the leading dims. */
static mlxn_status check_xo(const char *op, const mlxn_tensor *x, const mlxn_tensor *out, int64_t K, int64_t N) {
    char dx[96], dout[96];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != K)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: x is %s, its last axis must be K = %lld", op,
                         mlxn_tensor_describe(x, dx, sizeof dx), (long long)K);
    int ok = out->ndim == x->ndim && out->shape[out->ndim - 1] == N;
    for (int i = 0; ok && i < x->ndim - 1; i++) ok = out->shape[i] == x->shape[i];
    if (!ok)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: out is %s, expected x's leading dims then N = %lld (x is %s)", op,
                         mlxn_tensor_describe(out, dout, sizeof dout), (long long)N,
                         mlxn_tensor_describe(x, dx, sizeof dx));
    return MLXN_OK;
}

mlxn_status mlxn_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *w, bool transpose,
                        mlxn_tensor *out) {
    const char *op = "matmul";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_tensor(op, "w", s, w));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_dtype(op, "w", w, DT_FLOAT16_32));
    MLXN_TRY(op_check_rank(op, "w", w, 2, 0));
    int64_t K = transpose ? w->shape[1] : w->shape[0];
    int64_t N = transpose ? w->shape[0] : w->shape[1];
    MLXN_TRY(check_xo(op, x, out, K, N));
    MLXN_TRY(op_check_no_alias(op, "x", out, x));
    MLXN_TRY(op_check_no_alias(op, "w", out, w));
    return s->dev->be->matmul(s, x, w, transpose, out);
}

mlxn_status op_check_quantized(const char *op, mlxn_stream *s, const mlxn_tensor *wq, const mlxn_tensor *scales,
                               const mlxn_tensor *biases, const mlxn_quant_params *q, int64_t *rows,
                               int64_t *cols) {
    char d[96];
    if (!q) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: quant params are NULL", op);
    MLXN_TRY(op_check_tensor(op, "wq", s, wq));
    MLXN_TRY(op_check_tensor(op, "scales", s, scales));
    MLXN_TRY(op_check_dtype(op, "wq", wq, DT(MLXN_DTYPE_U32)));
    MLXN_TRY(op_check_rank(op, "wq", wq, 2, 0));
    MLXN_TRY(op_check_rank(op, "scales", scales, 2, 0));
    if (32 % q->bits != 0 && q->bits != 3 && q->bits != 5 && q->bits != 6)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %d bits is not an MLX width", op, q->bits);
    if (q->bits < 1 || q->bits > 8)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %d bits is not an MLX width", op, q->bits);
    int64_t c = wq->shape[1] * 32 / q->bits;
    MLXN_TRY(mlxn_quant_validate(q, c));
    *rows = wq->shape[0];
    *cols = c;
    if (q->layout != MLXN_QUANT_ROWS) {
        if (q->layout != MLXN_QUANT_TILED16)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: unknown quantized layout %d", op, (int)q->layout);
        if (!mlxn_quant_tileable(q, scales->dtype, *rows, c))
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT,
                             "%s: a tiled layout needs affine 4-bit weights with groups of 64 or 128, bf16/f16 scales, "
                             "rows a multiple of 16 and cols of 128 (got %s %d-bit group %d, %s scales, [%lld, %lld])",
                             op, mlxn_quant_mode_name(q->mode), q->bits, q->group_size, mlxn_dtype_name(scales->dtype),
                             (long long)*rows, (long long)c);
        if (!s->dev->be->quantized_tile)
            return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED,
                             "%s: the %s backend reads quantized weights in MLX's row layout only, not tiled ones",
                             op, s->dev->be->name);
    }
    int64_t ng = c / q->group_size;
    if (scales->shape[0] != *rows || scales->shape[1] != ng)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: scales is %s, expected [%lld, %lld] for wq %lld x %lld codes", op,
                         mlxn_tensor_describe(scales, d, sizeof d), (long long)*rows, (long long)ng,
                         (long long)*rows, (long long)c);
    if (q->mode == MLXN_QUANT_AFFINE) {
        MLXN_TRY(op_check_dtype(op, "scales", scales, DT_FLOAT16_32));
        if (!biases) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: affine mode needs biases", op);
        MLXN_TRY(op_check_tensor(op, "biases", s, biases));
        MLXN_TRY(op_check_same_shape(op, "biases", biases, "scales", scales));
        if (biases->dtype != scales->dtype)
            return mlxn_fail(MLXN_ERR_DTYPE, "%s: biases are %s but scales are %s", op, mlxn_dtype_name(biases->dtype),
                             mlxn_dtype_name(scales->dtype));
    } else {
        MLXN_TRY(op_check_dtype(op, "scales", scales, DT(MLXN_DTYPE_U8)));
        if (biases)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: mode %s takes no biases", op,
                             mlxn_quant_mode_name(q->mode));
    }
    return MLXN_OK;
}

mlxn_status mlxn_quantized_tile(mlxn_stream *s, mlxn_tensor *wq, mlxn_tensor *scales, mlxn_tensor *biases,
                                const mlxn_quant_params *q) {
    const char *op = "quantized_tile";
    MLXN_TRY(op_check_stream(op, s));
    int64_t rows, cols;
    MLXN_TRY(op_check_quantized(op, s, wq, scales, biases, q, &rows, &cols));
    if (q->layout != MLXN_QUANT_ROWS)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: the matrix is tiled already", op);
    if (!mlxn_quant_tileable(q, scales->dtype, rows, cols))
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED,
                         "%s: a [%lld, %lld] %s %d-bit group %d matrix with %s scales has no tiled layout (affine "
                         "4-bit, group 64 or 128, bf16/f16 scales, rows a multiple of 16, cols of 128)",
                         op, (long long)rows, (long long)cols, mlxn_quant_mode_name(q->mode), q->bits, q->group_size,
                         mlxn_dtype_name(scales->dtype));
    const mlxn_tensor *t[3] = {wq, scales, biases};
    static const char *tn[3] = {"wq", "scales", "biases"};
    for (int i = 0; i < 3; i++)
        if (!mlxn_tensor_is_contiguous(t[i]))
            return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s must be contiguous", op, tn[i]);
    if (!s->dev->be->quantized_tile)
        return mlxn_fail(MLXN_ERR_NOT_IMPLEMENTED, "%s: the %s backend reads quantized weights in MLX's row layout only",
                         op, s->dev->be->name);
    return s->dev->be->quantized_tile(s, wq, scales, biases, q);
}

mlxn_status mlxn_quantized_matmul(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                  const mlxn_tensor *scales, const mlxn_tensor *biases,
                                  const mlxn_quant_params *q, bool transpose, mlxn_tensor *out) {
    const char *op = "quantized_matmul";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    int64_t rows, cols;
    MLXN_TRY(op_check_quantized(op, s, wq, scales, biases, q, &rows, &cols));
    int64_t K = transpose ? cols : rows;
    int64_t N = transpose ? rows : cols;
    MLXN_TRY(check_xo(op, x, out, K, N));
    return s->dev->be->quantized_matmul(s, x, wq, scales, biases, q, transpose, out);
}

/* A contiguous f32 view at element `at` of scratch with the leading dims of
 * `like` and a last axis of n. */
static mlxn_tensor scratch_view(const mlxn_tensor *scratch, size_t at, const mlxn_tensor *like, int64_t n) {
    mlxn_tensor v = *scratch;
    v.ndim = like->ndim;
    for (int i = 0; i < like->ndim; i++) v.shape[i] = like->shape[i];
    v.shape[v.ndim - 1] = n;
    int64_t st = 1;
    for (int i = v.ndim - 1; i >= 0; i--) {
        v.strides[i] = st;
        st *= v.shape[i];
    }
    v.offset += at * sizeof(float);
    return v;
}

bool mlxn_quantized_matmul_fuses(mlxn_stream *s, const mlxn_tensor *wq, const mlxn_tensor *scales,
                                 const mlxn_tensor *biases, const mlxn_quant_params *q, int64_t M) {
    if (!s || !s->dev || !wq || !scales || !q || !s->dev->be->quantized_matmul_fuses) return false;
    return s->dev->be->quantized_matmul_fuses(s, wq, scales, biases, q, M);
}

/* A scratch tensor of the fused op: contiguous f32 with at least `need`
 * elements, overlapping none of the op's other tensors. */
static mlxn_status check_scratch(const char *op, const char *name, mlxn_stream *s, const mlxn_tensor *t, size_t need,
                                 const mlxn_tensor *const *others, const char *const *names, int n) {
    char d[96];
    if (!t) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: %s is NULL (%zu f32 needed)", op, name, need);
    MLXN_TRY(op_check_tensor(op, name, s, t));
    MLXN_TRY(op_check_dtype(op, name, t, DT_F32));
    if (!mlxn_tensor_is_contiguous(t) || (size_t)mlxn_tensor_numel(t) < need)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: %s is %s, expected contiguous with at least %zu elements", op, name,
                         mlxn_tensor_describe(t, d, sizeof d), need);
    for (int i = 0; i < n; i++)
        if (others[i]) MLXN_TRY(op_check_disjoint(op, name, t, names[i], others[i]));
    return MLXN_OK;
}

/* Columns [c0, c0 + h * D) of out [M, N] (contiguous) as the [h, M, D]
 * view mlxn_rope_kv_write takes: one projection's heads. */
static mlxn_tensor head_cols(const mlxn_tensor *out, int64_t M, int64_t N, int64_t c0, int64_t h, int64_t D) {
    mlxn_tensor v = *out;
    v.ndim = 3;
    v.shape[0] = h, v.shape[1] = M, v.shape[2] = D;
    v.strides[0] = D, v.strides[1] = N, v.strides[2] = 1;
    v.offset += (size_t)c0 * sizeof(float);
    return v;
}

/* The rope_kv epilogue's q, k, v views of out [M, N], checked as
 * mlxn_rope_kv_write checks them, and x and the norm weight apart from its
 * outputs (one kernel may read those while it writes these). */
static mlxn_status check_rope_kv(const char *op, mlxn_stream *s, const mlxn_qmm_fusion *f, const mlxn_tensor *x,
                                 const mlxn_tensor *out, int64_t M, int64_t N, mlxn_tensor qkv[3]) {
    const mlxn_qmm_rope_kv *r = f->rope_kv;
    int64_t heads = r->q_heads + 2 * r->kv_heads;
    if (r->q_heads < 1 || r->kv_heads < 1 || N % heads)
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: rope_kv: %lld q heads and 2 x %lld kv heads do not split the %lld rows of "
                         "the weight", op, (long long)r->q_heads, (long long)r->kv_heads, (long long)N);
    int64_t D = N / heads;
    qkv[0] = head_cols(out, M, N, 0, r->q_heads, D);
    qkv[1] = head_cols(out, M, N, r->q_heads * D, r->kv_heads, D);
    qkv[2] = head_cols(out, M, N, (r->q_heads + r->kv_heads) * D, r->kv_heads, D);
    MLXN_TRY(op_check_rope_kv(op, s, &qkv[0], &qkv[1], &qkv[2], r->rope, r->slot, r->q_out, r->k_dst, r->v_dst));
    const mlxn_tensor *dst[3] = {r->q_out, r->k_dst, r->v_dst};
    static const char *dst_n[3] = {"q_out", "k_dst", "v_dst"};
    for (int i = 0; i < 3; i++) {
        MLXN_TRY(op_check_disjoint(op, dst_n[i], dst[i], "x", x));
        if (f->norm_w) MLXN_TRY(op_check_disjoint(op, dst_n[i], dst[i], "norm_w", f->norm_w));
    }
    return MLXN_OK;
}

mlxn_status mlxn_quantized_matmul_fused(mlxn_stream *s, const mlxn_tensor *x, const mlxn_tensor *wq,
                                        const mlxn_tensor *scales, const mlxn_tensor *biases,
                                        const mlxn_quant_params *q, const mlxn_qmm_fusion *f, mlxn_tensor *out) {
    const char *op = "quantized_matmul_fused";
    MLXN_TRY(op_check_stream(op, s));
    if (!f) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: the fusion is NULL", op);
    if (f->glu < MLXN_GLU_NONE || f->glu > MLXN_GLU_GEGLU_ERF)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: unknown glu %d", op, (int)f->glu);
    if (f->rope_kv && (f->glu || f->residual))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: rope_kv goes with neither a gated activation nor a residual", op);
    MLXN_TRY(op_check_tensor(op, "x", s, x));
    MLXN_TRY(op_check_dtype(op, "x", x, DT_F32));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    int64_t N, K;
    MLXN_TRY(op_check_quantized(op, s, wq, scales, biases, q, &N, &K));
    if (f->glu && (N % 2 || f->residual))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "%s: a gated activation wants an even number of rows (%lld) and no "
                         "residual", op, (long long)N);
    MLXN_TRY(check_xo(op, x, out, K, f->glu ? N / 2 : N));
    MLXN_TRY(op_check_no_alias(op, "x", out, x));
    int64_t M = 1; /* x's rows: its leading dims */
    for (int i = 0; i < x->ndim - 1; i++) M *= x->shape[i];
    if (f->norm_w) {
        MLXN_TRY(op_check_tensor(op, "norm_w", s, f->norm_w));
        MLXN_TRY(op_check_dtype(op, "norm_w", f->norm_w, DT_FLOAT16_32));
        MLXN_TRY(op_check_vector(op, "norm_w", f->norm_w, K));
        MLXN_TRY(op_check_no_alias(op, "norm_w", out, f->norm_w));
    }
    if (f->residual) {
        MLXN_TRY(op_check_tensor(op, "residual", s, f->residual));
        MLXN_TRY(op_check_dtype(op, "residual", f->residual, DT_F32));
        MLXN_TRY(op_check_same_shape(op, "residual", f->residual, "out", out));
        /* the residual stream updated in place (element by element), or apart */
        if (!op_same_view(out, f->residual)) MLXN_TRY(op_check_disjoint(op, "out", out, "residual", f->residual));
    }
    mlxn_tensor qkv[3]; /* rope_kv: q, k, v as [heads, M, D] views of out */
    if (f->rope_kv) MLXN_TRY(check_rope_kv(op, s, f, x, out, M, N, qkv));
    const mlxn_tensor *others[5] = {x, out, f->residual, f->norm_w, NULL};
    const char *names[5] = {"x", "out", "residual", "norm_w", "x_scratch"};
    if (f->norm_w) MLXN_TRY(check_scratch(op, "x_scratch", s, f->x_scratch, (size_t)(M * K), others, names, 4));
    others[4] = f->norm_w ? f->x_scratch : NULL;
    if (f->residual || f->glu) MLXN_TRY(check_scratch(op, "y_scratch", s, f->y_scratch, (size_t)(M * N), others, names, 5));
    const mlxn_backend_i *be = s->dev->be;
    if (be->quantized_matmul_fused && be->quantized_matmul_fuses && M > 0 &&
        be->quantized_matmul_fuses(s, wq, scales, biases, q, M)) {
        int done = 0;
        MLXN_TRY(be->quantized_matmul_fused(s, x, wq, scales, biases, q, f, out, &done));
        if (done) return MLXN_OK;
    }
    /* the parts apart, through the scratch: [M, K] normed x, [M, N] products */
    mlxn_tensor xn = *x;
    if (f->norm_w) {
        xn = scratch_view(f->x_scratch, 0, x, K);
        MLXN_TRY(mlxn_rms_norm(s, x, f->norm_w, f->norm_eps, f->norm_offset, &xn));
    }
    if (f->rope_kv) {
        const mlxn_qmm_rope_kv *r = f->rope_kv;
        MLXN_TRY(mlxn_quantized_matmul(s, &xn, wq, scales, biases, q, true, out));
        return mlxn_rope_kv_write(s, &qkv[0], &qkv[1], &qkv[2], r->rope, r->slot, r->q_out, r->k_dst, r->v_dst);
    }
    if (!f->residual && !f->glu) return mlxn_quantized_matmul(s, &xn, wq, scales, biases, q, true, out);
    mlxn_tensor y = scratch_view(f->y_scratch, 0, out, N);
    MLXN_TRY(mlxn_quantized_matmul(s, &xn, wq, scales, biases, q, true, &y));
    if (f->residual) return mlxn_add(s, f->residual, &y, out);
    /* gate and up: the two column halves of y, rows N apart */
    mlxn_tensor g = y, u = y;
    g.shape[g.ndim - 1] = u.shape[u.ndim - 1] = N / 2;
    u.offset += (size_t)(N / 2) * sizeof(float);
    if (f->glu == MLXN_GLU_SWIGLU) return mlxn_swiglu(s, &g, &u, out);
    return mlxn_geglu(s, &g, &u, f->glu == MLXN_GLU_GEGLU_TANH ? MLXN_GELU_TANH : MLXN_GELU_ERF, out);
}
