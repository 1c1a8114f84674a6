/* CPU mlxn_sample (semantics in mlxn/ops.h). Unlike the host sampler,
 * which applies each filter by masking the whole vocabulary, this sorts
 * the log-probabilities once (descending, ties by lower id: the order the
 * filters' "keep the k best, lower ids first on ties" implies) and turns
 * every filter into a prefix length of that order:
 *   top_p   the first tie group whose preceding mass (sum of exp over the
 *           positions before it, in double) reaches top_p * total ends the
 *           prefix (total summed from the smallest up, as the host does);
 *   min_p   the positions with logprob >= max + log(min_p), or the first
 *           min_tokens_to_keep when more;
 *   top_k   the first k.
 * Each filter sees the previous ones' output, and the tokens they removed
 * are at the end of the order, so the kept set is the prefix of the
 * shortest length. The draw then walks ids in order, as the host does.
 * The sort is core/sort.h's radix sort (qsort took milliseconds a token);
 * each pass's exps are computed together by core/exp_f64.h and then read
 * in the pass's order. Scratch is allocated per call (V bytes + 24 x V
 * bytes). */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/sample_draw.h"
#include "core/exp_f64.h"
#include "core/internal.h"
#include "core/sort.h"

/* logits f32 [V] (stride st); writes the token to *tok. */
static mlxn_status sample_row(const float *x, int64_t st, int32_t V, const mlxn_sample_params *p, int32_t *tok) {
    float mx = -INFINITY;
    int32_t best = -1;
    for (int32_t i = 0; i < V; i++) {
        float v = x[i * st];
        if (v > mx || (best < 0 && v == mx)) mx = v, best = i;
    }
    if (best < 0 || !(mx > -INFINITY)) {
        *tok = -1;
        return MLXN_OK;
    }
    if (p->temperature == 0.0f) {
        *tok = best;
        return MLXN_OK;
    }
    mlxn_f32_id *o = malloc((size_t)V * 2 * sizeof *o); /* [2, V]: the order, the sort's scratch */
    double *ex = malloc((size_t)V * sizeof *ex);        /* [V]: one pass's exps */
    uint8_t *keep = calloc((size_t)V, 1);
    if (!o || !ex || !keep) {
        free(o), free(ex), free(keep);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "sample: out of memory for %d tokens", V);
    }
    double sum = 0.0;
    for (int32_t i = 0; i < V; i++) {
        float v = x[i * st];
        ex[i] = v == v ? (double)v - (double)mx : -INFINITY; /* NaN: no term (exp(-inf) = 0) */
    }
    mlxn_exp_f64(ex, (size_t)V);
    for (int32_t i = 0; i < V; i++) sum += ex[i];
    float lse = mx + (float)log(sum);
    for (int32_t i = 0; i < V; i++) {
        float v = x[i * st];
        o[i] = (mlxn_f32_id){v == v ? v - lse : -INFINITY, i};
    }
    mlxn_sort_f32_id_descending(o, o + V, V); /* ties: lower id first, as the pairs start in id order */
    int32_t L = V;
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        double total = 0.0, above = 0.0, cut = 0.0;
        for (int32_t j = 0; j < V; j++) ex[j] = (double)o[j].v;
        mlxn_exp_f64(ex, (size_t)V);
        for (int32_t j = V - 1; j >= 0; j--) total += ex[j];
        cut = (double)p->top_p * total;
        for (int32_t j = 0; j < V; j++) {
            if ((j == 0 || o[j].v != o[j - 1].v) && above >= cut) {
                L = j;
                break;
            }
            above += ex[j];
        }
    }
    if (p->min_p != 0.0f) {
        float cut = o[0].v + logf(p->min_p);
        int32_t c = 0;
        while (c < V && o[c].v >= cut) c++;
        int32_t keep_n = p->min_tokens_to_keep > 1 ? p->min_tokens_to_keep : 1;
        if (c < keep_n) c = keep_n > V ? V : keep_n;
        if (c < L) L = c;
    }
    if (p->top_k > 0 && p->top_k < L) L = p->top_k;
    for (int32_t j = 0; j < L; j++) keep[o[j].id] = 1;
    /* categorical(logprobs / T): inverse CDF over ids in order */
    float top = o[0].v;
    double inv_t = 1.0 / (double)p->temperature, total = 0.0;
    for (int32_t i = 0; i < V; i++) /* a kept token may be -inf (top_k past the finite ones): weight 0 */
        ex[i] = keep[i] && x[i * st] - lse > -INFINITY ? ((double)(x[i * st] - lse) - top) * inv_t : -INFINITY;
    mlxn_exp_f64(ex, (size_t)V);
    for (int32_t i = 0; i < V; i++) total += ex[i];
    double u = mlxn_sample_uniform(p->seed, p->counter) * total, acc = 0.0;
    int32_t pick = -1;
    for (int32_t i = 0; i < V && pick < 0; i++) {
        if (!keep[i] || !(x[i * st] - lse > -INFINITY)) continue;
        acc += ex[i];
        best = i; /* the last kept id: the pick when rounding leaves u at the top */
        if (u < acc) pick = i;
    }
    *tok = pick >= 0 ? pick : best;
    free(o), free(ex), free(keep);
    return MLXN_OK;
}

mlxn_status cpu_sample(mlxn_stream *s, const mlxn_tensor *logits, const mlxn_sample_params *p, mlxn_tensor *token) {
    (void)s;
    int32_t V = (int32_t)logits->shape[logits->ndim - 1];
    return sample_row(mlxn_tensor_host(logits), logits->strides[logits->ndim - 1], V, p,
                      (int32_t *)mlxn_tensor_host(token));
}
