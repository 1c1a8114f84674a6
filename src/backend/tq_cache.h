/* The TurboQuant cache object as backends see it (private; the byte layout
 * of its tensors is defined in src/quant/tq_layout.h). src/ops/turboquant.c
 * allocates it; backends read and write its tensors. */
#ifndef MLXN_TQ_CACHE_H
#define MLXN_TQ_CACHE_H

#include "mlxn/turboquant.h"

struct mlxn_tq_cache {
    mlxn_device *dev;
    mlxn_tq_cache_params p;
    int64_t k_row, v_row; /* code bytes per vector: mlxn_tq_code_bytes(head_dim, bits) */
    mlxn_tensor k_codes;  /* u8 [n_kv_heads, capacity, k_row], then MLXN_TQ_PAD zero bytes */
    mlxn_tensor v_codes;  /* u8 [n_kv_heads, capacity, v_row], then MLXN_TQ_PAD zero bytes */
    mlxn_tensor k_norms;  /* f32 [n_kv_heads, capacity] */
    mlxn_tensor v_norms;  /* f32 [n_kv_heads, capacity] */
    mlxn_tensor signs;    /* f32 [head_dim]: the rotation's diagonal, mlxn_tq_sign(seed, i) */
};

#endif
