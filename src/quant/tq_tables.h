/* The TurboQuant codebooks (tq_codebooks.h) as C arrays, by width. */
#ifndef MLXN_TQ_TABLES_H
#define MLXN_TQ_TABLES_H

/* The 2^bits levels (increasing) and 2^bits - 1 decision boundaries of the
 * Lloyd-Max quantizer of N(0, 1); NULL for a width the format lacks. */
const float *mlxn_tq_levels(int bits);
const float *mlxn_tq_bounds(int bits);
/* Its mean squared error on N(0, 1) (0 for a width the format lacks). */
double mlxn_tq_distortion(int bits);

#endif
