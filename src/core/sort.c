/* Linear-time sorts of float keys; see sort.h for why and the order. */
#include "core/sort.h"

#include <string.h>

#define DIGIT_BITS 11
#define BUCKETS (1 << DIGIT_BITS)
#define PASSES 3 /* 3 x 11 bits cover the 32: an odd count, so the result lands in the scratch */

/* The float's bits as an unsigned key whose order is the float's order:
   negatives inverted (larger magnitude, smaller key), positives above them.
   -0 gets a key just below +0's, an order comparisons allow for equals. */
static uint32_t ascending_key(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

/* The same with -0 as +0, for the stable sort, where equal values must keep their input order. */
static uint32_t ascending_key_signless_zero(float f) { return f == 0.0f ? 0x80000000u : ascending_key(f); }

static unsigned digit(uint32_t key, int pass) { return (key >> (pass * DIGIT_BITS)) & (BUCKETS - 1); }

/* Each pass's digit counts, in place, turned into its buckets' first positions. 32-bit counters:
   the three passes' 24 KB stay in a 32 KB L1 (64-bit ones made the sort ~25% slower). */
static void counts_to_starts(uint32_t starts[PASSES][BUCKETS]) {
    for (int p = 0; p < PASSES; p++) {
        uint32_t sum = 0;
        for (int b = 0; b < BUCKETS; b++) {
            const uint32_t c = starts[p][b];
            starts[p][b] = sum;
            sum += c;
        }
    }
}

/* A key kept in a float's storage between passes, moved by memcpy (no type punning). */
static uint32_t get_key(const float *a, int32_t i) {
    uint32_t k;
    memcpy(&k, &a[i], sizeof k);
    return k;
}

static void put_key(float *a, uint32_t i, uint32_t k) { memcpy(&a[i], &k, sizeof k); }

void mlxn_sort_f32_ascending(float *x, float *scratch, int32_t n) {
    if (n < 2) return;
    uint32_t starts[PASSES][BUCKETS];
    memset(starts, 0, sizeof starts);
    for (int32_t i = 0; i < n; i++) { /* each value's key, in its own place */
        const uint32_t k = ascending_key(x[i]);
        put_key(x, i, k);
        for (int p = 0; p < PASSES; p++) starts[p][digit(k, p)]++;
    }
    counts_to_starts(starts);
    float *src = x, *dst = scratch;
    for (int p = 0; p < PASSES; p++) {
        for (int32_t i = 0; i < n; i++) {
            const uint32_t k = get_key(src, i);
            put_key(dst, starts[p][digit(k, p)]++, k);
        }
        float *t = src;
        src = dst;
        dst = t;
    }
    for (int32_t i = 0; i < n; i++) { /* the keys, now in scratch, back to floats in x */
        const uint32_t k = get_key(src, i), u = (k & 0x80000000u) ? k & 0x7FFFFFFFu : ~k;
        put_key(x, i, u);
    }
}

/* The digit (from the top) in which the rank-th largest lies, walking a histogram h [nb] down from its
   highest bucket; *rank becomes the rank inside that bucket. */
static unsigned bucket_of_rank(const uint32_t *h, unsigned nb, uint32_t *rank) {
    unsigned b = nb - 1;
    while (h[b] < *rank) *rank -= h[b--]; /* a rank <= the total always ends in a bucket */
    return b;
}

float mlxn_select_f32_kth_largest(const float *x, float *scratch, int32_t n, int32_t k) {
    uint32_t h[BUCKETS], rank = (uint32_t)k;
    /* digit 1: bits 21..31 of every key */
    memset(h, 0, sizeof h);
    for (int32_t i = 0; i < n; i++) h[ascending_key(x[i]) >> 21]++;
    const uint32_t d1 = bucket_of_rank(h, BUCKETS, &rank);
    /* digit 2: bits 10..20 of the keys in d1's bucket, which are kept (as keys) in scratch */
    memset(h, 0, sizeof h);
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        const uint32_t key = ascending_key(x[i]);
        if (key >> 21 != d1) continue;
        put_key(scratch, (uint32_t)m++, key);
        h[(key >> 10) & (BUCKETS - 1)]++;
    }
    const uint32_t d2 = bucket_of_rank(h, BUCKETS, &rank);
    /* digit 3: bits 0..9 */
    memset(h, 0, 1024 * sizeof h[0]);
    for (int32_t i = 0; i < m; i++) {
        const uint32_t key = get_key(scratch, i);
        if (((key >> 10) & (BUCKETS - 1)) == d2) h[key & 1023]++;
    }
    const uint32_t d3 = bucket_of_rank(h, 1024, &rank);
    const uint32_t key = d1 << 21 | d2 << 10 | d3, u = (key & 0x80000000u) ? key & 0x7FFFFFFFu : ~key;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

void mlxn_sort_f32_id_descending(mlxn_f32_id *a, mlxn_f32_id *scratch, int32_t n) {
    if (n < 2) return;
    /* descending = ascending on the complemented key; an LSD sort is stable, so ties keep input order */
    uint32_t starts[PASSES][BUCKETS];
    memset(starts, 0, sizeof starts);
    for (int32_t i = 0; i < n; i++) {
        const uint32_t key = ~ascending_key_signless_zero(a[i].v);
        for (int p = 0; p < PASSES; p++) starts[p][digit(key, p)]++;
    }
    counts_to_starts(starts);
    mlxn_f32_id *src = a, *dst = scratch;
    for (int p = 0; p < PASSES; p++) {
        for (int32_t i = 0; i < n; i++) dst[starts[p][digit(~ascending_key_signless_zero(src[i].v), p)]++] = src[i];
        mlxn_f32_id *s = src;
        src = dst;
        dst = s;
    }
    memcpy(a, src, (size_t)n * sizeof *a);
}
