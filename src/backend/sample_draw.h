/* The uniform number of mlxn_sample's draw, shared by the backends: the
 * counter-th output of splitmix64 seeded with `seed`, which is the
 * counter-th number the host sampler (src/text/sampler.c) draws with the
 * same seed, as a double in [0, 1) with 53 random bits. */
#ifndef MLXN_SAMPLE_DRAW_H
#define MLXN_SAMPLE_DRAW_H

#include <stdint.h>

static inline double mlxn_sample_uniform(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + counter * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

#endif
