/* The generated TurboQuant codebook macros instantiated once as tables. */
#include "quant/tq_tables.h"

#include <stddef.h>

#include "quant/tq_codebooks.h"
#include "quant/tq_layout.h"

static const float lv2[] = MLXN_TQ_LEVELS_2, bd2[] = MLXN_TQ_BOUNDS_2;
static const float lv3[] = MLXN_TQ_LEVELS_3, bd3[] = MLXN_TQ_BOUNDS_3;
static const float lv4[] = MLXN_TQ_LEVELS_4, bd4[] = MLXN_TQ_BOUNDS_4;
static const float lv5[] = MLXN_TQ_LEVELS_5, bd5[] = MLXN_TQ_BOUNDS_5;
static const float lv6[] = MLXN_TQ_LEVELS_6, bd6[] = MLXN_TQ_BOUNDS_6;
static const float lv7[] = MLXN_TQ_LEVELS_7, bd7[] = MLXN_TQ_BOUNDS_7;
static const float lv8[] = MLXN_TQ_LEVELS_8, bd8[] = MLXN_TQ_BOUNDS_8;

_Static_assert(sizeof lv2 / sizeof lv2[0] == 4 && sizeof bd2 / sizeof bd2[0] == 3, "2-bit codebook size");
_Static_assert(sizeof lv3 / sizeof lv3[0] == 8 && sizeof bd3 / sizeof bd3[0] == 7, "3-bit codebook size");
_Static_assert(sizeof lv4 / sizeof lv4[0] == 16 && sizeof bd4 / sizeof bd4[0] == 15, "4-bit codebook size");
_Static_assert(sizeof lv5 / sizeof lv5[0] == 32 && sizeof bd5 / sizeof bd5[0] == 31, "5-bit codebook size");
_Static_assert(sizeof lv6 / sizeof lv6[0] == 64 && sizeof bd6 / sizeof bd6[0] == 63, "6-bit codebook size");
_Static_assert(sizeof lv7 / sizeof lv7[0] == 128 && sizeof bd7 / sizeof bd7[0] == 127, "7-bit codebook size");
_Static_assert(sizeof lv8 / sizeof lv8[0] == 256 && sizeof bd8 / sizeof bd8[0] == 255, "8-bit codebook size");

static const float *const levels[9] = {NULL, NULL, lv2, lv3, lv4, lv5, lv6, lv7, lv8};
static const float *const bounds[9] = {NULL, NULL, bd2, bd3, bd4, bd5, bd6, bd7, bd8};
static const double dist[9] = {0,
                               0,
                               MLXN_TQ_DISTORTION_2,
                               MLXN_TQ_DISTORTION_3,
                               MLXN_TQ_DISTORTION_4,
                               MLXN_TQ_DISTORTION_5,
                               MLXN_TQ_DISTORTION_6,
                               MLXN_TQ_DISTORTION_7,
                               MLXN_TQ_DISTORTION_8};

const float *mlxn_tq_levels(int bits) { return mlxn_tq_bits_ok(bits) ? levels[bits] : NULL; }
const float *mlxn_tq_bounds(int bits) { return mlxn_tq_bits_ok(bits) ? bounds[bits] : NULL; }
double mlxn_tq_distortion(int bits) { return mlxn_tq_bits_ok(bits) ? dist[bits] : 0.0; }
