/* Public gathers: dense and quantized embedding lookups. */
#include "ops/op_check.h"

static mlxn_status check_ids_out(const char *op, mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *out,
                                 int64_t D) {
    MLXN_TRY(op_check_tensor(op, "ids", s, ids));
    MLXN_TRY(op_check_dtype(op, "ids", ids, DT_INDEX));
    MLXN_TRY(op_check_rank(op, "ids", ids, 1, 0));
    MLXN_TRY(op_check_output(op, s, out, DT_F32));
    if (out->ndim != 2 || out->shape[0] != ids->shape[0] || out->shape[1] != D) {
        char d[96];
        return mlxn_fail(MLXN_ERR_SHAPE, "%s: out is %s, expected [%lld, %lld]", op,
                         mlxn_tensor_describe(out, d, sizeof d), (long long)ids->shape[0], (long long)D);
    }
    return MLXN_OK;
}

mlxn_status mlxn_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *table, mlxn_tensor *out) {
    const char *op = "embedding";
    MLXN_TRY(op_check_stream(op, s));
    MLXN_TRY(op_check_tensor(op, "table", s, table));
    MLXN_TRY(op_check_dtype(op, "table", table, DT_FLOAT16_32));
    MLXN_TRY(op_check_rank(op, "table", table, 2, 0));
    MLXN_TRY(check_ids_out(op, s, ids, out, table->shape[1]));
    return s->dev->be->embedding(s, ids, table, out);
}

mlxn_status mlxn_quantized_embedding(mlxn_stream *s, const mlxn_tensor *ids, const mlxn_tensor *wq,
                                     const mlxn_tensor *scales, const mlxn_tensor *biases,
                                     const mlxn_quant_params *q, mlxn_tensor *out) {
    const char *op = "quantized_embedding";
    MLXN_TRY(op_check_stream(op, s));
    int64_t rows, cols;
    MLXN_TRY(op_check_quantized(op, s, wq, scales, biases, q, &rows, &cols));
    MLXN_TRY(check_ids_out(op, s, ids, out, cols));
    return s->dev->be->quantized_embedding(s, ids, wq, scales, biases, q, out);
}
