/* Token sampler with the semantics and order of mlx-lm's
 * mlx_lm/sample_utils.py (make_logits_processors, make_sampler):
 *   logits processors, in order: logit_bias (added; repeated ids add
 *   again), repetition penalty (each distinct token of the last
 *   repetition_context_size: x < 0 ? x * p : x / p), presence penalty
 *   (each distinct token: -p), frequency penalty (each occurrence: -p);
 *   then log-softmax; then, when temperature > 0, the filters top_p (keep
 *   the smallest set of most likely tokens whose mass reaches top_p: a
 *   token is dropped when the mass strictly above it is >= top_p * total),
 *   min_p (drop logprob < max + log(min_p), keeping the
 *   min_tokens_to_keep best), top_k (keep the k best); finally a draw from
 *   softmax(logprobs / temperature). Temperature 0 is argmax.
 * Filters see the untempered distribution, as in mlx-lm. The random
 * generator (splitmix64) belongs to the sampler: no global state. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/exp_f64.h"
#include "core/internal.h"
#include "core/sort.h"
#include "mlxn/text.h"

struct mlxn_sampler {
    mlxn_sampler_params p;
    int32_t vocab;
    int32_t *bias_ids;
    float *bias_vals;
    uint64_t rng;
    float *scratch;      /* [vocab] */
    float *scratch2;     /* [vocab]: the sort's */
    double *ex;          /* [vocab]: one pass's exps, computed together (core/exp_f64.h) and read in order */
    uint8_t *seen;       /* [vocab] */
};

static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int ctx_size(int c) { return c > 0 ? c : 20; }

mlxn_status mlxn_sampler_new(const mlxn_sampler_params *p, int32_t vocab_size, mlxn_sampler **out) {
    if (!p || !out) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler_new: NULL argument");
    *out = NULL;
    if (vocab_size <= 0) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler_new: vocab_size %d must be positive", vocab_size);
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: temperature %g must be a finite number >= 0", (double)p->temperature);
    if (!(p->top_p >= 0.0f && p->top_p <= 1.0f))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: top_p %g must be in [0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: min_p %g must be in [0, 1]", (double)p->min_p);
    if (p->top_k < 0) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: top_k %d must be >= 0", p->top_k);
    if (p->min_tokens_to_keep < 0)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: min_tokens_to_keep %d must be >= 0", p->min_tokens_to_keep);
    if (!(p->repetition_penalty >= 0.0f) || !isfinite(p->repetition_penalty))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: repetition_penalty %g must be a finite number >= 0",
                         (double)p->repetition_penalty);
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: presence/frequency penalties must be finite");
    if (p->repetition_context_size < 0 || p->presence_context_size < 0 || p->frequency_context_size < 0)
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: context sizes must be >= 0");
    if (p->n_logit_bias && (!p->logit_bias_ids || !p->logit_bias_values))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: logit_bias ids/values are NULL");
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        if (p->logit_bias_ids[i] < 0 || p->logit_bias_ids[i] >= vocab_size)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: logit_bias id %d is outside the vocabulary [0, %d)",
                             p->logit_bias_ids[i], vocab_size);
        if (!isfinite(p->logit_bias_values[i]) && !(isinf(p->logit_bias_values[i]) && p->logit_bias_values[i] < 0))
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: logit_bias value for id %d is not finite or -inf",
                             p->logit_bias_ids[i]);
    }
    mlxn_sampler *s = calloc(1, sizeof *s);
    if (!s) return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "sampler_new: out of memory");
    s->p = *p;
    s->vocab = vocab_size;
    s->rng = p->seed;
    s->scratch = malloc((size_t)vocab_size * sizeof *s->scratch);
    s->scratch2 = malloc((size_t)vocab_size * sizeof *s->scratch2);
    s->ex = malloc((size_t)vocab_size * sizeof *s->ex);
    s->seen = calloc((size_t)vocab_size, 1);
    if (p->n_logit_bias) {
        s->bias_ids = malloc(p->n_logit_bias * sizeof *s->bias_ids);
        s->bias_vals = malloc(p->n_logit_bias * sizeof *s->bias_vals);
    }
    if (!s->scratch || !s->scratch2 || !s->ex || !s->seen || (p->n_logit_bias && (!s->bias_ids || !s->bias_vals))) {
        mlxn_sampler_free(s);
        return mlxn_fail(MLXN_ERR_OUT_OF_MEMORY, "sampler_new: out of memory");
    }
    if (p->n_logit_bias) {
        memcpy(s->bias_ids, p->logit_bias_ids, p->n_logit_bias * sizeof *s->bias_ids);
        memcpy(s->bias_vals, p->logit_bias_values, p->n_logit_bias * sizeof *s->bias_vals);
    }
    s->p.logit_bias_ids = s->bias_ids;
    s->p.logit_bias_values = s->bias_vals;
    *out = s;
    return MLXN_OK;
}

void mlxn_sampler_free(mlxn_sampler *s) {
    if (!s) return;
    free(s->bias_ids);
    free(s->bias_vals);
    free(s->scratch);
    free(s->scratch2);
    free(s->ex);
    free(s->seen);
    free(s);
}

static mlxn_status check_hist(const mlxn_sampler *s, const int32_t *h, size_t n) {
    if (n && !h) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: history is NULL");
    for (size_t i = 0; i < n; i++)
        if (h[i] < 0 || h[i] >= s->vocab)
            return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: history token %d (at %zu) is outside the vocabulary [0, %d)",
                             h[i], i, s->vocab);
    return MLXN_OK;
}

mlxn_status mlxn_sampler_apply_penalties(const mlxn_sampler *s, float *logits, const int32_t *h, size_t n) {
    if (!s || !logits) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler_apply_penalties: NULL argument");
    MLXN_TRY(check_hist(s, h, n));
    const mlxn_sampler_params *p = &s->p;
    uint8_t *seen = s->seen;
    for (size_t i = 0; i < p->n_logit_bias; i++) logits[p->logit_bias_ids[i]] += p->logit_bias_values[i];
    if (p->repetition_penalty != 0.0f && n) {
        size_t c = (size_t)ctx_size(p->repetition_context_size), from = n > c ? n - c : 0;
        for (size_t i = from; i < n; i++) {
            int32_t t = h[i];
            if (seen[t]) continue;
            seen[t] = 1;
            logits[t] = logits[t] < 0 ? logits[t] * p->repetition_penalty : logits[t] / p->repetition_penalty;
        }
        for (size_t i = from; i < n; i++) seen[h[i]] = 0;
    }
    if (p->presence_penalty != 0.0f && n) {
        size_t c = (size_t)ctx_size(p->presence_context_size), from = n > c ? n - c : 0;
        for (size_t i = from; i < n; i++) {
            if (seen[h[i]]) continue;
            seen[h[i]] = 1;
            logits[h[i]] -= p->presence_penalty;
        }
        for (size_t i = from; i < n; i++) seen[h[i]] = 0;
    }
    if (p->frequency_penalty != 0.0f && n) {
        size_t c = (size_t)ctx_size(p->frequency_context_size), from = n > c ? n - c : 0;
        for (size_t i = from; i < n; i++) logits[h[i]] -= p->frequency_penalty;
    }
    return MLXN_OK;
}

/* Keep exactly the k largest entries; ties at the cut keep the lowest ids. tmp: [n]. */
static void keep_top(float *x, int32_t n, int32_t k, float *tmp, uint8_t *keep) {
    const float kth = mlxn_select_f32_kth_largest(x, tmp, n, k);
    int32_t above = 0;
    for (int32_t i = 0; i < n; i++) above += x[i] > kth;
    int32_t ties = k - above;
    for (int32_t i = 0; i < n; i++) {
        keep[i] = x[i] > kth || (x[i] == kth && ties-- > 0);
    }
}

mlxn_status mlxn_sampler_apply_filters(const mlxn_sampler *s, float *lp) {
    if (!s || !lp) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler_apply_filters: NULL argument");
    const mlxn_sampler_params *p = &s->p;
    int32_t n = s->vocab;
    float *tmp = s->scratch;
    if (p->temperature == 0.0f) return MLXN_OK;
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        /* apply_top_p: ascending sort, exclusive reverse cumulative sum. */
        memcpy(tmp, lp, (size_t)n * sizeof *tmp);
        mlxn_sort_f32_ascending(tmp, s->scratch2, n);
        double *ex = s->ex, total = 0.0;
        for (int32_t i = 0; i < n; i++) ex[i] = (double)tmp[i];
        mlxn_exp_f64(ex, (size_t)n);
        for (int32_t i = 0; i < n; i++) total += ex[i];
        /* dropped: the positions whose mass strictly above reaches top_p * total. That mass only
           grows going down, so they are position i and every one below it, i the first from the
           top where it does: the walk stops there */
        double above = 0.0;
        int32_t dropped = 0;
        for (int32_t i = n - 1; i >= 0; i--) {
            if (above >= (double)p->top_p * total) {
                dropped = i + 1;
                break;
            }
            above += ex[i];
        }
        float threshold = tmp[dropped < n ? dropped : n - 1];
        for (int32_t i = 0; i < n; i++)
            if (lp[i] < threshold) lp[i] = -INFINITY;
    }
    if (p->min_p != 0.0f) {
        float top = -INFINITY;
        for (int32_t i = 0; i < n; i++)
            if (lp[i] > top) top = lp[i];
        float cut = top + logf(p->min_p);
        int keep_n = p->min_tokens_to_keep > 1 ? p->min_tokens_to_keep : 1;
        if (keep_n > n) keep_n = n;
        if (keep_n > 1) {
            keep_top(lp, n, keep_n, tmp, s->seen);
            for (int32_t i = 0; i < n; i++) {
                if (lp[i] < cut && !s->seen[i]) lp[i] = -INFINITY;
                s->seen[i] = 0;
            }
        } else {
            for (int32_t i = 0; i < n; i++)
                if (lp[i] < cut) lp[i] = -INFINITY;
        }
    }
    if (p->top_k > 0 && p->top_k < n) {
        keep_top(lp, n, p->top_k, tmp, s->seen);
        for (int32_t i = 0; i < n; i++) {
            if (!s->seen[i]) lp[i] = -INFINITY;
            s->seen[i] = 0;
        }
    }
    return MLXN_OK;
}

mlxn_status mlxn_sampler_sample(mlxn_sampler *s, float *logits, const int32_t *h, size_t n_hist, int32_t *token) {
    if (!s || !logits || !token) return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler_sample: NULL argument");
    MLXN_TRY(mlxn_sampler_apply_penalties(s, logits, h, n_hist));
    int32_t n = s->vocab, best = -1;
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++) {
        if (logits[i] > mx || (best < 0 && logits[i] == mx)) {
            mx = logits[i];
            best = i;
        }
    }
    if (best < 0 || !(mx > -INFINITY))
        return mlxn_fail(MLXN_ERR_INVALID_ARGUMENT, "sampler: every logit is -inf or NaN");
    if (s->p.temperature == 0.0f) {
        *token = best;
        return MLXN_OK;
    }
    /* log-softmax */
    double *ex = s->ex, sum = 0.0;
    for (int32_t i = 0; i < n; i++) ex[i] = (double)logits[i] - (double)mx;
    mlxn_exp_f64(ex, (size_t)n);
    for (int32_t i = 0; i < n; i++) sum += ex[i];
    float lse = mx + (float)log(sum);
    for (int32_t i = 0; i < n; i++) logits[i] -= lse;
    MLXN_TRY(mlxn_sampler_apply_filters(s, logits));
    /* categorical(logprobs / T) by inverse CDF. top, the largest log-prob left, is the argmax's own
       (mx - lse rounds as logits[best] did, and rounding keeps the order): no filter drops every token
       of the largest value (top_p keeps the first, min_p its cut is at most top, top_k at least one).
       Where lse is NaN no log-prob is kept (> -inf) and top is not read. */
    const float top = mx - lse;
    double inv_t = 1.0 / (double)s->p.temperature, total = 0.0;
    for (int32_t i = 0; i < n; i++) ex[i] = logits[i] > -INFINITY ? ((double)logits[i] - top) * inv_t : -INFINITY;
    mlxn_exp_f64(ex, (size_t)n); /* the weights; -inf (and NaN) -> 0 */
    for (int32_t i = 0; i < n; i++) total += ex[i];
    double u = (double)(next_u64(&s->rng) >> 11) * 0x1.0p-53 * total, acc = 0.0;
    int32_t pick = best, last = best;
    for (int32_t i = 0; i < n; i++) {
        if (!(logits[i] > -INFINITY)) continue;
        acc += ex[i];
        last = i;
        if (u < acc) {
            pick = i;
            break;
        }
        pick = last;
    }
    *token = pick;
    return MLXN_OK;
}
