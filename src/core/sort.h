/* Sorting float keys in linear time, for the samplers.
 *
 * Why not qsort: a sampler's top-p and top-k filters order the whole
 * vocabulary every token (49152 to 262144 entries). qsort's comparator
 * calls made that ~6 ms a token for SmolLM2-135M's vocabulary on a 2-core
 * AMD EPYC: more than the model's forward pass. These are LSD radix sorts
 * over the floats' bits mapped to order-preserving unsigned keys (three
 * passes of 11 bits): the same order a comparison sort gives. There, for
 * 49152 / 128256 / 262144 floats: 0.37 / 1.1 / 2.4 ms against qsort's
 * 5.6 / 16 / 35 ms.
 *
 * Order: -inf below every finite value. -0 and +0 compare equal: the
 * ascending sort puts -0 first (any order is a comparison sort's), the
 * stable one keeps them in input order. NaN sorts by its bits (above +inf
 * when positive, below -inf when negative), where a comparison sort has no
 * defined order. */
#ifndef MLXN_CORE_SORT_H
#define MLXN_CORE_SORT_H

#include <stdint.h>

/* A value and the index it came from. */
typedef struct mlxn_f32_id {
    float v;
    int32_t id;
} mlxn_f32_id;

/* x[0..n) ascending. scratch: [n] floats. */
void mlxn_sort_f32_ascending(float *x, float *scratch, int32_t n);

/* The k-th largest (1 <= k <= n) of x[0..n) in mlxn_sort_f32_ascending's order: the value that sort
   would leave at position n - k, bit for bit (-0 below +0, NaN by its bits). x is not changed. A radix
   select over the same keys: a histogram of the top 11 bits, then of the next 11 and the last 10 over
   only the values whose higher digits match, about two reads of x where the sort moves every value
   three times (a top-k filter needs only its k-th value). scratch: [n] floats. */
float mlxn_select_f32_kth_largest(const float *x, float *scratch, int32_t n, int32_t k);

/* a[0..n) by v descending; equal v keep their input order (so pairs given in id order end up with
   ties by lower id first). scratch: [n] entries. */
void mlxn_sort_f32_id_descending(mlxn_f32_id *a, mlxn_f32_id *scratch, int32_t n);

#endif
