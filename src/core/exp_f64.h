/* exp over arrays of doubles, for the samplers' sums.
 *
 * Why: a sampler with a temperature takes two to three exps of the whole
 * vocabulary per token (the log-sum-exp, top-p's total mass, the draw's
 * weights), in double as mlx-lm's order of operations is mirrored there.
 * libm's exp, one call at a time, made that ~1.5-3 ms a token at 49152
 * logits on a 2-core AMD EPYC: a third of SmolLM2-135M's decode step.
 *
 * The method: exp(x) = 2^k * p(r), k = x / ln 2 rounded to nearest (ties
 * to even), r = x - k ln 2 with ln 2 in two parts (each product taken by
 * one FMA), |r| <= ln(2) / 2, and p the Taylor polynomial of degree 13
 * (its remainder is below 4e-18 relative), evaluated by Horner's rule with
 * FMAs. 2^k is applied as two exact power-of-two factors, so every k the
 * range needs stays a normal double. Within 1 ulp of the exact value over
 * the normal range (tests/test_exp_f64.c checks it against libm).
 *
 * Edges: x < ln(DBL_MIN) = -708.396... gives 0 (libm gives subnormals
 * there, below 2.3e-308: nothing a sum of weights of ~1 can see), x > ln(DBL_MAX)
 * gives +inf, -inf gives 0, NaN stays NaN.
 *
 * The same operations run on 4 AVX2 lanes where the processor has AVX2
 * and FMA, else one at a time with fma(): every processor gets the same
 * bits, so a seeded draw is the same everywhere. */
#ifndef MLXN_CORE_EXP_F64_H
#define MLXN_CORE_EXP_F64_H

#include <stddef.h>

/* x[i] = exp(x[i]) for i < n. */
void mlxn_exp_f64(double *x, size_t n);

/* The same, one element at a time, whatever the processor (for the tests' comparison of the two paths). */
void mlxn_exp_f64_scalar(double *x, size_t n);

#endif
